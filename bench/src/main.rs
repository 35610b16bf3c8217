//! sfsync benchmarks against a throwaway cluster (sfsync preloaded) and sf-emulator.
//!
//!   sfsync-bench capture [seconds]   pgbench write throughput: synced table vs plain table, single-row
//!                                    and 100-row INSERT/UPDATE, each ratio next to its goal and
//!                                    to the floor (the outbox row alone, no trigger)
//!   sfsync-bench push [N...]         time and API calls to push N rows vs the ideal ceil(N/200)
//!   sfsync-bench push-tables [N]     API calls to push one change in each of N tables (default 25):
//!                                    table by table vs one pass (Composite requests), goal ceil(N/5)
//!   sfsync-bench latency [samples]   commit-to-Salesforce latency, p50/p99, at low load
//!   sfsync-bench drain [N]           worker peak memory (VmHWM) and time draining an N-row backlog
//!   sfsync-bench pull-latency [N]    Salesforce-to-Postgres latency p50/p99, change stream vs polling only
//!   sfsync-bench idle [seconds]      API calls per idle hour of a connection with 1 and 25 tables:
//!                                    polling only, change stream + safety poll, stream trusted
//!   sfsync-bench stream-load [rate] [seconds]
//!                                    query calls while Salesforce changes `rate` records/s, with the
//!                                    change stream: a directly applied table vs a mirror
//!   sfsync-bench stream-latency [rate] [seconds]
//!                                    Salesforce-to-Postgres latency p50/p99 and events/s applied
//!                                    while Salesforce changes `rate` records/s (200-record
//!                                    collection updates), Pub/Sub API vs CometD, with ratios
//!   sfsync-bench backfill [N]        sfsync.mirror of N seeded Accounts (Bulk backfill): rows/s vs
//!                                    COPY of the same rows into the same table, worker peak memory
//!   sfsync-bench client [N]          salesforce crate: API calls per 1,000 records written,
//!                                    REST query and Bulk query read throughput (N records)
//!   sfsync-bench write-through [N]   write-through mode on short connections, 1 and 8 sessions
//!                                    of N mixed statements: statements/s, p50/p99, calls/statement
//!   sfsync-bench link [N] [M]        sync_table(..., match => 'Email') of N rows, M of them already
//!                                    Contacts: time and API calls vs the ideal, vs a plain opt-in
//!   sfsync-bench query [N]          a synced query of N aggregate rows, 1 % changed: API calls of the
//!                                    refresh vs ceil(changed/200), its time vs the query alone
//!   sfsync-bench load [rows] [seconds]
//!                                    3 databases, 50 synced tables, one org: a `rows` backlog drained
//!                                    under steady pgbench writers (50 tps) and Salesforce bursts, then
//!                                    `seconds` of steady load: throughput each way, latency p50/p99
//!                                    both ways, API calls/hour, worker memory, the API budget held
//!   sfsync-bench all                 everything, with small defaults
//!
//! Needs the extension installed (`make install`) and the emulator built (`make emulator`).
//! Figures are ratios within one run; absolute numbers depend on the machine.

mod capture;
mod link;
mod load;
mod push_tables;
mod query;
mod stream_latency;
mod write_through;

use sfsync_e2e::{until, Cluster, ClusterOpts, DbExt, Emulator, Value};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct Env {
    emu: Emulator,
    cluster: Cluster,
}

fn start(enabled: bool) -> Env {
    start_with(enabled, false)
}

/// A started cluster with `accounts` synced (bidirectional) and sfsync.cdc as given;
/// polling at the default 5 s interval.
fn start_pull(cdc: bool) -> Env {
    let env = start_with(true, false);
    env.cluster.psql("bench", &format!("ALTER SYSTEM SET sfsync.cdc = {}", if cdc { "on" } else { "off" }));
    env.cluster.psql("bench", "ALTER SYSTEM SET sfsync.pull_interval = '5s'");
    env.cluster.psql("bench", "SELECT pg_reload_conf()");
    env.cluster.psql("bench", "CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL, industry text)");
    env.cluster.psql("bench", "SELECT sfsync.sync_table('accounts', 'Account')");
    worker_pid(&env);
    std::thread::sleep(Duration::from_secs(2)); // first pull, stream subscribed
    env
}

