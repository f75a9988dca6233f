/*
 * The nightly reconciliation (DESIGN.md §1, §7): a run pulls everything a connection's
 * upstreams hold (all pages), runs the same convergence functions as the event
 * handlers for everyone, stores its findings under a run id and tells the admins.
 * A circuit breaker holds destructive actions when a run would deactivate too many
 * people or Personio suddenly returns far fewer employees; an operator releases them
 * with rd_reconcile_approve, which checks each held action against the truth again.
 *
 * Runs are rows of the runs table (sql/008): one running run per connection across
 * all instances (a unique index), kept alive by a lease that a heartbeat thread
 * renews; a run whose lease lapsed (kill -9) is marked failed by the next run or
 * report that looks.
 *
 * Threading: a run belongs to the calling thread, plus one heartbeat thread of its
 * own with its own database connection.
 */
#ifndef ROSTERD_RECONCILE_H
#define ROSTERD_RECONCILE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "rosterd/moco.h"
#include "rosterd/personio.h"
#include "rosterd/scim.h"
#include "rosterd/sync.h"

struct rd_connection;

#define RD_RECONCILE_LEASE_SECONDS 15    /* a run's lease (as a job's) */
#define RD_RECONCILE_HEARTBEAT_SECONDS 5 /* how often the lease is renewed */
#define RD_RECONCILE_MAX_SECONDS 3600.0  /* a run's upstream deadline */
#define RD_RECONCILE_DAYS_BACK 30        /* pull window: presences, schedules, time-offs */
#define RD_RECONCILE_DAYS_AHEAD 90
/* breaker: fewer employees than this % of the last good run */
#define RD_RECONCILE_SHRINK_PERCENT 80
/* breaker: deactivating more than this % of linked users */
#define RD_RECONCILE_LINKED_PERCENT 10
#define RD_RECONCILE_MAX_DEACTIVATIONS 5 /* breaker: policy.max_deactivations_per_run default */
#define RD_RECONCILE_STALE_HOURS 24      /* policy.stale_webhook_hours default */

struct rd_reconcile_opts {
    bool dry_run;                /* findings and planned actions, no upstream write */
    const char *trigger;         /* "schedule" (a job) or "operator" (rosterctl) */
    int64_t job_id;              /* the job running it, 0: none */
    const char *owner;           /* names this process in the lease, e.g. "host:1234" */
    struct rd_sync_opts sync;    /* ca_file, smtp_* (borrowed) */
    const atomic_bool *stopping; /* shutdown requested (may be NULL) */
    double max_seconds;          /* 0: RD_RECONCILE_MAX_SECONDS */
};

enum rd_reconcile_rc {
    RD_RECONCILE_OK = 0,      /* the run ended done or held (outcome.status says which) */
    RD_RECONCILE_FAILED = -1, /* the run (or starting it) failed: outcome.message */
    RD_RECONCILE_BUSY = -2,   /* another run of the connection is running: try later */
};

struct rd_reconcile_outcome {
    int64_t run_id;    /* 0 when no run was started */
    char status[8];    /* "done", "held" or "failed" */
    bool permanent;    /* failed for a reason no retry can fix (bad credentials …) */
    int retry_after;   /* BUSY: seconds until trying again makes sense */
    char message[512]; /* why it failed or is busy; no secrets */
};

/*
 * Runs one reconciliation of conn now, in this thread. db is borrowed (blocking,
 * idle); conn borrowed. Returns an enum rd_reconcile_rc; out is always filled.
 */
int rd_reconcile_run(PGconn *db, const struct rd_connection *conn,
                     const struct rd_reconcile_opts *o, struct rd_reconcile_outcome *out);

/*
 * Releases what run run_id's circuit breaker held: every person with a
 * deactivation_held finding is read again from Personio and converged without the
 * hold, so exactly the deactivations still due happen (protected users never).
 * Recorded as a run of kind "approval" (its own findings); the held run becomes
 * done with approved_by = who. conn must be the run's connection
 * (rd_reconcile_run_connection). Returns an enum rd_reconcile_rc.
 */
int rd_reconcile_approve(PGconn *db, const struct rd_connection *conn, int64_t run_id,
                         const char *who, const struct rd_reconcile_opts *o,
                         struct rd_reconcile_outcome *out);

/* The connection name of run run_id into name; 0, or -1 with err (unknown run …). */
int rd_reconcile_run_connection(PGconn *db, int64_t run_id, char *name, size_t namelen, char *err,
                                size_t errlen) __attribute__((warn_unused_result));

/*
 * Marks running runs whose lease lapsed as failed (of one connection, or all when
 * connection_id is 0). Returns how many, or -1 with err.
 */
int rd_reconcile_reap(PGconn *db, int64_t connection_id, char *err, size_t errlen);

/*
 * The circuit breaker's decision: NULL when a run may go ahead, else why it must hold
 * its deactivations (a new string, free()). planned: deactivations the counting pass
 * planned; max_per_run: policy.max_deactivations_per_run; linked: people with a
 * platform link; employees: what Personio returned now; baseline: what the last good
 * run (baseline_run) saw, -1 when there is none.
 */
char *rd_reconcile_breaker(size_t planned, int max_per_run, size_t linked, size_t employees,
                           int64_t baseline, int64_t baseline_run);

/* "personio" or "moco": the webhook stream that should have brought a change of this
 * finding kind (staleness check), NULL for kinds no webhook brings (linked, conflict …). */
const char *rd_reconcile_webhook_source(const char *kind);

/* ---- what a run preloads, for the capabilities' accessors ---- */
/*
 * A run reads each upstream in full once, before converging anyone; the lists below
 * are kept in the run's context (s->ext[RD_SYNC_EXT_RUN]) sorted by person, so the
 * capabilities' own accessors (groups and delegations for the lifecycle; presences,
 * schedules and attendances for time sync) can answer from them instead of reading
 * per person. Each returns false when s holds no run preload (an event handler's
 * context): read upstream then. Items are borrowed until rd_sync_close.
 */

/* The window the run pulled: [from, to] = today - 30 .. today + 90 (local dates). */
bool rd_reconcile_window(const struct rd_sync *s, const char **today, const char **from,
                         const char **to);
/* Every platform group with its members; NULL outside a run or without a platform. */
const struct rd_scim_group_list *rd_reconcile_groups(const struct rd_sync *s);
/* Every approval delegation; NULL outside a run or without the platform API. */
const struct rd_delegation_list *rd_reconcile_delegations(const struct rd_sync *s);

#endif
