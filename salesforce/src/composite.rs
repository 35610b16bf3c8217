//! Composite resource: `POST /services/data/vXX.X/composite` — up to 25
//! subrequests in one API call, at most 5 of them query or sObject Collections
//! operations, later ones referring to earlier results with `@{referenceId.field}`
//! (e.g. `@{newAccount.id}`). sObject Collections writes become subrequests through
//! [`CollectionsWrite`] and their results come back through [`collections_results`].

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::{check_field, check_object, typed, update_record, Client, COLLECTIONS_CHUNK};
use crate::error::{ApiError, Error};
use crate::http::{encode_query, encode_segment};
use crate::types::{QueryPage, Record, SaveResult};
use serde_json::json;

/// Most subrequests Salesforce accepts in one composite request.
pub const MAX_SUBREQUESTS: usize = 25;
/// Most of them that may be query operations (Query, QueryAll, the next page of a query) or
/// sObject Collections requests: Salesforce refuses a composite request with more.
pub const MAX_QUERY_SUBREQUESTS: usize = 5;

/// Whether a subrequest's URL counts against [`MAX_QUERY_SUBREQUESTS`].
pub fn is_query_or_collections(url: &str) -> bool {
    let path = url.split('?').next().unwrap_or(url);
    let rest = path.trim_start_matches("/services/data/").split_once('/').map_or("", |(_, r)| r);
    ["query", "queryAll", "composite/sobjects"].iter().any(|p| rest == *p || rest.starts_with(&format!("{p}/")))
}

/// One subrequest. `url` is a full path (`/services/data/v62.0/sobjects/Account`);
/// [`CompositeSubrequest::data`] builds one under the client's API version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompositeSubrequest {
    pub method: String,
    pub url: String,
    pub reference_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_headers: Option<Map<String, Value>>,
}

impl CompositeSubrequest {
    /// `method` on `/services/data/v{version}/{rest}` (`rest` without a leading slash,
    /// e.g. `sobjects/Account` or `sobjects/Contact/@{newContact.id}`).
    pub fn data(client: &Client, method: &str, rest: &str, reference_id: &str, body: Option<Value>) -> Self {
        CompositeSubrequest {
            method: method.to_ascii_uppercase(),
            url: format!("/services/data/v{}/{}", client.api_version(), rest.trim_start_matches('/')),
            reference_id: reference_id.to_string(),
            body,
            http_headers: None,
        }
    }
}

/// One entry of `compositeResponse`, in request order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompositeSubresponse {
    /// The subrequest's response body (`null` for 204).
    #[serde(default)]
    pub body: Value,
    #[serde(default)]
    pub http_headers: Map<String, Value>,
    pub http_status_code: u16,
    pub reference_id: String,
}

