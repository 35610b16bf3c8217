//! Whose records: `sfsync.adopt()` for copies of a database, `sfsync.external_key()` to
//! find a row's record in Salesforce (see plan::namespace and sync::identity).

use crate::capture::Applying;
use crate::error::{OrRaise, Result, SyncError};
use crate::privilege;
use crate::spi_util;
use crate::sync::identity::{self, Standing};
use crate::sync::{self, Mapping};
use pgrx::prelude::*;
use pgrx::{JsonB, PgRelation};
use serde_json::{json, Value};

/// Makes this database the owner of its mappings after a copy (template, dump/restore,
/// pg_upgrade). By default it takes over the records the original synced (the original
/// must stop syncing); with `fresh_namespace` its pushing tables get namespaces of their
/// own: their rows are unlinked and pushed as new records, and the original's are left alone.
#[pg_extern(volatile, parallel_unsafe)]
fn adopt(fresh_namespace: default!(bool, false)) -> JsonB {
    JsonB(adopt_as(fresh_namespace).or_raise())
}

fn adopt_as(fresh: bool) -> Result<Value> {
    privilege::require_admin("sfsync.adopt")?;
    privilege::as_extension_owner(|| {
        let origin = match identity::standing()? {
            Standing::Copy(origin) => origin,
            Standing::Original | Standing::Unrecorded if fresh => {
                return Err(SyncError::Invalid(
                    "this database is not a copy: its tables already have namespaces of their own (fresh_namespace is for copies)".into(),
                ))
            }
            Standing::Original | Standing::Unrecorded => {
                identity::record()?;
                return Ok(json!({"adopted": false, "reason": "this database already owns its mappings"}));
            }
        };
        identity::record()?;
        crate::alerts::resolve(None, None, crate::alerts::AlertKind::CopyPaused)?;
        let mut tables = Vec::new();
        if fresh {
            for m in sync::load_mappings(None)? {
                tables.push(renamespace(&m)?);
            }
        }
        Spi::run("SELECT sfsync.wake_at_commit()")?;
        Ok(json!({"adopted": true, "copy_of": origin, "fresh_namespace": fresh, "tables": tables}))
    })
}

/// Gives a pushing mapping a namespace of its own: its rows forget the original's records
/// and are queued as new ones; what it had queued for the original's records is dropped.
/// A pull-only mapping writes nothing to Salesforce and keeps its links.
fn renamespace(m: &Mapping) -> Result<Value> {
    if !m.pushes() {
        return Ok(json!({"table": m.table, "namespace": m.namespace, "queued_for_push": 0}));
    }
    let ns = new_namespace(&m.table)?;
    spi_util::exec("UPDATE sfsync.mappings SET namespace = $2 WHERE id = $1", &[m.id.into(), ns.clone().into()])?;
    spi_util::exec("DELETE FROM sfsync.outbox WHERE mapping_id = $1", &[m.id.into()])?;
    spi_util::exec("DELETE FROM sfsync.record_errors WHERE mapping_id = $1", &[m.id.into()])?;
    {
        let _applying = Applying::start();
        let sql = format!("UPDATE {} SET sfid = NULL WHERE sfid IS NOT NULL", m.table);
        m.as_owner(|| Spi::run(&sql))?;
    }
    let queued = spi_util::exec(
        &format!(
            "INSERT INTO sfsync.outbox (mapping_id, op, pk) SELECT $1, 'insert', t.{pk}::text FROM {tbl} t ORDER BY t.{pk}",
            pk = m.pk_ident(),
            tbl = m.table
        ),
        &[m.id.into()],
    )?;
    Ok(json!({"table": m.table, "namespace": ns, "queued_for_push": queued}))
}

/// A namespace for a new mapping of `qualified` that no other mapping here holds.
pub(crate) fn new_namespace(qualified: &str) -> Result<String> {
    for attempt in 0..100 {
        let seed = if attempt == 0 { qualified.to_string() } else { format!("{qualified}/{attempt}") };
        let ns = identity::namespace_for(&seed)?;
        let taken =
            Spi::get_one_with_args::<bool>("SELECT EXISTS (SELECT 1 FROM sfsync.mappings WHERE namespace = $1)", &[ns.clone().into()])?;
        if taken != Some(true) {
            return Ok(ns);
        }
    }
    Err(SyncError::Spi(format!("no free namespace for {qualified}")))
}

/// NULL, or why this database does not sync: it is a copy of another one (see adopt).
/// For sfsync.status.
#[pg_extern(stable, parallel_restricted)]
fn paused_copy() -> Option<String> {
    match identity::standing().or_raise() {
        Standing::Copy(origin) => Some(identity::copy_message(&origin)),
        Standing::Original | Standing::Unrecorded => None,
    }
}

/// The external ID value that marks the row with `key` of synced table `tbl` in Salesforce
/// (`<namespace>:<key>`): to find its record, or to create one in Salesforce that the pull
/// files under that key. Parallel unsafe: loading the mapping takes a transaction id, which a
/// parallel plan may not.
#[pg_extern(stable, parallel_unsafe)]
fn external_key(tbl: PgRelation, key: &str) -> String {
    let oid = tbl.oid().to_u32();
    let m = sync::load_mappings(Some(oid)).or_raise().into_iter().next();
    match m {
        Some(m) => m.external_value(key),
        None => SyncError::NotFound(format!("table {} is not synced", tbl.name())).raise(),
    }
}
