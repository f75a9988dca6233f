/*
 * The nightly reconciliation (include/rosterd/reconcile.h): one run reads everything,
 * counts what it would do in a dry pass, decides whether the circuit breaker trips,
 * then converges everyone for real (holding deactivations when it tripped), reports
 * platform accounts nobody in HR owns, records the run and tells the admins. Also the
 * "reconcile" job kind the scheduler plans at policy.reconcile_at.
 */
#include "rosterd/reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "prefetch_internal.h"
#include "reconcile_internal.h"
#include "rosterd/connection.h"
#include "rosterd/db.h"
#include "rosterd/handler.h"
#include "rosterd/hmap.h"
#include "rosterd/identity.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/metrics.h"
#include "rosterd/person.h"
#include "rosterd/report.h"

/* This many people failing one after the other means an upstream is down: stop. */
#define MAX_ERRORS_IN_A_ROW 25

/* Everything one run keeps between its steps. */
struct run {
    struct rd_sync *s;
    struct rd_run_lease lease;
    const struct rd_reconcile_opts *o;
    char today[11], from[11], to[11];
    struct rd_reconcile_stats stats;
    const struct rd_personio_employee_list *emps;
    size_t planned_deactivations, linked_users;
    int64_t baseline, baseline_run; /* employees of the last good run, -1: none */
    char *held_reason;              /* set when the breaker tripped */
    char error[512];                /* set when the run failed */
    bool permanent;
    struct json_object *warnings;
};

static void i64(char *buf, size_t n, int64_t v)
{
    snprintf(buf, n, "%lld", (long long)v);
}

/* ---- the breaker ---- */

char *rd_reconcile_breaker(size_t planned, int max_per_run, size_t linked, size_t employees,
                           int64_t baseline, int64_t baseline_run)
{
    struct rd_buf b = {0};
    if ((long long)planned > (long long)max_per_run)
        rd_buf_printf(&b,
                      "it would deactivate %zu platform account%s, more than"
                      " policy.max_deactivations_per_run (%d)",
                      planned, planned == 1 ? "" : "s", max_per_run);
    if (linked > 0 && planned * 100 > linked * RD_RECONCILE_LINKED_PERCENT)
        rd_buf_printf(&b,
                      "%sit would deactivate %zu of %zu linked platform accounts (%.0f %%),"
                      " more than %d %%",
                      b.len ? "; " : "", planned, linked, 100.0 * (double)planned / (double)linked,
                      RD_RECONCILE_LINKED_PERCENT);
    if (baseline > 0 && (int64_t)employees * 100 < baseline * RD_RECONCILE_SHRINK_PERCENT)
        rd_buf_printf(&b,
                      "%sPersonio returned %zu employees, under %d %% of the %lld the last"
                      " good run (run %lld) saw",
                      b.len ? "; " : "", employees, RD_RECONCILE_SHRINK_PERCENT,
                      (long long)baseline, (long long)baseline_run);
    return b.data ? rd_buf_steal(&b) : NULL;
}

/* The last good run's employee count (the 80 % rule's baseline). */
static void load_baseline(struct run *r)
{
    char cid[24], err[256];
    i64(cid, sizeof(cid), r->s->connection_id);
    const char *params[1] = {cid};
    PGresult *res =
        rd_db_exec(r->s->db,
                   "SELECT employees, id FROM runs WHERE connection_id = $1::bigint"
                   " AND kind = 'reconcile' AND status = 'done' AND employees IS NOT NULL"
                   " ORDER BY finished_at DESC LIMIT 1",
                   1, params, err, sizeof(err));
    r->baseline = r->baseline_run = -1;
    if (res && PQntuples(res) == 1) {
        r->baseline = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        r->baseline_run = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
    }
    PQclear(res);
}

/* ---- passes ---- */

