/*
 * Personio v1 client. The bearer token is cached per (base_url, client_id) for
 * the whole process, refreshed once on 401/403, and replaced by a rotated
 * `authorization` response header (the legacy one-time-token behaviour).
 */
#include "rosterd/jsonx.h"
#include "rosterd/personio.h"
#include "rosterd/crypto.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/pacer.h"

#include <ctype.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EMPLOYEE_PAGE 100
#define ATTENDANCE_PAGE 200
#define MAX_PAGES 100000

/* ---- process-wide token cache ---- */

struct token_entry {
    struct token_entry *next;
    char *key;               /* base_url "\n" client_id */
    pthread_mutex_t refresh; /* held while one worker calls /v1/auth for this account */
    char *token;             /* guarded by g_tok_lock */
    double expires;          /* monotonic */
};

static pthread_mutex_t g_tok_lock = PTHREAD_MUTEX_INITIALIZER;
static struct token_entry *g_tokens;
static unsigned long g_auth_count;

struct rd_personio {
    struct rd_http_client *http;
    char *base_url;
    char *client_id;
    char *client_secret;
    struct token_entry *entry;
    int time_off_limit;
    /* pacing (upstream-apis §1.5): the employees endpoints of this account, all of v1 */
    struct rd_pacer *pace_employees;
    struct rd_pacer *pace_v1;
    PGconn *budget_db;
};

/* 300 per minute with bursts of 15 per second on GET employees; 2000 per minute on v1. */
static const struct rd_rate EMPLOYEE_RATES[] = {{.limit = 300, .window_s = 60.0},
                                                {.limit = 15, .window_s = 1.0}};
static const struct rd_rate V1_RATES[] = {{.limit = 2000, .window_s = 60.0}};

static struct token_entry *token_entry_get(const char *base_url, const char *client_id)
{
    char *key = rd_asprintf("%s\n%s", base_url, client_id);
    pthread_mutex_lock(&g_tok_lock);
    struct token_entry *e = g_tokens;
    while (e && strcmp(e->key, key) != 0)
        e = e->next;
    if (!e) {
        e = rd_calloc(1, sizeof(*e));
        e->key = key;
        key = NULL;
        pthread_mutex_init(&e->refresh, NULL);
        e->next = g_tokens;
        g_tokens = e;
    }
    pthread_mutex_unlock(&g_tok_lock);
    free(key);
    return e;
}

static void zfree(char *s)
{
    if (s) {
        rd_memzero(s, strlen(s));
        free(s);
    }
}

void rd_personio_token_cache_clear(void)
{
    pthread_mutex_lock(&g_tok_lock);
    struct token_entry *e = g_tokens;
    g_tokens = NULL;
    pthread_mutex_unlock(&g_tok_lock);
    while (e) {
        struct token_entry *next = e->next;
        zfree(e->token);
        free(e->key);
        pthread_mutex_destroy(&e->refresh);
        free(e);
        e = next;
    }
}

unsigned long rd_personio_auth_count(void)
{
    pthread_mutex_lock(&g_tok_lock);
    unsigned long n = g_auth_count;
    pthread_mutex_unlock(&g_tok_lock);
    return n;
}

/* A copy of the cached token when it is usable and differs from stale; NULL otherwise. */
static char *token_cached(struct token_entry *e, const char *stale)
{
    char *out = NULL;
    pthread_mutex_lock(&g_tok_lock);
    if (e->token && rd_http_now() < e->expires - 60.0 && (!stale || strcmp(stale, e->token) != 0))
        out = rd_strdup(e->token);
    pthread_mutex_unlock(&g_tok_lock);
    return out;
}

/* Adopts a rotated token, but only over the one this request used (no stale overwrite). */
static void token_adopt(struct token_entry *e, const char *used, const char *header)
{
    if (!header || strncasecmp(header, "Bearer ", 7) != 0)
        return;
    const char *tok = header + 7;
    while (*tok == ' ')
        tok++;
    if (!*tok || strcmp(tok, used) == 0)
        return;
    pthread_mutex_lock(&g_tok_lock);
    if (e->token && strcmp(e->token, used) == 0) {
        zfree(e->token);
        e->token = rd_strdup(tok);
    }
    pthread_mutex_unlock(&g_tok_lock);
}

/* ---- small JSON helpers ---- */

/* {label, value, type, universal_id} → value; anything else is returned as is. */
static struct json_object *unwrap(struct json_object *v)
{
    struct json_object *inner;
    if (v && json_object_is_type(v, json_type_object) &&
        json_object_object_get_ex(v, "value", &inner))
        return inner;
    return v;
}

static struct json_object *attr(struct json_object *attrs, const char *k)
{
    return unwrap(rd_json_get(attrs, k));
}

static char *jstr(struct json_object *v)
{
    if (!v || json_object_is_type(v, json_type_null))
        return NULL;
    if (json_object_is_type(v, json_type_object) || json_object_is_type(v, json_type_array))
        return NULL;
    const char *s = json_object_get_string(v);
    return s && *s ? rd_strdup(s) : NULL;
}

