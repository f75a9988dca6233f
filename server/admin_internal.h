/*
 * Private to the admin listener: reply helpers and the /admin/... API routes
 * (admin_api.c), which mirror rosterctl's replay and report commands.
 */
#ifndef ROSTERD_ADMIN_INTERNAL_H
#define ROSTERD_ADMIN_INTERNAL_H

#include <stddef.h>

#include <event2/http.h>
#include <libpq-fe.h>

#include "rosterd/mem.h"

struct rd_admin;

PGconn *rd_admin_db(struct rd_admin *a, char *err, size_t errlen);
void rd_admin_send(struct evhttp_request *req, int code, const char *ctype, const char *body,
                   size_t len);
void rd_admin_send_json(struct evhttp_request *req, int code, const char *json);
void rd_admin_send_error(struct evhttp_request *req, int code, const char *msg);

/* Routes an authorised /admin/... request. */
void rd_admin_api(struct rd_admin *a, struct evhttp_request *req, enum evhttp_cmd_type cmd,
                  const char *path, const struct evhttp_uri *uri);
/* Appends rosterd_jobs{state} (read now from the database) to a metrics page. */
void rd_admin_render_job_states(struct rd_admin *a, struct rd_buf *out);

#endif
