//! sfsync.sync_table / sfsync.unsync_table: opting tables in and out.

use crate::error::{OrRaise, Result, SyncError};
use crate::plan::compat;
use crate::plan::fields;
use crate::plan::filter;
use crate::plan::matching::{self, MatchKey};
use crate::plan::options::{Capture, Mode, Options as MappingOptions};
use crate::privilege;
use crate::spi_util;
use crate::sync::source::backfill;
use crate::sync::{clients, Ctx};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::spi::{quote_identifier, quote_literal};
use pgrx::{JsonB, PgRelation};
use serde::Deserialize;
use serde_json::{json, Value};

/// `match` is a Rust keyword, so the CREATE FUNCTION is written here with the SQL name;
/// the arguments are passed by position.
#[allow(clippy::too_many_arguments)]
#[pg_extern(
    volatile,
    parallel_unsafe,
    sql = r#"
CREATE FUNCTION sfsync."sync_table"(
	"tbl" regclass,
	"sobject" TEXT,
	"connection" TEXT DEFAULT 'default',
	"fields" jsonb DEFAULT NULL,
	"direction" TEXT DEFAULT 'bidirectional',
	"filter" TEXT DEFAULT NULL,
	"conflict" TEXT DEFAULT 'salesforce_wins',
	"on_delete" TEXT DEFAULT 'propagate',
	"mode" TEXT DEFAULT 'async',
	"external_id" TEXT DEFAULT NULL,
	"match" TEXT DEFAULT NULL
) RETURNS jsonb
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'sync_table_wrapper';
"#
)]
fn sync_table(
    tbl: PgRelation,
    sobject: &str,
    connection: default!(&str, "'default'"),
    fields: default!(Option<JsonB>, "NULL"),
    direction: default!(&str, "'bidirectional'"),
    filter: default!(Option<&str>, "NULL"),
    conflict: default!(&str, "'salesforce_wins'"),
    on_delete: default!(&str, "'propagate'"),
    mode: default!(&str, "'async'"),
    external_id: default!(Option<&str>, "NULL"),
    matching: default!(Option<&str>, "NULL"),
) -> JsonB {
    let oid = release(tbl);
    privilege::require_owner(oid.into(), "sfsync.sync_table").or_raise();
    let options = MappingOptions::parse(direction, mode, conflict, on_delete).map_err(SyncError::Invalid).or_raise();
    let o = Options { sobject, connection, fields: fields.map(|j| j.0), options, filter, external_id, matching };
    // The connection's secrets, the catalog, the sfid column and the triggers (whose
    // functions PUBLIC may not use) are the extension owner's to touch.
    JsonB(privilege::as_extension_owner(|| sync(oid, o)).or_raise())
}

/// Opts the table out: removes its triggers, mapping, outbox entries and sync state.
/// The table, its data and its sfid column stay.
#[pg_extern(volatile, parallel_unsafe)]
fn unsync_table(tbl: PgRelation) -> bool {
    let oid = release(tbl);
    privilege::require_table(oid.into(), "sfsync.unsync_table").or_raise();
    privilege::as_extension_owner(|| unsync(oid)).or_raise()
}

/// The relation's oid, closing our reference to it so ALTER TABLE is allowed afterwards.
fn release(tbl: PgRelation) -> u32 {
    let oid = tbl.oid().to_u32();
    drop(tbl);
    oid
}

pub(crate) struct Options<'a> {
    pub sobject: &'a str,
    pub connection: &'a str,
    pub fields: Option<Value>,
    pub options: MappingOptions,
    pub filter: Option<&'a str>,
    pub external_id: Option<&'a str>,
    /// `match`: the natural key to link existing records by (`plan::matching::parse`).
    pub matching: Option<&'a str>,
}

#[derive(Deserialize)]
struct TableInfo {
    qualified: String,
    kind: String,
    /// `t` for a temporary table.
    persistence: String,
    pk: Option<Vec<String>>,
    pk_type: Option<String>,
    pk_has_default: Option<bool>,
    columns: Vec<(String, String)>,
    sfid_type: Option<String>,
    sfid_unique: bool,
}

