//! Bulk API 2.0: ingest and query jobs, their CSV formats and the background processing.
//! HTTP handlers live in `routes/bulk.rs`; this module owns the job table and the work.
//!
//! Every record an ingest job writes goes through `write::Writer` (create / update / upsert /
//! delete), the same save path REST and Collections use, so validation rules, automations and
//! audit fields apply identically. Rows are processed in chunks of `INGEST_CHUNK`, each under one
//! short store write lock, on a blocking thread: a large job never stalls the server.
//! Query results are rendered page by page from a snapshot of matched record IDs.
//!
//! Layout: this file holds the job table and its types; `format` the CSV output (result rows,
//! quoting, locators); `ingest` and `query` the background work of each job kind.

mod format;
mod ingest;
mod query;

pub use format::{csv_value, decode_locator, encode_locator, format_datetime_z, push_quoted, render_header, render_rows};
pub use ingest::{run_ingest, sf_error};
pub use query::run_query;

use crate::clock::Clock;
use crate::ids;
use crate::rules::Rules;
use crate::schema::Schema;
use crate::soql::eval::FieldRef;
use crate::store::Store;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Rows saved per store write lock.
pub const INGEST_CHUNK: usize = 500;
/// Default `maxRecords` of a query results page.
pub const DEFAULT_MAX_RECORDS: usize = 50_000;
/// Largest accepted upload (Salesforce: 150 MB of raw CSV per job).
pub const MAX_UPLOAD: usize = 150 * 1024 * 1024;
/// Value that clears a field in ingest CSV.
pub const NULL_MARKER: &str = "#N/A";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ingest,
    Query,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    Open,
    UploadComplete,
    InProgress,
    JobComplete,
    Failed,
    Aborted,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Open => "Open",
            JobState::UploadComplete => "UploadComplete",
            JobState::InProgress => "InProgress",
            JobState::JobComplete => "JobComplete",
            JobState::Failed => "Failed",
            JobState::Aborted => "Aborted",
        }
    }
    pub fn parse(s: &str) -> Option<JobState> {
        [JobState::Open, JobState::UploadComplete, JobState::InProgress, JobState::JobComplete, JobState::Failed, JobState::Aborted]
            .into_iter()
            .find(|j| j.as_str() == s)
    }
    pub fn finished(self) -> bool {
        matches!(self, JobState::JobComplete | JobState::Failed | JobState::Aborted)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Upsert,
    Delete,
    HardDelete,
    Query,
    QueryAll,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Upsert => "upsert",
            Op::Delete => "delete",
            Op::HardDelete => "hardDelete",
            Op::Query => "query",
            Op::QueryAll => "queryAll",
        }
    }
    pub fn parse_ingest(s: &str) -> Option<Op> {
        [Op::Insert, Op::Update, Op::Upsert, Op::Delete, Op::HardDelete].into_iter().find(|o| o.as_str() == s)
    }
}

/// `columnDelimiter` values and their bytes.
pub const DELIMITERS: &[(&str, u8)] =
    &[("COMMA", b','), ("TAB", b'\t'), ("PIPE", b'|'), ("SEMICOLON", b';'), ("CARET", b'^'), ("BACKQUOTE", b'`')];

pub fn delimiter_byte(name: &str) -> Option<u8> {
    DELIMITERS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineEnding {
    Lf,
    Crlf,
}

impl LineEnding {
    pub fn as_str(self) -> &'static str {
        match self {
            LineEnding::Lf => "LF",
            LineEnding::Crlf => "CRLF",
        }
    }
    pub fn bytes(self) -> &'static [u8] {
        match self {
            LineEnding::Lf => b"\n",
            LineEnding::Crlf => b"\r\n",
        }
    }
    pub fn parse(s: &str) -> Option<LineEnding> {
        match s {
            "LF" => Some(LineEnding::Lf),
            "CRLF" => Some(LineEnding::Crlf),
            _ => None,
        }
    }
}

/// One selected column of a query job: CSV header and how to read it.
pub struct QueryCol {
    pub header: String,
    pub field: FieldRef,
}

/// Result sets of a finished ingest job, as the CSV bodies Salesforce serves.
#[derive(Default)]
pub struct IngestResults {
    pub successful: Vec<u8>,
    pub failed: Vec<u8>,
    pub unprocessed: Vec<u8>,
}

pub struct Job {
    pub id: String,
    pub kind: Kind,
    pub op: Op,
    pub object: String,
    pub obj: usize,
    pub external_id_field: Option<String>,
    pub delimiter: &'static str,
    pub line_ending: LineEnding,
    pub api_version: String,
    pub created_ms: i64,
    pub modstamp_ms: i64,
    pub state: JobState,
    /// Ingest: uploaded CSV (kept until processed) and how many PUTs were made.
    pub data: Option<Arc<Vec<u8>>>,
    pub uploads: u32,
    pub processed: u64,
    pub failed: u64,
    pub total_ms: u64,
    pub active_ms: u64,
    pub error_message: Option<String>,
    pub results: Option<Arc<IngestResults>>,
    /// Query: the columns and, once complete, the matched record seqs (in result order).
    pub query: Option<String>,
    pub cols: Arc<Vec<QueryCol>>,
    pub seqs: Option<Arc<Vec<u64>>>,
    /// Set by abort/delete so background work stops.
    pub cancel: Arc<AtomicBool>,
    /// The `changeOrigin` of the job's saves (`cdc::bulk_origin` of the creating call's).
    pub origin: String,
}

impl Job {
    pub fn delim_byte(&self) -> u8 {
        delimiter_byte(self.delimiter).unwrap_or(b',')
    }
}

/// All bulk jobs of the org.
#[derive(Default)]
pub struct Jobs {
    pub map: Mutex<HashMap<String, Job>>,
    next: AtomicU64,
    /// Admin switch (`POST /__emulator/bulk/hold`): ingest jobs wait in `UploadComplete`
    /// until released, as a busy org's queue keeps them. Tests use it to keep a job
    /// processing while the client goes on.
    pub held: AtomicBool,
}

impl Jobs {
    pub fn mint_id(&self) -> String {
        // Offset so IDs look like real ones (mixed characters) and never collide with records.
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 62u64.pow(5) * 23;
        ids::mint("750", n)
    }
    /// Forgets every job (admin reset) and releases the hold; running work notices and stops.
    pub fn clear(&self) {
        self.held.store(false, Ordering::Relaxed);
        let mut m = self.map.lock();
        for j in m.values() {
            j.cancel.store(true, Ordering::Relaxed);
        }
        m.clear();
    }
}

/// What the background work reads and writes, borrowed from the app state by the caller
/// (routes/bulk.rs). `AppState` owns the job table, so taking the parts here instead of
/// `AppState` keeps the dependency one way (state → bulk).
pub struct Org<'a> {
    pub schema: &'a Schema,
    pub clock: &'a Clock,
    pub store: &'a RwLock<Store>,
    pub rules: &'a RwLock<Rules>,
    pub user_id: &'a str,
    pub jobs: &'a Jobs,
}

impl Org<'_> {
    /// Applies `f` to job `id`; false if the job is gone (deleted or reset).
    fn update_job(&self, id: &str, f: impl FnOnce(&mut Job)) -> bool {
        match self.jobs.map.lock().get_mut(id) {
            Some(j) => {
                f(j);
                true
            }
            None => false,
        }
    }
}
