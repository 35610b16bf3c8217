//! Backfill: the full load of a mapping from Salesforce, run by the worker in chunks
//! between its other work, resumable after a crash.
//!
//! Start (HTTP, no transaction): `COUNT()` for the estimate and the newest SystemModstamp as
//! the start mark; below `sfsync.backfill_bulk_threshold` records the load pages through
//! REST query, above it streams a Bulk API 2.0 query job's CSV. Records are applied
//! `sfsync.backfill_batch_size` at a time through the sink (`apply::batch`, which loads
//! CSV batches columnar or by COPY), and each batch's transaction also records the resume point in
//! `sfsync.backfills`: the Bulk job, the locator of its result page and how many records of
//! that page are in, plus the last applied (SystemModstamp, Id). A restarted worker reopens
//! the job's page and skips what is in; when the job can't be reopened it starts a new query
//! after the last applied record. When the load is done, incremental polling continues from
//! the start mark (minus `sfsync.pull_overlap`), so changes made during the load arrive too.

use super::bulk::{self, Flow, Position};
use crate::error::{Result, SyncError};
use crate::plan::backfill::{self as plan, Method};
use crate::plan::convert;
use crate::sync::apply::{self, columnar, csv::Shape, Mark, Rows, Summary};
use crate::sync::clients::{self, Call};
use crate::sync::{Ctx, Mapping};
use crate::{guc, spi_util};
use pgrx::datum::DatumWithOid;
use salesforce::BulkOptions;
use serde::Deserialize;
use serde_json::Value;
use std::time::{Duration, Instant};

thread_local! {
    /// Mappings whose backfill this process has worked on (see `chunk`).
    static RUNS: std::cell::RefCell<std::collections::HashSet<i32>> = Default::default();
}

/// How long one chunk runs before the worker goes back to its other work (a Bulk chunk then
/// goes on to the end of its result page).
const CHUNK: Duration = Duration::from_secs(2);

#[derive(Debug, Deserialize)]
struct Row {
    state: String,
    method: Option<String>,
    job_id: Option<String>,
    locator: Option<String>,
    page_rows: i64,
    /// SOQL datetime literal.
    last_modstamp: Option<String>,
    last_id: Option<String>,
    /// A column backfill: only these columns (newly mapped), into rows already there.
    columns: Option<Vec<String>>,
}

/// Schedules a backfill of the mapping (state 'pending') and wakes the worker at commit.
/// A backfill already pending or running is left as it is. Returns its row.
pub fn schedule(mapping_id: i32) -> Result<Value> {
    let args: Vec<DatumWithOid> = vec![mapping_id.into()];
    spi_util::exec(
        "INSERT INTO sfsync.backfills AS b (mapping_id) VALUES ($1)
         ON CONFLICT (mapping_id) DO UPDATE SET state = 'pending', method = NULL, rows_done = 0, rows_total = NULL,
             job_id = NULL, locator = NULL, page_rows = 0, last_modstamp = NULL, last_id = NULL, start_mark = NULL,
             rate = NULL, eta_secs = NULL, run_started_at = NULL, run_rows_start = 0, requested_at = now(),
             started_at = NULL, finished_at = NULL, updated_at = now(), last_error = NULL, columns = NULL
         WHERE b.state IN ('done', 'failed') OR b.columns IS NOT NULL",
        &args,
    )?;
    pgrx::prelude::Spi::run("SELECT sfsync.wake_at_commit()")?;
    Ok(spi_util::json(
        "SELECT to_jsonb(p) - 'sobject' FROM sfsync.backfill_progress p JOIN sfsync.mappings m ON m.tbl = p.\"table\" WHERE m.id = $1",
        &args,
    )?
    .unwrap_or(Value::Null))
}

