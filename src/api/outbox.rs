//! sfsync.retry / sfsync.discard: what an operator does with parked records.

use crate::error::{OrRaise, Result, SyncError};
use crate::privilege;
use crate::spi_util;
use crate::sync::archive;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::PgRelation;

/// Sends parked (`failed`) entries, and entries waiting out a backoff, again now, and has
/// pulled records whose apply failed read again: of one record (`tbl` and `key`), one table,
/// or every table (the caller may act on). Returns how many entries and records.
#[pg_extern(volatile, parallel_unsafe)]
fn retry(tbl: default!(Option<PgRelation>, "NULL"), key: default!(Option<&str>, "NULL")) -> i64 {
    let oid = tbl.map(release);
    if let Some(oid) = oid {
        privilege::require_table(oid.into(), "sfsync.retry").or_raise();
    }
    let scope = if oid.is_none() { privilege::permitted_mappings().or_raise() } else { None };
    privilege::as_extension_owner(|| retry_entries(oid, key, scope)).or_raise()
}

/// Drops the parked entries of one record (or of a whole table) without sending them;
/// they are archived as 'discarded' and their rows in sfsync.errors go. Pulled records whose
/// apply failed are given up on (their error rows go). Returns how many.
#[pg_extern(volatile, parallel_unsafe)]
fn discard(tbl: PgRelation, key: default!(Option<&str>, "NULL")) -> i64 {
    let oid = release(tbl);
    privilege::require_table(oid.into(), "sfsync.discard").or_raise();
    privilege::as_extension_owner(|| discard_entries(oid, key)).or_raise()
}

/// The relation's oid, closing our reference to it.
fn release(tbl: PgRelation) -> u32 {
    let oid = tbl.oid().to_u32();
    drop(tbl);
    oid
}

/// The mapping of table `oid` and the table's name for messages.
fn mapping_of(oid: u32) -> Result<(i32, String)> {
    let args: Vec<DatumWithOid> = vec![i64::from(oid).into()];
    let name = Spi::get_one_with_args::<String>("SELECT $1::bigint::oid::regclass::text", &args)?.unwrap_or_else(|| oid.to_string());
    let id = Spi::get_one_with_args::<i32>("SELECT (SELECT id FROM sfsync.mappings WHERE tbl = $1::bigint::oid::regclass)", &args)?
        .ok_or_else(|| SyncError::NotFound(format!("table {name} is not synced")))?;
    Ok((id, name))
}

/// Whether anything of this record is queued or in error (so "0 entries" is not a typo).
fn record_known(mapping_id: i32, key: &str) -> Result<bool> {
    let args: Vec<DatumWithOid> = vec![mapping_id.into(), key.into()];
    Ok(Spi::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT 1 FROM sfsync.outbox WHERE mapping_id = $1 AND pk = $2)
             OR EXISTS (SELECT 1 FROM sfsync.record_errors WHERE mapping_id = $1 AND pk = $2)",
        &args,
    )?
    .unwrap_or(false))
}

fn unknown_key(table: &str, key: &str) -> SyncError {
    SyncError::NotFound(format!("{table} has no queued or failed change for key '{key}' (see sfsync.errors)"))
}