/* Employees the mirror knows that Personio no longer lists: the lifecycle decides. */
static int converge_gone(struct run *r)
{
    size_t n = rd_identity_known_people(r->s, NULL, 0);
    int64_t *ids = rd_calloc(n + 1, sizeof(*ids));
    n = rd_identity_known_people(r->s, ids, n);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct rd_personio_employee *e = NULL;
        bool gone = false;
        struct rd_http_error err = {0};
        if (rd_sync_employee(r->s, ids[i], &e, &gone, &err) != 0 || !gone)
            continue;
        if (rd_run_should_stop(r->s, &r->lease))
            rc = -1;
        else if (rd_person_gone(r->s, ids[i], &err) != 0)
            rd_sync_finding(r->s, "error", NULL, NULL, RD_RESULT_FAILED,
                            "Personio employee %lld is no longer in Personio; handling that failed:"
                            " %s",
                            (long long)ids[i], err.msg);
    }
    free(ids);
    return rc;
}

/*
 * Reads what the next chunk of people's convergence reads from the database, in a
 * statement per table instead of one per person, and takes their time-sync locks
 * (handlers/prefetch_internal.h). The windows are the ones rd_run_converge_one's
 * steps will ask for: the run's, from start_date on.
 */
static void prefetch_chunk(struct run *r, size_t first, bool time_sync)
{
    struct rd_sync *s = r->s;
    size_t n = r->emps->count - first;
    if (n > RD_PREFETCH_CHUNK)
        n = RD_PREFETCH_CHUNK;
    int64_t *pids = rd_calloc(n + 1, sizeof(*pids)), *uids = rd_calloc(n + 1, sizeof(*uids));
    for (size_t i = 0; i < n; i++) {
        pids[i] = r->emps->items[first + i].id;
        uids[i] = time_sync ? rd_identity_expected_moco(s, &r->emps->items[first + i]) : 0;
    }
    const char *start = rd_sync_start_date(s);
    const char *from = start && strcmp(r->from, start) < 0 ? start : r->from;
    struct rd_prefetch_chunk ch = {.personio_ids = pids,
                                   .npeople = n,
                                   .moco_user_ids = uids,
                                   .time_sync = time_sync,
                                   .attendance_from = from,
                                   .attendance_to = r->today,
                                   .absence_from = from,
                                   .absence_to = r->to,
                                   .stats = &r->stats.prefetch};
    rd_prefetch_begin(s, &ch);
    free(pids);
    free(uids);
}

/* The pass's people, a chunk at a time. */
static int converge_people(struct run *r)
{
    size_t in_a_row = 0;
    for (size_t i = 0; i < r->emps->count; i++) {
        const struct rd_personio_employee *e = &r->emps->items[i];
        if (rd_run_should_stop(r->s, &r->lease)) {
            snprintf(r->error, sizeof(r->error), "interrupted after %zu of %zu employees (%s)", i,
                     r->emps->count,
                     atomic_load(&r->lease.lost) ? "the run lost its lease"
                                                 : "shutdown or deadline");
            return -1;
        }
        /* A real run's counting pass only decides the breaker: time sync never
         * deactivates anyone, so it runs once, in the pass that counts. */
        bool time_sync = !(r->s->planning && !r->o->dry_run);
        if (i % RD_PREFETCH_CHUNK == 0)
            prefetch_chunk(r, i, time_sync);
        if (rd_run_converge_one(r->s, e, time_sync, r->today, r->from, r->to) != 0) {
            r->stats.errors++;
            if (++in_a_row >= MAX_ERRORS_IN_A_ROW) {
                const struct rd_finding *f = &r->s->findings[r->s->nfindings - 1];
                snprintf(r->error, sizeof(r->error),
                         "stopped after %zu people failed in a row (an upstream is probably"
                         " down); the last: %s",
                         in_a_row, f->detail);
                return -1;
            }
        } else {
            in_a_row = 0;
        }
        if (r->stats.writeback.failed_in_a_row >= MAX_ERRORS_IN_A_ROW) {
            const struct rd_finding *f = &r->s->findings[r->s->nfindings - 1];
            snprintf(r->error, sizeof(r->error),
                     "stopped after %zu platform writes failed in a row (the platform is"
                     " probably down); the last: %s",
                     r->stats.writeback.failed_in_a_row, f->detail);
            return -1;
        }
        rd_prefetch_tick(r->s);
    }
    return 0;
}

/* One pass over everyone. -1 with r->error when the run must stop. */
static int converge_all(struct run *r)
{
    int rc = converge_people(r);
    rd_prefetch_end(r->s); /* the chunk's locks go before anyone else's turn */
    if (rc != 0)
        return -1;
    if (converge_gone(r) != 0) {
        snprintf(r->error, sizeof(r->error),
                 "interrupted while handling people gone from Personio");
        return -1;
    }
    return 0;
}

