//! Record saves with Salesforce's validation order and error codes. A `Writer` runs under the
//! store's write lock and keeps an undo log so allOrNone requests can roll back.

use crate::clock::Clock;
use crate::errors::{ApiError, RecError};
use crate::ids;
use crate::rules::{holds, Rules};
use crate::schema::{Derived, FieldType, ObjectDef, Schema};
use crate::store::{is_deleted, Record, Store};
use crate::value::{from_json, Coerce, Value};
use serde_json::{Map, Value as Json};

/// A request body converted to typed values, before any record-level checks.
#[derive(Default, Debug)]
pub struct Parsed {
    pub values: Vec<(usize, Value)>,
    /// Record-level conversion failures (INVALID_TYPE_ON_FIELD_IN_RECORD, ...).
    pub errors: Vec<RecError>,
    /// `Id` from the body, for collection updates.
    pub id: Option<String>,
}

/// Phase 1: field names and JSON types. Failures here fail the whole request, as in Salesforce
/// (its JSON deserializer rejects the body before any record is looked at).
pub fn parse_body(def: &ObjectDef, body: &Map<String, Json>) -> Result<Parsed, ApiError> {
    let mut p = Parsed::default();
    for (k, v) in body {
        if k == "attributes" {
            continue;
        }
        let Some(fi) = def.field(k) else {
            return Err(ApiError::no_such_column(k, &def.name));
        };
        let fd = &def.fields[fi];
        if fd.ftype == FieldType::Id {
            p.id = v.as_str().map(str::to_string);
            continue;
        }
        match from_json(fd, v) {
            Ok(val) => p.values.push((fi, val)),
            Err(Coerce::Parser(msg)) => return Err(ApiError::bad("JSON_PARSER_ERROR", msg)),
            Err(Coerce::Type(msg)) => p.errors.push(RecError::new("INVALID_TYPE_ON_FIELD_IN_RECORD", msg, vec![fd.name.clone()])),
        }
    }
    Ok(p)
}

pub enum UpsertError {
    Errors(Vec<RecError>),
    /// More than one record has the key: the matching record URLs' IDs.
    Multiple(Vec<String>),
}

pub struct Writer<'a> {
    pub schema: &'a Schema,
    pub store: &'a mut Store,
    pub rules: &'a Rules,
    pub clock: &'a Clock,
    pub user_id: &'a str,
    /// An injected `lock` fault: every save fails with UNABLE_TO_LOCK_ROW.
    pub lock_fault: bool,
    /// Emit change events for this writer's saves when it is dropped (default true).
    pub change_events: bool,
    undo: Vec<(usize, u64, Option<Record>)>,
    /// The user ID as a shared value, cloned into every audit field.
    me: Value,
}

fn one(code: &str, msg: impl Into<String>, fields: Vec<String>) -> Vec<RecError> {
    vec![RecError::new(code, msg, fields)]
}

impl<'a> Writer<'a> {
    pub fn new(schema: &'a Schema, store: &'a mut Store, rules: &'a Rules, clock: &'a Clock, user_id: &'a str) -> Self {
        Writer { schema, store, rules, clock, user_id, lock_fault: false, change_events: true, undo: vec![], me: Value::str(user_id) }
    }

    /// Undoes every save this writer made, newest first.
    pub fn rollback(&mut self) {
        while let Some((obj, seq, old)) = self.undo.pop() {
            let def = &self.schema.objects[obj];
            match old {
                Some(r) => {
                    self.store.tables[obj].put(def, seq, r);
                }
                None => {
                    self.store.tables[obj].take(def, seq);
                }
            }
        }
    }

    fn save(&mut self, obj: usize, seq: u64, rec: Record) {
        let old = self.store.tables[obj].put(&self.schema.objects[obj], seq, rec);
        self.undo.push((obj, seq, old));
    }

    fn locked(&self, id: Option<&str>) -> Result<(), Vec<RecError>> {
        if self.lock_fault {
            let msg = match id {
                Some(id) => format!("unable to obtain exclusive access to this record or 1 records: {id}"),
                None => "unable to obtain exclusive access to this record".into(),
            };
            return Err(one("UNABLE_TO_LOCK_ROW", msg, vec![]));
        }
        Ok(())
    }

