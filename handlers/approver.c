/*
 * Approver reassignment (include/rosterd/approver.h): an approver's approved
 * absences become approval delegations on the platform, to their supervisor or the
 * fallback approver, and follow the absence when it moves or goes away.
 */
#include "rosterd/approver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "lifecycle_internal.h"
#include "prefetch_internal.h"
#include "rosterd/db.h"
#include "rosterd/identity.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/reconcile.h"
#include "rosterd/scim.h"

/* What one approved absence should have on the platform. */
struct plan {
    const struct rd_personio_time_off *t; /* borrowed from the time-off list */
    char start_at[32], end_at[32];        /* UTC ISO 8601 */
    char start_local[24], end_local[24];  /* "2026-12-10 00:00" in the connection's zone */
    char ext[200];                        /* the external_id */
    char delegate[320];                   /* platform userName, "" when nobody */
    char label[640];                      /* who the delegate is, for people */
    char why_none[640];                   /* why there is nobody */
};

/* A delegation rosterd recorded making. */
struct row {
    int64_t tid;
    char *platform_id;
    char *start, *end;
    char *delegate;
};

struct rows {
    struct row *items;
    size_t n;
};

/* Everything one call works on. */
struct job {
    struct rd_sync *s;
    const struct rd_personio_employee *e;
    const char *from, *to;
    struct rd_scim_user acc; /* the approver's platform account */
    const struct rd_personio_time_off_list *toffs;
    struct plan *plans;
    size_t nplans;
    struct rows rows;
    struct rd_delegation_list platform; /* the approver's delegations (others' too) */
    char prefix[128];                   /* external_id prefix of this connection */
};

static void rows_free(struct rows *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->items[i].platform_id);
        free(r->items[i].start);
        free(r->items[i].end);
        free(r->items[i].delegate);
    }
    free(r->items);
    memset(r, 0, sizeof(*r));
}

static int load_rows(struct rd_sync *s, int64_t approver, struct rows *out,
                     struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    char cid[24], pid[24], dberr[256];
    const char *params[2] = {rd_lc_id(cid, sizeof(cid), s->connection_id),
                             rd_lc_id(pid, sizeof(pid), approver)};
    struct rd_prefetch_result res;
    if (rd_prefetch_or_exec(s, RD_PREFETCH_DELEGATIONS, approver, NULL, NULL,
                            "SELECT time_off_id, platform_id, start_date::text, end_date::text,"
                            " delegate FROM delegations WHERE connection_id = $1::bigint"
                            " AND approver_id = $2::bigint ORDER BY time_off_id",
                            2, params, &res, dberr, sizeof(dberr)) != 0)
        return rd_lc_db_fail(err, "delegations", dberr);
    out->items = rd_calloc(res.n + 1, sizeof(*out->items));
    for (size_t k = 0; k < res.n; k++) {
        int i = rd_prefetch_row(&res, k);
        struct row *r = &out->items[out->n++];
        r->tid = strtoll(PQgetvalue(res.res, i, 0), NULL, 10);
        r->platform_id = rd_strdup(PQgetvalue(res.res, i, 1));
        r->start = rd_strdup(PQgetvalue(res.res, i, 2));
        r->end = rd_strdup(PQgetvalue(res.res, i, 3));
        r->delegate = rd_strdup(PQgetvalue(res.res, i, 4));
    }
    rd_prefetch_result_clear(&res);
    return 0;
}

static bool approved(const struct rd_personio_time_off *t)
{
    return t->status && strcmp(t->status, "approved") == 0 && t->start_date && t->end_date;
}

static bool overlaps(const char *start, const char *end, const char *from, const char *to)
{
    return start && end && strcmp(end, from) >= 0 && strcmp(start, to) <= 0;
}

/* The Personio time-off id an external_id of ours names, 0 when it is not ours. */
static int64_t ext_tid(const struct job *j, const char *ext)
{
    size_t n = strlen(j->prefix);
    if (!ext || strncmp(ext, j->prefix, n) != 0)
        return 0;
    return strtoll(ext + n, NULL, 10);
}

