/*
 * Time sync's shared reads and state (include/rosterd/timesync.h). The cache keeps
 * every list it read sorted by (person, day), so a per-person window inside a
 * preloaded one is two binary searches and no copy: the nightly run's 10,000
 * per-person reads cost nothing upstream and next to nothing here.
 */
#include "rosterd/timesync.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rosterd/db.h"
#include "rosterd/identity.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"

#include "prefetch_internal.h"

/* ---- days ---- */

/* Days since 1970-01-01 of a civil date (H. Hinnant's algorithm). */
static long days_from_civil(long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long)doe - 719468;
}

static void civil_from_days(long z, long *y, unsigned *m, unsigned *d)
{
    z += 719468;
    long era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (long)yoe + era * 400 + (*m <= 2);
}

static bool parse_day(const char *s, long *days)
{
    unsigned y, m, d;
    int n = 0;
    if (!s || strlen(s) != 10 || sscanf(s, "%4u-%2u-%2u%n", &y, &m, &d, &n) != 3 || n != 10 ||
        s[4] != '-' || s[7] != '-' || m < 1 || m > 12 || d < 1)
        return false;
    static const unsigned mdays[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (d > mdays[m - 1] || (m == 2 && d == 29 && !leap))
        return false;
    *days = days_from_civil((long)y, m, d);
    return true;
}

bool rd_day_valid(const char *d)
{
    long x;
    return parse_day(d, &x);
}

void rd_day_add(const char *d, int days, char out[11])
{
    long z = 0;
    if (!parse_day(d, &z)) {
        snprintf(out, 11, "%s", "0000-00-00");
        return;
    }
    long y;
    unsigned m, dd;
    civil_from_days(z + days, &y, &m, &dd);
    if (y < 0 || y > 9999) {
        snprintf(out, 11, "%s", y < 0 ? "0000-01-01" : "9999-12-31");
        return;
    }
    char buf[40];
    snprintf(buf, sizeof(buf), "%04ld-%02u-%02u", y, m % 100u, dd % 100u);
    memcpy(out, buf, 10);
    out[10] = '\0';
}

int rd_day_weekday(const char *d)
{
    long z;
    if (!parse_day(d, &z))
        return -1;
    long w = (z + 3) % 7; /* 1970-01-01 was a Thursday */
    return (int)(w < 0 ? w + 7 : w);
}

long rd_day_diff(const char *a, const char *b)
{
    long x = 0, y = 0;
    if (!parse_day(a, &x) || !parse_day(b, &y))
        return 0;
    return y - x;
}

const char *rd_timesync_plural(long n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

void rd_timesync_note(const struct rd_sync *s, size_t from, const char *quiet, char *out,
                      size_t outlen)
{
    static const char *const kinds[] = {"attendance_pushed", "attendance_removed",
                                        "absence_created",   "absence_removed",
                                        "conflict",          "error"};
    bool ours = false;
    for (size_t i = from; i < s->nfindings && !ours; i++)
        for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]) && !ours; k++)
            ours = strcmp(s->findings[i].kind, kinds[k]) == 0;
    rd_sync_note(s, out, outlen);
    if (ours || !quiet || !*quiet)
        return;
    size_t n = strlen(out);
    if (n + 3 < outlen)
        snprintf(out + n, outlen - n, "%s%s", n ? "; " : "", quiet);
}

/* ---- the cache ---- */

struct kind_ops {
    size_t size;
    int64_t (*who)(const void *);
    const char *(*date)(const void *);
    int (*cmp)(const void *, const void *);
    void (*free_items)(void *items, size_t count);
    int (*fetch)(struct rd_sync *s, int64_t who, const char *from, const char *to, void **items,
                 size_t *count, struct rd_http_error *err);
};

struct slot {
    int64_t who; /* 0: everyone */
    char from[11], to[11];
    unsigned long gen;
    void *items; /* sorted by ops->cmp: person, then day */
    size_t count;
};