fn pull_latency(n: usize) {
    for cdc in [true, false] {
        let env = start_pull(cdc);
        let mut db = env.cluster.connect("bench");
        let sf = env.emu.sf();
        let mut lat = Vec::with_capacity(n);
        for i in 0..n {
            if !cdc {
                // Changes arrive at any point of the poll cycle: spread the samples over it.
                std::thread::sleep(Duration::from_secs_f64(5.0 * ((i as f64 * 0.618_034) % 1.0)));
            }
            let t0 = Instant::now();
            let id = sf.create("Account", serde_json::json!({"Name": format!("Latency {i}")}));
            loop {
                let found: i64 = db.query_one("SELECT count(*) FROM accounts WHERE sfid = $1", &[&id]).unwrap().get(0);
                if found == 1 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            lat.push(t0.elapsed().as_millis() as u64);
        }
        lat.sort();
        let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
        let mode = if cdc { "change stream" } else { "polling only (5 s)" };
        println!("Salesforce->Postgres latency, {mode}, {n} samples: p50 {} ms, p99 {} ms", p(0.5), p(0.99));
    }
}

/// Salesforce updates at a steady `rate` per second for `seconds`, with the change stream on:
/// query calls the pull spends, for a table whose events apply directly (`sync_table` of a
/// few fields) and for a mirror (its SystemModstamp and compound columns need a query), with
/// its event-asked polls unspaced (`sfsync.cdc_poll_spacing = 0`) and at the default spacing.
fn stream_load(rate: u64, seconds: u64) {
    for (mirror, spacing) in [(false, None), (true, Some("0")), (true, None)] {
        let env = start_pull(true);
        if let Some(s) = spacing {
            env.cluster.psql("bench", &format!("ALTER SYSTEM SET sfsync.cdc_poll_spacing = '{s}'"));
            env.cluster.psql("bench", "SELECT pg_reload_conf()");
        }
        let sf = env.emu.sf();
        let ids: Vec<String> = (0..50).map(|i| sf.create("Account", serde_json::json!({"Name": format!("Load {i}")}))).collect();
        let table = if mirror {
            env.cluster.psql("bench", "SELECT sfsync.mirror('Account', 'sf_accounts')");
            "sf_accounts"
        } else {
            "accounts"
        };
        let mut db = env.cluster.connect("bench");
        let count = format!("SELECT count(*) FROM {table} WHERE sfid IS NOT NULL");
        until("50 records pulled", Duration::from_secs(60), || {
            let n: i64 = db.query_one(count.as_str(), &[]).unwrap().get(0);
            (n >= 50).then_some(()).ok_or(format!("{n} of 50 rows"))
        });
        std::thread::sleep(Duration::from_secs(2)); // settled: the catch-up polls are over
        let before = env.emu.query_calls();
        let started = Instant::now();
        let total = rate * seconds;
        for i in 0..total {
            let due = Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
            sf.update("Account", &ids[i as usize % ids.len()], serde_json::json!({"Industry": format!("Industry {i}")}));
        }
        let last = format!("Industry {}", total - 1);
        let sent = Instant::now();
        let check = format!("SELECT count(*) FROM {table} WHERE industry = $1");
        until("the last change pulled", Duration::from_secs(60), || {
            let n: i64 = db.query_one(check.as_str(), &[&last]).unwrap().get(0);
            (n == 1).then_some(()).ok_or("last change not there yet".to_string())
        });
        let settle = sent.elapsed().as_millis();
        let calls = env.emu.query_calls() - before;
        let what = match (mirror, spacing) {
            (false, _) => "sync_table (events applied directly)".to_string(),
            (true, Some(s)) => format!("mirror (events ask for a poll), cdc_poll_spacing = {s}"),
            (true, None) => "mirror (events ask for a poll), cdc_poll_spacing default (1s)".to_string(),
        };
        println!(
            "{total} Salesforce updates at {rate}/s, {what}: {calls} query calls = {:.0} per hour of such load; last change visible {settle} ms after it was made",
            calls as f64 * 3600.0 / seconds as f64
        );
    }
}

/// API calls an idle connection costs per hour, for 1 and 25 tables pulled from it: polling
/// only (every 5 s), with a live change stream and its safety poll (measured at a 10 s safety
/// interval, given per hour at the default 5 min), and with the stream trusted
/// (`sfsync.cdc_safety_interval = 0`). Goal: as few calls as the API allows (Composite takes
/// 5 queries: 25 tables cost 5 calls a poll), none when nothing could have been missed.
fn idle(seconds: u64) {
    for tables in [1, 25] {
        let mut line = Vec::new();
        for (mode, cdc, safety) in [
            ("polling only (5 s)", false, None),
            ("change stream, safety poll", true, Some("10s")),
            ("change stream trusted", true, Some("0")),
        ] {
            let env = start_with(true, false);
            for (k, v) in [("sfsync.cdc", if cdc { "on" } else { "off" }), ("sfsync.pull_interval", "5s")] {
                env.cluster.psql("bench", &format!("ALTER SYSTEM SET {k} = '{v}'"));
            }
            if let Some(s) = safety {
                env.cluster.psql("bench", &format!("ALTER SYSTEM SET sfsync.cdc_safety_interval = '{s}'"));
            }
            env.cluster.psql("bench", "SELECT pg_reload_conf()");
            for t in 0..tables {
                env.cluster.psql(
                    "bench",
                    &format!(
                        "CREATE TABLE idle_{t} (id bigserial PRIMARY KEY, name text NOT NULL);
                         SELECT sfsync.sync_table('idle_{t}', 'Account', fields => '{{\"name\": \"Name\"}}', direction => 'pull')"
                    ),
                );
            }
            worker_pid(&env);
            std::thread::sleep(Duration::from_secs(12)); // first polls, stream subscribed, catch-up polls over
            let before = api_calls(&env);
            std::thread::sleep(Duration::from_secs(seconds));
            let calls = api_calls(&env) - before;
            let per_hour = match safety {
                // Measured at a 10 s safety interval: per hour at the default 5 minutes.
                Some("10s") => calls as f64 / seconds as f64 * 10.0 * 12.0,
                _ => calls as f64 * 3600.0 / seconds as f64,
            };
            line.push(format!("{mode}: {per_hour:.0}"));
        }
        println!("idle connection with {tables} table(s), API calls per hour: {}", line.join("; "));
    }
}

/// `durable`: PostgreSQL's default durability (fsync, full page writes) instead of the
/// harness's fast settings.
fn start_with(enabled: bool, durable: bool) -> Env {
    let emu = Emulator::start_with_args(&["--daily-api-limit", "100000000"]);
    let mut opts = ClusterOpts::new();
    if durable {
        opts = opts.guc("fsync", "on").guc("full_page_writes", "on").guc("synchronous_commit", "on");
    }
    let cluster = Cluster::start(
        opts.preload(true)
            .guc("sfsync.enabled", if enabled { "on" } else { "off" })
            .guc("sfsync.poll_interval", "1s")
            .guc("sfsync.pull_interval", "1s")
            .guc("sfsync.launcher_interval", "500ms")
            .guc("max_connections", "50"),
    );
    cluster.create_sfsync_database("bench", &emu);
    Env { emu, cluster }
}

fn table(env: &Env, name: &str, synced: bool) {
    env.cluster.psql("bench", &format!("CREATE TABLE {name} (id bigserial PRIMARY KEY, last_name text NOT NULL, email text, title text)"));
    if synced {
        env.cluster.psql("bench", &format!("SELECT sfsync.sync_table('{name}', 'Contact', direction => 'push')"));
    }
}

fn api_calls(env: &Env) -> u64 {
    env.emu.api_calls()
}

/// The database's worker pid, once it is up.
fn worker_pid(env: &Env) -> i32 {
    env.cluster.connect("bench").until_worker()
}

/// A `/proc/<pid>/status` figure in kB (`RssAnon:`, `VmHWM:` ...), 0 when unreadable.
fn proc_kb(pid: i32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// CPU seconds (user + system) a process used so far, its threads included (ended ones too).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest.split_whitespace().map(|v| v.parse().unwrap_or(0)).collect();
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 after the name; clock ticks of 1/100 s.
    (f.get(11).unwrap_or(&0) + f.get(12).unwrap_or(&0)) as f64 / 100.0
}

/// The value at quantile `q` (0..1) of sorted samples.
fn percentile<T: Copy>(sorted: &[T], q: f64) -> T {
    sorted[((sorted.len() as f64 - 1.0) * q).round() as usize]
}

/// `pgbench -n` of the custom `script` against `db`, with `args` (-c, -T, -R ...).
fn pgbench_command(cluster: &Cluster, db: &str, script: &std::path::Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(cluster.bindir().join("pgbench"));
    cmd.arg("-n").args(args).arg("-f").arg(script);
    cmd.args(["-h", cluster.socket_dir().to_str().unwrap(), "-p", &cluster.port().to_string(), "-U", "postgres", db]);
    cmd
}

/// pgbench TPS of the custom `script` on `bench`, 2 clients for `seconds`.
fn pgbench_tps(env: &Env, script: &std::path::Path, seconds: u32) -> f64 {
    let out =
        pgbench_command(&env.cluster, "bench", script, &["-c", "2", "-j", "2", "-T", &seconds.to_string()]).output().expect("pgbench");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("tps = ").and_then(|r| r.split_whitespace().next()).and_then(|v| v.parse().ok()))
        .unwrap_or_else(|| panic!("no tps in pgbench output: {text}{}", String::from_utf8_lossy(&out.stderr)))
}

