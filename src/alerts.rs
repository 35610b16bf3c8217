//! Alerts: what a person should know about a mapping or a connection — a schema change that
//! was followed, refused or could not be, and anything that stops a mapping (a paused copy,
//! a login that fails, the API budget). One row in sfsync.alert_log (shown by the
//! sfsync.alerts view) and a `NOTIFY sfsync_alerts` with a JSON payload, delivered when the
//! raising transaction commits (docs/sql-reference.md, "Alerts").
//!
//! An open alert of the same mapping (or connection) and kind is not repeated: it gets
//! `last_seen` and a count, and no second NOTIFY. It stays open until a person acknowledges
//! it (`sfsync.ack_alert`) or the condition ends by itself ([`resolve`]).
//!
//! Anyone may LISTEN on any channel, so the payload carries sfsync's own words only (kind,
//! table, object, a message sfsync wrote): Salesforce's text goes into `detail`, which the
//! view shows to those who may act on the table.

use crate::error::{Result, SyncError};
use crate::{privilege, spi_util};
use pgrx::datum::DatumWithOid;
use serde_json::{json, Value};

/// The NOTIFY channel.
pub const CHANNEL: &str = "sfsync_alerts";

/// What an alert is about; `as_str` is its SQL spelling (the CHECK of alert_log.kind).
// The schema kinds are raised by the DDL event trigger and the describe check.
#[allow(dead_code)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    /// A mapped column was renamed; the mapping followed it.
    ColumnRenamed,
    /// A synced table was renamed (or moved to another schema); the mapping followed it.
    TableRenamed,
    /// A mapped column was dropped; its field is no longer synced.
    ColumnDropped,
    /// A mapped field is gone from Salesforce's describe; it is no longer synced.
    FieldRemoved,
    /// Salesforce's describe has a field the mapping does not sync.
    FieldAdded,
    /// A mapped field changed type or length in Salesforce.
    FieldChanged,
    /// A column type change was refused (it cannot hold the field's values).
    TypeRefused,
    /// This database is a copy of another: nothing is synced until an admin adopts it.
    CopyPaused,
    /// The connection cannot log in to Salesforce.
    AuthFailed,
    /// The connection's API budget is used up: calls wait until it refills.
    BudgetPaused,
    /// A mapping no longer matches its table (changed while sfsync's event trigger was
    /// disabled): writes go on, what cannot be captured is named; run sync_table again.
    OutOfStep,
}

impl AlertKind {
    #[cfg(test)]
    pub const ALL: [AlertKind; 11] = [
        AlertKind::ColumnRenamed,
        AlertKind::TableRenamed,
        AlertKind::ColumnDropped,
        AlertKind::FieldRemoved,
        AlertKind::FieldAdded,
        AlertKind::FieldChanged,
        AlertKind::TypeRefused,
        AlertKind::CopyPaused,
        AlertKind::AuthFailed,
        AlertKind::BudgetPaused,
        AlertKind::OutOfStep,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::ColumnRenamed => "column_renamed",
            AlertKind::TableRenamed => "table_renamed",
            AlertKind::ColumnDropped => "column_dropped",
            AlertKind::FieldRemoved => "field_removed",
            AlertKind::FieldAdded => "field_added",
            AlertKind::FieldChanged => "field_changed",
            AlertKind::TypeRefused => "type_refused",
            AlertKind::CopyPaused => "copy_paused",
            AlertKind::AuthFailed => "auth_failed",
            AlertKind::BudgetPaused => "budget_paused",
            AlertKind::OutOfStep => "out_of_step",
        }
    }
}

/// A NOTIFY payload is at most 8000 bytes; a message is cut well before that.
const MESSAGE_IN_PAYLOAD: usize = 1000;

/// The payload of `NOTIFY sfsync_alerts`.
pub fn payload(id: i64, kind: AlertKind, table: Option<&str>, sobject: Option<&str>, connection: Option<&str>, message: &str) -> Value {
    let message: String = message.chars().take(MESSAGE_IN_PAYLOAD).collect();
    json!({"id": id, "kind": kind.as_str(), "table": table, "sobject": sobject, "connection": connection, "message": message})
}