struct mark {
    int64_t who;
    unsigned long gen; /* written after this generation: older slots do not serve them */
};

struct kind {
    const struct kind_ops *ops;
    struct slot *slots;
    size_t nslots;
    struct mark *marks;
    size_t nmarks;
};

struct time_cache {
    unsigned long gen;
    struct kind presences, schedules, attendances;
    char today[11];
    bool bulk;
};

/* presences */
static int64_t p_who(const void *x)
{
    return ((const struct rd_moco_presence *)x)->user_id;
}
static const char *p_date(const void *x)
{
    return ((const struct rd_moco_presence *)x)->date;
}
static int p_cmp(const void *a, const void *b)
{
    const struct rd_moco_presence *x = a, *y = b;
    if (x->user_id != y->user_id)
        return x->user_id < y->user_id ? -1 : 1;
    int c = strcmp(x->date, y->date);
    if (!c)
        c = strcmp(x->from, y->from);
    return c ? c : (x->id < y->id ? -1 : x->id > y->id);
}
static void p_free(void *items, size_t n)
{
    struct rd_moco_presence_list l = {items, n};
    rd_moco_presence_list_free(&l);
}
static int p_fetch(struct rd_sync *s, int64_t who, const char *from, const char *to, void **items,
                   size_t *count, struct rd_http_error *err)
{
    struct rd_moco *m = rd_sync_moco(s, err);
    struct rd_moco_presence_list l;
    if (!m || rd_moco_list_presences(m, from, to, who, s->deadline, &l, err) != 0)
        return -1;
    *items = l.items;
    *count = l.count;
    return 0;
}

/* schedules */
static int64_t s_who(const void *x)
{
    return ((const struct rd_moco_schedule *)x)->user_id;
}
static const char *s_date(const void *x)
{
    return ((const struct rd_moco_schedule *)x)->date;
}
static int s_cmp(const void *a, const void *b)
{
    const struct rd_moco_schedule *x = a, *y = b;
    if (x->user_id != y->user_id)
        return x->user_id < y->user_id ? -1 : 1;
    int c = strcmp(x->date, y->date);
    return c ? c : (x->id < y->id ? -1 : x->id > y->id);
}
static void s_free(void *items, size_t n)
{
    struct rd_moco_schedule_list l = {items, n};
    rd_moco_schedule_list_free(&l);
}
static int s_fetch(struct rd_sync *s, int64_t who, const char *from, const char *to, void **items,
                   size_t *count, struct rd_http_error *err)
{
    struct rd_moco *m = rd_sync_moco(s, err);
    struct rd_moco_schedule_list l;
    if (!m || rd_moco_list_schedules(m, from, to, who, s->deadline, &l, err) != 0)
        return -1;
    *items = l.items;
    *count = l.count;
    return 0;
}

/* attendances */
static int64_t a_who(const void *x)
{
    return ((const struct rd_personio_attendance *)x)->employee_id;
}
static const char *a_date(const void *x)
{
    return ((const struct rd_personio_attendance *)x)->date;
}
static int a_cmp(const void *a, const void *b)
{
    const struct rd_personio_attendance *x = a, *y = b;
    if (x->employee_id != y->employee_id)
        return x->employee_id < y->employee_id ? -1 : 1;
    int c = strcmp(x->date, y->date);
    if (!c)
        c = strcmp(x->start_time, y->start_time);
    return c ? c : (x->id < y->id ? -1 : x->id > y->id);
}
static void a_free(void *items, size_t n)
{
    struct rd_personio_attendance_list l = {items, n};
    rd_personio_attendance_list_free(&l);
}
static int a_fetch(struct rd_sync *s, int64_t who, const char *from, const char *to, void **items,
                   size_t *count, struct rd_http_error *err)
{
    struct rd_personio *p = rd_sync_personio(s, err);
    struct rd_personio_attendance_list l;
    if (!p || rd_personio_list_attendances(p, from, to, who, s->deadline, &l, err) != 0)
        return -1;
    *items = l.items;
    *count = l.count;
    return 0;
}

