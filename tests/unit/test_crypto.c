/*
 * Unit tests for server/crypto.c: digests against published vectors, the
 * strict hex/base64 codecs, the secret key file forms and the AES-256-GCM
 * envelope (round trip, tampering of each region, wrong key and aad), key ids,
 * previous keys for rotation and the version-1 format written before key ids.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rosterd/crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#include <openssl/evp.h>

static void hex_of(const uint8_t *p, size_t n, char *out)
{
    rd_hex_encode(p, n, out);
}

static void test_sha256_vectors(void **state)
{
    uint8_t d[RD_SHA256_LEN];
    char hex[2 * RD_SHA256_LEN + 1];
    rd_sha256("abc", 3, d);
    hex_of(d, sizeof d, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    rd_sha256(NULL, 0, d);
    hex_of(d, sizeof d, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_hmac_rfc4231(void **state)
{
    uint8_t d[RD_SHA256_LEN];
    char hex[2 * RD_SHA256_LEN + 1];
    const char *msg = "what do ya want for nothing?";
    rd_hmac_sha256("Jefe", 4, msg, strlen(msg), d);
    hex_of(d, sizeof d, hex);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_hex_round_trip(void **state)
{
    const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char hex[2 * sizeof in + 1];
    uint8_t back[sizeof in];
    size_t n = 0;
    rd_hex_encode(in, sizeof in, hex);
    assert_string_equal(hex, "00017f80abff");
    assert_int_equal(rd_hex_decode(hex, strlen(hex), back, sizeof back, &n), 0);
    assert_int_equal(n, sizeof in);
    assert_memory_equal(back, in, sizeof in);
    /* Upper case decodes too. */
    assert_int_equal(rd_hex_decode("00017F80ABFF", 12, back, sizeof back, &n), 0);
    assert_memory_equal(back, in, sizeof in);
    assert_int_equal(rd_hex_decode("", 0, back, sizeof back, &n), 0);
    assert_int_equal(n, 0);
}

static void test_hex_rejects(void **state)
{
    uint8_t out[4];
    size_t n = 0;
    assert_int_equal(rd_hex_decode("abc", 3, out, sizeof out, &n), -1);         /* odd */
    assert_int_equal(rd_hex_decode("zz", 2, out, sizeof out, &n), -1);          /* bad digit */
    assert_int_equal(rd_hex_decode("0g", 2, out, sizeof out, &n), -1);          /* bad digit */
    assert_int_equal(rd_hex_decode(" 0", 2, out, sizeof out, &n), -1);          /* space */
    assert_int_equal(rd_hex_decode("0011223344", 10, out, sizeof out, &n), -1); /* too long */
    assert_int_equal(rd_hex_decode("00112233", 8, out, sizeof out, &n), 0);
    assert_int_equal(n, 4);
}

static void check_b64(const char *raw, const char *enc)
{
    uint8_t *back = NULL;
    size_t n = 0;
    char *e = rd_base64_encode((const uint8_t *)raw, strlen(raw));
    assert_string_equal(e, enc);
    free(e);
    assert_int_equal(rd_base64_decode(enc, strlen(enc), &back, &n), 0);
    assert_int_equal(n, strlen(raw));
    if (n)
        assert_memory_equal(back, raw, n);
    free(back);
}

static void test_base64_round_trip(void **state)
{
    /* RFC 4648 section 10 vectors. */
    check_b64("", "");
    check_b64("f", "Zg==");
    check_b64("fo", "Zm8=");
    check_b64("foo", "Zm9v");
    check_b64("foob", "Zm9vYg==");
    check_b64("fooba", "Zm9vYmE=");
    check_b64("foobar", "Zm9vYmFy");

    uint8_t all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (uint8_t)i;
    char *e = rd_base64_encode(all, sizeof all);
    uint8_t *back = NULL;
    size_t n = 0;
    assert_int_equal(rd_base64_decode(e, strlen(e), &back, &n), 0);
    assert_int_equal(n, sizeof all);
    assert_memory_equal(back, all, sizeof all);
    free(back);
    free(e);
}

