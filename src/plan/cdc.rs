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
        // Several records changed the same way arrive as one event.
        for id in &h.record_ids {
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
                    // A record we don't have: only the pull can bring all of it, unless it
                    // is another mapping's (a change of its external ID is left to the pull
                    // by `coalesce`, so it can't become ours here).
                    out.poll |= !local.others.contains(&id);
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
mod tests {
    use super::*;
    use salesforce::cdc::ChangeEventHeader;
    use serde_json::json;

    fn col(column: &str, field: &str, sf_type: &str, pg_type: &str) -> ColumnMap {
        ColumnMap {
            column: column.into(),
            field: field.into(),
            sf_type: sf_type.into(),
            pg_type: pg_type.into(),
            createable: true,
            updateable: true,
            calculated: false,
            limits: Default::default(),
        }
    }

    fn columns() -> Vec<ColumnMap> {
        vec![
            col("name", "Name", "string", "text"),
            col("industry", "Industry", "picklist", "text"),
            col("website", "Website", "url", "text"),
            col("city", "BillingCity", "string", "text"),
            col("seen", "LastActivity__c", "datetime", "timestamp with time zone"),
        ]
    }

    fn target(cols: &[ColumnMap]) -> Target<'_> {
        Target { columns: cols, external_id: "Postgres_Id__c", namespace: "", filtered: false }
    }

    fn event(kind: &str, ids: &[&str], changed: &[&str], nulled: &[&str], fields: Value) -> ChangeEvent {
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        ChangeEvent {
            channel: "/data/AccountChangeEvent".into(),
            replay_id: 1,
            schema: String::new(),
            header: ChangeEventHeader {
                entity_name: "Account".into(),
                record_ids: s(ids),
                change_type: ChangeType::parse(kind),
                changed_fields: s(changed),
                nulled_fields: s(nulled),
                diff_fields: vec![],
                commit_timestamp: 0,
                commit_number: 0,
                commit_user: String::new(),
                transaction_key: String::new(),
                sequence_number: 1,
                change_origin: String::new(),
            },
            fields: fields.as_object().cloned().unwrap_or_default(),
        }
    }

    fn known(ids: &[&str]) -> Local {
        Local { known: ids.iter().map(|s| s.to_string()).collect(), ..Default::default() }
    }

    #[test]
    fn a_changed_external_id_is_left_to_the_pull() {
        let cols = columns();
        let t = target(&cols);
        let e = event("UPDATE", &["001A"], &["Postgres_Id__c"], &[], json!({"Postgres_Id__c": "5"}));
        assert_eq!(coalesce(&t, &[e]).records, vec![("001A".to_string(), Outcome::Poll)]);
    }

    #[test]
    fn an_update_touches_only_the_mapped_columns_it_changed() {
        let cols = columns();
        let t = target(&cols);
        let e = event(
            "UPDATE",
            &["001A"],
            &["Industry", "Description", "BillingAddress.City", "LastModifiedDate"],
            &[],
            json!({"Industry": "Energy", "Description": "x", "BillingAddress": {"City": "Lyon"}, "LastModifiedDate": "2024-05-20T20:49:32.000Z"}),
        );
        let r = route(&t, coalesce(&t, &[e]), &known(&["001A"]));
        assert_eq!(
            r.updates,
            vec![Update { sfid: "001A".into(), values: json!({"industry": "Energy", "city": "Lyon"}).as_object().unwrap().clone() }]
        );
        assert!(!r.poll && r.creates.is_empty() && r.deletes.is_empty());
    }

    #[test]
    fn nulled_fields_become_null_and_values_are_converted() {
        let cols = columns();
        let t = target(&cols);
        let e = event(
            "UPDATE",
            &["001A"],
            &["Website", "LastActivity__c"],
            &["Website"],
            json!({"Website": null, "LastActivity__c": "2024-05-20T20:49:32.000+0000"}),
        );
        let r = route(&t, coalesce(&t, &[e]), &known(&["001A"]));
        assert_eq!(r.updates[0].values, *json!({"website": null, "seen": "2024-05-20T20:49:32.000+00:00"}).as_object().unwrap());
        // A nulled field the payload leaves out is still null.
        let e = event("UPDATE", &["001A"], &["Website"], &["Website"], json!({}));
        let r = route(&t, coalesce(&t, &[e]), &known(&["001A"]));
        assert_eq!(r.updates[0].values, *json!({"website": null}).as_object().unwrap());
    }

    #[test]
    fn an_update_of_unmapped_fields_does_nothing() {
        let cols = columns();
        let t = target(&cols);
        let e = event("UPDATE", &["001A"], &["Description", "LastModifiedDate"], &[], json!({"Description": "x"}));
        assert_eq!(route(&t, coalesce(&t, &[e]), &Local::default()), Routed::default());
    }

    #[test]
    fn a_multi_record_event_expands_to_each_record() {
        let cols = columns();
        let t = target(&cols);
        let e = event("UPDATE", &["001A", "001B"], &["Industry"], &[], json!({"Industry": "Retail"}));
        let r = route(&t, coalesce(&t, &[e]), &known(&["001A", "001B"]));
        assert_eq!(r.updates.iter().map(|u| u.sfid.as_str()).collect::<Vec<_>>(), ["001A", "001B"]);
        assert!(r.updates.iter().all(|u| u.values["industry"] == "Retail"));
        let d = event("DELETE", &["001A", "001B"], &[], &[], json!({}));
        assert_eq!(route(&t, coalesce(&t, &[d]), &Local::default()).deletes, ["001A", "001B"]);
    }

    #[test]
    fn events_of_one_record_coalesce_in_order() {
        let cols = columns();
        let t = target(&cols);
        let evs = [
            event("UPDATE", &["001A"], &["Industry"], &[], json!({"Industry": "Energy"})),
            event("UPDATE", &["001A"], &["Website", "Industry"], &[], json!({"Website": "w", "Industry": "Banking"})),
        ];
        let c = coalesce(&t, &evs);
        assert_eq!(
            c.records,
            vec![("001A".to_string(), Outcome::Partial(json!({"Industry": "Banking", "Website": "w"}).as_object().unwrap().clone()))]
        );
        // A create then updates: still a full record, with the latest values.
        let evs = [
            event("CREATE", &["001B"], &[], &[], json!({"Name": "Acme", "Industry": "Energy", "Postgres_Id__c": "7"})),
            event("UPDATE", &["001B"], &["Industry"], &["Industry"], json!({"Industry": null})),
        ];
        let r = route(&t, coalesce(&t, &evs), &Local::default());
        assert_eq!(
            r.creates,
            vec![json!({"Id": "001B", "Name": "Acme", "Industry": null, "Postgres_Id__c": "7"}).as_object().unwrap().clone()]
        );
        // Then deleted: only the delete is left.
        let evs = [
            event("CREATE", &["001C"], &[], &[], json!({"Name": "Gone"})),
            event("UPDATE", &["001C"], &["Name"], &[], json!({"Name": "Going"})),
            event("DELETE", &["001C"], &[], &[], json!({})),
        ];
        let r = route(&t, coalesce(&t, &evs), &Local::default());
        assert_eq!((r.creates.len(), r.updates.len(), r.deletes.as_slice(), r.poll), (0, 0, ["001C".to_string()].as_slice(), false));
    }

    #[test]
    fn creates_flatten_compound_fields() {
        let cols = vec![col("first_name", "FirstName", "string", "text"), col("last_name", "LastName", "string", "text")];
        let t = target(&cols);
        let e = event(
            "CREATE",
            &["003A"],
            &[],
            &[],
            json!({"Name": {"FirstName": "Ada", "LastName": "Lovelace"}, "MailingAddress": {"City": "London"}}),
        );
        let r = route(&t, coalesce(&t, &[e]), &Local::default());
        assert_eq!(
            r.creates,
            vec![json!({"Id": "003A", "FirstName": "Ada", "LastName": "Lovelace", "MailingCity": "London"}).as_object().unwrap().clone()]
        );
        let u = event("UPDATE", &["003A"], &["Name.LastName"], &[], json!({"Name": {"LastName": "King"}}));
        let r = route(&t, coalesce(&t, &[u]), &known(&["003A"]));
        assert_eq!(r.updates[0].values, *json!({"last_name": "King"}).as_object().unwrap());
    }

    #[test]
    fn what_the_pull_must_decide_is_left_to_it() {
        let cols = columns();
        let t = target(&cols);
        let upd = || event("UPDATE", &["001A"], &["Industry"], &[], json!({"Industry": "Energy"}));
        // A local change is pending: the conflict policy decides, with the changed fields.
        let local = Local { known: ["001A".to_string()].into(), pending: ["001A".to_string()].into(), ..Default::default() };
        let r = route(&t, coalesce(&t, &[upd()]), &local);
        assert!(!r.poll && r.updates.is_empty());
        assert_eq!(r.contended, vec![Update { sfid: "001A".into(), values: json!({"industry": "Energy"}).as_object().cloned().unwrap() }]);
        // A record we don't have.
        let r = route(&t, coalesce(&t, &[upd()]), &Local::default());
        assert!(r.poll && r.updates.is_empty());
        // Unless it is another table's or database's: none of this mapping's business.
        let theirs = Local { others: ["001A".to_string()].into(), ..Default::default() };
        let r = route(&t, coalesce(&t, &[upd()]), &theirs);
        assert!(!r.poll && r.updates.is_empty() && r.contended.is_empty());
        // Its external ID changing (it may become ours) is still the pull's.
        let rekeyed = event("UPDATE", &["001A"], &["Postgres_Id__c"], &[], json!({"Postgres_Id__c": "x"}));
        assert!(route(&t, coalesce(&t, &[rekeyed]), &theirs).poll);
        // Undelete and gaps carry no usable fields; a gap makes later updates of it poll too.
        for kind in ["UNDELETE", "GAP_UPDATE", "GAP_CREATE", "GAP_DELETE", "SOMETHING_NEW"] {
            let r = route(&t, coalesce(&t, &[event(kind, &["001A"], &[], &[], json!({}))]), &known(&["001A"]));
            assert!(r.poll, "{kind}");
        }
        let r = route(&t, coalesce(&t, &[event("GAP_UPDATE", &["001A"], &[], &[], json!({})), upd()]), &known(&["001A"]));
        assert_eq!((r.poll, r.updates.len()), (true, 0));
        // Other records of the drain still apply directly.
        let other = event("UPDATE", &["001B"], &["Industry"], &[], json!({"Industry": "Retail"}));
        let r = route(&t, coalesce(&t, &[event("GAP_UPDATE", &["001A"], &[], &[], json!({})), other]), &known(&["001A", "001B"]));
        assert_eq!((r.poll, r.updates.len()), (true, 1));
        // GAP_OVERFLOW names no records: the whole object.
        let r = route(&t, coalesce(&t, &[event("GAP_OVERFLOW", &[], &[], &[], json!({})), upd()]), &known(&["001A"]));
        assert_eq!((r.poll, r.updates.len()), (true, 0));
        // A changed field said to change but missing from the payload.
        let r = route(&t, coalesce(&t, &[event("UPDATE", &["001A"], &["Industry"], &[], json!({}))]), &known(&["001A"]));
        assert!(r.poll);
    }

    #[test]
    fn filters_and_whole_compound_columns_go_to_the_pull() {
        let cols = columns();
        let t = Target { filtered: true, ..target(&cols) };
        let r = route(&t, coalesce(&t, &[event("UPDATE", &["001A"], &["Industry"], &[], json!({"Industry": "E"}))]), &known(&["001A"]));
        assert!(r.poll && r.updates.is_empty());
        let cols = vec![col("billing", "BillingAddress", "address", "jsonb")];
        let t = target(&cols);
        let e = event("UPDATE", &["001A"], &["BillingAddress.City"], &[], json!({"BillingAddress": {"City": "Lyon"}}));
        assert!(route(&t, coalesce(&t, &[e]), &known(&["001A"])).poll);
        // A person name mapped as a whole (Contact.Name): its parts arrive, not the name.
        let cols = vec![col("full_name", "Name", "string", "text")];
        let t = target(&cols);
        let e = event("CREATE", &["003A"], &[], &[], json!({"Name": {"FirstName": "Ada", "LastName": "Lovelace"}}));
        assert!(route(&t, coalesce(&t, &[e]), &Local::default()).poll);
        // A part of a compound we can't flatten, mapped as a whole.
        let cols = vec![col("loc", "Loc__c", "string", "text")];
        let t = target(&cols);
        let e = event("UPDATE", &["001A"], &["Loc__c.Latitude"], &[], json!({"Loc__c": {"Latitude": 1.0}}));
        assert!(route(&t, coalesce(&t, &[e]), &known(&["001A"])).poll);
    }

    #[test]
    fn fields_events_do_not_carry_go_to_the_pull() {
        let mut cols = columns();
        let mut formula = col("score", "Score__c", "double", "double precision");
        (formula.createable, formula.updateable, formula.calculated) = (false, false, true);
        cols.push(formula);
        let t = target(&cols);
        // An update may have changed the formula without listing it.
        let e = event("UPDATE", &["001A"], &["Industry"], &[], json!({"Industry": "E"}));
        assert!(route(&t, coalesce(&t, &[e]), &known(&["001A"])).poll);
        // A create without it can't say whether it is null.
        let e = event("CREATE", &["001B"], &[], &[], json!({"Name": "B"}));
        assert!(route(&t, coalesce(&t, &[e]), &Local::default()).poll);
        let e = event("CREATE", &["001B"], &[], &[], json!({"Name": "B", "Score__c": 3.5}));
        assert_eq!(route(&t, coalesce(&t, &[e]), &Local::default()).creates.len(), 1);
        // The audit fields are carried whenever they change.
        let mut cols = columns();
        let mut created = col("created", "CreatedDate", "datetime", "timestamp with time zone");
        (created.createable, created.updateable) = (false, false);
        cols.push(created);
        let t = target(&cols);
        let e = event("UPDATE", &["001A"], &["Industry"], &[], json!({"Industry": "E"}));
        assert_eq!(route(&t, coalesce(&t, &[e]), &known(&["001A"])).updates.len(), 1);
    }

    #[test]
    fn lookups_carry_the_postgres_key_of_creates() {
        let cols = columns();
        let t = target(&cols);
        let evs = [
            event("CREATE", &["001A"], &[], &[], json!({"Name": "A", "Postgres_Id__c": "42"})),
            event("UPDATE", &["001B"], &["Industry"], &[], json!({"Industry": "E"})),
            event("DELETE", &["001C"], &[], &[], json!({})),
        ];
        assert_eq!(lookups(&t, &coalesce(&t, &evs)), vec![("001A".to_string(), Some("42".to_string())), ("001B".to_string(), None)]);
    }

    #[test]
    fn update_rows_list_their_columns() {
        let u = Update { sfid: "001A".into(), values: json!({"industry": "E"}).as_object().unwrap().clone() };
        assert_eq!(u.row("__cols"), json!({"industry": "E", "sfid": "001A", "__cols": ["industry"]}));
    }
}
