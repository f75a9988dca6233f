/*
 * The convergence context (include/rosterd/sync.h): clients, policy, findings,
 * alerts and cached reads for one job or one reconciliation run. Everything the
 * capabilities share lives here so that a handler and the nightly sweep run the
 * very same code with different ways of reading the truth.
 */
#include "rosterd/sync.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "rosterd/connection.h"
#include "rosterd/db.h"
#include "rosterd/handler.h"
#include "rosterd/hmap.h"
#include "rosterd/jsonx.h"
#include "rosterd/log.h"
#include "rosterd/mailer.h"
#include "rosterd/mem.h"
#include "rosterd/slack.h"

#include "writeback_internal.h"

/* How long one job may spend upstream; what does not fit is retried by the queue. */
#define JOB_DEADLINE_SECONDS 120.0
/* Findings kept before a flush is forced (a run over 10,000 people). */
#define FLUSH_EVERY 500

struct emp_slot {
    int64_t id;
    bool gone;
    struct rd_personio_employee e;
};

struct time_off_slot {
    int64_t employee_id; /* 0: everyone */
    char from[11], to[11];
    struct rd_personio_time_off_list list;
};

/*
 * A key's postings: items of a list sharing one key (an e-mail may be the userName
 * of one platform user and an address of another). Map value = head + 1.
 */
struct postings {
    struct posting {
        size_t item;
        size_t next; /* index + 1 of the next posting of the same key, 0: none */
    } * p;
    size_t n, cap;
};

struct rd_sync_cache {
    struct time_off_slot **toffs; /* each slot its own allocation: lists handed out stay put */
    size_t ntoffs, cap_toffs;
    struct rd_hmap *toff_slots;  /* "emp:from:to" -> slot index */
    struct rd_hmap *toff_by_emp; /* per wide slot: employee id -> postings head; see toff_wide */
    size_t toff_wide;            /* slot the per-employee index covers, SIZE_MAX: none */
    size_t toff_everyone[8];     /* slots holding everyone's time-offs (employee_id 0) */
    size_t ntoff_everyone;
    struct postings toff_post;
    struct rd_hmap *emp_by_id;    /* all_emps: Personio id -> index */
    struct rd_hmap *scim_by_id;   /* scim: SCIM id -> index */
    struct rd_hmap *scim_by_mail; /* scim: lower(userName or e-mail) -> postings head */
    struct rd_hmap *scim_by_ext;  /* scim: externalId -> postings head */
    struct postings scim_post;
    bool scim_index_stale;        /* an update changed a cached user: rebuild before use */
    struct rd_hmap *moco_by_mail; /* moco: lower(email) -> postings head */
    struct postings moco_post;
    struct emp_slot **emps; /* read one by one; slots never move (pointers are handed out) */
    size_t nemps;
    bool have_all_emps;
    struct rd_personio_employee_list all_emps;
    bool have_scim;
    struct rd_scim_user_list scim;
    bool have_moco;
    struct rd_moco_user_list moco;
};

static const char *const finding_kinds[] = {"linked",
                                            "new_hire",
                                            "platform_only",
                                            "deactivated",
                                            "deactivation_scheduled",
                                            "deactivation_held",
                                            "team_changed",
                                            "manager_changed",
                                            "unmapped_team",
                                            "absence_created",
                                            "absence_removed",
                                            "attendance_pushed",
                                            "attendance_removed",
                                            "conflict",
                                            "error",
                                            NULL};

bool rd_finding_kind_valid(const char *kind)
{
    for (size_t i = 0; kind && finding_kinds[i]; i++)
        if (strcmp(kind, finding_kinds[i]) == 0)
            return true;
    return false;
}

static const char *static_kind(const char *kind)
{
    for (size_t i = 0; kind && finding_kinds[i]; i++)
        if (strcmp(kind, finding_kinds[i]) == 0)
            return finding_kinds[i];
    return NULL;
}

/* ---- open / close ---- */

static struct rd_sync *sync_new(PGconn *db, const struct rd_connection *conn,
                                const struct rd_sync_opts *opts, double deadline,
                                const atomic_bool *stopping)
{
    struct rd_sync *s = rd_calloc(1, sizeof(*s));
    s->db = db;
    s->conn = conn;
    s->connection_id = conn->id;
    s->connection_name = conn->name;
    if (opts)
        s->opts = *opts;
    s->deadline = deadline;
    s->stopping = stopping;
    struct rd_http_opts ho = {.ca_file = s->opts.ca_file, .cancel = stopping};
    s->http = rd_http_client_new(&ho);
    s->cache = rd_calloc(1, sizeof(*s->cache));
    s->cache->toff_wide = SIZE_MAX;
    return s;
}

static void set_audit(struct rd_sync *s)
{
    s->audit.db = s->dry_run ? NULL : s->db;
    s->audit.connection_id = s->connection_id;
    s->audit.reason = s->reason;
}

