/*
 * A reconciliation run's row in the runs table (sql/008): begin (one running run per
 * connection, a lapsed one failed first), the lease a heartbeat thread renews on a
 * connection of its own so that even a run stuck in a long upstream wait keeps it,
 * and the fenced finish. Also the convergence of one person, which the run and the
 * approval of held actions share.
 */
#include "reconcile_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "rosterd/db.h"
#include "rosterd/identity.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/person.h"

static void i64(char *buf, size_t n, int64_t v)
{
    snprintf(buf, n, "%lld", (long long)v);
}

/* ---- lease ---- */

PGconn *rd_run_clone_conn(PGconn *db, const char *application_name, char *err, size_t errlen)
{
    PQconninfoOption *info = PQconninfo(db);
    if (!info) {
        snprintf(err, errlen, "cannot read the connection parameters");
        return NULL;
    }
    size_t n = 0;
    for (PQconninfoOption *o = info; o->keyword; o++)
        n++;
    const char **kw = rd_calloc(n + 2, sizeof(char *));
    const char **val = rd_calloc(n + 2, sizeof(char *));
    size_t k = 0;
    for (PQconninfoOption *o = info; o->keyword; o++) {
        if (!o->val || strcmp(o->keyword, "application_name") == 0)
            continue;
        kw[k] = o->keyword;
        val[k++] = o->val;
    }
    kw[k] = "application_name";
    val[k] = application_name;
    PGconn *c = PQconnectdbParams(kw, val, 0);
    free(kw);
    free(val);
    PQconninfoFree(info);
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(err, errlen, "%s", PQerrorMessage(c));
        size_t len = strlen(err);
        while (len > 0 && (err[len - 1] == '\n' || err[len - 1] == ' '))
            err[--len] = '\0';
        PQfinish(c);
        return NULL;
    }
    return c;
}

static const char HEARTBEAT_SQL[] =
    "UPDATE runs SET lease_until = now() + make_interval(secs => $3::int), heartbeat_at = now()"
    " WHERE id = $1::bigint AND owner = $2 AND status = 'running'";

