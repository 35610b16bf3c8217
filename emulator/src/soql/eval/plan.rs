//! The compiled query ([`Plan`]) and the compiler's spine: resolves the FROM object, walks the
//! select list, then hands WHERE, ORDER BY, GROUP BY/HAVING and OFFSET to their modules.

use super::aggregates::{acc_index, compile_groups, compile_having, order_src, AggPlan, Src};
use super::ordering::{check_offset, compile_order};
use super::predicates::{compile_cond, CCond};
use super::relationships::{add_col, compile_child, resolve, Col, FieldRef};
use crate::clock::DAY_MS;
use crate::schema::Schema;
use crate::soql::ast::{FieldsKind, Path, Query, SelectItem};
use crate::soql::SoqlError;

/// A query compiled against the schema; cheap to keep with a cursor (query locators, Bulk jobs).
#[derive(Debug, Clone)]
pub struct Plan {
    pub obj: usize,
    pub count_only: bool,
    pub(super) cols: Vec<Col>,
    pub(super) filter: Option<CCond>,
    pub(super) order: Vec<(FieldRef, bool, bool)>,
    pub(super) limit: Option<u64>,
    pub(super) offset: Option<u64>,
    pub(super) agg: Option<AggPlan>,
}

impl Plan {
    /// An aggregate query (aggregate functions or GROUP BY): rendered by [`execute_aggregate`](super::execute_aggregate).
    pub fn is_aggregate(&self) -> bool {
        self.agg.is_some()
    }
    /// Has child relationship subqueries in its select list.
    pub fn has_subqueries(&self) -> bool {
        self.cols.iter().any(|c| matches!(c, Col::Child { .. }))
    }
}

/// What compiling needs besides the query: the schema and "today" for date literals.
#[derive(Clone, Copy)]
pub(super) struct Ctx<'a> {
    pub(super) schema: &'a Schema,
    pub(super) today: i64,
}

fn invalid_type(p: &Path) -> SoqlError {
    SoqlError::at(
        "INVALID_TYPE",
        format!("sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.", p.text),
        p.pos,
    )
}

/// Compiles a query. `now_ms` (the emulator clock) anchors relative date literals.
pub fn compile(schema: &Schema, q: &Query, now_ms: i64) -> Result<Plan, SoqlError> {
    compile_in(Ctx { schema, today: now_ms.div_euclid(DAY_MS) }, q, true)
}

/// Compiles `q` on its FROM object.
pub(super) fn compile_in(ctx: Ctx, q: &Query, top: bool) -> Result<Plan, SoqlError> {
    let schema = ctx.schema;
    let obj = schema.object(&q.from.text).ok_or_else(|| invalid_type(&q.from))?;
    compile_on(ctx, q, obj, top)
}

/// Compiles `q` as a query on `obj` (`top`: not a subquery, so child subqueries are allowed).
pub(super) fn compile_on(ctx: Ctx, q: &Query, obj: usize, top: bool) -> Result<Plan, SoqlError> {
    let schema = ctx.schema;
    let is_agg = !q.group_by.is_empty() || q.having.is_some() || q.select.iter().any(|i| matches!(i, SelectItem::Agg(..)));
    let mut cols = vec![];
    let mut count_only = false;
    let mut first_field = None;
    // Aggregate query parts.
    let groups: Vec<(String, FieldRef)> = if is_agg { compile_groups(schema, obj, &q.group_by)? } else { vec![] };
    let mut accs = vec![];
    let mut keys = vec![];
    let mut outs: Vec<(String, Src)> = vec![];
    let mut expr_n = 0;
    for item in &q.select {
        match item {
            SelectItem::CountAll(pos) => {
                if is_agg {
                    return Err(SoqlError::malformed(
                        "COUNT() cannot be combined with other aggregate functions or GROUP BY; use COUNT(Id)",
                        *pos,
                    ));
                }
                count_only = true
            }
            SelectItem::Field(p, alias) => {
                let (fr, names) = resolve(schema, obj, p)?;
                let full = names.join(".");
                if is_agg {
                    let Some(gi) = groups.iter().position(|(n, _)| n.eq_ignore_ascii_case(&full)) else {
                        return Err(SoqlError::malformed(format!("Field must be grouped or aggregated: {full}"), p.pos));
                    };
                    let name = alias.as_ref().map(|a| a.text.clone()).unwrap_or_else(|| names.last().cloned().unwrap_or_default());
                    outs.push((name, Src::Group(gi)));
                    continue;
                }
                if let Some(a) = alias {
                    return Err(SoqlError::malformed(format!("unexpected token: '{}'", a.text), a.pos));
                }
                first_field.get_or_insert((p.clone(), full));
                add_col(&mut cols, &fr, &names, 0);
            }
            SelectItem::Agg(agg, alias) => {
                let i = acc_index(ctx, obj, &mut accs, &mut keys, agg)?;
                let name = match alias {
                    Some(a) => a.text.clone(),
                    None => {
                        expr_n += 1;
                        format!("expr{}", expr_n - 1)
                    }
                };
                outs.push((name, Src::Acc(i)));
            }
            SelectItem::Fields(kind, pos) => {
                if is_agg {
                    return Err(SoqlError::malformed("FIELDS() can not be used in aggregate queries", *pos));
                }
                if *kind != FieldsKind::Standard && q.limit.is_none_or(|l| l > 200) {
                    return Err(SoqlError::malformed("The SOQL FIELDS function must have a LIMIT of at most 200", q.limit_pos));
                }
                let def = &schema.objects[obj];
                for fd in &def.fields {
                    let take = match kind {
                        FieldsKind::All => true,
                        FieldsKind::Standard => !fd.custom,
                        FieldsKind::Custom => fd.custom,
                    };
                    if take {
                        let (fr, names) = resolve(schema, obj, &Path { text: fd.name.clone(), pos: *pos })?;
                        first_field.get_or_insert((Path { text: fd.name.clone(), pos: *pos }, fd.name.clone()));
                        add_col(&mut cols, &fr, &names, 0);
                    }
                }
            }
            SelectItem::SubQuery(sub, pos) => {
                if !top || is_agg {
                    return Err(SoqlError::malformed("unexpected token: '('", *pos));
                }
                cols.push(compile_child(ctx, obj, sub, *pos)?);
            }
        }
    }
    if count_only {
        if let Some((p, name)) = first_field {
            return Err(SoqlError::malformed(format!("Field must be grouped or aggregated: {name}"), p.pos));
        }
    }
    let filter = q.filter.as_ref().map(|c| compile_cond(ctx, obj, c)).transpose()?;
    let mut order = vec![];
    let mut agg_order = vec![];
    for o in &q.order {
        if is_agg {
            agg_order.push((order_src(ctx, obj, o, &groups, &mut accs, &mut keys)?, o.desc, o.nulls_last));
        } else {
            order.push(compile_order(schema, obj, o)?);
        }
    }
    let agg = if is_agg {
        let having = q.having.as_ref().map(|h| compile_having(ctx, obj, h, &groups, &mut accs, &mut keys)).transpose()?;
        Some(AggPlan { groups: groups.into_iter().map(|(_, fr)| fr).collect(), accs, outs, having, order: agg_order })
    } else {
        None
    };
    check_offset(q.offset)?;
    Ok(Plan { obj, count_only, cols, filter, order, limit: q.limit, offset: q.offset, agg })
}
