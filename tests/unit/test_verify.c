/*
 * Unit tests for server/verify.c: MOCO and Standard Webhooks signatures on
 * published vectors with their negatives, the Personio token compare, and
 * the dedup keys (expected values computed with sha256sum).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rosterd/crypto.h"
#include "rosterd/mem.h"
#include "rosterd/verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- MOCO ---- */

static const char moco_key[] = "1d608b9d72219b90ff2393a1d3ee0ac0";
static const char moco_body[] = "{\"id\":111,\"description\":\"a description\"}";
static const char moco_sig[] = "bf027a86207ef1ca1cb76f5a536b41a14287ab1a0fd5b33bfe86924bc2f48fd1";
static const char moco_old_body[] = "{id: 111, description: \"a description\"}";
static const char moco_old_sig[] =
    "09f9ebc0adeb597cb7cb37fd72b20be0caeca6bd9fb67416b663606bd7f89183";

static bool moco(const char *body, const char *sig, const char *const *keys, size_t n)
{
    return rd_verify_moco(body, strlen(body), sig, keys, n);
}

static void test_moco_vectors(void **state)
{
    const char *keys[] = {moco_key};
    assert_true(moco(moco_body, moco_sig, keys, 1));
    assert_true(moco(moco_old_body, moco_old_sig, keys, 1));
    /* Each signature belongs to its own body. */
    assert_false(moco(moco_body, moco_old_sig, keys, 1));
    assert_false(moco(moco_old_body, moco_sig, keys, 1));
}

static void test_moco_negatives(void **state)
{
    const char *keys[] = {moco_key};
    const char *wrong[] = {"1d608b9d72219b90ff2393a1d3ee0ac1"};
    char upper[sizeof moco_sig];
    for (size_t i = 0; i < sizeof moco_sig; i++)
        upper[i] =
            (moco_sig[i] >= 'a' && moco_sig[i] <= 'f') ? (char)(moco_sig[i] - 32) : moco_sig[i];
    assert_false(moco(moco_body, upper, keys, 1));

    char truncated[sizeof moco_sig];
    memcpy(truncated, moco_sig, sizeof moco_sig);
    truncated[63] = '\0';
    assert_false(moco(moco_body, truncated, keys, 1));

    char longer[sizeof moco_sig + 2];
    snprintf(longer, sizeof longer, "%s0", moco_sig);
    assert_false(moco(moco_body, longer, keys, 1));

    assert_false(moco(moco_body, moco_sig, wrong, 1));
    assert_false(moco("{\"id\":112,\"description\":\"a description\"}", moco_sig, keys, 1));
    assert_false(rd_verify_moco(moco_body, strlen(moco_body), NULL, keys, 1));
    assert_false(moco(moco_body, "", keys, 1));
    assert_false(moco(moco_body, moco_sig, keys, 0));
    /* An empty configured key never verifies, even with its correct MAC. */
    const char *empty[] = {""};
    uint8_t mac[32];
    char hex[65];
    rd_hmac_sha256("", 0, moco_body, strlen(moco_body), mac);
    rd_hex_encode(mac, sizeof mac, hex);
    assert_false(moco(moco_body, hex, empty, 1));
}

static void test_moco_rotation(void **state)
{
    const char *keys[] = {"old-key-no-longer-used", moco_key};
    assert_true(moco(moco_body, moco_sig, keys, 2));
    /* Without the second key in the list, the same request fails. */
    assert_false(moco(moco_body, moco_sig, keys, 1));
}

/* ---- Standard Webhooks ---- */

static const char sw_secret[] = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
static const char sw_id[] = "msg_p5jXN8AQM9LWM0D4loKWxJek";
static const char sw_ts[] = "1614265330";
static const int64_t sw_now = 1614265330;
static const char sw_body[] = "{\"test\": 2432232314}";
static const char sw_sig[] = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

static enum rd_sw_result sw(const char *id, const char *ts, const char *sig, const char *body,
                            const char *secret, int64_t now)
{
    const char *secrets[] = {secret};
    return rd_verify_standard(id, ts, sig, body, body ? strlen(body) : 0, secrets, 1, now, 300);
}

