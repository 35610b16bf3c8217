//! Deletes the pull applies: records deleted in Salesforce (per the mapping's `on_delete`)
//! and records that stopped matching the mapping's filter.
//!
//! Local rows are deleted set-based inside a subtransaction; if that fails (a foreign key of
//! child rows, usually) each row is tried in its own subtransaction and the ones that fail
//! are reported in sfsync.errors (direction `pull`, the SQLSTATE's name as code, e.g.
//! FOREIGN_KEY_VIOLATION) while the rest of the page applies and the mark advances.

use super::Mapping;
use crate::error::Result;
use crate::spi_util;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use serde_json::json;
use std::panic::AssertUnwindSafe;

/// Records deleted in Salesforce (their Ids). `propagate`: the local rows go; `ignore`:
/// they stay; `review`: they stay and wait in sfsync.delete_review. Returns rows deleted.
pub fn pulled(m: &Mapping, sfids: &[String]) -> Result<usize> {
    if sfids.is_empty() {
        return Ok(0);
    }
    match m.on_delete.as_str() {
        "ignore" => Ok(0),
        "review" => {
            hold(m, sfids)?;
            Ok(0)
        }
        _ => remove(m, sfids, "delete"),
    }
}

/// Queues Salesforce-side deletes of rows we have for review (once per record).
fn hold(m: &Mapping, sfids: &[String]) -> Result<()> {
    let sql = format!(
        "INSERT INTO sfsync.delete_review (mapping_id, \"table\", key, sfid, origin, \"row\")
         SELECT $1, m.tbl, t.{pk}::text, t.sfid, 'salesforce', to_jsonb(t)
         FROM {tbl} t JOIN sfsync.mappings m ON m.id = $1
         WHERE t.sfid = ANY($2)
         ON CONFLICT (mapping_id, origin, key) WHERE decided_at IS NULL DO NOTHING",
        pk = m.pk_ident(),
        tbl = m.table
    );
    let args: Vec<DatumWithOid> = vec![m.id.into(), sfids.to_vec().into()];
    spi_util::exec(&sql, &args)?;
    Ok(())
}

/// Deletes the local rows with these Salesforce Ids (not captured: the caller holds the
/// Applying guard). `operation` names it in sfsync.errors. Returns how many went.
pub fn remove(m: &Mapping, sfids: &[String], operation: &str) -> Result<usize> {
    if sfids.is_empty() {
        return Ok(0);
    }
    let sql = format!("DELETE FROM {} WHERE sfid = ANY($1)", m.table);
    let all = sfids.to_vec();
    match subtransaction(|| spi_util::exec(&sql, &[all.clone().into()])) {
        Ok(n) => Ok(n),
        Err(_) => {
            let mut n = 0;
            for id in sfids {
                let one = vec![id.clone()];
                match subtransaction(|| spi_util::exec(&sql, &[one.clone().into()])) {
                    Ok(k) => n += k,
                    Err(Failure { code, message }) => report(m, id, operation, &code, &message)?,
                }
            }
            Ok(n)
        }
    }
}

/// A failed statement: the SQLSTATE's name (FOREIGN_KEY_VIOLATION) and the message.
pub struct Failure {
    pub code: String,
    pub message: String,
}

fn report(m: &Mapping, sfid: &str, operation: &str, code: &str, message: &str) -> Result<()> {
    let sql = format!(
        "INSERT INTO sfsync.record_errors AS e (mapping_id, direction, pk, sfid, operation, error_code, message)
         SELECT $1, 'pull', COALESCE((SELECT t.{pk}::text FROM {tbl} t WHERE t.sfid = r.sfid), r.sfid), r.sfid, r.operation, r.code, r.message
         FROM jsonb_to_record($2) AS r(sfid text, operation text, code text, message text)
         ON CONFLICT (mapping_id, direction, pk) DO UPDATE SET sfid = EXCLUDED.sfid, operation = EXCLUDED.operation,
             error_code = EXCLUDED.error_code, message = EXCLUDED.message, attempts = e.attempts + 1, last_seen = now()",
        pk = m.pk_ident(),
        tbl = m.table
    );
    let row = json!({"sfid": sfid, "operation": operation, "code": code, "message": message});
    spi_util::exec(&sql, &[m.id.into(), spi_util::jsonb(row)])?;
    Ok(())
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
