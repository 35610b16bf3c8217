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
use crate::sync::clients::{Call, Step};
use crate::sync::{clients, Ctx, Mapping};
use crate::{guc, spi_util};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::Spi;
use salesforce::QueryPage;
use std::collections::{BTreeMap, HashMap};

/// `all` are the database's mappings (a lookup column needs its parent's).
pub fn pass(ctx: Ctx, m: &Mapping, all: &[Mapping]) -> Result<Summary> {
    pass_from(ctx, m, all, None)
}

/// The poll's SOQL: the mapped fields changed since the mark (less the overlap).
fn query(ctx: Ctx, m: &Mapping) -> Result<String> {
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
    soql::pull_query(&m.sobject, &fields, &m.external_id, since.as_deref(), m.filter.as_deref()).map_err(SyncError::Invalid)
}

/// A poll whose first page may have been read already (`first_pages`): (its query, page).
pub fn pass_from(ctx: Ctx, m: &Mapping, all: &[Mapping], first: Option<(String, QueryPage)>) -> Result<Summary> {
    let client = clients::client(ctx, &m.connection)?;
    let (q, mut page) = match first {
        Some(read) => read,
        None => {
            let q = query(ctx, m)?;
            let page = client.query_all(&q)?;
            (q, page)
        }
    };
    let mut summary = Summary::default();
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

/// What `first_pages` read of one mapping's poll.
pub enum Read {
    /// The poll's query and its first page.
    Page(String, QueryPage),
    /// The request carrying it failed so (network, session, limits), tried again after
    /// `retry_in`: the poll failed too.
    Failed { error: String, retry_in: std::time::Duration },
}

/// The first pages of the polls of `due`, read with one composite request per connection
/// and 5 queries (one API call; Salesforce takes no more queries in one): 25 idle tables
/// cost 5 calls instead of 25. Only for connections
/// with two polls due or more; a mapping absent from the answer (a lone poll, a query
/// Salesforce refused alone, one whose connection waits) polls by itself, and meets its
/// own error as it would.
pub fn first_pages(ctx: Ctx, due: &[&Mapping]) -> HashMap<i32, Read> {
    let mut by_connection: BTreeMap<&str, Vec<&Mapping>> = BTreeMap::new();
    for m in due {
        by_connection.entry(m.connection.as_str()).or_default().push(m);
    }
    let mut out = HashMap::new();
    for (connection, mappings) in by_connection.into_iter().filter(|(_, p)| p.len() > 1) {
        let polls: Vec<(i32, String)> = mappings.iter().filter_map(|m| query(ctx, m).ok().map(|q| (m.id, q))).collect();
        let soqls: Vec<String> = polls.iter().map(|(_, q)| q.clone()).collect();
        let read = clients::call(ctx, connection, Step::new(0, "pull of several tables"), || {
            Ok(clients::client(ctx, connection)?.query_all_pages(&soqls)?)
        });
        match read {
            Call::Done(pages) => {
                for ((id, q), page) in polls.into_iter().zip(pages) {
                    if let Ok(page) = page {
                        out.insert(id, Read::Page(q, page));
                    }
                }
            }
            Call::Failed { error, retry_in, .. } => {
                let error = error.to_string();
                for (id, _) in polls {
                    out.insert(id, Read::Failed { error: error.clone(), retry_in });
                }
            }
            Call::Waiting => {}
        }
    }
    out
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
