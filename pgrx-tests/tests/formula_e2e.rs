//! End to end: formula and roll-up summary fields (from an emulator schema file). Their
//! values change in Salesforce without SystemModstamp moving, so only the periodic refresh
//! brings them; the refresh is not captured, and the push never writes a calculated field.

mod common;

use common::{scalar, Env, WAIT};
use sfsync_e2e::{eventually, json, serde_json, Value};

const SCHEMA: &str = r#"{"fields": {
  "Account": [
    {"name": "Revenue_K__c", "type": "currency", "scale": 2, "formula": "AnnualRevenue / 1000"},
    {"name": "Pipeline__c", "type": "currency", "scale": 2,
     "rollup": {"function": "SUM", "object": "Opportunity", "field": "Amount", "via": "AccountId"}},
    {"name": "Deals__c", "type": "double", "scale": 0, "rollup": {"function": "COUNT", "object": "Opportunity", "via": "AccountId"}}
  ]}}"#;

fn start(gucs: &[(&str, &str)]) -> Env {
    let path = std::env::temp_dir().join(format!("sfsync-formula-schema-{}.json", std::process::id()));
    std::fs::write(&path, SCHEMA).unwrap();
    common::start_full(&["--schema", path.to_str().unwrap()], gucs)
}

fn table(env: &Env) {
    env.db()
        .batch_execute(
            "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL, annual_revenue numeric,
                                    revenue_k numeric, pipeline numeric, deals numeric);
             SELECT sfsync.sync_table('accounts', 'Account', fields => '{\"name\": \"Name\", \"annual_revenue\": \"AnnualRevenue\",
                 \"revenue_k\": \"Revenue_K__c\", \"pipeline\": \"Pipeline__c\", \"deals\": \"Deals__c\"}');",
        )
        .unwrap();
}

#[test]
fn rollups_changed_by_other_records_arrive_through_the_refresh_and_are_never_pushed() {
    let env = start(&[("sfsync.formula_refresh_interval", "1s")]);
    let sf = env.emu.sf();
    let acme = sf.create("Account", json!({"Name": "Acme", "AnnualRevenue": 5000}));
    table(&env);
    let mut db = env.db();
    eventually(WAIT, || {
        let v: Option<String> = scalar(
            &mut db,
            "SELECT (SELECT concat_ws('/', revenue_k::numeric(12,2), pipeline::numeric(12,0), deals::numeric(12,0)) FROM accounts WHERE name = 'Acme')",
        );
        if v.as_deref() == Some("5.00/0/0") {
            Ok(())
        } else {
            Err(format!("{v:?}"))
        }
    });
    // Move the pull's mark well past Acme (the poll re-reads the records within
    // sfsync.pull_overlap of its mark, and would bring their current roll-ups): from here on
    // only the refresh reads Acme again.
    env.emu.admin("POST", "clock", json!({"advance_ms": 60_000}));
    sf.create("Account", json!({"Name": "Later"}));
    eventually(WAIT, || {
        let n: i64 = scalar(&mut db, "SELECT count(*) FROM accounts");
        if n == 2 {
            Ok(())
        } else {
            Err(format!("{n} rows"))
        }
    });
    let stamp =
        |sf: &sfsync_e2e::SfRest| sf.query(&format!("SELECT SystemModstamp FROM Account WHERE Id = '{acme}'"))[0]["SystemModstamp"].clone();
    let before = stamp(&sf);
    // Opportunities change the roll-ups of their account, not its SystemModstamp.
    for amount in [300, 200] {
        sf.create(
            "Opportunity",
            json!({"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2030-01-01", "Amount": amount, "AccountId": acme}),
        );
    }
    assert_eq!(stamp(&sf), before, "a roll-up change does not move the parent's SystemModstamp");
    let writes = env.sf_writes();
    eventually(WAIT, || {
        let v: Option<String> = scalar(
            &mut db,
            "SELECT (SELECT concat_ws('/', pipeline::numeric(12,0), deals::numeric(12,0)) FROM accounts WHERE name = 'Acme')",
        );
        if v.as_deref() == Some("500/2") {
            Ok(())
        } else {
            Err(format!("{v:?}"))
        }
    });
    let refreshed: bool = scalar(&mut db, "SELECT last_formula_refresh IS NOT NULL FROM sfsync.status");
    assert!(refreshed, "the periodic refresh ran");
    let outbox: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.outbox");
    assert_eq!(outbox, 0, "refreshed values are not captured");
    // A local edit of the row (calculated columns included) sends only the writable fields.
    db.batch_execute("UPDATE accounts SET name = 'Acme Corp', pipeline = 1, annual_revenue = 7000 WHERE name = 'Acme'").unwrap();
    eventually(WAIT, || {
        let r = sf.get("Account", &acme).unwrap_or(Value::Null);
        let outbox: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.outbox");
        if r["Name"] == "Acme Corp" && outbox == 0 {
            Ok(())
        } else {
            Err(format!("{} / outbox {outbox}", r["Name"]))
        }
    });
    assert!(env.sf_writes() > writes);
    let errors: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.errors");
    assert_eq!(errors, 0, "no calculated field was sent");
    // Salesforce keeps its values; the next read of the record puts them back locally.
    eventually(WAIT, || {
        let v: Option<String> = scalar(
            &mut db,
            "SELECT (SELECT concat_ws('/', revenue_k::numeric(12,2), pipeline::numeric(12,0)) FROM accounts WHERE sfid IS NOT NULL AND name = 'Acme Corp')",
        );
        if v.as_deref() == Some("7.00/500") {
            Ok(())
        } else {
            Err(format!("{v:?}"))
        }
    });
}

#[test]
fn one_refresh_costs_a_count_and_a_page_per_2000_records() {
    let env = start(&[("sfsync.formula_refresh_interval", "0")]);
    let n: u64 = 5000;
    env.emu.admin("POST", "seed", json!({"object": "Account", "count": n, "fields": {"AnnualRevenue": 1000}}));
    table(&env);
    let mut db = env.db();
    eventually(WAIT, || {
        let c: i64 = scalar(&mut db, "SELECT count(*) FROM accounts WHERE revenue_k = 1");
        if c == n as i64 {
            Ok(())
        } else {
            Err(format!("{c} of {n}"))
        }
    });
    db.batch_execute("ALTER SYSTEM SET sfsync.enabled = off").unwrap();
    db.batch_execute("SELECT pg_reload_conf()").unwrap();
    db.execute("SELECT pg_advisory_lock($1), pg_advisory_unlock($1)", &[&0x5f5f_5359_4e43_i64]).unwrap();
    let total = |env: &Env| env.emu.admin("GET", "counters", Value::Null)["total"].as_u64().unwrap_or(0);
    let before = total(&env);
    let s: String = scalar(&mut db, "SELECT sfsync.refresh_formulas('accounts')::text");
    let calls = total(&env) - before;
    let s: Value = serde_json::from_str(&s).unwrap();
    assert_eq!(s["fetched"], json!(n), "{s}");
    assert_eq!(s["updated"], json!(0), "nothing changed: nothing rewritten");
    let pages = n.div_ceil(2000);
    println!(
        "formula refresh of {n} records: {calls} API calls ({pages} query pages ideal + COUNT); by endpoint: {}",
        env.emu.admin("GET", "counters", Value::Null)["by_endpoint"]
    );
    // + the COUNT() that picks REST or Bulk, + this session's login.
    assert!(calls <= pages + 2 + 1, "{calls}");
}
