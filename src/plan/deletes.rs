//! Decisions of the delete check (getDeleted windows) and the full reconciliation.
//!
//! Salesforce's replication rules: times are taken to the minute, `start` must precede `end`,
//! `start` may be at most 30 days back (else INVALID_REPLICATION_DATE), the next window starts
//! at the previous `latestDateCovered`, and deletions older than `earliestDateAvailable` (the
//! newest record physically purged) may be gone: a mark before it needs a full reconciliation.

use salesforce::soql::is_valid_identifier;

pub const MINUTE_MS: i64 = 60_000;
pub const DAY_MS: i64 = 86_400_000;
/// The longest window asked for in one call (Salesforce refuses starts over 30 days back).
pub const MAX_WINDOW_MS: i64 = 30 * DAY_MS - MINUTE_MS;

/// One getDeleted call's window from `start` (epoch ms): minute-aligned, at most
/// MAX_WINDOW_MS long. `end` may be in the future: Salesforce covers up to its own now
/// and says how far in `latestDateCovered`, so our clock never has to agree with its clock.
pub fn window(start: i64) -> (i64, i64) {
    let start = start.div_euclid(MINUTE_MS) * MINUTE_MS;
    (start, start + MAX_WINDOW_MS)
}

/// Where the next window starts, or None when this one reached Salesforce's present.
pub fn next_start(start: i64, end: i64, latest: Option<i64>) -> Option<i64> {
    latest.filter(|l| *l >= end && *l > start)
}

/// Whether deletions after `mark` may have been purged before we saw them.
pub fn must_reconcile(mark: i64, earliest_available: Option<i64>) -> bool {
    earliest_available.is_some_and(|e| e > mark)
}

/// Ids of every live record of the object matching the mapping's filter (the reconciliation's
/// listing; query, not queryAll: the recycle bin does not count as present).
pub fn ids_query(sobject: &str, filter: Option<&str>) -> Result<String, String> {
    super::soql::select_from("Id", sobject, filter, "")
}

/// Which of these Ids still exist (live), whatever the filter: a local row missing from a
/// filtered listing either left the filter or was deleted.
pub fn existing_query(sobject: &str, ids: &[&str]) -> Result<String, String> {
    if !is_valid_identifier(sobject) {
        return Err(format!("invalid Salesforce name {sobject:?}"));
    }
    if ids.iter().any(|id| !(id.len() == 15 || id.len() == 18) || !id.bytes().all(|b| b.is_ascii_alphanumeric())) {
        return Err("invalid Salesforce Id".into());
    }
    let list: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
    Ok(format!("SELECT Id FROM {sobject} WHERE Id IN ({})", list.join(", ")))
}

/// A Salesforce datetime as epoch milliseconds.
pub fn parse_datetime(s: &str) -> Option<i64> {
    salesforce::soql::parse_datetime(s).map(|t| t.as_millis())
}

/// Epoch ms → `2024-05-20T20:49:00.000Z` (what getDeleted and SOQL accept).
pub fn format_datetime(ms: i64) -> String {
    salesforce::soql::datetime(salesforce::soql::Timestamp::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_round_trip() {
        let t = parse_datetime("2024-05-20T20:49:32.123+0000").unwrap();
        assert_eq!(format_datetime(t), "2024-05-20T20:49:32.123Z");
        assert_eq!(t % 1000, 123);
        assert_eq!(parse_datetime("2024-05-20T20:49:32Z"), Some(t - 123));
        assert_eq!(parse_datetime("2024-05-20T22:49:32.123+02:00"), Some(t));
        assert_eq!(parse_datetime("2024-02-29T00:00:00Z").map(format_datetime).as_deref(), Some("2024-02-29T00:00:00.000Z"));
        assert_eq!(parse_datetime("1970-01-01T00:00:00.000+0000"), Some(0));
        assert!(parse_datetime("2024-05-20 20:49").is_none());
        assert!(parse_datetime("2024-13-20T20:49:00Z").is_none());
    }

    #[test]
    fn windows_are_minute_aligned_and_at_most_thirty_days() {
        let start = parse_datetime("2024-05-20T20:49:32Z").unwrap();
        let (s, e) = window(start);
        assert_eq!(format_datetime(s), "2024-05-20T20:49:00.000Z");
        assert_eq!(e - s, MAX_WINDOW_MS);
        assert!(e - s < 30 * DAY_MS);
    }

    #[test]
    fn a_long_gap_takes_several_windows() {
        // 45 days behind with Salesforce's now at `now`: each window ends where the last
        // covered, the last one short of its end.
        let now = parse_datetime("2024-07-01T00:00:00Z").unwrap();
        let mut start = now - 45 * DAY_MS;
        let mut calls = 0;
        loop {
            let (s, e) = window(start);
            calls += 1;
            let latest = Some(e.min(now));
            match next_start(s, e, latest) {
                Some(n) => start = n,
                None => break,
            }
        }
        assert_eq!(calls, 2);
        // Already at the present: one call that covers nothing new ends the check.
        let (s, e) = window(now);
        assert_eq!(next_start(s, e, Some(s)), None);
        assert_eq!(next_start(s, e, None), None);
    }

    #[test]
    fn reconcile_only_when_the_mark_predates_what_is_available() {
        let mark = parse_datetime("2024-05-20T00:00:00Z").unwrap();
        assert!(!must_reconcile(mark, None));
        assert!(!must_reconcile(mark, Some(mark)));
        assert!(!must_reconcile(mark, Some(mark - DAY_MS)));
        assert!(must_reconcile(mark, Some(mark + 1)));
    }

    #[test]
    fn listing_queries() {
        assert_eq!(ids_query("Account", None).unwrap(), "SELECT Id FROM Account");
        assert_eq!(ids_query("Account", Some("Industry = 'Energy'")).unwrap(), "SELECT Id FROM Account WHERE (Industry = 'Energy')");
        assert!(ids_query("Acc ount", None).is_err());
        let q = existing_query("Account", &["001000000000001AAA", "001000000000002AAA"]).unwrap();
        assert_eq!(q, "SELECT Id FROM Account WHERE Id IN ('001000000000001AAA', '001000000000002AAA')");
        assert!(existing_query("Account", &["x' OR Name != '"]).is_err());
    }
}
