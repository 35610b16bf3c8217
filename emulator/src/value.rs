//! Typed field values (compact: 24 bytes) and their JSON wire forms.

use crate::clock::{format_date, format_datetime, parse_date, parse_datetime};
use crate::decimal::Dec;
use crate::schema::{FieldDef, FieldType};
use serde_json::Value as Json;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    /// A computed number (formula, aggregate), or a stored one beyond 18 digits.
    Num(f64),
    /// A stored number, exact.
    Dec(Dec),
    /// Shared so repeated values (owner and audit user IDs) cost one allocation.
    Str(Arc<str>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Epoch milliseconds, UTC.
    DateTime(i64),
}

pub static NULL: Value = Value::Null;

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    /// A number's value for arithmetic and comparisons.
    pub fn num(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Num(n) => Some(*n),
            Value::Dec(d) => Some(d.to_f64()),
            _ => None,
        }
    }
    pub fn str(s: &str) -> Value {
        Value::Str(s.into())
    }
    pub fn to_json(&self) -> Json {
        match self {
            Value::Null => Json::Null,
            Value::Bool(b) => Json::Bool(*b),
            Value::Int(i) => Json::from(*i),
            Value::Num(n) => serde_json::Number::from_f64(*n).map(Json::Number).unwrap_or(Json::Null),
            // arbitrary_precision: the Number keeps the text, every digit.
            Value::Dec(d) => d.to_string().parse::<serde_json::Number>().map(Json::Number).unwrap_or(Json::Null),
            Value::Str(s) => Json::String(s.to_string()),
            Value::Date(d) => Json::String(format_date(*d)),
            Value::DateTime(ms) => Json::String(format_datetime(*ms)),
        }
    }
    /// Text form used by validation rules and messages.
    pub fn display(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Str(s) => s.to_string(),
            other => match other.to_json() {
                Json::String(s) => s,
                j => j.to_string(),
            },
        }
    }
}

/// Why a JSON value can't become a field value.
#[derive(Debug)]
pub enum Coerce {
    /// The JSON itself doesn't fit the field's type: Salesforce fails the whole request with
    /// JSON_PARSER_ERROR.
    Parser(String),
    /// Right JSON type, unacceptable value: a record-level INVALID_TYPE_ON_FIELD_IN_RECORD.
    Type(String),
}

fn json_kind(v: &Json) -> (&'static str, String) {
    match v {
        Json::String(s) => ("VALUE_STRING", s.clone()),
        Json::Number(n) => (if n.is_f64() { "VALUE_NUMBER_FLOAT" } else { "VALUE_NUMBER_INT" }, n.to_string()),
        Json::Bool(b) => (if *b { "VALUE_TRUE" } else { "VALUE_FALSE" }, b.to_string()),
        Json::Array(_) => ("START_ARRAY", "[".into()),
        Json::Object(_) => ("START_OBJECT", "{".into()),
        Json::Null => ("VALUE_NULL", "null".into()),
    }
}

fn parser_err(target: &str, v: &Json) -> Coerce {
    let (kind, text) = json_kind(v);
    Coerce::Parser(format!("Cannot deserialize instance of {target} from {kind} value {text} or request may be missing a required field"))
}

/// Converts a JSON request value for `fd`. Lenient where Salesforce is (numeric strings,
/// "true"/"false", numbers into text fields); empty strings mean null.
pub fn from_json(fd: &FieldDef, v: &Json) -> Result<Value, Coerce> {
    if v.is_null() || v.as_str() == Some("") {
        return Ok(Value::Null);
    }
    let t = fd.ftype;
    match t {
        FieldType::Boolean => match v {
            Json::Bool(b) => Ok(Value::Bool(*b)),
            Json::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Json::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(parser_err("boolean", v)),
        },
        FieldType::Int | FieldType::Double | FieldType::Currency | FieldType::Percent => {
            let target = if t == FieldType::Int { "int" } else { "double" };
            // The number's own text (arbitrary_precision), so 18 digits arrive exact.
            let text = match v {
                Json::Number(n) => n.to_string(),
                Json::String(s) => s.trim().to_string(),
                _ => return Err(parser_err(target, v)),
            };
            let n = text.parse::<f64>().ok().filter(|f| f.is_finite()).ok_or_else(|| parser_err(target, v))?;
            if t == FieldType::Int {
                if n.fract() != 0.0 || n.abs() > i64::MAX as f64 {
                    return Err(Coerce::Type(format!("{}: value not of required type: {}", fd.label, json_kind(v).1)));
                }
                Ok(Value::Int(text.parse::<i64>().unwrap_or(n as i64)))
            } else {
                Ok(Dec::parse(&text).map(Value::Dec).unwrap_or(Value::Num(n)))
            }
        }
        FieldType::Date => match v {
            Json::String(s) => parse_date(s)
                .or_else(|| parse_datetime(s).map(|ms| ms.div_euclid(crate::clock::DAY_MS) as i32))
                .map(Value::Date)
                .ok_or_else(|| parser_err("date", v)),
            _ => Err(parser_err("date", v)),
        },
        FieldType::DateTime => match v {
            Json::String(s) => parse_datetime(s)
                .or_else(|| parse_date(s).map(|d| d as i64 * crate::clock::DAY_MS))
                .map(Value::DateTime)
                .ok_or_else(|| parser_err("datetime", v)),
            _ => Err(parser_err("datetime", v)),
        },
        FieldType::Address => Err(parser_err("address", v)),
        // Text, picklists, ids: strings, with scalars converted the way Salesforce does.
        _ => match v {
            Json::String(s) => Ok(Value::str(s)),
            Json::Number(n) => Ok(Value::str(&n.to_string())),
            Json::Bool(b) => Ok(Value::str(&b.to_string())),
            _ => Err(parser_err("string", v)),
        },
    }
}

/// A stored value carried over to a retyped field: converted as the API would accept it, text
/// cut to the new length, otherwise cleared (Salesforce warns that such data is lost).
pub fn convert(fd: &FieldDef, v: &Value) -> Value {
    let json = match v {
        Value::Str(_) => v.to_json(),
        _ if fd.ftype.is_text() => Json::String(v.display()),
        _ => v.to_json(),
    };
    match from_json(fd, &json) {
        Ok(Value::Str(s)) if fd.length > 0 && s.chars().count() > fd.length as usize => {
            Value::Str(s.chars().take(fd.length as usize).collect::<String>().into())
        }
        Ok(Value::Num(n)) if fd.ftype == FieldType::Int => Value::Int(n as i64),
        Ok(v) => v,
        Err(_) => Value::Null,
    }
}
