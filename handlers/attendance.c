/*
 * Attendance push (include/rosterd/attendance.h): MOCO presences → Personio
 * attendances, level-triggered. The moco.presence handler converges the user and
 * days a webhook names (the stored link supplies the user when a delete carries only
 * the presence id, and the old day when a presence moved); the hourly
 * sweep.attendance converges everyone whose presences changed since the last sweep;
 * the nightly run calls rd_attendance_converge for everyone.
 */
#include "rosterd/attendance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "rosterd/db.h"
#include "rosterd/handler.h"
#include "rosterd/identity.h"
#include "rosterd/jsonx.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/timesync.h"

#include "prefetch_internal.h"

/* A sweep may take this long (paced upstream calls); the lease is renewed meanwhile. */
#define SWEEP_SECONDS 1800.0
/* From this many people on, a sweep resolves them from full lists read once. */
#define BULK_PEOPLE 4

struct alink {
    int64_t presence_id, attendance_id;
    int64_t owner; /* the MOCO user the presence had when it was pushed */
    char date[11], start[6], end[6];
};

struct aconflict {
    int64_t presence_id;
    char date[11], start[6], end[6];
    int64_t *others;
    size_t nothers;
    char *message;
};

/* One convergence of one person's days. */
struct conv {
    struct rd_sync *s;
    const struct rd_personio_employee *e;
    int64_t uid;
    char from[11], to[11];
    const char *start_date;                  /* may be NULL */
    struct rd_moco_presence_list pres;       /* view */
    struct rd_personio_attendance_list atts; /* view */
    struct alink *links;
    size_t nlinks;
    struct aconflict *conf;
    size_t nconf;
    bool wrote;
    bool refreshed; /* atts was read again after the cached copy */
    bool have_perm;
    struct rd_http_error perm; /* the first permanent failure */
};

void rd_attendance_comment(int64_t presence_id, char *out, size_t outlen)
{
    snprintf(out, outlen, "MOCO presence %lld, pushed by rosterd [moco-presence:%lld]",
             (long long)presence_id, (long long)presence_id);
}

/* "Emilia Hartmann (emilia.hartmann@acme.example)" for messages a person reads. */
static void who(const struct conv *c, char *out, size_t outlen)
{
    const struct rd_personio_employee *e = c->e;
    if (e->first_name || e->last_name)
        snprintf(out, outlen, "%s%s%s (%s)", e->first_name ? e->first_name : "",
                 e->first_name && e->last_name ? " " : "", e->last_name ? e->last_name : "",
                 e->email ? e->email : "no e-mail");
    else
        snprintf(out, outlen, "%s", e->email ? e->email : "Personio employee");
}

static void id_text(char *buf, size_t n, int64_t v)
{
    snprintf(buf, n, "%lld", (long long)v);
}

/* ---- what rosterd stored ---- */

static int load_links(struct conv *c, struct rd_http_error *err)
{
    int64_t *ids = rd_calloc(c->pres.count + 1, sizeof(int64_t));
    for (size_t i = 0; i < c->pres.count; i++)
        ids[i] = c->pres.items[i].id;
    struct rd_prefetch_rows lpf, cpf;
    PGresult *lres = NULL, *cres = NULL;
    if (!rd_prefetch_attendance(c->s, c->uid, c->from, c->to, ids, c->pres.count, &lpf, &cpf)) {
        char *arr = rd_db_int8_array(ids, c->pres.count);
        char cid[24], uid[24], dberr[256];
        id_text(cid, sizeof(cid), c->s->connection_id);
        id_text(uid, sizeof(uid), c->uid);
        const char *params[5] = {cid, uid, c->from, c->to, arr};
        lres = rd_db_exec(c->s->db,
                          "SELECT presence_id, attendance_id, date::text, start_time, end_time,"
                          " moco_user_id FROM attendance_links WHERE connection_id = $1::bigint"
                          " AND ((moco_user_id = $2::bigint AND date BETWEEN $3::date AND $4::date)"
                          "  OR presence_id = ANY($5::bigint[]))",
                          5, params, dberr, sizeof(dberr));
        const char *cparams[2] = {cid, arr};
        if (lres)
            cres = rd_db_exec(c->s->db,
                              "SELECT presence_id, date::text, start_time, end_time,"
                              " array_to_string(other_ids, ','), message FROM attendance_conflicts"
                              " WHERE connection_id = $1::bigint"
                              " AND presence_id = ANY($2::bigint[])",
                              2, cparams, dberr, sizeof(dberr));
        free(arr);
        if (!lres || !cres) {
            PQclear(lres);
            free(ids);
            rd_http_error_set(err, false, 0, "attendance links: %s", dberr);
            return -1;
        }
    }
    free(ids);
    const PGresult *res = lres ? lres : lpf.res;
    c->nlinks = lres ? (size_t)PQntuples(lres) : lpf.n;
    c->links = rd_calloc(c->nlinks + 1, sizeof(*c->links));
    for (size_t k = 0; k < c->nlinks; k++) {
        int i = lres ? (int)k : lpf.rows[k];
        struct alink *l = &c->links[k];
        l->presence_id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        l->attendance_id = strtoll(PQgetvalue(res, i, 1), NULL, 10);
        snprintf(l->date, sizeof(l->date), "%s", PQgetvalue(res, i, 2));
        snprintf(l->start, sizeof(l->start), "%s", PQgetvalue(res, i, 3));
        snprintf(l->end, sizeof(l->end), "%s", PQgetvalue(res, i, 4));
        l->owner = strtoll(PQgetvalue(res, i, 5), NULL, 10);
    }
    res = cres ? cres : cpf.res;
    c->nconf = cres ? (size_t)PQntuples(cres) : cpf.n;
    c->conf = rd_calloc(c->nconf + 1, sizeof(*c->conf));
    for (size_t n = 0; n < c->nconf; n++) {
        int i = cres ? (int)n : cpf.rows[n];
        struct aconflict *k = &c->conf[n];
        k->presence_id = strtoll(PQgetvalue(res, i, 0), NULL, 10);
        snprintf(k->date, sizeof(k->date), "%s", PQgetvalue(res, i, 1));
        snprintf(k->start, sizeof(k->start), "%s", PQgetvalue(res, i, 2));
        snprintf(k->end, sizeof(k->end), "%s", PQgetvalue(res, i, 3));
        const char *o = PQgetvalue(res, i, 4);
        k->others = rd_calloc(strlen(o) / 2 + 2, sizeof(int64_t));
        for (char *end = NULL; *o; o = *end ? end + 1 : end) {
            k->others[k->nothers++] = strtoll(o, &end, 10);
            if (end == o)
                break;
        }
        k->message = rd_strdup(PQgetvalue(res, i, 5));
    }
    PQclear(lres);
    PQclear(cres);
    rd_prefetch_rows_free(&lpf);
    rd_prefetch_rows_free(&cpf);
    return 0;
}

