/*
 * Identity links (include/rosterd/identity.h): HR employee ↔ platform user ↔ MOCO
 * user, by e-mail once and then by id. Also the handlers of the people mirror:
 * personio.person (a person or employment changed: re-read, remember, link, and run
 * the lifecycle convergence) and moco.user (a MOCO user changed: link it).
 */
#include "rosterd/identity.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "rosterd/db.h"
#include "rosterd/handler.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"

static void id_text(char *buf, size_t n, int64_t v)
{
    snprintf(buf, n, "%lld", (long long)v);
}

const char *rd_identity_last_day(const struct rd_personio_employee *e)
{
    return e->last_working_day ? e->last_working_day : e->termination_date;
}

int rd_identity_remember(struct rd_sync *s, const struct rd_personio_employee *e, char *err,
                         size_t errlen)
{
    if (s->dry_run)
        return 0;
    char cid[24], pid[24], sup[24];
    id_text(cid, sizeof(cid), s->connection_id);
    id_text(pid, sizeof(pid), e->id);
    id_text(sup, sizeof(sup), e->supervisor_id);
    const char *params[11] = {cid,           pid,     e->email ? e->email : "",
                              e->first_name, e->last_name, e->status,
                              e->team,       e->department, e->supervisor_id ? sup : NULL,
                              e->hire_date,  rd_identity_last_day(e)};
    return rd_db_run(s->db,
                     "INSERT INTO people (connection_id, personio_id, email, first_name, last_name,"
                     " status, team, department, supervisor_id, hire_date, last_day)"
                     " VALUES ($1::bigint, $2::bigint, $3, $4, $5, $6, $7, $8, $9::bigint,"
                     "  $10::date, $11::date)"
                     " ON CONFLICT (connection_id, personio_id) DO UPDATE SET"
                     "  email = excluded.email, first_name = excluded.first_name,"
                     "  last_name = excluded.last_name, status = excluded.status,"
                     "  team = excluded.team, department = excluded.department,"
                     "  supervisor_id = excluded.supervisor_id, hire_date = excluded.hire_date,"
                     "  last_day = excluded.last_day, seen_at = now(),"
                     "  updated_at = CASE WHEN (people.email, people.status, people.team,"
                     "    people.department, people.supervisor_id, people.last_day)"
                     "    IS DISTINCT FROM (excluded.email, excluded.status, excluded.team,"
                     "    excluded.department, excluded.supervisor_id, excluded.last_day)"
                     "    THEN now() ELSE people.updated_at END",
                     11, params, err, errlen);
}

char *rd_identity_pinned_scim(struct rd_sync *s, int64_t personio_id)
{
    char cid[24], pid[24], err[256];
    id_text(cid, sizeof(cid), s->connection_id);
    id_text(pid, sizeof(pid), personio_id);
    const char *params[2] = {cid, pid};
    PGresult *res = rd_db_exec(s->db,
                               "SELECT scim_id FROM people WHERE connection_id = $1::bigint"
                               " AND personio_id = $2::bigint AND scim_id IS NOT NULL",
                               2, params, err, sizeof(err));
    char *id = res && PQntuples(res) == 1 ? rd_strdup(PQgetvalue(res, 0, 0)) : NULL;
    PQclear(res);
    return id;
}

int64_t rd_identity_pinned_moco(struct rd_sync *s, int64_t personio_id)
{
    char cid[24], pid[24], err[256];
    id_text(cid, sizeof(cid), s->connection_id);
    id_text(pid, sizeof(pid), personio_id);
    const char *params[2] = {cid, pid};
    PGresult *res = rd_db_exec(s->db,
                               "SELECT moco_user_id FROM people WHERE connection_id = $1::bigint"
                               " AND personio_id = $2::bigint AND moco_user_id IS NOT NULL",
                               2, params, err, sizeof(err));
    int64_t id = res && PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return id;
}

/*
 * Pins (or with value NULL unpins) column "scim" or "moco" of the person's row. The
 * unique indexes refuse an account already pinned to someone else: *taken is set.
 */
