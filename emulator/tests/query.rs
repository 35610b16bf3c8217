mod common;
use common::Org;
use serde_json::json;

#[test]
fn select_where_order_limit() {
    let org = Org::start();
    let acme = org.create("Account", json!({"Name": "Acme", "Industry": "Banking", "NumberOfEmployees": 10}));
    org.create("Account", json!({"Name": "Bolt", "Industry": "Energy", "NumberOfEmployees": 20}));
    org.create("Account", json!({"Name": "crane", "NumberOfEmployees": 30}));
    org.create("Contact", json!({"LastName": "Smith", "FirstName": "Ann", "AccountId": acme}));
    org.create("Contact", json!({"LastName": "O'Brien"}));

    let q = org.query("select name, numberofemployees from account where NumberOfEmployees >= 20 order by Name desc");
    assert_eq!(q.status, 200);
    assert_eq!(q.body["totalSize"], 2);
    assert_eq!(q.body["done"], true);
    let r0 = &q.body["records"][0];
    assert_eq!(r0["Name"], "crane");
    assert!(r0["attributes"]["url"].as_str().unwrap().starts_with("/services/data/v62.0/sobjects/Account/001"));
    // Canonical field names from describe.
    assert!(r0.get("NumberOfEmployees").is_some());
    assert!(r0.get("Id").is_none());

    let q = org.query("SELECT Id FROM Account WHERE (Industry = 'banking' OR Industry = null) AND NOT Name LIKE 'c%'");
    assert_eq!(q.body["totalSize"], 1);
    let q = org.query("SELECT Id FROM Account WHERE Industry != 'Banking'");
    assert_eq!(q.body["totalSize"], 2, "!= matches nulls in SOQL");
    let q = org.query("SELECT Id FROM Account WHERE Name IN ('acme', 'Bolt') ORDER BY Name LIMIT 1 OFFSET 1");
    assert_eq!(q.body["totalSize"], 1);
    let q = org.query("SELECT Name FROM Account WHERE Name NOT IN ('Acme') ORDER BY Industry NULLS LAST");
    assert_eq!(q.body["records"][0]["Name"], "Bolt");
    let q = org.query("SELECT COUNT() FROM Account WHERE NumberOfEmployees < 25");
    assert_eq!(q.body, json!({"totalSize": 2, "done": true, "records": []}));

    let q = org.query("SELECT Name, Account.Name, Account.Industry FROM Contact ORDER BY LastName DESC");
    let smith = &q.body["records"][0];
    assert_eq!(smith["Name"], "Ann Smith");
    assert_eq!(smith["Account"]["Name"], "Acme");
    assert_eq!(smith["Account"]["Industry"], "Banking");
    assert_eq!(smith["Account"]["attributes"]["type"], "Account");
    assert_eq!(q.body["records"][1]["Account"], serde_json::Value::Null);
    let q = org.query(r"SELECT Id FROM Contact WHERE LastName = 'O\'Brien'");
    assert_eq!(q.body["totalSize"], 1);
    let q = org.query(&format!("SELECT Id FROM Contact WHERE AccountId = '{}'", &acme[..15]));
    assert_eq!(q.body["totalSize"], 1);
}

#[test]
fn query_errors() {
    let org = Org::start();
    let r = org.query("SELECT Id FORM Account");
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "MALFORMED_QUERY");
    assert!(r.body[0]["message"].as_str().unwrap().ends_with("unexpected token: 'FORM'"));
    let r = org.query("SELECT Foo FROM Account");
    assert_eq!(r.code(), "INVALID_FIELD");
    assert!(r.body[0]["message"].as_str().unwrap().contains("No such column 'Foo' on entity 'Account'"));
    let r = org.query("SELECT Id FROM Nope");
    assert_eq!(r.code(), "INVALID_TYPE");
    let r = org.query("SELECT Id FROM Account WHERE Name = 5");
    assert_eq!(r.code(), "INVALID_FIELD");
    let r = org.get("query/01gKg0000000000-2000");
    assert_eq!(r.code(), "INVALID_QUERY_LOCATOR");
    assert_eq!(org.get("query").code(), "MALFORMED_QUERY");
}

#[test]
fn paging_with_batch_size_and_query_all() {
    let org = Org::start();
    let seeded = org.admin("POST", "seed", json!({"object": "Account", "count": 450}));
    assert_eq!(seeded.body["count"], 450);
    let q = org.get_with(
        &format!("query?q={}", common::enc("SELECT Id, Name FROM Account ORDER BY Name")),
        &[("Authorization", &format!("Bearer {}", org.token)), ("Sforce-Query-Options", "batchSize=200")],
    );
    assert_eq!(q.body["totalSize"], 450);
    assert_eq!(q.body["done"], false);
    assert_eq!(q.body["records"].as_array().unwrap().len(), 200);
    let mut next = q.body["nextRecordsUrl"].as_str().unwrap().to_string();
    assert!(next.starts_with("/services/data/v62.0/query/01g") && next.ends_with("-200"), "{next}");
    let mut seen = 200;
    loop {
        let p = org.get(&next);
        assert_eq!(p.status, 200, "{:?}", p.body);
        seen += p.body["records"].as_array().unwrap().len();
        if p.body["done"] == true {
            assert!(p.body.get("nextRecordsUrl").is_none());
            break;
        }
        next = p.body["nextRecordsUrl"].as_str().unwrap().to_string();
    }
    assert_eq!(seen, 450);

    // Default batch 2000 returns everything at once.
    assert_eq!(org.query("SELECT Id FROM Account").body["done"], true);

    let id = org.query("SELECT Id FROM Account LIMIT 1").body["records"][0]["Id"].as_str().unwrap().to_string();
    org.delete(&format!("sobjects/Account/{id}"));
    assert_eq!(org.query("SELECT COUNT() FROM Account").body["totalSize"], 449);
    let all = org.get(&format!("queryAll?q={}", common::enc("SELECT Id, IsDeleted FROM Account WHERE IsDeleted = true")));
    assert_eq!(all.body["totalSize"], 1);
    assert_eq!(all.body["records"][0]["Id"], json!(id));
    assert_eq!(all.body["records"][0]["IsDeleted"], true);
}

#[test]
fn configured_batch_size() {
    let org = Org::with(sf_emulator::Config { batch_size: 3, ..Default::default() });
    org.admin("POST", "seed", json!({"object": "Lead", "count": 7}));
    let q = org.query("SELECT Id, Name, Company FROM Lead");
    assert_eq!(q.body["records"].as_array().unwrap().len(), 3);
    assert!(q.body["nextRecordsUrl"].as_str().unwrap().ends_with("-3"));
}
