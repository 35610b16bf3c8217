//! Compiles a parsed query against the schema (names, types, literals) and runs it over the
//! store: filter in one scan, sort once, then pages render from the matched-ID snapshot.

use super::parser::{Agg, AggFn, CmpOp, Cond, FieldsKind, Lit, Path, Query, SelectItem};
use super::SoqlError;
use crate::clock::DAY_MS;
use crate::ids;
use crate::out::{attributes, Out};
use crate::schema::{Derived, FieldType, ObjectDef, Schema};
use crate::store::{is_deleted, Record, Store};
use crate::value::{Value, NULL};
use serde_json::{json, Value as Json};
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};

/// A field path resolved for every object it may traverse (polymorphic lookups allow several).
#[derive(Debug, Clone)]
pub struct FieldRef {
    /// Per hop: (object, reference field) pairs.
    hops: Vec<Vec<(usize, usize)>>,
    /// Leaf (object, field) pairs.
    leaf: Vec<(usize, usize)>,
    ftype: FieldType,
}

impl FieldRef {
    /// Type of the leaf field.
    pub fn ftype(&self) -> FieldType {
        self.ftype
    }
    pub fn get<'s>(&self, schema: &Schema, store: &'s Store, obj: usize, rec: &'s Record) -> &'s Value {
        let (mut o, mut r) = (obj, rec);
        for hop in &self.hops {
            let Some(&(_, fi)) = hop.iter().find(|(ho, _)| *ho == o) else { return &NULL };
            let Some((po, seq)) = r.get(fi).as_str().and_then(|id| store.find(schema, id)) else { return &NULL };
            o = po;
            r = &store.tables[po].recs[&seq];
        }
        match self.leaf.iter().find(|(lo, _)| *lo == o) {
            Some(&(_, fi)) => r.get(fi),
            None => &NULL,
        }
    }
}

#[derive(Debug, Clone)]
enum Col {
    Field {
        name: String,
        fields: Vec<(usize, usize)>,
    },
    Rel {
        name: String,
        fields: Vec<(usize, usize)>,
        children: Vec<Col>,
    },
    /// A child relationship subquery: child records whose `field` points at the row.
    Child {
        name: String,
        obj: usize,
        field: usize,
        plan: Box<Plan>,
    },
}

/// A semi-join's subquery; its ID set is computed once, on first use.
#[derive(Debug)]
pub struct SemiJoin {
    plan: Plan,
    field: FieldRef,
    ids: OnceLock<HashSet<Box<str>>>,
}

#[derive(Debug, Clone)]
enum CCond {
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

/// Where an aggregate query's output value comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Src {
    Group(usize),
    Acc(usize),
}

#[derive(Debug, Clone)]
struct AggPlan {
    groups: Vec<FieldRef>,
    /// Distinct aggregate expressions (select list, HAVING, ORDER BY).
    accs: Vec<(AggFn, Option<FieldRef>)>,
    outs: Vec<(String, Src)>,
    having: Option<CCond>,
    order: Vec<(Src, bool, bool)>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub obj: usize,
    pub count_only: bool,
    cols: Vec<Col>,
    filter: Option<CCond>,
    order: Vec<(FieldRef, bool, bool)>,
    limit: Option<u64>,
    offset: Option<u64>,
    agg: Option<AggPlan>,
}

impl Plan {
    /// An aggregate query (aggregate functions or GROUP BY): rendered by [`execute_aggregate`].
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
struct Ctx<'a> {
    schema: &'a Schema,
    today: i64,
}

fn no_such_column(p: &Path, seg: &str, obj: &ObjectDef) -> SoqlError {
    SoqlError::at(
        "INVALID_FIELD",
        format!(
            "No such column '{seg}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
            obj.name
        ),
        p.pos,
    )
}

