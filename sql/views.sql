-- Capture trigger functions and the operational views (created after the Rust functions).

-- The capture trigger (Rust) runs as whoever writes the table and queues into sfsync.outbox
-- as the catalog's owner, switching for that step only (src/capture.rs). It checks that the
-- table it fires on is its mapping's.
-- The write-through trigger reads the mapping and the stored credentials for whoever writes.
ALTER FUNCTION sfsync.write_through() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
-- A shadow run's capture trigger logs into sfsync.shadow_entries for whoever writes.
ALTER FUNCTION sfsync.shadow_capture() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;

-- TRUNCATE bypasses row triggers; turning it into a mass delete in Salesforce would be a
-- disaster nobody asked for, so it is refused on synced tables.
-- Runs as the caller (is_applying is per process); the search_path is pinned all the same.
CREATE FUNCTION sfsync.refuse_truncate() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF sfsync.is_applying() THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'TRUNCATE of synced table % is refused by sfsync', TG_RELID::regclass
        USING ERRCODE = 'feature_not_supported',
              HINT = 'Use DELETE to delete the rows in Salesforce too, or call sfsync.unsync_table() first to keep Salesforce as it is.';
END
$$;

-- on_delete => 'review': a local DELETE is held in sfsync.delete_review (with the row as it
-- was) instead of being sent. Rows the sync deletes itself are not held. Arguments: the
-- mapping id and the key column. SECURITY DEFINER: writers need no rights on the queue;
-- so it trusts no argument: a trigger made by hand on another table with this mapping's id
-- would hold (and an approval would send) deletes of the mapping's records. Only the
-- mapping's own table may hold deletes for it, as in capture().
CREATE FUNCTION sfsync.hold_delete() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r jsonb;
    mapped regclass;
BEGIN
    IF sfsync.is_applying() THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'DELETE' OR TG_LEVEL <> 'ROW' OR TG_NARGS <> 2 THEN
        RAISE EXCEPTION 'sfsync.hold_delete is an AFTER DELETE row trigger with (mapping id, key column) arguments, installed by sfsync.sync_table'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT m.tbl INTO mapped FROM sfsync.mappings m WHERE m.id::text = TG_ARGV[0];
    IF mapped IS NULL THEN
        RETURN NULL; -- the mapping is gone (unsynced meanwhile): nothing to hold for it
    END IF;
    IF mapped::oid <> TG_RELID THEN
        RAISE EXCEPTION 'sfsync.hold_delete: table % is not the one of mapping %', TG_RELID::regclass, TG_ARGV[0]
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The trigger is installed by sfsync.sync_table, not by hand (drop trigger sfsync_hold_delete, or run sfsync.sync_table on the table).';
    END IF;
    r := to_jsonb(OLD);
    INSERT INTO sfsync.delete_review (mapping_id, "table", key, sfid, origin, "row")
    VALUES (TG_ARGV[0]::int, TG_RELID::regclass, r ->> TG_ARGV[1], r ->> 'sfid', 'postgres', r)
    ON CONFLICT (mapping_id, origin, key) WHERE decided_at IS NULL
    DO UPDATE SET sfid = EXCLUDED.sfid, "row" = EXCLUDED."row", requested_at = now();
    RETURN NULL;
END
$$;

-- Rejected records of the tables the reader may act on (sfsync.may_act_on: the table's
-- owner, or an admin); their messages carry Salesforce's text and values of the rows.
-- security_barrier: a reader's own WHERE functions never see the rows filtered out.
CREATE VIEW sfsync.errors WITH (security_barrier) AS
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
       e.last_seen,
       NULL::text AS query
FROM sfsync.record_errors e
JOIN sfsync.mappings m ON m.id = e.mapping_id
WHERE sfsync.may_act_on(m.tbl)
UNION ALL
-- Rows of synced queries (sfsync.sync_query): "table" is NULL, query names the query; shown
-- to the query's owner and admins. Sent again by the next refresh.
SELECT qe.id, NULL::regclass, qe.key, qe.sfid, 'push', qe.operation, qe.error_code, qe.message, qe.fields,
       qe.attempts, q.next_refresh_at, qe.first_seen, qe.last_seen, q.name
