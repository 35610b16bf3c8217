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
    {"name": "Score__c", "type": "double", "precision": 5, "scale": 2},
    {"name": "Flag__c", "type": "boolean"},
    {"name": "Count__c", "type": "int", "digits": 9},
    {"name": "Ratio__c", "type": "percent", "precision": 5, "scale": 2},
    {"name": "Price__c", "type": "currency", "precision": 18, "scale": 2},
    {"name": "Day__c", "type": "date"},
    {"name": "At__c", "type": "datetime"},
    {"name": "Level__c", "type": "picklist", "picklistValues": ["Low", "High"]},
    {"name": "Tags__c", "type": "multipicklist", "picklistValues": ["a", "b", "c"]},
    {"name": "Note__c", "type": "string", "length": 255},
    {"name": "Doc__c", "type": "textarea", "length": 32000},
    {"name": "Site__c", "type": "url", "length": 255},
    {"name": "Mail__c", "type": "email", "length": 80},
    {"name": "Tel__c", "type": "phone", "length": 40},
    {"name": "Kind__c", "type": "combobox", "length": 40, "picklistValues": ["one"]},
    {"name": "Big__c", "type": "double", "precision": 18, "scale": 0},
    {"name": "Exact__c", "type": "currency", "precision": 18, "scale": 2}
  ]}}"#;

fn start() -> Env {
    let path = std::env::temp_dir().join(format!("sfsync-values-schema-{}.json", std::process::id()));
    std::fs::write(&path, SCHEMA).unwrap();
    common::start_full(&["--schema", path.to_str().unwrap()], &[])
}

