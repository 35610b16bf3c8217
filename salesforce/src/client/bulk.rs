//! Bulk API 2.0: ingest jobs ([`Client::bulk_ingest`]) and query jobs ([`Client::bulk_query`]).
//!
//! Ingest: create the job, upload the CSV **once** (Salesforce keeps one content per job; a
//! second upload makes closing fail), close it (`UploadComplete`), poll with a bounded,
//! growing delay ([`BulkOptions`]), then read the successful / failed / unprocessed result sets
//! and map them back to the input rows with [`map_results`].
//!
//! Query: create the job, poll, then [`BulkQueryReader`] streams the CSV result pages (paged by
//! the `Sforce-Locator` header, `maxRecords` per page) through the `csv` crate straight from the
//! HTTP body: one page is in flight at a time and no page is held in memory whole.
//!
//! Every HTTP request here is one API call and is counted in [`Client::stats`].

use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};

use super::request::{Method, Request, Target};
use super::Client;
use crate::error::{Error, RecordError};
use crate::http::{encode_query, encode_segment};
use crate::types::{null_default, Record};

/// Value that sets a field to null in Bulk ingest CSV (an empty value leaves it unchanged).
pub const BULK_NULL: &str = "#N/A";

/// Ingest operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BulkOperation {
    Insert,
    Update,
    /// Needs an external ID field (or `Id`).
    Upsert,
    Delete,
    HardDelete,
}

impl BulkOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            BulkOperation::Insert => "insert",
            BulkOperation::Update => "update",
            BulkOperation::Upsert => "upsert",
            BulkOperation::Delete => "delete",
            BulkOperation::HardDelete => "hardDelete",
        }
    }
}

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

/// What happened to one input row of an ingest job.
#[derive(Clone, Debug, PartialEq)]
pub enum BulkRowOutcome {
    Success {
        id: String,
        created: bool,
    },
    /// `id` is set when Salesforce reports one (e.g. a failed update).
    Failed {
        id: Option<String>,
        error: RecordError,
    },
    /// Not processed (job aborted or failed), or missing from every result set.
    Unprocessed,
}

/// Result of [`Client::bulk_ingest`]: the finished job and one outcome per input row, in input order.
#[derive(Clone, Debug)]
pub struct BulkIngestResult {
    pub job: BulkJobInfo,
    pub rows: Vec<BulkRowOutcome>,
    /// Result rows that matched no input row (should be 0).
    pub unmatched_results: usize,
}

/// Builds ingest CSV (comma, LF, RFC 4180 quoting). `None` becomes [`BULK_NULL`] (set the
/// field to null); `Some("")` leaves the field unchanged on update/upsert.
pub fn build_csv<H: AsRef<str>>(header: &[H], rows: impl IntoIterator<Item = Vec<Option<String>>>) -> Result<Vec<u8>, Error> {
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(vec![]);
    let err = |e: csv::Error| Error::Config(format!("cannot build CSV: {e}"));
    w.write_record(header.iter().map(|h| h.as_ref())).map_err(err)?;
    for (i, row) in rows.into_iter().enumerate() {
        if row.len() != header.len() {
            return Err(Error::Config(format!("CSV row {i} has {} values for {} columns", row.len(), header.len())));
        }
        w.write_record(row.iter().map(|v| v.as_deref().unwrap_or(BULK_NULL))).map_err(err)?;
    }
    w.into_inner().map_err(|e| Error::Config(format!("cannot build CSV: {e}")))
}