static int pin(struct rd_sync *s, int64_t personio_id, bool scim, const char *value, bool *taken,
               struct rd_http_error *err)
{
    *taken = false;
    if (s->dry_run)
        return 0;
    char cid[24], pid[24], dberr[256];
    id_text(cid, sizeof(cid), s->connection_id);
    id_text(pid, sizeof(pid), personio_id);
    const char *params[3] = {cid, pid, value};
    PGresult *res = PQexecParams(
        s->db,
        scim ? "UPDATE people SET scim_id = $3::text, scim_linked_at = CASE WHEN $3::text IS NULL THEN NULL"
               " ELSE now() END, updated_at = now()"
               " WHERE connection_id = $1::bigint AND personio_id = $2::bigint"
             : "UPDATE people SET moco_user_id = $3::bigint, moco_linked_at = CASE WHEN $3::bigint IS NULL"
               " THEN NULL ELSE now() END, updated_at = now()"
               " WHERE connection_id = $1::bigint AND personio_id = $2::bigint",
        3, NULL, params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state && strcmp(state, "23505") == 0) {
            *taken = true;
        } else {
            rd_db_error(s->db, res, dberr, sizeof(dberr));
            rd_http_error_set(err, false, 0, "cannot record the link of person %s: %s", pid, dberr);
            rc = -1;
        }
    }
    PQclear(res);
    return rc;
}

/* The Personio id of whoever pinned this account, 0 when nobody (or only personio_id). */
static int64_t pinned_by_other(struct rd_sync *s, bool scim, const char *value, int64_t personio_id)
{
    char cid[24], pid[24], err[256];
    id_text(cid, sizeof(cid), s->connection_id);
    id_text(pid, sizeof(pid), personio_id);
    const char *params[3] = {cid, value, pid};
    PGresult *res = rd_db_exec(s->db,
                               scim ? "SELECT personio_id FROM people WHERE connection_id = $1::bigint"
                                      " AND scim_id = $2 AND personio_id <> $3::bigint"
                                    : "SELECT personio_id FROM people WHERE connection_id = $1::bigint"
                                      " AND moco_user_id = $2::bigint AND personio_id <> $3::bigint",
                               3, params, err, sizeof(err));
    int64_t other = res && PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return other;
}

/* The HR address differs from the pinned account's: the account follows the person. */
static int follow_email(struct rd_sync *s, const struct rd_personio_employee *e,
                        struct rd_scim_user *u, struct rd_http_error *err)
{
    if (!e->email || !u->user_name || strcasecmp(u->user_name, e->email) == 0)
        return 0;
    char *old = rd_strdup(u->user_name);
    int rc = 0;
    if (!s->dry_run) {
        /* the audit row keeps the address the account had */
        struct rd_audit_ctx a = *rd_sync_audit(s);
        a.before = json_object_new_object();
        json_object_object_add(a.before, "userName", json_object_new_string(old));
        struct rd_scim *sc = rd_sync_scim(s, err);
        rc = sc ? rd_scim_set_user_name(sc, u->id, e->email, &a, s->deadline, err) : -1;
        json_object_put(a.before);
    }
    if (rc == 0) {
        rd_sync_finding(s, "linked", e->email, "platform userName and e-mail set to the new address",
                        s->dry_run ? RD_RESULT_PLANNED : RD_RESULT_DONE,
                        "e-mail changed in Personio from %s to %s; the platform account %s follows",
                        old, e->email, u->id);
        if (!s->dry_run) {
            free(u->user_name);
            u->user_name = rd_strdup(e->email);
            rd_sync_scim_user_updated(s, u);
        }
    }
    free(old);
    return rc;
}

/* Names the candidates for a conflict finding: "a@x (id 1), b@x (id 2)". */
static char *describe_users(const struct rd_scim_user_list *l)
{
    struct rd_buf b = {0};
    rd_buf_puts(&b, "");
    for (size_t i = 0; i < l->count; i++)
        rd_buf_printf(&b, "%s%s (SCIM id %s)", i ? ", " : "",
                      l->items[i].user_name ? l->items[i].user_name : "?", l->items[i].id);
    return rd_buf_steal(&b);
}