static size_t count_planned_deactivations(const struct rd_sync *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nfindings; i++)
        n += strcmp(s->findings[i].kind, "deactivated") == 0 && s->findings[i].result &&
             strcmp(s->findings[i].result, RD_RESULT_PLANNED) == 0;
    return n;
}

/* Active platform accounts that belong to nobody in HR: reported, never touched. */
static void report_platform_only(struct run *r)
{
    const struct rd_scim_user_list *users = NULL;
    struct rd_http_error err = {0};
    if (!rd_sync_have_scim_users(r->s) || rd_sync_scim_users(r->s, &users, &err) != 0)
        return;
    struct rd_hmap *hr = rd_hmap_new(); /* HR e-mails and Personio ids */
    for (size_t i = 0; i < r->emps->count; i++) {
        const struct rd_personio_employee *e = &r->emps->items[i];
        char id[24];
        i64(id, sizeof(id), e->id);
        rd_hmap_put(hr, id, strlen(id), 1);
        if (e->email)
            rd_hmap_put_ci(hr, e->email, 1);
    }
    for (size_t i = 0; i < users->count; i++) {
        const struct rd_scim_user *u = &users->items[i];
        if (!u->active || !u->id || rd_identity_scim_owner(r->s, u->id))
            continue;
        bool owned =
            (u->user_name && rd_hmap_get_ci(hr, u->user_name, NULL)) ||
            (u->external_id && rd_hmap_get(hr, u->external_id, strlen(u->external_id), NULL));
        for (size_t k = 0; !owned && k < u->nemails; k++)
            owned = rd_hmap_get_ci(hr, u->emails[k], NULL);
        if (owned)
            continue;
        rd_sync_finding(r->s, "platform_only", u->user_name, NULL, RD_RESULT_NONE,
                        "%s%s%s has an active platform account (SCIM id %s) but is not an employee"
                        " in Personio; rosterd leaves it alone: check whether it should exist",
                        u->given_name ? u->given_name : "", u->given_name ? " " : "",
                        u->family_name ? u->family_name : (u->user_name ? u->user_name : "?"),
                        u->id);
    }
    rd_hmap_free(hr);
}

/*
 * The counting pass (dry, findings in memory only), the decision, and the pass whose
 * findings are the run's: the same dry pass for a dry run that did not trip, else a
 * second one for real (or dry with the hold) after the links are read again.
 */
static int passes(struct run *r)
{
    struct rd_sync *s = r->s;
    double t0 = rd_http_now();
    s->planning = true;
    rd_sync_set_dry_run(s, true);
    if (converge_all(r) != 0)
        return -1;
    r->planned_deactivations = count_planned_deactivations(s);
    r->linked_users = rd_identity_linked_count(s);
    r->stats.plan_seconds = rd_http_now() - t0;
    load_baseline(r);
    int max = rd_sync_policy_int(s, "max_deactivations_per_run", RD_RECONCILE_MAX_DEACTIVATIONS);
    r->held_reason = rd_reconcile_breaker(r->planned_deactivations, max, r->linked_users,
                                          r->emps->count, r->baseline, r->baseline_run);
    if (r->held_reason)
        rd_log_warn("run %lld: circuit breaker: %s", (long long)s->run_id, r->held_reason);
    s->planning = false;
    if (r->o->dry_run && !r->held_reason) {
        report_platform_only(r);
        return 0; /* the counting pass was this dry run */
    }
    double t1 = rd_http_now();
    rd_sync_findings_clear(s);
    r->stats.errors = 0;
    char dberr[256];
    if (rd_identity_preload(s, dberr, sizeof(dberr)) != 0) { /* drop the planned links */
        snprintf(r->error, sizeof(r->error), "reading the identity links: %s", dberr);
        return -1;
    }
    rd_sync_set_dry_run(s, r->o->dry_run);
    s->hold_destructive = r->held_reason != NULL;
    if (rd_identity_remember_all(s, r->emps, dberr, sizeof(dberr)) != 0) {
        snprintf(r->error, sizeof(r->error), "updating the people mirror: %s", dberr);
        return -1;
    }
    rd_identity_batch_pins(s, true);
    if (!r->o->dry_run)
        rd_writeback_enable(s, &r->stats.writeback);
    int rc = converge_all(r);
    rd_writeback_disable(s, rc == 0); /* a run that stopped drops what it had not sent */
    r->stats.errors += r->stats.writeback.failed;
    rd_identity_batch_pins(s, false);
    if (rd_identity_flush_pins(s, dberr, sizeof(dberr)) != 0 && rc == 0) {
        snprintf(r->error, sizeof(r->error), "recording the links: %s", dberr);
        rc = -1;
    }
    if (rc != 0)
        return -1;
    report_platform_only(r);
    r->stats.apply_seconds = rd_http_now() - t1;
    return 0;
}

