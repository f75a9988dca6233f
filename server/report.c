/*
 * Reconciliation reports from the runs and findings tables (include/rosterd/report.h):
 * one run as JSON, a connection's runs, the plain-language summary used by Slack and
 * the text report, and the last-success metric read at scrape time. Rendering for
 * people lives in report_text.c and report_html.c.
 */
#include "rosterd/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "rosterd/db.h"
#include "rosterd/events.h"
#include "rosterd/metrics.h"
#include "rosterd/reconcile.h"

bool rd_report_parse_format(const char *s, enum rd_report_format *f)
{
    static const char *const names[] = {"text", "json", "csv", "html"};
    for (int i = 0; s && i < 4; i++)
        if (strcmp(s, names[i]) == 0) {
            *f = (enum rd_report_format)i;
            return true;
        }
    return false;
}

static struct json_object *text_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : json_object_new_string(PQgetvalue(res, row, col));
}

static struct json_object *int_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col)
               ? NULL
               : json_object_new_int64(strtoll(PQgetvalue(res, row, col), NULL, 10));
}

static struct json_object *parsed_or(const PGresult *res, int row, int col, bool array)
{
    struct json_object *v =
        PQgetisnull(res, row, col) ? NULL : json_tokener_parse(PQgetvalue(res, row, col));
    return v ? v : array ? json_object_new_array() : json_object_new_object();
}

/* SELECT list of one run (joined with its connection c), in the order run_json reads it. */
/* clang-format off */
#define RUN_COLUMNS                                                                                \
    "r.id, c.name, r.kind, r.dry_run, r.status, r.trigger, " RD_SQL_ISO("r.started_at") ", "      \
    RD_SQL_ISO("r.finished_at") ", c.timezone,"                                                    \
    " to_char(r.started_at AT TIME ZONE c.timezone, 'YYYY-MM-DD HH24:MI:SS'),"                     \
    " to_char(r.finished_at AT TIME ZONE c.timezone, 'YYYY-MM-DD HH24:MI:SS'),"                    \
    " r.employees, r.linked_users, r.planned_deactivations, r.held_reason, r.error, "             \
    RD_SQL_ISO("r.approved_at") ", r.approved_by, r.approval_run_id, r.approves_run_id,"           \
    " r.stats::text, r.counts::text"
/* clang-format on */

static struct json_object *run_json(const PGresult *res, int i)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "run_id", int_or_null(res, i, 0));
    json_object_object_add(o, "connection", text_or_null(res, i, 1));
    json_object_object_add(o, "kind", text_or_null(res, i, 2));
    json_object_object_add(o, "dry_run", json_object_new_boolean(PQgetvalue(res, i, 3)[0] == 't'));
    json_object_object_add(o, "status", text_or_null(res, i, 4));
    json_object_object_add(o, "trigger", text_or_null(res, i, 5));
    json_object_object_add(o, "started_at", text_or_null(res, i, 6));
    json_object_object_add(o, "finished_at", text_or_null(res, i, 7));
    json_object_object_add(o, "timezone", text_or_null(res, i, 8));
    json_object_object_add(o, "started_at_local", text_or_null(res, i, 9));
    json_object_object_add(o, "finished_at_local", text_or_null(res, i, 10));
    json_object_object_add(o, "employees", int_or_null(res, i, 11));
    json_object_object_add(o, "linked_users", int_or_null(res, i, 12));
    json_object_object_add(o, "planned_deactivations", int_or_null(res, i, 13));
    json_object_object_add(o, "held_reason", text_or_null(res, i, 14));
    json_object_object_add(o, "error", text_or_null(res, i, 15));
    json_object_object_add(o, "approved_at", text_or_null(res, i, 16));
    json_object_object_add(o, "approved_by", text_or_null(res, i, 17));
    json_object_object_add(o, "approval_run_id", int_or_null(res, i, 18));
    json_object_object_add(o, "approves_run_id", int_or_null(res, i, 19));
    struct json_object *stats = parsed_or(res, i, 20, false), *v = NULL;
    json_object_object_add(o, "warnings",
                           json_object_object_get_ex(stats, "warnings", &v)
                               ? json_object_get(v)
                               : json_object_new_array());
    json_object_object_add(o, "released",
                           json_object_object_get_ex(stats, "released", &v) ? json_object_get(v)
                                                                            : NULL);
    json_object_object_add(o, "stats", stats);
    return o;
}

/* Adds findings [{kind, email, detail, action, result}] and counts {kind: n} of the run. */
static int add_findings(PGconn *db, struct json_object *report, const char *run_id, char *err,
                        size_t errlen)
{
    const char *params[1] = {run_id};
    PGresult *res = rd_db_exec(db,
                               "SELECT kind, email, detail, action, result FROM findings"
                               " WHERE run_id = $1::bigint ORDER BY id",
                               1, params, err, errlen);
    if (!res)
        return -1;
    struct json_object *list = json_object_new_array_ext(PQntuples(res));
    struct json_object *counts = json_object_new_object();
    static const char *const names[] = {"kind", "email", "detail", "action", "result"};
    for (int i = 0; i < PQntuples(res); i++) {
        struct json_object *f = json_object_new_object();
        for (int c = 0; c < 5; c++)
            json_object_object_add(f, names[c], text_or_null(res, i, c));
        json_object_array_add(list, f);
        struct json_object *n = NULL;
        const char *kind = PQgetvalue(res, i, 0);
        if (json_object_object_get_ex(counts, kind, &n))
            json_object_set_int64(n, json_object_get_int64(n) + 1);
        else
            json_object_object_add(counts, kind, json_object_new_int64(1));
    }
    PQclear(res);
    json_object_object_add(report, "counts", counts);
    json_object_object_add(report, "findings", list);
    return 0;
}

