//! POST composite: references, allOrNone rollback, limits.
mod common;
use common::Org;
use serde_json::{json, Value};

fn sub(method: &str, url: &str, reference_id: &str, body: Option<Value>) -> Value {
    let mut v = json!({"method": method, "url": url, "referenceId": reference_id});
    if let Some(b) = body {
        v["body"] = b;
    }
    v
}

#[test]
fn references_flow_between_subrequests() {
    let org = Org::start();
    let before = org.admin("GET", "counters", json!(null)).body["api_usage"].as_u64().unwrap();
    let r = org.post(
        "composite",
        json!({"allOrNone": false, "collateSubrequests": false, "compositeRequest": [
            sub("POST", "/services/data/v62.0/sobjects/Account", "newAcct", Some(json!({"Name": "Composite Co"}))),
            sub("POST", "/services/data/v62.0/sobjects/Contact", "newContact", Some(json!({"LastName": "Ref", "AccountId": "@{newAcct.id}"}))),
            sub("GET", "/services/data/v62.0/sobjects/Account/@{newAcct.id}?fields=Name", "getAcct", None),
            sub("GET", "/services/data/v62.0/query?q=SELECT+Id,Account.Name+FROM+Contact+WHERE+Id='@{newContact.id}'", "q", None),
            sub("PATCH", "/services/data/v62.0/sobjects/Account/@{newAcct.id}", "rename", Some(json!({"Name": "@{getAcct.Name} renamed"}))),
        ]}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let subs = r.body["compositeResponse"].as_array().unwrap();
    assert_eq!(subs.len(), 5);
    assert_eq!(subs[0]["httpStatusCode"], 201);
    assert_eq!(subs[0]["referenceId"], "newAcct");
    let acct = subs[0]["body"]["id"].as_str().unwrap();
    assert_eq!(subs[0]["httpHeaders"]["Location"], json!(format!("/services/data/v62.0/sobjects/Account/{acct}")));
    assert_eq!(subs[1]["httpStatusCode"], 201);
    assert_eq!(subs[2]["body"]["Name"], "Composite Co");
    assert_eq!(subs[3]["body"]["records"][0]["Account"]["Name"], "Composite Co");
    assert_eq!(subs[4]["httpStatusCode"], 204);
    assert_eq!(subs[4]["body"], Value::Null);
    assert_eq!(subs[4]["httpHeaders"], json!({}));
    assert_eq!(org.get(&format!("sobjects/Account/{acct}")).body["Name"], "Composite Co renamed");
    // One API call for the whole composite request.
    let after = org.admin("GET", "counters", json!(null)).body["api_usage"].as_u64().unwrap();
    assert_eq!(after - before, 2, "the composite call (subrequests unmetered) + the GET: before={before} after={after}");
}

#[test]
fn failures_without_and_with_all_or_none() {
    let org = Org::start();
    // allOrNone=false: the failure stays local, a dependent subrequest is halted, others run.
    let r = org.post(
        "composite",
        json!({"allOrNone": false, "compositeRequest": [
            sub("POST", "/services/data/v62.0/sobjects/Contact", "bad", Some(json!({"FirstName": "no last name"}))),
            sub("GET", "/services/data/v62.0/sobjects/Contact/@{bad.id}", "dependent", None),
            sub("POST", "/services/data/v62.0/sobjects/Account", "good", Some(json!({"Name": "Survivor"}))),
        ]}),
    );
    let subs = r.body["compositeResponse"].as_array().unwrap();
    assert_eq!(subs[0]["httpStatusCode"], 400);
    assert_eq!(subs[0]["body"][0]["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(subs[1]["httpStatusCode"], 400);
    assert_eq!(subs[1]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert!(subs[1]["body"][0]["message"].as_str().unwrap().contains("bad.id"));
    assert_eq!(subs[2]["httpStatusCode"], 201);
    assert_eq!(org.query("SELECT COUNT() FROM Account WHERE Name = 'Survivor'").body["totalSize"], 1);

    // allOrNone=true: everything rolls back; the others report PROCESSING_HALTED.
    let r = org.post(
        "composite",
        json!({"allOrNone": true, "compositeRequest": [
            sub("POST", "/services/data/v62.0/sobjects/Account", "a1", Some(json!({"Name": "Rolled back"}))),
            sub("PATCH", "/services/data/v62.0/sobjects/Account/@{a1.id}", "a1u", Some(json!({"Industry": "Energy"}))),
            sub("POST", "/services/data/v62.0/sobjects/Contact", "c1", Some(json!({"FirstName": "no last name"}))),
            sub("POST", "/services/data/v62.0/sobjects/Account", "a2", Some(json!({"Name": "Never run"}))),
        ]}),
    );
    assert_eq!(r.status, 200);
    let subs = r.body["compositeResponse"].as_array().unwrap();
    let codes: Vec<(u64, &str)> =
        subs.iter().map(|s| (s["httpStatusCode"].as_u64().unwrap(), s["body"][0]["errorCode"].as_str().unwrap_or(""))).collect();
    assert_eq!(
        codes,
        [(400, "PROCESSING_HALTED"), (400, "PROCESSING_HALTED"), (400, "REQUIRED_FIELD_MISSING"), (400, "PROCESSING_HALTED")]
    );
    assert_eq!(subs[0]["body"][0]["message"], "The transaction was rolled back since another operation in the same transaction failed.");
    assert_eq!(org.query("SELECT COUNT() FROM Account WHERE Name = 'Rolled back'").body["totalSize"], 0);
    assert_eq!(org.query("SELECT COUNT() FROM Account WHERE Name = 'Never run'").body["totalSize"], 0);
    // The survivor from the first call is untouched.
    assert_eq!(org.query("SELECT COUNT() FROM Account WHERE Name = 'Survivor'").body["totalSize"], 1);
}

#[test]
fn request_level_validation() {
    let org = Org::start();
    let many: Vec<Value> = (0..26).map(|i| sub("GET", "/services/data/v62.0/limits", &format!("r{i}"), None)).collect();
    let r = org.post("composite", json!({"compositeRequest": many}));
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "LIMIT_EXCEEDED");
    let ok: Vec<Value> = (0..25).map(|i| sub("GET", "/services/data/v62.0/limits", &format!("r{i}"), None)).collect();
    assert_eq!(org.post("composite", json!({"compositeRequest": ok})).status, 200);
    // At most 5 of them may be queries (Query, QueryAll, a next page) or sObject Collections.
    let q = |i: usize| sub("GET", "/services/data/v62.0/queryAll?q=SELECT+Id+FROM+Account", &format!("q{i}"), None);
    let five: Vec<Value> = (0..5).map(q).chain([sub("GET", "/services/data/v62.0/limits", "l", None)]).collect();
    assert_eq!(org.post("composite", json!({"compositeRequest": five})).status, 200);
    let mut six: Vec<Value> = (0..5).map(q).collect();
    six.push(sub("POST", "/services/data/v62.0/composite/sobjects", "c", Some(json!({"records": []}))));
    let r = org.post("composite", json!({"compositeRequest": six}));
    assert_eq!((r.status, r.code()), (400, "LIMIT_EXCEEDED"), "{:?}", r.body);
    let dup = org.post(
        "composite",
        json!({"compositeRequest": [
        sub("GET", "/services/data/v62.0/limits", "x", None), sub("GET", "/services/data/v62.0/limits", "x", None)]}),
    );
    assert_eq!(dup.status, 400);
    let outside = org.post("composite", json!({"compositeRequest": [sub("POST", "/__emulator/reset", "x", None)]}));
    assert_eq!(outside.status, 400);
    assert_eq!(org.post("composite", json!({})).status, 400);
}

/// sObject Collections writes as composite subrequests (what sfsync's push sends for several
/// tables at once): each subresponse body is the SaveResult array a direct call returns; one
/// refused as a whole (a value that does not parse) fails alone; one API call in all.
#[test]
fn collections_writes_inside_composite() {
    let org = Org::start();
    let acct = org.create("Account", json!({"Name": "Before"}));
    let gone = org.create("Account", json!({"Name": "To delete"}));
    let counters = |org: &Org| org.admin("GET", "counters", json!(null)).body;
    let before = counters(&org);
    let r = org.post(
        "composite",
        json!({"allOrNone": false, "compositeRequest": [
            sub("PATCH", "/services/data/v62.0/composite/sobjects/Contact/Postgres_Id__c", "up", Some(json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Contact"}, "Postgres_Id__c": "c1", "LastName": "One"},
                {"attributes": {"type": "Contact"}, "Postgres_Id__c": "c2"}]}))),
            sub("PATCH", "/services/data/v62.0/composite/sobjects", "upd", Some(json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Account"}, "id": acct, "Name": "After"}]}))),
            sub("PATCH", "/services/data/v62.0/composite/sobjects/Contact/Postgres_Id__c", "bad", Some(json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Contact"}, "Postgres_Id__c": "c3", "LastName": "Three", "Birthdate": {"not": "a date"}}]}))),
            sub("POST", "/services/data/v62.0/composite/sobjects", "ins", Some(json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Account"}, "Name": "Created"}]}))),
            sub("DELETE", &format!("/services/data/v62.0/composite/sobjects?ids={gone},001000000000000AAA&allOrNone=false"), "del", None),
        ]}),
    );
    let after = counters(&org);
    assert_eq!(r.status, 200, "{:?}", r.body);
    let subs = r.body["compositeResponse"].as_array().unwrap();
    assert_eq!(subs[0]["httpStatusCode"], 200);
    let up = subs[0]["body"].as_array().unwrap();
    assert_eq!((up[0]["success"].clone(), up[0]["created"].clone()), (json!(true), json!(true)));
    assert_eq!(up[1]["success"], false, "per record: LastName missing");
    assert_eq!(up[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(up[1]["errors"][0]["fields"], json!(["LastName"]));
    assert_eq!(subs[1]["body"][0], json!({"id": acct, "success": true, "errors": []}));
    assert_eq!((subs[2]["httpStatusCode"].clone(), subs[2]["body"][0]["errorCode"].clone()), (json!(400), json!("JSON_PARSER_ERROR")));
    assert_eq!(subs[3]["body"][0]["success"], true);
    let del = subs[4]["body"].as_array().unwrap();
    assert_eq!((del[0]["success"].clone(), del[1]["success"].clone()), (json!(true), json!(false)));
    for s in subs {
        assert_eq!(s["httpHeaders"], json!({}), "{s}");
    }
    // The refusal stayed in its subrequest: the others were saved.
    assert_eq!(org.query("SELECT COUNT() FROM Contact WHERE Postgres_Id__c = 'c1'").body["totalSize"], 1);
    assert_eq!(org.query("SELECT COUNT() FROM Contact WHERE Postgres_Id__c = 'c3'").body["totalSize"], 0);
    assert_eq!(org.get(&format!("sobjects/Account/{acct}")).body["Name"], "After");
    assert_eq!(after["api_usage"].as_u64().unwrap() - before["api_usage"].as_u64().unwrap(), 1, "one API call");
    let n = |c: &Value, k: &str| c["by_endpoint"][k].as_u64().unwrap_or(0);
    assert_eq!(n(&after, "POST /composite") - n(&before, "POST /composite"), 1);
    assert_eq!(n(&after, "PATCH /composite/sobjects"), n(&before, "PATCH /composite/sobjects"), "subrequests are not calls");
}