fn table_info(oid: u32) -> Result<TableInfo> {
    let args: Vec<DatumWithOid> = vec![i64::from(oid).into()];
    let v = spi_util::json(
        "SELECT jsonb_build_object(
             'qualified', format('%I.%I', n.nspname, c.relname),
             'kind', c.relkind,
             'persistence', c.relpersistence,
             'pk', (SELECT jsonb_agg(a.attname ORDER BY k.ord)
                    FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                    WHERE i.indrelid = c.oid AND i.indisprimary),
             'pk_type', (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_index i
                         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                         WHERE i.indrelid = c.oid AND i.indisprimary),
             'pk_has_default', (SELECT a.atthasdef OR a.attidentity <> '' FROM pg_index i
                         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                         WHERE i.indrelid = c.oid AND i.indisprimary),
             'columns', (SELECT COALESCE(jsonb_agg(jsonb_build_array(a.attname, format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum), '[]')
                         FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
             'sfid_type', (SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
                           WHERE a.attrelid = c.oid AND a.attname = 'sfid' AND NOT a.attisdropped),
             'sfid_unique', EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                                    WHERE i.indrelid = c.oid AND i.indisunique AND i.indnkeyatts = 1 AND a.attname = 'sfid'
                                      AND i.indpred IS NULL))
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1::bigint::oid",
        &args,
    )?
    .ok_or_else(|| SyncError::NotFound(format!("table with oid {oid} does not exist")))?;
    serde_json::from_value(v).map_err(|e| SyncError::Spi(format!("reading table definition: {e}")))
}

/// Why a relation of kind `relkind` cannot be synced; None for a plain table.
fn refusal(relkind: &str) -> Option<&'static str> {
    Some(match relkind {
        "r" => return None,
        // PostgreSQL allows a unique index on a partitioned table only over its partition key,
        // and the pull links records through a unique sfid.
        "p" => "is a partitioned table; sfsync needs a unique sfid column, which a partitioned table cannot have unless it is partitioned by sfid: sync each partition, or a plain table",
        "v" => "is a view; sfsync syncs tables only (a view has no primary key nor rows of its own to capture)",
        "m" => "is a materialized view; sfsync syncs tables only (its rows are rewritten by REFRESH, not changed row by row)",
        "f" => "is a foreign table; sfsync syncs local tables only (its rows live on another server, where sfsync cannot capture their changes)",
        _ => "is not a table; only tables can be synced",
    })
}