int rd_report_get(PGconn *db, const char *connection, int64_t run_id, struct json_object **out,
                  char *err, size_t errlen)
{
    *out = NULL;
    if (rd_reconcile_reap(db, 0, err, errlen) < 0)
        return -1;
    char id[24];
    snprintf(id, sizeof(id), "%lld", (long long)run_id);
    const char *params[2] = {connection, id};
    PGresult *res =
        rd_db_exec(db,
                   "SELECT " RUN_COLUMNS " FROM runs r JOIN connections c"
                   " ON c.id = r.connection_id WHERE ($1::text IS NULL OR c.name = $1)"
                   " AND ($2::bigint = 0 OR r.id = $2::bigint) ORDER BY r.id DESC LIMIT 1",
                   2, params, err, errlen);
    if (!res)
        return -1;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return 0;
    }
    struct json_object *report = run_json(res, 0);
    char rid[24];
    snprintf(rid, sizeof(rid), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    if (add_findings(db, report, rid, err, errlen) != 0) {
        json_object_put(report);
        return -1;
    }
    *out = report;
    return 0;
}

int rd_report_list(PGconn *db, const char *connection, int64_t limit, int64_t before_id,
                   struct json_object **out, char *err, size_t errlen)
{
    *out = NULL;
    if (rd_reconcile_reap(db, 0, err, errlen) < 0)
        return -1;
    char lim[24], before[24];
    snprintf(lim, sizeof(lim), "%lld", (long long)limit);
    snprintf(before, sizeof(before), "%lld", (long long)before_id);
    const char *params[3] = {connection, lim, before};
    PGresult *res = rd_db_exec(db,
                               "SELECT " RUN_COLUMNS " FROM runs r JOIN connections c"
                               " ON c.id = r.connection_id WHERE c.name = $1"
                               " AND ($3::bigint = 0 OR r.id <= $3::bigint)"
                               " ORDER BY r.id DESC LIMIT $2::bigint",
                               3, params, err, errlen);
    if (!res)
        return -1;
    struct json_object *list = json_object_new_array();
    for (int i = 0; i < PQntuples(res); i++) {
        struct json_object *r = run_json(res, i);
        json_object_object_add(r, "counts", parsed_or(res, i, 21, false));
        json_object_array_add(list, r);
    }
    PQclear(res);
    *out = list;
    return 0;
}

int rd_report_update_metrics(PGconn *db, char *err, size_t errlen)
{
    PGresult *res = rd_db_exec(db,
                               "SELECT c.name, extract(epoch FROM max(r.finished_at))::bigint"
                               " FROM runs r JOIN connections c ON c.id = r.connection_id"
                               " WHERE r.status = 'done' AND r.kind = 'reconcile' AND NOT r.dry_run"
                               " GROUP BY c.name",
                               0, NULL, err, errlen);
    if (!res)
        return -1;
    for (int i = 0; i < PQntuples(res); i++)
        rd_metrics_reconcile_success(PQgetvalue(res, i, 0),
                                     strtoll(PQgetvalue(res, i, 1), NULL, 10));
    PQclear(res);
    return 0;
}

void rd_report_render(struct json_object *report, struct json_object *history,
                      enum rd_report_format f, struct rd_buf *out)
{
    switch (f) {
    case RD_REPORT_JSON:
        rd_buf_puts(out, json_object_to_json_string_ext(
                             report, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                         JSON_C_TO_STRING_NOSLASHESCAPE));
        rd_buf_putc(out, '\n');
        break;
    case RD_REPORT_CSV:
        rd_report_csv(report, out);
        break;
    case RD_REPORT_HTML:
        rd_report_html(report, history, out);
        break;
    case RD_REPORT_TEXT:
    default:
        rd_report_text(report, out);
        break;
    }
}

/* ---- the summary ---- */

static int64_t count_of(struct json_object *counts, const char *kind)
{
    struct json_object *v = NULL;
    return json_object_object_get_ex(counts, kind, &v) ? json_object_get_int64(v) : 0;
}

void rd_report_summary(struct json_object *counts, struct rd_buf *out)
{
    static const struct {
        const char *kind, *one, *many;
    } phrases[] = {
        {"deactivation_held", "deactivation held by the circuit breaker",
         "deactivations held by the circuit breaker"},
        {"error", "error", "errors"},
        {"conflict", "conflict to resolve", "conflicts to resolve"},
        {"platform_only", "platform account with no employee in Personio",
         "platform accounts with no employee in Personio"},
        {"unmapped_team", "HR team with no platform team", "HR teams with no platform team"},
        {"new_hire", "new hire", "new hires"},
        {"linked", "account linked", "accounts linked"},
        {"deactivated", "account deactivated", "accounts deactivated"},
        {"deactivation_scheduled", "deactivation scheduled", "deactivations scheduled"},
        {"team_changed", "team change", "team changes"},
        {"manager_changed", "manager change", "manager changes"},
        {"absence_created", "absence mirrored to MOCO", "absences mirrored to MOCO"},
        {"absence_removed", "absence removed from MOCO", "absences removed from MOCO"},
        {"attendance_pushed", "attendance pushed to Personio", "attendances pushed to Personio"},
        {"attendance_removed", "attendance removed from Personio",
         "attendances removed from Personio"},
    };
    size_t before = out->len;
    for (size_t i = 0; i < sizeof(phrases) / sizeof(phrases[0]); i++) {
        long long n = (long long)count_of(counts, phrases[i].kind);
        if (n <= 0)
            continue;
        rd_buf_printf(out, "%s%lld %s", out->len > before ? ", " : "", n,
                      n == 1 ? phrases[i].one : phrases[i].many);
    }
    if (out->len == before)
        rd_buf_puts(out, "no changes, nothing to do");
}
