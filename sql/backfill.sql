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
    last_error     text
);
GRANT SELECT ON sfsync.backfills TO PUBLIC;

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
       b.last_error
FROM sfsync.backfills b
JOIN sfsync.mappings m ON m.id = b.mapping_id;
GRANT SELECT ON sfsync.backfill_progress TO PUBLIC;