static int64_t jint(struct json_object *v)
{
    if (!v)
        return 0;
    switch (json_object_get_type(v)) {
    case json_type_int:
        return json_object_get_int64(v);
    case json_type_double:
        return (int64_t)json_object_get_double(v);
    case json_type_string: {
        const char *s = json_object_get_string(v);
        char *end;
        long long n = strtoll(s, &end, 10);
        return (end != s && *end == '\0') ? (int64_t)n : 0;
    }
    default:
        return 0;
    }
}

static bool jbool(struct json_object *v)
{
    if (!v)
        return false;
    if (json_object_is_type(v, json_type_string)) {
        const char *s = json_object_get_string(v);
        return strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0;
    }
    return json_object_get_boolean(v);
}

/* "2014-11-09T00:00:00+01:00" or "2017-12-27T00:00:00+0100" → "2014-11-09" (the local date). */
static char *jdate(struct json_object *v)
{
    if (!v || !json_object_is_type(v, json_type_string))
        return NULL;
    const char *s = json_object_get_string(v);
    if (strlen(s) < 10)
        return NULL;
    for (int i = 0; i < 10; i++) {
        bool dash = i == 4 || i == 7;
        if (dash ? s[i] != '-' : !isdigit((unsigned char)s[i]))
            return NULL;
    }
    return rd_strndup(s, 10);
}

/* ---- record lifetimes ---- */

void rd_personio_employee_clear(struct rd_personio_employee *e)
{
    if (!e)
        return;
    free(e->email);
    free(e->first_name);
    free(e->last_name);
    free(e->status);
    free(e->hire_date);
    free(e->termination_date);
    free(e->last_working_day);
    free(e->team);
    free(e->department);
    for (size_t i = 0; i < e->ncost_centers; i++)
        free(e->cost_centers[i]);
    free(e->cost_centers);
    memset(e, 0, sizeof(*e));
}

void rd_personio_employee_list_free(struct rd_personio_employee_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        rd_personio_employee_clear(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

void rd_personio_time_off_clear(struct rd_personio_time_off *t)
{
    if (!t)
        return;
    free(t->id_v2);
    free(t->status);
    free(t->start_date);
    free(t->end_date);
    free(t->type_name);
    memset(t, 0, sizeof(*t));
}

void rd_personio_time_off_list_free(struct rd_personio_time_off_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        rd_personio_time_off_clear(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

void rd_personio_attendance_list_free(struct rd_personio_attendance_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i].comment);
        free(l->items[i].status);
    }
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

/* ---- parsing ---- */

/* {"type":"Team","attributes":{"id":…,"name":…}} → id and name. */
static void parse_named(struct json_object *v, int64_t *id, char **name)
{
    struct json_object *a = rd_json_get(v, "attributes");
    if (!a)
        a = v;
    *id = jint(unwrap(rd_json_get(a, "id")));
    *name = jstr(unwrap(rd_json_get(a, "name")));
}

/* "08:00", "8:30", "08:00:00", "8", "7.5" or a number of hours → minutes; -1 when unreadable. */
static int schedule_minutes(struct json_object *v)
{
    if (!v)
        return -1;
    if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)) {
        double h = json_object_get_double(v);
        return h >= 0 && h <= 24 ? (int)(h * 60.0 + 0.5) : -1;
    }
    if (!json_object_is_type(v, json_type_string))
        return -1;
    const char *s = json_object_get_string(v);
    int hh = 0, mm = 0, n = 0;
    if (sscanf(s, "%2d:%2d%n", &hh, &mm, &n) == 2 && (s[n] == '\0' || s[n] == ':'))
        return hh >= 0 && hh <= 24 && mm >= 0 && mm < 60 ? hh * 60 + mm : -1;
    char *end = NULL;
    double h = strtod(s, &end);
    return end != s && *end == '\0' && h >= 0 && h <= 24 ? (int)(h * 60.0 + 0.5) : -1;
}

/*
 * work_schedule → working days (bit 0 Monday … bit 6 Sunday). Personio has been
 * seen to send other shapes than the documented {"type":"WorkSchedule",
 * "attributes":{"monday":"08:00",…}} (a bare name, null): anything without a
 * readable week, or a week of no hours, gives 0 and the caller's default.
 */
static unsigned parse_work_days(struct json_object *v)
{
    static const char *const days[7] = {"monday", "tuesday",  "wednesday", "thursday",
                                        "friday", "saturday", "sunday"};
    if (!v || !json_object_is_type(v, json_type_object))
        return 0;
    struct json_object *a = rd_json_get(v, "attributes");
    if (!a || !json_object_is_type(a, json_type_object))
        a = v;
    unsigned mask = 0;
    for (int i = 0; i < 7; i++)
        if (schedule_minutes(unwrap(rd_json_get(a, days[i]))) > 0)
            mask |= 1u << i;
    return mask;
}

