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
#include "rosterd/hmap.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"

static void id_text(char *buf, size_t n, int64_t v)
{
    snprintf(buf, n, "%lld", (long long)v);
}

/*
 * A run's copy of the people table's links (rd_identity_preload), so that linking
 * 10,000 people asks Postgres nothing per person. Pins made during the run update
 * it too (in a dry run only it: the planned link), so later steps see them.
 */
struct links {
    struct rd_hmap *by_person; /* personio id -> index into rows */
    struct rd_hmap *by_scim;   /* SCIM id -> personio id */
    struct rd_hmap *by_moco;   /* MOCO user id -> personio id */
    struct link_row {
        int64_t personio_id;
        char *scim_id;
        int64_t moco_user_id;
    } * rows;
    size_t n, cap;
    size_t nscim;                   /* rows with a platform link */
    bool remembered;                /* rd_identity_remember_all wrote every mirror row */
    bool batch;                     /* pins are written in batches (rd_identity_batch_pins) */
    struct json_object *pending[2]; /* [platform, MOCO]: [{"p": id, "v": value}] unwritten */
    size_t npending;
};

static void links_free(void *data)
{
    struct links *l = data;
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->rows[i].scim_id);
    free(l->rows);
    json_object_put(l->pending[0]);
    json_object_put(l->pending[1]);
    rd_hmap_free(l->by_person);
    rd_hmap_free(l->by_scim);
    rd_hmap_free(l->by_moco);
    free(l);
}

static struct links *links_of(const struct rd_sync *s)
{
    return s->links.data;
}

static struct link_row *links_row(struct links *l, int64_t personio_id, bool create)
{
    uintptr_t i;
    if (rd_hmap_get_i64(l->by_person, personio_id, &i))
        return &l->rows[i];
    if (!create)
        return NULL;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->rows = rd_realloc(l->rows, l->cap * sizeof(*l->rows));
    }
    l->rows[l->n] = (struct link_row){.personio_id = personio_id};
    rd_hmap_put_i64(l->by_person, personio_id, l->n);
    return &l->rows[l->n++];
}

/* Records a pin (value NULL: unpin) of a person's platform or MOCO account in the copy. */
static void links_pin(struct links *l, int64_t personio_id, bool scim, const char *value)
{
    struct link_row *r = links_row(l, personio_id, true);
    if (scim) {
        if (r->scim_id) {
            rd_hmap_del(l->by_scim, r->scim_id, strlen(r->scim_id));
            free(r->scim_id);
            r->scim_id = NULL;
            l->nscim--;
        }
        if (value) {
            r->scim_id = rd_strdup(value);
            rd_hmap_put(l->by_scim, value, strlen(value), (uintptr_t)personio_id);
            l->nscim++;
        }
    } else {
        if (r->moco_user_id)
            rd_hmap_del_i64(l->by_moco, r->moco_user_id);
        r->moco_user_id = value ? strtoll(value, NULL, 10) : 0;
        if (r->moco_user_id)
            rd_hmap_put_i64(l->by_moco, r->moco_user_id, (uintptr_t)personio_id);
    }
}

int rd_identity_preload(struct rd_sync *s, char *err, size_t errlen)
{
    char cid[24];
    id_text(cid, sizeof(cid), s->connection_id);
    const char *params[1] = {cid};
    PGresult *res = rd_db_exec(s->db,
                               "SELECT personio_id, scim_id, moco_user_id FROM people"
                               " WHERE connection_id = $1::bigint ORDER BY personio_id",
                               1, params, err, errlen);
    if (!res)
        return -1;
    struct links *l = rd_calloc(1, sizeof(*l));
    l->by_person = rd_hmap_new();
    l->by_scim = rd_hmap_new();
    l->by_moco = rd_hmap_new();
    for (int i = 0; i < PQntuples(res); i++) {
        int64_t pid = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        links_row(l, pid, true);
        if (!PQgetisnull(res, i, 1))
            links_pin(l, pid, true, PQgetvalue(res, i, 1));
        if (!PQgetisnull(res, i, 2))
            links_pin(l, pid, false, PQgetvalue(res, i, 2));
    }
    PQclear(res);
    if (s->links.data && s->links.free)
        s->links.free(s->links.data);
    s->links.data = l;
    s->links.free = links_free;
    return 0;
}

void rd_identity_batch_pins(struct rd_sync *s, bool on)
{
    struct links *l = links_of(s);
    if (l)
        l->batch = on;
}

