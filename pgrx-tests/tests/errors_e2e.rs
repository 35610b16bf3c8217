//! End to end: bad input gets a clear error that names what is wrong, and the extension's
//! lifecycle (drop, create again) is followed by the worker.

mod common;

/// The message of the error `sql` fails with.
fn error_message(db: &mut sfsync_e2e::postgres::Client, sql: &str) -> String {
    common::error_of(db, sql).1
}

use sfsync_e2e::{scalar, Credentials};

#[test]
fn bad_credentials_and_mappings_are_refused_by_name() {
    let env = common::start();
    let mut db = env.db();
    let good = env.emu.credentials();

    let wrong_secret = Credentials { client_secret: Some("wrong".into()), ..good.clone() };
    let msg = error_message(&mut db, &wrong_secret.add_connection_sql("x"));
    assert!(msg.contains("invalid_client"), "{msg}");
    assert!(!msg.contains("wrong"), "the secret must not be echoed: {msg}");
    let wrong_password = Credentials { password: Some("nope".into()), ..good.clone().password_flow() };
    let msg = error_message(&mut db, &wrong_password.add_connection_sql("x"));
    assert!(msg.contains("invalid_grant"), "{msg}");
    assert!(!msg.contains("nope"), "the password must not be echoed: {msg}");
    let no_password = Credentials { client_secret: None, username: Some("u".into()), password: None, ..good.clone() };
    let msg = error_message(&mut db, &no_password.add_connection_sql("x"));
    assert!(msg.contains("needs password"), "{msg}");
    let n: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.connections WHERE name = 'x'");
    assert_eq!(n, 0, "refused credentials are not stored");
    // The password flow works with the right password.
    db.batch_execute(&good.password_flow().add_connection_sql("pw")).unwrap();

    db.batch_execute("CREATE TABLE people (id bigserial PRIMARY KEY, surname text, mail text)").unwrap();
    let msg = error_message(&mut db, "SELECT sfsync.sync_table('people', 'Contct')");
    assert!(msg.contains("\"Contct\" does not exist"), "{msg}");
    let msg = error_message(&mut db, "SELECT sfsync.sync_table('people', 'Contact', fields => '{\"surname\": \"LastNme\"}')");
    assert!(msg.contains("\"LastNme\"") && msg.contains("does not exist"), "{msg}");
    let msg = error_message(
        &mut db,
        "SELECT sfsync.sync_table('people', 'Contact', fields => '{\"surname\": \"LastName\"}', filter => 'Bogus__c = 1')",
    );
    assert_eq!(msg, "filter: Contact has no field \"Bogus__c\" (position 1)");
    // A filter closing the parentheses every query puts around it never reaches Salesforce.
    let calls = env.emu.api_calls();
    let msg = error_message(
        &mut db,
        "SELECT sfsync.sync_table('people', 'Contact', fields => '{\"surname\": \"LastName\"}',
                                  filter => $$LastName = 'x') OR (LastName != ''$$)",
    );
    assert!(msg.starts_with("filter: unexpected \")\" at position 15"), "{msg}");
    assert_eq!(env.emu.api_calls(), calls, "refused before any call to Salesforce");
    let msg = error_message(
        &mut db,
        "SELECT sfsync.sync_table('people', 'Contact', fields => '{\"surname\": \"LastName\"}', external_id => 'Email')",
    );
    assert!(msg.contains("not marked External ID"), "{msg}");
    let n: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.mappings");
    assert_eq!(n, 0);
    let has_sfid: bool =
        scalar(&mut db, "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'people'::regclass AND attname = 'sfid')");
    assert!(!has_sfid, "a refused sync_table leaves the table as it was");

    // And a good one, through the second connection.
    db.batch_execute(
        "SELECT sfsync.sync_table('people', 'Contact', connection => 'pw', fields => '{\"surname\": \"LastName\", \"mail\": \"Email\"}')",
    )
    .unwrap();
    db.batch_execute("INSERT INTO people (surname, mail) VALUES ('Hopper', 'grace@example.com')").unwrap();
    env.emu.sf().until_records("SELECT Email FROM Contact WHERE LastName = 'Hopper'", 1);
}

#[test]
fn worker_follows_drop_and_create_extension() {
    let env = common::start();
    let mut db = env.db();
    env.worker_pid();
    db.batch_execute("DROP EXTENSION sfsync").unwrap();
    // The worker leaves; a fresh database without the extension gets none either.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let backends: i64 = scalar(&mut db, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'sfsync worker'");
    assert_eq!(backends, 0, "no worker without the extension");
    db.batch_execute("CREATE EXTENSION sfsync").unwrap();
    env.worker_pid();
}
