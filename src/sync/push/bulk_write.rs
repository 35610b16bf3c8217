//! Large batches through Bulk API 2.0 ingest instead of sObject Collections: one job (a
//! handful of API calls) per batch instead of one call per 200 records. Results come back
//! as the same per-record SaveResults the Collections path produces.

use crate::error::Result;
use crate::guc;
use crate::plan::bisect::bisect;
use salesforce::{build_csv, BulkOperation, BulkOptions, BulkRowOutcome, Client, IngestStarted, Record, RecordError, SaveResult};
use serde_json::Value;

/// Records of a settled round from which the memory its batch used is handed back.
pub(crate) const TRIM_AFTER: usize = 1000;

/// Returns the heap's free pages to the system after a big batch. A round's claim, CSV and
/// results take tens of MB that malloc would otherwise keep, so a worker that drained a
/// backlog would stay that large, and two overlapping rounds would add up.
pub(crate) fn give_memory_back() {
    // SAFETY: malloc_trim only releases free memory; it is safe to call at any time.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Past `sfsync.bulk_threshold` records one Bulk API job replaces many Collections calls.
pub(crate) fn by_bulk(n: usize) -> bool {
    n >= guc::BULK_THRESHOLD.get().max(1) as usize
}

/// Upserts on `external_id`: one Bulk job, or Collections calls (a request refused for one
/// record bisected until that record is alone). A result per record, in order.
pub fn upsert(client: &Client, sobject: &str, external_id: &str, records: &[Record]) -> Result<Vec<SaveResult>> {
    if by_bulk(records.len()) {
        return write(client, sobject, BulkOperation::Upsert, Some(external_id), records);
    }
    Ok(bisect(records, &mut |chunk| client.collections_upsert(sobject, external_id, chunk))?)
}

/// Updates of records by Id, as `upsert` sends them.
pub fn update(client: &Client, sobject: &str, records: Vec<(String, Record)>) -> Result<Vec<SaveResult>> {
    if by_bulk(records.len()) {
        return write(client, sobject, BulkOperation::Update, None, &with_ids(records));
    }
    Ok(bisect(&records, &mut |chunk| client.collections_update(sobject, chunk))?)
}

/// Deletes by Id, as `upsert` sends them. A record already gone counts as deleted: that is
/// what was wanted.
pub fn delete(client: &Client, sobject: &str, ids: &[String]) -> Result<Vec<SaveResult>> {
    if by_bulk(ids.len()) {
        return write(client, sobject, BulkOperation::Delete, None, &id_records(ids));
    }
    Ok(already_deleted_is_deleted(bisect(ids, &mut |chunk| client.collections_delete(chunk))?))
}

/// Delete results with a record already gone counted as deleted.
pub fn already_deleted_is_deleted(results: Vec<SaveResult>) -> Vec<SaveResult> {
    results
        .into_iter()
        .map(|r| {
            if r.errors.iter().any(|e| crate::plan::write_through::already_deleted(&e.status_code)) {
                SaveResult { id: r.id, success: true, created: None, errors: vec![] }
            } else {
                r
            }
        })
        .collect()
}

/// Records to update by Id, as a Bulk update job takes them (the Id a column).
pub fn with_ids(records: Vec<(String, Record)>) -> Vec<Record> {
    records
        .into_iter()
        .map(|(id, mut r)| {
            r.insert("Id".into(), Value::String(id));
            r
        })
        .collect()
}

/// Records of one `Id` column, as a Bulk delete job takes them.
pub fn id_records(ids: &[String]) -> Vec<Record> {
    ids.iter().map(|id| Record::from_iter([("Id".to_string(), Value::String(id.clone()))])).collect()
}

/// One ingest job over `records` (heterogeneous field sets allowed: a field a record
/// doesn't carry is left unchanged, a JSON null clears it).
pub fn write(client: &Client, sobject: &str, op: BulkOperation, external_id: Option<&str>, records: &[Record]) -> Result<Vec<SaveResult>> {
    finish(client, start(client, sobject, op, external_id, records)?)
}

/// An ingest job uploaded and processing in Salesforce.
pub struct Started {
    job: IngestStarted,
    op: BulkOperation,
}

/// Starts one ingest job over `records` (see `write`) without waiting for it.
pub fn start(client: &Client, sobject: &str, op: BulkOperation, external_id: Option<&str>, records: &[Record]) -> Result<Started> {
    let (header, rows) = to_rows(records);
    let csv = build_csv(&header, rows)?;
    Ok(Started { job: client.bulk_ingest_start(sobject, op, external_id, &csv)?, op })
}

/// Waits for a started job: a result per record, in order (a delete of a record already
/// gone counted as done).
pub fn finish(client: &Client, started: Started) -> Result<Vec<SaveResult>> {
    let result = client.bulk_ingest_finish(started.job, &BulkOptions::default())?;
    let results = result.rows.into_iter().map(to_save_result).collect();
    Ok(if started.op == BulkOperation::Delete { already_deleted_is_deleted(results) } else { results })
}

/// The union of the records' fields as a header and one CSV row each.
fn to_rows(records: &[Record]) -> (Vec<String>, Vec<Vec<Option<String>>>) {
    let mut header: Vec<String> = Vec::new();
    for r in records {
        for k in r.keys() {
            if !header.contains(k) {
                header.push(k.clone());
            }
        }
    }
    let rows = records
        .iter()
        .map(|r| {
            header
                .iter()
                .map(|h| match r.get(h) {
                    None => Some(String::new()), // not carried: unchanged
                    Some(Value::Null) => None,   // cleared (#N/A)
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(other) => Some(other.to_string()),
                })
                .collect()
        })
        .collect();
    (header, rows)
}

fn to_save_result(o: BulkRowOutcome) -> SaveResult {
    match o {
        BulkRowOutcome::Success { id, created } => SaveResult { id: Some(id), success: true, created: Some(created), errors: vec![] },
        BulkRowOutcome::Failed { id, error } => SaveResult { id, success: false, created: None, errors: vec![error] },
        BulkRowOutcome::Unprocessed => SaveResult {
            id: None,
            success: false,
            created: None,
            // Transient: the job stopped before this row; it goes again with the next pass.
            errors: vec![RecordError {
                status_code: "SERVER_UNAVAILABLE".into(),
                message: "not processed by the Bulk API job".into(),
                fields: vec![],
            }],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_share_one_header_and_keep_absent_fields_unchanged() {
        let a = json!({"Id": "003A", "LastName": "Doe", "Email": null}).as_object().unwrap().clone();
        let b = json!({"Id": "003B", "Title": "CTO", "NumberOfEmployees": 5}).as_object().unwrap().clone();
        let (header, rows) = to_rows(&[a, b]);
        assert_eq!(header, vec!["Email", "Id", "LastName", "NumberOfEmployees", "Title"]);
        assert_eq!(rows[0], vec![None, Some("003A".into()), Some("Doe".into()), Some("".into()), Some("".into())]);
        assert_eq!(rows[1], vec![Some("".into()), Some("003B".into()), Some("".into()), Some("5".into()), Some("CTO".into())]);
    }

    #[test]
    fn unprocessed_rows_are_retried() {
        let r = to_save_result(BulkRowOutcome::Unprocessed);
        assert!(!r.success && r.errors[0].is_transient());
    }
}
