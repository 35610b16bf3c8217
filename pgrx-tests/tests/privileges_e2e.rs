//! Privileges (docs/privileges.md): a plain role is refused by every sfsync function with a
//! message that names the function and the fix, and changes nothing; it cannot attach sfsync's
//! trigger functions to its own table, and a trigger forged by a superuser on another table
//! holds nothing; a table's owner granted sync_table syncs it end to end and manages its own
//! table only; an sfsync_admin member acts on every table; status shows Salesforce's error
//! text only to the table's owner and admins.

mod common;

use common::{accounts_table, contacts_table};
use sfsync_e2e::postgres::error::SqlState;
use sfsync_e2e::postgres::Client;
use sfsync_e2e::{scalar, DbExt, Value};

const SYNC_TABLE: &str = "sfsync.sync_table(regclass, text, text, jsonb, text, text, text, text, text, text, text)";

/// Runs `sql`, which must fail for lack of a privilege (42501); its message.
fn refused(db: &mut Client, sql: &str) -> String {
    let e = match db.batch_execute(sql) {
        Ok(()) => panic!("{sql}: succeeded, expected a permission error"),
        Err(e) => e,
    };
    let e = e.as_db_error().unwrap_or_else(|| panic!("{sql}: {e}"));
    assert_eq!(e.code(), &SqlState::INSUFFICIENT_PRIVILEGE, "{sql}: {}", e.message());
    e.message().to_string()
}

/// The jsonb value of `sql`.
fn json_of(db: &mut Client, sql: &str) -> Value {
    let text: String = scalar(db, &format!("SELECT ({sql})::text"));
    sfsync_e2e::serde_json::from_str(&text).unwrap()
}

/// What a refused call must leave as it was: queued changes, mappings, held deletes and
/// their decisions, backfills, triggers, parked entries.
fn state(db: &mut Client) -> String {
    scalar(
        db,
        "SELECT concat_ws(' | ',
             (SELECT string_agg(format('%s %s %s %s %s', mapping_id, op, pk, state, next_attempt_at), ',' ORDER BY id) FROM sfsync.outbox),
             (SELECT string_agg(format('%s %s %s', id, tbl, direction), ',' ORDER BY id) FROM sfsync.mappings),
             (SELECT string_agg(format('%s %s', id, decision), ',' ORDER BY id) FROM sfsync.delete_review),
             (SELECT string_agg(format('%s %s %s', mapping_id, state, requested_at), ',' ORDER BY mapping_id) FROM sfsync.backfills),
             (SELECT string_agg(format('%s %s', tgrelid::regclass, tgname), ',' ORDER BY tgrelid, tgname) FROM pg_trigger WHERE NOT tgisinternal))",
    )
}

