//! SOQL literal formatting and escaping.
//!
//! Everything a caller splices into a SOQL statement must go through these
//! helpers: [`quote`] for string values, [`datetime`] for timestamps and
//! [`is_valid_identifier`] to check object/field names (which cannot be quoted).

use std::time::{Duration, SystemTime, UNIX_EPOCH};
use time::macros::format_description;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Escapes a value for use inside a SOQL string literal (without the quotes).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c => out.push(c),
        }
    }
    out
}

/// A SOQL string literal: `'...'` with `\ ' " \n \r \t \b \f` escaped.
pub fn quote(s: &str) -> String {
    format!("'{}'", escape(s))
}

/// A SOQL string literal for the right-hand side of `LIKE`, where the
/// caller's `%` and `_` must match literally (`\%`, `\_`). Add wildcards
/// around the result yourself, e.g. `format!("'%{}%'", like_escape(s))`.
pub fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in escape(s).chars() {
        match c {
            '%' => out.push_str("\\%"),
            '_' => out.push_str("\\_"),
            c => out.push(c),
        }
    }
    out
}

/// `('a', 'b', 'c')` for `IN` clauses. An empty slice yields `('')`
/// (SOQL rejects an empty list).
pub fn in_list<S: AsRef<str>>(values: &[S]) -> String {
    if values.is_empty() {
        return "('')".to_string();
    }
    let parts: Vec<String> = values.iter().map(|v| quote(v.as_ref())).collect();
    format!("({})", parts.join(", "))
}

/// A point in time with millisecond precision (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// Seconds since the Unix epoch (may be negative).
    pub secs: i64,
    /// 0..=999
    pub millis: u32,
}

impl Timestamp {
    pub fn new(secs: i64, millis: u32) -> Timestamp {
        Timestamp { secs: secs + i64::from(millis / 1000), millis: millis % 1000 }
    }

    /// Milliseconds since the Unix epoch.
    pub fn as_millis(&self) -> i64 {
        self.secs * 1000 + i64::from(self.millis)
    }

    pub fn from_millis(ms: i64) -> Timestamp {
        Timestamp { secs: ms.div_euclid(1000), millis: ms.rem_euclid(1000) as u32 }
    }

    pub fn to_system_time(&self) -> SystemTime {
        let ms = self.as_millis();
        if ms >= 0 {
            UNIX_EPOCH + Duration::from_millis(ms as u64)
        } else {
            UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
        }
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Timestamp {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp::new(d.as_secs() as i64, d.subsec_millis()),
            Err(e) => {
                let d = e.duration();
                // round toward -inf at millisecond precision
                let ms = d.as_millis() as i64 + i64::from(d.subsec_nanos() % 1_000_000 != 0);
                Timestamp::from_millis(-ms)
            }
        }
    }
}

impl From<(i64, u32)> for Timestamp {
    fn from((secs, millis): (i64, u32)) -> Timestamp {
        Timestamp::new(secs, millis)
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&datetime(*self))
    }
}

/// `ts` in UTC, saturating at the `time` crate's range (years -9999..=9999; SOQL's is narrower).
fn utc(ts: Timestamp) -> OffsetDateTime {
    let nanos = i128::from(ts.secs) * 1_000_000_000 + i128::from(ts.millis) * 1_000_000;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(if ts.secs < 0 {
        PrimitiveDateTime::MIN.assume_utc()
    } else {
        PrimitiveDateTime::MAX.assume_utc()
    })
}

/// SOQL datetime literal in UTC, e.g. `2024-05-20T20:49:32.000Z` (no quotes).
/// Accepts a [`SystemTime`], a [`Timestamp`] or `(unix_secs, millis)`.
pub fn datetime(ts: impl Into<Timestamp>) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    utc(ts.into()).format(format).expect("an OffsetDateTime has every component of the format")
}

/// SOQL date literal `YYYY-MM-DD` of the UTC day containing `ts`.
pub fn date(ts: impl Into<Timestamp>) -> String {
    utc(ts.into()).date().format(format_description!("[year]-[month]-[day]")).expect("a Date has every component of the format")
}

fn digits(s: &[u8], at: usize, n: usize) -> Option<u32> {
    let part = s.get(at..at + n)?;
    if !part.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(part).ok()?.parse().ok()
}

