//! Change events on the Pub/Sub API: an object's change event Avro schema (the documented CDC
//! shape) and one event's Avro binary payload, with `changedFields`/`nulledFields` as bitmaps.
//!
//! The schema: a record `<Object>ChangeEvent` (namespace `com.sforce.eventbus`) whose field 0 is
//! `ChangeEventHeader` and whose other fields are the object's fields in describe order, each a
//! union `["null", type]` defaulting to null; compound fields (addresses, a person's `Name`) are
//! nested records of their parts. Datetimes and dates are longs (epoch ms), as Salesforce sends
//! them on this transport. Field positions in this schema are what the bitmaps number.

use crate::cdc::{slot, Event, Slot};
use crate::schema::{FieldType, ObjectDef};
use crate::value::Value;
use apache_avro::types::Value as Av;
use serde_json::{json, Value as Json};

const NS: &str = "com.sforce.eventbus";
const CHANGE_TYPES: [&str; 10] =
    ["CREATE", "UPDATE", "DELETE", "UNDELETE", "GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW", "SNAPSHOT"];

#[derive(Clone, Copy)]
enum Ty {
    Bool,
    Int,
    Double,
    /// Epoch milliseconds (dates at midnight UTC).
    Long,
    Str,
}

impl Ty {
    fn of(t: FieldType) -> Ty {
        match t {
            FieldType::Boolean => Ty::Bool,
            FieldType::Int => Ty::Int,
            FieldType::Double | FieldType::Currency | FieldType::Percent => Ty::Double,
            FieldType::Date | FieldType::DateTime => Ty::Long,
            _ => Ty::Str,
        }
    }
    fn avro(self) -> &'static str {
        match self {
            Ty::Bool => "boolean",
            Ty::Int => "int",
            Ty::Double => "double",
            Ty::Long => "long",
            Ty::Str => "string",
        }
    }
    fn doc(t: FieldType) -> String {
        format!("Data:{}", t.api_name())
    }
    /// The value as this Avro type (None: null).
    fn value(self, v: &Value) -> Option<Av> {
        Some(match (self, v) {
            (_, Value::Null) => return None,
            (Ty::Bool, Value::Bool(b)) => Av::Boolean(*b),
            (Ty::Int, v) => Av::Int(v.num()? as i32),
            (Ty::Double, v) => Av::Double(v.num()?),
            (Ty::Long, Value::Date(d)) => Av::Long(*d as i64 * 86_400_000),
            (Ty::Long, Value::DateTime(ms)) => Av::Long(*ms),
            (Ty::Str, v) => Av::String(v.display()),
            _ => return None,
        })
    }
}

/// A top-level field of the event: one of the object's fields, or a compound of several.
enum Col {
    Plain { name: String, fi: usize, ty: Ty },
    Compound { name: String, parts: Vec<(String, usize, Ty)> },
}

/// One object's change event schema, as of one version of its fields.
pub struct EventSchema {
    pub id: String,
    pub json: String,
    schema: apache_avro::Schema,
    entity: String,
    cols: Vec<Col>,
    /// Per field of the object: its top-level position (1-based; 0 is the header) and, inside
    /// a compound field, its position there.
    place: Vec<Option<(usize, Option<usize>)>>,
}

fn header_schema() -> Json {
    let strs = json!({"type": "array", "items": "string"});
    json!({"type": "record", "name": "ChangeEventHeader", "namespace": NS, "fields": [
        {"name": "entityName", "type": "string"},
        {"name": "recordIds", "type": strs},
        {"name": "changeType", "type": {"type": "enum", "name": "ChangeType", "namespace": NS, "symbols": CHANGE_TYPES}},
        {"name": "changeOrigin", "type": "string"},
        {"name": "transactionKey", "type": "string"},
        {"name": "sequenceNumber", "type": "int"},
        {"name": "commitTimestamp", "type": "long"},
        {"name": "commitNumber", "type": "long"},
        {"name": "commitUser", "type": "string"},
        {"name": "nulledFields", "type": strs},
        {"name": "diffFields", "type": strs},
        {"name": "changedFields", "type": strs},
    ]})
}