#[test]
fn a_plain_role_is_refused_by_every_function_and_changes_nothing() {
    let env = common::start();
    let mut db = env.db();
    common::stop_worker(&env); // nothing moves but what the calls below would do
    accounts_table(&mut db);
    db.batch_execute(
        "CREATE TABLE held (id bigserial PRIMARY KEY, last_name text NOT NULL);
         SELECT sfsync.sync_table('held', 'Contact', on_delete => 'review');
         INSERT INTO held (last_name) VALUES ('Doe');
         DELETE FROM held;
         INSERT INTO accounts (id, name) VALUES (1, 'Acme');
         UPDATE sfsync.outbox SET state = 'failed' WHERE pk = '1' AND mapping_id = (SELECT id FROM sfsync.mappings WHERE tbl = 'accounts'::regclass);
         CREATE ROLE mallory LOGIN;
         GRANT CREATE ON SCHEMA public TO mallory;",
    )
    .unwrap();
    let held: i64 = scalar(&mut db, "SELECT id FROM sfsync.delete_review WHERE decided_at IS NULL");
    let accounts: i32 = scalar(&mut db, "SELECT id FROM sfsync.mappings WHERE tbl = 'accounts'::regclass");
    let before = state(&mut db);

    let mut m = env.cluster.connect_as("app", "mallory");
    m.batch_execute("CREATE TABLE mine (id bigint PRIMARY KEY, name text, last_name text)").unwrap();
    let table_level = |f: &str, table: &str| {
        format!("permission denied: sfsync.{f} on table public.{table} needs ownership of the table (owner: postgres) or membership in sfsync_admin")
    };
    for (sql, expected) in [
        ("SELECT sfsync.sync_table('accounts', 'Account')", "permission denied for function sync_table".to_string()),
        // Her own table, but nobody granted her sync_table.
        ("SELECT sfsync.sync_table('mine', 'Account')", "permission denied for function sync_table".to_string()),
        ("SELECT sfsync.mirror('Account', 'mirrored')", "permission denied for function mirror".to_string()),
        ("SELECT sfsync.adopt()", "permission denied for function adopt".to_string()),
        ("SELECT sfsync.unsync_table('accounts')", table_level("unsync_table", "accounts")),
        ("SELECT sfsync.backfill('accounts')", table_level("backfill", "accounts")),
        ("SELECT sfsync.verify('accounts')", table_level("verify", "accounts")),
        ("SELECT sfsync.run_once('accounts')", table_level("run_once", "accounts")),
        ("SELECT sfsync.reconcile('accounts')", table_level("reconcile", "accounts")),
        ("SELECT sfsync.refresh_formulas('accounts')", table_level("refresh_formulas", "accounts")),
        ("SELECT sfsync.retry('accounts')", table_level("retry", "accounts")),
        ("SELECT sfsync.retry('accounts', '1')", table_level("retry", "accounts")),
        ("SELECT sfsync.discard('accounts')", table_level("discard", "accounts")),
        ("SELECT sfsync.discard('accounts', '1')", table_level("discard", "accounts")),
        (&format!("SELECT sfsync.approve_delete({held})"), table_level("approve_delete", "held")),
        (&format!("SELECT sfsync.reject_delete({held})"), table_level("reject_delete", "held")),
        ("SELECT sfsync.approve_deletes('held')", table_level("approve_deletes", "held")),
        ("SELECT sfsync.reject_deletes('held')", table_level("reject_deletes", "held")),
        // The trigger functions cannot be attached to a table of hers, with any mapping's id.
        (
            &format!("CREATE TRIGGER t AFTER INSERT OR DELETE ON mine FOR EACH ROW EXECUTE FUNCTION sfsync.capture('{accounts}', 'id')"),
            "permission denied for function sfsync.capture".to_string(),
        ),
        (
            &format!("CREATE TRIGGER t AFTER DELETE ON mine FOR EACH ROW EXECUTE FUNCTION sfsync.hold_delete('{accounts}', 'id')"),
            "permission denied for function sfsync.hold_delete".to_string(),
        ),
        (
            &format!("CREATE TRIGGER t BEFORE INSERT ON mine FOR EACH ROW EXECUTE FUNCTION sfsync.write_through('{accounts}')"),
            "permission denied for function sfsync.write_through".to_string(),
        ),
        // Internal helpers and tables holding row data or secrets: PostgreSQL's own refusal.
        ("SELECT sfsync.wake_at_commit()", "permission denied for function wake_at_commit".to_string()),
        ("SELECT * FROM sfsync.outbox", "permission denied for table outbox".to_string()),
        ("SELECT * FROM sfsync.delete_review", "permission denied for table delete_review".to_string()),
        ("SELECT * FROM sfsync.connection_secrets", "permission denied for table connection_secrets".to_string()),
        ("SELECT last_error FROM sfsync.sync_state", "permission denied for table sync_state".to_string()),
    ] {
        assert_eq!(refused(&mut m, sql), expected, "{sql}");
    }
    // "Every table" means every table she may act on: none here.
    let all = json_of(&mut m, "SELECT sfsync.run_once()");
    assert_eq!(all["tables"], sfsync_e2e::json!({}), "{all}");
    assert_eq!(scalar::<i64>(&mut m, "SELECT sfsync.retry()"), 0);
    // The views she may read show nothing of the tables she cannot act on.
    assert_eq!(scalar::<i64>(&mut m, "SELECT count(*) FROM sfsync.errors"), 0);
    assert_eq!(scalar::<i64>(&mut m, "SELECT count(*) FROM sfsync.status"), 2, "status lists every table");

    assert_eq!(state(&mut db), before, "a refused call changed nothing");
    assert_eq!(scalar::<String>(&mut db, "SELECT state FROM sfsync.outbox WHERE pk = '1' AND mapping_id = (SELECT id FROM sfsync.mappings WHERE tbl = 'accounts'::regclass)"), "failed");
}