int rd_personio_parse_employee(struct json_object *item, struct rd_personio_employee *out)
{
    memset(out, 0, sizeof(*out));
    struct json_object *a = rd_json_get(item, "attributes");
    if (!a)
        return -1;
    out->id = jint(attr(a, "id"));
    if (out->id <= 0)
        return -1;
    out->email = jstr(attr(a, "email"));
    out->first_name = jstr(attr(a, "first_name"));
    out->last_name = jstr(attr(a, "last_name"));
    out->status = jstr(attr(a, "status"));
    out->hire_date = jdate(attr(a, "hire_date"));
    out->termination_date = jdate(attr(a, "termination_date"));
    out->last_working_day = jdate(attr(a, "last_working_day"));
    struct json_object *sup = attr(a, "supervisor");
    if (sup && json_object_is_type(sup, json_type_object))
        out->supervisor_id = jint(unwrap(rd_json_get(rd_json_get(sup, "attributes"), "id")));
    else
        out->supervisor_id = jint(sup);
    struct json_object *team = attr(a, "team");
    if (team && json_object_is_type(team, json_type_object))
        parse_named(team, &out->team_id, &out->team);
    struct json_object *dept = attr(a, "department");
    if (dept && json_object_is_type(dept, json_type_object))
        parse_named(dept, &out->department_id, &out->department);
    struct json_object *cc = attr(a, "cost_centers");
    if (cc && json_object_is_type(cc, json_type_array)) {
        size_t n = json_object_array_length(cc);
        out->cost_centers = rd_calloc(n ? n : 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
            int64_t id;
            char *name = NULL;
            parse_named(json_object_array_get_idx(cc, i), &id, &name);
            if (name)
                out->cost_centers[out->ncost_centers++] = name;
        }
    }
    out->work_days = parse_work_days(attr(a, "work_schedule"));
    return 0;
}

int rd_personio_parse_time_off(struct json_object *item, struct rd_personio_time_off *out)
{
    memset(out, 0, sizeof(*out));
    struct json_object *a = rd_json_get(item, "attributes");
    if (!a)
        return -1;
    out->id = jint(attr(a, "id"));
    if (out->id <= 0)
        out->id = jint(rd_json_get(item, "id"));
    if (out->id <= 0)
        return -1;
    out->id_v2 = jstr(attr(a, "id_v2"));
    out->status = jstr(attr(a, "status"));
    out->start_date = jdate(attr(a, "start_date"));
    out->end_date = jdate(attr(a, "end_date"));
    out->half_day_start = jbool(attr(a, "half_day_start"));
    out->half_day_end = jbool(attr(a, "half_day_end"));
    struct json_object *tt = attr(a, "time_off_type");
    if (tt && json_object_is_type(tt, json_type_object))
        parse_named(tt, &out->type_id, &out->type_name);
    struct json_object *emp = attr(a, "employee");
    if (emp && json_object_is_type(emp, json_type_object))
        out->employee_id = jint(unwrap(rd_json_get(rd_json_get(emp, "attributes"), "id")));
    else
        out->employee_id = jint(emp);
    return 0;
}

int rd_personio_parse_time_off_page(const char *body, size_t len,
                                    struct rd_personio_time_off_list *out, int *total_pages)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *root = json_tokener_parse_ex(tok, body, (int)len);
    bool ok = json_tokener_get_error(tok) == json_tokener_success && root;
    json_tokener_free(tok);
    struct json_object *data = rd_json_get(root, "data");
    if (!ok || !data || !json_object_is_type(data, json_type_array)) {
        json_object_put(root);
        return -1;
    }
    *total_pages = (int)jint(rd_json_get(rd_json_get(root, "metadata"), "total_pages"));
    size_t n = json_object_array_length(data);
    out->items = rd_realloc(out->items, (out->count + n + 1) * sizeof(*out->items));
    for (size_t i = 0; i < n; i++) {
        struct rd_personio_time_off t;
        if (rd_personio_parse_time_off(json_object_array_get_idx(data, i), &t) != 0)
            continue;
        bool dup = false;
        for (size_t j = 0; j < out->count && !dup; j++)
            dup = out->items[j].id == t.id;
        if (dup)
            rd_personio_time_off_clear(&t); /* Personio repeats rows across pages */
        else
            out->items[out->count++] = t;
    }
    json_object_put(root);
    return 0;
}

static bool contains_overlap(struct json_object *v)
{
    const char *s =
        v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
    return s && strcasestr(s, "overlap") != NULL;
}

bool rd_personio_is_overlap_error(const char *body, size_t len)
{
    struct json_object *root = body ? json_tokener_parse(body) : NULL;
    struct json_object *e = rd_json_get(root, "error");
    bool hit = contains_overlap(rd_json_get(e, "message"));
    struct json_object *rows = rd_json_get(e, "detailed_message");
    if (rows && json_object_is_type(rows, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(rows); i++)
            hit = hit ||
                  contains_overlap(rd_json_get(json_object_array_get_idx(rows, i), "error_msg"));
    }
    json_object_put(root);
    (void)len;
    return hit;
}

