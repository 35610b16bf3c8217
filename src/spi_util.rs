//! Thin SPI helpers: the extension moves data in and out of SQL as JSON (jsonb; large
//! results as json text), so the Rust side deals in serde values and the set-based work
//! stays in SQL.

use crate::error::{Result, SyncError};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::Value;
use std::panic::AssertUnwindSafe;

/// Runs a statement returning at most one jsonb value (NULL or no row gives None).
pub fn json(sql: &str, args: &[DatumWithOid]) -> Result<Option<Value>> {
    Ok(Spi::connect_mut(|c| first_json(c.update(sql, Some(1), args)?))?)
}

/// Like [`json`], for a read-only query, run read-only: no transaction id is taken, so a
/// function a query calls may use it in a parallel plan (where `json`'s fails with "cannot
/// assign XIDs during a parallel operation"; `Spi::get_one` takes one too: it runs through
/// the mutating `update`).
pub fn json_read(sql: &str, args: &[DatumWithOid]) -> Result<Option<Value>> {
    Ok(Spi::connect(|c| first_json(c.select(sql, Some(1), args)?))?)
}

/// Like [`json`], for a statement whose one value is JSON text (`json_agg(...)::text`),
/// decoded straight into `T`. For large results: a `json` aggregate is written as text once,
/// where `jsonb` is built as a tree, then written out as text for the decoder.
pub fn json_text<T: serde::de::DeserializeOwned>(sql: &str, args: &[DatumWithOid]) -> Result<Option<T>> {
    Spi::connect_mut(|c| {
        let table = c.update(sql, Some(1), args)?;
        if table.is_empty() {
            return Ok(None);
        }
        match table.first().get_one::<&str>()? {
            None => Ok(None),
            Some(text) => {
                serde_json::from_str(text).map(Some).map_err(|e| SyncError::Spi(format!("decoding the result of a statement: {e}")))
            }
        }
    })
}

fn first_json(table: pgrx::spi::SpiTupleTable) -> std::result::Result<Option<Value>, pgrx::spi::Error> {
    if table.is_empty() {
        return Ok(None);
    }
    Ok(table.first().get_one::<JsonB>()?.map(|j| j.0))
}

/// Runs `f` in a memory context of its own, deleted when it returns: what Postgres allocates
/// for a big statement's parameters (a jsonb of 10,000 settled entries, tens of MB as it is
/// parsed) is freed after the statement instead of at commit. `f` must return nothing
/// allocated by Postgres. On an error the context stays a child of the one current before,
/// which the transaction's abort frees.
pub fn scratch<R>(f: impl FnOnce() -> Result<R>) -> Result<R> {
    // SAFETY: the context is created under the current one and made current only for `f`,
    // whose results are Rust-owned; it is deleted after it was switched away from.
    unsafe {
        let cx = pg_sys::AllocSetContextCreateExtended(
            pg_sys::CurrentMemoryContext,
            c"sfsync statement".as_ptr(),
            pg_sys::ALLOCSET_DEFAULT_MINSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_INITSIZE as usize,
            pg_sys::ALLOCSET_DEFAULT_MAXSIZE as usize,
        );
        let previous = pg_sys::MemoryContextSwitchTo(cx);
        let r = f();
        pg_sys::MemoryContextSwitchTo(previous);
        pg_sys::MemoryContextDelete(cx);
        r
    }
}

/// Runs a statement and returns the number of rows it processed.
pub fn exec(sql: &str, args: &[DatumWithOid]) -> Result<usize> {
    Ok(Spi::connect_mut(|c| c.update(sql, None, args).map(|t| t.len()))?)
}

/// Runs `f` with planner settings changed for the current transaction, then puts the
/// previous values back (an error aborts the transaction, which puts them back too).
pub fn with_settings<R>(settings: &[(&str, &str)], f: impl FnOnce() -> Result<R>) -> Result<R> {
    let mut previous = Vec::with_capacity(settings.len());
    for (name, value) in settings {
        let was = json("SELECT to_jsonb(current_setting($1))", &[(*name).into()])?;
        exec("SELECT set_config($1, $2, true)", &[(*name).into(), (*value).into()])?;
        previous.push((*name, was));
    }
    let r = f()?;
    for (name, was) in previous {
        let Some(Value::String(was)) = was else { continue };
        exec("SELECT set_config($1, $2, true)", &[name.into(), was.into()])?;
    }
    Ok(r)
}

pub fn jsonb(v: Value) -> DatumWithOid<'static> {
    JsonB(v).into()
}

/// A failed statement: the SQLSTATE's name (FOREIGN_KEY_VIOLATION) and the message.
pub struct Failure {
    pub code: String,
    pub message: String,
}

/// Runs `f` in a subtransaction of the current transaction: on a Postgres error only its
/// work is rolled back, and the error comes back as a value.
pub fn subtransaction<R>(f: impl FnOnce() -> Result<R>) -> std::result::Result<R, Failure> {
    let (ctx, owner) = unsafe { (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner) };
    unsafe {
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(ctx);
    }
    let f = AssertUnwindSafe(f);
    let outcome = PgTryBuilder::new(move || {
        let f = f;
        (f.0)().map_err(|e| Failure { code: "APPLY_FAILED".into(), message: e.to_string() })
    })
    .catch_others(|e| Err(failure(&e)))
    .execute();
    unsafe {
        if outcome.is_ok() {
            pg_sys::ReleaseCurrentSubTransaction();
        } else {
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
        }
        pg_sys::MemoryContextSwitchTo(ctx);
        pg_sys::CurrentResourceOwner = owner;
    }
    outcome
}

fn failure(e: &CaughtError) -> Failure {
    match e {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) | CaughtError::RustPanic { ereport: r, .. } => {
            let message = match r.detail() {
                Some(d) => format!("{} ({d})", r.message()),
                None => r.message().to_string(),
            };
            Failure { code: code_name(r.sql_error_code()), message }
        }
    }
}

/// `ERRCODE_FOREIGN_KEY_VIOLATION` -> `FOREIGN_KEY_VIOLATION`.
fn code_name(code: PgSqlErrorCode) -> String {
    let name = format!("{code:?}");
    name.strip_prefix("ERRCODE_").unwrap_or(&name).to_string()
}
