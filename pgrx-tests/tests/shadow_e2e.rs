//! `sync_table(..., mode => 'shadow')` and `sfsync.go_live`: a shadow run pulls without
//! firing the table's triggers, sends nothing and logs what it would send; going live sends
//! each logged change once, creates no duplicate, and changes then flow both ways.

mod common;

use sfsync_e2e::{json, DbExt, Value};

/// Record writes the emulator served (POST/PATCH/DELETE of sobjects, composite and Bulk
/// ingest): what pushing costs. The change stream's own POSTs are left out.
fn record_writes(env: &common::Env) -> u64 {
    let c = env.emu.admin("GET", "counters", Value::Null);
    // POST /composite counts by what it carries: the polls' queries, or the pushes of several
    // tables as Collections subrequests (counted in by_subrequest).
    let writes = |k: &str| ["POST", "PATCH", "DELETE"].iter().any(|m| k.starts_with(m)) && k != "POST /composite";
    let records = |k: &str| k.contains("sobjects") || k.contains("composite") || k.contains("ingest");
    let served = |key: &str| -> u64 {
        c[key]
            .as_object()
            .map(|m| m.iter().filter(|(k, _)| writes(k) && records(k)).map(|(_, v)| v.as_u64().unwrap_or(0)).sum())
            .unwrap_or(0)
    };
    served("by_endpoint") + served("by_subrequest")
}

