/*
 * In-process counters and histograms rendered in Prometheus text format.
 * A series is found by its raw label values (hashed, then compared), so the
 * hot path neither formats nor allocates; the label text is rendered once,
 * when a series first appears. One mutex, taken once per request.
 */
#include "rosterd/metrics.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NBUCKETS 12
static const double bucket_bounds[NBUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                               0.05,   0.1,   0.25,   0.5,   1.0,  5.0};

#define MAX_LABELS 3
#define NSLOTS 64 /* hash slots per family; series beyond that share chains */

/*
 * One labelled series of a family. vals are the raw label values (never NULL),
 * labels their rendered text, e.g. connection="acme",source="moco"; both are
 * set at creation and never change.
 */
struct series {
    char *vals[MAX_LABELS];
    char *labels;
    uint64_t hash;
    struct series *next;                  /* creation order, newest first: the render order */
    struct series *chain;                 /* same hash slot */
    unsigned long long value;             /* counters */
    unsigned long long buckets[NBUCKETS]; /* histograms */
    unsigned long long count;
    double sum; /* histograms: sum; gauges: value */
};

struct family {
    const char *const names[MAX_LABELS];
    int nlabels;
    struct series *list;
    struct series *slots[NSLOTS];
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct family g_webhooks = {{"connection", "source", "outcome"}, 3, NULL, {0}};
static struct family g_upstream = {{"system", "code"}, 2, NULL, {0}};
static struct family g_ingest = {{NULL}, 0, NULL, {0}};
static struct family g_jobs = {{"kind"}, 1, NULL, {0}};
static struct family g_reconcile = {{"connection"}, 1, NULL, {0}};

/* Label values are escaped per the exposition format: backslash, quote, newline. */
static void label(struct rd_buf *b, const char *name, const char *value, bool first)
{
    if (!first)
        rd_buf_putc(b, ',');
    rd_buf_printf(b, "%s=\"", name);
    for (const char *p = value; *p; p++) {
        if (*p == '\\' || *p == '"')
            rd_buf_putc(b, '\\');
        if (*p == '\n') {
            rd_buf_puts(b, "\\n");
            continue;
        }
        rd_buf_putc(b, *p);
    }
    rd_buf_putc(b, '"');
}

/* FNV-1a over the values, each ended by a 0 byte so ("ab","c") and ("a","bc") differ. */
static uint64_t values_hash(const char *const *vals, int n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; vals && i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)vals[i];; p++) {
            h = (h ^ *p) * 0x100000001b3ULL;
            if (!*p)
                break;
        }
    }
    return h;
}

/* The series of these values, created on first use; call with g_lock held. */
static struct series *series_find(struct family *f, const char *const *vals)
{
    uint64_t h = values_hash(vals, f->nlabels);
    struct series **slot = &f->slots[h % NSLOTS];
    for (struct series *s = *slot; s; s = s->chain) {
        if (s->hash != h)
            continue;
        int i = 0;
        while (i < f->nlabels && strcmp(s->vals[i], vals[i]) == 0)
            i++;
        if (i == f->nlabels)
            return s;
    }
    struct series *s = rd_calloc(1, sizeof(*s));
    struct rd_buf l = {0};
    for (int i = 0; i < f->nlabels; i++) {
        s->vals[i] = rd_strdup(vals[i]);
        label(&l, f->names[i], vals[i], i == 0);
    }
    s->labels = rd_buf_steal(&l);
    s->hash = h;
    s->chain = *slot;
    *slot = s;
    s->next = f->list;
    f->list = s;
    return s;
}

static void histogram_observe(struct series *h, double v)
{
    for (int i = 0; i < NBUCKETS; i++)
        if (v <= bucket_bounds[i])
            h->buckets[i]++;
    h->count++;
    h->sum += v;
}

#define OR_EMPTY(s) ((s) ? (s) : "")

void rd_metrics_webhook(const char *connection, const char *source, const char *outcome)
{
    const char *vals[3] = {OR_EMPTY(connection), OR_EMPTY(source), OR_EMPTY(outcome)};
    pthread_mutex_lock(&g_lock);
    series_find(&g_webhooks, vals)->value++;
    pthread_mutex_unlock(&g_lock);
}

