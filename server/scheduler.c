/*
 * The scheduler thread: every second it returns jobs whose lease lapsed (a dead
 * worker) to the queue; every 30 s it makes sure each connection's next periodic
 * slots exist (hourly attendance sweep, daily absence sweep, nightly reconcile at
 * policy.reconcile_at local time), each exactly once across instances; every 10
 * minutes it prunes history. All time-zone arithmetic happens in SQL.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "queue_internal.h"
#include "rosterd/db.h"
#include "rosterd/log.h"
#include "rosterd/queue.h"

/* A lapsed job counts its attempt: a job that kills its worker every time ends dead. */
static const char REAP_SQL[] =
    "WITH lapsed AS ("
    "  SELECT id, lease_owner, started_at FROM jobs WHERE state = 'running' AND lease_until < now()"
    "  FOR UPDATE SKIP LOCKED"
    "), r AS ("
    "  UPDATE jobs j SET state = CASE WHEN j.attempts >= $1::int THEN 'dead' ELSE 'failed' END,"
    "         run_at = now(), lease_owner = NULL, lease_until = NULL, updated_at = now(),"
    "         last_error = 'lease expired: worker ' || coalesce(l.lease_owner, '?') || ' lost'"
    "  FROM lapsed l WHERE j.id = l.id"
    "  RETURNING j.id, j.state, j.last_error, l.lease_owner, l.started_at"
    "), e AS ("
    "  UPDATE events ev SET status = r.state, last_error = r.last_error,"
    "         attempts = ev.attempts + 1, updated_at = now()"
    "  FROM job_events je JOIN r ON r.id = je.job_id WHERE ev.id = je.event_id"
    "  RETURNING ev.id, ev.attempts, je.job_id, r.last_error, r.lease_owner, r.started_at"
    "), a AS ("
    "  INSERT INTO event_attempts (event_id, job_id, attempt, started_at, finished_at, outcome,"
    "    error, instance)"
    "  SELECT id, job_id, attempts, coalesce(started_at, now()), now(), 'lease_lost', last_error,"
    "    lease_owner FROM e"
    ")"
    "SELECT count(*) FROM r";

/*
 * The next slot of each periodic kind per connection, keyed by kind, connection
 * and slot time (UTC), so job_slots lets each be created once. The payload keeps
 * the settings the slot came from, and the key a hash of them: a pending slot whose
 * connection changed its time zone or reconcile_at is dropped and the new one created.
 */
static const char PERIODIC_SQL[] =
    "WITH c AS ("
    "  SELECT id, timezone, (now() AT TIME ZONE timezone) AS lnow,"
    "         coalesce(config -> 'policy' ->> 'reconcile_at', '02:30') AS rat"
    "  FROM connections"
    "), slots AS ("
    "  SELECT c.id, s.kind, s.slot, s.payload"
    "  FROM c CROSS JOIN LATERAL (VALUES"
    "    ('sweep.attendance', date_trunc('hour', now()) + interval '1 hour', '{}'::jsonb),"
    "    ('sweep.absence', (date_trunc('day', c.lnow) + interval '1 day 5 minutes')"
    "                      AT TIME ZONE c.timezone, jsonb_build_object('timezone', c.timezone)),"
    "    ('reconcile', CASE WHEN c.rat ~ '^([01][0-9]|2[0-3]):[0-5][0-9]$' THEN"
    "        (date_trunc('day', c.lnow) + c.rat::time"
    "         + CASE WHEN date_trunc('day', c.lnow) + c.rat::time <= c.lnow"
    "                THEN interval '1 day' ELSE interval '0' END) AT TIME ZONE c.timezone"
    "      END, jsonb_build_object('timezone', c.timezone, 'reconcile_at', c.rat))"
    "  ) AS s(kind, slot, payload)"
    "  WHERE s.slot IS NOT NULL"
    "), keyed AS ("
    "  SELECT id, kind, slot, payload, kind || ':' || id || ':'"
    "         || to_char(slot AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI\"Z\"')"
    "         || CASE kind WHEN 'sweep.attendance' THEN ''"
    "                      ELSE ':' || left(md5(payload::text), 8) END AS ukey"
    "  FROM slots"
    "), stale AS ("
    "  DELETE FROM jobs j USING c"
    "  WHERE j.connection_id = c.id AND j.state = 'pending' AND j.run_at > now()"
    "    AND j.kind IN ('sweep.attendance', 'sweep.absence', 'reconcile')"
    "    AND j.unique_key LIKE j.kind || ':%'"
    "    AND ((j.kind <> 'sweep.attendance' AND j.payload ->> 'timezone' IS DISTINCT FROM c.timezone)"
    "         OR (j.kind = 'reconcile' AND j.payload ->> 'reconcile_at' IS DISTINCT FROM c.rat))"
    "  RETURNING j.id"
    "), ins AS ("
    "  INSERT INTO job_slots (unique_key) SELECT ukey FROM keyed"
    "  ON CONFLICT DO NOTHING RETURNING unique_key"
    ")"
    "INSERT INTO jobs (kind, key, connection_id, run_at, unique_key, payload)"
    " SELECT k.kind, k.id || ':' || k.kind, k.id, k.slot, k.ukey, k.payload"
    " FROM keyed k JOIN ins ON ins.unique_key = k.ukey"
    " ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO NOTHING"
    " RETURNING id";

