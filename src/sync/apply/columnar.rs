//! The backfill's columnar apply of Bulk CSV rows (SQL in `plan::load`).
//!
//! A batch goes to Postgres as one `text[]` per column and is converted by the columns'
//! input functions inside a plain `INSERT .. SELECT`, the way COPY converts its input: no
//! jsonb is built or parsed. [`Batch`] is filled by the backfill's reader thread, which
//! lays the values out as text datums so the backend only wraps them into arrays.
//!
//! Rows that need the pull's full treatment — records carrying our Postgres key (they may
//! match a local row without an sfid), deleted records, and whole batches touching a row
//! with a local change on its way out (the conflict policy decides) — go through the
//! pull's own apply in the same transaction. A batch that fails goes through
//! `pull::apply_batch`, which isolates the bad record.
//!
//! While a table is being loaded from empty, the records are not looked for first, and
//! when no lookup needs translating they go in through `COPY` itself: a record that is
//! there after all (pushed meanwhile) fails the batch's unique sfid index, the batch goes
//! through the pull's apply, and from then on every batch looks first (one index probe per
//! record) through the columnar insert.

use super::pull::{self, PullSummary};
use super::{Ctx, Mapping};
use crate::capture::Applying;
use crate::error::{Result, SyncError};
use crate::plan::load::{self as plan, ParentKey};
use crate::spi_util;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::Spi;
use pgrx::spi::quote_identifier;
use salesforce::{Record, StringRecord};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    /// Per mapping: whether inserts must first look for records already in the table.
    static LOOK_FIRST: RefCell<HashMap<i32, bool>> = Default::default();
}

/// Where a batch's last record is in a Bulk job's results (the backfill's resume point).
#[derive(Debug, Default, Clone)]
pub struct Position {
    pub job_id: Option<String>,
    pub locator: Option<String>,
    pub page_rows: i64,
}

/// What the reader thread hands over.
pub struct Read {
    pub batch: Batch,
    /// Resume point after the batch.
    pub pos: Position,
    /// The last batch of the results.
    pub end: bool,
}

/// What `stream`'s caller wants after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Stop where a result page begins: the resume point is then its first record, so a
    /// later run neither downloads again nor skips what this one read.
    PauseAtPage,
    /// Stop now (shutdown); what the reader read ahead is read again next time.
    Stop,
}

/// Streams a Bulk query's results in batches: a thread of its own reads the CSV and lays it
/// out (HTTP and Rust only, every signal blocked) while `each` applies the previous batch on
/// this thread. At most two batches wait in between, so memory stays bounded whatever the
/// object's size. `skip` records are passed over first (what a previous run applied).
/// Returns true when the results were read to the end.
pub fn stream(
    reader: salesforce::BulkQueryReader<'_>,
    shape: &Shape,
    skip: u64,
    start: Position,
    (size, copy): (usize, bool),
    mut each: impl FnMut(Read) -> Result<Flow>,
) -> Result<bool> {
    let pause = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<std::result::Result<Read, salesforce::Error>>(2);
        let pause = &pause;
        super::cdc::with_signals_blocked(|| scope.spawn(move || read(reader, shape, skip, start, (size, copy), pause, tx)));
        for read in rx.iter() {
            let read = read?;
            let end = read.end;
            match each(read)? {
                _ if end => return Ok(true),
                Flow::Continue => {}
                Flow::PauseAtPage => pause.store(true, Ordering::Relaxed),
                Flow::Stop => return Ok(false),
            }
        }
        // The reader paused, or stopped after sending its error (returned above).
        Ok(false)
    })
}

