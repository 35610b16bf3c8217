-- Capture trigger functions and the operational views (created after the Rust functions).

-- The capture trigger (Rust) inserts into sfsync.outbox on behalf of whoever writes the table.
ALTER FUNCTION sfsync.capture() SECURITY DEFINER;
-- The write-through trigger reads the mapping and the stored credentials for whoever writes.
ALTER FUNCTION sfsync.write_through() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- TRUNCATE bypasses row triggers; turning it into a mass delete in Salesforce would be a
-- disaster nobody asked for, so it is refused on synced tables.
CREATE FUNCTION sfsync.refuse_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF sfsync.is_applying() THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'TRUNCATE of synced table % is refused by sfsync', TG_TABLE_NAME::regclass
        USING ERRCODE = 'feature_not_supported',
              HINT = 'Use DELETE to delete the rows in Salesforce too, or call sfsync.unsync_table() first to keep Salesforce as it is.';
END
$$;

-- on_delete => 'review': a local DELETE is held in sfsync.delete_review (with the row as it
-- was) instead of being sent. Rows the sync deletes itself are not held. Arguments: the
-- mapping id and the key column. SECURITY DEFINER: writers need no rights on the queue.
CREATE FUNCTION sfsync.hold_delete() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r jsonb := to_jsonb(OLD);
BEGIN
    IF sfsync.is_applying() THEN
        RETURN NULL;
    END IF;
    INSERT INTO sfsync.delete_review (mapping_id, "table", key, sfid, origin, "row")
    VALUES (TG_ARGV[0]::int, TG_RELID::regclass, r ->> TG_ARGV[1], r ->> 'sfid', 'postgres', r)
    ON CONFLICT (mapping_id, origin, key) WHERE decided_at IS NULL
    DO UPDATE SET sfid = EXCLUDED.sfid, "row" = EXCLUDED."row", requested_at = now();
    RETURN NULL;
END
$$;

CREATE VIEW sfsync.errors AS
SELECT e.id,
       m.tbl AS "table",
       e.pk AS key,
       e.sfid,
       e.direction,
       e.operation,
       e.error_code,
       e.message,
       e.fields,
       e.attempts,
       e.next_retry_at,
       e.first_seen,
       e.last_seen
FROM sfsync.record_errors e
JOIN sfsync.mappings m ON m.id = e.mapping_id;

CREATE VIEW sfsync.status AS
SELECT m.tbl AS "table",
       m.sobject,
       m.connection,
       m.direction,
       m.mode,
       CASE
           WHEN cp.message IS NOT NULL THEN 'paused: copy of another database'
           WHEN w.pid IS NULL THEN 'no worker'
           WHEN concat(s.last_error, cs.last_error) LIKE '%API budget%' THEN 'paused: API budget'
           WHEN s.last_error IS NOT NULL THEN 'error'
           WHEN cs.last_error IS NOT NULL THEN 'connection error'
           ELSE 'running'
       END AS state,
       w.pid AS worker_pid,
       s.last_push_at,
       s.last_pull_at,
       -- What a stopped worker left in connection_state no longer holds.
       CASE WHEN m.direction <> 'push' THEN CASE WHEN w.pid IS NULL THEN 'off' ELSE COALESCE(cs.stream, 'off') END END AS change_stream,
       CASE WHEN m.direction <> 'push' AND w.pid IS NOT NULL THEN cs.stream_since END AS change_stream_since,
       s.last_event_at AS last_change_event,
       COALESCE(o.depth, 0) AS outbox_depth,
       now() - o.oldest AS lag,
       COALESCE(e.errors, 0) AS error_count,
       s.pushed_total,
       s.pulled_total,
       s.hwm_modstamp AS pulled_through,
       cs.api_calls,
       cs.api_used,
       cs.api_max,
       COALESCE(cp.message, s.last_error, cs.last_error) AS last_error,
       COALESCE(c.conflicts, 0) AS conflicts,
       COALESCE(r.reviews, 0) AS pending_delete_reviews,
       s.deletes_checked_at AS last_delete_check,
       s.reconciled_at AS last_reconciliation,
       s.reconciled_missing,
       s.formulas_refreshed_at AS last_formula_refresh
FROM sfsync.mappings m
LEFT JOIN sfsync.sync_state s ON s.mapping_id = m.id
LEFT JOIN sfsync.connection_state cs ON cs.connection = m.connection
LEFT JOIN LATERAL (SELECT sfsync.worker_pid() AS pid) w ON true
LEFT JOIN LATERAL (SELECT sfsync.paused_copy() AS message) cp ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS depth, min(captured_at) AS oldest
    FROM sfsync.outbox ob WHERE ob.mapping_id = m.id AND ob.state = 'pending'
) o ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS errors FROM sfsync.record_errors re WHERE re.mapping_id = m.id
) e ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS conflicts FROM sfsync.conflicts cf WHERE cf.mapping_id = m.id
) c ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS reviews FROM sfsync.delete_review dr WHERE dr.mapping_id = m.id AND dr.decided_at IS NULL
) r ON true;

GRANT SELECT ON sfsync.status TO PUBLIC;

-- Taking over a copy's records is for admins (see docs/privileges.md).
REVOKE EXECUTE ON FUNCTION sfsync.adopt(boolean) FROM PUBLIC;

-- A dropped synced table takes its mapping (and outbox, state, errors) with it.
CREATE FUNCTION sfsync.on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM sfsync.mappings
    WHERE tbl::oid IN (SELECT objid FROM pg_event_trigger_dropped_objects()
                       WHERE classid = 'pg_class'::regclass AND objsubid = 0);
END
$$;
CREATE EVENT TRIGGER sfsync_sql_drop ON sql_drop EXECUTE FUNCTION sfsync.on_sql_drop();

-- Tell the launcher (if preloaded) that this database now needs a worker.
SELECT sfsync.notify_launcher();
