/*
 * rosterctl events list|count|show: the operator's view of the durable event
 * log. Filters are checked before any query so bad values are usage errors
 * (exit 2); headers are masked once more on output, whatever intake stored.
 */
#include "cli_internal.h"

#include "rosterd/db.h"
#include "rosterd/mem.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#define LIMIT_DEFAULT "50"
#define LIMIT_MAX 10000

static const char *const statuses[] = {"pending", "running", "done", "failed", "dead", NULL};
static const char *const masked_headers[] = {"authorization", "x-moco-signature",
                                             "webhook-signature", NULL};

static bool one_of(const char *s, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

int rd_cli_event_filter_check(struct rd_cli *cli, struct rd_cli_event_filter *f)
{
    static const char *const sources[] = {"personio", "moco", NULL};
    if (f->connection && !*f->connection)
        return rd_cli_usage_error(cli, "--connection: expected a connection name");
    if (f->source && !one_of(f->source, sources))
        return rd_cli_usage_error(cli, "--source: expected one of personio, moco");
    if (f->status && !one_of(f->status, statuses))
        return rd_cli_usage_error(cli,
                                  "--status: expected one of pending, running, done, failed, dead");
    f->since_iso[0] = f->since_secs[0] = '\0';
    if (f->since && !rd_cli_parse_since(f->since, f->since_iso, f->since_secs))
        return rd_cli_usage_error(
            cli, "--since: expected a duration such as 30m, 24h or 7d, or an ISO 8601 time");
    return RD_CLI_OK;
}

void rd_cli_event_filter_params(const struct rd_cli_event_filter *f, const char *params[5])
{
    params[0] = f->connection;
    params[1] = f->source;
    params[2] = f->status;
    params[3] = f->since_iso[0] ? f->since_iso : NULL;
    params[4] = f->since_secs[0] ? f->since_secs : NULL;
}

/* Parses the shared filter options plus --limit and --json; returns an RD_CLI_ code. */
static int parse_filters(struct rd_cli *cli, int argc, char **argv,
                         struct rd_cli_event_filter *f, const char **limit, bool *json)
{
    char err[256];
    size_t npos = 0;
    const struct rd_cli_opt opts[] = {
        {"--connection", &f->connection, NULL}, {"--source", &f->source, NULL},
        {"--status", &f->status, NULL},         {"--since", &f->since, NULL},
        {"--limit", limit, NULL},               {"--json", NULL, json},
    };
    /* count takes neither --limit nor --json. */
    size_t nopts = limit ? 6 : 4;
    if (rd_cli_parse(argc, argv, opts, nopts, NULL, 0, &npos, err, sizeof err) != 0)
        return rd_cli_usage_error(cli, "%s", err);
    int64_t n = 0;
    if (limit && !rd_cli_parse_int(*limit, 1, LIMIT_MAX, &n))
        return rd_cli_usage_error(cli, "--limit: expected a number from 1 to %d", LIMIT_MAX);
    return rd_cli_event_filter_check(cli, f);
}

static const char sql_list[] =
    "SELECT e.id, c.name, e.source, e.event_type, e.status, e.attempts, "
    RD_CLI_SQL_ISO("e.received_at") ", e.last_error"
    " FROM events e JOIN connections c ON c.id = e.connection_id" RD_CLI_EVENTS_WHERE
    " ORDER BY e.received_at DESC, e.id DESC LIMIT $6::int";

static void print_list(const PGresult *res, bool json)
{
    static const char *const names[] = {"id",     "connection", "source",      "event_type",
                                        "status", "attempts",   "received_at", "last_error"};
    int n = PQntuples(res);
    if (json) {
        struct json_object *arr = json_object_new_array();
        for (int i = 0; i < n; i++) {
            struct json_object *o = json_object_new_object();
            for (int c = 0; c < 8; c++)
                json_object_object_add(o, names[c], (c == 0 || c == 5)
                                                        ? rd_cli_json_int(res, i, c)
                                                        : rd_cli_json_text(res, i, c));
            json_object_array_add(arr, o);
        }
        rd_cli_json_print(arr, false, stdout);
        json_object_put(arr);
        return;
    }
    static const char *const hdr[] = {"ID",     "CONNECTION", "SOURCE",      "EVENT_TYPE",
                                      "STATUS", "ATTEMPTS",   "RECEIVED_AT", "LAST_ERROR"};
    struct rd_cli_table *t = rd_cli_table_new(8, hdr);
    for (int i = 0; i < n; i++) {
        const char *row[8];
        for (int c = 0; c < 8; c++)
            row[c] = rd_cli_value(res, i, c);
        if (!row[7])
            row[7] = "";
        rd_cli_table_add(t, row);
    }
    rd_cli_table_print(t, stdout);
    rd_cli_table_free(t);
}

int rd_cli_events_list(struct rd_cli *cli, int argc, char **argv)
{
    struct rd_cli_event_filter f = {0};
    const char *limit = LIMIT_DEFAULT;
    bool json = false;
    char err[512];
    int rc = parse_filters(cli, argc, argv, &f, &limit, &json);
    if (rc != RD_CLI_OK)
        return rc;
    PGconn *db = rd_cli_db(cli);
    if (!db)
        return RD_CLI_FAIL;
    if (rd_cli_check_connection(db, f.connection) != RD_CLI_OK)
        return RD_CLI_FAIL;
    const char *params[6];
    rd_cli_event_filter_params(&f, params);
    params[5] = limit;
    PGresult *res = rd_db_exec(db, sql_list, 6, params, err, sizeof err);
    if (!res) {
        rd_cli_error("cannot list events: %s", err);
        return RD_CLI_FAIL;
    }
    print_list(res, json);
    PQclear(res);
    return RD_CLI_OK;
}

int rd_cli_events_count(struct rd_cli *cli, int argc, char **argv)
{
    struct rd_cli_event_filter f = {0};
    char err[512];
    int rc = parse_filters(cli, argc, argv, &f, NULL, NULL);
    if (rc != RD_CLI_OK)
        return rc;
    PGconn *db = rd_cli_db(cli);
    if (!db)
        return RD_CLI_FAIL;
    if (rd_cli_check_connection(db, f.connection) != RD_CLI_OK)
        return RD_CLI_FAIL;
    const char *params[5];
    rd_cli_event_filter_params(&f, params);
    PGresult *res = rd_db_exec(db,
                               "SELECT count(*) FROM events e"
                               " JOIN connections c ON c.id = e.connection_id" RD_CLI_EVENTS_WHERE,
                               5, params, err, sizeof err);
    if (!res) {
        rd_cli_error("cannot count events: %s", err);
        return RD_CLI_FAIL;
    }
    printf("%s\n", PQgetvalue(res, 0, 0));
    PQclear(res);
    return RD_CLI_OK;
}

/* Parses text as one whole JSON value; false when it is not JSON. */
static bool parse_json(const char *text, struct json_object **out)
{
    size_t len = strlen(text);
    struct json_tokener *tok = json_tokener_new();
    *out = json_tokener_parse_ex(tok, text, (int)len);
    bool ok = json_tokener_get_error(tok) == json_tokener_success;
    for (size_t i = json_tokener_get_parse_end(tok); ok && i < len; i++)
        ok = strchr(" \t\r\n", text[i]) != NULL;
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(*out);
        *out = NULL;
    }
    return ok;
}

