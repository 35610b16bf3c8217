//! `sfsync.verify`: comparing a Postgres value (as `to_jsonb` renders it) with a Salesforce
//! value (after the pull's own conversion, `convert::from_sf`) without false alarms from
//! representation: `1.0` = `1`, `2024-05-20T20:49:32.000+0000` = `2024-05-20T22:49:32+02:00`,
//! `""` = null (Salesforce has no empty strings), `true` = `"true"`.

use super::fields::ColumnMap;
use serde_json::Value;

/// A value reduced to a canonical form for comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Norm {
    Null,
    Text(String),
    /// Canonical decimal: no leading `+`, no trailing fractional zeros, `-0` = `0`.
    Number(String),
    Bool(bool),
    /// Milliseconds since the epoch.
    Instant(i64),
    List(Vec<String>),
    Json(Value),
}

/// Normalizes one side's value for the column.
pub fn normalize(col: &ColumnMap, v: &Value) -> Norm {
    let pg = col.pg_type.as_str();
    match v {
        Value::Null => Norm::Null,
        Value::String(s) if s.is_empty() => Norm::Null,
        Value::Array(items) if items.is_empty() => Norm::Null,
        _ if pg == "json" || pg == "jsonb" => match v {
            Value::String(s) => serde_json::from_str(s).map(|j| Norm::Json(canonical(&j))).unwrap_or_else(|_| Norm::Text(s.clone())),
            other => Norm::Json(canonical(other)),
        },
        Value::Array(items) => Norm::List(items.iter().map(text).collect()),
        Value::Bool(b) => Norm::Bool(*b),
        Value::Number(n) => Norm::Number(decimal(&n.to_string())),
        Value::String(s) => match col.sf_type.as_str() {
            "boolean" => match s.as_str() {
                "true" | "t" => Norm::Bool(true),
                "false" | "f" => Norm::Bool(false),
                _ => Norm::Text(s.clone()),
            },
            "double" | "currency" | "percent" | "int" | "long" => Norm::Number(decimal(s)),
            "datetime" if pg.starts_with("timestamp") || pg == "timestamptz" => {
                salesforce::soql::parse_datetime(s).map(|t| Norm::Instant(t.as_millis())).unwrap_or_else(|| Norm::Text(s.clone()))
            }
            "time" => Norm::Text(time(s)),
            "multipicklist" => Norm::List(s.split(';').filter(|p| !p.is_empty()).map(str::to_string).collect()),
            _ => Norm::Text(s.clone()),
        },
        Value::Object(_) => Norm::Json(canonical(v)),
    }
}

