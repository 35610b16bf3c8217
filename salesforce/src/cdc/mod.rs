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
//!
//! Layout: `event` is the change event model and its parsing, `bayeux` the CometD wire
//! messages and replies, `stream` the subscribed session ([`CdcStream`]: handshake,
//! resubscribe, replay bookkeeping). This module holds [`CdcError`], which all three use.

mod bayeux;
mod event;
mod stream;

use crate::error::Error;

pub use bayeux::{
    classify_error, connect_msg, disconnect_msg, handshake_msg, parse_messages, subscribe_msg, Advice, ErrorKind, Message, MetaReply,
    Reconnect,
};
pub use event::{parse_event, ChangeEvent, ChangeEventHeader, ChangeType};
pub use stream::{channel_for, CdcStream, ReplayFrom, ALL_CHANGE_EVENTS};

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
