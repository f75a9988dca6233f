/*
 * rosterctl, the operator tool (DESIGN.md §7): global options, the command
 * table and dispatch. Commands live in cli_*.c; adding one is a row in
 * `commands` below plus its handler declared in cli_internal.h.
 */
#include "cli_internal.h"

#include "rosterd/db.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/migrate.h"

#include <stdlib.h>
#include <string.h>

static const char usage_migrate[] =
    "usage: rosterctl migrate\n"
    "\n"
    "Applies the migrations built into this binary that the database lacks, each in\n"
    "its own transaction. Safe to run again and from several hosts at once.\n";

static const char usage_connection_apply[] =
    "usage: rosterctl connection apply FILE\n"
    "\n"
    "Validates the connection document FILE (JSON, \"-\" for stdin), resolves its\n"
    "\"env:NAME\" and \"file:PATH\" secret references (paths relative to FILE), and\n"
    "creates or updates the connection of that name. Secrets are stored encrypted\n"
    "under secret_key_file.\n";

static const char usage_connection_list[] =
    "usage: rosterctl connection list [--json]\n"
    "\n"
    "Lists connections: name, time zone, how each source authenticates\n"
    "(personio: token|standard, moco: hmac|standard) and when it was last applied.\n";

static const char usage_connection_show[] =
    "usage: rosterctl connection show NAME [--json]\n"
    "\n"
    "Prints the connection document with every secret masked (pretty JSON, or\n"
    "compact with --json).\n";

#define EVENT_FILTERS                                                                              \
    "  --connection C     only events of connection C\n"                                           \
    "  --source S         personio or moco\n"                                                      \
    "  --status S         pending, running, done, failed or dead\n"                                \
    "  --since T          received within a duration (30m, 24h, 7d) or since an ISO 8601\n"        \
    "                     time (UTC when it has no offset)\n"

static const char usage_events_list[] =
    "usage: rosterctl events list [--connection C] [--source personio|moco] [--status S]\n"
    "                             [--since 24h|7d|30m|ISO] [--limit N] [--json]\n"
    "\n"
    "Lists stored webhook events, newest first.\n"
    "\n" EVENT_FILTERS "  --limit N          at most N events (default 50, at most 10000)\n"
    "  --json             one JSON array\n";

static const char usage_events_count[] =
    "usage: rosterctl events count [--connection C] [--source personio|moco] [--status S]\n"
    "                              [--since 24h|7d|30m|ISO]\n"
    "\n"
    "Prints the number of stored events matching the filters.\n"
    "\n" EVENT_FILTERS;

static const char usage_events_show[] =
    "usage: rosterctl events show ID [--json]\n"
    "\n"
    "Prints one event: its fields, headers (secrets masked), body and every attempt\n"
    "at working it with its outcome and error.\n";

static const struct rd_cli_command commands[] = {
    {"migrate", NULL, rd_cli_migrate, usage_migrate, "apply sql/ migrations (idempotent)"},
    {"connection", "apply", rd_cli_connection_apply, usage_connection_apply,
     "create or update a connection from a JSON file"},
    {"connection", "list", rd_cli_connection_list, usage_connection_list, "list connections"},
    {"connection", "show", rd_cli_connection_show, usage_connection_show,
     "show a connection, secrets masked"},
    {"events", "list", rd_cli_events_list, usage_events_list, "list stored webhook events"},
    {"events", "count", rd_cli_events_count, usage_events_count, "count stored webhook events"},
    {"events", "show", rd_cli_events_show, usage_events_show, "show one event with its attempts"},
    {"events", "replay", rd_cli_events_replay, rd_cli_usage_events_replay,
     "queue failed or dead events again (by ID or filter, --dry-run)"},
    {"jobs", "list", rd_cli_jobs_list, rd_cli_usage_jobs_list, "list queued jobs"},
    {"hires", "list", rd_cli_hires_list, rd_cli_usage_hires_list,
     "list new hires and their status"},
    {"hires", "invite", rd_cli_hires_invite, rd_cli_usage_hires_invite,
     "create a hire's platform account (EMAIL --connection C)"},
    {"deactivations", "upcoming", rd_cli_deactivations_upcoming,
     rd_cli_usage_deactivations_upcoming, "who is deactivated when (local time and UTC)"},
    {"reconcile", "run", rd_cli_reconcile_run, rd_cli_usage_reconcile_run,
     "reconcile a connection now and print the report (--dry-run)"},
    {"reconcile", "approve", rd_cli_reconcile_approve, rd_cli_usage_reconcile_approve,
     "release the deactivations a run's circuit breaker held"},
    {"report", "show", rd_cli_report_show, rd_cli_usage_report_show,
     "show a reconciliation report (text, json, csv, html)"},
    {"secrets", "rotate-key", rd_cli_secrets_rotate, rd_cli_usage_secrets_rotate,
     "re-seal every stored secret under a new secret key"},
    {"secrets", "status", rd_cli_secrets_status, rd_cli_usage_secrets_status,
     "which key each stored secret is sealed under"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

int rd_cli_migrate(struct rd_cli *cli, int argc, char **argv)
{
    char err[512];
    size_t npos = 0;
    int applied = 0, version = 0;
    if (rd_cli_parse(argc, argv, NULL, 0, NULL, 0, &npos, err, sizeof err) != 0)
        return rd_cli_usage_error(cli, "%s", err);
    PGconn *db = rd_cli_db(cli);
    if (!db)
        return RD_CLI_FAIL;
    if (rd_migrate_apply(db, &applied, err, sizeof err) != 0 ||
        rd_migrate_current(db, &version, err, sizeof err) != 0) {
        rd_cli_error("migrate: %s", err);
        return RD_CLI_FAIL;
    }
    if (applied > 0)
        printf("applied %d migration%s, schema at version %d\n", applied, applied == 1 ? "" : "s",
               version);
    else
        printf("schema is current at version %d\n", version);
    return RD_CLI_OK;
}

static void print_overview(FILE *out)
{
    fputs("usage: rosterctl [-c rosterd.conf] COMMAND [ARGS…]\n"
          "\n"
          "  -c, --config FILE   configuration (default $ROSTERD_CONFIG, else ./rosterd.conf)\n"
          "\n"
          "commands:\n",
          out);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s%s%s", commands[i].group, commands[i].verb ? " " : "",
                 commands[i].verb ? commands[i].verb : "");
        fprintf(out, "  %-22s %s\n", name, commands[i].summary);
    }
    fputs("\n`rosterctl COMMAND --help` describes a command.\n", out);
}

