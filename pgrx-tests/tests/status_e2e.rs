//! End to end: what sfsync tells the user is true. sync_table is quiet when all is well; the
//! errors of a record deleted in Salesforce go away; backfill progress moves on the REST and
//! Bulk paths; the outbox depth counts what waits, failed entries included; a change stream
//! that stops answering shows `stalled` while polling covers its tables; a key changed in
//! Salesforce re-keys the row.

mod common;

use common::Env;
use sfsync_e2e::{json, postgres, scalar, until, DbExt, Value, WAIT};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn start() -> Env {
    common::start_with(&[("sfsync.delete_check_interval", "1s")])
}

/// A session of `app` whose NOTICEs (and higher) are kept in the returned list.
fn listening(env: &Env) -> (postgres::Client, Arc<Mutex<Vec<String>>>) {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let keep = notices.clone();
    let db = postgres::Config::new()
        .host_path(env.cluster.socket_dir())
        .port(env.cluster.port())
        .user("postgres")
        .dbname("app")
        .notice_callback(move |n| keep.lock().unwrap().push(n.message().to_string()))
        .connect(postgres::NoTls)
        .unwrap();
    (db, notices)
}

/// What sync_table returned, as JSON.
fn sync_table(db: &mut postgres::Client, sql: &str) -> Value {
    let text: String = db.query_one(sql, &[]).unwrap().get(0);
    sfsync_e2e::serde_json::from_str(&text).unwrap()
}

#[test]
fn sync_table_is_quiet_on_success_and_names_left_out_columns_in_one_line() {
    let env = start();
    env.worker_pid();
    let (mut db, notices) = listening(&env);

    // An integer key without a default: worth a note in the result, not a NOTICE.
    db.batch_execute("CREATE TABLE plain (id int PRIMARY KEY, name text)").unwrap();
    let r = sync_table(&mut db, "SELECT sfsync.sync_table('plain', 'Account')::text");
    assert_eq!(r["mapped"]["name"], "Name", "{r}");
    let notes = r["notes"].to_string();
    assert!(notes.contains("public.plain.id has no default"), "{r}");
    assert_eq!(*notices.lock().unwrap(), Vec::<String>::new(), "nothing printed on success");

    // A column nothing matches is what the user must act on: one line naming it.
    db.batch_execute("CREATE TABLE extra (id bigserial PRIMARY KEY, name text, colour text, shade text)").unwrap();
    let r = sync_table(&mut db, "SELECT sfsync.sync_table('extra', 'Account')::text");
    assert_eq!(r["unmatched_columns"], json!(["colour", "shade"]), "{r}");
    assert_eq!(
        *notices.lock().unwrap(),
        vec!["sfsync: columns of public.extra not synced (no matching field on Account): colour, shade".to_string()]
    );
}

#[test]
fn errors_of_a_record_deleted_in_salesforce_are_cleared() {
    let env = start();
    env.worker_pid();
    let mut db = env.db();
    db.batch_execute(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL);
         SELECT sfsync.sync_table('accounts', 'Account', fields => '{\"name\": \"Name\"}');
         INSERT INTO accounts (name) VALUES ('Soft'), ('Hard'), ('Kept');",
    )
    .unwrap();
    db.until_count("SELECT count(*) FROM accounts WHERE sfid IS NOT NULL", 3);
    let sfid =
        |db: &mut postgres::Client, name: &str| -> String { scalar(db, &format!("SELECT sfid::text FROM accounts WHERE name = '{name}'")) };
    let (soft, hard) = (sfid(&mut db, "Soft"), sfid(&mut db, "Hard"));
    // Salesforce rejects the new name for good: the changes are parked with their errors.
    env.emu.admin(
        "POST",
        "validation_rules",
        json!({"object": "Account", "name": "no_bad", "field": "Name", "op": "equals", "value": "bad",
               "message": "bad is not a name", "error_field": "Name"}),
    );
    db.batch_execute("UPDATE accounts SET name = 'bad'").unwrap();
    db.until_count("SELECT count(*) FROM sfsync.errors WHERE direction = 'push' AND next_retry_at IS NULL", 3);

    // Two of the records are deleted in Salesforce: one to the recycle bin (the incremental
    // pull sees it), one for good (only the getDeleted check does). Their rows go, and with
    // them their errors and parked changes; the third record's stay.
    let sf = env.emu.sf();
    sf.delete("Account", &soft);
    sf.hard_delete("Account", &[&hard]);
    db.until_count("SELECT count(*) FROM accounts", 1);
    db.until_count("SELECT count(*) FROM sfsync.errors", 1);
    let r = db.query_one("SELECT error_count::bigint, (SELECT count(*) FROM sfsync.outbox) FROM sfsync.status", &[]).unwrap();
    assert_eq!((r.get::<_, i64>(0), r.get::<_, i64>(1)), (1, 1), "only the record still there has an error and a change waiting");
    let kept: String = scalar(&mut db, "SELECT key FROM sfsync.errors");
    let kept_key: String = scalar(&mut db, "SELECT id::text FROM accounts");
    assert_eq!(kept, kept_key);
}