void rd_metrics_webhook_answered(const char *connection, const char *source, const char *outcome,
                                 double seconds)
{
    const char *vals[3] = {OR_EMPTY(connection), OR_EMPTY(source), OR_EMPTY(outcome)};
    pthread_mutex_lock(&g_lock);
    series_find(&g_webhooks, vals)->value++;
    histogram_observe(series_find(&g_ingest, NULL), seconds);
    pthread_mutex_unlock(&g_lock);
}

void rd_metrics_ingest_observe(double seconds)
{
    pthread_mutex_lock(&g_lock);
    histogram_observe(series_find(&g_ingest, NULL), seconds);
    pthread_mutex_unlock(&g_lock);
}

void rd_metrics_job_observe(const char *kind, double seconds)
{
    const char *vals[1] = {OR_EMPTY(kind)};
    pthread_mutex_lock(&g_lock);
    histogram_observe(series_find(&g_jobs, vals), seconds);
    pthread_mutex_unlock(&g_lock);
}

void rd_metrics_upstream(const char *system, int code)
{
    char codebuf[16];
    snprintf(codebuf, sizeof(codebuf), "%d", code);
    const char *vals[2] = {OR_EMPTY(system), codebuf};
    pthread_mutex_lock(&g_lock);
    series_find(&g_upstream, vals)->value++;
    pthread_mutex_unlock(&g_lock);
}

void rd_metrics_reconcile_success(const char *connection, int64_t unix_seconds)
{
    const char *vals[1] = {OR_EMPTY(connection)};
    pthread_mutex_lock(&g_lock);
    series_find(&g_reconcile, vals)->sum = (double)unix_seconds;
    pthread_mutex_unlock(&g_lock);
}

static void render_counters(struct rd_buf *out, const char *name, const char *help,
                            const struct series *list)
{
    rd_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (const struct series *c = list; c; c = c->next)
        rd_buf_printf(out, "%s{%s} %llu\n", name, c->labels, c->value);
}

static void render_histograms(struct rd_buf *out, const char *name, const char *help,
                              const struct series *list)
{
    rd_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (const struct series *h = list; h; h = h->next) {
        const char *sep = h->labels[0] ? "," : "";
        for (int i = 0; i < NBUCKETS; i++)
            rd_buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, h->labels, sep,
                          bucket_bounds[i], h->buckets[i]);
        rd_buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, h->labels, sep, h->count);
        if (h->labels[0]) {
            rd_buf_printf(out, "%s_sum{%s} %.9g\n", name, h->labels, h->sum);
            rd_buf_printf(out, "%s_count{%s} %llu\n", name, h->labels, h->count);
        } else {
            rd_buf_printf(out, "%s_sum %.9g\n%s_count %llu\n", name, h->sum, name, h->count);
        }
    }
}

void rd_metrics_render(struct rd_buf *out)
{
    pthread_mutex_lock(&g_lock);
    render_counters(out, "rosterd_webhooks_total", "Webhook deliveries by outcome.",
                    g_webhooks.list);
    series_find(&g_ingest, NULL); /* the unlabelled histogram is always shown */
    render_histograms(out, "rosterd_ingest_seconds", "Time from a webhook request to its answer.",
                      g_ingest.list);
    render_histograms(out, "rosterd_job_seconds", "Handler run time by job kind.", g_jobs.list);
    render_counters(out, "rosterd_upstream_requests_total",
                    "Requests to upstream APIs by system and HTTP status.", g_upstream.list);
    rd_buf_puts(out, "# HELP rosterd_reconcile_last_success_timestamp_seconds Unix time of the "
                     "last successful reconciliation.\n"
                     "# TYPE rosterd_reconcile_last_success_timestamp_seconds gauge\n");
    for (const struct series *g = g_reconcile.list; g; g = g->next)
        rd_buf_printf(out, "rosterd_reconcile_last_success_timestamp_seconds{%s} %.0f\n", g->labels,
                      g->sum);
    pthread_mutex_unlock(&g_lock);
}

static void family_free(struct family *f)
{
    while (f->list) {
        struct series *n = f->list->next;
        for (int i = 0; i < f->nlabels; i++)
            free(f->list->vals[i]);
        free(f->list->labels);
        free(f->list);
        f->list = n;
    }
    memset(f->slots, 0, sizeof(f->slots));
}

void rd_metrics_reset(void)
{
    pthread_mutex_lock(&g_lock);
    family_free(&g_webhooks);
    family_free(&g_upstream);
    family_free(&g_ingest);
    family_free(&g_jobs);
    family_free(&g_reconcile);
    pthread_mutex_unlock(&g_lock);
}
