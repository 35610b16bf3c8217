//! End to end: values are checked before they are sent. `sync_table` refuses a column whose
//! type cannot hold its field's values (unless the cast is asked for); a value Salesforce
//! would refuse becomes its record's error with Salesforce's code and field, without a call
//! for that record, while the other records of the same statement go through.

mod common;

use common::Env;
use sfsync_e2e::{scalar, until, DbExt, Value, WAIT};

const SCHEMA: &str = r#"{"fields": {
  "Contact": [
    {"name": "Code__c", "type": "string", "length": 5},
    {"name": "Tier__c", "type": "picklist", "picklistValues": ["Gold", "Silver"], "restrictedPicklist": true},
    {"name": "Score__c", "type": "double", "precision": 5, "scale": 2}
  ]}}"#;

fn start() -> Env {
    let path = std::env::temp_dir().join(format!("sfsync-values-schema-{}.json", std::process::id()));
    std::fs::write(&path, SCHEMA).unwrap();
    common::start_full(&["--schema", path.to_str().unwrap()], &[])
}

/// sObject Collections writes served so far: the calls a push makes.
fn collection_writes(env: &Env) -> u64 {
    let c = env.emu.admin("GET", "counters", Value::Null);
    c["by_endpoint"]
        .as_object()
        .map(|m| m.iter().filter(|(k, _)| k.contains("composite/sobjects")).map(|(_, v)| v.as_u64().unwrap_or(0)).sum())
        .unwrap_or(0)
}

