/*
 * Audit trail of upstream writes (DESIGN §8): every POST/PUT/PATCH/DELETE a
 * client sends lands in upstream_audit with its reason and before/after values.
 */
#ifndef ROSTERD_AUDIT_H
#define ROSTERD_AUDIT_H

#include <stdint.h>

#include <libpq-fe.h>

struct json_object;
struct rd_http_error;

/*
 * What a write client needs to record itself. Pass NULL (or db == NULL) to
 * write nothing, e.g. in dry runs that never write or in tools. All borrowed.
 */
struct rd_audit_ctx {
    PGconn *db;                 /* blocking connection of the worker */
    int64_t connection_id;      /* 0: stored as NULL */
    const char *reason;         /* "event:123", "run:45", "operator" … */
    struct json_object *before; /* optional: the state the caller read before writing */
};

/*
 * Inserts one row. path must not carry secrets (no query strings, no Slack
 * hook path). before/after are borrowed and may be NULL. outcome: "ok",
 * "failed", "not_found", "conflict" ("sending" while a write is in flight, see
 * rd_audit_ctx_begin). http_status 0 = no answer; error may be
 * NULL. Writes nothing and returns 0 when db is NULL. -1 (logged) on a
 * database error: the upstream write has already happened, so callers
 * normally carry on.
 */
int rd_audit_record(PGconn *db, int64_t connection_id, const char *system, const char *method,
                    const char *path, struct json_object *before, struct json_object *after,
                    const char *reason, const char *outcome, int http_status, const char *error)
    __attribute__((warn_unused_result));

/* rd_audit_record with the fields of ctx (ctx may be NULL: nothing is written). */
int rd_audit_ctx_record(const struct rd_audit_ctx *ctx, const char *system, const char *method,
                        const char *path, struct json_object *after, const char *outcome,
                        int http_status, const char *error);

/*
 * Write-ahead audit, so no upstream write goes unrecorded even when rosterd dies
 * or Postgres goes away in the middle of it: rd_audit_ctx_begin inserts the row
 * with outcome "sending" before the request goes out and gives its id (0 when ctx
 * or ctx->db is NULL: nothing to record); rd_audit_ctx_end sets the outcome,
 * status and error of that row once the answer is in. When begin fails (-1, err
 * set as a transient error) the write must not be sent: the caller returns it. A
 * row left "sending" is a write whose outcome rosterd never learnt.
 */
int rd_audit_ctx_begin(const struct rd_audit_ctx *ctx, const char *system, const char *method,
                       const char *path, struct json_object *after, int64_t *id,
                       struct rd_http_error *err) __attribute__((warn_unused_result));
/* Ends the row begun as id (0: nothing). -1 (logged) on a database error; the row stays "sending".
 */
int rd_audit_ctx_end(const struct rd_audit_ctx *ctx, int64_t id, struct json_object *after,
                     const char *outcome, int http_status, const char *error);

#endif
