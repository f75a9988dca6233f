/*
 * What a reconciliation run reads before it converges anyone (include/rosterd/
 * reconcile.h): every upstream list in full, once, so the convergence functions find
 * everything in the context and read nothing per person. Lists the foundation's
 * accessors cover go into the sync cache (employees, time-offs, platform users, MOCO
 * users) and the identity links into identity.c's preload; the rest (platform
 * groups, delegations, MOCO presences and schedules, Personio attendances) into the
 * run's own store on s->ext[RD_SYNC_EXT_RUN], sorted by person, with accessors the
 * capabilities' own reads consult first.
 */
#include "reconcile_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rosterd/db.h"
#include "rosterd/connection.h"
#include "rosterd/identity.h"
#include "rosterd/jsonx.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"

struct run_store {
    char today[11], from[11], to[11];
    struct rd_moco_presence_list presences;       /* sorted by user, date, from */
    struct rd_moco_schedule_list schedules;       /* sorted by user, date */
    struct rd_personio_attendance_list attendances; /* sorted by employee, date */
    bool have_groups, have_delegations;
    struct rd_scim_group_list groups;
    struct rd_delegation_list delegations;
};

static void store_free(void *data)
{
    struct run_store *st = data;
    if (!st)
        return;
    rd_moco_presence_list_free(&st->presences);
    rd_moco_schedule_list_free(&st->schedules);
    rd_personio_attendance_list_free(&st->attendances);
    rd_scim_group_list_free(&st->groups);
    rd_delegation_list_free(&st->delegations);
    free(st);
}

static struct run_store *store_of(const struct rd_sync *s)
{
    return s->ext[RD_SYNC_EXT_RUN].free == store_free ? s->ext[RD_SYNC_EXT_RUN].data : NULL;
}

static int by_user_presence(const void *a, const void *b)
{
    const struct rd_moco_presence *x = a, *y = b;
    if (x->user_id != y->user_id)
        return x->user_id < y->user_id ? -1 : 1;
    int c = strcmp(x->date, y->date);
    return c ? c : strcmp(x->from, y->from);
}

static int by_user_schedule(const void *a, const void *b)
{
    const struct rd_moco_schedule *x = a, *y = b;
    if (x->user_id != y->user_id)
        return x->user_id < y->user_id ? -1 : 1;
    return strcmp(x->date, y->date);
}

static int by_employee_attendance(const void *a, const void *b)
{
    const struct rd_personio_attendance *x = a, *y = b;
    if (x->employee_id != y->employee_id)
        return x->employee_id < y->employee_id ? -1 : 1;
    int c = strcmp(x->date, y->date);
    return c ? c : strcmp(x->start_time, y->start_time);
}

/* ---- the steps: one upstream list each ---- */

static int load_employees(struct rd_sync *s, struct run_store *st, struct rd_reconcile_stats *stats,
                          struct rd_http_error *err)
{
    (void)st;
    const struct rd_personio_employee_list *l = NULL;
    if (rd_sync_employees(s, &l, err) != 0)
        return -1;
    stats->employees = l->count;
    return 0;
}

static int load_time_offs(struct rd_sync *s, struct run_store *st, struct rd_reconcile_stats *stats,
                          struct rd_http_error *err)
{
    const struct rd_personio_time_off_list *l = NULL;
    if (rd_sync_time_offs(s, 0, st->from, st->to, &l, err) != 0)
        return -1;
    stats->time_offs = l->count;
    return 0;
}

static int load_attendances(struct rd_sync *s, struct run_store *st,
                            struct rd_reconcile_stats *stats, struct rd_http_error *err)
{
    struct rd_personio *p = rd_sync_personio(s, err);
    if (!p || rd_personio_list_attendances(p, st->from, st->today, 0, s->deadline,
                                           &st->attendances, err) != 0)
        return -1;
    qsort(st->attendances.items, st->attendances.count, sizeof(*st->attendances.items),
          by_employee_attendance);
    stats->attendances = st->attendances.count;
    return 0;
}

static int load_scim_users(struct rd_sync *s, struct run_store *st, struct rd_reconcile_stats *stats,
                           struct rd_http_error *err)
{
    (void)st;
    const struct rd_scim_user_list *l = NULL;
    if (!rd_sync_has(s, "platform"))
        return 0;
    if (rd_sync_scim_users(s, &l, err) != 0)
        return -1;
    stats->platform_users = l->count;
    return 0;
}