static bool group_exists(const char *group)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].group, group) == 0)
            return true;
    return false;
}

static void print_group(const char *group, FILE *out)
{
    fprintf(out, "usage: rosterctl %s VERB …\n\nverbs:\n", group);
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].group, group) == 0 && commands[i].verb)
            fprintf(out, "  %-10s %s\n", commands[i].verb, commands[i].summary);
}

static const struct rd_cli_command *find_command(const char *group, const char *verb)
{
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(commands[i].group, group) != 0)
            continue;
        if (!commands[i].verb || (verb && strcmp(commands[i].verb, verb) == 0))
            return &commands[i];
    }
    return NULL;
}

static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    }
    return false;
}

/* Runs the command at argv[0..]; returns the exit code. */
static int dispatch(struct rd_cli *cli, int argc, char **argv)
{
    const char *group = argv[0];
    if (strcmp(group, "help") == 0) {
        print_overview(stdout);
        return RD_CLI_OK;
    }
    if (!group_exists(group)) {
        rd_cli_error("unknown command \"%s\"", group);
        print_overview(stderr);
        return RD_CLI_USAGE;
    }
    const char *verb = argc > 1 ? argv[1] : NULL;
    const struct rd_cli_command *cmd = find_command(group, verb);
    if (!cmd) {
        bool help = verb && (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0);
        if (verb && !help)
            rd_cli_error("unknown command \"%s %s\"", group, verb);
        else if (!verb)
            rd_cli_error("%s: missing verb", group);
        print_group(group, help ? stdout : stderr);
        return help ? RD_CLI_OK : RD_CLI_USAGE;
    }
    /* Handlers see argv[0] = "group verb" and their own arguments after it. */
    int skip = cmd->verb ? 2 : 1;
    int hargc = argc - skip + 1;
    char **hargv = rd_calloc((size_t)hargc + 1, sizeof *hargv);
    char *name =
        rd_asprintf("%s%s%s", cmd->group, cmd->verb ? " " : "", cmd->verb ? cmd->verb : "");
    hargv[0] = name;
    for (int i = skip; i < argc; i++)
        hargv[i - skip + 1] = argv[i];
    int rc;
    cli->cmd = cmd;
    if (wants_help(hargc, hargv)) {
        fputs(cmd->usage, stdout);
        rc = RD_CLI_OK;
    } else {
        rc = cmd->run(cli, hargc, hargv);
    }
    free(name);
    free(hargv);
    return rc;
}

int main(int argc, char **argv)
{
    struct rd_cli cli = {0};
    int i = 1;
    rd_log_setup(RD_LOG_WARN, RD_LOG_TEXT);
    cli.config_path = getenv("ROSTERD_CONFIG");
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                rd_cli_error("%s needs a file", a);
                print_overview(stderr);
                return RD_CLI_USAGE;
            }
            cli.config_path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            cli.config_path = a + 9;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            print_overview(stdout);
            return RD_CLI_OK;
        } else {
            rd_cli_error("unknown option \"%s\"", a);
            print_overview(stderr);
            return RD_CLI_USAGE;
        }
    }
    if (!cli.config_path || !*cli.config_path)
        cli.config_path = "rosterd.conf";
    if (i >= argc) {
        rd_cli_error("missing command");
        print_overview(stderr);
        return RD_CLI_USAGE;
    }
    int rc = dispatch(&cli, argc - i, argv + i);
    rd_cli_close(&cli);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        rd_cli_error("cannot write output");
        rc = RD_CLI_FAIL;
    }
    return rc;
}
