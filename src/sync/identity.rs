//! Is this database the one that made its mappings, or a copy of it?
//!
//! sfsync.instance records the cluster (system identifier) and database (oid) that own the
//! mappings' namespaces (plan::namespace). A template copy, a restored dump or a pg_upgrade
//! carries the row into a database with another identity: that copy must not push into
//! the original's records, so the sync pauses there until an admin calls `sfsync.adopt()`.
//! A promoted physical replica has the same identity and goes on as if nothing happened.

use crate::error::{Result, SyncError};
use crate::spi_util;
use pgrx::pg_sys;
use pgrx::prelude::*;
use serde::Deserialize;
use serde_json::Value;

/// What this database is to its mappings.
#[derive(Debug, PartialEq, Eq)]
pub enum Standing {
    /// The identity recorded is this database's.
    Original,
    /// Nothing recorded yet (no mapping was ever made here).
    Unrecorded,
    /// A copy; says of what.
    Copy(String),
}

#[derive(Deserialize)]
struct Recorded {
    system_identifier: String,
    database_oid: u32,
    database_name: String,
}

fn live() -> (u64, u32) {
    unsafe { (pg_sys::GetSystemIdentifier(), pg_sys::MyDatabaseId.to_u32()) }
}

/// Read-only: `sfsync.status` calls it (through `paused_copy`), in plans that may be parallel.
pub fn standing() -> Result<Standing> {
    let rec = spi_util::json_read(
        "SELECT jsonb_build_object('system_identifier', system_identifier::text, 'database_oid', database_oid::bigint,
                                   'database_name', database_name) FROM sfsync.instance",
        &[],
    )?;
    let Some(rec) = rec else { return Ok(Standing::Unrecorded) };
    let rec: Recorded = serde_json::from_value(rec).map_err(|e| SyncError::Spi(format!("reading sfsync.instance: {e}")))?;
    let (sysid, dboid) = live();
    if rec.system_identifier == sysid.to_string() && rec.database_oid == dboid {
        return Ok(Standing::Original);
    }
    // A copy without mappings has nothing to protect (e.g. a database made from a template
    // that has the extension): it simply becomes an owner of its own.
    if spi_util::json_read("SELECT to_jsonb(NOT EXISTS (SELECT 1 FROM sfsync.mappings))", &[])? == Some(Value::Bool(true)) {
        return Ok(Standing::Unrecorded);
    }
    let origin = if rec.system_identifier == sysid.to_string() {
        format!("database \"{}\" of this cluster", rec.database_name)
    } else {
        format!("database \"{}\" of another cluster (system identifier {})", rec.database_name, rec.system_identifier)
    };
    Ok(Standing::Copy(origin))
}

/// Records this database as the owner of its mappings' namespaces.
pub fn record() -> Result<()> {
    let (sysid, dboid) = live();
    spi_util::exec(
        "INSERT INTO sfsync.instance (system_identifier, database_oid, database_name)
         VALUES ($1::text::numeric, $2::bigint::oid, current_database())
         ON CONFLICT (singleton) DO UPDATE SET system_identifier = EXCLUDED.system_identifier,
             database_oid = EXCLUDED.database_oid, database_name = EXCLUDED.database_name, recorded_at = now()",
        &[sysid.to_string().into(), i64::from(dboid).into()],
    )?;
    Ok(())
}

/// The message of a copy's pause: what it is a copy of, and the two ways on.
pub fn copy_message(origin: &str) -> String {
    format!(
        "this database is a copy of {origin}: sfsync does not sync it, so that it cannot write into the records the \
         original syncs; an admin runs SELECT sfsync.adopt() to make this database their owner (the original must \
         stop syncing), or SELECT sfsync.adopt(fresh_namespace => true) to give its tables records of their own"
    )
}

/// Err when this database is a copy not adopted yet; records the identity on first use.
pub fn require_original() -> Result<()> {
    match standing()? {
        Standing::Original => Ok(()),
        Standing::Unrecorded => record(),
        Standing::Copy(origin) => Err(SyncError::Invalid(copy_message(&origin))),
    }
}

/// The namespace of a new mapping of `qualified` (plan::namespace): the same table in the
/// same database always gets the same one, so a reinstall finds its earlier records again,
/// while another table or database never does.
pub fn namespace_for(qualified: &str) -> Result<String> {
    let (sysid, dboid) = live();
    Spi::get_one_with_args::<String>(
        "SELECT left(md5(concat_ws('/', $1, $2, $3)), 12)",
        &[sysid.to_string().into(), dboid.to_string().into(), qualified.into()],
    )?
    .ok_or_else(|| SyncError::Spi("md5 returned nothing".into()))
}
