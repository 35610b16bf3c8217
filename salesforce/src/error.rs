//! Error model: request-level errors ([`Error`], [`ApiError`]) and record-level
//! errors inside sObject Collections results ([`RecordError`]).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::de::null_default;

/// Error codes (request- or record-level) worth retrying later: the same
/// request may succeed once the lock, the server or the quota frees up.
pub(crate) const TRANSIENT_CODES: &[&str] = &[
    "UNABLE_TO_LOCK_ROW",
    "SERVER_UNAVAILABLE",
    "REQUEST_LIMIT_EXCEEDED",
    "REQUEST_RUNNING_TOO_LONG",
    "QUERY_TIMEOUT",
    "INVALID_SESSION_ID",
    "TRANSPORT",
    "TIMEOUT",
    "API_TEMPORARILY_UNAVAILABLE",
    "CONCURRENT_REQUEST_LIMIT_EXCEEDED",
];

fn code_is_transient(code: &str) -> bool {
    TRANSIENT_CODES.contains(&code) || code.starts_with("HTTP_5")
}

/// One element of Salesforce's request-level error array
/// `[{"message": "...", "errorCode": "...", "fields": [...]}]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    #[serde(default, deserialize_with = "null_default")]
    pub error_code: String,
    #[serde(default, deserialize_with = "null_default")]
    pub message: String,
    #[serde(default, deserialize_with = "null_default")]
    pub fields: Vec<String>,
    /// `Retry-After` of the response that carried this error, if any.
    /// (Not part of Salesforce's JSON; filled in by the client.)
    #[serde(skip)]
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(error_code: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError { error_code: error_code.into(), message: message.into(), ..ApiError::default() }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_code, self.message)?;
        if !self.fields.is_empty() {
            write!(f, " (fields: {})", self.fields.join(", "))?;
        }
        Ok(())
    }
}

/// A record-level error inside a save result (`statusCode`, not `errorCode`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordError {
    #[serde(default, alias = "errorCode", deserialize_with = "null_default")]
    pub status_code: String,
    #[serde(default, deserialize_with = "null_default")]
    pub message: String,
    #[serde(default, deserialize_with = "null_default")]
    pub fields: Vec<String>,
}

impl RecordError {
    pub fn new(status_code: impl Into<String>, message: impl Into<String>) -> RecordError {
        RecordError { status_code: status_code.into(), message: message.into(), fields: Vec::new() }
    }

    /// True when retrying the same record later may succeed
    /// (row lock, server unavailable, request limit, expired session, transport).
    pub fn is_transient(&self) -> bool {
        code_is_transient(&self.status_code)
    }

    /// Turns a request-level failure into a per-record error (a later collections chunk
    /// that fails as a whole; a request refused for one record's value, once isolated).
    /// For an API error: its code, message(s) and fields, as a record error carries them.
    pub fn from_error(e: &Error) -> RecordError {
        match e {
            Error::Api { errors, .. } if !errors.is_empty() => RecordError {
                status_code: e.code(),
                message: errors.iter().map(|a| a.message.as_str()).collect::<Vec<_>>().join("; "),
                fields: errors.iter().flat_map(|a| a.fields.iter().cloned()).collect(),
            },
            _ => RecordError { status_code: e.code(), message: e.to_string(), fields: Vec::new() },
        }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status_code, self.message)?;
        if !self.fields.is_empty() {
            write!(f, " (fields: {})", self.fields.join(", "))?;
        }
        Ok(())
    }
}

/// Every failure of the client. Secrets never appear in any variant.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// OAuth error response from the token endpoint (`invalid_grant`, `invalid_client`, ...).
    #[error("Salesforce authentication failed: {error}: {description}")]
    Auth { error: String, description: String },
    /// Request-level Salesforce error array (Display: `CODE: message`).
    #[error("{}", display_api(*status, errors))]
    Api { status: u16, errors: Vec<ApiError> },
    /// Connection refused, DNS, TLS, timeout, reset.
    #[error("transport error: {0}")]
    Transport(String),
    /// The response body was not what the API documents.
    #[error("unexpected response from Salesforce: {0}")]
    Decode(String),
    /// Bad credentials struct, insecure URL, unknown flow, bad argument.
    #[error("configuration error: {0}")]
    Config(String),
    /// Not sent: the connection's API budget says wait (see [`crate::budget`]).
    #[error("API budget: {reason}; next request allowed in {}s", wait.as_secs())]
    Budget { wait: Duration, reason: String },
}

fn display_api(status: u16, errors: &[ApiError]) -> String {
    if errors.is_empty() {
        return format!("HTTP_{status}: Salesforce returned HTTP {status}");
    }
    errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
}

