//! Custom objects and fields from a JSON schema file (format documented in README.md).

use super::standard::object;
use super::{calc, Derived, FieldDef, FieldType, ObjectDef, Schema};
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SchemaFile {
    #[serde(default)]
    objects: Vec<ObjectSpec>,
    /// Extra custom fields on existing (standard or custom) objects, keyed by object name.
    #[serde(default)]
    fields: std::collections::BTreeMap<String, Vec<FieldSpec>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ObjectSpec {
    name: String,
    label: Option<String>,
    label_plural: Option<String>,
    key_prefix: Option<String>,
    /// Length of the required `Name` text field (default 80).
    name_length: Option<u32>,
    #[serde(default)]
    fields: Vec<FieldSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FieldSpec {
    name: String,
    label: Option<String>,
    #[serde(rename = "type")]
    ftype: String,
    length: Option<u32>,
    precision: Option<u32>,
    scale: Option<u32>,
    digits: Option<u32>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    external_id: bool,
    #[serde(default)]
    unique: bool,
    createable: Option<bool>,
    updateable: Option<bool>,
    #[serde(default)]
    reference_to: Vec<String>,
    relationship_name: Option<String>,
    child_relationship_name: Option<String>,
    #[serde(default)]
    picklist_values: Vec<String>,
    #[serde(default)]
    restricted_picklist: bool,
    default_value: Option<String>,
    /// A formula field (see calc.rs for the subset): calculated, read-only.
    formula: Option<String>,
    /// A roll-up summary field: calculated, read-only.
    rollup: Option<RollupSpec>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RollupSpec {
    /// COUNT, SUM, MIN or MAX.
    function: String,
    /// The child object summarized, and its lookup to this object.
    object: String,
    via: String,
    /// The child field (not for COUNT).
    field: Option<String>,
}

/// A calculated field waiting for every object to be known: (object, field, spec).
enum Pending {
    Formula(String, String, String),
    Rollup(String, String, RollupSpec),
}

fn build_field(s: FieldSpec, object: &str, pending: &mut Vec<Pending>) -> Result<FieldDef, String> {
    let t = FieldType::from_api_name(&s.ftype).ok_or_else(|| format!("field {}: unknown type {:?}", s.name, s.ftype))?;
    if !s.name.ends_with("__c") {
        return Err(format!("custom field {} must end with __c", s.name));
    }
    let label = s.label.clone().unwrap_or_else(|| s.name.trim_end_matches("__c").replace('_', " "));
    let mut f = FieldDef::new(&s.name, &label, t);
    if let Some(n) = s.length {
        f.length = n;
    }
    if let Some(p) = s.precision {
        f.precision = p;
    }
    if let Some(sc) = s.scale {
        f.scale = sc;
    }
    if let Some(d) = s.digits {
        f.digits = d;
    }
    if s.required {
        f = f.required();
    }
    if s.external_id {
        f.external_id = true;
        f.id_lookup = true;
    }
    f.unique = s.unique;
    f.createable = s.createable.unwrap_or(true);
    f.updateable = s.updateable.unwrap_or(true);
    if t == FieldType::Reference {
        if s.reference_to.is_empty() {
            return Err(format!("reference field {} needs referenceTo", s.name));
        }
        f.reference_to = s.reference_to;
        f.relationship_name = Some(s.relationship_name.unwrap_or_else(|| s.name.replace("__c", "__r")));
        f.child_relationship = s.child_relationship_name;
    }
    f.picklist = s.picklist_values;
    f.restricted_picklist = s.restricted_picklist;
    if let Some(d) = s.default_value {
        f = f.default_value(&d);
    }
    let calculated = match (s.formula, s.rollup) {
        (Some(_), Some(_)) => return Err(format!("field {}: formula or rollup, not both", s.name)),
        (Some(src), None) => Some(Pending::Formula(object.into(), s.name.clone(), src)),
        (None, Some(r)) => Some(Pending::Rollup(object.into(), s.name.clone(), r)),
        (None, None) => None,
    };
    if let Some(p) = calculated {
        if !t.is_numeric() {
            return Err(format!("field {}: calculated fields must be numeric (int, double, currency, percent)", s.name));
        }
        f = f.readonly();
        f.calculated = true;
        f.nillable = true;
        f.defaulted_on_create = false;
        pending.push(p);
    }
    Ok(f)
}

/// Parses `text` and merges it into `schema`.
pub fn apply(schema: &mut Schema, text: &str) -> Result<(), String> {
    let file: SchemaFile = serde_json::from_str(text).map_err(|e| format!("schema file: {e}"))?;
    let mut next_prefix = 0;
    let mut pending = vec![];
    for spec in file.objects {
        if !spec.name.ends_with("__c") {
            return Err(format!("custom object {} must end with __c", spec.name));
        }
        if schema.object(&spec.name).is_some() {
            return Err(format!("object {} defined twice", spec.name));
        }
        let prefix = match spec.key_prefix {
            Some(p) if p.len() == 3 && p.bytes().all(|b| b.is_ascii_alphanumeric()) => p,
            Some(p) => return Err(format!("object {}: keyPrefix {p:?} must be 3 alphanumerics", spec.name)),
            None => loop {
                let p = format!("a{next_prefix:02}");
                next_prefix += 1;
                if schema.by_prefix(&p).is_none() {
                    break p;
                }
            },
        };
        if schema.by_prefix(&prefix).is_some() {
            return Err(format!("object {}: keyPrefix {prefix} already used", spec.name));
        }
        let label = spec.label.unwrap_or_else(|| spec.name.trim_end_matches("__c").replace('_', " "));
        let plural = spec.label_plural.unwrap_or_else(|| format!("{label}s"));
        let mut name = FieldDef::new("Name", &format!("{label} Name"), FieldType::String).len(spec.name_length.unwrap_or(80));
        name.name_field = true;
        name.id_lookup = true;
        name.nillable = false;
        // Custom objects' Name is required but the UI defaults it; treat as required like the API.
        let mut own = vec![name];
        for f in spec.fields {
            own.push(build_field(f, &spec.name, &mut pending)?);
        }
        let mut o = object(&spec.name, &label, &plural, &prefix, own, true);
        // Keep custom fields after the system fields, as describe lists them.
        let pg = o.fields.iter().position(|f| f.name == "Postgres_Id__c").expect("pg id");
        let pgf = o.fields.remove(pg);
        let first_custom = o.fields.iter().position(|f| f.custom).unwrap_or(o.fields.len());
        o.fields.insert(first_custom, pgf);
        o.reindex();
        schema.objects.push(o);
        schema.reindex();
    }
    for (obj, fields) in file.fields {
        let idx = schema.object(&obj).ok_or_else(|| format!("fields for unknown object {obj}"))?;
        let o: &mut ObjectDef = &mut schema.objects[idx];
        for f in fields {
            let f = build_field(f, &obj, &mut pending)?;
            if o.field(&f.name).is_some() {
                return Err(format!("{obj}.{} defined twice", f.name));
            }
            o.fields.push(f);
        }
        o.reindex();
    }
    resolve(schema, pending)?;
    // References must point at known objects.
    for o in &schema.objects {
        for f in &o.fields {
            for r in &f.reference_to {
                if schema.object(r).is_none() {
                    return Err(format!("{}.{} references unknown object {r}", o.name, f.name));
                }
            }
        }
    }
    Ok(())
}

/// Adds one custom field given in the schema file's field format (admin field changes);
/// returns its position.
pub fn add_field(schema: &mut Schema, obj: usize, spec: serde_json::Value) -> Result<usize, String> {
    let spec: FieldSpec = serde_json::from_value(spec).map_err(|e| format!("field spec: {e}"))?;
    let object = schema.objects[obj].name.clone();
    let mut pending = vec![];
    let f = build_field(spec, &object, &mut pending)?;
    for r in &f.reference_to {
        if schema.object(r).is_none() {
            return Err(format!("{object}.{} references unknown object {r}", f.name));
        }
    }
    let o = &mut schema.objects[obj];
    if o.field(&f.name).is_some() {
        return Err(format!("{object}.{} already exists", f.name));
    }
    o.fields.push(f);
    o.reindex();
    resolve(schema, pending)?;
    Ok(schema.objects[obj].fields.len() - 1)
}

fn resolve(schema: &mut Schema, pending: Vec<Pending>) -> Result<(), String> {
    for p in pending {
        let (object, field) = match &p {
            Pending::Formula(o, f, _) | Pending::Rollup(o, f, _) => (o.clone(), f.clone()),
        };
        let obj = schema.object(&object).ok_or_else(|| format!("unknown object {object}"))?;
        let derived = match p {
            Pending::Formula(_, _, src) => {
                Derived::Formula(src.clone(), calc::parse(schema, obj, &src).map_err(|e| format!("{object}.{field}: {e}"))?)
            }
            Pending::Rollup(_, _, r) => {
                let err = |m: String| format!("{object}.{field}: rollup {m}");
                let func = calc::RollupFn::parse(&r.function).ok_or_else(|| err(format!("function {:?}", r.function)))?;
                let child = schema.object(&r.object).ok_or_else(|| err(format!("object {}", r.object)))?;
                let cdef = &schema.objects[child];
                let via = cdef.field(&r.via).ok_or_else(|| err(format!("via {}", r.via)))?;
                if !cdef.fields[via].reference_to.iter().any(|t| t.eq_ignore_ascii_case(&object)) {
                    return Err(err(format!("via {}: not a lookup to {object}", r.via)));
                }
                let child_field = match (&r.field, func) {
                    (None, calc::RollupFn::Count) => None,
                    (None, _) => return Err(err("needs a field".into())),
                    (Some(f), _) => {
                        let fi = cdef.field(f).ok_or_else(|| err(format!("field {f}")))?;
                        if !cdef.fields[fi].ftype.is_numeric() {
                            return Err(err(format!("field {f} is not numeric")));
                        }
                        Some(fi)
                    }
                };
                let source = format!(
                    "{}({}{}) via {}",
                    r.function.to_uppercase(),
                    r.object,
                    r.field.map(|f| format!(".{f}")).unwrap_or_default(),
                    r.via
                );
                Derived::Rollup(calc::Rollup { func, child, via, field: child_field, source })
            }
        };
        let o = &mut schema.objects[obj];
        let fi = o.field(&field).ok_or_else(|| format!("{object}.{field} missing"))?;
        o.fields[fi].derived = derived;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_custom_objects_and_fields() {
        let mut s = super::super::standard::default_schema();
        apply(
            &mut s,
            r#"{"objects":[{"name":"Invoice__c","fields":[
                {"name":"Amount__c","type":"currency","precision":16,"scale":2},
                {"name":"Account__c","type":"reference","referenceTo":["Account"]}]}],
               "fields":{"Account":[{"name":"Tier__c","type":"picklist","picklistValues":["Gold"]}]}}"#,
        )
        .unwrap();
        let inv = &s.objects[s.object("invoice__c").unwrap()];
        assert_eq!(inv.key_prefix, "a00");
        assert!(inv.field("Account__c").is_some());
        assert!(inv.relationship("Account__r").is_some());
        let acc = &s.objects[s.object("Account").unwrap()];
        assert!(acc.field("tier__c").is_some());
        assert!(apply(&mut s, r#"{"objects":[{"name":"Bad"}]}"#).is_err());
    }
}
