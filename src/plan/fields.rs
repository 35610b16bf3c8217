//! Resolving a table's columns against a Salesforce object's describe.

use super::check::Limits;
use super::compat;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Columns sfsync manages itself; never mapped to a field.
pub const SFID_COLUMN: &str = "sfid";

/// One mapped column, as stored in `sfsync.mappings.columns`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnMap {
    pub column: String,
    pub field: String,
    pub sf_type: String,
    pub pg_type: String,
    pub createable: bool,
    pub updateable: bool,
    /// A formula or roll-up summary field (describe `calculated`): read-only, and its value
    /// changes without SystemModstamp moving, so only the periodic refresh brings it.
    #[serde(default)]
    pub calculated: bool,
    /// What describe says a value must fit (length, precision, restricted picklist), checked
    /// before sending (`plan::check`). Empty for mappings made before 0.2.0.
    #[serde(default, skip_serializing_if = "Limits::is_empty")]
    pub limits: Limits,
}

/// What describe tells us about a field, reduced to what the mapping needs.
#[derive(Debug, Clone)]
pub struct FieldInfo {
    pub name: String,
    pub sf_type: String,
    pub createable: bool,
    pub updateable: bool,
    pub calculated: bool,
    pub limits: Limits,
    /// For the suggested column type in a refusal.
    pub precision: i64,
    pub scale: i64,
}

/// `last_name`, `LastName` and `lastname` all normalise to `lastname`.
fn normalize(name: &str) -> String {
    name.chars().filter(|c| *c != '_').flat_map(char::to_lowercase).collect()
}

fn normalize_field(name: &str) -> String {
    // Custom fields match without their __c suffix too: `region` ~ `Region__c`.
    let lower = name.to_ascii_lowercase();
    normalize(lower.strip_suffix("__c").unwrap_or(&lower))
}

/// Resolves the mapping. `explicit` is the user's `fields` argument ({column: field}).
/// With no explicit map, every column except the key and `sfid` whose name matches a field
/// (case- and underscore-insensitively) is mapped; the others are returned as unmatched.
pub fn resolve(
    columns: &[(String, String)],
    pk: &str,
    explicit: Option<&Map<String, Value>>,
    fields: &[FieldInfo],
    external_id: &str,
) -> Result<(Vec<ColumnMap>, Vec<String>), String> {
    let find_field = |name: &str| fields.iter().find(|f| f.name.eq_ignore_ascii_case(name));
    let pg_type_of = |col: &str| columns.iter().find(|(c, _)| c == col).map(|(_, t)| t.clone());
    let mut out = Vec::new();
    let mut unmatched = Vec::new();
    match explicit {
        Some(map) => {
            for (col, spec) in map {
                let (field, cast) = field_spec(col, spec)?;
                let pg_type = pg_type_of(col).ok_or_else(|| format!("fields: column \"{col}\" does not exist in the table"))?;
                if col == pk || col == SFID_COLUMN {
                    return Err(format!("fields: column \"{col}\" is managed by sfsync and cannot be mapped"));
                }
                let info = find_field(field)
                    .ok_or_else(|| format!("fields: Salesforce field \"{field}\" (for column \"{col}\") does not exist"))?;
                if info.name.eq_ignore_ascii_case("Id") || info.name.eq_ignore_ascii_case(external_id) {
                    return Err(format!("fields: field \"{}\" is managed by sfsync and cannot be mapped", info.name));
                }
                if !cast {
                    check_types(col, &pg_type, info)?;
                }
                out.push(column_map(col, pg_type, info));
            }
        }
        None => {
            for (col, pg_type) in columns {
                if col == pk || col == SFID_COLUMN {
                    continue;
                }
                // The field of that very name first (`region__c` is `Region__c`), then one
                // matching without case, underscores and the `__c` suffix.
                let wanted = normalize(col);
                let usable = |f: &&FieldInfo| !f.name.eq_ignore_ascii_case("Id") && !f.name.eq_ignore_ascii_case(external_id);
                let hit =
                    fields.iter().filter(usable).find(|f| f.name.eq_ignore_ascii_case(col)).or_else(|| {
                        fields.iter().filter(usable).find(|f| normalize(&f.name) == wanted || normalize_field(&f.name) == wanted)
                    });
                match hit {
                    Some(info) => {
                        check_types(col, pg_type, info)?;
                        out.push(column_map(col, pg_type.clone(), info))
                    }
                    None => unmatched.push(col.clone()),
                }
            }
        }
    }
    out.sort_by(|a, b| a.column.cmp(&b.column));
    // Two columns writing one field would make every push ambiguous.
    let mut seen = std::collections::HashMap::new();
    for c in &out {
        if let Some(other) = seen.insert(c.field.to_ascii_lowercase(), c.column.clone()) {
            return Err(format!("fields: columns \"{other}\" and \"{}\" both map to field \"{}\"", c.column, c.field));
        }
    }
    Ok((out, unmatched))
}

