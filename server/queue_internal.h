/*
 * What queue.c (start/stop, dispatcher), worker.c and scheduler.c share: the queue
 * object, claimed jobs and the hand-off between the dispatcher and the workers.
 * Private to the queue module.
 */
#ifndef ROSTERD_QUEUE_INTERNAL_H
#define ROSTERD_QUEUE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <libpq-fe.h>

#include "rosterd/crypto.h"
#include "rosterd/handler.h"

/* A job as the claim returned it; owned by whoever holds it (ready list, then a worker). */
struct rd_claimed_job {
    int64_t id;
    int64_t connection_id; /* 0 when none */
    char *kind;
    char *key;
    char *conn_name; /* NULL when none */
    char *subject;   /* NULL when none */
    char *payload;   /* JSON text or NULL */
    int attempts;    /* this attempt's number (the claim incremented it) */
    struct rd_job_event *events;
    size_t nevents;
};

struct rd_queue {
    int nworkers;
    int max_attempts;
    int retry_base;
    int event_retention_days; /* finished events older than this are deleted */
    int job_history_days;     /* finished and dead jobs older than this are deleted */
    char *instance;
    char *db_url;
    char *ca_file; /* config values handlers need (rd_job_ctx), or NULL */
    char *smtp_url;
    char *smtp_from;
    bool test_handlers; /* config test_handlers: run the test_only handlers */
    uint8_t key[RD_SECRET_KEY_LEN];

    PGconn **worker_db; /* one per worker */
    PGconn *dispatch_db;
    /* The dispatcher's claim mark: the (run_at, id) of the last job it claimed. */
    int64_t claim_mark_id;
    char claim_mark_run_at[64];
    int claims_since_full;
    struct timespec next_full_ok; /* a commit may force a full claim from then on */
    PGconn *sched_db;
    PGconn *complete_db;
    PGconn *derive_db; /* the deriver's: derivations run beside the claims, not between them */

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t dispatch_cv;
    pthread_cond_t work_cv;
    pthread_cond_t sched_cv;
    pthread_cond_t complete_cv;
    pthread_cond_t derive_cv;
    bool wake;            /* work may be due: claim at the next chance */
    bool committed;       /* rd_queue_wake since the last full claim began: see claim() */
    bool derive_wake;     /* events may have committed: derive their jobs at the next chance */
    bool deriver_exit;    /* with the dispatcher's */
    bool closing;         /* stop: no claims, workers exit when idle */
    bool dispatcher_exit; /* after the workers are joined */
    bool scheduler_exit;
    struct rd_claimed_job **ready; /* FIFO of claimed, not started jobs (cap nworkers) */
    size_t nready;
    int busy;      /* workers inside a job */
    int64_t *held; /* ids whose lease this instance renews (cap nworkers * PREFETCH) */
    size_t nheld;
    struct rd_done *done; /* successes waiting for the completer's group commit */
    size_t ndone;
    size_t ncommitting;  /* taken by the completer, commit in flight */
    bool completer_exit; /* after the workers are joined: flush, then exit */

    atomic_bool stopping; /* handlers see it through rd_job_ctx.stopping */

    pthread_t *worker_threads;
    int nworker_threads;
    pthread_t dispatcher;
    bool dispatcher_started;
    pthread_t deriver;
    bool deriver_started;
    pthread_t scheduler;
    bool scheduler_started;
    pthread_t completer;
    bool completer_started;
};

/* A successful job outcome on its way to the database. */
struct rd_done {
    int64_t id;
    int attempts;
    char *note; /* NULL or owned */
};

struct rd_queue_worker_arg {
    struct rd_queue *q;
    int index;
};

void *rd_queue_worker_main(void *arg);
void *rd_queue_scheduler_main(void *arg);
/* Commits successful outcomes in groups (completer.c). */
void *rd_queue_completer_main(void *arg);

void rd_queue_claimed_free(struct rd_claimed_job *job);

/* Monotonic clock helpers for pthread_cond_timedwait on CLOCK_MONOTONIC condvars. */
struct timespec rd_queue_now(void);
struct timespec rd_queue_after_ms(long ms);
bool rd_queue_past(const struct timespec *t);

/*
 * Session settings of the queue's connections, applied when they connect and again
 * after a reset. Claims, renewals and reaping need not wait for their WAL flush
 * (the claim is undone by a crash and the job runs again; the outcome's synchronous
 * commit flushes it anyway). The dispatcher's and completer's statements are
 * index-driven by design and run thousands of times a second from one cached
 * generic plan; statistics lag a burst by up to a minute (autovacuum's visit), and
 * a plan made from "jobs is empty" sorted every due job and hash-joined whole
 * tables on each claim (68 ms instead of 2). On these two sessions sequential
 * and bitmap scans are priced out, so every plan follows the indexes.
 */
/*
 * No JIT on the queue's sessions: its statements run in milliseconds, and a
 * generic plan made right after a burst (no statistics yet: a claim's per-job
 * subquery was costed at ~500 links a job) crossed jit_above_cost, so every claim of
 * 128 jobs compiled its expressions again, ~20 ms of LLVM for ~2 ms of work, and a
 * drain with 16 workers ran at 3,300 jobs/s until a vacuum shrank the estimates
 * (issue 14). Compiled code is not kept with a cached plan, so it never pays here.
 */
#define RD_QUEUE_SESSION_NOJIT "SET jit = off"
#define RD_QUEUE_SESSION_INDEXED                                                                   \
    "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off;"                          \
    " SET enable_bitmapscan = off; " RD_QUEUE_SESSION_NOJIT
#define RD_QUEUE_SESSION_DISPATCH "SET synchronous_commit = off; " RD_QUEUE_SESSION_INDEXED
#define RD_QUEUE_SESSION_SCHED "SET synchronous_commit = off; " RD_QUEUE_SESSION_NOJIT
#define RD_QUEUE_SESSION_COMPLETE RD_QUEUE_SESSION_INDEXED

/*
 * Makes sure db is usable, resetting it once if the connection broke; a reset
 * connection runs session (one of the above, or NULL) again.
 */
bool rd_queue_db_ok(PGconn *db, const char *session);

/*
 * rd_db_exec for the hot statements: runs the statement prepared under name,
 * preparing it first on a session that lacks it (a new or reset connection).
 */
PGresult *rd_queue_exec(PGconn *db, const char *name, const char *sql, int nparams,
                        const char *const *params, char *err, size_t errlen);

/* A uniform draw in [0, 1) from the OpenSSL generator (thread-safe). */
double rd_queue_uniform(void);

#endif
