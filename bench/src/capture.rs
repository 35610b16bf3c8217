//! `sfsync-bench capture [seconds]`: what the capture trigger costs the writing transaction.
//! pgbench TPS on a push-synced table against a plain one of the same shape, in one run (the
//! worker off, so only the trigger's cost is measured), with PostgreSQL's default durability
//! and with fsync off (CPU-bound, the worst case). Single-row statements and statements of 100
//! rows (`INSERT … SELECT generate_series`, an UPDATE of an id range), each ratio printed next
//! to its goal (issue 18: 0.90 single-row, 0.95 multi-row, with fsync off).
//!
//! Next to it, the floor of the design: the plain table's statement writing one outbox-shaped
//! row per changed row itself (a writable CTE into a copy of `sfsync.outbox`, no trigger at
//! all). Capture cannot cost less than the row it must write.

use crate::{start_with, table, Env};

/// Rows each table holds before the workloads (what the UPDATEs change).
const SEEDED: u32 = 10_000;
/// Rows of a multi-row statement.
const MULTI: u32 = 100;

struct Workload {
    name: &'static str,
    /// The pgbench script, `{t}` the table.
    script: &'static str,
    /// The same change of the plain table, with an outbox row per changed row written by the
    /// statement itself into `floor_outbox`.
    floor: &'static str,
    goal: f64,
}

const WORKLOADS: [Workload; 4] = [
    Workload {
        name: "single-row INSERT",
        script: "INSERT INTO {t} (last_name, email, title) VALUES ('Bench', 'b@example.com', 'Engineer');\n",
        floor: "WITH r AS (INSERT INTO plain (last_name, email, title) VALUES ('Bench', 'b@example.com', 'Engineer') RETURNING id) \
                INSERT INTO floor_outbox (mapping_id, op, pk) SELECT 1, 'insert', id::text FROM r;\n",
        goal: 0.90,
    },
    Workload {
        name: "single-row UPDATE",
        script: "\\set id random(1, {seeded})\n\\set v random(1, 1000000000)\nUPDATE {t} SET title = 'T' || :v WHERE id = :id;\n",
        floor: "\\set id random(1, {seeded})\n\\set v random(1, 1000000000)\n\
                WITH r AS (UPDATE plain SET title = 'T' || :v WHERE id = :id RETURNING id, title) \
                INSERT INTO floor_outbox (mapping_id, op, pk, changed, base) \
                SELECT 1, 'update', id::text, '{title}', jsonb_build_object('title', title) FROM r;\n",
        goal: 0.90,
    },
    Workload {
        name: "multi-row INSERT (100 rows)",
        script: "INSERT INTO {t} (last_name, email, title) SELECT 'Bench', 'b' || g || '@example.com', 'Engineer' FROM generate_series(1, {multi}) g;\n",
        floor: "WITH r AS (INSERT INTO plain (last_name, email, title) \
                SELECT 'Bench', 'b' || g || '@example.com', 'Engineer' FROM generate_series(1, {multi}) g RETURNING id) \
                INSERT INTO floor_outbox (mapping_id, op, pk) SELECT 1, 'insert', id::text FROM r;\n",
        goal: 0.95,
    },
    Workload {
        name: "multi-row UPDATE (100 rows)",
        script: "\\set s random(1, {seeded} - {multi})\n\\set v random(1, 1000000000)\nUPDATE {t} SET title = 'T' || :v WHERE id >= :s AND id < :s + {multi};\n",
        floor: "\\set s random(1, {seeded} - {multi})\n\\set v random(1, 1000000000)\n\
                WITH r AS (UPDATE plain SET title = 'T' || :v WHERE id >= :s AND id < :s + {multi} RETURNING id, title) \
                INSERT INTO floor_outbox (mapping_id, op, pk, changed, base) \
                SELECT 1, 'update', id::text, '{title}', jsonb_build_object('title', title) FROM r;\n",
        goal: 0.95,
    },
];

pub(crate) fn run(seconds: u32) {
    let mut lines = Vec::new();
    for durable in [true, false] {
        let env = start_with(false, durable);
        for (name, synced) in [("plain", false), ("synced", true)] {
            table(&env, name, synced);
            env.cluster.psql(
                "bench",
                &format!("INSERT INTO {name} (last_name, email, title) SELECT 'Seed', 's' || g || '@example.com', 'Seed' FROM generate_series(1, {SEEDED}) g"),
            );
        }
        // The outbox's columns, defaults (its sequence too) and indexes.
        env.cluster.psql("bench", "CREATE TABLE floor_outbox (LIKE sfsync.outbox INCLUDING ALL)");
        env.cluster.psql("bench", "VACUUM ANALYZE plain, synced");
        let mode = if durable { "default durability" } else { "fsync off" };
        for w in &WORKLOADS {
            // Interleaved, best of two each, to spread noise evenly.
            let runs: Vec<[f64; 3]> = (0..2)
                .map(|_| {
                    [tps(&env, w.script, "plain", seconds), tps(&env, w.script, "synced", seconds), tps(&env, w.floor, "plain", seconds)]
                })
                .collect();
            let best = |i: usize| runs.iter().map(|r| r[i]).fold(0.0, f64::max);
            let (plain, synced, floor) = (best(0), best(1), best(2));
            let ratio = synced / plain;
            let verdict = match (durable, ratio >= w.goal) {
                (true, _) => "(the goal is set with fsync off)",
                (false, true) => "met",
                (false, false) => "NOT met",
            };
            let line = format!(
                "capture ({mode}), {}: plain {plain:.0} tps, synced {synced:.0} tps, ratio synced/plain = {ratio:.2}, goal >= {:.2} {verdict}; \
                 floor (the outbox row alone, written by the statement) {:.2}",
                w.name,
                w.goal,
                floor / plain
            );
            println!("{line}");
            lines.push(line);
        }
    }
    println!("\nsummary:\n{}", lines.join("\n"));
}

fn tps(env: &Env, script: &str, table: &str, seconds: u32) -> f64 {
    // Each run starts from empty outboxes, as a worker keeping up leaves them: the backlog an
    // earlier run left (millions of entries, the worker is off) is not this workload's cost.
    env.cluster.psql("bench", "TRUNCATE sfsync.outbox, floor_outbox");
    let file = std::env::temp_dir().join(format!("sfsync-bench-capture-{table}.sql"));
    let text = script.replace("{t}", table).replace("{seeded}", &SEEDED.to_string()).replace("{multi}", &MULTI.to_string());
    std::fs::write(&file, text).unwrap();
    crate::pgbench_tps(env, &file, seconds)
}
