//! sfsync.sync_query / sfsync.refresh / sfsync.unsync_query: a query's result pushed to
//! Salesforce (sync/query).

use crate::error::{OrRaise, Result, SyncError};
use crate::plan::fields;
use crate::plan::options::OnRemove;
use crate::plan::query::Target;
use crate::privilege;
use crate::spi_util;
use crate::sync::query as synced;
use crate::sync::{clients, Ctx};
use pgrx::datum::{DatumWithOid, Interval};
use pgrx::prelude::*;
use pgrx::JsonB;
use serde_json::{json, Value};

/// Registers (or redefines) a synced query. The query is checked now, as the caller, who
/// becomes its owner: every refresh runs it as that role.
#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, parallel_unsafe)]
fn sync_query(
    name: &str,
    query: &str,
    sobject: &str,
    connection: default!(&str, "'default'"),
    key: default!(&str, "'id'"),
    key_field: default!(&str, "'Id'"),
    every: default!(Option<Interval>, "NULL"),
    on_remove: default!(&str, "'clear'"),
    sources: default!(Option<Vec<pgrx::pg_sys::Oid>>, "NULL"),
) -> JsonB {
    let on_remove = OnRemove::parse(on_remove).map_err(SyncError::Invalid).or_raise();
    if name.trim().is_empty() {
        SyncError::Invalid("name: a synced query needs a name".into()).raise();
    }
    let me = privilege::current_user();
    // Redefining a query makes it run as the caller: its owner's (or an admin's) to do.
    if let Some(owner) = privilege::as_extension_owner(|| synced::owner_of(name)).or_raise() {
        require_owner(name, owner, "sfsync.sync_query").or_raise();
    }
    let columns = result_columns(query).or_raise();
    // A trigger on each source is created for the caller: theirs to create (checked as them).
    let mut sources = sources.unwrap_or_default();
    sources.sort_by_key(|o| o.to_u32());
    sources.dedup();
    for t in &sources {
        synced::sources::check(*t).or_raise();
    }
    let spec = Spec { name, query, sobject, connection, key, key_field, every, on_remove, owner: me.to_u32(), sources: &sources };
    JsonB(privilege::as_extension_owner(|| register(spec, &columns)).or_raise())
}

/// Refreshes a synced query now, in this transaction: runs it, sends what changed, and
/// returns {rows, sent, unchanged, removed, failed, null_keys}.
#[pg_extern(volatile, parallel_unsafe)]
fn refresh(name: &str) -> JsonB {
    let q = checked(name, "sfsync.refresh").or_raise();
    JsonB(
        privilege::as_extension_owner(|| {
            crate::sync::identity::require_original()?;
            crate::sync::hold_pass_lock()?;
            let s = synced::refresh(Ctx::Session, &q)?;
            Ok::<_, SyncError>(serde_json::to_value(s).unwrap_or_default())
        })
        .or_raise(),
    )
}

/// Removes a synced query with its stored result and errors; Salesforce keeps its records.
#[pg_extern(volatile, parallel_unsafe)]
fn unsync_query(name: &str) -> bool {
    let q = checked(name, "sfsync.unsync_query").or_raise();
    privilege::as_extension_owner(|| {
        let sources = synced::sources::listed(q.id)?;
        let removed = spi_util::exec("DELETE FROM sfsync.synced_queries WHERE id = $1", &[q.id.into()])?;
        synced::sources::drop_unused(&sources)?;
        Ok::<_, SyncError>(removed > 0)
    })
    .or_raise()
}

/// The query named, for a caller who owns it (or is an admin).
fn checked(name: &str, function: &str) -> Result<synced::QueryDef> {
    let q = privilege::as_extension_owner(|| synced::load(Some(name), false))?
        .pop()
        .ok_or_else(|| SyncError::NotFound(format!("synced query \"{name}\" does not exist (see sfsync.queries)")))?;
    require_owner(name, q.owner, function)?;
    Ok(q)
}

