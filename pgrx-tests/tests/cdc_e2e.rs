//! End to end: Salesforce changes arrive through Change Data Capture, applied from the events
//! themselves (changed fields only, no query), and whatever the stream can't say — a dropped
//! stream, a replay id past retention, gap events, a record with a local change pending — is
//! caught up by the pull, so nothing is missed.
//!
//! Timed polls are an hour apart in every test: only the stream (and the catch-up polls it
//! asks for) can bring a change in time.
//!
//! Every test runs on either transport: CometD by default, the Pub/Sub API with
//! `SFSYNC_E2E_STREAM=pubsub` (`make test-e2e-pubsub`); what differs between them is said by
//! the helpers below, the behaviour asserted is the same.

mod common;

use common::{accounts_table, contacts_table, pause, queries_settled, Env};
use sfsync_e2e::{json, postgres, scalar, until, DbExt, Value, WAIT};
use std::time::Duration;

const STREAM_ONLY: &[(&str, &str)] = &[("sfsync.pull_interval", "1h"), ("sfsync.cdc_safety_interval", "1h")];

/// Query calls (SOQL query/queryAll pages, Bulk query jobs) the emulator has served.
fn query_calls(env: &Env) -> u64 {
    env.emu.query_calls()
}

/// `common::resume` once the events have reached the worker's inbox (the stream keeps
/// listening while passes are paused).
fn resume(env: &Env, lock: postgres::Client) {
    std::thread::sleep(Duration::from_secs(2));
    common::resume(env, lock);
}

/// An Account created in Salesforce, once it is in `accounts`.
fn streamed_account(env: &Env, db: &mut postgres::Client, fields: Value) -> String {
    let id = env.emu.sf().create("Account", fields);
    db.until_true("account pulled", &format!("SELECT EXISTS (SELECT 1 FROM accounts WHERE sfid = '{id}')"));
    id
}

#[test]
fn events_are_applied_directly_changed_fields_only_without_a_query() {
    let env = common::start_with(STREAM_ONLY);
    let mut db = env.db();
    accounts_table(&mut db);
    contacts_table(&mut db);
    env.worker_pid();
    let id =
        streamed_account(&env, &mut db, json!({"Name": "Acme", "Industry": "Energy", "AnnualRevenue": 5, "Website": "https://sf.example"}));
    let q0 = queries_settled(&env);
    db.until_true("stream shown live", "SELECT bool_and(change_stream = 'live') FROM sfsync.status");

    // Postgres's website differs from Salesforce's (written with capture off, so nothing is
    // pending): a pull would overwrite it with Salesforce's whole record, an event that
    // didn't change the website must not touch it.
    db.batch_execute(&format!(
        "SET session_replication_role = replica;
         UPDATE accounts SET website = 'https://local.example' WHERE sfid = '{id}';
         RESET session_replication_role;"
    ))
    .unwrap();
    env.emu.sf().update("Account", &id, json!({"Industry": "Banking", "AnnualRevenue": null}));
    db.until_true("update applied", &format!("SELECT industry = 'Banking' AND annual_revenue IS NULL FROM accounts WHERE sfid = '{id}'"));
    assert_eq!(query_calls(&env), q0, "the update landed from its event, without a query");
    let seen: bool =
        scalar(&mut db, "SELECT last_change_event > now() - interval '1 minute' FROM sfsync.status WHERE \"table\" = 'accounts'::regclass");
    assert!(seen, "status shows when the table last had change events");
    let website: Option<String> = scalar(&mut db, &format!("SELECT website FROM accounts WHERE sfid = '{id}'"));
    assert_eq!(website.as_deref(), Some("https://local.example"), "a column the event did not change keeps its value");

    // Create (with compound Name parts on a Contact) and delete.
    let c = env.emu.sf().create("Contact", json!({"FirstName": "Ada", "LastName": "Lovelace", "Email": "ada@example.com"}));
    db.until_true(
        "contact created",
        &format!("SELECT EXISTS (SELECT 1 FROM contacts WHERE sfid = '{c}' AND first_name = 'Ada' AND last_name = 'Lovelace')"),
    );
    env.emu.sf().update("Contact", &c, json!({"LastName": "King"}));
    db.until_true("name part updated", &format!("SELECT last_name = 'King' AND first_name = 'Ada' FROM contacts WHERE sfid = '{c}'"));
    let gone = env.emu.sf().create("Account", json!({"Name": "Globex"}));
    db.until_true("account created", &format!("SELECT EXISTS (SELECT 1 FROM accounts WHERE sfid = '{gone}' AND name = 'Globex')"));
    env.emu.sf().delete("Account", &gone);
    db.until_true("account deleted", &format!("SELECT NOT EXISTS (SELECT 1 FROM accounts WHERE sfid = '{gone}')"));

    assert_eq!(query_calls(&env), q0, "creates and deletes landed from their events, without a query");
    // Nothing the sync wrote was captured: no echo on its way back to Salesforce.
    let outbox: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.outbox");
    assert_eq!(outbox, 0);
    // The stream's position is saved with the applied rows.
    let saved: bool = scalar(&mut db, "SELECT count(*) = 2 FROM sfsync.cdc_state WHERE replay_id > 0");
    assert!(saved, "replay ids saved for both channels");
}

