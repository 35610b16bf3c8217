//! Write-through mode: which single Salesforce call a row change needs, and how a failure
//! reads in the error that fails the user's statement. Pure: the trigger (in
//! `sync::push::write_through`) feeds it `to_jsonb` of OLD/NEW and performs the call.
//! Values are checked for their fields first (`plan::check`), as the async push does: a
//! value Salesforce would refuse fails the statement before any call.

use super::check::{self, Invalid};
use super::fields::{ColumnMap, SFID_COLUMN};
use super::namespace;
use super::options::OnDelete;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowOp {
    Insert,
    Update,
    Delete,
}

impl RowOp {
    pub fn word(self) -> &'static str {
        match self {
            RowOp::Insert => "insert",
            RowOp::Update => "update",
            RowOp::Delete => "delete",
        }
    }
}

/// A row as the trigger sees it: the key in its text form (what `::text` gives, the same
/// value the async push puts in the external id) and `to_jsonb` of the row.
#[derive(Debug, Clone)]
pub struct RowImage {
    pub key: String,
    pub row: Map<String, Value>,
}

impl RowImage {
    pub fn sfid(&self) -> Option<String> {
        match self.row.get(SFID_COLUMN) {
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
            _ => None,
        }
    }
}

/// What the mapping needs to know for planning.
pub struct Target<'a> {
    pub columns: &'a [ColumnMap],
    pub external_id: &'a str,
    /// The mapping's namespace (plan::namespace): the external ID is `encode(namespace, key)`.
    pub namespace: &'a str,
    pub on_delete: OnDelete,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// Nothing to send (no mapped column changed, or deletes are ignored).
    Nothing,
    /// Upsert on the external id value `key`; the Id Salesforce returns goes into NEW.sfid.
    Upsert { key: String, record: Map<String, Value> },
    /// Update the record with this Id (changed fields, plus the external id when re-keyed).
    Update { id: String, record: Map<String, Value> },
    /// Delete the record with this Id, or (None) the one whose external id value is `key`.
    Delete { id: Option<String>, key: String },
}

/// Why no call can be planned for a row change.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// The trigger was fired in a way it cannot serve (no NEW or OLD row).
    Misfired(&'static str),
    /// A value Salesforce would refuse, found before sending (`plan::check`).
    Value(Invalid),
}

/// Decides the call for one row change.
pub fn plan(op: RowOp, t: &Target, old: Option<&RowImage>, new: Option<&RowImage>) -> Result<Call, Refused> {
    let misfired = Refused::Misfired;
    match op {
        RowOp::Insert => {
            let new = new.ok_or(misfired("an INSERT trigger without NEW"))?;
            Ok(match new.sfid() {
                // Inserted already linked to a Salesforce record: bring that record up to date.
                Some(id) => Call::Update { id, record: record(t, &new.row, None, None, true)? },
                None => {
                    let key = namespace::encode(t.namespace, &new.key);
                    Call::Upsert { record: record(t, &new.row, Some(&key), None, false)?, key }
                }
            })
        }
        RowOp::Update => {
            let (old, new) = (old.ok_or(misfired("an UPDATE trigger without OLD"))?, new.ok_or(misfired("an UPDATE trigger without NEW"))?);
            let changed: Vec<&str> =
                t.columns.iter().filter(|c| old.row.get(&c.column) != new.row.get(&c.column)).map(|c| c.column.as_str()).collect();
            let rekeyed = old.key != new.key;
            if changed.is_empty() && !rekeyed {
                return Ok(Call::Nothing);
            }
            Ok(match new.sfid().or_else(|| old.sfid()) {
                // A new key re-keys the same Salesforce record (its external id changes).
                Some(id) => {
                    let key = rekeyed.then(|| namespace::encode(t.namespace, &new.key));
                    Call::Update { id, record: record(t, &new.row, key.as_deref(), Some(&changed), true)? }
                }
                // Never linked: create or update it by key, with every mapped value.
                None => {
                    let key = namespace::encode(t.namespace, &new.key);
                    Call::Upsert { record: record(t, &new.row, Some(&key), None, false)?, key }
                }
            })
        }
        RowOp::Delete => {
            let old = old.ok_or(misfired("a DELETE trigger without OLD"))?;
            if t.on_delete == OnDelete::Ignore {
                return Ok(Call::Nothing);
            }
            Ok(Call::Delete { id: old.sfid(), key: namespace::encode(t.namespace, &old.key) })
        }
    }
}

