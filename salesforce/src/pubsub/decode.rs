//! Avro change events (the Pub/Sub API's payloads) decoded into the [`ChangeEvent`] the
//! CometD path yields, so the worker applies both alike.
//!
//! - `ChangeEventHeader` is the payload's first field; its `changedFields`, `diffFields` and
//!   `nulledFields` are bitmaps: `0x…` (bit *i* of the number = top-level field *i*) and
//!   `N-0x…` (the parts of the compound field at index N). They become field names as the
//!   CometD JSON names them: `Phone`, and `BillingAddress.City` for a compound's part (the
//!   compound itself is not listed when its parts are).
//! - Payload fields: for an UPDATE only the changed ones (nulled ones as `null`), for the
//!   others the non-null ones; compound fields as nested objects of their parts.
//! - Values as CometD sends them: datetimes `2024-05-20T20:49:32.000Z`, dates `2024-05-20`,
//!   told by the Avro logical type or the field's Salesforce doc (`…:DateTime`, `…:Date`).

use std::collections::HashMap;

use apache_avro::schema::{RecordField, RecordSchema};
use apache_avro::types::Value as Avro;
use apache_avro::Schema;
use serde_json::{Map, Value};

use crate::cdc::{ChangeEvent, ChangeEventHeader, ChangeType};

/// A parsed event schema, with its named records (compound field types are defined once and
/// referenced after).
#[derive(Debug)]
pub struct EventSchema {
    pub id: String,
    schema: Schema,
    records: HashMap<String, RecordSchema>,
}

impl EventSchema {
    pub fn parse(id: &str, json: &str) -> Result<EventSchema, String> {
        let schema = Schema::parse_str(json).map_err(|e| format!("schema {id}: {e}"))?;
        let mut records = HashMap::new();
        collect(&schema, &mut records);
        if !matches!(schema, Schema::Record(_)) {
            return Err(format!("schema {id} is not a record"));
        }
        Ok(EventSchema { id: id.to_string(), schema, records })
    }

    fn top(&self) -> &RecordSchema {
        match &self.schema {
            Schema::Record(r) => r,
            _ => unreachable!("checked in parse"),
        }
    }

    /// The record type a field holds (through a nullable union or a reference), if any.
    fn record_of<'a>(&'a self, s: &'a Schema) -> Option<&'a RecordSchema> {
        match s {
            Schema::Record(r) => Some(r),
            Schema::Ref { name } => self.records.get(name.name()),
            Schema::Union(u) => u.variants().iter().find_map(|v| self.record_of(v)),
            _ => None,
        }
    }

