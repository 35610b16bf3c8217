//! Predicates: WHERE conditions compiled against the field types (literals checked and
//! converted, relative date literals turned into ranges, multipicklist sets) and evaluated per
//! record with SOQL's rules: case-insensitive text, `!=` matching nulls, LIKE, IN, INCLUDES.
//! HAVING conditions share [`CCond`]; the aggregates module compiles and evaluates those.

use super::plan::Ctx;
use super::relationships::{compile_semi_join, leaf_def, resolve, FieldRef, SemiJoin};
use crate::clock::DAY_MS;
use crate::ids;
use crate::schema::{FieldType, Schema};
use crate::soql::ast::{CmpOp, Cond, Lit};
use crate::soql::SoqlError;
use crate::store::{Record, Store};
use crate::value::Value;
use std::cmp::Ordering;
use std::sync::Arc;

/// A compiled condition: WHERE terms, plus the `Acc`/`Group` terms only HAVING uses.
#[derive(Debug, Clone)]
pub(super) enum CCond {
    And(Vec<CCond>),
    Or(Vec<CCond>),
    Not(Box<CCond>),
    Cmp(FieldRef, CmpOp, Value),
    In(FieldRef, bool, Vec<Value>),
    /// A relative date literal: the field compared with the range `[start, end)`.
    Range(FieldRef, CmpOp, Value, Value),
    /// INCLUDES (false) / EXCLUDES (true): each entry a set of lowercased values.
    Includes(FieldRef, bool, Vec<Vec<String>>),
    /// `=` (false) / `!=` (true) on a multipicklist: same set of values, any order.
    MultiEq(FieldRef, bool, Vec<String>),
    InQuery(FieldRef, bool, Arc<SemiJoin>),
    /// HAVING: an aggregate (accumulator index) or a grouped field (group index) compared.
    Acc(usize, CmpOp, Value),
    Group(usize, CmpOp, Value),
}

/// A literal as a value of the field's type (SOQL's type errors otherwise).
pub(super) fn lit_value(fr: &FieldRef, schema: &Schema, field: &str, lit: &Lit, pos: usize) -> Result<Value, SoqlError> {
    let t = fr.ftype;
    let wrong = |ty: &str, quoted: bool| {
        SoqlError::at(
            "INVALID_FIELD",
            format!(
                "value of filter criterion for field '{field}' must be of type {ty} and should {}be enclosed in quotes",
                if quoted { "" } else { "not " }
            ),
            pos,
        )
    };
    let _ = schema;
    Ok(match (t, lit) {
        (_, Lit::Null) => Value::Null,
        (FieldType::Id | FieldType::Reference, Lit::Str(s)) => match ids::normalize(s) {
            Some(id) => Value::Str(id.into()),
            // Salesforce rejects malformed IDs compared to ID fields, except in LIKE patterns.
            None => Value::Str(s.as_str().into()),
        },
        (t, Lit::Str(s)) if t.is_text() || t == FieldType::Id || t == FieldType::Reference => Value::Str(s.as_str().into()),
        (t, _) if t.is_text() || t == FieldType::Id || t == FieldType::Reference => return Err(wrong("string", true)),
        (FieldType::Boolean, Lit::Bool(b)) => Value::Bool(*b),
        (FieldType::Boolean, _) => return Err(wrong("boolean", false)),
        (FieldType::Int, Lit::Num(n)) => Value::Num(*n),
        (FieldType::Int, _) => return Err(wrong("integer", false)),
        (t, Lit::Num(n)) if t.is_numeric() => Value::Num(*n),
        (t, _) if t.is_numeric() => return Err(wrong("double", false)),
        (FieldType::Date, Lit::Date(d)) => Value::Date(*d),
        (FieldType::Date, _) => return Err(wrong("date", false)),
        (FieldType::DateTime, Lit::DateTime(ms)) => Value::DateTime(*ms),
        (FieldType::DateTime, _) => return Err(wrong("dateTime", false)),
        _ => return Err(wrong("string", true)),
    })
}

