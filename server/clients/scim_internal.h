/*
 * Private to scim.c and platform_api.c: the platform client's fields and its
 * one authenticated request path, shared by the SCIM and delegation calls.
 */
#ifndef ROSTERD_SCIM_INTERNAL_H
#define ROSTERD_SCIM_INTERNAL_H

#include "rosterd/scim.h"

struct json_object;

struct rd_scim {
    struct rd_http_client *http;
    char *scim_base;
    char *api_base; /* NULL without the delegation API */
    char *token;
    int page_size;
};

/*
 * One request to base + path_q with the bearer token; system is "scim" or
 * "platform" (metrics label). body may be NULL. See rd_http_do for results.
 */
int rd_scim_call(struct rd_scim *s, const char *system, const char *base, const char *method,
                 const char *path_q, const char *log_path, const char *body, bool idempotent,
                 double deadline, rd_http_errmsg_fn errmsg, struct rd_http_response *resp,
                 struct rd_http_error *err) __attribute__((warn_unused_result));

/* rd_scim_call with a read-before-retry probe for a write that is not idempotent
 * (rd_http_request.probe). */
int rd_scim_call_probe(struct rd_scim *s, const char *system, const char *base, const char *method,
                       const char *path_q, const char *log_path, const char *body, bool idempotent,
                       rd_http_probe_fn probe, void *probe_arg, double deadline,
                       rd_http_errmsg_fn errmsg, struct rd_http_response *resp,
                       struct rd_http_error *err) __attribute__((warn_unused_result));

/* Parses a JSON object body; NULL and a transient err when it is not one. */
struct json_object *rd_scim_parse_object(const struct rd_http_response *resp, const char *what,
                                         struct rd_http_error *err);

#endif
