/*
 * rosterctl hires list|invite and deactivations upcoming (DESIGN.md §7): the
 * people lifecycle as an operator sees it. Listings read the hires table and the
 * scheduled lifecycle.deactivate jobs; an invitation runs the same code as the
 * handlers (handlers/onboarding.c) under the reason "operator:hires invite".
 */
#include "cli_internal.h"

#include "rosterd/connection.h"
#include "rosterd/db.h"
#include "rosterd/deactivation.h"
#include "rosterd/http.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/onboarding.h"
#include "rosterd/sync.h"

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

/* An invitation's upstream calls must finish within this. */
#define INVITE_DEADLINE_SECONDS 60.0

const char rd_cli_usage_hires_list[] =
    "usage: rosterctl hires list [--connection C] [--json]\n"
    "\n"
    "Lists the new hires the admins were alerted about, by start date: e-mail, name,\n"
    "HR team, the platform team it maps to (team_map; \"(not mapped)\" / null when\n"
    "none), start date and status: alerted (waiting for an invite), invited (by\n"
    "`hires invite`) or linked (got a platform account some other way).\n";

const char rd_cli_usage_hires_invite[] =
    "usage: rosterctl hires invite EMAIL --connection C [--json]\n"
    "\n"
    "Creates the platform account of the employee with this e-mail, as Personio has\n"
    "them now: name, e-mail, department, manager (the supervisor's platform account)\n"
    "and membership of the platform team of their HR team (team_map), and marks the\n"
    "hire invited. Exit 1 when Personio has no such employee, they are inactive, or\n"
    "they are already on the platform.\n";

const char rd_cli_usage_deactivations_upcoming[] =
    "usage: rosterctl deactivations upcoming [--connection C] [--json]\n"
    "\n"
    "Lists the scheduled last-day deactivations in time order: e-mail, name, last day,\n"
    "when the platform account is deactivated in UTC and in the connection's time zone\n"
    "(the end of the last day plus deactivation_delay_days), and the state: scheduled,\n"
    "due, running, retrying or dead (see `rosterctl jobs list --kind " RD_DEACTIVATION_KIND "`).\n";

static const char hires_sql[] =
    "SELECT c.name, p.email,"
    " nullif(btrim(coalesce(p.first_name, '') || ' ' || coalesce(p.last_name, '')), ''),"
    " p.team, c.config -> 'team_map' ->> p.team, p.hire_date::text, h.status, p.department,"
    " p.personio_id, " RD_CLI_SQL_ISO("h.alerted_at") ", " RD_CLI_SQL_ISO(
        "h.invited_at") ","
                        " h.scim_id"
                        " FROM hires h JOIN people p USING (connection_id, personio_id)"
                        " JOIN connections c ON c.id = h.connection_id"
                        " WHERE $1::text IS NULL OR c.name = $1"
                        " ORDER BY c.name, p.hire_date NULLS LAST, p.email";

static const char upcoming_sql[] =
    "SELECT c.name, coalesce(p.email, j.payload ->> 'email'),"
    " coalesce(nullif(btrim(coalesce(p.first_name, '') || ' ' || coalesce(p.last_name, '')), ''),"
    "  j.payload ->> 'name'),"
    " j.payload ->> 'last_day', " RD_CLI_SQL_ISO(
        "j.run_at") ", rd_local_iso(j.run_at, c.timezone),"
                    " c.timezone,"
                    " CASE WHEN j.state = 'pending' AND j.run_at > now() THEN 'scheduled'"
                    "  WHEN j.state = 'pending' THEN 'due' WHEN j.state = 'failed' THEN 'retrying'"
                    "  ELSE j.state END,"
                    " j.subject, j.id, j.last_error"
                    " FROM jobs j JOIN connections c ON c.id = j.connection_id"
                    " LEFT JOIN people p ON p.connection_id = j.connection_id"
                    "  AND p.personio_id::text = j.subject"
                    " WHERE j.kind = '" RD_DEACTIVATION_KIND
                    "' AND ($1::text IS NULL OR c.name = $1)"
                    " ORDER BY j.run_at, j.id";

/* Column c of every row as JSON: text, or an integer for the ones in ints. */
static struct json_object *rows_json(const PGresult *res, const char *const *names, size_t n,
                                     const bool *ints)
{
    struct json_object *arr = json_object_new_array();
    for (int r = 0; r < PQntuples(res); r++) {
        struct json_object *o = json_object_new_object();
        for (size_t c = 0; c < n; c++)
            json_object_object_add(o, names[c],
                                   ints[c] ? rd_cli_json_int(res, r, (int)c)
                                           : rd_cli_json_text(res, r, (int)c));
        json_object_array_add(arr, o);
    }
    return arr;
}

