//! Bulk API 2.0 query results as a source: a reader thread streams the CSV and lays each
//! batch out for the sink (`apply::csv::Batch`) while this thread applies the previous one.
//! Used by the backfill and by the poll's catch-up after a mass update.

use crate::error::Result;
use crate::sync::apply::csv::{Batch, Shape};
use std::sync::atomic::{AtomicBool, Ordering};

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
        salesforce::with_signals_blocked(|| scope.spawn(move || read(reader, shape, skip, start, (size, copy), pause, tx)));
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
    // One record reused for every row: the batch copies its fields (see `csv::Table`).
    let mut rec = salesforce::StringRecord::new();
    loop {
        let end = match reader.read_into(&mut rec) {
            Ok(more) => !more,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let mut paused = false;
        if !end {
            let loc = reader.page_locator();
            if loc != pos.locator.as_deref() {
                pos.locator = loc.map(str::to_string);
                pos.page_rows = 0;
                paused = pause.load(Ordering::Relaxed);
            }
            pos.page_rows += 1;
            if skip > 0 {
                skip -= 1;
                continue;
            }
            batch.push(shape, &rec);
        }
        if batch.len() >= size || end || paused {
            let next = batch.empty_like(shape);
            let full = std::mem::replace(&mut batch, next);
            if tx.send(Ok(Read { batch: full, pos: pos.clone(), end })).is_err() || end || paused {
                return;
            }
        }
    }
}
/// Records per batch of a load (`sfsync.backfill_batch_size`).
pub fn batch_size() -> usize {
    crate::guc::BACKFILL_BATCH_SIZE.get().max(1) as usize
}
