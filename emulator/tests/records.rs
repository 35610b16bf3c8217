mod common;
use common::Org;
use serde_json::json;

#[test]
fn discovery_and_describe() {
    let org = Org::start();
    let v = org.get("/services/data/");
    assert_eq!(v.status, 200);
    let last = v.body.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last, json!({"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"}));
    let res = org.get("");
    assert_eq!(res.body["sobjects"], "/services/data/v62.0/sobjects");
    assert_eq!(org.get("/services/data/v99.0/sobjects").status, 404);
    assert_eq!(org.get("/services/data/v58.0/sobjects").status, 200);

    let g = org.get("sobjects");
    assert_eq!(g.body["encoding"], "UTF-8");
    assert_eq!(g.body["maxBatchSize"], 200);
    let names: Vec<&str> = g.body["sobjects"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
    for o in ["Account", "Contact", "Lead", "Opportunity", "User", "Task", "Campaign", "CampaignMember"] {
        assert!(names.contains(&o), "{o}");
    }

    let d = org.get("sobjects/Contact/describe");
    assert_eq!(d.status, 200);
    assert_eq!(d.body["keyPrefix"], "003");
    let field = |n: &str| d.body["fields"].as_array().unwrap().iter().find(|f| f["name"] == n).cloned().unwrap();
    let last_name = field("LastName");
    assert_eq!(
        (last_name["nillable"].clone(), last_name["type"].clone(), last_name["length"].clone()),
        (json!(false), json!("string"), json!(80))
    );
    let acc = field("AccountId");
    assert_eq!(acc["type"], "reference");
    assert_eq!(acc["soapType"], "tns:ID");
    assert_eq!(acc["referenceTo"], json!(["Account"]));
    assert_eq!(acc["relationshipName"], "Account");
    assert_eq!(field("Birthdate")["soapType"], "xsd:date");
    assert_eq!(field("Name")["createable"], false);
    let pg = field("Postgres_Id__c");
    for k in ["externalId", "unique", "nillable", "createable", "updateable", "custom"] {
        assert_eq!(pg[k], true, "{k}");
    }
    assert_eq!(pg["length"], 255);

    let a = org.get("sobjects/Account/describe");
    let afield = |n: &str| a.body["fields"].as_array().unwrap().iter().find(|f| f["name"] == n).cloned().unwrap();
    assert_eq!(afield("AnnualRevenue")["type"], "currency");
    assert_eq!(afield("AnnualRevenue")["precision"], 18);
    assert_eq!(afield("Industry")["type"], "picklist");
    assert!(afield("Industry")["picklistValues"].as_array().unwrap().iter().any(|p| p["value"] == "Banking"));
    assert_eq!(afield("Description")["length"], 32000);
    assert_eq!(afield("Website")["type"], "url");
    assert_eq!(afield("NumberOfEmployees")["type"], "int");

    let nf = org.get("sobjects/Nope__c/describe");
    assert_eq!(nf.status, 404);
    assert_eq!(nf.body, json!([{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]));
}

#[test]
fn crud_and_audit_fields() {
    let org = Org::start();
    let r = org.post("sobjects/Account", json!({"Name": "Acme", "NumberOfEmployees": 5, "Industry": "Banking"}));
    assert_eq!(r.status, 201);
    assert_eq!(r.body["success"], true);
    assert_eq!(r.body["errors"], json!([]));
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 18);
    assert!(id.starts_with("001"));
    assert_eq!(sf_emulator::ids::normalize(&id[..15]).unwrap(), id);

    let g = org.get(&format!("sobjects/Account/{id}"));
    assert_eq!(g.status, 200);
    assert_eq!(g.body["attributes"], json!({"type": "Account", "url": format!("/services/data/v62.0/sobjects/Account/{id}")}));
    assert_eq!(g.body["Name"], "Acme");
    assert_eq!(g.body["IsDeleted"], false);
    let user = g.body["OwnerId"].as_str().unwrap().to_string();
    assert!(user.starts_with("005"));
    assert_eq!(g.body["CreatedById"], json!(user));
    let created = g.body["CreatedDate"].as_str().unwrap().to_string();
    assert_eq!(created.len(), 28);
    assert!(created.ends_with("+0000"));
    // 15-char and lower-cased 18-char IDs address the same record.
    assert_eq!(org.get(&format!("sobjects/Account/{}", &id[..15])).status, 200);
    assert_eq!(org.get(&format!("sobjects/Account/{}", id.to_lowercase())).status, 200);

    let some = org.get(&format!("sobjects/Account/{id}?fields=Name,Industry"));
    assert_eq!(some.body.as_object().unwrap().len(), 4, "{:?}", some.body);

    let stamp1 = g.body["SystemModstamp"].as_str().unwrap().to_string();
    let u = org.patch(&format!("sobjects/Account/{id}"), json!({"Name": "Acme 2", "Phone": null}));
    assert_eq!(u.status, 204);
    // A no-change write still bumps the stamps.
    assert_eq!(org.patch(&format!("sobjects/Account/{id}"), json!({})).status, 204);
    let g2 = org.get(&format!("sobjects/Account/{id}"));
    assert_eq!(g2.body["Name"], "Acme 2");
    let stamp2 = g2.body["SystemModstamp"].as_str().unwrap().to_string();
    assert!(stamp2 > stamp1, "{stamp1} {stamp2}");
    assert_eq!(g2.body["CreatedDate"], json!(created));

    assert_eq!(org.delete(&format!("sobjects/Account/{id}")).status, 204);
    let gone = org.get(&format!("sobjects/Account/{id}"));
    assert_eq!(gone.status, 404);
    assert_eq!(gone.code(), "NOT_FOUND");
    let again = org.delete(&format!("sobjects/Account/{id}"));
    assert_eq!(again.status, 404);
    assert_eq!(again.code(), "ENTITY_IS_DELETED");
    let upd = org.patch(&format!("sobjects/Account/{id}"), json!({"Name": "x"}));
    assert_eq!(upd.code(), "ENTITY_IS_DELETED");

    let bad = org.get("sobjects/Account/xyz");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body[0]["errorCode"], "MALFORMED_ID");
    assert_eq!(bad.body[0]["message"], "malformed id xyz");
    let unknown = org.get("sobjects/Account/001Kg0000ZZZZZZ");
    assert_eq!(unknown.status, 404);
}

