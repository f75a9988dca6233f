/*
 * Request pacing shared by the MOCO and Personio clients (include/rosterd/pacer.h):
 * sliding windows per account in this process and, across instances, in
 * Postgres (sql/012_pacer.sql). Waiting here is what keeps a sweep over hundreds of
 * people from ever meeting a 429.
 */
#include "rosterd/pacer.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rosterd/db.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"

/* One limit's window: completion times of the last `limit` requests, INFINITY while in flight. */
struct window {
    int limit;
    double len;
    double *slots;
};

struct rd_pacer {
    struct rd_pacer *next;
    char *account;
    pthread_mutex_t lock;
    pthread_cond_t done; /* signalled when a request completes (CLOCK_MONOTONIC) */
    unsigned gen;        /* bumped when the rates change: old tickets are ignored */
    size_t nw;
    struct window w[RD_PACER_MAX_RATES];
};

static pthread_mutex_t g_pacers_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rd_pacer *g_pacers;

struct rd_pacer *rd_pacer_get(const char *account)
{
    pthread_mutex_lock(&g_pacers_lock);
    struct rd_pacer *p = g_pacers;
    while (p && strcmp(p->account, account) != 0)
        p = p->next;
    if (!p) {
        p = rd_calloc(1, sizeof(*p));
        p->account = rd_strdup(account);
        pthread_mutex_init(&p->lock, NULL);
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&p->done, &ca);
        pthread_condattr_destroy(&ca);
        p->next = g_pacers;
        g_pacers = p;
    }
    pthread_mutex_unlock(&g_pacers_lock);
    return p;
}

void rd_pacer_clear_all(void)
{
    pthread_mutex_lock(&g_pacers_lock);
    struct rd_pacer *p = g_pacers;
    g_pacers = NULL;
    pthread_mutex_unlock(&g_pacers_lock);
    while (p) {
        struct rd_pacer *next = p->next;
        for (size_t i = 0; i < p->nw; i++)
            free(p->w[i].slots);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->done);
        free(p->account);
        free(p);
        p = next;
    }
}

void rd_pacer_shared_limits(const struct rd_rate *rates, size_t nrates, struct rd_rate *out)
{
    for (size_t i = 0; i < nrates; i++) {
        int l = (int)floor(rates[i].limit * 0.9);
        out[i].limit = l < 1 ? 1 : l;
        out[i].window_s = rates[i].window_s;
    }
}

