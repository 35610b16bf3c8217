//! sfsync's one `ProcessUtility` hook, installed in every process (`_PG_init`). Around the
//! statement: the database commands that need the worker out of the way (`DROP DATABASE`,
//! `CREATE DATABASE … TEMPLATE`, `DROP EXTENSION sfsync`; only when preloaded, where the
//! worker and its shared memory exist). After it: the changes a `COPY` captured that are still
//! waiting to be written to the outbox (`capture`).

use pgrx::pg_sys;
use pgrx::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};

static mut PREVIOUS: pg_sys::ProcessUtility_hook_type = None;
static PRELOADED: AtomicBool = AtomicBool::new(false);

/// Installs the hook (once per process; `preloaded` from `shared_preload_libraries`).
pub fn register(preloaded: bool) {
    PRELOADED.store(preloaded, Ordering::Relaxed);
    // SAFETY: _PG_init runs before any statement of this process; hooks chain.
    unsafe {
        PREVIOUS = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
    }
}

/// Runs the statement (`call`: the previous hook or the standard one) with what sfsync does
/// around and after it.
fn around(pstmt: *mut pg_sys::PlannedStmt, call: impl FnOnce()) {
    if PRELOADED.load(Ordering::Relaxed) {
        crate::worker::with_database_released(pstmt, call);
    } else {
        call();
    }
    crate::capture::statement_ended();
}

#[cfg(feature = "pg13")]
#[pg_guard]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query: *const std::ffi::c_char,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    around(pstmt, || unsafe {
        match PREVIOUS {
            // Through the FFI guard like any Postgres call: its ERROR must become a Rust
            // unwind (so that `finally` blocks run), never a longjmp over Rust frames.
            Some(previous) => pg_sys::ffi::pg_guard_ffi_boundary(|| previous(pstmt, query, context, params, env, dest, qc)),
            None => pg_sys::standard_ProcessUtility(pstmt, query, context, params, env, dest, qc),
        }
    })
}

#[cfg(not(feature = "pg13"))]
#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    around(pstmt, || unsafe {
        match PREVIOUS {
            // Through the FFI guard like any Postgres call: its ERROR must become a Rust
            // unwind (so that `finally` blocks run), never a longjmp over Rust frames.
            Some(previous) => pg_sys::ffi::pg_guard_ffi_boundary(|| previous(pstmt, query, read_only_tree, context, params, env, dest, qc)),
            None => pg_sys::standard_ProcessUtility(pstmt, query, read_only_tree, context, params, env, dest, qc),
        }
    })
}
