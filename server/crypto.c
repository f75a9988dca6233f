/*
 * Cryptographic primitives on OpenSSL 3: digests and MACs, strict hex and
 * base64 codecs, constant-time comparison, the secret key file, and the
 * AES-256-GCM envelope that protects credentials stored in Postgres.
 */
#include "rosterd/crypto.h"

#include "rosterd/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pthread.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#define AEAD_VERSION 0x01
#define AEAD_NONCE_LEN 12
#define AEAD_TAG_LEN 16
#define AEAD_OVERHEAD (1 + AEAD_NONCE_LEN + AEAD_TAG_LEN)

/* The key file is tiny; anything much larger is certainly the wrong file. */
#define SECRET_FILE_MAX 256

/*
 * OpenSSL rejects NULL pointers even with zero lengths in places; this gives
 * empty inputs a valid address.
 */
static const uint8_t empty_input[1];

/*
 * SHA-256 and HMAC-SHA256 can only fail on allocation failure inside
 * OpenSSL. Returning an unfilled digest could make two unrelated inputs
 * compare equal, so fail closed like the allocation wrappers do.
 */
static void crypto_fatal(const char *what)
{
    fprintf(stderr, "{\"level\":\"error\",\"msg\":\"openssl failure\",\"op\":\"%s\"}\n", what);
    abort();
}

/*
 * On OpenSSL 3, EVP_sha256() and HMAC() look the algorithm up in the provider
 * store on every call and HMAC() builds and frees a whole MAC context (about
 * half its cost for a 1 KiB webhook body). The algorithms are fetched once;
 * each thread keeps one HMAC context that EVP_MAC_init re-keys per call. The
 * context holds key-derived state between calls, as the connection cache
 * already holds the keys themselves; the thread-exit destructor frees it.
 */
static pthread_once_t algs_once = PTHREAD_ONCE_INIT;
static pthread_key_t hmac_key;
static EVP_MD *sha256_md;
static EVP_MAC *hmac_mac;

static void free_hmac_ctx(void *ctx)
{
    EVP_MAC_CTX_free(ctx);
}

static void fetch_algs(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    hmac_mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!sha256_md || !hmac_mac || pthread_key_create(&hmac_key, free_hmac_ctx) != 0)
        crypto_fatal("fetch sha256/hmac");
}

static EVP_MAC_CTX *thread_hmac_ctx(void)
{
    pthread_once(&algs_once, fetch_algs);
    EVP_MAC_CTX *ctx = pthread_getspecific(hmac_key);
    if (ctx)
        return ctx;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    ctx = EVP_MAC_CTX_new(hmac_mac);
    if (!ctx || EVP_MAC_CTX_set_params(ctx, params) != 1 ||
        pthread_setspecific(hmac_key, ctx) != 0)
        crypto_fatal("hmac context");
    return ctx;
}

void rd_sha256(const void *data, size_t len, uint8_t out[RD_SHA256_LEN])
{
    unsigned int outlen = 0;
    pthread_once(&algs_once, fetch_algs);
    if (!EVP_Digest(len ? data : empty_input, len, out, &outlen, sha256_md, NULL) ||
        outlen != RD_SHA256_LEN)
        crypto_fatal("sha256");
}

void rd_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                    uint8_t out[RD_SHA256_LEN])
{
    size_t outlen = 0;
    if (keylen == 0) {
        /*
         * OpenSSL 3.0's HMAC provider leaks its key copy when an empty key is
         * replaced, so the (never used in practice) empty key takes the slow path.
         */
        unsigned int n = 0;
        if (!HMAC(EVP_sha256(), empty_input, 0, len ? data : empty_input, len, out, &n) ||
            n != RD_SHA256_LEN)
            crypto_fatal("hmac-sha256");
        return;
    }
    EVP_MAC_CTX *ctx = thread_hmac_ctx();
    /* Never a NULL key: EVP_MAC_init(ctx, NULL, ...) would reuse the previous caller's key. */
    if (EVP_MAC_init(ctx, key, keylen, NULL) != 1 ||
        EVP_MAC_update(ctx, len ? data : empty_input, len) != 1 ||
        EVP_MAC_final(ctx, out, &outlen, RD_SHA256_LEN) != 1 || outlen != RD_SHA256_LEN)
        crypto_fatal("hmac-sha256");
}

