//! sfsync.mirror, sfsync.backfill and sfsync.verify.

use super::mapping::{self, Options};
use crate::error::{OrRaise, Result, SyncError};
use crate::plan::mirror::{self, MirrorField};
use crate::plan::options::{Direction, Options as MappingOptions};
use crate::plan::{backfill as plan, compare, convert};
use crate::privilege;
use crate::spi_util;
use crate::sync::source::backfill;
use crate::sync::{self, clients, Ctx, Mapping};
use pgrx::prelude::*;
use pgrx::spi::quote_identifier;
use pgrx::{JsonB, PgRelation};
use serde_json::{json, Map, Value};

/// Most mismatches (and missing records) verify lists; the counts are always complete.
const REPORT_CAP: usize = 100;

/// Creates table `into` from the object's describe, syncs it pull-only and starts its backfill.
/// EXECUTE is granted to sfsync_admin only; the table is created as the caller (who owns it
/// and needs CREATE on its schema).
#[pg_extern(volatile, parallel_unsafe)]
fn mirror(sobject: &str, into: &str, connection: default!(&str, "'default'"), fields: default!(Option<Vec<String>>, "NULL")) -> JsonB {
    JsonB(make_mirror(sobject, into, connection, fields).or_raise())
}

/// Schedules a full load of a synced table from Salesforce; progress in sfsync.backfill_progress.
#[pg_extern(volatile, parallel_unsafe)]
fn backfill(tbl: PgRelation) -> JsonB {
    let oid = tbl.oid();
    drop(tbl);
    privilege::require_table(oid, "sfsync.backfill").or_raise();
    JsonB(privilege::as_extension_owner(|| schedule(oid.to_u32())).or_raise())
}

/// Shadow check of a synced table against Salesforce: counts and a sampled field-by-field comparison.
#[pg_extern(volatile, parallel_unsafe)]
fn verify(tbl: PgRelation, sample: default!(i32, "1000")) -> JsonB {
    let oid = tbl.oid();
    drop(tbl);
    privilege::require_table(oid, "sfsync.verify").or_raise();
    JsonB(privilege::as_extension_owner(|| check(oid.to_u32(), sample)).or_raise())
}

fn mapping_of(oid: u32) -> Result<Mapping> {
    sync::load_mappings(Some(oid))?.into_iter().next().ok_or_else(|| {
        let name = Spi::get_one_with_args::<String>("SELECT $1::bigint::oid::regclass::text", &[i64::from(oid).into()]).ok().flatten();
        SyncError::NotFound(format!(
            "table {} is not synced (see sfsync.sync_table or sfsync.mirror)",
            name.unwrap_or_else(|| oid.to_string())
        ))
    })
}

fn schedule(oid: u32) -> Result<Value> {
    let m = mapping_of(oid)?;
    if !m.pulls() {
        return Err(SyncError::Invalid(format!(
            "table {} is synced push-only (direction => 'push'); a backfill pulls from Salesforce",
            m.table
        )));
    }
    let v = backfill::schedule(m.id)?;
    if !crate::registry::available() {
        notice!("sfsync: the worker is not running (add sfsync to shared_preload_libraries); the backfill waits for it");
    }
    Ok(v)
}

/// `into` as [schema, name], each unquoted.
fn split_name(into: &str) -> Result<(Option<String>, String)> {
    let parts = Spi::get_one_with_args::<Vec<String>>("SELECT parse_ident($1)", &[into.into()])
        .map_err(|_| SyncError::Invalid(format!("into: \"{into}\" is not a valid table name")))?
        .unwrap_or_default();
    match parts.as_slice() {
        [name] => Ok((None, name.clone())),
        [schema, name] => Ok((Some(schema.clone()), name.clone())),
        _ => Err(SyncError::Invalid(format!("into: \"{into}\" is not a valid table name (expected name or schema.name)"))),
    }
}

