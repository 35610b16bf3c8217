//! Data types exchanged with the REST API.

use serde::{Deserialize, Deserializer, Serialize};

use crate::de::null_default;
use crate::error::RecordError;

/// A record: field API name -> JSON value (the `attributes` key removed).
pub type Record = serde_json::Map<String, serde_json::Value>;

/// Numbers that may come as `null` or as floats (`255.0`).
fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).unwrap_or(0),
        Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    })
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::Bool(b)) => b,
        Some(serde_json::Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => false,
    })
}

/// `GET /sobjects/` (describeGlobal): the org's objects without their fields.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DescribeGlobal {
    #[serde(default, deserialize_with = "null_default")]
    pub encoding: String,
    /// Most records one call may carry (200).
    #[serde(default)]
    pub max_batch_size: u32,
    /// Each object as in a describe, with `fields` empty.
    #[serde(default, deserialize_with = "null_default")]
    pub sobjects: Vec<SObjectDescribe>,
}

/// `GET /sobjects/{name}/describe` (the parts sfsync uses).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SObjectDescribe {
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub label: String,
    #[serde(default, deserialize_with = "null_default")]
    pub key_prefix: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub createable: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub updateable: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub deletable: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub queryable: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub custom: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub fields: Vec<FieldDescribe>,
}

impl SObjectDescribe {
    /// Case-insensitive field lookup by API name.
    pub fn field(&self, name: &str) -> Option<&FieldDescribe> {
        self.fields.iter().find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// Fields flagged `externalId` (candidates for upsert).
    pub fn external_id_fields(&self) -> impl Iterator<Item = &FieldDescribe> {
        self.fields.iter().filter(|f| f.external_id)
    }
}

/// One field of a describe result.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldDescribe {
    #[serde(default, deserialize_with = "null_default")]
    pub name: String,
    #[serde(default, deserialize_with = "null_default")]
    pub label: String,
    /// Salesforce field type: `id`, `string`, `reference`, `double`, `datetime`, ...
    #[serde(default, rename = "type", deserialize_with = "null_default")]
    pub r#type: String,
    /// `xsd:string`, `xsd:double`, `tns:ID`, ...
    #[serde(default, deserialize_with = "null_default")]
    pub soap_type: String,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub length: i64,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub precision: i64,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub scale: i64,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub nillable: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub createable: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub updateable: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub defaulted_on_create: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub calculated: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub external_id: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub unique: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub reference_to: Vec<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub relationship_name: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub picklist_values: Vec<PicklistValue>,
    /// Only the listed picklist values are accepted (else INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST).
    #[serde(default, deserialize_with = "lenient_bool")]
    pub restricted_picklist: bool,
}

impl FieldDescribe {
    /// Required on create: not nillable, createable, and not defaulted.
    pub fn is_required_on_create(&self) -> bool {
        !self.nillable && self.createable && !self.defaulted_on_create && self.r#type != "boolean"
    }
}

/// One picklist entry.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PicklistValue {
    #[serde(default, deserialize_with = "lenient_bool")]
    pub active: bool,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub default_value: bool,
    #[serde(default, deserialize_with = "null_default")]
    pub label: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    pub value: String,
}

/// Result of one record in an sObject Collections call (or a single create).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SaveResult {
    #[serde(default, deserialize_with = "null_default")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub success: bool,
    /// Only for upserts: true when the record was inserted.
    #[serde(default, deserialize_with = "null_default")]
    pub created: Option<bool>,
    #[serde(default, deserialize_with = "null_default")]
    pub errors: Vec<RecordError>,
}

impl SaveResult {
    pub fn failed(err: RecordError) -> SaveResult {
        SaveResult { id: None, success: false, created: None, errors: vec![err] }
    }

    /// True when every error of a failed result is transient.
    pub fn is_transient_failure(&self) -> bool {
        !self.success && !self.errors.is_empty() && self.errors.iter().all(|e| e.is_transient())
    }
}

/// Result of a single-record upsert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpsertResult {
    pub id: String,
    pub created: bool,
}

