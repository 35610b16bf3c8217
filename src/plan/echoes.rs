//! Our own writes coming back as change events ("echoes"), told apart before they reach the
//! inbox.
//!
//! Every record the worker pushes comes back on the change stream. Applying an echo changes
//! nothing (the apply compares with what was sent), but under a push backlog the echoes fill
//! the stream's bounded inbox, which then drops events and polls their objects: the pushed
//! records are read back in full. The worker notes what it wrote in an [`EchoBook`], and the
//! listener drops an event only when it says nothing we did not write ourselves: it came
//! from our API client, and every field it changed holds exactly the value we sent (a
//! Salesforce automation that rewrote a field on save shows another value, or another field,
//! and the event goes through). A dropped echo still moves the stream's position on.

use super::cdc::flatten;
use salesforce::cdc::{ChangeEvent, ChangeType};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet, VecDeque};

/// The `client=` of `Sforce-Call-Options` on every call sfsync makes: Salesforce puts it in
/// the `changeOrigin` of the change events those calls cause.
pub const CLIENT: &str = "sfsync";

/// Fields Salesforce sets on every save: in an echo, whatever their value.
const ON_EVERY_SAVE: &[&str] = &["LastModifiedDate", "LastModifiedById", "SystemModstamp"];
/// And on a create.
const ON_CREATE: &[&str] = &["CreatedDate", "CreatedById", "OwnerId", "Id", "IsDeleted"];

#[derive(Debug)]
enum Written {
    /// The fields we sent (merged over the record's earlier writes), as sent.
    Fields(Map<String, Value>),
    Deleted,
}

/// What the worker wrote to Salesforce lately, by record Id: the newest `capacity` records.
#[derive(Debug)]
pub struct EchoBook {
    written: HashMap<String, Written>,
    order: VecDeque<String>,
    capacity: usize,
    /// Objects (lowercase) that more than one table of this database pulls: a mirror, or a
    /// second table, needs our writes of them from the stream, so none of their events is
    /// dropped.
    shared: HashSet<String>,
}

impl EchoBook {
    pub fn new(capacity: usize) -> Self {
        EchoBook { written: HashMap::new(), order: VecDeque::new(), capacity, shared: HashSet::new() }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.written.len()
    }

    /// We saved record `id` with `fields` (Salesforce names, values as sent).
    pub fn wrote(&mut self, id: &str, fields: &Map<String, Value>) {
        match self.written.get_mut(id) {
            Some(Written::Fields(f)) => f.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone()))),
            _ => self.put(id, Written::Fields(fields.clone())),
        }
    }

    /// The objects more than one table pulls: their events are never echoes.
    pub fn share(&mut self, objects: impl IntoIterator<Item = String>) {
        self.shared = objects.into_iter().map(|o| o.to_ascii_lowercase()).collect();
    }

    /// We deleted record `id`.
    pub fn deleted(&mut self, id: &str) {
        self.put(id, Written::Deleted);
    }

    fn put(&mut self, id: &str, w: Written) {
        if self.written.insert(id.to_string(), w).is_none() {
            self.order.push_back(id.to_string());
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.written.remove(&old);
                }
            }
        }
    }

    /// Whether `e` is nothing but the echo of our own writes.
    pub fn is_echo(&self, e: &ChangeEvent) -> bool {
        let h = &e.header;
        if !from_us(&h.change_origin) || h.record_ids.is_empty() || self.shared.contains(&h.entity_name.to_ascii_lowercase()) {
            return false;
        }
        let Some(payload) = flatten(&e.fields) else { return false };
        h.record_ids.iter().all(|id| match (self.written.get(id), &h.change_type) {
            (Some(Written::Deleted), ChangeType::Delete) => true,
            (Some(Written::Fields(sent)), ChangeType::Update) => h.changed_fields.iter().all(|f| {
                if ON_EVERY_SAVE.contains(&f.as_str()) {
                    return true;
                }
                // A compound field's part is named `BillingAddress.City`; flattened, `BillingCity`.
                let name = match f.split_once('.') {
                    Some((compound, part)) => match super::cdc::part_field(compound, part) {
                        Some(n) => n,
                        None => return false,
                    },
                    None => f.clone(),
                };
                let now = if h.nulled_fields.iter().any(|n| n == f) { &Value::Null } else { payload.get(&name).unwrap_or(&Value::Null) };
                sent.get(&name).is_some_and(|v| same(v, now))
            }),
            (Some(Written::Fields(sent)), ChangeType::Create) => payload.iter().all(|(f, now)| {
                ON_EVERY_SAVE.contains(&f.as_str())
                    || ON_CREATE.contains(&f.as_str())
                    || now.is_null()
                    || sent.get(f).is_some_and(|v| same(v, now))
            }),
            _ => false,
        })
    }
}