/* The first and last day an external_id of ours names ("" when it names none). */
static void ext_days(const struct job *j, const char *ext, char start[11], char end[11])
{
    start[0] = end[0] = '\0';
    const char *p = ext && ext_tid(j, ext) ? strchr(ext + strlen(j->prefix), ':') : NULL;
    if (p && strlen(p) >= 22 && p[11] == ':') {
        memcpy(start, p + 1, 10);
        start[10] = '\0';
        memcpy(end, p + 12, 10);
        end[10] = '\0';
    }
}

static const struct rd_personio_time_off *time_off(const struct job *j, int64_t tid)
{
    for (size_t i = 0; i < j->toffs->count; i++)
        if (j->toffs->items[i].id == tid)
            return &j->toffs->items[i];
    return NULL;
}

/* ---- the plan for one absence ---- */

static int period(struct rd_sync *s, struct plan *p, struct rd_http_error *err)
{
    char dberr[256];
    const char *params[3] = {p->t->start_date, p->t->end_date, rd_sync_timezone(s)};
    PGresult *res =
        rd_db_exec(s->db,
                   "SELECT to_char(a AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                   " to_char(b AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
                   " to_char(a AT TIME ZONE $3, 'YYYY-MM-DD HH24:MI'),"
                   " to_char(b AT TIME ZONE $3, 'YYYY-MM-DD HH24:MI')"
                   " FROM (SELECT ($1::date)::timestamp AT TIME ZONE $3 AS a,"
                   "  rd_local_day_end($2::date, $3, 0) AS b) p",
                   3, params, dberr, sizeof(dberr));
    if (!res)
        return rd_lc_db_fail(err, "delegation period", dberr);
    snprintf(p->start_at, sizeof(p->start_at), "%s", PQgetvalue(res, 0, 0));
    snprintf(p->end_at, sizeof(p->end_at), "%s", PQgetvalue(res, 0, 1));
    snprintf(p->start_local, sizeof(p->start_local), "%s", PQgetvalue(res, 0, 2));
    snprintf(p->end_local, sizeof(p->end_local), "%s", PQgetvalue(res, 0, 3));
    PQclear(res);
    return 0;
}

/* Is employee id away (an approved time-off) at any time of [start, end]? */
static int away(struct rd_sync *s, int64_t id, const char *start, const char *end, bool *yes,
                struct rd_http_error *err)
{
    const struct rd_personio_time_off_list *l = NULL;
    *yes = false;
    if (rd_sync_time_offs(s, id, start, end, &l, err) != 0)
        return -1;
    for (size_t i = 0; i < l->count && !*yes; i++)
        *yes = approved(&l->items[i]) &&
               overlaps(l->items[i].start_date, l->items[i].end_date, start, end);
    return 0;
}

/* The supervisor as delegate, or why not (p->why_none). */
static int supervisor_delegate(struct job *j, struct plan *p, struct rd_http_error *err)
{
    const struct rd_personio_employee *e = j->e, *sup = NULL;
    if (!e->supervisor_id) {
        snprintf(p->why_none, sizeof(p->why_none), "they have no supervisor in Personio");
        return 0;
    }
    struct rd_scim_user acc;
    bool found = false, gone_away = false;
    if (rd_lc_account_of(j->s, e->supervisor_id, &acc, &found, &sup, err) != 0)
        return -1;
    char name[256];
    if (sup)
        rd_lc_name(sup, name, sizeof(name));
    int rc = 0;
    if (!sup)
        snprintf(p->why_none, sizeof(p->why_none),
                 "their supervisor (Personio employee %lld) is not in Personio",
                 (long long)e->supervisor_id);
    else if (sup->status && strcmp(sup->status, "inactive") == 0)
        snprintf(p->why_none, sizeof(p->why_none), "their supervisor %s has left", name);
    else if (!found || !acc.active)
        snprintf(p->why_none, sizeof(p->why_none),
                 "their supervisor %s has no active platform"
                 " account",
                 name);
    else if (strcmp(acc.id, j->acc.id) == 0)
        snprintf(p->why_none, sizeof(p->why_none), "they are their own supervisor in Personio");
    else if ((rc = away(j->s, sup->id, p->t->start_date, p->t->end_date, &gone_away, err)) == 0 &&
             gone_away)
        snprintf(p->why_none, sizeof(p->why_none), "their supervisor %s is away then too", name);
    else if (rc == 0) {
        snprintf(p->delegate, sizeof(p->delegate), "%s", acc.user_name);
        snprintf(p->label, sizeof(p->label), "%s (%s), their supervisor", name, acc.user_name);
    }
    rd_scim_user_clear(&acc);
    return rc;
}

/* The fallback approver as delegate when the supervisor cannot be; else why not. */
static int fallback_delegate(struct job *j, struct plan *p, struct rd_http_error *err)
{
    const char *fb = rd_sync_fallback_approver(j->s);
    size_t n = strlen(p->why_none);
    char *why = p->why_none + n;
    size_t left = sizeof(p->why_none) - n;
    if (!fb) {
        snprintf(why, left, " and connection %s has no fallback_approver", j->s->connection_name);
        return 0;
    }
    struct rd_scim_user_list cands;
    if (rd_sync_scim_candidates(j->s, fb, 0, &cands, err) != 0)
        return -1;
    const struct rd_scim_user *u = NULL;
    for (size_t i = 0; i < cands.count && !u; i++)
        if (cands.items[i].user_name && strcasecmp(cands.items[i].user_name, fb) == 0)
            u = &cands.items[i];
    if (!u && cands.count == 1)
        u = &cands.items[0];
    if (!u || !u->active)
        snprintf(why, left, " and the fallback_approver %s has no active platform account", fb);
    else if (strcmp(u->id, j->acc.id) == 0)
        snprintf(why, left, " and the fallback_approver %s is the absent approver", fb);
    else {
        snprintf(p->delegate, sizeof(p->delegate), "%s", u->user_name);
        snprintf(p->label, sizeof(p->label), "%s, the fallback approver of connection %s (%.400s)",
                 u->user_name, j->s->connection_name, p->why_none);
    }
    rd_scim_user_list_free(&cands);
    return 0;
}

static int make_plan(struct job *j, const struct rd_personio_time_off *t, struct plan *p,
                     struct rd_http_error *err)
{
    memset(p, 0, sizeof(*p));
    p->t = t;
    snprintf(p->ext, sizeof(p->ext), "%s%lld:%s:%s", j->prefix, (long long)t->id, t->start_date,
             t->end_date);
    if (period(j->s, p, err) != 0 || supervisor_delegate(j, p, err) != 0)
        return -1;
    return p->delegate[0] ? 0 : fallback_delegate(j, p, err);
}

static const struct plan *plan_for(const struct job *j, int64_t tid)
{
    for (size_t i = 0; i < j->nplans; i++)
        if (j->plans[i].t->id == tid)
            return &j->plans[i];
    return NULL;
}

/* ---- alerts ---- */

static void away_phrase(struct rd_buf *b, const struct job *j, const struct rd_personio_time_off *t)
{
    char name[256];
    rd_lc_name(j->e, name, sizeof(name));
    rd_buf_printf(b, "%s (%s) is away from %s to %s (%s, approved in Personio)", name, j->e->email,
                  t->start_date, t->end_date, t->type_name ? t->type_name : "absence");
}

static int alert(struct job *j, const char *key, const char *subject, const char *text,
                 struct rd_http_error *err)
{
    const char *to[2] = {j->e->email, NULL};
    bool sent = false;
    return rd_sync_alert_once(j->s, key, subject, text, NULL, j->e->email ? to : NULL, &sent, err);
}

static int alert_delegated(struct job *j, const struct plan *p, const struct row *was,
                           struct rd_http_error *err)
{
    char key[512], subject[400], name[256];
    snprintf(key, sizeof(key), "delegation:%lld:%s:%s:%s", (long long)p->t->id, p->t->start_date,
             p->t->end_date, p->delegate);
    rd_lc_name(j->e, name, sizeof(name));
    snprintf(subject, sizeof(subject), "Approvals of %s delegated %s to %s", name, p->t->start_date,
             p->t->end_date);
    struct rd_buf b = {0};
    rd_buf_puts(&b, was ? "Approval delegation updated: " : "Approvals delegated: ");
    away_phrase(&b, j, p->t);
    rd_buf_printf(&b, ". Their approvals on the platform go to %s, from %s to %s %s (%s to %s).",
                  p->label, p->start_local, p->end_local, rd_sync_timezone(j->s), p->start_at,
                  p->end_at);
    if (was)
        rd_buf_printf(&b, " It replaces the delegation to %s for %s to %s.", was->delegate,
                      was->start, was->end);
    int rc = alert(j, key, subject, b.data, err);
    rd_buf_free(&b);
    return rc;
}

static int alert_none(struct job *j, const struct plan *p, struct rd_http_error *err)
{
    char key[256], subject[400], name[256];
    snprintf(key, sizeof(key), "delegation-none:%lld:%s:%s", (long long)p->t->id, p->t->start_date,
             p->t->end_date);
    rd_lc_name(j->e, name, sizeof(name));
    snprintf(subject, sizeof(subject), "Approver away, nobody to delegate to: %s", name);
    struct rd_buf b = {0};
    rd_buf_puts(&b, "Approver away, nobody to delegate to: ");
    away_phrase(&b, j, p->t);
    rd_buf_printf(
        &b,
        " and approves for others on the platform, but %s. Choose a stand-in: set"
        " \"fallback_approver\" (the e-mail of a platform user who may approve) in the"
        " document of connection %s and run `rosterctl connection apply FILE` (or give %s a"
        " supervisor in Personio); the delegation is then made on the next event for %s"
        " or the nightly run.",
        p->why_none, j->s->connection_name, name, j->e->email);
    int rc = alert(j, key, subject, b.data, err);
    rd_buf_free(&b);
    return rc;
}

static int alert_removed(struct job *j, const char *platform_id, const char *start, const char *end,
                         const char *why, struct rd_http_error *err)
{
    char key[256], subject[400], name[256];
    snprintf(key, sizeof(key), "delegation-removed:%s", platform_id);
    rd_lc_name(j->e, name, sizeof(name));
    snprintf(subject, sizeof(subject), "Approval delegation of %s removed", name);
    struct rd_buf b = {0};
    rd_buf_printf(&b,
                  "Approval delegation removed: the absence of %s (%s) from %s to %s %s; their"
                  " approvals stay with them.",
                  name, j->e->email, start, end, why);
    int rc = alert(j, key, subject, b.data, err);
    rd_buf_free(&b);
    return rc;
}

/* ---- writes ---- */

static int save_row(struct job *j, const struct plan *p, const char *platform_id,
                    struct rd_http_error *err)
{
    char cid[24], tid[24], pid[24], dberr[256];
    const char *params[9] = {rd_lc_id(cid, sizeof(cid), j->s->connection_id),
                             rd_lc_id(tid, sizeof(tid), p->t->id),
                             rd_lc_id(pid, sizeof(pid), j->e->id),
                             platform_id,
                             p->ext,
                             p->delegate,
                             p->t->start_date,
                             p->t->end_date,
                             j->s->reason};
    if (rd_db_run(j->s->db,
                  "INSERT INTO delegations (connection_id, time_off_id, approver_id, platform_id,"
                  " external_id, delegate, start_date, end_date, reason) VALUES ($1::bigint,"
                  " $2::bigint, $3::bigint, $4, $5, $6, $7::date, $8::date, $9)"
                  " ON CONFLICT (connection_id, time_off_id) DO UPDATE SET"
                  "  approver_id = excluded.approver_id, platform_id = excluded.platform_id,"
                  "  external_id = excluded.external_id, delegate = excluded.delegate,"
                  "  start_date = excluded.start_date, end_date = excluded.end_date,"
                  "  reason = excluded.reason, created_at = now()",
                  9, params, dberr, sizeof(dberr)) != 0)
        return rd_lc_db_fail(err, "delegations", dberr);
    return 0;
}

static int drop_row(struct job *j, int64_t time_off_id, struct rd_http_error *err)
{
    char cid[24], tid[24], dberr[256];
    const char *params[2] = {rd_lc_id(cid, sizeof(cid), j->s->connection_id),
                             rd_lc_id(tid, sizeof(tid), time_off_id)};
    if (rd_db_run(j->s->db,
                  "DELETE FROM delegations WHERE connection_id = $1::bigint"
                  " AND time_off_id = $2::bigint",
                  2, params, dberr, sizeof(dberr)) != 0)
        return rd_lc_db_fail(err, "delegations", dberr);
    return 0;
}

static int delete_upstream(struct job *j, const struct rd_delegation *d, struct rd_http_error *err)
{
    struct json_object *before = json_object_new_object();
    json_object_object_add(before, "id", json_object_new_string(d->id));
    json_object_object_add(before, "delegate",
                           d->delegate ? json_object_new_string(d->delegate) : NULL);
    json_object_object_add(before, "starts_at",
                           d->starts_at ? json_object_new_string(d->starts_at) : NULL);
    json_object_object_add(before, "ends_at",
                           d->ends_at ? json_object_new_string(d->ends_at) : NULL);
    json_object_object_add(before, "external_id", json_object_new_string(d->external_id));
    struct rd_audit_ctx a;
    bool gone = false;
    struct rd_scim *sc = rd_sync_scim(j->s, err);
    int rc = sc ? rd_platform_delete_delegation(sc, d->id, rd_lc_audit(j->s, &a, before),
                                                j->s->deadline, &gone, err)
                : -1;
    json_object_put(before);
    return rc;
}

static int create_upstream(struct job *j, const struct plan *p, char **id,
                           struct rd_http_error *err)
{
    char reason[400], name[256];
    rd_lc_name(j->e, name, sizeof(name));
    snprintf(reason, sizeof(reason), "%s away %s to %s (Personio time-off %lld; rosterd %s)", name,
             p->t->start_date, p->t->end_date, (long long)p->t->id, j->s->reason);
    bool existed = false;
    struct rd_scim *sc = rd_sync_scim(j->s, err);
    return sc ? rd_platform_create_delegation(sc, j->acc.user_name, p->delegate, p->start_at,
                                              p->end_at, reason, p->ext, rd_sync_audit(j->s),
                                              j->s->deadline, id, &existed, err)
              : -1;
}

/* ---- converging one absence ---- */

static const struct rd_delegation *platform_for(const struct job *j, int64_t tid)
{
    for (size_t i = 0; i < j->platform.count; i++)
        if (ext_tid(j, j->platform.items[i].external_id) == tid)
            return &j->platform.items[i];
    return NULL;
}

static const struct row *row_for(const struct job *j, int64_t tid)
{
    for (size_t i = 0; i < j->rows.n; i++)
        if (j->rows.items[i].tid == tid)
            return &j->rows.items[i];
    return NULL;
}

/* Why the delegation of tid is no longer wanted, for the alert. */
static void why_removed(const struct job *j, int64_t tid, char *out, size_t outlen)
{
    const struct rd_personio_time_off *t = time_off(j, tid);
    if (!t)
        snprintf(out, outlen, "is no longer in Personio (deleted, or moved out of %s to %s)",
                 j->from, j->to);
    else if (!approved(t))
        snprintf(out, outlen, "was %s in Personio", t->status ? t->status : "changed");
    else
        snprintf(out, outlen, "needs no delegation any more: nobody in Personio reports to them");
}

/* A plan's delegation is missing or different: make it (or ask for a delegate). */
static int make(struct job *j, const struct plan *p, const struct row *was, bool replaced,
                struct rd_http_error *err)
{
    if (!p->delegate[0]) {
        rd_sync_finding(j->s, "conflict", j->e->email, NULL, RD_RESULT_NONE,
                        "approver away %s to %s with nobody to delegate to: %s; set"
                        " fallback_approver in connection %s",
                        p->t->start_date, p->t->end_date, p->why_none, j->s->connection_name);
        if (j->s->dry_run)
            return 0;
        if (alert_none(j, p, err) != 0)
            return -1;
        return was ? drop_row(j, p->t->id, err) : 0;
    }
    rd_lc_note(j->s, "%s approvals of %s to %s for %s to %s",
               j->s->dry_run ? "would delegate" : "delegated", j->e->email, p->delegate,
               p->t->start_date, p->t->end_date);
    if (j->s->dry_run)
        return 0;
    char *id = NULL;
    int rc = create_upstream(j, p, &id, err);
    if (rc == 0)
        rc = save_row(j, p, id, err);
    if (rc == 0)
        rc = alert_delegated(j, p, replaced ? was : NULL, err);
    free(id);
    return rc;
}

static int converge_one(struct job *j, int64_t tid, struct rd_http_error *err)
{
    const struct plan *p = plan_for(j, tid);
    const struct rd_delegation *d = platform_for(j, tid);
    const struct row *r = row_for(j, tid);
    const struct rd_personio_time_off *t = time_off(j, tid);
    char ds[11], de[11];
    ext_days(j, d ? d->external_id : NULL, ds, de);
    /* an absence this call cannot see (outside [from, to]) is left as it is */
    bool in_view = t || (r && overlaps(r->start, r->end, j->from, j->to)) ||
                   (d && ds[0] && overlaps(ds, de, j->from, j->to));
    if (!in_view)
        return 0;
    if (p && d && strcmp(d->external_id, p->ext) == 0 && p->delegate[0] && d->delegate &&
        strcasecmp(d->delegate, p->delegate) == 0) {
        if (j->s->dry_run)
            return 0;
        /* as wanted: make sure it is recorded and its alert went out */
        if ((!r || strcmp(r->platform_id, d->id) != 0) && save_row(j, p, d->id, err) != 0)
            return -1;
        return alert_delegated(j, p, NULL, err);
    }
    bool replaced = d != NULL;
    if (d) {
        rd_lc_note(j->s, "%s delegation %s of %s", j->s->dry_run ? "would remove" : "removed",
                   d->id, j->e->email);
        if (!j->s->dry_run && delete_upstream(j, d, err) != 0)
            return -1;
    }
    if (p)
        return make(j, p, r, replaced || r != NULL, err);
    if (j->s->dry_run || (!d && !r))
        return 0;
    char why[256];
    why_removed(j, tid, why, sizeof(why));
    if (r) {
        if (alert_removed(j, r->platform_id, r->start, r->end, why, err) != 0)
            return -1;
        return drop_row(j, tid, err);
    }
    return alert_removed(j, d->id, ds, de, why, err);
}

/* ---- the whole call ---- */

static void job_free(struct job *j)
{
    free(j->plans);
    rows_free(&j->rows);
    rd_delegation_list_free(&j->platform);
    rd_scim_user_clear(&j->acc);
}

/*
 * The approver's own platform account (they have approvals only if they have one):
 * the pinned link, else linked now (the absence handler may ask before any person
 * event has linked them).
 */
static int approver_account(struct job *j, bool *found, struct rd_http_error *err)
{
    char *pinned = rd_identity_pinned_scim(j->s, j->e->id);
    *found = false;
    int rc = pinned ? rd_sync_scim_user(j->s, pinned, found, &j->acc, err) : 0;
    free(pinned);
    if (rc != 0 || *found)
        return rc;
    rd_scim_user_clear(&j->acc);
    char dberr[256];
    enum rd_link_state st = RD_LINK_NONE;
    if (rd_identity_remember(j->s, j->e, dberr, sizeof(dberr)) != 0)
        return rd_lc_db_fail(err, "people", dberr);
    if (rd_identity_platform(j->s, j->e, &j->acc, &st, err) != 0)
        return -1;
    *found = (st == RD_LINK_PINNED || st == RD_LINK_NEW) && j->acc.id;
    return 0;
}

/* Lists the approver's delegations; only ours (ext_tid != 0) are ever looked at. A
 * nightly run has read every delegation once (rd_reconcile_delegations): the approver's
 * are copied from there, by the user name the platform answers with. */
static int list_platform(struct job *j, struct rd_http_error *err)
{
    const struct rd_delegation_list *all = rd_reconcile_delegations(j->s);
    if (all) {
        for (size_t i = 0; i < all->count; i++) {
            const struct rd_delegation *d = &all->items[i];
            if (!d->approver || !j->acc.user_name || strcasecmp(d->approver, j->acc.user_name) != 0)
                continue;
            j->platform.items =
                rd_realloc(j->platform.items, (j->platform.count + 1) * sizeof(*j->platform.items));
            rd_delegation_copy(&j->platform.items[j->platform.count++], d);
        }
        return 0;
    }
    struct rd_scim *sc = rd_sync_scim(j->s, err);
    return sc ? rd_platform_list_delegations(sc, j->acc.user_name, j->s->deadline, &j->platform,
                                             err)
              : -1;
}

/* Every time-off id the call must look at: planned, on the platform, recorded. */
static int converge_all(struct job *j, struct rd_http_error *err)
{
    for (size_t i = 0; i < j->nplans; i++)
        if (converge_one(j, j->plans[i].t->id, err) != 0)
            return -1;
    for (size_t i = 0; i < j->platform.count; i++) {
        int64_t tid = ext_tid(j, j->platform.items[i].external_id);
        if (tid && !plan_for(j, tid) && converge_one(j, tid, err) != 0)
            return -1;
    }
    for (size_t i = 0; i < j->rows.n; i++) {
        int64_t tid = j->rows.items[i].tid;
        if (!plan_for(j, tid) && !platform_for(j, tid) && converge_one(j, tid, err) != 0)
            return -1;
    }
    return 0;
}

static int plan_all(struct job *j, bool approver, struct rd_http_error *err)
{
    j->plans = rd_calloc(j->toffs->count + 1, sizeof(*j->plans));
    for (size_t i = 0; approver && i < j->toffs->count; i++) {
        const struct rd_personio_time_off *t = &j->toffs->items[i];
        if (!approved(t) || !overlaps(t->start_date, t->end_date, j->from, j->to))
            continue;
        if (make_plan(j, t, &j->plans[j->nplans], err) != 0)
            return -1;
        j->nplans++;
    }
    return 0;
}

int rd_approver_converge(struct rd_sync *s, const struct rd_personio_employee *e, const char *from,
                         const char *to, struct rd_http_error *err)
{
    if (!rd_sync_policy_bool(s, "approver_reassignment", true) || !rd_sync_has(s, "platform") ||
        !from || !to)
        return 0;
    struct job j = {.s = s, .e = e, .from = from, .to = to};
    snprintf(j.prefix, sizeof(j.prefix), "rosterd:%s:time-off:", s->connection_name);
    int rc = load_rows(s, e->id, &j.rows, err);
    bool any = false, approver = false, found = false;
    if (rc == 0)
        rc = rd_sync_time_offs(s, e->id, from, to, &j.toffs, err);
    for (size_t i = 0; rc == 0 && i < j.toffs->count && !any; i++)
        any = approved(&j.toffs->items[i]);
    /* the common case costs one time-off read and one query: no absence, nothing made */
    if (rc == 0 && any)
        rc = rd_lc_is_approver(s, e->id, &approver, err);
    if (rc == 0 && (approver || j.rows.n))
        rc = approver_account(&j, &found, err);
    if (rc == 0 && (approver || j.rows.n) && !found)
        rd_log_info("approver %s has no platform account: no delegations to make (%s)",
                    e->email ? e->email : "?", s->reason);
    if (rc == 0 && found && (approver || j.rows.n)) {
        rc = list_platform(&j, err);
        if (rc == 0)
            rc = plan_all(&j, approver, err);
        if (rc == 0)
            rc = converge_all(&j, err);
    }
    job_free(&j);
    return rc;
}

int rd_approver_converge_ahead(struct rd_sync *s, const struct rd_personio_employee *e,
                               struct rd_http_error *err)
{
    const char *today = rd_lc_today(s, err);
    if (!today)
        return -1;
    char to[11];
    if (rd_lc_date_add(s, today, RD_APPROVER_HORIZON_DAYS, to, err) != 0)
        return -1;
    return rd_approver_converge(s, e, today, to, err);
}
