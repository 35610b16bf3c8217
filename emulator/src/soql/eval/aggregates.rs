//! Aggregates: GROUP BY, the aggregate functions (COUNT, COUNT_DISTINCT, SUM, AVG, MIN, MAX)
//! and HAVING, compiled against the field types and run as one pass over the matched records;
//! each group becomes an `AggregateResult` row.

use super::execute;
use super::ordering::{cmp_keys, sort_key, window};
use super::plan::{Ctx, Plan};
use super::predicates::{cmp_value, compare, lit_value, CCond};
use super::relationships::{leaf_def, resolve, FieldRef};
use crate::out::Out;
use crate::schema::{FieldDef, FieldType, Schema};
use crate::soql::ast::{Agg, AggFn, Cond, Lit, OrderItem, Path};
use crate::soql::SoqlError;
use crate::store::Store;
use crate::value::Value;
use serde_json::json;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

/// Where an aggregate query's output value comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Src {
    Group(usize),
    Acc(usize),
}

#[derive(Debug, Clone)]
pub(super) struct AggPlan {
    pub(super) groups: Vec<FieldRef>,
    /// Distinct aggregate expressions (select list, HAVING, ORDER BY).
    pub(super) accs: Vec<(AggFn, Option<FieldRef>)>,
    pub(super) outs: Vec<(String, Src)>,
    pub(super) having: Option<CCond>,
    pub(super) order: Vec<(Src, bool, bool)>,
}

fn aggregatable(func: AggFn, t: FieldType, fd: &FieldDef) -> bool {
    match func {
        AggFn::Sum | AggFn::Avg => t.is_numeric(),
        _ => !matches!(t, FieldType::Boolean | FieldType::MultiPicklist | FieldType::Address) && fd.filterable(),
    }
}

fn groupable(fd: &FieldDef) -> bool {
    !matches!(fd.ftype, FieldType::MultiPicklist | FieldType::Address | FieldType::Double | FieldType::Currency | FieldType::Percent)
        && fd.filterable()
}

/// The GROUP BY fields: (canonical path, field), each checked groupable.
pub(super) fn compile_groups(schema: &Schema, obj: usize, group_by: &[Path]) -> Result<Vec<(String, FieldRef)>, SoqlError> {
    let mut groups = vec![];
    for p in group_by {
        let (fr, names) = resolve(schema, obj, p)?;
        let fd = leaf_def(schema, &fr);
        if !groupable(fd) {
            return Err(SoqlError::at("INVALID_FIELD", format!("field '{}' can not be grouped in a query call", fd.name), p.pos));
        }
        groups.push((names.join("."), fr));
    }
    Ok(groups)
}

/// Index of an aggregate expression in `accs`, adding it (checked against its field's type).
pub(super) fn acc_index(
    ctx: Ctx,
    obj: usize,
    accs: &mut Vec<(AggFn, Option<FieldRef>)>,
    keys: &mut Vec<(AggFn, String)>,
    agg: &Agg,
) -> Result<usize, SoqlError> {
    let (fr, key) = match &agg.field {
        None => (None, String::new()),
        Some(p) => {
            let (fr, names) = resolve(ctx.schema, obj, p)?;
            let fd = leaf_def(ctx.schema, &fr);
            if !aggregatable(agg.func, fr.ftype, fd) {
                return Err(SoqlError::malformed(
                    format!("field {} does not support aggregate operator {}", fd.name, agg.func.name()),
                    p.pos,
                ));
            }
            (Some(fr), names.join(".").to_lowercase())
        }
    };
    if let Some(i) = keys.iter().position(|k| k.0 == agg.func && k.1 == key) {
        return Ok(i);
    }
    keys.push((agg.func, key));
    accs.push((agg.func, fr));
    Ok(accs.len() - 1)
}

/// An ORDER BY item of an aggregate query: an aggregate or a grouped field.
pub(super) fn order_src(
    ctx: Ctx,
    obj: usize,
    o: &OrderItem,
    groups: &[(String, FieldRef)],
    accs: &mut Vec<(AggFn, Option<FieldRef>)>,
    keys: &mut Vec<(AggFn, String)>,
) -> Result<Src, SoqlError> {
    Ok(match &o.agg {
        Some(a) => Src::Acc(acc_index(ctx, obj, accs, keys, a)?),
        None => {
            let (_, names) = resolve(ctx.schema, obj, &o.field)?;
            let full = names.join(".");
            match groups.iter().position(|(n, _)| n.eq_ignore_ascii_case(&full)) {
                Some(gi) => Src::Group(gi),
                None => return Err(SoqlError::malformed(format!("Ordered field must be grouped or aggregated: {full}"), o.field.pos)),
            }
        }
    })
}

