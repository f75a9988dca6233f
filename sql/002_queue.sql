-- The job queue (DESIGN.md §1 "Level-triggered handlers", §7, §9): every event is
-- worked by a job; workers claim due jobs in batches with FOR UPDATE SKIP LOCKED under
-- a 15 s lease renewed by a heartbeat; the scheduler adds delayed and periodic jobs.
--
-- Why it is shaped like this:
-- * Jobs come from a statement-level trigger on events (one call per intake batch,
--   set-based SQL, no per-row plpgsql), so the intake never writes jobs itself and no
--   event can be stored without one.
-- * Events map to jobs through the link table job_events, not an events.job_id column:
--   the intake's write stays insert-only (no second version of every event row), a
--   coalesced job collects any number of events without touching them, and a replay
--   relinks an event to a new job while event_attempts keeps the old attempts. Links
--   of finished jobs are deleted with the job, so the table holds only open work.
-- * Coalescing: at most one pending job per (kind, key) among event jobs (unique
--   partial index jobs_coalesce); the trigger's INSERT … ON CONFLICT DO UPDATE returns
--   the existing job and the new events are linked to it. A running job is never
--   merged into (its handler may already have read the truth), so events arriving
--   during a run make one follow-up job. Handlers are level-triggered: one run
--   converges to the latest truth for all of them.
-- * Routing: job_routes maps (source, event_type LIKE pattern) to a kind; the lowest
--   priority wins. Unrouted types get kind 'unrouted', which no handler takes, so the
--   worker finishes them as done with the note 'no handler'. handlers/registry.c maps
--   kinds to code.
-- * Job states: pending (waiting for run_at), running (leased), failed (waiting to
--   retry; also lease-expired and handed-back jobs, which keeps them outside the
--   coalescing index), dead. Done jobs move to jobs_history, and dead ones after the
--   retention period, so the claim path's cost does not grow with history.
-- * job_slots records every periodic slot ever created, so several instances create
--   each slot exactly once even after its job has left the hot table.

CREATE TABLE job_routes (
    source   text NOT NULL CHECK (source IN ('*', 'personio', 'moco')),
    pattern  text NOT NULL,
    kind     text NOT NULL,
    priority integer NOT NULL DEFAULT 100,
    PRIMARY KEY (source, pattern)
);

-- Kinds are documented in include/rosterd/handler.h. test.* types serve tests and
-- benchmarks; a sender needs the connection's webhook secret to produce them.
INSERT INTO job_routes (source, pattern, kind, priority) VALUES
    ('*',        'test.script%',     'test.script',      10),
    ('*',        'test.%',           'noop',             20),
    ('personio', 'person.%',         'personio.person',  100),
    ('personio', 'employment.%',     'personio.person',  100),
    ('personio', 'absence-period.%', 'personio.absence', 100),
    ('moco',     'Presence.%',       'moco.presence',    100),
    ('moco',     'User.%',           'moco.user',        100);

-- The hot table: only open work. Frequent updates, so leave room for HOT updates
-- and vacuum it early.
CREATE TABLE jobs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL,
    key           text NOT NULL,
    connection_id bigint REFERENCES connections (id) ON DELETE CASCADE,
    subject       text,
    unique_key    text,
    payload       jsonb,
    state         text NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'running', 'failed', 'dead')),
    run_at        timestamptz NOT NULL DEFAULT now(),
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    note          text,
    lease_owner   text,
    lease_until   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02,
        autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_insert_scale_factor = 0.02);

CREATE UNIQUE INDEX jobs_coalesce ON jobs (kind, key) WHERE state = 'pending' AND unique_key IS NULL;
CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key);
CREATE INDEX jobs_due ON jobs (run_at, id) WHERE state IN ('pending', 'failed');
CREATE INDEX jobs_key_open ON jobs (key, run_at, id) WHERE state IN ('pending', 'failed', 'running');
CREATE INDEX jobs_leases ON jobs (lease_until) WHERE state = 'running';
CREATE INDEX jobs_connection ON jobs (connection_id);

