//! End to end: ALTER TABLE of a synced table (docs/guide.md, "Schema changes"). A renamed
//! column or table is followed and sync goes on both ways; a dropped column is unmapped with
//! an alert while the other fields go on; a type the field cannot hold, or dropping the key or
//! sfid, is refused with a message that says what to do.

mod common;

use common::error_line;

use common::accounts_table;
use sfsync_e2e::{json, postgres, scalar, DbExt, SfRest};

/// Account row 1, pushed and linked: its Salesforce Id.
fn linked_account(db: &mut postgres::Client, sf: &SfRest) -> String {
    db.batch_execute("INSERT INTO accounts (id, name, industry, website) VALUES (1, 'Acme', 'Energy', 'https://acme.example')").unwrap();
    let ext = db.external_key("accounts", "1");
    let rec = sf.until_record(&format!("SELECT Id FROM Account WHERE Postgres_Id__c = '{ext}'"));
    let sfid = rec["Id"].as_str().unwrap().to_string();
    db.until_value("SELECT sfid::text FROM accounts WHERE id = 1", Some(sfid.clone()));
    sfid
}

fn alert(db: &mut postgres::Client, kind: &str) -> String {
    db.until_count(&format!("SELECT count(*) FROM sfsync.alerts WHERE kind = '{kind}'"), 1);
    scalar(db, &format!("SELECT message FROM sfsync.alerts WHERE kind = '{kind}'"))
}

#[test]
fn a_renamed_column_and_table_are_followed_both_ways() {
    let env = common::start();
    let mut db = env.db();
    accounts_table(&mut db);
    env.worker_pid();
    let sf = env.emu.sf();
    let sfid = linked_account(&mut db, &sf);
    let mut listener = common::alert_listener(&env);

    db.batch_execute("ALTER TABLE accounts RENAME COLUMN industry TO sector").unwrap();
    let notified = common::next_alert(&mut listener);
    assert_eq!((notified["kind"].as_str(), notified["table"].as_str()), (Some("column_renamed"), Some("public.accounts")), "{notified}");
    let message = alert(&mut db, "column_renamed");
    assert_eq!(message, "column \"industry\" of public.accounts was renamed to \"sector\"; its mapping to field Account.Industry followed");
    // Postgres -> Salesforce, through the renamed column and through another one.
    db.batch_execute("UPDATE accounts SET sector = 'Retail' WHERE id = 1").unwrap();
    sf.until_field("Account", &sfid, "Industry", "Retail");
    db.batch_execute("UPDATE accounts SET name = 'Acme Corp' WHERE id = 1").unwrap();
    sf.until_field("Account", &sfid, "Name", "Acme Corp");
    // Salesforce -> Postgres, into the renamed column.
    sf.update("Account", &sfid, json!({"Industry": "Banking"}));
    db.until_value("SELECT sector FROM accounts WHERE id = 1", Some("Banking".to_string()));
    let fields: String = scalar(&mut db, "SELECT fields::text FROM sfsync.mappings");
    assert!(fields.contains("\"sector\": \"Industry\"") && !fields.contains("industry"), "fields follows: {fields}");

    // The table: renamed, and moved to another schema.
    db.batch_execute("CREATE SCHEMA crm; ALTER TABLE accounts RENAME TO clients; ALTER TABLE clients SET SCHEMA crm").unwrap();
    let message = alert(&mut db, "table_renamed");
    assert_eq!(message, "table clients is now crm.clients; its sync with Account goes on", "the latest of an open alert");
    db.batch_execute("INSERT INTO crm.clients (id, name, sector) VALUES (2, 'Globex', 'Energy')").unwrap();
    let ext = db.external_key("crm.clients", "2");
    sf.until_record(&format!("SELECT Id FROM Account WHERE Postgres_Id__c = '{ext}' AND Industry = 'Energy'"));
    sf.update("Account", &sfid, json!({"Name": "Acme Renamed"}));
    db.until_value("SELECT name FROM crm.clients WHERE id = 1", "Acme Renamed".to_string());
    let table: String = scalar(&mut db, "SELECT \"table\"::text FROM sfsync.status");
    assert_eq!(table, "crm.clients");
    db.until_outbox_drained();
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.errors"), 0);
}

/// The worker read the mapping before an ALTER TABLE that commits while it waits for the
/// table: the change event it holds goes into the renamed column, with no error and no
/// fallback query.
#[test]
fn a_rename_committed_while_the_worker_waits_for_the_table_is_followed() {
    let env = common::start();
    let mut db = env.db();
    accounts_table(&mut db);
    let worker = env.worker_pid();
    let sf = env.emu.sf();
    let sfid = linked_account(&mut db, &sf);
    db.until_true("stream live", "SELECT bool_and(change_stream = 'live') FROM sfsync.status");
    let queries = common::queries_settled(&env);

    let mut ddl = env.db();
    let mut alter = ddl.transaction().unwrap();
    alter.batch_execute("ALTER TABLE accounts RENAME COLUMN industry TO sector").unwrap();
    sf.update("Account", &sfid, json!({"Industry": "Banking"}));
    // The worker has the change and its mapping names `industry`: it waits for the ALTER.
    db.until_count(&format!("SELECT count(*) FROM pg_catalog.pg_locks WHERE pid = {worker} AND NOT granted"), 1);
    alter.commit().unwrap();

    db.until_value("SELECT sector FROM accounts WHERE id = 1", Some("Banking".to_string()));
    assert_eq!(env.emu.query_calls(), queries, "applied from its change event, not by a query after a failure");
    db.until_outbox_drained();
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.errors"), 0);
    let status: Option<String> = scalar(&mut db, "SELECT last_error FROM sfsync.status");
    assert_eq!(status, None);
}

