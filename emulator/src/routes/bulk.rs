//! Bulk API 2.0 endpoints under `/services/data/vNN.N/jobs/{ingest,query}`. Jobs and their
//! processing live in `crate::bulk`; this file is request parsing and response shapes.

use super::{json_body, Api, St};
use crate::bulk::{
    decode_locator, delimiter_byte, encode_locator, render_header, render_rows, run_ingest, run_query, Job, JobState, Kind, LineEnding, Op,
    Org, QueryCol, DEFAULT_MAX_RECORDS, MAX_UPLOAD,
};
use crate::clock::format_datetime;
use crate::errors::ApiError;
use crate::out::Out;
use crate::schema::FieldType;
use crate::soql::ast::SelectItem;
use crate::soql::eval::{compile, resolve};
use crate::soql::parser::parse;
use crate::state::AppState;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::Value as Json_;
use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// Routes, with and without the trailing slash Salesforce's docs use.
pub fn router() -> Router<Arc<AppState>> {
    let d = "/services/data/{version}/jobs";
    let mut r = Router::new();
    for s in ["", "/"] {
        r = r
            .route(&format!("{d}/ingest{s}"), get(list_ingest).post(create_ingest))
            .route(&format!("{d}/ingest/{{id}}{s}"), get(get_ingest).patch(patch_ingest).delete(delete_ingest))
            .route(&format!("{d}/ingest/{{id}}/batches{s}"), put(upload).layer(DefaultBodyLimit::max(MAX_UPLOAD)))
            .route(&format!("{d}/ingest/{{id}}/successfulResults{s}"), get(successful))
            .route(&format!("{d}/ingest/{{id}}/failedResults{s}"), get(failed))
            .route(&format!("{d}/ingest/{{id}}/unprocessedrecords{s}"), get(unprocessed))
            .route(&format!("{d}/query{s}"), get(list_query).post(create_query))
            .route(&format!("{d}/query/{{id}}{s}"), get(get_query).patch(patch_query).delete(delete_query))
            .route(&format!("{d}/query/{{id}}/results{s}"), get(results));
    }
    r
}

fn invalid_job(msg: impl std::fmt::Display) -> ApiError {
    ApiError::bad("INVALIDJOB", format!("InvalidJob : {msg}"))
}

fn state_conflict(msg: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "INVALIDJOBSTATE", format!("InvalidJobState : {msg}"))
}

fn api_error(msg: impl Into<String>) -> ApiError {
    ApiError::bad("API_ERROR", msg)
}

fn j(v: impl Into<Json_>) -> Out {
    Out::J(v.into())
}

/// Job info in Salesforce's field order. `full` adds jobType and the processing counters
/// (Get Job Info); create/close/abort answers carry the short form.
fn info(st: &AppState, job: &Job, full: bool) -> Out {
    let version: f64 = job.api_version.parse().unwrap_or(0.0);
    let mut o: Vec<(String, Out)> = vec![
        ("id".into(), j(job.id.clone())),
        ("operation".into(), j(job.op.as_str())),
        ("object".into(), j(job.object.clone())),
        ("createdById".into(), j(st.user_id.clone())),
        ("createdDate".into(), j(format_datetime(job.created_ms))),
        ("systemModstamp".into(), j(format_datetime(job.modstamp_ms))),
        ("state".into(), j(job.state.as_str())),
    ];
    if let Some(f) = &job.external_id_field {
        o.push(("externalIdFieldName".into(), j(f.clone())));
    }
    o.push(("concurrencyMode".into(), j("Parallel")));
    o.push(("contentType".into(), j("CSV")));
    o.push(("apiVersion".into(), j(version)));
    if full {
        o.push(("jobType".into(), j(if job.kind == Kind::Ingest { "V2Ingest" } else { "V2Query" })));
    }
    if job.kind == Kind::Ingest {
        o.push(("contentUrl".into(), j(format!("services/data/v{}/jobs/ingest/{}/batches", job.api_version, job.id))));
    }
    o.push(("lineEnding".into(), j(job.line_ending.as_str())));
    o.push(("columnDelimiter".into(), j(job.delimiter)));
    if full {
        o.push(("numberRecordsProcessed".into(), j(job.processed)));
        if job.kind == Kind::Ingest {
            o.push(("numberRecordsFailed".into(), j(job.failed)));
        }
        o.push(("retries".into(), j(0)));
        o.push(("totalProcessingTime".into(), j(job.total_ms)));
        if job.kind == Kind::Ingest {
            o.push(("apiActiveProcessingTime".into(), j(job.active_ms)));
            o.push(("apexProcessingTime".into(), j(0)));
        } else {
            o.push(("isPkChunkingSupported".into(), j(true)));
        }
        if let Some(m) = &job.error_message {
            o.push(("errorMessage".into(), j(m.clone())));
        }
    }
    Out::O(o)
}