/// Whether a `changeOrigin` (`com/salesforce/api/rest/62.0;client=sfsync`) names our client.
fn from_us(origin: &str) -> bool {
    origin.split(';').any(|p| p.trim().strip_prefix("client=").is_some_and(|c| c.trim() == CLIENT))
}

/// A value we sent and the one an event carries, alike as Salesforce stores them: numbers by
/// value (`5` and `5.0`, or a number sent as text), text exactly, null and an empty text alike.
fn same(sent: &Value, now: &Value) -> bool {
    match (sent, now) {
        (Value::Null, Value::Null) => true,
        (Value::String(s), Value::Null) | (Value::Null, Value::String(s)) => s.is_empty(),
        (Value::Number(_) | Value::String(_), Value::Number(_)) | (Value::Number(_), Value::String(_)) => {
            match (number(sent), number(now)) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            }
        }
        _ => sent == now,
    }
}

/// A number in a canonical text: no sign on zero, no trailing zeros after the point.
fn number(v: &Value) -> Option<String> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.strip_prefix('+').unwrap_or(&text)),
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit() || c == '.') || digits.matches('.').count() > 1 {
        return None;
    }
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let body = match (int.is_empty(), frac.is_empty()) {
        (true, true) => return Some("0".into()),
        (_, true) => int.to_string(),
        (true, false) => format!("0.{frac}"),
        (false, false) => format!("{int}.{frac}"),
    };
    Some(if neg { format!("-{body}") } else { body })
}

#[cfg(test)]
mod tests {
    use super::*;
    use salesforce::cdc::ChangeEventHeader;
    use serde_json::json;

    const OURS: &str = "com/salesforce/api/rest/62.0;client=sfsync";

    fn event(kind: ChangeType, id: &str, origin: &str, changed: &[&str], nulled: &[&str], fields: Value) -> ChangeEvent {
        ChangeEvent {
            channel: "/data/AccountChangeEvent".into(),
            replay_id: 1,
            schema: String::new(),
            header: ChangeEventHeader {
                entity_name: "Account".into(),
                record_ids: vec![id.into()],
                change_type: kind,
                changed_fields: changed.iter().map(|s| s.to_string()).collect(),
                nulled_fields: nulled.iter().map(|s| s.to_string()).collect(),
                diff_fields: vec![],
                commit_timestamp: 0,
                commit_number: 0,
                commit_user: String::new(),
                transaction_key: String::new(),
                sequence_number: 1,
                change_origin: origin.into(),
            },
            fields: fields.as_object().cloned().unwrap_or_default(),
        }
    }

    fn book() -> EchoBook {
        let mut b = EchoBook::new(10);
        b.wrote("001A", json!({"Name": "Acme", "NumberOfEmployees": 5, "Site": null}).as_object().unwrap());
        b
    }

    #[test]
    fn an_update_holding_only_what_we_sent_is_an_echo() {
        let e = event(
            ChangeType::Update,
            "001A",
            OURS,
            &["Name", "NumberOfEmployees", "LastModifiedDate"],
            &[],
            json!({"Name": "Acme", "NumberOfEmployees": 5.0, "LastModifiedDate": "2026-12-07T08:00:00.000Z"}),
        );
        assert!(book().is_echo(&e));
        let nulled = event(ChangeType::Update, "001A", OURS, &["Site"], &["Site"], json!({"Site": null}));
        assert!(book().is_echo(&nulled));
    }

