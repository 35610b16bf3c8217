//! `sfsync-bench load [rows] [seconds]`: one org (one emulator), one cluster, 3 databases
//! with 50 synced tables between them (17 + 17 + 16, bidirectional, on Account, Contact and a
//! custom object, each table its own external-key namespace). A backlog of `rows` captured
//! while `sfsync.enabled = off` is drained while steady writers (one rate-limited pgbench per
//! database: single-row inserts and updates on random tables) and Salesforce-side bursts (a
//! Collections update of up to 200 records every few seconds) run; then `seconds` more of the
//! writers and bursts alone. Prints push throughput (backlog and steady), pull throughput,
//! commit->Salesforce and Salesforce->Postgres latency p50/p99 under that load, API calls per
//! hour, each worker's peak private memory, and whether the calls stayed within the API budget.

use crate::{percentile, pgbench_command, proc_kb};
use sfsync_e2e::postgres::Client;
use sfsync_e2e::{json, Cluster, ClusterOpts, DbExt, Emulator, Value};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Databases and how many tables each holds.
const DBS: [(&str, usize); 3] = [("load1", 17), ("load2", 17), ("load3", 16)];
/// Objects the tables map to, round robin, with the field their `name` column goes to.
const OBJECTS: [(&str, &str); 3] = [("Account", "Name"), ("Contact", "LastName"), ("Load__c", "Name")];
/// The org's daily allocation and sfsync's share of it: one hour's share (the bucket) is
/// `DAILY_LIMIT * SHARE / 24` calls, refilled at `DAILY_LIMIT * SHARE / 86400` a second.
const DAILY_LIMIT: u64 = 10_000_000;
const SHARE: f64 = 0.05;
/// Steady writers: transactions a second, all databases together.
const WRITER_TPS: u32 = 50;
const BURST_EVERY: Duration = Duration::from_secs(3);
/// The backlog must be gone by then, or the run reports the rate it reached and stops.
const DRAIN_CAP: Duration = Duration::from_secs(15 * 60);

struct Table {
    db: usize,
    name: String,
    object: &'static str,
}

