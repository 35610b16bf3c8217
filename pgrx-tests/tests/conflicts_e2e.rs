//! End to end: conflict policies (both sides change a record while the worker is paused),
//! delete policies from either side (propagate, ignore, review with approve and reject), a
//! pulled delete blocked by a foreign key, and records leaving the mapping's filter.

mod common;

use common::{pause, resume, Env};
use sfsync_e2e::{json, postgres, scalar, until, DbExt, Value, WAIT};

fn contacts(db: &mut postgres::Client, options: &str) {
    db.batch_execute(&format!(
        "CREATE TABLE contacts (id bigserial PRIMARY KEY, first_name text, last_name text NOT NULL, email text);
         SELECT sfsync.sync_table('contacts', 'Contact'{options});"
    ))
    .unwrap();
}

/// Inserts a contact and waits until it is in Salesforce and linked; returns its Id.
fn pushed_contact(_env: &Env, db: &mut postgres::Client, id: i64, email: &str) -> String {
    db.execute("INSERT INTO contacts (id, first_name, last_name, email) VALUES ($1, 'Ada', 'Lovelace', $2)", &[&id, &email]).unwrap();
    until(&format!("contact {id} pushed and linked"), WAIT, || {
        let sfid: Option<String> = db.query_one("SELECT sfid::text FROM contacts WHERE id = $1", &[&id]).unwrap().get(0);
        let outbox: i64 = scalar(db, "SELECT count(*) FROM sfsync.outbox");
        match sfid {
            Some(s) if outbox == 0 => Ok(s),
            _ => Err(format!("sfid {sfid:?}, outbox {outbox}")),
        }
    })
}

/// Waits until the outbox is drained and `check` holds.
fn settled(env: &Env, db: &mut postgres::Client, check: impl Fn(&mut postgres::Client, &Env) -> Result<(), String>) {
    until("the outbox drained and the conflict settled", WAIT, || {
        let outbox: i64 = scalar(db, "SELECT count(*) FROM sfsync.outbox");
        if outbox > 0 {
            return Err(format!("{outbox} outbox entries left"));
        }
        check(db, env)
    })
}

fn pg_email(db: &mut postgres::Client, id: i64) -> Option<String> {
    db.query_one("SELECT email FROM contacts WHERE id = $1", &[&id]).unwrap().get(0)
}

fn sf_field(env: &Env, sfid: &str, field: &str) -> Value {
    env.emu.sf().get("Contact", sfid).expect("record exists")[field].clone()
}

/// (winner, columns, postgres_values, salesforce_values) of the conflicts of key `key`.
fn conflicts(db: &mut postgres::Client, key: &str) -> Vec<(String, Vec<String>, Value, Value)> {
    db.query(
        "SELECT winner, columns, postgres_values::text, salesforce_values::text FROM sfsync.conflicts
         WHERE \"table\" = 'contacts'::regclass AND key = $1 ORDER BY id",
        &[&key],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), parse(r.get(2)), parse(r.get(3))))
    .collect()
}

fn parse(text: String) -> Value {
    serde_json::from_str(&text).expect("json")
}

#[test]
fn salesforce_wins_by_default_and_the_local_change_is_recorded() {
    let env = common::start();
    let mut db = env.db();
    contacts(&mut db, "");
    env.worker_pid();
    let sfid = pushed_contact(&env, &mut db, 1, "ada@example.com");

    let lock = pause(&env);
    env.emu.sf().update("Contact", &sfid, json!({"Email": "sf@example.com"}));
    // Email changes on both sides; FirstName only here.
    db.batch_execute("UPDATE contacts SET email = 'pg@example.com', first_name = 'Augusta' WHERE id = 1").unwrap();
    resume(&env, lock);

    settled(&env, &mut db, |db, env| {
        let (pg, sf, first) = (pg_email(db, 1), sf_field(env, &sfid, "Email"), sf_field(env, &sfid, "FirstName"));
        (pg.as_deref() == Some("sf@example.com") && sf == "sf@example.com" && first == "Augusta")
            .then_some(())
            .ok_or(format!("postgres {pg:?}, salesforce {sf} / {first}"))
    });
    let c = conflicts(&mut db, "1");
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].0, "salesforce");
    assert_eq!(c[0].1, vec!["email".to_string()]);
    assert_eq!(c[0].2, json!({"email": "pg@example.com"}), "the losing local value is kept");
    assert_eq!(c[0].3, json!({"email": "sf@example.com"}));
    let first: Option<String> = scalar(&mut db, "SELECT first_name FROM contacts WHERE id = 1");
    assert_eq!(first.as_deref(), Some("Augusta"), "the column only Postgres changed is kept and sent");
    let (policy, sf_mod, pg_mod): (String, bool, bool) = {
        let r = db
            .query_one("SELECT policy, salesforce_modified IS NOT NULL, postgres_modified IS NOT NULL FROM sfsync.conflicts", &[])
            .unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!((policy.as_str(), sf_mod, pg_mod), ("salesforce_wins", true, true));
}

