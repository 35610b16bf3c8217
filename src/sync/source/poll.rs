//! Pull: Salesforce changes since the mapping's high-water mark, applied set-based.
//!
//! One queryAll (SystemModstamp order, deleted records included) per pass, paged with
//! nextRecordsUrl; each page is applied in its own transaction and advances the mark, so
//! an interrupted pass resumes where it stopped. The poll looks `sfsync.pull_overlap`
//! before the mark so records committed late with an earlier stamp are still seen; the
//! re-read ones change nothing because every write is guarded by IS DISTINCT FROM.

use super::{clients, conflicts, deletes, filter, load, Ctx, Mapping};
use crate::capture::Applying;
use crate::error::{Result, SyncError};
use crate::plan::{backfill, convert, soql};
use crate::{guc, spi_util};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::Spi;
use pgrx::spi::quote_identifier;
use salesforce::Record;
use serde::Serialize;
use serde_json::{json, Map, Value};

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct PullSummary {
    pub fetched: usize,
    pub inserted: usize,
    pub updated: usize,
    pub deleted: usize,
    pub failed: usize,
    /// Rows removed because their record no longer matches the mapping's filter.
    pub left_filter: usize,
}

impl PullSummary {
    pub(crate) fn add(&mut self, o: PullSummary) {
        self.fetched += o.fetched;
        self.inserted += o.inserted;
        self.updated += o.updated;
        self.deleted += o.deleted;
        self.failed += o.failed;
        self.left_filter += o.left_filter;
    }
}

/// Key under which a record's Postgres_Id__c travels in the page (not a column name).
const PGID: &str = "__sfsync_pgid";