/// The reader thread: sends batches until the results end, it is asked to pause (at the
/// next page's first record), or nobody listens any more. No Postgres calls here.
#[allow(clippy::too_many_arguments)]
fn read(
    mut reader: salesforce::BulkQueryReader<'_>,
    shape: &Shape,
    mut skip: u64,
    mut pos: Position,
    (size, copy): (usize, bool),
    pause: &AtomicBool,
    tx: std::sync::mpsc::SyncSender<std::result::Result<Read, salesforce::Error>>,
) {
    let mut batch = Batch::new(shape, size, copy);
    loop {
        let next = match reader.next().transpose() {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let end = next.is_none();
        let mut paused = false;
        if let Some(r) = next {
            let loc = reader.page_locator().map(str::to_string);
            if loc != pos.locator {
                pos.locator = loc;
                pos.page_rows = 0;
                paused = pause.load(Ordering::Relaxed);
            }
            pos.page_rows += 1;
            if skip > 0 {
                skip -= 1;
                continue;
            }
            batch.push(shape, r);
        }
        if batch.len() >= size || end || paused {
            let full = std::mem::replace(&mut batch, Batch::new(shape, size, copy));
            if tx.send(Ok(Read { batch: full, pos: pos.clone(), end })).is_err() || end || paused {
                return;
            }
        }
    }
}

/// Where the mapping's fields are in the CSV.
#[derive(Debug, Clone)]
pub struct Shape {
    headers: StringRecord,
    id: usize,
    stamp: Option<usize>,
    pgid: Option<usize>,
    deleted: Option<usize>,
    /// Per mapped column: its CSV position (None: not in the results, stays NULL) and how
    /// its text becomes the column's value.
    columns: Vec<(Option<usize>, plan::Cell)>,
}

impl Shape {
    pub fn new(m: &Mapping, headers: &StringRecord) -> Result<Shape> {
        let at = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
        let missing = || SyncError::Invalid(format!("Bulk query results of {} have no Id column", m.sobject));
        Ok(Shape {
            id: at("Id").ok_or_else(missing)?,
            stamp: at("SystemModstamp"),
            pgid: at(&m.external_id),
            deleted: at("IsDeleted"),
            columns: m.columns.iter().map(|c| (at(&c.field), plan::cell_kind(c))).collect(),
            headers: headers.clone(),
        })
    }

    /// The row as the pull's field map (empty = null, flags as booleans).
    pub fn record(&self, row: &StringRecord) -> Record {
        let mut r = salesforce::client::bulk::record_of(&self.headers, row);
        if let Some(v) = r.get_mut("IsDeleted") {
            *v = Value::Bool(v.as_str() == Some("true"));
        }
        r
    }

    fn plain(&self, row: &StringRecord) -> bool {
        let empty = |i: Option<usize>| i.and_then(|i| row.get(i)).is_none_or(str::is_empty);
        empty(self.pgid) && self.deleted.and_then(|i| row.get(i)) != Some("true")
    }

    fn id<'r>(&self, row: &'r StringRecord) -> &'r str {
        row.get(self.id).unwrap_or_default()
    }

    /// The newest SystemModstamp of some rows (as a timestamptz literal).
    pub fn newest_stamp(&self, rows: &[StringRecord]) -> Option<String> {
        let at = self.stamp?;
        rows.iter().filter_map(|r| r.get(at)).filter(|s| !s.is_empty()).max().map(crate::plan::convert::colon_offset)
    }
}

/// One column of a batch as text datums laid out the way `construct_md_array` takes them:
/// each value a varlena with a 4-byte header, 4-byte aligned, all in one buffer. Plain
/// Rust (no Postgres calls), so the reader thread can build it.
#[derive(Debug, Default)]
pub struct TextColumn {
    words: Vec<u32>,
    /// Per value: its first word, or None for NULL.
    at: Vec<Option<usize>>,
}

