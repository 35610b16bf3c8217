//! The emulator's own control surface under `/__emulator/` (not Salesforce API; no auth; not
//! counted as API calls). Documented in README.md.

use super::St;
use crate::clock::{format_datetime, DAY_MS};
use crate::faults::Fault;
use crate::rules::{Automation, ValidationRule};
use crate::schema::FieldType;
use crate::state::AppState;
use crate::store::is_deleted;
use crate::value::{from_json, Value};
use crate::write::{parse_body, Writer};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value as Json_};
use std::sync::Arc;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/__emulator", get(info))
        .route("/__emulator/", get(info))
        .route("/__emulator/reset", post(reset))
        .route("/__emulator/seed", post(seed))
        .route("/__emulator/faults", get(list_faults).post(add_fault).delete(clear_faults))
        .route("/__emulator/faults/{id}", delete(delete_fault))
        .route("/__emulator/validation_rules", get(list_rules).post(add_rule).delete(clear_rules))
        .route("/__emulator/validation_rules/{id}", delete(delete_rule))
        .route("/__emulator/automations", get(list_automations).post(add_automation).delete(clear_automations))
        .route("/__emulator/automations/{id}", delete(delete_automation))
        .route("/__emulator/clock", get(clock).post(set_clock))
        .route("/__emulator/counters", get(counters).delete(reset_counters))
        .route("/__emulator/limits", post(set_limits))
        .route("/__emulator/bulk/hold", post(bulk_hold))
}

fn bad(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg.into()}))).into_response()
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(if body.is_empty() { b"{}" } else { body }).map_err(|e| Box::new(bad(format!("bad request body: {e}"))))
}

