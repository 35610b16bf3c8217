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
    if !is_valid_identifier(sobject) {
        return Err(format!("invalid Salesforce name {sobject:?}"));
    }
    Ok(match filter.filter(|f| !f.trim().is_empty()) {
        Some(f) => format!("SELECT Id FROM {sobject} WHERE ({f})"),
        None => format!("SELECT Id FROM {sobject}"),
    })
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

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// Salesforce dateTime (`2024-05-20T20:49:32.000+0000`, `...Z`, `...+00:00`) → epoch ms.
pub fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim();
    let num = |a: usize, b: usize| s.get(a..b).filter(|t| t.bytes().all(|c| c.is_ascii_digit())).and_then(|t| t.parse::<i64>().ok());
    if s.len() < 19 || &s[4..5] != "-" || &s[7..8] != "-" || &s[10..11] != "T" {
        return None;
    }
    let (y, mo, d, h, mi, sec) = (num(0, 4)?, num(5, 7)?, num(8, 10)?, num(11, 13)?, num(14, 16)?, num(17, 19)?);
    let mut rest = &s[19..];
    let mut ms = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        let f = &frac[..digits];
        ms = format!("{f:0<3}")[..3].parse().ok()?;
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "" | "Z" => 0,
        _ => {
            let sign = match &rest[..1] {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let digits: String = rest[1..].chars().filter(|c| *c != ':').collect();
            if digits.len() != 4 || !digits.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            sign * (digits[..2].parse::<i64>().ok()? * 60 + digits[2..].parse::<i64>().ok()?)
        }
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    Some(((days * 24 + h) * 60 + mi - offset_min) * MINUTE_MS + sec * 1000 + ms)
}

/// Epoch ms → `2024-05-20T20:49:00Z` (what getDeleted and SOQL accept).
pub fn format_datetime(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(DAY_MS), ms.rem_euclid(DAY_MS));
    let (y, m, d) = civil_from_days(days);
    let s = rem / 1000;
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_round_trip() {
        let t = parse_datetime("2024-05-20T20:49:32.123+0000").unwrap();
        assert_eq!(format_datetime(t), "2024-05-20T20:49:32Z");
        assert_eq!(t % 1000, 123);
        assert_eq!(parse_datetime("2024-05-20T20:49:32Z"), Some(t - 123));
        assert_eq!(parse_datetime("2024-05-20T22:49:32.123+02:00"), Some(t));
        assert_eq!(parse_datetime("2024-02-29T00:00:00Z").map(format_datetime).as_deref(), Some("2024-02-29T00:00:00Z"));
        assert_eq!(parse_datetime("1970-01-01T00:00:00.000+0000"), Some(0));
        assert!(parse_datetime("2024-05-20 20:49").is_none());
        assert!(parse_datetime("2024-13-20T20:49:00Z").is_none());
    }

    #[test]
    fn windows_are_minute_aligned_and_at_most_thirty_days() {
        let start = parse_datetime("2024-05-20T20:49:32Z").unwrap();
        let (s, e) = window(start);
        assert_eq!(format_datetime(s), "2024-05-20T20:49:00Z");
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