/* Headers as stored (an object of name → value), with signature headers masked again. */
static struct json_object *masked_headers_json(const char *text)
{
    struct json_object *h = NULL;
    if (!text || !parse_json(text, &h))
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
    PGresult *res = rd_db_exec(db,
                               "SELECT attempt, " RD_CLI_SQL_ISO("started_at") ", "
                               RD_CLI_SQL_ISO("finished_at") ", outcome, error"
                               " FROM event_attempts WHERE event_id = $1::bigint ORDER BY id",
                               1, params, err, errlen);
    if (!res)
        return NULL;
    static const char *const names[] = {"attempt", "started_at", "finished_at", "outcome",
                                        "error"};
    struct json_object *arr = json_object_new_array();
    for (int i = 0; i < PQntuples(res); i++) {
        struct json_object *o = json_object_new_object();
        for (int c = 0; c < 5; c++)
            json_object_object_add(o, names[c],
                                    c == 0 ? rd_cli_json_int(res, i, c) : rd_cli_json_text(res, i, c));
        json_object_array_add(arr, o);
    }
    PQclear(res);
    return arr;
}

static const char sql_show[] =
    "SELECT e.id, c.name, e.source, e.event_type, e.status, e.attempts, "
    RD_CLI_SQL_ISO("e.received_at") ", e.last_error, e.subject, e.auth, e.note, "
    RD_CLI_SQL_ISO("e.updated_at") ", e.headers::text, e.body"
    " FROM events e JOIN connections c ON c.id = e.connection_id WHERE e.id = $1::bigint";

