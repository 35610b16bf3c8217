//! End to end: write-through under real traffic — short-lived connections (one per
//! statement, as behind a pooler), several at once, the change stream live. Every statement
//! succeeds (its own echo never inserts the row first), a fresh backend makes one API call
//! (the session is shared, not logged in again), and a transaction that rolls back after
//! Salesforce accepted its change ends with both sides equal to what Postgres committed.

mod common;

use common::Env;
use sfsync_e2e::{json, postgres, scalar, until, DbExt, Value, WAIT};
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
        // Write-through calls are direct (a record each); a POST /composite is the worker's
        // (its polls, or the async pushes of several tables), not a statement's.
        } else if (k.starts_with("POST") || k.starts_with("PATCH") || k.starts_with("DELETE"))
            && !k.contains("cometd")
            && k != "POST /composite"
        {
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

/// What one session does: statement `i` of session `s` on keys of its own.
fn statement(s: i64, i: i64, alive: &mut Vec<i64>, next: &mut i64) -> String {
    match (i % 5, alive.len()) {
        (3, n) if n > 0 => {
            let k = alive[(i as usize * 7) % n];
            format!("UPDATE contacts SET email = 'u{i}@example.com', first_name = 'F{i}' WHERE id = {k}")
        }
        (4, n) if n > 1 => {
            let k = alive.remove((i as usize * 3) % n);
            format!("DELETE FROM contacts WHERE id = {k}")
        }
        _ => {
            let k = s * 100_000 + *next;
            *next += 1;
            alive.push(k);
            format!("INSERT INTO contacts (id, first_name, last_name, email) VALUES ({k}, 'S{s}', 'Row {k}', 'r{k}@example.com')")
        }
    }
}

#[test]
fn eight_short_lived_sessions_never_fail_on_their_own_echo() {
    const SESSIONS: i64 = 8;
    const STATEMENTS: i64 = 200;
    let env = common::start();
    env.db().batch_execute(TABLE).unwrap();
    live(&env);
    // Every backend below is fresh; the first login happens here.
    env.cluster.connect("app").batch_execute("INSERT INTO contacts VALUES (1, 'Ada', 'Lovelace')").unwrap();
    let before = calls(&env);
    let results: Vec<(Vec<String>, Vec<i64>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (1..=SESSIONS)
            .map(|s| {
                let cluster = &env.cluster;
                scope.spawn(move || {
                    let (mut failed, mut alive, mut next) = (Vec::new(), Vec::new(), 0);
                    for i in 0..STATEMENTS {
                        let sql = statement(s, i, &mut alive, &mut next);
                        if let Err(e) = cluster.connect("app").batch_execute(&sql) {
                            failed.push(format!("{sql}: {}", e.as_db_error().map_or(e.to_string(), |d| d.message().to_string())));
                        }
                    }
                    (failed, alive)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let after = calls(&env);
    let failed: Vec<&String> = results.iter().flat_map(|(f, _)| f).collect();
    assert!(failed.is_empty(), "{} statements failed, e.g. {:?}", failed.len(), &failed[..failed.len().min(5)]);

    let statements = (SESSIONS * STATEMENTS) as u64;
    let made = (after.logins - before.logins) + (after.versions - before.versions) + (after.writes - before.writes);
    println!("{statements} write-through statements on fresh connections made {made} calls ({before:?} -> {after:?})");
    assert!(made as f64 <= 1.05 * statements as f64, "{made} calls for {statements} statements");

    // Rows = records, each record once, and the worker's echoes changed nothing.
    let mut db = env.db();
    let expected: i64 = 1 + results.iter().map(|(_, a)| a.len() as i64).sum::<i64>();
    let ns = ext(&mut db, 0);
    let prefix = ns.trim_end_matches('0');
    let sf = env.emu.sf();
    until("Salesforce holds exactly the committed rows", WAIT, || {
        let rows: i64 = scalar(&mut db, "SELECT count(*) FROM contacts");
        let recs = sf.query(&format!("SELECT Id, Postgres_Id__c FROM Contact WHERE Postgres_Id__c LIKE '{prefix}%'"));
        let mut keys: Vec<&str> = recs.iter().filter_map(|r| r["Postgres_Id__c"].as_str()).collect();
        keys.sort();
        keys.dedup();
        (rows == expected && recs.len() as i64 == expected && keys.len() == recs.len()).then_some(()).ok_or(format!(
            "{rows} rows, {} records ({} keys), {expected} expected",
            recs.len(),
            keys.len()
        ))
    });
    for (_, alive) in &results {
        for k in alive.iter().step_by(17) {
            let n: i64 = scalar(&mut db, &format!("SELECT count(*) FROM contacts WHERE id = {k} AND sfid IS NOT NULL"));
            assert_eq!(n, 1, "row {k} is there, linked");
        }
    }
    let v: Value = serde_json::from_str(&scalar::<String>(&mut db, "SELECT (sfsync.verify('contacts', sample => 5000))::text")).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.errors"), 0, "no apply failed");
}

/// The record carrying `key`'s external id: (Id, Email, LastName), if there is one.
fn record(env: &Env, db: &mut postgres::Client, key: i64) -> Option<(String, Option<String>, String)> {
    let ext = ext(db, key);
    env.emu.sf().query(&format!("SELECT Id, Email, LastName FROM Contact WHERE Postgres_Id__c = '{ext}'")).first().map(|r| {
        (r["Id"].as_str().unwrap().to_string(), r["Email"].as_str().map(String::from), r["LastName"].as_str().unwrap().to_string())
    })
}

#[test]
fn a_rollback_after_salesforce_accepted_ends_with_what_postgres_committed() {
    let env = common::start();
    let mut db = env.db();
    db.batch_execute(TABLE).unwrap();
    live(&env);
    db.batch_execute("INSERT INTO contacts VALUES (1, 'Ada', 'Lovelace', 'ada@example.com'), (2, 'Grace', 'Hopper', 'grace@example.com')")
        .unwrap();

    // Each change is in Salesforce before its transaction ends, then rolled back.
    let mut tx = db.transaction().unwrap();
    tx.batch_execute("INSERT INTO contacts VALUES (3, 'Rolled', 'Back', 'rb@example.com')").unwrap();
    assert!(record(&env, &mut env.db(), 3).is_some(), "the insert reached Salesforce");
    tx.batch_execute("UPDATE contacts SET email = 'changed@example.com' WHERE id = 1").unwrap();
    assert_eq!(record(&env, &mut env.db(), 1).unwrap().1.as_deref(), Some("changed@example.com"));
    tx.batch_execute("DELETE FROM contacts WHERE id = 2").unwrap();
    assert!(record(&env, &mut env.db(), 2).is_none(), "the delete reached Salesforce");
    tx.rollback().unwrap();

    // A savepoint rolled back undoes its own write-through only.
    db.batch_execute(
        "BEGIN; INSERT INTO contacts VALUES (4, 'Kept', 'Row', NULL); SAVEPOINT s;
         INSERT INTO contacts VALUES (5, 'Undone', 'Row', NULL); ROLLBACK TO s; COMMIT;",
    )
    .unwrap();
    // A statement failing after an earlier row of it went through.
    let err = db.batch_execute("INSERT INTO contacts VALUES (6, 'Six', 'Row', NULL), (7, 'Seven', NULL, NULL)");
    assert!(err.is_err(), "NOT NULL fails the statement after row 6 was sent");

    until("Salesforce equals what Postgres committed", WAIT, || {
        let mut db = env.db();
        let r1 = record(&env, &mut db, 1);
        let r2 = record(&env, &mut db, 2);
        let gone: Vec<i64> = [3, 5, 6].into_iter().filter(|k| record(&env, &mut db, *k).is_some()).collect();
        let ok = r1.as_ref().is_some_and(|r| r.1.as_deref() == Some("ada@example.com"))
            && r2.as_ref().is_some_and(|r| r.2 == "Hopper")
            && record(&env, &mut db, 4).is_some()
            && gone.is_empty();
        ok.then_some(()).ok_or(format!("1: {r1:?}, 2: {r2:?}, still in Salesforce: {gone:?}"))
    });
    // The re-created record of row 2 is linked to it; no rolled-back row came back.
    let r2 = record(&env, &mut db, 2).unwrap();
    db.until_value("SELECT sfid::text FROM contacts WHERE id = 2", Some(r2.0.clone()));
    let v: Value = serde_json::from_str(&scalar::<String>(&mut db, "SELECT (sfsync.verify('contacts'))::text")).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    let keys: Vec<i64> = db.query("SELECT id FROM contacts ORDER BY id", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(keys, [1, 2, 4], "what Postgres committed");
    let email: Option<String> = scalar(&mut db, "SELECT email FROM contacts WHERE id = 1");
    assert_eq!(email.as_deref(), Some("ada@example.com"), "the rolled-back update's echo did not land");
}
