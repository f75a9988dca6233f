/*
 * The event log for operators: filter checking, --since parsing, and the
 * list, count and show queries as JSON. Headers are masked once more on the
 * way out, whatever the intake stored.
 */
#include "rosterd/events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "rosterd/db.h"
#include "rosterd/mem.h"

static const char *const statuses[] = {"pending", "running", "done", "failed", "dead", NULL};
static const char *const sources[] = {"personio", "moco", NULL};
static const char *const masked_headers[] = {"authorization", "x-moco-signature",
                                             "webhook-signature", NULL};

#define EVENTS_WHERE                                                                               \
    " WHERE ($1::text IS NULL OR c.name = $1::text)"                                               \
    " AND ($2::text IS NULL OR e.source = $2::text)"                                               \
    " AND ($3::text IS NULL OR ((e.status = $3::text OR ($3::text = 'running'"                     \
    "      AND e.status IN ('pending', 'failed'))) AND " RD_SQL_EVENT_STATUS " = $3::text))"       \
    " AND ($4::timestamptz IS NULL OR e.received_at >= $4::timestamptz)"                           \
    " AND ($5::bigint IS NULL OR e.received_at >= now() - $5::bigint * interval '1 second')"

static bool one_of(const char *s, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

/* A non-negative decimal count of at most 100 years of seconds. */
static bool parse_count(const char *s, int64_t *out)
{
    if (!*s)
        return false;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > 36500LL * 86400)
            return false;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return true;
}

/* Reads exactly n digits at *p into *out and advances *p. */
static bool take_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/* YYYY-MM-DD[(T| )HH:MM[:SS[.frac]]][Z|±HH[:MM]] with real field ranges. */
static bool valid_iso(const char *s)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec;
    const char *p = s;
    if (!take_digits(&p, 4, &y) || *p++ != '-' || !take_digits(&p, 2, &mo) || *p++ != '-' ||
        !take_digits(&p, 2, &d))
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
        return false;
    if (*p == '\0')
        return true;
    if ((*p != 'T' && *p != 't' && *p != ' ') || (p++, !take_digits(&p, 2, &h)) || *p++ != ':' ||
        !take_digits(&p, 2, &mi) || h > 23 || mi > 59)
        return false;
    if (*p == ':') {
        p++;
        if (!take_digits(&p, 2, &sec) || sec > 60)
            return false;
        if (*p == '.' || *p == ',') {
            p++;
            if (*p < '0' || *p > '9')
                return false;
            while (*p >= '0' && *p <= '9')
                p++;
        }
    }
    if (*p == 'Z' || *p == 'z')
        return p[1] == '\0';
    if (*p == '+' || *p == '-') {
        p++;
        if (!take_digits(&p, 2, &h) || h > 14)
            return false;
        if (*p == ':')
            p++;
        if (*p != '\0' && (!take_digits(&p, 2, &mi) || mi > 59))
            return false;
    }
    return *p == '\0';
}

bool rd_events_parse_since(const char *s, char iso[64], char secs[24])
{
    iso[0] = secs[0] = '\0';
    if (!s || !*s)
        return false;
    size_t n = strlen(s);
    if (n < 64 && valid_iso(s)) {
        memcpy(iso, s, n + 1);
        return true;
    }
    static const struct {
        char unit;
        int64_t secs;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 604800}};
    char num[24];
    if (n < 2 || n > sizeof num)
        return false;
    memcpy(num, s, n - 1);
    num[n - 1] = '\0';
    int64_t v = 0;
    /* Up to 100 years back is plenty and keeps the product far from overflow. */
    if (!parse_count(num, &v))
        return false;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (s[n - 1] == units[i].unit) {
            int64_t total = v * units[i].secs;
            if (total > 36500LL * 86400)
                return false;
            snprintf(secs, 24, "%lld", (long long)total);
            return true;
        }
    }
    return false;
}