pub(super) fn compile_having(
    ctx: Ctx,
    obj: usize,
    c: &Cond,
    groups: &[(String, FieldRef)],
    accs: &mut Vec<(AggFn, Option<FieldRef>)>,
    keys: &mut Vec<(AggFn, String)>,
) -> Result<CCond, SoqlError> {
    Ok(match c {
        Cond::And(v) => CCond::And(v.iter().map(|c| compile_having(ctx, obj, c, groups, accs, keys)).collect::<Result<_, _>>()?),
        Cond::Or(v) => CCond::Or(v.iter().map(|c| compile_having(ctx, obj, c, groups, accs, keys)).collect::<Result<_, _>>()?),
        Cond::Not(c) => CCond::Not(Box::new(compile_having(ctx, obj, c, groups, accs, keys)?)),
        Cond::AggCmp { agg, op, value, value_pos } => {
            let i = acc_index(ctx, obj, accs, keys, agg)?;
            let v = match (agg.func, value, &accs[i].1) {
                (_, Lit::Null, _) => Value::Null,
                (AggFn::Count | AggFn::CountDistinct | AggFn::Sum | AggFn::Avg, Lit::Num(n), _) => Value::Num(*n),
                (_, _, Some(fr)) => lit_value(fr, ctx.schema, "", value, *value_pos)?,
                _ => return Err(SoqlError::malformed("invalid value in HAVING", *value_pos)),
            };
            CCond::Acc(i, *op, v)
        }
        Cond::Cmp { field, op, value, value_pos } => {
            let (fr, names) = resolve(ctx.schema, obj, field)?;
            let full = names.join(".");
            let Some(gi) = groups.iter().position(|(n, _)| n.eq_ignore_ascii_case(&full)) else {
                return Err(SoqlError::malformed(format!("Field must be grouped or aggregated: {full}"), field.pos));
            };
            let v = lit_value(&fr, ctx.schema, &full, value, *value_pos)?;
            CCond::Group(gi, *op, v)
        }
        other => {
            return Err(SoqlError::malformed(
                "HAVING supports comparisons on aggregates and grouped fields only",
                match other {
                    Cond::In { value_pos, .. } | Cond::InQuery { value_pos, .. } | Cond::Includes { value_pos, .. } => *value_pos,
                    _ => 0,
                },
            ))
        }
    })
}

enum Acc {
    Count(i64),
    Distinct(HashSet<Box<str>>),
    Sum(f64, bool),
    Avg(f64, i64),
    Min(Value),
    Max(Value),
}

impl Acc {
    fn new(f: AggFn) -> Acc {
        match f {
            AggFn::Count => Acc::Count(0),
            AggFn::CountDistinct => Acc::Distinct(HashSet::new()),
            AggFn::Sum => Acc::Sum(0.0, false),
            AggFn::Avg => Acc::Avg(0.0, 0),
            AggFn::Min => Acc::Min(Value::Null),
            AggFn::Max => Acc::Max(Value::Null),
        }
    }
    /// `v` is None for `COUNT()` (every row counts).
    fn add(&mut self, v: Option<&Value>) {
        let Some(v) = v else {
            if let Acc::Count(n) = self {
                *n += 1;
            }
            return;
        };
        if v.is_null() {
            return;
        }
        let num = v.num().unwrap_or(0.0);
        match self {
            Acc::Count(n) => *n += 1,
            Acc::Distinct(set) => {
                set.insert(sort_key(v).display().into());
            }
            Acc::Sum(s, any) => {
                *s += num;
                *any = true;
            }
            Acc::Avg(s, n) => {
                *s += num;
                *n += 1;
            }
            Acc::Min(m) => {
                if m.is_null() || compare(v, m) == Some(Ordering::Less) {
                    *m = v.clone();
                }
            }
            Acc::Max(m) => {
                if m.is_null() || compare(v, m) == Some(Ordering::Greater) {
                    *m = v.clone();
                }
            }
        }
    }
    fn value(self, int_field: bool) -> Value {
        match self {
            Acc::Count(n) => Value::Int(n),
            Acc::Distinct(s) => Value::Int(s.len() as i64),
            Acc::Sum(s, true) if int_field => Value::Int(s as i64),
            Acc::Sum(s, true) => Value::Num(s),
            Acc::Sum(_, false) => Value::Null,
            Acc::Avg(_, 0) => Value::Null,
            Acc::Avg(s, n) => Value::Num(s / n as f64),
            Acc::Min(v) | Acc::Max(v) => v,
        }
    }
}

