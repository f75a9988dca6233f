/*
 * Unit tests for the queue's pure parts: backoff bounds and full jitter, which
 * upstream answers are permanent, state names, keys, the handler registry and the
 * scripted test handler (payload-driven, so no database is needed).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "queue_internal.h"
#include "rosterd/handler.h"
#include "rosterd/queue.h"

static void test_backoff_cap_doubles_and_caps(void **state)
{
    (void)state;
    assert_true(rd_queue_backoff_cap(1, 2) == 2.0);
    assert_true(rd_queue_backoff_cap(2, 2) == 4.0);
    assert_true(rd_queue_backoff_cap(3, 2) == 8.0);
    assert_true(rd_queue_backoff_cap(12, 2) == 4096.0);
    assert_true(rd_queue_backoff_cap(14, 2) == 16384.0);
    assert_true(rd_queue_backoff_cap(15, 2) == RD_QUEUE_BACKOFF_CAP);
    assert_true(rd_queue_backoff_cap(100, 2) == RD_QUEUE_BACKOFF_CAP);
    assert_true(rd_queue_backoff_cap(1000000, 3600) == RD_QUEUE_BACKOFF_CAP);
    /* Nonsense inputs are clamped, never negative or zero. */
    assert_true(rd_queue_backoff_cap(0, 2) == 2.0);
    assert_true(rd_queue_backoff_cap(-7, 2) == 2.0);
    assert_true(rd_queue_backoff_cap(1, 0) == 1.0);
}

static void test_backoff_bounds_for_draws(void **state)
{
    (void)state;
    assert_true(rd_queue_backoff(3, 2, 0.0) == 0.0);
    assert_true(rd_queue_backoff(3, 2, 0.5) == 4.0);
    assert_true(rd_queue_backoff(3, 2, 0.999999) < 8.0);
    /* Out-of-range draws are clamped into [0, cap). */
    assert_true(rd_queue_backoff(3, 2, 1.0) < 8.0);
    assert_true(rd_queue_backoff(3, 2, 7.5) < 8.0);
    assert_true(rd_queue_backoff(3, 2, -1.0) == 0.0);
    assert_true(rd_queue_backoff(3, 2, 0.0 / 0.0) == 0.0);
}

/* Full jitter: draws spread over the whole [0, cap] range, mean near cap/2. */
static void test_backoff_full_jitter_distribution(void **state)
{
    (void)state;
    for (int attempt = 1; attempt <= 16; attempt += 5) {
        double cap = rd_queue_backoff_cap(attempt, 2);
        double sum = 0, lo = cap, hi = 0;
        int low_quarter = 0, high_quarter = 0;
        const int n = 20000;
        for (int i = 0; i < n; i++) {
            double u = rd_queue_uniform();
            assert_true(u >= 0.0 && u < 1.0);
            double d = rd_queue_backoff(attempt, 2, u);
            assert_true(d >= 0.0 && d <= cap);
            sum += d;
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
            low_quarter += d < cap / 4;
            high_quarter += d > cap * 3 / 4;
        }
        double mean = sum / n;
        assert_true(mean > cap * 0.47 && mean < cap * 0.53);
        assert_true(lo < cap * 0.01);
        assert_true(hi > cap * 0.99);
        assert_true(low_quarter > n / 5 && high_quarter > n / 5);
    }
}

static void test_http_permanent(void **state)
{
    (void)state;
    static const long perm[] = {400, 401, 403, 404, 405, 410, 413, 422, 499};
    static const long retry[] = {0, 200, 204, 302, 399, 408, 409, 425, 429, 500, 502, 503, 504};
    for (size_t i = 0; i < sizeof perm / sizeof perm[0]; i++)
        assert_true(rd_queue_http_permanent(perm[i]));
    for (size_t i = 0; i < sizeof retry / sizeof retry[0]; i++)
        assert_false(rd_queue_http_permanent(retry[i]));
}

