//! End to end: what sfsync tells the user is true. sync_table is quiet when all is well.

mod common;

use common::Env;
use sfsync_e2e::{json, postgres, Value};
use std::sync::{Arc, Mutex};

fn start() -> Env {
    common::start_with(&[("sfsync.delete_check_interval", "1s")])
}

/// A session of `app` whose NOTICEs (and higher) are kept in the returned list.
fn listening(env: &Env) -> (postgres::Client, Arc<Mutex<Vec<String>>>) {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let keep = notices.clone();
    let db = postgres::Config::new()
        .host_path(env.cluster.socket_dir())
        .port(env.cluster.port())
        .user("postgres")
        .dbname("app")
        .notice_callback(move |n| keep.lock().unwrap().push(n.message().to_string()))
        .connect(postgres::NoTls)
        .unwrap();
    (db, notices)
}

/// What sync_table returned, as JSON.
fn sync_table(db: &mut postgres::Client, sql: &str) -> Value {
    let text: String = db.query_one(sql, &[]).unwrap().get(0);
    sfsync_e2e::serde_json::from_str(&text).unwrap()
}

#[test]
fn sync_table_is_quiet_on_success_and_names_left_out_columns_in_one_line() {
    let env = start();
    env.worker_pid();
    let (mut db, notices) = listening(&env);

    // An integer key without a default: worth a note in the result, not a NOTICE.
    db.batch_execute("CREATE TABLE plain (id int PRIMARY KEY, name text)").unwrap();
    let r = sync_table(&mut db, "SELECT sfsync.sync_table('plain', 'Account')::text");
    assert_eq!(r["mapped"]["name"], "Name", "{r}");
    let notes = r["notes"].to_string();
    assert!(notes.contains("public.plain.id has no default"), "{r}");
    assert_eq!(*notices.lock().unwrap(), Vec::<String>::new(), "nothing printed on success");

    // A column nothing matches is what the user must act on: one line naming it.
    db.batch_execute("CREATE TABLE extra (id bigserial PRIMARY KEY, name text, colour text, shade text)").unwrap();
    let r = sync_table(&mut db, "SELECT sfsync.sync_table('extra', 'Account')::text");
    assert_eq!(r["unmatched_columns"], json!(["colour", "shade"]), "{r}");
    assert_eq!(
        *notices.lock().unwrap(),
        vec!["sfsync: columns of public.extra not synced (no matching field on Account): colour, shade".to_string()]
    );
}
