//! The Bayeux 1.0 (CometD) wire protocol as the Streaming API speaks it: the `/meta/*`
//! messages we send, the server's advice, and parsing a response body into meta replies and
//! change events.

use serde_json::{json, Value};

use super::event::{parse_event, ChangeEvent};
use super::CdcError;

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
pub(super) fn replay_in_error(error: &str) -> Option<i64> {
    let rest = error.split("replayId").nth(1)?;
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::super::ChangeType;
    use super::*;
    use crate::error::Error;

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
