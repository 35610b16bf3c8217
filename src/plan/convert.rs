//! Value conversion between Postgres (`to_jsonb` of a row) and Salesforce JSON.

use super::fields::ColumnMap;
use serde_json::Value;

/// A column value as captured by the trigger, shaped for the Salesforce field.
pub fn to_sf(col: &ColumnMap, v: &Value) -> Value {
    match (col.sf_type.as_str(), v) {
        (_, Value::Null) => Value::Null,
        ("multipicklist", Value::Array(items)) => Value::String(items.iter().map(plain_string).collect::<Vec<_>>().join(";")),
        // A timestamp column into a date field: the date part.
        ("date", Value::String(s)) if s.len() > 10 => Value::String(s[..10].to_string()),
        // `timestamp without time zone` renders without an offset; Salesforce needs one.
        ("datetime", Value::String(s)) if !has_offset(s) => Value::String(format!("{s}Z")),
        ("boolean", Value::String(s)) => match s.as_str() {
            "t" | "true" => Value::Bool(true),
            "f" | "false" => Value::Bool(false),
            _ => v.clone(),
        },
        (t, Value::Object(_) | Value::Array(_)) if is_text(t) => Value::String(v.to_string()),
        _ => v.clone(),
    }
}

/// A Salesforce field value, shaped so `jsonb_populate_recordset` casts it into the column.
pub fn from_sf(col: &ColumnMap, v: &Value) -> Value {
    match v {
        Value::Null => Value::Null,
        Value::String(s) if col.pg_type.ends_with("[]") && col.sf_type == "multipicklist" => {
            Value::Array(s.split(';').filter(|p| !p.is_empty()).map(|p| Value::String(p.to_string())).collect())
        }
        // Salesforce writes `+0000`; Postgres wants `+00:00` in every version we support.
        Value::String(s) if col.sf_type == "datetime" => Value::String(colon_offset(s)),
        Value::Object(_) | Value::Array(_) if !is_json_pg(&col.pg_type) => Value::String(v.to_string()),
        // A JSON document kept in a text field (we push it as its text): the document again,
        // not a JSON string, so the echo of our own push changes nothing.
        Value::String(s) if matches!(col.pg_type.as_str(), "json" | "jsonb") && is_text(&col.sf_type) => {
            serde_json::from_str(s).unwrap_or_else(|_| v.clone())
        }
        _ => v.clone(),
    }
}

/// JSON equality with numbers compared by value: numbers keep their text (serde_json's
/// arbitrary_precision, so 18 digits stay exact), and `5.00` from a numeric(10,2) column is
/// the `5.0` Salesforce sends back.
pub fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || super::compare::decimal(&x.to_string()) == super::compare::decimal(&y.to_string())
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y)),
        (Value::Object(x), Value::Object(y)) => x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w))),
        _ => a == b,
    }
}

fn plain_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn is_text(sf_type: &str) -> bool {
    matches!(sf_type, "string" | "textarea" | "url" | "email" | "phone" | "picklist" | "combobox" | "encryptedstring")
}

fn is_json_pg(pg_type: &str) -> bool {
    matches!(pg_type, "json" | "jsonb") || pg_type.ends_with("[]")
}

fn has_offset(s: &str) -> bool {
    let time = s.split_once('T').map(|(_, t)| t).unwrap_or("");
    time.ends_with('Z') || time.contains('+') || time.contains('-')
}

/// `2024-05-20T20:49:32.000+0000` -> `2024-05-20T20:49:32.000+00:00`.
pub fn colon_offset(s: &str) -> String {
    if has_bare_offset(s) {
        let (head, tail) = s.split_at(s.len() - 5);
        return format!("{head}{}:{}", &tail[..3], &tail[3..]);
    }
    s.to_string()
}

