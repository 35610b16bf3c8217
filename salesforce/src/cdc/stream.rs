//! A subscribed CometD session ([`CdcStream`]): handshake, (re)subscription from the last
//! delivered replay IDs, long-polling `/meta/connect`, and the recovery rules described in
//! the [`crate::cdc`] docs.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

use super::bayeux::{
    classify_error, connect_msg, disconnect_msg, handshake_msg, parse_messages, replay_in_error, subscribe_msg, Advice, ErrorKind, Message,
    Reconnect,
};
use super::event::ChangeEvent;
use super::CdcError;
use crate::client::Client;
use crate::error::Error;

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
}
