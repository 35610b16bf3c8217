//! End to end: changes flow both ways, rejected records are reported without blocking the
//! others, and a settled sync rewrites nothing on either side.

mod common;

use common::{accounts_table, contacts_table};
use sfsync_e2e::{json, scalar, until, DbExt, WAIT};
use std::time::Duration;

#[test]
fn changes_flow_both_ways() {
    let env = common::start();
    let mut db = env.db();
    accounts_table(&mut db);
    env.worker_pid();

    // Postgres -> Salesforce: insert, with the new Id written back.
    db.batch_execute("INSERT INTO accounts (id, name, industry, annual_revenue) VALUES (1, 'Acme', 'Energy', 1200000)").unwrap();
    let sf = env.emu.sf();
    let ext = db.external_key("accounts", "1");
    assert!(ext.ends_with(":1") && ext.len() == 14, "namespaced: {ext}");
    let rec = sf.until_record(&format!("SELECT Id, Name, Industry, AnnualRevenue FROM Account WHERE Postgres_Id__c = '{ext}'"));
    assert_eq!(rec["Name"], "Acme");
    assert_eq!(rec["Industry"], "Energy");
    assert_eq!(rec["AnnualRevenue"].as_f64(), Some(1_200_000.0));
    let sfid = rec["Id"].as_str().unwrap().to_string();
    assert_eq!(sfid.len(), 18);
    db.until_value("SELECT sfid::text FROM accounts WHERE id = 1", Some(sfid.clone()));

    // Update.
    db.batch_execute("UPDATE accounts SET industry = 'Banking' WHERE id = 1").unwrap();
    sf.until_field("Account", &sfid, "Industry", "Banking");

    // Salesforce -> Postgres: update, create, delete.
    sf.update("Account", &sfid, json!({"Website": "https://acme.example"}));
    db.until_value("SELECT website FROM accounts WHERE id = 1", Some("https://acme.example".to_string()));
    let new_id = sf.create("Account", json!({"Name": "Globex", "Industry": "Retail"}));
    db.until_count(&format!("SELECT count(*) FROM accounts WHERE sfid = '{new_id}' AND name = 'Globex' AND industry = 'Retail'"), 1);
    sf.delete("Account", &new_id);
    db.until_count(&format!("SELECT count(*) FROM accounts WHERE sfid = '{new_id}'"), 0);

    // Postgres delete -> Salesforce delete.
    db.batch_execute("DELETE FROM accounts WHERE id = 1").unwrap();
    sf.until_gone("Account", &sfid);
    db.until_outbox_drained();
    let state: String = scalar(&mut db, "SELECT state FROM sfsync.status WHERE \"table\" = 'accounts'::regclass");
    assert_eq!(state, "running");
}

#[test]
fn a_value_refused_for_one_record_holds_up_only_that_record() {
    let env = common::start();
    let mut db = env.db();
    db.batch_execute(
        "CREATE TABLE people (id bigserial PRIMARY KEY, last_name text NOT NULL, birthdate text);
         SELECT sfsync.sync_table('people', 'Contact', fields => '{\"last_name\": \"LastName\", \"birthdate\": \"Birthdate\"}');",
    )
    .unwrap();
    accounts_table(&mut db);
    env.worker_pid();
    // Salesforce would refuse a whole Collections request when one record's date does not
    // parse (JSON_PARSER_ERROR): the value is checked before sending and only that record
    // fails (values_e2e.rs; refusals that no local check foresees are bisected, plan/bisect.rs).
    db.batch_execute(
        "INSERT INTO people (id, last_name, birthdate) VALUES
             (1, 'Early', '2001-02-03'), (2, 'Vague', 'tomorrow'), (3, 'Late', '1999-09-09'), (4, 'Plain', NULL)",
    )
    .unwrap();
    let (code, message): (String, String) = until("person 2 in sfsync.errors", WAIT, || {
        let rows = db.query("SELECT error_code, message FROM sfsync.errors WHERE key = '2'", &[]).unwrap();
        rows.first().map(|r| (r.get(0), r.get(1)))
    });
    assert_eq!(code, "INVALID_TYPE_ON_FIELD_IN_RECORD");
    assert!(message.contains("tomorrow"), "{message}");
    let sf = env.emu.sf();
    sf.until_records("SELECT LastName FROM Contact WHERE LastName IN ('Early', 'Late', 'Plain')", 3);
    assert!(sf.query("SELECT Id FROM Contact WHERE LastName = 'Vague'").is_empty());
    // Not the connection's trouble: another table on it goes on at once.
    db.batch_execute("INSERT INTO accounts (id, name) VALUES (1, 'Acme')").unwrap();
    sf.until_record(&format!("SELECT Id FROM Account WHERE Postgres_Id__c = '{}'", db.external_key("accounts", "1")));
    let state: String = scalar(&mut db, "SELECT state FROM sfsync.status WHERE \"table\" = 'people'::regclass");
    assert_eq!(state, "running");
    // Fixing the value sends it and clears the error.
    db.batch_execute("UPDATE people SET birthdate = '2000-01-01' WHERE id = 2").unwrap();
    let rec = sf.until_record("SELECT Birthdate FROM Contact WHERE LastName = 'Vague'");
    assert_eq!(rec["Birthdate"], "2000-01-01");
    db.until_count("SELECT count(*) FROM sfsync.errors", 0);
}

