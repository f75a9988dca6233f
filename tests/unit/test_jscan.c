/*
 * Unit tests for server/jscan.c, the intake's JSON scanner: RFC 8259's grammar
 * case by case, the depth limit, the paths (repeated keys, escaped keys, paths
 * through non-objects), and the decoding of the values found.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "jscan.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static bool ok(const char *s)
{
    return rd_jscan(s, strlen(s), 64, NULL, 0, NULL);
}

static void test_accepts_json(void **state)
{
    (void)state;
    const char *good[] = {
        "{}",
        "[]",
        " { } ",
        "\t[\r\n]\n",
        "1",
        "-0",
        "0.5",
        "1e5",
        "1E+5",
        "-1.25e-3",
        "true",
        "false",
        "null",
        "\"\"",
        "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"",
        "\"\\u00e9\\uD83D\\uDE00\"",
        "{\"a\":[1,{\"b\":null},\"x\"],\"c\":{}}",
        "[true,false,null]",
        "\"tab\there\"",
        "123456789012345678901234567890",
        "[1e999]",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!ok(good[i]))
            fail_msg("refused: %s", good[i]);
}

static void test_refuses_what_is_not_json(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        " ",
        "{",
        "}",
        "[1,]",
        "{\"a\":1,}",
        "[,1]",
        "{,}",
        "{\"a\" 1}",
        "{\"a\":1 \"b\":2}",
        "{1:2}",
        "{'a':1}",
        "[1 2]",
        "01",
        "-",
        "1.",
        ".5",
        "1e",
        "1e+",
        "+1",
        "0x10",
        "--1",
        "[00]",
        "[-01]",
        "[1.e5]",
        "NaN",
        "Infinity",
        "nul",
        "tru",
        "truex",
        "[1true]",
        "\"\\x\"",
        "\"\\u12\"",
        "\"\\u12g4\"",
        "\"abc",
        "\"a\\",
        "[1]x",
        "1 2",
        "/*c*/1",
        "1//x",
        "[\"a\" \"b\"]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ok(bad[i]))
            fail_msg("accepted: %s", bad[i]);
    /* NUL ends nothing: inside a string or after the value it is refused. */
    assert_false(rd_jscan("\"a\0b\"", 5, 64, NULL, 0, NULL));
    assert_false(rd_jscan("[1]\0", 4, 64, NULL, 0, NULL));
}

static char *nested(int n, char open, char close)
{
    char *s = malloc((size_t)(2 * n) + 1);
    for (int i = 0; i < n; i++) {
        s[i] = open;
        s[2 * n - 1 - i] = close;
    }
    s[2 * n] = '\0';
    return s;
}

static void test_depth_limit(void **state)
{
    (void)state;
    char *a64 = nested(64, '[', ']'), *a65 = nested(65, '[', ']');
    assert_true(ok(a64));
    assert_false(ok(a65));
    assert_false(rd_jscan(a64, strlen(a64), 63, NULL, 0, NULL));
    free(a64);
    free(a65);
    /* 100,000 levels: refused at the limit, without recursing that deep. */
    char *huge = nested(100000, '[', ']');
    assert_false(ok(huge));
    free(huge);
}

static const struct rd_jpath P[] = {
    {{"event_name"}, 1},
    {{"payload", "person", "id"}, 3},
    {{"payload", "id"}, 2},
};

static void scan(const char *s, struct rd_jspan *out)
{
    assert_true(rd_jscan(s, strlen(s), 64, P, 3, out));
}

static char *text(const struct rd_jspan *sp)
{
    return rd_jspan_text(sp, 200);
}

