//! Whose record is it: two tables on one object, two databases on one org, copies of a
//! database (template, dump/restore) and a reinstall never write into each other's
//! Salesforce records (external IDs are `<namespace>:<key>`, see docs/guide.md).

mod common;

use sfsync_e2e::{json, postgres, scalar, serde_json, DbExt, Value, WAIT};
use std::time::Duration;

fn named_table(db: &mut postgres::Client, table: &str) {
    db.batch_execute(&format!(
        "CREATE TABLE {table} (id bigserial PRIMARY KEY, name text NOT NULL);
         SELECT sfsync.sync_table('{table}', 'Account', fields => '{{\"name\": \"Name\"}}');"
    ))
    .unwrap();
}

fn accounts_named(env: &common::Env, name: &str) -> Vec<Value> {
    env.sf_query(&format!("SELECT Id, Name, Postgres_Id__c FROM Account WHERE Name = '{name}'"))
}

/// Waits until the Salesforce record `ext` exists and returns its Id.
fn record_of(env: &common::Env, ext: &str) -> String {
    env.emu.sf().until_record(&format!("SELECT Id FROM Account WHERE Postgres_Id__c = '{ext}'"))["Id"].as_str().unwrap().to_string()
}

#[test]
fn two_tables_on_one_object_keep_their_own_records() {
    let env = common::start();
    let mut db = env.db();
    named_table(&mut db, "a");
    named_table(&mut db, "b");
    env.worker_pid();
    db.batch_execute("INSERT INTO a (id, name) VALUES (1, 'from a'); INSERT INTO b (id, name) VALUES (1, 'from b');").unwrap();
    let (ka, kb) = (db.external_key("a", "1"), db.external_key("b", "1"));
    assert_ne!(ka, kb, "one key, two tables: two external IDs");
    let (ra, rb) = (record_of(&env, &ka), record_of(&env, &kb));
    assert_ne!(ra, rb, "two records");
    db.until_value("SELECT sfid::text FROM a WHERE id = 1", Some(ra.clone()));
    db.until_value("SELECT sfid::text FROM b WHERE id = 1", Some(rb.clone()));

    // Salesforce -> Postgres: a change of a's record reaches a only; neither table takes
    // the other's record as a row of its own.
    env.emu.sf().update("Account", &ra, json!({"Name": "a renamed in Salesforce"}));
    db.until_count("SELECT count(*) FROM a WHERE name = 'a renamed in Salesforce'", 1);
    // Postgres -> Salesforce: b's update goes to b's record only.
    db.batch_execute("UPDATE b SET name = 'b renamed in Postgres' WHERE id = 1").unwrap();
    env.emu.sf().until_field("Account", &rb, "Name", "b renamed in Postgres");
    db.until_outbox_drained();
    // A pulled page after both changes: each table still holds exactly its own record.
    let marker = env.emu.sf().create("Account", json!({"Name": "created in Salesforce"}));
    db.until_count(&format!("SELECT count(*) FROM a WHERE sfid = '{marker}'"), 1);
    db.until_count(&format!("SELECT count(*) FROM b WHERE sfid = '{marker}'"), 1);
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM a"), 2, "a's record and the one created in Salesforce");
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM b"), 2);
    assert_eq!(scalar::<String>(&mut db, "SELECT name FROM b WHERE id = 1"), "b renamed in Postgres");
    assert_eq!(env.emu.sf().get("Account", &ra).unwrap()["Name"], "a renamed in Salesforce");
}

