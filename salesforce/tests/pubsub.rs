//! The Pub/Sub API client against a real `sf-emulator` process (SKIP unless present, or
//! when it serves no Pub/Sub listener; failure with SF_REQUIRE_EMULATOR). Its events are
//! compared with the CometD client's for the same writes: the worker applies both alike.

mod common;

use std::time::{Duration, Instant};

use common::{rec, Emulator};
use salesforce::cdc::{channel_for, ChangeType};
use salesforce::pubsub::{PubSubOptions, PubSubStream};
use salesforce::{CdcStream, ChangeEvent, ClientOptions, ReplayFrom};
use serde_json::json;

fn start(test: &str) -> Option<(Emulator, PubSubOptions)> {
    let opts = ClientOptions { request_timeout: Duration::from_secs(10), ..ClientOptions::default() };
    let emu = common::start_with(test, &["--cometd-timeout-ms", "500"])?.with_client_opts(opts);
    let Some(endpoint) = emu.pubsub_endpoint() else {
        if std::env::var_os("SF_REQUIRE_EMULATOR").is_some() {
            panic!("{test}: the emulator serves no Pub/Sub API");
        }
        eprintln!("SKIP {test}: the emulator serves no Pub/Sub API");
        return None;
    };
    Some((emu, PubSubOptions { endpoint, ..PubSubOptions::default() }))
}

/// Polls until `n` events arrived (or 5 s).
fn collect(s: &mut PubSubStream<'_>, n: usize) -> Vec<ChangeEvent> {
    let start = Instant::now();
    let mut out = vec![];
    while out.len() < n && start.elapsed() < Duration::from_secs(5) {
        out.extend(s.poll(Duration::from_millis(500)).expect("poll"));
    }
    out
}

fn collect_cometd(s: &mut CdcStream<'_>, n: usize) -> Vec<ChangeEvent> {
    let start = Instant::now();
    let mut out = vec![];
    while out.len() < n && start.elapsed() < Duration::from_secs(5) {
        out.extend(s.poll(Duration::from_millis(500)).expect("poll"));
    }
    out
}

#[test]
fn events_match_what_cometd_delivers() {
    let Some((emu, opts)) = start("events_match_what_cometd_delivers") else { return };
    let client = emu.client();
    let ch = channel_for("Account");
    let mut ps = client.pubsub_subscribe(&[(ch.clone(), ReplayFrom::New)], opts).unwrap();
    let mut cd = client.cdc_subscribe(std::slice::from_ref(&ch), ReplayFrom::New).unwrap();
    assert!(ps.poll(Duration::from_millis(200)).unwrap().is_empty());

    let id = client
        .create("Account", &rec(json!({"Name": "Streamed", "Industry": "Banking", "BillingCity": "Paris", "AnnualRevenue": 12.5})))
        .unwrap();
    client.update("Account", &id, &rec(json!({"Industry": null, "Phone": "1", "BillingCity": "Lyon"}))).unwrap();
    client.delete("Account", &id).unwrap();
    let got = collect(&mut ps, 3);
    let want = collect_cometd(&mut cd, 3);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(want.len(), 3);
    let kinds: Vec<&ChangeType> = got.iter().map(|e| &e.header.change_type).collect();
    assert_eq!(kinds, [&ChangeType::Create, &ChangeType::Update, &ChangeType::Delete]);
    for (p, c) in got.iter().zip(&want) {
        assert_eq!(p.channel, c.channel);
        assert_eq!(p.header, c.header, "the header, changed fields named as CometD names them");
        assert_eq!(p.fields, c.fields, "the same payload fields and values");
    }
    assert_eq!(got[1].header.nulled_fields, ["Industry"]);
    assert!(got[1].header.changed_fields.contains(&"BillingAddress.City".to_string()), "{:?}", got[1].header);
    assert_eq!(ps.last_replay_id(&ch), Some(got[2].replay_id));
    cd.close();
}

