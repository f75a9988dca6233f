/*
 * SCIM 2.0 client for the spend platform: find and list users, invite, and
 * PATCH active / enterprise manager / department; groups by displayName and
 * their members. Servers may answer a PATCH with 200 and the resource or 204.
 */
#include "rosterd/jsonx.h"
#include "rosterd/scim.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "scim_internal.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCIM_USER "urn:ietf:params:scim:schemas:core:2.0:User"
#define SCIM_ENT "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
#define SCIM_PATCH "urn:ietf:params:scim:api:messages:2.0:PatchOp"
#define MAX_PAGES 100000

static char *jstr(struct json_object *v)
{
    if (!v || json_object_is_type(v, json_type_null) || json_object_is_type(v, json_type_object) ||
        json_object_is_type(v, json_type_array))
        return NULL;
    return rd_strdup(json_object_get_string(v));
}

void rd_scim_error_message(const char *body, size_t len, char *out, size_t outlen)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *root = json_tokener_parse_ex(tok, body, (int)len);
    json_tokener_free(tok);
    struct json_object *d = rd_json_get(root, "detail");
    if (!d)
        d = rd_json_get(root, "error"); /* the delegation API's {"error": "…"} */
    if (d && json_object_is_type(d, json_type_string)) {
        struct json_object *t = rd_json_get(root, "scimType");
        if (t && json_object_is_type(t, json_type_string))
            snprintf(out, outlen, "%s (%s)", json_object_get_string(d), json_object_get_string(t));
        else
            snprintf(out, outlen, "%s", json_object_get_string(d));
    } else {
        rd_json_excerpt(body, len, out, outlen);
    }
    json_object_put(root);
}

void rd_scim_user_clear(struct rd_scim_user *u)
{
    if (!u)
        return;
    free(u->id);
    free(u->user_name);
    free(u->external_id);
    free(u->manager_id);
    free(u->department);
    free(u->given_name);
    free(u->family_name);
    for (size_t i = 0; i < u->nemails; i++)
        free(u->emails[i]);
    free(u->emails);
    memset(u, 0, sizeof(*u));
}

static char *dup_or_null(const char *s)
{
    return s ? rd_strdup(s) : NULL;
}

void rd_scim_group_copy(struct rd_scim_group *out, const struct rd_scim_group *g)
{
    memset(out, 0, sizeof(*out));
    out->id = dup_or_null(g->id);
    out->display_name = dup_or_null(g->display_name);
    if (g->nmembers) {
        out->members = rd_calloc(g->nmembers, sizeof(char *));
        for (size_t i = 0; i < g->nmembers; i++)
            out->members[i] = rd_strdup(g->members[i]);
        out->nmembers = g->nmembers;
    }
}

void rd_scim_user_copy(struct rd_scim_user *out, const struct rd_scim_user *u)
{
    memset(out, 0, sizeof(*out));
    out->id = dup_or_null(u->id);
    out->user_name = dup_or_null(u->user_name);
    out->active = u->active;
    out->external_id = dup_or_null(u->external_id);
    out->manager_id = dup_or_null(u->manager_id);
    out->department = dup_or_null(u->department);
    out->given_name = dup_or_null(u->given_name);
    out->family_name = dup_or_null(u->family_name);
    if (u->nemails) {
        out->emails = rd_calloc(u->nemails, sizeof(char *));
        for (size_t i = 0; i < u->nemails; i++)
            out->emails[i] = rd_strdup(u->emails[i]);
        out->nemails = u->nemails;
    }
}

