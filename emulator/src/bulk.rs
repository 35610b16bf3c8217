//! Bulk API 2.0: ingest and query jobs, their CSV formats and the background processing.
//! HTTP handlers live in `routes/bulk.rs`; this module owns the job table and the work.
//!
//! Every record an ingest job writes goes through `write::Writer` (create / update / upsert /
//! delete), the same save path REST and Collections use, so validation rules, automations and
//! audit fields apply identically. Rows are processed in chunks of `INGEST_CHUNK`, each under one
//! short store write lock, on a blocking thread: a large job never stalls the server.
//! Query results are rendered page by page from a snapshot of matched record IDs.

use crate::errors::RecError;
use crate::ids;
use crate::schema::{FieldType, Schema};
use crate::soql::eval::FieldRef;
use crate::state::AppState;
use crate::store::Store;
use crate::value::{from_json, Coerce, Value};
use crate::write::{Parsed, UpsertError, Writer};
use parking_lot::Mutex;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

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
}

impl Jobs {
    pub fn mint_id(&self) -> String {
        // Offset so IDs look like real ones (mixed characters) and never collide with records.
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 62u64.pow(5) * 23;
        ids::mint("750", n)
    }
    /// Forgets every job (admin reset); running work notices and stops.
    pub fn clear(&self) {
        let mut m = self.map.lock();
        for j in m.values() {
            j.cancel.store(true, Ordering::Relaxed);
        }
        m.clear();
    }
}

// ------------------------------------------------------------------------------------ CSV out

/// Appends `s` as a quoted CSV field (RFC 4180: quotes doubled).
pub fn push_quoted(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    if s.contains('"') {
        buf.extend_from_slice(s.replace('"', "\"\"").as_bytes());
    } else {
        buf.extend_from_slice(s.as_bytes());
    }
    buf.push(b'"');
}

/// `2024-05-20T20:49:32.000Z`, the datetime form of Bulk API 2.0 query results.
pub fn format_datetime_z(ms: i64) -> String {
    let s = crate::clock::format_datetime(ms);
    match s.strip_suffix("+0000") {
        Some(p) => format!("{p}Z"),
        None => s,
    }
}

/// A value as query results print it: booleans `true`/`false`, nulls empty.
pub fn csv_value(v: &Value) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    match v {
        Value::Null => Cow::Borrowed(""),
        Value::Str(s) => Cow::Borrowed(s),
        Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Value::Int(i) => Cow::Owned(i.to_string()),
        Value::DateTime(ms) => Cow::Owned(format_datetime_z(*ms)),
        Value::Date(d) => Cow::Owned(crate::clock::format_date(*d)),
        other => Cow::Owned(other.display()),
    }
}

/// Renders query result rows `seqs` into `buf` (one line each; vanished records skipped), with
/// `fmt` = (delimiter, line ending).
pub fn render_rows(schema: &Schema, store: &Store, obj: usize, cols: &[QueryCol], seqs: &[u64], fmt: (u8, &[u8]), buf: &mut Vec<u8>) {
    let (delim, eol) = fmt;
    let table = &store.tables[obj];
    for seq in seqs {
        let Some(rec) = table.recs.get(seq) else { continue };
        for (i, c) in cols.iter().enumerate() {
            if i > 0 {
                buf.push(delim);
            }
            push_quoted(buf, &csv_value(c.field.get(schema, store, obj, rec)));
        }
        buf.extend_from_slice(eol);
    }
}

pub fn render_header(cols: &[QueryCol], delim: u8, eol: &[u8]) -> Vec<u8> {
    let mut buf = vec![];
    for (i, c) in cols.iter().enumerate() {
        if i > 0 {
            buf.push(delim);
        }
        push_quoted(&mut buf, &c.header);
    }
    buf.extend_from_slice(eol);
    buf
}

/// Opaque locator for the result page starting at `offset` (base64 of the offset, like the
/// `MTAwMDA` strings Salesforce hands out).
pub fn encode_locator(offset: usize) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = offset.to_string().into_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

pub fn decode_locator(s: &str) -> Option<usize> {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = vec![];
    for c in s.trim_end_matches('=').bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        bits = bits << 6 | v;
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits & 0xff) as u8);
        }
    }
    let text = String::from_utf8(out).ok()?;
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

// ------------------------------------------------------------------------------- ingest work