FROM sfsync.query_errors qe
JOIN sfsync.synced_queries q ON q.id = qe.query_id
WHERE sfsync.is_admin() OR pg_catalog.pg_has_role(q.owner, 'USAGE');
GRANT SELECT ON sfsync.errors TO PUBLIC;

-- A shadow run's log (sync_table(..., mode => 'shadow')): the calls the mapping would make
-- if it were live, for the tables the reader may act on (it holds row values); fields by
-- Salesforce field name. queued_at: when sfsync.go_live queued it for the push.
CREATE VIEW sfsync.shadow_log WITH (security_barrier) AS
SELECT l.id,
       m.tbl AS "table",
       m.sobject,
       l.operation,
       l.pk AS key,
       l.sfid,
       (SELECT pg_catalog.jsonb_object_agg(c ->> 'field', l.field_values -> (c ->> 'column'))
        FROM pg_catalog.jsonb_array_elements(m.columns) c
        WHERE l.field_values ? (c ->> 'column')) AS fields,
       l.api,
       l.origin,
       l.logged_at,
       l.queued_at
FROM sfsync.shadow_entries l
JOIN sfsync.mappings m ON m.id = l.mapping_id
WHERE sfsync.may_act_on(m.tbl);
GRANT SELECT ON sfsync.shadow_log TO PUBLIC;

-- Alerts of the tables the reader may act on; those of a connection, of the database (a
-- paused copy) or of a table that is gone, to admins only. "table" is text: the table's
-- current name (renames are followed by oid), or its name as it was once it is dropped.
CREATE VIEW sfsync.alerts WITH (security_barrier) AS
SELECT a.id,
       a.raised_at,
       a.last_seen,
       a.count,
       COALESCE(m.tbl::text, a.table_name) AS "table",
       a.sobject,
       a.connection,
       a.kind,
       a.message,
       a.detail,
       a.resolved_at,
       a.acknowledged_at,
       a.acknowledged_by
FROM sfsync.alert_log a
LEFT JOIN sfsync.mappings m ON m.id = a.mapping_id
WHERE CASE WHEN m.id IS NOT NULL THEN sfsync.may_act_on(m.tbl) ELSE sfsync.is_admin() END;
GRANT SELECT ON sfsync.alerts TO PUBLIC;

-- Every table's progress; its error text only to those who may act on the table.
CREATE VIEW sfsync.backfill_progress AS
SELECT m.tbl AS "table",
       m.sobject,
       b.state,
       b.method,
       b.rows_done,
       b.rows_total,
       round(b.rate::numeric, 1) AS rate,
       CASE WHEN b.state = 'running' THEN make_interval(secs => round(b.eta_secs)) END AS eta,
       b.started_at,
       b.finished_at,
       b.updated_at,
       CASE WHEN sfsync.may_act_on(m.tbl) THEN b.last_error END AS last_error
FROM sfsync.backfills b
JOIN sfsync.mappings m ON m.id = b.mapping_id;
GRANT SELECT ON sfsync.backfill_progress TO PUBLIC;