/// `scope_ids`: without a table, the mappings whose entries are retried (None: every one).
pub(crate) fn retry_entries(oid: Option<u32>, key: Option<&str>, scope_ids: Option<Vec<i32>>) -> Result<i64> {
    let scope = match (oid, key) {
        (None, Some(_)) => return Err(SyncError::Invalid("retry: key needs tbl, the table the key belongs to".into())),
        (None, None) => None,
        (Some(oid), _) => Some(mapping_of(oid)?),
    };
    let args: Vec<DatumWithOid> = vec![scope.as_ref().map(|s| s.0).into(), key.into(), scope_ids.into()];
    let n = spi_util::json(
        "WITH moved AS (
             UPDATE sfsync.outbox o SET state = 'pending', next_attempt_at = '-infinity', attempts = 0
             WHERE ($1::int IS NULL OR o.mapping_id = $1) AND ($2::text IS NULL OR o.pk = $2)
               AND ($3::int[] IS NULL OR o.mapping_id = ANY ($3))
               AND (o.state = 'failed' OR o.next_attempt_at > now())
               AND (o.claimed_until IS NULL OR o.claimed_until < now())
             RETURNING o.mapping_id, o.pk
         ), errors AS (
             UPDATE sfsync.record_errors e SET next_retry_at = now()
             FROM (SELECT DISTINCT mapping_id, pk FROM moved) r
             WHERE e.direction = 'push' AND e.mapping_id = r.mapping_id AND e.pk = r.pk
         ), pulls AS (
             -- Records whose apply or removal failed: tried again by the worker's next pass.
             UPDATE sfsync.record_errors e SET next_retry_at = now()
             WHERE e.direction = 'pull' AND ($1::int IS NULL OR e.mapping_id = $1) AND ($2::text IS NULL OR e.pk = $2)
               AND ($3::int[] IS NULL OR e.mapping_id = ANY ($3))
             RETURNING 1
         )
         SELECT to_jsonb((SELECT count(*) FROM moved) + (SELECT count(*) FROM pulls))",
        &args,
    )?
    .and_then(|v| v.as_i64())
    .unwrap_or(0);
    if let (Some((mapping_id, table)), Some(key), 0) = (&scope, key, n) {
        if !record_known(*mapping_id, key)? {
            return Err(unknown_key(table, key));
        }
    }
    if n > 0 {
        Spi::run("SELECT sfsync.wake_at_commit()")?;
    }
    Ok(n)
}