/// Loads `n` seeded Accounts into a new pull-only table `name` whose rows take a millisecond
/// each (a trigger sleeps), and waits until sfsync.backfill_progress shows the load under way:
/// some rows done, the total, a rate and an ETA. Then waits for the end; returns the method.
fn watch_a_slow_backfill(db: &mut postgres::Client, name: &str, n: i64) -> String {
    db.batch_execute(&format!(
        "CREATE TABLE {name} (id bigserial PRIMARY KEY, name text);
         CREATE TRIGGER slow BEFORE INSERT ON {name} FOR EACH ROW EXECUTE FUNCTION slow_row();
         SELECT sfsync.sync_table('{name}', 'Account', fields => '{{\"name\": \"Name\"}}', direction => 'pull');"
    ))
    .unwrap();
    let sql = format!(
        "SELECT state, rows_done, rows_total, rate::float8, extract(epoch FROM eta)::float8
         FROM sfsync.backfill_progress WHERE \"table\" = '{name}'::regclass"
    );
    let seen = until(&format!("the backfill of {name} under way"), WAIT, || {
        let r = db.query_one(&sql, &[]).unwrap();
        let (state, done, total, rate, eta): (String, i64, Option<i64>, Option<f64>, Option<f64>) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        assert_ne!(state, "done", "the load ended before its progress was ever shown (last seen: {done} of {total:?})");
        if state == "running" && done > 0 && done < n && total == Some(n) && rate.is_some_and(|r| r > 0.0) && eta.is_some_and(|e| e > 0.0) {
            Ok(done)
        } else {
            Err(format!("{state}: {done} of {total:?}, rate {rate:?}, eta {eta:?}"))
        }
    });
    until(&format!("the backfill of {name} done"), Duration::from_secs(120), || {
        let r = db.query_one(&sql, &[]).unwrap();
        let (state, done): (String, i64) = (r.get(0), r.get(1));
        if state == "done" && done == n {
            Ok(())
        } else {
            Err(format!("{state}: {done} rows"))
        }
    });
    assert!(seen < n);
    scalar(db, &format!("SELECT method FROM sfsync.backfill_progress WHERE \"table\" = '{name}'::regclass"))
}