    /// Checks and normalizes one value for its field (length, picklist, ranges, references).
    fn check_value(&self, def: &ObjectDef, fi: usize, v: &mut Value) -> Result<(), RecError> {
        let fd = &def.fields[fi];
        let field = || vec![fd.name.clone()];
        match (fd.ftype, &*v) {
            (_, Value::Null) => Ok(()),
            (FieldType::Reference, Value::Str(s)) => {
                let Some(id) = ids::normalize(s) else {
                    return Err(RecError::new("MALFORMED_ID", format!("{}: id value of incorrect type: {s}", fd.label), field()));
                };
                let target_ok =
                    fd.reference_to.iter().any(|r| self.schema.object(r).is_some_and(|o| self.schema.objects[o].key_prefix == id[..3]));
                if !target_ok {
                    return Err(RecError::new(
                        "FIELD_INTEGRITY_EXCEPTION",
                        format!("{}: id value of incorrect type: {id}", fd.label),
                        field(),
                    ));
                }
                match self.store.find(self.schema, &id) {
                    None => Err(RecError::new("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", field())),
                    Some((o, seq)) if is_deleted(&self.schema.objects[o], &self.store.tables[o].recs[&seq]) => {
                        Err(RecError::new("ENTITY_IS_DELETED", "entity is deleted", field()))
                    }
                    Some(_) => {
                        *v = Value::Str(id.into());
                        Ok(())
                    }
                }
            }
            (t, Value::Str(s)) if t.is_text() => {
                let n = s.chars().count() as u32;
                if n > fd.length {
                    return Err(RecError::new(
                        "STRING_TOO_LONG",
                        format!("{}: data value too large: {s} (max length={})", fd.label, fd.length),
                        field(),
                    ));
                }
                if fd.restricted_picklist {
                    let parts: Vec<&str> = if t == FieldType::MultiPicklist { s.split(';').collect() } else { vec![s] };
                    if let Some(bad) = parts.iter().find(|p| !fd.picklist.iter().any(|v| v == *p)) {
                        return Err(RecError::new(
                            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                            format!("{}: bad value for restricted picklist field: {bad}", fd.label),
                            field(),
                        ));
                    }
                }
                if t == FieldType::Email && !valid_email(s) {
                    return Err(RecError::new("INVALID_EMAIL_ADDRESS", format!("{}: invalid email address: {s}", fd.label), field()));
                }
                Ok(())
            }
            (FieldType::Int, Value::Int(i)) => {
                let max = 10f64.powi(fd.digits.max(1) as i32);
                if (*i as f64).abs() >= max {
                    return Err(out_of_range(&fd.label, &i.to_string(), field()));
                }
                Ok(())
            }
            (FieldType::Double | FieldType::Currency | FieldType::Percent, Value::Num(n)) => {
                // Salesforce rounds to the field's scale, then checks the integer digits.
                let factor = 10f64.powi(fd.scale as i32);
                let rounded = (n * factor).round() / factor;
                let max = 10f64.powi(fd.precision.saturating_sub(fd.scale).max(1) as i32);
                if rounded.abs() >= max {
                    return Err(out_of_range(&fd.label, &format!("{n:E}"), field()));
                }
                *v = Value::Num(rounded);
                Ok(())
            }
            (FieldType::Double | FieldType::Currency | FieldType::Percent, Value::Dec(d)) => {
                let rounded = d.round(fd.scale);
                if rounded.int_digits() > fd.precision.saturating_sub(fd.scale).max(1) {
                    return Err(out_of_range(&fd.label, &format!("{:E}", d.to_f64()), field()));
                }
                *v = Value::Dec(rounded);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// A new record before its values: the Id, defaults (false booleans, default picklist
    /// values) and the owner.
    fn blank(def: &ObjectDef, id: &str, owner: &Value) -> Record {
        let mut rec = Record::default();
        rec.set(0, Value::str(id));
        for (i, fd) in def.fields.iter().enumerate() {
            if fd.ftype == FieldType::Boolean {
                rec.set(i, Value::Bool(false));
            } else if let Some(d) = &fd.default_picklist {
                rec.set(i, Value::str(d));
            }
        }
        if let Some(o) = def.sys.owner {
            rec.set(o, owner.clone());
        }
        rec
    }

    fn derive(def: &ObjectDef, rec: &mut Record) {
        for (i, fd) in def.fields.iter().enumerate() {
            if fd.derived == Derived::FullName {
                let get = |n: &str| def.field(n).map(|f| rec.get(f).display()).unwrap_or_default();
                let full = format!("{} {}", get("FirstName"), get("LastName")).trim().to_string();
                rec.set(i, if full.is_empty() { Value::Null } else { Value::Str(full.into()) });
            }
        }
    }

    /// Required fields, value checks, validation rules and uniqueness for the record as saved.
    fn validate(&self, obj: usize, seq: u64, rec: &mut Record, changed: &[usize], creating: bool) -> Result<(), Vec<RecError>> {
        let def = &self.schema.objects[obj];
        let missing: Vec<String> = def
            .fields
            .iter()
            .enumerate()
            .filter(|(i, fd)| rec.get(*i).is_null() && if creating { fd.required_on_create() } else { !fd.nillable && changed.contains(i) })
            .map(|(_, fd)| fd.name.clone())
            .collect();
        if !missing.is_empty() {
            return Err(one("REQUIRED_FIELD_MISSING", format!("Required fields are missing: [{}]", missing.join(", ")), missing));
        }
        let mut errs = vec![];
        for &fi in changed {
            let mut v = rec.get(fi).clone();
            match self.check_value(def, fi, &mut v) {
                Ok(()) => rec.set(fi, v),
                Err(e) => errs.push(e),
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Self::derive(def, rec);
        for rule in self.rules.validations.iter().filter(|r| r.object.eq_ignore_ascii_case(&def.name)) {
            let Some(fi) = def.field(&rule.field) else { continue };
            if holds(rule.op, rec.get(fi), rule.value.as_ref()) {
                let fields = rule
                    .error_field
                    .as_ref()
                    .map(|f| vec![def.field(f).map(|i| def.fields[i].name.clone()).unwrap_or(f.clone())])
                    .unwrap_or_default();
                errs.push(RecError::new("FIELD_CUSTOM_VALIDATION_EXCEPTION", rule.message.clone(), fields));
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        for &fi in &def.indexed {
            let fd = &def.fields[fi];
            let v = rec.get(fi);
            if !fd.unique || v.is_null() {
                continue;
            }
            if let Some(other) = self.store.tables[obj].lookup(def, fi, v).into_iter().find(|s| *s != seq) {
                return Err(one(
                    "DUPLICATE_VALUE",
                    format!("duplicate value found: {} duplicates value on record with id: {}", fd.name, ids::mint(&def.key_prefix, other)),
                    vec![],
                ));
            }
        }
        Ok(())
    }

    fn stamp(&self, def: &ObjectDef, rec: &mut Record, creating: bool) {
        let now = Value::DateTime(self.clock.stamp());
        let me = self.me.clone();
        if creating {
            rec.set(def.sys.created_date, now.clone());
            rec.set(def.sys.created_by, me.clone());
        }
        rec.set(def.sys.last_modified_date, now.clone());
        rec.set(def.sys.last_modified_by, me);
        rec.set(def.sys.system_modstamp, now);
    }

    /// Runs matching automations on a just-saved record: a second update that bumps the stamps.
    fn automate(&mut self, obj: usize, seq: u64, changed: &[usize]) {
        let def = &self.schema.objects[obj];
        let mut rec = self.store.tables[obj].recs[&seq].clone();
        let mut fired = false;
        for a in self.rules.automations.iter().filter(|a| a.object.eq_ignore_ascii_case(&def.name)) {
            if let Some(w) = &a.when_field {
                let Some(wf) = def.field(w) else { continue };
                if !changed.contains(&wf) {
                    continue;
                }
                if let Some(want) = &a.when_value {
                    if !holds(crate::rules::RuleOp::Equals, rec.get(wf), Some(want)) {
                        continue;
                    }
                }
            }
            let Some(sf) = def.field(&a.set_field) else { continue };
            if let Ok(v) = from_json(&def.fields[sf], &a.value) {
                rec.set(sf, v);
                fired = true;
            }
        }
        if fired {
            Self::derive(def, &mut rec);
            self.stamp(def, &mut rec, false);
            self.save(obj, seq, rec);
        }
    }

    fn not_writable(def: &ObjectDef, values: &[(usize, Value)], creating: bool) -> Result<(), Vec<RecError>> {
        let bad: Vec<String> = values
            .iter()
            .map(|(fi, _)| &def.fields[*fi])
            .filter(|fd| if creating { !fd.createable } else { !fd.updateable })
            .map(|fd| fd.name.clone())
            .collect();
        if bad.is_empty() {
            return Ok(());
        }
        Err(one(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            format!(
                "Unable to create/update fields: {}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.",
                bad.join(", ")
            ),
            bad,
        ))
    }

    pub fn create(&mut self, obj: usize, p: &Parsed) -> Result<String, Vec<RecError>> {
        self.locked(None)?;
        let def = &self.schema.objects[obj];
        if !def.createable {
            return Err(one("INVALID_TYPE", format!("entity type cannot be inserted: {}", def.name), vec![]));
        }
        if p.id.is_some() {
            return Err(one("INVALID_FIELD", "cannot specify Id in an insert call", vec!["Id".into()]));
        }
        if !p.errors.is_empty() {
            return Err(p.errors.clone());
        }
        Self::not_writable(def, &p.values, true)?;
        let seq = self.store.next_seq();
        let id = ids::mint(&def.key_prefix, seq);
        let mut rec = Self::blank(def, &id, &self.me);
        let mut changed = vec![];
        for (fi, v) in &p.values {
            let v = if def.fields[*fi].ftype == FieldType::Boolean && v.is_null() { Value::Bool(false) } else { v.clone() };
            rec.set(*fi, v);
            changed.push(*fi);
        }
        self.validate(obj, seq, &mut rec, &changed, true)?;
        self.stamp(def, &mut rec, true);
        self.save(obj, seq, rec);
        self.automate(obj, seq, &changed);
        Ok(id)
    }

    /// Resolves an ID for `obj` to a live record's seq, with Salesforce's errors otherwise.
    pub fn live(&self, obj: usize, raw_id: &str) -> Result<(String, u64), RecError> {
        let def = &self.schema.objects[obj];
        let id =
            ids::normalize(raw_id).ok_or_else(|| RecError::new("MALFORMED_ID", format!("malformed id {raw_id}"), vec!["Id".into()]))?;
        if id[..3] != def.key_prefix {
            return Err(RecError::new("MALFORMED_ID", format!("{} ID: id value of incorrect type: {id}", def.label), vec!["Id".into()]));
        }
        let seq = ids::seq_of(&def.key_prefix, &id).filter(|s| self.store.tables[obj].recs.contains_key(s));
        match seq {
            None => Err(RecError::new("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", vec![])),
            Some(s) if is_deleted(def, &self.store.tables[obj].recs[&s]) => {
                Err(RecError::new("ENTITY_IS_DELETED", "entity is deleted", vec![]))
            }
            Some(s) => Ok((id, s)),
        }
    }

    pub fn update(&mut self, obj: usize, raw_id: &str, p: &Parsed) -> Result<String, Vec<RecError>> {
        let (id, seq) = self.live(obj, raw_id).map_err(|e| vec![e])?;
        self.locked(Some(&id))?;
        if !p.errors.is_empty() {
            return Err(p.errors.clone());
        }
        let def = &self.schema.objects[obj];
        if !def.updateable {
            return Err(one("INVALID_TYPE", format!("entity type cannot be updated: {}", def.name), vec![]));
        }
        Self::not_writable(def, &p.values, false)?;
        let mut rec = self.store.tables[obj].recs[&seq].clone();
        let mut changed = vec![];
        for (fi, v) in &p.values {
            let v = if def.fields[*fi].ftype == FieldType::Boolean && v.is_null() { Value::Bool(false) } else { v.clone() };
            rec.set(*fi, v);
            changed.push(*fi);
        }
        self.validate(obj, seq, &mut rec, &changed, false)?;
        // Salesforce bumps LastModifiedDate/SystemModstamp even when nothing changed.
        self.stamp(def, &mut rec, false);
        self.save(obj, seq, rec);
        self.automate(obj, seq, &changed);
        Ok(id)
    }

    /// Upsert on an external ID (or `Id`) field: Ok((id, created)).
    pub fn upsert(&mut self, obj: usize, field: usize, key: &str, p: &mut Parsed) -> Result<(String, bool), UpsertError> {
        let def = &self.schema.objects[obj];
        let fd = &def.fields[field];
        if fd.ftype == FieldType::Id {
            if key.is_empty() {
                return self.create(obj, p).map(|id| (id, true)).map_err(UpsertError::Errors);
            }
            return match self.live(obj, key) {
                Ok(_) => self.update(obj, key, p).map(|id| (id, false)).map_err(UpsertError::Errors),
                Err(e) if e.code == "INVALID_CROSS_REFERENCE_KEY" => {
                    Err(UpsertError::Errors(one("NOT_FOUND", "The requested resource does not exist", vec![])))
                }
                Err(e) => Err(UpsertError::Errors(vec![e])),
            };
        }
        let keyv = from_json(fd, &Json::String(key.into())).unwrap_or(Value::Null);
        p.values.retain(|(fi, _)| *fi != field);
        let hits = self.store.tables[obj].lookup(def, field, &keyv);
        match hits.as_slice() {
            [] => {
                p.values.push((field, keyv));
                self.create(obj, p).map(|id| (id, true)).map_err(UpsertError::Errors)
            }
            [seq] => {
                let id = ids::mint(&def.key_prefix, *seq);
                self.update(obj, &id, p).map(|id| (id, false)).map_err(UpsertError::Errors)
            }
            many => Err(UpsertError::Multiple(many.iter().map(|s| ids::mint(&def.key_prefix, *s)).collect())),
        }
    }

    /// Moves a record to the recycle bin (IsDeleted = true), bumping its stamps.
    pub fn delete(&mut self, obj: usize, raw_id: &str) -> Result<String, Vec<RecError>> {
        let (id, seq) = self.live(obj, raw_id).map_err(|e| vec![e])?;
        self.locked(Some(&id))?;
        let def = &self.schema.objects[obj];
        if !def.deletable {
            return Err(one("INVALID_TYPE", format!("entity type cannot be deleted: {}", def.name), vec![]));
        }
        let mut rec = self.store.tables[obj].recs[&seq].clone();
        rec.set(def.sys.is_deleted, Value::Bool(true));
        self.stamp(def, &mut rec, false);
        if let Value::DateTime(t) = rec.get(def.sys.system_modstamp) {
            self.store.bin.insert((*t, obj, seq));
        }
        self.save(obj, seq, rec);
        Ok(id)
    }

    /// Inserts a generated record without rules or automations (admin seeding), sharing `stamp`.
    pub fn insert_raw(&mut self, obj: usize, values: Vec<(usize, Value)>, stamp: i64, seq: Option<u64>) -> String {
        let def = &self.schema.objects[obj];
        let seq = seq.unwrap_or_else(|| self.store.next_seq());
        let id = ids::mint(&def.key_prefix, seq);
        let mut rec = Self::blank(def, &id, &self.me);
        for (fi, v) in values {
            rec.set(fi, v);
        }
        Self::derive(def, &mut rec);
        let (now, me) = (Value::DateTime(stamp), self.me.clone());
        for f in [def.sys.created_date, def.sys.last_modified_date, def.sys.system_modstamp] {
            rec.set(f, now.clone());
        }
        rec.set(def.sys.created_by, me.clone());
        rec.set(def.sys.last_modified_by, me);
        self.save(obj, seq, rec);
        id
    }
}

/// Dropping a writer commits its transaction: every save still in the undo log (rollback empties
/// it) becomes a change event. This is the single CDC hook for all write paths.
impl Drop for Writer<'_> {
    fn drop(&mut self) {
        // Formula and roll-up fields follow their inputs (no stamp, no event), see recalc.rs.
        if !self.undo.is_empty() && crate::recalc::has_calculated(self.schema) {
            crate::recalc::recompute(self.schema, self.store);
        }
        if self.change_events && !self.undo.is_empty() {
            let sink = self.store.changes.clone();
            sink.commit(self.schema, self.store, &self.undo, self.clock, self.user_id);
        }
    }
}

fn out_of_range(label: &str, v: &str, fields: Vec<String>) -> RecError {
    RecError::new("NUMBER_OUTSIDE_VALID_RANGE", format!("{label}: value outside of valid range on numeric field: {v}"), fields)
}

fn valid_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}