    /// Decodes one event payload delivered on `channel` with `replay_id`.
    pub fn decode(&self, channel: &str, replay_id: i64, payload: &[u8]) -> Result<ChangeEvent, String> {
        let reader = apache_avro::reader::datum::GenericDatumReader::builder(&self.schema).build().map_err(|e| e.to_string())?;
        let value = reader.read_value(&mut &payload[..]).map_err(|e| format!("event on {channel} (schema {}): {e}", self.id))?;
        let Avro::Record(values) = value else { return Err(format!("event on {channel} is not a record")) };
        let top = self.top();
        let header = values
            .iter()
            .find(|(k, _)| k == "ChangeEventHeader")
            .map(|(_, v)| unwrap_union(v))
            .ok_or_else(|| format!("event on {channel} has no ChangeEventHeader"))?;
        let h = header_fields(header);
        let text = |k: &str| match h.get(k).map(|v| unwrap_union(v)) {
            Some(Avro::String(s)) | Some(Avro::Enum(_, s)) => s.clone(),
            _ => String::new(),
        };
        let num = |k: &str| match h.get(k).map(|v| unwrap_union(v)) {
            Some(Avro::Long(n)) => *n,
            Some(Avro::Int(n)) => i64::from(*n),
            _ => 0,
        };
        let list = |k: &str| match h.get(k).map(|v| unwrap_union(v)) {
            Some(Avro::Array(a)) => a
                .iter()
                .filter_map(|s| match unwrap_union(s) {
                    Avro::String(s) => Some(s.clone()),
                    _ => None,
                })
                .collect(),
            _ => vec![],
        };
        let change_type = ChangeType::parse(&text("changeType"));
        let changed = self.names(top, &list("changedFields"))?;
        let nulled = self.names(top, &list("nulledFields"))?;
        let diff = self.names(top, &list("diffFields"))?;
        let mut fields = Map::new();
        for (i, (name, v)) in values.iter().enumerate() {
            if name == "ChangeEventHeader" {
                continue;
            }
            let field = &top.fields[i];
            let v = unwrap_union(v);
            if change_type != ChangeType::Update {
                if let Some(j) = self.json(field, v) {
                    if !j.is_null() {
                        fields.insert(name.clone(), j);
                    }
                }
                continue;
            }
            let parts: Vec<&str> =
                changed.iter().chain(&nulled).filter_map(|c| c.split_once('.').filter(|(p, _)| p == name).map(|(_, part)| part)).collect();
            if !parts.is_empty() {
                let mut obj = Map::new();
                let inner = match v {
                    Avro::Record(r) => r.as_slice(),
                    _ => &[],
                };
                let rec = self.record_of(&field.schema);
                for part in parts {
                    let pv = inner.iter().find(|(k, _)| k == part).map(|(_, pv)| unwrap_union(pv));
                    let pf = rec.and_then(|r| r.fields.iter().find(|f| f.name == part));
                    let j = match (pv, pf) {
                        (Some(pv), Some(pf)) => self.json(pf, pv).unwrap_or(Value::Null),
                        _ => Value::Null,
                    };
                    obj.insert(part.to_string(), j);
                }
                fields.insert(name.clone(), Value::Object(obj));
            } else if changed.iter().chain(&nulled).any(|c| c == name) {
                fields.insert(name.clone(), self.json(field, v).unwrap_or(Value::Null));
            }
        }
        let header = ChangeEventHeader {
            entity_name: text("entityName"),
            record_ids: list("recordIds"),
            change_type,
            changed_fields: changed,
            nulled_fields: nulled,
            diff_fields: diff,
            commit_timestamp: num("commitTimestamp"),
            commit_number: num("commitNumber"),
            commit_user: text("commitUser"),
            transaction_key: text("transactionKey"),
            sequence_number: num("sequenceNumber"),
            change_origin: text("changeOrigin"),
        };
        Ok(ChangeEvent { channel: channel.to_string(), replay_id, schema: self.id.clone(), header, fields })
    }

    /// Bitmap entries (`0x…`, `N-0x…`) as field names, in the schema's field order as CometD
    /// lists them (a compound's parts at its place); plain names pass as they are.
    pub fn names(&self, top: &RecordSchema, entries: &[String]) -> Result<Vec<String>, String> {
        // (top-level position, position in the compound + 1 (0: the field itself), name)
        let mut out: Vec<(usize, usize, String)> = vec![];
        let mut compounds: Vec<usize> = vec![];
        for e in entries {
            if let Some((parent, bits)) = e.split_once('-') {
                let i: usize = parent.parse().map_err(|_| format!("bad field bitmap {e:?}"))?;
                let field = top.fields.get(i).ok_or_else(|| format!("field bitmap {e:?} names field {i}, beyond the schema"))?;
                let rec = self.record_of(&field.schema).ok_or_else(|| format!("field bitmap {e:?}: {} is not compound", field.name))?;
                for j in bits_set(bits).ok_or_else(|| format!("bad field bitmap {e:?}"))? {
                    let part = rec.fields.get(j).ok_or_else(|| format!("field bitmap {e:?} names part {j}, beyond the schema"))?;
                    out.push((i, j + 1, format!("{}.{}", field.name, part.name)));
                }
                compounds.push(i);
            } else if e.starts_with("0x") {
                for i in bits_set(e).ok_or_else(|| format!("bad field bitmap {e:?}"))? {
                    let field = top.fields.get(i).ok_or_else(|| format!("field bitmap {e:?} names field {i}, beyond the schema"))?;
                    out.push((i, 0, field.name.clone()));
                }
            } else {
                out.push((usize::MAX, out.len(), e.clone()));
            }
        }
        // A compound whose parts are listed is named by its parts only, as CometD does.
        out.retain(|(i, j, _)| *j != 0 || !compounds.contains(i));
        out.sort_by_key(|(i, j, _)| (*i, *j));
        Ok(out.into_iter().map(|(_, _, n)| n).collect())
    }