fn push(sizes: &[usize]) {
    for &n in sizes {
        let env = start(true);
        table(&env, "contacts", true);
        worker_pid(&env);
        // A first row warms the worker up: its login and its describe of the object are once
        // per worker, not per push.
        let insert = |rows: usize, from: usize| {
            env.cluster.psql(
                "bench",
                &format!(
                    "INSERT INTO contacts (last_name, email) SELECT 'Row ' || g, 'r' || g || '@example.com' FROM generate_series({from}, {}) g",
                    from + rows - 1
                ),
            )
        };
        let drained = || {
            until("the outbox drained", Duration::from_secs(600), || {
                let left: i64 = env.cluster.psql("bench", "SELECT count(*) FROM sfsync.outbox").trim().parse().unwrap_or(-1);
                (left == 0).then_some(()).ok_or(format!("{left} left"))
            })
        };
        insert(1, 0);
        drained();
        let endpoints = || env.emu.admin("GET", "counters", Value::Null)["by_endpoint"].clone();
        let (before, by_endpoint) = (api_calls(&env), endpoints());
        let t0 = Instant::now();
        insert(n, 1);
        drained();
        let secs = t0.elapsed().as_secs_f64();
        let calls = api_calls(&env) - before;
        let ideal = n.div_ceil(200) as u64;
        let ratio = calls as f64 / ideal as f64;
        println!(
            "push {n}: {secs:.2} s, {:.0} rows/s, {calls} API calls (ideal ceil(N/200) = {ideal}, ratio {ratio:.2}; goal <= 1.02: {})",
            n as f64 / secs,
            if ratio <= 1.02 { "met" } else { "NOT met" }
        );
        if ratio > 1.02 {
            eprintln!("push {n}: calls by endpoint before {by_endpoint}, after {}", endpoints());
        }
    }
}

