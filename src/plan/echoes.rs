//! Our own writes coming back as change events ("echoes"), and events older than a write of
//! ours, told apart before they reach the inbox.
//!
//! Every record the worker pushes comes back on the change stream. Applying an echo changes
//! nothing (the apply compares with what was sent), but under a push backlog the echoes fill
//! the stream's bounded inbox, which then drops events and polls their objects: the pushed
//! records are read back in full. The worker notes what it wrote in an [`EchoBook`], and the
//! listener drops an event only when it says nothing we did not write ourselves: it came
//! from our API client, and every field it changed holds exactly the value we sent (a
//! Salesforce automation that rewrote a field on save shows another value, or another field,
//! and the event goes through). A dropped echo still moves the stream's position on.
//!
//! The stream delivers a record's events in commit order, so until the echo of our newest
//! write of a record has come back, any other event of that record was committed before that
//! write: its values are older than what Salesforce holds now. Applied, such an event would
//! overwrite the newer value we pushed (with the echo applied after it, the row was
//! repaired; a dropped echo repairs nothing). Such an event is [`Heard::Stale`]: the object
//! is polled instead, which reads the record as it is now. The book counts each record's
//! writes whose echo is still to come; forgetting a record (evicted, or its echo overdue) is
//! always safe: its events are then applied in order, echoes included, as without a book.

use super::cdc::flatten;
use salesforce::cdc::{ChangeEvent, ChangeType};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

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

/// One record's writes whose echoes are still to come.
#[derive(Debug)]
struct Entry {
    written: Written,
    /// Writes noted whose event has not come back yet.
    awaited: u32,
    /// The book's note counter at the newest write (`EchoBook::stamp`).
    seq: u64,
    noted: Instant,
    /// The newest write's echo came back (`awaited` reached 0 on it, not by patience): an
    /// event delivered before that write was noted is older than it.
    echoed: bool,
}

/// What an event is, judged against the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// Nothing but the echo of our newest write: dropped.
    Echo,
    /// Committed before a write of ours to one of its records whose echo is still to come:
    /// older than what Salesforce holds, so the object is polled instead.
    Stale,
    /// Anything else: applied.
    News,
}

/// What the worker wrote to Salesforce lately, by record Id: the newest `capacity` records.
#[derive(Debug)]
pub struct EchoBook {
    written: HashMap<String, Entry>,
    order: VecDeque<String>,
    capacity: usize,
    /// Notes made so far: an event delivered at stamp `s` came before every note after `s`.
    seq: u64,
    /// How long a write's echo is awaited; after that the record's events apply in order.
    patience: Duration,
    /// Objects (lowercase) that more than one table of this database pulls: a mirror, or a
    /// second table, needs our writes of them from the stream, so none of their events is
    /// dropped.
    shared: HashSet<String>,
}

impl EchoBook {
    pub fn new(capacity: usize, patience: Duration) -> Self {
        EchoBook { written: HashMap::new(), order: VecDeque::new(), capacity, seq: 0, patience, shared: HashSet::new() }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.written.len()
    }

    /// The note counter now: stamped on an event delivered without a verdict, so the drain
    /// can tell which notes came after it (`hear`).
    pub fn stamp(&self) -> u64 {
        self.seq
    }

    /// We saved record `id` with `fields` (Salesforce names, values as sent).
    pub fn wrote(&mut self, id: &str, fields: &Map<String, Value>) {
        self.note(id, |w| match w {
            Some(Written::Fields(mut f)) => {
                f.extend(fields.iter().map(|(k, v)| (k.clone(), v.clone())));
                Written::Fields(f)
            }
            _ => Written::Fields(fields.clone()),
        });
    }

    /// We deleted record `id`.
    pub fn deleted(&mut self, id: &str) {
        self.note(id, |_| Written::Deleted);
    }

    /// The objects more than one table pulls: their events are never echoes.
    pub fn share(&mut self, objects: impl IntoIterator<Item = String>) {
        self.shared = objects.into_iter().map(|o| o.to_ascii_lowercase()).collect();
    }

