//! Data replication resources: `sobjects/{O}/updated/?start=&end=` (getUpdated) and
//! `sobjects/{O}/deleted/?start=&end=` (getDeleted), driven by SystemModstamp and the recycle bin.
//!
//! Rules as Salesforce documents them: seconds are ignored (times truncate to the minute), start
//! must precede end, start may not be more than 30 days ago (emulator clock), at most 600,000 IDs.

use super::rest::object_idx;
use super::{Api, St};
use crate::clock::{format_datetime, parse_datetime, DAY_MS};
use crate::errors::ApiError;
use crate::state::AppState;
use crate::store::is_deleted;
use crate::value::Value;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::collections::HashMap;

pub const MAX_IDS: usize = 600_000;
pub const WINDOW_DAYS: i64 = 30;
const MINUTE_MS: i64 = 60_000;

fn replication_error(msg: &str) -> ApiError {
    ApiError::bad("INVALID_REPLICATION_DATE", msg)
}

/// Validated window: (start, end, latestDateCovered), epoch ms, minute-aligned.
fn window(st: &AppState, q: &HashMap<String, String>) -> Result<(i64, i64, i64), ApiError> {
    let param = |name: &str| -> Result<i64, ApiError> {
        let raw = q
            .get(name)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ApiError::bad("MISSING_ARGUMENT", format!("{name} parameter is required")))?;
        let ms = parse_datetime(raw.trim()).ok_or_else(|| {
            ApiError::bad(
                "INVALID_REPLICATION_DATE",
                format!("Invalid value for {name}: '{raw}'. Use a dateTime such as 2024-05-20T20:49:00+00:00"),
            )
        })?;
        Ok(ms.div_euclid(MINUTE_MS) * MINUTE_MS)
    };
    let (start, end) = (param("start")?, param("end")?);
    let now = st.clock.now_ms();
    if start >= end {
        return Err(replication_error("startDate must chronologically precede endDate"));
    }
    if start < earliest_start(now) {
        return Err(replication_error("startDate cannot be more than 30 days ago"));
    }
    let latest = end.min(now.div_euclid(MINUTE_MS) * MINUTE_MS).max(start);
    Ok((start, end, latest))
}

/// The oldest accepted `start`: 30 days back, minute-aligned.
pub fn earliest_start(now_ms: i64) -> i64 {
    (now_ms - WINDOW_DAYS * DAY_MS).div_euclid(MINUTE_MS) * MINUTE_MS
}

fn too_many() -> ApiError {
    ApiError::bad("EXCEEDED_ID_LIMIT", "More than 600,000 IDs match: choose start and end dates that are closer together")
}

fn stamp(v: &Value) -> Option<i64> {
    match v {
        Value::DateTime(ms) => Some(*ms),
        _ => None,
    }
}

/// GET sobjects/{O}/updated: IDs of live records whose SystemModstamp is in [start, end).
pub async fn updated(State(st): St, api: Api, Query(q): Query<HashMap<String, String>>) -> Result<Response, ApiError> {
    let obj = object_idx(&st, api.param("object"))?;
    let (start, end, latest) = window(&st, &q)?;
    let def = &st.schema.objects[obj];
    let store = st.store.read();
    let mut hits: Vec<(i64, &str)> = vec![];
    for rec in store.tables[obj].recs.values() {
        if is_deleted(def, rec) {
            continue;
        }
        if let Some(t) = stamp(rec.get(def.sys.system_modstamp)).filter(|t| (start..end).contains(t)) {
            hits.push((t, rec.get(0).as_str().unwrap_or("")));
            if hits.len() > MAX_IDS {
                return Err(too_many());
            }
        }
    }
    hits.sort();
    let ids: Vec<&str> = hits.into_iter().map(|(_, id)| id).collect();
    Ok(Json(json!({"ids": ids, "latestDateCovered": format_datetime(latest)})).into_response())
}

/// GET sobjects/{O}/deleted: records deleted in [start, end): those in the recycle bin and
/// hard-deleted ones not yet purged. earliestDateAvailable is the deletion time of the newest
/// record physically purged (recycle bin retention, 15 days), or 30 days back when none was.
pub async fn deleted(State(st): St, api: Api, Query(q): Query<HashMap<String, String>>) -> Result<Response, ApiError> {
    let obj = object_idx(&st, api.param("object"))?;
    let (start, end, latest) = window(&st, &q)?;
    super::query::purge(&st);
    let def = &st.schema.objects[obj];
    let store = st.store.read();
    let table = &store.tables[obj];
    let mut hits: Vec<(i64, String)> = vec![];
    for rec in table.recs.values() {
        if !is_deleted(def, rec) {
            continue;
        }
        // Deleting stamps SystemModstamp: that is the deletion time.
        if let Some(t) = stamp(rec.get(def.sys.system_modstamp)).filter(|t| (start..end).contains(t)) {
            hits.push((t, rec.get(0).as_str().unwrap_or("").to_string()));
            if hits.len() > MAX_IDS {
                return Err(too_many());
            }
        }
    }
    for (&seq, &t) in table.tombstones.iter().filter(|(_, t)| (start..end).contains(*t)) {
        hits.push((t, crate::ids::mint(&def.key_prefix, seq)));
        if hits.len() > MAX_IDS {
            return Err(too_many());
        }
    }
    hits.sort();
    let records: Vec<_> = hits.into_iter().map(|(t, id)| json!({"id": id, "deletedDate": format_datetime(t)})).collect();
    let earliest = earliest_start(st.clock.now_ms()).max(table.purged_through.unwrap_or(i64::MIN));
    Ok(Json(json!({
        "deletedRecords": records,
        "earliestDateAvailable": format_datetime(earliest),
        "latestDateCovered": format_datetime(latest),
    }))
    .into_response())
}
