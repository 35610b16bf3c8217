//! The changes the capture trigger saw and has not yet written to `sfsync.outbox`: a
//! statement's changes go in together when the statement ends, not one INSERT (one executor)
//! per row; straight into the outbox's heap and indexes (`direct`) as a rule.
//!
//! When they are written:
//! - at the end of every statement (`ExecutorFinish`, and `crate::utility_hook` for COPY), after its
//!   AFTER triggers ran: the next statement sees them, as it would a row's own write;
//! - when 1,000 are pending (a long statement, a COPY of millions of rows);
//! - before the transaction commits or prepares (a path that fired row triggers without
//!   either hook, such as a subscription's apply with the trigger enabled ALWAYS).
//!
//! A change belongs to the subtransaction it was captured in: it is written only while that
//! subtransaction is the current one (a nested statement inside a savepoint never writes its
//! parent's changes, which a rollback to the savepoint would take along), passes to the parent
//! when the subtransaction commits, and is dropped with it when it aborts, as its row is.
//!
//! When the outbox has something the direct write would skip (`direct` says which), they go
//! in as one INSERT instead, run as the outbox's owner (users have no rights on it), its SQL
//! fully qualified so that the caller's search_path cannot lend it a function or a type.

use crate::error::SyncError;
use crate::plan::coalesce::Op;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use pgrx::PgOid;
use std::cell::RefCell;

/// Pending changes that make a statement write them at once.
const LIMIT: usize = 1000;

/// One captured change.
pub(super) struct Change {
    pub mapping: i32,
    pub op: Op,
    pub pk: String,
    pub sfid: Option<String>,
    pub changed: Option<Vec<String>>,
    /// JSON text: the changed columns' values before an update.
    pub base: Option<String>,
}

struct Pending {
    change: Change,
    subxact: pg_sys::SubTransactionId,
}

thread_local! {
    static PENDING: RefCell<Vec<Pending>> = const { RefCell::new(Vec::new()) };
    /// (one row, many rows)
    static PLANS: RefCell<(Option<OwnedPreparedStatement>, Option<OwnedPreparedStatement>)> = const { RefCell::new((None, None)) };
}

static mut PREVIOUS_FINISH: pg_sys::ExecutorFinish_hook_type = None;

/// Queues a change; writes the pending ones when there are many.
pub(super) fn add(change: Change) -> Result<(), SyncError> {
    let subxact = unsafe { pg_sys::GetCurrentSubTransactionId() };
    let full = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        p.push(Pending { change, subxact });
        p.len() >= LIMIT
    });
    if full {
        write()?;
    }
    Ok(())
}

/// A linked row's key changed: its pending changes follow it, like those already written.
pub(super) fn rekey(mapping: i32, old: &str, new: &str) {
    PENDING.with(|p| {
        for e in p.borrow_mut().iter_mut().filter(|e| e.change.mapping == mapping && e.change.pk == old) {
            e.change.pk = new.to_string();
        }
    });
}

/// Writes the pending changes, when all belong to the current subtransaction (otherwise the
/// statement of the parent that captured the first of them writes them all when it ends).
pub(super) fn write() -> Result<(), SyncError> {
    // Called at the end of every statement of every session: nothing pending is the rule.
    let batch: Vec<Change> = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        if p.is_empty() {
            return Vec::new();
        }
        let current = unsafe { pg_sys::GetCurrentSubTransactionId() };
        if p.iter().any(|e| e.subxact != current) {
            return Vec::new();
        }
        p.drain(..).map(|e| e.change).collect()
    });
    if batch.is_empty() || super::direct::insert(&batch)? {
        return Ok(());
    }
    as_outbox_owner(|| insert(batch))
}

/// Runs `f` as the owner of sfsync.outbox (the extension's owner, found through the syscache:
/// `privilege::extension_owner` would be a query per statement). Its SQL qualifies every
/// function, type and operator: the caller's search_path is in force.
pub(super) fn as_outbox_owner<T>(f: impl FnOnce() -> T) -> T {
    match outbox_owner() {
        Some(owner) => crate::privilege::as_role(owner, f),
        None => f(), // no outbox (the extension is being dropped): the INSERT says so
    }
}

/// The oid of relation `sfsync.<name>` through the syscache (no query, no search_path); None
/// when there is no such schema or relation (the extension is being dropped).
pub(super) fn sfsync_relation(name: &std::ffi::CStr) -> Option<pg_sys::Oid> {
    unsafe {
        let schema = pg_sys::get_namespace_oid(c"sfsync".as_ptr(), true);
        if schema == pg_sys::InvalidOid {
            return None;
        }
        let rel = pg_sys::get_relname_relid(name.as_ptr(), schema);
        (rel != pg_sys::InvalidOid).then_some(rel)
    }
}

fn outbox_owner() -> Option<pg_sys::Oid> {
    let rel = sfsync_relation(c"outbox")?;
    unsafe {
        let tuple = pg_sys::SearchSysCache1(pg_sys::SysCacheIdentifier::RELOID as _, rel.into());
        if tuple.is_null() {
            return None;
        }
        let owner = (*(pg_sys::GETSTRUCT(tuple) as pg_sys::Form_pg_class)).relowner;
        pg_sys::ReleaseSysCache(tuple);
        Some(owner)
    }
}

/// `changed` as an array literal (`{"a","b"}`), cast by the INSERT: a text[] of text[]s
/// cannot be passed, and unnest would flatten a two-dimensional array.
fn array_literal(items: &[String]) -> String {
    let mut s = String::from("{");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push('"');
        for ch in item.chars() {
            if ch == '"' || ch == '\\' {
                s.push('\\');
            }
            s.push(ch);
        }
        s.push('"');
    }
    s.push('}');
    s
}

