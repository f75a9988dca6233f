/*
 * Unit tests for server/metrics.c: the text /metrics serves for a fixed set of
 * calls (byte for byte what the formatting-per-call version rendered, label
 * escaping and series order included), and many series sharing hash slots.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rosterd/metrics.h"

#include <stdio.h>
#include <string.h>

/* Every family, repeats, escapes, a NULL value and values that only differ in where they split. */
static void exercise(void)
{
    rd_metrics_webhook("acme", "moco", "queued");
    rd_metrics_webhook("acme", "moco", "queued");
    rd_metrics_webhook("acme", "personio", "unauthorized");
    rd_metrics_webhook("we\"ird\\co\nrp", "moco", "bad_request");
    rd_metrics_webhook(NULL, "moco", "not_found");
    rd_metrics_webhook("ab", "c", "queued");
    rd_metrics_webhook("a", "bc", "queued");
    rd_metrics_ingest_observe(0.0004);
    rd_metrics_ingest_observe(0.003);
    rd_metrics_ingest_observe(7.5);
    rd_metrics_job_observe("noop", 0.02);
    rd_metrics_job_observe("person.sync", 0.3);
    rd_metrics_job_observe("noop", 0.0001);
    rd_metrics_upstream("personio", 200);
    rd_metrics_upstream("personio", 429);
    rd_metrics_upstream("moco", 0);
    rd_metrics_upstream("personio", 200);
    rd_metrics_reconcile_success("acme", 1796300000);
    rd_metrics_reconcile_success("beta", 1796300001);
    rd_metrics_reconcile_success("acme", 1796300002);
}

static const char expected[] =
    "# HELP rosterd_webhooks_total Webhook deliveries by outcome.\n"
    "# TYPE rosterd_webhooks_total counter\n"
    "rosterd_webhooks_total{connection=\"a\",source=\"bc\",outcome=\"queued\"} 1\n"
    "rosterd_webhooks_total{connection=\"ab\",source=\"c\",outcome=\"queued\"} 1\n"
    "rosterd_webhooks_total{connection=\"\",source=\"moco\",outcome=\"not_found\"} 1\n"
    "rosterd_webhooks_total{connection=\"we\\\"ird\\\\co\\nrp\",source=\"moco\",outcome=\"bad_request\"} 1\n"
    "rosterd_webhooks_total{connection=\"acme\",source=\"personio\",outcome=\"unauthorized\"} 1\n"
    "rosterd_webhooks_total{connection=\"acme\",source=\"moco\",outcome=\"queued\"} 2\n"
    "# HELP rosterd_ingest_seconds Time from a webhook request to its answer.\n"
    "# TYPE rosterd_ingest_seconds histogram\n"
    "rosterd_ingest_seconds_bucket{le=\"0.0005\"} 1\n"
    "rosterd_ingest_seconds_bucket{le=\"0.001\"} 1\n"
    "rosterd_ingest_seconds_bucket{le=\"0.0025\"} 1\n"
    "rosterd_ingest_seconds_bucket{le=\"0.005\"} 2\n"
    "rosterd_ingest_seconds_bucket{le=\"0.01\"} 2\n"
    "rosterd_ingest_seconds_bucket{le=\"0.025\"} 2\n"
    "rosterd_ingest_seconds_bucket{le=\"0.05\"} 2\n"
    "rosterd_ingest_seconds_bucket{le=\"0.1\"} 2\n"
    "rosterd_ingest_seconds_bucket{le=\"0.25\"} 2\n"
    "rosterd_ingest_seconds_bucket{le=\"0.5\"} 2\n"
    "rosterd_ingest_seconds_bucket{le=\"1\"} 2\n"
    "rosterd_ingest_seconds_bucket{le=\"5\"} 2\n"
    "rosterd_ingest_seconds_bucket{le=\"+Inf\"} 3\n"
    "rosterd_ingest_seconds_sum 7.5034\n"
    "rosterd_ingest_seconds_count 3\n"
    "# HELP rosterd_job_seconds Handler run time by job kind.\n"
    "# TYPE rosterd_job_seconds histogram\n"
    "rosterd_job_seconds_bucket{kind=\"person.sync\",le=\"0.0005\"} 0\n"
    "rosterd_job_seconds_bucket{kind=\"person.sync\",le=\"0.001\"} 0\n"
    "rosterd_job_seconds_bucket{kind=\"person.sync\",le=\"0.0025\"} 0\n"
    "rosterd_job_seconds_bucket{kind=\"person.sync\",le=\"0.005\"} 0\n"
    "rosterd_job_seconds_bucket{kind=\"person.sync\",le=\"0.01\"} 0\n"
    "rosterd_job_seconds_bucket{kind=\"person.sync\",le=\"0.025\"} 0\n"
    "rosterd_job_seconds_bucket{kind=\"person.sync\",le=\"0.05\"} 0\n"
    "rosterd_job_seconds_bucket{kind=\"person.sync\",le=\"0.1\"} 0\n"
    "rosterd_job_seconds_bucket{kind=\"person.sync\",le=\"0.25\"} 0\n"
    "rosterd_job_seconds_bucket{kind=\"person.sync\",le=\"0.5\"} 1\n"
    "rosterd_job_seconds_bucket{kind=\"person.sync\",le=\"1\"} 1\n"
    "rosterd_job_seconds_bucket{kind=\"person.sync\",le=\"5\"} 1\n"
    "rosterd_job_seconds_bucket{kind=\"person.sync\",le=\"+Inf\"} 1\n"
    "rosterd_job_seconds_sum{kind=\"person.sync\"} 0.3\n"
    "rosterd_job_seconds_count{kind=\"person.sync\"} 1\n"
    "rosterd_job_seconds_bucket{kind=\"noop\",le=\"0.0005\"} 1\n"
    "rosterd_job_seconds_bucket{kind=\"noop\",le=\"0.001\"} 1\n"
    "rosterd_job_seconds_bucket{kind=\"noop\",le=\"0.0025\"} 1\n"
    "rosterd_job_seconds_bucket{kind=\"noop\",le=\"0.005\"} 1\n"
    "rosterd_job_seconds_bucket{kind=\"noop\",le=\"0.01\"} 1\n"
    "rosterd_job_seconds_bucket{kind=\"noop\",le=\"0.025\"} 2\n"
    "rosterd_job_seconds_bucket{kind=\"noop\",le=\"0.05\"} 2\n"
    "rosterd_job_seconds_bucket{kind=\"noop\",le=\"0.1\"} 2\n"
    "rosterd_job_seconds_bucket{kind=\"noop\",le=\"0.25\"} 2\n"
    "rosterd_job_seconds_bucket{kind=\"noop\",le=\"0.5\"} 2\n"
    "rosterd_job_seconds_bucket{kind=\"noop\",le=\"1\"} 2\n"
    "rosterd_job_seconds_bucket{kind=\"noop\",le=\"5\"} 2\n"
    "rosterd_job_seconds_bucket{kind=\"noop\",le=\"+Inf\"} 2\n"
    "rosterd_job_seconds_sum{kind=\"noop\"} 0.0201\n"
    "rosterd_job_seconds_count{kind=\"noop\"} 2\n"
    "# HELP rosterd_upstream_requests_total Requests to upstream APIs by system and HTTP status.\n"
    "# TYPE rosterd_upstream_requests_total counter\n"
    "rosterd_upstream_requests_total{system=\"moco\",code=\"0\"} 1\n"
    "rosterd_upstream_requests_total{system=\"personio\",code=\"429\"} 1\n"
    "rosterd_upstream_requests_total{system=\"personio\",code=\"200\"} 2\n"
    "# HELP rosterd_reconcile_last_success_timestamp_seconds Unix time of the last successful reconciliation.\n"
    "# TYPE rosterd_reconcile_last_success_timestamp_seconds gauge\n"
    "rosterd_reconcile_last_success_timestamp_seconds{connection=\"beta\"} 1796300001\n"
    "rosterd_reconcile_last_success_timestamp_seconds{connection=\"acme\"} 1796300002\n";

