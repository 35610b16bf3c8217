//! Values checked and converted locally before they are sent (docs/type-mapping.md, "What
//! the push checks"). A value Salesforce would refuse — a date that does not parse, a string
//! over the field's length, a value a restricted picklist does not allow, a number beyond the
//! field's precision, a non-boolean for a checkbox — becomes that record's error, with the
//! code Salesforce itself uses, and no call is made for the record. Salesforce would refuse
//! some of them for the whole request (JSON_PARSER_ERROR), holding up every other record.

use super::compat::is_text_field;
use super::convert;
use super::fields::ColumnMap;
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

/// What the describe says a field's values must fit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Characters a text field holds (0: not said).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub length: i64,
    /// Digits of a number field, `scale` of them after the point (0: not said).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub precision: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub scale: i64,
    /// A restricted picklist's values (None: any value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picklist: Option<Vec<String>>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// Why a value cannot be sent: Salesforce's code for it, and a message naming the field.
#[derive(Debug, Clone, PartialEq)]
pub struct Invalid {
    pub code: &'static str,
    pub message: String,
}

pub const BAD_TYPE: &str = "INVALID_TYPE_ON_FIELD_IN_RECORD";
pub const TOO_LONG: &str = "STRING_TOO_LONG";
pub const BAD_PICKLIST: &str = "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST";
pub const OUT_OF_RANGE: &str = "NUMBER_OUTSIDE_VALID_RANGE";

/// The value to send for column `col`, or why it cannot be sent.
pub fn to_sf(col: &ColumnMap, v: &Value) -> Result<Value, Invalid> {
    let raw = v;
    let v = convert::to_sf(col, v);
    if v.is_null() {
        return Ok(v);
    }
    let bad =
        |what: &str| Invalid { code: BAD_TYPE, message: format!("{}: value not of required type ({what}): {}", col.field, shown(col, &v)) };
    let s = v.as_str();
    match col.sf_type.as_str() {
        // The date part of a timestamp is sent; the whole value must be a date or timestamp.
        "date" => raw.as_str().and_then(datetime_utc_ms).map(|_| v.clone()).ok_or_else(|| bad("a date, YYYY-MM-DD")),
        "datetime" => s.and_then(datetime_utc_ms).map(Value::String).ok_or_else(|| bad("a date and time")),
        "time" => s.and_then(time_ms).map(Value::String).ok_or_else(|| bad("a time, HH:MM:SS")),
        "boolean" => match &v {
            Value::Bool(_) => Ok(v.clone()),
            Value::String(s) => parse_bool(s).map(Value::Bool).ok_or_else(|| bad("true or false")),
            _ => Err(bad("true or false")),
        },
        "int" | "long" | "double" | "currency" | "percent" => number(col, &v).ok_or_else(|| bad("a number"))?,
        "base64" => match s {
            // bytea renders as \x<hex>; Salesforce wants the content base64-encoded.
            Some(h) if h.starts_with("\\x") => hex_to_base64(&h[2..]).map(Value::String).ok_or_else(|| bad("binary data")),
            Some(_) => Ok(v.clone()),
            None => Err(bad("binary data")),
        },
        t if is_text_field(t) || t == "multipicklist" => {
            let text = s.unwrap_or_default();
            let n = text.chars().count() as i64;
            if col.limits.length > 0 && n > col.limits.length {
                return Err(Invalid {
                    code: TOO_LONG,
                    message: format!("{}: data value too large: {n} characters (max length={})", col.field, col.limits.length),
                });
            }
            if let Some(allowed) = &col.limits.picklist {
                let parts: Vec<&str> = if t == "multipicklist" { text.split(';').collect() } else { vec![text] };
                if let Some(p) = parts.iter().find(|p| !allowed.iter().any(|a| a == *p)) {
                    return Err(Invalid {
                        code: BAD_PICKLIST,
                        message: format!("{}: bad value for restricted picklist field: {p}", col.field),
                    });
                }
            }
            Ok(v)
        }
        _ => Ok(v),
    }
}

