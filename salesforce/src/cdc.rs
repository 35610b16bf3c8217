//! Change Data Capture over the Streaming API: a blocking CometD (Bayeux 1.0,
//! long-polling) client.
//!
//! ```no_run
//! use salesforce::cdc::{channel_for, CdcError, ReplayFrom};
//! use std::time::Duration;
//! # fn get(client: &salesforce::Client) -> Result<(), salesforce::Error> {
//! let mut stream = client.cdc_subscribe(&[channel_for("Account")], ReplayFrom::New)?;
//! loop {
//!     match stream.poll(Duration::from_secs(5)) {
//!         Ok(events) => {
//!             for e in events {
//!                 println!("{:?} {:?} {:?}", e.header.change_type, e.header.record_ids, e.fields);
//!             }
//!             // persist stream.last_replay_id("/data/AccountChangeEvent")
//!         }
//!         Err(CdcError::ReplayInvalid { .. }) => { /* events were lost: run a catch-up poll */ }
//!         Err(e) => return Err(e.into()),
//!     }
//! }
//! # }
//! ```
//!
//! Protocol: `/meta/handshake` → `/meta/subscribe` (with the `replay`
//! extension: `{"replay": {"/data/AccountChangeEvent": -1}}`) → repeated
//! `/meta/connect` long-polls, each delivering the events that arrived. The
//! server's advice (`interval`, `timeout`, `reconnect`) is honoured; a connect
//! is held at most `min(max_wait, advice.timeout)` (the client asks for that
//! hold with its own `advice.timeout`, so callers can stay responsive to
//! shutdown) and the HTTP request is bounded a little above it.
//!
//! Recovery: `403::Unknown client` (or `reconnect: handshake`) makes the next
//! poll handshake again and resubscribe every channel from the last delivered
//! replay ID. A replay ID the server no longer has (`400::The replayId … was
//! invalid`) makes the stream resubscribe with `-1` and report
//! [`CdcError::ReplayInvalid`] once, so the caller can catch up by polling.
//! Transport errors are returned as they are; calling `poll` again retries.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::client::Client;
use crate::error::Error;
use crate::types::Record;

/// Channel of every change event of the org (all selected objects).
pub const ALL_CHANGE_EVENTS: &str = "/data/ChangeEvents";

/// Extra time allowed for the HTTP request beyond the long-poll hold.
const HTTP_MARGIN: Duration = Duration::from_secs(15);

/// `Account` → `/data/AccountChangeEvent`; `Invoice__c` → `/data/Invoice__ChangeEvent`.
pub fn channel_for(sobject: &str) -> String {
    match sobject.strip_suffix("__c") {
        Some(base) => format!("/data/{base}__ChangeEvent"),
        None => format!("/data/{sobject}ChangeEvent"),
    }
}

/// Where a subscription starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayFrom {
    /// Only events published after subscribing (`-1`).
    New,
    /// Every retained event (up to 72 hours, `-2`).
    All,
    /// Events after this stored replay ID.
    After(i64),
}

impl ReplayFrom {
    pub fn as_i64(self) -> i64 {
        match self {
            ReplayFrom::New => -1,
            ReplayFrom::All => -2,
            ReplayFrom::After(n) => n,
        }
    }
}

/// `ChangeEventHeader.changeType`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChangeType {
    Create,
    Update,
    Delete,
    Undelete,
    GapCreate,
    GapUpdate,
    GapDelete,
    GapUndelete,
    /// More changes in one transaction than events; re-read the object.
    GapOverflow,
    Other(String),
}

impl ChangeType {
    pub fn parse(s: &str) -> ChangeType {
        match s {
            "CREATE" => ChangeType::Create,
            "UPDATE" => ChangeType::Update,
            "DELETE" => ChangeType::Delete,
            "UNDELETE" => ChangeType::Undelete,
            "GAP_CREATE" => ChangeType::GapCreate,
            "GAP_UPDATE" => ChangeType::GapUpdate,
            "GAP_DELETE" => ChangeType::GapDelete,
            "GAP_UNDELETE" => ChangeType::GapUndelete,
            "GAP_OVERFLOW" => ChangeType::GapOverflow,
            other => ChangeType::Other(other.to_string()),
        }
    }
    /// Gap events carry no field values: the records must be re-read.
    pub fn is_gap(&self) -> bool {
        matches!(
            self,
            ChangeType::GapCreate | ChangeType::GapUpdate | ChangeType::GapDelete | ChangeType::GapUndelete | ChangeType::GapOverflow
        )
    }
}

