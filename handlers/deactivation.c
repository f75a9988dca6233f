/*
 * Last-day deactivation (include/rosterd/deactivation.h): the instant in SQL, one
 * job per person and instant, the PATCH active=false when it is due, protected
 * users, and the lifecycle.deactivate handler that re-reads Personio at run time.
 */
#include "rosterd/deactivation.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "lifecycle_internal.h"
#include "prefetch_internal.h"
#include "rosterd/db.h"
#include "rosterd/handler.h"
#include "rosterd/log.h"
#include "rosterd/person.h"
#include "rosterd/queue.h"

/* The end of a last day, as SQL computed it. */
struct instant {
    char at[64];        /* timestamptz text (run_at) */
    char utc[32];       /* 2026-12-15T23:00:00Z */
    char local[40];     /* 2026-12-16 00:00 */
    char now_local[40]; /* the time now, likewise */
    char epoch[24];
    bool due;
    double late_s; /* now minus the instant (negative: still to come) */
};

static int instant_of(struct rd_sync *s, const char *last_day, int delay, struct instant *w,
                      struct rd_http_error *err)
{
    char d[16], dberr[256];
    snprintf(d, sizeof(d), "%d", delay);
    const char *params[3] = {last_day, rd_sync_timezone(s), d};
    PGresult *res = rd_db_exec(
        s->db,
        "SELECT x::text, to_char(x AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
        " to_char(x AT TIME ZONE $2, 'YYYY-MM-DD HH24:MI'),"
        " to_char(now() AT TIME ZONE $2, 'YYYY-MM-DD HH24:MI'),"
        " extract(epoch FROM x)::bigint::text, x <= now(), extract(epoch FROM now() - x)"
        " FROM (SELECT rd_local_day_end($1::date, $2, $3::int) AS x) i",
        3, params, dberr, sizeof(dberr));
    if (!res)
        return rd_lc_db_fail(err, "deactivation time", dberr);
    snprintf(w->at, sizeof(w->at), "%s", PQgetvalue(res, 0, 0));
    snprintf(w->utc, sizeof(w->utc), "%s", PQgetvalue(res, 0, 1));
    snprintf(w->local, sizeof(w->local), "%s", PQgetvalue(res, 0, 2));
    snprintf(w->now_local, sizeof(w->now_local), "%s", PQgetvalue(res, 0, 3));
    snprintf(w->epoch, sizeof(w->epoch), "%s", PQgetvalue(res, 0, 4));
    w->due = strcmp(PQgetvalue(res, 0, 5), "t") == 0;
    w->late_s = strtod(PQgetvalue(res, 0, 6), NULL);
    PQclear(res);
    return 0;
}

/* ---- the person's open deactivation jobs ---- */

struct open_job {
    int64_t id;
    char *ukey;
    bool running;
    char *last_day;      /* from the payload */
    char *deactivate_at; /* UTC, from the payload */
};

struct open_jobs {
    struct open_job *items;
    size_t n;
};

static void open_jobs_free(struct open_jobs *j)
{
    for (size_t i = 0; i < j->n; i++) {
        free(j->items[i].ukey);
        free(j->items[i].last_day);
        free(j->items[i].deactivate_at);
    }
    free(j->items);
    memset(j, 0, sizeof(*j));
}

static char *opt_dup(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : rd_strdup(PQgetvalue(res, row, col));
}

static int open_jobs_of(struct rd_sync *s, int64_t pid, struct open_jobs *out,
                        struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    char cid[24], p[24], dberr[256];
    const char *params[2] = {rd_lc_id(cid, sizeof(cid), s->connection_id),
                             rd_lc_id(p, sizeof(p), pid)};
    struct rd_prefetch_result r;
    if (rd_prefetch_or_exec(s, RD_PREFETCH_DEACTIVATION_JOBS, pid, NULL, NULL,
                            "SELECT id, unique_key, state = 'running', payload ->> 'last_day',"
                            " payload ->> 'deactivate_at' FROM jobs"
                            " WHERE connection_id = $1::bigint AND subject = $2"
                            " AND kind = '" RD_DEACTIVATION_KIND "' ORDER BY run_at, id",
                            2, params, &r, dberr, sizeof(dberr)) != 0)
        return rd_lc_db_fail(err, "deactivation jobs", dberr);
    out->items = rd_calloc(r.n + 1, sizeof(*out->items));
    for (size_t k = 0; k < r.n; k++) {
        int i = rd_prefetch_row(&r, k);
        struct open_job *j = &out->items[out->n++];
        j->id = strtoll(PQgetvalue(r.res, i, 0), NULL, 10);
        j->ukey = opt_dup(r.res, i, 1);
        j->running = strcmp(PQgetvalue(r.res, i, 2), "t") == 0;
        j->last_day = opt_dup(r.res, i, 3);
        j->deactivate_at = opt_dup(r.res, i, 4);
    }
    rd_prefetch_result_clear(&r);
    return 0;
}

