//! Discovery, describe, limits and single-record sObject REST resources.

use super::{json, json_body, Api, LockFault, St};
use crate::errors::{rec_errors_response, ApiError, RecError};
use crate::ids;
use crate::out::{attributes, Out};
use crate::schema::{describe, FieldType};
use crate::soql::eval::field_json;
use crate::state::AppState;
use crate::store::{is_deleted, Record};
use crate::write::{parse_body, UpsertError, Writer};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value as Json_};
use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

/// Release name for an API version: 59.0 is Winter '24, three releases a year.
fn release_label(v: &str) -> String {
    let n: i64 = v.trim_end_matches(".0").parse().unwrap_or(62);
    let idx = n - 59;
    let year = 24 + idx.div_euclid(3);
    let season = ["Winter", "Spring", "Summer"][idx.rem_euclid(3) as usize];
    format!("{season} '{year:02}")
}

pub async fn versions(State(st): St) -> Response {
    let list: Vec<Json_> = super::served_versions(&st.cfg.api_version)
        .into_iter()
        .map(|v| json!({"label": release_label(&v), "url": format!("/services/data/v{v}"), "version": v}))
        .collect();
    Json(list).into_response()
}

pub async fn resources(api: Api) -> Response {
    let b = format!("/services/data/v{}", api.version);
    let mut m = serde_json::Map::new();
    for r in [
        "sobjects",
        "query",
        "queryAll",
        "composite",
        "limits",
        "search",
        "parameterizedSearch",
        "recent",
        "tooling",
        "connect",
        "analytics",
    ] {
        m.insert(r.into(), Json_::String(format!("{b}/{r}")));
    }
    Json(m).into_response()
}

pub async fn limits(State(st): St, _api: Api) -> Response {
    let (used, max) = {
        let c = st.counters.lock();
        (c.api_usage, c.daily_limit)
    };
    let mr = |m: u64, r: u64| json!({"Max": m, "Remaining": r});
    Json(json!({
        "ConcurrentAsyncGetReportInstances": mr(200, 200),
        "ConcurrentSyncReportRuns": mr(20, 20),
        "DailyApiRequests": mr(max, max.saturating_sub(used)),
        "DailyAsyncApexExecutions": mr(250000, 250000),
        "DailyBulkApiBatches": mr(15000, 15000),
        "DailyBulkV2QueryFileStorageMB": mr(976562, 976562),
        "DailyBulkV2QueryJobs": mr(10000, 10000),
        "DataStorageMB": mr(5, 5),
        "FileStorageMB": mr(20, 20),
        "HourlyTimeBasedWorkflow": mr(1000, 1000),
        "SingleEmail": mr(5000, 5000),
    }))
    .into_response()
}

/// `GET limits/recordCount?sObjects=A,B`: live record counts (all objects with records when no
/// list is given), as `{"sObjects": [{"count", "name"}]}`.
pub async fn record_count(State(st): St, _api: Api, axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>) -> Response {
    let wanted: Option<Vec<&str>> = q.get("sObjects").map(|s| s.split(',').map(str::trim).filter(|n| !n.is_empty()).collect());
    let store = st.store.read();
    let counts: Vec<Json_> = st
        .schema
        .objects
        .iter()
        .enumerate()
        .filter(|(_, def)| wanted.as_ref().is_none_or(|w| w.iter().any(|n| n.eq_ignore_ascii_case(&def.name))))
        .map(|(o, def)| (def, store.tables[o].recs.values().filter(|r| !is_deleted(def, r)).count()))
        .filter(|(_, n)| wanted.is_some() || *n > 0)
        .map(|(def, n)| json!({"count": n, "name": def.name}))
        .collect();
    Json(json!({"sObjects": counts})).into_response()
}

pub fn object_idx(st: &AppState, name: &str) -> Result<usize, ApiError> {
    st.schema.object(name).ok_or_else(ApiError::not_found)
}

