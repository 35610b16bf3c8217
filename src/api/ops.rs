//! Operational functions.

use crate::error::{OrRaise, Result, SyncError};
use crate::privilege;
use crate::sync::source::{formulas, poll, reconcile};
use crate::sync::{self, push, Ctx};
use pgrx::prelude::*;
use pgrx::{JsonB, PgRelation};
use serde_json::{json, Value};

/// One synchronous push and pull pass (of one table, or all), in this transaction.
/// Returns what was done per table. Without a table: every table the caller may act on.
#[pg_extern(volatile, parallel_unsafe)]
fn run_once(tbl: default!(Option<PgRelation>, "NULL")) -> JsonB {
    let oid = tbl.map(|t| t.oid()); // the relation closes here, before any pass
    if let Some(oid) = oid {
        privilege::require_table(oid, "sfsync.run_once").or_raise();
    }
    let scope = if oid.is_none() { privilege::permitted_mappings().or_raise() } else { None };
    JsonB(privilege::as_extension_owner(|| run(oid.map(|o| o.to_u32()), scope)).or_raise())
}

/// `scope`: the mappings a pass over "all" covers (None: every one).
fn run(oid: Option<u32>, scope: Option<Vec<i32>>) -> Result<Value> {
    sync::identity::require_original()?;
    sync::hold_pass_lock()?;
    // All mappings: a table's parents are needed to push it.
    let all = sync::load_mappings(None)?;
    let mappings: Vec<sync::Mapping> = match oid {
        None => all.iter().filter(|m| scope.as_ref().is_none_or(|ids| ids.contains(&m.id))).cloned().collect(),
        Some(oid) => sync::load_mappings(Some(oid))?,
    };
    // One push pass over everything, or one per table in scope.
    let whole = oid.is_none() && scope.is_none();
    if let (Some(oid), true) = (oid, mappings.is_empty()) {
        return Err(SyncError::NotFound(format!("table {} is not synced", crate::privilege::table_name(oid.into()))));
    }
    let mut out = serde_json::Map::new();
    // Pull before push, as the worker does: conflicts are resolved before the push sends.
    let mut pulls = Vec::with_capacity(mappings.len());
    for m in &mappings {
        pulls.push(if m.pulls() { Some(poll::pass(Ctx::Session, m, &all)?) } else { None });
    }
    let mut pushed = push::PushSummary::default();
    if whole {
        pushed = push::pass(Ctx::Session, &all, None)?;
    }
    for (m, pulled) in mappings.iter().zip(pulls) {
        let p = if !whole && m.pushes() { push::pass(Ctx::Session, &all, Some(m.id))? } else { push::PushSummary::default() };
        out.insert(m.table.clone(), json!({"push": if whole { Value::Null } else { json!(p) }, "pull": pulled}));
    }
    // Without a worker nobody else purges the archive.
    sync::archive::purge(crate::guc::ARCHIVE_RETENTION_S.get())?;
    Ok(json!({"push": if whole { json!(pushed) } else { Value::Null }, "tables": out}))
}

/// A full delete reconciliation of one table now: every Id of the object (matching the
/// mapping's filter) is listed, and linked rows whose record is gone follow `on_delete`.
#[pg_extern(volatile, parallel_unsafe)]
fn reconcile(tbl: PgRelation) -> JsonB {
    JsonB(one(tbl.oid(), "sfsync.reconcile", |m| Ok(json!(reconcile::reconcile(Ctx::Session, m)?))).or_raise())
}

/// Reads the table's formula and roll-up fields again now (see sfsync.formula_refresh_interval).
#[pg_extern(volatile, parallel_unsafe)]
fn refresh_formulas(tbl: PgRelation) -> JsonB {
    JsonB(one(tbl.oid(), "sfsync.refresh_formulas", |m| Ok(json!(formulas::refresh(Ctx::Session, m)?))).or_raise())
}

/// `f` on the mapping of table `oid`, for a caller who may act on it.
fn one(oid: pgrx::pg_sys::Oid, function: &str, f: impl FnOnce(&sync::Mapping) -> Result<Value>) -> Result<Value> {
    privilege::require_table(oid, function)?;
    privilege::as_extension_owner(|| {
        sync::identity::require_original()?;
        sync::hold_pass_lock()?;
        let m = sync::load_mappings(Some(oid.to_u32()))?;
        let m = m.first().ok_or_else(|| SyncError::NotFound(format!("table {} is not synced", privilege::table_name(oid))))?;
        f(m)
    })
}
