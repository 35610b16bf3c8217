//! End to end: synced queries (sfsync.sync_query). A usage aggregate lands on Accounts and
//! each refresh sends only the rows that changed; a SQL segment becomes CampaignMembers,
//! added as contacts enter it and deleted as they leave; errors, privileges and the
//! worker's schedule.

mod common;

use common::error_of;

use sfsync_e2e::{json, postgres, scalar, DbExt, Value};

/// The jsonb `sql` returns.
fn json_of(db: &mut postgres::Client, sql: &str) -> Value {
    let text: String = scalar(db, &format!("SELECT ({sql})::text"));
    serde_json::from_str(&text).expect("json")
}

fn refresh(db: &mut postgres::Client, name: &str) -> Value {
    json_of(db, &format!("SELECT sfsync.refresh('{name}')"))
}

fn employees(env: &common::Env, id: &str) -> Value {
    env.emu.sf().get("Account", id).expect("account exists")["NumberOfEmployees"].clone()
}

#[test]
fn a_usage_aggregate_sends_only_the_rows_that_changed() {
    let env = common::start();
    let mut db = env.db();
    let sf = env.emu.sf();
    let accounts: Vec<String> = (0..5).map(|i| sf.create("Account", json!({"Name": format!("Acme {i}")}))).collect();
    db.batch_execute("CREATE TABLE logins (account_sfid text NOT NULL, at timestamptz NOT NULL DEFAULT now())").unwrap();
    for (i, id) in accounts.iter().enumerate() {
        db.execute("INSERT INTO logins (account_sfid) SELECT $1 FROM generate_series(1, $2)", &[id, &(i as i32 + 1)]).unwrap();
    }
    let created = json_of(
        &mut db,
        "SELECT sfsync.sync_query('usage',
             'SELECT account_sfid AS id, count(*) AS \"NumberOfEmployees\" FROM logins GROUP BY account_sfid',
             'Account')",
    );
    assert_eq!(created["mapped"], json!({"NumberOfEmployees": "NumberOfEmployees"}), "{created}");
    assert_eq!(created["key_field"], "Id");

    let s = refresh(&mut db, "usage");
    assert_eq!((s["rows"].as_i64(), s["sent"].as_i64(), s["unchanged"].as_i64()), (Some(5), Some(5), Some(0)), "{s}");
    for (i, id) in accounts.iter().enumerate() {
        assert_eq!(employees(&env, id), json!(i + 1));
    }

    // One account's usage changes: one record in one call, the other four untouched.
    db.execute("INSERT INTO logins (account_sfid) VALUES ($1)", &[&accounts[2]]).unwrap();
    let writes = env.sf_writes();
    let s = refresh(&mut db, "usage");
    assert_eq!((s["sent"].as_i64(), s["unchanged"].as_i64()), (Some(1), Some(4)), "{s}");
    assert_eq!(env.sf_writes() - writes, 1, "one Collections call for the one changed row");
    assert_eq!(employees(&env, &accounts[2]), json!(4));

    // Nothing changed: nothing sent, no call.
    let writes = env.sf_writes();
    let s = refresh(&mut db, "usage");
    assert_eq!((s["sent"].as_i64(), s["unchanged"].as_i64()), (Some(0), Some(5)), "{s}");
    assert_eq!(env.sf_writes(), writes, "an unchanged result costs no write");

    // An account that leaves the result is cleared (on_remove => 'clear').
    db.execute("DELETE FROM logins WHERE account_sfid = $1", &[&accounts[4]]).unwrap();
    let s = refresh(&mut db, "usage");
    assert_eq!((s["removed"].as_i64(), s["sent"].as_i64()), (Some(1), Some(0)), "{s}");
    assert_eq!(employees(&env, &accounts[4]), Value::Null);
    assert_eq!(scalar::<i64>(&mut db, "SELECT rows_synced FROM sfsync.queries WHERE name = 'usage'"), 4);

    // A row Salesforce rejects is an error row of the query, sent again by the next refresh.
    let gone = sf.create("Account", json!({"Name": "Gone"}));
    sf.delete("Account", &gone);
    db.execute("INSERT INTO logins (account_sfid) VALUES ($1)", &[&gone]).unwrap();
    let s = refresh(&mut db, "usage");
    assert_eq!(s["failed"].as_i64(), Some(1), "{s}");
    let (query, key, table): (String, String, Option<String>) = {
        let r = db.query_one("SELECT query, key, \"table\"::text FROM sfsync.errors", &[]).unwrap();
        (r.get(0), r.get(1), r.get(2))
    };
    assert_eq!((query.as_str(), key.as_str(), table), ("usage", gone.as_str(), None));
    db.execute("DELETE FROM logins WHERE account_sfid = $1", &[&gone]).unwrap();
    let s = refresh(&mut db, "usage");
    assert_eq!(s["failed"].as_i64(), Some(0), "{s}");
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.errors"), 0, "the row left the result: its error is over");

    // On a schedule: the worker refreshes it.
    db.batch_execute(
        "SELECT sfsync.sync_query('usage',
             'SELECT account_sfid AS id, count(*) AS \"NumberOfEmployees\" FROM logins GROUP BY account_sfid',
             'Account', every => '200 milliseconds')",
    )
    .unwrap();
    env.worker_pid();
    db.execute("INSERT INTO logins (account_sfid) VALUES ($1)", &[&accounts[0]]).unwrap();
    sf.until_field("Account", &accounts[0], "NumberOfEmployees", 2);
    assert_eq!(employees(&env, &accounts[1]), json!(2), "unchanged rows stay");

    assert!(scalar::<bool>(&mut db, "SELECT sfsync.unsync_query('usage')"));
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.queries"), 0);
}

