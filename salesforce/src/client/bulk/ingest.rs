//! Bulk API 2.0 ingest: create the job, upload the CSV **once** (Salesforce keeps one content
//! per job; a second upload makes closing fail), close it (`UploadComplete`), poll with a
//! bounded, growing delay ([`BulkOptions`]), then read the successful / failed / unprocessed
//! result sets and map them back to the input rows with [`map_results`].

use std::collections::{HashMap, VecDeque};

use serde_json::json;

use super::{job_failed, BulkJobInfo, BulkOptions};
use crate::client::request::{Method, Request, Target};
use crate::client::{check_field, check_object, Client};
use crate::error::{Error, RecordError};
use crate::http::encode_segment;

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

impl Client {
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
        let started = self.bulk_ingest_start(sobject, operation, external_id, csv)?;
        self.bulk_ingest_finish(started, opts)
    }

    /// The first half of [`Client::bulk_ingest_with`]: creates the job, uploads `csv` and
    /// closes the upload, so Salesforce starts processing it; returns without waiting. The
    /// caller does other work (another job, its database's) and then calls
    /// [`Client::bulk_ingest_finish`]: several jobs run at once, as Salesforce allows.
    pub fn bulk_ingest_start(
        &self,
        sobject: &str,
        operation: BulkOperation,
        external_id: Option<&str>,
        csv: &[u8],
    ) -> Result<IngestStarted, Error> {
        check_object(sobject)?;
        if operation == BulkOperation::Upsert && external_id.is_none() {
            return Err(Error::Config("upsert needs an external ID field".into()));
        }
        if let Some(f) = external_id {
            check_field(f)?;
        }
        // The input rows are kept: results are matched back to them (`map_results`).
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
        let uploaded = self
            .execute(&Request {
                method: Method::Put,
                target: Target::Instance(format!("{jpath}/batches")),
                body: Some(("text/csv", csv.to_vec())),
                headers: vec![],
                idempotent: false,
                authenticated: true,
            })
            .and_then(|_| self.bulk_json(Method::Patch, jpath.clone(), Some(&json!({"state": "UploadComplete"})), false));
        if let Err(e) = uploaded {
            // A job left open would count against the org's open jobs until it times out.
            let _ = self.bulk_abort(false, &job.id);
            return Err(e);
        }
        Ok(IngestStarted { id: job.id, input, key_column })
    }

    /// The second half of [`Client::bulk_ingest_with`]: waits for a started job and maps
    /// its results back to the input rows.
    pub fn bulk_ingest_finish(&self, started: IngestStarted, opts: &BulkOptions) -> Result<BulkIngestResult, Error> {
        let jpath = self.data_path(&format!("/jobs/ingest/{}", encode_segment(&started.id)));
        let job = self.bulk_wait(false, &started.id, opts)?;
        if job.state == "Failed" {
            return Err(job_failed(&job));
        }
        let successful = self.bulk_text(format!("{jpath}/successfulResults/"))?;
        let failed = self.bulk_text(format!("{jpath}/failedResults/"))?;
        let unprocessed = if job.state == "Aborted" { self.bulk_text(format!("{jpath}/unprocessedrecords/"))? } else { String::new() };
        let (rows, unmatched_results) = map_results(&started.input, started.key_column, &successful, &failed, &unprocessed)?;
        Ok(BulkIngestResult { job, rows, unmatched_results })
    }
}

/// An ingest job uploaded and processing: what [`Client::bulk_ingest_finish`] needs.
#[derive(Debug)]
pub struct IngestStarted {
    pub id: String,
    /// The rows sent, which the results are matched back to.
    input: Vec<csv::StringRecord>,
    key_column: Option<usize>,
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
}
