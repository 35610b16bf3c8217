//! One `Subscribe` stream: the first FetchRequest names the topic and where to start; every
//! FetchRequest adds `num_requested` to the events the server may send (flow control), and
//! with nothing to send the server answers a keepalive with the latest replay ID.
//!
//! Replay IDs are opaque bytes to clients; here they are the CDC hub's replay ID (the one CometD
//! shows) as 8 bytes big-endian.

use super::{status, Service, Topic};
use crate::cdc::Hub;
use pubsub_proto::{ConsumerEvent, FetchRequest, FetchResponse, ProducerEvent, ReplayPreset};
use std::time::Duration;
use tokio::sync::mpsc::Sender;
use tokio::time::Instant;
use tonic::{Code, Status, Streaming};

/// Events per FetchResponse at most; more follow in the next response.
pub const MAX_BATCH: usize = 100;

/// A UUID-shaped event ID, unique per event (as Salesforce's are).
fn event_uuid(obj: usize, replay: i64) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", obj, replay)
}

pub fn encode_replay(id: i64) -> Vec<u8> {
    id.to_be_bytes().to_vec()
}

pub fn decode_replay(bytes: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(bytes.try_into().ok()?))
}

/// Runs the stream until the client goes away; an Err is the status that ends it.
pub async fn run(
    svc: &Service,
    mut inbound: Streaming<FetchRequest>,
    tx: &Sender<Result<FetchResponse, Status>>,
    keepalive: Duration,
) -> Result<(), Status> {
    let st = &svc.st;
    let Some(first) = inbound.message().await? else { return Ok(()) };
    let topic = svc.topic(&first.topic_name)?;
    let mut after = start(svc, &first)?;
    let mut pending = first.num_requested.max(0) as i64;
    let mut last_sent = Instant::now();
    let drops = st.cdc.inner.lock().stream_drops;
    loop {
        // Registered before looking, so a commit (or a drop) between the look and the wait
        // still wakes us.
        let notified = st.cdc.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if st.cdc.inner.lock().stream_drops != drops {
            let msg = "The subscription was closed by the server: subscribe again from the last replay ID.";
            return Err(status::error(st, Code::Unavailable, status::UNAVAILABLE, msg));
        }
        if pending > 0 {
            let (events, next) = take(svc, topic, after, pending.min(MAX_BATCH as i64) as usize)?;
            after = next;
            if !events.is_empty() {
                pending -= events.len() as i64;
                if tx.send(Ok(response(svc, events, after, pending))).await.is_err() {
                    return Ok(());
                }
                last_sent = Instant::now();
                continue;
            }
        }
        tokio::select! {
            m = inbound.message() => match m? {
                Some(req) => {
                    if !req.topic_name.is_empty() && req.topic_name != first.topic_name {
                        let msg = format!("A subscription's topic can't change: this stream subscribed to {}.", first.topic_name);
                        return Err(status::error(st, Code::InvalidArgument, status::BAD_REQUEST, &msg));
                    }
                    pending = (pending + req.num_requested.max(0) as i64).min(i32::MAX as i64);
                }
                None => return Ok(()),
            },
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(last_sent + keepalive) => {
                if tx.send(Ok(response(svc, vec![], after, pending))).await.is_err() {
                    return Ok(());
                }
                last_sent = Instant::now();
            }
            _ = tx.closed() => return Ok(()),
        }
    }
}

/// The replay ID to deliver events after.
/// A batch of events (none: a keepalive), the position after it and what is still owed.
fn response(svc: &Service, events: Vec<ConsumerEvent>, after: i64, pending: i64) -> FetchResponse {
    FetchResponse { events, latest_replay_id: encode_replay(after), rpc_id: status::rpc_id(&svc.st), pending_num_requested: pending as i32 }
}

fn start(svc: &Service, first: &FetchRequest) -> Result<i64, Status> {
    let st = &svc.st;
    let mut inner = st.cdc.inner.lock();
    Hub::trim(&mut inner, st.clock.now_ms());
    match ReplayPreset::try_from(first.replay_preset) {
        Ok(ReplayPreset::Latest) => Ok(inner.last_replay),
        Ok(ReplayPreset::Earliest) => Ok(inner.trimmed_upto),
        Ok(ReplayPreset::Custom) => {
            let Some(id) = decode_replay(&first.replay_id) else {
                let msg = "The Replay ID is not valid: pass a replay_id received from this API.";
                return Err(status::error(st, Code::InvalidArgument, status::REPLAY_CORRUPTED, msg));
            };
            Hub::replay_start(&inner, id).ok_or_else(|| {
                let msg = "The Replay ID validation failed: it is older than the retention window (72 hours) or not yet issued; resubscribe with EARLIEST or LATEST.";
                status::error(st, Code::InvalidArgument, status::REPLAY_INVALID, msg)
            })
        }
        Err(_) => {
            Err(status::error(st, Code::InvalidArgument, status::BAD_REQUEST, "Unknown replay_preset: use LATEST, EARLIEST or CUSTOM."))
        }
    }
}

/// Up to `max` events of the topic after `after`, encoded, and the position reached (past
/// other topics' events too, so a keepalive's replay ID never lags behind them).
fn take(svc: &Service, topic: Topic, after: i64, max: usize) -> Result<(Vec<ConsumerEvent>, i64), Status> {
    let st = &svc.st;
    let mut inner = st.cdc.inner.lock();
    Hub::trim(&mut inner, st.clock.now_ms());
    if inner.held {
        return Ok((vec![], after));
    }
    let begin = inner.events.partition_point(|e| e.replay_id <= after);
    let (mut out, mut reached) = (vec![], after);
    for ev in inner.events.iter().skip(begin) {
        if out.len() >= max {
            break;
        }
        reached = ev.replay_id;
        if topic != Topic::All && topic != Topic::Object(ev.obj) {
            continue;
        }
        let schema = svc.for_event(ev)?;
        let payload = schema.encode(ev).map_err(|e| status::error(st, Code::Internal, status::BAD_REQUEST, &e))?;
        out.push(ConsumerEvent {
            event: Some(ProducerEvent { id: event_uuid(ev.obj, ev.replay_id), schema_id: schema.id.clone(), payload, headers: vec![] }),
            replay_id: encode_replay(ev.replay_id),
        });
    }
    Ok((out, reached))
}
