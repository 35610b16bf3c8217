//! `GET sobjects/{O}/describe/layouts/` (and `…/layouts/{recordTypeId}`): the object's page
//! layout as Salesforce describes it. The emulator has no layout editor and no record types, so
//! every object has one layout — its fields in describe order, two columns, system fields in
//! their own section, a related list per child relationship — mapped to the Master record type.
//! Built from the object's describe JSON, so each item's `details` is exactly its field describe.

use super::rest::object_idx;
use super::{Api, St};
use crate::errors::ApiError;
use crate::ids;
use crate::schema::describe;
use crate::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// The Master record type every object without record types has.
pub const MASTER_RECORD_TYPE: &str = "012000000000000AAA";
/// Shown by Salesforce in the "System Information" section (read-only, who and when).
const SYSTEM_FIELDS: [&str; 2] = ["CreatedById", "LastModifiedById"];
/// The parts of a person's compound `Name`.
const PERSON_NAME_PARTS: [&str; 3] = ["Salutation", "FirstName", "LastName"];
/// Never on a layout.
const HIDDEN_FIELDS: [&str; 5] = ["Id", "IsDeleted", "SystemModstamp", "CreatedDate", "LastModifiedDate"];

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// One layout item: the field (a compound field carries its parts as `components`).
fn item(field: &Value, parts: Vec<&Value>, tab_order: usize) -> Value {
    let component = |f: &Value, tab: usize| json!({"details": f, "displayLines": 1, "tabOrder": tab, "type": "Field", "value": f["name"]});
    let mut main = component(field, tab_order);
    if !parts.is_empty() {
        main["components"] = json!(parts.iter().enumerate().map(|(i, p)| component(p, tab_order + i)).collect::<Vec<_>>());
    }
    let editable = |key: &str| field[key].as_bool().unwrap_or(false) || parts.iter().any(|p| p[key].as_bool().unwrap_or(false));
    let required = |f: &Value| {
        f["createable"].as_bool() == Some(true) && f["nillable"].as_bool() == Some(false) && f["defaultedOnCreate"].as_bool() == Some(false)
    };
    json!({
        "editableForNew": editable("createable"),
        "editableForUpdate": editable("updateable"),
        "label": field["label"],
        "layoutComponents": [main],
        "placeholder": false,
        "required": required(field) || parts.iter().any(|p| required(p)),
    })
}

fn section(heading: &str, id: String, layout_id: &str, items: Vec<Value>) -> Value {
    let rows: Vec<Value> = items.chunks(2).map(|pair| json!({"layoutItems": pair, "numItems": pair.len()})).collect();
    json!({
        "collapsed": false,
        "columns": 2,
        "heading": heading,
        "layoutRows": rows,
        "layoutSectionId": id,
        "parentLayoutId": layout_id,
        "rows": rows.len(),
        "tabOrder": "TopToBottom",
        "useCollapsibleSection": false,
        "useHeading": true,
    })
}

