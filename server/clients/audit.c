/*
 * upstream_audit writer. Runs on the worker's blocking connection, outside
 * any transaction of its own, so a rolled-back job still leaves the trail of
 * what it already changed upstream. Writes are recorded before they are sent
 * (rd_audit_ctx_begin) and completed after (rd_audit_ctx_end).
 */
#include "rosterd/audit.h"
#include "rosterd/db.h"
#include "rosterd/http.h"
#include "rosterd/log.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>

int rd_audit_record(PGconn *db, int64_t connection_id, const char *system, const char *method,
                    const char *path, struct json_object *before, struct json_object *after,
                    const char *reason, const char *outcome, int http_status, const char *error)
{
    if (!db)
        return 0;
    char cid[24], st[16];
    snprintf(cid, sizeof(cid), "%lld", (long long)connection_id);
    snprintf(st, sizeof(st), "%d", http_status);
    const char *params[10] = {
        connection_id > 0 ? cid : NULL,
        system,
        method,
        path,
        before ? json_object_to_json_string_ext(before, JSON_C_TO_STRING_PLAIN) : NULL,
        after ? json_object_to_json_string_ext(after, JSON_C_TO_STRING_PLAIN) : NULL,
        reason,
        outcome,
        http_status > 0 ? st : NULL,
        error,
    };
    char err[256];
    if (rd_db_run(db,
                  "INSERT INTO upstream_audit (connection_id, system, method, path, before, after, "
                  "reason, outcome, http_status, error) "
                  "VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8, $9, $10)",
                  10, params, err, sizeof(err)) != 0) {
        rd_log_error("audit record for %s %s %s failed: %s", system, method, path, err);
        return -1;
    }
    return 0;
}

int rd_audit_ctx_record(const struct rd_audit_ctx *ctx, const char *system, const char *method,
                        const char *path, struct json_object *after, const char *outcome,
                        int http_status, const char *error)
{
    if (!ctx || !ctx->db)
        return 0;
    return rd_audit_record(ctx->db, ctx->connection_id, system, method, path, ctx->before, after,
                           ctx->reason, outcome, http_status, error);
}

int rd_audit_ctx_begin(const struct rd_audit_ctx *ctx, const char *system, const char *method,
                       const char *path, struct json_object *after, int64_t *id,
                       struct rd_http_error *err)
{
    *id = 0;
    if (!ctx || !ctx->db)
        return 0;
    char cid[24], dberr[256];
    snprintf(cid, sizeof(cid), "%lld", (long long)ctx->connection_id);
    const char *params[7] = {
        ctx->connection_id > 0 ? cid : NULL,
        system,
        method,
        path,
        ctx->before ? json_object_to_json_string_ext(ctx->before, JSON_C_TO_STRING_PLAIN) : NULL,
        after ? json_object_to_json_string_ext(after, JSON_C_TO_STRING_PLAIN) : NULL,
        ctx->reason,
    };
    PGresult *res = rd_db_exec(ctx->db,
                               "INSERT INTO upstream_audit (connection_id, system, method, path,"
                               " before, after, reason, outcome)"
                               " VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, 'sending')"
                               " RETURNING id",
                               7, params, dberr, sizeof(dberr));
    if (!res) {
        rd_http_error_set(err, false, 0, "%s %s %s: not sent: the audit row cannot be written: %s",
                          system, method, path, dberr);
        return -1;
    }
    *id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

int rd_audit_ctx_end(const struct rd_audit_ctx *ctx, int64_t id, struct json_object *after,
                     const char *outcome, int http_status, const char *error)
{
    if (!ctx || !ctx->db || id == 0)
        return 0;
    char sid[24], st[16], err[256];
    snprintf(sid, sizeof(sid), "%lld", (long long)id);
    snprintf(st, sizeof(st), "%d", http_status);
    const char *params[5] = {
        sid, after ? json_object_to_json_string_ext(after, JSON_C_TO_STRING_PLAIN) : NULL, outcome,
        http_status > 0 ? st : NULL, error};
    if (rd_db_run(ctx->db,
                  "UPDATE upstream_audit SET after = coalesce($2::jsonb, after), outcome = $3,"
                  " http_status = $4::int, error = $5 WHERE id = $1::bigint",
                  5, params, err, sizeof(err)) != 0) {
        rd_log_error("audit row %lld stays 'sending': %s", (long long)id, err);
        return -1;
    }
    return 0;
}
