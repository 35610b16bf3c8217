//! What sfsync's catalog holds back from a page, looked up before the table statements run.
//!
//! The table statements run as the table's owner (`Mapping::as_owner`), who has no rights
//! on sfsync's catalog, so they cannot ask the outbox or the delete review themselves: the
//! worker looks once per page (set-based, by the page's Ids and keys) and hands the answers
//! to the table statements as `text[]` parameters.

use crate::error::{Result, SyncError};
use crate::spi_util;
use crate::sync::Mapping;
use pgrx::datum::DatumWithOid;
use serde::Deserialize;

/// The page's records the apply must leave alone.
#[derive(Debug, Default, Deserialize)]
pub struct Held {
    /// Keys (as text) of local rows with these Ids and a local change on its way out: their
    /// update waits for the push (the conflict policy already had its say).
    pub pending: Vec<String>,
    /// Ids and Postgres keys not to insert: a local change or delete of them waits in the
    /// outbox, or a local delete of them is held for review.
    pub sfids: Vec<String>,
    pub keys: Vec<String>,
}

/// Looks up what is held back among records with these Ids (`sfids`) and Postgres keys
/// (`keys`, the external Id values they carry, compared as the key column's type).
pub fn lookup(m: &Mapping, sfids: &[String], keys: &[String]) -> Result<Held> {
    if sfids.is_empty() && keys.is_empty() {
        return Ok(Held::default());
    }
    let sql = format!(
        "SELECT jsonb_build_object(
             'pending', (SELECT COALESCE(jsonb_agg(t.{pk}::text), '[]') FROM {tbl} t WHERE t.sfid = ANY($2)
                           AND EXISTS (SELECT 1 FROM sfsync.outbox o WHERE o.mapping_id = $1 AND o.pk = t.{pk}::text
                                       AND o.state = 'pending')),
             'sfids', (SELECT COALESCE(jsonb_agg(DISTINCT x.sfid), '[]') FROM (
                           SELECT o.sfid FROM sfsync.outbox o WHERE o.mapping_id = $1 AND o.state = 'pending' AND o.sfid = ANY($2)
                           UNION ALL
                           SELECT r.sfid FROM sfsync.delete_review r WHERE r.mapping_id = $1 AND r.decided_at IS NULL
                             AND r.origin = 'postgres' AND r.sfid = ANY($2)) x),
             'keys', (SELECT COALESCE(jsonb_agg(DISTINCT x.key), '[]') FROM (
                           SELECT o.pk FROM sfsync.outbox o WHERE o.mapping_id = $1 AND o.state = 'pending' AND o.pk = ANY($3::{ty}[]::text[])
                           UNION ALL
                           SELECT r.key FROM sfsync.delete_review r WHERE r.mapping_id = $1 AND r.decided_at IS NULL
                             AND r.origin = 'postgres' AND r.key = ANY($3::{ty}[]::text[])) x(key)))",
        tbl = m.table,
        pk = m.pk_ident(),
        ty = m.pk_type
    );
    let args: Vec<DatumWithOid> = vec![m.id.into(), sfids.to_vec().into(), keys.to_vec().into()];
    let v = spi_util::json(&sql, &args)?.unwrap_or_default();
    serde_json::from_value(v).map_err(|e| SyncError::Spi(format!("decoding the records held back: {e}")))
}

/// Keys (as text) of local rows with these Ids that have a local change on its way out.
pub fn pending(m: &Mapping, sfids: &[String]) -> Result<Vec<String>> {
    if sfids.is_empty() {
        return Ok(Vec::new());
    }
    pending_of(m, sfids.to_vec().into())
}

/// [`pending`], the Ids given as a `text[]` parameter. The rows are locked first (see
/// [`busy`]); a row another transaction holds counts as pending: its change is not visible
/// yet, and an update now would overwrite it.
pub fn pending_of(m: &Mapping, sfids: DatumWithOid) -> Result<Vec<String>> {
    let sql = format!(
        "WITH got AS (SELECT t.{pk} FROM {tbl} t WHERE t.sfid = ANY($2) ORDER BY t.{pk} FOR UPDATE SKIP LOCKED)
         SELECT COALESCE(jsonb_agg(t.{pk}::text), '[]') FROM {tbl} t WHERE t.sfid = ANY($2)
           AND (t.{pk} NOT IN (SELECT {pk} FROM got)
                OR EXISTS (SELECT 1 FROM sfsync.outbox o WHERE o.mapping_id = $1 AND o.pk = t.{pk}::text AND o.state = 'pending'))",
        tbl = m.table,
        pk = m.pk_ident()
    );
    let args: Vec<DatumWithOid> = vec![m.id.into(), sfids];
    let v = spi_util::json(&sql, &args)?.unwrap_or_default();
    serde_json::from_value(v).map_err(|e| SyncError::Spi(format!("decoding the rows with a local change pending: {e}")))
}

