//! A mapping as the sync reads it: a row of sfsync.mappings with its table's qualified name,
//! its options parsed (`plan::options`) and what the pass needs about its neighbours.

use crate::error::{Result, SyncError};
use crate::plan::fields::ColumnMap;
use crate::plan::matching::MatchKey;
use crate::plan::namespace;
use crate::plan::options::Options;
use crate::plan::relations::ParentRef;
use crate::spi_util;
use pgrx::datum::DatumWithOid;
use pgrx::Spi;
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;

/// A row of sfsync.mappings with its table's qualified name.
#[derive(Debug, Clone, Deserialize)]
pub struct Mapping {
    pub id: i32,
    /// Schema-qualified, quoted: safe to paste into SQL.
    pub table: String,
    /// The table's owner (pg_class.relowner) when the mappings were loaded: rows are applied
    /// as this role (`as_owner`), read afresh each pass so an ALTER TABLE OWNER is followed.
    pub owner: u32,
    /// The table's Oid.
    pub oid: u32,
    /// Whether the table has deferrable triggers (deferrable foreign keys or constraint
    /// triggers): see `as_owner`.
    #[serde(default)]
    pub deferrable: bool,
    /// Whether the table has BEFORE ROW INSERT or UPDATE triggers of its own (not sfsync's):
    /// what they write instead of a pulled value is pushed (`sync::rewritten`), which COPY
    /// and the columnar load can't tell, so such tables take the record path.
    #[serde(default)]
    pub before_triggers: bool,
    pub sobject: String,
    pub connection: String,
    pub pk_column: String,
    pub pk_type: String,
    pub external_id: String,
    /// What the external ID values of this mapping's records start with (plan::namespace);
    /// empty for mappings made before 0.2.0, which write bare keys.
    #[serde(default)]
    pub namespace: String,
    pub columns: Vec<ColumnMap>,
    pub filter: Option<String>,
    /// The natural key rows are linked to existing records by (`sync_table(..., match)`);
    /// empty: every new row creates a record.
    #[serde(default)]
    pub match_keys: Vec<MatchKey>,
    /// Made by `sfsync.mirror` with every field: fields added in Salesforce are added to the
    /// table (sync::sf_schema).
    #[serde(default)]
    pub mirror_all: bool,
    /// direction, mode, conflict and on_delete, parsed: a catalog value this build does not
    /// know fails the load with the value named, instead of acting on a guess.
    #[serde(flatten)]
    pub options: Options,
    /// Mapped lookup columns that are foreign keys to other synced tables.
    #[serde(default)]
    pub parents: Vec<ParentRef>,
    /// Seconds since the last delete check (None: never), see sync::periodic.
    #[serde(default)]
    pub deletes_age: Option<f64>,
    /// Seconds since the calculated fields were last refreshed (or loaded by the backfill).
    #[serde(default)]
    pub formulas_age: Option<f64>,
    /// What the table's name and the mapped columns were when this was read (`current`).
    #[serde(default)]
    pub stamp: String,
}

