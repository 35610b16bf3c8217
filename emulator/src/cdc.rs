//! Change Data Capture: the change event log and the CometD client table.
//!
//! Every committed save becomes a change event. The hook is `Writer`'s `Drop` (write.rs): a
//! `Writer` is one transaction, its undo log lists every save it applied (rolled-back saves are
//! gone from it), so dropping it "commits" them by handing them to the store's `ChangeSink`,
//! which is [`Hub`]. The store owns that trait so the dependency runs one way (cdc → store).
//! Several saves of one record within a transaction give one event with the first change type
//! and the final values, as Salesforce does. Events of one transaction share a `transactionKey` and number `sequenceNumber` 1, 2, ….
//!
//! Events are kept for 72 hours of emulator time and at most [`MAX_EVENTS`]; a transaction's
//! changes beyond [`MAX_TXN_EVENTS`] become one `GAP_OVERFLOW` event per object.

use crate::clock::{format_datetime, Clock};
use crate::out::Out;
use crate::schema::{Derived, ObjectDef, Schema};
use crate::store::{is_deleted, ChangeSink, Record, Store};
use crate::value::Value;
use parking_lot::{Mutex, RwLock};
use serde_json::Value as Json;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, OnceLock};
use tokio::sync::Notify;

/// Events are replayable for 72 hours (emulator clock).
pub const RETENTION_MS: i64 = 72 * 3_600_000;
/// Retained events at most (oldest dropped first): bounds memory at roughly 100 MB.
pub const MAX_EVENTS: usize = 100_000;
/// Changes of one transaction that get their own event; the rest become GAP_OVERFLOW.
pub const MAX_TXN_EVENTS: usize = 100_000;
/// Concurrent CometD clients (handshakes beyond this fail).
pub const MAX_CLIENTS: usize = 2_000;
/// Events per /meta/connect response; the rest follow on the next connect (immediately).
pub const MAX_BATCH: usize = 1_000;
/// An idle client (no request for the long-poll timeout plus this) is forgotten.
pub const CLIENT_IDLE_MS: i64 = 40_000;

mod origin;
use origin::current_origin;
pub use origin::{bulk_origin, request_origin, rest_origin, with_origin, ORIGIN};

/// The transaction an event belongs to.
pub struct TxnInfo {
    pub key: String,
    pub number: i64,
    pub commit_ms: i64,
    pub user: String,
    pub origin: String,
}

/// A change event. The JSON payload is rendered on first delivery (most events of a bulk load
/// are never read), from a snapshot of the record taken at commit.
pub struct Event {
    pub replay_id: i64,
    pub obj: usize,
    pub commit_ms: i64,
    pub txn: Arc<TxnInfo>,
    pub seq: i64,
    pub change_type: &'static str,
    pub record_ids: Vec<String>,
    /// The record as committed (None for header-only events).
    pub snapshot: Option<Record>,
    /// UPDATE: the fields whose value changed.
    pub changed: Vec<u16>,
    rendered: OnceLock<Arc<str>>,
    /// Set when the object's fields changed after this event: the schema ID it was committed with.
    pub schema_id: OnceLock<String>,
}

pub struct Sub {
    pub channel: String,
    /// None = /data/ChangeEvents (all objects).
    pub obj: Option<usize>,
    /// Replay ID of the last event delivered (or the starting point).
    pub after: i64,
}

pub struct CometClient {
    pub subs: Vec<Sub>,
    pub last_active_ms: i64,
    /// Bumped by every /meta/connect; a held connect that sees a newer one returns.
    pub connect_gen: u64,
    pub connecting: u32,
}

pub struct Inner {
    pub events: VecDeque<Event>,
    pub last_replay: i64,
    /// Highest replay ID dropped by retention (or reset): replaying from below it is invalid.
    pub trimmed_upto: i64,
    commit_number: i64,
    txn_counter: u64,
    pub disabled: HashSet<usize>,
    pub clients: HashMap<String, CometClient>,
    pub requests: u64,
    pub stream_drops: u64, // bumped by `drop_clients`: Pub/Sub `Subscribe` calls then end
    /// Delivery held (`cdc/hold`): events are published and kept, but no subscriber receives
    /// any until it is released, as when Salesforce's stream runs late.
    pub held: bool,
}

pub struct Hub {
    pub inner: Mutex<Inner>,
    /// Woken on every commit and client change; held /meta/connect requests wait on it.
    pub notify: Notify,
    /// Per object: channel suffix (`AccountChangeEvent`, ...) and schema ID (follows field changes).
    pub channels: Vec<String>,
    pub schema_ids: RwLock<Vec<String>>,
}

