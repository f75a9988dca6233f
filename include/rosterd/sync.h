/*
 * The convergence context shared by every handler and the nightly reconciliation
 * (DESIGN.md §1, "level-triggered handlers"): one connection, its upstream clients,
 * the reason writes are audited under, a dry-run switch, the connection's policy,
 * findings in DESIGN.md §7's kinds, and alerts to the admins.
 *
 * A capability's convergence function takes a struct rd_sync and one subject (a
 * person, a day) and makes the targets match the truth; the event handler opens the
 * context from its job, the reconciliation from its run, and both call the same
 * function. Reads go through the rd_sync_* accessors below, which answer from what
 * the context already holds (a run preloads everything; a handler reads narrowly on
 * first use and keeps the answer for the rest of the job).
 *
 * Threading: a context belongs to one thread (the worker running the job, or the
 * run). Nothing in it is shared with other instances: all durable state is in
 * Postgres.
 */
#ifndef ROSTERD_SYNC_H
#define ROSTERD_SYNC_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "rosterd/audit.h"
#include "rosterd/http.h"
#include "rosterd/moco.h"
#include "rosterd/personio.h"
#include "rosterd/scim.h"

struct json_object;
struct rd_connection;
struct rd_job_ctx;

/* What a context needs of rosterd.conf; all borrowed, any may be NULL. */
struct rd_sync_opts {
    const char *ca_file;
    const char *smtp_url;
    const char *smtp_from;
};

/* One finding (DESIGN.md §7); strings owned by the context. */
struct rd_finding {
    const char *kind; /* one of DESIGN.md §7's kinds (static string) */
    char *email;      /* may be NULL */
    char *detail;     /* plain language, for the report */
    char *action;     /* what rosterd did or would do, NULL: nothing to do */
    char *result;     /* see RD_RESULT_* */
};

/* Conventional finding results. */
#define RD_RESULT_DONE "done"       /* the action was carried out */
#define RD_RESULT_PLANNED "planned" /* dry run: the action would be carried out */
#define RD_RESULT_HELD "held"       /* circuit breaker: waits for an operator */
#define RD_RESULT_SKIPPED "skipped" /* policy or protection kept rosterd from acting */
#define RD_RESULT_FAILED "failed"   /* the action was tried and failed */
#define RD_RESULT_NONE "none"       /* reported only: a person has to act */

struct rd_sync {
    PGconn *db;                       /* borrowed: blocking, outside a transaction between calls */
    const struct rd_connection *conn; /* borrowed */
    int64_t connection_id;
    const char *connection_name;
    struct rd_sync_opts opts;
    char reason[48];             /* "event:123", "job:45", "run:7": audit and alerts */
    int64_t event_id;            /* first event of the job, 0 for runs */
    int64_t job_id;              /* 0 for runs */
    int64_t run_id;              /* reconciliation run, 0 for handlers */
    bool dry_run;                /* no upstream write, no alert; findings say "planned" */
    bool hold_destructive;       /* circuit breaker tripped: deactivations are held */
    double deadline;             /* rd_http_now() based; every upstream call honours it */
    const atomic_bool *stopping; /* shutdown requested (may be NULL) */

    struct rd_http_client *http;  /* owned */
    struct rd_personio *personio; /* owned, created on first use */
    struct rd_moco *moco;
    struct rd_scim *scim;
    struct rd_audit_ctx audit; /* reason = this->reason; db NULL in dry runs */

    /* findings of this context, in order; flushed to the findings table */
    struct rd_finding *findings;
    size_t nfindings, cap_findings, nflushed;

    /* what was read (see the accessors); owned */
    struct rd_sync_cache *cache;
    /*
     * Caches of the capabilities' own reads (groups and delegations for the
     * lifecycle, presences, schedules and attendances for time sync, run state
     * for reconciliation): each hangs its data here and rd_sync_close calls free.
     */
    struct rd_sync_ext {
        void *data;
        void (*free)(void *data);
    } ext[4];

    /* ---- added for the reconciliation (handlers/reconcile.c) ---- */
    /*
     * The circuit breaker's counting pass: findings stay in s->findings and are never
     * written to the findings table (rd_sync_flush does nothing while it is set).
     */
    bool planning;
    /* identity.c's preloaded identity links (rd_identity_preload); freed by rd_sync_close. */
    struct rd_sync_ext links;
    /* platform writes sent behind in a run's real pass (handlers/writeback.c); freed likewise */
    struct rd_sync_ext writeback;
};

enum { RD_SYNC_EXT_PEOPLE = 0, RD_SYNC_EXT_TIME, RD_SYNC_EXT_RUN, RD_SYNC_EXT_CHUNK };

/*
 * Opens a context for a job: the connection (ctx->conn, loaded by the worker for
 * handlers with needs_connection), its clients, reason "event:<first event id>"
 * (or "job:<id>" for jobs of no event), the job's deadline. Returns a new context
 * (free with rd_sync_close) or NULL with ctx->err set.
 */