/// A `fields` entry: `"Field"`, or `{"field": "Field", "cast": true}` to map a column whose
/// type does not match the field's (its values are then converted one by one).
fn field_spec<'a>(col: &str, spec: &'a Value) -> Result<(&'a str, bool), String> {
    let bad = || {
        format!(
            "fields: the value for column \"{col}\" must be a Salesforce field name (a string) or {{\"field\": \"Name\", \"cast\": true}}"
        )
    };
    match spec {
        Value::String(f) => Ok((f, false)),
        Value::Object(o) => {
            if o.keys().any(|k| k != "field" && k != "cast") {
                return Err(bad());
            }
            let field = o.get("field").and_then(Value::as_str).ok_or_else(bad)?;
            let cast = match o.get("cast") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(bad()),
            };
            Ok((field, cast))
        }
        _ => Err(bad()),
    }
}

/// Refuses a column whose type cannot hold the field's values, naming both and the fixes.
fn check_types(col: &str, pg_type: &str, info: &FieldInfo) -> Result<(), String> {
    let Some(why) = compat::incompatibility(pg_type, &info.sf_type) else { return Ok(()) };
    Err(format!(
        "column \"{col}\" ({pg_type}) cannot be synced with field {} ({}): {why}; change the column's type (e.g. to {}), \
         leave the column out of fields, or map it with fields => '{{\"{col}\": {{\"field\": \"{}\", \"cast\": true}}}}' \
         to convert each value (values that do not convert are refused one by one)",
        info.name,
        info.sf_type,
        compat::suggested_type(&info.sf_type, info.precision, info.scale),
        info.name
    ))
}

/// The describe's fields as `plan::fields` matches columns against them.
pub fn field_infos(describe: &salesforce::SObjectDescribe) -> Vec<FieldInfo> {
    describe
        .fields
        .iter()
        .map(|f| FieldInfo {
            name: f.name.clone(),
            sf_type: f.r#type.clone(),
            createable: f.createable,
            updateable: f.updateable,
            calculated: f.calculated,
            limits: limits(f),
            precision: f.precision,
            scale: f.scale,
        })
        .collect()
}

