/*
 * Handlers for tests and benchmarks. "noop" does nothing. "test.script" follows
 * directions in each event's body ({"script": {...}}, also under "payload") or in
 * the job's payload: sleep_ms (≤ 60000), fail ("retry"|"permanent"), http_status
 * (an upstream answer: permanent per rd_queue_http_permanent), fail_times (fail
 * only while the event's attempt number is at most this), note. "test.upstream"
 * makes one level-triggered upstream write per event (script.scim_user: a platform
 * user created unless it exists), for the fault-injection test. All of them run
 * only with test_handlers = on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "rosterd/handler.h"
#include "rosterd/jsonx.h"
#include "rosterd/queue.h"
#include "rosterd/scim.h"
#include "rosterd/sync.h"

static int noop_run(struct rd_job_ctx *ctx)
{
    (void)ctx;
    return 0;
}

static struct json_object *script_of(struct json_object *doc)
{
    struct json_object *s = NULL, *p = NULL;
    if (json_object_object_get_ex(doc, "script", &s) && json_object_is_type(s, json_type_object))
        return s;
    if (json_object_object_get_ex(doc, "payload", &p) &&
        json_object_object_get_ex(p, "script", &s) && json_object_is_type(s, json_type_object))
        return s;
    return NULL;
}

static int64_t get_int(struct json_object *s, const char *name, int64_t def)
{
    struct json_object *v = NULL;
    return json_object_object_get_ex(s, name, &v) ? json_object_get_int64(v) : def;
}

static const char *get_str(struct json_object *s, const char *name)
{
    struct json_object *v = NULL;
    return json_object_object_get_ex(s, name, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* Follows one script; attempt is the event's (or the job's) attempt number. */
static int follow(struct rd_job_ctx *ctx, struct json_object *s, int attempt)
{
    int64_t ms = get_int(s, "sleep_ms", 0);
    if (ms > 60000)
        ms = 60000;
    if (ms > 0) {
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0) {
        }
    }
    const char *note = get_str(s, "note");
    if (note)
        snprintf(ctx->note, sizeof ctx->note, "%s", note);
    const char *fail = get_str(s, "fail");
    int64_t status = get_int(s, "http_status", 0);
    int64_t times = get_int(s, "fail_times", -1);
    if ((!fail && status == 0) || (times >= 0 && attempt > times))
        return 0;
    if (status) {
        snprintf(ctx->err, sizeof ctx->err, "upstream answered %lld", (long long)status);
        ctx->permanent = rd_queue_http_permanent((long)status);
    } else {
        snprintf(ctx->err, sizeof ctx->err, "scripted %s failure on attempt %d", fail, attempt);
        ctx->permanent = strcmp(fail, "permanent") == 0;
    }
    return -1;
}

static int script_run(struct rd_job_ctx *ctx)
{
    int rc = 0;
    if (ctx->payload && script_of(ctx->payload))
        rc = follow(ctx, script_of(ctx->payload), ctx->attempt);
    for (size_t i = 0; rc == 0 && i < ctx->nevents; i++) {
        char *body = NULL;
        int attempt = 0;
        if (rd_job_event_body(ctx, i, &body, &attempt) != 0)
            return -1;
        struct json_object *doc = rd_json_parse_stored(body);
        struct json_object *s = doc ? script_of(doc) : NULL;
        if (s)
            rc = follow(ctx, s, attempt);
        json_object_put(doc);
        free(body);
    }
    return rc;
}

/* The platform user a test.upstream event names exists afterwards: read first, create if missing.
 */
static int ensure_user(struct rd_sync *s, const char *user, char *note, size_t notelen,
                       struct rd_http_error *err)
{
    struct rd_scim *sc = rd_sync_scim(s, err);
    struct rd_scim_user u;
    bool found = false;
    memset(&u, 0, sizeof u);
    if (!sc || rd_scim_find_user(sc, user, s->deadline, &found, &u, err) != 0)
        return -1;
    int rc = 0;
    if (!found) {
        struct rd_scim_new_user nu = {
            .user_name = user, .given_name = "Fault", .family_name = "Test", .active = true};
        rc = rd_scim_create_user(sc, &nu, rd_sync_audit(s), s->deadline, &u, err);
    }
    snprintf(note, notelen, "%s %s", found ? "found" : "created", user);
    rd_scim_user_clear(&u);
    return rc;
}

static int upstream_run(struct rd_job_ctx *ctx)
{
    struct rd_sync *s = rd_sync_open_job(ctx);
    if (!s)
        return -1;
    struct rd_http_error err;
    memset(&err, 0, sizeof err);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < ctx->nevents; i++) {
        char *body = NULL;
        if (rd_job_event_body(ctx, i, &body, NULL) != 0) {
            rc = -1;
            break;
        }
        struct json_object *doc = rd_json_parse_stored(body);
        struct json_object *script = doc ? script_of(doc) : NULL;
        const char *user = script ? get_str(script, "scim_user") : NULL;
        if (user && ensure_user(s, user, ctx->note, sizeof ctx->note, &err) != 0)
            rc = rd_sync_fail(ctx, &err);
        json_object_put(doc);
        free(body);
    }
    rd_sync_close(s);
    return rc;
}

static const struct rd_handler handlers[] = {
    {.kind = "noop", .run = noop_run, .test_only = true},
    {.kind = "test.script", .run = script_run, .test_only = true},
    {.kind = "test.upstream", .run = upstream_run, .needs_connection = true, .test_only = true},
};

const struct rd_capability rd_cap_noop = {
    .name = "noop",
    .handlers = handlers,
    .nhandlers = sizeof handlers / sizeof handlers[0],
};
