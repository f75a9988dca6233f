/*
 * What a reconciliation run reads before it converges anyone (include/rosterd/
 * reconcile.h): every upstream list in full, once, so the convergence functions find
 * everything in the context and read nothing per person. Lists the foundation's
 * accessors cover go into the sync cache (employees, time-offs, platform users, MOCO
 * users) and the identity links into identity.c's preload; the rest (platform
 * groups, delegations, MOCO presences and schedules, Personio attendances) into the
 * run's own store on s->ext[RD_SYNC_EXT_RUN], sorted by person, with accessors the
 * capabilities' own reads consult first.
 *
 * Personio's lists are paced by its rate limit (100 employee pages at 15 a second
 * for 10,000 people), so the platform's and MOCO's are read meanwhile, on a second
 * context with its own clients and database connection (MOCO's shared budget) on a
 * thread of its own; once both are done, rd_sync_adopt_reads moves what it read
 * into the run's context. Without a second connection everything is read in turn.
 */
#include "reconcile_internal.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
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

struct preload_step {
    const char *what;
    int (*load)(struct rd_sync *, struct run_store *, struct rd_reconcile_stats *,
                struct rd_http_error *);
};

/* Personio's lists, on the run's context: its pacer's rate is what a preload waits for. */
static const struct preload_step personio_steps[] = {
    {"Personio employees", load_employees},
    {"Personio time-offs", load_time_offs},
};

/* The platform's and MOCO's, on a second context and thread while Personio is paged. */
static const struct preload_step side_steps[] = {
    {"platform users", load_scim_users},        {"platform groups", load_groups},
    {"approval delegations", load_delegations}, {"MOCO users", load_moco_users},
    {"MOCO presences", load_presences},         {"MOCO schedules", load_schedules},
};

/* After both: into time sync's store, which the side's presences begin. */
static const struct preload_step last_steps[] = {
    {"Personio attendances", load_attendances},
};

/* Runs steps in order; -1 with err prefixed by the step that failed. */
static int run_steps(struct rd_sync *s, struct run_store *st, struct rd_reconcile_stats *stats,
                     const struct preload_step *steps, size_t n, struct rd_http_error *err)
{
    for (size_t i = 0; i < n; i++) {
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
    return 0;
}

/* The second context's reads (its own connection for MOCO's shared budget, its own clients). */
struct side {
    struct rd_sync *s;
    struct run_store *st;
    struct rd_reconcile_stats stats;
    struct rd_http_error err;
    int rc;
};

static void *side_main(void *arg)
{
    struct side *x = arg;
    x->rc = run_steps(x->s, x->st, &x->stats, side_steps,
                      sizeof(side_steps) / sizeof(side_steps[0]), &x->err);
    return NULL;
}

/* Opens the side context, or NULL when no second connection can be had (then all is serial). */
static struct rd_sync *side_open(struct rd_sync *s)
{
    char dberr[256];
    PGconn *db = rd_run_clone_conn(s->db, "rosterd-run-preload", dberr, sizeof(dberr));
    if (!db) {
        rd_log_warn("run %lld: reading the platform and MOCO after Personio, not beside it: %s",
                    (long long)s->run_id, dberr);
        return NULL;
    }
    struct rd_sync *side =
        rd_sync_open_run(db, s->conn, s->run_id, s->dry_run, &s->opts, s->deadline, s->stopping);
    return side;
}

static void side_close(struct rd_sync *side)
{
    if (!side)
        return;
    PGconn *db = side->db;
    rd_sync_close(side);
    PQfinish(db);
}

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
    /* The side's steps write only their own fields of st and the side's context. */
    struct side x = {.s = side_open(s), .st = st};
    pthread_t tid;
    bool started = x.s && pthread_create(&tid, NULL, side_main, &x) == 0;
    if (x.s && !started)
        side_main(&x); /* no thread to be had: read them first */
    int rc = run_steps(s, st, stats, personio_steps,
                       sizeof(personio_steps) / sizeof(personio_steps[0]), err);
    if (started)
        pthread_join(tid, NULL);
    if (x.s && x.rc != 0 && rc == 0) {
        *err = x.err;
        rc = -1;
    }
    if (x.s && rc == 0) {
        rd_sync_adopt_reads(s, x.s);
        stats->platform_users = x.stats.platform_users;
        stats->groups = x.stats.groups;
        stats->delegations = x.stats.delegations;
        stats->moco_users = x.stats.moco_users;
        stats->presences = x.stats.presences;
        stats->schedules = x.stats.schedules;
    }
    if (x.s) {
        side_close(x.s);
#ifdef __GLIBC__
        /* what the side's thread parsed and freed sits in its own malloc arena, which
         * the run's thread never reuses: give those pages back before the passes */
        malloc_trim(0);
#endif
    }
    if (rc == 0 && !x.s)
        rc = run_steps(s, st, stats, side_steps, sizeof(side_steps) / sizeof(side_steps[0]), err);
    if (rc == 0)
        rc = run_steps(s, st, stats, last_steps, sizeof(last_steps) / sizeof(last_steps[0]), err);
    if (rc != 0)
        return -1;
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