void rd_hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int rd_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap, size_t *outlen)
{
    if (inlen % 2 != 0 || inlen / 2 > outcap)
        return -1;
    for (size_t i = 0; i < inlen / 2; i++) {
        int hi = hex_value((unsigned char)in[2 * i]);
        int lo = hex_value((unsigned char)in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    if (outlen)
        *outlen = inlen / 2;
    return 0;
}

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *rd_base64_encode(const uint8_t *in, size_t n)
{
    char *out = rd_malloc((n + 2) / 3 * 4 + 1);
    char *p = out;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *p++ = b64_alphabet[v >> 18 & 63];
        *p++ = b64_alphabet[v >> 12 & 63];
        *p++ = b64_alphabet[v >> 6 & 63];
        *p++ = b64_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *p++ = b64_alphabet[v >> 18 & 63];
        *p++ = b64_alphabet[v >> 12 & 63];
        *p++ = '=';
        *p++ = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *p++ = b64_alphabet[v >> 18 & 63];
        *p++ = b64_alphabet[v >> 12 & 63];
        *p++ = b64_alphabet[v >> 6 & 63];
        *p++ = '=';
    }
    *p = '\0';
    return out;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/*
 * Strict on purpose: EVP_DecodeBlock skips whitespace and accepts unused
 * trailing bits, so several spellings would decode to the same secret. Here
 * only the canonical encoding is accepted: padding required, no whitespace,
 * and the bits under the padding must be zero.
 */
int rd_base64_decode(const char *in, size_t inlen, uint8_t **out, size_t *outlen)
{
    size_t pad = 0;
    *out = NULL;
    *outlen = 0;
    if (inlen % 4 != 0)
        return -1;
    if (inlen >= 1 && in[inlen - 1] == '=')
        pad = (inlen >= 2 && in[inlen - 2] == '=') ? 2 : 1;

    uint8_t *buf = rd_malloc(inlen / 4 * 3 + 1);
    size_t n = 0;
    for (size_t i = 0; i < inlen; i += 4) {
        bool last = i + 4 == inlen;
        size_t data_chars = last ? 4 - pad : 4;
        uint32_t v = 0;
        for (size_t j = 0; j < 4; j++) {
            int d = 0;
            if (j < data_chars) {
                d = b64_value((unsigned char)in[i + j]);
                if (d < 0)
                    goto fail;
            }
            v = v << 6 | (uint32_t)d;
        }
        buf[n++] = (uint8_t)(v >> 16);
        if (data_chars >= 3)
            buf[n++] = (uint8_t)(v >> 8);
        if (data_chars == 4)
            buf[n++] = (uint8_t)v;
        if ((data_chars == 2 && (v & 0xffff)) || (data_chars == 3 && (v & 0xff)))
            goto fail;
    }
    *out = buf;
    *outlen = n;
    return 0;
fail:
    free(buf);
    return -1;
}

bool rd_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    if (alen != blen)
        return false;
    if (alen == 0)
        return true;
    return CRYPTO_memcmp(a, b, alen) == 0;
}

int rd_random_bytes(void *out, size_t n)
{
    unsigned char *p = out;
    while (n > 0) {
        int chunk = n > INT_MAX ? INT_MAX : (int)n;
        if (RAND_bytes(p, chunk) != 1)
            return -1;
        p += chunk;
        n -= (size_t)chunk;
    }
    return 0;
}

static bool all_hex(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (hex_value(p[i]) < 0)
            return false;
    return true;
}

int rd_secret_key_parse(const uint8_t *data, size_t len, uint8_t key[RD_SECRET_KEY_LEN], char *err,
                        size_t errlen)
{
    size_t n = len;
    if (len == RD_SECRET_KEY_LEN) {
        memcpy(key, data, RD_SECRET_KEY_LEN);
        return 0;
    }
    if (len == RD_SECRET_KEY_LEN + 1 && data[RD_SECRET_KEY_LEN] == '\n') {
        memcpy(key, data, RD_SECRET_KEY_LEN);
        return 0;
    }
    if (n == 2 * RD_SECRET_KEY_LEN + 1 && data[n - 1] == '\n')
        n--;
    if (n == 2 * RD_SECRET_KEY_LEN && all_hex(data, n)) {
        size_t got = 0;
        if (rd_hex_decode((const char *)data, n, key, RD_SECRET_KEY_LEN, &got) == 0 &&
            got == RD_SECRET_KEY_LEN)
            return 0;
    }
    /* Only the length is reported: the contents are the secret. */
    if (err && errlen)
        snprintf(err, errlen,
                 "secret key must be 32 raw bytes (optionally followed by one newline) or 64 hex "
                 "digits (optionally followed by one newline); got %zu bytes",
                 len);
    return -1;
}

int rd_secret_key_load(const char *path, uint8_t key[RD_SECRET_KEY_LEN], char *err, size_t errlen)
{
    uint8_t buf[SECRET_FILE_MAX + 1];
    char detail[256];
    size_t len = 0;
    int rc = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open secret key file %s: %s", path, strerror(errno));
        goto done;
    }
    while (len < sizeof buf) {
        ssize_t r = read(fd, buf + len, sizeof buf - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            snprintf(err, errlen, "cannot read secret key file %s: %s", path, strerror(errno));
            goto done;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    if (len > SECRET_FILE_MAX) {
        snprintf(err, errlen, "secret key file %s is too large", path);
        goto done;
    }
    if (rd_secret_key_parse(buf, len, key, detail, sizeof detail) != 0) {
        snprintf(err, errlen, "secret key file %s: %s", path, detail);
        goto done;
    }
    rc = 0;
done:
    rd_memzero(buf, sizeof buf);
    if (fd >= 0)
        close(fd);
    return rc;
}

int rd_aead_seal(const uint8_t key[RD_SECRET_KEY_LEN], const void *aad, size_t aadlen,
                 const void *pt, size_t ptlen, uint8_t **out, size_t *outlen)
{
    EVP_CIPHER_CTX *ctx = NULL;
    uint8_t *buf = NULL;
    int n = 0;
    int rc = -1;
    *out = NULL;
    *outlen = 0;
    if (ptlen > INT_MAX - AEAD_OVERHEAD || aadlen > INT_MAX)
        return -1;
    buf = rd_malloc(ptlen + AEAD_OVERHEAD);
    buf[0] = AEAD_VERSION;
    uint8_t *nonce = buf + 1, *ct = buf + 1 + AEAD_NONCE_LEN, *tag = ct + ptlen;
    if (rd_random_bytes(nonce, AEAD_NONCE_LEN) != 0)
        goto done;
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx || EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, AEAD_NONCE_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) != 1)
        goto done;
    if (aadlen && EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1)
        goto done;
    if (ptlen && EVP_EncryptUpdate(ctx, ct, &n, pt, (int)ptlen) != 1)
        goto done;
    if (EVP_EncryptFinal_ex(ctx, ct + ptlen, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, AEAD_TAG_LEN, tag) != 1)
        goto done;
    *out = buf;
    *outlen = ptlen + AEAD_OVERHEAD;
    buf = NULL;
    rc = 0;
done:
    EVP_CIPHER_CTX_free(ctx);
    free(buf);
    return rc;
}