fn require_owner(name: &str, owner: u32, function: &str) -> Result<()> {
    let me = privilege::current_user();
    let owner = pgrx::pg_sys::Oid::from(owner);
    if privilege::is_admin(me) || privilege::acts_as(me, owner) {
        return Ok(());
    }
    Err(SyncError::Denied(format!(
        "permission denied: {function} on synced query \"{name}\" needs the privileges of its owner ({}) or membership in {}",
        privilege::role_name(owner),
        privilege::ADMIN_ROLE
    )))
}

/// The query's result columns (name, type), read as the caller by running it with LIMIT 0.
/// Prepared: one SELECT only.
fn result_columns(query: &str) -> Result<Vec<(String, String)>> {
    // One row of NULLs, whatever the query returns: pgrx reads a result's columns from a row.
    let sql = format!("SELECT q.* FROM (SELECT) one LEFT JOIN (SELECT * FROM ({query}\n) q LIMIT 0) q ON true");
    let cols = spi_util::subtransaction(|| {
        Ok(Spi::connect(|c| {
            let stmt = c.prepare(sql.as_str(), &[])?;
            let t = c.select(&stmt, None, &[])?.first();
            let mut out = Vec::new();
            for i in 1..=t.columns()? {
                out.push((t.column_name(i)?, t.column_type_oid(i)?.value()));
            }
            Ok::<_, pgrx::spi::Error>(out)
        })?)
    })
    .map_err(|f| {
        let msg = format!("query: {} (it must be one SELECT that the caller, its owner, can run)", f.message);
        if f.code == "INSUFFICIENT_PRIVILEGE" {
            SyncError::Denied(msg)
        } else {
            SyncError::Invalid(msg)
        }
    })?;
    let mut out = Vec::with_capacity(cols.len());
    for (name, oid) in cols {
        let ty = Spi::get_one_with_args::<String>("SELECT pg_catalog.format_type($1, NULL)", &[oid.into()])?.unwrap_or_default();
        out.push((name, ty));
    }
    Ok(out)
}

struct Spec<'a> {
    name: &'a str,
    query: &'a str,
    sobject: &'a str,
    connection: &'a str,
    key: &'a str,
    key_field: &'a str,
    every: Option<Interval>,
    on_remove: OnRemove,
    owner: u32,
    sources: &'a [pgrx::pg_sys::Oid],
}

