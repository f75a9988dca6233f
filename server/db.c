/*
 * Blocking libpq helpers shared by rosterctl, the workers and start-up checks.
 * Connection strings may hold passwords, so they are never echoed: errors carry
 * libpq's own message, which names host and port but not the password.
 */
#include "rosterd/db.h"
#include "rosterd/mem.h"

#include <stdio.h>
#include <string.h>

/* Copies msg into err without trailing newlines (libpq ends messages with one). */
static void set_err(char *err, size_t errlen, const char *msg)
{
    if (!err || errlen == 0)
        return;
    snprintf(err, errlen, "%s", msg ? msg : "unknown error");
    size_t n = strlen(err);
    while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == '\r' || err[n - 1] == ' '))
        err[--n] = '\0';
    /* libpq joins the attempts of multi-host strings with newlines; keep one line. */
    for (char *p = err; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

PGconn *rd_db_connect(const char *url, const char *app, char *err, size_t errlen)
{
    /*
     * Our defaults come first and the operator's string last, so settings in
     * database_url (its own connect_timeout, say) win: later keywords override.
     */
    const char *keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *vals[] = {"5", app ? app : "rosterd", url ? url : "", NULL};
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (!conn) {
        set_err(err, errlen, "out of memory connecting to the database");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        set_err(err, errlen, PQerrorMessage(conn));
        PQfinish(conn);
        return NULL;
    }
    return conn;
}

void rd_db_error(PGconn *conn, const PGresult *res, char *err, size_t errlen)
{
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!msg || !*msg)
        msg = res ? PQresultErrorMessage(res) : NULL;
    if ((!msg || !*msg) && conn)
        msg = PQerrorMessage(conn);
    if (!msg || !*msg)
        msg = "database error";
    set_err(err, errlen, msg);
}

PGresult *rd_db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
                     char *err, size_t errlen)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return res;
    rd_db_error(conn, res, err, errlen);
    PQclear(res);
    return NULL;
}

int rd_db_run(PGconn *conn, const char *sql, int nparams, const char *const *params, char *err,
              size_t errlen)
{
    PGresult *res = rd_db_exec(conn, sql, nparams, params, err, errlen);
    if (!res)
        return -1;
    PQclear(res);
    return 0;
}

char *rd_db_int8_array(const int64_t *ids, size_t n)
{
    struct rd_buf b = {0};
    rd_buf_putc(&b, '{');
    for (size_t i = 0; i < n; i++)
        rd_buf_printf(&b, "%s%lld", i ? "," : "", (long long)ids[i]);
    rd_buf_putc(&b, '}');
    return rd_buf_steal(&b);
}
