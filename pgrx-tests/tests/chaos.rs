//! The chaos suite: concurrent local clients and Salesforce-side writers on related tables
//! while the worker is killed, Postgres restarts in immediate mode and the org misbehaves;
//! then, once faults stop and the sync settles, both sides are checked against the history
//! of what each side committed. Nothing lost, nothing doubled.
//!
//! A plain `cargo test` runs the short mode (the seeds of past findings and one trial of a
//! fixed seed, 40 operations per client, about a minute); `make chaos SEED=…
//! TRIALS=…` the long one (docs/testing.md). Every run prints its seed; a trial's seed replays it alone
//! (`make chaos SEED=<trial seed> TRIALS=1`): the PRNG decides every client's operations
//! and every fault, only the interleaving varies.

#[path = "chaos/check.rs"]
mod check;
mod common;
#[path = "chaos/workload.rs"]
mod workload;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sfsync_e2e::{json, DbExt, Value};
use workload::{SfWrites, Target};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.trim().parse().unwrap_or_else(|_| panic!("{name}={s}: not a number")))
}

/// Seeds found a defect with; the short mode replays them first (regressions): a lost
/// last name (20538372), and trials that did not settle while one REQUEST_LIMIT_EXCEEDED
/// paused the org's budget for five minutes (the others). docs/testing.md.
const REGRESSION_SEEDS: &[u64] = &[20538372, 20292883, 20435425, 20467101, 20475020];
/// The short mode's own trial.
const SHORT_SEED: u64 = 1001;

#[derive(Default)]
struct Totals {
    trials: usize,
    ops: i64,
    sf_writes: usize,
    faults: BTreeMap<&'static str, usize>,
    kills: usize,
    restarts: usize,
    lost: usize,
    duplicated: usize,
    lost_deletes: usize,
    unsettled: usize,
    settle: Vec<Duration>,
    first: Option<String>,
}

#[test]
fn chaos() {
    let long = env_u64("CHAOS_TRIALS").is_some();
    // The short mode (part of `make test`) runs a fixed seed: a new seed's finding belongs to
    // `make chaos`, not to whoever runs the tests next.
    let seed = env_u64("CHAOS_SEED").unwrap_or_else(|| {
        if long {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 % 1_000_000_000
        } else {
            SHORT_SEED
        }
    });
    let trials = env_u64("CHAOS_TRIALS").unwrap_or(1) as usize;
    let ops = env_u64("CHAOS_OPS").unwrap_or(40) as usize;
    let clients = env_u64("CHAOS_CLIENTS").unwrap_or(3) as usize;
    println!("chaos: seed {seed}, {trials} trials, {clients} clients x {ops} operations (replay: make chaos SEED={seed} TRIALS={trials})");
    let mut seeds: Vec<u64> = if long || env_u64("CHAOS_SEED").is_some() { vec![] } else { REGRESSION_SEEDS.to_vec() };
    seeds.extend((0..trials as u64).map(|t| seed.wrapping_add(t.wrapping_mul(7919))));
    let mut totals = Totals::default();
    for (i, s) in seeds.iter().enumerate() {
        trial(i, *s, clients, ops, &mut totals);
        // Running totals: a long run stopped early still has its figures.
        println!(
            "chaos: so far {} trials, faults {:?}, {} kills, {} restarts, lost {}, duplicated {}, not settled {}",
            totals.trials, totals.faults, totals.kills, totals.restarts, totals.lost, totals.duplicated, totals.unsettled
        );
    }
    let mut settle = totals.settle.clone();
    settle.sort();
    println!(
        "chaos: {} trials, {} local operations committed, {} Salesforce-side writes; faults {:?}; {} worker kills, {} immediate restarts",
        totals.trials, totals.ops, totals.sf_writes, totals.faults, totals.kills, totals.restarts
    );
    println!(
        "chaos: lost {} / duplicated {} / lost deletes {} / not settled {}; time to settle median {:?}, max {:?}",
        totals.lost,
        totals.duplicated,
        totals.lost_deletes,
        totals.unsettled,
        settle.get(settle.len() / 2).copied().unwrap_or_default(),
        settle.last().copied().unwrap_or_default()
    );
    if let Some(first) = &totals.first {
        panic!("chaos: first counterexample: {first}");
    }
}

