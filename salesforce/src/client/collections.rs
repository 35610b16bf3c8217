//! sObject Collections (`/composite/sobjects`): create, update, upsert and delete up to
//! [`COLLECTIONS_CHUNK`] records per request, with `allOrNone=false` so one bad record does
//! not sink its chunk; results come back one per input record, in input order.

use serde_json::{json, Value};

use super::records::clean_fields;
use super::request::Method;
use super::{check_field, check_object, Client};
use crate::error::{Error, RecordError};
use crate::http::{encode_query, encode_segment};
use crate::types::{Record, SaveResult};

/// Maximum records per sObject Collections request.
pub const COLLECTIONS_CHUNK: usize = 200;

impl Client {
    // --------------------------------------------------------- collections

    fn collections_call(
        &self,
        method: Method,
        path: String,
        body: Option<&Value>,
        expected: usize,
        idempotent: bool,
    ) -> Result<Vec<SaveResult>, Error> {
        let resp = self.rest(method, path, body, idempotent)?;
        let results: Vec<SaveResult> = serde_json::from_str(&resp.body).map_err(|e| Error::Decode(format!("collections result: {e}")))?;
        if results.len() != expected {
            return Err(Error::Decode(format!("collections returned {} results for {expected} records", results.len())));
        }
        Ok(results)
    }

    /// `POST /composite/sobjects` (allOrNone=false) in chunks of 200; one
    /// result per input record, in input order. Not retried after an
    /// ambiguous failure. See [`run_chunks`] for chunk-level failures.
    pub fn collections_create(&self, sobject: &str, records: &[Record]) -> Result<Vec<SaveResult>, Error> {
        check_object(sobject)?;
        let path = self.data_path("/composite/sobjects");
        run_chunks(records, COLLECTIONS_CHUNK, |chunk| {
            let recs: Vec<Value> = chunk.iter().map(|r| Value::Object(typed(sobject, r, &["Id"]))).collect();
            let body = json!({ "allOrNone": false, "records": recs });
            self.collections_call(Method::Post, path.clone(), Some(&body), chunk.len(), false)
        })
    }

    /// `PATCH /composite/sobjects` with `(Id, fields)` pairs.
    pub fn collections_update(&self, sobject: &str, records: &[(String, Record)]) -> Result<Vec<SaveResult>, Error> {
        check_object(sobject)?;
        let path = self.data_path("/composite/sobjects");
        run_chunks(records, COLLECTIONS_CHUNK, |chunk| {
            let recs: Vec<Value> = chunk.iter().map(|(id, r)| update_record(sobject, id, r)).collect();
            let body = json!({ "allOrNone": false, "records": recs });
            self.collections_call(Method::Patch, path.clone(), Some(&body), chunk.len(), true)
        })
    }

    /// `PATCH /composite/sobjects/{sobject}/{ext_field}`; each record carries
    /// its `ext_field` value. `SaveResult::created` tells insert from update.
    pub fn collections_upsert(&self, sobject: &str, ext_field: &str, records: &[Record]) -> Result<Vec<SaveResult>, Error> {
        check_object(sobject)?;
        check_field(ext_field)?;
        let path = self.data_path(&format!("/composite/sobjects/{}/{}", encode_segment(sobject), encode_segment(ext_field)));
        run_chunks(records, COLLECTIONS_CHUNK, |chunk| {
            let recs: Vec<Value> = chunk.iter().map(|r| Value::Object(typed(sobject, r, &["Id"]))).collect();
            let body = json!({ "allOrNone": false, "records": recs });
            self.collections_call(Method::Patch, path.clone(), Some(&body), chunk.len(), true)
        })
    }

    /// `DELETE /composite/sobjects?ids=...&allOrNone=false`.
    pub fn collections_delete(&self, ids: &[String]) -> Result<Vec<SaveResult>, Error> {
        run_chunks(ids, COLLECTIONS_CHUNK, |chunk| {
            let list: Vec<String> = chunk.iter().map(|i| encode_query(i)).collect();
            let path = self.data_path(&format!("/composite/sobjects?ids={}&allOrNone=false", list.join(",")));
            self.collections_call(Method::Delete, path, None, chunk.len(), true)
        })
    }
}

