//! sfsync.outbox_archive: settled outbox entries kept `sfsync.archive_retention` for audit.
//! Entries move there in the transaction that removes them from the outbox (the push's
//! record step, `sfsync.discard`), and the worker purges old ones at most once a minute.

use crate::error::Result;
use crate::{guc, spi_util};
use pgrx::datum::DatumWithOid;
use serde_json::Value;
use std::time::{Duration, Instant};

/// How often the worker purges.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Archive outcome of an entry the push settled: `skip` results were not sent.
pub fn outcome(operation: &str) -> &'static str {
    if operation == "skip" {
        "skipped"
    } else {
        "sent"
    }
}

pub fn enabled() -> bool {
    guc::ARCHIVE_RETENTION_S.get() > 0
}

/// The columns of sfsync.outbox_archive that `settle` and `sfsync.discard` write.
pub const ARCHIVE_COLUMNS: &str =
    "id, mapping_id, table_name, op, pk, sfid, changed, txid, captured_at, attempts, outcome, salesforce_id, error";

/// Removes settled entries from the outbox and archives them, in one statement.
/// `rows`: `[{ids: [outbox ids], outcome, sfid, sent}]` (`sent`, optional: the values sent,
/// column -> value). Returns how many entries were removed.
pub fn settle(rows: Vec<Value>) -> Result<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    let args: Vec<DatumWithOid> = vec![spi_util::jsonb(Value::Array(rows)), enabled().into()];
    let n = spi_util::json(
        &format!(
            "WITH r AS (SELECT * FROM jsonb_to_recordset($1) AS r(ids bigint[], outcome text, sfid text, sent jsonb)),
             done AS (
                 DELETE FROM sfsync.outbox o USING r WHERE o.id = ANY(r.ids)
                 RETURNING o.id, o.mapping_id, o.op, o.pk, o.sfid, o.changed, o.txid, o.captured_at, o.attempts,
                           r.outcome, r.sfid AS salesforce_id, r.sent
             ),
             archived AS (
                 INSERT INTO sfsync.outbox_archive ({ARCHIVE_COLUMNS}, sent)
                 SELECT d.id, d.mapping_id, tn.name, d.op, d.pk, d.sfid, d.changed, d.txid, d.captured_at, d.attempts,
                        d.outcome, COALESCE(d.salesforce_id, d.sfid), NULL, d.sent
                 FROM done d LEFT JOIN {TABLE_NAMES} tn ON tn.id = d.mapping_id WHERE $2
             )
             SELECT to_jsonb(count(*)) FROM done"
        ),
        &args,
    )?;
    Ok(n.and_then(|v| v.as_u64()).unwrap_or(0) as usize)
}

/// SQL relation `(id, name)`: every mapping's quoted, schema-qualified table name. Joined
/// once by a batch, where [`table_name_of`] looks the three catalogs up again for each row.
const TABLE_NAMES: &str = "(SELECT m.id, format('%I.%I', n.nspname, c.relname) AS name FROM sfsync.mappings m
     JOIN pg_catalog.pg_class c ON c.oid = m.tbl JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace)";

/// SQL expression: the quoted, schema-qualified name of mapping `mapping_id`'s table.
pub fn table_name_of(mapping_id: &str) -> String {
    format!("(SELECT tn.name FROM {TABLE_NAMES} tn WHERE tn.id = {mapping_id})")
}

/// Deletes archive rows older than `retention_s` seconds (all of them when 0: archiving is
/// off). Returns how many.
pub fn purge(retention_s: i32) -> Result<usize> {
    spi_util::exec(
        "DELETE FROM sfsync.outbox_archive WHERE $1 <= 0 OR processed_at < now() - make_interval(secs => $1)",
        &[retention_s.into()],
    )
}

/// Worker hook: purges in its own short transaction, at most once every minute.
pub fn purge_due(last: &mut Option<Instant>) {
    if last.is_some_and(|t| t.elapsed() < PURGE_EVERY) {
        return;
    }
    *last = Some(Instant::now());
    let retention = guc::ARCHIVE_RETENTION_S.get();
    match crate::worker::tx::run(|| purge(retention)) {
        Ok(n) if n > 0 => pgrx::debug1!("sfsync: purged {n} archived outbox entries"),
        Ok(_) => {}
        Err(e) => pgrx::warning!("sfsync: could not purge sfsync.outbox_archive: {e}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn skipped_results_are_archived_as_skipped() {
        assert_eq!(super::outcome("skip"), "skipped");
        assert_eq!(super::outcome("upsert"), "sent");
        assert_eq!(super::outcome("delete"), "sent");
    }
}