/// Found by the suite (lost committed local updates): a poll applied a Salesforce record
/// over a local change committed while the apply ran (here: waiting on the row lock of a
/// local transaction), and the change's push then sent the pulled, older value. The row a
/// writer holds is now deferred to the next poll; the local change wins the push, and the
/// Salesforce change (Industry) still arrives.
#[test]
fn a_pull_never_overwrites_a_local_change_committed_during_it() {
    let env = common::start_with(&[("sfsync.cdc", "off")]);
    let mut db = env.db();
    db.batch_execute(
        "CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL, industry text);
                      SELECT sfsync.sync_table('accounts', 'Account');
                      INSERT INTO accounts VALUES (1, 'v1', NULL);",
    )
    .unwrap();
    env.worker_pid();
    let sf = env.emu.sf();
    let soql = format!("SELECT Id FROM Account WHERE Postgres_Id__c = '{}'", db.external_key("accounts", "1"));
    let id = sf.until_record(&soql)["Id"].as_str().unwrap().to_string();
    db.until_outbox_drained();

    // A local transaction holds the row while Salesforce changes another field.
    let mut writer = env.db();
    writer.batch_execute("BEGIN; UPDATE accounts SET name = 'v2' WHERE id = 1").unwrap();
    sf.update("Account", &id, json!({"Industry": "Energy"}));
    std::thread::sleep(Duration::from_secs(2)); // several polls read the changed record
    writer.batch_execute("COMMIT").unwrap();

    sf.until_field("Account", &id, "Name", "v2");
    db.until_value("SELECT industry FROM accounts WHERE id = 1", Some("Energy".to_string()));
    db.until_outbox_drained();
    let name: String = sfsync_e2e::scalar(&mut db, "SELECT name FROM accounts WHERE id = 1");
    assert_eq!(name, "v2", "the committed local change is the last word on Name");
    assert_eq!(sf.get("Account", &id).unwrap()["Name"], "v2");
}

/// Found by the suite (a contact's committed re-parent lost on both sides): a record
/// re-inserted under its key (one transaction: DELETE, INSERT) has no previous values in
/// the outbox, and the lookup we had sent was kept as the parent's Salesforce Id while the
/// pulled record holds it as our parent's key, so the echo of our own push looked like
/// Salesforce's change; salesforce_wins then took it over the re-parent.
#[test]
fn a_reparented_churned_row_keeps_its_new_parent_when_salesforce_changes_the_record() {
    let env = common::start_with(&[("sfsync.cdc", "off")]);
    let mut db = env.db();
    db.batch_execute(
        "CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL);
         CREATE TABLE contacts (id bigint PRIMARY KEY, last_name text NOT NULL, email text,
                                account_id bigint REFERENCES accounts (id));
         SELECT sfsync.sync_table('accounts', 'Account');
         SELECT sfsync.sync_table('contacts', 'Contact');
         INSERT INTO accounts VALUES (1, 'Old'), (2, 'New');
         INSERT INTO contacts VALUES (10, 'Doe', 'a@x.test', 1);",
    )
    .unwrap();
    env.worker_pid();
    let sf = env.emu.sf();
    let key = db.external_key("contacts", "10");
    let contact = sf.until_record(&format!("SELECT Id FROM Contact WHERE Postgres_Id__c = '{key}'"))["Id"].as_str().unwrap().to_string();
    let new_parent = sf.until_record(&format!("SELECT Id FROM Account WHERE Postgres_Id__c = '{}'", db.external_key("accounts", "2")));
    db.until_outbox_drained();

    let lock = common::pause(&env);
    db.batch_execute("BEGIN; DELETE FROM contacts WHERE id = 10; INSERT INTO contacts VALUES (10, 'Doe', 'a@x.test', 2); COMMIT;").unwrap();
    sf.update("Contact", &contact, json!({"Email": "sf@x.test"}));
    // The first writes fail (retried after a backoff): the pull meets the pending change.
    env.emu.add_fault(json!({"kind": "lock", "count": 3}));
    common::resume(&env, lock);

    sf.until_field("Contact", &contact, "AccountId", new_parent["Id"].clone());
    db.until_value("SELECT email FROM contacts WHERE id = 10", Some("sf@x.test".to_string()));
    db.until_outbox_drained();
    let parent: i64 = sfsync_e2e::scalar(&mut db, "SELECT account_id FROM contacts WHERE id = 10");
    assert_eq!(parent, 2, "the committed re-parent stays");
}

