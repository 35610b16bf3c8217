//! Change events applied directly: which events of a drain can be applied as they are, what
//! each record becomes after coalescing its events, and which columns an update touches.
//!
//! Two steps. `coalesce` folds a mapping's events, in delivery order, into one outcome per
//! record (a full record for a create, the changed mapped columns for an update, a delete, or
//! "let the pull read it"). `route` then looks at the local state of those records (known
//! here? a local change pending?) and splits them into what is applied directly and what is
//! left to the ordinary pull, which runs the conflict policy and every guard it has.

use super::convert;
use super::fields::ColumnMap;
use super::namespace;
use salesforce::cdc::{ChangeEvent, ChangeType};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// What the mapping needs from its change events, reduced to the decision.
pub struct Target<'a> {
    pub columns: &'a [ColumnMap],
    pub external_id: &'a str,
    /// The mapping's namespace: which external ID values are its keys (plan::namespace).
    pub namespace: &'a str,
    /// The mapping has a SOQL filter: whether a record matches it can't be told locally.
    pub filtered: bool,
    /// The mapping pushes: it leaves records of other tables and databases alone (a mirror
    /// holds every record).
    pushes: bool,
}

impl<'a> Target<'a> {
    pub fn new(columns: &'a [ColumnMap], external_id: &'a str, namespace: &'a str, filtered: bool, pushes: bool) -> Self {
        Target { columns, external_id, namespace, filtered, pushes }
    }
}

/// A record after all its events of one drain.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Created (then maybe updated): every field, compound parts flattened, as a pulled
    /// record (`Id` plus field values; fields missing from the event are null).
    Full(Map<String, Value>),
    /// Updated: the fields that changed (flattened names), nulled ones as null.
    Partial(Map<String, Value>),
    Delete,
    /// Not applicable as it is (undelete, gap, a compound field, something unknown): the
    /// pull reads the record.
    Poll,
}

/// A drain's events for one mapping, per record.
#[derive(Debug, Default, PartialEq)]
pub struct Coalesced {
    /// Record Id -> outcome, in the order records first appeared.
    pub records: Vec<(String, Outcome)>,
    /// The whole object must be polled (a filtered mapping, GAP_OVERFLOW, ...).
    pub poll_all: bool,
    /// Records changed in this drain by some client other than sfsync (every change of the
    /// rest came from sfsync of some database, so from a row that database holds).
    pub by_others: BTreeSet<String>,
}

/// `BillingAddress.City` -> `BillingCity`, `Name.LastName` -> `LastName`. None for parts of
/// compound fields whose flattened names we don't know (geolocations, ...).
pub fn part_field(compound: &str, part: &str) -> Option<String> {
    if compound == "Name" {
        return Some(part.to_string());
    }
    compound.strip_suffix("Address").map(|prefix| format!("{prefix}{part}"))
}

