/*
 * Absence sync (include/rosterd/absence.h): approved Personio time-offs → MOCO
 * schedules, level-triggered. The personio.absence handler owns absence-period
 * webhooks: it finds the person (the event names a person, or an absence by its v1
 * or v2 id), converges their MOCO schedules and lets approver delegation (lifecycle)
 * converge too. The daily sweep.absence converges everyone whose time-offs changed
 * since the last sweep; the nightly run calls rd_absence_converge for everyone.
 */
#include "rosterd/absence.h"
#include "rosterd/approver.h"

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

#define SWEEP_SECONDS 1800.0
#define BULK_PEOPLE 4
/* A person's absences are converged from 30 days back to a year ahead. */
#define DAYS_BACK 30
#define DAYS_AHEAD 365

/* ---- the convergence ---- */

struct slink {
    int64_t schedule_id, time_off_id;
    char date[11];
};

/* What one day should be: time-off t's entry with these halves and code. */
struct want_day {
    char date[11];
    const struct rd_personio_time_off *t;
    bool am, pm;
    int code;
};

/* What was done to one time-off, for one finding per absence and kind of change. */
struct tally {
    int64_t time_off_id;
    const struct rd_personio_time_off *t; /* NULL when Personio no longer has it */
    struct rd_buf created, updated, removed, kept, replaced;
    size_t ncreated, nupdated, nremoved, nkept;
};

struct aconv {
    struct rd_sync *s;
    const struct rd_personio_employee *e;
    int64_t uid;
    char from[11], to[11];
    const struct rd_personio_time_off_list *toffs; /* borrowed from the sync cache */
    struct rd_moco_schedule_list sched;            /* view */
    struct slink *links;
    size_t nlinks;
    struct want_day *days;
    size_t ndays;
    struct tally *tallies;
    size_t ntallies;
    bool wrote;
    bool refreshed; /* sched was read again after the cached copy */
    bool have_perm;
    struct rd_http_error perm;
};

static void id_text(char *buf, size_t n, int64_t v)
{
    snprintf(buf, n, "%lld", (long long)v);
}

void rd_absence_comment(const struct rd_personio_time_off *t, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s: Personio absence %lld, mirrored by rosterd [personio:%lld]",
             t->type_name ? t->type_name : "Absence", (long long)t->id, (long long)t->id);
}

unsigned rd_absence_work_days(const struct rd_personio_employee *e)
{
    return e->work_days ? e->work_days : 0x1f; /* Monday to Friday */
}

static struct tally *tally_of(struct aconv *c, int64_t time_off_id)
{
    for (size_t i = 0; i < c->ntallies; i++)
        if (c->tallies[i].time_off_id == time_off_id)
            return &c->tallies[i];
    c->tallies = rd_realloc(c->tallies, (c->ntallies + 1) * sizeof(*c->tallies));
    struct tally *t = &c->tallies[c->ntallies++];
    memset(t, 0, sizeof(*t));
    t->time_off_id = time_off_id;
    for (size_t i = 0; c->toffs && i < c->toffs->count; i++)
        if (c->toffs->items[i].id == time_off_id)
            t->t = &c->toffs->items[i];
    return t;
}

static void day_list(struct rd_buf *b, size_t *n, const char *date, bool am, bool pm)
{
    rd_buf_printf(b, "%s%s%s", (*n)++ ? ", " : "", date, am && pm ? "" : am ? " am" : " pm");
}

/* The days [from, to] of approved time-offs that fall on e's working days, by date. */
static void build_days(struct aconv *c)
{
    unsigned work = rd_absence_work_days(c->e);
    for (size_t i = 0; i < c->toffs->count; i++) {
        const struct rd_personio_time_off *t = &c->toffs->items[i];
        if (t->employee_id != c->e->id || !t->status || strcmp(t->status, "approved") != 0 ||
            !rd_day_valid(t->start_date) || !rd_day_valid(t->end_date))
            continue;
        char d[11];
        snprintf(d, sizeof(d), "%s", strcmp(t->start_date, c->from) > 0 ? t->start_date : c->from);
        for (; strcmp(d, t->end_date) <= 0 && strcmp(d, c->to) <= 0; rd_day_add(d, 1, d)) {
            if (!(work & (1u << rd_day_weekday(d))))
                continue; /* not a working day of this person */
            bool taken = false;
            for (size_t k = 0; k < c->ndays && !taken; k++)
                taken = strcmp(c->days[k].date, d) == 0; /* two absences one day: the first */
            if (taken)
                continue;
            c->days = rd_realloc(c->days, (c->ndays + 1) * sizeof(*c->days));
            struct want_day *w = &c->days[c->ndays++];
            memcpy(w->date, d, 11);
            w->t = t;
            /* half_day_start: the absence starts at noon; half_day_end: it ends at noon */
            w->am = !(t->half_day_start && strcmp(d, t->start_date) == 0);
            w->pm = !(t->half_day_end && strcmp(d, t->end_date) == 0);
            if (!w->am && !w->pm)
                w->pm = true; /* one day flagged at both ends: a half day, the afternoon */
            w->code = rd_sync_absence_code(c->s, t->type_name);
        }
    }
}

