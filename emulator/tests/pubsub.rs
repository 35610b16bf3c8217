//! The Pub/Sub API (gRPC) as a client built from the published pubsub_api.proto sees it: topics,
//! schemas, Subscribe with replay presets and flow control, Avro payloads with bitmap fields,
//! authentication errors, TLS.

mod common;

use apache_avro::types::Value as Av;
use common::Org;
use pubsub_proto::pub_sub_client::PubSubClient;
use pubsub_proto::{FetchRequest, FetchResponse, ReplayPreset, SchemaRequest, TopicRequest};
use serde_json::{json, Value};
use sf_emulator::Config;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};

const TOPIC: &str = "/data/AccountChangeEvent";

struct Sub {
    org: Org,
    rt: tokio::runtime::Runtime,
    client: PubSubClient<Channel>,
    org_id: String,
}

fn org_id(org: &Org) -> String {
    let r = org.query("SELECT Id FROM Organization");
    r.body["records"][0]["Id"].as_str().unwrap().to_string()
}

impl Sub {
    fn start(cfg: Config) -> Sub {
        let org = Org::with(cfg);
        let org_id = org_id(&org);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let url = format!("http://{}", org.server.pubsub_addr);
        let client = rt.block_on(PubSubClient::connect(url)).unwrap();
        Sub { org, rt, client, org_id }
    }

    fn req<T>(&self, msg: T) -> Request<T> {
        auth(msg, &self.org.token, &self.org.base, &self.org_id)
    }

    fn topic(&mut self, name: &str) -> Result<pubsub_proto::TopicInfo, Status> {
        let req = self.req(TopicRequest { topic_name: name.into() });
        self.rt.block_on(self.client.get_topic(req)).map(|r| r.into_inner())
    }

    fn schema(&mut self, id: &str) -> apache_avro::Schema {
        let req = self.req(SchemaRequest { schema_id: id.into() });
        let info = self.rt.block_on(self.client.get_schema(req)).unwrap().into_inner();
        assert_eq!(info.schema_id, id);
        apache_avro::Schema::parse_str(&info.schema_json).unwrap()
    }

    /// Opens a Subscribe stream with this first FetchRequest; the sender adds more requests.
    fn subscribe(&mut self, first: FetchRequest) -> Result<Stream, Status> {
        let (tx, rx) = mpsc::channel(8);
        tx.try_send(first).unwrap();
        let req = self.req(ReceiverStream::new(rx));
        let resp = self.rt.block_on(self.client.subscribe(req))?;
        Ok(Stream { tx, rx: resp.into_inner() })
    }

    fn next(&self, s: &mut Stream) -> Result<FetchResponse, Status> {
        self.rt.block_on(s.rx.message()).map(|m| m.expect("stream ended"))
    }

    /// The next response that carries events (skipping keepalives).
    fn next_events(&self, s: &mut Stream) -> FetchResponse {
        loop {
            let r = self.next(s).unwrap();
            if !r.events.is_empty() {
                return r;
            }
        }
    }
}

struct Stream {
    tx: mpsc::Sender<FetchRequest>,
    rx: Streaming<FetchResponse>,
}

fn auth<T>(msg: T, token: &str, instance: &str, tenant: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut().insert("accesstoken", token.parse().unwrap());
    r.metadata_mut().insert("instanceurl", instance.parse().unwrap());
    r.metadata_mut().insert("tenantid", tenant.parse().unwrap());
    r
}

fn fetch(topic: &str, preset: ReplayPreset, replay_id: Vec<u8>, n: i32) -> FetchRequest {
    FetchRequest { topic_name: topic.into(), replay_preset: preset as i32, replay_id, num_requested: n, auth_refresh: String::new() }
}

fn more(n: i32) -> FetchRequest {
    FetchRequest { num_requested: n, ..Default::default() }
}

fn decode(schema: &apache_avro::Schema, payload: &[u8]) -> Value {
    let reader = apache_avro::reader::datum::GenericDatumReader::builder(schema).build().unwrap();
    let v = reader.read_value(&mut &payload[..]).unwrap();
    to_json(v)
}