/// Payload fields with compound values flattened into their component fields. None when
/// the payload holds a compound value we can't flatten.
pub(crate) fn flatten(fields: &Map<String, Value>) -> Option<Map<String, Value>> {
    let mut out = Map::new();
    for (k, v) in fields {
        match v {
            Value::Object(parts) => {
                for (p, pv) in parts {
                    out.insert(part_field(k, p)?, pv.clone());
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Some(out)
}

fn mapped<'a>(t: &'a Target, field: &str) -> Option<&'a ColumnMap> {
    t.columns.iter().find(|c| c.field.eq_ignore_ascii_case(field))
}

/// Compound fields mapped as a whole (an address into a jsonb column): a change event holds
/// only the changed parts, and in another shape than the query returns.
fn compound_column(c: &ColumnMap) -> bool {
    matches!(c.sf_type.as_str(), "address" | "location")
}

/// Read-only fields a change event carries whenever they change.
const CARRIED_READ_ONLY: [&str; 4] = ["CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById"];

/// A mapped field whose value can change without an event listing it: formulas and roll-ups,
/// and read-only fields other than the audit ones (SystemModstamp, ...).
fn uncarried(c: &ColumnMap) -> bool {
    c.calculated || (!c.createable && !c.updateable && !CARRIED_READ_ONLY.iter().any(|f| f.eq_ignore_ascii_case(&c.field)))
}

/// A create's full record; None when it can't be complete: a mapped compound field (the
/// event nests its parts, the query returns another shape), or a mapped field events don't
/// carry missing from it (absent would read as null).
fn created(t: &Target, e: &ChangeEvent) -> Option<Map<String, Value>> {
    if e.fields.iter().any(|(k, v)| v.is_object() && mapped(t, k).is_some()) {
        return None;
    }
    let f = flatten(&e.fields)?;
    let complete = t.columns.iter().filter(|c| uncarried(c)).all(|c| f.keys().any(|k| k.eq_ignore_ascii_case(&c.field)));
    complete.then_some(f)
}

/// The changed fields of an UPDATE, flattened, with their new values. None when a changed
/// mapped field can't be read faithfully from the event.
fn changes(t: &Target, e: &ChangeEvent) -> Option<Map<String, Value>> {
    if t.columns.iter().any(uncarried) {
        // A formula of the record may have changed with it; the event wouldn't say.
        return None;
    }
    let h = &e.header;
    let mut out = Map::new();
    for name in h.changed_fields.iter().chain(&h.nulled_fields) {
        let nulled = h.nulled_fields.contains(name);
        let (field, value) = match name.split_once('.') {
            Some((compound, part)) => {
                let Some(field) = part_field(compound, part) else {
                    // An unknown compound: harmless unless we map it.
                    if mapped(t, compound).is_some() {
                        return None;
                    }
                    continue;
                };
                let v = e.fields.get(compound).and_then(|o| o.get(part)).cloned();
                (field, v)
            }
            None => (name.clone(), e.fields.get(name).cloned()),
        };
        if field.eq_ignore_ascii_case(t.external_id) {
            // A new external ID re-keys the linked row: the pull does that (apply::records).
            return None;
        }
        if mapped(t, &field).is_none() {
            continue;
        }
        let value = match value {
            Some(v) => v,
            None if nulled => Value::Null,
            // Listed as changed but not in the payload: don't guess.
            None => return None,
        };
        out.insert(field, value);
    }
    Some(out)
}

/// Folds the events (delivery order) into one outcome per record.
pub fn coalesce(t: &Target, events: &[ChangeEvent]) -> Coalesced {
    let mut out = Coalesced { poll_all: t.filtered || t.columns.iter().any(compound_column), ..Default::default() };
    let mut order: Vec<String> = Vec::new();
    let mut state: BTreeMap<String, Outcome> = BTreeMap::new();
    for e in events {
        let h = &e.header;
        if h.record_ids.is_empty() {
            // GAP_OVERFLOW, or an event we don't understand: re-read the object.
            out.poll_all = true;
            continue;
        }
        let by_sfsync = super::echoes::from_sfsync(&h.change_origin);
        // Several records changed the same way arrive as one event.
        for id in &h.record_ids {
            if !by_sfsync {
                out.by_others.insert(id.clone());
            }
            if !state.contains_key(id) {
                order.push(id.clone());
            }
            let prev = state.remove(id);
            let next = match &h.change_type {
                ChangeType::Create => match (prev, created(t, e)) {
                    (Some(Outcome::Poll), _) | (_, None) => Outcome::Poll,
                    (_, Some(mut f)) => {
                        f.insert("Id".into(), Value::String(id.clone()));
                        Outcome::Full(f)
                    }
                },
                ChangeType::Update => match (prev, changes(t, e)) {
                    (Some(Outcome::Poll), _) | (_, None) => Outcome::Poll,
                    (Some(Outcome::Delete), _) => Outcome::Poll,
                    (Some(Outcome::Full(mut f)), Some(c)) => {
                        f.extend(c);
                        Outcome::Full(f)
                    }
                    (Some(Outcome::Partial(mut p)), Some(c)) => {
                        p.extend(c);
                        Outcome::Partial(p)
                    }
                    (None, Some(c)) => Outcome::Partial(c),
                },
                ChangeType::Delete => Outcome::Delete,
                // Undelete brings back a record whose fields we don't have; gaps carry none.
                _ => Outcome::Poll,
            };
            state.insert(id.clone(), next);
        }
    }
    out.records = order.into_iter().map(|id| (id.clone(), state.remove(&id).expect("every id has a state"))).collect();
    out
}

/// A partial update of one record: the mapped columns it touches, values shaped for the
/// column (`convert::from_sf`; lookups still Salesforce Ids).
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    pub sfid: String,
    pub values: Map<String, Value>,
}

impl Update {
    /// The row for `jsonb_populate_record`, with the touched columns listed under `key`.
    pub fn row(&self, key: &str) -> Value {
        let mut r = self.values.clone();
        r.insert("sfid".into(), Value::String(self.sfid.clone()));
        r.insert(key.into(), Value::Array(self.values.keys().cloned().map(Value::String).collect()));
        Value::Object(r)
    }
}

/// Local state of the drain's records, read in the applying transaction.
#[derive(Debug, Default)]
pub struct Local {
    /// Records with a row here.
    pub known: BTreeSet<String>,
    /// Records with a local change waiting in the outbox: the conflict policy decides.
    pub pending: BTreeSet<String>,
    /// Records without a row here that belong to another table or database
    /// (`sync::others`): their updates are none of this mapping's business.
    pub others: BTreeSet<String>,
}

/// What one drain does to one mapping.
#[derive(Debug, Default, PartialEq)]
pub struct Routed {
    /// Created records, applied like pulled ones (same guards, linking by external id).
    pub creates: Vec<Map<String, Value>>,
    pub updates: Vec<Update>,
    /// Updates of records with a local change pending: resolved by the conflict policy
    /// with the event's changed fields (a field the event did not change is no Salesforce
    /// change, so never a conflict).
    pub contended: Vec<Update>,
    pub deletes: Vec<String>,
    /// Run the mapping's pull: something was left to it.
    pub poll: bool,
}

/// The (Id, Postgres key) pairs whose local state `route` needs.
pub fn lookups(t: &Target, c: &Coalesced) -> Vec<(String, Option<String>)> {
    c.records
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Full(_) | Outcome::Partial(_)))
        .map(|(id, o)| {
            let pgid = match o {
                Outcome::Full(f) => f
                    .get(t.external_id)
                    .and_then(|v| match v {
                        Value::Null => None,
                        Value::String(s) => Some(s.clone()),
                        other => Some(other.to_string()),
                    })
                    .and_then(|v| match namespace::decode(t.namespace, &v) {
                        namespace::Owner::Ours(key) => Some(key.to_string()),
                        namespace::Owner::Other => None,
                    }),
                _ => None,
            };
            (id.clone(), pgid)
        })
        .collect()
}