const char *rd_events_filter_set(struct rd_events_filter *f, const char *connection,
                                 const char *source, const char *status, const char *since)
{
    memset(f, 0, sizeof(*f));
    if (connection && !*connection)
        return "--connection: expected a connection name";
    if (source && !one_of(source, sources))
        return "--source: expected one of personio, moco";
    if (status && !one_of(status, statuses))
        return "--status: expected one of pending, running, done, failed, dead";
    if (since && !rd_events_parse_since(since, f->since_iso, f->since_secs))
        return "--since: expected a duration such as 30m, 24h or 7d, or an ISO 8601 time";
    f->connection = connection;
    f->source = source;
    f->status = status;
    return NULL;
}

static void filter_params(const struct rd_events_filter *f, const char *params[5])
{
    params[0] = f->connection;
    params[1] = f->source;
    params[2] = f->status;
    params[3] = f->since_iso[0] ? f->since_iso : NULL;
    params[4] = f->since_secs[0] ? f->since_secs : NULL;
}

int rd_events_connection_exists(PGconn *db, const char *name, char *err, size_t errlen)
{
    const char *params[1] = {name};
    PGresult *res =
        rd_db_exec(db, "SELECT 1 FROM connections WHERE name = $1", 1, params, err, errlen);
    if (!res)
        return -1;
    int n = PQntuples(res);
    PQclear(res);
    return n > 0;
}

/* A column as JSON: SQL NULL → null; integer columns as numbers. */
static struct json_object *col(const PGresult *res, int row, int c, bool integer)
{
    if (PQgetisnull(res, row, c))
        return NULL;
    const char *v = PQgetvalue(res, row, c);
    return integer ? json_object_new_int64(strtoll(v, NULL, 10)) : json_object_new_string(v);
}

/* SQL with macros inside string concatenation: clang-format would break it apart. */
/* clang-format off */
static const char sql_list[] =
    "SELECT e.id, c.name, e.source, e.event_type, " RD_SQL_EVENT_STATUS ", e.attempts, "
    RD_SQL_ISO("e.received_at") ", e.last_error"
    " FROM events e JOIN connections c ON c.id = e.connection_id" EVENTS_WHERE
    " ORDER BY e.received_at DESC, e.id DESC LIMIT $6::int";
/* clang-format on */

static const char *const list_fields[] = {"id",     "connection", "source",      "event_type",
                                          "status", "attempts",   "received_at", "last_error"};

int rd_events_list(PGconn *db, const struct rd_events_filter *f, int64_t limit,
                   struct json_object **out, char *err, size_t errlen)
{
    const char *params[6];
    char lim[24];
    filter_params(f, params);
    snprintf(lim, sizeof(lim), "%lld", (long long)(limit > 0 ? limit : RD_EVENTS_LIMIT_DEFAULT));
    params[5] = lim;
    PGresult *res = rd_db_exec(db, sql_list, 6, params, err, errlen);
    if (!res)
        return -1;
    struct json_object *arr = json_object_new_array();
    for (int i = 0; i < PQntuples(res); i++) {
        struct json_object *o = json_object_new_object();
        for (int c = 0; c < 8; c++)
            json_object_object_add(o, list_fields[c], col(res, i, c, c == 0 || c == 5));
        json_object_array_add(arr, o);
    }
    PQclear(res);
    *out = arr;
    return 0;
}

int rd_events_count(PGconn *db, const struct rd_events_filter *f, int64_t *count, char *err,
                    size_t errlen)
{
    const char *params[5];
    filter_params(f, params);
    PGresult *res = rd_db_exec(db,
                               "SELECT count(*) FROM events e"
                               " JOIN connections c ON c.id = e.connection_id" EVENTS_WHERE,
                               5, params, err, errlen);
    if (!res)
        return -1;
    *count = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

/* Parses text as one whole JSON value; NULL when it is not JSON. */
static struct json_object *parse_json(const char *text)
{
    size_t len = strlen(text);
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    bool ok = json_tokener_get_error(tok) == json_tokener_success;
    for (size_t i = json_tokener_get_parse_end(tok); ok && i < len; i++)
        ok = strchr(" \t\r\n", text[i]) != NULL;
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(o);
        o = NULL;
    }
    return o;
}