/// Avro value → JSON, unions unwrapped (null stays null).
fn to_json(v: Av) -> Value {
    match v {
        Av::Null => Value::Null,
        Av::Boolean(b) => json!(b),
        Av::Int(i) => json!(i),
        Av::Long(i) => json!(i),
        Av::Double(d) => json!(d),
        Av::String(s) => json!(s),
        Av::Enum(_, s) => json!(s),
        Av::Union(_, v) => to_json(*v),
        Av::Array(a) => Value::Array(a.into_iter().map(to_json).collect()),
        Av::Record(fields) => Value::Object(fields.into_iter().map(|(k, v)| (k, to_json(v))).collect()),
        other => panic!("unexpected avro value {other:?}"),
    }
}

/// Top-level position of a field in the schema, and its parts' positions for a record.
fn position(schema_json: &Value, name: &str) -> usize {
    schema_json["fields"].as_array().unwrap().iter().position(|f| f["name"] == name).unwrap()
}

fn quick_keepalive() -> Config {
    Config { pubsub_keepalive_ms: 200, ..Default::default() }
}

#[test]
fn earliest_delivers_avro_events_with_changed_field_bitmaps() {
    let mut s = Sub::start(Config::default());
    let id = s.org.create("Account", json!({"Name": "Acme", "Phone": "1"}));
    assert_eq!(s.org.patch(&format!("sobjects/Account/{id}"), json!({"Phone": "2", "BillingCity": "Paris"})).status, 204);

    let topic = s.topic(TOPIC).unwrap();
    assert!(topic.can_subscribe && !topic.can_publish);
    assert_eq!(topic.tenant_guid, s.org_id);
    let schema = s.schema(&topic.schema_id);
    let schema_json: Value = serde_json::from_str(&schema.canonical_form()).unwrap();

    let mut st = s.subscribe(fetch(TOPIC, ReplayPreset::Earliest, vec![], 10)).unwrap();
    let mut events = vec![];
    while events.len() < 2 {
        events.extend(s.next_events(&mut st).events);
    }
    let decoded: Vec<Value> = events.iter().map(|e| decode(&schema, &e.event.as_ref().unwrap().payload)).collect();
    assert!(events.iter().all(|e| e.event.as_ref().unwrap().schema_id == topic.schema_id));

    let create = &decoded[0];
    assert_eq!(create["ChangeEventHeader"]["changeType"], "CREATE");
    assert_eq!(create["ChangeEventHeader"]["entityName"], "Account");
    assert_eq!(create["ChangeEventHeader"]["recordIds"], json!([id]));
    assert_eq!(create["Name"], "Acme");
    assert_eq!(create["Phone"], "1");
    assert_eq!(create["ChangeEventHeader"]["changedFields"], json!([]));

    let update = &decoded[1];
    let h = &update["ChangeEventHeader"];
    assert_eq!(h["changeType"], "UPDATE");
    assert_eq!(update["Phone"], "2");
    assert_eq!(update["BillingAddress"]["City"], "Paris");
    // Unchanged fields are null on this transport.
    assert_eq!(update["Name"], Value::Null);
    assert_eq!(update["BillingAddress"]["Street"], Value::Null);
    // Bit n of the first bitmap is the field at position n; `N-0x…` the parts of field N.
    let phone = position(&schema_json, "Phone");
    let billing = position(&schema_json, "BillingAddress");
    let addr = &schema_json["fields"][billing]["type"][1];
    let city = addr["fields"].as_array().unwrap().iter().position(|f| f["name"] == "City").unwrap();
    // Salesforce counts LastModifiedDate as changed too (CometD's changedFields names it).
    let modified = position(&schema_json, "LastModifiedDate");
    let hex = |bits: &[usize]| {
        let top = *bits.iter().max().unwrap();
        let n: u128 = bits.iter().map(|b| 1u128 << b).sum();
        format!("0x{:0width$X}", n, width = (top / 8 + 1) * 2)
    };
    assert_eq!(h["changedFields"], json!([hex(&[phone, modified]), format!("{billing}-{}", hex(&[city]))]));
    assert_eq!(update["LastModifiedDate"].as_i64().map(|ms| ms > 0), Some(true));
    assert_eq!(h["nulledFields"], json!([]));
    assert_eq!(h["diffFields"], json!([]));

    // Replay IDs: increasing, and the latest one reported with the batch.
    let last = events.last().unwrap().replay_id.clone();
    assert!(events[0].replay_id < last);
}

