-- Backfills (full loads from Salesforce): one row per mapping, written by sfsync.backfill()
-- (state 'pending') and by the worker as it goes, so a restarted worker resumes where the
-- last committed batch left off instead of starting over.
CREATE TABLE sfsync.backfills (
    mapping_id     integer PRIMARY KEY REFERENCES sfsync.mappings (id) ON DELETE CASCADE,
    state          text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'running', 'done', 'failed')),
    method         text CHECK (method IN ('rest', 'bulk')),
    rows_done      bigint NOT NULL DEFAULT 0,
    rows_total     bigint,                    -- COUNT() at the start: an estimate
    -- Resume points: the Bulk job and the page being read (locator, records taken from it),
    -- and the last applied record in (SystemModstamp, Id) order for a new query.
    job_id         text,
    locator        text,
    page_rows      bigint NOT NULL DEFAULT 0,
    last_modstamp  timestamptz,
    last_id        varchar(18),
    -- Where incremental polling continues once the load is done.
    start_mark     timestamptz,
    rate           double precision,          -- rows/s of the current run
    eta_secs       double precision,
    run_started_at timestamptz,               -- this run (a restart begins a new one)
    run_rows_start bigint NOT NULL DEFAULT 0,
    requested_at   timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    last_error     text,
    -- A column backfill (sync_table run again with more fields): only these columns, into
    -- the rows already there. NULL: a full load.
    columns        text[]
);
-- Not readable by PUBLIC (last_error carries Salesforce's text): sfsync.backfill_progress
-- (views.sql) shows it.
REVOKE ALL ON sfsync.backfills FROM PUBLIC;
-- Survives pg_dump / restore, like the rest of the catalog: a restored backfill resumes.
SELECT pg_catalog.pg_extension_config_dump('sfsync.backfills', '');