/// Parses Salesforce datetimes: `2024-05-20T20:49:32.000+0000` (REST JSON),
/// `2024-05-20T20:49:32Z`, `...+00:00`, `...-0700`, `...+05`, with 0-9 fractional
/// digits (truncated to milliseconds), `T`, `t` or a space before the time and UTC
/// when there is no zone; second 60 reads as the next minute's :00. Returns `None`
/// for anything else.
///
/// Scanned by hand rather than with a `time` format description, which can't say
/// "zone optional", `+HH` or second 60; `time` validates and converts the fields.
pub fn parse_datetime(s: &str) -> Option<Timestamp> {
    let b = s.trim().as_bytes();
    if b.len() < 19 {
        return None;
    }
    if b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't' || b[10] == b' ') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let month = Month::try_from(digits(b, 5, 2)? as u8).ok()?;
    let date = Date::from_calendar_date(digits(b, 0, 4)? as i32, month, digits(b, 8, 2)? as u8).ok()?;
    // `Time` stops at 59: a leap second is built as :59 and the second added back below.
    let sec = digits(b, 17, 2)?;
    if sec > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0u16;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let frac = &b[start..i];
        if frac.is_empty() || frac.len() > 9 {
            return None;
        }
        for k in 0..3 {
            millis = millis * 10 + frac.get(k).map_or(0, |c| u16::from(c - b'0'));
        }
    }
    let time = Time::from_hms_milli(digits(b, 11, 2)? as u8, digits(b, 14, 2)? as u8, sec.min(59) as u8, millis).ok()?;
    let offset = match &b[i..] {
        [] | [b'Z'] | [b'z'] => UtcOffset::UTC,
        [sign @ (b'+' | b'-'), rest @ ..] => {
            let (oh, om) = match rest.len() {
                4 => (digits(rest, 0, 2)?, digits(rest, 2, 2)?),
                5 if rest[2] == b':' => (digits(rest, 0, 2)?, digits(rest, 3, 2)?),
                2 => (digits(rest, 0, 2)?, 0),
                _ => return None,
            };
            // Hours past 23 stay rejected, though `UtcOffset` would take up to 25.
            if oh > 23 {
                return None;
            }
            let (oh, om) = (oh as i8, om as i8);
            if *sign == b'-' {
                UtcOffset::from_hms(-oh, -om, 0).ok()?
            } else {
                UtcOffset::from_hms(oh, om, 0).ok()?
            }
        }
        _ => return None,
    };
    let at = PrimitiveDateTime::new(date, time).assume_offset(offset);
    Some(Timestamp { secs: at.unix_timestamp() + i64::from(sec == 60), millis: u32::from(millis) })
}