/* ---- after the run ---- */

/* Which webhook stream should have brought a change of this kind, or NULL. */
const char *rd_reconcile_webhook_source(const char *kind)
{
    static const char *const personio[] = {
        "new_hire",        "deactivated",     "deactivation_scheduled", "team_changed",
        "manager_changed", "absence_created", "absence_removed",        NULL};
    static const char *const moco[] = {"attendance_pushed", "attendance_removed", NULL};
    for (size_t i = 0; personio[i]; i++)
        if (strcmp(kind, personio[i]) == 0)
            return "personio";
    for (size_t i = 0; moco[i]; i++)
        if (strcmp(kind, moco[i]) == 0)
            return "moco";
    return NULL;
}

/*
 * Staleness: the sweep itself made changes a webhook should have brought while that
 * source sent nothing for policy.stale_webhook_hours: the subscription is probably
 * broken. One warning (report) and alert per source. Not on a connection's first
 * completed run: what that one changes is the first alignment of systems that were
 * never in step (the managers a platform never had), not what webhooks missed.
 */
static void check_staleness(struct run *r)
{
    struct rd_sync *s = r->s;
    int hours = rd_sync_policy_int(s, "stale_webhook_hours", RD_RECONCILE_STALE_HOURS);
    if (hours <= 0 || r->o->dry_run || r->baseline_run < 0)
        return;
    const char *sources[2] = {"personio", "moco"};
    for (int k = 0; k < 2; k++) {
        /* The changes counted by kind, so that every kind shows ("6 absence_created,
         * 1 deactivated"), not the first few changes of the most frequent one. */
        size_t n = 0, nk = 0, counts[16] = {0};
        const char *seen[16];
        struct rd_buf kinds = {0};
        for (size_t i = 0; i < s->nfindings; i++) {
            const struct rd_finding *f = &s->findings[i];
            const char *src = rd_reconcile_webhook_source(f->kind);
            if (!src || strcmp(src, sources[k]) != 0 || !f->result ||
                (strcmp(f->result, RD_RESULT_DONE) != 0 && strcmp(f->result, RD_RESULT_HELD) != 0))
                continue;
            n++;
            size_t j = 0;
            while (j < nk && strcmp(seen[j], f->kind) != 0)
                j++;
            if (j == nk && nk < sizeof(seen) / sizeof(seen[0]))
                seen[nk++] = f->kind;
            if (j < nk)
                counts[j]++;
        }
        for (size_t j = 0; j < nk; j++)
            rd_buf_printf(&kinds, "%s%zu %s", j ? ", " : "", counts[j], seen[j]);
        char cid[24], h[16], err[256];
        i64(cid, sizeof(cid), s->connection_id);
        snprintf(h, sizeof(h), "%d", hours);
        const char *params[3] = {cid, sources[k], h};
        PGresult *res = n ? rd_db_exec(s->db,
                                       "SELECT EXISTS (SELECT 1 FROM events WHERE received_at >"
                                       " now() - make_interval(hours => $3::int)"
                                       " AND connection_id = $1::bigint AND source = $2)",
                                       3, params, err, sizeof(err))
                          : NULL;
        bool quiet = res && strcmp(PQgetvalue(res, 0, 0), "f") == 0;
        PQclear(res);
        if (quiet) {
            const char *name = k == 0 ? "Personio" : "MOCO";
            char *w = rd_asprintf(
                "No webhook from %s has reached rosterd for %s in the last %d hours, yet this run"
                " found %zu change%s a webhook should have brought (%s). Check the webhook"
                " subscription in %s (URL …/webhooks/%s/%s, enabled, secret) and"
                " `rosterctl events list --connection %s --source %s`.",
                name, s->connection_name, hours, n, n == 1 ? "" : "s", kinds.data, name,
                s->connection_name, sources[k], s->connection_name, sources[k]);
            json_object_array_add(r->warnings, json_object_new_string(w));
            struct rd_http_error aerr = {0};
            char *subject =
                rd_asprintf("rosterd: %s webhooks of %s look broken", name, s->connection_name);
            if (rd_sync_alert(s, subject, w, NULL, NULL, &aerr) != 0)
                rd_log_warn("run %lld: staleness alert not sent: %s", (long long)s->run_id,
                            aerr.msg);
            free(subject);
            free(w);
        }
        rd_buf_free(&kinds);
    }
}