/// How one CSV column maps onto the object.
enum Col {
    Id,
    Field(usize),
    /// `Rel.ExtField`: reference field, target object, target field (an external ID or `Id`).
    Rel {
        field: usize,
        target: usize,
        target_field: usize,
    },
}

/// Resolves the header row; Err is the job-level `errorMessage`.
fn map_header(schema: &Schema, obj: usize, header: &csv::StringRecord) -> Result<Vec<Col>, String> {
    let def = &schema.objects[obj];
    let not_found = |name: &str| format!("InvalidBatch : Field name not found : {name}");
    header
        .iter()
        .map(|raw| {
            let name = raw.trim();
            if let Some((rel, leaf)) = name.split_once('.') {
                let field = def.relationship(rel).ok_or_else(|| not_found(name))?;
                let target = def.fields[field].reference_to.iter().find_map(|t| schema.object(t)).ok_or_else(|| not_found(name))?;
                let tdef = &schema.objects[target];
                let target_field = tdef.field(leaf).ok_or_else(|| not_found(name))?;
                let tf = &tdef.fields[target_field];
                if !(tf.external_id || tf.ftype == FieldType::Id) {
                    return Err(format!("InvalidBatch : The field {leaf} on {} is not an External ID or the Id field", tdef.name));
                }
                return Ok(Col::Rel { field, target, target_field });
            }
            match def.field(name) {
                Some(0) => Ok(Col::Id),
                Some(fi) => Ok(Col::Field(fi)),
                None => Err(not_found(name)),
            }
        })
        .collect()
}

/// `sf__Error` text: `CODE:message:Field1,Field2 --`.
pub fn sf_error(errs: &[RecError]) -> String {
    let e = &errs[0];
    if e.fields.is_empty() {
        format!("{}:{}:--", e.code, e.message)
    } else {
        format!("{}:{}:{} --", e.code, e.message, e.fields.join(","))
    }
}

fn xsd_type(t: FieldType) -> &'static str {
    match t {
        FieldType::Boolean => "xsd:boolean",
        FieldType::Int => "xsd:int",
        FieldType::Double | FieldType::Currency | FieldType::Percent => "xsd:double",
        FieldType::Date => "xsd:date",
        FieldType::DateTime => "xsd:dateTime",
        _ => "xsd:string",
    }
}