void rd_personio_error_message(const char *body, size_t len, char *out, size_t outlen)
{
    out[0] = '\0';
    struct json_tokener *tok = json_tokener_new();
    struct json_object *root = json_tokener_parse_ex(tok, body, (int)len);
    json_tokener_free(tok);
    struct json_object *e = rd_json_get(root, "error");
    const char *msg = NULL;
    if (rd_json_get(e, "message") &&
        json_object_is_type(rd_json_get(e, "message"), json_type_string))
        msg = json_object_get_string(rd_json_get(e, "message"));
    if (!msg) {
        rd_json_excerpt(body, len, out, outlen);
        json_object_put(root);
        return;
    }
    const char *detail = NULL;
    struct json_object *rows = rd_json_get(e, "detailed_message");
    for (size_t i = 0; rows && json_object_is_type(rows, json_type_array) &&
                       i < json_object_array_length(rows) && !detail;
         i++) {
        struct json_object *em = rd_json_get(json_object_array_get_idx(rows, i), "error_msg");
        if (em && json_object_is_type(em, json_type_string))
            detail = json_object_get_string(em);
    }
    snprintf(out, outlen, "%s%s%s", msg, detail ? ": " : "", detail ? detail : "");
    json_object_put(root);
}

/* ---- client ---- */

struct rd_personio *rd_personio_new(struct rd_http_client *http, const char *base_url,
                                    const char *client_id, const char *client_secret)
{
    struct rd_personio *p = rd_calloc(1, sizeof(*p));
    p->http = http;
    size_t bl = strlen(base_url);
    while (bl > 0 && base_url[bl - 1] == '/')
        bl--;
    p->base_url = rd_strndup(base_url, bl);
    p->client_id = rd_strdup(client_id ? client_id : "");
    p->client_secret = rd_strdup(client_secret ? client_secret : "");
    rd_log_redact_add(p->client_secret); /* second line of defence; we never format it */
    p->entry = token_entry_get(p->base_url, p->client_id);
    p->time_off_limit = 200;
    /* budgets are named by hashes: upstream_starts never holds a URL or an id */
    char origin[256], hex[2 * RD_SHA256_LEN + 1];
    uint8_t h[RD_SHA256_LEN];
    char *name = rd_asprintf("personio-employees\n%s\n%s", p->base_url, p->client_id);
    rd_sha256(name, strlen(name), h);
    free(name);
    rd_hex_encode(h, sizeof(h), hex);
    p->pace_employees = rd_pacer_get(hex);
    if (!rd_http_origin(p->base_url, origin, sizeof(origin)))
        snprintf(origin, sizeof(origin), "%s", p->base_url);
    name = rd_asprintf("personio-v1\n%s", origin);
    rd_sha256(name, strlen(name), h);
    free(name);
    rd_hex_encode(h, sizeof(h), hex);
    p->pace_v1 = rd_pacer_get(hex);
    return p;
}

void rd_personio_free(struct rd_personio *p)
{
    if (!p)
        return;
    free(p->base_url);
    free(p->client_id);
    zfree(p->client_secret);
    free(p);
}

void rd_personio_set_time_off_page_size(struct rd_personio *p, int limit)
{
    p->time_off_limit = limit < 1 ? 1 : limit > 200 ? 200 : limit;
}

void rd_personio_set_budget_db(struct rd_personio *p, PGconn *db)
{
    p->budget_db = db;
}

/*
 * Waits for room in the v1 budget and, for the employees endpoints, in theirs
 * (both tickets are released by pace_done).
 */
static int pace(struct rd_personio *p, const char *log_path, double deadline,
                struct rd_pace_ticket t[2], struct rd_http_error *err)
{
    memset(t, 0, 2 * sizeof(*t));
    if (strncmp(log_path, "/v1/company/employees", 21) == 0 &&
        rd_pacer_acquire(p->pace_employees, EMPLOYEE_RATES, 2, p->budget_db, "personio employees",
                         deadline, &t[0], err) != 0)
        return -1;
    if (rd_pacer_acquire(p->pace_v1, V1_RATES, 1, p->budget_db, "personio", deadline, &t[1], err) !=
        0) {
        rd_pacer_release(&t[0]);
        return -1;
    }
    return 0;
}

static void pace_done(struct rd_pace_ticket t[2])
{
    rd_pacer_release(&t[0]);
    rd_pacer_release(&t[1]);
}