/// A record of a Collections update: its fields typed for `sobject`, and its `id`.
pub(crate) fn update_record(sobject: &str, id: &str, fields: &Record) -> Value {
    let mut m = typed(sobject, fields, &["Id"]);
    m.insert("id".into(), Value::String(id.to_string()));
    Value::Object(m)
}

/// A collections record: `{"attributes": {"type": sobject}, ...fields}`.
pub(crate) fn typed(sobject: &str, fields: &Record, drop: &[&str]) -> Record {
    let mut m = Record::new();
    m.insert("attributes".into(), json!({ "type": sobject }));
    m.extend(clean_fields(fields, drop));
    m
}

/// Runs `call` over chunks of at most `size` items and concatenates the
/// results in input order. If the first chunk fails as a whole, that error
/// is returned; if a later chunk fails, nothing more is sent and every
/// record of the failed and remaining chunks gets a failed [`SaveResult`]
/// carrying the error's code (so the successes already made are not lost).
pub(crate) fn run_chunks<T>(
    items: &[T],
    size: usize,
    mut call: impl FnMut(&[T]) -> Result<Vec<SaveResult>, Error>,
) -> Result<Vec<SaveResult>, Error> {
    let mut out = Vec::with_capacity(items.len());
    for (i, chunk) in items.chunks(size.max(1)).enumerate() {
        match call(chunk) {
            Ok(results) => out.extend(results),
            Err(e) if i == 0 => return Err(e),
            Err(e) => {
                let err = RecordError::from_error(&e);
                while out.len() < items.len() {
                    out.push(SaveResult::failed(err.clone()));
                }
                break;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(n: usize) -> Vec<SaveResult> {
        (0..n).map(|i| SaveResult { id: Some(format!("id{i}")), success: true, ..Default::default() }).collect()
    }

    #[test]
    fn chunks_preserve_order_and_size() {
        let items: Vec<usize> = (0..450).collect();
        let mut sizes = vec![];
        let res = run_chunks(&items, COLLECTIONS_CHUNK, |c| {
            sizes.push(c.len());
            Ok(c.iter().map(|i| SaveResult { id: Some(i.to_string()), success: true, ..Default::default() }).collect())
        })
        .unwrap();
        assert_eq!(sizes, vec![200, 200, 50]);
        assert_eq!(res.len(), 450);
        for (i, r) in res.iter().enumerate() {
            assert_eq!(r.id.as_deref(), Some(i.to_string().as_str()));
        }
        let empty: Vec<usize> = vec![];
        assert!(run_chunks(&empty, 200, |_| panic!("no call for empty input")).unwrap().is_empty());
    }

    #[test]
    fn first_chunk_error_is_returned_later_errors_become_results() {
        let items: Vec<usize> = (0..450).collect();
        let e = run_chunks(&items, 200, |_| Err(Error::Transport("refused".into()))).unwrap_err();
        assert!(matches!(e, Error::Transport(_)));

        let mut n = 0;
        let res = run_chunks(&items, 200, |c| {
            n += 1;
            if n == 2 {
                Err(Error::api(503, "SERVER_UNAVAILABLE", "down"))
            } else {
                Ok(ok(c.len()))
            }
        })
        .unwrap();
        assert_eq!(n, 2, "stops after the failed chunk");
        assert_eq!(res.len(), 450);
        assert!(res[..200].iter().all(|r| r.success));
        assert!(res[200..].iter().all(|r| !r.success && r.errors[0].status_code == "SERVER_UNAVAILABLE"));
        assert!(res[449].is_transient_failure());
    }

    #[test]
    fn field_cleaning() {
        let mut r = Record::new();
        r.insert("attributes".into(), json!({"type": "X"}));
        r.insert("ID".into(), json!("001"));
        r.insert("Postgres_Id__c".into(), json!("7"));
        r.insert("Name".into(), json!("n"));
        let c = clean_fields(&r, &["Id", "postgres_id__c"]);
        assert_eq!(c.keys().collect::<Vec<_>>(), vec!["Name"]);
        let t = typed("Account", &r, &["Id"]);
        assert_eq!(t["attributes"], json!({"type": "Account"}));
        assert!(t.contains_key("Postgres_Id__c") && !t.contains_key("ID"));
    }
}