/// Parses `sf__Error` text (`CODE:message:Field1,Field2 --`) into a [`RecordError`].
pub fn parse_sf_error(s: &str) -> RecordError {
    let s = s.trim();
    let (code, rest) = match s.split_once(':') {
        Some((c, r)) if !c.is_empty() && c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_') => (c, r),
        _ => return RecordError::new("UNKNOWN_EXCEPTION", s),
    };
    let rest = rest.strip_suffix("--").unwrap_or(rest).trim_end();
    let (message, fields) = match rest.rsplit_once(':') {
        Some((m, f))
            if f.is_empty() || f.split(',').all(|x| !x.is_empty() && x.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.')) =>
        {
            (m, f.split(',').filter(|x| !x.is_empty()).map(str::to_string).collect())
        }
        _ => (rest, vec![]),
    };
    RecordError { status_code: code.to_string(), message: message.to_string(), fields }
}

fn row_key(fields: impl Iterator<Item = impl AsRef<str>>) -> String {
    let mut k = String::new();
    for f in fields {
        k.push_str(f.as_ref());
        k.push('\u{1f}');
    }
    k
}

/// Maps Bulk result sets back to input rows.
///
/// Salesforce doesn't keep input order in result sets, but every result row echoes the
/// row's original columns. A result row is matched to the first not-yet-matched input row with
/// exactly the same values; failing that (values normalised by the server), to one with the same
/// value in `key_column` (the `Id` / external ID column), when given. Identical input rows are
/// interchangeable, so they are assigned in input order. Input rows missing from every set are
/// `Unprocessed`. Returns the outcomes in input order and the count of unmatched result rows.
pub fn map_results(
    input: &[csv::StringRecord],
    key_column: Option<usize>,
    successful: &str,
    failed: &str,
    unprocessed: &str,
) -> Result<(Vec<BulkRowOutcome>, usize), Error> {
    let mut by_row: HashMap<String, VecDeque<usize>> = HashMap::new();
    let mut by_key: HashMap<String, VecDeque<usize>> = HashMap::new();
    for (i, r) in input.iter().enumerate() {
        by_row.entry(row_key(r.iter())).or_default().push_back(i);
        if let Some(k) = key_column.and_then(|c| r.get(c)).filter(|k| !k.is_empty()) {
            by_key.entry(k.to_string()).or_default().push_back(i);
        }
    }
    let mut out: Vec<Option<BulkRowOutcome>> = vec![None; input.len()];
    let mut unmatched = 0usize;
    let mut claim = |orig: &[&str], outcome: BulkRowOutcome, out: &mut Vec<Option<BulkRowOutcome>>| -> bool {
        let take = |q: Option<&mut VecDeque<usize>>| -> Option<usize> {
            let q = q?;
            while let Some(i) = q.pop_front() {
                if out[i].is_none() {
                    return Some(i);
                }
            }
            None
        };
        let hit = take(by_row.get_mut(&row_key(orig.iter()))).or_else(|| {
            let k = key_column.and_then(|c| orig.get(c)).filter(|k| !k.is_empty())?;
            take(by_key.get_mut(*k))
        });
        match hit {
            Some(i) => {
                out[i] = Some(outcome);
                true
            }
            None => false,
        }
    };
    let sets: [(&str, usize); 3] = [(successful, 2), (failed, 2), (unprocessed, 0)];
    for (set_no, (text, extra)) in sets.into_iter().enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        let mut rdr = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(text.as_bytes());
        for rec in rdr.records() {
            let rec = rec.map_err(|e| Error::Decode(format!("bulk result CSV: {e}")))?;
            if rec.len() < extra {
                unmatched += 1;
                continue;
            }
            let orig: Vec<&str> = rec.iter().skip(extra).collect();
            let outcome = match set_no {
                0 => BulkRowOutcome::Success { id: rec[0].to_string(), created: rec[1].eq_ignore_ascii_case("true") },
                1 => BulkRowOutcome::Failed { id: Some(rec[0].to_string()).filter(|s| !s.is_empty()), error: parse_sf_error(&rec[1]) },
                _ => BulkRowOutcome::Unprocessed,
            };
            if !claim(&orig, outcome, &mut out) {
                unmatched += 1;
            }
        }
    }
    Ok((out.into_iter().map(|o| o.unwrap_or(BulkRowOutcome::Unprocessed)).collect(), unmatched))
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

    /// Runs one Bulk API 2.0 ingest job with [`BulkOptions::default`]; see
    /// [`Client::bulk_ingest_with`].
    pub fn bulk_ingest(
        &self,
        sobject: &str,
        operation: BulkOperation,
        external_id: Option<&str>,
        csv: &[u8],
    ) -> Result<BulkIngestResult, Error> {
        self.bulk_ingest_with(sobject, operation, external_id, csv, &BulkOptions::default())
    }

    /// Runs one ingest job over `csv` (comma-delimited, header row of field names such as
    /// `Name`, `Id`, `Account.Postgres_Id__c`; see [`build_csv`]), waits for it and returns
    /// one outcome per data row in input order (see [`map_results`]; the `Id` column, or for
    /// upserts the external ID column, is the fallback match key).
    ///
    /// A job that fails as a whole (unknown column, bad line ending) is `Err` with code
    /// `BULK_JOB_FAILED`; row-level failures are `BulkRowOutcome::Failed`. The upload is not
    /// retried after an ambiguous failure (a second upload would fail the job).
    pub fn bulk_ingest_with(
        &self,
        sobject: &str,
        operation: BulkOperation,
        external_id: Option<&str>,
        csv: &[u8],
        opts: &BulkOptions,
    ) -> Result<BulkIngestResult, Error> {
        super::check_object(sobject)?;
        if operation == BulkOperation::Upsert && external_id.is_none() {
            return Err(Error::Config("upsert needs an external ID field".into()));
        }
        if let Some(f) = external_id {
            super::check_field(f)?;
        }
        let mut rdr = csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(csv);
        let header = rdr.headers().map_err(|e| Error::Config(format!("bad CSV header: {e}")))?.clone();
        let input: Vec<csv::StringRecord> = rdr.records().collect::<Result<_, _>>().map_err(|e| Error::Config(format!("bad CSV: {e}")))?;
        let key_name = match operation {
            BulkOperation::Upsert => external_id.unwrap_or("Id"),
            _ => "Id",
        };
        let key_column = header.iter().position(|h| h.trim().eq_ignore_ascii_case(key_name));
        let crlf = csv.iter().position(|&b| b == b'\n').is_some_and(|p| p > 0 && csv[p - 1] == b'\r');

        let mut body = json!({
            "object": sobject,
            "operation": operation.as_str(),
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": if crlf { "CRLF" } else { "LF" },
        });
        if let Some(f) = external_id {
            body["externalIdFieldName"] = json!(f);
        }
        let job = self.bulk_json(Method::Post, self.data_path("/jobs/ingest"), Some(&body), false)?;
        let jpath = self.data_path(&format!("/jobs/ingest/{}", encode_segment(&job.id)));
        self.execute(&Request {
            method: Method::Put,
            target: Target::Instance(format!("{jpath}/batches")),
            body: Some(("text/csv", csv.to_vec())),
            headers: vec![],
            idempotent: false,
            authenticated: true,
        })?;
        self.bulk_json(Method::Patch, jpath.clone(), Some(&json!({"state": "UploadComplete"})), false)?;
        let job = self.bulk_wait(false, &job.id, opts)?;
        if job.state == "Failed" {
            return Err(job_failed(&job));
        }
        let successful = self.bulk_text(format!("{jpath}/successfulResults/"))?;
        let failed = self.bulk_text(format!("{jpath}/failedResults/"))?;
        let unprocessed = if job.state == "Aborted" { self.bulk_text(format!("{jpath}/unprocessedrecords/"))? } else { String::new() };
        let (rows, unmatched_results) = map_results(&input, key_column, &successful, &failed, &unprocessed)?;
        Ok(BulkIngestResult { job, rows, unmatched_results })
    }

    /// Runs a Bulk API 2.0 query job with [`BulkOptions::default`]; see [`Client::bulk_query_with`].
    pub fn bulk_query(&self, soql: &str, include_deleted: bool) -> Result<BulkQueryReader<'_>, Error> {
        self.bulk_query_with(soql, include_deleted, &BulkOptions::default())
    }

    /// Creates a query (or, with `include_deleted`, queryAll) job, waits for it and opens the
    /// first result page. Bad SOQL fails here, synchronously, with Salesforce's error
    /// (`MALFORMED_QUERY`, `INVALID_FIELD`, ...); a failed or aborted job is `BULK_JOB_FAILED`.
    pub fn bulk_query_with(&self, soql: &str, include_deleted: bool, opts: &BulkOptions) -> Result<BulkQueryReader<'_>, Error> {
        let body = json!({
            "operation": if include_deleted { "queryAll" } else { "query" },
            "query": soql,
            "contentType": "CSV",
            "columnDelimiter": "COMMA",
            "lineEnding": "LF",
        });
        let job = self.bulk_json(Method::Post, self.data_path("/jobs/query"), Some(&body), false)?;
        let job = self.bulk_wait(true, &job.id, opts)?;
        if job.state != "JobComplete" {
            return Err(job_failed(&job));
        }
        self.bulk_query_results(job, None, opts)
    }

    /// Opens the results of a finished query job at `locator` (`None`: the first page), to
    /// resume reading after a restart without running the query again. The reader then goes
    /// on through the following pages as usual. A job whose results are gone fails with the
    /// server's error (404 `NOT_FOUND` once the job was deleted or expired).
    pub fn bulk_query_results(&self, job: BulkJobInfo, locator: Option<&str>, opts: &BulkOptions) -> Result<BulkQueryReader<'_>, Error> {
        let mut reader = BulkQueryReader {
            client: self,
            max_records: opts.max_records,
            job,
            locator: None,
            next_locator: None,
            reader: None,
            headers: csv::StringRecord::new(),
            pages: 0,
            finished: false,
        };
        reader.open_page(locator)?;
        Ok(reader)
    }
}