/// Schedules a column backfill: `columns` (newly mapped) filled from Salesforce into the rows
/// already there. A full backfill pending or running covers them already; a column backfill
/// pending or running starts over with both sets of columns.
pub fn schedule_columns(mapping_id: i32, columns: &[String]) -> Result<Value> {
    let args: Vec<DatumWithOid> = vec![mapping_id.into(), columns.to_vec().into()];
    spi_util::exec(
        "INSERT INTO sfsync.backfills AS b (mapping_id, columns) VALUES ($1, $2)
         ON CONFLICT (mapping_id) DO UPDATE SET state = 'pending', method = NULL, rows_done = 0, rows_total = NULL,
             job_id = NULL, locator = NULL, page_rows = 0, last_modstamp = NULL, last_id = NULL, start_mark = NULL,
             rate = NULL, eta_secs = NULL, run_started_at = NULL, run_rows_start = 0, requested_at = now(),
             started_at = NULL, finished_at = NULL, updated_at = now(), last_error = NULL,
             columns = CASE WHEN b.state IN ('done', 'failed') THEN EXCLUDED.columns
                            ELSE ARRAY(SELECT DISTINCT c FROM unnest(b.columns || EXCLUDED.columns) c ORDER BY c) END
         WHERE b.state IN ('done', 'failed') OR b.columns IS NOT NULL",
        &args,
    )?;
    pgrx::prelude::Spi::run("SELECT sfsync.wake_at_commit()")?;
    Ok(spi_util::json(
        "SELECT to_jsonb(p) - 'sobject' FROM sfsync.backfill_progress p JOIN sfsync.mappings m ON m.tbl = p.\"table\" WHERE m.id = $1",
        &[mapping_id.into()],
    )?
    .unwrap_or(Value::Null))
}

/// The mapping narrowed to a column backfill's columns.
fn narrowed(m: &Mapping, columns: &[String]) -> Mapping {
    let mut n = m.clone();
    n.columns.retain(|c| columns.contains(&c.column));
    n.parents.retain(|p| columns.contains(&p.column));
    n
}

/// Mappings with a backfill pending or running (their incremental polling waits).
pub fn active() -> Result<Vec<i32>> {
    let v = spi_util::json(
        "SELECT COALESCE(jsonb_agg(mapping_id ORDER BY mapping_id), '[]') FROM sfsync.backfills WHERE state IN ('pending', 'running')",
        &[],
    )?
    .unwrap_or_default();
    serde_json::from_value(v).map_err(|e| SyncError::Spi(format!("reading sfsync.backfills: {e}")))
}

