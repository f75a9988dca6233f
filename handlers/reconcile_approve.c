/*
 * Releasing what a run's circuit breaker held (rosterctl reconcile approve RUN_ID):
 * every person of a deactivation_held finding is read again from Personio and
 * converged without the hold, so the deactivations that are still due happen and the
 * ones that are not (a revoked termination, a corrected list) do not. It is a run of
 * its own (kind "approval", same lease), so it never overlaps a nightly run.
 */
#include "reconcile_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "rosterd/connection.h"
#include "rosterd/db.h"
#include "rosterd/identity.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/person.h"
#include "rosterd/report.h"

static void i64(char *buf, size_t n, int64_t v)
{
    snprintf(buf, n, "%lld", (long long)v);
}

int rd_reconcile_run_connection(PGconn *db, int64_t run_id, char *name, size_t namelen, char *err,
                                size_t errlen)
{
    char id[24];
    i64(id, sizeof(id), run_id);
    const char *params[1] = {id};
    PGresult *res =
        rd_db_exec(db,
                   "SELECT c.name FROM runs r JOIN connections c ON c.id = r.connection_id"
                   " WHERE r.id = $1::bigint",
                   1, params, err, errlen);
    if (!res)
        return -1;
    int rc = 0;
    if (PQntuples(res) == 1)
        snprintf(name, namelen, "%s", PQgetvalue(res, 0, 0));
    else
        rc = -1, snprintf(err, errlen, "run %s not found", id);
    PQclear(res);
    return rc;
}

/* Checks that run_id is a held real run of conn; 0, or -1 with out->message. */
static int check_held(PGconn *db, const struct rd_connection *conn, int64_t run_id,
                      struct rd_reconcile_outcome *out)
{
    char id[24], err[256];
    i64(id, sizeof(id), run_id);
    const char *params[1] = {id};
    PGresult *res = rd_db_exec(
        db,
        "SELECT r.status, r.kind, r.dry_run, r.connection_id, coalesce(r.approved_by, ''),"
        " coalesce(to_char(r.approved_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'), ''),"
        " coalesce(r.approval_run_id, 0) FROM runs r WHERE r.id = $1::bigint",
        1, params, err, sizeof(err));
    int rc = -1;
    if (!res) {
        snprintf(out->message, sizeof(out->message), "runs: %s", err);
    } else if (PQntuples(res) != 1 || strtoll(PQgetvalue(res, 0, 3), NULL, 10) != conn->id) {
        snprintf(out->message, sizeof(out->message), "run %s not found", id);
    } else if (strcmp(PQgetvalue(res, 0, 1), "reconcile") != 0) {
        snprintf(out->message, sizeof(out->message),
                 "run %s is an approval, not a reconciliation: nothing is held there", id);
    } else if (strcmp(PQgetvalue(res, 0, 2), "t") == 0) {
        snprintf(out->message, sizeof(out->message),
                 "run %s was a dry run: it changed nothing and holds nothing; run `rosterctl"
                 " reconcile run --connection %s` for real",
                 id, conn->name);
    } else if (strcmp(PQgetvalue(res, 0, 0), "held") != 0) {
        if (PQgetvalue(res, 0, 4)[0])
            snprintf(out->message, sizeof(out->message),
                     "run %s was already released by %s at %s UTC (run %s)", id,
                     PQgetvalue(res, 0, 4), PQgetvalue(res, 0, 5), PQgetvalue(res, 0, 6));
        else
            snprintf(out->message, sizeof(out->message),
                     "run %s is %s, not held: there is nothing to approve", id,
                     PQgetvalue(res, 0, 0));
    } else {
        rc = 0;
    }
    PQclear(res);
    return rc;
}

/* Takes the held run for this approval (one approval at a time, a failed one may be redone). */
static int claim(PGconn *db, int64_t held, int64_t approval, struct rd_reconcile_outcome *out)
{
    char h[24], a[24], err[256];
    i64(h, sizeof(h), held);
    i64(a, sizeof(a), approval);
    const char *params[2] = {h, a};
    PGresult *res =
        rd_db_exec(db,
                   "UPDATE runs SET approval_run_id = $2::bigint WHERE id = $1::bigint"
                   " AND status = 'held' AND (approval_run_id IS NULL OR approval_run_id"
                   "  IN (SELECT id FROM runs WHERE status = 'failed'))",
                   2, params, err, sizeof(err));
    int rc = res && strcmp(PQcmdTuples(res), "1") == 0 ? 0 : -1;
    if (rc != 0)
        snprintf(out->message, sizeof(out->message),
                 res ? "run %s is being released already" : "%s", res ? h : err);
    PQclear(res);
    return rc;
}