#[test]
fn latest_skips_the_past_and_num_requested_limits_delivery() {
    let mut s = Sub::start(quick_keepalive());
    s.org.create("Account", json!({"Name": "Before"}));
    let mut st = s.subscribe(fetch(TOPIC, ReplayPreset::Latest, vec![], 1)).unwrap();
    // A keepalive (no events) proves the subscription is set up, at the tip.
    let ka = s.next(&mut st).unwrap();
    assert!(ka.events.is_empty());
    assert_eq!(ka.pending_num_requested, 1);
    s.org.create("Account", json!({"Name": "First"}));
    s.org.create("Account", json!({"Name": "Second"}));
    let id = s.topic(TOPIC).unwrap().schema_id;
    let schema = s.schema(&id);

    let r = s.next_events(&mut st);
    assert_eq!(r.events.len(), 1);
    assert_eq!(r.pending_num_requested, 0);
    assert_eq!(decode(&schema, &r.events[0].event.as_ref().unwrap().payload)["Name"], "First");
    assert_eq!(r.latest_replay_id, r.events[0].replay_id);
    // Nothing more was requested: keepalives only, whatever is waiting.
    for _ in 0..2 {
        let ka = s.next(&mut st).unwrap();
        assert!(ka.events.is_empty(), "an event beyond num_requested: {ka:?}");
        assert_eq!(ka.pending_num_requested, 0);
    }
    st.tx.try_send(more(5)).unwrap();
    let r = s.next_events(&mut st);
    assert_eq!(r.events.len(), 1);
    assert_eq!(r.pending_num_requested, 4);
    assert_eq!(decode(&schema, &r.events[0].event.as_ref().unwrap().payload)["Name"], "Second");
}

#[test]
fn custom_replay_id_resumes_after_it_and_bad_ones_fail() {
    let mut s = Sub::start(Config::default());
    for n in ["A", "B", "C"] {
        s.org.create("Account", json!({"Name": n}));
    }
    let id = s.topic(TOPIC).unwrap().schema_id;
    let schema = s.schema(&id);
    let mut st = s.subscribe(fetch(TOPIC, ReplayPreset::Earliest, vec![], 3)).unwrap();
    let mut all = vec![];
    while all.len() < 3 {
        all.extend(s.next_events(&mut st).events);
    }
    let mut st = s.subscribe(fetch(TOPIC, ReplayPreset::Custom, all[0].replay_id.clone(), 10)).unwrap();
    let mut rest = vec![];
    while rest.len() < 2 {
        rest.extend(s.next_events(&mut st).events);
    }
    let names: Vec<Value> = rest.iter().map(|e| decode(&schema, &e.event.as_ref().unwrap().payload)["Name"].clone()).collect();
    assert_eq!(names, [json!("B"), json!("C")]);
    assert_eq!(rest[0].replay_id, all[1].replay_id);

    // Not yet issued (or past retention) → INVALID_ARGUMENT, validation failed.
    let mut st = s.subscribe(fetch(TOPIC, ReplayPreset::Custom, 1_000_000i64.to_be_bytes().to_vec(), 1)).unwrap();
    let e = s.next(&mut st).unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(error_code(&e), "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed");
    // Not a replay ID at all → corrupted.
    let mut st = s.subscribe(fetch(TOPIC, ReplayPreset::Custom, vec![1, 2, 3], 1)).unwrap();
    let e = s.next(&mut st).unwrap_err();
    assert_eq!(error_code(&e), "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted");
}

fn error_code(e: &Status) -> &str {
    e.metadata().get("error-code").and_then(|v| v.to_str().ok()).unwrap_or("")
}

