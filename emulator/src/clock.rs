//! The emulator clock (real time plus an admin-settable offset) and Salesforce's date/datetime
//! wire formats. The store keeps dates as days and datetimes as milliseconds since the Unix epoch;
//! the calendar behind them (validation, epoch conversion, formatting) is the `time` crate's.

use parking_lot::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, Time};

pub const DAY_MS: i64 = 86_400_000;

pub struct Clock {
    inner: Mutex<ClockState>,
}

struct ClockState {
    offset_ms: i64,
    /// Last SystemModstamp handed out; stamps are strictly increasing so pollers never miss a write.
    last_stamp: i64,
}

impl Default for Clock {
    fn default() -> Self {
        Clock { inner: Mutex::new(ClockState { offset_ms: 0, last_stamp: 0 }) }
    }
}

fn real_now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Clock {
    pub fn now_ms(&self) -> i64 {
        real_now_ms() + self.inner.lock().offset_ms
    }
    /// A write timestamp: now, but strictly greater than every earlier stamp.
    pub fn stamp(&self) -> i64 {
        let mut s = self.inner.lock();
        let now = real_now_ms() + s.offset_ms;
        s.last_stamp = now.max(s.last_stamp + 1);
        s.last_stamp
    }
    pub fn offset_ms(&self) -> i64 {
        self.inner.lock().offset_ms
    }
    pub fn set_offset(&self, ms: i64) {
        self.inner.lock().offset_ms = ms;
    }
    pub fn advance(&self, ms: i64) {
        self.inner.lock().offset_ms += ms;
    }
}

/// Julian day number of 1970-01-01, day 0 of the store's dates.
const EPOCH_JULIAN_DAY: i32 = OffsetDateTime::UNIX_EPOCH.to_julian_day();

/// `YYYY-MM-DD`.
const DATE: &[BorrowedFormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// Days since 1970-01-01.
pub fn epoch_day(date: Date) -> i64 {
    i64::from(date.to_julian_day() - EPOCH_JULIAN_DAY)
}

/// The date `day` days after 1970-01-01, saturating at the `time` crate's range (years ±9999).
pub fn date_of(day: i64) -> Date {
    let julian = i32::try_from(day.saturating_add(i64::from(EPOCH_JULIAN_DAY))).ok();
    julian.and_then(|j| Date::from_julian_day(j).ok()).unwrap_or(if day < 0 { Date::MIN } else { Date::MAX })
}

/// `2024-05-20T20:49:32.000+0000`, the format Salesforce returns. Saturates at the `time`
/// crate's range (years ±9999).
pub fn format_datetime(ms: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(if ms < 0 {
        PrimitiveDateTime::MIN.assume_utc()
    } else {
        PrimitiveDateTime::MAX.assume_utc()
    });
    at.format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000"))
        .expect("an OffsetDateTime has every component of the format")
}

/// `YYYY-MM-DD` of day `days` since the epoch, saturating like [`format_datetime`].
pub fn format_date(days: i32) -> String {
    date_of(days.into()).format(DATE).expect("a Date has every component of the format")
}

/// `YYYY-MM-DD` → days since epoch.
pub fn parse_date(s: &str) -> Option<i32> {
    // Ten bytes exactly: `[year]` would also take a sign, which no ten-byte input can fit.
    if s.len() != 10 {
        return None;
    }
    Date::parse(s, DATE).ok().map(|d| epoch_day(d) as i32)
}

fn num<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.bytes().all(|b| b.is_ascii_digit()) {
        s.parse().ok()
    } else {
        None
    }
}

/// ISO-8601 datetimes as Salesforce accepts them: `YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm|±hhmm)`.
/// A missing zone means UTC. Returns epoch milliseconds.
pub fn parse_datetime(s: &str) -> Option<i64> {
    if s.len() < 19 || s.as_bytes()[10] != b'T' && s.as_bytes()[10] != b' ' {
        return None;
    }
    let date = Date::parse(&s[..10], DATE).ok()?;
    let time = Time::parse(s.get(11..19)?, format_description!("[hour]:[minute]:[second]")).ok()?;
    // Any number of fractional digits and a loosely written zone: past `time`'s format
    // descriptions, so scanned here.
    let mut rest = &s[19..];
    let mut millis = 0i64;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        let digits = &frac[..n];
        // Keep millisecond precision; extra digits are truncated like Salesforce does.
        let padded = format!("{:0<3}", &digits[..n.min(3)]);
        millis = padded.parse().ok()?;
        rest = &frac[n..];
    }
    let offset_min: i64 = match rest {
        "" | "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let z = rest[1..].replace(':', "");
            if z.len() != 4 {
                return None;
            }
            let (oh, om): (i64, i64) = (num(z.get(0..2)?)?, num(z.get(2..4)?)?);
            sign * (oh * 60 + om)
        }
    };
    let secs = PrimitiveDateTime::new(date, time).assume_utc().unix_timestamp();
    Some(secs * 1000 + millis - offset_min * 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_roundtrip_and_forms() {
        let ms = parse_datetime("2024-05-20T20:49:32.000+0000").unwrap();
        assert_eq!(format_datetime(ms), "2024-05-20T20:49:32.000+0000");
        assert_eq!(parse_datetime("2024-05-20T20:49:32Z"), Some(ms));
        assert_eq!(parse_datetime("2024-05-20T20:49:32+00:00"), Some(ms));
        assert_eq!(parse_datetime("2024-05-20T20:49:32"), Some(ms));
        assert_eq!(parse_datetime("2024-05-20T22:49:32.000+02:00"), Some(ms));
        assert_eq!(parse_datetime("2024-05-20T20:49:32.123456Z"), Some(ms + 123));
        assert_eq!(ms, 1_716_238_172_000);
        assert!(parse_datetime("2024-02-30T00:00:00Z").is_none());
        assert!(parse_datetime("2024-05-20").is_none());
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(format_date(parse_date("2024-02-29").unwrap()), "2024-02-29");
        assert!(parse_date("2023-02-29").is_none());
        assert_eq!(format_date(-1), "1969-12-31");
        assert_eq!(parse_date("2000-02-29"), Some(11_016));
        assert!(parse_date("1900-02-29").is_none());
        assert!(parse_date("+202-01-01").is_none());
        assert!(parse_date("2024-5-20").is_none());
        assert_eq!(epoch_day(date_of(19_858)), 19_858);
        // Past the calendar's range (years ±9999) formatting saturates.
        assert_eq!(format_date(i32::MAX), "9999-12-31");
        assert_eq!(format_date(i32::MIN), "-9999-01-01");
        assert_eq!(format_datetime(i64::MAX), "9999-12-31T23:59:59.999+0000");
    }

    #[test]
    fn datetime_edges() {
        let ms = 1_716_238_172_000;
        assert_eq!(parse_datetime("2024-05-20 20:49:32z"), Some(ms));
        assert_eq!(parse_datetime("2024-05-20T13:49:32-0700"), Some(ms));
        assert_eq!(parse_datetime("2024-05-20T20:49:32.1234567890123Z"), Some(ms + 123));
        for bad in [
            "2024-05-20t20:49:32Z",
            "2024-05-20T20:49:60Z",
            "2024-05-20T24:00:00Z",
            "2024-05-20T20:49:32.Z",
            "2024-05-20T20:49:32+05",
            "2024-05-20T20:49:3é",
            "2024-05-20T20:49:32+0é0",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
        }
    }
}
