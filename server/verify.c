/*
 * Webhook authentication for the intake: Personio's static token, MOCO's
 * HMAC over the body and Standard Webhooks v1 signatures, plus the dedup keys
 * of DESIGN.md §5. Every secret comparison runs over all configured secrets.
 */
#include "rosterd/verify.h"

#include "rosterd/crypto.h"
#include "rosterd/mem.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* Bounds on attacker-controlled work per request (see rd_verify_standard). */
#define SW_MAX_ENTRIES 16
#define SW_MAX_ENTRY_LEN 128
/* More secrets than this is a configuration mistake; the rest are ignored. */
#define SW_MAX_SECRETS 16
/* Base64 of a SHA-256 MAC: 44 characters. */
#define SW_MAC_B64_LEN 44

/*
 * Both sides are hashed first so the comparison is constant time and also
 * hides the length of the configured token.
 */
bool rd_verify_token(const char *presented, const char *const *tokens, size_t ntokens)
{
    uint8_t want[RD_SHA256_LEN], have[RD_SHA256_LEN];
    int matched = 0;
    if (!presented || !*presented || !tokens)
        return false;
    rd_sha256(presented, strlen(presented), have);
    for (size_t i = 0; i < ntokens; i++) {
        if (!tokens[i] || !*tokens[i])
            continue;
        rd_sha256(tokens[i], strlen(tokens[i]), want);
        matched |= CRYPTO_memcmp(want, have, sizeof want) == 0;
    }
    rd_memzero(want, sizeof want);
    return matched != 0;
}

static bool is_lower_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

bool rd_verify_moco(const void *body, size_t len, const char *sig_hex, const char *const *keys,
                    size_t nkeys)
{
    uint8_t mac[RD_SHA256_LEN];
    char hex[2 * RD_SHA256_LEN + 1];
    int matched = 0;
    if (!sig_hex || !keys || strlen(sig_hex) != 2 * RD_SHA256_LEN ||
        !is_lower_hex(sig_hex, 2 * RD_SHA256_LEN))
        return false;
    for (size_t i = 0; i < nkeys; i++) {
        /* An empty key would let anyone compute a valid signature. */
        if (!keys[i] || !*keys[i])
            continue;
        rd_hmac_sha256(keys[i], strlen(keys[i]), body, len, mac);
        rd_hex_encode(mac, sizeof mac, hex);
        matched |= rd_ct_equal(hex, 2 * RD_SHA256_LEN, sig_hex, 2 * RD_SHA256_LEN);
    }
    rd_memzero(mac, sizeof mac);
    rd_memzero(hex, sizeof hex);
    return matched != 0;
}

/* Accepts an optional '-' and 1-18 digits, so the value always fits int64_t. */
static bool parse_timestamp(const char *s, int64_t *out)
{
    bool neg = *s == '-';
    const char *p = s + neg;
    int64_t v = 0;
    size_t n = 0;
    for (; p[n]; n++) {
        if (p[n] < '0' || p[n] > '9' || n >= 18)
            return false;
        v = v * 10 + (p[n] - '0');
    }
    if (n == 0)
        return false;
    *out = neg ? -v : v;
    return true;
}

/* Decodes "whsec_<base64>" or bare base64 into a new buffer; -1 if unusable. */
static int sw_secret_decode(const char *secret, uint8_t **key, size_t *keylen)
{
    static const char prefix[] = "whsec_";
    if (!secret)
        return -1;
    if (strncmp(secret, prefix, sizeof prefix - 1) == 0)
        secret += sizeof prefix - 1;
    if (rd_base64_decode(secret, strlen(secret), key, keylen) != 0)
        return -1;
    if (*keylen == 0) {
        free(*key);
        *key = NULL;
        return -1;
    }
    return 0;
}

/* "{id}.{timestamp}.{body}" as one buffer; returns a new buffer, free with free(). */
static uint8_t *sw_signed_content(const char *id, const char *ts, const void *body, size_t len,
                                  size_t *outlen)
{
    size_t idlen = strlen(id), tslen = strlen(ts);
    uint8_t *buf = rd_malloc(idlen + tslen + len + 2);
    memcpy(buf, id, idlen);
    buf[idlen] = '.';
    memcpy(buf + idlen + 1, ts, tslen);
    buf[idlen + 1 + tslen] = '.';
    if (len)
        memcpy(buf + idlen + tslen + 2, body, len);
    *outlen = idlen + tslen + len + 2;
    return buf;
}

static enum rd_sw_result sw_check_time(int64_t ts, int64_t now, int64_t tolerance)
{
    /* Unsigned differences: now and ts may be anything, and must not overflow. */
    uint64_t tol = tolerance > 0 ? (uint64_t)tolerance : 0;
    if (ts < now && (uint64_t)now - (uint64_t)ts > tol)
        return RD_SW_TOO_OLD;
    if (ts > now && (uint64_t)ts - (uint64_t)now > tol)
        return RD_SW_TOO_NEW;
    return RD_SW_OK;
}