/* Cancels every job but the one under keep (NULL: all); running ones finish on their own. */
static int cancel_jobs(struct rd_sync *s, const struct open_jobs *jobs, const char *keep,
                       int *cancelled, struct rd_http_error *err)
{
    *cancelled = 0;
    for (size_t i = 0; i < jobs->n; i++) {
        const struct open_job *j = &jobs->items[i];
        if (j->running || !j->ukey || (keep && strcmp(j->ukey, keep) == 0))
            continue;
        int one = 0;
        char dberr[256];
        if (!s->dry_run && rd_queue_cancel(s->db, j->ukey, &one, dberr, sizeof(dberr)) != 0)
            return rd_lc_db_fail(err, "cancel deactivation", dberr);
        *cancelled += s->dry_run ? 1 : one;
    }
    return 0;
}

static const char *day_kind(const struct rd_personio_employee *e)
{
    return e->last_working_day ? "last working day" : "termination date";
}

static const char *day_kind_cap(const struct rd_personio_employee *e)
{
    return e->last_working_day ? "Last working day" : "Termination date";
}

static const char *result_of(const struct rd_sync *s)
{
    return s->dry_run ? RD_RESULT_PLANNED : RD_RESULT_DONE;
}

/* ---- no last day any more ---- */

static int revoked(struct rd_sync *s, const struct rd_personio_employee *e,
                   const struct open_jobs *jobs, struct rd_http_error *err)
{
    int cancelled = 0;
    if (cancel_jobs(s, jobs, NULL, &cancelled, err) != 0)
        return -1;
    if (jobs->n == 0)
        return 0;
    const struct open_job *j = &jobs->items[0];
    rd_sync_finding(
        s, "deactivation_scheduled", e->email, "cancelled the scheduled deactivation", result_of(s),
        "Personio shows no last day for %s any more (termination revoked): the"
        " deactivation due %s (last day %s) was cancelled",
        e->email, j->deactivate_at ? j->deactivate_at : "?", j->last_day ? j->last_day : "?");
    return 0;
}

/* ---- a future instant ---- */

static char *job_payload(const struct rd_personio_employee *e, const char *last, int delay,
                         const struct instant *w)
{
    char name[256];
    rd_lc_name(e, name, sizeof(name));
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "personio_id", json_object_new_int64(e->id));
    json_object_object_add(o, "email", json_object_new_string(e->email ? e->email : ""));
    json_object_object_add(o, "name", json_object_new_string(name));
    json_object_object_add(o, "last_day", json_object_new_string(last));
    json_object_object_add(o, "delay_days", json_object_new_int(delay));
    json_object_object_add(o, "deactivate_at", json_object_new_string(w->utc));
    char *text = rd_strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
    return text;
}

static const struct open_job *job_with_key(const struct open_jobs *jobs, const char *key)
{
    for (size_t i = 0; i < jobs->n; i++)
        if (jobs->items[i].ukey && strcmp(jobs->items[i].ukey, key) == 0)
            return &jobs->items[i];
    return NULL;
}

