/*
 * Shared pieces of the people-lifecycle steps (handlers/lifecycle_internal.h): the
 * per-context cache, the connection's local date, team_map groups, a person's
 * platform account by Personio id, and "who approves" from the people mirror.
 */
#include "lifecycle_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rosterd/db.h"
#include "rosterd/identity.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/reconcile.h"
#include "rosterd/timesync.h"

const char *rd_lc_id(char *buf, size_t n, int64_t v)
{
    snprintf(buf, n, "%lld", (long long)v);
    return buf;
}

int rd_lc_db_fail(struct rd_http_error *err, const char *what, const char *dberr)
{
    rd_http_error_set(err, false, 0, "%s: %s", what, dberr);
    return -1;
}

static void lc_free(void *data)
{
    struct rd_lc *lc = data;
    if (!lc)
        return;
    for (size_t i = 0; i < lc->ngroups; i++) {
        free(lc->groups[i]->name);
        rd_scim_group_clear(&lc->groups[i]->g);
        free(lc->groups[i]);
    }
    free(lc->groups);
    free(lc->approvers);
    free(lc->created);
    rd_buf_free(&lc->note);
    free(lc);
}

struct rd_lc *rd_lc_of(struct rd_sync *s)
{
    struct rd_sync_ext *x = &s->ext[RD_SYNC_EXT_PEOPLE];
    if (!x->data) {
        x->data = rd_calloc(1, sizeof(struct rd_lc));
        x->free = lc_free;
    }
    return x->data;
}

