//! Custom fields added, changed and removed at runtime (`/__emulator/fields`): the org behaves
//! as a real one after such a Setup change.

mod common;

use common::Org;
use serde_json::{json, Value};

const NO_SUCH: &str = "If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.";

fn field<'a>(describe: &'a Value, name: &str) -> Option<&'a Value> {
    describe["fields"].as_array().unwrap().iter().find(|f| f["name"] == name)
}

fn add(org: &Org, object: &str, spec: Value) {
    let r = org.admin("POST", &format!("fields/{object}"), spec);
    assert_eq!(r.status, 201, "{:?}", r.body);
}

#[test]
fn added_field_is_described_queried_and_written() {
    let org = Org::start();
    add(&org, "Contact", json!({"name": "Score__c", "type": "int"}));
    add(&org, "Contact", json!({"name": "Ext__c", "type": "string", "length": 20, "externalId": true}));
    let d = org.get("sobjects/Contact/describe").body;
    assert_eq!(field(&d, "Score__c").unwrap()["type"], "int");
    assert_eq!(field(&d, "Ext__c").unwrap()["length"], 20);
    assert_eq!(field(&d, "Ext__c").unwrap()["externalId"], true);
    let id = org.create("Contact", json!({"LastName": "A", "Score__c": 5}));
    let r = org.query("SELECT Score__c FROM Contact WHERE Score__c = 5");
    assert_eq!(r.body["records"][0]["Score__c"], 5, "{:?}", r.body);
    // The new external ID works for upserts at once.
    let r = org.patch("sobjects/Contact/Ext__c/E-1", json!({"LastName": "B"}));
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(org.query("SELECT COUNT() FROM Contact").body["totalSize"], 2);
    assert_eq!(org.get(&format!("sobjects/Contact/{id}")).body["Ext__c"], Value::Null);
    // Standard objects take custom fields only; names must be unique.
    assert_eq!(org.admin("POST", "fields/Contact", json!({"name": "Score", "type": "int"})).status, 400);
    assert_eq!(org.admin("POST", "fields/Contact", json!({"name": "Score__c", "type": "int"})).status, 400);
    assert_eq!(org.admin("POST", "fields/Nope__c", json!({"name": "A__c", "type": "int"})).status, 400);
}

#[test]
fn describe_honours_if_modified_since() {
    let org = Org::start();
    let r = org.get("sobjects/Contact/describe");
    let last = r.header("last-modified").expect("Last-Modified").to_string();
    let auth = format!("Bearer {}", org.token);
    let cond = |path: &str, since: &str| org.get_with(path, &[("Authorization", auth.as_str()), ("If-Modified-Since", since)]);
    let r = cond("sobjects/Contact/describe", &last);
    assert_eq!(r.status, 304);
    assert_eq!(r.body, Value::Null);
    let glob = org.get("sobjects").header("last-modified").unwrap().to_string();
    assert_eq!(cond("sobjects", &glob).status, 304);

    add(&org, "Contact", json!({"name": "Tier__c", "type": "picklist", "picklistValues": ["Gold", "Silver"]}));
    let r = cond("sobjects/Contact/describe", &last);
    assert_eq!(r.status, 200);
    assert!(field(&r.body, "Tier__c").is_some());
    let newer = r.header("last-modified").unwrap().to_string();
    assert_ne!(newer, last);
    assert_eq!(cond("sobjects/Contact/describe", &newer).status, 304);
    assert_eq!(cond("sobjects", &glob).status, 200, "describeGlobal follows any object's change");
    // Other objects did not change.
    let acc = org.get("sobjects/Account/describe").header("last-modified").unwrap().to_string();
    assert_eq!(cond("sobjects/Account/describe", &acc).status, 304);
}

#[test]
fn removed_field_fails_by_name_and_its_values_disappear() {
    let org = Org::start();
    add(&org, "Contact", json!({"name": "Gone__c", "type": "string"}));
    add(&org, "Contact", json!({"name": "Kept__c", "type": "string"}));
    let id = org.create("Contact", json!({"LastName": "A", "Gone__c": "g", "Kept__c": "k"}));
    let r = org.admin("DELETE", "fields/Contact/Gone__c", json!(null));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(field(&org.get("sobjects/Contact/describe").body, "Gone__c").is_none());

    let r = org.query("SELECT Id, Gone__c FROM Contact");
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "INVALID_FIELD");
    let msg = r.body[0]["message"].as_str().unwrap();
    assert!(msg.contains(&format!("No such column 'Gone__c' on entity 'Contact'. {NO_SUCH}")), "{msg}");

    let r = org.post("sobjects/Contact", json!({"LastName": "B", "Gone__c": "x"}));
    assert_eq!(r.status, 400);
    assert_eq!(r.body, json!([{"message": "No such column 'Gone__c' on sobject of type Contact", "errorCode": "INVALID_FIELD"}]));
    let r = org.patch(&format!("sobjects/Contact/{id}"), json!({"Gone__c": "x"}));
    assert_eq!(r.code(), "INVALID_FIELD");
    let r = org.patch("composite/sobjects", json!({"records": [{"attributes": {"type": "Contact"}, "id": id, "Gone__c": "x"}]}));
    assert!(r.body.to_string().contains("INVALID_FIELD"), "{:?}", r.body);

    // The fields after it keep their values; the removed one's values are gone for good.
    let rec = org.get(&format!("sobjects/Contact/{id}")).body;
    assert_eq!(rec["Kept__c"], "k");
    assert!(rec.get("Gone__c").is_none());
    add(&org, "Contact", json!({"name": "Gone__c", "type": "string"}));
    assert_eq!(org.get(&format!("sobjects/Contact/{id}")).body["Gone__c"], Value::Null);
    assert_eq!(org.query("SELECT Kept__c FROM Contact").body["records"][0]["Kept__c"], "k");

    // Standard fields can't be removed.
    assert_eq!(org.admin("DELETE", "fields/Contact/Email", json!(null)).status, 400);
}

