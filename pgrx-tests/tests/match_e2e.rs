//! `sync_table(..., match => 'Email')`: rows are linked to the Contacts that already hold
//! their email instead of creating duplicates; ambiguity is reported, never guessed.

mod common;

use sfsync_e2e::{json, DbExt, Value};

fn contacts(db: &mut sfsync_e2e::postgres::Client) {
    db.batch_execute("CREATE TABLE contacts (id bigserial PRIMARY KEY, last_name text NOT NULL, email text)").unwrap();
}

fn sfid(db: &mut sfsync_e2e::postgres::Client, id: i64) -> Option<String> {
    db.query_one("SELECT sfid::text FROM contacts WHERE id = $1", &[&id]).unwrap().get(0)
}

/// Calls the emulator served at one endpoint (`"GET /query"`, `"POST /jobs/query"`).
fn calls(env: &common::Env, endpoint: &str) -> u64 {
    env.emu.admin("GET", "counters", Value::Null)["by_endpoint"][endpoint].as_u64().unwrap_or(0)
}

#[test]
fn existing_contacts_are_linked_by_email_and_ambiguity_is_reported() {
    link_by_email(false);
}

/// The same link through the Bulk lookup (`sfsync.match_bulk_threshold` made small): one
/// Bulk query job over the Contacts with an email instead of SOQL IN lists, same decisions.
#[test]
fn a_bulk_lookup_links_and_reports_exactly_as_the_soql_lookup() {
    link_by_email(true);
}

fn link_by_email(bulk: bool) {
    // A server setting (reloadable): the worker's later lookups take the Bulk path too.
    let env = if bulk { common::start_with(&[("sfsync.match_bulk_threshold", "2")]) } else { common::start() };
    let mut db = env.db();
    let sf = env.emu.sf();
    env.worker_pid();
    let ann = sf.create("Contact", json!({"LastName": "Ann (Salesforce)", "Email": "ann@example.com"}));
    let bob = sf.create("Contact", json!({"LastName": "Bob", "Email": "Bob@Example.com"}));
    let dup1 = sf.create("Contact", json!({"LastName": "Dup", "Email": "dup@example.com"}));
    let dup2 = sf.create("Contact", json!({"LastName": "Dup", "Email": "dup@example.com"}));
    let twice = sf.create("Contact", json!({"LastName": "Twice", "Email": "twice@example.com"}));
    let only = sf.create("Contact", json!({"LastName": "Only", "Email": "only@example.com"}));
    contacts(&mut db);
    db.batch_execute(
        "INSERT INTO contacts (id, last_name, email) VALUES
             (1, 'Ann', 'ann@example.com'), (2, 'Bob', 'bob@example.COM'), (3, 'Dup', 'dup@example.com'),
             (4, 'Twice', 'twice@example.com'), (5, 'Twice', 'TWICE@example.com'), (6, 'New', 'new@example.com'),
             (7, 'NoEmail', NULL);
         SELECT setval('contacts_id_seq', 100);",
    )
    .unwrap();

    // The worker held while sync_table runs: the query calls counted are its own.
    let lock = common::pause(&env);
    let queries = env.emu.query_calls();
    let (soql, jobs) = (calls(&env, "GET /query"), calls(&env, "POST /jobs/query"));
    let r: Value = db
        .query_one("SELECT sfsync.sync_table('contacts', 'Contact', fields => '{\"last_name\": \"LastName\", \"email\": \"Email\"}', match => 'Email')::text", &[])
        .unwrap()
        .get::<_, String>(0)
        .parse()
        .unwrap();
    // Five distinct keys: one lookup query (or one Bulk job), not one per row.
    if bulk {
        assert_eq!((calls(&env, "GET /query") - soql, calls(&env, "POST /jobs/query") - jobs), (0, 1), "{r}");
    } else {
        assert_eq!(env.emu.query_calls() - queries, 1, "lookups made by sync_table: {r}");
        assert_eq!(calls(&env, "POST /jobs/query"), jobs, "no Bulk job for five keys");
    }
    common::resume(&env, lock);
    assert_eq!(r["match"], json!({"matched": 2, "created": 2, "ambiguous": 3, "lookups": 1}), "{r}");
    // Linked at once (exact and case-different email), before the backfill looks.
    assert_eq!(sfid(&mut db, 1).as_deref(), Some(ann.as_str()));
    assert_eq!(sfid(&mut db, 2).as_deref(), Some(bob.as_str()));

    // The links write the external ID on the records; the new rows create records.
    let rec = sf.until_record(&format!("SELECT Postgres_Id__c, LastName FROM Contact WHERE Id = '{ann}' AND Postgres_Id__c != null"));
    assert!(rec["Postgres_Id__c"].as_str().unwrap().ends_with(":1"), "{rec}");
    sf.until_record(&format!("SELECT Id FROM Contact WHERE Id = '{bob}' AND Postgres_Id__c != null"));
    sf.until_record("SELECT Id FROM Contact WHERE Email = 'new@example.com'");
    sf.until_record("SELECT Id FROM Contact WHERE LastName = 'NoEmail'");
    // salesforce_wins: the linked row takes the record's values.
    db.until_value("SELECT last_name FROM contacts WHERE id = 1", Some("Ann (Salesforce)".to_string()));
    // A Salesforce record without a local row is pulled in.
    db.until_count(&format!("SELECT count(*) FROM contacts WHERE sfid = '{only}' AND email = 'only@example.com'"), 1);

    // Ambiguous on either side: reported, nothing sent for those rows.
    let errors: Vec<(String, String, String)> = db
        .query("SELECT key, error_code, message FROM sfsync.errors WHERE \"table\" = 'contacts'::regclass ORDER BY key", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        errors.iter().map(|e| (e.0.as_str(), e.1.as_str())).collect::<Vec<_>>(),
        [("3", "AMBIGUOUS_MATCH"), ("4", "AMBIGUOUS_MATCH"), ("5", "AMBIGUOUS_MATCH")]
    );
    assert!(errors[0].2.contains(&dup1) && errors[0].2.contains(&dup2), "{errors:?}");
    assert!(errors[1].2.contains("2 rows") && errors[1].2.contains(&twice), "{errors:?}");
    db.until_count("SELECT count(*) FROM sfsync.outbox WHERE state = 'pending'", 0);
    assert_eq!(sfid(&mut db, 3), None);
    assert_eq!(sfid(&mut db, 4), None);
    // No duplicate: the six records, plus the two rows that matched nothing.
    assert_eq!(sf.query("SELECT Id FROM Contact").len(), 8);
    assert_eq!(sf.query("SELECT Id FROM Contact WHERE Email = 'ann@example.com'").len(), 1);
}