int rd_aead_open(const uint8_t key[RD_SECRET_KEY_LEN], const void *aad, size_t aadlen,
                 const uint8_t *in, size_t inlen, uint8_t **out, size_t *outlen)
{
    EVP_CIPHER_CTX *ctx = NULL;
    uint8_t *buf = NULL;
    size_t ctlen;
    int n = 0;
    int rc = -1;
    *out = NULL;
    *outlen = 0;
    if (inlen < AEAD_OVERHEAD || inlen > INT_MAX || aadlen > INT_MAX || in[0] != AEAD_VERSION)
        return -1;
    ctlen = inlen - AEAD_OVERHEAD;
    const uint8_t *nonce = in + 1, *ct = in + 1 + AEAD_NONCE_LEN, *tag = ct + ctlen;
    buf = rd_malloc(ctlen + 1);
    ctx = EVP_CIPHER_CTX_new();
    if (!ctx || EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, AEAD_NONCE_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) != 1)
        goto done;
    if (aadlen && EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1)
        goto done;
    if (ctlen && EVP_DecryptUpdate(ctx, buf, &n, ct, (int)ctlen) != 1)
        goto done;
    /* The tag is checked in Final; nothing decrypted is released before it. */
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, AEAD_TAG_LEN, (void *)tag) != 1 ||
        EVP_DecryptFinal_ex(ctx, buf + ctlen, &n) != 1)
        goto done;
    buf[ctlen] = '\0';
    *out = buf;
    *outlen = ctlen;
    buf = NULL;
    rc = 0;
done:
    EVP_CIPHER_CTX_free(ctx);
    if (buf) {
        rd_memzero(buf, ctlen + 1);
        free(buf);
    }
    return rc;
}
