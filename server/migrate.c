/*
 * Applies the migrations compiled in from sql/ (see cmake/embed_sql.cmake).
 * Each runs in its own transaction under a transaction-scoped advisory lock,
 * so several instances or operators migrating at once apply each file once.
 */
#include "rosterd/migrate.h"

#include "rosterd/db.h"

#include <stdio.h>
#include <string.h>

#include <libpq-fe.h>

/* "rosterd\0" as a big-endian int64: the advisory lock all migrators share. */
#define MIGRATE_LOCK_KEY "8245936386494063616"

static const char sql_lock[] = "SELECT pg_advisory_xact_lock($1::bigint)";

static const char sql_bootstrap[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                    " version int PRIMARY KEY,"
                                    " name text NOT NULL,"
                                    " applied_at timestamptz NOT NULL DEFAULT now())";

int rd_migrate_latest(void)
{
    int latest = 0;
    for (size_t i = 0; i < rd_migrations_count; i++)
        if (rd_migrations[i].version > latest)
            latest = rd_migrations[i].version;
    return latest;
}

/* Ends a failed transaction; the original error stays in err. */
static void rollback(PGconn *conn)
{
    PQclear(PQexec(conn, "ROLLBACK"));
}

/* BEGIN and take the migration lock; on failure the transaction is rolled back. */
static int begin_locked(PGconn *conn, char *err, size_t errlen)
{
    const char *params[1] = {MIGRATE_LOCK_KEY};
    if (rd_db_run(conn, "BEGIN", 0, NULL, err, errlen) != 0)
        return -1;
    if (rd_db_run(conn, sql_lock, 1, params, err, errlen) != 0) {
        rollback(conn);
        return -1;
    }
    return 0;
}

int rd_migrate_current(struct pg_conn *conn, int *version, char *err, size_t errlen)
{
    *version = 0;
    PGresult *res = rd_db_exec(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL", 0, NULL,
                               err, errlen);
    if (!res)
        return -1;
    bool exists = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    if (!exists)
        return 0;
    res = rd_db_exec(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations", 0, NULL, err,
                     errlen);
    if (!res)
        return -1;
    int rc = 0;
    if (PQntuples(res) != 1 || sscanf(PQgetvalue(res, 0, 0), "%d", version) != 1) {
        snprintf(err, errlen, "cannot read schema_migrations");
        rc = -1;
    }
    PQclear(res);
    return rc;
}

/* Applies one migration unless it is recorded; *did says whether it ran. */
static int apply_one(PGconn *conn, const struct rd_migration *m, bool *did, char *err,
                     size_t errlen)
{
    char version[16];
    char msg[512];
    snprintf(version, sizeof version, "%d", m->version);
    const char *params[2] = {version, m->name};
    *did = false;
    if (begin_locked(conn, err, errlen) != 0)
        return -1;
    PGresult *res = rd_db_exec(conn, "SELECT 1 FROM schema_migrations WHERE version = $1::int", 1,
                               params, err, errlen);
    if (!res)
        goto fail;
    bool applied = PQntuples(res) > 0;
    PQclear(res);
    if (applied)
        return rd_db_run(conn, "COMMIT", 0, NULL, err, errlen);

    /* Our own multi-statement SQL, no data in it: the simple protocol is right here. */
    res = PQexec(conn, m->sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
        rd_db_error(conn, res, msg, sizeof msg);
        snprintf(err, errlen, "migration %s failed: %s", m->name, msg);
        PQclear(res);
        goto fail;
    }
    PQclear(res);
    if (rd_db_run(conn, "INSERT INTO schema_migrations (version, name) VALUES ($1::int, $2)", 2,
                  params, err, errlen) != 0)
        goto fail;
    if (rd_db_run(conn, "COMMIT", 0, NULL, err, errlen) != 0)
        return -1;
    *did = true;
    return 0;

fail:
    rollback(conn);
    return -1;
}

int rd_migrate_apply(struct pg_conn *conn, int *applied, char *err, size_t errlen)
{
    int current = 0;
    int latest = rd_migrate_latest();
    *applied = 0;

    /* CREATE TABLE IF NOT EXISTS races with itself; the lock serialises it. */
    if (begin_locked(conn, err, errlen) != 0)
        return -1;
    if (rd_db_run(conn, sql_bootstrap, 0, NULL, err, errlen) != 0) {
        rollback(conn);
        return -1;
    }
    if (rd_db_run(conn, "COMMIT", 0, NULL, err, errlen) != 0)
        return -1;

    if (rd_migrate_current(conn, &current, err, errlen) != 0)
        return -1;
    if (current > latest) {
        snprintf(err, errlen, "database schema version %d is newer than this binary (%d)", current,
                 latest);
        return -1;
    }
    for (size_t i = 0; i < rd_migrations_count; i++) {
        bool did = false;
        if (apply_one(conn, &rd_migrations[i], &did, err, errlen) != 0)
            return -1;
        if (did)
            (*applied)++;
    }
    return 0;
}

int rd_migrate_check(struct pg_conn *conn, char *err, size_t errlen)
{
    int current = 0;
    int latest = rd_migrate_latest();
    if (rd_migrate_current(conn, &current, err, errlen) != 0)
        return -1;
    if (current < latest) {
        snprintf(err, errlen,
                 "database schema is at version %d, this rosterd needs %d: run `rosterctl migrate`",
                 current, latest);
        return -1;
    }
    if (current > latest) {
        snprintf(err, errlen, "database schema version %d is newer than this binary (%d)", current,
                 latest);
        return -1;
    }
    return 0;
}
