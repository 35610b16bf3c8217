//! `COPY … FROM` a buffer in memory, as the table's owner: the fastest way rows go into a
//! table (batched heap inserts), for the backfill's load from empty.
//!
//! The SQL command cannot be used: through SPI there is no STDIN, and `COPY FROM` a file
//! needs `pg_read_server_files`, which the table's owner does not have (nor should it). So
//! this runs COPY's own machinery (`BeginCopyFrom` with a data source callback, as
//! file_fdw does), after the checks `COPY` itself makes: the owner may INSERT into the
//! table, and no row-level security applies to it. The table's triggers, defaults,
//! constraints and index expressions run as its owner.

use crate::error::{Result, SyncError};
use crate::sync::Mapping;
use pgrx::pg_sys;
use std::cell::Cell;
use std::ffi::{c_int, c_void, CString};

thread_local! {
    /// The buffer being copied: its start, length and how much was handed out.
    static SOURCE: Cell<(usize, usize, usize)> = const { Cell::new((0, 0, 0)) };
}

/// COPY's data source: the next piece of the buffer, 0 at its end.
#[pgrx::pg_guard]
unsafe extern "C-unwind" fn read(out: *mut c_void, _min: c_int, max: c_int) -> c_int {
    SOURCE.with(|s| {
        let (start, len, done) = s.get();
        let n = (len - done).min(max.max(0) as usize);
        // SAFETY: `start..start+len` is the caller's live buffer (see `copy`); `out` has room for `max`.
        unsafe { std::ptr::copy_nonoverlapping((start as *const u8).add(done), out.cast::<u8>(), n) };
        s.set((start, len, done + n));
        n as c_int
    })
}

fn pstr(s: &str) -> *mut std::ffi::c_char {
    let c = CString::new(s).unwrap_or_default();
    unsafe { pg_sys::pstrdup(c.as_ptr()) }
}

/// Copies `bytes` (COPY text format, UTF-8) into the mapping's `columns` (unquoted names) of
/// its table as the table's owner. Returns the rows copied.
pub fn copy(m: &Mapping, columns: &[String], bytes: &[u8]) -> Result<usize> {
    m.as_owner(|| {
        let relid = pg_sys::Oid::from(m.oid);
        unsafe {
            let user = pg_sys::GetUserId();
            if pg_sys::pg_class_aclcheck(relid, user, pg_sys::ACL_INSERT as pg_sys::AclMode) != pg_sys::AclResult::ACLCHECK_OK {
                return Err(SyncError::Invalid(format!(
                    "the owner of {} may not INSERT into it; its rows go in through the pull instead",
                    m.table
                )));
            }
            if pg_sys::check_enable_rls(relid, pg_sys::InvalidOid, false) == pg_sys::CheckEnableRlsResult::RLS_ENABLED as c_int {
                return Err(SyncError::Invalid(format!(
                    "row-level security applies to the owner of {}; its rows go in through the pull instead",
                    m.table
                )));
            }
            let rel = pg_sys::table_open(relid, pg_sys::RowExclusiveLock as pg_sys::LOCKMODE);
            let pstate = pg_sys::make_parsestate(std::ptr::null_mut());
            pg_sys::addRangeTableEntryForRelation(pstate, rel, pg_sys::RowExclusiveLock as c_int, std::ptr::null_mut(), false, false);
            let mut names: *mut pg_sys::List = std::ptr::null_mut();
            for c in columns.iter().map(String::as_str).chain(["sfid"]) {
                names = pg_sys::lappend(names, pg_sys::makeString(pstr(c)).cast());
            }
            let mut options: *mut pg_sys::List = std::ptr::null_mut();
            for (k, v) in [("format", "text"), ("encoding", "UTF8")] {
                options = pg_sys::lappend(options, pg_sys::makeDefElem(pstr(k), pg_sys::makeString(pstr(v)).cast(), -1).cast());
            }
            SOURCE.with(|s| s.set((bytes.as_ptr() as usize, bytes.len(), 0)));
            let state = pg_sys::BeginCopyFrom(pstate, rel, std::ptr::null_mut(), std::ptr::null(), false, Some(read), names, options);
            let n = pg_sys::CopyFrom(state);
            pg_sys::EndCopyFrom(state);
            SOURCE.with(|s| s.set((0, 0, 0)));
            pg_sys::table_close(rel, pg_sys::NoLock as pg_sys::LOCKMODE);
            pg_sys::free_parsestate(pstate);
            // The statements after it see the rows, as after any statement.
            pg_sys::CommandCounterIncrement();
            Ok(n as usize)
        }
    })
}
