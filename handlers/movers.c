/*
 * Movers (include/rosterd/movers.h): team group, enterprise department and manager
 * of a platform account follow the HR team, department and supervisor.
 */
#include "rosterd/movers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "lifecycle_internal.h"
#include "writeback_internal.h"
#include "rosterd/connection.h"
#include "rosterd/jsonx.h"
#include "rosterd/mem.h"

/* The distinct platform groups team_map maps to, in document order (borrowed strings). */
static size_t team_groups(const struct rd_sync *s, const char **out, size_t max)
{
    struct json_object *tm = rd_json_get(s->conn->doc, "team_map");
    size_t n = 0;
    if (!tm || !json_object_is_type(tm, json_type_object))
        return 0;
    json_object_object_foreach(tm, k, v)
    {
        (void)k;
        const char *g = json_object_get_string(v);
        bool dup = false;
        for (size_t i = 0; i < n && !dup; i++)
            dup = strcmp(out[i], g) == 0;
        if (!dup && n < max)
            out[n++] = g;
    }
    return n;
}

static const char *result_of(const struct rd_sync *s)
{
    return s->dry_run ? RD_RESULT_PLANNED : RD_RESULT_DONE;
}

/* Adds (add) or removes the account to or from g, audited with the membership before. */
static int membership(struct rd_sync *s, struct rd_scim_group *g, const char *user_id, bool add,
                      struct rd_http_error *err)
{
    if (s->dry_run)
        return 0;
    struct json_object *before = json_object_new_object();
    json_object_object_add(before, "group",
                           json_object_new_string(g->display_name ? g->display_name : g->id));
    json_object_object_add(before, "member", json_object_new_boolean(!add));
    struct rd_audit_ctx a;
    struct rd_scim *sc = rd_sync_scim(s, err);
    const char *ids[1] = {user_id};
    int rc = !sc   ? -1
             : add ? rd_scim_group_add_members(sc, g->id, ids, 1, rd_lc_audit(s, &a, before),
                                               s->deadline, err)
                   : rd_scim_group_remove_members(sc, g->id, ids, 1, rd_lc_audit(s, &a, before),
                                                  s->deadline, err);
    json_object_put(before);
    if (rc == 0)
        rd_lc_group_changed(g, user_id, add);
    return rc;
}

/* The account is in team groups although the HR team maps to none: a person decides. */
static int unmapped(struct rd_sync *s, const struct rd_personio_employee *e,
                    const struct rd_scim_user *acc, const char *const *groups, size_t ngroups,
                    struct rd_http_error *err)
{
    struct rd_buf in = {0};
    for (size_t i = 0; i < ngroups; i++) {
        struct rd_scim_group *g = NULL;
        if (rd_lc_group(s, groups[i], &g, err) != 0) {
            rd_buf_free(&in);
            return -1;
        }
        if (g && rd_lc_group_has(g, acc->id))
            rd_buf_printf(&in, "%s\"%s\"", in.len ? ", " : "", groups[i]);
    }
    if (in.len)
        rd_sync_finding(s, "unmapped_team", e->email, NULL, RD_RESULT_NONE,
                        "HR team \"%s\" is not in team_map of connection %s, so rosterd cannot tell"
                        " which platform team %s belongs to; the account is still in %s: map the"
                        " team or change the membership on the platform",
                        e->team, s->connection_name, e->email, in.data);
    rd_buf_free(&in);
    return 0;
}