/* Candidates pinned to another person are not this person's: drops them, counts them. */
static size_t drop_taken(struct rd_sync *s, struct rd_scim_user_list *l, int64_t personio_id,
                         int64_t *owner)
{
    size_t dropped = 0, k = 0;
    for (size_t i = 0; i < l->count; i++) {
        int64_t other = pinned_by_other(s, true, l->items[i].id, personio_id);
        if (other) {
            *owner = other;
            dropped++;
            rd_scim_user_clear(&l->items[i]);
        } else {
            l->items[k++] = l->items[i];
        }
    }
    l->count = k;
    return dropped;
}

static int link_platform_fresh(struct rd_sync *s, const struct rd_personio_employee *e,
                               struct rd_scim_user *out, enum rd_link_state *state,
                               struct rd_http_error *err)
{
    struct rd_scim_user_list cands;
    if (rd_sync_scim_candidates(s, e->email, e->id, &cands, err) != 0)
        return -1;
    int64_t owner = 0;
    size_t taken = drop_taken(s, &cands, e->id, &owner);
    int rc = 0;
    if (cands.count > 1) {
        char *who = describe_users(&cands);
        rd_sync_finding(s, "conflict", e->email, NULL, RD_RESULT_NONE,
                        "%zu platform accounts could be %s %s (Personio %lld): %s; nothing was "
                        "changed: remove or rename the wrong one on the platform",
                        cands.count, e->first_name ? e->first_name : "",
                        e->last_name ? e->last_name : "", (long long)e->id, who);
        free(who);
        *state = RD_LINK_CONFLICT;
    } else if (cands.count == 0 && taken) {
        rd_sync_finding(s, "conflict", e->email, NULL, RD_RESULT_NONE,
                        "the platform account with the address %s is linked to Personio employee "
                        "%lld, not to %lld; nothing was changed",
                        e->email ? e->email : "?", (long long)owner, (long long)e->id);
        *state = RD_LINK_CONFLICT;
    } else if (cands.count == 1) {
        bool clash = false;
        rc = pin(s, e->id, true, cands.items[0].id, &clash, err);
        if (rc == 0 && clash) {
            rd_sync_finding(s, "conflict", e->email, NULL, RD_RESULT_NONE,
                            "the platform account %s was linked to another employee meanwhile",
                            cands.items[0].id);
            *state = RD_LINK_CONFLICT;
        } else if (rc == 0) {
            *out = cands.items[0];
            memset(&cands.items[0], 0, sizeof(cands.items[0]));
            *state = RD_LINK_NEW;
            rd_sync_finding(s, "linked", e->email, "linked by e-mail, pinned to the Personio id",
                            s->dry_run ? RD_RESULT_PLANNED : RD_RESULT_DONE,
                            "Personio employee %lld is the platform account %s (%s)",
                            (long long)e->id, out->id, out->user_name ? out->user_name : "?");
            rc = follow_email(s, e, out, err);
        }
    }
    rd_scim_user_list_free(&cands);
    return rc;
}

int rd_identity_platform(struct rd_sync *s, const struct rd_personio_employee *e,
                         struct rd_scim_user *out, enum rd_link_state *state,
                         struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    *state = RD_LINK_NONE;
    char *pinned = rd_identity_pinned_scim(s, e->id);
    if (pinned) {
        bool found = false;
        int rc = rd_sync_scim_user(s, pinned, &found, out, err);
        if (rc != 0) {
            free(pinned);
            return -1;
        }
        if (found) {
            free(pinned);
            *state = RD_LINK_PINNED;
            return follow_email(s, e, out, err);
        }
        bool taken;
        rd_log_info("platform account %s of Personio employee %lld is gone; linking afresh",
                    pinned, (long long)e->id);
        free(pinned);
        if (pin(s, e->id, true, NULL, &taken, err) != 0)
            return -1;
    }
    if (!e->email || !*e->email)
        return 0;
    return link_platform_fresh(s, e, out, state, err);
}

