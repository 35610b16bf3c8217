//! The chaos suite's checker: the expected state derived from the committed history (what
//! each side committed, in order), compared with both sides once the sync has settled.

use std::collections::{BTreeMap, HashMap};

use sfsync_e2e::postgres::Client;
use sfsync_e2e::{SfRest, Value};

use super::workload::SfWrites;

/// What one comparison found wrong, by kind: the counterexample names table, key, field,
/// expected and actual.
#[derive(Default, Debug)]
pub struct Findings {
    /// A field (in Postgres or Salesforce) holding something other than the last committed value.
    pub lost: Vec<String>,
    /// More than one Salesforce record for one Postgres key.
    pub duplicated: Vec<String>,
    /// A row deleted locally still in Salesforce.
    pub lost_deletes: Vec<String>,
    /// A row that exists locally without its one Salesforce record (or a wrong link).
    pub missing: Vec<String>,
    /// Outbox left, errors left, verify() not clean.
    pub unsettled: Vec<String>,
}

impl Findings {
    pub fn is_clean(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.lost_deletes.is_empty()
            && self.missing.is_empty()
            && self.unsettled.is_empty()
    }

    pub fn first(&self) -> Option<&String> {
        self.lost.first().or(self.duplicated.first()).or(self.lost_deletes.first()).or(self.missing.first()).or(self.unsettled.first())
    }
}