/// Splits the coalesced records into direct applies and the pull.
pub fn route(t: &Target, c: Coalesced, local: &Local) -> Routed {
    let mut out = Routed { poll: c.poll_all, ..Default::default() };
    if c.poll_all {
        return out;
    }
    let by_others = c.by_others;
    for (id, o) in c.records {
        match o {
            Outcome::Delete => out.deletes.push(id),
            Outcome::Poll => out.poll = true,
            Outcome::Full(_) if local.pending.contains(&id) => out.poll = true,
            Outcome::Full(f) => out.creates.push(f),
            Outcome::Partial(p) => {
                let values: Map<String, Value> =
                    p.iter().filter_map(|(field, v)| mapped(t, field).map(|col| (col.column.clone(), convert::from_sf(col, v)))).collect();
                if values.is_empty() {
                    continue; // nothing we map changed
                }
                if !local.known.contains(&id) {
                    // A record we don't have: only the pull can bring all of it. Unless the
                    // mapping pushes and the record is another table's or database's (a
                    // change of its external ID is left to the pull by `coalesce`, so it
                    // can't become ours here), or only sfsync changed it: then the change
                    // came from a row of some database, and a record of ours has its row
                    // here already (its Id perhaps not yet written back).
                    let not_ours = local.others.contains(&id) || !by_others.contains(&id);
                    out.poll |= !(t.pushes && not_ours);
                    continue;
                }
                let update = Update { sfid: id, values };
                if local.pending.contains(&update.sfid) {
                    out.contended.push(update);
                } else {
                    out.updates.push(update);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
