//! Capture: the AFTER ROW trigger on synced tables, the "sync is writing" flag that stops
//! echo loops, and the commit-time wake-up of the database's worker.
//!
//! The trigger records only *which* record changed and *which* mapped columns (op, key,
//! Salesforce Id, changed column names); the push reads the values when it sends them. That
//! keeps the cost in the user's transaction to one small outbox row (written with the rest of
//! the statement's by `pending`), and a burst of updates to one row sends its latest values once.

use crate::error::SyncError;
use crate::plan::coalesce::Op;
pub(crate) use columns::has_column;
use columns::{Columns, Values};
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, Ordering};

mod columns;
mod direct;
mod pending;
#[cfg(any(test, feature = "pg_test"))]
mod tests;

thread_local! {
    /// Mapping id -> its table's oid, as checked by `owns`.
    static MAPPING_TABLES: RefCell<std::collections::HashMap<i32, u32>> = RefCell::new(std::collections::HashMap::new());
    // Process-local: only the process applying remote changes (the worker, or a backend
    // inside run_once) sets it, so user sessions can't switch capture off by accident. It
    // holds the trigger depth at which the sync's own statements run: only their rows are
    // skipped, writes of user triggers nested under them are captured.
    static APPLYING: Cell<Option<i32>> = const { Cell::new(None) };
}

static WAKE_AT_COMMIT: AtomicBool = AtomicBool::new(false);
static LAUNCHER_AT_COMMIT: AtomicBool = AtomicBool::new(false);

/// True while this process writes rows on behalf of the sync.
#[pg_extern(volatile, parallel_safe)]
pub(crate) fn is_applying() -> bool {
    APPLYING.with(|a| a.get()).is_some()
}

/// `pg_trigger_depth()`: how many trigger calls the current statement is nested in. The
/// counter itself is static in trigger.c; its SQL function is the one way to read it.
fn trigger_depth() -> i32 {
    unsafe { pgrx::direct_function_call::<i32>(pg_sys::pg_trigger_depth, &[]) }.unwrap_or(0)
}

/// Whether a row the capture trigger sees now was written by the sync's own statement (the
/// trigger runs one level below the statement that fired it), not by a user trigger that
/// statement fired: an enrichment trigger's writes are the user's, and get pushed.
pub(crate) fn sync_wrote_it() -> bool {
    APPLYING.with(|a| a.get()).is_some_and(|depth| trigger_depth() <= depth + 1)
}

/// RAII guard: rows the sync's own statements write while it lives are not captured
/// (writes of user triggers those statements fire still are).
pub struct Applying {
    prev: Option<i32>,
}

impl Applying {
    pub fn start() -> Self {
        let depth = trigger_depth();
        Applying { prev: APPLYING.with(|a| a.replace(Some(a.get().map_or(depth, |outer| outer.min(depth))))) }
    }
}

impl Drop for Applying {
    fn drop(&mut self) {
        let prev = self.prev;
        APPLYING.with(|a| a.set(prev));
    }
}

/// Called by the capture trigger: the worker's latch is set when this transaction commits.
#[pg_extern(volatile, parallel_unsafe)]
fn wake_at_commit() {
    wake_worker_at_commit();
}

/// The worker's latch is set when this transaction commits (something was queued).
pub fn wake_worker_at_commit() {
    WAKE_AT_COMMIT.store(true, Ordering::Relaxed);
}

/// Called from the extension script: once CREATE EXTENSION commits (so the new worker can
/// see it), this database needs a worker.
#[pg_extern(volatile, parallel_unsafe)]
fn notify_launcher() {
    LAUNCHER_AT_COMMIT.store(true, Ordering::Relaxed);
}

/// Pid of this database's sync worker, NULL when none runs.
#[pg_extern(volatile, parallel_safe)]
fn worker_pid() -> Option<i32> {
    crate::registry::worker_pid(unsafe { pg_sys::MyDatabaseId }.to_u32())
}

#[pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    pending::on_xact(event);
    match event {
        pg_sys::XactEvent::XACT_EVENT_COMMIT => {
            let db = unsafe { pg_sys::MyDatabaseId }.to_u32();
            if WAKE_AT_COMMIT.swap(false, Ordering::Relaxed) {
                crate::registry::wake_worker(db);
            }
            if LAUNCHER_AT_COMMIT.swap(false, Ordering::Relaxed) {
                crate::registry::database_wants_worker(db);
            }
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT => {
            WAKE_AT_COMMIT.store(false, Ordering::Relaxed);
            LAUNCHER_AT_COMMIT.store(false, Ordering::Relaxed);
        }
        _ => {}
    }
}

