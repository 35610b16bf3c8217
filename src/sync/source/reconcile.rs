//! Deletes the incremental pull cannot see: records hard-deleted or purged from the recycle
//! bin never come back through queryAll.
//!
//! The delete check (every `sfsync.delete_check_interval` per mapping) asks getDeleted for the
//! windows from the mapping's mark (`sync_state.deletes_through`, Salesforce's
//! `latestDateCovered`) to Salesforce's present, at most 30 days per call, and applies the
//! deletes of Ids we have through `deletes::pulled` (the mapping's `on_delete`). When the mark
//! is older than what Salesforce still knows (`earliestDateAvailable` past it, or
//! INVALID_REPLICATION_DATE), deletions may have been lost: a full reconciliation lists every
//! Id of the object (matching the mapping's filter) into a temporary table, batch by batch
//! (Bulk API 2.0 above `sfsync.backfill_bulk_threshold`, REST query paging below), and treats
//! linked local rows whose Id is absent as deleted. With a filter, the absent Ids are asked for
//! once more without it: those that still exist left the filter and are removed as the pull's
//! filter check would remove them, not as deletes.
//!
//! HTTP runs between transactions in the worker, as everywhere in sync.

use crate::capture::Applying;
use crate::error::{Result, SyncError};
use crate::plan::deletes as plan;
use crate::sync::apply::deletes;
use crate::sync::{clients, Ctx, Mapping};
use crate::{guc, spi_util};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use salesforce::{BulkOptions, Client};
use serde::Serialize;
use serde_json::Value;

const INVALID_DATE: &str = "INVALID_REPLICATION_DATE";
/// Ids per insert into the listing table, per keyset batch of local rows, per `Id IN` query.
const LIST_BATCH: usize = 2000;
const LOCAL_BATCH: i64 = 1000;
const EXISTS_BATCH: usize = 200;

#[derive(Debug, Default, Clone, Serialize)]
pub struct DeleteSummary {
    /// getDeleted calls made.
    pub windows: usize,
    /// Local rows deleted (propagate) by the check or the reconciliation.
    pub deleted: usize,
    /// Whether a full reconciliation ran, and why.
    pub reconciled: Option<String>,
    /// Ids Salesforce listed in the reconciliation.
    pub listed: usize,
    /// Linked rows found missing from Salesforce (deleted, held for review or ignored).
    pub missing: usize,
    /// Rows removed because their record no longer matches the filter.
    pub left_filter: usize,
}

struct State {
    mark: i64,
    hwm: Option<i64>,
    now: i64,
}

fn load_state(m: &Mapping) -> Result<State> {
    let fmt = |e: &str| format!("to_char(({e}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')");
    let v = spi_util::json(
        &format!(
            "SELECT jsonb_build_array({}, {}, {}) FROM sfsync.mappings m
             LEFT JOIN sfsync.sync_state s ON s.mapping_id = m.id LEFT JOIN sfsync.backfills b ON b.mapping_id = m.id
             WHERE m.id = $1",
            fmt("COALESCE(s.deletes_through, b.started_at, m.created_at)"),
            fmt("s.hwm_modstamp"),
            fmt("now()")
        ),
        &[m.id.into()],
    )?
    .unwrap_or(Value::Null);
    let t = |i: usize| v[i].as_str().and_then(plan::parse_datetime);
    Ok(State { mark: t(0).ok_or_else(|| SyncError::Spi("mapping has no sync state".into()))?, hwm: t(1), now: t(2).unwrap_or(0) })
}

fn code(e: &salesforce::Error) -> String {
    e.code()
}