static void conv_free(struct conv *c)
{
    free(c->links);
    for (size_t i = 0; i < c->nconf; i++) {
        free(c->conf[i].others);
        free(c->conf[i].message);
    }
    free(c->conf);
}

static struct alink *link_of(struct conv *c, int64_t presence_id)
{
    for (size_t i = 0; i < c->nlinks; i++)
        if (c->links[i].presence_id == presence_id)
            return &c->links[i];
    return NULL;
}

static bool attendance_linked(const struct conv *c, int64_t attendance_id)
{
    for (size_t i = 0; i < c->nlinks; i++)
        if (c->links[i].attendance_id == attendance_id)
            return true;
    return false;
}

static struct aconflict *conflict_of(struct conv *c, int64_t presence_id)
{
    for (size_t i = 0; i < c->nconf; i++)
        if (c->conf[i].presence_id == presence_id)
            return &c->conf[i];
    return NULL;
}

static const struct rd_personio_attendance *attendance_of(const struct conv *c, int64_t id)
{
    for (size_t i = 0; i < c->atts.count; i++)
        if (c->atts.items[i].id == id)
            return &c->atts.items[i];
    return NULL;
}

static bool presence_in_view(const struct conv *c, int64_t id)
{
    for (size_t i = 0; i < c->pres.count; i++)
        if (c->pres.items[i].id == id)
            return true;
    return false;
}

/* A write to a presence's link or conflict: what a run's chunk read of it no longer holds. */
static void links_changed(struct conv *c, int64_t presence_id)
{
    rd_prefetch_presence_written(c->s, presence_id);
}

/* A database statement with the link's parameters; a person not yet in people is remembered. */
static int link_sql(struct conv *c, const char *sql, const struct rd_moco_presence *p,
                    int64_t attendance_id, struct rd_http_error *err)
{
    links_changed(c, p->id);
    char cid[24], pid[24], aid[24], emp[24], uid[24], dberr[256];
    id_text(cid, sizeof(cid), c->s->connection_id);
    id_text(pid, sizeof(pid), p->id);
    id_text(aid, sizeof(aid), attendance_id);
    id_text(emp, sizeof(emp), c->e->id);
    id_text(uid, sizeof(uid), c->uid);
    const char *params[8] = {cid, pid, aid, emp, uid, p->date, p->from, p->to};
    for (int round = 0; round < 2; round++) {
        PGresult *res = PQexecParams(c->s->db, sql, 8, NULL, params, NULL, NULL, 0);
        ExecStatusType st = PQresultStatus(res);
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        bool fk = state && strcmp(state, "23503") == 0;
        if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
            rd_db_error(c->s->db, res, dberr, sizeof(dberr));
        PQclear(res);
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
            return 0;
        if (!fk || round > 0 || rd_identity_remember(c->s, c->e, dberr, sizeof(dberr)) != 0)
            break;
    }
    rd_http_error_set(err, false, 0, "attendance link of presence %s: %s", pid, dberr);
    return -1;
}

static int save_link(struct conv *c, const struct rd_moco_presence *p, int64_t attendance_id,
                     struct rd_http_error *err)
{
    return link_sql(c,
                    "WITH d AS (DELETE FROM attendance_conflicts WHERE connection_id = $1::bigint"
                    "  AND presence_id = $2::bigint)"
                    " INSERT INTO attendance_links (connection_id, presence_id, attendance_id,"
                    "  personio_id, moco_user_id, date, start_time, end_time)"
                    " VALUES ($1::bigint, $2::bigint, $3::bigint, $4::bigint, $5::bigint,"
                    "  $6::date, $7, $8)"
                    " ON CONFLICT (connection_id, presence_id) DO UPDATE SET"
                    "  attendance_id = excluded.attendance_id, personio_id = excluded.personio_id,"
                    "  moco_user_id = excluded.moco_user_id, date = excluded.date,"
                    "  start_time = excluded.start_time, end_time = excluded.end_time,"
                    "  updated_at = now()",
                    p, attendance_id, err);
}

