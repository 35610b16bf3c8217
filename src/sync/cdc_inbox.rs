//! A change-stream listener's inbox: what its thread hands the worker, bounded. Events are
//! judged as they are delivered, in stream order (`plan::echoes`): an echo of our own write is
//! dropped, an event older than such a write is dropped and its object polled, and a full
//! inbox drops new events and reports their objects missed; a dropped event's position still
//! moves on.

use super::cdc_transport::object_named;
use crate::plan::echoes::{EchoBook, Heard};
use salesforce::cdc::ChangeEvent;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::sync::Mutex;

/// Events a connection's inbox holds before it drops new ones (and reports them missed).
pub const INBOX_EVENTS: usize = 10_000;

/// What a listener has for the worker; shared by the two, bounded.
#[derive(Default)]
pub(super) struct Inbox {
    /// With the echo book's stamp at delivery (`EchoBook::hear`).
    pub(super) events: VecDeque<(ChangeEvent, u64)>,
    /// Objects whose events may have been missed (invalid replay id, gap events, a full
    /// inbox, a new subscription, an event older than a write of ours): poll them.
    pub(super) missed: BTreeSet<String>,
    /// (channel -> replay id) of events dropped because the inbox was full or they were
    /// older than a write of ours (the catch-up poll reads what they said), or because they
    /// only echoed our own writes: the position still moves on.
    pub(super) dropped: HashMap<String, i64>,
    /// Events dropped as echoes of our own writes.
    pub(super) echoes: u64,
    /// Latest stream state: Some(true) subscribed, Some(false) down; None: no news.
    pub(super) up: Option<bool>,
    pub(super) down: Option<String>,
    /// The transport of the latest subscription.
    pub(super) transport: Option<&'static str>,
    /// Why the Pub/Sub API is not used (the first fallback only: logged once).
    pub(super) fallback: Option<String>,
}

