/*
 * Worker threads: take claimed jobs from the dispatcher, run the kind's handler
 * with a job context on the worker's own connection, and record the outcome:
 * successes go to the completer for a group commit (completer.c), failures are
 * recorded here in one statement (failed with backoff, or dead). Every finishing
 * statement is fenced by (lease_owner, attempts) so a job whose lease lapsed and
 * was claimed again is never finished twice.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "queue_internal.h"
#include "rosterd/connection.h"
#include "rosterd/db.h"
#include "rosterd/handler.h"
#include "rosterd/jsonx.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/metrics.h"
#include "rosterd/queue.h"

/* $4 is 'failed' or 'dead': a job state, an event status and an attempt outcome alike. */
static const char FAIL_SQL[] =
    "WITH j AS ("
    "  UPDATE jobs SET state = $4, run_at = now() + make_interval(secs => $5::float8),"
    "         last_error = $6, lease_owner = NULL, lease_until = NULL, updated_at = now()"
    "  WHERE id = $1::bigint AND state = 'running' AND lease_owner = $2 AND attempts = $3::int"
    "  RETURNING id, started_at"
    "), e AS ("
    "  UPDATE events ev SET status = $4, last_error = $6, attempts = ev.attempts + 1,"
    "         updated_at = now()"
    "  FROM job_events je JOIN j ON j.id = je.job_id WHERE ev.id = je.event_id"
    "  RETURNING ev.id, ev.attempts, j.started_at"
    "), a AS ("
    "  INSERT INTO event_attempts (event_id, job_id, attempt, started_at, finished_at, outcome,"
    "    error, instance)"
    "  SELECT id, $1::bigint, attempts, coalesce(started_at, now()), now(), $4, $6, $2 FROM e"
    ")"
    "SELECT count(*) FROM j";

int rd_job_event_body(struct rd_job_ctx *ctx, size_t i, char **body, int *event_attempts)
{
    *body = NULL;
    if (i >= ctx->nevents) {
        snprintf(ctx->err, sizeof ctx->err, "no event %zu in job %lld", i, (long long)ctx->job_id);
        return -1;
    }
    char id[24];
    snprintf(id, sizeof id, "%lld", (long long)ctx->events[i].id);
    const char *params[1] = {id};
    /* events.attempts counts finished attempts; this one is running. */
    PGresult *res =
        rd_db_exec(ctx->db, "SELECT body, attempts + 1 FROM events WHERE id = $1::bigint", 1,
                   params, ctx->err, sizeof ctx->err);
    if (!res)
        return -1;
    int rc = -1;
    if (PQntuples(res) == 1) {
        *body = rd_strdup(PQgetvalue(res, 0, 0));
        if (event_attempts)
            *event_attempts = atoi(PQgetvalue(res, 0, 1));
        rc = 0;
    } else {
        snprintf(ctx->err, sizeof ctx->err, "event %s is gone", id);
    }
    PQclear(res);
    return rc;
}

static double elapsed_since(const struct timespec *t0)
{
    struct timespec t1 = rd_queue_now();
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* Runs the handler; returns 0 on success, -1 with ctx->err/permanent set. */
static int run_handler(struct rd_queue *q, const struct rd_handler *h, struct rd_job_ctx *ctx)
{
    if (h->needs_connection && ctx->connection_name) {
        char err[512];
        if (rd_connection_load(ctx->db, q->key, ctx->connection_name, &ctx->conn, err,
                               sizeof err) != 0) {
            snprintf(ctx->err, sizeof ctx->err, "%s", err);
            return -1;
        }
    }
    struct timespec t0 = rd_queue_now();
    int rc = h->run(ctx);
    rd_metrics_job_observe(ctx->kind, elapsed_since(&t0));
    if (PQtransactionStatus(ctx->db) != PQTRANS_IDLE) {
        /* A handler bug must not leak a transaction into the next job. */
        PQclear(PQexec(ctx->db, "ROLLBACK"));
        if (rc == 0) {
            snprintf(ctx->err, sizeof ctx->err, "handler left a transaction open");
            rc = -1;
        }
    }
    if (rc != 0 && !ctx->err[0])
        snprintf(ctx->err, sizeof ctx->err, "handler %s failed", ctx->kind);
    return rc;
}

/* Queues a success for the completer; the job stays held until it is committed. */
static void hand_to_completer(struct rd_queue *q, const struct rd_claimed_job *job,
                              const struct rd_job_ctx *ctx)
{
    pthread_mutex_lock(&q->mu);
    struct rd_done *d = &q->done[q->ndone++];
    d->id = job->id;
    d->attempts = job->attempts;
    d->note = ctx->note[0] ? rd_strdup(ctx->note) : NULL;
    pthread_cond_signal(&q->complete_cv);
    pthread_mutex_unlock(&q->mu);
}

/* Records the outcome; true when the job went to the completer (still held). */
static bool finish(struct rd_queue *q, PGconn *db, const struct rd_claimed_job *job, int rc,
                   const struct rd_job_ctx *ctx, const struct rd_log_ctx *lc)
{
    char id[24], att[16], delay[32], err[512];
    snprintf(id, sizeof id, "%lld", (long long)job->id);
    snprintf(att, sizeof att, "%d", job->attempts);
    PGresult *res;
    if (rc == 0) {
        hand_to_completer(q, job, ctx);
        return true;
    } else {
        bool dead = ctx->permanent || job->attempts >= q->max_attempts;
        double wait =
            dead ? 0.0 : rd_queue_backoff(job->attempts, q->retry_base, rd_queue_uniform());
        if (!dead && ctx->retry_after > wait)
            wait =
                ctx->retry_after < RD_QUEUE_BACKOFF_CAP ? ctx->retry_after : RD_QUEUE_BACKOFF_CAP;
        snprintf(delay, sizeof delay, "%.3f", wait);
        const char *params[6] = {id, q->instance, att, dead ? "dead" : "failed", delay, ctx->err};
        res = rd_queue_exec(db, "rd_job_fail", FAIL_SQL, 6, params, err, sizeof err);
        if (dead)
            rd_log_ctx_error(lc, "job %s dead after attempt %d: %s", job->kind, job->attempts,
                             ctx->err);
        else
            rd_log_ctx_warn(lc, "job %s attempt %d failed, retry in %.1fs: %s", job->kind,
                            job->attempts, wait, ctx->err);
    }
    if (!res) {
        rd_log_ctx_warn(lc, "cannot record job outcome (its lease will lapse): %s", err);
        return false;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "1") != 0)
        rd_log_ctx_warn(lc, "job lease was lost before it finished; outcome dropped");
    PQclear(res);
    return false;
}

