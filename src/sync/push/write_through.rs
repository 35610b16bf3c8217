//! Write-through mode: a BEFORE ROW trigger that sends each change to Salesforce inside
//! the user's statement. Synchronous by design (the one place HTTP happens in a
//! transaction): if Salesforce refuses the record, the statement fails with Salesforce's
//! error and nothing is written locally. The decision of what to send is
//! `plan::write_through`; this module only reads the rows, calls and reports.
//!
//! Trigger arguments: mapping id. SECURITY DEFINER (set in the extension script) so the
//! writer needs no rights on the catalog or the stored credentials.

use crate::error::SyncError;
use crate::plan::soql;
use crate::plan::write_through::{
    already_deleted, failure_message, plan, refusal_message, Call, FailureKind, Refused, RowImage, RowOp, Target,
};
use crate::sync::{clients, echo_lock, load_mappings, Ctx, Mapping};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::{AllocatedByPostgres, AllocatedByRust, JsonB};
use salesforce::Client;
use serde_json::Value;

type Tuple<'a> = PgHeapTuple<'a, AllocatedByRust>;

#[pg_trigger]
fn write_through<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<Tuple<'a>>, SyncError> {
    match run(trigger) {
        Ok(t) => Ok(t),
        // Raised here so the SQLSTATE is ours (external routine / connection failure).
        Err(e) => e.raise(),
    }
}

fn run<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<Tuple<'a>>, SyncError> {
    let td = trigger.trigger_data();
    let op = match td.tg_event & pg_sys::TRIGGER_EVENT_OPMASK {
        pg_sys::TRIGGER_EVENT_INSERT => RowOp::Insert,
        pg_sys::TRIGGER_EVENT_UPDATE => RowOp::Update,
        pg_sys::TRIGGER_EVENT_DELETE => RowOp::Delete,
        _ => return Err(SyncError::Invalid("sfsync.write_through must be a BEFORE INSERT OR UPDATE OR DELETE row trigger".into())),
    };
    // What the row operation proceeds with: NEW, or OLD for a delete.
    let proceed = || match op {
        RowOp::Delete => trigger.old().map(PgHeapTuple::into_owned),
        _ => trigger.new().map(PgHeapTuple::into_owned),
    };
    // Rows the sync writes itself (pulled from Salesforce, Ids written back) are not sent back.
    if crate::capture::sync_wrote_it() {
        return Ok(proceed());
    }
    let args = trigger.extra_args().map_err(|e| SyncError::Invalid(format!("sfsync.write_through trigger arguments: {e}")))?;
    let mapping_id: i32 = args.first().and_then(|a| a.parse().ok()).ok_or_else(|| {
        SyncError::Invalid("sfsync.write_through needs the mapping id as its argument; run sfsync.sync_table again".into())
    })?;
    let relid = unsafe { (*td.tg_relation).rd_id };
    let table = trigger.table_name().map_err(|e| SyncError::Invalid(format!("sfsync.write_through: {e}")))?;
    let m = load_mappings(Some(relid.to_u32()))?
        .into_iter()
        .find(|m| m.id == mapping_id)
        .ok_or_else(|| SyncError::NotFound(format!("table {table} has an sfsync write-through trigger but is not synced; run sfsync.sync_table or drop trigger sfsync_write_through")))?;
    // A user trigger writing while the sync applies a pull (enrichment): the change is the
    // user's and must reach Salesforce, but the worker makes no call inside its transaction.
    // It is queued like an async mapping's change and pushed by the next pass.
    if crate::capture::inside_apply() {
        crate::capture::queue(m.id, td, &m.pk_column, m.columns.iter().map(|c| c.column.as_str()), crate::capture::Sink::Outbox)?;
        return Ok(proceed());
    }
    let rowtype = unsafe { (*(*td.tg_relation).rd_rel).reltype };
    // A mapping out of step with its table (capture.rs): send what can be, never fail the write.
    let desc = unsafe { (*td.tg_relation).rd_att };
    if !crate::capture::has_column(desc, &m.pk_column) {
        crate::capture::out_of_step(m.id, relid, &m.pk_column, "its changes are not sent");
        return Ok(proceed());
    }
    let mut m = m;
    let id = m.id;
    m.columns.retain(|c| {
        let present = crate::capture::has_column(desc, &c.column);
        if !present {
            crate::capture::out_of_step(id, relid, &c.column, "its field is not sent");
        }
        present
    });

    let old = match op {
        RowOp::Insert => None,
        _ => trigger.old().map(|t| image(&m, t, rowtype)).transpose()?,
    };
    let new = match op {
        RowOp::Delete => None,
        _ => trigger.new().map(|t| image(&m, t, rowtype)).transpose()?,
    };
    let key = new.as_ref().or(old.as_ref()).map(|r| r.key.clone()).unwrap_or_default();
    let target = Target { columns: &m.columns, external_id: &m.external_id, namespace: &m.namespace, on_delete: m.options.on_delete };
    let call = plan(op, &target, old.as_ref(), new.as_ref()).map_err(|r| match r {
        Refused::Misfired(why) => SyncError::Invalid(format!("sfsync.write_through: {why}")),
        Refused::Value(invalid) => SyncError::BadValue(refusal_message(op, &table, &key, &invalid)),
    })?;
    if call == Call::Nothing {
        return Ok(proceed());
    }
    // A copy of another database (sync::identity) must not write the original's records;
    // refusing the statement loses nothing, the caller sees why.
    if let crate::sync::identity::Standing::Copy(origin) = crate::sync::identity::standing()? {
        return Err(SyncError::Invalid(format!(
            "sfsync: {table} is synced write-through, and {}",
            crate::sync::identity::copy_message(&origin)
        )));
    }
    let fail = |kind: FailureKind, e: &dyn std::fmt::Display| {
        let msg = failure_message(op, &table, &key, kind, &e.to_string());
        match kind {
            FailureKind::Unreachable => SyncError::Unreachable(msg),
            _ => SyncError::External(msg),
        }
    };
    // Until this transaction ends, the change's own echo (event, poll) is not applied: the
    // row it would insert or change is not committed yet (sync::echo_lock).
    let mut keys: Vec<&str> = old.iter().chain(new.iter()).map(|r| r.key.as_str()).collect();
    keys.dedup();
    for k in keys {
        Spi::run_with_args(echo_lock::TAKE, &[m.id.into(), k.into()])?;
    }
    let client = clients::client(Ctx::Session, &m.connection).map_err(|e| match &e {
        SyncError::Salesforce(se) => fail(kind_of(se), se),
        other => fail(FailureKind::Failed, other),
    })?;
    let new_id = send(&client, &m, call).map_err(|e| fail(kind_of(&e), &e))?;
    // Salesforce has it: should this transaction roll back, the worker puts Salesforce back
    // to what Postgres committed (abort_queue, push::rollback).
    for r in old.iter().chain(new.iter()) {
        crate::abort_queue::sent(m.id, &r.key);
    }
    let mut out = proceed();
    if let (Some(id), Some(t)) = (new_id, out.as_mut()) {
        if t.get_by_name::<String>("sfid").ok().flatten().as_deref() != Some(id.as_str()) {
            t.set_by_name("sfid", id)
                .map_err(|e| SyncError::Invalid(format!("sfsync: cannot store the Salesforce Id in {table}.sfid: {e}")))?;
        }
    }
    Ok(out)
}

