//! `sfsync.mirror`: which columns a table made from a describe gets, their names and types.
//!
//! Naming rule (docs/type-mapping.md): the field's API name in lower snake case, a word
//! break before each capital that follows a lower-case letter or digit, and before the last
//! capital of a run of capitals followed by a lower-case letter (`SLAExpiry` → `sla_expiry`);
//! existing underscores and the custom suffix are kept as they are (`Region__c` → `region__c`,
//! `Geo__Latitude__s` → `geo__latitude__s`). Names are cut to 63 bytes. A name already taken
//! (by `id`, `sfid` or an earlier field in describe order) gets `_2`, `_3`, … so the result
//! is predictable and never collides.

use std::collections::HashSet;

/// A field of the describe, reduced to what the table needs.
#[derive(Debug, Clone)]
pub struct MirrorField {
    pub name: String,
    pub sf_type: String,
    pub precision: i64,
    pub scale: i64,
}

/// One column of the table to create.
#[derive(Debug, Clone, PartialEq)]
pub struct MirrorColumn {
    pub column: String,
    pub field: String,
    /// The type as written in CREATE TABLE (with NOT NULL DEFAULT for booleans).
    pub ddl_type: String,
}

/// Columns sfsync adds itself: the key and the Salesforce Id.
pub const RESERVED: &[&str] = &["id", "sfid"];

/// The Postgres type of a Salesforce field type (see docs/type-mapping.md).
pub fn pg_type(sf_type: &str, precision: i64, scale: i64) -> String {
    match sf_type {
        "boolean" => "boolean NOT NULL DEFAULT false".into(),
        "int" => "integer".into(),
        "long" => "bigint".into(),
        "double" | "currency" | "percent" => {
            if precision > 0 && precision <= 1000 && (0..=precision).contains(&scale) {
                format!("numeric({precision}, {scale})")
            } else {
                "numeric".into()
            }
        }
        "date" => "date".into(),
        "datetime" => "timestamptz".into(),
        "time" => "time".into(),
        "multipicklist" => "text[]".into(),
        "reference" | "id" => "varchar(18)".into(),
        "address" | "location" => "jsonb".into(),
        "base64" => "bytea".into(),
        // picklist, string, textarea, email, phone, url, encryptedstring, combobox, anything else
        _ => "text".into(),
    }
}

