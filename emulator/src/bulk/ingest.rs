//! Bulk API 2.0 ingest work: maps the CSV header onto the object, runs each row through the
//! save path (`write::Writer`) and collects the successful / failed / unprocessed result sets.

use super::format::{push_quoted, write_header, write_row};
use super::{IngestResults, JobState, LineEnding, Op, Org, INGEST_CHUNK, NULL_MARKER};
use crate::errors::RecError;
use crate::ids;
use crate::schema::{FieldType, Schema};
use crate::value::{from_json, Coerce, Value};
use crate::write::{Parsed, UpsertError, Writer};
use serde_json::Value as Json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

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

/// Checks the data's line endings against the job's `lineEnding` (first line decides).
fn line_ending_ok(data: &[u8], le: LineEnding) -> bool {
    match data.iter().position(|&b| b == b'\n') {
        None => true,
        Some(p) => (p > 0 && data[p - 1] == b'\r') == (le == LineEnding::Crlf),
    }
}

/// Runs an ingest job to the end (on a blocking thread).
pub fn run_ingest(org: &Org, id: &str) {
    // Held by the admin switch: the job waits in the queue (an abort still ends it).
    while org.jobs.held.load(Ordering::Relaxed) {
        if org.jobs.map.lock().get(id).is_none_or(|j| j.cancel.load(Ordering::Relaxed)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let started = Instant::now();
    let now = org.clock.now_ms();
    let mut spec = None;
    org.update_job(id, |j| {
        if j.state != JobState::UploadComplete {
            return; // aborted before it started
        }
        j.state = JobState::InProgress;
        j.modstamp_ms = now;
        let ext_field = j.external_id_field.as_deref().and_then(|f| org.schema.objects[j.obj].field(f));
        spec = Some((
            JobSpec { obj: j.obj, op: j.op, ext_field },
            j.data.clone(),
            j.delim_byte(),
            j.line_ending,
            j.cancel.clone(),
            j.origin.clone(),
        ));
    });
    let Some((spec, data, delim, le, cancel, origin)) = spec else { return };
    let fail = |msg: String| {
        let ms = started.elapsed().as_millis() as u64;
        org.update_job(id, |j| {
            j.state = JobState::Failed;
            j.error_message = Some(msg);
            j.modstamp_ms = org.clock.now_ms();
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
    let cols = match map_header(org.schema, spec.obj, &header) {
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
        // The chunk's saves commit when the writer drops, inside: they carry the job's origin.
        crate::cdc::with_origin(&origin, || {
            let rules = org.rules.read();
            let mut store = org.store.write();
            let mut w = Writer::new(org.schema, &mut store, &rules, org.clock, org.user_id);
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
        });
        active += t0.elapsed();
        let (p, f) = (processed, failed);
        if !org.update_job(id, |j| {
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
    org.update_job(id, |j| {
        if j.state != JobState::Aborted {
            j.state = if aborted { JobState::Aborted } else { JobState::JobComplete };
        }
        j.processed = processed;
        j.failed = failed;
        j.total_ms = total;
        j.active_ms = active.as_millis() as u64;
        j.modstamp_ms = org.clock.now_ms();
        j.data = None;
        j.results = Some(res);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

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
