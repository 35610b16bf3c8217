//! Change Data Capture over CometD (Bayeux long-polling), end to end over HTTP.

mod common;

use common::Org;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn org() -> Org {
    Org::with(sf_emulator::Config { cometd_timeout_ms: 400, ..Default::default() })
}

struct Bayeux<'a> {
    org: &'a Org,
    agent: ureq::Agent,
    client_id: String,
    next_id: u64,
}

impl<'a> Bayeux<'a> {
    fn new(org: &'a Org) -> Bayeux<'a> {
        let agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        Bayeux { org, agent, client_id: String::new(), next_id: 0 }
    }
    fn send_raw(&self, token: &str, body: Value) -> (u16, Value) {
        let mut r = self
            .agent
            .post(format!("{}/cometd/62.0", self.org.base))
            .header("Authorization", format!("Bearer {token}"))
            .send_json(body)
            .expect("http");
        let status = r.status().as_u16();
        (status, serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap())
    }
    fn send(&mut self, mut msg: Value) -> Vec<Value> {
        self.next_id += 1;
        msg["id"] = json!(self.next_id.to_string());
        if !self.client_id.is_empty() && msg["channel"] != "/meta/handshake" {
            msg["clientId"] = json!(self.client_id);
        }
        let (status, body) = self.send_raw(&self.org.token.clone(), json!([msg]));
        assert_eq!(status, 200, "{body}");
        body.as_array().unwrap().clone()
    }
    fn handshake(&mut self) -> Value {
        let r = self.send(json!({"channel": "/meta/handshake", "version": "1.0", "minimumVersion": "1.0",
            "supportedConnectionTypes": ["long-polling"], "ext": {"replay": true}}));
        assert_eq!(r[0]["successful"], true, "{r:?}");
        self.client_id = r[0]["clientId"].as_str().unwrap().to_string();
        r[0].clone()
    }
    fn subscribe(&mut self, channel: &str, replay: i64) -> Value {
        let r = self.send(json!({"channel": "/meta/subscribe", "subscription": channel, "ext": {"replay": {channel: replay}}}));
        r[0].clone()
    }
    /// One /meta/connect: (events, connect reply).
    fn connect(&mut self) -> (Vec<Value>, Value) {
        let mut r = self.send(json!({"channel": "/meta/connect", "connectionType": "long-polling"}));
        let reply = r.pop().unwrap();
        assert_eq!(reply["channel"], "/meta/connect");
        (r, reply)
    }
    /// Connects until `n` events arrived (or 5 s).
    fn events(&mut self, n: usize) -> Vec<Value> {
        let start = Instant::now();
        let mut out = vec![];
        while out.len() < n && start.elapsed() < Duration::from_secs(5) {
            let (ev, reply) = self.connect();
            assert_eq!(reply["successful"], true, "{reply}");
            out.extend(ev);
        }
        out
    }
}

fn header(ev: &Value) -> &Value {
    &ev["data"]["payload"]["ChangeEventHeader"]
}

#[test]
fn handshake_subscribe_connect_create_update_delete() {
    let org = org();
    let mut b = Bayeux::new(&org);
    let hs = b.handshake();
    assert_eq!(hs["supportedConnectionTypes"], json!(["long-polling"]));
    assert_eq!(hs["advice"], json!({"interval": 0, "timeout": 400, "reconnect": "retry"}));
    assert_eq!(hs["ext"], json!({"replay": true, "payload.format": true}));
    assert_eq!(hs["version"], "1.0");
    let sub = b.subscribe("/data/AccountChangeEvent", -1);
    assert_eq!(sub["successful"], true, "{sub}");
    assert_eq!(sub["subscription"], "/data/AccountChangeEvent");

    // Nothing yet: the connect is held for the timeout, then returns with advice.
    let t = Instant::now();
    let (ev, reply) = b.connect();
    assert!(ev.is_empty());
    assert!(t.elapsed() >= Duration::from_millis(350), "{:?}", t.elapsed());
    assert_eq!(reply["advice"]["reconnect"], "retry");

    let id = org.create("Account", json!({"Name": "Acme", "Industry": "Banking", "BillingCity": "Paris"}));
    // Contacts are not on this channel.
    org.create("Contact", json!({"LastName": "Nope"}));
    let ev = b.events(1);
    assert_eq!(ev.len(), 1, "{ev:?}");
    let e = &ev[0];
    assert_eq!(e["channel"], "/data/AccountChangeEvent");
    assert_eq!(e["data"]["schema"].as_str().unwrap().len(), 22);
    assert!(e["data"]["event"]["replayId"].as_i64().unwrap() > 0);
    let h = header(e);
    assert_eq!(h["entityName"], "Account");
    assert_eq!(h["recordIds"], json!([id]));
    assert_eq!(h["changeType"], "CREATE");
    assert_eq!(h["changeOrigin"], "com/salesforce/api/rest/62.0");
    assert_eq!(h["sequenceNumber"], 1);
    assert_eq!(h["changedFields"], json!([]));
    assert_eq!(h["nulledFields"], json!([]));
    assert_eq!(h["diffFields"], json!([]));
    assert!(h["commitTimestamp"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(h["commitNumber"].as_i64().is_some());
    assert!(h["commitUser"].as_str().unwrap().starts_with("005"));
    assert_eq!(h["transactionKey"].as_str().unwrap().len(), 36);
    let p = &e["data"]["payload"];
    assert_eq!(p["Name"], "Acme");
    assert_eq!(p["Industry"], "Banking");
    assert_eq!(p["BillingAddress"], json!({"City": "Paris"}));
    assert!(p.get("BillingCity").is_none() && p.get("Id").is_none() && p.get("SystemModstamp").is_none());
    assert!(p["LastModifiedDate"].as_str().unwrap().ends_with(".000Z") || p["LastModifiedDate"].as_str().unwrap().ends_with('Z'));
    assert!(p.get("Phone").is_none(), "null fields are left out of a CREATE");

    // UPDATE: only changed fields, nulled ones listed.
    let r = org.patch(&format!("sobjects/Account/{id}"), json!({"Industry": null, "Phone": "555", "BillingCity": "Lyon", "Name": "Acme"}));
    assert_eq!(r.status, 204);
    let ev = b.events(1);
    let h = header(&ev[0]);
    assert_eq!(h["changeType"], "UPDATE");
    let mut changed: Vec<String> = serde_json::from_value(h["changedFields"].clone()).unwrap();
    changed.sort();
    assert_eq!(changed, ["BillingAddress.City", "Industry", "LastModifiedDate", "Phone"]);
    assert_eq!(h["nulledFields"], json!(["Industry"]));
    let p = &ev[0]["data"]["payload"];
    assert_eq!(p["Phone"], "555");
    assert_eq!(p["Industry"], Value::Null);
    assert_eq!(p["BillingAddress"], json!({"City": "Lyon"}));
    assert!(p.get("Name").is_none(), "unchanged fields are left out");

    // DELETE: header only.
    assert_eq!(org.delete(&format!("sobjects/Account/{id}")).status, 204);
    let ev = b.events(1);
    assert_eq!(header(&ev[0])["changeType"], "DELETE");
    assert_eq!(header(&ev[0])["recordIds"], json!([id]));
    assert_eq!(ev[0]["data"]["payload"].as_object().unwrap().len(), 1);

    let r = b.send(json!({"channel": "/meta/disconnect"}));
    assert_eq!(r[0]["successful"], true);
}

#[test]
fn person_name_compound_and_client_origin() {
    let org = org();
    let mut b = Bayeux::new(&org);
    b.handshake();
    assert_eq!(b.subscribe("/data/ChangeEvents", -1)["successful"], true);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let r = agent
        .post(org.url("sobjects/Contact"))
        .header("Authorization", format!("Bearer {}", org.token))
        .header("Sforce-Call-Options", "client=sfsync")
        .send_json(json!({"FirstName": "Ada", "LastName": "Lovelace"}))
        .unwrap();
    assert_eq!(r.status(), 201);
    let ev = b.events(1);
    assert_eq!(ev[0]["channel"], "/data/ChangeEvents");
    let h = header(&ev[0]);
    assert_eq!(h["entityName"], "Contact");
    assert_eq!(h["changeOrigin"], "com/salesforce/api/rest/62.0;client=sfsync");
    assert_eq!(ev[0]["data"]["payload"]["Name"], json!({"FirstName": "Ada", "LastName": "Lovelace"}));
}

#[test]
fn collections_share_a_transaction_key() {
    let org = org();
    let mut b = Bayeux::new(&org);
    b.handshake();
    b.subscribe("/data/ChangeEvents", -1);
    let r = org.post(
        "composite/sobjects",
        json!({"allOrNone": false, "records": [
            {"attributes": {"type": "Account"}, "Name": "A1"},
            {"attributes": {"type": "Account"}},
            {"attributes": {"type": "Contact"}, "LastName": "C1"},
        ]}),
    );
    assert_eq!(r.status, 200);
    let ev = b.events(2);
    assert_eq!(ev.len(), 2, "the failed record makes no event: {ev:?}");
    let (h1, h2) = (header(&ev[0]), header(&ev[1]));
    assert_eq!(h1["transactionKey"], h2["transactionKey"]);
    assert_eq!(h1["commitNumber"], h2["commitNumber"]);
    assert_eq!((h1["sequenceNumber"].as_i64(), h2["sequenceNumber"].as_i64()), (Some(1), Some(2)));
    assert_eq!((h1["entityName"].as_str(), h2["entityName"].as_str()), (Some("Account"), Some("Contact")));

    // allOrNone rollback: no events at all.
    let r = org.post(
        "composite/sobjects",
        json!({"allOrNone": true, "records": [
            {"attributes": {"type": "Account"}, "Name": "ok"},
            {"attributes": {"type": "Account"}},
        ]}),
    );
    assert_eq!(r.status, 200);
    let (ev, _) = b.connect();
    assert!(ev.is_empty(), "{ev:?}");

    // A separate call gets a new transaction.
    org.create("Account", json!({"Name": "A2"}));
    let ev3 = b.events(1);
    assert_ne!(header(&ev3[0])["transactionKey"], h1["transactionKey"]);
}

#[test]
fn automation_update_is_merged_into_the_create() {
    let org = org();
    org.admin("POST", "automations", json!({"object": "Account", "name": "Rate", "set_field": "Rating", "value": "Hot"}));
    let mut b = Bayeux::new(&org);
    b.handshake();
    b.subscribe("/data/AccountChangeEvent", -1);
    org.create("Account", json!({"Name": "Auto"}));
    let ev = b.events(1);
    let (more, _) = b.connect();
    assert!(more.is_empty(), "{more:?}");
    assert_eq!(header(&ev[0])["changeType"], "CREATE");
    assert_eq!(ev[0]["data"]["payload"]["Rating"], "Hot");
}

#[test]
fn replay_new_all_stored_and_invalid() {
    let org = org();
    let a = org.create("Account", json!({"Name": "one"}));
    org.create("Account", json!({"Name": "two"}));

    let mut b = Bayeux::new(&org);
    b.handshake();
    b.subscribe("/data/AccountChangeEvent", -2);
    let all = b.events(2);
    assert_eq!(all.len(), 2);
    assert_eq!(header(&all[0])["recordIds"], json!([a]));
    let first = all[0]["data"]["event"]["replayId"].as_i64().unwrap();
    let second = all[1]["data"]["event"]["replayId"].as_i64().unwrap();
    assert!(second > first);

    // From a stored ID: only what came after it.
    let mut c = Bayeux::new(&org);
    c.handshake();
    assert_eq!(c.subscribe("/data/AccountChangeEvent", first)["successful"], true);
    let after = c.events(1);
    assert_eq!(after[0]["data"]["event"]["replayId"].as_i64(), Some(second));

    // -1: nothing old.
    let mut d = Bayeux::new(&org);
    d.handshake();
    d.subscribe("/data/AccountChangeEvent", -1);
    let (ev, _) = d.connect();
    assert!(ev.is_empty());

    // Unknown replay ID.
    let mut e = Bayeux::new(&org);
    e.handshake();
    let r = e.subscribe("/data/AccountChangeEvent", second + 1000);
    assert_eq!(r["successful"], false);
    assert_eq!(
        r["error"],
        format!("400::The replayId {} you provided was invalid.  Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.", second + 1000)
    );

    // Unknown channel.
    let r = e.subscribe("/data/NopeChangeEvent", -1);
    assert_eq!(r["successful"], false);
    assert_eq!(r["error"], "403::Unknown channel");
}

#[test]
fn retention_is_72_hours_of_emulator_time() {
    let org = Org::with(sf_emulator::Config { cometd_timeout_ms: 400, token_ttl_secs: 400_000, ..Default::default() });
    org.create("Account", json!({"Name": "old"}));
    let mut b = Bayeux::new(&org);
    b.handshake();
    b.subscribe("/data/AccountChangeEvent", -2);
    let ev = b.events(1);
    let old = ev[0]["data"]["event"]["replayId"].as_i64().unwrap();

    org.admin("POST", "clock", json!({"advance_ms": 73 * 3_600_000i64}));
    let new_id = org.create("Account", json!({"Name": "new"}));
    let mut c = Bayeux::new(&org);
    c.handshake();
    c.subscribe("/data/AccountChangeEvent", -2);
    let ev = c.events(1);
    assert_eq!(ev.len(), 1);
    assert_eq!(header(&ev[0])["recordIds"], json!([new_id]));
    let r = c.subscribe("/data/ChangeEvents", old - 1);
    assert_eq!(r["successful"], false, "{r}");
    assert!(r["error"].as_str().unwrap().starts_with("400::The replayId"));
    let info = org.admin("GET", "cdc", Value::Null).body;
    assert_eq!(info["retained_events"], 1);
}

#[test]
fn unknown_client_gets_handshake_advice() {
    let org = org();
    let mut b = Bayeux::new(&org);
    b.client_id = "nosuchclient".into();
    let (ev, reply) = b.connect();
    assert!(ev.is_empty());
    assert_eq!(reply["successful"], false);
    assert_eq!(reply["error"], "403::Unknown client");
    assert_eq!(reply["advice"]["reconnect"], "handshake");

    // The drop fault forgets live clients.
    b.handshake();
    b.subscribe("/data/ChangeEvents", -1);
    let r = org.admin("POST", "faults", json!({"kind": "cometd_drop", "count": 1}));
    assert_eq!(r.status, 201, "{:?}", r.body);
    let (_, reply) = b.connect();
    assert_eq!(reply["error"], "403::Unknown client");
    b.handshake();
    let (_, reply) = b.connect();
    assert_eq!(reply["successful"], true);

    // The admin drop wakes a held connect.
    let base = org.base.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        ureq::post(format!("{base}/__emulator/cdc/drop")).send_empty().unwrap();
    });
    let (_, reply) = b.connect();
    t.join().unwrap();
    assert_eq!(reply["error"], "403::Unknown client");
}

#[test]
fn bad_token_is_401() {
    let org = org();
    let b = Bayeux::new(&org);
    let (status, body) = b.send_raw("bogus", json!([{"channel": "/meta/handshake", "version": "1.0", "id": "1"}]));
    assert_eq!(status, 401);
    assert_eq!(body[0]["error"], "401::Authentication invalid");
    assert_eq!(body[0]["successful"], false);
}

#[test]
fn gap_overflow_and_disabled_objects() {
    let org = org();
    let id = org.create("Account", json!({"Name": "g"}));
    let mut b = Bayeux::new(&org);
    b.handshake();
    b.subscribe("/data/AccountChangeEvent", -1);
    let r = org.admin("POST", "cdc/gap", json!({"object": "Account", "ids": [id]}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = org.admin("POST", "cdc/gap", json!({"object": "Account", "ids": [id], "change_type": "DELETE"}));
    assert_eq!(r.status, 200);
    let r = org.admin("POST", "cdc/overflow", json!({"object": "Account"}));
    assert_eq!(r.status, 200);
    let ev = b.events(3);
    let types: Vec<&str> = ev.iter().map(|e| header(e)["changeType"].as_str().unwrap()).collect();
    assert_eq!(types, ["GAP_UPDATE", "GAP_DELETE", "GAP_OVERFLOW"]);
    assert_eq!(header(&ev[0])["recordIds"], json!([id]));
    assert_eq!(header(&ev[2])["recordIds"], json!([]));
    assert_eq!(ev[0]["data"]["payload"].as_object().unwrap().len(), 1);

    let r = org.admin("POST", "cdc", json!({"object": "Account", "enabled": false}));
    assert_eq!(r.status, 200);
    org.create("Account", json!({"Name": "silent"}));
    let (ev, _) = b.connect();
    assert!(ev.is_empty());
    org.admin("POST", "cdc", json!({"object": "Account", "enabled": true}));
    org.create("Account", json!({"Name": "loud"}));
    assert_eq!(b.events(1).len(), 1);
}

#[test]
fn seed_makes_events_and_streaming_is_not_an_api_call() {
    let org = org();
    let mut b = Bayeux::new(&org);
    b.handshake();
    b.subscribe("/data/AccountChangeEvent", -1);
    org.admin("POST", "seed", json!({"object": "Account", "count": 3}));
    let ev = b.events(3);
    assert_eq!(ev.len(), 3);
    assert_eq!(header(&ev[0])["changeOrigin"], "");
    let keys: std::collections::HashSet<_> = ev.iter().map(|e| header(e)["transactionKey"].clone()).collect();
    assert_eq!(keys.len(), 1);
    let c = org.admin("GET", "counters", Value::Null).body;
    assert!(c["by_endpoint"].as_object().unwrap().keys().all(|k| !k.contains("cometd")), "{c}");
}

#[test]
fn event_latency_is_small() {
    let org = Org::with(sf_emulator::Config { cometd_timeout_ms: 5_000, ..Default::default() });
    let mut b = Bayeux::new(&org);
    b.handshake();
    b.subscribe("/data/AccountChangeEvent", -1);
    let base = org.base.clone();
    let token = org.token.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let t = Instant::now();
        ureq::post(format!("{base}/services/data/v62.0/sobjects/Account"))
            .header("Authorization", format!("Bearer {token}"))
            .send_json(json!({"Name": "fast"}))
            .unwrap();
        t
    });
    let (ev, _) = b.connect();
    let done = Instant::now();
    let started = writer.join().unwrap();
    assert_eq!(ev.len(), 1);
    let latency = done.duration_since(started);
    eprintln!("write -> event delivered: {latency:?}");
    assert!(latency < Duration::from_millis(500), "{latency:?}");
}

#[test]
fn events_name_the_fields_current_at_commit() {
    let org = org();
    let mut b = Bayeux::new(&org);
    b.handshake();
    b.subscribe("/data/ContactChangeEvent", -1);
    assert_eq!(org.admin("POST", "fields/Contact", json!({"name": "Gone__c", "type": "string"})).status, 201);
    assert_eq!(org.admin("POST", "fields/Contact", json!({"name": "Kept__c", "type": "string"})).status, 201);
    org.create("Contact", json!({"LastName": "A", "Gone__c": "g", "Kept__c": "k"}));
    assert_eq!(org.admin("DELETE", "fields/Contact/Gone__c", json!(null)).status, 200);
    let id = org.create("Contact", json!({"LastName": "B", "Kept__c": "k2"}));
    org.patch(&format!("sobjects/Contact/{id}"), json!({"Kept__c": "k3"}));
    let ev = b.events(3);
    assert_eq!(ev.len(), 3, "{ev:?}");
    // Published before the change: as committed.
    assert_eq!(ev[0]["data"]["payload"]["Gone__c"], "g");
    assert_eq!(ev[0]["data"]["payload"]["Kept__c"], "k");
    assert_eq!(ev[1]["data"]["payload"]["Kept__c"], "k2");
    assert!(ev[1]["data"]["payload"].get("Gone__c").is_none());
    assert_eq!(header(&ev[2])["changedFields"], json!(["LastModifiedDate", "Kept__c"]));
    assert_ne!(ev[0]["data"]["schema"], ev[1]["data"]["schema"], "the schema ID follows the fields");
}

#[test]
fn a_held_stream_delivers_nothing_until_released_then_everything_in_order() {
    let org = org();
    let mut b = Bayeux::new(&org);
    b.handshake();
    b.subscribe("/data/AccountChangeEvent", -1);
    let r = org.admin("POST", "cdc/hold", json!({"held": true}));
    assert_eq!((r.status, &r.body["held"]), (200, &json!(true)), "{:?}", r.body);
    let id = org.create("Account", json!({"Name": "late"}));
    assert_eq!(org.patch(&format!("sobjects/Account/{id}"), json!({"Name": "later"})).status, 204);
    let (ev, reply) = b.connect();
    assert!(ev.is_empty(), "held: {ev:?}");
    assert_eq!(reply["successful"], true);
    assert_eq!(org.admin("GET", "cdc", Value::Null).body["held"], true);
    org.admin("POST", "cdc/hold", json!({"held": false}));
    let ev = b.events(2);
    let types: Vec<&str> = ev.iter().map(|e| header(e)["changeType"].as_str().unwrap()).collect();
    assert_eq!(types, ["CREATE", "UPDATE"], "what waited, in commit order");
    assert_eq!(ev[0]["data"]["payload"]["Name"], "late", "the create's snapshot is from its commit");
}

#[test]
fn a_bulk_jobs_saves_name_the_bulk_api_and_the_client_that_created_it() {
    let org = org();
    let mut b = Bayeux::new(&org);
    b.handshake();
    b.subscribe("/data/AccountChangeEvent", -1);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let auth = format!("Bearer {}", org.token);
    let mut r = agent
        .post(org.url("jobs/ingest"))
        .header("Authorization", &auth)
        .header("Sforce-Call-Options", "client=sfsync")
        .send_json(json!({"object": "Account", "operation": "insert", "contentType": "CSV", "lineEnding": "LF"}))
        .unwrap();
    assert_eq!(r.status(), 200);
    let job: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    let id = job["id"].as_str().unwrap();
    let put = agent
        .put(org.url(&format!("jobs/ingest/{id}/batches")))
        .header("Authorization", &auth)
        .header("Content-Type", "text/csv")
        .send("Name\nBulk one\n")
        .unwrap();
    assert_eq!(put.status(), 201);
    let close = agent
        .patch(org.url(&format!("jobs/ingest/{id}")))
        .header("Authorization", &auth)
        .send_json(json!({"state": "UploadComplete"}))
        .unwrap();
    assert_eq!(close.status(), 200);
    let ev = b.events(1);
    assert_eq!(header(&ev[0])["changeOrigin"], "com/salesforce/api/bulkapi/62.0;client=sfsync");
}
