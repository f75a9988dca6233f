/*
 * rosterctl reconcile run / approve and report show (DESIGN.md §7): a run in this
 * process (the same code as rosterd's nightly job), releasing what a run's circuit
 * breaker held, and a run's report as text, JSON, CSV or one HTML page.
 */
#include "cli_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "rosterd/connection.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/reconcile.h"
#include "rosterd/report.h"

const char rd_cli_usage_reconcile_run[] =
    "usage: rosterctl reconcile run --connection C [--dry-run] [--format text|json|csv|html]\n"
    "                               [-o FILE]\n"
    "\n"
    "Runs the connection's reconciliation now, in this process, and prints its report:\n"
    "every upstream is read in full, everyone is converged as the event handlers do,\n"
    "platform accounts with no employee are reported. --dry-run finds and plans the same\n"
    "and changes nothing upstream. A run that would deactivate more than\n"
    "policy.max_deactivations_per_run people, more than 10 % of the linked ones, or that\n"
    "sees Personio return under 80 % of the last good run's employees holds its\n"
    "deactivations (status held) until `rosterctl reconcile approve`. Only one run per\n"
    "connection runs at a time, across all hosts. Ctrl-C stops it (status failed).\n"
    "Exit 0 when it ends done or held, 1 when it failed or another run is running.\n";

const char rd_cli_usage_reconcile_approve[] =
    "usage: rosterctl reconcile approve RUN_ID [--format text|json|csv|html] [-o FILE]\n"
    "\n"
    "Releases the deactivations run RUN_ID's circuit breaker held: each held person is\n"
    "read from Personio again and deactivated only if that is still due now; protected\n"
    "users never are. Recorded as a run of its own (its report is printed); RUN_ID becomes\n"
    "done, approved by you.\n";

const char rd_cli_usage_report_show[] =
    "usage: rosterctl report show [RUN_ID|latest] --connection C [--format text|json|csv|html]\n"
    "                             [-o FILE]\n"
    "\n"
    "Prints a reconciliation run's report (default: the connection's latest run). text:\n"
    "a plain-language summary; json: run_id, connection, dry_run, status, started_at,\n"
    "finished_at, counts, findings and more; csv: one finding a row (RFC 4180); html: one\n"
    "self-contained page with the tables and a chart of the last 30 runs. -o FILE writes\n"
    "the report to FILE (mode 0600) instead of stdout.\n";

static atomic_bool g_stop;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&g_stop, true);
}

