//! End to end: Salesforce changes arrive through Change Data Capture long before the next
//! timed poll, and the stream's position is saved for a restart.

mod common;

use common::{accounts_table, scalar, WAIT};
use sfsync_e2e::{eventually, json};

#[test]
fn salesforce_changes_arrive_through_the_change_stream() {
    // Timed polls are an hour apart: only the stream can bring changes in time.
    let env = common::start_with(&[("sfsync.pull_interval", "1h"), ("sfsync.cdc_safety_interval", "1h")]);
    let mut db = env.db();
    accounts_table(&mut db);
    env.worker_pid();
    // Subscribing triggers one catch-up poll; let it pass.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let id = env.emu.sf().create("Account", json!({"Name": "Streamed", "Industry": "Energy"}));
    eventually(WAIT, || {
        let n: i64 = scalar(&mut db, &format!("SELECT count(*) FROM accounts WHERE sfid = '{id}' AND industry = 'Energy'"));
        (n == 1).then_some(()).ok_or("create not streamed".to_string())
    });
    env.emu.sf().update("Account", &id, json!({"Industry": "Banking"}));
    eventually(WAIT, || {
        let n: i64 = scalar(&mut db, &format!("SELECT count(*) FROM accounts WHERE sfid = '{id}' AND industry = 'Banking'"));
        (n == 1).then_some(()).ok_or("update not streamed".to_string())
    });
    env.emu.sf().delete("Account", &id);
    eventually(WAIT, || {
        let n: i64 = scalar(&mut db, &format!("SELECT count(*) FROM accounts WHERE sfid = '{id}'"));
        (n == 0).then_some(()).ok_or("delete not streamed".to_string())
    });
    eventually(WAIT, || {
        let n: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.cdc_state WHERE channel = '/data/AccountChangeEvent' AND replay_id > 0");
        (n == 1).then_some(()).ok_or("replay id not saved".to_string())
    });
}