fn ok_json(body: Out) -> Response {
    (StatusCode::OK, Json(body)).into_response()
}

/// Runs `f` on the job `id` of `kind`, or 404 like Salesforce for unknown IDs.
fn with_job<T>(st: &AppState, id: &str, kind: Kind, f: impl FnOnce(&mut Job) -> Result<T, ApiError>) -> Result<T, ApiError> {
    let mut map = st.bulk.map.lock();
    let job = crate::ids::normalize(id).and_then(|id| map.get_mut(&id)).filter(|j| j.kind == kind).ok_or_else(ApiError::not_found)?;
    f(job)
}

fn str_field<'a>(body: &'a Json_, name: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(name) {
        None | Some(Json_::Null) => Ok(None),
        Some(Json_::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(ApiError::bad("JSON_PARSER_ERROR", format!("Cannot deserialize value of {name} from {other}"))),
    }
}

/// contentType / columnDelimiter / lineEnding shared by both job kinds.
fn csv_options(body: &Json_) -> Result<(&'static str, LineEnding), ApiError> {
    if let Some(ct) = str_field(body, "contentType")? {
        if ct != "CSV" {
            return Err(invalid_job(format!("Unsupported content type: {ct}")));
        }
    }
    let delim = match str_field(body, "columnDelimiter")? {
        None => "COMMA",
        Some(d) => crate::bulk::DELIMITERS
            .iter()
            .find(|(n, _)| *n == d)
            .map(|(n, _)| *n)
            .ok_or_else(|| invalid_job(format!("Invalid column delimiter: {d}")))?,
    };
    let le = match str_field(body, "lineEnding")? {
        None => LineEnding::Lf,
        Some(l) => LineEnding::parse(l).ok_or_else(|| invalid_job(format!("Invalid line ending: {l}")))?,
    };
    Ok((delim, le))
}

fn new_job(st: &AppState, kind: Kind, op: Op, (object, obj): (String, usize), api: &Api, (delim, le): (&'static str, LineEnding)) -> Job {
    let now = st.clock.now_ms();
    Job {
        id: st.bulk.mint_id(),
        kind,
        op,
        object,
        obj,
        external_id_field: None,
        delimiter: delim,
        line_ending: le,
        api_version: api.version.clone(),
        created_ms: now,
        modstamp_ms: now,
        state: JobState::Open,
        data: None,
        uploads: 0,
        processed: 0,
        failed: 0,
        total_ms: 0,
        active_ms: 0,
        error_message: None,
        results: None,
        query: None,
        cols: Arc::new(vec![]),
        seqs: None,
        cancel: Arc::new(AtomicBool::new(false)),
        origin: crate::cdc::bulk_origin(&crate::cdc::request_origin()),
    }
}

// ------------------------------------------------------------------------------------ ingest

pub async fn create_ingest(State(st): St, api: Api, body: Bytes) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    let object = str_field(&body, "object")?.unwrap_or("");
    let obj = st.schema.object(object).ok_or_else(|| invalid_job(format!("Unable to find object: {object}")))?;
    let def = &st.schema.objects[obj];
    let op_name = str_field(&body, "operation")?.ok_or_else(|| invalid_job("Operation is required"))?;
    let op = Op::parse_ingest(op_name).ok_or_else(|| invalid_job(format!("Invalid operation: {op_name}")))?;
    let (delim, le) = csv_options(&body)?;
    let mut job = new_job(&st, Kind::Ingest, op, (def.name.clone(), obj), &api, (delim, le));
    if op == Op::Upsert {
        let ext = str_field(&body, "externalIdFieldName")?
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid_job(format!("External ID was blank for {}. An External ID must be specified for upsert.", def.name)))?;
        let fi = def.field(ext).filter(|&i| def.fields[i].external_id || def.fields[i].ftype == FieldType::Id);
        let fi = fi.ok_or_else(|| {
            invalid_job(format!(
                "Field name provided, {ext} does not match an External ID, Salesforce Id, or indexed field for {}",
                def.name
            ))
        })?;
        job.external_id_field = Some(def.fields[fi].name.clone());
    }
    let out = info(&st, &job, false);
    st.bulk.map.lock().insert(job.id.clone(), job);
    Ok(ok_json(out))
}