fn trial(i: usize, seed: u64, clients: usize, ops: usize, totals: &mut Totals) {
    println!("chaos: trial {i} seed {seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut env = common::start_with(&[
        // The safety-net poll catches what a frozen or dropped change stream missed.
        ("sfsync.cdc_safety_interval", "2s"),
        ("sfsync.http_timeout", "2s"),
    ]);
    let mut db = env.db();
    db.batch_execute(workload::SCHEMA).unwrap();
    // An automation that rewrites a field on Salesforce's side after a save.
    env.emu.admin(
        "POST",
        "automations",
        json!({"object": "Account", "name": "HotEnergy", "when_field": "Industry", "when_value": "Energy", "set_field": "Rating", "value": "Hot"}),
    );
    env.worker_pid();
    drop(db);

    let target = Target { socket_dir: env.cluster.socket_dir().to_path_buf(), port: env.cluster.port() };
    let stop = Arc::new(AtomicBool::new(false));
    let writes: SfWrites = Default::default();
    let handles: Vec<_> = (0..clients)
        .map(|n| {
            let t = target.clone();
            std::thread::spawn(move || workload::client(t, n, seed, ops))
        })
        .collect();
    let writer = {
        let (url, stop, writes) = (env.emu.url().to_string(), Arc::clone(&stop), Arc::clone(&writes));
        std::thread::spawn(move || workload::salesforce_writer(url, seed, stop, writes))
    };

    // Faults at random points until the clients are done.
    let mut frozen = false;
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(rng.u64(700..2500)));
        env.emu.clear_faults();
        if frozen {
            env.emu.admin("POST", "cdc", json!({"object": "Account", "enabled": true}));
            frozen = false;
        }
        let kind = match rng.u32(0..100) {
            0..=14 => "worker kill",
            15..=21 => "immediate restart",
            22..=35 => "5xx 20%",
            36..=45 => "timeout",
            46..=55 => "dropped connection",
            56..=63 => "expired session",
            64..=73 => "UNABLE_TO_LOCK_ROW",
            74..=79 => "REQUEST_LIMIT_EXCEEDED",
            80..=86 => "frozen CDC stream",
            87..=92 => "CometD drop",
            _ => "none",
        };
        if kind == "none" {
            continue;
        }
        *totals.faults.entry(kind).or_default() += 1;
        match kind {
            "worker kill" => {
                let pid = target
                    .connect()
                    .and_then(|mut c| c.query_one("SELECT sfsync.worker_pid()", &[]).ok())
                    .and_then(|r| r.get::<_, Option<i32>>(0));
                if let Some(pid) = pid {
                    env.cluster.kill_backend(pid);
                    totals.kills += 1;
                }
            }
            "immediate restart" => {
                env.cluster.crash();
                std::thread::sleep(Duration::from_millis(rng.u64(0..500)));
                env.cluster.start_again();
                totals.restarts += 1;
            }
            "5xx 20%" => {
                let status = [500, 502, 503][rng.usize(..3)];
                env.emu.add_fault(json!({"kind": "status", "status": status, "rate": 0.2}));
            }
            "timeout" => {
                env.emu.add_fault(json!({"kind": "timeout", "latency_ms": 3000, "rate": 0.2}));
            }
            "dropped connection" => {
                env.emu.add_fault(json!({"kind": "drop", "rate": 0.2}));
            }
            "expired session" => {
                env.emu.add_fault(json!({"kind": "expired_session", "count": 1}));
            }
            "UNABLE_TO_LOCK_ROW" => {
                env.emu.add_fault(json!({"kind": "lock", "rate": 0.3}));
            }
            "REQUEST_LIMIT_EXCEEDED" => {
                env.emu.add_fault(json!({"kind": "status", "status": 403, "count": 1}));
            }
            "frozen CDC stream" => {
                env.emu.admin("POST", "cdc", json!({"object": "Account", "enabled": false}));
                frozen = true;
            }
            _ => {
                env.emu.admin("POST", "cdc/drop", Value::Null);
            }
        }
    }
    for h in handles {
        h.join().expect("a client panicked");
    }
    stop.store(true, Ordering::Relaxed);
    totals.sf_writes += writer.join().expect("the Salesforce-side writer panicked");
    env.emu.clear_faults();
    env.emu.admin("POST", "cdc", json!({"object": "Account", "enabled": true}));
    if !env.cluster.is_running() {
        env.cluster.start_again();
    }

    // Settle: the comparison holds (it re-reads both sides) within a generous bound.
    let quiet = Instant::now();
    let sf = env.emu.sf();
    let mut db = target.reconnect();
    let bound = Duration::from_secs(env_u64("CHAOS_SETTLE_SECS").unwrap_or(120));
    let findings = loop {
        let f = match check::compare(&mut db, &sf, &writes) {
            Ok(f) => f,
            Err(e) => {
                db = target.reconnect();
                check::Findings { unsettled: vec![e], ..Default::default() }
            }
        };
        if f.is_clean() || quiet.elapsed() > bound {
            break f;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let settled = quiet.elapsed();
    let committed: i64 =
        db.query_one("SELECT count(DISTINCT (tbl, pk, field, value)) FROM chaos_history", &[]).map(|r| r.get(0)).unwrap_or(0);
    assert!(committed > 0, "trial {i} seed {seed}: no local transaction committed (the workload is broken)");
    totals.ops += committed;
    totals.trials += 1;
    println!(
        "chaos: trial {i} seed {seed}: {} history rows; settled {} in {settled:?}; lost {}, duplicated {}, lost deletes {}, missing {}, unsettled {}",
        committed,
        if findings.is_clean() { "yes" } else { "NO" },
        findings.lost.len(),
        findings.duplicated.len(),
        findings.lost_deletes.len(),
        findings.missing.len(),
        findings.unsettled.len()
    );
    if findings.is_clean() {
        totals.settle.push(settled);
    } else {
        for kind in [&findings.unsettled, &findings.lost, &findings.duplicated, &findings.lost_deletes, &findings.missing] {
            for line in kind.iter().take(6) {
                println!("chaos:   {line}");
            }
        }
        if findings.unsettled.is_empty() {
            totals.lost += findings.lost.len() + findings.missing.len();
            totals.duplicated += findings.duplicated.len();
            totals.lost_deletes += findings.lost_deletes.len();
        } else {
            // Changes still queued or backing off: what differs may yet arrive, so it is
            // counted as not settled, not as lost.
            totals.unsettled += 1;
        }
        if totals.first.is_none() {
            totals.first = findings.first().map(|f| format!("seed {seed} (trial {i}): {f}"));
        }
        if sfsync_e2e::keep_artifacts() {
            println!("chaos: cluster {} kept", env.cluster.dir().display());
        }
    }
}