    fn note(&mut self, id: &str, merge: impl FnOnce(Option<Written>) -> Written) {
        self.seq += 1;
        let (seq, now) = (self.seq, Instant::now());
        match self.written.remove(id) {
            Some(e) => {
                let awaited = e.awaited + 1;
                self.written.insert(id.to_string(), Entry { written: merge(Some(e.written)), awaited, seq, noted: now, echoed: false });
            }
            None => {
                self.written.insert(id.to_string(), Entry { written: merge(None), awaited: 1, seq, noted: now, echoed: false });
                self.order.push_back(id.to_string());
                while self.order.len() > self.capacity {
                    if let Some(old) = self.order.pop_front() {
                        self.written.remove(&old);
                    }
                }
            }
        }
    }

    /// Judges event `e` in stream order and counts the echoes it brings back. `delivered` is
    /// None when the listener hears it; at the worker's drain, the stamp it was delivered at
    /// (`stamp`): only writes noted after it are judged again (the event can beat the answer
    /// of the call that caused it).
    pub fn hear(&mut self, e: &ChangeEvent, delivered: Option<u64>) -> Heard {
        let h = &e.header;
        if h.record_ids.is_empty() || self.shared.contains(&h.entity_name.to_ascii_lowercase()) {
            return Heard::News;
        }
        let ours = from_sfsync(&h.change_origin);
        let mut verdicts = Vec::with_capacity(h.record_ids.len());
        for id in &h.record_ids {
            let Some(w) = self.written.get_mut(id) else {
                verdicts.push(Heard::News);
                continue;
            };
            if w.awaited > 0 && w.noted.elapsed() > self.patience {
                // Its echo never came (a save that changed nothing, a stream that lost it):
                // no longer awaited, the record's events are applied in order as they come.
                w.awaited = 0;
            }
            if let Some(stamp) = delivered {
                if w.seq <= stamp {
                    // Delivered after the newest note: the listener judged it then.
                    verdicts.push(Heard::News);
                    continue;
                }
                if w.echoed {
                    // Delivered before the newest write was noted, and that write's echo has
                    // come back since (the listener judged it, after this one): the stream
                    // delivers in commit order, so this event is older than our write.
                    verdicts.push(Heard::Stale);
                    continue;
                }
            }
            if w.awaited == 0 {
                verdicts.push(Heard::News);
                continue;
            }
            // Only a save like ours can be its echo: a create or update after fields we sent, a
            // delete after ours.
            let alike = matches!(
                (&w.written, &h.change_type),
                (Written::Fields(_), ChangeType::Create | ChangeType::Update) | (Written::Deleted, ChangeType::Delete)
            );
            if !ours || !alike {
                if ours && w.awaited > 1 {
                    // Likely the echo of an earlier write of ours (noted before the newest).
                    w.awaited -= 1;
                }
                verdicts.push(Heard::Stale);
                continue;
            }
            w.awaited -= 1;
            w.echoed = w.awaited == 0;
            verdicts.push(match (w.awaited, echoes(&w.written, e)) {
                (0, true) => Heard::Echo,
                // The event of our newest write, with what an automation changed on save.
                // (Or of a write of ours never noted, a Bulk job's: applied, and the newest
                // write's echo, no longer awaited, is applied after it, as without a book.)
                (0, false) => Heard::News,
                // An earlier write's: older than the newest.
                _ => Heard::Stale,
            });
        }
        if verdicts.contains(&Heard::Stale) {
            Heard::Stale
        } else if verdicts.iter().all(|v| *v == Heard::Echo) {
            Heard::Echo
        } else {
            Heard::News
        }
    }
}

