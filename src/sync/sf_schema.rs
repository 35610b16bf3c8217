//! Salesforce-side schema changes, noticed cheaply: each mapped object's describe is asked
//! with If-Modified-Since every `sfsync.schema_check_interval` (one call, a 304 when nothing
//! changed), and at once after a call of its connection failed with INVALID_FIELD ("No such
//! column"). A changed describe is compared with the mappings of that object:
//!
//! - a mapped field that is gone is dropped from the mapping (push and pull stop naming it; the
//!   column keeps its data) with a `field_removed` alert; the other fields and mappings go on;
//! - a mapped field whose new type its column cannot hold is dropped the same way, with a
//!   `field_changed` alert; one that still fits has its type and limits (length, precision,
//!   restricted picklist) taken from the new describe for the check before a push;
//! - a field that appeared since the last describe this worker saw is added as a column of a
//!   table `sfsync.mirror` made with every field (mapped, filled by a column backfill), and
//!   offered in a `field_added` alert (how to map it) for any other table.
//!
//! What was last seen (Last-Modified, field names) is kept by the worker process: after a
//! restart the first check reads the full describe and takes it as the baseline for the
//! offers. A mirror of every field needs no baseline: it compares the describe with its
//! mapping, so a field added while the worker was stopped becomes a column too.

use super::clients::{self, Call, Step};
use super::source::backfill;
use super::{Ctx, Mapping};
use crate::alerts::{self, AlertKind};
use crate::error::{Result, SyncError};
use crate::plan::mirror::{self, MirrorField};
use crate::plan::{compat, fields};
use crate::{guc, spi_util};
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use salesforce::{DescribeCheck, FieldDescribe, SObjectDescribe};
use serde_json::json;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Seen {
    last_modified: Option<String>,
    fields: HashSet<String>,
    checked: Option<Instant>,
}

thread_local! {
    /// (connection, object) → what the last describe said.
    static SEEN: RefCell<HashMap<(String, String), Seen>> = RefCell::new(HashMap::new());
}

/// Checks the objects that are due (the worker's entry point, once per pass). True when a
/// mapping changed: the pass reads the mappings again.
pub fn run_due(mappings: &[Mapping]) -> bool {
    let mut changed = false;
    let every = Duration::from_secs(guc::SCHEMA_CHECK_INTERVAL_S.get().max(0) as u64);
    let at_once = clients::take_unknown_field();
    let mut objects: Vec<(String, String)> = mappings.iter().map(|m| (m.connection.clone(), m.sobject.clone())).collect();
    objects.sort();
    objects.dedup();
    for (connection, sobject) in objects {
        if crate::worker::shutdown_requested() {
            break;
        }
        let now = at_once.contains(&connection);
        let checked = SEEN.with(|s| s.borrow().get(&(connection.clone(), sobject.clone())).and_then(|x| x.checked));
        let due = now || checked.is_none_or(|t| !every.is_zero() && t.elapsed() >= every);
        if !due || !clients::available(&connection) {
            continue;
        }
        let Some(first) = mappings.iter().find(|m| m.connection == connection && m.sobject == sobject) else { continue };
        match clients::call(Ctx::Worker, &connection, Step::new(first.id, "schema check"), || check(&connection, &sobject, mappings)) {
            Call::Done(unmapped) => changed |= unmapped,
            Call::Waiting => {}
            Call::Failed { error, .. } => {
                pgrx::warning!("sfsync: schema check of {sobject} failed: {error}");
                // The check may be the first call of the pass: a connection it finds unusable
                // (a login failing, a secret missing) backs off, the pulls that would say so
                // wait, so the tables' status says it here.
                let msg = error.to_string();
                for m in mappings.iter().filter(|m| m.connection == connection && m.sobject == sobject) {
                    if let Err(e) = crate::worker::tx::run(|| super::set_mapping_error(m.id, &msg)) {
                        pgrx::warning!("sfsync: could not record the error of {}: {e}", m.table);
                    }
                }
            }
        }
    }
    changed
}

