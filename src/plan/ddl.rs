//! What an ALTER TABLE of a synced table does to its mapping (docs/guide.md, "Schema
//! changes"): a renamed column is followed, a dropped one unmapped, a type change re-checked
//! against the field (plan::compat); dropping the key or the `sfid` column, renaming `sfid`,
//! or a type the field's values cannot fit is refused. Pure: the event trigger
//! (api/ddl.rs) reads the catalog and applies the outcome.

use super::compat;
use std::collections::HashMap;

/// One mapped column as the mapping has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub column: String,
    pub field: String,
    pub sf_type: String,
    pub pg_type: String,
}

/// The mapping before the statement.
#[derive(Debug, Clone)]
pub struct Before<'a> {
    /// Schema-qualified, quoted (for messages).
    pub table: &'a str,
    pub sobject: &'a str,
    pub pk_column: &'a str,
    pub pk_type: &'a str,
    pub columns: &'a [Mapped],
}

/// What the mapping becomes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Followed {
    /// (old column, new column, field; None for the key column).
    pub renamed: Vec<(String, String, Option<String>)>,
    /// (column, field): no longer synced.
    pub dropped: Vec<(String, String)>,
    /// (column, new type): accepted type changes.
    pub retyped: Vec<(String, String)>,
    pub pk_column: String,
    pub pk_type: String,
}

impl Followed {
    pub fn changes_mapping(&self, before: &Before) -> bool {
        !self.renamed.is_empty() || !self.dropped.is_empty() || !self.retyped.is_empty() || self.pk_type != before.pk_type
    }
}

