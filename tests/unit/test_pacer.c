/*
 * Unit tests for request pacing (server/clients/pacer.c) without a network or a
 * database: the shared windows keep headroom below each limit, the in-process
 * windows grant no faster than the limits (a lower bound on time, so a slow machine
 * cannot make them fail), a wait past the deadline is a transient error with a
 * retry-after, and bad limits are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "rosterd/http.h"
#include "rosterd/pacer.h"

static void test_shared_limits_keep_headroom(void **state)
{
    (void)state;
    struct rd_rate out[2];
    const struct rd_rate moco[] = {{120, 120.0}};
    rd_pacer_shared_limits(moco, 1, out);
    assert_int_equal(out[0].limit, 108); /* 90 % */
    assert_true(out[0].window_s == 120.0);
    /* Personio's employees: 300 a minute and 15 a second */
    const struct rd_rate emp[] = {{300, 60.0}, {15, 1.0}};
    rd_pacer_shared_limits(emp, 2, out);
    assert_int_equal(out[0].limit, 270);
    assert_int_equal(out[1].limit, 13);
    assert_true(out[1].window_s == 1.0);
    const struct rd_rate tiny[] = {{1, 10.0}};
    rd_pacer_shared_limits(tiny, 1, out);
    assert_int_equal(out[0].limit, 1); /* at least one request can ever start */
}

/* Grants n requests as fast as the pacer lets them; times[] gets each grant time. */
static void grant(struct rd_pacer *p, const struct rd_rate *rates, size_t nrates, int n,
                  double *times)
{
    for (int i = 0; i < n; i++) {
        struct rd_pace_ticket t;
        struct rd_http_error err;
        assert_int_equal(
            rd_pacer_acquire(p, rates, nrates, NULL, "test", rd_http_now() + 30.0, &t, &err), 0);
        times[i] = rd_http_now();
        rd_pacer_release(&t);
    }
}

static void test_windows_hold(void **state)
{
    (void)state;
    const struct rd_rate r[] = {{3, 0.2}};
    double t[9];
    grant(rd_pacer_get("unit-one"), r, 1, 9, t);
    for (int i = 3; i < 9; i++) /* the 4th starts a window after the 1st ended, and so on */
        assert_true(t[i] - t[i - 3] >= 0.2 - 1e-3);

    const struct rd_rate two[] = {{6, 0.6}, {2, 0.1}};
    double u[12];
    grant(rd_pacer_get("unit-two"), two, 2, 12, u);
    for (int i = 2; i < 12; i++)
        assert_true(u[i] - u[i - 2] >= 0.1 - 1e-3);
    for (int i = 6; i < 12; i++)
        assert_true(u[i] - u[i - 6] >= 0.6 - 1e-3);
    rd_pacer_clear_all();
}

static void test_deadline_is_a_transient_error(void **state)
{
    (void)state;
    const struct rd_rate r[] = {{1, 5.0}};
    struct rd_pacer *p = rd_pacer_get("unit-deadline");
    struct rd_pace_ticket t;
    struct rd_http_error err;
    assert_int_equal(rd_pacer_acquire(p, r, 1, NULL, "test", rd_http_now() + 1.0, &t, &err), 0);
    rd_pacer_release(&t);
    double t0 = rd_http_now();
    assert_int_equal(rd_pacer_acquire(p, r, 1, NULL, "test", t0 + 1.0, &t, &err), -1);
    assert_true(rd_http_now() - t0 < 0.5); /* it does not sleep when it cannot make it */
    assert_false(err.permanent);
    assert_true(err.retry_after_s >= 4 && err.retry_after_s <= 5);
    assert_non_null(strstr(err.msg, "budget"));
    rd_pacer_clear_all();
}

static void test_bad_rates_are_refused(void **state)
{
    (void)state;
    struct rd_pacer *p = rd_pacer_get("unit-bad");
    struct rd_pace_ticket t;
    struct rd_http_error err;
    const struct rd_rate zero[] = {{0, 1.0}};
    assert_int_equal(rd_pacer_acquire(p, zero, 1, NULL, "test", rd_http_now() + 1.0, &t, &err), -1);
    assert_true(err.permanent);
    const struct rd_rate three[3] = {{1, 1.0}, {1, 1.0}, {1, 1.0}};
    assert_int_equal(rd_pacer_acquire(p, three, 3, NULL, "test", rd_http_now() + 1.0, &t, &err),
                     -1);
    rd_pacer_release(NULL);
    struct rd_pace_ticket none = {0};
    rd_pacer_release(&none); /* a ticket never granted is fine to release */
    rd_pacer_clear_all();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_limits_keep_headroom),
        cmocka_unit_test(test_windows_hold),
        cmocka_unit_test(test_deadline_is_a_transient_error),
        cmocka_unit_test(test_bad_rates_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
