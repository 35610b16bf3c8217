//! Finding the Salesforce records that rows without a Salesforce Id match by the mapping's
//! natural key (`plan::matching`): batched lookups (one SOQL query per
//! `KEYS_PER_QUERY` distinct keys, never one per row; from `sfsync.match_bulk_threshold`
//! keys one Bulk API 2.0 query job over the records with a key) and the Ids other rows
//! already hold.
//! The decisions are `plan::matching::decide`'s; `api::mapping` (first sync) and
//! `push::link` (later inserts) act on them.

use crate::error::{Result, SyncError};
use crate::plan::matching::{self, Found, KEYS_PER_QUERY};
use crate::plan::soql;
use crate::spi_util;
use crate::sync::Mapping;
use salesforce::Client;
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// The row's normalised key (None: a part is NULL or blank, the row cannot match).
pub fn row_key(m: &Mapping, row: &Map<String, Value>) -> Option<String> {
    matching::key_of(m.match_keys.iter().map(|k| row.get(&k.column)))
}

/// How the key is named in messages: `Email`, `FirstName, LastName`.
pub fn label(m: &Mapping) -> String {
    m.match_keys.iter().map(|k| k.field.as_str()).collect::<Vec<_>>().join(", ")
}

/// The records matching the rows' keys, per normalised key, and how many queries it took.
/// HTTP: call it between transactions (or in the session that owns the statement).
pub fn lookup(client: &Client, m: &Mapping, rows: &[&Map<String, Value>]) -> Result<(HashMap<String, Vec<Found>>, usize)> {
    // Distinct keys, each with the literal values of its parts.
    let mut keys: Vec<(String, Vec<String>)> = Vec::new();
    let mut seen = HashSet::new();
    for row in rows {
        let Some(key) = row_key(m, row) else { continue };
        if !seen.insert(key.clone()) {
            continue;
        }
        let parts: Option<Vec<String>> = m.match_keys.iter().map(|k| row.get(&k.column).and_then(matching::literal)).collect();
        if let Some(parts) = parts {
            keys.push((key, parts));
        }
    }
    let fields: Vec<&str> = m.match_keys.iter().map(|k| k.field.as_str()).collect();
    let mut found: HashMap<String, Vec<Found>> = HashMap::new();
    let mut queries = 0;
    let threshold = usize::try_from(crate::guc::MATCH_BULK_THRESHOLD.get()).unwrap_or(0);
    if matching::by_bulk(keys.len(), threshold) {
        // Every record with a key, streamed; the wanted ones kept (as the IN lists would).
        let q = soql::with_keys(&m.sobject, &m.external_id, &fields, m.filter.as_deref()).map_err(SyncError::Invalid)?;
        let wanted: HashSet<&str> = keys.iter().map(|(k, _)| k.as_str()).collect();
        let mut reader = client.bulk_query_with(&q, false, &salesforce::BulkOptions::default())?;
        queries += 1;
        while let Some(rec) = reader.next_record() {
            keep(&rec?, m, &fields, &wanted, &mut found);
        }
        return Ok((sorted(found), queries));
    }
    for chunk in keys.chunks(KEYS_PER_QUERY) {
        let wanted: HashSet<&str> = chunk.iter().map(|(k, _)| k.as_str()).collect();
        let values: Vec<Vec<String>> = (0..fields.len())
            .map(|i| {
                let mut v: Vec<String> = chunk.iter().map(|(_, parts)| parts[i].clone()).collect();
                v.sort();
                v.dedup();
                v
            })
            .collect();
        let q = soql::by_keys(&m.sobject, &m.external_id, &fields, &values, m.filter.as_deref()).map_err(SyncError::Invalid)?;
        queries += 1;
        for rec in client.query_iter(&q, false) {
            keep(&rec?, m, &fields, &wanted, &mut found);
        }
    }
    Ok((sorted(found), queries))
}

/// Adds a record to `found` under its normalised key if that key is wanted (a composite
/// key's IN lists also match mixed parts of different keys; a Bulk lookup reads them all).
fn keep(rec: &Map<String, Value>, m: &Mapping, fields: &[&str], wanted: &HashSet<&str>, found: &mut HashMap<String, Vec<Found>>) {
    let Some(key) = matching::key_of(fields.iter().map(|f| rec.get(*f))) else { return };
    if !wanted.contains(key.as_str()) {
        return;
    }
    let id = rec.get("Id").and_then(Value::as_str).unwrap_or_default().to_string();
    let external = match rec.get(&m.external_id) {
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    };
    found.entry(key).or_default().push(Found { id, external });
}

fn sorted(mut found: HashMap<String, Vec<Found>>) -> HashMap<String, Vec<Found>> {
    for records in found.values_mut() {
        records.sort_by(|a, b| a.id.cmp(&b.id));
    }
    found
}

/// Which of these Salesforce Ids a row of the table already holds (SPI: in a transaction).
pub fn taken(m: &Mapping, found: &HashMap<String, Vec<Found>>) -> Result<HashSet<String>> {
    let ids: Vec<String> = found.values().flatten().map(|f| f.id.clone()).collect();
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = format!("SELECT COALESCE(jsonb_agg(t.sfid), '[]') FROM {} t WHERE t.sfid = ANY($1)", m.table);
    let v = spi_util::json(&sql, &[ids.into()])?.unwrap_or_default();
    Ok(serde_json::from_value::<Vec<String>>(v).unwrap_or_default().into_iter().collect())
}

/// How many rows without a Salesforce Id, other than `except` (keys), have each of these
/// normalised keys: a key shared by rows outside the batch is ambiguous too.
pub fn others(m: &Mapping, keys: &[String], except: &[String]) -> Result<HashMap<String, usize>> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    // The SQL twin of matching::key_of: each part trimmed and lowercased, joined by U+001F.
    let expr = m
        .match_keys
        .iter()
        .map(|k| format!("lower(btrim(t.{}::text))", pgrx::spi::quote_identifier(&k.column)))
        .collect::<Vec<_>>()
        .join(" || chr(31) || ");
    let sql = format!(
        "SELECT COALESCE(jsonb_object_agg(x.k, x.n), '{{}}') FROM (
             SELECT {expr} AS k, count(*) AS n FROM {tbl} t
             WHERE t.sfid IS NULL AND t.{pk}::text <> ALL($2) AND {expr} = ANY($1) GROUP BY 1) x",
        tbl = m.table,
        pk = m.pk_ident()
    );
    let v = spi_util::json(&sql, &[keys.to_vec().into(), except.to_vec().into()])?.unwrap_or_default();
    Ok(serde_json::from_value(v).unwrap_or_default())
}
