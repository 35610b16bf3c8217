//! sfsync.go_live: a shadow run's table (`sync_table(..., mode => 'shadow')`) starts
//! sending, from where the shadow run is (docs/guide.md, "Shadow run before going live").

use super::mapping::install_triggers;
use crate::error::{OrRaise, Result, SyncError};
use crate::plan::options::Mode;
use crate::privilege;
use crate::sync;
use pgrx::prelude::*;
use pgrx::{JsonB, PgRelation};
use serde_json::{json, Value};

/// Switches the table from shadow to `mode` ('async' or 'write_through'): its capture
/// trigger becomes the live one, and the changes the shadow run held in the outbox are
/// released to the push (the log's entries marked queued). Pull marks, change-stream position and links are kept:
/// nothing is pulled or backfilled again.
#[pg_extern(volatile, parallel_unsafe)]
fn go_live(tbl: PgRelation, mode: default!(&str, "'async'")) -> JsonB {
    let oid = tbl.oid();
    drop(tbl); // closes the relation: the triggers are replaced below
    privilege::require_table(oid, "sfsync.go_live").or_raise();
    JsonB(privilege::as_extension_owner(|| live(oid.to_u32(), mode)).or_raise())
}

fn live(oid: u32, mode: &str) -> Result<Value> {
    // A copy of another database must not start writing into the original's records.
    sync::identity::require_original()?;
    let target = Mode::parse(mode).map_err(SyncError::Invalid)?;
    if target == Mode::Shadow {
        return Err(SyncError::Invalid("sfsync.go_live: mode => 'shadow' is not live; use 'async' or 'write_through'".into()));
    }
    let m = sync::load_mappings(Some(oid))?
        .pop()
        .ok_or_else(|| SyncError::NotFound(format!("table {} is not synced", privilege::table_name(oid.into()))))?;
    let options = crate::plan::options::Options { mode: target, ..m.options };
    options.check().map_err(SyncError::Invalid)?;
    // The row lock makes a concurrent go_live of the table wait, then find it live.
    let switched = crate::spi_util::exec(
        "UPDATE sfsync.mappings SET mode = $2 WHERE id = $1 AND mode = 'shadow'",
        &[m.id.into(), target.as_str().into()],
    )?;
    if switched == 0 || !m.options.shadow() {
        return Err(SyncError::Invalid(format!(
            "sfsync.go_live: table {} is not in shadow mode (its mode is {}); only a table synced with mode => 'shadow' goes live",
            m.table, m.options.mode
        )));
    }
    // Replacing the trigger locks the table against writes until commit: every change made
    // before is held in the outbox and logged, every one after is captured live.
    let cols: Vec<&str> = m.columns.iter().map(|c| c.column.as_str()).collect();
    install_triggers(&m.table, m.id, &m.pk_column, &cols, &options)?;
    let queued = crate::shadow::mark_queued(m.id)?;
    Spi::run("SELECT sfsync.wake_at_commit()")?;
    Ok(json!({"table": m.table, "mode": target.as_str(), "queued": queued}))
}