/// Whether `e`, from our client, holds nothing but what `written` says we sent.
fn echoes(written: &Written, e: &ChangeEvent) -> bool {
    let h = &e.header;
    let Some(payload) = flatten(&e.fields) else { return false };
    match (written, &h.change_type) {
        (Written::Deleted, ChangeType::Delete) => true,
        (Written::Fields(sent), ChangeType::Update) => h.changed_fields.iter().all(|f| {
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
        (Written::Fields(sent), ChangeType::Create) => payload.iter().all(|(f, now)| {
            ON_EVERY_SAVE.contains(&f.as_str())
                || ON_CREATE.contains(&f.as_str())
                || now.is_null()
                || sent.get(f).is_some_and(|v| same(v, now))
        }),
        _ => false,
    }
}

/// Whether a `changeOrigin` (`com/salesforce/api/rest/62.0;client=sfsync`) names our client
/// (sfsync of any database on the org).
pub fn from_sfsync(origin: &str) -> bool {
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

    const PATIENCE: Duration = Duration::from_secs(120);

    fn book() -> EchoBook {
        let mut b = EchoBook::new(10, PATIENCE);
        b.wrote("001A", json!({"Name": "Acme", "NumberOfEmployees": 5, "Site": null}).as_object().unwrap());
        b
    }

    fn update(id: &str, origin: &str, name: &str) -> ChangeEvent {
        event(ChangeType::Update, id, origin, &["Name"], &[], json!({"Name": name}))
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
        assert_eq!(book().hear(&e, None), Heard::Echo);
        let nulled = event(ChangeType::Update, "001A", OURS, &["Site"], &["Site"], json!({"Site": null}));
        assert_eq!(book().hear(&nulled, None), Heard::Echo);
    }

    #[test]
    fn anything_we_did_not_write_goes_through() {
        // An automation rewrote our value on save, or set a field we never sent: the event
        // of our write, so news.
        assert_eq!(book().hear(&update("001A", OURS, "ACME"), None), Heard::News);
        let other = event(ChangeType::Update, "001A", OURS, &["Name", "Rating"], &[], json!({"Name": "Acme", "Rating": "Hot"}));
        assert_eq!(book().hear(&other, None), Heard::News);
        // A record we never wrote.
        assert_eq!(book().hear(&update("001B", OURS, "Acme"), None), Heard::News);
        // An undelete, or a delete of a record we only updated, before our update's echo:
        // no echo of it, so committed before it; the poll reads the record as it is.
        assert_eq!(book().hear(&event(ChangeType::Undelete, "001A", OURS, &[], &[], json!({"Name": "Acme"})), None), Heard::Stale);
        assert_eq!(book().hear(&event(ChangeType::Delete, "001A", OURS, &[], &[], json!({})), None), Heard::Stale);
        // Once the echo came back, the record's next events are news, even with our values.
        let mut b = book();
        assert_eq!(b.hear(&update("001A", OURS, "Acme"), None), Heard::Echo);
        assert_eq!(b.hear(&update("001A", OURS, "Acme"), None), Heard::News);
        assert_eq!(b.hear(&update("001A", "", "Acme"), None), Heard::News);
    }

    #[test]
    fn what_another_client_committed_before_our_write_came_back_is_stale() {
        // Someone else's change (another client, the UI, a flow) delivered after our write
        // and before its echo: committed before our write, older than what Salesforce holds.
        let mut b = book();
        let theirs = update("001A", "com/salesforce/api/rest/62.0;client=dataloader", "Theirs");
        assert_eq!(b.hear(&theirs, None), Heard::Stale);
        assert_eq!(b.hear(&update("001A", "", "Theirs"), None), Heard::Stale);
        // Our echo still comes back as one; after it, their changes are news again.
        assert_eq!(b.hear(&update("001A", OURS, "Acme"), None), Heard::Echo);
        assert_eq!(b.hear(&theirs, None), Heard::News);
    }

    #[test]
    fn a_late_create_event_after_our_next_write_is_stale() {
        // We created the record (Salesforce filled in a default), then updated it; the
        // create's event arrives after the update was noted.
        let mut b = EchoBook::new(10, PATIENCE);
        b.wrote("001A", json!({"Name": "Acme"}).as_object().unwrap());
        b.wrote("001A", json!({"Rating": "Hot"}).as_object().unwrap());
        let created = event(ChangeType::Create, "001A", OURS, &[], &[], json!({"Name": "Acme", "Rating": null, "Industry": "Default"}));
        assert_eq!(b.hear(&created, None), Heard::Stale, "its snapshot predates our update");
        let updated = event(ChangeType::Update, "001A", OURS, &["Rating"], &[], json!({"Rating": "Hot"}));
        assert_eq!(b.hear(&updated, None), Heard::Echo);
    }

    #[test]
    fn an_event_delivered_before_the_write_was_noted_is_judged_again_at_the_drain() {
        let mut b = EchoBook::new(10, PATIENCE);
        // Delivered while the book knew nothing of the record: news then.
        let echo = update("001A", OURS, "Acme");
        let theirs = update("001A", "", "Theirs");
        let at = b.stamp();
        assert_eq!(b.hear(&echo, None), Heard::News);
        assert_eq!(b.hear(&theirs, None), Heard::News);
        b.wrote("001A", json!({"Name": "Acme"}).as_object().unwrap());
        // The echo beat the call's answer: told apart now. The other client's change,
        // delivered before our write was noted, may predate it.
        assert_eq!(b.hear(&echo, Some(at)), Heard::Echo);
        let mut b2 = EchoBook::new(10, PATIENCE);
        b2.wrote("001A", json!({"Name": "Acme"}).as_object().unwrap());
        let at2 = b2.stamp();
        b2.wrote("001A", json!({"Name": "Acme 2"}).as_object().unwrap());
        assert_eq!(b2.hear(&theirs, Some(at2 - 1)), Heard::Stale);
        // Delivered after the newest note: the listener's verdict stands.
        let mut b3 = book();
        let at3 = b3.stamp();
        assert_eq!(b3.hear(&theirs, Some(at3)), Heard::News);
        // Our write's event beat the answer, with a field an automation set on save: news.
        let mut b4 = EchoBook::new(10, PATIENCE);
        let at4 = b4.stamp();
        b4.wrote("001A", json!({"Industry": "Energy"}).as_object().unwrap());
        let automated =
            event(ChangeType::Update, "001A", OURS, &["Industry", "Rating"], &[], json!({"Industry": "Energy", "Rating": "Hot"}));
        assert_eq!(b4.hear(&automated, Some(at4)), Heard::News);
        assert_eq!(b4.hear(&update("001A", "", "Theirs"), None), Heard::News, "nothing awaited any more");
    }

    #[test]
    fn creates_and_deletes_of_ours_are_echoes() {
        let created = event(
            ChangeType::Create,
            "001A",
            OURS,
            &[],
            &[],
            json!({"Name": "Acme", "NumberOfEmployees": 5, "OwnerId": "005x", "CreatedDate": "2026-12-07T08:00:00.000Z"}),
        );
        assert_eq!(book().hear(&created, None), Heard::Echo);
        let defaulted = event(ChangeType::Create, "001A", OURS, &[], &[], json!({"Name": "Acme", "Rating": "Warm"}));
        assert_eq!(book().hear(&defaulted, None), Heard::News, "a default Salesforce filled in is news");
        let mut b = book();
        b.deleted("001A");
        // The update's echo, then the delete's.
        assert_eq!(b.hear(&update("001A", OURS, "Acme"), None), Heard::Stale, "older than the delete");
        assert_eq!(b.hear(&event(ChangeType::Delete, "001A", OURS, &[], &[], json!({})), None), Heard::Echo);
        // A rolled-back write-through insert: the backend's create (sfsync too, but not this
        // book's) arrives after the worker deleted the record again; it is older than the delete.
        let mut wt = EchoBook::new(10, PATIENCE);
        wt.deleted("001W");
        let created = event(ChangeType::Create, "001W", OURS, &[], &[], json!({"Name": "Rolled back"}));
        assert_eq!(wt.hear(&created, None), Heard::Stale);
        assert_eq!(wt.hear(&event(ChangeType::Delete, "001W", OURS, &[], &[], json!({})), None), Heard::Echo);
    }

    #[test]
    fn an_event_delivered_before_our_write_and_judged_after_its_echo_is_stale() {
        // A write-through insert rolled back: its create event reaches the inbox (nothing
        // noted yet), the worker deletes the record and notes it, the listener hears the
        // delete's echo, and only then does the drain judge the create again.
        let mut b = EchoBook::new(10, PATIENCE);
        let created = event(ChangeType::Create, "001W", OURS, &[], &[], json!({"Name": "Rolled back"}));
        assert_eq!(b.hear(&created, None), Heard::News);
        let at = b.stamp();
        b.deleted("001W");
        assert_eq!(b.hear(&event(ChangeType::Delete, "001W", OURS, &[], &[], json!({})), None), Heard::Echo);
        assert_eq!(b.hear(&created, Some(at)), Heard::Stale, "older than the delete whose echo came back");
        // The same for an update put back: the rolled-back change's event, then our write's echo.
        let mut u = EchoBook::new(10, PATIENCE);
        let theirs = update("001A", OURS, "Rolled back");
        assert_eq!(u.hear(&theirs, None), Heard::News);
        let at = u.stamp();
        u.wrote("001A", json!({"Name": "Acme"}).as_object().unwrap());
        assert_eq!(u.hear(&update("001A", OURS, "Acme"), None), Heard::Echo);
        assert_eq!(u.hear(&theirs, Some(at)), Heard::Stale);
        // An echo that never came (patience ran out) tells nothing of the order: applied.
        let mut impatient = EchoBook::new(10, Duration::ZERO);
        assert_eq!(impatient.hear(&theirs, None), Heard::News);
        let at = impatient.stamp();
        impatient.wrote("001A", json!({"Name": "Acme"}).as_object().unwrap());
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(impatient.hear(&update("001A", "", "Theirs"), None), Heard::News);
        assert_eq!(impatient.hear(&theirs, Some(at)), Heard::News);
    }

    #[test]
    fn an_object_another_table_pulls_too_keeps_its_events() {
        let mut b = book();
        b.share(["Account".to_string()]);
        assert_eq!(b.hear(&update("001A", OURS, "Acme"), None), Heard::News, "a mirror of Account learns our write from the stream");
        assert_eq!(b.hear(&update("001A", "", "Theirs"), None), Heard::News);
    }

    #[test]
    fn an_earlier_write_of_ours_coming_back_after_the_next_one_is_stale() {
        let mut b = book();
        b.wrote("001A", json!({"Name": "Acme 2"}).as_object().unwrap());
        assert_eq!(b.hear(&update("001A", OURS, "Acme"), None), Heard::Stale, "the first write's event");
        assert_eq!(b.hear(&update("001A", OURS, "Acme 2"), None), Heard::Echo);
    }

    #[test]
    fn the_book_stays_bounded_and_forgets_overdue_echoes() {
        let mut small = EchoBook::new(2, PATIENCE);
        for id in ["1", "2", "3"] {
            small.wrote(id, &Map::new());
        }
        assert_eq!(small.len(), 2);
        let touched = |id: &str| event(ChangeType::Update, id, OURS, &["LastModifiedDate"], &[], json!({}));
        assert_eq!(small.hear(&touched("1"), None), Heard::News, "evicted");
        assert_eq!(small.hear(&touched("3"), None), Heard::Echo);
        // An echo that never comes (a save that changed nothing) is not awaited forever; if
        // it comes after all, it is applied, as without a book.
        let mut impatient = EchoBook::new(10, Duration::ZERO);
        impatient.wrote("001A", json!({"Name": "Acme"}).as_object().unwrap());
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(impatient.hear(&update("001A", "", "Theirs"), None), Heard::News);
        assert_eq!(impatient.hear(&update("001A", OURS, "Acme"), None), Heard::News);
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