static void test_sw_vector(void **state)
{
    char *sig = NULL;
    assert_int_equal(sw(sw_id, sw_ts, sw_sig, sw_body, sw_secret, sw_now), RD_SW_OK);
    /* The bare base64 form of the secret works too. */
    assert_int_equal(sw(sw_id, sw_ts, sw_sig, sw_body, sw_secret + 6, sw_now), RD_SW_OK);
    assert_int_equal(rd_sign_standard(sw_id, sw_ts, sw_body, strlen(sw_body), sw_secret, &sig), 0);
    assert_string_equal(sig, sw_sig);
    free(sig);
    assert_int_equal(rd_sign_standard(sw_id, sw_ts, sw_body, strlen(sw_body), "whsec_!!", &sig),
                     -1);
    assert_null(sig);
}

static void test_sw_negatives(void **state)
{
    assert_int_equal(sw(sw_id, sw_ts, sw_sig, "{\"test\": 2432232315}", sw_secret, sw_now),
                     RD_SW_NO_MATCH);
    assert_int_equal(
        sw(sw_id, sw_ts, sw_sig, sw_body, "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSx", sw_now),
        RD_SW_NO_MATCH);
    /* A different id or timestamp changes the signed content. */
    assert_int_equal(sw("msg_p5jXN8AQM9LWM0D4loKWxJel", sw_ts, sw_sig, sw_body, sw_secret, sw_now),
                     RD_SW_NO_MATCH);
    assert_int_equal(sw(sw_id, "1614265331", sw_sig, sw_body, sw_secret, sw_now), RD_SW_NO_MATCH);
    /* Undecodable secret is skipped, leaving nothing to match. */
    assert_int_equal(sw(sw_id, sw_ts, sw_sig, sw_body, "whsec_not base64", sw_now), RD_SW_NO_MATCH);
    /* A signature without version prefix is not a v1 entry. */
    assert_int_equal(sw(sw_id, sw_ts, sw_sig + 3, sw_body, sw_secret, sw_now), RD_SW_NO_MATCH);
}

static void test_sw_tolerance(void **state)
{
    /* The message is 301 s old / 301 s in the future relative to now. */
    assert_int_equal(sw(sw_id, sw_ts, sw_sig, sw_body, sw_secret, sw_now + 301), RD_SW_TOO_OLD);
    assert_int_equal(sw(sw_id, sw_ts, sw_sig, sw_body, sw_secret, sw_now - 301), RD_SW_TOO_NEW);
    /* Exactly 300 s either way passes. */
    assert_int_equal(sw(sw_id, sw_ts, sw_sig, sw_body, sw_secret, sw_now + 300), RD_SW_OK);
    assert_int_equal(sw(sw_id, sw_ts, sw_sig, sw_body, sw_secret, sw_now - 300), RD_SW_OK);
    /* Extremes must not overflow into a pass. */
    assert_int_equal(sw(sw_id, "-999999999999999999", sw_sig, sw_body, sw_secret, INT64_MAX),
                     RD_SW_TOO_OLD);
    assert_int_equal(sw(sw_id, "999999999999999999", sw_sig, sw_body, sw_secret, INT64_MIN),
                     RD_SW_TOO_NEW);
}

static void test_sw_missing_headers(void **state)
{
    assert_int_equal(sw(NULL, sw_ts, sw_sig, sw_body, sw_secret, sw_now), RD_SW_MISSING_HEADER);
    assert_int_equal(sw(sw_id, NULL, sw_sig, sw_body, sw_secret, sw_now), RD_SW_MISSING_HEADER);
    assert_int_equal(sw(sw_id, sw_ts, NULL, sw_body, sw_secret, sw_now), RD_SW_MISSING_HEADER);
    assert_int_equal(sw("", sw_ts, sw_sig, sw_body, sw_secret, sw_now), RD_SW_MISSING_HEADER);
    assert_int_equal(sw(sw_id, "", sw_sig, sw_body, sw_secret, sw_now), RD_SW_MISSING_HEADER);
    assert_int_equal(sw(sw_id, sw_ts, "", sw_body, sw_secret, sw_now), RD_SW_MISSING_HEADER);
}