/// Resolves `A.B.Field` from `obj`. Also returns the canonical names along the path.
pub fn resolve(schema: &Schema, obj: usize, p: &Path) -> Result<(FieldRef, Vec<String>), SoqlError> {
    let mut segs: Vec<&str> = p.text.split('.').collect();
    let root = &schema.objects[obj];
    // `Account.Name` in `FROM Account` may name the object itself.
    if segs.len() > 1 && segs[0].eq_ignore_ascii_case(&root.name) && root.relationship(segs[0]).is_none() {
        segs.remove(0);
    }
    let mut cur = vec![obj];
    let mut hops = vec![];
    let mut names = vec![];
    for seg in &segs[..segs.len() - 1] {
        let hop: Vec<(usize, usize)> = cur.iter().filter_map(|&o| schema.objects[o].relationship(seg).map(|fi| (o, fi))).collect();
        let Some(&(o0, f0)) = hop.first() else {
            return Err(SoqlError::at(
                "INVALID_FIELD",
                format!("Didn't understand relationship '{seg}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."),
                p.pos,
            ));
        };
        names.push(schema.objects[o0].fields[f0].relationship_name.clone().unwrap_or_default());
        let mut next: Vec<usize> = vec![];
        for &(o, fi) in &hop {
            for target in &schema.objects[o].fields[fi].reference_to {
                if let Some(t) = schema.object(target) {
                    if !next.contains(&t) {
                        next.push(t);
                    }
                }
            }
        }
        hops.push(hop);
        cur = next;
    }
    let leaf_name = segs[segs.len() - 1];
    let leaf: Vec<(usize, usize)> = cur.iter().filter_map(|&o| schema.objects[o].field(leaf_name).map(|fi| (o, fi))).collect();
    let Some(&(lo, lf)) = leaf.first() else {
        return Err(no_such_column(p, leaf_name, &schema.objects[cur[0]]));
    };
    let fd = &schema.objects[lo].fields[lf];
    names.push(fd.name.clone());
    Ok((FieldRef { hops, leaf, ftype: fd.ftype }, names))
}

fn lit_value(fr: &FieldRef, schema: &Schema, field: &str, lit: &Lit, pos: usize) -> Result<Value, SoqlError> {
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

fn leaf_def<'a>(schema: &'a Schema, fr: &FieldRef) -> &'a crate::schema::FieldDef {
    let (o, f) = fr.leaf[0];
    &schema.objects[o].fields[f]
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
    let (a, b) = super::dates::range(name, n, ctx.today).ok_or_else(|| SoqlError::malformed(format!("unexpected token: '{name}'"), pos))?;
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

fn compile_cond(ctx: Ctx, obj: usize, c: &Cond) -> Result<CCond, SoqlError> {
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
            let (fr, _) = resolve(schema, obj, field)?;
            if !matches!(fr.ftype, FieldType::Id | FieldType::Reference) {
                return Err(SoqlError::at(
                    "INVALID_FIELD",
                    format!("Field {} must be an Id or a reference field to be used in a semi join", leaf_def(schema, &fr).name),
                    field.pos,
                ));
            }
            if query.select.len() != 1 || !query.group_by.is_empty() {
                return Err(SoqlError::malformed("The selected field in a semi join must be a single Id or reference field", *value_pos));
            }
            let SelectItem::Field(p, None) = &query.select[0] else {
                return Err(SoqlError::malformed("The selected field in a semi join must be a single Id or reference field", *value_pos));
            };
            let plan = compile_in(ctx, query, false)?;
            let (sub_fr, _) = resolve(schema, plan.obj, p)?;
            if !matches!(sub_fr.ftype, FieldType::Id | FieldType::Reference) {
                return Err(SoqlError::at(
                    "INVALID_FIELD",
                    format!("Field {} must be an Id or a reference field to be used in a semi join", leaf_def(schema, &sub_fr).name),
                    p.pos,
                ));
            }
            CCond::InQuery(fr, *negated, Arc::new(SemiJoin { plan, field: sub_fr, ids: OnceLock::new() }))
        }
        Cond::AggCmp { agg, .. } => {
            return Err(SoqlError::malformed("Aggregate functions are only allowed in the SELECT list, HAVING and ORDER BY", agg.pos));
        }
    })
}

