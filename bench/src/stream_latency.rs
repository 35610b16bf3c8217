//! `sfsync-bench stream-latency [rate] [seconds]`: Salesforce changes at `rate` events/s for
//! `seconds` — sObject Collections updates of 200 records, `rate / 200` of them a second, so
//! the bench itself keeps up — into a table synced with `sync_table` (its events apply
//! directly, changed fields only), once over the Pub/Sub API and once over CometD, the timed
//! poll an hour apart so only the stream brings the changes. Each update writes its batch
//! number into the records (`AnnualRevenue`); a trigger on the table (`ENABLE ALWAYS`, so it
//! fires for the worker's writes too) logs the moment each row took it. The latency of a
//! change runs from the write's response (the emulator committed it before answering) to
//! that moment; events/s applied counts every change over the time from the first write to
//! the last change applied. Prints both transports side by side, with Pub/Sub / CometD ratios.

use crate::{start_with, worker_pid};
use serde_json::json;
use sfsync_e2e::{until, DbExt, Value};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Records per sObject Collections call (the API's maximum).
const BATCH: usize = 200;

struct Run {
    events: usize,
    sent_per_s: f64,
    applied_per_s: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

fn now_ms() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

const TABLE: &str = r#"
CREATE TABLE accounts (id bigserial PRIMARY KEY, name text NOT NULL, batch numeric);
SELECT sfsync.sync_table('accounts', 'Account', fields => '{"name":"Name","batch":"AnnualRevenue"}');
CREATE TABLE seen (batch bigint, at timestamptz);
CREATE FUNCTION log_seen() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO seen VALUES (NEW.batch, clock_timestamp()); RETURN NULL; END $$;
CREATE TRIGGER log_seen AFTER UPDATE ON accounts FOR EACH ROW
  WHEN (NEW.batch IS DISTINCT FROM OLD.batch) EXECUTE FUNCTION log_seen();
ALTER TABLE accounts ENABLE ALWAYS TRIGGER log_seen;
"#;

fn one(transport: &str, rate: u64, seconds: u64) -> Run {
    let env = start_with(true, false);
    for sql in
        ["ALTER SYSTEM SET sfsync.pull_interval = '1h'", "ALTER SYSTEM SET sfsync.cdc_safety_interval = '1h'", "SELECT pg_reload_conf()"]
    {
        env.cluster.psql("bench", sql);
    }
    let choice = match transport {
        "pubsub" => {
            let addr = env.emu.pubsub_addr().expect("the emulator's Pub/Sub listener");
            format!("SELECT sfsync.set_change_stream('default', 'pubsub', pubsub_endpoint => 'http://{addr}')")
        }
        _ => "SELECT sfsync.set_change_stream('default', 'cometd')".to_string(),
    };
    env.cluster.psql("bench", &choice);

    // One record per event a second, each updated once a second.
    let sf = env.emu.sf();
    let records = (rate as usize).div_ceil(BATCH).max(1) * BATCH;
    let mut ids: Vec<String> = Vec::with_capacity(records);
    for c in 0..records / BATCH {
        let recs: Vec<Value> =
            (0..BATCH).map(|i| json!({"attributes": {"type": "Account"}, "Name": format!("Stream {}", c * BATCH + i)})).collect();
        let (status, body) = sf.request("POST", "composite/sobjects", Some(&json!({"allOrNone": true, "records": recs})));
        assert_eq!(status, 200, "create: {body}");
        ids.extend(body.as_array().into_iter().flatten().filter_map(|r| r["id"].as_str().map(String::from)));
    }
    env.cluster.connect("bench").batch_execute(TABLE).unwrap();
    worker_pid(&env);
    let mut db = env.cluster.connect("bench");
    let pulled = format!("SELECT count(*) = {records} FROM accounts WHERE sfid IS NOT NULL");
    db.until_true("the records pulled", &pulled);
    let live = format!("SELECT bool_and(change_stream = 'live' AND change_stream_transport = '{transport}') FROM sfsync.status");
    db.until_true("stream live", &live);
    std::thread::sleep(Duration::from_secs(2)); // the subscription's catch-up poll is over

    let batches = (rate * seconds) as usize / BATCH;
    let every = Duration::from_secs_f64(BATCH as f64 / rate as f64);
    // committed[b]: when batch b's write was answered (batch 0 is never written).
    let mut committed = vec![0.0];
    let (started, first_ms) = (Instant::now(), now_ms());
    for b in 1..=batches {
        if let Some(wait) = (every * (b as u32 - 1)).checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        let from = (b * BATCH) % records;
        let recs: Vec<Value> =
            ids[from..from + BATCH].iter().map(|id| json!({"attributes": {"type": "Account"}, "id": id, "AnnualRevenue": b})).collect();
        let (status, body) = sf.request("PATCH", "composite/sobjects", Some(&json!({"allOrNone": true, "records": recs})));
        assert_eq!(status, 200, "update: {body}");
        committed.push(now_ms());
    }
    let sent_secs = started.elapsed().as_secs_f64();
    let events = batches * BATCH;
    until("every change applied", Duration::from_secs(300), || {
        let n: i64 = db.query_one("SELECT count(*) FROM seen", &[]).unwrap().get(0);
        (n as usize >= events).then_some(()).ok_or(format!("{n} of {events} changes applied"))
    });
    let rows = db.query("SELECT batch, extract(epoch FROM at)::float8 * 1000 FROM seen", &[]).unwrap();
    let mut lat: Vec<f64> = rows.iter().map(|r| r.get::<_, f64>(1) - committed[r.get::<_, i64>(0) as usize]).collect();
    let last = rows.iter().map(|r| r.get::<_, f64>(1)).fold(0.0, f64::max);
    lat.sort_by(f64::total_cmp);
    let p = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    Run {
        events,
        sent_per_s: events as f64 / sent_secs,
        applied_per_s: events as f64 * 1000.0 / (last - first_ms),
        p50: p(0.5),
        p99: p(0.99),
        max: p(1.0),
    }
}

pub fn run(rate: u64, seconds: u64) {
    let runs: Vec<(&str, Run)> = ["pubsub", "cometd"].into_iter().map(|t| (t, one(t, rate, seconds))).collect();
    println!("stream-latency: {rate} Salesforce changes/s wanted for {seconds} s (200-record collection updates), sync_table");
    println!("{:<8} {:>7} {:>9} {:>10} {:>8} {:>8} {:>8}", "stream", "events", "sent/s", "applied/s", "p50 ms", "p99 ms", "max ms");
    for (t, r) in &runs {
        println!("{t:<8} {:>7} {:>9.0} {:>10.0} {:>8.0} {:>8.0} {:>8.0}", r.events, r.sent_per_s, r.applied_per_s, r.p50, r.p99, r.max);
    }
    let (ps, cd) = (&runs[0].1, &runs[1].1);
    println!(
        "Pub/Sub / CometD: p50 {:.2}, p99 {:.2}, applied/s {:.2}",
        ps.p50 / cd.p50.max(1.0),
        ps.p99 / cd.p99.max(1.0),
        ps.applied_per_s / cd.applied_per_s
    );
}