impl Error {
    /// True when the same call may succeed later: 5xx, transport failures,
    /// row locks, request limit, expired session, OAuth server trouble.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport(_) => true,
            Error::Api { status, errors } => *status >= 500 || *status == 429 || errors.iter().any(|e| code_is_transient(&e.error_code)),
            Error::Auth { error, .. } => {
                matches!(error.as_str(), "temporarily_unavailable" | "server_error" | "unknown_error")
            }
            Error::Decode(_) | Error::Config(_) => false,
            Error::Budget { .. } => true,
        }
    }

    /// The `Retry-After` the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api { errors, .. } => errors.iter().find_map(|e| e.retry_after),
            Error::Budget { wait, .. } => Some(*wait),
            _ => None,
        }
    }

    /// A short machine-readable code: the first Salesforce `errorCode`
    /// (e.g. `REQUIRED_FIELD_MISSING`), `HTTP_503` when the body had none,
    /// `AUTH:invalid_grant`, `TRANSPORT`, `DECODE` or `CONFIG`.
    pub fn code(&self) -> String {
        match self {
            Error::Auth { error, .. } => format!("AUTH:{error}"),
            Error::Api { status, errors } => match errors.first() {
                Some(e) if !e.error_code.is_empty() => e.error_code.clone(),
                _ => format!("HTTP_{status}"),
            },
            Error::Transport(_) => "TRANSPORT".into(),
            Error::Decode(_) => "DECODE".into(),
            Error::Config(_) => "CONFIG".into(),
            Error::Budget { .. } => "API_BUDGET".into(),
        }
    }

    /// HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for `INVALID_SESSION_ID` (expired or revoked token).
    pub fn is_invalid_session(&self) -> bool {
        matches!(self, Error::Api { errors, .. } if errors.iter().any(|e| e.error_code == "INVALID_SESSION_ID"))
    }

    /// Shorthand for a one-error `Error::Api`.
    pub fn api(status: u16, code: &str, message: impl Into<String>) -> Error {
        Error::Api { status, errors: vec![ApiError::new(code, message)] }
    }
}

/// Status text used when a non-JSON error body has to be turned into an errorCode.
pub(crate) fn status_code_name(status: u16) -> &'static str {
    match status {
        300 => "MULTIPLE_CHOICES",
        400 => "BAD_REQUEST",
        401 => "INVALID_SESSION_ID",
        403 => "FORBIDDEN",
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        409 => "CONFLICT",
        413 => "REQUEST_TOO_LARGE",
        415 => "UNSUPPORTED_MEDIA_TYPE",
        429 => "REQUEST_LIMIT_EXCEEDED",
        500 => "UNKNOWN_EXCEPTION",
        502 => "BAD_GATEWAY",
        503 => "SERVER_UNAVAILABLE",
        504 => "GATEWAY_TIMEOUT",
        _ => "",
    }
}