/// A finished group: grouped values and aggregate values.
type GroupRow = (Vec<Value>, Vec<Value>);

fn group_key(vals: &[Value]) -> String {
    let mut k = String::new();
    for v in vals {
        match v {
            Value::Null => k.push('\u{0}'),
            other => k.push_str(&sort_key(other).display()),
        }
        k.push('\u{1}');
    }
    k
}

fn eval_having(c: &CCond, groups: &[Value], accs: &[Value]) -> bool {
    match c {
        CCond::And(v) => v.iter().all(|c| eval_having(c, groups, accs)),
        CCond::Or(v) => v.iter().any(|c| eval_having(c, groups, accs)),
        CCond::Not(c) => !eval_having(c, groups, accs),
        CCond::Acc(i, op, lit) => cmp_value(&accs[*i], *op, lit),
        CCond::Group(i, op, lit) => cmp_value(&groups[*i], *op, lit),
        _ => false,
    }
}

/// Runs an aggregate query: one `AggregateResult` row per group (one row without GROUP BY).
pub fn execute_aggregate(plan: &Plan, schema: &Schema, store: &Store, include_deleted: bool) -> Vec<Out> {
    let Some(ap) = &plan.agg else { return vec![] };
    let inner = Plan { limit: None, offset: None, order: vec![], agg: None, ..plan.clone() };
    let seqs = execute(&inner, schema, store, include_deleted);
    let table = &store.tables[plan.obj];
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut rows: Vec<(Vec<Value>, Vec<Acc>)> = vec![];
    if ap.groups.is_empty() {
        rows.push((vec![], ap.accs.iter().map(|(f, _)| Acc::new(*f)).collect()));
    }
    for s in &seqs {
        let Some(r) = table.recs.get(s) else { continue };
        let gvals: Vec<Value> = ap.groups.iter().map(|fr| fr.get(schema, store, plan.obj, r).clone()).collect();
        let row = if ap.groups.is_empty() {
            0
        } else {
            *index.entry(group_key(&gvals)).or_insert_with(|| {
                rows.push((gvals, ap.accs.iter().map(|(f, _)| Acc::new(*f)).collect()));
                rows.len() - 1
            })
        };
        for (acc, (_, fr)) in rows[row].1.iter_mut().zip(&ap.accs) {
            acc.add(fr.as_ref().map(|fr| fr.get(schema, store, plan.obj, r)));
        }
    }
    let mut done: Vec<GroupRow> = rows
        .into_iter()
        .map(|(g, accs)| {
            let vals: Vec<Value> = accs
                .into_iter()
                .zip(&ap.accs)
                .map(|(a, (_, fr))| a.value(fr.as_ref().is_some_and(|fr| fr.ftype == FieldType::Int)))
                .collect();
            (g, vals)
        })
        .filter(|(g, a)| ap.having.as_ref().is_none_or(|h| eval_having(h, g, a)))
        .collect();
    let pick = |src: Src, row: &GroupRow| match src {
        Src::Group(i) => sort_key(&row.0[i]),
        Src::Acc(i) => sort_key(&row.1[i]),
    };
    let (keys, dirs): (Vec<Src>, Vec<(bool, bool)>) = if ap.order.is_empty() {
        ((0..ap.groups.len()).map(Src::Group).collect(), vec![(false, false); ap.groups.len()])
    } else {
        (ap.order.iter().map(|(s, _, _)| *s).collect(), ap.order.iter().map(|(_, d, n)| (*d, *n)).collect())
    };
    let mut keyed: Vec<(Vec<Value>, GroupRow)> = done.drain(..).map(|row| (keys.iter().map(|k| pick(*k, &row)).collect(), row)).collect();
    keyed.sort_by(|(a, _), (b, _)| cmp_keys(a, b, &dirs));
    let (off, lim) = window(plan);
    keyed
        .into_iter()
        .skip(off)
        .take(lim)
        .map(|(_, (g, a))| {
            let mut out = vec![("attributes".to_string(), Out::O(vec![("type".into(), Out::J(json!("AggregateResult")))]))];
            for (name, src) in &ap.outs {
                let v = match src {
                    Src::Group(i) => &g[*i],
                    Src::Acc(i) => &a[*i],
                };
                out.push((name.clone(), Out::J(v.to_json())));
            }
            Out::O(out)
        })
        .collect()
}
