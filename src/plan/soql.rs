//! SOQL the sync sends. Field and object names come from describe and are checked as
//! identifiers; values are literals we format ourselves, never user text pasted in.

use salesforce::soql::{is_valid_identifier, quote};

/// `SELECT {select} FROM {sobject}`, restricted to the mapping's `filter` when it has one:
/// the shape of every whole-object read (count, Id listing, refresh, start mark). `select`
/// and `rest` (ORDER BY, LIMIT) are ours; `sobject` is checked.
pub fn select_from(select: &str, sobject: &str, filter: Option<&str>, rest: &str) -> Result<String, String> {
    if !is_valid_identifier(sobject) {
        return Err(format!("invalid Salesforce name {sobject:?}"));
    }
    let cond = filter.filter(|f| !f.trim().is_empty()).map(|f| format!(" WHERE ({f})")).unwrap_or_default();
    Ok(format!("SELECT {select} FROM {sobject}{cond}{rest}"))
}

/// Incremental pull of one mapping: every record (deleted ones included, via queryAll)
/// modified at or after `since`, oldest first, with the fields the mapping needs.
/// `since` is a SOQL datetime literal such as `2024-05-20T20:49:32.000Z`.
pub fn pull_query(sobject: &str, fields: &[&str], external_id: &str, since: Option<&str>, filter: Option<&str>) -> Result<String, String> {
    for name in std::iter::once(&sobject).chain(fields.iter()).chain(std::iter::once(&external_id)) {
        if !is_valid_identifier(name) {
            return Err(format!("invalid Salesforce name {name:?}"));
        }
    }
    let mut select: Vec<&str> = vec!["Id", "SystemModstamp", "LastModifiedDate", "IsDeleted", external_id];
    for f in fields {
        if !select.iter().any(|s| s.eq_ignore_ascii_case(f)) {
            select.push(f);
        }
    }
    let mut conds = Vec::new();
    if let Some(since) = since {
        if !is_datetime_literal(since) {
            return Err(format!("invalid SOQL datetime literal {since:?}"));
        }
        conds.push(format!("SystemModstamp >= {since}"));
    }
    if let Some(f) = filter.filter(|f| !f.trim().is_empty()) {
        conds.push(format!("({f})"));
    }
    let mut q = format!("SELECT {} FROM {sobject}", select.join(", "));
    if !conds.is_empty() {
        q.push_str(" WHERE ");
        q.push_str(&conds.join(" AND "));
    }
    q.push_str(" ORDER BY SystemModstamp ASC, Id ASC");
    Ok(q)
}

/// The records with these Ids (deleted ones too, through queryAll), with what the pull reads
/// of them: to apply again the records whose earlier apply failed.
pub fn by_ids(sobject: &str, fields: &[&str], external_id: &str, ids: &[&str]) -> Result<String, String> {
    let base = pull_query(sobject, fields, external_id, None, None)?;
    let select = base.split(" ORDER BY ").next().unwrap_or(&base);
    let list: Vec<String> = ids.iter().map(|id| quote(id)).collect();
    Ok(format!("{select} WHERE Id IN ({})", list.join(", ")))
}

/// Records changed at or after `since` (all when None) that do **not** match the mapping's
/// filter: those that left it, for the pull to remove locally. Deleted ones too (queryAll).
pub fn left_filter_query(sobject: &str, since: Option<&str>, filter: &str) -> Result<String, String> {
    if !is_valid_identifier(sobject) {
        return Err(format!("invalid Salesforce name {sobject:?}"));
    }
    let mut q = format!("SELECT Id, IsDeleted FROM {sobject} WHERE ");
    if let Some(since) = since {
        if !is_datetime_literal(since) {
            return Err(format!("invalid SOQL datetime literal {since:?}"));
        }
        q.push_str(&format!("SystemModstamp >= {since} AND "));
    }
    q.push_str(&format!("(NOT ({filter})) ORDER BY SystemModstamp ASC, Id ASC"));
    Ok(q)
}

/// Ids of records carrying the given external id values (to find what a crashed push made).
pub fn by_external_ids(sobject: &str, external_id: &str, values: &[&str]) -> Result<String, String> {
    for name in [sobject, external_id] {
        if !is_valid_identifier(name) {
            return Err(format!("invalid Salesforce name {name:?}"));
        }
    }
    let list: Vec<String> = values.iter().map(|v| quote(v)).collect();
    Ok(format!("SELECT Id, {external_id} FROM {sobject} WHERE {external_id} IN ({})", list.join(", ")))
}

/// Records whose natural key (`sync_table(..., match)`) takes one of the given values: per
/// key field an IN list of that field's values (a composite key is narrowed in memory),
/// within the mapping's filter. `values[i]` holds the values of `fields[i]`.
pub fn by_keys(sobject: &str, external_id: &str, fields: &[&str], values: &[Vec<String>], filter: Option<&str>) -> Result<String, String> {
    let select = key_select(sobject, external_id, fields)?;
    let mut conds: Vec<String> = fields
        .iter()
        .zip(values)
        .map(|(f, vs)| format!("{f} IN ({})", vs.iter().map(|v| quote(v)).collect::<Vec<_>>().join(", ")))
        .collect();
    if let Some(f) = filter.filter(|f| !f.trim().is_empty()) {
        conds.push(format!("({f})"));
    }
    Ok(format!("{select} WHERE {}", conds.join(" AND ")))
}

