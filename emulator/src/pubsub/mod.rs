//! The Pub/Sub API (gRPC service `eventbus.v1.PubSub`) on its own listener, as Salesforce serves
//! it from its own host: `GetTopic`, `GetSchema` and `Subscribe` over the change events of the
//! CDC hub (cdc.rs), the very events CometD delivers, in the same order. Publishing is refused:
//! change event topics are read-only.

pub mod avro;
pub mod status;
pub mod subscribe;

use crate::schema::Schema;
use crate::state::AppState;
use avro::EventSchema;
use parking_lot::Mutex;
use pubsub_proto::pub_sub_server::{PubSub, PubSubServer};
use pubsub_proto::{
    FetchRequest, FetchResponse, ManagedFetchRequest, ManagedFetchResponse, PublishRequest, PublishResponse, SchemaInfo, SchemaRequest,
    TopicInfo, TopicRequest,
};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};

/// What a topic name selects: one object's change events or all of them.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Topic {
    All,
    Object(usize),
}

/// A built schema and the address of the schema version it was built from.
type Built = (usize, Arc<EventSchema>);

#[derive(Clone)]
pub struct Service {
    st: Arc<AppState>,
    /// Built schemas by schema ID, with the schema version they were built from (a retype keeps
    /// the ID but not the types, so an entry counts only for its version).
    schemas: Arc<Mutex<HashMap<String, Built>>>,
    keepalive: Duration,
}

impl Service {
    pub fn new(st: Arc<AppState>) -> Service {
        let keepalive = Duration::from_millis(st.cfg.pubsub_keepalive_ms.max(1));
        Service { st, schemas: Default::default(), keepalive }
    }

    /// `/data/ChangeEvents` or `/data/<Object>ChangeEvent` (`/data/<Name>__ChangeEvent` for a
    /// custom object).
    pub fn topic(&self, name: &str) -> Result<Topic, Status> {
        let found = match name.strip_prefix("/data/") {
            Some("ChangeEvents") => Some(Topic::All),
            Some(ch) => self.st.cdc.channels.iter().position(|c| c == ch).map(Topic::Object),
            None => None,
        };
        found.ok_or_else(|| {
            let msg = format!(
                "Topic {name} not found, or this user has no access to it: subscribe to /data/ChangeEvents or /data/<Object>ChangeEvent."
            );
            status::error(&self.st, Code::NotFound, status::TOPIC_NOT_FOUND, &msg)
        })
    }

    fn build(&self, schema: &'static Schema, obj: usize, id: &str) -> Result<Arc<EventSchema>, Status> {
        let version = schema as *const Schema as usize;
        if let Some((v, s)) = self.schemas.lock().get(id) {
            if *v == version {
                return Ok(s.clone());
            }
        }
        let built = Arc::new(
            EventSchema::new(&schema.objects[obj], id).map_err(|e| status::error(&self.st, Code::Internal, status::BAD_REQUEST, &e))?,
        );
        self.schemas.lock().insert(id.to_string(), (version, built.clone()));
        Ok(built)
    }

    /// The object's change event schema as its fields are now.
    pub fn current(&self, obj: usize) -> Result<Arc<EventSchema>, Status> {
        let id = self.st.cdc.schema_ids.read()[obj].clone();
        self.build(self.st.schema.get(), obj, &id)
    }

    /// A schema by ID: an object's current one, or one its fields had before a field change.
    pub fn by_id(&self, id: &str) -> Result<Option<Arc<EventSchema>>, Status> {
        let current = self.st.cdc.schema_ids.read().iter().position(|s| s == id);
        if let Some(obj) = current {
            return self.current(obj).map(Some);
        }
        let past = self.st.past_schemas.lock().get(id).copied();
        match past {
            Some((schema, obj)) => self.build(schema, obj, id).map(Some),
            None => Ok(None),
        }
    }

    /// The schema an event was committed with.
    pub fn for_event(&self, ev: &crate::cdc::Event) -> Result<Arc<EventSchema>, Status> {
        match ev.schema_id.get() {
            Some(id) => match self.by_id(id)? {
                Some(s) => Ok(s),
                None => self.current(ev.obj),
            },
            None => self.current(ev.obj),
        }
    }
}

