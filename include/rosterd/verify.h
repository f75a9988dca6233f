/*
 * Webhook authentication (Personio token, MOCO HMAC, Standard Webhooks) and
 * the dedup keys of DESIGN.md §5. Pure functions: no I/O, no clock, no globals.
 */
#ifndef ROSTERD_VERIFY_H
#define ROSTERD_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Personio: presented (the Authorization header, may be NULL) must equal one
 * of tokens, compared in constant time. Empty configured tokens never match,
 * and an empty or missing header never passes.
 */
bool rd_verify_token(const char *presented, const char *const *tokens, size_t ntokens);

/*
 * MOCO: sig_hex (X-Moco-Signature, may be NULL) must be the lowercase hex
 * HMAC-SHA256 of body under one of keys (each used as its ASCII bytes).
 */
bool rd_verify_moco(const void *body, size_t len, const char *sig_hex, const char *const *keys,
                    size_t nkeys);

enum rd_sw_result {
    RD_SW_OK = 0,
    RD_SW_MISSING_HEADER, /* one of the three headers absent or empty */
    RD_SW_BAD_TIMESTAMP,  /* not an integer */
    RD_SW_TOO_OLD,        /* now - ts > tolerance */
    RD_SW_TOO_NEW,        /* ts - now > tolerance */
    RD_SW_NO_MATCH,       /* no v1 entry matched any secret */
};

/*
 * Standard Webhooks v1: signs "{id}.{timestamp}.{body}" with HMAC-SHA256 under
 * each secret ("whsec_" + base64, or bare base64; undecodable secrets are
 * skipped); signature is a space-separated list of "version,base64" entries,
 * any v1 match passes, other versions are skipped. now and tolerance in seconds.
 */
enum rd_sw_result rd_verify_standard(const char *id, const char *timestamp, const char *signature,
                                     const void *body, size_t len, const char *const *secrets,
                                     size_t nsecrets, int64_t now, int64_t tolerance);
const char *rd_sw_result_str(enum rd_sw_result r);

/* Builds the "v1,<base64>" signature for a message (used by tests and the sandbox tools). -1 on a
 * bad secret. */
int rd_sign_standard(const char *id, const char *timestamp, const void *body, size_t len,
                     const char *secret, char **out) __attribute__((warn_unused_result));

/* Dedup keys (32 bytes): Personio SHA-256(raw body); MOCO SHA-256(target NUL event NUL body);
 * Standard Webhooks SHA-256(webhook-id). */
void rd_dedup_personio(const void *body, size_t len, uint8_t out[32]);
void rd_dedup_moco(const char *target, const char *event, const void *body, size_t len,
                   uint8_t out[32]);
void rd_dedup_standard(const char *webhook_id, uint8_t out[32]);

#endif
