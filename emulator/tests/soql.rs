//! SOQL beyond the basics: aggregates, INCLUDES/EXCLUDES, date literals, FIELDS(), locator
//! expiry, semi-joins and child relationship subqueries.
mod common;
use common::Org;
use serde_json::{json, Value};
use sf_emulator::clock::{format_date, parse_datetime, DAY_MS};

fn msg(r: &common::Resp) -> String {
    r.body[0]["message"].as_str().unwrap_or("").to_string()
}

fn ids(r: &common::Resp, field: &str) -> Vec<String> {
    let mut v: Vec<String> =
        r.body["records"].as_array().unwrap_or(&vec![]).iter().map(|x| x[field].as_str().unwrap_or("").to_string()).collect();
    v.sort();
    v
}

/// Sets the emulator clock to `iso` (approximately: real time moves on by milliseconds).
fn set_clock(org: &Org, iso: &str) {
    let target = parse_datetime(iso).unwrap();
    let now = org.admin("GET", "clock", Value::Null).body["now_ms"].as_i64().unwrap();
    let offset = org.admin("GET", "clock", Value::Null).body["offset_ms"].as_i64().unwrap();
    let r = org.admin("POST", "clock", json!({"offset_ms": offset + target - now}));
    assert_eq!(r.status, 200, "{:?}", r.body);
}

fn opps(org: &Org) -> (String, String) {
    let acme = org.create("Account", json!({"Name": "Acme", "Industry": "Banking"}));
    let bolt = org.create("Account", json!({"Name": "Bolt", "Industry": "Energy"}));
    for (name, stage, amount, close, acct) in [
        ("o1", "Prospecting", 100.0, "2024-01-10", &acme),
        ("o2", "Prospecting", 200.0, "2024-02-10", &acme),
        ("o3", "Closed Won", 300.5, "2024-03-10", &bolt),
    ] {
        org.create("Opportunity", json!({"Name": name, "StageName": stage, "Amount": amount, "CloseDate": close, "AccountId": acct}));
    }
    org.create("Opportunity", json!({"Name": "o4", "StageName": "Closed Won", "CloseDate": "2024-04-10"}));
    (acme, bolt)
}

#[test]
fn aggregate_functions_without_group_by() {
    let org = Org::start();
    opps(&org);
    let q = org.query("SELECT COUNT(Id), SUM(Amount) total, AVG(Amount), MIN(CloseDate), MAX(Name), COUNT(Amount), COUNT_DISTINCT(StageName) FROM Opportunity");
    assert_eq!(q.status, 200, "{:?}", q.body);
    assert_eq!(q.body["totalSize"], 1);
    assert_eq!(q.body["done"], true);
    let r = &q.body["records"][0];
    assert_eq!(r["attributes"], json!({"type": "AggregateResult"}));
    assert_eq!(r["expr0"], 4);
    assert_eq!(r["total"], 600.5);
    assert!((r["expr1"].as_f64().unwrap() - 200.1666).abs() < 0.001);
    assert_eq!(r["expr2"], "2024-01-10");
    assert_eq!(r["expr3"], "o4");
    assert_eq!(r["expr4"], 3, "COUNT(field) skips nulls");
    assert_eq!(r["expr5"], 2);
    let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 8);

    // No rows: still one result row; COUNT is 0, SUM is null.
    let q = org.query("SELECT COUNT(Id), SUM(Amount) FROM Opportunity WHERE Name = 'none'");
    assert_eq!(q.body["records"][0]["expr0"], 0);
    assert_eq!(q.body["records"][0]["expr1"], Value::Null);
    // COUNT() keeps its special shape.
    assert_eq!(org.query("SELECT COUNT() FROM Opportunity").body, json!({"totalSize": 4, "done": true, "records": []}));
    // Integer fields sum to integers.
    org.create("Account", json!({"Name": "Crane", "NumberOfEmployees": 7}));
    org.create("Account", json!({"Name": "Dune", "NumberOfEmployees": 5}));
    let q = org.query("SELECT SUM(NumberOfEmployees) n FROM Account");
    assert_eq!(q.body["records"][0]["n"], json!(12));
}

