//! Runtime field changes (the admin surface's `/__emulator/fields`): add, remove, rename and
//! retype a custom field, as a Setup user would. Each returns the changed schema; the caller
//! moves stored values to match (`Slots`, `store::Table::rewrite`) and follows the change in
//! validation rules and automations (routes/fields.rs).

use super::calc::Expr;
use super::{file, Derived, FieldType, Schema};
use serde::Deserialize;
use serde_json::Value as Json;

/// What a change does to the object's stored values.
pub enum Slots {
    Keep,
    /// The field at this position is gone: its values are dropped, later slots move down.
    Removed(usize),
    /// The field at this position changed type or size: values are converted or cleared.
    Retyped(usize),
}

pub struct Altered {
    pub schema: Schema,
    pub slots: Slots,
}

/// `PATCH /__emulator/fields/{object}/{field}`: any subset of these.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FieldPatch {
    pub name: Option<String>,
    pub label: Option<String>,
    #[serde(rename = "type")]
    pub ftype: Option<String>,
    pub length: Option<u32>,
    pub precision: Option<u32>,
    pub scale: Option<u32>,
    pub digits: Option<u32>,
    pub picklist_values: Option<Vec<String>>,
    pub external_id: Option<bool>,
    pub unique: Option<bool>,
    pub required: Option<bool>,
}

fn custom_field(schema: &Schema, obj: usize, name: &str) -> Result<usize, String> {
    let def = &schema.objects[obj];
    let fi = def.field(name).ok_or_else(|| format!("unknown field {}.{name}", def.name))?;
    if !def.fields[fi].custom {
        return Err(format!("{}.{} is a standard field: only custom fields (…__c) can be changed", def.name, def.fields[fi].name));
    }
    Ok(fi)
}

/// Bumps the describe's Last-Modified of `obj` and of the objects `field` looks up (their
/// childRelationships change too). Strictly later by a second: HTTP dates have no millis.
fn touch(schema: &mut Schema, obj: usize, field: usize, now_ms: i64) {
    let mut objs = vec![obj];
    objs.extend(schema.objects[obj].fields[field].reference_to.iter().filter_map(|t| schema.object(t)));
    for o in objs {
        let o = &mut schema.objects[o];
        o.modified_ms = now_ms.max(o.modified_ms + 1000);
    }
}

pub fn add(old: &Schema, obj: usize, spec: Json, now_ms: i64) -> Result<Altered, String> {
    let mut s = old.clone();
    let fi = file::add_field(&mut s, obj, spec)?;
    touch(&mut s, obj, fi, now_ms);
    Ok(Altered { schema: s, slots: Slots::Keep })
}

fn remap_expr(schema: &Schema, obj: usize, e: &Expr, f: &impl Fn(usize, usize) -> Option<usize>) -> Option<Expr> {
    Some(match e {
        Expr::Num(n) => Expr::Num(*n),
        Expr::Neg(x) => Expr::Neg(Box::new(remap_expr(schema, obj, x, f)?)),
        Expr::Bin(op, l, r) => Expr::Bin(*op, Box::new(remap_expr(schema, obj, l, f)?), Box::new(remap_expr(schema, obj, r, f)?)),
        Expr::Field { hops, leaf } => {
            let (mut cur, mut new_hops) = (obj, vec![]);
            for &h in hops {
                new_hops.push(f(cur, h)?);
                cur = schema.objects[cur].fields[h].reference_to.first().and_then(|t| schema.object(t))?;
            }
            Expr::Field { hops: new_hops, leaf: f(cur, *leaf)? }
        }
    })
}

/// Every calculated field's definition with its positions mapped by `f` (None: the position is
/// gone); Err names the first calculated field that used a gone position. `skip` is left out.
fn remap_derived(
    schema: &Schema,
    skip: (usize, usize),
    f: impl Fn(usize, usize) -> Option<usize>,
) -> Result<Vec<(usize, usize, Derived)>, String> {
    let mut out = vec![];
    for (o, def) in schema.objects.iter().enumerate() {
        for (fi, fd) in def.fields.iter().enumerate() {
            let owner = || format!("the calculated field {}.{}", def.name, fd.name);
            let d = match &fd.derived {
                _ if (o, fi) == skip => continue,
                Derived::Formula(src, e) => Derived::Formula(src.clone(), remap_expr(schema, o, e, &f).ok_or_else(owner)?),
                Derived::Rollup(r) => {
                    let mut r = r.clone();
                    r.via = f(r.child, r.via).ok_or_else(owner)?;
                    r.field = match r.field {
                        Some(x) => Some(f(r.child, x).ok_or_else(owner)?),
                        None => None,
                    };
                    Derived::Rollup(r)
                }
                _ => continue,
            };
            out.push((o, fi, d));
        }
    }
    Ok(out)
}