struct rd_sync *rd_sync_open_job(struct rd_job_ctx *ctx)
{
    if (!ctx->conn) {
        snprintf(ctx->err, sizeof(ctx->err), "job %lld has no connection", (long long)ctx->job_id);
        ctx->permanent = true;
        return NULL;
    }
    struct rd_sync_opts opts = {
        .ca_file = ctx->ca_file, .smtp_url = ctx->smtp_url, .smtp_from = ctx->smtp_from};
    struct rd_sync *s =
        sync_new(ctx->db, ctx->conn, &opts, rd_http_now() + JOB_DEADLINE_SECONDS, ctx->stopping);
    s->job_id = ctx->job_id;
    s->event_id = ctx->nevents ? ctx->events[0].id : 0;
    if (s->event_id)
        snprintf(s->reason, sizeof(s->reason), "event:%lld", (long long)s->event_id);
    else
        snprintf(s->reason, sizeof(s->reason), "job:%lld", (long long)s->job_id);
    set_audit(s);
    return s;
}

struct rd_sync *rd_sync_open_run(PGconn *db, const struct rd_connection *conn, int64_t run_id,
                                 bool dry_run, const struct rd_sync_opts *opts, double deadline,
                                 const atomic_bool *stopping)
{
    struct rd_sync *s = sync_new(db, conn, opts, deadline, stopping);
    s->run_id = run_id;
    s->dry_run = dry_run;
    snprintf(s->reason, sizeof(s->reason), "run:%lld", (long long)run_id);
    set_audit(s);
    return s;
}

void rd_sync_set_dry_run(struct rd_sync *s, bool dry_run)
{
    s->dry_run = dry_run;
    set_audit(s);
}

static void findings_free(struct rd_sync *s)
{
    for (size_t i = 0; i < s->nfindings; i++) {
        free(s->findings[i].email);
        free(s->findings[i].detail);
        free(s->findings[i].action);
        free(s->findings[i].result);
    }
    free(s->findings);
    s->findings = NULL;
    s->nfindings = s->cap_findings = s->nflushed = 0;
}

void rd_sync_findings_clear(struct rd_sync *s)
{
    findings_free(s);
}

void rd_sync_cache_clear(struct rd_sync *s)
{
    struct rd_sync_cache *c = s->cache;
    for (size_t i = 0; i < c->ntoffs; i++) {
        rd_personio_time_off_list_free(&c->toffs[i]->list);
        free(c->toffs[i]);
    }
    free(c->toffs);
    for (size_t i = 0; i < c->nemps; i++) {
        rd_personio_employee_clear(&c->emps[i]->e);
        free(c->emps[i]);
    }
    free(c->emps);
    rd_personio_employee_list_free(&c->all_emps);
    rd_scim_user_list_free(&c->scim);
    rd_moco_user_list_free(&c->moco);
    rd_hmap_free(c->toff_slots);
    rd_hmap_free(c->toff_by_emp);
    rd_hmap_free(c->emp_by_id);
    rd_hmap_free(c->scim_by_id);
    rd_hmap_free(c->scim_by_mail);
    rd_hmap_free(c->scim_by_ext);
    rd_hmap_free(c->moco_by_mail);
    free(c->toff_post.p);
    free(c->scim_post.p);
    free(c->moco_post.p);
    memset(c, 0, sizeof(*c));
    c->toff_wide = SIZE_MAX;
}

void rd_sync_close(struct rd_sync *s)
{
    if (!s)
        return;
    char err[256];
    if (rd_sync_flush(s, err, sizeof(err)) != 0)
        rd_log_warn("findings of %s not recorded: %s", s->reason, err);
    rd_sync_cache_clear(s);
    free(s->cache);
    for (size_t i = 0; i < sizeof(s->ext) / sizeof(s->ext[0]); i++)
        if (s->ext[i].data && s->ext[i].free)
            s->ext[i].free(s->ext[i].data);
    if (s->links.data && s->links.free)
        s->links.free(s->links.data);
    if (s->writeback.data && s->writeback.free)
        s->writeback.free(s->writeback.data);
    findings_free(s);
    rd_personio_free(s->personio);
    rd_moco_free(s->moco);
    rd_scim_free(s->scim);
    rd_http_client_free(s->http);
    free(s);
}

/* ---- clients ---- */

