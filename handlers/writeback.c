/*
 * Platform writes a reconciliation run sends behind: see writeback_internal.h.
 */
#include "writeback_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "rosterd/audit.h"
#include "rosterd/db.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/scim.h"

struct wb_item {
    char *path;
    struct json_object *body, *before;
    int64_t audit_id;
    bool recorded; /* its audit row is committed: it may be sent */
    int rc, status;
    struct rd_http_error err;
    rd_writeback_done_fn done;
    void *arg;
};

struct rd_writeback;
struct wb_batch;

struct sender {
    struct rd_writeback *wb;
    struct wb_batch *b;
    int slot;
};

/* One batch: filled on the run's thread, then sent by the senders while the next fills. */
struct wb_batch {
    struct wb_item items[RD_WRITEBACK_BATCH];
    size_t n;
    atomic_size_t next; /* the next item a sender takes */
    bool in_flight;     /* started: finish() joins and reports it */
    pthread_t tid[RD_WRITEBACK_THREADS];
    bool started[RD_WRITEBACK_THREADS];
    struct sender snd[RD_WRITEBACK_THREADS];
    struct rd_http_error err; /* why its audit rows could not be recorded */
};

struct rd_writeback {
    struct wb_batch b[2];
    int filling; /* index of the batch being filled; the other may be in flight */
    struct rd_http_client *http[RD_WRITEBACK_THREADS];
    struct rd_scim *scim[RD_WRITEBACK_THREADS];
    struct rd_writeback_stats *stats;
    double deadline;
    bool busy; /* finishing a batch: its done functions may ask for the platform */
};

static struct rd_writeback *wb_of(const struct rd_sync *s)
{
    return s->writeback.data;
}

static void join(struct wb_batch *b)
{
    for (int t = 0; t < RD_WRITEBACK_THREADS; t++)
        if (b->started[t]) {
            pthread_join(b->tid[t], NULL);
            b->started[t] = false;
        }
}

static void items_free(struct wb_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->items[i].path);
        json_object_put(b->items[i].body);
        json_object_put(b->items[i].before);
    }
    memset(b->items, 0, b->n * sizeof(b->items[0]));
    b->n = 0;
}

static void wb_free(void *data)
{
    struct rd_writeback *wb = data;
    if (!wb)
        return;
    for (int k = 0; k < 2; k++) {
        struct wb_batch *b = &wb->b[k];
        join(b); /* only when a run ended without rd_writeback_disable: rows stay "sending" */
        for (size_t i = 0; i < b->n; i++)
            free(b->items[i].arg); /* handed over, never reported: dropped */
        items_free(b);
    }
    for (int i = 0; i < RD_WRITEBACK_THREADS; i++) {
        rd_scim_free(wb->scim[i]);
        rd_http_client_free(wb->http[i]);
    }
    free(wb);
}

bool rd_writeback_on(const struct rd_sync *s)
{
    const struct rd_writeback *wb = wb_of(s);
    return wb && !wb->busy && !s->dry_run;
}

void rd_writeback_enable(struct rd_sync *s, struct rd_writeback_stats *stats)
{
    if (wb_of(s))
        return;
    struct rd_writeback *wb = rd_calloc(1, sizeof(*wb));
    wb->stats = stats;
    s->writeback.data = wb;
    s->writeback.free = wb_free;
}

/* A sender thread: takes items until none is left; nothing but HTTP here. */
static void *send_items(void *arg)
{
    const struct sender *snd = arg;
    struct wb_batch *b = snd->b;
    for (;;) {
        size_t i = atomic_fetch_add(&b->next, 1);
        if (i >= b->n)
            break;
        struct wb_item *it = &b->items[i];
        if (it->recorded)
            it->rc = rd_scim_send_patch(snd->wb->scim[snd->slot], it->path, it->body,
                                        snd->wb->deadline, &it->status, &it->err);
    }
    return NULL;
}

/* The senders' clients, made like the context's own (same CA, same cancel flag). */
static int clients(struct rd_sync *s, struct rd_writeback *wb, struct rd_http_error *err)
{
    struct rd_scim *own = rd_sync_scim_client(s, err);
    if (!own)
        return -1;
    for (int i = 0; i < RD_WRITEBACK_THREADS; i++) {
        if (wb->scim[i])
            continue;
        struct rd_http_opts ho = {.ca_file = s->opts.ca_file, .cancel = s->stopping};
        wb->http[i] = rd_http_client_new(&ho);
        wb->scim[i] = rd_scim_clone(own, wb->http[i]);
    }
    return 0;
}

