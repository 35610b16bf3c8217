//! End to end: Salesforce-side schema changes noticed by the worker (a describe check with
//! If-Modified-Since, every `sfsync.schema_check_interval`, and at once after INVALID_FIELD).

mod common;

use common::accounts_table;
use sfsync_e2e::{json, scalar, DbExt};

fn start() -> common::Env {
    common::start_with(&[("sfsync.schema_check_interval", "1")])
}

fn mapped(db: &mut postgres::Client, table: &str, column: &str) -> i64 {
    scalar(
        db,
        &format!(
            "SELECT count(*) FROM sfsync.mappings m, jsonb_array_elements(m.columns) c
             WHERE m.tbl = '{table}'::regclass AND c->>'column' = '{column}'"
        ),
    )
}

#[test]
fn a_salesforce_field_removed_mid_sync_is_unmapped_and_the_rest_syncs_on() {
    let env = start();
    env.emu.admin("POST", "fields/Contact", json!({"name": "Score__c", "type": "double", "precision": 18, "scale": 0}));
    let mut db = env.db();
    db.batch_execute(
        "CREATE TABLE people (id bigserial PRIMARY KEY, last_name text NOT NULL, score numeric);
         SELECT sfsync.sync_table('people', 'Contact', fields => '{\"last_name\": \"LastName\", \"score\": \"Score__c\"}');",
    )
    .unwrap();
    accounts_table(&mut db);
    env.worker_pid();
    let sf = env.emu.sf();
    db.batch_execute("INSERT INTO people (id, last_name, score) VALUES (1, 'Ann', 5)").unwrap();
    let rec = sf.until_record(&format!("SELECT Id, Score__c FROM Contact WHERE Postgres_Id__c = '{}'", db.external_key("people", "1")));
    assert_eq!(rec["Score__c"].as_f64(), Some(5.0));
    let ann = rec["Id"].as_str().unwrap().to_string();

    let mut listener = common::alert_listener(&env);
    env.emu.admin("DELETE", "fields/Contact/Score__c", serde_json::Value::Null);
    let notified = common::next_alert(&mut listener);
    assert_eq!((notified["kind"].as_str(), notified["table"].as_str()), (Some("field_removed"), Some("public.people")), "{notified}");
    db.until_count("SELECT count(*) FROM sfsync.alerts WHERE kind = 'field_removed' AND \"table\" = 'people'", 1);
    let message: String = scalar(&mut db, "SELECT message FROM sfsync.alerts WHERE kind = 'field_removed'");
    assert!(message.contains("Contact.Score__c") && message.contains("score"), "{message}");
    assert_eq!(mapped(&mut db, "people", "score"), 0);
    assert_eq!(mapped(&mut db, "people", "last_name"), 1);
    // The error the removed field caused is not left in the status once it is unmapped.
    db.until_count("SELECT count(*) FROM sfsync.status WHERE \"table\" = 'people'::regclass AND state <> 'error'", 1);

    // The other fields go on both ways, the column keeps its data.
    db.batch_execute("INSERT INTO people (id, last_name, score) VALUES (2, 'Bob', 7)").unwrap();
    sf.until_record(&format!("SELECT Id FROM Contact WHERE Postgres_Id__c = '{}' AND LastName = 'Bob'", db.external_key("people", "2")));
    sf.update("Contact", &ann, json!({"LastName": "Anne"}));
    db.until_value("SELECT last_name FROM people WHERE id = 1", "Anne".to_string());
    let score: String = scalar(&mut db, "SELECT score::text FROM people WHERE id = 1");
    assert_eq!(score, "5");
    // Another mapping on the same connection is unaffected.
    db.batch_execute("INSERT INTO accounts (id, name) VALUES (1, 'Acme')").unwrap();
    sf.until_record(&format!("SELECT Id FROM Account WHERE Postgres_Id__c = '{}'", db.external_key("accounts", "1")));
}

#[test]
fn a_field_added_to_a_hand_mapped_object_is_offered_in_an_alert() {
    let env = start();
    let mut db = env.db();
    db.batch_execute(
        "CREATE TABLE people (id bigserial PRIMARY KEY, last_name text NOT NULL);
         SELECT sfsync.sync_table('people', 'Contact', fields => '{\"last_name\": \"LastName\"}');",
    )
    .unwrap();
    env.worker_pid();
    // A pass has run (and taken the describe as its baseline) once a push settled.
    db.batch_execute("INSERT INTO people (id, last_name) VALUES (1, 'Ann')").unwrap();
    db.until_count("SELECT count(*) FROM people WHERE sfid IS NOT NULL", 1);
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.alerts WHERE kind = 'field_added'"), 0);

    env.emu.admin("POST", "fields/Contact", json!({"name": "Tier__c", "type": "string", "length": 20}));
    db.until_count("SELECT count(*) FROM sfsync.alerts WHERE kind = 'field_added' AND \"table\" = 'people'", 1);
    let message: String = scalar(&mut db, "SELECT message FROM sfsync.alerts WHERE kind = 'field_added'");
    assert!(message.contains("Contact.Tier__c") && message.contains("sync_table"), "{message}");
    // Offered only: nothing is added to the table or the mapping.
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'people'"), 3);
}