/* POST /v1/auth; on success stores the token in the cache entry. Caller holds e->refresh. */
static int fetch_token(struct rd_personio *p, double deadline, struct rd_http_error *err)
{
    struct json_object *body = json_object_new_object();
    json_object_object_add(body, "client_id", json_object_new_string(p->client_id));
    json_object_object_add(body, "client_secret", json_object_new_string(p->client_secret));
    char *text = rd_strdup(json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN));
    json_object_put(body);
    char *url = rd_asprintf("%s/v1/auth", p->base_url);
    const char *hdrs[] = {"Content-Type: application/json", "Accept: application/json"};
    const char *secrets[] = {p->client_secret, NULL};
    struct rd_http_request req = {.system = "personio",
                                  .method = "POST",
                                  .url = url,
                                  .headers = hdrs,
                                  .nheaders = 2,
                                  .body = text,
                                  .body_len = strlen(text),
                                  .deadline = deadline,
                                  .idempotent = true,
                                  .errmsg = rd_personio_error_message,
                                  .secrets = secrets};
    struct rd_http_response resp;
    struct rd_pace_ticket t[2];
    memset(&resp, 0, sizeof(resp));
    int rc = pace(p, "/v1/auth", deadline, t, err);
    if (rc == 0) {
        rc = rd_http_do(p->http, &req, &resp, err);
        pace_done(t);
    }
    zfree(text);
    free(url);
    struct json_object *root = NULL;
    if (rc == 0) {
        root = json_tokener_parse(resp.body.data ? resp.body.data : "");
        struct json_object *data = rd_json_get(root, "data");
        struct json_object *tok = rd_json_get(data, "token");
        if (!tok || !json_object_is_type(tok, json_type_string) || !*json_object_get_string(tok)) {
            rd_http_error_set(err, false, (int)resp.status,
                              "personio POST /v1/auth: no token in the answer");
            rc = -1;
        } else {
            int64_t ttl = jint(rd_json_get(data, "expires_in"));
            pthread_mutex_lock(&g_tok_lock);
            zfree(p->entry->token);
            p->entry->token = rd_strdup(json_object_get_string(tok));
            p->entry->expires = rd_http_now() + (double)(ttl > 120 ? ttl : 86400);
            g_auth_count++;
            pthread_mutex_unlock(&g_tok_lock);
        }
    } else if (resp.status == 429 && err->retry_after_s == 0) {
        err->retry_after_s = 60; /* the documented cool-down of /v1/auth */
    }
    json_object_put(root);
    rd_http_response_free(&resp);
    return rc;
}

/* A usable token (new string), fetching one unless another worker just did. */
static char *get_token(struct rd_personio *p, double deadline, struct rd_http_error *err)
{
    char *tok = token_cached(p->entry, NULL);
    if (tok)
        return tok;
    pthread_mutex_lock(&p->entry->refresh);
    tok = token_cached(p->entry, NULL); /* another worker may have fetched it meanwhile */
    if (!tok && fetch_token(p, deadline, err) == 0)
        tok = token_cached(p->entry, NULL);
    pthread_mutex_unlock(&p->entry->refresh);
    return tok;
}

/*
 * One authenticated call. A 401/403 refreshes the token once and repeats the
 * request. path_q is the path with query; log_path the path without.
 */
static int personio_call_probe(struct rd_personio *p, const char *method, const char *path_q,
                               const char *log_path, const char *body, bool idempotent,
                               rd_http_probe_fn probe, void *probe_arg, double deadline,
                               struct rd_http_response *resp, struct rd_http_error *err)
{
    char *url = rd_asprintf("%s%s", p->base_url, path_q);
    char *used = NULL;
    int rc = -1;
    memset(resp, 0, sizeof(*resp));
    for (int round = 0; round < 2; round++) {
        zfree(used);
        used = get_token(p, deadline, err);
        if (!used)
            break;
        char *auth = rd_asprintf("Authorization: Bearer %s", used);
        const char *hdrs[] = {auth, "Accept: application/json", "Content-Type: application/json"};
        const char *secrets[] = {used, p->client_secret, NULL};
        struct rd_http_request req = {.system = "personio",
                                      .method = method,
                                      .url = url,
                                      .log_path = log_path,
                                      .headers = hdrs,
                                      .nheaders = body ? 3 : 2,
                                      .body = body,
                                      .body_len = body ? strlen(body) : 0,
                                      .deadline = deadline,
                                      .idempotent = idempotent,
                                      .errmsg = rd_personio_error_message,
                                      .secrets = secrets,
                                      .probe = probe,
                                      .probe_arg = probe_arg};
        rd_http_response_free(resp);
        struct rd_pace_ticket t[2];
        rc = pace(p, log_path, deadline, t, err);
        if (rc == 0) {
            rc = rd_http_do(p->http, &req, resp, err);
            pace_done(t);
        }
        zfree(auth);
        if (rc == 0) {
            token_adopt(p->entry, used, resp->authorization);
            break;
        }
        if (round > 0 || (resp->status != 401 && resp->status != 403))
            break;
        rd_log_info("personio %s %s: HTTP %ld, fetching a new token", method, log_path,
                    resp->status);
        /* forget the rejected token unless another worker already replaced it */
        pthread_mutex_lock(&g_tok_lock);
        if (p->entry->token && strcmp(p->entry->token, used) == 0)
            p->entry->expires = 0;
        pthread_mutex_unlock(&g_tok_lock);
    }
    zfree(used);
    free(url);
    return rc;
}

static int personio_call(struct rd_personio *p, const char *method, const char *path_q,
                         const char *log_path, const char *body, bool idempotent, double deadline,
                         struct rd_http_response *resp, struct rd_http_error *err)
{
    return personio_call_probe(p, method, path_q, log_path, body, idempotent, NULL, NULL, deadline,
                               resp, err);
}

static struct json_object *parse_body(const struct rd_http_response *resp, const char *what,
                                      struct rd_http_error *err)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *root =
        json_tokener_parse_ex(tok, resp->body.data ? resp->body.data : "", (int)resp->body.len);
    bool ok = json_tokener_get_error(tok) == json_tokener_success && root;
    json_tokener_free(tok);
    if (!ok || !json_object_is_type(root, json_type_object)) {
        json_object_put(root);
        rd_http_error_set(err, false, (int)resp->status, "personio %s: invalid JSON in the answer",
                          what);
        return NULL;
    }
    return root;
}