/// One page of a SOQL query.
#[derive(Clone, Debug, Default)]
pub struct QueryPage {
    pub total_size: u64,
    pub done: bool,
    /// Path (e.g. `/services/data/v62.0/query/01g...-2000`) for [`crate::Client::query_more`].
    pub next_records_url: Option<String>,
    /// Records with `attributes` removed (also inside nested relationship objects).
    pub records: Vec<Record>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawQueryPage {
    #[serde(default, deserialize_with = "lenient_i64")]
    total_size: i64,
    #[serde(default, deserialize_with = "lenient_bool")]
    done: bool,
    #[serde(default, deserialize_with = "null_default")]
    next_records_url: Option<String>,
    #[serde(default, deserialize_with = "null_default")]
    records: Vec<Record>,
}

impl QueryPage {
    pub(crate) fn parse(body: &str) -> Result<QueryPage, crate::Error> {
        let raw: RawQueryPage = serde_json::from_str(body).map_err(|e| crate::Error::Decode(format!("query result: {e}")))?;
        let mut records = raw.records;
        for r in &mut records {
            strip_attributes(r);
        }
        Ok(QueryPage {
            total_size: raw.total_size.max(0) as u64,
            done: raw.done,
            next_records_url: raw.next_records_url.filter(|s| !s.is_empty()),
            records,
        })
    }
}

/// Removes `attributes` from a record and from nested relationship records
/// and sub-query results.
pub(crate) fn strip_attributes(r: &mut Record) {
    r.remove("attributes");
    for v in r.values_mut() {
        if let serde_json::Value::Object(inner) = v {
            if let Some(serde_json::Value::Array(recs)) = inner.get_mut("records") {
                for rec in recs {
                    if let serde_json::Value::Object(m) = rec {
                        strip_attributes(m);
                    }
                }
            } else if inner.get("attributes").is_some_and(|a| a.is_object()) {
                strip_attributes(inner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_defaults_and_lookup() {
        let d: SObjectDescribe = serde_json::from_str(
            r#"{"name":"Contact","label":"Contact","keyPrefix":"003","createable":true,"updateable":true,
                "deletable":true,"queryable":true,"custom":false,"fields":[
                {"name":"Id","type":"id","soapType":"tns:ID","length":18,"nillable":false,"createable":false},
                {"name":"LastName","type":"string","length":80,"nillable":false,"createable":true,"label":null},
                {"name":"AccountId","type":"reference","referenceTo":["Account"],"relationshipName":"Account","precision":null},
                {"name":"Postgres_Id__c","type":"string","externalId":true,"unique":true,"picklistValues":null}
              ],"unknownKey":1}"#,
        )
        .unwrap();
        assert_eq!(d.key_prefix.as_deref(), Some("003"));
        assert_eq!(d.field("lastname").unwrap().length, 80);
        assert!(d.field("LASTNAME").unwrap().is_required_on_create());
        assert_eq!(d.field("accountid").unwrap().reference_to, vec!["Account"]);
        assert_eq!(d.field("accountid").unwrap().relationship_name.as_deref(), Some("Account"));
        assert_eq!(d.external_id_fields().count(), 1);
        assert!(d.field("nope").is_none());
    }

    #[test]
    fn query_page_strips_attributes() {
        let p = QueryPage::parse(
            r#"{"totalSize":2,"done":false,"nextRecordsUrl":"/services/data/v62.0/query/01gX-2000","records":[
              {"attributes":{"type":"Contact","url":"/x"},"Id":"003","Account":{"attributes":{"type":"Account"},"Name":"A"}},
              {"attributes":{"type":"Contact"},"Id":"004","Account":null,
               "Cases":{"totalSize":1,"done":true,"records":[{"attributes":{"type":"Case"},"Id":"500"}]}}]}"#,
        )
        .unwrap();
        assert_eq!(p.total_size, 2);
        assert!(!p.done);
        assert_eq!(p.next_records_url.as_deref(), Some("/services/data/v62.0/query/01gX-2000"));
        assert!(p.records[0].get("attributes").is_none());
        assert!(p.records[0]["Account"].get("attributes").is_none());
        assert_eq!(p.records[0]["Account"]["Name"], "A");
        assert!(p.records[1]["Cases"]["records"][0].get("attributes").is_none());
    }

    #[test]
    fn save_result_shapes() {
        let r: Vec<SaveResult> = serde_json::from_str(
            r#"[{"id":"001000000000001AAA","success":true,"errors":[]},
                {"success":false,"errors":[{"statusCode":"REQUIRED_FIELD_MISSING","message":"m","fields":["LastName"]}]},
                {"id":null,"success":false,"created":false,"errors":[{"statusCode":"UNABLE_TO_LOCK_ROW","message":"m","fields":[]}]}]"#,
        )
        .unwrap();
        assert!(r[0].success);
        assert_eq!(r[1].errors[0].status_code, "REQUIRED_FIELD_MISSING");
        assert!(!r[1].is_transient_failure());
        assert!(r[2].is_transient_failure());
    }
}
