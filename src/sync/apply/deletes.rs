//! Deletes the sink applies: records deleted in Salesforce (per the mapping's `on_delete`)
//! and records that stopped matching the mapping's filter.
//!
//! Local rows are deleted set-based inside a subtransaction; if that fails (a foreign key of
//! child rows, usually) each row is tried in its own subtransaction and the ones that fail
//! are reported in sfsync.errors (direction `pull`, the SQLSTATE's name as code, e.g.
//! FOREIGN_KEY_VIOLATION) while the rest of the page applies and the mark advances. A removed
//! row's errors and parked changes are cleared: nothing is left to retry.

use crate::error::Result;
use crate::plan::options::OnDelete;
use crate::spi_util::{self, subtransaction, Failure};
use crate::sync::{archive, Mapping};
use pgrx::datum::DatumWithOid;
use serde_json::json;

/// Records deleted in Salesforce (their Ids). `propagate`: the local rows go; `ignore`:
/// they stay; `review`: they stay and wait in sfsync.delete_review. Returns rows deleted.
pub fn pulled(m: &Mapping, sfids: &[String]) -> Result<usize> {
    if sfids.is_empty() {
        return Ok(0);
    }
    match m.options.on_delete {
        OnDelete::Ignore => Ok(0),
        OnDelete::Review => {
            hold(m, sfids)?;
            Ok(0)
        }
        OnDelete::Propagate => remove(m, sfids, "delete"),
    }
}

/// Queues Salesforce-side deletes of rows we have for review (once per record).
fn hold(m: &Mapping, sfids: &[String]) -> Result<()> {
    let sql = format!(
        "INSERT INTO sfsync.delete_review (mapping_id, \"table\", key, sfid, origin, \"row\")
         SELECT $1, m.tbl, t.{pk}::text, t.sfid, 'salesforce', to_jsonb(t)
         FROM {tbl} t JOIN sfsync.mappings m ON m.id = $1
         WHERE t.sfid = ANY($2)
         ON CONFLICT (mapping_id, origin, key) WHERE decided_at IS NULL DO NOTHING",
        pk = m.pk_ident(),
        tbl = m.table
    );
    let args: Vec<DatumWithOid> = vec![m.id.into(), sfids.to_vec().into()];
    spi_util::exec(&sql, &args)?;
    Ok(())
}

/// Deletes the local rows with these Salesforce Ids (not captured: the caller holds the
/// Applying guard). `operation` names it in sfsync.errors. Returns how many went.
pub fn remove(m: &Mapping, sfids: &[String], operation: &str) -> Result<usize> {
    if sfids.is_empty() {
        return Ok(0);
    }
    let sql = format!("DELETE FROM {} WHERE sfid = ANY($1)", m.table);
    let all = sfids.to_vec();
    let keys = keys_of(m, sfids)?;
    // As the table's owner: its triggers and foreign keys' actions run with its rights; what
    // they refuse is that record's error, as a blocking foreign key is.
    let mut failed: Vec<&String> = Vec::new();
    let n = match subtransaction(|| m.as_owner(|| spi_util::exec(&sql, &[all.clone().into()]))) {
        Ok(n) => n,
        Err(_) => {
            let mut n = 0;
            for id in sfids {
                let one = vec![id.clone()];
                match subtransaction(|| m.as_owner(|| spi_util::exec(&sql, &[one.clone().into()]))) {
                    Ok(k) => n += k,
                    Err(Failure { code, message }) => {
                        report(m, id, operation, &code, &message)?;
                        failed.push(id);
                    }
                }
            }
            n
        }
    };
    if n < keys.len() {
        // A BEFORE DELETE trigger returned NULL: the row stays, though Salesforce no longer
        // has it there. Said where a user looks, and tried again like a failed removal.
        for id in kept(m, sfids)?.iter().filter(|id| !failed.contains(id)) {
            let message = format!(
                "the record was removed on the Salesforce side ({operation}) but a trigger on {} kept the row; \
                 the removal is tried again until the row is gone",
                m.table
            );
            report(m, id, operation, KEPT_BY_TRIGGER, &message)?;
        }
    }
    clear_errors_of_removed(m, sfids, keys)?;
    Ok(n)
}

/// The error code of a row a trigger kept from being removed.
pub const KEPT_BY_TRIGGER: &str = "ROW_KEPT_BY_TRIGGER";

