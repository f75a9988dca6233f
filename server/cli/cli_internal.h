/*
 * rosterctl internals: the command table's row type, the per-run context, and
 * helpers every command shares (option parsing, tables, JSON, errors). To add
 * a command, write its handler in a cli_<group>.c, declare it at the end of
 * this file and add a row to the table in rosterctl.c.
 */
#ifndef ROSTERD_CLI_INTERNAL_H
#define ROSTERD_CLI_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "rosterd/config.h"
#include "rosterd/crypto.h"
#include "rosterd/events.h"

struct json_object;

/* Exit codes: DESIGN.md §7. */
enum { RD_CLI_OK = 0, RD_CLI_FAIL = 1, RD_CLI_USAGE = 2 };

struct rd_cli;

/*
 * A command handler. argv[0] is the command's name ("events list"), argv[1..]
 * its arguments (global options already removed). Returns an RD_CLI_ code.
 * `--help` never reaches a handler: the dispatcher prints usage itself.
 */
typedef int (*rd_cli_handler)(struct rd_cli *cli, int argc, char **argv);

struct rd_cli_command {
    const char *group; /* "events" */
    const char *verb;  /* "list"; NULL for a one-word command such as "migrate" */
    rd_cli_handler run;
    const char *usage;   /* full usage text, starting "usage: rosterctl …", ending in "\n" */
    const char *summary; /* one line for the command overview */
};

/* One run of rosterctl. Owns the loaded config and the database connection. */
struct rd_cli {
    const char *config_path;
    const struct rd_cli_command *cmd;
    struct rd_config cfg;
    bool cfg_loaded;
    PGconn *db;
};

/* "rosterctl: message" on stderr. */
void rd_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "rosterctl: message", then the command's usage, on stderr; returns RD_CLI_USAGE. */
int rd_cli_usage_error(struct rd_cli *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Loads the config once (rd_config_load). Prints the error and returns -1 on failure. */
int rd_cli_config(struct rd_cli *cli) __attribute__((warn_unused_result));

/*
 * The database, connected on first use with the session time zone set to UTC.
 * Borrowed (closed by rd_cli_close). NULL after printing the error.
 */
PGconn *rd_cli_db(struct rd_cli *cli);

/* Loads secret_key_file into key; only commands that decrypt or seal call this. */
int rd_cli_secret_key(struct rd_cli *cli, uint8_t key[RD_SECRET_KEY_LEN])
    __attribute__((warn_unused_result));

void rd_cli_close(struct rd_cli *cli);

/*
 * Option parsing. Options are "--name VALUE", "--name=VALUE" or flags; "--"
 * ends options. Positional arguments are collected into pos (at most maxpos).
 * On a usage problem returns -1 with a message in err (caller: usage error).
 */
struct rd_cli_opt {
    const char *name;   /* "--connection" */
    const char **value; /* set for options taking a value, else NULL */
    bool *flag;         /* set for flags, else NULL */
};

int rd_cli_parse(int argc, char **argv, const struct rd_cli_opt *opts, size_t nopts,
                 const char **pos, size_t maxpos, size_t *npos, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Parses a decimal integer in [lo, hi]; false on anything else. */
bool rd_cli_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out);

/*
 * An aligned text table: a header row, then rows; cells are copied. Control
 * characters in cells become spaces; long cells are shortened with "...".
 */
struct rd_cli_table;

struct rd_cli_table *rd_cli_table_new(size_t ncols, const char *const *headers);
/* NULL cells print as "-". */
void rd_cli_table_add(struct rd_cli_table *t, const char *const *cells);
void rd_cli_table_print(const struct rd_cli_table *t, FILE *out);
void rd_cli_table_free(struct rd_cli_table *t);

/* Prints a JSON value and a newline; pretty with two-space indent, or compact. Borrows. */
void rd_cli_json_print(struct json_object *v, bool pretty, FILE *out);

/*
 * Result helpers: a column as a JSON value (SQL NULL → json null), by type.
 * Return new objects (json_object_object_add takes them).
 */
struct json_object *rd_cli_json_text(const PGresult *res, int row, int col);
struct json_object *rd_cli_json_int(const PGresult *res, int row, int col);
/* NULL for SQL NULL, else the text value (borrowed from res). */
const char *rd_cli_value(const PGresult *res, int row, int col);

/*
 * A timestamptz column rendered as ISO 8601 UTC with a Z ("2026-01-31T12:00:00Z"),
 * for the SELECT list: RD_CLI_SQL_ISO("e.received_at").
 */
#define RD_CLI_SQL_ISO(col) RD_SQL_ISO(col)

/* RD_CLI_FAIL with `connection "x" not found` when name is set and unknown, else RD_CLI_OK. */
int rd_cli_check_connection(PGconn *db, const char *name);

/* Handlers: one block per cli_*.c file. */

/* rosterctl.c */
int rd_cli_migrate(struct rd_cli *cli, int argc, char **argv);

/* cli_connection.c */
int rd_cli_connection_apply(struct rd_cli *cli, int argc, char **argv);
int rd_cli_connection_list(struct rd_cli *cli, int argc, char **argv);
int rd_cli_connection_show(struct rd_cli *cli, int argc, char **argv);

/* cli_events.c */
int rd_cli_events_list(struct rd_cli *cli, int argc, char **argv);
int rd_cli_events_count(struct rd_cli *cli, int argc, char **argv);
int rd_cli_events_show(struct rd_cli *cli, int argc, char **argv);

/* cli_jobs.c */
extern const char rd_cli_usage_events_replay[];
extern const char rd_cli_usage_jobs_list[];
int rd_cli_events_replay(struct rd_cli *cli, int argc, char **argv);
int rd_cli_jobs_list(struct rd_cli *cli, int argc, char **argv);

/* cli_people.c */
extern const char rd_cli_usage_hires_list[];
extern const char rd_cli_usage_hires_invite[];
extern const char rd_cli_usage_deactivations_upcoming[];
int rd_cli_hires_list(struct rd_cli *cli, int argc, char **argv);
int rd_cli_hires_invite(struct rd_cli *cli, int argc, char **argv);
int rd_cli_deactivations_upcoming(struct rd_cli *cli, int argc, char **argv);
/* cli_reconcile.c */
extern const char rd_cli_usage_reconcile_run[];
extern const char rd_cli_usage_reconcile_approve[];
extern const char rd_cli_usage_report_show[];
int rd_cli_reconcile_run(struct rd_cli *cli, int argc, char **argv);
int rd_cli_reconcile_approve(struct rd_cli *cli, int argc, char **argv);
int rd_cli_report_show(struct rd_cli *cli, int argc, char **argv);

/* cli_secrets.c */
extern const char rd_cli_usage_secrets_rotate[];
extern const char rd_cli_usage_secrets_status[];
int rd_cli_secrets_rotate(struct rd_cli *cli, int argc, char **argv);
int rd_cli_secrets_status(struct rd_cli *cli, int argc, char **argv);

#endif