static void test_sw_bad_timestamp(void **state)
{
    static const char *const bad[] = {
        "abc", "1614265330.5",          "1614265330 ", " 1614265330", "16142x65330",
        "-",   "9999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sw(sw_id, bad[i], sw_sig, sw_body, sw_secret, sw_now),
                         RD_SW_BAD_TIMESTAMP);
}

static void test_sw_multiple_entries(void **state)
{
    /* Rotation: only the second entry is valid, and that is enough. */
    const char *two = "v1,Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm8= "
                      "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    assert_int_equal(sw(sw_id, sw_ts, two, sw_body, sw_secret, sw_now), RD_SW_OK);
    /* Same with only the invalid first entry. */
    assert_int_equal(sw(sw_id, sw_ts, "v1,Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm8=", sw_body,
                        sw_secret, sw_now),
                     RD_SW_NO_MATCH);
    /* A v1a entry carrying the right bytes is skipped. */
    assert_int_equal(sw(sw_id, sw_ts, "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", sw_body,
                        sw_secret, sw_now),
                     RD_SW_NO_MATCH);
    assert_int_equal(sw(sw_id, sw_ts,
                        "v1a,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= "
                        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                        sw_body, sw_secret, sw_now),
                     RD_SW_OK);
    /* The version ends at the comma: "v1" followed by anything else is not v1. */
    assert_int_equal(sw(sw_id, sw_ts, "v1;g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", sw_body,
                        sw_secret, sw_now),
                     RD_SW_NO_MATCH);
    /* Extra spaces between entries are tolerated. */
    assert_int_equal(sw(sw_id, sw_ts,
                        "  v2,abc   v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=  ", sw_body,
                        sw_secret, sw_now),
                     RD_SW_OK);
}

static void test_sw_secret_rotation(void **state)
{
    const char *secrets[] = {"whsec_not valid", "whsec_Zm9vYmFyZm9vYmFyZm9vYmFy", sw_secret};
    assert_int_equal(
        rd_verify_standard(sw_id, sw_ts, sw_sig, sw_body, strlen(sw_body), secrets, 3, sw_now, 300),
        RD_SW_OK);
    assert_int_equal(
        rd_verify_standard(sw_id, sw_ts, sw_sig, sw_body, strlen(sw_body), secrets, 2, sw_now, 300),
        RD_SW_NO_MATCH);
}

static void test_sw_work_limits(void **state)
{
    struct rd_buf b = {0};
    /* The valid entry comes 17th: past the limit, so it is not looked at. */
    for (int i = 0; i < 16; i++)
        rd_buf_puts(&b, "v2,x ");
    rd_buf_puts(&b, sw_sig);
    assert_int_equal(sw(sw_id, sw_ts, b.data, sw_body, sw_secret, sw_now), RD_SW_NO_MATCH);
    rd_buf_reset(&b);
    /* 16th is still inside. */
    for (int i = 0; i < 15; i++)
        rd_buf_puts(&b, "v2,x ");
    rd_buf_puts(&b, sw_sig);
    assert_int_equal(sw(sw_id, sw_ts, b.data, sw_body, sw_secret, sw_now), RD_SW_OK);
    rd_buf_reset(&b);
    /* An over-long entry is skipped, the following valid one still counts. */
    rd_buf_puts(&b, "v1,");
    for (int i = 0; i < 200; i++)
        rd_buf_putc(&b, 'A');
    rd_buf_putc(&b, ' ');
    rd_buf_puts(&b, sw_sig);
    assert_int_equal(sw(sw_id, sw_ts, b.data, sw_body, sw_secret, sw_now), RD_SW_OK);
    rd_buf_free(&b);
}

static void test_sw_result_str(void **state)
{
    assert_string_equal(rd_sw_result_str(RD_SW_OK), "ok");
    assert_string_equal(rd_sw_result_str(RD_SW_TOO_OLD), "timestamp too old");
    assert_string_equal(rd_sw_result_str(RD_SW_NO_MATCH), "no matching signature");
}

