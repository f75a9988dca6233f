-- The deriver's scan starts at the watermark, not at the first event ever stored
-- (issue 12: found in a full `tests/bench/run.sh`, where the intake part leaves
-- ~250,000 events behind the mark).
--
-- rd_derive_step (sql/011) bounded the events after the mark from below twice:
-- e.txid >= pg_snapshot_xmax(prev) and (e.txid, e.id) > (at_xid, at_id). Postgres
-- cannot tell which of a scalar and a row comparison is tighter, keeps both, and
-- starts the index scan at the first one it meets: the row comparison, whose
-- (at_xid, at_id) is (0, 0) at the start of every step. Each derivation read
-- every events_derive entry from the beginning of time: 48 ms before the first
-- row with 1.6 million events (EXPLAIN ANALYZE, generic plan), so a webhook's
-- handler started ~45 ms after its commit and the 7,500 jobs/s soak fell behind
-- once the table had grown. One row comparison holding the tighter of the two
-- bounds starts the scan at the mark: 10,000 events in 11 ms, a step of 10 in
-- 0.08 ms, whatever the table's size. ids are identity values (> 0), so
-- (xmax(prev), 0) admits every id of the transaction xmax(prev).
CREATE OR REPLACE FUNCTION rd_derive_step(prev pg_snapshot, cur pg_snapshot, at_xid xid8,
                                          at_id bigint, max_events integer)
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
         WHERE (e.txid, e.id) > (greatest(at_xid, pg_snapshot_xmax(prev)),
                                 CASE WHEN at_xid >= pg_snapshot_xmax(prev) THEN at_id ELSE 0 END)
           AND e.txid < pg_snapshot_xmax(cur) AND pg_visible_in_snapshot(e.txid, cur)
         ORDER BY e.txid, e.id LIMIT max_events)
    ) s ORDER BY s.txid, s.id LIMIT max_events
$$;
