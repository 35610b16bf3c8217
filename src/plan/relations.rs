//! Parents before children: ordering mappings related by foreign keys, and filling a
//! child's lookup fields with its parents' Salesforce Ids.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// A mapped column that is a foreign key to another synced table's primary key
/// (e.g. `contacts.account_id` -> `accounts.id`, pushed to `Contact.AccountId`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ParentRef {
    pub column: String,
    pub mapping_id: i32,
}

/// What we know of a parent record when its child is about to be sent.
#[derive(Debug, Clone, PartialEq)]
pub enum Parent {
    /// It has this Salesforce Id.
    Known(String),
    /// Salesforce rejected it (why).
    Failed(String),
    /// Its own change has not been sent yet.
    Pending,
    /// It has no Salesforce Id and nothing is on its way.
    Missing,
}

/// Whether a child record can go now.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    /// The payload with parent keys replaced by Salesforce Ids.
    Ready(Map<String, Value>),
    /// Wait quietly: a parent is still on its way.
    Pending,
    /// Wait and say why in sfsync.errors.
    Blocked { code: &'static str, message: String },
}

/// Mapping ids with every parent before its children. Mappings in a cycle (or related to
/// themselves) keep their relative order after the ones that can be ordered.
pub fn parents_first(ids: &[i32], parents: &HashMap<i32, Vec<i32>>) -> Vec<i32> {
    let mut done: Vec<i32> = Vec::with_capacity(ids.len());
    let mut left: Vec<i32> = ids.to_vec();
    while !left.is_empty() {
        let ready: Vec<i32> = left
            .iter()
            .copied()
            .filter(|id| parents.get(id).is_none_or(|ps| ps.iter().all(|p| p == id || done.contains(p) || !ids.contains(p))))
            .collect();
        if ready.is_empty() {
            done.append(&mut left); // a cycle: no order satisfies it
            break;
        }
        left.retain(|id| !ready.contains(id));
        done.extend(ready);
    }
    done
}

/// Replaces each parent key in `payload` by the parent's Salesforce Id.
pub fn resolve(payload: &Map<String, Value>, refs: &[ParentRef], parent: impl Fn(i32, &str) -> Parent) -> Resolution {
    let mut out = payload.clone();
    for r in refs {
        let Some(v) = payload.get(&r.column) else { continue };
        let key = match v {
            Value::Null => continue,
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        match parent(r.mapping_id, &key) {
            Parent::Known(id) => {
                out.insert(r.column.clone(), Value::String(id));
            }
            Parent::Pending => return Resolution::Pending,
            Parent::Failed(why) => {
                return Resolution::Blocked {
                    code: "PARENT_FAILED",
                    message: format!("parent record {key} (column {}) was rejected: {why}", r.column),
                }
            }
            Parent::Missing => {
                return Resolution::Blocked {
                    code: "PARENT_NOT_SYNCED",
                    message: format!("parent record {key} (column {}) has no Salesforce Id and no change on its way", r.column),
                }
            }
        }
    }
    Resolution::Ready(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parents_come_first_whatever_the_input_order() {
        let parents = HashMap::from([(3, vec![2]), (2, vec![1])]);
        assert_eq!(parents_first(&[3, 2, 1], &parents), vec![1, 2, 3]);
        assert_eq!(parents_first(&[3, 4], &parents), vec![3, 4], "parents outside the batch don't matter");
        let cycle = HashMap::from([(1, vec![2]), (2, vec![1]), (3, vec![3])]);
        assert_eq!(parents_first(&[1, 2, 3], &cycle), vec![3, 1, 2]);
    }

    fn refs() -> Vec<ParentRef> {
        vec![ParentRef { column: "account_id".into(), mapping_id: 1 }]
    }

    #[test]
    fn a_known_parent_becomes_its_salesforce_id() {
        let p = json!({"last_name": "Doe", "account_id": 5}).as_object().unwrap().clone();
        let r = resolve(&p, &refs(), |m, k| {
            assert_eq!((m, k), (1, "5"));
            Parent::Known("001000000000005AAA".into())
        });
        assert_eq!(r, Resolution::Ready(json!({"last_name": "Doe", "account_id": "001000000000005AAA"}).as_object().unwrap().clone()));
    }

    #[test]
    fn no_parent_or_unchanged_lookup_needs_nothing() {
        let p = json!({"last_name": "Doe", "account_id": null}).as_object().unwrap().clone();
        assert_eq!(resolve(&p, &refs(), |_, _| Parent::Missing), Resolution::Ready(p.clone()));
        let p = json!({"last_name": "Doe"}).as_object().unwrap().clone();
        assert_eq!(resolve(&p, &refs(), |_, _| Parent::Missing), Resolution::Ready(p.clone()));
    }

    #[test]
    fn a_child_waits_for_a_pending_parent_and_says_why_when_it_failed() {
        let p = json!({"account_id": "5"}).as_object().unwrap().clone();
        assert_eq!(resolve(&p, &refs(), |_, _| Parent::Pending), Resolution::Pending);
        match resolve(&p, &refs(), |_, _| Parent::Failed("FIELD_CUSTOM_VALIDATION_EXCEPTION: no".into())) {
            Resolution::Blocked { code, message } => {
                assert_eq!(code, "PARENT_FAILED");
                assert!(message.contains("parent record 5") && message.contains("FIELD_CUSTOM_VALIDATION_EXCEPTION"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(resolve(&p, &refs(), |_, _| Parent::Missing), Resolution::Blocked { code: "PARENT_NOT_SYNCED", .. }));
    }
}
