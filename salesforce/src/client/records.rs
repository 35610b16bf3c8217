//! Single-record REST: `sobjects/{sobject}[/{id}]` create, get, update, delete, and upsert
//! by external id. Only `create` is sent as non-idempotent (a resend could duplicate).

use serde_json::Value;

use super::request::Method;
use super::{check_field, check_object, Client};
use crate::error::{ApiError, Error};
use crate::http::{encode_query, encode_segment};
use crate::soql::is_valid_identifier;
use crate::types::{strip_attributes, Record, SaveResult, UpsertResult};

impl Client {
    /// `POST /sobjects/{sobject}/`; returns the new Id. Not retried after an
    /// ambiguous failure (it could create a duplicate).
    pub fn create(&self, sobject: &str, fields: &Record) -> Result<String, Error> {
        check_object(sobject)?;
        let body = Value::Object(clean_fields(fields, &[]));
        let resp = self.rest(Method::Post, self.data_path(&format!("/sobjects/{}/", encode_segment(sobject))), Some(&body), false)?;
        let r: SaveResult = serde_json::from_str(&resp.body).map_err(|e| Error::Decode(format!("create {sobject}: {e}")))?;
        match r.id {
            Some(id) if r.success || r.errors.is_empty() => Ok(id),
            _ => Err(Error::Api {
                status: resp.status,
                errors: r
                    .errors
                    .into_iter()
                    .map(|e| ApiError { error_code: e.status_code, message: e.message, fields: e.fields, retry_after: None })
                    .collect(),
            }),
        }
    }

    /// `GET /sobjects/{sobject}/{id}[?fields=...]`.
    pub fn get(&self, sobject: &str, id: &str, fields: Option<&[&str]>) -> Result<Record, Error> {
        check_object(sobject)?;
        let mut path = self.data_path(&format!("/sobjects/{}/{}", encode_segment(sobject), encode_segment(id)));
        if let Some(fields) = fields {
            if let Some(bad) = fields.iter().find(|f| !is_valid_identifier(f)) {
                return Err(Error::Config(format!("'{bad}' is not a valid field name")));
            }
            if !fields.is_empty() {
                path.push_str(&format!("?fields={}", encode_query(&fields.join(","))));
            }
        }
        let resp = self.rest(Method::Get, path, None, true)?;
        let mut rec: Record = serde_json::from_str(&resp.body).map_err(|e| Error::Decode(format!("get {sobject}: {e}")))?;
        strip_attributes(&mut rec);
        Ok(rec)
    }

    /// `PATCH /sobjects/{sobject}/{id}` (an `Id` key in `fields` is ignored).
    pub fn update(&self, sobject: &str, id: &str, fields: &Record) -> Result<(), Error> {
        check_object(sobject)?;
        let body = Value::Object(clean_fields(fields, &["Id"]));
        self.rest(
            Method::Patch,
            self.data_path(&format!("/sobjects/{}/{}", encode_segment(sobject), encode_segment(id))),
            Some(&body),
            true,
        )?;
        Ok(())
    }

    /// `DELETE /sobjects/{sobject}/{id}`. A retried delete whose first
    /// attempt went through fails with `ENTITY_IS_DELETED`.
    pub fn delete(&self, sobject: &str, id: &str) -> Result<(), Error> {
        check_object(sobject)?;
        self.rest(Method::Delete, self.data_path(&format!("/sobjects/{}/{}", encode_segment(sobject), encode_segment(id))), None, true)?;
        Ok(())
    }