/// Describe honours If-Modified-Since as Salesforce does: 304 Not Modified (empty body) when
/// the metadata has not changed since; responses carry Last-Modified (HTTP dates: seconds).
fn conditional(headers: &HeaderMap, modified_ms: i64, body: impl FnOnce() -> Json_) -> Response {
    let secs = modified_ms.div_euclid(1000);
    let since = headers.get("if-modified-since").and_then(|v| v.to_str().ok()).and_then(|v| httpdate::parse_http_date(v).ok());
    let since = since.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs() as i64);
    let last = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64));
    let mut r = if since.is_some_and(|s| secs <= s) { StatusCode::NOT_MODIFIED.into_response() } else { Json(body()).into_response() };
    if let Ok(v) = HeaderValue::from_str(&last) {
        r.headers_mut().insert("last-modified", v);
    }
    r
}

pub async fn describe_global(State(st): St, api: Api, headers: HeaderMap) -> Response {
    let schema = st.schema.get();
    let modified = schema.objects.iter().map(|o| o.modified_ms).max().unwrap_or(0);
    conditional(&headers, modified, || describe::global(schema, &api.version))
}

pub async fn object_info(State(st): St, api: Api) -> Result<Response, ApiError> {
    let o = object_idx(&st, api.param("object"))?;
    let summary = describe::object_summary(&st.schema.objects[o], &api.version);
    Ok(Json(json!({"objectDescribe": summary, "recentItems": []})).into_response())
}

pub async fn describe(State(st): St, api: Api, headers: HeaderMap) -> Result<Response, ApiError> {
    let o = object_idx(&st, api.param("object"))?;
    let schema = st.schema.get();
    Ok(conditional(&headers, schema.objects[o].modified_ms, || describe::object(schema, &schema.objects[o], &api.version)))
}

/// The record as GET returns it: attributes, then all (or the requested) fields in describe order.
pub fn render_record(st: &AppState, obj: usize, rec: &Record, fields: Option<&[usize]>, version: &str) -> Out {
    let def = &st.schema.objects[obj];
    let id = rec.get(0).as_str().unwrap_or("");
    let mut out = vec![("attributes".to_string(), attributes(&def.name, version, id))];
    let all: Vec<usize> = (0..def.fields.len()).collect();
    for &fi in fields.unwrap_or(&all) {
        out.push((def.fields[fi].name.clone(), Out::J(field_json(def, rec, fi))));
    }
    Out::O(out)
}

/// `?fields=A,B` → positions (Id always included, as Salesforce does).
pub fn field_list(st: &AppState, obj: usize, fields: Option<&String>) -> Result<Option<Vec<usize>>, ApiError> {
    let Some(list) = fields.filter(|f| !f.trim().is_empty()) else { return Ok(None) };
    let def = &st.schema.objects[obj];
    let mut out = vec![];
    for name in list.split(',').map(str::trim) {
        let fi = def.field(name).ok_or_else(|| {
            ApiError::bad("INVALID_FIELD", format!("No such column '{name}' on entity '{}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.", def.name))
        })?;
        if !out.contains(&fi) {
            out.push(fi);
        }
    }
    if !out.contains(&0) {
        out.push(0);
    }
    Ok(Some(out))
}

fn body_object(bytes: &[u8]) -> Result<serde_json::Map<String, Json_>, ApiError> {
    match json_body(bytes)? {
        Json_::Object(m) => Ok(m),
        _ => Err(ApiError::bad("JSON_PARSER_ERROR", "Cannot deserialize instance of sObject from START_ARRAY value [")),
    }
}

fn save_result(id: &str, created: Option<bool>) -> Json_ {
    let mut v = json!({"id": id, "success": true, "errors": []});
    if let Some(c) = created {
        v["created"] = json!(c);
    }
    v
}

pub async fn create(State(st): St, api: Api, lock: Option<Extension<LockFault>>, body: Bytes) -> Result<Response, ApiError> {
    let obj = object_idx(&st, api.param("object"))?;
    let parsed = parse_body(&st.schema.objects[obj], &body_object(&body)?)?;
    let rules = st.rules.read();
    let mut store = st.store.write();
    let mut w = Writer::new(&st.schema, &mut store, &rules, &st.clock, &st.user_id);
    w.lock_fault = lock.is_some_and(|l| l.0 .0);
    Ok(match w.create(obj, &parsed) {
        Ok(id) => json(StatusCode::CREATED, save_result(&id, None)),
        Err(errs) => rec_errors_response(errs),
    })
}