async fn info(State(st): St) -> Response {
    Json(json!({
        "emulator": "sf-emulator",
        "version": env!("CARGO_PKG_VERSION"),
        "api_version": st.cfg.api_version,
        "org_id": st.org_id,
        "user_id": st.user_id,
        "objects": st.schema.objects.iter().map(|o| o.name.clone()).collect::<Vec<_>>(),
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldReq {
    held: bool,
}

/// Holds Bulk ingest jobs in `UploadComplete` (uploaded, closed, not processed) until
/// released; jobs closed meanwhile then run.
async fn bulk_hold(State(st): St, body: axum::body::Bytes) -> Response {
    let req: HoldReq = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    st.bulk.held.store(req.held, std::sync::atomic::Ordering::Relaxed);
    Json(json!({"held": req.held})).into_response()
}

async fn reset(State(st): St) -> Response {
    st.reset();
    Json(json!({"reset": true})).into_response()
}

#[derive(Deserialize)]
struct SeedReq {
    object: String,
    count: usize,
    /// Fixed field values for every seeded record.
    #[serde(default)]
    fields: Map<String, Json_>,
}

/// A plausible value for a required field of the n-th seeded record.
fn generated(st: &AppState, store: &crate::store::Store, obj: usize, fi: usize, n: usize, now_ms: i64) -> Result<Value, String> {
    let def = &st.schema.objects[obj];
    let fd = &def.fields[fi];
    if fd.ftype != FieldType::Reference {
        return generated_plain(fd, &def.label, n, now_ms).ok_or_else(|| format!("can't generate {}", fd.name));
    }
    let target = fd.reference_to.iter().find_map(|r| st.schema.object(r)).ok_or("no reference target")?;
    let tdef = &st.schema.objects[target];
    let id = store.tables[target]
        .recs
        .values()
        .find(|r| !is_deleted(tdef, r))
        .and_then(|r| r.get(0).as_str().map(str::to_string))
        .ok_or_else(|| format!("{}.{} needs an existing {} record; seed one first", def.name, fd.name, tdef.name))?;
    Ok(Value::str(&id))
}

fn generated_plain(fd: &crate::schema::FieldDef, object_label: &str, n: usize, now_ms: i64) -> Option<Value> {
    let text = |s: String| Value::Str(s.chars().take(fd.length.max(1) as usize).collect::<String>().into());
    Some(match fd.ftype {
        FieldType::Email => text(format!("seed{n}@example.com")),
        _ if fd.name == "Username" => text(format!("seed{n}@seed.sfsync.local")),
        FieldType::Picklist | FieldType::MultiPicklist | FieldType::Combobox => {
            Value::str(fd.default_picklist.as_ref().or(fd.picklist.first()).map(String::as_str).unwrap_or("Seed"))
        }
        FieldType::Int => Value::Int(n as i64),
        FieldType::Double | FieldType::Currency | FieldType::Percent => Value::Num(n as f64),
        FieldType::Date => Value::Date(now_ms.div_euclid(DAY_MS) as i32),
        FieldType::DateTime => Value::DateTime(now_ms),
        FieldType::Boolean => Value::Bool(false),
        FieldType::Reference => return None,
        _ => text(format!(
            "{} {n}",
            if fd.name == "Name" || fd.name == "LastName" { format!("Seed {object_label}") } else { fd.label.clone() }
        )),
    })
}

async fn seed(State(st): St, body: axum::body::Bytes) -> Response {
    let req: SeedReq = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let Some(obj) = st.schema.object(&req.object) else { return bad(format!("unknown object {}", req.object)) };
    let def = &st.schema.objects[obj];
    let fixed = match parse_body(def, &req.fields) {
        Ok(p) => p.values,
        Err(e) => return bad(e.message),
    };
    let email = def.field("Email");
    let rules = crate::rules::Rules::default();
    let mut store = st.store.write();
    let base = store.tables[obj].recs.len();
    let now = st.clock.now_ms();
    let fields: Vec<usize> = (0..def.fields.len())
        .filter(|&i| def.fields[i].required_on_create() || Some(i) == email)
        .filter(|i| !fixed.iter().any(|(f, _)| f == i))
        .collect();
    // Check generation (incl. reference targets) once up front, then stream inserts.
    for &fi in &fields {
        if let Err(e) = generated(&st, &store, obj, fi, base + 1, now) {
            return bad(e);
        }
    }
    let refs: Vec<(usize, Value)> = fields
        .iter()
        .filter(|&&fi| def.fields[fi].ftype == FieldType::Reference)
        .filter_map(|&fi| generated(&st, &store, obj, fi, 0, now).ok().map(|v| (fi, v)))
        .collect();
    // One stamp for the whole batch, like a bulk load: seeding a million rows must not push
    // SystemModstamp minutes into the future.
    let stamp = st.clock.stamp();
    let mut w = Writer::new(&st.schema, &mut store, &rules, &st.clock, &st.user_id);
    let (mut ids, mut first, mut last) = (vec![], None, None);
    for k in 0..req.count {
        let n = base + k + 1;
        let mut vals: Vec<(usize, Value)> = fields
            .iter()
            .filter_map(|&fi| match refs.iter().find(|(f, _)| *f == fi) {
                Some((_, v)) => Some((fi, v.clone())),
                None => generated_plain(&def.fields[fi], &def.label, n, now).map(|v| (fi, v)),
            })
            .collect();
        vals.extend(fixed.iter().cloned());
        let id = w.insert_raw(obj, vals, stamp, None);
        if first.is_none() {
            first = Some(id.clone());
        }
        if req.count <= 1000 {
            ids.push(id.clone());
        }
        last = Some(id);
    }
    let mut body = json!({"object": def.name, "count": req.count, "first_id": first, "last_id": last});
    if req.count <= 1000 {
        body["ids"] = json!(ids);
    }
    Json(body).into_response()
}

async fn list_faults(State(st): St) -> Response {
    Json(st.faults.lock().list.clone()).into_response()
}

async fn add_fault(State(st): St, body: axum::body::Bytes) -> Response {
    let f: Fault = match parse(&body) {
        Ok(f) => f,
        Err(e) => return *e,
    };
    if let Err(e) = f.validate() {
        return bad(e);
    }
    (StatusCode::CREATED, Json(st.faults.lock().add(f))).into_response()
}

async fn clear_faults(State(st): St) -> Response {
    st.faults.lock().list.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn delete_fault(State(st): St, Path(id): Path<u64>) -> Response {
    let mut f = st.faults.lock();
    let before = f.list.len();
    f.list.retain(|x| x.id != id);
    if f.list.len() == before { StatusCode::NOT_FOUND } else { StatusCode::NO_CONTENT }.into_response()
}

fn check_field(st: &AppState, object: &str, field: &str) -> Result<usize, Box<Response>> {
    let obj = st.schema.object(object).ok_or_else(|| Box::new(bad(format!("unknown object {object}"))))?;
    st.schema.objects[obj].field(field).ok_or_else(|| Box::new(bad(format!("unknown field {object}.{field}"))))?;
    Ok(obj)
}

async fn list_rules(State(st): St) -> Response {
    Json(st.rules.read().validations.clone()).into_response()
}

async fn add_rule(State(st): St, body: axum::body::Bytes) -> Response {
    let mut r: ValidationRule = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    if let Err(e) = check_field(&st, &r.object, &r.field) {
        return *e;
    }
    if let Some(ef) = &r.error_field {
        if let Err(e) = check_field(&st, &r.object, ef) {
            return *e;
        }
    }
    let mut rules = st.rules.write();
    rules.next_id += 1;
    r.id = rules.next_id;
    rules.validations.push(r.clone());
    (StatusCode::CREATED, Json(r)).into_response()
}

async fn clear_rules(State(st): St) -> Response {
    st.rules.write().validations.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn delete_rule(State(st): St, Path(id): Path<u64>) -> Response {
    let mut r = st.rules.write();
    let before = r.validations.len();
    r.validations.retain(|x| x.id != id);
    if r.validations.len() == before { StatusCode::NOT_FOUND } else { StatusCode::NO_CONTENT }.into_response()
}

async fn list_automations(State(st): St) -> Response {
    Json(st.rules.read().automations.clone()).into_response()
}

async fn add_automation(State(st): St, body: axum::body::Bytes) -> Response {
    let mut a: Automation = match parse(&body) {
        Ok(a) => a,
        Err(e) => return *e,
    };
    let obj = match check_field(&st, &a.object, &a.set_field) {
        Ok(o) => o,
        Err(e) => return *e,
    };
    if let Some(w) = &a.when_field {
        if let Err(e) = check_field(&st, &a.object, w) {
            return *e;
        }
    }
    let def = &st.schema.objects[obj];
    let sf = def.field(&a.set_field).unwrap_or(0);
    if from_json(&def.fields[sf], &a.value).is_err() {
        return bad(format!("value {} does not fit {}.{}", a.value, def.name, def.fields[sf].name));
    }
    let mut rules = st.rules.write();
    rules.next_id += 1;
    a.id = rules.next_id;
    rules.automations.push(a.clone());
    (StatusCode::CREATED, Json(a)).into_response()
}

async fn clear_automations(State(st): St) -> Response {
    st.rules.write().automations.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn delete_automation(State(st): St, Path(id): Path<u64>) -> Response {
    let mut r = st.rules.write();
    let before = r.automations.len();
    r.automations.retain(|x| x.id != id);
    if r.automations.len() == before { StatusCode::NOT_FOUND } else { StatusCode::NO_CONTENT }.into_response()
}

fn clock_body(st: &AppState) -> Response {
    let now = st.clock.now_ms();
    Json(json!({"now": format_datetime(now), "now_ms": now, "offset_ms": st.clock.offset_ms()})).into_response()
}

async fn clock(State(st): St) -> Response {
    clock_body(&st)
}

#[derive(Deserialize)]
struct ClockReq {
    advance_ms: Option<i64>,
    offset_ms: Option<i64>,
}

async fn set_clock(State(st): St, body: axum::body::Bytes) -> Response {
    let req: ClockReq = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    match (req.advance_ms, req.offset_ms) {
        (Some(a), None) => st.clock.advance(a),
        (None, Some(o)) => st.clock.set_offset(o),
        _ => return bad("give exactly one of advance_ms, offset_ms"),
    }
    clock_body(&st)
}

async fn counters(State(st): St) -> Response {
    let c = st.counters.lock();
    Json(json!({
        "total": c.total,
        "by_endpoint": c.by_endpoint,
        "by_subrequest": c.by_subrequest,
        "api_usage": c.api_usage,
        "daily_api_limit": c.daily_limit,
    }))
    .into_response()
}

async fn reset_counters(State(st): St) -> Response {
    let mut c = st.counters.lock();
    c.total = 0;
    c.by_endpoint.clear();
    c.by_subrequest.clear();
    c.api_usage = 0;
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct LimitsReq {
    daily_api_limit: Option<u64>,
    api_usage: Option<u64>,
}

async fn set_limits(State(st): St, body: axum::body::Bytes) -> Response {
    let req: LimitsReq = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let mut c = st.counters.lock();
    if let Some(l) = req.daily_api_limit {
        c.daily_limit = l;
    }
    if let Some(u) = req.api_usage {
        c.api_usage = u;
    }
    Json(json!({"api_usage": c.api_usage, "daily_api_limit": c.daily_limit})).into_response()
}
