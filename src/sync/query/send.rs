//! A refresh's writes to Salesforce, outside any transaction: updates by Id, upserts on the
//! External ID field and deletes, each through sObject Collections (≤200 records a call,
//! a request refused for one record's value split until that record carries the error) or,
//! from `sfsync.bulk_threshold` records, one Bulk API 2.0 job: the push's own machinery.

use super::QueryDef;
use crate::error::Result;
use crate::plan::check;
use crate::plan::query::{Call, Op, Send, Target};
use crate::sync::push::bulk_write;
use salesforce::{Client, Record, RecordError, SaveResult};
use serde_json::Value;

/// One result per write, in order. Err: the request as a whole failed.
pub(super) fn send(client: &Client, q: &QueryDef, sends: &[Send]) -> Result<Vec<SaveResult>> {
    let mut out: Vec<Option<SaveResult>> = vec![None; sends.len()];
    let mut updates: Vec<(usize, (String, Record))> = Vec::new();
    let mut upserts: Vec<(usize, Record)> = Vec::new();
    let mut deletes: Vec<(usize, String)> = Vec::new();
    for (i, s) in sends.iter().enumerate() {
        let call = s.call(&q.target);
        let create = call == Call::Upsert;
        let rec = match to_record(q, s, create) {
            Ok(r) => r,
            Err(e) => {
                out[i] = Some(SaveResult::failed(e));
                continue;
            }
        };
        match call {
            Call::Update(id) => updates.push((i, (id, rec))),
            Call::Upsert => upserts.push((i, rec)),
            Call::Delete(id) => deletes.push((i, id)),
            Call::Nothing => out[i] = Some(SaveResult { id: None, success: true, created: None, errors: vec![] }),
        }
    }
    if let (false, Target::Upsert(field)) = (upserts.is_empty(), &q.target) {
        let recs: Vec<Record> = upserts.iter().map(|(_, r)| r.clone()).collect();
        let res = bulk_write::upsert(client, &q.sobject, field, &recs)?;
        place(&mut out, upserts.iter().map(|(i, _)| *i), res);
    }
    if !updates.is_empty() {
        let recs: Vec<(String, Record)> = updates.iter().map(|(_, r)| r.clone()).collect();
        let res = bulk_write::update(client, &q.sobject, recs)?;
        place(&mut out, updates.iter().map(|(i, _)| *i), res);
    }
    if !deletes.is_empty() {
        let ids: Vec<String> = deletes.iter().map(|(_, id)| id.clone()).collect();
        let res = bulk_write::delete(client, &q.sobject, &ids)?;
        place(&mut out, deletes.iter().map(|(i, _)| *i), res);
    }
    Ok(out
        .into_iter()
        .map(|r| {
            r.unwrap_or_else(|| {
                SaveResult::failed(RecordError {
                    status_code: "MISSING_RESULT".into(),
                    message: "Salesforce returned fewer results than records sent".into(),
                    fields: vec![],
                })
            })
        })
        .collect())
}

fn place(out: &mut [Option<SaveResult>], at: impl Iterator<Item = usize>, results: Vec<SaveResult>) {
    for (i, r) in at.zip(results) {
        out[i] = Some(r);
    }
}

/// The fields of one write, each value checked for its field first (`plan::check`): the
/// first one Salesforce would refuse is the record's error. A new record (upsert) carries
/// the key in the External ID field and only createable fields; an update, the updateable ones.
fn to_record(q: &QueryDef, s: &Send, create: bool) -> std::result::Result<Record, RecordError> {
    let mut rec = Record::new();
    if s.op == Op::Delete {
        return Ok(rec);
    }
    for (col, v) in &s.values {
        let Some(cm) = q.columns.iter().find(|c| &c.column == col) else { continue };
        if (create && !cm.createable) || (!create && !cm.updateable) {
            continue;
        }
        let value = check::to_sf(cm, v).map_err(|e| RecordError {
            status_code: e.code.to_string(),
            message: e.message,
            fields: vec![cm.field.clone()],
        })?;
        rec.insert(cm.field.clone(), value);
    }
    if let (true, Target::Upsert(field)) = (create, &q.target) {
        rec.insert(field.clone(), Value::String(s.key.clone()));
    }
    Ok(rec)
}