/// The column name of a field API name (before collision handling).
pub fn column_name(field: &str) -> String {
    let chars: Vec<char> = field.chars().collect();
    let mut out = String::with_capacity(field.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase() || prev.is_ascii_digit() || (prev.is_ascii_uppercase() && next_lower) {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    truncate(&out, 63)
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Whether a field becomes a column when the caller gave no list: every field except the
/// Id (it is `sfid`), IsDeleted (deleted records are deleted), the external ID field that
/// carries the Postgres key, compound fields (addresses, geolocations), whose parts
/// (`BillingCity`, …) are columns of their own, and base64 fields, which a pull cannot read
/// (`plan::compat::pull_refusal`).
pub fn default_field(name: &str, sf_type: &str, external_id: &str) -> bool {
    !(name.eq_ignore_ascii_case("Id")
        || name.eq_ignore_ascii_case("IsDeleted")
        || name.eq_ignore_ascii_case(external_id)
        || matches!(sf_type, "address" | "location" | "base64"))
}

/// The table's columns for `fields` (in the order given), named by the rule above.
/// `wanted`: the caller's list (case-insensitive API names), or None for the defaults.
pub fn plan(describe: &[MirrorField], wanted: Option<&[String]>, external_id: &str) -> Result<Vec<MirrorColumn>, String> {
    let chosen: Vec<&MirrorField> = match wanted {
        None => describe.iter().filter(|f| default_field(&f.name, &f.sf_type, external_id)).collect(),
        Some(list) => {
            if list.is_empty() {
                return Err("fields: the list is empty; pass NULL for all fields".into());
            }
            let mut out: Vec<&MirrorField> = Vec::new();
            for w in list {
                let f = describe
                    .iter()
                    .find(|f| f.name.eq_ignore_ascii_case(w))
                    .ok_or_else(|| format!("fields: Salesforce field \"{w}\" does not exist"))?;
                if f.name.eq_ignore_ascii_case("Id") || f.name.eq_ignore_ascii_case(external_id) {
                    return Err(format!(
                        "fields: field \"{}\" is managed by sfsync (it is the sfid column or the Postgres key) and cannot be a column",
                        f.name
                    ));
                }
                if out.iter().any(|o| o.name == f.name) {
                    return Err(format!("fields: field \"{}\" is listed twice", f.name));
                }
                out.push(f);
            }
            out
        }
    };
    let mut taken: HashSet<String> = RESERVED.iter().map(|s| s.to_string()).collect();
    let mut cols = Vec::with_capacity(chosen.len());
    for f in chosen {
        let base = column_name(&f.name);
        let mut name = base.clone();
        let mut n = 2;
        while taken.contains(&name) {
            let suffix = format!("_{n}");
            name = format!("{}{suffix}", truncate(&base, 63 - suffix.len()));
            n += 1;
        }
        taken.insert(name.clone());
        cols.push(MirrorColumn { column: name, field: f.name.clone(), ddl_type: pg_type(&f.sf_type, f.precision, f.scale) });
    }
    Ok(cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str, t: &str) -> MirrorField {
        MirrorField { name: name.into(), sf_type: t.into(), precision: 0, scale: 0 }
    }

    #[test]
    fn names_are_lower_snake_case_keeping_suffixes() {
        for (field, col) in [
            ("AnnualRevenue", "annual_revenue"),
            ("Name", "name"),
            ("Region__c", "region__c"),
            ("Custom_Field__c", "custom_field__c"),
            ("NumberOfEmployees", "number_of_employees"),
            ("BillingPostalCode", "billing_postal_code"),
            ("SLAExpirationDate__c", "sla_expiration_date__c"),
            ("Geo__Latitude__s", "geo__latitude__s"),
            ("Address2Line", "address2_line"),
            ("SystemModstamp", "system_modstamp"),
            ("OwnerId", "owner_id"),
            ("URL", "url"),
        ] {
            assert_eq!(column_name(field), col, "{field}");
        }
        assert_eq!(column_name(&"A".repeat(80)).len(), 63);
    }

    #[test]
    fn type_mapping_table() {
        assert_eq!(pg_type("boolean", 0, 0), "boolean NOT NULL DEFAULT false");
        assert_eq!(pg_type("int", 9, 0), "integer");
        assert_eq!(pg_type("currency", 18, 2), "numeric(18, 2)");
        assert_eq!(pg_type("percent", 5, 2), "numeric(5, 2)");
        assert_eq!(pg_type("double", 0, 0), "numeric", "no precision in the describe: unconstrained");
        assert_eq!(pg_type("date", 0, 0), "date");
        assert_eq!(pg_type("datetime", 0, 0), "timestamptz");
        assert_eq!(pg_type("time", 0, 0), "time");
        assert_eq!(pg_type("picklist", 0, 0), "text");
        assert_eq!(pg_type("multipicklist", 0, 0), "text[]");
        assert_eq!(pg_type("reference", 0, 0), "varchar(18)");
        for t in ["string", "textarea", "email", "phone", "url", "encryptedstring", "combobox", "anyType", "complexvalue"] {
            assert_eq!(pg_type(t, 0, 0), "text", "{t}");
        }
        assert_eq!(pg_type("address", 0, 0), "jsonb");
        assert_eq!(pg_type("location", 0, 0), "jsonb");
        assert_eq!(pg_type("base64", 0, 0), "bytea");
    }

    #[test]
    fn defaults_skip_id_deleted_external_id_and_compounds() {
        let d = vec![
            f("Id", "id"),
            f("IsDeleted", "boolean"),
            f("Name", "string"),
            f("BillingCity", "string"),
            f("BillingAddress", "address"),
            f("Postgres_Id__c", "string"),
            f("Body", "base64"),
        ];
        let cols = plan(&d, None, "Postgres_Id__c").unwrap();
        let names: Vec<_> = cols.iter().map(|c| (c.column.as_str(), c.field.as_str())).collect();
        assert_eq!(names, vec![("name", "Name"), ("billing_city", "BillingCity")]);
    }

    #[test]
    fn collisions_get_numbered_suffixes_in_describe_order() {
        let d =
            vec![f("FooBar__c", "string"), f("Foo_Bar__c", "string"), f("Foo_bar__c", "string"), f("SfId", "string"), f("ID2", "string")];
        let cols = plan(&d, None, "Postgres_Id__c").unwrap();
        let names: Vec<_> = cols.iter().map(|c| c.column.as_str()).collect();
        assert_eq!(names, vec!["foo_bar__c", "foo_bar__c_2", "foo_bar__c_3", "sf_id", "id2"]);
        let d = vec![f("Sfid", "string")];
        assert_eq!(plan(&d, None, "X__c").unwrap()[0].column, "sfid_2", "a reserved name is never reused");
    }

    #[test]
    fn explicit_list_is_checked() {
        let d = vec![f("Id", "id"), f("Name", "string"), f("Industry", "picklist"), f("BillingAddress", "address")];
        let cols = plan(&d, Some(&["industry".into(), "BillingAddress".into()]), "Postgres_Id__c").unwrap();
        assert_eq!(cols[0], MirrorColumn { column: "industry".into(), field: "Industry".into(), ddl_type: "text".into() });
        assert_eq!(cols[1].ddl_type, "jsonb", "a compound field asked for by name is a jsonb column");
        let e = plan(&d, Some(&["Nmae".into()]), "Postgres_Id__c").unwrap_err();
        assert_eq!(e, "fields: Salesforce field \"Nmae\" does not exist");
        assert!(plan(&d, Some(&["Id".into()]), "Postgres_Id__c").unwrap_err().contains("managed by sfsync"));
        assert!(plan(&d, Some(&["Name".into(), "name".into()]), "Postgres_Id__c").unwrap_err().contains("twice"));
        assert!(plan(&d, Some(&[]), "Postgres_Id__c").is_err());
    }
}