/* Dead jobs leave the hot table after the retention period, links with them. */
static const char RETIRE_DEAD_SQL[] =
    "WITH d AS ("
    "  DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE state = 'dead'"
    "    AND updated_at < now() - make_interval(days => $1::int) LIMIT 10000"
    "    FOR UPDATE SKIP LOCKED) RETURNING *"
    "), l AS ("
    "  DELETE FROM job_events je USING d WHERE je.job_id = d.id"
    ")"
    "INSERT INTO jobs_history (id, kind, key, connection_id, subject, unique_key, payload, state,"
    "  attempts, last_error, note, created_at, run_at, started_at, finished_at)"
    " SELECT id, kind, key, connection_id, subject, unique_key, payload, 'dead', attempts,"
    "  last_error, note, created_at, run_at, started_at, updated_at FROM d"
    " ON CONFLICT (id) DO NOTHING";

static const char PRUNE_HISTORY_SQL[] =
    "DELETE FROM jobs_history WHERE id IN (SELECT id FROM jobs_history"
    " WHERE finished_at < now() - make_interval(days => $1::int) LIMIT 10000)";

/* Slots older than any pending slot can be: nothing will try to create them again. */
static const char PRUNE_SLOTS_SQL[] =
    "DELETE FROM job_slots WHERE created_at < now() - interval '40 days'";

/*
 * Finished events leave after event_retention_days (30 at least: the dedup
 * window of DESIGN.md §5 is their unique index). Failed and dead ones stay
 * until an operator replays them. In slices, so no statement runs long.
 */
static const char PRUNE_EVENTS_SQL[] =
    "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE status = 'done'"
    " AND received_at < now() - make_interval(days => $1::int) LIMIT 10000"
    " FOR UPDATE SKIP LOCKED)";

static void wake_local(struct rd_queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->wake = true;
    pthread_cond_signal(&q->dispatch_cv);
    pthread_mutex_unlock(&q->mu);
}

static void reap(struct rd_queue *q)
{
    char err[512], maxb[16];
    snprintf(maxb, sizeof maxb, "%d", q->max_attempts);
    const char *params[1] = {maxb};
    PGresult *res = rd_queue_exec(q->sched_db, "rd_reap", REAP_SQL, 1, params, err, sizeof err);
    if (!res) {
        rd_log_warn("scheduler: reaping lapsed leases failed: %s", err);
        return;
    }
    long n = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (n > 0) {
        rd_log_warn("scheduler: %ld jobs lost their worker, queued again", n);
        wake_local(q);
    }
}

static void periodic(struct rd_queue *q)
{
    char err[512];
    PGresult *res = rd_db_exec(q->sched_db, PERIODIC_SQL, 0, NULL, err, sizeof err);
    if (!res) {
        rd_log_warn("scheduler: creating periodic jobs failed: %s", err);
        return;
    }
    if (PQntuples(res) > 0)
        rd_log_info("scheduler: created %d periodic jobs", PQntuples(res));
    PQclear(res);
}

static void retention_run(struct rd_queue *q)
{
    char err[512], days[16];
    snprintf(days, sizeof days, "%d", q->job_history_days);
    const char *params[1] = {days};
    if (rd_db_run(q->sched_db, RETIRE_DEAD_SQL, 1, params, err, sizeof err) != 0 ||
        rd_db_run(q->sched_db, PRUNE_HISTORY_SQL, 1, params, err, sizeof err) != 0 ||
        rd_db_run(q->sched_db, PRUNE_SLOTS_SQL, 0, NULL, err, sizeof err) != 0)
        rd_log_warn("scheduler: pruning job history failed: %s", err);
    snprintf(days, sizeof days, "%d", q->event_retention_days);
    if (rd_db_run(q->sched_db, PRUNE_EVENTS_SQL, 1, params, err, sizeof err) != 0)
        rd_log_warn("scheduler: pruning old events failed: %s", err);
}