-- Readable by everyone; Salesforce's text (a table's last_error, a connection's error and
-- why its change stream is down) only to those who may act on the table, a connection's
-- only to admins.

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
       CASE WHEN m.direction <> 'push' THEN CASE WHEN w.pid IS NULL THEN 'off'
            ELSE COALESCE(CASE WHEN p.admin THEN cs.stream ELSE split_part(cs.stream, ':', 1) END, 'off') END END AS change_stream,
       CASE WHEN m.direction <> 'push' AND w.pid IS NOT NULL THEN cs.stream_since END AS change_stream_since,
       s.last_event_at AS last_change_event,
       -- Every change still to be sent: pending, and failed ones waiting to be retried.
       COALESCE(o.depth, 0) AS outbox_depth,
       now() - o.oldest AS lag,
       COALESCE(e.errors, 0) AS error_count,
       s.pushed_total,
       s.pulled_total,
       s.hwm_modstamp AS pulled_through,
       cs.api_calls,
       cs.api_used,
       cs.api_max,
       COALESCE(cp.message, CASE WHEN p.may_act THEN s.last_error END, CASE WHEN p.admin THEN cs.last_error END) AS last_error,
       COALESCE(c.conflicts, 0) AS conflicts,
       COALESCE(r.reviews, 0) AS pending_delete_reviews,
       s.deletes_checked_at AS last_delete_check,
       s.reconciled_at AS last_reconciliation,
       s.reconciled_missing,
       s.formulas_refreshed_at AS last_formula_refresh,
       COALESCE(o.failed, 0) AS outbox_failed,
       -- One budget per org for the cluster ('org'), or each process's own ('process':
       -- sfsync is not in shared_preload_libraries); the calls it holds now.
       sfsync.api_budget_scope() AS api_budget_scope,
       sfsync.api_budget_left(m.connection) AS api_budget_left,
       CASE WHEN m.direction <> 'push' AND w.pid IS NOT NULL THEN cs.stream_transport END AS change_stream_transport
FROM sfsync.mappings m
LEFT JOIN sfsync.sync_state s ON s.mapping_id = m.id
LEFT JOIN sfsync.connection_state cs ON cs.connection = m.connection
LEFT JOIN LATERAL (SELECT sfsync.worker_pid() AS pid) w ON true
LEFT JOIN LATERAL (SELECT sfsync.paused_copy() AS message) cp ON true
LEFT JOIN LATERAL (SELECT sfsync.may_act_on(m.tbl) AS may_act, sfsync.is_admin() AS admin) p ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS depth, count(*) FILTER (WHERE ob.state = 'failed') AS failed,
           min(captured_at) FILTER (WHERE ob.state = 'pending') AS oldest
    FROM sfsync.outbox ob WHERE ob.mapping_id = m.id
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

-- Synced queries (sfsync.sync_query), one row each, readable by everyone; the query text and
-- Salesforce's error text only to the query's owner and admins.
CREATE VIEW sfsync.queries AS
SELECT q.name,
       q.sobject,
       q.connection,
       q.owner::regrole AS owner,
       q.key_column AS key,
       q.key_field,
       q.every,
       q.on_remove,
       CASE
           WHEN sfsync.paused_copy() IS NOT NULL THEN 'paused: copy of another database'
           WHEN q.last_error IS NOT NULL THEN 'error'
           WHEN q.every IS NULL AND NOT EXISTS (SELECT 1 FROM sfsync.query_sources s WHERE s.query_id = q.id) THEN 'on demand'
           WHEN sfsync.worker_pid() IS NULL THEN 'no worker'
           ELSE 'running'
       END AS state,
       q.last_refresh_at,
       CASE WHEN q.every IS NOT NULL THEN COALESCE(q.next_refresh_at, q.created_at) END AS next_refresh_at,
       (SELECT count(*) FROM sfsync.query_rows r WHERE r.query_id = q.id) AS rows_synced,
       q.last_summary,
       q.sent_total,
       (SELECT count(*) FROM sfsync.query_errors e WHERE e.query_id = q.id) AS error_count,
       CASE WHEN p.may_act THEN q.query END AS query,
       CASE WHEN p.may_act THEN q.last_error END AS last_error,
       q.created_at,
       ARRAY(SELECT s.tbl FROM sfsync.query_sources s WHERE s.query_id = q.id ORDER BY s.tbl::text) AS sources
FROM sfsync.synced_queries q
LEFT JOIN LATERAL (SELECT sfsync.is_admin() OR pg_catalog.pg_has_role(q.owner, 'USAGE') AS may_act) p ON true;
GRANT SELECT ON sfsync.queries TO PUBLIC;

-- Conflicts and held deletes carry rows of every synced table: admins read them (a table's
-- owner sees their counts in sfsync.status and decides with approve_deletes/reject_deletes).
-- Not row-level security: pg_dump would dump an extension table's policies, and a restore
-- would then fail on the ones CREATE EXTENSION already made.
GRANT SELECT ON sfsync.conflicts, sfsync.delete_review TO sfsync_admin;