fn check_id_literal(fr: &FieldRef, v: &Value, pos: usize) -> Result<(), SoqlError> {
    if matches!(fr.ftype, FieldType::Id | FieldType::Reference) {
        if let Value::Str(s) = v {
            if ids::normalize(s).is_none() {
                return Err(SoqlError::at("INVALID_QUERY_FILTER_OPERATOR", format!("invalid ID field: {s}"), pos));
            }
        }
    }
    Ok(())
}

fn mismatched(field: &str, ty: &str, pos: usize) -> SoqlError {
    SoqlError::at(
        "INVALID_FIELD",
        format!("value of filter criterion for field '{field}' must be of type {ty} and should not be enclosed in quotes"),
        pos,
    )
}

/// A relative date literal as a range of the field's values.
fn date_range(ctx: Ctx, fr: &FieldRef, field: &str, name: &str, n: i64, pos: usize) -> Result<(Value, Value), SoqlError> {
    let (a, b) =
        crate::soql::dates::range(name, n, ctx.today).ok_or_else(|| SoqlError::malformed(format!("unexpected token: '{name}'"), pos))?;
    match fr.ftype {
        FieldType::Date => Ok((Value::Date(a as i32), Value::Date(b as i32))),
        FieldType::DateTime => Ok((Value::DateTime(a * DAY_MS), Value::DateTime(b * DAY_MS))),
        t if t.is_numeric() => Err(mismatched(field, "double", pos)),
        FieldType::Boolean => Err(mismatched(field, "boolean", pos)),
        _ => Err(SoqlError::at(
            "INVALID_FIELD",
            format!("value of filter criterion for field '{field}' must be of type string and should be enclosed in quotes"),
            pos,
        )),
    }
}

fn multi_set(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.split(';').map(|p| p.trim().to_lowercase()).filter(|p| !p.is_empty()).collect();
    v.sort();
    v.dedup();
    v
}

/// Compiles a WHERE condition of a query on `obj`.
pub(super) fn compile_cond(ctx: Ctx, obj: usize, c: &Cond) -> Result<CCond, SoqlError> {
    let schema = ctx.schema;
    Ok(match c {
        Cond::And(v) => CCond::And(v.iter().map(|c| compile_cond(ctx, obj, c)).collect::<Result<_, _>>()?),
        Cond::Or(v) => CCond::Or(v.iter().map(|c| compile_cond(ctx, obj, c)).collect::<Result<_, _>>()?),
        Cond::Not(c) => CCond::Not(Box::new(compile_cond(ctx, obj, c)?)),
        Cond::Cmp { field, op, value, value_pos } => {
            let (fr, _) = resolve(schema, obj, field)?;
            let fd = leaf_def(schema, &fr);
            if !fd.filterable() {
                return Err(SoqlError::at("INVALID_FIELD", format!("field '{}' can not be filtered in query call", fd.name), field.pos));
            }
            if let Lit::Relative(name, n) = value {
                if *op == CmpOp::Like {
                    return Err(SoqlError::at(
                        "INVALID_FIELD",
                        format!("invalid operator on {} field: LIKE", fr.ftype.api_name()),
                        field.pos,
                    ));
                }
                let (a, b) = date_range(ctx, &fr, &fd.name, name, *n, *value_pos)?;
                return Ok(CCond::Range(fr, *op, a, b));
            }
            let v = lit_value(&fr, schema, &fd.name, value, *value_pos)?;
            if *op == CmpOp::Like {
                if !(fr.ftype.is_text() || matches!(fr.ftype, FieldType::Id | FieldType::Reference)) {
                    return Err(SoqlError::at(
                        "INVALID_FIELD",
                        format!("invalid operator on {} field: LIKE", fr.ftype.api_name()),
                        field.pos,
                    ));
                }
            } else {
                check_id_literal(&fr, &v, *value_pos)?;
            }
            if fr.ftype == FieldType::MultiPicklist && matches!(op, CmpOp::Eq | CmpOp::Ne) {
                if let Value::Str(s) = &v {
                    return Ok(CCond::MultiEq(fr, *op == CmpOp::Ne, multi_set(s)));
                }
            }
            CCond::Cmp(fr, *op, v)
        }
        Cond::In { field, negated, values, value_pos } => {
            let (fr, _) = resolve(schema, obj, field)?;
            let fd = leaf_def(schema, &fr);
            let name = fd.name.clone();
            if values.iter().any(|l| matches!(l, Lit::Relative(..))) {
                // Date literals in IN: any of the ranges.
                let parts = values
                    .iter()
                    .map(|l| match l {
                        Lit::Relative(lit, n) => {
                            let (a, b) = date_range(ctx, &fr, &name, lit, *n, *value_pos)?;
                            Ok(CCond::Range(fr.clone(), CmpOp::Eq, a, b))
                        }
                        other => Ok(CCond::In(fr.clone(), false, vec![lit_value(&fr, schema, &name, other, *value_pos)?])),
                    })
                    .collect::<Result<Vec<_>, SoqlError>>()?;
                let any = CCond::Or(parts);
                return Ok(if *negated { CCond::Not(Box::new(any)) } else { any });
            }
            let vals = values
                .iter()
                .map(|l| {
                    let v = lit_value(&fr, schema, &name, l, *value_pos)?;
                    check_id_literal(&fr, &v, *value_pos)?;
                    Ok(v)
                })
                .collect::<Result<_, SoqlError>>()?;
            CCond::In(fr, *negated, vals)
        }
        Cond::Includes { field, negated, values, value_pos } => {
            let (fr, _) = resolve(schema, obj, field)?;
            if fr.ftype != FieldType::MultiPicklist {
                return Err(SoqlError::at(
                    "INVALID_QUERY_FILTER_OPERATOR",
                    "includes or excludes operator only valid on multipicklist field",
                    *value_pos,
                ));
            }
            CCond::Includes(fr, *negated, values.iter().map(|v| multi_set(v)).collect())
        }
        Cond::InQuery { field, negated, query, value_pos } => {
            let (fr, sj) = compile_semi_join(ctx, obj, field, query, *value_pos)?;
            CCond::InQuery(fr, *negated, Arc::new(sj))
        }
        Cond::AggCmp { agg, .. } => {
            return Err(SoqlError::malformed("Aggregate functions are only allowed in the SELECT list, HAVING and ORDER BY", agg.pos));
        }
    })
}