/// Streams the records of a finished Bulk query job, page by page (see module docs).
/// Iterates `csv::StringRecord`s in the column order of [`BulkQueryReader::headers`];
/// [`BulkQueryReader::next_record`] gives [`Record`] maps instead (empty values as `null`).
pub struct BulkQueryReader<'a> {
    client: &'a Client,
    max_records: Option<u32>,
    job: BulkJobInfo,
    /// Locator of the page being read; `None` for the first page.
    locator: Option<String>,
    /// Locator of the next page; `None` after the last page.
    next_locator: Option<String>,
    reader: Option<csv::Reader<Box<dyn Read + Send>>>,
    headers: csv::StringRecord,
    pages: u32,
    finished: bool,
}

impl std::fmt::Debug for BulkQueryReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkQueryReader").field("job", &self.job.id).field("pages", &self.pages).finish_non_exhaustive()
    }
}

impl BulkQueryReader<'_> {
    /// The finished job (its `number_records_processed` is the total row count).
    pub fn job(&self) -> &BulkJobInfo {
        &self.job
    }
    /// Column names (`Id`, `Name`, `Account.Name`, ...).
    pub fn headers(&self) -> &csv::StringRecord {
        &self.headers
    }
    /// Result pages opened so far.
    pub fn pages(&self) -> u32 {
        self.pages
    }
    /// Locator of the page being read (`None`: the first page): with the number of records
    /// already taken from it, where [`Client::bulk_query_results`] can resume.
    pub fn page_locator(&self) -> Option<&str> {
        self.locator.as_deref()
    }

    fn open_page(&mut self, locator: Option<&str>) -> Result<(), Error> {
        let mut path = self.client.data_path(&format!("/jobs/query/{}/results", encode_segment(&self.job.id)));
        let mut params = vec![];
        if let Some(n) = self.max_records {
            params.push(format!("maxRecords={n}"));
        }
        if let Some(l) = locator {
            params.push(format!("locator={}", encode_query(l)));
        }
        if !params.is_empty() {
            path.push('?');
            path.push_str(&params.join("&"));
        }
        let (next, body) = self.client.open_csv_stream(&path)?;
        self.next_locator = next.filter(|l| !l.is_empty() && l != "null");
        let mut rdr = csv::ReaderBuilder::new().has_headers(true).from_reader(body);
        let headers = rdr.headers().map_err(|e| Error::Decode(format!("bulk query results: {e}")))?.clone();
        if self.pages > 0 && headers != self.headers && !headers.is_empty() {
            return Err(Error::Decode(format!("bulk query page {} has different columns", self.pages + 1)));
        }
        if self.pages == 0 {
            self.headers = headers;
        }
        self.locator = locator.map(str::to_string);
        self.pages += 1;
        self.reader = Some(rdr);
        Ok(())
    }

    /// The next record as a field map (`Account.Name` stays a dotted key; empty = `null`).
    pub fn next_record(&mut self) -> Option<Result<Record, Error>> {
        let rec = match self.next()? {
            Ok(r) => r,
            Err(e) => return Some(Err(e)),
        };
        Some(Ok(record_of(&self.headers, &rec)))
    }
}

