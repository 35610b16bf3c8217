//! End to end: `sync_table` run again on a synced table with more fields fills just the newly
//! mapped columns (a column backfill), and with fewer fields stops syncing those columns
//! without touching their data.

mod common;

use common::{pause, resume};
use sfsync_e2e::{json, scalar, DbExt};

/// Runs sync_table on `accounts` again with these fields; its answer.
fn sync(db: &mut postgres::Client, fields: &str) -> serde_json::Value {
    let row = db.query_one("SELECT sfsync.sync_table('accounts', 'Account', fields => $1::text::jsonb)::text", &[&fields]).unwrap();
    serde_json::from_str(row.get::<_, &str>(0)).unwrap()
}

#[test]
fn remapping_backfills_only_new_columns_and_unmapping_keeps_data() {
    // Polls only, without overlap: a poll re-reads only records at or after its mark, never
    // Alpha once the mark has passed it (a re-read would overwrite the local value written
    // below), and no stream drop makes a catch-up poll from an older mark.
    let env = common::start_with(&[("sfsync.pull_overlap", "0"), ("sfsync.cdc", "off")]);
    let mut db = env.db();
    db.batch_execute(
        "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL, industry text, website text);
         SELECT sfsync.sync_table('accounts', 'Account', fields => '{\"name\": \"Name\", \"industry\": \"Industry\"}');",
    )
    .unwrap();
    env.worker_pid();
    let sf = env.emu.sf();
    let alpha = sf.create("Account", json!({"Name": "Alpha", "Industry": "Energy", "Website": "https://a.example"}));
    let beta = sf.create("Account", json!({"Name": "Beta", "Industry": "Retail", "Website": "https://b.example"}));
    db.until_count("SELECT count(*) FROM accounts WHERE name IN ('Alpha', 'Beta') AND website IS NULL", 2);
    // A newer record, and the poll's mark past Alpha and Beta.
    let gamma = sf.create("Account", json!({"Name": "Gamma"}));
    let stamp =
        sf.query(&format!("SELECT SystemModstamp FROM Account WHERE Id = '{gamma}'"))[0]["SystemModstamp"].as_str().unwrap().to_string();
    db.until_true(
        "the poll's mark past Alpha and Beta",
        &format!("SELECT pulled_through >= '{stamp}'::timestamptz FROM sfsync.status WHERE \"table\" = 'accounts'::regclass"),
    );

    // A mapped column that differs from Salesforce (written with the capture off), which a
    // full reload would overwrite.
    db.batch_execute(
        "ALTER TABLE accounts DISABLE TRIGGER USER;
         UPDATE accounts SET industry = 'LocalOnly' WHERE name = 'Alpha';
         ALTER TABLE accounts ENABLE TRIGGER USER;",
    )
    .unwrap();

    let lock = pause(&env);
    let r = sync(&mut db, r#"{"name": "Name", "industry": "Industry", "website": "Website"}"#);
    assert_eq!(r["backfill"]["state"], "pending", "{r}");
    // A local change of the new column, on its way out before the backfill runs.
    db.batch_execute("UPDATE accounts SET website = 'https://local.example' WHERE name = 'Beta'").unwrap();
    resume(&env, lock);

    db.until_value("SELECT website FROM accounts WHERE name = 'Alpha'", Some("https://a.example".to_string()));
    db.until_value("SELECT state FROM sfsync.backfill_progress WHERE \"table\" = 'accounts'::regclass", Some("done".to_string()));
    let industry: String = scalar(&mut db, "SELECT industry FROM accounts WHERE name = 'Alpha'");
    assert_eq!(industry, "LocalOnly", "the column backfill wrote only the new column");
    // The pending local value was not overwritten: it went out.
    sf.until_field("Account", &beta, "Website", "https://local.example");
    let website: String = scalar(&mut db, "SELECT website FROM accounts WHERE name = 'Beta'");
    assert_eq!(website, "https://local.example");

    // Fewer fields: industry stops syncing, its data stays.
    let r = sync(&mut db, r#"{"name": "Name", "website": "Website"}"#);
    assert_eq!(r["backfill"], serde_json::Value::Null, "{r}");
    sf.update("Account", &alpha, json!({"Industry": "Banking", "Website": "https://a2.example"}));
    db.until_value("SELECT website FROM accounts WHERE name = 'Alpha'", Some("https://a2.example".to_string()));
    let industry: String = scalar(&mut db, "SELECT industry FROM accounts WHERE name = 'Alpha'");
    assert_eq!(industry, "LocalOnly");
    db.batch_execute("UPDATE accounts SET industry = 'Nope', name = 'Beta2' WHERE name = 'Beta'").unwrap();
    sf.until_field("Account", &beta, "Name", "Beta2");
    assert_eq!(sf.get("Account", &beta).unwrap()["Industry"], "Retail", "an unmapped column is not pushed");
}