/* Ctrl-C or SIGTERM stops a run between two people (it is then marked failed). */
static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* Writes all of data to fd; false with errno on failure. */
static bool write_all(int fd, const struct rd_buf *data)
{
    size_t off = 0;
    while (off < data->len) {
        ssize_t n = write(fd, data->data + off, data->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        off += (size_t)n;
    }
    return true;
}

/*
 * Writes data to path or stdout. A regular file (or a new one) is replaced atomically
 * (mode 0600: reports name people); anything else — /dev/stdout, a pipe, a symlink — is
 * written through, never replaced.
 */
static int emit(const char *path, const struct rd_buf *data)
{
    if (!path) {
        fwrite(data->data ? data->data : "", 1, data->len, stdout);
        return RD_CLI_OK;
    }
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        int fd = open(path, O_WRONLY | O_NOCTTY);
        bool ok = fd >= 0 && write_all(fd, data);
        int saved = errno;
        if (fd >= 0 && close(fd) != 0 && ok)
            ok = false, saved = errno;
        if (!ok)
            rd_cli_error("cannot write %s: %s", path, strerror(saved));
        return ok ? RD_CLI_OK : RD_CLI_FAIL;
    }
    char *tmp = rd_asprintf("%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
    bool ok = fd >= 0 && write_all(fd, data);
    int saved = errno;
    if (fd >= 0 && close(fd) != 0 && ok)
        ok = false, saved = errno;
    if (ok && rename(tmp, path) != 0)
        ok = false, saved = errno;
    if (!ok) {
        unlink(tmp);
        rd_cli_error("cannot write %s: %s", path, strerror(saved));
    }
    free(tmp);
    return ok ? RD_CLI_OK : RD_CLI_FAIL;
}

/* Loads and renders one report; RD_CLI_ code. */
static int show(PGconn *db, const char *connection, int64_t run_id, enum rd_report_format f,
                const char *out_path)
{
    char err[512];
    struct json_object *report = NULL, *history = NULL;
    if (rd_report_get(db, connection, run_id, &report, err, sizeof err) != 0) {
        rd_cli_error("report show: %s", err);
        return RD_CLI_FAIL;
    }
    if (!report) {
        if (run_id)
            rd_cli_error("run %lld of connection \"%s\" not found", (long long)run_id,
                         connection ? connection : "?");
        else
            rd_cli_error("connection \"%s\" has no reconciliation runs yet", connection);
        return RD_CLI_FAIL;
    }
    const char *name = json_object_get_string(json_object_object_get(report, "connection"));
    if (f == RD_REPORT_HTML &&
        rd_report_list(db, name, RD_REPORT_HISTORY,
                       json_object_get_int64(json_object_object_get(report, "run_id")), &history,
                       err, sizeof err) != 0) {
        rd_cli_error("report show: %s", err);
        json_object_put(report);
        return RD_CLI_FAIL;
    }
    struct rd_buf b = {0};
    rd_report_render(report, history, f, &b);
    int rc = emit(out_path, &b);
    rd_buf_free(&b);
    json_object_put(report);
    json_object_put(history);
    return rc;
}

/* Everything a run in this process needs: the connection (decrypted) and the options. */
static int prepare(struct rd_cli *cli, const char *name, struct rd_connection **conn,
                   struct rd_reconcile_opts *o, char *owner, size_t ownerlen)
{
    uint8_t key[RD_SECRET_KEY_LEN];
    char err[512];
    PGconn *db = rd_cli_db(cli);
    if (!db || rd_cli_check_connection(db, name) != RD_CLI_OK)
        return RD_CLI_FAIL;
    if (rd_cli_secret_key(cli, key) != 0)
        return RD_CLI_FAIL;
    int rc = rd_connection_load(db, key, name, conn, err, sizeof err);
    rd_memzero(key, sizeof key);
    if (rc != 0) {
        rd_cli_error("%s", err);
        return RD_CLI_FAIL;
    }
    char host[64] = "localhost";
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    snprintf(owner, ownerlen, "%s:%ld:rosterctl", host, (long)getpid());
    memset(o, 0, sizeof(*o));
    o->trigger = "operator";
    o->owner = owner;
    o->sync.ca_file = cli->cfg.ca_file;
    o->sync.smtp_url = cli->cfg.smtp_url;
    o->sync.smtp_from = cli->cfg.smtp_from;
    o->stopping = &g_stop;
    catch_signals();
    /* The report is the output; a log line per finding on stderr would drown it. */
    if (cli->cfg.log_level == RD_LOG_INFO)
        rd_log_setup(RD_LOG_WARN, cli->cfg.log_format);
    return RD_CLI_OK;
}

static int parse_format(struct rd_cli *cli, const char *s, enum rd_report_format *f)
{
    if (!s) {
        *f = RD_REPORT_TEXT;
        return RD_CLI_OK;
    }
    if (!rd_report_parse_format(s, f))
        return rd_cli_usage_error(cli, "--format: expected text, json, csv or html");
    return RD_CLI_OK;
}

/* After a run: its report, then the verdict on stderr. */
static int finish_run(PGconn *db, const char *name, int rc, const struct rd_reconcile_outcome *out,
                      enum rd_report_format f, const char *path)
{
    if (rc == RD_RECONCILE_BUSY) {
        rd_cli_error("%s", out->message);
        return RD_CLI_FAIL;
    }
    int shown = out->run_id ? show(db, name, out->run_id, f, path) : RD_CLI_OK;
    if (rc != RD_RECONCILE_OK) {
        rd_cli_error("run %lld failed: %s", (long long)out->run_id, out->message);
        return RD_CLI_FAIL;
    }
    if (strcmp(out->status, "held") == 0)
        rd_cli_error("run %lld is held by the circuit breaker: review it, then `rosterctl"
                     " reconcile approve %lld`",
                     (long long)out->run_id, (long long)out->run_id);
    return shown;
}

int rd_cli_reconcile_run(struct rd_cli *cli, int argc, char **argv)
{
    const char *name = NULL, *format = NULL, *path = NULL;
    bool dry = false;
    size_t npos = 0;
    char err[512], owner[160];
    const struct rd_cli_opt opts[] = {
        {"--connection", &name, NULL}, {"--dry-run", NULL, &dry}, {"--format", &format, NULL},
        {"-o", &path, NULL},           {"--output", &path, NULL},
    };
    if (rd_cli_parse(argc, argv, opts, 5, NULL, 0, &npos, err, sizeof err) != 0)
        return rd_cli_usage_error(cli, "%s", err);
    if (!name)
        return rd_cli_usage_error(cli, "--connection is required");
    enum rd_report_format f;
    if (parse_format(cli, format, &f) != RD_CLI_OK)
        return RD_CLI_USAGE;
    struct rd_connection *conn = NULL;
    struct rd_reconcile_opts o;
    if (prepare(cli, name, &conn, &o, owner, sizeof owner) != RD_CLI_OK)
        return RD_CLI_FAIL;
    o.dry_run = dry;
    struct rd_reconcile_outcome out;
    int rc = rd_reconcile_run(cli->db, conn, &o, &out);
    rd_connection_free(conn);
    return finish_run(cli->db, name, rc, &out, f, path);
}

/* Who approves, for the record: the login behind sudo, else the user. */
static void approver_name(char *out, size_t outlen)
{
    const char *who = getenv("SUDO_USER");
    if (!who || !*who)
        who = getenv("USER");
    if (!who || !*who)
        who = getenv("LOGNAME");
    char host[64] = "";
    if (gethostname(host, sizeof host) != 0)
        host[0] = '\0';
    host[sizeof host - 1] = '\0';
    snprintf(out, outlen, "%s@%s (rosterctl)", who && *who ? who : "unknown", host[0] ? host : "?");
}

int rd_cli_reconcile_approve(struct rd_cli *cli, int argc, char **argv)
{
    const char *format = NULL, *path = NULL, *pos[1];
    size_t npos = 0;
    char err[512], owner[160], who[160], name[128];
    const struct rd_cli_opt opts[] = {
        {"--format", &format, NULL}, {"-o", &path, NULL}, {"--output", &path, NULL}};
    if (rd_cli_parse(argc, argv, opts, 3, pos, 1, &npos, err, sizeof err) != 0)
        return rd_cli_usage_error(cli, "%s", err);
    int64_t run_id = 0;
    if (npos != 1 || !rd_cli_parse_int(pos[0], 1, INT64_MAX, &run_id))
        return rd_cli_usage_error(cli, "give the RUN_ID of a held run");
    enum rd_report_format f;
    if (parse_format(cli, format, &f) != RD_CLI_OK)
        return RD_CLI_USAGE;
    PGconn *db = rd_cli_db(cli);
    if (!db)
        return RD_CLI_FAIL;
    if (rd_reconcile_run_connection(db, run_id, name, sizeof name, err, sizeof err) != 0) {
        rd_cli_error("%s", err);
        return RD_CLI_FAIL;
    }
    struct rd_connection *conn = NULL;
    struct rd_reconcile_opts o;
    if (prepare(cli, name, &conn, &o, owner, sizeof owner) != RD_CLI_OK)
        return RD_CLI_FAIL;
    approver_name(who, sizeof who);
    struct rd_reconcile_outcome out;
    int rc = rd_reconcile_approve(db, conn, run_id, who, &o, &out);
    rd_connection_free(conn);
    if (rc != RD_RECONCILE_OK && !out.run_id) {
        rd_cli_error("%s", out.message);
        return RD_CLI_FAIL;
    }
    return finish_run(db, name, rc, &out, f, path);
}

int rd_cli_report_show(struct rd_cli *cli, int argc, char **argv)
{
    const char *name = NULL, *format = NULL, *path = NULL, *pos[1];
    size_t npos = 0;
    char err[512];
    const struct rd_cli_opt opts[] = {{"--connection", &name, NULL},
                                      {"--format", &format, NULL},
                                      {"-o", &path, NULL},
                                      {"--output", &path, NULL}};
    if (rd_cli_parse(argc, argv, opts, 4, pos, 1, &npos, err, sizeof err) != 0)
        return rd_cli_usage_error(cli, "%s", err);
    if (!name)
        return rd_cli_usage_error(cli, "--connection is required");
    int64_t run_id = 0;
    if (npos == 1 && strcmp(pos[0], "latest") != 0 &&
        !rd_cli_parse_int(pos[0], 1, INT64_MAX, &run_id))
        return rd_cli_usage_error(cli, "%s: expected a run id or \"latest\"", pos[0]);
    enum rd_report_format f;
    if (parse_format(cli, format, &f) != RD_CLI_OK)
        return RD_CLI_USAGE;
    PGconn *db = rd_cli_db(cli);
    if (!db || rd_cli_check_connection(db, name) != RD_CLI_OK)
        return RD_CLI_FAIL;
    return show(db, name, run_id, f, path);
}
