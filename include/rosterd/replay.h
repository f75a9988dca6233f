/*
 * Operator replay and the job listing (DESIGN.md §7), shared by rosterctl and the
 * admin listener's /admin/ routes routes. Every function borrows a blocking, idle PGconn
 * and returns a new json-c object in *result (free with json_object_put).
 */
#ifndef ROSTERD_REPLAY_H
#define ROSTERD_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

struct json_object;

/* Return codes besides 0: -1 = database failure, RD_REPLAY_EINVAL = bad filter value. */
#define RD_REPLAY_EINVAL (-2)

struct rd_replay_filter {
    const char *status;     /* "dead" or "failed"; required */
    const char *connection; /* connection name or NULL */
    const char *since;      /* "90s", "30m", "24h", "7d" or an ISO 8601 time; NULL = any */
};

/*
 * Replays events by id: each failed, dead or done event gets a new job (pending
 * now); its attempt log is kept and gains a "replayed" row. Pending and running
 * events are skipped, unknown ids reported as missing. With dry_run nothing changes.
 * Result: {"dry_run": bool, "count": N, "events": [id, ...],
 *          "skipped": [{"id": id, "status": "pending"|"running"|"missing"}, ...]}
 */
int rd_replay_ids(PGconn *db, const int64_t *ids, size_t n, bool dry_run,
                  struct json_object **result, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Replays every event matching the filter (status dead or failed); same result
 * shape with "skipped" empty. An unknown connection is RD_REPLAY_EINVAL.
 */
int rd_replay_filtered(PGconn *db, const struct rd_replay_filter *f, bool dry_run,
                       struct json_object **result, char *err, size_t errlen)
    __attribute__((warn_unused_result));

struct rd_jobs_filter {
    const char *kind;       /* NULL = any */
    const char *state;      /* pending|scheduled|running|failed|dead|done; NULL = all open */
    const char *connection; /* name or NULL */
    int64_t limit;          /* <= 0: 1000 */
};

/*
 * Lists jobs, open ones from the hot table in run_at order ("done": the newest
 * finished ones from the history). Result: an array of
 * {"id", "kind", "key", "state", "run_at" (ISO 8601 UTC), "attempts", "last_error",
 *  "connection", "note"}.
 */
int rd_jobs_list(PGconn *db, const struct rd_jobs_filter *f, struct json_object **result, char *err,
                 size_t errlen) __attribute__((warn_unused_result));

#endif
