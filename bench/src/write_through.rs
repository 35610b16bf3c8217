//! `sfsync-bench write-through [statements per session]`: a table in write-through mode
//! driven like a web application behind a pooler — every statement on a fresh connection,
//! mixed inserts, updates and deletes, the change stream live — with 1 and with 8 sessions
//! at once. Prints statements per second, p50/p99 statement latency (the statement alone, and
//! with its connection), and the API calls per statement the backends made (token and
//! versions requests plus writes, from the emulator's counters) next to every call the
//! emulator served (the worker's polls and stream included).

use crate::{start_with, worker_pid, Env};
use sfsync_e2e::Value;
use std::time::{Duration, Instant};

/// Calls the backends make: logins, versions requests, writes (not the stream's).
fn backend_calls(env: &Env) -> u64 {
    let c = env.emu.admin("GET", "counters", Value::Null);
    c["by_endpoint"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| {
                    k.contains("oauth2/token")
                        || k.as_str() == "GET /services/data"
                        || ((k.starts_with("POST") || k.starts_with("PATCH") || k.starts_with("DELETE")) && !k.contains("cometd"))
                })
                .map(|(_, v)| v.as_u64().unwrap_or(0))
                .sum()
        })
        .unwrap_or(0)
}

fn statement(s: i64, i: i64, alive: &mut Vec<i64>, next: &mut i64) -> String {
    match (i % 5, alive.len()) {
        (3, n) if n > 0 => format!("UPDATE contacts SET email = 'u{i}@example.com' WHERE id = {}", alive[(i as usize * 7) % n]),
        (4, n) if n > 1 => format!("DELETE FROM contacts WHERE id = {}", alive.remove((i as usize * 3) % n)),
        _ => {
            let k = s * 1_000_000 + *next;
            *next += 1;
            alive.push(k);
            format!("INSERT INTO contacts VALUES ({k}, 'Row {k}', 'r{k}@example.com')")
        }
    }
}

pub fn run(per_session: i64) {
    for sessions in [1i64, 8] {
        let env = start_with(true, false);
        env.cluster.psql("bench", "CREATE TABLE contacts (id bigint PRIMARY KEY, last_name text NOT NULL, email text)");
        env.cluster.psql("bench", "SELECT sfsync.sync_table('contacts', 'Contact', mode => 'write_through')");
        worker_pid(&env);
        std::thread::sleep(Duration::from_secs(2)); // first pull, stream subscribed
        env.cluster.connect("bench").batch_execute("INSERT INTO contacts VALUES (0, 'warm', NULL)").unwrap();
        let (calls0, total0) = (backend_calls(&env), env.emu.api_calls());
        let t0 = Instant::now();
        let per: Vec<(Vec<u64>, Vec<u64>, usize)> = std::thread::scope(|scope| {
            let handles: Vec<_> = (1..=sessions)
                .map(|s| {
                    let cluster = &env.cluster;
                    scope.spawn(move || {
                        let (mut stmt, mut whole, mut failed, mut alive, mut next) = (Vec::new(), Vec::new(), 0, Vec::new(), 0);
                        for i in 0..per_session {
                            let sql = statement(s, i, &mut alive, &mut next);
                            let t = Instant::now();
                            let mut db = cluster.connect("bench");
                            let ts = Instant::now();
                            failed += usize::from(db.batch_execute(&sql).is_err());
                            stmt.push(ts.elapsed().as_micros() as u64);
                            whole.push(t.elapsed().as_micros() as u64);
                        }
                        (stmt, whole, failed)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let secs = t0.elapsed().as_secs_f64();
        let (calls, total) = (backend_calls(&env) - calls0, env.emu.api_calls() - total0);
        let mut stmt: Vec<u64> = per.iter().flat_map(|p| p.0.clone()).collect();
        let mut whole: Vec<u64> = per.iter().flat_map(|p| p.1.clone()).collect();
        let failed: usize = per.iter().map(|p| p.2).sum();
        stmt.sort();
        whole.sort();
        let p = |v: &[u64], q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize] as f64 / 1000.0;
        let n = stmt.len() as f64;
        println!(
            "write-through, {sessions} session(s), {} statements on fresh connections: {:.0} statements/s, \
             statement p50 {:.1} ms p99 {:.1} ms (with connect: p50 {:.1} ms p99 {:.1} ms), {failed} failed, \
             backend API calls per statement {:.3} (all calls the emulator served: {:.3})",
            stmt.len(),
            n / secs,
            p(&stmt, 0.5),
            p(&stmt, 0.99),
            p(&whole, 0.5),
            p(&whole, 0.99),
            calls as f64 / n,
            total as f64 / n
        );
    }
}