fn make_mirror(sobject: &str, into: &str, connection: &str, wanted: Option<Vec<String>>) -> Result<Value> {
    let (schema, name) = split_name(into)?;
    let qualified = match &schema {
        Some(s) => format!("{}.{}", quote_identifier(s), quote_identifier(&name)),
        None => quote_identifier(&name),
    };
    if let Some(s) = &schema {
        let exists = Spi::get_one_with_args::<bool>("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", &[s.as_str().into()])?;
        if exists != Some(true) {
            return Err(SyncError::NotFound(format!("into: schema \"{s}\" does not exist")));
        }
    }
    if Spi::get_one_with_args::<bool>("SELECT to_regclass($1) IS NOT NULL", &[qualified.as_str().into()])? == Some(true) {
        return Err(SyncError::Invalid(format!(
            "into: table {qualified} already exists; mirror creates a new table (use sfsync.sync_table to sync an existing one)"
        )));
    }
    // The connection's secrets are the extension owner's; the table is the caller's.
    let describe = privilege::as_extension_owner(|| {
        let client = clients::client(Ctx::Session, connection)?;
        client.describe(sobject).map_err(|e| match &e {
            salesforce::Error::Api { status: 404, .. } => {
                SyncError::NotFound(format!("Salesforce object \"{sobject}\" does not exist (connection \"{connection}\")"))
            }
            _ => SyncError::from(e),
        })
    })?;
    let external_id = "Postgres_Id__c";
    let fields: Vec<MirrorField> = describe
        .fields
        .iter()
        .map(|f| MirrorField { name: f.name.clone(), sf_type: f.r#type.clone(), precision: f.precision, scale: f.scale })
        .collect();
    let cols = mirror::plan(&fields, wanted.as_deref(), external_id).map_err(SyncError::Invalid)?;
    if cols.is_empty() {
        return Err(SyncError::Invalid(format!("{} has no field to mirror", describe.name)));
    }
    let mut ddl = vec!["id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY".to_string(), "sfid varchar(18) UNIQUE".to_string()];
    ddl.extend(cols.iter().map(|c| format!("{} {}", quote_identifier(&c.column), c.ddl_type)));
    Spi::run(&format!("CREATE TABLE {qualified} (\n    {}\n)", ddl.join(",\n    ")))?;
    Spi::run(&format!(
        "COMMENT ON TABLE {qualified} IS {}",
        pgrx::spi::quote_literal(format!("Mirror of Salesforce {} made by sfsync.mirror", describe.name))
    ))?;
    let oid = Spi::get_one_with_args::<i64>("SELECT $1::regclass::oid::bigint", &[qualified.as_str().into()])?
        .ok_or_else(|| SyncError::Spi("created table not found".into()))? as u32;
    let map: Map<String, Value> = cols.iter().map(|c| (c.column.clone(), Value::String(c.field.clone()))).collect();
    let options = Options {
        sobject: &describe.name,
        connection,
        fields: Some(Value::Object(map.clone())),
        options: MappingOptions { direction: Direction::Pull, ..MappingOptions::default() },
        filter: None,
        external_id: Some(external_id),
        matching: None,
    };
    let all = wanted.is_none();
    let synced = privilege::as_extension_owner(|| {
        let synced = mapping::sync(oid, options)?;
        // A mirror of every field follows fields added in Salesforce (sync::sf_schema).
        spi_util::exec("UPDATE sfsync.mappings SET mirror_all = $2 WHERE tbl = $1::bigint::oid", &[i64::from(oid).into(), all.into()])?;
        Ok::<Value, SyncError>(synced)
    })?;
    let types: Map<String, Value> = cols.iter().map(|c| (c.column.clone(), Value::String(c.ddl_type.clone()))).collect();
    Ok(json!({
        "table": synced["table"],
        "sobject": describe.name,
        "direction": Direction::Pull.as_str(),
        "columns": map,
        "types": types,
        "backfill": synced["backfill"],
    }))
}

fn check(oid: u32, sample: i32) -> Result<Value> {
    if sample < 0 {
        return Err(SyncError::Invalid(format!("sample: {sample} is negative")));
    }
    let m = mapping_of(oid)?;
    let all = sync::load_mappings(None)?;
    let client = clients::client(Ctx::Session, &m.connection)?;
    let sf_count = client.query(&plan::count_query(&m.sobject, m.filter.as_deref()).map_err(SyncError::Invalid)?)?.total_size as i64;
    let counts = spi_util::json(&format!("SELECT jsonb_build_object('with_sfid', count(sfid), 'rows', count(*)) FROM {}", m.table), &[])?
        .unwrap_or_default();
    let pg_count = counts["with_sfid"].as_i64().unwrap_or(0);
    let pg_rows = counts["rows"].as_i64().unwrap_or(0);
    let pk = m.pk_ident();
    let rows = spi_util::json(
        &format!(
            "SELECT COALESCE(jsonb_agg(to_jsonb(t) || jsonb_build_object('__key', t.{pk}::text)), '[]')
             FROM (SELECT * FROM {} WHERE sfid IS NOT NULL ORDER BY random() LIMIT $1) t",
            m.table
        ),
        &[i64::from(sample).into()],
    )?
    .unwrap_or_default();
    let rows: Vec<Map<String, Value>> = serde_json::from_value(rows).map_err(|e| SyncError::Spi(e.to_string()))?;
    // Salesforce's side of the sampled records, 200 Ids a query, converted as the pull does.
    let fields: Vec<&str> = m.columns.iter().map(|c| c.field.as_str()).filter(|f| !f.eq_ignore_ascii_case("Id")).collect();
    let mut remote: Map<String, Value> = Map::new();
    let ids: Vec<&str> = rows.iter().filter_map(|r| r.get("sfid").and_then(Value::as_str)).collect();
    if let Some(bad) = std::iter::once(m.sobject.as_str()).chain(fields.iter().copied()).find(|n| !salesforce::soql::is_valid_identifier(n))
    {
        return Err(SyncError::Invalid(format!("invalid Salesforce name {bad:?} in the mapping of {}", m.table)));
    }
    for chunk in ids.chunks(200) {
        let mut select = vec!["Id"];
        select.extend(fields.iter().copied());
        let q = format!("SELECT {} FROM {} WHERE Id IN {}", select.join(", "), m.sobject, salesforce::soql::in_list(chunk));
        let mut converted = Vec::new();
        for rec in client.query_iter(&q, false) {
            let rec = rec?;
            let mut row = Map::new();
            row.insert("sfid".into(), rec.get("Id").cloned().unwrap_or(Value::Null));
            for c in &m.columns {
                row.insert(c.column.clone(), rec.get(&c.field).map(|v| convert::from_sf(c, v)).unwrap_or(Value::Null));
            }
            converted.push(Value::Object(row));
        }
        sync::apply::records::translate_parents(&m, &all, &mut converted)?;
        for r in converted {
            if let Some(id) = r.get("sfid").and_then(Value::as_str) {
                remote.insert(id.to_string(), r.clone());
            }
        }
    }
    clients::flush_stats()?;
    let parent_cols: Vec<&str> = m.parents.iter().map(|p| p.column.as_str()).collect();
    let mut mismatches = Vec::new();
    let mut mismatch_count = 0usize;
    let mut missing = Vec::new();
    let mut missing_count = 0usize;
    let mut matching = 0usize;
    for r in &rows {
        let key = r.get("__key").cloned().unwrap_or(Value::Null);
        let sfid = r.get("sfid").and_then(Value::as_str).unwrap_or_default();
        let Some(sf) = remote.get(sfid) else {
            missing_count += 1;
            if missing.len() < REPORT_CAP {
                missing.push(json!({"key": key, "sfid": sfid}));
            }
            continue;
        };
        let mut ok = true;
        for c in &m.columns {
            let pv = r.get(&c.column).unwrap_or(&Value::Null);
            let sv = sf.get(&c.column).unwrap_or(&Value::Null);
            let same = if parent_cols.contains(&c.column.as_str()) || c.sf_type == "base64" {
                // Lookups hold the parent's key (text on one side); base64 is not compared.
                c.sf_type == "base64" || plain(pv) == plain(sv)
            } else {
                compare::same(c, pv, sv)
            };
            if !same {
                ok = false;
                mismatch_count += 1;
                if mismatches.len() < REPORT_CAP {
                    mismatches
                        .push(json!({"key": key, "sfid": sfid, "column": c.column, "field": c.field, "postgres": pv, "salesforce": sv}));
                }
            }
        }
        if ok {
            matching += 1;
        }
    }
    Ok(json!({
        "table": m.table,
        "salesforce_count": sf_count,
        "postgres_count": pg_count,
        "postgres_rows_without_sfid": pg_rows - pg_count,
        "sampled": rows.len(),
        "matching": matching,
        "mismatch_count": mismatch_count,
        "mismatches": mismatches,
        "missing_in_salesforce_count": missing_count,
        "missing_in_salesforce": missing,
        "ok": sf_count == pg_count && mismatch_count == 0 && missing_count == 0,
    }))
}

fn plain(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    /// A pulling mapping of `t` as sync_table leaves it, without calling Salesforce.
    fn synced(direction: &str) {
        Spi::run(&format!(
            "CREATE TABLE t (id bigserial PRIMARY KEY, name text, sfid varchar(18) UNIQUE);
             INSERT INTO sfsync.connections (name, login_url, client_id, auth_flow) VALUES ('default', 'http://127.0.0.1:1', 'x', 'client_credentials');
             INSERT INTO sfsync.mappings (tbl, sobject, connection, pk_column, pk_type, external_id, columns, direction)
             VALUES ('t', 'Account', 'default', 'id', 'bigint', 'Postgres_Id__c',
                     '[{{\"column\":\"name\",\"field\":\"Name\",\"sf_type\":\"string\",\"pg_type\":\"text\",\"createable\":true,\"updateable\":true}}]', '{direction}');
             INSERT INTO sfsync.sync_state (mapping_id) SELECT id FROM sfsync.mappings;"
        ))
        .unwrap();
    }

    #[pg_test(
        error = "into: table public.existing already exists; mirror creates a new table (use sfsync.sync_table to sync an existing one)"
    )]
    fn mirror_refuses_an_existing_table() {
        Spi::run("CREATE TABLE existing (id int)").unwrap();
        Spi::run("SELECT sfsync.mirror('Account', 'public.existing')").unwrap();
    }

    #[pg_test(error = "into: \"a.b.c\" is not a valid table name (expected name or schema.name)")]
    fn mirror_refuses_a_three_part_name() {
        Spi::run("SELECT sfsync.mirror('Account', 'a.b.c')").unwrap();
    }

    #[pg_test(error = "into: schema \"nosuch\" does not exist")]
    fn mirror_names_a_missing_schema() {
        Spi::run("SELECT sfsync.mirror('Account', 'nosuch.accounts')").unwrap();
    }

    #[pg_test(error = "table public.t is not synced (see sfsync.sync_table or sfsync.mirror)")]
    fn backfill_of_an_unsynced_table_is_refused() {
        Spi::run("CREATE TABLE t (id int PRIMARY KEY)").unwrap();
        Spi::run("SELECT sfsync.backfill('t')").unwrap();
    }

    #[pg_test(error = "table public.t is synced push-only (direction => 'push'); a backfill pulls from Salesforce")]
    fn backfill_of_a_push_only_table_is_refused() {
        synced("push");
        Spi::run("SELECT sfsync.backfill('t')").unwrap();
    }

    #[pg_test(error = "sample: -1 is negative")]
    fn verify_refuses_a_negative_sample() {
        synced("pull");
        Spi::run("SELECT sfsync.verify('t', sample => -1)").unwrap();
    }

    #[pg_test]
    fn backfill_is_scheduled_once_and_shown_in_progress() {
        synced("pull");
        let state = Spi::get_one::<String>("SELECT sfsync.backfill('t')->>'state'").unwrap();
        assert_eq!(state.as_deref(), Some("pending"));
        // A running backfill is not restarted by asking again.
        Spi::run("UPDATE sfsync.backfills SET state = 'running', rows_done = 42").unwrap();
        let again = Spi::get_one::<String>("SELECT sfsync.backfill('t')->>'state'").unwrap();
        assert_eq!(again.as_deref(), Some("running"));
        assert_eq!(
            Spi::get_one::<i64>("SELECT rows_done FROM sfsync.backfill_progress WHERE \"table\" = 't'::regclass").unwrap(),
            Some(42)
        );
        // A finished one is scheduled anew, from zero.
        Spi::run("UPDATE sfsync.backfills SET state = 'done'").unwrap();
        Spi::run("SELECT sfsync.backfill('t')").unwrap();
        let row = Spi::get_two::<String, i64>("SELECT state, rows_done FROM sfsync.backfill_progress").unwrap();
        assert_eq!(row, (Some("pending".into()), Some(0)));
    }
}