/// Object and field API names (and relationship paths such as
/// `Account.Owner.Name`): each dot-separated part starts with an ASCII letter
/// and has only ASCII letters, digits and underscores, no trailing or doubled
/// dots, at most 255 characters in all. Nothing that could break out of a
/// SOQL identifier position (spaces, quotes, parentheses, commas) passes.
pub fn is_valid_identifier(s: &str) -> bool {
    if s.is_empty() || s.len() > 255 {
        return false;
    }
    s.split('.').all(|part| {
        let mut chars = part.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !part.ends_with('_')
            && part.len() <= 80
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_escapes_everything() {
        assert_eq!(quote("abc"), "'abc'");
        assert_eq!(quote("O'Brien"), r"'O\'Brien'");
        assert_eq!(quote(r"back\slash"), r"'back\\slash'");
        assert_eq!(quote("say \"hi\""), r#"'say \"hi\"'"#);
        assert_eq!(quote("a\nb\rc\td\u{8}e\u{c}f"), r"'a\nb\rc\td\be\ff'");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("日本"), "'日本'");
        // % and _ are literal outside LIKE
        assert_eq!(quote("100%_x"), "'100%_x'");
    }

    /// Every unescaped quote in the output must be the delimiter: walk the
    /// literal like a SOQL lexer and check it ends exactly at the end.
    fn lex_literal_end(lit: &str) -> usize {
        let b = lit.as_bytes();
        assert_eq!(b[0], b'\'');
        let mut i = 1;
        while i < b.len() {
            match b[i] {
                b'\\' => i += 2,
                b'\'' => return i,
                _ => i += 1,
            }
        }
        panic!("unterminated literal {lit}");
    }

    #[test]
    fn injection_attempts_stay_inside_literal() {
        for evil in
            ["' OR Name != '", "\\' OR Id != null OR Name = '", "x\\", "\\", "'; DELETE", "' OR '1'='1", "\\\\' OR 1=1 --", "a'b\\'c\\\\'d"]
        {
            let q = quote(evil);
            assert_eq!(lex_literal_end(&q), q.len() - 1, "escape failed for {evil:?}: {q}");
        }
    }

    #[test]
    fn like_and_in() {
        assert_eq!(like_escape("50%_o'k"), r"50\%\_o\'k");
        assert_eq!(in_list(&["a", "b'c"]), r"('a', 'b\'c')");
        assert_eq!(in_list::<&str>(&[]), "('')");
    }

    #[test]
    fn datetime_formatting() {
        assert_eq!(datetime((0i64, 0u32)), "1970-01-01T00:00:00.000Z");
        assert_eq!(datetime((1_716_238_172, 5)), "2024-05-20T20:49:32.005Z");
        assert_eq!(datetime(UNIX_EPOCH + Duration::from_millis(1_716_238_172_123)), "2024-05-20T20:49:32.123Z");
        assert_eq!(datetime((951_782_400i64, 0u32)), "2000-02-29T00:00:00.000Z");
        assert_eq!(datetime((-1i64, 0u32)), "1969-12-31T23:59:59.000Z");
        assert_eq!(datetime(UNIX_EPOCH - Duration::from_millis(1)), "1969-12-31T23:59:59.999Z");
        assert_eq!(datetime((253_402_300_799i64, 999u32)), "9999-12-31T23:59:59.999Z");
        assert_eq!(date((1_716_238_172i64, 0u32)), "2024-05-20");
        assert_eq!(Timestamp::new(1, 1500), Timestamp { secs: 2, millis: 500 });
    }

    #[test]
    fn datetime_parsing() {
        let want = Timestamp { secs: 1_716_238_172, millis: 0 };
        assert_eq!(parse_datetime("2024-05-20T20:49:32.000+0000"), Some(want));
        assert_eq!(parse_datetime("2024-05-20T20:49:32Z"), Some(want));
        assert_eq!(parse_datetime("2024-05-20T20:49:32.000Z"), Some(want));
        assert_eq!(parse_datetime("2024-05-20T22:49:32.000+02:00"), Some(want));
        assert_eq!(parse_datetime("2024-05-20T13:49:32.000-0700"), Some(want));
        assert_eq!(parse_datetime("2024-05-20T20:49:32"), Some(want));
        assert_eq!(parse_datetime("2024-05-20T20:49:32.1234567Z"), Some(Timestamp { secs: 1_716_238_172, millis: 123 }));
        assert_eq!(parse_datetime("2024-05-20T20:49:32.5Z").unwrap().millis, 500);
        for bad in [
            "",
            "2024-05-20",
            "2024-13-01T00:00:00Z",
            "2024-02-30T00:00:00Z",
            "2024-05-20T20:49:32.Z",
            "2024-05-20T20:49:32+25:00",
            "2024-05-20T20:49:32 junk",
            "2024/05/20T20:49:32Z",
            "２024-05-20T20:49:32Z",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
        // round trip
        for ms in [0i64, 1, 999, 1_716_238_172_123, -1, -86_400_001, 4_102_444_800_000] {
            let t = Timestamp::from_millis(ms);
            assert_eq!(parse_datetime(&datetime(t)), Some(t), "{ms}");
        }
        assert_eq!(Timestamp::from(want.to_system_time()), want);
    }

    #[test]
    fn datetime_edges() {
        let want = Timestamp { secs: 1_716_238_172, millis: 0 };
        assert_eq!(parse_datetime("2024-05-20t20:49:32z"), Some(want));
        assert_eq!(parse_datetime(" 2024-05-20 20:49:32+00 "), Some(want));
        assert_eq!(parse_datetime("2024-05-21T05:49:32+09"), Some(want));
        assert_eq!(parse_datetime("2024-05-20T20:19:32-00:30"), Some(want));
        assert_eq!(parse_datetime("2024-05-20T20:49:32.123456789Z").unwrap().millis, 123);
        // Gregorian leap years: 2000 has a February 29th, 1900 not.
        assert_eq!(datetime(parse_datetime("2000-02-29T00:00:00Z").unwrap()), "2000-02-29T00:00:00.000Z");
        // A leap second is the next minute's :00.
        assert_eq!(parse_datetime("2016-12-31T23:59:60.250Z"), Some(Timestamp::from_millis(1_483_228_800_250)));
        for bad in [
            "1900-02-29T00:00:00Z",
            "2023-04-31T00:00:00Z",
            "2024-05-20T24:00:00Z",
            "2024-05-20T20:60:00Z",
            "2024-05-20T20:49:61Z",
            "2024-05-20T20:49:32.1234567890Z",
            "2024-05-20T20:49:32+2400",
            "2024-05-20T20:49:32+0060",
            "2024-05-20T20:49:32+05:",
            "+2024-05-20T20:49:32Z",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
        // Past the calendar's range (years ±9999) formatting saturates.
        assert_eq!(datetime((i64::MAX, 0u32)), "9999-12-31T23:59:59.999Z");
        assert_eq!(datetime((i64::MIN, 0u32)), "-9999-01-01T00:00:00.000Z");
        assert_eq!(date((i64::MAX, 0u32)), "9999-12-31");
    }

    #[test]
    fn identifiers() {
        for ok in ["Account", "Postgres_Id__c", "Account.Owner.Name", "ns__Obj__c", "a1", "LastModifiedDate"] {
            assert!(is_valid_identifier(ok), "{ok}");
        }
        for bad in ["", "1abc", "_x", "Name,Id", "Name FROM", "a..b", ".a", "a.", "x'", "Id)", "Name__", "a-b", "Nämé", "a b"] {
            assert!(!is_valid_identifier(bad), "{bad}");
        }
        assert!(!is_valid_identifier(&"a".repeat(81)));
    }
}
