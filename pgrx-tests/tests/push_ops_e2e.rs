//! End to end: write-through mode (each change is in Salesforce when the statement returns,
//! or the statement fails with Salesforce's error), the outbox archive, and the operator
//! functions sfsync.retry / sfsync.discard on parked records.

mod common;

use common::error_of;

use common::{accounts_table, contacts_table};
use sfsync_e2e::{json, scalar, until, DbExt, Value, WAIT};
use std::time::Duration;

/// Adds a validation rule rejecting Contacts whose LastName equals `value`; returns its id.
fn reject_last_name(env: &common::Env, value: &str) -> u64 {
    let rule = env.emu.admin(
        "POST",
        "validation_rules",
        json!({"object": "Contact", "name": "no_" , "field": "LastName", "op": "equals", "value": value,
               "message": format!("{value} is not a real name"), "error_field": "LastName"}),
    );
    rule["id"].as_u64().expect("rule id")
}

fn contact_by_key(env: &common::Env, key: &str) -> Option<Value> {
    let ext = env.db().external_key("contacts", key);
    env.sf_query(&format!("SELECT Id, FirstName, LastName, Email FROM Contact WHERE Postgres_Id__c = '{ext}'")).first().cloned()
}

#[test]
fn write_through_changes_are_in_salesforce_when_the_statement_returns() {
    let env = common::start();
    let mut db = env.db();
    db.batch_execute(
        "CREATE TABLE contacts (id bigserial PRIMARY KEY, first_name text, last_name text NOT NULL, email text);
         SELECT sfsync.sync_table('contacts', 'Contact', mode => 'write_through');",
    )
    .unwrap();
    env.worker_pid();

    // Insert: upserted on the key; the Id is in the row the statement returns.
    let row = db
        .query_one(
            "INSERT INTO contacts (id, first_name, last_name, email) VALUES (7, 'Ada', 'Lovelace', 'ada@example.com') RETURNING sfid",
            &[],
        )
        .unwrap();
    let sfid: String = row.get(0);
    assert_eq!(sfid.len(), 18, "sfid set by the statement itself: {sfid}");
    let rec = contact_by_key(&env, "7").expect("in Salesforce as soon as the INSERT returned");
    assert_eq!(rec["Id"], sfid.as_str());
    assert_eq!(rec["LastName"], "Lovelace");
    assert_eq!(rec["Email"], "ada@example.com");
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.outbox"), 0, "write-through uses no outbox");
    let stored: Option<String> = scalar(&mut db, "SELECT sfid::text FROM contacts WHERE id = 7");
    assert_eq!(stored.as_deref(), Some(sfid.as_str()));

    // Update: only the changed field, by Id.
    db.batch_execute("UPDATE contacts SET email = 'countess@example.com' WHERE id = 7").unwrap();
    assert_eq!(env.emu.sf().get("Contact", &sfid).unwrap()["Email"], "countess@example.com");

    // A value Salesforce would refuse is found before sending: the statement fails with
    // Salesforce's code for it, no call is made, and nothing is written locally.
    let long = "x".repeat(81); // Contact.LastName is 80 long
    let writes = env.sf_writes();
    let (state, msg) = error_of(&mut db, &format!("INSERT INTO contacts (id, last_name) VALUES (8, '{long}')"));
    assert_eq!(state, "22000", "data exception: {msg}");
    assert!(
        msg.starts_with("sfsync refused the insert of contacts key 8 before sending it to Salesforce: STRING_TOO_LONG: LastName"),
        "{msg}"
    );
    assert_eq!(env.sf_writes(), writes, "no call for a value checked locally");
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM contacts WHERE id = 8"), 0);
    assert!(contact_by_key(&env, "8").is_none());

    let rule = reject_last_name(&env, "Nobody");
    let (_, msg) = error_of(&mut db, "UPDATE contacts SET last_name = 'Nobody' WHERE id = 7");
    assert!(msg.contains("update of contacts key 7: FIELD_CUSTOM_VALIDATION_EXCEPTION: Nobody is not a real name"), "{msg}");
    assert_eq!(scalar::<String>(&mut db, "SELECT last_name FROM contacts WHERE id = 7"), "Lovelace", "the UPDATE rolled back");
    // A rejection in the middle of a multi-row statement fails all of it.
    let (_, msg) = error_of(&mut db, "INSERT INTO contacts (id, last_name) VALUES (9, 'Hopper'), (10, 'Nobody')");
    assert!(msg.contains("insert of contacts key 10: FIELD_CUSTOM_VALIDATION_EXCEPTION"), "{msg}");
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM contacts WHERE id = 10"), 0);
    // Row 9 reached Salesforce before row 10 failed the statement; Postgres rolled it back,
    // so the worker removes the record it made (Salesforce ends as Postgres committed), and
    // its echo never brings row 9 back.
    until("record 9 removed from Salesforce", WAIT, || contact_by_key(&env, "9").is_none().then_some(()).ok_or("still there"));
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM contacts WHERE id = 9"), 0);
    env.emu.admin("DELETE", &format!("validation_rules/{rule}"), Value::Null);
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.outbox"), 0, "rejections leave no outbox entry");

    // The pull side keeps working, and what it applies is not sent back.
    let writes = env.sf_writes();
    // Created in Salesforce under the key sfsync.external_key gives: it lands as row 42.
    let pulled = env.emu.sf().create("Contact", json!({"LastName": "Pulled", "Postgres_Id__c": db.external_key("contacts", "42")}));
    db.until_count(&format!("SELECT count(*) FROM contacts WHERE id = 42 AND sfid = '{pulled}'"), 1);
    assert_eq!(env.sf_writes(), writes + 1, "only our create: the pulled row was not written back");

    // Delete: gone from Salesforce when the statement returns.
    db.batch_execute("DELETE FROM contacts WHERE id = 7").unwrap();
    assert!(env.sf_query(&format!("SELECT Id FROM Contact WHERE Id = '{sfid}'")).is_empty());
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.outbox"), 0);
}