/* The e-mails of the run's held deactivations, once each. */
static PGresult *held_people(PGconn *db, int64_t held, char *err, size_t errlen)
{
    char h[24];
    i64(h, sizeof(h), held);
    const char *params[1] = {h};
    return rd_db_exec(db,
                      "SELECT email FROM (SELECT DISTINCT ON (lower(email)) email, id FROM findings"
                      " WHERE run_id = $1::bigint AND kind = 'deactivation_held' AND email IS NOT"
                      " NULL ORDER BY lower(email), id) AS h ORDER BY id",
                      1, params, err, errlen);
}

static int64_t person_by_email(struct rd_sync *s, const char *email)
{
    char cid[24], err[256];
    i64(cid, sizeof(cid), s->connection_id);
    const char *params[2] = {cid, email};
    PGresult *res = rd_db_exec(s->db,
                               "SELECT personio_id FROM people WHERE connection_id = $1::bigint"
                               " AND lower(email) = lower($2) ORDER BY seen_at DESC LIMIT 1",
                               2, params, err, sizeof(err));
    int64_t id = res && PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return id;
}

/* What converging one held person did: deactivated, scheduled, not_due, protected, error. */
static const char *release_one(struct rd_sync *s, const char *email, const char *today)
{
    if (rd_sync_is_protected(s, email)) {
        rd_sync_finding(s, "deactivated", email, NULL, RD_RESULT_SKIPPED,
                        "%s is a protected user (policy.protected_users): never deactivated, also"
                        " not on approval",
                        email);
        return "protected";
    }
    int64_t id = person_by_email(s, email);
    struct rd_http_error err = {0};
    if (!id) {
        rd_sync_finding(s, "error", email, NULL, RD_RESULT_FAILED,
                        "%s is not in the people mirror any more; nothing was changed", email);
        return "error";
    }
    const struct rd_personio_employee *e = NULL;
    bool gone = false;
    size_t before = s->nfindings;
    int rc = rd_sync_employee(s, id, &e, &gone, &err);
    if (rc == 0 && gone)
        rc = rd_person_gone(s, id, &err);
    else if (rc == 0)
        rc = rd_person_converge(s, e, &err);
    if (rc != 0) {
        rd_sync_finding(s, "error", email, NULL, RD_RESULT_FAILED,
                        "releasing the held deactivation of %s failed: %s; nothing was changed for"
                        " them, approve again to retry",
                        email, err.msg);
        return "error";
    }
    const char *what = "not_due";
    for (size_t i = before; i < s->nfindings; i++) {
        const struct rd_finding *f = &s->findings[i];
        if (!f->email || strcasecmp(f->email, email) != 0 || !f->result)
            continue;
        if (strcmp(f->kind, "deactivated") == 0 && strcmp(f->result, RD_RESULT_DONE) == 0)
            what = "deactivated";
        else if (strcmp(f->kind, "deactivation_scheduled") == 0 && strcmp(what, "not_due") == 0)
            what = "scheduled";
    }
    return what;
}

/* Converges every held person; fills released [{email, outcome}] and the tallies. */
static int release_all(struct rd_sync *s, int64_t held, const struct rd_run_lease *lease,
                       struct json_object *released, char *err, size_t errlen)
{
    char dberr[256], today[11] = "";
    PGresult *res = held_people(s->db, held, err, errlen);
    if (!res)
        return -1;
    const char *tz[1] = {rd_sync_timezone(s)};
    PGresult *d = rd_db_exec(s->db, "SELECT (now() AT TIME ZONE $1)::date::text", 1, tz, dberr,
                             sizeof(dberr));
    if (d)
        snprintf(today, sizeof(today), "%s", PQgetvalue(d, 0, 0));
    PQclear(d);
    int rc = 0;
    if (rd_identity_preload(s, dberr, sizeof(dberr)) != 0) {
        snprintf(err, errlen, "reading the identity links: %s", dberr);
        rc = -1;
    }
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        if (rd_run_should_stop(s, lease)) {
            snprintf(err, errlen, "interrupted after %d of %d held people", i, PQntuples(res));
            rc = -1;
            break;
        }
        const char *email = PQgetvalue(res, i, 0);
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "email", json_object_new_string(email));
        json_object_object_add(o, "outcome", json_object_new_string(release_one(s, email, today)));
        json_object_array_add(released, o);
    }
    PQclear(res);
    return rc;
}

