//! The way out (docs/operations.md, "Uninstalling"): unsync every table, DROP EXTENSION without
//! CASCADE, and nothing of sfsync is left in the database; the tables and their data stay.

mod common;

use common::{accounts_table, contacts_table};
use sfsync_e2e::{scalar, DbExt};

#[test]
fn unsync_every_table_then_drop_extension_leaves_nothing_behind() {
    let env = common::start();
    let mut db = env.db();
    accounts_table(&mut db);
    contacts_table(&mut db);
    env.worker_pid();
    db.batch_execute("INSERT INTO accounts (id, name) VALUES (1, 'Acme'); INSERT INTO contacts (id, last_name) VALUES (1, 'Doe');")
        .unwrap();
    db.until_count("SELECT count(*) FROM accounts WHERE sfid IS NOT NULL", 1);

    db.batch_execute("SELECT sfsync.unsync_table(tbl) FROM sfsync.mappings").unwrap();
    // CREATE EXTENSION made the schema but does not own it: it goes on its own, empty.
    db.batch_execute("DROP EXTENSION sfsync; DROP SCHEMA sfsync;").unwrap();
    let left: String = scalar(
        &mut db,
        "SELECT concat_ws(', ',
             (SELECT string_agg('schema ' || nspname, ', ') FROM pg_namespace WHERE nspname = 'sfsync'),
             (SELECT string_agg('event trigger ' || evtname, ', ') FROM pg_event_trigger),
             (SELECT string_agg('trigger ' || tgname, ', ') FROM pg_trigger WHERE NOT tgisinternal),
             (SELECT string_agg('function ' || proname, ', ') FROM pg_proc WHERE proname IN ('capture', 'write_through', 'hold_delete')))",
    );
    assert_eq!(left, "", "nothing of sfsync left");
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM accounts") + scalar::<i64>(&mut db, "SELECT count(*) FROM contacts"), 2);
    db.until_value("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'sfsync worker'", 0i64);
    // Writes are plain writes now.
    db.batch_execute("UPDATE accounts SET name = 'Acme Corp'; TRUNCATE contacts; ALTER TABLE accounts DROP COLUMN sfid;").unwrap();
}
