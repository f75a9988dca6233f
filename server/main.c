/*
 * rosterd: the daemon. Loads rosterd.conf, checks the schema, then runs the
 * roles asked for: the HTTPS intake (ingest), the job workers and scheduler
 * (worker), and in every role the admin listener. SIGTERM drains, SIGHUP
 * reloads the TLS certificate and key.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "rosterd/admin.h"
#include "rosterd/config.h"
#include "rosterd/crypto.h"
#include "rosterd/db.h"
#include "rosterd/intake.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/migrate.h"
#include "rosterd/queue.h"

#define DRAIN_TIMEOUT_S 15

enum role { ROLE_ALL, ROLE_INGEST, ROLE_WORKER };

struct daemon {
    struct rd_config cfg;
    const char *conf_path;
    enum role role;
    uint8_t key[RD_SECRET_KEY_LEN];
    struct event_base *base;
    struct rd_intake *intake;
    struct rd_admin *admin;
    struct rd_queue *queue;
    struct event *sigterm, *sigint, *sighup;
    bool stopping;
};

static void usage(FILE *f)
{
    fprintf(f, "usage: rosterd -c rosterd.conf [--role all|ingest|worker]\n"
               "       rosterd --version\n");
}

static void on_drained(void *arg)
{
    struct daemon *d = arg;
    event_base_loopexit(d->base, NULL);
}

static void on_stop(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    (void)what;
    if (d->stopping) {
        rd_log_warn("second signal: exiting now");
        event_base_loopbreak(d->base);
        return;
    }
    d->stopping = true;
    rd_log_info("received %s: draining", sig == SIGINT ? "SIGINT" : "SIGTERM");
    if (d->intake)
        rd_intake_drain(d->intake, DRAIN_TIMEOUT_S, on_drained, d);
    else
        event_base_loopexit(d->base, NULL);
}

static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    struct daemon *d = arg;
    (void)sig, (void)what;
    char err[512];
    struct rd_config fresh = {0};
    if (rd_config_load(d->conf_path, &fresh, err, sizeof(err)) != 0) {
        rd_log_warn("SIGHUP: %s", err);
    } else {
        char keys[256];
        if (rd_config_restart_keys(&d->cfg, &fresh, keys, sizeof(keys)) > 0)
            rd_log_warn("SIGHUP: changed keys need a restart to apply: %s", keys);
    }
    rd_config_free(&fresh);
    if (!d->intake)
        return;
    if (rd_intake_reload_tls(d->intake, err, sizeof(err)) != 0)
        rd_log_error("SIGHUP: keeping the old certificate: %s", err);
    else
        rd_log_info("SIGHUP: TLS certificate and key reloaded");
}

/* Reads the admin bearer token; a trailing newline is not part of it. */
static char *read_token(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "admin_token_file: %s: %s", path, strerror(errno));
        return NULL;
    }
    char buf[512];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    if (n < 16) {
        snprintf(err, errlen, "admin_token_file: %s: token must be at least 16 characters", path);
        rd_memzero(buf, sizeof(buf));
        return NULL;
    }
    char *t = rd_strdup(buf);
    rd_memzero(buf, sizeof(buf));
    return t;
}

/* The start-up schema check: an old schema stops us; an unreachable database does not. */
/*
 * Every webhook connection is a descriptor, and slow or idle clients hold theirs
 * until header_timeout_seconds cuts them off: at the usual soft limit of 1024 a
 * thousand of them would leave accept() failing for everyone else. The soft
 * limit goes up to the hard one (at most 65536); the unit file sets the hard one.
 */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > 65536 ? 65536 : rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            rd_log_warn("cannot raise the open-file limit: %s", strerror(errno));
    }
}

static int check_schema(const struct rd_config *cfg)
{
    char err[512];
    PGconn *db = rd_db_connect(cfg->database_url, "rosterd", err, sizeof(err));
    if (!db) {
        rd_log_warn("database unreachable at start-up (will keep trying): %s", err);
        return 0;
    }
    int rc = rd_migrate_check(db, err, sizeof(err));
    PQfinish(db);
    if (rc != 0) {
        rd_log_error("%s", err);
        fprintf(stderr, "rosterd: %s\n", err);
    }
    return rc;
}

static int parse_args(int argc, char **argv, const char **conf, enum role *role)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"role", required_argument, NULL, 'r'},
                                         {"version", no_argument, NULL, 'V'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "c:r:Vh", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            *conf = optarg;
            break;
        case 'r':
            if (strcmp(optarg, "all") == 0)
                *role = ROLE_ALL;
            else if (strcmp(optarg, "ingest") == 0)
                *role = ROLE_INGEST;
            else if (strcmp(optarg, "worker") == 0)
                *role = ROLE_WORKER;
            else {
                fprintf(stderr, "rosterd: --role: expected all, ingest or worker, got \"%s\"\n",
                        optarg);
                return 2;
            }
            break;
        case 'V':
            printf("rosterd %s\n", ROSTERD_VERSION);
            exit(0);
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    return 0;
}