#[test]
fn a_later_insert_links_to_the_record_with_its_email() {
    let env = common::start();
    let mut db = env.db();
    let sf = env.emu.sf();
    env.worker_pid();
    contacts(&mut db);
    db.batch_execute(
        "SELECT sfsync.sync_table('contacts', 'Contact', fields => '{\"last_name\": \"LastName\", \"email\": \"Email\"}',
                                  direction => 'push', conflict => 'postgres_wins', match => '{\"email\": \"Email\"}')",
    )
    .unwrap();
    let carol = sf.create("Contact", json!({"LastName": "Carol (old)", "Email": "carol@example.com"}));
    let before = sf.query("SELECT Id FROM Contact").len();

    db.batch_execute("INSERT INTO contacts (last_name, email) VALUES ('Carol', 'Carol@Example.COM')").unwrap();
    db.until_value("SELECT sfid::text FROM contacts WHERE last_name = 'Carol'", Some(carol.clone()));
    // postgres_wins: the row's values are written on the record, with the external ID.
    let rec = sf.until_record(&format!("SELECT LastName, Postgres_Id__c FROM Contact WHERE Id = '{carol}' AND LastName = 'Carol'"));
    assert!(rec["Postgres_Id__c"].as_str().is_some_and(|v| v.ends_with(":1")), "{rec}");
    assert_eq!(sf.query("SELECT Id FROM Contact").len(), before, "no Contact was created");

    // Later changes of the linked row go to that record.
    db.batch_execute("UPDATE contacts SET last_name = 'Carol B' WHERE last_name = 'Carol'").unwrap();
    sf.until_field("Contact", &carol, "LastName", "Carol B");
}

#[test]
fn linking_many_rows_takes_one_lookup_per_200_keys() {
    let env = common::start();
    let mut db = env.db();
    let sf = env.emu.sf();
    env.worker_pid();
    // seed1@example.com .. seed300@example.com
    env.emu.admin("POST", "seed", json!({"object": "Contact", "count": 300}));
    contacts(&mut db);
    db.batch_execute(
        "INSERT INTO contacts (last_name, email) SELECT 'Row ' || i, 'Seed' || i || '@example.com' FROM generate_series(1, 450) i",
    )
    .unwrap();
    let lock = common::pause(&env);
    let (queries, writes) = (env.emu.query_calls(), env.sf_writes());
    let r: Value = db
        .query_one(
            "SELECT sfsync.sync_table('contacts', 'Contact', fields => '{\"last_name\": \"LastName\", \"email\": \"Email\"}',
                                      direction => 'push', match => 'Email')::text",
            &[],
        )
        .unwrap()
        .get::<_, String>(0)
        .parse()
        .unwrap();
    assert_eq!(r["match"], json!({"matched": 300, "created": 150, "ambiguous": 0, "lookups": 3}), "{r}");
    assert_eq!(env.emu.query_calls() - queries, 3, "ceil(450 / 200) lookups");
    common::resume(&env, lock);
    db.until_outbox_drained();
    assert_eq!(sf.query("SELECT Id FROM Contact").len(), 450);
    // 300 updates and 150 creates in Collections calls of up to 200 records.
    let writes = env.sf_writes() - writes;
    assert!(writes <= 3, "writes: {writes}");
    assert_eq!(db.query_one("SELECT count(*) FROM contacts WHERE sfid IS NULL", &[]).unwrap().get::<_, i64>(0), 0);
}