static void test_base64_rejects(void **state)
{
    static const char *const bad[] = {
        "Zg",       /* padding missing */
        "Zg=",      /* length not a multiple of 4 */
        "Zh==",     /* non-zero bits under the padding */
        "Zm9=",     /* non-zero bits under the padding */
        "Zm 9v",    /* whitespace */
        "Zm9v\n",   /* trailing newline */
        "Zm-_",     /* url-safe alphabet */
        "Z===",     /* too much padding */
        "====",     /* only padding */
        "Zg==Zm9v", /* padding in the middle */
        "Zm=v",     /* '=' inside a quantum */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t *out = (uint8_t *)"sentinel";
        size_t n = 99;
        assert_int_equal(rd_base64_decode(bad[i], strlen(bad[i]), &out, &n), -1);
        assert_null(out);
    }
}

static void test_ct_equal(void **state)
{
    assert_true(rd_ct_equal("abc", 3, "abc", 3));
    assert_false(rd_ct_equal("abc", 3, "abd", 3));
    assert_false(rd_ct_equal("abc", 3, "abcd", 4));
    assert_true(rd_ct_equal("", 0, "", 0));
}

static void test_random_bytes(void **state)
{
    uint8_t a[32] = {0}, b[32] = {0};
    assert_int_equal(rd_random_bytes(a, sizeof a), 0);
    assert_int_equal(rd_random_bytes(b, sizeof b), 0);
    assert_memory_not_equal(a, b, sizeof a);
}

