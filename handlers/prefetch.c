/*
 * The reconciliation's per-chunk prefetch (handlers/prefetch_internal.h). The
 * chunk lives in s->ext[RD_SYNC_EXT_CHUNK]; without one every accessor answers
 * "not covered" and the readers query as they always did.
 */
#include "prefetch_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rosterd/db.h"
#include "rosterd/deactivation.h"
#include "rosterd/hmap.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/timesync.h"

/* c->presences' values */
enum { PRESENCE_READ = 1, PRESENCE_WRITTEN = 2 };

struct range {
    int first, n;
};

/* One statement's rows, grouped by their key column. */
struct kind_rows {
    PGresult *res;
    struct rd_hmap *by_key; /* covered key -> range index + 1 (0: covered, no rows) */
    struct range *ranges;
    size_t nranges;
    char from[11], to[11];
};

struct chunk {
    double locked_at;
    struct kind_rows k[RD_PREFETCH_KINDS];
    struct rd_hmap *link_by_presence; /* attendance link row + 1 by presence id */
    struct rd_hmap *conf_by_presence; /* conflict row + 1 by presence id */
    struct rd_hmap *presences;        /* the presences the links were read for */
    struct rd_hmap *locks;            /* lock keys held */
    char *lock_array;                 /* the same keys as a text[] literal */
    size_t nlocks;
    struct rd_prefetch_stats *stats, unused;
};

/* Counts one reader's answer; returns it. */
static bool counted(struct chunk *c, bool served)
{
    if (c)
        (*(served ? &c->stats->served : &c->stats->read_alone))++;
    return served;
}

static void kind_clear(struct kind_rows *k)
{
    PQclear(k->res);
    rd_hmap_free(k->by_key);
    free(k->ranges);
    memset(k, 0, sizeof(*k));
}

static void chunk_free(void *data)
{
    struct chunk *c = data;
    if (!c)
        return;
    for (int i = 0; i < RD_PREFETCH_KINDS; i++)
        kind_clear(&c->k[i]);
    rd_hmap_free(c->link_by_presence);
    rd_hmap_free(c->conf_by_presence);
    rd_hmap_free(c->presences);
    rd_hmap_free(c->locks);
    free(c->lock_array);
    free(c);
}

static struct chunk *chunk_of(const struct rd_sync *s)
{
    return s->ext[RD_SYNC_EXT_CHUNK].free == chunk_free ? s->ext[RD_SYNC_EXT_CHUNK].data : NULL;
}

void rd_prefetch_rows_free(struct rd_prefetch_rows *r)
{
    free(r->rows);
    memset(r, 0, sizeof(*r));
}

/* ---- reading a chunk ---- */

/*
 * Runs sql and groups its rows by the integer in column keycol (rows of one key come
 * together: the statement orders by it). keys: the covered keys.
 */
static int read_kind(struct rd_sync *s, struct kind_rows *k, const char *what, const char *sql,
                     int nparams, const char *const *params, int keycol, const int64_t *keys,
                     size_t nkeys)
{
    char err[256];
    PGresult *res = rd_db_exec(s->db, sql, nparams, params, err, sizeof(err));
    if (!res) {
        rd_log_warn("run %lld: prefetching %s: %s (reading them person by person)",
                    (long long)s->run_id, what, err);
        return -1;
    }
    k->res = res;
    k->by_key = rd_hmap_new();
    for (size_t i = 0; i < nkeys; i++)
        if (keys[i] > 0)
            rd_hmap_put_i64(k->by_key, keys[i], 0);
    int n = PQntuples(res);
    k->ranges = rd_calloc((size_t)n + 1, sizeof(*k->ranges));
    for (int i = 0; i < n;) {
        int64_t key = strtoll(PQgetvalue(res, i, keycol), NULL, 10);
        int j = i + 1;
        while (j < n && strtoll(PQgetvalue(res, j, keycol), NULL, 10) == key)
            j++;
        uintptr_t had;
        if (rd_hmap_get_i64(k->by_key, key, &had)) {
            k->ranges[k->nranges] = (struct range){i, j - i};
            rd_hmap_put_i64(k->by_key, key, ++k->nranges);
        }
        i = j;
    }
    return 0;
}

