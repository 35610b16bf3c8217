//! The worker's side of a write-through transaction that rolled back after Salesforce
//! accepted its change (`abort_queue` hands over the keys): Salesforce is made equal to what
//! Postgres committed, key by key, at the start of each pass — before change events and
//! polls, which defer these keys until then.
//!
//! - no committed row: the record with the key's external id is deleted (a rolled-back
//!   insert, or a key change's new key);
//! - a committed row: all its values are sent — to its record by Id, or, when that record
//!   is gone (a rolled-back delete), upserted on the external id, which re-creates it; the new
//!   Id is written back to the row (not captured).
//!
//! A key whose repair fails stays (and stays deferred) until a later pass succeeds.

use crate::abort_queue;
use crate::capture::Applying;
use crate::error::{Result, SyncError};
use crate::plan::soql;
use crate::plan::write_through::{already_deleted, plan, refusal_message, Call, Refused, RowImage, RowOp, Target};
use crate::spi_util;
use crate::sync::clients::{self, Step};
use crate::sync::echo_book;
use crate::sync::{Ctx, Mapping};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use serde_json::Value;

/// Repairs what rolled back since the last pass (and what failed to repair before).
pub fn repair(mappings: &[Mapping]) {
    let (keys, marked) = abort_queue::take();
    for mapping in marked {
        // More rollbacks than the queue holds: every key of the mapping is checked.
        match mappings.iter().find(|m| m.id == mapping) {
            Some(m) => match clients::call(Ctx::Worker, &m.connection, Step::new(m.id, "rollback"), || whole(m)) {
                clients::Call::Done(()) => abort_queue::checked(mapping),
                clients::Call::Waiting => {}
                clients::Call::Failed { error, retry_in, .. } => {
                    warning!(
                        "sfsync: checking {} after rolled-back write-through changes failed, retrying in {retry_in:?}: {error}",
                        m.table
                    )
                }
            },
            None => abort_queue::checked(mapping),
        }
    }
    // Rows there first: a key change's old key takes its record back before the new key's
    // absence would delete it.
    let mut work: Vec<(&Mapping, String, Option<RowImage>)> = Vec::new();
    for (mapping, key) in keys {
        let Some(m) = mappings.iter().find(|m| m.id == mapping) else {
            abort_queue::repaired(mapping, &key); // unsynced meanwhile: nothing to repair
            continue;
        };
        match Ctx::Worker.tx(|| committed(m, &key)) {
            Ok(image) => work.push((m, key, image)),
            Err(e) => warning!("sfsync: reading {} key {key} after a rolled-back write-through failed: {e}", m.table),
        }
    }
    work.sort_by_key(|(_, _, image)| image.is_none());
    for (m, key, image) in work {
        match clients::call(Ctx::Worker, &m.connection, Step::new(m.id, "rollback"), || one(m, &key, image.as_ref())) {
            clients::Call::Done(()) => abort_queue::repaired(m.id, &key),
            clients::Call::Waiting => {}
            clients::Call::Failed { error, retry_in, .. } => warning!(
                "sfsync: putting Salesforce back to the committed {} key {key} after a rollback failed, retrying in {retry_in:?}: {error}",
                m.table
            ),
        }
    }
}

/// The committed row of `key`, if any.
fn committed(m: &Mapping, key: &str) -> Result<Option<RowImage>> {
    let sql = format!(
        "SELECT jsonb_build_object('key', t.{pk}::text, 'row', to_jsonb(t)) FROM {tbl} t WHERE t.{pk} = $1::{ty}",
        pk = m.pk_ident(),
        tbl = m.table,
        ty = m.pk_type
    );
    let args: Vec<DatumWithOid> = vec![key.into()];
    Ok(spi_util::json(&sql, &args)?.and_then(|v| match (v.get("key"), v.get("row")) {
        (Some(Value::String(key)), Some(Value::Object(row))) => Some(RowImage { key: key.clone(), row: row.clone() }),
        _ => None,
    }))
}

