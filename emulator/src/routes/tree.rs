//! `POST composite/tree/{Object}`: record trees (a parent with its children through child
//! relationships, up to 5 levels, 200 records) created all or nothing; `referenceId`s name the
//! records in the result. What `sf data import tree` sends.

use super::{json, json_body, Api, LockFault, St};
use crate::errors::{ApiError, RecError};
use crate::schema::Schema;
use crate::write::{parse_body, Writer};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::Extension;
use serde_json::{json, Map, Value};
use std::collections::HashSet;

const MAX_RECORDS: usize = 200;
const MAX_DEPTH: usize = 5;

/// The child relationship `name` of `parent`: (child object, its lookup field's name).
fn child_relationship(schema: &Schema, parent: usize, name: &str) -> Option<(usize, String)> {
    let pname = &schema.objects[parent].name;
    schema.objects.iter().enumerate().find_map(|(o, def)| {
        def.fields.iter().find_map(|fd| {
            let rel = fd.child_relationship.as_deref()?;
            (rel.eq_ignore_ascii_case(name) && fd.reference_to.iter().any(|r| r == pname)).then(|| (o, fd.name.clone()))
        })
    })
}

fn count(records: &[Value], depth: usize) -> Result<usize, ApiError> {
    if depth > MAX_DEPTH {
        return Err(ApiError::bad("INVALID_INPUT", format!("A record tree can be at most {MAX_DEPTH} levels deep")));
    }
    let mut n = 0;
    for r in records {
        n += 1;
        if let Some(o) = r.as_object() {
            for v in o.values() {
                if let Some(children) = v.get("records").and_then(Value::as_array) {
                    n += count(children, depth + 1)?;
                }
            }
        }
    }
    Ok(n)
}

struct Run<'w, 'a> {
    w: &'w mut Writer<'a>,
    schema: &'a Schema,
    seen: HashSet<String>,
    results: Vec<Value>,
    errors: Vec<Value>,
}

impl Run<'_, '_> {
    /// Creates `r` (of `expected` type) and then its children, `parent` = (lookup field, id).
    fn record(&mut self, r: &Value, expected: usize, parent: Option<(&str, &str)>) -> Result<(), ApiError> {
        let Some(map) = r.as_object() else {
            return Err(ApiError::bad("JSON_PARSER_ERROR", "Cannot deserialize instance of sObject"));
        };
        let attrs = map.get("attributes");
        let reference = attrs.and_then(|a| a.get("referenceId")).and_then(Value::as_str).unwrap_or("").to_string();
        let ty = attrs.and_then(|a| a.get("type")).and_then(Value::as_str).unwrap_or("");
        let fail = |errors: &mut Vec<Value>, e: Vec<RecError>| errors.push(json!({"referenceId": reference, "errors": e}));
        if reference.is_empty() {
            fail(&mut self.errors, vec![RecError::new("INVALID_INPUT", "Include a reference ID for each record in the request.", vec![])]);
            return Ok(());
        }
        if !self.seen.insert(reference.to_ascii_lowercase()) {
            fail(
                &mut self.errors,
                vec![RecError::new("INVALID_INPUT", format!("Duplicate ReferenceId provided in the request: {reference}"), vec![])],
            );
            return Ok(());
        }
        let def = &self.schema.objects[expected];
        if !ty.eq_ignore_ascii_case(&def.name) {
            fail(
                &mut self.errors,
                vec![RecError::new("INVALID_TYPE", format!("The record type '{ty}' does not match '{}'.", def.name), vec![])],
            );
            return Ok(());
        }
        let mut own = Map::new();
        let mut children = vec![];
        for (k, v) in map {
            match v.get("records").and_then(Value::as_array) {
                Some(list) if k != "attributes" => {
                    let Some((cobj, field)) = child_relationship(self.schema, expected, k) else {
                        return Err(ApiError::bad(
                            "INVALID_FIELD",
                            format!("No such column '{k}' on entity '{}'. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name.", def.name),
                        ));
                    };
                    children.push((cobj, field, list));
                }
                _ => {
                    own.insert(k.clone(), v.clone());
                }
            }
        }
        if let Some((field, id)) = parent {
            own.insert(field.to_string(), Value::String(id.to_string()));
        }
        let parsed = parse_body(def, &own)?;
        match self.w.create(expected, &parsed) {
            Ok(id) => {
                self.results.push(json!({"referenceId": reference, "id": id}));
                for (cobj, field, list) in children {
                    for c in list {
                        self.record(c, cobj, Some((&field, &id)))?;
                    }
                }
            }
            Err(e) => fail(&mut self.errors, e),
        }
        Ok(())
    }
}

pub async fn create(State(st): St, api: Api, lock: Option<Extension<LockFault>>, body: Bytes) -> Result<Response, ApiError> {
    let obj = super::rest::object_idx(&st, api.param("object"))?;
    let v = json_body(&body)?;
    let Some(records) = v.get("records").and_then(Value::as_array) else {
        return Err(ApiError::bad("INVALID_INPUT", "No records provided: 'records' must be an array of sObjects"));
    };
    if count(records, 1)? > MAX_RECORDS {
        return Err(ApiError::bad("INVALID_INPUT", format!("A request can contain at most {MAX_RECORDS} records")));
    }
    let rules = st.rules.read();
    let mut store = st.store.write();
    let mut w = Writer::new(&st.schema, &mut store, &rules, &st.clock, &st.user_id);
    w.lock_fault = lock.is_some_and(|l| l.0 .0);
    let mut run = Run { w: &mut w, schema: &st.schema, seen: HashSet::new(), results: vec![], errors: vec![] };
    for r in records {
        if let Err(e) = run.record(r, obj, None) {
            run.w.rollback();
            return Err(e);
        }
    }
    if !run.errors.is_empty() {
        run.w.rollback();
        return Ok(json(StatusCode::BAD_REQUEST, json!({"hasErrors": true, "results": run.errors})));
    }
    Ok(json(StatusCode::CREATED, json!({"hasErrors": false, "results": run.results})))
}
