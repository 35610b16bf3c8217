//! Client integration tests for getUpdated/getDeleted and composite against a
//! real `sf-emulator` process (started through tests/common; SKIP when absent
//! unless `SF_REQUIRE_EMULATOR` is set).

mod common;

use common::{rec, start};
use salesforce::Error;
use serde_json::json;

/// Salesforce dateTime for epoch ms (UTC), to the second.
fn datetime(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).unwrap();
    at.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z")).unwrap()
}

#[test]
fn get_updated_and_get_deleted() {
    let Some(emu) = start("get_updated_and_get_deleted") else { return };
    let c = emu.client();
    let t0 = emu.now_ms();
    let keep = c.create("Account", &rec(json!({"Name": "keep"}))).unwrap();
    let gone = c.create("Account", &rec(json!({"Name": "gone"}))).unwrap();
    c.delete("Account", &gone).unwrap();
    let (start, end) = (datetime(t0 - 120_000), datetime(t0 + 120_000));

    let u = c.get_updated("Account", &start, &end).unwrap();
    assert!(u.ids.contains(&keep), "{u:?}");
    assert!(!u.ids.contains(&gone), "{u:?}");
    assert!(u.latest_date_covered.as_deref().is_some_and(|d| d.ends_with("+0000")), "{u:?}");

    let d = c.get_deleted("Account", &start, &end).unwrap();
    assert_eq!(d.deleted_records.len(), 1, "{d:?}");
    assert_eq!(d.deleted_records[0].id, gone);
    assert!(d.earliest_date_available.is_some() && d.latest_date_covered.is_some());

    // Replication date errors come back typed.
    let e = c.get_updated("Account", &end, &start).unwrap_err();
    assert!(matches!(&e, Error::Api { status: 400, errors } if errors[0].error_code == "INVALID_REPLICATION_DATE"), "{e:?}");
    let old = datetime(t0 - 40 * 86_400_000);
    let e = c.get_deleted("Account", &old, &end).unwrap_err();
    assert!(e.to_string().contains("INVALID_REPLICATION_DATE"), "{e}");
    assert!(matches!(c.get_updated("Bad/Name", &start, &end), Err(Error::Config(_))));
}

#[test]
fn composite_with_references_and_rollback() {
    use salesforce::CompositeSubrequest as Sub;
    let Some(emu) = start("composite_with_references_and_rollback") else { return };
    let c = emu.client();
    let subs = [
        Sub::data(&c, "POST", "sobjects/Account", "acct", Some(json!({"Name": "Composite client"}))),
        Sub::data(&c, "POST", "sobjects/Contact", "ct", Some(json!({"LastName": "C", "AccountId": "@{acct.id}"}))),
        Sub::data(&c, "GET", "sobjects/Contact/@{ct.id}?fields=AccountId", "get", None),
    ];
    let res = c.composite(false, &subs).unwrap();
    assert!(res.iter().all(|r| r.is_success()), "{res:?}");
    let acct = res[0].id().unwrap().to_string();
    assert_eq!(res[2].body["AccountId"], json!(acct));
    assert_eq!(res[1].reference_id, "ct");

    let bad = [
        Sub::data(&c, "POST", "sobjects/Account", "a", Some(json!({"Name": "rolled back by client test"}))),
        Sub::data(&c, "POST", "sobjects/Contact", "b", Some(json!({"FirstName": "missing LastName"}))),
    ];
    let res = c.composite(true, &bad).unwrap();
    assert_eq!(res[0].errors()[0].error_code, "PROCESSING_HALTED");
    assert_eq!(res[1].errors()[0].error_code, "REQUIRED_FIELD_MISSING");
    let n = c.query("SELECT COUNT() FROM Account WHERE Name = 'rolled back by client test'").unwrap();
    assert_eq!(n.total_size, 0);

    let too_many: Vec<Sub> = (0..26).map(|i| Sub::data(&c, "GET", "limits", &format!("r{i}"), None)).collect();
    assert!(matches!(c.composite(false, &too_many), Err(Error::Config(_))));
}

#[test]
fn many_queries_cost_one_call_per_composite_of_five() {
    let Some(emu) = start("many_queries_cost_one_call_per_composite_of_five") else { return };
    let c = emu.client();
    let a = c.create("Account", &rec(json!({"Name": "Polled"}))).unwrap();
    c.create("Contact", &rec(json!({"LastName": "Polled"}))).unwrap();
    let calls = |emu: &common::Emulator| emu.admin_get_json("counters")["total"].as_u64().unwrap();
    // 11 queries: three composite requests (Salesforce takes 5 queries in one); the 3rd
    // refers to a field the object lacks.
    let mut soqls: Vec<String> = (0..11).map(|_| "SELECT Id, Name FROM Account".to_string()).collect();
    soqls[1] = "SELECT Id, LastName FROM Contact".into();
    soqls[2] = "SELECT Id, NoSuchField__c FROM Account".into();
    let before = calls(&emu);
    let pages = c.query_all_pages(&soqls).unwrap();
    assert_eq!(calls(&emu) - before, 3, "one call per 5 queries");
    assert_eq!(pages.len(), 11);
    let first = pages[0].as_ref().unwrap();
    assert_eq!((first.total_size, first.done), (1, true));
    assert_eq!(first.records[0]["Id"], json!(a));
    assert!(first.records[0].get("attributes").is_none(), "attributes stripped as query_all does");
    assert_eq!(pages[1].as_ref().unwrap().records[0]["LastName"], json!("Polled"));
    let e = pages[2].as_ref().unwrap_err();
    assert!(matches!(e, Error::Api { status: 400, errors } if errors[0].error_code == "INVALID_FIELD"), "{e:?}");
    assert!(pages[10].is_ok(), "the third request's query");

    // The client refuses a sixth query subrequest before sending it.
    use salesforce::CompositeSubrequest as Sub;
    let six: Vec<Sub> = (0..6).map(|i| Sub::data(&c, "GET", "queryAll?q=SELECT+Id+FROM+Account", &format!("q{i}"), None)).collect();
    assert!(matches!(c.composite(false, &six), Err(Error::Config(m)) if m.contains("at most 5")));
}