const char *rd_lc_today(struct rd_sync *s, struct rd_http_error *err)
{
    struct rd_lc *lc = rd_lc_of(s);
    if (lc->today[0])
        return lc->today;
    char dberr[256];
    const char *params[1] = {rd_sync_timezone(s)};
    PGresult *res = rd_db_exec(s->db, "SELECT ((now() AT TIME ZONE $1)::date)::text", 1, params,
                               dberr, sizeof(dberr));
    if (!res) {
        rd_lc_db_fail(err, "local date", dberr);
        return NULL;
    }
    snprintf(lc->today, sizeof(lc->today), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return lc->today;
}

int rd_lc_date_add(struct rd_sync *s, const char *date, int days, char out[11],
                   struct rd_http_error *err)
{
    (void)s; /* plain calendar arithmetic: no round trip to Postgres per person */
    if (!rd_day_valid(date)) {
        rd_http_error_set(err, true, 0, "date: %.40s is not a date (YYYY-MM-DD)",
                          date ? date : "(none)");
        return -1;
    }
    rd_day_add(date, days, out);
    return 0;
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static long days_from_civil(long y, long m, long d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool parse_day(const char *s, long *out)
{
    int y, m, d;
    if (!s || sscanf(s, "%4d-%2d-%2d", &y, &m, &d) != 3 || m < 1 || m > 12 || d < 1 || d > 31)
        return false;
    *out = days_from_civil(y, m, d);
    return true;
}

int rd_lc_days_between(const char *a, const char *b)
{
    long da, db;
    return parse_day(a, &da) && parse_day(b, &db) ? (int)(db - da) : 0;
}

void rd_lc_note(struct rd_sync *s, const char *fmt, ...)
{
    struct rd_lc *lc = rd_lc_of(s);
    if (lc->note.len)
        rd_buf_puts(&lc->note, "; ");
    va_list ap;
    va_start(ap, fmt);
    rd_buf_vprintf(&lc->note, fmt, ap);
    va_end(ap);
}

/* One person's links for the note: which accounts were linked. */
struct link_entry {
    const char *email;
    bool platform, moco, renamed;
};

static void note_links(const struct rd_sync *s, struct rd_buf *b)
{
    struct link_entry *l = rd_calloc(s->nfindings + 1, sizeof(*l));
    size_t n = 0;
    for (size_t i = 0; i < s->nfindings; i++) {
        const struct rd_finding *f = &s->findings[i];
        if (strcmp(f->kind, "linked") != 0 || !f->email)
            continue;
        size_t k = 0;
        while (k < n && strcmp(l[k].email, f->email) != 0)
            k++;
        if (k == n)
            l[n++].email = f->email;
        if (strstr(f->detail, "e-mail changed"))
            l[k].renamed = true;
        else if (strstr(f->detail, "MOCO user"))
            l[k].moco = true;
        else
            l[k].platform = true;
    }
    for (size_t k = 0; k < n; k++)
        rd_buf_printf(b, "%slinked %s (%s%s%s%s%s)", b->len ? "; " : "", l[k].email,
                      l[k].platform ? "platform" : "", l[k].platform && l[k].moco ? ", " : "",
                      l[k].moco ? "MOCO" : "",
                      (l[k].platform || l[k].moco) && l[k].renamed ? ", " : "",
                      l[k].renamed ? "new e-mail" : "");
    free(l);
}

void rd_lc_compose_note(const struct rd_sync *s, char *out, size_t outlen)
{
    struct rd_buf b = {0};
    rd_buf_puts(&b, "");
    for (size_t i = 0; i < s->nfindings; i++) {
        const struct rd_finding *f = &s->findings[i];
        if (strcmp(f->kind, "linked") != 0)
            rd_buf_printf(&b, "%s%s %s%s%s", b.len ? "; " : "", f->kind, f->email ? f->email : "",
                          f->email ? ": " : "", f->detail);
    }
    const struct rd_lc *lc = s->ext[RD_SYNC_EXT_PEOPLE].data;
    if (lc && lc->note.len)
        rd_buf_printf(&b, "%s%s", b.len ? "; " : "", lc->note.data);
    note_links(s, &b);
    if (outlen > 4 && b.len >= outlen) {
        memcpy(out, b.data, outlen - 4);
        memcpy(out + outlen - 4, "...", 4);
    } else if (outlen) {
        snprintf(out, outlen, "%s", b.data);
    }
    rd_buf_free(&b);
}

void rd_lc_mark_created(struct rd_sync *s, int64_t personio_id)
{
    struct rd_lc *lc = rd_lc_of(s);
    lc->created = rd_realloc(lc->created, (lc->ncreated + 1) * sizeof(*lc->created));
    lc->created[lc->ncreated++] = personio_id;
}

bool rd_lc_was_created(struct rd_sync *s, int64_t personio_id)
{
    const struct rd_lc *lc = s->ext[RD_SYNC_EXT_PEOPLE].data;
    for (size_t i = 0; lc && i < lc->ncreated; i++)
        if (lc->created[i] == personio_id)
            return true;
    return false;
}

void rd_lc_name(const struct rd_personio_employee *e, char *out, size_t outlen)
{
    const char *f = e->first_name && *e->first_name ? e->first_name : NULL;
    const char *l = e->last_name && *e->last_name ? e->last_name : NULL;
    if (f || l)
        snprintf(out, outlen, "%s%s%s", f ? f : "", f && l ? " " : "", l ? l : "");
    else if (e->email)
        snprintf(out, outlen, "%s", e->email);
    else
        snprintf(out, outlen, "Personio employee %lld", (long long)e->id);
}

/* ---- groups ---- */

int rd_lc_group(struct rd_sync *s, const char *name, struct rd_scim_group **g,
                struct rd_http_error *err)
{
    struct rd_lc *lc = rd_lc_of(s);
    *g = NULL;
    for (size_t i = 0; i < lc->ngroups; i++)
        if (strcmp(lc->groups[i]->name, name) == 0) {
            *g = lc->groups[i]->found ? &lc->groups[i]->g : NULL;
            return 0;
        }
    struct rd_scim_group got = {0};
    bool found = false;
    const struct rd_scim_group_list *all = rd_reconcile_groups(s);
    if (all) { /* a nightly run read every group once: the same displayName match */
        for (size_t i = 0; i < all->count && !found; i++) {
            const struct rd_scim_group *pg = &all->items[i];
            if (!pg->id || !pg->display_name || strcasecmp(pg->display_name, name) != 0)
                continue;
            found = true;
            rd_scim_group_copy(&got, pg);
        }
    } else {
        struct rd_scim *sc = rd_sync_scim(s, err);
        if (!sc || rd_scim_find_group(sc, name, s->deadline, &found, &got, err) != 0)
            return -1;
    }
    struct rd_lc_group *slot = rd_calloc(1, sizeof(*slot));
    slot->name = rd_strdup(name);
    slot->found = found;
    slot->g = got;
    lc->groups = rd_realloc(lc->groups, (lc->ngroups + 1) * sizeof(*lc->groups));
    lc->groups[lc->ngroups++] = slot;
    *g = found ? &slot->g : NULL;
    return 0;
}

bool rd_lc_group_has(const struct rd_scim_group *g, const char *user_id)
{
    for (size_t i = 0; g && i < g->nmembers; i++)
        if (strcmp(g->members[i], user_id) == 0)
            return true;
    return false;
}

void rd_lc_group_changed(struct rd_scim_group *g, const char *user_id, bool added)
{
    if (added) {
        if (rd_lc_group_has(g, user_id))
            return;
        g->members = rd_realloc(g->members, (g->nmembers + 1) * sizeof(char *));
        g->members[g->nmembers++] = rd_strdup(user_id);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < g->nmembers; i++) {
        if (strcmp(g->members[i], user_id) == 0)
            free(g->members[i]);
        else
            g->members[k++] = g->members[i];
    }
    g->nmembers = k;
}

/* ---- accounts of other people ---- */

int rd_lc_account_of(struct rd_sync *s, int64_t personio_id, struct rd_scim_user *out, bool *found,
                     const struct rd_personio_employee **emp, struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    *found = false;
    if (emp)
        *emp = NULL;
    char *pinned = emp ? NULL : rd_identity_pinned_scim(s, personio_id);
    if (pinned) {
        int rc = rd_sync_scim_user(s, pinned, found, out, err);
        free(pinned);
        if (rc != 0 || *found)
            return rc;
    }
    const struct rd_personio_employee *e = NULL;
    bool gone = false;
    if (rd_sync_employee(s, personio_id, &e, &gone, err) != 0)
        return -1;
    if (emp)
        *emp = e;
    if (gone)
        return 0;
    char dberr[256];
    if (rd_identity_remember(s, e, dberr, sizeof(dberr)) != 0)
        return rd_lc_db_fail(err, "people", dberr);
    enum rd_link_state st = RD_LINK_NONE;
    if (rd_identity_platform(s, e, out, &st, err) != 0)
        return -1;
    *found = (st == RD_LINK_PINNED || st == RD_LINK_NEW) && out->id;
    if (!*found)
        rd_scim_user_clear(out);
    return 0;
}

/* ---- approvers ---- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void add_approver(struct rd_lc *lc, size_t *cap, int64_t id)
{
    if (lc->napprovers == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        lc->approvers = rd_realloc(lc->approvers, *cap * sizeof(int64_t));
    }
    lc->approvers[lc->napprovers++] = id;
}

static void sort_unique(struct rd_lc *lc)
{
    if (!lc->napprovers)
        return;
    qsort(lc->approvers, lc->napprovers, sizeof(int64_t), cmp_i64);
    size_t k = 1;
    for (size_t i = 1; i < lc->napprovers; i++)
        if (lc->approvers[i] != lc->approvers[k - 1])
            lc->approvers[k++] = lc->approvers[i];
    lc->napprovers = k;
}

/* Did the mirror hold every employee once, and does it still hold as many rows? */
static int mirror_state(struct rd_sync *s, bool *complete, struct rd_http_error *err)
{
    char cid[24], dberr[256];
    const char *params[1] = {rd_lc_id(cid, sizeof(cid), s->connection_id)};
    PGresult *res = rd_db_exec(
        s->db,
        "SELECT (SELECT count(*) FROM people p WHERE p.connection_id = $1::bigint) >= m.employees"
        " FROM people_mirror m WHERE m.connection_id = $1::bigint",
        1, params, dberr, sizeof(dberr));
    if (!res)
        return rd_lc_db_fail(err, "people mirror", dberr);
    *complete = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return 0;
}

static int approvers_from_mirror(struct rd_sync *s, struct rd_lc *lc, struct rd_http_error *err)
{
    char cid[24], dberr[256];
    const char *params[1] = {rd_lc_id(cid, sizeof(cid), s->connection_id)};
    PGresult *res = rd_db_exec(s->db,
                               "SELECT DISTINCT supervisor_id FROM people"
                               " WHERE connection_id = $1::bigint AND supervisor_id IS NOT NULL"
                               "  AND coalesce(status, '') <> 'inactive'",
                               1, params, dberr, sizeof(dberr));
    if (!res)
        return rd_lc_db_fail(err, "people mirror", dberr);
    size_t cap = 0;
    for (int i = 0; i < PQntuples(res); i++)
        add_approver(lc, &cap, strtoll(PQgetvalue(res, i, 0), NULL, 10));
    PQclear(res);
    return 0;
}

/* The mirror never held everyone: read everyone, remember them, and note it. */
static int approvers_from_personio(struct rd_sync *s, struct rd_lc *lc, struct rd_http_error *err)
{
    const struct rd_personio_employee_list *all = NULL;
    if (rd_sync_employees(s, &all, err) != 0)
        return -1;
    size_t cap = 0;
    char dberr[256];
    for (size_t i = 0; i < all->count; i++) {
        const struct rd_personio_employee *e = &all->items[i];
        if (e->supervisor_id && !(e->status && strcmp(e->status, "inactive") == 0))
            add_approver(lc, &cap, e->supervisor_id);
        if (rd_identity_remember(s, e, dberr, sizeof(dberr)) != 0)
            return rd_lc_db_fail(err, "people", dberr);
    }
    if (s->dry_run)
        return 0;
    char cid[24], n[24];
    const char *params[2] = {rd_lc_id(cid, sizeof(cid), s->connection_id),
                             rd_lc_id(n, sizeof(n), (int64_t)all->count)};
    if (rd_db_run(
            s->db,
            "INSERT INTO people_mirror (connection_id, employees) VALUES ($1::bigint, $2::int)"
            " ON CONFLICT (connection_id) DO UPDATE SET employees = excluded.employees,"
            "  complete_at = now()",
            2, params, dberr, sizeof(dberr)) != 0)
        return rd_lc_db_fail(err, "people mirror", dberr);
    rd_log_info("people mirror of %s filled with %zu employees (%s)", s->connection_name,
                all->count, s->reason);
    return 0;
}

int rd_lc_is_approver(struct rd_sync *s, int64_t personio_id, bool *yes, struct rd_http_error *err)
{
    struct rd_lc *lc = rd_lc_of(s);
    *yes = false;
    if (!lc->have_approvers) {
        bool complete = false;
        if (mirror_state(s, &complete, err) != 0)
            return -1;
        int rc = complete ? approvers_from_mirror(s, lc, err) : approvers_from_personio(s, lc, err);
        if (rc != 0) {
            lc->napprovers = 0;
            return -1;
        }
        sort_unique(lc);
        lc->have_approvers = true;
        lc->mirror_complete = complete;
    }
    *yes = bsearch(&personio_id, lc->approvers, lc->napprovers, sizeof(int64_t), cmp_i64) != NULL;
    return 0;
}

const struct rd_audit_ctx *rd_lc_audit(struct rd_sync *s, struct rd_audit_ctx *buf,
                                       struct json_object *before)
{
    const struct rd_audit_ctx *a = rd_sync_audit(s);
    if (!a)
        return NULL;
    *buf = *a;
    buf->before = before;
    return buf;
}
