//! Data replication resources: `sobjects/{O}/updated` (getUpdated) and
//! `sobjects/{O}/deleted` (getDeleted).
//!
//! Salesforce ignores the seconds of `start`/`end`, requires `start < end`,
//! and refuses a `start` more than 30 days back (`INVALID_REPLICATION_DATE`)
//! or windows matching more than 600,000 IDs (`EXCEEDED_ID_LIMIT`). Use
//! `latest_date_covered` as the next call's `start`.

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::error::Error;

/// `GET sobjects/{O}/updated/?start=&end=`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdatedResult {
    /// IDs of records created or updated (by SystemModstamp) in the window.
    #[serde(default)]
    pub ids: Vec<String>,
    /// Salesforce dateTime (`2024-05-20T20:49:00.000+0000`), ≤ `end`.
    #[serde(default)]
    pub latest_date_covered: Option<String>,
}

/// One entry of [`DeletedResult::deleted_records`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedRecord {
    pub id: String,
    pub deleted_date: String,
}

/// `GET sobjects/{O}/deleted/?start=&end=`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeletedResult {
    #[serde(default)]
    pub deleted_records: Vec<DeletedRecord>,
    /// Oldest time for which deletions are still known (older ones were purged).
    #[serde(default)]
    pub earliest_date_available: Option<String>,
    #[serde(default)]
    pub latest_date_covered: Option<String>,
}

fn window_path(version: &str, sobject: &str, kind: &str, start: &str, end: &str) -> Result<String, Error> {
    if sobject.is_empty() || !sobject.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(Error::Config(format!("'{sobject}' is not a valid sObject name")));
    }
    for (name, v) in [("start", start), ("end", end)] {
        if v.trim().is_empty() {
            return Err(Error::Config(format!("{kind}: {name} is empty")));
        }
    }
    let enc = |s: &str| utf8_percent_encode(s.trim(), NON_ALPHANUMERIC).to_string();
    Ok(format!("/services/data/v{version}/sobjects/{sobject}/{kind}/?start={}&end={}", enc(start), enc(end)))
}

impl Client {
    /// IDs of `sobject` records created or updated between `start` and `end`
    /// (Salesforce dateTime strings such as `2024-05-20T20:49:00Z` or
    /// `2024-05-20T20:49:00.000+0000`).
    pub fn get_updated(&self, sobject: &str, start: &str, end: &str) -> Result<UpdatedResult, Error> {
        let path = window_path(&self.api_version(), sobject, "updated", start, end)?;
        let (_, body) = self.request_json("GET", &path, None, true)?;
        serde_json::from_value(body).map_err(|e| Error::Decode(format!("getUpdated {sobject}: {e}")))
    }

    /// Records of `sobject` deleted between `start` and `end` (see [`Client::get_updated`]).
    pub fn get_deleted(&self, sobject: &str, start: &str, end: &str) -> Result<DeletedResult, Error> {
        let path = window_path(&self.api_version(), sobject, "deleted", start, end)?;
        let (_, body) = self.request_json("GET", &path, None, true)?;
        serde_json::from_value(body).map_err(|e| Error::Decode(format!("getDeleted {sobject}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_decoding() {
        let p = window_path("62.0", "Account", "updated", "2024-05-20T20:49:00+00:00", "2024-05-21T00:00:00Z").unwrap();
        assert_eq!(
            p,
            "/services/data/v62.0/sobjects/Account/updated/?start=2024%2D05%2D20T20%3A49%3A00%2B00%3A00&end=2024%2D05%2D21T00%3A00%3A00Z"
        );
        assert!(window_path("62.0", "Acc/ount", "updated", "a", "b").is_err());
        assert!(window_path("62.0", "Account", "deleted", " ", "b").is_err());
        let d: DeletedResult = serde_json::from_str(
            r#"{"deletedRecords":[{"id":"001000000000001AAA","deletedDate":"2024-05-20T20:49:32.000+0000"}],
                "earliestDateAvailable":"2024-04-20T00:00:00.000+0000","latestDateCovered":"2024-05-21T00:00:00.000+0000"}"#,
        )
        .unwrap();
        assert_eq!(d.deleted_records[0].deleted_date, "2024-05-20T20:49:32.000+0000");
        let u: UpdatedResult = serde_json::from_str(r#"{"ids":["a"],"latestDateCovered":"x"}"#).unwrap();
        assert_eq!(u.ids, ["a"]);
    }
}