fn list(st: &AppState, kind: Kind) -> Response {
    let map = st.bulk.map.lock();
    let mut jobs: Vec<&Job> = map.values().filter(|j| j.kind == kind).collect();
    jobs.sort_by(|a, b| a.id.cmp(&b.id));
    let records: Vec<Out> = jobs
        .into_iter()
        .map(|job| {
            let Out::O(mut o) = info(st, job, false) else { unreachable!() };
            let pos = o.iter().position(|(k, _)| k == "apiVersion").map(|p| p + 1).unwrap_or(o.len());
            o.insert(pos, ("jobType".into(), j(if kind == Kind::Ingest { "V2Ingest" } else { "V2Query" })));
            Out::O(o)
        })
        .collect();
    ok_json(Out::O(vec![("done".into(), j(true)), ("records".into(), Out::A(records)), ("nextRecordsUrl".into(), Out::J(Json_::Null))]))
}

pub async fn list_ingest(State(st): St, _api: Api) -> Response {
    list(&st, Kind::Ingest)
}

pub async fn get_ingest(State(st): St, api: Api) -> Result<Response, ApiError> {
    with_job(&st, api.param("id"), Kind::Ingest, |job| Ok(ok_json(info(&st, job, true))))
}

pub async fn upload(State(st): St, api: Api, body: Bytes) -> Result<Response, ApiError> {
    with_job(&st, api.param("id"), Kind::Ingest, |job| {
        if job.state != JobState::Open {
            return Err(state_conflict(format!("Job {} is not in state Open, current state: {}", job.id, job.state.as_str())));
        }
        job.uploads += 1;
        // Salesforce keeps only one content per job; a second PUT makes closing fail.
        if job.uploads == 1 {
            job.data = Some(Arc::new(body.to_vec()));
        }
        Ok(StatusCode::CREATED.into_response())
    })
}

fn new_state(body: &[u8]) -> Result<String, ApiError> {
    let body = json_body(body)?;
    let s = str_field(&body, "state")?.ok_or_else(|| ApiError::bad("INVALIDJOBSTATE", "InvalidJobState : state is required"))?;
    Ok(s.to_string())
}

pub async fn patch_ingest(State(st): St, api: Api, body: Bytes) -> Result<Response, ApiError> {
    let want = new_state(&body)?;
    let (out, start, was) = with_job(&st, api.param("id"), Kind::Ingest, |job| {
        let was = job.state;
        let to = JobState::parse(&want).filter(|s| matches!(s, JobState::UploadComplete | JobState::Aborted));
        let Some(to) = to else {
            return Err(ApiError::bad("INVALIDJOBSTATE", format!("InvalidJobState : Invalid job state: {want}")));
        };
        let conflict = || state_conflict(format!("Invalid state transition from {} to {}", job.state.as_str(), to.as_str()));
        match to {
            JobState::UploadComplete => {
                if job.state != JobState::Open {
                    return Err(conflict());
                }
                if job.uploads > 1 {
                    return Err(invalid_job(format!(
                        "Found multipe contents for job: <{}>, please 'Close' / 'Abort' / 'Delete' the current Job then create a new Job and make sure you only do 'PUT' once on a given Job.",
                        &job.id[..15]
                    )));
                }
                job.state = JobState::UploadComplete;
            }
            _ => {
                if job.state.finished() {
                    return Err(conflict());
                }
                job.state = JobState::Aborted;
                job.cancel.store(true, Ordering::Relaxed);
            }
        }
        job.modstamp_ms = st.clock.now_ms();
        Ok((info(&st, job, false), to == JobState::UploadComplete, was))
    })?;
    if start {
        let (st2, id) = (st.clone(), crate::ids::normalize(api.param("id")).unwrap_or_default());
        tokio::task::spawn_blocking(move || run_ingest(&org(&st2), &id));
    } else if matches!(was, JobState::Open | JobState::UploadComplete) {
        // Aborted before processing started: every uploaded row is unprocessed.
        let id = crate::ids::normalize(api.param("id")).unwrap_or_default();
        abort_unstarted(&st, &id);
    }
    Ok(ok_json(out))
}

/// An ingest job aborted while still Open (or before its worker ran): all rows unprocessed.
fn abort_unstarted(st: &AppState, id: &str) {
    let mut map = st.bulk.map.lock();
    let Some(job) = map.get_mut(id) else { return };
    if job.state != JobState::Aborted || job.results.is_some() {
        return;
    }
    // Unprocessed records: the upload as it was (header + rows).
    let unprocessed = job.data.take().map(|d| d.to_vec()).unwrap_or_default();
    job.results = Some(Arc::new(crate::bulk::IngestResults { unprocessed, ..Default::default() }));
}

