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

#include "rosterd/approver.h"
#include "rosterd/db.h"
#include "rosterd/connection.h"
#include "rosterd/identity.h"
#include "rosterd/jsonx.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/timesync.h"

struct run_store {
    char today[11], from[11], to[11];
    bool have_groups, have_delegations;
    struct rd_scim_group_list groups;
    struct rd_delegation_list delegations;
};

static void store_free(void *data)
{
    struct run_store *st = data;
    if (!st)
        return;
    rd_scim_group_list_free(&st->groups);
    rd_delegation_list_free(&st->delegations);
    free(st);
}

static struct run_store *store_of(const struct rd_sync *s)
{
    return s->ext[RD_SYNC_EXT_RUN].free == store_free ? s->ext[RD_SYNC_EXT_RUN].data : NULL;
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
    /* As far ahead as the approver step looks (today + RD_APPROVER_HORIZON_DAYS), so
     * that its read of each approver's absences is served from this one list too. */
    const struct rd_personio_time_off_list *l = NULL;
    char ahead[11];
    rd_day_add(st->today, RD_APPROVER_HORIZON_DAYS, ahead);
    if (rd_sync_time_offs(s, 0, st->from, strcmp(ahead, st->to) > 0 ? ahead : st->to, &l, err) != 0)
        return -1;
    stats->time_offs = l->count;
    return 0;
}

/*
 * Presences, schedules and attendances go into time sync's own cache (one store per
 * kind: handlers/timesync.c), where rd_attendance_converge and rd_absence_converge
 * look first; a read inside the window then makes no request.
 */
static int load_time(struct rd_sync *s, unsigned what, const char *from, const char *to,
                     size_t *count, struct rd_http_error *err)
{
    if (rd_timesync_preload(s, what, from, to, err) != 0)
        return -1;
    *count = rd_timesync_preloaded(s, what);
    return 0;
}

static int load_attendances(struct rd_sync *s, struct run_store *st,
                            struct rd_reconcile_stats *stats, struct rd_http_error *err)
{
    return load_time(s, RD_TIMESYNC_ATTENDANCES, st->from, st->today, &stats->attendances, err);
}

static int load_scim_users(struct rd_sync *s, struct run_store *st,
                           struct rd_reconcile_stats *stats, struct rd_http_error *err)
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

static int load_moco_users(struct rd_sync *s, struct run_store *st,
                           struct rd_reconcile_stats *stats, struct rd_http_error *err)
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
    return load_time(s, RD_TIMESYNC_PRESENCES, st->from, st->today, &stats->presences, err);
}

static int load_schedules(struct rd_sync *s, struct run_store *st, struct rd_reconcile_stats *stats,
                          struct rd_http_error *err)
{
    if (!rd_sync_has(s, "moco"))
        return 0;
    return load_time(s, RD_TIMESYNC_SCHEDULES, st->from, st->to, &stats->schedules, err);
}

/* The steps in order. */
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