#[test]
fn renamed_field_keeps_values_under_its_new_name() {
    let org = Org::start();
    add(&org, "Account", json!({"name": "Old__c", "type": "string"}));
    let id = org.create("Account", json!({"Name": "A", "Old__c": "v"}));
    let r = org.admin("PATCH", "fields/Account/Old__c", json!({"name": "New__c"}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(org.get(&format!("sobjects/Account/{id}")).body["New__c"], "v");
    assert_eq!(org.query("SELECT Old__c FROM Account").code(), "INVALID_FIELD");
    assert_eq!(org.query("SELECT New__c FROM Account WHERE New__c = 'v'").body["totalSize"], 1);
}

#[test]
fn retyped_field_converts_or_clears_values() {
    let org = Org::start();
    add(&org, "Account", json!({"name": "Size__c", "type": "string"}));
    add(&org, "Account", json!({"name": "Note__c", "type": "string", "length": 100}));
    let a = org.create("Account", json!({"Name": "A", "Size__c": "12", "Note__c": "abcdefgh"}));
    let b = org.create("Account", json!({"Name": "B", "Size__c": "many"}));
    assert_eq!(org.admin("PATCH", "fields/Account/Size__c", json!({"type": "double", "precision": 18, "scale": 0})).status, 200);
    assert_eq!(org.admin("PATCH", "fields/Account/Note__c", json!({"length": 3})).status, 200);
    let d = org.get("sobjects/Account/describe").body;
    assert_eq!(field(&d, "Size__c").unwrap()["type"], "double");
    assert_eq!(field(&d, "Note__c").unwrap()["length"], 3);
    let ra = org.get(&format!("sobjects/Account/{a}")).body;
    assert_eq!(ra["Size__c"], 12.0);
    assert_eq!(ra["Note__c"], "abc");
    assert_eq!(org.get(&format!("sobjects/Account/{b}")).body["Size__c"], Value::Null);
    let r = org.post("sobjects/Account", json!({"Name": "C", "Size__c": "lots"}));
    assert_eq!(r.status, 400, "the new type is enforced");
    // Lookups can't be retyped.
    assert_eq!(org.admin("PATCH", "fields/Account/Size__c", json!({"type": "reference"})).status, 400);
}

#[test]
fn referenced_fields_are_protected_and_reset_restores_the_schema() {
    let org = Org::start();
    add(&org, "Opportunity", json!({"name": "Base__c", "type": "double"}));
    add(&org, "Opportunity", json!({"name": "Twice__c", "type": "double", "formula": "Base__c * 2"}));
    add(&org, "Opportunity", json!({"name": "After__c", "type": "double"}));
    let r = org.admin("DELETE", "fields/Opportunity/Base__c", json!(null));
    assert_eq!(r.status, 400);
    assert!(r.body["error"].as_str().unwrap().contains("Twice__c"), "{:?}", r.body);
    // Removing a field before a formula's inputs keeps the formula right.
    add(&org, "Account", json!({"name": "Unused__c", "type": "string"}));
    let id =
        org.create("Opportunity", json!({"Name": "O", "StageName": "Prospecting", "CloseDate": "2026-01-01", "Base__c": 4, "After__c": 1}));
    assert_eq!(org.admin("DELETE", "fields/Opportunity/Twice__c", json!(null)).status, 200);
    assert_eq!(org.get(&format!("sobjects/Opportunity/{id}")).body["After__c"], 1.0);

    org.admin("POST", "reset", json!({}));
    let d = org.get("sobjects/Opportunity/describe").body;
    assert!(field(&d, "Base__c").is_none(), "reset brings back the startup schema");
    assert!(field(&d, "Amount").is_some());
}

#[test]
fn rules_follow_a_rename_and_protect_their_fields() {
    let org = Org::start();
    add(&org, "Contact", json!({"name": "Code__c", "type": "string"}));
    let rule = json!({"object": "Contact", "name": "NoX", "field": "Code__c", "op": "equals", "value": "X", "message": "no X"});
    assert_eq!(org.admin("POST", "validation_rules", rule).status, 201);
    let r = org.admin("DELETE", "fields/Contact/Code__c", json!(null));
    assert_eq!(r.status, 400);
    assert!(r.body["error"].as_str().unwrap().contains("NoX"), "{:?}", r.body);
    assert_eq!(org.admin("PATCH", "fields/Contact/Code__c", json!({"name": "Key__c"})).status, 200);
    let r = org.post("sobjects/Contact", json!({"LastName": "A", "Key__c": "X"}));
    assert_eq!(r.code(), "FIELD_CUSTOM_VALIDATION_EXCEPTION", "the rule follows the rename: {:?}", r.body);
}