/// What the listener thread tells the worker.
pub(super) enum Note {
    Subscribed(&'static str),
    /// Using CometD because the Pub/Sub API failed so (the first time only).
    Fallback(String),
    Event(Box<ChangeEvent>),
    Missed(Vec<String>),
    Down(String),
}

/// A dropped event's channel position moves on past it.
pub(super) fn move_past(dropped: &mut HashMap<String, i64>, e: &ChangeEvent) {
    let id = dropped.entry(e.channel.clone()).or_insert(e.replay_id);
    *id = (*id).max(e.replay_id);
}

/// Puts a note in the inbox (dropping an event when it is full, when it only echoes what
/// this process wrote, or when it is older than such a write: its object is polled) and
/// wakes the worker.
pub(super) fn deliver(inbox: &Mutex<Inbox>, echoes: &Mutex<EchoBook>, wake: &mut UnixStream, note: Note) {
    {
        let mut b = inbox.lock().unwrap_or_else(|p| p.into_inner());
        match note {
            Note::Subscribed(t) => {
                b.up = Some(true);
                b.transport = Some(t);
            }
            Note::Fallback(why) => b.fallback = Some(why),
            Note::Down(why) => {
                b.up = Some(false);
                b.down = Some(why);
            }
            Note::Missed(objects) => b.missed.extend(objects),
            Note::Event(e) => match judged(echoes, &e) {
                (Heard::Echo, _) => {
                    move_past(&mut b.dropped, &e);
                    b.echoes += 1;
                }
                (Heard::Stale, _) => {
                    b.missed.insert(object_named(&e));
                    move_past(&mut b.dropped, &e);
                }
                _ if b.events.len() >= INBOX_EVENTS => {
                    b.missed.insert(object_named(&e));
                    move_past(&mut b.dropped, &e);
                }
                (Heard::News, stamp) => b.events.push_back((*e, stamp)),
            },
        }
    }
    let _ = wake.write(&[1]);
}

/// The book's verdict on `e` and its stamp, taken together under the book's lock (the inbox's
/// held too), so events are judged in delivery order and no write is noted in between.
fn judged(echoes: &Mutex<EchoBook>, e: &ChangeEvent) -> (Heard, u64) {
    let mut book = echoes.lock().unwrap_or_else(|p| p.into_inner());
    (book.hear(e, None), book.stamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use salesforce::cdc::parse_event;
    use serde_json::json;
    use std::time::Duration;

    fn event(replay_id: i64) -> ChangeEvent {
        parse_event(&json!({
            "channel": "/data/AccountChangeEvent",
            "data": {"event": {"replayId": replay_id}, "payload": {"ChangeEventHeader": {
                "entityName": "Account", "recordIds": ["001000000000001AAA"], "changeType": "UPDATE"}}}
        }))
        .expect("a change event")
    }

    #[test]
    fn echoes_of_our_writes_move_the_position_on_without_a_poll() {
        let inbox = Mutex::new(Inbox::default());
        let echoes = Mutex::new(EchoBook::new(10, Duration::from_secs(60)));
        echoes.lock().unwrap().wrote("001000000000001AAA", json!({"Name": "Ours"}).as_object().unwrap());
        let (mut wake, _rx) = UnixStream::pair().unwrap();
        wake.set_nonblocking(true).unwrap();
        let mut ours = event(7);
        ours.header.change_origin = "com/salesforce/api/rest/62.0;client=sfsync".into();
        ours.header.changed_fields = vec!["Name".into()];
        ours.fields.insert("Name".into(), json!("Ours"));
        let mut theirs = ours.clone();
        theirs.replay_id = 8;
        theirs.fields.insert("Name".into(), json!("Theirs"));
        deliver(&inbox, &echoes, &mut wake, Note::Event(Box::new(ours)));
        deliver(&inbox, &echoes, &mut wake, Note::Event(Box::new(theirs)));
        let b = inbox.lock().unwrap();
        assert_eq!(b.events.iter().map(|(e, _)| e.replay_id).collect::<Vec<_>>(), [8], "only the change that is not ours");
        assert_eq!((b.echoes, b.dropped.get("/data/AccountChangeEvent")), (1, Some(&7)));
        assert!(b.missed.is_empty(), "an echo needs no poll");
    }

    #[test]
    fn a_change_older_than_our_write_is_polled_not_applied() {
        let inbox = Mutex::new(Inbox::default());
        let echoes = Mutex::new(EchoBook::new(10, Duration::from_secs(60)));
        echoes.lock().unwrap().wrote("001000000000001AAA", json!({"Name": "Ours"}).as_object().unwrap());
        let (mut wake, _rx) = UnixStream::pair().unwrap();
        wake.set_nonblocking(true).unwrap();
        // Another client's change committed before our write, delivered after it was noted.
        let mut theirs = event(7);
        theirs.header.changed_fields = vec!["Name".into()];
        theirs.fields.insert("Name".into(), json!("Theirs"));
        let mut ours = theirs.clone();
        ours.replay_id = 8;
        ours.header.change_origin = "com/salesforce/api/rest/62.0;client=sfsync".into();
        ours.fields.insert("Name".into(), json!("Ours"));
        deliver(&inbox, &echoes, &mut wake, Note::Event(Box::new(theirs)));
        deliver(&inbox, &echoes, &mut wake, Note::Event(Box::new(ours)));
        let b = inbox.lock().unwrap();
        assert!(b.events.is_empty(), "neither is applied");
        assert!(b.missed.contains("Account"), "the record is read as it is now");
        assert_eq!((b.echoes, b.dropped.get("/data/AccountChangeEvent")), (1, Some(&8)));
    }

    #[test]
    fn a_full_inbox_drops_events_and_reports_their_object_missed() {
        let inbox = Mutex::new(Inbox::default());
        let echoes = Mutex::new(EchoBook::new(10, Duration::from_secs(60)));
        let (mut wake, _rx) = UnixStream::pair().unwrap();
        wake.set_nonblocking(true).unwrap();
        for i in 1..=(INBOX_EVENTS as i64 + 5) {
            deliver(&inbox, &echoes, &mut wake, Note::Event(Box::new(event(i))));
        }
        let b = inbox.lock().unwrap();
        assert_eq!(b.events.len(), INBOX_EVENTS, "bounded");
        assert_eq!(b.events.back().map(|(e, _)| e.replay_id), Some(INBOX_EVENTS as i64), "the oldest are kept, in order");
        assert!(b.missed.contains("Account"), "the dropped ones are polled");
        assert_eq!(b.dropped.get("/data/AccountChangeEvent"), Some(&(INBOX_EVENTS as i64 + 5)), "the position still moves on");
    }
}