#[test]
fn group_by_having_order() {
    let org = Org::start();
    opps(&org);
    let q = org.query("SELECT StageName, COUNT(Id) cnt, SUM(Amount) FROM Opportunity GROUP BY StageName ORDER BY StageName");
    assert_eq!(q.status, 200, "{:?}", q.body);
    assert_eq!(q.body["totalSize"], 2);
    assert_eq!(
        q.body["records"],
        json!([
            {"attributes": {"type": "AggregateResult"}, "StageName": "Closed Won", "cnt": 2, "expr0": 300.5},
            {"attributes": {"type": "AggregateResult"}, "StageName": "Prospecting", "cnt": 2, "expr0": 300.0},
        ])
    );
    let q = org.query("SELECT StageName, SUM(Amount) s FROM Opportunity GROUP BY StageName HAVING SUM(Amount) > 300.25");
    assert_eq!(ids(&q, "StageName"), vec!["Closed Won"]);
    let q = org.query("SELECT StageName FROM Opportunity GROUP BY StageName HAVING COUNT(Id) >= 2 AND StageName LIKE 'Pro%'");
    assert_eq!(ids(&q, "StageName"), vec!["Prospecting"]);

    // Parent paths group under the leaf name; nulls form their own group; ORDER BY an aggregate.
    let q = org.query("SELECT Account.Name, Account.Industry ind, COUNT(Id) FROM Opportunity GROUP BY Account.Name, Account.Industry ORDER BY COUNT(Id) DESC, Account.Name NULLS LAST");
    assert_eq!(q.status, 200, "{:?}", q.body);
    let recs = q.body["records"].as_array().unwrap();
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0], json!({"attributes": {"type": "AggregateResult"}, "Name": "Acme", "ind": "Banking", "expr0": 2}));
    assert_eq!(recs[1]["Name"], "Bolt");
    assert_eq!(recs[2]["Name"], Value::Null);
    let q = org.query("SELECT StageName, COUNT(Id) FROM Opportunity GROUP BY StageName ORDER BY COUNT(Id) LIMIT 1 OFFSET 1");
    assert_eq!(q.body["totalSize"], 1);
}

#[test]
fn aggregate_errors() {
    let org = Org::start();
    let r = org.query("SELECT Name, COUNT(Id) FROM Opportunity");
    assert_eq!((r.status, r.code()), (400, "MALFORMED_QUERY"));
    assert!(msg(&r).ends_with("Field must be grouped or aggregated: Name"), "{}", msg(&r));
    let r = org.query("SELECT Name, StageName, COUNT(Id) FROM Opportunity GROUP BY StageName");
    assert!(msg(&r).ends_with("Field must be grouped or aggregated: Name"), "{}", msg(&r));
    let r = org.query("SELECT SUM(Name) FROM Opportunity");
    assert_eq!(r.code(), "MALFORMED_QUERY");
    assert!(msg(&r).ends_with("field Name does not support aggregate operator SUM"), "{}", msg(&r));
    assert!(msg(&r).contains("ERROR at Row:1:Column:12"), "{}", msg(&r));
    let r = org.query("SELECT AVG(CloseDate) FROM Opportunity");
    assert!(msg(&r).ends_with("field CloseDate does not support aggregate operator AVG"), "{}", msg(&r));
    let r = org.query("SELECT MAX(IsDeleted) FROM Opportunity");
    assert!(msg(&r).ends_with("field IsDeleted does not support aggregate operator MAX"), "{}", msg(&r));
    let r = org.query("SELECT Amount, COUNT(Id) FROM Opportunity GROUP BY Amount");
    assert_eq!(r.code(), "INVALID_FIELD");
    let r = org.query("SELECT COUNT(Nope) FROM Opportunity");
    assert_eq!(r.code(), "INVALID_FIELD");
    let r = org.query("SELECT StageName, COUNT(Id) FROM Opportunity GROUP BY StageName ORDER BY Name");
    assert!(msg(&r).ends_with("Ordered field must be grouped or aggregated: Name"), "{}", msg(&r));
    let r = org.query("SELECT Name n FROM Opportunity");
    assert_eq!(r.code(), "MALFORMED_QUERY");
}