void rd_scim_user_list_free(struct rd_scim_user_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        rd_scim_user_clear(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

void rd_scim_group_clear(struct rd_scim_group *g)
{
    if (!g)
        return;
    free(g->id);
    free(g->display_name);
    for (size_t i = 0; i < g->nmembers; i++)
        free(g->members[i]);
    free(g->members);
    memset(g, 0, sizeof(*g));
}

static void parse_user(struct json_object *o, struct rd_scim_user *u)
{
    memset(u, 0, sizeof(*u));
    u->id = jstr(rd_json_get(o, "id"));
    u->user_name = jstr(rd_json_get(o, "userName"));
    struct json_object *a = rd_json_get(o, "active");
    u->active = a ? json_object_get_boolean(a) : true;
    u->external_id = jstr(rd_json_get(o, "externalId"));
    struct json_object *ent = rd_json_get(o, SCIM_ENT);
    u->manager_id = jstr(rd_json_get(rd_json_get(ent, "manager"), "value"));
    u->department = jstr(rd_json_get(ent, "department"));
    struct json_object *name = rd_json_get(o, "name");
    u->given_name = jstr(rd_json_get(name, "givenName"));
    u->family_name = jstr(rd_json_get(name, "familyName"));
    struct json_object *em = rd_json_get(o, "emails");
    if (em && json_object_is_type(em, json_type_array)) {
        size_t n = json_object_array_length(em);
        u->emails = rd_calloc(n ? n : 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
            char *v = jstr(rd_json_get(json_object_array_get_idx(em, i), "value"));
            if (v)
                u->emails[u->nemails++] = v;
        }
    }
}

static void parse_group(struct json_object *o, struct rd_scim_group *g)
{
    memset(g, 0, sizeof(*g));
    g->id = jstr(rd_json_get(o, "id"));
    g->display_name = jstr(rd_json_get(o, "displayName"));
    struct json_object *m = rd_json_get(o, "members");
    if (m && json_object_is_type(m, json_type_array)) {
        size_t n = json_object_array_length(m);
        g->members = rd_calloc(n ? n : 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
            char *v = jstr(rd_json_get(json_object_array_get_idx(m, i), "value"));
            if (v)
                g->members[g->nmembers++] = v;
        }
    }
}

struct rd_scim *rd_scim_new(struct rd_http_client *http, const char *scim_base_url,
                            const char *api_base_url, const char *token)
{
    struct rd_scim *s = rd_calloc(1, sizeof(*s));
    s->http = http;
    size_t n = strlen(scim_base_url);
    while (n > 0 && scim_base_url[n - 1] == '/')
        n--;
    s->scim_base = rd_strndup(scim_base_url, n);
    if (api_base_url) {
        n = strlen(api_base_url);
        while (n > 0 && api_base_url[n - 1] == '/')
            n--;
        s->api_base = rd_strndup(api_base_url, n);
    }
    s->token = rd_strdup(token ? token : "");
    rd_log_redact_add(s->token); /* second line of defence; we never format it */
    s->page_size = 100;
    return s;
}

void rd_scim_free(struct rd_scim *s)
{
    if (!s)
        return;
    free(s->scim_base);
    free(s->api_base);
    rd_memzero(s->token, strlen(s->token));
    free(s->token);
    free(s);
}

struct rd_scim *rd_scim_clone(const struct rd_scim *s, struct rd_http_client *http)
{
    struct rd_scim *c = rd_scim_new(http, s->scim_base, s->api_base, s->token);
    c->page_size = s->page_size;
    return c;
}

void rd_scim_set_page_size(struct rd_scim *s, int count)
{
    s->page_size = count < 1 ? 1 : count > 1000 ? 1000 : count;
}

int rd_scim_call(struct rd_scim *s, const char *system, const char *base, const char *method,
                 const char *path_q, const char *log_path, const char *body, bool idempotent,
                 double deadline, rd_http_errmsg_fn errmsg, struct rd_http_response *resp,
                 struct rd_http_error *err)
{
    return rd_scim_call_probe(s, system, base, method, path_q, log_path, body, idempotent, NULL,
                              NULL, deadline, errmsg, resp, err);
}

int rd_scim_call_probe(struct rd_scim *s, const char *system, const char *base, const char *method,
                       const char *path_q, const char *log_path, const char *body, bool idempotent,
                       rd_http_probe_fn probe, void *probe_arg, double deadline,
                       rd_http_errmsg_fn errmsg, struct rd_http_response *resp,
                       struct rd_http_error *err)
{
    char *url = rd_asprintf("%s%s", base, path_q);
    char *auth = rd_asprintf("Authorization: Bearer %s", s->token);
    bool scim = strcmp(system, "scim") == 0;
    const char *hdrs[] = {auth, scim ? "Accept: application/scim+json" : "Accept: application/json",
                          scim ? "Content-Type: application/scim+json"
                               : "Content-Type: application/json"};
    const char *secrets[] = {s->token, NULL};
    struct rd_http_request req = {.system = system,
                                  .method = method,
                                  .url = url,
                                  .log_path = log_path,
                                  .headers = hdrs,
                                  .nheaders = body ? 3 : 2,
                                  .body = body,
                                  .body_len = body ? strlen(body) : 0,
                                  .deadline = deadline,
                                  .idempotent = idempotent,
                                  .errmsg = errmsg,
                                  .secrets = secrets,
                                  .probe = probe,
                                  .probe_arg = probe_arg};
    int rc = rd_http_do(s->http, &req, resp, err);
    rd_memzero(auth, strlen(auth));
    free(auth);
    free(url);
    return rc;
}

struct json_object *rd_scim_parse_object(const struct rd_http_response *resp, const char *what,
                                         struct rd_http_error *err)
{
    struct json_tokener *tok = json_tokener_new();
    struct json_object *root =
        json_tokener_parse_ex(tok, resp->body.data ? resp->body.data : "", (int)resp->body.len);
    bool ok = json_tokener_get_error(tok) == json_tokener_success && root &&
              json_object_is_type(root, json_type_object);
    json_tokener_free(tok);
    if (!ok) {
        json_object_put(root);
        rd_http_error_set(err, false, (int)resp->status, "%s: invalid JSON in the answer", what);
        return NULL;
    }
    return root;
}

/* GET a ListResponse page; returns the parsed root (caller puts it) or NULL. */
static struct json_object *get_list(struct rd_scim *s, const char *path_q, const char *log_path,
                                    double deadline, struct rd_http_error *err)
{
    struct rd_http_response resp;
    int rc = rd_scim_call(s, "scim", s->scim_base, "GET", path_q, log_path, NULL, true, deadline,
                          rd_scim_error_message, &resp, err);
    char what[96];
    snprintf(what, sizeof(what), "scim GET %s", log_path);
    struct json_object *root = rc == 0 ? rd_scim_parse_object(&resp, what, err) : NULL;
    rd_http_response_free(&resp);
    struct json_object *res = rd_json_get(root, "Resources");
    if (root && res && !json_object_is_type(res, json_type_array)) {
        rd_http_error_set(err, false, 200, "%s: Resources is not a list", what);
        json_object_put(root);
        root = NULL;
    }
    return root;
}

/* ?filter=<attr> eq "<value>" with the value escaped for SCIM and then for the URL. */
static char *eq_filter(const char *path, const char *attr, const char *value)
{
    struct rd_buf f = {0};
    rd_buf_printf(&f, "%s eq \"", attr);
    for (const char *p = value; *p; p++) {
        if (*p == '"' || *p == '\\')
            rd_buf_putc(&f, '\\');
        rd_buf_putc(&f, *p);
    }
    rd_buf_putc(&f, '"');
    struct rd_buf q = {0};
    rd_buf_printf(&q, "%s?filter=", path);
    rd_http_urlencode(&q, f.data);
    rd_buf_free(&f);
    return rd_buf_steal(&q);
}

int rd_scim_find_user(struct rd_scim *s, const char *user_name, double deadline, bool *found,
                      struct rd_scim_user *out, struct rd_http_error *err)
{
    *found = false;
    memset(out, 0, sizeof(*out));
    char *q = eq_filter("/Users", "userName", user_name);
    struct json_object *root = get_list(s, q, "/Users", deadline, err);
    free(q);
    if (!root)
        return -1;
    struct json_object *res = rd_json_get(root, "Resources");
    if (res && json_object_array_length(res) > 0) {
        parse_user(json_object_array_get_idx(res, 0), out);
        *found = true;
    }
    json_object_put(root);
    return 0;
}

int rd_scim_find_users(struct rd_scim *s, const char *attr, const char *value, double deadline,
                       struct rd_scim_user_list *out, struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    char *q = eq_filter("/Users", attr, value);
    struct json_object *root = get_list(s, q, "/Users", deadline, err);
    free(q);
    if (!root)
        return -1;
    struct json_object *res = rd_json_get(root, "Resources");
    size_t n = res ? json_object_array_length(res) : 0;
    out->items = rd_calloc(n ? n : 1, sizeof(*out->items));
    for (size_t i = 0; i < n; i++)
        parse_user(json_object_array_get_idx(res, i), &out->items[out->count++]);
    json_object_put(root);
    return 0;
}

int rd_scim_get_user(struct rd_scim *s, const char *id, double deadline, bool *found,
                     struct rd_scim_user *out, struct rd_http_error *err)
{
    *found = false;
    memset(out, 0, sizeof(*out));
    struct rd_buf path = {0};
    rd_buf_puts(&path, "/Users/");
    rd_http_urlencode(&path, id);
    struct rd_http_response resp;
    int rc = rd_scim_call(s, "scim", s->scim_base, "GET", path.data, path.data, NULL, true,
                          deadline, rd_scim_error_message, &resp, err);
    if (rc != 0 && resp.status == 404) {
        rc = 0; /* gone: not an error for a caller checking a pinned link */
    } else if (rc == 0) {
        struct json_object *root = rd_scim_parse_object(&resp, "scim GET /Users/{id}", err);
        if (root) {
            parse_user(root, out);
            *found = out->id != NULL;
        } else {
            rc = -1;
        }
        json_object_put(root);
    }
    rd_http_response_free(&resp);
    rd_buf_free(&path);
    return rc;
}

/*
 * Pages through /Users or /Groups (startIndex/count) and hands every resource to add;
 * -1 with err on the first failed page.
 */
static int list_all(struct rd_scim *s, const char *path, double deadline,
                    void (*add)(struct json_object *res, size_t n, void *list), void *list,
                    struct rd_http_error *err)
{
    long start = 1;
    for (int page = 0; page < MAX_PAGES; page++) {
        char q[96];
        snprintf(q, sizeof(q), "%s?startIndex=%ld&count=%d", path, start, s->page_size);
        struct json_object *root = get_list(s, q, path, deadline, err);
        if (!root)
            return -1;
        struct json_object *res = rd_json_get(root, "Resources");
        size_t n = res ? json_object_array_length(res) : 0;
        long total = (long)json_object_get_int64(rd_json_get(root, "totalResults"));
        add(res, n, list);
        json_object_put(root);
        start += (long)n;
        if (n == 0 || start - 1 >= total)
            break;
    }
    return 0;
}

static void add_users(struct json_object *res, size_t n, void *list)
{
    struct rd_scim_user_list *out = list;
    out->items = rd_realloc(out->items, (out->count + n + 1) * sizeof(*out->items));
    for (size_t i = 0; i < n; i++)
        parse_user(json_object_array_get_idx(res, i), &out->items[out->count++]);
}

static void add_groups(struct json_object *res, size_t n, void *list)
{
    struct rd_scim_group_list *out = list;
    out->items = rd_realloc(out->items, (out->count + n + 1) * sizeof(*out->items));
    for (size_t i = 0; i < n; i++)
        parse_group(json_object_array_get_idx(res, i), &out->items[out->count++]);
}

int rd_scim_list_users(struct rd_scim *s, double deadline, struct rd_scim_user_list *out,
                       struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    if (list_all(s, "/Users", deadline, add_users, out, err) != 0) {
        rd_scim_user_list_free(out);
        return -1;
    }
    return 0;
}

static char *json_text(struct json_object *o)
{
    return rd_strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
}

/* Read-before-retry for POST /Users: is there a user with this userName now? */
struct user_probe {
    struct rd_scim *s;
    const char *user_name;
    struct rd_scim_user *out;
};

static int user_probe(void *arg, double deadline, struct rd_http_error *err)
{
    struct user_probe *p = arg;
    bool found = false;
    rd_scim_user_clear(p->out);
    if (rd_scim_find_user(p->s, p->user_name, deadline, &found, p->out, err) != 0)
        return -1;
    return found && p->out->id ? 1 : 0;
}

int rd_scim_create_user(struct rd_scim *s, const struct rd_scim_new_user *u,
                        const struct rd_audit_ctx *audit, double deadline, struct rd_scim_user *out,
                        struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    struct json_object *b = json_object_new_object();
    struct json_object *schemas = json_object_new_array();
    json_object_array_add(schemas, json_object_new_string(SCIM_USER));
    json_object_array_add(schemas, json_object_new_string(SCIM_ENT));
    json_object_object_add(b, "schemas", schemas);
    json_object_object_add(b, "userName", json_object_new_string(u->user_name));
    if (u->external_id)
        json_object_object_add(b, "externalId", json_object_new_string(u->external_id));
    json_object_object_add(b, "active", json_object_new_boolean(u->active));
    struct json_object *name = json_object_new_object();
    if (u->given_name)
        json_object_object_add(name, "givenName", json_object_new_string(u->given_name));
    if (u->family_name)
        json_object_object_add(name, "familyName", json_object_new_string(u->family_name));
    json_object_object_add(b, "name", name);
    struct json_object *emails = json_object_new_array();
    struct json_object *em = json_object_new_object();
    json_object_object_add(em, "value", json_object_new_string(u->user_name));
    json_object_object_add(em, "type", json_object_new_string("work"));
    json_object_object_add(em, "primary", json_object_new_boolean(1));
    json_object_array_add(emails, em);
    json_object_object_add(b, "emails", emails);
    struct json_object *ent = json_object_new_object();
    if (u->department)
        json_object_object_add(ent, "department", json_object_new_string(u->department));
    if (u->manager_id) {
        struct json_object *mg = json_object_new_object();
        json_object_object_add(mg, "value", json_object_new_string(u->manager_id));
        json_object_object_add(ent, "manager", mg);
    }
    json_object_object_add(b, SCIM_ENT, ent);
    int64_t aid;
    if (rd_audit_ctx_begin(audit, "scim", "POST", "/Users", b, &aid, err) != 0) {
        json_object_put(b);
        return -1;
    }
    char *text = json_text(b);
    struct rd_http_response resp;
    /*
     * Not idempotent, and SCIM has no idempotency key: after an answer that
     * leaves it open, the user is looked up by userName before anything is
     * sent again (a blind repeat would meet 409 or make a second account).
     */
    struct user_probe probe = {s, u->user_name, out};
    int rc = rd_scim_call_probe(s, "scim", s->scim_base, "POST", "/Users", "/Users", text, false,
                                user_probe, &probe, deadline, rd_scim_error_message, &resp, err);
    free(text);
    if (rc == 0 && resp.landed) {
        /* out was filled by the probe */
    } else if (rc == 0) {
        struct json_object *root = rd_scim_parse_object(&resp, "scim POST /Users", err);
        if (root)
            parse_user(root, out);
        if (!out->id) {
            if (root)
                rd_http_error_set(err, false, (int)resp.status,
                                  "scim POST /Users: no id in the answer");
            rc = -1;
        }
        json_object_put(root);
    }
    if (out->id)
        json_object_object_add(b, "id", json_object_new_string(out->id));
    (void)rd_audit_ctx_end(audit, aid, b,
                           rc == 0              ? "ok"
                           : resp.status == 409 ? "conflict"
                                                : "failed",
                           (int)resp.status,
                           rc != 0       ? err->msg
                           : resp.landed ? "answer lost; the user was found on reading back"
                                         : NULL);
    rd_http_response_free(&resp);
    json_object_put(b);
    return rc;
}

/* The PatchOp body with these operations (taken). */
static struct json_object *patch_body(struct json_object *ops)
{
    struct json_object *b = json_object_new_object();
    struct json_object *schemas = json_object_new_array();
    json_object_array_add(schemas, json_object_new_string(SCIM_PATCH));
    json_object_object_add(b, "schemas", schemas);
    json_object_object_add(b, "Operations", ops);
    return b;
}

void rd_scim_patch_path(struct rd_buf *path, const char *kind, const char *id)
{
    rd_buf_printf(path, "/%s/", kind);
    rd_http_urlencode(path, id);
}

int rd_scim_send_patch(struct rd_scim *s, const char *path, struct json_object *body,
                       double deadline, int *http_status, struct rd_http_error *err)
{
    char *text = json_text(body);
    struct rd_http_response resp;
    int rc = rd_scim_call(s, "scim", s->scim_base, "PATCH", path, path, text, true, deadline,
                          rd_scim_error_message, &resp, err);
    free(text);
    *http_status = (int)resp.status;
    rd_http_response_free(&resp);
    return rc;
}

/* PATCH /{kind}/{id} with the given operations (taken); audited with after = the PatchOp. */
static int patch(struct rd_scim *s, const char *kind, const char *id, struct json_object *ops,
                 const struct rd_audit_ctx *audit, double deadline, struct rd_http_error *err)
{
    struct json_object *b = patch_body(ops);
    struct rd_buf path = {0};
    rd_scim_patch_path(&path, kind, id);
    int64_t aid;
    if (rd_audit_ctx_begin(audit, "scim", "PATCH", path.data, b, &aid, err) != 0) {
        rd_buf_free(&path);
        json_object_put(b);
        return -1;
    }
    int status = 0;
    int rc = rd_scim_send_patch(s, path.data, b, deadline, &status, err);
    (void)rd_audit_ctx_end(audit, aid, b, rc == 0 ? "ok" : "failed", status,
                           rc == 0 ? NULL : err->msg);
    rd_buf_free(&path);
    json_object_put(b);
    return rc;
}

static struct json_object *one_op(const char *op, const char *path, struct json_object *value)
{
    struct json_object *ops = json_object_new_array();
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "op", json_object_new_string(op));
    json_object_object_add(o, "path", json_object_new_string(path));
    if (value)
        json_object_object_add(o, "value", value);
    json_object_array_add(ops, o);
    return ops;
}

int rd_scim_set_active(struct rd_scim *s, const char *id, bool active,
                       const struct rd_audit_ctx *audit, double deadline, struct rd_http_error *err)
{
    return patch(s, "Users", id, one_op("replace", "active", json_object_new_boolean(active)),
                 audit, deadline, err);
}

static struct json_object *manager_ops(const char *manager_id)
{
    struct json_object *v = NULL;
    if (manager_id) {
        v = json_object_new_object();
        json_object_object_add(v, "value", json_object_new_string(manager_id));
    }
    return one_op(manager_id ? "replace" : "remove", SCIM_ENT ":manager", v);
}

struct json_object *rd_scim_manager_patch(const char *manager_id)
{
    return patch_body(manager_ops(manager_id));
}

int rd_scim_set_manager(struct rd_scim *s, const char *id, const char *manager_id,
                        const struct rd_audit_ctx *audit, double deadline,
                        struct rd_http_error *err)
{
    return patch(s, "Users", id, manager_ops(manager_id), audit, deadline, err);
}

int rd_scim_set_user_name(struct rd_scim *s, const char *id, const char *email,
                          const struct rd_audit_ctx *audit, double deadline,
                          struct rd_http_error *err)
{
    struct json_object *ops = one_op("replace", "userName", json_object_new_string(email));
    struct json_object *emails = json_object_new_array();
    struct json_object *em = json_object_new_object();
    json_object_object_add(em, "value", json_object_new_string(email));
    json_object_object_add(em, "type", json_object_new_string("work"));
    json_object_object_add(em, "primary", json_object_new_boolean(1));
    json_object_array_add(emails, em);
    struct json_object *more = one_op("replace", "emails", emails);
    json_object_array_add(ops, json_object_get(json_object_array_get_idx(more, 0)));
    json_object_put(more);
    return patch(s, "Users", id, ops, audit, deadline, err);
}

int rd_scim_set_department(struct rd_scim *s, const char *id, const char *department,
                           const struct rd_audit_ctx *audit, double deadline,
                           struct rd_http_error *err)
{
    return patch(s, "Users", id,
                 one_op(department ? "replace" : "remove", SCIM_ENT ":department",
                        department ? json_object_new_string(department) : NULL),
                 audit, deadline, err);
}

int rd_scim_find_group(struct rd_scim *s, const char *display_name, double deadline, bool *found,
                       struct rd_scim_group *out, struct rd_http_error *err)
{
    *found = false;
    memset(out, 0, sizeof(*out));
    char *q = eq_filter("/Groups", "displayName", display_name);
    struct json_object *root = get_list(s, q, "/Groups", deadline, err);
    free(q);
    if (!root)
        return -1;
    struct json_object *res = rd_json_get(root, "Resources");
    if (res && json_object_array_length(res) > 0) {
        parse_group(json_object_array_get_idx(res, 0), out);
        *found = true;
    }
    json_object_put(root);
    return 0;
}

int rd_scim_list_groups(struct rd_scim *s, double deadline, struct rd_scim_group_list *out,
                        struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    if (list_all(s, "/Groups", deadline, add_groups, out, err) != 0) {
        rd_scim_group_list_free(out);
        return -1;
    }
    return 0;
}

void rd_scim_group_list_free(struct rd_scim_group_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        rd_scim_group_clear(&l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

int rd_scim_group_add_members(struct rd_scim *s, const char *group_id, const char *const *user_ids,
                              size_t n, const struct rd_audit_ctx *audit, double deadline,
                              struct rd_http_error *err)
{
    struct json_object *vals = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        struct json_object *m = json_object_new_object();
        json_object_object_add(m, "value", json_object_new_string(user_ids[i]));
        json_object_array_add(vals, m);
    }
    return patch(s, "Groups", group_id, one_op("add", "members", vals), audit, deadline, err);
}

int rd_scim_group_remove_members(struct rd_scim *s, const char *group_id,
                                 const char *const *user_ids, size_t n,
                                 const struct rd_audit_ctx *audit, double deadline,
                                 struct rd_http_error *err)
{
    struct json_object *ops = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        /* RFC 7644 §3.5.2.2: a value filter in the path removes just that member */
        char *path = rd_asprintf("members[value eq \"%s\"]", user_ids[i]);
        struct json_object *one = one_op("remove", path, NULL);
        json_object_array_add(ops, json_object_get(json_object_array_get_idx(one, 0)));
        json_object_put(one);
        free(path);
    }
    return patch(s, "Groups", group_id, ops, audit, deadline, err);
}
