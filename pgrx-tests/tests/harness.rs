//! Smoke test of the e2e harness itself: cluster lifecycle and an emulator round trip.
//!
//! Runs without the extension when `SFSYNC_E2E_NO_PRELOAD=1`; otherwise the cluster preloads
//! `sfsync` (installed by `make install`) and the test also checks `CREATE EXTENSION sfsync`.

use std::time::Duration;

use sfsync_e2e::{json, until, Cluster, ClusterOpts, DbExt, Emulator};

#[test]
fn cluster_start_restart_stop() {
    let opts = ClusterOpts::new().guc("sfsync.poll_interval", "200ms").guc("work_mem", "8MB");
    let preload = opts.preload.unwrap_or(std::env::var("SFSYNC_E2E_NO_PRELOAD").as_deref() != Ok("1"));
    let mut cluster = Cluster::start(opts);

    // Never runs as root, whoever we are.
    let mut c = cluster.connect("postgres");
    let row = c.query_one("SELECT current_setting('work_mem'), current_user::text", &[]).unwrap();
    assert_eq!(row.get::<_, String>(0), "8MB");
    assert_eq!(row.get::<_, String>(1), "postgres");
    let spl: String = c.query_one("SHOW shared_preload_libraries", &[]).unwrap().get(0);
    assert_eq!(spl.contains("sfsync"), preload, "shared_preload_libraries = {spl:?}");
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let owner = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = owner.lines().find(|l| l.starts_with("Uid:")).unwrap().to_string();
    assert!(!uid_line.split_whitespace().skip(1).any(|u| u == "0"), "backend runs as root: {uid_line}");

    cluster.create_database("smoke");
    cluster.psql("smoke", "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')");
    assert_eq!(cluster.psql("smoke", "SELECT v FROM t WHERE id = 1").trim(), "a");
    if preload {
        cluster.psql("smoke", "CREATE EXTENSION sfsync");
        assert_eq!(cluster.psql("smoke", "SELECT extname FROM pg_extension WHERE extname = 'sfsync'").trim(), "sfsync");
    }
    drop(c);

    // A killed backend: the postmaster resets and accepts connections again.
    let mut c = cluster.connect("smoke");
    let pid: i32 = c.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    cluster.kill_backend(pid);
    assert!(c.query_one("SELECT 1", &[]).is_err());
    let v: String = until("the server back after a killed backend", Duration::from_secs(30), || {
        let mut c = cluster.try_connect("smoke").map_err(|e| e.to_string())?;
        c.query_one("SELECT v FROM t", &[]).map(|r| r.get(0)).map_err(|e| e.to_string())
    });
    assert_eq!(v, "a");

    // The database waits answer at once when the condition already holds.
    let mut c = cluster.connect("smoke");
    c.until_count("SELECT count(*) FROM t", 1);
    c.until_value("SELECT v FROM t WHERE id = 1", "a".to_string());
    c.until_true("row 1 there", "SELECT EXISTS (SELECT 1 FROM t WHERE id = 1)");
    c.set_system(&[("work_mem", "'16MB'")]);
    cluster.connect("smoke").until_value("SHOW work_mem", "16MB".to_string());
    drop(c);

    cluster.restart();
    assert_eq!(cluster.psql("smoke", "SELECT count(*) FROM t").trim(), "1");
    cluster.stop();
    assert!(cluster.try_connect("smoke").is_err());
    cluster.start_again();
    assert_eq!(cluster.psql("smoke", "SELECT v FROM t").trim(), "a");
    assert!(cluster.log_contents().contains("database system is ready to accept connections"));

    let dir = cluster.dir().to_path_buf();
    drop(cluster);
    if std::env::var("SFSYNC_E2E_KEEP").as_deref() != Ok("1") {
        assert!(!dir.exists(), "cluster dir not removed: {}", dir.display());
    }
}

#[test]
fn emulator_round_trip() {
    let emu = Emulator::start();
    assert!(emu.url().starts_with("http://127.0.0.1:"), "url = {}", emu.url());
    // The second stdout line: the Pub/Sub API's own listener.
    let pubsub: std::net::SocketAddr = emu.pubsub_addr().expect("no `pubsub listening on` line").parse().unwrap();
    assert_ne!(pubsub.port(), emu.port());
    let sf = emu.sf();

    let id = sf.create("Account", json!({"Name": "Harness Smoke", "Industry": "Energy"}));
    assert_eq!(id.len(), 18, "id = {id}");
    assert!(id.starts_with("001"), "Account key prefix: {id}");

    let soql = format!("SELECT Id, Name, Industry FROM Account WHERE Id = '{id}'");
    let rows = sf.query(&soql);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["Name"], "Harness Smoke");

    sf.update("Account", &id, json!({"Industry": "Banking"}));
    assert_eq!(sf.get("Account", &id).unwrap()["Industry"], "Banking");

    // The Salesforce waits, on records that are already there (or gone).
    assert_eq!(sf.until_record(&soql)["Id"], id.as_str());
    assert_eq!(sf.until_records(&soql, 1).len(), 1);
    sf.until_field("Account", &id, "Industry", "Banking");

    sf.delete("Account", &id);
    sf.until_gone("Account", &id);
    assert!(sf.query(&soql).is_empty());
    assert!(sf.get("Account", &id).is_none());

    // The shared login, as the add_connection call the tests make.
    let creds = emu.credentials();
    assert_eq!(
        creds.add_connection_sql("default"),
        format!("SELECT sfsync.add_connection('default', '{}', 'sfsync-local', client_secret => 'sfsync-local-secret')", emu.url())
    );
    assert_eq!(
        creds.password_flow().add_connection_sql("pw"),
        format!(
            "SELECT sfsync.add_connection('pw', '{}', 'sfsync-local', client_secret => 'sfsync-local-secret', \
             auth_flow => 'password', username => 'integration@sfsync.local', password => 'sfsync')",
            emu.url()
        )
    );

    // The admin surface answers (whatever the route's status, the exchange works).
    emu.try_admin("GET", "counters", sfsync_e2e::Value::Null).expect("admin call");
    assert!(emu.log_contents().contains("listening on"), "emulator log: {}", emu.log_contents());

    // Polling helper sanity: it polls until done, and gives up naming what it waited for.
    let mut n = 0;
    until("a third attempt", Duration::from_secs(2), || {
        n += 1;
        n >= 3
    });
    let gave_up = std::panic::catch_unwind(|| until("what never comes", Duration::from_millis(300), || None::<()>)).unwrap_err();
    let msg = gave_up.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("what never comes") && msg.contains("last seen: nothing yet"), "{msg}");
}
