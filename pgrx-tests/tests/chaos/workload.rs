//! The chaos suite's two workloads: local clients (each its own connection and its own
//! keys) writing accounts and contacts with their history in the same transaction, and a
//! Salesforce-side writer (REST and Bulk) rewriting a field only Salesforce owns.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sfsync_e2e::postgres::{self, Client};
use sfsync_e2e::{json, SfRest, Value};

/// Where the clients connect (the cluster may be restarted under them).
#[derive(Clone)]
pub struct Target {
    pub socket_dir: std::path::PathBuf,
    pub port: u16,
}

impl Target {
    pub fn connect(&self) -> Option<Client> {
        postgres::Config::new()
            .host_path(&self.socket_dir)
            .port(self.port)
            .user("postgres")
            .dbname("app")
            .application_name("sfsync-chaos")
            .connect_timeout(Duration::from_secs(5))
            .connect(postgres::NoTls)
            .ok()
    }

    /// Connects, retrying through a restart or crash recovery.
    pub fn reconnect(&self) -> Client {
        for _ in 0..600 {
            if let Some(c) = self.connect() {
                return c;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("the cluster did not come back within 2 minutes");
    }
}

pub const SCHEMA: &str = "
    CREATE TABLE accounts (id bigint PRIMARY KEY, name text NOT NULL, industry text, rating text);
    CREATE TABLE contacts (id bigint PRIMARY KEY, last_name text NOT NULL, email text,
                           account_id bigint REFERENCES accounts (id));
    SELECT sfsync.sync_table('accounts', 'Account');
    SELECT sfsync.sync_table('contacts', 'Contact');
    -- What each client committed, in the same transaction as the change: the history the
    -- check derives the expected state from, whatever the interleaving or crash.
    CREATE TABLE chaos_history (seq bigserial PRIMARY KEY, tbl text NOT NULL, pk bigint NOT NULL,
                                field text NOT NULL, value text);";

/// A change's history rows: (table, key, field, value); field `_exists` is `1` or `0`.
type Hist = Vec<(&'static str, i64, &'static str, Option<String>)>;

/// One local client: `ops` operations on its own key range, paced, reconnecting (and
/// re-reading what exists) after any error. Returns how many transactions it attempted.
pub fn client(target: Target, n: usize, seed: u64, ops: usize) -> usize {
    let mut rng = fastrand::Rng::with_seed(seed ^ (n as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let base = (n as i64 + 1) * 1_000_000;
    let mut next = base;
    let mut db = target.reconnect();
    let (mut accounts, mut contacts) = (Vec::<i64>::new(), Vec::<(i64, i64)>::new());
    for op in 0..ops {
        std::thread::sleep(Duration::from_millis(rng.u64(0..60)));
        let v = format!("c{n}-{op}");
        let mut hist: Hist = Vec::new();
        let mut stmts: Vec<(String, Vec<Option<String>>)> = Vec::new();
        let mut sql = |s: &str, args: &[Option<String>]| stmts.push((s.to_string(), args.to_vec()));
        let roll = rng.u32(0..100);
        if accounts.is_empty() || roll < 15 {
            next += 1;
            sql("INSERT INTO accounts (id, name) VALUES ($1::text::bigint, $2)", &[Some(next.to_string()), Some(format!("A {v}"))]);
            hist.push(("accounts", next, "_exists", Some("1".into())));
            hist.push(("accounts", next, "name", Some(format!("A {v}"))));
        } else if roll < 45 {
            let a = accounts[rng.usize(..accounts.len())];
            sql("UPDATE accounts SET name = $2 WHERE id = $1::text::bigint", &[Some(a.to_string()), Some(format!("A {v}"))]);
            hist.push(("accounts", a, "name", Some(format!("A {v}"))));
        } else if roll < 50 {
            let a = accounts[rng.usize(..accounts.len())];
            for (c, _) in contacts.iter().filter(|(_, p)| *p == a) {
                hist.push(("contacts", *c, "_exists", Some("0".into())));
            }
            sql("DELETE FROM contacts WHERE account_id = $1::text::bigint", &[Some(a.to_string())]);
            sql("DELETE FROM accounts WHERE id = $1::text::bigint", &[Some(a.to_string())]);
            hist.push(("accounts", a, "_exists", Some("0".into())));
        } else if contacts.is_empty() || roll < 65 {
            next += 1;
            let a = accounts[rng.usize(..accounts.len())];
            let email = (rng.u32(0..4) > 0).then(|| format!("{v}@x.test"));
            sql(
                "INSERT INTO contacts (id, last_name, email, account_id) VALUES ($1::text::bigint, $2, $3, $4::text::bigint)",
                &[Some(next.to_string()), Some(format!("L {v}")), email.clone(), Some(a.to_string())],
            );
            hist.push(("contacts", next, "_exists", Some("1".into())));
            hist.push(("contacts", next, "last_name", Some(format!("L {v}"))));
            hist.push(("contacts", next, "email", email));
            hist.push(("contacts", next, "account_id", Some(a.to_string())));
        } else if roll < 85 {
            let (c, _) = contacts[rng.usize(..contacts.len())];
            match rng.u32(0..3) {
                0 => {
                    sql("UPDATE contacts SET last_name = $2 WHERE id = $1::text::bigint", &[Some(c.to_string()), Some(format!("L {v}"))]);
                    hist.push(("contacts", c, "last_name", Some(format!("L {v}"))));
                }
                1 => {
                    sql("UPDATE contacts SET email = $2 WHERE id = $1::text::bigint", &[Some(c.to_string()), Some(format!("{v}@x.test"))]);
                    hist.push(("contacts", c, "email", Some(format!("{v}@x.test"))));
                }
                _ => {
                    let a = accounts[rng.usize(..accounts.len())];
                    sql(
                        "UPDATE contacts SET account_id = $2::text::bigint WHERE id = $1::text::bigint",
                        &[Some(c.to_string()), Some(a.to_string())],
                    );
                    hist.push(("contacts", c, "account_id", Some(a.to_string())));
                }
            }
        } else if roll < 90 {
            let (c, _) = contacts[rng.usize(..contacts.len())];
            sql("DELETE FROM contacts WHERE id = $1::text::bigint", &[Some(c.to_string())]);
            hist.push(("contacts", c, "_exists", Some("0".into())));
        } else {
            // PK-preserving churn: the row deleted and inserted again under its key.
            let (c, _) = contacts[rng.usize(..contacts.len())];
            let a = accounts[rng.usize(..accounts.len())];
            sql("DELETE FROM contacts WHERE id = $1::text::bigint", &[Some(c.to_string())]);
            sql(
                "INSERT INTO contacts (id, last_name, email, account_id) VALUES ($1::text::bigint, $2, NULL, $3::text::bigint)",
                &[Some(c.to_string()), Some(format!("L {v}")), Some(a.to_string())],
            );
            hist.push(("contacts", c, "_exists", Some("0".into())));
            hist.push(("contacts", c, "_exists", Some("1".into())));
            hist.push(("contacts", c, "last_name", Some(format!("L {v}"))));
            hist.push(("contacts", c, "email", None));
            hist.push(("contacts", c, "account_id", Some(a.to_string())));
        }
        if let Err(e) = commit(&mut db, &stmts, &hist) {
            // A crash or restart breaks the connection; anything else is the workload's bug.
            let crash = e.is_closed() || e.as_db_error().is_none_or(|d| d.code().code().starts_with("57") || d.code().code() == "40P01");
            if !crash {
                eprintln!("chaos: client {n}: {e:?}");
            }
            // Committed or not: the history table (written in the same transaction) knows;
            // this client re-reads what it has.
            db = target.reconnect();
        }
        (accounts, contacts) = mine(&target, &mut db, base);
    }
    ops
}

fn commit(db: &mut Client, stmts: &[(String, Vec<Option<String>>)], hist: &Hist) -> Result<(), postgres::Error> {
    let mut tx = db.transaction()?;
    for (sql, args) in stmts {
        let params: Vec<&(dyn postgres::types::ToSql + Sync)> = args.iter().map(|a| a as _).collect();
        tx.execute(sql.as_str(), &params)?;
    }
    let tbl: Vec<&str> = hist.iter().map(|h| h.0).collect();
    let pk: Vec<i64> = hist.iter().map(|h| h.1).collect();
    let field: Vec<&str> = hist.iter().map(|h| h.2).collect();
    let value: Vec<Option<String>> = hist.iter().map(|h| h.3.clone()).collect();
    tx.execute(
        "INSERT INTO chaos_history (tbl, pk, field, value) SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[])",
        &[&tbl, &pk, &field, &value],
    )?;
    tx.commit()
}

/// This client's accounts and (contact, account) pairs as they are now.
fn mine(target: &Target, db: &mut Client, base: i64) -> (Vec<i64>, Vec<(i64, i64)>) {
    loop {
        let read = (|| -> Result<_, postgres::Error> {
            let a = db.query("SELECT id FROM accounts WHERE id > $1 AND id < $1 + 1000000 ORDER BY id", &[&base])?;
            let c = db.query(
                "SELECT id, account_id FROM contacts WHERE id > $1 AND id < $1 + 1000000 AND account_id IS NOT NULL ORDER BY id",
                &[&base],
            )?;
            Ok((a.iter().map(|r| r.get(0)).collect(), c.iter().map(|r| (r.get(0), r.get(1))).collect()))
        })();
        match read {
            Ok(v) => return v,
            Err(_) => *db = target.reconnect(),
        }
    }
}

/// Salesforce-side writes, Industry only (a field no local client writes): the last value
/// Salesforce accepted per record Id, `None` when a call's outcome is unknown.
pub type SfWrites = Arc<Mutex<HashMap<String, Option<String>>>>;

const INDUSTRIES: [&str; 3] = ["Energy", "Retail", "Banking"];

/// Until `stop`: every 50-250 ms a REST PATCH of one account's Industry, or (one in five) a
/// Bulk API 2.0 update of up to five. Returns the number of writes attempted.
pub fn salesforce_writer(emu_url: String, seed: u64, stop: Arc<AtomicBool>, writes: SfWrites) -> usize {
    let mut rng = fastrand::Rng::with_seed(seed ^ 0x5f5f);
    let login = || loop {
        match SfRest::login(&emu_url, sfsync_e2e::DEFAULT_CLIENT_ID, sfsync_e2e::DEFAULT_CLIENT_SECRET) {
            Ok(sf) => return sf,
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let mut sf = login();
    let mut ids: Vec<String> = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(rng.u64(50..250)));
        if ids.is_empty() || rng.u32(0..10) == 0 {
            match sf.try_request("GET", "query?q=SELECT+Id+FROM+Account+WHERE+Postgres_Id__c+%21%3D+null+ORDER+BY+Id", None) {
                Ok((200, page)) => {
                    ids = page["records"].as_array().into_iter().flatten().filter_map(|r| r["Id"].as_str().map(String::from)).collect()
                }
                Ok((401, _)) => sf = login(),
                _ => {}
            }
            continue;
        }
        n += 1;
        let value = INDUSTRIES[rng.usize(..INDUSTRIES.len())].to_string();
        if rng.u32(0..5) > 0 {
            let id = ids[rng.usize(..ids.len())].clone();
            match sf.try_request("PATCH", &format!("sobjects/Account/{id}"), Some(&json!({"Industry": value}))) {
                Ok((204, _)) => {
                    writes.lock().unwrap().insert(id, Some(value));
                }
                Ok((401, _)) => sf = login(),
                // An injected fault answers before the write is made: nothing changed.
                Ok(_) | Err(_) => {}
            }
        } else {
            let picked: Vec<String> = (0..rng.usize(1..=5)).map(|_| ids[rng.usize(..ids.len())].clone()).collect();
            let mut picked_unique = picked.clone();
            picked_unique.sort();
            picked_unique.dedup();
            match bulk_update(&sf, &picked_unique, &value) {
                Bulk::Done(ok) => {
                    let mut w = writes.lock().unwrap();
                    for id in ok {
                        w.insert(id, Some(value.clone()));
                    }
                }
                Bulk::Unknown => {
                    let mut w = writes.lock().unwrap();
                    for id in picked_unique {
                        w.insert(id, None);
                    }
                }
                Bulk::NotRun => {}
                Bulk::Session => sf = login(),
            }
        }
    }
    n
}

enum Bulk {
    Done(Vec<String>),
    Unknown,
    NotRun,
    Session,
}

/// A Bulk API 2.0 update job setting Industry on `ids`; the Ids it reports successful.
fn bulk_update(sf: &SfRest, ids: &[String], value: &str) -> Bulk {
    let spec = json!({"object": "Account", "operation": "update", "contentType": "CSV", "lineEnding": "LF"});
    let job = match sf.try_request("POST", "jobs/ingest", Some(&spec)) {
        Ok((200, job)) => job["id"].as_str().unwrap_or_default().to_string(),
        Ok((401, _)) => return Bulk::Session,
        _ => return Bulk::NotRun,
    };
    let csv = format!("Id,Industry\n{}\n", ids.iter().map(|i| format!("{i},{value}")).collect::<Vec<_>>().join("\n"));
    if !matches!(sf.try_put_text(&format!("jobs/ingest/{job}/batches"), "text/csv", csv), Ok(201)) {
        return Bulk::NotRun;
    }
    match sf.try_request("PATCH", &format!("jobs/ingest/{job}"), Some(&json!({"state": "UploadComplete"}))) {
        Ok((200, _)) => {}
        _ => return Bulk::NotRun, // an injected fault answers before the job is closed
    }
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        if let Ok((200, info)) = sf.try_request("GET", &format!("jobs/ingest/{job}"), None) {
            match info["state"].as_str() {
                Some("JobComplete") => break,
                Some("Failed") | Some("Aborted") => return Bulk::Unknown,
                _ => {}
            }
        }
    }
    for _ in 0..50 {
        if let Ok((200, Value::String(csv))) = sf.try_request("GET", &format!("jobs/ingest/{job}/successfulResults"), None) {
            return Bulk::Done(csv.lines().skip(1).filter_map(|l| l.split(',').next()).map(|s| s.trim_matches('"').to_string()).collect());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Bulk::Unknown
}