#[test]
fn compound_name_and_address_parts_decode_as_cometd_delivers_them() {
    let Some((emu, opts)) = start("compound_name_and_address_parts_decode_as_cometd_delivers_them") else { return };
    let client = emu.client();
    let (contact, account) = (channel_for("Contact"), channel_for("Account"));
    let subs = [(contact.clone(), ReplayFrom::New), (account.clone(), ReplayFrom::New)];
    let mut ps = client.pubsub_subscribe(&subs, opts).unwrap();
    let mut cd = client.cdc_subscribe(&[contact.clone(), account.clone()], ReplayFrom::New).unwrap();
    assert!(ps.poll(Duration::from_millis(200)).unwrap().is_empty());

    // A Contact's Name is a nested record of its parts, an Account's BillingAddress too.
    let c = client.create("Contact", &rec(json!({"Salutation": "Ms.", "FirstName": "Ada", "LastName": "Lovelace"}))).unwrap();
    client.update("Contact", &c, &rec(json!({"FirstName": "Augusta", "LastName": "King"}))).unwrap();
    let a = client.create("Account", &rec(json!({"Name": "Acme", "BillingStreet": "1 Rue", "BillingCity": "Paris"}))).unwrap();
    client.update("Account", &a, &rec(json!({"BillingCity": "Lyon"}))).unwrap();
    // Two topics: each arrives in order, the two interleave as they come.
    let by_replay = |mut v: Vec<ChangeEvent>| {
        v.sort_by_key(|e| e.replay_id);
        v
    };
    let got = by_replay(collect(&mut ps, 4));
    let want = by_replay(collect_cometd(&mut cd, 4));
    assert_eq!((got.len(), want.len()), (4, 4), "{got:?}");
    for (p, c) in got.iter().zip(&want) {
        assert_eq!(p.header, c.header, "the header, compound parts named as CometD names them");
        assert_eq!(p.fields, c.fields, "the same nested name and address values");
    }
    let changed = &got[1].header.changed_fields;
    assert!(changed.contains(&"Name.FirstName".to_string()) && changed.contains(&"Name.LastName".to_string()), "{changed:?}");
    assert!(!changed.contains(&"Name.Salutation".to_string()), "an unchanged part is not named: {changed:?}");
    assert!(got[3].header.changed_fields.contains(&"BillingAddress.City".to_string()), "{:?}", got[3].header);
    cd.close();
}

#[test]
fn resumes_after_a_stored_replay_id_and_asks_for_more_as_it_consumes() {
    let Some((emu, opts)) = start("resumes_after_a_stored_replay_id_and_asks_for_more_as_it_consumes") else { return };
    let client = emu.client();
    let ch = channel_for("Contact");
    // Two events per request: seven events need several FetchRequests.
    let opts = PubSubOptions { batch: 2, ..opts };
    let mut s = client.pubsub_subscribe(&[(ch.clone(), ReplayFrom::New)], opts.clone()).unwrap();
    client.create("Contact", &rec(json!({"LastName": "One"}))).unwrap();
    let first = collect(&mut s, 1);
    let stored = s.last_replay_id(&ch).unwrap();
    assert_eq!(stored, first[0].replay_id);
    drop(s);

    // Written while nobody listens.
    let mut missed = vec![];
    for i in 0..7 {
        missed.push(client.create("Contact", &rec(json!({"LastName": format!("Missed {i}")}))).unwrap());
    }
    let client2 = emu.client();
    let mut s2 = client2.pubsub_subscribe(&[(ch.clone(), ReplayFrom::After(stored))], opts).unwrap();
    let got = collect(&mut s2, 7);
    let ids: Vec<String> = got.iter().map(|e| e.header.record_ids[0].clone()).collect();
    assert_eq!(ids, missed, "every missed event, once, in order, none before the stored position");
    assert!(s2.poll(Duration::from_millis(300)).unwrap().is_empty(), "nothing twice");
}

