//! Records that stop matching a mapping's `filter`.
//!
//! The incremental pull asks only for records matching the filter, so a record edited in
//! Salesforce until it no longer matches would never be seen again and its row would go
//! stale. After each pull, one more query asks for the Ids of records changed since the last
//! check that do **not** match (`NOT (filter)`, Ids only, usually an empty answer); their
//! rows are removed from Postgres without being captured: leaving the filter is not a
//! delete in Salesforce. A row with a local change still pending stays until it is sent
//! (if it still doesn't match afterwards, the next check removes it). Records deleted in
//! Salesforce while outside the filter follow the mapping's `on_delete`.
//!
//! The check has its own mark (`sync_state.filter_hwm`), moved to the pull's mark only
//! once the check succeeded, so a failed check is repeated rather than skipped. Changing
//! the filter with `sync_table` resets both marks: a full re-pull, and a full check.

use crate::capture::Applying;
use crate::error::{Result, SyncError};
use crate::plan::soql;
use crate::sync::apply::deletes;
use crate::sync::{Ctx, Mapping};
use crate::{guc, spi_util};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use salesforce::Client;
use serde_json::Value;

/// Runs the check for one mapping after its pull. Returns how many rows were removed.
pub fn prune(ctx: Ctx, client: &Client, m: &Mapping) -> Result<usize> {
    let Some(filter) = m.filter.as_deref().filter(|f| !f.trim().is_empty()) else { return Ok(0) };
    let overlap_ms = guc::PULL_OVERLAP_MS.get();
    // (since, the pull's mark now, whether any row is linked to Salesforce at all)
    let (since, mark, linked) = ctx.tx(|| {
        let args: Vec<DatumWithOid> = vec![m.id.into(), overlap_ms.into()];
        let v = spi_util::json(
            &format!(
                "SELECT jsonb_build_array(
                     to_char((filter_hwm - make_interval(secs => $2 / 1000.0)) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                     hwm_modstamp, EXISTS (SELECT 1 FROM {} t WHERE t.sfid IS NOT NULL))
                 FROM sfsync.sync_state WHERE mapping_id = $1",
                m.table
            ),
            &args,
        )?;
        let v = v.unwrap_or(Value::Null);
        Ok((v[0].as_str().map(String::from), v[1].as_str().map(String::from), v[2].as_bool().unwrap_or(false)))
    })?;
    let mut removed = 0;
    if linked {
        let q = soql::left_filter_query(&m.sobject, since.as_deref(), filter).map_err(SyncError::Invalid)?;
        let mut page = client.query_all(&q)?;
        loop {
            let (mut left, mut deleted) = (Vec::new(), Vec::new());
            for r in &page.records {
                let Some(id) = r.get("Id").and_then(Value::as_str) else { continue };
                if r.get("IsDeleted").and_then(Value::as_bool).unwrap_or(false) {
                    deleted.push(id.to_string());
                } else {
                    left.push(id.to_string());
                }
            }
            removed += ctx.tx(|| {
                let _applying = Applying::start();
                deletes::pulled(m, &deleted)?;
                deletes::remove_unless_pending(m, &left)
            })?;
            match (page.done, page.next_records_url.as_deref()) {
                (false, Some(next)) => page = client.query_more(next)?,
                _ => break,
            }
        }
    }
    ctx.tx(|| {
        let args: Vec<DatumWithOid> = vec![m.id.into(), mark.into()];
        spi_util::exec("UPDATE sfsync.sync_state SET filter_hwm = $2::timestamptz WHERE mapping_id = $1", &args)?;
        Ok(())
    })?;
    if removed > 0 {
        debug1!("sfsync: {removed} rows of {} left the filter and were removed", m.table);
    }
    Ok(removed)
}