/// Checks the columns against the object's describe and stores the query (as the
/// extension's owner).
fn register(s: Spec, columns: &[(String, String)]) -> Result<Value> {
    crate::sync::identity::require_original()?;
    let names: Vec<&str> = columns.iter().map(|(c, _)| c.as_str()).collect();
    if !names.contains(&s.key) {
        return Err(SyncError::Invalid(format!(
            "key: the query returns no column \"{}\" (its columns: {}); pass key => the column holding the record's key",
            s.key,
            names.join(", ")
        )));
    }
    let client = clients::client(Ctx::Session, s.connection)?;
    let describe = client.describe(s.sobject).map_err(|e| match &e {
        salesforce::Error::Api { status: 404, .. } => {
            SyncError::NotFound(format!("Salesforce object \"{}\" does not exist (connection \"{}\")", s.sobject, s.connection))
        }
        _ => SyncError::from(e),
    })?;
    let key_field = match Target::parse(s.key_field) {
        Target::ById => "Id".to_string(),
        Target::Upsert(f) => {
            let field = describe.fields.iter().find(|d| d.name.eq_ignore_ascii_case(&f)).ok_or_else(|| {
                SyncError::Invalid(format!("key_field: {} has no field \"{f}\"; pass 'Id' or an External ID field", describe.name))
            })?;
            if !field.external_id {
                return Err(SyncError::Invalid(format!(
                    "key_field: {}.{} is not an External ID field; pass 'Id' (the key holds Salesforce Ids) or an External ID field",
                    describe.name, field.name
                )));
            }
            field.name.clone()
        }
    };
    let infos = fields::field_infos(&describe);
    let (mapped, unmatched) = fields::resolve(columns, s.key, None, &infos, &key_field).map_err(SyncError::Invalid)?;
    if !unmatched.is_empty() {
        return Err(SyncError::Invalid(format!(
            "query: column(s) {} match no writable field of {}; name each column after its field (e.g. AS \"NumberOfEmployees\")",
            unmatched.join(", "),
            describe.name
        )));
    }
    if mapped.is_empty() && s.on_remove == OnRemove::Clear && matches!(Target::parse(&key_field), Target::ById) {
        return Err(SyncError::Invalid(format!(
            "query: no column besides the key \"{}\"; nothing would be written to {}",
            s.key, describe.name
        )));
    }
    if let Some(c) = mapped.iter().find(|c| c.calculated || (!c.createable && !c.updateable)) {
        return Err(SyncError::Invalid(format!(
            "query: column \"{}\" maps to {}.{}, which is read-only",
            c.column, describe.name, c.field
        )));
    }
    if let Some(every) = &s.every {
        let positive = Spi::get_one_with_args::<bool>("SELECT $1::interval > interval '0'", &[(*every).into()])?.unwrap_or(false);
        if !positive {
            return Err(SyncError::Invalid("every: the interval must be positive (or NULL for refresh() only)".into()));
        }
    }
    let columns_json = serde_json::to_value(&mapped).map_err(|e| SyncError::Spi(e.to_string()))?;
    let args: Vec<DatumWithOid> = vec![
        s.name.into(),
        s.query.into(),
        describe.name.clone().into(),
        s.connection.into(),
        i64::from(s.owner).into(),
        s.key.into(),
        key_field.clone().into(),
        spi_util::jsonb(columns_json),
        s.every.into(),
        s.on_remove.as_str().into(),
    ];
    // A new object, connection or key makes the stored result meaningless: it goes, and the
    // next refresh sends every row.
    let (id, created) = Spi::get_two_with_args::<i32, bool>(
        "WITH old AS (SELECT id, sobject, connection, key_column, key_field FROM sfsync.synced_queries WHERE name = $1),
         upserted AS (
             INSERT INTO sfsync.synced_queries AS q (name, query, sobject, connection, owner, key_column, key_field, columns, every, on_remove)
             VALUES ($1, $2, $3, $4, $5::bigint::oid, $6, $7, $8, $9, $10)
             ON CONFLICT (name) DO UPDATE SET query = EXCLUDED.query, sobject = EXCLUDED.sobject, connection = EXCLUDED.connection,
                 owner = EXCLUDED.owner, key_column = EXCLUDED.key_column, key_field = EXCLUDED.key_field, columns = EXCLUDED.columns,
                 every = EXCLUDED.every, on_remove = EXCLUDED.on_remove, next_refresh_at = NULL
             RETURNING id, (xmax = 0) AS created
         ), reset AS (
             DELETE FROM sfsync.query_rows r USING old o
             WHERE r.query_id = o.id AND (o.sobject, o.connection, o.key_column, o.key_field) IS DISTINCT FROM ($3, $4, $6, $7)
         )
         SELECT id, created FROM upserted",
        &args,
    )?;
    let id = id.ok_or_else(|| SyncError::Spi("sync_query: the definition was not stored".into()))?;
    synced::sources::set(id, s.sources)?;
    if s.every.is_some() {
        Spi::run("SELECT sfsync.wake_at_commit()")?;
    }
    Ok(json!({
        "name": s.name,
        "sobject": describe.name,
        "connection": s.connection,
        "key": s.key,
        "key_field": key_field,
        "mapped": mapped.iter().map(|c| (c.column.clone(), Value::String(c.field.clone()))).collect::<serde_json::Map<_, _>>(),
        "on_remove": s.on_remove.as_str(),
        "created": created.unwrap_or(false),
        "sources": s.sources.iter().map(|t| privilege::table_name(*t)).collect::<Vec<_>>(),
    }))
}
