-- A leaner write set per event and per job (issue 5). Measured with
-- `tests/bench/run.sh --pg-stats`: Postgres spent ~300 µs of CPU per no-op job,
-- most of it on rows and index entries nobody needed until the job finished.
--
-- * event_attempts is insert-only: an attempt is written once, when it ends (done,
--   failed, dead, lease_lost), with the started_at its job recorded at the claim.
--   The claim no longer inserts a row that the outcome then rewrites, and no
--   statement looks an attempt up, so no plan can scan the table. The attempt in
--   progress is shown from the running job (events.c).
-- * No foreign keys from event_attempts and job_events to events: each was a
--   per-row check that also locked the event row (a write to its page) on every
--   link the intake made and every attempt a worker recorded. Events are deleted
--   only by retention and by deleting a connection; the statement trigger below
--   removes their links and attempts in the same statement, set-based.
-- * jobs loses two index entries per claim (and event_attempts and jobs_history one
--   per finished job, below): connection_id is only searched when a
--   connection is deleted (a scan of the small hot table then), and unique_key is
--   NULL for every event job, so its unique index only covers the jobs that have one.

ALTER TABLE event_attempts DROP CONSTRAINT event_attempts_event_id_fkey;
ALTER TABLE job_events DROP CONSTRAINT job_events_event_id_fkey;

CREATE FUNCTION rd_events_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_events WHERE event_id IN (SELECT id FROM old_events);
    DELETE FROM event_attempts WHERE event_id IN (SELECT id FROM old_events);
    RETURN NULL;
END
$$;

CREATE TRIGGER events_deleted AFTER DELETE ON events
    REFERENCING OLD TABLE AS old_events
    FOR EACH STATEMENT EXECUTE FUNCTION rd_events_deleted();

-- Attempts left unfinished by the old claim (a rosterd stopped mid-job before this
-- migration) are ended as their lease would have ended them.
UPDATE event_attempts SET finished_at = now(), outcome = 'lease_lost',
       error = 'attempt interrupted by an upgrade'
WHERE finished_at IS NULL;

-- Two more index entries per finished job: attempts are read by event (their own
-- index), never by id; history is pruned by finished_at, which grows with the
-- table's physical order, so a BRIN summary serves that scan.
ALTER TABLE event_attempts DROP CONSTRAINT event_attempts_pkey;
DROP INDEX jobs_history_finished;
CREATE INDEX jobs_history_finished ON jobs_history USING brin (finished_at);

-- A vacuum that finds empty pages at the end of a table (a drained queue) truncates
-- them under an ACCESS EXCLUSIVE lock, which stalls every claim and intake batch
-- while it lasts. The hot tables shrink and grow again all day: keep their pages.
ALTER TABLE jobs SET (vacuum_truncate = false);
ALTER TABLE job_events SET (vacuum_truncate = false);

DROP INDEX jobs_connection;
DROP INDEX jobs_unique_key;
CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key) WHERE unique_key IS NOT NULL;

-- Coalescing without rewriting the pending job. The old function upserted with
-- ON CONFLICT DO UPDATE: a new version of the job row per intake batch (dead tuples
-- in the hot table at the intake's rate) and an exclusive row lock held until the
-- batch's commit, so two intake batches naming the same person waited for each
-- other's WAL flush (~400 µs of Postgres time per event at 64 connections).
-- Now a batch inserts the jobs that are missing (DO NOTHING) and takes a SHARE lock
-- on the pending job of each (kind, key): batches share it without waiting, and a
-- claim (FOR UPDATE SKIP LOCKED) passes the job by until the batch commits, so a
-- job is never claimed with a link it cannot see. A job claimed between the two
-- statements is no longer pending: the loop then inserts its follow-up job.
CREATE TYPE rd_routed_event AS (id bigint, kind text, key text, connection_id bigint,
                                subject text);
CREATE TYPE rd_job_ref AS (id bigint, kind text, key text);

-- Generic plans: with array arguments the plan cache judged custom plans cheaper and
-- planned two of these statements afresh on every intake batch (~40 µs each).
CREATE OR REPLACE FUNCTION rd_jobs_for_events(evs rd_event_ref[]) RETURNS integer
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    routed rd_routed_event[];
    found rd_job_ref[];
    nkeys integer;
    tries integer := 0;
    linked integer;
BEGIN
    routed := ARRAY(
        SELECT ROW(ev.id, coalesce(r.kind, 'unrouted'),
                   ev.connection_id::text || ':' || ev.source || ':' || coalesce(ev.subject, '*'),
                   ev.connection_id, ev.subject)::rd_routed_event
        FROM unnest(evs) AS ev
        LEFT JOIN LATERAL (
            SELECT jr.kind FROM job_routes jr
            WHERE jr.source IN ('*', ev.source) AND ev.event_type LIKE jr.pattern
            ORDER BY jr.priority, length(jr.pattern) DESC
            LIMIT 1) r ON true);
    SELECT count(*) INTO nkeys FROM (SELECT DISTINCT kind, key FROM unnest(routed)) k;
    LOOP
        INSERT INTO jobs (kind, key, connection_id, subject)
        SELECT DISTINCT ON (r.kind, r.key) r.kind, r.key, r.connection_id, r.subject
        FROM unnest(routed) AS r ORDER BY r.kind, r.key
        ON CONFLICT (kind, key) WHERE state = 'pending' AND unique_key IS NULL DO NOTHING;
        -- LATERAL: one probe of jobs_coalesce per key, whatever the statistics said
        -- when this plan was cached.
        found := ARRAY(
            SELECT ROW(j.id, j.kind, j.key)::rd_job_ref
            FROM (SELECT DISTINCT r.kind, r.key FROM unnest(routed) AS r) k
            CROSS JOIN LATERAL (
                SELECT jj.id, jj.kind, jj.key FROM jobs jj
                WHERE jj.kind = k.kind AND jj.key = k.key
                  AND jj.state = 'pending' AND jj.unique_key IS NULL
                FOR SHARE) j
            ORDER BY j.kind, j.key);
        EXIT WHEN cardinality(found) >= nkeys;
        tries := tries + 1;
        IF tries >= 20 THEN
            RAISE EXCEPTION 'rd_jobs_for_events: no pending job for % of % keys after % tries',
                nkeys - cardinality(found), nkeys, tries;
        END IF;
    END LOOP;
    INSERT INTO job_events (job_id, event_id)
    SELECT f.id, r.id FROM unnest(routed) AS r JOIN unnest(found) AS f USING (kind, key)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS linked = ROW_COUNT;
    RETURN linked;
END
$$;