static int drop_link(struct conv *c, int64_t presence_id, struct rd_http_error *err)
{
    links_changed(c, presence_id);
    char cid[24], pid[24], dberr[256];
    id_text(cid, sizeof(cid), c->s->connection_id);
    id_text(pid, sizeof(pid), presence_id);
    const char *params[2] = {cid, pid};
    if (rd_db_run(c->s->db,
                  "WITH d AS (DELETE FROM attendance_conflicts WHERE connection_id = $1::bigint"
                  "  AND presence_id = $2::bigint)"
                  " DELETE FROM attendance_links WHERE connection_id = $1::bigint"
                  " AND presence_id = $2::bigint",
                  2, params, dberr, sizeof(dberr)) != 0) {
        rd_http_error_set(err, false, 0, "attendance link of presence %s: %s", pid, dberr);
        return -1;
    }
    return 0;
}

/* ---- conflicts ---- */

static bool overlaps(const char *s1, const char *e1, const char *s2, const char *e2)
{
    const char *a = e1[0] ? e1 : "24:00", *b = e2[0] ? e2 : "24:00";
    return strcmp(s1, b) < 0 && strcmp(s2, a) < 0;
}

/* The attendances on p's day (other than own) that overlap it, described for people. */
static size_t describe_overlaps(const struct conv *c, const struct rd_moco_presence *p, int64_t own,
                                int64_t *ids, size_t max, struct rd_buf *out)
{
    size_t n = 0;
    for (size_t i = 0; i < c->atts.count && n < max; i++) {
        const struct rd_personio_attendance *a = &c->atts.items[i];
        if (a->id == own || strcmp(a->date, p->date) != 0 ||
            !overlaps(p->from, p->to, a->start_time, a->end_time))
            continue;
        ids[n++] = a->id;
        rd_buf_printf(out, "%sPersonio attendance %lld (%s %s-%s, %s)", n > 1 ? " and " : "",
                      (long long)a->id, a->date, a->start_time,
                      a->end_time[0] ? a->end_time : "open",
                      attendance_linked(c, a->id) ? "rosterd's own for another MOCO presence"
                                                  : "not made by rosterd");
    }
    if (n == 0)
        rd_buf_puts(out, "another Personio attendance on that day");
    return n;
}

/* A conflict found before and still standing: same presence, an overlapping attendance still there.
 */
static const struct aconflict *standing_conflict(struct conv *c, const struct rd_moco_presence *p)
{
    const struct aconflict *k = conflict_of(c, p->id);
    if (!k || strcmp(k->date, p->date) != 0 || strcmp(k->start, p->from) != 0 ||
        strcmp(k->end, p->to) != 0)
        return NULL;
    for (size_t i = 0; i < k->nothers; i++) {
        const struct rd_personio_attendance *a = attendance_of(c, k->others[i]);
        if (a && strcmp(a->date, p->date) == 0 &&
            overlaps(p->from, p->to, a->start_time, a->end_time))
            return k;
    }
    return NULL;
}

static void keep_perm(struct conv *c, const char *msg)
{
    if (c->have_perm)
        return;
    c->have_perm = true;
    rd_http_error_set(&c->perm, true, 400, "%s", msg);
}

/* Personio refused p as overlapping: a conflict finding naming both sides, stored once. */
static int overlap_refused(struct conv *c, const struct rd_moco_presence *p, int64_t own,
                           const char *upstream, struct rd_http_error *err)
{
    int64_t ids[8];
    struct rd_buf other = {0};
    size_t n = describe_overlaps(c, p, own, ids, 8, &other);
    const char *said = strstr(upstream, "HTTP 400: "); /* Personio's own words */
    upstream = said ? said + 10 : upstream;
    char name[200];
    who(c, name, sizeof(name));
    struct rd_buf msg = {0};
    rd_buf_printf(&msg,
                  "MOCO presence %lld of %s (%s %s-%s) overlaps %s; Personio refused it (%s). "
                  "Nothing was pushed for this presence: correct the hours in MOCO or remove the "
                  "other attendance in Personio, then replay",
                  (long long)p->id, name, p->date, p->from, p->to, other.data, upstream);
    rd_sync_finding(c->s, "conflict", c->e->email, NULL, RD_RESULT_NONE, "%s", msg.data);
    keep_perm(c, msg.data);
    int rc = 0;
    if (!c->s->dry_run) {
        links_changed(c, p->id);
        char *arr = rd_db_int8_array(ids, n);
        char cid[24], pid[24], emp[24], uid[24], dberr[256];
        id_text(cid, sizeof(cid), c->s->connection_id);
        id_text(pid, sizeof(pid), p->id);
        id_text(emp, sizeof(emp), c->e->id);
        id_text(uid, sizeof(uid), c->uid);
        const char *params[9] = {cid, pid, emp, uid, p->date, p->from, p->to, arr, msg.data};
        rc = rd_db_run(
            c->s->db,
            "INSERT INTO attendance_conflicts (connection_id, presence_id, personio_id,"
            " moco_user_id, date, start_time, end_time, other_ids, message)"
            " VALUES ($1::bigint, $2::bigint, $3::bigint, $4::bigint, $5::date, $6, $7,"
            "  $8::bigint[], $9)"
            " ON CONFLICT (connection_id, presence_id) DO UPDATE SET date = excluded.date,"
            "  start_time = excluded.start_time, end_time = excluded.end_time,"
            "  other_ids = excluded.other_ids, message = excluded.message, at = now()",
            9, params, dberr, sizeof(dberr));
        if (rc != 0)
            rd_http_error_set(err, false, 0, "attendance conflict of presence %s: %s", pid, dberr);
        free(arr);
    }
    rd_buf_free(&other);
    rd_buf_free(&msg);
    return rc;
}

