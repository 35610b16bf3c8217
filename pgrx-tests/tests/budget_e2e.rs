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
    let before = env.emu.api_calls();
    db.batch_execute("INSERT INTO accounts (name) VALUES ('Waits for budget')").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(env.emu.api_calls() - before <= 1, "calls went on past the budget");
    let pending: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.outbox WHERE state = 'pending'");
    assert_eq!(pending, 1, "the change waits, it is not dropped or parked");
    let used: i64 = scalar(&mut db, "SELECT api_calls FROM sfsync.status");
    assert!(used >= 18, "API calls are accounted in sfsync.status ({used})");
}
