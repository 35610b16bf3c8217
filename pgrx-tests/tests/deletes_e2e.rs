//! End to end: deletes the incremental pull cannot see. A record hard-deleted in Salesforce
//! (gone from queryAll) reaches each on_delete policy through the getDeleted check; a delete
//! check whose window was missed (the recycle bin purged while the worker was stopped) runs a
//! full reconciliation that removes exactly the gone rows, telling a record that left the
//! mapping's filter from a deleted one; sfsync.reconcile() and the API calls it costs.

mod common;

use common::{pause, resume, stop_worker, Env};
use sfsync_e2e::{json, postgres, scalar, serde_json, until, DbExt, Value, WAIT};

const DAY_MS: i64 = 86_400_000;

fn start() -> Env {
    common::start_with(&[("sfsync.delete_check_interval", "1s")])
}

#[test]
fn hard_deletes_arrive_through_get_deleted_per_on_delete_policy() {
    let env = start();
    let sf = env.emu.sf();
    let gone = sf.create("Account", json!({"Name": "Hard Deleted"}));
    let kept = sf.create("Account", json!({"Name": "Kept"}));
    let mut db = env.db();
    for policy in ["propagate", "ignore", "review"] {
        db.batch_execute(&format!(
            "CREATE TABLE acc_{policy} (id bigserial PRIMARY KEY, name text);
             SELECT sfsync.sync_table('acc_{policy}', 'Account', fields => '{{\"name\": \"Name\"}}', direction => 'pull',
                                      on_delete => '{policy}');"
        ))
        .unwrap();
    }
    db.until_count(
        "SELECT (SELECT count(*) FROM acc_propagate) + (SELECT count(*) FROM acc_ignore) + (SELECT count(*) FROM acc_review)",
        6,
    );
    sf.hard_delete("Account", &[&gone]);
    assert!(sf.query_all(&format!("SELECT Id FROM Account WHERE Id = '{gone}'")).is_empty(), "hard-deleted: queryAll no longer sees it");
    // getDeleted takes whole minutes: the deletion is reported once its minute is over.
    env.emu.advance_clock(2 * 60_000);
    until("the hard delete propagated and held for review", WAIT, || {
        let left: i64 = db.query_one("SELECT count(*) FROM acc_propagate WHERE sfid = $1", &[&gone]).unwrap().get(0);
        let held: i64 = db
            .query_one("SELECT count(*) FROM sfsync.delete_review WHERE \"table\" = 'acc_review'::regclass AND sfid = $1 AND origin = 'salesforce'", &[&gone])
            .unwrap()
            .get(0);
        if left == 0 && held == 1 {
            Ok(())
        } else {
            Err(format!("propagate still has it: {left}, review rows: {held}"))
        }
    });
    let count = |db: &mut postgres::Client, t: &str, id: &str| -> i64 {
        db.query_one(&format!("SELECT count(*) FROM {t} WHERE sfid = $1"), &[&id]).unwrap().get(0)
    };
    assert_eq!(count(&mut db, "acc_ignore", &gone), 1, "ignore keeps the row");
    assert_eq!(count(&mut db, "acc_review", &gone), 1, "review keeps the row until approved");
    for t in ["acc_propagate", "acc_ignore", "acc_review"] {
        assert_eq!(count(&mut db, t, &kept), 1, "{t} keeps the other record");
    }
    let row = db
        .query_one(
            "SELECT pending_delete_reviews, last_delete_check IS NOT NULL, last_reconciliation IS NULL FROM sfsync.status WHERE \"table\" = 'acc_review'::regclass",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 1);
    assert!(row.get::<_, bool>(1), "the delete check shows in sfsync.status");
    assert!(row.get::<_, bool>(2), "no reconciliation was needed");
}