static int load_groups(struct rd_sync *s, struct run_store *st, struct rd_reconcile_stats *stats,
                       struct rd_http_error *err)
{
    if (!rd_sync_has(s, "platform"))
        return 0;
    struct rd_scim *sc = rd_sync_scim(s, err);
    if (!sc || rd_scim_list_groups(sc, s->deadline, &st->groups, err) != 0)
        return -1;
    st->have_groups = true;
    stats->groups = st->groups.count;
    return 0;
}

static int load_delegations(struct rd_sync *s, struct run_store *st,
                            struct rd_reconcile_stats *stats, struct rd_http_error *err)
{
    if (!rd_sync_has(s, "platform") ||
        !rd_json_get(rd_json_get(s->conn->doc, "platform"), "api_base_url"))
        return 0; /* no delegation API configured: nothing to read */
    struct rd_scim *sc = rd_sync_scim(s, err);
    if (!sc || rd_platform_list_delegations(sc, NULL, s->deadline, &st->delegations, err) != 0)
        return -1;
    st->have_delegations = true;
    stats->delegations = st->delegations.count;
    return 0;
}

static int load_moco_users(struct rd_sync *s, struct run_store *st, struct rd_reconcile_stats *stats,
                           struct rd_http_error *err)
{
    (void)st;
    const struct rd_moco_user_list *l = NULL;
    if (!rd_sync_has(s, "moco"))
        return 0;
    if (rd_sync_moco_users(s, &l, err) != 0)
        return -1;
    stats->moco_users = l->count;
    return 0;
}

static int load_presences(struct rd_sync *s, struct run_store *st, struct rd_reconcile_stats *stats,
                          struct rd_http_error *err)
{
    if (!rd_sync_has(s, "moco"))
        return 0;
    struct rd_moco *m = rd_sync_moco(s, err);
    if (!m || rd_moco_list_presences(m, st->from, st->today, 0, s->deadline, &st->presences,
                                     err) != 0)
        return -1;
    qsort(st->presences.items, st->presences.count, sizeof(*st->presences.items),
          by_user_presence);
    stats->presences = st->presences.count;
    return 0;
}

static int load_schedules(struct rd_sync *s, struct run_store *st, struct rd_reconcile_stats *stats,
                          struct rd_http_error *err)
{
    if (!rd_sync_has(s, "moco"))
        return 0;
    struct rd_moco *m = rd_sync_moco(s, err);
    if (!m || rd_moco_list_schedules(m, st->from, st->to, 0, s->deadline, &st->schedules,
                                     err) != 0)
        return -1;
    qsort(st->schedules.items, st->schedules.count, sizeof(*st->schedules.items),
          by_user_schedule);
    stats->schedules = st->schedules.count;
    return 0;
}

/*
 * The steps in order. When the lifecycle and time-sync capabilities bring their own
 * preloading accessors, a step here becomes a call to theirs (or their accessors read
 * this store through the functions at the end of this file); see the README.
 */
static const struct preload_step {
    const char *what;
    int (*load)(struct rd_sync *, struct run_store *, struct rd_reconcile_stats *,
                struct rd_http_error *);
} steps[] = {
    {"Personio employees", load_employees},
    {"Personio time-offs", load_time_offs},
    {"Personio attendances", load_attendances},
    {"platform users", load_scim_users},
    {"platform groups", load_groups},
    {"approval delegations", load_delegations},
    {"MOCO users", load_moco_users},
    {"MOCO presences", load_presences},
    {"MOCO schedules", load_schedules},
};