/// Mapped values (only `only` columns when given) shaped for Salesforce, plus the external
/// id value when given. Fields Salesforce won't take on this kind of write (createable /
/// updateable) are left out; the first value Salesforce would refuse refuses the record.
fn record(
    t: &Target,
    row: &Map<String, Value>,
    external: Option<&str>,
    only: Option<&[&str]>,
    update: bool,
) -> Result<Map<String, Value>, Refused> {
    let mut rec = Map::new();
    for c in t.columns {
        if only.is_some_and(|o| !o.contains(&c.column.as_str())) {
            continue;
        }
        if (update && !c.updateable) || (!update && !c.createable) {
            continue;
        }
        let value = check::to_sf(c, row.get(&c.column).unwrap_or(&Value::Null)).map_err(Refused::Value)?;
        rec.insert(c.field.clone(), value);
    }
    if let Some(value) = external {
        rec.insert(t.external_id.to_string(), Value::String(value.to_string()));
    }
    Ok(rec)
}

/// The message of the error that fails the statement for a value refused before sending.
pub fn refusal_message(op: RowOp, table: &str, key: &str, invalid: &Invalid) -> String {
    format!("sfsync refused the {} of {table} key {key} before sending it to Salesforce: {}: {}", op.word(), invalid.code, invalid.message)
}

/// Codes Salesforce answers a delete with when the record is already gone: what we wanted.
pub fn already_deleted(code: &str) -> bool {
    matches!(code, "ENTITY_IS_DELETED" | "INVALID_CROSS_REFERENCE_KEY" | "NOT_FOUND")
}

/// Why a write-through call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Salesforce refused the record (validation, required field, too long...).
    Rejected,
    /// Salesforce answered, but not with a verdict on the record (5xx, limits, session).
    Failed,
    /// No answer: connection refused, timeout.
    Unreachable,
}

