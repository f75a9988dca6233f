/*
 * A stand-alone queue instance for the queue's integration tests and benchmarks:
 * starts rd_queue on a database with N workers and runs until SIGTERM/SIGINT
 * (graceful rd_queue_stop, exit 0). SIGUSR1 wakes the dispatcher like an intake
 * commit would. Usage: queue_driver --db URL [--workers N] [--name NAME]
 * [--max-attempts N] [--retry-base N]
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rosterd/config.h"
#include "rosterd/log.h"
#include "rosterd/queue.h"

static int usage(void)
{
    fprintf(stderr, "usage: queue_driver --db URL [--workers N] [--name NAME]"
                    " [--max-attempts N] [--retry-base N]\n");
    return 2;
}

int main(int argc, char **argv)
{
    struct rd_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.workers = 4;
    cfg.max_attempts = 12;
    cfg.retry_base_seconds = 2;
    cfg.test_handlers = true; /* the queue tests drive test.script jobs */
    char name[128];
    snprintf(name, sizeof name, "driver:%ld", (long)getpid());
    const char *inst = name;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            return usage();
        if (!strcmp(argv[i], "--db"))
            cfg.database_url = (char *)v;
        else if (!strcmp(argv[i], "--workers"))
            cfg.workers = atoi(v);
        else if (!strcmp(argv[i], "--name"))
            inst = v;
        else if (!strcmp(argv[i], "--max-attempts"))
            cfg.max_attempts = atoi(v);
        else if (!strcmp(argv[i], "--retry-base"))
            cfg.retry_base_seconds = atoi(v);
        else
            return usage();
        i++;
    }
    if (!cfg.database_url)
        return usage();
    rd_log_setup(getenv("QUEUE_DRIVER_DEBUG") ? RD_LOG_DEBUG : RD_LOG_INFO, RD_LOG_JSON);

    /* Signals are taken synchronously by this thread; the queue's threads inherit the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    uint8_t key[32] = {0};
    char err[512];
    struct rd_queue *q = rd_queue_start(&cfg, key, inst, err, sizeof err);
    if (!q) {
        fprintf(stderr, "queue_driver: %s\n", err);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGUSR1) {
            rd_queue_wake(q);
            continue;
        }
        break;
    }
    rd_queue_stop(q);
    return 0;
}
