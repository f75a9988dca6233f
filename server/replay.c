/*
 * Operator replay and the job listing, for rosterctl and /admin/ routes. A replay
 * detaches events from their old job, notes a "replayed" row in their attempt
 * log (earlier rows stay), and routes them again through rd_jobs_for_events,
 * the same function the intake trigger uses, all in one transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "rosterd/db.h"
#include "rosterd/events.h"
#include "rosterd/mem.h"
#include "rosterd/replay.h"

#define ISO_UTC(col) RD_SQL_ISO(col)

/* $1: the event ids to replay, already locked by the caller's transaction. */
static const char *const REPLAY_STEPS[] = {
    /* Old links go; the jobs they leave empty are retired to the history. */
    "WITH d AS (DELETE FROM job_events WHERE event_id = ANY($1::bigint[]) RETURNING job_id)"
    " SELECT coalesce(array_agg(DISTINCT job_id), '{}')::text FROM d",
    NULL, /* retire step, takes the old job ids: see RETIRE_SQL */
    "INSERT INTO event_attempts (event_id, job_id, attempt, started_at, finished_at, outcome,"
    "  instance)"
    " SELECT id, NULL, attempts, now(), now(), 'replayed', 'replay' FROM events"
    " WHERE id = ANY($1::bigint[])",
    "UPDATE events SET status = 'pending', last_error = NULL, note = NULL, updated_at = now()"
    " WHERE id = ANY($1::bigint[])",
    "SELECT rd_jobs_for_events(ARRAY(SELECT ROW(id, connection_id, source, event_type,"
    "  subject)::rd_event_ref FROM events WHERE id = ANY($1::bigint[]) ORDER BY id))",
};

static const char RETIRE_SQL[] =
    "WITH d AS ("
    "  DELETE FROM jobs j WHERE j.id = ANY($1::bigint[]) AND j.state IN ('failed', 'dead')"
    "    AND j.unique_key IS NULL"
    "    AND NOT EXISTS (SELECT 1 FROM job_events je WHERE je.job_id = j.id)"
    "  RETURNING *"
    ")"
    "INSERT INTO jobs_history (id, kind, key, connection_id, subject, unique_key, payload, state,"
    "  attempts, last_error, note, created_at, run_at, started_at, finished_at)"
    " SELECT id, kind, key, connection_id, subject, unique_key, payload, 'replayed', attempts,"
    "  last_error, note, created_at, run_at, started_at, now() FROM d"
    " ON CONFLICT (id) DO NOTHING";

static void rollback(PGconn *db)
{
    PQclear(PQexec(db, "ROLLBACK"));
}

/* Runs the replay steps for the locked events in ids_text (a bigint[] literal). */
static int replay_locked(PGconn *db, const char *ids_text, char *err, size_t errlen)
{
    const char *params[1] = {ids_text};
    PGresult *res = rd_db_exec(db, REPLAY_STEPS[0], 1, params, err, errlen);
    if (!res)
        return -1;
    char *old_jobs = rd_strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    const char *rparams[1] = {old_jobs};
    int rc = rd_db_run(db, RETIRE_SQL, 1, rparams, err, errlen);
    free(old_jobs);
    for (size_t i = 2; rc == 0 && i < sizeof REPLAY_STEPS / sizeof REPLAY_STEPS[0]; i++)
        rc = rd_db_run(db, REPLAY_STEPS[i], 1, params, err, errlen);
    return rc;
}

static struct json_object *result_new(bool dry_run, struct json_object *events,
                                      struct json_object *skipped)
{
    struct json_object *r = json_object_new_object();
    json_object_object_add(r, "dry_run", json_object_new_boolean(dry_run));
    json_object_object_add(r, "count",
                           json_object_new_int64((int64_t)json_object_array_length(events)));
    json_object_object_add(r, "events", events);
    json_object_object_add(r, "skipped", skipped);
    return r;
}

/*
 * Locks the open jobs of the selected events first (the claim locks jobs before it
 * touches events), then the events themselves with their status checked again, so
 * no event is replayed while its job is being claimed.
 */
static PGresult *lock_selection(PGconn *db, const char *select_ids, int nparams,
                                const char *const *params, char *err, size_t errlen)
{
    char *sql = rd_asprintf("SELECT j.id FROM jobs j WHERE j.id IN (SELECT je.job_id FROM"
                            " job_events je WHERE je.event_id IN (%s)) ORDER BY j.id FOR UPDATE",
                            select_ids);
    int rc = rd_db_run(db, sql, nparams, params, err, errlen);
    free(sql);
    if (rc != 0)
        return NULL;
    sql = rd_asprintf("SELECT e.id, " RD_SQL_EVENT_STATUS " FROM events e WHERE e.id IN (%s)"
                      " ORDER BY e.id FOR UPDATE OF e",
                      select_ids);
    PGresult *res = rd_db_exec(db, sql, nparams, params, err, errlen);
    free(sql);
    return res;
}