/// One row through the save path: Ok((id, created)) or Err((id if known, errors)).
fn process_row(w: &mut Writer, job: &JobSpec, cols: &[Col], row: &csv::StringRecord) -> Result<(String, bool), (String, Vec<RecError>)> {
    let schema = w.schema;
    let def = &schema.objects[job.obj];
    let mut p = Parsed::default();
    let mut ext_key: Option<String> = None;
    for (n, (col, raw)) in cols.iter().zip(row.iter()).enumerate() {
        if raw.is_empty() {
            continue; // empty = leave unchanged; #N/A clears
        }
        let null = raw == NULL_MARKER;
        match col {
            Col::Id => {
                if !null {
                    p.id = Some(raw.to_string());
                }
            }
            Col::Field(fi) => {
                let fd = &def.fields[*fi];
                if Some(*fi) == job.ext_field {
                    ext_key = Some(if null { String::new() } else { raw.to_string() });
                }
                if null {
                    p.values.push((*fi, Value::Null));
                    continue;
                }
                match from_json(fd, &Json::String(raw.to_string())) {
                    Ok(v) => p.values.push((*fi, v)),
                    Err(Coerce::Parser(_)) | Err(Coerce::Type(_)) => p.errors.push(RecError::new(
                        "INVALID_FIELD",
                        format!(
                            "Failed to deserialize field at col {}. Due to, '{raw}' is not a valid value for the type {}",
                            n + 1,
                            xsd_type(fd.ftype)
                        ),
                        vec![fd.name.clone()],
                    )),
                }
            }
            Col::Rel { field, target, target_field } => {
                if null {
                    p.values.push((*field, Value::Null));
                    continue;
                }
                let tdef = &schema.objects[*target];
                let tf = &tdef.fields[*target_field];
                if tf.ftype == FieldType::Id {
                    p.values.push((*field, Value::str(raw)));
                    continue;
                }
                let key = from_json(tf, &Json::String(raw.to_string())).unwrap_or(Value::Null);
                match w.store.tables[*target].lookup(tdef, *target_field, &key).as_slice() {
                    [seq] => p.values.push((*field, Value::Str(ids::mint(&tdef.key_prefix, *seq).into()))),
                    [] => p.errors.push(RecError::new(
                        "INVALID_FIELD",
                        format!("Foreign key external ID: {raw} not found for field {} in entity {}", tf.name, tdef.name),
                        vec![],
                    )),
                    many => p.errors.push(RecError::new(
                        "INVALID_FIELD",
                        format!(
                            "Foreign key external ID: {raw} matched more than one record for field {} in entity {}: {}",
                            tf.name,
                            tdef.name,
                            many.len()
                        ),
                        vec![],
                    )),
                }
            }
        }
    }
    let given_id = p.id.clone().unwrap_or_default();
    let fail = |e: Vec<RecError>| (given_id.clone(), e);
    let need_id = || RecError::new("MISSING_ARGUMENT", format!("Id not specified in an {} call", job.op.as_str()), vec![]);
    match job.op {
        Op::Insert => w.create(job.obj, &p).map(|id| (id, true)).map_err(fail),
        Op::Update => match p.id.clone() {
            None => Err(fail(vec![need_id()])),
            Some(id) => {
                p.id = None;
                w.update(job.obj, &id, &p).map(|id| (id, false)).map_err(fail)
            }
        },
        Op::Upsert => {
            let field = job.ext_field.unwrap_or(0);
            let key = if field == 0 { p.id.take().unwrap_or_default() } else { ext_key.unwrap_or_default() };
            if key.is_empty() && field != 0 {
                let name = &def.fields[field].name;
                return Err(fail(vec![RecError::new("MISSING_ARGUMENT", format!("{name} not specified"), vec![])]));
            }
            p.id = None;
            match w.upsert(job.obj, field, &key, &mut p) {
                Ok(r) => Ok(r),
                Err(UpsertError::Errors(e)) => Err(fail(e)),
                Err(UpsertError::Multiple(ids)) => {
                    let name = def.fields[field].name.clone();
                    Err(fail(vec![RecError::new(
                        "DUPLICATE_EXTERNAL_ID",
                        format!("{name}: more than one record found for external id field: {ids:?}"),
                        vec![name],
                    )]))
                }
            }
        }
        Op::Delete | Op::HardDelete => match p.id.clone() {
            None => Err(fail(vec![need_id()])),
            Some(id) => {
                let id = w.delete(job.obj, &id).map_err(fail)?;
                if job.op == Op::HardDelete {
                    // Out of the recycle bin as well: queryAll no longer sees it.
                    // getDeleted still reports it until the purge (see Store::purge).
                    if let Some(seq) = ids::seq_of(&def.key_prefix, &id) {
                        let gone = w.store.tables[job.obj].take(def, seq);
                        if let Some(crate::value::Value::DateTime(t)) = gone.map(|r| r.get(def.sys.system_modstamp).clone()) {
                            w.store.tables[job.obj].tombstones.insert(seq, t);
                        }
                    }
                }
                Ok((id, false))
            }
        },
        Op::Query | Op::QueryAll => Err(fail(vec![])),
    }
}

/// What the worker needs from the job, copied out so the job table isn't held.
struct JobSpec {
    obj: usize,
    op: Op,
    ext_field: Option<usize>,
}

fn write_row(buf: &mut Vec<u8>, first: &[&str], row: &csv::StringRecord, delim: u8) {
    for (i, f) in first.iter().enumerate() {
        if i > 0 {
            buf.push(delim);
        }
        push_quoted(buf, f);
    }
    for (i, f) in row.iter().enumerate() {
        if i > 0 || !first.is_empty() {
            buf.push(delim);
        }
        push_quoted(buf, f);
    }
    buf.push(b'\n');
}

fn write_header(buf: &mut Vec<u8>, first: &[&str], header: &csv::StringRecord, delim: u8) {
    for (i, f) in first.iter().enumerate() {
        if i > 0 {
            buf.push(delim);
        }
        push_quoted(buf, f);
    }
    for (i, f) in header.iter().enumerate() {
        if i > 0 || !first.is_empty() {
            buf.push(delim);
        }
        buf.extend_from_slice(f.as_bytes());
    }
    buf.push(b'\n');
}

fn update_job(st: &AppState, id: &str, f: impl FnOnce(&mut Job)) -> bool {
    match st.bulk.map.lock().get_mut(id) {
        Some(j) => {
            f(j);
            true
        }
        None => false,
    }
}

