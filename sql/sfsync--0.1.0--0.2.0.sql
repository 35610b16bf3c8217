-- sfsync 0.1.0 -> 0.2.0. Every catalog change of 0.2.0, in the order of sql/*.sql; the
-- upgrade e2e test (pgrx-tests/tests/upgrade_e2e.rs) checks that an upgraded database has
-- the same schema as a fresh 0.2.0 install.
\echo Use "ALTER EXTENSION sfsync UPDATE TO '0.2.0'" to load this file. \quit

-- privileges (docs/privileges.md): the sfsync_admin role, who may read what, which
-- functions PUBLIC may execute, and trigger helpers that check their table.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'sfsync_admin') THEN
        CREATE ROLE sfsync_admin NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- made meanwhile by a concurrent install in another database
END
$$;

-- Salesforce's error texts are shown by the views below, to those who may act on the table.
REVOKE SELECT ON sfsync.sync_state, sfsync.connection_state FROM PUBLIC;
REVOKE ALL ON sfsync.backfills FROM PUBLIC;
GRANT SELECT ON sfsync.conflicts, sfsync.delete_review TO sfsync_admin;

-- src/api/access.rs
CREATE FUNCTION sfsync."is_admin"() RETURNS bool /* bool */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'is_admin_wrapper';
CREATE FUNCTION sfsync."may_act_on"(
	"tbl" oid /* Oid */
) RETURNS bool /* bool */
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'may_act_on_wrapper';

-- The capture trigger runs as the writer and switches to the catalog's owner for its own
-- steps: SECURITY DEFINER set the user and search_path again for every row.
ALTER FUNCTION sfsync.capture() SECURITY INVOKER RESET ALL;

-- The outbox's CHECK constraints were compiled again by every statement writing it (a tenth
-- of a synced single-row INSERT); its op and state come from sfsync's own code only.
ALTER TABLE sfsync.outbox DROP CONSTRAINT outbox_op_check, DROP CONSTRAINT outbox_state_check;

CREATE OR REPLACE FUNCTION sfsync.refuse_truncate() RETURNS trigger
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

CREATE OR REPLACE FUNCTION sfsync.hold_delete() RETURNS trigger
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

CREATE OR REPLACE VIEW sfsync.errors WITH (security_barrier) AS
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
JOIN sfsync.mappings m ON m.id = e.mapping_id
WHERE sfsync.may_act_on(m.tbl);
GRANT SELECT ON sfsync.errors TO PUBLIC;

CREATE OR REPLACE VIEW sfsync.backfill_progress AS
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
GRANT EXECUTE ON FUNCTION sfsync.adopt(boolean) TO sfsync_admin;

CREATE FUNCTION sfsync."external_key"(
	"tbl" regclass, /* PgRelation */
	"key" TEXT /* & str */
) RETURNS TEXT /* String */
STRICT STABLE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'external_key_wrapper';

CREATE FUNCTION sfsync."paused_copy"() RETURNS TEXT /* Option < String > */
STRICT STABLE PARALLEL RESTRICTED
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'paused_copy_wrapper';


GRANT SELECT ON sfsync.status TO PUBLIC;

REVOKE EXECUTE ON FUNCTION sfsync.capture(), sfsync.write_through(), sfsync.hold_delete(), sfsync.refuse_truncate(),
    sfsync.mappings_removed(), sfsync.on_sql_drop() FROM PUBLIC;
