//! Keeps the text of statements that may carry a secret out of the server log.
//!
//! With the default `log_min_error_statement = error`, a failing statement is logged with
//! its full text (`STATEMENT: SELECT sfsync.add_connection(..., client_secret => '...')`),
//! whatever made it fail: a wrong secret, a typo in an argument name, a missing privilege.
//! An `emit_log_hook` (the one place every log line passes before it is written, in every
//! backend of a server that preloads sfsync) marks such entries `hide_stmt`, the flag
//! `errhidestmt()` sets. A statement "may carry a secret" when its text names one of the
//! functions that take secrets, or when `add_connection` ran inside it (a wrapper function,
//! `EXECUTE` of a prepared statement). Statement logging itself (`log_statement`,
//! `log_min_duration_statement`, auto_explain: LOG lines that quote the statement) has its
//! line replaced when the quoted text names those functions; what it cannot cover (a
//! prepared statement's EXECUTE logged before it runs) is in docs/secrets.md.

use pgrx::pg_sys;
use pgrx::prelude::pg_guard;
use std::cell::Cell;
use std::ffi::CStr;

/// The SQL functions whose arguments may be secrets.
const SECRET_TAKING: &[&[u8]] = &[b"add_connection"];

static mut PREVIOUS: pg_sys::emit_log_hook_type = None;

thread_local! {
    /// A hash of the text of the statement inside which a secret was passed last (by text,
    /// not address: the next statement's text often sits at the same address).
    static CARRIER: Cell<Option<u64>> = const { Cell::new(None) };
}

/// Installs the hook (from `_PG_init`, once per process).
pub fn install() {
    unsafe {
        PREVIOUS = pg_sys::emit_log_hook;
        pg_sys::emit_log_hook = Some(hook);
    }
}

/// Marks the statement running now as one that carries a secret, however it is spelled.
pub fn statement_carries_secret() {
    let query = unsafe { pg_sys::debug_query_string };
    if !query.is_null() {
        let hash = text_hash(unsafe { CStr::from_ptr(query) }.to_bytes());
        CARRIER.with(|c| c.set(Some(hash)));
    }
}

fn text_hash(text: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

fn names_secret_taking(text: &[u8]) -> bool {
    SECRET_TAKING.iter().any(|f| text.windows(f.len()).any(|w| w.eq_ignore_ascii_case(f)))
}

/// A LOG line of statement logging (postgres.c, auto_explain), which quotes the statement.
fn quotes_statement(message: &[u8]) -> bool {
    [&b"statement: "[..], b"execute ", b"duration: ", b"bind ", b"parse "].iter().any(|p| message.starts_with(p))
}

const HIDDEN: &CStr = c"statement text hidden by sfsync: it calls a function whose arguments may be secrets (see docs/secrets.md)";

/// Runs for every message about to be logged; never raises (an error here would recurse).
#[pg_guard]
unsafe extern "C-unwind" fn hook(edata: *mut pg_sys::ErrorData) {
    if let Some(e) = unsafe { edata.as_mut() } {
        let query = unsafe { pg_sys::debug_query_string };
        if !query.is_null() {
            let text = unsafe { CStr::from_ptr(query) }.to_bytes();
            if names_secret_taking(text) || CARRIER.with(|c| c.get()) == Some(text_hash(text)) {
                e.hide_stmt = true;
            }
        }
        let log_level = e.elevel == pg_sys::LOG as i32 || e.elevel == pg_sys::LOG_SERVER_ONLY as i32;
        if log_level && !e.message.is_null() {
            let message = unsafe { CStr::from_ptr(e.message) }.to_bytes();
            if quotes_statement(message) && names_secret_taking(message) {
                // The message and its detail (a bound parameter list) live in ErrorContext.
                e.message = unsafe { pg_sys::MemoryContextStrdup(pg_sys::ErrorContext, HIDDEN.as_ptr()) };
                e.detail = std::ptr::null_mut();
                e.detail_log = std::ptr::null_mut();
            }
        }
    }
    if let Some(previous) = unsafe { PREVIOUS } {
        unsafe { previous(edata) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_texts_may_carry_a_secret() {
        assert!(names_secret_taking(b"SELECT sfsync.add_connection('a', 'b', 'c', client_secret => 's')"));
        assert!(names_secret_taking(b"select SFSYNC.ADD_CONNECTION($1, $2)"));
        assert!(!names_secret_taking(b"select * from sfsync.status"));
        assert!(quotes_statement(b"statement: select 1"));
        assert!(quotes_statement(b"duration: 0.3 ms  statement: select 1"));
        assert!(quotes_statement(b"execute <unnamed>: select 1"));
        assert!(!quotes_statement(b"sfsync: pull of Account into t failed"));
    }
}