/// True when a field was unmapped.
fn check(connection: &str, sobject: &str, mappings: &[Mapping]) -> Result<bool> {
    let client = clients::client(Ctx::Worker, connection)?;
    let key = (connection.to_string(), sobject.to_string());
    let since = SEEN.with(|s| s.borrow().get(&key).and_then(|x| x.last_modified.clone()));
    let found = client.describe_if_modified(sobject, since.as_deref())?;
    let DescribeCheck::Modified { describe, last_modified } = found else {
        SEEN.with(|s| s.borrow_mut().entry(key).or_default().checked = Some(Instant::now()));
        return Ok(false);
    };
    let fields: HashSet<String> = describe.fields.iter().map(|f| f.name.to_ascii_lowercase()).collect();
    let before = SEEN.with(|s| s.borrow().get(&key).map(|x| x.fields.clone()));
    let mut unmapped = false;
    for m in mappings.iter().filter(|m| m.connection == connection && m.sobject.eq_ignore_ascii_case(sobject)) {
        unmapped |= Ctx::Worker.tx(|| follow(m, &describe, before.as_ref()))?;
    }
    SEEN.with(|s| s.borrow_mut().insert(key, Seen { last_modified, fields, checked: Some(Instant::now()) }));
    Ok(unmapped)
}

/// Whether column `c` can still hold the field, now of type `sf_type` (plan/compat.rs).
fn fits(m: &Mapping, c: &crate::plan::fields::ColumnMap, sf_type: &str) -> bool {
    compat::incompatibility(&c.pg_type, sf_type).is_none() && !(m.pulls() && compat::pull_refusal(&c.column, &c.field, sf_type).is_some())
}

