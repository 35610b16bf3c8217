//! End to end: the small pushes of many tables on one connection share Composite requests
//! (at most 5 sObject Collections subrequests each): fewer API calls, the same per-record
//! results — parents before children, rejections per record, a subrequest Salesforce refuses
//! as a whole sent again on its own path. And a backlog's Bulk jobs pipelined, a record's
//! writes still in order.

mod common;

use sfsync_e2e::{json, scalar, until, DbExt, Value, WAIT};
use std::time::Duration;

/// (POST /composite calls, direct sObject Collections calls, Collections subrequests inside
/// composite requests) served so far.
fn calls(env: &common::Env) -> (u64, u64, u64) {
    let c = env.emu.admin("GET", "counters", Value::Null);
    let collections = |key: &str| -> u64 {
        c[key]
            .as_object()
            .map(|m| m.iter().filter(|(k, _)| k.contains("/composite/sobjects")).map(|(_, v)| v.as_u64().unwrap_or(0)).sum())
            .unwrap_or(0)
    };
    (c["by_endpoint"]["POST /composite"].as_u64().unwrap_or(0), collections("by_endpoint"), collections("by_subrequest"))
}

fn name_of(env: &common::Env, db: &mut sfsync_e2e::postgres::Client, object: &str, table: &str, key: &str) -> Option<Value> {
    let ext = db.external_key(table, key);
    env.sf_query(&format!("SELECT Id, Name FROM {object} WHERE Postgres_Id__c = '{ext}'")).into_iter().next()
}

#[test]
fn eight_tables_with_a_change_each_take_two_calls() {
    let env = common::start();
    let mut db = env.db();
    env.worker_pid();
    // Push-only tables: no polls, so every POST /composite below is the push's.
    let mut sql = String::from(
        "CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL);
         CREATE TABLE contacts (id bigint PRIMARY KEY, last_name text NOT NULL, account_id bigint REFERENCES accounts (id));
         CREATE TABLE people (id bigint PRIMARY KEY, last_name text NOT NULL);
         SELECT sfsync.sync_table('contacts', 'Contact', direction => 'push');   -- the child first, on purpose
         SELECT sfsync.sync_table('accounts', 'Account', direction => 'push');
         SELECT sfsync.sync_table('people', 'Contact', direction => 'push');",
    );
    for i in 1..=5 {
        sql.push_str(&format!(
            "CREATE TABLE t{i} (id bigint PRIMARY KEY, name text NOT NULL);
             SELECT sfsync.sync_table('t{i}', 'Account', direction => 'push');"
        ));
    }
    db.batch_execute(&sql).unwrap();
    env.emu.admin(
        "POST",
        "validation_rules",
        json!({"object": "Contact", "name": "no_nobody", "field": "LastName", "op": "equals", "value": "Nobody",
               "message": "Nobody is not a real name", "error_field": "LastName"}),
    );
    // The worker stays out of it: one pass, run here, sees every change.
    common::stop_worker(&env);
    let mut sql = String::from(
        "BEGIN;
         INSERT INTO accounts VALUES (1, 'Acme');
         INSERT INTO contacts VALUES (10, 'Doe', 1);
         INSERT INTO people VALUES (20, 'Good'), (21, 'Nobody'), (22, 'Fine');",
    );
    for i in 1..=5 {
        sql.push_str(&format!("INSERT INTO t{i} VALUES ({i}, 'Table {i}');"));
    }
    sql.push_str("COMMIT;");
    db.batch_execute(&sql).unwrap();

    let before = calls(&env);
    let summary: Value = scalar::<String>(&mut db, "SELECT sfsync.run_once()::text").parse().unwrap();
    let after = calls(&env);
    assert_eq!(after.0 - before.0, 2, "ceil(8 tables / 5) composite requests: {summary}");
    assert_eq!(after.1 - before.1, 0, "no Collections call of its own for any table");
    assert_eq!(after.2 - before.2, 8, "one Collections subrequest per table");

    // Everything is in Salesforce, with its Id written back.
    for i in 1..=5 {
        let rec = name_of(&env, &mut db, "Account", &format!("t{i}"), &i.to_string()).expect("the table's record");
        assert_eq!(rec["Name"], format!("Table {i}"));
        let sfid: Option<String> = scalar(&mut db, &format!("SELECT sfid::text FROM t{i} WHERE id = {i}"));
        assert_eq!(sfid.as_deref(), rec["Id"].as_str());
    }
    // The child carries the Id its parent got in the first request.
    let account = name_of(&env, &mut db, "Account", "accounts", "1").expect("the account");
    let ext = db.external_key("contacts", "10");
    let contact = env.sf_query(&format!("SELECT LastName, AccountId FROM Contact WHERE Postgres_Id__c = '{ext}'"));
    assert_eq!(contact.len(), 1, "the contact");
    assert_eq!(contact[0]["LastName"], "Doe");
    assert_eq!(contact[0]["AccountId"], account["Id"]);
    // One record rejected: its error names the field; its siblings went through.
    let rows = db.query("SELECT \"table\"::text, key, error_code, fields::text FROM sfsync.errors", &[]).unwrap();
    let errors: Vec<(String, String, String, String)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!((errors[0].0.as_str(), errors[0].1.as_str(), errors[0].2.as_str()), ("people", "21", "FIELD_CUSTOM_VALIDATION_EXCEPTION"));
    assert!(errors[0].3.contains("LastName"), "the field is named: {errors:?}");
    for (key, name) in [("20", "Good"), ("22", "Fine")] {
        let ext = db.external_key("people", key);
        let found = env.sf_query(&format!("SELECT LastName FROM Contact WHERE Postgres_Id__c = '{ext}'"));
        assert_eq!(found.first().map(|r| r["LastName"].clone()), Some(json!(name)));
    }
    let unsent: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.outbox WHERE state = 'pending' AND mapping_id <> (SELECT id FROM sfsync.mappings WHERE tbl = 'people'::regclass)");
    assert_eq!(unsent, 0, "every other change settled");
}

