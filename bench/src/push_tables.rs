//! `sfsync-bench push-tables [N]`: API calls to push one change in each of N synced tables
//! on one connection: each table's push alone (what a pass cost before pushes shared
//! Composite requests: one sObject Collections call per table) vs one pass (five tables'
//! Collections subrequests per Composite request), against the goal ceil(N/5).

use crate::{start, Env};
use sfsync_e2e::Value;

/// Calls that carry pushes: Composite requests and direct sObject Collections calls.
fn push_calls(env: &Env) -> u64 {
    let c = env.emu.admin("GET", "counters", Value::Null);
    c["by_endpoint"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| k.as_str() == "POST /composite" || k.contains("/composite/sobjects"))
                .map(|(_, v)| v.as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

pub fn run(n: usize) {
    // The worker stays off: each pass is run here, and sees every change.
    let env = start(false);
    for i in 1..=n {
        env.cluster.psql(
            "bench",
            &format!(
                "CREATE TABLE t{i:02} (id bigint PRIMARY KEY, name text NOT NULL);
                 SELECT sfsync.sync_table('t{i:02}', 'Account', direction => 'push');"
            ),
        );
    }
    // Before: one table at a time, as a pass used to send them (one Collections call each).
    let writes: String = (1..=n).map(|i| format!("INSERT INTO t{i:02} VALUES (1, 'Row {i}');")).collect();
    env.cluster.psql("bench", &writes);
    let calls0 = push_calls(&env);
    for i in 1..=n {
        env.cluster.psql("bench", &format!("SELECT sfsync.run_once('t{i:02}')"));
    }
    let alone = push_calls(&env) - calls0;
    // After: one pass over the same tables, one change each.
    let writes: String = (1..=n).map(|i| format!("UPDATE t{i:02} SET name = 'Changed {i}';")).collect();
    env.cluster.psql("bench", &format!("BEGIN; {writes} COMMIT;"));
    let calls1 = push_calls(&env);
    env.cluster.psql("bench", "SELECT sfsync.run_once()");
    let together = push_calls(&env) - calls1;
    let left: i64 = env.cluster.psql("bench", "SELECT count(*) FROM sfsync.outbox").trim().parse().unwrap_or(-1);
    let goal = n.div_ceil(5) as u64;
    println!(
        "push of {n} tables with one change each: {alone} API calls table by table (one each), {together} in one pass \
         (goal ceil({n}/5) = {goal}: {}; {:.1}x fewer); {left} changes left in the outbox",
        if together <= goal && left == 0 { "met" } else { "NOT met" },
        alone as f64 / together.max(1) as f64
    );
}