impl TextColumn {
    pub fn push(&mut self, v: Option<&str>) {
        let Some(s) = v else {
            self.at.push(None);
            return;
        };
        let len = 4 + s.len();
        let start = self.words.len();
        self.words.resize(start + len.div_ceil(4), 0);
        // SET_VARSIZE_4B: the length sits in the header's upper 30 bits (little-endian)
        // or lower 30 bits (big-endian), the two low/high bits 00 mean "4-byte header".
        self.words[start] = if cfg!(target_endian = "little") { (len as u32) << 2 } else { len as u32 & 0x3FFF_FFFF };
        let bytes: &mut [u8] = as_bytes_mut(&mut self.words[start + 1..]);
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        self.at.push(Some(start));
    }

    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// The column as a `text[]` parameter (built in the current memory context).
    fn datum(&self) -> DatumWithOid<'static> {
        let mut elems: Vec<pg_sys::Datum> = self
            .at
            .iter()
            .map(|at| match at {
                Some(w) => pg_sys::Datum::from(self.words[*w..].as_ptr()),
                None => pg_sys::Datum::from(0),
            })
            .collect();
        let mut nulls: Vec<bool> = self.at.iter().map(Option::is_none).collect();
        let mut dims = [self.at.len() as std::ffi::c_int];
        let mut lbs = [1 as std::ffi::c_int];
        // SAFETY: every non-null element points at a well-formed 4-byte-header varlena that
        // outlives the call; construct_md_array copies them into a palloc'd array.
        unsafe {
            let arr = pg_sys::construct_md_array(
                elems.as_mut_ptr(),
                nulls.as_mut_ptr(),
                1,
                dims.as_mut_ptr(),
                lbs.as_mut_ptr(),
                pg_sys::TEXTOID,
                -1,
                false,
                b'i' as std::ffi::c_char,
            );
            DatumWithOid::new(pg_sys::Datum::from(arr), pg_sys::TEXTARRAYOID)
        }
    }
}

/// The bytes of some words (u32 has no padding and any byte pattern is valid).
fn as_bytes_mut(words: &mut [u32]) -> &mut [u8] {
    // SAFETY: same memory, u8 has alignment 1, the length is in bytes.
    unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), std::mem::size_of_val(words)) }
}

/// A batch of Bulk CSV rows, with the plain ones already in columns, or in COPY format.
#[derive(Debug, Default)]
pub struct Batch {
    /// Every row, as read (the pull's apply and the resume point use them).
    pub rows: Vec<StringRecord>,
    ids: TextColumn,
    columns: Vec<TextColumn>,
    /// The plain rows in COPY text format, instead of `columns` (see [`copy_mode`]).
    copy: Option<Vec<u8>>,
    /// Positions in `rows` (ascending) of the rows that need the pull's apply.
    special: Vec<usize>,
}

impl Batch {
    pub fn new(shape: &Shape, capacity: usize, copy: bool) -> Batch {
        Batch {
            rows: Vec::with_capacity(capacity),
            columns: if copy { vec![] } else { shape.columns.iter().map(|_| TextColumn::default()).collect() },
            copy: copy.then(Vec::new),
            ..Default::default()
        }
    }

