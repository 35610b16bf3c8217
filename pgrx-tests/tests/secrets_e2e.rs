//! Connections and secrets: who may add a connection, where it may point, and that a secret
//! never reaches the server log, a dump, or a restored copy (docs/secrets.md).

mod common;

use common::error_line;

use sfsync_e2e::{is_root, postgres, scalar, until, Cluster, DbExt, WAIT};
use std::path::PathBuf;

const WRONG_SECRET: &str = "wrong-secret-4f1c9a";

/// sfsync_admin as the privileges section of the install script creates it (idempotent, so
/// it also runs where that section already did).
fn admin_role(cluster: &Cluster) {
    cluster.psql(
        "postgres",
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sfsync_admin') THEN CREATE ROLE sfsync_admin NOLOGIN; END IF; END $$",
    );
}

/// A file in the cluster's directory that the server (OS user postgres) can read.
fn server_file(cluster: &Cluster, name: &str, contents: &str) -> PathBuf {
    let path = cluster.dir().join(name);
    std::fs::write(&path, contents).unwrap();
    if is_root() {
        std::process::Command::new("chown").args(["postgres:", path.to_str().unwrap()]).status().unwrap();
    }
    path
}

fn add_connection(emu_url: &str, name: &str, secret_arg: &str) -> String {
    format!("SELECT sfsync.add_connection('{name}', '{emu_url}', '{}', {secret_arg})", sfsync_e2e::DEFAULT_CLIENT_ID)
}

#[test]
fn a_plain_role_cannot_add_a_connection_and_nothing_is_stored() {
    let env = common::start();
    admin_role(&env.cluster);
    env.cluster.psql("app", "CREATE ROLE app_user LOGIN");
    let mut plain = postgres::Config::new()
        .host_path(env.cluster.socket_dir())
        .port(env.cluster.port())
        .user("app_user")
        .dbname("app")
        .connect(postgres::NoTls)
        .unwrap();
    let e = error_line(&mut plain, &add_connection(env.emu.url(), "mine", "client_secret => 'plain-secret-77ad'"));
    assert_eq!(e, "42501: permission denied for function add_connection");
    let mut db = env.db();
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.connections WHERE name = 'mine'"), 0);
    assert!(!env.cluster.log_contents().contains("plain-secret-77ad"), "the refused statement's secret is not logged");

    // A member of sfsync_admin (no superuser, no rights on the catalog's tables) may.
    env.cluster.psql("app", "CREATE ROLE app_admin LOGIN IN ROLE sfsync_admin");
    let mut admin = postgres::Config::new()
        .host_path(env.cluster.socket_dir())
        .port(env.cluster.port())
        .user("app_admin")
        .dbname("app")
        .connect(postgres::NoTls)
        .unwrap();
    admin.batch_execute(&env.emu.connect_sql("theirs")).unwrap();
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.connection_secrets WHERE connection = 'theirs'"), 1);
    let e = error_line(&mut admin, "SELECT client_secret FROM sfsync.connection_secrets");
    assert!(e.starts_with("42501: "), "an admin still cannot read stored secrets: {e}");
}

#[test]
fn login_urls_are_https_to_salesforce_or_allowed_hosts() {
    let env = common::start();
    let mut db = env.db();
    let e = error_line(&mut db, &add_connection("http://sf.example.com", "x", "client_secret => 's'"));
    assert!(e.starts_with("22023: ") && e.contains("uses http:// to host \"sf.example.com\""), "{e}");
    let e = error_line(&mut db, &add_connection("https://sf.example.com", "x", "client_secret => 's'"));
    assert!(e.contains("host \"sf.example.com\" is not a Salesforce domain") && e.contains("sfsync.allowed_login_hosts"), "{e}");
    // The emulator is on a loopback address, which the default allow-list names; a site that
    // takes it out refuses it.
    env.cluster.psql("postgres", "ALTER SYSTEM SET sfsync.allowed_login_hosts = ''");
    env.cluster.psql("postgres", "SELECT pg_reload_conf()");
    let mut db = env.db();
    let e = error_line(&mut db, &env.emu.connect_sql("again"));
    assert!(e.contains("host \"127.0.0.1\" is not a Salesforce domain"), "{e}");
    env.cluster.psql("postgres", "ALTER SYSTEM SET sfsync.allowed_login_hosts = '127.0.0.1'");
    env.cluster.psql("postgres", "SELECT pg_reload_conf()");
    let mut db = env.db();
    db.batch_execute(&env.emu.connect_sql("again")).unwrap();
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.connections WHERE name = 'x'"), 0);
}