static const struct want_day *want_on(const struct aconv *c, const char *date)
{
    for (size_t i = 0; i < c->ndays; i++)
        if (strcmp(c->days[i].date, date) == 0)
            return &c->days[i];
    return NULL;
}

static const struct rd_moco_schedule *schedule_of(const struct aconv *c, int64_t id)
{
    for (size_t i = 0; i < c->sched.count; i++)
        if (c->sched.items[i].id == id)
            return &c->sched.items[i];
    return NULL;
}

static struct slink *link_on(struct aconv *c, const char *date)
{
    for (size_t i = 0; i < c->nlinks; i++)
        if (c->links[i].schedule_id && strcmp(c->links[i].date, date) == 0)
            return &c->links[i];
    return NULL;
}

static bool schedule_linked(const struct aconv *c, int64_t id)
{
    for (size_t i = 0; i < c->nlinks; i++)
        if (c->links[i].schedule_id == id)
            return true;
    return false;
}

static int load_links(struct aconv *c, struct rd_http_error *err)
{
    char cid[24], uid[24], dberr[256];
    id_text(cid, sizeof(cid), c->s->connection_id);
    id_text(uid, sizeof(uid), c->uid);
    const char *params[4] = {cid, uid, c->from, c->to};
    struct rd_prefetch_result r;
    if (rd_prefetch_or_exec(c->s, RD_PREFETCH_SCHEDULE_LINKS, c->uid, c->from, c->to,
                            "SELECT schedule_id, time_off_id, date::text FROM schedule_links"
                            " WHERE connection_id = $1::bigint AND moco_user_id = $2::bigint"
                            " AND date BETWEEN $3::date AND $4::date ORDER BY date",
                            4, params, &r, dberr, sizeof(dberr)) != 0) {
        rd_http_error_set(err, false, 0, "schedule links: %s", dberr);
        return -1;
    }
    c->nlinks = r.n;
    c->links = rd_calloc(c->nlinks + 1, sizeof(*c->links));
    for (size_t k = 0; k < c->nlinks; k++) {
        int i = rd_prefetch_row(&r, k);
        c->links[k].schedule_id = strtoll(PQgetvalue(r.res, i, 0), NULL, 10);
        c->links[k].time_off_id = strtoll(PQgetvalue(r.res, i, 1), NULL, 10);
        snprintf(c->links[k].date, sizeof(c->links[k].date), "%s", PQgetvalue(r.res, i, 2));
    }
    rd_prefetch_result_clear(&r);
    return 0;
}

/* Records schedule id as rosterd's entry for w (a person not yet in people is remembered). */
static int save_link(struct aconv *c, int64_t schedule_id, const struct want_day *w,
                     struct rd_http_error *err)
{
    char cid[24], sid[24], tid[24], emp[24], uid[24], code[8], dberr[256];
    id_text(cid, sizeof(cid), c->s->connection_id);
    id_text(sid, sizeof(sid), schedule_id);
    id_text(tid, sizeof(tid), w->t->id);
    id_text(emp, sizeof(emp), c->e->id);
    id_text(uid, sizeof(uid), c->uid);
    snprintf(code, sizeof(code), "%d", w->code);
    const char *params[10] = {
        cid, sid, tid, w->t->id_v2, emp, uid, w->date, w->am ? "t" : "f", w->pm ? "t" : "f", code};
    /* MOCO keeps one entry a day: an older link of that day is stale */
    const char *stale[4] = {cid, uid, w->date, sid};
    if (rd_db_run(
            c->s->db,
            "DELETE FROM schedule_links WHERE connection_id = $1::bigint"
            " AND moco_user_id = $2::bigint AND date = $3::date AND schedule_id <> $4::bigint",
            4, stale, dberr, sizeof(dberr)) != 0)
        goto fail;
    for (int round = 0; round < 2; round++) {
        PGresult *res = PQexecParams(
            c->s->db,
            "INSERT INTO schedule_links (connection_id, schedule_id, time_off_id, time_off_id_v2,"
            " personio_id, moco_user_id, date, am, pm, absence_code)"
            " VALUES ($1::bigint, $2::bigint, $3::bigint, $4, $5::bigint, $6::bigint, $7::date,"
            "  $8::boolean, $9::boolean, $10::int)"
            " ON CONFLICT (connection_id, schedule_id) DO UPDATE SET"
            "  time_off_id = excluded.time_off_id, time_off_id_v2 = excluded.time_off_id_v2,"
            "  am = excluded.am, pm = excluded.pm, absence_code = excluded.absence_code,"
            "  updated_at = now()",
            10, NULL, params, NULL, NULL, 0);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        bool fk = state && strcmp(state, "23503") == 0;
        if (!ok)
            rd_db_error(c->s->db, res, dberr, sizeof(dberr));
        PQclear(res);
        if (ok)
            return 0;
        if (!fk || round > 0 || rd_identity_remember(c->s, c->e, dberr, sizeof(dberr)) != 0)
            break;
    }
fail:
    rd_http_error_set(err, false, 0, "schedule link of %s: %s", w->date, dberr);
    return -1;
}