/// A utility statement ended (`crate::utility_hook`): the changes a COPY captured go to the
/// outbox now, as a query's do at `ExecutorFinish`.
pub fn statement_ended() {
    if let Err(e) = pending::write() {
        e.raise();
    }
}

/// Registered once per process (in `_PG_init`, inherited by forked backends).
pub fn register_commit_hook() {
    unsafe { pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut()) };
    pending::register();
}

/// Trigger arguments: mapping id, key column, then the mapped columns. It runs as whoever
/// writes the table (a SECURITY DEFINER function would set its user and search_path for each
/// row, a twentieth of a multi-row statement's time); its few catalog steps switch to the
/// catalog's owner, and the outbox is written by sfsync's own code (`direct`), so writers need
/// no rights on sfsync.outbox.
/// An error is a plain ERROR with sfsync's message (no Rust panic text).
#[pg_trigger]
fn capture<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, SyncError> {
    match capture_row(trigger, Sink::Outbox) {
        Ok(v) => Ok(v),
        Err(e) => e.raise(),
    }
}

/// The capture trigger of a shadow run (`mode => 'shadow'`): the same arguments and rules,
/// and the change is also logged in the shadow log (`crate::shadow`) with the values it would
/// send. The push skips a shadow run's outbox entries until go_live. SECURITY DEFINER like
/// `capture`.
#[pg_trigger]
fn shadow_capture<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, SyncError> {
    match capture_row(trigger, Sink::Shadow) {
        Ok(v) => Ok(v),
        Err(e) => e.raise(),
    }
}

/// Where a captured change goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sink {
    /// sfsync.outbox, for the push.
    Outbox,
    /// The outbox, held until go_live, and the shadow log: what would be sent.
    Shadow,
}

fn capture_row<'a>(trigger: &'a PgTrigger<'a>, sink: Sink) -> Result<Option<PgHeapTuple<'a, pgrx::AllocatedByPostgres>>, SyncError> {
    if sync_wrote_it() {
        return Ok(None);
    }
    let args = trigger.extra_args().map_err(|e| SyncError::Invalid(format!("sfsync.capture trigger arguments: {e}")))?;
    if args.len() < 2 {
        return Err(SyncError::Invalid("sfsync.capture needs (mapping id, key column, columns...) arguments".into()));
    }
    let mapping: i32 = args[0].parse().map_err(|_| SyncError::Invalid(format!("sfsync.capture: bad mapping id {:?}", args[0])))?;
    let td = trigger.trigger_data();
    if !owns(mapping, unsafe { (*td.tg_relation).rd_id }.to_u32())? {
        return Ok(None); // the mapping is gone (unsynced meanwhile): nothing to send for it
    }
    queue(mapping, td, &args[1], args[2..].iter().map(String::as_str), sink)?;
    Ok(None)
}

/// Whether this process is applying pulled changes now (the worker, or `run_once`): a row
/// trigger that fires while it does and `sync_wrote_it` is false saw a user trigger's write.
pub(crate) fn inside_apply() -> bool {
    APPLYING.with(|a| a.get()).is_some()
}

