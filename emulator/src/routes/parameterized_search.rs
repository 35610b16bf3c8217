//! `parameterizedSearch`: a search described by parameters instead of SOSL — `GET ?q=…&sobject=A
//! &A.fields=…&A.where=…&A.limit=…&fields=…&in=…&defaultLimit=…&overallLimit=…` or `POST` with
//! the same as JSON (`sobjects: [{name, fields, where, limit}]`). It becomes the SOSL search's
//! terms, scope and RETURNING queries and runs through the same code (`search::run`).

use super::search::{run, search_scope, search_terms, Sosl};
use super::{json_body, Api, St};
use crate::errors::ApiError;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use serde_json::Value;

const MAX_LIMIT: usize = 2000;

fn invalid(msg: impl Into<String>) -> ApiError {
    ApiError::bad("INVALID_SEARCH", msg)
}

/// What to return for one object.
#[derive(Debug, Default, PartialEq)]
struct Target {
    name: String,
    fields: Option<String>,
    filter: Option<String>,
    limit: Option<usize>,
}

/// The search, as read from GET parameters or a POST body, before it becomes SQL-like text.
#[derive(Debug, Default)]
struct Params {
    q: String,
    fields: Option<String>,
    scope: Option<String>,
    targets: Vec<Target>,
    default_limit: Option<usize>,
    overall_limit: Option<usize>,
}

fn number(name: &str, v: &str) -> Result<usize, ApiError> {
    match v.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n.min(MAX_LIMIT)),
        _ => Err(invalid(format!("{name} must be a positive whole number, not '{v}'"))),
    }
}

/// A field list is field names only: it goes into the SELECT list of the object's query.
fn field_list(v: &str) -> Result<String, ApiError> {
    let names: Vec<&str> = v.split(',').map(str::trim).filter(|f| !f.is_empty()).collect();
    if names.is_empty() || names.iter().any(|f| !f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')) {
        return Err(invalid(format!("invalid field list: '{v}'")));
    }
    Ok(names.join(", "))
}

impl Params {
    fn from_query(pairs: &[(String, String)]) -> Result<Params, ApiError> {
        let mut p = Params::default();
        for (_, v) in pairs.iter().filter(|(k, _)| k == "sobject") {
            if !p.targets.iter().any(|t| t.name.eq_ignore_ascii_case(v)) {
                p.targets.push(Target { name: v.clone(), ..Target::default() });
            }
        }
        for (k, v) in pairs {
            match k.as_str() {
                "q" => p.q = v.clone(),
                "sobject" => {}
                "fields" => p.fields = Some(field_list(v)?),
                "in" => p.scope = Some(v.clone()),
                "defaultLimit" => p.default_limit = Some(number(k, v)?),
                "overallLimit" => p.overall_limit = Some(number(k, v)?),
                _ => {
                    // `<Object>.fields`, `<Object>.where`, `<Object>.limit` for a listed sobject.
                    let Some((obj, what)) = k.split_once('.') else { continue };
                    let Some(t) = p.targets.iter_mut().find(|t| t.name.eq_ignore_ascii_case(obj)) else {
                        return Err(invalid(format!("{k} names an object that is not in an sobject parameter")));
                    };
                    match what {
                        "fields" => t.fields = Some(field_list(v)?),
                        "where" => t.filter = Some(v.clone()),
                        "limit" => t.limit = Some(number(k, v)?),
                        _ => {}
                    }
                }
            }
        }
        Ok(p)
    }

    fn from_body(body: &Value) -> Result<Params, ApiError> {
        let str_list = |v: &Value, what: &str| -> Result<String, ApiError> {
            let items = v.as_array().ok_or_else(|| invalid(format!("{what} must be an array of field names")))?;
            let names: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
            field_list(&names.ok_or_else(|| invalid(format!("{what} must be an array of field names")))?.join(","))
        };
        let limit = |v: Option<&Value>, what: &str| -> Result<Option<usize>, ApiError> {
            match v {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => number(what, &n.to_string()).map(Some),
                Some(Value::String(s)) => number(what, s).map(Some),
                Some(other) => Err(invalid(format!("{what} must be a number, not {other}"))),
            }
        };
        let obj = body.as_object().ok_or_else(|| invalid("the request body must be a JSON object"))?;
        let mut p = Params {
            q: obj.get("q").and_then(Value::as_str).unwrap_or("").to_string(),
            fields: obj.get("fields").map(|v| str_list(v, "fields")).transpose()?,
            scope: obj.get("in").and_then(Value::as_str).map(str::to_string),
            default_limit: limit(obj.get("defaultLimit"), "defaultLimit")?,
            overall_limit: limit(obj.get("overallLimit"), "overallLimit")?,
            ..Params::default()
        };
        for s in obj.get("sobjects").and_then(Value::as_array).into_iter().flatten() {
            let name = s.get("name").and_then(Value::as_str).ok_or_else(|| invalid("every sobjects entry needs a name"))?;
            p.targets.push(Target {
                name: name.to_string(),
                fields: s.get("fields").map(|v| str_list(v, "sobjects.fields")).transpose()?,
                filter: s.get("where").and_then(Value::as_str).map(str::to_string),
                limit: limit(s.get("limit"), "sobjects.limit")?,
            });
        }
        Ok(p)
    }