/* MOCO users with e's e-mail: from the full list when cached, else GET /users?email=. */
static int moco_candidates(struct rd_sync *s, const char *email, struct rd_moco_user_list *out,
                           struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    const struct rd_moco_user_list *all = NULL;
    if (rd_sync_have_moco_users(s)) {
        if (rd_sync_moco_users(s, &all, err) != 0)
            return -1;
        out->items = rd_calloc(all->count + 1, sizeof(*out->items));
        for (size_t i = 0; i < all->count; i++) {
            const struct rd_moco_user *u = &all->items[i];
            if (u->email && strcasecmp(u->email, email) == 0) {
                struct rd_moco_user *c = &out->items[out->count++];
                *c = *u;
                c->email = rd_strdup(u->email);
                c->firstname = u->firstname ? rd_strdup(u->firstname) : NULL;
                c->lastname = u->lastname ? rd_strdup(u->lastname) : NULL;
            }
        }
        return 0;
    }
    struct rd_moco *m = rd_sync_moco(s, err);
    return m ? rd_moco_find_users(m, email, s->deadline, out, err) : -1;
}

int rd_identity_moco(struct rd_sync *s, const struct rd_personio_employee *e,
                     int64_t *moco_user_id, enum rd_link_state *state, struct rd_http_error *err)
{
    *moco_user_id = rd_identity_pinned_moco(s, e->id);
    *state = *moco_user_id ? RD_LINK_PINNED : RD_LINK_NONE;
    if (*moco_user_id || !e->email || !*e->email)
        return 0;
    struct rd_moco_user_list cands;
    if (moco_candidates(s, e->email, &cands, err) != 0)
        return -1;
    int rc = 0;
    char mid[24];
    size_t k = 0;
    int64_t owner = 0;
    for (size_t i = 0; i < cands.count; i++) {
        id_text(mid, sizeof(mid), cands.items[i].id);
        int64_t other = pinned_by_other(s, false, mid, e->id);
        if (other)
            owner = other;
        else
            cands.items[k++].id = cands.items[i].id;
    }
    if (k > 1) {
        rd_sync_finding(s, "conflict", e->email, NULL, RD_RESULT_NONE,
                        "%zu MOCO users have the address %s; nothing was linked: archive or "
                        "re-address the wrong one in MOCO",
                        k, e->email);
        *state = RD_LINK_CONFLICT;
    } else if (k == 0 && owner) {
        rd_sync_finding(s, "conflict", e->email, NULL, RD_RESULT_NONE,
                        "the MOCO user with the address %s is linked to Personio employee %lld, "
                        "not to %lld",
                        e->email, (long long)owner, (long long)e->id);
        *state = RD_LINK_CONFLICT;
    } else if (k == 1) {
        bool clash = false;
        id_text(mid, sizeof(mid), cands.items[0].id);
        rc = pin(s, e->id, false, mid, &clash, err);
        if (rc == 0 && !clash) {
            *moco_user_id = cands.items[0].id;
            *state = RD_LINK_NEW;
            rd_sync_finding(s, "linked", e->email, "linked by e-mail, pinned to the MOCO id",
                            s->dry_run ? RD_RESULT_PLANNED : RD_RESULT_DONE,
                            "Personio employee %lld is MOCO user %lld", (long long)e->id,
                            (long long)*moco_user_id);
        } else if (rc == 0) {
            *state = RD_LINK_CONFLICT;
        }
    }
    rd_moco_user_list_free(&cands);
    return rc;
}

/* The e-mail of a MOCO user (a new string), NULL when MOCO does not know it. */
static int moco_email(struct rd_sync *s, int64_t moco_user_id, char **email,
                      struct rd_http_error *err)
{
    *email = NULL;
    if (rd_sync_have_moco_users(s)) {
        const struct rd_moco_user_list *all = NULL;
        if (rd_sync_moco_users(s, &all, err) != 0)
            return -1;
        for (size_t i = 0; i < all->count; i++)
            if (all->items[i].id == moco_user_id && all->items[i].email)
                *email = rd_strdup(all->items[i].email);
        return 0;
    }
    struct rd_moco *m = rd_sync_moco(s, err);
    if (!m)
        return -1;
    struct rd_moco_user_list one;
    bool found = false;
    if (rd_moco_get_user(m, moco_user_id, s->deadline, &found, &one, err) != 0)
        return -1;
    if (found && one.count == 1 && one.items[0].email)
        *email = rd_strdup(one.items[0].email);
    rd_moco_user_list_free(&one);
    return 0;
}

