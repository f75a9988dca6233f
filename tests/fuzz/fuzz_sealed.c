/*
 * libFuzzer target for the sealed-value envelope (server/crypto.c): opening
 * arbitrary bytes as a stored secret (a damaged or hostile `connections.sealed`
 * row) must fail cleanly, never read out of bounds, and never succeed without
 * the key; sealing the input and opening it again must give it back, under the
 * current key and under a previous one.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rosterd/crypto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "property violated: %s\n", what);
        abort();
    }
}

static const uint8_t key_a[RD_SECRET_KEY_LEN] = {0xa1, 0xa2, 0xa3};
static const uint8_t key_b[RD_SECRET_KEY_LEN] = {0xb1, 0xb2, 0xb3};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once;
    uint8_t *out = NULL, *sealed = NULL;
    size_t outlen = 0, slen = 0;
    char hex[2 * RD_KEY_ID_LEN + 1];
    if (!once) {
        once = 1;
        /* b is the previous key throughout: the lookup by key id is exercised too. */
        check(rd_secret_key_add_previous(key_b) == 0, "previous key");
    }
    /* The first byte (if any) splits aad from the rest, so both vary. */
    size_t aadlen = size ? data[0] % (size) : 0;
    const uint8_t *aad = size ? data + 1 : data;
    if (size && aadlen > size - 1)
        aadlen = size - 1;
    const uint8_t *rest = size ? data + 1 + aadlen : data;
    size_t restlen = size ? size - 1 - aadlen : 0;

    /*
     * Arbitrary bytes as a stored value. Only a genuine value (the corpus holds
     * some; a forgery would need the key) opens, and then its header says so.
     */
    int kid = rd_aead_key_id_hex(rest, restlen, hex);
    check(kid >= -1 && kid <= 1 && strlen(hex) <= 2 * RD_KEY_ID_LEN, "key id bounded");
    if (rd_aead_open(key_a, aad, aadlen, rest, restlen, &out, &outlen) == 0) {
        char ha[2 * RD_KEY_ID_LEN + 1], hb[2 * RD_KEY_ID_LEN + 1];
        rd_secret_key_id_hex(key_a, ha);
        rd_secret_key_id_hex(key_b, hb);
        check(kid == 1 || strcmp(hex, ha) == 0 || strcmp(hex, hb) == 0, "opened under a known id");
        check(outlen + 29 + (kid == 0 ? 8 : 0) == restlen && out[outlen] == '\0', "plain length");
        free(out);
        out = NULL;
    } else {
        check(out == NULL && outlen == 0, "failure leaves no output");
    }

    /* Round trips: current key a, and b as a previous key. */
    const uint8_t *keys[2] = {key_a, key_b};
    for (int k = 0; k < 2; k++) {
        check(rd_aead_seal(keys[k], aad, aadlen, rest, restlen, &sealed, &slen) == 0, "seal");
        check(rd_aead_key_id_hex(sealed, slen, hex) == 0, "sealed value has a key id");
        check(rd_aead_open(key_a, aad, aadlen, sealed, slen, &out, &outlen) == 0, "open");
        check(outlen == restlen && (restlen == 0 || memcmp(out, rest, restlen) == 0) &&
                  out[outlen] == '\0',
              "round trip");
        free(out);
        out = NULL;
        /* A changed aad (the row moved to another owner) never opens. */
        uint8_t other = aadlen ? (uint8_t)(aad[0] ^ 1) : 'x';
        check(rd_aead_open(key_a, &other, 1, sealed, slen, &out, &outlen) == -1, "aad binds");
        free(out);
        out = NULL;
        free(sealed);
    }
    return 0;
}
