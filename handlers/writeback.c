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

/* Commits every item's write-ahead audit row in one transaction; -1: none is recorded. */
static int record_all(struct rd_sync *s, struct wb_batch *b, struct rd_http_error *err)
{
    const struct rd_audit_ctx *a = rd_sync_audit(s);
    char dberr[256];
    if (!a || !a->db) {
        for (size_t i = 0; i < b->n; i++)
            b->items[i].recorded = true;
        return 0;
    }
    if (rd_db_run(s->db, "BEGIN", 0, NULL, dberr, sizeof(dberr)) != 0) {
        rd_http_error_set(err, false, 0,
                          "scim PATCH: not sent: the audit rows cannot be written: %s", dberr);
        return -1;
    }
    for (size_t i = 0; i < b->n; i++) {
        struct wb_item *it = &b->items[i];
        struct rd_audit_ctx ac = *a;
        ac.before = it->before;
        if (rd_audit_ctx_begin(&ac, "scim", "PATCH", it->path, it->body, &it->audit_id, err) != 0) {
            PQclear(PQexec(s->db, "ROLLBACK"));
            return -1;
        }
    }
    PGresult *res = PQexec(s->db, "COMMIT");
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(res), "COMMIT") == 0;
    if (!ok) {
        rd_db_error(s->db, res, dberr, sizeof(dberr));
        rd_http_error_set(err, false, 0,
                          "scim PATCH: not sent: the audit rows cannot be written: %s",
                          dberr[0] ? dberr : "the commit was rolled back");
    }
    PQclear(res);
    if (!ok)
        return -1;
    for (size_t i = 0; i < b->n; i++)
        b->items[i].recorded = true;
    return 0;
}

/* Completes the audit rows of what was sent, in one transaction (a row left is "sending"). */
static void complete_all(struct rd_sync *s, struct wb_batch *b)
{
    const struct rd_audit_ctx *a = rd_sync_audit(s);
    char dberr[256];
    if (!a || !a->db || b->n == 0 || !b->items[0].recorded)
        return;
    bool tx = rd_db_run(s->db, "BEGIN", 0, NULL, dberr, sizeof(dberr)) == 0;
    for (size_t i = 0; i < b->n; i++) {
        const struct wb_item *it = &b->items[i];
        (void)rd_audit_ctx_end(a, it->audit_id, it->body, it->rc == 0 ? "ok" : "failed", it->status,
                               it->rc == 0 ? NULL : it->err.msg);
    }
    if (tx && rd_db_run(s->db, "COMMIT", 0, NULL, dberr, sizeof(dberr)) != 0)
        rd_log_error("audit rows of %zu platform writes stay 'sending': %s", b->n, dberr);
}

/* Records the batch's audit rows and lets the senders go; returns at once. */
static void start(struct rd_sync *s, struct rd_writeback *wb, struct wb_batch *b)
{
    memset(&b->err, 0, sizeof(b->err));
    for (size_t i = 0; i < b->n; i++) {
        b->items[i].rc = -1;
        b->items[i].status = 0;
        memset(&b->items[i].err, 0, sizeof(b->items[i].err));
    }
    b->in_flight = true;
    wb->deadline = s->deadline;
    atomic_store(&b->next, 0);
    if (clients(s, wb, &b->err) != 0 || record_all(s, b, &b->err) != 0)
        return; /* nothing is sent; finish() reports why */
    size_t nthreads = b->n < RD_WRITEBACK_THREADS ? b->n : RD_WRITEBACK_THREADS;
    for (size_t t = 0; t < nthreads; t++) {
        b->snd[t] = (struct sender){.wb = wb, .b = b, .slot = (int)t};
        b->started[t] = pthread_create(&b->tid[t], NULL, send_items, &b->snd[t]) == 0;
        if (!b->started[t])
            send_items(&b->snd[t]); /* no thread to be had: this one sends */
    }
}

/* Waits for the batch, completes its audit rows and reports each write. */
static void finish(struct rd_sync *s, struct rd_writeback *wb, struct wb_batch *b)
{
    if (!b->in_flight)
        return;
    wb->busy = true;
    join(b);
    complete_all(s, b);
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

void rd_writeback_flush(struct rd_sync *s)
{
    struct rd_writeback *wb = wb_of(s);
    if (!wb || wb->busy)
        return;
    struct wb_batch *fill = &wb->b[wb->filling], *other = &wb->b[1 - wb->filling];
    finish(s, wb, other);
    if (fill->n == 0)
        return;
    start(s, wb, fill);
    finish(s, wb, fill);
}

void rd_writeback_disable(struct rd_sync *s, bool send)
{
    struct rd_writeback *wb = wb_of(s);
    if (!wb)
        return;
    finish(s, wb, &wb->b[1 - wb->filling]); /* what went out is reported either way */
    if (send)
        rd_writeback_flush(s);
    wb_free(wb);
    s->writeback.data = NULL;
    s->writeback.free = NULL;
}

void rd_writeback_patch(struct rd_sync *s, const char *path, struct json_object *body,
                        struct json_object *before, rd_writeback_done_fn done, void *arg)
{
    struct rd_writeback *wb = wb_of(s);
    struct wb_batch *fill = &wb->b[wb->filling];
    fill->items[fill->n++] = (struct wb_item){
        .path = rd_strdup(path), .body = body, .before = before, .done = done, .arg = arg};
    if (fill->n < RD_WRITEBACK_BATCH)
        return;
    finish(s, wb, &wb->b[1 - wb->filling]); /* one batch in flight at a time */
    start(s, wb, fill);
    wb->filling = 1 - wb->filling;
}