#[test]
fn a_missed_window_reconciles_exactly_the_gone_rows_and_respects_the_filter() {
    let env = start();
    let sf = env.emu.sf();
    let deleted = sf.create("Account", json!({"Name": "Deleted", "Industry": "Energy"}));
    let moved = sf.create("Account", json!({"Name": "Moved", "Industry": "Energy"}));
    let stays = sf.create("Account", json!({"Name": "Stays", "Industry": "Energy"}));
    sf.create("Account", json!({"Name": "Other", "Industry": "Banking"}));
    let mut db = env.db();
    db.batch_execute(
        "CREATE TABLE energy (id bigserial PRIMARY KEY, name text, industry text);
         SELECT sfsync.sync_table('energy', 'Account', fields => '{\"name\": \"Name\", \"industry\": \"Industry\"}',
                                  direction => 'pull', filter => 'Industry = ''Energy''', on_delete => 'review');",
    )
    .unwrap();
    until("3 rows loaded and a delete check made", WAIT, || {
        let checked: bool = scalar(&mut db, "SELECT last_delete_check IS NOT NULL FROM sfsync.status");
        let n: i64 = scalar(&mut db, "SELECT count(*) FROM energy");
        if n == 3 && checked {
            Ok(())
        } else {
            Err(format!("{n} rows, checked: {checked}"))
        }
    });
    // The worker is stopped while a record is deleted and the recycle bin is emptied of it
    // (15 days later), and another record leaves the filter.
    let lock = pause(&env);
    sf.delete("Account", &deleted);
    sf.update("Account", &moved, json!({"Industry": "Banking"}));
    env.emu.advance_clock(16 * DAY_MS);
    let sf = env.emu.sf(); // sessions do not live 16 days
    assert!(sf.query_all(&format!("SELECT Id FROM Account WHERE Id = '{deleted}'")).is_empty(), "purged from the recycle bin");
    resume(&env, lock);
    until("a reconciliation that removes the moved row and holds the deleted one", WAIT, || {
        let reconciled: bool = scalar(&mut db, "SELECT last_reconciliation IS NOT NULL FROM sfsync.status");
        let moved_left: i64 = db.query_one("SELECT count(*) FROM energy WHERE sfid = $1", &[&moved]).unwrap().get(0);
        let held: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.delete_review WHERE decided_at IS NULL");
        if reconciled && moved_left == 0 && held == 1 {
            Ok(())
        } else {
            Err(format!("reconciled {reconciled}, moved row {moved_left}, held {held}"))
        }
    });
    let held: String = scalar(&mut db, "SELECT sfid::text FROM sfsync.delete_review WHERE decided_at IS NULL");
    assert_eq!(held, deleted, "only the deleted record waits for review; the one that left the filter is not a delete");
    let rows: Vec<String> = db.query("SELECT sfid::text FROM energy ORDER BY name", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(rows, vec![deleted.clone(), stays.clone()], "review keeps the deleted row; the rest stays");
    // After the reconciliation the next checks go on through getDeleted windows.
    let before: Option<String> = scalar(&mut db, "SELECT last_reconciliation::text FROM sfsync.status");
    let checked: String = scalar(&mut db, "SELECT last_delete_check::text FROM sfsync.status");
    until("a later delete check", WAIT, || {
        let now: String = scalar(&mut db, "SELECT last_delete_check::text FROM sfsync.status");
        (now != checked).then_some(()).ok_or(now)
    });
    let after: Option<String> = scalar(&mut db, "SELECT last_reconciliation::text FROM sfsync.status");
    assert_eq!(before, after, "one reconciliation, not one per check");
}

#[test]
fn reconcile_on_request_and_what_it_costs() {
    let env = common::start_with(&[("sfsync.delete_check_interval", "0")]);
    let n: u64 = 5000;
    env.emu.admin("POST", "seed", json!({"object": "Account", "count": n}));
    let mut db = env.db();
    db.batch_execute(
        "CREATE TABLE accts (id bigserial PRIMARY KEY, name text);
         SELECT sfsync.sync_table('accts', 'Account', fields => '{\"name\": \"Name\"}', direction => 'pull');",
    )
    .unwrap();
    db.until_count("SELECT count(*) FROM accts", n as i64);
    let victims: Vec<String> =
        db.query("SELECT sfid::text FROM accts ORDER BY id LIMIT 3", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    let ids: Vec<&str> = victims.iter().map(String::as_str).collect();
    env.emu.sf().hard_delete("Account", &ids);
    // The worker stays disabled (after the pass in progress) so only the reconciliation calls.
    stop_worker(&env);
    let before = env.emu.api_calls();
    let summary: String = scalar(&mut db, "SELECT sfsync.reconcile('accts')::text");
    let summary: Value = serde_json::from_str(&summary).unwrap();
    let calls = env.emu.api_calls() - before;
    assert_eq!(summary["listed"], json!(n - 3), "{summary}");
    assert_eq!(summary["deleted"], json!(3), "{summary}");
    let left: i64 = scalar(&mut db, "SELECT count(*) FROM accts");
    assert_eq!(left, n as i64 - 3);
    let pages = (n - 3).div_ceil(2000);
    println!("reconciliation of {n} records: {calls} API calls ({pages} query pages ideal, + COUNT + getDeleted)");
    assert!(calls <= pages + 4, "{calls} calls for {pages} pages");
}