#[test]
fn an_echo_of_an_earlier_push_is_no_conflict_and_the_newer_local_value_goes_out() {
    let env = common::start();
    let mut db = env.db();
    contacts(&mut db, "");
    env.worker_pid();
    let sfid = pushed_contact(&env, &mut db, 1, "ada@example.com"); // first_name 'Ada' sent
    db.batch_execute("UPDATE contacts SET first_name = 'Bea' WHERE id = 1").unwrap();
    settled(&env, &mut db, |_, env| {
        let first = sf_field(env, &sfid, "FirstName");
        (first == "Bea").then_some(()).ok_or(format!("salesforce {first}"))
    });

    let lock = pause(&env);
    db.batch_execute("UPDATE contacts SET first_name = 'Cy' WHERE id = 1").unwrap();
    // A stale version of the record: FirstName as we pushed it before 'Bea' (a late event of
    // our own write, a retried push), and a real Salesforce change of another field.
    env.emu.sf().update("Contact", &sfid, json!({"FirstName": "Ada", "Email": "sf@example.com"}));
    resume(&env, lock);

    settled(&env, &mut db, |db, env| {
        let first: Option<String> = scalar(db, "SELECT first_name FROM contacts WHERE id = 1");
        let (pg, sf_first, sf_email) = (pg_email(db, 1), sf_field(env, &sfid, "FirstName"), sf_field(env, &sfid, "Email"));
        (first.as_deref() == Some("Cy") && pg.as_deref() == Some("sf@example.com") && sf_first == "Cy" && sf_email == "sf@example.com")
            .then_some(())
            .ok_or(format!("postgres {first:?} {pg:?}, salesforce {sf_first} {sf_email}"))
    });
    let c = conflicts(&mut db, "1");
    assert!(c.is_empty(), "an echo of our own push is no conflict: {c:?}");
}

/// Timed polls an hour apart: only the change stream brings Salesforce's changes in time.
const STREAM_ONLY: &[(&str, &str)] = &[("sfsync.pull_interval", "1h"), ("sfsync.cdc_safety_interval", "1h")];