#[test]
fn a_created_record_carrying_our_key_links_to_its_row() {
    let env = common::start_with(STREAM_ONLY);
    let mut db = env.db();
    accounts_table(&mut db);
    env.worker_pid();
    queries_settled(&env);
    // A local row whose Salesforce Id never came back (as after a crash between the push and
    // its write-back), and the record Salesforce has for it.
    db.batch_execute(
        "SET session_replication_role = replica;
         INSERT INTO accounts (id, name) VALUES (41, 'Initech');
         RESET session_replication_role;",
    )
    .unwrap();
    let ext = db.external_key("accounts", "41");
    let id = env.emu.sf().create("Account", json!({"Name": "Initech", "Industry": "Tech", "Postgres_Id__c": ext}));
    db.until_true("linked", &format!("SELECT sfid = '{id}' AND industry = 'Tech' FROM accounts WHERE id = 41"));
    let n: i64 = scalar(&mut db, "SELECT count(*) FROM accounts");
    assert_eq!(n, 1, "linked, not duplicated");
}

#[test]
fn changes_made_while_the_stream_is_down_all_arrive() {
    let env = common::start_with(STREAM_ONLY);
    let mut db = env.db();
    accounts_table(&mut db);
    env.worker_pid();
    let a = streamed_account(&env, &mut db, json!({"Name": "A", "Industry": "Energy"}));
    let c = streamed_account(&env, &mut db, json!({"Name": "C"}));

    // The stream drops (every CometD client forgotten, every Pub/Sub subscription ended) and
    // the stream's endpoint answers 503 (gRPC: UNAVAILABLE) for a while.
    let fault = env.emu.add_fault(json!({"kind": "status", "status": 503, "path_prefix": common::stream_fault_prefix()}));
    env.emu.admin("POST", "cdc/drop", Value::Null);
    env.cluster.wait_for_log("change stream of connection \"default\" is down", WAIT);
    db.until_true("stream shown down", "SELECT bool_and(change_stream LIKE 'down: %') FROM sfsync.status");
    env.emu.sf().update("Account", &a, json!({"Industry": "Banking"}));
    let b = env.emu.sf().create("Account", json!({"Name": "B", "Industry": "Retail"}));
    env.emu.sf().delete("Account", &c);
    let hits = env.emu.admin("GET", "faults", Value::Null)[0]["hits"].as_u64().unwrap_or(0);
    assert!(hits > 0, "the stream was refused: {fault}");
    env.emu.clear_faults();

    db.until_true("update during the outage", &format!("SELECT industry = 'Banking' FROM accounts WHERE sfid = '{a}'"));
    db.until_true(
        "create during the outage",
        &format!("SELECT EXISTS (SELECT 1 FROM accounts WHERE sfid = '{b}' AND industry = 'Retail')"),
    );
    db.until_true("delete during the outage", &format!("SELECT NOT EXISTS (SELECT 1 FROM accounts WHERE sfid = '{c}')"));
    // And the stream is back.
    db.until_true("stream shown live again", "SELECT bool_and(change_stream = 'live') FROM sfsync.status");
    env.emu.sf().update("Account", &b, json!({"Industry": "Media"}));
    db.until_true("update after the outage", &format!("SELECT industry = 'Media' FROM accounts WHERE sfid = '{b}'"));
}