/// `data.payload.ChangeEventHeader`.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeEventHeader {
    pub entity_name: String,
    pub record_ids: Vec<String>,
    pub change_type: ChangeType,
    /// Changed fields of an UPDATE (`BillingAddress.City` for compound parts; includes `LastModifiedDate`).
    pub changed_fields: Vec<String>,
    /// Fields an UPDATE set to null.
    pub nulled_fields: Vec<String>,
    pub diff_fields: Vec<String>,
    /// Commit time, epoch milliseconds.
    pub commit_timestamp: i64,
    pub commit_number: i64,
    pub commit_user: String,
    /// Shared by the events of one transaction, ordered by `sequence_number`.
    pub transaction_key: String,
    pub sequence_number: i64,
    /// `com/salesforce/api/rest/62.0;client=X` for API changes, empty otherwise.
    pub change_origin: String,
}

/// One change event.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangeEvent {
    /// The channel it was delivered on.
    pub channel: String,
    pub replay_id: i64,
    pub schema: String,
    pub header: ChangeEventHeader,
    /// The payload's fields without the header: for CREATE/UNDELETE the non-null
    /// fields, for UPDATE the changed ones (nulled ones as `null`), compound
    /// fields (`Name`, `BillingAddress`) as nested objects.
    pub fields: Record,
}

/// Failures of [`CdcStream::poll`].
#[derive(thiserror::Error, Debug)]
pub enum CdcError {
    /// The stored replay ID is outside the retention window; the stream now
    /// continues with new events only. Run a catch-up poll.
    #[error("replay ID {replay_id} for {channel} is no longer available; resubscribed for new events only")]
    ReplayInvalid { channel: String, replay_id: i64 },
    /// The server refused a subscription (unknown channel, no permission, ...).
    #[error("subscription to {channel} failed: {error}")]
    Subscribe { channel: String, error: String },
    /// The server said not to reconnect, or the exchange made no sense.
    #[error("streaming protocol error: {0}")]
    Protocol(String),
    #[error(transparent)]
    Api(#[from] Error),
}

impl From<CdcError> for Error {
    fn from(e: CdcError) -> Error {
        match e {
            CdcError::Api(e) => e,
            CdcError::ReplayInvalid { .. } => Error::api(400, "REPLAY_INVALID", e.to_string()),
            CdcError::Subscribe { .. } => Error::api(403, "SUBSCRIPTION_FAILED", e.to_string()),
            CdcError::Protocol(m) => Error::Decode(m),
        }
    }
}

// ------------------------------------------------------------------ messages

/// `/meta/handshake`.
pub fn handshake_msg(id: u64) -> Value {
    json!({
        "channel": "/meta/handshake",
        "version": "1.0",
        "minimumVersion": "1.0",
        "supportedConnectionTypes": ["long-polling"],
        "advice": {"timeout": 60000, "interval": 0},
        "ext": {"replay": true},
        "id": id.to_string(),
    })
}

/// `/meta/subscribe` with the replay extension.
pub fn subscribe_msg(id: u64, client_id: &str, channel: &str, replay: i64) -> Value {
    json!({
        "channel": "/meta/subscribe",
        "clientId": client_id,
        "subscription": channel,
        "ext": {"replay": {channel: replay}},
        "id": id.to_string(),
    })
}

/// `/meta/connect`, asking the server to hold it at most `hold_ms`.
pub fn connect_msg(id: u64, client_id: &str, hold_ms: u64) -> Value {
    json!({
        "channel": "/meta/connect",
        "clientId": client_id,
        "connectionType": "long-polling",
        "advice": {"timeout": hold_ms},
        "id": id.to_string(),
    })
}

pub fn disconnect_msg(id: u64, client_id: &str) -> Value {
    json!({"channel": "/meta/disconnect", "clientId": client_id, "id": id.to_string()})
}

/// What the server advises after a meta reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconnect {
    Retry,
    Handshake,
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advice {
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub reconnect: Reconnect,
}

impl Default for Advice {
    fn default() -> Advice {
        Advice { interval_ms: 0, timeout_ms: 110_000, reconnect: Reconnect::Retry }
    }
}

impl Advice {
    /// Applies the fields present in a message's `advice`.
    pub fn update(&mut self, v: &Value) {
        if let Some(i) = v.get("interval").and_then(Value::as_u64) {
            self.interval_ms = i;
        }
        if let Some(t) = v.get("timeout").and_then(Value::as_u64) {
            self.timeout_ms = t;
        }
        match v.get("reconnect").and_then(Value::as_str) {
            Some("retry") => self.reconnect = Reconnect::Retry,
            Some("handshake") => self.reconnect = Reconnect::Handshake,
            Some("none") => self.reconnect = Reconnect::None,
            _ => {}
        }
    }
}

/// A reply to one of our `/meta/*` messages.
#[derive(Clone, Debug, PartialEq)]
pub struct MetaReply {
    pub channel: String,
    pub successful: bool,
    pub client_id: Option<String>,
    pub subscription: Option<String>,
    pub error: Option<String>,
    pub advice: Option<Value>,
}

/// How a Bayeux error string should be handled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    UnknownClient,
    /// `400::The replayId N you provided was invalid…`
    InvalidReplay,
    Auth,
    Other,
}