int rd_personio_list_employees(struct rd_personio *p, const char *email, double deadline,
                               struct rd_personio_employee_list *out, struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    size_t cap = 0;
    for (int page = 0; page < MAX_PAGES; page++) {
        struct rd_buf q = {0};
        rd_buf_printf(&q, "/v1/company/employees?limit=%d&offset=%d", EMPLOYEE_PAGE,
                      page * EMPLOYEE_PAGE);
        if (email) {
            rd_buf_puts(&q, "&email=");
            rd_http_urlencode(&q, email);
        }
        struct rd_http_response resp;
        int rc = personio_call(p, "GET", q.data, "/v1/company/employees", NULL, true, deadline,
                               &resp, err);
        rd_buf_free(&q);
        struct json_object *root =
            rc == 0 ? parse_body(&resp, "GET /v1/company/employees", err) : NULL;
        rd_http_response_free(&resp);
        struct json_object *data = rd_json_get(root, "data");
        if (root && (!data || !json_object_is_type(data, json_type_array))) {
            rd_http_error_set(err, false, 200, "personio GET /v1/company/employees: no data list");
            json_object_put(root);
            root = NULL;
        }
        if (!root) {
            rd_personio_employee_list_free(out);
            return -1;
        }
        size_t n = json_object_array_length(data);
        if (out->count + n > cap) {
            cap = (out->count + n) * 2;
            out->items = rd_realloc(out->items, cap * sizeof(*out->items));
        }
        for (size_t i = 0; i < n; i++) {
            if (rd_personio_parse_employee(json_object_array_get_idx(data, i),
                                           &out->items[out->count]) == 0)
                out->count++;
            else
                rd_personio_employee_clear(&out->items[out->count]);
        }
        struct json_object *meta = rd_json_get(root, "metadata");
        int64_t cur = jint(rd_json_get(meta, "current_page"));
        int64_t total = jint(rd_json_get(meta, "total_pages"));
        json_object_put(root);
        if (n < EMPLOYEE_PAGE || (meta && cur >= total - 1))
            break;
    }
    return 0;
}

int rd_personio_get_employee(struct rd_personio *p, int64_t id, double deadline,
                             struct rd_personio_employee *out, struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    char path[64];
    snprintf(path, sizeof(path), "/v1/company/employees/%lld", (long long)id);
    struct rd_http_response resp;
    int rc = personio_call(p, "GET", path, path, NULL, true, deadline, &resp, err);
    struct json_object *root =
        rc == 0 ? parse_body(&resp, "GET /v1/company/employees/{id}", err) : NULL;
    rd_http_response_free(&resp);
    if (!root)
        return -1;
    rc = rd_personio_parse_employee(rd_json_get(root, "data"), out);
    json_object_put(root);
    if (rc != 0)
        rd_http_error_set(err, false, 200, "personio GET %s: no employee in the answer", path);
    return rc;
}

static int list_time_offs(struct rd_personio *p, const char *start_date, const char *end_date,
                          int64_t employee_id, const char *updated_from, double deadline,
                          struct rd_personio_time_off_list *out, struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    for (int page = 1; page < MAX_PAGES; page++) {
        struct rd_buf q = {0};
        rd_buf_printf(&q, "/v1/company/time-offs?offset=%d&limit=%d", page, p->time_off_limit);
        if (start_date) {
            rd_buf_puts(&q, "&start_date=");
            rd_http_urlencode(&q, start_date);
        }
        if (end_date) {
            rd_buf_puts(&q, "&end_date=");
            rd_http_urlencode(&q, end_date);
        }
        if (employee_id > 0)
            rd_buf_printf(&q, "&employees%%5B%%5D=%lld", (long long)employee_id);
        if (updated_from) {
            rd_buf_puts(&q, "&updated_from=");
            rd_http_urlencode(&q, updated_from);
        }
        struct rd_http_response resp;
        int rc = personio_call(p, "GET", q.data, "/v1/company/time-offs", NULL, true, deadline,
                               &resp, err);
        rd_buf_free(&q);
        size_t before = out->count;
        int total = 0;
        if (rc == 0 && rd_personio_parse_time_off_page(resp.body.data ? resp.body.data : "",
                                                       resp.body.len, out, &total) != 0) {
            rd_http_error_set(err, false, (int)resp.status,
                              "personio GET /v1/company/time-offs: invalid JSON in the answer");
            rc = -1;
        }
        rd_http_response_free(&resp);
        if (rc != 0) {
            rd_personio_time_off_list_free(out);
            return -1;
        }
        /* stop at total_pages; without metadata, at the first page that adds nothing */
        if (total > 0 ? page >= total : out->count == before)
            break;
    }
    return 0;
}

int rd_personio_list_time_offs(struct rd_personio *p, const char *start_date, const char *end_date,
                               int64_t employee_id, double deadline,
                               struct rd_personio_time_off_list *out, struct rd_http_error *err)
{
    return list_time_offs(p, start_date, end_date, employee_id, NULL, deadline, out, err);
}

