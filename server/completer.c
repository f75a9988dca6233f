/*
 * The completer: workers hand it their successful outcomes and go on to the
 * next job; it commits everything that arrived while its previous commit was
 * in flight as one statement, so a burst of short jobs costs one WAL flush per
 * group, not one per job. A job stays 'running' (its key blocked, its lease
 * renewed) until that commit, so per-key order holds; a crash before it only
 * means the job runs again, as any at-least-once queue allows.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "queue_internal.h"
#include "rosterd/db.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/queue.h"

#define MAX_GROUP 512

/* $1: [{"id","attempts","note"}]; $2: this instance (the lease owner). */
static const char DONE_MANY_SQL[] =
    "WITH input AS ("
    "  SELECT * FROM json_to_recordset($1::json) AS t(id bigint, attempts int, note text)"
    "), d AS ("
    "  DELETE FROM jobs j USING input i WHERE j.id = i.id AND j.state = 'running'"
    "    AND j.lease_owner = $2 AND j.attempts = i.attempts"
    "  RETURNING j.*, i.note AS done_note"
    "), h AS ("
    "  INSERT INTO jobs_history (id, kind, key, connection_id, subject, unique_key, payload,"
    "    state, attempts, last_error, note, created_at, run_at, started_at, finished_at)"
    "  SELECT id, kind, key, connection_id, subject, unique_key, payload, 'done', attempts,"
    "    NULL, done_note, created_at, run_at, started_at, now() FROM d"
    "), l AS ("
    "  DELETE FROM job_events je USING d WHERE je.job_id = d.id"
    "  RETURNING je.event_id, je.job_id, d.done_note, d.started_at"
    "), e AS ("
    "  UPDATE events ev SET status = 'done', note = l.done_note, last_error = NULL,"
    "         attempts = ev.attempts + 1, updated_at = now()"
    "  FROM l WHERE ev.id = l.event_id RETURNING ev.id, ev.attempts, l.job_id, l.started_at"
    "), a AS ("
    "  INSERT INTO event_attempts (event_id, job_id, attempt, started_at, finished_at, outcome,"
    "    instance)"
    "  SELECT id, job_id, attempts, coalesce(started_at, now()), now(), 'done', $2 FROM e"
    ")"
    "SELECT count(*) FROM d";

static char *group_json(const struct rd_done *g, size_t n)
{
    struct json_object *arr = json_object_new_array_ext((int)n);
    for (size_t i = 0; i < n; i++) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_int64(g[i].id));
        json_object_object_add(o, "attempts", json_object_new_int(g[i].attempts));
        json_object_object_add(o, "note", g[i].note ? json_object_new_string(g[i].note) : NULL);
        json_object_array_add(arr, o);
    }
    char *text = rd_strdup(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN));
    json_object_put(arr);
    return text;
}

/*
 * A group whose commit failed (a deadlock, a serialization failure, a connection
 * reset) is tried again while its jobs stay held, so their leases keep being
 * renewed: given up at once, finished jobs read as running until their leases
 * lapsed, then ran a second time (issue 14). The statement is fenced by lease
 * owner and attempt, so a retry after a commit whose answer was lost changes
 * nothing. Given up after COMMIT_RETRY_MS (the database is gone: the leases lapse
 * anyway and the jobs run again), or after 1 s once the instance is stopping.
 */
#define COMMIT_RETRY_MS 10000L
#define COMMIT_RETRY_STOPPING_MS 1000L
#define COMMIT_PAUSE_MS 100L

/* Commits one group; returns false when it must be tried again. */
static bool commit_group(struct rd_queue *q, const struct rd_done *g, size_t n, bool last)
{
    char err[512];
    if (!rd_queue_db_ok(q->complete_db, RD_QUEUE_SESSION_COMPLETE)) {
        if (last)
            rd_log_warn("queue: completer connection lost; %zu finished jobs will run again "
                        "once their leases lapse",
                        n);
        return false;
    }
    char *json = group_json(g, n);
    const char *params[2] = {json, q->instance};
    PGresult *res =
        rd_queue_exec(q->complete_db, "rd_jobs_done", DONE_MANY_SQL, 2, params, err, sizeof err);
    free(json);
    if (!res) {
        if (last)
            rd_log_warn("queue: cannot record %zu finished jobs (their leases will lapse): %s", n,
                        err);
        else
            rd_log_info("queue: recording %zu finished jobs failed, trying again: %s", n, err);
        return false;
    }
    long done = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    if (done != (long)n)
        rd_log_warn("queue: %ld of %zu finished jobs had lost their lease; outcomes dropped",
                    (long)n - done, n);
    PQclear(res);
    return true;
}

static void commit_group_retrying(struct rd_queue *q, const struct rd_done *g, size_t n)
{
    struct timespec give_up = rd_queue_after_ms(COMMIT_RETRY_MS);
    struct timespec give_up_stopping = rd_queue_after_ms(COMMIT_RETRY_STOPPING_MS);
    for (;;) {
        /* A stop is not held up for long: the jobs then run again elsewhere. */
        bool last = rd_queue_past(&give_up) ||
                    (atomic_load(&q->stopping) && rd_queue_past(&give_up_stopping));
        if (commit_group(q, g, n, last) || last)
            return;
        struct timespec pause = {0, COMMIT_PAUSE_MS * 1000000L};
        nanosleep(&pause, NULL);
    }
}

static void release(struct rd_queue *q, const struct rd_done *g, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        for (size_t i = 0; i < q->nheld; i++) {
            if (q->held[i] == g[k].id) {
                q->held[i] = q->held[--q->nheld];
                break;
            }
        }
    }
}

void *rd_queue_completer_main(void *arg)
{
    struct rd_queue *q = arg;
    struct rd_done *group = rd_calloc(MAX_GROUP, sizeof *group);
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->ndone == 0 && !q->completer_exit)
            pthread_cond_wait(&q->complete_cv, &q->mu);
        if (q->ndone == 0)
            break; /* exiting with nothing left to flush */
        size_t n = q->ndone < MAX_GROUP ? q->ndone : MAX_GROUP;
        memcpy(group, q->done, n * sizeof *group);
        memmove(q->done, q->done + n, (q->ndone - n) * sizeof *q->done);
        q->ndone -= n;
        q->ncommitting = n;
        pthread_mutex_unlock(&q->mu);

        commit_group_retrying(q, group, n);

        pthread_mutex_lock(&q->mu);
        release(q, group, n);
        q->ncommitting = 0;
        /* Finished jobs may unblock the next ones of their keys: look again now. */
        q->wake = true;
        pthread_cond_signal(&q->dispatch_cv);
        for (size_t i = 0; i < n; i++)
            free(group[i].note);
    }
    pthread_mutex_unlock(&q->mu);
    free(group);
    return NULL;
}
