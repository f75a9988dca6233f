/*
 * Handler interface: each capability in handlers/ exports one table of handlers by
 * job kind, and handlers/registry.c lists every table in one place. A handler gets a
 * job context, never globals, and is level-triggered (DESIGN.md §1): it re-reads the
 * current truth and converges, so running it twice is harmless.
 *
 * Kinds routed today (sql/002_queue.sql job_routes and the scheduler):
 *   personio.person   person.*, employment.* (subject = Personio person id, NULL = all)
 *   personio.absence  absence-period.*
 *   moco.presence     Presence.* (subject = MOCO user id)
 *   moco.user         User.*
 *   sweep.attendance  hourly per connection; sweep.absence daily; reconcile nightly
 *   lifecycle.deactivate  a scheduled last-day deactivation (subject = Personio id)
 *   noop              test.* event types: does nothing (tests, benchmarks)
 *   test.script       test.script* event types: sleeps/fails as the body says (tests)
 *   test.upstream     test.upstream* event types: one upstream write per event (tests)
 *                     (the three test kinds run only with test_handlers = on in
 *                     rosterd.conf; otherwise they finish with "test handlers are off")
 *   unrouted          any other event type: no handler, finished as done 'no handler'
 * A kind with no registered handler is finished as done with the note 'no handler'.
 */
#ifndef ROSTERD_HANDLER_H
#define ROSTERD_HANDLER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "rosterd/crypto.h"

struct json_object;
struct rd_connection;

/* One event a job covers (a coalesced job covers several). */
struct rd_job_event {
    int64_t id;
    char *event_type;
    char *subject; /* NULL when the event named none */
};

/*
 * Everything a handler may use; owned by the worker and valid during the call.
 * On failure a handler returns -1 with a message in err (no secrets); it sets
 * permanent for errors no retry can fix (e.g. rd_queue_http_permanent(status)),
 * and may set retry_after (seconds) to wait longer than the backoff.
 */
struct rd_job_ctx {
    PGconn *db;                /* the worker's connection; leave no transaction open */
    const uint8_t *secret_key; /* RD_SECRET_KEY_LEN bytes, for loading other connections */
    int64_t job_id;
    const char *kind;
    const char *key;
    int64_t connection_id;       /* 0 for jobs of no connection */
    const char *connection_name; /* NULL likewise */
    const char *subject;         /* may be NULL */
    int attempt;                 /* 1 on the first run */
    struct json_object *payload; /* the job's payload (scheduled jobs), may be NULL */
    struct rd_connection *conn;  /* loaded when the handler sets needs_connection */
    const struct rd_job_event *events;
    size_t nevents;
    const char *instance;
    const atomic_bool *stopping; /* set at shutdown: long handlers may finish early */
    const char *ca_file;         /* rosterd.conf ca_file, smtp_url, smtp_from (or NULL) */
    const char *smtp_url;        /* a secret (may carry credentials): never log it */
    const char *smtp_from;
    /* results */
    char err[1024];
    bool permanent;
    double retry_after;
    char note[256]; /* optional, stored on success (events.note, job note) */
};

typedef int (*rd_handler_fn)(struct rd_job_ctx *ctx);

struct rd_handler {
    const char *kind;
    rd_handler_fn run;
    bool needs_connection; /* the worker loads ctx->conn (rd_connection_load) first */
    bool test_only;        /* runs only with test_handlers = on; else finished as a no-op */
};

struct rd_capability {
    const char *name;
    const struct rd_handler *handlers;
    size_t nhandlers;
};

/* Capability tables, listed in handlers/registry.c. */
extern const struct rd_capability rd_cap_noop;
extern const struct rd_capability rd_cap_identity;     /* identity.c: moco.user */
extern const struct rd_capability rd_cap_person;       /* person.c: personio.person */
extern const struct rd_capability rd_cap_deactivation; /* deactivation.c: lifecycle.deactivate */
extern const struct rd_capability
    rd_cap_attendance; /* attendance.c: moco.presence, sweep.attendance */
extern const struct rd_capability rd_cap_absence;   /* absence.c: personio.absence, sweep.absence */
extern const struct rd_capability rd_cap_reconcile; /* reconcile.c: reconcile (nightly) */

/* The handler for kind, or NULL. Static data, thread-safe. */
const struct rd_handler *rd_handler_find(const char *kind);

/* The registered capabilities; *n receives the count. Static data. */
const struct rd_capability *const *rd_handler_capabilities(size_t *n);

/*
 * Loads the stored body of ctx->events[i] and its attempt count (1 on its first
 * attempt). *body is new (free with free()).
 */
int rd_job_event_body(struct rd_job_ctx *ctx, size_t i, char **body, int *event_attempts)
    __attribute__((warn_unused_result));

#endif