int rd_personio_list_time_offs_since(struct rd_personio *p, const char *updated_from,
                                     double deadline, struct rd_personio_time_off_list *out,
                                     struct rd_http_error *err)
{
    return list_time_offs(p, NULL, NULL, 0, updated_from, deadline, out, err);
}

static void parse_attendance(struct json_object *item, struct rd_personio_attendance *a)
{
    memset(a, 0, sizeof(*a));
    struct json_object *at = rd_json_get(item, "attributes");
    a->id = jint(rd_json_get(item, "id"));
    a->employee_id = jint(unwrap(rd_json_get(at, "employee")));
    const char *s;
    if ((s = json_object_get_string(rd_json_get(at, "date"))) != NULL)
        snprintf(a->date, sizeof(a->date), "%.10s", s);
    if (rd_json_get(at, "start_time") &&
        (s = json_object_get_string(rd_json_get(at, "start_time"))) != NULL)
        snprintf(a->start_time, sizeof(a->start_time), "%.5s", s);
    struct json_object *et = rd_json_get(at, "end_time");
    if (et && json_object_is_type(et, json_type_string))
        snprintf(a->end_time, sizeof(a->end_time), "%.5s", json_object_get_string(et));
    a->break_minutes = (int)jint(rd_json_get(at, "break"));
    a->comment = jstr(rd_json_get(at, "comment"));
    a->status = jstr(rd_json_get(at, "status"));
}

int rd_personio_list_attendances(struct rd_personio *p, const char *start_date,
                                 const char *end_date, int64_t employee_id, double deadline,
                                 struct rd_personio_attendance_list *out, struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    for (int page = 0; page < MAX_PAGES; page++) {
        struct rd_buf q = {0};
        rd_buf_printf(&q, "/v1/company/attendances?limit=%d&offset=%d&includePending=true",
                      ATTENDANCE_PAGE, page * ATTENDANCE_PAGE);
        rd_buf_puts(&q, "&start_date=");
        rd_http_urlencode(&q, start_date);
        rd_buf_puts(&q, "&end_date=");
        rd_http_urlencode(&q, end_date);
        if (employee_id > 0)
            rd_buf_printf(&q, "&employees%%5B%%5D=%lld", (long long)employee_id);
        struct rd_http_response resp;
        int rc = personio_call(p, "GET", q.data, "/v1/company/attendances", NULL, true, deadline,
                               &resp, err);
        rd_buf_free(&q);
        struct json_object *root =
            rc == 0 ? parse_body(&resp, "GET /v1/company/attendances", err) : NULL;
        rd_http_response_free(&resp);
        struct json_object *data = rd_json_get(root, "data");
        if (!root || !data || !json_object_is_type(data, json_type_array)) {
            if (root)
                rd_http_error_set(err, false, 200,
                                  "personio GET /v1/company/attendances: no data list");
            json_object_put(root);
            rd_personio_attendance_list_free(out);
            return -1;
        }
        size_t n = json_object_array_length(data);
        out->items = rd_realloc(out->items, (out->count + n + 1) * sizeof(*out->items));
        for (size_t i = 0; i < n; i++)
            parse_attendance(json_object_array_get_idx(data, i), &out->items[out->count++]);
        json_object_put(root);
        if (n < ATTENDANCE_PAGE)
            break;
    }
    return 0;
}

static struct json_object *attendance_json(const struct rd_personio_attendance *a,
                                           bool with_employee)
{
    struct json_object *o = json_object_new_object();
    if (with_employee)
        json_object_object_add(o, "employee", json_object_new_int64(a->employee_id));
    json_object_object_add(o, "date", json_object_new_string(a->date));
    json_object_object_add(o, "start_time", json_object_new_string(a->start_time));
    json_object_object_add(o, "end_time",
                           a->end_time[0] ? json_object_new_string(a->end_time) : NULL);
    json_object_object_add(o, "break", json_object_new_int(a->break_minutes));
    json_object_object_add(o, "comment", a->comment ? json_object_new_string(a->comment) : NULL);
    return o;
}

static const char *outcome_of(int rc, bool overlap, bool gone)
{
    return rc == 0 ? (gone ? "not_found" : "ok") : overlap ? "conflict" : "failed";
}

/*
 * Read-before-retry for POST /attendances: is there now an attendance of this
 * employee on that day starting at that time (with our comment, when we sent one)?
 */
struct attendance_probe {
    struct rd_personio *p;
    const struct rd_personio_attendance *a;
    int64_t id;
};

static int attendance_probe(void *arg, double deadline, struct rd_http_error *err)
{
    struct attendance_probe *pr = arg;
    const struct rd_personio_attendance *a = pr->a;
    struct rd_personio_attendance_list l;
    if (rd_personio_list_attendances(pr->p, a->date, a->date, a->employee_id, deadline, &l, err) !=
        0)
        return -1;
    for (size_t i = 0; i < l.count && !pr->id; i++) {
        const struct rd_personio_attendance *e = &l.items[i];
        if (e->employee_id == a->employee_id && strcmp(e->date, a->date) == 0 &&
            strcmp(e->start_time, a->start_time) == 0 &&
            (!a->comment || (e->comment && strcmp(e->comment, a->comment) == 0)))
            pr->id = e->id;
    }
    rd_personio_attendance_list_free(&l);
    return pr->id > 0 ? 1 : 0;
}

