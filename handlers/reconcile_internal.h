/*
 * Private to the reconciliation (handlers/reconcile*.c): the run's figures, the
 * preload, the lease and the convergence of one person, shared by the run
 * (reconcile.c), its preload (reconcile_preload.c) and the approval of held actions
 * (reconcile_approve.c).
 */
#ifndef ROSTERD_RECONCILE_INTERNAL_H
#define ROSTERD_RECONCILE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "prefetch_internal.h"
#include "writeback_internal.h"
#include "rosterd/http.h"
#include "rosterd/personio.h"
#include "rosterd/absence.h"
#include "rosterd/approver.h"
#include "rosterd/attendance.h"
#include "rosterd/reconcile.h"
#include "rosterd/sync.h"

struct json_object;

/* What a run read and did, stored in runs.stats. */
struct rd_reconcile_stats {
    size_t employees, time_offs, attendances, platform_users, groups, delegations, moco_users,
        presences, schedules;
    double preload_seconds, plan_seconds, apply_seconds;
    size_t errors;
    struct rd_prefetch_stats prefetch;   /* both passes' chunks */
    struct rd_writeback_stats writeback; /* the real pass's platform writes sent behind */
};

/*
 * Reads every list of the run into s (see reconcile_preload.c): identity links,
 * Personio employees, time-offs of [from, to] and attendances of [from, today],
 * platform users, groups and delegations, MOCO users, presences of [from, today]
 * and schedules of [from, to]. -1 with err naming the list that failed.
 */
int rd_reconcile_preload(struct rd_sync *s, const char *today, const char *from, const char *to,
                         struct rd_reconcile_stats *stats, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/* A second connection with the same parameters as db, named application_name; NULL with err. */
PGconn *rd_run_clone_conn(PGconn *db, const char *application_name, char *err, size_t errlen);

/* A run's lease on its runs row, renewed by a thread with a connection of its own. */
struct rd_run_lease {
    pthread_t thread;
    bool started;
    PGconn *db; /* the heartbeat's own connection */
    int64_t run_id;
    char owner[128];
    atomic_bool stop; /* tells the heartbeat to end */
    atomic_bool lost; /* the row is no longer ours: stop the run */
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

/*
 * Inserts a running run of kind ("reconcile" or "approval") for the connection and
 * starts its heartbeat. A lapsed run of the connection is marked failed first; a run
 * still running makes this return RD_RECONCILE_BUSY with out->message saying which;
 * a running run left by an earlier attempt of the same job (job_id) is failed at once
 * (the queue gave the job up, so its worker is gone). fields: JSON object text of
 * extra columns (dry_run, trigger, job_id, approves_run_id). Returns an enum
 * rd_reconcile_rc.
 */
int rd_run_begin(PGconn *db, int64_t connection_id, const char *kind,
                 const struct rd_reconcile_opts *o, int64_t approves_run_id,
                 struct rd_run_lease *lease, struct rd_reconcile_outcome *out);

/*
 * Ends the run: status, counts (from the context's findings), stats and the other
 * columns in fields (a JSON object, borrowed: employees, linked_users,
 * planned_deactivations, held_reason, error, warnings …). Fenced on the lease: -1
 * when the row is no longer ours. Stops the heartbeat either way.
 */
int rd_run_finish(PGconn *db, struct rd_run_lease *lease, const char *status,
                  struct json_object *counts, struct json_object *fields, char *err, size_t errlen);

/* Stops the heartbeat and closes its connection (idempotent). */
void rd_run_lease_stop(struct rd_run_lease *lease);

/* True when the run must stop: shutdown, deadline, or the lease was lost. */
bool rd_run_should_stop(const struct rd_sync *s, const struct rd_run_lease *lease);

/* Findings per kind of s as a new JSON object {kind: n}. */
struct json_object *rd_run_counts(const struct rd_sync *s);

/*
 * Converges one employee with every capability's function, as the handlers do:
 * identity, lifecycle and approver delegations (rd_person_converge), then, with
 * time_sync, attendances and absences with their MOCO user. A failure becomes an error
 * finding; returns -1 then (the caller goes on with the next person).
 */
int rd_run_converge_one(struct rd_sync *s, const struct rd_personio_employee *e, bool time_sync,
                        const char *today, const char *from, const char *to);

#endif