impl EventSchema {
    /// The schema of `def`'s change events; `id` is the schema ID the CDC hub gives that shape.
    pub fn new(def: &ObjectDef, id: &str) -> Result<EventSchema, String> {
        let mut cols: Vec<Col> = vec![];
        let mut place = vec![None; def.fields.len()];
        for (fi, fd) in def.fields.iter().enumerate() {
            let ty = Ty::of(fd.ftype);
            match slot(def, fi) {
                Slot::Skip => {}
                Slot::Plain(n) => {
                    cols.push(Col::Plain { name: n.to_string(), fi, ty });
                    place[fi] = Some((cols.len(), None));
                }
                Slot::Part(c, p) => {
                    let at = cols.iter().position(|col| matches!(col, Col::Compound { name, .. } if *name == c));
                    let at = at.unwrap_or_else(|| {
                        cols.push(Col::Compound { name: c, parts: vec![] });
                        cols.len() - 1
                    });
                    if let Col::Compound { parts, .. } = &mut cols[at] {
                        parts.push((p, fi, ty));
                        place[fi] = Some((at + 1, Some(parts.len() - 1)));
                    }
                }
            }
        }
        let mut fields = vec![json!({"name": "ChangeEventHeader", "type": header_schema(), "doc": "Data:ChangeEventHeader"})];
        // Named record types, defined once: Billing and Shipping addresses share `Address`.
        let mut named: Vec<(String, Vec<String>)> = vec![];
        for col in &cols {
            match col {
                Col::Plain { name, fi, ty } => fields.push(json!({
                    "name": name, "type": ["null", ty.avro()], "doc": Ty::doc(def.fields[*fi].ftype), "default": null
                })),
                Col::Compound { name, parts } => {
                    let type_name = if name.ends_with("Address") { "Address".to_string() } else { name.clone() };
                    let part_names: Vec<String> = parts.iter().map(|p| p.0.clone()).collect();
                    let ty = match named.iter().find(|(n, _)| *n == type_name) {
                        Some((_, same)) if *same == part_names => json!(format!("{NS}.{type_name}")),
                        found => {
                            let type_name = if found.is_some() { name.clone() } else { type_name };
                            named.push((type_name.clone(), part_names));
                            let inner: Vec<Json> =
                                parts.iter().map(|(p, _, t)| json!({"name": p, "type": ["null", t.avro()], "default": null})).collect();
                            json!({"type": "record", "name": type_name, "namespace": NS, "fields": inner})
                        }
                    };
                    fields.push(json!({"name": name, "type": ["null", ty], "doc": "Data:Compound", "default": null}));
                }
            }
        }
        let json = json!({"type": "record", "name": crate::cdc::channel_name(def), "namespace": NS, "fields": fields}).to_string();
        let schema = apache_avro::Schema::parse_str(&json).map_err(|e| format!("{} change event schema: {e}", def.name))?;
        Ok(EventSchema { id: id.to_string(), json, schema, entity: def.name.clone(), cols, place })
    }

    /// The event's Avro binary payload. `ev` must have been committed with this schema's shape.
    pub fn encode(&self, ev: &Event) -> Result<Vec<u8>, String> {
        let update = ev.change_type == "UPDATE";
        // Which of the object's fields carry a value: UPDATE, the changed ones (null when
        // nulled); CREATE/UNDELETE, every non-null one; deletes and gaps, none.
        let mut vals: Vec<Option<Av>> = (0..self.cols.len()).map(|_| None).collect();
        let mut parts: Vec<Vec<Option<Av>>> = self
            .cols
            .iter()
            .map(|c| match c {
                Col::Compound { parts, .. } => (0..parts.len()).map(|_| None).collect(),
                Col::Plain { .. } => vec![],
            })
            .collect();
        let (mut changed, mut nulled) = (Bitmaps::default(), Bitmaps::default());
        if let Some(rec) = &ev.snapshot {
            let fields: Vec<usize> =
                if update { ev.changed.iter().map(|&f| f as usize).collect() } else { (0..self.place.len()).collect() };
            for fi in fields {
                let Some(Some((pos, part))) = self.place.get(fi) else { continue };
                let ty = match &self.cols[pos - 1] {
                    Col::Plain { ty, .. } => *ty,
                    Col::Compound { parts, .. } => parts[part.unwrap_or(0)].2,
                };
                let v = ty.value(rec.get(fi));
                if update {
                    changed.set(*pos, *part);
                    if v.is_none() {
                        nulled.set(*pos, *part);
                    }
                }
                match part {
                    None => vals[pos - 1] = v,
                    Some(p) => {
                        parts[pos - 1][*p] = v;
                        // A compound field is present once any part is.
                        vals[pos - 1] = Some(Av::Null);
                    }
                }
            }
        }
        let t = &ev.txn;
        let strs = |v: Vec<String>| Av::Array(v.into_iter().map(Av::String).collect());
        let kind = CHANGE_TYPES.iter().position(|c| *c == ev.change_type).unwrap_or(0);
        let header = Av::Record(vec![
            ("entityName".into(), Av::String(self.entity.clone())),
            ("recordIds".into(), strs(ev.record_ids.clone())),
            ("changeType".into(), Av::Enum(kind as u32, CHANGE_TYPES[kind].into())),
            ("changeOrigin".into(), Av::String(t.origin.clone())),
            ("transactionKey".into(), Av::String(t.key.clone())),
            ("sequenceNumber".into(), Av::Int(ev.seq as i32)),
            ("commitTimestamp".into(), Av::Long(t.commit_ms)),
            ("commitNumber".into(), Av::Long(t.number)),
            ("commitUser".into(), Av::String(t.user.clone())),
            ("nulledFields".into(), strs(nulled.render())),
            ("diffFields".into(), strs(vec![])),
            ("changedFields".into(), strs(changed.render())),
        ]);
        let mut record = vec![("ChangeEventHeader".to_string(), header)];
        for ((col, v), ps) in self.cols.iter().zip(vals).zip(parts) {
            let (name, v) = match col {
                Col::Plain { name, .. } => (name, v),
                Col::Compound { name, parts: defs } => {
                    let inner = defs.iter().zip(ps).map(|((p, _, _), v)| (p.clone(), union(v))).collect();
                    (name, v.map(|_| Av::Record(inner)))
                }
            };
            record.push((name.clone(), union(v)));
        }
        let writer = apache_avro::writer::datum::GenericDatumWriter::builder(&self.schema).build().map_err(|e| e.to_string())?;
        writer.write_value_to_vec(Av::Record(record)).map_err(|e| e.to_string())
    }
}

