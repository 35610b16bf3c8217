//! Folding the outbox entries of one record into the single write Salesforce needs.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: i64,
    pub mapping_id: i32,
    pub op: Op,
    pub pk: String,
    pub sfid: Option<String>,
    /// Current values of the columns this entry changed (read at push time).
    pub payload: Map<String, Value>,
    /// The row no longer exists (an insert/update whose row was deleted since).
    pub gone: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Delete,
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        match s {
            "insert" => Some(Op::Insert),
            "update" => Some(Op::Update),
            "delete" => Some(Op::Delete),
            _ => None,
        }
    }

    /// The outbox's name of the operation, as `parse` reads it.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Create or update with these column values (column name -> value).
    Upsert(Map<String, Value>),
    Delete,
    /// Nothing to send: the row is gone and its delete is not in this batch (yet).
    Skip,
}

/// The net change of one record within a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub mapping_id: i32,
    pub pk: String,
    /// The last Salesforce Id any entry knew of.
    pub sfid: Option<String>,
    pub write: Write,
    /// Every outbox entry this change settles.
    pub entry_ids: Vec<i64>,
}

impl Change {
    /// The same record and entries, with nothing to write: what releasing them needs.
    pub fn without_values(&self) -> Change {
        Change {
            mapping_id: self.mapping_id,
            pk: self.pk.clone(),
            sfid: self.sfid.clone(),
            write: Write::Skip,
            entry_ids: self.entry_ids.clone(),
        }
    }
}

/// Groups entries by (mapping, key) in first-seen order and folds each group in id order.
/// Insert/update fold into one upsert of the union of their columns; anything followed by
/// a delete is a delete (even insert+delete: the insert may already have reached
/// Salesforce before a crash, and deleting a record that doesn't exist is harmless); a
/// delete followed by an insert is an upsert. Entries whose row is gone add nothing.
pub fn coalesce(mut entries: Vec<Entry>) -> Vec<Change> {
    entries.sort_by_key(|e| e.id);
    let mut order: Vec<(i32, String)> = Vec::new();
    let mut groups: std::collections::HashMap<(i32, String), Change> = std::collections::HashMap::new();
    for e in entries {
        let key = (e.mapping_id, e.pk.clone());
        match groups.get_mut(&key) {
            None => {
                order.push(key.clone());
                let write = match e.op {
                    Op::Delete => Write::Delete,
                    _ if e.gone => Write::Skip,
                    _ => Write::Upsert(e.payload),
                };
                groups.insert(key, Change { mapping_id: e.mapping_id, pk: e.pk, sfid: e.sfid, write, entry_ids: vec![e.id] });
            }
            Some(change) => {
                change.entry_ids.push(e.id);
                if e.sfid.is_some() {
                    change.sfid = e.sfid;
                }
                change.write = match (std::mem::replace(&mut change.write, Write::Delete), e.op) {
                    (_, Op::Delete) => Write::Delete,
                    (w, _) if e.gone => w,
                    (Write::Upsert(mut acc), _) => {
                        acc.extend(e.payload);
                        Write::Upsert(acc)
                    }
                    (Write::Delete | Write::Skip, _) => Write::Upsert(e.payload),
                };
            }
        }
    }
    order.into_iter().filter_map(|k| groups.remove(&k)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn e(id: i64, op: Op, pk: &str, payload: Value) -> Entry {
        Entry { id, mapping_id: 1, op, pk: pk.into(), sfid: None, payload: payload.as_object().cloned().unwrap_or_default(), gone: false }
    }

    fn gone(id: i64, op: Op) -> Entry {
        Entry { gone: true, ..e(id, op, "7", json!({})) }
    }

    #[test]
    fn a_gone_row_sends_nothing_until_its_delete() {
        assert_eq!(coalesce(vec![gone(1, Op::Insert), gone(2, Op::Update)])[0].write, Write::Skip);
        assert_eq!(coalesce(vec![gone(1, Op::Insert), gone(2, Op::Delete)])[0].write, Write::Delete);
        let out = coalesce(vec![e(1, Op::Update, "7", json!({"n": 1})), gone(2, Op::Update)]);
        assert_eq!(out[0].write, Write::Upsert(json!({"n": 1}).as_object().unwrap().clone()));
        assert_eq!(out[0].entry_ids, vec![1, 2]);
    }

    #[test]
    fn insert_then_updates_is_one_upsert_with_latest_values() {
        let out = coalesce(vec![
            e(1, Op::Insert, "7", json!({"name": "a", "email": "x"})),
            e(2, Op::Update, "7", json!({"name": "b"})),
            e(3, Op::Update, "7", json!({"name": "c"})),
        ]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].write, Write::Upsert(json!({"name": "c", "email": "x"}).as_object().unwrap().clone()));
        assert_eq!(out[0].entry_ids, vec![1, 2, 3]);
    }

    #[test]
    fn anything_then_delete_is_delete() {
        let out = coalesce(vec![e(1, Op::Insert, "7", json!({"name": "a"})), e(2, Op::Delete, "7", json!(null))]);
        assert_eq!(out[0].write, Write::Delete);
    }

    #[test]
    fn delete_then_insert_is_upsert_of_new_values() {
        let out = coalesce(vec![e(1, Op::Delete, "7", json!(null)), e(2, Op::Insert, "7", json!({"name": "new"}))]);
        assert_eq!(out[0].write, Write::Upsert(json!({"name": "new"}).as_object().unwrap().clone()));
    }

    #[test]
    fn records_stay_separate_and_in_first_seen_order_and_ids_sorted() {
        let out = coalesce(vec![
            e(5, Op::Update, "b", json!({"n": 2})),
            e(1, Op::Insert, "a", json!({"n": 1})),
            e(3, Op::Insert, "b", json!({"n": 0})),
        ]);
        assert_eq!(out.iter().map(|c| c.pk.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
        assert_eq!(out[1].write, Write::Upsert(json!({"n": 2}).as_object().unwrap().clone()));
    }

    #[test]
    fn latest_known_sfid_is_kept() {
        let mut a = e(1, Op::Update, "7", json!({"n": 1}));
        a.sfid = Some("001000000000001AAA".into());
        let b = e(2, Op::Update, "7", json!({"n": 2}));
        let out = coalesce(vec![a, b]);
        assert_eq!(out[0].sfid.as_deref(), Some("001000000000001AAA"));
    }
}