#[test]
fn a_replay_id_past_retention_falls_back_to_a_catch_up_poll() {
    let mut env = common::start_with(STREAM_ONLY);
    let mut db = env.db();
    accounts_table(&mut db);
    env.worker_pid();
    let a = streamed_account(&env, &mut db, json!({"Name": "A", "Industry": "Energy"}));
    env.emu.sf().update("Account", &a, json!({"Industry": "Retail"}));
    db.until_true("streamed", &format!("SELECT industry = 'Retail' FROM accounts WHERE sfid = '{a}'"));
    db.until_true("replay id saved", "SELECT EXISTS (SELECT 1 FROM sfsync.cdc_state WHERE replay_id > 0)");
    let saved: i64 = scalar(&mut db, "SELECT replay_id FROM sfsync.cdc_state");
    drop(db);

    // Down while Salesforce changes; then the events age out of the 72 h retention, so the
    // saved replay id is no longer valid when the worker comes back.
    env.cluster.stop();
    env.emu.sf().update("Account", &a, json!({"Industry": "Banking"}));
    let b = env.emu.sf().create("Account", json!({"Name": "B"}));
    env.emu.advance_clock(73 * 3_600_000_i64);
    env.cluster.start_again();
    let mut db = env.db();

    db.until_true("update while down", &format!("SELECT industry = 'Banking' FROM accounts WHERE sfid = '{a}'"));
    db.until_true("create while down", &format!("SELECT EXISTS (SELECT 1 FROM accounts WHERE sfid = '{b}')"));
    // Those changes were no longer in the stream: only the catch-up poll could bring them.
    let cdc = env.emu.admin("GET", "cdc", Value::Null);
    assert!(cdc["first_replay_id"].is_null() || cdc["first_replay_id"].as_i64() > Some(saved + 2), "events aged out: {cdc}");
    // The stream continues with new events, and its position moves past the invalid one.
    // (Live again: subscribed from the newest event; the restarted worker's first pull may
    // have brought the changes before that.)
    db.until_true("stream live again", "SELECT bool_and(change_stream = 'live') FROM sfsync.status");
    env.emu.sf().update("Account", &b, json!({"Industry": "Media"}));
    db.until_true("update after the fallback", &format!("SELECT industry = 'Media' FROM accounts WHERE sfid = '{b}'"));
    db.until_true("position saved", &format!("SELECT replay_id > {saved} FROM sfsync.cdc_state"));
}

#[test]
fn an_unknown_replay_id_falls_back_to_a_catch_up_poll() {
    let env = common::start_with(STREAM_ONLY);
    let mut db = env.db();
    accounts_table(&mut db);
    let pid = env.worker_pid();
    let a = streamed_account(&env, &mut db, json!({"Name": "A"}));
    env.emu.sf().update("Account", &a, json!({"Industry": "Retail"}));
    db.until_true("streamed", &format!("SELECT industry = 'Retail' FROM accounts WHERE sfid = '{a}'"));
    db.until_true("replay id saved", "SELECT EXISTS (SELECT 1 FROM sfsync.cdc_state WHERE replay_id > 0)");
    // A position the org never gave, then a worker restart while Salesforce changes.
    db.batch_execute("UPDATE sfsync.cdc_state SET replay_id = 987654321").unwrap();
    env.cluster.signal_backend(pid, "TERM");
    env.emu.sf().update("Account", &a, json!({"Industry": "Banking"}));
    db.until_worker_replaced(pid);
    db.until_true("change while restarting", &format!("SELECT industry = 'Banking' FROM accounts WHERE sfid = '{a}'"));
    db.until_true("stream live again", "SELECT bool_and(change_stream = 'live') FROM sfsync.status");
    env.emu.sf().update("Account", &a, json!({"Industry": "Media"}));
    db.until_true("change after the fallback", &format!("SELECT industry = 'Media' FROM accounts WHERE sfid = '{a}'"));
    db.until_true("valid position saved", "SELECT replay_id < 987654321 FROM sfsync.cdc_state");
}