#[test]
fn a_segment_becomes_campaign_members_and_leaving_it_deletes_them() {
    let env = common::start();
    let mut db = env.db();
    let sf = env.emu.sf();
    let campaign = sf.create("Campaign", json!({"Name": "Churn risk"}));
    db.batch_execute("CREATE TABLE customers (id int PRIMARY KEY, contact_sfid text NOT NULL, health int NOT NULL)").unwrap();
    let contacts: Vec<String> = (0..4).map(|i| sf.create("Contact", json!({"LastName": format!("Customer {i}")}))).collect();
    for (i, c) in contacts.iter().enumerate() {
        db.execute("INSERT INTO customers VALUES ($1, $2, $3)", &[&(i as i32), c, &(if i < 2 { 5 } else { 50 })]).unwrap();
    }
    let query = format!(
        "SELECT contact_sfid AS member, ''{campaign}'' AS \"CampaignId\", contact_sfid AS \"ContactId\" FROM customers WHERE health < 10"
    );
    db.batch_execute(&format!(
        "SELECT sfsync.sync_query('churn', '{query}', 'CampaignMember', key => 'member', key_field => 'Postgres_Id__c', on_remove => 'delete')"
    ))
    .unwrap();
    let members = |env: &common::Env| -> Vec<String> {
        let mut v: Vec<String> = env
            .sf_query(&format!("SELECT ContactId FROM CampaignMember WHERE CampaignId = '{campaign}'"))
            .iter()
            .map(|r| r["ContactId"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let sorted = |ids: &[&String]| -> Vec<String> {
        let mut v: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };

    let s = refresh(&mut db, "churn");
    assert_eq!(s["sent"].as_i64(), Some(2), "{s}");
    assert_eq!(members(&env), sorted(&[&contacts[0], &contacts[1]]));

    // The segment grows by one and loses one.
    db.batch_execute("UPDATE customers SET health = 3 WHERE id = 2; UPDATE customers SET health = 90 WHERE id = 0").unwrap();
    let s = refresh(&mut db, "churn");
    assert_eq!((s["sent"].as_i64(), s["removed"].as_i64(), s["unchanged"].as_i64()), (Some(1), Some(1), Some(1)), "{s}");
    assert_eq!(members(&env), sorted(&[&contacts[1], &contacts[2]]));

    // Refreshing again changes nothing (no duplicate member).
    let s = refresh(&mut db, "churn");
    assert_eq!((s["sent"].as_i64(), s["removed"].as_i64()), (Some(0), Some(0)), "{s}");
    assert_eq!(members(&env).len(), 2);

    // Everyone leaves: every member is deleted.
    db.batch_execute("UPDATE customers SET health = 100").unwrap();
    let s = refresh(&mut db, "churn");
    assert_eq!(s["removed"].as_i64(), Some(2), "{s}");
    assert!(members(&env).is_empty());
}

#[test]
fn a_query_runs_as_its_owner_and_only_its_owner_or_an_admin_refreshes_it() {
    let env = common::start();
    let mut db = env.db();
    db.batch_execute(
        "CREATE TABLE hidden (id text, n int);
         CREATE ROLE analyst IN ROLE sfsync_admin; CREATE ROLE stranger;
         GRANT USAGE ON SCHEMA public TO analyst;",
    )
    .unwrap();
    // Checked as the caller when it is registered: a table the caller may not read is refused.
    db.batch_execute("SET ROLE analyst").unwrap();
    let (state, msg) =
        error_of(&mut db, "SELECT sfsync.sync_query('peek', 'SELECT id, n AS \"NumberOfEmployees\" FROM hidden', 'Account')");
    assert_eq!(state, "42501", "{msg}");
    assert!(msg.starts_with("query: permission denied for table hidden"), "{msg}");
    // A column that names no field is refused by name.
    db.batch_execute("RESET ROLE; GRANT SELECT ON hidden TO analyst; SET ROLE analyst").unwrap();
    let (_, msg) = error_of(&mut db, "SELECT sfsync.sync_query('peek', 'SELECT id, n AS visits FROM hidden', 'Account')");
    assert!(msg.contains("column(s) visits match no writable field of Account"), "{msg}");
    db.batch_execute("SELECT sfsync.sync_query('peek', 'SELECT id, n AS \"NumberOfEmployees\" FROM hidden', 'Account')").unwrap();
    // The worker's refresh would read it as analyst: take the grant away and it fails so.
    db.batch_execute("RESET ROLE; REVOKE SELECT ON hidden FROM analyst").unwrap();
    let (_, msg) = error_of(&mut db, "SELECT sfsync.refresh('peek')");
    assert!(msg.contains("failed as its owner analyst") && msg.contains("permission denied for table hidden"), "{msg}");

    // Another role may neither refresh nor remove it.
    db.batch_execute("SET ROLE stranger").unwrap();
    let (state, msg) = error_of(&mut db, "SELECT sfsync.refresh('peek')");
    assert_eq!(state, "42501", "{msg}");
    assert_eq!(msg, "permission denied: sfsync.refresh on synced query \"peek\" needs the privileges of its owner (analyst) or membership in sfsync_admin");
    let (state, _) = error_of(&mut db, "SELECT sfsync.unsync_query('peek')");
    assert_eq!(state, "42501");
    let (state, _) = error_of(&mut db, "SELECT sfsync.sync_query('x', 'SELECT 1 AS id', 'Account')");
    assert_eq!(state, "42501", "sync_query is for admins");
    assert_eq!(scalar::<Option<String>>(&mut db, "SELECT query FROM sfsync.queries WHERE name = 'peek'"), None, "query text hidden");
    db.batch_execute("RESET ROLE").unwrap();
}

#[test]
fn a_change_of_a_source_table_refreshes_the_query_without_a_call_to_refresh() {
    let env = common::start();
    let mut db = env.db();
    let sf = env.emu.sf();
    let (a, b) = (sf.create("Account", json!({"Name": "Acme"})), sf.create("Account", json!({"Name": "Beta"})));
    db.batch_execute(
        "CREATE TABLE logins (account_sfid text NOT NULL);
         CREATE TABLE seats (account_sfid text NOT NULL, n int NOT NULL);",
    )
    .unwrap();
    db.execute("INSERT INTO logins VALUES ($1)", &[&a]).unwrap();
    db.execute("INSERT INTO seats VALUES ($1, 5)", &[&b]).unwrap();
    // `every` a day: only the first refresh is the schedule's, the rest follow the sources.
    let created = json_of(
        &mut db,
        "SELECT sfsync.sync_query('usage',
             'SELECT id, sum(n)::int AS \"NumberOfEmployees\"
              FROM (SELECT account_sfid AS id, 1 AS n FROM logins UNION ALL SELECT account_sfid, n FROM seats) u GROUP BY id',
             'Account', every => '1 day', sources => ARRAY['logins'::regclass, 'seats'])",
    );
    assert_eq!(created["sources"], json!(["public.logins", "public.seats"]), "{created}");
    assert_eq!(scalar::<String>(&mut db, "SELECT sources::text FROM sfsync.queries WHERE name = 'usage'"), "{logins,seats}");
    env.worker_pid();
    sf.until_field("Account", &a, "NumberOfEmployees", 1);
    sf.until_field("Account", &b, "NumberOfEmployees", 5);

    // Three statements in one transaction on one source: one change, refreshed at commit.
    let writes = env.sf_writes();
    db.batch_execute("BEGIN").unwrap();
    for _ in 0..3 {
        db.execute("INSERT INTO logins VALUES ($1)", &[&b]).unwrap();
    }
    db.batch_execute("COMMIT").unwrap();
    sf.until_field("Account", &b, "NumberOfEmployees", 8);
    db.until_count("SELECT count(*) FROM sfsync.query_due", 0);
    assert_eq!(env.sf_writes() - writes, 1, "one refresh, one call");
    // The other source too, and a TRUNCATE.
    db.execute("INSERT INTO seats VALUES ($1, 10)", &[&a]).unwrap();
    sf.until_field("Account", &a, "NumberOfEmployees", 11);
    db.batch_execute("TRUNCATE seats").unwrap();
    sf.until_field("Account", &a, "NumberOfEmployees", 1);
    sf.until_field("Account", &b, "NumberOfEmployees", 3);

    // A source needs its owner's right to a trigger, or TRIGGER on it.
    db.batch_execute(
        "CREATE ROLE analyst IN ROLE sfsync_admin; GRANT USAGE ON SCHEMA public TO analyst;
         GRANT SELECT ON logins TO analyst; SET ROLE analyst",
    )
    .unwrap();
    let mine = "SELECT sfsync.sync_query('mine', 'SELECT account_sfid AS id, count(*) AS \"NumberOfEmployees\" FROM logins GROUP BY 1',
                    'Account', sources => ARRAY['logins'::regclass])";
    let (state, msg) = error_of(&mut db, mine);
    assert_eq!(state, "42501", "{msg}");
    assert!(
        msg.contains("a trigger on table public.logins needs ownership of the table")
            && msg.contains("GRANT TRIGGER ON public.logins TO analyst"),
        "{msg}"
    );
    db.batch_execute("RESET ROLE; GRANT TRIGGER ON logins TO analyst; SET ROLE analyst").unwrap();
    db.batch_execute(mine).unwrap();
    db.batch_execute("RESET ROLE").unwrap();
    let triggers = "SELECT count(*) FROM pg_trigger WHERE tgname = 'sfsync_query_source' AND tgrelid = 'logins'::regclass";
    assert_eq!(scalar::<i64>(&mut db, triggers), 1, "one trigger per table, shared by its queries");

    // A dropped source leaves the list; the other keeps its trigger.
    db.batch_execute("DROP TABLE seats").unwrap();
    assert_eq!(scalar::<String>(&mut db, "SELECT sources::text FROM sfsync.queries WHERE name = 'usage'"), "{logins}");
    assert!(scalar::<bool>(&mut db, "SELECT sfsync.unsync_query('usage')"));
    assert_eq!(scalar::<i64>(&mut db, triggers), 1, "'mine' still lists logins");
    assert!(scalar::<bool>(&mut db, "SELECT sfsync.unsync_query('mine')"));
    assert_eq!(scalar::<i64>(&mut db, triggers), 0, "unsync_query removes the trigger no query needs");
    db.execute("INSERT INTO logins VALUES ($1)", &[&a]).unwrap();
}
