-- The request budget shared by every instance, round 2: an exact sliding window per
-- upstream account instead of one token bucket (sql/003_upstream.sql's
-- upstream_budget). A token bucket that may never break any of an upstream's limits
-- has to be sized for the tightest of them: Personio's employee list (300 a minute,
-- bursts of 15 a second) got 4.5 a second with a burst of 10, and a nightly run's
-- 100 pages took 20 s where the documented limits allow about 7.
--
-- upstream_starts holds one row per request of an account for the longest window:
-- its booked start (now or a moment ahead) and, once its answer is in, the time it
-- completed (rd_pacer_release moves the row there). Windows measured from completions
-- are never shorter than the upstream's, which counts arrivals: a request arrives
-- after it starts and before it completes, however long its TLS handshake took. rd_pace_reserve takes the
-- account's advisory lock, so instances are served in order, and gives the caller
-- the earliest start that keeps every window within its limit:
--   start = max(now, the latest start, for each limit L in W seconds: the L-th
--               latest start + W)
-- Starts are never earlier than the latest one, so no window of W seconds ever holds
-- more than L arrivals of completed requests (a completion is at or after its
-- arrival). Only a request still in flight is counted from its start. The caller passes limits with
-- its own headroom (include/rosterd/pacer.h). A reservation that would wait past
-- max_wait is not made: the caller gives up with a retry-after instead.

CREATE TABLE upstream_starts (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account  text NOT NULL,
    at       timestamptz NOT NULL
);
CREATE INDEX upstream_starts_account_at ON upstream_starts (account, at);

CREATE FUNCTION rd_pace_reserve(acc text, limits integer[], windows double precision[],
                                max_wait double precision, OUT wait double precision,
                                OUT reserved boolean, OUT id bigint)
LANGUAGE plpgsql AS $$
DECLARE
    now_ts  timestamptz := clock_timestamp();
    t       timestamptz := now_ts;
    kth     timestamptz;
    longest double precision := 0;
BEGIN
    IF cardinality(limits) IS NULL OR cardinality(limits) <> cardinality(windows) THEN
        RAISE EXCEPTION 'rd_pace_reserve: % limits but % windows', cardinality(limits),
            cardinality(windows);
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('rosterd-pace:' || acc, 0));
    SELECT max(s.at) INTO kth FROM upstream_starts s WHERE s.account = acc;
    IF kth > t THEN
        t := kth;
    END IF;
    FOR i IN 1 .. cardinality(limits) LOOP
        longest := greatest(longest, windows[i]);
        SELECT s.at INTO kth FROM upstream_starts s WHERE s.account = acc
            ORDER BY s.at DESC OFFSET greatest(limits[i], 1) - 1 LIMIT 1;
        IF FOUND AND kth + make_interval(secs => windows[i]) > t THEN
            t := kth + make_interval(secs => windows[i]);
        END IF;
    END LOOP;
    wait := greatest(0, extract(epoch FROM t - now_ts)::double precision);
    reserved := wait <= max_wait;
    IF reserved THEN
        INSERT INTO upstream_starts (account, at) VALUES (acc, t) RETURNING upstream_starts.id
            INTO id;
    END IF;
    DELETE FROM upstream_starts s WHERE s.account = acc
        AND s.at < now_ts - make_interval(secs => longest);
END
$$;

-- upstream_budget is no longer read by this version; it stays while older instances
-- of a rolling upgrade may still use it.
COMMENT ON TABLE upstream_budget IS 'unused since migration 012 (upstream_starts)';
