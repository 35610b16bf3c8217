//! Change Data Capture over the Pub/Sub API (gRPC, Avro-encoded events): the preferred
//! change stream, yielding the same [`crate::cdc::ChangeEvent`]s as the CometD client.
//!
//! Layout: `decode` turns an Avro payload into a `ChangeEvent` with the event's schema
//! (changed-field bitmaps to field names, compound fields as CometD nests them).

mod decode;

pub use decode::{bits_set, EventSchema};

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
