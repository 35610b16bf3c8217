//! Step 2 of a push: one mapping's planned changes to Salesforce, outside any transaction.
//! sObject Collections (≤200 records a call) for small batches, one Bulk API 2.0 ingest job
//! from `sfsync.bulk_threshold`; update by Id when the Salesforce Id is known, else upsert on
//! the external id holding the Postgres key. A Collections request refused as a whole for one
//! record's value is split until that record carries the error (`plan::bisect`).

use super::{bulk_write, Outcome, Result_};
use crate::error::{Result, SyncError};
use crate::plan::coalesce::{Change, Write};
use crate::plan::options::OnDelete;
use crate::plan::{check, soql};
use crate::sync::Mapping;
use salesforce::{Client, Record, SaveResult};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// One mapping's changes sorted by the request each needs.
pub(super) struct Sorted {
    /// Settled without a call: skips, deletes ignored, values refused by `plan::check`.
    pub done: Vec<Result_>,
    pub updates: Vec<(Change, (String, Record))>,
    pub upserts: Vec<(Change, Record)>,
    pub deletes: Vec<(Change, String)>,
    /// Deletes of rows whose Salesforce Id we never learned: looked up first.
    pub unknown_deletes: Vec<Change>,
}

pub(super) fn sort(m: &Mapping, changes: Vec<Change>) -> Sorted {
    let mut s = Sorted { done: Vec::new(), updates: Vec::new(), upserts: Vec::new(), deletes: Vec::new(), unknown_deletes: Vec::new() };
    for c in changes {
        match &c.write {
            Write::Skip => s.done.push(Result_ { change: c, operation: "skip", outcome: Outcome::Done { sfid: None } }),
            Write::Upsert(payload) => {
                let update = c.sfid.is_some();
                match (to_record(m, &c.pk, payload, update), c.sfid.clone()) {
                    // A value Salesforce would refuse: the record's error, no call for it.
                    (Err(outcome), _) => s.done.push(Result_ { change: c, operation: if update { "update" } else { "upsert" }, outcome }),
                    (Ok(rec), Some(id)) => s.updates.push((c, (id, rec))),
                    (Ok(rec), None) => s.upserts.push((c, rec)),
                }
            }
            Write::Delete if m.options.on_delete == OnDelete::Ignore => {
                s.done.push(Result_ { change: c, operation: "skip", outcome: Outcome::Done { sfid: None } })
            }
            Write::Delete => match c.sfid.clone() {
                Some(id) => s.deletes.push((c, id)),
                None => s.unknown_deletes.push(c),
            },
        }
    }
    s
}

/// Sends one mapping's changes. Err means the request as a whole failed (nothing known
/// about individual records); record-level rejections come back as outcomes.
pub(super) fn send(client: &Client, m: &Mapping, changes: Vec<Change>) -> Result<Vec<Result_>> {
    send_sorted(client, m, sort(m, changes))
}

/// A mapping's send still in Salesforce's hands: one Bulk job processing.
/// `bulk_write::finish` gives the job's results, `zip_results` pairs them with `changes`.
pub(super) struct Started {
    /// Settled without a call.
    pub done: Vec<Result_>,
    /// The job's changes, in the order of its records.
    pub changes: Vec<Change>,
    pub operation: &'static str,
    pub job: bulk_write::Started,
}

pub(super) enum Sending {
    Done(Vec<Result_>),
    Started(Started),
}

/// Like `send`, except that a send that is one Bulk job (one kind of write past
/// `sfsync.bulk_threshold`) is only started: the pass claims and sends its next batch while
/// Salesforce processes this one, then `finish`es it.
pub(super) fn start(client: &Client, m: &Mapping, changes: Vec<Change>) -> Result<Sending> {
    let sorted = sort(m, changes);
    let kinds = [sorted.upserts.len(), sorted.updates.len(), sorted.deletes.len()];
    let one_job = sorted.unknown_deletes.is_empty() && kinds.iter().filter(|n| **n > 0).count() == 1;
    if !one_job || !kinds.into_iter().any(bulk_write::by_bulk) {
        return send_sorted(client, m, sorted).map(Sending::Done);
    }
    use salesforce::BulkOperation as Op;
    let Sorted { done, updates, upserts, deletes, .. } = sorted;
    let (changes, operation, job) = if !upserts.is_empty() {
        let (changes, recs): (Vec<Change>, Vec<Record>) = upserts.into_iter().unzip();
        (changes, "upsert", bulk_write::start(client, &m.sobject, Op::Upsert, Some(&m.external_id), &recs)?)
    } else if !updates.is_empty() {
        let (changes, recs): (Vec<Change>, Vec<(String, Record)>) = updates.into_iter().unzip();
        (changes, "update", bulk_write::start(client, &m.sobject, Op::Update, None, &bulk_write::with_ids(recs))?)
    } else {
        let (changes, ids): (Vec<Change>, Vec<String>) = deletes.into_iter().unzip();
        (changes, "delete", bulk_write::start(client, &m.sobject, Op::Delete, None, &bulk_write::id_records(&ids))?)
    };
    Ok(Sending::Started(Started { done, changes, operation, job }))
}