static void test_state_names_and_keys(void **state)
{
    (void)state;
    assert_string_equal(rd_queue_state_name(RD_JOBS_PENDING), "pending");
    assert_string_equal(rd_queue_state_name(RD_JOBS_SCHEDULED), "scheduled");
    assert_string_equal(rd_queue_state_name(RD_JOBS_RUNNING), "running");
    assert_string_equal(rd_queue_state_name(RD_JOBS_FAILED), "failed");
    assert_string_equal(rd_queue_state_name(RD_JOBS_DEAD), "dead");
    assert_null(rd_queue_state_name(RD_JOBS_NSTATES));
    assert_null(rd_queue_state_name(-1));
    char *k = rd_queue_key(7, "personio", "42");
    assert_string_equal(k, "7:personio:42");
    free(k);
    k = rd_queue_key(7, "moco", NULL);
    assert_string_equal(k, "7:moco:*");
    free(k);
}

static void test_registry(void **state)
{
    (void)state;
    const struct rd_handler *h = rd_handler_find("noop");
    assert_non_null(h);
    assert_string_equal(h->kind, "noop");
    assert_non_null(rd_handler_find("test.script"));
    /* The test kinds are marked, so the worker skips them unless test_handlers = on. */
    assert_true(h->test_only);
    assert_true(rd_handler_find("test.script")->test_only);
    assert_false(rd_handler_find("personio.person")->test_only);
    /* Unrouted events must find no handler: the worker then notes 'no handler'. */
    assert_null(rd_handler_find("unrouted"));
    assert_null(rd_handler_find("no.such.kind"));
    assert_null(rd_handler_find(NULL));
    size_t n = 0;
    const struct rd_capability *const *caps = rd_handler_capabilities(&n);
    assert_true(n >= 1);
    /* Every kind is registered once across all capabilities. */
    for (size_t a = 0; a < n; a++)
        for (size_t i = 0; i < caps[a]->nhandlers; i++)
            assert_ptr_equal(rd_handler_find(caps[a]->handlers[i].kind), &caps[a]->handlers[i]);
}

static int run_script(const char *payload, int attempt, struct rd_job_ctx *ctx)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->kind = "test.script";
    ctx->attempt = attempt;
    ctx->payload = json_tokener_parse(payload);
    assert_non_null(ctx->payload);
    int rc = rd_handler_find("test.script")->run(ctx);
    json_object_put(ctx->payload);
    ctx->payload = NULL;
    return rc;
}

static void test_script_handler(void **state)
{
    (void)state;
    struct rd_job_ctx ctx;
    assert_int_equal(run_script("{\"script\":{\"note\":\"hi\"}}", 1, &ctx), 0);
    assert_string_equal(ctx.note, "hi");
    assert_int_equal(run_script("{\"script\":{\"fail\":\"permanent\"}}", 1, &ctx), -1);
    assert_true(ctx.permanent);
    assert_non_null(strstr(ctx.err, "permanent"));
    assert_int_equal(run_script("{\"script\":{\"fail\":\"retry\",\"fail_times\":2}}", 2, &ctx), -1);
    assert_false(ctx.permanent);
    assert_int_equal(run_script("{\"script\":{\"fail\":\"retry\",\"fail_times\":2}}", 3, &ctx), 0);
    assert_int_equal(run_script("{\"script\":{\"http_status\":404}}", 1, &ctx), -1);
    assert_true(ctx.permanent);
    assert_string_equal(ctx.err, "upstream answered 404");
    assert_int_equal(run_script("{\"script\":{\"http_status\":429}}", 1, &ctx), -1);
    assert_false(ctx.permanent);
    assert_int_equal(run_script("{\"other\":1}", 1, &ctx), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_cap_doubles_and_caps),
        cmocka_unit_test(test_backoff_bounds_for_draws),
        cmocka_unit_test(test_backoff_full_jitter_distribution),
        cmocka_unit_test(test_http_permanent),
        cmocka_unit_test(test_state_names_and_keys),
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_script_handler),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
