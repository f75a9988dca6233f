/*
 * The job queue (DESIGN.md §9): worker threads run due jobs claimed from Postgres
 * under a short lease; a dispatcher thread claims in batches and renews leases; a
 * scheduler thread reaps lapsed leases, creates periodic jobs and prunes history.
 * Schema and the reasons for its shape: sql/002_queue.sql.
 */
#ifndef ROSTERD_QUEUE_H
#define ROSTERD_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

struct rd_config;
struct rd_queue;

#define RD_QUEUE_LEASE_SECONDS 15    /* a claimed job's lease */
#define RD_QUEUE_HEARTBEAT_SECONDS 5 /* how often held leases are renewed */
#define RD_QUEUE_POLL_MS 1000        /* idle check for work other instances queued */
/*
 * Jobs claimed per worker at most (running plus waiting in the local FIFO). A
 * claim costs about the same for 1 job as for 16, so claiming ahead is what lets
 * short jobs drain faster than one claim round trip each; the waiting ones keep
 * their lease and go back unstarted on shutdown.
 */
#define RD_QUEUE_PREFETCH 8
#define RD_QUEUE_BACKOFF_CAP 21600.0 /* no retry waits longer than 6 h */

/*
 * Connects cfg->workers + 3 blocking connections (cfg->database_url) and starts
 * cfg->workers worker threads, the dispatcher and the scheduler. key is the secret
 * key for rd_connection_load (copied); instance_name names this process in leases
 * and attempt logs (copied; make it unique per process, e.g. "host:pid"). Returns
 * a new queue, free with rd_queue_stop; NULL with a message in err on failure.
 */
struct rd_queue *rd_queue_start(const struct rd_config *cfg, const uint8_t key[32],
                                const char *instance_name, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Tells the local dispatcher that new jobs may be due (the intake calls it after a
 * commit that stored new events). Thread-safe and cheap; NULL is ignored.
 */
void rd_queue_wake(struct rd_queue *q);

/*
 * Graceful stop: no new claims; every worker finishes its current job; claimed
 * jobs not yet started are handed back; threads are joined and q freed. Accepts NULL.
 */
void rd_queue_stop(struct rd_queue *q);

/* Indexes of rd_queue_count_states' counts, which are also rosterd_jobs{state}. */
enum {
    RD_JOBS_PENDING = 0,
    RD_JOBS_SCHEDULED,
    RD_JOBS_RUNNING,
    RD_JOBS_FAILED,
    RD_JOBS_DEAD,
    RD_JOBS_NSTATES
};

/* "pending", "scheduled", "running", "failed", "dead"; NULL out of range. Static. */
const char *rd_queue_state_name(int state);

/*
 * One cheap query over the hot table: pending = due now, scheduled = due later,
 * running, failed = waiting to retry, dead. Borrows db (blocking, idle).
 */
int rd_queue_count_states(PGconn *db, int64_t counts[RD_JOBS_NSTATES], char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Backoff after the attempt-th failed attempt (1-based): full jitter, uniform in
 * [0, rd_queue_backoff_cap(attempt, base)], u being a uniform draw in [0, 1).
 */
double rd_queue_backoff_cap(int attempt, int base_seconds);
double rd_queue_backoff(int attempt, int base_seconds, double u);

/* True for an upstream answer that makes retrying pointless: 4xx other than 408/409/425/429. */
bool rd_queue_http_permanent(long status);

/*
 * A delayed or one-off job for a handler to schedule (e.g. a deactivation at the end
 * of the last day: run_at = rd_local_day_end(...) in SQL). With unique_key the job is
 * created once and later calls move it (run_at, payload) unless it is running.
 */
struct rd_job_spec {
    const char *kind;         /* handler kind, required */
    const char *key;          /* per-key order; NULL: rd_queue_key(connection, "job", unique_key) */
    int64_t connection_id;    /* 0: none */
    const char *subject;      /* may be NULL */
    const char *run_at;       /* timestamptz text (ISO 8601); NULL: now */
    const char *unique_key;   /* may be NULL: always a new job */
    const char *payload_json; /* JSON text or NULL */
};

/* Creates or moves the job; *job_id is 0 when a running job kept its time. Borrows all. */
int rd_queue_schedule(PGconn *db, const struct rd_job_spec *spec, int64_t *job_id, char *err,
                      size_t errlen) __attribute__((warn_unused_result));

/* Deletes a not-running job by unique_key; *cancelled is 1 when one was removed. */
int rd_queue_cancel(PGconn *db, const char *unique_key, int *cancelled, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* The key event jobs use: "<connection_id>:<source>:<subject or *>". Returns a new string. */
char *rd_queue_key(int64_t connection_id, const char *source, const char *subject);

#endif