static int drop_link(struct aconv *c, struct slink *l, struct rd_http_error *err)
{
    char cid[24], sid[24], dberr[256];
    id_text(cid, sizeof(cid), c->s->connection_id);
    id_text(sid, sizeof(sid), l->schedule_id);
    const char *params[2] = {cid, sid};
    if (rd_db_run(c->s->db,
                  "DELETE FROM schedule_links WHERE connection_id = $1::bigint"
                  " AND schedule_id = $2::bigint",
                  2, params, dberr, sizeof(dberr)) != 0) {
        rd_http_error_set(err, false, 0, "schedule link %s: %s", sid, dberr);
        return -1;
    }
    l->schedule_id = 0;
    return 0;
}

static void keep_perm(struct aconv *c, const struct rd_http_error *err)
{
    if (!c->have_perm) {
        c->have_perm = true;
        c->perm = *err;
    }
}

/* A refused MOCO write: 4xx is recorded and the rest goes on; anything else retries. */
static int write_failed(struct aconv *c, const char *date, const char *what,
                        struct rd_http_error *err)
{
    if (!err->permanent)
        return -1;
    if (err->http_status == 422) { /* someone made an entry since we read: read again */
        err->permanent = false;
        return -1;
    }
    rd_sync_finding(c->s, "error", c->e->email, what, RD_RESULT_FAILED,
                    "MOCO schedule of MOCO user %lld on %s: %s", (long long)c->uid, date, err->msg);
    keep_perm(c, err);
    return 0;
}

static void schedule_for(const struct aconv *c, const struct want_day *w, char *comment,
                         size_t clen, struct rd_moco_schedule *out)
{
    memset(out, 0, sizeof(*out));
    rd_absence_comment(w->t, comment, clen);
    snprintf(out->date, sizeof(out->date), "%s", w->date);
    out->am = w->am;
    out->pm = w->pm;
    out->absence_code = w->code;
    out->user_id = c->uid;
    out->comment = comment;
}

static int create(struct aconv *c, const struct want_day *w, struct rd_http_error *err)
{
    char comment[200];
    struct rd_moco_schedule sc;
    schedule_for(c, w, comment, sizeof(comment), &sc);
    struct tally *t = tally_of(c, w->t->id);
    if (!c->s->dry_run) {
        struct rd_moco *m = rd_sync_moco(c->s, err);
        int64_t id = 0;
        if (!m)
            return -1;
        c->wrote = true;
        if (rd_moco_create_schedule(m, &sc, rd_sync_audit(c->s), c->s->deadline, &id, err) != 0)
            return write_failed(c, w->date, "create the MOCO schedule", err);
        if (save_link(c, id, w, err) != 0)
            return -1;
    }
    day_list(&t->created, &t->ncreated, w->date, w->am, w->pm);
    return 0;
}

/* rosterd's entry of the day differs from what Personio says now: PUT it right. */
static int correct(struct aconv *c, struct slink *l, const struct rd_moco_schedule *have,
                   const struct want_day *w, struct rd_http_error *err)
{
    char comment[200];
    struct rd_moco_schedule sc;
    schedule_for(c, w, comment, sizeof(comment), &sc);
    sc.id = l->schedule_id;
    if (have->am == sc.am && have->pm == sc.pm && have->absence_code == sc.absence_code &&
        have->comment && strcmp(have->comment, comment) == 0) {
        if (l->time_off_id == w->t->id || c->s->dry_run)
            return 0;
        return save_link(c, l->schedule_id, w, err); /* same entry, now for this absence */
    }
    if (!c->s->dry_run) {
        struct rd_moco *m = rd_sync_moco(c->s, err);
        bool gone = false;
        if (!m)
            return -1;
        c->wrote = true;
        if (rd_moco_update_schedule(m, &sc, rd_sync_audit(c->s), c->s->deadline, &gone, err) != 0) {
            if (gone)
                return drop_link(c, l, err) == 0 ? create(c, w, err) : -1;
            return write_failed(c, w->date, "update the MOCO schedule", err);
        }
        if (save_link(c, l->schedule_id, w, err) != 0)
            return -1;
    }
    struct tally *t = tally_of(c, w->t->id);
    day_list(&t->updated, &t->nupdated, w->date, w->am, w->pm);
    return 0;
}

/* rosterd's entry of a day no absence covers any more: delete it, and only it. */
static int remove_entry(struct aconv *c, struct slink *l, struct rd_http_error *err)
{
    const struct rd_moco_schedule *have = schedule_of(c, l->schedule_id);
    struct tally *t = tally_of(c, l->time_off_id);
    if (c->s->dry_run) {
        if (have)
            day_list(&t->removed, &t->nremoved, l->date, true, true);
        return 0;
    }
    if (have) {
        struct rd_moco *m = rd_sync_moco(c->s, err);
        bool gone = false;
        if (!m)
            return -1;
        c->wrote = true;
        if (rd_moco_delete_schedule(m, l->schedule_id, rd_sync_audit(c->s), c->s->deadline, &gone,
                                    err) != 0)
            return write_failed(c, l->date, "delete the MOCO schedule", err);
        if (!gone)
            day_list(&t->removed, &t->nremoved, l->date, true, true);
    }
    return drop_link(c, l, err);
}

