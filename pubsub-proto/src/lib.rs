//! Salesforce Pub/Sub API types (package `eventbus.v1`) generated from proto/pubsub_api.proto,
//! field for field the published contract. Feature `client` adds `pub_sub_client::PubSubClient`
//! (tonic channel), feature `server` adds `pub_sub_server::{PubSub, PubSubServer}`.

// Generated code: its style is prost's and tonic's, not ours.
#[allow(clippy::all, clippy::pedantic)]
pub mod eventbus {
    pub mod v1 {
        tonic::include_proto!("eventbus.v1");
    }
}

pub use eventbus::v1::*;

/// The gRPC service name clients call (`/eventbus.v1.PubSub/Subscribe`, ...).
pub const SERVICE: &str = "eventbus.v1.PubSub";

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    /// Field numbers are the wire contract: a FetchRequest must encode as the published
    /// proto's (topic_name=1, replay_preset=2, replay_id=3, num_requested=4).
    #[test]
    fn fetch_request_wire_numbers() {
        let req = FetchRequest {
            topic_name: "/data/X".into(),
            replay_preset: ReplayPreset::Custom as i32,
            replay_id: vec![7],
            num_requested: 5,
            auth_refresh: String::new(),
        };
        let bytes = req.encode_to_vec();
        assert_eq!(bytes, [&[0x0a, 7][..], b"/data/X", &[0x10, 2, 0x1a, 1, 7, 0x20, 5]].concat());
        let resp = FetchResponse { pending_num_requested: 3, latest_replay_id: vec![1], ..Default::default() };
        assert_eq!(resp.encode_to_vec(), vec![0x12, 1, 1, 0x20, 3]);
    }
}
