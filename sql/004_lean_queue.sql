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
-- * jobs loses two index entries per claim: connection_id is only searched when a
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

DROP INDEX jobs_connection;
DROP INDEX jobs_unique_key;
CREATE UNIQUE INDEX jobs_unique_key ON jobs (unique_key) WHERE unique_key IS NOT NULL;
