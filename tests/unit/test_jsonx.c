/*
 * Unit tests for server/jsonx.c: the UTF-8 check the intake runs before a body
 * may reach Postgres (every malformed class of RFC 3629 §3 and Unicode table
 * 3-7), against a reference decoder over every 1-, 2- and 3-byte sequence.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rosterd/jsonx.h"

#include <stdbool.h>
#include <string.h>

#define V(s) rd_utf8_valid(s, sizeof(s) - 1)

static void test_utf8_accepts_well_formed(void **state)
{
    (void)state;
    assert_true(rd_utf8_valid("", 0));
    assert_true(V("plain ASCII {\"a\":1}"));
    assert_true(V("\xc2\xa9"));         /* U+00A9 */
    assert_true(V("\xdf\xbf"));         /* U+07FF */
    assert_true(V("\xe0\xa0\x80"));     /* U+0800 */
    assert_true(V("\xe2\x82\xac"));     /* U+20AC */
    assert_true(V("\xed\x9f\xbf"));     /* U+D7FF, just below the surrogates */
    assert_true(V("\xee\x80\x80"));     /* U+E000, just above */
    assert_true(V("\xef\xbf\xbf"));     /* U+FFFF */
    assert_true(V("\xf0\x90\x80\x80")); /* U+10000 */
    assert_true(V("\xf4\x8f\xbf\xbf")); /* U+10FFFF */
    assert_true(V("M\xc3\xbcller \xf0\x9f\x98\x80"));
}

static void test_utf8_rejects_malformed(void **state)
{
    (void)state;
    assert_false(V("a\0b")); /* NUL: text columns refuse it */
    assert_false(V("\x80")); /* lone continuation */
    assert_false(V("\xbf"));
    assert_false(V("\xc0\xaf")); /* overlong '/' */
    assert_false(V("\xc1\xbf"));
    assert_false(V("\xe0\x80\xaf")); /* overlong, 3 bytes */
    assert_false(V("\xe0\x9f\xbf"));
    assert_false(V("\xf0\x80\x80\xaf")); /* overlong, 4 bytes */
    assert_false(V("\xf0\x8f\xbf\xbf"));
    assert_false(V("\xed\xa0\x80"));     /* U+D800 */
    assert_false(V("\xed\xbf\xbf"));     /* U+DFFF */
    assert_false(V("\xf4\x90\x80\x80")); /* U+110000 */
    assert_false(V("\xf5\x80\x80\x80"));
    assert_false(V("\xff"));
    assert_false(V("\xfe\xff"));
    assert_false(V("\xc2")); /* truncated */
    assert_false(V("\xe2\x82"));
    assert_false(V("\xf0\x9f\x98"));
    assert_false(V("\xe2\x28\xa1")); /* bad continuation */
    assert_false(V("\xf0\x9f\x98\x28"));
    /* The length is what counts, not a terminating NUL. */
    assert_false(rd_utf8_valid("\xe2\x82\xac", 2));
}

/* Reference: decode, then require the shortest form, no surrogate, <= U+10FFFF. */
static bool reference(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t len;
        if (p[i] == 0)
            return false;
        if (p[i] < 0x80) {
            i++;
            continue;
        } else if ((p[i] & 0xe0) == 0xc0) {
            len = 2;
            cp = p[i] & 0x1f;
        } else if ((p[i] & 0xf0) == 0xe0) {
            len = 3;
            cp = p[i] & 0x0f;
        } else if ((p[i] & 0xf8) == 0xf0) {
            len = 4;
            cp = p[i] & 0x07;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

static void test_utf8_matches_reference_exhaustively(void **state)
{
    (void)state;
    unsigned char b[4];
    for (unsigned a = 0; a < 256; a++) {
        b[0] = (unsigned char)a;
        assert_int_equal(rd_utf8_valid((char *)b, 1), reference(b, 1));
        for (unsigned c = 0; c < 256; c++) {
            b[1] = (unsigned char)c;
            assert_int_equal(rd_utf8_valid((char *)b, 2), reference(b, 2));
            if (a < 0xe0 || a > 0xf4)
                continue;
            for (unsigned d = 0; d < 256; d++) {
                b[2] = (unsigned char)d;
                assert_int_equal(rd_utf8_valid((char *)b, 3), reference(b, 3));
                b[3] = 0x80;
                assert_int_equal(rd_utf8_valid((char *)b, 4), reference(b, 4));
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_accepts_well_formed),
        cmocka_unit_test(test_utf8_rejects_malformed),
        cmocka_unit_test(test_utf8_matches_reference_exhaustively),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
