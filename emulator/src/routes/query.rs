//! `query` / `queryAll` with server-side cursors: the matched IDs are snapshotted once and
//! pages render from that snapshot (`nextRecordsUrl` = `.../query/<locator>-<offset>`).

use super::{Api, St};
use crate::errors::ApiError;
use crate::out::Out;
use crate::soql::eval::{column_metadata, compile, count, execute, execute_aggregate, render, Plan};
use crate::soql::parser::parse;
use crate::state::{AppState, Cursor, CURSOR_IDLE_MS};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value as Json_;
use std::collections::HashMap;
use std::sync::Arc;

/// Page size: `Sforce-Query-Options: batchSize=N` (clamped to Salesforce's 200..=2000), else
/// the configured default.
fn batch_size(st: &AppState, headers: &HeaderMap) -> usize {
    headers
        .get("sforce-query-options")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| {
            h.split(',').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                k.trim().eq_ignore_ascii_case("batchSize").then(|| v.trim().parse::<usize>().ok()).flatten()
            })
        })
        .map(|n| n.clamp(200, 2000))
        .unwrap_or(st.cfg.batch_size)
}

fn page(st: &AppState, version: &str, plan: &Plan, seqs: &[u64], start: usize, batch: usize, locator: Option<&str>) -> Response {
    let end = (start + batch).min(seqs.len());
    let store = st.store.read();
    let records: Vec<Out> = seqs[start..end].iter().filter_map(|&s| render(plan, &st.schema, &store, s, version)).collect();
    drop(store);
    let done = end >= seqs.len();
    let mut body = vec![("totalSize".to_string(), Out::J(Json_::from(seqs.len()))), ("done".to_string(), Out::J(Json_::Bool(done)))];
    if !done {
        let loc = locator.expect("locator for partial result");
        body.push(("nextRecordsUrl".into(), Out::J(Json_::String(format!("/services/data/v{version}/query/{loc}-{end}")))));
    }
    body.push(("records".into(), Out::A(records)));
    Json(Out::O(body)).into_response()
}

async fn run(
    st: Arc<AppState>,
    api: Api,
    q: HashMap<String, String>,
    headers: HeaderMap,
    include_deleted: bool,
) -> Result<Response, ApiError> {
    let Some(text) = q.get("q").filter(|t| !t.trim().is_empty()) else {
        return Err(ApiError::bad("MALFORMED_QUERY", "A query string has to be specified"));
    };
    let parsed = parse(text).map_err(|e| e.to_api(text))?;
    purge(&st);
    let plan = compile(&st.schema, &parsed, st.clock.now_ms()).map_err(|e| e.to_api(text))?;
    if q.get("columns").is_some_and(|c| c.eq_ignore_ascii_case("true")) {
        return Ok(Json(column_metadata(&plan, &st.schema)).into_response());
    }
    if plan.is_aggregate() {
        // Aggregate results come in one batch (Salesforce refuses queryMore on them).
        let records = {
            let store = st.store.read();
            execute_aggregate(&plan, &st.schema, &store, include_deleted)
        };
        let body = Out::O(vec![
            ("totalSize".into(), Out::J(Json_::from(records.len()))),
            ("done".into(), Out::J(Json_::Bool(true))),
            ("records".into(), Out::A(records)),
        ]);
        return Ok(Json(body).into_response());
    }
    if plan.count_only {
        let total = {
            let store = st.store.read();
            count(&plan, &st.schema, &store, include_deleted)
        };
        let body = serde_json::json!({"totalSize": total, "done": true, "records": []});
        return Ok(Json(body).into_response());
    }
    let seqs = {
        let store = st.store.read();
        execute(&plan, &st.schema, &store, include_deleted)
    };
    let batch = batch_size(&st, &headers);
    if seqs.len() <= batch {
        return Ok(page(&st, &api.version, &plan, &seqs, 0, batch, None));
    }
    let (plan, seqs) = (Arc::new(plan), Arc::new(seqs));
    let loc = st.add_cursor(Cursor { plan: plan.clone(), seqs: seqs.clone(), batch, touched_ms: st.clock.now_ms(), lru: 0 });
    Ok(page(&st, &api.version, &plan, &seqs, 0, batch, Some(&loc)))
}

pub async fn query(State(st): St, api: Api, Query(q): Query<HashMap<String, String>>, headers: HeaderMap) -> Result<Response, ApiError> {
    run(st, api, q, headers, false).await
}

pub async fn query_all(
    State(st): St,
    api: Api,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    run(st, api, q, headers, true).await
}

/// `GET query/{locator}-{offset}`. A locator dies when its last page has been served, after
/// [`CURSOR_IDLE_MS`] of emulator time without use, or when evicted by newer cursors; all three
/// give 400 INVALID_QUERY_LOCATOR.
pub async fn more(State(st): St, api: Api, headers: HeaderMap) -> Result<Response, ApiError> {
    let invalid = || ApiError::bad("INVALID_QUERY_LOCATOR", "invalid query locator");
    let raw = api.param("locator");
    let (loc, start) = raw.rsplit_once('-').ok_or_else(invalid)?;
    let start: usize = start.parse().map_err(|_| invalid())?;
    let now = st.clock.now_ms();
    let (plan, seqs, batch) = {
        let mut cursors = st.cursors.lock();
        let c = cursors.get_mut(loc).ok_or_else(invalid)?;
        if now - c.touched_ms > CURSOR_IDLE_MS {
            cursors.remove(loc);
            return Err(invalid());
        }
        c.touched_ms = now;
        c.lru = st.next_tick();
        if headers.contains_key("sforce-query-options") {
            c.batch = batch_size(&st, &headers);
        }
        let out = (c.plan.clone(), c.seqs.clone(), c.batch);
        if start > out.1.len() {
            return Err(invalid());
        }
        if start + out.2 >= out.1.len() {
            // The last page: the cursor is closed once it is served.
            cursors.remove(loc);
        }
        out
    };
    Ok(page(&st, &api.version, &plan, &seqs, start, batch, Some(loc)))
}

/// Empties the recycle bin of what is older than its retention before a read sees it.
pub fn purge(st: &AppState) {
    let now = st.clock.now_ms();
    if st.store.read().purge_due(now) {
        st.store.write().purge(&st.schema, now);
    }
}
