-- sfsync catalog. Created first (bootstrap); functions follow, views and triggers last.
-- Privileges (docs/privileges.md): the schema is usable by everyone, connections and
-- mappings are readable; state, errors and row data are shown by the views in views.sql
-- to those who may act on the table; credentials live in connection_secrets, readable only
-- by the extension owner and superusers, and left out of pg_dump (docs/secrets.md).

-- Members of sfsync_admin administer sfsync. A role belongs to the cluster, not to this
-- database: an earlier install, another database or a DBA may have made it already, and it
-- outlives DROP EXTENSION.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'sfsync_admin') THEN
        CREATE ROLE sfsync_admin NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- made meanwhile by a concurrent install in another database
END
$$;

CREATE TABLE sfsync.connections (
    name         text PRIMARY KEY,
    login_url    text NOT NULL,
    client_id    text NOT NULL,
    auth_flow    text NOT NULL CHECK (auth_flow IN ('client_credentials', 'password', 'jwt', 'refresh_token')),
    username     text,
    instance_url text,
    org_id       text,
    user_id      text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    -- Secrets the server reads from files at each login: {"client_secret": "/path", ...}.
    secret_files jsonb,
    -- The change stream's transport (sfsync.set_change_stream): 'auto' is the Pub/Sub API,
    -- CometD while that can't be reached; and the Pub/Sub API's endpoint (NULL: Salesforce's).
    stream          text NOT NULL DEFAULT 'auto' CHECK (stream IN ('auto', 'pubsub', 'cometd')),
    pubsub_endpoint text
);

CREATE TABLE sfsync.connection_secrets (
    connection    text PRIMARY KEY REFERENCES sfsync.connections (name) ON DELETE CASCADE ON UPDATE CASCADE,
    client_secret text,
    password      text,
    private_key   text,
    refresh_token text
);

CREATE TABLE sfsync.connection_state (
    connection    text PRIMARY KEY REFERENCES sfsync.connections (name) ON DELETE CASCADE ON UPDATE CASCADE,
    api_calls     bigint NOT NULL DEFAULT 0,
    api_used      bigint,
    api_max       bigint,
    last_error    text,
    last_error_at timestamptz,
    -- The Change Data Capture stream, as the worker last saw it: 'connecting', 'live' or
    -- 'down: <why>'; NULL when none runs (sfsync.cdc off, nothing pulled, no worker yet).
    stream        text,
    stream_since  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    -- The transport of the live stream: 'pubsub' or 'cometd'.
    stream_transport text
);

CREATE TABLE sfsync.mappings (
    id          serial PRIMARY KEY,
    tbl         regclass NOT NULL UNIQUE,
    sobject     text NOT NULL,
    connection  text NOT NULL REFERENCES sfsync.connections (name) ON UPDATE CASCADE,
    pk_column   text NOT NULL,
    pk_type     text NOT NULL,
    external_id text NOT NULL,
    -- resolved mapping: [{column, field, sf_type, pg_type, createable, updateable}]
    columns     jsonb NOT NULL,
    fields      jsonb,
    direction   text NOT NULL DEFAULT 'bidirectional' CHECK (direction IN ('bidirectional', 'pull', 'push')),
    filter      text,
    conflict    text NOT NULL DEFAULT 'salesforce_wins' CHECK (conflict IN ('salesforce_wins', 'postgres_wins', 'last_modified_wins')),
    on_delete   text NOT NULL DEFAULT 'propagate' CHECK (on_delete IN ('propagate', 'ignore', 'review')),
    mode        text NOT NULL DEFAULT 'async' CHECK (mode IN ('async', 'write_through', 'shadow')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- What this mapping's external ID values start with: '<namespace>:<key>' (see
    -- docs/guide.md, "Whose record is it"). '' for mappings made before 0.2.0: bare keys.
    namespace   text NOT NULL DEFAULT '' CHECK (namespace ~ '^([0-9a-f]{12})?$'),
    -- sync_table(..., match): the natural key a row without a Salesforce Id is linked by
    -- to an existing record, [{column, field}] (plan::matching); NULL: never matched.
    match_keys  jsonb,
    -- Made by sfsync.mirror with every field: a field added in Salesforce becomes a column of
    -- the table, mapped and backfilled (sync/sf_schema.rs); else it is offered in an alert.
    mirror_all  boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX mappings_namespace ON sfsync.mappings (namespace) WHERE namespace <> '';

-- Which database owns the mappings' namespaces: the cluster (system identifier) and the
-- database (oid) that made or adopted them. A copy (CREATE DATABASE ... TEMPLATE, a
-- restored dump, a pg_upgrade) finds another identity here and pauses until an admin
-- calls sfsync.adopt(); a promoted physical replica has the same identity and goes on.
CREATE TABLE sfsync.instance (
    singleton         boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    system_identifier numeric NOT NULL,
    database_oid      oid NOT NULL,
    database_name     text NOT NULL,
    recorded_at       timestamptz NOT NULL DEFAULT now()
);

-- Captured local changes not yet confirmed by Salesforce: which record and, for an update,
-- which mapped columns changed (NULL: all). The push reads the values when it sends them.
CREATE TABLE sfsync.outbox (
    id              bigserial PRIMARY KEY,
    -- No foreign key: its check would cost every captured row a query. Entries of a
    -- removed mapping are deleted by the trigger on sfsync.mappings below.
    mapping_id      integer NOT NULL,
    -- op and state take the values of sfsync's own code only (users have no rights here),
    -- without CHECK constraints: the executor compiles a table's constraints again for each
    -- statement that writes it, and that was a tenth of a synced single-row INSERT.
    op              text NOT NULL,  -- insert, update, delete
    pk              text NOT NULL,
    sfid            varchar(18),
    changed         text[],
    -- For an update: the changed columns' values before it (text form), so the pull can
    -- tell a Salesforce change of the same column (a conflict) from Salesforce still
    -- holding the old value.
    base            jsonb,
    txid            xid8 NOT NULL DEFAULT pg_current_xact_id(),
    captured_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    state           text NOT NULL DEFAULT 'pending',  -- pending, failed
    attempts        integer NOT NULL DEFAULT 0,
    claimed_until   timestamptz,
    next_attempt_at timestamptz NOT NULL DEFAULT '-infinity'
);
CREATE INDEX outbox_record ON sfsync.outbox (mapping_id, pk);

CREATE FUNCTION sfsync.mappings_removed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM sfsync.outbox o USING removed r WHERE o.mapping_id = r.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER mappings_removed AFTER DELETE ON sfsync.mappings
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION sfsync.mappings_removed();

-- Settled outbox entries, kept for sfsync.archive_retention for audit, then purged by the
-- worker. Written in the transaction that removes them from the outbox.
CREATE TABLE sfsync.outbox_archive (
    id            bigint NOT NULL,           -- the outbox entry's id
    mapping_id    integer NOT NULL,
    table_name    text,                      -- the synced table when it was settled
    op            text NOT NULL,
    pk            text NOT NULL,
    sfid          varchar(18),
    changed       text[],
    txid          xid8 NOT NULL,
    captured_at   timestamptz NOT NULL,
    attempts      integer NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    outcome       text NOT NULL CHECK (outcome IN ('sent', 'discarded', 'skipped')),
    salesforce_id varchar(18),
    error         text,
    -- The values sent (column -> value as to_jsonb gives it): a Salesforce value equal to
    -- one is an echo of our push, not a change of Salesforce's (plan::conflict::echo).
    sent          jsonb
);
CREATE INDEX outbox_archive_processed ON sfsync.outbox_archive (processed_at);
CREATE INDEX outbox_archive_record ON sfsync.outbox_archive (mapping_id, pk);

CREATE TABLE sfsync.sync_state (
    mapping_id    integer PRIMARY KEY REFERENCES sfsync.mappings (id) ON DELETE CASCADE,
    hwm_modstamp  timestamptz,
    hwm_id        text,
    -- How far the check for records that stopped matching the mapping's filter has looked
    -- (see sync/filter.rs); NULL: from the beginning.
    filter_hwm    timestamptz,
    -- The delete check (sync/reconcile.rs): how far getDeleted has covered (Salesforce's
    -- latestDateCovered; NULL: from the backfill or the mapping's creation), when it last
    -- ran, and the last full reconciliation with how many linked rows it found missing.
    deletes_through    timestamptz,
    deletes_checked_at timestamptz,
    reconciled_at      timestamptz,
    reconciled_missing bigint,
    -- The last periodic refresh of mapped formula and roll-up fields (sync/formulas.rs).
    formulas_refreshed_at timestamptz,
    last_push_at  timestamptz,
    last_pull_at  timestamptz,
    -- Change events last applied to the table (or handed to its pull).
    last_event_at timestamptz,
    pushed_total  bigint NOT NULL DEFAULT 0,
    pulled_total  bigint NOT NULL DEFAULT 0,
    last_error    text,
    last_error_at timestamptz
);

-- Change Data Capture: the last replay id delivered per connection and channel, so a
-- restarted worker resumes the stream where it stopped.
CREATE TABLE sfsync.cdc_state (
    connection text NOT NULL REFERENCES sfsync.connections (name) ON DELETE CASCADE ON UPDATE CASCADE,
    channel    text NOT NULL,
    replay_id  bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (connection, channel)
);

-- One row per record Salesforce (or the local apply) rejected; cleared when it succeeds.
CREATE TABLE sfsync.record_errors (
    id            bigserial PRIMARY KEY,
    mapping_id    integer NOT NULL REFERENCES sfsync.mappings (id) ON DELETE CASCADE,
    direction     text NOT NULL CHECK (direction IN ('push', 'pull')),
    pk            text NOT NULL,
    sfid          varchar(18),
    operation     text NOT NULL,
    error_code    text NOT NULL,
    message       text NOT NULL,
    fields        text[] NOT NULL DEFAULT '{}',
    attempts      integer NOT NULL DEFAULT 1,
    next_retry_at timestamptz,
    first_seen    timestamptz NOT NULL DEFAULT now(),
    last_seen     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (mapping_id, direction, pk)
);

-- Records changed on both sides since the last sync, how the mapping's policy resolved them,
-- and the losing version (see docs/guide.md, "Conflicts"). Owner only: it holds row data.
CREATE TABLE sfsync.conflicts (
    id                  bigserial PRIMARY KEY,
    mapping_id          integer NOT NULL REFERENCES sfsync.mappings (id) ON DELETE CASCADE,
    "table"             regclass NOT NULL,
    key                 text NOT NULL,
    sfid                varchar(18),
    policy              text NOT NULL,
    winner              text NOT NULL CHECK (winner IN ('salesforce', 'postgres')),
    columns             text[] NOT NULL,
    postgres_values     jsonb NOT NULL,
    salesforce_values   jsonb NOT NULL,
    salesforce_modified timestamptz,
    postgres_modified   timestamptz,
    resolved_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX conflicts_record ON sfsync.conflicts (mapping_id, key);

-- Deletes held for a person to decide (on_delete => 'review'): from Salesforce (pulled) or
-- from Postgres (captured). sfsync.approve_delete / sfsync.reject_delete decide them.
CREATE TABLE sfsync.delete_review (
    id           bigserial PRIMARY KEY,
    mapping_id   integer NOT NULL REFERENCES sfsync.mappings (id) ON DELETE CASCADE,
    "table"      regclass NOT NULL,
    key          text NOT NULL,
    sfid         varchar(18),
    origin       text NOT NULL CHECK (origin IN ('salesforce', 'postgres')),
    requested_at timestamptz NOT NULL DEFAULT now(),
    "row"        jsonb,
    decided_at   timestamptz,
    decision     text CHECK (decision IN ('approved', 'rejected')),
    CHECK ((decided_at IS NULL) = (decision IS NULL))
);
CREATE UNIQUE INDEX delete_review_undecided ON sfsync.delete_review (mapping_id, origin, key) WHERE decided_at IS NULL;

-- Alerts: what a person should know about a mapping or a connection (schema changes, what
-- stops a mapping), shown by the sfsync.alerts view and announced by NOTIFY sfsync_alerts
-- (src/alerts.rs). An open alert of the same mapping (or connection) and kind is not
-- repeated: it gets last_seen and a count. mapping_id is cleared when the mapping goes; the
-- table's name as it was stays in table_name.
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

-- Configuration survives pg_dump / restore; secrets (connection_secrets) do not: a restored
-- connection says it needs them entered again (docs/secrets.md).
SELECT pg_catalog.pg_extension_config_dump('sfsync.connections', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.mappings', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.sync_state', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.outbox', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.cdc_state', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.outbox_archive', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.conflicts', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.delete_review', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.instance', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.record_errors', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.alert_log', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.shadow_entries', '');
-- Their sequences too: a restored outbox must not see ids it already holds handed out again.
SELECT pg_catalog.pg_extension_config_dump('sfsync.mappings_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.outbox_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.record_errors_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.conflicts_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.delete_review_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.alert_log_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('sfsync.shadow_entries_id_seq', '');

REVOKE ALL ON ALL TABLES IN SCHEMA sfsync FROM PUBLIC;
GRANT USAGE ON SCHEMA sfsync TO PUBLIC;
-- The outbox, its archive and error rows carry row data of synced tables: owner only.
-- sync_state and connection_state carry Salesforce's error text: sfsync.status shows them.
GRANT SELECT ON sfsync.connections, sfsync.mappings TO PUBLIC;
-- Which database owns the namespaces: no secret, and sfsync.status reads it as its caller.
GRANT SELECT ON sfsync.instance TO PUBLIC;