/// The message of the error that fails the statement. `salesforce_error` is the client's
/// Display of the error: `CODE: message (fields: F)` for API errors.
pub fn failure_message(op: RowOp, table: &str, key: &str, kind: FailureKind, salesforce_error: &str) -> String {
    match kind {
        FailureKind::Rejected => format!("Salesforce rejected the {} of {table} key {key}: {salesforce_error}", op.word()),
        FailureKind::Failed | FailureKind::Unreachable => {
            format!("sfsync: the {} of {table} key {key} could not be sent to Salesforce: {salesforce_error}", op.word())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cols() -> Vec<ColumnMap> {
        let c = |column: &str, field: &str, createable, updateable| ColumnMap {
            column: column.into(),
            field: field.into(),
            sf_type: "string".into(),
            pg_type: "text".into(),
            createable,
            updateable,
            calculated: false,
            limits: Default::default(),
        };
        vec![c("last_name", "LastName", true, true), c("email", "Email", true, true), c("owner", "OwnerId", true, false)]
    }

    fn img(key: &str, v: Value) -> RowImage {
        RowImage { key: key.into(), row: v.as_object().unwrap().clone() }
    }

    fn target(cols: &[ColumnMap]) -> Target<'_> {
        Target { columns: cols, external_id: "Postgres_Id__c", namespace: "0123456789ab", on_delete: OnDelete::Propagate }
    }

    #[test]
    fn insert_upserts_every_createable_field_on_the_key() {
        let c = cols();
        let new = img("7", json!({"id": 7, "last_name": "Doe", "email": null, "owner": "005", "notes": "x", "sfid": null}));
        let call = plan(RowOp::Insert, &target(&c), None, Some(&new)).unwrap();
        assert_eq!(
            call,
            Call::Upsert {
                key: "0123456789ab:7".into(),
                record: json!({"LastName": "Doe", "Email": null, "OwnerId": "005", "Postgres_Id__c": "0123456789ab:7"})
                    .as_object()
                    .unwrap()
                    .clone()
            }
        );
    }

    #[test]
    fn insert_with_an_sfid_updates_that_record() {
        let c = cols();
        let new = img("7", json!({"last_name": "Doe", "sfid": "003000000000001AAA"}));
        match plan(RowOp::Insert, &target(&c), None, Some(&new)).unwrap() {
            Call::Update { id, record } => {
                assert_eq!(id, "003000000000001AAA");
                assert!(!record.contains_key("OwnerId"), "not updateable");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn update_sends_only_changed_updateable_fields_by_id() {
        let c = cols();
        let old = img("7", json!({"last_name": "Doe", "email": "a@x", "owner": "005", "sfid": "003000000000001AAA"}));
        let new = img("7", json!({"last_name": "Doe", "email": "b@x", "owner": "006", "sfid": "003000000000001AAA"}));
        let call = plan(RowOp::Update, &target(&c), Some(&old), Some(&new)).unwrap();
        assert_eq!(
            call,
            Call::Update {
                id: "003000000000001AAA".into(),
                // The external ID is not rewritten: it is whoever's created the record.
                record: json!({"Email": "b@x"}).as_object().unwrap().clone()
            }
        );
    }

    #[test]
    fn update_of_unmapped_columns_sends_nothing() {
        let c = cols();
        let old = img("7", json!({"last_name": "Doe", "notes": "a", "sfid": "003000000000001AAA"}));
        let new = img("7", json!({"last_name": "Doe", "notes": "b", "sfid": "003000000000001AAA"}));
        assert_eq!(plan(RowOp::Update, &target(&c), Some(&old), Some(&new)).unwrap(), Call::Nothing);
    }

    #[test]
    fn update_without_sfid_upserts_the_whole_record() {
        let c = cols();
        let old = img("7", json!({"last_name": "Doe", "email": null, "sfid": null}));
        let new = img("7", json!({"last_name": "Roe", "email": null, "sfid": null}));
        match plan(RowOp::Update, &target(&c), Some(&old), Some(&new)).unwrap() {
            Call::Upsert { key, record } => {
                assert_eq!(key, "0123456789ab:7");
                assert_eq!(record.get("LastName"), Some(&json!("Roe")));
                assert!(record.contains_key("Email"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn key_change_rekeys_the_same_record() {
        let c = cols();
        let old = img("7", json!({"last_name": "Doe", "sfid": "003000000000001AAA"}));
        let new = img("8", json!({"last_name": "Doe", "sfid": "003000000000001AAA"}));
        match plan(RowOp::Update, &target(&c), Some(&old), Some(&new)).unwrap() {
            Call::Update { id, record } => {
                assert_eq!(id, "003000000000001AAA");
                assert_eq!(record, json!({"Postgres_Id__c": "0123456789ab:8"}).as_object().unwrap().clone());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn delete_by_id_or_key_unless_ignored() {
        let c = cols();
        let old = img("7", json!({"sfid": "003000000000001AAA"}));
        assert_eq!(
            plan(RowOp::Delete, &target(&c), Some(&old), None).unwrap(),
            Call::Delete { id: Some("003000000000001AAA".into()), key: "0123456789ab:7".into() }
        );
        let unlinked = img("7", json!({"sfid": null}));
        assert_eq!(
            plan(RowOp::Delete, &target(&c), Some(&unlinked), None).unwrap(),
            Call::Delete { id: None, key: "0123456789ab:7".into() }
        );
        let ignore = Target { on_delete: OnDelete::Ignore, ..target(&c) };
        assert_eq!(plan(RowOp::Delete, &ignore, Some(&old), None).unwrap(), Call::Nothing);
    }

    #[test]
    fn a_value_salesforce_would_refuse_refuses_the_call() {
        let mut c = cols();
        c[0].limits.length = 5;
        c[1].sf_type = "date".into();
        let long = img("7", json!({"last_name": "Longer than five", "sfid": null}));
        match plan(RowOp::Insert, &target(&c), None, Some(&long)) {
            Err(Refused::Value(i)) => assert_eq!(i.code, check::TOO_LONG, "{i:?}"),
            other => panic!("{other:?}"),
        }
        let old = img("7", json!({"last_name": "Doe", "email": null, "sfid": "003000000000001AAA"}));
        let bad_date = img("7", json!({"last_name": "Doe", "email": "tomorrow", "sfid": "003000000000001AAA"}));
        let Err(Refused::Value(i)) = plan(RowOp::Update, &target(&c), Some(&old), Some(&bad_date)) else { panic!("accepted") };
        assert_eq!(i.code, check::BAD_TYPE);
        let m = refusal_message(RowOp::Update, "contacts", "7", &i);
        assert!(
            m.starts_with(
                "sfsync refused the update of contacts key 7 before sending it to Salesforce: INVALID_TYPE_ON_FIELD_IN_RECORD: Email"
            ),
            "{m}"
        );
        // An unchanged bad value elsewhere in the row does not stop an update of another column.
        let renamed = img("7", json!({"last_name": "Roe", "email": "tomorrow", "sfid": "003000000000001AAA"}));
        assert!(plan(RowOp::Update, &target(&c), Some(&bad_date), Some(&renamed)).is_ok());
    }

    #[test]
    fn failure_messages_name_table_key_and_salesforce_error() {
        let m = failure_message(
            RowOp::Insert,
            "contacts",
            "7",
            FailureKind::Rejected,
            "REQUIRED_FIELD_MISSING: Required fields are missing: [LastName] (fields: LastName)",
        );
        assert_eq!(m, "Salesforce rejected the insert of contacts key 7: REQUIRED_FIELD_MISSING: Required fields are missing: [LastName] (fields: LastName)");
        let m = failure_message(RowOp::Delete, "contacts", "7", FailureKind::Unreachable, "transport error: timed out");
        assert!(m.contains("delete of contacts key 7 could not be sent") && m.contains("timed out"), "{m}");
    }
}