#[test]
fn a_shadow_run_sends_nothing_then_goes_live_without_duplicates() {
    let env = common::start();
    let mut db = env.db();
    let sf = env.emu.sf();
    env.worker_pid();
    // A record only Salesforce has, rows only Postgres has, and a downstream trigger.
    let sam = sf.create("Contact", json!({"LastName": "Sam", "Email": "sam@example.com"}));
    db.batch_execute(
        "CREATE TABLE contacts (id bigserial PRIMARY KEY, last_name text NOT NULL, email text);
         INSERT INTO contacts (id, last_name, email) VALUES (1, 'Ann', 'ann@example.com'), (2, 'Bob', 'bob@example.com');
         SELECT setval('contacts_id_seq', 100);
         CREATE TABLE fired (id bigint);
         CREATE FUNCTION downstream() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO fired VALUES (NEW.id); RETURN NULL; END $$;
         CREATE TRIGGER downstream AFTER INSERT OR UPDATE ON contacts FOR EACH ROW EXECUTE FUNCTION downstream();",
    )
    .unwrap();
    let writes = record_writes(&env);
    db.batch_execute(
        "SELECT sfsync.sync_table('contacts', 'Contact', fields => '{\"last_name\": \"LastName\", \"email\": \"Email\"}', mode => 'shadow')",
    )
    .unwrap();

    // The backfill pulls Sam in, and the downstream trigger never hears of it.
    db.until_count(&format!("SELECT count(*) FROM contacts WHERE sfid = '{sam}' AND email = 'sam@example.com'"), 1);
    assert_eq!(db.query_one("SELECT count(*) FROM fired", &[]).unwrap().get::<_, i64>(0), 0, "no trigger fired by the pull");
    let mode: String = db.query_one("SELECT mode FROM sfsync.status WHERE \"table\" = 'contacts'::regclass", &[]).unwrap().get(0);
    assert_eq!(mode, "shadow");
    let v: Value = db.query_one("SELECT sfsync.verify('contacts')::text", &[]).unwrap().get::<_, String>(0).parse().unwrap();
    assert_eq!(v["ok"], json!(true), "both sides agree on the linked rows: {v}");

    // A local change during the run is logged, not sent.
    db.batch_execute(&format!("UPDATE contacts SET email = 'sam2@example.com' WHERE sfid = '{sam}'")).unwrap();
    db.query_one("SELECT sfsync.run_once('contacts')", &[]).unwrap(); // a whole pass, now
    let log: Vec<(String, String, String, Value)> = db
        .query("SELECT operation, origin, api, fields::text FROM sfsync.shadow_log WHERE queued_at IS NULL ORDER BY id", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get::<_, String>(3).parse().unwrap()))
        .collect();
    assert_eq!(
        log,
        vec![
            ("upsert".into(), "initial".into(), "collections".into(), json!({"LastName": "Ann", "Email": "ann@example.com"})),
            ("upsert".into(), "initial".into(), "collections".into(), json!({"LastName": "Bob", "Email": "bob@example.com"})),
            ("update".into(), "local".into(), "collections".into(), json!({"Email": "sam2@example.com"})),
        ]
    );
    assert_eq!(record_writes(&env), writes, "no Salesforce write during the shadow run");
    let held: i64 = db.query_one("SELECT count(*) FROM sfsync.outbox WHERE state = 'pending'", &[]).unwrap().get(0);
    assert_eq!(held, 3, "the changes are held in the outbox, unsent");

    // Salesforce changes another field of Sam meanwhile: the pull takes it and keeps the held
    // local change (a pending change, as on a live table); nothing is sent still.
    sf.update("Contact", &sam, json!({"LastName": "Samson"}));
    db.until_value(&format!("SELECT last_name FROM contacts WHERE sfid = '{sam}'"), "Samson".to_string());
    db.query_one("SELECT sfsync.run_once('contacts')", &[]).unwrap();
    let email: String = db.query_one(&format!("SELECT email FROM contacts WHERE sfid = '{sam}'"), &[]).unwrap().get(0);
    assert_eq!(email, "sam2@example.com", "the local change survives the pull");
    assert_eq!(record_writes(&env), writes + 1, "only the test's own Salesforce write");

    // Live: the logged changes arrive once, nothing is pulled or created again.
    let r: Value = db.query_one("SELECT sfsync.go_live('contacts')::text", &[]).unwrap().get::<_, String>(0).parse().unwrap();
    assert_eq!(r["queued"], json!({"inserts": 2, "updates": 1, "deletes": 0}), "{r}");
    sf.until_field("Contact", &sam, "Email", "sam2@example.com");
    sf.until_field("Contact", &sam, "LastName", "Samson");
    db.until_outbox_drained();
    assert!(record_writes(&env) > writes, "the counter sees pushes");
    for key in ["1", "2"] {
        let n = sf.query(&format!("SELECT Id FROM Contact WHERE Postgres_Id__c LIKE '%:{key}'")).len();
        assert_eq!(n, 1, "one record for key {key}");
    }
    assert_eq!(sf.query("SELECT Id FROM Contact").len(), 3, "Sam, Ann, Bob: no duplicate");
    db.until_count("SELECT count(*) FROM contacts WHERE sfid IS NULL", 0);
    assert_eq!(db.query_one("SELECT count(*) FROM contacts", &[]).unwrap().get::<_, i64>(0), 3);

    // Later changes flow both ways, and the downstream trigger now hears of pulls.
    db.batch_execute("INSERT INTO contacts (last_name, email) VALUES ('Cy', 'cy@example.com')").unwrap();
    sf.until_record("SELECT Id FROM Contact WHERE Email = 'cy@example.com'");
    let fired_before: i64 = db.query_one("SELECT count(*) FROM fired", &[]).unwrap().get(0);
    sf.update("Contact", &sam, json!({"LastName": "Samuel"}));
    db.until_value(&format!("SELECT last_name FROM contacts WHERE sfid = '{sam}'"), "Samuel".to_string());
    let fired_after: i64 = db.query_one("SELECT count(*) FROM fired", &[]).unwrap().get(0);
    assert!(fired_after > fired_before, "the pull of a live table fires the trigger");
}

#[test]
fn go_live_of_a_live_table_names_the_table_and_its_mode() {
    let env = common::start();
    let mut db = env.db();
    common::contacts_table(&mut db);
    let e = db.query_one("SELECT sfsync.go_live('contacts')", &[]).unwrap_err();
    let msg = e.as_db_error().map(|d| d.message().to_string()).unwrap_or_default();
    assert_eq!(
        msg,
        "sfsync.go_live: table public.contacts is not in shadow mode (its mode is async); only a table synced with mode => 'shadow' goes live"
    );
}