/* ---- upstream writes ---- */

static void attendance_for(const struct conv *c, const struct rd_moco_presence *p, char *comment,
                           size_t clen, struct rd_personio_attendance *a)
{
    memset(a, 0, sizeof(*a));
    rd_attendance_comment(p->id, comment, clen);
    a->employee_id = c->e->id;
    snprintf(a->date, sizeof(a->date), "%s", p->date);
    snprintf(a->start_time, sizeof(a->start_time), "%s", p->from);
    snprintf(a->end_time, sizeof(a->end_time), "%s", p->to);
    a->break_minutes = 0;
    a->comment = comment;
}

static bool same_attendance(const struct rd_personio_attendance *have,
                            const struct rd_personio_attendance *want)
{
    return strcmp(have->date, want->date) == 0 && strcmp(have->start_time, want->start_time) == 0 &&
           strcmp(have->end_time, want->end_time) == 0 && have->break_minutes == 0 &&
           have->comment && strcmp(have->comment, want->comment) == 0;
}

/* A failed write: 4xx is this presence's problem (recorded, the rest goes on); else retry. */
static int write_failed(struct conv *c, const struct rd_moco_presence *p, const char *what,
                        struct rd_http_error *err)
{
    if (!err->permanent)
        return -1;
    rd_sync_finding(c->s, "error", c->e->email, what, RD_RESULT_FAILED,
                    "MOCO presence %lld (%s %s-%s): %s", (long long)p->id, p->date, p->from, p->to,
                    err->msg);
    keep_perm(c, err->msg);
    return 0;
}

static int create(struct conv *c, const struct rd_moco_presence *p, const char *why,
                  struct rd_http_error *err)
{
    if (standing_conflict(c, p)) {
        keep_perm(c, conflict_of(c, p->id)->message); /* known: no second POST, no second finding */
        return 0;
    }
    char comment[160];
    struct rd_personio_attendance a;
    attendance_for(c, p, comment, sizeof(comment), &a);
    if (c->s->dry_run) {
        int64_t ids[8];
        struct rd_buf other = {0};
        if (describe_overlaps(c, p, 0, ids, 8, &other) > 0)
            rd_sync_finding(c->s, "conflict", c->e->email, NULL, RD_RESULT_NONE,
                            "MOCO presence %lld (%s %s-%s) would overlap %s", (long long)p->id,
                            p->date, p->from, p->to, other.data);
        else
            rd_sync_finding(c->s, "attendance_pushed", c->e->email,
                            "create the attendance in Personio (approved)", RD_RESULT_PLANNED,
                            "%s %s-%s from MOCO presence %lld%s", p->date, p->from, p->to,
                            (long long)p->id, why);
        rd_buf_free(&other);
        return 0;
    }
    struct rd_personio *per = rd_sync_personio(c->s, err);
    int64_t id = 0;
    bool overlap = false;
    if (!per)
        return -1;
    c->wrote = true;
    if (rd_personio_create_attendance(per, &a, true, rd_sync_audit(c->s), c->s->deadline, &id,
                                      &overlap, err) != 0)
        return overlap ? overlap_refused(c, p, 0, err->msg, err)
                       : write_failed(c, p, "create the attendance in Personio", err);
    if (save_link(c, p, id, err) != 0)
        return -1;
    rd_sync_finding(c->s, "attendance_pushed", c->e->email, "created in Personio (approved)",
                    RD_RESULT_DONE,
                    "%s %s-%s from MOCO presence %lld is Personio attendance %lld%s", p->date,
                    p->from, p->to, (long long)p->id, (long long)id, why);
    return 0;
}

/* The presence's own attendance differs (or moved to a day outside the window): PATCH it. */
static int update(struct conv *c, const struct rd_moco_presence *p, const struct alink *l,
                  const struct rd_personio_attendance *have, struct rd_http_error *err)
{
    char comment[160];
    struct rd_personio_attendance a;
    attendance_for(c, p, comment, sizeof(comment), &a);
    a.id = l->attendance_id;
    if (have && same_attendance(have, &a)) {
        if (strcmp(l->date, p->date) != 0 || strcmp(l->start, p->from) != 0 ||
            strcmp(l->end, p->to) != 0)
            return c->s->dry_run ? 0 : save_link(c, p, l->attendance_id, err);
        return 0;
    }
    if (standing_conflict(c, p)) {
        keep_perm(c, conflict_of(c, p->id)->message);
        return 0;
    }
    const char *action = "updated in Personio";
    if (!c->s->dry_run) {
        struct rd_personio *per = rd_sync_personio(c->s, err);
        bool overlap = false;
        if (!per)
            return -1;
        c->wrote = true;
        if (rd_personio_update_attendance(per, &a, true, rd_sync_audit(c->s), c->s->deadline,
                                          &overlap, err) != 0) {
            if (err->http_status == 404) /* deleted in Personio meanwhile: push it afresh */
                return create(c, p, " (the earlier one was deleted in Personio)", err);
            return overlap ? overlap_refused(c, p, l->attendance_id, err->msg, err)
                           : write_failed(c, p, "update the attendance in Personio", err);
        }
        if (save_link(c, p, l->attendance_id, err) != 0)
            return -1;
    }
    rd_sync_finding(
        c->s, "attendance_pushed", c->e->email,
        c->s->dry_run ? "update the attendance in Personio" : action,
        c->s->dry_run ? RD_RESULT_PLANNED : RD_RESULT_DONE,
        "MOCO presence %lld changed to %s %s-%s (was %s %s-%s): Personio attendance %lld",
        (long long)p->id, p->date, p->from, p->to, l->date, l->start, l->end,
        (long long)l->attendance_id);
    return 0;
}

