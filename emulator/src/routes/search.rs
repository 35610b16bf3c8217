//! `GET search?q=<SOSL>`: the common subset of SOSL — `FIND {terms} [IN ALL|NAME|EMAIL|PHONE
//! FIELDS] [RETURNING Obj[(fields [WHERE …] [ORDER BY …] [LIMIT n])], …] [LIMIT n]`. Each
//! RETURNING item runs as a SOQL query; a record matches when every search term (`*` and `?` are
//! wildcards, dropped) occurs, case-insensitively, in one of its searched text fields.

use super::{Api, St};
use crate::errors::ApiError;
use crate::out::Out;
use crate::schema::{FieldType, ObjectDef};
use crate::soql::eval::{compile, execute, render};
use crate::soql::parser::parse;
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::collections::HashMap;

const DEFAULT_LIMIT: usize = 2000;

fn malformed(msg: impl Into<String>) -> ApiError {
    ApiError::bad("MALFORMED_SEARCH", msg)
}

#[derive(Debug, PartialEq)]
pub struct Sosl {
    pub terms: Vec<String>,
    /// ALL, NAME, EMAIL or PHONE.
    pub scope: String,
    /// (object, SOQL for it)
    pub returning: Vec<(String, String)>,
    pub limit: usize,
}

/// Splits `s` at top-level commas (outside parentheses and quotes).
fn split_top(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth, mut quote) = (vec![], String::new(), 0i32, false);
    for c in s.chars() {
        match c {
            '\'' => quote = !quote,
            '(' if !quote => depth += 1,
            ')' if !quote => depth -= 1,
            ',' if !quote && depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter().map(|x| x.trim().to_string()).filter(|x| !x.is_empty()).collect()
}

/// Where a top-level ` LIMIT n` ends the RETURNING list (outside parentheses).
fn trailing_limit(s: &str) -> Result<(String, Option<usize>), ApiError> {
    let upper = s.to_ascii_uppercase();
    let mut depth = 0;
    let mut at = None;
    for (i, c) in upper.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ if depth == 0 && upper[i..].starts_with("LIMIT ") && (i == 0 || upper[..i].ends_with(' ')) => at = Some(i),
            _ => {}
        }
    }
    match at {
        Some(i) => {
            let n = s[i + 6..].trim().parse().map_err(|_| malformed(format!("unexpected token: {}", s[i + 6..].trim())))?;
            Ok((s[..i].trim().to_string(), Some(n)))
        }
        None => Ok((s.trim().to_string(), None)),
    }
}

/// `Account(Name, Id WHERE … LIMIT 5)` → SOQL `SELECT Name, Id FROM Account WHERE … LIMIT 5`.
fn item_soql(item: &str) -> Result<(String, String), ApiError> {
    let Some(open) = item.find('(') else {
        return Ok((item.to_string(), format!("SELECT Id FROM {item}")));
    };
    let obj = item[..open].trim().to_string();
    let inner = item[open + 1..].trim_end().strip_suffix(')').ok_or_else(|| malformed(format!("unbalanced parentheses in {item}")))?;
    let upper = inner.to_ascii_uppercase();
    let cut = [" WHERE ", " ORDER BY ", " LIMIT ", " OFFSET "].iter().filter_map(|k| upper.find(k)).min().unwrap_or(inner.len());
    let (fields, rest) = inner.split_at(cut);
    let fields = if fields.trim().is_empty() { "Id" } else { fields.trim() };
    Ok((obj.clone(), format!("SELECT {fields} FROM {obj}{rest}")))
}