/// A JSON document with its numbers as canonical decimals (`5` = `5.0` = `5e0`), told apart
/// from strings; objects compare without regard to key order (serde_json's maps are sorted).
fn canonical(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::String(format!("n:{}", decimal(&n.to_string()))),
        Value::String(s) => Value::String(format!("s:{s}")),
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), canonical(v))).collect()),
        other => other.clone(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `13:30:00.000Z` and `13:30:00` are the same time of day; Salesforce keeps milliseconds,
/// so `13:30:00.123456` is `13:30:00.123Z`.
fn time(s: &str) -> String {
    let s = s.trim_end_matches('Z');
    let s = match s.split_once('.') {
        Some((hms, frac)) => format!("{hms}.{}", &frac[..frac.len().min(3)]),
        None => s.to_string(),
    };
    match s.split_once('.') {
        Some((hms, frac)) if frac.chars().all(|c| c == '0') => hms.to_string(),
        Some((hms, frac)) => format!("{hms}.{}", frac.trim_end_matches('0')),
        None => s.to_string(),
    }
}

/// Canonical decimal text; exponent forms go through f64 (they only come from JSON floats).
pub fn decimal(s: &str) -> String {
    let s = s.trim();
    if s.contains(['e', 'E']) {
        return match s.parse::<f64>() {
            Ok(f) => decimal(&format!("{f}")),
            Err(_) => s.to_string(),
        };
    }
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let body = if frac.is_empty() { int.to_string() } else { format!("{int}.{frac}") };
    if neg && body != "0" {
        format!("-{body}")
    } else {
        body
    }
}

/// Whether the two sides hold the same value for the column.
pub fn same(col: &ColumnMap, postgres: &Value, salesforce: &Value) -> bool {
    let (a, b) = (normalize(col, postgres), normalize(col, salesforce));
    match (&a, &b) {
        // A boolean column is NOT NULL DEFAULT false in a mirror; Salesforce never sends null.
        (Norm::Bool(false), Norm::Null) | (Norm::Null, Norm::Bool(false)) => col.sf_type == "boolean",
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::plan::fields::test_column as col;

    #[test]
    fn numbers_compare_by_value() {
        let c = col("currency", "numeric(18, 2)");
        assert!(same(&c, &json!(1), &json!(1.0)));
        assert!(same(&c, &json!(1200000.50), &json!("1200000.5")));
        assert!(same(&c, &json!(1.5e6), &json!(1500000)));
        assert!(same(&c, &json!(-0.0), &json!(0)));
        assert!(!same(&c, &json!(1235), &json!(1234.56)));
        assert_eq!(decimal("+007.500"), "7.5");
        assert_eq!(decimal("-0.000"), "0");
        assert_eq!(decimal("100"), "100");
    }

    #[test]
    fn timestamps_compare_as_instants() {
        let c = col("datetime", "timestamp with time zone");
        assert!(same(&c, &json!("2024-05-20T22:49:32+02:00"), &json!("2024-05-20T20:49:32.000+00:00")));
        assert!(same(&c, &json!("2024-05-20T20:49:32.000Z"), &json!("2024-05-20T20:49:32.000+0000")));
        assert!(!same(&c, &json!("2024-05-20T20:49:33+00:00"), &json!("2024-05-20T20:49:32.000+0000")));
    }

    #[test]
    fn text_nulls_booleans_and_lists() {
        let t = col("string", "text");
        assert!(same(&t, &json!(""), &Value::Null), "Salesforce stores empty text as null");
        assert!(!same(&t, &json!("Acme"), &json!("ACME")));
        let b = col("boolean", "boolean");
        assert!(same(&b, &json!(true), &json!("true")), "Bulk CSV sends booleans as text");
        assert!(same(&b, &json!(false), &Value::Null));
        assert!(!same(&b, &json!(true), &json!(false)));
        let m = col("multipicklist", "text[]");
        assert!(same(&m, &json!(["a", "b"]), &json!(["a", "b"])));
        assert!(same(&col("multipicklist", "text"), &json!("a;b"), &json!("a;b")));
        assert!(!same(&m, &json!(["a"]), &json!(["a", "b"])));
        let tm = col("time", "time without time zone");
        assert!(same(&tm, &json!("13:30:00"), &json!("13:30:00.000Z")));
        assert!(same(&tm, &json!("13:30:00.5"), &json!("13:30:00.500Z")));
    }

    #[test]
    fn json_values_compare_structurally() {
        let a = col("address", "jsonb");
        assert!(same(&a, &json!({"city": "X", "street": null}), &json!({"street": null, "city": "X"})));
        assert!(same(&col("address", "text"), &json!("{\"city\":\"X\"}"), &json!("{\"city\":\"X\"}")));
        let j = col("textarea", "jsonb");
        assert!(same(&j, &json!({"n": 5, "k": [1.50]}), &json!("{\"k\": [1.5], \"n\": 5.0}")), "5 = 5.0, key order");
        assert!(!same(&j, &json!({"n": 5}), &json!({"n": "5"})), "a number is not a string");
        assert!(!same(&j, &json!({"n": 5}), &json!({"n": 6})));
    }

    #[test]
    fn times_and_datetimes_compare_at_milliseconds() {
        let tm = col("time", "time without time zone");
        assert!(same(&tm, &json!("13:30:00.123456"), &json!("13:30:00.123Z")));
        let dt = col("datetime", "timestamp with time zone");
        assert!(same(&dt, &json!("2024-05-20T22:49:32.123456+02:00"), &json!("2024-05-20T20:49:32.123+0000")));
    }
}