int rd_replay_ids(PGconn *db, const int64_t *ids, size_t n, bool dry_run,
                  struct json_object **result, char *err, size_t errlen)
{
    *result = NULL;
    char *arr = rd_db_int8_array(ids, n);
    const char *params[1] = {arr};
    static const char SEL[] = "SELECT id FROM events WHERE id = ANY($1::bigint[])";
    PGresult *res = NULL;
    int rc = -1;
    if (!dry_run && rd_db_run(db, "BEGIN", 0, NULL, err, errlen) != 0)
        goto out;
    res = dry_run ? rd_db_exec(db,
                               "SELECT e.id, " RD_SQL_EVENT_STATUS
                               " FROM events e WHERE e.id = ANY($1::bigint[])",
                               1, params, err, errlen)
                  : lock_selection(db, SEL, 1, params, err, errlen);
    if (!res)
        goto out;
    struct json_object *events = json_object_new_array();
    struct json_object *skipped = json_object_new_array();
    struct rd_buf chosen = {0};
    rd_buf_putc(&chosen, '{');
    for (size_t i = 0; i < n; i++) {
        const char *status = "missing";
        for (int r = 0; r < PQntuples(res); r++)
            if (strtoll(PQgetvalue(res, r, 0), NULL, 10) == ids[i])
                status = PQgetvalue(res, r, 1);
        bool ok = !strcmp(status, "failed") || !strcmp(status, "dead") || !strcmp(status, "done");
        bool dup = false;
        for (size_t k = 0; k < i; k++)
            dup = dup || ids[k] == ids[i];
        if (dup)
            continue;
        if (ok) {
            json_object_array_add(events, json_object_new_int64(ids[i]));
            rd_buf_printf(&chosen, "%s%lld", chosen.len > 1 ? "," : "", (long long)ids[i]);
        } else {
            struct json_object *s = json_object_new_object();
            json_object_object_add(s, "id", json_object_new_int64(ids[i]));
            json_object_object_add(s, "status", json_object_new_string(status));
            json_object_array_add(skipped, s);
        }
    }
    rd_buf_putc(&chosen, '}');
    rc = dry_run ? 0 : replay_locked(db, chosen.data, err, errlen);
    if (rc == 0 && !dry_run)
        rc = rd_db_run(db, "COMMIT", 0, NULL, err, errlen);
    rd_buf_free(&chosen);
    if (rc == 0)
        *result = result_new(dry_run, events, skipped);
    else {
        json_object_put(events);
        json_object_put(skipped);
    }
out:
    if (rc != 0 && !dry_run)
        rollback(db);
    PQclear(res);
    free(arr);
    return rc;
}

/* Resolves a connection name to its id text in out; RD_REPLAY_EINVAL when unknown. */
static int connection_id(PGconn *db, const char *name, char out[24], char *err, size_t errlen)
{
    const char *params[1] = {name};
    PGresult *res =
        rd_db_exec(db, "SELECT id FROM connections WHERE name = $1", 1, params, err, errlen);
    if (!res)
        return -1;
    int rc = 0;
    if (PQntuples(res) == 1)
        snprintf(out, 24, "%s", PQgetvalue(res, 0, 0));
    else {
        snprintf(err, errlen, "unknown connection \"%s\"", name);
        rc = RD_REPLAY_EINVAL;
    }
    PQclear(res);
    return rc;
}

static const char FILTER_SQL[] =
    "SELECT e.id FROM events e WHERE e.status = $1 AND " RD_SQL_EVENT_STATUS " = $1"
    " AND ($2::bigint IS NULL OR e.connection_id = $2::bigint)"
    " AND ($3::bigint IS NULL OR e.received_at >= now() - $3::bigint * interval '1 second')"
    " AND ($4::timestamptz IS NULL OR e.received_at >= $4::timestamptz)";