fn jq(db: &mut sfsync_e2e::postgres::Client, sql: &str) -> Value {
    let text: String = scalar(db, sql);
    sfsync_e2e::serde_json::from_str(&text).unwrap()
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

/// Every type of docs/type-mapping.md the emulator has, in the column type the map gives it.
const ALL_TYPES: &str = "CREATE TABLE every_type (
        id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, last_name text NOT NULL, flag boolean NOT NULL DEFAULT false,
        count integer, ratio numeric(5, 2), price numeric(18, 2), day date, at timestamptz, level text, tags text[],
        note text, doc jsonb, site text, mail text, tel text, kind text, big numeric(18, 0), exact numeric(18, 2));
    SELECT sfsync.sync_table('every_type', 'Contact', fields => '{\"last_name\": \"LastName\", \"flag\": \"Flag__c\",
        \"count\": \"Count__c\", \"ratio\": \"Ratio__c\", \"price\": \"Price__c\", \"day\": \"Day__c\", \"at\": \"At__c\",
        \"level\": \"Level__c\", \"tags\": \"Tags__c\", \"note\": \"Note__c\", \"doc\": \"Doc__c\", \"site\": \"Site__c\",
        \"mail\": \"Mail__c\", \"tel\": \"Tel__c\", \"kind\": \"Kind__c\", \"big\": \"Big__c\", \"exact\": \"Exact__c\"}');";

const FIELDS: &str = "LastName, Flag__c, Count__c, Ratio__c, Price__c, Day__c, At__c, Level__c, Tags__c, Note__c, Doc__c, \
                      Site__c, Mail__c, Tel__c, Kind__c, Big__c, Exact__c";

/// The row holds exactly these values (compared in SQL, in the column's own type).
fn row_is(db: &mut sfsync_e2e::postgres::Client, sfid: &str, values: &str) {
    db.until_true(
        &format!("row {sfid} holds {values}"),
        &format!(
            "SELECT (last_name, flag, count, ratio, price, day, at, level, tags, note, doc, site, mail, tel, kind, big, exact)
                    IS NOT DISTINCT FROM ({values}) FROM every_type WHERE sfid = '{sfid}'"
        ),
    );
}

#[test]
fn every_type_round_trips_both_ways_then_verify_is_clean() {
    // Every backfill reads through a Bulk API query job (CSV).
    let path = std::env::temp_dir().join(format!("sfsync-values-schema-{}.json", std::process::id()));
    std::fs::write(&path, SCHEMA).unwrap();
    let env = common::start_full(&["--schema", path.to_str().unwrap()], &[("sfsync.backfill_bulk_threshold", "1")]);
    let mut db = env.db();
    let sf = env.emu.sf();

    // 18 digits (Salesforce's most), more than an f64 holds: exact in every direction.
    let num = |text: &str| -> Value { sfsync_e2e::serde_json::from_str(text).unwrap() };
    // Salesforce -> Postgres through the initial backfill (Bulk API query, CSV).
    let other = sf.create(
        "Contact",
        sfsync_e2e::json!({"Big__c": num("111111111111111111"), "Exact__c": num("2222222222222222.22"), "LastName": "Bulk", "Flag__c": true, "Count__c": -3, "Ratio__c": 0.5, "Price__c": 99999999.99,
               "Day__c": "1999-01-01", "At__c": "1999-12-31T23:59:59.999Z", "Level__c": "High", "Tags__c": "a;b;c",
               "Note__c": "comma, \"quote\"\nnewline", "Doc__c": "[1, {\"k\": null}]", "Site__c": "https://z.example",
               "Mail__c": "e@f.example", "Tel__c": "12", "Kind__c": "one"}),
    );
    db.batch_execute(ALL_TYPES).unwrap();
    env.worker_pid();
    row_is(
        &mut db,
        &other,
        "'Bulk', true, -3, 0.5, 99999999.99, '1999-01-01'::date, '1999-12-31T23:59:59.999Z'::timestamptz, 'High', '{a,b,c}'::text[],
         E'comma, \"quote\"\\nnewline', '[1, {\"k\": null}]'::jsonb, 'https://z.example', 'e@f.example', '12', 'one',
         111111111111111111, 2222222222222222.22",
    );
    let method: String = scalar(&mut db, "SELECT method FROM sfsync.backfill_progress WHERE \"table\" = 'every_type'::regclass");
    assert_eq!(method, "bulk");

    // Postgres -> Salesforce: the values as Salesforce stores them.
    db.batch_execute(
        "INSERT INTO every_type (id, last_name, flag, count, ratio, price, day, at, level, tags, note, doc, site, mail, tel, kind,
                                 big, exact)
         VALUES (100, 'Every', true, 42, 12.34, 1234567.89, '2024-02-29', '2024-05-20 22:49:32.123+02', 'High', '{a,c}',
                 'héllo, \"wörld\"', '{\"a\": 1, \"b\": [1.5, \"x\"]}', 'https://x.example/p?q=1', 'a@b.example', '+1 555 0100', 'one',
                 123456789012345678, 1234567890123456.78)",
    )
    .unwrap();
    let rec = sf.until_record(&format!("SELECT Id, {FIELDS} FROM Contact WHERE LastName = 'Every'"));
    let sfid = rec["Id"].as_str().unwrap().to_string();
    assert_eq!(rec["Flag__c"], true);
    assert_eq!(rec["Count__c"], 42);
    assert_eq!(rec["Ratio__c"].as_f64(), Some(12.34));
    assert_eq!(rec["Price__c"].as_f64(), Some(1234567.89));
    assert_eq!(rec["Day__c"], "2024-02-29");
    assert_eq!(rec["At__c"], "2024-05-20T20:49:32.123+0000");
    assert_eq!(rec["Level__c"], "High");
    assert_eq!(rec["Tags__c"], "a;c");
    assert_eq!(rec["Note__c"], "héllo, \"wörld\"");
    let doc: Value = sfsync_e2e::serde_json::from_str(rec["Doc__c"].as_str().unwrap()).unwrap();
    assert_eq!(doc, sfsync_e2e::json!({"a": 1, "b": [1.5, "x"]}));
    assert_eq!(rec["Site__c"], "https://x.example/p?q=1");
    assert_eq!(rec["Mail__c"], "a@b.example");
    assert_eq!(rec["Tel__c"], "+1 555 0100");
    assert_eq!(rec["Kind__c"], "one");
    // Read back raw: Salesforce's JSON holds every digit.
    assert_eq!(rec["Big__c"].to_string(), "123456789012345678.0");
    assert_eq!(rec["Exact__c"].to_string(), "1234567890123456.78");
    // The echo of our push changes nothing: the document stays a document.
    db.until_value("SELECT sfid::text FROM every_type WHERE id = 100", Some(sfid.clone()));
    db.until_outbox_drained();
    let first = "'Every', true, 42, 12.34, 1234567.89, '2024-02-29'::date, '2024-05-20T20:49:32.123Z'::timestamptz, 'High',
                 '{a,c}'::text[], 'héllo, \"wörld\"', '{\"a\": 1, \"b\": [1.5, \"x\"]}'::jsonb, 'https://x.example/p?q=1',
                 'a@b.example', '+1 555 0100', 'one', 123456789012345678, 1234567890123456.78";
    row_is(&mut db, &sfid, first);
    assert_eq!(scalar::<String>(&mut db, "SELECT jsonb_typeof(doc) FROM every_type WHERE id = 100"), "object");

    // Salesforce -> Postgres (change event, polling as the safety net): every value exact.
    sf.update(
        "Contact",
        &sfid,
        sfsync_e2e::json!({"Flag__c": false, "Count__c": 7, "Ratio__c": 99.5, "Price__c": 0.01, "Day__c": "2030-12-31",
               "At__c": "2030-01-02T03:04:05.678Z", "Level__c": "Low", "Tags__c": "b", "Note__c": "ünï", "Doc__c": "{\"z\": 5.0}",
               "Site__c": "https://y.example", "Mail__c": "c@d.example", "Tel__c": "0", "Kind__c": "free text",
               "Big__c": num("-987654321098765432"), "Exact__c": num("9876543210987654.32")}),
    );
    row_is(
        &mut db,
        &sfid,
        "'Every', false, 7, 99.5, 0.01, '2030-12-31'::date, '2030-01-02T03:04:05.678Z'::timestamptz, 'Low', '{b}'::text[], 'ünï',
         '{\"z\": 5.0}'::jsonb, 'https://y.example', 'c@d.example', '0', 'free text',
         -987654321098765432, 9876543210987654.32",
    );

    // Salesforce -> Postgres by change events alone: timed polls an hour apart, and no query
    // is made while every field changes.
    db.set_system(&[("sfsync.pull_interval", "'1h'"), ("sfsync.cdc_safety_interval", "'1h'")]);
    db.until_true("stream shown live", "SELECT bool_and(change_stream = 'live') FROM sfsync.status");
    let queries = until("no more queries for 1.5 s", WAIT, || {
        let before = env.emu.query_calls();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let after = env.emu.query_calls();
        (before == after).then_some(after).ok_or(format!("{before} -> {after} query calls"))
    });
    sf.update(
        "Contact",
        &sfid,
        sfsync_e2e::json!({"Flag__c": true, "Count__c": -123456789, "Ratio__c": -0.25, "Price__c": 1234567890123456.5,
               "Day__c": "1970-01-01", "At__c": "2000-02-29T12:00:00.001Z", "Level__c": "High", "Tags__c": "a;c", "Note__c": "line\nbreak",
               "Doc__c": "{\"n\": [1, 2.5]}", "Site__c": "https://w.example", "Mail__c": "g@h.example", "Tel__c": "+44 20",
               "Kind__c": "one", "Big__c": num("999999999999999999"), "Exact__c": num("-1234567890123456.78")}),
    );
    row_is(
        &mut db,
        &sfid,
        "'Every', true, -123456789, -0.25, 1234567890123456.5, '1970-01-01'::date, '2000-02-29T12:00:00.001Z'::timestamptz, 'High',
         '{a,c}'::text[], E'line\\nbreak', '{\"n\": [1, 2.5]}'::jsonb, 'https://w.example', 'g@h.example', '+44 20', 'one',
         999999999999999999, -1234567890123456.78",
    );
    assert_eq!(env.emu.query_calls(), queries, "applied from the change event, without a query");

    // Both sides agree, value by value.
    let v = jq(&mut db, "SELECT sfsync.verify('every_type')::text");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["sampled"], 2, "{v}");
}
