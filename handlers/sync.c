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
#include "rosterd/jsonx.h"
#include "rosterd/log.h"
#include "rosterd/mailer.h"
#include "rosterd/mem.h"
#include "rosterd/slack.h"

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

struct rd_sync_cache {
    struct time_off_slot **toffs; /* slots never move: their lists are handed out */
    size_t ntoffs;
    struct emp_slot **emps; /* read one by one; slots never move (pointers are handed out) */
    size_t nemps;
    bool have_all_emps;
    struct rd_personio_employee_list all_emps;
    bool have_scim;
    struct rd_scim_user_list scim;
    bool have_moco;
    struct rd_moco_user_list moco;
};

static const char *const finding_kinds[] = {
    "linked",        "new_hire",          "platform_only",   "deactivated",
    "deactivation_scheduled",             "deactivation_held", "team_changed",
    "manager_changed", "unmapped_team",   "absence_created", "absence_removed",
    "attendance_pushed", "attendance_removed", "conflict",   "error",
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
                                const struct rd_sync_opts *opts, double deadline)
{
    struct rd_sync *s = rd_calloc(1, sizeof(*s));
    s->db = db;
    s->conn = conn;
    s->connection_id = conn->id;
    s->connection_name = conn->name;
    if (opts)
        s->opts = *opts;
    s->deadline = deadline;
    struct rd_http_opts ho = {.ca_file = s->opts.ca_file};
    s->http = rd_http_client_new(&ho);
    s->cache = rd_calloc(1, sizeof(*s->cache));
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
        snprintf(ctx->err, sizeof(ctx->err), "job %lld has no connection",
                 (long long)ctx->job_id);
        ctx->permanent = true;
        return NULL;
    }
    struct rd_sync_opts opts = {
        .ca_file = ctx->ca_file, .smtp_url = ctx->smtp_url, .smtp_from = ctx->smtp_from};
    struct rd_sync *s = sync_new(ctx->db, ctx->conn, &opts, rd_http_now() + JOB_DEADLINE_SECONDS);
    s->job_id = ctx->job_id;
    s->event_id = ctx->nevents ? ctx->events[0].id : 0;
    if (s->event_id)
        snprintf(s->reason, sizeof(s->reason), "event:%lld", (long long)s->event_id);
    else
        snprintf(s->reason, sizeof(s->reason), "job:%lld", (long long)s->job_id);
    s->stopping = ctx->stopping;
    set_audit(s);
    return s;
}

struct rd_sync *rd_sync_open_run(PGconn *db, const struct rd_connection *conn, int64_t run_id,
                                 bool dry_run, const struct rd_sync_opts *opts, double deadline)
{
    struct rd_sync *s = sync_new(db, conn, opts, deadline);
    s->run_id = run_id;
    s->dry_run = dry_run;
    snprintf(s->reason, sizeof(s->reason), "run:%lld", (long long)run_id);
    set_audit(s);
    return s;
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
    memset(c, 0, sizeof(*c));
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
    struct json_object *v = rd_json_get(section ? rd_json_get(s->conn->doc, section) : s->conn->doc, key);
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
    }
    return s->moco;
}