/* Someone else's entry on a wanted day: reported once per absence, day and entry. */
static int keep_foreign(struct aconv *c, const struct want_day *w,
                        const struct rd_moco_schedule *other, struct rd_http_error *err)
{
    char cid[24], emp[24], tid[24], sid[24], code[8], dberr[256];
    id_text(cid, sizeof(cid), c->s->connection_id);
    id_text(emp, sizeof(emp), c->e->id);
    id_text(tid, sizeof(tid), w->t->id);
    id_text(sid, sizeof(sid), other->id);
    snprintf(code, sizeof(code), "%d", other->absence_code);
    const char *params[6] = {cid, emp, tid, w->date, sid, code};
    const char *qparams[4] = {cid, tid, w->date, sid};
    PGresult *res = rd_db_exec(c->s->db,
                               "SELECT 1 FROM absence_kept WHERE connection_id = $1::bigint"
                               " AND time_off_id = $2::bigint AND date = $3::date"
                               " AND schedule_id = $4::bigint",
                               4, qparams, dberr, sizeof(dberr));
    if (!res) {
        rd_http_error_set(err, false, 0, "absence_kept: %s", dberr);
        return -1;
    }
    bool reported = PQntuples(res) > 0;
    PQclear(res);
    if (reported)
        return 0;
    struct tally *t = tally_of(c, w->t->id);
    rd_buf_printf(
        &t->kept, "%s%s (%s, code %d, MOCO schedule %lld%s%s)", t->nkept++ ? "; " : "", w->date,
        other->am && other->pm ? "full day"
        : other->am            ? "am"
                               : "pm",
        other->absence_code, (long long)other->id, other->comment && *other->comment ? ": " : "",
        other->comment && *other->comment ? other->comment : "");
    if (c->s->dry_run)
        return 0;
    if (rd_db_run(c->s->db,
                  "INSERT INTO absence_kept (connection_id, personio_id, time_off_id, date,"
                  " schedule_id, absence_code) VALUES ($1::bigint, $2::bigint, $3::bigint,"
                  " $4::date, $5::bigint, $6::int) ON CONFLICT (connection_id, time_off_id, date)"
                  " DO UPDATE SET schedule_id = excluded.schedule_id,"
                  "  absence_code = excluded.absence_code, at = now()",
                  6, params, dberr, sizeof(dberr)) != 0) {
        rd_http_error_set(err, false, 0, "absence_kept: %s", dberr);
        return -1;
    }
    return 0;
}

/* A wanted day without an entry of rosterd's: create it, replace code 1, adopt or keep. */
static int settle_day(struct aconv *c, const struct want_day *w, struct rd_http_error *err)
{
    char comment[200];
    rd_absence_comment(w->t, comment, sizeof(comment));
    for (size_t i = 0; i < c->sched.count; i++) {
        const struct rd_moco_schedule *o = &c->sched.items[i];
        if (strcmp(o->date, w->date) != 0 || o->user_id != c->uid || schedule_linked(c, o->id))
            continue;
        if (o->comment && strcmp(o->comment, comment) == 0) { /* ours, from an interrupted run */
            struct slink l = {.schedule_id = o->id, .time_off_id = w->t->id};
            memcpy(l.date, w->date, 11);
            if (!c->s->dry_run && save_link(c, o->id, w, err) != 0)
                return -1;
            return correct(c, &l, o, w, err);
        }
        if (o->absence_code != 1)
            return keep_foreign(c, w, o, err);
        /* "not plannable" gives way: delete it, then create ours (never overwrite=true) */
        struct tally *t = tally_of(c, w->t->id);
        rd_buf_printf(&t->replaced, "%s%s (MOCO schedule %lld)", t->replaced.len ? ", " : "",
                      w->date, (long long)o->id);
        if (!c->s->dry_run) {
            struct rd_moco *m = rd_sync_moco(c->s, err);
            bool gone = false;
            if (!m)
                return -1;
            c->wrote = true;
            if (rd_moco_delete_schedule(m, o->id, rd_sync_audit(c->s), c->s->deadline, &gone,
                                        err) != 0)
                return write_failed(c, w->date, "delete the code-1 MOCO schedule", err);
        }
        return create(c, w, err);
    }
    return create(c, w, err);
}

static int converge_days(struct aconv *c, struct rd_http_error *err)
{
    for (size_t i = 0; i < c->nlinks; i++) { /* first what is no longer covered */
        struct slink *l = &c->links[i];
        if (!want_on(c, l->date) && remove_entry(c, l, err) != 0)
            return -1;
    }
    for (size_t i = 0; i < c->ndays; i++) {
        const struct want_day *w = &c->days[i];
        struct slink *l = link_on(c, w->date);
        if (l) {
            const struct rd_moco_schedule *have = schedule_of(c, l->schedule_id);
            if (!have && !c->refreshed) { /* a preload may predate another job's write */
                rd_timesync_schedules_written(c->s, c->uid);
                if (rd_timesync_schedules(c->s, c->uid, c->from, c->to, &c->sched, err) != 0)
                    return -1;
                c->refreshed = true;
                have = schedule_of(c, l->schedule_id);
            }
            if (have) {
                if (correct(c, l, have, w, err) != 0)
                    return -1;
                continue;
            }
            if (!c->s->dry_run && drop_link(c, l, err) != 0) /* deleted in MOCO: make it again */
                return -1;
        }
        if (settle_day(c, w, err) != 0)
            return -1;
    }
    return 0;
}