static void *heartbeat_main(void *arg)
{
    struct rd_run_lease *l = arg;
    char id[24], secs[16], err[256];
    i64(id, sizeof(id), l->run_id);
    snprintf(secs, sizeof(secs), "%d", RD_RECONCILE_LEASE_SECONDS);
    const char *params[3] = {id, l->owner, secs};
    pthread_mutex_lock(&l->mu);
    while (!atomic_load(&l->stop)) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += RD_RECONCILE_HEARTBEAT_SECONDS;
        pthread_cond_timedwait(&l->cv, &l->mu, &until);
        if (atomic_load(&l->stop))
            break;
        pthread_mutex_unlock(&l->mu);
        if (PQstatus(l->db) != CONNECTION_OK)
            PQreset(l->db);
        PGresult *res = rd_db_exec(l->db, HEARTBEAT_SQL, 3, params, err, sizeof(err));
        if (!res) {
            rd_log_warn("run %s: renewing the lease failed: %s", id, err);
        } else if (strcmp(PQcmdTuples(res), "0") == 0) {
            rd_log_error("run %s: lost its lease (marked failed by another process); stopping", id);
            atomic_store(&l->lost, true);
        }
        PQclear(res);
        pthread_mutex_lock(&l->mu);
        if (atomic_load(&l->lost))
            break;
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

void rd_run_lease_stop(struct rd_run_lease *l)
{
    if (l->started) {
        pthread_mutex_lock(&l->mu);
        atomic_store(&l->stop, true);
        pthread_cond_signal(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
        l->started = false;
    }
    if (l->db)
        PQfinish(l->db);
    l->db = NULL;
}

bool rd_run_should_stop(const struct rd_sync *s, const struct rd_run_lease *lease)
{
    return rd_sync_should_stop(s) || atomic_load(&lease->lost);
}

int rd_reconcile_reap(PGconn *db, int64_t connection_id, char *err, size_t errlen)
{
    char cid[24];
    i64(cid, sizeof(cid), connection_id);
    const char *params[1] = {cid};
    PGresult *res = rd_db_exec(
        db,
        "UPDATE runs SET status = 'failed', finished_at = now(),"
        " error = 'interrupted: ' || owner || ' stopped renewing the run''s lease at '"
        "  || to_char(lease_until AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC'"
        "  || ' (the process was killed or lost the database); findings up to then are kept'"
        " WHERE status = 'running' AND lease_until < now()"
        "  AND ($1::bigint = 0 OR connection_id = $1::bigint)",
        1, params, err, errlen);
    if (!res)
        return -1;
    int n = atoi(PQcmdTuples(res));
    PQclear(res);
    if (n > 0)
        rd_log_warn("marked %d reconciliation run%s failed: their lease lapsed", n,
                    n == 1 ? "" : "s");
    return n;
}

/* Explains the running run that keeps a new one from starting; true when it is ours to fail. */
static bool describe_running(PGconn *db, const char *cid, int64_t job_id,
                             struct rd_reconcile_outcome *out)
{
    char err[256];
    const char *params[1] = {cid};
    PGresult *res = rd_db_exec(db,
                               "SELECT id, owner, coalesce(job_id, 0),"
                               " to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'),"
                               " greatest(1, ceil(extract(epoch FROM lease_until - now())))::int"
                               " FROM runs WHERE connection_id = $1::bigint AND status = 'running'",
                               1, params, err, sizeof(err));
    bool ours = false;
    if (res && PQntuples(res) == 1) {
        int64_t other_job = strtoll(PQgetvalue(res, 0, 2), NULL, 10);
        ours = job_id && other_job == job_id;
        snprintf(out->message, sizeof(out->message),
                 "run %s of this connection is running (on %s since %s UTC); one run at a time",
                 PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 3));
        out->retry_after = atoi(PQgetvalue(res, 0, 4)) + RD_RECONCILE_HEARTBEAT_SECONDS;
        if (ours) {
            const char *p2[1] = {PQgetvalue(res, 0, 0)};
            if (rd_db_run(db,
                          "UPDATE runs SET status = 'failed', finished_at = now(),"
                          " error = 'interrupted: the job running it was given up by its worker"
                          " (lease lost) and started again' WHERE id = $1::bigint"
                          " AND status = 'running'",
                          1, p2, err, sizeof(err)) != 0)
                ours = false;
        }
    } else {
        snprintf(out->message, sizeof(out->message), "another run of this connection is running");
        out->retry_after = RD_RECONCILE_LEASE_SECONDS;
    }
    PQclear(res);
    return ours;
}

int rd_run_begin(PGconn *db, int64_t connection_id, const char *kind,
                 const struct rd_reconcile_opts *o, int64_t approves_run_id,
                 struct rd_run_lease *lease, struct rd_reconcile_outcome *out)
{
    char cid[24], job[24], appr[24], secs[16], err[512];
    memset(lease, 0, sizeof(*lease));
    i64(cid, sizeof(cid), connection_id);
    i64(job, sizeof(job), o->job_id);
    i64(appr, sizeof(appr), approves_run_id);
    snprintf(secs, sizeof(secs), "%d", RD_RECONCILE_LEASE_SECONDS);
    snprintf(lease->owner, sizeof(lease->owner), "%s", o->owner ? o->owner : "unknown");
    if (rd_reconcile_reap(db, connection_id, err, sizeof(err)) < 0) {
        snprintf(out->message, sizeof(out->message), "runs: %.400s", err);
        return RD_RECONCILE_FAILED;
    }
    const char *params[8] = {
        cid, kind, o->dry_run ? "t" : "f", o->trigger ? o->trigger : "operator",
        job, appr, lease->owner,           secs};
    for (int attempt = 0; attempt < 2; attempt++) {
        PGresult *res = PQexecParams(
            db,
            "INSERT INTO runs (connection_id, kind, dry_run, trigger, job_id, approves_run_id,"
            " owner, lease_until) VALUES ($1::bigint, $2, $3::boolean, $4, nullif($5::bigint, 0),"
            " nullif($6::bigint, 0), $7, now() + make_interval(secs => $8::int)) RETURNING id",
            8, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            lease->run_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
            out->run_id = lease->run_id;
            PQclear(res);
            break;
        }
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        bool busy = state && strcmp(state, "23505") == 0;
        if (!busy)
            rd_db_error(db, res, err, sizeof(err));
        PQclear(res);
        if (!busy) {
            snprintf(out->message, sizeof(out->message), "cannot record the run: %.400s", err);
            return RD_RECONCILE_FAILED;
        }
        if (attempt == 1 || !describe_running(db, cid, o->job_id, out))
            return RD_RECONCILE_BUSY;
    }
    lease->db = rd_run_clone_conn(db, "rosterd-run-lease", err, sizeof(err));
    if (!lease->db) {
        /* Without a heartbeat the lease would lapse mid-run and let a second run start. */
        char id[24], dberr[256];
        i64(id, sizeof(id), lease->run_id);
        const char *p1[1] = {id};
        if (rd_db_run(db,
                      "UPDATE runs SET status = 'failed', finished_at = now(), error = 'no database"
                      " connection for the lease heartbeat' WHERE id = $1::bigint",
                      1, p1, dberr, sizeof(dberr)) != 0)
            rd_log_warn("run %s: %s", id, dberr);
        snprintf(out->message, sizeof(out->message), "no database connection for the lease: %.400s",
                 err);
        return RD_RECONCILE_FAILED;
    }
    pthread_mutex_init(&lease->mu, NULL);
    pthread_cond_init(&lease->cv, NULL);
    if (pthread_create(&lease->thread, NULL, heartbeat_main, lease) != 0)
        abort();
    lease->started = true;
    return RD_RECONCILE_OK;
}

struct json_object *rd_run_counts(const struct rd_sync *s)
{
    struct json_object *c = json_object_new_object();
    for (size_t i = 0; i < s->nfindings; i++) {
        struct json_object *v = NULL;
        const char *k = s->findings[i].kind;
        if (json_object_object_get_ex(c, k, &v))
            json_object_set_int64(v, json_object_get_int64(v) + 1);
        else
            json_object_object_add(c, k, json_object_new_int64(1));
    }
    return c;
}

int rd_run_finish(PGconn *db, struct rd_run_lease *lease, const char *status,
                  struct json_object *counts, struct json_object *fields, char *err, size_t errlen)
{
    rd_run_lease_stop(lease);
    char id[24];
    i64(id, sizeof(id), lease->run_id);
    const char *params[5] = {id, lease->owner, status,
                             json_object_to_json_string_ext(counts, JSON_C_TO_STRING_PLAIN),
                             json_object_to_json_string_ext(fields, JSON_C_TO_STRING_PLAIN)};
    PGresult *res =
        rd_db_exec(db,
                   "UPDATE runs SET status = $3, finished_at = now(), counts = $4::jsonb,"
                   " employees = ($5::jsonb ->> 'employees')::int,"
                   " linked_users = ($5::jsonb ->> 'linked_users')::int,"
                   " planned_deactivations = ($5::jsonb ->> 'planned_deactivations')::int,"
                   " held_reason = $5::jsonb ->> 'held_reason', error = $5::jsonb ->> 'error',"
                   " stats = coalesce($5::jsonb -> 'stats', '{}'::jsonb)"
                   " WHERE id = $1::bigint AND owner = $2 AND status = 'running'",
                   5, params, err, errlen);
    if (!res)
        return -1;
    bool ours = strcmp(PQcmdTuples(res), "1") == 0;
    PQclear(res);
    if (!ours) {
        snprintf(err, errlen,
                 "run %s lost its lease before it finished (another process marked it"
                 " failed)",
                 id);
        return -1;
    }
    return 0;
}

/* ---- one person ---- */

static void step_failed(struct rd_sync *s, const struct rd_personio_employee *e, const char *step,
                        const struct rd_http_error *err)
{
    rd_sync_finding(s, "error", e->email, NULL, RD_RESULT_FAILED,
                    "%s %s (Personio %lld): %s failed: %s; the run went on with the others and the"
                    " next run tries again",
                    e->first_name ? e->first_name : "", e->last_name ? e->last_name : "",
                    (long long)e->id, step, err->msg[0] ? err->msg : "unknown error");
}

int rd_run_converge_one(struct rd_sync *s, const struct rd_personio_employee *e, bool time_sync,
                        const char *today, const char *from, const char *to)
{
    struct rd_http_error err = {0};
    int failed = 0;
    if (rd_person_converge(s, e, &err) != 0) {
        step_failed(s, e, "the lifecycle step (link, onboarding, movers, deactivation)", &err);
        return -1; /* without the links the other steps would act on a guess */
    }
    int64_t moco = time_sync ? rd_identity_pinned_moco(s, e->id) : 0;
    memset(&err, 0, sizeof(err));
    if (moco && rd_attendance_converge(s, e, moco, from, today, &err) != 0) {
        step_failed(s, e, "the attendance push", &err);
        failed = -1;
    }
    memset(&err, 0, sizeof(err));
    if (moco && rd_absence_converge(s, e, moco, from, to, &err) != 0) {
        step_failed(s, e, "the absence sync", &err);
        failed = -1;
    }
    return failed;
}
