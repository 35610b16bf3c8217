//! Bulk API 2.0 over HTTP: ingest and query jobs, CSV formats, state rules.
mod common;
use common::{Org, Resp};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

/// Raw request with a text body; returns status, headers and body text.
fn raw(org: &Org, method: &str, path: &str, ctype: &str, body: &str) -> (u16, Vec<(String, String)>, String) {
    let url = org.url(path);
    let auth = format!("Bearer {}", org.token);
    let a = agent();
    let r = match method {
        "PUT" => a.put(url).header("Authorization", auth).header("Content-Type", ctype).send(body),
        "GET" => a.get(url).header("Authorization", auth).call(),
        _ => panic!("method"),
    };
    let mut r = r.expect("http");
    let headers = r.headers().iter().map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string())).collect();
    (r.status().as_u16(), headers, r.body_mut().read_to_string().unwrap_or_default())
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn wait(org: &Org, kind: &str, id: &str) -> Value {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let r = org.get(&format!("jobs/{kind}/{id}"));
        assert_eq!(r.status, 200, "{:?}", r.body);
        if matches!(r.body["state"].as_str(), Some("JobComplete" | "Failed" | "Aborted")) {
            return r.body;
        }
        assert!(Instant::now() < until, "job {id} stuck in {}", r.body["state"]);
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn ingest(org: &Org, spec: Value, csv: &str) -> (String, Value) {
    let r = org.post("jobs/ingest", spec);
    assert_eq!(r.status, 200, "{:?}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let (status, _, _) = raw(org, "PUT", &format!("jobs/ingest/{id}/batches"), "text/csv", csv);
    assert_eq!(status, 201);
    let r = org.patch(&format!("jobs/ingest/{id}"), json!({"state": "UploadComplete"}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "UploadComplete");
    let info = wait(org, "ingest", &id);
    (id, info)
}

fn text(org: &Org, path: &str) -> String {
    let (status, h, body) = raw(org, "GET", path, "", "");
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&h, "content-type"), Some("text/csv"));
    body
}

fn query_job(org: &Org, op: &str, soql: &str) -> String {
    let r = org.post("jobs/query", json!({"operation": op, "query": soql}));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "UploadComplete");
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(wait(org, "query", &id)["state"], "JobComplete");
    id
}