/// A Collections subrequest Salesforce refuses as a whole (a value its field's type cannot
/// take, which the local check could not foresee: the field was retyped in Salesforce) is
/// sent again by its table's own path, which splits it down to the bad record; the other
/// tables of the request and that table's other rows go through.
#[test]
fn a_subrequest_refused_as_a_whole_goes_again_alone_and_only_the_bad_record_fails() {
    let env = common::start();
    let mut db = env.db();
    env.worker_pid();
    env.emu.admin("POST", "fields/Account", json!({"name": "Note__c", "type": "string", "length": 80}));
    db.batch_execute(
        "CREATE TABLE notes (id bigint PRIMARY KEY, name text NOT NULL, note text);
         SELECT sfsync.sync_table('notes', 'Account', fields => '{\"name\": \"Name\", \"note\": \"Note__c\"}', direction => 'push');
         CREATE TABLE t1 (id bigint PRIMARY KEY, name text NOT NULL);
         SELECT sfsync.sync_table('t1', 'Account', direction => 'push');
         CREATE TABLE t2 (id bigint PRIMARY KEY, name text NOT NULL);
         SELECT sfsync.sync_table('t2', 'Account', direction => 'push');",
    )
    .unwrap();
    // Salesforce's admin makes the text field a date; sfsync has not seen it yet.
    env.emu.admin("PATCH", "fields/Account/Note__c", json!({"type": "date"}));
    common::stop_worker(&env);
    db.batch_execute(
        "BEGIN;
         INSERT INTO notes VALUES (1, 'N1', '2024-01-02'), (2, 'N2', 'soon'), (3, 'N3', '2024-03-04');
         INSERT INTO t1 VALUES (1, 'One');
         INSERT INTO t2 VALUES (2, 'Two');
         COMMIT;",
    )
    .unwrap();
    let before = calls(&env);
    db.batch_execute("SELECT sfsync.run_once()").unwrap();
    let after = calls(&env);
    assert_eq!(after.0 - before.0, 1, "one composite request for the three tables");
    assert!(after.1 - before.1 >= 2, "the refused subrequest sent again on its own, split to the bad record: {after:?}");
    for (table, key, name) in [("t1", "1", "One"), ("t2", "2", "Two"), ("notes", "1", "N1"), ("notes", "3", "N3")] {
        let rec = name_of(&env, &mut db, "Account", table, key).unwrap_or_else(|| panic!("{table} {key} in Salesforce"));
        assert_eq!(rec["Name"], name);
    }
    assert!(name_of(&env, &mut db, "Account", "notes", "2").is_none());
    let rows = db.query("SELECT \"table\"::text, key, error_code FROM sfsync.errors", &[]).unwrap();
    let errors: Vec<(String, String, String)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(errors, vec![("notes".to_string(), "2".to_string(), "JSON_PARSER_ERROR".to_string())]);
}