static void window_set(struct kind_rows *k, const char *from, const char *to)
{
    snprintf(k->from, sizeof(k->from), "%s", from ? from : "");
    snprintf(k->to, sizeof(k->to), "%s", to ? to : "");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Takes the time-sync locks of the chunk's MOCO users, in key order, in one statement. */
static void take_locks(struct rd_sync *s, struct chunk *c, const int64_t *uids, size_t n)
{
    char **keys = rd_calloc(2 * n + 1, sizeof(*keys));
    size_t nkeys = 0;
    for (size_t i = 0; i < n; i++) {
        if (uids[i] <= 0)
            continue;
        keys[nkeys++] = rd_timesync_lock_key(s, "attendance", uids[i]);
        keys[nkeys++] = rd_timesync_lock_key(s, "absence", uids[i]);
    }
    qsort(keys, nkeys, sizeof(*keys), cmp_str);
    struct rd_buf arr = {0};
    rd_buf_putc(&arr, '{');
    struct rd_hmap *locks = rd_hmap_new();
    size_t nlocks = 0;
    for (size_t i = 0; i < nkeys; i++) {
        if (rd_hmap_get(locks, keys[i], strlen(keys[i]), NULL))
            continue; /* one MOCO user linked twice: its locks once */
        rd_hmap_put(locks, keys[i], strlen(keys[i]), 1);
        /* keys are "timesync:<what>:<id>:<id>": nothing an array literal must quote */
        rd_buf_printf(&arr, "%s%s", nlocks++ ? "," : "", keys[i]);
    }
    rd_buf_putc(&arr, '}');
    for (size_t i = 0; i < nkeys; i++)
        free(keys[i]);
    free(keys);
    char *lit = rd_buf_steal(&arr);
    char err[256];
    const char *params[1] = {lit};
    if (nlocks == 0 ||
        rd_db_run(s->db,
                  "SELECT pg_advisory_lock(hashtextextended(k, 0)) FROM unnest($1::text[]) k", 1,
                  params, err, sizeof(err)) != 0) {
        if (nlocks)
            rd_log_warn("run %lld: taking the chunk's time-sync locks: %s (taking them person"
                        " by person)",
                        (long long)s->run_id, err);
        rd_hmap_free(locks);
        free(lit);
        return;
    }
    c->locks = locks;
    c->lock_array = lit;
    c->nlocks = nlocks;
    c->locked_at = rd_http_now();
}

static void release_locks(struct rd_sync *s, struct chunk *c)
{
    if (!c->locks)
        return;
    char err[256];
    const char *params[1] = {c->lock_array};
    if (rd_db_run(s->db,
                  "SELECT pg_advisory_unlock(hashtextextended(k, 0)) FROM unnest($1::text[]) k", 1,
                  params, err, sizeof(err)) != 0)
        rd_log_warn("run %lld: releasing the chunk's time-sync locks: %s (they go with the"
                    " session)",
                    (long long)s->run_id, err);
    rd_hmap_free(c->locks);
    c->locks = NULL;
    free(c->lock_array);
    c->lock_array = NULL;
    c->nlocks = 0;
}

/* The attendance links and conflicts of the chunk's MOCO users and their presences. */
static void read_attendance(struct rd_sync *s, struct chunk *c, const char *cid, const char *uids,
                            const int64_t *uid, size_t n, const char *from, const char *to)
{
    struct rd_buf pres = {0};
    c->presences = rd_hmap_new();
    rd_buf_putc(&pres, '{');
    size_t npres = 0;
    for (size_t i = 0; i < n; i++) {
        if (uid[i] <= 0)
            continue;
        struct rd_moco_presence_list l;
        struct rd_http_error err = {0};
        if (rd_timesync_presences(s, uid[i], from, to, &l, &err) != 0)
            continue; /* that person's reader reads and reports it */
        for (size_t k = 0; k < l.count; k++) {
            rd_hmap_put_i64(c->presences, l.items[k].id, PRESENCE_READ);
            rd_buf_printf(&pres, "%s%lld", npres++ ? "," : "", (long long)l.items[k].id);
        }
    }
    rd_buf_putc(&pres, '}');
    const char *lp[5] = {cid, uids, from, to, pres.data};
    struct kind_rows *links = &c->k[RD_PREFETCH_ATTENDANCE_LINKS];
    if (read_kind(
            s, links, "attendance links",
            "SELECT presence_id, attendance_id, date::text, start_time, end_time, moco_user_id"
            " FROM attendance_links WHERE connection_id = $1::bigint"
            " AND ((moco_user_id = ANY($2::bigint[]) AND date BETWEEN $3::date AND $4::date)"
            "  OR presence_id = ANY($5::bigint[])) ORDER BY moco_user_id",
            5, lp, 5, uid, n) == 0) {
        window_set(links, from, to);
        c->link_by_presence = rd_hmap_new();
        for (int i = 0; i < PQntuples(links->res); i++)
            rd_hmap_put_i64(c->link_by_presence, strtoll(PQgetvalue(links->res, i, 0), NULL, 10),
                            (uintptr_t)i + 1);
        const char *cp[2] = {cid, pres.data};
        struct kind_rows *conf = &c->k[RD_PREFETCH_ATTENDANCE_CONFLICTS];
        if (read_kind(s, conf, "attendance conflicts",
                      "SELECT presence_id, date::text, start_time, end_time,"
                      " array_to_string(other_ids, ','), message FROM attendance_conflicts"
                      " WHERE connection_id = $1::bigint AND presence_id = ANY($2::bigint[])",
                      2, cp, 0, NULL, 0) == 0) {
            c->conf_by_presence = rd_hmap_new();
            for (int i = 0; i < PQntuples(conf->res); i++)
                rd_hmap_put_i64(c->conf_by_presence, strtoll(PQgetvalue(conf->res, i, 0), NULL, 10),
                                (uintptr_t)i + 1);
        } else {
            kind_clear(links); /* links without their conflicts cover nothing */
        }
    }
    rd_buf_free(&pres);
}

void rd_prefetch_begin(struct rd_sync *s, const struct rd_prefetch_chunk *ch)
{
    rd_prefetch_end(s);
    struct chunk *c = rd_calloc(1, sizeof(*c));
    s->ext[RD_SYNC_EXT_CHUNK].data = c;
    s->ext[RD_SYNC_EXT_CHUNK].free = chunk_free;
    c->stats = ch->stats ? ch->stats : &c->unused;
    c->stats->chunks++;
    char cid[24];
    snprintf(cid, sizeof(cid), "%lld", (long long)s->connection_id);
    char *pids = rd_db_int8_array(ch->personio_ids, ch->npeople);
    const char *jp[2] = {cid, pids}; /* "{1,2}" reads as text[] for jobs.subject too */
    (void)read_kind(s, &c->k[RD_PREFETCH_DEACTIVATION_JOBS], "deactivation jobs",
                    "SELECT id, unique_key, state = 'running', payload ->> 'last_day',"
                    " payload ->> 'deactivate_at', subject FROM jobs"
                    " WHERE connection_id = $1::bigint AND subject = ANY($2::text[])"
                    " AND kind = '" RD_DEACTIVATION_KIND "' ORDER BY subject, run_at, id",
                    2, jp, 5, ch->personio_ids, ch->npeople);
    (void)read_kind(s, &c->k[RD_PREFETCH_DELEGATIONS], "delegations",
                    "SELECT time_off_id, platform_id, start_date::text, end_date::text, delegate,"
                    " approver_id FROM delegations WHERE connection_id = $1::bigint"
                    " AND approver_id = ANY($2::bigint[]) ORDER BY approver_id, time_off_id",
                    2, jp, 5, ch->personio_ids, ch->npeople);
    free(pids);
    if (!ch->time_sync || !ch->moco_user_ids)
        return;
    /* the locks first: what is read under them stays true until they are released */
    if (!s->dry_run)
        take_locks(s, c, ch->moco_user_ids, ch->npeople);
    char *uids = rd_db_int8_array(ch->moco_user_ids, ch->npeople);
    if (ch->absence_from && ch->absence_to) {
        const char *sp[4] = {cid, uids, ch->absence_from, ch->absence_to};
        struct kind_rows *k = &c->k[RD_PREFETCH_SCHEDULE_LINKS];
        if (read_kind(
                s, k, "schedule links",
                "SELECT schedule_id, time_off_id, date::text, moco_user_id FROM schedule_links"
                " WHERE connection_id = $1::bigint AND moco_user_id = ANY($2::bigint[])"
                " AND date BETWEEN $3::date AND $4::date ORDER BY moco_user_id, date",
                4, sp, 3, ch->moco_user_ids, ch->npeople) == 0)
            window_set(k, ch->absence_from, ch->absence_to);
    }
    if (ch->attendance_from && ch->attendance_to)
        read_attendance(s, c, cid, uids, ch->moco_user_ids, ch->npeople, ch->attendance_from,
                        ch->attendance_to);
    free(uids);
}

void rd_prefetch_end(struct rd_sync *s)
{
    struct chunk *c = chunk_of(s);
    if (!c)
        return;
    release_locks(s, c);
    chunk_free(c);
    s->ext[RD_SYNC_EXT_CHUNK].data = NULL;
    s->ext[RD_SYNC_EXT_CHUNK].free = NULL;
}

void rd_prefetch_tick(struct rd_sync *s)
{
    struct chunk *c = chunk_of(s);
    if (c && c->locks && rd_http_now() - c->locked_at > RD_PREFETCH_HOLD_SECONDS) {
        rd_log_debug("run %lld: a chunk held its %zu locks over %.1f s: releasing them early",
                     (long long)s->run_id, c->nlocks, RD_PREFETCH_HOLD_SECONDS);
        c->stats->released_early++;
        rd_prefetch_end(s);
    }
}

/* ---- serving it ---- */

static bool same_window(const struct kind_rows *k, const char *from, const char *to)
{
    return strcmp(k->from, from ? from : "") == 0 && strcmp(k->to, to ? to : "") == 0;
}

bool rd_prefetch_take(struct rd_sync *s, enum rd_prefetch_kind kind, int64_t key, const char *from,
                      const char *to, struct rd_prefetch_rows *out)
{
    memset(out, 0, sizeof(*out));
    struct chunk *c = chunk_of(s);
    uintptr_t v;
    if (!c)
        return false;
    if (kind >= RD_PREFETCH_ATTENDANCE_LINKS || !c->k[kind].res ||
        !same_window(&c->k[kind], from, to) || !rd_hmap_get_i64(c->k[kind].by_key, key, &v))
        return counted(c, false);
    struct kind_rows *k = &c->k[kind];
    rd_hmap_del_i64(k->by_key, key); /* once: a second read sees the person's own writes */
    out->res = k->res;
    out->rows = rd_calloc(v ? (size_t)k->ranges[v - 1].n + 1 : 1, sizeof(int));
    if (v)
        for (int i = 0; i < k->ranges[v - 1].n; i++)
            out->rows[out->n++] = k->ranges[v - 1].first + i;
    return counted(c, true);
}

int rd_prefetch_or_exec(struct rd_sync *s, enum rd_prefetch_kind kind, int64_t key,
                        const char *from, const char *to, const char *sql, int nparams,
                        const char *const *params, struct rd_prefetch_result *r, char *dberr,
                        size_t dberrlen)
{
    memset(r, 0, sizeof(*r));
    if (rd_prefetch_take(s, kind, key, from, to, &r->pf)) {
        r->res = r->pf.res;
        r->n = r->pf.n;
        return 0;
    }
    r->own = rd_db_exec(s->db, sql, nparams, params, dberr, dberrlen);
    if (!r->own)
        return -1;
    r->res = r->own;
    r->n = (size_t)PQntuples(r->own);
    return 0;
}

void rd_prefetch_result_clear(struct rd_prefetch_result *r)
{
    PQclear(r->own);
    rd_prefetch_rows_free(&r->pf);
    memset(r, 0, sizeof(*r));
}

static bool in_list(const int64_t *ids, size_t n, int64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id)
            return true;
    return false;
}

