//! getUpdated / getDeleted windows, results and errors.
mod common;
use common::{enc, Org};
use serde_json::json;
use sf_emulator::clock::format_datetime;

fn now_ms(org: &Org) -> i64 {
    org.admin("GET", "clock", json!(null)).body["now_ms"].as_i64().unwrap()
}

fn window(kind: &str, obj: &str, start: i64, end: i64) -> String {
    format!("sobjects/{obj}/{kind}/?start={}&end={}", enc(&format_datetime(start)), enc(&format_datetime(end)))
}

#[test]
fn updated_and_deleted_follow_system_modstamp() {
    let org = Org::start();
    let t0 = now_ms(&org);
    let a = org.create("Account", json!({"Name": "A"}));
    let b = org.create("Account", json!({"Name": "B"}));
    // Two minutes later: update B, delete A, create C.
    org.admin("POST", "clock", json!({"advance_ms": 120_000}));
    let t1 = now_ms(&org);
    assert_eq!(org.patch(&format!("sobjects/Account/{b}"), json!({"Name": "B2"})).status, 204);
    assert_eq!(org.delete(&format!("sobjects/Account/{a}")).status, 204);
    let c = org.create("Account", json!({"Name": "C"}));

    let r = org.get(&window("updated", "Account", t0 - 60_000, t1 + 60_000));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let ids: Vec<&str> = r.body["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(ids.contains(&b.as_str()) && ids.contains(&c.as_str()), "{ids:?}");
    assert!(!ids.contains(&a.as_str()), "deleted records are reported by getDeleted only");
    let latest = r.body["latestDateCovered"].as_str().unwrap();
    assert!(latest.ends_with(":00.000+0000"), "{latest}");

    // A window that ends before the second round (end is exclusive, seconds ignored).
    let early = org.get(&window("updated", "Account", t0 - 60_000, t0 + 60_000));
    let early_ids: Vec<&str> = early.body["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(!early_ids.contains(&c.as_str()), "{early_ids:?}");
    assert_eq!(early.body["latestDateCovered"], json!(format_datetime((t0 + 60_000) / 60_000 * 60_000)));

    let d = org.get(&window("deleted", "Account", t0 - 60_000, t1 + 60_000));
    assert_eq!(d.status, 200, "{:?}", d.body);
    let recs = d.body["deletedRecords"].as_array().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["id"], json!(a));
    let deleted_date = recs[0]["deletedDate"].as_str().unwrap();
    assert!(deleted_date.ends_with("+0000") && deleted_date.len() == 28, "{deleted_date}");
    assert!(d.body["earliestDateAvailable"].as_str().unwrap().ends_with(":00.000+0000"));
    assert!(d.body["latestDateCovered"].is_string());
    // The future end is capped to now in latestDateCovered.
    let latest_ms = sf_emulator::clock::parse_datetime(d.body["latestDateCovered"].as_str().unwrap()).unwrap();
    assert!(latest_ms <= now_ms(&org));
}

#[test]
fn replication_date_rules() {
    // Sessions must outlive the 30-day clock jump below.
    let org = Org::with(sf_emulator::Config { token_ttl_secs: 40 * 86_400, ..Default::default() });
    let now = now_ms(&org);
    let bad = |kind: &str, start: i64, end: i64| {
        let r = org.get(&window(kind, "Contact", start, end));
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(r.code(), "INVALID_REPLICATION_DATE");
        r.body[0]["message"].as_str().unwrap().to_string()
    };
    for kind in ["updated", "deleted"] {
        assert_eq!(bad(kind, now, now - 3_600_000), "startDate must chronologically precede endDate");
        // Same minute once seconds are dropped.
        let m = now / 60_000 * 60_000;
        assert_eq!(bad(kind, m + 10_000, m + 50_000), "startDate must chronologically precede endDate");
        assert_eq!(bad(kind, now - 31 * 86_400_000, now), "startDate cannot be more than 30 days ago");
        let ok = org.get(&window(kind, "Contact", now - 29 * 86_400_000, now));
        assert_eq!(ok.status, 200, "{:?}", ok.body);
        let missing = org.get(&format!("sobjects/Contact/{kind}/?start=2024-01-01T00:00:00Z"));
        assert_eq!((missing.status, missing.code()), (400, "MISSING_ARGUMENT"));
        let garbage = org.get(&format!("sobjects/Contact/{kind}/?start=yesterday&end=today"));
        assert_eq!((garbage.status, garbage.code()), (400, "INVALID_REPLICATION_DATE"));
        assert_eq!(org.get(&window(kind, "Nope__c", now - 60_000, now)).status, 404);
    }
    // The emulator clock applies: a start that was fine becomes too old.
    let start = now - 86_400_000;
    assert_eq!(org.get(&window("updated", "Contact", start, now)).status, 200);
    org.admin("POST", "clock", json!({"advance_ms": 30 * 86_400_000i64}));
    assert_eq!(org.get(&window("updated", "Contact", start, now)).status, 400);
    // Both spellings of the path work (with and without the trailing slash).
    let no_slash = format!("sobjects/Contact/updated?start={}&end={}", enc(&format_datetime(now)), enc(&format_datetime(now + 600_000)));
    assert_eq!(org.get(&no_slash).status, 200);
}

/// Deletions older than the recycle bin's 15 days are purged: getDeleted no longer reports
/// them, queryAll no longer returns them, and earliestDateAvailable moves to the newest purged
/// deletion, so a replica that covered less than that knows it must resynchronize.
#[test]
fn the_recycle_bin_purge_moves_earliest_date_available() {
    // A session that outlives the clock jumps below.
    let org = Org::with(sf_emulator::Config { token_ttl_secs: 60 * 86_400, ..sf_emulator::Config::default() });
    let a = org.create("Account", json!({"Name": "A"}));
    let b = org.create("Account", json!({"Name": "B"}));
    let t0 = now_ms(&org);
    assert_eq!(org.delete(&format!("sobjects/Account/{a}")).status, 204);
    org.admin("POST", "clock", json!({"advance_ms": 10 * 86_400_000_i64}));
    assert_eq!(org.delete(&format!("sobjects/Account/{b}")).status, 204);
    let deleted = |org: &Org, start: i64| {
        let r = org.get(&window("deleted", "Account", start, now_ms(org) + 60_000));
        assert_eq!(r.status, 200, "{:?}", r.body);
        let ids: Vec<String> = r.body["deletedRecords"].as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_string()).collect();
        (ids, r.body["earliestDateAvailable"].as_str().unwrap().to_string())
    };
    let (ids, _) = deleted(&org, t0 - 60_000);
    assert_eq!(ids, [a.clone(), b.clone()]);
    // 16 days after A's deletion (6 after B's): A is purged, B still in the bin.
    org.admin("POST", "clock", json!({"advance_ms": 6 * 86_400_000_i64}));
    let (ids, earliest) = deleted(&org, t0 - 60_000);
    assert_eq!(ids, std::slice::from_ref(&b));
    let earliest = sf_emulator::clock::parse_datetime(&earliest).unwrap();
    assert!(earliest >= t0 && earliest < t0 + 60_000, "the purged deletion's time, not 30 days back");
    let r = org.get(&format!("queryAll?q={}", enc(&format!("SELECT Id FROM Account WHERE Id = '{a}'"))));
    assert_eq!(r.body["totalSize"], json!(0), "purged records are gone from queryAll");
}