int rd_identity_flush_pins(struct rd_sync *s, char *err, size_t errlen)
{
    struct links *l = links_of(s);
    if (!l || l->npending == 0)
        return 0;
    static const char *const sql[2] = {
        "UPDATE people p SET scim_id = v.v, scim_linked_at = CASE WHEN v.v IS NULL THEN NULL"
        " ELSE now() END, updated_at = now() FROM jsonb_to_recordset($2::jsonb) AS v(p bigint,"
        " v text) WHERE p.connection_id = $1::bigint AND p.personio_id = v.p",
        "UPDATE people p SET moco_user_id = v.v, moco_linked_at = CASE WHEN v.v IS NULL THEN NULL"
        " ELSE now() END, updated_at = now() FROM jsonb_to_recordset($2::jsonb) AS v(p bigint,"
        " v bigint) WHERE p.connection_id = $1::bigint AND p.personio_id = v.p"};
    char cid[24];
    id_text(cid, sizeof(cid), s->connection_id);
    int rc = 0;
    for (int k = 0; k < 2 && rc == 0; k++) {
        if (!l->pending[k])
            continue;
        const char *params[2] = {
            cid, json_object_to_json_string_ext(l->pending[k], JSON_C_TO_STRING_PLAIN)};
        /* A lost pin is harmless (the next run links by e-mail again): no WAL flush wait. */
        PQclear(PQexec(s->db, "BEGIN; SET LOCAL synchronous_commit TO off"));
        rc = rd_db_run(s->db, sql[k], 2, params, err, errlen);
        PQclear(PQexec(s->db, rc == 0 ? "COMMIT" : "ROLLBACK"));
        json_object_put(l->pending[k]);
        l->pending[k] = NULL;
    }
    l->npending = 0;
    return rc;
}

size_t rd_identity_linked_count(const struct rd_sync *s)
{
    const struct links *l = links_of(s);
    return l ? l->nscim : 0;
}

int64_t rd_identity_scim_owner(const struct rd_sync *s, const char *scim_id)
{
    const struct links *l = links_of(s);
    uintptr_t v = 0;
    return l && scim_id && rd_hmap_get(l->by_scim, scim_id, strlen(scim_id), &v) ? (int64_t)v : 0;
}

size_t rd_identity_known_people(const struct rd_sync *s, int64_t *ids, size_t max)
{
    const struct links *l = links_of(s);
    size_t n = l ? l->n : 0;
    for (size_t i = 0; ids && i < n && i < max; i++)
        ids[i] = l->rows[i].personio_id;
    return n;
}

/* Appends e as one element of the mirror's bulk upsert. */
static void remember_row(struct json_object *rows, const struct rd_personio_employee *e)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "personio_id", json_object_new_int64(e->id));
    json_object_object_add(o, "email", json_object_new_string(e->email ? e->email : ""));
    const char *keys[] = {"first_name", "last_name", "status",  "team",
                          "department", "hire_date", "last_day"};
    const char *vals[] = {e->first_name, e->last_name,           e->status, e->team, e->department,
                          e->hire_date,  rd_identity_last_day(e)};
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
        json_object_object_add(o, keys[k], vals[k] ? json_object_new_string(vals[k]) : NULL);
    json_object_object_add(o, "supervisor_id",
                           e->supervisor_id ? json_object_new_int64(e->supervisor_id) : NULL);
    json_object_array_add(rows, o);
}

/* What an upsert of the mirror changes on a known person (rd_identity_remember too). */
#define PEOPLE_UPSERT                                                                              \
    " ON CONFLICT (connection_id, personio_id) DO UPDATE SET"                                      \
    "  email = excluded.email, first_name = excluded.first_name,"                                  \
    "  last_name = excluded.last_name, status = excluded.status,"                                  \
    "  team = excluded.team, department = excluded.department,"                                    \
    "  supervisor_id = excluded.supervisor_id, hire_date = excluded.hire_date,"                    \
    "  last_day = excluded.last_day, seen_at = now(),"                                             \
    "  updated_at = CASE WHEN (people.email, people.status, people.team,"                          \
    "    people.department, people.supervisor_id, people.last_day)"                                \
    "    IS DISTINCT FROM (excluded.email, excluded.status, excluded.team,"                        \
    "    excluded.department, excluded.supervisor_id, excluded.last_day)"                          \
    "    THEN now() ELSE people.updated_at END"

/* The same upsert as rd_identity_remember, for a JSON array of rows. */
static const char REMEMBER_ALL_SQL[] =
    "INSERT INTO people (connection_id, personio_id, email, first_name, last_name,"
    " status, team, department, supervisor_id, hire_date, last_day)"
    " SELECT $1::bigint, r.personio_id, r.email, r.first_name, r.last_name, r.status, r.team,"
    "  r.department, r.supervisor_id, r.hire_date, r.last_day"
    " FROM jsonb_to_recordset($2::jsonb) AS r(personio_id bigint, email text, first_name text,"
    "  last_name text, status text, team text, department text, supervisor_id bigint,"
    "  hire_date date, last_day date)" PEOPLE_UPSERT;