/// One Salesforce-side burst: `n` records of `table` given `tag` in `Note__c` at `sent`.
struct Burst {
    table: usize,
    tag: String,
    sent: Instant,
    n: i64,
    seen: i64,
    /// Sent while the backlog drained.
    draining: bool,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn emulator() -> Emulator {
    let field = |name: &str, ty: &str| json!({"name": name, "type": ty});
    let fields = json!([field("Qty__c", "int"), {"name": "Amount__c", "type": "currency", "precision": 16, "scale": 2},
        field("Flag__c", "boolean"), {"name": "Note__c", "type": "string", "length": 255}]);
    let schema = json!({
        "objects": [{"name": "Load__c", "label": "Load", "labelPlural": "Loads", "keyPrefix": "a0L", "fields": fields}],
        "fields": {"Account": fields, "Contact": fields}
    });
    let path = std::env::temp_dir().join(format!("sfsync-bench-load-schema-{}.json", std::process::id()));
    std::fs::write(&path, schema.to_string()).unwrap();
    Emulator::start_with_args(&["--daily-api-limit", &DAILY_LIMIT.to_string(), "--schema", path.to_str().unwrap()])
}

fn cluster(emu: &Emulator) -> Cluster {
    let cluster = Cluster::start(
        ClusterOpts::new()
            .preload(true)
            .guc("sfsync.enabled", "off")
            .guc("sfsync.api_budget", SHARE.to_string())
            .guc("sfsync.poll_interval", "1s")
            .guc("sfsync.launcher_interval", "500ms")
            .guc("max_connections", "100"),
    );
    for (db, _) in DBS {
        cluster.create_sfsync_database(db, emu);
    }
    cluster
}

/// Creates and syncs the tables, fills the backlog (`per_table` rows each) and the writers'
/// helper `load_write(table number, key)`.
fn tables(cluster: &Cluster, per_table: usize) -> Vec<Table> {
    let mut out = Vec::new();
    for (d, (db, n)) in DBS.iter().enumerate() {
        for i in 1..=*n {
            let (object, name_field) = OBJECTS[out.len() % OBJECTS.len()];
            let name = format!("t{i:02}");
            let fields = json!({"name": name_field, "qty": "Qty__c", "amount": "Amount__c", "flag": "Flag__c", "note": "Note__c"});
            cluster.psql(
                db,
                &format!(
                    "CREATE TABLE {name} (id bigserial PRIMARY KEY, name text NOT NULL, qty int, amount numeric(16,2), flag boolean, note text);
                     SELECT sfsync.sync_table('{name}', '{object}', fields => '{fields}');
                     INSERT INTO {name} (name, qty, amount, flag, note)
                       SELECT 'Row ' || g, g % 1000, g * 1.5, g % 2 = 0, 'backlog' FROM generate_series(1, {per_table}) g"
                ),
            );
            out.push(Table { db: d, name, object });
        }
        // Half inserts, half updates of backlog rows (keys above 200: the bursts' rows stay
        // theirs); the note carries the commit time in ms.
        cluster.psql(
            db,
            "CREATE FUNCTION load_write(t int, k bigint) RETURNS void LANGUAGE plpgsql AS $$
             DECLARE
               tbl text := format('t%s', lpad(t::text, 2, '0'));
               stamp text := 'w ' || (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
             BEGIN
               IF random() < 0.5 THEN
                 EXECUTE format('INSERT INTO %I (name, qty, amount, flag, note) VALUES (''Steady'', 1, 2.5, true, $1)', tbl) USING stamp;
               ELSE
                 EXECUTE format('UPDATE %I SET note = $1, qty = qty + 1 WHERE id = $2', tbl) USING stamp, k;
               END IF;
             END $$",
        );
    }
    out
}

/// One rate-limited pgbench per database, running until killed.
fn writers(cluster: &Cluster, per_table: usize) -> Vec<Child> {
    let per_db = WRITER_TPS as usize / DBS.len();
    DBS.iter()
        .enumerate()
        .map(|(d, (db, n))| {
            let script = std::env::temp_dir().join(format!("sfsync-bench-load-{db}-{}.sql", std::process::id()));
            let hi = per_table.max(201);
            std::fs::write(&script, format!("\\set t random(1, {n})\n\\set k random(201, {hi})\nSELECT load_write(:t, :k);\n")).unwrap();
            let rate = if d == 0 { WRITER_TPS as usize - per_db * (DBS.len() - 1) } else { per_db };
            pgbench_command(cluster, db, &script, &["-c", "2", "-j", "2", "-R", &rate.to_string(), "-T", "86400"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("pgbench")
        })
        .collect()
}

fn scalar_i64(db: &mut Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).unwrap().get(0)
}

/// Records pushed so far (`sfsync.status.pushed_total`), all databases.
fn pushed(dbs: &mut [Client]) -> i64 {
    dbs.iter_mut().map(|c| scalar_i64(c, "SELECT COALESCE(sum(pushed_total), 0)::bigint FROM sfsync.status")).sum()
}

/// API calls sfsync counted (`sfsync.status.api_calls`, one figure per connection), all databases.
fn sfsync_calls(dbs: &mut [Client]) -> i64 {
    dbs.iter_mut().map(|c| scalar_i64(c, "SELECT COALESCE(max(api_calls), 0)::bigint FROM sfsync.status")).sum()
}

/// Calls the org's budget holds now (`sfsync.status.api_budget_left`, the same in every database).
fn budget_left(db: &mut Client) -> i64 {
    scalar_i64(db, "SELECT COALESCE(min(api_budget_left), -1)::bigint FROM sfsync.status")
}

/// A Collections update of up to 200 pushed records of `t` (keys 1..200, which the writers
/// leave alone), `Note__c` = a fresh tag.
fn burst(sf: &sfsync_e2e::SfRest, db: &mut Client, t: &Table, table: usize, no: usize) -> Option<Burst> {
    let rows = db.query(&format!("SELECT sfid FROM {} WHERE id <= 200 AND sfid IS NOT NULL", t.name), &[]).unwrap();
    if rows.is_empty() {
        return None;
    }
    let tag = format!("b{no} {}", now_ms());
    let records: Vec<Value> =
        rows.iter().map(|r| json!({"attributes": {"type": t.object}, "id": r.get::<_, String>(0), "Note__c": tag})).collect();
    let sent = Instant::now();
    let (status, body) = sf.request("PATCH", "composite/sobjects", Some(&json!({"allOrNone": false, "records": records})));
    assert_eq!(status, 200, "burst update: {body}");
    let n = body.as_array().map(|a| a.iter().filter(|r| r["success"] == Value::Bool(true)).count()).unwrap_or(0) as i64;
    Some(Burst { table, tag, sent, n, seen: 0, draining: false })
}

/// The rows of each burst that reached Postgres since the last look: their latency in ms
/// (of bursts sent while the backlog drained, of those sent after).
fn observe(bursts: &mut Vec<Burst>, tables: &[Table], dbs: &mut [Client], lat: &mut [Vec<u64>; 2], last_seen: &mut Option<Instant>) {
    for b in bursts.iter_mut() {
        let t = &tables[b.table];
        let seen: i64 = dbs[t.db].query_one(&format!("SELECT count(*) FROM {} WHERE note = $1", t.name), &[&b.tag]).unwrap().get(0);
        if seen > b.seen {
            let ms = b.sent.elapsed().as_millis() as u64;
            lat[usize::from(!b.draining)].extend(std::iter::repeat_n(ms, (seen - b.seen) as usize));
            b.seen = seen;
            *last_seen = Some(Instant::now());
        }
    }
    bursts.retain(|b| b.seen < b.n);
}

/// commit->Salesforce latency (ms) of the writers' changes: settled (`outbox_archive.processed_at`,
/// after Salesforce answered) minus captured (at the write); (during the backlog, after it).
/// Not the record's SystemModstamp: the emulator hands out strictly increasing stamps, 1 ms
/// apart, so under a million writes its stamps run minutes ahead of the clock.
fn push_latency(dbs: &mut [Client], enabled_ms: i64, drained_ms: i64) -> (Vec<i64>, Vec<i64>) {
    let (mut during, mut after) = (Vec::new(), Vec::new());
    for c in dbs.iter_mut() {
        let rows = c
            .query(
                "SELECT (extract(epoch FROM captured_at) * 1000)::bigint, (extract(epoch FROM processed_at - captured_at) * 1000)::bigint
                   FROM sfsync.outbox_archive WHERE captured_at >= to_timestamp($1::bigint / 1000.0)",
                &[&enabled_ms],
            )
            .unwrap();
        for r in rows {
            let (captured, ms): (i64, i64) = (r.get(0), r.get(1));
            if captured < drained_ms {
                during.push(ms)
            } else {
                after.push(ms)
            }
        }
    }
    during.sort();
    after.sort();
    (during, after)
}

fn p50_p99<T: Copy + std::fmt::Display>(v: &[T]) -> String {
    if v.is_empty() {
        return "no samples".into();
    }
    format!("{} samples: p50 {} ms, p99 {} ms, max {} ms", v.len(), percentile(v, 0.5), percentile(v, 0.99), v[v.len() - 1])
}

pub fn run(rows: usize, seconds: u64) {
    let n_tables: usize = DBS.iter().map(|(_, n)| n).sum();
    let per_table = rows.div_ceil(n_tables);
    let emu = emulator();
    let cluster = cluster(&emu);
    let t_fill = Instant::now();
    let tables = tables(&cluster, per_table);
    let backlog = per_table * n_tables;
    println!(
        "load: {n_tables} tables in {} databases, backlog {backlog} rows captured in {:.1} s",
        DBS.len(),
        t_fill.elapsed().as_secs_f64()
    );
    let mut dbs: Vec<Client> = DBS.iter().map(|(db, _)| cluster.connect(db)).collect();
    let pids: Vec<i32> = dbs.iter_mut().map(|c| c.until_worker()).collect();
    let sf = emu.sf();
    let max0: Vec<i64> = dbs.iter_mut().map(|c| scalar_i64(c, "SELECT COALESCE(max(id), 0) FROM sfsync.outbox")).collect();
    let mem0: Vec<u64> = pids.iter().map(|&p| proc_kb(p, "RssAnon:")).collect();
    let (emu0, sfsync0, pushed0) = (emu.api_calls(), sfsync_calls(&mut dbs), pushed(&mut dbs));
    let mut bench_calls = 0u64;

    let (t0, enabled_ms) = (Instant::now(), now_ms());
    cluster.psql(DBS[0].0, "ALTER SYSTEM SET sfsync.enabled = on");
    cluster.psql(DBS[0].0, "SELECT pg_reload_conf()");
    let mut pgbench = writers(&cluster, per_table);
    let mut peak = mem0.clone();
    let (mut bursts, mut pull_lat, mut last_seen) = (Vec::new(), [Vec::new(), Vec::new()], None::<Instant>);
    let (mut burst_no, mut burst_records, mut next_burst) = (0usize, 0i64, t0 + BURST_EVERY);
    let mut first_burst = None::<Instant>;
    let mut drained = vec![None::<f64>; DBS.len()];
    let mut drain_end = None::<(Instant, i64, u64, u64, i64)>; // when, ms, emulator calls, bench calls, pushed
    let mut min_left = i64::MAX;
    let mut last_check = t0;
    let mut restarts = 0;
    loop {
        let now = Instant::now();
        if let Some((at, ..)) = drain_end {
            if now >= at + Duration::from_secs(seconds) {
                break;
            }
        } else if now - t0 > DRAIN_CAP {
            break;
        }
        if now >= next_burst {
            let table = burst_no % tables.len();
            let t = &tables[table];
            if let Some(mut b) = burst(&sf, &mut dbs[t.db], t, table, burst_no) {
                b.draining = drain_end.is_none();
                first_burst.get_or_insert(b.sent);
                burst_records += b.n;
                bursts.push(b);
                bench_calls += 1;
            }
            burst_no += 1;
            next_burst += BURST_EVERY;
        }
        observe(&mut bursts, &tables, &mut dbs, &mut pull_lat, &mut last_seen);
        for (p, &pid) in peak.iter_mut().zip(&pids) {
            *p = (*p).max(proc_kb(pid, "RssAnon:"));
        }
        if now - last_check >= Duration::from_secs(1) {
            last_check = now;
            let left = budget_left(&mut dbs[0]);
            if left >= 0 {
                min_left = min_left.min(left);
            }
            for (d, c) in dbs.iter_mut().enumerate() {
                if scalar_i64(c, "SELECT COALESCE(sfsync.worker_pid(), 0)::bigint") != pids[d] as i64 {
                    restarts += 1;
                }
                if drained[d].is_none() {
                    let left: i64 = c.query_one("SELECT count(*) FROM sfsync.outbox WHERE id <= $1", &[&max0[d]]).unwrap().get(0);
                    if left == 0 {
                        drained[d] = Some(t0.elapsed().as_secs_f64());
                    }
                }
            }
            if drain_end.is_none() && drained.iter().all(Option::is_some) {
                drain_end = Some((now, now_ms(), emu.api_calls(), bench_calls, pushed(&mut dbs)));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    for p in &mut pgbench {
        let _ = p.kill();
        let _ = p.wait();
    }
    let steady_end = Instant::now();
    let (emu_steady_end, bench_steady_end, pushed_steady_end) = (emu.api_calls(), bench_calls, pushed(&mut dbs));

    // Settle: the bursts' rows pulled, every outbox empty.
    // Not `until`: a run that does not settle still prints its figures, and says so.
    let settle_by = Instant::now() + Duration::from_secs(180);
    let unsettled = loop {
        observe(&mut bursts, &tables, &mut dbs, &mut pull_lat, &mut last_seen);
        let left: i64 = dbs.iter_mut().map(|c| scalar_i64(c, "SELECT count(*) FROM sfsync.outbox")).sum();
        if bursts.is_empty() && left == 0 {
            break None;
        }
        if Instant::now() > settle_by {
            break Some(format!("{} bursts not fully pulled, {left} outbox entries left", bursts.len()));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let settled = t0.elapsed().as_secs_f64();
    let sfsync_emu = emu.api_calls() - emu0 - bench_calls;
    let sfsync_own = sfsync_calls(&mut dbs) - sfsync0;
    let left_end = budget_left(&mut dbs[0]);

    match drain_end {
        Some((at, _, _, _, pushed_at)) => {
            let secs = (at - t0).as_secs_f64();
            println!(
                "backlog of {backlog} rows drained under load in {secs:.1} s: {:.0} rows/s (databases done at {} s); {} records pushed in that time",
                backlog as f64 / secs,
                drained.iter().map(|d| format!("{:.0}", d.unwrap())).collect::<Vec<_>>().join(", "),
                pushed_at - pushed0
            );
        }
        None => {
            let done = pushed(&mut dbs) - pushed0;
            println!(
                "backlog of {backlog} rows NOT drained within {} s: {done} records pushed, {:.0} rows/s",
                DRAIN_CAP.as_secs(),
                done as f64 / DRAIN_CAP.as_secs_f64()
            );
        }
    }
    let hour = |calls: u64, secs: f64| calls as f64 * 3600.0 / secs;
    if let Some((at, drained_ms, emu_at, bench_at, pushed_at)) = drain_end {
        let steady = (steady_end - at).as_secs_f64();
        println!(
            "steady phase {steady:.0} s ({WRITER_TPS} tps of writers, a burst every {} s): {:.1} records pushed/s",
            BURST_EVERY.as_secs(),
            (pushed_steady_end - pushed_at) as f64 / steady
        );
        let drain_calls = emu_at - emu0 - bench_at;
        let steady_calls = emu_steady_end - emu_at - (bench_steady_end - bench_at);
        println!(
            "API calls by sfsync: {drain_calls} while draining = {:.0}/hour, {steady_calls} in the steady phase = {:.0}/hour",
            hour(drain_calls, (at - t0).as_secs_f64()),
            hour(steady_calls, steady)
        );
        let (during, after) = push_latency(&mut dbs, enabled_ms, drained_ms);
        println!(
            "commit->Salesforce latency (captured to settled) of the writers' changes while the backlog drained: {}",
            p50_p99(&during)
        );
        println!("commit->Salesforce latency (captured to settled) of the writers' changes in the steady phase: {}", p50_p99(&after));
    }
    let pull_secs = match (first_burst, last_seen) {
        (Some(f), Some(l)) => (l - f).as_secs_f64(),
        _ => 0.0,
    };
    println!(
        "pull: {burst_no} bursts, {burst_records} Salesforce changes, {} applied = {:.1} changes/s",
        pull_lat[0].len() + pull_lat[1].len(),
        (pull_lat[0].len() + pull_lat[1].len()) as f64 / pull_secs.max(0.001)
    );
    for (lat, when) in pull_lat.iter_mut().zip(["while the backlog drained", "in the steady phase"]) {
        lat.sort();
        println!("Salesforce->Postgres latency of the bursts' changes {when}: {}", p50_p99(lat));
    }
    for (d, (db, _)) in DBS.iter().enumerate() {
        println!("worker of {db}: private memory (RssAnon) {} MB before, peak {} MB", mem0[d] / 1024, peak[d] / 1024);
    }
    if restarts > 0 {
        println!("WORKER RESTARTS seen: {restarts} (see the server log {})", cluster.log_path().display());
    }

    // The budget: at most one hour's share at once, then the daily rate.
    let per_sec = DAILY_LIMIT as f64 * SHARE / 86_400.0;
    let bound = (DAILY_LIMIT as f64 * SHARE / 24.0 + per_sec * settled) as u64;
    println!(
        "API calls by sfsync over {settled:.0} s: {sfsync_emu} (emulator counters, bench's own left out; sfsync counted {sfsync_own}) = {:.0}/hour",
        hour(sfsync_emu, settled)
    );
    println!(
        "API budget: share {SHARE} of {DAILY_LIMIT}/day allows {bound} calls in {settled:.0} s (an hour's share + the refill); \
         used {sfsync_emu}: {}; api_budget_left lowest {min_left}, at the end {left_end}",
        if sfsync_emu <= bound { "HELD" } else { "EXCEEDED" }
    );
    // Where the calls went (the bench's own bursts are the PATCH of composite/sobjects).
    let counters = emu.admin("GET", "counters", Value::Null);
    let mut by: Vec<(String, u64)> = counters["by_endpoint"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect())
        .unwrap_or_default();
    by.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    println!("calls by endpoint (whole run): {}", by.iter().take(8).map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", "));
    let errors: i64 = dbs.iter_mut().map(|c| scalar_i64(c, "SELECT COALESCE(sum(error_count), 0)::bigint FROM sfsync.status")).sum();
    let states: Vec<String> =
        dbs.iter_mut().map(|c| c.query_one("SELECT string_agg(DISTINCT state, ', ') FROM sfsync.status", &[]).unwrap().get(0)).collect();
    match unsettled {
        None => println!("settled {settled:.0} s after enabling: errors {errors}, states {}", states.join(" | ")),
        Some(what) => println!("NOT SETTLED 180 s after the load stopped: {what}; errors {errors}, states {}", states.join(" | ")),
    }
}