#[test]
fn a_field_the_change_event_did_not_change_is_no_conflict() {
    let env = common::start_with(STREAM_ONLY);
    let mut db = env.db();
    contacts(&mut db, "");
    env.worker_pid();
    let sfid = env.emu.sf().create("Contact", json!({"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com"}));
    db.until_true("contact pulled", &format!("SELECT EXISTS (SELECT 1 FROM contacts WHERE sfid = '{sfid}')"));
    db.until_true("stream shown live", "SELECT bool_and(change_stream = 'live') FROM sfsync.status");
    // The local first name differs from Salesforce's with nothing pending (written with capture
    // off): Salesforce's 'Ada' is then neither a value of the local chain nor one we sent, so
    // only the event's changed fields can tell it is no Salesforce change.
    db.batch_execute(&format!(
        "SET session_replication_role = replica;
         UPDATE contacts SET first_name = 'Bea' WHERE sfid = '{sfid}';
         RESET session_replication_role;"
    ))
    .unwrap();
    let lock = pause(&env);
    db.batch_execute(&format!("UPDATE contacts SET first_name = 'Cy' WHERE sfid = '{sfid}'")).unwrap();
    // Salesforce changes another field; its change event lists only that one.
    env.emu.sf().update("Contact", &sfid, json!({"Email": "sf@example.com"}));
    // The stream keeps listening while passes are paused: the event waits in the inbox.
    std::thread::sleep(std::time::Duration::from_secs(2));
    resume(&env, lock);

    settled(&env, &mut db, |db, env| {
        let first: Option<String> = scalar(db, &format!("SELECT first_name FROM contacts WHERE sfid = '{sfid}'"));
        let email: Option<String> = scalar(db, &format!("SELECT email FROM contacts WHERE sfid = '{sfid}'"));
        let sf_first = sf_field(env, &sfid, "FirstName");
        (first.as_deref() == Some("Cy") && email.as_deref() == Some("sf@example.com") && sf_first == "Cy")
            .then_some(())
            .ok_or(format!("postgres {first:?} {email:?}, salesforce {sf_first}"))
    });
    let n: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.conflicts");
    assert_eq!(n, 0, "a field the change event did not change is no conflict");
}

#[test]
fn salesforce_holding_a_value_of_the_pending_chain_is_no_conflict() {
    let env = common::start();
    let mut db = env.db();
    contacts(&mut db, "");
    env.worker_pid();
    let sfid = pushed_contact(&env, &mut db, 1, "ada@example.com"); // first_name 'Ada'

    let lock = pause(&env);
    // Two local changes pending (Ada -> Bea -> Cy). Salesforce holds Bea, as when the push
    // of Bea landed but its answer was lost, and Email was changed there meanwhile.
    db.batch_execute("UPDATE contacts SET first_name = 'Bea' WHERE id = 1").unwrap();
    db.batch_execute("UPDATE contacts SET first_name = 'Cy' WHERE id = 1").unwrap();
    env.emu.sf().update("Contact", &sfid, json!({"FirstName": "Bea", "Email": "sf@example.com"}));
    resume(&env, lock);

    settled(&env, &mut db, |db, env| {
        let first: Option<String> = scalar(db, "SELECT first_name FROM contacts WHERE id = 1");
        let (pg, sf_first) = (pg_email(db, 1), sf_field(env, &sfid, "FirstName"));
        (first.as_deref() == Some("Cy") && pg.as_deref() == Some("sf@example.com") && sf_first == "Cy")
            .then_some(())
            .ok_or(format!("postgres {first:?} {pg:?}, salesforce {sf_first}"))
    });
    let c = conflicts(&mut db, "1");
    assert!(c.is_empty(), "Salesforce holding an earlier value of ours is no conflict: {c:?}");
}

#[test]
fn postgres_wins_overwrites_salesforce_and_records_its_version() {
    let env = common::start();
    let mut db = env.db();
    contacts(&mut db, ", conflict => 'postgres_wins'");
    env.worker_pid();
    let sfid = pushed_contact(&env, &mut db, 1, "ada@example.com");

    let lock = pause(&env);
    env.emu.sf().update("Contact", &sfid, json!({"Email": "sf@example.com", "LastName": "Byron"}));
    db.batch_execute("UPDATE contacts SET email = 'pg@example.com' WHERE id = 1").unwrap();
    resume(&env, lock);

    settled(&env, &mut db, |db, env| {
        let (pg, sf) = (pg_email(db, 1), sf_field(env, &sfid, "Email"));
        let last: String = scalar(db, "SELECT last_name FROM contacts WHERE id = 1");
        (pg.as_deref() == Some("pg@example.com") && sf == "pg@example.com" && last == "Byron")
            .then_some(())
            .ok_or(format!("postgres {pg:?} {last}, salesforce {sf}"))
    });
    assert_eq!(sf_field(&env, &sfid, "LastName"), "Byron", "what only Salesforce changed stays");
    let c = conflicts(&mut db, "1");
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].0, "postgres");
    assert_eq!(c[0].1, vec!["email".to_string()]);
    assert_eq!(c[0].3, json!({"email": "sf@example.com"}), "the losing Salesforce value is kept");
}

