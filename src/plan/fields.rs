//! Resolving a table's columns against a Salesforce object's describe.

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
}

/// What describe tells us about a field, reduced to what the mapping needs.
#[derive(Debug, Clone)]
pub struct FieldInfo {
    pub name: String,
    pub sf_type: String,
    pub createable: bool,
    pub updateable: bool,
    pub calculated: bool,
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
            for (col, field) in map {
                let field = field
                    .as_str()
                    .ok_or_else(|| format!("fields: the value for column \"{col}\" must be a Salesforce field name (a string)"))?;
                let pg_type = pg_type_of(col).ok_or_else(|| format!("fields: column \"{col}\" does not exist in the table"))?;
                if col == pk || col == SFID_COLUMN {
                    return Err(format!("fields: column \"{col}\" is managed by sfsync and cannot be mapped"));
                }
                let info = find_field(field)
                    .ok_or_else(|| format!("fields: Salesforce field \"{field}\" (for column \"{col}\") does not exist"))?;
                if info.name.eq_ignore_ascii_case("Id") || info.name.eq_ignore_ascii_case(external_id) {
                    return Err(format!("fields: field \"{}\" is managed by sfsync and cannot be mapped", info.name));
                }
                out.push(column_map(col, pg_type, info));
            }
        }
        None => {
            for (col, pg_type) in columns {
                if col == pk || col == SFID_COLUMN {
                    continue;
                }
                let wanted = normalize(col);
                let hit = fields.iter().find(|f| {
                    normalize_field(&f.name) == wanted && !f.name.eq_ignore_ascii_case("Id") && !f.name.eq_ignore_ascii_case(external_id)
                });
                match hit {
                    Some(info) => out.push(column_map(col, pg_type.clone(), info)),
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, createable: bool) -> FieldInfo {
        FieldInfo { name: name.into(), sf_type: "string".into(), createable, updateable: createable, calculated: false }
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

    #[test]
    fn two_columns_on_one_field_is_refused() {
        let map: Map<String, Value> = serde_json::from_str(r#"{"a":"Email","b":"email"}"#).unwrap();
        let err = resolve(&cols(&["id", "a", "b"]), "id", Some(&map), &sf(), "Postgres_Id__c").unwrap_err();
        assert!(err.contains("both map"), "{err}");
    }
}