struct rd_sync *rd_sync_open_job(struct rd_job_ctx *ctx);

/*
 * Opens a context for a reconciliation run (reason "run:<run_id>"). Borrows db and
 * conn; opts are copied by pointer (they must outlive the context). stopping (may be
 * NULL): once set, the run stops between people and its HTTP transfers are aborted.
 */
struct rd_sync *rd_sync_open_run(PGconn *db, const struct rd_connection *conn, int64_t run_id,
                                 bool dry_run, const struct rd_sync_opts *opts, double deadline,
                                 const atomic_bool *stopping);

/*
 * Switches dry-run on or off for what follows (a run's counting pass is dry, its real
 * pass is not); keeps the audit context in step. The caller makes sure nothing that
 * the dry pass put into caches is mistaken for done work.
 */
void rd_sync_set_dry_run(struct rd_sync *s, bool dry_run);

/* Forgets every finding the context holds in memory (written or not). */
void rd_sync_findings_clear(struct rd_sync *s);

/*
 * Flushes unwritten findings (rd_sync_flush) and frees everything the context owns.
 * Accepts NULL.
 */
void rd_sync_close(struct rd_sync *s);

/* Clients of the connection, created on first use, owned by the context. NULL with err when the
 * connection lacks that section. */
struct rd_personio *rd_sync_personio(struct rd_sync *s, struct rd_http_error *err);
struct rd_moco *rd_sync_moco(struct rd_sync *s, struct rd_http_error *err);
/* (rd_sync_scim first sends the platform writes a run handed over: handlers/writeback.c.) */
struct rd_scim *rd_sync_scim(struct rd_sync *s, struct rd_http_error *err);
/* rd_sync_scim without sending them (writeback.c's own use). */
struct rd_scim *rd_sync_scim_client(struct rd_sync *s, struct rd_http_error *err);

/* The audit context for a write, or NULL in a dry run (which must not write at all). */
const struct rd_audit_ctx *rd_sync_audit(struct rd_sync *s);

/*
 * Copies an upstream failure into the job's result: err->msg, permanent (DESIGN.md
 * §7: 4xx other than 408/409/425/429, or a refusal no retry can fix) and
 * retry_after. Returns -1, the handler's return value.
 */
int rd_sync_fail(struct rd_job_ctx *ctx, const struct rd_http_error *err);

/* True when the job's worker is shutting down or the deadline passed. */
bool rd_sync_should_stop(const struct rd_sync *s);

/* ---- the connection's settings (DESIGN.md §4) ---- */

/* True when the connection configures that upstream: "personio", "moco" or "platform". */
bool rd_sync_has(const struct rd_sync *s, const char *section);
/* The connection's time zone, e.g. "Europe/Berlin". Borrowed. */
const char *rd_sync_timezone(const struct rd_sync *s);
/* start_date "YYYY-MM-DD" or NULL. Borrowed. */
const char *rd_sync_start_date(const struct rd_sync *s);
/* policy.<name> as a boolean (def when absent). */
bool rd_sync_policy_bool(const struct rd_sync *s, const char *name, bool def);
/* policy.<name> as an integer (def when absent). */
int rd_sync_policy_int(const struct rd_sync *s, const char *name, int def);
/* team_map[hr_team]: the platform team (SCIM group display name), or NULL. Borrowed. */
const char *rd_sync_team_for(const struct rd_sync *s, const char *hr_team);
/* absence_codes[type_name], 5 when unmapped or type_name is NULL. */
int rd_sync_absence_code(const struct rd_sync *s, const char *type_name);
/* True when email is in policy.protected_users (case-insensitive). */
bool rd_sync_is_protected(const struct rd_sync *s, const char *email);
/* fallback_approver or NULL. Borrowed. */
const char *rd_sync_fallback_approver(const struct rd_sync *s);
/* alerts.slack_webhook_url or NULL. Borrowed: a secret, never log it. */
const char *rd_sync_slack_url(const struct rd_sync *s);

/* ---- findings ---- */

/* True when kind is one of DESIGN.md §7's finding kinds. */
bool rd_finding_kind_valid(const char *kind);

/*
 * Records a finding (kind must be valid: an invalid one is logged and dropped).
 * email, action and result may be NULL; detail is printf-formatted. Kept in
 * s->findings and written to the findings table by rd_sync_flush (with run_id,
 * event_id and job_id of the context). Logged at info.
 */
