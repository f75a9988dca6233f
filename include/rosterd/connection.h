/*
 * Connections (DESIGN.md §4): one company's link between Personio, MOCO, the
 * platform and its alert channel. Validated and sealed by `connection apply`,
 * opened again by the daemon with the same secret key.
 */
#ifndef ROSTERD_CONNECTION_H
#define ROSTERD_CONNECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "rosterd/crypto.h"

struct json_object;

/* How one webhook source authenticates. Standard Webhooks wins when any secret is set. */
struct rd_source_auth {
    char **tokens; /* personio.webhook_tokens or moco.webhook_keys */
    size_t ntokens;
    char **sw_secrets; /* standard_webhooks_secrets */
    size_t nsw;
};

struct rd_connection {
    int64_t id;
    char *name;
    char *timezone;
    struct json_object *doc; /* the full document, secrets resolved; owned */
    struct rd_source_auth personio;
    struct rd_source_auth moco;
};

/*
 * Validates a connection document. conn (may be NULL to skip) is used to check
 * the time zone against pg_timezone_names. The message names the field, e.g.
 * `personio.webhook_tokens: must be a non-empty list of strings`.
 */
int rd_connection_validate(struct json_object *doc, PGconn *conn, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Resolves "env:NAME" and "file:PATH" references in secret fields in place
 * (relative file: paths against base_dir). Messages name the field and the
 * reference, never the secret.
 */
int rd_connection_resolve_secrets(struct json_object *doc, const char *base_dir, char *err,
                                  size_t errlen) __attribute__((warn_unused_result));

/*
 * Parses, validates, resolves and stores (insert or update by name) a
 * connection document. *created says which. Borrows everything.
 */
int rd_connection_apply(PGconn *conn, const uint8_t key[RD_SECRET_KEY_LEN], const char *json_text,
                        const char *base_dir, bool *created, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Returns a new copy of doc with every secret value replaced by "********". Free with
 * json_object_put. */
struct json_object *rd_connection_masked(struct json_object *doc);

/*
 * Returns doc with its keys in the documented order (jsonb stores them sorted
 * by length), for display. Shares the member values with doc (reference
 * counted); free with json_object_put.
 */
struct json_object *rd_connection_ordered(struct json_object *doc);

/*
 * Opens a sealed row (id, name, sealed bytes as stored). Returns a new
 * connection in *out, free with rd_connection_free.
 */
int rd_connection_open(const uint8_t key[RD_SECRET_KEY_LEN], int64_t id, const char *name,
                       const uint8_t *sealed, size_t sealed_len, struct rd_connection **out,
                       char *err, size_t errlen) __attribute__((warn_unused_result));

/* Loads one connection by name with a blocking connection. -1 and a message when missing. */
int rd_connection_load(PGconn *conn, const uint8_t key[RD_SECRET_KEY_LEN], const char *name,
                       struct rd_connection **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

void rd_connection_free(struct rd_connection *c);

#endif