static const char *doc_str(const struct rd_sync *s, const char *section, const char *key)
{
    struct json_object *v =
        rd_json_get(section ? rd_json_get(s->conn->doc, section) : s->conn->doc, key);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

struct rd_personio *rd_sync_personio(struct rd_sync *s, struct rd_http_error *err)
{
    if (!s->personio) {
        const char *base = doc_str(s, "personio", "base_url");
        if (!base) {
            rd_http_error_set(err, true, 0, "connection %s has no personio.base_url",
                              s->connection_name);
            return NULL;
        }
        s->personio = rd_personio_new(s->http, base, doc_str(s, "personio", "client_id"),
                                      doc_str(s, "personio", "client_secret"));
        rd_personio_set_budget_db(s->personio, s->db);
    }
    return s->personio;
}

struct rd_moco *rd_sync_moco(struct rd_sync *s, struct rd_http_error *err)
{
    if (!s->moco) {
        const char *base = doc_str(s, "moco", "base_url");
        if (!base) {
            rd_http_error_set(err, true, 0, "connection %s has no moco.base_url",
                              s->connection_name);
            return NULL;
        }
        s->moco = rd_moco_new(s->http, base, doc_str(s, "moco", "api_key"));
        rd_moco_set_budget_db(s->moco, s->db);
        /* moco.rate_limit: the plan's budget (standard 120 per 120 s, unlimited 1200) */
        struct json_object *rl = rd_json_get(rd_json_get(s->conn->doc, "moco"), "rate_limit");
        struct json_object *n = rd_json_get(rl, "requests"), *w = rd_json_get(rl, "window_seconds");
        if (n && w)
            rd_moco_set_rate(s->moco, json_object_get_int(n), json_object_get_int(w));
    }
    return s->moco;
}

struct rd_scim *rd_sync_scim(struct rd_sync *s, struct rd_http_error *err)
{
    rd_writeback_flush(s); /* writes handed over go first: a person's stay in order */
    return rd_sync_scim_client(s, err);
}

struct rd_scim *rd_sync_scim_client(struct rd_sync *s, struct rd_http_error *err)
{
    if (!s->scim) {
        const char *base = doc_str(s, "platform", "scim_base_url");
        if (!base) {
            rd_http_error_set(err, true, 0, "connection %s has no platform.scim_base_url",
                              s->connection_name);
            return NULL;
        }
        s->scim = rd_scim_new(s->http, base, doc_str(s, "platform", "api_base_url"),
                              doc_str(s, "platform", "token"));
    }
    return s->scim;
}

const struct rd_audit_ctx *rd_sync_audit(struct rd_sync *s)
{
    return s->dry_run ? NULL : &s->audit;
}

int rd_sync_fail(struct rd_job_ctx *ctx, const struct rd_http_error *err)
{
    snprintf(ctx->err, sizeof(ctx->err), "%s", err->msg[0] ? err->msg : "upstream call failed");
    ctx->permanent = err->permanent;
    if (err->retry_after_s > 0)
        ctx->retry_after = err->retry_after_s;
    return -1;
}

bool rd_sync_should_stop(const struct rd_sync *s)
{
    return (s->stopping && atomic_load(s->stopping)) || rd_http_now() >= s->deadline;
}

/* ---- settings ---- */

bool rd_sync_has(const struct rd_sync *s, const char *section)
{
    const char *key = strcmp(section, "platform") == 0 ? "scim_base_url" : "base_url";
    return doc_str(s, section, key) != NULL;
}

const char *rd_sync_timezone(const struct rd_sync *s)
{
    return s->conn->timezone;
}

const char *rd_sync_start_date(const struct rd_sync *s)
{
    return doc_str(s, NULL, "start_date");
}

bool rd_sync_policy_bool(const struct rd_sync *s, const char *name, bool def)
{
    struct json_object *v = rd_json_get(rd_json_get(s->conn->doc, "policy"), name);
    return v && json_object_is_type(v, json_type_boolean) ? json_object_get_boolean(v) : def;
}

int rd_sync_policy_int(const struct rd_sync *s, const char *name, int def)
{
    struct json_object *v = rd_json_get(rd_json_get(s->conn->doc, "policy"), name);
    return v && json_object_is_type(v, json_type_int) ? json_object_get_int(v) : def;
}

const char *rd_sync_team_for(const struct rd_sync *s, const char *hr_team)
{
    return hr_team ? doc_str(s, "team_map", hr_team) : NULL;
}

int rd_sync_absence_code(const struct rd_sync *s, const char *type_name)
{
    struct json_object *v =
        type_name ? rd_json_get(rd_json_get(s->conn->doc, "absence_codes"), type_name) : NULL;
    return v && json_object_is_type(v, json_type_int) ? json_object_get_int(v) : 5;
}

bool rd_sync_is_protected(const struct rd_sync *s, const char *email)
{
    struct json_object *l = rd_json_get(rd_json_get(s->conn->doc, "policy"), "protected_users");
    if (!email || !l || !json_object_is_type(l, json_type_array))
        return false;
    for (size_t i = 0; i < json_object_array_length(l); i++) {
        const char *p = json_object_get_string(json_object_array_get_idx(l, i));
        if (p && strcasecmp(p, email) == 0)
            return true;
    }
    return false;
}

const char *rd_sync_fallback_approver(const struct rd_sync *s)
{
    return doc_str(s, NULL, "fallback_approver");
}

const char *rd_sync_slack_url(const struct rd_sync *s)
{
    return doc_str(s, "alerts", "slack_webhook_url");
}

/* ---- findings ---- */

void rd_sync_finding(struct rd_sync *s, const char *kind, const char *email, const char *action,
                     const char *result, const char *detail_fmt, ...)
{
    const char *k = static_kind(kind);
    if (!k) {
        rd_log_error("dropping a finding of unknown kind \"%s\" (%s)", kind ? kind : "(null)",
                     s->reason);
        return;
    }
    if (s->nfindings == s->cap_findings) {
        s->cap_findings = s->cap_findings ? 2 * s->cap_findings : 16;
        s->findings = rd_realloc(s->findings, s->cap_findings * sizeof(*s->findings));
    }
    struct rd_finding *f = &s->findings[s->nfindings++];
    struct rd_buf d = {0};
    va_list ap;
    va_start(ap, detail_fmt);
    rd_buf_vprintf(&d, detail_fmt, ap);
    va_end(ap);
    f->kind = k;
    f->email = email ? rd_strdup(email) : NULL;
    f->detail = rd_buf_steal(&d);
    f->action = action ? rd_strdup(action) : NULL;
    f->result = result ? rd_strdup(result) : NULL;
    struct rd_log_ctx lc = {
        .connection = s->connection_name, .event_id = s->event_id, .job_id = s->job_id};
    rd_log_ctx_info(&lc, "%s %s: %s%s%s%s", k, email ? email : "-", f->detail,
                    f->action ? " -> " : "", f->action ? f->action : "",
                    f->result ? (s->dry_run ? " (dry run)" : "") : "");
    if (!s->planning && s->nfindings - s->nflushed >= FLUSH_EVERY) {
        char err[256];
        if (rd_sync_flush(s, err, sizeof(err)) != 0)
            rd_log_warn("findings of %s not recorded yet: %s", s->reason, err);
    }
}

static void add_str_or_null(struct json_object *o, const char *k, const char *v)
{
    json_object_object_add(o, k, v ? json_object_new_string(v) : NULL);
}

int rd_sync_flush(struct rd_sync *s, char *err, size_t errlen)
{
    if (s->planning || s->nflushed >= s->nfindings || !s->db)
        return 0;
    struct json_object *rows = json_object_new_array();
    for (size_t i = s->nflushed; i < s->nfindings; i++) {
        const struct rd_finding *f = &s->findings[i];
        struct json_object *o = json_object_new_object();
        add_str_or_null(o, "kind", f->kind);
        add_str_or_null(o, "email", f->email);
        add_str_or_null(o, "detail", f->detail);
        add_str_or_null(o, "action", f->action);
        add_str_or_null(o, "result", f->result);
        json_object_array_add(rows, o);
    }
    char cid[24], run[24], ev[24], job[24];
    snprintf(cid, sizeof(cid), "%lld", (long long)s->connection_id);
    snprintf(run, sizeof(run), "%lld", (long long)s->run_id);
    snprintf(ev, sizeof(ev), "%lld", (long long)s->event_id);
    snprintf(job, sizeof(job), "%lld", (long long)s->job_id);
    const char *params[5] = {cid, run, ev, job,
                             json_object_to_json_string_ext(rows, JSON_C_TO_STRING_PLAIN)};
    int rc = rd_db_run(s->db,
                       "INSERT INTO findings (connection_id, run_id, event_id, job_id, kind, email,"
                       " detail, action, result)"
                       " SELECT $1::bigint, nullif($2::bigint, 0), nullif($3::bigint, 0),"
                       "  nullif($4::bigint, 0), f ->> 'kind', f ->> 'email', f ->> 'detail',"
                       "  f ->> 'action', f ->> 'result'"
                       " FROM jsonb_array_elements($5::jsonb) WITH ORDINALITY AS a(f, n)"
                       " ORDER BY a.n",
                       5, params, err, errlen);
    json_object_put(rows);
    if (rc == 0)
        s->nflushed = s->nfindings;
    return rc;
}

void rd_sync_note(const struct rd_sync *s, char *out, size_t outlen)
{
    struct rd_buf b = {0};
    rd_buf_puts(&b, "");
    for (size_t i = 0; i < s->nfindings; i++) {
        const struct rd_finding *f = &s->findings[i];
        rd_buf_printf(&b, "%s%s %s%s%s", i ? "; " : "", f->kind, f->email ? f->email : "",
                      f->email ? ": " : "", f->detail);
    }
    if (b.len >= outlen && outlen > 4) {
        memcpy(out, b.data, outlen - 4);
        memcpy(out + outlen - 4, "...", 4);
    } else if (outlen) {
        snprintf(out, outlen, "%s", b.data);
    }
    rd_buf_free(&b);
}

/* ---- alerts ---- */

static int send_mail(struct rd_sync *s, const char *subject, const char *text,
                     const char *const *extra_to, struct rd_http_error *err)
{
    struct json_object *l = rd_json_get(rd_json_get(s->conn->doc, "alerts"), "email_to");
    size_t n = l && json_object_is_type(l, json_type_array) ? json_object_array_length(l) : 0;
    size_t nextra = 0;
    while (extra_to && extra_to[nextra])
        nextra++;
    if (!s->opts.smtp_url || n + nextra == 0)
        return 0;
    const char **to = rd_calloc(n + nextra + 1, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        to[k++] = json_object_get_string(json_object_array_get_idx(l, i));
    for (size_t i = 0; i < nextra; i++)
        to[k++] = extra_to[i];
    const char *from = s->opts.smtp_from ? s->opts.smtp_from : "rosterd@localhost";
    int rc = rd_mailer_send(s->opts.smtp_url, from, to, k, subject, text, s->opts.ca_file,
                            s->deadline, err);
    free(to);
    return rc;
}

int rd_sync_alert(struct rd_sync *s, const char *subject, const char *text,
                  struct json_object *blocks, const char *const *extra_to,
                  struct rd_http_error *err)
{
    if (s->dry_run)
        return 0;
    const char *hook = rd_sync_slack_url(s);
    if (hook) {
        char *esc = rd_slack_escape(text);
        int rc = rd_slack_post(s->http, hook, esc, blocks, &s->audit, s->deadline, err);
        free(esc);
        if (rc != 0)
            return -1;
    }
    return send_mail(s, subject, text, extra_to, err);
}

static int alert_lock(struct rd_sync *s, const char *key, bool lock, char *err, size_t errlen)
{
    char *k = rd_asprintf("alert:%lld:%s", (long long)s->connection_id, key);
    const char *params[1] = {k};
    int rc = rd_db_run(s->db,
                       lock ? "SELECT pg_advisory_lock(hashtextextended($1, 0))"
                            : "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                       1, params, err, errlen);
    free(k);
    return rc;
}

bool rd_sync_alert_was_sent(struct rd_sync *s, const char *key)
{
    char cid[24], err[256];
    snprintf(cid, sizeof(cid), "%lld", (long long)s->connection_id);
    const char *params[2] = {cid, key};
    PGresult *res = rd_db_exec(s->db,
                               "SELECT 1 FROM alerts_sent WHERE connection_id = $1::bigint"
                               " AND alert_key = $2",
                               2, params, err, sizeof(err));
    bool sent = res && PQntuples(res) > 0;
    PQclear(res);
    return sent;
}

int rd_sync_alert_once(struct rd_sync *s, const char *key, const char *subject, const char *text,
                       struct json_object *blocks, const char *const *extra_to, bool *sent,
                       struct rd_http_error *err)
{
    *sent = false;
    if (s->dry_run)
        return 0;
    char dberr[256];
    if (alert_lock(s, key, true, dberr, sizeof(dberr)) != 0) {
        rd_http_error_set(err, false, 0, "alert %s: %s", key, dberr);
        return -1;
    }
    int rc = 0;
    if (!rd_sync_alert_was_sent(s, key)) {
        rc = rd_sync_alert(s, subject, text, blocks, extra_to, err);
        if (rc == 0) {
            char cid[24];
            snprintf(cid, sizeof(cid), "%lld", (long long)s->connection_id);
            const char *params[4] = {cid, key, s->reason, text};
            if (rd_db_run(s->db,
                          "INSERT INTO alerts_sent (connection_id, alert_key, reason, text)"
                          " VALUES ($1::bigint, $2, $3, $4) ON CONFLICT DO NOTHING",
                          4, params, dberr, sizeof(dberr)) != 0) {
                /* Sent but not recorded: a retry would send it again, so say so loudly. */
                rd_log_error("alert %s sent but not recorded: %s", key, dberr);
                rd_http_error_set(err, false, 0, "alert %s sent but not recorded: %s", key, dberr);
                rc = -1;
            }
            *sent = rc == 0;
        }
    }
    if (alert_lock(s, key, false, dberr, sizeof(dberr)) != 0)
        rd_log_warn("alert %s: unlock failed: %s", key, dberr);
    return rc;
}

/* ---- cached reads ---- */

/* Adds item under key: the new posting goes in front of the key's chain. */
static void post_add(struct rd_hmap *m, struct postings *pl, const void *key, size_t klen,
                     bool fold_case, size_t item)
{
    uintptr_t head = 0;
    bool had = fold_case ? rd_hmap_get_ci(m, key, &head) : rd_hmap_get(m, key, klen, &head);
    if (pl->n == pl->cap) {
        pl->cap = pl->cap ? 2 * pl->cap : 64;
        pl->p = rd_realloc(pl->p, pl->cap * sizeof(*pl->p));
    }
    pl->p[pl->n] = (struct posting){.item = item, .next = had ? (size_t)head : 0};
    pl->n++;
    if (fold_case)
        rd_hmap_put_ci(m, key, pl->n);
    else
        rd_hmap_put(m, key, klen, pl->n);
}

static void emp_index(struct rd_sync_cache *c)
{
    rd_hmap_free(c->emp_by_id);
    c->emp_by_id = rd_hmap_new();
    for (size_t i = 0; i < c->all_emps.count; i++)
        rd_hmap_put_i64(c->emp_by_id, c->all_emps.items[i].id, i);
}

/* Indexes the cached platform users by id, by userName and e-mails, by externalId. */
static void scim_index(struct rd_sync_cache *c)
{
    rd_hmap_free(c->scim_by_id);
    rd_hmap_free(c->scim_by_mail);
    rd_hmap_free(c->scim_by_ext);
    c->scim_by_id = rd_hmap_new();
    c->scim_by_mail = rd_hmap_new();
    c->scim_by_ext = rd_hmap_new();
    c->scim_post.n = 0;
    for (size_t i = 0; i < c->scim.count; i++) {
        const struct rd_scim_user *u = &c->scim.items[i];
        if (u->id)
            rd_hmap_put(c->scim_by_id, u->id, strlen(u->id), i);
        if (u->user_name)
            post_add(c->scim_by_mail, &c->scim_post, u->user_name, 0, true, i);
        for (size_t k = 0; k < u->nemails; k++)
            post_add(c->scim_by_mail, &c->scim_post, u->emails[k], 0, true, i);
        if (u->external_id)
            post_add(c->scim_by_ext, &c->scim_post, u->external_id, strlen(u->external_id), false,
                     i);
    }
    c->scim_index_stale = false;
}

static void moco_index(struct rd_sync_cache *c)
{
    rd_hmap_free(c->moco_by_mail);
    c->moco_by_mail = rd_hmap_new();
    c->moco_post.n = 0;
    for (size_t i = 0; i < c->moco.count; i++)
        if (c->moco.items[i].email)
            post_add(c->moco_by_mail, &c->moco_post, c->moco.items[i].email, 0, true, i);
}

int rd_sync_employee(struct rd_sync *s, int64_t id, const struct rd_personio_employee **out,
                     bool *gone, struct rd_http_error *err)
{
    struct rd_sync_cache *c = s->cache;
    *out = NULL;
    *gone = false;
    if (c->have_all_emps) {
        uintptr_t i;
        if (rd_hmap_get_i64(c->emp_by_id, id, &i))
            *out = &c->all_emps.items[i];
        else
            *gone = true;
        return 0;
    }
    for (size_t i = 0; i < c->nemps; i++)
        if (c->emps[i]->id == id) {
            *gone = c->emps[i]->gone;
            *out = *gone ? NULL : &c->emps[i]->e;
            return 0;
        }
    struct rd_personio *p = rd_sync_personio(s, err);
    if (!p)
        return -1;
    struct rd_personio_employee e;
    memset(&e, 0, sizeof(e));
    int rc = rd_personio_get_employee(p, id, s->deadline, &e, err);
    if (rc != 0 && err->http_status != 404)
        return -1;
    if (rc != 0)
        rd_personio_employee_clear(&e);
    c->emps = rd_realloc(c->emps, (c->nemps + 1) * sizeof(*c->emps));
    struct emp_slot *slot = rd_calloc(1, sizeof(*slot));
    c->emps[c->nemps++] = slot;
    slot->id = id;
    slot->gone = rc != 0;
    slot->e = e;
    *gone = slot->gone;
    *out = slot->gone ? NULL : &slot->e;
    return 0;
}

int rd_sync_employees(struct rd_sync *s, const struct rd_personio_employee_list **out,
                      struct rd_http_error *err)
{
    struct rd_sync_cache *c = s->cache;
    if (!c->have_all_emps) {
        struct rd_personio *p = rd_sync_personio(s, err);
        if (!p || rd_personio_list_employees(p, NULL, s->deadline, &c->all_emps, err) != 0)
            return -1;
        c->have_all_emps = true;
        emp_index(c);
    }
    *out = &c->all_emps;
    return 0;
}

int rd_sync_scim_users(struct rd_sync *s, const struct rd_scim_user_list **out,
                       struct rd_http_error *err)
{
    struct rd_sync_cache *c = s->cache;
    if (!c->have_scim) {
        struct rd_scim *sc = rd_sync_scim(s, err);
        if (!sc || rd_scim_list_users(sc, s->deadline, &c->scim, err) != 0)
            return -1;
        c->have_scim = true;
        scim_index(c);
    }
    *out = &c->scim;
    return 0;
}

static bool user_matches(const struct rd_scim_user *u, const char *email, const char *ext)
{
    if (email && u->user_name && strcasecmp(u->user_name, email) == 0)
        return true;
    for (size_t i = 0; email && i < u->nemails; i++)
        if (strcasecmp(u->emails[i], email) == 0)
            return true;
    return ext && u->external_id && strcmp(u->external_id, ext) == 0;
}

/* Moves the users of more that are not yet in out (by id) into out; frees more. */
static void merge_users(struct rd_scim_user_list *out, struct rd_scim_user_list *more)
{
    out->items = rd_realloc(out->items, (out->count + more->count + 1) * sizeof(*out->items));
    for (size_t i = 0; i < more->count; i++) {
        bool dup = !more->items[i].id;
        for (size_t j = 0; !dup && j < out->count; j++)
            dup = strcmp(out->items[j].id, more->items[i].id) == 0;
        if (dup)
            rd_scim_user_clear(&more->items[i]);
        else
            out->items[out->count++] = more->items[i];
    }
    free(more->items);
    memset(more, 0, sizeof(*more));
}

int rd_sync_scim_candidates(struct rd_sync *s, const char *email, int64_t personio_id,
                            struct rd_scim_user_list *out, struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    char ext[24];
    snprintf(ext, sizeof(ext), "%lld", (long long)personio_id);
    const char *extp = personio_id ? ext : NULL;
    struct rd_sync_cache *c = s->cache;
    if (c->have_scim) {
        if (c->scim_index_stale)
            scim_index(c);
        /* The postings of both keys, in list order and once each, as the full scan had it. */
        size_t found[64], n = 0;
        uintptr_t head = 0;
        for (int k = 0; k < 2; k++) {
            bool hit = k == 0 ? email && rd_hmap_get_ci(c->scim_by_mail, email, &head)
                              : extp && rd_hmap_get(c->scim_by_ext, extp, strlen(extp), &head);
            for (size_t at = hit ? (size_t)head : 0; at && n < 64;
                 at = c->scim_post.p[at - 1].next) {
                size_t item = c->scim_post.p[at - 1].item;
                bool dup = false;
                for (size_t j = 0; j < n && !dup; j++)
                    dup = found[j] == item;
                if (!dup && user_matches(&c->scim.items[item], email, extp))
                    found[n++] = item;
            }
        }
        for (size_t i = 1; i < n; i++) /* insertion sort: a handful at most */
            for (size_t j = i; j > 0 && found[j - 1] > found[j]; j--) {
                size_t t = found[j];
                found[j] = found[j - 1];
                found[j - 1] = t;
            }
        out->items = rd_calloc(n + 1, sizeof(*out->items));
        for (size_t i = 0; i < n; i++)
            rd_scim_user_copy(&out->items[out->count++], &c->scim.items[found[i]]);
        return 0;
    }
    struct rd_scim *sc = rd_sync_scim(s, err);
    if (!sc)
        return -1;
    const char *attrs[3] = {"userName", "emails.value", "externalId"};
    const char *vals[3] = {email, email, extp};
    for (int i = 0; i < 3; i++) {
        if (!vals[i])
            continue;
        struct rd_scim_user_list more;
        if (rd_scim_find_users(sc, attrs[i], vals[i], s->deadline, &more, err) != 0) {
            rd_scim_user_list_free(out);
            return -1;
        }
        merge_users(out, &more);
    }
    return 0;
}

int rd_sync_scim_user(struct rd_sync *s, const char *id, bool *found, struct rd_scim_user *out,
                      struct rd_http_error *err)
{
    struct rd_sync_cache *c = s->cache;
    *found = false;
    memset(out, 0, sizeof(*out));
    if (c->have_scim) {
        if (c->scim_index_stale)
            scim_index(c);
        uintptr_t i;
        if (rd_hmap_get(c->scim_by_id, id, strlen(id), &i)) {
            rd_scim_user_copy(out, &c->scim.items[i]);
            *found = true;
        }
        return 0;
    }
    struct rd_scim *sc = rd_sync_scim(s, err);
    return sc ? rd_scim_get_user(sc, id, s->deadline, found, out, err) : -1;
}

#define SWAP(a, b)                                                                                 \
    do {                                                                                           \
        __typeof__(a) t_ = (a);                                                                    \
        (a) = (b);                                                                                 \
        (b) = t_;                                                                                  \
    } while (0)

void rd_sync_adopt_reads(struct rd_sync *s, struct rd_sync *from)
{
    struct rd_sync_cache *a = s->cache, *b = from->cache;
    if (!a->have_scim && b->have_scim) {
        SWAP(a->have_scim, b->have_scim);
        SWAP(a->scim, b->scim);
        SWAP(a->scim_by_id, b->scim_by_id);
        SWAP(a->scim_by_mail, b->scim_by_mail);
        SWAP(a->scim_by_ext, b->scim_by_ext);
        SWAP(a->scim_post, b->scim_post);
        SWAP(a->scim_index_stale, b->scim_index_stale);
    }
    if (!a->have_moco && b->have_moco) {
        SWAP(a->have_moco, b->have_moco);
        SWAP(a->moco, b->moco);
        SWAP(a->moco_by_mail, b->moco_by_mail);
        SWAP(a->moco_post, b->moco_post);
    }
    if (!s->ext[RD_SYNC_EXT_TIME].data)
        SWAP(s->ext[RD_SYNC_EXT_TIME], from->ext[RD_SYNC_EXT_TIME]);
}

#undef SWAP

bool rd_sync_have_scim_users(const struct rd_sync *s)
{
    return s->cache->have_scim;
}

bool rd_sync_have_moco_users(const struct rd_sync *s)
{
    return s->cache->have_moco;
}

void rd_sync_scim_user_updated(struct rd_sync *s, const struct rd_scim_user *u)
{
    struct rd_sync_cache *c = s->cache;
    uintptr_t i;
    if (!c->have_scim || !u->id)
        return;
    if (c->scim_index_stale)
        scim_index(c);
    if (rd_hmap_get(c->scim_by_id, u->id, strlen(u->id), &i)) {
        struct rd_scim_user *old = &c->scim.items[i];
        /* Only a new userName, e-mail or externalId moves the user in the index. */
        bool same = old->nemails == u->nemails && !!old->user_name == !!u->user_name &&
                    (!u->user_name || strcmp(old->user_name, u->user_name) == 0) &&
                    !!old->external_id == !!u->external_id &&
                    (!u->external_id || strcmp(old->external_id, u->external_id) == 0);
        for (size_t k = 0; same && k < u->nemails; k++)
            same = strcmp(old->emails[k], u->emails[k]) == 0;
        struct rd_scim_user copy;
        rd_scim_user_copy(&copy, u);
        rd_scim_user_clear(old);
        *old = copy;
        if (!same)
            c->scim_index_stale = true;
    }
}

int rd_sync_moco_users(struct rd_sync *s, const struct rd_moco_user_list **out,
                       struct rd_http_error *err)
{
    struct rd_sync_cache *c = s->cache;
    if (!c->have_moco) {
        struct rd_moco *m = rd_sync_moco(s, err);
        if (!m || rd_moco_list_users(m, true, s->deadline, &c->moco, err) != 0)
            return -1;
        c->have_moco = true;
        moco_index(c);
    }
    *out = &c->moco;
    return 0;
}

int rd_sync_moco_candidates(struct rd_sync *s, const char *email, struct rd_moco_user_list *out,
                            struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    struct rd_sync_cache *c = s->cache;
    if (!c->have_moco) {
        struct rd_moco *m = rd_sync_moco(s, err);
        return m ? rd_moco_find_users(m, email, s->deadline, out, err) : -1;
    }
    size_t n = 0;
    uintptr_t head = 0;
    bool hit = email && rd_hmap_get_ci(c->moco_by_mail, email, &head);
    for (size_t at = hit ? (size_t)head : 0; at; at = c->moco_post.p[at - 1].next)
        n++;
    out->items = rd_calloc(n + 1, sizeof(*out->items));
    /* Postings run newest first: fill from the back to keep MOCO's order. */
    size_t k = n;
    for (size_t at = hit ? (size_t)head : 0; at; at = c->moco_post.p[at - 1].next) {
        const struct rd_moco_user *u = &c->moco.items[c->moco_post.p[at - 1].item];
        struct rd_moco_user *d = &out->items[--k];
        *d = *u;
        d->email = rd_strdup(u->email);
        d->firstname = u->firstname ? rd_strdup(u->firstname) : NULL;
        d->lastname = u->lastname ? rd_strdup(u->lastname) : NULL;
    }
    out->count = n;
    return 0;
}

/* Indexes slot w's everyone-list by employee (once per wide slot). */
static void toff_index(struct rd_sync_cache *c, size_t w)
{
    if (c->toff_wide == w)
        return;
    rd_hmap_free(c->toff_by_emp);
    c->toff_by_emp = rd_hmap_new();
    c->toff_post.n = 0;
    const struct rd_personio_time_off_list *all = &c->toffs[w]->list;
    for (size_t i = all->count; i-- > 0;) /* backwards: chains come out in list order */
        post_add(c->toff_by_emp, &c->toff_post, &all->items[i].employee_id,
                 sizeof(all->items[i].employee_id), false, i);
    c->toff_wide = w;
}

/* Copies the time-offs of one employee inside [from, to] out of wide slot w. */
static void filter_time_offs(struct rd_sync_cache *c, size_t w, int64_t employee_id,
                             const char *from, const char *to,
                             struct rd_personio_time_off_list *out)
{
    toff_index(c, w);
    const struct rd_personio_time_off_list *all = &c->toffs[w]->list;
    memset(out, 0, sizeof(*out));
    uintptr_t head = 0;
    size_t n = 0;
    bool hit = rd_hmap_get(c->toff_by_emp, &employee_id, sizeof(employee_id), &head);
    for (size_t at = hit ? (size_t)head : 0; at; at = c->toff_post.p[at - 1].next)
        n++;
    out->items = rd_calloc(n + 1, sizeof(*out->items));
    for (size_t at = hit ? (size_t)head : 0; at; at = c->toff_post.p[at - 1].next) {
        const struct rd_personio_time_off *t = &all->items[c->toff_post.p[at - 1].item];
        if (t->employee_id != employee_id || !t->start_date || !t->end_date ||
            strcmp(t->end_date, from) < 0 || strcmp(t->start_date, to) > 0)
            continue;
        struct rd_personio_time_off *d = &out->items[out->count++];
        *d = *t;
        d->id_v2 = t->id_v2 ? rd_strdup(t->id_v2) : NULL;
        d->status = t->status ? rd_strdup(t->status) : NULL;
        d->start_date = rd_strdup(t->start_date);
        d->end_date = rd_strdup(t->end_date);
        d->type_name = t->type_name ? rd_strdup(t->type_name) : NULL;
    }
}

int rd_sync_time_offs(struct rd_sync *s, int64_t employee_id, const char *from, const char *to,
                      const struct rd_personio_time_off_list **out, struct rd_http_error *err)
{
    struct rd_sync_cache *c = s->cache;
    size_t wide = SIZE_MAX;
    char key[64];
    snprintf(key, sizeof(key), "%lld:%.10s:%.10s", (long long)employee_id, from, to);
    uintptr_t at;
    if (!c->toff_slots)
        c->toff_slots = rd_hmap_new();
    if (rd_hmap_get(c->toff_slots, key, strlen(key), &at)) {
        *out = &c->toffs[at]->list;
        return 0;
    }
    for (size_t k = 0; employee_id && k < c->ntoff_everyone; k++) {
        size_t i = c->toff_everyone[k];
        const struct time_off_slot *t = c->toffs[i];
        if (t->employee_id == 0 && strcmp(t->from, from) <= 0 && strcmp(t->to, to) >= 0) {
            wide = i;
            break;
        }
    }
    struct time_off_slot *slot = rd_calloc(1, sizeof(*slot));
    slot->employee_id = employee_id;
    snprintf(slot->from, sizeof(slot->from), "%s", from);
    snprintf(slot->to, sizeof(slot->to), "%s", to);
    if (wide != SIZE_MAX) {
        filter_time_offs(c, wide, employee_id, from, to, &slot->list);
    } else {
        struct rd_personio *p = rd_sync_personio(s, err);
        if (!p || rd_personio_list_time_offs(p, from, to, employee_id, s->deadline, &slot->list,
                                             err) != 0) {
            rd_personio_time_off_list_free(&slot->list);
            free(slot);
            return -1;
        }
    }
    if (c->ntoffs == c->cap_toffs) {
        c->cap_toffs = c->cap_toffs ? 2 * c->cap_toffs : 16;
        c->toffs = rd_realloc(c->toffs, c->cap_toffs * sizeof(*c->toffs));
    }
    rd_hmap_put(c->toff_slots, key, strlen(key), c->ntoffs);
    if (employee_id == 0 && c->ntoff_everyone < sizeof(c->toff_everyone) / sizeof(size_t))
        c->toff_everyone[c->ntoff_everyone++] = c->ntoffs;
    c->toffs[c->ntoffs++] = slot;
    *out = &slot->list;
    return 0;
}