static const struct kind_ops PRESENCE_OPS = {
    sizeof(struct rd_moco_presence), p_who, p_date, p_cmp, p_free, p_fetch};
static const struct kind_ops SCHEDULE_OPS = {
    sizeof(struct rd_moco_schedule), s_who, s_date, s_cmp, s_free, s_fetch};
static const struct kind_ops ATTENDANCE_OPS = {
    sizeof(struct rd_personio_attendance), a_who, a_date, a_cmp, a_free, a_fetch};

static void kind_free(struct kind *k)
{
    for (size_t i = 0; i < k->nslots; i++)
        k->ops->free_items(k->slots[i].items, k->slots[i].count);
    free(k->slots);
    free(k->marks);
}

static void cache_free(void *data)
{
    struct time_cache *c = data;
    kind_free(&c->presences);
    kind_free(&c->schedules);
    kind_free(&c->attendances);
    free(c);
}

static struct time_cache *cache_of(struct rd_sync *s)
{
    struct rd_sync_ext *x = &s->ext[RD_SYNC_EXT_TIME];
    if (!x->data) {
        struct time_cache *c = rd_calloc(1, sizeof(*c));
        c->presences.ops = &PRESENCE_OPS;
        c->schedules.ops = &SCHEDULE_OPS;
        c->attendances.ops = &ATTENDANCE_OPS;
        x->data = c;
        x->free = cache_free;
    }
    return x->data;
}

/* Orders an item against the key (who, day): <0 when the item sorts before it. */
static int key_cmp(const struct kind_ops *ops, const void *item, int64_t who, const char *day)
{
    int64_t w = ops->who(item);
    if (w != who)
        return w < who ? -1 : 1;
    return strcmp(ops->date(item), day);
}