pub async fn delete_ingest(State(st): St, api: Api) -> Result<Response, ApiError> {
    delete_job(&st, &api, Kind::Ingest, |s| !matches!(s, JobState::Open | JobState::InProgress))
}

/// DELETE of a job in a state that allows it (204), else a state conflict.
fn delete_job(st: &AppState, api: &Api, kind: Kind, deletable: fn(JobState) -> bool) -> Result<Response, ApiError> {
    let id = with_job(st, api.param("id"), kind, |job| {
        if !deletable(job.state) {
            return Err(state_conflict(format!("Job {} can't be deleted in state {}", job.id, job.state.as_str())));
        }
        job.cancel.store(true, Ordering::Relaxed);
        Ok(job.id.clone())
    })?;
    st.bulk.map.lock().remove(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn csv_response(body: Vec<u8>) -> Response {
    let mut r = Response::new(Body::from(body));
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    r
}

/// The parts of the org a job's background work uses.
fn org(st: &AppState) -> Org<'_> {
    Org { schema: &st.schema, clock: &st.clock, store: &st.store, rules: &st.rules, user_id: &st.user_id, jobs: &st.bulk }
}

fn result_set(st: &AppState, api: &Api, pick: fn(&crate::bulk::IngestResults) -> &Vec<u8>) -> Result<Response, ApiError> {
    let res = with_job(st, api.param("id"), Kind::Ingest, |job| Ok(job.results.clone()))?;
    Ok(csv_response(res.map(|r| pick(&r).clone()).unwrap_or_default()))
}

pub async fn successful(State(st): St, api: Api) -> Result<Response, ApiError> {
    result_set(&st, &api, |r| &r.successful)
}

pub async fn failed(State(st): St, api: Api) -> Result<Response, ApiError> {
    result_set(&st, &api, |r| &r.failed)
}

pub async fn unprocessed(State(st): St, api: Api) -> Result<Response, ApiError> {
    result_set(&st, &api, |r| &r.unprocessed)
}

// ------------------------------------------------------------------------------------- query

pub async fn create_query(State(st): St, api: Api, body: Bytes) -> Result<Response, ApiError> {
    let body = json_body(&body)?;
    let op = match str_field(&body, "operation")? {
        Some("query") => Op::Query,
        Some("queryAll") => Op::QueryAll,
        Some(other) => return Err(invalid_job(format!("Invalid operation: {other}"))),
        None => return Err(invalid_job("Operation is required")),
    };
    let text = str_field(&body, "query")?.filter(|q| !q.trim().is_empty()).ok_or_else(|| invalid_job("Query is required"))?;
    let (delim, le) = csv_options(&body)?;
    let parsed = parse(text).map_err(|e| e.to_api(text))?;
    let plan = compile(&st.schema, &parsed, st.clock.now_ms()).map_err(|e| e.to_api(text))?;
    if plan.count_only || plan.is_aggregate() {
        return Err(api_error("FeatureNotEnabled : Aggregate queries are not supported by Bulk API 2.0 query"));
    }
    if plan.has_subqueries() {
        return Err(api_error("FeatureNotEnabled : Nested queries are not supported by Bulk API 2.0 query"));
    }
    if parsed.select.iter().any(|i| matches!(i, SelectItem::Fields(..))) {
        return Err(api_error("FeatureNotEnabled : FIELDS() is not supported by Bulk API 2.0 query"));
    }
    if parsed.offset.is_some() {
        return Err(api_error("FeatureNotEnabled : OFFSET clause is not supported by Bulk API 2.0 query"));
    }
    let mut cols: Vec<QueryCol> = vec![];
    for item in &parsed.select {
        let SelectItem::Field(p, _) = item else { continue };
        let (field, names) = resolve(&st.schema, plan.obj, p).map_err(|e| e.to_api(text))?;
        if field.ftype() == FieldType::Address {
            return Err(api_error("FeatureNotEnabled : Compound data not supported in Bulk Query"));
        }
        let header = names.join(".");
        if !cols.iter().any(|c| c.header == header) {
            cols.push(QueryCol { header, field });
        }
    }
    let object = st.schema.objects[plan.obj].name.clone();
    let mut job = new_job(&st, Kind::Query, op, (object, plan.obj), &api, (delim, le));
    job.state = JobState::UploadComplete;
    job.query = Some(text.to_string());
    job.cols = Arc::new(cols);
    let out = info(&st, &job, false);
    let id = job.id.clone();
    st.bulk.map.lock().insert(id.clone(), job);
    let st2 = st.clone();
    tokio::task::spawn_blocking(move || run_query(&org(&st2), &id, &plan, op == Op::QueryAll));
    Ok(ok_json(out))
}

pub async fn list_query(State(st): St, _api: Api) -> Response {
    list(&st, Kind::Query)
}

pub async fn get_query(State(st): St, api: Api) -> Result<Response, ApiError> {
    with_job(&st, api.param("id"), Kind::Query, |job| Ok(ok_json(info(&st, job, true))))
}

pub async fn patch_query(State(st): St, api: Api, body: Bytes) -> Result<Response, ApiError> {
    let want = new_state(&body)?;
    with_job(&st, api.param("id"), Kind::Query, |job| {
        if want != "Aborted" {
            return Err(ApiError::bad("INVALIDJOBSTATE", format!("InvalidJobState : Invalid job state: {want}")));
        }
        if job.state.finished() {
            return Err(state_conflict(format!("Invalid state transition from {} to Aborted", job.state.as_str())));
        }
        job.state = JobState::Aborted;
        job.cancel.store(true, Ordering::Relaxed);
        job.modstamp_ms = st.clock.now_ms();
        Ok(ok_json(info(&st, job, false)))
    })
}

pub async fn delete_query(State(st): St, api: Api) -> Result<Response, ApiError> {
    delete_job(&st, &api, Kind::Query, JobState::finished)
}

/// Streams one result page: header row, then rows rendered a chunk at a time under short read
/// locks, so a page of any size never sits in memory whole.
struct PageStream {
    st: Arc<AppState>,
    obj: usize,
    cols: Arc<Vec<QueryCol>>,
    seqs: Arc<Vec<u64>>,
    pos: usize,
    end: usize,
    header: Option<Vec<u8>>,
    delim: u8,
    eol: &'static [u8],
}

const STREAM_CHUNK: usize = 2000;

impl futures_core::Stream for PageStream {
    type Item = Result<Bytes, Infallible>;
    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(h) = this.header.take() {
            return Poll::Ready(Some(Ok(Bytes::from(h))));
        }
        if this.pos >= this.end {
            return Poll::Ready(None);
        }
        let stop = (this.pos + STREAM_CHUNK).min(this.end);
        let mut buf = Vec::with_capacity((stop - this.pos) * 64 * this.cols.len().max(1));
        {
            let store = this.st.store.read();
            render_rows(&this.st.schema, &store, this.obj, &this.cols, &this.seqs[this.pos..stop], (this.delim, this.eol), &mut buf);
        }
        this.pos = stop;
        Poll::Ready(Some(Ok(Bytes::from(buf))))
    }
}

