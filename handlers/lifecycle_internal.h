/*
 * What the people-lifecycle steps (onboarding.c, movers.c, deactivation.c,
 * approver.c, called from person.c) share and nobody else needs: a per-context
 * cache hung in s->ext[RD_SYNC_EXT_PEOPLE], the connection's local date, the
 * platform groups of team_map, "whose account is this person's", "who approves",
 * and small text helpers for alerts. Private to handlers/.
 */
#ifndef ROSTERD_LIFECYCLE_INTERNAL_H
#define ROSTERD_LIFECYCLE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rosterd/http.h"
#include "rosterd/mem.h"
#include "rosterd/personio.h"
#include "rosterd/scim.h"
#include "rosterd/sync.h"

struct json_object;

/* One team_map target looked up on the platform (found false: no such group). */
struct rd_lc_group {
    char *name;
    bool found;
    struct rd_scim_group g;
};

/* The lifecycle's cache for one context; owned by s->ext[RD_SYNC_EXT_PEOPLE]. */
struct rd_lc {
    char today[11];              /* the connection's local date, "" until asked */
    struct rd_lc_group **groups; /* slots never move: their groups are handed out */
    size_t ngroups;
    bool have_approvers; /* approvers below is filled */
    int64_t *approvers;  /* Personio ids that supervise someone not inactive, sorted */
    size_t napprovers;
    bool mirror_complete; /* the people mirror held everyone once (people_mirror) */
    struct rd_buf note;   /* what the steps did that no finding kind names */
    int64_t *created;     /* people named by a person/employment.created event of the job */
    size_t ncreated;
    double early_wait; /* > 0: a deactivation job ran this many seconds early */
};

/* The context's lifecycle cache, created on first use (freed by rd_sync_close). */
struct rd_lc *rd_lc_of(struct rd_sync *s);

/* The connection's local date "YYYY-MM-DD" (SQL, once per context). NULL with err. */
const char *rd_lc_today(struct rd_sync *s, struct rd_http_error *err);

/* date plus days (may be negative), in SQL like every date here, into out. -1 with err. */
int rd_lc_date_add(struct rd_sync *s, const char *date, int days, char out[11],
                   struct rd_http_error *err) __attribute__((warn_unused_result));

/* Whole days from a to b (YYYY-MM-DD each; b - a); 0 when either is malformed. */
int rd_lc_days_between(const char *a, const char *b);

/* Appends "; "-separated text to the job's note (rd_lc_take_note reads it). */
void rd_lc_note(struct rd_sync *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The job's note as an operator reads it in `events show`: what changed or needs a
 * person first (findings other than linked), then the lifecycle's own notes, then
 * the links made, one entry per person ("linked a@x (platform, MOCO)"). Truncated
 * to outlen with "...".
 */
void rd_lc_compose_note(const struct rd_sync *s, char *out, size_t outlen);

/* Marks personio_id as named by a *.created event of this job (onboarding reads it). */
void rd_lc_mark_created(struct rd_sync *s, int64_t personio_id);
bool rd_lc_was_created(struct rd_sync *s, int64_t personio_id);

/* "First Last", or the e-mail, or "Personio employee N", into out. */
void rd_lc_name(const struct rd_personio_employee *e, char *out, size_t outlen);

/*
 * The platform group named name (a team_map target), looked up once per context.
 * *g is borrowed from the cache (NULL when the platform has no such group) and
 * may be updated in place by rd_lc_group_changed.
 */
int rd_lc_group(struct rd_sync *s, const char *name, struct rd_scim_group **g,
                struct rd_http_error *err) __attribute__((warn_unused_result));

/* Records in the cached group that user_id was added (true) or removed. */
void rd_lc_group_changed(struct rd_scim_group *g, const char *user_id, bool added);

/* True when g lists user_id as a member. */
bool rd_lc_group_has(const struct rd_scim_group *g, const char *user_id);

/*
 * The platform account of the employee personio_id (a supervisor, a delegate): the
 * pinned link, else Personio is read and the employee linked as identity.c does.
 * *found false when they have none (or on a conflict). *emp, when not NULL, gets
 * the employee (borrowed from the context's cache; NULL when Personio does not
 * know them). Clear out with rd_scim_user_clear.
 */
int rd_lc_account_of(struct rd_sync *s, int64_t personio_id, struct rd_scim_user *out, bool *found,
                     const struct rd_personio_employee **emp, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/*
 * Is personio_id an approver, the HR supervisor of at least one employee who is not
 * inactive? Answered from the people mirror; a mirror that never held everyone is
 * filled from Personio first (once per connection; in a dry run only read).
 */
int rd_lc_is_approver(struct rd_sync *s, int64_t personio_id, bool *yes, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/*
 * An audit context for one write with the state read before it (before is borrowed
 * and must outlive the write). NULL in a dry run, like rd_sync_audit.
 */
const struct rd_audit_ctx *rd_lc_audit(struct rd_sync *s, struct rd_audit_ctx *buf,
                                       struct json_object *before);

/* Text of an int64 into buf (returns buf). */
const char *rd_lc_id(char *buf, size_t n, int64_t v);

/* A database failure as a transient upstream-style error: "what: message". */
int rd_lc_db_fail(struct rd_http_error *err, const char *what, const char *dberr);

#endif
