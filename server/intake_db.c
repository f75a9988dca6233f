/*
 * The intake's batch writer. Deliveries that arrive while a statement is in
 * flight queue up and go out together as one INSERT (one commit), so the
 * commit rate, not the request rate, bounds Postgres. libpq runs non-blocking
 * on the event loop; each connection has one event re-armed in the direction
 * libpq asks for. A lost connection fails its batch (503: the sender retries
 * and dedup makes that safe) and is re-established with backoff.
 */
#include "intake_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "rosterd/crypto.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/migrate.h"

#define BATCH_MAX_ITEMS 512
#define BATCH_MAX_BYTES (16u << 20)
#define CONNECT_TIMEOUT_S 5
#define RETRY_MIN_S 0.5
#define RETRY_MAX_S 5.0
#define KEY_BUCKETS 4096

enum conn_state { C_DOWN, C_CONNECTING, C_SCHEMA, C_PREPARE, C_IDLE, C_BATCH, C_CONNS };

#define INSERT_STMT "rd_intake_insert"

struct dbconn {
    struct rd_idb *db;
    int index;
    PGconn *pg;
    enum conn_state state;
    struct event *io;    /* socket readiness, re-armed as libpq asks */
    struct event *timer; /* connect timeout and reconnect backoff */
    double backoff;
    bool flushing; /* output not yet fully sent */
    struct rd_pending *batch;
    PGresult *rows; /* the statement's tuples, kept until the end of the op */
    bool op_failed;
    bool schema_warned;
};

struct rd_idb {
    struct event_base *base;
    char *url;
    int nconns;
    struct dbconn *conns;
    struct rd_pending *head, *tail;
    size_t queued;
    size_t inflight;
    size_t max_pending;
    bool want_connections;
    struct rd_idb_callbacks cbs;
    /*
     * Outstanding deliveries by (connection, dedup key). A redelivery that
     * arrives while the first is still uncommitted waits for it instead of
     * racing it into a second batch, where it would match no row.
     */
    struct rd_pending *keys[KEY_BUCKETS];
};

static const char insert_sql[] =
    "WITH input AS ("
    " SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],"
    "                      $6::bytea[], $7::text[], $8::text[])"
    "   WITH ORDINALITY AS t(connection_id, source, event_type, subject, auth, dkey, headers,"
    "                        body, ord)"
    "), ins AS ("
    " INSERT INTO events (connection_id, source, event_type, subject, auth, dedup_key, headers, body)"
    " SELECT connection_id, source, event_type, subject, auth, dkey, headers::jsonb,"
    "        body FROM input ORDER BY ord"
    " ON CONFLICT (connection_id, dedup_key) DO NOTHING"
    " RETURNING id, connection_id, dedup_key"
    ")"
    " SELECT i.ord, coalesce(ins.id, e.id), ins.id IS NOT NULL"
    " FROM input i"
    " LEFT JOIN ins ON ins.connection_id = i.connection_id AND ins.dedup_key = i.dkey"
    /* LATERAL: a probe of events_dedup per duplicate, whatever the statistics. A
       plain join let the generic plan, made while events was small, hash-join a
       sequential scan of all events on every batch. */
    " LEFT JOIN LATERAL (SELECT e.id FROM events e WHERE ins.id IS NULL"
    "                    AND e.connection_id = i.connection_id AND e.dedup_key = i.dkey"
    "                    LIMIT 1) e ON true"
    " ORDER BY i.ord";

static const char connections_sql[] =
    "SELECT id::text, name, sealed, updated_at::text FROM connections ORDER BY id";

static void conn_arm(struct dbconn *c, short what);
static void conn_start(struct dbconn *c);
static void conn_kick(struct rd_idb *db);

double rd_intake_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void rd_pending_free(struct rd_pending *p)
{
    if (!p)
        return;
    free(p->connection_name);
    free(p->event_type);
    free(p->subject);
    free(p->headers_json);
    free(p->body);
    free(p);
}

static size_t key_bucket(const struct rd_pending *p)
{
    /* The key is a SHA-256 in hex: its first digits are already uniform. */
    size_t h = (size_t)strtoul((char[9]){p->dkey_hex[0], p->dkey_hex[1], p->dkey_hex[2],
                                         p->dkey_hex[3], p->dkey_hex[4], p->dkey_hex[5],
                                         p->dkey_hex[6], p->dkey_hex[7], 0},
                               NULL, 16);
    return (h ^ (size_t)p->connection_id) % KEY_BUCKETS;
}

