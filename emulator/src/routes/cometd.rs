//! Streaming API: Bayeux 1.0 over long-polling HTTP at `/cometd/{version}`, serving Change Data
//! Capture channels (`/data/ChangeEvents`, `/data/<Object>ChangeEvent`) with replay, and the
//! CDC admin calls under `/__emulator/cdc`. Streaming requests are not counted as REST API calls
//! (Salesforce meters them separately); `GET /__emulator/cdc` shows how many were made.

use super::{served_versions, St};
use crate::cdc::{ChangeType, CometClient, Hub, Poll, Sub, CLIENT_IDLE_MS, MAX_CLIENTS};
use crate::errors::ApiError;
use crate::faults::{status_body, FaultKind};
use crate::ids;
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value as Json_};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/cometd/{version}", post(cometd))
        .route("/cometd/{version}/", post(cometd))
        // The cometd JS client appends the message type (`/handshake`, `/connect`, ...) by default.
        .route("/cometd/{version}/{*rest}", post(cometd))
        .route("/__emulator/cdc", get(info).post(enable))
        .route("/__emulator/cdc/gap", post(gap))
        .route("/__emulator/cdc/overflow", post(overflow))
        .route("/__emulator/cdc/drop", post(drop_clients))
        .route("/__emulator/cdc/hold", post(hold))
}

pub const INVALID_REPLAY: &str =
    "you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.";

fn bearer(headers: &HeaderMap) -> Option<String> {
    let h = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = h.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("Bearer") || scheme.eq_ignore_ascii_case("OAuth")).then(|| token.trim().to_string())
}

/// A reply to `m`: its channel, id and clientId, plus `extra`.
fn reply(m: &Map<String, Json_>, extra: Json_) -> Json_ {
    let mut r = Map::new();
    for k in ["channel", "id", "clientId"] {
        if let Some(v) = m.get(k) {
            r.insert(k.into(), v.clone());
        }
    }
    if let Json_::Object(e) = extra {
        r.extend(e);
    }
    Json_::Object(r)
}

fn advice(st: &AppState) -> Json_ {
    json!({"interval": 0, "timeout": st.cfg.cometd_timeout_ms, "reconnect": "retry"})
}

fn unknown_client(m: &Map<String, Json_>) -> Json_ {
    reply(m, json!({"successful": false, "error": "403::Unknown client", "advice": {"reconnect": "handshake", "interval": 0}}))
}

fn bayeux_response(status: StatusCode, parts: Vec<String>, cookie: Option<String>) -> Response {
    let body = format!("[{}]", parts.join(","));
    let mut resp = (status, [(header::CONTENT_TYPE, "application/json;charset=UTF-8")], body).into_response();
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp
}

fn new_client_id(st: &AppState) -> String {
    const CHARS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..27).map(|_| CHARS[(st.rand_u64() % 36) as usize] as char).collect()
}

/// Clients idle longer than the long-poll timeout plus 40 s are forgotten.
fn sweep(st: &AppState, inner: &mut crate::cdc::Inner, now: i64) {
    let limit = st.cfg.cometd_timeout_ms as i64 + CLIENT_IDLE_MS;
    inner.clients.retain(|_, c| c.connecting > 0 || now - c.last_active_ms <= limit);
}

/// `/data/ChangeEvents` → Some(None); `/data/AccountChangeEvent` → Some(Some(obj)).
fn resolve_channel(hub: &Hub, channel: &str) -> Option<Option<usize>> {
    let name = channel.strip_prefix("/data/")?;
    if name == "ChangeEvents" {
        return Some(None);
    }
    hub.channels.iter().position(|c| c == name).map(Some)
}

