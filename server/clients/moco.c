/*
 * MOCO client. Lists follow Link rel="next" (never computed page counts) and
 * only within the account's own origin, so the key never travels elsewhere.
 * Pacing keeps each account under its budget before MOCO has to say 429.
 */
#include "rosterd/jsonx.h"
#include "rosterd/moco.h"
#include "rosterd/crypto.h"
#include "rosterd/db.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/pacer.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PAGES 10000

struct rd_moco {
    struct rd_http_client *http;
    char *base_url;
    char origin[256];
    char *api_key;
    char account[2 * RD_SHA256_LEN + 1];
    struct rd_pacer *pacer; /* process-wide, shared by every client of this account */
    int limit;
    int window_s;
    PGconn *budget_db;
};

void rd_moco_pacer_clear(void)
{
    rd_pacer_clear_all();
}

/* ---- JSON helpers ---- */

static int64_t jint(struct json_object *v)
{
    if (!v)
        return 0;
    if (json_object_is_type(v, json_type_string)) {
        char *end;
        const char *s = json_object_get_string(v);
        long long n = strtoll(s, &end, 10);
        return end != s && *end == '\0' ? (int64_t)n : 0;
    }
    if (json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double))
        return json_object_get_int64(v);
    return 0;
}

static char *jstr(struct json_object *v)
{
    if (!v || !json_object_is_type(v, json_type_string))
        return NULL;
    return rd_strdup(json_object_get_string(v));
}

static void jcopy(struct json_object *v, char *out, size_t outlen)
{
    out[0] = '\0';
    if (v && json_object_is_type(v, json_type_string))
        snprintf(out, outlen, "%s", json_object_get_string(v));
}

static void moco_errmsg(const char *body, size_t len, char *out, size_t outlen)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *root = json_tokener_parse_ex(tok, body, (int)len);
    json_tokener_free(tok);
    struct json_object *m = rd_json_get(root, "message");
    if (m && json_object_is_type(m, json_type_string)) {
        snprintf(out, outlen, "%s", json_object_get_string(m));
    } else {
        rd_json_excerpt(body, len, out, outlen);
    }
    json_object_put(root);
}

/* ---- lists ---- */

void rd_moco_user_list_free(struct rd_moco_user_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i].email);
        free(l->items[i].firstname);
        free(l->items[i].lastname);
    }
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

void rd_moco_presence_list_free(struct rd_moco_presence_list *l)
{
    if (!l)
        return;
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

void rd_moco_schedule_list_free(struct rd_moco_schedule_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i].comment);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static void add_user(struct json_object *it, void *list)
{
    struct rd_moco_user_list *l = list;
    l->items = rd_realloc(l->items, (l->count + 1) * sizeof(*l->items));
    struct rd_moco_user *u = &l->items[l->count++];
    u->id = jint(rd_json_get(it, "id"));
    u->email = jstr(rd_json_get(it, "email"));
    u->firstname = jstr(rd_json_get(it, "firstname"));
    u->lastname = jstr(rd_json_get(it, "lastname"));
    struct json_object *a = rd_json_get(it, "active");
    u->active = a ? json_object_get_boolean(a) : true;
}

static int64_t user_id_of(struct json_object *it)
{
    int64_t id = jint(rd_json_get(rd_json_get(it, "user"), "id"));
    return id ? id : jint(rd_json_get(it, "user_id"));
}

static void add_presence(struct json_object *it, void *list)
{
    struct rd_moco_presence_list *l = list;
    l->items = rd_realloc(l->items, (l->count + 1) * sizeof(*l->items));
    struct rd_moco_presence *p = &l->items[l->count++];
    p->id = jint(rd_json_get(it, "id"));
    jcopy(rd_json_get(it, "date"), p->date, sizeof(p->date));
    jcopy(rd_json_get(it, "from"), p->from, sizeof(p->from));
    jcopy(rd_json_get(it, "to"), p->to, sizeof(p->to));
    p->user_id = user_id_of(it);
}

