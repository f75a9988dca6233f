/*
 * Fuzzes the webhook signature checks and the codecs they rely on. Input is
 * "id\ntimestamp\nsignature\nsecret\nbody"; missing fields become NULL. Besides
 * crashes it checks properties: canonical base64/hex round trips, and that a
 * signature produced by rd_sign_standard (or a MOCO MAC) always verifies.
 */
#include "rosterd/crypto.h"
#include "rosterd/mem.h"
#include "rosterd/verify.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NFIELDS 5

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "property violated: %s\n", what);
        abort();
    }
}

static void fuzz_codecs(const uint8_t *data, size_t size)
{
    uint8_t *dec = NULL;
    size_t declen = 0;
    if (rd_base64_decode((const char *)data, size, &dec, &declen) == 0) {
        /* Strict decoding accepts only the canonical spelling. */
        char *enc = rd_base64_encode(dec, declen);
        check(strlen(enc) == size && memcmp(enc, data, size) == 0, "base64 round trip");
        free(enc);
        free(dec);
    } else {
        check(dec == NULL, "base64 failure leaves *out NULL");
    }

    uint8_t *hex = rd_malloc(size / 2 + 1);
    size_t hexlen = 0;
    if (rd_hex_decode((const char *)data, size, hex, size / 2, &hexlen) == 0) {
        char *enc = rd_malloc(2 * hexlen + 1);
        rd_hex_encode(hex, hexlen, enc);
        check(hexlen * 2 == size, "hex length");
        for (size_t i = 0; i < size; i++)
            check(enc[i] == tolower(data[i]), "hex round trip");
        free(enc);
    }
    /* One byte too little room must be refused. */
    if (size >= 2 && size % 2 == 0)
        check(rd_hex_decode((const char *)data, size, hex, size / 2 - 1, &hexlen) == -1,
              "hex respects outcap");
    free(hex);
}

static void fuzz_signatures(char *f[NFIELDS], const char *body, size_t bodylen)
{
    const char *id = f[0], *ts = f[1], *sig = f[2], *secret = f[3];
    const char *secrets[] = {secret, sig, id};
    const int64_t now = 1614265330;

    (void)rd_sw_result_str(rd_verify_standard(id, ts, sig, body, bodylen, secrets, 3, now, 300));
    (void)rd_verify_moco(body, bodylen, sig, secrets, 3);
    (void)rd_verify_token(id, secrets, 3);
    (void)rd_verify_token(sig, secrets + 1, 2);

    char *signed_sig = NULL;
    if (secret &&
        rd_sign_standard(id ? id : "", ts ? ts : "", body, bodylen, secret, &signed_sig) == 0) {
        const char *one[] = {secret};
        enum rd_sw_result r =
            rd_verify_standard(id, ts, signed_sig, body, bodylen, one, 1, now, INT64_MAX);
        check(r == RD_SW_OK || r == RD_SW_MISSING_HEADER || r == RD_SW_BAD_TIMESTAMP,
              "own standard signature verifies");
        free(signed_sig);
    }
    if (secret && *secret) {
        uint8_t mac[RD_SHA256_LEN];
        char hex[2 * RD_SHA256_LEN + 1];
        const char *one[] = {secret};
        rd_hmac_sha256(secret, strlen(secret), body, bodylen, mac);
        rd_hex_encode(mac, sizeof mac, hex);
        check(rd_verify_moco(body, bodylen, hex, one, 1), "own moco signature verifies");
    }
    if (id && *id) {
        const char *one[] = {id};
        check(rd_verify_token(id, one, 1), "token equals itself");
    }

    uint8_t d[32];
    rd_dedup_moco(id, ts, body, bodylen, d);
    rd_dedup_standard(id, d);
    rd_dedup_personio(body, bodylen, d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *f[NFIELDS] = {0};
    /* A private copy, NUL-terminated, that the field split can cut up. */
    char *copy = rd_malloc(size + 1);
    memcpy(copy, data, size);
    copy[size] = '\0';

    fuzz_codecs(data, size);

    char *p = copy, *end = copy + size;
    size_t nf = 0;
    while (nf < NFIELDS - 1 && p <= end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            break;
        *nl = '\0';
        f[nf++] = p;
        p = nl + 1;
    }
    /* The rest is the body, raw bytes with its exact length. */
    const char *body = p;
    size_t bodylen = (size_t)(end - p);
    if (nf < NFIELDS - 1) {
        f[nf++] = p;
        body = NULL;
        bodylen = 0;
    }
    fuzz_signatures(f, body, bodylen);
    free(copy);
    return 0;
}
