//! `POST composite`: up to 25 subrequests run in order through the same router, with
//! `referenceId`s, `@{ref.field}` references and `allOrNone` rollback. The composite call counts
//! as one API call; its subrequests don't.

use super::{json_body, Api, LockFault, St};
use crate::errors::ApiError;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use tower_service::Service;

pub const MAX_SUBREQUESTS: usize = 25;
/// Of them, at most this many query operations (Query, QueryAll, a query's next page) or
/// sObject Collections requests.
const MAX_QUERY_SUBREQUESTS: usize = 5;

fn is_query_or_collections(url: &str) -> bool {
    let path = url.split('?').next().unwrap_or(url);
    let rest = path.trim_start_matches("/services/data/").split_once('/').map_or("", |(_, r)| r);
    ["query", "queryAll", "composite/sobjects"].iter().any(|p| rest == *p || rest.starts_with(&format!("{p}/")))
}
const ROLLED_BACK: &str = "The transaction was rolled back since another operation in the same transaction failed.";

/// Marks a subrequest dispatched by `composite`: the services layer lets it through unmetered.
#[derive(Clone, Copy)]
pub struct Internal;

/// What a subrequest answered: status, its Location header, its JSON body (Null when empty).
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub body: Value,
}

/// Serves one subrequest of a composite or batch request through `app` as an internal call
/// (unmetered), with the outer request's authorization and lock fault. None when `url` is
/// not a valid URI.
pub async fn serve(
    app: &mut axum::Router,
    method: Method,
    url: &str,
    auth: Option<&HeaderValue>,
    body: Option<&Value>,
    lock: LockFault,
) -> Option<Answer> {
    let mut req = Request::builder().method(method).uri(url);
    if let Some(a) = auth {
        req = req.header("authorization", a.clone());
    }
    let payload = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(serde_json::to_vec(b).unwrap_or_default())
        }
        None => Body::empty(),
    };
    let mut req = req.body(payload).ok()?;
    req.extensions_mut().insert(Internal);
    req.extensions_mut().insert(lock);
    let resp = match app.call(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    let status = resp.status().as_u16();
    let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_string);
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20).await.unwrap_or_default();
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
    Some(Answer { status, location, body })
}

struct Sub {
    method: Method,
    url: String,
    reference_id: String,
    body: Option<Value>,
}

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::bad("INVALID_API_INPUT", msg)
}

fn parse(v: &Value) -> Result<(bool, Vec<Sub>), ApiError> {
    let all_or_none = v.get("allOrNone").and_then(Value::as_bool).unwrap_or(false);
    let list = v
        .get("compositeRequest")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("compositeRequest: a list of subrequests is required"))?;
    if list.is_empty() {
        return Err(invalid("compositeRequest: at least one subrequest is required"));
    }
    if list.len() > MAX_SUBREQUESTS {
        return Err(ApiError::bad("LIMIT_EXCEEDED", format!("The request can’t contain more than {MAX_SUBREQUESTS} operations.")));
    }
    // Salesforce: "up to 5 of these subrequests can be sObject Collections or query operations".
    let queries = list.iter().filter(|s| s.get("url").and_then(Value::as_str).is_some_and(is_query_or_collections)).count();
    if queries > MAX_QUERY_SUBREQUESTS {
        return Err(ApiError::bad(
            "LIMIT_EXCEEDED",
            format!("The request can’t contain more than {MAX_QUERY_SUBREQUESTS} query or sObject Collections operations."),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    let mut subs = vec![];
    for s in list {
        let method = s.get("method").and_then(Value::as_str).unwrap_or("");
        let method = match method.to_ascii_uppercase().as_str() {
            "GET" => Method::GET,
            "POST" => Method::POST,
            "PATCH" => Method::PATCH,
            "PUT" => Method::PUT,
            "DELETE" => Method::DELETE,
            _ => return Err(invalid(format!("Invalid HTTP method '{method}' in a subrequest"))),
        };
        let url = s.get("url").and_then(Value::as_str).unwrap_or("").to_string();
        if !url.starts_with("/services/data/v") {
            return Err(invalid(format!("The url of a subrequest must start with /services/data/vXX.X/: '{url}'")));
        }
        let reference_id = s.get("referenceId").and_then(Value::as_str).unwrap_or("").to_string();
        let valid_ref = reference_id.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && reference_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_ref {
            return Err(invalid(format!(
                "referenceId '{reference_id}' must start with a letter and contain only letters, digits and underscores"
            )));
        }
        if !seen.insert(reference_id.to_ascii_lowercase()) {
            return Err(invalid(format!("Duplicate referenceId '{reference_id}'")));
        }
        subs.push(Sub { method, url, reference_id, body: s.get("body").cloned().filter(|b| !b.is_null()) });
    }
    Ok((all_or_none, subs))
}

/// Value of `ref.path` (`id`, `Name`, `records[0].Id`, …) in an earlier subresponse body.
fn lookup<'a>(refs: &'a HashMap<String, Value>, expr: &str) -> Option<&'a Value> {
    let mut parts = expr.split('.');
    let mut cur = refs.get(parts.next()?)?;
    for part in parts {
        let (name, idx) = match part.split_once('[') {
            Some((n, rest)) => (n, Some(rest.trim_end_matches(']').parse::<usize>().ok()?)),
            None => (part, None),
        };
        if !name.is_empty() {
            cur = cur.get(name)?;
        }
        if let Some(i) = idx {
            cur = cur.get(i)?;
        }
    }
    (!cur.is_null()).then_some(cur)
}