/* Why a time-off no longer covers days it had. */
static const char *gone_reason(const struct tally *t)
{
    if (!t->t)
        return "is gone from Personio for these days (deleted or moved)";
    if (t->t->status && strcmp(t->t->status, "approved") != 0)
        return strcmp(t->t->status, "rejected") == 0 ? "was rejected" : "is no longer approved";
    return "was shortened or moved";
}

static void emit_findings(struct aconv *c)
{
    bool dry = c->s->dry_run;
    for (size_t i = 0; i < c->ntallies; i++) {
        struct tally *t = &c->tallies[i];
        char name[160];
        if (t->t)
            snprintf(name, sizeof(name), "%s %s..%s (Personio absence %lld)",
                     t->t->type_name ? t->t->type_name : "Absence", t->t->start_date,
                     t->t->end_date, (long long)t->time_off_id);
        else
            snprintf(name, sizeof(name), "Personio absence %lld", (long long)t->time_off_id);
        if (t->ncreated)
            rd_sync_finding(
                c->s, "absence_created", c->e->email, dry ? "create in MOCO" : "created in MOCO",
                dry ? RD_RESULT_PLANNED : RD_RESULT_DONE, "%s: %zu %s in MOCO: %s%s%s", name,
                t->ncreated, rd_timesync_plural((long)t->ncreated, "day", "days"), t->created.data,
                t->replaced.len ? "; replacing the \"not plannable\" "
                                  "entry of "
                                : "",
                t->replaced.len ? t->replaced.data : "");
        if (t->nupdated)
            rd_sync_finding(
                c->s, "absence_created", c->e->email, dry ? "update in MOCO" : "updated in MOCO",
                dry ? RD_RESULT_PLANNED : RD_RESULT_DONE,
                "%s: rosterd's MOCO %s corrected to Personio: %s", name,
                rd_timesync_plural((long)t->nupdated, "entry", "entries"), t->updated.data);
        if (t->nremoved)
            rd_sync_finding(c->s, "absence_removed", c->e->email,
                            dry ? "delete rosterd's MOCO entries"
                                : "deleted rosterd's MOCO entries",
                            dry ? RD_RESULT_PLANNED : RD_RESULT_DONE,
                            "%s %s: %zu %s no longer "
                            "covered: %s",
                            name, gone_reason(t), t->nremoved,
                            rd_timesync_plural((long)t->nremoved, "day", "days"), t->removed.data);
        if (t->nkept)
            rd_sync_finding(c->s, "conflict", c->e->email, NULL, RD_RESULT_NONE,
                            "%s: MOCO already has an entry rosterd did not make on %s; left as it "
                            "is, that day is not mirrored",
                            name, t->kept.data);
        rd_buf_free(&t->created);
        rd_buf_free(&t->updated);
        rd_buf_free(&t->removed);
        rd_buf_free(&t->kept);
        rd_buf_free(&t->replaced);
    }
}

int rd_absence_converge(struct rd_sync *s, const struct rd_personio_employee *e,
                        int64_t moco_user_id, const char *from, const char *to,
                        struct rd_http_error *err)
{
    if (!rd_sync_policy_bool(s, "absence_sync", true) || moco_user_id <= 0 || !e)
        return 0;
    if (!rd_day_valid(from) || !rd_day_valid(to)) {
        rd_http_error_set(err, true, 0, "absences: bad window %s..%s", from, to);
        return -1;
    }
    struct aconv c = {.s = s, .e = e, .uid = moco_user_id};
    const char *start = rd_sync_start_date(s);
    snprintf(c.from, sizeof(c.from), "%s", start && strcmp(from, start) < 0 ? start : from);
    snprintf(c.to, sizeof(c.to), "%s", to);
    if (strcmp(c.from, c.to) > 0)
        return 0;
    if (!s->dry_run && rd_timesync_lock(s, "absence", moco_user_id, true, err) != 0)
        return -1;
    int rc = -1;
    if (rd_sync_time_offs(s, e->id, c.from, c.to, &c.toffs, err) == 0 &&
        rd_timesync_schedules(s, moco_user_id, c.from, c.to, &c.sched, err) == 0 &&
        load_links(&c, err) == 0) {
        build_days(&c);
        rc = converge_days(&c, err);
    }
    emit_findings(&c); /* what was done is reported even when a later step failed */
    if (c.wrote)
        rd_timesync_schedules_written(s, moco_user_id);
    struct rd_http_error uerr = {0};
    if (!s->dry_run && rd_timesync_lock(s, "absence", moco_user_id, false, &uerr) != 0)
        rd_log_warn("%s", uerr.msg); /* the session ends with the worker; the lock with it */
    if (rc == 0 && c.have_perm) {
        *err = c.perm;
        rc = -1;
    }
    free(c.links);
    free(c.days);
    free(c.tallies);
    return rc;
}

/* ---- people and their windows ---- */

