//! The CometD / Change Data Capture client against a real `sf-emulator` process
//! (started through tests/common with CometD connects held for at most 500 ms;
//! SKIP unless present, failure with SF_REQUIRE_EMULATOR).

mod common;

use std::time::{Duration, Instant};

use common::{rec, Emulator};
use salesforce::cdc::{channel_for, ChangeType, ALL_CHANGE_EVENTS};
use salesforce::{CdcError, CdcStream, ChangeEvent, ClientOptions, ReplayFrom};
use serde_json::json;

/// An emulator holding CometD connects for at most 500 ms; clients keep the
/// default retry budget.
fn start(test: &str) -> Option<Emulator> {
    let opts = ClientOptions { request_timeout: Duration::from_secs(10), ..ClientOptions::default() };
    common::start_with(test, &["--cometd-timeout-ms", "500"]).map(|e| e.with_client_opts(opts))
}

/// Polls until `n` events arrived (or 5 s).
fn collect(s: &mut CdcStream<'_>, n: usize) -> Vec<ChangeEvent> {
    let start = Instant::now();
    let mut out = vec![];
    while out.len() < n && start.elapsed() < Duration::from_secs(5) {
        out.extend(s.poll(Duration::from_secs(1)).expect("poll"));
    }
    out
}

#[test]
fn receives_events_of_rest_writes() {
    let Some(emu) = start("receives_events_of_rest_writes") else { return };
    let client = emu.client();
    let ch = channel_for("Account");
    let mut s = client.cdc_subscribe(std::slice::from_ref(&ch), ReplayFrom::New).unwrap();
    assert!(s.poll(Duration::from_millis(200)).unwrap().is_empty());
    assert_eq!(s.last_replay_id(&ch), None);

    let id = client.create("Account", &rec(json!({"Name": "Streamed", "Industry": "Banking"}))).unwrap();
    let ev = collect(&mut s, 1);
    assert_eq!(ev.len(), 1);
    let e = &ev[0];
    assert_eq!(e.channel, ch);
    assert_eq!(e.header.change_type, ChangeType::Create);
    assert_eq!(e.header.entity_name, "Account");
    assert_eq!(e.header.record_ids, std::slice::from_ref(&id));
    assert_eq!(e.header.commit_user, client.user_id().unwrap());
    assert!(e.header.change_origin.starts_with("com/salesforce/api/rest/"));
    assert_eq!(e.fields["Name"], "Streamed");
    assert_eq!(s.last_replay_id(&ch), Some(e.replay_id));

    client.update("Account", &id, &rec(json!({"Industry": null, "Phone": "1"}))).unwrap();
    let ev = collect(&mut s, 1);
    assert_eq!(ev[0].header.change_type, ChangeType::Update);
    assert_eq!(ev[0].header.nulled_fields, ["Industry"]);
    assert!(ev[0].header.changed_fields.contains(&"Phone".to_string()));

    client.delete("Account", &id).unwrap();
    let ev = collect(&mut s, 1);
    assert_eq!(ev[0].header.change_type, ChangeType::Delete);
    s.close();
}

#[test]
fn resumes_from_a_stored_replay_id_with_a_new_client() {
    let Some(emu) = start("resumes_from_a_stored_replay_id_with_a_new_client") else { return };
    let client = emu.client();
    let ch = channel_for("Contact");
    let mut s = client.cdc_subscribe(std::slice::from_ref(&ch), ReplayFrom::New).unwrap();
    client.create("Contact", &rec(json!({"LastName": "One"}))).unwrap();
    let first = collect(&mut s, 1);
    let stored = s.last_replay_id(&ch).unwrap();
    assert_eq!(stored, first[0].replay_id);
    s.close();

    // Written while nobody listens.
    let missed = client.create("Contact", &rec(json!({"LastName": "Two"}))).unwrap();
    let client2 = emu.client();
    let mut s2 = client2.cdc_subscribe(std::slice::from_ref(&ch), ReplayFrom::After(stored)).unwrap();
    assert_eq!(s2.last_replay_id(&ch), Some(stored));
    let ev = collect(&mut s2, 1);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].header.record_ids, [missed]);
    assert_eq!(ev[0].fields["Name"]["LastName"], "Two");

    // All retained events.
    let mut s3 = client2.cdc_subscribe(&[ALL_CHANGE_EVENTS.to_string()], ReplayFrom::All).unwrap();
    let all = collect(&mut s3, 2);
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|e| e.channel == ALL_CHANGE_EVENTS));
}