/* The presence is gone (or now before start_date): delete rosterd's attendance for it. */
static int remove_attendance(struct conv *c, const struct alink *l, const char *why, bool *removed,
                             struct rd_http_error *err)
{
    bool gone = false;
    if (removed)
        *removed = false;
    if (!c->s->dry_run) {
        struct rd_personio *per = rd_sync_personio(c->s, err);
        if (!per)
            return -1;
        c->wrote = true;
        if (rd_personio_delete_attendance(per, l->attendance_id, true, rd_sync_audit(c->s),
                                          c->s->deadline, &gone, err) != 0) {
            if (!err->permanent)
                return -1;
            rd_sync_finding(c->s, "error", c->e->email, "delete the attendance in Personio",
                            RD_RESULT_FAILED, "Personio attendance %lld of MOCO presence %lld: %s",
                            (long long)l->attendance_id, (long long)l->presence_id, err->msg);
            keep_perm(c, err->msg);
            return 0;
        }
        if (drop_link(c, l->presence_id, err) != 0)
            return -1;
    }
    if (removed)
        *removed = true;
    if (!gone) /* already deleted in Personio: nothing changed there, nothing to report */
        rd_sync_finding(c->s, "attendance_removed", c->e->email,
                        c->s->dry_run ? "delete the attendance in Personio" : "deleted in Personio",
                        c->s->dry_run ? RD_RESULT_PLANNED : RD_RESULT_DONE,
                        "MOCO presence %lld (%s %s-%s) %s: Personio attendance %lld",
                        (long long)l->presence_id, l->date, l->start, l->end, why,
                        (long long)l->attendance_id);
    return 0;
}

/* ---- the convergence ---- */

/* A link whose presence is not in the window: deleted, or moved to another day. */
static int settle_missing(struct conv *c, const struct alink *l, struct rd_http_error *err)
{
    struct rd_moco *m = rd_sync_moco(c->s, err);
    struct rd_moco_presence p;
    bool found = false;
    if (!m || rd_moco_get_presence(m, l->presence_id, c->s->deadline, &found, &p, err) != 0)
        return -1;
    if (!found || p.user_id != c->uid)
        return remove_attendance(c, l, "was deleted in MOCO", NULL, err);
    if (c->start_date && strcmp(p.date, c->start_date) < 0)
        return remove_attendance(c, l, "moved before the connection's start_date", NULL, err);
    if (!p.to[0])
        return 0; /* open again: waits until it is closed */
    return update(c, &p, l, NULL, err);
}

/* A closed presence of the window that rosterd pushed before. */
static int converge_linked(struct conv *c, const struct rd_moco_presence *p, const struct alink *l,
                           struct rd_http_error *err)
{
    const struct rd_personio_attendance *have = attendance_of(c, l->attendance_id);
    bool read_old_day = strcmp(l->date, c->from) >= 0 && strcmp(l->date, c->to) <= 0;
    if (!have && read_old_day && !c->refreshed) {
        /* a run's preload may predate a write of another job: ask Personio again first */
        rd_timesync_attendances_written(c->s, c->e->id);
        if (rd_timesync_attendances(c->s, c->e->id, c->from, c->to, &c->atts, err) != 0)
            return -1;
        c->refreshed = true;
        have = attendance_of(c, l->attendance_id);
    }
    if (!have && read_old_day) /* its day was read and it is not there: deleted in Personio */
        return create(c, p, " (the earlier one was deleted in Personio)", err);
    return update(c, p, l, have, err);
}

/* A closed presence with no link: adopt rosterd's own attendance of an interrupted run, or create.
 */
static int converge_new(struct conv *c, const struct rd_moco_presence *p, struct rd_http_error *err)
{
    char comment[160];
    rd_attendance_comment(p->id, comment, sizeof(comment));
    for (size_t i = 0; i < c->atts.count; i++) {
        const struct rd_personio_attendance *a = &c->atts.items[i];
        if (strcmp(a->date, p->date) == 0 && a->comment && strcmp(a->comment, comment) == 0 &&
            !attendance_linked(c, a->id)) {
            struct alink l = {.presence_id = p->id, .attendance_id = a->id};
            snprintf(l.date, sizeof(l.date), "%s", a->date);
            snprintf(l.start, sizeof(l.start), "%s", a->start_time);
            snprintf(l.end, sizeof(l.end), "%s", a->end_time);
            if (!c->s->dry_run && save_link(c, p, a->id, err) != 0)
                return -1;
            return update(c, p, &l, a, err);
        }
    }
    return create(c, p, "", err);
}

/*
 * A presence pushed for another MOCO user that is this user's now: the earlier owner's
 * attendance goes first (nobody is paid twice for the same hours), then this person's
 * is created. The earlier owner's own convergence no longer sees the link.
 */
static int take_over(struct conv *c, const struct rd_moco_presence *p, const struct alink *l,
                     struct rd_http_error *err)
{
    char why[96];
    bool removed = false;
    snprintf(why, sizeof(why), "moved from MOCO user %lld to this person", (long long)l->owner);
    if (remove_attendance(c, l, why, &removed, err) != 0)
        return -1;
    return removed ? converge_new(c, p, err) : 0; /* a refused delete is recorded: no copy */
}