/* Every person's window also spans 30 days back and a year ahead. */
static int widen_all(struct rd_sync *s, struct rd_timesync_wants *w, char horizon[2][11],
                     struct rd_http_error *err)
{
    char today[11];
    if (rd_timesync_today(s, today, err) != 0)
        return -1;
    rd_day_add(today, -DAYS_BACK, horizon[0]);
    rd_day_add(today, DAYS_AHEAD, horizon[1]);
    for (size_t i = 0, n = w->count; i < n; i++)
        rd_timesync_want(w, w->items[i].id, horizon[0], horizon[1], 0);
    return 0;
}

struct person_arg {
    bool approvers;  /* the handler: approver delegations converge too */
    char quiet[256]; /* why a job that changed nothing did nothing */
};

/* One person: their MOCO schedules, then their approver delegations (rd_timesync_person_fn). */
static int absence_person(struct rd_sync *s, struct rd_timesync_want *x, void *arg,
                          struct rd_http_error *err)
{
    struct person_arg *pa = arg;
    bool approvers = pa->approvers;
    char *quiet = pa->quiet;
    size_t qlen = sizeof(pa->quiet);
    const struct rd_personio_employee *e = NULL;
    bool gone = false;
    if (rd_sync_employee(s, x->id, &e, &gone, err) != 0)
        return -1;
    if (gone) {
        snprintf(quiet, qlen, "Personio employee %lld no longer exists: nothing mirrored",
                 (long long)x->id);
        return 0;
    }
    int64_t uid = 0;
    bool mirror = rd_sync_has(s, "moco") && rd_sync_policy_bool(s, "absence_sync", true);
    if (mirror && rd_timesync_moco_for_employee(s, e, &uid, err) != 0)
        return -1;
    int rc = 0;
    struct rd_http_error perm = {0};
    if (!mirror) {
        snprintf(quiet, qlen, "absence sync is off (policy.absence_sync)");
    } else if (!uid) {
        snprintf(quiet, qlen, "%s has no MOCO user: no absence mirrored",
                 e->email ? e->email : "?");
    } else {
        snprintf(quiet, qlen, "MOCO's absences of %s already match Personio for %s..%s",
                 e->email ? e->email : "?", x->from, x->to);
        rc = rd_absence_converge(s, e, uid, x->from, x->to, err);
        if (rc != 0 && !err->permanent)
            return -1;
        perm = *err;
    }
    if (approvers && rd_approver_converge(s, e, x->from, x->to, err) != 0)
        return -1;
    if (rc != 0)
        *err = perm;
    return rc;
}

/* Many people: everyone's time-offs and schedules of the union window in pages. */
static int bulk_preload(struct rd_sync *s, struct rd_timesync_wants *w, struct rd_http_error *err)
{
    if (w->count < BULK_PEOPLE)
        return 0;
    rd_timesync_bulk(s);
    char from[11], to[11];
    if (!rd_timesync_span(s, w, from, to))
        return 0;
    const struct rd_personio_employee_list *emps = NULL;
    if (rd_sync_employees(s, &emps, err) != 0)
        return -1;
    size_t population = emps->count > w->count ? emps->count : w->count;
    /* about one absence in a hundred person-days (200 a page), one MOCO entry in twenty */
    if (rd_timesync_preload_pays(w->count, population, from, to, 0.01, 200)) {
        const struct rd_personio_time_off_list *all = NULL;
        if (rd_sync_time_offs(s, 0, from, to, &all, err) != 0)
            return -1;
    }
    if (rd_timesync_preload_pays(w->count, population, from, to, 0.05, 100))
        return rd_timesync_preload(s, RD_TIMESYNC_SCHEDULES, from, to, err);
    return 0;
}

/* ---- the personio.absence handler ---- */

/* Personio's time-offs changed in the last days, read once per job (the event fired on one). */
static int recent_changes(struct rd_sync *s, struct rd_personio_time_off_list *recent,
                          bool *have_recent, struct rd_http_error *err)
{
    if (*have_recent)
        return 0;
    char today[11], since[11];
    struct rd_personio *p = rd_sync_personio(s, err);
    if (!p || rd_timesync_today(s, today, err) != 0)
        return -1;
    rd_day_add(today, -3, since);
    if (rd_personio_list_time_offs_since(p, since, s->deadline, recent, err) != 0)
        return -1;
    *have_recent = true;
    return 0;
}

/*
 * A person-named event: their recently changed absences may lie outside the usual
 * window (a sick leave entered weeks late); their days join the person's window.
 */
static int widen_by_recent(struct rd_sync *s, struct rd_timesync_wants *w,
                           struct rd_personio_time_off_list *recent, bool *have_recent,
                           struct rd_http_error *err)
{
    if (w->count == 0 || recent_changes(s, recent, have_recent, err) != 0)
        return w->count == 0 ? 0 : -1;
    for (size_t i = 0; i < recent->count; i++)
        for (size_t k = 0; k < w->count; k++)
            if (w->items[k].id == recent->items[i].employee_id)
                rd_timesync_want(w, w->items[k].id, recent->items[i].start_date,
                                 recent->items[i].end_date, 0);
    return 0;
}