#[test]
fn ingest_job_info_results_and_failed_rows() {
    let org = Org::start();
    let r = org.post("jobs/ingest/", json!({"object": "contact", "operation": "insert", "contentType": "CSV"}));
    assert_eq!(r.status, 200);
    let b = &r.body;
    assert!(b["id"].as_str().unwrap().starts_with("750"));
    assert_eq!(b["id"].as_str().unwrap().len(), 18);
    assert_eq!(b["object"], "Contact");
    assert_eq!(b["operation"], "insert");
    assert_eq!(b["state"], "Open");
    assert_eq!(b["concurrencyMode"], "Parallel");
    assert_eq!(b["contentType"], "CSV");
    assert_eq!(b["apiVersion"], json!(62.0));
    assert_eq!(b["lineEnding"], "LF");
    assert_eq!(b["columnDelimiter"], "COMMA");
    assert!(b["createdById"].as_str().unwrap().starts_with("005"));
    assert!(b["createdDate"].as_str().unwrap().ends_with("+0000"));
    let id = b["id"].as_str().unwrap();
    assert_eq!(b["contentUrl"], format!("services/data/v62.0/jobs/ingest/{id}/batches"));

    let csv = "FirstName,LastName,Email\nAnn,Smith,a@x.com\n\"Bob, \"\"B\"\"\",,b@x.com\nCy,Jones,bad\n";
    let (status, _, _) = raw(&org, "PUT", &format!("jobs/ingest/{id}/batches/"), "text/csv", csv);
    assert_eq!(status, 201);
    org.patch(&format!("jobs/ingest/{id}/"), json!({"state": "UploadComplete"}));
    let info = wait(&org, "ingest", id);
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(info["jobType"], "V2Ingest");
    assert_eq!(info["numberRecordsProcessed"], 3);
    assert_eq!(info["numberRecordsFailed"], 2);
    for k in ["retries", "totalProcessingTime", "apiActiveProcessingTime", "apexProcessingTime"] {
        assert!(info[k].is_u64(), "{k}");
    }

    let ok = text(&org, &format!("jobs/ingest/{id}/successfulResults/"));
    let lines: Vec<&str> = ok.lines().collect();
    assert_eq!(lines[0], "\"sf__Id\",\"sf__Created\",FirstName,LastName,Email");
    assert!(lines[1].starts_with("\"003") && lines[1].ends_with("\",\"true\",\"Ann\",\"Smith\",\"a@x.com\""), "{}", lines[1]);
    assert!(!ok.contains('\r'));
    let failed = text(&org, &format!("jobs/ingest/{id}/failedResults/"));
    assert_eq!(
        failed,
        "\"sf__Id\",\"sf__Error\",FirstName,LastName,Email\n\
         \"\",\"REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --\",\"Bob, \"\"B\"\"\",\"\",\"b@x.com\"\n\
         \"\",\"INVALID_EMAIL_ADDRESS:Email: invalid email address: bad:Email --\",\"Cy\",\"Jones\",\"bad\"\n"
    );
    assert_eq!(text(&org, &format!("jobs/ingest/{id}/unprocessedrecords/")), "FirstName,LastName,Email\n");
    // The saved record went through the normal save path (audit fields, derived Name).
    let q = org.query("SELECT Name, CreatedById FROM Contact");
    assert_eq!(q.body["totalSize"], 1);
    assert_eq!(q.body["records"][0]["Name"], "Ann Smith");

    let list = org.get("jobs/ingest");
    assert_eq!(list.body["done"], true);
    assert_eq!(list.body["records"][0]["id"], id);
    assert_eq!(list.body["records"][0]["jobType"], "V2Ingest");
    assert!(list.body["nextRecordsUrl"].is_null());

    let counters = org.admin("GET", "counters", Value::Null);
    assert_eq!(counters.body["by_endpoint"]["PUT /jobs/ingest/{id}/batches"], 1);
    assert_eq!(counters.body["by_endpoint"]["GET /jobs/ingest/{id}/successfulResults"], 1);

    assert_eq!(org.delete(&format!("jobs/ingest/{id}")).status, 204);
    assert_eq!(org.get(&format!("jobs/ingest/{id}")).status, 404);
}

#[test]
fn delimiters_line_endings_nulls_and_relationships() {
    let org = Org::start();
    let acct = org.create("Account", json!({"Name": "Parent", "Postgres_Id__c": "P-1"}));
    for (name, d) in [("COMMA", ","), ("TAB", "\t"), ("PIPE", "|"), ("SEMICOLON", ";"), ("CARET", "^"), ("BACKQUOTE", "`")] {
        for le in ["LF", "CRLF"] {
            let eol = if le == "LF" { "\n" } else { "\r\n" };
            let key = format!("{name}-{le}");
            let csv = format!(
                "LastName{d}Postgres_Id__c{d}Account.Postgres_Id__c{d}Description{eol}Doe{d}{key}{d}P-1{d}\"has {d} and \"\"q\"\"\"{eol}"
            );
            let spec = json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "Postgres_Id__c",
                              "columnDelimiter": name, "lineEnding": le});
            let (id, info) = ingest(&org, spec, &csv);
            assert_eq!(info["state"], "JobComplete", "{key}: {info}");
            assert_eq!(info["columnDelimiter"], name);
            assert_eq!(info["lineEnding"], le);
            assert_eq!(info["externalIdFieldName"], "Postgres_Id__c");
            assert_eq!(info["numberRecordsFailed"], 0, "{key}: {}", text(&org, &format!("jobs/ingest/{id}/failedResults")));
            let ok = text(&org, &format!("jobs/ingest/{id}/successfulResults"));
            assert!(ok.starts_with(&format!("\"sf__Id\"{d}\"sf__Created\"{d}LastName{d}")), "{key}: {ok}");
            let q = org.query(&format!("SELECT AccountId, Description FROM Contact WHERE Postgres_Id__c = '{key}'"));
            assert_eq!(q.body["records"][0]["AccountId"], acct.as_str(), "{key}");
            assert_eq!(q.body["records"][0]["Description"], format!("has {d} and \"q\""), "{key}");
        }
    }
    // #N/A clears a field; an empty value leaves it alone.
    let (_, info) = ingest(
        &org,
        json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "Postgres_Id__c"}),
        "Postgres_Id__c,Description,AccountId\nCOMMA-LF,#N/A,\n",
    );
    assert_eq!(info["numberRecordsFailed"], 0);
    let q = org.query("SELECT AccountId, Description FROM Contact WHERE Postgres_Id__c = 'COMMA-LF'");
    assert!(q.body["records"][0]["Description"].is_null());
    assert_eq!(q.body["records"][0]["AccountId"], acct.as_str());

    // Wrong line ending, unknown column, unknown parent: job-level and row-level failures.
    let (_, info) = ingest(&org, json!({"object": "Contact", "operation": "insert", "lineEnding": "LF"}), "LastName\r\nX\r\n");
    assert_eq!(info["state"], "Failed");
    assert_eq!(info["errorMessage"], "ClientInputError : LineEnding is invalid on user data. Current LineEnding setting is LF");
    let (_, info) = ingest(&org, json!({"object": "Contact", "operation": "insert"}), "LastName,Bogus__c\nX,1\n");
    assert_eq!(info["state"], "Failed");
    assert_eq!(info["errorMessage"], "InvalidBatch : Field name not found : Bogus__c");
    let (id, _) = ingest(&org, json!({"object": "Contact", "operation": "insert"}), "LastName,Account.Postgres_Id__c\nX,nope\n");
    let failed = text(&org, &format!("jobs/ingest/{id}/failedResults"));
    assert!(
        failed.contains("\"INVALID_FIELD:Foreign key external ID: nope not found for field Postgres_Id__c in entity Account:--\""),
        "{failed}"
    );
}