/* Runs one job; true when its outcome went to the completer (the job stays held). */
static bool run_job(struct rd_queue *q, PGconn *db, struct rd_claimed_job *job)
{
    struct rd_log_ctx lc = {.connection = job->conn_name,
                            .event_id = job->nevents ? job->events[0].id : 0,
                            .job_id = job->id};
    if (!rd_queue_db_ok(db, NULL)) {
        rd_log_ctx_warn(&lc, "worker connection lost, job waits for its lease to lapse");
        return false;
    }
    struct rd_job_ctx *ctx = rd_calloc(1, sizeof *ctx);
    ctx->db = db;
    ctx->secret_key = q->key;
    ctx->job_id = job->id;
    ctx->kind = job->kind;
    ctx->key = job->key;
    ctx->connection_id = job->connection_id;
    ctx->connection_name = job->conn_name;
    ctx->subject = job->subject;
    ctx->attempt = job->attempts;
    ctx->payload = job->payload ? rd_json_parse_stored(job->payload) : NULL;
    ctx->events = job->events;
    ctx->nevents = job->nevents;
    ctx->instance = q->instance;
    ctx->stopping = &q->stopping;
    ctx->ca_file = q->ca_file;
    ctx->smtp_url = q->smtp_url;
    ctx->smtp_from = q->smtp_from;

    const struct rd_handler *h = rd_handler_find(job->kind);
    int rc = 0;
    if (!h)
        snprintf(ctx->note, sizeof ctx->note, "no handler");
    else if (h->test_only && !q->test_handlers)
        snprintf(ctx->note, sizeof ctx->note, "test handlers are off");
    else
        rc = run_handler(q, h, ctx);
    bool handed = finish(q, db, job, rc, ctx, &lc);
    rd_connection_free(ctx->conn);
    json_object_put(ctx->payload);
    free(ctx);
    return handed;
}

void *rd_queue_worker_main(void *arg)
{
    struct rd_queue_worker_arg *wa = arg;
    struct rd_queue *q = wa->q;
    PGconn *db = q->worker_db[wa->index];
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->closing && q->nready == 0)
            pthread_cond_wait(&q->work_cv, &q->mu);
        if (q->closing)
            break; /* unstarted jobs are handed back by the dispatcher */
        struct rd_claimed_job *job = q->ready[0];
        memmove(q->ready, q->ready + 1, (q->nready - 1) * sizeof *q->ready);
        q->nready--;
        q->busy++;
        pthread_mutex_unlock(&q->mu);

        bool handed = run_job(q, db, job);

        pthread_mutex_lock(&q->mu);
        q->busy--;
        for (size_t i = 0; !handed && i < q->nheld; i++)
            if (q->held[i] == job->id) {
                q->held[i] = q->held[--q->nheld];
                break;
            }
        /* A finished job may unblock the next one of its key: look again now. */
        q->wake = true;
        pthread_cond_signal(&q->dispatch_cv);
        rd_queue_claimed_free(job);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}