#[test]
fn gap_events_make_a_catch_up_poll() {
    let env = common::start_with(STREAM_ONLY);
    let mut db = env.db();
    accounts_table(&mut db);
    env.worker_pid();
    let a = streamed_account(&env, &mut db, json!({"Name": "A", "Industry": "Energy"}));
    let q0 = queries_settled(&env);

    // A change the stream doesn't carry, then the gap event Salesforce sends instead.
    let events = |on: bool| env.emu.admin("POST", "cdc", json!({"object": "Account", "enabled": on}));
    events(false);
    env.emu.sf().update("Account", &a, json!({"Industry": "Banking"}));
    events(true);
    env.emu.admin("POST", "cdc/gap", json!({"object": "Account", "ids": [a]}));
    db.until_true("gap caught up", &format!("SELECT industry = 'Banking' FROM accounts WHERE sfid = '{a}'"));
    assert!(query_calls(&env) > q0, "a gap is caught up by polling");

    // GAP_OVERFLOW names no records: the object is polled.
    events(false);
    env.emu.sf().update("Account", &a, json!({"Industry": "Media"}));
    events(true);
    env.emu.admin("POST", "cdc/overflow", json!({"object": "Account"}));
    db.until_true("overflow caught up", &format!("SELECT industry = 'Media' FROM accounts WHERE sfid = '{a}'"));
}

#[test]
fn an_event_for_a_record_with_a_local_change_pending_goes_to_the_conflict_policy() {
    let env = common::start_with(STREAM_ONLY);
    let mut db = env.db();
    contacts_table(&mut db);
    env.worker_pid();
    db.batch_execute("INSERT INTO contacts (id, first_name, last_name, email) VALUES (1, 'Ada', 'Lovelace', 'ada@example.com')").unwrap();
    let sfid: String = until("contact 1 pushed", WAIT, || {
        let sfid: Option<String> = scalar(&mut db, "SELECT sfid::text FROM contacts WHERE id = 1");
        let outbox: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.outbox");
        sfid.filter(|_| outbox == 0).ok_or(format!("outbox {outbox}"))
    });

    // The worker is paused (the stream keeps listening): both sides change the email.
    let lock = pause(&env);
    env.emu.sf().update("Contact", &sfid, json!({"Email": "sf@example.com"}));
    db.batch_execute("UPDATE contacts SET email = 'pg@example.com', first_name = 'Augusta' WHERE id = 1").unwrap();
    resume(&env, lock);

    // salesforce_wins (the default): Salesforce's email stays on both sides, the local
    // first name still goes out, and the lost local email is recorded.
    until("Salesforce's email on both sides, the first name sent", WAIT, || {
        let outbox: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.outbox");
        let pg: Option<String> = scalar(&mut db, "SELECT email FROM contacts WHERE id = 1");
        let sf = env.emu.sf().get("Contact", &sfid).unwrap();
        (outbox == 0 && pg.as_deref() == Some("sf@example.com") && sf["Email"] == "sf@example.com" && sf["FirstName"] == "Augusta")
            .then_some(())
            .ok_or(format!("outbox {outbox}, postgres {pg:?}, salesforce {} / {}", sf["Email"], sf["FirstName"]))
    });
    let row = db.query_one("SELECT winner, columns, postgres_values::text FROM sfsync.conflicts WHERE key = '1'", &[]).unwrap();
    assert_eq!(row.get::<_, String>(0), "salesforce");
    assert_eq!(row.get::<_, Vec<String>>(1), vec!["email".to_string()]);
    assert_eq!(row.get::<_, String>(2), r#"{"email": "pg@example.com"}"#);
}

#[test]
fn a_child_created_in_salesforce_gets_its_parents_key_even_when_the_parent_comes_by_the_pull() {
    let env = common::start_with(STREAM_ONLY);
    let mut db = env.db();
    // Accounts have a filter, so their events always go to the pull; contacts apply directly.
    db.batch_execute(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL);
         CREATE TABLE contacts (id bigserial PRIMARY KEY, last_name text NOT NULL, account_id bigint REFERENCES accounts (id));
         SELECT sfsync.sync_table('accounts', 'Account', filter => 'Name != null');
         SELECT sfsync.sync_table('contacts', 'Contact');",
    )
    .unwrap();
    env.worker_pid();
    queries_settled(&env);
    let sf = env.emu.sf();
    // Both events in one drain: the child is applied while its parent is not here yet.
    let lock = pause(&env);
    let parent = sf.create("Account", json!({"Name": "Parent"}));
    let child = sf.create("Contact", json!({"LastName": "Child", "AccountId": parent}));
    resume(&env, lock);
    db.until_true(
        "child linked to its parent",
        &format!("SELECT c.account_id = a.id FROM contacts c JOIN accounts a ON a.sfid = '{parent}' WHERE c.sfid = '{child}'"),
    );
    // A child whose parent is already here: straight from the event.
    let q0 = queries_settled(&env);
    let second = sf.create("Contact", json!({"LastName": "Second", "AccountId": parent}));
    db.until_true(
        "second child linked",
        &format!("SELECT c.account_id = a.id FROM contacts c JOIN accounts a ON a.sfid = '{parent}' WHERE c.sfid = '{second}'"),
    );
    assert_eq!(query_calls(&env), q0, "applied from the event");
}