/// 22 URL-safe base64 characters derived from the object's shape, like Salesforce's schema IDs.
fn schema_id(def: &ObjectDef) -> String {
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut out = String::new();
    for round in 0..2u64 {
        for b in def.name.bytes().chain(def.fields.iter().flat_map(|f| f.name.bytes())).chain(round.to_le_bytes()) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let mut x = h;
        for _ in 0..11 {
            out.push(B64[(x & 63) as usize] as char);
            x >>= 6;
        }
    }
    out
}

pub fn channel_name(def: &ObjectDef) -> String {
    match def.name.strip_suffix("__c") {
        Some(base) => format!("{base}__ChangeEvent"),
        None => format!("{}ChangeEvent", def.name),
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum ChangeType {
    Create,
    Update,
    Delete,
    Undelete,
}

impl ChangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Create => "CREATE",
            ChangeType::Update => "UPDATE",
            ChangeType::Delete => "DELETE",
            ChangeType::Undelete => "UNDELETE",
        }
    }
    pub fn parse(s: &str) -> Option<ChangeType> {
        Some(match s.to_ascii_uppercase().trim_start_matches("GAP_") {
            "CREATE" => ChangeType::Create,
            "UPDATE" => ChangeType::Update,
            "DELETE" => ChangeType::Delete,
            "UNDELETE" => ChangeType::Undelete,
            _ => return None,
        })
    }
}

/// Where a field goes in the event: as itself, inside a compound field, or not at all.
pub enum Slot<'a> {
    Plain(&'a str),
    Part(String, String),
    Skip,
}

pub fn slot<'a>(def: &'a ObjectDef, fi: usize) -> Slot<'a> {
    let fd = &def.fields[fi];
    if fi == 0 || fi == def.sys.is_deleted || fi == def.sys.system_modstamp || fd.derived != Derived::No {
        return Slot::Skip;
    }
    if let Some(c) = &fd.compound_field {
        let prefix = c.strip_suffix("Address").unwrap_or(c);
        let part = fd.name.strip_prefix(prefix).unwrap_or(&fd.name);
        return Slot::Part(c.clone(), part.to_string());
    }
    let person_name = def.fields.iter().any(|f| f.derived == Derived::FullName);
    if person_name && ["Salutation", "FirstName", "MiddleName", "LastName", "Suffix"].contains(&fd.name.as_str()) {
        return Slot::Part("Name".into(), fd.name.clone());
    }
    Slot::Plain(&fd.name)
}

/// Change events carry datetimes as `2024-05-20T20:49:32.000Z`.
fn event_json(v: &Value) -> Json {
    match v {
        Value::DateTime(ms) => {
            let s = format_datetime(*ms);
            Json::String(s.strip_suffix("+0000").map(|p| format!("{p}Z")).unwrap_or(s))
        }
        other => other.to_json(),
    }
}

/// Fields of the payload (after the header) and the changed/nulled field names. `changed` is
/// None for CREATE/UNDELETE (every non-null field).
fn body_fields(def: &ObjectDef, rec: &Record, changed: Option<&[u16]>) -> (Vec<(String, Out)>, Vec<String>, Vec<String>) {
    let (mut out, mut changed_names, mut nulled) = (Vec::<(String, Out)>::new(), vec![], vec![]);
    let put = |key: &str, part: Option<&str>, v: Json, out: &mut Vec<(String, Out)>| match part {
        None => out.push((key.to_string(), Out::J(v))),
        Some(p) => {
            let pos = match out.iter().position(|(k, _)| k == key) {
                Some(i) => i,
                None => {
                    out.push((key.to_string(), Out::O(vec![])));
                    out.len() - 1
                }
            };
            if let Out::O(parts) = &mut out[pos].1 {
                parts.push((p.to_string(), Out::J(v)));
            }
        }
    };
    let all: Vec<u16>;
    let fields = match changed {
        Some(c) => c,
        None => {
            all = (0..def.fields.len() as u16).collect();
            &all
        }
    };
    for &fi in fields {
        let fi = fi as usize;
        let (key, part) = match slot(def, fi) {
            Slot::Skip => continue,
            Slot::Plain(n) => (n.to_string(), None),
            Slot::Part(c, p) => (c, Some(p)),
        };
        let v = rec.get(fi);
        if changed.is_some() {
            let name = part.as_ref().map(|p| format!("{key}.{p}")).unwrap_or_else(|| key.clone());
            if v.is_null() {
                nulled.push(name.clone());
            }
            changed_names.push(name);
        } else if v.is_null() {
            continue;
        }
        put(&key, part.as_deref(), event_json(v), &mut out);
    }
    (out, changed_names, nulled)
}

