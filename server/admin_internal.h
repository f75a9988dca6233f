/*
 * Private to the admin listener: reply helpers (admin_reply.c) and the
 * /admin/... API routes (admin_api.c), which mirror rosterctl's replay and
 * report commands. admin.c owns the listener and the database connection and
 * hands the routes a way to get it, so the routes never call back into admin.c.
 */
#ifndef ROSTERD_ADMIN_INTERNAL_H
#define ROSTERD_ADMIN_INTERNAL_H

#include <stddef.h>

#include <event2/http.h>
#include <libpq-fe.h>

void rd_admin_send(struct evhttp_request *req, int code, const char *ctype, const char *body,
                   size_t len);
void rd_admin_send_json(struct evhttp_request *req, int code, const char *json);
void rd_admin_send_error(struct evhttp_request *req, int code, const char *msg);

/* The admin thread's database connection (opened on use); NULL with err when unreachable. */
typedef PGconn *(*rd_admin_db_fn)(void *arg, char *err, size_t errlen);

/* Routes an authorised /admin/... request; get_db(db_arg, …) is called only when needed. */
void rd_admin_api(rd_admin_db_fn get_db, void *db_arg, struct evhttp_request *req,
                  enum evhttp_cmd_type cmd, const char *path, const struct evhttp_uri *uri);

#endif