fn send_sorted(client: &Client, m: &Mapping, sorted: Sorted) -> Result<Vec<Result_>> {
    let Sorted { done: mut out, updates, upserts, mut deletes, unknown_deletes } = sorted;
    // A delete of a row whose Id we never learned (e.g. a crash before the write-back):
    // find the record by external id; if there is none, there is nothing to delete.
    for chunk in unknown_deletes.chunks(200) {
        let values: Vec<String> = chunk.iter().map(|c| m.external_value(&c.pk)).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let q = soql::by_external_ids(&m.sobject, &m.external_id, &values).map_err(SyncError::Invalid)?;
        let mut found: HashMap<String, String> = HashMap::new();
        for rec in client.query_iter(&q, false) {
            let rec = rec?;
            if let (Some(Value::String(id)), Some(ext)) = (rec.get("Id"), rec.get(&m.external_id)) {
                if let Some(key) = m.key_of(&plain(ext)) {
                    found.insert(key.to_string(), id.clone());
                }
            }
        }
        for c in chunk {
            match found.get(&c.pk) {
                Some(id) => deletes.push((c.clone(), id.clone())),
                None => out.push(Result_ { change: c.clone(), operation: "delete", outcome: Outcome::Done { sfid: None } }),
            }
        }
    }
    // Bulk past sfsync.bulk_threshold, else Collections (bulk_write).
    if !upserts.is_empty() {
        let recs: Vec<Record> = upserts.iter().map(|(_, r)| r.clone()).collect();
        let res = bulk_write::upsert(client, &m.sobject, &m.external_id, &recs)?;
        note_written(m, recs.iter().zip(&res).map(|(r, s)| (s.id.as_deref(), Some(r), s.success)));
        out.extend(zip_results(upserts.into_iter().map(|(c, _)| c), res, "upsert"));
    }
    if !updates.is_empty() {
        let recs: Vec<(String, Record)> = updates.iter().map(|(_, r)| r.clone()).collect();
        let res = bulk_write::update(client, &m.sobject, recs.clone())?;
        note_written(m, recs.iter().zip(&res).map(|((id, r), s)| (Some(id.as_str()), Some(r), s.success)));
        out.extend(zip_results(updates.into_iter().map(|(c, _)| c), res, "update"));
    }
    if !deletes.is_empty() {
        let ids: Vec<String> = deletes.iter().map(|(_, id)| id.clone()).collect();
        let res = bulk_write::delete(client, &m.sobject, &ids)?;
        note_written(m, ids.iter().zip(&res).map(|(id, s)| (Some(id.as_str()), None, s.success)));
        out.extend(zip_results(deletes.into_iter().map(|(c, _)| c), res, "delete"));
    }
    Ok(out)
}

/// Tells the connection's change stream what went through (record Id, fields sent, or None
/// for a delete), so it can drop the echoes (`plan::echoes`). Collections-sized batches only:
/// a Bulk job's echoes arrive while it runs, before its results name the records, and a job
/// of thousands would crowd the book; they are applied, changing nothing.
pub(super) fn note_written<'a>(m: &Mapping, written: impl ExactSizeIterator<Item = (Option<&'a str>, Option<&'a Record>, bool)>) {
    if bulk_write::by_bulk(written.len()) {
        return;
    }
    crate::sync::echo_book::note_writes(&m.connection, |book| {
        for (id, rec, ok) in written {
            match (id, rec, ok) {
                (Some(id), Some(rec), true) => book.wrote(id, rec),
                (Some(id), None, true) => book.deleted(id),
                _ => {}
            }
        }
    });
}

pub(super) fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Mapped fields of a payload as a Salesforce record; a new record (upsert) also gets the
/// external ID that marks it as this mapping's. An update by Id leaves the external ID as
/// it is (a record created in Salesforce stays nobody's, and one mapping never takes over
/// a record another one made), unless the row was re-keyed. Values are checked against the
/// describe first (`plan::check`): the first that Salesforce would refuse rejects the record.
fn to_record(m: &Mapping, pk: &str, payload: &Map<String, Value>, update: bool) -> std::result::Result<Record, Outcome> {
    let mut rec = Record::new();
    for (col, v) in payload {
        let Some(cm) = m.column(col) else { continue }; // unmapped since capture
        if (update && !cm.updateable) || (!update && !cm.createable) {
            continue;
        }
        let value = check::to_sf(cm, v).map_err(|e| Outcome::Rejected {
            code: e.code.to_string(),
            message: e.message,
            fields: vec![cm.field.clone()],
            transient: false,
        })?;
        rec.insert(cm.field.clone(), value);
    }
    // The key column in the payload: the row was re-keyed, its record follows.
    if !update || payload.contains_key(&m.pk_column) {
        rec.insert(m.external_id.clone(), Value::String(m.external_value(pk)));
    }
    Ok(rec)
}

pub(super) fn zip_results(changes: impl Iterator<Item = Change>, results: Vec<SaveResult>, operation: &'static str) -> Vec<Result_> {
    let mut results = results.into_iter();
    changes
        .map(|change| {
            let outcome = match results.next() {
                Some(r) if r.success => Outcome::Done { sfid: r.id.or_else(|| change.sfid.clone()) },
                Some(r) => {
                    let transient = !r.errors.is_empty() && r.errors.iter().all(|e| e.is_transient());
                    let first = r.errors.first();
                    Outcome::Rejected {
                        code: first.map(|e| e.status_code.clone()).unwrap_or_else(|| "UNKNOWN_ERROR".into()),
                        message: r.errors.iter().map(|e| e.message.clone()).collect::<Vec<_>>().join("; "),
                        fields: r.errors.iter().flat_map(|e| e.fields.clone()).collect(),
                        transient,
                    }
                }
                None => Outcome::Rejected {
                    code: "MISSING_RESULT".into(),
                    message: "Salesforce returned fewer results than records sent".into(),
                    fields: vec![],
                    transient: true,
                },
            };
            Result_ { change, operation, outcome }
        })
        .collect()
}