#[test]
fn a_pulled_record_that_fails_to_apply_arrives_once_the_cause_is_fixed() {
    let env = common::start();
    let mut db = env.db();
    accounts_table(&mut db);
    db.batch_execute("ALTER TABLE accounts ADD CONSTRAINT no_forbidden CHECK (name <> 'Forbidden')").unwrap();
    env.worker_pid();
    let sf = env.emu.sf();
    let bad = sf.create("Account", json!({"Name": "Forbidden"}));
    let good = sf.create("Account", json!({"Name": "Fine"}));
    db.until_count(&format!("SELECT count(*) FROM accounts WHERE sfid = '{good}'"), 1);
    let message: String = until("the failed apply in sfsync.errors", WAIT, || {
        let rows = db.query("SELECT message FROM sfsync.errors WHERE sfid = $1 AND direction = 'pull'", &[&bad]).unwrap();
        rows.first().map(|r| r.get(0))
    });
    assert!(message.contains("no_forbidden"), "{message}");
    // An operator may ask for it at once (it waits out its backoff otherwise).
    assert_eq!(scalar::<i64>(&mut db, "SELECT sfsync.retry('accounts')"), 1);
    // The mark has moved on; the record is not forgotten: fixed, it arrives with no new
    // change in Salesforce.
    db.batch_execute("ALTER TABLE accounts DROP CONSTRAINT no_forbidden").unwrap();
    db.until_count(&format!("SELECT count(*) FROM accounts WHERE sfid = '{bad}' AND name = 'Forbidden'"), 1);
    db.until_count("SELECT count(*) FROM sfsync.errors", 0);
    // Or gives up on one: discard drops its error, it is not read again.
    db.batch_execute("ALTER TABLE accounts ADD CONSTRAINT no_banned CHECK (name <> 'Banned')").unwrap();
    let banned = sf.create("Account", json!({"Name": "Banned"}));
    let key: String = until("the second failed apply", WAIT, || {
        let rows = db.query("SELECT key FROM sfsync.errors WHERE sfid = $1", &[&banned]).unwrap();
        rows.first().map(|r| r.get(0))
    });
    assert_eq!(scalar::<i64>(&mut db, &format!("SELECT sfsync.discard('accounts', '{key}')")), 1);
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.errors"), 0);
}

#[test]
fn a_key_change_re_keys_the_same_record() {
    let env = common::start();
    let mut db = env.db();
    accounts_table(&mut db);
    env.worker_pid();
    db.batch_execute("INSERT INTO accounts (id, name) VALUES (1, 'Acme')").unwrap();
    let sf = env.emu.sf();
    let sfid = sf.until_record(&format!("SELECT Id FROM Account WHERE Postgres_Id__c = '{}'", db.external_key("accounts", "1")))["Id"]
        .as_str()
        .unwrap()
        .to_string();
    db.until_value("SELECT sfid::text FROM accounts WHERE id = 1", Some(sfid.clone()));
    db.batch_execute("UPDATE accounts SET id = 100, name = 'Acme Corp' WHERE id = 1").unwrap();
    sf.until_field("Account", &sfid, "Postgres_Id__c", db.external_key("accounts", "100"));
    db.until_outbox_drained();
    assert_eq!(sf.get("Account", &sfid).unwrap()["Name"], "Acme Corp");
    assert_eq!(sf.query("SELECT Id FROM Account").len(), 1, "the same record, nothing deleted or created");
    // The row goes on syncing under its new key, both ways.
    sf.update("Account", &sfid, json!({"Industry": "Energy"}));
    db.until_count("SELECT count(*) FROM accounts WHERE id = 100 AND industry = 'Energy'", 1);
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM accounts"), 1);
}