#[test]
fn two_databases_on_one_org_keep_their_own_records() {
    let env = common::start();
    env.cluster.create_sfsync_database("staging", &env.emu);
    let (mut prod, mut staging) = (env.db(), env.cluster.connect("staging"));
    for db in [&mut prod, &mut staging] {
        named_table(db, "accounts");
    }
    prod.batch_execute("INSERT INTO accounts (id, name) VALUES (1, 'prod')").unwrap();
    staging.batch_execute("INSERT INTO accounts (id, name) VALUES (1, 'staging')").unwrap();
    let (kp, ks) = (prod.external_key("accounts", "1"), staging.external_key("accounts", "1"));
    assert_ne!(kp, ks);
    let (rp, rs) = (record_of(&env, &kp), record_of(&env, &ks));
    assert_ne!(rp, rs);
    prod.until_outbox_drained();
    staging.until_outbox_drained();
    assert_eq!(env.emu.sf().get("Account", &rp).unwrap()["Name"], "prod");
    assert_eq!(env.emu.sf().get("Account", &rs).unwrap()["Name"], "staging");
    // Each database's pull leaves the other's record alone.
    prod.until_value("SELECT sfid::text FROM accounts WHERE id = 1", Some(rp));
    staging.until_value("SELECT sfid::text FROM accounts WHERE id = 1", Some(rs));
    assert_eq!(scalar::<i64>(&mut prod, "SELECT count(*) FROM accounts"), 1);
    assert_eq!(scalar::<i64>(&mut staging, "SELECT count(*) FROM accounts"), 1);
}

/// Waits until the copy's status says it is paused as a copy, and returns its last_error.
fn paused(db: &mut postgres::Client) -> String {
    db.until_value("SELECT DISTINCT state FROM sfsync.status", "paused: copy of another database".to_string());
    scalar(db, "SELECT DISTINCT last_error FROM sfsync.status")
}

