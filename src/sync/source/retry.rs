//! Records whose apply failed (a local constraint, a trigger that raised, a lookup not there
//! yet) are read again by Id once their backoff is over (`record_errors.next_retry_at`,
//! set by `apply`), and applied like any pulled record; success clears their error. A
//! record Salesforce no longer has at all (not even in the recycle bin) clears it too. The
//! high-water mark moved past them long ago: this is what keeps them from being lost.

use crate::error::{Result, SyncError};
use crate::plan::soql;
use crate::spi_util;
use crate::sync::apply::{self, Mark, Rows, Summary};
use crate::sync::{clients, Ctx, Mapping};
use pgrx::datum::DatumWithOid;
use serde_json::Value;

/// At most one query's worth of Ids per pass.
const PER_PASS: i64 = 200;

/// Applies again the failed records of `m` that are due; `all` for lookups.
pub fn pass(ctx: Ctx, m: &Mapping, all: &[Mapping]) -> Result<Summary> {
    let due: Vec<String> = ctx.tx(|| {
        let args: Vec<DatumWithOid> = vec![m.id.into(), PER_PASS.into()];
        let v = spi_util::json(
            "SELECT COALESCE(jsonb_agg(sfid ORDER BY next_retry_at), '[]') FROM (
                 SELECT sfid, next_retry_at FROM sfsync.record_errors
                 WHERE mapping_id = $1 AND direction = 'pull' AND sfid ~ '^[a-zA-Z0-9]{15,18}$'
                   AND next_retry_at <= now()
                 ORDER BY next_retry_at LIMIT $2) d",
            &args,
        )?;
        serde_json::from_value(v.unwrap_or_default()).map_err(|e| SyncError::Spi(format!("reading failed pulls: {e}")))
    })?;
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
