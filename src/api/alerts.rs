//! `sfsync.ack_alert(id)`: a person saw an alert (src/alerts.rs); it leaves the open list.

use crate::error::{OrRaise, Result, SyncError};
use crate::{privilege, spi_util};
use pgrx::pg_sys::Oid;
use pgrx::prelude::*;

/// Acknowledges alert `id`: true when it was open, false when it had been acknowledged
/// already. A table's alert by whoever may act on the table; a connection's, the database's
/// or a dropped table's by an admin.
#[pg_extern(volatile, parallel_unsafe)]
fn ack_alert(id: i64) -> bool {
    ack(id).or_raise()
}

fn ack(id: i64) -> Result<bool> {
    let me = privilege::current_user();
    let alert = privilege::as_extension_owner(|| {
        spi_util::json(
            "SELECT jsonb_build_object('tbl', m.tbl::oid::bigint) FROM sfsync.alert_log a
             LEFT JOIN sfsync.mappings m ON m.id = a.mapping_id WHERE a.id = $1",
            &[id.into()],
        )
    })?
    .ok_or_else(|| SyncError::NotFound(format!("alert {id} does not exist (see sfsync.alerts)")))?;
    match alert["tbl"].as_u64().and_then(|t| u32::try_from(t).ok()) {
        Some(table) => privilege::require_table(Oid::from(table), "sfsync.ack_alert")?,
        None => privilege::require_admin("sfsync.ack_alert")?,
    }
    let by = privilege::role_name(me);
    privilege::as_extension_owner(|| {
        spi_util::exec(
            "UPDATE sfsync.alert_log SET acknowledged_at = now(), acknowledged_by = $2 WHERE id = $1 AND acknowledged_at IS NULL",
            &[id.into(), by.into()],
        )
    })
    .map(|n| n > 0)
}
