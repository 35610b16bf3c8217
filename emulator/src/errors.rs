//! Salesforce's two error shapes: request-level `[{"message","errorCode","fields"?}]` with an HTTP
//! status, and record-level `{"statusCode","message","fields"}` inside save results.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub message: String,
    #[serde(rename = "errorCode")]
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<String>>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), code: code.into(), fields: None }
    }
    pub fn bad(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn with_fields(mut self, fields: Vec<String>) -> ApiError {
        self.fields = Some(fields);
        self
    }
    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "The requested resource does not exist")
    }
    pub fn invalid_session() -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "INVALID_SESSION_ID", "Session expired or invalid")
    }
    pub fn malformed_id(id: &str) -> ApiError {
        ApiError::bad("MALFORMED_ID", format!("malformed id {id}"))
    }
    /// `INVALID_FIELD` for an unknown field in a write body.
    pub fn no_such_column(field: &str, object: &str) -> ApiError {
        ApiError::bad("INVALID_FIELD", format!("No such column '{field}' on sobject of type {object}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(vec![self])).into_response()
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecError {
    #[serde(rename = "statusCode")]
    pub code: String,
    pub message: String,
    pub fields: Vec<String>,
}

impl RecError {
    pub fn new(code: &str, message: impl Into<String>, fields: Vec<String>) -> RecError {
        RecError { code: code.into(), message: message.into(), fields }
    }
    /// The single-record REST form: same content, request-level shape, 400 (404 for missing rows).
    pub fn into_api(self) -> ApiError {
        let status = match self.code.as_str() {
            "NOT_FOUND" | "ENTITY_IS_DELETED" => StatusCode::NOT_FOUND,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError { status, message: self.message, code: self.code, fields: Some(self.fields) }
    }
}

/// Several record errors as a single-record REST response (all in one array, as Salesforce does).
pub fn rec_errors_response(errs: Vec<RecError>) -> Response {
    let status = errs.first().map(|e| e.clone().into_api().status).unwrap_or(StatusCode::BAD_REQUEST);
    let body: Vec<ApiError> = errs.into_iter().map(RecError::into_api).collect();
    (status, Json(body)).into_response()
}