/// The periodic delete check of one mapping; reconciles when a window was missed.
pub fn check(ctx: Ctx, m: &Mapping) -> Result<DeleteSummary> {
    let st = ctx.tx(|| load_state(m))?;
    let client = clients::client(ctx, &m.connection)?;
    let mut out = DeleteSummary::default();
    let mut start = st.mark;
    loop {
        let (s, e) = plan::window(start);
        let r = match client.get_deleted(&m.sobject, &plan::format_datetime(s), &plan::format_datetime(e)) {
            Ok(r) => r,
            Err(err) if code(&err) == INVALID_DATE => {
                out.windows += 1;
                let why =
                    format!("the last delete check covered up to {}, which Salesforce no longer serves", plan::format_datetime(start));
                return reconcile_from(ctx, m, &client, &st, None, why, out);
            }
            Err(err) => return Err(err.into()),
        };
        out.windows += 1;
        let earliest = r.earliest_date_available.as_deref().and_then(plan::parse_datetime);
        if plan::must_reconcile(start, earliest) {
            let why = format!(
                "deletions before {} were purged; the last delete check covered up to {}",
                plan::format_datetime(earliest.unwrap_or_default()),
                plan::format_datetime(start)
            );
            return reconcile_from(ctx, m, &client, &st, earliest, why, out);
        }
        let ids: Vec<String> = r.deleted_records.iter().map(|d| d.id.clone()).collect();
        let latest = r.latest_date_covered.as_deref().and_then(plan::parse_datetime);
        let covered = latest.unwrap_or(start).max(start);
        out.deleted += ctx.tx(|| {
            let _applying = Applying::start();
            let n = deletes::pulled(m, &ids)?;
            let args: Vec<DatumWithOid> = vec![m.id.into(), plan::format_datetime(covered).into()];
            spi_util::exec(
                "UPDATE sfsync.sync_state SET deletes_through = $2::timestamptz, deletes_checked_at = now() WHERE mapping_id = $1",
                &args,
            )?;
            Ok(n)
        })?;
        match plan::next_start(s, e, latest) {
            Some(n) => start = n,
            None => break,
        }
    }
    ctx.tx(clients::flush_stats)?;
    Ok(out)
}

/// A full reconciliation asked for by a person (`sfsync.reconcile`).
pub fn reconcile(ctx: Ctx, m: &Mapping) -> Result<DeleteSummary> {
    let st = ctx.tx(|| load_state(m))?;
    let client = clients::client(ctx, &m.connection)?;
    reconcile_from(ctx, m, &client, &st, None, "requested".into(), DeleteSummary::default())
}

fn reconcile_from(
    ctx: Ctx,
    m: &Mapping,
    client: &Client,
    st: &State,
    earliest: Option<i64>,
    why: String,
    mut out: DeleteSummary,
) -> Result<DeleteSummary> {
    pgrx::log!("sfsync: full delete reconciliation of {}: {why}", m.table);
    out.reconciled = Some(why);
    // The next check's mark, taken before the listing (deletes after it are reported again,
    // harmlessly): the latest time a window is accepted from, never before `earliest`.
    let mut new_mark = None;
    let candidates = [earliest, st.hwm, Some(st.now - 5 * plan::MINUTE_MS)];
    for c in candidates.into_iter().flatten().filter(|c| earliest.is_none_or(|e| *c >= e)) {
        let (s, e) = plan::window(c);
        match client.get_deleted(&m.sobject, &plan::format_datetime(s), &plan::format_datetime(e)) {
            Ok(r) => {
                out.windows += 1;
                new_mark = Some(r.latest_date_covered.as_deref().and_then(plan::parse_datetime).unwrap_or(s).max(s));
                break;
            }
            Err(err) if code(&err) == INVALID_DATE => out.windows += 1,
            Err(err) => return Err(err.into()),
        }
    }
    if new_mark.is_none() {
        pgrx::warning!("sfsync: {}: no getDeleted window is accepted; the next delete check reconciles again", m.table);
    }
    out.listed = list(ctx, m, client)?;
    // Linked local rows absent from the listing, by keyset on sfid.
    let mut after = String::new();
    loop {
        let sql = format!(
            "SELECT COALESCE(jsonb_agg(sfid ORDER BY sfid), '[]') FROM (
                 SELECT t.sfid::text AS sfid FROM {tbl} t
                 WHERE t.sfid IS NOT NULL AND t.sfid::text > $1
                   AND NOT EXISTS (SELECT 1 FROM pg_temp.sfsync_reconcile r WHERE r.sfid = t.sfid::text)
                 ORDER BY t.sfid::text LIMIT $2) x",
            tbl = m.table
        );
        let args: Vec<DatumWithOid> = vec![after.clone().into(), LOCAL_BATCH.into()];
        let missing: Vec<String> = ctx.tx(|| spi_util::json(&sql, &args))?.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
        let Some(last) = missing.last().cloned() else { break };
        out.missing += missing.len();
        // With a filter, those that still exist only left it.
        let mut left = Vec::new();
        if m.filter.as_deref().is_some_and(|f| !f.trim().is_empty()) {
            for chunk in missing.chunks(EXISTS_BATCH) {
                let ids: Vec<&str> = chunk.iter().map(String::as_str).collect();
                let q = plan::existing_query(&m.sobject, &ids).map_err(SyncError::Invalid)?;
                for r in client.query_iter(&q, false) {
                    if let Some(id) = r?.get("Id").and_then(Value::as_str) {
                        left.push(id.to_string());
                    }
                }
            }
        }
        let gone: Vec<String> = missing.iter().filter(|id| !left.iter().any(|l| l.eq_ignore_ascii_case(id))).cloned().collect();
        let (d, l) = ctx.tx(|| {
            let _applying = Applying::start();
            Ok((deletes::pulled(m, &gone)?, deletes::remove_unless_pending(m, &left)?))
        })?;
        out.deleted += d;
        out.left_filter += l;
        after = last;
    }
    let args: Vec<DatumWithOid> = vec![m.id.into(), new_mark.map(plan::format_datetime).into(), (out.missing as i64).into()];
    ctx.tx(|| {
        spi_util::exec(
            "UPDATE sfsync.sync_state SET deletes_through = COALESCE($2::timestamptz, deletes_through), deletes_checked_at = now(),
                    reconciled_at = now(), reconciled_missing = $3 WHERE mapping_id = $1",
            &args,
        )?;
        Spi::run("DROP TABLE IF EXISTS pg_temp.sfsync_reconcile")?;
        clients::flush_stats()
    })?;
    Ok(out)
}

