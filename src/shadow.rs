//! A shadow run's log (`sync_table(..., mode => 'shadow')`, table sfsync.shadow_entries,
//! view sfsync.shadow_log): what the mapping would send if it were live. The capture
//! trigger's changes fold into one pending entry per record (`plan::shadow::fold`), the
//! first sync logs the rows it would create. The changes themselves wait in the outbox,
//! which the push skips for a shadow run, so pulls meet them as on a live table;
//! `sfsync.go_live` releases them and marks the log's entries queued.

use crate::error::{Result, SyncError};
use crate::guc;
use crate::plan::coalesce::Op;
use crate::plan::shadow::{self, Entry};
use crate::spi_util;
use pgrx::datum::DatumWithOid;
use pgrx::spi::quote_identifier;
use serde_json::{json, Value};

/// Folds a change the shadow capture trigger saw into the record's pending entry.
pub(crate) fn record(mapping: i32, pk: &str, next: Entry) -> Result<()> {
    let prev = spi_util::json(
        "SELECT to_jsonb(e) FROM sfsync.shadow_entries e WHERE mapping_id = $1 AND pk = $2 AND queued_at IS NULL FOR UPDATE",
        &[mapping.into(), pk.into()],
    )?;
    let Some(prev) = prev else {
        return write(None, mapping, pk, Some(next));
    };
    let id = prev["id"].as_i64().ok_or_else(|| SyncError::Spi("shadow entry without id".into()))?;
    let entry = Entry {
        op: prev["op"].as_str().and_then(Op::parse).ok_or_else(|| SyncError::Spi(format!("shadow entry {id} has an unknown op")))?,
        sfid: prev["sfid"].as_str().map(String::from),
        changed: serde_json::from_value(prev["changed"].clone()).unwrap_or(None),
        base: prev["base"].as_object().cloned().unwrap_or_default(),
        values: prev["field_values"].as_object().cloned().unwrap_or_default(),
    };
    write(Some(id), mapping, pk, shadow::fold(entry, next))
}

/// Replaces entry `id` (None: a new one) by `entry` (None: the entry goes).
fn write(id: Option<i64>, mapping: i32, pk: &str, entry: Option<Entry>) -> Result<()> {
    let Some(e) = entry else {
        spi_util::exec("DELETE FROM sfsync.shadow_entries WHERE id = $1", &[id.into()])?;
        return Ok(());
    };
    let operation = shadow::operation(e.op, e.sfid.as_deref());
    let base = (!e.base.is_empty()).then_some(pgrx::JsonB(Value::Object(e.base)));
    let args: Vec<DatumWithOid> = vec![
        id.into(),
        mapping.into(),
        e.op.as_str().into(),
        pk.into(),
        e.sfid.into(),
        e.changed.into(),
        base.into(),
        operation.into(),
        spi_util::jsonb(Value::Object(e.values)),
    ];
    // A single local change is one record of a Collections call; the first sync's rows
    // (log_initial) may be many. Two writers of one row wait for each other's row lock, so
    // the second sees the first's entry.
    let sql = if id.is_some() {
        "UPDATE sfsync.shadow_entries SET op = $3, sfid = $5, changed = $6, base = $7, operation = $8, field_values = $9,
                                          logged_at = clock_timestamp()
         WHERE id = $1 AND mapping_id = $2 AND pk = $4"
    } else {
        "INSERT INTO sfsync.shadow_entries (mapping_id, op, pk, sfid, changed, base, operation, api, field_values, origin)
         SELECT $2, $3, $4, $5, $6, $7, $8, 'collections', $9, 'local' WHERE $1::bigint IS NULL"
    };
    spi_util::exec(sql, &args)?;
    Ok(())
}

/// A linked row changed its key: its pending entry follows it (as outbox entries do).
pub(crate) fn rekey(mapping: i32, old: &str, new: &str) -> Result<()> {
    spi_util::exec(
        "UPDATE sfsync.shadow_entries SET pk = $3 WHERE mapping_id = $1 AND pk = $2 AND queued_at IS NULL",
        &[mapping.into(), old.into(), new.into()],
    )?;
    Ok(())
}