    /// `PATCH /sobjects/{sobject}/{ext_field}/{ext_value}`: 201 created, 200/204
    /// updated; several matches (HTTP 300) is `Error::Api` with code
    /// `MULTIPLE_CHOICES`. The external id field and `Id` are removed from
    /// the body (the value travels in the URL).
    pub fn upsert(&self, sobject: &str, ext_field: &str, ext_value: &str, fields: &Record) -> Result<UpsertResult, Error> {
        check_object(sobject)?;
        check_field(ext_field)?;
        if ext_value.is_empty() {
            return Err(Error::Config(format!("empty value for external id field {ext_field}")));
        }
        let path =
            self.data_path(&format!("/sobjects/{}/{}/{}", encode_segment(sobject), encode_segment(ext_field), encode_segment(ext_value)));
        let body = Value::Object(clean_fields(fields, &["Id", ext_field]));
        let resp = match self.rest(Method::Patch, path.clone(), Some(&body), true) {
            Ok(r) => r,
            Err(Error::Api { status: 300, errors }) => {
                let mut e = ApiError::new("MULTIPLE_CHOICES", format!("more than one {sobject} has {ext_field} = {ext_value:?}"));
                e.fields = vec![ext_field.to_string()];
                e.retry_after = errors.first().and_then(|x| x.retry_after);
                return Err(Error::Api { status: 300, errors: vec![e] });
            }
            Err(e) => return Err(e),
        };
        let created_by_status = resp.status == 201;
        if resp.body.trim().is_empty() {
            // Older API versions answer an update with 204 and no body.
            let rec = self.get_raw(&format!("{path}?fields=Id"))?;
            let id = rec.get("Id").and_then(Value::as_str).ok_or_else(|| Error::Decode(format!("upsert {sobject}: no Id after 204")))?;
            return Ok(UpsertResult { id: id.to_string(), created: created_by_status });
        }
        let r: SaveResult = serde_json::from_str(&resp.body).map_err(|e| Error::Decode(format!("upsert {sobject}: {e}")))?;
        let id = r.id.ok_or_else(|| Error::Decode(format!("upsert {sobject}: response has no id")))?;
        Ok(UpsertResult { id, created: r.created.unwrap_or(created_by_status) })
    }

    fn get_raw(&self, path: &str) -> Result<Record, Error> {
        let resp = self.rest(Method::Get, path.to_string(), None, true)?;
        let mut rec: Record = serde_json::from_str(&resp.body).map_err(|e| Error::Decode(format!("GET {path}: {e}")))?;
        strip_attributes(&mut rec);
        Ok(rec)
    }
}

/// Copies `fields` without `attributes` and without the `drop` keys (case-insensitive).
pub(super) fn clean_fields(fields: &Record, drop: &[&str]) -> Record {
    fields
        .iter()
        .filter(|(k, _)| k.as_str() != "attributes" && !drop.iter().any(|d| d.eq_ignore_ascii_case(k)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::mock::{self, mock_client};
    use super::*;
    use crate::client::ClientOptions;

    #[test]
    fn upsert_paths_and_results() {
        let srv = mock::start(|req, i| {
            match i {
            0 => mock::Reply::Json(201, "", r#"{"id":"001000000000001AAA","success":true,"errors":[],"created":true}"#.into()),
            1 => mock::Reply::Json(200, "", r#"{"id":"001000000000001AAA","success":true,"errors":[],"created":false}"#.into()),
            2 => mock::Reply::Json(300, "", r#"["/services/data/v62.0/sobjects/Account/001000000000001AAA","/services/data/v62.0/sobjects/Account/001000000000002AAA"]"#.into()),
            3 => mock::Reply::Json(204, "", "".into()),
            _ => {
                assert!(req.path.ends_with("?fields=Id"), "{}", req.path);
                mock::Reply::Json(200, "", r#"{"attributes":{"type":"Account"},"Id":"001000000000003AAA"}"#.into())
            }
        }
        });
        let c = mock_client(&srv.url, ClientOptions { api_version: Some("62.0".into()), ..Default::default() });
        let mut fields = Record::new();
        fields.insert("Name".into(), json!("n"));
        fields.insert("Postgres_Id__c".into(), json!("a/b c"));
        let r = c.upsert("Account", "Postgres_Id__c", "a/b c", &fields).unwrap();
        assert_eq!(r, UpsertResult { id: "001000000000001AAA".into(), created: true });
        let seen = srv.seen.lock().unwrap().last().unwrap().clone();
        assert_eq!(seen.method, "PATCH");
        assert_eq!(seen.path, "/services/data/v62.0/sobjects/Account/Postgres_Id__c/a%2Fb%20c");
        assert_eq!(seen.body, r#"{"Name":"n"}"#);
        let r = c.upsert("Account", "Postgres_Id__c", "a/b c", &fields).unwrap();
        assert!(!r.created);
        let e = c.upsert("Account", "Postgres_Id__c", "dup", &fields).unwrap_err();
        assert_eq!(e.code(), "MULTIPLE_CHOICES");
        assert_eq!(e.status(), Some(300));
        let r = c.upsert("Account", "Postgres_Id__c", "old-api", &fields).unwrap();
        assert_eq!(r, UpsertResult { id: "001000000000003AAA".into(), created: false });
    }
}