static void tell_admins(struct rd_sync *s, int64_t held, const char *who,
                        struct json_object *released)
{
    size_t n = json_object_array_length(released), done = 0, not_due = 0, other = 0;
    for (size_t i = 0; i < n; i++) {
        const char *o = json_object_get_string(
            json_object_object_get(json_object_array_get_idx(released, i), "outcome"));
        if (strcmp(o, "deactivated") == 0)
            done++;
        else if (strcmp(o, "not_due") == 0 || strcmp(o, "scheduled") == 0)
            not_due++;
        else
            other++;
    }
    char *text = rd_asprintf("%s released the deactivations held by run %lld of %s (approval run"
                             " %lld): %zu deactivated, %zu no longer due, %zu skipped or failed."
                             " Report: `rosterctl report show %lld --connection %s`.",
                             who, (long long)held, s->connection_name, (long long)s->run_id, done,
                             not_due, other, (long long)s->run_id, s->connection_name);
    char *subject = rd_asprintf("rosterd: held deactivations of %s released", s->connection_name);
    struct rd_http_error err = {0};
    if (rd_sync_alert(s, subject, text, NULL, NULL, &err) != 0)
        rd_log_warn("approval run %lld: alert not sent: %s", (long long)s->run_id, err.msg);
    free(subject);
    free(text);
}

static int mark_released(PGconn *db, int64_t held, int64_t approval, const char *who, char *err,
                         size_t errlen)
{
    char h[24], a[24];
    i64(h, sizeof(h), held);
    i64(a, sizeof(a), approval);
    const char *params[3] = {h, a, who};
    return rd_db_run(db,
                     "UPDATE runs SET status = 'done', approved_at = now(), approved_by = $3"
                     " WHERE id = $1::bigint AND status = 'held' AND approval_run_id = $2::bigint",
                     3, params, err, errlen);
}

int rd_reconcile_approve(PGconn *db, const struct rd_connection *conn, int64_t run_id,
                         const char *who, const struct rd_reconcile_opts *o,
                         struct rd_reconcile_outcome *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->status, sizeof(out->status), "failed");
    if (check_held(db, conn, run_id, out) != 0)
        return RD_RECONCILE_FAILED;
    struct rd_reconcile_opts ao = *o;
    ao.dry_run = false;
    ao.trigger = "approval";
    struct rd_run_lease lease;
    int rc = rd_run_begin(db, conn->id, "approval", &ao, run_id, &lease, out);
    if (rc != RD_RECONCILE_OK)
        return rc;
    struct rd_sync *s = rd_sync_open_run(db, conn, lease.run_id, false, &o->sync,
                                         rd_http_now() + RD_RECONCILE_MAX_SECONDS, o->stopping);
    struct json_object *released = json_object_new_array();
    char err[512] = "";
    int failed = claim(db, run_id, lease.run_id, out);
    if (failed)
        snprintf(err, sizeof(err), "%s", out->message);
    else
        failed = release_all(s, run_id, &lease, released, err, sizeof(err));
    char ferr[256];
    if (rd_sync_flush(s, ferr, sizeof(ferr)) != 0 && !failed)
        failed = -1, snprintf(err, sizeof(err), "recording the findings: %s", ferr);
    struct json_object *fields = json_object_new_object(), *stats = json_object_new_object();
    json_object_object_add(stats, "released", json_object_get(released));
    json_object_object_add(stats, "approved_by", json_object_new_string(who));
    json_object_object_add(fields, "stats", stats);
    if (failed)
        json_object_object_add(fields, "error", json_object_new_string(err));
    struct json_object *counts = rd_run_counts(s);
    if (rd_run_finish(db, &lease, failed ? "failed" : "done", counts, fields, ferr, sizeof(ferr)) !=
            0 &&
        !failed)
        failed = -1, snprintf(err, sizeof(err), "%s", ferr);
    if (!failed && mark_released(db, run_id, lease.run_id, who, ferr, sizeof(ferr)) != 0)
        failed = -1,
        snprintf(err, sizeof(err), "marking run %lld released: %s", (long long)run_id, ferr);
    if (!failed)
        tell_admins(s, run_id, who, released);
    snprintf(out->status, sizeof(out->status), "%s", failed ? "failed" : "done");
    if (failed)
        snprintf(out->message, sizeof(out->message), "%s", err);
    json_object_put(counts);
    json_object_put(fields);
    json_object_put(released);
    rd_run_lease_stop(&lease);
    rd_sync_close(s);
    return failed ? RD_RECONCILE_FAILED : RD_RECONCILE_OK;
}
