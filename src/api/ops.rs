//! Operational functions.

use crate::error::{OrRaise, Result, SyncError};
use crate::sync::source::{formulas, poll, reconcile};
use crate::sync::{self, push, Ctx, PASS_LOCK};
use pgrx::prelude::*;
use pgrx::{JsonB, PgRelation};
use serde_json::{json, Value};

/// One synchronous push and pull pass (of one table, or all), in this transaction.
/// Returns what was done per table.
#[pg_extern(volatile, parallel_unsafe)]
fn run_once(tbl: default!(Option<PgRelation>, "NULL")) -> JsonB {
    JsonB(run(tbl.map(|t| t.oid().to_u32())).or_raise()) // the relation closes here, before any pass
}

fn run(oid: Option<u32>) -> Result<Value> {
    sync::identity::require_original()?;
    Spi::run(&format!("SELECT pg_advisory_xact_lock({PASS_LOCK})"))?;
    // All mappings: a table's parents are needed to push it.
    let all = sync::load_mappings(None)?;
    let mappings: Vec<sync::Mapping> = match oid {
        None => all.clone(),
        Some(oid) => sync::load_mappings(Some(oid))?,
    };
    if let (Some(oid), true) = (oid, mappings.is_empty()) {
        return Err(SyncError::NotFound(format!("table with oid {oid} is not synced")));
    }
    let mut out = serde_json::Map::new();
    // Pull before push, as the worker does: conflicts are resolved before the push sends.
    let mut pulls = Vec::with_capacity(mappings.len());
    for m in &mappings {
        pulls.push(if m.pulls() { Some(poll::pass(Ctx::Session, m, &all)?) } else { None });
    }
    let mut pushed = push::PushSummary::default();
    if oid.is_none() {
        pushed = push::pass(Ctx::Session, &all, None)?;
    }
    for (m, pulled) in mappings.iter().zip(pulls) {
        let p = if oid.is_some() && m.pushes() { push::pass(Ctx::Session, &all, Some(m.id))? } else { push::PushSummary::default() };
        out.insert(m.table.clone(), json!({"push": if oid.is_some() { json!(p) } else { Value::Null }, "pull": pulled}));
    }
    // Without a worker nobody else purges the archive.
    sync::archive::purge(crate::guc::ARCHIVE_RETENTION_S.get())?;
    Ok(json!({"push": if oid.is_none() { json!(pushed) } else { Value::Null }, "tables": out}))
}

/// A full delete reconciliation of one table now: every Id of the object (matching the
/// mapping's filter) is listed, and linked rows whose record is gone follow `on_delete`.
#[pg_extern(volatile, parallel_unsafe)]
fn reconcile(tbl: PgRelation) -> JsonB {
    JsonB(one(tbl.oid().to_u32(), |m| Ok(json!(reconcile::reconcile(Ctx::Session, m)?))).or_raise())
}

/// Reads the table's formula and roll-up fields again now (see sfsync.formula_refresh_interval).
#[pg_extern(volatile, parallel_unsafe)]
fn refresh_formulas(tbl: PgRelation) -> JsonB {
    JsonB(one(tbl.oid().to_u32(), |m| Ok(json!(formulas::refresh(Ctx::Session, m)?))).or_raise())
}

fn one(oid: u32, f: impl FnOnce(&sync::Mapping) -> Result<Value>) -> Result<Value> {
    sync::identity::require_original()?;
    Spi::run(&format!("SELECT pg_advisory_xact_lock({PASS_LOCK})"))?;
    let m = sync::load_mappings(Some(oid))?;
    let m = m.first().ok_or_else(|| SyncError::NotFound(format!("table with oid {oid} is not synced")))?;
    f(m)
}
