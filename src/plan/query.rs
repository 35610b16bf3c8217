//! A synced query's refresh, decided (`sfsync.sync_query`): the rows the query returns now
//! against the ones sfsync stored after the last refresh (what Salesforce accepted), and
//! which call each difference takes. Unchanged rows cost nothing; a changed row sends only
//! its changed fields; a row that left the result is cleared or deleted (`OnRemove`).

use super::options::OnRemove;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// How the key column finds the record (`key_field`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The key holds the record's Salesforce Id: every write is an update by Id; the
    /// record must exist.
    ById,
    /// The key holds the value of an External ID field: a new row is an upsert on it
    /// (created when no record has it), later writes update the record by its Id.
    Upsert(String),
}

impl Target {
    pub fn parse(key_field: &str) -> Target {
        if key_field.eq_ignore_ascii_case("Id") {
            Target::ById
        } else {
            Target::Upsert(key_field.to_string())
        }
    }
}

/// A row as stored after Salesforce accepted it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub values: Map<String, Value>,
    pub sfid: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// A key new to the result: every mapped field.
    Create,
    /// A key whose values changed: the changed fields.
    Update,
    /// A key that left the result, `on_remove => 'clear'`: every mapped field set to NULL.
    Clear,
    /// A key that left the result, `on_remove => 'delete'`.
    Delete,
}

impl Op {
    /// Whether the stored row goes once Salesforce accepts it.
    pub fn removes(self) -> bool {
        matches!(self, Op::Clear | Op::Delete)
    }
}

/// One record to write.
#[derive(Debug, Clone, PartialEq)]
pub struct Send {
    pub key: String,
    pub op: Op,
    /// The record's Id when known (stored by an earlier refresh, or the key itself).
    pub sfid: Option<String>,
    /// Column -> value to send.
    pub values: Map<String, Value>,
    /// The whole row as it is now, stored once Salesforce accepts the write (empty for a
    /// removal).
    pub row: Map<String, Value>,
}

/// The API call a write takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// Update the record with this Id.
    Update(String),
    /// Upsert on the External ID field with the key as its value.
    Upsert,
    /// Delete the record with this Id.
    Delete(String),
    /// Nothing to call: the record was never written (no Id known), so there is nothing to
    /// clear or delete.
    Nothing,
}

impl Send {
    pub fn call(&self, target: &Target) -> Call {
        let id = match target {
            Target::ById => Some(self.key.clone()),
            Target::Upsert(_) => self.sfid.clone(),
        };
        match (self.op, id) {
            (Op::Delete, Some(id)) => Call::Delete(id),
            (Op::Create, _) if matches!(target, Target::Upsert(_)) => Call::Upsert,
            (Op::Update, None) => Call::Upsert,
            (Op::Create | Op::Update | Op::Clear, Some(id)) => Call::Update(id),
            (Op::Create, None) | (Op::Clear | Op::Delete, None) => Call::Nothing,
        }
    }
}

/// A row of the query's result: its key (None: NULL) and its columns.
pub type ResultRow = (Option<String>, Map<String, Value>);

#[derive(Debug, Default, PartialEq)]
pub struct Diff {
    pub sends: Vec<Send>,
    pub unchanged: usize,
    /// Keys the result holds more than once: which row is the record's is not guessed.
    pub duplicates: Vec<String>,
    /// Rows whose key is NULL (no record to write).
    pub null_keys: usize,
    /// Every key of the result (duplicates included).
    pub keys: HashSet<String>,
}