#[test]
fn a_field_added_to_a_mirrored_object_becomes_a_column_filled_from_salesforce() {
    let env = start();
    let sf = env.emu.sf();
    let acme = sf.create("Account", json!({"Name": "Acme"}));
    let mut db = env.db();
    db.batch_execute("SELECT sfsync.mirror('Account', 'sf_accounts')").unwrap();
    env.worker_pid();
    db.until_count(&format!("SELECT count(*) FROM sf_accounts WHERE sfid = '{acme}'"), 1);
    // A later record pulled shows the worker went past its first schema check (the baseline).
    let globex = sf.create("Account", json!({"Name": "Globex"}));
    db.until_count(&format!("SELECT count(*) FROM sf_accounts WHERE sfid = '{globex}'"), 1);

    env.emu.admin("POST", "fields/Account", json!({"name": "Tier__c", "type": "string", "length": 20}));
    sf.update("Account", &acme, json!({"Tier__c": "gold"}));
    db.until_count("SELECT count(*) FROM sfsync.alerts WHERE kind = 'field_added' AND \"table\" = 'sf_accounts'", 1);
    let message: String = scalar(&mut db, "SELECT message FROM sfsync.alerts WHERE kind = 'field_added'");
    assert!(message.contains("Account.Tier__c") && message.contains("is now column"), "{message}");
    let column: String =
        scalar(&mut db, "SELECT c->>'column' FROM sfsync.mappings m, jsonb_array_elements(m.columns) c WHERE c->>'field' = 'Tier__c'");
    // The value set before the column existed arrives by the column backfill; later ones flow.
    let value = format!("SELECT \"{column}\"::text FROM sf_accounts WHERE sfid = '{acme}'");
    db.until_value(&value, Some("gold".to_string()));
    sf.update("Account", &acme, json!({"Tier__c": "platinum"}));
    db.until_value(&value, Some("platinum".to_string()));
    let other: Option<String> = scalar(&mut db, &format!("SELECT \"{column}\"::text FROM sf_accounts WHERE sfid = '{globex}'"));
    assert_eq!(other, None);

    // A field added while the worker is stopped is followed by the next one: the mirror is
    // compared with its mapping, not with what a worker last saw.
    db.batch_execute("ALTER SYSTEM SET sfsync.enabled = off").unwrap();
    db.batch_execute("SELECT pg_reload_conf()").unwrap();
    let pid = env.worker_pid();
    db.batch_execute(&format!("SELECT pg_terminate_backend({pid})")).unwrap();
    env.emu.admin("POST", "fields/Account", json!({"name": "Region__c", "type": "string", "length": 20}));
    sf.update("Account", &globex, json!({"Region__c": "EMEA"}));
    db.batch_execute("ALTER SYSTEM SET sfsync.enabled = on").unwrap();
    db.batch_execute("SELECT pg_reload_conf()").unwrap();
    db.until_count("SELECT count(*) FROM sfsync.mappings m, jsonb_array_elements(m.columns) c WHERE c->>'field' = 'Region__c'", 1);
    let region: String =
        scalar(&mut db, "SELECT c->>'column' FROM sfsync.mappings m, jsonb_array_elements(m.columns) c WHERE c->>'field' = 'Region__c'");
    db.until_value(&format!("SELECT \"{region}\"::text FROM sf_accounts WHERE sfid = '{globex}'"), Some("EMEA".to_string()));

    // Dropping a column makes the mirror hand-curated: a later field is offered, not added.
    db.batch_execute(&format!("ALTER TABLE sf_accounts DROP COLUMN \"{region}\"")).unwrap();
    env.emu.admin("POST", "fields/Account", json!({"name": "Segment__c", "type": "string", "length": 20}));
    db.until_count("SELECT count(*) FROM sfsync.alerts WHERE kind = 'field_added' AND message LIKE '%Segment__c%to sync it%'", 1);
    assert_eq!(
        scalar::<i64>(
            &mut db,
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'sf_accounts' AND column_name ILIKE '%segment%'"
        ),
        0
    );
}

#[test]
fn a_field_made_longer_in_salesforce_takes_values_the_old_length_refused() {
    let env = start();
    env.emu.admin("POST", "fields/Contact", json!({"name": "Code__c", "type": "string", "length": 5}));
    let mut db = env.db();
    db.batch_execute(
        "CREATE TABLE people (id bigserial PRIMARY KEY, last_name text NOT NULL, code text);
         SELECT sfsync.sync_table('people', 'Contact', fields => '{\"last_name\": \"LastName\", \"code\": \"Code__c\"}');",
    )
    .unwrap();
    env.worker_pid();
    // Refused before sending: longer than the field's 5 characters.
    db.batch_execute("INSERT INTO people (id, last_name, code) VALUES (1, 'Ann', 'ABCDEFG')").unwrap();
    db.until_count("SELECT count(*) FROM sfsync.errors WHERE error_code = 'STRING_TOO_LONG'", 1);

    env.emu.admin("PATCH", "fields/Contact/Code__c", json!({"length": 10}));
    db.until_count(
        "SELECT count(*) FROM sfsync.mappings m, jsonb_array_elements(m.columns) c
         WHERE c->>'field' = 'Code__c' AND (c->'limits'->>'length')::int = 10",
        1,
    );
    db.batch_execute("SELECT sfsync.retry('people')").unwrap();
    env.emu.sf().until_record(&format!(
        "SELECT Id FROM Contact WHERE Postgres_Id__c = '{}' AND Code__c = 'ABCDEFG'",
        db.external_key("people", "1")
    ));
    db.until_count("SELECT count(*) FROM sfsync.errors", 0);
}