impl Mapping {
    pub fn pushes(&self) -> bool {
        self.options.direction.pushes()
    }
    pub fn pulls(&self) -> bool {
        self.options.direction.pulls()
    }
    /// Changes are sent by the write-through trigger (whose echoes `sync::echo_lock` defers).
    pub fn writes_through(&self) -> bool {
        self.options.capture() == crate::plan::options::Capture::WriteThrough
    }
    /// The mapping as it is now, for a transaction about to read or write its table.
    ///
    /// A pass reads the mappings once; an ALTER TABLE that renames a mapped column or the
    /// table (or drops a column) and commits during the pass changes the mapping under it
    /// (`follow_ddl`). Taking the table's lock first waits for such an ALTER to commit; the
    /// mapping read after it is the one that names what is there.
    pub fn current(&self) -> Result<Cow<'_, Mapping>> {
        if self.stamp.is_empty() {
            return Ok(Cow::Borrowed(self));
        }
        let stamp = || -> Result<Option<Value>> {
            let args: Vec<DatumWithOid> = vec![self.id.into()];
            spi_util::json(&format!("SELECT to_jsonb({STAMP}) {STAMP_FROM} WHERE m.id = $1"), &args)
        };
        // sfsync's catalog before the table, in the order every step takes them (and DROP
        // EXTENSION too): the other order can deadlock with it.
        stamp()?;
        // SAFETY: a plain heavyweight lock, released at the end of the transaction.
        unsafe {
            pgrx::pg_sys::LockRelationOid(pgrx::pg_sys::Oid::from(self.oid), pgrx::pg_sys::AccessShareLock as pgrx::pg_sys::LOCKMODE)
        };
        if stamp()?.as_ref().and_then(|v| v.as_str()) == Some(self.stamp.as_str()) {
            return Ok(Cow::Borrowed(self));
        }
        load_mappings(Some(self.oid))?
            .pop()
            .map(Cow::Owned)
            .ok_or_else(|| SyncError::NotFound(format!("{} is no longer synced", self.table)))
    }

    pub fn column(&self, name: &str) -> Option<&ColumnMap> {
        self.columns.iter().find(|c| c.column == name)
    }
    /// The external ID value that marks the row with key `pk` as this mapping's record.
    pub fn external_value(&self, pk: &str) -> String {
        namespace::encode(&self.namespace, pk)
    }
    /// The Postgres key a pulled external ID value carries, if it is this mapping's record.
    pub fn key_of<'v>(&self, value: &'v str) -> Option<&'v str> {
        match namespace::decode(&self.namespace, value) {
            namespace::Owner::Ours(key) => Some(key),
            namespace::Owner::Other => None,
        }
    }
    /// The key column, quoted.
    pub fn pk_ident(&self) -> String {
        pgrx::spi::quote_identifier(&self.pk_column)
    }
    /// Runs `f` as the table's owner: every statement that writes the table (or runs its
    /// owner's code) goes through here, so a trigger, default, cast or index expression never
    /// runs with the worker's superuser rights. Only the table's own statements belong
    /// inside: the owner has no rights on sfsync's catalog.
    ///
    /// A deferred trigger would fire at commit, as the worker, so a table with deferrable
    /// triggers has them fire at the end of each statement (`SET CONSTRAINTS ALL IMMEDIATE`
    /// for the rest of the transaction), inside the switch; a failing deferred check is then
    /// that statement's failure, reported per record like any other.
    pub fn as_owner<T>(&self, f: impl FnOnce() -> T) -> T {
        if self.deferrable {
            if let Err(e) = pgrx::prelude::Spi::run("SET CONSTRAINTS ALL IMMEDIATE") {
                pgrx::error!("sfsync: SET CONSTRAINTS ALL IMMEDIATE before writing {}: {e}", self.table);
            }
        }
        let owner = pgrx::pg_sys::Oid::from(self.owner);
        // A shadow run applies without firing the table's triggers (no downstream consumer
        // sees it) and without foreign-key checks (docs/guide.md, "Shadow run").
        if self.options.shadow() {
            crate::privilege::as_table_owner_without_triggers(owner, f)
        } else {
            crate::privilege::as_table_owner(owner, f)
        }
    }
}

/// A mapping's table name and mapped columns, as `Mapping::current` compares them.
const STAMP: &str = "md5(format('%I.%I', n.nspname, c.relname) || m.columns::text)";
const STAMP_FROM: &str = "FROM sfsync.mappings m
         JOIN pg_catalog.pg_class c ON c.oid = m.tbl
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace";