static int schedule(struct rd_sync *s, const struct rd_personio_employee *e, const char *last,
                    int delay, const struct instant *w, const struct open_jobs *jobs,
                    struct rd_http_error *err)
{
    char ukey[128], pid[24], dberr[256];
    snprintf(ukey, sizeof(ukey), RD_DEACTIVATION_KIND ":%lld:%lld:%s", (long long)s->connection_id,
             (long long)e->id, w->epoch);
    const struct open_job *same = job_with_key(jobs, ukey);
    if (same) {
        if (same->running && same->id == s->job_id) /* started before its time */
            rd_lc_of(s)->early_wait = -w->late_s;
        return 0;
    }
    if (!s->dry_run) {
        char *payload = job_payload(e, last, delay, w);
        char *key = rd_queue_key(s->connection_id, "personio", rd_lc_id(pid, sizeof(pid), e->id));
        struct rd_job_spec spec = {.kind = RD_DEACTIVATION_KIND,
                                   .key = key,
                                   .connection_id = s->connection_id,
                                   .subject = pid,
                                   .run_at = w->at,
                                   .unique_key = ukey,
                                   .payload_json = payload};
        int64_t job_id = 0;
        int rc = rd_queue_schedule(s->db, &spec, &job_id, dberr, sizeof(dberr));
        free(key);
        free(payload);
        if (rc != 0)
            return rd_lc_db_fail(err, "schedule deactivation", dberr);
    }
    int moved = 0;
    if (cancel_jobs(s, jobs, ukey, &moved, err) != 0)
        return -1;
    const struct open_job *old = jobs->n ? &jobs->items[0] : NULL;
    char tz_note[160] = "";
    if (delay)
        snprintf(tz_note, sizeof(tz_note), " plus %d day%s (deactivation_delay_days)", delay,
                 delay == 1 ? "" : "s");
    rd_sync_finding(s, "deactivation_scheduled", e->email, NULL, result_of(s),
                    "%s %s%s: the platform account is deactivated at %s %s (%s)%s%s%s%s%s",
                    day_kind(e), last, tz_note, w->local, rd_sync_timezone(s), w->utc,
                    old ? "; moved from " : "", old && old->deactivate_at ? old->deactivate_at : "",
                    old ? " (last day " : "", old ? (old->last_day ? old->last_day : "?") : "",
                    old ? ")" : "");
    return 0;
}

/* ---- a past instant ---- */

static char *deactivated_text(struct rd_sync *s, const struct rd_personio_employee *e,
                              const char *last, int delay, const struct instant *w)
{
    char name[256];
    rd_lc_name(e, name, sizeof(name));
    struct rd_buf b = {0};
    rd_buf_printf(&b,
                  "Platform account deactivated: %s (%s). %s %s; the account was closed at"
                  " the end of it",
                  name, e->email, day_kind_cap(e), last);
    if (delay)
        rd_buf_printf(&b, " plus %d day%s (deactivation_delay_days)", delay, delay == 1 ? "" : "s");
    rd_buf_printf(&b, ": %s %s (%s).", w->local, rd_sync_timezone(s), w->utc);
    if (w->late_s > 3600)
        rd_buf_printf(&b,
                      " rosterd learned of the last day only afterwards and deactivated the"
                      " account at %s %s.",
                      w->now_local, rd_sync_timezone(s));
    return rd_buf_steal(&b);
}

static int record_done(struct rd_sync *s, const struct rd_personio_employee *e, const char *last,
                       const struct instant *w, const char *scim_id, const char *outcome,
                       struct rd_http_error *err)
{
    char cid[24], pid[24], dberr[256];
    const char *params[7] = {rd_lc_id(cid, sizeof(cid), s->connection_id),
                             rd_lc_id(pid, sizeof(pid), e->id),
                             last,
                             w->at,
                             scim_id,
                             outcome,
                             s->reason};
    if (rd_db_run(s->db,
                  "INSERT INTO deactivations (connection_id, personio_id, last_day, deactivate_at,"
                  " scim_id, outcome, reason) VALUES ($1::bigint, $2::bigint, $3::date,"
                  " $4::timestamptz, $5, $6, $7) ON CONFLICT DO NOTHING",
                  7, params, dberr, sizeof(dberr)) != 0)
        return rd_lc_db_fail(err, "deactivations", dberr);
    return 0;
}

