//! Upgrades: a database made with sfsync 0.1.0 (a pg_dump in fixtures/), restored and
//! updated with ALTER EXTENSION sfsync UPDATE, ends with the same catalog as a fresh install,
//! keeps its connection, mappings and captured changes, and syncs them.

mod common;

use sfsync_e2e::{scalar, workspace_root, DbExt};

/// Everything the extension defines, as sorted text: tables and columns, constraints,
/// indexes, functions (with their settings and privileges), views, triggers, event triggers,
/// table privileges and what pg_dump is told to keep. Two databases with the same text have
/// the same sfsync catalog.
const CATALOG: &str = r#"
SELECT string_agg(line, E'\n' ORDER BY line) FROM (
    SELECT format('column %s.%s %s %s default %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                  CASE WHEN a.attnotnull THEN 'not null' ELSE 'null' END, pg_get_expr(d.adbin, d.adrelid)) AS line
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relnamespace = 'sfsync'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'v')
    UNION ALL
    SELECT format('constraint %s.%s %s', conrelid::regclass, conname, pg_get_constraintdef(oid))
    FROM pg_constraint WHERE connamespace = 'sfsync'::regnamespace
    UNION ALL
    SELECT format('index %s', pg_get_indexdef(indexrelid)) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE c.relnamespace = 'sfsync'::regnamespace
    UNION ALL
    SELECT format('function %s acl %s: %s', p.oid::regprocedure, p.proacl, pg_get_functiondef(p.oid))
    FROM pg_proc p WHERE p.pronamespace = 'sfsync'::regnamespace
    UNION ALL
    SELECT format('view %s: %s', c.oid::regclass, pg_get_viewdef(c.oid)) FROM pg_class c
    WHERE c.relnamespace = 'sfsync'::regnamespace AND c.relkind = 'v'
    UNION ALL
    SELECT format('relation %s kind %s acl %s', c.oid::regclass, c.relkind, c.relacl) FROM pg_class c
    WHERE c.relnamespace = 'sfsync'::regnamespace
    UNION ALL
    SELECT format('trigger %s', pg_get_triggerdef(t.oid)) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
    WHERE c.relnamespace = 'sfsync'::regnamespace AND NOT t.tgisinternal
    UNION ALL
    SELECT format('event trigger %s on %s runs %s', evtname, evtevent, evtfoid::regproc) FROM pg_event_trigger
    UNION ALL
    SELECT format('dumped %s where %s', cfg, cond)
    FROM pg_extension e, unnest(e.extconfig::regclass[], e.extcondition) AS u(cfg, cond) WHERE e.extname = 'sfsync'
    UNION ALL
    SELECT format('member %s', pg_describe_object(classid, objid, objsubid)) FROM pg_depend
    WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
      AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'sfsync')
) lines
"#;

#[test]
fn a_0_1_0_database_upgrades_to_the_fresh_catalog_and_syncs() {
    let env = common::start();
    env.cluster.create_database("old");
    // The dump as pg_dump wrote it, but made to install 0.1.0 (as the restoring server would
    // have had it) and to log in to this test's emulator.
    let fixture = std::fs::read_to_string(workspace_root().join("pgrx-tests/fixtures/sfsync-0.1.0.sql")).unwrap();
    let create = "CREATE EXTENSION IF NOT EXISTS sfsync WITH SCHEMA sfsync;";
    assert!(fixture.contains(create));
    let script = fixture
        .replace(create, "CREATE EXTENSION IF NOT EXISTS sfsync WITH SCHEMA sfsync VERSION '0.1.0';")
        .replace("http://127.0.0.1:55441", env.emu.url());
    let path = env.cluster.dir().join("sfsync-0.1.0.sql");
    std::fs::write(&path, script).unwrap();
    env.cluster.psql_file("old", &path);

    let mut old = env.cluster.connect("old");
    let version: String = scalar(&mut old, "SELECT extversion FROM pg_extension WHERE extname = 'sfsync'");
    assert_eq!(version, "0.1.0");
    // The new library does not touch a catalog it was not built for: the worker waits.
    env.cluster.wait_for_log("nothing is synced until ALTER EXTENSION sfsync UPDATE is run", sfsync_e2e::WAIT);
    assert_eq!(scalar::<i64>(&mut old, "SELECT count(*) FROM sfsync.outbox"), 3);

    old.batch_execute("ALTER EXTENSION sfsync UPDATE").unwrap();
    let version: String = scalar(&mut old, "SELECT extversion FROM pg_extension WHERE extname = 'sfsync'");
    assert_eq!(version, env!("CARGO_PKG_VERSION"));
    // The mappings made here are this database's: a later copy of it will be told apart.
    assert_eq!(scalar::<String>(&mut old, "SELECT database_name FROM sfsync.instance"), "old");
    let upgraded: String = scalar(&mut old, CATALOG);
    let fresh: String = scalar(&mut env.db(), CATALOG);
    if upgraded != fresh {
        let (u, f): (Vec<&str>, Vec<&str>) = (upgraded.lines().collect(), fresh.lines().collect());
        // Lines counted: a line twice on one side (a duplicated grant, a repeated view line) is a difference too.
        let count = |v: &[&str], l: &str| v.iter().filter(|x| **x == l).count();
        let missing: Vec<&&str> = f.iter().filter(|l| count(&u, l) < count(&f, l)).collect();
        let extra: Vec<&&str> = u.iter().filter(|l| count(&f, l) < count(&u, l)).collect();
        panic!("the upgraded catalog differs from a fresh install\nonly in fresh: {missing:#?}\nonly in upgraded: {extra:#?}");
    }

    // What 0.1.0 captured is pushed: both accounts, and the contact with its parent resolved.
    let sf = env.emu.sf();
    let acme = sf.until_record("SELECT Id, Industry FROM Account WHERE Name = 'Acme 0.1'");
    assert_eq!(acme["Industry"], "Energy");
    sf.until_record("SELECT Id FROM Account WHERE Name = 'Globex 0.1'");
    let doe = sf.until_record("SELECT AccountId FROM Contact WHERE LastName = 'Doe'");
    assert_eq!(doe["AccountId"], acme["Id"]);
    old.until_outbox_drained();
    // And it goes on: a change after the upgrade flows both ways.
    old.batch_execute("UPDATE accounts SET industry = 'Banking' WHERE name = 'Acme 0.1'").unwrap();
    sf.until_field("Account", acme["Id"].as_str().unwrap(), "Industry", "Banking");
    sf.update("Account", acme["Id"].as_str().unwrap(), sfsync_e2e::json!({"Name": "Acme 0.2"}));
    old.until_count("SELECT count(*) FROM accounts WHERE name = 'Acme 0.2'", 1);
}