/* The completion of what b sent: one UPDATE of its audit rows. */
static int complete_sql(struct rd_sync *s, const struct wb_batch *b, char *dberr, size_t len)
{
    struct json_object *rows = json_object_new_array();
    for (size_t i = 0; i < b->n; i++) {
        const struct wb_item *it = &b->items[i];
        if (!it->recorded || !it->audit_id)
            continue;
        struct json_object *r = json_object_new_object();
        json_object_object_add(r, "id", json_object_new_int64(it->audit_id));
        json_object_object_add(r, "after", json_object_get(it->body));
        json_object_object_add(r, "outcome", json_object_new_string(it->rc == 0 ? "ok" : "failed"));
        json_object_object_add(r, "status",
                               it->status > 0 ? json_object_new_int(it->status) : NULL);
        json_object_object_add(r, "error",
                               it->rc == 0 ? NULL : json_object_new_string(it->err.msg));
        json_object_array_add(rows, r);
    }
    const char *params[1] = {json_object_to_json_string_ext(rows, JSON_C_TO_STRING_PLAIN)};
    int rc = json_object_array_length(rows) == 0
                 ? 0
                 : rd_db_run(s->db,
                             "UPDATE upstream_audit a SET after = coalesce(u.after, a.after),"
                             " outcome = u.outcome, http_status = u.status, error = u.error"
                             " FROM jsonb_to_recordset($1::jsonb) AS u(id bigint, after jsonb,"
                             " outcome text, status int, error text) WHERE a.id = u.id",
                             1, params, dberr, len);
    json_object_put(rows);
    return rc;
}

/* The write-ahead rows of b ("sending"): one INSERT; ids matched back by path. */
static int record_sql(struct rd_sync *s, const struct rd_audit_ctx *a, struct wb_batch *b,
                      char *dberr, size_t len)
{
    struct json_object *rows = json_object_new_array();
    for (size_t i = 0; i < b->n; i++) {
        struct json_object *r = json_object_new_object();
        json_object_object_add(r, "path", json_object_new_string(b->items[i].path));
        json_object_object_add(r, "before", json_object_get(b->items[i].before));
        json_object_object_add(r, "after", json_object_get(b->items[i].body));
        json_object_array_add(rows, r);
    }
    char cid[24];
    snprintf(cid, sizeof(cid), "%lld", (long long)a->connection_id);
    const char *params[3] = {a->connection_id > 0 ? cid : NULL, a->reason,
                             json_object_to_json_string_ext(rows, JSON_C_TO_STRING_PLAIN)};
    PGresult *res = rd_db_exec(s->db,
                               "INSERT INTO upstream_audit (connection_id, system, method, path,"
                               " before, after, reason, outcome)"
                               " SELECT $1::bigint, 'scim', 'PATCH', u.x ->> 'path',"
                               " nullif(u.x -> 'before', 'null'::jsonb),"
                               " u.x -> 'after', $2, 'sending'"
                               " FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS u(x, i)"
                               " ORDER BY u.i RETURNING id, path",
                               3, params, dberr, len);
    json_object_put(rows);
    if (!res)
        return -1;
    for (int r = 0; r < PQntuples(res); r++)
        for (size_t i = 0; i < b->n; i++)
            if (!b->items[i].audit_id && strcmp(b->items[i].path, PQgetvalue(res, r, 1)) == 0) {
                b->items[i].audit_id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
                break;
            }
    PQclear(res);
    return 0;
}

/* One transaction: done's audit rows completed, then next's recorded (either may be NULL). */
static int audit_tx(struct rd_sync *s, const struct rd_audit_ctx *a, const struct wb_batch *done,
                    struct wb_batch *next, char *dberr, size_t len)
{
    if (rd_db_run(s->db, "BEGIN", 0, NULL, dberr, len) != 0)
        return -1;
    if ((done && complete_sql(s, done, dberr, len) != 0) ||
        (next && record_sql(s, a, next, dberr, len) != 0) ||
        rd_db_run(s->db, "COMMIT", 0, NULL, dberr, len) != 0) {
        PQclear(PQexec(s->db, "ROLLBACK"));
        if (next)
            for (size_t i = 0; i < next->n; i++)
                next->items[i].audit_id = 0;
        return -1;
    }
    return 0;
}

/*
 * The audit rows' part of a step: done's rows get their outcomes, next's are
 * committed "sending" (its items may then be sent). Both in one commit; when that
 * fails, each on its own, so that one's failure does not cost the other.
 */
