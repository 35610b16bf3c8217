//! The shadow log (`sync_table(..., mode => 'shadow')`): what a live mapping would send,
//! one pending entry per record. A new local change of a record folds into its pending
//! entry the way the push would coalesce the two, so the log stays as large as the set of
//! changed rows, and `sfsync.go_live` queues each record's net change once.

use super::coalesce::Op;
use serde_json::{Map, Value};

/// A pending entry of the log (or a new change about to be folded into it).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub op: Op,
    pub sfid: Option<String>,
    /// Mapped columns an update changed; None: every mapped column (an insert).
    pub changed: Option<Vec<String>>,
    /// The changed columns' values before the first change (the pull's conflict check).
    pub base: Map<String, Value>,
    /// The values that would be sent, by column (text form).
    pub values: Map<String, Value>,
}

/// The record's net change after `next` followed `prev`; None: nothing left to send (a row
/// made and deleted during the shadow run never reached Salesforce).
pub fn fold(prev: Entry, next: Entry) -> Option<Entry> {
    let sfid = next.sfid.clone().or(prev.sfid.clone());
    match (prev.op, next.op) {
        (Op::Insert, Op::Delete) if sfid.is_none() => None,
        (_, Op::Delete) => Some(Entry { op: Op::Delete, sfid, changed: None, base: Map::new(), values: Map::new() }),
        // Whatever was before, a row that is there now is sent whole.
        (Op::Insert | Op::Delete, _) | (_, Op::Insert) => {
            let values = if prev.op == Op::Delete { next.values } else { merged(prev.values, next.values) };
            Some(Entry { op: Op::Insert, sfid, changed: None, base: Map::new(), values })
        }
        (Op::Update, Op::Update) => {
            let changed = match (prev.changed, next.changed) {
                (Some(mut a), Some(b)) => {
                    a.extend(b.into_iter().filter(|c| !a.contains(c)).collect::<Vec<_>>());
                    Some(a)
                }
                _ => None,
            };
            // The value before the first change is the one Salesforce still holds.
            let mut base = next.base;
            base.extend(prev.base);
            Some(Entry { op: Op::Update, sfid, changed, base, values: merged(prev.values, next.values) })
        }
    }
}

fn merged(mut old: Map<String, Value>, new: Map<String, Value>) -> Map<String, Value> {
    old.extend(new);
    old
}

/// The call a live async push would make for an entry, as the log names it.
pub fn operation(op: Op, sfid: Option<&str>) -> &'static str {
    match (op, sfid) {
        (Op::Delete, _) => "delete",
        (Op::Update, Some(_)) => "update",
        // The push upserts on the external ID: a replay never duplicates.
        (Op::Insert | Op::Update, _) => "upsert",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(op: Op, sfid: Option<&str>, changed: Option<&[&str]>, base: Value, values: Value) -> Entry {
        Entry {
            op,
            sfid: sfid.map(String::from),
            changed: changed.map(|c| c.iter().map(|s| s.to_string()).collect()),
            base: base.as_object().cloned().unwrap_or_default(),
            values: values.as_object().cloned().unwrap_or_default(),
        }
    }

    #[test]
    fn updates_fold_into_one_with_the_first_base_and_the_latest_values() {
        let a = entry(Op::Update, Some("003A"), Some(&["email"]), json!({"email": "a@x"}), json!({"email": "b@x"}));
        let b =
            entry(Op::Update, None, Some(&["email", "name"]), json!({"email": "b@x", "name": "N"}), json!({"email": "c@x", "name": "M"}));
        let f = fold(a, b).unwrap();
        assert_eq!(f.op, Op::Update);
        assert_eq!(f.sfid.as_deref(), Some("003A"));
        assert_eq!(f.changed, Some(vec!["email".to_string(), "name".to_string()]));
        assert_eq!(Value::Object(f.base), json!({"email": "a@x", "name": "N"}));
        assert_eq!(Value::Object(f.values), json!({"email": "c@x", "name": "M"}));
    }

    #[test]
    fn an_insert_stays_an_insert_of_every_column() {
        let a = entry(Op::Insert, None, None, json!({}), json!({"email": "a@x", "name": "N"}));
        let b = entry(Op::Update, None, Some(&["email"]), json!({"email": "a@x"}), json!({"email": "b@x"}));
        let f = fold(a, b).unwrap();
        assert_eq!((f.op, f.changed), (Op::Insert, None));
        assert_eq!(Value::Object(f.values), json!({"email": "b@x", "name": "N"}));
    }

    #[test]
    fn a_row_made_and_deleted_in_the_shadow_run_sends_nothing() {
        let a = entry(Op::Insert, None, None, json!({}), json!({"email": "a@x"}));
        assert_eq!(fold(a, entry(Op::Delete, None, None, json!({}), json!({}))), None);
        let linked = entry(Op::Insert, Some("003A"), None, json!({}), json!({}));
        assert_eq!(fold(linked, entry(Op::Delete, None, None, json!({}), json!({}))).unwrap().op, Op::Delete);
    }

    #[test]
    fn a_delete_then_insert_sends_the_new_row_whole() {
        let a = entry(Op::Delete, Some("003A"), None, json!({}), json!({}));
        let f = fold(a, entry(Op::Insert, None, None, json!({}), json!({"email": "n@x"}))).unwrap();
        assert_eq!((f.op, f.sfid.as_deref()), (Op::Insert, Some("003A")));
        let u = entry(Op::Update, Some("003A"), Some(&["email"]), json!({"email": "a@x"}), json!({"email": "b@x"}));
        assert_eq!(fold(u, entry(Op::Delete, None, None, json!({}), json!({}))).unwrap().op, Op::Delete);
    }

    #[test]
    fn the_logged_operation_is_the_call_an_async_push_makes() {
        assert_eq!(operation(Op::Insert, None), "upsert");
        assert_eq!(operation(Op::Update, Some("003A")), "update");
        assert_eq!(operation(Op::Update, None), "upsert");
        assert_eq!(operation(Op::Delete, Some("003A")), "delete");
    }
}
