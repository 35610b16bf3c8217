//! `query?columns=true`: the select list's column metadata instead of records, as Salesforce
//! answers it (the `sf` CLI reads it to lay out `data query` tables).

use super::aggregates::Src;
use super::plan::Plan;
use super::relationships::Col;
use crate::schema::{FieldDef, FieldType, Schema};
use serde_json::{json, Value};

fn apex_type(t: FieldType) -> &'static str {
    match t {
        FieldType::Id | FieldType::Reference => "Id",
        FieldType::Boolean => "Boolean",
        FieldType::Int => "Integer",
        FieldType::Double | FieldType::Currency | FieldType::Percent => "Double",
        FieldType::Date => "Date",
        FieldType::DateTime => "Datetime",
        FieldType::Address => "Address",
        _ => "String",
    }
}

fn column(name: &str, display: &str, fd: Option<&FieldDef>, aggregate: bool, joins: Vec<Value>) -> Value {
    let t = fd.map(|f| f.ftype);
    json!({
        "aggregate": aggregate,
        "apexType": t.map(apex_type),
        "booleanType": t == Some(FieldType::Boolean),
        "columnName": name,
        "custom": fd.is_some_and(|f| f.name.ends_with("__c")),
        "displayName": display,
        "foreignKeyName": null,
        "insertable": fd.is_some_and(|f| f.createable),
        "joinColumns": joins,
        "numberType": t.is_some_and(|t| matches!(t, FieldType::Int | FieldType::Double | FieldType::Currency | FieldType::Percent)),
        "textType": t.is_some_and(|t| apex_type(t) == "String"),
        "updatable": fd.is_some_and(|f| f.updateable),
    })
}

fn columns(cols: &[Col], schema: &Schema, prefix: &str) -> Vec<Value> {
    cols.iter()
        .map(|c| match c {
            Col::Field { name, fields } => {
                let fd = fields.first().map(|&(o, f)| &schema.objects[o].fields[f]);
                column(name, &format!("{prefix}{name}"), fd, false, vec![])
            }
            Col::Rel { name, children, .. } => {
                column(name, &format!("{prefix}{name}"), None, false, columns(children, schema, &format!("{prefix}{name}.")))
            }
            Col::Child { name, plan, .. } => column(name, name, None, true, columns(&plan.cols, schema, &format!("{name}."))),
        })
        .collect()
}

/// `{"columnMetadata": [...], "entityName", "groupBy", "idSelected", "keyPrefix"}`.
pub fn column_metadata(plan: &Plan, schema: &Schema) -> Value {
    let def = &schema.objects[plan.obj];
    let cols = match &plan.agg {
        Some(agg) => agg
            .outs
            .iter()
            .map(|(name, src)| match src {
                Src::Group(g) => {
                    let fd = agg.groups[*g].leaf.first().map(|&(o, f)| &schema.objects[o].fields[f]);
                    column(name, name, fd, false, vec![])
                }
                Src::Acc(_) => column(name, name, None, true, vec![]),
            })
            .collect(),
        None => columns(&plan.cols, schema, ""),
    };
    let id_selected = plan.cols.iter().any(|c| matches!(c, Col::Field { name, .. } if name == "Id"));
    json!({
        "columnMetadata": cols,
        "entityName": def.name,
        "groupBy": plan.agg.as_ref().is_some_and(|a| !a.groups.is_empty()),
        "idSelected": id_selected,
        "keyPrefix": def.key_prefix,
    })
}