#[test]
fn rehandshakes_after_a_dropped_client() {
    let Some(emu) = start("rehandshakes_after_a_dropped_client") else { return };
    let client = emu.client();
    let ch = channel_for("Account");
    let mut s = client.cdc_subscribe(std::slice::from_ref(&ch), ReplayFrom::New).unwrap();
    client.create("Account", &rec(json!({"Name": "before"}))).unwrap();
    collect(&mut s, 1);
    assert_eq!(s.handshakes, 1);

    emu.admin("cdc/drop", json!({}));
    // Written between the drop and the re-handshake: must still arrive (resubscribe from the
    // last delivered replay ID, not -1).
    let between = client.create("Account", &rec(json!({"Name": "between"}))).unwrap();
    let ev = collect(&mut s, 1);
    assert_eq!(s.handshakes, 2);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].header.record_ids, [between]);

    // The fault form too.
    emu.admin("faults", json!({"kind": "cometd_drop", "count": 1}));
    let after = client.create("Account", &rec(json!({"Name": "after"}))).unwrap();
    let ev = collect(&mut s, 1);
    assert_eq!(s.handshakes, 3);
    assert_eq!(ev[0].header.record_ids, [after]);
}

#[test]
fn invalid_replay_falls_back_to_new_events() {
    let Some(emu) = start("invalid_replay_falls_back_to_new_events") else { return };
    let client = emu.client();
    let ch = channel_for("Account");
    let mut s = client.cdc_subscribe(std::slice::from_ref(&ch), ReplayFrom::After(9_999)).unwrap();
    match s.poll(Duration::from_millis(100)) {
        Err(CdcError::ReplayInvalid { channel, replay_id }) => {
            assert_eq!(channel, ch);
            assert_eq!(replay_id, 9_999);
        }
        other => panic!("expected ReplayInvalid, got {other:?}"),
    }
    assert_eq!(s.last_replay_id(&ch), None);
    let id = client.create("Account", &rec(json!({"Name": "fresh"}))).unwrap();
    let ev = collect(&mut s, 1);
    assert_eq!(ev[0].header.record_ids, [id]);
}

#[test]
fn gap_events_are_typed_and_poll_honours_max_wait() {
    let Some(emu) = start("gap_events_are_typed_and_poll_honours_max_wait") else { return };
    let client = emu.client();
    let ch = channel_for("Account");
    let mut s = client.cdc_subscribe(std::slice::from_ref(&ch), ReplayFrom::New).unwrap();
    let t = Instant::now();
    assert!(s.poll(Duration::from_millis(100)).unwrap().is_empty());
    assert!(t.elapsed() < Duration::from_millis(450), "{:?}", t.elapsed());

    let id = client.create("Account", &rec(json!({"Name": "g"}))).unwrap();
    collect(&mut s, 1);
    emu.admin("cdc/gap", json!({"object": "Account", "ids": [id]}));
    emu.admin("cdc/overflow", json!({"object": "Account"}));
    let ev = collect(&mut s, 2);
    assert_eq!(ev[0].header.change_type, ChangeType::GapUpdate);
    assert_eq!(ev[1].header.change_type, ChangeType::GapOverflow);
    assert!(ev.iter().all(|e| e.header.change_type.is_gap() && e.fields.is_empty()));
}

#[test]
fn expired_session_on_the_stream_relogs_in() {
    let Some(emu) = start("expired_session_on_the_stream_relogs_in") else { return };
    let client = emu.client();
    let ch = channel_for("Lead");
    let calls_before = client.stats().calls;
    let mut s = client.cdc_subscribe(std::slice::from_ref(&ch), ReplayFrom::New).unwrap();
    emu.admin("faults", json!({"kind": "expired_session", "count": 1, "path_prefix": "/cometd"}));
    let id = client.create("Lead", &rec(json!({"LastName": "L", "Company": "C"}))).unwrap();
    let ev = collect(&mut s, 1);
    assert_eq!(ev[0].header.record_ids, std::slice::from_ref(&id));
    // Streaming calls are not REST API calls.
    assert_eq!(client.stats().calls, calls_before + 1, "only the create counts");
}