-- No foreign key to jobs: links are deleted in the same statement that moves a job
-- to jobs_history, which a cascade (fired at statement end) would race with.
CREATE TABLE job_events (
    job_id   bigint NOT NULL,
    event_id bigint NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    PRIMARY KEY (job_id, event_id)
) WITH (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.02);
CREATE INDEX job_events_event ON job_events (event_id);

CREATE TABLE jobs_history (
    id            bigint PRIMARY KEY,
    kind          text NOT NULL,
    key           text NOT NULL,
    connection_id bigint,
    subject       text,
    unique_key    text,
    payload       jsonb,
    state         text NOT NULL CHECK (state IN ('done', 'dead', 'replayed')),
    attempts      integer NOT NULL,
    last_error    text,
    note          text,
    created_at    timestamptz NOT NULL,
    run_at        timestamptz NOT NULL,
    started_at    timestamptz,
    finished_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_history_finished ON jobs_history (finished_at);

CREATE TABLE job_slots (
    unique_key text PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- What routing needs of an event; lets the trigger pass its transition table and a
-- replay pass stored events to one function.
CREATE TYPE rd_event_ref AS (id bigint, connection_id bigint, source text, event_type text,
                             subject text);

-- Creates or joins one pending job per (kind, key) for the given events and links
-- them. Rows are inserted in (kind, key) order so concurrent batches lock pending
-- jobs in one order and cannot deadlock. Returns the number of links made.
-- plpgsql, not sql: a LANGUAGE sql function is parsed and planned on every call,
-- which was the largest single cost of an intake batch; plpgsql caches the plan.
CREATE FUNCTION rd_jobs_for_events(evs rd_event_ref[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    linked integer;
BEGIN
    WITH routed AS (
        SELECT ev.id, ev.connection_id, ev.subject,
               coalesce(r.kind, 'unrouted') AS kind,
               ev.connection_id::text || ':' || ev.source || ':' || coalesce(ev.subject, '*') AS key
        FROM unnest(evs) AS ev
        LEFT JOIN LATERAL (
            SELECT jr.kind FROM job_routes jr
            WHERE jr.source IN ('*', ev.source) AND ev.event_type LIKE jr.pattern
            ORDER BY jr.priority, length(jr.pattern) DESC
            LIMIT 1) r ON true
    ), j AS (
        INSERT INTO jobs (kind, key, connection_id, subject)
        SELECT DISTINCT ON (kind, key) kind, key, connection_id, subject
        FROM routed ORDER BY kind, key
        ON CONFLICT (kind, key) WHERE state = 'pending' AND unique_key IS NULL
        DO UPDATE SET updated_at = excluded.updated_at
        RETURNING id, kind, key
    ), l AS (
        INSERT INTO job_events (job_id, event_id)
        SELECT j.id, routed.id FROM routed JOIN j USING (kind, key)
        ON CONFLICT DO NOTHING
        RETURNING 1
    )
    SELECT count(*)::integer INTO linked FROM l;
    RETURN linked;
END
$$;

CREATE FUNCTION rd_events_enqueue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM rd_jobs_for_events(ARRAY(
        SELECT ROW(n.id, n.connection_id, n.source, n.event_type, n.subject)::rd_event_ref
        FROM new_events n));
    RETURN NULL;
END
$$;

CREATE TRIGGER events_enqueue AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION rd_events_enqueue();

-- "The end of the last day": local midnight after last_day in tz, plus delay days
-- (DESIGN.md §7). For handlers that schedule deactivations; arithmetic stays in SQL.
CREATE FUNCTION rd_local_day_end(last_day date, tz text, delay_days integer DEFAULT 0)
RETURNS timestamptz LANGUAGE sql STABLE AS $$
    SELECT ((last_day + 1 + coalesce(delay_days, 0))::timestamp) AT TIME ZONE tz
$$;