#[test]
fn upsert_created_flags_update_and_delete() {
    let org = Org::start();
    let spec = json!({"object": "Account", "operation": "upsert", "externalIdFieldName": "postgres_id__c"});
    let (id, info) = ingest(&org, spec.clone(), "Name,Postgres_Id__c\nA,k1\nB,k2\n");
    assert_eq!(info["externalIdFieldName"], "Postgres_Id__c");
    assert_eq!(text(&org, &format!("jobs/ingest/{id}/successfulResults")).matches("\"true\"").count(), 2);
    let (id, _) = ingest(&org, spec, "Name,Postgres_Id__c\nA2,k1\nC,k3\n");
    let ok = text(&org, &format!("jobs/ingest/{id}/successfulResults"));
    assert!(ok.contains("\"false\",\"A2\",\"k1\"") && ok.contains("\"true\",\"C\",\"k3\""), "{ok}");
    let acct_id = ok.lines().find(|l| l.contains("A2")).unwrap()[1..19].to_string();

    let (id, info) = ingest(
        &org,
        json!({"object": "Account", "operation": "update"}),
        &format!("Id,Industry\n{acct_id},Energy\n001000000000000AAA,Energy\n"),
    );
    assert_eq!(info["numberRecordsFailed"], 1);
    assert!(text(&org, &format!("jobs/ingest/{id}/failedResults"))
        .contains("\"001000000000000AAA\",\"INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--\""));
    let (_, info) = ingest(&org, json!({"object": "Account", "operation": "delete"}), &format!("Id\n{acct_id}\n"));
    assert_eq!(info["numberRecordsFailed"], 0);
    assert_eq!(org.query("SELECT Id FROM Account").body["totalSize"], 2);
    let all = org.get(&format!("queryAll?q={}", common::enc("SELECT Id FROM Account")));
    assert_eq!(all.body["totalSize"], 3);
    let (_, info) = ingest(&org, json!({"object": "Account", "operation": "hardDelete"}), &format!("Id\n{acct_id}\n"));
    assert_eq!(info["numberRecordsFailed"], 1, "already deleted");

    // Validation rules apply to Bulk rows exactly like REST.
    org.admin(
        "POST",
        "validation_rules",
        json!({"object": "Account", "name": "NoTest", "field": "Name", "op": "matches",
        "value": "test%", "message": "No test accounts", "error_field": "Name"}),
    );
    let (id, _) = ingest(&org, json!({"object": "Account", "operation": "insert"}), "Name\ntest one\nfine\n");
    let failed = text(&org, &format!("jobs/ingest/{id}/failedResults"));
    assert!(failed.contains("\"FIELD_CUSTOM_VALIDATION_EXCEPTION:No test accounts:Name --\",\"test one\""), "{failed}");
}