#[test]
fn last_modified_wins_lets_the_later_change_win() {
    let env = common::start();
    let mut db = env.db();
    contacts(&mut db, ", conflict => 'last_modified_wins'");
    env.worker_pid();
    let a = pushed_contact(&env, &mut db, 1, "a@example.com");
    let b = pushed_contact(&env, &mut db, 2, "b@example.com");

    let lock = pause(&env);
    // Record 1: Salesforce first, then Postgres. Record 2: Postgres first, then Salesforce.
    env.emu.sf().update("Contact", &a, json!({"Email": "sf1@example.com"}));
    db.batch_execute("UPDATE contacts SET email = 'pg1@example.com' WHERE id = 1").unwrap();
    db.batch_execute("UPDATE contacts SET email = 'pg2@example.com' WHERE id = 2").unwrap();
    // Salesforce's LastModifiedDate has millisecond precision: let the clock move on.
    std::thread::sleep(std::time::Duration::from_millis(20));
    env.emu.sf().update("Contact", &b, json!({"Email": "sf2@example.com"}));
    resume(&env, lock);

    settled(&env, &mut db, |db, env| {
        let got = (pg_email(db, 1), sf_field(env, &a, "Email"), pg_email(db, 2), sf_field(env, &b, "Email"));
        (got.0.as_deref() == Some("pg1@example.com")
            && got.1 == "pg1@example.com"
            && got.2.as_deref() == Some("sf2@example.com")
            && got.3 == "sf2@example.com")
            .then_some(())
            .ok_or(format!("{got:?}"))
    });
    let c1 = conflicts(&mut db, "1");
    assert_eq!((c1.len(), c1[0].0.as_str()), (1, "postgres"));
    assert_eq!(c1[0].3, json!({"email": "sf1@example.com"}));
    let c2 = conflicts(&mut db, "2");
    assert_eq!((c2.len(), c2[0].0.as_str()), (1, "salesforce"));
    assert_eq!(c2[0].2, json!({"email": "pg2@example.com"}));
}

/// A record created in Salesforce and pulled; returns its Id once the row is here.
fn pulled_contact(env: &Env, db: &mut postgres::Client, last_name: &str) -> String {
    let id = env.emu.sf().create("Contact", json!({"LastName": last_name}));
    db.until_count(&format!("SELECT count(*) FROM contacts WHERE sfid = '{id}'"), 1);
    id
}

fn exists_in_sf(env: &Env, sfid: &str) -> bool {
    !env.sf_query(&format!("SELECT Id FROM Contact WHERE Id = '{sfid}'")).is_empty()
}

fn local_rows(db: &mut postgres::Client, sfid: &str) -> i64 {
    scalar(db, &format!("SELECT count(*) FROM contacts WHERE sfid = '{sfid}'"))
}

/// Waits for one full worker round trip: a marker record pushed from Postgres.
fn round_trip(env: &Env, db: &mut postgres::Client, id: i64) {
    db.execute("INSERT INTO contacts (id, last_name) VALUES ($1, 'Marker')", &[&id]).unwrap();
    let ext = db.external_key("contacts", &id.to_string());
    env.emu.sf().until_record(&format!("SELECT Id FROM Contact WHERE Postgres_Id__c = '{ext}'"));
}

