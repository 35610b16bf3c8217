//! What clients read about the org: Organization, Profile, record counts, column metadata and the
//! identity URL.
mod common;

use common::Org;
use serde_json::json;

#[test]
fn organization_is_one_read_only_row() {
    let org = Org::start();
    let r = org.query("SELECT Id, Name, InstanceName, IsSandbox, OrganizationType, NamespacePrefix, TrialExpirationDate FROM Organization");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["totalSize"], 1);
    let row = &r.body["records"][0];
    assert!(row["Id"].as_str().unwrap().starts_with("00D"));
    assert_eq!(row["IsSandbox"], false);
    assert_eq!(row["OrganizationType"], "Enterprise Edition");
    assert_eq!(row["NamespacePrefix"], serde_json::Value::Null);
    assert_eq!(row["TrialExpirationDate"], serde_json::Value::Null);
    assert!(row["InstanceName"].is_string());
    // The same org the session belongs to.
    let info = org.get("/services/oauth2/userinfo");
    assert_eq!(info.body["organization_id"], row["Id"]);

    let d = org.get("sobjects/Organization/describe");
    assert_eq!(d.status, 200);
    assert_eq!(d.body["createable"], false);
    assert_eq!(d.body["updateable"], false);
    assert!(d.body["fields"].as_array().unwrap().iter().all(|f| f["name"] != "Postgres_Id__c"));
    let r = org.post("sobjects/Organization", json!({}));
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.body[0]["errorCode"], "INVALID_TYPE");
    let id = row["Id"].as_str().unwrap();
    let r = org.patch(&format!("sobjects/Organization/{id}"), json!({}));
    assert_eq!(r.body[0]["errorCode"], "INVALID_TYPE", "{:?}", r.body);
    assert_eq!(org.delete(&format!("sobjects/Organization/{id}")).body[0]["errorCode"], "INVALID_TYPE");

    // Reset wipes data, not the org's own rows.
    assert_eq!(org.admin("POST", "reset", json!({})).status, 200);
    assert_eq!(org.query("SELECT Id FROM Organization").body["totalSize"], 1);
}

#[test]
fn the_user_has_a_profile() {
    let org = Org::start();
    let r = org.query("SELECT Id, Username, ProfileId, Profile.Name FROM User WHERE Username = 'integration@sfsync.local'");
    assert_eq!(r.status, 200, "{:?}", r.body);
    let user = &r.body["records"][0];
    assert_eq!(user["Profile"]["Name"], "System Administrator");
    let p = org.query(&format!("SELECT Name, UserType FROM Profile WHERE Id = '{}'", user["ProfileId"].as_str().unwrap()));
    assert_eq!(p.body["records"][0]["UserType"], "Standard");
    assert_eq!(org.get("sobjects/Profile/describe").status, 200);
}

#[test]
fn record_counts() {
    let org = Org::start();
    let a = org.create("Account", json!({"Name": "A"}));
    org.create("Account", json!({"Name": "B"}));
    org.create("Contact", json!({"LastName": "C"}));
    assert_eq!(org.delete(&format!("sobjects/Account/{a}")).status, 204);
    let r = org.get("limits/recordCount?sObjects=Account,Contact,Lead");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["sObjects"], json!([{"count": 1, "name": "Account"}, {"count": 1, "name": "Contact"}, {"count": 0, "name": "Lead"}]));
    let all = org.get("limits/recordCount").body["sObjects"].as_array().unwrap().clone();
    assert!(all.contains(&json!({"count": 1, "name": "Contact"})));
    assert!(!all.iter().any(|o| o["name"] == "Lead"), "{all:?}");
}

#[test]
fn query_columns_describe_the_select_list() {
    let org = Org::start();
    org.create("Account", json!({"Name": "A"}));
    let r = org.get(&format!(
        "query?columns=true&q={}",
        common::enc("SELECT Id, Name, NumberOfEmployees, Owner.Name, (SELECT LastName FROM Contacts) FROM Account")
    ));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body.get("records").is_none(), "{:?}", r.body);
    assert_eq!(r.body["entityName"], "Account");
    assert_eq!(r.body["keyPrefix"], "001");
    assert_eq!(r.body["idSelected"], true);
    let cols = r.body["columnMetadata"].as_array().unwrap();
    let names: Vec<&str> = cols.iter().map(|c| c["columnName"].as_str().unwrap()).collect();
    assert_eq!(names, ["Id", "Name", "NumberOfEmployees", "Owner", "Contacts"]);
    assert_eq!(cols[0]["apexType"], "Id");
    assert_eq!(cols[1]["textType"], true);
    assert_eq!(cols[1]["updatable"], true);
    assert_eq!(cols[2]["numberType"], true);
    assert_eq!(cols[3]["joinColumns"][0]["columnName"], "Name");
    assert_eq!(cols[3]["joinColumns"][0]["displayName"], "Owner.Name");
    assert_eq!(cols[4]["aggregate"], true);
    assert_eq!(cols[4]["joinColumns"][0]["columnName"], "LastName");

    let r = org.get(&format!("query?columns=true&q={}", common::enc("SELECT Industry, COUNT(Id) n FROM Account GROUP BY Industry")));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["groupBy"], true);
    assert_eq!(r.body["columnMetadata"][1]["columnName"], "n");
    assert_eq!(r.body["columnMetadata"][1]["aggregate"], true);
}

#[test]
fn identity_url() {
    let org = Org::start();
    let token = org.form(
        "/services/oauth2/token",
        &[("grant_type", "client_credentials"), ("client_id", "sfsync-local"), ("client_secret", "sfsync-local-secret")],
    );
    let id_url = token.body["id"].as_str().unwrap().to_string();
    let path = id_url.strip_prefix(&org.base).unwrap();
    let r = org.get(path);
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["id"], id_url.as_str());
    assert_eq!(r.body["username"], "integration@sfsync.local");
    assert_eq!(r.body["urls"]["rest"], format!("{}/services/data/v{{version}}/", org.base));
    assert_eq!(org.get_with(path, &[]).status, 403);
    let other = path.replace("/005", "/006");
    assert_eq!(org.get(&other).status, 404);
}