#[test]
fn one_upload_per_job_and_state_rules() {
    let org = Org::start();
    let bad = org.post("jobs/ingest", json!({"object": "Foo", "operation": "insert"}));
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body, json!([{"message": "InvalidJob : Unable to find object: Foo", "errorCode": "INVALIDJOB"}]));
    let bad = org.post("jobs/ingest", json!({"object": "Account", "operation": "upsert"}));
    assert_eq!(bad.code(), "INVALIDJOB");
    let bad = org.post("jobs/ingest", json!({"object": "Account", "operation": "insert", "columnDelimiter": "STAR"}));
    assert_eq!(bad.code(), "INVALIDJOB");
    assert_eq!(org.get("jobs/ingest/750000000000000AAA").status, 404);

    let id = org.post("jobs/ingest", json!({"object": "Account", "operation": "insert"})).body["id"].as_str().unwrap().to_string();
    assert_eq!(org.delete(&format!("jobs/ingest/{id}")).status, 409, "Open jobs can't be deleted");
    for _ in 0..2 {
        assert_eq!(raw(&org, "PUT", &format!("jobs/ingest/{id}/batches"), "text/csv", "Name\nA\n").0, 201);
    }
    let r = org.patch(&format!("jobs/ingest/{id}"), json!({"state": "UploadComplete"}));
    assert_eq!(r.status, 400);
    assert_eq!(r.code(), "INVALIDJOB");
    let msg = r.body[0]["message"].as_str().unwrap();
    assert!(msg.starts_with("InvalidJob : Found multipe contents for job: <750") && msg.contains("only do 'PUT' once"), "{msg}");
    let r = org.patch(&format!("jobs/ingest/{id}"), json!({"state": "Aborted"}));
    assert_eq!(r.body["state"], "Aborted");
    assert_eq!(org.patch(&format!("jobs/ingest/{id}"), json!({"state": "UploadComplete"})).status, 409);
    assert_eq!(org.patch(&format!("jobs/ingest/{id}"), json!({"state": "Bogus"})).code(), "INVALIDJOBSTATE");
    assert_eq!(text(&org, &format!("jobs/ingest/{id}/unprocessedrecords")), "Name\nA\n");
    assert_eq!(org.delete(&format!("jobs/ingest/{id}")).status, 204);

    let (id, _) = ingest(&org, json!({"object": "Account", "operation": "insert"}), "Name\nA\n");
    let (status, _, body) = raw(&org, "PUT", &format!("jobs/ingest/{id}/batches"), "text/csv", "Name\nB\n");
    assert_eq!(status, 409, "{body}");
    assert_eq!(org.patch(&format!("jobs/ingest/{id}"), json!({"state": "Aborted"})).status, 409);
}

fn page(org: &Org, id: &str, params: &str) -> (Vec<(String, String)>, String) {
    let (status, h, body) = raw(org, "GET", &format!("jobs/query/{id}/results{params}"), "", "");
    assert_eq!(status, 200, "{body}");
    (h, body)
}