/* Parses [--connection C] [--json]; runs sql with the connection as $1. */
static int listing(struct rd_cli *cli, int argc, char **argv, const char *sql, PGresult **res,
                   bool *json)
{
    const char *connection = NULL;
    size_t npos = 0;
    char err[512];
    const struct rd_cli_opt opts[] = {{"--connection", &connection, NULL}, {"--json", NULL, json}};
    if (rd_cli_parse(argc, argv, opts, 2, NULL, 0, &npos, err, sizeof err) != 0)
        return rd_cli_usage_error(cli, "%s", err);
    PGconn *db = rd_cli_db(cli);
    if (!db)
        return RD_CLI_FAIL;
    int rc = rd_cli_check_connection(db, connection);
    if (rc != RD_CLI_OK)
        return rc;
    const char *params[1] = {connection};
    *res = rd_db_exec(db, sql, 1, params, err, sizeof err);
    if (!*res) {
        rd_cli_error("%s: %s", argv[0], err);
        return RD_CLI_FAIL;
    }
    return RD_CLI_OK;
}

/*
 * Prints a listing: --json gives every named column, the table the first ncols
 * under hdr; a NULL cell of column fill_col reads fill (NULL: "-").
 */
static void print_listing(const PGresult *res, bool json, const char *const *names,
                          const bool *ints, size_t nnames, const char *const *hdr, size_t ncols,
                          size_t fill_col, const char *fill)
{
    if (json) {
        struct json_object *arr = rows_json(res, names, nnames, ints);
        rd_cli_json_print(arr, false, stdout);
        json_object_put(arr);
        return;
    }
    struct rd_cli_table *t = rd_cli_table_new(ncols, hdr);
    const char *row[16];
    for (int r = 0; r < PQntuples(res); r++) {
        for (size_t c = 0; c < ncols; c++)
            row[c] = rd_cli_value(res, r, (int)c);
        if (fill && !row[fill_col])
            row[fill_col] = fill;
        rd_cli_table_add(t, row);
    }
    rd_cli_table_print(t, stdout);
    rd_cli_table_free(t);
}

int rd_cli_hires_list(struct rd_cli *cli, int argc, char **argv)
{
    static const char *const names[] = {"connection",    "email",      "name",       "hr_team",
                                        "platform_team", "start_date", "status",     "department",
                                        "personio_id",   "alerted_at", "invited_at", "scim_id"};
    static const bool ints[12] = {[8] = true};
    static const char *const hdr[] = {"CONNECTION",    "EMAIL",      "NAME",  "HR_TEAM",
                                      "PLATFORM_TEAM", "START_DATE", "STATUS"};
    PGresult *res = NULL;
    bool json = false;
    int rc = listing(cli, argc, argv, hires_sql, &res, &json);
    if (rc != RD_CLI_OK)
        return rc;
    /* an unmapped team reads as such, not as a bare "-" */
    print_listing(res, json, names, ints, 12, hdr, 7, 4, "(not mapped)");
    PQclear(res);
    return RD_CLI_OK;
}

int rd_cli_deactivations_upcoming(struct rd_cli *cli, int argc, char **argv)
{
    static const char *const names[] = {
        "connection", "email", "name",        "last_day", "deactivate_at", "deactivate_at_local",
        "timezone",   "state", "personio_id", "job_id",   "last_error"};
    static const bool ints[11] = {[8] = true, [9] = true};
    static const char *const hdr[] = {"CONNECTION",          "EMAIL", "NAME",      "LAST_DAY",
                                      "DEACTIVATE_AT (UTC)", "LOCAL", "TIME_ZONE", "STATE"};
    PGresult *res = NULL;
    bool json = false;
    int rc = listing(cli, argc, argv, upcoming_sql, &res, &json);
    if (rc != RD_CLI_OK)
        return rc;
    print_listing(res, json, names, ints, 11, hdr, 8, 0, NULL);
    PQclear(res);
    return RD_CLI_OK;
}