fn schema_org() -> Org {
    let path = common::schema_file(
        r#"{"fields": {"Account": [
            {"name": "Interests__c", "type": "multipicklist", "picklistValues": ["a", "b", "c", "d"]},
            {"name": "Score__c", "type": "double"}
        ]}}"#,
    );
    Org::with(sf_emulator::Config { schema_file: Some(path), ..Default::default() })
}

#[test]
fn includes_excludes() {
    let org = schema_org();
    for (name, v) in [("ab", json!("a;b")), ("bc", json!("c;b")), ("d", json!("d")), ("none", Value::Null)] {
        org.create("Account", json!({"Name": name, "Interests__c": v}));
    }
    let q = |w: &str| ids(&org.query(&format!("SELECT Name FROM Account WHERE {w}")), "Name");
    assert_eq!(q("Interests__c INCLUDES ('b')"), vec!["ab", "bc"]);
    assert_eq!(q("Interests__c INCLUDES ('a;b')"), vec!["ab"], "';' means AND");
    assert_eq!(q("Interests__c INCLUDES ('b;a', 'd')"), vec!["ab", "d"], "',' means OR");
    assert_eq!(q("Interests__c includes ('C')"), vec!["bc"], "case-insensitive");
    assert_eq!(q("Interests__c EXCLUDES ('b')"), vec!["d", "none"]);
    assert_eq!(q("Interests__c EXCLUDES ('a;b', 'd')"), vec!["bc", "none"]);
    assert_eq!(q("Interests__c = 'b;a'"), vec!["ab"], "= compares the set");
    assert_eq!(q("Interests__c INCLUDES ('b') AND NOT Name = 'ab'"), vec!["bc"]);
    let r = org.query("SELECT Id FROM Account WHERE Name INCLUDES ('a')");
    assert_eq!((r.status, r.code()), (400, "INVALID_QUERY_FILTER_OPERATOR"));
    assert!(msg(&r).ends_with("includes or excludes operator only valid on multipicklist field"), "{}", msg(&r));
    let r = org.query("SELECT Id FROM Account WHERE Interests__c INCLUDES (1)");
    assert_eq!(r.code(), "MALFORMED_QUERY");
    // Multipicklists can't be aggregated or grouped.
    assert_eq!(org.query("SELECT MAX(Interests__c) FROM Account").code(), "MALFORMED_QUERY");
    assert_eq!(org.query("SELECT Interests__c FROM Account GROUP BY Interests__c").code(), "INVALID_FIELD");
}

