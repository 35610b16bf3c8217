//! `plan::cdc`: coalescing a drain's events and routing them by local state.

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
    Target { columns: cols, external_id: "Postgres_Id__c", namespace: "", filtered: false, pushes: true }
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
    // Unless it is another table's or database's: none of this mapping's business; a
    // mirror holds every record, so it still polls.
    let theirs = Local { others: ["001A".to_string()].into(), ..Default::default() };
    let r = route(&t, coalesce(&t, &[upd()]), &theirs);
    assert!(!r.poll && r.updates.is_empty() && r.contended.is_empty());
    let mirror = Target { pushes: false, ..target(&cols) };
    assert!(route(&mirror, coalesce(&mirror, &[upd()]), &theirs).poll);
    // Only sfsync (of some database) changed a record we don't have: its row is there.
    let mut by_sfsync = upd();
    by_sfsync.header.change_origin = "com/salesforce/api/rest/62.0;client=sfsync".into();
    assert!(!route(&t, coalesce(&t, &[by_sfsync.clone()]), &Local::default()).poll);
    assert!(route(&t, coalesce(&t, &[by_sfsync.clone(), upd()]), &Local::default()).poll, "and someone else");
    assert!(route(&mirror, coalesce(&mirror, &[by_sfsync]), &Local::default()).poll);
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