int rd_replay_filtered(PGconn *db, const struct rd_replay_filter *f, bool dry_run,
                       struct json_object **result, char *err, size_t errlen)
{
    *result = NULL;
    if (!f->status || (strcmp(f->status, "dead") != 0 && strcmp(f->status, "failed") != 0)) {
        snprintf(err, errlen, "--status must be dead or failed");
        return RD_REPLAY_EINVAL;
    }
    char conn[24] = "", iso[64] = "", secs[24] = "";
    if (f->since && !rd_events_parse_since(f->since, iso, secs)) {
        snprintf(err, errlen,
                 "--since: expected a duration such as 30m, 24h or 7d, or an ISO 8601 time");
        return RD_REPLAY_EINVAL;
    }
    int rc = 0;
    if (f->connection)
        rc = connection_id(db, f->connection, conn, err, errlen);
    if (rc != 0)
        return rc;
    const char *params[4] = {f->status, conn[0] ? conn : NULL, secs[0] ? secs : NULL,
                             iso[0] ? iso : NULL};
    PGresult *res = NULL;
    rc = -1;
    if (dry_run) {
        char *sql = rd_asprintf("%s ORDER BY e.id", FILTER_SQL);
        res = rd_db_exec(db, sql, 4, params, err, errlen);
        free(sql);
    } else if (rd_db_run(db, "BEGIN", 0, NULL, err, errlen) == 0) {
        res = lock_selection(db, FILTER_SQL, 4, params, err, errlen);
    }
    if (!res)
        goto out;
    struct json_object *events = json_object_new_array();
    struct rd_buf ids = {0};
    rd_buf_putc(&ids, '{');
    for (int r = 0; r < PQntuples(res); r++) {
        /* The lock re-read the rows: keep only those still in the asked status. */
        if (!dry_run && strcmp(PQgetvalue(res, r, 1), f->status) != 0)
            continue;
        json_object_array_add(events,
                              json_object_new_int64(strtoll(PQgetvalue(res, r, 0), NULL, 10)));
        rd_buf_printf(&ids, "%s%s", ids.len > 1 ? "," : "", PQgetvalue(res, r, 0));
    }
    rd_buf_putc(&ids, '}');
    rc = dry_run ? 0 : replay_locked(db, ids.data, err, errlen);
    if (rc == 0 && !dry_run)
        rc = rd_db_run(db, "COMMIT", 0, NULL, err, errlen);
    rd_buf_free(&ids);
    if (rc == 0)
        *result = result_new(dry_run, events, json_object_new_array());
    else
        json_object_put(events);
out:
    if (rc != 0 && !dry_run)
        rollback(db);
    PQclear(res);
    return rc;
}

static const char JOBS_OPEN_SQL[] =
    "SELECT j.id, j.kind, j.key,"
    "       CASE WHEN j.state = 'pending' AND j.run_at > now() THEN 'scheduled' ELSE j.state END,"
    "       " ISO_UTC(
        "j.run_at") ", j.attempts, j.last_error, c.name, j.note"
                    " FROM jobs j LEFT JOIN connections c ON c.id = j.connection_id"
                    " WHERE ($1::text IS NULL OR j.kind = $1) AND ($2::bigint IS NULL OR j.connection_id = $2::bigint)"
                    "   AND ($3::text IS NULL OR $3 = CASE WHEN j.state = 'pending' AND j.run_at > now()"
                    "                                 THEN 'scheduled' ELSE j.state END)"
                    " ORDER BY j.run_at, j.id LIMIT $4::bigint";

static const char JOBS_DONE_SQL[] = "SELECT j.id, j.kind, j.key, j.state, " ISO_UTC(
    "j.run_at") ", j.attempts, j.last_error,"
                "       c.name, j.note"
                " FROM jobs_history j LEFT JOIN connections c ON c.id = j.connection_id"
                " WHERE ($1::text IS NULL OR j.kind = $1) AND ($2::bigint IS NULL OR j.connection_id = $2::bigint)"
                "   AND j.state = $3"
                " ORDER BY j.finished_at DESC, j.id DESC LIMIT $4::bigint";

static struct json_object *text_or_null(const PGresult *res, int r, int c)
{
    return PQgetisnull(res, r, c) ? NULL : json_object_new_string(PQgetvalue(res, r, c));
}

int rd_jobs_list(PGconn *db, const struct rd_jobs_filter *f, struct json_object **result, char *err,
                 size_t errlen)
{
    static const char *const states[] = {"pending", "scheduled", "running", "failed",
                                         "dead",    "done",      "replayed"};
    *result = NULL;
    bool known = f->state == NULL, history = false;
    for (size_t i = 0; f->state && i < sizeof states / sizeof states[0]; i++)
        if (strcmp(f->state, states[i]) == 0) {
            known = true;
            history = i >= 5;
        }
    if (!known) {
        snprintf(err, errlen,
                 "--state must be one of pending, scheduled, running, failed, dead,"
                 " done, replayed");
        return RD_REPLAY_EINVAL;
    }
    char conn[24] = "", limit[24];
    if (f->connection) {
        int rc = connection_id(db, f->connection, conn, err, errlen);
        if (rc != 0)
            return rc;
    }
    snprintf(limit, sizeof limit, "%lld", (long long)(f->limit > 0 ? f->limit : 1000));
    const char *params[4] = {f->kind, conn[0] ? conn : NULL, f->state, limit};
    PGresult *res = rd_db_exec(db, history ? JOBS_DONE_SQL : JOBS_OPEN_SQL, 4, params, err, errlen);
    if (!res)
        return -1;
    static const char *const names[] = {"id",       "kind",       "key",        "state", "run_at",
                                        "attempts", "last_error", "connection", "note"};
    struct json_object *arr = json_object_new_array();
    for (int r = 0; r < PQntuples(res); r++) {
        struct json_object *o = json_object_new_object();
        for (int c = 0; c < 9; c++) {
            struct json_object *v;
            if (c == 0 || c == 5)
                v = json_object_new_int64(strtoll(PQgetvalue(res, r, c), NULL, 10));
            else
                v = text_or_null(res, r, c);
            json_object_object_add(o, names[c], v);
        }
        json_object_array_add(arr, o);
    }
    PQclear(res);
    *result = arr;
    return 0;
}