#[test]
fn a_dropped_column_is_unmapped_and_what_cannot_be_followed_is_refused() {
    let env = common::start();
    let mut db = env.db();
    accounts_table(&mut db);
    env.worker_pid();
    let sf = env.emu.sf();
    let sfid = linked_account(&mut db, &sf);

    db.batch_execute("ALTER TABLE accounts DROP COLUMN website").unwrap();
    let message = alert(&mut db, "column_dropped");
    assert_eq!(message, "column \"website\" of public.accounts was dropped; field Account.Website is no longer synced");
    // The other fields go on, both ways; Salesforce's value of the dropped field is left alone.
    db.batch_execute("UPDATE accounts SET industry = 'Retail' WHERE id = 1").unwrap();
    sf.until_field("Account", &sfid, "Industry", "Retail");
    sf.update("Account", &sfid, json!({"Name": "Acme Pulled", "Website": "https://other.example"}));
    db.until_value("SELECT name FROM accounts WHERE id = 1", "Acme Pulled".to_string());
    assert_eq!(sf.get("Account", &sfid).unwrap()["Website"], "https://other.example");

    // A type the field's values cannot fit: refused, the table unchanged.
    let e = error_line(&mut db, "ALTER TABLE accounts ALTER COLUMN annual_revenue TYPE boolean USING annual_revenue > 0");
    assert!(
        e.starts_with(
            "22023: column \"annual_revenue\" of public.accounts cannot become boolean: it is synced with field Account.AnnualRevenue (currency)"
        ),
        "{e}"
    );
    assert!(e.contains("first stop syncing that field: run sfsync.sync_table('public.accounts', 'Account', fields => ...)"), "{e}");
    let ty: String = scalar(
        &mut db,
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'accounts'::regclass AND attname = 'annual_revenue'",
    );
    assert_eq!(ty, "numeric");
    // One it can: accepted, and values go on.
    db.batch_execute("ALTER TABLE accounts ALTER COLUMN annual_revenue TYPE numeric(18,2)").unwrap();
    let mapped: String = scalar(
        &mut db,
        "SELECT c ->> 'pg_type' FROM sfsync.mappings, jsonb_array_elements(columns) c WHERE c ->> 'column' = 'annual_revenue'",
    );
    assert_eq!(mapped, "numeric(18,2)");
    db.batch_execute("UPDATE accounts SET annual_revenue = 4321 WHERE id = 1").unwrap();
    sf.until_field("Account", &sfid, "AnnualRevenue", 4321.0);

    // The key and sfid: refused, with the way out.
    let e = error_line(&mut db, "ALTER TABLE accounts DROP COLUMN id");
    assert_eq!(
        e,
        "22023: column \"id\" of public.accounts cannot be dropped while the table is synced: it is the key sfsync knows each \
         row's record by; run SELECT sfsync.unsync_table('public.accounts') first"
    );
    let e = error_line(&mut db, "ALTER TABLE accounts DROP COLUMN sfid");
    assert!(e.starts_with("22023: column \"sfid\" of public.accounts cannot be dropped while the table is synced"), "{e}");
    let e = error_line(&mut db, "ALTER TABLE accounts RENAME COLUMN sfid TO salesforce_id");
    assert!(e.starts_with("22023: column \"sfid\" of public.accounts keeps its name"), "{e}");
    assert!(!e.contains("panic") && !e.contains("backtrace"), "{e}");

    // A mapping out of step (a rename while the event trigger was disabled): the write goes
    // on, the change of what is still there is captured, the rest is alerted.
    db.batch_execute(
        "ALTER EVENT TRIGGER sfsync_follow_ddl DISABLE; ALTER TABLE accounts RENAME COLUMN name TO title;
         ALTER EVENT TRIGGER sfsync_follow_ddl ENABLE;",
    )
    .unwrap();
    db.batch_execute("UPDATE accounts SET title = 'Acme Out', industry = 'Mining' WHERE id = 1").unwrap();
    let message = alert(&mut db, "out_of_step");
    assert!(message.starts_with("column \"name\" of public.accounts is synced but no longer exists"), "{message}");
    let changed: Vec<String> = scalar(&mut db, "SELECT changed FROM sfsync.outbox WHERE pk = '1' ORDER BY id DESC LIMIT 1");
    assert_eq!(changed, vec!["industry".to_string()]);
}