/// The object's one layout.
fn layout(st: &AppState, obj: usize, desc: &Value) -> Value {
    let layout_id = ids::mint("00h", obj as u64 + 1);
    let fields: Vec<&Value> = desc["fields"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
    // A person's Name (Contact, Lead, User: read-only, derived) shows as one item holding its
    // parts, as on Salesforce, although the parts' describe does not name it as their compound.
    let person_name = fields.iter().any(|f| str_of(f, "name") == "Name" && f["createable"] == false);
    let is_part_of = |f: &Value, name: &str| {
        str_of(f, "compoundFieldName") == name || (name == "Name" && person_name && PERSON_NAME_PARTS.contains(&str_of(f, "name")))
    };
    let parts_of = |name: &str| fields.iter().copied().filter(|f| is_part_of(f, name)).collect::<Vec<_>>();
    let (mut info, mut system, mut tab) = (vec![], vec![], 1);
    for f in &fields {
        let name = str_of(f, "name");
        if HIDDEN_FIELDS.contains(&name) || !f["compoundFieldName"].is_null() || is_part_of(f, "Name") {
            continue;
        }
        let parts = parts_of(name);
        let next = tab + parts.len().max(1);
        let it = item(f, parts, tab);
        tab = next;
        if SYSTEM_FIELDS.contains(&name) {
            system.push(it)
        } else {
            info.push(it)
        }
    }
    let label = str_of(desc, "label");
    let sections = vec![
        section(&format!("{label} Information"), ids::mint("01B", 2 * obj as u64 + 1), &layout_id, info),
        section("System Information", ids::mint("01B", 2 * obj as u64 + 2), &layout_id, system),
    ];
    let related: Vec<Value> = desc["childRelationships"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| !r["relationshipName"].is_null())
        .filter_map(|r| {
            let child = st.schema.object(str_of(r, "childSObject"))?;
            let cdef = &st.schema.objects[child];
            let name_field = cdef.fields.iter().find(|f| f.name_field).map_or("Id", |f| f.name.as_str());
            Some(json!({
                "accessLevelRequiredForCreate": null,
                "buttons": [],
                "columns": [{"field": format!("{}.{name_field}", cdef.name), "fieldApiName": name_field, "format": null,
                             "label": cdef.fields.iter().find(|f| f.name == name_field).map_or("Record ID", |f| f.label.as_str()),
                             "lookupId": null, "name": name_field, "sortable": true}],
                "custom": cdef.custom,
                "field": r["field"],
                "label": cdef.label_plural,
                "limitRows": 5,
                "name": r["relationshipName"],
                "sobject": cdef.name,
                "sort": [],
            }))
        })
        .collect();
    json!({
        "buttonLayoutSection": null,
        "detailLayoutSections": sections,
        "editLayoutSections": sections,
        "feedView": null,
        "highlightsPanelLayoutSection": null,
        "id": layout_id,
        "multirowEditLayoutFields": null,
        "offlineLinks": [],
        "quickActionList": {"quickActionListItems": []},
        "relatedContent": null,
        "relatedLists": related,
        "saveOptions": [],
    })
}

/// The Master record type's mapping: its layout and every picklist's values.
fn master_mapping(obj: usize, object: &str, desc: &Value, version: &str) -> Value {
    let picklists: Vec<Value> = desc["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| matches!(str_of(f, "type"), "picklist" | "multipicklist" | "combobox"))
        .map(|f| json!({"picklistName": f["name"], "picklistValues": f["picklistValues"]}))
        .collect();
    json!({
        "active": true,
        "available": true,
        "defaultRecordTypeMapping": true,
        "developerName": "Master",
        "layoutId": ids::mint("00h", obj as u64 + 1),
        "master": true,
        "name": "Master",
        "picklistsForRecordType": picklists,
        "recordTypeId": MASTER_RECORD_TYPE,
        "urls": {"layout": format!("/services/data/v{version}/sobjects/{object}/describe/layouts/{MASTER_RECORD_TYPE}")},
    })
}

pub async fn layouts(State(st): St, api: Api) -> Result<Response, ApiError> {
    let obj = object_idx(&st, api.param("object"))?;
    let def = &st.schema.objects[obj];
    let desc = describe::object(&st.schema, def, &api.version);
    Ok(Json(json!({
        "layouts": [layout(&st, obj, &desc)],
        "recordTypeMappings": [master_mapping(obj, &def.name, &desc, &api.version)],
        "recordTypeSelectorRequired": [false],
    }))
    .into_response())
}

/// `describe/layouts/{recordTypeId}`: the layout that record type uses (only Master exists).
pub async fn layout_for_record_type(State(st): St, api: Api) -> Result<Response, ApiError> {
    let obj = object_idx(&st, api.param("object"))?;
    if ids::normalize(api.param("record_type")).as_deref() != Some(MASTER_RECORD_TYPE) {
        return Err(ApiError::not_found());
    }
    let desc = describe::object(&st.schema, &st.schema.objects[obj], &api.version);
    Ok(Json(layout(&st, obj, &desc)).into_response())
}