/// What a field's values must fit, checked before each push (`plan::check`).
pub fn limits(f: &salesforce::FieldDescribe) -> Limits {
    let number = matches!(f.r#type.as_str(), "double" | "currency" | "percent" | "long");
    let text = compat::is_text_field(&f.r#type) || f.r#type == "multipicklist";
    Limits {
        length: if text { f.length.max(0) } else { 0 },
        precision: if number { f.precision.max(0) } else { 0 },
        scale: if number { f.scale.max(0) } else { 0 },
        picklist: f.restricted_picklist.then(|| f.picklist_values.iter().filter(|v| v.active).map(|v| v.value.clone()).collect()),
    }
}

/// A mapped column of the given types, for the plan modules' tests.
#[cfg(test)]
pub fn test_column(sf_type: &str, pg_type: &str) -> ColumnMap {
    ColumnMap {
        column: "c".into(),
        field: "F".into(),
        sf_type: sf_type.into(),
        pg_type: pg_type.into(),
        createable: true,
        updateable: true,
        calculated: false,
        limits: Limits::default(),
    }
}

fn column_map(col: &str, pg_type: String, info: &FieldInfo) -> ColumnMap {
    ColumnMap {
        column: col.to_string(),
        field: info.name.clone(),
        sf_type: info.sf_type.clone(),
        pg_type,
        createable: info.createable,
        updateable: info.updateable,
        calculated: info.calculated,
        limits: info.limits.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, createable: bool) -> FieldInfo {
        FieldInfo {
            name: name.into(),
            sf_type: "string".into(),
            createable,
            updateable: createable,
            calculated: false,
            limits: Limits::default(),
            precision: 0,
            scale: 0,
        }
    }

    fn cols(names: &[&str]) -> Vec<(String, String)> {
        names.iter().map(|n| (n.to_string(), "text".to_string())).collect()
    }

    fn sf() -> Vec<FieldInfo> {
        vec![f("Id", false), f("LastName", true), f("FirstName", true), f("Email", true), f("Postgres_Id__c", true), f("Region__c", true)]
    }

    #[test]
    fn matches_by_name_ignoring_case_and_underscores() {
        let (m, unmatched) =
            resolve(&cols(&["id", "last_name", "FIRSTNAME", "email", "region", "notes", "sfid"]), "id", None, &sf(), "Postgres_Id__c")
                .unwrap();
        let pairs: Vec<_> = m.iter().map(|c| (c.column.as_str(), c.field.as_str())).collect();
        assert_eq!(pairs, vec![("FIRSTNAME", "FirstName"), ("email", "Email"), ("last_name", "LastName"), ("region", "Region__c")]);
        assert_eq!(unmatched, vec!["notes".to_string()]);
    }

    #[test]
    fn custom_field_columns_match_with_their_suffix() {
        let (m, unmatched) = resolve(&cols(&["id", "region__c", "last_name__c"]), "id", None, &sf(), "Postgres_Id__c").unwrap();
        let pairs: Vec<_> = m.iter().map(|c| (c.column.as_str(), c.field.as_str())).collect();
        assert_eq!(pairs, vec![("region__c", "Region__c")]);
        assert_eq!(unmatched, vec!["last_name__c".to_string()], "no custom field LastName__c");
    }

    #[test]
    fn explicit_unknown_field_is_named() {
        let map: Map<String, Value> = serde_json::from_str(r#"{"email":"Emial"}"#).unwrap();
        let err = resolve(&cols(&["id", "email"]), "id", Some(&map), &sf(), "Postgres_Id__c").unwrap_err();
        assert!(err.contains("\"Emial\"") && err.contains("does not exist"), "{err}");
    }

    #[test]
    fn explicit_unknown_column_is_named() {
        let map: Map<String, Value> = serde_json::from_str(r#"{"mail":"Email"}"#).unwrap();
        let err = resolve(&cols(&["id", "email"]), "id", Some(&map), &sf(), "Postgres_Id__c").unwrap_err();
        assert!(err.contains("column \"mail\""), "{err}");
    }

    #[test]
    fn key_and_external_id_cannot_be_mapped() {
        let map: Map<String, Value> = serde_json::from_str(r#"{"id":"LastName"}"#).unwrap();
        assert!(resolve(&cols(&["id"]), "id", Some(&map), &sf(), "Postgres_Id__c").is_err());
        let map: Map<String, Value> = serde_json::from_str(r#"{"email":"Postgres_Id__c"}"#).unwrap();
        assert!(resolve(&cols(&["id", "email"]), "id", Some(&map), &sf(), "Postgres_Id__c").is_err());
    }

    fn typed(name: &str, sf_type: &str) -> FieldInfo {
        FieldInfo { sf_type: sf_type.into(), precision: 18, scale: 2, ..f(name, true) }
    }

    #[test]
    fn an_incompatible_column_type_is_refused_naming_both_and_the_fixes() {
        let fields = vec![typed("Amount", "currency"), typed("CloseDate", "date")];
        let cols = vec![("id".to_string(), "bigint".to_string()), ("amount".to_string(), "jsonb".to_string())];
        let err = resolve(&cols, "id", None, &fields, "X__c").unwrap_err();
        assert_eq!(
            err,
            "column \"amount\" (jsonb) cannot be synced with field Amount (currency): JSON documents are not values of this field type; \
             change the column's type (e.g. to numeric(18, 2)), leave the column out of fields, or map it with \
             fields => '{\"amount\": {\"field\": \"Amount\", \"cast\": true}}' to convert each value (values that do not convert are \
             refused one by one)"
        );
        let map: Map<String, Value> = serde_json::from_str(r#"{"amount":"Amount"}"#).unwrap();
        assert!(resolve(&cols, "id", Some(&map), &fields, "X__c").is_err(), "an explicit mapping is checked too");
        let cols = vec![("id".to_string(), "bigint".to_string()), ("close_date".to_string(), "text".to_string())];
        assert!(resolve(&cols, "id", None, &fields, "X__c").is_ok(), "text holds a date; its values are checked one by one");
    }

    #[test]
    fn a_cast_the_user_asks_for_is_mapped() {
        let fields = vec![typed("Amount", "currency")];
        let cols = vec![("id".to_string(), "bigint".to_string()), ("amount".to_string(), "jsonb".to_string())];
        let map: Map<String, Value> = serde_json::from_str(r#"{"amount":{"field":"Amount","cast":true}}"#).unwrap();
        let (m, _) = resolve(&cols, "id", Some(&map), &fields, "X__c").unwrap();
        assert_eq!((m[0].column.as_str(), m[0].field.as_str()), ("amount", "Amount"));
        for bad in [
            r#"{"amount":{"field":"Amount","cast":"yes"}}"#,
            r#"{"amount":{"cast":true}}"#,
            r#"{"amount":{"field":"Amount","as":1}}"#,
            r#"{"amount":1}"#,
        ] {
            let map: Map<String, Value> = serde_json::from_str(bad).unwrap();
            let err = resolve(&cols, "id", Some(&map), &fields, "X__c").unwrap_err();
            assert!(err.contains("must be a Salesforce field name"), "{bad}: {err}");
        }
    }

    #[test]
    fn two_columns_on_one_field_is_refused() {
        let map: Map<String, Value> = serde_json::from_str(r#"{"a":"Email","b":"email"}"#).unwrap();
        let err = resolve(&cols(&["id", "a", "b"]), "id", Some(&map), &sf(), "Postgres_Id__c").unwrap_err();
        assert!(err.contains("both map"), "{err}");
    }
}