static const char key_hex[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

static void expected_key(uint8_t k[RD_SECRET_KEY_LEN])
{
    for (int i = 0; i < RD_SECRET_KEY_LEN; i++)
        k[i] = (uint8_t)i;
}

static void test_secret_key_forms(void **state)
{
    uint8_t want[RD_SECRET_KEY_LEN], key[RD_SECRET_KEY_LEN], buf[70];
    char err[256];
    expected_key(want);

    memset(key, 0xee, sizeof key);
    assert_int_equal(rd_secret_key_parse(want, 32, key, err, sizeof err), 0);
    assert_memory_equal(key, want, sizeof want);

    memcpy(buf, want, 32);
    buf[32] = '\n';
    memset(key, 0xee, sizeof key);
    assert_int_equal(rd_secret_key_parse(buf, 33, key, err, sizeof err), 0);
    assert_memory_equal(key, want, sizeof want);

    memset(key, 0xee, sizeof key);
    assert_int_equal(rd_secret_key_parse((const uint8_t *)key_hex, 64, key, err, sizeof err), 0);
    assert_memory_equal(key, want, sizeof want);

    memcpy(buf, key_hex, 64);
    buf[64] = '\n';
    memset(key, 0xee, sizeof key);
    assert_int_equal(rd_secret_key_parse(buf, 65, key, err, sizeof err), 0);
    assert_memory_equal(key, want, sizeof want);
}

static void expect_key_rejected(const uint8_t *data, size_t len)
{
    uint8_t key[RD_SECRET_KEY_LEN];
    char err[256] = "";
    assert_int_equal(rd_secret_key_parse(data, len, key, err, sizeof err), -1);
    /* The message names the accepted forms. */
    assert_non_null(strstr(err, "32 raw bytes"));
    assert_non_null(strstr(err, "64 hex digits"));
}

static void test_secret_key_rejects(void **state)
{
    uint8_t buf[70];
    expect_key_rejected((const uint8_t *)key_hex, 31); /* 31 bytes */
    memcpy(buf, key_hex, 64);
    buf[64] = 'a';
    expect_key_rejected(buf, 65); /* 65 hex digits */
    memcpy(buf, key_hex, 32);
    buf[32] = 'x';
    expect_key_rejected(buf, 33); /* 33rd byte not a newline */
    memcpy(buf, key_hex, 64);
    buf[10] = 'g';
    expect_key_rejected(buf, 64); /* 64 chars, not all hex */
    memcpy(buf, key_hex, 64);
    buf[64] = '\n';
    buf[65] = '\n';
    expect_key_rejected(buf, 66); /* two newlines */
    expect_key_rejected(buf, 0);  /* empty */
}

static void test_secret_key_error_hides_contents(void **state)
{
    const char *secret = "Sup3rS3cretValue-should-never-leak";
    uint8_t key[RD_SECRET_KEY_LEN];
    char err[512] = "";
    assert_int_equal(
        rd_secret_key_parse((const uint8_t *)secret, strlen(secret), key, err, sizeof err), -1);
    assert_null(strstr(err, "Sup3r"));
    assert_null(strstr(err, "leak"));
}

static void test_secret_key_load(void **state)
{
    char path[] = "/tmp/rd_test_keyXXXXXX";
    uint8_t want[RD_SECRET_KEY_LEN], key[RD_SECRET_KEY_LEN];
    char err[512] = "";
    expected_key(want);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, key_hex, 64), 64);
    assert_int_equal(write(fd, "\n", 1), 1);
    close(fd);
    assert_int_equal(rd_secret_key_load(path, key, err, sizeof err), 0);
    assert_memory_equal(key, want, sizeof want);

    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "tooshort-secret", 15), 15);
    close(fd);
    assert_int_equal(rd_secret_key_load(path, key, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
    assert_null(strstr(err, "tooshort"));
    unlink(path);

    assert_int_equal(rd_secret_key_load(path, key, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
}

static void test_aead_round_trip(void **state)
{
    uint8_t key[RD_SECRET_KEY_LEN], *sealed = NULL, *sealed2 = NULL, *opened = NULL;
    size_t slen = 0, slen2 = 0, olen = 0;
    const char *pt = "client-secret-value";
    expected_key(key);
    assert_int_equal(rd_aead_seal(key, "acme", 4, pt, strlen(pt), &sealed, &slen), 0);
    assert_int_equal(slen, 1 + 8 + 12 + strlen(pt) + 16);
    assert_int_equal(sealed[0], 0x02);
    uint8_t id[RD_KEY_ID_LEN];
    rd_secret_key_id(key, id);
    assert_memory_equal(sealed + 1, id, RD_KEY_ID_LEN);
    assert_null(memmem(sealed, slen, pt, strlen(pt)));
    assert_int_equal(rd_aead_open(key, "acme", 4, sealed, slen, &opened, &olen), 0);
    assert_int_equal(olen, strlen(pt));
    assert_string_equal((char *)opened, pt); /* NUL-terminated */
    free(opened);

    /* A fresh nonce every time. */
    assert_int_equal(rd_aead_seal(key, "acme", 4, pt, strlen(pt), &sealed2, &slen2), 0);
    assert_memory_not_equal(sealed + 9, sealed2 + 9, 12);
    free(sealed2);
    free(sealed);

    /* Empty plaintext and empty aad. */
    assert_int_equal(rd_aead_seal(key, NULL, 0, "", 0, &sealed, &slen), 0);
    assert_int_equal(slen, 37);
    assert_int_equal(rd_aead_open(key, NULL, 0, sealed, slen, &opened, &olen), 0);
    assert_int_equal(olen, 0);
    assert_int_equal(opened[0], '\0');
    free(opened);
    free(sealed);
}

static void test_aead_tamper(void **state)
{
    uint8_t key[RD_SECRET_KEY_LEN], other[RD_SECRET_KEY_LEN], *sealed = NULL, *opened = NULL;
    size_t slen = 0, olen = 0;
    const char *pt = "0123456789abcdef";
    expected_key(key);
    assert_int_equal(rd_aead_seal(key, "acme", 4, pt, strlen(pt), &sealed, &slen), 0);

    /* Flip one bit in every byte position: version, key id, nonce, ciphertext and tag. */
    for (size_t i = 0; i < slen; i++) {
        sealed[i] ^= 0x01;
        opened = (uint8_t *)"x";
        assert_int_equal(rd_aead_open(key, "acme", 4, sealed, slen, &opened, &olen), -1);
        assert_null(opened);
        sealed[i] ^= 0x01;
    }
    /* Truncation and extension. */
    assert_int_equal(rd_aead_open(key, "acme", 4, sealed, slen - 1, &opened, &olen), -1);
    assert_int_equal(rd_aead_open(key, "acme", 4, sealed, 36, &opened, &olen), -1);
    assert_int_equal(rd_aead_open(key, "acme", 4, sealed, 0, &opened, &olen), -1);
    /* Wrong aad (the blob moved to another connection) and wrong key. */
    assert_int_equal(rd_aead_open(key, "acmf", 4, sealed, slen, &opened, &olen), -1);
    assert_int_equal(rd_aead_open(key, "acme", 3, sealed, slen, &opened, &olen), -1);
    assert_int_equal(rd_aead_open(key, NULL, 0, sealed, slen, &opened, &olen), -1);
    memcpy(other, key, sizeof key);
    other[31] ^= 0x80;
    assert_int_equal(rd_aead_open(other, "acme", 4, sealed, slen, &opened, &olen), -1);
    /* Untouched still opens, so the failures above are due to the changes. */
    assert_int_equal(rd_aead_open(key, "acme", 4, sealed, slen, &opened, &olen), 0);
    assert_memory_equal(opened, pt, strlen(pt));
    free(opened);
    free(sealed);
}

/* A value sealed the way rosterd did before key ids: 0x01 || nonce || ct || tag, aad only. */
static size_t seal_v1(const uint8_t key[RD_SECRET_KEY_LEN], const char *aad, const char *pt,
                      uint8_t *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0;
    size_t len = strlen(pt);
    out[0] = 0x01;
    assert_int_equal(rd_random_bytes(out + 1, 12), 0);
    assert_int_equal(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, out + 1), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, NULL, &n, (const uint8_t *)aad, (int)strlen(aad)), 1);
    assert_int_equal(EVP_EncryptUpdate(ctx, out + 13, &n, (const uint8_t *)pt, (int)len), 1);
    assert_int_equal(EVP_EncryptFinal_ex(ctx, out + 13 + len, &n), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out + 13 + len), 1);
    EVP_CIPHER_CTX_free(ctx);
    return 1 + 12 + len + 16;
}