static struct json_object *event_json(const PGresult *res)
{
    static const char *const names[] = {"id",         "connection", "source",  "event_type",
                                        "status",     "attempts",   "received_at", "last_error",
                                        "subject",    "auth",       "note",    "updated_at"};
    struct json_object *o = json_object_new_object();
    for (int c = 0; c < 12; c++)
        json_object_object_add(o, names[c], (c == 0 || c == 5) ? rd_cli_json_int(res, 0, c)
                                                               : rd_cli_json_text(res, 0, c));
    json_object_object_add(o, "headers", masked_headers_json(rd_cli_value(res, 0, 12)));
    struct json_object *body = NULL;
    const char *text = rd_cli_value(res, 0, 13);
    if (text && !parse_json(text, &body))
        body = json_object_new_string(text);
    json_object_object_add(o, "body", body);
    return o;
}

/* The human-readable form: fields, then headers and body as JSON, then the attempts. */
static void print_event_text(struct json_object *ev)
{
    static const char *const fields[] = {"id",     "connection", "source",      "event_type",
                                         "subject", "auth",      "status",      "attempts",
                                         "received_at", "updated_at", "last_error", "note", NULL};
    for (size_t i = 0; fields[i]; i++) {
        struct json_object *v = NULL;
        json_object_object_get_ex(ev, fields[i], &v);
        printf("%-12s %s\n", fields[i], v ? json_object_get_string(v) : "-");
    }
    struct json_object *v = NULL;
    json_object_object_get_ex(ev, "headers", &v);
    printf("headers:\n");
    rd_cli_json_print(v, true, stdout);
    json_object_object_get_ex(ev, "body", &v);
    printf("body:\n");
    if (v && json_object_is_type(v, json_type_string))
        printf("%s\n", json_object_get_string(v));
    else
        rd_cli_json_print(v, true, stdout);
    json_object_object_get_ex(ev, "attempt_log", &v);
    printf("attempt log:\n");
    static const char *const hdr[] = {"ATTEMPT", "STARTED_AT", "FINISHED_AT", "OUTCOME", "ERROR"};
    static const char *const keys[] = {"attempt", "started_at", "finished_at", "outcome", "error"};
    struct rd_cli_table *t = rd_cli_table_new(5, hdr);
    for (size_t i = 0; i < json_object_array_length(v); i++) {
        struct json_object *a = json_object_array_get_idx(v, i);
        const char *row[5];
        for (int c = 0; c < 5; c++) {
            struct json_object *cell = NULL;
            json_object_object_get_ex(a, keys[c], &cell);
            row[c] = cell ? json_object_get_string(cell) : NULL;
        }
        rd_cli_table_add(t, row);
    }
    rd_cli_table_print(t, stdout);
    rd_cli_table_free(t);
}

int rd_cli_events_show(struct rd_cli *cli, int argc, char **argv)
{
    bool json = false;
    const char *pos[1];
    size_t npos = 0;
    char err[512];
    int64_t id = 0;
    const struct rd_cli_opt opts[] = {{"--json", NULL, &json}};
    if (rd_cli_parse(argc, argv, opts, 1, pos, 1, &npos, err, sizeof err) != 0)
        return rd_cli_usage_error(cli, "%s", err);
    if (npos != 1 || !rd_cli_parse_int(pos[0], 1, INT64_MAX, &id))
        return rd_cli_usage_error(cli, "expected an event id (a positive number)");
    PGconn *db = rd_cli_db(cli);
    if (!db)
        return RD_CLI_FAIL;
    const char *params[1] = {pos[0]};
    PGresult *res = rd_db_exec(db, sql_show, 1, params, err, sizeof err);
    if (!res) {
        rd_cli_error("cannot read event: %s", err);
        return RD_CLI_FAIL;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        rd_cli_error("event %lld not found", (long long)id);
        return RD_CLI_FAIL;
    }
    struct json_object *ev = event_json(res);
    PQclear(res);
    struct json_object *log = attempt_log(db, pos[0], err, sizeof err);
    if (!log) {
        json_object_put(ev);
        rd_cli_error("cannot read event attempts: %s", err);
        return RD_CLI_FAIL;
    }
    json_object_object_add(ev, "attempt_log", log);
    if (json)
        rd_cli_json_print(ev, false, stdout);
    else
        print_event_text(ev);
    json_object_put(ev);
    return RD_CLI_OK;
}
