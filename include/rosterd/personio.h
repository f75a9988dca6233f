/*
 * Personio API v1 client (upstream-apis §1): bearer token from /v1/auth shared
 * by all workers of the process, employees, time-offs and attendances. Parsed
 * records unwrap Personio's {label, value, …} attributes.
 */
#ifndef ROSTERD_PERSONIO_H
#define ROSTERD_PERSONIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "rosterd/audit.h"
#include "rosterd/http.h"

struct json_object;

/* Dates are "YYYY-MM-DD" (the local date Personio shows) or NULL; every string is owned. */
struct rd_personio_employee {
    int64_t id;
    char *email;
    char *first_name;
    char *last_name;
    char *status; /* onboarding, active, leave, inactive */
    char *hire_date;
    char *termination_date;
    char *last_working_day;
    int64_t supervisor_id; /* 0: none */
    int64_t team_id;
    char *team; /* team name or NULL */
    int64_t department_id;
    char *department;
    char **cost_centers; /* names */
    size_t ncost_centers;
    /* working days from work_schedule: bit 0 Monday … bit 6 Sunday; 0 when Personio
     * gives no readable schedule (callers then assume Monday to Friday) */
    unsigned work_days;
};

struct rd_personio_employee_list {
    struct rd_personio_employee *items;
    size_t count;
};

struct rd_personio_time_off {
    int64_t id;
    char *id_v2; /* NULL when absent */
    int64_t employee_id;
    char *status; /* approved, pending, rejected, … */
    char *start_date;
    char *end_date;
    bool half_day_start;
    bool half_day_end;
    int64_t type_id;
    char *type_name;
};

struct rd_personio_time_off_list {
    struct rd_personio_time_off *items;
    size_t count;
};

struct rd_personio_attendance {
    int64_t id; /* 0 for a new one */
    int64_t employee_id;
    char date[11];      /* YYYY-MM-DD */
    char start_time[6]; /* hh:mm */
    char end_time[6];   /* hh:mm or "" (open) */
    int break_minutes;
    char *comment; /* owned by the list; borrowed when passed in */
    char *status;
};

struct rd_personio_attendance_list {
    struct rd_personio_attendance *items;
    size_t count;
};

void rd_personio_employee_clear(struct rd_personio_employee *e);
void rd_personio_employee_list_free(struct rd_personio_employee_list *l);
void rd_personio_time_off_clear(struct rd_personio_time_off *t);
void rd_personio_time_off_list_free(struct rd_personio_time_off_list *l);
void rd_personio_attendance_list_free(struct rd_personio_attendance_list *l);

/*
 * A client for one Personio account. Borrows http (one per thread); copies
 * the strings. base_url is e.g. "https://api.personio.de" (no /v1). Not
 * thread-safe; the token cache behind it is. Free with rd_personio_free.
 */
struct rd_personio;
struct rd_personio *rd_personio_new(struct rd_http_client *http, const char *base_url,
                                    const char *client_id, const char *client_secret);
void rd_personio_free(struct rd_personio *p);
/* Page size of time-off reads (default 200, Personio's default; 1..200). */
void rd_personio_set_time_off_page_size(struct rd_personio *p, int limit);

/*
 * Also take every request from the budgets shared by all instances in
 * upstream_starts (employees: 300 per minute, bursts of 15 per second; all of
 * v1: 2000 per minute). db is borrowed (the worker's blocking connection,
 * outside a transaction). NULL: paced in this process only (the default).
 */
void rd_personio_set_budget_db(struct rd_personio *p, PGconn *db);

/* Drops every cached token of the process (tests, shutdown); tokens are zeroed. */
void rd_personio_token_cache_clear(void);
/* Number of successful POST /v1/auth calls by this process (tests). */
unsigned long rd_personio_auth_count(void);

/*
 * All employees (limit 100, offset paging), or those with email when email is
 * not NULL. out is filled on success (free with rd_personio_employee_list_free).
 */
int rd_personio_list_employees(struct rd_personio *p, const char *email, double deadline,
                               struct rd_personio_employee_list *out, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/* One employee; 404 gives -1 with err->http_status 404 (permanent). Clear out with _clear. */
int rd_personio_get_employee(struct rd_personio *p, int64_t id, double deadline,
                             struct rd_personio_employee *out, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/*
 * Time-offs overlapping [start_date, end_date] (either may be NULL), of one
 * employee when employee_id > 0. Pages by page number from 1 and drops
 * duplicate ids. Free out with rd_personio_time_off_list_free.
 */
int rd_personio_list_time_offs(struct rd_personio *p, const char *start_date, const char *end_date,
                               int64_t employee_id, double deadline,
                               struct rd_personio_time_off_list *out, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/*
 * Time-offs updated on or after updated_from (YYYY-MM-DD), any dates, everyone.
 * Deleted time-offs are not listed. Free out with rd_personio_time_off_list_free.
 */
int rd_personio_list_time_offs_since(struct rd_personio *p, const char *updated_from,
                                     double deadline, struct rd_personio_time_off_list *out,
                                     struct rd_http_error *err) __attribute__((warn_unused_result));

/* Attendances of [start_date, end_date] (required), of one employee when employee_id > 0. */
int rd_personio_list_attendances(struct rd_personio *p, const char *start_date,
                                 const char *end_date, int64_t employee_id, double deadline,
                                 struct rd_personio_attendance_list *out, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/*
 * Creates one attendance (one per request: multi-row atomicity is unknown).
 * *id_out gets the new id. When Personio refuses it as overlapping an existing
 * period, returns -1 with *overlap = true (err permanent, http_status 400).
 * Records the write in the audit trail when audit is given.
 */
int rd_personio_create_attendance(struct rd_personio *p, const struct rd_personio_attendance *a,
                                  bool skip_approval, const struct rd_audit_ctx *audit,
                                  double deadline, int64_t *id_out, bool *overlap,
                                  struct rd_http_error *err) __attribute__((warn_unused_result));

/* Updates date, times, break and comment of attendance a->id (employee cannot change). */
int rd_personio_update_attendance(struct rd_personio *p, const struct rd_personio_attendance *a,
                                  bool skip_approval, const struct rd_audit_ctx *audit,
                                  double deadline, bool *overlap, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/* Deletes an attendance; one that is already gone (404) counts as success (*gone set). */
int rd_personio_delete_attendance(struct rd_personio *p, int64_t id, bool skip_approval,
                                  const struct rd_audit_ctx *audit, double deadline, bool *gone,
                                  struct rd_http_error *err) __attribute__((warn_unused_result));

/* ---- parsing, exposed for unit tests ---- */

/* One {"type":"Employee","attributes":{…}} item; borrows item. -1 when it has no id. */
int rd_personio_parse_employee(struct json_object *item, struct rd_personio_employee *out)
    __attribute__((warn_unused_result));
/* One TimeOffPeriod item. -1 when it has no id. */
int rd_personio_parse_time_off(struct json_object *item, struct rd_personio_time_off *out)
    __attribute__((warn_unused_result));
/*
 * Appends the items of a time-offs page body to out, skipping ids already in
 * it; *total_pages gets metadata.total_pages (0 when absent). -1 on bad JSON.
 */
int rd_personio_parse_time_off_page(const char *body, size_t len,
                                    struct rd_personio_time_off_list *out, int *total_pages)
    __attribute__((warn_unused_result));
/* True when an error body is the "overlapping attendances" refusal. */
bool rd_personio_is_overlap_error(const char *body, size_t len);
/* error.message (+ first failing detailed_message row) of an error body into out. */
void rd_personio_error_message(const char *body, size_t len, char *out, size_t outlen);

#endif