#[test]
fn a_subscription_the_server_ends_is_resumed_from_its_last_event_without_an_error() {
    let Some((emu, opts)) = start("a_subscription_the_server_ends_is_resumed_from_its_last_event_without_an_error") else { return };
    let client = emu.client();
    let ch = channel_for("Contact");
    let mut s = client.pubsub_subscribe(&[(ch.clone(), ReplayFrom::New)], opts).unwrap();
    client.create("Contact", &rec(json!({"LastName": "Before"}))).unwrap();
    assert_eq!(collect(&mut s, 1).len(), 1);
    // The server ends every subscription; a change is made before the client notices.
    emu.admin("cdc/drop", json!({}));
    let after = client.create("Contact", &rec(json!({"LastName": "After"}))).unwrap();
    let got = collect(&mut s, 1);
    let ids: Vec<&str> = got.iter().map(|e| e.header.record_ids[0].as_str()).collect();
    assert_eq!(ids, [after.as_str()], "resubscribed after its last event: the change once, nothing twice");
    assert_eq!(s.subscribes, 2, "one more Subscribe call");

    // Refused while the service is unavailable: then the poll fails (the caller polls instead).
    emu.admin("cdc/drop", json!({}));
    emu.fault(json!({"kind": "status", "status": 503, "path_prefix": "/eventbus.v1.PubSub/"}));
    let start = Instant::now();
    let err = loop {
        match s.poll(Duration::from_millis(200)) {
            Err(e) => break e,
            Ok(_) if start.elapsed() < Duration::from_secs(5) => continue,
            Ok(_) => panic!("no error while the Subscribe call is refused"),
        }
    };
    assert!(err.to_string().contains("Unavailable"), "{err}");
}

#[test]
fn an_invalid_replay_id_is_reported_once_subscribed_again_from_the_newest_event() {
    let Some((emu, opts)) = start("an_invalid_replay_id_is_reported_once_subscribed_again_from_the_newest_event") else { return };
    let client = emu.client();
    let ch = channel_for("Account");
    client.create("Account", &rec(json!({"Name": "Before"}))).unwrap();
    // A position the org never gave: Subscribe fails with INVALID_ARGUMENT (validation failed).
    let mut s = client.pubsub_subscribe(&[(ch.clone(), ReplayFrom::After(987_654_321))], opts).unwrap();
    // Once subscribed the caller polls Salesforce (as after any subscription): a change made
    // from then on is in the stream, as on CometD, though the replay id was refused.
    let first = client.create("Account", &rec(json!({"Name": "First"}))).unwrap();
    let start = Instant::now();
    let err = loop {
        match s.poll(Duration::from_millis(200)) {
            Err(e) => break e,
            Ok(got) => assert!(got.is_empty() && start.elapsed() < Duration::from_secs(5), "{got:?}"),
        }
    };
    assert!(matches!(err, salesforce::cdc::CdcError::ReplayInvalid { replay_id: 987_654_321, .. }), "{err:?}");
    // The caller polls Salesforce again now; a change made from then on is in the stream too.
    let after = client.create("Account", &rec(json!({"Name": "After"}))).unwrap();
    let got = collect(&mut s, 2);
    assert_eq!(got.iter().map(|e| e.header.record_ids[0].as_str()).collect::<Vec<_>>(), [first.as_str(), after.as_str()]);
}

#[test]
fn an_unreachable_endpoint_and_an_unknown_topic_fail_plainly() {
    let Some((emu, opts)) = start("an_unreachable_endpoint_and_an_unknown_topic_fail_plainly") else { return };
    let client = emu.client();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let err = client
        .pubsub_subscribe(
            &[(channel_for("Account"), ReplayFrom::New)],
            PubSubOptions { endpoint: format!("http://{addr}"), ..opts.clone() },
        )
        .err()
        .expect("a closed port");
    assert!(matches!(err, salesforce::Error::Transport(_)), "{err:?}");
    let err = client.pubsub_subscribe(&[("/data/NoSuchChangeEvent".to_string(), ReplayFrom::New)], opts).err().expect("unknown topic");
    assert!(err.to_string().contains("NoSuch"), "{err}");
}