pub fn classify_error(error: &str) -> ErrorKind {
    let lower = error.to_ascii_lowercase();
    if lower.starts_with("403::unknown client") {
        ErrorKind::UnknownClient
    } else if lower.contains("replayid") && lower.contains("invalid") {
        ErrorKind::InvalidReplay
    } else if lower.starts_with("401::") {
        ErrorKind::Auth
    } else {
        ErrorKind::Other
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    Meta(MetaReply),
    Event(ChangeEvent),
    /// A data message that is not a change event (kept for completeness).
    Other(Value),
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// Parses one delivered `/data/...` message into a [`ChangeEvent`].
pub fn parse_event(v: &Value) -> Option<ChangeEvent> {
    let channel = v.get("channel")?.as_str()?.to_string();
    let data = v.get("data")?;
    let replay_id = data.get("event")?.get("replayId")?.as_i64()?;
    let mut fields = data.get("payload")?.as_object()?.clone();
    let h = fields.remove("ChangeEventHeader")?;
    let s = |k: &str| h.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
    let n = |k: &str| h.get(k).and_then(Value::as_i64).unwrap_or_default();
    let header = ChangeEventHeader {
        entity_name: s("entityName"),
        record_ids: strings(&h["recordIds"]),
        change_type: ChangeType::parse(&s("changeType")),
        changed_fields: strings(&h["changedFields"]),
        nulled_fields: strings(&h["nulledFields"]),
        diff_fields: strings(&h["diffFields"]),
        commit_timestamp: n("commitTimestamp"),
        commit_number: n("commitNumber"),
        commit_user: s("commitUser"),
        transaction_key: s("transactionKey"),
        sequence_number: n("sequenceNumber"),
        change_origin: s("changeOrigin"),
    };
    let schema = data.get("schema").and_then(Value::as_str).unwrap_or_default().to_string();
    Some(ChangeEvent { channel, replay_id, schema, header, fields })
}

/// Parses a Bayeux response body (a JSON array of messages).
pub fn parse_messages(body: &str) -> Result<Vec<Message>, CdcError> {
    let v: Value = serde_json::from_str(body).map_err(|e| CdcError::Protocol(format!("response is not JSON: {e}")))?;
    let items = match v {
        Value::Array(a) => a,
        obj @ Value::Object(_) => vec![obj],
        _ => return Err(CdcError::Protocol("response is not an array of Bayeux messages".into())),
    };
    Ok(items
        .into_iter()
        .map(|m| {
            let channel = m.get("channel").and_then(Value::as_str).unwrap_or_default().to_string();
            if channel.starts_with("/meta/") {
                Message::Meta(MetaReply {
                    successful: m.get("successful").and_then(Value::as_bool).unwrap_or(false),
                    client_id: m.get("clientId").and_then(Value::as_str).map(str::to_string),
                    subscription: m.get("subscription").and_then(Value::as_str).map(str::to_string),
                    error: m.get("error").and_then(Value::as_str).map(str::to_string),
                    advice: m.get("advice").cloned(),
                    channel,
                })
            } else {
                parse_event(&m).map(Message::Event).unwrap_or(Message::Other(m))
            }
        })
        .collect())
}

/// The replay ID in an invalid-replay error, if it names one.
fn replay_in_error(error: &str) -> Option<i64> {
    let rest = error.split("replayId").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

// ------------------------------------------------------------------ state

#[derive(Clone, Debug)]
struct Sub {
    channel: String,
    /// Replay ID to resume after: the last delivered, or where we started (-1/-2/N).
    replay: i64,
    /// Some once an event was delivered (or a stored ID was given).
    last: Option<i64>,
}

/// A subscribed CometD session. Not `Sync`; one per worker thread.
pub struct CdcStream<'a> {
    client: &'a Client,
    path: String,
    client_id: Option<String>,
    subs: Vec<Sub>,
    advice: Advice,
    next_id: u64,
    cookies: HashMap<String, String>,
    /// Invalid-replay fallbacks not reported yet.
    pending: Vec<(String, i64)>,
    /// Handshakes performed (1 after subscribing); useful for tests and status.
    pub handshakes: u64,
}

impl Client {
    /// Subscribes to change event channels (see [`channel_for`], [`ALL_CHANGE_EVENTS`]),
    /// all starting from `replay`. Fails on transport/auth errors and refused channels; an
    /// invalid stored replay ID is reported by the first [`CdcStream::poll`].
    pub fn cdc_subscribe(&self, channels: &[String], replay: ReplayFrom) -> Result<CdcStream<'_>, Error> {
        let subs: Vec<(String, ReplayFrom)> = channels.iter().map(|c| (c.clone(), replay)).collect();
        self.cdc_subscribe_each(&subs)
    }

    /// Like [`Client::cdc_subscribe`] with a starting point per channel.
    pub fn cdc_subscribe_each(&self, subs: &[(String, ReplayFrom)]) -> Result<CdcStream<'_>, Error> {
        if subs.is_empty() {
            return Err(Error::Config("cdc_subscribe needs at least one channel".into()));
        }
        let mut s = CdcStream {
            client: self,
            path: format!("/cometd/{}", self.api_version()),
            client_id: None,
            subs: subs
                .iter()
                .map(|(c, r)| Sub {
                    channel: c.clone(),
                    replay: r.as_i64(),
                    last: match r {
                        ReplayFrom::After(n) => Some(*n),
                        _ => None,
                    },
                })
                .collect(),
            advice: Advice::default(),
            next_id: 0,
            cookies: HashMap::new(),
            pending: vec![],
            handshakes: 0,
        };
        s.ensure_session().map_err(Error::from)?;
        Ok(s)
    }
}