static struct rd_pending *key_find(struct rd_idb *db, const struct rd_pending *p)
{
    for (struct rd_pending *q = db->keys[key_bucket(p)]; q; q = q->hnext)
        if (q->connection_id == p->connection_id && memcmp(q->dkey_hex, p->dkey_hex, 64) == 0)
            return q;
    return NULL;
}

static void key_remove(struct rd_idb *db, struct rd_pending *p)
{
    for (struct rd_pending **pp = &db->keys[key_bucket(p)]; *pp; pp = &(*pp)->hnext) {
        if (*pp == p) {
            *pp = p->hnext;
            p->hnext = NULL;
            return;
        }
    }
}

/*
 * Hands a finished list to the HTTP side, with each leader's followers after
 * it: they share its event id, as duplicates, or its failure.
 */
static void deliver(struct rd_idb *db, struct rd_pending *list)
{
    if (!list)
        return;
    for (struct rd_pending *p = list; p; p = p->next) {
        key_remove(db, p);
        struct rd_pending *f = p->followers;
        p->followers = NULL;
        while (f) {
            struct rd_pending *fn = f->next;
            f->result = p->result == RD_PENDING_FAILED ? RD_PENDING_FAILED : RD_PENDING_DUPLICATE;
            f->event_id = p->event_id;
            db->inflight--;
            f->next = p->next;
            p->next = f;
            p = f;
            f = fn;
        }
    }
    db->cbs.on_batch(list, db->cbs.arg);
}

static void fail_list(struct rd_idb *db, struct rd_pending *list)
{
    for (struct rd_pending *p = list; p; p = p->next)
        p->result = RD_PENDING_FAILED;
    deliver(db, list);
}

/* Drops the connection, fails what it carried and schedules a reconnect. */
static void conn_reset(struct dbconn *c, const char *why)
{
    struct rd_idb *db = c->db;
    if (c->state != C_DOWN && c->state != C_CONNECTING)
        rd_log_warn("database connection %d lost: %s", c->index, why);
    else
        rd_log_warn("database connection %d failed: %s", c->index, why);
    event_del(c->io);
    if (c->pg)
        PQfinish(c->pg);
    c->pg = NULL;
    PQclear(c->rows);
    c->rows = NULL;
    if (c->batch) {
        size_t n = 0;
        for (struct rd_pending *p = c->batch; p; p = p->next)
            n++;
        db->inflight -= n;
        struct rd_pending *b = c->batch;
        c->batch = NULL;
        fail_list(db, b);
    }
    if (c->state == C_CONNS)
        db->cbs.on_connections(NULL, db->cbs.arg);
    c->state = C_DOWN;
    c->flushing = false;
    c->backoff = c->backoff <= 0 ? RETRY_MIN_S : c->backoff * 2;
    if (c->backoff > RETRY_MAX_S)
        c->backoff = RETRY_MAX_S;
    struct timeval tv = {(time_t)c->backoff, (suseconds_t)((c->backoff - (int)c->backoff) * 1e6)};
    evtimer_add(c->timer, &tv);
    /* With every connection down, nothing queued can be committed: answer now. */
    if (!rd_idb_ready(db) && db->head) {
        struct rd_pending *list = db->head;
        db->head = db->tail = NULL;
        db->queued = 0;
        fail_list(db, list);
    }
}

static void conn_arm(struct dbconn *c, short what)
{
    event_del(c->io);
    event_assign(c->io, c->db->base, PQsocket(c->pg), what, event_get_callback(c->io), c);
    event_add(c->io, NULL);
}

/*
 * One-dimensional arrays in Postgres's binary format (array_send), so the
 * server neither parses nor unescapes a 1 MiB body inside an array literal:
 * ndim, has-null flag, element type, size, lower bound, then length-prefixed
 * elements. All integers are big-endian.
 */
enum { OID_BYTEA = 17, OID_INT8 = 20, OID_TEXT = 25 };
enum { OID_BYTEA_ARRAY = 1001, OID_INT8_ARRAY = 1016, OID_TEXT_ARRAY = 1009 };