int rd_identity_person_for_moco(struct rd_sync *s, int64_t moco_user_id, int64_t *personio_id,
                                struct rd_http_error *err)
{
    *personio_id = 0;
    char cid[24], mid[24], dberr[256];
    id_text(cid, sizeof(cid), s->connection_id);
    id_text(mid, sizeof(mid), moco_user_id);
    const char *params[2] = {cid, mid};
    PGresult *res = rd_db_exec(s->db,
                               "SELECT personio_id FROM people WHERE connection_id = $1::bigint"
                               " AND moco_user_id = $2::bigint",
                               2, params, dberr, sizeof(dberr));
    if (!res) {
        rd_http_error_set(err, false, 0, "people: %s", dberr);
        return -1;
    }
    if (PQntuples(res) == 1)
        *personio_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (*personio_id)
        return 0;

    char *email = NULL;
    if (moco_email(s, moco_user_id, &email, err) != 0)
        return -1;
    if (!email)
        return 0;
    struct rd_personio *p = rd_sync_personio(s, err);
    struct rd_personio_employee_list found = {0};
    int rc = p ? rd_personio_list_employees(p, email, s->deadline, &found, err) : -1;
    if (rc == 0 && found.count > 1) {
        rd_sync_finding(s, "conflict", email, NULL, RD_RESULT_NONE,
                        "%zu Personio employees have the address of MOCO user %lld; nothing was "
                        "linked",
                        found.count, (long long)moco_user_id);
    } else if (rc == 0 && found.count == 1) {
        const struct rd_personio_employee *e = &found.items[0];
        char dbe[256];
        int64_t linked = 0;
        enum rd_link_state st;
        if (rd_identity_remember(s, e, dbe, sizeof(dbe)) != 0) {
            rd_http_error_set(err, false, 0, "people: %s", dbe);
            rc = -1;
        } else if ((rc = rd_identity_moco(s, e, &linked, &st, err)) == 0 && linked == moco_user_id) {
            *personio_id = e->id;
        }
    }
    rd_personio_employee_list_free(&found);
    free(email);
    return rc;
}

/* ---- the moco.user handler ---- */

/* A MOCO user was created, changed or deleted: link it to its person (by e-mail, then id). */
static int moco_user_run(struct rd_job_ctx *ctx)
{
    if (!ctx->subject)
        return 0; /* no user id in the delivery: the nightly run links everyone */
    char *end = NULL;
    long long id = strtoll(ctx->subject, &end, 10);
    if (!end || *end || id <= 0) {
        snprintf(ctx->note, sizeof(ctx->note), "ignored: MOCO user id \"%.64s\" is not a number",
                 ctx->subject);
        return 0;
    }
    struct rd_sync *s = rd_sync_open_job(ctx);
    if (!s)
        return -1;
    struct rd_http_error err = {0};
    int64_t personio_id = 0;
    int rc = rd_identity_person_for_moco(s, id, &personio_id, &err);
    if (rc == 0) {
        rd_sync_note(s, ctx->note, sizeof(ctx->note));
        if (!ctx->note[0])
            snprintf(ctx->note, sizeof(ctx->note),
                     personio_id ? "MOCO user %lld is Personio employee %lld"
                                 : "MOCO user %lld matches no Personio employee",
                     id, (long long)personio_id);
    } else {
        rd_sync_fail(ctx, &err);
    }
    rd_sync_close(s);
    return rc;
}

static const struct rd_handler identity_handlers[] = {
    {.kind = "moco.user", .run = moco_user_run, .needs_connection = true},
};

const struct rd_capability rd_cap_identity = {
    .name = "identity",
    .handlers = identity_handlers,
    .nhandlers = sizeof(identity_handlers) / sizeof(identity_handlers[0]),
};