/// Raises an alert of `mapping` (its table, object and connection are recorded with it), or
/// of `connection`, or of the database (both None), inside the current transaction: from the
/// worker's transactions and from event triggers alike. A new alert is announced by NOTIFY at
/// commit; an open one of the same mapping/connection and kind is counted instead. Runs as
/// the extension's owner (an event trigger fires as the role running the DDL). `message` is
/// sfsync's own text (it goes into the NOTIFY, which every role may LISTEN to); Salesforce's
/// text belongs in `detail`. Returns the alert's id.
pub fn raise(mapping: Option<i32>, connection: Option<&str>, kind: AlertKind, message: &str, detail: Value) -> Result<i64> {
    privilege::as_extension_owner(|| {
        let args: Vec<DatumWithOid> =
            vec![mapping.into(), connection.into(), kind.as_str().into(), message.into(), spi_util::jsonb(detail)];
        let row = spi_util::json(
            "WITH m AS (SELECT m.id, format('%I.%I', n.nspname, c.relname) AS tname, m.sobject, m.connection
                       FROM sfsync.mappings m JOIN pg_catalog.pg_class c ON c.oid = m.tbl
                       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE m.id = $1)
             INSERT INTO sfsync.alert_log AS a (mapping_id, table_name, sobject, connection, kind, message, detail)
             SELECT (SELECT id FROM m), (SELECT tname FROM m), (SELECT sobject FROM m),
                    COALESCE($2, (SELECT connection FROM m)), $3, $4, $5
             ON CONFLICT (COALESCE(mapping_id, 0), COALESCE(connection, ''), kind)
                 WHERE acknowledged_at IS NULL AND resolved_at IS NULL
             DO UPDATE SET last_seen = now(), count = a.count + 1, message = EXCLUDED.message, detail = EXCLUDED.detail,
                 table_name = COALESCE(EXCLUDED.table_name, a.table_name)
             RETURNING jsonb_build_object('id', a.id, 'new', a.xmax::text = '0', 'table', a.table_name,
                                          'sobject', a.sobject, 'connection', a.connection)",
            &args,
        )?
        .ok_or_else(|| SyncError::Spi("raising an alert returned no row".into()))?;
        let id = row["id"].as_i64().unwrap_or_default();
        if row["new"].as_bool() == Some(true) {
            let body = payload(id, kind, row["table"].as_str(), row["sobject"].as_str(), row["connection"].as_str(), message);
            spi_util::exec("SELECT pg_catalog.pg_notify($1, $2)", &[CHANNEL.into(), body.to_string().into()])?;
        }
        Ok(id)
    })
}

/// The condition of the open alerts of this kind (of `mapping`, or of `connection`, or of
/// the database) ended by itself: they stay listed, resolved, and the next occurrence is a
/// new alert. Returns how many were open.
pub fn resolve(mapping: Option<i32>, connection: Option<&str>, kind: AlertKind) -> Result<usize> {
    privilege::as_extension_owner(|| {
        let args: Vec<DatumWithOid> = vec![mapping.into(), connection.into(), kind.as_str().into()];
        spi_util::exec(
            "UPDATE sfsync.alert_log SET resolved_at = now()
             WHERE acknowledged_at IS NULL AND resolved_at IS NULL AND kind = $3
               AND mapping_id IS NOT DISTINCT FROM $1 AND ($1 IS NOT NULL OR connection IS NOT DISTINCT FROM $2)",
            &args,
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_spelled_as_the_catalog_checks() {
        let catalog = include_str!("../sql/catalog.sql");
        let table = catalog.split("CREATE TABLE sfsync.alert_log").nth(1).unwrap();
        let check = table.split("kind IN (").nth(1).and_then(|s| s.split("))").next()).unwrap();
        for kind in AlertKind::ALL {
            assert!(check.contains(&format!("'{}'", kind.as_str())), "{kind:?} missing from alert_log's CHECK");
        }
        assert_eq!(check.matches('\'').count() / 2, AlertKind::ALL.len(), "the CHECK lists a kind the enum lacks");
    }

    #[test]
    fn the_payload_is_small_and_names_the_alert() {
        let long = "x".repeat(20_000);
        let p = payload(7, AlertKind::AuthFailed, None, None, Some("default"), &long);
        assert_eq!(p["id"], 7);
        assert_eq!(p["kind"], "auth_failed");
        assert_eq!(p["connection"], "default");
        assert!(p["table"].is_null());
        assert!(p.to_string().len() < 8000, "NOTIFY payloads are limited to 8000 bytes");
    }
}
