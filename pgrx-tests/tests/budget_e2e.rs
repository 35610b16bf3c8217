//! End to end: a connection keeps within its share of the org's daily API allocation,
//! says so in sfsync.status, and loses nothing meanwhile.

mod common;

use common::accounts_table;
use sfsync_e2e::{json, scalar, DbExt};
use std::time::Duration;

#[test]
fn the_api_budget_pauses_the_connection_and_says_so() {
    // Without the change stream the worker polls every 300 ms, which spends the budget.
    let env = common::start_with(&[("sfsync.cdc", "off")]);
    let mut db = env.db();
    accounts_table(&mut db);
    env.worker_pid();
    // 960 requests a day at the default 50% share: 20 an hour, then one every 3 minutes.
    env.emu.admin("POST", "limits", json!({"daily_api_limit": 960, "api_usage": 0}));
    db.until_value("SELECT state FROM sfsync.status", "paused: API budget".to_string());
    db.until_count("SELECT count(*) FROM sfsync.alerts WHERE kind = 'budget_paused' AND connection = 'default'", 1);
    // Paused the moment the bucket ran dry, one call refills within 3 minutes; once the polls
    // have spent that one too, the next is minutes away and the change below must wait.
    db.until_true(
        "the budget's next call minutes away",
        "SELECT coalesce(substring(last_error from 'next request allowed in ([0-9]+)s')::int >= 60, false) FROM sfsync.status",
    );
    let before = env.emu.api_calls();
    db.batch_execute("INSERT INTO accounts (name) VALUES ('Waits for budget')").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(env.emu.api_calls() - before <= 1, "calls went on past the budget");
    let pending: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.outbox WHERE state = 'pending'");
    assert_eq!(pending, 1, "the change waits, it is not dropped or parked");
    let used: i64 = scalar(&mut db, "SELECT api_calls FROM sfsync.status");
    assert!(used >= 18, "API calls are accounted in sfsync.status ({used})");
}

/// What the emulator counted against the org's daily allocation (logins are not counted).
fn org_usage(env: &common::Env) -> u64 {
    env.emu.admin("GET", "counters", json!(null))["api_usage"].as_u64().expect("counters without api_usage")
}

#[test]
fn write_through_backends_of_two_databases_and_their_workers_share_one_budget_per_org() {
    // The workers poll every 300 ms without the change stream: they want the budget too.
    let env = common::start_with(&[("sfsync.cdc", "off")]);
    env.cluster.create_sfsync_database("app2", &env.emu);
    for name in ["app", "app2"] {
        let mut db = env.cluster.connect(name);
        db.batch_execute(
            "CREATE TABLE contacts (id bigint PRIMARY KEY, last_name text NOT NULL);
             SELECT sfsync.sync_table('contacts', 'Contact', mode => 'write_through');
             INSERT INTO contacts VALUES (0, 'First');",
        )
        .unwrap();
        db.until_worker();
    }
    // 1 440 requests a day at the default 50% share: 30 an hour for the whole org, the
    // bucket full now, one more every two minutes.
    const SHARE: u64 = 30;
    env.emu.admin("POST", "limits", json!({"daily_api_limit": 1440, "api_usage": 0}));

    // 8 backends (4 per database), each trying 25 write-through inserts at once.
    let accepted: usize = std::thread::scope(|s| {
        let writers: Vec<_> = (0..8)
            .map(|w| {
                let cluster = &env.cluster;
                s.spawn(move || {
                    let mut db = cluster.connect(if w % 2 == 0 { "app" } else { "app2" });
                    (0..25).filter(|i| db.batch_execute(&format!("INSERT INTO contacts VALUES ({}, 'W')", 1 + w * 100 + i)).is_ok()).count()
                })
            })
            .collect();
        writers.into_iter().map(|h| h.join().expect("a writer panicked")).sum()
    });
    let used = org_usage(&env);
    // Tolerance: the first calls after the allocation dropped are paced at the old one
    // until a response tells the org's budget the new figure (one per process, 10 here).
    assert!(used <= SHARE + 10, "the org's budget is {SHARE} calls now, but {used} were made ({accepted} inserts accepted)");
    assert!(accepted >= 10, "the budget is spent on the writes, not refused altogether ({accepted} accepted)");

    // Both databases show the same budget: one per org, its calls spent.
    let mut a = env.db();
    let mut b = env.cluster.connect("app2");
    let scope: String = scalar(&mut a, "SELECT api_budget_scope FROM sfsync.status");
    assert_eq!(scope, "org");
    let left_a: i64 = scalar(&mut a, "SELECT api_budget_left FROM sfsync.status");
    let left_b: i64 = scalar(&mut b, "SELECT api_budget_left FROM sfsync.status");
    assert_eq!((left_a, left_b), (0, 0), "one bucket for the org, empty after the writes");
}
