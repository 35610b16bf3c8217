mod common;
use common::Org;
use serde_json::json;
use std::time::Instant;

#[test]
fn limits_header_and_exhaustion() {
    let org = Org::with(sf_emulator::Config { daily_api_limit: 3, ..Default::default() });
    let r = org.get("sobjects");
    assert_eq!(r.header("sforce-limit-info"), Some("api-usage=1/3"));
    let l = org.get("limits");
    assert_eq!(l.body["DailyApiRequests"], json!({"Max": 3, "Remaining": 1}));
    org.get("sobjects");
    let r = org.get("sobjects");
    assert_eq!(r.status, 403);
    assert_eq!(r.body, json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]));
    org.admin("POST", "limits", json!({"daily_api_limit": 10}));
    assert_eq!(org.get("sobjects").status, 200);
}

#[test]
fn counters_by_route_and_reset() {
    let org = Org::start();
    org.create("Account", json!({"Name": "a"}));
    org.post("composite/sobjects", json!({"records": [{"attributes": {"type": "Account"}, "Name": "b"}]}));
    org.query("SELECT Id FROM Account");
    org.query("SELECT Id FROM Contact");
    org.admin("GET", "faults", json!(null));
    let c = org.admin("GET", "counters", json!(null));
    assert_eq!(c.body["by_endpoint"]["GET /query"], 2);
    assert_eq!(c.body["by_endpoint"]["POST /composite/sobjects"], 1);
    assert_eq!(c.body["by_endpoint"]["POST /sobjects/{object}"], 1);
    assert_eq!(c.body["api_usage"], 4);
    assert_eq!(c.body["total"], 5, "token call counted, admin calls not");

    org.admin("POST", "reset", json!({}));
    assert_eq!(org.admin("GET", "counters", json!(null)).body["total"], 0);
    assert_eq!(org.query("SELECT COUNT() FROM Account").body["totalSize"], 0);
    // The integration user survives a reset.
    assert_eq!(org.query("SELECT COUNT() FROM User").body["totalSize"], 1);
}

#[test]
fn seed_generates_valid_records() {
    let org = Org::start();
    for (o, n) in [("Account", 5), ("Contact", 5), ("Lead", 3), ("Opportunity", 2), ("Campaign", 1), ("CampaignMember", 1), ("Task", 2)] {
        let r = org.admin("POST", "seed", json!({"object": o, "count": n}));
        assert_eq!(r.status, 200, "{o}: {:?}", r.body);
        assert_eq!(r.body["ids"].as_array().unwrap().len(), n);
    }
    let r = org.admin("POST", "seed", json!({"object": "Account", "count": 2, "fields": {"Industry": "Banking"}}));
    assert_eq!(r.body["count"], 2);
    assert_eq!(org.query("SELECT COUNT() FROM Account WHERE Industry = 'Banking'").body["totalSize"], 2);
    assert_eq!(org.admin("POST", "seed", json!({"object": "Nope", "count": 1})).status, 400);
}

#[test]
fn status_latency_session_and_lock_faults() {
    let mut org = Org::start();
    let f = org.admin("POST", "faults", json!({"kind": "status", "status": 503, "count": 1}));
    assert_eq!(f.status, 201);
    let r = org.get("sobjects");
    assert_eq!(r.status, 503);
    assert_eq!(r.code(), "SERVER_UNAVAILABLE");
    assert_eq!(org.get("sobjects").status, 200, "count exhausted");

    org.admin("POST", "faults", json!({"kind": "latency", "latency_ms": 300, "path_prefix": "/services/data/v62.0/query"}));
    let t = Instant::now();
    org.query("SELECT Id FROM Account");
    assert!(t.elapsed().as_millis() >= 300);
    assert_eq!(org.admin("GET", "faults", json!(null)).body.as_array().unwrap().len(), 1);
    assert_eq!(org.admin("DELETE", "faults", json!(null)).status, 204);

    let id = org.create("Account", json!({"Name": "lockme"}));
    org.admin("POST", "faults", json!({"kind": "lock", "count": 2}));
    let r = org.patch(&format!("sobjects/Account/{id}"), json!({"Name": "x"}));
    assert_eq!(r.code(), "UNABLE_TO_LOCK_ROW");
    let r = org.post("composite/sobjects", json!({"records": [{"attributes": {"type": "Account"}, "Name": "b"}]}));
    assert_eq!(r.body[0]["errors"][0]["statusCode"], "UNABLE_TO_LOCK_ROW");
    assert_eq!(org.patch(&format!("sobjects/Account/{id}"), json!({"Name": "x"})).status, 204);

    org.admin("POST", "faults", json!({"kind": "expired_session", "count": 1}));
    assert_eq!(org.get("sobjects").code(), "INVALID_SESSION_ID");
    // The session stays dead: a client must log in again.
    assert_eq!(org.get("sobjects").status, 401);
    let r = org.form(
        "/services/oauth2/token",
        &[("grant_type", "client_credentials"), ("client_id", "sfsync-local"), ("client_secret", "sfsync-local-secret")],
    );
    org.token = r.body["access_token"].as_str().unwrap().to_string();
    assert_eq!(org.get("sobjects").status, 200);

    assert_eq!(org.admin("POST", "faults", json!({"kind": "status"})).status, 400);
}