/// Queues the row change the trigger `td` saw for the push: op, key, Salesforce Id and the
/// mapped columns it changed. Also used by the write-through trigger for the writes user
/// triggers make during an apply, which the worker pushes rather than calling in its
/// transaction.
pub(crate) fn queue<'c>(
    mapping: i32,
    td: &pg_sys::TriggerData,
    pk_column: &str,
    columns: impl Iterator<Item = &'c str>,
    sink: Sink,
) -> Result<(), SyncError> {
    let relid = unsafe { (*td.tg_relation).rd_id };
    let desc = unsafe { (*td.tg_relation).rd_att };
    let cols = columns::find(unsafe { (*td.tg_trigger).tgoid }, desc, pk_column, columns);
    // A mapping out of step with its table (changed while the sfsync_follow_ddl event trigger
    // was disabled) never fails the user's write: what can be captured is, the rest is alerted.
    let Some(pk) = &cols.pk else {
        out_of_step(mapping, relid, pk_column, "its changes are not captured");
        return Ok(());
    };
    for c in &cols.missing {
        out_of_step(mapping, relid, c, "its field is not sent");
    }
    let sfid = |v: &Values| cols.sfid.as_ref().and_then(|c| v.text(c));
    let key = |v: &Values| v.text(pk).ok_or_else(|| SyncError::Invalid("sfsync: a synced key column is NULL".into()));
    let event = td.tg_event;
    let op = event & pg_sys::TRIGGER_EVENT_OPMASK;
    let out = Out { sink, mapping, columns: &cols };
    if op == pg_sys::TRIGGER_EVENT_INSERT {
        let new = Values::of(desc, td.tg_trigtuple);
        out.record(Op::Insert, key(&new)?, sfid(&new), None, None, Some(&new))?;
    } else if op == pg_sys::TRIGGER_EVENT_UPDATE {
        let (old, new) = (Values::of(desc, td.tg_trigtuple), Values::of(desc, td.tg_newtuple));
        if !old.same(&new, pk) {
            let (old_key, new_key) = (key(&old)?, key(&new)?);
            match sfid(&new).or_else(|| sfid(&old)) {
                // A linked row re-keys its record: the same Salesforce Id, its external ID
                // rewritten (the key column among `changed` says so), nothing deleted. What
                // was queued under the old key follows the row.
                Some(id) => {
                    if sink == Sink::Shadow {
                        crate::shadow::rekey(mapping, &old_key, &new_key)?;
                    }
                    pending::rekey(mapping, &old_key, &new_key);
                    let moved: Vec<pgrx::datum::DatumWithOid> = vec![mapping.into(), old_key.into(), new_key.clone().into()];
                    pending::as_outbox_owner(|| {
                        Spi::run_with_args(
                            "UPDATE sfsync.outbox SET pk = $3 WHERE mapping_id OPERATOR(pg_catalog.=) $1 AND pk OPERATOR(pg_catalog.=) $2",
                            &moved,
                        )
                    })?;
                    let (mut changed, base) = changed_columns(&cols, &old, &new);
                    changed.insert(0, pk_column.to_string());
                    out.record(Op::Update, new_key, Some(id), Some(changed), base, Some(&new))?;
                }
                // Never linked: Salesforce knows it (if at all) by the old key; that record
                // goes and one under the new key comes.
                None => {
                    out.record(Op::Delete, old_key, None, None, None, None)?;
                    out.record(Op::Insert, new_key, None, None, None, Some(&new))?;
                }
            }
        } else {
            let (changed, base) = changed_columns(&cols, &old, &new);
            if changed.is_empty() {
                return Ok(()); // no mapped column changed: nothing to send
            }
            out.record(Op::Update, key(&new)?, sfid(&new), Some(changed), base, Some(&new))?;
        }
    } else if op == pg_sys::TRIGGER_EVENT_DELETE {
        let old = Values::of(desc, td.tg_trigtuple);
        out.record(Op::Delete, key(&old)?, sfid(&old), None, None, None)?;
    }
    if sink == Sink::Outbox {
        WAKE_AT_COMMIT.store(true, Ordering::Relaxed);
    }
    Ok(())
}

/// Where the changes one trigger call saw are recorded.
struct Out<'r> {
    sink: Sink,
    mapping: i32,
    columns: &'r Columns,
}

impl Out<'_> {
    /// Records one change; `row` is the row as written (its values go to the shadow log).
    fn record(
        &self,
        op: Op,
        pk: String,
        sfid: Option<String>,
        changed: Option<Vec<String>>,
        base: Option<serde_json::Value>,
        row: Option<&Values>,
    ) -> Result<(), SyncError> {
        match self.sink {
            Sink::Outbox => record_with_base(self.mapping, op, pk, sfid, changed, base),
            Sink::Shadow => {
                // Held in the outbox too (the push skips a shadow run's entries): a pull
                // meets the pending change as it would on a live table, and go_live only
                // releases what is there.
                record_with_base(self.mapping, op, pk.clone(), sfid.clone(), changed.clone(), base.clone())?;
                let mut values = serde_json::Map::new();
                if let Some(row) = row {
                    for c in self.columns.mapped.iter().filter(|c| changed.as_ref().is_none_or(|ch| ch.contains(&c.name))) {
                        values.insert(c.name.clone(), row.text(c).map_or(serde_json::Value::Null, serde_json::Value::String));
                    }
                }
                let base = match base {
                    Some(serde_json::Value::Object(b)) => b,
                    _ => serde_json::Map::new(),
                };
                let entry = crate::plan::shadow::Entry { op, sfid, changed, base, values };
                crate::shadow::record(self.mapping, &pk, entry)
            }
        }
    }
}