static void put_be32(struct rd_buf *b, uint32_t v)
{
    unsigned char x[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    rd_buf_append(b, x, 4);
}

static void array_begin(struct rd_buf *b, uint32_t elem_oid, size_t n)
{
    put_be32(b, 1);
    put_be32(b, 1); /* may hold NULLs: the flag is advisory on input */
    put_be32(b, elem_oid);
    put_be32(b, (uint32_t)n);
    put_be32(b, 1);
}

static void array_elem(struct rd_buf *b, const void *p, size_t n)
{
    if (!p) {
        put_be32(b, 0xffffffffu);
        return;
    }
    put_be32(b, (uint32_t)n);
    rd_buf_append(b, p, n);
}

static void array_int8(struct rd_buf *b, int64_t v)
{
    put_be32(b, 8);
    put_be32(b, (uint32_t)((uint64_t)v >> 32));
    put_be32(b, (uint32_t)v);
}

static const Oid insert_types[8] = {OID_INT8_ARRAY, OID_TEXT_ARRAY, OID_TEXT_ARRAY,
                                    OID_TEXT_ARRAY, OID_TEXT_ARRAY, OID_BYTEA_ARRAY,
                                    OID_TEXT_ARRAY, OID_TEXT_ARRAY};

/* Takes up to BATCH_MAX_ITEMS queued requests (and BATCH_MAX_BYTES of bodies). */
static struct rd_pending *take_batch(struct rd_idb *db, size_t *count)
{
    struct rd_pending *list = NULL, **tail = &list;
    size_t n = 0, bytes = 0;
    while (db->head && n < BATCH_MAX_ITEMS &&
           (n == 0 || bytes + db->head->body_len < BATCH_MAX_BYTES)) {
        struct rd_pending *p = db->head;
        db->head = p->next;
        p->next = NULL;
        *tail = p;
        tail = &p->next;
        n++;
        bytes += p->body_len;
    }
    if (!db->head)
        db->tail = NULL;
    *count = n;
    return list;
}

/* Sends one batch as one statement (one commit). */
static void send_batch(struct dbconn *c)
{
    static const uint32_t elems[8] = {OID_INT8, OID_TEXT,  OID_TEXT, OID_TEXT,
                                      OID_TEXT, OID_BYTEA, OID_TEXT, OID_TEXT};
    static const int formats[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    struct rd_idb *db = c->db;
    struct rd_buf arr[8] = {{0}};
    size_t n = 0;
    struct rd_pending *list = take_batch(db, &n);

    for (int k = 0; k < 8; k++)
        array_begin(&arr[k], elems[k], n);
    for (struct rd_pending *p = list; p; p = p->next) {
        uint8_t key[32];
        if (rd_hex_decode(p->dkey_hex, 64, key, sizeof(key), &(size_t){0}) != 0)
            abort(); /* we wrote it: cannot happen */
        array_int8(&arr[0], p->connection_id);
        array_elem(&arr[1], p->source, strlen(p->source));
        array_elem(&arr[2], p->event_type, strlen(p->event_type));
        array_elem(&arr[3], p->subject, p->subject ? strlen(p->subject) : 0);
        array_elem(&arr[4], p->auth, strlen(p->auth));
        array_elem(&arr[5], key, sizeof(key));
        array_elem(&arr[6], p->headers_json, strlen(p->headers_json));
        array_elem(&arr[7], p->body, p->body_len);
    }
    db->queued -= n;
    db->inflight += n;
    const char *params[8];
    int lengths[8];
    for (int k = 0; k < 8; k++) {
        params[k] = arr[k].data;
        lengths[k] = (int)arr[k].len;
    }
    c->batch = list;
    c->state = C_BATCH;
    int ok = PQsendQueryPrepared(c->pg, INSERT_STMT, 8, params, lengths, formats, 0);
    for (int k = 0; k < 8; k++)
        rd_buf_free(&arr[k]);
    if (!ok) {
        conn_reset(c, PQerrorMessage(c->pg));
        return;
    }
    c->flushing = true;
    conn_arm(c, EV_READ | EV_WRITE | EV_PERSIST);
}

static void send_connections(struct dbconn *c)
{
    c->db->want_connections = false;
    c->state = C_CONNS;
    if (!PQsendQueryParams(c->pg, connections_sql, 0, NULL, NULL, NULL, NULL, 1)) {
        conn_reset(c, PQerrorMessage(c->pg));
        return;
    }
    c->flushing = true;
    conn_arm(c, EV_READ | EV_WRITE | EV_PERSIST);
}

/* Applies the statement's rows to the batch and hands the batch back. */
static void finish_batch(struct dbconn *c)
{
    struct rd_idb *db = c->db;
    struct rd_pending *list = c->batch;
    c->batch = NULL;
    size_t n = 0;
    for (struct rd_pending *p = list; p; p = p->next)
        n++;
    db->inflight -= n;
    if (c->op_failed || !c->rows) {
        fail_list(db, list);
        return;
    }
    int rows = PQntuples(c->rows);
    int r = 0;
    size_t i = 1;
    for (struct rd_pending *p = list; p; p = p->next, i++) {
        p->result = RD_PENDING_FAILED;
        if (r < rows && (size_t)atoll(PQgetvalue(c->rows, r, 0)) == i) {
            if (!PQgetisnull(c->rows, r, 1)) {
                p->event_id = atoll(PQgetvalue(c->rows, r, 1));
                p->result = PQgetvalue(c->rows, r, 2)[0] == 't' ? RD_PENDING_INSERTED
                                                                : RD_PENDING_DUPLICATE;
            }
            r++;
        }
    }
    deliver(db, list);
}

static void op_done(struct dbconn *c)
{
    struct rd_idb *db = c->db;
    enum conn_state was = c->state;
    c->state = C_IDLE;
    c->backoff = 0;
    conn_arm(c, EV_READ | EV_PERSIST); /* notice a server-side close while idle */
    if (was == C_BATCH) {
        finish_batch(c);
    } else if (was == C_CONNS) {
        db->cbs.on_connections(c->op_failed ? NULL : c->rows, db->cbs.arg);
    } else if (was == C_SCHEMA) {
        int have = c->rows && PQntuples(c->rows) == 1 ? atoi(PQgetvalue(c->rows, 0, 0)) : -1;
        if (c->op_failed || have != rd_migrate_latest()) {
            if (!c->schema_warned)
                rd_log_error("database schema is at version %d, this rosterd needs %d: run "
                             "`rosterctl migrate`",
                             have < 0 ? 0 : have, rd_migrate_latest());
            c->schema_warned = true;
            PQclear(c->rows);
            c->rows = NULL;
            c->state = C_SCHEMA; /* reported by conn_reset as a lost connection */
            conn_reset(c, "schema is not current");
            return;
        }
        c->schema_warned = false;
        PQclear(c->rows);
        c->rows = NULL;
        /* Parse and plan the insert once per connection, not once per batch. */
        c->state = C_PREPARE;
        if (!PQsendPrepare(c->pg, INSERT_STMT, insert_sql, 8, insert_types)) {
            conn_reset(c, PQerrorMessage(c->pg));
            return;
        }
        c->flushing = true;
        conn_arm(c, EV_READ | EV_WRITE | EV_PERSIST);
        return;
    } else if (was == C_PREPARE) {
        if (c->op_failed) {
            conn_reset(c, "cannot prepare the insert statement");
            return;
        }
        rd_log_info("database connection %d ready", c->index);
        db->want_connections = true;
    }
    PQclear(c->rows);
    c->rows = NULL;
    c->op_failed = false;
    conn_kick(db);
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    struct dbconn *c = arg;
    (void)fd;
    if (c->flushing && (what & EV_WRITE)) {
        int f = PQflush(c->pg);
        if (f < 0) {
            conn_reset(c, PQerrorMessage(c->pg));
            return;
        }
        if (f == 0) {
            c->flushing = false;
            conn_arm(c, EV_READ | EV_PERSIST);
        }
    }
    if (!(what & EV_READ))
        return;
    if (!PQconsumeInput(c->pg)) {
        conn_reset(c, PQerrorMessage(c->pg));
        return;
    }
    if (c->state == C_IDLE) {
        /* Nothing was asked: input here means the server closed or sent a notice. */
        if (PQstatus(c->pg) == CONNECTION_BAD)
            conn_reset(c, "server closed the connection");
        return;
    }
    while (!PQisBusy(c->pg)) {
        PGresult *res = PQgetResult(c->pg);
        if (!res) {
            op_done(c);
            return;
        }
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
            PQclear(c->rows);
            c->rows = res;
        } else {
            const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
            rd_log_error("intake statement failed: %s", msg ? msg : PQresStatus(st));
            c->op_failed = true;
            PQclear(res);
        }
    }
    if (PQstatus(c->pg) == CONNECTION_BAD)
        conn_reset(c, PQerrorMessage(c->pg));
}

static void on_connect_io(evutil_socket_t fd, short what, void *arg)
{
    struct dbconn *c = arg;
    (void)fd;
    (void)what;
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        conn_arm(c, EV_READ);
        return;
    case PGRES_POLLING_WRITING:
        conn_arm(c, EV_WRITE);
        return;
    case PGRES_POLLING_FAILED:
        conn_reset(c, PQerrorMessage(c->pg));
        return;
    default:
        break;
    }
    evtimer_del(c->timer);
    if (PQsetnonblocking(c->pg, 1) != 0) {
        conn_reset(c, "cannot make the connection non-blocking");
        return;
    }
    event_assign(c->io, c->db->base, PQsocket(c->pg), EV_READ | EV_PERSIST, on_io, c);
    c->state = C_SCHEMA;
    if (!PQsendQueryParams(c->pg, "SELECT coalesce(max(version), 0) FROM schema_migrations", 0,
                           NULL, NULL, NULL, NULL, 0)) {
        conn_reset(c, PQerrorMessage(c->pg));
        return;
    }
    c->flushing = true;
    conn_arm(c, EV_READ | EV_WRITE | EV_PERSIST);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct dbconn *c = arg;
    (void)fd;
    (void)what;
    if (c->state == C_CONNECTING) {
        conn_reset(c, "connect timed out");
        return;
    }
    if (c->state == C_DOWN)
        conn_start(c);
}