#define REMEMBER_BATCH 2000

int rd_identity_remember_all(struct rd_sync *s, const struct rd_personio_employee_list *list,
                             char *err, size_t errlen)
{
    if (s->dry_run)
        return 0;
    char cid[24];
    id_text(cid, sizeof(cid), s->connection_id);
    /* One row per id (a list that shifted between pages may repeat one; the last wins). */
    struct rd_hmap *last = rd_hmap_new();
    for (size_t i = 0; i < list->count; i++)
        rd_hmap_put_i64(last, list->items[i].id, i);
    int rc = 0;
    for (size_t start = 0; rc == 0 && start < list->count; start += REMEMBER_BATCH) {
        struct json_object *rows = json_object_new_array();
        for (size_t i = start; i < list->count && i < start + REMEMBER_BATCH; i++) {
            uintptr_t at;
            if (rd_hmap_get_i64(last, list->items[i].id, &at) && at == i)
                remember_row(rows, &list->items[i]);
        }
        const char *params[2] = {cid, json_object_to_json_string_ext(rows, JSON_C_TO_STRING_PLAIN)};
        rc = rd_db_run(s->db, REMEMBER_ALL_SQL, 2, params, err, errlen);
        json_object_put(rows);
    }
    rd_hmap_free(last);
    struct links *l = links_of(s);
    if (rc == 0 && l) {
        for (size_t i = 0; i < list->count; i++)
            links_row(l, list->items[i].id, true);
        l->remembered = true;
    }
    return rc;
}

const char *rd_identity_last_day(const struct rd_personio_employee *e)
{
    return e->last_working_day ? e->last_working_day : e->termination_date;
}

int rd_identity_remember(struct rd_sync *s, const struct rd_personio_employee *e, char *err,
                         size_t errlen)
{
    const struct links *l = links_of(s);
    if (s->dry_run || (l && l->remembered))
        return 0; /* a run wrote everyone's row in one statement before converging */
    char cid[24], pid[24], sup[24];
    id_text(cid, sizeof(cid), s->connection_id);
    id_text(pid, sizeof(pid), e->id);
    id_text(sup, sizeof(sup), e->supervisor_id);
    const char *params[11] = {cid,
                              pid,
                              e->email ? e->email : "",
                              e->first_name,
                              e->last_name,
                              e->status,
                              e->team,
                              e->department,
                              e->supervisor_id ? sup : NULL,
                              e->hire_date,
                              rd_identity_last_day(e)};
    return rd_db_run(s->db,
                     "INSERT INTO people (connection_id, personio_id, email, first_name, last_name,"
                     " status, team, department, supervisor_id, hire_date, last_day)"
                     " VALUES ($1::bigint, $2::bigint, $3, $4, $5, $6, $7, $8, $9::bigint,"
                     "  $10::date, $11::date)" PEOPLE_UPSERT,
                     11, params, err, errlen);
}