fn replay_value(m: &Map<String, Json_>, channel: &str) -> Option<i64> {
    let v = m.get("ext")?.get("replay")?.get(channel)?;
    match v {
        Json_::Number(n) => n.as_i64(),
        Json_::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn handshake(st: &AppState, m: &Map<String, Json_>) -> Json_ {
    if let Some(types) = m.get("supportedConnectionTypes").and_then(Json_::as_array) {
        if !types.iter().any(|t| t.as_str() == Some("long-polling")) {
            return reply(
                m,
                json!({"successful": false, "error": "400::Unsupported connection types", "supportedConnectionTypes": ["long-polling"], "advice": {"reconnect": "none"}}),
            );
        }
    }
    let now = st.clock.now_ms();
    let mut inner = st.cdc.inner.lock();
    sweep(st, &mut inner, now);
    if inner.clients.len() >= MAX_CLIENTS {
        return reply(
            m,
            json!({"successful": false, "error": "403::Organization concurrent user limit exceeded", "advice": {"reconnect": "none"}}),
        );
    }
    let cid = new_client_id(st);
    inner.clients.insert(cid.clone(), CometClient { subs: vec![], last_active_ms: now, connect_gen: 0, connecting: 0 });
    reply(
        m,
        json!({
            "clientId": cid,
            "version": "1.0",
            "minimumVersion": "1.0",
            "supportedConnectionTypes": ["long-polling"],
            "successful": true,
            "advice": advice(st),
            "ext": {"replay": true, "payload.format": true},
        }),
    )
}

fn subscriptions(m: &Map<String, Json_>) -> Vec<String> {
    match m.get("subscription") {
        Some(Json_::String(s)) => vec![s.clone()],
        Some(Json_::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => vec![],
    }
}

fn subscribe(st: &AppState, m: &Map<String, Json_>) -> Vec<Json_> {
    let cid = m.get("clientId").and_then(Json_::as_str).unwrap_or("");
    let now = st.clock.now_ms();
    let hub = &st.cdc;
    let mut inner = hub.inner.lock();
    Hub::trim(&mut inner, now);
    if !inner.clients.contains_key(cid) {
        return vec![unknown_client(m)];
    }
    let subs = subscriptions(m);
    if subs.is_empty() {
        return vec![reply(m, json!({"successful": false, "error": "403::Subscription missing", "subscription": null}))];
    }
    let mut out = vec![];
    for channel in subs {
        let Some(obj) = resolve_channel(hub, &channel) else {
            out.push(reply(m, json!({"subscription": channel, "successful": false, "error": "403::Unknown channel"})));
            continue;
        };
        let replay = replay_value(m, &channel).unwrap_or(-1);
        let after = match Hub::replay_start(&inner, replay) {
            Some(a) => a,
            None => {
                out.push(reply(
                    m,
                    json!({"subscription": channel, "successful": false, "error": format!("400::The replayId {replay} {INVALID_REPLAY}")}),
                ));
                continue;
            }
        };
        let c = inner.clients.get_mut(cid).expect("checked above");
        c.last_active_ms = now;
        c.subs.retain(|s| s.channel != channel);
        c.subs.push(Sub { channel: channel.clone(), obj, after });
        out.push(reply(m, json!({"subscription": channel, "successful": true})));
    }
    out
}

fn unsubscribe(st: &AppState, m: &Map<String, Json_>) -> Vec<Json_> {
    let cid = m.get("clientId").and_then(Json_::as_str).unwrap_or("");
    let mut inner = st.cdc.inner.lock();
    let Some(c) = inner.clients.get_mut(cid) else { return vec![unknown_client(m)] };
    subscriptions(m)
        .into_iter()
        .map(|channel| {
            c.subs.retain(|s| s.channel != channel);
            reply(m, json!({"subscription": channel, "successful": true}))
        })
        .collect()
}

fn disconnect(st: &AppState, m: &Map<String, Json_>) -> Json_ {
    let cid = m.get("clientId").and_then(Json_::as_str).unwrap_or("");
    let known = st.cdc.inner.lock().clients.remove(cid).is_some();
    st.cdc.notify.notify_waiters();
    if known {
        reply(m, json!({"successful": true}))
    } else {
        unknown_client(m)
    }
}

/// Holds the connect until events are due, the client is dropped or superseded, or the timeout.
async fn connect(st: &AppState, m: &Map<String, Json_>) -> Vec<String> {
    let cid = m.get("clientId").and_then(Json_::as_str).unwrap_or("").to_string();
    let hub = &st.cdc;
    let server_timeout = st.cfg.cometd_timeout_ms;
    // The client may ask for a shorter hold (the first connect after a handshake uses 0).
    let hold = m.get("advice").and_then(|a| a.get("timeout")).and_then(Json_::as_u64).map_or(server_timeout, |t| t.min(server_timeout));
    let gen = {
        let now = st.clock.now_ms();
        let mut inner = hub.inner.lock();
        sweep(st, &mut inner, now);
        let Some(c) = inner.clients.get_mut(&cid) else { return vec![unknown_client(m).to_string()] };
        c.connect_gen += 1;
        c.connecting += 1;
        c.last_active_ms = now;
        c.connect_gen
    };
    // A previous connect of this client, still held, returns now.
    hub.notify.notify_waiters();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(hold);
    let mut out = loop {
        let notified = hub.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match hub.poll(&st.schema, &cid, gen, st.clock.now_ms()) {
            Poll::UnknownClient => return vec![unknown_client(m).to_string()],
            Poll::Superseded => break vec![],
            Poll::Events(ev) if !ev.is_empty() => break ev,
            Poll::Events(_) => {}
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => {
                // One last look, then reply empty.
                match hub.poll(&st.schema, &cid, gen, st.clock.now_ms()) {
                    Poll::UnknownClient => return vec![unknown_client(m).to_string()],
                    Poll::Events(ev) => break ev,
                    Poll::Superseded => break vec![],
                }
            }
        }
    };
    {
        let mut inner = hub.inner.lock();
        if let Some(c) = inner.clients.get_mut(&cid) {
            c.connecting = c.connecting.saturating_sub(1);
            c.last_active_ms = st.clock.now_ms();
        }
    }
    out.push(reply(m, json!({"successful": true, "advice": advice(st)})).to_string());
    out
}

async fn cometd(State(st): St, Path(p): Path<HashMap<String, String>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    st.cdc.inner.lock().requests += 1;
    let version = p.get("version").map(String::as_str).unwrap_or("");
    if !served_versions(&st.cfg.api_version).iter().any(|v| v == version) {
        return ApiError::not_found().into_response();
    }
    let path = uri.path().to_string();
    let fired = st.faults.lock().fire("POST", &path, || st.rand_f64());
    for f in &fired {
        match f.kind {
            FaultKind::Latency => tokio::time::sleep(Duration::from_millis(f.latency_ms.unwrap_or(0))).await,
            FaultKind::CometdDrop => {
                st.cdc.drop_clients();
            }
            FaultKind::Status => {
                let status = f.status.unwrap_or(503);
                let (code, msg) = status_body(status);
                return ApiError::new(StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE), code, msg).into_response();
            }
            FaultKind::Timeout => {
                tokio::time::sleep(Duration::from_millis(f.latency_ms.unwrap_or(300_000))).await;
                return ApiError::new(StatusCode::GATEWAY_TIMEOUT, "SERVER_UNAVAILABLE", "Request timed out").into_response();
            }
            FaultKind::ExpiredSession => {
                if let Some(t) = bearer(&headers) {
                    st.tokens.lock().remove(&t);
                }
            }
            FaultKind::Lock => {}
            FaultKind::Drop => return super::dropped(),
        }
    }
    let msgs: Vec<Map<String, Json_>> = match serde_json::from_slice::<Json_>(&body) {
        Ok(Json_::Array(a)) => a.into_iter().filter_map(|v| if let Json_::Object(o) = v { Some(o) } else { None }).collect(),
        Ok(Json_::Object(o)) => vec![o],
        _ => {
            let r = json!({"successful": false, "error": "400::Bad request: the body must be a JSON array of Bayeux messages"});
            return bayeux_response(StatusCode::BAD_REQUEST, vec![r.to_string()], None);
        }
    };
    if !bearer(&headers).is_some_and(|t| st.session_valid(&t)) {
        let parts = msgs
            .iter()
            .map(|m| {
                reply(m, json!({"successful": false, "error": "401::Authentication invalid", "advice": {"reconnect": "none"}})).to_string()
            })
            .collect();
        return bayeux_response(StatusCode::UNAUTHORIZED, parts, None);
    }
    let mut parts: Vec<String> = vec![];
    let mut connect_msg = None;
    let mut cookie = None;
    for m in &msgs {
        match m.get("channel").and_then(Json_::as_str).unwrap_or("") {
            "/meta/handshake" => {
                parts.push(handshake(&st, m).to_string());
                cookie = Some(format!("BAYEUX_BROWSER={}; Path=/; HttpOnly", new_client_id(&st)));
            }
            "/meta/connect" => connect_msg = Some(m),
            "/meta/subscribe" => parts.extend(subscribe(&st, m).into_iter().map(|r| r.to_string())),
            "/meta/unsubscribe" => parts.extend(unsubscribe(&st, m).into_iter().map(|r| r.to_string())),
            "/meta/disconnect" => parts.push(disconnect(&st, m).to_string()),
            "" => parts.push(reply(m, json!({"successful": false, "error": "400::Message missing channel"})).to_string()),
            _ => parts.push(reply(m, json!({"successful": false, "error": "403::Publish denied"})).to_string()),
        }
    }
    if let Some(m) = connect_msg {
        parts.extend(connect(&st, m).await);
    }
    bayeux_response(StatusCode::OK, parts, cookie)
}

// ------------------------------------------------------------------ admin

fn bad(msg: impl Into<String>) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": msg.into()}))).into_response()
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_json::from_slice(if body.is_empty() { b"{}" } else { body }).map_err(|e| Box::new(bad(format!("bad request body: {e}"))))
}

async fn info(State(st): St) -> Response {
    let mut inner = st.cdc.inner.lock();
    // Events past retention are gone whether or not a client has asked since.
    Hub::trim(&mut inner, st.clock.now_ms());
    let names = |pred: &dyn Fn(usize) -> bool| -> Vec<String> {
        st.schema.objects.iter().enumerate().filter(|(i, _)| pred(*i)).map(|(_, o)| o.name.clone()).collect()
    };
    Json(json!({
        "enabled": names(&|i| !inner.disabled.contains(&i)),
        "disabled": names(&|i| inner.disabled.contains(&i)),
        "retained_events": inner.events.len(),
        "first_replay_id": inner.events.front().map(|e| e.replay_id),
        "last_replay_id": inner.last_replay,
        "clients": inner.clients.len(),
        "cometd_requests": inner.requests,
        "held": inner.held,
        "cometd_timeout_ms": st.cfg.cometd_timeout_ms,
        "retention_hours": crate::cdc::RETENTION_MS / 3_600_000,
        "max_events": crate::cdc::MAX_EVENTS,
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnableReq {
    object: String,
    enabled: bool,
}

async fn enable(State(st): St, body: Bytes) -> Response {
    let req: EnableReq = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let Some(obj) = st.schema.object(&req.object) else { return bad(format!("unknown object {}", req.object)) };
    {
        let mut inner = st.cdc.inner.lock();
        if req.enabled {
            inner.disabled.remove(&obj);
        } else {
            inner.disabled.insert(obj);
        }
    }
    Json(json!({"object": st.schema.objects[obj].name, "enabled": req.enabled})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GapReq {
    object: String,
    #[serde(default)]
    ids: Vec<String>,
    /// CREATE, UPDATE (default), DELETE or UNDELETE (with or without the GAP_ prefix).
    change_type: Option<String>,
}

async fn gap(State(st): St, body: Bytes) -> Response {
    let req: GapReq = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let Some(obj) = st.schema.object(&req.object) else { return bad(format!("unknown object {}", req.object)) };
    let kind = match req.change_type.as_deref().map(ChangeType::parse) {
        None => ChangeType::Update,
        Some(Some(k)) => k,
        Some(None) => return bad("change_type must be CREATE, UPDATE, DELETE or UNDELETE"),
    };
    if req.ids.is_empty() {
        return bad("ids must list at least one record ID");
    }
    let mut norm = vec![];
    for raw in &req.ids {
        match ids::normalize(raw) {
            Some(id) if id[..3] == st.schema.objects[obj].key_prefix => norm.push(id),
            _ => return bad(format!("{raw} is not a {} ID", st.schema.objects[obj].name)),
        }
    }
    let rids = st.cdc.gap(obj, &norm, Some(kind), &st.clock, &st.user_id);
    Json(json!({"replay_ids": rids})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OverflowReq {
    object: String,
}

async fn overflow(State(st): St, body: Bytes) -> Response {
    let req: OverflowReq = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let Some(obj) = st.schema.object(&req.object) else { return bad(format!("unknown object {}", req.object)) };
    let rids = st.cdc.gap(obj, &[], None, &st.clock, &st.user_id);
    Json(json!({"replay_ids": rids})).into_response()
}

async fn drop_clients(State(st): St) -> Response {
    Json(json!({"dropped": st.cdc.drop_clients()})).into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldReq {
    held: bool,
}

/// Holds every subscriber's delivery (events still published and kept), or releases it.
async fn hold(State(st): St, body: Bytes) -> Response {
    let req: HoldReq = match parse(&body) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    st.cdc.inner.lock().held = req.held;
    // Held connects look again: released, they take what waited.
    st.cdc.notify.notify_waiters();
    Json(json!({"held": req.held})).into_response()
}