/* The people of an absence by its v1 or v2 id: rosterd's links, then Personio's recent changes. */
static int resolve_absence(struct rd_sync *s, const char *aid, struct rd_timesync_wants *w,
                           struct rd_personio_time_off_list *recent, bool *have_recent, bool *found,
                           struct rd_http_error *err)
{
    char cid[24], dberr[256];
    id_text(cid, sizeof(cid), s->connection_id);
    const char *params[2] = {cid, aid};
    PGresult *res = rd_db_exec(s->db,
                               "SELECT personio_id, min(date)::text, max(date)::text"
                               " FROM schedule_links WHERE connection_id = $1::bigint"
                               " AND (time_off_id_v2 = $2 OR time_off_id::text = $2)"
                               " GROUP BY personio_id",
                               2, params, dberr, sizeof(dberr));
    if (!res) {
        rd_http_error_set(err, false, 0, "schedule links: %s", dberr);
        return -1;
    }
    for (int i = 0; i < PQntuples(res); i++) {
        rd_timesync_want(w, strtoll(PQgetvalue(res, i, 0), NULL, 10), PQgetvalue(res, i, 1),
                         PQgetvalue(res, i, 2), 0);
        *found = true;
    }
    PQclear(res);
    if (recent_changes(s, recent, have_recent, err) != 0)
        return -1;
    for (size_t i = 0; i < recent->count; i++) {
        const struct rd_personio_time_off *t = &recent->items[i];
        char v1[24];
        id_text(v1, sizeof(v1), t->id);
        if ((t->id_v2 && strcmp(t->id_v2, aid) == 0) || strcmp(v1, aid) == 0) {
            rd_timesync_want(w, t->employee_id, t->start_date, t->end_date, 0);
            *found = true;
        }
    }
    return 0;
}

/* A scalar JSON value as text (new string), or NULL. */
static char *scalar(struct json_object *v)
{
    if (!v || (!json_object_is_type(v, json_type_string) && !json_object_is_type(v, json_type_int)))
        return NULL;
    const char *t = json_object_get_string(v);
    return t && *t ? rd_strdup(t) : NULL;
}

/*
 * What the job's events name: a person (payload.person.id, payload.person_id), else an
 * absence (payload.id: a v2 id, or a v1 one). A job of no event uses its subject.
 */
static int collect(struct rd_job_ctx *ctx, char h[2][11], char ***absences, size_t *nabs,
                   struct rd_timesync_wants *people, bool *nobody)
{
    *nobody = ctx->nevents == 0 && !ctx->subject;
    for (size_t i = 0; i < ctx->nevents; i++) {
        char *body = NULL;
        if (rd_job_event_body(ctx, i, &body, NULL) != 0)
            return -1;
        struct json_object *root = rd_json_parse_stored(body);
        free(body);
        struct json_object *pl = rd_json_get(root, "payload");
        char *person = scalar(rd_json_get(rd_json_get(pl, "person"), "id"));
        if (!person)
            person = scalar(rd_json_get(pl, "person_id"));
        char *absence = person ? NULL : scalar(rd_json_get(pl, "id"));
        json_object_put(root);
        if (person && rd_timesync_id(person))
            rd_timesync_want(people, rd_timesync_id(person), h[0], h[1], 0);
        if (absence) {
            *absences = rd_realloc(*absences, (*nabs + 1) * sizeof(char *));
            (*absences)[(*nabs)++] = absence;
        }
        if (!person && !absence)
            *nobody = true;
        free(person);
    }
    if (ctx->nevents == 0 && rd_timesync_id(ctx->subject))
        rd_timesync_want(people, rd_timesync_id(ctx->subject), h[0], h[1], 0);
    return 0;
}

/* Everyone with an absence in the horizon, or a MOCO entry of rosterd's in it. */
static int everyone(struct rd_sync *s, struct rd_timesync_wants *w, struct rd_http_error *err)
{
    char h[2][11];
    struct rd_timesync_wants none = {0};
    if (widen_all(s, &none, h, err) != 0)
        return -1;
    const struct rd_personio_time_off_list *all = NULL;
    if (rd_sync_time_offs(s, 0, h[0], h[1], &all, err) != 0)
        return -1;
    for (size_t i = 0; i < all->count; i++)
        rd_timesync_want(w, all->items[i].employee_id, h[0], h[1], 0);
    char cid[24], dberr[256];
    id_text(cid, sizeof(cid), s->connection_id);
    const char *params[3] = {cid, h[0], h[1]};
    PGresult *res = rd_db_exec(s->db,
                               "SELECT DISTINCT personio_id FROM schedule_links"
                               " WHERE connection_id = $1::bigint AND date BETWEEN $2::date"
                               " AND $3::date",
                               3, params, dberr, sizeof(dberr));
    if (!res) {
        rd_http_error_set(err, false, 0, "schedule links: %s", dberr);
        return -1;
    }
    for (int i = 0; i < PQntuples(res); i++)
        rd_timesync_want(w, strtoll(PQgetvalue(res, i, 0), NULL, 10), h[0], h[1], 0);
    PQclear(res);
    return 0;
}

