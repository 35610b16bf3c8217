//! End to end: an outage, Postgres restarts and crashes lose nothing and duplicate nothing;
//! the worker comes back after being killed.

mod common;

use common::accounts_table;
use sfsync_e2e::{json, scalar, until, DbExt, WAIT};
use std::time::Duration;

/// Every account row reached Salesforce exactly once (one record per Postgres key).
fn assert_exactly_once(env: &common::Env, n: usize) {
    let sf = env.emu.sf();
    until(&format!("{n} accounts in Salesforce"), WAIT, || {
        let recs = sf.query("SELECT Postgres_Id__c FROM Account WHERE Postgres_Id__c != null");
        (recs.len() >= n).then_some(()).ok_or(format!("{} of {n}", recs.len()))
    });
    let recs = sf.query("SELECT Postgres_Id__c FROM Account WHERE Postgres_Id__c != null");
    let mut keys: Vec<String> = recs.iter().map(|r| r["Postgres_Id__c"].as_str().unwrap().to_string()).collect();
    keys.sort();
    let total = keys.len();
    keys.dedup();
    assert_eq!(total, keys.len(), "duplicates in Salesforce");
    assert_eq!(total, n);
}

#[test]
fn changes_made_during_an_outage_arrive_once_after_a_restart() {
    let mut env = common::start();
    let mut db = env.db();
    accounts_table(&mut db);
    env.worker_pid();
    // Salesforce answers nothing but 503 for now.
    env.emu.add_fault(json!({"kind": "status", "status": 503, "path_prefix": "/services/data"}));
    db.batch_execute("INSERT INTO accounts (name) SELECT 'Outage ' || g FROM generate_series(1, 25) g").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let pending: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.outbox WHERE state = 'pending'");
    assert_eq!(pending, 25, "nothing is lost or parked while Salesforce is down");
    let last_error: Option<String> = scalar(&mut db, "SELECT last_error FROM sfsync.status");
    assert!(last_error.is_some(), "the outage is visible in sfsync.status");
    drop(db);
    env.cluster.restart();
    env.emu.clear_faults();
    assert_exactly_once(&env, 25);
    env.db().until_count("SELECT count(*) FROM accounts WHERE sfid IS NULL", 0);
}

#[test]
fn a_crash_mid_push_neither_loses_nor_duplicates() {
    let mut env = common::start();
    let mut db = env.db();
    accounts_table(&mut db);
    env.worker_pid();
    // Slow Salesforce: the push is in flight when Postgres goes down hard.
    env.emu.add_fault(json!({"kind": "latency", "latency_ms": 1500, "path_prefix": "/services/data"}));
    db.batch_execute("INSERT INTO accounts (name) SELECT 'Crash ' || g FROM generate_series(1, 40) g").unwrap();
    db.until_true("a batch claimed", "SELECT count(*) > 0 FROM sfsync.outbox WHERE claimed_until IS NOT NULL");
    drop(db);
    env.cluster.crash();
    std::thread::sleep(Duration::from_millis(1600)); // let the in-flight request land
    env.cluster.start_again();
    env.emu.clear_faults();
    assert_exactly_once(&env, 40);
    env.db().until_outbox_drained();
}

#[test]
fn a_killed_worker_is_restarted_and_sync_goes_on() {
    let env = common::start();
    let mut db = env.db();
    accounts_table(&mut db);
    let first = env.worker_pid();
    env.cluster.signal_backend(first, "TERM");
    let second = db.until_worker_replaced(first);
    assert_ne!(first, second);
    db.batch_execute("INSERT INTO accounts (name) VALUES ('After restart')").unwrap();
    env.emu.sf().until_records("SELECT Id FROM Account WHERE Name = 'After restart'", 1);
}

