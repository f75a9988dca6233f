/*
 * Request pacing for rate-limited upstreams (MOCO: 120 per 2 min per account;
 * Personio: 300 per minute with bursts of 15 per second on employees, 2000 per
 * minute on all of v1). A request waits until it fits every limit instead of
 * being answered 429: in-process by sliding windows shared by every client of
 * the same account, and across rosterd instances by the same windows kept in
 * upstream_starts (sql/012_pacer.sql).
 *
 * Threading: pacers are process-wide and thread-safe; a ticket belongs to the
 * thread that acquired it.
 */
#ifndef ROSTERD_PACER_H
#define ROSTERD_PACER_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "rosterd/http.h"

#define RD_PACER_MAX_RATES 2

/* At most limit requests in any window_s seconds. */
struct rd_rate {
    int limit;
    double window_s;
};

/* One account's pacer: created on first use, lives until rd_pacer_clear_all. */
struct rd_pacer;

/*
 * The pacer of account (a name that identifies the budget, e.g. a hash of base
 * URL and key: never a credential; it is stored in upstream_starts). Thread-safe.
 */
struct rd_pacer *rd_pacer_get(const char *account);

/* A granted request: give it back with rd_pacer_release when the answer is in. */
struct rd_pace_ticket {
    struct rd_pacer *p;
    unsigned gen; /* the pacer's rates when granted */
    size_t n;
    int slot[RD_PACER_MAX_RATES];
    PGconn *db;          /* the shared window's connection, NULL when not shared */
    long long shared_id; /* the request's row in upstream_starts */
};

/*
 * Waits until one more request fits all nrates rates (1..RD_PACER_MAX_RATES)
 * in this process and, when db is given (a blocking connection outside a
 * transaction, borrowed), in the budget shared by all instances. A request
 * counts from its grant until rd_pacer_release and is then dated by its
 * completion, so the window the pacer keeps is never shorter than the
 * upstream's. Fails with err->retry_after_s (transient) when the wait would pass
 * deadline; what names the upstream in that message. Database trouble falls back
 * to the in-process pacing with a warning rather than stopping work.
 */
int rd_pacer_acquire(struct rd_pacer *p, const struct rd_rate *rates, size_t nrates, PGconn *db,
                     const char *what, double deadline, struct rd_pace_ticket *t,
                     struct rd_http_error *err) __attribute__((warn_unused_result));

/*
 * The request of t completed (or was never sent): its slots are dated now, in this
 * process and in the shared window (one UPDATE on the connection it was granted on).
 * Accepts a zeroed ticket.
 */
void rd_pacer_release(struct rd_pace_ticket *t);

/*
 * The limits the shared windows keep for rates: 90 % of each limit (at least one
 * request), the same windows. Starts are booked, not arrivals: the headroom covers
 * requests that reach the upstream closer together than they started.
 */
void rd_pacer_shared_limits(const struct rd_rate *rates, size_t nrates, struct rd_rate *out);

/* Drops every in-process pacer (tests). No ticket may be outstanding. */
void rd_pacer_clear_all(void);

#endif
