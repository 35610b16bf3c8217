//! Transactions in the worker: each unit of work commits on its own, and a Postgres error
//! inside one aborts that transaction and comes back as a value instead of killing the
//! worker, so one bad row can never crash-loop it.

use crate::error::{Result, SyncError};
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use std::panic::AssertUnwindSafe;

pub fn run<R>(f: impl FnOnce() -> Result<R>) -> Result<R> {
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    let f = AssertUnwindSafe(f);
    let outcome = PgTryBuilder::new(move || {
        let f = f;
        (f.0)()
    })
    .catch_others(|e| Err(SyncError::Spi(describe(&e))))
    .execute();
    match outcome {
        Ok(v) => {
            unsafe {
                pg_sys::PopActiveSnapshot();
                pg_sys::CommitTransactionCommand();
            }
            Ok(v)
        }
        Err(e) => {
            unsafe {
                pg_sys::AbortCurrentTransaction();
                pg_sys::MemoryContextSwitchTo(pg_sys::TopMemoryContext);
            }
            Err(e)
        }
    }
}

fn describe(e: &CaughtError) -> String {
    match e {
        CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) => match r.detail() {
            Some(d) => format!("{} ({d})", r.message()),
            None => r.message().to_string(),
        },
        CaughtError::RustPanic { ereport, .. } => ereport.message().to_string(),
    }
}