static int converge_days(struct conv *c, struct rd_http_error *err)
{
    /* removals and moves first, so a new presence never meets the old copy of a moved one */
    for (size_t i = 0; i < c->nlinks; i++)
        if (!presence_in_view(c, c->links[i].presence_id) &&
            settle_missing(c, &c->links[i], err) != 0)
            return -1;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < c->pres.count; i++) {
            const struct rd_moco_presence *p = &c->pres.items[i];
            if (p->user_id != c->uid || !p->to[0] || !p->from[0])
                continue; /* an open presence waits until it is closed */
            const struct alink *l = link_of(c, p->id);
            if (pass == 0 && l && l->owner != c->uid && take_over(c, p, l, err) != 0)
                return -1;
            if (pass == 0 && l && l->owner == c->uid && converge_linked(c, p, l, err) != 0)
                return -1;
            if (pass == 1 && !l && converge_new(c, p, err) != 0)
                return -1;
        }
    return 0;
}

int rd_attendance_converge(struct rd_sync *s, const struct rd_personio_employee *e,
                           int64_t moco_user_id, const char *from, const char *to,
                           struct rd_http_error *err)
{
    if (!rd_sync_policy_bool(s, "attendance_push", true) || moco_user_id <= 0 || !e)
        return 0;
    struct conv c = {.s = s, .e = e, .uid = moco_user_id, .start_date = rd_sync_start_date(s)};
    if (!rd_day_valid(from) || !rd_day_valid(to)) {
        rd_http_error_set(err, true, 0, "attendances: bad window %s..%s", from, to);
        return -1;
    }
    snprintf(c.from, sizeof(c.from), "%s", from);
    snprintf(c.to, sizeof(c.to), "%s", to);
    if (c.start_date && strcmp(c.from, c.start_date) < 0)
        snprintf(c.from, sizeof(c.from), "%s", c.start_date); /* never before start_date */
    if (strcmp(c.from, c.to) > 0)
        return 0;
    if (!s->dry_run && rd_timesync_lock(s, "attendance", moco_user_id, true, err) != 0)
        return -1;
    int rc = -1;
    if (rd_timesync_presences(s, moco_user_id, c.from, c.to, &c.pres, err) == 0 &&
        rd_timesync_attendances(s, e->id, c.from, c.to, &c.atts, err) == 0 &&
        load_links(&c, err) == 0)
        rc = converge_days(&c, err);
    if (c.wrote)
        rd_timesync_attendances_written(s, e->id);
    struct rd_http_error uerr = {0};
    if (!s->dry_run && rd_timesync_lock(s, "attendance", moco_user_id, false, &uerr) != 0)
        rd_log_warn("%s", uerr.msg); /* the session ends with the worker; the lock with it */
    if (rc == 0 && c.have_perm) {
        *err = c.perm;
        rc = -1;
    }
    conv_free(&c);
    return rc;
}

/* ---- the moco.presence handler ---- */

/* The stored link of a presence: whose it was and on which day (a delete may carry only the id). */
static int link_day(struct rd_sync *s, int64_t presence_id, int64_t *uid, char day[11],
                    struct rd_http_error *err)
{
    *uid = 0;
    day[0] = '\0';
    char cid[24], pid[24], dberr[256];
    id_text(cid, sizeof(cid), s->connection_id);
    id_text(pid, sizeof(pid), presence_id);
    const char *params[2] = {cid, pid};
    PGresult *res =
        rd_db_exec(s->db,
                   "SELECT moco_user_id, date::text FROM attendance_links"
                   " WHERE connection_id = $1::bigint AND presence_id = $2::bigint"
                   " UNION ALL SELECT moco_user_id, date::text FROM attendance_conflicts"
                   " WHERE connection_id = $1::bigint AND presence_id = $2::bigint",
                   2, params, dberr, sizeof(dberr));
    if (!res) {
        rd_http_error_set(err, false, 0, "attendance links: %s", dberr);
        return -1;
    }
    if (PQntuples(res) > 0) {
        *uid = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        snprintf(day, 11, "%s", PQgetvalue(res, 0, 1));
    }
    PQclear(res);
    return 0;
}

static int64_t json_id(struct json_object *v)
{
    if (v && json_object_is_type(v, json_type_string))
        return rd_timesync_id(json_object_get_string(v));
    return v && json_object_is_type(v, json_type_int) && json_object_get_int64(v) > 0
               ? json_object_get_int64(v)
               : 0;
}

/* Reads each event's presence: its user and day now, and the day rosterd last pushed it on. */
static int collect(struct rd_job_ctx *ctx, struct rd_sync *s, struct rd_timesync_wants *w,
                   size_t *unknown, struct rd_http_error *err)
{
    for (size_t i = 0; i < ctx->nevents; i++) {
        char *body = NULL;
        if (rd_job_event_body(ctx, i, &body, NULL) != 0) {
            rd_http_error_set(err, false, 0, "%s", ctx->err);
            return -1;
        }
        struct json_object *p = rd_json_parse_stored(body);
        free(body);
        int64_t pid = json_id(rd_json_get(p, "id"));
        int64_t uid = json_id(rd_json_get(rd_json_get(p, "user"), "id"));
        if (!uid)
            uid = json_id(rd_json_get(p, "user_id"));
        struct json_object *d = rd_json_get(p, "date");
        char day[11] = "";
        if (d && json_object_is_type(d, json_type_string))
            snprintf(day, sizeof(day), "%.10s", json_object_get_string(d));
        json_object_put(p);
        int64_t luid = 0;
        char lday[11] = "";
        if (pid && link_day(s, pid, &luid, lday, err) != 0)
            return -1;
        if (!uid)
            uid = luid;
        if (!uid)
            uid = rd_timesync_id(ctx->subject);
        rd_timesync_want(w, uid, day, day, pid);
        rd_timesync_want(w, luid, lday, lday, pid);
        if (!uid || (!rd_day_valid(day) && !rd_day_valid(lday)))
            (*unknown)++; /* e.g. a delete of a presence rosterd never pushed */
    }
    return 0;
}

