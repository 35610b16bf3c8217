//! `composite/batch` over HTTP.
mod common;

use common::Org;
use serde_json::json;

#[test]
fn batch_runs_independent_subrequests_each_counted_as_a_call() {
    let org = Org::start();
    let id = org.create("Account", json!({"Name": "Before"}));
    let before = org.admin("GET", "counters", json!(null)).body["api_usage"].as_u64().unwrap();
    let r = org.post(
        "composite/batch",
        json!({"batchRequests": [
            {"method": "PATCH", "url": format!("v62.0/sobjects/Account/{id}"), "richInput": {"Name": "After"}},
            {"method": "GET", "url": format!("v62.0/sobjects/Account/{id}?fields=Name")},
            {"method": "GET", "url": "v62.0/sobjects/Account/001000000000000AAA"},
            {"method": "POST", "url": "/services/data/v62.0/sobjects/Contact", "richInput": {"LastName": "Batch"}},
            {"method": "GET", "url": "v62.0/query?q=SELECT+COUNT()+FROM+Contact"}
        ]}),
    );
    let after = org.admin("GET", "counters", json!(null)).body["api_usage"].as_u64().unwrap();
    // Salesforce: "Each subrequest counts against rate limits" (unlike composite).
    assert_eq!(after - before, 5, "each subrequest of a batch is an API call");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["hasErrors"], true);
    let res = r.body["results"].as_array().unwrap();
    assert_eq!(res.len(), 5);
    assert_eq!(res[0]["statusCode"], 204);
    assert_eq!(res[0]["result"], serde_json::Value::Null);
    assert_eq!(res[1]["statusCode"], 200);
    assert_eq!(res[1]["result"]["Name"], "After");
    assert_eq!(res[2]["statusCode"], 404);
    assert_eq!(res[2]["result"][0]["errorCode"], "NOT_FOUND");
    // No rollback and no halting: later subrequests still ran.
    assert_eq!(res[3]["statusCode"], 201);
    assert_eq!(res[4]["result"]["totalSize"], 1);
}

#[test]
fn halt_on_error_and_limits() {
    let org = Org::start();
    let r = org.post(
        "composite/batch",
        json!({"haltOnError": true, "batchRequests": [
            {"method": "POST", "url": "v62.0/sobjects/Contact", "richInput": {"FirstName": "NoLastName"}},
            {"method": "POST", "url": "v62.0/sobjects/Contact", "richInput": {"LastName": "Skipped"}}
        ]}),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["results"][0]["statusCode"], 400);
    assert_eq!(r.body["results"][0]["result"][0]["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(r.body["results"][1]["statusCode"], 412);
    assert_eq!(r.body["results"][1]["result"][0]["errorCode"], "BATCH_PROCESSING_HALTED");
    assert_eq!(org.query("SELECT Id FROM Contact").body["totalSize"], 0);

    let many: Vec<_> = (0..26).map(|_| json!({"method": "GET", "url": "v62.0/limits"})).collect();
    let r = org.post("composite/batch", json!({"batchRequests": many}));
    assert_eq!(r.status, 400);
    assert_eq!(r.body[0]["errorCode"], "LIMIT_EXCEEDED");
    let r = org.post("composite/batch", json!({"batchRequests": [{"method": "GET", "url": "http://elsewhere/x"}]}));
    assert_eq!(r.status, 400);
    assert_eq!(r.body[0]["errorCode"], "INVALID_BATCH_REQUEST");
}