/* Did rosterd deactivate this account for this last day (so its alert may be owed)? */
static int was_deactivated(struct rd_sync *s, int64_t personio_id, const char *last, bool *yes,
                           struct rd_http_error *err)
{
    char cid[24], pid[24], dberr[256];
    const char *params[3] = {rd_lc_id(cid, sizeof(cid), s->connection_id),
                             rd_lc_id(pid, sizeof(pid), personio_id), last};
    PGresult *res = rd_db_exec(s->db,
                               "SELECT 1 FROM deactivations WHERE connection_id = $1::bigint"
                               " AND personio_id = $2::bigint AND last_day = $3::date"
                               " AND outcome = 'deactivated'",
                               3, params, dberr, sizeof(dberr));
    if (!res)
        return rd_lc_db_fail(err, "deactivations", dberr);
    *yes = PQntuples(res) == 1;
    PQclear(res);
    return 0;
}

static int alert_deactivated(struct rd_sync *s, const struct rd_personio_employee *e,
                             const char *last, int delay, const struct instant *w,
                             struct rd_http_error *err)
{
    char key[96], subject[320], name[256];
    snprintf(key, sizeof(key), "deactivated:%lld:%s", (long long)e->id, last);
    rd_lc_name(e, name, sizeof(name));
    snprintf(subject, sizeof(subject), "Deactivated: %s (%s)", name, e->email);
    char *text = deactivated_text(s, e, last, delay, w);
    bool sent = false;
    int rc = rd_sync_alert_once(s, key, subject, text, NULL, NULL, &sent, err);
    free(text);
    return rc;
}

/* A protected user's last day has ended: say so once, in the alert and the audit trail. */
static int protected_due(struct rd_sync *s, const struct rd_personio_employee *e,
                         const struct rd_scim_user *acc, const char *last, const struct instant *w,
                         struct rd_http_error *err)
{
    rd_sync_finding(s, "deactivated", e->email, NULL, RD_RESULT_SKIPPED,
                    "protected user (policy.protected_users): %s %s ended at %s %s (%s), the"
                    " platform account stays active",
                    day_kind(e), last, w->local, rd_sync_timezone(s), w->utc);
    if (s->dry_run)
        return 0;
    char key[96], name[256], subject[320];
    snprintf(key, sizeof(key), "protected:%lld:%s", (long long)e->id, last);
    rd_lc_name(e, name, sizeof(name));
    snprintf(subject, sizeof(subject), "Not deactivated (protected): %s", name);
    struct rd_buf t = {0};
    rd_buf_printf(&t,
                  "Not deactivated: %s (%s) is a protected user (policy.protected_users of"
                  " connection %s). Their %s was %s, so the platform account would have been"
                  " deactivated at %s %s (%s); it stays active. Deactivate it on the platform by"
                  " hand if they have left.",
                  name, e->email, s->connection_name, day_kind(e), last, w->local,
                  rd_sync_timezone(s), w->utc);
    bool sent = false;
    int rc = rd_sync_alert_once(s, key, subject, t.data, NULL, NULL, &sent, err);
    rd_buf_free(&t);
    if (rc != 0 || !sent)
        return rc;
    char path[256];
    snprintf(path, sizeof(path), "/Users/%s", acc->id);
    /* a failed audit row is logged by rd_audit_record; the alert has told the admins */
    if (rd_audit_record(s->db, s->connection_id, "scim", "PATCH", path, NULL, NULL, s->reason,
                        "skipped", 0,
                        "protected user (policy.protected_users): not deactivated") != 0)
        rd_log_warn("protected user %s: audit row not written (%s)", e->email, s->reason);
    return record_done(s, e, last, w, acc->id, "protected", err);
}

static int patch_inactive(struct rd_sync *s, struct rd_scim_user *acc, struct rd_http_error *err)
{
    struct json_object *before = json_object_new_object();
    json_object_object_add(before, "active", json_object_new_boolean(1));
    json_object_object_add(before, "userName",
                           acc->user_name ? json_object_new_string(acc->user_name) : NULL);
    struct rd_audit_ctx a;
    struct rd_scim *sc = rd_sync_scim(s, err);
    int rc =
        sc ? rd_scim_set_active(sc, acc->id, false, rd_lc_audit(s, &a, before), s->deadline, err)
           : -1;
    json_object_put(before);
    if (rc == 0) {
        acc->active = false;
        rd_sync_scim_user_updated(s, acc);
    }
    return rc;
}