/// The plan kept in `slot`, prepared on first use (kept for the process's life).
fn prepared<'p>(
    c: &mut pgrx::spi::SpiClient<'_>,
    slot: &'p mut Option<OwnedPreparedStatement>,
    sql: &str,
    types: [pg_sys::Oid; 6],
) -> Result<&'p OwnedPreparedStatement, pgrx::spi::Error> {
    if slot.is_none() {
        *slot = Some(c.prepare_mut(sql, &types.map(PgOid::from))?.keep());
    }
    Ok(slot.as_ref().expect("prepared above"))
}

fn insert(batch: Vec<Change>) -> Result<(), SyncError> {
    Spi::connect_mut(|c| {
        PLANS.with(|cell| {
            let mut plans = cell.borrow_mut();
            if batch.len() == 1 {
                let plan = prepared(
                    c,
                    &mut plans.0,
                    "INSERT INTO sfsync.outbox (mapping_id, op, pk, sfid, changed, base)
                     VALUES ($1, $2, $3, $4, $5, CAST($6 AS pg_catalog.jsonb))",
                    [pg_sys::INT4OID, pg_sys::TEXTOID, pg_sys::TEXTOID, pg_sys::VARCHAROID, pg_sys::TEXTARRAYOID, pg_sys::TEXTOID],
                )?;
                let e = batch.into_iter().next().expect("one");
                let args = [e.mapping.into(), e.op.as_str().into(), e.pk.into(), e.sfid.into(), e.changed.into(), e.base.into()];
                return c.update(plan, None, &args).map(|_| ());
            }
            // In capture order: the outbox ids order a record's changes.
            let plan = prepared(
                c,
                &mut plans.1,
                "INSERT INTO sfsync.outbox (mapping_id, op, pk, sfid, changed, base)
                 SELECT u.m, u.o, u.p, u.s, CAST(u.c AS pg_catalog.text[]), CAST(u.b AS pg_catalog.jsonb)
                 FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), pg_catalog.unnest($3),
                                 pg_catalog.unnest($4), pg_catalog.unnest($5), pg_catalog.unnest($6))
                      WITH ORDINALITY AS u(m, o, p, s, c, b, n)
                 ORDER BY u.n",
                [
                    pg_sys::INT4ARRAYOID,
                    pg_sys::TEXTARRAYOID,
                    pg_sys::TEXTARRAYOID,
                    pg_sys::TEXTARRAYOID,
                    pg_sys::TEXTARRAYOID,
                    pg_sys::TEXTARRAYOID,
                ],
            )?;
            let n = batch.len();
            let (mut mapping, mut op, mut pk, mut sfid, mut changed, mut base) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for e in batch {
                mapping.push(e.mapping);
                op.push(e.op.as_str());
                pk.push(e.pk);
                sfid.push(e.sfid);
                changed.push(e.changed.as_deref().map(array_literal));
                base.push(e.base);
            }
            let args = [mapping.into(), op.into(), pk.into(), sfid.into(), changed.into(), base.into()];
            c.update(plan, None, &args).map(|_| ())
        })
    })?;
    Ok(())
}

/// Installs the hooks and callbacks that write or drop pending changes (once per process).
pub(super) fn register() {
    // SAFETY: _PG_init runs before any query of this process; hooks chain.
    unsafe {
        PREVIOUS_FINISH = pg_sys::ExecutorFinish_hook;
        pg_sys::ExecutorFinish_hook = Some(executor_finish);
        pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn executor_finish(query: *mut pg_sys::QueryDesc) {
    unsafe {
        match PREVIOUS_FINISH {
            // Another extension's hook, through the FFI guard as any Postgres call is.
            Some(previous) => pg_sys::ffi::pg_guard_ffi_boundary(|| previous(query)),
            None => pg_sys::standard_ExecutorFinish(query),
        }
    }
    if let Err(e) = write() {
        e.raise();
    }
}

/// Before the transaction commits or prepares; dropped when it aborts.
pub(super) fn on_xact(event: pg_sys::XactEvent::Type) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_PRE_COMMIT | pg_sys::XactEvent::XACT_EVENT_PRE_PREPARE => {
            if PENDING.with(|p| p.borrow().is_empty()) {
                return;
            }
            // No statement is running any more: the INSERT needs a snapshot of its own.
            unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot()) };
            let written = write();
            unsafe { pg_sys::PopActiveSnapshot() };
            if let Err(e) = written {
                e.raise();
            }
            // Every subtransaction has ended: nothing can be left. Never commit without them.
            let left = PENDING.with(|p| p.borrow().len());
            if left > 0 {
                SyncError::Invalid(format!("sfsync: {left} captured changes could not be queued; the transaction is rolled back")).raise();
            }
        }
        pg_sys::XactEvent::XACT_EVENT_ABORT | pg_sys::XactEvent::XACT_EVENT_PREPARE | pg_sys::XactEvent::XACT_EVENT_COMMIT => {
            PENDING.with(|p| p.borrow_mut().clear());
        }
        _ => {}
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    mine: pg_sys::SubTransactionId,
    parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    PENDING.with(|p| {
        let mut p = p.borrow_mut();
        match event {
            pg_sys::SubXactEvent::SUBXACT_EVENT_COMMIT_SUB => {
                for e in p.iter_mut().filter(|e| e.subxact == mine) {
                    e.subxact = parent;
                }
            }
            pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB => p.retain(|e| e.subxact != mine),
            _ => {}
        }
    });
}
