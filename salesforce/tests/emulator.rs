//! Integration tests against a real `sf-emulator` process (started through
//! tests/common: SKIP when the binary is absent unless `SF_REQUIRE_EMULATOR` is set).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{rec, start, Emulator, CLIENT_ID, CLIENT_SECRET, PASSWORD, USERNAME};
use salesforce::{AuthFlow, Client, ClientOptions, DescribeCheck, Error, Record, Secret};
use serde_json::{json, Value};

fn unique(prefix: &str) -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{n}")
}

// ------------------------------------------------------------------ auth

#[test]
fn client_credentials_and_password_login() {
    let Some(emu) = start("client_credentials_and_password_login") else { return };
    let c = emu.client();
    assert!(c.instance_url().starts_with("http://127.0.0.1"), "{}", c.instance_url());
    let v = c.api_version();
    assert!(v.contains('.') && v.split('.').next().unwrap().parse::<u32>().unwrap() >= 40, "version {v}");
    assert!(c.org_id().is_some_and(|o| o.starts_with("00D")), "{:?}", c.org_id());
    assert!(c.user_id().is_some_and(|u| u.starts_with("005")), "{:?}", c.user_id());

    let p = Client::login(emu.creds(AuthFlow::Password), Emulator::opts()).expect("password login");
    p.describe("Account").unwrap();

    // fixed version
    let fixed =
        Client::login(emu.creds(AuthFlow::ClientCredentials), ClientOptions { api_version: Some("v59.0".into()), ..Emulator::opts() })
            .unwrap();
    assert_eq!(fixed.api_version(), "59.0");
    fixed.query("SELECT Id FROM Account LIMIT 1").unwrap();
}

#[test]
fn bad_credentials_are_auth_errors() {
    let Some(emu) = start("bad_credentials_are_auth_errors") else { return };
    let mut c = emu.creds(AuthFlow::Password);
    c.password = Some(Secret::new("wrong-password-value".into()));
    let e = Client::login(c, Emulator::opts()).expect_err("login must fail");
    match &e {
        Error::Auth { error, .. } => assert_eq!(error, "invalid_grant"),
        other => panic!("expected Auth, got {other:?}"),
    }
    assert_eq!(e.code(), "AUTH:invalid_grant");
    assert!(!e.is_transient());
    assert!(!format!("{e} {e:?}").contains("wrong-password-value"));

    let mut c = emu.creds(AuthFlow::ClientCredentials);
    c.client_secret = Some(Secret::new("not-the-secret".into()));
    let e = Client::login(c, Emulator::opts()).expect_err("login must fail");
    assert!(matches!(e, Error::Auth { .. }), "{e:?}");
    assert!(!format!("{e} {e:?}").contains("not-the-secret"));
}

/// The emulator's bundled JWT test key: `SF_EMULATOR_JWT_KEY` or a PEM private
/// key file somewhere under emulator/.
fn jwt_key() -> Option<String> {
    if let Some(p) = std::env::var_os("SF_EMULATOR_JWT_KEY") {
        return std::fs::read_to_string(p).ok();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../emulator");
    // The bundled key by name first: testdata/ also holds the TLS test key.
    if let Ok(s) = std::fs::read_to_string(root.join("testdata/jwt-test-key.pem")) {
        return Some(s);
    }
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "target" && n != ".git") {
                    stack.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "pem" || x == "key") {
                if let Ok(s) = std::fs::read_to_string(&p) {
                    if s.contains("PRIVATE KEY-----") {
                        return Some(s);
                    }
                }
            }
        }
    }
    None
}

#[test]
fn jwt_login() {
    let Some(emu) = start("jwt_login") else { return };
    let Some(key) = jwt_key() else {
        eprintln!("SKIP jwt_login: no bundled JWT private key found under emulator/ (set SF_EMULATOR_JWT_KEY)");
        return;
    };
    let mut c = emu.creds(AuthFlow::Jwt);
    c.private_key = Some(Secret::new(key));
    let client = Client::login(c.clone(), Emulator::opts()).expect("jwt login");
    client.query("SELECT Id FROM Account LIMIT 1").unwrap();

    c.username = Some("nobody@example.invalid".into());
    let e = Client::login(c, Emulator::opts()).expect_err("unknown user must fail");
    assert!(matches!(e, Error::Auth { .. }), "{e:?}");
}

