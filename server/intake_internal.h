/*
 * Private to the intake: the request record that travels from the HTTP side
 * (intake.c) to the batch writer (intake_db.c) and back.
 */
#ifndef ROSTERD_INTAKE_INTERNAL_H
#define ROSTERD_INTAKE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

struct evhttp_request;
struct event_base;
struct rd_intake;

enum rd_pending_result {
    RD_PENDING_WAITING = 0,
    RD_PENDING_INSERTED,
    RD_PENDING_DUPLICATE,
    RD_PENDING_FAILED, /* not known to be stored: answer 503 */
};

/* One verified delivery waiting for its commit. Owns every string. */
struct rd_pending {
    struct evhttp_request *req;
    int64_t connection_id;
    char *connection_name;
    const char *source; /* static "personio" or "moco" */
    const char *auth;   /* static "token", "hmac" or "standard" */
    char *event_type;
    char *subject; /* may be NULL */
    char dkey_hex[65];
    char *headers_json;
    char *body;
    size_t body_len;
    double t0; /* monotonic seconds at receipt */
    enum rd_pending_result result;
    int64_t event_id;
    struct rd_pending *next;
    /* Same delivery received while this one was outstanding: answered with its result. */
    struct rd_pending *followers;
    struct rd_pending *hnext; /* outstanding-key hash chain */
};

void rd_pending_free(struct rd_pending *p);

/* The batch writer: a small pool of non-blocking libpq connections. */
struct rd_idb;

struct rd_idb_callbacks {
    /* A batch finished: every item has result set (and event_id unless FAILED). Takes the list. */
    void (*on_batch)(struct rd_pending *list, void *arg);
    /* The connection table was read: rows (id, name, sealed bytea, updated_at) or NULL on error. */
    void (*on_connections)(PGresult *res, void *arg);
    void *arg;
};

struct rd_idb *rd_idb_new(struct event_base *base, const char *url, int nconns, int max_pending,
                          const struct rd_idb_callbacks *cbs);
/* Queues p (takes ownership). False when no connection is up or the queue is full (caller answers
 * 503). */
bool rd_idb_submit(struct rd_idb *db, struct rd_pending *p);
/* True when at least one connection is up with a current schema. */
bool rd_idb_ready(const struct rd_idb *db);
/* Requests a re-read of the connections table on the next idle connection. */
void rd_idb_request_connections(struct rd_idb *db);
/* Queued plus in-flight requests. */
size_t rd_idb_outstanding(const struct rd_idb *db);
/* Answers everything queued or in flight as FAILED through on_batch, then frees. */
void rd_idb_free(struct rd_idb *db);

/*
 * Reads the event type and subject from a verified body (p->body, p->body_len)
 * into p->event_type and p->subject: the body must be one UTF-8 JSON value
 * nested at most 64 deep (server/jscan.c, no tree is built), then event_name
 * for Personio or X-Moco-Target/-Event for MOCO. Returns NULL on success, else
 * the 400 message (static). In intake.c, exported for the fuzzer.
 */
const char *rd_intake_describe(struct rd_pending *p, bool moco, const char *target,
                               const char *event);

/* Monotonic clock in seconds. */
double rd_intake_now(void);

#endif