static void audit_step(struct rd_sync *s, struct wb_batch *done, struct wb_batch *next)
{
    const struct rd_audit_ctx *a = rd_sync_audit(s);
    char dberr[256] = "";
    if (next)
        memset(&next->err, 0, sizeof(next->err));
    bool recorded = false;
    if (!a || !a->db) {
        recorded = true; /* nothing to record (no audit in this context) */
    } else if (audit_tx(s, a, done, next, dberr, sizeof(dberr)) == 0) {
        recorded = true;
    } else {
        if (done && audit_tx(s, a, done, NULL, dberr, sizeof(dberr)) != 0)
            rd_log_error("audit rows of %zu platform writes stay 'sending': %s", done->n, dberr);
        if (next && audit_tx(s, a, NULL, next, dberr, sizeof(dberr)) == 0)
            recorded = true;
        else if (next)
            rd_http_error_set(&next->err, false, 0,
                              "scim PATCH: not sent: the audit rows cannot be written: %s", dberr);
    }
    for (size_t i = 0; next && recorded && i < next->n; i++)
        next->items[i].recorded = true;
}

/* Lets the senders go on b, whose audit rows are recorded (those that are not stay unsent). */
static void start(struct rd_sync *s, struct rd_writeback *wb, struct wb_batch *b)
{
    b->in_flight = true;
    wb->deadline = s->deadline;
    atomic_store(&b->next, 0);
    if (b->n == 0 || !b->items[0].recorded)
        return;
    if (clients(s, wb, &b->err) != 0) {
        for (size_t i = 0; i < b->n; i++)
            b->items[i].err = b->err; /* recorded, not sent: completed as failed */
        return;
    }
    size_t nthreads = b->n < RD_WRITEBACK_THREADS ? b->n : RD_WRITEBACK_THREADS;
    for (size_t t = 0; t < nthreads; t++) {
        b->snd[t] = (struct sender){.wb = wb, .b = b, .slot = (int)t};
        b->started[t] = pthread_create(&b->tid[t], NULL, send_items, &b->snd[t]) == 0;
        if (!b->started[t])
            send_items(&b->snd[t]); /* no thread to be had: this one sends */
    }
}

/* Reports each write of b (joined, its audit rows completed) and empties it. */
static void report(struct rd_sync *s, struct rd_writeback *wb, struct wb_batch *b)
{
    wb->busy = true;
    if (wb->stats)
        wb->stats->batches++;
    for (size_t i = 0; i < b->n; i++) {
        struct wb_item *it = &b->items[i];
        if (!it->recorded)
            it->err = b->err; /* not sent: why */
        if (wb->stats) {
            wb->stats->writes += it->rc == 0;
            wb->stats->failed += it->rc != 0;
            wb->stats->failed_in_a_row = it->rc == 0 ? 0 : wb->stats->failed_in_a_row + 1;
        }
        it->done(s, it->arg, it->rc, &it->err);
    }
    items_free(b);
    b->in_flight = false;
    wb->busy = false;
}

/*
 * One step: the batch in flight (if any) is waited for; its audit rows completed and
 * next's recorded in one transaction; next's senders started; the finished batch
 * reported while they send.
 */
static void step(struct rd_sync *s, struct rd_writeback *wb, struct wb_batch *next)
{
    struct wb_batch *done = &wb->b[1 - wb->filling]; /* next, if any, is the filling one */
    if (!done->in_flight)
        done = NULL;
    if (done)
        join(done);
    audit_step(s, done, next);
    if (next)
        start(s, wb, next);
    if (done)
        report(s, wb, done);
}

void rd_writeback_flush(struct rd_sync *s)
{
    struct rd_writeback *wb = wb_of(s);
    if (!wb || wb->busy)
        return;
    struct wb_batch *fill = &wb->b[wb->filling];
    step(s, wb, fill->n ? fill : NULL); /* the other batch is reported; fill goes out */
    if (!fill->in_flight)
        return;
    join(fill);
    audit_step(s, fill, NULL);
    report(s, wb, fill);
}

void rd_writeback_disable(struct rd_sync *s, bool send)
{
    struct rd_writeback *wb = wb_of(s);
    if (!wb)
        return;
    if (send)
        rd_writeback_flush(s);
    else
        step(s, wb, NULL); /* what went out is reported either way; the rest is dropped */
    wb_free(wb);
    s->writeback.data = NULL;
    s->writeback.free = NULL;
}

void rd_writeback_patch(struct rd_sync *s, const char *path, struct json_object *body,
                        struct json_object *before, rd_writeback_done_fn done, void *arg)
{
    struct rd_writeback *wb = wb_of(s);
    struct wb_batch *fill = &wb->b[wb->filling];
    fill->items[fill->n++] = (struct wb_item){.path = rd_strdup(path),
                                              .body = body,
                                              .before = before,
                                              .rc = -1, /* until a sender's answer */
                                              .done = done,
                                              .arg = arg};
    if (fill->n < RD_WRITEBACK_BATCH)
        return;
    step(s, wb, fill); /* one batch in flight at a time */
    wb->filling = 1 - wb->filling;
}
