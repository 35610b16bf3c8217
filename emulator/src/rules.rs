//! Org customizations added through the admin surface: validation rules (reject saves) and
//! automations (rewrite a field after save, like a record-triggered Flow).

use crate::soql::eval::like;
use crate::value::Value;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum RuleOp {
    Blank,
    NotBlank,
    Equals,
    NotEquals,
    /// SOQL LIKE pattern (`%`, `_`), case-insensitive.
    Matches,
    Contains,
    Gt,
    Lt,
}

/// Rejects a save with FIELD_CUSTOM_VALIDATION_EXCEPTION when `field op value` holds on the
/// record as it would be saved (Salesforce's "error condition formula").
#[derive(Deserialize, Serialize, Clone, Debug)]
pub struct ValidationRule {
    #[serde(default)]
    pub id: u64,
    pub object: String,
    pub name: String,
    pub field: String,
    pub op: RuleOp,
    #[serde(default)]
    pub value: Option<Json>,
    pub message: String,
    /// Field the error is attached to; absent means a top-of-page error (`fields: []`).
    #[serde(default)]
    pub error_field: Option<String>,
}

/// After a save of `object` (when `when_field` was written, and equals `when_value` if given),
/// sets `set_field` to `value` as a second system update that bumps SystemModstamp.
#[derive(Deserialize, Serialize, Clone, Debug)]
pub struct Automation {
    #[serde(default)]
    pub id: u64,
    pub object: String,
    pub name: String,
    #[serde(default)]
    pub when_field: Option<String>,
    #[serde(default)]
    pub when_value: Option<Json>,
    pub set_field: String,
    pub value: Json,
}

#[derive(Default)]
pub struct Rules {
    pub validations: Vec<ValidationRule>,
    pub automations: Vec<Automation>,
    pub next_id: u64,
}

fn json_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => String::new(),
        other => other.to_string(),
    }
}

fn as_num(v: &Value) -> Option<f64> {
    v.num()
}

/// Does `record_value op rule_value` hold?
pub fn holds(op: RuleOp, v: &Value, rule_value: Option<&Json>) -> bool {
    let text = v.display();
    let want = rule_value.map(json_text).unwrap_or_default();
    let cmp = || match (as_num(v), rule_value.and_then(Json::as_f64)) {
        (Some(a), Some(b)) => a.partial_cmp(&b),
        _ => Some(text.to_lowercase().cmp(&want.to_lowercase())),
    };
    match op {
        RuleOp::Blank => v.is_null(),
        RuleOp::NotBlank => !v.is_null(),
        RuleOp::Equals => !v.is_null() && cmp() == Some(std::cmp::Ordering::Equal),
        RuleOp::NotEquals => v.is_null() || cmp() != Some(std::cmp::Ordering::Equal),
        RuleOp::Matches => !v.is_null() && like(&text, &want),
        RuleOp::Contains => !v.is_null() && text.to_lowercase().contains(&want.to_lowercase()),
        RuleOp::Gt => !v.is_null() && cmp() == Some(std::cmp::Ordering::Greater),
        RuleOp::Lt => !v.is_null() && cmp() == Some(std::cmp::Ordering::Less),
    }
}

impl Rules {
    /// The first validation rule or automation naming `object.field` (Setup refuses to delete
    /// such a field).
    pub fn naming(&self, object: &str, field: &str) -> Option<String> {
        let is = |f: &str| f.eq_ignore_ascii_case(field);
        let of = |o: &str| o.eq_ignore_ascii_case(object);
        if let Some(r) = self.validations.iter().find(|r| of(&r.object) && (is(&r.field) || r.error_field.as_deref().is_some_and(is))) {
            return Some(format!("the validation rule {}", r.name));
        }
        let a = self.automations.iter().find(|a| of(&a.object) && (is(&a.set_field) || a.when_field.as_deref().is_some_and(is)));
        a.map(|a| format!("the automation {}", a.name))
    }

    /// Follows a field rename in the rules that name it, as Setup does.
    pub fn rename_field(&mut self, object: &str, old: &str, new: &str) {
        let of = |o: &str| o.eq_ignore_ascii_case(object);
        let names =
            self.validations.iter_mut().filter(|r| of(&r.object)).flat_map(|r| std::iter::once(&mut r.field).chain(r.error_field.as_mut()));
        let names = names.chain(
            self.automations
                .iter_mut()
                .filter(|a| of(&a.object))
                .flat_map(|a| std::iter::once(&mut a.set_field).chain(a.when_field.as_mut())),
        );
        for f in names.filter(|f| f.eq_ignore_ascii_case(old)) {
            *f = new.to_string();
        }
    }
}