void rd_sync_finding(struct rd_sync *s, const char *kind, const char *email, const char *action,
                     const char *result, const char *detail_fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Writes the findings not yet written in one statement. -1 with err on a database error. */
int rd_sync_flush(struct rd_sync *s, char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * A short summary of the findings for a job's note ("linked a@x; team_changed …"),
 * truncated to fit, into out.
 */
void rd_sync_note(const struct rd_sync *s, char *out, size_t outlen);

/* ---- alerts ---- */

/*
 * Sends an alert to the admins: Slack (alerts.slack_webhook_url, with text as the
 * fallback and blocks when given) and e-mail to alerts.email_to plus extra_to (NULL-
 * terminated, may be NULL) when smtp_url is configured. subject is the e-mail
 * subject. In a dry run nothing is sent and 0 is returned. Slack's permanent
 * refusals (4xx other than 429) come back as permanent errors with Slack's code,
 * so the job goes dead and an operator can fix the hook and replay.
 */
int rd_sync_alert(struct rd_sync *s, const char *subject, const char *text,
                  struct json_object *blocks, const char *const *extra_to,
                  struct rd_http_error *err) __attribute__((warn_unused_result));

/*
 * As rd_sync_alert, once per (connection, key) for all time: an alert already sent
 * under key is not sent again (*sent false). Concurrent callers with the same key
 * are serialised (an advisory lock), so two instances never both send it. A failed
 * send records nothing, so a retry sends it.
 */
int rd_sync_alert_once(struct rd_sync *s, const char *key, const char *subject, const char *text,
                       struct json_object *blocks, const char *const *extra_to, bool *sent,
                       struct rd_http_error *err) __attribute__((warn_unused_result));

/* True when an alert was sent under key (one query). */
bool rd_sync_alert_was_sent(struct rd_sync *s, const char *key);

/* ---- reads: cached per context (preloaded in full by a run) ---- */

/*
 * The employee with Personio id id (GET /employees/{id} on first use). *out is
 * borrowed from the cache (valid until rd_sync_close); NULL with *gone true when
 * Personio answers 404. -1 with err on other failures.
 */
int rd_sync_employee(struct rd_sync *s, int64_t id, const struct rd_personio_employee **out,
                     bool *gone, struct rd_http_error *err) __attribute__((warn_unused_result));

/* Every employee (all pages; cached). *out borrowed. */
int rd_sync_employees(struct rd_sync *s, const struct rd_personio_employee_list **out,
                      struct rd_http_error *err) __attribute__((warn_unused_result));

/* Every platform user (all pages; cached). *out borrowed. */
int rd_sync_scim_users(struct rd_sync *s, const struct rd_scim_user_list **out,
                       struct rd_http_error *err) __attribute__((warn_unused_result));

/*
 * Platform users that could be this person: userName or an e-mail equal to email
 * (case-insensitive), or externalId equal to the Personio id (0: not checked).
 * Distinct by SCIM id. From the full list when it is cached, else by filtered GETs.
 * *out is a new list of copies (free with rd_scim_user_list_free).
 */
int rd_sync_scim_candidates(struct rd_sync *s, const char *email, int64_t personio_id,
                            struct rd_scim_user_list *out, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/* The platform user with SCIM id id; *found false when it is gone (404). Clear out. */
int rd_sync_scim_user(struct rd_sync *s, const char *id, bool *found, struct rd_scim_user *out,
                      struct rd_http_error *err) __attribute__((warn_unused_result));

/* Every MOCO user, archived included (all pages; cached). *out borrowed. */
int rd_sync_moco_users(struct rd_sync *s, const struct rd_moco_user_list **out,
                       struct rd_http_error *err) __attribute__((warn_unused_result));

/*
 * Time-offs overlapping [from, to] (YYYY-MM-DD, both required) of one employee
 * (employee_id > 0) or of everyone (0). Cached by (employee, window); when the
 * context holds everyone's time-offs for a window covering [from, to] (a run
 * preloads them with employee_id 0), per-employee reads are answered from it.
 * *out is borrowed (valid until rd_sync_close or rd_sync_cache_clear).
 */
int rd_sync_time_offs(struct rd_sync *s, int64_t employee_id, const char *from, const char *to,
                      const struct rd_personio_time_off_list **out, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/*
 * MOCO users with this e-mail (case-insensitive), archived included: from the full list
 * when it is cached (an index, no scan), else GET /users?email=. *out is a new list of
 * copies (free with rd_moco_user_list_free).
 */
int rd_sync_moco_candidates(struct rd_sync *s, const char *email, struct rd_moco_user_list *out,
                            struct rd_http_error *err) __attribute__((warn_unused_result));

/*
 * Moves what another context of the same connection read into s: the platform
 * users, the MOCO users (with their indexes) and time sync's store, each only when
 * s has none yet. A run reads those on a second context and thread beside
 * Personio (handlers/reconcile_preload.c); from keeps nothing of them.
 */
void rd_sync_adopt_reads(struct rd_sync *s, struct rd_sync *from);

/* True when the full lists are cached (a run preloaded them): lookups then read no upstream. */
bool rd_sync_have_scim_users(const struct rd_sync *s);
bool rd_sync_have_moco_users(const struct rd_sync *s);

/*
 * Marks a platform user as changed in the cache after a write (so later steps of
 * the same context see it): the cached copy with that id, if any, gets u's values.
 */
void rd_sync_scim_user_updated(struct rd_sync *s, const struct rd_scim_user *u);

/* Forgets every cached read (a run between its two passes keeps them; tests). */
void rd_sync_cache_clear(struct rd_sync *s);

#endif
