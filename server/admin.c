/*
 * Admin listener: health, readiness, Prometheus metrics and the /admin/... API.
 * Its own thread and event_base; database work here is blocking and short
 * (statement_timeout), which is fine for operator traffic and keeps the
 * intake loop free of it.
 */
#include "rosterd/admin.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>

#include "admin_internal.h"
#include "rosterd/crypto.h"
#include "rosterd/db.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/metrics.h"
#include "rosterd/migrate.h"
#include "rosterd/queue.h"
#include "rosterd/report.h"
#include "rosterd/verify.h"

struct rd_admin {
    const struct rd_config *cfg;
    char *token;
    struct event_base *base;
    struct evhttp *http;
    pthread_t thread;
    PGconn *db;
    _Atomic(bool (*)(void *)) probe;
    void *_Atomic probe_arg;
};

void rd_admin_set_ready_probe(struct rd_admin *a, bool (*probe)(void *arg), void *arg)
{
    atomic_store(&a->probe_arg, arg);
    atomic_store(&a->probe, probe);
}

/* A usable connection, re-established when the last one broke. NULL with err set. */
static PGconn *admin_db(void *arg, char *err, size_t errlen)
{
    struct rd_admin *a = arg;
    if (a->db && PQstatus(a->db) == CONNECTION_OK)
        return a->db;
    if (a->db)
        PQfinish(a->db);
    a->db = rd_db_connect(a->cfg->database_url, "rosterd-admin", err, errlen);
    if (a->db && rd_db_run(a->db, "SET statement_timeout = 5000", 0, NULL, err, errlen) != 0) {
        PQfinish(a->db);
        a->db = NULL;
    }
    return a->db;
}

static void on_readyz(struct rd_admin *a, struct evhttp_request *req)
{
    char err[512];
    int version = 0;
    PGconn *db = admin_db(a, err, sizeof(err));
    if (!db) {
        rd_admin_send_json(req, 503,
                           "{\"status\":\"not ready\",\"reason\":\"database unreachable\"}");
        return;
    }
    if (rd_migrate_current(db, &version, err, sizeof(err)) != 0) {
        rd_admin_send_json(req, 503,
                           "{\"status\":\"not ready\",\"reason\":\"database unreachable\"}");
        return;
    }
    if (version != rd_migrate_latest()) {
        char body[160];
        snprintf(body, sizeof(body),
                 "{\"status\":\"not ready\",\"reason\":\"schema at version %d, needs %d\"}",
                 version, rd_migrate_latest());
        rd_admin_send_json(req, 503, body);
        return;
    }
    bool (*probe)(void *) = atomic_load(&a->probe);
    if (probe && !probe(atomic_load(&a->probe_arg))) {
        rd_admin_send_json(req, 503,
                           "{\"status\":\"not ready\",\"reason\":\"intake not connected yet\"}");
        return;
    }
    rd_admin_send_json(req, 200, "{\"status\":\"ready\"}");
}

/* Appends rosterd_jobs{state}, read now from the database, to a metrics page. */
static void render_job_states(struct rd_admin *a, struct rd_buf *out)
{
    char err[512];
    int64_t counts[RD_JOBS_NSTATES];
    PGconn *db = admin_db(a, err, sizeof(err));
    rd_buf_puts(out, "# HELP rosterd_jobs Jobs in the queue by state, read at scrape time.\n"
                     "# TYPE rosterd_jobs gauge\n");
    if (!db || rd_queue_count_states(db, counts, err, sizeof(err)) != 0)
        return; /* no samples: the scrape still succeeds, the gap shows the outage */
    for (int i = 0; i < RD_JOBS_NSTATES; i++)
        rd_buf_printf(out, "rosterd_jobs{state=\"%s\"} %lld\n", rd_queue_state_name(i),
                      (long long)counts[i]);
}

static void on_metrics(struct rd_admin *a, struct evhttp_request *req)
{
    struct rd_buf out = {0};
    char err[512];
    /* The last successful reconciliation is in the runs table, whichever instance ran it. */
    PGconn *db = admin_db(a, err, sizeof(err));
    if (db && rd_report_update_metrics(db, err, sizeof(err)) != 0)
        rd_log_debug("metrics: reading the last reconciliations failed: %s", err);
    rd_metrics_render(&out);
    render_job_states(a, &out);
    rd_admin_send(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    rd_buf_free(&out);
}

static bool authorized(struct rd_admin *a, struct evhttp_request *req)
{
    if (!a->token)
        return false;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    /*
     * Hashed first (rd_verify_token), so the compare is constant time and does
     * not even reveal the token's length.
     */
    const char *tokens[1] = {a->token};
    return rd_verify_token(h + 7, tokens, 1);
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct rd_admin *a = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    if (!path) {
        rd_admin_send_error(req, 400, "bad request");
        return;
    }
    if (strncmp(path, "/admin/", 7) == 0 || strcmp(path, "/admin") == 0) {
        if (!authorized(a, req)) {
            rd_admin_send_error(req, 403, "forbidden");
            return;
        }
        rd_admin_api(admin_db, a, req, cmd, path, uri);
        return;
    }
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        rd_admin_send_error(req, 405, "method not allowed");
        return;
    }
    if (strcmp(path, "/healthz") == 0)
        rd_admin_send_json(req, 200, "{\"status\":\"ok\"}");
    else if (strcmp(path, "/readyz") == 0)
        on_readyz(a, req);
    else if (strcmp(path, "/metrics") == 0)
        on_metrics(a, req);
    else
        rd_admin_send_error(req, 404, "not found");
}

static void *admin_main(void *arg)
{
    struct rd_admin *a = arg;
    event_base_dispatch(a->base);
    return NULL;
}

struct rd_admin *rd_admin_start(const struct rd_config *cfg, const char *token, char *err,
                                size_t errlen)
{
    char *host = NULL;
    int port = 0;
    if (rd_config_split_hostport(cfg->admin_listen, &host, &port) != 0) {
        snprintf(err, errlen, "admin_listen: bad address");
        return NULL;
    }
    struct rd_admin *a = rd_calloc(1, sizeof(*a));
    a->cfg = cfg;
    a->token = token && *token ? rd_strdup(token) : NULL;
    a->base = event_base_new();
    a->http = evhttp_new(a->base);
    evhttp_set_gencb(a->http, on_request, a);
    evhttp_set_timeout(a->http, 30);
    evhttp_set_max_body_size(a->http, 1 << 20);
    evhttp_set_allowed_methods(a->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
    if (evhttp_bind_socket(a->http, host, (ev_uint16_t)port) != 0) {
        snprintf(err, errlen, "admin_listen: cannot bind %s", cfg->admin_listen);
        free(host);
        evhttp_free(a->http);
        event_base_free(a->base);
        free(a->token);
        free(a);
        return NULL;
    }
    free(host);
    if (pthread_create(&a->thread, NULL, admin_main, a) != 0)
        abort();
    rd_log_info("admin listener on http://%s", cfg->admin_listen);
    return a;
}

void rd_admin_stop(struct rd_admin *a)
{
    if (!a)
        return;
    event_base_loopexit(a->base, NULL);
    pthread_join(a->thread, NULL);
    evhttp_free(a->http);
    event_base_free(a->base);
    if (a->db)
        PQfinish(a->db);
    if (a->token) {
        rd_memzero(a->token, strlen(a->token));
        free(a->token);
    }
    free(a);
}