    #[test]
    fn anything_we_did_not_write_goes_through() {
        let b = book();
        // An automation rewrote our value on save, or set a field we never sent.
        let rewritten = event(ChangeType::Update, "001A", OURS, &["Name"], &[], json!({"Name": "ACME"}));
        assert!(!b.is_echo(&rewritten));
        let other = event(ChangeType::Update, "001A", OURS, &["Name", "Rating"], &[], json!({"Name": "Acme", "Rating": "Hot"}));
        assert!(!b.is_echo(&other));
        // Someone else's client, or no origin (a change in the UI, Apex, a flow).
        let theirs =
            event(ChangeType::Update, "001A", "com/salesforce/api/rest/62.0;client=dataloader", &["Name"], &[], json!({"Name": "Acme"}));
        assert!(!b.is_echo(&theirs));
        assert!(!b.is_echo(&event(ChangeType::Update, "001A", "", &["Name"], &[], json!({"Name": "Acme"}))));
        // A record we never wrote, an undelete, a delete of a record we only updated.
        assert!(!b.is_echo(&event(ChangeType::Update, "001B", OURS, &["Name"], &[], json!({"Name": "Acme"}))));
        assert!(!b.is_echo(&event(ChangeType::Undelete, "001A", OURS, &[], &[], json!({"Name": "Acme"}))));
        assert!(!b.is_echo(&event(ChangeType::Delete, "001A", OURS, &[], &[], json!({}))));
    }

    #[test]
    fn creates_and_deletes_of_ours_are_echoes() {
        let mut b = book();
        let created = event(
            ChangeType::Create,
            "001A",
            OURS,
            &[],
            &[],
            json!({"Name": "Acme", "NumberOfEmployees": 5, "OwnerId": "005x", "CreatedDate": "2026-12-07T08:00:00.000Z"}),
        );
        assert!(b.is_echo(&created));
        let defaulted = event(ChangeType::Create, "001A", OURS, &[], &[], json!({"Name": "Acme", "Rating": "Warm"}));
        assert!(!b.is_echo(&defaulted), "a default Salesforce filled in is news");
        b.deleted("001A");
        assert!(b.is_echo(&event(ChangeType::Delete, "001A", OURS, &[], &[], json!({}))));
    }

    #[test]
    fn an_object_another_table_pulls_too_keeps_its_events() {
        let mut b = book();
        let e = event(ChangeType::Update, "001A", OURS, &["Name"], &[], json!({"Name": "Acme"}));
        assert!(b.is_echo(&e));
        b.share(["Account".to_string()]);
        assert!(!b.is_echo(&e), "a mirror of Account learns our write from the stream");
    }

    #[test]
    fn the_newest_write_counts_and_the_book_stays_bounded() {
        let mut b = book();
        b.wrote("001A", json!({"Name": "Acme 2"}).as_object().unwrap());
        let first = event(ChangeType::Update, "001A", OURS, &["Name"], &[], json!({"Name": "Acme"}));
        assert!(!b.is_echo(&first), "an older value of ours: the apply decides, as before");
        let mut small = EchoBook::new(2);
        for id in ["1", "2", "3"] {
            small.wrote(id, &Map::new());
        }
        assert_eq!(small.len(), 2);
        assert!(!small.is_echo(&event(ChangeType::Update, "1", OURS, &["LastModifiedDate"], &[], json!({}))), "evicted");
        assert!(small.is_echo(&event(ChangeType::Update, "3", OURS, &["LastModifiedDate"], &[], json!({}))));
    }

    #[test]
    fn numbers_compare_by_value() {
        assert!(same(&json!(5), &json!(5.0)));
        assert!(same(&json!("42.50"), &json!(42.5)));
        assert!(same(&json!(-0.0), &json!(0)));
        assert!(!same(&json!(42), &json!(42.01)));
        assert!(!same(&json!("x"), &json!(1)));
        assert!(same(&json!(""), &Value::Null));
        assert!(!same(&json!("a"), &json!("A")));
    }
}