static void alert_admins(struct run *r, const char *status, struct json_object *counts)
{
    struct rd_sync *s = r->s;
    if (r->o->dry_run)
        return;
    struct rd_buf t = {0}, sum = {0};
    rd_report_summary(counts, &sum);
    if (strcmp(status, "failed") == 0)
        rd_buf_printf(&t,
                      "Reconciliation of %s (run %lld) failed: %s. Findings up to then: %s."
                      " It runs again at the next slot; see `rosterctl report show %lld"
                      " --connection %s`.",
                      s->connection_name, (long long)s->run_id, r->error, sum.data,
                      (long long)s->run_id, s->connection_name);
    else if (strcmp(status, "held") == 0)
        rd_buf_printf(&t,
                      "Reconciliation of %s (run %lld) HELD its deactivations: %s. Nobody lost"
                      " access. Everything else was done: %s. Review: `rosterctl report show"
                      " %lld --connection %s`. Release what is still due: `rosterctl reconcile"
                      " approve %lld` (each held deactivation is checked against Personio"
                      " again first; protected users are never deactivated).",
                      s->connection_name, (long long)s->run_id, r->held_reason, sum.data,
                      (long long)s->run_id, s->connection_name, (long long)s->run_id);
    else
        rd_buf_printf(&t,
                      "Reconciliation of %s (run %lld) done: %s. Report: `rosterctl report"
                      " show %lld --connection %s`.",
                      s->connection_name, (long long)s->run_id, sum.data, (long long)s->run_id,
                      s->connection_name);
    char *subject = rd_asprintf("rosterd: reconciliation of %s %s", s->connection_name, status);
    struct rd_http_error err = {0};
    int rc;
    if (strcmp(status, "failed") == 0 && r->o->job_id) {
        /* a failing nightly job retries: tell the admins once, not at every attempt */
        char key[64];
        bool sent;
        snprintf(key, sizeof(key), "reconcile-failed:job:%lld", (long long)r->o->job_id);
        rc = rd_sync_alert_once(s, key, subject, t.data, NULL, NULL, &sent, &err);
    } else {
        rc = rd_sync_alert(s, subject, t.data, NULL, NULL, &err);
    }
    if (rc != 0)
        rd_log_warn("run %lld: summary not sent to the admins: %s", (long long)s->run_id, err.msg);
    free(subject);
    rd_buf_free(&t);
    rd_buf_free(&sum);
}