fn union(v: Option<Av>) -> Av {
    match v {
        None => Av::Union(0, Box::new(Av::Null)),
        Some(v) => Av::Union(1, Box::new(v)),
    }
}

/// Salesforce's bitmap field encoding: `0x…` over the top-level field positions (bit n is the
/// field at position n), then `N-0x…` for the parts of compound field N that are set.
#[derive(Default)]
pub struct Bitmaps {
    top: Vec<usize>,
    nested: Vec<(usize, Vec<usize>)>,
}

impl Bitmaps {
    pub fn set(&mut self, pos: usize, part: Option<usize>) {
        match part {
            None => self.top.push(pos),
            Some(p) => match self.nested.iter_mut().find(|(n, _)| *n == pos) {
                Some((_, bits)) => bits.push(p),
                None => self.nested.push((pos, vec![p])),
            },
        }
    }
    pub fn render(mut self) -> Vec<String> {
        let mut out = vec![];
        if !self.top.is_empty() {
            out.push(hex(&self.top));
        }
        self.nested.sort_by_key(|(n, _)| *n);
        for (n, bits) in &self.nested {
            out.push(format!("{n}-{}", hex(bits)));
        }
        out
    }
}

/// `0x` and the bits as a big-endian number, whole bytes, upper-case (`0x650004E0`, `0x06`).
fn hex(bits: &[usize]) -> String {
    let top = bits.iter().copied().max().unwrap_or(0);
    let mut bytes = vec![0u8; top / 8 + 1];
    for &b in bits {
        let i = bytes.len() - 1 - b / 8;
        bytes[i] |= 1 << (b % 8);
    }
    let mut s = String::from("0x");
    for b in bytes {
        s.push_str(&format!("{b:02X}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitmaps_as_salesforce_writes_them() {
        let mut b = Bitmaps::default();
        for p in [5, 6, 7, 10, 24, 26, 29, 30] {
            b.set(p, None);
        }
        b.set(7, Some(1));
        b.set(7, Some(2));
        b.set(4, Some(4));
        assert_eq!(b.render(), ["0x650004E0", "4-0x10", "7-0x06"]);
        assert!(Bitmaps::default().render().is_empty());
    }

    #[test]
    fn account_schema_parses_with_shared_address_type() {
        let schema = crate::schema::standard::default_schema();
        let a = schema.object("Account").unwrap();
        let s = EventSchema::new(&schema.objects[a], "x").unwrap();
        let j: Json = serde_json::from_str(&s.json).unwrap();
        assert_eq!(j["name"], "AccountChangeEvent");
        assert_eq!(j["fields"][0]["name"], "ChangeEventHeader");
        let fields = j["fields"].as_array().unwrap();
        let billing = fields.iter().find(|f| f["name"] == "BillingAddress").unwrap();
        assert_eq!(billing["type"][1]["name"], "Address");
        let shipping = fields.iter().find(|f| f["name"] == "ShippingAddress").unwrap();
        assert_eq!(shipping["type"][1], "com.sforce.eventbus.Address");
    }
}