#[test]
fn on_delete_propagate_and_ignore() {
    let env = common::start();
    let mut db = env.db();
    contacts(&mut db, "");
    db.batch_execute(
        "CREATE TABLE leads (id bigserial PRIMARY KEY, last_name text NOT NULL, company text NOT NULL);
         SELECT sfsync.sync_table('leads', 'Lead', on_delete => 'ignore');",
    )
    .unwrap();
    env.worker_pid();

    // propagate, both ways.
    let sf_deleted = pulled_contact(&env, &mut db, "Gone");
    env.emu.sf().delete("Contact", &sf_deleted);
    db.until_count(&format!("SELECT count(*) FROM contacts WHERE sfid = '{sf_deleted}'"), 0);
    let pg_deleted = pushed_contact(&env, &mut db, 1001, "x@example.com");
    db.batch_execute("DELETE FROM contacts WHERE id = 1001").unwrap();
    env.emu.sf().until_gone("Contact", &pg_deleted);

    // ignore, both ways.
    let lead = env.emu.sf().create("Lead", json!({"LastName": "Kept", "Company": "Acme"}));
    db.until_count(&format!("SELECT count(*) FROM leads WHERE sfid = '{lead}'"), 1);
    env.emu.sf().delete("Lead", &lead);
    db.batch_execute("INSERT INTO leads (id, last_name, company) VALUES (1001, 'Local', 'Initech')").unwrap();
    let soql = format!("SELECT Id FROM Lead WHERE Postgres_Id__c = '{}'", db.external_key("leads", "1001"));
    let local = env.emu.sf().until_record(&soql)["Id"].as_str().unwrap().to_string();
    db.batch_execute("DELETE FROM leads WHERE id = 1001").unwrap();
    round_trip(&env, &mut db, 2001); // the delete of lead 1001 went through the worker before it
    db.until_outbox_drained();
    let n: i64 = scalar(&mut db, &format!("SELECT count(*) FROM leads WHERE sfid = '{lead}'"));
    assert_eq!(n, 1, "a Salesforce delete leaves the local row with on_delete => 'ignore'");
    assert!(!env.sf_query(&format!("SELECT Id FROM Lead WHERE Id = '{local}'")).is_empty(), "a local delete leaves Salesforce alone");
}

