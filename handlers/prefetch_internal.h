/*
 * The reconciliation's per-chunk prefetch (handlers/prefetch.c): before a run
 * converges the next chunk of people (RD_PREFETCH_CHUNK), one statement per table
 * reads what each person's convergence would otherwise read with one statement of
 * its own — their deactivation jobs, their delegations as an approver, the
 * attendance links and conflicts and the schedule links of their MOCO users — and
 * one statement takes the chunk's time-sync locks (in key order) that each person
 * would take and release around their time sync. The readers (deactivation.c,
 * approver.c, attendance.c, absence.c, timesync.c) ask here first and query
 * themselves when the chunk does not cover what they need.
 *
 * What the chunk read is served once per key and only while it can be trusted: a
 * key's rows go when they are taken (a second read of the same person queries
 * again and sees the person's own writes), a write to a presence's attendance link
 * drops that presence and the links of the user who held it (a presence can move
 * between people), and a chunk held longer than
 * RD_PREFETCH_HOLD_SECONDS releases its locks and drops every row, so webhook jobs
 * of its people wait at most that long and nothing read more than that long ago is
 * acted on. Private to handlers/.
 */
#ifndef ROSTERD_PREFETCH_INTERNAL_H
#define ROSTERD_PREFETCH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "rosterd/http.h"
#include "rosterd/sync.h"

/* People per chunk: 40 statements cover 10,000 people per table. */
#define RD_PREFETCH_CHUNK 250
/* A chunk older than this lets go of its locks and rows (see above). */
#define RD_PREFETCH_HOLD_SECONDS 1.0

enum rd_prefetch_kind {
    /* key: Personio id; columns as deactivation.c's open_jobs_of, then subject */
    RD_PREFETCH_DEACTIVATION_JOBS = 0,
    /* key: the approver's Personio id; columns as approver.c's load_rows, then approver_id */
    RD_PREFETCH_DELEGATIONS,
    /* key: MOCO user id, window [from, to]; columns as absence.c's load_links, then the user */
    RD_PREFETCH_SCHEDULE_LINKS,
    /* rd_prefetch_attendance: as attendance.c's load_links */
    RD_PREFETCH_ATTENDANCE_LINKS,
    RD_PREFETCH_ATTENDANCE_CONFLICTS,
    RD_PREFETCH_KINDS
};

/* Rows of a chunk's result (borrowed; valid until the next rd_prefetch_* call that drops). */
struct rd_prefetch_rows {
    const PGresult *res;
    int *rows; /* row numbers into res, in the order the reader's own query would give */
    size_t n;
};

void rd_prefetch_rows_free(struct rd_prefetch_rows *r);

/* What the chunks of a pass saved, for the run's stats (runs.stats.prefetch). */
struct rd_prefetch_stats {
    size_t chunks;         /* chunks read */
    size_t served;         /* per-person reads answered from a chunk */
    size_t read_alone;     /* per-person reads a chunk did not cover (they queried) */
    size_t released_early; /* chunks held past RD_PREFETCH_HOLD_SECONDS */
};

/* What one chunk covers: its people, and for time sync their MOCO users and windows. */
struct rd_prefetch_chunk {
    const int64_t *personio_ids;
    size_t npeople;
    const int64_t *moco_user_ids; /* 0 for people without one */
    bool time_sync;               /* prefetch the time-sync links (and lock, unless dry) */
    const char *attendance_from, *attendance_to;
    const char *absence_from, *absence_to;
    struct rd_prefetch_stats *stats; /* counted into, may be NULL */
};

/*
 * Ends the previous chunk (rd_prefetch_end) and reads this one. A failure is only
 * logged: the readers then query as they would without a chunk.
 */
void rd_prefetch_begin(struct rd_sync *s, const struct rd_prefetch_chunk *chunk);

/* Releases the chunk's locks and frees its rows (idempotent). */
void rd_prefetch_end(struct rd_sync *s);

/* After each person: a chunk held longer than RD_PREFETCH_HOLD_SECONDS is ended. */
void rd_prefetch_tick(struct rd_sync *s);

/*
 * The chunk's rows of kind for key (from/to: the reader's window, NULL for kinds
 * without one). true with *out filled (free it with rd_prefetch_rows_free): these
 * are exactly the rows the reader's own query would return; false: not covered,
 * query yourself.
 */
bool rd_prefetch_take(struct rd_sync *s, enum rd_prefetch_kind kind, int64_t key, const char *from,
                      const char *to, struct rd_prefetch_rows *out);

/*
 * A reader's rows: the chunk's for kind and key when it covers them, else those of
 * its own query sql (params). -1 with dberr when that query fails. Row k of the
 * answer is rd_prefetch_row(r, k), of r->n; clear with rd_prefetch_result_clear.
 */
struct rd_prefetch_result {
    const PGresult *res;
    size_t n;
    PGresult *own;
    struct rd_prefetch_rows pf;
};

int rd_prefetch_or_exec(struct rd_sync *s, enum rd_prefetch_kind kind, int64_t key,
                        const char *from, const char *to, const char *sql, int nparams,
                        const char *const *params, struct rd_prefetch_result *r, char *dberr,
                        size_t dberrlen) __attribute__((warn_unused_result));

static inline int rd_prefetch_row(const struct rd_prefetch_result *r, size_t k)
{
    return r->own ? (int)k : r->pf.rows[k];
}

void rd_prefetch_result_clear(struct rd_prefetch_result *r);

/*
 * attendance.c's load_links for MOCO user uid over [from, to] with the presences
 * pres (links of the user in the window or of any of pres; conflicts of pres).
 */
bool rd_prefetch_attendance(struct rd_sync *s, int64_t uid, const char *from, const char *to,
                            const int64_t *pres, size_t npres, struct rd_prefetch_rows *links,
                            struct rd_prefetch_rows *conflicts);

/* Drops kind's rows: a write changed what they say. */
void rd_prefetch_drop(struct rd_sync *s, enum rd_prefetch_kind kind);

/*
 * A write to the attendance link or conflict of one presence: what the chunk read of
 * that presence, and the links of the user it was read under, are no longer served
 * (everything of the chunk's attendance when it had not read that presence).
 */
void rd_prefetch_presence_written(struct rd_sync *s, int64_t presence_id);

/* True when the chunk holds the advisory lock of key (timesync.c skips its own then). */
bool rd_prefetch_holds_lock(const struct rd_sync *s, const char *key);

#endif
