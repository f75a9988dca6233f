-- Jobs are derived from committed events after the intake's commit, not inside it
-- (issue 12). Measured with `tests/bench/run.sh --pg-stats`: about half of the
-- ~60 µs of Postgres CPU per stored event went to the enqueue trigger (routing,
-- the share-locked pending job, the link row and its two index entries), all of
-- it inside the intake's transaction, ahead of its WAL flush.
--
-- * The intake writes the event row and its index entries, nothing else. The row
--   carries the id of the transaction that inserted it (txid, pg_current_xact_id());
--   events_derive indexes (txid, id) so the deriver reads what is new in order.
-- * rd_derive_jobs(), called by any instance's dispatcher (queue.c) in its own
--   transaction, turns the events after the watermark into jobs in one batch:
--   routing, coalescing and the links exactly as before (rd_jobs_for_events), and
--   the watermark moves in the same transaction. A crash between the intake's
--   commit and the derivation loses nothing: the events stay after the watermark
--   and the next derivation, by whichever instance, takes them.
-- * One deriver at a time: the watermark row is locked FOR UPDATE SKIP LOCKED, so a
--   second instance skips its turn instead of waiting, and no event is derived twice.
--
-- Why the watermark is made of snapshots and not events.id: ids are drawn when a
-- row is inserted, and transactions commit in any order, so when a deriver sees id
-- 100 an uncommitted transaction may still hold id 99; "id > last seen" would skip
-- it for ever. A snapshot (pg_current_snapshot()) says exactly which transactions
-- had ended when it was taken: those below its xmin, and those below its xmax that
-- are not in its list of running ones (xip). Whatever such a transaction inserted
-- is visible from then on, and it can insert nothing more. So the deriver keeps the
-- snapshot of its last completed pass (prev) and takes a new one (cur): the events
-- to derive are those whose transaction is visible in cur but was not in prev, i.e.
-- txid in prev's xip or >= prev's xmax, and not in cur's xip and < cur's xmax (the
-- scheme of PgQ's ticks). Each event's transaction becomes visible in exactly one
-- such step, so each event is derived once, and none is skipped. A long-running
-- transaction elsewhere in the cluster holds back only its own events: a plain
-- "txid < xmin" horizon would stall every derivation behind it.
--
-- The set of one step is fixed once cur is taken, so a step can be worked in
-- batches of max_events: the watermark also holds cur and a cursor (at_xid, at_id),
-- the last event derived in (txid, id) order. When a batch comes back short, the
-- step is complete and cur becomes prev. Everything moves in the deriving
-- transaction, with the links: a crash rolls the batch back whole.
--
-- Existing rows keep txid NULL: the trigger already made their jobs, and NULL is
-- never inside a step. The first prev is this migration's snapshot: the ALTER TABLE
-- below waits for every transaction writing events, so the events inserted later
-- come from transactions the trigger no longer serves, visible only after it.

DROP TRIGGER events_enqueue ON events;
DROP FUNCTION rd_events_enqueue();

ALTER TABLE events ADD COLUMN txid xid8;
ALTER TABLE events ALTER COLUMN txid SET DEFAULT pg_current_xact_id();
CREATE INDEX events_derive ON events (txid, id);

CREATE TABLE job_derive_mark (
    one    boolean PRIMARY KEY DEFAULT true CHECK (one),
    prev   pg_snapshot NOT NULL, -- events visible in it are derived
    cur    pg_snapshot,          -- the step in progress, NULL between steps
    at_xid xid8,                 -- the last event derived in this step, in (txid, id) order
    at_id  bigint,
    derived_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO job_derive_mark (prev) VALUES (pg_current_snapshot());

-- The events of step (prev, cur] after the cursor, in (txid, id) order. Two index
-- ranges, each ordered: the transactions that were running at prev (few), and
-- those that started after it.
CREATE FUNCTION rd_derive_step(prev pg_snapshot, cur pg_snapshot, at_xid xid8, at_id bigint,
                               max_events integer)
RETURNS TABLE (id bigint, connection_id bigint, source text, event_type text, subject text,
               txid xid8)
LANGUAGE sql STABLE SET enable_seqscan = off AS $$
    SELECT * FROM (
        (SELECT e.id, e.connection_id, e.source, e.event_type, e.subject, e.txid FROM events e
         WHERE e.txid = ANY (ARRAY(SELECT pg_snapshot_xip(prev)))
           AND (e.txid, e.id) > (at_xid, at_id) AND pg_visible_in_snapshot(e.txid, cur)
         ORDER BY e.txid, e.id LIMIT max_events)
        UNION ALL
        (SELECT e.id, e.connection_id, e.source, e.event_type, e.subject, e.txid FROM events e
         WHERE e.txid >= pg_snapshot_xmax(prev) AND e.txid < pg_snapshot_xmax(cur)
           AND (e.txid, e.id) > (at_xid, at_id) AND pg_visible_in_snapshot(e.txid, cur)
         ORDER BY e.txid, e.id LIMIT max_events)
    ) s ORDER BY s.txid, s.id LIMIT max_events
$$;

-- Derives jobs for at most max_events events of the current step. Returns the
-- number of events taken, or -1 when another transaction holds the watermark (it
-- is deriving: the caller tries again shortly).
CREATE FUNCTION rd_derive_jobs(max_events integer) RETURNS integer
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
    m record;
    snap pg_snapshot;
    evs rd_event_ref[];
    last_xid xid8;
    last_id bigint;
    taken integer;
BEGIN
    SELECT * INTO m FROM job_derive_mark FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN -1;
    END IF;
    snap := coalesce(m.cur, pg_current_snapshot());
    SELECT coalesce(array_agg(ROW(s.id, s.connection_id, s.source, s.event_type,
                                  s.subject)::rd_event_ref ORDER BY s.txid, s.id), '{}'),
           (array_agg(s.txid ORDER BY s.txid DESC, s.id DESC))[1],
           (array_agg(s.id ORDER BY s.txid DESC, s.id DESC))[1],
           count(*)
    INTO evs, last_xid, last_id, taken
    FROM rd_derive_step(m.prev, snap, coalesce(m.at_xid, '0'::xid8), coalesce(m.at_id, 0),
                        max_events) s;
    IF taken > 0 THEN
        PERFORM rd_jobs_for_events(evs);
    END IF;
    IF taken < max_events THEN
        UPDATE job_derive_mark SET prev = snap, cur = NULL, at_xid = NULL, at_id = NULL,
               derived_at = now();
    ELSE
        UPDATE job_derive_mark SET cur = snap, at_xid = last_xid, at_id = last_id,
               derived_at = now();
    END IF;
    RETURN taken;
END
$$;

-- Events no deriver has reached yet: pending work that has no job so far. The
-- queue's gauges count them as pending (rd_queue_count_states).
CREATE FUNCTION rd_underived_events() RETURNS bigint
LANGUAGE plpgsql STABLE SET enable_seqscan = off AS $$
DECLARE
    m record;
    n bigint;
BEGIN
    SELECT * INTO m FROM job_derive_mark;
    SELECT count(*) INTO n FROM rd_derive_step(m.prev, pg_current_snapshot(), '0'::xid8, 0,
                                               NULL) s
    WHERE NOT (m.cur IS NOT NULL AND pg_visible_in_snapshot(s.txid, m.cur)
               AND (s.txid, s.id) <= (m.at_xid, m.at_id));
    RETURN n;
END
$$;