int rd_personio_create_attendance(struct rd_personio *p, const struct rd_personio_attendance *a,
                                  bool skip_approval, const struct rd_audit_ctx *audit,
                                  double deadline, int64_t *id_out, bool *overlap,
                                  struct rd_http_error *err)
{
    *overlap = false;
    *id_out = 0;
    struct json_object *item = attendance_json(a, true);
    struct json_object *body = json_object_new_object();
    struct json_object *arr = json_object_new_array();
    json_object_array_add(arr, json_object_get(item));
    json_object_object_add(body, "attendances", arr);
    json_object_object_add(body, "skip_approval", json_object_new_boolean(skip_approval));
    int64_t aid;
    if (rd_audit_ctx_begin(audit, "personio", "POST", "/v1/company/attendances", item, &aid, err) !=
        0) {
        json_object_put(item);
        json_object_put(body);
        return -1;
    }
    struct rd_http_response resp;
    /*
     * Not idempotent (a blind repeat could double the period): after an answer
     * that leaves it open, the day is read back before anything is sent again.
     */
    struct attendance_probe probe = {p, a, 0};
    int rc = personio_call_probe(p, "POST", "/v1/company/attendances", "/v1/company/attendances",
                                 json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN),
                                 false, attendance_probe, &probe, deadline, &resp, err);
    if (rc == 0 && resp.landed) {
        *id_out = probe.id;
    } else if (rc == 0) {
        struct json_object *root = parse_body(&resp, "POST /v1/company/attendances", err);
        struct json_object *ids = rd_json_get(rd_json_get(root, "data"), "id");
        if (ids && json_object_is_type(ids, json_type_array) && json_object_array_length(ids) > 0)
            *id_out = jint(json_object_array_get_idx(ids, 0));
        else if (root)
            rd_http_error_set(err, false, 200,
                              "personio POST /v1/company/attendances: no id in the answer");
        if (*id_out <= 0)
            rc = -1;
        json_object_put(root);
    } else if (resp.status == 400) {
        *overlap = rd_personio_is_overlap_error(resp.body.data, resp.body.len);
    }
    if (*id_out > 0)
        json_object_object_add(item, "id", json_object_new_int64(*id_out));
    (void)rd_audit_ctx_end(audit, aid, item, outcome_of(rc, *overlap, false), (int)resp.status,
                           rc == 0 ? NULL : err->msg);
    rd_http_response_free(&resp);
    json_object_put(item);
    json_object_put(body);
    return rc;
}

int rd_personio_update_attendance(struct rd_personio *p, const struct rd_personio_attendance *a,
                                  bool skip_approval, const struct rd_audit_ctx *audit,
                                  double deadline, bool *overlap, struct rd_http_error *err)
{
    *overlap = false;
    struct json_object *body = attendance_json(a, false);
    json_object_object_add(body, "skip_approval", json_object_new_boolean(skip_approval));
    char path[64];
    snprintf(path, sizeof(path), "/v1/company/attendances/%lld", (long long)a->id);
    int64_t aid;
    if (rd_audit_ctx_begin(audit, "personio", "PATCH", path, body, &aid, err) != 0) {
        json_object_put(body);
        return -1;
    }
    struct rd_http_response resp;
    int rc = personio_call(p, "PATCH", path, path,
                           json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN), true,
                           deadline, &resp, err);
    if (rc != 0 && resp.status == 400)
        *overlap = rd_personio_is_overlap_error(resp.body.data, resp.body.len);
    (void)rd_audit_ctx_end(audit, aid, body, outcome_of(rc, *overlap, false), (int)resp.status,
                           rc == 0 ? NULL : err->msg);
    rd_http_response_free(&resp);
    json_object_put(body);
    return rc;
}

int rd_personio_delete_attendance(struct rd_personio *p, int64_t id, bool skip_approval,
                                  const struct rd_audit_ctx *audit, double deadline, bool *gone,
                                  struct rd_http_error *err)
{
    *gone = false;
    char path[64], path_q[96];
    snprintf(path, sizeof(path), "/v1/company/attendances/%lld", (long long)id);
    snprintf(path_q, sizeof(path_q), "%s?skip_approval=%s", path, skip_approval ? "true" : "false");
    int64_t aid;
    if (rd_audit_ctx_begin(audit, "personio", "DELETE", path, NULL, &aid, err) != 0)
        return -1;
    struct rd_http_response resp;
    int rc = personio_call(p, "DELETE", path_q, path, NULL, true, deadline, &resp, err);
    if (rc != 0 && resp.status == 404) {
        *gone = true; /* already gone is what we wanted */
        rc = 0;
        memset(err, 0, sizeof(*err));
    }
    (void)rd_audit_ctx_end(audit, aid, NULL, outcome_of(rc, false, *gone), (int)resp.status,
                           rc == 0 ? NULL : err->msg);
    rd_http_response_free(&resp);
    return rc;
}
