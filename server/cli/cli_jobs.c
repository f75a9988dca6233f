/*
 * rosterctl events replay and jobs list: thin wrappers over server/replay.c, the
 * same code /admin/ serves, so the CLI and the admin API cannot drift apart.
 */
#include "cli_internal.h"

#include "rosterd/replay.h"

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#define MAX_IDS 10000

const char rd_cli_usage_events_replay[] =
    "usage: rosterctl events replay ID... [--dry-run] [--json]\n"
    "       rosterctl events replay --status dead|failed [--connection C] [--since T]\n"
    "                               [--dry-run] [--json]\n"
    "\n"
    "Queues events to be worked again; each keeps its earlier attempts. By ID: failed,\n"
    "dead and done events are replayed, pending and running ones skipped. By filter:\n"
    "every event in that status, optionally of one connection and received since T\n"
    "(30m, 24h, 7d or an ISO 8601 time). --dry-run prints how many and which, and\n"
    "changes nothing. Exit 1 when an ID does not exist.\n";

const char rd_cli_usage_jobs_list[] =
    "usage: rosterctl jobs list [--kind K] [--state S] [--connection C] [--limit N] [--json]\n"
    "\n"
    "Lists queued jobs in run order. States: pending (due now), scheduled (due later),\n"
    "running, failed (waiting to retry), dead; done and replayed list finished jobs,\n"
    "newest first. --limit defaults to 1000.\n";

static int print_replay(struct json_object *r, bool json)
{
    if (json) {
        rd_cli_json_print(r, false, stdout);
        return RD_CLI_OK;
    }
    bool dry = json_object_get_boolean(json_object_object_get(r, "dry_run"));
    struct json_object *ev = json_object_object_get(r, "events");
    struct json_object *sk = json_object_object_get(r, "skipped");
    size_t n = json_object_array_length(ev);
    printf("%s %zu event%s", dry ? "would replay" : "replayed", n, n == 1 ? "" : "s");
    for (size_t i = 0; i < n; i++)
        printf("%s%lld", i ? " " : ": ",
               (long long)json_object_get_int64(json_object_array_get_idx(ev, i)));
    printf("\n");
    int rc = RD_CLI_OK;
    for (size_t i = 0; i < json_object_array_length(sk); i++) {
        struct json_object *s = json_object_array_get_idx(sk, i);
        const char *st = json_object_get_string(json_object_object_get(s, "status"));
        long long id = (long long)json_object_get_int64(json_object_object_get(s, "id"));
        if (strcmp(st, "missing") == 0) {
            rd_cli_error("event %lld not found", id);
            rc = RD_CLI_FAIL;
        } else {
            printf("skipped %lld: %s\n", id, st);
        }
    }
    return rc;
}

int rd_cli_events_replay(struct rd_cli *cli, int argc, char **argv)
{
    struct rd_replay_filter f = {0};
    bool dry_run = false, json = false;
    const char *pos[MAX_IDS];
    size_t npos = 0;
    char err[512], iso[64], secs[24];
    const struct rd_cli_opt opts[] = {
        {"--status", &f.status, NULL}, {"--connection", &f.connection, NULL},
        {"--since", &f.since, NULL},   {"--dry-run", NULL, &dry_run},
        {"--json", NULL, &json},
    };
    if (rd_cli_parse(argc, argv, opts, 5, pos, MAX_IDS, &npos, err, sizeof err) != 0)
        return rd_cli_usage_error(cli, "%s", err);
    if (npos > 0 && (f.status || f.connection || f.since))
        return rd_cli_usage_error(cli, "give event IDs or --status, not both");
    if (npos == 0 && !f.status)
        return rd_cli_usage_error(cli, "give event IDs or --status dead|failed");
    if (f.status && strcmp(f.status, "dead") != 0 && strcmp(f.status, "failed") != 0)
        return rd_cli_usage_error(cli, "--status: expected dead or failed");
    if (f.since && !rd_events_parse_since(f.since, iso, secs))
        return rd_cli_usage_error(
            cli, "--since: expected a duration such as 30m, 24h or 7d, or an ISO 8601 time");
    int64_t *ids = calloc(npos ? npos : 1, sizeof *ids);
    for (size_t i = 0; ids && i < npos; i++)
        if (!rd_cli_parse_int(pos[i], 1, INT64_MAX, &ids[i])) {
            free(ids);
            return rd_cli_usage_error(cli, "%s: expected an event ID", pos[i]);
        }
    PGconn *db = ids ? rd_cli_db(cli) : NULL;
    if (!db) {
        free(ids);
        return RD_CLI_FAIL;
    }
    struct json_object *r = NULL;
    int rc = npos ? rd_replay_ids(db, ids, npos, dry_run, &r, err, sizeof err)
                  : rd_replay_filtered(db, &f, dry_run, &r, err, sizeof err);
    free(ids);
    if (rc != 0) {
        rd_cli_error("events replay: %s", err);
        return RD_CLI_FAIL;
    }
    rc = print_replay(r, json);
    json_object_put(r);
    return rc;
}

static void print_jobs(struct json_object *arr)
{
    static const char *const hdr[] = {"ID",     "KIND",     "KEY",       "STATE",
                                      "RUN_AT", "ATTEMPTS", "LAST_ERROR"};
    static const char *const names[] = {"id",     "kind",     "key",       "state",
                                        "run_at", "attempts", "last_error"};
    struct rd_cli_table *t = rd_cli_table_new(7, hdr);
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        struct json_object *o = json_object_array_get_idx(arr, i);
        const char *row[7];
        for (int c = 0; c < 7; c++) {
            struct json_object *v = json_object_object_get(o, names[c]);
            row[c] = v ? json_object_get_string(v) : (c == 6 ? "" : NULL);
        }
        rd_cli_table_add(t, row);
    }
    rd_cli_table_print(t, stdout);
    rd_cli_table_free(t);
}

int rd_cli_jobs_list(struct rd_cli *cli, int argc, char **argv)
{
    static const char *const states[] = {"pending", "scheduled", "running", "failed",
                                         "dead",    "done",      "replayed"};
    struct rd_jobs_filter f = {0};
    const char *limit = "1000";
    bool json = false;
    size_t npos = 0;
    char err[512];
    const struct rd_cli_opt opts[] = {
        {"--kind", &f.kind, NULL},
        {"--state", &f.state, NULL},
        {"--connection", &f.connection, NULL},
        {"--limit", &limit, NULL},
        {"--json", NULL, &json},
    };
    if (rd_cli_parse(argc, argv, opts, 5, NULL, 0, &npos, err, sizeof err) != 0)
        return rd_cli_usage_error(cli, "%s", err);
    if (!rd_cli_parse_int(limit, 1, 100000, &f.limit))
        return rd_cli_usage_error(cli, "--limit: expected a number from 1 to 100000");
    bool known = !f.state;
    for (size_t i = 0; f.state && i < sizeof states / sizeof states[0]; i++)
        known = known || strcmp(f.state, states[i]) == 0;
    if (!known)
        return rd_cli_usage_error(cli, "--state: expected one of pending, scheduled, running,"
                                       " failed, dead, done, replayed");
    PGconn *db = rd_cli_db(cli);
    if (!db)
        return RD_CLI_FAIL;
    struct json_object *arr = NULL;
    if (rd_jobs_list(db, &f, &arr, err, sizeof err) != 0) {
        rd_cli_error("jobs list: %s", err);
        return RD_CLI_FAIL;
    }
    if (json)
        rd_cli_json_print(arr, false, stdout);
    else
        print_jobs(arr);
    json_object_put(arr);
    return RD_CLI_OK;
}