/// Checks the data's line endings against the job's `lineEnding` (first line decides).
fn line_ending_ok(data: &[u8], le: LineEnding) -> bool {
    match data.iter().position(|&b| b == b'\n') {
        None => true,
        Some(p) => (p > 0 && data[p - 1] == b'\r') == (le == LineEnding::Crlf),
    }
}

/// Runs an ingest job to the end (on a blocking thread).
pub fn run_ingest(st: Arc<AppState>, id: String) {
    let started = Instant::now();
    let now = st.clock.now_ms();
    let mut spec = None;
    update_job(&st, &id, |j| {
        if j.state != JobState::UploadComplete {
            return; // aborted before it started
        }
        j.state = JobState::InProgress;
        j.modstamp_ms = now;
        let ext_field = j.external_id_field.as_deref().and_then(|f| st.schema.objects[j.obj].field(f));
        spec = Some((JobSpec { obj: j.obj, op: j.op, ext_field }, j.data.clone(), j.delim_byte(), j.line_ending, j.cancel.clone()));
    });
    let Some((spec, data, delim, le, cancel)) = spec else { return };
    let fail = |msg: String| {
        let ms = started.elapsed().as_millis() as u64;
        update_job(&st, &id, |j| {
            j.state = JobState::Failed;
            j.error_message = Some(msg);
            j.modstamp_ms = st.clock.now_ms();
            j.total_ms = ms;
            j.data = None;
            j.results = Some(Arc::new(IngestResults::default()));
        });
    };
    let data = match data {
        Some(d) if !d.is_empty() => d,
        _ => return fail("InvalidBatch : No data was uploaded for this job".into()),
    };
    if !line_ending_ok(&data, le) {
        return fail(format!("ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is {}", le.as_str()));
    }
    let mut rdr = csv::ReaderBuilder::new().delimiter(delim).has_headers(false).flexible(true).from_reader(&data[..]);
    let mut records = rdr.records();
    let header = match records.next() {
        Some(Ok(h)) => h,
        Some(Err(e)) => return fail(format!("ClientInputError : {e}")),
        None => return fail("InvalidBatch : No data was uploaded for this job".into()),
    };
    let cols = match map_header(&st.schema, spec.obj, &header) {
        Ok(c) => c,
        Err(msg) => return fail(msg),
    };
    let mut res = IngestResults::default();
    write_header(&mut res.successful, &["sf__Id", "sf__Created"], &header, delim);
    write_header(&mut res.failed, &["sf__Id", "sf__Error"], &header, delim);
    write_header(&mut res.unprocessed, &[], &header, delim);
    let (mut processed, mut failed) = (0u64, 0u64);
    let mut active = std::time::Duration::ZERO;
    let mut aborted = false;
    let mut chunk: Vec<csv::StringRecord> = Vec::with_capacity(INGEST_CHUNK);
    let mut exhausted = false;
    while !exhausted {
        chunk.clear();
        while chunk.len() < INGEST_CHUNK {
            match records.next() {
                Some(Ok(r)) => chunk.push(r),
                Some(Err(e)) => {
                    // A malformed row: report it as a failed row and go on.
                    failed += 1;
                    processed += 1;
                    let msg = format!("INVALID_FIELD:Failed to parse CSV row: {e}:--");
                    push_quoted(&mut res.failed, "");
                    res.failed.push(delim);
                    push_quoted(&mut res.failed, &msg);
                    res.failed.push(b'\n');
                }
                None => {
                    exhausted = true;
                    break;
                }
            }
        }
        if cancel.load(Ordering::Relaxed) {
            aborted = true;
            for r in &chunk {
                write_row(&mut res.unprocessed, &[], r, delim);
            }
            continue;
        }
        let t0 = Instant::now();
        {
            let rules = st.rules.read();
            let mut store = st.store.write();
            let mut w = Writer::new(&st.schema, &mut store, &rules, &st.clock, &st.user_id);
            for row in &chunk {
                if row.len() == 1 && row.get(0) == Some("") {
                    continue; // blank line
                }
                processed += 1;
                if row.len() != cols.len() {
                    failed += 1;
                    let msg = format!(
                        "INVALID_FIELD:The number of fields in the row ({}) doesn't match the header ({}):--",
                        row.len(),
                        cols.len()
                    );
                    write_row(&mut res.failed, &["", &msg], row, delim);
                    continue;
                }
                match process_row(&mut w, &spec, &cols, row) {
                    Ok((rid, created)) => write_row(&mut res.successful, &[&rid, if created { "true" } else { "false" }], row, delim),
                    Err((rid, errs)) => {
                        failed += 1;
                        let msg = if errs.is_empty() { "UNKNOWN_EXCEPTION:unsupported operation:--".into() } else { sf_error(&errs) };
                        write_row(&mut res.failed, &[&rid, &msg], row, delim);
                    }
                }
            }
        }
        active += t0.elapsed();
        let (p, f) = (processed, failed);
        if !update_job(&st, &id, |j| {
            j.processed = p;
            j.failed = f;
        }) {
            return; // deleted or reset
        }
        // Let readers (queries, job polls) in between chunks.
        std::thread::yield_now();
    }
    let total = started.elapsed().as_millis() as u64;
    let res = Arc::new(res);
    update_job(&st, &id, |j| {
        if j.state != JobState::Aborted {
            j.state = if aborted { JobState::Aborted } else { JobState::JobComplete };
        }
        j.processed = processed;
        j.failed = failed;
        j.total_ms = total;
        j.active_ms = active.as_millis() as u64;
        j.modstamp_ms = st.clock.now_ms();
        j.data = None;
        j.results = Some(res);
    });
}