/// A shutdown can reach the worker at any moment: while it logs in, resolves a host, pushes.
/// It must stop cleanly. A signal handled off the backend's thread aborts the worker, and the
/// postmaster then restarts every backend of the cluster (ureq's resolver thread once took it).
#[test]
fn a_sigterm_at_any_moment_never_takes_the_cluster_down() {
    let env = common::start();
    let mut db = env.db();
    accounts_table(&mut db);
    let mut pid = env.worker_pid();
    for i in 0..20u64 {
        db.batch_execute(&format!("INSERT INTO accounts (name) SELECT 'Term {i}.' || g FROM generate_series(1, 5) g")).unwrap();
        // From just after the new worker started (login, first calls) to the middle of a pass.
        std::thread::sleep(Duration::from_millis(i * 17 % 300));
        env.cluster.signal_backend(pid, "TERM");
        pid = db.until_worker_replaced(pid);
    }
    let log = env.cluster.log_contents();
    assert!(!log.contains("terminating any other active server processes"), "a worker's shutdown crashed the cluster");
    assert!(!log.contains("multiple threads"), "a signal was handled off the worker's thread");
    assert_exactly_once(&env, 100);
}

#[test]
fn killing_the_worker_mid_batch_neither_loses_nor_duplicates() {
    let env = common::start();
    let mut db = env.db();
    accounts_table(&mut db);
    let pid = env.worker_pid();
    env.emu.add_fault(json!({"kind": "latency", "latency_ms": 1500, "path_prefix": "/services/data"}));
    db.batch_execute("INSERT INTO accounts (name) SELECT 'Killed ' || g FROM generate_series(1, 30) g").unwrap();
    db.until_true("a batch claimed", "SELECT count(*) > 0 FROM sfsync.outbox WHERE claimed_until IS NOT NULL");
    drop(db);
    // SIGKILL: Postgres treats it as a crash and restarts every backend; the launcher then
    // starts a new worker, which finds the claimed batch and sends it again.
    env.cluster.signal_backend(pid, "KILL");
    std::thread::sleep(Duration::from_millis(1600));
    env.emu.clear_faults();
    assert_exactly_once(&env, 30);
    let mut db = until("a connection after the crash", WAIT, || env.cluster.try_connect("app"));
    let new_pid = db.until_worker_replaced(pid);
    assert_ne!(new_pid, pid);
    db.until_outbox_drained();
}

#[test]
fn a_hanging_salesforce_times_out_and_nothing_is_lost_or_doubled() {
    let env = common::start();
    let mut db = env.db();
    accounts_table(&mut db);
    env.worker_pid();
    // Requests are held and never answered: every push times out (sfsync.http_timeout = 3s
    // here) after Salesforce may or may not have written the records.
    env.emu.add_fault(json!({"kind": "timeout", "path_prefix": "/services/data"}));
    db.batch_execute("INSERT INTO accounts (name) SELECT 'Hang ' || g FROM generate_series(1, 20) g").unwrap();
    std::thread::sleep(Duration::from_secs(5));
    let pending: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.outbox WHERE state = 'pending'");
    assert_eq!(pending, 20, "timed-out pushes stay pending, not parked");
    env.emu.clear_faults();
    assert_exactly_once(&env, 20);
}

/// DROP DATABASE and CREATE DATABASE … TEMPLATE work without FORCE: the worker leaves the
/// database first. A copy gets a worker of its own; a failed drop gets its worker back.
#[test]
fn the_worker_steps_aside_for_drop_database_and_template_copies() {
    let env = common::start();
    let first = env.worker_pid();
    let mut admin = env.cluster.connect("postgres");
    admin.batch_execute("CREATE DATABASE app_copy TEMPLATE app").unwrap();
    let mut copy = env.cluster.connect("app_copy");
    let copy_worker = copy.until_worker();
    assert_ne!(copy_worker, first);
    let back = env.worker_pid();
    assert_ne!(back, first, "the template's worker was stopped for the copy, then started again");
    drop(copy);

    // A drop that fails for another reason (a user session) gives the database its worker back.
    let blocker = env.db();
    let err = admin.batch_execute("DROP DATABASE app").unwrap_err();
    assert!(err.as_db_error().is_some_and(|e| e.message().contains("being accessed by other users")), "{err}");
    drop(blocker);
    let again = env.worker_pid();
    assert_ne!(again, back);

    admin.batch_execute("DROP DATABASE app").unwrap();
    admin.batch_execute("DROP DATABASE app_copy").unwrap();
    let left: i64 = admin.query_one("SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'sfsync worker%'", &[]).unwrap().get(0);
    assert_eq!(left, 0, "no worker is left behind");
    assert!(!env.cluster.log_contents().contains("stopped unexpectedly"), "stepping aside is not a crash");
}