/// Compares one mapping with the new describe, inside a worker transaction. True when a
/// field was unmapped.
fn follow(m: &Mapping, d: &SObjectDescribe, before: Option<&HashSet<String>>) -> Result<bool> {
    let mut unmap: Vec<(String, AlertKind, String)> = Vec::new();
    let mut followed = false;
    for c in &m.columns {
        match d.field(&c.field) {
            None => unmap.push((
                c.column.clone(),
                AlertKind::FieldRemoved,
                format!(
                    "Salesforce field {}.{} was removed: column \"{}\" of {} is no longer synced (its data is kept)",
                    d.name, c.field, c.column, m.table
                ),
            )),
            Some(f) if f.r#type != c.sf_type && !fits(m, c, &f.r#type) => unmap.push((
                c.column.clone(),
                AlertKind::FieldChanged,
                format!(
                    "Salesforce field {}.{} changed from {} to {}, which column \"{}\" of {} cannot hold: it is no longer synced; \
                         change the column's type and run sfsync.sync_table again to map it",
                    d.name, c.field, c.sf_type, f.r#type, c.column, m.table
                ),
            )),
            // Still fits: what a value must fit (type, length, precision, restricted
            // picklist) is taken from the new describe, so the check before a push follows
            // a field made longer or shorter at once.
            Some(f) => {
                let limits = fields::limits(f);
                if f.r#type != c.sf_type || limits != c.limits {
                    let mut now = c.clone();
                    now.sf_type = f.r#type.clone();
                    now.limits = limits;
                    let entry = serde_json::to_value(&now).map_err(|e| SyncError::Spi(e.to_string()))?;
                    spi_util::exec(
                        "UPDATE sfsync.mappings SET columns = (SELECT jsonb_agg(CASE WHEN c->>'column' = $2 THEN $3::jsonb ELSE c END
                                                                        ORDER BY n)
                                                               FROM jsonb_array_elements(columns) WITH ORDINALITY AS e(c, n))
                         WHERE id = $1",
                        &[m.id.into(), c.column.as_str().into(), spi_util::jsonb(entry)],
                    )?;
                    followed = true;
                }
            }
        }
    }
    for (column, kind, message) in &unmap {
        spi_util::exec(
            "UPDATE sfsync.mappings SET columns = (SELECT COALESCE(jsonb_agg(c), '[]') FROM jsonb_array_elements(columns) c
                                                    WHERE c->>'column' <> $2)
             WHERE id = $1",
            &[m.id.into(), column.as_str().into()],
        )?;
        alerts::raise(Some(m.id), None, *kind, message, json!({"column": column}))?;
        pgrx::log!("sfsync: {message}");
    }
    if !unmap.is_empty() {
        // Its steps failed on the field: they may run again now, and the error they left in
        // sfsync.status is no longer true (a poll would clear it, but with a live change
        // stream the next poll may be far off).
        clients::forgive(m.id);
        spi_util::exec(
            "UPDATE sfsync.sync_state SET last_error = NULL, last_error_at = NULL
             WHERE mapping_id = $1 AND (last_error LIKE '%INVALID_FIELD%' OR last_error LIKE '%No such column%')",
            &[m.id.into()],
        )?;
    }
    let mut added = false;
    // A mirror of every field compares with its mapping (so a field added while the worker
    // was stopped is followed too); any other table is offered what is new since the last
    // describe this worker saw.
    let mapped: HashSet<String> = m.columns.iter().map(|c| c.field.to_ascii_lowercase()).collect();
    for f in d.fields.iter().filter(|f| !mapped.contains(&f.name.to_ascii_lowercase())) {
        let new = before.is_some_and(|b| !b.contains(&f.name.to_ascii_lowercase()));
        let message = match mirrored_column(m, d, f)? {
            Some(column) => {
                added = true;
                format!(
                    "Salesforce field {}.{} ({}) was added: it is now column \"{column}\" of {}, filled from Salesforce",
                    d.name, f.name, f.r#type, m.table
                )
            }
            None if new => format!(
                "Salesforce field {}.{} ({}) was added; to sync it, add a column for it and run sfsync.sync_table('{}', '{}', fields => ...) with it in fields",
                d.name, f.name, f.r#type, m.table.replace('\'', "''"), d.name
            ),
            None => continue,
        };
        alerts::raise(Some(m.id), None, AlertKind::FieldAdded, &message, json!({"field": f.name, "type": f.r#type}))?;
    }
    Ok(!unmap.is_empty() || added || followed)
}

/// A field added to the object of a table `sfsync.mirror` made with every field: the column
/// mirror would have made for it is added (as the table's owner), mapped, and filled by a
/// column backfill. None when the mapping is not such a mirror (or pushes: its triggers
/// would need the column too), mirror leaves the field out, or the column name is taken.
fn mirrored_column(m: &Mapping, d: &SObjectDescribe, f: &FieldDescribe) -> Result<Option<String>> {
    if !m.mirror_all || m.pushes() {
        return Ok(None);
    }
    let field = MirrorField { name: f.name.clone(), sf_type: f.r#type.clone(), precision: f.precision, scale: f.scale };
    let Some(col) = mirror::plan(std::slice::from_ref(&field), None, &m.external_id).ok().and_then(|c| c.into_iter().next()) else {
        return Ok(None);
    };
    let taken = Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_attribute WHERE attrelid = $1::bigint::oid AND attname = $2 AND NOT attisdropped)",
        &[i64::from(m.oid).into(), col.column.as_str().into()],
    )?;
    if taken != Some(false) {
        return Ok(None);
    }
    m.as_owner(|| Spi::run(&format!("ALTER TABLE {} ADD COLUMN {} {}", m.table, quote_identifier(&col.column), col.ddl_type)))?;
    let pg_type = Spi::get_one_with_args::<String>(
        "SELECT format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute WHERE attrelid = $1::bigint::oid AND attname = $2",
        &[i64::from(m.oid).into(), col.column.as_str().into()],
    )?
    .unwrap_or_default();
    let explicit: serde_json::Map<String, serde_json::Value> = [(col.column.clone(), json!(f.name))].into_iter().collect();
    let (columns, _) =
        fields::resolve(&[(col.column.clone(), pg_type)], &m.pk_column, Some(&explicit), &fields::field_infos(d), &m.external_id)
            .map_err(SyncError::Invalid)?;
    let Some(mapped) = columns.into_iter().next() else { return Ok(None) };
    let entry = serde_json::to_value(&mapped).map_err(|e| SyncError::Spi(e.to_string()))?;
    spi_util::exec(
        "UPDATE sfsync.mappings SET columns = columns || jsonb_build_array($2::jsonb),
             fields = CASE WHEN jsonb_typeof(fields) = 'object' THEN fields || jsonb_build_object($3::text, $4::text) ELSE fields END
         WHERE id = $1",
        &[m.id.into(), spi_util::jsonb(entry), col.column.as_str().into(), f.name.as_str().into()],
    )?;
    backfill::schedule_columns(m.id, std::slice::from_ref(&col.column))?;
    Ok(Some(col.column))
}
