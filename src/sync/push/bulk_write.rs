//! Large batches through Bulk API 2.0 ingest instead of sObject Collections: one job (a
//! handful of API calls) per batch instead of one call per 200 records. Results come back
//! as the same per-record SaveResults the Collections path produces.

use crate::error::Result;
use salesforce::{build_csv, BulkOperation, BulkRowOutcome, Client, Record, RecordError, SaveResult};
use serde_json::Value;

/// One ingest job over `records` (heterogeneous field sets allowed: a field a record
/// doesn't carry is left unchanged, a JSON null clears it).
pub fn write(client: &Client, sobject: &str, op: BulkOperation, external_id: Option<&str>, records: &[Record]) -> Result<Vec<SaveResult>> {
    let (header, rows) = to_rows(records);
    let csv = build_csv(&header, rows)?;
    let result = client.bulk_ingest(sobject, op, external_id, &csv)?;
    Ok(result.rows.into_iter().map(to_save_result).collect())
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
