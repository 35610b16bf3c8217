//! Keeps calculated fields current: evaluates the formula and roll-up summary fields that
//! `schema::calc` defines over the records in the store.
//!
//! Like Salesforce, their values change when their inputs change, even on another record,
//! without the record's SystemModstamp (or LastModifiedDate) moving and without change events.
//! The emulator recomputes them at every committed write (`Writer`'s `Drop`, write.rs), so every
//! read path (SOQL, REST retrieve, Bulk query) sees the value a read in Salesforce would compute.
//! A blank input makes the formula blank; division by zero is blank (Salesforce shows #Error!).

use crate::schema::calc::{Expr, RollupFn};
use crate::schema::{Derived, FieldType, Schema};
use crate::store::{is_deleted, Record, Store};
use crate::value::Value;
use std::collections::HashMap;

fn num(v: &Value) -> Option<f64> {
    v.num()
}

fn eval(e: &Expr, schema: &Schema, store: &Store, obj: usize, rec: &Record) -> Option<f64> {
    match e {
        Expr::Num(n) => Some(*n),
        Expr::Neg(a) => eval(a, schema, store, obj, rec).map(|v| -v),
        Expr::Bin(o, a, b) => {
            let (a, b) = (eval(a, schema, store, obj, rec)?, eval(b, schema, store, obj, rec)?);
            match o {
                '+' => Some(a + b),
                '-' => Some(a - b),
                '*' => Some(a * b),
                _ if b == 0.0 => None,
                _ => Some(a / b),
            }
        }
        Expr::Field { hops, leaf } => {
            let mut r = rec;
            let mut o = obj;
            for &fi in hops {
                let (po, seq) = r.get(fi).as_str().and_then(|id| store.find(schema, id))?;
                r = store.tables[po].recs.get(&seq)?;
                o = po;
            }
            let _ = o;
            num(r.get(*leaf))
        }
    }
}

fn typed(t: FieldType, scale: u32, v: Option<f64>) -> Value {
    match v {
        None => Value::Null,
        Some(v) if !v.is_finite() => Value::Null,
        Some(v) if t == FieldType::Int => Value::Int(v.round() as i64),
        Some(v) => {
            let p = 10f64.powi(scale as i32);
            Value::Num((v * p).round() / p)
        }
    }
}

pub fn has_calculated(schema: &Schema) -> bool {
    schema.objects.iter().any(|o| o.fields.iter().any(|f| matches!(f.derived, Derived::Formula(..) | Derived::Rollup(_))))
}

/// Brings every calculated field up to date (roll-ups first: formulas may read them).
/// Records are updated in place: no stamp, no change event.
pub fn recompute(schema: &Schema, store: &mut Store) {
    for (obj, def) in schema.objects.iter().enumerate() {
        for (fi, fd) in def.fields.iter().enumerate() {
            let Derived::Rollup(r) = &fd.derived else { continue };
            let mut acc: HashMap<String, (u64, Option<f64>)> = HashMap::new();
            let cdef = &schema.objects[r.child];
            for c in store.tables[r.child].recs.values().filter(|c| !is_deleted(cdef, c)) {
                let Some(parent) = c.get(r.via).as_str() else { continue };
                let v = r.field.and_then(|f| num(c.get(f)));
                let e = acc.entry(parent.to_string()).or_insert((0, None));
                e.0 += 1;
                if let Some(v) = v {
                    e.1 = Some(match (r.func, e.1) {
                        (RollupFn::Min, Some(a)) => a.min(v),
                        (RollupFn::Max, Some(a)) => a.max(v),
                        (_, Some(a)) => a + v,
                        (_, None) => v,
                    });
                }
            }
            for rec in store.tables[obj].recs.values_mut() {
                let id = rec.get(0).as_str().unwrap_or("");
                let v = match (r.func, acc.get(id)) {
                    (RollupFn::Count, a) => Some(a.map_or(0, |a| a.0) as f64),
                    (RollupFn::Sum, a) => Some(a.and_then(|a| a.1).unwrap_or(0.0)),
                    (_, a) => a.and_then(|a| a.1),
                };
                let v = typed(fd.ftype, fd.scale, v);
                if *rec.get(fi) != v {
                    rec.set(fi, v);
                }
            }
        }
    }
    for (obj, def) in schema.objects.iter().enumerate() {
        let formulas: Vec<(usize, &Expr)> = def
            .fields
            .iter()
            .enumerate()
            .filter_map(|(fi, f)| if let Derived::Formula(_, e) = &f.derived { Some((fi, e)) } else { None })
            .collect();
        if formulas.is_empty() {
            continue;
        }
        let updates: Vec<(u64, usize, Value)> = store.tables[obj]
            .recs
            .iter()
            .flat_map(|(seq, rec)| {
                formulas
                    .iter()
                    .map(|(fi, e)| (*seq, *fi, typed(def.fields[*fi].ftype, def.fields[*fi].scale, eval(e, schema, store, obj, rec))))
                    .filter(|(_, fi, v)| rec.get(*fi) != v)
                    .collect::<Vec<_>>()
            })
            .collect();
        for (seq, fi, v) in updates {
            if let Some(rec) = store.tables[obj].recs.get_mut(&seq) {
                rec.set(fi, v);
            }
        }
    }
}