fn kind_of(e: &salesforce::Error) -> FailureKind {
    match e {
        salesforce::Error::Transport(_) => FailureKind::Unreachable,
        salesforce::Error::Api { .. } if !e.is_transient() => FailureKind::Rejected,
        _ => FailureKind::Failed,
    }
}

/// The key as text (what the async push uses as the external id) and `to_jsonb` of the row.
fn image(m: &Mapping, tuple: PgHeapTuple<'_, AllocatedByPostgres>, rowtype: pg_sys::Oid) -> Result<RowImage, SyncError> {
    let sql = format!("SELECT jsonb_build_object('key', ($1).{}::text, 'row', to_jsonb($1))", m.pk_ident());
    let arg = unsafe { DatumWithOid::new(tuple, rowtype) };
    let v = Spi::get_one_with_args::<JsonB>(&sql, &[arg])?.map(|j| j.0).unwrap_or(Value::Null);
    match (v.get("key"), v.get("row")) {
        (Some(Value::String(key)), Some(Value::Object(row))) => Ok(RowImage { key: key.clone(), row: row.clone() }),
        _ => Err(SyncError::Invalid(format!("sfsync: the key column \"{}\" of {} is NULL", m.pk_column, m.table))),
    }
}

/// Performs the call; returns the Salesforce Id the row should carry, when it changed.
fn send(client: &Client, m: &Mapping, call: Call) -> Result<Option<String>, salesforce::Error> {
    match call {
        Call::Nothing => Ok(None),
        Call::Upsert { key, record } => Ok(Some(client.upsert(&m.sobject, &m.external_id, &key, &record)?.id)),
        Call::Update { id, record } => {
            client.update(&m.sobject, &id, &record)?;
            Ok(None)
        }
        Call::Delete { id, key } => {
            let id = match id {
                Some(id) => id,
                None => {
                    // Never linked: find it by external id; none means nothing to delete.
                    let q = soql::by_external_ids(&m.sobject, &m.external_id, &[key.as_str()]).map_err(salesforce::Error::Config)?;
                    match client.query(&q)?.records.first().and_then(|r| r.get("Id")).and_then(Value::as_str) {
                        Some(id) => id.to_string(),
                        None => return Ok(None),
                    }
                }
            };
            match client.delete(&m.sobject, &id) {
                Err(e) if e.status() == Some(404) || already_deleted(&e.code()) => Ok(None),
                other => other.map(|_| None),
            }
        }
    }
}