pub fn remove(old: &Schema, obj: usize, name: &str, now_ms: i64) -> Result<Altered, String> {
    let fi = custom_field(old, obj, name)?;
    let def = &old.objects[obj];
    let refused = |by: String| format!("Cannot delete {}.{}: it is referenced by {by}", def.name, def.fields[fi].name);
    let shift = |o: usize, p: usize| match (o == obj, p.cmp(&fi)) {
        (false, _) | (true, std::cmp::Ordering::Less) => Some(p),
        (true, std::cmp::Ordering::Equal) => None,
        (true, std::cmp::Ordering::Greater) => Some(p - 1),
    };
    let derived = remap_derived(old, (obj, fi), shift).map_err(refused)?;
    let mut s = old.clone();
    touch(&mut s, obj, fi, now_ms);
    for (o, f, d) in derived {
        s.objects[o].fields[f].derived = d;
    }
    s.objects[obj].fields.remove(fi);
    s.objects[obj].reindex();
    Ok(Altered { schema: s, slots: Slots::Removed(fi) })
}

/// Rename and/or retype (type, size, picklist values, external ID, required).
pub fn update(old: &Schema, obj: usize, name: &str, p: FieldPatch, now_ms: i64) -> Result<Altered, String> {
    let fi = custom_field(old, obj, name)?;
    let mut s = old.clone();
    let def = &mut s.objects[obj];
    let object = def.name.clone();
    let mut fd = def.fields[fi].clone();
    let old_name = fd.name.clone();
    let retyped = p.ftype.is_some() || p.length.is_some() || p.precision.is_some() || p.scale.is_some() || p.digits.is_some();
    if retyped && fd.calculated {
        return Err(format!("{object}.{old_name} is a calculated field: its type can't be changed"));
    }
    if retyped {
        if let Err(by) = remap_derived(old, (obj, fi), |o, q| (o != obj || q != fi).then_some(q)) {
            return Err(format!("Cannot change the type of {object}.{old_name}: it is referenced by {by}"));
        }
    }
    if let Some(t) = &p.ftype {
        let t = FieldType::from_api_name(t).ok_or_else(|| format!("unknown type {t:?}"))?;
        let fixed = [FieldType::Id, FieldType::Reference, FieldType::Address];
        if t != fd.ftype && (fixed.contains(&t) || fixed.contains(&fd.ftype)) {
            return Err(format!(
                "{object}.{old_name}: changing to or from {} is not supported",
                if fixed.contains(&t) { t } else { fd.ftype }.api_name()
            ));
        }
        if t != fd.ftype {
            let mut n = super::FieldDef::new(&fd.name, &fd.label, t);
            n.external_id = fd.external_id && !matches!(t, FieldType::Boolean | FieldType::Date | FieldType::DateTime);
            n.unique = fd.unique && n.external_id;
            n.id_lookup = n.external_id;
            if matches!(t, FieldType::Picklist | FieldType::MultiPicklist | FieldType::Combobox) {
                n.picklist = fd.picklist.clone();
            }
            if t != FieldType::Boolean {
                n.nillable = fd.nillable;
            }
            fd = n;
        }
    }
    if let Some(n) = p.length {
        fd.length = n;
    }
    if let Some(n) = p.precision {
        fd.precision = n;
    }
    if let Some(n) = p.scale {
        fd.scale = n;
    }
    if let Some(n) = p.digits {
        fd.digits = n;
    }
    if let Some(v) = p.picklist_values {
        fd.picklist = v;
    }
    if let Some(x) = p.external_id {
        fd.external_id = x;
        fd.id_lookup = x;
    }
    if let Some(u) = p.unique {
        fd.unique = u;
    }
    if let Some(r) = p.required {
        fd.nillable = !r || fd.ftype == FieldType::Boolean;
    }
    if let Some(l) = p.label {
        fd.label = l;
    }
    if let Some(n) = p.name {
        if !n.ends_with("__c") {
            return Err(format!("custom field {n} must end with __c"));
        }
        if def.field(&n).is_some_and(|x| x != fi) {
            return Err(format!("{object}.{n} already exists"));
        }
        if fd.relationship_name.as_deref() == Some(&old_name.replace("__c", "__r")) {
            fd.relationship_name = Some(n.replace("__c", "__r"));
        }
        fd.name = n;
    }
    def.fields[fi] = fd;
    def.reindex();
    touch(&mut s, obj, fi, now_ms);
    Ok(Altered { schema: s, slots: if retyped { Slots::Retyped(fi) } else { Slots::Keep } })
}