    pub fn push(&mut self, shape: &Shape, row: StringRecord) {
        if shape.plain(&row) {
            let id = shape.id(&row);
            self.ids.push(Some(id));
            let value = |at: Option<usize>| at.and_then(|i| row.get(i)).unwrap_or_default();
            if let Some(out) = &mut self.copy {
                plan::copy_row(out, shape.columns.iter().map(|(at, kind)| (*kind, value(*at))), id);
            } else {
                for ((at, kind), col) in shape.columns.iter().zip(&mut self.columns) {
                    col.push(plan::cell(*kind, value(*at)).as_deref());
                }
            }
        } else {
            self.special.push(self.rows.len());
        }
        self.rows.push(row);
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn records(&self, shape: &Shape, which: impl Iterator<Item = usize>) -> Vec<Record> {
        which.map(|i| shape.record(&self.rows[i])).collect()
    }
}

/// Records per batch of a load (`sfsync.backfill_batch_size`).
pub fn batch_size() -> usize {
    crate::guc::BACKFILL_BATCH_SIZE.get().max(1) as usize
}

/// A new load of the mapping starts: inserts look first only if the table has rows.
pub fn begin(m: &Mapping) -> Result<()> {
    let has_rows = Spi::get_one::<bool>(&format!("SELECT EXISTS (SELECT 1 FROM {})", m.table))?.unwrap_or(true);
    LOOK_FIRST.with(|l| l.borrow_mut().insert(m.id, has_rows));
    Ok(())
}

/// The load is over: later batches of this mapping (a large catch-up) look first.
pub fn finish(m: &Mapping) {
    LOOK_FIRST.with(|l| l.borrow_mut().remove(&m.id));
}

fn look_first(m: &Mapping) -> bool {
    LOOK_FIRST.with(|l| l.borrow().get(&m.id).copied()).unwrap_or(true)
}

/// Whether the plain rows of the next batches can go in through `COPY`: into a table being
/// loaded from empty (nothing to look up) whose mapping has no lookups to translate.
pub fn copy_mode(m: &Mapping) -> bool {
    !look_first(m) && m.parents.is_empty()
}

/// Applies the batch in one transaction with `then` (progress) in it; see the module docs.
pub fn apply_batch(
    ctx: Ctx,
    m: &Mapping,
    all: &[Mapping],
    shape: &Shape,
    batch: &Batch,
    then: &dyn Fn(&PullSummary) -> Result<()>,
) -> Result<PullSummary> {
    let whole = ctx.tx(|| {
        let s = apply(m, all, shape, batch)?;
        then(&s)?;
        Ok(s)
    });
    match whole {
        Ok(s) => Ok(s),
        // Inside the caller's transaction (run_once) there is no retrying a failed statement.
        Err(e) if ctx == Ctx::Session => Err(e),
        Err(e) => {
            pgrx::log!("sfsync: fast load of {} rows into {} failed ({e}); applying them through the pull", batch.len(), m.table);
            LOOK_FIRST.with(|l| l.borrow_mut().insert(m.id, true));
            let records = batch.records(shape, 0..batch.len());
            pull::apply_batch(ctx, m, all, &records, false, then)
        }
    }
}

fn apply(m: &Mapping, all: &[Mapping], shape: &Shape, batch: &Batch) -> Result<PullSummary> {
    let _applying = Applying::start();
    if batch.ids.len() > 0 && local_changes_waiting(m)? {
        let ids: Vec<&str> =
            (0..batch.len()).filter(|i| batch.special.binary_search(i).is_err()).map(|i| shape.id(&batch.rows[i])).collect();
        if held_back(m, &ids)? {
            // Rare (a local change to a row being loaded): the pull's apply decides per row.
            return pull::apply(m, all, &batch.records(shape, 0..batch.len()), None);
        }
    }
    let mut s = match &batch.copy {
        Some(_) if look_first(m) => {
            // Read for COPY, but an earlier batch found records already here: look first.
            let plain = (0..batch.len()).filter(|i| batch.special.binary_search(i).is_err());
            pull::apply(m, all, &batch.records(shape, plain), None)?
        }
        Some(bytes) => copy_in(m, batch, bytes)?,
        None => columnar(m, all, batch)?,
    };
    if !batch.special.is_empty() {
        s.add(pull::apply(m, all, &batch.records(shape, batch.special.iter().copied()), None)?);
    }
    Ok(s)
}

/// Whether the mapping has local changes on their way out, or local deletes held for review.
fn local_changes_waiting(m: &Mapping) -> Result<bool> {
    let args: Vec<DatumWithOid> = vec![m.id.into()];
    Ok(Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM sfsync.outbox WHERE mapping_id = $1 AND state = 'pending')
             OR EXISTS (SELECT 1 FROM sfsync.delete_review WHERE mapping_id = $1 AND decided_at IS NULL AND origin = 'postgres')",
        &args,
    )?
    .unwrap_or(true))
}

/// Whether any of these records' local row has a pending change or a held delete.
fn held_back(m: &Mapping, ids: &[&str]) -> Result<bool> {
    let sql = format!(
        "SELECT EXISTS (SELECT 1 FROM unnest($2::text[]) AS p(sfid)
         WHERE EXISTS (SELECT 1 FROM sfsync.outbox o WHERE o.mapping_id = $1 AND o.state = 'pending' AND o.sfid = p.sfid)
            OR EXISTS (SELECT 1 FROM {tbl} t JOIN sfsync.outbox o ON o.mapping_id = $1 AND o.state = 'pending' AND o.pk = t.{pk}::text
                       WHERE t.sfid = p.sfid)
            OR EXISTS (SELECT 1 FROM sfsync.delete_review r WHERE r.mapping_id = $1 AND r.decided_at IS NULL
                       AND r.origin = 'postgres' AND r.sfid = p.sfid))",
        tbl = m.table,
        pk = m.pk_ident()
    );
    let args: Vec<DatumWithOid> = vec![m.id.into(), ids.to_vec().into()];
    Ok(Spi::get_one_with_args::<bool>(&sql, &args)?.unwrap_or(true))
}