fn latency(samples: usize) {
    let env = start(true);
    table(&env, "contacts", true);
    worker_pid(&env);
    let mut c = env.cluster.connect("bench");
    let mut committed = Vec::new();
    for i in 0..samples {
        c.execute("INSERT INTO contacts (id, last_name) VALUES ($1, 'Latency')", &[&(i as i64 + 1)]).unwrap();
        let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        committed.push(t);
        until("the outbox drained", Duration::from_secs(30), || {
            let n: i64 = c.query_one("SELECT count(*) FROM sfsync.outbox", &[]).unwrap().get(0);
            (n == 0).then_some(()).ok_or_else(|| "pending".to_string())
        });
        std::thread::sleep(Duration::from_millis(50));
    }
    // Salesforce's CreatedDate (emulator clock = this machine's clock) minus our commit time.
    let recs = env.emu.sf().query("SELECT Postgres_Id__c, CreatedDate FROM Contact");
    let mut lat: Vec<i64> = recs
        .iter()
        .filter_map(|r| {
            // '<namespace>:<key>' (sfsync.external_key).
            let id: usize = r["Postgres_Id__c"].as_str()?.rsplit(':').next()?.parse().ok()?;
            let created = salesforce::soql::parse_datetime(r["CreatedDate"].as_str()?)?.as_millis();
            Some(created - committed[id - 1])
        })
        .collect();
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    println!("latency commit->Salesforce over {} samples: p50 {} ms, p99 {} ms, max {} ms", lat.len(), p(0.5), p(0.99), lat[lat.len() - 1]);
}

