//! A Pub/Sub API subscription ([`PubSubStream`]): one gRPC `Subscribe` call per topic with
//! flow control, schemas fetched once by id, and resumption after the last delivered
//! replay id. Blocking: each call drives a current-thread tokio runtime owned by the
//! stream, so the runtime lives on the caller's thread only.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pubsub_proto::pub_sub_client::PubSubClient;
use pubsub_proto::{FetchRequest, FetchResponse, ReplayPreset, SchemaRequest, TopicRequest};
use tokio::sync::mpsc;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};

use super::decode::EventSchema;
use super::{replay_bytes, replay_to_i64};
use crate::cdc::{CdcError, ChangeEvent, ReplayFrom};
use crate::client::Client;
use crate::error::Error;

/// The real service's endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://api.pubsub.salesforce.com:7443";

/// How long a subscription from stored replay ids waits for the server to refuse them.
const REPLAY_VERDICT: Duration = Duration::from_millis(300);

/// Where and how to reach the Pub/Sub API.
#[derive(Clone, Debug)]
pub struct PubSubOptions {
    /// `https://host:port` (or `http://` to a loopback address, or anywhere when the client
    /// allows insecure HTTP).
    pub endpoint: String,
    /// Extra trusted CA certificates (PEM) besides the public roots.
    pub ca_pem: Option<String>,
    /// Events asked for at a time per topic (`num_requested`); more are asked for when half
    /// of them were delivered.
    pub batch: i32,
}

impl Default for PubSubOptions {
    fn default() -> PubSubOptions {
        PubSubOptions { endpoint: DEFAULT_ENDPOINT.to_string(), ca_pem: None, batch: 100 }
    }
}

/// What a topic's reader task hands to `poll`: (topic index, generation, message).
type Delivery = (usize, u64, Result<FetchResponse, Status>);

struct Sub {
    topic: String,
    /// Where a new subscription starts when nothing was delivered yet.
    start: ReplayFrom,
    /// The last delivered replay id (or the stored one to resume after).
    last: Option<i64>,
    /// The request half of the live `Subscribe` call; None: (re)subscribe on the next poll.
    requests: Option<mpsc::Sender<FetchRequest>>,
    /// Events the server may still send before we ask for more.
    outstanding: i32,
    /// Bumped on each subscription, so a dead call's last words are ignored.
    generation: u64,
    /// GetTopic said it exists and we may subscribe.
    checked: bool,
    /// The server ended the call and it was reopened, with nothing received since.
    reopened: bool,
}

/// A subscribed Pub/Sub session. Not `Sync`; one per stream thread.
pub struct PubSubStream<'a> {
    client: &'a Client,
    opts: PubSubOptions,
    rt: tokio::runtime::Runtime,
    grpc: PubSubClient<Channel>,
    subs: Vec<Sub>,
    schemas: HashMap<String, Arc<EventSchema>>,
    inbox_tx: mpsc::Sender<Delivery>,
    inbox: mpsc::Receiver<Delivery>,
    /// Invalid-replay fallbacks not reported yet.
    pending: Vec<(String, i64)>,
    /// Events received while waiting for the verdict on stored replay ids.
    early: Vec<ChangeEvent>,
    /// `Subscribe` calls made (one per topic at first); useful for tests and status.
    pub subscribes: u64,
}

fn transport(what: &str, e: impl std::fmt::Display) -> CdcError {
    CdcError::Api(Error::Transport(format!("Pub/Sub API {what}: {e}")))
}

/// A gRPC status as the error the CometD path would give for the same failure.
fn status_error(topic: &str, s: &Status) -> CdcError {
    match s.code() {
        Code::Unauthenticated => Error::api(401, "INVALID_SESSION_ID", format!("Pub/Sub API: {}", s.message())).into(),
        Code::PermissionDenied | Code::NotFound => CdcError::Subscribe { channel: topic.to_string(), error: s.message().to_string() },
        _ => transport(&format!("{topic}: {:?}", s.code()), s.message()),
    }
}

fn replay_invalid(s: &Status) -> bool {
    s.code() == Code::InvalidArgument && s.message().to_ascii_lowercase().contains("replay")
}