/// Syncs table `oid`; the caller's right to was checked, and this runs as the extension's owner.
pub(crate) fn sync(oid: u32, o: Options) -> Result<Value> {
    o.options.check().map_err(SyncError::Invalid)?;
    let opts = o.options;
    // The filter's shape is checked before anything reaches Salesforce (its fields, below).
    let filter = o.filter.filter(|f| !f.trim().is_empty());
    if let Some(f) = filter {
        filter::check(f, None).map_err(SyncError::Invalid)?;
    }
    let explicit = match &o.fields {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(_) => return Err(SyncError::Invalid("fields: expected a JSON object mapping column names to Salesforce field names".into())),
    };
    let external_id = o.external_id.unwrap_or("Postgres_Id__c");
    let match_spec = match o.matching.filter(|s| !s.trim().is_empty()) {
        Some(s) => Some(matching::parse(s).map_err(SyncError::Invalid)?),
        None => None,
    };
    if match_spec.is_some() && opts.shadow() {
        // Linking writes the external ID onto the matched records: a write a shadow run
        // must not make.
        return Err(SyncError::Invalid(
            "match => ... links existing records by writing their external ID, which a shadow run must not do; \
             use match without mode => 'shadow', or a shadow run without match"
                .into(),
        ));
    }

    // A copy of another database must not start writing into the original's records.
    crate::sync::identity::require_original()?;
    let t = table_info(oid)?;
    if let Some(why) = refusal(&t.kind) {
        return Err(SyncError::Invalid(format!("{} {why}", t.qualified)));
    }
    if t.persistence == "t" {
        // The worker runs in its own session: it can never see this session's temporary table.
        return Err(SyncError::Invalid(format!(
            "{} is a temporary table; sfsync syncs permanent tables only (the worker cannot see another session's temporary tables)",
            t.qualified
        )));
    }
    let pk = match t.pk.as_deref() {
        Some([one]) => one.clone(),
        Some(many) => {
            return Err(SyncError::Invalid(format!(
                "table {} has a composite primary key ({}); sfsync needs a single-column primary key",
                t.qualified,
                many.join(", ")
            )))
        }
        None => {
            return Err(SyncError::Invalid(format!("table {} has no primary key; sfsync needs a single-column primary key", t.qualified)))
        }
    };
    if let Some(ty) = &t.sfid_type {
        if !(ty.starts_with("character varying") || ty == "text" || ty.starts_with("character(")) {
            return Err(SyncError::Invalid(format!(
                "table {} has a column \"sfid\" of type {ty}; sfsync needs it to hold Salesforce Ids (varchar(18))",
                t.qualified
            )));
        }
    }

    // Salesforce side: the connection logs in, the object and fields exist.
    let client = clients::client(Ctx::Session, o.connection)?;
    let describe = client.describe(o.sobject).map_err(|e| match &e {
        salesforce::Error::Api { status: 404, .. } => {
            SyncError::NotFound(format!("Salesforce object \"{}\" does not exist (connection \"{}\")", o.sobject, o.connection))
        }
        _ => SyncError::from(e),
    })?;
    let ext = describe.fields.iter().find(|f| f.name.eq_ignore_ascii_case(external_id)).ok_or_else(|| {
        SyncError::Invalid(format!(
            "external_id: {} has no field \"{external_id}\"; create an External ID text field for the Postgres key",
            describe.name
        ))
    })?;
    if !ext.external_id {
        return Err(SyncError::Invalid(format!("external_id: {}.{} is not marked External ID in Salesforce", describe.name, ext.name)));
    }
    let infos = fields::field_infos(&describe);
    let (columns, unmatched) = fields::resolve(&t.columns, &pk, explicit.as_ref(), &infos, &ext.name).map_err(SyncError::Invalid)?;
    if opts.direction.pulls() {
        if let Some(e) = columns.iter().find_map(|c| compat::pull_refusal(&c.column, &c.field, &c.sf_type)) {
            return Err(SyncError::Invalid(e));
        }
    }
    let match_keys = match &match_spec {
        Some(spec) => resolve_match(spec, &columns, &t.qualified)?,
        None => Vec::new(),
    };
    if columns.is_empty() {
        return Err(SyncError::Invalid(format!(
            "no column of {} maps to a field of {}; pass fields => '{{\"column\": \"Field\"}}'",
            t.qualified, describe.name
        )));
    }
    if let Some(f) = filter {
        let names: Vec<&str> = describe.fields.iter().map(|f| f.name.as_str()).collect();
        let relationships: Vec<&str> = describe.fields.iter().filter_map(|f| f.relationship_name.as_deref()).collect();
        filter::check(f, Some(&filter::Known { object: &describe.name, fields: &names, relationships: &relationships }))
            .map_err(SyncError::Invalid)?;
        // Let Salesforce judge the condition now rather than on the first poll.
        let q = format!("SELECT Id FROM {} WHERE ({f}) LIMIT 1", describe.name);
        client.query(&q).map_err(|e| SyncError::Invalid(format!("filter: Salesforce rejected it: {e}")))?;
    }
    // The one line a user must act on (a column they meant to sync is left out); the rest of
    // what sync_table has to say is in its return value, and at DEBUG1.
    if !unmatched.is_empty() {
        notice!("sfsync: columns of {} not synced (no matching field on {}): {}", t.qualified, describe.name, unmatched.join(", "));
    }
    let mut notes = Vec::new();
    if opts.direction.pulls() && t.pk_has_default != Some(true) {
        notes.push(format!(
            "{}.{} has no default; records created in Salesforce can only be pulled if their {} holds sfsync.external_key('{}', <key>)",
            t.qualified,
            pk,
            ext.name,
            t.qualified.replace('\'', "''")
        ));
    }

    // Postgres side.
    if t.sfid_type.is_none() {
        Spi::run(&format!("ALTER TABLE {} ADD COLUMN sfid varchar(18) UNIQUE", t.qualified))?;
    } else if !t.sfid_unique {
        Spi::run(&format!("ALTER TABLE {} ADD UNIQUE (sfid)", t.qualified))?;
    }
    // A different filter changes which records belong here: re-pull everything, and check
    // every linked row against the new filter (see sync/source/filter.rs).
    let old = spi_util::json(
        "SELECT jsonb_build_array(filter, mode) FROM sfsync.mappings WHERE tbl = $1::bigint::oid::regclass",
        &[i64::from(oid).into()],
    )?;
    let old_filter = old.as_ref().map(|v| v[0].as_str().map(String::from));
    let old_mode = old.as_ref().and_then(|v| v[1].as_str().map(String::from));
    if old_mode.as_deref() == Some(Mode::Shadow.as_str()) && !opts.shadow() {
        // Leaving shadow queues what the run logged: go_live does that, sync_table would not.
        return Err(SyncError::Invalid(format!(
            "{} is in shadow mode; use sfsync.go_live('{}', mode => '{}') to make it live",
            t.qualified,
            t.qualified.replace('\'', "''"),
            opts.mode
        )));
    }
    let refilter = matches!(&old_filter, Some(old) if old.as_deref().filter(|f| !f.trim().is_empty()) != filter);
    // Columns mapped before: those newly mapped are backfilled alone (below).
    let old_columns: Vec<String> = spi_util::json(
        "SELECT COALESCE(jsonb_agg(c->>'column'), '[]') FROM sfsync.mappings m, jsonb_array_elements(m.columns) c
         WHERE m.tbl = $1::bigint::oid::regclass",
        &[i64::from(oid).into()],
    )?
    .and_then(|v| serde_json::from_value(v).ok())
    .unwrap_or_default();
    let columns_json = serde_json::to_value(&columns).map_err(|e| SyncError::Spi(e.to_string()))?;
    let args: Vec<DatumWithOid> = vec![
        i64::from(oid).into(),
        describe.name.clone().into(),
        o.connection.into(),
        pk.clone().into(),
        t.pk_type.clone().into(),
        ext.name.clone().into(),
        spi_util::jsonb(columns_json),
        o.fields.clone().map(JsonB).into(),
        opts.direction.as_str().into(),
        filter.into(),
        opts.conflict.as_str().into(),
        opts.on_delete.as_str().into(),
        opts.mode.as_str().into(),
        super::identity::new_namespace(&t.qualified)?.into(),
        match_spec.as_ref().map(|_| JsonB(serde_json::to_value(&match_keys).unwrap_or_default())).into(),
    ];
    let (mapping_id, created) = Spi::get_two_with_args::<i32, bool>(
        "INSERT INTO sfsync.mappings AS m (tbl, sobject, connection, pk_column, pk_type, external_id, columns, fields,
                                           direction, filter, conflict, on_delete, mode, namespace, match_keys)
         VALUES ($1::bigint::oid::regclass, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (tbl) DO UPDATE SET sobject = EXCLUDED.sobject, connection = EXCLUDED.connection,
             pk_column = EXCLUDED.pk_column, pk_type = EXCLUDED.pk_type, external_id = EXCLUDED.external_id,
             columns = EXCLUDED.columns, fields = EXCLUDED.fields, direction = EXCLUDED.direction,
             filter = EXCLUDED.filter, conflict = EXCLUDED.conflict, on_delete = EXCLUDED.on_delete, mode = EXCLUDED.mode,
             match_keys = EXCLUDED.match_keys
         RETURNING id, (xmax = 0)",
        &args,
    )?;
    let mapping_id = mapping_id.ok_or_else(|| SyncError::Spi("mapping insert returned nothing".into()))?;
    let created = created.unwrap_or(false);
    spi_util::exec("INSERT INTO sfsync.sync_state (mapping_id) VALUES ($1) ON CONFLICT DO NOTHING", &[mapping_id.into()])?;
    if refilter {
        spi_util::exec(
            "UPDATE sfsync.sync_state SET hwm_modstamp = NULL, hwm_id = NULL, filter_hwm = NULL WHERE mapping_id = $1",
            &[mapping_id.into()],
        )?;
        notes.push(format!("the filter of {} changed; its rows are pulled again and those no longer matching are removed", t.qualified));
        Spi::run("SELECT sfsync.wake_at_commit()")?;
    }

    let cols: Vec<&str> = columns.iter().map(|c| c.column.as_str()).collect();
    install_triggers(&t.qualified, mapping_id, &pk, &cols, &opts)?;
    if !created && opts.shadow() && old_mode.as_deref() != Some(Mode::Shadow.as_str()) {
        // A live table put back into shadow: a new run, a new log (its queued changes wait
        // in the outbox until go_live).
        spi_util::exec("DELETE FROM sfsync.shadow_entries WHERE mapping_id = $1", &[mapping_id.into()])?;
    }

    // Rows already in the table reach Salesforce too (upserts, so re-running is harmless).
    let mut queued = 0;
    let mut linked = Value::Null;
    if created && !match_keys.is_empty() {
        // Rows that match an existing record are linked to it instead of creating another.
        let m =
            crate::sync::load_mappings(Some(oid))?.pop().ok_or_else(|| SyncError::Spi("the new mapping could not be read back".into()))?;
        linked = super::link::initial(&client, &m)?;
        queued = linked["created"].as_u64().unwrap_or(0) as usize;
        if queued > 0 || linked["matched"].as_u64().unwrap_or(0) > 0 {
            Spi::run("SELECT sfsync.wake_at_commit()")?;
        }
    } else if created && opts.direction.pushes() {
        let sql = format!(
            "INSERT INTO sfsync.outbox (mapping_id, op, pk) SELECT $1, 'insert', t.{pkq}::text FROM {tbl} t WHERE t.sfid IS NULL ORDER BY t.{pkq}",
            pkq = quote_identifier(&pk),
            tbl = t.qualified
        );
        queued = spi_util::exec(&sql, &[mapping_id.into()])?;
        if opts.shadow() {
            // Held for go_live (the push skips a shadow run's entries), and logged.
            crate::shadow::log_initial(mapping_id, &t.qualified, &pk, &cols)?;
        } else if queued > 0 {
            Spi::run("SELECT sfsync.wake_at_commit()")?;
        }
    }
    // The initial load of a new pulling mapping is a backfill (Bulk API for volume).
    // Run again with more fields: just the new columns, into the rows already here (a
    // changed filter re-pulls everything anyway). Fewer fields: those columns keep their data.
    let added: Vec<String> = columns.iter().filter(|c| !old_columns.contains(&c.column)).map(|c| c.column.clone()).collect();
    let backfill = if created && opts.direction.pulls() {
        backfill::schedule(mapping_id)?
    } else if opts.direction.pulls() && !refilter && !added.is_empty() {
        backfill::schedule_columns(mapping_id, &added)?
    } else {
        Value::Null
    };
    if !crate::registry::available() {
        // Nothing moves until the user acts: this one is a NOTICE.
        notice!("sfsync: the worker is not running (add sfsync to shared_preload_libraries); use sfsync.run_once() meanwhile");
    }
    for n in &notes {
        debug1!("sfsync: {n}");
    }
    Ok(json!({
        "table": t.qualified,
        "sobject": describe.name,
        "connection": o.connection,
        "direction": opts.direction.as_str(),
        "external_id": ext.name,
        "mapped": columns.iter().map(|c| (c.column.clone(), Value::String(c.field.clone()))).collect::<serde_json::Map<_, _>>(),
        "unmatched_columns": unmatched,
        "queued_for_push": queued,
        "match": linked,
        "backfill": backfill,
        "repull": refilter,
        "notes": notes,
    }))
}

