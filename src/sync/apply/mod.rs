//! The sink: every record that comes from Salesforce is applied here, whichever source read
//! it (`sync::source`). A source hands over a batch — whole records ([`Rows::Records`]) or
//! Bulk CSV rows ([`Rows::Csv`]) — and whether it advances the mapping's high-water mark;
//! [`batch`] applies it in one transaction and chooses how:
//!
//! - records go through the set-based apply (`records`): conversion, lookup translation,
//!   conflict policy for rows with a local change pending, held-back local deletes,
//!   Salesforce deletes per `on_delete` (`deletes`);
//! - CSV rows go in columnar (`text[]` per column) or through `COPY` into a table loaded
//!   from empty (`columnar`), except the rows that need the record treatment;
//! - a batch that fails is applied record by record, each in its own transaction, so one bad
//!   record lands in sfsync.errors and the rest goes in; the mark moves past it, and
//!   `source::retry` reads the failed record again by Id until it applies.
//!
//! Change events apply inside their own transaction through the same pieces (`records`,
//! `partial` for changed-fields-only updates, `deletes`); the formula refresh writes its
//! calculated columns through `calculated`. Nothing here reads from Salesforce.

pub mod calculated;
pub mod columnar;
pub mod columns;
pub mod conflicts;
pub mod copy_from;
pub mod csv;
pub mod deletes;
pub mod held;
pub mod partial;
pub mod records;
#[cfg(any(test, feature = "pg_test"))]
mod tests;

use crate::error::Result;
use crate::plan::convert;
use crate::spi_util;
use crate::sync::{Ctx, Mapping};
use csv::{Batch, Shape};
use pgrx::datum::DatumWithOid;
use salesforce::Record;
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Summary {
    pub fetched: usize,
    pub inserted: usize,
    pub updated: usize,
    pub deleted: usize,
    pub failed: usize,
    /// Rows removed because their record no longer matches the mapping's filter.
    pub left_filter: usize,
    /// Records not applied because a write-through transaction still holds their key
    /// (`held::locked`): read again shortly.
    pub deferred: usize,
}

impl Summary {
    pub fn add(&mut self, o: Summary) {
        self.fetched += o.fetched;
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.deleted += o.deleted;
        self.failed += o.failed;
        self.left_filter += o.left_filter;
        self.deferred += o.deferred;
    }
}

/// A batch as a source hands it over.
#[derive(Clone, Copy)]
pub enum Rows<'a> {
    Records(&'a [Record]),
    Csv(&'a Shape, &'a Batch),
}

/// Whether the batch moves the mapping's high-water mark to its newest SystemModstamp (a
/// poll), or leaves it (the backfill sets it when it is done).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Advance,
    Keep,
}

/// Applies one batch. `then` runs in the batch's transaction after a successful apply (the
/// backfill records its progress there, so progress and rows commit together); after a
/// record-by-record retry it runs in a transaction of its own.
pub fn batch(ctx: Ctx, m: &Mapping, all: &[Mapping], rows: Rows, mark: Mark, then: &dyn Fn(&Summary) -> Result<()>) -> Result<Summary> {
    let (shape, csv) = match rows {
        Rows::Records(records) => return records_batch(ctx, m, all, records, mark, then),
        // COPY and the columnar load can't tell what a user's BEFORE trigger wrote instead.
        Rows::Csv(shape, csv) if m.before_triggers => return records_batch(ctx, m, all, &csv.records(shape, 0..csv.len()), mark, then),
        Rows::Csv(shape, csv) => (shape, csv),
    };
    // Rows a write-through transaction holds take the record path, which defers them.
    let held_back = ctx.tx(|| {
        if !m.writes_through() {
            return Ok(None);
        }
        let recs = csv.records(shape, 0..csv.len());
        let ours = |r: &Record| r.get(&m.external_id).and_then(Value::as_str).and_then(|v| m.key_of(v)).map(String::from);
        let pairs: Vec<(String, Option<String>)> =
            recs.iter().filter_map(|r| Some((r.get("Id")?.as_str()?.to_string(), ours(r)))).collect();
        Ok((!held::locked(m, &pairs)?.is_empty()).then_some(recs))
    })?;
    if let Some(recs) = held_back {
        return records_batch(ctx, m, all, &recs, mark, then);
    }
    let stamp = if mark == Mark::Advance { csv.newest_stamp(shape) } else { None };
    let whole = ctx.tx(|| {
        let m = &*m.current()?;
        let s = columnar::apply(m, all, shape, csv)?;
        advance(m, stamp.as_deref(), 0)?;
        then(&s)?;
        Ok(s)
    });
    match whole {
        Ok(s) => Ok(s),
        // Inside the caller's transaction (run_once) there is no retrying a failed statement.
        Err(e) if ctx == Ctx::Session => Err(e),
        Err(e) => {
            pgrx::log!("sfsync: fast load of {} rows into {} failed ({e}); applying them through the pull", csv.len(), m.table);
            columnar::look_first_from_now(m);
            records_batch(ctx, m, all, &csv.records(shape, 0..csv.len()), mark, then)
        }
    }
}

