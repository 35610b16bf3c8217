//! Shared setup of the end-to-end tests: an emulator, a cluster with sfsync preloaded and
//! fast intervals, a database `app` with the extension and a `default` connection.

#![allow(dead_code)]

use sfsync_e2e::{postgres, Cluster, ClusterOpts, DbExt, Emulator, Value};

pub struct Env {
    pub emu: Emulator,
    pub cluster: Cluster,
}

pub fn start() -> Env {
    start_with(&[])
}

/// `start` with extra settings (later ones win).
pub fn start_with(gucs: &[(&str, &str)]) -> Env {
    start_full(&[], gucs)
}

/// `start_with`, the emulator started with extra arguments (e.g. `--schema FILE`).
pub fn start_full(emulator_args: &[&str], gucs: &[(&str, &str)]) -> Env {
    let emu = Emulator::start_with_args(emulator_args);
    let mut opts = ClusterOpts::new()
        .preload(true)
        .guc("sfsync.poll_interval", "200ms")
        .guc("sfsync.pull_interval", "300ms")
        .guc("sfsync.launcher_interval", "500ms")
        .guc("sfsync.restart_delay", "200ms")
        .guc("sfsync.http_timeout", "3s");
    for (k, v) in gucs {
        opts = opts.guc(*k, *v);
    }
    let cluster = Cluster::start(opts);
    // The database does not exist when the server starts: the launcher must cope.
    cluster.create_sfsync_database("app", &emu);
    if sfsync_e2e::stream_transport() == "pubsub" {
        // SFSYNC_E2E_STREAM=pubsub: the same tests over the Pub/Sub API (no CometD fallback).
        let addr = emu.pubsub_addr().expect("the emulator's Pub/Sub listener").to_string();
        cluster
            .connect("app")
            .batch_execute(&format!("SELECT sfsync.set_change_stream('default', 'pubsub', pubsub_endpoint => 'http://{addr}')"))
            .unwrap();
    }
    Env { emu, cluster }
}

impl Env {
    pub fn db(&self) -> postgres::Client {
        self.cluster.connect("app")
    }

    /// The worker of `app` is up (it appears in sfsync.worker_pid()).
    pub fn worker_pid(&self) -> i32 {
        self.db().until_worker()
    }

    pub fn sf_query(&self, soql: &str) -> Vec<Value> {
        self.emu.sf().query(soql)
    }

    /// Writes (POST/PATCH/DELETE) the emulator has served so far, by its counters.
    pub fn sf_writes(&self) -> u64 {
        self.emu.write_calls()
    }
}

pub fn accounts_table(db: &mut postgres::Client) {
    db.batch_execute(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL, industry text,
                                annual_revenue numeric, website text);
         SELECT sfsync.sync_table('accounts', 'Account',
             fields => '{\"name\":\"Name\",\"industry\":\"Industry\",\"annual_revenue\":\"AnnualRevenue\",\"website\":\"Website\"}');",
    )
    .unwrap();
}

pub fn contacts_table(db: &mut postgres::Client) {
    db.batch_execute(
        "CREATE TABLE contacts (id bigserial PRIMARY KEY, first_name text, last_name text NOT NULL, email text);
         SELECT sfsync.sync_table('contacts', 'Contact');",
    )
    .unwrap();
}

/// The path prefix of the change stream's requests, for an injected fault: CometD's HTTP
/// endpoint, or the Pub/Sub API's gRPC service (every RPC of it).
pub fn stream_fault_prefix() -> &'static str {
    match sfsync_e2e::stream_transport() {
        "pubsub" => "/eventbus.v1.PubSub/",
        _ => "/cometd",
    }
}

/// sync::PASS_LOCK: held by the worker during a pass.
pub const PASS_LOCK: i64 = 0x5f5f_5359_4e43;

/// Stops the worker: disabled, and the pass lock held by the returned session (taking it
/// waits for a pass in progress), so nothing syncs until `resume`.
pub fn pause(env: &Env) -> postgres::Client {
    env.db().set_system(&[("sfsync.enabled", "off")]);
    let mut lock = env.db();
    lock.execute("SELECT pg_advisory_lock($1)", &[&PASS_LOCK]).unwrap();
    lock
}

pub fn resume(env: &Env, mut lock: postgres::Client) {
    lock.execute("SELECT pg_advisory_unlock($1)", &[&PASS_LOCK]).unwrap();
    env.db().set_system(&[("sfsync.enabled", "DEFAULT")]);
}

/// Stops the worker for good: disabled, after the pass in progress (if any) is over.
pub fn stop_worker(env: &Env) {
    let mut lock = pause(env);
    lock.execute("SELECT pg_advisory_unlock($1)", &[&PASS_LOCK]).unwrap();
}

/// SQLSTATE and message of the error `sql` fails with (a panic if it succeeds).
pub fn error_of(db: &mut postgres::Client, sql: &str) -> (String, String) {
    let e = db.batch_execute(sql).expect_err(sql);
    let d = e.as_db_error().unwrap_or_else(|| panic!("{sql}: not a database error: {e}"));
    (d.code().code().to_string(), d.message().to_string())
}

/// `error_of` as one line: `<SQLSTATE>: <message>`.
pub fn error_line(db: &mut postgres::Client, sql: &str) -> String {
    let (code, message) = error_of(db, sql);
    format!("{code}: {message}")
}

/// A session listening on the alerts channel (`LISTEN sfsync_alerts`).
pub fn alert_listener(env: &Env) -> postgres::Client {
    let mut listener = env.db();
    listener.batch_execute("LISTEN sfsync_alerts").unwrap();
    listener
}

/// The next notification on the channel the listener listens to, as JSON.
pub fn next_alert(listener: &mut postgres::Client) -> Value {
    use postgres::fallible_iterator::FallibleIterator;
    let n = sfsync_e2e::until("a NOTIFY on sfsync_alerts", sfsync_e2e::WAIT, || {
        listener.notifications().timeout_iter(std::time::Duration::from_millis(200)).next().unwrap()
    });
    assert_eq!(n.channel(), "sfsync_alerts");
    sfsync_e2e::serde_json::from_str(n.payload()).unwrap_or_else(|e| panic!("payload is JSON: {e}: {}", n.payload()))
}

/// Waits until the emulator has served no query for a while (the catch-up poll after the
/// change stream subscribed is over) and returns the count.
pub fn queries_settled(env: &Env) -> u64 {
    sfsync_e2e::until("no more queries for 1.5 s", sfsync_e2e::WAIT, || {
        let before = env.emu.query_calls();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let after = env.emu.query_calls();
        (before == after).then_some(after).ok_or(format!("{before} -> {after} query calls"))
    })
}