/// A backlog goes out in Bulk jobs that overlap: while Salesforce processes one batch's job,
/// the worker claims and sends the next. A row changed while its first write sits in a job
/// that is still processing must not be sent beside it (Salesforce runs jobs in any order):
/// the change waits for that job's results and then goes by Id, so Salesforce ends with the
/// newest value and nothing is parked.
#[test]
fn a_change_of_a_row_whose_bulk_job_is_still_processing_goes_after_it() {
    let env = common::start();
    let mut db = env.db();
    env.worker_pid();
    db.set_system(&[("sfsync.batch_size", "1500"), ("sfsync.bulk_threshold", "1000")]);
    db.batch_execute(
        "CREATE TABLE people (id bigint PRIMARY KEY, last_name text NOT NULL, title text);
         SELECT sfsync.sync_table('people', 'Contact', direction => 'push');",
    )
    .unwrap();
    // Slow uploads: time to hold the second batch's job before it is closed.
    env.emu.add_fault(json!({"kind": "latency", "latency_ms": 1500, "count": 2, "method": "PUT",
                              "path_prefix": "/services/data/v62.0/jobs/ingest/"}));
    db.batch_execute("INSERT INTO people SELECT g, 'Row ' || g, 'first' FROM generate_series(1, 3000) g").unwrap();
    // Both batches claimed: the first job is uploaded and runs, the second is uploading.
    db.until_count("SELECT count(*) FROM sfsync.outbox WHERE claimed_until IS NOT NULL", 3000);
    env.emu.admin("POST", "bulk/hold", json!({"held": true}));
    // Row 1 is in the first batch, row 2000 in the second, whose job will be held.
    db.batch_execute("UPDATE people SET title = 'second' WHERE id IN (1, 2000)").unwrap();
    let title = |env: &common::Env, db: &mut sfsync_e2e::postgres::Client, key: &str| -> Option<Value> {
        let ext = db.external_key("people", key);
        env.sf_query(&format!("SELECT Title FROM Contact WHERE Postgres_Id__c = '{ext}'")).first().map(|r| r["Title"].clone())
    };
    until("row 1's change sent after its job, by Id", WAIT, || {
        let t = title(&env, &mut db, "1");
        (t == Some(json!("second"))).then_some(()).ok_or(format!("{t:?}"))
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(title(&env, &mut db, "2000"), None, "row 2000's job is held: nothing of it in Salesforce yet");
    let waiting: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.outbox WHERE pk = '2000' AND state = 'pending'");
    assert_eq!(waiting, 2, "its insert (in the held job) and its change (waiting for it)");

    env.emu.admin("POST", "bulk/hold", json!({"held": false}));
    db.until_count("SELECT count(*) FROM sfsync.outbox", 0);
    assert_eq!(title(&env, &mut db, "2000"), Some(json!("second")));
    assert_eq!(env.sf_query("SELECT Id FROM Contact").len(), 3000, "one record per row");
    let errors: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.record_errors");
    assert_eq!(errors, 0, "nothing parked");
}