impl Client {
    /// Subscribes to change event topics over the Pub/Sub API, each from its own starting
    /// point (the same channel names and replay positions as [`Client::cdc_subscribe_each`]).
    /// Fails on an unreachable endpoint, a refused session and refused topics.
    pub fn pubsub_subscribe(&self, subs: &[(String, ReplayFrom)], opts: PubSubOptions) -> Result<PubSubStream<'_>, Error> {
        if subs.is_empty() {
            return Err(Error::Config("pubsub_subscribe needs at least one topic".into()));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .enable_io()
            .build()
            .map_err(|e| Error::Config(format!("Pub/Sub runtime: {e}")))?;
        let channel = rt.block_on(connect(self, &opts))?;
        let (inbox_tx, inbox) = mpsc::channel(64);
        let mut s = PubSubStream {
            client: self,
            opts,
            rt,
            grpc: PubSubClient::new(channel),
            subs: subs
                .iter()
                .map(|(t, r)| Sub {
                    topic: t.clone(),
                    start: *r,
                    last: match r {
                        ReplayFrom::After(n) => Some(*n),
                        _ => None,
                    },
                    requests: None,
                    outstanding: 0,
                    generation: 0,
                    checked: false,
                    reopened: false,
                })
                .collect(),
            schemas: HashMap::new(),
            inbox_tx,
            inbox,
            pending: vec![],
            early: vec![],
            subscribes: 0,
        };
        s.ensure_subscribed().map_err(Error::from)?;
        if subs.iter().any(|(_, r)| matches!(r, ReplayFrom::After(_))) {
            // The server checks a stored replay id once the call is open: wait briefly for
            // its verdict, so an invalid one is known (and the topic subscribed again from the
            // newest event) before the caller's catch-up poll, as CometD's subscribe knows it.
            match s.poll(REPLAY_VERDICT) {
                Ok(events) => s.early = events,
                Err(CdcError::ReplayInvalid { channel, replay_id }) => s.pending.push((channel, replay_id)),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(s)
    }
}

/// Opens the channel: TLS with the public roots (and the extra CA), plain HTTP/2 only where
/// the client allows plain HTTP; connect bounded by the client's connect timeout.
async fn connect(client: &Client, opts: &PubSubOptions) -> Result<Channel, Error> {
    let url = url::Url::parse(&opts.endpoint).map_err(|e| Error::Config(format!("Pub/Sub endpoint {:?}: {e}", opts.endpoint)))?;
    let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']).to_string();
    let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    let o = client.options();
    let mut ep = Endpoint::from_shared(opts.endpoint.clone())
        .map_err(|e| Error::Config(format!("Pub/Sub endpoint {:?}: {e}", opts.endpoint)))?
        .connect_timeout(o.connect_timeout)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    match url.scheme() {
        "https" => {
            let mut tls = ClientTlsConfig::new().with_webpki_roots().domain_name(host);
            if let Some(ca) = &opts.ca_pem {
                tls = tls.ca_certificate(Certificate::from_pem(ca));
            }
            ep = ep.tls_config(tls).map_err(|e| Error::Config(format!("Pub/Sub TLS: {e}")))?;
        }
        "http" if loopback || o.allow_insecure_http => {}
        other => {
            return Err(Error::Config(format!(
                "Pub/Sub endpoint {:?}: scheme {other} not allowed (use https://, or http:// to a loopback address)",
                opts.endpoint
            )))
        }
    }
    match tokio::time::timeout(o.connect_timeout + Duration::from_secs(1), ep.connect()).await {
        Ok(Ok(ch)) => Ok(ch),
        Ok(Err(e)) => Err(Error::Transport(format!("Pub/Sub API {}: {e}", opts.endpoint))),
        Err(_) => Err(Error::Transport(format!("Pub/Sub API {}: connect timed out", opts.endpoint))),
    }
}

impl PubSubStream<'_> {
    /// The replay id of the last event delivered on `topic` (or the stored id it started
    /// after), as [`crate::cdc::CdcStream::last_replay_id`].
    pub fn last_replay_id(&self, topic: &str) -> Option<i64> {
        self.subs.iter().find(|s| s.topic == topic).and_then(|s| s.last)
    }

    pub fn channels(&self) -> Vec<String> {
        self.subs.iter().map(|s| s.topic.clone()).collect()
    }

    /// A request with the auth metadata the service requires on every call.
    fn request<T>(&self, body: T) -> Result<Request<T>, CdcError> {
        let mut r = Request::new(body);
        let value = |v: &str| MetadataValue::try_from(v).map_err(|_| CdcError::Protocol("session value not valid as gRPC metadata".into()));
        let org = self.client.org_id().ok_or_else(|| CdcError::Protocol("the login response named no org id (tenantid)".into()))?;
        let md = r.metadata_mut();
        md.insert("accesstoken", value(self.client.access_token().expose())?);
        md.insert("instanceurl", value(&self.client.instance_url())?);
        md.insert("tenantid", value(&org)?);
        Ok(r)
    }

    fn timeout(&self) -> Duration {
        self.client.options().request_timeout
    }

    /// The schema with this id, fetched once.
    fn schema(&mut self, id: &str) -> Result<Arc<EventSchema>, CdcError> {
        if let Some(s) = self.schemas.get(id) {
            return Ok(s.clone());
        }
        let req = self.request(SchemaRequest { schema_id: id.to_string() })?;
        let mut grpc = self.grpc.clone();
        let got = self
            .rt
            .block_on(async { tokio::time::timeout(self.timeout(), grpc.get_schema(req)).await })
            .map_err(|_| transport("GetSchema", "timed out"))?
            .map_err(|s| status_error(id, &s))?;
        let schema = Arc::new(EventSchema::parse(id, &got.into_inner().schema_json).map_err(CdcError::Protocol)?);
        self.schemas.insert(id.to_string(), schema.clone());
        Ok(schema)
    }

    /// Opens a `Subscribe` call for every topic without one: from after its last delivered
    /// event, else from its starting point.
    fn ensure_subscribed(&mut self) -> Result<(), CdcError> {
        for i in 0..self.subs.len() {
            if self.subs[i].requests.is_some() {
                continue;
            }
            if !self.subs[i].checked {
                let topic = self.subs[i].topic.clone();
                let req = self.request(TopicRequest { topic_name: topic.clone() })?;
                let mut grpc = self.grpc.clone();
                let info = self
                    .rt
                    .block_on(async { tokio::time::timeout(self.timeout(), grpc.get_topic(req)).await })
                    .map_err(|_| transport("GetTopic", "timed out"))?
                    .map_err(|s| status_error(&topic, &s))?
                    .into_inner();
                if !info.can_subscribe {
                    return Err(CdcError::Subscribe { channel: topic, error: "the session may not subscribe to this topic".into() });
                }
                self.schema(&info.schema_id)?;
                self.subs[i].checked = true;
            }
            self.open(i)?;
        }
        Ok(())
    }

    fn open(&mut self, i: usize) -> Result<(), CdcError> {
        let batch = self.opts.batch.max(1);
        let s = &mut self.subs[i];
        s.generation += 1;
        let (preset, replay_id) = match (s.last, s.start) {
            (Some(id), _) | (None, ReplayFrom::After(id)) => (ReplayPreset::Custom, replay_bytes(id)),
            (None, ReplayFrom::All) => (ReplayPreset::Earliest, vec![]),
            (None, ReplayFrom::New) => (ReplayPreset::Latest, vec![]),
        };
        let first = FetchRequest {
            topic_name: s.topic.clone(),
            replay_preset: preset as i32,
            replay_id,
            num_requested: batch,
            auth_refresh: String::new(),
        };
        let (tx, rx) = mpsc::channel(16);
        tx.try_send(first).map_err(|e| CdcError::Protocol(e.to_string()))?;
        let (topic, generation) = (s.topic.clone(), s.generation);
        let req = self.request(tokio_stream::wrappers::ReceiverStream::new(rx))?;
        let mut grpc = self.grpc.clone();
        let inbox = self.inbox_tx.clone();
        let timeout = self.timeout();
        let opened = self.rt.block_on(async move {
            let mut stream = match tokio::time::timeout(timeout, grpc.subscribe(req)).await {
                Err(_) => return Err(transport("Subscribe", "timed out")),
                Ok(Err(s)) => return Err(status_error(&topic, &s)),
                Ok(Ok(r)) => r.into_inner(),
            };
            // The reader runs whenever the stream's runtime runs (inside poll).
            tokio::spawn(async move {
                loop {
                    let got = match stream.message().await {
                        Ok(Some(r)) => Ok(r),
                        Ok(None) => Err(Status::unavailable("the server ended the subscription")),
                        Err(s) => Err(s),
                    };
                    let end = got.is_err();
                    if inbox.send((i, generation, got)).await.is_err() || end {
                        break;
                    }
                }
            });
            Ok(())
        });
        opened?;
        let s = &mut self.subs[i];
        s.requests = Some(tx);
        s.outstanding = batch;
        self.subscribes += 1;
        Ok(())
    }

    /// Waits up to `max_wait` for events on any topic; returns those delivered (possibly
    /// none). A broken subscription is reopened on the next call from its last event.
    pub fn poll(&mut self, max_wait: Duration) -> Result<Vec<ChangeEvent>, CdcError> {
        if let Some((channel, replay_id)) = self.pending.pop() {
            return Err(CdcError::ReplayInvalid { channel, replay_id });
        }
        if !self.early.is_empty() {
            return Ok(std::mem::take(&mut self.early));
        }
        self.ensure_subscribed()?;
        let mut got: Vec<Delivery> = vec![];
        let inbox = &mut self.inbox;
        self.rt.block_on(async {
            if let Ok(Some(d)) = tokio::time::timeout(max_wait, inbox.recv()).await {
                got.push(d);
                while let Ok(d) = inbox.try_recv() {
                    got.push(d);
                }
            }
        });
        let mut out = vec![];
        let mut failure = None;
        for (i, generation, msg) in got {
            if self.subs[i].generation != generation || self.subs[i].requests.is_none() {
                continue; // from a call already replaced
            }
            match msg {
                Ok(resp) => self.take(i, resp, &mut out)?,
                Err(status) => {
                    let s = &mut self.subs[i];
                    s.requests = None;
                    if replay_invalid(&status) {
                        let bad = s.last.unwrap_or(s.start.as_i64());
                        s.start = ReplayFrom::New;
                        s.last = None;
                        self.pending.push((s.topic.clone(), bad));
                    } else if status.code() == Code::Unauthenticated {
                        // The session expired: log in again, resubscribe on the next poll.
                        self.client.refresh_token()?;
                    } else if status.code() == Code::Unavailable && !s.reopened {
                        // The server ended the call (as Salesforce does for maintenance or a
                        // dropped stream): subscribe again from the last event on the next
                        // poll, as CometD handshakes again; a refused Subscribe fails there.
                        // Ended again before anything arrived: a failure.
                        s.reopened = true;
                    } else {
                        failure.get_or_insert(status_error(&s.topic.clone(), &status));
                    }
                }
            }
        }
        if let Some(e) = failure.filter(|_| out.is_empty()) {
            return Err(e);
        }
        if !self.pending.is_empty() {
            // Subscribed again (from the newest event) before the caller hears of it, so the
            // catch-up poll it runs starts after the new subscription: nothing falls between
            // the two (CometD's subscribe does the same before reporting).
            self.ensure_subscribed()?;
            if out.is_empty() {
                if let Some((channel, replay_id)) = self.pending.pop() {
                    return Err(CdcError::ReplayInvalid { channel, replay_id });
                }
            }
        }
        Ok(out)
    }

    /// Keeps a response's new events and asks for more when half the batch was delivered.
    fn take(&mut self, i: usize, resp: FetchResponse, out: &mut Vec<ChangeEvent>) -> Result<(), CdcError> {
        let topic = self.subs[i].topic.clone();
        self.subs[i].reopened = false;
        for ce in resp.events {
            let Some(ev) = ce.event else { continue };
            let replay = replay_to_i64(&ce.replay_id)
                .ok_or_else(|| CdcError::Protocol(format!("{topic}: replay id of {} bytes (at most 8 expected)", ce.replay_id.len())))?;
            if self.subs[i].last.is_some_and(|l| replay <= l) {
                continue; // already delivered (after a resubscribe)
            }
            let schema = self.schema(&ev.schema_id)?;
            let e = schema.decode(&topic, replay, &ev.payload).map_err(CdcError::Protocol)?;
            self.subs[i].last = Some(replay);
            out.push(e);
        }
        let batch = self.opts.batch.max(1);
        let s = &mut self.subs[i];
        s.outstanding = resp.pending_num_requested;
        if s.outstanding <= batch / 2 {
            let more = FetchRequest { topic_name: topic, num_requested: batch - s.outstanding, ..Default::default() };
            if let Some(tx) = &s.requests {
                if tx.try_send(more).is_ok() {
                    s.outstanding = batch;
                }
            }
        }
        Ok(())
    }

    /// Ends every subscription (the runtime and its calls are dropped with the stream).
    pub fn close(self) {}
}
