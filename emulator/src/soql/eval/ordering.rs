//! Ordering: ORDER BY (several keys, ASC/DESC, NULLS FIRST/LAST; text case-insensitive) and
//! the OFFSET/LIMIT window, for record queries and for aggregate result rows alike.

use super::plan::Plan;
use super::predicates::compare;
use super::relationships::{leaf_def, resolve, FieldRef};
use crate::schema::Schema;
use crate::soql::ast::OrderItem;
use crate::soql::SoqlError;
use crate::store::{Record, Store};
use crate::value::Value;
use std::cmp::Ordering;

/// An ORDER BY item of a record query: the field must be sortable. (`desc`, `nulls_last`) follow.
pub(super) fn compile_order(schema: &Schema, obj: usize, o: &OrderItem) -> Result<(FieldRef, bool, bool), SoqlError> {
    if let Some(a) = &o.agg {
        return Err(SoqlError::malformed("Aggregate functions are only allowed in aggregate queries", a.pos));
    }
    let (fr, _) = resolve(schema, obj, &o.field)?;
    let fd = leaf_def(schema, &fr);
    if !fd.filterable() {
        return Err(SoqlError::at("INVALID_FIELD", format!("field '{}' can not be sorted in a query call", fd.name), o.field.pos));
    }
    Ok((fr, o.desc, o.nulls_last))
}

/// Salesforce caps OFFSET at 2000.
pub(super) fn check_offset(offset: Option<u64>) -> Result<(), SoqlError> {
    if let Some(off) = offset {
        if off > 2000 {
            return Err(SoqlError {
                code: "NUMBER_OUTSIDE_VALID_RANGE",
                message: format!("Maximum SOQL offset allowed is 2000, but got {off}"),
                pos: None,
            });
        }
    }
    Ok(())
}

/// (rows skipped, rows kept) from OFFSET and LIMIT.
pub(super) fn window(plan: &Plan) -> (usize, usize) {
    (plan.offset.unwrap_or(0) as usize, plan.limit.map(|l| l as usize).unwrap_or(usize::MAX))
}

/// The matched rows (in scan order) sorted by the plan's ORDER BY, then OFFSET/LIMIT applied.
pub(super) fn sort_and_window<'s>(
    plan: &Plan,
    schema: &Schema,
    store: &'s Store,
    hits: impl Iterator<Item = (&'s u64, &'s Record)>,
) -> Vec<u64> {
    let (off, lim) = window(plan);
    if plan.order.is_empty() {
        return hits.skip(off).take(lim).map(|(s, _)| *s).collect();
    }
    // Decorate-sort-undecorate: sort keys are computed once per row (text lowercased), so the
    // comparisons themselves are cheap even for a million rows.
    let mut keyed: Vec<(Vec<Value>, u64)> =
        hits.map(|(s, r)| (plan.order.iter().map(|(fr, _, _)| sort_key(fr.get(schema, store, plan.obj, r))).collect(), *s)).collect();
    let dirs: Vec<(bool, bool)> = plan.order.iter().map(|(_, d, n)| (*d, *n)).collect();
    keyed.sort_unstable_by(|(ka, sa), (kb, sb)| cmp_keys(ka, kb, &dirs).then(sa.cmp(sb)));
    keyed.into_iter().skip(off).take(lim).map(|(_, s)| s).collect()
}

/// A value as a sort key: text lowercased once, so comparisons are plain.
pub(super) fn sort_key(v: &Value) -> Value {
    match v {
        Value::Str(s) => Value::Str(s.to_lowercase().into()),
        other => other.clone(),
    }
}

/// Compares decorated sort keys; `dirs` is (descending, nulls last) per key.
pub(super) fn cmp_keys(ka: &[Value], kb: &[Value], dirs: &[(bool, bool)]) -> Ordering {
    for (i, (desc, nulls_last)) in dirs.iter().enumerate() {
        let (a, b) = (&ka[i], &kb[i]);
        let o = match (a.is_null(), b.is_null()) {
            (true, true) => Ordering::Equal,
            (true, false) => {
                if *nulls_last {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (false, true) => {
                if *nulls_last {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            _ => {
                let o = match (a, b) {
                    (Value::Str(x), Value::Str(y)) => x.cmp(y),
                    _ => compare(a, b).unwrap_or(Ordering::Equal),
                };
                if *desc {
                    o.reverse()
                } else {
                    o
                }
            }
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}
