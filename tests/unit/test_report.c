/*
 * Reconciliation pieces without a database or network: the circuit breaker's
 * decision, which webhook should have brought a change, the hash map the run's caches
 * use, and the report renderers (CSV quoting and formula cells, HTML escaping and
 * self-containment, the text's plain-language summary and line width).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "rosterd/hmap.h"
#include "rosterd/reconcile.h"
#include "rosterd/report.h"

static void test_breaker(void **state)
{
    (void)state;
    assert_null(rd_reconcile_breaker(5, 5, 100, 100, 100, 1)); /* at the limit: fine */
    char *r = rd_reconcile_breaker(6, 5, 100, 100, 100, 1);
    assert_non_null(r);
    assert_non_null(strstr(r, "it would deactivate 6 platform accounts, more than"
                              " policy.max_deactivations_per_run (5)"));
    free(r);
    r = rd_reconcile_breaker(4, 10, 30, 30, -1, -1); /* 13 % of 30 linked */
    assert_non_null(strstr(r, "4 of 30 linked platform accounts (13 %), more than 10 %"));
    free(r);
    assert_null(rd_reconcile_breaker(3, 10, 30, 30, -1, -1)); /* exactly 10 %: fine */
    assert_null(rd_reconcile_breaker(0, 0, 0, 0, -1, -1));    /* first run, nothing linked */
    r = rd_reconcile_breaker(0, 5, 28, 23, 30, 41);           /* 23 < 80 % of 30 */
    assert_string_equal(r, "Personio returned 23 employees, under 80 % of the 30 the last good"
                           " run (run 41) saw");
    free(r);
    assert_null(rd_reconcile_breaker(0, 5, 28, 24, 30, 41)); /* exactly 80 %: fine */
    r = rd_reconcile_breaker(2, 0, 10, 5, 10, 2);            /* all three at once */
    assert_non_null(strstr(r, "(0); it would deactivate 2 of 10"));
    assert_non_null(strstr(r, "; Personio returned 5"));
    free(r);
}

static void test_webhook_source(void **state)
{
    (void)state;
    assert_string_equal(rd_reconcile_webhook_source("deactivated"), "personio");
    assert_string_equal(rd_reconcile_webhook_source("team_changed"), "personio");
    assert_string_equal(rd_reconcile_webhook_source("attendance_pushed"), "moco");
    assert_null(rd_reconcile_webhook_source("linked"));
    assert_null(rd_reconcile_webhook_source("platform_only"));
    assert_null(rd_reconcile_webhook_source("error"));
}

static void test_hmap(void **state)
{
    (void)state;
    struct rd_hmap *m = rd_hmap_new();
    for (int64_t i = 0; i < 5000; i++)
        rd_hmap_put_i64(m, i * 7, (uintptr_t)i);
    assert_int_equal(rd_hmap_count(m), 5000);
    uintptr_t v = 0;
    assert_true(rd_hmap_get_i64(m, 7 * 4321, &v));
    assert_int_equal(v, 4321);
    assert_false(rd_hmap_get_i64(m, 3, &v));
    for (int64_t i = 0; i < 5000; i += 2)
        assert_true(rd_hmap_del_i64(m, i * 7));
    assert_int_equal(rd_hmap_count(m), 2500);
    assert_false(rd_hmap_get_i64(m, 0, NULL));
    assert_true(rd_hmap_get_i64(m, 7, &v));
    rd_hmap_put_ci(m, "Mia.Schulz@ACME.example", 99);
    assert_true(rd_hmap_get_ci(m, "mia.schulz@acme.example", &v));
    assert_int_equal(v, 99);
    /* the _ci functions store the key folded to lower case */
    assert_true(rd_hmap_get(m, "mia.schulz@acme.example", 23, NULL));
    assert_false(rd_hmap_get(m, "Mia.Schulz@ACME.example", 23, NULL));
    rd_hmap_free(m);
    rd_hmap_free(NULL);
}

static void test_csv_field(void **state)
{
    (void)state;
    struct rd_buf b = {0};
    rd_report_csv_field(&b, "plain");
    rd_buf_putc(&b, '|');
    rd_report_csv_field(&b, "a, b");
    rd_buf_putc(&b, '|');
    rd_report_csv_field(&b, "say \"hi\"\r\nbye");
    rd_buf_putc(&b, '|');
    rd_report_csv_field(&b, "=SUM(A1)");
    rd_buf_putc(&b, '|');
    rd_report_csv_field(&b, "@cmd");
    rd_buf_putc(&b, '|');
    rd_report_csv_field(&b, NULL);
    assert_string_equal(b.data,
                        "plain|\"a, b\"|\"say \"\"hi\"\"\r\nbye\"|\"'=SUM(A1)\"|\"'@cmd\"|");
    rd_buf_free(&b);
}

