//! The set-based apply of whole records (a poll page, a REST backfill batch, created or
//! deleted records from change events, the rows a columnar batch can't take), inside the
//! caller's transaction. Every write is guarded by IS DISTINCT FROM, so re-reading a
//! record changes nothing, and rows with a local change on its way out are left to the
//! conflict policy (`conflicts`). The table statements run as the table's owner, with what
//! the catalog holds back looked up first (`held`).

use super::{advance, clear_errors, conflicts, deletes, held, Summary};
use crate::capture::Applying;
use crate::error::{Result, SyncError};
use crate::plan::convert;
use crate::spi_util;
use crate::sync::rewritten;
use crate::sync::Mapping;
use pgrx::spi::quote_identifier;
use salesforce::Record;
use serde_json::{Map, Value};

/// Key under which a record's Postgres_Id__c travels in the page (not a column name).
const PGID: &str = "__sfsync_pgid";

fn str_field<'a>(r: &'a Record, f: &str) -> Option<&'a str> {
    r.get(f).and_then(Value::as_str)
}

fn page_of(live: &[Value]) -> pgrx::datum::DatumWithOid<'static> {
    spi_util::jsonb(Value::Array(live.to_vec()))
}

/// Records whose external ID was changed in Salesforce (same Id, another key of ours): the
/// linked row takes the new key, as a local key change re-keys the record. A new key held
/// by another row is that record's error (naming both keys); a row with a local change
/// pending keeps its key until the change is out.
fn rekey(m: &Mapping, live: &[Value], pending: &[String]) -> Result<()> {
    let (tbl, pk, ty) = (&m.table, m.pk_ident(), &m.pk_type);
    let taken = format!(
        "SELECT jsonb_agg(jsonb_build_array(p.sfid, t.{pk}::text, p.{PGID})) FROM jsonb_to_recordset($1) AS p(sfid text, {PGID} text)
         JOIN {tbl} t ON t.sfid = p.sfid AND t.{pk} IS DISTINCT FROM p.{PGID}::{ty}
         JOIN {tbl} x ON x.{pk} = p.{PGID}::{ty} AND x.sfid IS DISTINCT FROM p.sfid
         WHERE p.{PGID} IS NOT NULL"
    );
    if let Some(Value::Array(clashes)) = spi_util::json(&taken, &[page_of(live)])? {
        if let Some([sfid, old, new]) = clashes.first().and_then(Value::as_array).map(Vec::as_slice) {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            return Err(SyncError::Invalid(format!(
                "Salesforce record {} now has {} = key {} (it was key {} here), but key {} is another row of {tbl}; \
                 the row keeps key {} until the other row's key or the record's {} changes",
                s(sfid),
                m.external_id,
                s(new),
                s(old),
                s(new),
                s(old),
                m.external_id
            )));
        }
    }
    let sql = format!(
        "UPDATE {tbl} t SET {pk} = p.{PGID}::{ty} FROM jsonb_to_recordset($1) AS p(sfid text, {PGID} text)
         WHERE p.{PGID} IS NOT NULL AND t.sfid = p.sfid AND t.{pk} IS DISTINCT FROM p.{PGID}::{ty} AND t.{pk}::text <> ALL($2)"
    );
    m.as_owner(|| spi_util::exec(&sql, &[page_of(live), pending.to_vec().into()]))?;
    Ok(())
}

