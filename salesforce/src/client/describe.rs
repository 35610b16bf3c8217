//! Describe calls: `describeGlobal` (not cached) and the per-object describe, cached in the
//! client until [`Client::invalidate_describe`].

use super::request::Method;
use super::{check_object, lock, Client};
use crate::error::Error;
use crate::http::encode_segment;
use crate::types::{DescribeGlobal, SObjectDescribe};

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
