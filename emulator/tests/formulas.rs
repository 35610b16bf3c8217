//! Formula and roll-up summary fields from a schema file: described as calculated, read-only,
//! current on every read path, and changing without SystemModstamp moving.
mod common;
use common::{enc, Org};
use serde_json::json;
use sf_emulator::Config;

fn org() -> Org {
    let path = common::schema_file(
        r#"{"fields": {"Account": [
            {"name": "Revenue_K__c", "type": "currency", "scale": 2, "formula": "AnnualRevenue / 1000"},
            {"name": "Pipeline__c", "type": "currency", "rollup": {"function": "SUM", "object": "Opportunity", "field": "Amount", "via": "AccountId"}},
            {"name": "Biggest__c", "type": "currency", "rollup": {"function": "MAX", "object": "Opportunity", "field": "Amount", "via": "AccountId"}},
            {"name": "Deals__c", "type": "double", "scale": 0, "rollup": {"function": "COUNT", "object": "Opportunity", "via": "AccountId"}}],
          "Opportunity": [
            {"name": "Account_Revenue__c", "type": "currency", "formula": "Account.AnnualRevenue * 2"}]}}"#,
    );
    Org::with(Config { schema_file: Some(path), ..Config::default() })
}

fn account(org: &Org, id: &str) -> serde_json::Value {
    let soql = format!("SELECT Revenue_K__c, Pipeline__c, Biggest__c, Deals__c, SystemModstamp FROM Account WHERE Id = '{id}'");
    org.get(&format!("query?q={}", enc(&soql))).body["records"][0].clone()
}

#[test]
fn describe_marks_them_calculated_and_read_only() {
    let org = org();
    let d = org.get("sobjects/Account/describe").body;
    let f = |n: &str| d["fields"].as_array().unwrap().iter().find(|f| f["name"] == n).unwrap().clone();
    let rev = f("Revenue_K__c");
    assert_eq!(rev["calculated"], json!(true));
    assert_eq!(rev["calculatedFormula"], json!("AnnualRevenue / 1000"));
    assert_eq!(rev["type"], json!("currency"));
    assert_eq!((rev["createable"].clone(), rev["updateable"].clone()), (json!(false), json!(false)));
    assert_eq!(f("Deals__c")["calculated"], json!(true));
    assert_eq!(f("Name")["calculated"], json!(false));
    let id = org.create("Account", json!({"Name": "A"}));
    let r = org.patch(&format!("sobjects/Account/{id}"), json!({"Revenue_K__c": 1}));
    assert_eq!(r.status, 400, "{:?}", r.body);
}

#[test]
fn values_follow_their_inputs_without_moving_system_modstamp() {
    let org = org();
    let acme = org.create("Account", json!({"Name": "Acme", "AnnualRevenue": 5000}));
    let a = account(&org, &acme);
    assert_eq!((a["Revenue_K__c"].as_f64(), a["Pipeline__c"].as_f64(), a["Deals__c"].as_f64()), (Some(5.0), Some(0.0), Some(0.0)));
    assert!(a["Biggest__c"].is_null(), "MAX of nothing is blank");
    let stamp = a["SystemModstamp"].clone();
    let opp =
        |amount: i64| json!({"Name": "D", "StageName": "Prospecting", "CloseDate": "2030-01-01", "Amount": amount, "AccountId": acme});
    let o1 = org.create("Opportunity", opp(300));
    org.create("Opportunity", opp(200));
    let a = account(&org, &acme);
    assert_eq!((a["Pipeline__c"].as_f64(), a["Biggest__c"].as_f64(), a["Deals__c"].as_f64()), (Some(500.0), Some(300.0), Some(2.0)));
    assert_eq!(a["SystemModstamp"], stamp, "a roll-up change does not stamp the parent");
    assert_eq!(org.delete(&format!("sobjects/Opportunity/{o1}")).status, 204);
    let a = account(&org, &acme);
    assert_eq!((a["Pipeline__c"].as_f64(), a["Deals__c"].as_f64()), (Some(200.0), Some(1.0)), "deleted children no longer count");
    // A parent-path formula on the child follows the parent, also without stamping the child.
    let opps = org.get(&format!("query?q={}", enc("SELECT Id, Account_Revenue__c, SystemModstamp FROM Opportunity"))).body;
    let before = opps["records"][0].clone();
    assert_eq!(before["Account_Revenue__c"].as_f64(), Some(10000.0));
    assert_eq!(org.patch(&format!("sobjects/Account/{acme}"), json!({"AnnualRevenue": 8000})).status, 204);
    let id = before["Id"].as_str().unwrap();
    let got = org.get(&format!("sobjects/Opportunity/{id}")).body;
    assert_eq!(got["Account_Revenue__c"].as_f64(), Some(16000.0), "REST retrieve");
    assert_eq!(got["SystemModstamp"], before["SystemModstamp"]);
    assert_eq!(account(&org, &acme)["Revenue_K__c"].as_f64(), Some(8.0));
}

#[test]
fn bad_formulas_are_refused_at_load() {
    let mut s = sf_emulator::schema::standard::default_schema();
    let bad = [
        r#"{"fields": {"Account": [{"name": "X__c", "type": "double", "formula": "Name * 2"}]}}"#,
        r#"{"fields": {"Account": [{"name": "X__c", "type": "double", "formula": "AnnualRevenue +"}]}}"#,
        r#"{"fields": {"Account": [{"name": "X__c", "type": "string", "formula": "AnnualRevenue"}]}}"#,
        r#"{"fields": {"Account": [{"name": "X__c", "type": "double", "rollup": {"function": "SUM", "object": "Contact", "via": "AccountId"}}]}}"#,
        r#"{"fields": {"Account": [{"name": "X__c", "type": "double", "rollup": {"function": "AVG", "object": "Opportunity", "field": "Amount", "via": "AccountId"}}]}}"#,
    ];
    for text in bad {
        assert!(sf_emulator::schema::file::apply(&mut s, text).is_err(), "{text}");
    }
}
