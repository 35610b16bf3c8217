//! Describe calls: `describeGlobal` (not cached) and the per-object describe, cached in the
//! client until [`Client::invalidate_describe`].

use super::request::{Method, Request, Target};
use super::{check_object, lock, Client};
use crate::error::Error;
use crate::http::encode_segment;
use crate::types::{DescribeGlobal, SObjectDescribe};

/// What [`Client::describe_if_modified`] found.
#[derive(Debug, Clone)]
pub enum DescribeCheck {
    /// 304: unchanged since the date given.
    NotModified,
    /// The current describe, and its `Last-Modified` to send next time (None if the server sent
    /// none: then every check returns the describe).
    Modified { describe: SObjectDescribe, last_modified: Option<String> },
}

impl Client {
    /// `GET /sobjects/` (describeGlobal): every object of the org with its flags and key
    /// prefix. Not cached: it is cheap and objects come and go.
    pub fn describe_global(&self) -> Result<DescribeGlobal, Error> {
        let resp = self.rest(Method::Get, self.data_path("/sobjects/"), None, true)?;
        serde_json::from_str(&resp.body).map_err(|e| Error::Decode(format!("describeGlobal: {e}")))
    }

    /// `GET /sobjects/{sobject}/describe`, cached per object until
    /// [`Client::invalidate_describe`].
    pub fn describe(&self, sobject: &str) -> Result<SObjectDescribe, Error> {
        check_object(sobject)?;
        let key = sobject.to_ascii_lowercase();
        if let Some(d) = lock(&self.describes).get(&key) {
            return Ok(d.clone());
        }
        let resp = self.rest(Method::Get, self.data_path(&format!("/sobjects/{}/describe", encode_segment(sobject))), None, true)?;
        let d: SObjectDescribe = serde_json::from_str(&resp.body).map_err(|e| Error::Decode(format!("describe {sobject}: {e}")))?;
        lock(&self.describes).insert(key, d.clone());
        Ok(d)
    }

    /// `GET /sobjects/{sobject}/describe` with `If-Modified-Since: since` (a `Last-Modified`
    /// this call returned before): a cheap check whether the object's fields changed. Always
    /// asks Salesforce; a new describe replaces the cached one.
    pub fn describe_if_modified(&self, sobject: &str, since: Option<&str>) -> Result<DescribeCheck, Error> {
        check_object(sobject)?;
        let headers = since.map(|s| vec![("If-Modified-Since", s.to_string())]).unwrap_or_default();
        let path = self.data_path(&format!("/sobjects/{}/describe", encode_segment(sobject)));
        let req =
            Request { method: Method::Get, target: Target::Instance(path), body: None, headers, idempotent: true, authenticated: true };
        let resp = self.execute(&req)?;
        if resp.status == 304 {
            return Ok(DescribeCheck::NotModified);
        }
        let d: SObjectDescribe = serde_json::from_str(&resp.body).map_err(|e| Error::Decode(format!("describe {sobject}: {e}")))?;
        lock(&self.describes).insert(sobject.to_ascii_lowercase(), d.clone());
        Ok(DescribeCheck::Modified { describe: d, last_modified: resp.last_modified })
    }

    /// Drops one object's cached describe, or all of them with `None`.
    pub fn invalidate_describe(&self, sobject: Option<&str>) {
        let mut cache = lock(&self.describes);
        match sobject {
            Some(s) => {
                cache.remove(&s.to_ascii_lowercase());
            }
            None => cache.clear(),
        }
    }
}