#[test]
fn bad_sessions_and_unknown_topics_get_the_real_errors() {
    let mut s = Sub::start(Config::default());
    let bad = auth(TopicRequest { topic_name: TOPIC.into() }, "00Dx!bogus", &s.org.base, &s.org_id);
    let e = s.rt.block_on(s.client.get_topic(bad)).unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert_eq!(error_code(&e), "sfdc.platform.eventbus.grpc.service.auth.error");
    assert!(e.message().contains("rpcId: "), "{}", e.message());
    // The session is fine but the tenant is another org.
    let other = auth(TopicRequest { topic_name: TOPIC.into() }, &s.org.token, &s.org.base, "00D000000000001AAA");
    assert_eq!(s.rt.block_on(s.client.get_topic(other)).unwrap_err().code(), Code::Unauthenticated);
    // Subscribe checks the headers before streaming.
    let (_tx, rx) = mpsc::channel::<FetchRequest>(1);
    let bad = auth(ReceiverStream::new(rx), "nope", &s.org.base, &s.org_id);
    assert_eq!(s.rt.block_on(s.client.subscribe(bad)).unwrap_err().code(), Code::Unauthenticated);

    let e = s.topic("/data/NoSuchChangeEvent").unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let mut st = s.subscribe(fetch("/event/Nope__e", ReplayPreset::Latest, vec![], 1)).unwrap();
    assert_eq!(s.next(&mut st).unwrap_err().code(), Code::NotFound);
    // The all-objects channel exists; its events name their own schemas.
    assert!(s.topic("/data/ChangeEvents").unwrap().can_subscribe);
}

#[test]
fn schema_ids_follow_field_changes_and_old_events_keep_theirs() {
    let mut s = Sub::start(Config::default());
    s.org.create("Account", json!({"Name": "Old shape"}));
    let before = s.topic(TOPIC).unwrap().schema_id;
    let r = s.org.admin("POST", "fields/Account", json!({"name": "Tier__c", "type": "string", "length": 10}));
    assert!(r.status < 300, "{:?}", r.body);
    let after = s.topic(TOPIC).unwrap().schema_id;
    assert_ne!(before, after);
    s.org.create("Account", json!({"Name": "New shape", "Tier__c": "Gold"}));

    let mut st = s.subscribe(fetch("/data/ChangeEvents", ReplayPreset::Earliest, vec![], 10)).unwrap();
    let mut events = vec![];
    while events.len() < 2 {
        events.extend(s.next_events(&mut st).events);
    }
    let (old, new) = (events[0].event.as_ref().unwrap(), events[1].event.as_ref().unwrap());
    assert_eq!(old.schema_id, before);
    assert_eq!(new.schema_id, after);
    assert_eq!(decode(&s.schema(&before), &old.payload)["Name"], "Old shape");
    assert_eq!(decode(&s.schema(&after), &new.payload)["Tier__c"], "Gold");
}

#[test]
fn tls_listener_speaks_grpc_over_h2() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let cfg = Config {
        tls_cert: Some(format!("{dir}/testdata/tls-test-cert.pem").into()),
        tls_key: Some(format!("{dir}/testdata/tls-test-key.pem").into()),
        ..Default::default()
    };
    let server = sf_emulator::spawn(cfg).unwrap();
    let ca = std::fs::read(format!("{dir}/testdata/tls-test-ca.pem")).unwrap();
    let cert = ureq::tls::Certificate::from_pem(&ca).unwrap().to_owned();
    let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::new_with_certs(&[cert])).build();
    let agent: ureq::Agent = ureq::Agent::config_builder().tls_config(tls).build().into();
    let base = server.base_url();
    let mut r = agent
        .post(format!("{base}/services/oauth2/token"))
        .send_form([("grant_type", "client_credentials"), ("client_id", "sfsync-local"), ("client_secret", "sfsync-local-secret")])
        .unwrap();
    let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    let token = v["access_token"].as_str().unwrap().to_string();
    let org_id = v["id"].as_str().unwrap().rsplit('/').nth(1).unwrap().to_string();

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async {
        let tls =
            tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(&ca)).domain_name("localhost");
        let port = server.pubsub_addr.port();
        let channel = Channel::from_shared(format!("https://localhost:{port}")).unwrap().tls_config(tls).unwrap().connect().await.unwrap();
        let mut client = PubSubClient::new(channel);
        let info = client.get_topic(auth(TopicRequest { topic_name: TOPIC.into() }, &token, &base, &org_id)).await.unwrap().into_inner();
        assert_eq!(info.topic_name, TOPIC);
        assert!(!info.schema_id.is_empty());
    });
}