static int converge_team(struct rd_sync *s, const struct rd_personio_employee *e,
                         const struct rd_scim_user *acc, struct rd_http_error *err)
{
    if (!e->team)
        return 0;
    const char *groups[64];
    size_t ngroups = team_groups(s, groups, 64);
    const char *mapped = rd_sync_team_for(s, e->team);
    if (!mapped)
        return unmapped(s, e, acc, groups, ngroups, err);
    struct rd_scim_group *target = NULL;
    if (rd_lc_group(s, mapped, &target, err) != 0)
        return -1;
    if (!target) {
        rd_sync_finding(s, "error", e->email, NULL, RD_RESULT_NONE,
                        "the platform has no group \"%s\" (team_map of HR team \"%s\"): create it"
                        " on the platform; the team membership of %s was not changed",
                        mapped, e->team, e->email);
        return 0;
    }
    bool join = !rd_lc_group_has(target, acc->id);
    if (join && membership(s, target, acc->id, true, err) != 0)
        return -1;
    struct rd_buf left = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < ngroups; i++) {
        struct rd_scim_group *g = NULL;
        if (strcmp(groups[i], mapped) == 0)
            continue;
        rc = rd_lc_group(s, groups[i], &g, err);
        if (rc == 0 && g && rd_lc_group_has(g, acc->id)) {
            rd_buf_printf(&left, "%s\"%s\"", left.len ? ", " : "", groups[i]);
            rc = membership(s, g, acc->id, false, err);
        }
    }
    if (rc == 0 && (join || left.len))
        rd_sync_finding(
            s, "team_changed", e->email,
            join && left.len ? "joined the platform group of the HR team, left the old one"
            : join           ? "joined the platform group of the HR team"
                             : "left the platform group of another team",
            result_of(s), "HR team \"%s\": platform group \"%s\"%s%s%s", e->team, mapped,
            left.len ? " (was in " : "", left.len ? left.data : "", left.len ? ")" : "");
    rd_buf_free(&left);
    return rc;
}

static int converge_department(struct rd_sync *s, const struct rd_personio_employee *e,
                               struct rd_scim_user *acc, struct rd_http_error *err)
{
    if (!e->department || (acc->department && strcmp(acc->department, e->department) == 0))
        return 0;
    if (!s->dry_run) {
        struct json_object *before = json_object_new_object();
        json_object_object_add(before, "department",
                               acc->department ? json_object_new_string(acc->department) : NULL);
        struct rd_audit_ctx a;
        struct rd_scim *sc = rd_sync_scim(s, err);
        int rc = sc ? rd_scim_set_department(sc, acc->id, e->department, rd_lc_audit(s, &a, before),
                                             s->deadline, err)
                    : -1;
        json_object_put(before);
        if (rc != 0)
            return -1;
    }
    rd_sync_finding(s, "team_changed", e->email, "set the platform department", result_of(s),
                    "department \"%s\" -> \"%s\"", acc->department ? acc->department : "(none)",
                    e->department);
    if (!s->dry_run) {
        free(acc->department);
        acc->department = rd_strdup(e->department);
        rd_sync_scim_user_updated(s, acc);
    }
    return 0;
}

/* "userName" of the platform user id for a finding, or the id itself. */
static void user_label(struct rd_sync *s, const char *id, char *out, size_t outlen)
{
    struct rd_scim_user u;
    bool found = false;
    struct rd_http_error ignored = {0};
    if (id && rd_sync_scim_user(s, id, &found, &u, &ignored) == 0 && found && u.user_name)
        snprintf(out, outlen, "%s", u.user_name);
    else
        snprintf(out, outlen, "%s", id ? id : "(none)");
    if (found)
        rd_scim_user_clear(&u);
}

/* The cached account gets its new manager (so later steps of the run see it). */
static void manager_set(struct rd_sync *s, struct rd_scim_user *acc, const char *manager_id)
{
    free(acc->manager_id);
    acc->manager_id = rd_strdup(manager_id);
    rd_sync_scim_user_updated(s, acc);
}

/* A manager change written behind (handlers/writeback.c): one allocation, strings after it. */
struct manager_write {
    const char *acc_id, *manager_id, *email, *first, *last, *was, *now;
    long long personio_id;
    char strings[];
};

static void manager_written(struct rd_sync *s, void *arg, int rc, const struct rd_http_error *err)
{
    struct manager_write *w = arg;
    if (rc == 0) {
        rd_sync_finding(s, "manager_changed", w->email, "set the platform manager", RD_RESULT_DONE,
                        "manager %s -> %s (the HR supervisor)", w->was, w->now);
        struct rd_scim_user acc;
        bool found = false;
        struct rd_http_error ignored = {0};
        if (rd_sync_scim_user(s, w->acc_id, &found, &acc, &ignored) == 0 && found) {
            manager_set(s, &acc, w->manager_id);
            rd_scim_user_clear(&acc);
        }
    } else {
        rd_sync_finding(s, "error", w->email, "set the platform manager", RD_RESULT_FAILED,
                        "%s %s (Personio %lld): setting the platform manager (%s -> %s) failed:"
                        " %s; the run went on with the others and the next run tries again",
                        w->first, w->last, w->personio_id, w->was, w->now,
                        err->msg[0] ? err->msg : "unknown error");
    }
    free(w);
}

