//! End to end: user triggers on synced tables while the sync applies pulled records. What
//! they write is the user's change and reaches Salesforce (an enrichment BEFORE trigger, an
//! AFTER trigger writing another synced table); the sync's own writes are still not echoed.

mod common;

use sfsync_e2e::{json, scalar, until, DbExt, Value, WAIT};

fn jq(db: &mut sfsync_e2e::postgres::Client, sql: &str) -> Value {
    let text: String = scalar(db, sql);
    sfsync_e2e::serde_json::from_str(&text).unwrap()
}

#[test]
fn an_enrichment_trigger_fills_a_pulled_lead_and_salesforce_gets_its_value_once() {
    let env = common::start();
    let mut db = env.db();
    db.batch_execute(
        "CREATE TABLE segments (domain text PRIMARY KEY, segment text NOT NULL);
         INSERT INTO segments VALUES ('example.com', 'enterprise');
         CREATE TABLE leads (id bigserial PRIMARY KEY, last_name text NOT NULL, company text NOT NULL, email text, description text);
         CREATE FUNCTION enrich_lead() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.description IS NULL THEN
                 NEW.description := (SELECT s.segment FROM public.segments s WHERE s.domain = split_part(NEW.email, '@', 2));
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER enrich_lead BEFORE INSERT ON leads FOR EACH ROW EXECUTE FUNCTION enrich_lead();
         SELECT sfsync.sync_table('leads', 'Lead',
             fields => '{\"last_name\":\"LastName\",\"company\":\"Company\",\"email\":\"Email\",\"description\":\"Description\"}');",
    )
    .unwrap();
    env.worker_pid();
    let sfid = env.emu.sf().create("Lead", json!({"LastName": "Doe", "Company": "Acme", "Email": "jd@example.com"}));

    until("the lead pulled, enriched, and the enrichment in Salesforce", WAIT, || {
        let local: Option<String> = db.query_opt("SELECT description FROM leads WHERE sfid = $1", &[&sfid]).unwrap().and_then(|r| r.get(0));
        let remote = env.emu.sf().get("Lead", &sfid).expect("the lead exists")["Description"].clone();
        let outbox: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.outbox");
        (local.as_deref() == Some("enterprise") && remote == "enterprise" && outbox == 0)
            .then_some(())
            .ok_or(format!("postgres {local:?}, salesforce {remote}, outbox {outbox}"))
    });
    let v = jq(&mut db, "SELECT (sfsync.verify('leads'))::text");
    assert_eq!(v["ok"], true, "{v}");

    // No loop: the echo of the pushed value changes nothing and sends nothing. A later lead
    // (no segment for its domain) arriving shows the worker went past the echo.
    let writes = env.sf_writes();
    let later = env.emu.sf().create("Lead", json!({"LastName": "Roe", "Company": "Initech", "Email": "r@elsewhere.org"}));
    db.until_count(&format!("SELECT count(*) FROM leads WHERE sfid = '{later}' AND description IS NULL"), 1);
    db.until_outbox_drained();
    assert_eq!(env.sf_writes(), writes + 1, "only our own create of the later lead was written to Salesforce");
    let rows: i64 = scalar(&mut db, "SELECT count(*) FROM leads");
    assert_eq!(rows, 2);
    let queued: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.outbox");
    assert_eq!(queued, 0);
    let conflicts: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.conflicts");
    assert_eq!(conflicts, 0, "the sync's own value and the trigger's are no conflict");
}

#[test]
fn an_after_trigger_writing_another_synced_table_during_a_pull_is_pushed() {
    let env = common::start();
    let mut db = env.db();
    common::accounts_table(&mut db);
    db.batch_execute(
        "CREATE TABLE contacts (id bigserial PRIMARY KEY, first_name text, last_name text NOT NULL, email text);
         CREATE FUNCTION household() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO public.accounts (name) VALUES ('Household ' || NEW.last_name);
             RETURN NULL;
         END $$;
         CREATE TRIGGER household AFTER INSERT ON contacts FOR EACH ROW EXECUTE FUNCTION household();
         SELECT sfsync.sync_table('contacts', 'Contact');",
    )
    .unwrap();
    env.worker_pid();
    let sfid = env.emu.sf().create("Contact", json!({"LastName": "Byron"}));
    db.until_count(&format!("SELECT count(*) FROM contacts WHERE sfid = '{sfid}'"), 1);
    let account = env.emu.sf().until_record("SELECT Id, Name FROM Account WHERE Name = 'Household Byron'");
    db.until_count(
        &format!("SELECT count(*) FROM accounts WHERE name = 'Household Byron' AND sfid = '{}'", account["Id"].as_str().unwrap()),
        1,
    );
    db.until_outbox_drained();
    // The contact itself, the sync's own write, was not sent back (the archive keeps every
    // settled entry).
    let sent: i64 = scalar(
        &mut db,
        "SELECT count(*) FROM sfsync.outbox_archive a JOIN sfsync.mappings m ON m.id = a.mapping_id WHERE m.tbl = 'contacts'::regclass",
    );
    assert_eq!(sent, 0);
    let households: i64 = scalar(
        &mut db,
        "SELECT count(*) FROM sfsync.outbox_archive a JOIN sfsync.mappings m ON m.id = a.mapping_id WHERE m.tbl = 'accounts'::regclass",
    );
    assert!(households >= 1, "the trigger's insert went out through the outbox");
}

#[test]
fn a_trigger_writing_a_write_through_table_during_a_pull_is_queued_and_pushed() {
    // The worker never calls Salesforce inside its transaction: a write-through table
    // written by a user trigger while a pull is applied gets the change queued instead, and
    // the next pass pushes it. Before, the write was skipped as if the sync had made it.
    let env = common::start();
    let mut db = env.db();
    db.batch_execute(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL);
         SELECT sfsync.sync_table('accounts', 'Account', fields => '{\"name\":\"Name\"}', mode => 'write_through');
         CREATE TABLE contacts (id bigserial PRIMARY KEY, first_name text, last_name text NOT NULL, email text);
         CREATE FUNCTION household() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO public.accounts (name) VALUES ('Household ' || NEW.last_name);
             RETURN NULL;
         END $$;
         CREATE TRIGGER household AFTER INSERT ON contacts FOR EACH ROW EXECUTE FUNCTION household();
         SELECT sfsync.sync_table('contacts', 'Contact');",
    )
    .unwrap();
    env.worker_pid();
    let sfid = env.emu.sf().create("Contact", json!({"LastName": "Lovelace"}));
    db.until_count(&format!("SELECT count(*) FROM contacts WHERE sfid = '{sfid}'"), 1);
    let account = env.emu.sf().until_record("SELECT Id, Name FROM Account WHERE Name = 'Household Lovelace'");
    db.until_count(
        &format!("SELECT count(*) FROM accounts WHERE name = 'Household Lovelace' AND sfid = '{}'", account["Id"].as_str().unwrap()),
        1,
    );
    db.until_outbox_drained();
    let accounts: i64 = scalar(&mut db, "SELECT count(*) FROM accounts");
    assert_eq!(accounts, 1, "one household, no echo of it pulled back as a second row");
    // A user's own statement on the table still writes through at once.
    db.batch_execute("INSERT INTO accounts (name) VALUES ('Direct')").unwrap();
    let direct: Option<String> = db.query_one("SELECT sfid FROM accounts WHERE name = 'Direct'", &[]).unwrap().get(0);
    assert!(direct.is_some(), "written through inside the statement");
}
