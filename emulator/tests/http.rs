//! HTTP as Salesforce speaks it: the public versions resource, lenient paths, and header names
//! in canonical case on HTTP/1.1 (read from the raw response bytes).
mod common;

use common::Org;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;

/// Sends one request with `Connection: close` and returns the raw response head.
fn raw_head(org: &Org, method: &str, path: &str, token: Option<&str>) -> String {
    let mut s = TcpStream::connect(org.server.addr).expect("connect");
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n", org.server.addr);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    text.split("\r\n\r\n").next().unwrap_or("").to_string()
}

fn names(head: &str) -> Vec<String> {
    head.lines().skip(1).filter_map(|l| l.split_once(':')).map(|(k, _)| k.to_string()).collect()
}

#[test]
fn versions_resource_needs_no_session() {
    let org = Org::start();
    for path in ["/services/data", "/services/data/"] {
        let r = org.get_with(path, &[]);
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        assert!(r.body.as_array().unwrap().iter().any(|v| v["version"] == "62.0"));
    }
    // Everything else under /services/data still needs one.
    assert_eq!(org.get_with("/services/data/v62.0/limits", &[]).status, 401);
}

#[test]
fn repeated_slashes_are_served() {
    let org = Org::start();
    let r = org.get("//services/data/v62.0/limits");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body["DailyApiRequests"].is_object());
    let r = org.get("/services//data/v62.0//query?q=SELECT+Id+FROM+Account");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["done"], true);
}

#[test]
fn http1_header_names_in_canonical_case() {
    let org = Org::start();
    let head = raw_head(&org, "GET", "/services/data/v62.0/limits", Some(&org.token));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let n = names(&head);
    for want in ["Content-Type", "Sforce-Limit-Info", "Content-Length", "Date"] {
        assert!(n.iter().any(|h| h == want), "{want} missing in {n:?}");
    }
    assert!(!n.iter().any(|h| h == "content-type"), "{n:?}");

    let r = org.post("sobjects/Account", json!({"Name": "Case"}));
    assert_eq!(r.status, 201);
    let r = org.post("jobs/query", json!({"operation": "query", "query": "SELECT Id FROM Account"}));
    let id = r.body["id"].as_str().unwrap().to_string();
    while org.get(&format!("jobs/query/{id}")).body["state"] != "JobComplete" {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let head = raw_head(&org, "GET", &format!("/services/data/v62.0/jobs/query/{id}/results"), Some(&org.token));
    let n = names(&head);
    for want in ["Sforce-Locator", "Sforce-NumberOfRecords", "Content-Type"] {
        assert!(n.iter().any(|h| h == want), "{want} missing in {n:?}");
    }
    let head = raw_head(&org, "POST", "/services/data/v62.0/sobjects/Account", Some(&org.token));
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
}
