/*
 * rosterctl events list|count|show: the operator's view of the durable event
 * log. Filters are checked before any query so bad values are usage errors
 * (exit 2). The queries live in events.c, shared with the admin API.
 */
#include "cli_internal.h"

#include "rosterd/events.h"
#include "rosterd/mem.h"

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

/* Parses the filter options plus --limit and --json; returns an RD_CLI_ code. */
static int parse_filters(struct rd_cli *cli, int argc, char **argv, struct rd_events_filter *f,
                         int64_t *limit, bool *json)
{
    char err[256];
    size_t npos = 0;
    const char *connection = NULL, *source = NULL, *status = NULL, *since = NULL, *lim = NULL;
    const struct rd_cli_opt opts[] = {
        {"--connection", &connection, NULL},
        {"--source", &source, NULL},
        {"--status", &status, NULL},
        {"--since", &since, NULL},
        {"--limit", &lim, NULL},
        {"--json", NULL, json},
    };
    /* count takes neither --limit nor --json. */
    size_t nopts = limit ? 6 : 4;
    if (rd_cli_parse(argc, argv, opts, nopts, NULL, 0, &npos, err, sizeof err) != 0)
        return rd_cli_usage_error(cli, "%s", err);
    if (limit) {
        *limit = RD_EVENTS_LIMIT_DEFAULT;
        if (lim && !rd_cli_parse_int(lim, 1, RD_EVENTS_LIMIT_MAX, limit))
            return rd_cli_usage_error(cli, "--limit: expected a number from 1 to %d",
                                      RD_EVENTS_LIMIT_MAX);
    }
    const char *bad = rd_events_filter_set(f, connection, source, status, since);
    if (bad)
        return rd_cli_usage_error(cli, "%s", bad);
    return RD_CLI_OK;
}

static const char *field(struct json_object *o, const char *name)
{
    struct json_object *v = NULL;
    if (!json_object_object_get_ex(o, name, &v) || !v)
        return NULL;
    return json_object_get_string(v);
}

static void print_table(struct json_object *arr)
{
    static const char *const keys[] = {"id",     "connection", "source",      "event_type",
                                       "status", "attempts",   "received_at", "last_error"};
    static const char *const hdr[] = {"ID",     "CONNECTION", "SOURCE",      "EVENT_TYPE",
                                      "STATUS", "ATTEMPTS",   "RECEIVED_AT", "LAST_ERROR"};
    struct rd_cli_table *t = rd_cli_table_new(8, hdr);
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        struct json_object *o = json_object_array_get_idx(arr, i);
        const char *row[8];
        for (int c = 0; c < 8; c++)
            row[c] = field(o, keys[c]);
        if (!row[7])
            row[7] = "";
        rd_cli_table_add(t, row);
    }
    rd_cli_table_print(t, stdout);
    rd_cli_table_free(t);
}

int rd_cli_events_list(struct rd_cli *cli, int argc, char **argv)
{
    struct rd_events_filter f;
    int64_t limit = 0;
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
    struct json_object *arr = NULL;
    if (rd_events_list(db, &f, limit, &arr, err, sizeof err) != 0) {
        rd_cli_error("cannot list events: %s", err);
        return RD_CLI_FAIL;
    }
    if (json)
        rd_cli_json_print(arr, false, stdout);
    else
        print_table(arr);
    json_object_put(arr);
    return RD_CLI_OK;
}

int rd_cli_events_count(struct rd_cli *cli, int argc, char **argv)
{
    struct rd_events_filter f;
    char err[512];
    int rc = parse_filters(cli, argc, argv, &f, NULL, NULL);
    if (rc != RD_CLI_OK)
        return rc;
    PGconn *db = rd_cli_db(cli);
    if (!db)
        return RD_CLI_FAIL;
    if (rd_cli_check_connection(db, f.connection) != RD_CLI_OK)
        return RD_CLI_FAIL;
    int64_t n = 0;
    if (rd_events_count(db, &f, &n, err, sizeof err) != 0) {
        rd_cli_error("cannot count events: %s", err);
        return RD_CLI_FAIL;
    }
    printf("%lld\n", (long long)n);
    return RD_CLI_OK;
}

/* The human-readable form: fields, then headers and body as JSON, then the attempts. */
static void print_event_text(struct json_object *ev)
{
    static const char *const fields[] = {
        "id",       "connection",  "source",     "event_type", "subject", "auth", "status",
        "attempts", "received_at", "updated_at", "last_error", "note",    NULL};
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
    struct json_object *ev = NULL;
    if (rd_events_get(db, id, &ev, err, sizeof err) != 0) {
        rd_cli_error("cannot read event: %s", err);
        return RD_CLI_FAIL;
    }
    if (!ev) {
        rd_cli_error("event %lld not found", (long long)id);
        return RD_CLI_FAIL;
    }
    if (json)
        rd_cli_json_print(ev, false, stdout);
    else
        print_event_text(ev);
    json_object_put(ev);
    return RD_CLI_OK;
}