/// What a message may show of a value: not an encrypted field's, and not all of a long one.
fn shown(col: &ColumnMap, v: &Value) -> String {
    if col.sf_type == "encryptedstring" {
        return "(hidden)".into();
    }
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    // Postgres's own spellings of a boolean, as a text column may hold them.
    match s.trim().to_ascii_lowercase().as_str() {
        "t" | "true" | "yes" | "y" | "on" | "1" => Some(true),
        "f" | "false" | "no" | "n" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// A number for a number field, checked against its precision and scale: `Some(Err)` out
/// of range, `None` not a number.
fn number(col: &ColumnMap, v: &Value) -> Option<Result<Value, Invalid>> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    let d = Decimal::parse(&text)?;
    let out_of_range =
        || Invalid { code: OUT_OF_RANGE, message: format!("{}: value outside of valid range on numeric field: {text}", col.field) };
    let whole = d.frac.trim_end_matches('0').is_empty();
    if col.sf_type == "int" && (!whole || d.int.len() > 10 || text.parse::<f64>().ok()?.abs() > i32::MAX as f64) {
        return Some(Err(out_of_range()));
    }
    let l = &col.limits;
    if l.precision > 0 && d.int_digits(l.scale.max(0) as usize) as i64 > (l.precision - l.scale).max(0) {
        return Some(Err(out_of_range()));
    }
    let n: Number = match v {
        Value::Number(n) => n.clone(),
        _ => serde_json::from_str(&d.canonical()).ok()?,
    };
    Some(Ok(Value::Number(n)))
}

/// A decimal number's digits as text: sign, integer part, fraction (no exponent kept).
struct Decimal {
    negative: bool,
    int: String,
    frac: String,
}

impl Decimal {
    fn parse(s: &str) -> Option<Decimal> {
        let (mantissa, exp) = match s.find(['e', 'E']) {
            Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
            None => (s, 0),
        };
        let (negative, digits) = match mantissa.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if int.is_empty() && frac.is_empty() || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) || exp.abs() > 400 {
            return None;
        }
        // Move the point by the exponent.
        let all: String = format!("{int}{frac}");
        let point = int.len() as i32 + exp;
        let (int, frac) = if point <= 0 {
            (String::new(), format!("{}{all}", "0".repeat((-point) as usize)))
        } else if point as usize >= all.len() {
            (format!("{all}{}", "0".repeat(point as usize - all.len())), String::new())
        } else {
            (all[..point as usize].to_string(), all[point as usize..].to_string())
        };
        Some(Decimal { negative, int: int.trim_start_matches('0').to_string(), frac })
    }

    /// Integer digits once rounded to `scale` fraction digits (as Salesforce rounds).
    fn int_digits(&self, scale: usize) -> usize {
        let rounds_up = self.frac.as_bytes().get(scale).is_some_and(|d| *d >= b'5')
            && self.frac[..scale.min(self.frac.len())].bytes().all(|d| d == b'9');
        let all_nines = !self.int.is_empty() && self.int.bytes().all(|d| d == b'9');
        self.int.len() + usize::from(rounds_up && (all_nines || self.int.is_empty()))
    }

    fn canonical(&self) -> String {
        let int = if self.int.is_empty() { "0" } else { &self.int };
        let sign = if self.negative { "-" } else { "" };
        if self.frac.is_empty() {
            format!("{sign}{int}")
        } else {
            format!("{sign}{int}.{}", self.frac)
        }
    }
}

/// `YYYY-MM-DD` (a valid calendar day) at the start of `s`: (year, month, day, rest).
fn parse_date(s: &str) -> Option<(i64, u32, u32, &str)> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: i64 = s[..4].parse().ok()?;
    let m: u32 = s[5..7].parse().ok()?;
    let d: u32 = s[8..10].parse().ok()?;
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    let rest = &s[10..];
    // A date field takes only the date itself.
    Some((y, m, d, rest))
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// `HH:MM[:SS[.fff…]]` at the start of `s`: (milliseconds of the day, rest). Fractions
/// beyond milliseconds are cut: Salesforce keeps milliseconds.
fn parse_clock(s: &str) -> Option<(i64, &str)> {
    let b = s.as_bytes();
    if b.len() < 5 || b[2] != b':' {
        return None;
    }
    let h: i64 = s[..2].parse().ok()?;
    let mi: i64 = s[3..5].parse().ok()?;
    let mut rest = &s[5..];
    let mut sec = 0i64;
    let mut ms = 0i64;
    if let Some(r) = rest.strip_prefix(':') {
        sec = r.get(..2)?.parse().ok()?;
        rest = &r[2..];
        if let Some(r) = rest.strip_prefix('.') {
            let n = r.bytes().take_while(u8::is_ascii_digit).count();
            if n == 0 {
                return None;
            }
            let digits = format!("{:0<3}", &r[..n.min(3)]);
            ms = digits.parse().ok()?;
            rest = &r[n..];
        }
    }
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    Some((((h * 60 + mi) * 60 + sec) * 1000 + ms, rest))
}

