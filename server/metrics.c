/*
 * In-process counters and histograms rendered in Prometheus text format.
 * Label sets are few (connections × sources × outcomes), so a mutex and
 * linear lists are enough; the hot path takes the lock once per request.
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

struct counter {
    char *labels; /* rendered label set, e.g. connection="acme",source="moco" */
    unsigned long long value;
    struct counter *next;
};

struct histogram {
    char *labels; /* may be "" */
    unsigned long long buckets[NBUCKETS];
    unsigned long long count;
    double sum;
    struct histogram *next;
};

struct gauge {
    char *labels;
    double value;
    struct gauge *next;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct counter *g_webhooks;
static struct counter *g_upstream;
static struct histogram *g_ingest;
static struct histogram *g_jobs;
static struct gauge *g_reconcile;

/* Label values are escaped per the exposition format: backslash, quote, newline. */
static void label(struct rd_buf *b, const char *name, const char *value, bool first)
{
    if (!first)
        rd_buf_putc(b, ',');
    rd_buf_printf(b, "%s=\"", name);
    for (const char *p = value ? value : ""; *p; p++) {
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

static struct counter *counter_find(struct counter **list, const char *labels)
{
    for (struct counter *c = *list; c; c = c->next)
        if (strcmp(c->labels, labels) == 0)
            return c;
    struct counter *c = rd_calloc(1, sizeof(*c));
    c->labels = rd_strdup(labels);
    c->next = *list;
    *list = c;
    return c;
}

static struct histogram *histogram_find(struct histogram **list, const char *labels)
{
    for (struct histogram *h = *list; h; h = h->next)
        if (strcmp(h->labels, labels) == 0)
            return h;
    struct histogram *h = rd_calloc(1, sizeof(*h));
    h->labels = rd_strdup(labels);
    h->next = *list;
    *list = h;
    return h;
}

static void histogram_observe(struct histogram *h, double v)
{
    for (int i = 0; i < NBUCKETS; i++)
        if (v <= bucket_bounds[i])
            h->buckets[i]++;
    h->count++;
    h->sum += v;
}

void rd_metrics_webhook(const char *connection, const char *source, const char *outcome)
{
    struct rd_buf l = {0};
    label(&l, "connection", connection, true);
    label(&l, "source", source, false);
    label(&l, "outcome", outcome, false);
    pthread_mutex_lock(&g_lock);
    counter_find(&g_webhooks, l.data)->value++;
    pthread_mutex_unlock(&g_lock);
    rd_buf_free(&l);
}

void rd_metrics_ingest_observe(double seconds)
{
    pthread_mutex_lock(&g_lock);
    histogram_observe(histogram_find(&g_ingest, ""), seconds);
    pthread_mutex_unlock(&g_lock);
}

void rd_metrics_job_observe(const char *kind, double seconds)
{
    struct rd_buf l = {0};
    label(&l, "kind", kind, true);
    pthread_mutex_lock(&g_lock);
    histogram_observe(histogram_find(&g_jobs, l.data), seconds);
    pthread_mutex_unlock(&g_lock);
    rd_buf_free(&l);
}

void rd_metrics_upstream(const char *system, int code)
{
    struct rd_buf l = {0};
    char codebuf[16];
    snprintf(codebuf, sizeof(codebuf), "%d", code);
    label(&l, "system", system, true);
    label(&l, "code", codebuf, false);
    pthread_mutex_lock(&g_lock);
    counter_find(&g_upstream, l.data)->value++;
    pthread_mutex_unlock(&g_lock);
    rd_buf_free(&l);
}

void rd_metrics_reconcile_success(const char *connection, int64_t unix_seconds)
{
    struct rd_buf l = {0};
    label(&l, "connection", connection, true);
    pthread_mutex_lock(&g_lock);
    struct gauge *g;
    for (g = g_reconcile; g; g = g->next)
        if (strcmp(g->labels, l.data) == 0)
            break;
    if (!g) {
        g = rd_calloc(1, sizeof(*g));
        g->labels = rd_strdup(l.data);
        g->next = g_reconcile;
        g_reconcile = g;
    }
    g->value = (double)unix_seconds;
    pthread_mutex_unlock(&g_lock);
    rd_buf_free(&l);
}

static void render_counters(struct rd_buf *out, const char *name, const char *help,
                            const struct counter *list)
{
    rd_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (const struct counter *c = list; c; c = c->next)
        rd_buf_printf(out, "%s{%s} %llu\n", name, c->labels, c->value);
}

static void render_histograms(struct rd_buf *out, const char *name, const char *help,
                              const struct histogram *list)
{
    rd_buf_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (const struct histogram *h = list; h; h = h->next) {
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
    render_counters(out, "rosterd_webhooks_total", "Webhook deliveries by outcome.", g_webhooks);
    if (!g_ingest)
        histogram_find(&g_ingest, "");
    render_histograms(out, "rosterd_ingest_seconds", "Time from a webhook request to its answer.",
                      g_ingest);
    render_histograms(out, "rosterd_job_seconds", "Handler run time by job kind.", g_jobs);
    render_counters(out, "rosterd_upstream_requests_total",
                    "Requests to upstream APIs by system and HTTP status.", g_upstream);
    rd_buf_puts(out, "# HELP rosterd_reconcile_last_success_timestamp_seconds Unix time of the "
                     "last successful reconciliation.\n"
                     "# TYPE rosterd_reconcile_last_success_timestamp_seconds gauge\n");
    for (const struct gauge *g = g_reconcile; g; g = g->next)
        rd_buf_printf(out, "rosterd_reconcile_last_success_timestamp_seconds{%s} %.0f\n", g->labels,
                      g->value);
    pthread_mutex_unlock(&g_lock);
}

static void free_counters(struct counter **list)
{
    while (*list) {
        struct counter *n = (*list)->next;
        free((*list)->labels);
        free(*list);
        *list = n;
    }
}

static void free_histograms(struct histogram **list)
{
    while (*list) {
        struct histogram *n = (*list)->next;
        free((*list)->labels);
        free(*list);
        *list = n;
    }
}

void rd_metrics_reset(void)
{
    pthread_mutex_lock(&g_lock);
    free_counters(&g_webhooks);
    free_counters(&g_upstream);
    free_histograms(&g_ingest);
    free_histograms(&g_jobs);
    while (g_reconcile) {
        struct gauge *n = g_reconcile->next;
        free(g_reconcile->labels);
        free(g_reconcile);
        g_reconcile = n;
    }
    pthread_mutex_unlock(&g_lock);
}
