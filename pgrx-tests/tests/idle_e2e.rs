//! End to end: what idle tables cost. A connection's due polls go out together (one
//! Composite request per 5 tables, one API call), and with `sfsync.cdc_safety_interval = 0`
//! a stream that stays live costs no poll at all, while a break in it still makes one.

mod common;

use common::{accounts_table, contacts_table};
use sfsync_e2e::{json, DbExt, Value};
use std::time::Duration;

/// (composite calls, other query calls) the emulator served so far.
fn polls(env: &common::Env) -> (u64, u64) {
    let c = env.emu.admin("GET", "counters", Value::Null);
    let by = c["by_endpoint"].as_object().cloned().unwrap_or_default();
    let sum = |f: &dyn Fn(&str) -> bool| by.iter().filter(|(k, _)| f(k)).map(|(_, v)| v.as_u64().unwrap_or(0)).sum();
    (sum(&|k| k == "POST /composite"), sum(&|k| k.to_ascii_lowercase().contains("query")))
}

#[test]
fn the_polls_of_a_connections_tables_share_one_call() {
    let env = common::start_with(&[("sfsync.cdc", "off"), ("sfsync.pull_interval", "500ms")]);
    let mut db = env.db();
    accounts_table(&mut db);
    contacts_table(&mut db);
    db.batch_execute(
        "CREATE TABLE leads (id bigserial PRIMARY KEY, last_name text NOT NULL, company text NOT NULL);
         SELECT sfsync.sync_table('leads', 'Lead');",
    )
    .unwrap();
    env.worker_pid();
    db.until_true("every table polled once", "SELECT bool_and(last_pull_at IS NOT NULL) FROM sfsync.status");
    // A backfill sets last_pull_at too, and one that ends after the others' may make its
    // table's first poll a lone query before the schedules fall in step (a due poll takes
    // along the others due within half the interval). Two composite requests begun after
    // every backfill ended: the schedules are in step.
    let start = polls(&env).0;
    sfsync_e2e::until("the polls in step", Duration::from_secs(30), || {
        let now = polls(&env).0;
        (now >= start + 2).then_some(()).ok_or(format!("{now} composite calls"))
    });
    let (composite0, queries0) = polls(&env);
    std::thread::sleep(Duration::from_secs(3));
    let (composite, queries) = polls(&env);
    assert!(composite > composite0, "the timed polls went out as composite requests: {}", env.emu.admin("GET", "counters", Value::Null));
    assert_eq!(queries, queries0, "and not one query call per table");

    // What a shared poll reads is applied to each table.
    let sf = env.emu.sf();
    let a = sf.create("Account", json!({"Name": "Polled together"}));
    let c = sf.create("Contact", json!({"LastName": "Together"}));
    db.until_true("the account", &format!("SELECT EXISTS (SELECT 1 FROM accounts WHERE sfid = '{a}')"));
    db.until_true("the contact", &format!("SELECT EXISTS (SELECT 1 FROM contacts WHERE sfid = '{c}')"));
    let leads: i64 = db.query_one("SELECT count(*) FROM leads", &[]).unwrap().get(0);
    assert_eq!(leads, 0);
}

#[test]
fn a_trusted_live_stream_costs_no_poll_and_a_break_still_makes_one() {
    let env = common::start_with(&[("sfsync.cdc_safety_interval", "0"), ("sfsync.pull_interval", "300ms")]);
    let mut db = env.db();
    accounts_table(&mut db);
    env.worker_pid();
    db.until_true("stream live", "SELECT bool_and(change_stream = 'live') FROM sfsync.status");
    // The subscription's catch-up poll, then nothing while the stream stays up.
    std::thread::sleep(Duration::from_secs(2));
    let before = env.emu.query_calls();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(env.emu.query_calls(), before, "no poll at ten times the pull interval");
    let id = env.emu.sf().create("Account", json!({"Name": "Streamed"}));
    db.until_true("streamed in", &format!("SELECT EXISTS (SELECT 1 FROM accounts WHERE sfid = '{id}')"));
    assert_eq!(env.emu.query_calls(), before, "the stream brought it, no query");

    // A break: the stream goes down (refused, every subscription ended) and comes back; what
    // it may have missed meanwhile is polled.
    env.emu.add_fault(json!({"kind": "status", "status": 503, "path_prefix": common::stream_fault_prefix()}));
    env.emu.admin("POST", "cdc/drop", Value::Null);
    db.until_true("stream shown down", "SELECT bool_and(change_stream LIKE 'down: %') FROM sfsync.status");
    env.emu.clear_faults();
    db.until_true("stream live again", "SELECT bool_and(change_stream = 'live') FROM sfsync.status");
    sfsync_e2e::until("a catch-up poll", Duration::from_secs(30), || {
        let now = env.emu.query_calls();
        (now > before).then_some(()).ok_or(format!("{now} query calls: {}", env.emu.admin("GET", "counters", Value::Null)))
    });
}