/* The intake's commit callback: events committed, wake the dispatcher to derive jobs. */
static void on_commit(void *arg)
{
    rd_queue_wake(arg);
}

static bool intake_ready(void *arg)
{
    return rd_intake_ready(arg);
}

static int start(struct daemon *d, const char *admin_token)
{
    char err[512];
    d->admin = rd_admin_start(&d->cfg, admin_token, err, sizeof(err));
    if (!d->admin)
        goto fail;
    if (d->role != ROLE_INGEST) {
        char instance[128], host[64] = "localhost";
        gethostname(host, sizeof(host) - 1);
        snprintf(instance, sizeof(instance), "%s:%d", host, (int)getpid());
        d->queue = rd_queue_start(&d->cfg, d->key, instance, err, sizeof(err));
        if (!d->queue)
            goto fail;
    }
    if (d->role != ROLE_WORKER) {
        d->intake = rd_intake_new(d->base, &d->cfg, d->key, err, sizeof(err));
        if (!d->intake)
            goto fail;
        if (d->queue)
            rd_intake_on_commit(d->intake, on_commit, d->queue);
        rd_admin_set_ready_probe(d->admin, intake_ready, d->intake);
    }
    return 0;
fail:
    rd_log_error("%s", err);
    fprintf(stderr, "rosterd: %s\n", err);
    return -1;
}

/*
 * The intake loop with epoll's changelist: evhttp takes a connection's read
 * event off while a request is answered and bufferevent_openssl adds and drops
 * its write event around every answer, and the libpq adapter re-arms its event
 * per step. Applied one by one that was 4.6 epoll_ctl calls a request; the
 * changelist hands the kernel only each fd's net change once per loop turn.
 * (Its one caveat, fds shared through dup(), does not arise: every fd on this
 * loop is a socket opened for it.)
 */
static struct event_base *new_base(void)
{
    struct event_config *ec = event_config_new();
    struct event_base *base = NULL;
    if (ec) {
        event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        base = event_base_new_with_config(ec);
        event_config_free(ec);
    }
    return base ? base : event_base_new();
}

int main(int argc, char **argv)
{
    struct daemon d = {0};
    const char *conf = "rosterd.conf";
    char err[1024];
    char *admin_token = NULL;
    int rc = 1;

    int ar = parse_args(argc, argv, &conf, &d.role);
    if (ar != 0)
        return ar;
    d.conf_path = conf;
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    if (rd_config_load(conf, &d.cfg, err, sizeof(err)) != 0 ||
        rd_config_require_daemon(&d.cfg, conf, err, sizeof(err)) != 0) {
        fprintf(stderr, "rosterd: %s\n", err);
        goto out;
    }
    rd_log_setup(d.cfg.log_level, d.cfg.log_format);
    raise_fd_limit();
    if (rd_secret_keys_load(d.cfg.secret_key_file, d.cfg.secret_key_previous_file, d.key, err,
                            sizeof(err)) != 0) {
        rd_log_error("%s", err);
        fprintf(stderr, "rosterd: %s\n", err);
        goto out;
    }
    if (d.cfg.admin_token_file) {
        admin_token = read_token(d.cfg.admin_token_file, err, sizeof(err));
        if (!admin_token) {
            fprintf(stderr, "rosterd: %s\n", err);
            goto out;
        }
        rd_log_redact_add(admin_token);
    }
    if (check_schema(&d.cfg) != 0)
        goto out;

    d.base = new_base();
    if (start(&d, admin_token) != 0)
        goto out;
    d.sigterm = evsignal_new(d.base, SIGTERM, on_stop, &d);
    d.sigint = evsignal_new(d.base, SIGINT, on_stop, &d);
    d.sighup = evsignal_new(d.base, SIGHUP, on_hup, &d);
    evsignal_add(d.sigterm, NULL);
    evsignal_add(d.sigint, NULL);
    evsignal_add(d.sighup, NULL);
    rd_log_info("rosterd %s started (role %s)", ROSTERD_VERSION,
                d.role == ROLE_ALL      ? "all"
                : d.role == ROLE_INGEST ? "ingest"
                                        : "worker");
    event_base_dispatch(d.base);
    rd_log_info("rosterd stopped");
    rc = 0;

out:
    /* Admin first: its ready probe reads the intake. */
    rd_admin_stop(d.admin);
    rd_intake_free(d.intake);
    rd_queue_stop(d.queue);
    if (d.sigterm)
        event_free(d.sigterm);
    if (d.sigint)
        event_free(d.sigint);
    if (d.sighup)
        event_free(d.sighup);
    if (d.base)
        event_base_free(d.base);
    if (admin_token) {
        rd_memzero(admin_token, strlen(admin_token));
        free(admin_token);
    }
    rd_memzero(d.key, sizeof(d.key));
    rd_secret_key_clear_previous();
    rd_config_free(&d.cfg);
    rd_log_redact_clear();
    return rc;
}
