//! `sfsync-bench link [N] [M]`: N rows of a table, M of them already Contacts in Salesforce
//! (same email, another case), opted in with `sync_table(..., match => 'Email')`: the time
//! until every row is linked or created and the API calls it took, split into writes and
//! lookups (query calls: SOQL IN lists, or Bulk query jobs from
//! `sfsync.match_bulk_threshold` keys), against the ideal ceil(N/200) writes + the lookups,
//! and against a plain `sync_table` of the same N rows with no Salesforce records (N creates)
//! in the same run.

use crate::{api_calls, start, worker_pid, Env};
use sfsync_e2e::until;
use std::time::{Duration, Instant};

fn ceil200(n: usize) -> usize {
    n.div_ceil(200)
}

/// Opts the table in and waits until its outbox is empty: (seconds, API calls, writes,
/// query calls, sync_table's jsonb).
fn opt_in(env: &Env, n: usize, matching: bool) -> (f64, u64, u64, u64, String) {
    env.cluster.psql("bench", "CREATE TABLE contacts (id bigserial PRIMARY KEY, last_name text NOT NULL, email text)");
    env.cluster.psql(
        "bench",
        &format!(
            "INSERT INTO contacts (last_name, email) SELECT 'Row ' || g, 'Seed' || g || '@example.com' FROM generate_series(1, {n}) g"
        ),
    );
    worker_pid(env);
    let before = api_calls(env);
    let (writes, queries) = (env.emu.write_calls(), env.emu.query_calls());
    let t0 = Instant::now();
    let m = if matching { ", match => 'Email'" } else { "" };
    let r = env.cluster.psql(
        "bench",
        &format!("SELECT sfsync.sync_table('contacts', 'Contact', fields => '{{\"last_name\": \"LastName\", \"email\": \"Email\"}}', direction => 'push'{m})"),
    );
    let mut db = env.cluster.connect("bench");
    until("every row pushed", Duration::from_secs(3600), || {
        let left: i64 = db.query_one("SELECT count(*) FROM sfsync.outbox", &[]).unwrap().get(0);
        std::thread::sleep(Duration::from_millis(100));
        (left == 0).then_some(()).ok_or(format!("{left} outbox entries left"))
    });
    let secs = t0.elapsed().as_secs_f64();
    let unlinked: i64 = db.query_one("SELECT count(*) FROM contacts WHERE sfid IS NULL", &[]).unwrap().get(0);
    assert_eq!(unlinked, 0, "every row linked or created");
    (secs, api_calls(env) - before, env.emu.write_calls() - writes, env.emu.query_calls() - queries, r.trim().to_string())
}

pub fn run(n: usize, m: usize) {
    let m = m.min(n);
    let env = start(true);
    // seed1@example.com .. seed<m>@example.com
    env.emu.admin("POST", "seed", serde_json::json!({"object": "Contact", "count": m}));
    let (secs, calls, writes, lookups, summary) = opt_in(&env, n, true);
    let contacts = env.emu.sf().query("SELECT Id FROM Contact").len();
    assert_eq!(contacts, n, "no duplicate: the {m} records plus {} created", n - m);
    drop(env);
    // Writes: M links and N-M creates in Collections of 200 (or Bulk jobs).
    let ideal_writes = ceil200(m) + ceil200(n - m);
    let soql_lookups = ceil200(n) + ceil200(n - m);

    let env = start(true);
    let (plain_secs, plain_calls, plain_writes, _, _) = opt_in(&env, n, false);
    println!(
        "link {n} rows against {m} records: {secs:.1} s, {calls} API calls = {writes} writes + {lookups} query calls + login/describe \
         (vs ceil(N/200) + lookups = {} + {lookups}; ideal writes ceil(M/200) + ceil((N-M)/200) = {ideal_writes}; \
         lookups by SOQL alone would be {soql_lookups}); plain sync_table of {n} rows: {plain_secs:.1} s, {plain_calls} calls \
         ({plain_writes} writes, ideal {}); link/plain time = {:.2}; sync_table said {summary}",
        ceil200(n),
        ceil200(n),
        secs / plain_secs
    );
}