#[test]
fn validation_errors() {
    let org = Org::start();
    let r = org.post("sobjects/Contact", json!({"FirstName": "Bob"}));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        json!([{"message": "Required fields are missing: [LastName]", "errorCode": "REQUIRED_FIELD_MISSING", "fields": ["LastName"]}])
    );
    let opp = org.post("sobjects/Opportunity", json!({}));
    assert_eq!(opp.body[0]["fields"], json!(["Name", "StageName", "CloseDate"]));

    let long = "x".repeat(256);
    let r = org.post("sobjects/Account", json!({"Name": long}));
    assert_eq!(r.code(), "STRING_TOO_LONG");
    assert_eq!(r.body[0]["message"], format!("Account Name: data value too large: {long} (max length=255)"));
    assert_eq!(r.body[0]["fields"], json!(["Name"]));

    let r = org.post("sobjects/Account", json!({"Name": "a", "Foo": 1}));
    assert_eq!(r.body, json!([{"message": "No such column 'Foo' on sobject of type Account", "errorCode": "INVALID_FIELD"}]));

    let r = org.post("sobjects/Account", json!({"Name": "a", "CreatedDate": "2024-01-01T00:00:00Z"}));
    assert_eq!(r.code(), "INVALID_FIELD_FOR_INSERT_UPDATE");
    assert_eq!(r.body[0]["fields"], json!(["CreatedDate"]));

    let r = org.post("sobjects/Contact", json!({"LastName": "a", "HasOptedOutOfEmail": "maybe"}));
    assert_eq!(r.code(), "JSON_PARSER_ERROR");
    let r = org.post("sobjects/Account", json!({"Name": "a", "NumberOfEmployees": "many"}));
    assert_eq!(r.code(), "JSON_PARSER_ERROR");
    let r = org.post("sobjects/Account", json!({"Name": "a", "NumberOfEmployees": 1.5}));
    assert_eq!(r.code(), "INVALID_TYPE_ON_FIELD_IN_RECORD");

    org.create("Account", json!({"Name": "a", "Postgres_Id__c": "k1"}));
    let r = org.post("sobjects/Account", json!({"Name": "b", "Postgres_Id__c": "K1"}));
    assert_eq!(r.code(), "DUPLICATE_VALUE");

    let r = org.post("sobjects/Contact", json!({"LastName": "a", "AccountId": "001Kg0000ZZZZZZ"}));
    assert_eq!(r.code(), "INVALID_CROSS_REFERENCE_KEY");
    assert_eq!(r.body[0]["fields"], json!(["AccountId"]));

    let r = org.post(
        "sobjects/User",
        json!({"Username": "u@x.com", "LastName": "U", "Email": "u@x.com", "Alias": "u",
        "TimeZoneSidKey": "Mars/Olympus", "LocaleSidKey": "en_US", "EmailEncodingKey": "UTF-8", "LanguageLocaleKey": "en_US"}),
    );
    assert_eq!(r.code(), "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");

    let r = org.post("sobjects/Contact", json!({"LastName": "a", "Email": "not-an-email"}));
    assert_eq!(r.code(), "INVALID_EMAIL_ADDRESS");

    let r = org.patch(&format!("sobjects/Account/{}", org.create("Account", json!({"Name": "n"}))), json!({"Name": null}));
    assert_eq!(r.code(), "REQUIRED_FIELD_MISSING");
}