/// Which of these Salesforce Ids still have a row.
fn kept(m: &Mapping, sfids: &[String]) -> Result<Vec<String>> {
    let sql = format!("SELECT COALESCE(jsonb_agg(t.sfid), '[]') FROM {tbl} t WHERE t.sfid = ANY($1)", tbl = m.table);
    let ids = spi_util::json(&sql, &[sfids.to_vec().into()])?;
    Ok(ids.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default())
}

/// The local keys of the rows linked to these Salesforce Ids.
fn keys_of(m: &Mapping, sfids: &[String]) -> Result<Vec<String>> {
    let sql =
        format!("SELECT COALESCE(jsonb_agg(t.{pk}::text), '[]') FROM {tbl} t WHERE t.sfid = ANY($1)", pk = m.pk_ident(), tbl = m.table);
    let keys = spi_util::json(&sql, &[sfids.to_vec().into()])?;
    Ok(keys.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default())
}

/// A removed row has nothing left to retry: the errors of its record (either direction) go,
/// and so do its changes parked as failed (archived as `skipped`), except where the row is
/// still here (a delete that failed keeps its error).
fn clear_errors_of_removed(m: &Mapping, sfids: &[String], keys: Vec<String>) -> Result<()> {
    let sql = format!(
        "WITH parked AS (
             DELETE FROM sfsync.outbox o
             WHERE o.mapping_id = $1 AND o.pk = ANY($3) AND o.state = 'failed'
               AND (o.claimed_until IS NULL OR o.claimed_until < now())
               AND NOT EXISTS (SELECT 1 FROM {tbl} t WHERE t.{pk}::text = o.pk)
             RETURNING o.*
         ), archived AS (
             INSERT INTO sfsync.outbox_archive ({cols})
             SELECT g.id, g.mapping_id, {table_name}, g.op, g.pk, g.sfid, g.changed, g.txid, g.captured_at, g.attempts,
                    'skipped', g.sfid, 'the record was deleted in Salesforce'
             FROM parked g WHERE $4
         )
         DELETE FROM sfsync.record_errors e WHERE e.mapping_id = $1 AND (e.sfid = ANY($2) OR e.pk = ANY($3))
           AND NOT EXISTS (SELECT 1 FROM {tbl} t WHERE t.{pk}::text = e.pk OR t.sfid = e.sfid)",
        pk = m.pk_ident(),
        tbl = m.table,
        cols = archive::ARCHIVE_COLUMNS,
        table_name = archive::table_name_of("g.mapping_id"),
    );
    spi_util::exec(&sql, &[m.id.into(), sfids.to_vec().into(), keys.into(), archive::enabled().into()])?;
    Ok(())
}

fn report(m: &Mapping, sfid: &str, operation: &str, code: &str, message: &str) -> Result<()> {
    let sql = format!(
        "INSERT INTO sfsync.record_errors AS e (mapping_id, direction, pk, sfid, operation, error_code, message)
         SELECT $1, 'pull', COALESCE((SELECT t.{pk}::text FROM {tbl} t WHERE t.sfid = r.sfid), r.sfid), r.sfid, r.operation, r.code, r.message
         FROM jsonb_to_record($2) AS r(sfid text, operation text, code text, message text)
         ON CONFLICT (mapping_id, direction, pk) DO UPDATE SET sfid = EXCLUDED.sfid, operation = EXCLUDED.operation,
             error_code = EXCLUDED.error_code, message = EXCLUDED.message, attempts = e.attempts + 1, last_seen = now()",
        pk = m.pk_ident(),
        tbl = m.table
    );
    let row = json!({"sfid": sfid, "operation": operation, "code": code, "message": message});
    spi_util::exec(&sql, &[m.id.into(), spi_util::jsonb(row)])?;
    Ok(())
}

/// Removes the rows of these records, except those with a local change still pending.
pub fn remove_unless_pending(m: &Mapping, sfids: &[String]) -> Result<usize> {
    if sfids.is_empty() {
        return Ok(0);
    }
    let sql = format!(
        "SELECT COALESCE(jsonb_agg(t.sfid), '[]') FROM {tbl} t WHERE t.sfid = ANY($1)
           AND NOT EXISTS (SELECT 1 FROM sfsync.outbox o WHERE o.mapping_id = $2 AND o.pk = t.{pk}::text)",
        tbl = m.table,
        pk = m.pk_ident()
    );
    let args: Vec<DatumWithOid> = vec![sfids.to_vec().into(), m.id.into()];
    let ids: Vec<String> = spi_util::json(&sql, &args)?.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    remove(m, &ids, "left filter")
}