bool rd_prefetch_attendance(struct rd_sync *s, int64_t uid, const char *from, const char *to,
                            const int64_t *pres, size_t npres, struct rd_prefetch_rows *links,
                            struct rd_prefetch_rows *conflicts)
{
    memset(links, 0, sizeof(*links));
    memset(conflicts, 0, sizeof(*conflicts));
    struct chunk *c = chunk_of(s);
    struct kind_rows *lk = c ? &c->k[RD_PREFETCH_ATTENDANCE_LINKS] : NULL;
    struct kind_rows *ck = c ? &c->k[RD_PREFETCH_ATTENDANCE_CONFLICTS] : NULL;
    uintptr_t v, seen;
    if (!c)
        return false;
    if (!lk->res || !ck->res || !same_window(lk, from, to) || !rd_hmap_get_i64(lk->by_key, uid, &v))
        return counted(c, false);
    for (size_t i = 0; i < npres; i++)
        if (!rd_hmap_get_i64(c->presences, pres[i], &seen) || seen != PRESENCE_READ)
            return counted(c, false); /* a presence the chunk did not read, or one written since */
    rd_hmap_del_i64(lk->by_key, uid);
    size_t cap = (v ? (size_t)lk->ranges[v - 1].n : 0) + npres + 1;
    links->res = lk->res;
    links->rows = rd_calloc(cap, sizeof(int));
    /* the user's links in the window or of one of pres, as load_links's WHERE */
    for (int i = 0; v && i < lk->ranges[v - 1].n; i++) {
        int row = lk->ranges[v - 1].first + i;
        const char *date = PQgetvalue(lk->res, row, 2);
        if ((strcmp(date, from) >= 0 && strcmp(date, to) <= 0) ||
            in_list(pres, npres, strtoll(PQgetvalue(lk->res, row, 0), NULL, 10)))
            links->rows[links->n++] = row;
    }
    /* links of pres that are another user's (a presence that moved to this one) */
    uintptr_t r;
    for (size_t i = 0; i < npres; i++)
        if (rd_hmap_get_i64(c->link_by_presence, pres[i], &r) &&
            strtoll(PQgetvalue(lk->res, (int)r - 1, 5), NULL, 10) != uid)
            links->rows[links->n++] = (int)r - 1;
    conflicts->res = ck->res;
    conflicts->rows = rd_calloc(npres + 1, sizeof(int));
    for (size_t i = 0; i < npres; i++)
        if (rd_hmap_get_i64(c->conf_by_presence, pres[i], &r))
            conflicts->rows[conflicts->n++] = (int)r - 1;
    return counted(c, true);
}