/// `all` are the database's mappings (a lookup column needs its parent's).
pub fn pass(ctx: Ctx, m: &Mapping, all: &[Mapping]) -> Result<PullSummary> {
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
    let mut summary = PullSummary::default();
    let mut page = client.query_all(&q)?;
    let types: Vec<&str> = m.columns.iter().map(|c| c.sf_type.as_str()).collect();
    let threshold = guc::BACKFILL_BULK_THRESHOLD.get().max(0) as u64;
    if !page.done && backfill::choose_method(page.total_size, threshold, &types) == backfill::Method::Bulk {
        summary.add(bulk_catch_up(ctx, m, all, &client, &q)?);
    } else {
        loop {
            summary.add(apply_page(ctx, m, all, &page.records)?);
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
/// batches (see `load`); each batch advances the mark in its own transaction.
fn bulk_catch_up(ctx: Ctx, m: &Mapping, all: &[Mapping], client: &salesforce::Client, q: &str) -> Result<PullSummary> {
    let reader = client.bulk_query_with(q, true, &salesforce::BulkOptions::default())?;
    let shape = load::Shape::new(m, reader.headers())?;
    let job = reader.job().id.clone();
    let mut total = PullSummary::default();
    load::stream(reader, &shape, 0, load::Position::default(), (load::batch_size(), false), |read| {
        let mark = shape.newest_stamp(&read.batch.rows);
        total.add(load::apply_batch(ctx, m, all, &shape, &read.batch, &|_| advance(m, mark.as_deref(), 0))?);
        Ok(if crate::worker::shutdown_requested() { load::Flow::Stop } else { load::Flow::Continue })
    })?;
    let _ = client.bulk_delete(true, &job); // best effort: the results are not needed any more
    Ok(total)
}

/// Applies one page and advances the mark. In the worker a page that fails as a whole is
/// applied record by record, each in its own transaction, so one bad record is reported
/// in sfsync.errors instead of blocking the mapping.
fn apply_page(ctx: Ctx, m: &Mapping, all: &[Mapping], records: &[Record]) -> Result<PullSummary> {
    apply_batch(ctx, m, all, records, true, &|_| Ok(()))
}

/// The one apply path of the incremental pull and the backfill (`sync::backfill`).
/// `mark`: whether the batch advances the high-water mark (a backfill sets it at the end).
/// `then` runs in the batch's transaction after a successful apply (the backfill records
/// its progress there, so progress and rows commit together); after a record-by-record
/// retry it runs in a transaction of its own.
pub(crate) fn apply_batch(
    ctx: Ctx,
    m: &Mapping,
    all: &[Mapping],
    records: &[Record],
    mark: bool,
    then: &dyn Fn(&PullSummary) -> Result<()>,
) -> Result<PullSummary> {
    if records.is_empty() {
        return Ok(PullSummary::default());
    }
    let stamp_of = |r: &[Record]| if mark { max_modstamp(r) } else { None };
    let mark = stamp_of(records);
    let whole = ctx.tx(|| {
        let s = apply(m, all, records, mark.as_deref())?;
        then(&s)?;
        Ok(s)
    });
    let out = match whole {
        Ok(s) => return Ok(s),
        Err(e) if ctx == Ctx::Worker && records.len() > 1 => {
            pgrx::debug1!("sfsync: page of {} for {} failed ({e}); applying record by record", records.len(), m.table);
            let mut total = PullSummary::default();
            for rec in records {
                let one = std::slice::from_ref(rec);
                let stamp = stamp_of(one);
                match ctx.tx(|| apply(m, all, one, stamp.as_deref())) {
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
            PullSummary { failed: 1, ..Default::default() }
        }
        Err(e) => return Err(e),
    };
    ctx.tx(|| then(&out))?;
    Ok(out)
}

fn max_modstamp(records: &[Record]) -> Option<String> {
    records.iter().filter_map(|r| r.get("SystemModstamp").and_then(Value::as_str)).max().map(convert::colon_offset)
}

fn str_field<'a>(r: &'a Record, f: &str) -> Option<&'a str> {
    r.get(f).and_then(Value::as_str)
}

/// The set-based apply of some records, inside the current transaction.
pub(crate) fn apply(m: &Mapping, all: &[Mapping], records: &[Record], mark: Option<&str>) -> Result<PullSummary> {
    let _applying = Applying::start();
    let mut live = Vec::new();
    let mut gone = Vec::new();
    for r in records {
        let Some(id) = str_field(r, "Id") else { continue };
        if r.get("IsDeleted").and_then(Value::as_bool).unwrap_or(false) {
            gone.push(id.to_string());
            continue;
        }
        let mut row = Map::new();
        row.insert("sfid".into(), Value::String(id.to_string()));
        if let Some(pgid) = r.get(&m.external_id).filter(|v| !v.is_null()) {
            let pgid = match pgid {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            row.insert(PGID.into(), Value::String(pgid));
        }
        for c in &m.columns {
            let v = r.get(&c.field).map(|v| convert::from_sf(c, v)).unwrap_or(Value::Null);
            row.insert(c.column.clone(), v);
        }
        live.push(Value::Object(row));
    }
    translate_parents(m, all, &mut live)?;
    let mut s = PullSummary { fetched: records.len(), ..Default::default() };
    let tbl = &m.table;
    let pk = m.pk_ident();
    let ty = &m.pk_type;
    let cols: Vec<String> = m.columns.iter().map(|c| quote_identifier(&c.column)).collect();
    let page = spi_util::jsonb(Value::Array(live.clone()));
    if !live.is_empty() {
        // 1. Link rows we pushed whose Id never made it back (crash before the write-back).
        let sql = format!(
            "UPDATE {tbl} t SET sfid = p.sfid FROM jsonb_to_recordset($1) AS p(sfid text, {PGID} text)
             WHERE p.{PGID} IS NOT NULL AND t.sfid IS NULL AND t.{pk} = p.{PGID}::{ty}
               AND NOT EXISTS (SELECT 1 FROM {tbl} x WHERE x.sfid = p.sfid)"
        );
        spi_util::exec(&sql, &[page])?;
        // Rows with a pending local change: the mapping's conflict policy decides.
        s.updated += conflicts::resolve(m, records, &live)?;
        if !cols.is_empty() {
            // 2. Update changed rows, except those with a local change still on its way out.
            let set = cols.join(", ");
            let src: Vec<String> = cols.iter().map(|c| format!("p.{c}")).collect();
            let src = src.join(", ");
            let tgt: Vec<String> = cols.iter().map(|c| format!("t.{c}")).collect();
            let tgt = tgt.join(", ");
            let sql = format!(
                "UPDATE {tbl} t SET ({set}) = ROW({src}) FROM jsonb_populate_recordset(NULL::{tbl}, $1) AS p
                 WHERE t.sfid = p.sfid AND ROW({tgt}) IS DISTINCT FROM ROW({src})
                   AND NOT EXISTS (SELECT 1 FROM sfsync.outbox o WHERE o.mapping_id = $2 AND o.pk = t.{pk}::text AND o.state = 'pending')"
            );
            s.updated += spi_util::exec(&sql, &[spi_util::jsonb(Value::Array(live.clone())), m.id.into()])?;
        }
        // 3. Insert records we don't have: with their Postgres key when they carry one,
        //    else with the key's default. Not while a local delete of them is pending.
        let mut ins_cols = cols.clone();
        ins_cols.push("sfid".into());
        let list = ins_cols.join(", ");
        let src: Vec<String> = ins_cols.iter().map(|c| format!("p.{c}")).collect();
        let src = src.join(", ");
        let with_key: Vec<Value> = live
            .iter()
            .map(|r| {
                let mut r = r.as_object().cloned().unwrap_or_default();
                if let Some(pgid) = r.get(PGID).cloned() {
                    r.insert(m.pk_column.clone(), pgid);
                }
                Value::Object(r)
            })
            .collect();
        // Keyed rows take the Postgres key they carry; the others get the key's default.
        let insert = |keyed: bool| {
            let (keycol, keysrc, test) =
                if keyed { (format!(", {pk}"), format!(", p.{pk}"), "NOT NULL") } else { (String::new(), String::new(), "NULL") };
            format!(
                "INSERT INTO {tbl} ({list}{keycol})
                 SELECT {src}{keysrc} FROM jsonb_populate_recordset(NULL::{tbl}, $1) AS p
                 WHERE p.{pk} IS {test}
                   AND NOT EXISTS (SELECT 1 FROM {tbl} x WHERE x.sfid = p.sfid)
                   AND NOT EXISTS (SELECT 1 FROM sfsync.outbox o WHERE o.mapping_id = $2 AND o.state = 'pending'
                                   AND (o.sfid = p.sfid OR o.pk = p.{pk}::text))
                   AND NOT EXISTS (SELECT 1 FROM sfsync.delete_review r WHERE r.mapping_id = $2 AND r.decided_at IS NULL
                                   AND r.origin = 'postgres' AND (r.sfid = p.sfid OR r.key = p.{pk}::text))"
            )
        };
        let rows = Value::Array(with_key);
        s.inserted += spi_util::exec(&insert(true), &[spi_util::jsonb(rows.clone()), m.id.into()])?;
        s.inserted += spi_util::exec(&insert(false), &[spi_util::jsonb(rows), m.id.into()])?;
    }
    let ids: Vec<String> = records.iter().filter_map(|r| str_field(r, "Id").map(String::from)).collect();
    clear_errors(m, ids.into())?;
    // Deleted in Salesforce: per on_delete; a delete blocked locally is reported, not fatal.
    s.deleted = deletes::pulled(m, &gone)?;
    advance(m, mark, s.inserted + s.updated + s.deleted)?;
    Ok(s)
}

/// Lookup fields arrive as Salesforce Ids; the foreign key columns hold the parent's
/// Postgres key. A parent we don't have (yet) leaves the column NULL.
pub(crate) fn translate_parents(m: &Mapping, all: &[Mapping], rows: &mut [Value]) -> Result<()> {
    for p in &m.parents {
        let ids: Vec<String> = rows.iter().filter_map(|r| r.get(&p.column).and_then(Value::as_str).map(String::from)).collect();
        if ids.is_empty() {
            continue;
        }
        let Some(parent) = all.iter().find(|x| x.id == p.mapping_id) else { continue };
        let sql = format!(
            "SELECT jsonb_object_agg(t.sfid, t.{pk}::text) FROM {tbl} t WHERE t.sfid = ANY($1)",
            pk = parent.pk_ident(),
            tbl = parent.table
        );
        let keys = match spi_util::json(&sql, &[ids.into()])? {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        for r in rows.iter_mut() {
            if let Some(obj) = r.as_object_mut() {
                if let Some(Value::String(id)) = obj.get(&p.column) {
                    let key = keys.get(id).cloned().unwrap_or(Value::Null);
                    obj.insert(p.column.clone(), key);
                }
            }
        }
    }
    Ok(())
}

/// Applied records clear their earlier pull errors. `sfids`: a text[] of their Ids.
pub(crate) fn clear_errors(m: &Mapping, sfids: DatumWithOid) -> Result<()> {
    spi_util::exec(
        "DELETE FROM sfsync.record_errors WHERE mapping_id = $1 AND direction = 'pull' AND sfid = ANY($2)",
        &[m.id.into(), sfids],
    )?;
    Ok(())
}

pub(crate) fn advance(m: &Mapping, mark: Option<&str>, applied: usize) -> Result<()> {
    let args: Vec<DatumWithOid> = vec![m.id.into(), mark.into(), (applied as i64).into()];
    spi_util::exec(
        "UPDATE sfsync.sync_state SET hwm_modstamp = greatest(hwm_modstamp, $2::timestamptz),
                pulled_total = pulled_total + $3 WHERE mapping_id = $1",
        &args,
    )?;
    Ok(())
}

fn record_failure(m: &Mapping, rec: &Record, message: &str, mark: Option<&str>) -> Result<()> {
    let sfid = str_field(rec, "Id").unwrap_or_default();
    let key = rec.get(&m.external_id).and_then(Value::as_str).unwrap_or(sfid);
    let row = json!({"sfid": sfid, "pk": key, "message": message});
    let args: Vec<DatumWithOid> = vec![m.id.into(), spi_util::jsonb(row)];
    spi_util::exec(
        "INSERT INTO sfsync.record_errors AS e (mapping_id, direction, pk, sfid, operation, error_code, message)
         SELECT $1, 'pull', r.pk, r.sfid, 'apply', 'APPLY_FAILED', r.message FROM jsonb_to_record($2) AS r(pk text, sfid text, message text)
         ON CONFLICT (mapping_id, direction, pk) DO UPDATE SET message = EXCLUDED.message, attempts = e.attempts + 1, last_seen = now()",
        &args,
    )?;
    advance(m, mark, 0)
}