#[test]
fn events_a_mirror_cannot_apply_directly_are_read_by_spaced_polls_not_one_each() {
    // A mirror maps SystemModstamp and compound fields, which events don't carry: its events
    // ask for a poll. A burst of them must cost a poll per sfsync.cdc_poll_spacing, not one
    // per event.
    let mut gucs = STREAM_ONLY.to_vec();
    gucs.push(("sfsync.cdc_poll_spacing", "3s"));
    let env = common::start_with(&gucs);
    let sf = env.emu.sf();
    let id = sf.create("Account", json!({"Name": "Busy"}));
    let mut db = env.db();
    db.batch_execute("SELECT sfsync.mirror('Account', 'sf_accounts')").unwrap();
    env.worker_pid();
    db.until_true("mirrored", &format!("SELECT EXISTS (SELECT 1 FROM sf_accounts WHERE sfid = '{id}')"));
    let q0 = queries_settled(&env);
    let started = std::time::Instant::now();
    let n = 40;
    // A steady stream: each change event arrives on its own.
    for i in 0..n {
        sf.update("Account", &id, json!({"Industry": format!("Industry {i}")}));
        std::thread::sleep(Duration::from_millis(50));
    }
    db.until_true("last change mirrored", &format!("SELECT industry = 'Industry {}' FROM sf_accounts WHERE sfid = '{id}'", n - 1));
    let calls = query_calls(&env) - q0;
    // At most one poll per spacing while it lasted, plus the one a quiet table gets at once.
    let allowed = 2 + started.elapsed().as_secs() / 3;
    println!("{calls} query calls for {n} change events in {:?}", started.elapsed());
    assert!(calls <= allowed, "{calls} query calls for {n} change events in {:?} (at most {allowed})", started.elapsed());
}

#[test]
fn a_spaced_poll_is_hurried_when_a_local_change_of_the_table_waits_to_be_pushed() {
    // A filtered two-way table: its events ask for a poll (an event can't say whether the
    // record still matches the filter), spaced out here for an hour.
    let mut gucs = STREAM_ONLY.to_vec();
    gucs.push(("sfsync.cdc_poll_spacing", "1h"));
    let env = common::start_with(&gucs);
    let sf = env.emu.sf();
    let id = sf.create("Account", json!({"Name": "Acme", "Industry": "Energy"}));
    let mut db = env.db();
    // Another table first, so the table's mapping id differs from its outbox entries' ids.
    contacts_table(&mut db);
    db.batch_execute(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL, industry text);
         SELECT sfsync.sync_table('accounts', 'Account', filter => 'Name != null');",
    )
    .unwrap();
    env.worker_pid();
    db.until_true("pulled", &format!("SELECT industry = 'Energy' FROM accounts WHERE sfid = '{id}'"));
    let q0 = queries_settled(&env);
    sf.update("Account", &id, json!({"Industry": "Banking"}));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(query_calls(&env), q0, "the event's poll waits for its spacing");
    // A local change of the same field now waits to be pushed: the table is pulled first,
    // so the conflict policy (salesforce_wins) settles it instead of the push overwriting
    // Salesforce's change.
    db.batch_execute(&format!("UPDATE accounts SET industry = 'Retail' WHERE sfid = '{id}'")).unwrap();
    db.until_true(
        "conflict settled",
        &format!(
            "SELECT a.industry = 'Banking' AND EXISTS (SELECT 1 FROM sfsync.conflicts WHERE winner = 'salesforce')
               AND NOT EXISTS (SELECT 1 FROM sfsync.outbox)
             FROM accounts a WHERE a.sfid = '{id}'"
        ),
    );
    let industry = sf.get("Account", &id).unwrap_or(Value::Null)["Industry"].clone();
    assert_eq!(industry, "Banking", "Salesforce's change was not overwritten");
}

