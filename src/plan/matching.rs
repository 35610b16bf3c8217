//! Linking rows to records that already exist in Salesforce by a natural key
//! (`sync_table(..., match => 'Email')`): the key parsed, values compared the way Salesforce
//! compares text (case-insensitive, surrounding blanks ignored), and the decision per row.
//! Ambiguity is never resolved by a guess: it is the row's error.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// One part of the key: a local column and the Salesforce field it is compared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchKey {
    pub column: String,
    pub field: String,
}

/// The `match` argument as written: a field name (`'Email'`), several for a composite key
/// (`'FirstName, LastName'`), or a JSON object of column to field (`'{"email": "Email"}'`).
/// Returns (column if given, field) pairs; columns are resolved against the mapping later.
pub fn parse(spec: &str) -> Result<Vec<(Option<String>, String)>, String> {
    let spec = spec.trim();
    let parts: Vec<(Option<String>, String)> = if spec.starts_with('{') {
        let v: serde_json::Map<String, Value> =
            serde_json::from_str(spec).map_err(|e| format!("match: expected a field name or a JSON object of column to field: {e}"))?;
        v.into_iter()
            .map(|(c, f)| match f {
                Value::String(f) => Ok((Some(c), f)),
                _ => Err(format!("match: the field for column \"{c}\" must be a string")),
            })
            .collect::<Result<_, _>>()?
    } else {
        spec.split(',').map(|f| (None, f.trim().to_string())).collect()
    };
    if parts.is_empty() || parts.iter().any(|(_, f)| f.is_empty()) {
        return Err("match: name the Salesforce field(s) to match on, e.g. match => 'Email'".into());
    }
    if parts.len() > MAX_PARTS {
        return Err(format!("match: at most {MAX_PARTS} fields make a key"));
    }
    Ok(parts)
}

/// A composite key of more fields would make the IN lists of a lookup a poor filter.
pub const MAX_PARTS: usize = 3;

/// Keys per lookup query: Salesforce's own batch size, keeps the SOQL well under its limits.
pub const KEYS_PER_QUERY: usize = 200;

/// Distinct keys from which a lookup is one Bulk API 2.0 query job over the object's records
/// that have a key, instead of ceil(keys / 200) SOQL queries (`sfsync.match_bulk_threshold`).
/// A Bulk job costs a handful of calls (create, a few status polls, a result page per 50k
/// records) but waits for Salesforce's queue (seconds to minutes in a real org) and reads
/// every record with a key, not just the wanted ones: it is worth it only when it saves an
/// order of magnitude of calls. 10,000 keys are 50 SOQL calls against ~5; an initial link of
/// a whole table (the 50k rows of a typical first sync: 250 calls) takes it, the few rows of
/// a later push never do.
pub const BULK_LOOKUP_KEYS: usize = 10_000;

/// Whether `keys` distinct keys are looked up through a Bulk query (`threshold` 0: never).
pub fn by_bulk(keys: usize, threshold: usize) -> bool {
    threshold > 0 && keys >= threshold
}

/// One key value as Salesforce compares text: trimmed, lowercased. Empty or NULL: no key
/// (such a row is never matched, it creates a record).
pub fn normalise(v: &Value) -> Option<String> {
    let s = match v {
        Value::Null => return None,
        Value::String(s) => s.trim().to_lowercase(),
        other => other.to_string(),
    };
    (!s.is_empty()).then_some(s)
}

/// The normalised key of a row or record (its parts joined by an unlikely separator); None
/// when a part is missing.
pub fn key_of<'a>(parts: impl Iterator<Item = Option<&'a Value>>) -> Option<String> {
    let mut out: Vec<String> = Vec::new();
    for p in parts {
        out.push(normalise(p.unwrap_or(&Value::Null))?);
    }
    Some(out.join("\u{1f}"))
}

/// The value sent in a lookup for one part of a key: as the row holds it, trimmed.
pub fn literal(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        other => Some(other.to_string()),
    }
}