#[test]
fn a_restored_dump_pauses_until_adopted_then_takes_over() {
    let env = common::start();
    let mut db = env.db();
    named_table(&mut db, "accounts");
    db.batch_execute("INSERT INTO accounts (id, name) VALUES (1, 'Acme')").unwrap();
    let ext = db.external_key("accounts", "1");
    let sfid = record_of(&env, &ext);
    db.until_value("SELECT sfid::text FROM accounts WHERE id = 1", Some(sfid.clone()));

    // Changes captured but not sent yet are part of the dump too.
    let lock = common::pause(&env);
    db.batch_execute("INSERT INTO accounts (id, name) VALUES (2, 'Pending'), (3, 'Pending too')").unwrap();
    // pg_dump | psql into a second database of the same cluster.
    let dump = env.cluster.pg_dump("app", &[]);
    common::resume(&env, lock);
    let path = env.cluster.dir().join("app.sql");
    std::fs::write(&path, dump).unwrap();
    env.cluster.create_database("restored");
    env.cluster.psql_file("restored", &path);
    let mut copy = env.cluster.connect("restored");
    let why = paused(&mut copy);
    assert!(why.contains("copy of database \"app\" of this cluster") && why.contains("sfsync.adopt()"), "{why}");
    env.cluster.wait_for_log("this database is a copy of database \"app\"", WAIT);

    // Nothing the copy does reaches Salesforce, nothing is lost either: its writes are
    // captured after the restored ones (the outbox's sequence came with the dump).
    copy.batch_execute("UPDATE accounts SET name = 'Acme (restored)' WHERE id = 1").unwrap();
    copy.batch_execute("INSERT INTO accounts (id, name) VALUES (4, 'Written in the copy'); DELETE FROM accounts WHERE id = 3").unwrap();
    let err = copy.batch_execute("SELECT sfsync.run_once()").unwrap_err();
    assert!(err.as_db_error().unwrap().message().contains("this database is a copy"), "{err}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(env.emu.sf().get("Account", &sfid).unwrap()["Name"], "Acme");
    assert_eq!(scalar::<i64>(&mut copy, "SELECT count(*) FROM sfsync.outbox"), 5);

    // Adopted: the copy is the owner now (the original is retired), and its change goes out.
    let adopted: Value = serde_json::from_str(&scalar::<String>(&mut copy, "SELECT sfsync.adopt()::text")).unwrap();
    assert_eq!(adopted["adopted"], true, "{adopted}");
    // A dump carries no secret (docs/secrets.md): the connection's is entered again.
    copy.batch_execute(&env.emu.connect_sql("default")).unwrap();
    env.emu.sf().until_field("Account", &sfid, "Name", "Acme (restored)");
    copy.until_value("SELECT state FROM sfsync.status", "running".to_string());
    assert_eq!(accounts_named(&env, "Acme (restored)").len(), 1, "the same record, not a new one");
    copy.until_outbox_drained();
    assert_eq!(accounts_named(&env, "Written in the copy").len(), 1);
    assert_eq!(accounts_named(&env, "Pending too").len(), 0, "inserted then deleted");
}

#[test]
fn a_template_copy_with_a_fresh_namespace_makes_records_of_its_own() {
    let env = common::start();
    let mut db = env.db();
    named_table(&mut db, "accounts");
    db.batch_execute("INSERT INTO accounts (id, name) VALUES (1, 'Original'), (2, 'Other')").unwrap();
    let sfid = record_of(&env, &db.external_key("accounts", "1"));
    record_of(&env, &db.external_key("accounts", "2"));
    db.until_count("SELECT count(*) FROM accounts WHERE sfid IS NOT NULL", 2);
    db.until_outbox_drained();

    drop(db); // CREATE DATABASE ... TEMPLATE needs the template to itself (the worker steps aside)
    env.cluster.psql("postgres", "CREATE DATABASE copy TEMPLATE app");
    let mut db = env.db();
    let mut copy = env.cluster.connect("copy");
    paused(&mut copy);
    let adopted: Value = serde_json::from_str(&scalar::<String>(&mut copy, "SELECT sfsync.adopt(fresh_namespace => true)::text")).unwrap();
    assert_eq!(adopted["tables"][0]["queued_for_push"], 2, "{adopted}");
    let (old, new) = (db.external_key("accounts", "1"), copy.external_key("accounts", "1"));
    assert_ne!(old, new, "the copy writes under a namespace of its own");
    let copied = record_of(&env, &new);
    assert_ne!(copied, sfid);
    copy.until_value("SELECT sfid::text FROM accounts WHERE id = 1", Some(copied));
    copy.until_outbox_drained();
    copy.batch_execute("UPDATE accounts SET name = 'Changed in the copy' WHERE id = 1").unwrap();
    copy.until_outbox_drained();
    assert_eq!(env.emu.sf().get("Account", &sfid).unwrap()["Name"], "Original", "the original's record is untouched");
    assert_eq!(accounts_named(&env, "Other").len(), 2, "one record per database");
    // And the original goes on as before.
    db.batch_execute("UPDATE accounts SET name = 'Original, still synced' WHERE id = 1").unwrap();
    env.emu.sf().until_field("Account", &sfid, "Name", "Original, still synced");
}

#[test]
fn a_reinstall_finds_its_earlier_records_instead_of_duplicating_them() {
    let env = common::start();
    let mut db = env.db();
    named_table(&mut db, "accounts");
    db.batch_execute("INSERT INTO accounts (id, name) VALUES (1, 'One'), (2, 'Two')").unwrap();
    let before = (record_of(&env, &db.external_key("accounts", "1")), record_of(&env, &db.external_key("accounts", "2")));
    db.until_count("SELECT count(*) FROM accounts WHERE sfid IS NOT NULL", 2);
    db.until_outbox_drained();

    // Everything sfsync made goes, the links (sfid) too; then install and sync again.
    db.batch_execute("DROP EXTENSION sfsync CASCADE; ALTER TABLE accounts DROP COLUMN sfid; CREATE EXTENSION sfsync;").unwrap();
    db.batch_execute(&env.emu.connect_sql("default")).unwrap();
    db.batch_execute("SELECT sfsync.sync_table('accounts', 'Account', fields => '{\"name\": \"Name\"}')").unwrap();
    db.until_worker();
    db.until_count("SELECT count(*) FROM accounts WHERE sfid IS NOT NULL", 2);
    db.until_outbox_drained();
    let after: (String, String) = {
        let r = db
            .query_one("SELECT (SELECT sfid::text FROM accounts WHERE id = 1), (SELECT sfid::text FROM accounts WHERE id = 2)", &[])
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(after, before, "re-linked to the same records");
    assert_eq!(env.sf_query("SELECT Id FROM Account").len(), 2, "no duplicates");
}
