//! Write-through changes whose transaction rolled back after Salesforce accepted them.
//!
//! The write-through trigger notes each (mapping, key) it sent, with its subtransaction.
//! When the transaction (or the savepoint the change was made under) aborts, an abort
//! callback — which can't use SPI — hands those keys to the database's worker through a
//! bounded shared-memory queue and wakes it; the worker (`sync::push::rollback`) then makes
//! Salesforce equal to the committed row. A key too long for an entry, or a full queue, marks
//! the mapping instead (the worker then checks all of it). On commit (or PREPARE) the notes
//! are dropped: what Salesforce got is what Postgres committed.
//!
//! Until the worker has repaired a key, the apply paths defer records of it ([`awaits`], as
//! they do for a key a write-through transaction still holds), so the rolled-back change's
//! own echo can't bring the row back first.

use crate::token_cache::Text;
use pgrx::prelude::*;
use pgrx::{pg_shmem_init, PGRXSharedMemory, PgLwLock};
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};

const ENTRIES: usize = 4096;
const KEY: usize = 112;
const MARKS: usize = 64;

#[derive(Copy, Clone, Default)]
struct Entry {
    dboid: u32,
    mapping: i32,
    key: Text<KEY>,
}

#[derive(Copy, Clone)]
pub struct Queue {
    len: usize,
    entries: [Entry; ENTRIES],
    /// (database, mapping) whose keys did not fit: the whole mapping is checked.
    marks: [(u32, i32); MARKS],
}

impl Default for Queue {
    fn default() -> Self {
        Queue { len: 0, entries: [Entry::default(); ENTRIES], marks: [(0, 0); MARKS] }
    }
}

unsafe impl PGRXSharedMemory for Queue {}

static QUEUE: PgLwLock<Queue> = unsafe { PgLwLock::new(c"sfsync_abort_queue") };
static INITIALIZED: AtomicBool = AtomicBool::new(false);
static CALLBACKS: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This backend's write-through changes in the open transaction: (subtransaction, mapping, key).
    static SENT: RefCell<Vec<(pg_sys::SubTransactionId, i32, String)>> = const { RefCell::new(Vec::new()) };
    /// The worker's keys taken from the queue and not repaired yet: (mapping, key).
    static TAKEN: RefCell<Vec<(i32, String)>> = const { RefCell::new(Vec::new()) };
    /// The worker's mappings to check whole.
    static MARKED: RefCell<Vec<i32>> = const { RefCell::new(Vec::new()) };
}

pub fn init_shmem() {
    pg_shmem_init!(QUEUE);
    INITIALIZED.store(true, Ordering::SeqCst);
}

fn dboid() -> u32 {
    unsafe { pg_sys::MyDatabaseId }.to_u32()
}

/// The trigger sent the change of `key` of `mapping` and Salesforce accepted it.
pub fn sent(mapping: i32, key: &str) {
    if !INITIALIZED.load(Ordering::SeqCst) {
        return; // not preloaded: no worker to hand a rollback to
    }
    if !CALLBACKS.swap(true, Ordering::SeqCst) {
        unsafe {
            pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut());
            pg_sys::RegisterSubXactCallback(Some(on_subxact), std::ptr::null_mut());
        }
    }
    let sub = unsafe { pg_sys::GetCurrentSubTransactionId() };
    SENT.with(|s| s.borrow_mut().push((sub, mapping, key.to_string())));
}

#[pg_guard]
unsafe extern "C-unwind" fn on_xact(event: pg_sys::XactEvent::Type, _arg: *mut std::ffi::c_void) {
    match event {
        pg_sys::XactEvent::XACT_EVENT_ABORT => hand_over(|_| true),
        pg_sys::XactEvent::XACT_EVENT_COMMIT | pg_sys::XactEvent::XACT_EVENT_PREPARE => SENT.with(|s| s.borrow_mut().clear()),
        _ => {}
    }
}

