//! Periodic refresh of mapped formula and roll-up summary fields (see plan::formulas): reads
//! Id + the calculated fields of the mapping's records (REST query paging, or one Bulk API 2.0
//! query job above `sfsync.backfill_bulk_threshold`), and hands them to the sink
//! (`apply::calculated`), which updates only the rows whose values differ.

use crate::error::{Result, SyncError};
use crate::plan::{backfill, formulas as plan};
use crate::sync::apply::calculated;
use crate::sync::{clients, Ctx, Mapping};
use crate::{guc, spi_util};
use salesforce::{BulkOptions, Record};
use serde::Serialize;

const BATCH: usize = 2000;

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct RefreshSummary {
    pub fetched: usize,
    pub updated: usize,
    pub bulk: bool,
}

/// Refreshes the mapping's calculated columns (nothing to do without any).
pub fn refresh(ctx: Ctx, m: &Mapping) -> Result<RefreshSummary> {
    let cols = plan::calculated(&m.columns);
    let mut out = RefreshSummary::default();
    if !cols.is_empty() {
        let fields: Vec<&str> = cols.iter().map(|c| c.field.as_str()).collect();
        let q = plan::refresh_query(&m.sobject, &fields, m.filter.as_deref()).map_err(SyncError::Invalid)?;
        let client = clients::client(ctx, &m.connection)?;
        let estimate = client.query(&backfill::count_query(&m.sobject, m.filter.as_deref()).map_err(SyncError::Invalid)?)?.total_size;
        let mut batch = Vec::with_capacity(BATCH);
        let flush = |batch: &mut Vec<Record>, out: &mut RefreshSummary| -> Result<()> {
            if !batch.is_empty() {
                out.fetched += batch.len();
                out.updated += ctx.tx(|| calculated::apply(m, &cols, batch))?;
                batch.clear();
            }
            Ok(())
        };
        if estimate > guc::BACKFILL_BULK_THRESHOLD.get().max(0) as u64 {
            out.bulk = true;
            let mut reader = client.bulk_query_with(&q, false, &BulkOptions::default())?;
            let job = reader.job().id.clone();
            while let Some(r) = reader.next_record() {
                batch.push(r?);
                if batch.len() >= BATCH {
                    flush(&mut batch, &mut out)?;
                }
            }
            let _ = client.bulk_delete(true, &job); // best effort
        } else {
            for r in client.query_iter(&q, false) {
                batch.push(r?);
                if batch.len() >= BATCH {
                    flush(&mut batch, &mut out)?;
                }
            }
        }
        flush(&mut batch, &mut out)?;
    }
    ctx.tx(|| {
        spi_util::exec("UPDATE sfsync.sync_state SET formulas_refreshed_at = now() WHERE mapping_id = $1", &[m.id.into()])?;
        clients::flush_stats()
    })?;
    Ok(out)
}