static struct json_object *stats_json(const struct run *r)
{
    const struct rd_reconcile_stats *st = &r->stats;
    struct json_object *o = json_object_new_object();
    struct {
        const char *k;
        size_t v;
    } sizes[] = {{"employees", st->employees},     {"time_offs", st->time_offs},
                 {"attendances", st->attendances}, {"platform_users", st->platform_users},
                 {"groups", st->groups},           {"delegations", st->delegations},
                 {"moco_users", st->moco_users},   {"presences", st->presences},
                 {"schedules", st->schedules},     {"errors", st->errors}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        json_object_object_add(o, sizes[i].k, json_object_new_int64((int64_t)sizes[i].v));
    json_object_object_add(o, "preload_seconds", json_object_new_double(st->preload_seconds));
    json_object_object_add(o, "plan_seconds", json_object_new_double(st->plan_seconds));
    json_object_object_add(o, "apply_seconds", json_object_new_double(st->apply_seconds));
    struct json_object *pf = json_object_new_object();
    json_object_object_add(pf, "chunks", json_object_new_int64((int64_t)st->prefetch.chunks));
    json_object_object_add(pf, "served", json_object_new_int64((int64_t)st->prefetch.served));
    json_object_object_add(pf, "read_alone",
                           json_object_new_int64((int64_t)st->prefetch.read_alone));
    json_object_object_add(pf, "released_early",
                           json_object_new_int64((int64_t)st->prefetch.released_early));
    json_object_object_add(o, "prefetch", pf);
    struct json_object *wb = json_object_new_object();
    json_object_object_add(wb, "writes", json_object_new_int64((int64_t)st->writeback.writes));
    json_object_object_add(wb, "failed", json_object_new_int64((int64_t)st->writeback.failed));
    json_object_object_add(wb, "batches", json_object_new_int64((int64_t)st->writeback.batches));
    json_object_object_add(o, "writeback", wb);
    json_object_object_add(o, "warnings", json_object_get(r->warnings));
    return o;
}

/* Records the outcome (fenced on the lease), tells the admins, sets the metric. */
static int finish(struct run *r, struct rd_reconcile_outcome *out)
{
    struct rd_sync *s = r->s;
    const char *status = r->error[0] ? "failed" : r->held_reason ? "held" : "done";
    char err[512];
    if (!r->error[0])
        check_staleness(r);
    if (rd_sync_flush(s, err, sizeof(err)) != 0 && !r->error[0])
        snprintf(r->error, sizeof(r->error), "recording the findings: %.400s", err),
            status = "failed";
    struct json_object *counts = rd_run_counts(s);
    struct json_object *fields = json_object_new_object();
    json_object_object_add(fields, "employees", json_object_new_int64((int64_t)r->stats.employees));
    json_object_object_add(fields, "linked_users", json_object_new_int64((int64_t)r->linked_users));
    json_object_object_add(fields, "planned_deactivations",
                           json_object_new_int64((int64_t)r->planned_deactivations));
    if (r->held_reason)
        json_object_object_add(fields, "held_reason", json_object_new_string(r->held_reason));
    if (r->error[0])
        json_object_object_add(fields, "error", json_object_new_string(r->error));
    json_object_object_add(fields, "stats", stats_json(r));
    int rc = rd_run_finish(s->db, &r->lease, status, counts, fields, err, sizeof(err));
    if (rc != 0) {
        snprintf(r->error, sizeof(r->error), "%s", err);
        status = "failed";
    }
    alert_admins(r, status, counts);
    if (rc == 0 && strcmp(status, "done") == 0 && !r->o->dry_run) {
        char merr[256];
        if (rd_report_update_metrics(s->db, merr, sizeof(merr)) != 0)
            rd_log_warn("run %lld: metrics not updated: %s", (long long)s->run_id, merr);
    }
    snprintf(out->status, sizeof(out->status), "%s", status);
    if (r->error[0])
        snprintf(out->message, sizeof(out->message), "%s", r->error);
    json_object_put(counts);
    json_object_put(fields);
    rd_log_info("run %lld of %s %s: %zu findings, %zu employees", (long long)s->run_id,
                s->connection_name, status, s->nfindings, r->stats.employees);
    return r->error[0] ? RD_RECONCILE_FAILED : RD_RECONCILE_OK;
}

/* Today and the pull window in the connection's time zone (SQL does the dates). */
static int local_window(struct run *r)
{
    char err[256];
    const char *params[3] = {rd_sync_timezone(r->s), NULL, NULL};
    char back[16], ahead[16];
    snprintf(back, sizeof(back), "%d", RD_RECONCILE_DAYS_BACK);
    snprintf(ahead, sizeof(ahead), "%d", RD_RECONCILE_DAYS_AHEAD);
    params[1] = back;
    params[2] = ahead;
    PGresult *res = rd_db_exec(r->s->db,
                               "SELECT d::text, (d - $2::int)::text, (d + $3::int)::text"
                               " FROM (SELECT (now() AT TIME ZONE $1)::date AS d) AS t",
                               3, params, err, sizeof(err));
    if (!res) {
        snprintf(r->error, sizeof(r->error), "local date: %s", err);
        return -1;
    }
    snprintf(r->today, sizeof(r->today), "%s", PQgetvalue(res, 0, 0));
    snprintf(r->from, sizeof(r->from), "%s", PQgetvalue(res, 0, 1));
    snprintf(r->to, sizeof(r->to), "%s", PQgetvalue(res, 0, 2));
    PQclear(res);
    return 0;
}

int rd_reconcile_run(PGconn *db, const struct rd_connection *conn,
                     const struct rd_reconcile_opts *o, struct rd_reconcile_outcome *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->status, sizeof(out->status), "failed");
    struct run r;
    memset(&r, 0, sizeof(r));
    r.o = o;
    int rc = rd_run_begin(db, conn->id, "reconcile", o, 0, &r.lease, out);
    if (rc != RD_RECONCILE_OK)
        return rc;
    double limit = o->max_seconds > 0 ? o->max_seconds : RD_RECONCILE_MAX_SECONDS;
    r.s = rd_sync_open_run(db, conn, r.lease.run_id, o->dry_run, &o->sync, rd_http_now() + limit,
                           o->stopping);
    r.warnings = json_object_new_array();
    rd_log_info("run %lld of %s started (%s%s)", (long long)r.lease.run_id, conn->name,
                o->trigger ? o->trigger : "operator", o->dry_run ? ", dry run" : "");
    struct rd_http_error err = {0};
    if (local_window(&r) == 0) {
        if (rd_reconcile_preload(r.s, r.today, r.from, r.to, &r.stats, &err) != 0) {
            snprintf(r.error, sizeof(r.error), "%s", err.msg);
            r.permanent = err.permanent;
        } else if (rd_sync_employees(r.s, &r.emps, &err) == 0) {
            passes(&r);
        }
    }
    out->permanent = r.permanent;
    rc = finish(&r, out);
    rd_run_lease_stop(&r.lease);
    free(r.held_reason);
    json_object_put(r.warnings);
    rd_sync_close(r.s);
#ifdef __GLIBC__
    /*
     * A run over 10,000 people frees ~30 MiB at once; glibc keeps freed memory in the
     * worker thread's arena, and the next night's run may land on another worker's, so
     * without this the daemon would hold two runs' worth. Give it back now.
     */
    malloc_trim(0);
#endif
    return rc;
}