/*
 * The hot tables churn at the queue's rate (a claimed and finished job leaves two
 * dead versions, its link one), and autovacuum looks at a database once a minute:
 * at 7,500 jobs/s that is ~900,000 dead tuples between visits, and every claim
 * steps over their index entries. So the scheduler vacuums jobs and job_events
 * itself, looking every second, once they hold more than HOT_DEAD_TUPLES dead
 * tuples and more dead than live ones (a vacuum reads every index in full: with a
 * backlog of 100,000 jobs, one a second halved the drain); one instance at a time
 * (advisory lock), SKIP_LOCKED so it never waits on a lock. (Looking every 5 s let
 * the dead tuples swing between 20,000 and ~110,000 at 7,500 jobs/s.)
 */
#define HOT_DEAD_TUPLES "20000"
#define VACUUM_LOCK_SQL "hashtext('rosterd.queue.vacuum')"

static void vacuum_hot(struct rd_queue *q)
{
    char err[512];
    PGresult *res =
        rd_db_exec(q->sched_db,
                   "SELECT relname::text FROM pg_stat_user_tables"
                   " WHERE schemaname = current_schema()"
                   "   AND relname IN ('jobs', 'job_events')"
                   "   AND n_dead_tup > " HOT_DEAD_TUPLES " AND n_dead_tup > n_live_tup",
                   0, NULL, err, sizeof err);
    if (!res) {
        rd_log_warn("scheduler: reading dead tuples failed: %s", err);
        return;
    }
    int n = PQntuples(res);
    PGresult *lock =
        n > 0 ? rd_db_exec(q->sched_db, "SELECT pg_try_advisory_lock(" VACUUM_LOCK_SQL ")", 0, NULL,
                           err, sizeof err)
              : NULL;
    if (lock && strcmp(PQgetvalue(lock, 0, 0), "t") == 0) {
        for (int i = 0; i < n; i++) {
            /* The names come from the fixed list above, not from input. */
            const char *sql = strcmp(PQgetvalue(res, i, 0), "jobs") == 0
                                  ? "VACUUM (SKIP_LOCKED, TRUNCATE false) jobs"
                                  : "VACUUM (SKIP_LOCKED, TRUNCATE false) job_events";
            if (rd_db_run(q->sched_db, sql, 0, NULL, err, sizeof err) != 0)
                rd_log_warn("scheduler: vacuuming the queue failed: %s", err);
        }
        if (rd_db_run(q->sched_db, "SELECT pg_advisory_unlock(" VACUUM_LOCK_SQL ")", 0, NULL, err,
                      sizeof err) != 0)
            rd_log_warn("scheduler: releasing the vacuum lock failed: %s", err);
    } else if (n > 0 && !lock) {
        rd_log_warn("scheduler: taking the vacuum lock failed: %s", err);
    }
    PQclear(lock);
    PQclear(res);
}

void *rd_queue_scheduler_main(void *arg)
{
    struct rd_queue *q = arg;
    struct timespec next_periodic = rd_queue_now();
    struct timespec next_retention = rd_queue_after_ms(60 * 1000L);
    struct timespec next_vacuum = rd_queue_after_ms(1000L);
    pthread_mutex_lock(&q->mu);
    while (!q->scheduler_exit) {
        pthread_mutex_unlock(&q->mu);
        if (rd_queue_db_ok(q->sched_db, RD_QUEUE_SESSION_SCHED)) {
            reap(q);
            if (rd_queue_past(&next_vacuum)) {
                vacuum_hot(q);
                next_vacuum = rd_queue_after_ms(1000L);
            }
            if (rd_queue_past(&next_periodic)) {
                periodic(q);
                next_periodic = rd_queue_after_ms(30 * 1000L);
            }
            if (rd_queue_past(&next_retention)) {
                retention_run(q);
                next_retention = rd_queue_after_ms(600 * 1000L);
            }
        }
        struct timespec until = rd_queue_after_ms(1000);
        pthread_mutex_lock(&q->mu);
        if (!q->scheduler_exit)
            pthread_cond_timedwait(&q->sched_cv, &q->mu, &until);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}