#[pg_guard]
unsafe extern "C-unwind" fn on_subxact(
    event: pg_sys::SubXactEvent::Type,
    my_subid: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    // Subtransaction ids grow: those at or above the aborted one are it and its children.
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        hand_over(|sub| sub >= my_subid);
    }
}

/// Moves the noted changes `which` selects (by subtransaction) into the queue; wakes the worker.
fn hand_over(which: impl Fn(pg_sys::SubTransactionId) -> bool) {
    let gone: Vec<(i32, String)> = SENT.with(|s| {
        let mut s = s.borrow_mut();
        let (out, keep): (Vec<_>, Vec<_>) = s.drain(..).partition(|(sub, _, _)| which(*sub));
        *s = keep;
        out.into_iter().map(|(_, m, k)| (m, k)).collect()
    });
    if gone.is_empty() {
        return;
    }
    let db = dboid();
    {
        let mut q = QUEUE.exclusive();
        for (mapping, key) in gone {
            let len = q.len;
            let queued = q.entries[..len].iter().any(|e| e.dboid == db && e.mapping == mapping && e.key.get() == key);
            match Text::of(&key) {
                _ if queued => {}
                Some(t) if len < ENTRIES => {
                    q.entries[len] = Entry { dboid: db, mapping, key: t };
                    q.len += 1;
                }
                _ => {
                    if !q.marks.contains(&(db, mapping)) {
                        if let Some(free) = q.marks.iter_mut().find(|m| m.0 == 0) {
                            *free = (db, mapping);
                        }
                    }
                }
            }
        }
    }
    crate::registry::wake_worker(db);
}

/// The worker takes its database's queued keys (kept in the worker until [`repaired`]) and
/// marked mappings. Returns every key not repaired yet, and the mappings to check whole.
pub fn take() -> (Vec<(i32, String)>, Vec<i32>) {
    if INITIALIZED.load(Ordering::SeqCst) {
        let db = dboid();
        let mut q = QUEUE.exclusive();
        let len = q.len;
        let mut kept = 0;
        for i in 0..len {
            let e = q.entries[i];
            if e.dboid == db {
                TAKEN.with(|t| {
                    let mut t = t.borrow_mut();
                    if !t.iter().any(|(m, k)| *m == e.mapping && k == e.key.get()) {
                        t.push((e.mapping, e.key.get().to_string()));
                    }
                });
            } else {
                q.entries[kept] = e;
                kept += 1;
            }
        }
        q.len = kept;
        for mark in q.marks.iter_mut().filter(|m| m.0 == db) {
            MARKED.with(|mk| mk.borrow_mut().push(mark.1));
            *mark = (0, 0);
        }
    }
    (TAKEN.with(|t| t.borrow().clone()), MARKED.with(|m| m.borrow().clone()))
}

/// The worker made Salesforce equal to the committed row of `key`.
pub fn repaired(mapping: i32, key: &str) {
    TAKEN.with(|t| t.borrow_mut().retain(|(m, k)| !(*m == mapping && k == key)));
}

/// The worker checked the whole mapping.
pub fn checked(mapping: i32) {
    MARKED.with(|m| m.borrow_mut().retain(|x| *x != mapping));
}

/// Whether a rolled-back write-through change of `key` still waits for its repair: records
/// of it are not applied meanwhile.
pub fn awaits(mapping: i32, key: &str) -> bool {
    if TAKEN.with(|t| t.borrow().iter().any(|(m, k)| *m == mapping && k == key)) || MARKED.with(|m| m.borrow().contains(&mapping)) {
        return true;
    }
    if !INITIALIZED.load(Ordering::SeqCst) {
        return false;
    }
    let db = dboid();
    let q = QUEUE.share();
    q.entries[..q.len].iter().any(|e| e.dboid == db && e.mapping == mapping && e.key.get() == key) || q.marks.contains(&(db, mapping))
}