/// The first sync of a shadow mapping: the rows without a Salesforce Id, which it holds in
/// the outbox as creates, are logged too (with their values, and the API the push would
/// pick for that many). A new shadow run starts from an empty log.
pub(crate) fn log_initial(mapping: i32, table: &str, pk: &str, columns: &[&str]) -> Result<usize> {
    spi_util::exec("DELETE FROM sfsync.shadow_entries WHERE mapping_id = $1", &[mapping.into()])?;
    let pkq = quote_identifier(pk);
    let count = spi_util::json(&format!("SELECT to_jsonb(count(*)) FROM {table} t WHERE t.sfid IS NULL"), &[])?
        .and_then(|v| v.as_i64())
        .unwrap_or(0);
    let api = if count >= i64::from(guc::BULK_THRESHOLD.get()) { "bulk" } else { "collections" };
    let cols: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    let sql = format!(
        "INSERT INTO sfsync.shadow_entries (mapping_id, op, pk, operation, api, field_values, origin)
         SELECT $1, 'insert', t.{pkq}::text, 'upsert', $2,
                (SELECT jsonb_object_agg(c, to_jsonb(t) ->> c) FROM unnest($3::text[]) c), 'initial'
         FROM {table} t WHERE t.sfid IS NULL ORDER BY t.{pkq}"
    );
    spi_util::exec(&sql, &[mapping.into(), api.into(), cols.into()])
}