fn add_col(cols: &mut Vec<Col>, fr: &FieldRef, names: &[String], depth: usize) {
    if depth == fr.hops.len() {
        if !cols.iter().any(|c| matches!(c, Col::Field { name, .. } if name == &names[depth])) {
            cols.push(Col::Field { name: names[depth].clone(), fields: fr.leaf.clone() });
        }
        return;
    }
    let pos = cols.iter().position(|c| matches!(c, Col::Rel { name, .. } if name == &names[depth]));
    let pos = pos.unwrap_or_else(|| {
        cols.push(Col::Rel { name: names[depth].clone(), fields: fr.hops[depth].clone(), children: vec![] });
        cols.len() - 1
    });
    if let Col::Rel { children, .. } = &mut cols[pos] {
        add_col(children, fr, names, depth + 1);
    }
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

fn aggregatable(func: AggFn, t: FieldType, fd: &crate::schema::FieldDef) -> bool {
    match func {
        AggFn::Sum | AggFn::Avg => t.is_numeric(),
        _ => !matches!(t, FieldType::Boolean | FieldType::MultiPicklist | FieldType::Address) && fd.filterable(),
    }
}

fn groupable(fd: &crate::schema::FieldDef) -> bool {
    !matches!(fd.ftype, FieldType::MultiPicklist | FieldType::Address | FieldType::Double | FieldType::Currency | FieldType::Percent)
        && fd.filterable()
}

/// Index of an aggregate expression in `accs`, adding it (checked against its field's type).
fn acc_index(
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

fn compile_having(
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

/// The child relationship `name` of `parent`: (child object, its reference field, canonical name).
fn child_relationship(schema: &Schema, parent: usize, name: &str) -> Option<(usize, usize, String)> {
    let pname = &schema.objects[parent].name;
    schema.objects.iter().enumerate().find_map(|(o, def)| {
        def.fields.iter().enumerate().find_map(|(fi, fd)| {
            let rel = fd.child_relationship.as_deref()?;
            (rel.eq_ignore_ascii_case(name) && fd.reference_to.iter().any(|r| r == pname)).then(|| (o, fi, rel.to_string()))
        })
    })
}

fn compile_in(ctx: Ctx, q: &Query, top: bool) -> Result<Plan, SoqlError> {
    let schema = ctx.schema;
    let obj = schema.object(&q.from.text).ok_or_else(|| invalid_type(&q.from))?;
    compile_on(ctx, q, obj, top)
}

fn compile_on(ctx: Ctx, q: &Query, obj: usize, top: bool) -> Result<Plan, SoqlError> {
    let schema = ctx.schema;
    let is_agg = !q.group_by.is_empty() || q.having.is_some() || q.select.iter().any(|i| matches!(i, SelectItem::Agg(..)));
    let mut cols = vec![];
    let mut count_only = false;
    let mut first_field = None;
    // Aggregate query parts.
    let mut groups: Vec<(String, FieldRef)> = vec![];
    let mut accs = vec![];
    let mut keys = vec![];
    let mut outs: Vec<(String, Src)> = vec![];
    if is_agg {
        for p in &q.group_by {
            let (fr, names) = resolve(schema, obj, p)?;
            let fd = leaf_def(schema, &fr);
            if !groupable(fd) {
                return Err(SoqlError::at("INVALID_FIELD", format!("field '{}' can not be grouped in a query call", fd.name), p.pos));
            }
            groups.push((names.join("."), fr));
        }
    }
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
                let Some((cobj, cfield, cname)) = child_relationship(schema, obj, &sub.from.text) else {
                    return Err(SoqlError::at(
                        "INVALID_TYPE",
                        format!("Didn't understand relationship '{}' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.", sub.from.text),
                        sub.from.pos,
                    ));
                };
                let plan = compile_on(ctx, sub, cobj, false)?;
                if plan.is_aggregate() || plan.count_only {
                    return Err(SoqlError::malformed("aggregate functions are not allowed in relationship subqueries", *pos));
                }
                cols.push(Col::Child { name: cname, obj: cobj, field: cfield, plan: Box::new(plan) });
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
            let src = match &o.agg {
                Some(a) => Src::Acc(acc_index(ctx, obj, &mut accs, &mut keys, a)?),
                None => {
                    let (_, names) = resolve(schema, obj, &o.field)?;
                    let full = names.join(".");
                    match groups.iter().position(|(n, _)| n.eq_ignore_ascii_case(&full)) {
                        Some(gi) => Src::Group(gi),
                        None => {
                            return Err(SoqlError::malformed(format!("Ordered field must be grouped or aggregated: {full}"), o.field.pos))
                        }
                    }
                }
            };
            agg_order.push((src, o.desc, o.nulls_last));
            continue;
        }
        if let Some(a) = &o.agg {
            return Err(SoqlError::malformed("Aggregate functions are only allowed in aggregate queries", a.pos));
        }
        let (fr, _) = resolve(schema, obj, &o.field)?;
        let fd = leaf_def(schema, &fr);
        if !fd.filterable() {
            return Err(SoqlError::at("INVALID_FIELD", format!("field '{}' can not be sorted in a query call", fd.name), o.field.pos));
        }
        order.push((fr, o.desc, o.nulls_last));
    }
    let agg = if is_agg {
        let having = q.having.as_ref().map(|h| compile_having(ctx, obj, h, &groups, &mut accs, &mut keys)).transpose()?;
        Some(AggPlan { groups: groups.into_iter().map(|(_, fr)| fr).collect(), accs, outs, having, order: agg_order })
    } else {
        None
    };
    if let Some(off) = q.offset {
        if off > 2000 {
            return Err(SoqlError {
                code: "NUMBER_OUTSIDE_VALID_RANGE",
                message: format!("Maximum SOQL offset allowed is 2000, but got {off}"),
                pos: None,
            });
        }
    }
    Ok(Plan { obj, count_only, cols, filter, order, limit: q.limit, offset: q.offset, agg })
}

/// Salesforce ordering/equality: text case-insensitive, numbers numeric.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Some(x.chars().flat_map(char::to_lowercase).cmp(y.chars().flat_map(char::to_lowercase))),
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Int(x), Value::Num(y)) => (*x as f64).partial_cmp(y),
        (Value::Num(x), Value::Int(y)) => x.partial_cmp(&(*y as f64)),
        (Value::Num(x), Value::Num(y)) => x.partial_cmp(y),
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
fn cmp_value(v: &Value, op: CmpOp, lit: &Value) -> bool {
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

fn eval(c: &CCond, schema: &Schema, store: &Store, obj: usize, rec: &Record) -> bool {
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
            let ids = sj.ids.get_or_init(|| {
                let seqs = execute(&sj.plan, schema, store, false);
                let table = &store.tables[sj.plan.obj];
                seqs.iter()
                    .filter_map(|s| table.recs.get(s))
                    .filter_map(|r| sj.field.get(schema, store, sj.plan.obj, r).as_str().map(Box::from))
                    .collect()
            });
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

/// Runs the plan: matching record seqs in result order, OFFSET/LIMIT applied.
pub fn execute(plan: &Plan, schema: &Schema, store: &Store, include_deleted: bool) -> Vec<u64> {
    let table = &store.tables[plan.obj];
    select(plan, schema, store, include_deleted, table.recs.iter())
}

fn select<'s>(
    plan: &Plan,
    schema: &Schema,
    store: &'s Store,
    include_deleted: bool,
    recs: impl Iterator<Item = (&'s u64, &'s Record)>,
) -> Vec<u64> {
    let def = &schema.objects[plan.obj];
    let hits = recs
        .filter(|(_, r)| include_deleted || !is_deleted(def, r))
        .filter(|(_, r)| plan.filter.as_ref().is_none_or(|c| eval(c, schema, store, plan.obj, r)));
    let off = plan.offset.unwrap_or(0) as usize;
    let lim = plan.limit.map(|l| l as usize).unwrap_or(usize::MAX);
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

fn sort_key(v: &Value) -> Value {
    match v {
        Value::Str(s) => Value::Str(s.to_lowercase().into()),
        other => other.clone(),
    }
}

/// Compares decorated sort keys; `dirs` is (descending, nulls last) per key.
fn cmp_keys(ka: &[Value], kb: &[Value], dirs: &[(bool, bool)]) -> Ordering {
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
        let num = match v {
            Value::Int(i) => *i as f64,
            Value::Num(n) => *n,
            _ => 0.0,
        };
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
    let off = plan.offset.unwrap_or(0) as usize;
    let lim = plan.limit.map(|l| l as usize).unwrap_or(usize::MAX);
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

/// A field's JSON value, computing compound addresses from their parts.
pub fn field_json(def: &ObjectDef, rec: &Record, fi: usize) -> Json {
    let fd = &def.fields[fi];
    if let Derived::Address(prefix) = &fd.derived {
        let part = |n: &str| def.field(&format!("{prefix}{n}")).map(|i| rec.get(i).to_json()).unwrap_or(Json::Null);
        let parts = ["City", "Country", "PostalCode", "State", "Street"].map(part);
        if parts.iter().all(Json::is_null) {
            return Json::Null;
        }
        let [city, country, postal, state, street] = parts;
        return json!({"city": city, "country": country, "geocodeAccuracy": null, "latitude": null,
                      "longitude": null, "postalCode": postal, "state": state, "street": street});
    }
    rec.get(fi).to_json()
}

fn render_cols(cols: &[Col], schema: &Schema, store: &Store, obj: usize, rec: &Record, version: &str) -> Vec<(String, Out)> {
    let def = &schema.objects[obj];
    let mut out = vec![("attributes".to_string(), attributes(&def.name, version, rec.get(0).as_str().unwrap_or("")))];
    for c in cols {
        match c {
            Col::Field { name, fields } => {
                let v = fields.iter().find(|(o, _)| *o == obj).map(|&(_, fi)| field_json(def, rec, fi)).unwrap_or(Json::Null);
                out.push((name.clone(), Out::J(v)));
            }
            Col::Rel { name, fields, children } => {
                let parent =
                    fields.iter().find(|(o, _)| *o == obj).and_then(|&(_, fi)| rec.get(fi).as_str()).and_then(|id| store.find(schema, id));
                let v = match parent {
                    Some((po, seq)) => Out::O(render_cols(children, schema, store, po, &store.tables[po].recs[&seq], version)),
                    None => Out::J(Json::Null),
                };
                out.push((name.clone(), v));
            }
            Col::Child { name, obj: cobj, field, plan } => {
                let id = rec.get(0).as_str().unwrap_or("");
                let table = &store.tables[*cobj];
                let seqs = select(plan, schema, store, false, table.recs.iter().filter(|(_, r)| r.get(*field).as_str() == Some(id)));
                let v = if seqs.is_empty() {
                    Out::J(Json::Null)
                } else {
                    let records: Vec<Out> = seqs
                        .iter()
                        .filter_map(|s| table.recs.get(s))
                        .map(|r| Out::O(render_cols(&plan.cols, schema, store, *cobj, r, version)))
                        .collect();
                    Out::O(vec![
                        ("totalSize".into(), Out::J(json!(records.len()))),
                        ("done".into(), Out::J(Json::Bool(true))),
                        ("records".into(), Out::A(records)),
                    ])
                };
                out.push((name.clone(), v));
            }
        }
    }
    out
}

/// One result row, or None if the record vanished since the query ran.
pub fn render(plan: &Plan, schema: &Schema, store: &Store, seq: u64, version: &str) -> Option<Out> {
    let rec = store.tables[plan.obj].recs.get(&seq)?;
    Some(Out::O(render_cols(&plan.cols, schema, store, plan.obj, rec, version)))
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