/// Mappings of this database, optionally only the one of table `oid`.
pub fn load_mappings(oid: Option<u32>) -> Result<Vec<Mapping>> {
    require_current_catalog()?;
    let args: Vec<DatumWithOid> = vec![oid.map(i64::from).into()];
    let v = spi_util::json(
        &format!("SELECT COALESCE(jsonb_agg(jsonb_build_object(
                 'id', m.id, 'table', format('%I.%I', n.nspname, c.relname), 'owner', c.relowner::bigint, 'oid', c.oid::bigint,
                 'deferrable', EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgrelid = c.oid AND g.tgdeferrable),
                 -- tgtype bits: 1 ROW, 2 BEFORE, 4 INSERT, 16 UPDATE
                 'before_triggers', EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g JOIN pg_catalog.pg_proc f ON f.oid = g.tgfoid
                                            WHERE g.tgrelid = c.oid AND NOT g.tgisinternal AND g.tgenabled <> 'D'
                                              AND g.tgtype & 3 = 3 AND g.tgtype & 20 <> 0
                                              AND f.pronamespace <> 'sfsync'::regnamespace),
                 'sobject', m.sobject, 'connection', m.connection, 'pk_column', m.pk_column,
                 'pk_type', m.pk_type, 'external_id', m.external_id, 'namespace', m.namespace, 'columns', m.columns,
                 'direction', m.direction, 'mode', m.mode, 'filter', m.filter, 'match_keys', COALESCE(m.match_keys, '[]'), 'mirror_all', m.mirror_all, 'on_delete', m.on_delete, 'conflict', m.conflict,
                 'parents', (SELECT COALESCE(jsonb_agg(jsonb_build_object('column', a.attname, 'mapping_id', pm.id)), '[]')
                             FROM pg_catalog.pg_constraint k
                             JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = k.conkey[1]
                             JOIN sfsync.mappings pm ON pm.tbl = k.confrelid
                             JOIN pg_catalog.pg_attribute pa ON pa.attrelid = k.confrelid AND pa.attnum = k.confkey[1]
                             WHERE k.conrelid = m.tbl AND k.contype = 'f' AND cardinality(k.conkey) = 1
                               AND pa.attname = pm.pk_column
                               AND m.columns @> jsonb_build_array(jsonb_build_object('column', a.attname, 'sf_type', 'reference'))),
                 'deletes_age', (SELECT extract(epoch FROM now() - s.deletes_checked_at) FROM sfsync.sync_state s WHERE s.mapping_id = m.id),
                 'formulas_age', (SELECT extract(epoch FROM now() - COALESCE(s.formulas_refreshed_at, b.finished_at, m.created_at))
                                  FROM sfsync.sync_state s LEFT JOIN sfsync.backfills b ON b.mapping_id = s.mapping_id
                                  WHERE s.mapping_id = m.id),
                 'stamp', {STAMP}
                 ) ORDER BY m.id), '[]')
         {STAMP_FROM}
         WHERE $1::bigint IS NULL OR m.tbl::oid::bigint = $1"),
        &args,
    )?
    .unwrap_or_default();
    serde_json::from_value(v).map_err(|e| SyncError::Spi(format!("decoding sfsync.mappings: {e}")))
}

/// The library works only on the catalog it was built for. Between installing a newer
/// library and `ALTER EXTENSION sfsync UPDATE`, whoever needs the mappings (write-through,
/// run_once, the SQL functions) gets this error instead of a statement failing on a column
/// the old catalog lacks; the worker waits (db_worker's `Pass::Outdated`).
pub fn require_current_catalog() -> Result<()> {
    let installed = Spi::get_one::<String>("SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'sfsync'")?.unwrap_or_default();
    let library = env!("CARGO_PKG_VERSION");
    if installed == library {
        return Ok(());
    }
    Err(SyncError::Outdated(format!(
        "sfsync: the extension in this database is version {installed} but the installed library is {library}; \
         run ALTER EXTENSION sfsync UPDATE"
    )))
}

/// Stores a mapping-level error for sfsync.status (cleared by the next good pull).
pub fn set_mapping_error(mapping_id: i32, message: &str) -> Result<()> {
    let args: Vec<DatumWithOid> = vec![mapping_id.into(), message.into()];
    spi_util::exec("UPDATE sfsync.sync_state SET last_error = $2, last_error_at = now() WHERE mapping_id = $1", &args)?;
    Ok(())
}