/// A backlog of `n` captured inserts (made while the worker was off), then drained:
/// time, API calls and the worker's peak private memory (sampled every half second).
fn drain(n: usize) {
    let env = start(false);
    table(&env, "contacts", true);
    env.cluster.psql(
        "bench",
        &format!("INSERT INTO contacts (last_name, email) SELECT 'Row ' || g, 'r' || g || '@example.com' FROM generate_series(1, {n}) g"),
    );
    let pid = worker_pid(&env);
    // RssAnon is the process's private memory (heap, palloc); VmRSS also counts the shared
    // buffers it touched.
    let before_kb = proc_kb(pid, "RssAnon:");
    let calls0 = api_calls(&env);
    // One connection, polled every 50 ms on a one-row read: a psql started per probe and a
    // count(*) of the outbox every 500 ms took CPU from the worker and saw the end late.
    let mut db = env.cluster.connect("bench");
    let (worker_cpu0, emu_cpu0) = (cpu_secs(pid as u32), cpu_secs(env.emu.pid()));
    let t0 = Instant::now();
    env.cluster.psql("bench", "ALTER SYSTEM SET sfsync.enabled = on");
    env.cluster.psql("bench", "SELECT pg_reload_conf()");
    let mut peak = 0;
    let mut probes = 0u32;
    loop {
        if probes.is_multiple_of(10) {
            peak = peak.max(proc_kb(pid, "RssAnon:"));
        }
        probes += 1;
        let pushed: i64 =
            db.query_one("SELECT COALESCE(sum(pushed_total), 0)::bigint FROM sfsync.sync_state", &[]).expect("sync_state").get(0);
        if pushed >= n as i64 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(3600), "waited 1 h for the drain; {pushed} pushed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let secs = t0.elapsed().as_secs_f64();
    let (worker_cpu, emu_cpu) = (cpu_secs(pid as u32) - worker_cpu0, cpu_secs(env.emu.pid()) - emu_cpu0);
    let calls = api_calls(&env) - calls0;
    let left: i64 = db.query_one("SELECT count(*) FROM sfsync.outbox", &[]).expect("outbox").get(0);
    assert_eq!(left, 0, "every change pushed and settled");
    // What the worker keeps once the backlog is gone.
    std::thread::sleep(Duration::from_secs(2));
    let after_kb = proc_kb(pid, "RssAnon:");
    println!(
        "drain {n}: {secs:.1} s (goal < 60 s for 1M), {:.0} rows/s, {calls} API calls (ceil(N/200) = {}), worker private memory {} MB before, \
         peak {} MB (goal < 100 MB), {} MB after; CPU: worker {worker_cpu:.2} s, emulator {emu_cpu:.2} s",
        n as f64 / secs,
        n.div_ceil(200),
        before_kb / 1024,
        peak / 1024,
        after_kb / 1024
    );
}

/// `sfsync.mirror('Account', ...)` of `n` seeded Accounts, loaded by the worker's backfill
/// (a Bulk query job from `sfsync.backfill_bulk_threshold` on), against `COPY` of the same rows
/// (dumped from the mirror) into a table of the same shape; the worker's private memory
/// (RssAnon) is sampled throughout.
fn backfill(n: usize) {
    let env = start(true);
    let t_seed = Instant::now();
    // Records with the fields a real org fills (the rest of the columns stay NULL).
    let fields = serde_json::json!({"Industry": "Energy", "Type": "Customer - Direct", "AnnualRevenue": 1250000.5,
        "NumberOfEmployees": 420, "Phone": "+1 415 555 0100", "Website": "https://example.com", "BillingCity": "San Francisco",
        "BillingCountry": "USA", "Rating": "Hot", "Description": "Generated by sfsync-bench for the backfill benchmark."});
    env.emu.admin("POST", "seed", serde_json::json!({"object": "Account", "count": n, "fields": fields}));
    let seed_secs = t_seed.elapsed().as_secs_f64();
    let pid = worker_pid(&env);
    let before_kb = proc_kb(pid, "RssAnon:");
    let calls0 = api_calls(&env);
    // One connection for the whole measure, polled every 20 ms: a psql started per probe (and
    // for the COPY) cost up to half a second on a busy machine, which both times carried.
    let mut db = env.cluster.connect("bench");
    let (worker_cpu0, emu_cpu0) = (cpu_secs(pid as u32), cpu_secs(env.emu.pid()));
    let t0 = Instant::now();
    db.batch_execute("SELECT sfsync.mirror('Account', 'sf_accounts')").expect("mirror");
    let mut peak = 0;
    let mut last;
    let mut probes = 0u32;
    let mut first_rows = None;
    loop {
        if probes.is_multiple_of(10) {
            peak = peak.max(proc_kb(pid, "RssAnon:"));
        }
        probes += 1;
        let p: Option<String> = db
            .query_opt(
                "SELECT state || ' ' || method || ' ' || rows_done || ' ' || COALESCE(last_error, '') FROM sfsync.backfill_progress",
                &[],
            )
            .expect("backfill_progress")
            .and_then(|r| r.get(0));
        last = p.unwrap_or_default().trim().to_string();
        if last.starts_with("failed") {
            panic!("backfill failed: {last}");
        }
        if first_rows.is_none() && last.split_whitespace().nth(2).is_some_and(|n| n != "0") {
            first_rows = Some(t0.elapsed().as_secs_f64());
        }
        if last.starts_with("done") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(7200), "waited 2 h for the backfill; last seen: {last}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = t0.elapsed().as_secs_f64();
    let (worker_cpu, emu_cpu) = (cpu_secs(pid as u32) - worker_cpu0, cpu_secs(env.emu.pid()) - emu_cpu0);
    let calls = api_calls(&env) - calls0;
    let rows: i64 = env.cluster.psql("bench", "SELECT count(*) FROM sf_accounts").trim().parse().unwrap();
    assert_eq!(rows as usize, n, "every record loaded");
    let cols: i64 = env
        .cluster
        .psql("bench", "SELECT count(*) FROM pg_attribute WHERE attrelid = 'sf_accounts'::regclass AND attnum > 0")
        .trim()
        .parse()
        .unwrap();

    // The same rows through COPY into a table of the same shape (keys and unique sfid included).
    let file = env.cluster.data_dir().join("accounts.csv");
    env.cluster.psql("bench", &format!("COPY sf_accounts TO '{}' (FORMAT csv)", file.display()));
    env.cluster.psql("bench", "CREATE TABLE copy_target (LIKE sf_accounts INCLUDING ALL)");
    let backend: i32 = db.query_one("SELECT pg_backend_pid()", &[]).expect("pid").get(0);
    let copy_cpu0 = cpu_secs(backend as u32);
    let t1 = Instant::now();
    db.batch_execute(&format!("COPY copy_target FROM '{}' (FORMAT csv)", file.display())).expect("COPY");
    let copy_secs = t1.elapsed().as_secs_f64();
    let copy_cpu = cpu_secs(backend as u32) - copy_cpu0;
    println!(
        "backfill {n} Accounts ({cols} columns, {}): {secs:.2} s (first rows in after {:.2} s), {:.0} rows/s, {calls} API calls; COPY of the same rows {copy_secs:.2} s, {:.0} rows/s; \
         backfill/COPY = {:.3}; CPU: worker {worker_cpu:.2} s (its reader threads included), emulator {emu_cpu:.2} s, COPY {copy_cpu:.2} s; \
         worker private memory {} MB before, peak {} MB; (seeding took {seed_secs:.1} s)",
        last.split_whitespace().nth(1).unwrap_or("?"),
        first_rows.unwrap_or(secs),
        n as f64 / secs,
        n as f64 / copy_secs,
        (n as f64 / secs) / (n as f64 / copy_secs),
        before_kb / 1024,
        peak / 1024
    );
}

/// The salesforce crate alone against the emulator: call economy and read throughput.
fn client(n: usize) {
    use salesforce::{AuthFlow, Client, ClientOptions, Credentials, Record, Secret};
    let emu = Emulator::start_with_args(&["--daily-api-limit", "100000000"]);
    let login = emu.credentials();
    let mut creds = Credentials::new(AuthFlow::ClientCredentials, login.login_url, &login.client_id);
    creds.client_secret = login.client_secret.map(Secret::new);
    let c = Client::login(creds, ClientOptions::default()).expect("login");
    let records: Vec<Record> = (0..1000)
        .map(|i| serde_json::json!({"LastName": format!("Bench {i}"), "Email": format!("b{i}@example.com")}).as_object().unwrap().clone())
        .collect();
    let before = c.stats().calls;
    let t0 = Instant::now();
    let res = c.collections_create("Contact", &records).expect("collections create");
    let create_secs = t0.elapsed().as_secs_f64();
    let calls = c.stats().calls - before;
    assert!(res.iter().all(|r| r.success));
    let upserts: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut r = r.clone();
            r.insert("Postgres_Id__c".into(), Value::String(i.to_string()));
            r
        })
        .collect();
    let before = c.stats().calls;
    c.collections_upsert("Contact", "Postgres_Id__c", &upserts).expect("collections upsert");
    let upsert_calls = c.stats().calls - before;
    println!(
        "client writes: 1000 records = {calls} API calls through Collections create (ideal 5), {upsert_calls} through upsert; {:.0} records/s",
        1000.0 / create_secs
    );

    emu.admin("POST", "seed", serde_json::json!({"object": "Account", "count": n}));
    let t0 = Instant::now();
    let before = c.stats().calls;
    let mut rows = 0usize;
    for r in c.query_iter("SELECT Id, Name, Industry, AnnualRevenue, SystemModstamp FROM Account", false) {
        r.expect("row");
        rows += 1;
    }
    let rest_secs = t0.elapsed().as_secs_f64();
    let rest_calls = c.stats().calls - before;
    let t0 = Instant::now();
    let before = c.stats().calls;
    let mut bulk_rows = 0usize;
    for r in c.bulk_query("SELECT Id, Name, Industry, AnnualRevenue, SystemModstamp FROM Account", false).expect("bulk query") {
        r.expect("row");
        bulk_rows += 1;
    }
    let bulk_secs = t0.elapsed().as_secs_f64();
    let bulk_calls = c.stats().calls - before;
    println!(
        "client reads of {n} records: REST query {:.0} rows/s ({rest_calls} calls), Bulk query {:.0} rows/s ({bulk_calls} calls); Bulk/REST = {:.1}",
        rows as f64 / rest_secs,
        bulk_rows as f64 / bulk_secs,
        (bulk_rows as f64 / bulk_secs) / (rows as f64 / rest_secs)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    match args.first().map(String::as_str) {
        Some("capture") => capture::run(num(1, 10) as u32),
        Some("push") => {
            let sizes: Vec<usize> = args[1..].iter().filter_map(|a| a.parse().ok()).collect();
            push(if sizes.is_empty() { &[1000, 10000] } else { &sizes })
        }
        Some("push-tables") => push_tables::run(num(1, 25)),
        Some("latency") => latency(num(1, 100)),
        Some("client") => client(num(1, 200_000)),
        Some("drain") => drain(num(1, 1_000_000)),
        Some("pull-latency") => pull_latency(num(1, 50)),
        Some("idle") => idle(num(1, 60) as u64),
        Some("stream-load") => stream_load(num(1, 10) as u64, num(2, 30) as u64),
        Some("stream-latency") => stream_latency::run(num(1, 1000) as u64, num(2, 10) as u64),
        Some("backfill") => backfill(num(1, 1_000_000)),
        Some("write-through") => write_through::run(num(1, 200) as i64),
        Some("link") => link::run(num(1, 5000), num(2, 3000)),
        Some("query") => query::run(num(1, 10_000)),
        Some("load") => load::run(num(1, 1_000_000), num(2, 180) as u64),
        Some("all") | None => {
            capture::run(5);
            push(&[1000, 10000]);
            push_tables::run(25);
            latency(50);
            client(200_000);
        }
        Some(other) => {
            eprintln!(
                "unknown benchmark {other:?}; use capture, push, push-tables, latency, drain, pull-latency, idle, stream-load, stream-latency, backfill, write-through, link, query, load, client or all"
            );
            std::process::exit(2);
        }
    }
}
