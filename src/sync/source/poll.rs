//! The poll: Salesforce changes since the mapping's high-water mark, applied set-based.
//!
//! One queryAll (SystemModstamp order, deleted records included) per pass, paged with
//! nextRecordsUrl; each page is applied in its own transaction and advances the mark, so
//! an interrupted pass resumes where it stopped. The poll looks `sfsync.pull_overlap`
//! before the mark so records committed late with an earlier stamp are still seen; the
//! re-read ones change nothing because every write is guarded by IS DISTINCT FROM.

use super::{bulk, filter};
use crate::error::{Result, SyncError};
use crate::plan::{backfill, soql};
use crate::sync::apply::{self, csv::Shape, Mark, Rows, Summary};
use crate::sync::{clients, Ctx, Mapping};
use crate::{guc, spi_util};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::Spi;

/// `all` are the database's mappings (a lookup column needs its parent's).
pub fn pass(ctx: Ctx, m: &Mapping, all: &[Mapping]) -> Result<Summary> {
    let overlap_ms = guc::PULL_OVERLAP_MS.get();
    let since = ctx.tx(|| {
        let args: Vec<DatumWithOid> = vec![m.id.into(), overlap_ms.into()];
        Ok(Spi::get_one_with_args::<String>(
            "SELECT to_char((hwm_modstamp - make_interval(secs => $2 / 1000.0)) AT TIME ZONE 'UTC',
                            'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')
             FROM sfsync.sync_state WHERE mapping_id = $1",
            &args,
        )?)
    })?;
    let fields: Vec<&str> = m.columns.iter().map(|c| c.field.as_str()).collect();
    let q = soql::pull_query(&m.sobject, &fields, &m.external_id, since.as_deref(), m.filter.as_deref()).map_err(SyncError::Invalid)?;
    let client = clients::client(ctx, &m.connection)?;
    let mut summary = Summary::default();
    let mut page = client.query_all(&q)?;
    let types: Vec<&str> = m.columns.iter().map(|c| c.sf_type.as_str()).collect();
    let threshold = guc::BACKFILL_BULK_THRESHOLD.get().max(0) as u64;
    if !page.done && backfill::choose_method(page.total_size, threshold, &types) == backfill::Method::Bulk {
        summary.add(bulk_catch_up(ctx, m, all, &client, &q)?);
    } else {
        loop {
            summary.add(apply::batch(ctx, m, all, Rows::Records(&page.records), Mark::Advance, &|_| Ok(()))?);
            match (page.done, page.next_records_url.as_deref()) {
                (false, Some(next)) => page = client.query_more(next)?,
                _ => break,
            }
        }
    }
    summary.left_filter = filter::prune(ctx, &client, m)?;
    ctx.tx(|| {
        let args: Vec<DatumWithOid> = vec![m.id.into()];
        spi_util::exec("UPDATE sfsync.sync_state SET last_pull_at = now(), last_error = NULL WHERE mapping_id = $1", &args)?;
        clients::flush_stats()
    })?;
    Ok(summary)
}

/// Many changes at once (a mass update in Salesforce, a long outage): one Bulk API 2.0
/// queryAll job instead of a REST call per 2000 records, applied like the backfill's
/// batches; each batch advances the mark in its own transaction.
fn bulk_catch_up(ctx: Ctx, m: &Mapping, all: &[Mapping], client: &salesforce::Client, q: &str) -> Result<Summary> {
    let reader = client.bulk_query_with(q, true, &salesforce::BulkOptions::default())?;
    let shape = Shape::new(m, reader.headers())?;
    let job = reader.job().id.clone();
    let mut total = Summary::default();
    bulk::stream(reader, &shape, 0, bulk::Position::default(), (bulk::batch_size(), false), |read| {
        total.add(apply::batch(ctx, m, all, Rows::Csv(&shape, &read.batch), Mark::Advance, &|_| Ok(()))?);
        Ok(if crate::worker::shutdown_requested() { bulk::Flow::Stop } else { bulk::Flow::Continue })
    })?;
    let _ = client.bulk_delete(true, &job); // best effort: the results are not needed any more
    Ok(total)
}