/// The fields an UPDATE changed (payload-visible ones only).
fn diff(def: &ObjectDef, old: &Record, new: &Record) -> Vec<u16> {
    (0..def.fields.len()).filter(|&fi| !matches!(slot(def, fi), Slot::Skip) && old.get(fi) != new.get(fi)).map(|fi| fi as u16).collect()
}

fn render(def: &ObjectDef, ev: &Event) -> Arc<str> {
    let (fields, changed, nulled) = match (&ev.snapshot, ev.change_type) {
        (Some(rec), "UPDATE") => body_fields(def, rec, Some(&ev.changed)),
        (Some(rec), _) => body_fields(def, rec, None),
        (None, _) => (vec![], vec![], vec![]),
    };
    let strs = |v: Vec<String>| Out::J(Json::Array(v.into_iter().map(Json::String).collect()));
    let t = &ev.txn;
    let header = Out::O(vec![
        ("entityName".into(), Out::J(Json::String(def.name.clone()))),
        ("recordIds".into(), strs(ev.record_ids.clone())),
        ("changeType".into(), Out::J(Json::String(ev.change_type.into()))),
        ("changeOrigin".into(), Out::J(Json::String(t.origin.clone()))),
        ("transactionKey".into(), Out::J(Json::String(t.key.clone()))),
        ("sequenceNumber".into(), Out::J(Json::from(ev.seq))),
        ("commitTimestamp".into(), Out::J(Json::from(t.commit_ms))),
        ("commitNumber".into(), Out::J(Json::from(t.number))),
        ("commitUser".into(), Out::J(Json::String(t.user.clone()))),
        ("nulledFields".into(), strs(nulled)),
        ("diffFields".into(), strs(vec![])),
        ("changedFields".into(), strs(changed)),
    ]);
    let mut entries = vec![("ChangeEventHeader".to_string(), header)];
    entries.extend(fields);
    serde_json::to_string(&Out::O(entries)).unwrap_or_default().into()
}

fn gap_type(kind: ChangeType) -> &'static str {
    match kind {
        ChangeType::Create => "GAP_CREATE",
        ChangeType::Update => "GAP_UPDATE",
        ChangeType::Delete => "GAP_DELETE",
        ChangeType::Undelete => "GAP_UNDELETE",
    }
}

impl Hub {
    pub fn new(schema: &Schema) -> Hub {
        Hub {
            inner: Mutex::new(Inner {
                events: VecDeque::new(),
                last_replay: 0,
                trimmed_upto: 0,
                commit_number: 1_100_670_838_950,
                txn_counter: 0,
                disabled: HashSet::new(),
                clients: HashMap::new(),
                requests: 0,
                stream_drops: 0,
                held: false,
            }),
            notify: Notify::new(),
            channels: schema.objects.iter().map(channel_name).collect(),
            schema_ids: RwLock::new(schema.objects.iter().map(schema_id).collect()),
        }
    }

    fn begin(inner: &mut Inner, clock: &Clock, user: &str) -> Arc<TxnInfo> {
        inner.commit_number += 1;
        inner.txn_counter += 1;
        let now = clock.now_ms();
        // Salesforce's keys look like 00051c8b-2e7b-1937-46d9-7e2ef68d1ab2.
        let mut x = (now as u64) ^ inner.txn_counter.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ inner.commit_number as u64;
        let mut hex = String::new();
        for _ in 0..2 {
            x ^= x >> 33;
            x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
            x ^= x >> 33;
            hex.push_str(&format!("{x:016x}"));
        }
        let key = format!("0000{}-{}-{}-{}-{}", &hex[0..4], &hex[4..8], &hex[8..12], &hex[12..16], &hex[16..28]);
        Arc::new(TxnInfo { key, number: inner.commit_number, commit_ms: now, user: user.into(), origin: current_origin() })
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        inner: &mut Inner,
        txn: &Arc<TxnInfo>,
        seq: &mut i64,
        obj: usize,
        change_type: &'static str,
        record_ids: Vec<String>,
        snapshot: Option<Record>,
        changed: Vec<u16>,
    ) {
        inner.last_replay += 1;
        *seq += 1;
        inner.events.push_back(Event {
            replay_id: inner.last_replay,
            obj,
            commit_ms: txn.commit_ms,
            txn: txn.clone(),
            seq: *seq,
            change_type,
            record_ids,
            snapshot,
            changed,
            rendered: OnceLock::new(),
            schema_id: OnceLock::new(),
        });
    }