#[test]
fn timeout_fault_holds_the_request() {
    let org = Org::start();
    org.admin("POST", "faults", json!({"kind": "timeout", "latency_ms": 1500, "count": 1}));
    let t = Instant::now();
    let r = org.get("sobjects");
    assert!(t.elapsed().as_millis() >= 1500);
    assert_eq!(r.status, 504);
}

#[test]
fn validation_rules_and_automations() {
    let org = Org::start();
    let r = org.admin(
        "POST",
        "validation_rules",
        json!({"object": "Account", "name": "NoTest", "field": "Name", "op": "matches", "value": "test%",
               "message": "Name can't start with test", "error_field": "Name"}),
    );
    assert_eq!(r.status, 201);
    let bad = org.post("sobjects/Account", json!({"Name": "Testing"}));
    assert_eq!(
        bad.body,
        json!([{"message": "Name can't start with test", "errorCode": "FIELD_CUSTOM_VALIDATION_EXCEPTION", "fields": ["Name"]}])
    );
    org.create("Account", json!({"Name": "Fine"}));
    org.admin("DELETE", "validation_rules", json!(null));
    org.create("Account", json!({"Name": "Testing"}));

    let a = org.admin(
        "POST",
        "automations",
        json!({"object": "Account", "name": "Rate", "when_field": "Industry", "set_field": "Rating", "value": "Hot"}),
    );
    assert_eq!(a.status, 201, "{:?}", a.body);
    let id = org.create("Account", json!({"Name": "Auto", "Industry": "Energy"}));
    let g = org.get(&format!("sobjects/Account/{id}"));
    assert_eq!(g.body["Rating"], "Hot");
    assert!(g.body["SystemModstamp"].as_str().unwrap() > g.body["CreatedDate"].as_str().unwrap());
    let other = org.create("Account", json!({"Name": "NoAuto"}));
    assert_eq!(org.get(&format!("sobjects/Account/{other}")).body["Rating"], serde_json::Value::Null);
}

#[test]
fn clock_moves_audit_stamps() {
    let org = Org::start();
    let c = org.admin("POST", "clock", json!({"offset_ms": 3_600_000}));
    assert_eq!(c.status, 200);
    let id = org.create("Account", json!({"Name": "future"}));
    let created = org.get(&format!("sobjects/Account/{id}")).body["CreatedDate"].as_str().unwrap().to_string();
    assert_eq!(created, c.body["now"].as_str().unwrap()[..10].to_string() + &created[10..]);
    assert_eq!(org.admin("POST", "clock", json!({})).status, 400);
}

#[test]
fn drop_fault_closes_the_connection() {
    let org = Org::start();
    let r = org.admin("POST", "faults", json!({"kind": "drop", "count": 1, "path_prefix": "/services/data/v62.0/limits"}));
    assert_eq!(r.status, 201, "{:?}", r.body);
    // Raw HTTP: the server closes the socket without writing a byte.
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(org.server.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    write!(s, "GET /services/data/v62.0/limits HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n", org.token).unwrap();
    let mut buf = vec![];
    let n = s.read_to_end(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "no response: {:?}", String::from_utf8_lossy(&buf));
    // count 1: the next call is served; the fault is gone.
    assert_eq!(org.get("limits").status, 200);
    assert_eq!(org.admin("GET", "faults", serde_json::Value::Null).body, json!([]));

    // rate 0.5: some calls fail at the transport level, the others succeed.
    org.admin("POST", "faults", json!({"kind": "drop", "rate": 0.5, "path_prefix": "/services/data/v62.0/sobjects"}));
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let (mut ok, mut failed) = (0, 0);
    for _ in 0..40 {
        match agent.get(org.url("sobjects")).header("Authorization", format!("Bearer {}", org.token)).call() {
            Ok(r) if r.status() == 200 => ok += 1,
            Ok(r) => panic!("unexpected status {}", r.status()),
            Err(_) => failed += 1,
        }
    }
    assert!(ok > 0 && failed > 0, "ok {ok}, failed {failed}");
    let hits = org.admin("GET", "faults", serde_json::Value::Null).body[0]["hits"].as_u64().unwrap();
    assert_eq!(hits, failed);
}
