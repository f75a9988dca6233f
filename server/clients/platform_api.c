/*
 * The platform's approval-delegation API (DESIGN §8). SCIM has no such
 * concept; this is the vendor's own REST API under api_base_url, with the same
 * bearer token. external_id makes creation safe to repeat.
 */
#include "rosterd/jsonx.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/scim.h"
#include "scim_internal.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *jstr(struct json_object *v)
{
    if (!v || json_object_is_type(v, json_type_null) || json_object_is_type(v, json_type_object) ||
        json_object_is_type(v, json_type_array))
        return NULL;
    return rd_strdup(json_object_get_string(v));
}

static char *opt_dup(const char *s)
{
    return s ? rd_strdup(s) : NULL;
}

void rd_delegation_copy(struct rd_delegation *out, const struct rd_delegation *d)
{
    *out = (struct rd_delegation){.id = opt_dup(d->id),
                                  .approver = opt_dup(d->approver),
                                  .delegate = opt_dup(d->delegate),
                                  .starts_at = opt_dup(d->starts_at),
                                  .ends_at = opt_dup(d->ends_at),
                                  .reason = opt_dup(d->reason),
                                  .external_id = opt_dup(d->external_id)};
}

void rd_delegation_list_free(struct rd_delegation_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++) {
        struct rd_delegation *d = &l->items[i];
        free(d->id);
        free(d->approver);
        free(d->delegate);
        free(d->starts_at);
        free(d->ends_at);
        free(d->reason);
        free(d->external_id);
    }
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static int need_api(struct rd_scim *s, struct rd_http_error *err)
{
    if (s->api_base)
        return 0;
    rd_http_error_set(err, true, 0, "platform: api_base_url is not configured");
    return -1;
}

static void add_str(struct json_object *o, const char *k, const char *v)
{
    if (v)
        json_object_object_add(o, k, json_object_new_string(v));
}

int rd_platform_create_delegation(struct rd_scim *s, const char *approver, const char *delegate,
                                  const char *starts_at, const char *ends_at, const char *reason,
                                  const char *external_id, const struct rd_audit_ctx *audit,
                                  double deadline, char **id_out, bool *existed,
                                  struct rd_http_error *err)
{
    *id_out = NULL;
    *existed = false;
    if (need_api(s, err) != 0)
        return -1;
    struct json_object *b = json_object_new_object();
    add_str(b, "approver", approver);
    add_str(b, "delegate", delegate);
    add_str(b, "starts_at", starts_at);
    add_str(b, "ends_at", ends_at);
    add_str(b, "reason", reason);
    add_str(b, "external_id", external_id);
    int64_t aid;
    if (rd_audit_ctx_begin(audit, "platform", "POST", "/approval-delegations", b, &aid, err) != 0) {
        json_object_put(b);
        return -1;
    }
    struct rd_http_response resp;
    /* with an external_id a repeat is answered 409 + id, so retrying is safe */
    int rc = rd_scim_call(s, "platform", s->api_base, "POST", "/approval-delegations",
                          "/approval-delegations",
                          json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN),
                          external_id != NULL, deadline, rd_scim_error_message, &resp, err);
    struct json_object *root = NULL;
    if (rc == 0 || (resp.status == 409 && external_id)) {
        root = rd_scim_parse_object(&resp, "platform POST /approval-delegations", err);
        *id_out = jstr(rd_json_get(root, "id"));
        if (*id_out) {
            *existed = rc != 0;
            rc = 0;
            memset(err, 0, sizeof(*err));
        } else {
            if (root)
                rd_http_error_set(err, false, (int)resp.status,
                                  "platform POST /approval-delegations: no id in the answer");
            rc = -1;
        }
    }
    if (*id_out)
        add_str(b, "id", *id_out);
    (void)rd_audit_ctx_end(audit, aid, b,
                           rc != 0    ? "failed"
                           : *existed ? "conflict"
                                      : "ok",
                           (int)resp.status, rc == 0 ? NULL : err->msg);
    json_object_put(root);
    json_object_put(b);
    rd_http_response_free(&resp);
    return rc;
}

int rd_platform_delete_delegation(struct rd_scim *s, const char *id,
                                  const struct rd_audit_ctx *audit, double deadline, bool *gone,
                                  struct rd_http_error *err)
{
    *gone = false;
    if (need_api(s, err) != 0)
        return -1;
    struct rd_buf path = {0};
    rd_buf_puts(&path, "/approval-delegations/");
    rd_http_urlencode(&path, id);
    int64_t aid;
    if (rd_audit_ctx_begin(audit, "platform", "DELETE", path.data, NULL, &aid, err) != 0) {
        rd_buf_free(&path);
        return -1;
    }
    struct rd_http_response resp;
    int rc = rd_scim_call(s, "platform", s->api_base, "DELETE", path.data, path.data, NULL, true,
                          deadline, rd_scim_error_message, &resp, err);
    if (rc != 0 && resp.status == 404) {
        *gone = true;
        rc = 0;
        memset(err, 0, sizeof(*err));
    }
    (void)rd_audit_ctx_end(audit, aid, NULL, rc == 0 ? (*gone ? "not_found" : "ok") : "failed",
                           (int)resp.status, rc == 0 ? NULL : err->msg);
    rd_http_response_free(&resp);
    rd_buf_free(&path);
    return rc;
}

int rd_platform_list_delegations(struct rd_scim *s, const char *approver, double deadline,
                                 struct rd_delegation_list *out, struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    if (need_api(s, err) != 0)
        return -1;
    struct rd_buf q = {0};
    rd_buf_puts(&q, "/approval-delegations");
    if (approver) {
        rd_buf_puts(&q, "?approver=");
        rd_http_urlencode(&q, approver);
    }
    struct rd_http_response resp;
    int rc = rd_scim_call(s, "platform", s->api_base, "GET", q.data, "/approval-delegations", NULL,
                          true, deadline, rd_scim_error_message, &resp, err);
    rd_buf_free(&q);
    struct json_object *root = NULL, *data = NULL;
    if (rc == 0) {
        root = json_tokener_parse(resp.body.data ? resp.body.data : "");
        data = json_object_is_type(root, json_type_array) ? root : rd_json_get(root, "data");
        if (!data || !json_object_is_type(data, json_type_array)) {
            rd_http_error_set(err, false, (int)resp.status,
                              "platform GET /approval-delegations: invalid JSON in the answer");
            rc = -1;
        }
    }
    rd_http_response_free(&resp);
    if (rc == 0) {
        size_t n = json_object_array_length(data);
        out->items = rd_calloc(n ? n : 1, sizeof(*out->items));
        for (size_t i = 0; i < n; i++) {
            struct json_object *it = json_object_array_get_idx(data, i);
            struct rd_delegation *d = &out->items[out->count++];
            d->id = jstr(rd_json_get(it, "id"));
            d->approver = jstr(rd_json_get(it, "approver"));
            d->delegate = jstr(rd_json_get(it, "delegate"));
            d->starts_at = jstr(rd_json_get(it, "starts_at"));
            d->ends_at = jstr(rd_json_get(it, "ends_at"));
            d->reason = jstr(rd_json_get(it, "reason"));
            d->external_id = jstr(rd_json_get(it, "external_id"));
        }
    }
    json_object_put(root);
    return rc;
}