static int absence_run(struct rd_job_ctx *ctx)
{
    struct rd_sync *s = rd_sync_open_job(ctx);
    if (!s)
        return -1;
    struct rd_http_error err = {0};
    struct rd_timesync_wants w = {0};
    struct rd_personio_time_off_list recent = {0};
    char **absences = NULL, unknown[128] = "", h[2][11];
    struct person_arg pa = {.approvers = true};
    size_t nabs = 0, failed = 0;
    bool nobody = false, have_recent = false;
    struct rd_timesync_wants none = {0};
    int rc = widen_all(s, &none, h, &err);
    if (rc == 0 && (rc = collect(ctx, h, &absences, &nabs, &w, &nobody)) != 0)
        rd_http_error_set(&err, false, 0, "%s", ctx->err);
    if (rc == 0)
        rc = widen_by_recent(s, &w, &recent, &have_recent, &err);
    for (size_t i = 0; rc == 0 && i < nabs; i++) {
        bool found = false;
        rc = resolve_absence(s, absences[i], &w, &recent, &have_recent, &found, &err);
        if (rc == 0 && !found)
            snprintf(unknown, sizeof(unknown), "%.64s", absences[i]);
    }
    if (rc == 0 && nobody) /* a notification that named nobody: everyone (DESIGN.md §5) */
        rc = everyone(s, &w, &err);
    if (rc == 0)
        rc = widen_all(s, &w, h, &err);
    if (rc == 0)
        rc = bulk_preload(s, &w, &err);
    if (rc == 0)
        rc = rd_timesync_each(s, &w, absence_person, &pa, &failed, &err);
    if (rc == 0) {
        if (w.count == 0 && unknown[0])
            snprintf(pa.quiet, sizeof(pa.quiet),
                     "absence %s is not in Personio's recent changes and rosterd mirrored nothing "
                     "of it: nothing to do",
                     unknown);
        rd_timesync_note(s, 0, pa.quiet, ctx->note, sizeof(ctx->note));
    } else {
        rd_sync_fail(ctx, &err);
    }
    for (size_t i = 0; i < nabs; i++)
        free(absences[i]);
    free(absences);
    rd_personio_time_off_list_free(&recent);
    rd_timesync_wants_free(&w);
    rd_sync_close(s);
    return rc;
}

/* ---- the daily sweep ---- */

static int sweep_run(struct rd_job_ctx *ctx)
{
    struct rd_sync *s = rd_sync_open_job(ctx);
    if (!s)
        return -1;
    s->deadline = rd_http_now() + SWEEP_SECONDS;
    struct rd_http_error err = {0};
    struct rd_timesync_wants w = {0};
    struct rd_personio_time_off_list changed = {0};
    char today[11], since[11], h[2][11];
    struct person_arg pa = {.approvers = false};
    size_t failed = 0;
    int rc = 0;
    if (!rd_sync_policy_bool(s, "absence_sync", true)) {
        snprintf(ctx->note, sizeof(ctx->note), "absence sync is off (policy.absence_sync)");
        goto out;
    }
    struct rd_personio *p = rd_sync_personio(s, &err);
    rc = p ? rd_timesync_today(s, today, &err) : -1;
    if (rc == 0)
        rc = rd_timesync_watermark(s, "time_offs_from", since, sizeof(since), &err);
    if (rc == 0 && !since[0])
        rd_day_add(today, -1, since); /* the first sweep: yesterday's and today's changes */
    if (rc == 0)
        rc = rd_personio_list_time_offs_since(p, since, s->deadline, &changed, &err);
    for (size_t i = 0; rc == 0 && i < changed.count; i++)
        rd_timesync_want(&w, changed.items[i].employee_id, changed.items[i].start_date,
                         changed.items[i].end_date, 0);
    if (rc == 0)
        rc = widen_all(s, &w, h, &err);
    if (rc == 0)
        rc = bulk_preload(s, &w, &err);
    if (rc == 0 && rd_timesync_each(s, &w, absence_person, &pa, &failed, &err) != 0 &&
        !err.permanent)
        rc = -1;
    if (rc == 0) /* today again next time: a change later today is not missed */
        rc = rd_timesync_set_watermark(s, "time_offs_from", today, &err);
    if (rc != 0) {
        rd_sync_fail(ctx, &err);
        goto out;
    }
    snprintf(ctx->note, sizeof(ctx->note),
             "%zu %s changed since %s (%zu %s): %zu created, %zu removed, %zu with someone "
             "else's MOCO entry kept, %zu failed",
             changed.count, rd_timesync_plural((long)changed.count, "absence", "absences"), since,
             w.count, rd_timesync_plural((long)w.count, "person", "people"),
             rd_timesync_count(s, "absence_created"), rd_timesync_count(s, "absence_removed"),
             rd_timesync_count(s, "conflict"), failed);
out:
    rd_personio_time_off_list_free(&changed);
    rd_timesync_wants_free(&w);
    rd_sync_close(s);
    return rc;
}

static const struct rd_handler absence_handlers[] = {
    {.kind = "personio.absence", .run = absence_run, .needs_connection = true},
    {.kind = "sweep.absence", .run = sweep_run, .needs_connection = true},
};

const struct rd_capability rd_cap_absence = {
    .name = "absence",
    .handlers = absence_handlers,
    .nhandlers = sizeof(absence_handlers) / sizeof(absence_handlers[0]),
};
