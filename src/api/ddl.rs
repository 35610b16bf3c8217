//! Schema changes of synced tables, followed as they happen: `sfsync.follow_ddl()`, the
//! `ddl_command_end` event trigger function for ALTER TABLE (sql/views.sql). plan::ddl decides;
//! this reads the statement and the catalog, updates the mapping, its triggers and the queued
//! changes, and raises the alerts. A refusal is an ERROR that undoes the ALTER. SECURITY
//! DEFINER: whoever may ALTER the table has the mapping follow it.

use super::mapping::install_triggers;
use crate::alerts::{self, AlertKind};
use crate::error::{Result, SyncError};
use crate::plan::ddl::{self, Before, Followed, Mapped};
use crate::spi_util;
use crate::sync::{load_mappings, Mapping};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::ffi::{c_char, CStr};

/// Version 1 calling convention for `sfsync_follow_ddl` (an event trigger function takes
/// its `EventTriggerData` from the call's context, which `#[pg_extern]` does not give).
#[no_mangle]
#[doc(hidden)]
pub extern "C" fn pg_finfo_sfsync_follow_ddl() -> &'static pg_sys::Pg_finfo_record {
    static V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// What the statement was, as far as the mapping cares; names as the user wrote them.
enum Statement {
    RenameColumn {
        old: String,
        new: String,
    },
    /// RENAME TO or SET SCHEMA: the table's name before.
    RenameTable {
        old: String,
    },
    Other,
}

/// # Safety
/// Called by PostgreSQL as an event trigger function.
#[pg_guard]
#[no_mangle]
pub unsafe extern "C-unwind" fn sfsync_follow_ddl(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    let statement = unsafe { statement(fcinfo) };
    if let Err(e) = follow(&statement) {
        e.raise();
    }
    pg_sys::Datum::from(0usize)
}