static void conn_start(struct dbconn *c)
{
    static const char *const keys[] = {"dbname", "application_name", "options", NULL};
    /* A generic plan always: for the one-event commits of a moderate rate the planner
       keeps choosing custom plans (it costs a 1-element unnest below the generic
       10), and planned every commit: 0.2 ms of Postgres each, 17 % of a core at
       1,000 req/s. The statement's plan does not depend on its arrays' contents. */
    const char *vals[] = {c->db->url, "rosterd-intake",
                          "-c statement_timeout=10000 -c synchronous_commit=on"
                          " -c plan_cache_mode=force_generic_plan",
                          NULL};
    c->pg = PQconnectStartParams(keys, vals, 1);
    if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_reset(c, c->pg ? PQerrorMessage(c->pg) : "out of memory");
        return;
    }
    c->state = C_CONNECTING;
    event_assign(c->io, c->db->base, PQsocket(c->pg), EV_WRITE, on_connect_io, c);
    event_add(c->io, NULL);
    struct timeval tv = {CONNECT_TIMEOUT_S, 0};
    evtimer_add(c->timer, &tv);
}

/* Puts idle connections to work: the connection table first, then batches. */
static void conn_kick(struct rd_idb *db)
{
    for (int i = 0; i < db->nconns; i++) {
        struct dbconn *c = &db->conns[i];
        if (c->state != C_IDLE)
            continue;
        if (db->want_connections)
            send_connections(c);
        else if (db->head)
            send_batch(c);
    }
}

