//! `DROP DATABASE` and `CREATE DATABASE … TEMPLATE` refuse a database someone is connected
//! to, and our worker always is. sfsync's `ProcessUtility` hook (`utility_hook`) asks the
//! database's worker to leave first and keeps the launcher away while the command runs —
//! what a user would otherwise do by hand with `pg_terminate_backend`. If the command fails,
//! the launcher starts the worker again. A `DROP EXTENSION sfsync` waits for the worker's
//! pass in progress instead of deadlocking with it.

use crate::registry;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::PgList;
use std::ffi::CStr;
use std::time::{Duration, Instant};

/// How long the command waits for the worker to go (it finishes the HTTP call it is in,
/// bounded by `sfsync.http_timeout`); then Postgres's own wait and error take over.
const WAIT: Duration = Duration::from_secs(15);

/// Runs the utility statement `run`; a DROP or CREATE DATABASE naming a database whose worker
/// runs has the worker leave first (`crate::utility_hook` calls this when preloaded).
pub fn with_database_released(pstmt: *mut pg_sys::PlannedStmt, run: impl FnOnce()) {
    if drops_sfsync(pstmt) {
        // The worker's pass locks sfsync's catalog and the synced tables as it goes; DROP
        // EXTENSION locks them in its own order, and the two can deadlock. The pass lock
        // (held by a pass for its whole length) makes the DROP wait for the pass in
        // progress and keeps the next one from starting until the DROP commits.
        if let Err(e) = crate::sync::hold_pass_lock() {
            error!("sfsync: waiting for the worker's pass before DROP EXTENSION: {e}");
        }
    }
    let Some(db) = target_database(pstmt).filter(|db| registry::worker_pid(*db).is_some()) else {
        return run();
    };
    registry::hold(db);
    // The Postgres error of a failed command is re-thrown after `finally`.
    let run = std::panic::AssertUnwindSafe(run);
    PgTryBuilder::new(move || {
        let run = run;
        stop_worker(db);
        (run.0)()
    })
    .finally(|| {
        registry::release(db);
        registry::wake_launcher();
    })
    .execute()
}

/// Whether the statement is a DROP EXTENSION that names sfsync.
fn drops_sfsync(pstmt: *mut pg_sys::PlannedStmt) -> bool {
    // SAFETY: a utility statement's node tree, read only; names are NUL-terminated.
    unsafe {
        let stmt = (*pstmt).utilityStmt;
        if stmt.is_null() || !pgrx::is_a(stmt, pg_sys::NodeTag::T_DropStmt) {
            return false;
        }
        let drop = stmt.cast::<pg_sys::DropStmt>();
        if (*drop).removeType != pg_sys::ObjectType::OBJECT_EXTENSION {
            return false;
        }
        PgList::<pg_sys::Node>::from_pg((*drop).objects).iter_ptr().any(|n| extension_name(n) == Some(b"sfsync".as_slice()))
    }
}

/// An extension's name in a DROP EXTENSION's object list (a String node).
unsafe fn extension_name<'a>(node: *mut pg_sys::Node) -> Option<&'a [u8]> {
    #[cfg(any(feature = "pg13", feature = "pg14"))]
    let name = pgrx::is_a(node, pg_sys::NodeTag::T_String).then(|| (*node.cast::<pg_sys::Value>()).val.str_);
    #[cfg(not(any(feature = "pg13", feature = "pg14")))]
    let name = pgrx::is_a(node, pg_sys::NodeTag::T_String).then(|| (*node.cast::<pg_sys::String>()).sval);
    name.filter(|p| !p.is_null()).map(|p| CStr::from_ptr(p).to_bytes())
}

/// The database a DROP DATABASE drops or a CREATE DATABASE copies, if it exists.
fn target_database(pstmt: *mut pg_sys::PlannedStmt) -> Option<u32> {
    // SAFETY: a utility statement's node tree, read only; names are NUL-terminated.
    unsafe {
        let stmt = (*pstmt).utilityStmt;
        if stmt.is_null() {
            return None;
        }
        let name = if pgrx::is_a(stmt, pg_sys::NodeTag::T_DropdbStmt) {
            (*stmt.cast::<pg_sys::DropdbStmt>()).dbname
        } else if pgrx::is_a(stmt, pg_sys::NodeTag::T_CreatedbStmt) {
            let options = PgList::<pg_sys::DefElem>::from_pg((*stmt.cast::<pg_sys::CreatedbStmt>()).options);
            let template = options
                .iter_ptr()
                .find(|d| !(**d).defname.is_null() && CStr::from_ptr((**d).defname).to_bytes() == b"template" && !(**d).arg.is_null())?;
            pg_sys::defGetString(template)
        } else {
            return None;
        };
        if name.is_null() {
            return None;
        }
        let oid = pg_sys::get_database_oid(name, true);
        (oid != pg_sys::InvalidOid).then(|| oid.to_u32())
    }
}

/// SIGTERM to the worker, then wait (interruptibly) until it is gone.
fn stop_worker(db: u32) {
    let Some(pid) = registry::worker_pid(db) else { return };
    // SAFETY: plain kill(2) to a process of our own cluster.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let started = Instant::now();
    while registry::worker_pid(db) == Some(pid) && unsafe { libc::kill(pid, 0) } == 0 && started.elapsed() < WAIT {
        check_for_interrupts!();
        unsafe { pg_sys::pg_usleep(20_000) };
    }
}