#[test]
fn archive_retry_and_discard() {
    let env = common::start();
    let mut db = env.db();
    contacts_table(&mut db);
    env.worker_pid();

    // A pushed record is archived as 'sent' with its Salesforce Id.
    db.batch_execute("INSERT INTO contacts (id, first_name, last_name) VALUES (1, 'Ada', 'Lovelace')").unwrap();
    let (outcome, archived_id) = until("contact 1 in the outbox archive", WAIT, || {
        let rows = db.query("SELECT outcome, salesforce_id::text FROM sfsync.outbox_archive WHERE pk = '1'", &[]).unwrap();
        rows.first().map(|r| (r.get::<_, String>(0), r.get::<_, Option<String>>(1)))
    });
    assert_eq!(outcome, "sent");
    let sfid: Option<String> = scalar(&mut db, "SELECT sfid::text FROM contacts WHERE id = 1");
    assert!(sfid.is_some());
    assert_eq!(archived_id, sfid);
    assert_eq!(contact_by_key(&env, "1").unwrap()["Id"], sfid.unwrap().as_str());

    // A record the org's validation rule rejects is parked...
    let rule = reject_last_name(&env, "Blocked");
    db.batch_execute("INSERT INTO contacts (id, last_name) VALUES (2, 'Blocked')").unwrap();
    let code = until("contact 2 rejected in sfsync.errors", WAIT, || {
        let rows = db.query("SELECT error_code FROM sfsync.errors WHERE key = '2'", &[]).unwrap();
        rows.first().map(|r| r.get::<_, String>(0))
    });
    assert_eq!(code, "FIELD_CUSTOM_VALIDATION_EXCEPTION");
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.outbox WHERE pk = '2' AND state = 'failed'"), 1);

    // ...until the rule is fixed and an operator retries it.
    env.emu.admin("DELETE", &format!("validation_rules/{rule}"), Value::Null);
    assert_eq!(scalar::<i64>(&mut db, "SELECT sfsync.retry('contacts', '2')"), 1);
    let rec = env.emu.sf().until_record(&format!(
        "SELECT Id, FirstName, LastName, Email FROM Contact WHERE Postgres_Id__c = '{}'",
        db.external_key("contacts", "2")
    ));
    assert_eq!(rec["LastName"], "Blocked");
    until("no errors and the outbox drained", WAIT, || {
        let n: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.errors");
        let o: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.outbox");
        (n == 0 && o == 0).then_some(()).ok_or(format!("{n} errors, {o} outbox entries"))
    });
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.outbox_archive WHERE pk = '2' AND outcome = 'sent'"), 1);

    // A parked record nobody wants is discarded: gone from the outbox and the errors, archived.
    reject_last_name(&env, "Unwanted");
    db.batch_execute("INSERT INTO contacts (id, last_name) VALUES (3, 'Unwanted')").unwrap();
    db.until_count("SELECT count(*) FROM sfsync.outbox WHERE pk = '3' AND state = 'failed'", 1);
    assert_eq!(scalar::<i64>(&mut db, "SELECT sfsync.discard('contacts', '3')"), 1);
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.errors"), 0);
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.outbox"), 0);
    let error: String = scalar(&mut db, "SELECT error FROM sfsync.outbox_archive WHERE pk = '3' AND outcome = 'discarded'");
    assert!(error.starts_with("FIELD_CUSTOM_VALIDATION_EXCEPTION: Unwanted is not a real name"), "{error}");
    assert!(contact_by_key(&env, "3").is_none());
    let state: String = scalar(&mut db, "SELECT state FROM sfsync.status WHERE \"table\" = 'contacts'::regclass");
    assert_eq!(state, "running");

    // Bad input is named.
    let (_, msg) = error_of(&mut db, "SELECT sfsync.retry('contacts', '999')");
    assert_eq!(msg, "public.contacts has no queued or failed change for key '999' (see sfsync.errors)");
}