thread_local! {
    /// (mapping, column) already alerted as out of step by this process.
    static OUT_OF_STEP: RefCell<std::collections::HashSet<(i32, String)>> = RefCell::new(std::collections::HashSet::new());
}

/// A synced column is missing from the table: an `out_of_step` alert (once per process and
/// column), in a subtransaction so that even a failure to raise it leaves the write alone.
pub(crate) fn out_of_step(mapping: i32, table: pg_sys::Oid, column: &str, what: &str) {
    if !OUT_OF_STEP.with(|s| s.borrow_mut().insert((mapping, column.to_string()))) {
        return;
    }
    let message = format!(
        "column \"{column}\" of {} is synced but no longer exists (changed while the sfsync_follow_ddl event trigger was \
         disabled?): {what}; run sfsync.sync_table on the table again",
        crate::privilege::table_name(table)
    );
    let raised = crate::spi_util::subtransaction(|| {
        crate::alerts::raise(Some(mapping), None, crate::alerts::AlertKind::OutOfStep, &message, serde_json::json!({"column": column}))
    });
    if let Err(f) = raised {
        pgrx::warning!("sfsync: {message} (the alert could not be raised: {})", f.message);
    }
}

/// The mapped columns an UPDATE changed, and their values before it (text form) for the
/// conflict check of the pull.
fn changed_columns(cols: &Columns, old: &Values, new: &Values) -> (Vec<String>, Option<serde_json::Value>) {
    let mut changed = Vec::new();
    let mut base = serde_json::Map::new();
    for c in cols.mapped.iter().filter(|c| !old.same(new, c)) {
        changed.push(c.name.clone());
        base.insert(c.name.clone(), old.text(c).map_or(serde_json::Value::Null, serde_json::Value::String));
    }
    (changed, Some(serde_json::Value::Object(base)))
}

/// The trigger queues changes with the catalog owner's rights on whatever table it
/// is attached to, and its arguments name the mapping: a trigger made by hand on another table
/// with another mapping's id would queue pushes (deletes too) of that mapping's records. Only
/// the mapping's own table may capture for it. A mapping never changes tables (ids are not
/// reused), so each process asks once per mapping. False: no such mapping (any more).
fn owns(mapping: i32, table: u32) -> Result<bool, SyncError> {
    let known = MAPPING_TABLES.with(|m| m.borrow().get(&mapping).copied());
    let tbl = match known {
        Some(t) => t,
        None => {
            let args: Vec<pgrx::datum::DatumWithOid> = vec![mapping.into()];
            // One row always (NULL when there is no such mapping): get_one of no row is an error.
            // As the catalog's owner (the trigger runs as whoever writes), every name qualified.
            let t = pending::as_outbox_owner(|| {
                Spi::get_one_with_args::<i64>(
                    "SELECT (SELECT CAST(CAST(tbl AS pg_catalog.oid) AS pg_catalog.int8) FROM sfsync.mappings
                              WHERE id OPERATOR(pg_catalog.=) $1)",
                    &args,
                )
            })?
            .map(|t| t as u32)
            .unwrap_or(0);
            if t != 0 {
                MAPPING_TABLES.with(|m| m.borrow_mut().insert(mapping, t));
            }
            t
        }
    };
    if tbl == table || tbl == 0 {
        Ok(tbl != 0)
    } else {
        Err(SyncError::Invalid(format!(
            "sfsync.capture: this table is not the one of mapping {mapping}; the capture trigger is installed by sfsync.sync_table, \
             not by hand (drop trigger sfsync_capture, or run sfsync.sync_table on the table)"
        )))
    }
}

fn record_with_base(
    mapping: i32,
    op: Op,
    pk: String,
    sfid: Option<String>,
    changed: Option<Vec<String>>,
    base: Option<serde_json::Value>,
) -> Result<(), SyncError> {
    let base = base.map(|b| b.to_string());
    pending::add(pending::Change { mapping, op, pk, sfid, changed, base })
}