impl Service {
    /// The injected faults (faults.rs) whose `path_prefix` matches this RPC's gRPC path,
    /// `/eventbus.v1.PubSub/<Method>`, as the service would fail: a status fault is its gRPC
    /// status, `drop` ends the call as a lost connection, `cometd_drop` ends every
    /// subscription (as the `cdc/drop` admin call).
    async fn faults(&self, method: &str, md: &tonic::metadata::MetadataMap) -> Result<(), Status> {
        use crate::faults::FaultKind;
        let st = &self.st;
        let path = format!("/eventbus.v1.PubSub/{method}");
        let fired = st.faults.lock().fire("POST", &path, || st.rand_f64());
        for f in &fired {
            match f.kind {
                FaultKind::Latency => tokio::time::sleep(Duration::from_millis(f.latency_ms.unwrap_or(0))).await,
                FaultKind::CometdDrop => {
                    st.cdc.drop_clients();
                }
                _ => {}
            }
        }
        for f in &fired {
            match f.kind {
                FaultKind::Status => return Err(status::for_http_status(st, f.status.unwrap_or(503))),
                FaultKind::Timeout => {
                    tokio::time::sleep(Duration::from_millis(f.latency_ms.unwrap_or(300_000))).await;
                    return Err(Status::deadline_exceeded("Request timed out"));
                }
                FaultKind::Drop => return Err(Status::unavailable("error trying to connect: connection reset by peer")),
                FaultKind::ExpiredSession => {
                    if let Some(t) = md.get("accesstoken").and_then(|v| v.to_str().ok()) {
                        st.tokens.lock().remove(t.trim());
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

type Stream<T> = ReceiverStream<Result<T, Status>>;

#[tonic::async_trait]
impl PubSub for Service {
    type SubscribeStream = Stream<FetchResponse>;
    type PublishStreamStream = Stream<PublishResponse>;
    type ManagedSubscribeStream = Stream<ManagedFetchResponse>;

    async fn subscribe(&self, req: Request<Streaming<FetchRequest>>) -> Result<Response<Self::SubscribeStream>, Status> {
        self.faults("Subscribe", req.metadata()).await?;
        status::authenticate(&self.st, req.metadata())?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let svc = self.clone();
        let keepalive = self.keepalive;
        tokio::spawn(async move {
            if let Err(e) = subscribe::run(&svc, req.into_inner(), &tx, keepalive).await {
                let _ = tx.send(Err(e)).await;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn get_schema(&self, req: Request<SchemaRequest>) -> Result<Response<SchemaInfo>, Status> {
        self.faults("GetSchema", req.metadata()).await?;
        status::authenticate(&self.st, req.metadata())?;
        let id = req.into_inner().schema_id;
        match self.by_id(&id)? {
            Some(s) => {
                Ok(Response::new(SchemaInfo { schema_json: s.json.clone(), schema_id: s.id.clone(), rpc_id: status::rpc_id(&self.st) }))
            }
            None => Err(status::error(
                &self.st,
                Code::NotFound,
                status::SCHEMA_NOT_FOUND,
                &format!("No schema with ID {id}: take the ID from GetTopic or from an event."),
            )),
        }
    }

    async fn get_topic(&self, req: Request<TopicRequest>) -> Result<Response<TopicInfo>, Status> {
        self.faults("GetTopic", req.metadata()).await?;
        status::authenticate(&self.st, req.metadata())?;
        let name = req.into_inner().topic_name;
        // The multi-object channel has no single schema: its events name theirs.
        let schema_id = match self.topic(&name)? {
            Topic::All => String::new(),
            Topic::Object(obj) => self.current(obj)?.id.clone(),
        };
        Ok(Response::new(TopicInfo {
            topic_name: name,
            tenant_guid: self.st.org_id.clone(),
            can_publish: false,
            can_subscribe: true,
            schema_id,
            rpc_id: status::rpc_id(&self.st),
        }))
    }

    async fn publish(&self, req: Request<PublishRequest>) -> Result<Response<PublishResponse>, Status> {
        status::authenticate(&self.st, req.metadata())?;
        Err(self.no_publish())
    }

    async fn publish_stream(&self, req: Request<Streaming<PublishRequest>>) -> Result<Response<Self::PublishStreamStream>, Status> {
        status::authenticate(&self.st, req.metadata())?;
        Err(self.no_publish())
    }

    async fn managed_subscribe(
        &self,
        req: Request<Streaming<ManagedFetchRequest>>,
    ) -> Result<Response<Self::ManagedSubscribeStream>, Status> {
        status::authenticate(&self.st, req.metadata())?;
        Err(Status::unimplemented("ManagedSubscribe (beta on Salesforce) is not emulated: use Subscribe."))
    }
}

impl Service {
    fn no_publish(&self) -> Status {
        let msg = "Change event topics can't be published to: Salesforce publishes them when records change.";
        status::error(&self.st, Code::PermissionDenied, status::PUBLISH_DENIED, msg)
    }
}

/// Serves the Pub/Sub API on `listener` (TLS with ALPN h2 when `acceptor` is given) until the
/// returned future is dropped.
pub async fn serve(st: Arc<AppState>, listener: TcpListener, acceptor: Option<TlsAcceptor>) -> std::io::Result<()> {
    let svc = PubSubServer::new(Service::new(st));
    let server = tonic::transport::Server::builder().http2_keepalive_interval(Some(Duration::from_secs(60))).add_service(svc);
    match acceptor {
        None => {
            // No Nagle delay on the small responses that answer a FetchRequest (the TLS path
            // sets it per connection below).
            use tokio_stream::StreamExt;
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|c| {
                c.inspect(|tcp| {
                    let _ = tcp.set_nodelay(true);
                })
            });
            server.serve_with_incoming(incoming).await.map_err(std::io::Error::other)
        }
        Some(acceptor) => {
            // Handshakes run on their own tasks so a slow client never blocks the others.
            let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<_>>(64);
            tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    let (acceptor, tx) = (acceptor.clone(), tx.clone());
                    tokio::spawn(async move {
                        if let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                            let _ = tx.send(Ok(tls)).await;
                        }
                    });
                }
            });
            server.serve_with_incoming(ReceiverStream::new(rx)).await.map_err(std::io::Error::other)
        }
    }
}

/// Binds the Pub/Sub listener; its address is what `pubsub listening on` prints.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind(addr).await?;
    let a = l.local_addr()?;
    Ok((l, a))
}
