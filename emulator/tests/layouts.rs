//! `describe/layouts`: one layout per object, built from its describe, on the Master record type.
mod common;

use common::Org;
use serde_json::Value;
use std::collections::BTreeSet;

/// Every field a layout shows: each item's component and a compound field's parts.
fn layout_fields(layout: &Value) -> Vec<(String, Value)> {
    let mut out = vec![];
    for section in layout["detailLayoutSections"].as_array().unwrap() {
        for row in section["layoutRows"].as_array().unwrap() {
            for item in row["layoutItems"].as_array().unwrap() {
                for c in item["layoutComponents"].as_array().unwrap() {
                    out.push((c["value"].as_str().unwrap().to_string(), c["details"].clone()));
                    for part in c["components"].as_array().into_iter().flatten() {
                        out.push((part["value"].as_str().unwrap().to_string(), part["details"].clone()));
                    }
                }
            }
        }
    }
    out
}

fn item<'a>(layout: &'a Value, field: &str) -> &'a Value {
    layout["detailLayoutSections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["layoutRows"].as_array().unwrap())
        .flat_map(|r| r["layoutItems"].as_array().unwrap())
        .find(|i| i["layoutComponents"][0]["value"] == field)
        .unwrap_or_else(|| panic!("no layout item for {field}"))
}

#[test]
fn layouts_show_the_objects_fields() {
    let org = Org::start();
    let describe = org.get("sobjects/Contact/describe").body;
    let r = org.get("sobjects/Contact/describe/layouts/");
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["recordTypeSelectorRequired"], serde_json::json!([false]));
    let layouts = r.body["layouts"].as_array().unwrap();
    assert_eq!(layouts.len(), 1);
    let layout = &layouts[0];
    assert!(layout["id"].as_str().unwrap().starts_with("00h"), "{}", layout["id"]);

    // Every field but the hidden system ones, each with its own describe as `details`.
    let shown = layout_fields(layout);
    let by_name: std::collections::HashMap<&str, &Value> =
        describe["fields"].as_array().unwrap().iter().map(|f| (f["name"].as_str().unwrap(), f)).collect();
    for (name, details) in &shown {
        assert_eq!(&details, by_name.get(name.as_str()).unwrap(), "{name}");
    }
    let shown: BTreeSet<&str> = shown.iter().map(|(n, _)| n.as_str()).collect();
    let expected: BTreeSet<&str> =
        by_name.keys().copied().filter(|n| !["Id", "IsDeleted", "SystemModstamp", "CreatedDate", "LastModifiedDate"].contains(n)).collect();
    assert_eq!(shown, expected);

    // The compound Name holds its parts and is required (LastName is); the sections are 2 columns.
    let name = item(layout, "Name");
    let parts: Vec<&str> =
        name["layoutComponents"][0]["components"].as_array().unwrap().iter().map(|c| c["value"].as_str().unwrap()).collect();
    assert!(parts.contains(&"LastName") && parts.contains(&"FirstName"), "{parts:?}");
    assert_eq!((name["required"].as_bool(), name["editableForNew"].as_bool()), (Some(true), Some(true)));
    let email = item(layout, "Email");
    assert_eq!((email["required"].as_bool(), email["editableForUpdate"].as_bool()), (Some(false), Some(true)));
    let sections = layout["detailLayoutSections"].as_array().unwrap();
    assert_eq!(sections[0]["heading"], "Contact Information");
    assert!(sections
        .iter()
        .all(|s| s["columns"] == 2 && s["layoutRows"].as_array().unwrap().iter().all(|r| r["numItems"].as_u64() <= Some(2))));
    assert_eq!(sections[1]["heading"], "System Information");
    let created_by = item(layout, "CreatedById");
    assert_eq!(created_by["editableForUpdate"], false);
}

#[test]
fn record_type_mapping_and_related_lists() {
    let org = Org::start();
    let r = org.get("sobjects/Account/describe/layouts");
    assert_eq!(r.status, 200, "{:?}", r.body);
    let layout = &r.body["layouts"][0];
    let mapping = &r.body["recordTypeMappings"][0];
    assert_eq!(r.body["recordTypeMappings"].as_array().unwrap().len(), 1);
    assert_eq!((mapping["recordTypeId"].as_str(), mapping["master"].as_bool()), (Some("012000000000000AAA"), Some(true)));
    assert_eq!(mapping["layoutId"], layout["id"]);
    let industry = mapping["picklistsForRecordType"].as_array().unwrap().iter().find(|p| p["picklistName"] == "Industry").unwrap();
    assert!(industry["picklistValues"].as_array().unwrap().iter().any(|v| v["value"] == "Energy"));

    let contacts = layout["relatedLists"].as_array().unwrap().iter().find(|l| l["name"] == "Contacts").expect("Contacts related list");
    assert_eq!((contacts["sobject"].as_str(), contacts["field"].as_str()), (Some("Contact"), Some("AccountId")));

    // The record type's own layout URL (18- or 15-char ID) gives the same layout.
    let url = mapping["urls"]["layout"].as_str().unwrap();
    let one = org.get(url.split_once("/v62.0/").unwrap().1);
    assert_eq!(one.status, 200, "{url}: {:?}", one.body);
    assert_eq!(one.body, *layout);
    assert_eq!(org.get("sobjects/Account/describe/layouts/012000000000000").body["id"], layout["id"]);
    assert_eq!(org.get("sobjects/Account/describe/layouts/012Kg0000000001AAA").status, 404);
    assert_eq!(org.get("sobjects/Nope__c/describe/layouts/").code(), "NOT_FOUND");
}
