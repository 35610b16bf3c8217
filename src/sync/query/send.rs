//! A refresh's writes to Salesforce, outside any transaction: updates by Id, upserts on the
//! External ID field and deletes, each through sObject Collections (≤200 records a call,
//! a request refused for one record's value split until that record carries the error) or,
//! from `sfsync.bulk_threshold` records, one Bulk API 2.0 job: the push's own machinery.

use super::QueryDef;
use crate::error::Result;
use crate::guc;
use crate::plan::bisect::bisect;
use crate::plan::check;
use crate::plan::query::{Call, Op, Send, Target};
use crate::sync::push::bulk_write;
use salesforce::{BulkOperation, Client, Record, RecordError, SaveResult};
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
    let bulk = |n: usize| n >= guc::BULK_THRESHOLD.get().max(1) as usize;
    if let (false, Target::Upsert(field)) = (upserts.is_empty(), &q.target) {
        let recs: Vec<Record> = upserts.iter().map(|(_, r)| r.clone()).collect();
        let res = if bulk(recs.len()) {
            bulk_write::write(client, &q.sobject, BulkOperation::Upsert, Some(field), &recs)?
        } else {
            bisect(&recs, &mut |chunk| client.collections_upsert(&q.sobject, field, chunk))?
        };
        place(&mut out, upserts.iter().map(|(i, _)| *i), res);
    }
    if !updates.is_empty() {
        let recs: Vec<(String, Record)> = updates.iter().map(|(_, r)| r.clone()).collect();
        let res = if bulk(recs.len()) {
            let with_ids: Vec<Record> = recs
                .into_iter()
                .map(|(id, mut r)| {
                    r.insert("Id".into(), Value::String(id));
                    r
                })
                .collect();
            bulk_write::write(client, &q.sobject, BulkOperation::Update, None, &with_ids)?
        } else {
            bisect(&recs, &mut |chunk| client.collections_update(&q.sobject, chunk))?
        };
        place(&mut out, updates.iter().map(|(i, _)| *i), res);
    }
    if !deletes.is_empty() {
        let ids: Vec<String> = deletes.iter().map(|(_, id)| id.clone()).collect();
        let res = if bulk(ids.len()) {
            let recs: Vec<Record> = ids.iter().map(|id| Record::from_iter([("Id".to_string(), Value::String(id.clone()))])).collect();
            bulk_write::write(client, &q.sobject, BulkOperation::Delete, None, &recs)?
        } else {
            bisect(&ids, &mut |chunk| client.collections_delete(chunk))?
        };
        // Already gone in Salesforce is what we wanted.
        let res = res
            .into_iter()
            .map(|r| {
                let gone = r
                    .errors
                    .iter()
                    .any(|e| matches!(e.status_code.as_str(), "ENTITY_IS_DELETED" | "INVALID_CROSS_REFERENCE_KEY" | "NOT_FOUND"));
                if gone {
                    SaveResult { id: r.id, success: true, created: None, errors: vec![] }
                } else {
                    r
                }
            })
            .collect();
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