/* ---- the job ---- */

static int reconcile_job(struct rd_job_ctx *ctx)
{
    struct json_object *dry = NULL;
    struct rd_reconcile_opts o = {
        .dry_run = ctx->payload && json_object_object_get_ex(ctx->payload, "dry_run", &dry) &&
                   json_object_get_boolean(dry),
        .trigger = "schedule",
        .job_id = ctx->job_id,
        .owner = ctx->instance,
        .sync = {.ca_file = ctx->ca_file, .smtp_url = ctx->smtp_url, .smtp_from = ctx->smtp_from},
        .stopping = ctx->stopping,
    };
    struct rd_reconcile_outcome out;
    int rc = rd_reconcile_run(ctx->db, ctx->conn, &o, &out);
    if (rc == RD_RECONCILE_OK) {
        snprintf(ctx->note, sizeof(ctx->note), "run %lld %s", (long long)out.run_id, out.status);
        return 0;
    }
    if (rc == RD_RECONCILE_BUSY) {
        snprintf(ctx->err, sizeof(ctx->err), "%s; trying again later", out.message);
        ctx->retry_after = out.retry_after;
        return -1;
    }
    if (out.run_id)
        snprintf(ctx->err, sizeof(ctx->err), "run %lld failed: %s", (long long)out.run_id,
                 out.message);
    else
        snprintf(ctx->err, sizeof(ctx->err), "%s", out.message);
    ctx->permanent = out.permanent;
    return -1;
}

static const struct rd_handler reconcile_handlers[] = {
    {.kind = "reconcile", .run = reconcile_job, .needs_connection = true},
};

const struct rd_capability rd_cap_reconcile = {
    .name = "reconcile",
    .handlers = reconcile_handlers,
    .nhandlers = sizeof(reconcile_handlers) / sizeof(reconcile_handlers[0]),
};