static void test_aead_opens_version_1(void **state)
{
    uint8_t key[RD_SECRET_KEY_LEN], other[RD_SECRET_KEY_LEN], blob[128], *opened = NULL;
    size_t olen = 0;
    char hex[2 * RD_KEY_ID_LEN + 1];
    expected_key(key);
    memcpy(other, key, sizeof key);
    other[0] ^= 1;
    size_t n = seal_v1(key, "acme", "legacy-secret", blob);
    assert_int_equal(rd_aead_key_id_hex(blob, n, hex), 1);
    assert_string_equal(hex, "-");
    assert_int_equal(rd_aead_open(key, "acme", 4, blob, n, &opened, &olen), 0);
    assert_string_equal((char *)opened, "legacy-secret");
    free(opened);
    /* Version 1 has no key id: the previous keys are tried in turn. */
    assert_int_equal(rd_aead_open(other, "acme", 4, blob, n, &opened, &olen), -1);
    assert_int_equal(rd_secret_key_add_previous(key), 0);
    assert_int_equal(rd_aead_open(other, "acme", 4, blob, n, &opened, &olen), 0);
    free(opened);
    rd_secret_key_clear_previous();
    blob[20] ^= 1;
    assert_int_equal(rd_aead_open(key, "acme", 4, blob, n, &opened, &olen), -1);
}