/// Streams every Id of the object (matching the filter) into pg_temp.sfsync_reconcile, a
/// batch per transaction. Returns how many.
fn list(ctx: Ctx, m: &Mapping, client: &Client) -> Result<usize> {
    ctx.tx(|| {
        Spi::run("CREATE TEMP TABLE IF NOT EXISTS sfsync_reconcile (sfid text PRIMARY KEY)")?;
        Spi::run("TRUNCATE pg_temp.sfsync_reconcile")?;
        Ok(())
    })?;
    let insert = |ids: &mut Vec<String>| -> Result<usize> {
        let n = ids.len();
        if n > 0 {
            let batch = std::mem::take(ids);
            ctx.tx(|| {
                spi_util::exec("INSERT INTO pg_temp.sfsync_reconcile SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", &[batch.into()])
            })?;
        }
        Ok(n)
    };
    let q = plan::ids_query(&m.sobject, m.filter.as_deref()).map_err(SyncError::Invalid)?;
    let count_q = crate::plan::backfill::count_query(&m.sobject, m.filter.as_deref()).map_err(SyncError::Invalid)?;
    let estimate = client.query(&count_q)?.total_size;
    let mut total = 0;
    let mut ids = Vec::with_capacity(LIST_BATCH);
    if estimate > guc::BACKFILL_BULK_THRESHOLD.get().max(0) as u64 {
        let mut reader = client.bulk_query_with(&q, false, &BulkOptions::default())?;
        let job = reader.job().id.clone();
        while let Some(r) = reader.next_record() {
            if let Some(id) = r?.get("Id").and_then(Value::as_str) {
                ids.push(id.to_string());
            }
            if ids.len() >= LIST_BATCH * 5 {
                total += insert(&mut ids)?;
            }
        }
        let _ = client.bulk_delete(true, &job); // best effort: results are not needed any more
    } else {
        for r in client.query_iter(&q, false) {
            if let Some(id) = r?.get("Id").and_then(Value::as_str) {
                ids.push(id.to_string());
            }
            if ids.len() >= LIST_BATCH {
                total += insert(&mut ids)?;
            }
        }
    }
    total += insert(&mut ids)?;
    ctx.tx(|| Ok(Spi::run("ANALYZE pg_temp.sfsync_reconcile")?))?;
    Ok(total)
}