static void test_paths(void **state)
{
    (void)state;
    struct rd_jspan v[3];
    scan("{\"event_name\":\"employee.created\",\"payload\":{\"id\":7,\"person\":{\"id\":\"42\"}}}",
         v);
    char *t = text(&v[0]);
    assert_string_equal(t, "employee.created");
    free(t);
    assert_int_equal(v[1].type, RD_J_STRING);
    t = text(&v[1]);
    assert_string_equal(t, "42");
    free(t);
    long long x = 0;
    assert_true(rd_jspan_int64(&v[2], &x));
    assert_int_equal(x, 7);

    /* A repeated key: the last counts, and replaces what the first held beneath it. */
    scan("{\"payload\":{\"person\":{\"id\":1}},\"payload\":{\"id\":2}}", v);
    assert_int_equal(v[1].type, RD_J_NONE);
    assert_true(rd_jspan_int64(&v[2], &x));
    assert_int_equal(x, 2);
    scan("{\"event_name\":\"a\",\"event_name\":\"b\"}", v);
    t = text(&v[0]);
    assert_string_equal(t, "b");
    free(t);

    /* Keys are compared decoded; paths only go through objects. */
    scan("{\"event\\u005fname\":\"x\",\"payload\":[{\"id\":3}]}", v);
    t = text(&v[0]);
    assert_string_equal(t, "x");
    free(t);
    assert_int_equal(v[2].type, RD_J_NONE);
    scan("[{\"event_name\":\"x\"}]", v);
    assert_int_equal(v[0].type, RD_J_NONE);
    scan("{\"payload\":{\"person\":[{\"id\":1}],\"x\":{\"id\":5}}}", v);
    assert_int_equal(v[1].type, RD_J_NONE);
    assert_int_equal(v[2].type, RD_J_NONE);

    /* A value of any kind is found, with its extent. */
    scan("{\"payload\":{\"id\":{\"deep\":[1,2]}}}", v);
    assert_int_equal(v[2].type, RD_J_OBJECT);
    assert_int_equal(v[2].n, strlen("{\"deep\":[1,2]}"));
    assert_null(text(&v[2]));

    /* Nothing is reported from a text that turns out not to be JSON. */
    assert_false(rd_jscan("{\"event_name\":\"x\",", 18, 64, P, 3, v));
    assert_int_equal(v[0].type, RD_J_NONE);
}

static void test_values(void **state)
{
    (void)state;
    struct rd_jspan v[3];
    long long x;
    scan("{\"payload\":{\"id\":-0}}", v);
    assert_true(rd_jspan_int64(&v[2], &x));
    assert_int_equal(x, 0);
    scan("{\"payload\":{\"id\":9223372036854775807}}", v);
    assert_true(rd_jspan_int64(&v[2], &x));
    assert_true(x == INT64_MAX);
    scan("{\"payload\":{\"id\":9223372036854775808}}", v);
    assert_false(rd_jspan_int64(&v[2], &x));
    scan("{\"payload\":{\"id\":1.0}}", v);
    assert_false(rd_jspan_int64(&v[2], &x));
    scan("{\"payload\":{\"id\":1e2}}", v);
    assert_false(rd_jspan_int64(&v[2], &x));
    scan("{\"payload\":{\"id\":\"7\"}}", v);
    assert_false(rd_jspan_int64(&v[2], &x));

    /* Escapes decoded as json-c decodes them: pairs joined, lone surrogates U+FFFD. */
    scan("{\"event_name\":\"M\\u00fcller \\uD83D\\uDE00 \\uD800x \\uDC00 a\\/b\\n\"}", v);
    char *t = text(&v[0]);
    assert_string_equal(t, "M\xc3\xbcller \xf0\x9f\x98\x80 \xef\xbf\xbdx \xef\xbf\xbd a/b\n");
    free(t);
    /* Cut at a NUL, as a C string; empty or over the limit: none. */
    scan("{\"event_name\":\"ab\\u0000cd\"}", v);
    t = text(&v[0]);
    assert_string_equal(t, "ab");
    free(t);
    scan("{\"event_name\":\"\\u0000x\"}", v);
    assert_null(text(&v[0]));
    scan("{\"event_name\":\"\"}", v);
    assert_null(text(&v[0]));
    char big[300];
    memset(big, 'a', sizeof(big));
    memcpy(big, "{\"event_name\":\"", 15);
    memcpy(big + sizeof(big) - 3, "\"}", 3);
    scan(big, v);
    assert_null(rd_jspan_text(&v[0], 200));
    t = rd_jspan_text(&v[0], 300);
    assert_int_equal(strlen(t), sizeof(big) - 3 - 15);
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_json), cmocka_unit_test(test_refuses_what_is_not_json),
        cmocka_unit_test(test_depth_limit),  cmocka_unit_test(test_paths),
        cmocka_unit_test(test_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
