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

#define AEAD_V1 0x01 /* 0x01 || nonce || ct || tag: before key ids */
#define AEAD_V2 0x02 /* 0x02 || key id || nonce || ct || tag */
#define AEAD_NONCE_LEN 12
#define AEAD_TAG_LEN 16
#define AEAD_V1_HEAD 1
#define AEAD_V2_HEAD (1 + RD_KEY_ID_LEN)

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
    if (!ctx || EVP_MAC_CTX_set_params(ctx, params) != 1 || pthread_setspecific(hmac_key, ctx) != 0)
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

/* ---- key ids and previous keys --------------------------------------------- */

void rd_secret_key_id(const uint8_t key[RD_SECRET_KEY_LEN], uint8_t id[RD_KEY_ID_LEN])
{
    static const char label[] = "rosterd secret key id";
    uint8_t mac[RD_SHA256_LEN];
    rd_hmac_sha256(key, RD_SECRET_KEY_LEN, label, sizeof label - 1, mac);
    memcpy(id, mac, RD_KEY_ID_LEN);
}

void rd_secret_key_id_hex(const uint8_t key[RD_SECRET_KEY_LEN], char hex[2 * RD_KEY_ID_LEN + 1])
{
    uint8_t id[RD_KEY_ID_LEN];
    rd_secret_key_id(key, id);
    rd_hex_encode(id, sizeof id, hex);
}

/*
 * Written at start-up (and by rotate-key before it reads), read by every open;
 * the lock keeps a late registration safe, and opening is rare enough (a changed
 * connection, a job that loads one) that it costs nothing measurable.
 */
static pthread_mutex_t prev_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t prev_keys[RD_SECRET_KEYS_MAX][RD_SECRET_KEY_LEN];
static uint8_t prev_ids[RD_SECRET_KEYS_MAX][RD_KEY_ID_LEN];
static size_t nprev;

int rd_secret_key_add_previous(const uint8_t key[RD_SECRET_KEY_LEN])
{
    uint8_t id[RD_KEY_ID_LEN];
    int rc = 0;
    rd_secret_key_id(key, id);
    pthread_mutex_lock(&prev_lock);
    for (size_t i = 0; i < nprev; i++)
        if (CRYPTO_memcmp(prev_keys[i], key, RD_SECRET_KEY_LEN) == 0)
            goto done;
    if (nprev == RD_SECRET_KEYS_MAX) {
        rc = -1;
        goto done;
    }
    memcpy(prev_keys[nprev], key, RD_SECRET_KEY_LEN);
    memcpy(prev_ids[nprev], id, RD_KEY_ID_LEN);
    nprev++;
done:
    pthread_mutex_unlock(&prev_lock);
    return rc;
}

void rd_secret_key_clear_previous(void)
{
    pthread_mutex_lock(&prev_lock);
    rd_memzero(prev_keys, sizeof prev_keys);
    rd_memzero(prev_ids, sizeof prev_ids);
    nprev = 0;
    pthread_mutex_unlock(&prev_lock);
}

int rd_secret_keys_load(const char *path, const char *previous_path, uint8_t key[RD_SECRET_KEY_LEN],
                        char *err, size_t errlen)
{
    uint8_t prev[RD_SECRET_KEY_LEN];
    int rc = -1;
    rd_secret_key_clear_previous();
    if (rd_secret_key_load(path, key, err, errlen) != 0)
        return -1;
    if (!previous_path || !*previous_path)
        return 0;
    if (rd_secret_key_load(previous_path, prev, err, errlen) != 0)
        goto done;
    if (rd_secret_key_add_previous(prev) != 0) {
        snprintf(err, errlen, "too many previous secret keys");
        goto done;
    }
    rc = 0;
done:
    rd_memzero(prev, sizeof prev);
    if (rc != 0)
        rd_memzero(key, RD_SECRET_KEY_LEN);
    return rc;
}

/* ---- AES-256-GCM ------------------------------------------------------------ */

/*
 * One GCM pass. head (the version byte and key id) is authenticated before aad;
 * encrypt writes ct and tag, decrypt checks tag before anything is released.
 */
static int gcm(bool encrypt, const uint8_t key[RD_SECRET_KEY_LEN], const uint8_t *nonce,
               const uint8_t *head, size_t headlen, const void *aad, size_t aadlen,
               const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, rc = -1;
    if (!ctx || len > INT_MAX || aadlen > INT_MAX ||
        EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, encrypt) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, AEAD_NONCE_LEN, NULL) != 1 ||
        EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, encrypt) != 1)
        goto done;
    if (headlen && EVP_CipherUpdate(ctx, NULL, &n, head, (int)headlen) != 1)
        goto done;
    if (aadlen && EVP_CipherUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1)
        goto done;
    if (len && EVP_CipherUpdate(ctx, out, &n, in, (int)len) != 1)
        goto done;
    if (!encrypt && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, AEAD_TAG_LEN, tag) != 1)
        goto done;
    if (EVP_CipherFinal_ex(ctx, out + len, &n) != 1)
        goto done;
    if (encrypt && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, AEAD_TAG_LEN, tag) != 1)
        goto done;
    rc = 0;
done:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int rd_aead_seal(const uint8_t key[RD_SECRET_KEY_LEN], const void *aad, size_t aadlen,
                 const void *pt, size_t ptlen, uint8_t **out, size_t *outlen)
{
    const size_t overhead = AEAD_V2_HEAD + AEAD_NONCE_LEN + AEAD_TAG_LEN;
    *out = NULL;
    *outlen = 0;
    if (ptlen > INT_MAX - overhead || aadlen > INT_MAX)
        return -1;
    uint8_t *buf = rd_malloc(ptlen + overhead);
    buf[0] = AEAD_V2;
    rd_secret_key_id(key, buf + 1);
    uint8_t *nonce = buf + AEAD_V2_HEAD, *ct = nonce + AEAD_NONCE_LEN, *tag = ct + ptlen;
    if (rd_random_bytes(nonce, AEAD_NONCE_LEN) != 0 ||
        gcm(true, key, nonce, buf, AEAD_V2_HEAD, aad, aadlen, pt, ptlen, ct, tag) != 0) {
        free(buf);
        return -1;
    }
    *out = buf;
    *outlen = ptlen + overhead;
    return 0;
}

/* The keys worth trying for a value, current first; previous ones matched by id when given. */
static size_t candidate_keys(const uint8_t key[RD_SECRET_KEY_LEN], const uint8_t *id,
                             uint8_t keys[][RD_SECRET_KEY_LEN], size_t cap)
{
    uint8_t kid[RD_KEY_ID_LEN];
    size_t n = 0;
    rd_secret_key_id(key, kid);
    if (!id || CRYPTO_memcmp(kid, id, RD_KEY_ID_LEN) == 0)
        memcpy(keys[n++], key, RD_SECRET_KEY_LEN);
    pthread_mutex_lock(&prev_lock);
    for (size_t i = 0; i < nprev && n < cap; i++)
        if (!id || CRYPTO_memcmp(prev_ids[i], id, RD_KEY_ID_LEN) == 0)
            memcpy(keys[n++], prev_keys[i], RD_SECRET_KEY_LEN);
    pthread_mutex_unlock(&prev_lock);
    return n;
}

int rd_aead_open(const uint8_t key[RD_SECRET_KEY_LEN], const void *aad, size_t aadlen,
                 const uint8_t *in, size_t inlen, uint8_t **out, size_t *outlen)
{
    uint8_t keys[RD_SECRET_KEYS_MAX + 1][RD_SECRET_KEY_LEN];
    *out = NULL;
    *outlen = 0;
    if (inlen < 1 || (in[0] != AEAD_V1 && in[0] != AEAD_V2) || inlen > INT_MAX || aadlen > INT_MAX)
        return -1;
    size_t head = in[0] == AEAD_V2 ? AEAD_V2_HEAD : AEAD_V1_HEAD;
    if (inlen < head + AEAD_NONCE_LEN + AEAD_TAG_LEN)
        return -1;
    size_t ctlen = inlen - head - AEAD_NONCE_LEN - AEAD_TAG_LEN;
    const uint8_t *nonce = in + head, *ct = nonce + AEAD_NONCE_LEN;
    uint8_t tag[AEAD_TAG_LEN]; /* a copy: OpenSSL takes the expected tag as non-const */
    memcpy(tag, ct + ctlen, sizeof tag);
    size_t nkeys =
        candidate_keys(key, in[0] == AEAD_V2 ? in + 1 : NULL, keys, sizeof keys / sizeof keys[0]);
    uint8_t *buf = rd_malloc(ctlen + 1);
    int rc = -1;
    for (size_t i = 0; i < nkeys && rc != 0; i++) {
        /* Version 1 authenticated aad alone; version 2 its header too. */
        rc = gcm(false, keys[i], nonce, in, in[0] == AEAD_V2 ? head : 0, aad, aadlen, ct, ctlen,
                 buf, tag);
    }
    rd_memzero(keys, sizeof keys);
    if (rc != 0) {
        rd_memzero(buf, ctlen + 1);
        free(buf);
        return -1;
    }
    buf[ctlen] = '\0';
    *out = buf;
    *outlen = ctlen;
    return 0;
}

int rd_aead_key_id_hex(const uint8_t *in, size_t inlen, char hex[2 * RD_KEY_ID_LEN + 1])
{
    snprintf(hex, 2 * RD_KEY_ID_LEN + 1, "-");
    if (inlen >= AEAD_V1_HEAD + AEAD_NONCE_LEN + AEAD_TAG_LEN && in[0] == AEAD_V1)
        return 1;
    if (inlen < AEAD_V2_HEAD + AEAD_NONCE_LEN + AEAD_TAG_LEN || in[0] != AEAD_V2)
        return -1;
    rd_hex_encode(in + 1, RD_KEY_ID_LEN, hex);
    return 0;
}