static void add_schedule(struct json_object *it, void *list)
{
    struct rd_moco_schedule_list *l = list;
    l->items = rd_realloc(l->items, (l->count + 1) * sizeof(*l->items));
    struct rd_moco_schedule *s = &l->items[l->count++];
    s->id = jint(rd_json_get(it, "id"));
    jcopy(rd_json_get(it, "date"), s->date, sizeof(s->date));
    struct json_object *am = rd_json_get(it, "am"), *pm = rd_json_get(it, "pm");
    s->am = am ? json_object_get_boolean(am) : true;
    s->pm = pm ? json_object_get_boolean(pm) : true;
    s->comment = jstr(rd_json_get(it, "comment"));
    s->absence_code = (int)jint(rd_json_get(rd_json_get(it, "assignment"), "code"));
    if (!s->absence_code)
        s->absence_code = (int)jint(rd_json_get(it, "absence_code"));
    s->user_id = user_id_of(it);
}

/* ---- client ---- */

struct rd_moco *rd_moco_new(struct rd_http_client *http, const char *base_url, const char *api_key)
{
    struct rd_moco *m = rd_calloc(1, sizeof(*m));
    m->http = http;
    size_t bl = strlen(base_url);
    while (bl > 0 && base_url[bl - 1] == '/')
        bl--;
    m->base_url = rd_strndup(base_url, bl);
    if (!rd_http_origin(m->base_url, m->origin, sizeof(m->origin)))
        m->origin[0] = '\0';
    m->api_key = rd_strdup(api_key ? api_key : "");
    rd_log_redact_add(m->api_key); /* second line of defence; we never format it */
    /* the account is named by a hash: the budget table and the pacer never hold the key */
    char *id = rd_asprintf("%s\n%s", m->base_url, m->api_key);
    uint8_t h[RD_SHA256_LEN];
    rd_sha256(id, strlen(id), h);
    rd_memzero(id, strlen(id));
    free(id);
    rd_hex_encode(h, sizeof(h), m->account);
    m->pacer = rd_pacer_get(m->account);
    m->limit = 120;
    m->window_s = 120;
    return m;
}

void rd_moco_free(struct rd_moco *m)
{
    if (!m)
        return;
    free(m->base_url);
    rd_memzero(m->api_key, strlen(m->api_key));
    free(m->api_key);
    free(m);
}

void rd_moco_set_rate(struct rd_moco *m, int limit, int window_s)
{
    m->limit = limit > 0 ? limit : 120;
    m->window_s = window_s > 0 ? window_s : 120;
}

void rd_moco_set_budget_db(struct rd_moco *m, PGconn *db)
{
    m->budget_db = db;
}

/* One paced, authenticated request; probe as in rd_http_request (NULL for most calls). */
static int moco_call_probe(struct rd_moco *m, const char *method, const char *url,
                           const char *log_path, const char *body, bool idempotent,
                           rd_http_probe_fn probe, void *probe_arg, double deadline,
                           struct rd_http_response *resp, struct rd_http_error *err)
{
    memset(resp, 0, sizeof(*resp));
    struct rd_rate rate = {.limit = m->limit, .window_s = (double)m->window_s};
    struct rd_pace_ticket ticket;
    if (rd_pacer_acquire(m->pacer, &rate, 1, m->budget_db, "moco", deadline, &ticket, err) != 0)
        return -1;
    char *auth = rd_asprintf("Authorization: Token token=%s", m->api_key);
    const char *hdrs[] = {auth, "Accept: application/json", "Content-Type: application/json"};
    const char *secrets[] = {m->api_key, NULL};
    struct rd_http_request req = {.system = "moco",
                                  .method = method,
                                  .url = url,
                                  .log_path = log_path,
                                  .headers = hdrs,
                                  .nheaders = body ? 3 : 2,
                                  .body = body,
                                  .body_len = body ? strlen(body) : 0,
                                  .deadline = deadline,
                                  .idempotent = idempotent,
                                  .errmsg = moco_errmsg,
                                  .secrets = secrets,
                                  .probe = probe,
                                  .probe_arg = probe_arg};
    /* A probe is a request of its own and takes its own slot of the budget. */
    int rc = rd_http_do(m->http, &req, resp, err);
    rd_pacer_release(&ticket);
    rd_memzero(auth, strlen(auth));
    free(auth);
    return rc;
}

static int moco_call(struct rd_moco *m, const char *method, const char *url, const char *log_path,
                     const char *body, bool idempotent, double deadline,
                     struct rd_http_response *resp, struct rd_http_error *err)
{
    return moco_call_probe(m, method, url, log_path, body, idempotent, NULL, NULL, deadline, resp,
                           err);
}