#[test]
fn date_literals_on_the_emulator_clock() {
    // Sessions that outlive the clock jumps below.
    let org = Org::with(sf_emulator::Config { token_ttl_secs: 30 * 365 * 86_400, ..Default::default() });
    // Wednesday 2030-05-15, noon UTC (forward: write stamps never go back in time).
    set_clock(&org, "2030-05-15T12:00:00Z");
    for d in ["2030-05-14", "2030-05-15", "2030-05-16", "2030-05-12", "2030-05-11", "2030-04-30", "2030-07-01", "2029-12-31"] {
        org.create("Opportunity", json!({"Name": d, "StageName": "Prospecting", "CloseDate": d}));
    }
    let q = |w: &str| {
        let r = org.query(&format!("SELECT Name FROM Opportunity WHERE {w}"));
        assert_eq!(r.status, 200, "{w}: {:?}", r.body);
        ids(&r, "Name")
    };
    assert_eq!(q("CloseDate = YESTERDAY"), vec!["2030-05-14"]);
    assert_eq!(q("CloseDate = TODAY"), vec!["2030-05-15"]);
    assert_eq!(q("CloseDate = TOMORROW"), vec!["2030-05-16"]);
    assert_eq!(q("CloseDate = THIS_WEEK"), vec!["2030-05-12", "2030-05-14", "2030-05-15", "2030-05-16"]);
    assert_eq!(q("CloseDate = LAST_WEEK"), vec!["2030-05-11"]);
    assert_eq!(q("CloseDate = LAST_MONTH"), vec!["2030-04-30"]);
    assert_eq!(q("CloseDate = NEXT_QUARTER"), vec!["2030-07-01"]);
    assert_eq!(q("CloseDate = LAST_YEAR"), vec!["2029-12-31"]);
    assert_eq!(q("CloseDate < THIS_YEAR"), vec!["2029-12-31"]);
    assert_eq!(q("CloseDate > TODAY"), vec!["2030-05-16", "2030-07-01"]);
    assert_eq!(q("CloseDate >= TODAY"), vec!["2030-05-15", "2030-05-16", "2030-07-01"]);
    assert_eq!(q("CloseDate <= YESTERDAY").len(), 5);
    assert_eq!(q("CloseDate = LAST_N_DAYS:3"), vec!["2030-05-12", "2030-05-14", "2030-05-15"]);
    assert_eq!(q("CloseDate = NEXT_N_DAYS:1"), vec!["2030-05-16"]);
    assert_eq!(q("CloseDate = LAST_N_MONTHS:1"), vec!["2030-04-30"]);
    assert_eq!(q("CloseDate = THIS_QUARTER").len(), 6);
    assert_eq!(q("CloseDate != THIS_MONTH"), vec!["2029-12-31", "2030-04-30", "2030-07-01"]);
    assert_eq!(q("CloseDate IN (YESTERDAY, TOMORROW)"), vec!["2030-05-14", "2030-05-16"]);
    // Datetime fields: the same day ranges in UTC.
    assert_eq!(q("CreatedDate = TODAY").len(), 8);
    assert_eq!(q("CreatedDate = YESTERDAY").len(), 0);

    // Move the clock: what was "today" becomes "last 7 days" but not "today".
    let r = org.admin("POST", "clock", json!({"advance_ms": 3 * DAY_MS}));
    assert_eq!(r.status, 200);
    assert_eq!(q("CreatedDate = TODAY").len(), 0);
    assert_eq!(q("CreatedDate = LAST_N_DAYS:3").len(), 8);
    assert_eq!(q("CreatedDate = LAST_N_DAYS:2").len(), 0);
    assert_eq!(q("CreatedDate < LAST_N_DAYS:2").len(), 8);
    assert_eq!(q("CloseDate = TODAY"), Vec::<String>::new());
    let today = org.admin("GET", "clock", Value::Null).body["now_ms"].as_i64().unwrap().div_euclid(DAY_MS);
    assert_eq!(format_date(today as i32), "2030-05-18");
    assert_eq!(q("CloseDate = THIS_WEEK"), vec!["2030-05-12", "2030-05-14", "2030-05-15", "2030-05-16"]);
    assert_eq!(q("CloseDate = LAST_N_WEEKS:1"), vec!["2030-05-11"]);

    // Wrong field types.
    let r = org.query("SELECT Id FROM Opportunity WHERE Name = TODAY");
    assert_eq!(r.code(), "INVALID_FIELD");
    let r = org.query("SELECT Id FROM Opportunity WHERE Amount > LAST_N_DAYS:2");
    assert_eq!(r.code(), "INVALID_FIELD");
    let r = org.query("SELECT Id FROM Opportunity WHERE CloseDate = LAST_N_DAYS");
    assert_eq!(r.code(), "MALFORMED_QUERY");
}