    /// Drops events older than 72 h (emulator clock) or beyond the count cap.
    pub fn trim(inner: &mut Inner, now_ms: i64) {
        while let Some(front) = inner.events.front() {
            if front.commit_ms >= now_ms - RETENTION_MS && inner.events.len() <= MAX_EVENTS {
                break;
            }
            inner.trimmed_upto = front.replay_id;
            inner.events.pop_front();
        }
    }

    /// Header-only gap events (admin): `GAP_<kind>` per record, or one `GAP_OVERFLOW`.
    pub fn gap(&self, obj: usize, ids: &[String], kind: Option<ChangeType>, clock: &Clock, user: &str) -> Vec<i64> {
        let mut inner = self.inner.lock();
        let txn = Self::begin(&mut inner, clock, user);
        let mut seq = 0;
        let mut out = vec![];
        match kind {
            Some(k) => {
                for id in ids {
                    Self::push(&mut inner, &txn, &mut seq, obj, gap_type(k), vec![id.clone()], None, vec![]);
                    out.push(inner.last_replay);
                }
            }
            None => {
                Self::push(&mut inner, &txn, &mut seq, obj, "GAP_OVERFLOW", vec![], None, vec![]);
                out.push(inner.last_replay);
            }
        }
        Self::trim(&mut inner, clock.now_ms());
        drop(inner);
        self.notify.notify_waiters();
        out
    }

    /// Forgets retained events (admin reset, which also restores `schema`); replay IDs keep
    /// increasing.
    pub fn reset(&self, schema: &Schema) {
        *self.schema_ids.write() = schema.objects.iter().map(schema_id).collect();
        let mut inner = self.inner.lock();
        inner.events.clear();
        inner.trimmed_upto = inner.last_replay;
        inner.disabled.clear();
    }

    /// Before `obj`'s fields change: published events keep the field names and schema ID they had.
    pub fn fields_changing(&self, old: &Schema, obj: usize, new_def: &ObjectDef) {
        let inner = self.inner.lock();
        let mut ids = self.schema_ids.write();
        for ev in inner.events.iter().filter(|e| e.obj == obj) {
            ev.rendered.get_or_init(|| render(&old.objects[obj], ev));
            ev.schema_id.get_or_init(|| ids[obj].clone());
        }
        ids[obj] = schema_id(new_def);
    }

    /// Forgets every CometD client (they must handshake again) and wakes held connects; ends
    /// every Pub/Sub subscription (they must subscribe again).
    pub fn drop_clients(&self) -> usize {
        let n = {
            let mut inner = self.inner.lock();
            inner.stream_drops += 1;
            inner.clients.drain().count()
        };
        self.notify.notify_waiters();
        n
    }

    /// The `/data/...` message for an event as delivered on `channel`.
    pub fn message(&self, schema: &Schema, ev: &Event, channel: &str) -> String {
        let payload = ev.rendered.get_or_init(|| render(&schema.objects[ev.obj], ev));
        format!(
            r#"{{"data":{{"schema":"{}","payload":{},"event":{{"replayId":{}}}}},"channel":"{}"}}"#,
            ev.schema_id.get().unwrap_or(&self.schema_ids.read()[ev.obj]),
            payload,
            ev.replay_id,
            channel
        )
    }
}

