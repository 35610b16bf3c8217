//! Backfill decisions: REST or Bulk, the (resumable) query, and progress arithmetic.

use super::soql::{pull_query, select_from};
use salesforce::soql::quote;

/// How a backfill reads Salesforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// REST query paging (query / nextRecordsUrl): cheap for small objects.
    Rest,
    /// A Bulk API 2.0 query job, CSV streamed page by page.
    Bulk,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Rest => "rest",
            Method::Bulk => "bulk",
        }
    }
    pub fn parse(s: &str) -> Method {
        if s == "bulk" {
            Method::Bulk
        } else {
            Method::Rest
        }
    }
}

/// Bulk from `threshold` estimated records on, unless a mapped field cannot travel in a
/// Bulk query (compound fields and base64 are REST-only in Salesforce).
pub fn choose_method(estimate: u64, threshold: u64, sf_types: &[&str]) -> Method {
    let rest_only = sf_types.iter().any(|t| matches!(*t, "address" | "location" | "base64"));
    if estimate >= threshold && !rest_only {
        Method::Bulk
    } else {
        Method::Rest
    }
}

/// The full-load query: the mapping's fields, in (SystemModstamp, Id) order, starting after
/// the last applied record when resuming. `after` is (SOQL datetime literal, Id).
pub fn query(
    sobject: &str,
    fields: &[&str],
    external_id: &str,
    filter: Option<&str>,
    after: Option<(&str, &str)>,
) -> Result<String, String> {
    // The incremental query without a time bound, plus the keyset condition.
    let base = pull_query(sobject, fields, external_id, None, filter)?;
    let Some((stamp, id)) = after else { return Ok(base) };
    if !is_datetime(stamp) {
        return Err(format!("invalid SOQL datetime literal {stamp:?}"));
    }
    if !is_sf_id(id) {
        return Err(format!("invalid Salesforce Id {id:?}"));
    }
    let keyset = format!("(SystemModstamp > {stamp} OR (SystemModstamp = {stamp} AND Id > {}))", quote(id));
    let (head, order) = base.split_once(" ORDER BY ").ok_or("unexpected query shape")?;
    let joined = if head.contains(" WHERE ") { format!("{head} AND {keyset}") } else { format!("{head} WHERE {keyset}") };
    Ok(format!("{joined} ORDER BY {order}"))
}

/// `SELECT COUNT() FROM X [WHERE filter]`: the estimate that picks REST or Bulk, and the
/// Salesforce side of `sfsync.verify`.
pub fn count_query(sobject: &str, filter: Option<&str>) -> Result<String, String> {
    select_from("COUNT()", sobject, filter, "")
}

/// The newest SystemModstamp before the load starts: after the load, polling goes on from
/// there (minus `sfsync.pull_overlap`), so changes made during the load are not missed.
pub fn start_mark_query(sobject: &str, filter: Option<&str>) -> Result<String, String> {
    select_from("SystemModstamp", sobject, filter, " ORDER BY SystemModstamp DESC LIMIT 1")
}

fn is_sf_id(s: &str) -> bool {
    (s.len() == 15 || s.len() == 18) && s.chars().all(|c| c.is_ascii_alphanumeric())
}

fn is_datetime(s: &str) -> bool {
    s.len() >= 20
        && s.ends_with('Z')
        && s.chars().all(|c| c.is_ascii_digit() || "-T:.Z".contains(c))
        && salesforce::soql::parse_datetime(s).is_some()
}

/// Rows per second over the current run (rows applied since it started, seconds since then).
pub fn rate(rows: u64, secs: f64) -> Option<f64> {
    (secs > 0.0 && rows > 0).then(|| rows as f64 / secs)
}

/// Seconds left at `rate` for the rows not done yet; 0 once the estimate is reached (the
/// estimate is a count taken at the start, records created since make the load longer).
pub fn eta_secs(done: u64, total: Option<u64>, rate: Option<f64>) -> Option<f64> {
    let (total, rate) = (total?, rate?);
    if rate <= 0.0 {
        return None;
    }
    Some(total.saturating_sub(done) as f64 / rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_by_estimate_and_fields() {
        assert_eq!(choose_method(9_999, 10_000, &["string"]), Method::Rest);
        assert_eq!(choose_method(10_000, 10_000, &["string", "currency"]), Method::Bulk);
        assert_eq!(choose_method(1_000_000, 10_000, &["string", "address"]), Method::Rest, "compound fields are REST-only");
        assert_eq!(Method::parse(Method::Bulk.as_str()), Method::Bulk);
    }

    #[test]
    fn first_and_resumed_queries() {
        let q = query("Account", &["Name"], "Postgres_Id__c", None, None).unwrap();
        assert_eq!(
            q,
            "SELECT Id, SystemModstamp, LastModifiedDate, IsDeleted, Postgres_Id__c, Name FROM Account ORDER BY SystemModstamp ASC, Id ASC"
        );
        let q = query(
            "Account",
            &["Name"],
            "Postgres_Id__c",
            Some("Industry = 'Energy'"),
            Some(("2024-05-20T20:49:32.000Z", "001Kg0000H00002IQA")),
        )
        .unwrap();
        assert_eq!(
            q,
            "SELECT Id, SystemModstamp, LastModifiedDate, IsDeleted, Postgres_Id__c, Name FROM Account WHERE (Industry = 'Energy') AND \
             (SystemModstamp > 2024-05-20T20:49:32.000Z OR (SystemModstamp = 2024-05-20T20:49:32.000Z AND Id > '001Kg0000H00002IQA')) \
             ORDER BY SystemModstamp ASC, Id ASC"
        );
        let q = query("Account", &["Name"], "Postgres_Id__c", None, Some(("2024-05-20T20:49:32.000Z", "001Kg0000H00002"))).unwrap();
        assert!(q.contains("FROM Account WHERE (SystemModstamp > "), "{q}");
    }

    #[test]
    fn resume_values_are_checked() {
        assert!(query("Account", &[], "Postgres_Id__c", None, Some(("2024-05-20' OR Name != '", "001A"))).is_err());
        assert!(query("Account", &[], "Postgres_Id__c", None, Some(("2024-05-20T20:49:32.000Z", "001' OR Id != '"))).is_err());
    }

    #[test]
    fn count_and_mark_queries() {
        assert_eq!(count_query("Account", None).unwrap(), "SELECT COUNT() FROM Account");
        assert_eq!(count_query("Account", Some("Type = 'X'")).unwrap(), "SELECT COUNT() FROM Account WHERE (Type = 'X')");
        assert!(count_query("Account x", None).is_err());
        assert_eq!(start_mark_query("Contact", None).unwrap(), "SELECT SystemModstamp FROM Contact ORDER BY SystemModstamp DESC LIMIT 1");
    }

    #[test]
    fn progress_arithmetic() {
        assert_eq!(rate(0, 10.0), None);
        assert_eq!(rate(100, 0.0), None);
        assert_eq!(rate(5000, 2.0), Some(2500.0));
        assert_eq!(eta_secs(5000, Some(30_000), Some(2500.0)), Some(10.0));
        assert_eq!(eta_secs(31_000, Some(30_000), Some(2500.0)), Some(0.0), "past the estimate: nothing left to wait for");
        assert_eq!(eta_secs(10, None, Some(1.0)), None);
        assert_eq!(eta_secs(10, Some(20), None), None);
    }
}