#[test]
fn fields_function() {
    let org = Org::start();
    org.create("Account", json!({"Name": "Acme", "Postgres_Id__c": "pg-1", "BillingCity": "Paris"}));
    for q in
        ["SELECT FIELDS(ALL) FROM Account", "SELECT FIELDS(CUSTOM) FROM Account LIMIT 201", "SELECT Id, FIELDS(ALL) FROM Account LIMIT 500"]
    {
        let r = org.query(q);
        assert_eq!((r.status, r.code()), (400, "MALFORMED_QUERY"), "{q}");
        assert!(msg(&r).ends_with("The SOQL FIELDS function must have a LIMIT of at most 200"), "{}", msg(&r));
    }
    let r = org.query("SELECT FIELDS(ALL) FROM Account LIMIT 200");
    assert_eq!(r.status, 200, "{:?}", r.body);
    let rec = &r.body["records"][0];
    assert_eq!(rec["Name"], "Acme");
    assert_eq!(rec["Postgres_Id__c"], "pg-1");
    assert_eq!(rec["BillingAddress"]["city"], "Paris");
    assert!(rec.get("SystemModstamp").is_some() && rec.get("Id").is_some());
    let r = org.query("SELECT FIELDS(STANDARD) FROM Account");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.body["records"][0].get("Postgres_Id__c").is_none());
    assert_eq!(r.body["records"][0]["Name"], "Acme");
    let r = org.query("SELECT FIELDS(CUSTOM), Name FROM Account LIMIT 10");
    let mut keys: Vec<&String> = r.body["records"][0].as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, vec!["Name", "Postgres_Id__c", "attributes"]);
    let r = org.query("SELECT FIELDS(ALL), COUNT(Id) FROM Account LIMIT 10");
    assert_eq!(r.code(), "MALFORMED_QUERY");
}

fn first_page(org: &Org) -> String {
    let q = org.get_with(
        &format!("query?q={}", common::enc("SELECT Id FROM Account")),
        &[("Authorization", &format!("Bearer {}", org.token)), ("Sforce-Query-Options", "batchSize=200")],
    );
    assert_eq!(q.body["done"], false);
    q.body["nextRecordsUrl"].as_str().unwrap().to_string()
}

#[test]
fn query_locators_expire() {
    let org = Org::start();
    org.admin("POST", "seed", json!({"object": "Account", "count": 450}));

    // Idle for 14 minutes: still fine; the idle timer restarts on use.
    let next = first_page(&org);
    org.admin("POST", "clock", json!({"advance_ms": 14 * 60_000}));
    let p2 = org.get(&next);
    assert_eq!(p2.status, 200, "{:?}", p2.body);
    let p3_url = p2.body["nextRecordsUrl"].as_str().unwrap().to_string();
    org.admin("POST", "clock", json!({"advance_ms": 14 * 60_000}));
    // A page may be fetched again while the cursor lives (retries).
    assert_eq!(org.get(&next).status, 200);
    let p3 = org.get(&p3_url);
    assert_eq!(p3.body["done"], true);
    assert_eq!(p3.body["records"].as_array().unwrap().len(), 50);
    // After the last page the locator is closed.
    for url in [&p3_url, &next] {
        let r = org.get(url);
        assert_eq!((r.status, r.code()), (400, "INVALID_QUERY_LOCATOR"));
        assert_eq!(msg(&r), "invalid query locator");
    }

    // Idle for more than 15 minutes: expired.
    let next = first_page(&org);
    org.admin("POST", "clock", json!({"advance_ms": 15 * 60_000 + 1000}));
    let r = org.get(&next);
    assert_eq!((r.status, r.code()), (400, "INVALID_QUERY_LOCATOR"));
    // queryAll locators too.
    let q = org.get_with(
        &format!("queryAll?q={}", common::enc("SELECT Id FROM Account")),
        &[("Authorization", &format!("Bearer {}", org.token)), ("Sforce-Query-Options", "batchSize=200")],
    );
    let next = q.body["nextRecordsUrl"].as_str().unwrap().to_string();
    org.admin("POST", "clock", json!({"advance_ms": 16 * 60_000}));
    assert_eq!(org.get(&next).code(), "INVALID_QUERY_LOCATOR");
}

