/*
 * The queue's life cycle and its dispatcher thread. The dispatcher is the only
 * claimer of an instance: it claims as many due jobs as workers are free, in one
 * statement (FOR UPDATE SKIP LOCKED), hands them to the workers and renews every
 * held lease in one statement per heartbeat, so a handler's code stays linear.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "queue_internal.h"
#include "rosterd/config.h"
#include "rosterd/crypto.h"
#include "rosterd/db.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/queue.h"

/*
 * A job is claimable when it is due, no other job of its key runs, and no other
 * open job of its key comes earlier in (run_at, id). Claiming also starts the
 * attempt of every event the job covers and returns them with the job. The
 * NOT EXISTS repeats jobs_key_open's predicate so it is one index probe per row.
 * started_at is clock_timestamp(), not now(): now() is when the statement began,
 * before its snapshot saw the previous job of the key finish, so it could read as
 * earlier than that job's finished_at although the runs never overlapped.
 */
/*
 * HEAD, the batch size, TAIL: the batch size is a literal (one prepared statement per power of
 * two), so Postgres can keep one generic plan per size instead of planning the claim again on every
 * call, which cost ~1 ms per claim with LIMIT $1. $1: this instance, $2: lease seconds. The claim
 * writes only the job: an event reads as running while its job runs (RD_SQL_EVENT_STATUS), and its
 * attempt is recorded, and counted in events.attempts, when it ends (sql/004_lean_queue.sql).
 */
static const char CLAIM_SQL_HEAD[] =
    "WITH cand AS ("
    "  SELECT j.id FROM jobs j"
    "  WHERE j.state IN ('pending', 'failed') AND j.run_at <= now()";
/*
 * Claimed and finished jobs leave dead entries at the front of jobs_due until
 * vacuum removes them, and a scan from the start steps over all of them: 50,000
 * of them cost 1.4 ms per claim, growing through a drain. So most claims start
 * after the last job this dispatcher claimed; every CLAIM_FULL_EVERY-th claim, and
 * any claim after one that came back short, scans from the start, which picks up
 * jobs that became due behind the mark (retries, batches that committed late).
 */
#define CLAIM_FULL_EVERY 16
/*
 * Jobs can also become due behind the mark while claims keep coming back full:
 * the intake's two connections commit batches out of the order of their run_at
 * (a statement's start), and a claim passes by a job an uncommitted intake batch
 * holds a share lock on. Counting claims alone, such a job waited for up to 15
 * more claims: 10 in a row were measured at 1,000 req/s, and during a backlog,
 * when claims are full and take tens of ms, that is up to a second. So after a
 * commit (rd_queue_wake) the next claim scans from the start, at most once per
 * CLAIM_FULL_AFTER_COMMIT_MS: a job behind the mark waits that long, not 16 claims.
 */
#define CLAIM_FULL_AFTER_COMMIT_MS 10

static const char CLAIM_SQL_AFTER[] = "    AND (j.run_at, j.id) > ($3::timestamptz, $4::bigint)";
static const char CLAIM_SQL_MID[] =
    "    AND NOT EXISTS (SELECT 1 FROM jobs o"
    "      WHERE o.key = j.key AND o.state IN ('pending', 'failed', 'running') AND o.id <> j.id"
    "        AND (o.state = 'running' OR (o.run_at, o.id) < (j.run_at, j.id)))"
    "  ORDER BY j.run_at, j.id LIMIT ";
static const char CLAIM_SQL_TAIL[] =
    "  FOR UPDATE OF j SKIP LOCKED"
    "), claimed AS ("
    "  UPDATE jobs j SET state = 'running', attempts = j.attempts + 1, lease_owner = $1,"
    "         lease_until = now() + make_interval(secs => $2::int),"
    "         started_at = clock_timestamp(),"
    "         updated_at = now()"
    "  FROM cand WHERE j.id = cand.id"
    "  RETURNING j.id, j.kind, j.key, j.connection_id, j.subject, j.attempts, j.payload, j.run_at"
    ")"
    "SELECT c.id, c.kind, c.key, coalesce(c.connection_id, 0), cn.name, c.subject, c.attempts,"
    "       c.payload::text,"
    /* Per job, by its links' index: no join whose plan could follow stale statistics. */
    "       (SELECT json_agg(json_build_array(e.id, e.event_type, e.subject) ORDER BY e.id)"
    "        FROM job_events je JOIN events e ON e.id = je.event_id"
    "        WHERE je.job_id = c.id)::text,"
    "       c.run_at::text"
    " FROM claimed c LEFT JOIN connections cn ON cn.id = c.connection_id"
    " ORDER BY c.run_at, c.id";

