//! Backend-side helpers of the capture trigger: the "sync is writing" flag that stops
//! echo loops, and the commit-time wake-up of the database's worker.

use pgrx::prelude::*;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};

thread_local! {
    // Process-local: only the process applying remote changes (the worker, or a backend
    // inside run_once) sets it, so user sessions can't switch capture off by accident.
    static APPLYING: Cell<bool> = const { Cell::new(false) };
}

static WAKE_AT_COMMIT: AtomicBool = AtomicBool::new(false);
static LAUNCHER_AT_COMMIT: AtomicBool = AtomicBool::new(false);

/// True while this process writes rows on behalf of the sync; the trigger skips them.
#[pg_extern(volatile, parallel_safe)]
fn is_applying() -> bool {
    APPLYING.with(|a| a.get())
}

/// RAII guard: rows written while it lives are not captured.
pub struct Applying {
    prev: bool,
}

impl Applying {
    pub fn start() -> Self {
        Applying { prev: APPLYING.with(|a| a.replace(true)) }
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

/// Registered once per process (in `_PG_init`, inherited by forked backends).
pub fn register_commit_hook() {
    unsafe { pg_sys::RegisterXactCallback(Some(on_xact), std::ptr::null_mut()) };
}