    /// The SOSL equivalent: `FIND {q} IN scope FIELDS RETURNING A(fields WHERE … LIMIT n), …`.
    fn into_sosl(self) -> Result<Sosl, ApiError> {
        if self.q.trim().is_empty() {
            return Err(invalid("the search string q is missing"));
        }
        let returning = self
            .targets
            .iter()
            .map(|t| {
                let fields = t.fields.as_deref().or(self.fields.as_deref()).unwrap_or("Id");
                let filter = t.filter.as_deref().map(|w| format!(" WHERE {w}")).unwrap_or_default();
                let limit = t.limit.or(self.default_limit).map(|n| format!(" LIMIT {n}")).unwrap_or_default();
                (t.name.clone(), format!("SELECT {fields} FROM {}{filter}{limit}", t.name))
            })
            .collect();
        Ok(Sosl {
            terms: search_terms(&self.q)?,
            scope: search_scope(self.scope.as_deref().unwrap_or("ALL"))?,
            returning,
            limit: self.overall_limit.unwrap_or(MAX_LIMIT),
        })
    }
}

pub async fn get_search(State(st): St, api: Api, Query(q): Query<Vec<(String, String)>>) -> Result<Response, ApiError> {
    run(&st, &api, Params::from_query(&q)?.into_sosl()?)
}

pub async fn post_search(State(st): St, api: Api, body: Bytes) -> Result<Response, ApiError> {
    run(&st, &api, Params::from_body(&json_body(&body)?)?.into_sosl()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn get_parameters_become_returning_queries() {
        let p = Params::from_query(&pairs(&[
            ("q", "Acme*"),
            ("sobject", "Account"),
            ("sobject", "Contact"),
            ("Account.fields", "Id,Name"),
            ("Account.where", "Industry = 'Energy'"),
            ("Account.limit", "5"),
            ("fields", "Id"),
            ("defaultLimit", "10"),
            ("in", "name"),
            ("overallLimit", "20"),
        ]))
        .unwrap();
        let s = p.into_sosl().unwrap();
        assert_eq!((s.terms.clone(), s.scope.as_str(), s.limit), (vec!["acme".to_string()], "NAME", 20));
        assert_eq!(
            s.returning,
            [
                ("Account".to_string(), "SELECT Id, Name FROM Account WHERE Industry = 'Energy' LIMIT 5".to_string()),
                ("Contact".to_string(), "SELECT Id FROM Contact LIMIT 10".to_string())
            ]
        );
    }

    #[test]
    fn post_body_becomes_returning_queries() {
        let body = serde_json::json!({"q": "Acme", "fields": ["Id", "Name"], "in": "ALL", "overallLimit": 50,
            "sobjects": [{"name": "Account", "where": "Name != null", "limit": 3}, {"name": "Lead", "fields": ["Company"]}]});
        let s = Params::from_body(&body).unwrap().into_sosl().unwrap();
        assert_eq!(s.limit, 50);
        assert_eq!(
            s.returning,
            [
                ("Account".to_string(), "SELECT Id, Name FROM Account WHERE Name != null LIMIT 3".to_string()),
                ("Lead".to_string(), "SELECT Company FROM Lead".to_string())
            ]
        );
    }

    #[test]
    fn refuses_what_it_cannot_search() {
        let bad = [
            pairs(&[("sobject", "Account")]),
            pairs(&[("q", "a")]),
            pairs(&[("q", "acme"), ("in", "BODY")]),
            pairs(&[("q", "acme"), ("Contact.fields", "Name")]),
            pairs(&[("q", "acme"), ("sobject", "Account"), ("Account.fields", "Name FROM Lead")]),
            pairs(&[("q", "acme"), ("overallLimit", "-1")]),
        ];
        for q in bad {
            let err = Params::from_query(&q).and_then(Params::into_sosl).unwrap_err();
            assert!(matches!(err.code.as_str(), "INVALID_SEARCH" | "MALFORMED_SEARCH"), "{q:?}: {}", err.code);
        }
        assert!(Params::from_body(&serde_json::json!({"q": "acme", "sobjects": [{"fields": ["Id"]}]})).is_err());
    }
}