/// The key columns of `match`: each part names a synced column's field (or a column and
/// the field it is synced to), so a row's key is among the values the push reads.
fn resolve_match(spec: &[(Option<String>, String)], columns: &[fields::ColumnMap], table: &str) -> Result<Vec<MatchKey>> {
    spec.iter()
        .map(|(col, field)| {
            columns
                .iter()
                .find(|c| c.field.eq_ignore_ascii_case(field) && col.as_ref().is_none_or(|col| &c.column == col))
                .map(|c| MatchKey { column: c.column.clone(), field: c.field.clone() })
                .ok_or_else(|| {
                    let what = col.as_ref().map(|c| format!("column \"{c}\" synced to {field}")).unwrap_or_else(|| format!("a column synced to {field}"));
                    SyncError::Invalid(format!(
                        "match: {table} has no {what}; the key must be a synced column (map it with fields => '{{\"column\": \"{field}\"}}')"
                    ))
                })
        })
        .collect()
}

pub(super) fn install_triggers(table: &str, mapping_id: i32, pk: &str, columns: &[&str], opts: &MappingOptions) -> Result<()> {
    drop_triggers(table)?;
    // With on_delete => 'review' a local delete is held in sfsync.delete_review, not sent.
    let review = opts.holds_local_deletes();
    let events = if review { "INSERT OR UPDATE" } else { "INSERT OR UPDATE OR DELETE" };
    if review {
        Spi::run(&format!(
            "CREATE TRIGGER sfsync_hold_delete AFTER DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION sfsync.hold_delete({}, {})",
            quote_literal(mapping_id.to_string()),
            quote_literal(pk)
        ))?;
    }
    match opts.capture() {
        Capture::None => {}
        // Sends each change synchronously; nothing goes through the outbox.
        Capture::WriteThrough => Spi::run(&format!(
            "CREATE TRIGGER sfsync_write_through BEFORE {events} ON {table}
             FOR EACH ROW EXECUTE FUNCTION sfsync.write_through({})",
            quote_literal(mapping_id.to_string())
        ))?,
        // A shadow run's trigger logs what would be sent (crate::shadow); same name and
        // arguments, so the DDL follower and unsync treat both alike.
        Capture::Outbox | Capture::Shadow => {
            let function = if opts.capture() == Capture::Shadow { "shadow_capture" } else { "capture" };
            let mut args = vec![quote_literal(mapping_id.to_string()), quote_literal(pk)];
            args.extend(columns.iter().map(quote_literal));
            Spi::run(&format!(
                "CREATE TRIGGER sfsync_capture AFTER {events} ON {table}
                 FOR EACH ROW EXECUTE FUNCTION sfsync.{function}({})",
                args.join(", ")
            ))?;
        }
    }
    Spi::run(&format!(
        "CREATE TRIGGER sfsync_no_truncate BEFORE TRUNCATE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION sfsync.refuse_truncate()"
    ))?;
    Ok(())
}