/// Resolves a path ID to a record of `obj`, live or (with `deleted_ok`) in the recycle bin.
fn find(st: &AppState, obj: usize, raw: &str) -> Result<(String, u64), ApiError> {
    let def = &st.schema.objects[obj];
    let id = ids::normalize(raw).ok_or_else(|| ApiError::malformed_id(raw))?;
    if id[..3] != def.key_prefix {
        return Err(
            ApiError::bad("MALFORMED_ID", format!("{} ID: id value of incorrect type: {id}", def.label)).with_fields(vec!["Id".into()])
        );
    }
    let seq = ids::seq_of(&def.key_prefix, &id).ok_or_else(ApiError::not_found)?;
    Ok((id, seq))
}

pub async fn retrieve(State(st): St, api: Api, Query(q): Query<HashMap<String, String>>) -> Result<Response, ApiError> {
    let obj = object_idx(&st, api.param("object"))?;
    let (_, seq) = find(&st, obj, api.param("id"))?;
    let fields = field_list(&st, obj, q.get("fields"))?;
    let store = st.store.read();
    match store.tables[obj].recs.get(&seq) {
        Some(r) if !is_deleted(&st.schema.objects[obj], r) => {
            Ok(Json(render_record(&st, obj, r, fields.as_deref(), &api.version)).into_response())
        }
        _ => Err(ApiError::not_found()),
    }
}

/// Single-record REST maps "no such row" to 404 NOT_FOUND.
fn single(errs: Vec<RecError>) -> Response {
    if errs.len() == 1 && errs[0].code == "INVALID_CROSS_REFERENCE_KEY" && errs[0].message == "invalid cross reference id" {
        return ApiError::not_found().into_response();
    }
    rec_errors_response(errs)
}

pub async fn update(State(st): St, api: Api, lock: Option<Extension<LockFault>>, body: Bytes) -> Result<Response, ApiError> {
    let obj = object_idx(&st, api.param("object"))?;
    let (id, _) = find(&st, obj, api.param("id"))?;
    let parsed = parse_body(&st.schema.objects[obj], &body_object(&body)?)?;
    let rules = st.rules.read();
    let mut store = st.store.write();
    let mut w = Writer::new(&st.schema, &mut store, &rules, &st.clock, &st.user_id);
    w.lock_fault = lock.is_some_and(|l| l.0 .0);
    Ok(match w.update(obj, &id, &parsed) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(errs) => single(errs),
    })
}

pub async fn delete(State(st): St, api: Api, lock: Option<Extension<LockFault>>) -> Result<Response, ApiError> {
    let obj = object_idx(&st, api.param("object"))?;
    let (id, _) = find(&st, obj, api.param("id"))?;
    let rules = st.rules.read();
    let mut store = st.store.write();
    let mut w = Writer::new(&st.schema, &mut store, &rules, &st.clock, &st.user_id);
    w.lock_fault = lock.is_some_and(|l| l.0 .0);
    Ok(match w.delete(obj, &id) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(errs) => single(errs),
    })
}

/// The external ID field named in an upsert/lookup path, or Salesforce's 404.
pub fn ext_field(st: &AppState, obj: usize, name: &str) -> Result<usize, ApiError> {
    let def = &st.schema.objects[obj];
    def.field(name)
        .filter(|&fi| {
            let fd = &def.fields[fi];
            fd.external_id || fd.ftype == FieldType::Id
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                format!("Provided external ID field does not exist or is not accessible: {name}"),
            )
        })
}

pub fn multiple_choices(version: &str, object: &str, ids: Vec<String>) -> Response {
    let urls: Vec<String> = ids.iter().map(|id| format!("/services/data/v{version}/sobjects/{object}/{id}")).collect();
    json(StatusCode::MULTIPLE_CHOICES, urls)
}