fn columnar(m: &Mapping, all: &[Mapping], batch: &Batch) -> Result<PullSummary> {
    let n = batch.ids.len();
    let mut s = PullSummary { fetched: n, ..Default::default() };
    if n == 0 {
        return Ok(s);
    }
    let exprs: Vec<String> = m
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let parent = m
                .parents
                .iter()
                .find(|p| p.column == c.column)
                .and_then(|p| all.iter().find(|x| x.id == p.mapping_id))
                .map(|x| ParentKey { table: x.table.clone(), pk: x.pk_ident() });
            plan::value_expr(c, &format!("p.v{}", i + 1), parent.as_ref())
        })
        .collect();
    let cols: Vec<String> = m.columns.iter().map(|c| quote_identifier(&c.column)).collect();
    let sql = plan::statements(&m.table, &m.pk_ident(), &cols, &exprs);
    let mut args: Vec<DatumWithOid> = vec![batch.ids.datum()];
    args.extend(batch.columns.iter().map(TextColumn::datum));
    args.push(m.id.into());
    let arrays = &args[..args.len() - 1];
    let present = look_first(m) && Spi::get_one_with_args::<i64>(&plan::count_present(&m.table), &args[..1])?.unwrap_or(0) > 0;
    if present {
        if let Some(update) = &sql.update {
            s.updated += spi_util::exec(update, &args)?;
        }
        s.inserted += spi_util::exec(&sql.insert_checked, arrays)?;
    } else {
        s.inserted += spi_util::exec(&sql.insert, arrays)?;
    }
    applied(m, batch, &s)?;
    Ok(s)
}

/// The plain rows through `COPY … FROM` a file in the server's temporary-file directory
/// (its `pgsql_tmp` prefix makes Postgres remove a leftover at its next start). COPY's
/// batched heap inserts are the fastest way into a table; the worker is a superuser.
fn copy_in(m: &Mapping, batch: &Batch, bytes: &[u8]) -> Result<PullSummary> {
    let mut s = PullSummary { fetched: batch.ids.len(), ..Default::default() };
    if batch.ids.len() == 0 {
        return Ok(s);
    }
    let dir = std::path::Path::new("base/pgsql_tmp");
    let path = dir.join(format!("pgsql_tmp_sfsync_load.{}", std::process::id()));
    let io = |e: std::io::Error| crate::error::SyncError::Spi(format!("writing {}: {e}", path.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::write(&path, bytes).map_err(io)?;
    let cols: Vec<String> = m.columns.iter().map(|c| quote_identifier(&c.column)).collect();
    let sql = plan::copy_statement(&m.table, &cols, &pgrx::spi::quote_literal(path.to_string_lossy()));
    let copied = spi_util::exec(&sql, &[]);
    let _ = std::fs::remove_file(&path);
    s.inserted = copied?;
    applied(m, batch, &s)?;
    Ok(s)
}

/// Bookkeeping of applied plain rows: their earlier pull errors go, the counter moves.
fn applied(m: &Mapping, batch: &Batch, s: &PullSummary) -> Result<()> {
    pull::clear_errors(m, batch.ids.datum())?;
    pull::advance(m, None, s.inserted + s.updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_columns_hold_4_byte_header_varlenas() {
        let mut c = TextColumn::default();
        c.push(Some("abcde"));
        c.push(None);
        c.push(Some(""));
        assert_eq!(c.len(), 3);
        assert_eq!(c.at, vec![Some(0), None, Some(3)], "9 bytes take 3 words; NULL takes none");
        let header = |w: u32| if cfg!(target_endian = "little") { w >> 2 } else { w & 0x3FFF_FFFF };
        assert_eq!(header(c.words[0]), 9);
        assert_eq!(&as_bytes_mut(&mut c.words[1..3])[..5], b"abcde");
        assert_eq!(header(c.words[3]), 4, "an empty string is a bare header");
        #[cfg(target_endian = "little")]
        assert_eq!(c.words[0] & 0b11, 0, "low bits 00: a 4-byte header, not short or external");
    }
}
