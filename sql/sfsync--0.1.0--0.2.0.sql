-- sfsync 0.1.0 -> 0.2.0. Every catalog change of 0.2.0, in the order of sql/*.sql; the
-- upgrade e2e test (pgrx-tests/tests/upgrade_e2e.rs) checks that an upgraded database has
-- the same schema as a fresh 0.2.0 install.
\echo Use "ALTER EXTENSION sfsync UPDATE TO '0.2.0'" to load this file. \quit

-- Namespaced external IDs and copies of a database (plan::namespace, sync::identity) ------
-- Mappings made before 0.2.0 keep an empty namespace: they go on writing bare keys.
ALTER TABLE sfsync.mappings ADD COLUMN namespace text NOT NULL DEFAULT '' CHECK (namespace ~ '^([0-9a-f]{12})?$');
CREATE UNIQUE INDEX mappings_namespace ON sfsync.mappings (namespace) WHERE namespace <> '';

CREATE TABLE sfsync.instance (
    singleton         boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    system_identifier numeric NOT NULL,
    database_oid      oid NOT NULL,
    database_name     text NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now()
);
SELECT pg_catalog.pg_extension_config_dump('sfsync.instance', '');
GRANT SELECT ON sfsync.instance TO PUBLIC;

CREATE FUNCTION sfsync."adopt"(
	"fresh_namespace" bool DEFAULT false /* bool */
) RETURNS jsonb /* JsonB */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'adopt_wrapper';
REVOKE EXECUTE ON FUNCTION sfsync.adopt(boolean) FROM PUBLIC;

CREATE FUNCTION sfsync."external_key"(
	"tbl" regclass, /* PgRelation */
	"key" TEXT /* & str */
) RETURNS TEXT /* String */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'external_key_wrapper';

CREATE FUNCTION sfsync."paused_copy"() RETURNS TEXT /* Option < String > */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'paused_copy_wrapper';

CREATE OR REPLACE VIEW sfsync.status AS
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
-- This database owns the namespaces of its mappings (it is where they were made).
INSERT INTO sfsync.instance (system_identifier, database_oid, database_name)
SELECT c.system_identifier, d.oid, d.datname
FROM pg_catalog.pg_control_system() c, pg_catalog.pg_database d
WHERE d.datname = pg_catalog.current_database() AND EXISTS (SELECT 1 FROM sfsync.mappings);