pub async fn upsert(State(st): St, api: Api, lock: Option<Extension<LockFault>>, body: Bytes) -> Result<Response, ApiError> {
    let obj = object_idx(&st, api.param("object"))?;
    let field = ext_field(&st, obj, api.param("field"))?;
    let mut parsed = parse_body(&st.schema.objects[obj], &body_object(&body)?)?;
    parsed.id = None;
    let rules = st.rules.read();
    let mut store = st.store.write();
    let mut w = Writer::new(&st.schema, &mut store, &rules, &st.clock, &st.user_id);
    w.lock_fault = lock.is_some_and(|l| l.0 .0);
    Ok(match w.upsert(obj, field, api.param("value"), &mut parsed) {
        Ok((id, true)) => json(StatusCode::CREATED, save_result(&id, Some(true))),
        Ok((id, false)) => json(StatusCode::OK, save_result(&id, Some(false))),
        Err(UpsertError::Errors(errs)) => single(errs),
        Err(UpsertError::Multiple(ids)) => multiple_choices(&api.version, &st.schema.objects[obj].name, ids),
    })
}

/// Live records of `obj` matching an external ID (or Id) value.
fn by_ext(st: &AppState, obj: usize, field: usize, value: &str) -> Vec<u64> {
    let def = &st.schema.objects[obj];
    let store = st.store.read();
    if def.fields[field].ftype == FieldType::Id {
        return ids::normalize(value)
            .and_then(|id| ids::seq_of(&def.key_prefix, &id))
            .filter(|s| store.tables[obj].recs.get(s).is_some_and(|r| !is_deleted(def, r)))
            .into_iter()
            .collect();
    }
    let v = crate::value::Value::str(value);
    store.tables[obj].lookup(def, field, &v)
}

pub async fn retrieve_by_ext(State(st): St, api: Api, Query(q): Query<HashMap<String, String>>) -> Result<Response, ApiError> {
    let obj = object_idx(&st, api.param("object"))?;
    let field = ext_field(&st, obj, api.param("field"))?;
    let fields = field_list(&st, obj, q.get("fields"))?;
    match by_ext(&st, obj, field, api.param("value")).as_slice() {
        [] => Err(ApiError::not_found()),
        [seq] => {
            let store = st.store.read();
            let rec = store.tables[obj].recs.get(seq).ok_or_else(ApiError::not_found)?;
            Ok(Json(render_record(&st, obj, rec, fields.as_deref(), &api.version)).into_response())
        }
        many => {
            let ids = many.iter().map(|s| ids::mint(&st.schema.objects[obj].key_prefix, *s)).collect();
            Ok(multiple_choices(&api.version, &st.schema.objects[obj].name, ids))
        }
    }
}

pub async fn delete_by_ext(State(st): St, api: Api, lock: Option<Extension<LockFault>>) -> Result<Response, ApiError> {
    let obj = object_idx(&st, api.param("object"))?;
    let field = ext_field(&st, obj, api.param("field"))?;
    let hits = by_ext(&st, obj, field, api.param("value"));
    let seq = match hits.as_slice() {
        [] => return Err(ApiError::not_found()),
        [seq] => *seq,
        many => {
            let ids = many.iter().map(|s| ids::mint(&st.schema.objects[obj].key_prefix, *s)).collect();
            return Ok(multiple_choices(&api.version, &st.schema.objects[obj].name, ids));
        }
    };
    let id = ids::mint(&st.schema.objects[obj].key_prefix, seq);
    let rules = st.rules.read();
    let mut store = st.store.write();
    let mut w = Writer::new(&st.schema, &mut store, &rules, &st.clock, &st.user_id);
    w.lock_fault = lock.is_some_and(|l| l.0 .0);
    Ok(match w.delete(obj, &id) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(errs) => single(errs),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn release_labels() {
        assert_eq!(super::release_label("62.0"), "Winter '25");
        assert_eq!(super::release_label("61.0"), "Summer '24");
        assert_eq!(super::release_label("60.0"), "Spring '24");
        assert_eq!(super::release_label("20.0"), "Winter '11");
    }
}