/* Hands the manager change over to be written behind; the finding comes when it is sent. */
static void write_manager_behind(struct rd_sync *s, const struct rd_personio_employee *e,
                                 const struct rd_scim_user *acc, const struct rd_scim_user *mgr,
                                 const char *was, struct json_object *before)
{
    const char *str[] = {acc->id,
                         mgr->id,
                         e->email ? e->email : "",
                         e->first_name ? e->first_name : "",
                         e->last_name ? e->last_name : "",
                         was,
                         mgr->user_name ? mgr->user_name : mgr->id};
    enum { NSTR = sizeof(str) / sizeof(str[0]) };
    size_t len = 0;
    for (size_t i = 0; i < NSTR; i++)
        len += strlen(str[i]) + 1;
    struct manager_write *w = rd_calloc(1, sizeof(*w) + len);
    const char **field[NSTR] = {&w->acc_id, &w->manager_id, &w->email, &w->first,
                                &w->last,   &w->was,        &w->now};
    char *p = w->strings;
    for (size_t i = 0; i < NSTR; i++) {
        size_t n = strlen(str[i]) + 1;
        memcpy(p, str[i], n);
        *field[i] = p;
        p += n;
    }
    w->personio_id = (long long)e->id;
    if (!e->email)
        w->email = NULL;
    struct rd_buf path = {0};
    rd_scim_patch_path(&path, "Users", acc->id);
    rd_writeback_patch(s, path.data, rd_scim_manager_patch(mgr->id), before, manager_written, w);
    rd_buf_free(&path);
}

static int converge_manager(struct rd_sync *s, const struct rd_personio_employee *e,
                            struct rd_scim_user *acc, struct rd_http_error *err)
{
    if (!e->supervisor_id)
        return 0;
    struct rd_scim_user mgr;
    bool found = false;
    if (rd_lc_account_of(s, e->supervisor_id, &mgr, &found, NULL, err) != 0)
        return -1;
    int rc = 0;
    if (found && strcmp(mgr.id, acc->id) != 0 &&
        (!acc->manager_id || strcmp(acc->manager_id, mgr.id) != 0)) {
        char was[320];
        user_label(s, acc->manager_id, was, sizeof(was));
        struct json_object *before = NULL;
        if (!s->dry_run) {
            before = json_object_new_object();
            json_object_object_add(before, "manager",
                                   acc->manager_id ? json_object_new_string(acc->manager_id)
                                                   : NULL);
        }
        if (rd_writeback_on(s)) {
            write_manager_behind(s, e, acc, &mgr, was, before); /* takes before */
            rd_scim_user_clear(&mgr);
            return 0;
        }
        if (!s->dry_run) {
            struct rd_audit_ctx a;
            struct rd_scim *sc = rd_sync_scim(s, err);
            rc = sc ? rd_scim_set_manager(sc, acc->id, mgr.id, rd_lc_audit(s, &a, before),
                                          s->deadline, err)
                    : -1;
            json_object_put(before);
        }
        if (rc == 0) {
            rd_sync_finding(s, "manager_changed", e->email, "set the platform manager",
                            result_of(s), "manager %s -> %s (the HR supervisor)", was,
                            mgr.user_name ? mgr.user_name : mgr.id);
            if (!s->dry_run)
                manager_set(s, acc, mgr.id);
        }
    }
    rd_scim_user_clear(&mgr);
    return rc;
}

int rd_movers_converge(struct rd_sync *s, const struct rd_personio_employee *e,
                       struct rd_scim_user *account, struct rd_http_error *err)
{
    if (!account->id || !account->active || (e->status && strcmp(e->status, "inactive") == 0))
        return 0;
    if (converge_team(s, e, account, err) != 0 || converge_department(s, e, account, err) != 0)
        return -1;
    return converge_manager(s, e, account, err);
}