/// A stream-only cluster with `accounts` (name, industry, rating) synced, once its stream is live.
fn rated_accounts_streamed() -> (Env, postgres::Client) {
    let env = common::start_with(STREAM_ONLY);
    let mut db = env.db();
    db.batch_execute(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL, industry text, rating text);
         SELECT sfsync.sync_table('accounts', 'Account', fields => '{\"name\":\"Name\",\"industry\":\"Industry\",\"rating\":\"Rating\"}');",
    )
    .unwrap();
    env.worker_pid();
    db.until_true("stream shown live", "SELECT bool_and(change_stream = 'live') FROM sfsync.status");
    (env, db)
}

/// Every record sfsync pushes comes back as a change event. The stream drops those that only
/// echo what was sent (nothing applied, the position still moves on), so a push backlog no
/// longer fills the inbox with them; what a Salesforce automation changed on save, and what
/// another client changed, still arrive.
#[test]
fn echoes_of_our_pushes_are_dropped_and_what_salesforce_changed_arrives() {
    let (env, mut db) = rated_accounts_streamed();
    db.batch_execute("INSERT INTO accounts (name) SELECT 'Echo ' || g FROM generate_series(1, 20) g").unwrap();
    db.until_outbox_drained();
    db.until_count("SELECT count(*) FROM accounts WHERE sfid IS NOT NULL", 20);
    db.batch_execute("UPDATE accounts SET name = name || ' (renamed)'; DELETE FROM accounts WHERE name = 'Echo 20 (renamed)'").unwrap();
    db.until_outbox_drained();
    // The creates', updates' and delete's events have come back by now.
    std::thread::sleep(Duration::from_secs(3));
    let last = "SELECT last_change_event IS NOT NULL FROM sfsync.status WHERE \"table\" = 'accounts'::regclass";
    let applied: bool = scalar(&mut db, last);
    assert!(!applied, "no event was applied: each only echoed our own push");

    // A field an automation sets on save is Salesforce's change, though our save caused it.
    env.emu.admin(
        "POST",
        "automations",
        json!({"object": "Account", "name": "HotEnergy", "when_field": "Industry", "when_value": "Energy", "set_field": "Rating", "value": "Hot"}),
    );
    db.batch_execute("UPDATE accounts SET industry = 'Energy' WHERE name = 'Echo 1 (renamed)'").unwrap();
    db.until_true("the automation's value pulled", "SELECT rating = 'Hot' FROM accounts WHERE name = 'Echo 1 (renamed)'");
    assert!(scalar::<bool>(&mut db, last), "applied from its event");
    // Another client's change to a record we just wrote, with a value we never sent.
    let id: String = scalar(&mut db, "SELECT sfid FROM accounts WHERE name = 'Echo 2 (renamed)'");
    env.emu.sf().update("Account", &id, json!({"Name": "Echo 2 (from Salesforce)"}));
    db.until_true(
        "the other client's change pulled",
        &format!("SELECT name = 'Echo 2 (from Salesforce)' FROM accounts WHERE sfid = '{id}'"),
    );
    assert_eq!(env.emu.sf().query("SELECT Id FROM Account").len(), 19, "the delete went, nothing came back");
}

/// A stream running late: the create's event of a record we pushed, and another client's
/// change committed before our next push of it, arrive after that push went through. Their
/// values are older than what Salesforce holds, so they are not applied: the record is read
/// as it is now (and the echo of our push is dropped, so nothing would repair a stale
/// value applied before it).
#[test]
fn events_older_than_our_push_never_overwrite_it() {
    let (env, mut db) = rated_accounts_streamed();
    env.emu.admin("POST", "cdc/hold", json!({"held": true}));
    db.batch_execute("INSERT INTO accounts (name, industry) VALUES ('Late', 'Energy')").unwrap();
    db.until_outbox_drained();
    let id: String = scalar(&mut db, "SELECT sfid FROM accounts WHERE name = 'Late'");
    // Another client's change, then ours: Salesforce ends with both.
    env.emu.sf().update("Account", &id, json!({"Rating": "Hot"}));
    db.batch_execute("UPDATE accounts SET name = 'Late 2'").unwrap();
    db.until_outbox_drained();
    env.emu.admin("POST", "cdc/hold", json!({"held": false}));
    db.until_true("the other client's change pulled", "SELECT rating = 'Hot' FROM accounts");
    // Give whatever else the stream brought time to land.
    std::thread::sleep(Duration::from_secs(3));
    let name: String = scalar(&mut db, "SELECT name FROM accounts");
    assert_eq!(name, "Late 2", "the create's snapshot from before our update was applied over it");
    let sf = env.emu.sf().query(&format!("SELECT Name, Rating FROM Account WHERE Id = '{id}'"));
    assert_eq!((&sf[0]["Name"], &sf[0]["Rating"]), (&json!("Late 2"), &json!("Hot")));
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.errors"), 0);
}