#[test]
fn a_failing_add_connection_logs_no_secret_under_default_logging() {
    let env = common::start();
    let mut db = env.db();
    // A wrong secret (the login fails) and a misspelt argument (the call never resolves).
    let e = error_line(&mut db, &add_connection(env.emu.url(), "bad", &format!("client_secret => '{WRONG_SECRET}'")));
    assert!(e.contains("invalid_client"), "{e}");
    let e = error_line(&mut db, &add_connection(env.emu.url(), "bad", "client_secrett => 'typo-secret-91b2'"));
    assert!(e.starts_with("42883: "), "{e}");
    // With parameters (extended protocol), and from inside a function of the user's.
    let sql = "SELECT sfsync.add_connection($1, $2, $3, client_secret => $4)";
    let client_id = sfsync_e2e::DEFAULT_CLIENT_ID;
    db.query(sql, &[&"bad", &env.emu.url(), &client_id, &"param-secret-2c7e"]).expect_err("wrong secret");
    db.batch_execute(&format!(
        "CREATE FUNCTION setup(s text) RETURNS jsonb LANGUAGE sql AS $$ SELECT sfsync.add_connection('bad', '{}', '{client_id}', client_secret => s) $$",
        env.emu.url()
    ))
    .unwrap();
    error_line(&mut db, "SELECT setup('wrapped-secret-5d30')");
    // A failing statement that takes no secret is logged with its text: logging is on.
    error_line(&mut db, "SELECT 1/0 AS \"logged-marker\"");
    env.cluster.wait_for_log("logged-marker", WAIT);
    let log = env.cluster.log_contents();
    assert!(log.contains("invalid client credentials"), "the failures themselves are logged");
    for secret in [WRONG_SECRET, "typo-secret-91b2", "param-secret-2c7e", "wrapped-secret-5d30"] {
        assert!(!log.contains(secret), "{secret} is in the server log:\n{log}");
    }
}

#[test]
fn under_log_statement_all_secrets_given_as_files_stay_out_of_the_log() {
    let env = common::start_with(&[("log_statement", "all")]);
    let mut db = env.db();
    let good = server_file(&env.cluster, "client_secret", &format!("{}\n", sfsync_e2e::DEFAULT_CLIENT_SECRET));
    let bad = server_file(&env.cluster, "wrong_secret", "file-secret-e83b\n");
    let file_arg = |p: &PathBuf| format!("client_secret_file => '{}'", p.display());
    let e = error_line(&mut db, &add_connection(env.emu.url(), "filed", &file_arg(&bad)));
    assert!(e.contains("invalid_client"), "{e}");
    db.batch_execute(&add_connection(env.emu.url(), "filed", &file_arg(&good))).unwrap();
    let stored: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.connection_secrets WHERE connection = 'filed'");
    assert_eq!(stored, 0, "only the path is stored");
    let path: String = scalar(&mut db, "SELECT secret_files ->> 'client_secret' FROM sfsync.connections WHERE name = 'filed'");
    assert_eq!(path, good.display().to_string());
    // Inline secrets: the statement line that log_statement writes before the call runs is
    // replaced when it names add_connection, in both protocols.
    db.batch_execute(&add_connection(env.emu.url(), "inline", "client_secret => 'inline-secret-0a4d'")).expect_err("wrong");
    let client_id = sfsync_e2e::DEFAULT_CLIENT_ID;
    db.query(
        "SELECT sfsync.add_connection($1, $2, $3, client_secret => $4)",
        &[&"inline", &env.emu.url(), &client_id, &"bound-secret-61f0"],
    )
    .expect_err("wrong");
    // What it cannot see: EXECUTE of a prepared statement is logged before it runs, and its
    // text does not name the function (docs/secrets.md says so).
    db.batch_execute(&format!(
        "PREPARE conn(text) AS SELECT sfsync.add_connection('p', '{}', '{client_id}', client_secret => $1)",
        env.emu.url()
    ))
    .unwrap();
    error_line(&mut db, "EXECUTE conn('prepared-secret-b7a1')");
    db.batch_execute("SELECT 'after-marker'").unwrap();
    env.cluster.wait_for_log("after-marker", WAIT);
    let log = env.cluster.log_contents();
    assert!(log.contains("statement text hidden by sfsync"), "the statement lines are there, redacted:\n{log}");
    for secret in ["file-secret-e83b", sfsync_e2e::DEFAULT_CLIENT_SECRET, "inline-secret-0a4d", "bound-secret-61f0"] {
        assert!(!log.contains(secret), "{secret} is in the server log:\n{log}");
    }
    assert!(log.contains("prepared-secret-b7a1"), "the documented limit: EXECUTE of a prepared statement is logged as typed");
}

