//! sObject Collections: up to 200 records per call, per-record results in request order,
//! optional all-or-none rollback.

use super::rest::{ext_field, field_list, object_idx, render_record};
use super::{json, json_body, Api, LockFault, St};
use crate::errors::{ApiError, RecError};
use crate::ids;
use crate::out::Out;
use crate::state::AppState;
use crate::store::is_deleted;
use crate::write::{parse_body, Parsed, UpsertError, Writer};
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Map, Value as Json_};
use std::collections::HashMap;

const MAX_RECORDS: usize = 200;

fn too_many() -> ApiError {
    ApiError::bad("EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call")
}

struct Body {
    all_or_none: bool,
    records: Vec<Map<String, Json_>>,
}

fn read_body(bytes: &[u8]) -> Result<Body, ApiError> {
    let v = json_body(bytes)?;
    let all_or_none = v.get("allOrNone").and_then(Json_::as_bool).unwrap_or(false);
    let records = match v.get("records") {
        Some(Json_::Array(a)) => a
            .iter()
            .map(|r| r.as_object().cloned().ok_or_else(|| ApiError::bad("JSON_PARSER_ERROR", "Cannot deserialize instance of sObject")))
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(ApiError::bad("INVALID_FIELD", "No records provided: 'records' must be an array of sObjects")),
    };
    if records.len() > MAX_RECORDS {
        return Err(too_many());
    }
    Ok(Body { all_or_none, records })
}

/// `attributes.type` of a record, resolved.
fn record_type(st: &AppState, r: &Map<String, Json_>) -> Result<usize, RecError> {
    let t = r.get("attributes").and_then(|a| a.get("type")).and_then(Json_::as_str);
    match t {
        None => Err(RecError::new("INVALID_TYPE", "Must send a concrete entity type.", vec![])),
        Some(t) => {
            st.schema.object(t).ok_or_else(|| RecError::new("INVALID_TYPE", format!("sObject type '{t}' is not supported."), vec![]))
        }
    }
}

type Outcome = Result<(String, Option<bool>), Vec<RecError>>;

/// Results in Salesforce's shape; with allOrNone, a failure rolls back everything and the
/// would-be successes report ALL_OR_NONE_OPERATION_ROLLED_BACK.
fn finish(w: &mut Writer, all_or_none: bool, outcomes: Vec<Outcome>) -> Response {
    let failed = outcomes.iter().any(|o| o.is_err());
    if all_or_none && failed {
        w.rollback();
    }
    let rolled = |o: &Outcome| all_or_none && failed && o.is_ok();
    let results: Vec<Json_> = outcomes
        .iter()
        .map(|o| match o {
            _ if rolled(o) => json!({"success": false, "errors": [RecError::new(
                "ALL_OR_NONE_OPERATION_ROLLED_BACK",
                "Record rolled back because not all records were valid and the request was using AllOrNone header",
                vec![])]}),
            Ok((id, created)) => {
                let mut v = json!({"id": id, "success": true, "errors": []});
                if let Some(c) = created {
                    v["created"] = json!(c);
                }
                v
            }
            Err(errs) => json!({"success": false, "errors": errs}),
        })
        .collect();
    json(StatusCode::OK, results)
}

/// Phase 1 for every record (types and field names); a bad body fails the request.
type ParsedRecord = Result<(usize, Parsed), RecError>;

fn parse_all(st: &AppState, records: &[Map<String, Json_>]) -> Result<Vec<ParsedRecord>, ApiError> {
    records
        .iter()
        .map(|r| match record_type(st, r) {
            Ok(obj) => parse_body(&st.schema.objects[obj], r).map(|p| Ok((obj, p))),
            Err(e) => Ok(Err(e)),
        })
        .collect()
}

pub async fn create(State(st): St, _api: Api, lock: Option<Extension<LockFault>>, body: Bytes) -> Result<Response, ApiError> {
    let body = read_body(&body)?;
    let parsed = parse_all(&st, &body.records)?;
    let rules = st.rules.read();
    let mut store = st.store.write();
    let mut w = Writer::new(&st.schema, &mut store, &rules, &st.clock, &st.user_id);
    w.lock_fault = lock.is_some_and(|l| l.0 .0);
    let outcomes = parsed
        .into_iter()
        .map(|p| match p {
            Ok((obj, p)) => w.create(obj, &p).map(|id| (id, None)),
            Err(e) => Err(vec![e]),
        })
        .collect();
    Ok(finish(&mut w, body.all_or_none, outcomes))
}

pub async fn update(State(st): St, _api: Api, lock: Option<Extension<LockFault>>, body: Bytes) -> Result<Response, ApiError> {
    let body = read_body(&body)?;
    let parsed = parse_all(&st, &body.records)?;
    let rules = st.rules.read();
    let mut store = st.store.write();
    let mut w = Writer::new(&st.schema, &mut store, &rules, &st.clock, &st.user_id);
    w.lock_fault = lock.is_some_and(|l| l.0 .0);
    let outcomes = parsed
        .into_iter()
        .map(|p| match p {
            Ok((obj, p)) => match p.id.clone() {
                Some(id) => w.update(obj, &id, &p).map(|id| (id, None)),
                None => Err(vec![RecError::new("MISSING_ARGUMENT", "Id not specified in an update call", vec![])]),
            },
            Err(e) => Err(vec![e]),
        })
        .collect();
    Ok(finish(&mut w, body.all_or_none, outcomes))
}