#[test]
fn on_delete_review_holds_deletes_until_approved_or_rejected() {
    let env = common::start();
    let mut db = env.db();
    contacts(&mut db, ", on_delete => 'review'");
    env.worker_pid();

    // From Salesforce, approved: the local row goes (and nothing is sent back).
    let a = pulled_contact(&env, &mut db, "Approved");
    env.emu.sf().delete("Contact", &a);
    let review = |db: &mut postgres::Client, sfid: &str| -> Option<(i64, String)> {
        db.query("SELECT id, origin FROM sfsync.delete_review WHERE sfid = $1 AND decided_at IS NULL", &[&sfid])
            .unwrap()
            .first()
            .map(|r| (r.get(0), r.get(1)))
    };
    let (id, origin) = until("the Salesforce delete held for review", WAIT, || review(&mut db, &a));
    assert_eq!(origin, "salesforce");
    assert_eq!(local_rows(&mut db, &a), 1, "held, not applied");
    let snapshot = parse(db.query_one("SELECT \"row\"::text FROM sfsync.delete_review WHERE id = $1", &[&id]).unwrap().get(0));
    assert_eq!(snapshot["last_name"], "Approved");
    assert!(db.query_one("SELECT sfsync.approve_delete($1)", &[&id]).unwrap().get::<_, bool>(0));
    assert_eq!(local_rows(&mut db, &a), 0);
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.outbox"), 0, "not captured");
    assert!(!db.query_one("SELECT sfsync.approve_delete($1)", &[&id]).unwrap().get::<_, bool>(0), "already decided");

    // From Salesforce, rejected: the row stays, unlinked.
    let r = pulled_contact(&env, &mut db, "Rejected");
    env.emu.sf().delete("Contact", &r);
    let (id, _) = until("the Salesforce delete held for review", WAIT, || review(&mut db, &r));
    assert!(db.query_one("SELECT sfsync.reject_delete($1)", &[&id]).unwrap().get::<_, bool>(0));
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM contacts WHERE last_name = 'Rejected' AND sfid IS NULL"), 1);

    // From Postgres: held, Salesforce untouched until approved.
    let p = pushed_contact(&env, &mut db, 1001, "p@example.com");
    db.batch_execute("DELETE FROM contacts WHERE id = 1001").unwrap();
    let (id, origin) = review(&mut db, &p).expect("held at once by the trigger");
    assert_eq!(origin, "postgres");
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.outbox WHERE op = 'delete'"), 0);
    round_trip(&env, &mut db, 2001);
    assert!(exists_in_sf(&env, &p), "not deleted while held");
    assert_eq!(local_rows(&mut db, &p), 0, "and not pulled back meanwhile");
    assert!(db.query_one("SELECT sfsync.approve_delete($1)", &[&id]).unwrap().get::<_, bool>(0));
    env.emu.sf().until_gone("Contact", &p);

    // From Postgres, rejected: the row comes back, still linked; Salesforce untouched.
    let q = pushed_contact(&env, &mut db, 1002, "q@example.com");
    db.batch_execute("DELETE FROM contacts WHERE id = 1002").unwrap();
    let n: i64 = scalar(&mut db, "SELECT sfsync.reject_deletes('contacts')");
    assert_eq!(n, 1);
    assert_eq!(
        scalar::<i64>(&mut db, &format!("SELECT count(*) FROM contacts WHERE id = 1002 AND sfid = '{q}' AND email = 'q@example.com'")),
        1
    );
    round_trip(&env, &mut db, 2002);
    assert!(exists_in_sf(&env, &q));
    let decisions: Vec<String> =
        db.query("SELECT decision FROM sfsync.delete_review ORDER BY id", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(decisions, ["approved", "rejected", "approved", "rejected"]);
}

#[test]
fn a_pulled_delete_blocked_by_a_foreign_key_is_reported_once() {
    // No overlap: the mark moves past the failed record as soon as a later one is pulled.
    let env = common::start_with(&[("sfsync.pull_overlap", "0")]);
    let mut db = env.db();
    contacts(&mut db, "");
    db.batch_execute("CREATE TABLE notes (id serial PRIMARY KEY, contact_id bigint NOT NULL REFERENCES contacts (id), body text)").unwrap();
    env.worker_pid();
    let sfid = pulled_contact(&env, &mut db, "Parent");
    db.batch_execute(&format!("INSERT INTO notes (contact_id, body) SELECT id, 'hello' FROM contacts WHERE sfid = '{sfid}'")).unwrap();
    env.emu.sf().delete("Contact", &sfid);
    let (code, message, direction, operation) = until("the blocked delete reported in sfsync.errors", WAIT, || {
        let rows = db.query("SELECT error_code, message, direction, operation FROM sfsync.errors WHERE sfid = $1", &[&sfid]).unwrap();
        rows.first().map(|r| (r.get::<_, String>(0), r.get::<_, String>(1), r.get::<_, String>(2), r.get::<_, String>(3)))
    });
    assert_eq!((code.as_str(), direction.as_str(), operation.as_str()), ("FOREIGN_KEY_VIOLATION", "pull", "delete"));
    assert!(message.contains("notes_contact_id_fkey"), "{message}");
    assert_eq!(local_rows(&mut db, &sfid), 1, "the row stays");

    // The pull goes on, and does not try the delete again.
    pulled_contact(&env, &mut db, "Later");
    let attempts: i32 = db.query_one("SELECT attempts FROM sfsync.errors WHERE sfid = $1", &[&sfid]).unwrap().get(0);
    pulled_contact(&env, &mut db, "Later still");
    let again: i32 = db.query_one("SELECT attempts FROM sfsync.errors WHERE sfid = $1", &[&sfid]).unwrap().get(0);
    assert_eq!(attempts, again, "not retried");
    let state: String = scalar(&mut db, "SELECT state FROM sfsync.status WHERE \"table\" = 'contacts'::regclass");
    assert_eq!(state, "running");
}

/// A removal that failed locally (a foreign key) is tried again by `sfsync.retry()`, not
/// read again by Id: a record that left the filter read by Id looks live, and its row would
/// stay with the error gone.
#[test]
fn a_blocked_removal_is_tried_again_by_retry() {
    let env = common::start();
    let mut db = env.db();
    db.batch_execute(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL, industry text);
         CREATE TABLE notes (id serial PRIMARY KEY, account_id bigint NOT NULL REFERENCES accounts (id), body text);
         SELECT sfsync.sync_table('accounts', 'Account', filter => 'Industry = ''Technology''');",
    )
    .unwrap();
    env.worker_pid();
    let sf = env.emu.sf();
    let left = sf.create("Account", json!({"Name": "Initech", "Industry": "Technology"}));
    let deleted = sf.create("Account", json!({"Name": "Hooli", "Industry": "Technology"}));
    db.until_count("SELECT count(*) FROM accounts", 2);
    db.batch_execute("INSERT INTO notes (account_id, body) SELECT id, 'hello' FROM accounts").unwrap();
    sf.update("Account", &left, json!({"Industry": "Banking"}));
    sf.delete("Account", &deleted);
    let ops = |db: &mut postgres::Client| -> Vec<(String, String)> {
        db.query("SELECT sfid, operation FROM sfsync.errors ORDER BY operation", &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    until("both removals reported", WAIT, || (ops(&mut db).len() == 2).then_some(()));
    assert_eq!(ops(&mut db), vec![(deleted.clone(), "delete".to_string()), (left.clone(), "left filter".to_string())]);

    // Retried while still blocked: reported again, the rows stay, nothing is lost.
    let attempts = |db: &mut postgres::Client| -> i64 { scalar(db, "SELECT sum(attempts)::bigint FROM sfsync.errors") };
    let before = attempts(&mut db);
    db.batch_execute("SELECT sfsync.retry('accounts')").unwrap();
    until("the removals tried again", WAIT, || (attempts(&mut db) >= before + 2).then_some(()));
    assert_eq!(ops(&mut db).len(), 2, "still reported");
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM accounts"), 2);

    // The cause fixed, retry removes both rows and clears their errors.
    db.batch_execute("DELETE FROM notes; SELECT sfsync.retry('accounts')").unwrap();
    db.until_count("SELECT count(*) FROM accounts", 0);
    until("the errors cleared", WAIT, || ops(&mut db).is_empty().then_some(()));
    assert_eq!(sf.get("Account", &left).expect("still in Salesforce")["Industry"], "Banking");
}

#[test]
fn records_leaving_the_filter_leave_postgres_and_a_new_filter_is_applied() {
    let env = common::start();
    let mut db = env.db();
    db.batch_execute(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL, industry text);
         SELECT sfsync.sync_table('accounts', 'Account', filter => 'Industry = ''Technology''');",
    )
    .unwrap();
    env.worker_pid();
    let sf = env.emu.sf();
    let tech = sf.create("Account", json!({"Name": "Initech", "Industry": "Technology"}));
    let retail = sf.create("Account", json!({"Name": "Shop", "Industry": "Retail"}));
    let count =
        |db: &mut postgres::Client, sfid: &str| -> i64 { scalar(db, &format!("SELECT count(*) FROM accounts WHERE sfid = '{sfid}'")) };
    db.until_count(&format!("SELECT count(*) FROM accounts WHERE sfid = '{tech}'"), 1);
    assert_eq!(count(&mut db, &retail), 0, "outside the filter");

    // Edited in Salesforce until it no longer matches: gone here, still there.
    sf.update("Account", &tech, json!({"Industry": "Banking"}));
    db.until_count(&format!("SELECT count(*) FROM accounts WHERE sfid = '{tech}'"), 0);
    assert_eq!(sf.get("Account", &tech).expect("still in Salesforce")["Industry"], "Banking");
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.outbox"), 0, "not captured as a delete");

    // A new filter: pulled again, what no longer matches goes.
    sf.update("Account", &tech, json!({"Industry": "Technology"}));
    db.until_count(&format!("SELECT count(*) FROM accounts WHERE sfid = '{tech}'"), 1);
    let out = parse(
        db.query_one("SELECT sfsync.sync_table('accounts', 'Account', filter => 'Industry = ''Retail''')::text", &[]).unwrap().get(0),
    );
    assert_eq!(out["repull"], true);
    until("only the Retail account left", WAIT, || {
        let (t, r) = (count(&mut db, &tech), count(&mut db, &retail));
        (t == 0 && r == 1).then_some(()).ok_or(format!("technology {t}, retail {r}"))
    });
    assert!(sf.get("Account", &tech).is_some() && sf.get("Account", &retail).is_some(), "nothing deleted in Salesforce");
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.outbox"), 0);
}