#[test]
fn backfill_progress_moves_on_the_rest_and_the_bulk_path() {
    // Fewer records than one batch (5,000 by default) but three REST pages of 2,000.
    const N: i64 = 4500;
    let env = common::start_with(&[("sfsync.backfill_bulk_threshold", "100000")]);
    env.worker_pid();
    let mut db = env.db();
    env.emu.admin("POST", "seed", json!({"object": "Account", "count": N}));
    db.batch_execute(
        "CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.001); RETURN NEW; END $$;",
    )
    .unwrap();
    assert_eq!(watch_a_slow_backfill(&mut db, "by_rest", N), "rest");
    // Bulk, into an empty table (the COPY path), in batches of 1,000.
    db.set_system(&[("sfsync.backfill_bulk_threshold", "1"), ("sfsync.backfill_batch_size", "1000")]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(watch_a_slow_backfill(&mut db, "by_bulk", N), "bulk");
}

/// Monitoring queries run in parallel plans: a large outbox makes the planner choose one,
/// and `debug_parallel_query` (`force_parallel_mode` before PostgreSQL 16) forces one here.
/// A function a view calls that took a transaction id failed them all ("cannot assign XIDs
/// during a parallel operation", seen with `sfsync.status` under a 1M-row backlog).
#[test]
fn every_view_answers_in_a_parallel_plan() {
    let env = start();
    env.worker_pid();
    let mut db = env.db();
    db.batch_execute(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text);
         SELECT sfsync.sync_table('accounts', 'Account', fields => '{\"name\": \"Name\"}');
         INSERT INTO accounts (name) VALUES ('Parallel');",
    )
    .unwrap();
    db.until_count("SELECT count(*) FROM accounts WHERE sfid IS NOT NULL", 1);
    // A new session: no transaction id taken yet, as for a monitoring tool.
    let mut mon = env.db();
    mon.batch_execute(
        "SELECT set_config(name, 'on', false) FROM pg_settings WHERE name IN ('debug_parallel_query', 'force_parallel_mode');
         SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;",
    )
    .unwrap();
    let views: Vec<String> = db
        .query("SELECT c.relname::text FROM pg_class c WHERE c.relnamespace = 'sfsync'::regnamespace AND c.relkind = 'v' ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(views.contains(&"status".to_string()), "{views:?}");
    for v in &views {
        let plan: Vec<String> = mon.query(&format!("EXPLAIN SELECT * FROM sfsync.{v}"), &[]).unwrap().iter().map(|r| r.get(0)).collect();
        assert!(plan.iter().any(|l| l.contains("Gather")), "sfsync.{v} is planned in parallel: {plan:?}");
        mon.query(&format!("SELECT * FROM sfsync.{v}"), &[]).unwrap_or_else(|e| panic!("sfsync.{v} in a parallel plan: {e:?}"));
    }
    let state: String = mon.query_one("SELECT state FROM sfsync.status", &[]).unwrap().get(0);
    assert_eq!(state, "running");
}

#[test]
fn outbox_depth_counts_failed_changes_and_says_how_many() {
    let env = start();
    env.worker_pid();
    let mut db = env.db();
    // Account.Name is required in Salesforce, not here: a row without one is rejected for good.
    db.batch_execute(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text);
         SELECT sfsync.sync_table('accounts', 'Account', fields => '{\"name\": \"Name\"}');
         INSERT INTO accounts (name) VALUES ('Fine'), (NULL);",
    )
    .unwrap();
    db.until_count("SELECT count(*) FROM sfsync.errors WHERE error_code = 'REQUIRED_FIELD_MISSING'", 1);
    db.until_count("SELECT count(*) FROM accounts WHERE sfid IS NOT NULL", 1);
    let status = "SELECT outbox_depth::bigint, outbox_failed::bigint FROM sfsync.status WHERE \"table\" = 'accounts'::regclass";
    let r = db.query_one(status, &[]).unwrap();
    assert_eq!((r.get::<_, i64>(0), r.get::<_, i64>(1)), (1, 1), "the parked change waits, and is counted as failed");

    // Fixed: it goes, and nothing waits any more.
    db.batch_execute("UPDATE accounts SET name = 'Named' WHERE name IS NULL").unwrap();
    db.until_outbox_drained();
    let r = db.query_one(status, &[]).unwrap();
    assert_eq!((r.get::<_, i64>(0), r.get::<_, i64>(1)), (0, 0));
}

