//! End to end: user triggers on synced tables while the sync applies pulled records. What
//! they write is the user's change and reaches Salesforce (an enrichment BEFORE trigger, an
//! AFTER trigger writing another synced table, a BEFORE trigger reacting to the Id written back
//! after a push or to a refreshed formula, a BEFORE DELETE trigger keeping a row Salesforce
//! deleted); the sync's own writes are still not echoed.

mod common;

use sfsync_e2e::{json, scalar, until, DbExt, Value, WAIT};

fn jq(db: &mut sfsync_e2e::postgres::Client, sql: &str) -> Value {
    let text: String = scalar(db, sql);
    sfsync_e2e::serde_json::from_str(&text).unwrap()
}

/// Synced `contacts` whose AFTER INSERT trigger makes a household in `accounts` (made by
/// the caller, synced as the test needs).
fn households(db: &mut sfsync_e2e::postgres::Client) {
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
    households(&mut db);
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
         SELECT sfsync.sync_table('accounts', 'Account', fields => '{\"name\":\"Name\"}', mode => 'write_through');",
    )
    .unwrap();
    households(&mut db);
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

#[test]
fn a_before_trigger_reacting_to_the_id_written_back_after_a_push_is_pushed() {
    let env = common::start();
    let mut db = env.db();
    db.batch_execute(
        "CREATE TABLE leads (id bigserial PRIMARY KEY, last_name text NOT NULL, company text NOT NULL, description text);
         CREATE FUNCTION note_link() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF OLD.sfid IS NULL AND NEW.sfid IS NOT NULL THEN
                 NEW.description := 'linked to ' || NEW.sfid;
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER note_link BEFORE UPDATE ON leads FOR EACH ROW EXECUTE FUNCTION note_link();
         SELECT sfsync.sync_table('leads', 'Lead',
             fields => '{\"last_name\":\"LastName\",\"company\":\"Company\",\"description\":\"Description\"}');",
    )
    .unwrap();
    env.worker_pid();
    db.batch_execute("INSERT INTO leads (last_name, company) VALUES ('Doe', 'Acme')").unwrap();

    // The Id written back fires the trigger; what it wrote is the user's change and goes out.
    let sfid = until("the lead pushed, linked, and the trigger's value in Salesforce", WAIT, || {
        let sfid: Option<String> = scalar(&mut db, "SELECT sfid::text FROM leads");
        let local: Option<String> = scalar(&mut db, "SELECT description FROM leads");
        let Some(sfid) = sfid else { return Err("not linked yet".to_string()) };
        let remote = env.emu.sf().get("Lead", &sfid).expect("the lead exists")["Description"].clone();
        let outbox: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.outbox");
        let want = format!("linked to {sfid}");
        (local.as_deref() == Some(want.as_str()) && remote == want.as_str() && outbox == 0)
            .then_some(sfid.clone())
            .ok_or(format!("postgres {local:?}, salesforce {remote}, outbox {outbox}"))
    });
    let v = jq(&mut db, "SELECT (sfsync.verify('leads'))::text");
    assert_eq!(v["ok"], true, "{v}");
    let conflicts: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.conflicts");
    assert_eq!(conflicts, 0, "{sfid}: the trigger's value is no conflict");
}

const ROLLUP_SCHEMA: &str = r#"{"fields": {
  "Account": [
    {"name": "Pipeline__c", "type": "currency", "scale": 2,
     "rollup": {"function": "SUM", "object": "Opportunity", "field": "Amount", "via": "AccountId"}}
  ]}}"#;

#[test]
fn a_before_trigger_reacting_to_a_refreshed_formula_is_pushed() {
    let path = std::env::temp_dir().join(format!("sfsync-triggers-schema-{}.json", std::process::id()));
    std::fs::write(&path, ROLLUP_SCHEMA).unwrap();
    let env = common::start_full(&["--schema", path.to_str().unwrap()], &[("sfsync.formula_refresh_interval", "1s")]);
    let sf = env.emu.sf();
    let acme = sf.create("Account", json!({"Name": "Acme"}));
    let mut db = env.db();
    db.batch_execute(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL, pipeline numeric, website text);
         CREATE FUNCTION pipeline_page() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF NEW.pipeline IS DISTINCT FROM OLD.pipeline THEN
                 NEW.website := 'https://pipeline.example/' || NEW.pipeline::numeric(12, 0);
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER pipeline_page BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION pipeline_page();
         SELECT sfsync.sync_table('accounts', 'Account',
             fields => '{\"name\": \"Name\", \"pipeline\": \"Pipeline__c\", \"website\": \"Website\"}');",
    )
    .unwrap();
    db.until_count(&format!("SELECT count(*) FROM accounts WHERE sfid = '{acme}'"), 1);
    // Move the pull's mark well past Acme (see formula_e2e): from here on only the formula
    // refresh reads Acme again.
    env.emu.advance_clock(60_000);
    sf.create("Account", json!({"Name": "Later"}));
    db.until_count("SELECT count(*) FROM accounts", 2);
    // A child record changes the roll-up, not the account's SystemModstamp.
    sf.create(
        "Opportunity",
        json!({"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2030-01-01", "Amount": 300, "AccountId": acme}),
    );

    until("the refreshed roll-up, the trigger's website in Salesforce", WAIT, || {
        let local: Option<String> = scalar(&mut db, &format!("SELECT website FROM accounts WHERE sfid = '{acme}'"));
        let remote = sf.get("Account", &acme).expect("the account exists")["Website"].clone();
        let outbox: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.outbox");
        (local.as_deref() == Some("https://pipeline.example/300") && remote == "https://pipeline.example/300" && outbox == 0)
            .then_some(())
            .ok_or(format!("postgres {local:?}, salesforce {remote}, outbox {outbox}"))
    });
    let conflicts: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.conflicts");
    assert_eq!(conflicts, 0);
}

#[test]
fn a_row_a_before_delete_trigger_keeps_from_a_salesforce_delete_is_named_in_errors() {
    let env = common::start();
    let mut db = env.db();
    common::accounts_table(&mut db);
    db.batch_execute(
        "CREATE FUNCTION keep_accounts() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
         CREATE TRIGGER keep_accounts BEFORE DELETE ON accounts FOR EACH ROW EXECUTE FUNCTION keep_accounts();",
    )
    .unwrap();
    env.worker_pid();
    let sfid = env.emu.sf().create("Account", json!({"Name": "Kept"}));
    db.until_count(&format!("SELECT count(*) FROM accounts WHERE sfid = '{sfid}'"), 1);
    env.emu.sf().delete("Account", &sfid);

    let (code, message): (String, String) = until("the kept row in sfsync.errors", WAIT, || {
        let rows = db.query("SELECT error_code, message FROM sfsync.errors", &[]).unwrap();
        rows.first().map(|r| (r.get(0), r.get(1)))
    });
    assert_eq!(code, "ROW_KEPT_BY_TRIGGER");
    assert!(message.contains("accounts") && message.contains("trigger"), "{message}");
    let rows: i64 = scalar(&mut db, &format!("SELECT count(*) FROM accounts WHERE sfid = '{sfid}'"));
    assert_eq!(rows, 1, "the trigger kept the row");
}