/// Locks the local rows of these records (by Id, or by the Postgres key a record carries)
/// until the apply's transaction ends, and returns the Ids of the records whose row another
/// transaction holds. The outbox entries the apply looks up afterwards are then final for
/// the rows it locked: a local change committed between that lookup and the apply's UPDATE
/// would otherwise be overwritten by the pulled value and pushed back as it (a lost local
/// update). A row held by a writer is deferred, not waited for: the writer is never made to
/// deadlock with the sync, and the poll reads the record again.
pub fn busy(m: &Mapping, records: &[(String, Option<String>)]) -> Result<Vec<String>> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<serde_json::Value> = records.iter().map(|(sfid, key)| serde_json::json!({"sfid": sfid, "pgid": key})).collect();
    let sql = format!(
        "WITH r AS (SELECT * FROM jsonb_to_recordset($1) AS r(sfid text, pgid text)),
              mine AS (SELECT t.{pk} AS key, r.sfid FROM r JOIN {tbl} t ON t.sfid = r.sfid OR t.{pk} = r.pgid::{ty}),
              got AS (SELECT t.{pk} FROM {tbl} t WHERE t.{pk} IN (SELECT key FROM mine) ORDER BY t.{pk} FOR UPDATE SKIP LOCKED)
         SELECT COALESCE(jsonb_agg(DISTINCT mine.sfid), '[]') FROM mine WHERE mine.key NOT IN (SELECT {pk} FROM got)",
        ty = m.pk_type,
        pk = m.pk_ident(),
        tbl = m.table,
    );
    let v = spi_util::json(&sql, &[spi_util::jsonb(serde_json::Value::Array(rows))])?.unwrap_or_default();
    serde_json::from_value(v).map_err(|e| SyncError::Spi(format!("decoding the records a local writer holds: {e}")))
}

/// Ids of the records (Id, the Postgres key the record carries if any) whose key — the one
/// it carries, or the key of our row with its Id — a write-through transaction still holds
/// (`sync::echo_lock`), or whose write-through change rolled back and waits for its repair
/// (`abort_queue`): their change may be that transaction's own echo, so they are deferred,
/// neither applied nor lost.
pub fn locked(m: &Mapping, records: &[(String, Option<String>)]) -> Result<Vec<String>> {
    if records.is_empty() || !m.writes_through() {
        return Ok(Vec::new());
    }
    let rows: Vec<serde_json::Value> = records.iter().map(|(sfid, key)| serde_json::json!({"sfid": sfid, "pgid": key})).collect();
    let sql = format!(
        "WITH r AS (SELECT * FROM jsonb_to_recordset($1) AS r(sfid text, pgid text)),
              k AS (SELECT r.sfid, r.pgid::{ty}::text AS key FROM r WHERE r.pgid IS NOT NULL
                    UNION
                    SELECT r.sfid, t.{pk}::text FROM r JOIN {tbl} t ON t.sfid = r.sfid)
         SELECT COALESCE(jsonb_agg(jsonb_build_object('sfid', k.sfid, 'key', k.key, 'locked', {locked})), '[]') FROM k",
        ty = m.pk_type,
        pk = m.pk_ident(),
        tbl = m.table,
        locked = crate::sync::echo_lock::locked("$2", "k.key")
    );
    #[derive(Deserialize)]
    struct K {
        sfid: String,
        key: String,
        locked: bool,
    }
    let args: Vec<DatumWithOid> = vec![spi_util::jsonb(serde_json::Value::Array(rows)), m.id.into()];
    let v = spi_util::json(&sql, &args)?.unwrap_or_default();
    let ks: Vec<K> = serde_json::from_value(v).map_err(|e| SyncError::Spi(format!("decoding the records a write-through holds: {e}")))?;
    let mut out: Vec<String> = ks.into_iter().filter(|k| k.locked || crate::abort_queue::awaits(m.id, &k.key)).map(|k| k.sfid).collect();
    out.sort();
    out.dedup();
    Ok(out)
}