#[test]
fn a_forged_hold_delete_trigger_raises_and_holds_nothing() {
    let env = common::start();
    let mut db = env.db();
    common::stop_worker(&env);
    db.batch_execute(
        "CREATE TABLE held (id bigserial PRIMARY KEY, last_name text NOT NULL);
         SELECT sfsync.sync_table('held', 'Contact', on_delete => 'review');
         CREATE TABLE decoy (id bigint PRIMARY KEY, last_name text, sfid text);
         INSERT INTO decoy VALUES (7, 'Doe', '003000000000001AAA');",
    )
    .unwrap();
    let mapping: i32 = scalar(&mut db, "SELECT id FROM sfsync.mappings");
    // Made by a superuser (nobody else may use the function), on a table that is not the mapping's.
    db.batch_execute(&format!(
        "CREATE TRIGGER forged AFTER DELETE ON decoy FOR EACH ROW EXECUTE FUNCTION sfsync.hold_delete('{mapping}', 'id')"
    ))
    .unwrap();
    let e = db.batch_execute("DELETE FROM decoy").unwrap_err();
    let e = e.as_db_error().unwrap();
    assert_eq!(e.message(), format!("sfsync.hold_delete: table public.decoy is not the one of mapping {mapping}"));
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.delete_review"), 0);
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.outbox"), 0);
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM decoy"), 1, "the delete was undone");
    // The mapping's own table still holds its deletes.
    db.batch_execute("INSERT INTO held (id, last_name) VALUES (1, 'Roe'); DELETE FROM held").unwrap();
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.delete_review WHERE key = '1'"), 1);
}

#[test]
fn a_table_owner_granted_sync_table_syncs_its_table_and_manages_only_its_own() {
    let env = common::start();
    let mut db = env.db();
    contacts_table(&mut db); // owned by postgres
    db.batch_execute(&format!(
        "CREATE ROLE app LOGIN;
         GRANT CREATE ON SCHEMA public TO app;
         GRANT EXECUTE ON FUNCTION {SYNC_TABLE} TO app;
         CREATE ROLE ops LOGIN;
         GRANT sfsync_admin TO ops;"
    ))
    .unwrap();
    env.worker_pid();

    let mut app = env.cluster.connect_as("app", "app");
    app.batch_execute(
        "CREATE TABLE app_accounts (id bigserial PRIMARY KEY, name text NOT NULL, industry text);
         SELECT sfsync.sync_table('app_accounts', 'Account', fields => '{\"name\": \"Name\", \"industry\": \"Industry\"}');
         INSERT INTO app_accounts (name, industry) VALUES ('App Co', 'Energy');",
    )
    .unwrap();
    let sf = env.emu.sf();
    let rec = sf.until_record("SELECT Id, Industry FROM Account WHERE Name = 'App Co'");
    assert_eq!(rec["Industry"], "Energy");
    app.until_true("the row is linked", "SELECT sfid IS NOT NULL FROM app_accounts WHERE name = 'App Co'");
    // And back: a Salesforce edit reaches the app's table.
    sf.update("Account", rec["Id"].as_str().unwrap(), sfsync_e2e::json!({"Industry": "Banking"}));
    app.until_value("SELECT industry FROM app_accounts WHERE name = 'App Co'", Some("Banking".to_string()));

    // Its own table: yes. Another role's: no.
    assert_eq!(scalar::<i64>(&mut app, "SELECT sfsync.retry('app_accounts')"), 0);
    assert_eq!(scalar::<i64>(&mut app, "SELECT sfsync.discard('app_accounts')"), 0);
    let denied = |f: &str| {
        format!("permission denied: sfsync.{f} on table public.contacts needs ownership of the table (owner: postgres) or membership in sfsync_admin")
    };
    assert_eq!(refused(&mut app, "SELECT sfsync.retry('contacts')"), denied("retry"));
    assert_eq!(refused(&mut app, "SELECT sfsync.discard('contacts')"), denied("discard"));
    assert_eq!(
        refused(&mut app, "SELECT sfsync.sync_table('contacts', 'Contact')"),
        "permission denied: sfsync.sync_table on table public.contacts needs ownership of the table (owner: postgres)"
    );
    let mine = json_of(&mut app, "SELECT sfsync.run_once()");
    let tables: Vec<&String> = mine["tables"].as_object().unwrap().keys().collect();
    assert_eq!(tables, vec!["public.app_accounts"], "run_once() covers the caller's tables only");

    // An admin acts on every table, but syncs only tables it may act as the owner of.
    let mut ops = env.cluster.connect_as("app", "ops");
    assert_eq!(scalar::<i64>(&mut ops, "SELECT sfsync.retry('contacts')"), 0);
    assert_eq!(scalar::<i64>(&mut ops, "SELECT sfsync.discard('app_accounts')"), 0);
    assert_eq!(scalar::<i64>(&mut ops, "SELECT sfsync.approve_deletes('app_accounts')"), 0);
    let every = json_of(&mut ops, "SELECT sfsync.run_once()");
    assert_eq!(every["tables"].as_object().unwrap().len(), 2, "{every}");
    assert_eq!(
        refused(&mut ops, "SELECT sfsync.sync_table('app_accounts', 'Account')"),
        "permission denied: sfsync.sync_table on table public.app_accounts needs ownership of the table (owner: app)"
    );

    // An admin mirrors an object into a table it then owns.
    db.batch_execute("GRANT CREATE ON SCHEMA public TO ops").unwrap();
    ops.batch_execute("SELECT sfsync.mirror('Contact', 'ops_contacts', fields => ARRAY['LastName'])").unwrap();
    assert_eq!(scalar::<String>(&mut db, "SELECT relowner::regrole::text FROM pg_class WHERE oid = 'ops_contacts'::regclass"), "ops");
    assert_eq!(refused(&mut app, "SELECT sfsync.mirror('Contact', 'app_contacts')"), "permission denied for function mirror");

    // Salesforce's error text: a table's to its owner and admins, a connection's to admins.
    common::stop_worker(&env); // so that no pass clears the errors set below
    db.batch_execute(
        "UPDATE sfsync.sync_state SET last_error = 'INVALID_FIELD: contact detail' WHERE mapping_id = (SELECT id FROM sfsync.mappings WHERE tbl = 'contacts'::regclass);
         UPDATE sfsync.connection_state SET last_error = 'connection detail';",
    )
    .unwrap();
    let errors =
        "SELECT string_agg(format('%s=%s', \"table\", COALESCE(last_error, '-')), ' ' ORDER BY \"table\"::text) FROM sfsync.status";
    assert_eq!(scalar::<String>(&mut app, errors), "app_accounts=- contacts=- ops_contacts=-");
    let all = "app_accounts=connection detail contacts=INVALID_FIELD: contact detail ops_contacts=connection detail";
    assert_eq!(scalar::<String>(&mut ops, errors), all);
    assert_eq!(scalar::<String>(&mut db, errors), all);
}