/// `rows`: (key, column -> value) as the query returned them; `columns`: the mapped columns.
pub fn diff(
    rows: Vec<(Option<String>, Map<String, Value>)>,
    stored: &HashMap<String, Stored>,
    on_remove: OnRemove,
    columns: &[String],
) -> Diff {
    let mut d = Diff::default();
    let mut current: HashMap<String, Map<String, Value>> = HashMap::with_capacity(rows.len());
    let mut dup: HashSet<String> = HashSet::new();
    for (key, row) in rows {
        let Some(key) = key else {
            d.null_keys += 1;
            continue;
        };
        let row: Map<String, Value> = columns.iter().map(|c| (c.clone(), row.get(c).cloned().unwrap_or(Value::Null))).collect();
        if current.insert(key.clone(), row).is_some() {
            dup.insert(key);
        }
    }
    d.keys = current.keys().cloned().collect();
    let mut keys: Vec<&String> = current.keys().collect();
    keys.sort();
    for key in keys {
        if dup.contains(key) {
            continue;
        }
        let row = &current[key];
        match stored.get(key) {
            None => d.sends.push(Send { key: key.clone(), op: Op::Create, sfid: None, values: row.clone(), row: row.clone() }),
            Some(s) => {
                let changed: Map<String, Value> =
                    row.iter().filter(|(c, v)| s.values.get(*c) != Some(*v)).map(|(c, v)| (c.clone(), v.clone())).collect();
                if changed.is_empty() {
                    d.unchanged += 1;
                } else {
                    d.sends.push(Send { key: key.clone(), op: Op::Update, sfid: s.sfid.clone(), values: changed, row: row.clone() });
                }
            }
        }
    }
    let mut gone: Vec<(&String, &Stored)> = stored.iter().filter(|(k, _)| !current.contains_key(*k)).collect();
    gone.sort_by(|a, b| a.0.cmp(b.0));
    for (key, s) in gone {
        let (op, values) = match on_remove {
            OnRemove::Clear => (Op::Clear, columns.iter().map(|c| (c.clone(), Value::Null)).collect()),
            OnRemove::Delete => (Op::Delete, Map::new()),
        };
        d.sends.push(Send { key: key.clone(), op, sfid: s.sfid.clone(), values, row: Map::new() });
    }
    let mut dup: Vec<String> = dup.into_iter().collect();
    dup.sort();
    d.duplicates = dup;
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn cols() -> Vec<String> {
        vec!["logins".into(), "seats".into()]
    }

    fn stored(entries: &[(&str, Value, Option<&str>)]) -> HashMap<String, Stored> {
        entries.iter().map(|(k, v, id)| (k.to_string(), Stored { values: row(v.clone()), sfid: id.map(String::from) })).collect()
    }

    #[test]
    fn only_changed_rows_and_fields_are_sent() {
        let s = stored(&[("a", json!({"logins": 1, "seats": 5}), Some("001A")), ("b", json!({"logins": 2, "seats": 5}), Some("001B"))]);
        let rows = vec![
            (Some("a".into()), row(json!({"logins": 1, "seats": 5}))),
            (Some("b".into()), row(json!({"logins": 3, "seats": 5}))),
            (Some("c".into()), row(json!({"logins": 1, "seats": 1, "other": true}))),
        ];
        let d = diff(rows, &s, OnRemove::Clear, &cols());
        assert_eq!(d.unchanged, 1);
        assert_eq!(d.sends.len(), 2);
        assert_eq!(d.sends[0].op, Op::Update);
        assert_eq!(d.sends[0].values, row(json!({"logins": 3})), "only the changed field");
        assert_eq!(d.sends[0].row, row(json!({"logins": 3, "seats": 5})), "the whole row is stored");
        assert_eq!(d.sends[1].op, Op::Create);
        assert_eq!(d.sends[1].values, row(json!({"logins": 1, "seats": 1})), "unmapped columns are left out");
    }

    #[test]
    fn rows_that_leave_are_cleared_or_deleted() {
        let s = stored(&[("a", json!({"logins": 1, "seats": 5}), Some("001A"))]);
        let d = diff(vec![], &s, OnRemove::Clear, &cols());
        assert_eq!(
            d.sends,
            vec![Send {
                key: "a".into(),
                op: Op::Clear,
                sfid: Some("001A".into()),
                values: row(json!({"logins": null, "seats": null})),
                row: Map::new()
            }]
        );
        let d = diff(vec![], &s, OnRemove::Delete, &cols());
        assert_eq!(d.sends[0].op, Op::Delete);
        assert!(d.sends[0].values.is_empty());
    }

    #[test]
    fn duplicate_and_null_keys_are_not_sent() {
        let s = stored(&[("a", json!({"logins": 1, "seats": 5}), Some("001A"))]);
        let rows =
            vec![(Some("a".into()), row(json!({"logins": 1}))), (Some("a".into()), row(json!({"logins": 2}))), (None, row(json!({})))];
        let d = diff(rows, &s, OnRemove::Delete, &cols());
        assert!(d.sends.is_empty(), "a duplicated key is neither written nor removed: {:?}", d.sends);
        assert_eq!(d.duplicates, vec!["a".to_string()]);
        assert_eq!(d.null_keys, 1);
    }

    #[test]
    fn each_write_takes_the_call_its_target_asks() {
        let send = |op, sfid: Option<&str>| Send { key: "k".into(), op, sfid: sfid.map(String::from), values: Map::new(), row: Map::new() };
        let ext = Target::parse("Postgres_Id__c");
        assert_eq!(Target::parse("id"), Target::ById);
        assert_eq!(send(Op::Create, None).call(&Target::ById), Call::Update("k".into()), "the key is the Id");
        assert_eq!(send(Op::Delete, None).call(&Target::ById), Call::Delete("k".into()));
        assert_eq!(send(Op::Create, None).call(&ext), Call::Upsert);
        assert_eq!(send(Op::Update, Some("001X")).call(&ext), Call::Update("001X".into()));
        assert_eq!(send(Op::Update, None).call(&ext), Call::Upsert);
        assert_eq!(send(Op::Clear, Some("001X")).call(&ext), Call::Update("001X".into()));
        assert_eq!(send(Op::Delete, Some("001X")).call(&ext), Call::Delete("001X".into()));
        assert_eq!(send(Op::Delete, None).call(&ext), Call::Nothing, "never written: nothing to delete");
    }
}