#[test]
fn bad_values_become_record_errors_without_a_call_and_good_rows_go_through() {
    let env = start();
    let mut db = env.db();
    // Text columns take anything; their values are checked one by one.
    db.batch_execute(
        "CREATE TABLE people (id bigint PRIMARY KEY, last_name text NOT NULL, birthdate text, code text, tier text,
                              score numeric, no_calls text);
         SELECT sfsync.sync_table('people', 'Contact', fields => '{\"last_name\": \"LastName\", \"birthdate\": \"Birthdate\",
             \"code\": \"Code__c\", \"tier\": \"Tier__c\", \"score\": \"Score__c\", \"no_calls\": \"DoNotCall\"}');",
    )
    .unwrap();
    env.worker_pid();
    let before = collection_writes(&env);
    db.batch_execute(
        "INSERT INTO people (id, last_name, birthdate, code, tier, score, no_calls) VALUES
             (1, 'Good', '2001-02-03', 'AB', 'Gold', 123.45, 'yes'),
             (2, 'Vague', 'tomorrow', NULL, NULL, NULL, NULL),
             (3, 'Wordy', NULL, 'ABCDEF', NULL, NULL, NULL),
             (4, 'Tinny', NULL, NULL, 'Tin', NULL, NULL),
             (5, 'Huge', NULL, NULL, NULL, 1234.5, NULL),
             (6, 'Unsure', NULL, NULL, NULL, NULL, 'maybe'),
             (7, 'Fine', NULL, 'ABCDE', 'Silver', 999.99, 'f')",
    )
    .unwrap();
    db.until_count("SELECT count(*) FROM sfsync.errors", 5);
    let sf = env.emu.sf();
    let good = sf.until_records("SELECT LastName, Birthdate, Code__c, Tier__c, Score__c, DoNotCall FROM Contact ORDER BY LastName", 2);
    assert_eq!(good[0]["LastName"], "Fine");
    assert_eq!(good[0]["Code__c"], "ABCDE");
    assert_eq!(good[0]["DoNotCall"], false);
    assert_eq!(good[1]["LastName"], "Good");
    assert_eq!(good[1]["Birthdate"], "2001-02-03");
    assert_eq!(good[1]["Score__c"].as_f64(), Some(123.45));
    assert_eq!(good[1]["DoNotCall"], true);
    let errors: Vec<(String, String, Vec<String>, String)> = db
        .query("SELECT key, error_code, fields, message FROM sfsync.errors ORDER BY key", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    let codes: Vec<(&str, &str, Vec<String>)> = errors.iter().map(|(k, c, f, _)| (k.as_str(), c.as_str(), f.clone())).collect();
    assert_eq!(
        codes,
        vec![
            ("2", "INVALID_TYPE_ON_FIELD_IN_RECORD", vec!["Birthdate".to_string()]),
            ("3", "STRING_TOO_LONG", vec!["Code__c".to_string()]),
            ("4", "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", vec!["Tier__c".to_string()]),
            ("5", "NUMBER_OUTSIDE_VALID_RANGE", vec!["Score__c".to_string()]),
            ("6", "INVALID_TYPE_ON_FIELD_IN_RECORD", vec!["DoNotCall".to_string()]),
        ]
    );
    assert!(errors[0].3.contains("tomorrow"), "{}", errors[0].3);
    // One call carried the two good records; none was made for the five bad ones.
    assert_eq!(collection_writes(&env) - before, 1, "calls made for this statement");
    // Parked, not retried: no call goes out for them while nothing changes.
    let attempts: i64 = scalar(&mut db, "SELECT max(attempts)::bigint FROM sfsync.errors");
    assert_eq!(attempts, 1);
    assert!(env.emu.sf().query("SELECT Id FROM Contact WHERE LastName IN ('Vague', 'Wordy', 'Tinny', 'Huge', 'Unsure')").is_empty());
    // Fixing a value sends the record and clears its error.
    db.batch_execute("UPDATE people SET birthdate = '2000-01-01' WHERE id = 2").unwrap();
    sf.until_record("SELECT Id FROM Contact WHERE LastName = 'Vague' AND Birthdate = 2000-01-01");
    db.until_count("SELECT count(*) FROM sfsync.errors WHERE key = '2'", 0);
}

#[test]
fn an_incompatible_column_type_is_refused_unless_the_cast_is_asked_for() {
    let env = start();
    let mut db = env.db();
    db.batch_execute("CREATE TABLE deals (id bigint PRIMARY KEY, name text NOT NULL, stage text, close date, amount jsonb)").unwrap();
    let fields = r#"{"name": "Name", "stage": "StageName", "close": "CloseDate", "amount": "Amount"}"#;
    let err = db.execute("SELECT sfsync.sync_table('deals', 'Opportunity', fields => $1::text::jsonb)", &[&fields]).unwrap_err();
    let e = err.as_db_error().expect("a database error");
    assert_eq!(e.code().code(), "22023");
    assert_eq!(
        e.message(),
        "column \"amount\" (jsonb) cannot be synced with field Amount (currency): JSON documents are not values of this field type; \
         change the column's type (e.g. to numeric(16, 2)), leave the column out of fields, or map it with \
         fields => '{\"amount\": {\"field\": \"Amount\", \"cast\": true}}' to convert each value (values that do not convert are \
         refused one by one)"
    );
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.mappings"), 0, "nothing was set up");
    // Asked for, the cast is made value by value: a JSON number goes, an object is refused.
    let fields = r#"{"name": "Name", "stage": "StageName", "close": "CloseDate", "amount": {"field": "Amount", "cast": true}}"#;
    db.execute("SELECT sfsync.sync_table('deals', 'Opportunity', fields => $1::text::jsonb)", &[&fields]).unwrap();
    env.worker_pid();
    db.batch_execute(
        "INSERT INTO deals VALUES (1, 'Big', 'Prospecting', '2030-01-01', '1250.5'), (2, 'Odd', 'Prospecting', '2030-01-01', '{\"a\": 1}')",
    )
    .unwrap();
    let sf = env.emu.sf();
    let rec = sf.until_record("SELECT Amount FROM Opportunity WHERE Name = 'Big'");
    assert_eq!(rec["Amount"].as_f64(), Some(1250.5));
    let (code, fields): (String, Vec<String>) = until("deal 2 in sfsync.errors", WAIT, || {
        let rows = db.query("SELECT error_code, fields FROM sfsync.errors WHERE key = '2'", &[]).unwrap();
        rows.first().map(|r| (r.get(0), r.get(1)))
    });
    assert_eq!((code.as_str(), fields), ("INVALID_TYPE_ON_FIELD_IN_RECORD", vec!["Amount".to_string()]));
}