/// Two databases on one org hear each other's pushes on the change stream. An update of a
/// record the other database owns is none of this one's business: it costs no poll (the
/// record's create event told this database whose it is).
#[test]
fn another_databases_updates_cost_no_poll() {
    let env = common::start_with(STREAM_ONLY);
    env.cluster.create_sfsync_database("staging", &env.emu);
    let (mut prod, mut staging) = (env.db(), env.cluster.connect("staging"));
    for db in [&mut prod, &mut staging] {
        db.batch_execute(
            "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL);
             SELECT sfsync.sync_table('accounts', 'Account', fields => '{\"name\": \"Name\"}');",
        )
        .unwrap();
        db.until_true("stream shown live", "SELECT bool_and(change_stream = 'live') FROM sfsync.status");
    }
    prod.batch_execute("INSERT INTO accounts (name) SELECT 'prod ' || g FROM generate_series(1, 5) g").unwrap();
    prod.until_outbox_drained();
    prod.until_count("SELECT count(*) FROM accounts WHERE sfid IS NOT NULL", 5);
    // The creates' events have reached staging by now.
    std::thread::sleep(Duration::from_secs(3));
    let before = query_calls(&env);
    for round in 1..=3 {
        prod.batch_execute(&format!("UPDATE accounts SET name = name || ' v{round}'")).unwrap();
        prod.until_outbox_drained();
    }
    // Another client's change of a record prod owns: prod applies it from its event,
    // staging knows the record is none of its business.
    let theirs: String = scalar(&mut prod, "SELECT sfid FROM accounts ORDER BY id LIMIT 1");
    env.emu.sf().update("Account", &theirs, json!({"Name": "Renamed for prod"}));
    prod.until_true("prod has it", &format!("SELECT name = 'Renamed for prod' FROM accounts WHERE sfid = '{theirs}'"));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(query_calls(&env) - before, 0, "no poll for another database's records");
    assert_eq!(scalar::<i64>(&mut staging, "SELECT count(*) FROM accounts"), 0);
    // Staging still hears what concerns it.
    let id = env.emu.sf().create("Account", json!({"Name": "Created in Salesforce"}));
    staging.until_true("staging pulled it", &format!("SELECT EXISTS (SELECT 1 FROM accounts WHERE sfid = '{id}')"));
    env.emu.sf().update("Account", &id, json!({"Name": "Renamed in Salesforce"}));
    staging.until_true("and its update", &format!("SELECT name = 'Renamed in Salesforce' FROM accounts WHERE sfid = '{id}'"));
}

/// A mirror of Account beside a synced accounts table: the synced table's pushes are the
/// mirror's news, so their change events are never dropped as echoes.
#[test]
fn a_mirror_beside_a_synced_table_gets_its_pushes_from_the_stream() {
    let env = common::start_with(STREAM_ONLY);
    let mut db = env.db();
    accounts_table(&mut db);
    db.batch_execute("SELECT sfsync.mirror('Account', 'public.sf_accounts')").unwrap();
    env.worker_pid();
    db.until_true("stream shown live", "SELECT bool_and(change_stream = 'live') FROM sfsync.status");
    db.batch_execute("INSERT INTO accounts (name) VALUES ('Mirrored')").unwrap();
    db.until_outbox_drained();
    db.until_true("the mirror has the pushed account", "SELECT EXISTS (SELECT 1 FROM sf_accounts WHERE name = 'Mirrored')");
    db.batch_execute("UPDATE accounts SET industry = 'Energy' WHERE name = 'Mirrored'").unwrap();
    db.until_true(
        "the mirror has the pushed update",
        "SELECT EXISTS (SELECT 1 FROM sf_accounts WHERE name = 'Mirrored' AND industry = 'Energy')",
    );
}
