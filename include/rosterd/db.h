/*
 * Blocking libpq helpers for rosterctl, the workers and start-up checks.
 * The intake does not use these: it has its own non-blocking path (pgasync).
 */
#ifndef ROSTERD_DB_H
#define ROSTERD_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

/*
 * Connects with connect_timeout=5 and application_name=app. Returns NULL and
 * a message in err (libpq's, which never includes the password) on failure.
 * Free with PQfinish.
 */
PGconn *rd_db_connect(const char *url, const char *app, char *err, size_t errlen);

/*
 * Runs a parameterised statement (text parameters, NULL = SQL NULL).
 * Returns the result when its status is COMMAND_OK or TUPLES_OK, else NULL
 * with the server's message in err. Free with PQclear.
 */
PGresult *rd_db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
                     char *err, size_t errlen);

/* As rd_db_exec for statements whose result is not needed. */
int rd_db_run(PGconn *conn, const char *sql, int nparams, const char *const *params, char *err,
              size_t errlen) __attribute__((warn_unused_result));

/* '{1,2,3}': ids as the text of a bigint[] parameter. Returns a new string (free()). */
char *rd_db_int8_array(const int64_t *ids, size_t n);

/* The server's primary message of a result, without the trailing newline, into err. */
void rd_db_error(PGconn *conn, const PGresult *res, char *err, size_t errlen);

#endif