fn load(mapping_id: i32) -> Result<Option<Row>> {
    let args: Vec<DatumWithOid> = vec![mapping_id.into()];
    let v = spi_util::json(
        "SELECT to_jsonb(b) || jsonb_build_object('last_modstamp',
                    to_char(b.last_modstamp AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'))
         FROM sfsync.backfills b WHERE b.mapping_id = $1 AND b.state IN ('pending', 'running')",
        &args,
    )?;
    v.map(|v| serde_json::from_value(v).map_err(|e| SyncError::Spi(format!("reading sfsync.backfills: {e}")))).transpose()
}

/// What one worker step did.
#[derive(Debug, Default)]
pub struct Step {
    /// Mappings whose backfill is pending or running after the step.
    pub active: Vec<i32>,
    /// More to do: the worker should come back at once.
    pub more: bool,
}

/// One chunk of work on the first active backfill of `mappings` (the worker's entry point).
/// Errors are recorded in sfsync.backfills, never returned: the worker goes on.
pub fn step(mappings: &[Mapping]) -> Step {
    let active = match Ctx::Worker.tx(active) {
        Ok(a) => a,
        Err(e) => {
            pgrx::warning!("sfsync: could not read backfills: {e}");
            return Step::default();
        }
    };
    let Some(m) = active.iter().filter_map(|id| mappings.iter().find(|m| m.id == *id)).find(|m| clients::available(&m.connection)) else {
        return Step { active, more: false };
    };
    match clients::call(Ctx::Worker, &m.connection, clients::Step::new(m.id, "backfill"), || chunk(Ctx::Worker, m, mappings)) {
        Call::Done(finished) => {
            let active: Vec<i32> = if finished { active.into_iter().filter(|id| *id != m.id).collect() } else { active };
            Step { more: !active.is_empty(), active }
        }
        // Backing off since `available` was asked: next time.
        Call::Waiting => Step { active, more: false },
        Call::Failed { error: e, retry_in, .. } => {
            let transient = matches!(&e, SyncError::Salesforce(se) if se.is_transient());
            let msg = e.to_string();
            if transient {
                pgrx::warning!("sfsync: backfill of {} paused for {retry_in:?}: {msg}", m.table);
            } else {
                pgrx::warning!("sfsync: backfill of {} failed: {msg}", m.table);
            }
            let state = if transient { "running" } else { "failed" };
            let args: Vec<DatumWithOid> = vec![m.id.into(), msg.as_str().into(), state.into()];
            let _ = Ctx::Worker.tx(|| {
                spi_util::exec(
                    "UPDATE sfsync.backfills SET last_error = $2, state = $3,
                            finished_at = CASE WHEN $3 = 'failed' THEN now() END, updated_at = now() WHERE mapping_id = $1",
                    &args,
                )?;
                // The table's state in sfsync.status says why nothing moves.
                crate::sync::set_mapping_error(m.id, &msg)?;
                clients::flush_stats()
            });
            let active: Vec<i32> = if transient { active } else { active.into_iter().filter(|id| *id != m.id).collect() };
            Step { active, more: false }
        }
    }
}

/// One chunk. Returns true when the backfill is done (or there was none).
fn chunk(ctx: Ctx, m: &Mapping, all: &[Mapping]) -> Result<bool> {
    let Some(row) = ctx.tx(|| load(m.id))? else { return Ok(true) };
    let narrow = row.columns.as_deref().map(|c| narrowed(m, c));
    let m = narrow.as_ref().unwrap_or(m);
    if m.columns.is_empty() {
        // Its columns were unmapped again meanwhile.
        finish(ctx, m, true)?;
        return Ok(true);
    }
    let client = clients::client(ctx, &m.connection)?;
    let method = match (&row.state[..], row.method.as_deref()) {
        ("running", Some(method)) => {
            // A new run (after a restart, or the first chunk of this worker): rate restarts.
            Method::parse(method)
        }
        _ => start(ctx, m, &client)?,
    };
    // The rate is that of this process's run: a restarted worker begins a new one.
    if RUNS.with(|r| r.borrow_mut().insert(m.id)) {
        ctx.tx(|| {
            columnar::begin(m)?;
            spi_util::exec(
                "UPDATE sfsync.backfills SET run_started_at = now(), run_rows_start = rows_done, updated_at = now() WHERE mapping_id = $1",
                &[m.id.into()],
            )
        })?;
    }
    let row = ctx.tx(|| load(m.id))?.ok_or_else(|| SyncError::Spi("backfill disappeared".into()))?;
    let finished = match method {
        Method::Rest => rest_chunk(ctx, m, all, &client, &row)?,
        Method::Bulk => bulk_chunk(ctx, m, all, &client, &row)?,
    };
    if finished {
        finish(ctx, m, row.columns.is_some())?;
        if let Some(job) = &row.job_id {
            let _ = client.bulk_delete(true, job); // best effort: results are not needed any more
        }
    }
    ctx.tx(clients::flush_stats)?;
    Ok(finished)
}

/// The estimate, the start mark and the method; state becomes 'running'.
fn start(ctx: Ctx, m: &Mapping, client: &salesforce::Client) -> Result<Method> {
    let estimate = client.query(&plan::count_query(&m.sobject, m.filter.as_deref()).map_err(SyncError::Invalid)?)?.total_size;
    let types: Vec<&str> = m.columns.iter().map(|c| c.sf_type.as_str()).collect();
    let method = plan::choose_method(estimate, guc::BACKFILL_BULK_THRESHOLD.get().max(0) as u64, &types);
    // Bulk: the job's creation time (Salesforce's clock) becomes the mark, see bulk_chunk.
    let mark = match method {
        Method::Bulk => None,
        Method::Rest => {
            let newest = client.query(&plan::start_mark_query(&m.sobject, m.filter.as_deref()).map_err(SyncError::Invalid)?)?;
            newest.records.first().and_then(|r| r.get("SystemModstamp")).and_then(Value::as_str).map(convert::colon_offset)
        }
    };
    let args: Vec<DatumWithOid> = vec![m.id.into(), method.as_str().into(), (estimate as i64).into(), mark.into()];
    ctx.tx(|| {
        columnar::begin(m)?;
        spi_util::exec(
            "UPDATE sfsync.backfills SET state = 'running', method = $2, rows_total = $3, start_mark = $4::timestamptz,
                    started_at = now(), run_started_at = now(), run_rows_start = rows_done, updated_at = now(), last_error = NULL
             WHERE mapping_id = $1",
            &args,
        )
    })?;
    Ok(method)
}

fn fields(m: &Mapping) -> Vec<&str> {
    m.columns.iter().map(|c| c.field.as_str()).collect()
}

fn resume_query(m: &Mapping, row: &Row) -> Result<String> {
    let after = match (&row.last_modstamp, &row.last_id) {
        (Some(s), Some(id)) => Some((s.as_str(), id.as_str())),
        _ => None,
    };
    plan::query(&m.sobject, &fields(m), &m.external_id, m.filter.as_deref(), after).map_err(SyncError::Invalid)
}

/// Applies one batch and records progress in the same transaction.
fn apply(ctx: Ctx, m: &Mapping, all: &[Mapping], row: &Row, rows: Rows, pos: &Position) -> Result<()> {
    let (n, last) = match &rows {
        Rows::Records(r) => (r.len(), r.last().cloned()),
        Rows::Csv(shape, b) => (b.len(), b.last_record(shape)),
    };
    let stamp = last.as_ref().and_then(|r| r.get("SystemModstamp")).and_then(Value::as_str).map(convert::colon_offset);
    let id = last.as_ref().and_then(|r| r.get("Id")).and_then(Value::as_str).map(str::to_string);
    let n = n as i64;
    let progress = |_: &Summary| {
        let args: Vec<DatumWithOid> = vec![
            m.id.into(),
            n.into(),
            pos.job_id.clone().into(),
            pos.locator.clone().into(),
            pos.page_rows.into(),
            stamp.clone().into(),
            id.clone().into(),
        ];
        let v = spi_util::json(
            "UPDATE sfsync.backfills SET rows_done = rows_done + $2, job_id = $3, locator = $4, page_rows = $5,
                    last_modstamp = $6::timestamptz, last_id = $7, updated_at = now(), last_error = NULL
             WHERE mapping_id = $1
             RETURNING jsonb_build_object('run_rows', rows_done - run_rows_start, 'rows_done', rows_done, 'rows_total', rows_total,
                                          'secs', extract(epoch FROM now() - run_started_at))",
            &args,
        )?
        .unwrap_or_default();
        let run_rows = v["run_rows"].as_i64().unwrap_or(0).max(0) as u64;
        let rate = plan::rate(run_rows, v["secs"].as_f64().unwrap_or(0.0));
        let eta =
            plan::eta_secs(v["rows_done"].as_i64().unwrap_or(0).max(0) as u64, v["rows_total"].as_i64().map(|t| t.max(0) as u64), rate);
        let args: Vec<DatumWithOid> = vec![m.id.into(), rate.into(), eta.into()];
        spi_util::exec("UPDATE sfsync.backfills SET rate = $2, eta_secs = $3 WHERE mapping_id = $1", &args)?;
        Ok(())
    };
    if row.columns.is_some() {
        apply::columns::batch(ctx, m, all, rows, &progress)?;
    } else {
        apply::batch(ctx, m, all, rows, Mark::Keep, &progress)?;
    }
    Ok(())
}

/// REST: a keyset query after the last applied record, paged, for up to CHUNK.
fn rest_chunk(ctx: Ctx, m: &Mapping, all: &[Mapping], client: &salesforce::Client, row: &Row) -> Result<bool> {
    let q = resume_query(m, row)?;
    let started = Instant::now();
    let mut iter = client.query_iter(&q, false);
    let mut batch = Vec::with_capacity(bulk::batch_size());
    loop {
        let next = iter.next().transpose()?;
        let end = next.is_none();
        if let Some(r) = next {
            batch.push(r);
        }
        // A page read is applied before the next is fetched, so the progress moves with
        // every page (2,000 records) even when the whole load fits one batch.
        let page_done = end || iter.page_left() == 0;
        if batch.len() >= bulk::batch_size() || (page_done && !batch.is_empty()) {
            apply(ctx, m, all, row, Rows::Records(&batch), &Position::default())?;
            batch.clear();
            if !end && (started.elapsed() > CHUNK || crate::worker::shutdown_requested()) {
                return Ok(false);
            }
        }
        if end {
            return Ok(true);
        }
    }
}

/// Bulk: reopen the job's page at its locator (skipping what is in), or start a job after
/// the last applied record; read for up to CHUNK.
fn bulk_chunk(ctx: Ctx, m: &Mapping, all: &[Mapping], client: &salesforce::Client, row: &Row) -> Result<bool> {
    let opts = BulkOptions { max_records: Some((bulk::batch_size() * 10).min(u32::MAX as usize) as u32), ..BulkOptions::default() };
    let resumed = row.job_id.as_deref().and_then(|job| {
        let info = client.bulk_job_info(true, job).ok().filter(|j| j.state == "JobComplete")?;
        match client.bulk_query_results(info, row.locator.as_deref(), &opts) {
            Ok(r) => Some(r),
            Err(e) => {
                pgrx::log!(
                    "sfsync: backfill of {}: Bulk job {job} cannot be resumed ({e}); querying after the last applied record",
                    m.table
                );
                None
            }
        }
    });
    let (reader, skip) = match resumed {
        Some(r) => (r, row.page_rows.max(0) as u64),
        None => {
            let r = client.bulk_query_with(&resume_query(m, row)?, false, &opts)?;
            // Records changed after the first job was created may be missing from it (or
            // come with older values): polling must begin there.
            let created = r.job().created_date.as_deref().map(convert::colon_offset);
            let args: Vec<DatumWithOid> = vec![m.id.into(), created.into()];
            ctx.tx(|| {
                spi_util::exec(
                    "UPDATE sfsync.backfills SET start_mark = COALESCE(start_mark, $2::timestamptz, now()) WHERE mapping_id = $1",
                    &args,
                )
            })?;
            (r, 0)
        }
    };
    let job_id = reader.job().id.clone();
    let shape = Shape::new(m, reader.headers())?;
    let start = Position { job_id: Some(job_id), locator: reader.page_locator().map(str::to_string), page_rows: 0 };
    // The CSV is read and laid out in columns by a thread of its own (HTTP and Rust only,
    // every signal blocked) while this one applies the previous batch. Two batches in flight
    // at most: memory stays bounded whatever the size of the object.
    let copy = columnar::copy_mode(m);
    let started = Instant::now();
    bulk::stream(reader, &shape, skip, start, (bulk::batch_size(), copy), |read| {
        if !read.batch.is_empty() {
            apply(ctx, m, all, row, Rows::Csv(&shape, &read.batch), &read.pos)?;
        }
        Ok(if crate::worker::shutdown_requested() {
            Flow::Stop
        } else if started.elapsed() >= CHUNK {
            Flow::PauseAtPage
        } else {
            Flow::Continue
        })
    })
}

/// Done: polling continues from the start mark (the pull subtracts its overlap); after a
/// column backfill from where it was (it waited meanwhile, and the other columns were not read).
fn finish(ctx: Ctx, m: &Mapping, columns: bool) -> Result<()> {
    ctx.tx(|| {
        let args: Vec<DatumWithOid> = vec![m.id.into()];
        if !columns {
            spi_util::exec(
            "UPDATE sfsync.sync_state s SET hwm_modstamp = COALESCE(b.start_mark, s.hwm_modstamp), last_pull_at = now(), last_error = NULL
             FROM sfsync.backfills b WHERE b.mapping_id = s.mapping_id AND s.mapping_id = $1",
                &args,
            )?;
        }
        columnar::finish(m);
        spi_util::exec(
            "UPDATE sfsync.backfills SET state = 'done', finished_at = now(), eta_secs = 0, job_id = NULL, locator = NULL,
                    page_rows = 0, updated_at = now(), last_error = NULL WHERE mapping_id = $1",
            &args,
        )?;
        Ok(())
    })
}
