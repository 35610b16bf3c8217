//! Records whose apply failed (a local constraint, a trigger that raised, a lookup not there
//! yet) are read again by Id once their backoff is over (`record_errors.next_retry_at`,
//! set by `apply`), and applied like any pulled record; success clears their error. A
//! record Salesforce no longer has at all (not even in the recycle bin) clears it too. The
//! high-water mark moved past them long ago: this is what keeps them from being lost.
//!
//! A pulled delete, or the removal of a row whose record left the filter, that failed locally
//! (a foreign key, a trigger) is not read again: reading by Id would apply the record as a
//! live one (or find nothing and forget the error), and the row would stay. Its removal is
//! tried again instead.

use crate::capture::Applying;
use crate::error::{Result, SyncError};
use crate::plan::soql;
use crate::spi_util;
use crate::sync::apply::{self, deletes, Mark, Rows, Summary};
use crate::sync::{clients, Ctx, Mapping};
use pgrx::datum::DatumWithOid;
use serde_json::Value;

/// The `operation` of an error row whose local removal failed (apply/deletes.rs).
const REMOVED: &str = "delete";
const LEFT_FILTER: &str = "left filter";

/// At most one query's worth of Ids per pass.
const PER_PASS: i64 = 200;

/// Applies again the failed records of `m` that are due; `all` for lookups.
pub fn pass(ctx: Ctx, m: &Mapping, all: &[Mapping]) -> Result<Summary> {
    let due: Vec<(String, String)> = ctx.tx(|| {
        let args: Vec<DatumWithOid> = vec![m.id.into(), PER_PASS.into()];
        let v = spi_util::json(
            "SELECT COALESCE(jsonb_agg(jsonb_build_array(sfid, operation) ORDER BY next_retry_at), '[]') FROM (
                 SELECT sfid, operation, next_retry_at FROM sfsync.record_errors
                 WHERE mapping_id = $1 AND direction = 'pull' AND sfid ~ '^[a-zA-Z0-9]{15,18}$'
                   AND next_retry_at <= now()
                 ORDER BY next_retry_at LIMIT $2) d",
            &args,
        )?;
        serde_json::from_value(v.unwrap_or_default()).map_err(|e| SyncError::Spi(format!("reading failed pulls: {e}")))
    })?;
    let (removals, due): (Vec<_>, Vec<_>) = due.into_iter().partition(|(_, op)| op == REMOVED || op == LEFT_FILTER);
    if !removals.is_empty() {
        ctx.tx(|| remove_again(m, &removals))?;
    }
    let due: Vec<String> = due.into_iter().map(|(id, _)| id).collect();
    if due.is_empty() {
        return Ok(Summary::default());
    }
    let fields: Vec<&str> = m.columns.iter().map(|c| c.field.as_str()).collect();
    let ids: Vec<&str> = due.iter().map(String::as_str).collect();
    let q = soql::by_ids(&m.sobject, &fields, &m.external_id, &ids).map_err(SyncError::Invalid)?;
    let client = clients::client(ctx, &m.connection)?;
    let records: Vec<salesforce::Record> = client.query_iter(&q, true).collect::<std::result::Result<_, _>>()?;
    let summary = apply::batch(ctx, m, all, Rows::Records(&records), Mark::Keep, &|_| Ok(()))?;
    // Gone for good: nothing left to apply.
    let found: Vec<&str> = records.iter().filter_map(|r| r.get("Id").and_then(Value::as_str)).collect();
    let gone: Vec<String> = due.iter().filter(|id| !found.contains(&id.as_str())).cloned().collect();
    if !gone.is_empty() {
        ctx.tx(|| apply::clear_errors(m, gone.clone().into()))?;
    }
    Ok(summary)
}

/// Tries again to remove the rows of records deleted in Salesforce or gone from the filter.
/// What goes clears its error; what fails again is reported again (by `deletes`) and waits
/// for the next `sfsync.retry()` rather than being tried every pass.
fn remove_again(m: &Mapping, removals: &[(String, String)]) -> Result<()> {
    let ids = |op: &str| removals.iter().filter(|(_, o)| o == op).map(|(id, _)| id.clone()).collect::<Vec<_>>();
    {
        let _applying = Applying::start();
        deletes::pulled(m, &ids(REMOVED))?;
        deletes::remove_unless_pending(m, &ids(LEFT_FILTER))?;
    }
    let all: Vec<String> = removals.iter().map(|(id, _)| id.clone()).collect();
    let sql = format!(
        "WITH still AS (SELECT sfid FROM {tbl} WHERE sfid = ANY($2)),
         cleared AS (DELETE FROM sfsync.record_errors e WHERE e.mapping_id = $1 AND e.direction = 'pull'
                       AND e.sfid = ANY($2) AND e.sfid NOT IN (SELECT sfid FROM still))
         UPDATE sfsync.record_errors e SET next_retry_at = NULL
         WHERE e.mapping_id = $1 AND e.direction = 'pull' AND e.sfid IN (SELECT sfid FROM still)",
        tbl = m.table
    );
    spi_util::exec(&sql, &[m.id.into(), all.into()])?;
    Ok(())
}