/* Headers as stored (an object of name → value), with signature headers masked again. */
static struct json_object *masked_headers_json(const char *text)
{
    struct json_object *h = text ? parse_json(text) : NULL;
    if (!h)
        return text ? json_object_new_string(text) : NULL;
    if (!json_object_is_type(h, json_type_object))
        return h;
    struct json_object *out = json_object_new_object();
    json_object_object_foreach(h, k, v)
    {
        bool secret = false;
        for (size_t i = 0; masked_headers[i]; i++)
            secret = secret || strcasecmp(k, masked_headers[i]) == 0;
        json_object_object_add(out, k,
                               secret ? json_object_new_string("********") : json_object_get(v));
    }
    json_object_put(h);
    return out;
}

static struct json_object *attempt_log(PGconn *db, const char *id, char *err, size_t errlen)
{
    const char *params[1] = {id};
    /* SQL with macros inside string concatenation: clang-format would break it apart. */
    /* clang-format off */
    PGresult *res = rd_db_exec(db,
                               /* Attempts are written when they end; the one in
                                  progress is read from the running job. */
                               "SELECT attempt, " RD_SQL_ISO("started_at") ", "
                               RD_SQL_ISO("finished_at") ", outcome, error FROM ("
                               "  SELECT id AS ord, attempt, started_at, finished_at, outcome,"
                               "         error"
                               "  FROM event_attempts WHERE event_id = $1::bigint"
                               "  UNION ALL"
                               "  SELECT NULL, e.attempts + 1, j.started_at, NULL, NULL, NULL"
                               "  FROM job_events je JOIN jobs j ON j.id = je.job_id"
                               "  JOIN events e ON e.id = je.event_id"
                               "  WHERE je.event_id = $1::bigint AND j.state = 'running'"
                               ") a ORDER BY ord NULLS LAST",
                               1, params, err, errlen);
    /* clang-format on */
    if (!res)
        return NULL;
    static const char *const names[] = {"attempt", "started_at", "finished_at", "outcome", "error"};
    struct json_object *arr = json_object_new_array();
    for (int i = 0; i < PQntuples(res); i++) {
        struct json_object *o = json_object_new_object();
        for (int c = 0; c < 5; c++)
            json_object_object_add(o, names[c], col(res, i, c, c == 0));
        json_object_array_add(arr, o);
    }
    PQclear(res);
    return arr;
}

/* SQL with macros inside string concatenation: clang-format would break it apart. */
/* clang-format off */
static const char sql_show[] =
    "SELECT e.id, c.name, e.source, e.event_type, " RD_SQL_EVENT_STATUS ", e.attempts, "
    RD_SQL_ISO("e.received_at") ", e.last_error, e.subject, e.auth, e.note, "
    RD_SQL_ISO("e.updated_at") ", e.headers::text, e.body"
    " FROM events e JOIN connections c ON c.id = e.connection_id WHERE e.id = $1::bigint";
/* clang-format on */

int rd_events_get(PGconn *db, int64_t id, struct json_object **out, char *err, size_t errlen)
{
    static const char *const names[] = {"id",      "connection", "source",      "event_type",
                                        "status",  "attempts",   "received_at", "last_error",
                                        "subject", "auth",       "note",        "updated_at"};
    char idtext[24];
    snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
    const char *params[1] = {idtext};
    *out = NULL;
    PGresult *res = rd_db_exec(db, sql_show, 1, params, err, errlen);
    if (!res)
        return -1;
    if (PQntuples(res) == 0) {
        PQclear(res);
        return 0;
    }
    struct json_object *o = json_object_new_object();
    for (int c = 0; c < 12; c++)
        json_object_object_add(o, names[c], col(res, 0, c, c == 0 || c == 5));
    json_object_object_add(
        o, "headers", masked_headers_json(PQgetisnull(res, 0, 12) ? NULL : PQgetvalue(res, 0, 12)));
    const char *text = PQgetisnull(res, 0, 13) ? NULL : PQgetvalue(res, 0, 13);
    struct json_object *body = text ? parse_json(text) : NULL;
    if (text && !body)
        body = json_object_new_string(text);
    json_object_object_add(o, "body", body);
    PQclear(res);
    struct json_object *log = attempt_log(db, idtext, err, errlen);
    if (!log) {
        json_object_put(o);
        return -1;
    }
    json_object_object_add(o, "attempt_log", log);
    *out = o;
    return 0;
}