/// A Salesforce record found by a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub id: String,
    /// Its external ID value (empty when none).
    pub external: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No record has the key (or the row has none): create one.
    Create,
    /// Exactly one record, and it is this row's alone: link to it.
    Link(String),
    /// The row's error; nothing is sent for it until the data is fixed and it is retried.
    Ambiguous { sfid: Option<String>, message: String },
}

/// The error code of an ambiguous match in sfsync.errors.
pub const AMBIGUOUS: &str = "AMBIGUOUS_MATCH";

/// Decides each row (pk, normalised key). `found`: records per normalised key; `others`:
/// how many rows without a Salesforce Id outside `rows` have the key; `taken`: Ids that
/// another row of the table already holds; `ours(pk)`: the external ID value the row's own
/// record would carry. `label` names the key in messages (e.g. `Email`).
pub fn decide(
    rows: &[(String, Option<String>)],
    found: &HashMap<String, Vec<Found>>,
    others: &HashMap<String, usize>,
    taken: &HashSet<String>,
    ours: impl Fn(&str) -> String,
    label: &str,
) -> Vec<(String, Decision)> {
    let mut per_key: HashMap<&str, usize> = HashMap::new();
    for (_, k) in rows {
        if let Some(k) = k {
            *per_key.entry(k.as_str()).or_insert_with(|| others.get(k).copied().unwrap_or(0)) += 1;
        }
    }
    rows.iter()
        .map(|(pk, key)| {
            let Some(key) = key else { return (pk.clone(), Decision::Create) };
            let records = found.get(key).map(Vec::as_slice).unwrap_or_default();
            let shown = key.replace('\u{1f}', ", ");
            let decision = match records {
                [] => Decision::Create,
                [r] if r.external == ours(pk) => Decision::Link(r.id.clone()),
                _ if per_key.get(key.as_str()).copied().unwrap_or(0) > 1 => Decision::Ambiguous {
                    sfid: (records.len() == 1).then(|| records[0].id.clone()),
                    message: format!(
                        "{} rows have {label} = {shown}, matching Salesforce record(s) {}; make the key unique, then sfsync.retry()",
                        per_key[key.as_str()],
                        ids(records)
                    ),
                },
                [r] if taken.contains(&r.id) => Decision::Ambiguous {
                    sfid: Some(r.id.clone()),
                    message: format!(
                        "the Salesforce record {} with {label} = {shown} is already linked to another row; make the key unique, then sfsync.retry()",
                        r.id
                    ),
                },
                [r] if !r.external.is_empty() => Decision::Ambiguous {
                    sfid: Some(r.id.clone()),
                    message: format!(
                        "the Salesforce record {} with {label} = {shown} already carries external ID {}; it belongs to another row or mapping",
                        r.id, r.external
                    ),
                },
                [r] => Decision::Link(r.id.clone()),
                many => Decision::Ambiguous {
                    sfid: None,
                    message: format!(
                        "{} Salesforce records have {label} = {shown}: {}; merge them in Salesforce, then sfsync.retry()",
                        many.len(),
                        ids(many)
                    ),
                },
            };
            (pk.clone(), decision)
        })
        .collect()
}

