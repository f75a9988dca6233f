/*
 * The stored event log as operators see it (DESIGN.md §7): filters, listing,
 * counting and one event with its attempt log, as json-c values. Shared by
 * rosterctl, the replay module and the admin API. Functions borrow a blocking,
 * idle PGconn.
 */
#ifndef ROSTERD_EVENTS_H
#define ROSTERD_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

struct json_object;

/* A timestamptz column rendered as ISO 8601 UTC with a Z, for SELECT lists. */
#define RD_SQL_ISO(col) "to_char((" col ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/*
 * An event's status as operators see it, for an events row aliased e. The stored
 * status is only written when an attempt ends (pending, done, failed, dead): an
 * event is "running" while a job it is linked to runs, which the claim does not
 * write into every event row (sql/004_lean_queue.sql).
 */
#define RD_SQL_EVENT_STATUS                                                                        \
    "(CASE WHEN e.status IN ('pending', 'failed') AND EXISTS (SELECT 1 FROM job_events rje"        \
    " JOIN jobs rj ON rj.id = rje.job_id WHERE rje.event_id = e.id AND rj.state = 'running')"      \
    " THEN 'running' ELSE e.status END)"

#define RD_EVENTS_LIMIT_DEFAULT 50
#define RD_EVENTS_LIMIT_MAX 10000

/*
 * --since values: a duration back from now (90s, 30m, 24h, 7d, 2w) into secs
 * (decimal seconds), or an ISO 8601 date or time (offset optional, UTC when
 * absent) copied into iso. The unused one is set to "". false when malformed.
 */
bool rd_events_parse_since(const char *s, char iso[64], char secs[24]);

struct rd_events_filter {
    const char *connection; /* borrowed; NULL = any */
    const char *source;
    const char *status;
    char since_iso[64];
    char since_secs[24];
};

/*
 * Checks and fills a filter from option values (each may be NULL). Returns
 * NULL, or a message naming the option, e.g.
 * "--status: expected one of pending, running, done, failed, dead".
 */
const char *rd_events_filter_set(struct rd_events_filter *f, const char *connection,
                                 const char *source, const char *status, const char *since);

/* 1 when the named connection exists, 0 when not, -1 on a database error. */
int rd_events_connection_exists(PGconn *db, const char *name, char *err, size_t errlen);

/*
 * Newest first, at most limit: an array of {id, connection, source, event_type,
 * status, attempts, received_at, last_error}. *out is new (json_object_put).
 */
int rd_events_list(PGconn *db, const struct rd_events_filter *f, int64_t limit,
                   struct json_object **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

int rd_events_count(PGconn *db, const struct rd_events_filter *f, int64_t *count, char *err,
                    size_t errlen) __attribute__((warn_unused_result));

/*
 * One event: the list fields plus subject, auth, note, updated_at, headers
 * (secret ones masked again), body (parsed JSON, or the text when it is not
 * JSON) and attempt_log [{attempt, started_at, finished_at, outcome, error}].
 * *out is NULL when there is no such event.
 */
int rd_events_get(PGconn *db, int64_t id, struct json_object **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
