/*
 * MOCO API client (upstream-apis §3): users, presences and schedules read by
 * following Link rel="next"; schedules created and deleted; every request
 * paced to the account's budget (120 per 120 s) in-process and, when a
 * database is given, across all rosterd instances.
 */
#ifndef ROSTERD_MOCO_H
#define ROSTERD_MOCO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "rosterd/audit.h"
#include "rosterd/http.h"

/* All strings owned by their list. */
struct rd_moco_user {
    int64_t id;
    char *email;
    char *firstname;
    char *lastname;
    bool active;
};

struct rd_moco_presence {
    int64_t id;
    char date[11]; /* YYYY-MM-DD */
    char from[6];  /* HH:MM */
    char to[6];    /* HH:MM or "" while open */
    int64_t user_id;
};

struct rd_moco_schedule {
    int64_t id;
    char date[11];
    bool am;
    bool pm;
    char *comment; /* owned in lists; borrowed when passed to create */
    int absence_code;
    int64_t user_id;
};

struct rd_moco_user_list {
    struct rd_moco_user *items;
    size_t count;
};
struct rd_moco_presence_list {
    struct rd_moco_presence *items;
    size_t count;
};
struct rd_moco_schedule_list {
    struct rd_moco_schedule *items;
    size_t count;
};

void rd_moco_user_list_free(struct rd_moco_user_list *l);
void rd_moco_presence_list_free(struct rd_moco_presence_list *l);
void rd_moco_schedule_list_free(struct rd_moco_schedule_list *l);

/*
 * A client for one MOCO account. base_url like "https://acme.mocoapp.com/api/v1".
 * Borrows http; copies strings. Not thread-safe (the pacer behind it is).
 * Free with rd_moco_free.
 */
struct rd_moco;
struct rd_moco *rd_moco_new(struct rd_http_client *http, const char *base_url, const char *api_key);
void rd_moco_free(struct rd_moco *m);

/*
 * Request budget: limit requests per window_s seconds (default 120/120, the
 * standard plan; the unlimited plan allows 1200). Applies to the in-process
 * pacer of this account (shared by every client with the same base_url and
 * key) and to the database budget.
 */
void rd_moco_set_rate(struct rd_moco *m, int limit, int window_s);

/*
 * Also take every request from the shared budget in upstream_starts (all
 * instances on one database). db is borrowed (the worker's blocking
 * connection, outside a transaction). NULL turns it off.
 */
void rd_moco_set_budget_db(struct rd_moco *m, PGconn *db);

/* Active users, or all when include_archived. Free out with rd_moco_user_list_free. */
int rd_moco_list_users(struct rd_moco *m, bool include_archived, double deadline,
                       struct rd_moco_user_list *out, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/*
 * Users with this e-mail (GET /users?email=, archived included; MOCO compares
 * case-insensitively). Free out with rd_moco_user_list_free.
 */
int rd_moco_find_users(struct rd_moco *m, const char *email, double deadline,
                       struct rd_moco_user_list *out, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/* GET /users/{id}: *found false on 404. out->items[0] is the user (free the list). */
int rd_moco_get_user(struct rd_moco *m, int64_t id, double deadline, bool *found,
                     struct rd_moco_user_list *out, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/* Presences of [from, to] (both required), of one user when user_id > 0. */
int rd_moco_list_presences(struct rd_moco *m, const char *from, const char *to, int64_t user_id,
                           double deadline, struct rd_moco_presence_list *out,
                           struct rd_http_error *err) __attribute__((warn_unused_result));

/*
 * Every presence changed after updated_after (ISO 8601 UTC, MOCO's global
 * updated_after filter), any day and any user. Deleted presences are not listed
 * (MOCO's delete webhooks and the nightly run cover those).
 */
int rd_moco_list_presences_changed(struct rd_moco *m, const char *updated_after, double deadline,
                                   struct rd_moco_presence_list *out, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/* GET /users/presences/{id}: *found false on 404 (out zeroed). */
int rd_moco_get_presence(struct rd_moco *m, int64_t id, double deadline, bool *found,
                         struct rd_moco_presence *out, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/* Schedules (absences) of [from, to], of one user when user_id > 0. */
int rd_moco_list_schedules(struct rd_moco *m, const char *from, const char *to, int64_t user_id,
                           double deadline, struct rd_moco_schedule_list *out,
                           struct rd_http_error *err) __attribute__((warn_unused_result));

/*
 * Creates one schedule (never with overwrite). *id_out gets its id. MOCO's 422
 * for an existing entry on that day comes back as a permanent error.
 */
int rd_moco_create_schedule(struct rd_moco *m, const struct rd_moco_schedule *s,
                            const struct rd_audit_ctx *audit, double deadline, int64_t *id_out,
                            struct rd_http_error *err) __attribute__((warn_unused_result));

/*
 * Changes absence_code, am, pm and comment of schedule s->id (PUT; the date and
 * user stay). A schedule that is gone gives -1 with *gone set (err permanent, 404).
 */
int rd_moco_update_schedule(struct rd_moco *m, const struct rd_moco_schedule *s,
                            const struct rd_audit_ctx *audit, double deadline, bool *gone,
                            struct rd_http_error *err) __attribute__((warn_unused_result));

/* Deletes a schedule; one already gone (404) counts as success with *gone set. */
int rd_moco_delete_schedule(struct rd_moco *m, int64_t id, const struct rd_audit_ctx *audit,
                            double deadline, bool *gone, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/* Drops every in-process pacer (tests). */
void rd_moco_pacer_clear(void);

#endif