static void print_invite(const struct rd_invite *inv, bool json)
{
    if (json) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "email", json_object_new_string(inv->email));
        json_object_object_add(o, "name", json_object_new_string(inv->name));
        json_object_object_add(o, "status", json_object_new_string("invited"));
        json_object_object_add(o, "scim_id", json_object_new_string(inv->scim_id));
        json_object_object_add(o, "department",
                               inv->department[0] ? json_object_new_string(inv->department) : NULL);
        json_object_object_add(o, "manager",
                               inv->manager[0] ? json_object_new_string(inv->manager) : NULL);
        json_object_object_add(o, "platform_team",
                               inv->team[0] ? json_object_new_string(inv->team) : NULL);
        json_object_object_add(o, "note",
                               inv->team_note[0] ? json_object_new_string(inv->team_note) : NULL);
        rd_cli_json_print(o, false, stdout);
        json_object_put(o);
        return;
    }
    printf("invited %s (%s): platform account %s\n", inv->email, inv->name, inv->scim_id);
    printf("  department: %s\n", inv->department[0] ? inv->department : "(none in Personio)");
    printf("  manager:    %s\n", inv->manager[0] ? inv->manager
                                                 : "(none: no supervisor with a"
                                                   " platform account)");
    printf("  team:       %s\n", inv->team[0] ? inv->team : inv->team_note);
}

/* Loads the connection (with its secrets) and runs the invitation. */
static int invite(struct rd_cli *cli, const char *name, const char *email, struct rd_invite *inv,
                  char *err, size_t errlen)
{
    uint8_t key[RD_SECRET_KEY_LEN];
    if (rd_cli_secret_key(cli, key) != 0)
        return -1;
    PGconn *db = rd_cli_db(cli);
    struct rd_connection *conn = NULL;
    int rc = db ? rd_connection_load(db, key, name, &conn, err, errlen) : -1;
    rd_memzero(key, sizeof key);
    if (rc != 0) {
        if (db)
            rd_cli_error("hires invite: %s", err);
        return -1;
    }
    rd_http_global_init();
    /* rosterctl prints what happened itself; the findings' info lines are for the daemon */
    rd_log_setup(cli->cfg.log_level == RD_LOG_DEBUG ? RD_LOG_DEBUG : RD_LOG_WARN, RD_LOG_TEXT);
    struct rd_sync_opts opts = {.ca_file = cli->cfg.ca_file};
    struct rd_sync *s =
        rd_sync_open_run(db, conn, 0, false, &opts, rd_http_now() + INVITE_DEADLINE_SECONDS, NULL);
    /* an operator's action, not a run: the audit trail says who asked */
    snprintf(s->reason, sizeof(s->reason), "operator:hires invite");
    struct rd_http_error herr = {0};
    rc = rd_onboarding_invite(s, email, inv, &herr);
    if (rc != 0)
        rd_cli_error("hires invite: %s", herr.msg[0] ? herr.msg : "failed");
    rd_sync_close(s);
    rd_connection_free(conn);
    return rc;
}

int rd_cli_hires_invite(struct rd_cli *cli, int argc, char **argv)
{
    const char *connection = NULL, *pos[1];
    bool json = false;
    size_t npos = 0;
    char err[512];
    const struct rd_cli_opt opts[] = {{"--connection", &connection, NULL}, {"--json", NULL, &json}};
    if (rd_cli_parse(argc, argv, opts, 2, pos, 1, &npos, err, sizeof err) != 0)
        return rd_cli_usage_error(cli, "%s", err);
    if (npos != 1)
        return rd_cli_usage_error(cli, "expected the e-mail address of the hire");
    if (!connection)
        return rd_cli_usage_error(cli, "--connection is required");
    if (!strchr(pos[0], '@') || strlen(pos[0]) > 254) {
        rd_cli_error("hires invite: \"%s\" is not an e-mail address", pos[0]);
        return RD_CLI_FAIL;
    }
    PGconn *db = rd_cli_db(cli);
    if (!db)
        return RD_CLI_FAIL;
    int rc = rd_cli_check_connection(db, connection);
    if (rc != RD_CLI_OK)
        return rc;
    struct rd_invite *inv = rd_calloc(1, sizeof(*inv));
    rc = invite(cli, connection, pos[0], inv, err, sizeof err) != 0 ? RD_CLI_FAIL : RD_CLI_OK;
    if (rc == RD_CLI_OK && inv->refused[0]) {
        rd_cli_error("hires invite: %s", inv->refused);
        rc = RD_CLI_FAIL;
    } else if (rc == RD_CLI_OK) {
        print_invite(inv, json);
    }
    free(inv);
    return rc;
}