/// Whether `s` ends in an offset without a colon (`+0000`), which [`colon_offset`] rewrites.
pub fn has_bare_offset(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 5 && matches!(b[b.len() - 5], b'+' | b'-') && b[b.len() - 4..].iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::plan::fields::test_column as col;

    #[test]
    fn datetimes_round_trip() {
        assert_eq!(
            from_sf(&col("datetime", "timestamp with time zone"), &json!("2024-05-20T20:49:32.000+0000")),
            json!("2024-05-20T20:49:32.000+00:00")
        );
        assert_eq!(to_sf(&col("datetime", "timestamp without time zone"), &json!("2024-05-20T20:49:32")), json!("2024-05-20T20:49:32Z"));
        assert_eq!(
            to_sf(&col("datetime", "timestamp with time zone"), &json!("2024-05-20T20:49:32+02:00")),
            json!("2024-05-20T20:49:32+02:00")
        );
        assert_eq!(to_sf(&col("date", "timestamp with time zone"), &json!("2024-05-20T20:49:32+02:00")), json!("2024-05-20"));
        assert_eq!(to_sf(&col("date", "date"), &json!("2024-05-20")), json!("2024-05-20"));
    }

    #[test]
    fn multipicklist_both_ways() {
        assert_eq!(to_sf(&col("multipicklist", "text[]"), &json!(["a", "b"])), json!("a;b"));
        assert_eq!(from_sf(&col("multipicklist", "text[]"), &json!("a;b")), json!(["a", "b"]));
        assert_eq!(from_sf(&col("multipicklist", "text"), &json!("a;b")), json!("a;b"));
    }

    #[test]
    fn structured_values_into_text() {
        assert_eq!(to_sf(&col("textarea", "jsonb"), &json!({"k": 1})), json!("{\"k\":1}"));
        assert_eq!(from_sf(&col("address", "text"), &json!({"city": "X"})), json!("{\"city\":\"X\"}"));
        assert_eq!(from_sf(&col("address", "jsonb"), &json!({"city": "X"})), json!({"city": "X"}));
    }

    #[test]
    fn json_documents_in_text_fields_come_back_as_documents() {
        let c = col("textarea", "jsonb");
        let doc = json!({"a": 1, "b": [true, null]});
        let sent = to_sf(&c, &doc);
        assert_eq!(from_sf(&c, &sent), doc, "the echo of our push is the same document");
        assert_eq!(from_sf(&c, &json!("[1, 2]")), json!([1, 2]));
        assert_eq!(from_sf(&c, &json!("5")), json!(5));
        assert_eq!(from_sf(&c, &json!("plain words")), json!("plain words"), "not JSON: a JSON string");
        assert_eq!(from_sf(&col("textarea", "text"), &json!("{\"a\": 1}")), json!("{\"a\": 1}"));
    }

    fn number(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn numbers_keep_all_eighteen_digits_both_ways() {
        let whole = col("double", "numeric(18, 0)");
        let money = col("currency", "numeric(18, 2)");
        // As Postgres's to_jsonb renders them, out to Salesforce and back as Salesforce writes them.
        assert_eq!(to_sf(&whole, &number("123456789012345678")).to_string(), "123456789012345678");
        assert_eq!(to_sf(&money, &number("1234567890123456.78")).to_string(), "1234567890123456.78");
        assert_eq!(from_sf(&whole, &number("123456789012345678.0")).to_string(), "123456789012345678.0");
        assert_eq!(from_sf(&money, &number("1234567890123456.78")).to_string(), "1234567890123456.78");
        // Through a JSON document and back (the jsonb parameter of the apply statements).
        let row = json!({"price": number("1234567890123456.78")});
        assert_eq!(serde_json::to_string(&row).unwrap(), r#"{"price":1234567890123456.78}"#);
    }

    #[test]
    fn numbers_are_the_same_by_value_not_by_spelling() {
        assert!(same_json(&number("5.00"), &number("5.0")));
        assert!(same_json(&number("5"), &json!(5.0)));
        assert!(same_json(&json!({"a": [number("1.50")]}), &json!({"a": [1.5]})));
        assert!(!same_json(&number("1234567890123456.78"), &number("1234567890123456.8")));
        assert!(!same_json(&number("123456789012345678"), &number("123456789012345680")));
        assert!(!same_json(&json!("5"), &json!(5)), "a string is no number");
        assert!(same_json(&Value::Null, &Value::Null));
    }

    #[test]
    fn nulls_stay_null() {
        assert_eq!(to_sf(&col("string", "text"), &Value::Null), Value::Null);
        assert_eq!(from_sf(&col("datetime", "timestamptz"), &Value::Null), Value::Null);
    }
}