/// The terms of a search string: `AND`/`OR` dropped, wildcards and quotes stripped, lowercased.
pub fn search_terms(text: &str) -> Result<Vec<String>, ApiError> {
    let terms: Vec<String> = text
        .split_whitespace()
        .filter(|t| !matches!(t.to_ascii_uppercase().as_str(), "AND" | "OR"))
        .map(|t| t.trim_matches(|c| matches!(c, '"' | '*' | '?' | '(' | ')')).to_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    if terms.iter().map(|t| t.chars().count()).sum::<usize>() < 2 {
        return Err(malformed("search term must be longer than one character"));
    }
    Ok(terms)
}

/// `IN <scope> FIELDS`: ALL, NAME, EMAIL, PHONE or SIDEBAR (searched like ALL).
pub fn search_scope(word: &str) -> Result<String, ApiError> {
    let scope = word.to_ascii_uppercase();
    if !matches!(scope.as_str(), "ALL" | "NAME" | "EMAIL" | "PHONE" | "SIDEBAR") {
        return Err(malformed(format!("unexpected token: {word}")));
    }
    Ok(scope)
}

pub fn parse_sosl(q: &str) -> Result<Sosl, ApiError> {
    let q = q.trim();
    let rest = q
        .get(..4)
        .filter(|f| f.eq_ignore_ascii_case("FIND"))
        .map(|_| q[4..].trim_start())
        .ok_or_else(|| malformed("SOSL must start with FIND"))?;
    let rest = rest.strip_prefix('{').ok_or_else(|| malformed("the search terms go in braces: FIND {terms}"))?;
    let close = rest.find('}').ok_or_else(|| malformed("missing '}' after the search terms"))?;
    let terms = search_terms(&rest[..close])?;
    let mut rest = rest[close + 1..].trim();
    let mut scope = "ALL".to_string();
    let words: Vec<&str> = rest.splitn(4, char::is_whitespace).collect();
    if words.len() >= 3 && words[0].eq_ignore_ascii_case("IN") && words[2].eq_ignore_ascii_case("FIELDS") {
        scope = search_scope(words[1])?;
        rest = words.get(3).copied().unwrap_or("").trim();
    }
    let (list, limit) = match rest.get(..9).filter(|r| r.eq_ignore_ascii_case("RETURNING")) {
        Some(_) => trailing_limit(&rest[9..])?,
        None => trailing_limit(rest).map(|(r, l)| if r.is_empty() { (r, l) } else { (format!("!{r}"), l) })?,
    };
    if let Some(bad) = list.strip_prefix('!') {
        return Err(malformed(format!("unexpected token: {}", bad.split_whitespace().next().unwrap_or(bad))));
    }
    let returning = split_top(&list).iter().map(|i| item_soql(i)).collect::<Result<_, _>>()?;
    Ok(Sosl { terms, scope, returning, limit: limit.unwrap_or(DEFAULT_LIMIT) })
}

fn searched(def: &ObjectDef, scope: &str) -> Vec<usize> {
    def.fields
        .iter()
        .enumerate()
        .filter(|(_, f)| match scope {
            "NAME" => f.name_field,
            "EMAIL" => f.ftype == FieldType::Email,
            "PHONE" => f.ftype == FieldType::Phone,
            _ => f.ftype.is_text() && f.ftype != FieldType::Id,
        })
        .map(|(i, _)| i)
        .collect()
}

pub async fn search(State(st): St, api: Api, Query(q): Query<HashMap<String, String>>) -> Result<Response, ApiError> {
    let text = q.get("q").map(String::as_str).unwrap_or("");
    run(&st, &api, parse_sosl(text)?)
}

/// Runs a search (SOSL or parameterized) → `{"searchRecords":[…]}`. Each RETURNING query's
/// `LIMIT`/`OFFSET` count matching records, so they are applied after the term match.
pub fn run(st: &AppState, api: &Api, mut sosl: Sosl) -> Result<Response, ApiError> {
    if sosl.returning.is_empty() {
        // Without RETURNING: every searchable object, IDs only.
        sosl.returning =
            st.schema.objects.iter().filter(|o| o.createable).map(|o| (o.name.clone(), format!("SELECT Id FROM {}", o.name))).collect();
    }
    let mut out = vec![];
    for (obj, soql) in &sosl.returning {
        let mut parsed = parse(soql).map_err(|e| e.to_api(soql))?;
        let (limit, offset) = (parsed.limit.take(), parsed.offset.take());
        let plan = compile(&st.schema, &parsed, st.clock.now_ms()).map_err(|e| e.to_api(soql))?;
        if plan.is_aggregate() || plan.count_only {
            return Err(malformed(format!("aggregate queries are not allowed in RETURNING {obj}")));
        }
        let def = &st.schema.objects[plan.obj];
        let fields = searched(def, &sosl.scope);
        let store = st.store.read();
        let matches = execute(&plan, &st.schema, &store, false).into_iter().filter(|seq| {
            let Some(rec) = store.tables[plan.obj].recs.get(seq) else { return false };
            let texts: Vec<String> = fields.iter().filter_map(|&f| rec.get(f).as_str().map(str::to_lowercase)).collect();
            sosl.terms.iter().all(|t| texts.iter().any(|x| x.contains(t.as_str())))
        });
        let room = sosl.limit.saturating_sub(out.len());
        let take = limit.map_or(room, |l| room.min(l as usize));
        for seq in matches.skip(offset.unwrap_or(0) as usize).take(take) {
            out.extend(render(&plan, &st.schema, &store, seq, &api.version));
        }
    }
    Ok(Json(Out::O(vec![("searchRecords".into(), Out::A(out))])).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_common_subset() {
        let s =
            parse_sosl("FIND {Acme* Corp} IN NAME FIELDS RETURNING Account(Name, Id WHERE Industry = 'x, y' LIMIT 5), Contact LIMIT 20")
                .unwrap();
        assert_eq!(s.terms, ["acme", "corp"]);
        assert_eq!(s.scope, "NAME");
        assert_eq!(s.limit, 20);
        assert_eq!(
            s.returning,
            [
                ("Account".to_string(), "SELECT Name, Id FROM Account WHERE Industry = 'x, y' LIMIT 5".to_string()),
                ("Contact".to_string(), "SELECT Id FROM Contact".to_string())
            ]
        );
        let s = parse_sosl("find {ab}").unwrap();
        assert_eq!((s.scope.as_str(), s.returning.len(), s.limit), ("ALL", 0, DEFAULT_LIMIT));
    }

    #[test]
    fn refuses_what_is_not_sosl() {
        for bad in ["SELECT Id FROM Account", "FIND acme", "FIND {a}", "FIND {ab} IN SOME FIELDS", "FIND {ab} RETURNS Account"] {
            assert_eq!(parse_sosl(bad).unwrap_err().code, "MALFORMED_SEARCH", "{bad}");
        }
    }
}