/// `go_live`: the pending entries are marked queued. Their changes wait in the outbox
/// already (held there since they were captured, the push skipping a shadow run's entries),
/// so nothing is queued twice; the push sends each record's net change once, upserting on
/// the external ID, so a row Salesforce already has is not created again.
pub(crate) fn mark_queued(mapping: i32) -> Result<Value> {
    let queued = spi_util::json(
        "WITH pending AS (
             UPDATE sfsync.shadow_entries SET queued_at = now()
             WHERE mapping_id = $1 AND queued_at IS NULL
             RETURNING op
         )
         SELECT jsonb_build_object('inserts', count(*) FILTER (WHERE op = 'insert'),
                                   'updates', count(*) FILTER (WHERE op = 'update'),
                                   'deletes', count(*) FILTER (WHERE op = 'delete'))
         FROM pending",
        &[mapping.into()],
    )?;
    Ok(queued.unwrap_or_else(|| json!({})))
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::tests::tests::{count, fixture, outbox};
    use pgrx::prelude::*;

    /// The contacts fixture as `sync_table(..., mode => 'shadow')` leaves it, plus a user
    /// trigger that counts its firings in `fired`.
    fn shadow_fixture() -> i32 {
        let id = fixture();
        Spi::run(&format!(
            "UPDATE sfsync.mappings SET mode = 'shadow' WHERE id = {id};
             DROP TRIGGER sfsync_capture ON contacts;
             CREATE TRIGGER sfsync_capture AFTER INSERT OR UPDATE OR DELETE ON contacts
                 FOR EACH ROW EXECUTE FUNCTION sfsync.shadow_capture('{id}', 'id', 'last_name', 'email');
             CREATE TABLE fired (n int);
             CREATE FUNCTION count_firing() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO fired VALUES (1); RETURN NULL; END $$;
             CREATE TRIGGER downstream AFTER INSERT OR UPDATE ON contacts FOR EACH ROW EXECUTE FUNCTION count_firing();"
        ))
        .unwrap();
        id
    }

    /// (operation, key, fields, origin, queued) of the shadow log, in order.
    fn log() -> Vec<(String, String, Option<pgrx::JsonB>, bool)> {
        Spi::connect(|c| {
            c.select("SELECT operation, key, fields, queued_at IS NOT NULL FROM sfsync.shadow_log ORDER BY id", None, &[])
                .unwrap()
                .map(|r| {
                    (
                        r.get::<String>(1).unwrap().unwrap(),
                        r.get::<String>(2).unwrap().unwrap(),
                        r.get(3).unwrap(),
                        r.get(4).unwrap().unwrap(),
                    )
                })
                .collect()
        })
    }

    #[pg_test]
    fn a_shadow_run_logs_each_records_net_change_and_holds_it_for_go_live() {
        shadow_fixture();
        {
            let _g = crate::capture::Applying::start(); // as a pull would link it
            Spi::run("INSERT INTO contacts (id, last_name, sfid) VALUES (2, 'Roe', '003000000000002AAA')").unwrap();
        }
        Spi::run("INSERT INTO contacts (id, last_name, email) VALUES (1, 'Doe', 'd@x')").unwrap();
        Spi::run("UPDATE contacts SET email = 'e@x' WHERE id = 1").unwrap();
        Spi::run("UPDATE contacts SET email = 'r@x' WHERE id = 2").unwrap();
        Spi::run("INSERT INTO contacts (id, last_name) VALUES (3, 'Gone')").unwrap();
        Spi::run("DELETE FROM contacts WHERE id = 3").unwrap();
        let l = log();
        let calls: Vec<(&str, &str)> = l.iter().map(|e| (e.0.as_str(), e.1.as_str())).collect();
        assert_eq!(calls, vec![("upsert", "1"), ("update", "2")], "one entry per record; 3 was made and deleted: {l:?}");
        assert_eq!(l[0].2.as_ref().unwrap().0, serde_json::json!({"LastName": "Doe", "Email": "e@x"}), "by field, latest values");
        assert_eq!(l[1].2.as_ref().unwrap().0, serde_json::json!({"Email": "r@x"}), "only the changed field");
        // The changes are held in the outbox as a live table's would be (the push skips a
        // shadow run's entries): a pull meets them as pending local changes.
        let held = outbox();
        for key in ["1", "2"] {
            assert!(held.iter().any(|o| o.1 == key), "the change of {key} is held: {held:?}");
        }
        // go_live: nothing is queued twice, the log is marked, capture is live.
        let r = Spi::get_one::<pgrx::JsonB>("SELECT sfsync.go_live('contacts')").unwrap().unwrap().0;
        assert_eq!(r["queued"], serde_json::json!({"inserts": 1, "updates": 1, "deletes": 0}), "{r}");
        assert_eq!(outbox(), held, "released as they were");
        assert!(log().iter().all(|e| e.3), "every entry marked queued");
        Spi::run("UPDATE contacts SET email = 'f@x' WHERE id = 1").unwrap();
        assert_eq!(outbox().len(), held.len() + 1, "captured live now");
        assert_eq!(count("SELECT count(*) FROM sfsync.shadow_entries"), 2, "and no longer logged");
        assert_eq!(Spi::get_one::<String>("SELECT mode FROM sfsync.status").unwrap().as_deref(), Some("async"));
    }

    #[pg_test]
    fn the_syncs_writes_into_a_shadow_table_fire_no_user_trigger() {
        shadow_fixture();
        let m = crate::sync::load_mappings(None).unwrap().pop().unwrap();
        assert!(m.options.shadow());
        // As the apply writes a pulled record: as the owner, through Mapping::as_owner.
        m.as_owner(|| crate::spi_util::exec("INSERT INTO contacts (id, last_name, sfid) VALUES (5, 'Pulled', '003000000000005AAA')", &[]))
            .unwrap();
        assert_eq!(count("SELECT count(*) FROM fired"), 0, "the downstream trigger did not fire");
        assert_eq!(Spi::get_one::<String>("SHOW session_replication_role").unwrap().as_deref(), Some("origin"), "restored");
        Spi::run("UPDATE contacts SET last_name = 'Local' WHERE id = 5").unwrap();
        assert_eq!(count("SELECT count(*) FROM fired"), 1, "a local write fires it as usual");
        Spi::run("UPDATE sfsync.mappings SET mode = 'async'").unwrap();
        let live = crate::sync::load_mappings(None).unwrap().pop().unwrap();
        live.as_owner(|| crate::spi_util::exec("UPDATE contacts SET last_name = 'Pulled again' WHERE id = 5", &[])).unwrap();
        assert_eq!(count("SELECT count(*) FROM fired"), 2, "a live mapping's apply fires it");
    }

    #[pg_test(
        error = "sfsync.go_live: table public.contacts is not in shadow mode (its mode is async); only a table synced with mode => 'shadow' goes live"
    )]
    fn go_live_of_a_live_table_is_refused() {
        fixture();
        Spi::run("SELECT sfsync.go_live('contacts')").unwrap();
    }
}