/// A UTC offset in minutes: `Z`, `+hh`, `+hhmm`, `+hh:mm`, or nothing (UTC).
fn parse_offset(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() || s == "Z" || s == "z" {
        return Some(0);
    }
    let sign = match s.as_bytes()[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let d: String = s[1..].chars().filter(|c| *c != ':').collect();
    if !d.bytes().all(|b| b.is_ascii_digit()) || !matches!(d.len(), 2 | 4) {
        return None;
    }
    let h: i64 = d[..2].parse().ok()?;
    let m: i64 = if d.len() == 4 { d[2..].parse().ok()? } else { 0 };
    Some(sign * (h * 60 + m))
}

/// A date and time in any offset (or none: UTC) as Salesforce stores it: UTC, milliseconds,
/// `2024-05-20T18:49:32.123Z`. A date alone is its midnight UTC.
pub fn datetime_utc_ms(s: &str) -> Option<String> {
    let (y, m, d, rest) = parse_date(s.trim())?;
    let (ms_of_day, rest) = match rest.strip_prefix(['T', 't', ' ']) {
        Some(r) => parse_clock(r)?,
        None => (0, rest),
    };
    let offset = parse_offset(rest)?;
    let total = days_from_civil(y, m, d) * 86_400_000 + ms_of_day - offset * 60_000;
    let (y, m, d) = civil_from_days(total.div_euclid(86_400_000));
    let t = total.rem_euclid(86_400_000);
    if !(0..=9999).contains(&y) {
        return None;
    }
    Some(format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z", t / 3_600_000, t / 60_000 % 60, t / 1000 % 60, t % 1000))
}

/// A time of day as Salesforce's REST API writes it: `HH:MM:SS.sssZ`.
pub fn time_ms(s: &str) -> Option<String> {
    let (t, rest) = parse_clock(s.trim())?;
    if !rest.trim().is_empty() && parse_offset(rest)? != 0 {
        return None;
    }
    Some(format!("{:02}:{:02}:{:02}.{:03}Z", t / 3_600_000, t / 60_000 % 60, t / 1000 % 60, t % 1000))
}

fn hex_to_base64(hex: &str) -> Option<String> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect();
    Some(base64(&bytes?))
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::fields::test_column;
    use serde_json::json;

    fn col(sf: &str, pg: &str, limits: Limits) -> ColumnMap {
        ColumnMap { limits, ..test_column(sf, pg) }
    }

    fn code(r: Result<Value, Invalid>) -> &'static str {
        r.unwrap_err().code
    }

    #[test]
    fn dates_that_do_not_parse_are_refused() {
        let c = col("date", "text", Limits::default());
        assert_eq!(code(to_sf(&c, &json!("tomorrow"))), BAD_TYPE);
        assert_eq!(code(to_sf(&c, &json!("2024-02-30"))), BAD_TYPE);
        assert_eq!(to_sf(&c, &json!("2024-02-29")), Ok(json!("2024-02-29")));
        let e = to_sf(&c, &json!("tomorrow")).unwrap_err();
        assert!(e.message.starts_with("F: value not of required type") && e.message.contains("tomorrow"), "{}", e.message);
    }

    #[test]
    fn datetimes_go_as_utc_milliseconds() {
        let c = col("datetime", "timestamp with time zone", Limits::default());
        assert_eq!(to_sf(&c, &json!("2024-05-20T20:49:32.123456+02:00")), Ok(json!("2024-05-20T18:49:32.123Z")));
        assert_eq!(to_sf(&c, &json!("2024-01-01T00:30:00-01:30")), Ok(json!("2024-01-01T02:00:00.000Z")));
        assert_eq!(to_sf(&c, &json!("2024-01-01T00:30:00+05")), Ok(json!("2023-12-31T19:30:00.000Z")));
        assert_eq!(
            to_sf(&col("datetime", "timestamp", Limits::default()), &json!("2024-05-20T20:49:32")),
            Ok(json!("2024-05-20T20:49:32.000Z"))
        );
        assert_eq!(to_sf(&col("datetime", "text", Limits::default()), &json!("2024-05-20 08:00")), Ok(json!("2024-05-20T08:00:00.000Z")));
        assert_eq!(code(to_sf(&c, &json!("soon"))), BAD_TYPE);
        assert_eq!(code(to_sf(&c, &json!("2024-05-20T25:00:00Z"))), BAD_TYPE);
    }

    #[test]
    fn times_go_with_milliseconds() {
        let c = col("time", "time without time zone", Limits::default());
        assert_eq!(to_sf(&c, &json!("08:30:00.123456")), Ok(json!("08:30:00.123Z")));
        assert_eq!(to_sf(&c, &json!("08:30")), Ok(json!("08:30:00.000Z")));
        assert_eq!(code(to_sf(&c, &json!("noon"))), BAD_TYPE);
    }

    #[test]
    fn booleans_take_postgres_spellings_only() {
        let c = col("boolean", "text", Limits::default());
        assert_eq!(to_sf(&c, &json!("yes")), Ok(json!(true)));
        assert_eq!(to_sf(&c, &json!("f")), Ok(json!(false)));
        assert_eq!(to_sf(&c, &json!(true)), Ok(json!(true)));
        assert_eq!(code(to_sf(&c, &json!("maybe"))), BAD_TYPE);
        assert_eq!(code(to_sf(&c, &json!(1))), BAD_TYPE);
    }

    #[test]
    fn strings_over_the_length_are_refused() {
        let c = col("string", "text", Limits { length: 5, ..Limits::default() });
        assert_eq!(to_sf(&c, &json!("héllo")), Ok(json!("héllo")), "characters, not bytes");
        let e = to_sf(&c, &json!("hello!")).unwrap_err();
        assert_eq!(e.code, TOO_LONG);
        assert_eq!(e.message, "F: data value too large: 6 characters (max length=5)");
        assert_eq!(to_sf(&col("string", "text", Limits::default()), &json!("x".repeat(1000))), Ok(json!("x".repeat(1000))));
    }

    #[test]
    fn restricted_picklists_take_their_values_only() {
        let l = Limits { picklist: Some(vec!["Gold".into(), "Silver".into()]), ..Limits::default() };
        assert_eq!(to_sf(&col("picklist", "text", l.clone()), &json!("Gold")), Ok(json!("Gold")));
        assert_eq!(code(to_sf(&col("picklist", "text", l.clone()), &json!("gold"))), BAD_PICKLIST);
        assert_eq!(to_sf(&col("multipicklist", "text[]", l.clone()), &json!(["Gold", "Silver"])), Ok(json!("Gold;Silver")));
        assert_eq!(code(to_sf(&col("multipicklist", "text[]", l), &json!(["Gold", "Tin"]))), BAD_PICKLIST);
        assert_eq!(to_sf(&col("picklist", "text", Limits::default()), &json!("Anything")), Ok(json!("Anything")));
    }

    #[test]
    fn numbers_are_checked_against_precision_and_scale() {
        let c = col("currency", "numeric", Limits { precision: 5, scale: 2, ..Limits::default() });
        assert_eq!(to_sf(&c, &json!(999.99)), Ok(json!(999.99)));
        assert_eq!(to_sf(&c, &json!(999.994)), Ok(json!(999.994)), "rounds to 999.99");
        assert_eq!(code(to_sf(&c, &json!(999.995))), OUT_OF_RANGE, "rounds to 1000.00");
        assert_eq!(code(to_sf(&c, &json!(1000))), OUT_OF_RANGE);
        assert_eq!(to_sf(&c, &json!("12.5")), Ok(json!(12.5)), "a text column's number");
        assert_eq!(code(to_sf(&c, &json!("lots"))), BAD_TYPE);
        assert_eq!(code(to_sf(&c, &json!({"a": 1}))), BAD_TYPE);
        let whole = col("currency", "numeric", Limits { precision: 18, scale: 0, ..Limits::default() });
        assert_eq!(code(to_sf(&whole, &json!("1e18"))), OUT_OF_RANGE);
        assert!(to_sf(&whole, &json!("1e17")).is_ok());
        let int = col("int", "bigint", Limits::default());
        assert_eq!(code(to_sf(&int, &json!(1.5))), OUT_OF_RANGE);
        assert_eq!(code(to_sf(&int, &json!(3_000_000_000i64))), OUT_OF_RANGE);
        assert_eq!(to_sf(&int, &json!(42)), Ok(json!(42)));
    }

    #[test]
    fn bytea_goes_base64_encoded() {
        let c = col("base64", "bytea", Limits::default());
        assert_eq!(to_sf(&c, &json!("\\x68656c6c6f")), Ok(json!("aGVsbG8=")));
        assert_eq!(to_sf(&c, &json!("\\x")), Ok(json!("")));
        assert_eq!(to_sf(&c, &json!("\\x6869")), Ok(json!("aGk=")));
    }

    #[test]
    fn calendar_arithmetic_round_trips() {
        for days in [-800_000i64, -1, 0, 59, 10_957, 19_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(datetime_utc_ms("2024-02-29T23:59:59.999-00:01"), Some("2024-03-01T00:00:59.999Z".into()));
    }

    #[test]
    fn nulls_pass() {
        assert_eq!(to_sf(&col("date", "date", Limits::default()), &Value::Null), Ok(Value::Null));
    }
}
