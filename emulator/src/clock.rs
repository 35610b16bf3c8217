//! The emulator clock (real time plus an admin-settable offset) and Salesforce's date/datetime
//! wire formats. Kept dependency-free: civil-date math is a few lines.

use parking_lot::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

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

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// `2024-05-20T20:49:32.000+0000`, the format Salesforce returns.
pub fn format_datetime(ms: i64) -> String {
    let days = ms.div_euclid(DAY_MS);
    let rem = ms.rem_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    let (h, mi, s, milli) = (rem / 3_600_000, rem / 60_000 % 60, rem / 1000 % 60, rem % 1000);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}+0000")
}

pub fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `YYYY-MM-DD` → days since epoch.
pub fn parse_date(s: &str) -> Option<i32> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = num(&s[0..4])?;
    let m: u32 = num(&s[5..7])?;
    let d: u32 = num(&s[8..10])?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d) as i32)
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
    let days = parse_date(&s[..10])? as i64;
    let t = &s[11..];
    let tb = t.as_bytes();
    if tb.len() < 8 || tb[2] != b':' || tb[5] != b':' {
        return None;
    }
    let (h, mi, sec): (i64, i64, i64) = (num(&t[0..2])?, num(&t[3..5])?, num(&t[6..8])?);
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    let mut rest = &t[8..];
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
            let (oh, om): (i64, i64) = (num(&z[0..2])?, num(&z[2..4])?);
            sign * (oh * 60 + om)
        }
    };
    Some(days * DAY_MS + (h * 3600 + mi * 60 + sec) * 1000 + millis - offset_min * 60_000)
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
    }
}