static int moco_list(struct rd_moco *m, const char *first, const char *log_path, double deadline,
                     void (*add)(struct json_object *, void *), void *list,
                     struct rd_http_error *err)
{
    char *url = rd_asprintf("%s%s", m->base_url, first);
    int rc = 0;
    for (int page = 0; url && page < MAX_PAGES; page++) {
        struct rd_http_response resp;
        rc = moco_call(m, "GET", url, log_path, NULL, true, deadline, &resp, err);
        struct json_object *root = NULL;
        if (rc == 0) {
            struct json_tokener *tok = json_tokener_new();
            root = json_tokener_parse_ex(tok, resp.body.data ? resp.body.data : "",
                                         (int)resp.body.len);
            if (json_tokener_get_error(tok) != json_tokener_success || !root ||
                !json_object_is_type(root, json_type_array)) {
                rd_http_error_set(err, false, (int)resp.status,
                                  "moco GET %s: invalid JSON in the answer", log_path);
                rc = -1;
            }
            json_tokener_free(tok);
        }
        char *next = rc == 0 ? rd_http_link_next(resp.link) : NULL;
        rd_http_response_free(&resp);
        for (size_t i = 0; rc == 0 && i < json_object_array_length(root); i++)
            add(json_object_array_get_idx(root, i), list);
        json_object_put(root);
        free(url);
        url = NULL;
        if (rc != 0) {
            free(next);
            break;
        }
        char origin[256];
        if (next &&
            (!rd_http_origin(next, origin, sizeof(origin)) || strcmp(origin, m->origin) != 0)) {
            rd_http_error_set(err, true, 200,
                              "moco GET %s: next-page link leaves the account's origin", log_path);
            free(next);
            rc = -1;
            break;
        }
        url = next;
    }
    free(url);
    return rc;
}

int rd_moco_list_users(struct rd_moco *m, bool include_archived, double deadline,
                       struct rd_moco_user_list *out, struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    int rc = moco_list(m, include_archived ? "/users?include_archived=true" : "/users", "/users",
                       deadline, add_user, out, err);
    if (rc != 0)
        rd_moco_user_list_free(out);
    return rc;
}

int rd_moco_find_users(struct rd_moco *m, const char *email, double deadline,
                       struct rd_moco_user_list *out, struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    struct rd_buf q = {0};
    rd_buf_puts(&q, "/users?include_archived=true&email=");
    rd_http_urlencode(&q, email);
    int rc = moco_list(m, q.data, "/users", deadline, add_user, out, err);
    rd_buf_free(&q);
    if (rc != 0)
        rd_moco_user_list_free(out);
    return rc;
}

/* GET of one entity: *found false on 404; else add() appends it to list. */
static int get_one(struct rd_moco *m, const char *path, const char *log_path, double deadline,
                   void (*add)(struct json_object *, void *), void *list, bool *found,
                   struct rd_http_error *err)
{
    *found = false;
    char *url = rd_asprintf("%s%s", m->base_url, path);
    struct rd_http_response resp;
    int rc = moco_call(m, "GET", url, log_path, NULL, true, deadline, &resp, err);
    free(url);
    if (rc != 0 && resp.status == 404) {
        rc = 0;
        memset(err, 0, sizeof(*err));
    } else if (rc == 0) {
        struct json_tokener *tok = json_tokener_new();
        struct json_object *root =
            json_tokener_parse_ex(tok, resp.body.data ? resp.body.data : "", (int)resp.body.len);
        if (json_tokener_get_error(tok) != json_tokener_success || !root ||
            !json_object_is_type(root, json_type_object)) {
            rd_http_error_set(err, false, (int)resp.status,
                              "moco GET %s: invalid JSON in the answer", log_path);
            rc = -1;
        } else {
            add(root, list);
            *found = true;
        }
        json_tokener_free(tok);
        json_object_put(root);
    }
    rd_http_response_free(&resp);
    return rc;
}

int rd_moco_get_user(struct rd_moco *m, int64_t id, double deadline, bool *found,
                     struct rd_moco_user_list *out, struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    char path[64];
    snprintf(path, sizeof(path), "/users/%lld", (long long)id);
    return get_one(m, path, "/users/{id}", deadline, add_user, out, found, err);
}