fn display(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Replaces every `@{expr}` in `s`; Err(expr) names the first unresolved reference.
fn substitute(s: &str, refs: &HashMap<String, Value>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(p) = rest.find("@{") {
        out.push_str(&rest[..p]);
        let after = &rest[p + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[p..]);
            return Ok(out);
        };
        let expr = &after[..end];
        out.push_str(&display(lookup(refs, expr).ok_or_else(|| expr.to_string())?));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn substitute_json(v: &Value, refs: &HashMap<String, Value>) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => {
            // A string that is exactly one reference takes the referenced value's type.
            let whole = s.strip_prefix("@{").and_then(|r| r.strip_suffix('}')).filter(|e| !e.contains('}'));
            match whole {
                Some(expr) => lookup(refs, expr).cloned().ok_or_else(|| expr.to_string())?,
                None => Value::String(substitute(s, refs)?),
            }
        }
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute_json(x, refs)).collect::<Result<_, _>>()?),
        Value::Object(o) => {
            let mut m = Map::new();
            for (k, x) in o {
                m.insert(k.clone(), substitute_json(x, refs)?);
            }
            Value::Object(m)
        }
        other => other.clone(),
    })
}

fn sub_response(reference_id: &str, status: u16, body: Value, headers: Map<String, Value>) -> Value {
    json!({"body": body, "httpHeaders": headers, "httpStatusCode": status, "referenceId": reference_id})
}

fn halted(reference_id: &str, message: &str) -> Value {
    sub_response(reference_id, 400, json!([{"errorCode": "PROCESSING_HALTED", "message": message}]), Map::new())
}

pub async fn composite(
    State(st): St,
    _api: Api,
    headers: HeaderMap,
    lock: Option<Extension<LockFault>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (all_or_none, subs) = parse(&json_body(&body)?)?;
    let lock = lock.map(|Extension(l)| l).unwrap_or_default();
    let auth = headers.get("authorization").cloned();
    let mut app = super::router(st.clone());
    // allOrNone: a copy of the data to restore if any subrequest fails.
    let snapshot = all_or_none.then(|| st.store.read().tables.clone());
    let mut refs: HashMap<String, Value> = HashMap::new();
    let mut out: Vec<Value> = vec![];
    let mut failed = false;
    for sub in subs {
        if failed && all_or_none {
            out.push(halted(&sub.reference_id, ROLLED_BACK));
            continue;
        }
        let resolved =
            substitute(&sub.url, &refs).and_then(|url| sub.body.as_ref().map(|b| substitute_json(b, &refs)).transpose().map(|b| (url, b)));
        let (url, body) = match resolved {
            Ok(x) => x,
            Err(expr) => {
                let target = expr.split(['.', '[']).next().unwrap_or("");
                out.push(halted(
                    &sub.reference_id,
                    &format!(
                        "Invalid reference specified. No value for {expr} found in {target}. Provided referenceId ('{target}') must start with a letter or a number, and it can contain only letters, numbers and underscores ('_')."
                    ),
                ));
                failed = true;
                continue;
            }
        };
        let Some(Answer { status, location, body: rbody }) =
            serve(&mut app, sub.method.clone(), &url, auth.as_ref(), body.as_ref(), lock).await
        else {
            out.push(sub_response(
                &sub.reference_id,
                400,
                json!([{"errorCode": "INVALID_API_INPUT", "message": format!("Invalid url '{url}'")}]),
                Map::new(),
            ));
            failed = true;
            continue;
        };
        let mut http_headers = Map::new();
        if let Some(loc) = location {
            http_headers.insert("Location".into(), json!(loc));
        }
        if status == 201 && sub.method == Method::POST && !http_headers.contains_key("Location") {
            if let Some(id) = rbody.get("id").and_then(Value::as_str) {
                let path = url.split('?').next().unwrap_or(&url).trim_end_matches('/');
                http_headers.insert("Location".into(), json!(format!("{path}/{id}")));
            }
        }
        if status >= 400 {
            failed = true;
        } else {
            refs.insert(sub.reference_id.clone(), rbody.clone());
        }
        out.push(sub_response(&sub.reference_id, status, rbody, http_headers));
    }
    if failed {
        if let Some(tables) = snapshot {
            st.store.write().tables = tables;
            for r in out.iter_mut() {
                if r["httpStatusCode"].as_u64().is_some_and(|s| s < 400) {
                    *r = halted(r["referenceId"].as_str().unwrap_or(""), ROLLED_BACK);
                }
            }
        }
    }
    Ok((StatusCode::OK, Json(json!({"compositeResponse": out}))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let mut refs = HashMap::new();
        refs.insert("acct".to_string(), json!({"id": "001A", "success": true}));
        refs.insert("q".to_string(), json!({"records": [{"Id": "003B", "Account": {"Name": "Acme"}}]}));
        assert_eq!(substitute("/x/@{acct.id}?f=@{q.records[0].Account.Name}", &refs).unwrap(), "/x/001A?f=Acme");
        assert_eq!(substitute("@{acct.nope}", &refs).unwrap_err(), "acct.nope");
        assert_eq!(
            substitute_json(&json!({"b": "@{acct.success}", "s": "id=@{acct.id}"}), &refs).unwrap(),
            json!({"b": true, "s": "id=001A"})
        );
    }
}
