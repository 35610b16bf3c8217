//! SOSL `search` over HTTP.
mod common;

use common::{enc, Org};
use serde_json::json;

#[test]
fn find_returning_objects_and_fields() {
    let org = Org::start();
    let acme = org.create("Account", json!({"Name": "Acme Rockets", "Industry": "Energy"}));
    org.create("Account", json!({"Name": "Globex"}));
    org.create("Contact", json!({"LastName": "Coyote", "Email": "wile@acme.example"}));
    org.create("Contact", json!({"LastName": "Runner"}));

    let r = org.get(&format!("search?q={}", enc("FIND {acme*} IN ALL FIELDS RETURNING Account(Id, Name), Contact(LastName)")));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let recs = r.body["searchRecords"].as_array().unwrap();
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(recs[0]["attributes"]["type"], "Account");
    assert_eq!(recs[0]["Id"], acme.as_str());
    assert_eq!(recs[0]["Name"], "Acme Rockets");
    assert_eq!(recs[1]["attributes"]["type"], "Contact");
    assert_eq!(recs[1]["LastName"], "Coyote");

    // NAME FIELDS leaves the e-mail match out; WHERE inside RETURNING filters.
    let r = org.get(&format!("search?q={}", enc("FIND {Acme} IN NAME FIELDS RETURNING Account(Name WHERE Industry = 'Energy'), Contact")));
    let recs = r.body["searchRecords"].as_array().unwrap();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0]["Name"], "Acme Rockets");

    // Without RETURNING: every object, IDs only; LIMIT caps the total.
    let r = org.get(&format!("search?q={}", enc("FIND {acme}")));
    assert_eq!(r.body["searchRecords"].as_array().unwrap().len(), 2);
    let r = org.get(&format!("search?q={}", enc("FIND {acme} RETURNING Account, Contact LIMIT 1")));
    assert_eq!(r.body["searchRecords"].as_array().unwrap().len(), 1);
}

#[test]
fn malformed_search() {
    let org = Org::start();
    let r = org.get(&format!("search?q={}", enc("SELECT Id FROM Account")));
    assert_eq!(r.status, 400);
    assert_eq!(r.body[0]["errorCode"], "MALFORMED_SEARCH");
    let r = org.get(&format!("search?q={}", enc("FIND {acme} RETURNING Nope__c")));
    assert_eq!(r.status, 400);
    assert_eq!(r.body[0]["errorCode"], "INVALID_TYPE", "{:?}", r.body);
}

#[test]
fn returning_limit_counts_matching_records() {
    let org = Org::start();
    // Records that do not match come first in the object; LIMIT must still find the matches.
    for i in 0..3 {
        org.create("Account", json!({"Name": format!("Other {i}")}));
    }
    org.create("Account", json!({"Name": "Acme One"}));
    org.create("Account", json!({"Name": "Acme Two"}));
    let r = org.get(&format!("search?q={}", enc("FIND {acme} RETURNING Account(Name LIMIT 1)")));
    let recs = r.body["searchRecords"].as_array().unwrap();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert!(recs[0]["Name"].as_str().unwrap().starts_with("Acme"), "{recs:?}");
}

#[test]
fn parameterized_search_get() {
    let org = Org::start();
    let acme = org.create("Account", json!({"Name": "Acme Rockets", "Industry": "Energy"}));
    org.create("Account", json!({"Name": "Acme Anvils", "Industry": "Banking"}));
    org.create("Contact", json!({"LastName": "Coyote", "Email": "wile@acme.example"}));
    org.create("Lead", json!({"LastName": "Acme", "Company": "Acme Lead Co"}));

    // One object, its fields and filter; the Contact matches by e-mail only.
    let r = org.get(&format!(
        "parameterizedSearch/?q=acme&sobject=Account&Account.fields=Id,Name&Account.where={}&sobject=Contact&Contact.fields=LastName,Email",
        enc("Industry = 'Energy'")
    ));
    assert_eq!(r.status, 200, "{:?}", r.body);
    let recs = r.body["searchRecords"].as_array().unwrap();
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!((recs[0]["Id"].as_str(), recs[0]["Name"].as_str()), (Some(acme.as_str()), Some("Acme Rockets")));
    assert_eq!(recs[0]["attributes"]["type"], "Account");
    assert_eq!(recs[1]["Email"], "wile@acme.example");

    // in=NAME leaves the e-mail match out; the global `fields` apply to each object.
    let r = org.get("parameterizedSearch?q=acme&sobject=Contact&sobject=Account&fields=Id,Name&in=NAME");
    let recs = r.body["searchRecords"].as_array().unwrap();
    let names: Vec<&str> = recs.iter().map(|x| x["Name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Acme Rockets", "Acme Anvils"]);

    // Limits: per object (defaultLimit, <Object>.limit) and overall.
    let count = |path: &str| org.get(path).body["searchRecords"].as_array().unwrap().len();
    assert_eq!(count("parameterizedSearch?q=acme&sobject=Account&defaultLimit=1"), 1);
    assert_eq!(count("parameterizedSearch?q=acme&sobject=Account&sobject=Lead&defaultLimit=1&Account.limit=2"), 3);
    assert_eq!(count("parameterizedSearch?q=acme&sobject=Account&sobject=Lead&overallLimit=2"), 2);
    // Without sobject: every object, IDs only.
    let r = org.get("parameterizedSearch?q=acme");
    let recs = r.body["searchRecords"].as_array().unwrap();
    assert_eq!(recs.len(), 4, "{recs:?}");
    assert!(recs.iter().all(|x| x.as_object().unwrap().len() == 2 && x["Id"].is_string()), "{recs:?}");
}

#[test]
fn parameterized_search_post() {
    let org = Org::start();
    org.create("Account", json!({"Name": "Acme Rockets", "Industry": "Energy"}));
    org.create("Account", json!({"Name": "Acme Anvils", "Industry": "Banking"}));
    org.create("Lead", json!({"LastName": "Runner", "Company": "Acme Lead Co", "Email": "r@acme.example"}));
    let r = org.post(
        "parameterizedSearch/",
        json!({"q": "acme", "fields": ["Id", "Name"], "in": "ALL", "overallLimit": 10,
               "sobjects": [{"name": "Account", "where": "Industry = 'Banking'", "limit": 5},
                            {"name": "Lead", "fields": ["Company", "Email"]}]}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    let recs = r.body["searchRecords"].as_array().unwrap();
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(recs[0]["Name"], "Acme Anvils");
    assert_eq!((recs[1]["Company"].as_str(), recs[1]["Email"].as_str()), (Some("Acme Lead Co"), Some("r@acme.example")));

    // Errors: no search string; an unknown object; a field that does not exist.
    let r = org.post("parameterizedSearch/", json!({"sobjects": [{"name": "Account"}]}));
    assert_eq!((r.status, r.code()), (400, "INVALID_SEARCH"), "{:?}", r.body);
    let r = org.post("parameterizedSearch/", json!({"q": "acme", "sobjects": [{"name": "Nope__c"}]}));
    assert_eq!((r.status, r.code()), (400, "INVALID_TYPE"), "{:?}", r.body);
    let r = org.post("parameterizedSearch/", json!({"q": "acme", "sobjects": [{"name": "Account", "fields": ["Nope__c"]}]}));
    assert_eq!((r.status, r.code()), (400, "INVALID_FIELD"), "{:?}", r.body);
}
