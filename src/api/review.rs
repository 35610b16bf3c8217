//! sfsync.approve_delete / sfsync.reject_delete: deciding the deletes held in
//! sfsync.delete_review by mappings with `on_delete => 'review'`.

use crate::capture::Applying;
use crate::error::{OrRaise, Result, SyncError};
use crate::privilege;
use crate::spi_util;
use crate::sync::{load_mappings, Mapping};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::PgRelation;
use serde::Deserialize;
use serde_json::Value;

/// Applies held delete `id`: a Salesforce-side delete deletes the local row (not captured);
/// a local delete is queued for the push, which deletes the Salesforce record. True when
/// it was applied, false when it had already been decided.
#[pg_extern(volatile, parallel_unsafe)]
fn approve_delete(id: i64) -> bool {
    decide_one(id, true, "sfsync.approve_delete").or_raise()
}

/// Drops held delete `id`, keeping the record: after a Salesforce-side delete the local row
/// stays, unlinked (`sfid` NULL); after a local delete the row is restored from its snapshot
/// (linked to the Salesforce record, which was never touched). True when it was rejected,
/// false when it had already been decided.
#[pg_extern(volatile, parallel_unsafe)]
fn reject_delete(id: i64) -> bool {
    decide_one(id, false, "sfsync.reject_delete").or_raise()
}

/// approve_delete for every undecided delete of one table. Returns how many.
#[pg_extern(volatile, parallel_unsafe)]
fn approve_deletes(tbl: PgRelation) -> i64 {
    let oid = tbl.oid();
    drop(tbl);
    privilege::require_table(oid, "sfsync.approve_deletes").or_raise();
    privilege::as_extension_owner(|| decide_all(oid.to_u32(), true)).or_raise()
}

/// reject_delete for every undecided delete of one table. Returns how many.
#[pg_extern(volatile, parallel_unsafe)]
fn reject_deletes(tbl: PgRelation) -> i64 {
    let oid = tbl.oid();
    drop(tbl);
    privilege::require_table(oid, "sfsync.reject_deletes").or_raise();
    privilege::as_extension_owner(|| decide_all(oid.to_u32(), false)).or_raise()
}

#[derive(Deserialize)]
struct Held {
    mapping_id: i32,
    key: String,
    sfid: Option<String>,
    origin: String,
    row: Option<Value>,
    decided: bool,
}

/// One held delete, for a caller who may act on its table.
fn decide_one(id: i64, approve: bool, function: &str) -> Result<bool> {
    let table = privilege::as_extension_owner(|| {
        Spi::get_one_with_args::<pgrx::pg_sys::Oid>("SELECT (SELECT \"table\"::oid FROM sfsync.delete_review WHERE id = $1)", &[id.into()])
    })?
    .ok_or_else(|| unknown(id))?;
    privilege::require_table(table, function)?;
    privilege::as_extension_owner(|| decide(id, approve))
}

fn unknown(id: i64) -> SyncError {
    SyncError::NotFound(format!("held delete {id} does not exist (see sfsync.delete_review)"))
}

fn decide_all(oid: u32, approve: bool) -> Result<i64> {
    let args: Vec<DatumWithOid> = vec![i64::from(oid).into()];
    let name = Spi::get_one_with_args::<String>("SELECT $1::bigint::oid::regclass::text", &args)?.unwrap_or_else(|| oid.to_string());
    let ids = spi_util::json(
        "SELECT COALESCE(jsonb_agg(r.id ORDER BY r.id) FILTER (WHERE r.id IS NOT NULL), '[]') FROM sfsync.mappings m
         LEFT JOIN sfsync.delete_review r ON r.mapping_id = m.id AND r.decided_at IS NULL
         WHERE m.tbl = $1::bigint::oid::regclass HAVING count(m.id) > 0",
        &args,
    )?
    .ok_or_else(|| SyncError::NotFound(format!("table {name} is not synced")))?;
    let ids: Vec<i64> = serde_json::from_value(ids).map_err(|e| SyncError::Spi(e.to_string()))?;
    let mut n = 0;
    for id in ids {
        if decide(id, approve)? {
            n += 1;
        }
    }
    Ok(n)
}

fn decide(id: i64, approve: bool) -> Result<bool> {
    let args: Vec<DatumWithOid> = vec![id.into()];
    let held = spi_util::json(
        "SELECT jsonb_build_object('mapping_id', mapping_id, 'key', key, 'sfid', sfid, 'origin', origin, 'row', \"row\",
                                   'decided', decided_at IS NOT NULL)
         FROM sfsync.delete_review WHERE id = $1 FOR UPDATE",
        &args,
    )?
    .ok_or_else(|| unknown(id))?;
    let held: Held = serde_json::from_value(held).map_err(|e| SyncError::Spi(format!("decoding sfsync.delete_review: {e}")))?;
    if held.decided {
        return Ok(false);
    }
    let m = load_mappings(None)?
        .into_iter()
        .find(|m| m.id == held.mapping_id)
        .ok_or_else(|| SyncError::NotFound(format!("held delete {id}: its table is no longer synced")))?;
    let _rows = match (held.origin.as_str(), approve) {
        ("salesforce", true) => m.as_owner(|| {
            let _applying = Applying::start();
            spi_util::exec(&format!("DELETE FROM {} WHERE sfid = $1", m.table), &[held.sfid.clone().into()])
        })?,
        ("salesforce", false) => m.as_owner(|| {
            let _applying = Applying::start();
            spi_util::exec(&format!("UPDATE {} SET sfid = NULL WHERE sfid = $1", m.table), &[held.sfid.clone().into()])
        })?,
        ("postgres", true) => {
            queue_delete(&m, &held)?;
            0
        }
        (_, _) => m.as_owner(|| restore(&m, &held))?,
    };
    let args: Vec<DatumWithOid> = vec![id.into(), (if approve { "approved" } else { "rejected" }).into()];
    spi_util::exec("UPDATE sfsync.delete_review SET decided_at = now(), decision = $2 WHERE id = $1", &args)?;
    Ok(true)
}

/// The push deletes the Salesforce record (an outbox entry bypasses the review trigger).
fn queue_delete(m: &Mapping, held: &Held) -> Result<()> {
    let args: Vec<DatumWithOid> = vec![m.id.into(), held.key.clone().into(), held.sfid.clone().into()];
    spi_util::exec("INSERT INTO sfsync.outbox (mapping_id, op, pk, sfid) VALUES ($1, 'delete', $2, $3)", &args)?;
    Spi::run("SELECT sfsync.wake_at_commit()")?;
    Ok(())
}

/// Puts the deleted row back as it was (not captured), unless its key or sfid is taken again.
fn restore(m: &Mapping, held: &Held) -> Result<usize> {
    let Some(row) = held.row.clone() else { return Ok(0) };
    let _applying = Applying::start();
    let sql = format!(
        "INSERT INTO {tbl} OVERRIDING SYSTEM VALUE SELECT * FROM jsonb_populate_record(NULL::{tbl}, $1) ON CONFLICT DO NOTHING",
        tbl = m.table
    );
    spi_util::exec(&sql, &[spi_util::jsonb(row)])
}