#[test]
fn a_stream_that_stops_answering_shows_stalled_and_polling_covers() {
    // Polling is only a safety net once per hour while the stream is live.
    let env = common::start_with(&[("sfsync.cdc_safety_interval", "1h")]);
    let mut db = env.db();
    common::accounts_table(&mut db);
    env.worker_pid();
    let stream = "SELECT change_stream FROM sfsync.status WHERE \"table\" = 'accounts'::regclass";
    db.until_value(stream, "live".to_string());
    let sf = env.emu.sf();
    let id = sf.create("Account", json!({"Name": "Before"}));
    db.until_true("created by its event", &format!("SELECT EXISTS (SELECT 1 FROM accounts WHERE sfid = '{id}')"));

    // CometD stops answering: every request is held, as behind a proxy that keeps the
    // connection open to an org that no longer answers. The connect under way ends normally
    // (within the 10 s it is held), the next one hangs.
    env.emu.add_fault(json!({"kind": "timeout", "path_prefix": "/cometd"}));
    until("the stream shown stalled", Duration::from_secs(60), || {
        let s: Option<String> = scalar(&mut db, stream);
        if s.as_deref() == Some("stalled") {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    });
    sf.update("Account", &id, json!({"Name": "During"}));
    db.until_true("the change arrives by polling", &format!("SELECT name = 'During' FROM accounts WHERE sfid = '{id}'"));
    let s: Option<String> = scalar(&mut db, stream);
    assert_ne!(s.as_deref(), Some("live"), "a stream that does not answer is not live");
}

/// A Salesforce-side change of a linked record's external ID (same Id, another key of ours)
/// re-keys the local row; a key another row holds is that record's error, naming both keys.
fn salesforce_side_key_change(env: &Env, stream: bool) {
    env.worker_pid();
    let mut db = env.db();
    common::accounts_table(&mut db);
    if stream {
        db.until_true("stream shown live", "SELECT bool_and(change_stream = 'live') FROM sfsync.status");
    }
    db.batch_execute("INSERT INTO accounts (id, name) VALUES (1, 'One'), (2, 'Two')").unwrap();
    db.until_count("SELECT count(*) FROM accounts WHERE sfid IS NOT NULL", 2);
    let sfid = |db: &mut postgres::Client, key: i64| -> String { scalar(db, &format!("SELECT sfid::text FROM accounts WHERE id = {key}")) };
    let (one, two) = (sfid(&mut db, 1), sfid(&mut db, 2));
    let ext = |db: &mut postgres::Client, key: &str| -> String { scalar(db, &format!("SELECT sfsync.external_key('accounts', '{key}')")) };
    let sf = env.emu.sf();

    sf.update("Account", &one, json!({"Postgres_Id__c": ext(&mut db, "5"), "Name": "Five"}));
    db.until_true(
        "row 1 re-keyed to 5",
        &format!("SELECT EXISTS (SELECT 1 FROM accounts WHERE id = 5 AND sfid = '{one}' AND name = 'Five')"),
    );
    let keys: Vec<i64> = db.query("SELECT id FROM accounts ORDER BY id", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(keys, vec![2, 5], "the same row, under its new key; no second row");
    assert_eq!(sf.get("Account", &one).unwrap()["Name"], "Five", "the record is still there");

    // Key 7 is a local row (never sent): record `two` cannot take it.
    db.batch_execute(
        "SET session_replication_role = replica; INSERT INTO accounts (id, name) VALUES (7, 'Local'); RESET session_replication_role;",
    )
    .unwrap();
    sf.update("Account", &two, json!({"Postgres_Id__c": ext(&mut db, "7")}));
    db.until_count(&format!("SELECT count(*) FROM sfsync.errors WHERE sfid = '{two}' AND direction = 'pull'"), 1);
    let msg: String = scalar(&mut db, &format!("SELECT message FROM sfsync.errors WHERE sfid = '{two}'"));
    assert!(msg.contains("key 7") && msg.contains("key 2"), "{msg}");
    let rows: Vec<(i64, Option<String>)> =
        db.query("SELECT id, sfid::text FROM accounts ORDER BY id", &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(rows, vec![(2, Some(two)), (5, Some(one)), (7, None)], "nothing moved");
}

#[test]
fn a_salesforce_side_key_change_re_keys_the_row_by_poll() {
    salesforce_side_key_change(&common::start_with(&[("sfsync.cdc", "off")]), false);
}

#[test]
fn a_salesforce_side_key_change_re_keys_the_row_by_change_event() {
    // Polling only as an hourly safety net: the event brings it.
    salesforce_side_key_change(&common::start_with(&[("sfsync.cdc_safety_interval", "1h")]), true);
}
