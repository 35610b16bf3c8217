//! End to end: captured changes reach the outbox whatever runs the statement. A statement's
//! changes are written together when it ends (hooks the library installs when it loads);
//! in a server without `sfsync` in `shared_preload_libraries` the library loads in the middle
//! of a session's first write, after that statement's hooks were chosen, and its changes are
//! written before the transaction commits.

use sfsync_e2e::{Cluster, ClusterOpts, Emulator};
use std::io::Write;

fn outbox(db: &mut sfsync_e2e::postgres::Client) -> Vec<(String, String)> {
    db.query("SELECT op, pk FROM sfsync.outbox ORDER BY id", &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
}

#[test]
fn without_preload_a_sessions_first_writes_are_queued_too() {
    let emu = Emulator::start();
    let cluster = Cluster::start(ClusterOpts::new().preload(false));
    cluster.create_sfsync_database("app", &emu);
    let mut db = cluster.connect("app");
    db.batch_execute(
        "CREATE TABLE contacts (id bigint PRIMARY KEY, last_name text NOT NULL, email text);
         SELECT sfsync.sync_table('contacts', 'Contact', direction => 'push');",
    )
    .unwrap();
    drop(db);

    // Each in a new session, where the library is not loaded yet.
    let mut db = cluster.connect("app");
    db.batch_execute("INSERT INTO contacts (id, last_name) SELECT g, 'Doe ' || g FROM generate_series(1, 3) g").unwrap();
    drop(db);
    let mut db = cluster.connect("app");
    db.batch_execute("BEGIN; UPDATE contacts SET email = 'a@x' WHERE id = 1; DELETE FROM contacts WHERE id = 2; COMMIT;").unwrap();
    drop(db);
    let mut db = cluster.connect("app");
    let mut copy = db.copy_in("COPY contacts (id, last_name) FROM STDIN (FORMAT csv)").unwrap();
    copy.write_all(b"4,Copied\n5,Copied\n").unwrap();
    copy.finish().unwrap();

    let pairs: Vec<(&str, &str)> =
        vec![("insert", "1"), ("insert", "2"), ("insert", "3"), ("update", "1"), ("delete", "2"), ("insert", "4"), ("insert", "5")];
    let got = outbox(&mut db);
    assert_eq!(got.iter().map(|(o, k)| (o.as_str(), k.as_str())).collect::<Vec<_>>(), pairs);
    let loaded: bool = db.query_one("SELECT current_setting('shared_preload_libraries') NOT LIKE '%sfsync%'", &[]).unwrap().get(0);
    assert!(loaded, "the server does not preload sfsync");
}