#[test]
fn a_dump_carries_no_secret_and_a_restored_copy_asks_for_it() {
    let env = common::start();
    let mut db = env.db();
    common::accounts_table(&mut db);
    db.batch_execute("INSERT INTO accounts (name) VALUES ('Before dump')").unwrap();
    env.emu.sf().until_record("SELECT Id FROM Account WHERE Name = 'Before dump'");
    // A second connection whose secret is a file on the server: a restore keeps it working.
    let file = server_file(&env.cluster, "client_secret", sfsync_e2e::DEFAULT_CLIENT_SECRET);
    db.batch_execute(&add_connection(env.emu.url(), "filed", &format!("client_secret_file => '{}'", file.display()))).unwrap();
    db.batch_execute(
        "CREATE TABLE contacts (id bigserial PRIMARY KEY, last_name text NOT NULL);
         SELECT sfsync.sync_table('contacts', 'Contact', connection => 'filed');",
    )
    .unwrap();

    let dump = env.cluster.pg_dump("app", &[]);
    assert!(dump.contains(env.emu.url()), "the connection itself is dumped");
    assert!(dump.contains(&file.display().to_string()), "with its secret file's path");
    assert!(!dump.contains(sfsync_e2e::DEFAULT_CLIENT_SECRET), "the secret is not");

    let path = env.cluster.dir().join("app.sql");
    std::fs::write(&path, &dump).unwrap();
    env.cluster.create_database("copy");
    env.cluster.psql_file("copy", &path);
    let mut copy = env.cluster.connect("copy");
    // A restored copy waits to be adopted (docs/guide.md); given its own namespace, it then
    // needs its connection's secret, which the dump did not carry.
    copy.batch_execute("SELECT sfsync.adopt(fresh_namespace => true)").unwrap();
    let last_error = until("the copy's status to say its secret is missing", WAIT, || {
        let e: Option<String> =
            copy.query_one("SELECT last_error FROM sfsync.status WHERE \"table\" = 'accounts'::regclass", &[]).unwrap().get(0);
        e.filter(|e| e.contains("no client_secret"))
    });
    assert!(last_error.contains("connection \"default\" has no client_secret stored in this database"), "{last_error}");
    assert!(last_error.contains("sfsync.add_connection('default'"), "says how to enter it again: {last_error}");
    env.cluster.wait_for_log("has no client_secret stored in this database", WAIT);
    // Meanwhile the connection with a secret file syncs the copy's changes.
    copy.batch_execute("INSERT INTO contacts (id, last_name) VALUES (1000, 'From the copy')").unwrap();
    env.emu.sf().until_record("SELECT Id FROM Contact WHERE LastName = 'From the copy'");

    copy.batch_execute(&env.emu.connect_sql("default")).unwrap();
    copy.batch_execute("INSERT INTO accounts (name) VALUES ('From the copy')").unwrap();
    env.emu.sf().until_record("SELECT Id FROM Account WHERE Name = 'From the copy'");
    copy.until_outbox_drained();
}