struct rd_idb *rd_idb_new(struct event_base *base, const char *url, int nconns, int max_pending,
                          const struct rd_idb_callbacks *cbs)
{
    struct rd_idb *db = rd_calloc(1, sizeof(*db));
    db->base = base;
    db->url = rd_strdup(url);
    db->nconns = nconns;
    db->max_pending = (size_t)max_pending;
    db->cbs = *cbs;
    db->conns = rd_calloc((size_t)nconns, sizeof(*db->conns));
    for (int i = 0; i < nconns; i++) {
        struct dbconn *c = &db->conns[i];
        c->db = db;
        c->index = i;
        c->io = event_new(base, -1, 0, on_io, c);
        c->timer = evtimer_new(base, on_timer, c);
        conn_start(c);
    }
    return db;
}

bool rd_idb_ready(const struct rd_idb *db)
{
    for (int i = 0; i < db->nconns; i++) {
        enum conn_state s = db->conns[i].state;
        if (s == C_IDLE || s == C_BATCH || s == C_CONNS)
            return true; /* C_PREPARE is not ready yet: nothing may be queued on it */
    }
    return false;
}

bool rd_idb_submit(struct rd_idb *db, struct rd_pending *p)
{
    if (!rd_idb_ready(db) || db->queued + db->inflight >= db->max_pending)
        return false;
    p->next = NULL;
    struct rd_pending *leader = key_find(db, p);
    if (leader) {
        p->next = leader->followers;
        leader->followers = p;
        db->inflight++;
        return true;
    }
    size_t b = key_bucket(p);
    p->hnext = db->keys[b];
    db->keys[b] = p;
    if (db->tail)
        db->tail->next = p;
    else
        db->head = p;
    db->tail = p;
    db->queued++;
    conn_kick(db);
    return true;
}

void rd_idb_request_connections(struct rd_idb *db)
{
    db->want_connections = true;
    conn_kick(db);
}

size_t rd_idb_outstanding(const struct rd_idb *db)
{
    return db->queued + db->inflight;
}

void rd_idb_free(struct rd_idb *db)
{
    if (!db)
        return;
    for (int i = 0; i < db->nconns; i++) {
        struct dbconn *c = &db->conns[i];
        if (c->batch) {
            struct rd_pending *b = c->batch;
            c->batch = NULL;
            fail_list(db, b);
        }
        event_free(c->io);
        event_free(c->timer);
        PQclear(c->rows);
        if (c->pg)
            PQfinish(c->pg);
    }
    if (db->head)
        fail_list(db, db->head);
    free(db->conns);
    free(db->url);
    free(db);
}