/// Parses an error response body into an [`Error`]: Salesforce's
/// `[{"message","errorCode","fields"}]` array, a single such object, or an
/// OAuth `{"error","error_description"}` object. Anything else becomes an
/// `Error::Api` with a code derived from the HTTP status and a trimmed body.
pub(crate) fn parse_error_body(status: u16, body: &str, retry_after: Option<Duration>) -> Error {
    let trimmed = body.trim();
    let mut errors: Option<Vec<ApiError>> = None;
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(trimmed) {
        match &v {
            serde_json::Value::Array(items) => {
                let parsed: Vec<ApiError> = items
                    .iter()
                    .filter_map(|i| serde_json::from_value::<ApiError>(i.clone()).ok())
                    .filter(|e| !e.error_code.is_empty() || !e.message.is_empty())
                    .collect();
                if !parsed.is_empty() {
                    errors = Some(parsed);
                }
            }
            serde_json::Value::Object(map) => {
                if let Some(err) = map.get("error").and_then(|e| e.as_str()) {
                    let description = map.get("error_description").and_then(|d| d.as_str()).unwrap_or_default().to_string();
                    return Error::Auth { error: err.to_string(), description };
                }
                if map.contains_key("errorCode") || map.contains_key("message") {
                    if let Ok(e) = serde_json::from_value::<ApiError>(v.clone()) {
                        errors = Some(vec![e]);
                    }
                }
            }
            _ => {}
        }
    }
    let mut errors = errors.unwrap_or_else(|| {
        let code = match status_code_name(status) {
            "" => format!("HTTP_{status}"),
            c => c.to_string(),
        };
        let mut msg: String = trimmed.chars().take(300).collect();
        if msg.is_empty() {
            msg = format!("HTTP {status} with an empty body");
        }
        vec![ApiError::new(code, msg)]
    });
    for e in &mut errors {
        e.retry_after = retry_after;
        if e.error_code.is_empty() {
            e.error_code = match status_code_name(status) {
                "" => format!("HTTP_{status}"),
                c => c.to_string(),
            };
        }
    }
    Error::Api { status, errors }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_salesforce_error_array() {
        let body = r#"[{"message":"Required fields are missing: [LastName]","errorCode":"REQUIRED_FIELD_MISSING","fields":["LastName"]}]"#;
        let e = parse_error_body(400, body, None);
        match &e {
            Error::Api { status, errors } => {
                assert_eq!(*status, 400);
                assert_eq!(errors.len(), 1);
                assert_eq!(errors[0].error_code, "REQUIRED_FIELD_MISSING");
                assert_eq!(errors[0].fields, vec!["LastName".to_string()]);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(e.code(), "REQUIRED_FIELD_MISSING");
        assert_eq!(e.to_string(), "REQUIRED_FIELD_MISSING: Required fields are missing: [LastName] (fields: LastName)");
        assert!(!e.is_transient());
    }

    #[test]
    fn parses_oauth_error() {
        let e = parse_error_body(400, r#"{"error":"invalid_grant","error_description":"authentication failure"}"#, None);
        assert!(matches!(&e, Error::Auth { error, description } if error == "invalid_grant" && description == "authentication failure"));
        assert_eq!(e.code(), "AUTH:invalid_grant");
        assert!(!e.is_transient());
    }

    #[test]
    fn non_json_bodies_get_status_codes() {
        let e = parse_error_body(503, "<html>Service Unavailable</html>", Some(Duration::from_secs(2)));
        assert_eq!(e.code(), "SERVER_UNAVAILABLE");
        assert!(e.is_transient());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        let e = parse_error_body(502, "", None);
        assert_eq!(e.code(), "BAD_GATEWAY");
        assert!(e.is_transient());
        let e = parse_error_body(418, "", None);
        assert_eq!(e.code(), "HTTP_418");
        assert!(!e.is_transient());
        // null fields are tolerated
        let e = parse_error_body(400, r#"[{"message":"bad","errorCode":"MALFORMED_QUERY","fields":null}]"#, None);
        assert_eq!(e.code(), "MALFORMED_QUERY");
    }

    #[test]
    fn classification() {
        assert!(Error::api(400, "UNABLE_TO_LOCK_ROW", "x").is_transient());
        assert!(Error::api(403, "REQUEST_LIMIT_EXCEEDED", "x").is_transient());
        assert!(Error::api(401, "INVALID_SESSION_ID", "x").is_invalid_session());
        assert!(Error::api(500, "UNKNOWN_EXCEPTION", "x").is_transient());
        assert!(!Error::api(400, "INVALID_FIELD", "x").is_transient());
        assert!(!Error::api(404, "NOT_FOUND", "x").is_transient());
        assert!(Error::Transport("reset".into()).is_transient());
        assert_eq!(Error::Transport("reset".into()).code(), "TRANSPORT");
        assert!(!Error::Config("bad".into()).is_transient());
        assert!(!Error::Decode("bad".into()).is_transient());
        assert!(Error::Auth { error: "temporarily_unavailable".into(), description: String::new() }.is_transient());
        assert!(!Error::Auth { error: "invalid_client".into(), description: String::new() }.is_transient());
        assert_eq!(Error::Api { status: 500, errors: vec![] }.code(), "HTTP_500");

        assert!(RecordError::new("UNABLE_TO_LOCK_ROW", "").is_transient());
        assert!(RecordError::new("SERVER_UNAVAILABLE", "").is_transient());
        assert!(RecordError::new("REQUEST_LIMIT_EXCEEDED", "").is_transient());
        assert!(RecordError::new("TRANSPORT", "").is_transient());
        assert!(!RecordError::new("REQUIRED_FIELD_MISSING", "").is_transient());
        assert!(!RecordError::new("DUPLICATE_VALUE", "").is_transient());
    }

    #[test]
    fn record_error_uses_status_code() {
        let r: RecordError =
            serde_json::from_str(r#"{"statusCode":"REQUIRED_FIELD_MISSING","message":"m","fields":["LastName"]}"#).unwrap();
        assert_eq!(r.status_code, "REQUIRED_FIELD_MISSING");
        let r: RecordError = serde_json::from_str(r#"{"errorCode":"X","message":"m"}"#).unwrap();
        assert_eq!(r.status_code, "X");
        let api = Error::Api {
            status: 400,
            errors: vec![ApiError { fields: vec!["Birthdate".into()], ..ApiError::new("JSON_PARSER_ERROR", "bad date") }],
        };
        let from = RecordError::from_error(&api);
        assert_eq!(
            (from.status_code.as_str(), from.message.as_str(), from.fields.as_slice()),
            ("JSON_PARSER_ERROR", "bad date", &["Birthdate".to_string()][..])
        );
        let from = RecordError::from_error(&Error::Transport("timed out".into()));
        assert_eq!(from.status_code, "TRANSPORT");
        assert!(from.is_transient());
    }
}