static bool same_rates(const struct rd_pacer *p, const struct rd_rate *rates, size_t n)
{
    if (p->nw != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (p->w[i].limit != rates[i].limit || p->w[i].len != rates[i].window_s)
            return false;
    return true;
}

/* A new budget starts fresh windows (caller holds the lock). */
static void set_rates(struct rd_pacer *p, const struct rd_rate *rates, size_t n)
{
    for (size_t i = 0; i < p->nw; i++)
        free(p->w[i].slots);
    p->nw = n;
    p->gen++;
    for (size_t i = 0; i < n; i++) {
        p->w[i].limit = rates[i].limit;
        p->w[i].len = rates[i].window_s;
        p->w[i].slots = rd_malloc((size_t)rates[i].limit * sizeof(double));
        for (int k = 0; k < rates[i].limit; k++)
            p->w[i].slots[k] = -INFINITY;
    }
}

static void abs_time(double t, struct timespec *ts)
{
    ts->tv_sec = (time_t)t;
    ts->tv_nsec = (long)((t - floor(t)) * 1e9);
}

/* The in-process part: waits for a free slot in every window. */
static int pace_local(struct rd_pacer *p, const struct rd_rate *rates, size_t n, const char *what,
                      double deadline, struct rd_pace_ticket *t, struct rd_http_error *err)
{
    pthread_mutex_lock(&p->lock);
    if (!same_rates(p, rates, n))
        set_rates(p, rates, n);
    int rc = -1;
    for (;;) {
        double now = rd_http_now();
        double free_at = -INFINITY;
        int oldest[RD_PACER_MAX_RATES] = {0};
        for (size_t i = 0; i < n; i++) {
            const struct window *w = &p->w[i];
            for (int k = 1; k < w->limit; k++)
                if (w->slots[k] < w->slots[oldest[i]])
                    oldest[i] = k;
            double f = w->slots[oldest[i]] + w->len; /* INFINITY: all in flight */
            if (f > free_at)
                free_at = f;
        }
        if (free_at <= now) {
            for (size_t i = 0; i < n; i++) {
                p->w[i].slots[oldest[i]] = INFINITY;
                t->slot[i] = oldest[i];
            }
            t->p = p;
            t->gen = p->gen;
            t->n = n;
            rc = 0;
            break;
        }
        if (!isinf(free_at) && free_at > deadline) {
            rd_http_error_set(err, false, 0, "%s: request budget used up for now", what);
            err->retry_after_s = (int)ceil(free_at - now);
            break;
        }
        if (now >= deadline) { /* every slot in flight until the deadline */
            rd_http_error_set(err, false, 0, "%s: request budget used up for now", what);
            err->retry_after_s = 1;
            break;
        }
        struct timespec ts;
        abs_time(isinf(free_at) ? deadline : free_at, &ts);
        pthread_cond_timedwait(&p->done, &p->lock, &ts);
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void rd_pacer_release(struct rd_pace_ticket *t)
{
    if (t && t->db && t->shared_id > 0) {
        char id[24], dberr[256];
        snprintf(id, sizeof(id), "%lld", t->shared_id);
        const char *params[1] = {id};
        if (rd_db_run(t->db,
                      "UPDATE upstream_starts SET at = greatest(at, clock_timestamp())"
                      " WHERE id = $1::bigint",
                      1, params, dberr, sizeof(dberr)) != 0)
            rd_log_warn("shared request budget: could not date a finished request: %s", dberr);
    }
    struct rd_pacer *p = t ? t->p : NULL;
    if (!p) {
        if (t)
            memset(t, 0, sizeof(*t));
        return;
    }
    pthread_mutex_lock(&p->lock);
    if (t->gen == p->gen && t->n == p->nw) {
        double now = rd_http_now();
        for (size_t i = 0; i < t->n; i++)
            if (t->slot[i] >= 0 && t->slot[i] < p->w[i].limit)
                p->w[i].slots[t->slot[i]] = now;
    }
    pthread_cond_broadcast(&p->done);
    pthread_mutex_unlock(&p->lock);
    memset(t, 0, sizeof(*t));
}

static void sleep_until(double t)
{
    double d = t - rd_http_now();
    if (d <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)d, .tv_nsec = (long)((d - floor(d)) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/*
 * The cross-instance part: rd_pace_reserve (sql/012_pacer.sql) books the earliest
 * start that keeps every window of the account within its limit, in one statement
 * under the account's lock, so callers of all instances are served in order.
 */
static int pace_db(const char *account, const struct rd_rate *rates, size_t n, PGconn *db,
                   const char *what, double deadline, struct rd_pace_ticket *t,
                   struct rd_http_error *err)
{
    struct rd_rate shared[RD_PACER_MAX_RATES];
    rd_pacer_shared_limits(rates, n, shared);
    char limits[64] = "{", windows[96] = "{", max_wait[32], dberr[256];
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(limits), w = strlen(windows);
        snprintf(limits + l, sizeof(limits) - l, "%s%d", i ? "," : "", shared[i].limit);
        snprintf(windows + w, sizeof(windows) - w, "%s%.6f", i ? "," : "", shared[i].window_s);
    }
    strcat(limits, "}");
    strcat(windows, "}");
    double left = deadline - rd_http_now();
    snprintf(max_wait, sizeof(max_wait), "%.6f", left > 0 ? left : 0.0);
    const char *params[4] = {account, limits, windows, max_wait};
    PGresult *res = rd_db_exec(db,
                               "SELECT wait, reserved, id FROM rd_pace_reserve($1, $2::int[],"
                               " $3::float8[], $4::float8)",
                               4, params, dberr, sizeof(dberr));
    if (!res) {
        rd_log_warn("%s: shared request budget unavailable, pacing locally only: %s", what, dberr);
        return 0;
    }
    double wait = atof(PQgetvalue(res, 0, 0));
    bool reserved = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    if (reserved) {
        t->db = db;
        t->shared_id = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
    }
    PQclear(res);
    if (!reserved) {
        rd_http_error_set(err, false, 0, "%s: shared request budget used up for now", what);
        err->retry_after_s = (int)ceil(wait);
        return -1;
    }
    if (wait > 0) {
        rd_log_debug("%s: shared budget, waiting %.2f s", what, wait);
        sleep_until(rd_http_now() + wait);
    }
    return 0;
}

int rd_pacer_acquire(struct rd_pacer *p, const struct rd_rate *rates, size_t nrates, PGconn *db,
                     const char *what, double deadline, struct rd_pace_ticket *t,
                     struct rd_http_error *err)
{
    memset(t, 0, sizeof(*t));
    if (nrates == 0 || nrates > RD_PACER_MAX_RATES) {
        rd_http_error_set(err, true, 0, "%s: %zu rate limits given (1..%d)", what, nrates,
                          RD_PACER_MAX_RATES);
        return -1;
    }
    for (size_t i = 0; i < nrates; i++)
        if (rates[i].limit < 1 || !(rates[i].window_s > 0)) {
            rd_http_error_set(err, true, 0, "%s: invalid rate limit", what);
            return -1;
        }
    if (pace_local(p, rates, nrates, what, deadline, t, err) != 0)
        return -1;
    if (db && pace_db(p->account, rates, nrates, db, what, deadline, t, err) != 0) {
        rd_pacer_release(t);
        return -1;
    }
    return 0;
}