struct rd_scim *rd_sync_scim(struct rd_sync *s, struct rd_http_error *err)
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
    struct rd_log_ctx lc = {.connection = s->connection_name, .event_id = s->event_id,
                            .job_id = s->job_id};
    rd_log_ctx_info(&lc, "%s %s: %s%s%s%s", k, email ? email : "-", f->detail,
                    f->action ? " -> " : "", f->action ? f->action : "",
                    f->result ? (s->dry_run ? " (dry run)" : "") : "");
    if (s->nfindings - s->nflushed >= FLUSH_EVERY) {
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
    if (s->nflushed >= s->nfindings || !s->db)
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

int rd_sync_employee(struct rd_sync *s, int64_t id, const struct rd_personio_employee **out,
                     bool *gone, struct rd_http_error *err)
{
    struct rd_sync_cache *c = s->cache;
    *out = NULL;
    *gone = false;
    if (c->have_all_emps) {
        for (size_t i = 0; i < c->all_emps.count; i++)
            if (c->all_emps.items[i].id == id) {
                *out = &c->all_emps.items[i];
                return 0;
            }
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
        out->items = rd_calloc(c->scim.count + 1, sizeof(*out->items));
        for (size_t i = 0; i < c->scim.count; i++)
            if (user_matches(&c->scim.items[i], email, extp))
                rd_scim_user_copy(&out->items[out->count++], &c->scim.items[i]);
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
        for (size_t i = 0; i < c->scim.count; i++)
            if (c->scim.items[i].id && strcmp(c->scim.items[i].id, id) == 0) {
                rd_scim_user_copy(out, &c->scim.items[i]);
                *found = true;
                break;
            }
        return 0;
    }
    struct rd_scim *sc = rd_sync_scim(s, err);
    return sc ? rd_scim_get_user(sc, id, s->deadline, found, out, err) : -1;
}

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
    for (size_t i = 0; c->have_scim && u->id && i < c->scim.count; i++)
        if (c->scim.items[i].id && strcmp(c->scim.items[i].id, u->id) == 0) {
            struct rd_scim_user copy;
            rd_scim_user_copy(&copy, u);
            rd_scim_user_clear(&c->scim.items[i]);
            c->scim.items[i] = copy;
            return;
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
    }
    *out = &c->moco;
    return 0;
}

/* Copies the time-offs of one employee inside [from, to] out of a wider list. */
static void filter_time_offs(const struct rd_personio_time_off_list *all, int64_t employee_id,
                             const char *from, const char *to,
                             struct rd_personio_time_off_list *out)
{
    memset(out, 0, sizeof(*out));
    out->items = rd_calloc(all->count + 1, sizeof(*out->items));
    for (size_t i = 0; i < all->count; i++) {
        const struct rd_personio_time_off *t = &all->items[i];
        if (t->employee_id != employee_id || !t->start_date || !t->end_date ||
            strcmp(t->end_date, from) < 0 || strcmp(t->start_date, to) > 0)
            continue;
        struct rd_personio_time_off *c = &out->items[out->count++];
        *c = *t;
        c->id_v2 = t->id_v2 ? rd_strdup(t->id_v2) : NULL;
        c->status = t->status ? rd_strdup(t->status) : NULL;
        c->start_date = rd_strdup(t->start_date);
        c->end_date = rd_strdup(t->end_date);
        c->type_name = t->type_name ? rd_strdup(t->type_name) : NULL;
    }
}

int rd_sync_time_offs(struct rd_sync *s, int64_t employee_id, const char *from, const char *to,
                      const struct rd_personio_time_off_list **out, struct rd_http_error *err)
{
    struct rd_sync_cache *c = s->cache;
    size_t wide = SIZE_MAX;
    for (size_t i = 0; i < c->ntoffs; i++) {
        struct time_off_slot *t = c->toffs[i];
        if (t->employee_id == employee_id && strcmp(t->from, from) == 0 && strcmp(t->to, to) == 0) {
            *out = &t->list;
            return 0;
        }
        if (t->employee_id == 0 && strcmp(t->from, from) <= 0 && strcmp(t->to, to) >= 0)
            wide = i;
    }
    struct time_off_slot *slot = rd_calloc(1, sizeof(*slot));
    slot->employee_id = employee_id;
    snprintf(slot->from, sizeof(slot->from), "%s", from);
    snprintf(slot->to, sizeof(slot->to), "%s", to);
    if (wide != SIZE_MAX) {
        filter_time_offs(&c->toffs[wide]->list, employee_id, from, to, &slot->list);
    } else {
        struct rd_personio *p = rd_sync_personio(s, err);
        if (!p || rd_personio_list_time_offs(p, from, to, employee_id, s->deadline, &slot->list,
                                             err) != 0) {
            rd_personio_time_off_list_free(&slot->list);
            free(slot);
            return -1;
        }
    }
    c->toffs = rd_realloc(c->toffs, (c->ntoffs + 1) * sizeof(*c->toffs));
    c->toffs[c->ntoffs++] = slot;
    *out = &slot->list;
    return 0;
}