fn unsync(oid: u32) -> Result<bool> {
    let t = table_info(oid)?;
    crate::sync::hold_pass_lock()?;
    let args: Vec<DatumWithOid> = vec![i64::from(oid).into()];
    let removed = spi_util::exec("DELETE FROM sfsync.mappings WHERE tbl = $1::bigint::oid::regclass", &args)?;
    if removed == 0 {
        return Err(SyncError::NotFound(format!("table {} is not synced", t.qualified)));
    }
    drop_triggers(&t.qualified)?;
    Ok(true)
}

fn drop_triggers(table: &str) -> Result<()> {
    // Only those that exist: DROP TRIGGER IF EXISTS would print a NOTICE for each missing one.
    let present = spi_util::json(
        "SELECT COALESCE(jsonb_agg(tgname), '[]') FROM pg_catalog.pg_trigger
         WHERE tgrelid = $1::regclass AND NOT tgisinternal AND tgname = ANY($2)",
        &[table.into(), TRIGGERS.iter().map(|t| t.to_string()).collect::<Vec<_>>().into()],
    )?;
    let present: Vec<String> = present.and_then(|v| serde_json::from_value(v).ok()).unwrap_or_default();
    for name in present {
        Spi::run(&format!("DROP TRIGGER {} ON {table}", quote_identifier(&name)))?;
    }
    Ok(())
}

/// The triggers sync_table installs.
const TRIGGERS: [&str; 4] = ["sfsync_capture", "sfsync_write_through", "sfsync_hold_delete", "sfsync_no_truncate"];