static int due(struct rd_sync *s, const struct rd_personio_employee *e, struct rd_scim_user *acc,
               const char *last, int delay, const struct instant *w, const struct open_jobs *jobs,
               struct rd_http_error *err)
{
    int cancelled = 0;
    if (rd_sync_is_protected(s, e->email))
        return protected_due(s, e, acc, last, w, err) != 0
                   ? -1
                   : cancel_jobs(s, jobs, NULL, &cancelled, err);
    if (!acc->active) {
        bool ours = false;
        if (was_deactivated(s, e->id, last, &ours, err) != 0 ||
            (ours && !s->dry_run && alert_deactivated(s, e, last, delay, w, err) != 0))
            return -1;
        return cancel_jobs(s, jobs, NULL, &cancelled, err);
    }
    if (s->hold_destructive) { /* a dry run shows what the breaker would hold */
        rd_sync_finding(s, "deactivation_held", e->email, "deactivate the platform account",
                        RD_RESULT_HELD, "%s %s ended at %s %s (%s): %s", day_kind(e), last,
                        w->local, rd_sync_timezone(s), w->utc,
                        s->dry_run ? "the circuit breaker would hold it (dry run)"
                                   : "held by the circuit breaker until an operator approves");
        return 0;
    }
    if (s->dry_run) {
        rd_sync_finding(s, "deactivated", e->email, "deactivate the platform account",
                        RD_RESULT_PLANNED, "%s %s ended at %s %s (%s)", day_kind(e), last, w->local,
                        rd_sync_timezone(s), w->utc);
        return 0;
    }
    if (patch_inactive(s, acc, err) != 0 ||
        record_done(s, e, last, w, acc->id, "deactivated", err) != 0)
        return -1;
    rd_sync_finding(s, "deactivated", e->email, "deactivated the platform account", RD_RESULT_DONE,
                    "%s %s ended at %s %s (%s)", day_kind(e), last, w->local, rd_sync_timezone(s),
                    w->utc);
    if (alert_deactivated(s, e, last, delay, w, err) != 0)
        return -1;
    return cancel_jobs(s, jobs, NULL, &cancelled, err);
}

int rd_deactivation_converge(struct rd_sync *s, const struct rd_personio_employee *e,
                             struct rd_scim_user *account, enum rd_link_state link, bool *done,
                             struct rd_http_error *err)
{
    *done = account->id && !account->active;
    if (!rd_sync_policy_bool(s, "deactivation", true))
        return 0;
    struct open_jobs jobs;
    if (open_jobs_of(s, e->id, &jobs, err) != 0)
        return -1;
    const char *last = rd_identity_last_day(e);
    bool linked = (link == RD_LINK_PINNED || link == RD_LINK_NEW) && account->id;
    int delay = rd_sync_policy_int(s, "deactivation_delay_days", 0);
    struct instant w;
    int rc = 0, cancelled = 0;
    if (!last) {
        rc = revoked(s, e, &jobs, err);
    } else if ((rc = instant_of(s, last, delay, &w, err)) != 0) {
        /* err is set */
    } else if (!w.due && linked && rd_sync_is_protected(s, e->email)) {
        rd_sync_finding(s, "deactivation_scheduled", e->email, NULL, RD_RESULT_SKIPPED,
                        "protected user (policy.protected_users): %s %s, the platform account"
                        " will not be deactivated",
                        day_kind(e), last);
        rc = cancel_jobs(s, &jobs, NULL, &cancelled, err);
    } else if (!w.due) {
        /* without an account there is nothing to deactivate: a later link schedules it */
        rc = linked ? schedule(s, e, last, delay, &w, &jobs, err)
                    : cancel_jobs(s, &jobs, NULL, &cancelled, err);
    } else {
        *done = true;
        rc = linked ? due(s, e, account, last, delay, &w, &jobs, err)
                    : cancel_jobs(s, &jobs, NULL, &cancelled, err);
    }
    open_jobs_free(&jobs);
    return rc;
}

/* ---- a person Personio no longer knows ---- */