#[test]
fn datetime_and_date_inputs() {
    let org = Org::start();
    let camp = org.create("Campaign", json!({"Name": "c", "StartDate": "2024-05-20"}));
    let g = org.get(&format!("sobjects/Campaign/{camp}"));
    assert_eq!(g.body["StartDate"], "2024-05-20");
    let r = org.post("sobjects/Campaign", json!({"Name": "c", "StartDate": "2024-13-01"}));
    assert_eq!(r.code(), "JSON_PARSER_ERROR");

    // Custom datetime field via a schema file.
    let path = common::schema_file(r#"{"fields":{"Account":[{"name":"Seen__c","type":"datetime"}]}}"#);
    let org = Org::with(sf_emulator::Config { schema_file: Some(path), ..Default::default() });
    for input in [
        "2024-05-20T20:49:32.000+0000",
        "2024-05-20T20:49:32Z",
        "2024-05-20T20:49:32+00:00",
        "2024-05-20T20:49:32",
        "2024-05-20T22:49:32.000+02:00",
    ] {
        let id = org.create("Account", json!({"Name": "d", "Seen__c": input}));
        let g = org.get(&format!("sobjects/Account/{id}"));
        assert_eq!(g.body["Seen__c"], "2024-05-20T20:49:32.000+0000", "{input}");
    }
    let q = org.query("SELECT Id FROM Account WHERE Seen__c = 2024-05-20T20:49:32Z");
    assert_eq!(q.body["totalSize"], 5);
    let q = org.query("SELECT Id FROM Account WHERE Seen__c > 2024-05-20T20:49:32.001Z");
    assert_eq!(q.body["totalSize"], 0);
}

#[test]
fn upsert_by_external_id() {
    let org = Org::start();
    let r = org.patch("sobjects/Account/Postgres_Id__c/pg-1", json!({"Name": "One"}));
    assert_eq!(r.status, 201);
    assert_eq!(r.body["created"], true);
    let id = r.body["id"].as_str().unwrap().to_string();
    let r = org.patch("sobjects/Account/Postgres_Id__c/pg-1", json!({"Name": "Uno"}));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"id": id, "success": true, "errors": [], "created": false}));
    let g = org.get("sobjects/Account/Postgres_Id__c/pg-1");
    assert_eq!(g.body["Name"], "Uno");
    assert_eq!(g.body["Postgres_Id__c"], "pg-1");

    let r = org.patch("sobjects/Account/Name/x", json!({"Name": "x"}));
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        json!([{"message": "Provided external ID field does not exist or is not accessible: Name", "errorCode": "NOT_FOUND"}])
    );
    let r = org.patch("sobjects/Account/Nope__c/x", json!({"Name": "x"}));
    assert_eq!(r.status, 404);
    let r = org.patch("sobjects/Account/Postgres_Id__c/pg-2", json!({}));
    assert_eq!(r.code(), "REQUIRED_FIELD_MISSING");
}

#[test]
fn id_checksum() {
    assert_eq!(sf_emulator::ids::to18("001A0000006Vm9r"), "001A0000006Vm9rIAC");
    assert_eq!(sf_emulator::ids::normalize("001a0000006vm9riac").unwrap(), "001A0000006Vm9rIAC");
}