pub async fn results(State(st): St, api: Api, Query(q): Query<HashMap<String, String>>) -> Result<Response, ApiError> {
    let max = match q.get("maxRecords") {
        None => DEFAULT_MAX_RECORDS,
        Some(m) => {
            m.trim().parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| api_error(format!("Invalid value for maxRecords: {m}")))?
        }
    };
    let (obj, cols, seqs, delim, eol) = with_job(&st, api.param("id"), Kind::Query, |job| {
        if job.state != JobState::JobComplete {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "JOB_NOT_COMPLETE",
                format!(
                    "can only download query results of successfully completed bulk job with status: JOB_COMPLETE. Current status: {}",
                    match job.state {
                        JobState::UploadComplete => "UPLOAD_COMPLETE",
                        JobState::InProgress => "IN_PROGRESS",
                        JobState::Aborted => "ABORTED",
                        JobState::Failed => "FAILED",
                        _ => "OPEN",
                    }
                ),
            ));
        }
        let seqs = job.seqs.clone().unwrap_or_default();
        Ok((job.obj, job.cols.clone(), seqs, delimiter_byte(job.delimiter).unwrap_or(b','), job.line_ending.bytes()))
    })?;
    let start = match q.get("locator").filter(|l| !l.is_empty()) {
        None => 0,
        Some(l) => decode_locator(l).filter(|&n| n <= seqs.len()).ok_or_else(|| api_error(format!("Invalid locator: {l}")))?,
    };
    let end = (start + max).min(seqs.len());
    let locator = if end < seqs.len() { encode_locator(end) } else { "null".to_string() };
    let stream =
        PageStream { header: Some(render_header(&cols, delim, eol)), st: st.clone(), obj, cols, seqs, pos: start, end, delim, eol };
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/csv"));
    if let Ok(v) = HeaderValue::from_str(&locator) {
        h.insert("sforce-locator", v);
    }
    h.insert("sforce-numberofrecords", HeaderValue::from(end - start));
    Ok(r)
}