static void mirror_employee(const PGresult *res, int64_t pid, struct rd_personio_employee *e)
{
    memset(e, 0, sizeof(*e));
    e->id = pid;
    e->email = opt_dup(res, 0, 0);
    e->first_name = opt_dup(res, 0, 1);
    e->last_name = opt_dup(res, 0, 2);
    e->status = opt_dup(res, 0, 3);
    e->last_working_day = opt_dup(res, 0, 4);
}

int rd_deactivation_gone(struct rd_sync *s, int64_t personio_id, struct rd_http_error *err)
{
    char cid[24], pid[24], dberr[256];
    const char *params[2] = {rd_lc_id(cid, sizeof(cid), s->connection_id),
                             rd_lc_id(pid, sizeof(pid), personio_id)};
    PGresult *res =
        rd_db_exec(s->db,
                   "SELECT email, first_name, last_name, status, last_day::text, scim_id"
                   " FROM people WHERE connection_id = $1::bigint"
                   " AND personio_id = $2::bigint",
                   2, params, dberr, sizeof(dberr));
    if (!res)
        return rd_lc_db_fail(err, "people", dberr);
    if (PQntuples(res) != 1 || PQgetisnull(res, 0, 5)) {
        PQclear(res);
        return 0;
    }
    struct rd_personio_employee e;
    mirror_employee(res, personio_id, &e);
    char *scim_id = opt_dup(res, 0, 5);
    PQclear(res);
    struct rd_scim_user acc;
    bool found = false, done = false;
    int rc = rd_sync_scim_user(s, scim_id, &found, &acc, err);
    if (rc == 0 && found && e.last_working_day)
        rc = rd_deactivation_converge(s, &e, &acc, RD_LINK_PINNED, &done, err);
    else if (rc == 0 && found && acc.active)
        rd_sync_finding(s, "platform_only", e.email, NULL, RD_RESULT_NONE,
                        "Personio no longer has employee %lld (%s), whose platform account %s is"
                        " still active: deactivate it on the platform if they have left",
                        (long long)personio_id, e.email ? e.email : "?", scim_id);
    rd_scim_user_clear(&acc);
    free(scim_id);
    rd_personio_employee_clear(&e);
    return rc;
}

/* ---- the lifecycle.deactivate handler ---- */

static int deactivate_run(struct rd_job_ctx *ctx)
{
    char *end = NULL;
    long long id = ctx->subject ? strtoll(ctx->subject, &end, 10) : 0;
    if (!ctx->subject || !end || *end || id <= 0) {
        snprintf(ctx->note, sizeof(ctx->note), "ignored: no Personio employee id in the job");
        return 0;
    }
    struct rd_sync *s = rd_sync_open_job(ctx);
    if (!s)
        return -1;
    struct rd_http_error err = {0};
    const struct rd_personio_employee *e = NULL;
    bool gone = false;
    /* the truth now, not the payload of when the job was made */
    int rc = rd_sync_employee(s, id, &e, &gone, &err);
    if (rc == 0)
        rc = gone ? rd_person_gone(s, id, &err) : rd_person_converge(s, e, &err);
    const struct rd_lc *lc = s->ext[RD_SYNC_EXT_PEOPLE].data;
    if (rc == 0 && lc && lc->early_wait > 0) {
        rd_http_error_set(&err, false, 0, "ran %.0f s before its time; waits for it",
                          lc->early_wait);
        err.retry_after_s = (int)lc->early_wait + 1;
        rc = -1;
    }
    if (rc == 0) {
        rd_lc_compose_note(s, ctx->note, sizeof(ctx->note));
        if (!ctx->note[0])
            snprintf(ctx->note, sizeof(ctx->note),
                     "nothing to deactivate for Personio employee %lld", id);
    } else {
        rd_sync_fail(ctx, &err);
    }
    rd_sync_close(s);
    return rc;
}

static const struct rd_handler deactivation_handlers[] = {
    {.kind = RD_DEACTIVATION_KIND, .run = deactivate_run, .needs_connection = true},
};

const struct rd_capability rd_cap_deactivation = {
    .name = "deactivation",
    .handlers = deactivation_handlers,
    .nhandlers = sizeof(deactivation_handlers) / sizeof(deactivation_handlers[0]),
};
