//! Describe JSON, shaped like the real `describeGlobal` / `describeSObject` REST responses.

use super::{FieldDef, FieldType, ObjectDef, Schema};
use serde_json::{json, Map, Value};

fn urls(o: &ObjectDef, v: &str) -> Value {
    let base = format!("/services/data/v{v}/sobjects/{}", o.name);
    json!({
        "compactLayouts": format!("{base}/describe/compactLayouts"),
        "rowTemplate": format!("{base}/{{ID}}"),
        "approvalLayouts": format!("{base}/describe/approvalLayouts"),
        "defaultValues": format!("{base}/defaultValues?recordTypeId&fields"),
        "listviews": format!("{base}/listviews"),
        "describe": format!("{base}/describe"),
        "quickActions": format!("{base}/quickActions"),
        "layouts": format!("{base}/describe/layouts"),
        "sobject": base,
    })
}

/// The summary every describeGlobal entry (and `objectDescribe`) carries.
pub fn object_summary(o: &ObjectDef, version: &str) -> Value {
    json!({
        "activateable": false,
        "associateEntityType": null,
        "associateParentEntity": null,
        "createable": o.createable,
        "custom": o.custom,
        "customSetting": false,
        "deepCloneable": false,
        "deletable": o.deletable,
        "deprecatedAndHidden": false,
        "feedEnabled": !o.custom,
        "hasSubtypes": false,
        "isInterface": false,
        "isSubtype": false,
        "keyPrefix": o.key_prefix,
        "label": o.label,
        "labelPlural": o.label_plural,
        "layoutable": true,
        "mergeable": matches!(o.name.as_str(), "Account" | "Contact" | "Lead"),
        "mruEnabled": true,
        "name": o.name,
        "queryable": o.queryable,
        "replicateable": true,
        "retrieveable": true,
        "searchable": true,
        "triggerable": true,
        "undeletable": true,
        "updateable": o.updateable,
        "urls": urls(o, version),
    })
}

pub fn global(schema: &Schema, version: &str) -> Value {
    json!({
        "encoding": "UTF-8",
        "maxBatchSize": 200,
        "sobjects": schema.objects.iter().map(|o| object_summary(o, version)).collect::<Vec<_>>(),
    })
}

fn field(fd: &FieldDef) -> Value {
    let t = fd.ftype;
    let text = t.is_text() || t == FieldType::Id || t == FieldType::Reference;
    let picklist: Vec<Value> = fd
        .picklist
        .iter()
        .map(|v| {
            json!({"active": true, "defaultValue": fd.default_picklist.as_deref() == Some(v.as_str()),
                   "label": v, "validFor": null, "value": v})
        })
        .collect();
    let default_value = match (t, &fd.default_picklist) {
        (FieldType::Boolean, _) => json!(false),
        (_, Some(v)) => json!(v),
        _ => Value::Null,
    };
    json!({
        "aggregatable": fd.filterable() && t != FieldType::Boolean,
        "aiPredictionField": false,
        "autoNumber": false,
        "byteLength": if text { fd.length * 3 } else { 0 },
        "calculated": fd.calculated,
        "calculatedFormula": match &fd.derived {
            super::Derived::Formula(src, _) => json!(src),
            _ => Value::Null,
        },
        "cascadeDelete": false,
        "caseSensitive": false,
        "compoundFieldName": fd.compound_field,
        "controllerName": null,
        "createable": fd.createable,
        "custom": fd.custom,
        "defaultValue": default_value,
        "defaultValueFormula": null,
        "defaultedOnCreate": fd.defaulted_on_create,
        "dependentPicklist": false,
        "deprecatedAndHidden": false,
        "digits": fd.digits,
        "displayLocationInDecimal": false,
        "encrypted": false,
        "externalId": fd.external_id,
        "extraTypeInfo": match t {
            FieldType::TextArea if fd.length > 255 => json!("plaintextarea"),
            _ => Value::Null,
        },
        "filterable": fd.filterable(),
        "filteredLookupInfo": null,
        "formulaTreatNullNumberAsZero": false,
        "groupable": fd.filterable() && !matches!(t, FieldType::Double | FieldType::Currency | FieldType::Percent | FieldType::DateTime),
        "highScaleNumber": false,
        "htmlFormatted": false,
        "idLookup": fd.id_lookup,
        "inlineHelpText": null,
        "label": fd.label,
        "length": fd.length,
        "mask": null,
        "maskType": null,
        "name": fd.name,
        "nameField": fd.name_field,
        "namePointing": fd.reference_to.len() > 1,
        "nillable": fd.nillable,
        "permissionable": fd.nillable && !fd.calculated && fd.createable,
        "picklistValues": picklist,
        "polymorphicForeignKey": fd.reference_to.len() > 1,
        "precision": fd.precision,
        "queryByDistance": false,
        "referenceTargetField": null,
        "referenceTo": fd.reference_to,
        "relationshipName": fd.relationship_name,
        "relationshipOrder": null,
        "restrictedDelete": false,
        "restrictedPicklist": fd.restricted_picklist,
        "scale": fd.scale,
        "searchPrefilterable": t == FieldType::Reference,
        "soapType": t.soap_type(),
        "sortable": fd.filterable(),
        "type": t.api_name(),
        "unique": fd.unique,
        "updateable": fd.updateable,
        "writeRequiresMasterRead": false,
    })
}

fn child_relationships(schema: &Schema, o: &ObjectDef) -> Vec<Value> {
    let mut out = vec![];
    for child in &schema.objects {
        for fd in &child.fields {
            if fd.reference_to.iter().any(|r| r == &o.name) {
                out.push(json!({
                    "cascadeDelete": false,
                    "childSObject": child.name,
                    "deprecatedAndHidden": false,
                    "field": fd.name,
                    "junctionIdListNames": [],
                    "junctionReferenceTo": [],
                    "relationshipName": fd.child_relationship,
                    "restrictedDelete": false,
                }));
            }
        }
    }
    out
}

pub fn object(schema: &Schema, o: &ObjectDef, version: &str) -> Value {
    let mut v = object_summary(o, version);
    let m: &mut Map<String, Value> = v.as_object_mut().expect("object");
    m.insert("actionOverrides".into(), json!([]));
    m.insert("childRelationships".into(), json!(child_relationships(schema, o)));
    m.insert("compactLayoutable".into(), json!(true));
    m.insert("defaultImplementation".into(), Value::Null);
    m.insert("extendedBy".into(), Value::Null);
    m.insert("extendsInterfaces".into(), Value::Null);
    m.insert("fields".into(), Value::Array(o.fields.iter().map(field).collect()));
    m.insert("implementedBy".into(), Value::Null);
    m.insert("implementsInterfaces".into(), Value::Null);
    m.insert("listviewable".into(), Value::Null);
    m.insert("lookupLayoutable".into(), Value::Null);
    m.insert("namedLayoutInfos".into(), json!([]));
    m.insert("networkScopeFieldName".into(), Value::Null);
    m.insert("recordTypeInfos".into(), json!([]));
    m.insert("searchLayoutable".into(), json!(true));
    m.insert("sobjectDescribeOption".into(), json!("FULL"));
    m.insert("supportedScopes".into(), json!([]));
    v
}
