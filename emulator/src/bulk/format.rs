//! Bulk API 2.0 CSV output: quoting, values as query results print them, query result pages,
//! ingest result rows, and the opaque result-page locators.

use super::QueryCol;
use crate::schema::Schema;
use crate::store::Store;
use crate::value::Value;

/// Appends `s` as a quoted CSV field (RFC 4180: quotes doubled).
pub fn push_quoted(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    if s.contains('"') {
        buf.extend_from_slice(s.replace('"', "\"\"").as_bytes());
    } else {
        buf.extend_from_slice(s.as_bytes());
    }
    buf.push(b'"');
}

/// `2024-05-20T20:49:32.000Z`, the datetime form of Bulk API 2.0 query results.
pub fn format_datetime_z(ms: i64) -> String {
    let s = crate::clock::format_datetime(ms);
    match s.strip_suffix("+0000") {
        Some(p) => format!("{p}Z"),
        None => s,
    }
}

/// A value as query results print it: booleans `true`/`false`, nulls empty.
pub fn csv_value(v: &Value) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    match v {
        Value::Null => Cow::Borrowed(""),
        Value::Str(s) => Cow::Borrowed(s),
        Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Value::Int(i) => Cow::Owned(i.to_string()),
        Value::DateTime(ms) => Cow::Owned(format_datetime_z(*ms)),
        Value::Date(d) => Cow::Owned(crate::clock::format_date(*d)),
        other => Cow::Owned(other.display()),
    }
}

/// Appends `v` as a quoted field, as [`csv_value`] prints it, without building the text first
/// (a result page is millions of values).
fn push_value(buf: &mut Vec<u8>, v: &Value) {
    use std::io::Write;
    match v {
        Value::Str(s) => push_quoted(buf, s),
        Value::Int(i) => {
            buf.push(b'"');
            let _ = write!(buf, "{i}");
            buf.push(b'"');
        }
        Value::DateTime(ms) => push_datetime_z(buf, *ms),
        other => push_quoted(buf, &csv_value(other)),
    }
}

/// Appends `ms` quoted, as [`format_datetime_z`] prints it; years outside 0..=9999 go the slow way.
fn push_datetime_z(buf: &mut Vec<u8>, ms: i64) {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok().filter(|t| (0..=9999).contains(&t.year()));
    let Some(at) = at else { return push_quoted(buf, &format_datetime_z(ms)) };
    let two = |buf: &mut Vec<u8>, n: u32| buf.extend_from_slice(&[b'0' + (n / 10) as u8, b'0' + (n % 10) as u8]);
    let y = at.year() as u32;
    buf.extend_from_slice(&[b'"', b'0' + (y / 1000) as u8, b'0' + (y / 100 % 10) as u8]);
    two(buf, y % 100);
    buf.push(b'-');
    two(buf, u8::from(at.month()) as u32);
    buf.push(b'-');
    two(buf, at.day() as u32);
    buf.push(b'T');
    two(buf, at.hour() as u32);
    buf.push(b':');
    two(buf, at.minute() as u32);
    buf.push(b':');
    two(buf, at.second() as u32);
    let milli = at.millisecond() as u32;
    buf.extend_from_slice(&[b'.', b'0' + (milli / 100) as u8]);
    two(buf, milli % 100);
    buf.extend_from_slice(b"Z\"");
}

/// Renders query result rows `seqs` into `buf` (one line each; vanished records skipped), with
/// `fmt` = (delimiter, line ending).
pub fn render_rows(schema: &Schema, store: &Store, obj: usize, cols: &[QueryCol], seqs: &[u64], fmt: (u8, &[u8]), buf: &mut Vec<u8>) {
    let (delim, eol) = fmt;
    let table = &store.tables[obj];
    for seq in seqs {
        let Some(rec) = table.recs.get(seq) else { continue };
        for (i, c) in cols.iter().enumerate() {
            if i > 0 {
                buf.push(delim);
            }
            push_value(buf, c.field.get(schema, store, obj, rec));
        }
        buf.extend_from_slice(eol);
    }
}

pub fn render_header(cols: &[QueryCol], delim: u8, eol: &[u8]) -> Vec<u8> {
    let mut buf = vec![];
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            buf.push(delim);
        }
        push_quoted(&mut buf, &c.header);
    }
    buf.extend_from_slice(eol);
    buf
}

/// Opaque locator for the result page starting at `offset` (base64 of the offset, like the
/// `MTAwMDA` strings Salesforce hands out).
pub fn encode_locator(offset: usize) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = offset.to_string().into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

pub fn decode_locator(s: &str) -> Option<usize> {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = vec![];
    for c in s.trim_end_matches('=').bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        bits = bits << 6 | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits & 0xff) as u8);
        }
    }
    let text = String::from_utf8(out).ok()?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// One ingest result row: the `first` columns (`sf__Id`, ...), then the uploaded row.
pub(super) fn write_row(buf: &mut Vec<u8>, first: &[&str], row: &csv::StringRecord, delim: u8) {
    for (i, f) in first.iter().enumerate() {
        if i > 0 {
            buf.push(delim);
        }
        push_quoted(buf, f);
    }
    for (i, f) in row.iter().enumerate() {
        if i > 0 || !first.is_empty() {
            buf.push(delim);
        }
        push_quoted(buf, f);
    }
    buf.push(b'\n');
}

/// An ingest result header: the `first` columns, then the uploaded header as it was.
pub(super) fn write_header(buf: &mut Vec<u8>, first: &[&str], header: &csv::StringRecord, delim: u8) {
    for (i, f) in first.iter().enumerate() {
        if i > 0 {
            buf.push(delim);
        }
        push_quoted(buf, f);
    }
    for (i, f) in header.iter().enumerate() {
        if i > 0 || !first.is_empty() {
            buf.push(delim);
        }
        buf.extend_from_slice(f.as_bytes());
    }
    buf.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locators_round_trip() {
        assert_eq!(encode_locator(10000), "MTAwMDA");
        for n in [0, 1, 7, 99, 2000, 50_000, 1_000_000, 123_456_789] {
            assert_eq!(decode_locator(&encode_locator(n)), Some(n), "{n}");
        }
        assert_eq!(decode_locator("null"), None);
        assert_eq!(decode_locator("!!"), None);
        assert_eq!(decode_locator(""), None);
    }

    #[test]
    fn values_are_written_as_csv_value_prints_them() {
        let values = [
            Value::Null,
            Value::Str("a \"b\"".into()),
            Value::Bool(false),
            Value::Int(-42),
            Value::DateTime(1_716_238_172_007),
            Value::DateTime(0),
            Value::DateTime(-1),
            Value::DateTime(-62_198_755_200_000),
            Value::DateTime(253_402_300_799_999),
            Value::DateTime(253_402_300_800_000),
            Value::Date(0),
        ];
        for v in values {
            let (mut fast, mut slow) = (vec![], vec![]);
            push_value(&mut fast, &v);
            push_quoted(&mut slow, &csv_value(&v));
            assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(slow).unwrap(), "{v:?}");
        }
    }

    #[test]
    fn quoting_and_values() {
        let mut b = vec![];
        push_quoted(&mut b, "a \"b\", c\nd");
        assert_eq!(String::from_utf8(b).unwrap(), "\"a \"\"b\"\", c\nd\"");
        assert_eq!(csv_value(&Value::Bool(true)), "true");
        assert_eq!(csv_value(&Value::Null), "");
        assert_eq!(csv_value(&Value::DateTime(1_716_238_172_000)), "2024-05-20T20:49:32.000Z");
        assert_eq!(csv_value(&Value::Date(0)), "1970-01-01");
    }
}
