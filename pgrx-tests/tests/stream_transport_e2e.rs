//! End to end: each connection's change stream transport (`sfsync.set_change_stream`).
//! `auto` falls back to CometD when the Pub/Sub API can't be reached and changes still
//! stream in; `pubsub` alone does not fall back (the stream is down and says why); the
//! status says which transport is live. Timed polls are an hour apart: only the stream can
//! bring a change in time.

mod common;

use common::accounts_table;
use sfsync_e2e::{json, scalar, DbExt};

const STREAM_ONLY: &[(&str, &str)] = &[("sfsync.pull_interval", "1h"), ("sfsync.cdc_safety_interval", "1h")];

/// `http://127.0.0.1:PORT` of a port nothing listens on.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}")
}

#[test]
fn auto_falls_back_to_cometd_when_the_pubsub_port_is_closed() {
    let env = common::start_with(STREAM_ONLY);
    let mut db = env.db();
    let closed = closed_port();
    // A new connection's choice (`default`'s is `pubsub` under SFSYNC_E2E_STREAM=pubsub).
    db.batch_execute(&env.emu.connect_sql("second")).unwrap();
    let transport: String = scalar(&mut db, "SELECT stream FROM sfsync.connections WHERE name = 'second'");
    assert_eq!(transport, "auto", "the default of every connection");
    db.batch_execute(&format!("SELECT sfsync.set_change_stream('default', 'auto', pubsub_endpoint => '{closed}')")).unwrap();
    accounts_table(&mut db);
    env.worker_pid();
    db.until_true(
        "stream live over CometD",
        "SELECT bool_and(change_stream = 'live' AND change_stream_transport = 'cometd') FROM sfsync.status",
    );
    // Past the catch-up poll of the subscription: only the stream brings this one in.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let id = env.emu.sf().create("Account", json!({"Name": "Fell back"}));
    db.until_true("created over CometD", &format!("SELECT EXISTS (SELECT 1 FROM accounts WHERE sfid = '{id}')"));

    // Pub/Sub only: no fallback, the stream is down and says why; the tables poll meanwhile.
    db.batch_execute(&format!("SELECT sfsync.set_change_stream('default', 'pubsub', pubsub_endpoint => '{closed}')")).unwrap();
    db.until_true("down without a fallback", "SELECT bool_and(change_stream LIKE 'down:%Pub/Sub API%') FROM sfsync.status");
    let transport: Option<String> = scalar(&mut db, "SELECT change_stream_transport FROM sfsync.status");
    assert_eq!(transport, None, "no transport is live");

    // CometD only.
    db.batch_execute("SELECT sfsync.set_change_stream('default', 'cometd')").unwrap();
    db.until_true(
        "live over CometD again",
        "SELECT bool_and(change_stream = 'live' AND change_stream_transport = 'cometd') FROM sfsync.status",
    );

    let err = db.batch_execute("SELECT sfsync.set_change_stream('default', 'pigeon')").unwrap_err();
    assert!(format!("{err:?}").contains("use auto, pubsub or cometd"), "{err:?}");
    let err = db.batch_execute("SELECT sfsync.set_change_stream('nope', 'auto')").unwrap_err();
    assert!(format!("{err:?}").contains("does not exist; add it with sfsync.add_connection"), "{err:?}");
    let err = db.batch_execute("SELECT sfsync.set_change_stream('default', 'auto', pubsub_endpoint => 'api.example:7443')").unwrap_err();
    assert!(format!("{err:?}").contains("https://host:port"), "{err:?}");
}

#[test]
fn changes_stream_over_the_pubsub_api_and_catch_up_after_a_restart() {
    let env = common::start_with(STREAM_ONLY);
    let mut db = env.db();
    let addr = env.emu.pubsub_addr().expect("the emulator's Pub/Sub listener").to_string();
    db.batch_execute(&format!("SELECT sfsync.set_change_stream('default', 'auto', pubsub_endpoint => 'http://{addr}')")).unwrap();
    accounts_table(&mut db);
    env.worker_pid();
    db.until_true(
        "stream live over Pub/Sub",
        "SELECT bool_and(change_stream = 'live' AND change_stream_transport = 'pubsub') FROM sfsync.status",
    );
    std::thread::sleep(std::time::Duration::from_secs(2));
    let id = env.emu.sf().create("Account", json!({"Name": "Over gRPC", "Industry": "Energy"}));
    db.until_true("created over Pub/Sub", &format!("SELECT EXISTS (SELECT 1 FROM accounts WHERE sfid = '{id}')"));
    env.emu.sf().update("Account", &id, json!({"Industry": "Banking"}));
    db.until_true("updated over Pub/Sub", &format!("SELECT industry = 'Banking' FROM accounts WHERE sfid = '{id}'"));
    db.until_true(
        "its position kept apart from CometD's",
        "SELECT EXISTS (SELECT 1 FROM sfsync.cdc_state WHERE channel = 'pubsub:/data/AccountChangeEvent')",
    );

    // The worker is killed; a change made meanwhile arrives after the restart (the stream
    // resumes after its stored replay id, and the tables are polled once on subscribing:
    // salesforce/tests/pubsub.rs shows the replay alone loses nothing).
    db.batch_execute("SELECT pg_terminate_backend(sfsync.worker_pid())").unwrap();
    env.emu.sf().update("Account", &id, json!({"Industry": "Media"}));
    env.worker_pid();
    db.until_true("caught up after the restart", &format!("SELECT industry = 'Media' FROM accounts WHERE sfid = '{id}'"));
}