static struct json_object *sample_report(void)
{
    return json_tokener_parse(
        "{\"run_id\": 7, \"connection\": \"acme\", \"kind\": \"reconcile\", \"dry_run\": false,"
        " \"status\": \"held\", \"started_at_local\": \"2026-12-01 02:30:00\","
        " \"finished_at_local\": \"2026-12-01 02:30:09\", \"timezone\": \"Europe/Berlin\","
        " \"employees\": 30, \"linked_users\": 28,"
        " \"held_reason\": \"it would deactivate 6 platform accounts, more than"
        " policy.max_deactivations_per_run (5)\","
        " \"counts\": {\"deactivation_held\": 1, \"conflict\": 1},"
        " \"findings\": ["
        "  {\"kind\": \"deactivation_held\", \"email\": \"tim@acme.example\", \"detail\":"
        "   \"last day 2026-11-28 passed; a rather long explanation that goes on and on so that"
        " the text report has to wrap it over more than one line of the terminal\","
        "   \"action\": \"deactivate\", \"result\": \"held\"},"
        "  {\"kind\": \"conflict\", \"email\": \"a@acme.example\", \"detail\":"
        "   \"<script>alert(1)</script> & 'x'\", \"action\": null, \"result\": \"none\"}],"
        " \"warnings\": []}");
}

static void test_text(void **state)
{
    (void)state;
    struct json_object *r = sample_report();
    struct rd_buf b = {0};
    rd_report_text(r, &b);
    assert_non_null(strstr(b.data, "Reconciliation report of acme, run 7\n"));
    assert_non_null(strstr(b.data, "Status: held."));
    assert_non_null(strstr(b.data, "In short: 1 deactivation held by the circuit breaker, 1"
                                   " conflict to resolve"));
    assert_non_null(strstr(b.data, "Held by the circuit breaker (1)"));
    assert_non_null(strstr(b.data, "`rosterctl reconcile approve 7`"));
    assert_non_null(strstr(b.data, "Needs a person (1)"));
    for (char *line = b.data, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        assert_true(len <= 96);
    }
    rd_buf_free(&b);
    json_object_put(r);
}

static void test_html(void **state)
{
    (void)state;
    struct json_object *r = sample_report();
    struct json_object *hist = json_tokener_parse(
        "[{\"run_id\": 7, \"status\": \"held\", \"dry_run\": false, \"started_at_local\":"
        " \"2026-12-01 02:30:00\", \"counts\": {\"deactivation_held\": 1, \"conflict\": 1}},"
        " {\"run_id\": 6, \"status\": \"done\", \"dry_run\": true, \"started_at_local\":"
        " \"2026-11-30 02:30:00\", \"counts\": {\"linked\": 40}}]");
    struct rd_buf b = {0};
    rd_report_html(r, hist, &b);
    assert_non_null(strstr(b.data, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &#39;x&#39;"));
    assert_null(strstr(b.data, "<script"));
    assert_null(strstr(b.data, "src="));
    assert_null(strstr(b.data, "href="));
    assert_non_null(strstr(b.data, "<svg"));
    assert_non_null(strstr(b.data, "#6 11-30 dry"));
    assert_non_null(strstr(b.data, "#7 12-01 held"));
    assert_non_null(strstr(b.data, "Finding counts, last 2 runs"));
    rd_buf_free(&b);
    json_object_put(r);
    json_object_put(hist);
}

static void test_summary(void **state)
{
    (void)state;
    struct json_object *c = json_tokener_parse("{\"linked\": 2, \"error\": 1, \"deactivated\": 1}");
    struct rd_buf b = {0};
    rd_report_summary(c, &b);
    assert_string_equal(b.data, "1 error, 2 accounts linked, 1 account deactivated");
    json_object_put(c);
    rd_buf_reset(&b);
    c = json_object_new_object();
    rd_report_summary(c, &b);
    assert_string_equal(b.data, "no changes, nothing to do");
    json_object_put(c);
    rd_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_breaker), cmocka_unit_test(test_webhook_source),
        cmocka_unit_test(test_hmap),    cmocka_unit_test(test_csv_field),
        cmocka_unit_test(test_text),    cmocka_unit_test(test_html),
        cmocka_unit_test(test_summary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
