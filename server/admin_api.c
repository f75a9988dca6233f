/*
 * The /admin/... JSON API: mirrors rosterctl's events, replay and jobs
 * commands with the same modules (events.c, replay.c), so the answers match.
 * Requests are already authorised by admin.c.
 *
 *   GET  /admin/events?connection=&source=&status=&since=&limit=   → [event…]
 *   GET  /admin/events/count?…same filters…                       → {"count": N}
 *   GET  /admin/events/ID                                          → event with attempt_log
 *   POST /admin/events/replay {"ids":[…]} | {"status":"dead","connection","since"}, "dry_run"
 *   GET  /admin/jobs?kind=&state=&connection=&limit=               → [job…]
 *   GET  /admin/reports?connection=&limit=                         → [run…] newest first
 *   GET  /admin/reports/latest?connection=  |  /admin/reports/ID   → one run's report
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <json-c/json.h>

#include "admin_internal.h"
#include "rosterd/events.h"
#include "rosterd/mem.h"
#include "rosterd/replay.h"
#include "rosterd/report.h"

#define MAX_REPLAY_IDS 10000

static void send_value(struct evhttp_request *req, int code, struct json_object *v)
{
    rd_admin_send_json(req, code, json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
}

static bool parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s || !*s)
        return false;
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (*end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static void events_list(struct evhttp_request *req, PGconn *db, struct evkeyvalq *q, bool count)
{
    char err[512];
    struct rd_events_filter f;
    const char *bad = rd_events_filter_set(
        &f, evhttp_find_header(q, "connection"), evhttp_find_header(q, "source"),
        evhttp_find_header(q, "status"), evhttp_find_header(q, "since"));
    int64_t limit = RD_EVENTS_LIMIT_DEFAULT;
    const char *lim = evhttp_find_header(q, "limit");
    if (!bad && lim && !parse_int(lim, 1, RD_EVENTS_LIMIT_MAX, &limit))
        bad = "limit: expected a number from 1 to 10000";
    if (bad) {
        rd_admin_send_error(req, 400, bad + (bad[0] == '-' ? 2 : 0));
        return;
    }
    if (f.connection) {
        int found = rd_events_connection_exists(db, f.connection, err, sizeof(err));
        if (found <= 0) {
            rd_admin_send_error(req, found < 0 ? 503 : 404,
                                found < 0 ? "database unavailable" : "connection not found");
            return;
        }
    }
    struct json_object *out = NULL;
    int64_t n = 0;
    int rc = count ? rd_events_count(db, &f, &n, err, sizeof(err))
                   : rd_events_list(db, &f, limit, &out, err, sizeof(err));
    if (rc != 0) {
        rd_admin_send_error(req, 503, "database unavailable");
        return;
    }
    if (count) {
        out = json_object_new_object();
        json_object_object_add(out, "count", json_object_new_int64(n));
    }
    send_value(req, 200, out);
    json_object_put(out);
}

static void events_get(struct evhttp_request *req, PGconn *db, const char *idtext)
{
    char err[512];
    int64_t id = 0;
    if (!parse_int(idtext, 1, INT64_MAX, &id)) {
        rd_admin_send_error(req, 404, "not found");
        return;
    }
    struct json_object *ev = NULL;
    if (rd_events_get(db, id, &ev, err, sizeof(err)) != 0) {
        rd_admin_send_error(req, 503, "database unavailable");
        return;
    }
    if (!ev) {
        rd_admin_send_error(req, 404, "event not found");
        return;
    }
    send_value(req, 200, ev);
    json_object_put(ev);
}

/* Reads the request body as a JSON object; NULL when it is not one. */
static struct json_object *body_object(struct evhttp_request *req)
{
    struct evbuffer *b = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(b);
    if (len == 0)
        return json_object_new_object();
    char *text = (char *)evbuffer_pullup(b, -1);
    struct json_tokener *tok = json_tokener_new();
    struct json_object *o = json_tokener_parse_ex(tok, text, (int)len);
    if (json_tokener_get_error(tok) != json_tokener_success ||
        !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

static const char *str_field(struct json_object *o, const char *name)
{
    struct json_object *v = NULL;
    return json_object_object_get_ex(o, name, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

static void events_replay(struct evhttp_request *req, PGconn *db)
{
    char err[512] = "";
    struct json_object *body = body_object(req), *ids = NULL, *dry = NULL, *result = NULL;
    if (!body) {
        rd_admin_send_error(req, 400, "body must be a JSON object");
        return;
    }
    bool dry_run = json_object_object_get_ex(body, "dry_run", &dry) && json_object_get_boolean(dry);
    int rc;
    if (json_object_object_get_ex(body, "ids", &ids)) {
        size_t n = json_object_is_type(ids, json_type_array) ? json_object_array_length(ids) : 0;
        if (n == 0 || n > MAX_REPLAY_IDS) {
            json_object_put(body);
            rd_admin_send_error(req, 400, "ids: expected a list of 1 to 10000 event ids");
            return;
        }
        int64_t *v = calloc(n, sizeof(*v));
        for (size_t i = 0; v && i < n; i++)
            v[i] = json_object_get_int64(json_object_array_get_idx(ids, i));
        rc = v ? rd_replay_ids(db, v, n, dry_run, &result, err, sizeof(err)) : -1;
        free(v);
    } else {
        struct rd_replay_filter f = {str_field(body, "status"), str_field(body, "connection"),
                                     str_field(body, "since")};
        rc = rd_replay_filtered(db, &f, dry_run, &result, err, sizeof(err));
    }
    json_object_put(body);
    if (rc == RD_REPLAY_EINVAL)
        rd_admin_send_error(req, 400, err + (err[0] == '-' ? 2 : 0));
    else if (rc != 0)
        rd_admin_send_error(req, 503, "database unavailable");
    else
        send_value(req, 200, result);
    json_object_put(result);
}

static void jobs_list(struct evhttp_request *req, PGconn *db, struct evkeyvalq *q)
{
    char err[512];
    struct rd_jobs_filter f = {evhttp_find_header(q, "kind"), evhttp_find_header(q, "state"),
                               evhttp_find_header(q, "connection"), 0};
    const char *lim = evhttp_find_header(q, "limit");
    if (lim && !parse_int(lim, 1, 100000, &f.limit)) {
        rd_admin_send_error(req, 400, "limit: expected a number from 1 to 100000");
        return;
    }
    struct json_object *out = NULL;
    int rc = rd_jobs_list(db, &f, &out, err, sizeof(err));
    if (rc == RD_REPLAY_EINVAL)
        rd_admin_send_error(req, 400, err + (err[0] == '-' ? 2 : 0));
    else if (rc != 0)
        rd_admin_send_error(req, 503, "database unavailable");
    else
        send_value(req, 200, out);
    json_object_put(out);
}

/* The same JSON as `rosterctl report show --format json` and a connection's runs. */
static void reports(struct evhttp_request *req, PGconn *db, struct evkeyvalq *q, const char *rest)
{
    char err[512];
    const char *conn = evhttp_find_header(q, "connection");
    int64_t id = 0, limit = 30;
    bool latest = rest && strcmp(rest, "latest") == 0;
    if (rest && !latest && !parse_int(rest, 1, INT64_MAX, &id)) {
        rd_admin_send_error(req, 404, "not found");
        return;
    }
    const char *lim = evhttp_find_header(q, "limit");
    if (!rest && lim && !parse_int(lim, 1, 1000, &limit)) {
        rd_admin_send_error(req, 400, "limit: expected a number from 1 to 1000");
        return;
    }
    if (!conn && (latest || !rest)) {
        rd_admin_send_error(req, 400, "connection: required");
        return;
    }
    if (conn) {
        int found = rd_events_connection_exists(db, conn, err, sizeof(err));
        if (found <= 0) {
            rd_admin_send_error(req, found < 0 ? 503 : 404,
                                found < 0 ? "database unavailable" : "connection not found");
            return;
        }
    }
    struct json_object *out = NULL;
    int rc = rest ? rd_report_get(db, conn, id, &out, err, sizeof(err))
                  : rd_report_list(db, conn, limit, 0, &out, err, sizeof(err));
    if (rc != 0)
        rd_admin_send_error(req, 503, "database unavailable");
    else if (!out)
        rd_admin_send_error(req, 404, "run not found");
    else
        send_value(req, 200, out);
    json_object_put(out);
}

void rd_admin_api(rd_admin_db_fn get_db, void *db_arg, struct evhttp_request *req,
                  enum evhttp_cmd_type cmd, const char *path, const struct evhttp_uri *uri)
{
    char err[512];
    struct evkeyvalq q = {0};
    const char *query = evhttp_uri_get_query(uri);
    if (query && evhttp_parse_query_str(query, &q) != 0) {
        rd_admin_send_error(req, 400, "malformed query string");
        return;
    }
    bool get = cmd == EVHTTP_REQ_GET, post = cmd == EVHTTP_REQ_POST;
    bool known = strcmp(path, "/admin/events") == 0 || strcmp(path, "/admin/jobs") == 0 ||
                 strcmp(path, "/admin/events/count") == 0 ||
                 strcmp(path, "/admin/events/replay") == 0 ||
                 strncmp(path, "/admin/events/", 14) == 0 || strcmp(path, "/admin/reports") == 0 ||
                 strncmp(path, "/admin/reports/", 15) == 0;
    PGconn *db = NULL;
    if (!known)
        rd_admin_send_error(req, 404, "not found");
    else if (!(db = get_db(db_arg, err, sizeof(err))))
        rd_admin_send_error(req, 503, "database unavailable");
    else if (strcmp(path, "/admin/events/replay") == 0)
        post ? events_replay(req, db) : rd_admin_send_error(req, 405, "method not allowed");
    else if (!get)
        rd_admin_send_error(req, 405, "method not allowed");
    else if (strcmp(path, "/admin/events") == 0)
        events_list(req, db, &q, false);
    else if (strcmp(path, "/admin/events/count") == 0)
        events_list(req, db, &q, true);
    else if (strcmp(path, "/admin/jobs") == 0)
        jobs_list(req, db, &q);
    else if (strcmp(path, "/admin/reports") == 0)
        reports(req, db, &q, NULL);
    else if (strncmp(path, "/admin/reports/", 15) == 0)
        reports(req, db, &q, path + 15);
    else
        events_get(req, db, path + 14);
    evhttp_clear_headers(&q);
}
