//! Bulk API 2.0 client tests against a real `sf-emulator` process (started
//! through tests/common). Skipped with a SKIP line when the binary is absent,
//! unless `SF_REQUIRE_EMULATOR` is set.

mod common;

use std::time::Duration;

use common::Emulator;
use salesforce::{build_csv, BulkOperation, BulkOptions, BulkRowOutcome, ClientOptions};
use serde_json::json;

/// Clients here allow 20 s per request and keep the default retry budget.
fn start(test: &str) -> Option<Emulator> {
    let opts = ClientOptions { request_timeout: Duration::from_secs(20), ..ClientOptions::default() };
    common::start(test).map(|e| e.with_client_opts(opts))
}

fn fast() -> BulkOptions {
    BulkOptions {
        poll_initial: Duration::from_millis(20),
        poll_max: Duration::from_millis(200),
        max_wait: Duration::from_secs(60),
        max_records: None,
    }
}

#[test]
fn bulk_query_streams_several_pages_and_query_all_sees_deleted() {
    let Some(emu) = start("bulk_query_streams_several_pages") else { return };
    let c = emu.client();
    emu.admin("seed", json!({"object": "Account", "count": 2500, "fields": {"Industry": "Banking"}}));
    let opts = BulkOptions { max_records: Some(1000), ..fast() };
    let mut r = c.bulk_query_with("SELECT Id, Name, Industry, CreatedDate, Owner.Name FROM Account ORDER BY Name", false, &opts).unwrap();
    assert_eq!(r.job().state, "JobComplete");
    assert_eq!(r.job().number_records_processed, 2500);
    assert_eq!(r.headers().iter().collect::<Vec<_>>(), vec!["Id", "Name", "Industry", "CreatedDate", "Owner.Name"]);
    let first = r.next_record().unwrap().unwrap();
    assert!(first["Id"].as_str().unwrap().starts_with("001"));
    assert_eq!(first["Industry"], "Banking");
    assert_eq!(first["Owner.Name"], "Integration User");
    assert!(first["CreatedDate"].as_str().unwrap().ends_with(".000Z") || first["CreatedDate"].as_str().unwrap().ends_with('Z'));
    let mut n = 1;
    let mut ids = std::collections::HashSet::new();
    ids.insert(first["Id"].as_str().unwrap().to_string());
    for rec in r.by_ref() {
        let rec = rec.unwrap();
        assert_eq!(rec.len(), 5);
        assert!(ids.insert(rec[0].to_string()), "duplicate id across pages");
        n += 1;
    }
    assert_eq!(n, 2500);
    assert_eq!(r.pages(), 3);

    // queryAll sees the recycle bin, query doesn't.
    let victim = ids.iter().next().unwrap().clone();
    c.delete("Account", &victim).unwrap();
    let q = format!("SELECT Id, IsDeleted FROM Account WHERE Id = '{victim}'");
    assert_eq!(c.bulk_query_with(&q, false, &fast()).unwrap().count(), 0);
    let rows: Vec<_> = c.bulk_query_with(&q, true, &fast()).unwrap().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][1], "true");

    // Bad SOQL fails synchronously with Salesforce's code; aggregates aren't Bulk queries.
    let e = c.bulk_query("SELECT Id FORM Account", false).unwrap_err();
    assert_eq!(e.code(), "MALFORMED_QUERY");
    let e = c.bulk_query("SELECT COUNT() FROM Account", false).unwrap_err();
    assert_eq!(e.code(), "API_ERROR");
    let stats = c.stats();
    assert!(stats.calls >= 8, "bulk calls are counted: {stats:?}");
}

