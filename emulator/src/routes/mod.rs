//! HTTP routing. Everything under `/services/` goes through `services_layer` (call counters,
//! faults, and for `/services/data` sessions, API limits and the Sforce-Limit-Info header).

pub mod admin;
pub mod auth;
pub mod batch;
pub mod bulk;
pub mod collections;
pub mod cometd;
pub mod composite;
pub mod fields;
pub mod layouts;
pub mod parameterized_search;
pub mod query;
pub mod replication;
pub mod rest;
pub mod search;
pub mod soap;
pub mod tree;

use crate::errors::ApiError;
use crate::faults::{status_body, FaultKind};
use crate::state::AppState;
use crate::tls::DropConnection;
use axum::extract::{FromRequestParts, MatchedPath, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub type St = State<Arc<AppState>>;

/// Set on requests hit by a `lock` fault: saves fail with UNABLE_TO_LOCK_ROW.
#[derive(Clone, Copy, Default)]
pub struct LockFault(pub bool);

/// A response the connection loop turns into a closed connection.
pub fn dropped() -> Response {
    let mut r = Response::new(axum::body::Body::empty());
    r.extensions_mut().insert(DropConnection);
    r
}

/// Path parameters of a versioned data route, with the version checked against the served list.
pub struct Api {
    /// "62.0"
    pub version: String,
    params: HashMap<String, String>,
}

impl Api {
    pub fn param(&self, name: &str) -> &str {
        self.params.get(name).map(String::as_str).unwrap_or("")
    }
}

pub fn served_versions(newest: &str) -> Vec<String> {
    let top: u32 = newest.trim_end_matches(".0").parse().unwrap_or(62);
    (20..=top).map(|v| format!("{v}.0")).collect()
}

impl FromRequestParts<Arc<AppState>> for Api {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, st: &Arc<AppState>) -> Result<Self, ApiError> {
        let Path(params): Path<HashMap<String, String>> = Path::from_request_parts(parts, st).await.map_err(|_| ApiError::not_found())?;
        let version = params.get("version").and_then(|v| v.strip_prefix('v')).unwrap_or("").to_string();
        if !served_versions(&st.cfg.api_version).contains(&version) {
            return Err(ApiError::not_found());
        }
        Ok(Api { version, params })
    }
}

/// `METHOD /route` with the `/services/data/{version}` prefix dropped: counters group by route.
fn endpoint_key(method: &str, route: &str) -> String {
    let r = route.strip_prefix("/services/data/{version}").unwrap_or(route);
    let r = if r.is_empty() { "/" } else { r };
    format!("{method} {}", if r.len() > 1 { r.trim_end_matches('/') } else { r })
}

fn bearer(req: &Request) -> Option<String> {
    let h = req.headers().get("authorization")?.to_str().ok()?;
    let (scheme, token) = h.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("Bearer") || scheme.eq_ignore_ascii_case("OAuth")).then(|| token.trim().to_string())
}