/// A database's owner (no superuser), who also owns the synced table, puts a schema of its
/// own first on the database's search_path, with a now() that notes who calls it. The worker
/// pushes and pulls (its SQL says now()): what runs as the table's owner may call it, as that
/// owner; the worker's own statements, as a superuser, never do.
#[test]
fn a_database_owners_search_path_lends_nothing_to_the_worker() {
    let env = common::start();
    let mut db = env.db();
    accounts_table(&mut db);
    db.batch_execute(
        "CREATE ROLE app_dbowner LOGIN; ALTER DATABASE app OWNER TO app_dbowner;
         ALTER TABLE accounts OWNER TO app_dbowner;
         SET ROLE app_dbowner;
         CREATE SCHEMA evil;
         CREATE TABLE evil.calls (who text);
         GRANT INSERT ON evil.calls TO PUBLIC;
         CREATE FUNCTION evil.now() RETURNS timestamptz LANGUAGE plpgsql AS $$
         BEGIN INSERT INTO evil.calls VALUES (current_user); RETURN pg_catalog.now(); END $$;
         ALTER DATABASE app SET search_path = evil, pg_catalog;
         RESET ROLE;",
    )
    .unwrap();
    // A new worker, which reads the database's settings when it connects.
    let before = env.worker_pid();
    db.batch_execute(&format!("SELECT pg_catalog.pg_terminate_backend({before})")).unwrap();
    sfsync_e2e::until("a new worker", std::time::Duration::from_secs(30), || {
        let now = env.db().until_worker();
        (now != before).then_some(()).ok_or(format!("still {now}"))
    });
    let mut db = env.db();
    let path: String = scalar(&mut db, "SELECT pg_catalog.current_setting('search_path')");
    assert_eq!(path, "evil, pg_catalog", "the database's setting is in force for sessions");
    db.batch_execute("INSERT INTO public.accounts (name) VALUES ('Pushed under an odd path')").unwrap();
    db.until_true("pushed", "SELECT sfid IS NOT NULL FROM public.accounts WHERE name = 'Pushed under an odd path'");
    // And a change made in Salesforce comes back (the claim, the settle and the pull say now()).
    let id = env.emu.sf().create("Account", sfsync_e2e::json!({"Name": "From Salesforce"}));
    db.until_true("pulled", &format!("SELECT pg_catalog.count(*) = 1 FROM public.accounts WHERE sfid = '{id}'"));
    let calls: String = scalar(&mut db, "SELECT COALESCE(pg_catalog.string_agg(DISTINCT who, ','), '') FROM evil.calls");
    assert!(!calls.split(',').any(|who| who == "postgres"), "the owner's now() ran as the superuser: {calls}");
}