int rd_reconcile_preload(struct rd_sync *s, const char *today, const char *from, const char *to,
                         struct rd_reconcile_stats *stats, struct rd_http_error *err)
{
    struct run_store *st = rd_calloc(1, sizeof(*st));
    snprintf(st->today, sizeof(st->today), "%s", today);
    snprintf(st->from, sizeof(st->from), "%s", from);
    snprintf(st->to, sizeof(st->to), "%s", to);
    if (s->ext[RD_SYNC_EXT_RUN].data && s->ext[RD_SYNC_EXT_RUN].free)
        s->ext[RD_SYNC_EXT_RUN].free(s->ext[RD_SYNC_EXT_RUN].data);
    s->ext[RD_SYNC_EXT_RUN].data = st;
    s->ext[RD_SYNC_EXT_RUN].free = store_free;
    char dberr[256];
    double t0 = rd_http_now();
    if (rd_identity_preload(s, dberr, sizeof(dberr)) != 0) {
        rd_http_error_set(err, false, 0, "reading the identity links: %s", dberr);
        return -1;
    }
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        double t = rd_http_now();
        if (rd_sync_should_stop(s)) {
            rd_http_error_set(err, false, 0, "stopped while reading %s", steps[i].what);
            return -1;
        }
        if (steps[i].load(s, st, stats, err) != 0) {
            char msg[sizeof(err->msg)];
            snprintf(msg, sizeof(msg), "%s", err->msg);
            snprintf(err->msg, sizeof(err->msg), "reading %s: %.400s", steps[i].what, msg);
            return -1;
        }
        rd_log_info("run %lld: read %s in %.2f s", (long long)s->run_id, steps[i].what,
                    rd_http_now() - t);
    }
    stats->preload_seconds = rd_http_now() - t0;
    return 0;
}

/* ---- accessors ---- */

bool rd_reconcile_window(const struct rd_sync *s, const char **today, const char **from,
                         const char **to)
{
    const struct run_store *st = store_of(s);
    if (!st)
        return false;
    if (today)
        *today = st->today;
    if (from)
        *from = st->from;
    if (to)
        *to = st->to;
    return true;
}

/*
 * The run [first, first + n) of a sorted array whose key equals k: a binary search
 * for the first, then a scan. key(i) reads the key of item i.
 */
#define EQUAL_RANGE(arr, count, field, k, first, n)                                                \
    do {                                                                                           \
        size_t lo_ = 0, hi_ = (count);                                                             \
        while (lo_ < hi_) {                                                                        \
            size_t mid_ = lo_ + (hi_ - lo_) / 2;                                                   \
            if ((arr)[mid_].field < (k))                                                           \
                lo_ = mid_ + 1;                                                                    \
            else                                                                                   \
                hi_ = mid_;                                                                        \
        }                                                                                          \
        (first) = lo_;                                                                             \
        while (lo_ < (count) && (arr)[lo_].field == (k))                                           \
            lo_++;                                                                                 \
        (n) = lo_ - (first);                                                                       \
    } while (0)

bool rd_reconcile_presences(const struct rd_sync *s, int64_t moco_user_id,
                            const struct rd_moco_presence **items, size_t *n)
{
    const struct run_store *st = store_of(s);
    *items = NULL;
    *n = 0;
    if (!st)
        return false;
    size_t first;
    EQUAL_RANGE(st->presences.items, st->presences.count, user_id, moco_user_id, first, *n);
    *items = *n ? &st->presences.items[first] : NULL;
    return true;
}

bool rd_reconcile_schedules(const struct rd_sync *s, int64_t moco_user_id,
                            const struct rd_moco_schedule **items, size_t *n)
{
    const struct run_store *st = store_of(s);
    *items = NULL;
    *n = 0;
    if (!st)
        return false;
    size_t first;
    EQUAL_RANGE(st->schedules.items, st->schedules.count, user_id, moco_user_id, first, *n);
    *items = *n ? &st->schedules.items[first] : NULL;
    return true;
}

bool rd_reconcile_attendances(const struct rd_sync *s, int64_t employee_id,
                              const struct rd_personio_attendance **items, size_t *n)
{
    const struct run_store *st = store_of(s);
    *items = NULL;
    *n = 0;
    if (!st)
        return false;
    size_t first;
    EQUAL_RANGE(st->attendances.items, st->attendances.count, employee_id, employee_id, first, *n);
    *items = *n ? &st->attendances.items[first] : NULL;
    return true;
}

const struct rd_scim_group_list *rd_reconcile_groups(const struct rd_sync *s)
{
    const struct run_store *st = store_of(s);
    return st && st->have_groups ? &st->groups : NULL;
}

const struct rd_delegation_list *rd_reconcile_delegations(const struct rd_sync *s)
{
    const struct run_store *st = store_of(s);
    return st && st->have_delegations ? &st->delegations : NULL;
}