#[test]
fn rejected_record_is_reported_and_the_rest_go_through() {
    let env = common::start();
    let mut db = env.db();
    contacts_table(&mut db);
    let long = "x".repeat(81); // Contact.LastName is 80 long
    db.execute(
        "INSERT INTO contacts (id, first_name, last_name, email) VALUES
             (1, 'Ada', 'Lovelace', 'ada@example.com'), (2, 'Bad', $1, NULL), (3, 'Alan', 'Turing', 'alan@example.com')",
        &[&long],
    )
    .unwrap();
    let err = until("an error recorded in sfsync.errors", WAIT, || {
        let rows = db.query("SELECT key, operation, error_code, message, fields FROM sfsync.errors", &[]).unwrap();
        rows.first().map(|r| (r.get::<_, String>(0), r.get::<_, String>(2), r.get::<_, String>(3), r.get::<_, Vec<String>>(4)))
    });
    assert_eq!(err.0, "2");
    assert_eq!(err.1, "STRING_TOO_LONG");
    assert!(err.2.to_lowercase().contains("too large") || err.2.to_lowercase().contains("too long"), "{}", err.2);
    assert_eq!(err.3, vec!["LastName".to_string()]);
    let names: Vec<String> = env
        .sf_query("SELECT LastName FROM Contact ORDER BY LastName")
        .iter()
        .map(|r| r["LastName"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["Lovelace", "Turing"]);
    let pending: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.outbox WHERE state = 'pending'");
    assert_eq!(pending, 0, "the failed record is parked, not retried forever");

    // Fixing the row sends it, with the fields captured before, and clears the error.
    db.batch_execute("UPDATE contacts SET last_name = 'Goodname' WHERE id = 2").unwrap();
    let ext = db.external_key("contacts", "2");
    let rec = env.emu.sf().until_record(&format!("SELECT FirstName, LastName FROM Contact WHERE Postgres_Id__c = '{ext}'"));
    assert_eq!(rec["FirstName"], "Bad");
    assert_eq!(rec["LastName"], "Goodname");
    db.until_count("SELECT count(*) FROM sfsync.errors", 0);
}

#[test]
fn settled_sync_rewrites_nothing() {
    // Timed polls every 300 ms (no change stream), re-reading recent records each time.
    let env = common::start_with(&[("sfsync.cdc", "off")]);
    let mut db = env.db();
    accounts_table(&mut db);
    contacts_table(&mut db);
    db.batch_execute(
        "INSERT INTO accounts (name, industry) SELECT 'Account ' || g, 'Energy' FROM generate_series(1, 30) g;
         INSERT INTO contacts (last_name, email) SELECT 'Contact ' || g, 'c' || g || '@example.com' FROM generate_series(1, 30) g;",
    )
    .unwrap();
    let id = env.emu.sf().create("Account", json!({"Name": "From Salesforce"}));
    until("every row pushed and the Salesforce one pulled", WAIT, || {
        let n: i64 = scalar(&mut db, "SELECT count(*) FROM accounts WHERE sfid IS NOT NULL");
        let m: i64 = scalar(&mut db, "SELECT count(*) FROM contacts WHERE sfid IS NOT NULL");
        let o: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.outbox");
        (n == 31 && m == 30 && o == 0).then_some(()).ok_or(format!("accounts {n}, contacts {m}, outbox {o}"))
    });
    assert_eq!(scalar::<i64>(&mut db, &format!("SELECT count(*) FROM accounts WHERE sfid = '{id}'")), 1);
    // Let a few pull intervals pass, then watch both sides for rewrites.
    std::thread::sleep(Duration::from_secs(2));
    let writes = env.sf_writes();
    let versions: String = scalar(
        &mut db,
        "SELECT string_agg(xmin::text, ',' ORDER BY id) FROM (SELECT id, xmin FROM accounts UNION ALL SELECT id, xmin FROM contacts) t",
    );
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(env.sf_writes(), writes, "Salesforce saw writes after the sync settled");
    let after: String = scalar(
        &mut db,
        "SELECT string_agg(xmin::text, ',' ORDER BY id) FROM (SELECT id, xmin FROM accounts UNION ALL SELECT id, xmin FROM contacts) t",
    );
    assert_eq!(after, versions, "Postgres rows were rewritten after the sync settled");
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.outbox"), 0);
    let pulls: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.status WHERE last_pull_at > now() - interval '2 seconds'");
    assert_eq!(pulls, 2, "the worker kept polling both tables meanwhile");
    let streams: String = scalar(&mut db, "SELECT string_agg(DISTINCT change_stream, ',') FROM sfsync.status");
    assert_eq!(streams, "off", "status says the tables poll, with no change stream");
}

#[test]
fn an_automation_rewriting_a_synced_field_settles_after_one_round_trip() {
    let env = common::start_with(&[("sfsync.cdc", "off")]);
    let mut db = env.db();
    accounts_table(&mut db);
    // Like a Flow that normalises the industry on every save.
    env.emu.admin(
        "POST",
        "automations",
        json!({"object": "Account", "name": "Normalise", "when_field": "Industry", "set_field": "Industry", "value": "Energy"}),
    );
    db.batch_execute("INSERT INTO accounts (id, name, industry) VALUES (1, 'Acme', 'Banking')").unwrap();
    db.until_value("SELECT industry FROM accounts WHERE id = 1", Some("Energy".to_string()));
    // Settled: Salesforce's value won once, and neither side writes again.
    std::thread::sleep(Duration::from_secs(1));
    let writes = env.sf_writes();
    let version: String = scalar(&mut db, "SELECT xmin::text FROM accounts WHERE id = 1");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(env.sf_writes(), writes, "the automation and the sync are looping");
    assert_eq!(scalar::<String>(&mut db, "SELECT xmin::text FROM accounts WHERE id = 1"), version);
    let rec = env.sf_query(&format!("SELECT Industry FROM Account WHERE Postgres_Id__c = '{}'", db.external_key("accounts", "1")));
    assert_eq!(rec[0]["Industry"], "Energy");
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.outbox"), 0);
}