unsafe fn text(p: *const c_char) -> Option<String> {
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// The name a RangeVar gives, quoted, schema-qualified when it was written so.
unsafe fn range_var(rv: *const pg_sys::RangeVar) -> Option<String> {
    if rv.is_null() {
        return None;
    }
    let rel = unsafe { text((*rv).relname) }?;
    Some(match unsafe { text((*rv).schemaname) } {
        Some(s) => format!("{}.{}", quote_identifier(&s), quote_identifier(&rel)),
        None => quote_identifier(&rel),
    })
}

unsafe fn statement(fcinfo: pg_sys::FunctionCallInfo) -> Statement {
    let context = unsafe { (*fcinfo).context };
    if context.is_null() || unsafe { (*context).type_ } != pg_sys::NodeTag::T_EventTriggerData {
        return Statement::Other;
    }
    let tree = unsafe { (*(context as *mut pg_sys::EventTriggerData)).parsetree };
    if tree.is_null() {
        return Statement::Other;
    }
    match unsafe { (*tree).type_ } {
        pg_sys::NodeTag::T_RenameStmt => {
            let r = tree as *const pg_sys::RenameStmt;
            match unsafe { (*r).renameType } {
                pg_sys::ObjectType::OBJECT_COLUMN => match unsafe { (text((*r).subname), text((*r).newname)) } {
                    (Some(old), Some(new)) => Statement::RenameColumn { old, new },
                    _ => Statement::Other,
                },
                pg_sys::ObjectType::OBJECT_TABLE => {
                    unsafe { range_var((*r).relation) }.map_or(Statement::Other, |old| Statement::RenameTable { old })
                }
                _ => Statement::Other,
            }
        }
        pg_sys::NodeTag::T_AlterObjectSchemaStmt => {
            let a = tree as *const pg_sys::AlterObjectSchemaStmt;
            if unsafe { (*a).objectType } != pg_sys::ObjectType::OBJECT_TABLE {
                return Statement::Other;
            }
            unsafe { range_var((*a).relation) }.map_or(Statement::Other, |old| Statement::RenameTable { old })
        }
        _ => Statement::Other,
    }
}

fn follow(statement: &Statement) -> Result<()> {
    let oids = Spi::get_one::<Vec<i64>>(
        "SELECT array_agg(DISTINCT c.objid::bigint) FROM pg_catalog.pg_event_trigger_ddl_commands() c
         JOIN sfsync.mappings m ON m.tbl::oid = c.objid WHERE c.classid = 'pg_catalog.pg_class'::regclass",
    )?
    .unwrap_or_default();
    for oid in oids {
        // What cannot be read (an outdated catalog, say) must not stop the user's ALTER: the
        // capture trigger copes with a mapping out of step, and says so.
        let mappings = match load_mappings(u32::try_from(oid).ok()) {
            Ok(m) => m,
            Err(e) => {
                warning!("sfsync: could not follow the change of table {oid}: {e}");
                continue;
            }
        };
        for m in &mappings {
            follow_table(m, statement)?;
        }
    }
    Ok(())
}

fn follow_table(m: &Mapping, statement: &Statement) -> Result<()> {
    let now: HashMap<String, String> = spi_util::json(
        "SELECT COALESCE(jsonb_object_agg(attname, format_type(atttypid, atttypmod)), '{}') FROM pg_catalog.pg_attribute
         WHERE attrelid = $1::bigint::oid AND attnum > 0 AND NOT attisdropped",
        &[i64::from(m.oid).into()],
    )?
    .and_then(|v| serde_json::from_value(v).ok())
    .unwrap_or_default();
    let mapped: Vec<Mapped> = m
        .columns
        .iter()
        .map(|c| Mapped { column: c.column.clone(), field: c.field.clone(), sf_type: c.sf_type.clone(), pg_type: c.pg_type.clone() })
        .collect();
    let before = Before { table: &m.table, sobject: &m.sobject, pk_column: &m.pk_column, pk_type: &m.pk_type, columns: &mapped };
    let renamed = match statement {
        Statement::RenameColumn { old, new } => Some((old.as_str(), new.as_str())),
        _ => None,
    };
    let out = ddl::follow(&before, &now, renamed).map_err(SyncError::Invalid)?;
    if out.changes_mapping(&before) {
        update_mapping(m, &out)?;
    }
    for (old, new, field) in &out.renamed {
        let field = field.as_deref().map_or_else(|| "the key".to_string(), |f| format!("field {}.{f}", m.sobject));
        alerts::raise(
            Some(m.id),
            None,
            AlertKind::ColumnRenamed,
            &format!("column \"{old}\" of {} was renamed to \"{new}\"; its mapping to {field} followed", m.table),
            json!({"old": old, "new": new}),
        )?;
    }
    for (column, field) in &out.dropped {
        alerts::raise(
            Some(m.id),
            None,
            AlertKind::ColumnDropped,
            &format!("column \"{column}\" of {} was dropped; field {}.{field} is no longer synced", m.table, m.sobject),
            json!({"column": column, "field": field}),
        )?;
    }
    if let Statement::RenameTable { old } = statement {
        alerts::raise(
            Some(m.id),
            None,
            AlertKind::TableRenamed,
            &format!("table {old} is now {}; its sync with {} goes on", m.table, m.sobject),
            json!({"old": old, "new": m.table}),
        )?;
    }
    Ok(())
}

/// The mapping, its capture trigger's column list and the changes it queued, after `out`.
fn update_mapping(m: &Mapping, out: &Followed) -> Result<()> {
    let mut columns = m.columns.clone();
    columns.retain(|c| !out.dropped.iter().any(|(d, _)| *d == c.column));
    for c in &mut columns {
        if let Some((_, new, _)) = out.renamed.iter().find(|(old, _, _)| *old == c.column) {
            c.column = new.clone();
        }
        if let Some((_, ty)) = out.retyped.iter().find(|(name, _)| *name == c.column) {
            c.pg_type = ty.clone();
        }
    }
    let renames: Value = out.renamed.iter().map(|(old, new, _)| json!([old, new])).collect();
    let dropped: Vec<String> = out.dropped.iter().map(|(c, _)| c.clone()).collect();
    let columns_json = serde_json::to_value(&columns).map_err(|e| SyncError::Spi(e.to_string()))?;
    let args: Vec<DatumWithOid> = vec![
        m.id.into(),
        spi_util::jsonb(columns_json),
        out.pk_column.clone().into(),
        out.pk_type.clone().into(),
        spi_util::jsonb(renames.clone()),
        dropped.clone().into(),
    ];
    // fields => {"column": "Field"}, as given to sync_table: keys follow renames, dropped go.
    // A mirror whose column was dropped was chosen by hand: its fields are not added back.
    spi_util::exec(
        "UPDATE sfsync.mappings m SET columns = $2, pk_column = $3, pk_type = $4,
             mirror_all = m.mirror_all AND cardinality($6) = 0,
             fields = CASE WHEN jsonb_typeof(m.fields) = 'object' THEN
                 (SELECT COALESCE(jsonb_object_agg(COALESCE(r.value ->> 1, f.key), f.value), '{}')
                  FROM jsonb_each(m.fields) f LEFT JOIN jsonb_array_elements($5) r ON r.value ->> 0 = f.key
                  WHERE f.key <> ALL($6))
                 ELSE m.fields END
         WHERE m.id = $1",
        &args,
    )?;
    // Changes queued under the old names are sent under the new ones; a dropped column's not.
    for (old, new, _) in &out.renamed {
        spi_util::exec(
            "UPDATE sfsync.outbox SET changed = array_replace(changed, $2, $3),
                 base = CASE WHEN base ? $2 THEN (base - $2) || jsonb_build_object($3, base -> $2) ELSE base END
             WHERE mapping_id = $1 AND $2 = ANY(changed)",
            &[m.id.into(), old.clone().into(), new.clone().into()],
        )?;
    }
    for column in &dropped {
        spi_util::exec(
            "UPDATE sfsync.outbox SET changed = array_remove(changed, $2), base = base - $2 WHERE mapping_id = $1 AND $2 = ANY(changed)",
            &[m.id.into(), column.clone().into()],
        )?;
    }
    if !out.renamed.is_empty() || !out.dropped.is_empty() {
        let cols: Vec<&str> = columns.iter().map(|c| c.column.as_str()).collect();
        install_triggers(&m.table, m.id, &out.pk_column, &cols, &m.options)?;
    }
    Ok(())
}
