//! sfsync.retry / sfsync.discard: what an operator does with parked records.

use crate::error::{OrRaise, Result, SyncError};
use crate::privilege;
use crate::spi_util;
use crate::sync::archive;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::PgRelation;

/// Sends parked (`failed`) entries, and entries waiting out a backoff, again now: of one
/// record (`tbl` and `key`), one table, or every table (the caller may act on). Returns how
/// many entries.
#[pg_extern(volatile, parallel_unsafe)]
fn retry(tbl: default!(Option<PgRelation>, "NULL"), key: default!(Option<&str>, "NULL")) -> i64 {
    let oid = tbl.map(release);
    if let Some(oid) = oid {
        privilege::require_table(oid.into(), "sfsync.retry").or_raise();
    }
    let scope = if oid.is_none() { privilege::permitted_mappings().or_raise() } else { None };
    privilege::as_extension_owner(|| retry_entries(oid, key, scope)).or_raise()
}

/// Drops the parked entries of one record (or of a whole table) without sending them;
/// they are archived as 'discarded' and their rows in sfsync.errors go. Returns how many.
#[pg_extern(volatile, parallel_unsafe)]
fn discard(tbl: PgRelation, key: default!(Option<&str>, "NULL")) -> i64 {
    let oid = release(tbl);
    privilege::require_table(oid.into(), "sfsync.discard").or_raise();
    privilege::as_extension_owner(|| discard_entries(oid, key)).or_raise()
}

/// The relation's oid, closing our reference to it.
fn release(tbl: PgRelation) -> u32 {
    let oid = tbl.oid().to_u32();
    drop(tbl);
    oid
}

/// The mapping of table `oid` and the table's name for messages.
fn mapping_of(oid: u32) -> Result<(i32, String)> {
    let args: Vec<DatumWithOid> = vec![i64::from(oid).into()];
    let name = Spi::get_one_with_args::<String>("SELECT $1::bigint::oid::regclass::text", &args)?.unwrap_or_else(|| oid.to_string());
    let id = Spi::get_one_with_args::<i32>("SELECT (SELECT id FROM sfsync.mappings WHERE tbl = $1::bigint::oid::regclass)", &args)?
        .ok_or_else(|| SyncError::NotFound(format!("table {name} is not synced")))?;
    Ok((id, name))
}

/// Whether anything of this record is queued or in error (so "0 entries" is not a typo).
fn record_known(mapping_id: i32, key: &str) -> Result<bool> {
    let args: Vec<DatumWithOid> = vec![mapping_id.into(), key.into()];
    Ok(Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM sfsync.outbox WHERE mapping_id = $1 AND pk = $2)
             OR EXISTS (SELECT 1 FROM sfsync.record_errors WHERE mapping_id = $1 AND pk = $2 AND direction = 'push')",
        &args,
    )?
    .unwrap_or(false))
}

fn unknown_key(table: &str, key: &str) -> SyncError {
    SyncError::NotFound(format!("{table} has no queued or failed change for key '{key}' (see sfsync.errors)"))
}

/// `scope_ids`: without a table, the mappings whose entries are retried (None: every one).
pub(crate) fn retry_entries(oid: Option<u32>, key: Option<&str>, scope_ids: Option<Vec<i32>>) -> Result<i64> {
    let scope = match (oid, key) {
        (None, Some(_)) => return Err(SyncError::Invalid("retry: key needs tbl, the table the key belongs to".into())),
        (None, None) => None,
        (Some(oid), _) => Some(mapping_of(oid)?),
    };
    let args: Vec<DatumWithOid> = vec![scope.as_ref().map(|s| s.0).into(), key.into(), scope_ids.into()];
    let n = spi_util::json(
        "WITH moved AS (
             UPDATE sfsync.outbox o SET state = 'pending', next_attempt_at = '-infinity', attempts = 0
             WHERE ($1::int IS NULL OR o.mapping_id = $1) AND ($2::text IS NULL OR o.pk = $2)
               AND ($3::int[] IS NULL OR o.mapping_id = ANY ($3))
               AND (o.state = 'failed' OR o.next_attempt_at > now())
               AND (o.claimed_until IS NULL OR o.claimed_until < now())
             RETURNING o.mapping_id, o.pk
         ), errors AS (
             UPDATE sfsync.record_errors e SET next_retry_at = now()
             FROM (SELECT DISTINCT mapping_id, pk FROM moved) r
             WHERE e.direction = 'push' AND e.mapping_id = r.mapping_id AND e.pk = r.pk
         )
         SELECT to_jsonb(count(*)) FROM moved",
        &args,
    )?
    .and_then(|v| v.as_i64())
    .unwrap_or(0);
    if let (Some((mapping_id, table)), Some(key), 0) = (&scope, key, n) {
        if !record_known(*mapping_id, key)? {
            return Err(unknown_key(table, key));
        }
    }
    if n > 0 {
        Spi::run("SELECT sfsync.wake_at_commit()")?;
    }
    Ok(n)
}

pub(crate) fn discard_entries(oid: u32, key: Option<&str>) -> Result<i64> {
    let (mapping_id, table) = mapping_of(oid)?;
    let args: Vec<DatumWithOid> = vec![mapping_id.into(), key.into(), archive::enabled().into()];
    // The error rows are read for the archive before they are deleted (one snapshot).
    let n = spi_util::json(
        &format!(
            "WITH gone AS (
                 DELETE FROM sfsync.outbox o
                 WHERE o.mapping_id = $1 AND ($2::text IS NULL OR o.pk = $2) AND o.state = 'failed'
                   AND (o.claimed_until IS NULL OR o.claimed_until < now())
                 RETURNING o.*
             ), archived AS (
                 INSERT INTO sfsync.outbox_archive ({cols})
                 SELECT g.id, g.mapping_id, {table_name}, g.op, g.pk, g.sfid, g.changed, g.txid, g.captured_at, g.attempts,
                        'discarded', g.sfid, e.error_code || ': ' || e.message
                 FROM gone g
                 LEFT JOIN sfsync.record_errors e ON e.mapping_id = g.mapping_id AND e.pk = g.pk AND e.direction = 'push'
                 WHERE $3
             ), cleared AS (
                 DELETE FROM sfsync.record_errors e USING (SELECT DISTINCT pk FROM gone) g
                 WHERE e.mapping_id = $1 AND e.direction = 'push' AND e.pk = g.pk
             )
             SELECT to_jsonb(count(*)) FROM gone",
            cols = archive::ARCHIVE_COLUMNS,
            table_name = archive::table_name_of("g.mapping_id"),
        ),
        &args,
    )?
    .and_then(|v| v.as_i64())
    .unwrap_or(0);
    if let (Some(key), 0) = (key, n) {
        // An error row whose entries are gone (e.g. settled by a later change) is stale:
        // discarding the record clears it. A key with neither is a mistake.
        let args: Vec<DatumWithOid> = vec![mapping_id.into(), key.into()];
        let stale = spi_util::exec(
            "DELETE FROM sfsync.record_errors e WHERE e.mapping_id = $1 AND e.pk = $2 AND e.direction = 'push'
               AND NOT EXISTS (SELECT 1 FROM sfsync.outbox o WHERE o.mapping_id = $1 AND o.pk = $2)",
            &args,
        )?;
        if stale == 0 && !record_known(mapping_id, key)? {
            return Err(unknown_key(&table, key));
        }
    }
    Ok(n)
}