    /// A field's value as CometD's JSON has it; None for the header and unknown kinds.
    fn json(&self, field: &RecordField, v: &Avro) -> Option<Value> {
        let doc = field.doc.as_deref().unwrap_or_default();
        // `Data:DateTime`, `Audit:datetime`, ...: Salesforce's field type after the last colon.
        let kind = doc.rsplit(':').next().unwrap_or_default().to_ascii_lowercase();
        Some(match v {
            Avro::Null => Value::Null,
            Avro::Boolean(b) => Value::Bool(*b),
            Avro::String(s) | Avro::Enum(_, s) => Value::String(s.clone()),
            Avro::TimestampMillis(ms) => Value::String(datetime(*ms)?),
            Avro::Long(ms) if kind == "datetime" => Value::String(datetime(*ms)?),
            // A date as epoch milliseconds at midnight UTC, or as days (the logical type).
            Avro::Long(ms) if kind == "date" => Value::String(date(i32::try_from(ms.div_euclid(86_400_000)).ok()?)?),
            Avro::Date(d) => Value::String(date(*d)?),
            Avro::Int(d) if kind == "date" => Value::String(date(*d)?),
            Avro::Int(n) => Value::from(*n),
            Avro::Long(n) => Value::from(*n),
            Avro::Float(f) => serde_json::Number::from_f64(f64::from(*f)).map(Value::Number)?,
            Avro::Double(f) => serde_json::Number::from_f64(*f).map(Value::Number)?,
            Avro::Union(_, inner) => return self.json(field, inner),
            Avro::Record(parts) => {
                let rec = self.record_of(&field.schema)?;
                let mut obj = Map::new();
                for (pf, (k, pv)) in rec.fields.iter().zip(parts) {
                    let j = self.json(pf, unwrap_union(pv))?;
                    if !j.is_null() {
                        obj.insert(k.clone(), j);
                    }
                }
                if obj.is_empty() {
                    Value::Null
                } else {
                    Value::Object(obj)
                }
            }
            Avro::Array(a) => Value::Array(a.iter().filter_map(|x| self.json(field, x)).collect()),
            _ => return None,
        })
    }
}

fn collect(s: &Schema, out: &mut HashMap<String, RecordSchema>) {
    match s {
        Schema::Record(r) => {
            out.entry(r.name.name().to_string()).or_insert_with(|| r.clone());
            for f in &r.fields {
                collect(&f.schema, out);
            }
        }
        Schema::Union(u) => u.variants().iter().for_each(|v| collect(v, out)),
        Schema::Array(a) => collect(&a.items, out),
        Schema::Map(m) => collect(&m.types, out),
        _ => {}
    }
}

fn unwrap_union(v: &Avro) -> &Avro {
    match v {
        Avro::Union(_, inner) => unwrap_union(inner),
        other => other,
    }
}

fn header_fields(v: &Avro) -> HashMap<&str, &Avro> {
    match v {
        Avro::Record(r) => r.iter().map(|(k, v)| (k.as_str(), v)).collect(),
        _ => HashMap::new(),
    }
}

/// The indexes of the set bits of a `0x…` bitmap, lowest first (bit i of the number).
pub fn bits_set(hex: &str) -> Option<Vec<usize>> {
    let digits = hex.strip_prefix("0x")?;
    let mut out = vec![];
    for (pos, c) in digits.chars().rev().enumerate() {
        let d = c.to_digit(16)? as usize;
        for b in 0..4 {
            if d & (1 << b) != 0 {
                out.push(pos * 4 + b);
            }
        }
    }
    Some(out)
}

fn datetime(ms: i64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()?;
    t.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z")).ok()
}

fn date(days: i32) -> Option<String> {
    let d = time::Date::from_julian_day(2_440_588 + days).ok()?;
    d.format(time::macros::format_description!("[year]-[month]-[day]")).ok()
}