void rd_prefetch_drop(struct rd_sync *s, enum rd_prefetch_kind kind)
{
    struct chunk *c = chunk_of(s);
    if (c && kind < RD_PREFETCH_KINDS)
        kind_clear(&c->k[kind]);
}

void rd_prefetch_presence_written(struct rd_sync *s, int64_t presence_id)
{
    struct chunk *c = chunk_of(s);
    struct kind_rows *lk = c ? &c->k[RD_PREFETCH_ATTENDANCE_LINKS] : NULL;
    uintptr_t v, row;
    if (!c || !lk->res)
        return;
    if (!rd_hmap_get_i64(c->presences, presence_id, &v)) {
        /* a presence the chunk did not read: whose rows it touches is unknown */
        rd_prefetch_drop(s, RD_PREFETCH_ATTENDANCE_LINKS);
        rd_prefetch_drop(s, RD_PREFETCH_ATTENDANCE_CONFLICTS);
        return;
    }
    if (v == PRESENCE_WRITTEN)
        return;
    /* Its link and conflict rows were read (by presence id): the readers of that presence
     * query now, and so does the user the chunk read its link under (it may have moved). */
    rd_hmap_put_i64(c->presences, presence_id, PRESENCE_WRITTEN);
    if (rd_hmap_get_i64(c->link_by_presence, presence_id, &row))
        rd_hmap_del_i64(lk->by_key, strtoll(PQgetvalue(lk->res, (int)row - 1, 5), NULL, 10));
}

bool rd_prefetch_holds_lock(const struct rd_sync *s, const char *key)
{
    const struct chunk *c = chunk_of(s);
    return c && c->locks && rd_hmap_get(c->locks, key, strlen(key), NULL);
}
