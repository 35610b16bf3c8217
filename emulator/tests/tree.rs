//! `composite/tree` over HTTP.
mod common;

use common::Org;
use serde_json::json;

#[test]
fn tree_creates_parents_and_children_with_reference_ids() {
    let org = Org::start();
    let r = org.post(
        "composite/tree/Account",
        json!({"records": [
            {"attributes": {"type": "Account", "referenceId": "acme"}, "Name": "Acme",
             "Contacts": {"records": [
                {"attributes": {"type": "Contact", "referenceId": "ann"}, "LastName": "Ann", "Email": "ann@example.com"},
                {"attributes": {"type": "Contact", "referenceId": "bob"}, "LastName": "Bob"}
             ]}},
            {"attributes": {"type": "Account", "referenceId": "globex"}, "Name": "Globex"}
        ]}),
    );
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["hasErrors"], false);
    let res = r.body["results"].as_array().unwrap();
    let refs: Vec<&str> = res.iter().map(|x| x["referenceId"].as_str().unwrap()).collect();
    assert_eq!(refs, ["acme", "ann", "bob", "globex"]);
    let acme = res[0]["id"].as_str().unwrap();
    let q = org.query(&format!("SELECT LastName FROM Contact WHERE AccountId = '{acme}' ORDER BY LastName"));
    assert_eq!(q.body["totalSize"], 2, "{:?}", q.body);
    assert_eq!(q.body["records"][0]["LastName"], "Ann");
}

#[test]
fn tree_is_all_or_nothing() {
    let org = Org::start();
    let r = org.post(
        "composite/tree/Account",
        json!({"records": [
            {"attributes": {"type": "Account", "referenceId": "ok"}, "Name": "Fine",
             "Contacts": {"records": [
                {"attributes": {"type": "Contact", "referenceId": "bad"}, "FirstName": "NoLastName"}
             ]}}
        ]}),
    );
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.body["hasErrors"], true);
    assert_eq!(
        r.body["results"],
        json!([{"referenceId": "bad", "errors": [
            {"statusCode": "REQUIRED_FIELD_MISSING", "message": r.body["results"][0]["errors"][0]["message"], "fields": ["LastName"]}
        ]}])
    );
    assert_eq!(org.query("SELECT Id FROM Account").body["totalSize"], 0, "the parent was rolled back");

    let dup = org.post(
        "composite/tree/Account",
        json!({"records": [
            {"attributes": {"type": "Account", "referenceId": "a"}, "Name": "A"},
            {"attributes": {"type": "Account", "referenceId": "a"}, "Name": "B"}
        ]}),
    );
    assert_eq!(dup.status, 400);
    assert_eq!(dup.body["results"][0]["errors"][0]["statusCode"], "INVALID_INPUT");
    assert_eq!(org.query("SELECT Id FROM Account").body["totalSize"], 0);

    let many: Vec<_> = (0..201).map(|i| json!({"attributes": {"type": "Account", "referenceId": format!("r{i}")}, "Name": "x"})).collect();
    let r = org.post("composite/tree/Account", json!({"records": many}));
    assert_eq!(r.status, 400);
    assert_eq!(r.body[0]["errorCode"], "INVALID_INPUT");
    let r = org.post(
        "composite/tree/Account",
        json!({"records": [{"attributes": {"type": "Account", "referenceId": "a"}, "Name": "A", "Nope": {"records": []}}]}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.body[0]["errorCode"], "INVALID_FIELD");
}