static char *range_query(const char *path, const char *from, const char *to, int64_t user_id)
{
    struct rd_buf q = {0};
    rd_buf_puts(&q, path);
    rd_buf_puts(&q, "?from=");
    rd_http_urlencode(&q, from);
    rd_buf_puts(&q, "&to=");
    rd_http_urlencode(&q, to);
    if (user_id > 0)
        rd_buf_printf(&q, "&user_id=%lld", (long long)user_id);
    return rd_buf_steal(&q);
}

int rd_moco_list_presences(struct rd_moco *m, const char *from, const char *to, int64_t user_id,
                           double deadline, struct rd_moco_presence_list *out,
                           struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    char *q = range_query("/users/presences", from, to, user_id);
    int rc = moco_list(m, q, "/users/presences", deadline, add_presence, out, err);
    free(q);
    if (rc != 0)
        rd_moco_presence_list_free(out);
    return rc;
}

int rd_moco_list_presences_changed(struct rd_moco *m, const char *updated_after, double deadline,
                                   struct rd_moco_presence_list *out, struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    struct rd_buf q = {0};
    rd_buf_puts(&q, "/users/presences?updated_after=");
    rd_http_urlencode(&q, updated_after);
    int rc = moco_list(m, q.data, "/users/presences", deadline, add_presence, out, err);
    rd_buf_free(&q);
    if (rc != 0)
        rd_moco_presence_list_free(out);
    return rc;
}

int rd_moco_get_presence(struct rd_moco *m, int64_t id, double deadline, bool *found,
                         struct rd_moco_presence *out, struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    char path[64];
    snprintf(path, sizeof(path), "/users/presences/%lld", (long long)id);
    struct rd_moco_presence_list one = {0};
    int rc = get_one(m, path, "/users/presences/{id}", deadline, add_presence, &one, found, err);
    if (rc == 0 && *found) {
        *out = one.items[0];
        *found = out->id > 0;
    }
    rd_moco_presence_list_free(&one);
    return rc;
}

int rd_moco_list_schedules(struct rd_moco *m, const char *from, const char *to, int64_t user_id,
                           double deadline, struct rd_moco_schedule_list *out,
                           struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    char *q = range_query("/schedules", from, to, user_id);
    int rc = moco_list(m, q, "/schedules", deadline, add_schedule, out, err);
    free(q);
    if (rc != 0)
        rd_moco_schedule_list_free(out);
    return rc;
}

/*
 * Read-before-retry for POST /schedules: does the user now have an entry that
 * day with our comment (or any, when we sent none: MOCO allows one a day)?
 */
struct schedule_probe {
    struct rd_moco *m;
    const struct rd_moco_schedule *s;
    int64_t id;
};

static int schedule_probe(void *arg, double deadline, struct rd_http_error *err)
{
    struct schedule_probe *p = arg;
    struct rd_moco_schedule_list l;
    if (rd_moco_list_schedules(p->m, p->s->date, p->s->date, p->s->user_id, deadline, &l, err) != 0)
        return -1;
    for (size_t i = 0; i < l.count && !p->id; i++) {
        const struct rd_moco_schedule *e = &l.items[i];
        if (e->user_id == p->s->user_id && strcmp(e->date, p->s->date) == 0 &&
            (!p->s->comment || (e->comment && strcmp(e->comment, p->s->comment) == 0)))
            p->id = e->id;
    }
    rd_moco_schedule_list_free(&l);
    return p->id > 0 ? 1 : 0;
}

