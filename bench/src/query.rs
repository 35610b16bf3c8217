//! `sfsync-bench query [N]`: a synced query of N aggregate rows (Accounts upserted on
//! `Postgres_Id__c`, their usage counts in `NumberOfEmployees`), first refreshed in full,
//! then again with 1 % of the rows changed. Prints the API calls of that refresh against the
//! ideal ceil(changed/200) Collections calls, and its time against running the query alone.

use crate::{start_with, Env};
use sfsync_e2e::Value;
use std::time::Instant;

const QUERY: &str = "SELECT 'bench-' || account AS key, 'Account ' || account AS \"Name\", count(*) AS \"NumberOfEmployees\" \
                     FROM usage_events GROUP BY account";

fn refresh(env: &Env) -> (f64, u64, Value) {
    let calls = env.emu.api_calls();
    let t0 = Instant::now();
    let out = env.cluster.psql("bench", "SELECT sfsync.refresh('usage')");
    let secs = t0.elapsed().as_secs_f64();
    let summary: Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("refresh returned {out}: {e}"));
    (secs, env.emu.api_calls() - calls, summary)
}

pub fn run(n: usize) {
    let env = start_with(true, false);
    // The worker stays out of the way: the query refreshes on demand only.
    env.cluster.psql(
        "bench",
        &format!(
            "CREATE TABLE usage_events (account int NOT NULL, at timestamptz NOT NULL DEFAULT now());
             INSERT INTO usage_events (account) SELECT g % {n} FROM generate_series(0, {n} * 3 - 1) g;
             ANALYZE usage_events;"
        ),
    );
    env.cluster.psql(
        "bench",
        &format!("SELECT sfsync.sync_query('usage', $q${QUERY}$q$, 'Account', key => 'key', key_field => 'Postgres_Id__c')"),
    );
    let (full_secs, full_calls, full) = refresh(&env);
    assert_eq!(full["sent"].as_u64(), Some(n as u64), "first refresh creates every record: {full}");

    // 1 % of the accounts get one more event.
    env.cluster.psql(
        "bench",
        "INSERT INTO usage_events (account) SELECT a FROM generate_series(0, (SELECT max(account) FROM usage_events)) a WHERE a % 100 = 0",
    );
    let changed = n.div_ceil(100);
    let (secs, calls, summary) = refresh(&env);
    assert_eq!(summary["sent"].as_u64(), Some(changed as u64), "only the changed rows are sent: {summary}");
    assert_eq!(summary["unchanged"].as_u64(), Some((n - changed) as u64), "{summary}");

    // The query alone, as the refresh runs it (every row to the client side as jsonb).
    let t0 = Instant::now();
    env.cluster.psql("bench", &format!("SELECT count(*) FROM (SELECT to_jsonb(q) FROM ({QUERY}) q) r"));
    let alone = t0.elapsed().as_secs_f64();
    // An unchanged refresh: the diff's own cost.
    let (idle_secs, idle_calls, _) = refresh(&env);
    let ideal = changed.div_ceil(200) as u64;
    println!(
        "query refresh, {n} rows: first (all sent) {full_secs:.2} s, {full_calls} API calls; \
         1 % changed ({changed} rows): {secs:.2} s, {calls} API calls (ideal ceil({changed}/200) = {ideal}, ratio {:.2}); \
         nothing changed: {idle_secs:.2} s, {idle_calls} calls; the query alone {alone:.2} s (refresh/query = {:.1})",
        calls as f64 / ideal as f64,
        secs / alone
    );
}