/*
 * The renewal locks nothing it would have to wait for: a held job whose row is
 * locked is being finished (a group commit, a failure) or is in someone else's
 * transaction. Waiting there stalled this connection's claims, and the renewal
 * and a group commit locking the same running jobs in opposite orders could
 * deadlock, failing the commit. A skipped job is renewed at the next heartbeat,
 * well inside its lease.
 */
static const char HEARTBEAT_SQL[] =
    "UPDATE jobs j SET lease_until = now() + make_interval(secs => $3::int)"
    " FROM (SELECT id FROM jobs WHERE id = ANY($1::bigint[]) AND state = 'running'"
    "       AND lease_owner = $2 ORDER BY id FOR UPDATE SKIP LOCKED) l"
    " WHERE j.id = l.id";

/*
 * Claimed jobs that never started go back as 'failed' ('pending' could collide
 * with a newer pending job of the same kind and key), without counting the attempt
 * (no attempt row exists before an attempt ends). They keep their run_at (it was
 * due when they were claimed): moved to now(), a handed-back job fell behind a
 * later job of its key, which then ran first.
 */
static const char HANDBACK_SQL[] =
    "UPDATE jobs SET state = 'failed', attempts = attempts - 1,"
    "       lease_owner = NULL, lease_until = NULL, updated_at = now()"
    " WHERE id = ANY($1::bigint[]) AND state = 'running' AND lease_owner = $2";

/*
 * Jobs are derived from committed events by each instance's deriver, after the intake's
 * commit, in batches of up to DERIVE_BATCH events in one transaction that also
 * moves the watermark (sql/011_derived_jobs.sql says why that is exact). Returns
 * the events taken, -1 when another instance holds the watermark, -2 on an error.
 */
#define DERIVE_BATCH 10000
#define DERIVE_BUSY_RETRY_MS 20
static const char DERIVE_SQL[] = "SELECT rd_derive_jobs($1::int)";

/* ---------------------------------------------------------------- pure helpers */

double rd_queue_backoff_cap(int attempt, int base_seconds)
{
    if (attempt < 1)
        attempt = 1;
    if (base_seconds < 1)
        base_seconds = 1;
    if (attempt > 40) /* 2^39 s is far past the cap already */
        attempt = 40;
    double cap = ldexp((double)base_seconds, attempt - 1);
    return cap < RD_QUEUE_BACKOFF_CAP ? cap : RD_QUEUE_BACKOFF_CAP;
}

double rd_queue_backoff(int attempt, int base_seconds, double u)
{
    if (!(u >= 0.0)) /* also catches NaN */
        u = 0.0;
    if (u >= 1.0)
        u = nextafter(1.0, 0.0);
    return u * rd_queue_backoff_cap(attempt, base_seconds);
}

bool rd_queue_http_permanent(long status)
{
    if (status < 400 || status > 499)
        return false;
    return status != 408 && status != 409 && status != 425 && status != 429;
}

const char *rd_queue_state_name(int state)
{
    static const char *const names[RD_JOBS_NSTATES] = {"pending", "scheduled", "running", "failed",
                                                       "dead"};
    return state >= 0 && state < RD_JOBS_NSTATES ? names[state] : NULL;
}

char *rd_queue_key(int64_t connection_id, const char *source, const char *subject)
{
    return rd_asprintf("%lld:%s:%s", (long long)connection_id, source ? source : "job",
                       subject ? subject : "*");
}

double rd_queue_uniform(void)
{
    uint64_t x = 0;
    if (rd_random_bytes(&x, sizeof x) != 0)
        x = (uint64_t)random() << 32 ^ (uint64_t)random();
    return (double)(x >> 11) * 0x1.0p-53;
}

struct timespec rd_queue_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t;
}

