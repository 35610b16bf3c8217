//! End to end: parents before children, lookups filled with the parent's Salesforce Id, a
//! child waiting on (and naming) a failed parent; large batches through Bulk API 2.0.

mod common;

use sfsync_e2e::{json, until, DbExt, Value, WAIT};

fn tables(db: &mut sfsync_e2e::postgres::Client) {
    db.batch_execute(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL);
         CREATE TABLE contacts (id bigserial PRIMARY KEY, last_name text NOT NULL,
                                account_id bigint REFERENCES accounts (id));
         SELECT sfsync.sync_table('contacts', 'Contact');   -- the child first, on purpose
         SELECT sfsync.sync_table('accounts', 'Account');",
    )
    .unwrap();
}

#[test]
fn children_carry_their_parents_salesforce_id_both_ways() {
    let env = common::start();
    let mut db = env.db();
    tables(&mut db);
    env.worker_pid();
    // One transaction: children captured before their parent's id exists in Salesforce.
    db.batch_execute(
        "BEGIN;
         INSERT INTO accounts (id, name) VALUES (1, 'Acme');
         INSERT INTO contacts (id, last_name, account_id) VALUES (10, 'Doe', 1), (11, 'Roe', 1), (12, 'Solo', NULL);
         COMMIT;",
    )
    .unwrap();
    let sf = env.emu.sf();
    let soql = format!("SELECT Id FROM Account WHERE Postgres_Id__c = '{}'", db.external_key("accounts", "1"));
    let account = sf.until_record(&soql)["Id"].as_str().unwrap().to_string();
    let contacts = sf.until_records("SELECT LastName, AccountId FROM Contact ORDER BY LastName", 3);
    assert_eq!(contacts[0]["LastName"], "Doe");
    assert_eq!(contacts[0]["AccountId"].as_str(), Some(account.as_str()));
    assert_eq!(contacts[1]["AccountId"].as_str(), Some(account.as_str()));
    assert_eq!(contacts[2]["AccountId"], Value::Null);

    // Salesforce -> Postgres: a contact created there lands with the parent's Postgres key.
    let id = sf.create("Contact", json!({"LastName": "FromSalesforce", "AccountId": account}));
    db.until_count(&format!("SELECT count(*) FROM contacts WHERE sfid = '{id}' AND account_id = 1"), 1);
}

#[test]
fn a_child_of_a_rejected_parent_waits_and_says_why() {
    let env = common::start();
    let mut db = env.db();
    tables(&mut db);
    env.worker_pid();
    env.emu.admin(
        "POST",
        "validation_rules",
        json!({"object": "Account", "name": "NoTest", "field": "Name", "op": "equals", "value": "Test", "message": "Test accounts are not allowed"}),
    );
    db.batch_execute(
        "INSERT INTO accounts (id, name) VALUES (1, 'Test'), (2, 'Good');
         INSERT INTO contacts (id, last_name, account_id) VALUES (10, 'Orphan', 1), (11, 'Fine', 2), (12, $$x$$ || repeat('y', 90), 2);",
    )
    .unwrap();
    let errors = until("3 errors in sfsync.errors", WAIT, || {
        let rows = db.query("SELECT \"table\"::text, key, error_code, message FROM sfsync.errors ORDER BY 1, 2", &[]).unwrap();
        let v: Vec<(String, String, String, String)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2), r.get(3))).collect();
        (v.len() == 3).then_some(v.clone()).ok_or(format!("errors so far: {v:?}"))
    });
    assert_eq!((errors[0].0.as_str(), errors[0].1.as_str(), errors[0].2.as_str()), ("accounts", "1", "FIELD_CUSTOM_VALIDATION_EXCEPTION"));
    assert_eq!((errors[1].0.as_str(), errors[1].1.as_str(), errors[1].2.as_str()), ("contacts", "10", "PARENT_FAILED"));
    assert!(errors[1].3.contains("Test accounts are not allowed"), "{}", errors[1].3);
    assert_eq!((errors[2].1.as_str(), errors[2].2.as_str()), ("12", "STRING_TOO_LONG"), "a rejected child of a good parent");
    let fine = env.sf_query("SELECT LastName FROM Contact WHERE LastName = 'Fine'");
    assert_eq!(fine.len(), 1, "siblings go through");

    // Fix the parent: it goes, and the waiting child follows with the right lookup.
    db.batch_execute("UPDATE accounts SET name = 'Renamed' WHERE id = 1").unwrap();
    let sf = env.emu.sf();
    let soql = format!("SELECT Id FROM Account WHERE Postgres_Id__c = '{}'", db.external_key("accounts", "1"));
    let account = sf.until_record(&soql)["Id"].as_str().unwrap().to_string();
    until("the orphan linked to its parent", WAIT, || {
        let r = sf.query("SELECT AccountId FROM Contact WHERE LastName = 'Orphan'");
        (r.first().and_then(|r| r["AccountId"].as_str()) == Some(account.as_str())).then_some(()).ok_or(format!("{r:?}"))
    });
    db.until_count("SELECT count(*) FROM sfsync.errors WHERE key IN ('1', '10')", 0);
}

#[test]
fn a_large_batch_goes_through_bulk_api() {
    let env = common::start();
    let mut db = env.db();
    db.set_system(&[("sfsync.bulk_threshold", "100")]);
    db.batch_execute(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL); SELECT sfsync.sync_table('accounts', 'Account');",
    )
    .unwrap();
    env.worker_pid();
    db.batch_execute("INSERT INTO accounts (name) SELECT 'Bulk ' || g FROM generate_series(1, 450) g").unwrap();
    db.until_count("SELECT count(*) FROM accounts WHERE sfid IS NOT NULL", 450);
    let counters = env.emu.admin("GET", "counters", Value::Null);
    let jobs = counters["by_endpoint"]["POST /jobs/ingest"].as_u64().unwrap_or(0);
    assert!(jobs >= 1, "no Bulk ingest job: {counters}");
    let recs = env.sf_query("SELECT Id FROM Account WHERE Name LIKE 'Bulk %'");
    assert_eq!(recs.len(), 450);
}
