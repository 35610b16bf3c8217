//! Bulk API 2.0 query: create the job, poll, then [`BulkQueryReader`] streams the CSV result
//! pages (paged by the `Sforce-Locator` header, `maxRecords` per page) through the `csv` crate
//! straight from the HTTP body: one page is in flight at a time and no page is held in memory
//! whole.

use std::io::Read;

use serde_json::{json, Value};

use super::{job_failed, BulkJobInfo, BulkOptions};
use crate::client::request::Method;
use crate::client::Client;
use crate::error::Error;
use crate::http::{encode_query, encode_segment};
use crate::types::Record;

impl Client {
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

impl BulkQueryReader<'_> {
    /// Reads the next record into `rec`, reusing its buffers (no allocation per row once it
    /// has grown to a row's size): `Ok(false)` at the end of the results. Iterating gives a new
    /// record per row instead.
    pub fn read_into(&mut self, rec: &mut csv::StringRecord) -> Result<bool, Error> {
        loop {
            if self.finished {
                return Ok(false);
            }
            let Some(rdr) = self.reader.as_mut() else { return Ok(false) };
            match rdr.read_record(rec) {
                Ok(true) => return Ok(true),
                Ok(false) => match self.next_locator.take() {
                    Some(loc) => {
                        if let Err(e) = self.open_page(Some(&loc)) {
                            self.finished = true;
                            return Err(e);
                        }
                    }
                    None => {
                        self.finished = true;
                        self.reader = None;
                        return Ok(false);
                    }
                },
                Err(e) => {
                    self.finished = true;
                    return Err(Error::Transport(format!("reading bulk query results: {e}")));
                }
            }
        }
    }
}

impl Iterator for BulkQueryReader<'_> {
    type Item = Result<csv::StringRecord, Error>;
    fn next(&mut self) -> Option<Self::Item> {
        let mut rec = csv::StringRecord::new();
        match self.read_into(&mut rec) {
            Ok(true) => Some(Ok(rec)),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        }
    }
}