#[test]
fn bulk_query_read_into_reuses_one_record_across_pages() {
    let Some(emu) = start("bulk_query_read_into") else { return };
    let c = emu.client();
    emu.admin("seed", json!({"object": "Account", "count": 2500, "fields": {"Industry": "Banking"}}));
    let opts = BulkOptions { max_records: Some(1000), ..fast() };
    let q = "SELECT Id, Name, Industry FROM Account ORDER BY Name";
    let all: Vec<_> = c.bulk_query_with(q, false, &opts).unwrap().map(Result::unwrap).collect();
    let mut r = c.bulk_query_with(q, false, &opts).unwrap();
    let mut rec = salesforce::StringRecord::new();
    let mut read = vec![];
    let mut locators = std::collections::BTreeSet::new();
    while r.read_into(&mut rec).unwrap() {
        read.push(rec.clone());
        locators.insert(r.page_locator().map(str::to_string));
    }
    assert_eq!(read.len(), 2500);
    assert_eq!(read, all, "the same rows in the same order as iterating");
    assert_eq!(locators.len(), 3, "each page's locator seen while its rows are read");
    assert!(!r.read_into(&mut rec).unwrap(), "the end stays the end");
    assert!(r.next().is_none());
}

#[test]
fn bulk_ingest_maps_successes_and_failures_to_input_rows() {
    let Some(emu) = start("bulk_ingest_maps_results") else { return };
    let c = emu.client();
    let acct = c.create("Account", &serde_json::from_value(json!({"Name": "Parent", "Postgres_Id__c": "A-1"})).unwrap()).unwrap();
    let header = ["Postgres_Id__c", "FirstName", "LastName", "Email", "Account.Postgres_Id__c"];
    let row = |k: &str, last: Option<&str>, email: &str| {
        vec![
            Some(k.to_string()),
            Some("Ann, \"Jr\"".to_string()),
            last.map(str::to_string),
            Some(email.to_string()),
            Some("A-1".to_string()),
        ]
    };
    let csv = build_csv(
        &header,
        vec![
            row("c1", Some("Smith"), "a@x.com"),
            row("c2", None, "b@x.com"),
            row("c3", Some("Jones"), "not-an-email"),
            row("c4", Some("Lee"), "d@x.com"),
        ],
    )
    .unwrap();
    let res = c.bulk_ingest_with("Contact", BulkOperation::Upsert, Some("Postgres_Id__c"), &csv, &fast()).unwrap();
    assert_eq!(res.job.state, "JobComplete");
    assert_eq!(res.job.number_records_processed, 4);
    assert_eq!(res.job.number_records_failed, 2);
    assert_eq!(res.unmatched_results, 0);
    let BulkRowOutcome::Success { id, created: true } = &res.rows[0] else { panic!("{:?}", res.rows[0]) };
    let contact = c.get("Contact", id, Some(&["AccountId", "FirstName"])).unwrap();
    assert_eq!(contact["AccountId"], acct.as_str());
    assert_eq!(contact["FirstName"], "Ann, \"Jr\"");
    match &res.rows[1] {
        BulkRowOutcome::Failed { error, .. } => {
            assert_eq!(error.status_code, "REQUIRED_FIELD_MISSING");
            assert_eq!(error.fields, vec!["LastName".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&res.rows[2], BulkRowOutcome::Failed { error, .. } if error.status_code == "INVALID_EMAIL_ADDRESS"));
    assert!(matches!(&res.rows[3], BulkRowOutcome::Success { created: true, .. }));

    // Same upsert again: updates, not duplicates.
    let again = c.bulk_ingest_with("Contact", BulkOperation::Upsert, Some("Postgres_Id__c"), &csv, &fast()).unwrap();
    assert!(matches!(&again.rows[0], BulkRowOutcome::Success { id: i, created: false } if i == id));

    // Delete by Id.
    let del = build_csv(&["Id"], vec![vec![Some(id.clone())], vec![Some("003000000000000AAA".into())]]).unwrap();
    let res = c.bulk_ingest_with("Contact", BulkOperation::Delete, None, &del, &fast()).unwrap();
    assert!(matches!(&res.rows[0], BulkRowOutcome::Success { .. }));
    assert!(matches!(&res.rows[1], BulkRowOutcome::Failed { .. }));

    // A job-level failure (unknown column) is an error, not row results.
    let bad = build_csv(&["Nope__c"], vec![vec![Some("x".into())]]).unwrap();
    let e = c.bulk_ingest_with("Contact", BulkOperation::Insert, None, &bad, &fast()).unwrap_err();
    assert_eq!(e.code(), "BULK_JOB_FAILED");
    assert!(e.to_string().contains("Field name not found : Nope__c"), "{e}");
}
