//! Bulk API 2.0: ingest jobs ([`Client::bulk_ingest`], in `ingest`) and query jobs
//! ([`Client::bulk_query`], in `query`). This module holds what both share: job info,
//! polling settings, and job control (status, wait, abort, delete).
//!
//! Every HTTP request here is one API call and is counted in [`Client::stats`].

mod ingest;
mod query;

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use super::request::{Method, Request, Target};
use super::Client;
use crate::de::null_default;
use crate::error::Error;
use crate::http::encode_segment;

pub use ingest::{build_csv, map_results, parse_sf_error, BulkIngestResult, BulkOperation, BulkRowOutcome, IngestStarted, BULK_NULL};
pub use query::{record_of, BulkQueryReader};

/// Job info as `GET /jobs/ingest/{id}` and `GET /jobs/query/{id}` return it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BulkJobInfo {
    #[serde(deserialize_with = "null_default")]
    pub id: String,
    #[serde(deserialize_with = "null_default")]
    pub operation: String,
    #[serde(deserialize_with = "null_default")]
    pub object: String,
    pub created_by_id: Option<String>,
    pub created_date: Option<String>,
    pub system_modstamp: Option<String>,
    /// `Open`, `UploadComplete`, `InProgress`, `JobComplete`, `Failed`, `Aborted`.
    #[serde(deserialize_with = "null_default")]
    pub state: String,
    pub external_id_field_name: Option<String>,
    pub concurrency_mode: Option<String>,
    pub content_type: Option<String>,
    pub api_version: Option<f64>,
    /// `V2Ingest` / `V2Query` (Get Job Info only).
    pub job_type: Option<String>,
    pub content_url: Option<String>,
    pub line_ending: Option<String>,
    pub column_delimiter: Option<String>,
    #[serde(deserialize_with = "null_default")]
    pub number_records_processed: u64,
    #[serde(deserialize_with = "null_default")]
    pub number_records_failed: u64,
    #[serde(deserialize_with = "null_default")]
    pub retries: u64,
    #[serde(deserialize_with = "null_default")]
    pub total_processing_time: u64,
    #[serde(deserialize_with = "null_default")]
    pub api_active_processing_time: u64,
    #[serde(deserialize_with = "null_default")]
    pub apex_processing_time: u64,
    pub error_message: Option<String>,
}

impl BulkJobInfo {
    /// `JobComplete`, `Failed` or `Aborted`.
    pub fn is_finished(&self) -> bool {
        matches!(self.state.as_str(), "JobComplete" | "Failed" | "Aborted")
    }
}

/// Polling and paging settings for Bulk jobs.
#[derive(Clone, Debug)]
pub struct BulkOptions {
    /// First delay between job-status polls (default 250 ms); grows 1.5x per poll.
    pub poll_initial: Duration,
    /// Longest delay between polls (default 5 s).
    pub poll_max: Duration,
    /// Give up waiting after this long (default 30 min); the job is then aborted (best effort)
    /// and the call fails with a transient `Error::Transport`.
    pub max_wait: Duration,
    /// `maxRecords` per query result page; `None` lets the server choose.
    pub max_records: Option<u32>,
}

impl Default for BulkOptions {
    fn default() -> BulkOptions {
        BulkOptions {
            poll_initial: Duration::from_millis(250),
            poll_max: Duration::from_secs(5),
            max_wait: Duration::from_secs(30 * 60),
            max_records: None,
        }
    }
}

/// Delay before status poll number `attempt` (0-based): `poll_initial * 1.5^attempt`,
/// capped at `poll_max`.
pub fn poll_delay(attempt: u32, opts: &BulkOptions) -> Duration {
    let factor = 1.5f64.powi(attempt.min(60) as i32);
    let d = opts.poll_initial.as_secs_f64() * factor;
    let cap = opts.poll_max.as_secs_f64();
    Duration::from_secs_f64(if d.is_finite() { d.min(cap) } else { cap })
}

fn job_failed(job: &BulkJobInfo) -> Error {
    Error::api(
        400,
        "BULK_JOB_FAILED",
        format!("bulk job {} {}: {}", job.id, job.state, job.error_message.as_deref().unwrap_or("no error message")),
    )
}

impl Client {
    fn bulk_json(&self, method: Method, path: String, body: Option<&Value>, idempotent: bool) -> Result<BulkJobInfo, Error> {
        let resp = self.rest(method, path.clone(), body, idempotent)?;
        serde_json::from_str(&resp.body).map_err(|e| Error::Decode(format!("{} {path}: {e}", method.as_str())))
    }

    fn bulk_text(&self, path: String) -> Result<String, Error> {
        let resp = self.execute(&Request {
            method: Method::Get,
            target: Target::Instance(path),
            body: None,
            headers: vec![("Accept", "text/csv".into())],
            idempotent: true,
            authenticated: true,
        })?;
        Ok(resp.body)
    }

    /// `GET /jobs/{ingest|query}/{id}`.
    pub fn bulk_job_info(&self, query_job: bool, id: &str) -> Result<BulkJobInfo, Error> {
        let kind = if query_job { "query" } else { "ingest" };
        self.bulk_json(Method::Get, self.data_path(&format!("/jobs/{kind}/{}", encode_segment(id))), None, true)
    }

    /// `PATCH /jobs/{ingest|query}/{id}` with `{"state":"Aborted"}`.
    pub fn bulk_abort(&self, query_job: bool, id: &str) -> Result<BulkJobInfo, Error> {
        let kind = if query_job { "query" } else { "ingest" };
        let body = json!({"state": "Aborted"});
        self.bulk_json(Method::Patch, self.data_path(&format!("/jobs/{kind}/{}", encode_segment(id))), Some(&body), false)
    }

    /// `DELETE /jobs/{ingest|query}/{id}` (finished jobs only).
    pub fn bulk_delete(&self, query_job: bool, id: &str) -> Result<(), Error> {
        let kind = if query_job { "query" } else { "ingest" };
        self.rest(Method::Delete, self.data_path(&format!("/jobs/{kind}/{}", encode_segment(id))), None, true)?;
        Ok(())
    }

    /// Polls until the job is finished, sleeping [`poll_delay`] between polls; past
    /// `max_wait` it aborts the job (best effort) and fails with `Error::Transport`.
    pub fn bulk_wait(&self, query_job: bool, id: &str, opts: &BulkOptions) -> Result<BulkJobInfo, Error> {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            let job = self.bulk_job_info(query_job, id)?;
            if job.is_finished() {
                return Ok(job);
            }
            let delay = poll_delay(attempt, opts);
            if started.elapsed() + delay > opts.max_wait {
                let _ = self.bulk_abort(query_job, id);
                return Err(Error::Transport(format!("bulk job {id} still {} after {:?}; aborted", job.state, opts.max_wait)));
            }
            std::thread::sleep(delay);
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polling_backoff_grows_and_is_capped() {
        let o = BulkOptions::default();
        assert_eq!(poll_delay(0, &o), Duration::from_millis(250));
        assert_eq!(poll_delay(1, &o), Duration::from_millis(375));
        let mut prev = Duration::ZERO;
        for a in 0..100 {
            let d = poll_delay(a, &o);
            assert!(d >= prev && d <= o.poll_max, "attempt {a}: {d:?}");
            prev = d;
        }
        assert_eq!(poll_delay(u32::MAX, &o), o.poll_max);
        // Total wait of n polls is bounded: 30 polls stay under 30 * poll_max.
        let total: Duration = (0..30).map(|a| poll_delay(a, &o)).sum();
        assert!(total <= o.poll_max * 30);
    }
}
