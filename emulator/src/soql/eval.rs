//! Compiles a parsed query against the schema (names, types, literals) and runs it over the
//! store: filter in one scan, sort once, then pages render from the matched-ID snapshot.

use super::parser::{CmpOp, Cond, Lit, Path, Query, SelectItem};
use super::SoqlError;
use crate::ids;
use crate::out::{attributes, Out};
use crate::schema::{Derived, FieldType, ObjectDef, Schema};
use crate::store::{is_deleted, Record, Store};
use crate::value::{Value, NULL};
use serde_json::{json, Value as Json};
use std::cmp::Ordering;

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
    Field { name: String, fields: Vec<(usize, usize)> },
    Rel { name: String, fields: Vec<(usize, usize)>, children: Vec<Col> },
}

#[derive(Debug, Clone)]
enum CCond {
    And(Vec<CCond>),
    Or(Vec<CCond>),
    Not(Box<CCond>),
    Cmp(FieldRef, CmpOp, Value),
    In(FieldRef, bool, Vec<Value>),
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
        let hop: Vec<(usize, usize)> =
            cur.iter().filter_map(|&o| schema.objects[o].relationship(seg).map(|fi| (o, fi))).collect();
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

fn compile_cond(schema: &Schema, obj: usize, c: &Cond) -> Result<CCond, SoqlError> {
    Ok(match c {
        Cond::And(v) => CCond::And(v.iter().map(|c| compile_cond(schema, obj, c)).collect::<Result<_, _>>()?),
        Cond::Or(v) => CCond::Or(v.iter().map(|c| compile_cond(schema, obj, c)).collect::<Result<_, _>>()?),
        Cond::Not(c) => CCond::Not(Box::new(compile_cond(schema, obj, c)?)),
        Cond::Cmp { field, op, value, value_pos } => {
            let (fr, _) = resolve(schema, obj, field)?;
            let fd = leaf_def(schema, &fr);
            if !fd.filterable() {
                return Err(SoqlError::at("INVALID_FIELD", format!("field '{}' can not be filtered in query call", fd.name), field.pos));
            }
            let v = lit_value(&fr, schema, &fd.name, value, *value_pos)?;
            if *op == CmpOp::Like {
                if !(fr.ftype.is_text() || matches!(fr.ftype, FieldType::Id | FieldType::Reference)) {
                    return Err(SoqlError::at("INVALID_FIELD", format!("invalid operator on {} field: LIKE", fr.ftype.api_name()), field.pos));
                }
            } else {
                check_id_literal(&fr, &v, *value_pos)?;
            }
            CCond::Cmp(fr, *op, v)
        }
        Cond::In { field, negated, values, value_pos } => {
            let (fr, _) = resolve(schema, obj, field)?;
            let fd = leaf_def(schema, &fr);
            let name = fd.name.clone();
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

pub fn compile(schema: &Schema, q: &Query) -> Result<Plan, SoqlError> {
    let obj = schema.object(&q.from.text).ok_or_else(|| {
        SoqlError::at(
            "INVALID_TYPE",
            format!("sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.", q.from.text),
            q.from.pos,
        )
    })?;
    let mut cols = vec![];
    let mut count_only = false;
    let mut first_field = None;
    for item in &q.select {
        match item {
            SelectItem::CountAll(_) => count_only = true,
            SelectItem::Field(p) => {
                let (fr, names) = resolve(schema, obj, p)?;
                first_field.get_or_insert((p.clone(), names.join(".")));
                add_col(&mut cols, &fr, &names, 0);
            }
        }
    }
    if count_only {
        if let Some((p, name)) = first_field {
            return Err(SoqlError::malformed(format!("Field must be grouped or aggregated: {name}"), p.pos));
        }
    }
    let filter = q.filter.as_ref().map(|c| compile_cond(schema, obj, c)).transpose()?;
    let mut order = vec![];
    for o in &q.order {
        let (fr, _) = resolve(schema, obj, &o.field)?;
        let fd = leaf_def(schema, &fr);
        if !fd.filterable() {
            return Err(SoqlError::at("INVALID_FIELD", format!("field '{}' can not be sorted in a query call", fd.name), o.field.pos));
        }
        order.push((fr, o.desc, o.nulls_last));
    }
    if let Some(off) = q.offset {
        if off > 2000 {
            return Err(SoqlError {
                code: "NUMBER_OUTSIDE_VALID_RANGE",
                message: format!("Maximum SOQL offset allowed is 2000, but got {off}"),
                pos: None,
            });
        }
    }
    Ok(Plan { obj, count_only, cols, filter, order, limit: q.limit, offset: q.offset })
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

fn eval(c: &CCond, schema: &Schema, store: &Store, obj: usize, rec: &Record) -> bool {
    match c {
        CCond::And(v) => v.iter().all(|c| eval(c, schema, store, obj, rec)),
        CCond::Or(v) => v.iter().any(|c| eval(c, schema, store, obj, rec)),
        CCond::Not(c) => !eval(c, schema, store, obj, rec),
        CCond::Cmp(fr, op, lit) => {
            let v = fr.get(schema, store, obj, rec);
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
        CCond::In(fr, negated, vals) => {
            let v = fr.get(schema, store, obj, rec);
            let hit = vals.iter().any(|l| if l.is_null() { v.is_null() } else { compare(v, l) == Some(Ordering::Equal) });
            hit != *negated
        }
    }
}

/// Runs the plan: matching record seqs in result order, OFFSET/LIMIT applied.
pub fn execute(plan: &Plan, schema: &Schema, store: &Store, include_deleted: bool) -> Vec<u64> {
    let def = &schema.objects[plan.obj];
    let table = &store.tables[plan.obj];
    let hits = table
        .recs
        .iter()
        .filter(|(_, r)| include_deleted || !is_deleted(def, r))
        .filter(|(_, r)| plan.filter.as_ref().is_none_or(|c| eval(c, schema, store, plan.obj, r)));
    let off = plan.offset.unwrap_or(0) as usize;
    let lim = plan.limit.map(|l| l as usize).unwrap_or(usize::MAX);
    if plan.order.is_empty() {
        return hits.skip(off).take(lim).map(|(s, _)| *s).collect();
    }
    // Decorate-sort-undecorate: sort keys are computed once per row (text lowercased), so the
    // comparisons themselves are cheap even for a million rows.
    let sort_key = |v: &Value| match v {
        Value::Str(s) => Value::Str(s.to_lowercase().into()),
        other => other.clone(),
    };
    let mut keyed: Vec<(Vec<Value>, u64)> = hits
        .map(|(s, r)| (plan.order.iter().map(|(fr, _, _)| sort_key(fr.get(schema, store, plan.obj, r))).collect(), *s))
        .collect();
    keyed.sort_unstable_by(|(ka, sa), (kb, sb)| {
        for (i, (_, desc, nulls_last)) in plan.order.iter().enumerate() {
            let (a, b) = (&ka[i], &kb[i]);
            let o = match (a.is_null(), b.is_null()) {
                (true, true) => Ordering::Equal,
                (true, false) => if *nulls_last { Ordering::Greater } else { Ordering::Less },
                (false, true) => if *nulls_last { Ordering::Less } else { Ordering::Greater },
                _ => {
                    let o = match (a, b) {
                        (Value::Str(x), Value::Str(y)) => x.cmp(y),
                        _ => compare(a, b).unwrap_or(Ordering::Equal),
                    };
                    if *desc { o.reverse() } else { o }
                }
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        sa.cmp(sb)
    });
    keyed.into_iter().skip(off).take(lim).map(|(_, s)| s).collect()
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
                let parent = fields
                    .iter()
                    .find(|(o, _)| *o == obj)
                    .and_then(|&(_, fi)| rec.get(fi).as_str())
                    .and_then(|id| store.find(schema, id));
                let v = match parent {
                    Some((po, seq)) => Out::O(render_cols(children, schema, store, po, &store.tables[po].recs[&seq], version)),
                    None => Out::J(Json::Null),
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