#[test]
fn open_cursors_are_capped() {
    let org = Org::with(sf_emulator::Config { batch_size: 1, ..Default::default() });
    org.admin("POST", "seed", json!({"object": "Lead", "count": 2}));
    let first = org.query("SELECT Id FROM Lead").body["nextRecordsUrl"].as_str().unwrap().to_string();
    for _ in 0..sf_emulator::state::MAX_CURSORS {
        assert_eq!(org.query("SELECT Id FROM Lead").body["done"], false);
    }
    assert_eq!(org.get(&first).code(), "INVALID_QUERY_LOCATOR", "the oldest cursor was dropped");
}

#[test]
fn semi_and_anti_joins() {
    let org = Org::start();
    let acme = org.create("Account", json!({"Name": "Acme"}));
    let bolt = org.create("Account", json!({"Name": "Bolt"}));
    org.create("Account", json!({"Name": "Crane"}));
    org.create("Contact", json!({"LastName": "Smith", "AccountId": acme}));
    org.create("Contact", json!({"LastName": "Jones", "AccountId": bolt}));
    org.create("Contact", json!({"LastName": "Loner"}));
    let q = |s: &str| {
        let r = org.query(s);
        assert_eq!(r.status, 200, "{s}: {:?}", r.body);
        ids(&r, "Name")
    };
    assert_eq!(q("SELECT Name FROM Account WHERE Id IN (SELECT AccountId FROM Contact)"), vec!["Acme", "Bolt"]);
    assert_eq!(q("SELECT Name FROM Account WHERE Id IN (SELECT AccountId FROM Contact WHERE LastName = 'smith')"), vec!["Acme"]);
    assert_eq!(q("SELECT Name FROM Account WHERE Id NOT IN (SELECT AccountId FROM Contact)"), vec!["Crane"]);
    assert_eq!(
        q("SELECT Name FROM Account WHERE Name != 'Crane' AND Id NOT IN (SELECT AccountId FROM Contact WHERE LastName LIKE 'J%')"),
        vec!["Acme"]
    );
    let r = org.query("SELECT LastName FROM Contact WHERE AccountId IN (SELECT Id FROM Account WHERE Name = 'Bolt')");
    assert_eq!(ids(&r, "LastName"), vec!["Jones"]);
    let r = org.query("SELECT Id FROM Account WHERE Name IN (SELECT AccountId FROM Contact)");
    assert_eq!(r.code(), "INVALID_FIELD");
    let r = org.query("SELECT Id FROM Account WHERE Id IN (SELECT LastName FROM Contact)");
    assert_eq!(r.code(), "INVALID_FIELD");
    let r = org.query("SELECT Id FROM Account WHERE Id IN (SELECT Id, AccountId FROM Contact)");
    assert_eq!(r.code(), "MALFORMED_QUERY");
}

#[test]
fn child_relationship_subqueries() {
    let org = Org::start();
    let acme = org.create("Account", json!({"Name": "Acme"}));
    org.create("Account", json!({"Name": "Bolt"}));
    org.create("Contact", json!({"LastName": "Smith", "AccountId": acme}));
    org.create("Contact", json!({"LastName": "Adams", "AccountId": acme}));
    org.create("Opportunity", json!({"Name": "Deal", "StageName": "Prospecting", "CloseDate": "2024-01-01", "AccountId": acme}));
    let r = org.query("SELECT Name, (SELECT LastName FROM Contacts ORDER BY LastName), (SELECT Name FROM opportunities WHERE Name = 'x') FROM Account ORDER BY Name");
    assert_eq!(r.status, 200, "{:?}", r.body);
    let acme_rec = &r.body["records"][0];
    assert_eq!(acme_rec["Contacts"]["totalSize"], 2);
    assert_eq!(acme_rec["Contacts"]["done"], true);
    assert_eq!(acme_rec["Contacts"]["records"][0]["LastName"], "Adams");
    assert_eq!(acme_rec["Contacts"]["records"][0]["attributes"]["type"], "Contact");
    assert_eq!(acme_rec["Opportunities"], Value::Null, "empty → null");
    assert_eq!(r.body["records"][1]["Contacts"], Value::Null);
    let r = org.query("SELECT Name, (SELECT Id FROM Nope) FROM Account");
    assert_eq!(r.code(), "INVALID_TYPE");
}