/// A result row as a field map, by the page's `headers` (empty = `null`).
pub fn record_of(headers: &csv::StringRecord, row: &csv::StringRecord) -> Record {
    headers
        .iter()
        .zip(row.iter())
        .map(|(h, v)| (h.to_string(), if v.is_empty() { Value::Null } else { Value::String(v.to_string()) }))
        .collect()
}

impl Iterator for BulkQueryReader<'_> {
    type Item = Result<csv::StringRecord, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.finished {
                return None;
            }
            let rdr = self.reader.as_mut()?;
            let mut rec = csv::StringRecord::new();
            match rdr.read_record(&mut rec) {
                Ok(true) => return Some(Ok(rec)),
                Ok(false) => match self.next_locator.take() {
                    Some(loc) => {
                        if let Err(e) = self.open_page(Some(&loc)) {
                            self.finished = true;
                            return Some(Err(e));
                        }
                    }
                    None => {
                        self.finished = true;
                        self.reader = None;
                        return None;
                    }
                },
                Err(e) => {
                    self.finished = true;
                    return Some(Err(Error::Transport(format!("reading bulk query results: {e}"))));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(csv_text: &str) -> Vec<csv::StringRecord> {
        csv::ReaderBuilder::new().has_headers(true).from_reader(csv_text.as_bytes()).records().map(Result::unwrap).collect()
    }

    #[test]
    fn csv_building_escapes_and_nulls() {
        let out = build_csv(
            &["Name", "Description", "Phone"],
            vec![
                vec![Some("Acme, Inc.".into()), Some("say \"hi\"\nnext".into()), None],
                vec![Some("Plain".into()), Some(String::new()), Some("555".into())],
            ],
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "Name,Description,Phone\n\"Acme, Inc.\",\"say \"\"hi\"\"\nnext\",#N/A\nPlain,,555\n");
        // Round-trips through a CSV reader.
        let back = recs(&text);
        assert_eq!(&back[0][1], "say \"hi\"\nnext");
        assert!(build_csv(&["A", "B"], vec![vec![None]]).is_err());
    }

    #[test]
    fn sf_error_parsing() {
        let e = parse_sf_error("REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --");
        assert_eq!(e.status_code, "REQUIRED_FIELD_MISSING");
        assert_eq!(e.message, "Required fields are missing: [LastName]");
        assert_eq!(e.fields, vec!["LastName".to_string()]);
        let e = parse_sf_error("INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--");
        assert_eq!((e.status_code.as_str(), e.message.as_str()), ("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id"));
        assert!(e.fields.is_empty());
        let e = parse_sf_error("FIELD_CUSTOM_VALIDATION_EXCEPTION:Amount: must be > 0:Amount,StageName --");
        assert_eq!(e.message, "Amount: must be > 0");
        assert_eq!(e.fields, vec!["Amount".to_string(), "StageName".to_string()]);
        let e = parse_sf_error("something odd");
        assert_eq!(e.status_code, "UNKNOWN_EXCEPTION");
    }

    #[test]
    fn results_map_back_to_input_rows() {
        let input = recs("Postgres_Id__c,LastName\n1,Smith\n2,\n3,Jones\n3,Jones\n4,Late\n");
        let ok = "\"sf__Id\",\"sf__Created\",Postgres_Id__c,LastName\n\
                  \"003B\",\"false\",\"3\",\"Jones\"\n\
                  \"003A\",\"true\",\"1\",\"Smith\"\n\
                  \"003C\",\"true\",\"3\",\"Jones\"\n";
        let failed = "\"sf__Id\",\"sf__Error\",Postgres_Id__c,LastName\n\
                      \"\",\"REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --\",\"2\",\"\"\n\
                      \"\",\"X:y:--\",\"99\",\"nobody\"\n";
        let (rows, unmatched) = map_results(&input, Some(0), ok, failed, "").unwrap();
        assert_eq!(rows[0], BulkRowOutcome::Success { id: "003A".into(), created: true });
        assert!(matches!(&rows[1], BulkRowOutcome::Failed { id: None, error } if error.status_code == "REQUIRED_FIELD_MISSING"));
        // identical rows are assigned in input order
        assert_eq!(rows[2], BulkRowOutcome::Success { id: "003B".into(), created: false });
        assert_eq!(rows[3], BulkRowOutcome::Success { id: "003C".into(), created: true });
        assert_eq!(rows[4], BulkRowOutcome::Unprocessed);
        assert_eq!(unmatched, 1);
    }

    #[test]
    fn key_column_is_the_fallback_match() {
        let input = recs("Id,Name\n001A,Acme\n001B,Bolt\n");
        // The server echoed a normalised value: no exact row match, the Id still matches.
        let ok = "\"sf__Id\",\"sf__Created\",Id,Name\n\"001B\",\"false\",\"001B\",\"BOLT\"\n";
        let unprocessed = "Id,Name\n001A,Acme\n";
        let (rows, unmatched) = map_results(&input, Some(0), ok, "", unprocessed).unwrap();
        assert_eq!(rows[1], BulkRowOutcome::Success { id: "001B".into(), created: false });
        assert_eq!(rows[0], BulkRowOutcome::Unprocessed);
        assert_eq!(unmatched, 0);
        let (_, unmatched) = map_results(&input, None, ok, "", "").unwrap();
        assert_eq!(unmatched, 1, "no key column: only exact rows match");
    }

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