/// A table whose requests Salesforce refuses as a whole backs off alone: the other tables on
/// the connection keep syncing at their pace. Only a failure of the connection itself (network,
/// login, limits) holds them all up.
#[test]
fn a_refused_table_does_not_hold_up_the_other_tables_on_its_connection() {
    let env = common::start();
    let mut db = env.db();
    accounts_table(&mut db);
    contacts_table(&mut db);
    env.worker_pid();
    let sf = env.emu.sf();
    // The newest API version, which the worker's client negotiates.
    let (_, versions) = sf.request("GET", "/services/data/", None);
    let newest = versions.as_array().and_then(|v| v.last()).and_then(|v| v["url"].as_str()).expect("the versions resource").to_string();
    env.emu.add_fault(json!({"kind": "status", "status": 400, "path_prefix": format!("{newest}/composite/sobjects/Contact")}));
    db.batch_execute("INSERT INTO contacts (last_name) VALUES ('Refused')").unwrap();
    db.until_true(
        "the refusal shown on the table",
        "SELECT last_error LIKE 'push: %' FROM sfsync.status WHERE \"table\" = 'contacts'::regclass",
    );
    // Long enough for a backoff of the whole connection to have grown past 8 s.
    std::thread::sleep(Duration::from_secs(8));
    db.batch_execute("INSERT INTO accounts (name) VALUES ('Unaffected')").unwrap();
    until("the account in Salesforce while the contacts are refused", Duration::from_secs(4), || {
        !sf.query("SELECT Id FROM Account WHERE Name = 'Unaffected'").is_empty()
    });
    let connection_error: Option<String> =
        scalar(&mut db, "SELECT max(last_error) FROM sfsync.connection_state WHERE connection = 'default'");
    assert_eq!(connection_error, None, "the connection itself is fine");
    env.emu.clear_faults();
    sf.until_record("SELECT Id FROM Contact WHERE LastName = 'Refused'");
    db.until_true("the table's push error cleared", "SELECT last_error IS NULL FROM sfsync.status WHERE \"table\" = 'contacts'::regclass");
}