/* ---- Personio token ---- */

static void test_token(void **state)
{
    const char *tokens[] = {"s3cret-token-A", "s3cret-token-B"};
    assert_true(rd_verify_token("s3cret-token-A", tokens, 2));
    assert_true(rd_verify_token("s3cret-token-B", tokens, 2)); /* second of the list */
    assert_false(rd_verify_token("s3cret-token-B", tokens, 1));
    assert_false(rd_verify_token("s3cret-token-C", tokens, 2));
    assert_false(rd_verify_token("s3cret-token-AA", tokens, 2)); /* differing length */
    assert_false(rd_verify_token("s3cret-token-", tokens, 2));
    assert_false(rd_verify_token(NULL, tokens, 2));
    assert_false(rd_verify_token("", tokens, 2));
}

static void test_token_empty_configured(void **state)
{
    const char *tokens[] = {"", NULL};
    assert_false(rd_verify_token("", tokens, 1));
    assert_false(rd_verify_token("x", tokens, 1));
    assert_false(rd_verify_token("", tokens, 2));
    assert_false(rd_verify_token(NULL, tokens, 2));
    const char *mixed[] = {"", "real"};
    assert_true(rd_verify_token("real", mixed, 2));
}

/* ---- dedup keys; expected values from printf ... | sha256sum ---- */

static void assert_digest(const uint8_t d[32], const char *hex)
{
    char got[65];
    rd_hex_encode(d, 32, got);
    assert_string_equal(got, hex);
}

static void test_dedup_personio(void **state)
{
    uint8_t d[32];
    const char *body = "{\"event_name\":\"employee.created\"}";
    rd_dedup_personio(body, strlen(body), d);
    /* printf '%s' '{"event_name":"employee.created"}' | sha256sum */
    assert_digest(d, "336f4d1928a1baed7778d3ae77285b576567c953c60adef01be2a9e357b3cf02");
}

static void test_dedup_moco(void **state)
{
    uint8_t d[32], e[32];
    const char *body = "{\"id\":1}";
    rd_dedup_moco("Presence", "create", body, strlen(body), d);
    /* printf 'Presence\0create\0{"id":1}' | sha256sum */
    assert_digest(d, "0154c67852ceacdb80598daf0a88bc1483f1cdd844dc12c3f3af89fff2fa235f");
    rd_dedup_moco("Schedule", "create", body, strlen(body), e);
    assert_memory_not_equal(d, e, 32);
    rd_dedup_moco("Presence", "update", body, strlen(body), e);
    assert_memory_not_equal(d, e, 32);
    /* The separators keep the fields apart. */
    rd_dedup_moco("Presencec", "reate", body, strlen(body), e);
    assert_memory_not_equal(d, e, 32);
}

static void test_dedup_standard(void **state)
{
    uint8_t d[32];
    rd_dedup_standard(sw_id, d);
    /* printf '%s' 'msg_p5jXN8AQM9LWM0D4loKWxJek' | sha256sum */
    assert_digest(d, "f9687cd8cba444e077ceaa14a68c044e686bc6a9cd817724f94a5627e110cfa3");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_moco_vectors),
        cmocka_unit_test(test_moco_negatives),
        cmocka_unit_test(test_moco_rotation),
        cmocka_unit_test(test_sw_vector),
        cmocka_unit_test(test_sw_negatives),
        cmocka_unit_test(test_sw_tolerance),
        cmocka_unit_test(test_sw_missing_headers),
        cmocka_unit_test(test_sw_bad_timestamp),
        cmocka_unit_test(test_sw_multiple_entries),
        cmocka_unit_test(test_sw_secret_rotation),
        cmocka_unit_test(test_sw_work_limits),
        cmocka_unit_test(test_sw_result_str),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_token_empty_configured),
        cmocka_unit_test(test_dedup_personio),
        cmocka_unit_test(test_dedup_moco),
        cmocka_unit_test(test_dedup_standard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