static void test_key_ids_and_previous_keys(void **state)
{
    uint8_t a[RD_SECRET_KEY_LEN], b[RD_SECRET_KEY_LEN], ida[RD_KEY_ID_LEN], idb[RD_KEY_ID_LEN];
    uint8_t *sealed = NULL, *opened = NULL;
    size_t slen = 0, olen = 0;
    char hexa[2 * RD_KEY_ID_LEN + 1], hexb[2 * RD_KEY_ID_LEN + 1], got[2 * RD_KEY_ID_LEN + 1];
    expected_key(a);
    memcpy(b, a, sizeof a);
    b[5] ^= 0x40;
    rd_secret_key_id(a, ida);
    rd_secret_key_id(b, idb);
    assert_memory_not_equal(ida, idb, RD_KEY_ID_LEN);
    /* The id is a MAC of a label, not a piece of the key. */
    assert_null(memmem(a, sizeof a, ida, 4));
    rd_secret_key_id_hex(a, hexa);
    rd_secret_key_id_hex(b, hexb);
    assert_int_equal(strlen(hexa), 16);

    assert_int_equal(rd_aead_seal(a, "acme", 4, "s3cret", 6, &sealed, &slen), 0);
    assert_int_equal(rd_aead_key_id_hex(sealed, slen, got), 0);
    assert_string_equal(got, hexa);
    assert_int_equal(rd_aead_key_id_hex(sealed, 10, got), -1);
    assert_int_equal(
        rd_aead_key_id_hex((const uint8_t *)"\x07xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 38, got),
        -1);

    /* Current key b cannot open a's value until a is registered as a previous key. */
    assert_int_equal(rd_aead_open(b, "acme", 4, sealed, slen, &opened, &olen), -1);
    assert_int_equal(rd_secret_key_add_previous(a), 0);
    assert_int_equal(rd_secret_key_add_previous(a), 0); /* twice is once */
    assert_int_equal(rd_aead_open(b, "acme", 4, sealed, slen, &opened, &olen), 0);
    assert_string_equal((char *)opened, "s3cret");
    free(opened);
    /* The id picks the key: a tampered id finds none, even though a is known. */
    sealed[3] ^= 1;
    assert_int_equal(rd_aead_open(b, "acme", 4, sealed, slen, &opened, &olen), -1);
    sealed[3] ^= 1;
    /* Forgotten again. */
    rd_secret_key_clear_previous();
    assert_int_equal(rd_aead_open(b, "acme", 4, sealed, slen, &opened, &olen), -1);
    free(sealed);

    /* The table is bounded. */
    uint8_t k[RD_SECRET_KEY_LEN];
    for (int i = 0; i < RD_SECRET_KEYS_MAX; i++) {
        memcpy(k, a, sizeof k);
        k[0] = (uint8_t)i;
        assert_int_equal(rd_secret_key_add_previous(k), 0);
    }
    k[0] = 0xee;
    assert_int_equal(rd_secret_key_add_previous(k), -1);
    rd_secret_key_clear_previous();
}

static void test_secret_keys_load_with_previous(void **state)
{
    char cur[] = "/tmp/rd-test-key-cur-XXXXXX", prev[] = "/tmp/rd-test-key-prev-XXXXXX";
    uint8_t key[RD_SECRET_KEY_LEN], want[RD_SECRET_KEY_LEN], old[RD_SECRET_KEY_LEN];
    uint8_t *sealed = NULL, *opened = NULL;
    size_t slen = 0, olen = 0;
    char err[512];
    int fd1 = mkstemp(cur), fd2 = mkstemp(prev);
    assert_true(fd1 >= 0 && fd2 >= 0);
    expected_key(want);
    memcpy(old, want, sizeof old);
    old[9] ^= 0xff;
    assert_int_equal(write(fd1, want, sizeof want), (ssize_t)sizeof want);
    assert_int_equal(write(fd2, old, sizeof old), (ssize_t)sizeof old);
    close(fd1);
    close(fd2);
    assert_int_equal(rd_aead_seal(old, "x", 1, "v", 1, &sealed, &slen), 0);

    assert_int_equal(rd_secret_keys_load(cur, NULL, key, err, sizeof err), 0);
    assert_memory_equal(key, want, sizeof key);
    assert_int_equal(rd_aead_open(key, "x", 1, sealed, slen, &opened, &olen), -1);
    assert_int_equal(rd_secret_keys_load(cur, prev, key, err, sizeof err), 0);
    assert_int_equal(rd_aead_open(key, "x", 1, sealed, slen, &opened, &olen), 0);
    free(opened);
    /* A bad previous file fails the whole load, naming that file, and leaves no key. */
    assert_int_equal(rd_secret_keys_load(cur, "/nonexistent/prev.key", key, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/prev.key"));
    assert_int_equal(rd_aead_open(want, "x", 1, sealed, slen, &opened, &olen), -1);
    rd_secret_key_clear_previous();
    free(sealed);
    unlink(cur);
    unlink(prev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_hmac_rfc4231),
        cmocka_unit_test(test_hex_round_trip),
        cmocka_unit_test(test_hex_rejects),
        cmocka_unit_test(test_base64_round_trip),
        cmocka_unit_test(test_base64_rejects),
        cmocka_unit_test(test_ct_equal),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_secret_key_forms),
        cmocka_unit_test(test_secret_key_rejects),
        cmocka_unit_test(test_secret_key_error_hides_contents),
        cmocka_unit_test(test_secret_key_load),
        cmocka_unit_test(test_aead_round_trip),
        cmocka_unit_test(test_aead_tamper),
        cmocka_unit_test(test_aead_opens_version_1),
        cmocka_unit_test(test_key_ids_and_previous_keys),
        cmocka_unit_test(test_secret_keys_load_with_previous),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