-- Called by sfsync's own code and install script only.
REVOKE EXECUTE ON FUNCTION sfsync.wake_at_commit(), sfsync.notify_launcher() FROM PUBLIC;
-- Opting a table in sends its rows to Salesforce: admins, and the roles a DBA grants it to;
-- sync_table also requires the privileges of the table's owner.
REVOKE EXECUTE ON FUNCTION sfsync.sync_table(regclass, text, text, jsonb, text, text, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sfsync.sync_table(regclass, text, text, jsonb, text, text, text, text, text, text) TO sfsync_admin;
REVOKE EXECUTE ON FUNCTION sfsync.mirror(text, text, text, text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sfsync.mirror(text, text, text, text[]) TO sfsync_admin;

-- This database owns the namespaces of its mappings (it is where they were made).
INSERT INTO sfsync.instance (system_identifier, database_oid, database_name)
SELECT c.system_identifier, d.oid, d.datname
FROM pg_catalog.pg_control_system() c, pg_catalog.pg_database d
WHERE d.datname = pg_catalog.current_database() AND EXISTS (SELECT 1 FROM sfsync.mappings);

-- conflicts only for real conflicts (issue 13)
-- The values each settled push sent, so that an echo of one is no conflict.
ALTER TABLE sfsync.outbox_archive ADD COLUMN sent jsonb;

-- match: link existing records by natural key (issue 14)
-- The key rows without a Salesforce Id are linked by (plan::matching).
ALTER TABLE sfsync.mappings ADD COLUMN match_keys jsonb;
-- sync_table takes match => ...: a new argument, so a new function.
DROP FUNCTION sfsync.sync_table(regclass, text, text, jsonb, text, text, text, text, text, text);
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
REVOKE EXECUTE ON FUNCTION sfsync.sync_table(regclass, text, text, jsonb, text, text, text, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sfsync.sync_table(regclass, text, text, jsonb, text, text, text, text, text, text, text) TO sfsync_admin;

-- alerts (issue 19): sfsync.alert_log, the sfsync.alerts view, sfsync.ack_alert (src/alerts.rs)
CREATE TABLE sfsync.alert_log (
    id              bigserial PRIMARY KEY,
    mapping_id      integer REFERENCES sfsync.mappings (id) ON DELETE SET NULL,
    table_name      text,
    sobject         text,
    connection      text,
    kind            text NOT NULL CHECK (kind IN ('column_renamed', 'table_renamed', 'column_dropped', 'field_removed',
                        'field_added', 'field_changed', 'type_refused', 'copy_paused', 'auth_failed', 'budget_paused',
                        'out_of_step')),
    message         text NOT NULL,
    detail          jsonb NOT NULL DEFAULT '{}',
    raised_at       timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now(),
    count           integer NOT NULL DEFAULT 1,
    -- The condition ended by itself (the login works again, the budget refilled, the copy
    -- was adopted): the next occurrence is a new alert.
    resolved_at     timestamptz,
    acknowledged_at timestamptz,
    acknowledged_by text
);
CREATE UNIQUE INDEX alert_log_open ON sfsync.alert_log (COALESCE(mapping_id, 0), COALESCE(connection, ''), kind)
    WHERE acknowledged_at IS NULL AND resolved_at IS NULL;

-- Read through the sfsync.alerts view only.
REVOKE ALL ON sfsync.alert_log FROM PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('sfsync.alert_log', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.alert_log_id_seq', '');
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

-- sfsync::api::alerts::ack_alert
CREATE  FUNCTION sfsync."ack_alert"(
	"id" bigint /* i64 */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'ack_alert_wrapper';

-- schema changes (issue 19): ALTER TABLE of a synced table is followed (src/api/ddl.rs)
CREATE FUNCTION sfsync.follow_ddl() RETURNS event_trigger
LANGUAGE c SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS 'MODULE_PATHNAME', 'sfsync_follow_ddl';
CREATE EVENT TRIGGER sfsync_follow_ddl ON ddl_command_end WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION sfsync.follow_ddl();
REVOKE EXECUTE ON FUNCTION sfsync.follow_ddl() FROM PUBLIC;

-- sync_query (issue 14)
-- Synced queries: their definitions, the result Salesforce last accepted, rejected rows.

CREATE TABLE sfsync.synced_queries (
    id              serial PRIMARY KEY,
    name            text NOT NULL UNIQUE,
    query           text NOT NULL,
    sobject         text NOT NULL,
    connection      text NOT NULL REFERENCES sfsync.connections (name) ON UPDATE CASCADE,
    -- The role the query runs as: whoever called sync_query (never the worker's superuser).
    owner           oid NOT NULL,
    -- The result's column holding the key, and the field it is: 'Id' (update by Id) or an
    -- External ID field (upsert on it).
    key_column      text NOT NULL,
    key_field       text NOT NULL,
    -- resolved: [{column, field, sf_type, pg_type, createable, updateable, ...}]
    columns         jsonb NOT NULL,
    every           interval CHECK (every > interval '0'),
    on_remove       text NOT NULL DEFAULT 'clear' CHECK (on_remove IN ('clear', 'delete')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_refresh_at timestamptz,
    last_refresh_at timestamptz,
    last_summary    jsonb,
    sent_total      bigint NOT NULL DEFAULT 0,
    last_error      text,
    last_error_at   timestamptz
);

-- The result as Salesforce last accepted it, per key: the next refresh sends what differs.
CREATE TABLE sfsync.query_rows (
    query_id     integer NOT NULL REFERENCES sfsync.synced_queries (id) ON DELETE CASCADE,
    key          text NOT NULL,
    sfid         varchar(18),
    "values"     jsonb NOT NULL,
    refreshed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (query_id, key)
);

-- Rows Salesforce rejected (or the refresh could not send), shown in sfsync.errors; ids
-- from record_errors' sequence, so the view's ids stay unique.
CREATE TABLE sfsync.query_errors (
    id         bigint PRIMARY KEY DEFAULT nextval('sfsync.record_errors_id_seq'),
    query_id   integer NOT NULL REFERENCES sfsync.synced_queries (id) ON DELETE CASCADE,
    key        text NOT NULL,
    sfid       varchar(18),
    operation  text NOT NULL,
    error_code text NOT NULL,
    message    text NOT NULL,
    fields     text[] NOT NULL DEFAULT '{}',
    attempts   integer NOT NULL DEFAULT 1,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (query_id, key)
);

SELECT pg_catalog.pg_extension_config_dump('sfsync.synced_queries', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.synced_queries_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.query_rows', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.query_errors', '');
REVOKE ALL ON sfsync.synced_queries, sfsync.query_rows, sfsync.query_errors FROM PUBLIC;
-- sfsync::api::query::sync_query
CREATE  FUNCTION sfsync."sync_query"(
	"name" TEXT, /* & str */
	"query" TEXT, /* & str */
	"sobject" TEXT, /* & str */
	"connection" TEXT DEFAULT 'default', /* & str */
	"key" TEXT DEFAULT 'id', /* & str */
	"key_field" TEXT DEFAULT 'Id', /* & str */
	"every" INTERVAL DEFAULT NULL, /* Option < Interval > */
	"on_remove" TEXT DEFAULT 'clear' /* & str */
) RETURNS jsonb /* JsonB */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'sync_query_wrapper';
-- sfsync::api::query::refresh
CREATE  FUNCTION sfsync."refresh"(
	"name" TEXT /* & str */
) RETURNS jsonb /* JsonB */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'refresh_wrapper';
-- sfsync::api::query::unsync_query
CREATE  FUNCTION sfsync."unsync_query"(
	"name" TEXT /* & str */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'unsync_query_wrapper';
REVOKE EXECUTE ON FUNCTION sfsync.sync_query(text, text, text, text, text, text, interval, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sfsync.sync_query(text, text, text, text, text, text, interval, text) TO sfsync_admin;
-- Rows of synced queries in sfsync.errors (a new last column, query), and their own view.
CREATE OR REPLACE VIEW sfsync.errors WITH (security_barrier) AS
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
           WHEN q.every IS NULL THEN 'on demand'
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
       q.created_at
FROM sfsync.synced_queries q
LEFT JOIN LATERAL (SELECT sfsync.is_admin() OR pg_catalog.pg_has_role(q.owner, 'USAGE') AS may_act) p ON true;
GRANT SELECT ON sfsync.queries TO PUBLIC;

-- one API budget per org (issue 18): sfsync.status shows whose budget it is and what it holds.
-- sfsync::api::budget::api_budget_scope
CREATE  FUNCTION sfsync."api_budget_scope"() RETURNS TEXT /* &str */
STRICT STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'api_budget_scope_wrapper';
-- sfsync::api::budget::api_budget_left
CREATE  FUNCTION sfsync."api_budget_left"(
	"connection" TEXT /* &str */
) RETURNS bigint /* Option < i64 > */
STRICT VOLATILE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'api_budget_left_wrapper';

-- <qsource: synced queries refreshed when their source tables change (issue 14)>
-- Source tables (sync_query(..., sources => ...)): a statement trigger on each marks its
-- queries due (src/sync/query/sources.rs). A dropped table leaves (sfsync.on_sql_drop).
CREATE TABLE sfsync.query_sources (
    query_id integer NOT NULL REFERENCES sfsync.synced_queries (id) ON DELETE CASCADE,
    tbl      regclass NOT NULL,
    PRIMARY KEY (query_id, tbl)
);
CREATE INDEX query_sources_tbl_idx ON sfsync.query_sources (tbl);

-- Queries a source change made due: a row per statement (inserts only: writers of a source
-- never wait for each other), taken by the next refresh; many statements, one refresh.
-- A wake-up, not state: not dumped.
CREATE TABLE sfsync.query_due (
    query_id  integer NOT NULL REFERENCES sfsync.synced_queries (id) ON DELETE CASCADE,
    marked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX query_due_query_id_idx ON sfsync.query_due (query_id);

SELECT pg_catalog.pg_extension_config_dump('sfsync.query_sources', '');
REVOKE ALL ON sfsync.query_sources, sfsync.query_due FROM PUBLIC;

-- The source tables' trigger: runs as the writer's statement ends, in its transaction; the
-- worker is woken when it commits. SECURITY DEFINER: the writer has no rights on the
-- catalog. Only for its own table (TG_RELID); EXECUTE revoked, so only sfsync attaches it.
CREATE FUNCTION sfsync.query_source_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO sfsync.query_due (query_id)
    SELECT s.query_id FROM sfsync.query_sources s WHERE s.tbl = TG_RELID::regclass;
    IF FOUND THEN
        PERFORM sfsync.wake_at_commit();
    END IF;
    RETURN NULL;
END
$$;
REVOKE EXECUTE ON FUNCTION sfsync.query_source_changed() FROM PUBLIC;

-- sync_query takes sources => ...: a new argument, so a new function.
DROP FUNCTION sfsync.sync_query(text, text, text, text, text, text, interval, text);
-- sfsync::api::query::sync_query
CREATE  FUNCTION sfsync."sync_query"(
	"name" TEXT, /* & str */
	"query" TEXT, /* & str */
	"sobject" TEXT, /* & str */
	"connection" TEXT DEFAULT 'default', /* & str */
	"key" TEXT DEFAULT 'id', /* & str */
	"key_field" TEXT DEFAULT 'Id', /* & str */
	"every" INTERVAL DEFAULT NULL, /* Option < Interval > */
	"on_remove" TEXT DEFAULT 'clear', /* & str */
	"sources" oid[] DEFAULT NULL /* Option < Vec < pgrx :: pg_sys :: Oid > > */
) RETURNS jsonb /* JsonB */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'sync_query_wrapper';
REVOKE EXECUTE ON FUNCTION sfsync.sync_query(text, text, text, text, text, text, interval, text, oid[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sfsync.sync_query(text, text, text, text, text, text, interval, text, oid[]) TO sfsync_admin;

-- A dropped source table leaves its queries' lists.
CREATE OR REPLACE FUNCTION sfsync.on_sql_drop() RETURNS event_trigger
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

-- sfsync.queries shows the sources (a new last column).
CREATE OR REPLACE VIEW sfsync.queries AS
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

-- shadow mode and go_live (issue 14)
ALTER TABLE sfsync.mappings DROP CONSTRAINT mappings_mode_check;
ALTER TABLE sfsync.mappings ADD CONSTRAINT mappings_mode_check CHECK (mode IN ('async', 'write_through', 'shadow'));
-- A shadow run (sync_table(..., mode => 'shadow')): what the mapping would send if it were
-- live, and nothing is. One pending entry per record: a later change of the record folds
-- into it (plan::shadow), so the log holds at most one pending entry per row of the table.
-- sfsync.go_live queues the pending entries into the outbox and marks them queued; a new
-- shadow run of the table clears the log. Read through the sfsync.shadow_log view.
CREATE TABLE sfsync.shadow_entries (
    id           bigserial PRIMARY KEY,
    mapping_id   integer NOT NULL REFERENCES sfsync.mappings (id) ON DELETE CASCADE,
    op           text NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    pk           text NOT NULL,
    sfid         varchar(18),
    -- As in the outbox: the mapped columns an update changed (NULL: all), their values before.
    changed      text[],
    base         jsonb,
    -- The call an async push would make and the API it would use.
    operation    text NOT NULL CHECK (operation IN ('upsert', 'update', 'delete')),
    api          text NOT NULL CHECK (api IN ('collections', 'bulk')),
    -- The values it would send, by column (text form).
    field_values jsonb NOT NULL DEFAULT '{}',
    -- 'initial': a row the first sync would have sent; 'local': a change made during the run.
    origin       text NOT NULL CHECK (origin IN ('initial', 'local')),
    logged_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    queued_at    timestamptz
);
CREATE UNIQUE INDEX shadow_entries_pending ON sfsync.shadow_entries (mapping_id, pk) WHERE queued_at IS NULL;
SELECT pg_catalog.pg_extension_config_dump('sfsync.shadow_entries', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.shadow_entries_id_seq', '');
REVOKE ALL ON sfsync.shadow_entries FROM PUBLIC;
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

-- sfsync::capture::shadow_capture
CREATE FUNCTION sfsync."shadow_capture"()
	RETURNS TRIGGER
	LANGUAGE c
	AS 'MODULE_PATHNAME', 'shadow_capture_wrapper';
-- A shadow run's capture trigger logs into sfsync.shadow_entries for whoever writes.
ALTER FUNCTION sfsync.shadow_capture() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE EXECUTE ON FUNCTION sfsync.shadow_capture() FROM PUBLIC;

-- sfsync::api::shadow::go_live
CREATE  FUNCTION sfsync."go_live"(
	"tbl" regclass, /* pgrx::rel::PgRelation */
	"mode" TEXT DEFAULT 'async' /* &str */
) RETURNS jsonb /* pgrx::datum::json::JsonB */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'go_live_wrapper';
-- Going live starts sending the table's rows, as sync_table does: the same rule.
REVOKE EXECUTE ON FUNCTION sfsync.go_live(regclass, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sfsync.go_live(regclass, text) TO sfsync_admin;

-- sfsync.status as 0.2.0 has it (privileges: who sees last_error; copies: paused).
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
       sfsync.api_budget_left(m.connection) AS api_budget_left
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

-- pg_dump keeps all user state: error rows, backfill progress and the catalog's sequences
-- (a restored outbox must not see the ids it holds handed out again).
SELECT pg_catalog.pg_extension_config_dump('sfsync.record_errors', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.mappings_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.outbox_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.record_errors_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.conflicts_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.delete_review_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.backfills', '');
-- connections and secrets
-- Secrets read from files by the server: only their paths are stored.
ALTER TABLE sfsync.connections ADD COLUMN secret_files jsonb;
-- Secrets are no longer part of a pg_dump: take connection_secrets off the extension's
-- dump list (pg_extension_config_dump has no inverse; this is what ALTER EXTENSION ...
-- DROP TABLE does to the two arrays, keeping them aligned).
UPDATE pg_catalog.pg_extension e
SET extconfig = k.cfgs, extcondition = k.conds
FROM (
    SELECT array_agg(u.cfg ORDER BY u.i) AS cfgs, array_agg(u.cond ORDER BY u.i) AS conds
    FROM pg_catalog.pg_extension x, unnest(x.extconfig, x.extcondition) WITH ORDINALITY AS u(cfg, cond, i)
    WHERE x.extname = 'sfsync' AND u.cfg <> 'sfsync.connection_secrets'::regclass::oid
) k
WHERE e.extname = 'sfsync';
-- add_connection takes secrets as files too; administrators only.
DROP FUNCTION sfsync.add_connection(text, text, text, text, text, text, text, text, text);
-- sfsync::api::connection::add_connection
CREATE  FUNCTION sfsync."add_connection"(
	"name" TEXT, /* & str */
	"login_url" TEXT, /* & str */
	"client_id" TEXT, /* & str */
	"client_secret" TEXT DEFAULT NULL, /* Option < & str > */
	"username" TEXT DEFAULT NULL, /* Option < & str > */
	"password" TEXT DEFAULT NULL, /* Option < & str > */
	"private_key" TEXT DEFAULT NULL, /* Option < & str > */
	"auth_flow" TEXT DEFAULT 'client_credentials', /* & str */
	"refresh_token" TEXT DEFAULT NULL, /* Option < & str > */
	"client_secret_file" TEXT DEFAULT NULL, /* Option < & str > */
	"password_file" TEXT DEFAULT NULL, /* Option < & str > */
	"private_key_file" TEXT DEFAULT NULL, /* Option < & str > */
	"refresh_token_file" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS jsonb /* JsonB */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'add_connection_wrapper';
REVOKE EXECUTE ON FUNCTION sfsync.add_connection(text, text, text, text, text, text, text, text, text, text, text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sfsync.add_connection(text, text, text, text, text, text, text, text, text, text, text, text, text) TO sfsync_admin;

-- Re-mapping (issue 19): sync_table run again with more fields backfills just those columns.
ALTER TABLE sfsync.backfills ADD COLUMN columns text[];

-- Mirrors follow fields added in Salesforce (issue 19): which mappings mirror() made with
-- every field.
ALTER TABLE sfsync.mappings ADD COLUMN mirror_all boolean NOT NULL DEFAULT false;

-- Pub/Sub API change stream (issue 21): each connection chooses its transport
-- (sfsync.set_change_stream), the status shows which one is live.
ALTER TABLE sfsync.connections
    ADD COLUMN stream text NOT NULL DEFAULT 'auto' CHECK (stream IN ('auto', 'pubsub', 'cometd')),
    ADD COLUMN pubsub_endpoint text;
ALTER TABLE sfsync.connection_state ADD COLUMN stream_transport text;
-- sfsync::api::stream::set_change_stream
CREATE  FUNCTION sfsync."set_change_stream"(
	"connection" TEXT, /* &str */
	"stream" TEXT, /* &str */
	"pubsub_endpoint" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS void
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'set_change_stream_wrapper';
REVOKE EXECUTE ON FUNCTION sfsync.set_change_stream(text, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION sfsync.set_change_stream(text, text, text) TO sfsync_admin;
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
