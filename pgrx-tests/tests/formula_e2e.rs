//! End to end: formula and roll-up summary fields (from an emulator schema file). Their
//! values change in Salesforce without SystemModstamp moving, so only the periodic refresh
//! brings them; the refresh is not captured, and the push never writes a calculated field.

mod common;

use common::{stop_worker, Env};
use sfsync_e2e::{json, scalar, serde_json, until, DbExt, Value, WAIT};

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
    db.until_value(
        "SELECT (SELECT concat_ws('/', revenue_k::numeric(12,2), pipeline::numeric(12,0), deals::numeric(12,0)) FROM accounts WHERE name = 'Acme')",
        Some("5.00/0/0".to_string()),
    );
    // Move the pull's mark well past Acme (the poll re-reads the records within
    // sfsync.pull_overlap of its mark, and would bring their current roll-ups): from here on
    // only the refresh reads Acme again.
    env.emu.advance_clock(60_000);
    sf.create("Account", json!({"Name": "Later"}));
    db.until_count("SELECT count(*) FROM accounts", 2);
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
    db.until_value(
        "SELECT (SELECT concat_ws('/', pipeline::numeric(12,0), deals::numeric(12,0)) FROM accounts WHERE name = 'Acme')",
        Some("500/2".to_string()),
    );
    let refreshed: bool = scalar(&mut db, "SELECT last_formula_refresh IS NOT NULL FROM sfsync.status");
    assert!(refreshed, "the periodic refresh ran");
    let outbox: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.outbox");
    assert_eq!(outbox, 0, "refreshed values are not captured");
    // A local edit of the row (calculated columns included) sends only the writable fields.
    db.batch_execute("UPDATE accounts SET name = 'Acme Corp', pipeline = 1, annual_revenue = 7000 WHERE name = 'Acme'").unwrap();
    until("the new name in Salesforce, the outbox drained", WAIT, || {
        let r = sf.get("Account", &acme).unwrap_or(Value::Null);
        let outbox: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.outbox");
        (r["Name"] == "Acme Corp" && outbox == 0).then_some(()).ok_or(format!("Name {}, outbox {outbox}", r["Name"]))
    });
    assert!(env.sf_writes() > writes);
    let errors: i64 = scalar(&mut db, "SELECT count(*) FROM sfsync.errors");
    assert_eq!(errors, 0, "no calculated field was sent");
    // Salesforce keeps its values; the next read of the record puts them back locally.
    db.until_value(
        "SELECT (SELECT concat_ws('/', revenue_k::numeric(12,2), pipeline::numeric(12,0)) FROM accounts WHERE sfid IS NOT NULL AND name = 'Acme Corp')",
        Some("7.00/500".to_string()),
    );
}

#[test]
fn one_refresh_costs_a_count_and_a_page_per_2000_records() {
    let env = start(&[("sfsync.formula_refresh_interval", "0")]);
    let n: u64 = 5000;
    env.emu.admin("POST", "seed", json!({"object": "Account", "count": n, "fields": {"AnnualRevenue": 1000}}));
    table(&env);
    let mut db = env.db();
    db.until_count("SELECT count(*) FROM accounts WHERE revenue_k = 1", n as i64);
    stop_worker(&env);
    let before = env.emu.api_calls();
    let s: String = scalar(&mut db, "SELECT sfsync.refresh_formulas('accounts')::text");
    let calls = env.emu.api_calls() - before;
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
