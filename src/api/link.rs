//! The first sync of a table with `match`: its rows without a Salesforce Id are linked to
//! the records they match (sfid set now, the external ID and values sent by the push), the
//! others queued to create records, the ambiguous ones parked with their error. Done inside
//! sync_table, before the backfill is scheduled: the backfill then finds the linked rows by
//! their sfid instead of pulling their records in as new rows.

use crate::capture::Applying;
use crate::error::Result;
use crate::plan::matching::{self, Decision, AMBIGUOUS};
use crate::plan::options::Conflict;
use crate::spi_util;
use crate::sync::{matching as lookup, Mapping};
use pgrx::spi::quote_literal;
use salesforce::Client;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Links, queues and parks the table's unlinked rows; returns the summary sync_table shows.
pub(crate) fn initial(client: &Client, m: &Mapping) -> Result<Value> {
    let sql = format!(
        "SELECT COALESCE(jsonb_agg(jsonb_build_array(t.{pk}::text, to_jsonb(t)) ORDER BY t.{pk}), '[]') FROM {tbl} t WHERE t.sfid IS NULL",
        pk = m.pk_ident(),
        tbl = m.table
    );
    let rows: Vec<(String, Map<String, Value>)> =
        serde_json::from_value(spi_util::json(&sql, &[])?.unwrap_or_default()).unwrap_or_default();
    let values: Vec<&Map<String, Value>> = rows.iter().map(|(_, r)| r).collect();
    let (found, queries) = lookup::lookup(client, m, &values)?;
    let taken = lookup::taken(m, &found)?;
    let keyed: Vec<(String, Option<String>)> = rows.iter().map(|(pk, r)| (pk.clone(), lookup::row_key(m, r))).collect();
    let decisions = matching::decide(&keyed, &found, &HashMap::new(), &taken, |pk| m.external_value(pk), &lookup::label(m));

    let (mut links, mut creates, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    for (pk, d) in decisions {
        match d {
            Decision::Create => creates.push(pk),
            Decision::Link(sfid) => links.push(json!({"pk": pk, "sfid": sfid})),
            Decision::Ambiguous { sfid, message } => errors.push(json!({"pk": pk, "sfid": sfid, "message": message})),
        }
    }
    let summary = json!({"matched": links.len(), "created": if m.pushes() { creates.len() } else { 0 },
                         "ambiguous": errors.len(), "lookups": queries});
    if !links.is_empty() {
        let _applying = Applying::start();
        let sql = format!(
            "UPDATE {tbl} t SET sfid = s.sfid FROM jsonb_to_recordset($1) AS s(pk text, sfid text)
             WHERE t.{pk} = s.pk::{ty} AND t.sfid IS NULL",
            tbl = m.table,
            pk = m.pk_ident(),
            ty = m.pk_type
        );
        let args = [spi_util::jsonb(Value::Array(links.clone()))];
        m.as_owner(|| spi_util::exec(&sql, &args))?;
    }
    if m.pushes() {
        // A linked record gets the external ID (the key column listed as changed writes it)
        // and, unless Salesforce's values win, the row's values.
        let mut changed = vec![m.pk_column.clone()];
        if m.options.conflict != Conflict::SalesforceWins {
            changed.extend(m.columns.iter().map(|c| c.column.clone()));
        }
        spi_util::exec(
            "INSERT INTO sfsync.outbox (mapping_id, op, pk, sfid, changed)
             SELECT $1, 'update', s.pk, s.sfid, $3 FROM jsonb_to_recordset($2) AS s(pk text, sfid text)",
            &[m.id.into(), spi_util::jsonb(Value::Array(links)), changed.into()],
        )?;
        spi_util::exec(
            "INSERT INTO sfsync.outbox (mapping_id, op, pk) SELECT $1, 'insert', k FROM unnest($2::text[]) AS k",
            &[m.id.into(), creates.into()],
        )?;
    }
    if !errors.is_empty() {
        // Parked like a rejected push: sfsync.retry() looks again once the data is fixed.
        let fields: Vec<String> = m.match_keys.iter().map(|k| k.field.clone()).collect();
        let direction = if m.pushes() { "push" } else { "pull" };
        if m.pushes() {
            spi_util::exec(
                "INSERT INTO sfsync.outbox (mapping_id, op, pk, state, attempts)
                 SELECT $1, 'insert', s.pk, 'failed', 1 FROM jsonb_to_recordset($2) AS s(pk text)",
                &[m.id.into(), spi_util::jsonb(Value::Array(errors.clone()))],
            )?;
        }
        let sql = format!(
            "INSERT INTO sfsync.record_errors AS e (mapping_id, direction, pk, sfid, operation, error_code, message, fields)
             SELECT $1, {}, s.pk, s.sfid, 'match', {}, s.message, $3 FROM jsonb_to_recordset($2) AS s(pk text, sfid text, message text)
             ON CONFLICT (mapping_id, direction, pk) DO UPDATE SET sfid = EXCLUDED.sfid, operation = EXCLUDED.operation,
                 error_code = EXCLUDED.error_code, message = EXCLUDED.message, fields = EXCLUDED.fields, last_seen = now()",
            quote_literal(direction),
            quote_literal(AMBIGUOUS)
        );
        spi_util::exec(&sql, &[m.id.into(), spi_util::jsonb(Value::Array(errors)), fields.into()])?;
    }
    Ok(summary)
}