/// Runs a query job: snapshot the matching IDs (on a blocking thread), then JobComplete.
pub fn run_query(st: Arc<AppState>, id: String, plan: Arc<crate::soql::eval::Plan>, include_deleted: bool) {
    let started = Instant::now();
    let now = st.clock.now_ms();
    let mut cancel = None;
    update_job(&st, &id, |j| {
        if j.state != JobState::UploadComplete {
            return;
        }
        j.state = JobState::InProgress;
        j.modstamp_ms = now;
        cancel = Some(j.cancel.clone());
    });
    let Some(cancel) = cancel else { return };
    if cancel.load(Ordering::Relaxed) {
        return;
    }
    let seqs = {
        let store = st.store.read();
        crate::soql::eval::execute(&plan, &st.schema, &store, include_deleted)
    };
    let ms = started.elapsed().as_millis() as u64;
    update_job(&st, &id, |j| {
        if j.state != JobState::InProgress {
            return; // aborted meanwhile
        }
        j.processed = seqs.len() as u64;
        j.seqs = Some(Arc::new(seqs));
        j.state = JobState::JobComplete;
        j.total_ms = ms;
        j.active_ms = ms;
        j.modstamp_ms = st.clock.now_ms();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locators_round_trip() {
        assert_eq!(encode_locator(10000), "MTAwMDA");
        for n in [0, 1, 7, 99, 2000, 50_000, 1_000_000, 123_456_789] {
            assert_eq!(decode_locator(&encode_locator(n)), Some(n), "{n}");
        }
        assert_eq!(decode_locator("null"), None);
        assert_eq!(decode_locator("!!"), None);
        assert_eq!(decode_locator(""), None);
    }

    #[test]
    fn quoting_and_values() {
        let mut b = vec![];
        push_quoted(&mut b, "a \"b\", c\nd");
        assert_eq!(String::from_utf8(b).unwrap(), "\"a \"\"b\"\", c\nd\"");
        assert_eq!(csv_value(&Value::Bool(true)), "true");
        assert_eq!(csv_value(&Value::Null), "");
        assert_eq!(csv_value(&Value::DateTime(1_716_238_172_000)), "2024-05-20T20:49:32.000Z");
        assert_eq!(csv_value(&Value::Date(0)), "1970-01-01");
    }

    #[test]
    fn error_format() {
        let e = RecError::new("REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]", vec!["LastName".into()]);
        assert_eq!(sf_error(&[e]), "REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --");
        let e = RecError::new("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", vec![]);
        assert_eq!(sf_error(&[e]), "INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--");
    }

    #[test]
    fn line_endings() {
        assert!(line_ending_ok(b"Name\nA\n", LineEnding::Lf));
        assert!(!line_ending_ok(b"Name\r\nA\r\n", LineEnding::Lf));
        assert!(line_ending_ok(b"Name\r\nA\r\n", LineEnding::Crlf));
        assert!(!line_ending_ok(b"Name\nA\n", LineEnding::Crlf));
        assert!(line_ending_ok(b"Name", LineEnding::Crlf));
    }
}
