/*
 * What the two time-sync capabilities share (handlers/timesync.c): cached reads of
 * MOCO presences and schedules and Personio attendances, day arithmetic, finding
 * the person behind a MOCO user, and the sweeps' watermarks.
 *
 * The reads hang on s->ext[RD_SYNC_EXT_TIME]. A handler reads one person's window on
 * first use; a sweep or the nightly run calls rd_timesync_preload once for everyone
 * and every later per-person read inside that window is answered from memory, with
 * no upstream request. A write through the clients must be followed by
 * rd_timesync_*_written for that person, so a second read in the same context sees
 * the upstream again instead of the copy from before the write.
 *
 * Threading: like the struct rd_sync it lives in, one thread.
 */
#ifndef ROSTERD_TIMESYNC_H
#define ROSTERD_TIMESYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rosterd/http.h"
#include "rosterd/moco.h"
#include "rosterd/personio.h"
#include "rosterd/sync.h"

/* ---- cached reads ---- */

/*
 * Presences of MOCO user moco_user_id (> 0) on the days [from, to] (YYYY-MM-DD),
 * sorted by date and start. *view borrows the cache (do not free it); it stays
 * valid until rd_sync_close.
 */
int rd_timesync_presences(struct rd_sync *s, int64_t moco_user_id, const char *from, const char *to,
                          struct rd_moco_presence_list *view, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/* Schedules (absences) of MOCO user moco_user_id on [from, to], by date; as above. */
int rd_timesync_schedules(struct rd_sync *s, int64_t moco_user_id, const char *from, const char *to,
                          struct rd_moco_schedule_list *view, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/* Personio attendances (pending ones included) of employee_id on [from, to]; as above. */
int rd_timesync_attendances(struct rd_sync *s, int64_t employee_id, const char *from,
                            const char *to, struct rd_personio_attendance_list *view,
                            struct rd_http_error *err) __attribute__((warn_unused_result));

/* After writing that person's attendances or schedules: their next read goes upstream. */
void rd_timesync_attendances_written(struct rd_sync *s, int64_t employee_id);
void rd_timesync_schedules_written(struct rd_sync *s, int64_t moco_user_id);

enum {
    RD_TIMESYNC_PRESENCES = 1,
    RD_TIMESYNC_SCHEDULES = 2,
    RD_TIMESYNC_ATTENDANCES = 4,
    RD_TIMESYNC_ALL = 7,
};

/*
 * Reads everyone's records of the kinds in what (RD_TIMESYNC_*) for [from, to]
 * once, in pages (the nightly run: 30 days back, 90 ahead). Later reads inside the
 * window make no upstream request. -1 with err when a read fails.
 */
int rd_timesync_preload(struct rd_sync *s, unsigned what, const char *from, const char *to,
                        struct rd_http_error *err) __attribute__((warn_unused_result));

/* How many records the last rd_timesync_preload of the one kind in what holds. */
size_t rd_timesync_preloaded(struct rd_sync *s, unsigned what);

/*
 * True when reading everyone's records of [from, to] in pages of page_size costs
 * fewer requests than one read for each of people: population people with about
 * per_person_day records a day each. The sweeps use it to choose.
 */
bool rd_timesync_preload_pays(size_t people, size_t population, const char *from, const char *to,
                              double per_person_day, int page_size);

/*
 * Takes (lock) or releases the lock of one person's time sync ("attendance" or
 * "absence", and their MOCO user id) for all instances: a webhook job, a sweep and the
 * nightly run never write one person's records at the same time (they would both
 * create). A session-level advisory lock. Jobs hold one at a time; the nightly run's
 * chunk holds those of its people, taken in key order in one statement
 * (handlers/prefetch_internal.h), and this does nothing for them then.
 */
int rd_timesync_lock(struct rd_sync *s, const char *what, int64_t id, bool lock,
                     struct rd_http_error *err) __attribute__((warn_unused_result));

/* The key of that lock, "timesync:<what>:<connection id>:<MOCO user id>" (free it). */
char *rd_timesync_lock_key(const struct rd_sync *s, const char *what, int64_t id);

/* ---- days (YYYY-MM-DD, proleptic Gregorian, no time zones) ---- */

bool rd_day_valid(const char *d);
/* d plus days into out (11 bytes). d must be valid. */
void rd_day_add(const char *d, int days, char out[11]);
/* 0 Monday … 6 Sunday; -1 when d is not a date. */
int rd_day_weekday(const char *d);
/* Days from a to b (b - a). */
long rd_day_diff(const char *a, const char *b);

/* Today in the connection's time zone (computed once per context, by Postgres). */
int rd_timesync_today(struct rd_sync *s, char out[11], struct rd_http_error *err)
    __attribute__((warn_unused_result));

/* ---- people ---- */

/*
 * Sweeps resolve many people at once: from now on in this context, the person
 * behind a MOCO user is found in the full employee and MOCO user lists (read once)
 * instead of by one Personio lookup each.
 */
void rd_timesync_bulk(struct rd_sync *s);

/*
 * The Personio employee behind MOCO user moco_user_id: the pinned link, else by
 * e-mail (and then pinned). *e is borrowed from the context's cache, NULL when there
 * is none (or Personio no longer knows them).
 */
int rd_timesync_employee_for_moco(struct rd_sync *s, int64_t moco_user_id,
                                  const struct rd_personio_employee **e, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/*
 * Remembers e in the people mirror and links its MOCO user (identity.h);
 * *moco_user_id is 0 when it has none (or on a conflict, which is a finding).
 */
int rd_timesync_moco_for_employee(struct rd_sync *s, const struct rd_personio_employee *e,
                                  int64_t *moco_user_id, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/* ---- people to converge ---- */

/* One person's days: id is a MOCO user (attendance) or a Personio employee (absence). */
struct rd_timesync_want {
    int64_t id;
    char from[11], to[11];
    int64_t hint; /* e.g. the presence a webhook named, 0: none */
};

struct rd_timesync_wants {
    struct rd_timesync_want *items;
    size_t count;
};

/*
 * Adds the days [from, to] of person id (widening their window when present); a
 * non-zero hint replaces theirs. Ignored when id <= 0 or a day is not a date.
 */
void rd_timesync_want(struct rd_timesync_wants *w, int64_t id, const char *from, const char *to,
                      int64_t hint);
void rd_timesync_wants_free(struct rd_timesync_wants *w);
/* The window covering every want, clipped to start_date; false when none is left. */
bool rd_timesync_span(const struct rd_sync *s, const struct rd_timesync_wants *w, char from[11],
                      char to[11]);
/* Clips x to start_date; false when none of its days is left. */
bool rd_timesync_clip(const struct rd_sync *s, struct rd_timesync_want *x);

typedef int (*rd_timesync_person_fn)(struct rd_sync *s, struct rd_timesync_want *x, void *arg,
                                     struct rd_http_error *err);

/*
 * Calls fn for every want. A permanent failure is that person's (its finding is
 * recorded): the others go on and the first such error is returned at the end, with
 * *failed counting them. A transient one, shutdown or the deadline stop at once.
 */
int rd_timesync_each(struct rd_sync *s, struct rd_timesync_wants *w, rd_timesync_person_fn fn,
                     void *arg, size_t *failed, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/* Findings of kind in s. */
size_t rd_timesync_count(const struct rd_sync *s, const char *kind);
/* A positive decimal id, else 0. */
int64_t rd_timesync_id(const char *text);

/* ---- sweep watermarks (timesync_sweeps) ---- */

/*
 * column is "presences_after" (a timestamptz, given back as ISO 8601 UTC) or
 * "time_offs_from" (a date). out is "" when no sweep has finished yet.
 */
int rd_timesync_watermark(struct rd_sync *s, const char *column, char *out, size_t outlen,
                          struct rd_http_error *err) __attribute__((warn_unused_result));
/* Stores value (same forms) as the next sweep's start. Nothing in a dry run. */
int rd_timesync_set_watermark(struct rd_sync *s, const char *column, const char *value,
                              struct rd_http_error *err) __attribute__((warn_unused_result));

/*
 * A job's note: its findings (rd_sync_note), and quiet (why nothing changed) when no
 * finding from index `from` on is of a time-sync kind. quiet may be NULL or "".
 */
void rd_timesync_note(const struct rd_sync *s, size_t from, const char *quiet, char *out,
                      size_t outlen);

/* "4 days" / "1 day" style helper for notes and findings. */
const char *rd_timesync_plural(long n, const char *one, const char *many);

#endif