#[test]
fn refresh_token_login() {
    let Some(emu) = start("refresh_token_login") else { return };
    // Get a refresh token the way an admin would (the password grant of the
    // emulator's connected app), then log in with it.
    let mut r = emu
        .http
        .post(format!("{}/services/oauth2/token", emu.url))
        .send_form([
            ("grant_type", "password"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("username", USERNAME),
            ("password", PASSWORD),
        ])
        .unwrap();
    let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    let Some(rt) = v.get("refresh_token").and_then(Value::as_str) else {
        eprintln!("SKIP refresh_token_login: the emulator's token response carries no refresh_token");
        return;
    };
    let mut c = emu.creds(AuthFlow::RefreshToken);
    c.refresh_token = Some(Secret::new(rt.into()));
    let client = Client::login(c.clone(), Emulator::opts()).expect("refresh_token login");
    client.describe("Contact").unwrap();

    c.refresh_token = Some(Secret::new("bogus".into()));
    let e = Client::login(c, Emulator::opts()).expect_err("bad refresh token must fail");
    assert!(matches!(&e, Error::Auth { error, .. } if error == "invalid_grant"), "{e:?}");
}

// -------------------------------------------------------------- describe

#[test]
fn describe_is_cached() {
    let Some(emu) = start("describe_is_cached") else { return };
    let c = emu.client();
    let d = c.describe("Contact").unwrap();
    assert_eq!(d.name, "Contact");
    assert_eq!(d.key_prefix.as_deref(), Some("003"));
    assert!(d.createable && d.queryable);
    let ln = d.field("lastname").expect("LastName");
    assert_eq!(ln.r#type, "string");
    assert!(!ln.nillable);
    let ext = d.field("Postgres_Id__c").expect("Postgres_Id__c");
    assert!(ext.external_id);
    let acc = d.field("AccountId").expect("AccountId");
    assert_eq!(acc.r#type, "reference");
    assert_eq!(acc.reference_to, vec!["Account".to_string()]);

    let calls = c.stats().calls;
    c.describe("contact").unwrap();
    assert_eq!(c.stats().calls, calls, "second describe must come from the cache");
    c.invalidate_describe(Some("Contact"));
    c.describe("Contact").unwrap();
    assert_eq!(c.stats().calls, calls + 1);

    let e = c.describe("NoSuchObject__c").unwrap_err();
    assert!(matches!(&e, Error::Api { status: 404, .. }), "{e:?}");
    assert_eq!(e.code(), "NOT_FOUND");

    let st = c.stats();
    assert!(st.api_max.is_some(), "Sforce-Limit-Info not seen: {st:?}");
}

#[test]
fn describe_if_modified_sees_field_changes() {
    let Some(emu) = start("describe_if_modified_sees_field_changes") else { return };
    let c = emu.client();
    let DescribeCheck::Modified { describe, last_modified: Some(since) } = c.describe_if_modified("Contact", None).unwrap() else {
        panic!("a first check returns the describe and its Last-Modified")
    };
    assert!(describe.field("Score__c").is_none());
    assert!(matches!(c.describe_if_modified("Contact", Some(&since)).unwrap(), DescribeCheck::NotModified));

    let (status, body) = emu.admin_post("/__emulator/fields/Contact", json!({"name": "Score__c", "type": "int"}));
    assert_eq!(status, 201, "{body}");
    let DescribeCheck::Modified { describe, last_modified: Some(newer) } = c.describe_if_modified("Contact", Some(&since)).unwrap() else {
        panic!("a changed object returns its new describe")
    };
    assert_eq!(describe.field("Score__c").unwrap().r#type, "int");
    assert_ne!(newer, since);
    assert!(c.describe("Contact").unwrap().field("Score__c").is_some(), "the cache holds the new describe");
    assert!(matches!(c.describe_if_modified("Contact", Some(&newer)).unwrap(), DescribeCheck::NotModified));
    assert!(c.describe_if_modified("NoSuchObject__c", None).is_err());
}

// ------------------------------------------------------------------ CRUD

#[test]
fn crud_and_upsert() {
    let Some(emu) = start("crud_and_upsert") else { return };
    let c = emu.client();
    let name = unique("Acme");
    let id = c.create("Account", &rec(json!({ "Name": name }))).unwrap();
    assert!(id.starts_with("001") && id.len() == 18, "{id}");

    let got = c.get("Account", &id, Some(&["Id", "Name"])).unwrap();
    assert_eq!(got["Name"], json!(name));
    assert!(got.get("attributes").is_none());

    c.update("Account", &id, &rec(json!({ "Name": "Renamed", "Id": id }))).unwrap();
    assert_eq!(c.get("Account", &id, None).unwrap()["Name"], "Renamed");

    let q = c.query(&format!("SELECT Id, Name FROM Account WHERE Id = {}", salesforce::soql::quote(&id))).unwrap();
    assert_eq!(q.total_size, 1);
    assert!(q.done);

    c.delete("Account", &id).unwrap();
    let e = c.get("Account", &id, None).unwrap_err();
    assert!(matches!(&e, Error::Api { status: 404, .. }), "{e:?}");

    // upsert: created, then updated, with an external id needing encoding
    let ext = format!("{} a/b?c#d%e&f", unique("pg"));
    let r1 = c.upsert("Account", "Postgres_Id__c", &ext, &rec(json!({ "Name": "Up 1" }))).unwrap();
    assert!(r1.created);
    let r2 = c.upsert("Account", "Postgres_Id__c", &ext, &rec(json!({ "Name": "Up 2", "Postgres_Id__c": ext }))).unwrap();
    assert!(!r2.created);
    assert_eq!(r1.id, r2.id);
    let got = c.get("Account", &r1.id, Some(&["Name", "Postgres_Id__c"])).unwrap();
    assert_eq!(got["Name"], "Up 2");
    assert_eq!(got["Postgres_Id__c"], json!(ext));

    // record-level validation on a single create
    let e = c.create("Contact", &rec(json!({ "FirstName": "NoLast" }))).unwrap_err();
    assert_eq!(e.code(), "REQUIRED_FIELD_MISSING", "{e:?}");
    assert!(!e.is_transient());

    // hostile-looking names are rejected before any request
    assert!(matches!(c.get("Account/../x", "1", None), Err(Error::Config(_))));
}

// ----------------------------------------------------------- collections

#[test]
fn collections_partial_failure_and_chunking() {
    let Some(emu) = start("collections_partial_failure_and_chunking") else { return };
    let c = emu.client();
    let tag = unique("coll");

    let contacts = vec![
        rec(json!({ "LastName": "One", "Email": "one@example.com" })),
        rec(json!({ "FirstName": "Missing last name" })),
        rec(json!({ "LastName": "Three" })),
    ];
    let res = c.collections_create("Contact", &contacts).unwrap();
    assert_eq!(res.len(), 3);
    assert!(res[0].success && res[0].id.is_some());
    assert!(!res[1].success);
    assert_eq!(res[1].errors[0].status_code, "REQUIRED_FIELD_MISSING");
    assert!(res[1].errors[0].fields.iter().any(|f| f == "LastName"), "{:?}", res[1].errors);
    assert!(!res[1].errors[0].is_transient());
    assert!(res[2].success);

    // > 200 records: chunked, results in input order
    let calls = c.stats().calls;
    let accounts: Vec<Record> = (0..450).map(|i| rec(json!({ "Name": format!("{tag} {i:03}") }))).collect();
    let res = c.collections_create("Account", &accounts).unwrap();
    assert_eq!(c.stats().calls - calls, 3, "450 records = 3 requests");
    assert_eq!(res.len(), 450);
    assert!(res.iter().all(|r| r.success), "{:?}", res.iter().find(|r| !r.success));
    let ids: Vec<String> = res.iter().map(|r| r.id.clone().unwrap()).collect();
    for i in [0usize, 199, 200, 449] {
        assert_eq!(c.get("Account", &ids[i], Some(&["Name"])).unwrap()["Name"], json!(format!("{tag} {i:03}")));
    }

    let updates: Vec<(String, Record)> =
        ids.iter().enumerate().map(|(i, id)| (id.clone(), rec(json!({ "Name": format!("{tag} upd {i:03}") })))).collect();
    let res = c.collections_update("Account", &updates).unwrap();
    assert_eq!(res.len(), 450);
    assert!(res.iter().all(|r| r.success));
    assert_eq!(c.get("Account", &ids[321], Some(&["Name"])).unwrap()["Name"], json!(format!("{tag} upd 321")));

    // upsert: created then updated
    let ups: Vec<Record> =
        (0..250).map(|i| rec(json!({ "Postgres_Id__c": format!("{tag}-{i}"), "Name": format!("{tag} ups {i}") }))).collect();
    let res = c.collections_upsert("Account", "Postgres_Id__c", &ups).unwrap();
    assert_eq!(res.len(), 250);
    assert!(res.iter().all(|r| r.success && r.created == Some(true)), "{:?}", &res[0]);
    let res2 = c.collections_upsert("Account", "Postgres_Id__c", &ups).unwrap();
    assert!(res2.iter().all(|r| r.success && r.created == Some(false)), "{:?}", &res2[0]);
    assert_eq!(res[17].id, res2[17].id);

    // delete (with one bogus id in the middle)
    let mut del = ids.clone();
    del.insert(5, "001000000000000AAA".into());
    let res = c.collections_delete(&del).unwrap();
    assert_eq!(res.len(), 451);
    assert!(!res[5].success, "{:?}", res[5]);
    assert!(res.iter().enumerate().filter(|(i, _)| *i != 5).all(|(_, r)| r.success));

    assert!(c.collections_create("Account", &[]).unwrap().is_empty());
}

// ----------------------------------------------------------------- query

#[test]
fn query_paging_and_query_all() {
    let Some(emu) = start("query_paging_and_query_all") else { return };
    let c = emu.client();
    let tag = unique("page");
    let accounts: Vec<Record> =
        (0..450).map(|i| rec(json!({ "Name": format!("{tag} {i:03}"), "Postgres_Id__c": format!("{tag}-{i}") }))).collect();
    let res = c.collections_create("Account", &accounts).unwrap();
    assert!(res.iter().all(|r| r.success));

    c.set_query_batch_size(Some(200));
    let soql = format!("SELECT Id, Name FROM Account WHERE Postgres_Id__c LIKE '{}%' ORDER BY Name", salesforce::soql::like_escape(&tag));
    let first = c.query(&soql).unwrap();
    assert_eq!(first.total_size, 450);
    assert!(!first.done, "450 rows with batchSize=200 must be paged");
    assert!(first.records.len() <= 200);
    let more = c.query_more(first.next_records_url.as_deref().unwrap()).unwrap();
    assert!(!more.records.is_empty());

    let calls = c.stats().calls;
    let mut it = c.query_iter(&soql, false);
    let mut names = vec![];
    for r in it.by_ref() {
        names.push(r.unwrap()["Name"].as_str().unwrap().to_string());
    }
    assert_eq!(it.total_size(), Some(450));
    assert_eq!(names.len(), 450);
    assert_eq!(names[0], format!("{tag} 000"));
    assert_eq!(names[449], format!("{tag} 449"));
    assert!(c.stats().calls - calls >= 3, "expected >= 3 pages");

    // queryAll sees deleted rows
    let id = res[0].id.clone().unwrap();
    c.delete("Account", &id).unwrap();
    let q = format!("SELECT Id, IsDeleted FROM Account WHERE Id = {}", salesforce::soql::quote(&id));
    assert_eq!(c.query(&q).unwrap().total_size, 0);
    let all = c.query_all(&q).unwrap();
    assert_eq!(all.total_size, 1);
    assert_eq!(all.records[0]["IsDeleted"], json!(true));
    let via_iter: Vec<_> = c.query_iter(&q, true).collect::<Result<_, _>>().unwrap();
    assert_eq!(via_iter.len(), 1);

    // a malformed query is an API error with its code
    let e = c.query("SELECT FROM").unwrap_err();
    assert_eq!(e.code(), "MALFORMED_QUERY", "{e:?}");
    let mut it = c.query_iter("SELECT FROM", false);
    assert!(it.next().unwrap().is_err());
    assert!(it.next().is_none(), "iterator ends after an error");
}

// ------------------------------------------------------ faults & retries

#[test]
fn server_unavailable_is_retried() {
    let Some(emu) = start("server_unavailable_is_retried") else { return };
    let c = emu.client();
    c.query("SELECT Id FROM Account LIMIT 1").unwrap();

    emu.fault(json!({ "kind": "status", "status": 503, "count": 2 }));
    let calls = c.stats().calls;
    c.query("SELECT Id FROM Account LIMIT 1").expect("retried past two 503s");
    assert_eq!(c.stats().calls - calls, 3);

    // a 503 is "not processed": even a create is retried
    emu.fault(json!({ "kind": "status", "status": 503, "count": 1 }));
    c.create("Account", &rec(json!({ "Name": unique("after503") }))).expect("create retried after 503");

    // more failures than retries: the error comes back, transient
    emu.fault(json!({ "kind": "status", "status": 503, "count": 10 }));
    let opts = ClientOptions { max_retries: 2, ..Emulator::opts() };
    let c2 = Client::login(emu.creds(AuthFlow::ClientCredentials), opts);
    // login itself may eat some of the faults; either way the error is transient
    let e = match c2 {
        Ok(c2) => c2.query("SELECT Id FROM Account LIMIT 1").unwrap_err(),
        Err(e) => e,
    };
    assert!(e.is_transient(), "{e:?}");
    emu.clear_faults();
}

#[test]
fn expired_session_is_refreshed() {
    let Some(emu) = start("expired_session_is_refreshed") else { return };
    let c = emu.client();
    c.query("SELECT Id FROM Account LIMIT 1").unwrap();
    emu.fault(json!({ "kind": "expired_session", "count": 1 }));
    c.query("SELECT Id FROM Account LIMIT 1").expect("re-login is transparent");
    c.create("Account", &rec(json!({ "Name": unique("post-refresh") }))).unwrap();
    emu.clear_faults();
}

#[test]
fn timeouts_are_bounded() {
    let Some(emu) = start("timeouts_are_bounded") else { return };
    let opts = ClientOptions {
        request_timeout: Duration::from_secs(1),
        max_retries: 2,
        max_retry_time: Duration::from_secs(3),
        ..ClientOptions::default()
    };
    let c = Client::login(emu.creds(AuthFlow::ClientCredentials), opts.clone()).unwrap();
    emu.fault(json!({ "kind": "timeout" }));

    let t = Instant::now();
    let e = c.query("SELECT Id FROM Account LIMIT 1").unwrap_err();
    let took = t.elapsed();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert!(e.is_transient());
    // 3 attempts of 1s plus backoff, but never past max_retry_time + one request
    assert!(took < Duration::from_secs(6), "took {took:?}");

    // a create is not resent after a timeout (it may have been processed)
    let calls = c.stats().calls;
    let t = Instant::now();
    let e = c.create("Account", &rec(json!({ "Name": unique("timeout") }))).unwrap_err();
    assert!(matches!(e, Error::Transport(_)), "{e:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "took {:?}", t.elapsed());
    let sent = c.stats().calls - calls;
    assert_eq!(sent, 1, "create must be sent exactly once");
    emu.clear_faults();
    c.query("SELECT Id FROM Account LIMIT 1").expect("works again after clearing faults");
}

#[test]
fn lock_errors_are_per_record_and_transient() {
    let Some(emu) = start("lock_errors_are_per_record_and_transient") else { return };
    let c = emu.client();
    let res = c.collections_create("Account", &[rec(json!({ "Name": unique("l1") })), rec(json!({ "Name": unique("l2") }))]).unwrap();
    let updates: Vec<(String, Record)> = res.iter().map(|r| (r.id.clone().unwrap(), rec(json!({ "Name": unique("locked") })))).collect();
    emu.fault(json!({ "kind": "lock", "count": 1, "method": "PATCH" }));
    let res = c.collections_update("Account", &updates).unwrap();
    assert_eq!(res.len(), 2);
    let failed: Vec<_> = res.iter().filter(|r| !r.success).collect();
    assert!(!failed.is_empty(), "lock fault produced no failure: {res:?}");
    for r in failed {
        assert_eq!(r.errors[0].status_code, "UNABLE_TO_LOCK_ROW");
        assert!(r.is_transient_failure());
    }
    emu.clear_faults();
    assert!(c.collections_update("Account", &updates).unwrap().iter().all(|r| r.success));
}

#[test]
fn request_limit_is_reported_not_hammered() {
    let Some(emu) = start("request_limit_is_reported_not_hammered") else { return };
    let c = emu.client();
    c.query("SELECT Id FROM Account LIMIT 1").unwrap();
    let st = c.stats();
    assert!(st.api_used.is_some() && st.api_max.is_some(), "{st:?}");
    let (status, text) = emu.admin_post("/__emulator/limits", json!({ "daily_api_limit": 100, "api_usage": 100 }));
    assert!(status < 300, "{status} {text}");
    let calls = c.stats().calls;
    let e = c.query("SELECT Id FROM Account LIMIT 1").unwrap_err();
    assert_eq!(e.code(), "REQUEST_LIMIT_EXCEEDED", "{e:?}");
    assert!(e.is_transient());
    assert_eq!(c.stats().calls - calls, 1, "no retry without a short Retry-After");
}

#[test]
fn api_budget_paces_a_connection_to_its_share() {
    let Some(emu) = start("api_budget_paces_a_connection_to_its_share") else { return };
    // 24 000 requests a day at 50%: 500 an hour may burst, then one every 7.2 s.
    let (status, text) = emu.admin_post("/__emulator/limits", json!({ "daily_api_limit": 24000, "api_usage": 0 }));
    assert!(status < 300, "{status} {text}");
    let opts = ClientOptions { api_share: Some(0.5), ..Emulator::opts() };
    let c = Client::login(emu.creds(AuthFlow::ClientCredentials), opts).expect("login");
    let mut sent = 0;
    let err = loop {
        match c.query("SELECT Id FROM Account LIMIT 1") {
            Ok(_) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 2000, "the budget never stopped the client");
    };
    assert_eq!(err.code(), "API_BUDGET", "{err:?}");
    assert!(err.is_transient());
    let wait = err.retry_after().expect("a budget error says how long to wait");
    assert!(wait > Duration::ZERO && wait <= Duration::from_secs(8), "{wait:?}");
    assert!((490..=510).contains(&sent), "one hour's share, got {sent}");
    let calls = c.stats().calls;
    assert!(c.query("SELECT Id FROM Account LIMIT 1").is_err());
    assert_eq!(c.stats().calls, calls, "a call over budget is not sent");
}

#[test]
fn request_limit_exceeded_pauses_the_connection() {
    let Some(emu) = start("request_limit_exceeded_pauses_the_connection") else { return };
    let opts = ClientOptions { api_share: Some(1.0), ..Emulator::opts() };
    let c = Client::login(emu.creds(AuthFlow::ClientCredentials), opts).expect("login");
    c.query("SELECT Id FROM Account LIMIT 1").unwrap();
    let (status, text) = emu.admin_post("/__emulator/limits", json!({ "daily_api_limit": 100000, "api_usage": 100000 }));
    assert!(status < 300, "{status} {text}");
    // The header of the last good response said there was room: this one is sent and refused.
    let e = c.query("SELECT Id FROM Account LIMIT 1").unwrap_err();
    assert_eq!(e.code(), "REQUEST_LIMIT_EXCEEDED", "{e:?}");
    let calls = c.stats().calls;
    let e = c.query("SELECT Id FROM Account LIMIT 1").unwrap_err();
    assert_eq!(e.code(), "API_BUDGET", "{e:?}");
    assert_eq!(c.stats().calls, calls, "no request while paused");
}

#[test]
fn describe_global_lists_the_org_objects() {
    let Some(emu) = start("describe_global_lists_the_org_objects") else { return };
    let g = emu.client().describe_global().unwrap();
    assert_eq!(g.max_batch_size, 200);
    assert_eq!(g.encoding, "UTF-8");
    let account = g.sobjects.iter().find(|o| o.name == "Account").expect("Account listed");
    assert_eq!(account.key_prefix.as_deref(), Some("001"));
    assert!(account.createable && account.queryable);
    for name in ["Contact", "Lead", "Opportunity", "User", "Task", "Campaign", "CampaignMember"] {
        assert!(g.sobjects.iter().any(|o| o.name == name), "{name} missing");
    }
}