/// Makes Salesforce's record of `key` what the committed row (`image`) says.
fn one(m: &Mapping, key: &str, image: Option<&RowImage>) -> Result<()> {
    let client = clients::client(Ctx::Worker, &m.connection)?;
    let external = m.external_value(key);
    let Some(image) = image else {
        let q = soql::by_external_ids(&m.sobject, &m.external_id, &[external.as_str()]).map_err(SyncError::Invalid)?;
        for id in client.query(&q)?.records.iter().filter_map(|r| r.get("Id").and_then(Value::as_str)) {
            match client.delete(&m.sobject, id) {
                Err(e) if e.status() == Some(404) || already_deleted(&e.code()) => {}
                other => other?,
            }
            // The rolled-back insert's create event may arrive after this: older, not applied.
            echo_book::note_writes(&m.connection, |book| book.deleted(id));
        }
        return Ok(());
    };
    let target = Target { columns: &m.columns, external_id: &m.external_id, namespace: &m.namespace, on_delete: m.options.on_delete };
    // Every value, by Id while the record is there (its external id included: a key change
    // may have moved it), else upserted on the key.
    if let Some(id) = image.sfid() {
        if let Ok(Call::Update { mut record, .. }) = plan(RowOp::Insert, &target, None, Some(image)) {
            record.insert(m.external_id.clone(), Value::String(external.clone()));
            match client.update(&m.sobject, &id, &record) {
                Ok(()) => {
                    echo_book::note_writes(&m.connection, |book| book.wrote(&id, &record));
                    return Ok(());
                }
                Err(e) if e.status() == Some(404) || already_deleted(&e.code()) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let mut unlinked = image.clone();
    unlinked.row.remove("sfid");
    let (ext, record) = match plan(RowOp::Insert, &target, None, Some(&unlinked)) {
        Ok(Call::Upsert { key: ext, record }) => (ext, record),
        Err(Refused::Value(invalid)) => return Err(SyncError::BadValue(refusal_message(RowOp::Insert, &m.table, key, &invalid))),
        _ => return Err(SyncError::Invalid(format!("sfsync: cannot plan the upsert of {} key {key}", m.table))),
    };
    let id = client.upsert(&m.sobject, &m.external_id, &ext, &record)?.id;
    echo_book::note_writes(&m.connection, |book| book.wrote(&id, &record));
    if image.sfid().as_deref() != Some(id.as_str()) {
        Ctx::Worker.tx(|| {
            let _applying = Applying::start();
            let sql = format!(
                "UPDATE {tbl} SET sfid = $2 WHERE {pk} = $1::{ty} AND sfid IS DISTINCT FROM $2",
                tbl = m.table,
                pk = m.pk_ident(),
                ty = m.pk_type
            );
            let args: Vec<DatumWithOid> = vec![key.into(), id.clone().into()];
            m.as_owner(|| spi_util::exec(&sql, &args))?;
            Ok(())
        })?;
    }
    Ok(())
}

/// Every key of the mapping: its rows, and the records carrying its namespace.
fn whole(m: &Mapping) -> Result<()> {
    let keys: Vec<String> = Ctx::Worker.tx(|| {
        let sql = format!("SELECT COALESCE(jsonb_agg(t.{pk}::text), '[]') FROM {tbl} t", pk = m.pk_ident(), tbl = m.table);
        let v = spi_util::json(&sql, &[])?.unwrap_or_default();
        serde_json::from_value(v).map_err(|e| SyncError::Spi(format!("reading the keys of {}: {e}", m.table)))
    })?;
    let client = clients::client(Ctx::Worker, &m.connection)?;
    let prefix = m.external_value("");
    let q = format!(
        "SELECT Id, {ext} FROM {obj} WHERE {ext} LIKE {like}",
        ext = m.external_id,
        obj = m.sobject,
        like = salesforce::soql::quote(&format!("{prefix}%"))
    );
    let mut all: Vec<String> = keys;
    for r in client.query_iter(&q, false) {
        if let Some(k) = r?.get(&m.external_id).and_then(Value::as_str).and_then(|v| m.key_of(v)) {
            all.push(k.to_string());
        }
    }
    all.sort();
    all.dedup();
    for key in all {
        let image = Ctx::Worker.tx(|| committed(m, &key))?;
        one(m, &key, image.as_ref())?;
    }
    Ok(())
}