#[test]
fn query_jobs_page_by_locator() {
    let org = Org::start();
    org.admin("POST", "seed", json!({"object": "Account", "count": 7, "fields": {"Industry": "Banking"}}));
    org.create("Account", json!({"Name": "Quote \"me\", please", "NumberOfEmployees": 5, "AnnualRevenue": 1.5}));
    let id = query_job(&org, "query", "SELECT Id, Name, Industry, IsDeleted, NumberOfEmployees, CreatedDate, Owner.Name FROM Account");
    let info = org.get(&format!("jobs/query/{id}")).body;
    assert_eq!(info["operation"], "query");
    assert_eq!(info["object"], "Account");
    assert_eq!(info["jobType"], "V2Query");
    assert_eq!(info["numberRecordsProcessed"], 8);

    let (h, body) = page(&org, &id, "?maxRecords=3");
    assert_eq!(header(&h, "sforce-numberofrecords"), Some("3"));
    let mut loc = header(&h, "sforce-locator").unwrap().to_string();
    assert_ne!(loc, "null");
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], "\"Id\",\"Name\",\"Industry\",\"IsDeleted\",\"NumberOfEmployees\",\"CreatedDate\",\"Owner.Name\"");
    assert_eq!(lines.len(), 4);
    let first = lines[1].split("\",\"").collect::<Vec<_>>();
    assert_eq!(first[2], "Banking");
    assert_eq!(first[3], "false");
    assert!(first[5].len() == 24 && first[5].ends_with(".000Z") || first[5].ends_with('Z'), "{}", first[5]);
    assert_eq!(first[6], "Integration User\"");
    // The locator is stable: fetching it twice gives the same page.
    let again = page(&org, &id, &format!("?maxRecords=3&locator={loc}")).1;
    assert_eq!(again, page(&org, &id, &format!("?locator={loc}&maxRecords=3")).1);
    let mut rows = 3;
    let mut pages = 1;
    loop {
        let (h, body) = page(&org, &id, &format!("?maxRecords=3&locator={loc}"));
        rows += body.lines().count() - 1;
        pages += 1;
        let next = header(&h, "sforce-locator").unwrap().to_string();
        if next == "null" {
            assert!(body.contains("\"Quote \"\"me\"\", please\",\"\",\"false\",\"5\""), "{body}");
            break;
        }
        loc = next;
    }
    assert_eq!((rows, pages), (8, 3));
    // Without maxRecords everything fits one page.
    let (h, body) = page(&org, &id, "");
    assert_eq!(header(&h, "sforce-locator"), Some("null"));
    assert_eq!(header(&h, "sforce-numberofrecords"), Some("8"));
    assert_eq!(body.lines().count(), 9);
    assert_eq!(raw(&org, "GET", &format!("jobs/query/{id}/results?locator=bogus"), "", "").0, 400);

    let list = org.get("jobs/query/");
    assert_eq!(list.body["records"][0]["jobType"], "V2Query");
    assert_eq!(org.patch(&format!("jobs/query/{id}"), json!({"state": "Aborted"})).status, 409);
    assert_eq!(org.delete(&format!("jobs/query/{id}")).status, 204);
    assert_eq!(org.get(&format!("jobs/query/{id}")).status, 404);
}

#[test]
fn query_all_delimiters_and_unsupported_queries() {
    let org = Org::start();
    let a = org.create("Account", json!({"Name": "Gone"}));
    org.create("Account", json!({"Name": "Here"}));
    assert_eq!(org.delete(&format!("sobjects/Account/{a}")).status, 204);
    let id = query_job(&org, "query", "SELECT Name FROM Account ORDER BY Name");
    assert_eq!(page(&org, &id, "").1, "\"Name\"\n\"Here\"\n");
    let id = query_job(&org, "queryAll", "SELECT Name, IsDeleted FROM Account ORDER BY Name");
    assert_eq!(page(&org, &id, "").1, "\"Name\",\"IsDeleted\"\n\"Gone\",\"true\"\n\"Here\",\"false\"\n");

    let r = org.post(
        "jobs/query",
        json!({"operation": "query", "query": "SELECT Name, Id FROM Account WHERE Name = 'Here'",
        "columnDelimiter": "PIPE", "lineEnding": "CRLF"}),
    );
    let id = r.body["id"].as_str().unwrap().to_string();
    wait(&org, "query", &id);
    let body = page(&org, &id, "").1;
    assert!(body.starts_with("\"Name\"|\"Id\"\r\n\"Here\"|\"001"), "{body:?}");

    let r = org.post("jobs/query", json!({"operation": "query", "query": "SELECT COUNT() FROM Account"}));
    assert_eq!((r.status, r.code()), (400, "API_ERROR"));
    let r = org.post("jobs/query", json!({"operation": "query", "query": "SELECT Id FROM Account LIMIT 1 OFFSET 1"}));
    assert_eq!(r.code(), "API_ERROR");
    let r = org.post("jobs/query", json!({"operation": "query", "query": "SELECT BillingAddress FROM Account"}));
    assert_eq!(r.code(), "API_ERROR");
    let r: Resp = org.post("jobs/query", json!({"operation": "query", "query": "SELECT Id FORM Account"}));
    assert_eq!(r.code(), "MALFORMED_QUERY");
    let r = org.post("jobs/query", json!({"operation": "query", "query": "SELECT Nope FROM Account"}));
    assert_eq!(r.code(), "INVALID_FIELD");
    let r = org.post("jobs/query", json!({"operation": "insert", "query": "SELECT Id FROM Account"}));
    assert_eq!(r.code(), "INVALIDJOB");
}

