//! `sfsync-bench capture [seconds]`: what the capture trigger costs the writing transaction.
//! pgbench TPS on a push-synced table against a plain one of the same shape, in one run (the
//! worker off, so only the trigger's cost is measured), with PostgreSQL's default durability
//! and with fsync off (CPU-bound, the worst case). Single-row statements and statements of 100
//! rows (`INSERT … SELECT generate_series`, an UPDATE of an id range), each ratio printed next
//! to its goal (issue 18: 0.90 single-row, 0.95 multi-row, with fsync off).

use crate::{start_with, table, Env};

/// Rows each table holds before the workloads (what the UPDATEs change).
const SEEDED: u32 = 10_000;
/// Rows of a multi-row statement.
const MULTI: u32 = 100;

struct Workload {
    name: &'static str,
    /// The pgbench script, `{t}` the table.
    script: &'static str,
    goal: f64,
}

const WORKLOADS: [Workload; 4] = [
    Workload {
        name: "single-row INSERT",
        script: "INSERT INTO {t} (last_name, email, title) VALUES ('Bench', 'b@example.com', 'Engineer');\n",
        goal: 0.90,
    },
    Workload {
        name: "single-row UPDATE",
        script: "\\set id random(1, {seeded})\n\\set v random(1, 1000000000)\nUPDATE {t} SET title = 'T' || :v WHERE id = :id;\n",
        goal: 0.90,
    },
    Workload {
        name: "multi-row INSERT (100 rows)",
        script: "INSERT INTO {t} (last_name, email, title) SELECT 'Bench', 'b' || g || '@example.com', 'Engineer' FROM generate_series(1, {multi}) g;\n",
        goal: 0.95,
    },
    Workload {
        name: "multi-row UPDATE (100 rows)",
        script: "\\set s random(1, {seeded} - {multi})\n\\set v random(1, 1000000000)\nUPDATE {t} SET title = 'T' || :v WHERE id >= :s AND id < :s + {multi};\n",
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
        // The seed's capture is not part of any workload.
        env.cluster.psql("bench", "TRUNCATE sfsync.outbox");
        env.cluster.psql("bench", "VACUUM ANALYZE plain, synced");
        let mode = if durable { "default durability" } else { "fsync off" };
        for w in &WORKLOADS {
            // Interleaved, best of two each, to spread noise evenly.
            let (p1, s1) = (tps(&env, w, "plain", seconds), tps(&env, w, "synced", seconds));
            let (p2, s2) = (tps(&env, w, "plain", seconds), tps(&env, w, "synced", seconds));
            let (plain, synced) = (p1.max(p2), s1.max(s2));
            let ratio = synced / plain;
            let verdict = match (durable, ratio >= w.goal) {
                (true, _) => "(the goal is set with fsync off)",
                (false, true) => "met",
                (false, false) => "NOT met",
            };
            let line = format!(
                "capture ({mode}), {}: plain {plain:.0} tps, synced {synced:.0} tps, ratio synced/plain = {ratio:.2}, goal >= {:.2} {verdict}",
                w.name, w.goal
            );
            println!("{line}");
            lines.push(line);
        }
    }
    println!("\nsummary:\n{}", lines.join("\n"));
}

fn tps(env: &Env, w: &Workload, table: &str, seconds: u32) -> f64 {
    let script = std::env::temp_dir().join(format!("sfsync-bench-capture-{table}.sql"));
    let text = w.script.replace("{t}", table).replace("{seeded}", &SEEDED.to_string()).replace("{multi}", &MULTI.to_string());
    std::fs::write(&script, text).unwrap();
    crate::pgbench_tps(env, &script, seconds)
}