/// The set-based apply of some records, inside the current transaction.
pub fn apply(m: &Mapping, all: &[Mapping], records: &[Record], mark: Option<&str>) -> Result<Summary> {
    let _applying = Applying::start();
    // Records a write-through transaction still holds are deferred: left out here, their
    // errors (source::retry reads them again) kept, and the mark not moved past them (the
    // poll reads the page again).
    let ours = |r: &Record| str_field(r, &m.external_id).and_then(|v| m.key_of(v)).map(String::from);
    let pairs: Vec<(String, Option<String>)> = records.iter().filter_map(|r| Some((str_field(r, "Id")?.to_string(), ours(r)))).collect();
    let mut deferred = held::locked(m, &pairs)?;
    // Rows a local writer holds right now, likewise; the others stay locked until commit.
    deferred.extend(held::busy(m, &pairs)?);
    let mark = if deferred.is_empty() { mark } else { None };
    let mut live = Vec::new();
    let mut gone = Vec::new();
    for r in records {
        let Some(id) = str_field(r, "Id") else { continue };
        if deferred.iter().any(|d| d == id) {
            continue;
        }
        if r.get("IsDeleted").and_then(Value::as_bool).unwrap_or(false) {
            gone.push(id.to_string());
            continue;
        }
        let mut row = Map::new();
        row.insert("sfid".into(), Value::String(id.to_string()));
        let ext = match r.get(&m.external_id) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Null) | Some(Value::String(_)) | None => None,
            Some(other) => Some(other.to_string()),
        };
        if let Some(ext) = ext {
            match m.key_of(&ext) {
                Some(key) => {
                    row.insert(PGID.into(), Value::String(key.to_string()));
                }
                // Another table's or database's record (plan::namespace): a table that
                // pushes leaves it alone; a pull-only table (a mirror) still holds it, but
                // never under the key that other mapping wrote.
                None if m.pushes() => {
                    crate::sync::others::note(m.id, id);
                    continue;
                }
                None => {}
            }
        }
        for c in &m.columns {
            let v = r.get(&c.field).map(|v| convert::from_sf(c, v)).unwrap_or(Value::Null);
            row.insert(c.column.clone(), v);
        }
        live.push(Value::Object(row));
    }
    translate_parents(m, all, &mut live)?;
    let mut s = Summary { fetched: records.len(), deferred: deferred.len(), ..Default::default() };
    let tbl = &m.table;
    let pk = m.pk_ident();
    let ty = &m.pk_type;
    let cols: Vec<String> = m.columns.iter().map(|c| quote_identifier(&c.column)).collect();
    let page = page_of(&live);
    if !live.is_empty() {
        // 1. Link rows we pushed whose Id never made it back (crash before the write-back).
        let sql = format!(
            "UPDATE {tbl} t SET sfid = p.sfid FROM jsonb_to_recordset($1) AS p(sfid text, {PGID} text)
             WHERE p.{PGID} IS NOT NULL AND t.sfid IS NULL AND t.{pk} = p.{PGID}::{ty}
               AND NOT EXISTS (SELECT 1 FROM {tbl} x WHERE x.sfid = p.sfid)"
        );
        m.as_owner(|| spi_util::exec(&sql, &[page]))?;
        // Rows with a pending local change: the mapping's conflict policy decides.
        s.updated += conflicts::resolve(m, records, &live)?;
        let text = |r: &Value, k: &str| r.get(k).and_then(Value::as_str).map(String::from);
        let sfids: Vec<String> = live.iter().filter_map(|r| text(r, "sfid")).collect();
        let keys: Vec<String> = live.iter().filter_map(|r| text(r, PGID)).collect();
        let held = held::lookup(m, &sfids, &keys)?;
        rekey(m, &live, &held.pending)?;
        if !cols.is_empty() {
            // 2. Update changed rows, except those with a local change still on its way out.
            let set = cols.join(", ");
            let src: Vec<String> = cols.iter().map(|c| format!("p.{c}")).collect();
            let src = src.join(", ");
            let tgt: Vec<String> = cols.iter().map(|c| format!("t.{c}")).collect();
            let tgt = tgt.join(", ");
            // A user's BEFORE trigger may write other values than ours: those are queued
            // (`rewritten`).
            let sql = rewritten::wrap(&format!(
                "UPDATE {tbl} t SET ({set}) = ROW({src}) FROM jsonb_populate_recordset(NULL::{tbl}, $1) AS p
                 WHERE t.sfid = p.sfid AND ROW({tgt}) IS DISTINCT FROM ROW({src}) AND t.{pk}::text <> ALL($2)
                 RETURNING {ret}",
                ret = rewritten::returning(m, "t", |q, _| format!("p.{q}"))
            ));
            let args = [spi_util::jsonb(Value::Array(live.clone())), held.pending.clone().into()];
            s.updated += rewritten::run(m, &sql, &args)?;
        }
        // 3. Insert records we don't have: with their Postgres key when they carry one,
        //    else with the key's default. Not while a local change or delete of them waits.
        let mut ins_cols = cols.clone();
        ins_cols.push("sfid".into());
        let list = ins_cols.join(", ");
        let src: Vec<String> = ins_cols.iter().map(|c| format!("p.{c}")).collect();
        let src = src.join(", ");
        let with_key: Vec<Value> = live
            .iter()
            .map(|r| {
                let mut r = r.as_object().cloned().unwrap_or_default();
                if let Some(pgid) = r.get(PGID).cloned() {
                    r.insert(m.pk_column.clone(), pgid);
                }
                Value::Object(r)
            })
            .collect();
        // Keyed rows take the Postgres key they carry; the others get the key's default.
        let insert = |keyed: bool| {
            let (keycol, keysrc, test) = if keyed {
                (format!(", {pk}"), format!(", p.{pk}"), format!("NOT NULL AND p.{pk}::text <> ALL($3)"))
            } else {
                (String::new(), String::new(), "NULL".to_string())
            };
            // Compared with what we meant to write, by Id (an INSERT's RETURNING sees only
            // the row written).
            rewritten::wrap_after(
                &format!(
                    "ins AS (
                         INSERT INTO {tbl} ({list}{keycol})
                         SELECT {src}{keysrc} FROM jsonb_populate_recordset(NULL::{tbl}, $1) AS p
                         WHERE p.{pk} IS {test} AND p.sfid <> ALL($2)
                           AND NOT EXISTS (SELECT 1 FROM {tbl} x WHERE x.sfid = p.sfid)
                         RETURNING *), "
                ),
                &format!(
                    "SELECT {ret} FROM ins JOIN jsonb_populate_recordset(NULL::{tbl}, $1) AS p ON p.sfid = ins.sfid",
                    ret = rewritten::returning(m, "ins", |q, _| format!("p.{q}"))
                ),
            )
        };
        let rows = Value::Array(with_key);
        for keyed in [true, false] {
            let args = [spi_util::jsonb(rows.clone()), held.sfids.clone().into(), held.keys.clone().into()];
            let sql = insert(keyed);
            s.inserted += rewritten::run(m, &sql, &args)?;
        }
    }
    let ids: Vec<String> =
        records.iter().filter_map(|r| str_field(r, "Id").map(String::from)).filter(|id| !deferred.contains(id)).collect();
    clear_errors(m, ids.into())?;
    // Deleted in Salesforce: per on_delete; a delete blocked locally is reported, not fatal.
    s.deleted = deletes::pulled(m, &gone)?;
    advance(m, mark, s.inserted + s.updated + s.deleted)?;
    Ok(s)
}

/// Lookup fields arrive as Salesforce Ids; the foreign key columns hold the parent's
/// Postgres key. A parent we don't have (yet) leaves the column NULL.
pub fn translate_parents(m: &Mapping, all: &[Mapping], rows: &mut [Value]) -> Result<()> {
    for p in &m.parents {
        let ids: Vec<String> = rows.iter().filter_map(|r| r.get(&p.column).and_then(Value::as_str).map(String::from)).collect();
        if ids.is_empty() {
            continue;
        }
        let Some(parent) = all.iter().find(|x| x.id == p.mapping_id) else { continue };
        let sql = format!(
            "SELECT jsonb_object_agg(t.sfid, t.{pk}::text) FROM {tbl} t WHERE t.sfid = ANY($1)",
            pk = parent.pk_ident(),
            tbl = parent.table
        );
        let keys = match spi_util::json(&sql, &[ids.into()])? {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        for r in rows.iter_mut() {
            if let Some(obj) = r.as_object_mut() {
                if let Some(Value::String(id)) = obj.get(&p.column) {
                    let key = keys.get(id).cloned().unwrap_or(Value::Null);
                    obj.insert(p.column.clone(), key);
                }
            }
        }
    }
    Ok(())
}