struct quiet {
    char text[256]; /* why a job that changed nothing did nothing */
};

/* Converges one MOCO user's days (rd_timesync_person_fn). */
static int converge_user(struct rd_sync *s, struct rd_timesync_want *x, void *arg,
                         struct rd_http_error *err)
{
    char *quiet = ((struct quiet *)arg)->text;
    size_t qlen = sizeof(((struct quiet *)arg)->text);
    if (!rd_timesync_clip(s, x)) {
        snprintf(quiet, qlen,
                 "MOCO user %lld, %s: before the connection's start_date %s, "
                 "nothing pushed",
                 (long long)x->id, x->to, rd_sync_start_date(s));
        return 0;
    }
    const struct rd_personio_employee *e = NULL;
    if (rd_timesync_employee_for_moco(s, x->id, &e, err) != 0)
        return -1;
    if (!e) {
        snprintf(quiet, qlen, "MOCO user %lld matches no Personio employee: nothing pushed",
                 (long long)x->id);
        return 0;
    }
    if (rd_attendance_converge(s, e, x->id, x->from, x->to, err) != 0)
        return -1;
    struct rd_moco_presence_list v;
    if (rd_timesync_presences(s, x->id, x->from, x->to, &v, err) != 0)
        return -1;
    bool named = false;
    for (size_t i = 0; i < v.count && !named; i++) {
        named = v.items[i].id == x->hint;
        if (named && !v.items[i].to[0]) {
            snprintf(quiet, qlen,
                     "MOCO presence %lld of %s is still open: it is pushed once it "
                     "is closed",
                     (long long)x->hint, e->email ? e->email : "?");
            return 0;
        }
    }
    if (x->hint && !named)
        snprintf(quiet, qlen,
                 "MOCO has no presence %lld of %s on %s..%s (deleted since?): "
                 "nothing to push",
                 (long long)x->hint, e->email ? e->email : "?", x->from, x->to);
    else
        snprintf(quiet, qlen, "Personio's attendances of %s already match MOCO for %s..%s",
                 e->email ? e->email : "?", x->from, x->to);
    return 0;
}

static int presence_run(struct rd_job_ctx *ctx)
{
    struct rd_sync *s = rd_sync_open_job(ctx);
    if (!s)
        return -1;
    struct rd_http_error err = {0};
    struct rd_timesync_wants w = {0};
    size_t unknown = 0, failed = 0;
    struct quiet quiet = {""};
    int rc = 0;
    if (!rd_sync_policy_bool(s, "attendance_push", true)) {
        snprintf(ctx->note, sizeof(ctx->note), "attendance push is off (policy.attendance_push)");
        goto out;
    }
    rc = collect(ctx, s, &w, &unknown, &err);
    if (rc == 0 && ctx->nevents == 0 &&
        rd_timesync_id(ctx->subject)) { /* a job of no event: 30 days */
        char today[11], back[11];
        rc = rd_timesync_today(s, today, &err);
        rd_day_add(today, -30, back);
        rd_timesync_want(&w, rd_timesync_id(ctx->subject), back, today, 0);
    }
    if (rc == 0)
        rc = rd_timesync_each(s, &w, converge_user, &quiet, &failed, &err);
    if (rc != 0) {
        rd_sync_fail(ctx, &err);
        goto out;
    }
    if (w.count == 0 && unknown)
        snprintf(quiet.text, sizeof(quiet.text),
                 "%zu %s rosterd never pushed, and the delivery names no user and day: nothing "
                 "to do",
                 unknown, rd_timesync_plural((long)unknown, "presence", "presences"));
    rd_timesync_note(s, 0, quiet.text, ctx->note, sizeof(ctx->note));
out:
    rd_timesync_wants_free(&w);
    rd_sync_close(s);
    return rc;
}

/* ---- the hourly sweep ---- */

/* The presences changed after the watermark, as per-user windows (old days of moves included). */
static int changed_wants(struct rd_sync *s, const char *after, struct rd_timesync_wants *w,
                         size_t *changed, struct rd_http_error *err)
{
    struct rd_moco *m = rd_sync_moco(s, err);
    struct rd_moco_presence_list l;
    if (!m || rd_moco_list_presences_changed(m, after, s->deadline, &l, err) != 0)
        return -1;
    *changed = l.count;
    int64_t *ids = rd_calloc(l.count + 1, sizeof(int64_t));
    for (size_t i = 0; i < l.count; i++) {
        rd_timesync_want(w, l.items[i].user_id, l.items[i].date, l.items[i].date, 0);
        ids[i] = l.items[i].id;
    }
    char *arr = rd_db_int8_array(ids, l.count);
    free(ids);
    rd_moco_presence_list_free(&l);
    char cid[24], dberr[256];
    id_text(cid, sizeof(cid), s->connection_id);
    const char *params[2] = {cid, arr};
    PGresult *res =
        rd_db_exec(s->db,
                   "SELECT moco_user_id, date::text FROM attendance_links"
                   " WHERE connection_id = $1::bigint AND presence_id = ANY($2::bigint[])",
                   2, params, dberr, sizeof(dberr));
    free(arr);
    if (!res) {
        rd_http_error_set(err, false, 0, "attendance links: %s", dberr);
        return -1;
    }
    for (int i = 0; i < PQntuples(res); i++)
        rd_timesync_want(w, strtoll(PQgetvalue(res, i, 0), NULL, 10), PQgetvalue(res, i, 1),
                         PQgetvalue(res, i, 1), 0);
    PQclear(res);
    return 0;
}