pub(crate) fn discard_entries(oid: u32, key: Option<&str>) -> Result<i64> {
    let (mapping_id, table) = mapping_of(oid)?;
    let args: Vec<DatumWithOid> = vec![mapping_id.into(), key.into(), archive::enabled().into()];
    // The error rows are read for the archive before they are deleted (one snapshot).
    let n = spi_util::json(
        &format!(
            "WITH gone AS (
                 DELETE FROM sfsync.outbox o
                 WHERE o.mapping_id = $1 AND ($2::text IS NULL OR o.pk = $2) AND o.state = 'failed'
                   AND (o.claimed_until IS NULL OR o.claimed_until < now())
                 RETURNING o.*
             ), archived AS (
                 INSERT INTO sfsync.outbox_archive ({cols})
                 SELECT g.id, g.mapping_id, {table_name}, g.op, g.pk, g.sfid, g.changed, g.txid, g.captured_at, g.attempts,
                        'discarded', g.sfid, e.error_code || ': ' || e.message
                 FROM gone g
                 LEFT JOIN sfsync.record_errors e ON e.mapping_id = g.mapping_id AND e.pk = g.pk AND e.direction = 'push'
                 WHERE $3
             ), cleared AS (
                 DELETE FROM sfsync.record_errors e USING (SELECT DISTINCT pk FROM gone) g
                 WHERE e.mapping_id = $1 AND e.direction = 'push' AND e.pk = g.pk
             ), pulls AS (
                 -- Records whose apply failed: given up on, not read again.
                 DELETE FROM sfsync.record_errors e
                 WHERE e.mapping_id = $1 AND e.direction = 'pull' AND ($2::text IS NULL OR e.pk = $2)
                 RETURNING 1
             )
             SELECT to_jsonb((SELECT count(*) FROM gone) + (SELECT count(*) FROM pulls))",
            cols = archive::ARCHIVE_COLUMNS,
            table_name = archive::table_name_of("g.mapping_id"),
        ),
        &args,
    )?
    .and_then(|v| v.as_i64())
    .unwrap_or(0);
    if let (Some(key), 0) = (key, n) {
        // An error row whose entries are gone (e.g. settled by a later change) is stale:
        // discarding the record clears it. A key with neither is a mistake.
        let args: Vec<DatumWithOid> = vec![mapping_id.into(), key.into()];
        let stale = spi_util::exec(
            "DELETE FROM sfsync.record_errors e WHERE e.mapping_id = $1 AND e.pk = $2 AND e.direction = 'push'
               AND NOT EXISTS (SELECT 1 FROM sfsync.outbox o WHERE o.mapping_id = $1 AND o.pk = $2)",
            &args,
        )?;
        if stale == 0 && !record_known(mapping_id, key)? {
            return Err(unknown_key(&table, key));
        }
    }
    Ok(n)
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use crate::tests::tests::{count, fixture};
    use pgrx::prelude::*;

    /// Two captured records: key 1 parked with an error, key 2 waiting out a backoff.
    fn parked_fixture() -> i32 {
        let id = fixture();
        Spi::run("INSERT INTO contacts (id, last_name) VALUES (1, 'Doe'), (2, 'Roe'), (3, 'Poe')").unwrap();
        Spi::run(&format!(
            "UPDATE sfsync.outbox SET state = 'failed', attempts = 1 WHERE pk = '1';
             UPDATE sfsync.outbox SET attempts = 3, next_attempt_at = now() + interval '1 hour' WHERE pk = '2';
             INSERT INTO sfsync.record_errors (mapping_id, direction, pk, operation, error_code, message, fields)
             VALUES ({id}, 'push', '1', 'upsert', 'FIELD_CUSTOM_VALIDATION_EXCEPTION', 'No Does allowed', '{{LastName}}'),
                    ({id}, 'push', '2', 'upsert', 'UNABLE_TO_LOCK_ROW', 'locked', '{{}}');"
        ))
        .unwrap();
        id
    }

    #[pg_test]
    fn retry_sends_parked_and_backed_off_entries_now() {
        parked_fixture();
        assert_eq!(count("SELECT sfsync.retry('contacts', '1')"), 1);
        assert_eq!(
            count("SELECT count(*) FROM sfsync.outbox WHERE pk = '1' AND state = 'pending' AND attempts = 0 AND next_attempt_at <= now()"),
            1
        );
        assert_eq!(count("SELECT count(*) FROM sfsync.outbox WHERE pk = '2' AND next_attempt_at > now()"), 1, "other records untouched");
        assert_eq!(
            count("SELECT count(*) FROM sfsync.errors WHERE key = '1' AND next_retry_at <= now()"),
            1,
            "the error shows it is retried"
        );
        assert_eq!(count("SELECT sfsync.retry()"), 1, "all tables: the backed-off record 2");
        assert_eq!(count("SELECT count(*) FROM sfsync.outbox WHERE state = 'pending' AND next_attempt_at <= now()"), 3);
        assert_eq!(count("SELECT sfsync.retry('contacts')"), 0, "nothing left to retry");
        assert_eq!(count("SELECT sfsync.retry('contacts', '3')"), 0, "a pending record is known, just not waiting");
    }

    #[pg_test(error = "public.contacts has no queued or failed change for key '99' (see sfsync.errors)")]
    fn retry_of_an_unknown_key_is_named() {
        parked_fixture();
        Spi::run("SELECT sfsync.retry('contacts', '99')").unwrap();
    }

    #[pg_test(error = "retry: key needs tbl, the table the key belongs to")]
    fn retry_of_a_key_without_table_is_refused() {
        Spi::run("SELECT sfsync.retry(key => '1')").unwrap();
    }

    #[pg_test(error = "table public.plain is not synced")]
    fn retry_of_an_unsynced_table_is_named() {
        Spi::run("CREATE TABLE plain (id int PRIMARY KEY)").unwrap();
        Spi::run("SELECT sfsync.retry('plain')").unwrap();
    }

    #[pg_test]
    fn discard_drops_a_parked_record_archives_it_and_clears_its_error() {
        parked_fixture();
        assert_eq!(count("SELECT sfsync.discard('contacts', '1')"), 1);
        assert_eq!(count("SELECT count(*) FROM sfsync.outbox WHERE pk = '1'"), 0);
        assert_eq!(count("SELECT count(*) FROM sfsync.errors WHERE key = '1'"), 0);
        assert_eq!(count("SELECT count(*) FROM sfsync.errors WHERE key = '2'"), 1, "other records keep theirs");
        let (outcome, error) = Spi::get_two::<String, String>("SELECT outcome, error FROM sfsync.outbox_archive WHERE pk = '1'").unwrap();
        assert_eq!(outcome.as_deref(), Some("discarded"));
        assert_eq!(error.as_deref(), Some("FIELD_CUSTOM_VALIDATION_EXCEPTION: No Does allowed"));
        assert_eq!(count("SELECT count(*) FROM sfsync.outbox_archive WHERE table_name = 'public.contacts'"), 1);
        // Whole table: only parked entries go; the backed-off record 2 is still being retried.
        assert_eq!(count("SELECT sfsync.discard('contacts')"), 0);
        assert_eq!(count("SELECT count(*) FROM sfsync.outbox"), 2);
    }

    #[pg_test(error = "public.contacts has no queued or failed change for key '99' (see sfsync.errors)")]
    fn discard_of_an_unknown_key_is_named() {
        parked_fixture();
        Spi::run("SELECT sfsync.discard('contacts', '99')").unwrap();
    }

    // ---- archive ------------------------------------------------------------------------------

    #[pg_test]
    fn settled_entries_move_to_the_archive() {
        fixture();
        Spi::run("INSERT INTO contacts (id, last_name) VALUES (1, 'Doe'), (2, 'Roe')").unwrap();
        let ids: Vec<i64> = Spi::connect(|c| {
            c.select("SELECT id FROM sfsync.outbox ORDER BY id", None, &[]).unwrap().map(|r| r.get::<i64>(1).unwrap().unwrap()).collect()
        });
        let rows = vec![
            serde_json::json!({"ids": [ids[0]], "outcome": "sent", "sfid": "003000000000001AAA"}),
            serde_json::json!({"ids": [ids[1]], "outcome": "skipped", "sfid": null}),
        ];
        assert_eq!(crate::sync::archive::settle(rows).unwrap(), 2);
        assert_eq!(count("SELECT count(*) FROM sfsync.outbox"), 0);
        let (outcome, sfid) =
            Spi::get_two::<String, String>("SELECT outcome, salesforce_id::text FROM sfsync.outbox_archive WHERE pk = '1'").unwrap();
        assert_eq!((outcome.as_deref(), sfid.as_deref()), (Some("sent"), Some("003000000000001AAA")));
        assert_eq!(count("SELECT count(*) FROM sfsync.outbox_archive WHERE pk = '2' AND outcome = 'skipped' AND op = 'insert'"), 1);
    }

    #[pg_test]
    fn archive_purge_keeps_the_retention_window() {
        let id = fixture();
        Spi::run(&format!(
            "INSERT INTO sfsync.outbox_archive (id, mapping_id, op, pk, txid, captured_at, attempts, processed_at, outcome)
             VALUES (1, {id}, 'insert', '1', pg_current_xact_id(), now(), 1, now() - interval '8 days', 'sent'),
                    (2, {id}, 'insert', '2', pg_current_xact_id(), now(), 1, now() - interval '1 hour', 'sent')"
        ))
        .unwrap();
        assert_eq!(crate::sync::archive::purge(7 * 86_400).unwrap(), 1, "older than 7 days");
        assert_eq!(count("SELECT count(*) FROM sfsync.outbox_archive WHERE pk = '2'"), 1);
        assert_eq!(crate::sync::archive::purge(0).unwrap(), 1, "0: archiving off, nothing kept");
    }

    #[pg_test]
    fn the_archive_is_not_readable_by_other_roles() {
        Spi::run("CREATE ROLE sfsync_auditor LOGIN").unwrap();
        Spi::run("SET LOCAL ROLE sfsync_auditor").unwrap();
        let denied = std::panic::catch_unwind(|| Spi::get_one::<i64>("SELECT count(*) FROM sfsync.outbox_archive"));
        assert!(denied.is_err() || denied.unwrap().is_err());
    }
}