/// Whole records in one transaction; in the worker a batch that fails as a whole is applied
/// record by record, each in its own transaction.
fn records_batch(
    ctx: Ctx,
    m: &Mapping,
    all: &[Mapping],
    records: &[Record],
    mark: Mark,
    then: &dyn Fn(&Summary) -> Result<()>,
) -> Result<Summary> {
    if records.is_empty() {
        return Ok(Summary::default());
    }
    let stamp_of = |r: &[Record]| if mark == Mark::Advance { max_modstamp(r) } else { None };
    let mark = stamp_of(records);
    let whole = ctx.tx(|| {
        let s = records::apply(&*m.current()?, all, records, mark.as_deref())?;
        then(&s)?;
        Ok(s)
    });
    let out = match whole {
        Ok(s) => return Ok(s),
        Err(e) if ctx == Ctx::Worker && records.len() > 1 => {
            pgrx::debug1!("sfsync: page of {} for {} failed ({e}); applying record by record", records.len(), m.table);
            let mut total = Summary::default();
            for rec in records {
                let one = std::slice::from_ref(rec);
                let stamp = stamp_of(one);
                match ctx.tx(|| records::apply(&*m.current()?, all, one, stamp.as_deref())) {
                    Ok(s) => total.add(s),
                    Err(e) => {
                        total.failed += 1;
                        ctx.tx(|| record_failure(m, rec, &e.to_string(), stamp.as_deref()))?;
                    }
                }
            }
            total
        }
        Err(e) if ctx == Ctx::Worker => {
            let rec = &records[0];
            ctx.tx(|| record_failure(m, rec, &e.to_string(), mark.as_deref()))?;
            Summary { failed: 1, ..Default::default() }
        }
        Err(e) => return Err(e),
    };
    ctx.tx(|| then(&out))?;
    Ok(out)
}

fn max_modstamp(records: &[Record]) -> Option<String> {
    records.iter().filter_map(|r| r.get("SystemModstamp").and_then(Value::as_str)).max().map(convert::colon_offset)
}

/// Applied records clear their earlier pull errors. `sfids`: a text[] of their Ids.
pub fn clear_errors(m: &Mapping, sfids: DatumWithOid) -> Result<()> {
    spi_util::exec(
        "DELETE FROM sfsync.record_errors WHERE mapping_id = $1 AND direction = 'pull' AND sfid = ANY($2)",
        &[m.id.into(), sfids],
    )?;
    Ok(())
}

pub fn advance(m: &Mapping, mark: Option<&str>, applied: usize) -> Result<()> {
    let args: Vec<DatumWithOid> = vec![m.id.into(), mark.into(), (applied as i64).into()];
    spi_util::exec(
        "UPDATE sfsync.sync_state SET hwm_modstamp = greatest(hwm_modstamp, $2::timestamptz),
                pulled_total = pulled_total + $3 WHERE mapping_id = $1",
        &args,
    )?;
    Ok(())
}

fn record_failure(m: &Mapping, rec: &Record, message: &str, mark: Option<&str>) -> Result<()> {
    let sfid = rec.get("Id").and_then(Value::as_str).unwrap_or_default();
    let key = rec.get(&m.external_id).and_then(Value::as_str).and_then(|v| m.key_of(v)).unwrap_or(sfid);
    let row = json!({"sfid": sfid, "pk": key, "message": message});
    // Read again by Id (source::retry) after the record backoff of plan::retry, until it
    // applies or an operator discards it: the mark moves on, the record is not forgotten.
    let backoff = crate::plan::retry::Backoff::RECORD;
    let args: Vec<DatumWithOid> =
        vec![m.id.into(), spi_util::jsonb(row), backoff.base.as_secs_f64().into(), backoff.cap.as_secs_f64().into()];
    spi_util::exec(
        "INSERT INTO sfsync.record_errors AS e (mapping_id, direction, pk, sfid, operation, error_code, message, next_retry_at)
         SELECT $1, 'pull', r.pk, r.sfid, 'apply', 'APPLY_FAILED', r.message, now() + make_interval(secs => least($4, $3 * 2))
         FROM jsonb_to_record($2) AS r(pk text, sfid text, message text)
         ON CONFLICT (mapping_id, direction, pk) DO UPDATE SET message = EXCLUDED.message, attempts = e.attempts + 1,
             last_seen = now(), next_retry_at = now() + make_interval(secs => least($4, $3 * 2 ^ least(e.attempts + 1, 20)))",
        &args,
    )?;
    advance(m, mark, 0)
}