/* Many people: one paged read of everyone's days beats one read each (rate limits). */
static int sweep_preload(struct rd_sync *s, struct rd_timesync_wants *w, struct rd_http_error *err)
{
    if (w->count < BULK_PEOPLE)
        return 0;
    rd_timesync_bulk(s);
    char from[11], to[11], cid[24], dberr[256];
    if (!rd_timesync_span(s, w, from, to))
        return 0;
    id_text(cid, sizeof(cid), s->connection_id);
    const char *params[1] = {cid};
    PGresult *res = rd_db_exec(s->db,
                               "SELECT count(*) FROM people WHERE connection_id = $1::bigint"
                               " AND moco_user_id IS NOT NULL",
                               1, params, dberr, sizeof(dberr));
    size_t population = res ? (size_t)strtoull(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    if (population < w->count)
        population = w->count;
    unsigned what = 0;
    if (rd_timesync_preload_pays(w->count, population, from, to, 2.0, 100))
        what |= RD_TIMESYNC_PRESENCES; /* about two presences a day each, 100 a page */
    if (rd_timesync_preload_pays(w->count, population, from, to, 2.0, 200))
        what |= RD_TIMESYNC_ATTENDANCES;
    return what ? rd_timesync_preload(s, what, from, to, err) : 0;
}

static int sweep_run(struct rd_job_ctx *ctx)
{
    struct rd_sync *s = rd_sync_open_job(ctx);
    if (!s)
        return -1;
    s->deadline = rd_http_now() + SWEEP_SECONDS;
    struct rd_http_error err = {0};
    struct rd_timesync_wants w = {0};
    char after[40] = "", next[40] = "", dberr[256];
    struct quiet quiet;
    size_t changed = 0, failed = 0;
    int rc = 0;
    if (!rd_sync_policy_bool(s, "attendance_push", true)) {
        snprintf(ctx->note, sizeof(ctx->note), "attendance push is off (policy.attendance_push)");
        goto out;
    }
    /* the next sweep starts 2 minutes before this one did: MOCO's clock may lag ours */
    PGresult *res =
        rd_db_exec(s->db,
                   "SELECT to_char((now() - interval '1 hour') AT TIME ZONE 'UTC',"
                   " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), to_char((now() - interval"
                   " '2 minutes') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
                   0, NULL, dberr, sizeof(dberr));
    if (!res) {
        rd_http_error_set(&err, false, 0, "sweep: %s", dberr);
        rc = -1;
    } else {
        snprintf(after, sizeof(after), "%s", PQgetvalue(res, 0, 0)); /* the first sweep: 1 hour */
        snprintf(next, sizeof(next), "%s", PQgetvalue(res, 0, 1));
        PQclear(res);
        char mark[40];
        rc = rd_timesync_watermark(s, "presences_after", mark, sizeof(mark), &err);
        if (rc == 0 && mark[0])
            snprintf(after, sizeof(after), "%s", mark);
    }
    if (rc == 0)
        rc = changed_wants(s, after, &w, &changed, &err);
    for (size_t i = 0; rc == 0 && i < w.count; i++)
        if (!rd_timesync_clip(s, &w.items[i]))
            w.items[i--] = w.items[--w.count];
    if (rc == 0)
        rc = sweep_preload(s, &w, &err);
    if (rc == 0 && rd_timesync_each(s, &w, converge_user, &quiet, &failed, &err) != 0 &&
        !err.permanent)
        rc = -1; /* one person's conflict stays theirs; upstream trouble retries the sweep */
    if (rc == 0)
        rc = rd_timesync_set_watermark(s, "presences_after", next, &err);
    if (rc != 0) {
        rd_sync_fail(ctx, &err);
        goto out;
    }
    snprintf(ctx->note, sizeof(ctx->note),
             "%zu %s changed since %s (%zu %s): %zu pushed, %zu removed, %zu %s, %zu failed",
             changed, rd_timesync_plural((long)changed, "presence", "presences"), after, w.count,
             rd_timesync_plural((long)w.count, "person", "people"),
             rd_timesync_count(s, "attendance_pushed"), rd_timesync_count(s, "attendance_removed"),
             rd_timesync_count(s, "conflict"),
             rd_timesync_plural((long)rd_timesync_count(s, "conflict"), "conflict", "conflicts"),
             failed);
out:
    rd_timesync_wants_free(&w);
    rd_sync_close(s);
    return rc;
}

static const struct rd_handler attendance_handlers[] = {
    {.kind = "moco.presence", .run = presence_run, .needs_connection = true},
    {.kind = "sweep.attendance", .run = sweep_run, .needs_connection = true},
};

const struct rd_capability rd_cap_attendance = {
    .name = "attendance",
    .handlers = attendance_handlers,
    .nhandlers = sizeof(attendance_handlers) / sizeof(attendance_handlers[0]),
};
