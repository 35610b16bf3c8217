//! The Avro decoder against a CDC schema shaped as Salesforce publishes it.

use apache_avro::types::Value as Avro;
use apache_avro::writer::datum::GenericDatumWriter;
use apache_avro::Schema;
use serde_json::json;

use super::*;
use crate::cdc::ChangeType;

const SCHEMA: &str = r#"{
  "type": "record", "name": "AccountChangeEvent", "namespace": "com.sforce.eventbus",
  "fields": [
    {"name": "ChangeEventHeader", "type": {"type": "record", "name": "ChangeEventHeader", "fields": [
      {"name": "entityName", "type": "string"},
      {"name": "recordIds", "type": {"type": "array", "items": "string"}},
      {"name": "changeType", "type": {"type": "enum", "name": "ChangeType", "symbols": ["CREATE", "UPDATE", "DELETE", "UNDELETE", "GAP_CREATE", "GAP_UPDATE", "GAP_DELETE", "GAP_UNDELETE", "GAP_OVERFLOW"]}},
      {"name": "changeOrigin", "type": "string"},
      {"name": "transactionKey", "type": "string"},
      {"name": "sequenceNumber", "type": "int"},
      {"name": "commitTimestamp", "type": "long"},
      {"name": "commitNumber", "type": "long"},
      {"name": "commitUser", "type": "string"},
      {"name": "nulledFields", "type": {"type": "array", "items": "string"}},
      {"name": "diffFields", "type": {"type": "array", "items": "string"}},
      {"name": "changedFields", "type": {"type": "array", "items": "string"}}
    ]}},
    {"name": "Name", "type": ["null", "string"], "doc": "Data:Text", "default": null},
    {"name": "BillingAddress", "type": ["null", {"type": "record", "name": "Address", "fields": [
      {"name": "Street", "type": ["null", "string"], "default": null},
      {"name": "City", "type": ["null", "string"], "default": null},
      {"name": "PostalCode", "type": ["null", "string"], "default": null}
    ]}], "default": null},
    {"name": "ShippingAddress", "type": ["null", "Address"], "default": null},
    {"name": "Phone", "type": ["null", "string"], "default": null},
    {"name": "AnnualRevenue", "type": ["null", "double"], "default": null},
    {"name": "LastModifiedDate", "type": ["null", "long"], "doc": "Audit:DateTime", "default": null},
    {"name": "SLAExpirationDate__c", "type": ["null", "int"], "doc": "Data:Date", "default": null},
    {"name": "NumberOfEmployees", "type": ["null", "int"], "default": null}
  ]
}"#;

fn s(v: &str) -> Avro {
    Avro::Union(1, Box::new(Avro::String(v.into())))
}
fn null() -> Avro {
    Avro::Union(0, Box::new(Avro::Null))
}
fn strs(v: &[&str]) -> Avro {
    Avro::Array(v.iter().map(|x| Avro::String(x.to_string())).collect())
}

fn header(kind: (u32, &str), changed: &[&str], nulled: &[&str]) -> Avro {
    Avro::Record(vec![
        ("entityName".into(), Avro::String("Account".into())),
        ("recordIds".into(), strs(&["001000000000001AAA"])),
        ("changeType".into(), Avro::Enum(kind.0, kind.1.into())),
        ("changeOrigin".into(), Avro::String("com/salesforce/api/rest/62.0;client=x".into())),
        ("transactionKey".into(), Avro::String("tk".into())),
        ("sequenceNumber".into(), Avro::Int(1)),
        ("commitTimestamp".into(), Avro::Long(1_716_238_172_000)),
        ("commitNumber".into(), Avro::Long(7)),
        ("commitUser".into(), Avro::String("005000000000001AAA".into())),
        ("nulledFields".into(), strs(nulled)),
        ("diffFields".into(), strs(&[])),
        ("changedFields".into(), strs(changed)),
    ])
}

fn encode(header: Avro, rest: Vec<(&str, Avro)>) -> Vec<u8> {
    let schema = Schema::parse_str(SCHEMA).unwrap();
    let mut fields = vec![("ChangeEventHeader".to_string(), header)];
    fields.extend(rest.into_iter().map(|(k, v)| (k.to_string(), v)));
    GenericDatumWriter::builder(&schema).build().unwrap().write_value_to_vec(Avro::Record(fields)).unwrap()
}

fn address(street: Avro, city: Avro) -> Avro {
    Avro::Union(1, Box::new(Avro::Record(vec![("Street".into(), street), ("City".into(), city), ("PostalCode".into(), null())])))
}