impl ChangeSink for Hub {
    /// Turns one transaction's applied saves (a writer's undo log: object, seq, version before
    /// that save) into change events.
    fn commit(&self, schema: &Schema, store: &Store, journal: &[(usize, u64, Option<Record>)], clock: &Clock, user: &str) {
        if journal.is_empty() {
            return;
        }
        // The first entry per record carries the version before the transaction.
        let mut seen: HashSet<(usize, u64)> = HashSet::with_capacity(journal.len().min(MAX_TXN_EVENTS + 1));
        let mut inner = self.inner.lock();
        let txn = Hub::begin(&mut inner, clock, user);
        let mut seq = 0i64;
        let mut overflow: Vec<usize> = vec![];
        let mut produced = 0usize;
        for (obj, rseq, old) in journal {
            if inner.disabled.contains(obj) {
                continue;
            }
            if produced >= MAX_TXN_EVENTS {
                // Past the cap only the objects matter (an event each), not which records.
                if !overflow.contains(obj) {
                    overflow.push(*obj);
                }
                continue;
            }
            if !seen.insert((*obj, *rseq)) {
                continue;
            }
            let def = &schema.objects[*obj];
            let Some(new) = store.tables[*obj].recs.get(rseq) else { continue };
            let kind = match old {
                None if is_deleted(def, new) => continue,
                None => ChangeType::Create,
                Some(o) => match (is_deleted(def, o), is_deleted(def, new)) {
                    (false, true) => ChangeType::Delete,
                    (true, false) => ChangeType::Undelete,
                    (true, true) => continue,
                    (false, false) => ChangeType::Update,
                },
            };
            produced += 1;
            let id = new.get(0).as_str().unwrap_or("").to_string();
            let (snapshot, changed) = match (kind, old) {
                (ChangeType::Delete, _) => (None, vec![]),
                (ChangeType::Update, Some(o)) => (Some(new.clone()), diff(def, o, new)),
                _ => (Some(new.clone()), vec![]),
            };
            Hub::push(&mut inner, &txn, &mut seq, *obj, kind.as_str(), vec![id], snapshot, changed);
        }
        for obj in overflow {
            Hub::push(&mut inner, &txn, &mut seq, obj, "GAP_OVERFLOW", vec![], None, vec![]);
        }
        Hub::trim(&mut inner, clock.now_ms());
        drop(inner);
        self.notify.notify_waiters();
    }
}

/// What a /meta/connect poll found.
pub enum Poll {
    UnknownClient,
    /// A newer /meta/connect of the same client took over.
    Superseded,
    Events(Vec<String>),
}

impl Hub {
    /// Replay start for a subscription (deliver events after it); None for an invalid replay ID
    /// (not -1/-2, or outside the retained window).
    pub fn replay_start(inner: &Inner, replay: i64) -> Option<i64> {
        match replay {
            -1 => Some(inner.last_replay),
            -2 => Some(inner.trimmed_upto),
            n if n >= inner.trimmed_upto && n <= inner.last_replay => Some(n),
            _ => None,
        }
    }

    /// Takes the events due to a client (up to MAX_BATCH), advancing its subscriptions.
    pub fn poll(&self, schema: &Schema, client: &str, gen: u64, now_ms: i64) -> Poll {
        let mut inner = self.inner.lock();
        Self::trim(&mut inner, now_ms);
        let inner = &mut *inner;
        let Some(c) = inner.clients.get_mut(client) else { return Poll::UnknownClient };
        if c.connect_gen != gen {
            return Poll::Superseded;
        }
        c.last_active_ms = now_ms;
        if inner.held {
            return Poll::Events(vec![]);
        }
        // (replay id, sub, index into events)
        let mut due: Vec<(i64, usize, usize)> = vec![];
        for (si, s) in c.subs.iter().enumerate() {
            let start = inner.events.partition_point(|e| e.replay_id <= s.after);
            for (i, e) in inner.events.iter().enumerate().skip(start) {
                if s.obj.is_none_or(|o| o == e.obj) {
                    due.push((e.replay_id, si, i));
                    if due.len() > MAX_BATCH * 4 {
                        break;
                    }
                }
            }
        }
        due.sort_unstable();
        due.truncate(MAX_BATCH);
        let mut msgs = Vec::with_capacity(due.len());
        for (rid, si, i) in due {
            msgs.push(self.message(schema, &inner.events[i], &c.subs[si].channel));
            c.subs[si].after = rid;
        }
        Poll::Events(msgs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_ids_and_channels() {
        let schema = crate::schema::standard::default_schema();
        let a = schema.object("Account").unwrap();
        let id = schema_id(&schema.objects[a]);
        assert_eq!((id.len(), id.clone()), (22, schema_id(&schema.objects[a])), "22 characters, stable");
        assert_eq!(channel_name(&schema.objects[a]), "AccountChangeEvent");
    }

    #[test]
    fn replay_window() {
        let schema = crate::schema::standard::default_schema();
        let hub = Hub::new(&schema);
        let mut inner = hub.inner.lock();
        inner.last_replay = 10;
        inner.trimmed_upto = 4;
        assert_eq!(Hub::replay_start(&inner, -1), Some(10));
        assert_eq!(Hub::replay_start(&inner, -2), Some(4));
        assert_eq!(Hub::replay_start(&inner, 4), Some(4));
        assert_eq!(Hub::replay_start(&inner, 7), Some(7));
        for invalid in [3, 11, -3] {
            assert!(Hub::replay_start(&inner, invalid).is_none(), "{invalid}");
        }
    }
}