static void test_render_is_unchanged(void **state)
{
    (void)state;
    rd_metrics_reset();
    exercise();
    struct rd_buf b = {0};
    rd_metrics_render(&b);
    assert_string_equal(b.data, expected);
    rd_buf_free(&b);
    rd_metrics_reset();
}

static void test_answered_counts_both(void **state)
{
    (void)state;
    rd_metrics_reset();
    rd_metrics_webhook_answered("acme", "moco", "queued", 0.003);
    rd_metrics_webhook_answered("acme", "moco", "queued", 0.2);
    struct rd_buf b = {0};
    rd_metrics_render(&b);
    assert_non_null(strstr(
        b.data,
        "rosterd_webhooks_total{connection=\"acme\",source=\"moco\",outcome=\"queued\"} 2\n"));
    assert_non_null(strstr(b.data, "rosterd_ingest_seconds_bucket{le=\"0.005\"} 1\n"));
    assert_non_null(strstr(b.data, "rosterd_ingest_seconds_bucket{le=\"0.25\"} 2\n"));
    assert_non_null(strstr(b.data, "rosterd_ingest_seconds_count 2\n"));
    rd_buf_free(&b);
    rd_metrics_reset();
}

/* More series than hash slots: each keeps its own count. */
static void test_many_series(void **state)
{
    (void)state;
    rd_metrics_reset();
    char name[32];
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "conn-%d", i);
        for (int k = 0; k <= i % 7; k++)
            rd_metrics_webhook(name, "personio", "queued");
    }
    struct rd_buf b = {0};
    rd_metrics_render(&b);
    for (int i = 0; i < 300; i++) {
        char line[160];
        snprintf(
            line, sizeof line,
            "rosterd_webhooks_total{connection=\"conn-%d\",source=\"personio\",outcome=\"queued\"} %d\n",
            i, i % 7 + 1);
        assert_non_null(strstr(b.data, line));
    }
    rd_buf_free(&b);
    rd_metrics_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_is_unchanged),
        cmocka_unit_test(test_answered_counts_both),
        cmocka_unit_test(test_many_series),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
