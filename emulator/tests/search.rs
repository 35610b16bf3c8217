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