-- Taking over a copy's records is for admins (see docs/privileges.md).
REVOKE EXECUTE ON FUNCTION sfsync.adopt(boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sfsync.adopt(boolean) TO sfsync_admin;

-- A dropped synced table takes its mapping (and outbox, state, errors) with it; a dropped
-- source of a synced query leaves its list (the query's other sources stay).
CREATE FUNCTION sfsync.on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM sfsync.mappings
    WHERE tbl::oid IN (SELECT objid FROM pg_event_trigger_dropped_objects()
                       WHERE classid = 'pg_class'::regclass AND objsubid = 0);
    DELETE FROM sfsync.query_sources
    WHERE tbl::oid IN (SELECT objid FROM pg_event_trigger_dropped_objects()
                       WHERE classid = 'pg_class'::regclass AND objsubid = 0);
END
$$;
CREATE EVENT TRIGGER sfsync_sql_drop ON sql_drop EXECUTE FUNCTION sfsync.on_sql_drop();

-- An ALTER TABLE of a synced table: the mapping follows a renamed column or table, unmaps a
-- dropped column, re-checks a type change against its field, and refuses what it cannot
-- follow (src/api/ddl.rs; docs/guide.md "Schema changes"). In C: it reads the statement.
CREATE FUNCTION sfsync.follow_ddl() RETURNS event_trigger
LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'sfsync_follow_ddl';
CREATE EVENT TRIGGER sfsync_follow_ddl ON ddl_command_end WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION sfsync.follow_ddl();

-- Function privileges (docs/privileges.md). Functions not named here stay executable by
-- PUBLIC and check their caller themselves (src/privilege.rs).
-- Trigger functions: EXECUTE is checked when a trigger is created, never when it fires;
-- sync_table creates the triggers as the extension owner, so no other role can attach
-- them to a table.
REVOKE EXECUTE ON FUNCTION sfsync.capture(), sfsync.write_through(), sfsync.hold_delete(), sfsync.refuse_truncate(),
    sfsync.mappings_removed(), sfsync.on_sql_drop(), sfsync.follow_ddl(), sfsync.shadow_capture() FROM PUBLIC;
-- Called by sfsync's own code and install script only.
REVOKE EXECUTE ON FUNCTION sfsync.wake_at_commit(), sfsync.notify_launcher() FROM PUBLIC;
-- Opting a table in sends its rows to Salesforce: admins, and the roles a DBA grants it to;
-- sync_table also requires the privileges of the table's owner.
REVOKE EXECUTE ON FUNCTION sfsync.sync_table(regclass, text, text, jsonb, text, text, text, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sfsync.sync_table(regclass, text, text, jsonb, text, text, text, text, text, text, text) TO sfsync_admin;
REVOKE EXECUTE ON FUNCTION sfsync.mirror(text, text, text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sfsync.mirror(text, text, text, text[]) TO sfsync_admin;
-- Going live starts sending the table's rows, as sync_table does: the same rule.
REVOKE EXECUTE ON FUNCTION sfsync.go_live(regclass, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sfsync.go_live(regclass, text) TO sfsync_admin;
-- Connections and secrets: administrators only (docs/secrets.md). add_connection checks
-- again inside, so a stray GRANT to PUBLIC does not open it.
REVOKE EXECUTE ON FUNCTION sfsync.add_connection(text, text, text, text, text, text, text, text, text, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sfsync.add_connection(text, text, text, text, text, text, text, text, text, text, text, text, text) TO sfsync_admin;
REVOKE EXECUTE ON FUNCTION sfsync.set_change_stream(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sfsync.set_change_stream(text, text, text) TO sfsync_admin;

-- Pushing a query's result sends what its caller can read to Salesforce: admins, and the
-- roles a DBA grants it to (the query always runs as its caller).
REVOKE EXECUTE ON FUNCTION sfsync.sync_query(text, text, text, text, text, text, interval, text, oid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sfsync.sync_query(text, text, text, text, text, text, interval, text, oid[]) TO sfsync_admin;

-- Tell the launcher (if preloaded) that this database now needs a worker.
SELECT sfsync.notify_launcher();