fn ids(records: &[Found]) -> String {
    records.iter().map(|r| r.id.as_str()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn many_keys_are_looked_up_by_one_bulk_query_few_by_soql() {
        assert!(!by_bulk(1, BULK_LOOKUP_KEYS));
        assert!(!by_bulk(BULK_LOOKUP_KEYS - 1, BULK_LOOKUP_KEYS), "49 SOQL calls still beat a Bulk job's wait");
        assert!(by_bulk(BULK_LOOKUP_KEYS, BULK_LOOKUP_KEYS));
        assert!(by_bulk(50_000, BULK_LOOKUP_KEYS), "an initial link of 50k rows: one job, not 250 queries");
        assert!(!by_bulk(50_000, 0), "0 turns the Bulk path off");
        assert!(by_bulk(3, 2), "a small threshold forces it (tests)");
    }

    #[test]
    fn the_key_is_a_field_several_fields_or_columns_to_fields() {
        assert_eq!(parse("Email").unwrap(), vec![(None, "Email".to_string())]);
        assert_eq!(parse(" FirstName, LastName ").unwrap(), vec![(None, "FirstName".into()), (None, "LastName".into())]);
        assert_eq!(parse(r#"{"email": "Email"}"#).unwrap(), vec![(Some("email".into()), "Email".into())]);
        assert!(parse("").is_err());
        assert!(parse("A,,B").is_err());
        assert!(parse(r#"{"email": 1}"#).unwrap_err().contains("must be a string"));
        assert!(parse("A,B,C,D").unwrap_err().contains("at most 3"));
    }

    #[test]
    fn keys_compare_like_salesforce_text() {
        assert_eq!(normalise(&json!("  Ann@Example.COM ")), Some("ann@example.com".into()));
        assert_eq!(normalise(&json!("  ")), None);
        assert_eq!(normalise(&Value::Null), None);
        assert_eq!(normalise(&json!(42)), Some("42".into()));
        let a = json!("Ann");
        assert_eq!(key_of([Some(&a), None].into_iter()), None);
        assert_eq!(literal(&json!(" Ann@Example.com ")), Some("Ann@Example.com".into()));
    }

    fn found(pairs: &[(&str, &[(&str, &str)])]) -> HashMap<String, Vec<Found>> {
        pairs
            .iter()
            .map(|(k, rs)| (k.to_string(), rs.iter().map(|(id, ext)| Found { id: id.to_string(), external: ext.to_string() }).collect()))
            .collect()
    }

    #[test]
    fn one_record_for_one_row_links_everything_else_is_an_error() {
        let rows = vec![
            ("1".to_string(), Some("a@x".to_string())),
            ("2".to_string(), Some("dup@x".to_string())),
            ("3".to_string(), Some("two@x".to_string())),
            ("4".to_string(), Some("two@x".to_string())),
            ("5".to_string(), Some("new@x".to_string())),
            ("6".to_string(), None),
            ("7".to_string(), Some("taken@x".to_string())),
            ("8".to_string(), Some("mine@x".to_string())),
            ("9".to_string(), Some("other@x".to_string())),
        ];
        let f = found(&[
            ("a@x", &[("003A", "")]),
            ("dup@x", &[("003B", ""), ("003C", "")]),
            ("two@x", &[("003D", "")]),
            ("taken@x", &[("003E", "")]),
            ("mine@x", &[("003F", "ns:8")]),
            ("other@x", &[("003G", "ns:99")]),
        ]);
        let taken: HashSet<String> = ["003E".to_string()].into();
        let d: HashMap<String, Decision> =
            decide(&rows, &f, &HashMap::new(), &taken, |pk| format!("ns:{pk}"), "Email").into_iter().collect();
        assert_eq!(d["1"], Decision::Link("003A".into()));
        assert!(
            matches!(&d["2"], Decision::Ambiguous { sfid: None, message } if message.contains("2 Salesforce records") && message.contains("003B, 003C"))
        );
        assert!(matches!(&d["3"], Decision::Ambiguous { sfid: Some(id), message } if id == "003D" && message.starts_with("2 rows")));
        assert_eq!(d["3"], d["4"]);
        assert_eq!(d["5"], Decision::Create);
        assert_eq!(d["6"], Decision::Create);
        assert!(matches!(&d["7"], Decision::Ambiguous { message, .. } if message.contains("already linked")));
        assert_eq!(d["8"], Decision::Link("003F".into()));
        assert!(matches!(&d["9"], Decision::Ambiguous { message, .. } if message.contains("ns:99")));
    }

    #[test]
    fn a_row_outside_the_batch_with_the_same_key_makes_it_ambiguous() {
        let rows = vec![("3".to_string(), Some("a@x".to_string()))];
        let f = found(&[("a@x", &[("003A", "")])]);
        let others: HashMap<String, usize> = [("a@x".to_string(), 1)].into();
        let d = decide(&rows, &f, &others, &HashSet::new(), |pk| pk.to_string(), "Email");
        assert!(matches!(&d[0].1, Decision::Ambiguous { message, .. } if message.starts_with("2 rows")));
        let d = decide(&rows, &f, &HashMap::new(), &HashSet::new(), |pk| pk.to_string(), "Email");
        assert_eq!(d[0].1, Decision::Link("003A".into()));
    }
}