#[test]
fn ingest_naming_a_removed_field_fails_the_job() {
    let org = Org::start();
    let r = org.admin("POST", "fields/Contact", json!({"name": "Gone__c", "type": "string"}));
    assert_eq!(r.status, 201, "{:?}", r.body);
    let (_, info) = ingest(&org, json!({"object": "Contact", "operation": "insert"}), "LastName,Gone__c\nX,1\n");
    assert_eq!(info["state"], "JobComplete");
    assert_eq!(org.admin("DELETE", "fields/Contact/Gone__c", json!(null)).status, 200);
    let (_, info) = ingest(&org, json!({"object": "Contact", "operation": "insert"}), "LastName,Gone__c\nY,1\n");
    assert_eq!(info["state"], "Failed");
    assert_eq!(info["errorMessage"], "InvalidBatch : Field name not found : Gone__c");
    assert_eq!(org.query("SELECT COUNT() FROM Contact").body["totalSize"], 1);
}

#[test]
fn held_ingest_jobs_wait_uploaded_until_released_and_can_be_aborted() {
    let org = Org::start();
    assert_eq!(org.admin("POST", "bulk/hold", json!({"held": true})).body["held"], true);
    let start = |csv: &str| {
        let r = org.post("jobs/ingest", json!({"object": "Account", "operation": "insert"}));
        let id = r.body["id"].as_str().unwrap().to_string();
        assert_eq!(raw(&org, "PUT", &format!("jobs/ingest/{id}/batches"), "text/csv", csv).0, 201);
        assert_eq!(org.patch(&format!("jobs/ingest/{id}"), json!({"state": "UploadComplete"})).status, 200);
        id
    };
    let (kept, aborted) = (start("Name\nA\nB\n"), start("Name\nC\n"));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(org.get(&format!("jobs/ingest/{kept}")).body["state"], "UploadComplete", "held, not processed");
    assert_eq!(org.query("SELECT Id FROM Account").body["totalSize"], 0);
    assert_eq!(org.patch(&format!("jobs/ingest/{aborted}"), json!({"state": "Aborted"})).status, 200);

    org.admin("POST", "bulk/hold", json!({"held": false}));
    assert_eq!(wait(&org, "ingest", &kept)["numberRecordsProcessed"], 2);
    assert_eq!(wait(&org, "ingest", &aborted)["state"], "Aborted");
    assert_eq!(org.query("SELECT Name FROM Account").body["totalSize"], 2, "only the released job's rows");
    assert_eq!(org.admin("POST", "bulk/hold", json!({"nope": 1})).status, 400);
}

/// An unfiltered `COUNT()` is answered from the table's own count: it must agree with a scan
/// (a filter every record passes) through deletes to the recycle bin, hard deletes and
/// queryAll, with OFFSET and LIMIT.
#[test]
fn count_without_a_filter_agrees_with_a_scan() {
    let org = Org::start();
    org.admin("POST", "seed", json!({"object": "Account", "count": 30}));
    let counts = |all: bool| {
        let get = |soql: &str| {
            let path = format!("{}?q={}", if all { "queryAll" } else { "query" }, common::enc(soql));
            org.get(&path).body["totalSize"].as_u64().unwrap()
        };
        (get("SELECT COUNT() FROM Account"), get("SELECT COUNT() FROM Account WHERE Name != null"))
    };
    assert_eq!(counts(false), (30, 30));
    let ids: Vec<String> = org.query("SELECT Id FROM Account ORDER BY Id LIMIT 3").body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids[..2] {
        assert_eq!(org.delete(&format!("sobjects/Account/{id}")).status, 204);
    }
    assert_eq!(counts(false), (28, 28), "deleted records are in the recycle bin, not counted");
    assert_eq!(counts(true), (30, 30), "queryAll counts the recycle bin");
    // A hard delete: the live record goes for good; the one in the recycle bin is refused
    // (already deleted) and stays there.
    let csv = format!("Id\n{}\n{}\n", ids[1], ids[2]);
    ingest(&org, json!({"object": "Account", "operation": "hardDelete"}), &csv);
    assert_eq!(counts(false), (27, 27));
    assert_eq!(counts(true), (29, 29));
    assert_eq!(org.query("SELECT COUNT() FROM Account LIMIT 5").body["totalSize"], 5);
    assert_eq!(org.query("SELECT COUNT() FROM Account LIMIT 5 OFFSET 25").body["totalSize"], 2);
}