impl CdcStream<'_> {
    /// The replay ID of the last event delivered on `channel` (or the stored ID it
    /// started after): persist it to resume with [`ReplayFrom::After`].
    pub fn last_replay_id(&self, channel: &str) -> Option<i64> {
        self.subs.iter().find(|s| s.channel == channel).and_then(|s| s.last)
    }

    pub fn channels(&self) -> Vec<String> {
        self.subs.iter().map(|s| s.channel.clone()).collect()
    }

    /// The server's latest advice.
    pub fn advice(&self) -> Advice {
        self.advice
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn cookie_header(&self) -> String {
        let mut v: Vec<String> = self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect();
        v.sort();
        v.join("; ")
    }

    /// Sends messages; Ok(parsed replies) for HTTP 200.
    fn exchange(&mut self, msgs: Vec<Value>, timeout: Duration) -> Result<Vec<Message>, CdcError> {
        let body = serde_json::to_vec(&msgs).map_err(|e| CdcError::Protocol(e.to_string()))?;
        let resp = self.client.stream_post(&self.path, &body, &self.cookie_header(), timeout)?;
        for c in &resp.set_cookies {
            if let Some((k, v)) = c.split(';').next().and_then(|kv| kv.split_once('=')) {
                self.cookies.insert(k.trim().to_string(), v.trim().to_string());
            }
        }
        if resp.status == 401 {
            return Err(Error::api(401, "INVALID_SESSION_ID", "401::Authentication invalid").into());
        }
        if resp.status != 200 {
            return Err(crate::error::parse_error_body(resp.status, &resp.body, None).into());
        }
        parse_messages(&resp.body)
    }

    fn request_timeout(&self) -> Duration {
        self.client.options().request_timeout
    }

    /// Handshakes and (re)subscribes every channel from its last replay ID when
    /// there is no live client.
    fn ensure_session(&mut self) -> Result<(), CdcError> {
        if self.client_id.is_some() {
            return Ok(());
        }
        let id = self.id();
        let replies = self.exchange(vec![handshake_msg(id)], self.request_timeout())?;
        let hs = replies
            .iter()
            .find_map(|m| match m {
                Message::Meta(r) if r.channel == "/meta/handshake" => Some(r.clone()),
                _ => None,
            })
            .ok_or_else(|| CdcError::Protocol("no /meta/handshake reply".into()))?;
        if let Some(a) = &hs.advice {
            self.advice.update(a);
        }
        if !hs.successful {
            let err = hs.error.unwrap_or_else(|| "handshake failed".into());
            return Err(match classify_error(&err) {
                ErrorKind::Auth => Error::api(401, "INVALID_SESSION_ID", err).into(),
                _ => CdcError::Protocol(err),
            });
        }
        let cid = hs.client_id.ok_or_else(|| CdcError::Protocol("handshake reply without clientId".into()))?;
        self.handshakes += 1;
        self.advice.reconnect = Reconnect::Retry;
        let mut msgs = vec![];
        for i in 0..self.subs.len() {
            let id = self.id();
            let s = &self.subs[i];
            msgs.push(subscribe_msg(id, &cid, &s.channel, s.last.unwrap_or(s.replay)));
        }
        let replies = self.exchange(msgs, self.request_timeout())?;
        self.client_id = Some(cid.clone());
        let mut retry = vec![];
        for m in &replies {
            let Message::Meta(r) = m else { continue };
            if r.channel != "/meta/subscribe" || r.successful {
                continue;
            }
            let channel = r.subscription.clone().unwrap_or_default();
            let err = r.error.clone().unwrap_or_default();
            match classify_error(&err) {
                ErrorKind::InvalidReplay => {
                    let Some(s) = self.subs.iter_mut().find(|s| s.channel == channel) else { continue };
                    let bad = replay_in_error(&err).unwrap_or(s.last.unwrap_or(s.replay));
                    self.pending.push((channel.clone(), bad));
                    s.replay = -1;
                    s.last = None;
                    retry.push(channel);
                }
                ErrorKind::UnknownClient => {
                    self.client_id = None;
                    return Err(CdcError::Protocol(format!("subscribe right after handshake: {err}")));
                }
                _ => return Err(CdcError::Subscribe { channel, error: err }),
            }
        }
        if !retry.is_empty() {
            let msgs: Vec<Value> = retry.iter().map(|c| subscribe_msg(self.id(), &cid, c, -1)).collect();
            for m in self.exchange(msgs, self.request_timeout())? {
                if let Message::Meta(r) = m {
                    if r.channel == "/meta/subscribe" && !r.successful {
                        return Err(CdcError::Subscribe {
                            channel: r.subscription.unwrap_or_default(),
                            error: r.error.unwrap_or_default(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Keeps the events of our subscriptions, advancing their replay IDs.
    fn take_events(&mut self, msgs: &mut Vec<Message>, out: &mut Vec<ChangeEvent>) {
        for m in msgs.drain(..) {
            if let Message::Event(e) = m {
                if let Some(s) = self.subs.iter_mut().find(|s| s.channel == e.channel) {
                    if s.last.is_some_and(|l| e.replay_id <= l) {
                        continue; // already delivered (after a resubscribe)
                    }
                    s.last = Some(e.replay_id);
                    out.push(e);
                }
            }
        }
    }

    /// One `/meta/connect`: waits up to `max_wait` (and the server's timeout)
    /// for events. Returns the events delivered (possibly none).
    pub fn poll(&mut self, max_wait: Duration) -> Result<Vec<ChangeEvent>, CdcError> {
        if let Some((channel, replay_id)) = self.pending.pop() {
            return Err(CdcError::ReplayInvalid { channel, replay_id });
        }
        if self.advice.reconnect == Reconnect::None {
            return Err(CdcError::Protocol("the server advised not to reconnect".into()));
        }
        if self.advice.reconnect == Reconnect::Handshake {
            self.client_id = None;
        }
        self.ensure_session()?;
        if let Some((channel, replay_id)) = self.pending.pop() {
            return Err(CdcError::ReplayInvalid { channel, replay_id });
        }
        let interval = Duration::from_millis(self.advice.interval_ms).min(max_wait);
        if !interval.is_zero() {
            std::thread::sleep(interval);
        }
        let hold = max_wait.saturating_sub(interval).min(Duration::from_millis(self.advice.timeout_ms));
        let cid = self.client_id.clone().unwrap_or_default();
        let id = self.id();
        let mut msgs = self.exchange(vec![connect_msg(id, &cid, hold.as_millis() as u64)], hold + HTTP_MARGIN)?;
        let reply = msgs.iter().find_map(|m| match m {
            Message::Meta(r) if r.channel == "/meta/connect" => Some(r.clone()),
            _ => None,
        });
        let mut out = vec![];
        self.take_events(&mut msgs, &mut out);
        let Some(reply) = reply else { return Err(CdcError::Protocol("no /meta/connect reply".into())) };
        if let Some(a) = &reply.advice {
            self.advice.update(a);
        }
        if !reply.successful {
            let err = reply.error.unwrap_or_default();
            match classify_error(&err) {
                ErrorKind::UnknownClient => {
                    // Handshake again now and resume from the last delivered replay IDs.
                    self.client_id = None;
                    self.advice.reconnect = Reconnect::Retry;
                    self.ensure_session()?;
                }
                ErrorKind::Auth => return Err(Error::api(401, "INVALID_SESSION_ID", err).into()),
                _ if self.advice.reconnect == Reconnect::Handshake => {
                    self.client_id = None;
                }
                _ => return Err(CdcError::Protocol(err)),
            }
        }
        Ok(out)
    }

    /// Sends `/meta/disconnect` (best effort) and ends the session.
    pub fn close(mut self) {
        if let Some(cid) = self.client_id.take() {
            let id = self.id();
            let _ = self.exchange(vec![disconnect_msg(id, &cid)], Duration::from_secs(5));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels() {
        assert_eq!(channel_for("Account"), "/data/AccountChangeEvent");
        assert_eq!(channel_for("Invoice__c"), "/data/Invoice__ChangeEvent");
        assert_eq!(ReplayFrom::New.as_i64(), -1);
        assert_eq!(ReplayFrom::All.as_i64(), -2);
        assert_eq!(ReplayFrom::After(42).as_i64(), 42);
    }

    #[test]
    fn messages() {
        let h = handshake_msg(1);
        assert_eq!(h["channel"], "/meta/handshake");
        assert_eq!(h["supportedConnectionTypes"], json!(["long-polling"]));
        assert_eq!(h["ext"]["replay"], true);
        let s = subscribe_msg(2, "abc", "/data/AccountChangeEvent", 17);
        assert_eq!(s["ext"]["replay"]["/data/AccountChangeEvent"], 17);
        assert_eq!(s["clientId"], "abc");
        assert_eq!(s["id"], "2");
        let c = connect_msg(3, "abc", 5000);
        assert_eq!(c["connectionType"], "long-polling");
        assert_eq!(c["advice"]["timeout"], 5000);
        assert_eq!(disconnect_msg(4, "abc")["channel"], "/meta/disconnect");
    }

    #[test]
    fn parse_connect_response_with_events() {
        let body = r#"[
          {"data":{"schema":"IeRuaY6cbI_HsV8Rv1Mc5g","payload":{"ChangeEventHeader":{
             "entityName":"Account","recordIds":["001xx000003DGb2AAG"],"changeType":"UPDATE",
             "changeOrigin":"com/salesforce/api/rest/62.0;client=sfsync","transactionKey":"0002343d-9d90-e395-ed20-cf416ba652ad",
             "sequenceNumber":2,"commitTimestamp":1716238172000,"commitNumber":10969661242,"commitUser":"005xx000001Sv6mAAC",
             "nulledFields":["Phone"],"diffFields":[],"changedFields":["Phone","LastModifiedDate","BillingAddress.City"]},
             "Phone":null,"LastModifiedDate":"2024-05-20T20:49:32.000Z","BillingAddress":{"City":"Paris"}},
             "event":{"replayId":7}},"channel":"/data/AccountChangeEvent"},
          {"clientId":"x1","channel":"/meta/connect","id":"5","successful":true,"advice":{"interval":0,"timeout":110000,"reconnect":"retry"}}
        ]"#;
        let msgs = parse_messages(body).unwrap();
        assert_eq!(msgs.len(), 2);
        let Message::Event(e) = &msgs[0] else { panic!("{msgs:?}") };
        assert_eq!(e.replay_id, 7);
        assert_eq!(e.channel, "/data/AccountChangeEvent");
        assert_eq!(e.schema, "IeRuaY6cbI_HsV8Rv1Mc5g");
        assert_eq!(e.header.change_type, ChangeType::Update);
        assert_eq!(e.header.record_ids, ["001xx000003DGb2AAG"]);
        assert_eq!(e.header.nulled_fields, ["Phone"]);
        assert_eq!(e.header.sequence_number, 2);
        assert_eq!(e.header.commit_timestamp, 1716238172000);
        assert_eq!(e.header.change_origin, "com/salesforce/api/rest/62.0;client=sfsync");
        assert_eq!(e.fields["Phone"], Value::Null);
        assert_eq!(e.fields["BillingAddress"]["City"], "Paris");
        assert!(!e.fields.contains_key("ChangeEventHeader"));
        let Message::Meta(r) = &msgs[1] else { panic!() };
        assert!(r.successful);
        let mut a = Advice { interval_ms: 5, timeout_ms: 1, reconnect: Reconnect::None };
        a.update(r.advice.as_ref().unwrap());
        assert_eq!(a, Advice::default());
    }

    #[test]
    fn errors_are_classified() {
        assert_eq!(classify_error("403::Unknown client"), ErrorKind::UnknownClient);
        let invalid = "400::The replayId 12 you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.";
        assert_eq!(classify_error(invalid), ErrorKind::InvalidReplay);
        assert_eq!(replay_in_error(invalid), Some(12));
        assert_eq!(classify_error("401::Authentication invalid"), ErrorKind::Auth);
        assert_eq!(classify_error("403::Unknown channel"), ErrorKind::Other);
        assert!(ChangeType::parse("GAP_OVERFLOW").is_gap());
        assert!(!ChangeType::parse("CREATE").is_gap());
        assert_eq!(ChangeType::parse("WHAT"), ChangeType::Other("WHAT".into()));
        assert!(parse_messages("{").is_err());
        assert!(matches!(parse_messages(r#"[{"channel":"/data/X","data":{}}]"#).unwrap()[0], Message::Other(_)));
        let e: Error = CdcError::ReplayInvalid { channel: "/data/X".into(), replay_id: 3 }.into();
        assert_eq!(e.code(), "REPLAY_INVALID");
    }
}