int rd_moco_create_schedule(struct rd_moco *m, const struct rd_moco_schedule *s,
                            const struct rd_audit_ctx *audit, double deadline, int64_t *id_out,
                            struct rd_http_error *err)
{
    *id_out = 0;
    struct json_object *body = json_object_new_object();
    json_object_object_add(body, "date", json_object_new_string(s->date));
    json_object_object_add(body, "absence_code", json_object_new_int(s->absence_code));
    json_object_object_add(body, "user_id", json_object_new_int64(s->user_id));
    json_object_object_add(body, "am", json_object_new_boolean(s->am));
    json_object_object_add(body, "pm", json_object_new_boolean(s->pm));
    if (s->comment)
        json_object_object_add(body, "comment", json_object_new_string(s->comment));
    int64_t aid;
    if (rd_audit_ctx_begin(audit, "moco", "POST", "/schedules", body, &aid, err) != 0) {
        json_object_put(body);
        return -1;
    }
    char *url = rd_asprintf("%s/schedules", m->base_url);
    struct rd_http_response resp;
    /*
     * Not idempotent (a repeat would meet our own entry: 422): after an answer
     * that leaves it open, the day is read back before anything is sent again.
     */
    struct schedule_probe probe = {m, s, 0};
    int rc = moco_call_probe(m, "POST", url, "/schedules",
                             json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN), false,
                             schedule_probe, &probe, deadline, &resp, err);
    free(url);
    if (rc == 0 && resp.landed) {
        *id_out = probe.id;
    } else if (rc == 0) {
        struct json_object *root = json_tokener_parse(resp.body.data ? resp.body.data : "");
        *id_out = jint(rd_json_get(root, "id"));
        json_object_put(root);
        if (*id_out <= 0) {
            rd_http_error_set(err, false, (int)resp.status,
                              "moco POST /schedules: no id in the answer");
            rc = -1;
        }
    }
    if (*id_out > 0)
        json_object_object_add(body, "id", json_object_new_int64(*id_out));
    (void)rd_audit_ctx_end(audit, aid, body, rc == 0 ? "ok" : "failed", (int)resp.status,
                           rc == 0 ? NULL : err->msg);
    rd_http_response_free(&resp);
    json_object_put(body);
    return rc;
}

int rd_moco_update_schedule(struct rd_moco *m, const struct rd_moco_schedule *s,
                            const struct rd_audit_ctx *audit, double deadline, bool *gone,
                            struct rd_http_error *err)
{
    *gone = false;
    struct json_object *body = json_object_new_object();
    json_object_object_add(body, "absence_code", json_object_new_int(s->absence_code));
    json_object_object_add(body, "am", json_object_new_boolean(s->am));
    json_object_object_add(body, "pm", json_object_new_boolean(s->pm));
    json_object_object_add(body, "comment", json_object_new_string(s->comment ? s->comment : ""));
    char path[64];
    snprintf(path, sizeof(path), "/schedules/%lld", (long long)s->id);
    int64_t aid;
    if (rd_audit_ctx_begin(audit, "moco", "PUT", path, body, &aid, err) != 0) {
        json_object_put(body);
        return -1;
    }
    char *url = rd_asprintf("%s%s", m->base_url, path);
    struct rd_http_response resp;
    int rc =
        moco_call(m, "PUT", url, path, json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN),
                  true, deadline, &resp, err);
    free(url);
    if (rc != 0 && resp.status == 404)
        *gone = true; /* the caller creates it afresh */
    (void)rd_audit_ctx_end(audit, aid, NULL, rc == 0 ? "ok" : (*gone ? "not_found" : "failed"),
                           (int)resp.status, rc == 0 ? NULL : err->msg);
    rd_http_response_free(&resp);
    json_object_put(body);
    return rc;
}

int rd_moco_delete_schedule(struct rd_moco *m, int64_t id, const struct rd_audit_ctx *audit,
                            double deadline, bool *gone, struct rd_http_error *err)
{
    *gone = false;
    char path[64];
    snprintf(path, sizeof(path), "/schedules/%lld", (long long)id);
    int64_t aid;
    if (rd_audit_ctx_begin(audit, "moco", "DELETE", path, NULL, &aid, err) != 0)
        return -1;
    char *url = rd_asprintf("%s%s", m->base_url, path);
    struct rd_http_response resp;
    int rc = moco_call(m, "DELETE", url, path, NULL, true, deadline, &resp, err);
    free(url);
    if (rc != 0 && resp.status == 404) {
        *gone = true;
        rc = 0;
        memset(err, 0, sizeof(*err));
    }
    (void)rd_audit_ctx_end(audit, aid, NULL, rc == 0 ? (*gone ? "not_found" : "ok") : "failed",
                           (int)resp.status, rc == 0 ? NULL : err->msg);
    rd_http_response_free(&resp);
    return rc;
}