/*
 * Walks the space-separated entries and compares every v1 entry with every
 * expected MAC. Work is bounded: at most SW_MAX_ENTRIES entries are looked at
 * and longer-than-SW_MAX_ENTRY_LEN entries are skipped unread.
 */
static bool sw_match_entries(const char *sig, char expected[][SW_MAC_B64_LEN + 1], size_t nexp)
{
    int matched = 0;
    size_t seen = 0;
    const char *p = sig;
    while (*p && seen < SW_MAX_ENTRIES) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *end = strchr(p, ' ');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        seen++;
        if (n <= SW_MAX_ENTRY_LEN && n > 3 && memcmp(p, "v1,", 3) == 0) {
            for (size_t i = 0; i < nexp; i++)
                matched |= rd_ct_equal(expected[i], SW_MAC_B64_LEN, p + 3, n - 3);
        }
        p += n;
    }
    return matched != 0;
}

enum rd_sw_result rd_verify_standard(const char *id, const char *timestamp, const char *signature,
                                     const void *body, size_t len, const char *const *secrets,
                                     size_t nsecrets, int64_t now, int64_t tolerance)
{
    char expected[SW_MAX_SECRETS][SW_MAC_B64_LEN + 1];
    size_t nexp = 0, contentlen = 0;
    int64_t ts = 0;
    enum rd_sw_result r;
    if (!id || !*id || !timestamp || !*timestamp || !signature || !*signature)
        return RD_SW_MISSING_HEADER;
    if (!parse_timestamp(timestamp, &ts))
        return RD_SW_BAD_TIMESTAMP;
    r = sw_check_time(ts, now, tolerance);
    if (r != RD_SW_OK)
        return r;

    uint8_t *content = sw_signed_content(id, timestamp, body, len, &contentlen);
    for (size_t i = 0; secrets && i < nsecrets && nexp < SW_MAX_SECRETS; i++) {
        uint8_t *key = NULL, mac[RD_SHA256_LEN];
        size_t keylen = 0;
        if (sw_secret_decode(secrets[i], &key, &keylen) != 0)
            continue;
        rd_hmac_sha256(key, keylen, content, contentlen, mac);
        rd_memzero(key, keylen);
        free(key);
        char *b64 = rd_base64_encode(mac, sizeof mac);
        memcpy(expected[nexp++], b64, SW_MAC_B64_LEN + 1);
        free(b64);
    }
    free(content);
    r = sw_match_entries(signature, expected, nexp) ? RD_SW_OK : RD_SW_NO_MATCH;
    rd_memzero(expected, sizeof expected);
    return r;
}

const char *rd_sw_result_str(enum rd_sw_result r)
{
    switch (r) {
    case RD_SW_OK:
        return "ok";
    case RD_SW_MISSING_HEADER:
        return "missing header";
    case RD_SW_BAD_TIMESTAMP:
        return "bad timestamp";
    case RD_SW_TOO_OLD:
        return "timestamp too old";
    case RD_SW_TOO_NEW:
        return "timestamp too new";
    case RD_SW_NO_MATCH:
        return "no matching signature";
    }
    return "unknown";
}

int rd_sign_standard(const char *id, const char *timestamp, const void *body, size_t len,
                     const char *secret, char **out)
{
    uint8_t *key = NULL, mac[RD_SHA256_LEN];
    size_t keylen = 0, contentlen = 0;
    *out = NULL;
    if (!id || !timestamp || sw_secret_decode(secret, &key, &keylen) != 0)
        return -1;
    uint8_t *content = sw_signed_content(id, timestamp, body, len, &contentlen);
    rd_hmac_sha256(key, keylen, content, contentlen, mac);
    rd_memzero(key, keylen);
    free(key);
    free(content);
    char *b64 = rd_base64_encode(mac, sizeof mac);
    *out = rd_asprintf("v1,%s", b64);
    free(b64);
    return 0;
}

void rd_dedup_personio(const void *body, size_t len, uint8_t out[32])
{
    rd_sha256(body, len, out);
}

/*
 * The NUL separators keep ("ab","c") and ("a","bc") apart; a NULL target or
 * event hashes like an empty one (the intake rejects those before this).
 */
void rd_dedup_moco(const char *target, const char *event, const void *body, size_t len,
                   uint8_t out[32])
{
    size_t tlen = target ? strlen(target) : 0, elen = event ? strlen(event) : 0;
    /* Webhook bodies are mostly small: skip the allocation for those. */
    uint8_t stackbuf[4096];
    size_t total = tlen + elen + len + 2;
    uint8_t *buf = total <= sizeof stackbuf ? stackbuf : rd_malloc(total);
    if (tlen)
        memcpy(buf, target, tlen);
    buf[tlen] = '\0';
    if (elen)
        memcpy(buf + tlen + 1, event, elen);
    buf[tlen + 1 + elen] = '\0';
    if (len)
        memcpy(buf + tlen + elen + 2, body, len);
    rd_sha256(buf, total, out);
    if (buf != stackbuf)
        free(buf);
}

void rd_dedup_standard(const char *webhook_id, uint8_t out[32])
{
    rd_sha256(webhook_id ? webhook_id : "", webhook_id ? strlen(webhook_id) : 0, out);
}