/// Salesforce ordering/equality: text case-insensitive, numbers numeric.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Some(x.chars().flat_map(char::to_lowercase).cmp(y.chars().flat_map(char::to_lowercase))),
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Num(y)) => (*x as f64).partial_cmp(y),
        (Value::Num(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Num(x), Value::Num(y)) => x.partial_cmp(y),
        (Value::Dec(x), Value::Dec(y)) => x.partial_cmp(y),
        (Value::Dec(_), Value::Int(_) | Value::Num(_)) | (Value::Int(_) | Value::Num(_), Value::Dec(_)) => a.num()?.partial_cmp(&b.num()?),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::DateTime(x), Value::DateTime(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// SOQL LIKE: `%` any run, `_` one char, `\%`/`\_` literal; case-insensitive.
pub fn like(text: &str, pattern: &str) -> bool {
    enum P {
        Any,
        One,
        Ch(char),
    }
    let mut pat = vec![];
    let mut it = pattern.chars().flat_map(char::to_lowercase).peekable();
    while let Some(c) = it.next() {
        pat.push(match c {
            '\\' if matches!(it.peek(), Some('%') | Some('_')) => P::Ch(it.next().unwrap_or('\\')),
            '%' => P::Any,
            '_' => P::One,
            c => P::Ch(c),
        });
    }
    let t: Vec<char> = text.chars().flat_map(char::to_lowercase).collect();
    // Greedy wildcard matching with single backtrack point.
    let (mut ti, mut pi, mut star, mut mark) = (0usize, 0usize, None, 0usize);
    while ti < t.len() {
        match pat.get(pi) {
            Some(P::One) => {
                ti += 1;
                pi += 1;
            }
            Some(P::Ch(c)) if *c == t[ti] => {
                ti += 1;
                pi += 1;
            }
            Some(P::Any) => {
                star = Some(pi);
                mark = ti;
                pi += 1;
            }
            _ => match star {
                Some(s) => {
                    pi = s + 1;
                    mark += 1;
                    ti = mark;
                }
                None => return false,
            },
        }
    }
    pat[pi..].iter().all(|p| matches!(p, P::Any))
}

/// `v op lit` with SOQL's null rules (`!=` matches nulls; other operators never match them).
pub(super) fn cmp_value(v: &Value, op: CmpOp, lit: &Value) -> bool {
    match (op, lit) {
        (CmpOp::Eq, Value::Null) => v.is_null(),
        (CmpOp::Ne, Value::Null) => !v.is_null(),
        // SOQL's != matches nulls, unlike SQL.
        (CmpOp::Ne, _) => v.is_null() || compare(v, lit) != Some(Ordering::Equal),
        (_, Value::Null) => false,
        (CmpOp::Like, Value::Str(p)) => v.as_str().is_some_and(|s| like(s, p)),
        _ => match compare(v, lit) {
            None => false,
            Some(o) => match op {
                CmpOp::Eq => o == Ordering::Equal,
                CmpOp::Lt => o == Ordering::Less,
                CmpOp::Le => o != Ordering::Greater,
                CmpOp::Gt => o == Ordering::Greater,
                CmpOp::Ge => o != Ordering::Less,
                _ => false,
            },
        },
    }
}

/// `v op RANGE` for a relative date literal `[a, b)`.
fn in_range(v: &Value, op: CmpOp, a: &Value, b: &Value) -> bool {
    if v.is_null() {
        return op == CmpOp::Ne;
    }
    let lt = |x: &Value| compare(v, x) == Some(Ordering::Less);
    let inside = !lt(a) && lt(b);
    match op {
        CmpOp::Eq => inside,
        CmpOp::Ne => !inside,
        CmpOp::Lt => lt(a),
        CmpOp::Le => lt(b),
        CmpOp::Gt => !lt(b),
        CmpOp::Ge => !lt(a),
        CmpOp::Like => false,
    }
}

/// Whether record `rec` of `obj` satisfies the WHERE condition.
pub(super) fn eval(c: &CCond, schema: &Schema, store: &Store, obj: usize, rec: &Record) -> bool {
    match c {
        CCond::And(v) => v.iter().all(|c| eval(c, schema, store, obj, rec)),
        CCond::Or(v) => v.iter().any(|c| eval(c, schema, store, obj, rec)),
        CCond::Not(c) => !eval(c, schema, store, obj, rec),
        CCond::Cmp(fr, op, lit) => cmp_value(fr.get(schema, store, obj, rec), *op, lit),
        CCond::Range(fr, op, a, b) => in_range(fr.get(schema, store, obj, rec), *op, a, b),
        CCond::In(fr, negated, vals) => {
            let v = fr.get(schema, store, obj, rec);
            let hit = vals.iter().any(|l| if l.is_null() { v.is_null() } else { compare(v, l) == Some(Ordering::Equal) });
            hit != *negated
        }
        CCond::Includes(fr, excludes, sets) => {
            let have = fr.get(schema, store, obj, rec).as_str().map(multi_set).unwrap_or_default();
            let hit = sets.iter().any(|want| !want.is_empty() && want.iter().all(|w| have.contains(w)));
            hit != *excludes
        }
        CCond::MultiEq(fr, negated, set) => {
            let v = fr.get(schema, store, obj, rec);
            let same = v.as_str().map(multi_set).unwrap_or_default() == *set && !v.is_null();
            if *negated {
                !same
            } else {
                same
            }
        }
        CCond::InQuery(fr, negated, sj) => {
            let ids = sj.ids(schema, store);
            let v = fr.get(schema, store, obj, rec);
            match v.as_str() {
                Some(id) => ids.contains(id) != *negated,
                None => *negated,
            }
        }
        // HAVING terms never reach record filters.
        CCond::Acc(..) | CCond::Group(..) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns() {
        assert!(like("Acme Corp", "acme%"));
        assert!(like("Acme Corp", "%CORP"));
        assert!(like("Acme", "A_me"));
        assert!(!like("Acme", "A_e"));
        assert!(like("50%", "50\\%"));
        assert!(!like("500", "50\\%"));
        assert!(like("abcabc", "%b%c"));
        assert!(like("", "%"));
    }
}