struct timespec rd_queue_after_ms(long ms)
{
    struct timespec t = rd_queue_now();
    t.tv_sec += ms / 1000;
    t.tv_nsec += (ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

bool rd_queue_past(const struct timespec *t)
{
    struct timespec n = rd_queue_now();
    return n.tv_sec > t->tv_sec || (n.tv_sec == t->tv_sec && n.tv_nsec >= t->tv_nsec);
}

static const struct timespec *ts_min(const struct timespec *a, const struct timespec *b)
{
    if (a->tv_sec != b->tv_sec)
        return a->tv_sec < b->tv_sec ? a : b;
    return a->tv_nsec <= b->tv_nsec ? a : b;
}

PGresult *rd_queue_exec(PGconn *db, const char *name, const char *sql, int nparams,
                        const char *const *params, char *err, size_t errlen)
{
    PGresult *res = PQexecPrepared(db, name, nparams, params, NULL, NULL, 0);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (state && strcmp(state, "26000") == 0) { /* not prepared on this (new) session yet */
        PQclear(res);
        res = PQprepare(db, name, sql, nparams, NULL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            rd_db_error(db, res, err, errlen);
            PQclear(res);
            return NULL;
        }
        PQclear(res);
        res = PQexecPrepared(db, name, nparams, params, NULL, NULL, 0);
    }
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        rd_db_error(db, res, err, errlen);
        PQclear(res);
        return NULL;
    }
    return res;
}

bool rd_queue_db_ok(PGconn *db, const char *session)
{
    if (PQstatus(db) == CONNECTION_OK)
        return true;
    PQreset(db);
    if (PQstatus(db) != CONNECTION_OK)
        return false;
    if (session)
        PQclear(PQexec(db, session));
    return true;
}

/* ---------------------------------------------------------------- state counts */

int rd_queue_count_states(PGconn *db, int64_t counts[RD_JOBS_NSTATES], char *err, size_t errlen)
{
    /* Events no deriver has reached yet are pending work too, due now. */
    PGresult *res =
        rd_db_exec(db,
                   "SELECT count(*) FILTER (WHERE state = 'pending' AND run_at <= now())"
                   "         + rd_underived_events(),"
                   "       count(*) FILTER (WHERE state = 'pending' AND run_at > now()),"
                   "       count(*) FILTER (WHERE state = 'running'),"
                   "       count(*) FILTER (WHERE state = 'failed'),"
                   "       count(*) FILTER (WHERE state = 'dead') FROM jobs",
                   0, NULL, err, errlen);
    if (!res)
        return -1;
    for (int i = 0; i < RD_JOBS_NSTATES; i++)
        counts[i] = strtoll(PQgetvalue(res, 0, i), NULL, 10);
    PQclear(res);
    return 0;
}

/* ---------------------------------------------------------------- scheduling API */

int rd_queue_schedule(PGconn *db, const struct rd_job_spec *spec, int64_t *job_id, char *err,
                      size_t errlen)
{
    *job_id = 0;
    if (!spec->kind || !*spec->kind) {
        snprintf(err, errlen, "job kind is required");
        return -1;
    }
    char conn[24];
    snprintf(conn, sizeof conn, "%lld", (long long)spec->connection_id);
    char *key = spec->key ? rd_strdup(spec->key)
                          : rd_queue_key(spec->connection_id, "job", spec->unique_key);
    const char *params[7] = {spec->kind,        key,          spec->connection_id ? conn : NULL,
                             spec->subject,     spec->run_at, spec->unique_key,
                             spec->payload_json};
    /* A dead job under the same unique key is revived: the caller decided it is wanted again. */
    PGresult *res = rd_db_exec(
        db,
        "INSERT INTO jobs (kind, key, connection_id, subject, run_at, unique_key, payload)"
        " VALUES ($1, $2, $3::bigint, $4, coalesce($5::timestamptz, now()), $6, $7::jsonb)"
        " ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL DO UPDATE SET run_at = excluded.run_at,"
        "   payload = excluded.payload, kind = excluded.kind, key = excluded.key,"
        "   state = CASE WHEN jobs.state = 'dead' THEN 'pending' ELSE jobs.state END,"
        "   attempts = CASE WHEN jobs.state = 'dead' THEN 0 ELSE jobs.attempts END,"
        "   updated_at = now()"
        "   WHERE jobs.state <> 'running'"
        " RETURNING id",
        7, params, err, errlen);
    free(key);
    if (!res)
        return -1;
    if (PQntuples(res) == 1)
        *job_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

int rd_queue_cancel(PGconn *db, const char *unique_key, int *cancelled, char *err, size_t errlen)
{
    const char *params[1] = {unique_key};
    *cancelled = 0;
    PGresult *res = rd_db_exec(db,
                               "DELETE FROM jobs WHERE unique_key = $1 AND state <> 'running'"
                               " RETURNING id",
                               1, params, err, errlen);
    if (!res)
        return -1;
    *cancelled = PQntuples(res);
    PQclear(res);
    return 0;
}

/* ---------------------------------------------------------------- claimed jobs */

void rd_queue_claimed_free(struct rd_claimed_job *job)
{
    if (!job)
        return;
    for (size_t i = 0; i < job->nevents; i++) {
        free(job->events[i].event_type);
        free(job->events[i].subject);
    }
    free(job->events);
    free(job->kind);
    free(job->key);
    free(job->conn_name);
    free(job->subject);
    free(job->payload);
    free(job);
}

static char *opt_value(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : rd_strdup(PQgetvalue(res, row, col));
}

/* The events column is [[id, event_type, subject], …] as built by CLAIM_SQL. */
static void parse_events(struct rd_claimed_job *job, const char *text)
{
    struct json_object *arr = text ? json_tokener_parse(text) : NULL;
    if (!arr || !json_object_is_type(arr, json_type_array)) {
        json_object_put(arr);
        return;
    }
    size_t n = json_object_array_length(arr);
    job->events = rd_calloc(n ? n : 1, sizeof *job->events);
    for (size_t i = 0; i < n; i++) {
        struct json_object *row = json_object_array_get_idx(arr, i);
        struct json_object *sub = json_object_array_get_idx(row, 2);
        struct rd_job_event *ev = &job->events[job->nevents++];
        ev->id = json_object_get_int64(json_object_array_get_idx(row, 0));
        ev->event_type = rd_strdup(json_object_get_string(json_object_array_get_idx(row, 1)));
        ev->subject = sub && !json_object_is_type(sub, json_type_null)
                          ? rd_strdup(json_object_get_string(sub))
                          : NULL;
    }
    json_object_put(arr);
}

/* Claims up to max jobs into out; returns the count, -1 on a database error. */
static int claim(struct rd_queue *q, int max, bool full, struct rd_claimed_job **out)
{
    char err[512];
    if (!rd_queue_db_ok(q->dispatch_db, RD_QUEUE_SESSION_DISPATCH)) {
        rd_log_warn("queue: claim connection lost: %s", PQerrorMessage(q->dispatch_db));
        return -1;
    }
    /* The largest power of two not above max: a handful of prepared batch sizes. */
    int batch = 1;
    while (batch <= max / 2 && batch < 1024)
        batch *= 2;
    bool after = !full && q->claim_mark_id > 0 && q->claims_since_full < CLAIM_FULL_EVERY;
    q->claims_since_full = after ? q->claims_since_full + 1 : 0;
    if (!after)
        q->next_full_ok = rd_queue_after_ms(CLAIM_FULL_AFTER_COMMIT_MS);
    char name[32], lease[16], mark_id[24];
    char sql[sizeof CLAIM_SQL_HEAD + sizeof CLAIM_SQL_AFTER + sizeof CLAIM_SQL_MID +
             sizeof CLAIM_SQL_TAIL + 16];
    snprintf(name, sizeof name, "rd_claim_%s%d", after ? "after_" : "", batch);
    snprintf(sql, sizeof sql, "%s%s%s%d%s", CLAIM_SQL_HEAD, after ? CLAIM_SQL_AFTER : "",
             CLAIM_SQL_MID, batch, CLAIM_SQL_TAIL);
    snprintf(lease, sizeof lease, "%d", RD_QUEUE_LEASE_SECONDS);
    snprintf(mark_id, sizeof mark_id, "%lld", (long long)q->claim_mark_id);
    const char *params[4] = {q->instance, lease, q->claim_mark_run_at, mark_id};
    struct timespec t0 = rd_queue_now();
    PGresult *res =
        rd_queue_exec(q->dispatch_db, name, sql, after ? 4 : 2, params, err, sizeof err);
    if (!res) {
        rd_log_warn("queue: claim failed: %s", err);
        return -1;
    }
    int n = PQntuples(res);
    if (rd_log_enabled(RD_LOG_DEBUG)) { /* the benchmark reads these */
        struct timespec t1 = rd_queue_now();
        rd_log_debug("queue: claimed %d of %d in %.3f ms", n, max,
                     (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                         (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    }
    for (int i = 0; i < n && i < max; i++) {
        struct rd_claimed_job *job = rd_calloc(1, sizeof *job);
        job->id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        job->kind = rd_strdup(PQgetvalue(res, i, 1));
        job->key = rd_strdup(PQgetvalue(res, i, 2));
        job->connection_id = strtoll(PQgetvalue(res, i, 3), NULL, 10);
        job->conn_name = opt_value(res, i, 4);
        job->subject = opt_value(res, i, 5);
        job->attempts = atoi(PQgetvalue(res, i, 6));
        job->payload = opt_value(res, i, 7);
        parse_events(job, PQgetisnull(res, i, 8) ? NULL : PQgetvalue(res, i, 8));
        out[i] = job;
    }
    if (n > 0) { /* rows come in (run_at, id) order: the last one is the mark */
        q->claim_mark_id = strtoll(PQgetvalue(res, n - 1, 0), NULL, 10);
        snprintf(q->claim_mark_run_at, sizeof q->claim_mark_run_at, "%s",
                 PQgetvalue(res, n - 1, 9));
    }
    if (n < batch)
        q->claims_since_full = CLAIM_FULL_EVERY; /* came back short: look behind the mark */
    PQclear(res);
    return n < max ? n : max;
}

static void heartbeat(struct rd_queue *q, const int64_t *ids, size_t n)
{
    if (n == 0)
        return;
    char err[512], lease[16];
    if (!rd_queue_db_ok(q->dispatch_db, RD_QUEUE_SESSION_DISPATCH)) {
        rd_log_warn("queue: heartbeat connection lost: %s", PQerrorMessage(q->dispatch_db));
        return;
    }
    char *arr = rd_db_int8_array(ids, n);
    snprintf(lease, sizeof lease, "%d", RD_QUEUE_LEASE_SECONDS);
    const char *params[3] = {arr, q->instance, lease};
    PGresult *res =
        rd_queue_exec(q->dispatch_db, "rd_heartbeat", HEARTBEAT_SQL, 3, params, err, sizeof err);
    if (!res)
        rd_log_warn("queue: lease renewal failed: %s", err);
    PQclear(res);
    free(arr);
}

static void hand_back(struct rd_queue *q)
{
    if (q->nready == 0)
        return;
    int64_t *ids = rd_calloc(q->nready, sizeof *ids);
    for (size_t i = 0; i < q->nready; i++)
        ids[i] = q->ready[i]->id;
    char *arr = rd_db_int8_array(ids, q->nready);
    const char *params[2] = {arr, q->instance};
    char err[512];
    if (!rd_queue_db_ok(q->dispatch_db, RD_QUEUE_SESSION_DISPATCH) ||
        rd_db_run(q->dispatch_db, HANDBACK_SQL, 2, params, err, sizeof err) != 0)
        rd_log_warn("queue: handing back %zu jobs failed, their leases lapse instead", q->nready);
    else
        rd_log_info("queue: handed back %zu unstarted jobs", q->nready);
    for (size_t i = 0; i < q->nready; i++)
        rd_queue_claimed_free(q->ready[i]);
    q->nready = 0;
    free(arr);
    free(ids);
}

/* Derives jobs from new events; returns as rd_derive_jobs, or -2 on an error. */
static int derive(struct rd_queue *q)
{
    char err[512], batch[16];
    if (!rd_queue_db_ok(q->derive_db, RD_QUEUE_SESSION_DISPATCH)) {
        rd_log_warn("queue: derive connection lost: %s", PQerrorMessage(q->derive_db));
        return -2;
    }
    snprintf(batch, sizeof batch, "%d", DERIVE_BATCH);
    const char *params[1] = {batch};
    struct timespec t0 = rd_queue_now();
    PGresult *res =
        rd_queue_exec(q->derive_db, "rd_derive", DERIVE_SQL, 1, params, err, sizeof err);
    if (!res) {
        rd_log_warn("queue: deriving jobs failed: %s", err);
        return -2;
    }
    int n = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    if (n > 0 && rd_log_enabled(RD_LOG_DEBUG)) {
        struct timespec t1 = rd_queue_now();
        rd_log_debug("queue: derived jobs for %d events in %.3f ms", n,
                     (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
                         (double)(t1.tv_nsec - t0.tv_nsec) / 1e6);
    }
    return n;
}

/*
 * The deriver: its own thread and connection, so a derivation (tens of ms for a
 * few thousand events) runs beside the claims instead of between them; the soak's
 * 7,500 events a second took the dispatcher's connection half of each second when
 * it derived them itself. After a derivation that made jobs the dispatcher claims at
 * once, from the start (they may sit behind its mark: see claim()).
 */
static void *deriver_main(void *arg)
{
    struct rd_queue *q = arg;
    struct timespec next = rd_queue_now();
    pthread_mutex_lock(&q->mu);
    while (!q->deriver_exit) {
        if (q->closing || (!q->derive_wake && !rd_queue_past(&next))) {
            pthread_cond_timedwait(&q->derive_cv, &q->mu, &next);
            if (q->closing)
                next = rd_queue_after_ms(RD_QUEUE_POLL_MS);
            continue;
        }
        q->derive_wake = false;
        pthread_mutex_unlock(&q->mu);
        int n = derive(q);
        /* A full batch: more is waiting. Busy elsewhere: that deriver may have
           started before our intake's commit, so look again soon. */
        next = rd_queue_after_ms(n >= DERIVE_BATCH ? 0
                                 : n == -1         ? DERIVE_BUSY_RETRY_MS
                                                   : RD_QUEUE_POLL_MS);
        pthread_mutex_lock(&q->mu);
        if (n > 0) {
            q->wake = true;
            q->committed = true;
            pthread_cond_signal(&q->dispatch_cv);
        }
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* Runs one claim for `free_slots` workers and queues the result; called without the lock. */
static void claim_round(struct rd_queue *q, int free_slots, bool full)
{
    struct rd_claimed_job **got = rd_calloc((size_t)free_slots, sizeof *got);
    int n = claim(q, free_slots, full, got);
    pthread_mutex_lock(&q->mu);
    for (int i = 0; i < n; i++) {
        q->ready[q->nready++] = got[i];
        q->held[q->nheld++] = got[i]->id;
    }
    /* A full batch suggests more is due: claim again as soon as a worker frees up. */
    if (n == free_slots)
        q->wake = true;
    if (n > 0)
        pthread_cond_broadcast(&q->work_cv);
    pthread_mutex_unlock(&q->mu);
    free(got);
}

static void *dispatcher_main(void *arg)
{
    struct rd_queue *q = arg;
    struct timespec next_poll = rd_queue_now();
    struct timespec next_hb = rd_queue_after_ms(RD_QUEUE_HEARTBEAT_SECONDS * 1000L);
    int64_t *ids = rd_calloc((size_t)q->nworkers * RD_QUEUE_PREFETCH, sizeof *ids);
    pthread_mutex_lock(&q->mu);
    while (!q->dispatcher_exit) {
        int free_slots = q->closing ? 0
                                    : q->nworkers * RD_QUEUE_PREFETCH - q->busy - (int)q->nready -
                                          (int)q->ndone - (int)q->ncommitting;
        bool full = q->committed && rd_queue_past(&q->next_full_ok);
        bool do_claim = free_slots > 0 && (q->wake || full || rd_queue_past(&next_poll));
        bool do_hb = rd_queue_past(&next_hb);
        if (!do_claim && !do_hb) {
            const struct timespec *until = free_slots > 0 ? ts_min(&next_poll, &next_hb) : &next_hb;
            if (free_slots > 0 && q->committed)
                until = ts_min(until, &q->next_full_ok);
            pthread_cond_timedwait(&q->dispatch_cv, &q->mu, until);
            continue;
        }
        if (do_claim && full)
            q->committed = false; /* a commit from now on asks for the next full claim */
        size_t nids = 0;
        if (do_hb)
            for (; nids < q->nheld; nids++)
                ids[nids] = q->held[nids];
        if (do_claim)
            q->wake = false;
        pthread_mutex_unlock(&q->mu);
        if (do_hb) {
            heartbeat(q, ids, nids);
            next_hb = rd_queue_after_ms(RD_QUEUE_HEARTBEAT_SECONDS * 1000L);
        }
        if (do_claim) {
            claim_round(q, free_slots, do_claim && full);
            next_poll = rd_queue_after_ms(RD_QUEUE_POLL_MS);
        }
        pthread_mutex_lock(&q->mu);
    }
    hand_back(q);
    pthread_mutex_unlock(&q->mu);
    free(ids);
    return NULL;
}

/* ---------------------------------------------------------------- life cycle */

static void queue_free(struct rd_queue *q)
{
    if (!q)
        return;
    for (int i = 0; q->worker_db && i < q->nworkers; i++)
        if (q->worker_db[i])
            PQfinish(q->worker_db[i]);
    if (q->dispatch_db)
        PQfinish(q->dispatch_db);
    if (q->sched_db)
        PQfinish(q->sched_db);
    if (q->derive_db)
        PQfinish(q->derive_db);
    if (q->complete_db)
        PQfinish(q->complete_db);
    for (size_t i = 0; i < q->ndone; i++)
        free(q->done[i].note);
    for (size_t i = 0; i < q->nready; i++)
        rd_queue_claimed_free(q->ready[i]);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->dispatch_cv);
    pthread_cond_destroy(&q->work_cv);
    pthread_cond_destroy(&q->sched_cv);
    pthread_cond_destroy(&q->derive_cv);
    pthread_cond_destroy(&q->complete_cv);
    rd_memzero(q->key, sizeof q->key);
    free(q->worker_db);
    free(q->worker_threads);
    free(q->ready);
    free(q->held);
    free(q->done);
    free(q->instance);
    free(q->db_url);
    free(q->ca_file);
    if (q->smtp_url)
        rd_memzero(q->smtp_url, strlen(q->smtp_url)); /* may carry SMTP credentials */
    free(q->smtp_url);
    free(q->smtp_from);
    free(q);
}

static void init_sync(struct rd_queue *q)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->dispatch_cv, &ca);
    pthread_cond_init(&q->work_cv, &ca);
    pthread_cond_init(&q->complete_cv, &ca);
    pthread_cond_init(&q->sched_cv, &ca);
    pthread_cond_init(&q->derive_cv, &ca);
    pthread_condattr_destroy(&ca);
}

static int connect_session(PGconn **db, const char *url, const char *app, const char *session,
                           char *err, size_t errlen)
{
    *db = rd_db_connect(url, app, err, errlen);
    if (!*db)
        return -1;
    PGresult *res = PQexec(*db, session);
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        rd_db_error(*db, res, err, errlen);
    PQclear(res);
    return ok ? 0 : -1;
}

static int connect_all(struct rd_queue *q, char *err, size_t errlen)
{
    if (connect_session(&q->dispatch_db, q->db_url, "rosterd-dispatcher", RD_QUEUE_SESSION_DISPATCH,
                        err, errlen) != 0 ||
        connect_session(&q->sched_db, q->db_url, "rosterd-scheduler", RD_QUEUE_SESSION_SCHED, err,
                        errlen) != 0 ||
        connect_session(&q->derive_db, q->db_url, "rosterd-deriver", RD_QUEUE_SESSION_DISPATCH, err,
                        errlen) != 0 ||
        /* Outcomes are committed synchronously: a reported success is durable. */
        connect_session(&q->complete_db, q->db_url, "rosterd-completer", RD_QUEUE_SESSION_COMPLETE,
                        err, errlen) != 0)
        return -1;
    for (int i = 0; i < q->nworkers; i++) {
        q->worker_db[i] = rd_db_connect(q->db_url, "rosterd-worker", err, errlen);
        if (!q->worker_db[i])
            return -1;
    }
    return 0;
}

static int start_threads(struct rd_queue *q, struct rd_queue_worker_arg *args, char *err,
                         size_t errlen)
{
    int rc;
    for (int i = 0; i < q->nworkers; i++) {
        args[i].q = q;
        args[i].index = i;
        rc = pthread_create(&q->worker_threads[i], NULL, rd_queue_worker_main, &args[i]);
        if (rc != 0)
            goto fail;
        q->nworker_threads++;
    }
    rc = pthread_create(&q->dispatcher, NULL, dispatcher_main, q);
    if (rc != 0)
        goto fail;
    q->dispatcher_started = true;
    rc = pthread_create(&q->deriver, NULL, deriver_main, q);
    if (rc != 0)
        goto fail;
    q->deriver_started = true;
    rc = pthread_create(&q->completer, NULL, rd_queue_completer_main, q);
    if (rc != 0)
        goto fail;
    q->completer_started = true;
    rc = pthread_create(&q->scheduler, NULL, rd_queue_scheduler_main, q);
    if (rc != 0)
        goto fail;
    q->scheduler_started = true;
    return 0;
fail:
    snprintf(err, errlen, "cannot start queue threads: %s", strerror(rc));
    return -1;
}

/* The worker args live with the queue; kept here so queue_internal.h stays about the queue. */
struct queue_box {
    struct rd_queue q;
    struct rd_queue_worker_arg args[];
};

struct rd_queue *rd_queue_start(const struct rd_config *cfg, const uint8_t key[32],
                                const char *instance_name, char *err, size_t errlen)
{
    int n = cfg->workers > 0 ? cfg->workers : 1;
    struct queue_box *box = rd_calloc(1, sizeof *box + (size_t)n * sizeof box->args[0]);
    struct rd_queue *q = &box->q;
    q->nworkers = n;
    q->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 12;
    q->event_retention_days = cfg->event_retention_days >= 30 ? cfg->event_retention_days : 30;
    q->job_history_days = cfg->job_history_days > 0 ? cfg->job_history_days : 30;
    q->retry_base = cfg->retry_base_seconds > 0 ? cfg->retry_base_seconds : 2;
    q->instance = rd_strdup(instance_name && *instance_name ? instance_name : "rosterd");
    q->db_url = rd_strdup(cfg->database_url ? cfg->database_url : "postgresql:///rosterd");
    q->ca_file = cfg->ca_file ? rd_strdup(cfg->ca_file) : NULL;
    q->test_handlers = cfg->test_handlers;
    q->smtp_url = cfg->smtp_url ? rd_strdup(cfg->smtp_url) : NULL;
    q->smtp_from = cfg->smtp_from ? rd_strdup(cfg->smtp_from) : NULL;
    memcpy(q->key, key, RD_SECRET_KEY_LEN);
    q->worker_db = rd_calloc((size_t)n, sizeof *q->worker_db);
    q->worker_threads = rd_calloc((size_t)n, sizeof *q->worker_threads);
    q->ready = rd_calloc((size_t)n * RD_QUEUE_PREFETCH, sizeof *q->ready);
    q->held = rd_calloc((size_t)n * RD_QUEUE_PREFETCH, sizeof *q->held);
    q->done = rd_calloc((size_t)n * RD_QUEUE_PREFETCH, sizeof *q->done);
    q->wake = true;
    q->derive_wake = true;
    atomic_init(&q->stopping, false);
    init_sync(q);
    if (connect_all(q, err, errlen) != 0 || start_threads(q, box->args, err, errlen) != 0) {
        rd_queue_stop(q);
        return NULL;
    }
    rd_log_info("queue: started %d workers as %s", n, q->instance);
    return q;
}

void rd_queue_wake(struct rd_queue *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->wake = true;
    q->committed = true;
    q->derive_wake = true;
    pthread_cond_signal(&q->dispatch_cv);
    pthread_cond_signal(&q->derive_cv);
    pthread_mutex_unlock(&q->mu);
}

void rd_queue_stop(struct rd_queue *q)
{
    if (!q)
        return;
    /* Workers first, while the dispatcher still renews the leases of running jobs. */
    pthread_mutex_lock(&q->mu);
    q->closing = true;
    atomic_store(&q->stopping, true);
    pthread_cond_broadcast(&q->work_cv);
    pthread_cond_broadcast(&q->dispatch_cv);
    pthread_cond_broadcast(&q->derive_cv);
    pthread_mutex_unlock(&q->mu);
    for (int i = 0; i < q->nworker_threads; i++)
        pthread_join(q->worker_threads[i], NULL);
    /* Then the completer flushes what the workers finished, leases still renewed. */
    pthread_mutex_lock(&q->mu);
    q->completer_exit = true;
    pthread_cond_broadcast(&q->complete_cv);
    pthread_mutex_unlock(&q->mu);
    if (q->completer_started)
        pthread_join(q->completer, NULL);
    pthread_mutex_lock(&q->mu);
    q->dispatcher_exit = true;
    q->deriver_exit = true;
    q->scheduler_exit = true;
    pthread_cond_broadcast(&q->dispatch_cv);
    pthread_cond_broadcast(&q->derive_cv);
    pthread_cond_broadcast(&q->sched_cv);
    pthread_mutex_unlock(&q->mu);
    if (q->dispatcher_started)
        pthread_join(q->dispatcher, NULL);
    if (q->deriver_started)
        pthread_join(q->deriver, NULL);
    if (q->scheduler_started)
        pthread_join(q->scheduler, NULL);
    if (q->nworker_threads > 0)
        rd_log_info("queue: stopped");
    queue_free(q);
}