/* First index whose item is not before (who, day), or (with after) not at or before it. */
static size_t bound(const struct kind_ops *ops, const struct slot *sl, int64_t who, const char *day,
                    bool after)
{
    size_t lo = 0, hi = sl->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(ops, (const char *)sl->items + mid * ops->size, who, day);
        if (c < 0 || (after && c == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static unsigned long written_gen(const struct kind *k, int64_t who)
{
    for (size_t i = 0; i < k->nmarks; i++)
        if (k->marks[i].who == who)
            return k->marks[i].gen;
    return 0;
}

static void mark_written(struct time_cache *c, struct kind *k, int64_t who)
{
    c->gen++;
    for (size_t i = 0; i < k->nmarks; i++)
        if (k->marks[i].who == who) {
            k->marks[i].gen = c->gen;
            return;
        }
    k->marks = rd_realloc(k->marks, (k->nmarks + 1) * sizeof(*k->marks));
    k->marks[k->nmarks++] = (struct mark){who, c->gen};
}

static struct slot *add_slot(struct time_cache *c, struct kind *k, int64_t who, const char *from,
                             const char *to, void *items, size_t count)
{
    if (count > 1)
        qsort(items, count, k->ops->size, k->ops->cmp);
    k->slots = rd_realloc(k->slots, (k->nslots + 1) * sizeof(*k->slots));
    struct slot *sl = &k->slots[k->nslots++];
    memset(sl, 0, sizeof(*sl));
    sl->who = who;
    snprintf(sl->from, sizeof(sl->from), "%s", from);
    snprintf(sl->to, sizeof(sl->to), "%s", to);
    sl->gen = ++c->gen;
    sl->items = items;
    sl->count = count;
    return sl;
}

/* The items of who on [from, to]: from the newest slot that covers them, else read. */
static int kind_read(struct rd_sync *s, struct kind *k, int64_t who, const char *from,
                     const char *to, void **items, size_t *count, struct rd_http_error *err)
{
    struct time_cache *c = cache_of(s);
    unsigned long wg = written_gen(k, who);
    const struct slot *hit = NULL;
    for (size_t i = k->nslots; i-- > 0 && !hit;) {
        const struct slot *sl = &k->slots[i];
        if (sl->gen > wg && (sl->who == who || sl->who == 0) && strcmp(sl->from, from) <= 0 &&
            strcmp(sl->to, to) >= 0)
            hit = sl;
    }
    if (!hit) {
        void *got = NULL;
        size_t n = 0;
        if (k->ops->fetch(s, who, from, to, &got, &n, err) != 0)
            return -1;
        hit = add_slot(c, k, who, from, to, got, n);
    }
    size_t lo = bound(k->ops, hit, who, from, false);
    size_t hi = bound(k->ops, hit, who, to, true);
    *count = hi > lo ? hi - lo : 0;
    *items = *count ? (char *)hit->items + lo * k->ops->size : NULL; /* no offset on NULL */
    return 0;
}

int rd_timesync_presences(struct rd_sync *s, int64_t moco_user_id, const char *from, const char *to,
                          struct rd_moco_presence_list *view, struct rd_http_error *err)
{
    void *items;
    memset(view, 0, sizeof(*view));
    if (kind_read(s, &cache_of(s)->presences, moco_user_id, from, to, &items, &view->count, err) !=
        0)
        return -1;
    view->items = items;
    return 0;
}

int rd_timesync_schedules(struct rd_sync *s, int64_t moco_user_id, const char *from, const char *to,
                          struct rd_moco_schedule_list *view, struct rd_http_error *err)
{
    void *items;
    memset(view, 0, sizeof(*view));
    if (kind_read(s, &cache_of(s)->schedules, moco_user_id, from, to, &items, &view->count, err) !=
        0)
        return -1;
    view->items = items;
    return 0;
}

int rd_timesync_attendances(struct rd_sync *s, int64_t employee_id, const char *from,
                            const char *to, struct rd_personio_attendance_list *view,
                            struct rd_http_error *err)
{
    void *items;
    memset(view, 0, sizeof(*view));
    if (kind_read(s, &cache_of(s)->attendances, employee_id, from, to, &items, &view->count, err) !=
        0)
        return -1;
    view->items = items;
    return 0;
}

void rd_timesync_attendances_written(struct rd_sync *s, int64_t employee_id)
{
    struct time_cache *c = cache_of(s);
    mark_written(c, &c->attendances, employee_id);
}

void rd_timesync_schedules_written(struct rd_sync *s, int64_t moco_user_id)
{
    struct time_cache *c = cache_of(s);
    mark_written(c, &c->schedules, moco_user_id);
}

int rd_timesync_preload(struct rd_sync *s, unsigned what, const char *from, const char *to,
                        struct rd_http_error *err)
{
    struct time_cache *c = cache_of(s);
    struct kind *kinds[3] = {&c->presences, &c->schedules, &c->attendances};
    static const unsigned bits[3] = {RD_TIMESYNC_PRESENCES, RD_TIMESYNC_SCHEDULES,
                                     RD_TIMESYNC_ATTENDANCES};
    for (int i = 0; i < 3; i++) {
        if (!(what & bits[i]))
            continue;
        void *items = NULL;
        size_t n = 0;
        if (kinds[i]->ops->fetch(s, 0, from, to, &items, &n, err) != 0)
            return -1;
        add_slot(c, kinds[i], 0, from, to, items, n);
        /* everyone's copy is newer than any earlier write mark */
        kinds[i]->nmarks = 0;
    }
    return 0;
}

size_t rd_timesync_preloaded(struct rd_sync *s, unsigned what)
{
    struct time_cache *c = cache_of(s);
    struct kind *k = what == RD_TIMESYNC_PRESENCES     ? &c->presences
                     : what == RD_TIMESYNC_SCHEDULES   ? &c->schedules
                     : what == RD_TIMESYNC_ATTENDANCES ? &c->attendances
                                                       : NULL;
    for (size_t i = k ? k->nslots : 0; i-- > 0;)
        if (k->slots[i].who == 0)
            return k->slots[i].count;
    return 0;
}

bool rd_timesync_preload_pays(size_t people, size_t population, const char *from, const char *to,
                              double per_person_day, int page_size)
{
    double days = (double)rd_day_diff(from, to) + 1.0;
    double pages = days * (double)population * per_person_day / (double)page_size + 1.0;
    return pages < (double)people;
}

char *rd_timesync_lock_key(const struct rd_sync *s, const char *what, int64_t id)
{
    return rd_asprintf("timesync:%s:%lld:%lld", what, (long long)s->connection_id, (long long)id);
}

int rd_timesync_lock(struct rd_sync *s, const char *what, int64_t id, bool lock,
                     struct rd_http_error *err)
{
    char *key = rd_timesync_lock_key(s, what, id);
    if (rd_prefetch_holds_lock(s, key)) { /* the run's chunk holds it (prefetch_internal.h) */
        free(key);
        return 0;
    }
    char dberr[256];
    const char *params[1] = {key};
    int rc = rd_db_run(s->db,
                       lock ? "SELECT pg_advisory_lock(hashtextextended($1, 0))"
                            : "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                       1, params, dberr, sizeof(dberr));
    if (rc != 0)
        rd_http_error_set(err, false, 0, "%s: %s", key, dberr);
    free(key);
    return rc;
}

/* ---- today ---- */

int rd_timesync_today(struct rd_sync *s, char out[11], struct rd_http_error *err)
{
    struct time_cache *c = cache_of(s);
    if (!c->today[0]) {
        char dberr[256];
        const char *params[1] = {rd_sync_timezone(s)};
        PGresult *res =
            rd_db_exec(s->db, "SELECT to_char((now() AT TIME ZONE $1)::date, 'YYYY-MM-DD')", 1,
                       params, dberr, sizeof(dberr));
        if (!res) {
            rd_http_error_set(err, false, 0, "today in %s: %s", params[0], dberr);
            return -1;
        }
        snprintf(c->today, sizeof(c->today), "%s", PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    memcpy(out, c->today, 11);
    return 0;
}

/* ---- people ---- */

void rd_timesync_bulk(struct rd_sync *s)
{
    cache_of(s)->bulk = true;
}

/* The one employee with this e-mail in the full list, or NULL (none, or several). */
static const struct rd_personio_employee *
employee_by_email(const struct rd_personio_employee_list *l, const char *email)
{
    const struct rd_personio_employee *hit = NULL;
    for (size_t i = 0; email && i < l->count; i++)
        if (l->items[i].email && strcasecmp(l->items[i].email, email) == 0) {
            if (hit)
                return NULL;
            hit = &l->items[i];
        }
    return hit;
}

/* Bulk resolution: the MOCO user's e-mail matched in the full employee list, then pinned. */
static int link_from_lists(struct rd_sync *s, int64_t moco_user_id, int64_t *personio_id,
                           struct rd_http_error *err)
{
    const struct rd_moco_user_list *users = NULL;
    const struct rd_personio_employee_list *emps = NULL;
    if (rd_sync_moco_users(s, &users, err) != 0 || rd_sync_employees(s, &emps, err) != 0)
        return -1;
    const char *email = NULL;
    for (size_t i = 0; i < users->count && !email; i++)
        if (users->items[i].id == moco_user_id)
            email = users->items[i].email;
    const struct rd_personio_employee *e = employee_by_email(emps, email);
    if (!e)
        return 0;
    int64_t linked = 0;
    if (rd_timesync_moco_for_employee(s, e, &linked, err) != 0)
        return -1;
    if (linked == moco_user_id)
        *personio_id = e->id;
    return 0;
}

int rd_timesync_employee_for_moco(struct rd_sync *s, int64_t moco_user_id,
                                  const struct rd_personio_employee **e, struct rd_http_error *err)
{
    *e = NULL;
    char cid[24], mid[24], dberr[256];
    snprintf(cid, sizeof(cid), "%lld", (long long)s->connection_id);
    snprintf(mid, sizeof(mid), "%lld", (long long)moco_user_id);
    const char *params[2] = {cid, mid};
    PGresult *res = rd_db_exec(s->db,
                               "SELECT personio_id FROM people WHERE connection_id = $1::bigint"
                               " AND moco_user_id = $2::bigint",
                               2, params, dberr, sizeof(dberr));
    if (!res) {
        rd_http_error_set(err, false, 0, "people: %s", dberr);
        return -1;
    }
    int64_t pid = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    if (!pid) {
        int rc = cache_of(s)->bulk ? link_from_lists(s, moco_user_id, &pid, err)
                                   : rd_identity_person_for_moco(s, moco_user_id, &pid, err);
        if (rc != 0)
            return -1;
    }
    if (!pid)
        return 0;
    bool gone = false;
    if (cache_of(s)->bulk) { /* answered from the full list */
        const struct rd_personio_employee_list *emps = NULL;
        if (rd_sync_employees(s, &emps, err) != 0)
            return -1;
    }
    return rd_sync_employee(s, pid, e, &gone, err);
}

int rd_timesync_moco_for_employee(struct rd_sync *s, const struct rd_personio_employee *e,
                                  int64_t *moco_user_id, struct rd_http_error *err)
{
    *moco_user_id = 0;
    char dberr[256];
    if (rd_identity_remember(s, e, dberr, sizeof(dberr)) != 0) {
        rd_http_error_set(err, false, 0, "people: %s", dberr);
        return -1;
    }
    if (cache_of(s)->bulk) { /* rd_identity_moco matches against the full list once it is read */
        const struct rd_moco_user_list *users = NULL;
        if (rd_sync_moco_users(s, &users, err) != 0)
            return -1;
    }
    enum rd_link_state st;
    return rd_identity_moco(s, e, moco_user_id, &st, err);
}

/* ---- people to converge ---- */

void rd_timesync_want(struct rd_timesync_wants *w, int64_t id, const char *from, const char *to,
                      int64_t hint)
{
    if (id <= 0 || !rd_day_valid(from) || !rd_day_valid(to))
        return;
    for (size_t i = 0; i < w->count; i++)
        if (w->items[i].id == id) {
            struct rd_timesync_want *x = &w->items[i];
            if (strcmp(from, x->from) < 0)
                memcpy(x->from, from, 11);
            if (strcmp(to, x->to) > 0)
                memcpy(x->to, to, 11);
            if (hint)
                x->hint = hint;
            return;
        }
    w->items = rd_realloc(w->items, (w->count + 1) * sizeof(*w->items));
    struct rd_timesync_want *x = &w->items[w->count++];
    x->id = id;
    memcpy(x->from, from, 11);
    memcpy(x->to, to, 11);
    x->hint = hint;
}

void rd_timesync_wants_free(struct rd_timesync_wants *w)
{
    free(w->items);
    w->items = NULL;
    w->count = 0;
}

bool rd_timesync_clip(const struct rd_sync *s, struct rd_timesync_want *x)
{
    const char *start = rd_sync_start_date(s);
    if (start && strcmp(x->to, start) < 0)
        return false;
    if (start && strcmp(x->from, start) < 0)
        snprintf(x->from, sizeof(x->from), "%s", start);
    return true;
}

bool rd_timesync_span(const struct rd_sync *s, const struct rd_timesync_wants *w, char from[11],
                      char to[11])
{
    struct rd_timesync_want all = {.from = "9999-12-31", .to = "0000-01-01"};
    for (size_t i = 0; i < w->count; i++) {
        if (strcmp(w->items[i].from, all.from) < 0)
            memcpy(all.from, w->items[i].from, 11);
        if (strcmp(w->items[i].to, all.to) > 0)
            memcpy(all.to, w->items[i].to, 11);
    }
    if (!w->count || !rd_timesync_clip(s, &all))
        return false;
    memcpy(from, all.from, 11);
    memcpy(to, all.to, 11);
    return true;
}

int rd_timesync_each(struct rd_sync *s, struct rd_timesync_wants *w, rd_timesync_person_fn fn,
                     void *arg, size_t *failed, struct rd_http_error *err)
{
    struct rd_http_error first = {0};
    *failed = 0;
    for (size_t i = 0; i < w->count; i++) {
        if (rd_sync_should_stop(s)) {
            rd_http_error_set(err, false, 0,
                              "stopped after %zu of %zu people; the next run "
                              "continues",
                              i, w->count);
            return -1;
        }
        if (fn(s, &w->items[i], arg, err) == 0)
            continue;
        if (!err->permanent)
            return -1;
        if (!(*failed)++)
            first = *err;
    }
    if (*failed) {
        *err = first;
        return -1;
    }
    return 0;
}

size_t rd_timesync_count(const struct rd_sync *s, const char *kind)
{
    size_t n = 0;
    for (size_t i = 0; i < s->nfindings; i++)
        n += strcmp(s->findings[i].kind, kind) == 0;
    return n;
}

int64_t rd_timesync_id(const char *text)
{
    char *end = NULL;
    long long n = text && *text ? strtoll(text, &end, 10) : 0;
    return end && *end == '\0' && n > 0 ? (int64_t)n : 0;
}

/* ---- watermarks ---- */

int rd_timesync_watermark(struct rd_sync *s, const char *column, char *out, size_t outlen,
                          struct rd_http_error *err)
{
    out[0] = '\0';
    bool presences = strcmp(column, "presences_after") == 0;
    char cid[24], dberr[256];
    snprintf(cid, sizeof(cid), "%lld", (long long)s->connection_id);
    const char *params[1] = {cid};
    PGresult *res =
        rd_db_exec(s->db,
                   presences ? "SELECT to_char(presences_after AT TIME ZONE 'UTC',"
                               " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM timesync_sweeps"
                               " WHERE connection_id = $1::bigint AND presences_after IS NOT NULL"
                             : "SELECT time_offs_from::text FROM timesync_sweeps"
                               " WHERE connection_id = $1::bigint AND time_offs_from IS NOT NULL",
                   1, params, dberr, sizeof(dberr));
    if (!res) {
        rd_http_error_set(err, false, 0, "timesync_sweeps: %s", dberr);
        return -1;
    }
    if (PQntuples(res) == 1)
        snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return 0;
}

int rd_timesync_set_watermark(struct rd_sync *s, const char *column, const char *value,
                              struct rd_http_error *err)
{
    if (s->dry_run)
        return 0;
    bool presences = strcmp(column, "presences_after") == 0;
    char cid[24], dberr[256];
    snprintf(cid, sizeof(cid), "%lld", (long long)s->connection_id);
    const char *params[2] = {cid, value};
    if (rd_db_run(s->db,
                  presences
                      ? "INSERT INTO timesync_sweeps (connection_id, presences_after)"
                        " VALUES ($1::bigint, $2::timestamptz) ON CONFLICT (connection_id) DO"
                        " UPDATE SET presences_after = excluded.presences_after, updated_at = now()"
                      : "INSERT INTO timesync_sweeps (connection_id, time_offs_from)"
                        " VALUES ($1::bigint, $2::date) ON CONFLICT (connection_id) DO"
                        " UPDATE SET time_offs_from = excluded.time_offs_from, updated_at = now()",
                  2, params, dberr, sizeof(dberr)) != 0) {
        rd_http_error_set(err, false, 0, "timesync_sweeps: %s", dberr);
        return -1;
    }
    return 0;
}