async fn services_layer(State(st): St, matched: Option<MatchedPath>, mut req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let route = matched.as_ref().map(|m| m.as_str().to_string()).unwrap_or_else(|| path.clone());
    if req.extensions().get::<composite::Internal>().is_some() {
        // A composite subrequest: the outer call was metered; counted apart.
        st.count_subrequest(endpoint_key(&method, &route));
        return next.run(req).await;
    }
    st.count_endpoint(endpoint_key(&method, &route));

    let fired = st.faults.lock().fire(&method, &path, || st.rand_f64());
    let mut lock = false;
    for f in &fired {
        match f.kind {
            FaultKind::Latency => tokio::time::sleep(Duration::from_millis(f.latency_ms.unwrap_or(0))).await,
            FaultKind::Lock => lock = true,
            _ => {}
        }
    }
    for f in &fired {
        match f.kind {
            FaultKind::Status => {
                let status = f.status.unwrap_or(503);
                let (code, msg) = status_body(status);
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                return ApiError::new(status, code, msg).into_response();
            }
            FaultKind::Timeout => {
                // Held until the client disconnects (hyper drops this future) or the time passes.
                tokio::time::sleep(Duration::from_millis(f.latency_ms.unwrap_or(300_000))).await;
                return ApiError::new(StatusCode::GATEWAY_TIMEOUT, "SERVER_UNAVAILABLE", "Request timed out").into_response();
            }
            FaultKind::Drop => return dropped(),
            FaultKind::ExpiredSession => {
                if let Some(t) = bearer(&req) {
                    st.tokens.lock().remove(&t);
                }
                return ApiError::invalid_session().into_response();
            }
            _ => {}
        }
    }

    // The versions list is public on Salesforce: clients read it before they log in.
    if !path.starts_with("/services/data") || path.trim_end_matches('/') == "/services/data" {
        return next.run(req).await;
    }
    if !bearer(&req).is_some_and(|t| st.session_valid(&t)) {
        return ApiError::invalid_session().into_response();
    }
    let (mut resp, (used, max)) = match st.use_api() {
        Ok(usage) => {
            req.extensions_mut().insert(LockFault(lock));
            // changeOrigin of the change events this request's saves produce.
            let call_options = req.headers().get("sforce-call-options").and_then(|v| v.to_str().ok());
            let origin = crate::cdc::rest_origin(&path, call_options);
            (crate::cdc::ORIGIN.scope(origin, next.run(req)).await, usage)
        }
        Err(usage) => {
            (ApiError::new(StatusCode::FORBIDDEN, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.").into_response(), usage)
        }
    };
    if let Ok(v) = HeaderValue::from_str(&format!("api-usage={used}/{max}")) {
        resp.headers_mut().insert("sforce-limit-info", v);
    }
    resp
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", format!("HTTP Method '{}' not allowed.", req.method()))
}

pub fn router(st: Arc<AppState>) -> Router {
    let d = "/services/data/{version}";
    let services = Router::new()
        .route("/services/oauth2/token", post(auth::token))
        .route("/services/oauth2/userinfo", get(auth::userinfo))
        .route("/services/Soap/{api}/{version}", post(soap::endpoint))
        .route("/services/Soap/{api}/{version}/{org}", post(soap::endpoint))
        .route("/services/data", get(rest::versions))
        .route("/services/data/", get(rest::versions))
        .route(d, get(rest::resources))
        .route(&format!("{d}/"), get(rest::resources))
        .route(&format!("{d}/limits"), get(rest::limits))
        .route(&format!("{d}/limits/"), get(rest::limits))
        .route(&format!("{d}/limits/recordCount"), get(rest::record_count))
        .route("/id/{org}/{user}", get(auth::identity))
        .route(&format!("{d}/sobjects"), get(rest::describe_global))
        .route(&format!("{d}/sobjects/"), get(rest::describe_global))
        .route(&format!("{d}/sobjects/{{object}}"), get(rest::object_info).post(rest::create))
        .route(&format!("{d}/sobjects/{{object}}/"), get(rest::object_info).post(rest::create))
        .route(&format!("{d}/sobjects/{{object}}/describe"), get(rest::describe))
        .route(&format!("{d}/sobjects/{{object}}/describe/"), get(rest::describe))
        .route(&format!("{d}/sobjects/{{object}}/describe/layouts"), get(layouts::layouts))
        .route(&format!("{d}/sobjects/{{object}}/describe/layouts/"), get(layouts::layouts))
        .route(&format!("{d}/sobjects/{{object}}/describe/layouts/{{record_type}}"), get(layouts::layout_for_record_type))
        .route(&format!("{d}/sobjects/{{object}}/updated"), get(replication::updated))
        .route(&format!("{d}/sobjects/{{object}}/updated/"), get(replication::updated))
        .route(&format!("{d}/sobjects/{{object}}/deleted"), get(replication::deleted))
        .route(&format!("{d}/sobjects/{{object}}/deleted/"), get(replication::deleted))
        .route(&format!("{d}/sobjects/{{object}}/{{id}}"), get(rest::retrieve).patch(rest::update).delete(rest::delete))
        .route(
            &format!("{d}/sobjects/{{object}}/{{field}}/{{value}}"),
            get(rest::retrieve_by_ext).patch(rest::upsert).delete(rest::delete_by_ext),
        )
        .route(&format!("{d}/composite"), post(composite::composite))
        .route(&format!("{d}/composite/"), post(composite::composite))
        .route(&format!("{d}/composite/batch"), post(batch::batch))
        .route(&format!("{d}/composite/tree/{{object}}"), post(tree::create))
        .route(&format!("{d}/composite/sobjects"), post(collections::create).patch(collections::update).delete(collections::delete))
        .route(&format!("{d}/composite/sobjects/{{object}}"), get(collections::retrieve).post(collections::retrieve_post))
        .route(&format!("{d}/composite/sobjects/{{object}}/{{field}}"), patch(collections::upsert))
        .route(&format!("{d}/search"), get(search::search))
        .route(&format!("{d}/search/"), get(search::search))
        .route(&format!("{d}/parameterizedSearch"), get(parameterized_search::get_search).post(parameterized_search::post_search))
        .route(&format!("{d}/parameterizedSearch/"), get(parameterized_search::get_search).post(parameterized_search::post_search))
        .route(&format!("{d}/query"), get(query::query))
        .route(&format!("{d}/query/"), get(query::query))
        .route(&format!("{d}/query/{{locator}}"), get(query::more))
        .route(&format!("{d}/queryAll"), get(query::query_all))
        .route(&format!("{d}/queryAll/"), get(query::query_all))
        .route(&format!("{d}/queryAll/{{locator}}"), get(query::more))
        .merge(bulk::router())
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn_with_state(st.clone(), services_layer));
    services.merge(admin::router()).merge(fields::router()).merge(cometd::router()).fallback(not_found).with_state(st)
}

/// Parses a JSON body, failing like Salesforce does on malformed JSON.
pub fn json_body(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad("JSON_PARSER_ERROR", format!("{e} at [line:{}, column:{}]", e.line(), e.column())))
}

pub fn json<T: serde::Serialize>(status: StatusCode, body: T) -> Response {
    (status, Json(body)).into_response()
}
