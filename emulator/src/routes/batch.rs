//! `POST composite/batch`: up to 25 independent subrequests run in order through the same router
//! (no references, no rollback), `haltOnError` stops at the first failure. Unlike composite,
//! each subrequest counts against the API limits, as on Salesforce (the batch request itself
//! is the first subrequest's call).

use super::composite::{serve, Answer, MAX_SUBREQUESTS};
use super::{json_body, Api, LockFault, St};
use crate::errors::ApiError;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::bad("INVALID_BATCH_REQUEST", msg)
}

/// A subrequest's url is relative to `/services/data/` (`v62.0/sobjects/Account`); the full
/// path is accepted too.
fn full_url(url: &str) -> Option<String> {
    let rel = url.strip_prefix("/services/data/").or_else(|| url.strip_prefix('/')).unwrap_or(url);
    rel.starts_with('v').then(|| format!("/services/data/{rel}"))
}

pub async fn batch(
    State(st): St,
    _api: Api,
    headers: HeaderMap,
    lock: Option<Extension<LockFault>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let v = json_body(&body)?;
    let halt_on_error = v.get("haltOnError").and_then(Value::as_bool).unwrap_or(false);
    let list =
        v.get("batchRequests").and_then(Value::as_array).ok_or_else(|| invalid("batchRequests: a list of subrequests is required"))?;
    if list.is_empty() {
        return Err(invalid("batchRequests: at least one subrequest is required"));
    }
    if list.len() > MAX_SUBREQUESTS {
        return Err(ApiError::bad(
            "LIMIT_EXCEEDED",
            format!("A batch can contain at most {MAX_SUBREQUESTS} subrequests; received {}", list.len()),
        ));
    }
    let mut subs = vec![];
    for s in list {
        let m = s.get("method").and_then(Value::as_str).unwrap_or("");
        let method = match m.to_ascii_uppercase().as_str() {
            "GET" => Method::GET,
            "POST" => Method::POST,
            "PATCH" => Method::PATCH,
            "PUT" => Method::PUT,
            "DELETE" => Method::DELETE,
            _ => return Err(invalid(format!("Invalid HTTP method '{m}' in a subrequest"))),
        };
        let raw = s.get("url").and_then(Value::as_str).unwrap_or("");
        let url = full_url(raw).ok_or_else(|| invalid(format!("The url of a subrequest must start with vXX.X/: '{raw}'")))?;
        subs.push((method, url, s.get("richInput").cloned().filter(|b| !b.is_null())));
    }

    let lock = lock.map(|Extension(l)| l).unwrap_or_default();
    let auth = headers.get("authorization").cloned();
    let mut app = super::router(st.clone());
    let mut results = vec![];
    let mut has_errors = false;
    for (i, (method, url, input)) in subs.into_iter().enumerate() {
        if has_errors && halt_on_error {
            results.push(json!({"statusCode": 412, "result": [{"errorCode": "BATCH_PROCESSING_HALTED", "message": "Batch processing halted per request"}]}));
            continue;
        }
        if i > 0 {
            st.count_endpoint("POST /composite/batch".into());
            if st.use_api().is_err() {
                results.push(
                    json!({"statusCode": 403, "result": [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}]}),
                );
                has_errors = true;
                continue;
            }
        }
        let Some(Answer { status, body: result, .. }) = serve(&mut app, method, &url, auth.as_ref(), input.as_ref(), lock).await else {
            results.push(
                json!({"statusCode": 400, "result": [{"errorCode": "INVALID_BATCH_REQUEST", "message": format!("Invalid url '{url}'")}]}),
            );
            has_errors = true;
            continue;
        };
        has_errors |= status >= 400;
        results.push(json!({"statusCode": status, "result": result}));
    }
    Ok(Json(json!({"hasErrors": has_errors, "results": results})).into_response())
}
