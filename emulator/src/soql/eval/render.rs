//! Result rows as JSON: selected fields (compound addresses assembled from their parts), parent
//! objects as nested records, child subqueries as nested `{totalSize, done, records}`.

use super::plan::Plan;
use super::relationships::Col;
use crate::out::{attributes, Out};
use crate::schema::{Derived, ObjectDef, Schema};
use crate::store::{Record, Store};
use serde_json::{json, Value as Json};

/// A field's JSON value, computing compound addresses from their parts.
pub fn field_json(def: &ObjectDef, rec: &Record, fi: usize) -> Json {
    let fd = &def.fields[fi];
    if let Derived::Address(prefix) = &fd.derived {
        let part = |n: &str| def.field(&format!("{prefix}{n}")).map(|i| rec.get(i).to_json()).unwrap_or(Json::Null);
        let parts = ["City", "Country", "PostalCode", "State", "Street"].map(part);
        if parts.iter().all(Json::is_null) {
            return Json::Null;
        }
        let [city, country, postal, state, street] = parts;
        return json!({"city": city, "country": country, "geocodeAccuracy": null, "latitude": null,
                      "longitude": null, "postalCode": postal, "state": state, "street": street});
    }
    rec.get(fi).to_json()
}

fn render_cols(cols: &[Col], schema: &Schema, store: &Store, obj: usize, rec: &Record, version: &str) -> Vec<(String, Out)> {
    let def = &schema.objects[obj];
    let mut out = vec![("attributes".to_string(), attributes(&def.name, version, rec.get(0).as_str().unwrap_or("")))];
    for c in cols {
        match c {
            Col::Field { name, fields } => {
                let v = fields.iter().find(|(o, _)| *o == obj).map(|&(_, fi)| field_json(def, rec, fi)).unwrap_or(Json::Null);
                out.push((name.clone(), Out::J(v)));
            }
            Col::Rel { name, fields, children } => {
                let parent =
                    fields.iter().find(|(o, _)| *o == obj).and_then(|&(_, fi)| rec.get(fi).as_str()).and_then(|id| store.find(schema, id));
                let v = match parent {
                    Some((po, seq)) => Out::O(render_cols(children, schema, store, po, &store.tables[po].recs[&seq], version)),
                    None => Out::J(Json::Null),
                };
                out.push((name.clone(), v));
            }
            Col::Child { name, obj: cobj, field, plan } => {
                let id = rec.get(0).as_str().unwrap_or("");
                let table = &store.tables[*cobj];
                let seqs = super::select(plan, schema, store, false, table.recs.iter().filter(|(_, r)| r.get(*field).as_str() == Some(id)));
                let v = if seqs.is_empty() {
                    Out::J(Json::Null)
                } else {
                    let records: Vec<Out> = seqs
                        .iter()
                        .filter_map(|s| table.recs.get(s))
                        .map(|r| Out::O(render_cols(&plan.cols, schema, store, *cobj, r, version)))
                        .collect();
                    Out::O(vec![
                        ("totalSize".into(), Out::J(json!(records.len()))),
                        ("done".into(), Out::J(Json::Bool(true))),
                        ("records".into(), Out::A(records)),
                    ])
                };
                out.push((name.clone(), v));
            }
        }
    }
    out
}

/// One result row, or None if the record vanished since the query ran.
pub fn render(plan: &Plan, schema: &Schema, store: &Store, seq: u64, version: &str) -> Option<Out> {
    let rec = store.tables[plan.obj].recs.get(&seq)?;
    Some(Out::O(render_cols(&plan.cols, schema, store, plan.obj, rec, version)))
}
