//! End to end: what stops a mapping is raised once in sfsync.alerts and announced to a
//! LISTEN client on the sfsync_alerts channel; the condition's end resolves it; a person
//! acknowledges it, if allowed to (docs/sql-reference.md, "Alerts").

mod common;

use common::{error_line, next_alert};

use common::accounts_table;
use sfsync_e2e::{scalar, DbExt};

#[test]
fn a_failing_login_is_alerted_once_resolved_when_it_works_and_acknowledged() {
    let env = common::start_with(&[("sfsync.cdc", "off")]);
    let mut db = env.db();
    accounts_table(&mut db);
    env.worker_pid();
    let mut listener = env.db();
    listener.batch_execute("LISTEN sfsync_alerts").unwrap();

    // The stored secret goes wrong (as after a rotation in Salesforce): every login fails.
    db.batch_execute(
        "UPDATE sfsync.connection_secrets SET client_secret = 'rotated-away-5d1e' WHERE connection = 'default';
         UPDATE sfsync.connections SET updated_at = now() WHERE name = 'default';",
    )
    .unwrap();
    let alert = next_alert(&mut listener);
    assert_eq!(alert["kind"], "auth_failed", "{alert}");
    assert_eq!(alert["connection"], "default", "{alert}");
    assert!(alert["message"].as_str().unwrap().contains("cannot log in"), "{alert}");
    assert!(!alert.to_string().contains("rotated-away-5d1e"), "no secret in a NOTIFY: {alert}");
    let id = alert["id"].as_i64().unwrap();
    let r = db.query_one("SELECT kind, connection, detail::text FROM sfsync.alerts WHERE id = $1", &[&id]).unwrap();
    let (kind, connection, detail): (String, Option<String>, String) = (r.get(0), r.get(1), r.get(2));
    assert_eq!((kind.as_str(), connection.as_deref()), ("auth_failed", Some("default")));
    assert!(detail.contains("invalid_client"), "Salesforce's reason is in detail: {detail}");

    // The worker keeps failing pass after pass, and a person's run_once (another process)
    // fails too: still one alert, counted.
    let _ = env.cluster.try_psql("app", "SELECT sfsync.run_once()");
    assert_eq!(scalar::<i64>(&mut db, "SELECT count(*) FROM sfsync.alerts WHERE kind = 'auth_failed'"), 1, "once per episode");

    // Not for a role that may not act on the connection: an admin's.
    db.batch_execute("CREATE ROLE app_reader LOGIN").unwrap();
    let mut plain = env.cluster.connect_as("app", "app_reader");
    assert_eq!(scalar::<i64>(&mut plain, "SELECT count(*) FROM sfsync.alerts"), 0, "a connection's alerts are for admins");
    let e = error_line(&mut plain, &format!("SELECT sfsync.ack_alert({id})"));
    assert!(e.starts_with("42501: permission denied: sfsync.ack_alert needs membership in sfsync_admin"), "{e}");

    // The secret is entered again: the episode is over, the alert stays listed, resolved.
    db.batch_execute(&env.emu.connect_sql("default")).unwrap();
    db.until_true("the alert is resolved", &format!("SELECT resolved_at IS NOT NULL FROM sfsync.alerts WHERE id = {id}"));

    // Acknowledged: it leaves the open list.
    assert!(scalar::<bool>(&mut db, &format!("SELECT sfsync.ack_alert({id})")));
    assert!(!scalar::<bool>(&mut db, &format!("SELECT sfsync.ack_alert({id})")), "already acknowledged");
    let open: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.alerts WHERE acknowledged_at IS NULL");
    assert_eq!(open, 0);
    let by: String = scalar(&mut db, &format!("SELECT acknowledged_by FROM sfsync.alerts WHERE id = {id}"));
    assert_eq!(by, scalar::<String>(&mut db, "SELECT current_user::text"));
    let e = error_line(&mut db, "SELECT sfsync.ack_alert(987654)");
    assert_eq!(e, "42704: alert 987654 does not exist (see sfsync.alerts)");
}