impl CompositeSubresponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.http_status_code)
    }

    /// The Salesforce errors of a failed subrequest (`PROCESSING_HALTED` for the
    /// ones rolled back or skipped); empty on success.
    pub fn errors(&self) -> Vec<ApiError> {
        if self.is_success() {
            return vec![];
        }
        serde_json::from_value(self.body.clone()).unwrap_or_default()
    }

    /// `body.id` (creates).
    pub fn id(&self) -> Option<&str> {
        self.body.get("id").and_then(Value::as_str)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompositeResponse {
    composite_response: Vec<CompositeSubresponse>,
}

impl Client {
    /// Sends the subrequests as one composite call (one API call). With
    /// `all_or_none`, any failure rolls every subrequest back. Per-subrequest
    /// failures are in the results, not an `Err`; request-level problems
    /// (more than 25 subrequests or 5 query/Collections ones, malformed input) are `Err`.
    pub fn composite(&self, all_or_none: bool, subrequests: &[CompositeSubrequest]) -> Result<Vec<CompositeSubresponse>, Error> {
        if subrequests.is_empty() {
            return Ok(vec![]);
        }
        if subrequests.len() > MAX_SUBREQUESTS {
            return Err(Error::Config(format!(
                "composite: {} subrequests; Salesforce accepts at most {MAX_SUBREQUESTS}",
                subrequests.len()
            )));
        }
        let queries = subrequests.iter().filter(|s| is_query_or_collections(&s.url)).count();
        if queries > MAX_QUERY_SUBREQUESTS {
            return Err(Error::Config(format!(
                "composite: {queries} query or sObject Collections subrequests; Salesforce accepts at most {MAX_QUERY_SUBREQUESTS}"
            )));
        }
        let body = serde_json::json!({"allOrNone": all_or_none, "compositeRequest": subrequests});
        let path = format!("/services/data/v{}/composite", self.api_version());
        // Not retried: it may contain creates.
        let (_, resp) = self.request_json("POST", &path, Some(&body), false)?;
        let parsed: CompositeResponse = serde_json::from_value(resp).map_err(|e| Error::Decode(format!("composite: {e}")))?;
        if parsed.composite_response.len() != subrequests.len() {
            return Err(Error::Decode(format!(
                "composite: {} results for {} subrequests",
                parsed.composite_response.len(),
                subrequests.len()
            )));
        }
        Ok(parsed.composite_response)
    }

    /// The first pages of several `queryAll`s, five to a composite request (Salesforce's
    /// limit for query subrequests): one API call per five queries, where each alone is one.
    /// In request order; a query Salesforce refuses is an `Err` in its place, a failure of
    /// the request itself the outer `Err`. Pages after the first are `query_more`'s.
    pub fn query_all_pages(&self, soqls: &[String]) -> Result<Vec<Result<QueryPage, Error>>, Error> {
        let mut pages = Vec::with_capacity(soqls.len());
        for chunk in soqls.chunks(MAX_QUERY_SUBREQUESTS) {
            let subrequests: Vec<Value> = chunk
                .iter()
                .enumerate()
                .map(|(i, q)| {
                    serde_json::json!({
                        "method": "GET",
                        "url": format!("/services/data/v{}/queryAll?q={}", self.api_version(), encode_query(q)),
                        "referenceId": format!("q{i}"),
                    })
                })
                .collect();
            let body = serde_json::json!({"allOrNone": false, "compositeRequest": subrequests});
            let path = format!("/services/data/v{}/composite", self.api_version());
            // Reads only: safe to retry.
            let (_, resp) = self.request_json("POST", &path, Some(&body), true)?;
            let parsed: CompositeResponse = serde_json::from_value(resp).map_err(|e| Error::Decode(format!("composite: {e}")))?;
            if parsed.composite_response.len() != chunk.len() {
                return Err(Error::Decode(format!("composite: {} results for {} queries", parsed.composite_response.len(), chunk.len())));
            }
            pages.extend(parsed.composite_response.into_iter().map(|r| {
                if r.is_success() {
                    QueryPage::parse(&r.body.to_string())
                } else {
                    Err(Error::Api { status: r.http_status_code, errors: r.errors() })
                }
            }));
        }
        Ok(pages)
    }
}

/// One sObject Collections write (≤ [`COLLECTIONS_CHUNK`] records, `allOrNone=false`) to
/// send as a subrequest of a Composite request, where several of them cost one API call.
pub enum CollectionsWrite<'a> {
    /// `PATCH composite/sobjects/{sobject}/{ext_field}`.
    Upsert { ext_field: &'a str, records: &'a [Record] },
    /// `PATCH composite/sobjects`, `(Id, fields)` pairs.
    Update(&'a [(String, Record)]),
    /// `DELETE composite/sobjects?ids=…&allOrNone=false`.
    Delete(&'a [String]),
}

impl CollectionsWrite<'_> {
    fn len(&self) -> usize {
        match self {
            CollectionsWrite::Upsert { records, .. } => records.len(),
            CollectionsWrite::Update(r) => r.len(),
            CollectionsWrite::Delete(ids) => ids.len(),
        }
    }
}

impl Client {
    /// `write` on `sobject` as a Composite subrequest named `reference_id`, the same request
    /// the matching `collections_*` call makes on its own.
    pub fn collections_subrequest(
        &self,
        sobject: &str,
        write: &CollectionsWrite,
        reference_id: &str,
    ) -> Result<CompositeSubrequest, Error> {
        check_object(sobject)?;
        if write.len() == 0 || write.len() > COLLECTIONS_CHUNK {
            return Err(Error::Config(format!("a Collections subrequest holds 1 to {COLLECTIONS_CHUNK} records, not {}", write.len())));
        }
        let (method, path, body) = match write {
            CollectionsWrite::Upsert { ext_field, records } => {
                check_field(ext_field)?;
                let recs: Vec<Value> = records.iter().map(|r| Value::Object(typed(sobject, r, &["Id"]))).collect();
                let path = format!("/composite/sobjects/{}/{}", encode_segment(sobject), encode_segment(ext_field));
                ("PATCH", path, Some(json!({ "allOrNone": false, "records": recs })))
            }
            CollectionsWrite::Update(records) => {
                let recs: Vec<Value> = records.iter().map(|(id, r)| update_record(sobject, id, r)).collect();
                ("PATCH", "/composite/sobjects".to_string(), Some(json!({ "allOrNone": false, "records": recs })))
            }
            CollectionsWrite::Delete(ids) => {
                let list: Vec<String> = ids.iter().map(|i| encode_query(i)).collect();
                ("DELETE", format!("/composite/sobjects?ids={}&allOrNone=false", list.join(",")), None)
            }
        };
        Ok(CompositeSubrequest {
            method: method.into(),
            url: format!("/services/data/v{}{}", self.api_version(), path),
            reference_id: reference_id.to_string(),
            body,
            http_headers: None,
        })
    }
}

/// The per-record results of a Collections subrequest: one per record sent, in order; Err
/// when Salesforce refused the subrequest as a whole (its status and errors, as a direct
/// call would have failed).
pub fn collections_results(response: &CompositeSubresponse, expected: usize) -> Result<Vec<SaveResult>, Error> {
    if !response.is_success() {
        let mut errors = response.errors();
        if errors.is_empty() {
            errors.push(ApiError::new("UNKNOWN_EXCEPTION", response.body.to_string()));
        }
        return Err(Error::Api { status: response.http_status_code, errors });
    }
    let results: Vec<SaveResult> =
        serde_json::from_value(response.body.clone()).map_err(|e| Error::Decode(format!("collections result: {e}")))?;
    if results.len() != expected {
        return Err(Error::Decode(format!("collections returned {} results for {expected} records", results.len())));
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let s = CompositeSubrequest {
            method: "POST".into(),
            url: "/services/data/v62.0/sobjects/Account".into(),
            reference_id: "a".into(),
            body: Some(serde_json::json!({"Name": "x"})),
            http_headers: None,
        };
        assert_eq!(
            serde_json::to_value(&s).unwrap(),
            serde_json::json!({"method": "POST", "url": "/services/data/v62.0/sobjects/Account", "referenceId": "a", "body": {"Name": "x"}})
        );
        let r: CompositeSubresponse = serde_json::from_value(serde_json::json!({
            "body": [{"errorCode": "PROCESSING_HALTED", "message": "rolled back"}],
            "httpHeaders": {}, "httpStatusCode": 400, "referenceId": "a"}))
        .unwrap();
        assert!(!r.is_success());
        assert_eq!(r.errors()[0].error_code, "PROCESSING_HALTED");
    }

    #[test]
    fn query_and_collections_subrequests_are_counted_against_five() {
        for url in [
            "/services/data/v62.0/query?q=SELECT+Id+FROM+Account",
            "/services/data/v62.0/queryAll?q=x",
            "/services/data/v62.0/query/01gxx-2000",
            "/services/data/v62.0/composite/sobjects",
            "/services/data/v62.0/composite/sobjects/Account/Ext__c",
        ] {
            assert!(is_query_or_collections(url), "{url}");
        }
        for url in ["/services/data/v62.0/sobjects/Account", "/services/data/v62.0/limits", "/services/data/v62.0/queryable"] {
            assert!(!is_query_or_collections(url), "{url}");
        }
    }

    #[test]
    fn a_collections_subresponse_gives_the_records_results_or_the_refusal() {
        let ok: CompositeSubresponse = serde_json::from_value(json!({
            "body": [{"id": "001000000000001AAA", "success": true, "errors": [], "created": true},
                     {"success": false, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING", "message": "m", "fields": ["Name"]}]}],
            "httpHeaders": {}, "httpStatusCode": 200, "referenceId": "w0"}))
        .unwrap();
        let r = collections_results(&ok, 2).unwrap();
        assert!(r[0].success && r[0].created == Some(true));
        assert_eq!(r[1].errors[0].fields, vec!["Name"]);
        assert!(matches!(collections_results(&ok, 3), Err(Error::Decode(_))), "a result per record");
        let refused: CompositeSubresponse = serde_json::from_value(json!({
            "body": [{"errorCode": "JSON_PARSER_ERROR", "message": "Cannot deserialize instance of date"}],
            "httpHeaders": {}, "httpStatusCode": 400, "referenceId": "w1"}))
        .unwrap();
        let e = collections_results(&refused, 1).unwrap_err();
        assert!(matches!(e, Error::Api { status: 400, .. }));
        assert_eq!(e.code(), "JSON_PARSER_ERROR");
    }
}
