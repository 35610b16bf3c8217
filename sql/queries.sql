-- Synced queries (sfsync.sync_query): a query's result pushed to Salesforce with diffing.
-- Owner only, like the rest of the catalog; sfsync.queries and sfsync.errors show them to
-- the query's owner and admins.

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