/// The outcome of the statement for the mapping: Ok (maybe nothing to do) or the refusal's
/// message. `now`: the table's columns after the statement (name → `format_type`);
/// `renamed`: the column the statement renamed (old, new), if it renamed one.
pub fn follow(before: &Before, now: &HashMap<String, String>, renamed: Option<(&str, &str)>) -> Result<Followed, String> {
    let t = before.table;
    let unsync = format!("SELECT sfsync.unsync_table('{}')", t.replace('\'', "''"));
    if let Some((old, _)) = renamed.filter(|(old, _)| *old == "sfid") {
        return Err(format!(
            "column \"{old}\" of {t} keeps its name: sfsync stores each row's Salesforce Id there; rename it back, or run {unsync} first"
        ));
    }
    if !now.contains_key("sfid") {
        return Err(format!(
            "column \"sfid\" of {t} cannot be dropped while the table is synced: it holds each row's Salesforce Id; run {unsync} first"
        ));
    }
    let name_now = |name: &str| -> String {
        match renamed {
            Some((old, new)) if old == name => new.to_string(),
            _ => name.to_string(),
        }
    };
    let mut out = Followed { pk_column: name_now(before.pk_column), pk_type: before.pk_type.to_string(), ..Followed::default() };
    match now.get(&out.pk_column) {
        None => {
            return Err(format!(
                "column \"{}\" of {t} cannot be dropped while the table is synced: it is the key sfsync knows each row's record by; \
                 run {unsync} first",
                before.pk_column
            ))
        }
        Some(ty) => out.pk_type = ty.clone(),
    }
    if out.pk_column != before.pk_column {
        out.renamed.push((before.pk_column.to_string(), out.pk_column.clone(), None));
    }
    for c in before.columns {
        let name = name_now(&c.column);
        if name != c.column {
            out.renamed.push((c.column.clone(), name.clone(), Some(c.field.clone())));
        }
        let Some(ty) = now.get(&name) else {
            out.dropped.push((c.column.clone(), c.field.clone()));
            continue;
        };
        if *ty == c.pg_type {
            continue;
        }
        // A type the field's values cannot fit is refused, unless the old one could not either
        // (a cast the user opted in to when mapping it).
        if let (Some(why), None) = (compat::incompatibility(ty, &c.sf_type), compat::incompatibility(&c.pg_type, &c.sf_type)) {
            return Err(format!(
                "column \"{name}\" of {t} cannot become {ty}: it is synced with field {}.{} ({}), and {why}; \
                 to change its type, first stop syncing that field: run sfsync.sync_table('{}', '{}', fields => ...) \
                 without \"{name}\", then ALTER the column",
                before.sobject,
                c.field,
                c.sf_type,
                t.replace('\'', "''"),
                before.sobject
            ));
        }
        out.retyped.push((name, ty.clone()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapped(column: &str, field: &str, sf_type: &str, pg_type: &str) -> Mapped {
        Mapped { column: column.into(), field: field.into(), sf_type: sf_type.into(), pg_type: pg_type.into() }
    }

    fn columns() -> Vec<Mapped> {
        vec![mapped("name", "Name", "string", "text"), mapped("revenue", "AnnualRevenue", "currency", "numeric")]
    }

    fn before(columns: &[Mapped]) -> Before<'_> {
        Before { table: "public.accounts", sobject: "Account", pk_column: "id", pk_type: "bigint", columns }
    }

    fn table(cols: &[(&str, &str)]) -> HashMap<String, String> {
        cols.iter().map(|(n, t)| (n.to_string(), t.to_string())).collect()
    }

    #[test]
    fn an_unrelated_change_leaves_the_mapping_alone() {
        let cols = columns();
        let now = table(&[("id", "bigint"), ("name", "text"), ("revenue", "numeric"), ("sfid", "character varying(18)"), ("x", "int")]);
        let out = follow(&before(&cols), &now, None).unwrap();
        assert!(!out.changes_mapping(&before(&cols)), "{out:?}");
    }

    #[test]
    fn a_renamed_column_and_key_are_followed() {
        let cols = columns();
        let now = table(&[("id", "bigint"), ("account_name", "text"), ("revenue", "numeric"), ("sfid", "text")]);
        let out = follow(&before(&cols), &now, Some(("name", "account_name"))).unwrap();
        assert_eq!(out.renamed, vec![("name".to_string(), "account_name".to_string(), Some("Name".to_string()))]);
        assert!(out.dropped.is_empty());
        let now = table(&[("key", "bigint"), ("name", "text"), ("revenue", "numeric"), ("sfid", "text")]);
        let out = follow(&before(&cols), &now, Some(("id", "key"))).unwrap();
        assert_eq!(out.pk_column, "key");
        assert_eq!(out.renamed, vec![("id".to_string(), "key".to_string(), None)]);
    }

    #[test]
    fn a_dropped_column_is_unmapped_but_not_the_key_nor_sfid() {
        let cols = columns();
        let out = follow(&before(&cols), &table(&[("id", "bigint"), ("name", "text"), ("sfid", "text")]), None).unwrap();
        assert_eq!(out.dropped, vec![("revenue".to_string(), "AnnualRevenue".to_string())]);
        let e = follow(&before(&cols), &table(&[("name", "text"), ("revenue", "numeric"), ("sfid", "text")]), None).unwrap_err();
        assert!(e.starts_with("column \"id\" of public.accounts cannot be dropped while the table is synced"), "{e}");
        assert!(e.contains("SELECT sfsync.unsync_table('public.accounts')"), "{e}");
        let e = follow(&before(&cols), &table(&[("id", "bigint"), ("name", "text"), ("revenue", "numeric")]), None).unwrap_err();
        assert!(e.starts_with("column \"sfid\" of public.accounts cannot be dropped"), "{e}");
        let now = table(&[("id", "bigint"), ("name", "text"), ("revenue", "numeric"), ("salesforce_id", "text")]);
        let e = follow(&before(&cols), &now, Some(("sfid", "salesforce_id"))).unwrap_err();
        assert!(e.starts_with("column \"sfid\" of public.accounts keeps its name"), "{e}");
    }

    #[test]
    fn a_type_change_is_checked_against_the_field() {
        let cols = columns();
        let now = table(&[("id", "bigint"), ("name", "text"), ("revenue", "boolean"), ("sfid", "text")]);
        let e = follow(&before(&cols), &now, None).unwrap_err();
        assert!(
            e.starts_with(
                "column \"revenue\" of public.accounts cannot become boolean: it is synced with field Account.AnnualRevenue (currency)"
            ),
            "{e}"
        );
        assert!(e.contains("first stop syncing that field"), "{e}");
        let now = table(&[("id", "bigint"), ("name", "character varying(80)"), ("revenue", "numeric(18,2)"), ("sfid", "text")]);
        let out = follow(&before(&cols), &now, None).unwrap();
        assert_eq!(
            out.retyped,
            vec![("name".to_string(), "character varying(80)".to_string()), ("revenue".to_string(), "numeric(18,2)".to_string())]
        );
    }
}