pub async fn upsert(State(st): St, api: Api, lock: Option<Extension<LockFault>>, body: Bytes) -> Result<Response, ApiError> {
    let obj = object_idx(&st, api.param("object"))?;
    let field = ext_field(&st, obj, api.param("field"))?;
    let body = read_body(&body)?;
    let parsed = parse_all(&st, &body.records)?;
    let field_name = st.schema.objects[obj].fields[field].name.clone();
    let rules = st.rules.read();
    let mut store = st.store.write();
    let mut w = Writer::new(&st.schema, &mut store, &rules, &st.clock, &st.user_id);
    w.lock_fault = lock.is_some_and(|l| l.0 .0);
    let mut outcomes = vec![];
    for (p, raw) in parsed.into_iter().zip(&body.records) {
        let outcome = match p {
            Ok((o, _)) if o != obj => Err(vec![RecError::new(
                "INVALID_TYPE",
                format!("Record type {} does not match the type of this request", st.schema.objects[o].name),
                vec![],
            )]),
            Ok((_, mut p)) => {
                let key = raw
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(&field_name))
                    .map(|(_, v)| match v {
                        Json_::String(s) => s.clone(),
                        Json_::Null => String::new(),
                        other => other.to_string(),
                    })
                    .unwrap_or_default();
                if key.is_empty() && field_name != "Id" {
                    Err(vec![RecError::new("MISSING_ARGUMENT", format!("{field_name} not specified"), vec![])])
                } else {
                    p.id = None;
                    match w.upsert(obj, field, &key, &mut p) {
                        Ok((id, created)) => Ok((id, Some(created))),
                        Err(UpsertError::Errors(e)) => Err(e),
                        Err(UpsertError::Multiple(ids)) => Err(vec![RecError::new(
                            "DUPLICATE_EXTERNAL_ID",
                            format!("{field_name}: more than one record found for external id field: {ids:?}"),
                            vec![field_name.clone()],
                        )]),
                    }
                }
            }
            Err(e) => Err(vec![e]),
        };
        outcomes.push(outcome);
    }
    Ok(finish(&mut w, body.all_or_none, outcomes))
}

pub async fn delete(
    State(st): St,
    _api: Api,
    lock: Option<Extension<LockFault>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let ids: Vec<String> =
        q.get("ids").map(|s| s.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()).unwrap_or_default();
    if ids.len() > MAX_RECORDS {
        return Err(too_many());
    }
    let all_or_none = q.get("allOrNone").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let rules = st.rules.read();
    let mut store = st.store.write();
    let mut w = Writer::new(&st.schema, &mut store, &rules, &st.clock, &st.user_id);
    w.lock_fault = lock.is_some_and(|l| l.0 .0);
    let outcomes = ids
        .iter()
        .map(|raw| {
            let obj = ids::normalize(raw).and_then(|id| st.schema.by_prefix(&id[..3]));
            match obj {
                None => Err(vec![RecError::new("MALFORMED_ID", format!("malformed id {raw}"), vec![])]),
                Some(obj) => w.delete(obj, raw).map(|id| (id, None)),
            }
        })
        .collect();
    Ok(finish(&mut w, all_or_none, outcomes))
}

/// GET `composite/sobjects/{Object}?ids=..&fields=..`: records in order, null where missing.
pub async fn retrieve(State(st): St, api: Api, Query(q): Query<HashMap<String, String>>) -> Result<Response, ApiError> {
    let ids: Vec<&str> = q.get("ids").map(|s| s.split(',').map(str::trim).collect()).unwrap_or_default();
    retrieve_ids(&st, &api, q.get("fields"), ids)
}

/// `POST composite/sobjects/{O}` with `{"ids":[...],"fields":[...]}`: the same retrieve for ID
/// lists too long for a URL.
pub async fn retrieve_post(State(st): St, api: Api, body: Bytes) -> Result<Response, ApiError> {
    let v = json_body(&body)?;
    let strings = |key: &str| -> Option<Vec<String>> { v.get(key)?.as_array()?.iter().map(|x| x.as_str().map(str::to_string)).collect() };
    let ids = strings("ids").unwrap_or_default();
    let fields = strings("fields").map(|f| f.join(","));
    retrieve_ids(&st, &api, fields.as_ref(), ids.iter().map(String::as_str).collect())
}

fn retrieve_ids(st: &AppState, api: &Api, fields: Option<&String>, ids: Vec<&str>) -> Result<Response, ApiError> {
    let obj = object_idx(st, api.param("object"))?;
    let fields = field_list(st, obj, fields)?;
    if fields.is_none() {
        return Err(ApiError::bad("MISSING_ARGUMENT", "fields parameter is required"));
    }
    if ids.len() > 2000 {
        return Err(too_many());
    }
    let def = &st.schema.objects[obj];
    let store = st.store.read();
    let mut out = vec![];
    for raw in ids {
        let id = ids::normalize(raw).ok_or_else(|| ApiError::malformed_id(raw))?;
        let rec = ids::seq_of(&def.key_prefix, &id).and_then(|s| store.tables[obj].recs.get(&s)).filter(|r| !is_deleted(def, r));
        out.push(match rec {
            Some(r) => render_record(st, obj, r, fields.as_deref(), &api.version),
            None => Out::J(Json_::Null),
        });
    }
    Ok(Json(out).into_response())
}