/// A synced table, its object, and its local fields: (column, Salesforce field).
type Table = (&'static str, &'static str, &'static [(&'static str, &'static str)]);

const FIELDS: [Table; 2] = [
    ("accounts", "Account", &[("name", "Name")]),
    ("contacts", "Contact", &[("last_name", "LastName"), ("email", "Email"), ("account_id", "AccountId")]),
];

/// (table, key) -> field -> last committed value; `_exists` says whether the row is there.
type Expected = BTreeMap<(String, i64), HashMap<String, Option<String>>>;

fn expected(db: &mut Client) -> Result<Expected, String> {
    let rows = db.query("SELECT tbl, pk, field, value FROM chaos_history ORDER BY seq", &[]).map_err(|e| e.to_string())?;
    let mut exp = Expected::new();
    for r in rows {
        exp.entry((r.get(0), r.get(1))).or_default().insert(r.get(2), r.get(3));
    }
    Ok(exp)
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Compares both sides with the history and each other. `Err`: a side could not be read.
pub fn compare(db: &mut Client, sf: &SfRest, sf_writes: &SfWrites) -> Result<Findings, String> {
    // The server's message, not just "db error": what failed is the counterexample.
    let q = |db: &mut Client, sql: &str| {
        db.query(sql, &[]).map_err(|e| format!("{sql}: {}", e.as_db_error().map_or_else(|| e.to_string(), |d| d.message().to_string())))
    };
    let mut f = Findings::default();
    let exp = expected(db)?;
    let outbox: i64 = q(db, "SELECT count(*) FROM sfsync.outbox")?[0].get(0);
    if outbox > 0 {
        f.unsettled.push(format!("{outbox} outbox entries left"));
    }
    for r in q(db, "SELECT \"table\"::text, key, error_code, message FROM sfsync.errors")? {
        let (t, k, c, m): (String, Option<String>, Option<String>, Option<String>) = (r.get(0), r.get(1), r.get(2), r.get(3));
        f.unsettled.push(format!("error left: {t} {k:?} {c:?} {m:?}"));
    }
    // Postgres key -> Salesforce Id of the accounts, for the contacts' lookup.
    let mut account_sfid: HashMap<String, String> = HashMap::new();
    for (tbl, sobject, fields) in FIELDS {
        let sql = format!("SELECT id, sfid::text, sfsync.external_key('{tbl}', id::text), to_jsonb(t)::text FROM {tbl} t ORDER BY id",);
        let mut local: HashMap<i64, (Option<String>, Value)> = HashMap::new();
        let mut ext_of: HashMap<String, i64> = HashMap::new();
        for r in q(db, &sql)? {
            let (id, sfid, ext, row): (i64, Option<String>, String, String) = (r.get(0), r.get(1), r.get(2), r.get(3));
            let row: Value = sfsync_e2e::serde_json::from_str(&row).map_err(|e| e.to_string())?;
            ext_of.insert(ext, id);
            if tbl == "accounts" {
                if let Some(s) = &sfid {
                    account_sfid.insert(id.to_string(), s.clone());
                }
            }
            local.insert(id, (sfid, row));
        }
        // External keys of rows deleted locally too.
        let sql = format!("SELECT DISTINCT pk, sfsync.external_key('{tbl}', pk::text) FROM chaos_history WHERE tbl = '{tbl}'");
        for r in q(db, &sql)? {
            ext_of.insert(r.get(1), r.get(0));
        }
        let sf_fields: Vec<&str> = fields.iter().map(|(_, s)| *s).collect();
        let extra = if tbl == "accounts" { ", Industry, Rating" } else { "" };
        let soql = format!("SELECT Id, Postgres_Id__c, {}{extra} FROM {sobject}", sf_fields.join(", "));
        let records = sf.query(&soql);
        let mut by_key: HashMap<i64, Vec<&Value>> = HashMap::new();
        for rec in &records {
            match rec["Postgres_Id__c"].as_str().and_then(|k| ext_of.get(k)) {
                Some(pk) => by_key.entry(*pk).or_default().push(rec),
                None => f.missing.push(format!("{sobject} {} carries an unknown key {}", rec["Id"], rec["Postgres_Id__c"])),
            }
        }
        for ((t, pk), want) in exp.iter().filter(|((t, _), _)| t == tbl) {
            let exists = want.get("_exists").cloned().flatten().as_deref() == Some("1");
            let recs = by_key.get(pk).cloned().unwrap_or_default();
            if recs.len() > 1 {
                f.duplicated.push(format!(
                    "{t} {pk}: {} Salesforce records {:?}",
                    recs.len(),
                    recs.iter().map(|r| &r["Id"]).collect::<Vec<_>>()
                ));
            }
            if !exists {
                if local.contains_key(pk) {
                    f.lost_deletes.push(format!("{t} {pk}: deleted locally, still in Postgres"));
                }
                if let Some(r) = recs.first() {
                    f.lost_deletes.push(format!("{t} {pk}: deleted locally, still in Salesforce as {}", r["Id"]));
                }
                continue;
            }
            let Some((sfid, row)) = local.get(pk) else {
                f.lost.push(format!("{t} {pk}: committed, missing in Postgres"));
                continue;
            };
            let Some(rec) = recs.first() else {
                f.missing.push(format!("{t} {pk}: no Salesforce record"));
                continue;
            };
            if sfid.as_deref() != rec["Id"].as_str() {
                f.missing.push(format!("{t} {pk}: sfid {sfid:?}, Salesforce record {}", rec["Id"]));
            }
            for (col, field) in fields.iter() {
                let want_v = want.get(*col).cloned().flatten();
                let pg = text(&row[*col]);
                if pg != want_v {
                    f.lost.push(format!("{t} {pk}.{col}: expected {want_v:?} (last committed), Postgres has {pg:?}"));
                }
                let sf_v = text(&rec[*field]);
                let sf_want =
                    if *col == "account_id" { want_v.as_ref().and_then(|a| account_sfid.get(a).cloned()) } else { want_v.clone() };
                if sf_v != sf_want {
                    f.lost.push(format!("{t} {pk}.{col}: expected {sf_want:?} (last committed), Salesforce {field} has {sf_v:?}"));
                }
            }
            if tbl == "accounts" {
                // Salesforce's own fields: its last accepted write, the same in Postgres.
                for (col, field) in [("industry", "Industry"), ("rating", "Rating")] {
                    let (pg, sf_v) = (text(&row[col]), text(&rec[field]));
                    if pg != sf_v {
                        f.lost.push(format!("{t} {pk}.{col}: Salesforce {field} has {sf_v:?}, Postgres {pg:?}"));
                    }
                }
                let id = rec["Id"].as_str().unwrap_or_default();
                if let Some(Some(w)) = sf_writes.lock().unwrap().get(id) {
                    if text(&rec["Industry"]).as_deref() != Some(w.as_str()) {
                        f.lost.push(format!("{t} {pk}.industry: Salesforce last accepted {w:?}, has {:?}", rec["Industry"]));
                    }
                }
            }
        }
        let v: String = q(db, &format!("SELECT sfsync.verify('{tbl}')::text"))?[0].get(0);
        let v: Value = sfsync_e2e::serde_json::from_str(&v).map_err(|e| e.to_string())?;
        if v["ok"] != Value::Bool(true) {
            f.unsettled.push(format!("verify('{tbl}'): {v}"));
        }
    }
    Ok(f)
}
