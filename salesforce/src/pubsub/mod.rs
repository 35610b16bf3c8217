//! Change Data Capture over the Pub/Sub API (gRPC, Avro-encoded events): the preferred
//! change stream, yielding the same [`crate::cdc::ChangeEvent`]s as the CometD client.
//!
//! ```no_run
//! use salesforce::cdc::{channel_for, ReplayFrom};
//! use salesforce::pubsub::PubSubOptions;
//! use std::time::Duration;
//! # fn get(client: &salesforce::Client) -> Result<(), salesforce::Error> {
//! let subs = [(channel_for("Account"), ReplayFrom::New)];
//! let mut stream = client.pubsub_subscribe(&subs, PubSubOptions::default())?;
//! let events = stream.poll(Duration::from_secs(5))?;
//! // persist stream.last_replay_id("/data/AccountChangeEvent") once they are applied
//! # Ok(()) }
//! ```
//!
//! Protocol: `GetTopic` (may we subscribe, which schema) → `GetSchema` (cached by id) →
//! one bidirectional `Subscribe` per topic: the first `FetchRequest` names the topic, the
//! replay preset (`LATEST`, `EARLIEST`, or `CUSTOM` with the stored replay id) and asks for
//! [`PubSubOptions::batch`] events; another asks for more once half of them arrived. Every
//! call carries the `accesstoken`, `instanceurl` and `tenantid` metadata.
//!
//! Recovery, as the CometD client's: a call the server ends (`UNAVAILABLE`) is reopened by
//! the next poll after the last delivered replay id (ended again before anything arrived, or
//! refused: the poll fails); `UNAUTHENTICATED` logs in again first; a replay id the server
//! no longer has resubscribes with `LATEST`, then reports
//! [`crate::cdc::CdcError::ReplayInvalid`] once (so a catch-up poll starts after it). Replay ids are opaque bytes; the emulator's and these positions are 8 bytes,
//! carried as the `i64` of [`crate::cdc::ChangeEvent::replay_id`] (big-endian).
//!
//! Layout: `decode` turns an Avro payload into a `ChangeEvent` with the event's schema
//! (changed-field bitmaps to field names, compound fields as CometD nests them); `stream`
//! is the subscribed session ([`PubSubStream`]) on a current-thread runtime of its own.

mod decode;
mod stream;

pub use decode::{bits_set, EventSchema};
pub use stream::{PubSubOptions, PubSubStream, DEFAULT_ENDPOINT};

/// A Pub/Sub replay id as the `i64` a [`crate::cdc::ChangeEvent`] carries: the id's bytes
/// read big-endian (the ids are 8 bytes). None for an id longer than 8 bytes.
pub fn replay_to_i64(id: &[u8]) -> Option<i64> {
    if id.len() > 8 {
        return None;
    }
    let mut b = [0u8; 8];
    b[8 - id.len()..].copy_from_slice(id);
    Some(i64::from_be_bytes(b))
}

/// The replay id bytes to resume after a stored position.
pub fn replay_bytes(id: i64) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

#[cfg(test)]
mod tests;