char *rd_identity_pinned_scim(struct rd_sync *s, int64_t personio_id)
{
    struct links *l = links_of(s);
    if (l) {
        const struct link_row *r = links_row(l, personio_id, false);
        return r && r->scim_id ? rd_strdup(r->scim_id) : NULL;
    }
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
    struct links *l = links_of(s);
    if (l) {
        const struct link_row *r = links_row(l, personio_id, false);
        return r ? r->moco_user_id : 0;
    }
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
 * Pins with a run's preload: the copy is authoritative for the run, so a clash with
 * someone else's link is seen there, and the rows are written in batches of 500
 * (rd_identity_flush_pins) instead of one statement each (20,000 on a first night).
 */
#define PIN_BATCH 500

static int pin_batched(struct rd_sync *s, struct links *l, int64_t personio_id, bool scim,
                       const char *value, bool *taken, struct rd_http_error *err)
{
    uintptr_t owner = 0;
    bool hit = value && (scim ? rd_hmap_get(l->by_scim, value, strlen(value), &owner)
                              : rd_hmap_get_i64(l->by_moco, strtoll(value, NULL, 10), &owner));
    if (hit && (int64_t)owner != personio_id) {
        *taken = true;
        return 0;
    }
    links_pin(l, personio_id, scim, value);
    struct json_object *row = json_object_new_object();
    json_object_object_add(row, "p", json_object_new_int64(personio_id));
    json_object_object_add(row, "v", value ? json_object_new_string(value) : NULL);
    if (!l->pending[scim ? 0 : 1])
        l->pending[scim ? 0 : 1] = json_object_new_array();
    json_object_array_add(l->pending[scim ? 0 : 1], row);
    if (++l->npending < PIN_BATCH)
        return 0;
    char dberr[256];
    if (rd_identity_flush_pins(s, dberr, sizeof(dberr)) != 0) {
        rd_http_error_set(err, false, 0, "cannot record links: %s", dberr);
        return -1;
    }
    return 0;
}

/*
 * Pins (or with value NULL unpins) column "scim" or "moco" of the person's row. The
 * unique indexes refuse an account already pinned to someone else: *taken is set.
 */
static int pin(struct rd_sync *s, int64_t personio_id, bool scim, const char *value, bool *taken,
               struct rd_http_error *err)
{
    *taken = false;
    struct links *l = links_of(s);
    if (s->dry_run) {
        if (l) /* the planned link: later steps of the dry run see what the real one would */
            links_pin(l, personio_id, scim, value);
        return 0;
    }
    if (l && l->batch)
        return pin_batched(s, l, personio_id, scim, value, taken, err);
    char cid[24], pid[24], dberr[256];
    id_text(cid, sizeof(cid), s->connection_id);
    id_text(pid, sizeof(pid), personio_id);
    const char *params[3] = {cid, pid, value};
    /*
     * A run pins thousands of people on its first night; waiting for a WAL flush for
     * each would cost ~2 ms a pin. A pin lost in a crash is harmless (the next run links
     * the same account by e-mail again), so a run's pins commit without waiting.
     */
    bool quick = l && PQtransactionStatus(s->db) == PQTRANS_IDLE;
    if (quick)
        PQclear(PQexec(s->db, "BEGIN; SET LOCAL synchronous_commit TO off"));
    PGresult *res = PQexecParams(
        s->db,
        scim
            ? "UPDATE people SET scim_id = $3::text, scim_linked_at = CASE WHEN $3::text IS NULL THEN NULL"
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
    } else if (l) {
        links_pin(l, personio_id, scim, value);
    }
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    PQclear(res);
    if (quick)
        PQclear(PQexec(s->db, ok ? "COMMIT" : "ROLLBACK"));
    return rc;
}

/* The Personio id of whoever pinned this account, 0 when nobody (or only personio_id). */
static int64_t pinned_by_other(struct rd_sync *s, bool scim, const char *value, int64_t personio_id)
{
    const struct links *l = links_of(s);
    if (l) {
        uintptr_t owner = 0;
        bool hit = scim ? rd_hmap_get(l->by_scim, value, strlen(value), &owner)
                        : rd_hmap_get_i64(l->by_moco, strtoll(value, NULL, 10), &owner);
        return hit && (int64_t)owner != personio_id ? (int64_t)owner : 0;
    }
    char cid[24], pid[24], err[256];
    id_text(cid, sizeof(cid), s->connection_id);
    id_text(pid, sizeof(pid), personio_id);
    const char *params[3] = {cid, value, pid};
    PGresult *res =
        rd_db_exec(s->db,
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
        rd_sync_finding(s, "linked", e->email,
                        "platform userName and e-mail set to the new address",
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
        rd_log_info("platform account %s of Personio employee %lld is gone; linking afresh", pinned,
                    (long long)e->id);
        free(pinned);
        if (pin(s, e->id, true, NULL, &taken, err) != 0)
            return -1;
    }
    if (!e->email || !*e->email)
        return 0;
    return link_platform_fresh(s, e, out, state, err);
}

int64_t rd_identity_expected_moco(struct rd_sync *s, const struct rd_personio_employee *e)
{
    int64_t id = rd_identity_pinned_moco(s, e->id);
    if (id || !e->email || !*e->email || !rd_sync_have_moco_users(s))
        return id;
    struct rd_moco_user_list cands;
    struct rd_http_error err = {0};
    if (rd_sync_moco_candidates(s, e->email, &cands, &err) != 0)
        return 0;
    if (cands.count == 1)
        id = cands.items[0].id;
    rd_moco_user_list_free(&cands);
    return id;
}

int rd_identity_moco(struct rd_sync *s, const struct rd_personio_employee *e, int64_t *moco_user_id,
                     enum rd_link_state *state, struct rd_http_error *err)
{
    *moco_user_id = rd_identity_pinned_moco(s, e->id);
    *state = *moco_user_id ? RD_LINK_PINNED : RD_LINK_NONE;
    if (*moco_user_id || !e->email || !*e->email)
        return 0;
    struct rd_moco_user_list cands;
    if (rd_sync_moco_candidates(s, e->email, &cands, err) != 0)
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
        } else if ((rc = rd_identity_moco(s, e, &linked, &st, err)) == 0 &&
                   linked == moco_user_id) {
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
