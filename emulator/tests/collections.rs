mod common;
use common::Org;
use serde_json::{json, Value};

fn recs(n: usize) -> Vec<Value> {
    (0..n).map(|i| json!({"attributes": {"type": "Account"}, "Name": format!("A{i}")})).collect()
}

#[test]
fn create_partial_failure_in_order() {
    let org = Org::start();
    let r = org.post(
        "composite/sobjects",
        json!({"allOrNone": false, "records": [
            {"attributes": {"type": "Account"}, "Name": "ok"},
            {"attributes": {"type": "Contact"}, "FirstName": "no last name"},
            {"attributes": {"type": "Contact"}, "LastName": "fine"},
        ]}),
    );
    assert_eq!(r.status, 200);
    let a = r.body.as_array().unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(a[0]["success"], true);
    assert!(a[0]["id"].as_str().unwrap().starts_with("001"));
    assert_eq!(
        a[1],
        json!({"success": false, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]", "fields": ["LastName"]}]})
    );
    assert!(a[2]["id"].as_str().unwrap().starts_with("003"));
}

#[test]
fn all_or_none_rolls_back() {
    let org = Org::start();
    let r = org.post(
        "composite/sobjects",
        json!({"allOrNone": true, "records": [
            {"attributes": {"type": "Account"}, "Name": "ok", "Postgres_Id__c": "r1"},
            {"attributes": {"type": "Account"}},
        ]}),
    );
    let a = r.body.as_array().unwrap();
    assert_eq!(a[0]["success"], false);
    assert_eq!(a[0]["errors"][0]["statusCode"], "ALL_OR_NONE_OPERATION_ROLLED_BACK");
    assert_eq!(a[1]["errors"][0]["statusCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(org.query("SELECT COUNT() FROM Account").body["totalSize"], 0);
    assert_eq!(org.get("sobjects/Account/Postgres_Id__c/r1").status, 404);
    // The rolled-back external ID is free again.
    org.create("Account", json!({"Name": "again", "Postgres_Id__c": "r1"}));
}

#[test]
fn update_upsert_delete_and_limits() {
    let org = Org::start();
    let ids: Vec<String> = org
        .post("composite/sobjects", json!({"records": recs(3)}))
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();

    let u = org.patch(
        "composite/sobjects",
        json!({"records": [
            {"attributes": {"type": "Account"}, "Id": ids[0], "Name": "B0"},
            {"attributes": {"type": "Account"}, "Id": "001Kg0000ZZZZZZ", "Name": "B1"},
            {"attributes": {"type": "Account"}, "Name": "no id"},
        ]}),
    );
    let a = u.body.as_array().unwrap();
    assert_eq!(a[0], json!({"id": ids[0], "success": true, "errors": []}));
    assert_eq!(a[1]["success"], false);
    assert_eq!(a[2]["success"], false);

    let up = org.patch(
        "composite/sobjects/Account/Postgres_Id__c",
        json!({"allOrNone": false, "records": [
            {"attributes": {"type": "Account"}, "Postgres_Id__c": "e1", "Name": "E1"},
            {"attributes": {"type": "Account"}, "Postgres_Id__c": "e1", "Name": "E1 again"},
        ]}),
    );
    let a = up.body.as_array().unwrap();
    assert_eq!(a[0]["created"], true);
    assert_eq!(a[1]["created"], false);
    assert_eq!(a[0]["id"], a[1]["id"]);

    let d = org.delete(&format!("composite/sobjects?ids={},{},bad&allOrNone=false", ids[1], ids[2]));
    let a = d.body.as_array().unwrap();
    assert_eq!(a[0], json!({"id": ids[1], "success": true, "errors": []}));
    assert_eq!(a[2], json!({"success": false, "errors": [{"statusCode": "MALFORMED_ID", "message": "malformed id bad", "fields": []}]}));
    let again = org.delete(&format!("composite/sobjects?ids={}", ids[1]));
    assert_eq!(again.body[0]["errors"][0]["statusCode"], "ENTITY_IS_DELETED");

    let big = org.post("composite/sobjects", json!({"records": recs(201)}));
    assert_eq!(big.status, 400);
    assert_eq!(big.code(), "EXCEEDED_ID_LIMIT");
    assert_eq!(org.post("composite/sobjects", json!({"records": recs(200)})).status, 200);

    let got = org.get(&format!("composite/sobjects/Account?ids={},{}&fields=Name", ids[0], ids[1]));
    assert_eq!(got.body[0]["Name"], "B0");
    assert_eq!(got.body[1], Value::Null);
}