#[test]
fn bitmaps_name_bits_from_the_lowest() {
    assert_eq!(bits_set("0x1"), Some(vec![0]));
    assert_eq!(bits_set("0x104"), Some(vec![2, 8]));
    assert_eq!(bits_set("0x"), Some(vec![]));
    assert_eq!(bits_set("0xg"), None);
    assert_eq!(bits_set("12"), None);
}

#[test]
fn an_update_carries_its_changed_fields_by_name_with_compound_parts() {
    let schema = EventSchema::parse("sch1", SCHEMA).unwrap();
    // Fields: 0 header, 1 Name, 2 BillingAddress, 3 ShippingAddress, 4 Phone, 5 AnnualRevenue,
    // 6 LastModifiedDate. Changed: BillingAddress (its City), Phone (nulled), LastModifiedDate.
    let payload = encode(
        header((1, "UPDATE"), &["0x54", "2-0x2"], &["0x10"]),
        vec![
            ("Name", null()),
            ("BillingAddress", address(null(), s("Paris"))),
            ("ShippingAddress", null()),
            ("Phone", null()),
            ("AnnualRevenue", null()),
            ("LastModifiedDate", Avro::Union(1, Box::new(Avro::Long(1_716_238_172_000)))),
            ("SLAExpirationDate__c", null()),
            ("NumberOfEmployees", null()),
        ],
    );
    let e = schema.decode("/data/AccountChangeEvent", 42, &payload).unwrap();
    assert_eq!(e.header.change_type, ChangeType::Update);
    assert_eq!(e.header.record_ids, vec!["001000000000001AAA"]);
    assert_eq!(e.header.changed_fields, vec!["BillingAddress.City", "Phone", "LastModifiedDate"], "in field order, as CometD lists them");
    assert_eq!(e.header.nulled_fields, vec!["Phone"]);
    assert_eq!(e.header.commit_number, 7);
    assert_eq!(e.replay_id, 42);
    assert_eq!(e.schema, "sch1");
    assert_eq!(
        serde_json::Value::Object(e.fields),
        json!({"BillingAddress": {"City": "Paris"}, "Phone": null, "LastModifiedDate": "2024-05-20T20:49:32.000Z"}),
        "only the changed fields, the compound's changed part nested, datetimes as CometD sends them"
    );
}

#[test]
fn a_create_carries_its_non_null_fields() {
    let schema = EventSchema::parse("sch1", SCHEMA).unwrap();
    let payload = encode(
        header((0, "CREATE"), &[], &[]),
        vec![
            ("Name", s("Acme")),
            ("BillingAddress", null()),
            ("ShippingAddress", address(s("1 Main St"), null())),
            ("Phone", null()),
            ("AnnualRevenue", Avro::Union(1, Box::new(Avro::Double(1.5)))),
            ("LastModifiedDate", null()),
            ("SLAExpirationDate__c", Avro::Union(1, Box::new(Avro::Int(19_863)))),
            ("NumberOfEmployees", Avro::Union(1, Box::new(Avro::Int(12)))),
        ],
    );
    let e = schema.decode("/data/AccountChangeEvent", 1, &payload).unwrap();
    assert_eq!(e.header.change_type, ChangeType::Create);
    assert_eq!(
        serde_json::Value::Object(e.fields),
        json!({"Name": "Acme", "ShippingAddress": {"Street": "1 Main St"}, "AnnualRevenue": 1.5,
               "SLAExpirationDate__c": "2024-05-20", "NumberOfEmployees": 12}),
        "a referenced record type decodes like the first; dates as CometD sends them"
    );
}

#[test]
fn bitmaps_beyond_the_schema_are_errors_not_guesses() {
    let schema = EventSchema::parse("sch1", SCHEMA).unwrap();
    let payload = encode(
        header((1, "UPDATE"), &["0x10000"], &[]),
        [
            "Name",
            "BillingAddress",
            "ShippingAddress",
            "Phone",
            "AnnualRevenue",
            "LastModifiedDate",
            "SLAExpirationDate__c",
            "NumberOfEmployees",
        ]
        .into_iter()
        .map(|f| (f, null()))
        .collect(),
    );
    let err = schema.decode("/data/AccountChangeEvent", 1, &payload).unwrap_err();
    assert!(err.contains("beyond the schema"), "{err}");
    assert!(schema.decode("/data/AccountChangeEvent", 1, &[0xff, 0xff]).is_err(), "a truncated payload");
}

#[test]
fn replay_ids_round_trip_through_i64() {
    assert_eq!(replay_to_i64(&replay_bytes(123_456)), Some(123_456));
    assert_eq!(replay_to_i64(&[1, 0]), Some(256));
    assert_eq!(replay_to_i64(&[0; 9]), None);
}