/// `SELECT Id, <external id>, <key fields> FROM <sobject>`, names checked.
fn key_select(sobject: &str, external_id: &str, fields: &[&str]) -> Result<String, String> {
    for name in [sobject, external_id].iter().chain(fields.iter()) {
        if !is_valid_identifier(name) {
            return Err(format!("invalid Salesforce name {name:?}"));
        }
    }
    let mut select = vec!["Id", external_id];
    select.extend(fields.iter().filter(|f| !f.eq_ignore_ascii_case("Id") && !f.eq_ignore_ascii_case(external_id)));
    Ok(format!("SELECT {} FROM {sobject}", select.join(", ")))
}

/// The Bulk form of `by_keys`: every record (in the filter) whose key fields are all set,
/// with the same columns; the caller keeps those whose key it wants.
pub fn with_keys(sobject: &str, external_id: &str, fields: &[&str], filter: Option<&str>) -> Result<String, String> {
    let select = key_select(sobject, external_id, fields)?;
    let mut conds: Vec<String> = fields.iter().map(|f| format!("{f} != null")).collect();
    if let Some(f) = filter.filter(|f| !f.trim().is_empty()) {
        conds.push(format!("({f})"));
    }
    Ok(format!("{select} WHERE {}", conds.join(" AND ")))
}

fn is_datetime_literal(s: &str) -> bool {
    // YYYY-MM-DDTHH:MM:SS(.sss)Z
    let b = s.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && s.ends_with('Z')
        && s.chars().all(|c| c.is_ascii_digit() || "-T:.Z".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_lookup_reads_every_record_with_a_key() {
        let q = with_keys("Contact", "Postgres_Id__c", &["FirstName", "LastName"], Some("Active__c = true")).unwrap();
        assert_eq!(
            q,
            "SELECT Id, Postgres_Id__c, FirstName, LastName FROM Contact WHERE FirstName != null AND LastName != null AND (Active__c = true)"
        );
        assert!(with_keys("Contact", "Postgres_Id__c", &["Email; x"], None).is_err());
    }

    #[test]
    fn first_pull_has_no_time_bound() {
        let q = pull_query("Account", &["Name", "Industry"], "Postgres_Id__c", None, None).unwrap();
        assert_eq!(q, "SELECT Id, SystemModstamp, LastModifiedDate, IsDeleted, Postgres_Id__c, Name, Industry FROM Account ORDER BY SystemModstamp ASC, Id ASC");
    }

    #[test]
    fn incremental_pull_with_filter() {
        let q =
            pull_query("Contact", &["LastName", "Id"], "Postgres_Id__c", Some("2024-05-20T20:49:32.000Z"), Some("Email != null")).unwrap();
        assert_eq!(
            q,
            "SELECT Id, SystemModstamp, LastModifiedDate, IsDeleted, Postgres_Id__c, LastName FROM Contact WHERE SystemModstamp >= 2024-05-20T20:49:32.000Z AND (Email != null) ORDER BY SystemModstamp ASC, Id ASC"
        );
    }

    #[test]
    fn bad_names_and_literals_are_refused() {
        assert!(pull_query("Account; DELETE", &[], "Postgres_Id__c", None, None).is_err());
        assert!(pull_query("Account", &["Name FROM User"], "Postgres_Id__c", None, None).is_err());
        assert!(pull_query("Account", &[], "Postgres_Id__c", Some("2024-01-01' OR '1'='1"), None).is_err());
    }

    #[test]
    fn left_filter_negates_the_filter() {
        let q = left_filter_query("Account", Some("2024-05-20T20:49:32.000Z"), "Industry = 'Tech'").unwrap();
        assert_eq!(
            q,
            "SELECT Id, IsDeleted FROM Account WHERE SystemModstamp >= 2024-05-20T20:49:32.000Z AND (NOT (Industry = 'Tech')) ORDER BY SystemModstamp ASC, Id ASC"
        );
        let q = left_filter_query("Account", None, "Industry = 'Tech'").unwrap();
        assert_eq!(q, "SELECT Id, IsDeleted FROM Account WHERE (NOT (Industry = 'Tech')) ORDER BY SystemModstamp ASC, Id ASC");
        assert!(left_filter_query("Account", Some("now'"), "x = 1").is_err());
    }

    #[test]
    fn by_ids_reads_what_the_pull_reads() {
        let q = by_ids("Contact", &["LastName"], "Postgres_Id__c", &["003A", "003'B"]).unwrap();
        assert_eq!(
            q,
            "SELECT Id, SystemModstamp, LastModifiedDate, IsDeleted, Postgres_Id__c, LastName FROM Contact WHERE Id IN ('003A', '003\\'B')"
        );
    }

    #[test]
    fn key_lookups_quote_values_and_keep_the_filter() {
        let q =
            by_keys("Contact", "Postgres_Id__c", &["Email"], &[vec!["a@x".into(), "o'b@x".into()]], Some("IsActive__c = true")).unwrap();
        assert_eq!(q, "SELECT Id, Postgres_Id__c, Email FROM Contact WHERE Email IN ('a@x', 'o\\'b@x') AND (IsActive__c = true)");
        let q = by_keys("Contact", "Postgres_Id__c", &["FirstName", "LastName"], &[vec!["A".into()], vec!["B".into()]], None).unwrap();
        assert_eq!(q, "SELECT Id, Postgres_Id__c, FirstName, LastName FROM Contact WHERE FirstName IN ('A') AND LastName IN ('B')");
        assert!(by_keys("Contact", "Postgres_Id__c", &["Email) OR (1"], &[vec![]], None).is_err());
    }

    #[test]
    fn external_id_values_are_escaped() {
        let q = by_external_ids("Account", "Postgres_Id__c", &["1", "o'brien"]).unwrap();
        assert_eq!(q, "SELECT Id, Postgres_Id__c FROM Account WHERE Postgres_Id__c IN ('1', 'o\\'brien')");
    }
}
