/*
 * Cryptographic primitives on OpenSSL: SHA-256, HMAC-SHA256, hex and base64,
 * constant-time comparison, and AES-256-GCM sealing of stored credentials.
 */
#ifndef ROSTERD_CRYPTO_H
#define ROSTERD_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RD_SHA256_LEN 32
#define RD_SECRET_KEY_LEN 32

void rd_sha256(const void *data, size_t len, uint8_t out[RD_SHA256_LEN]);
void rd_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                    uint8_t out[RD_SHA256_LEN]);

/* Writes 2n lowercase hex digits and a NUL into out (2n+1 bytes). */
void rd_hex_encode(const uint8_t *in, size_t n, char *out);
/* Decodes hex (either case); -1 on odd length, bad digit or when it does not fit outcap. */
int rd_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap, size_t *outlen)
    __attribute__((warn_unused_result));

/* Standard alphabet with padding. Returns a new string, free with free(). */
char *rd_base64_encode(const uint8_t *in, size_t n);
/* Strict standard base64 (padding required); *out is new (free with free()). -1 on bad input. */
int rd_base64_decode(const char *in, size_t inlen, uint8_t **out, size_t *outlen)
    __attribute__((warn_unused_result));

/*
 * Constant-time equality (CRYPTO_memcmp). Lengths are compared in the open: a
 * length mismatch returns false without comparing contents.
 */
bool rd_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

int rd_random_bytes(void *out, size_t n) __attribute__((warn_unused_result));

/*
 * Parses the contents of secret_key_file: exactly 32 raw bytes, 32 bytes and
 * one trailing newline, or 64 hex digits (optionally newline-terminated).
 */
int rd_secret_key_parse(const uint8_t *data, size_t len, uint8_t key[RD_SECRET_KEY_LEN], char *err,
                        size_t errlen) __attribute__((warn_unused_result));
/* Reads and parses the file; the message names the path, never the contents. */
int rd_secret_key_load(const char *path, uint8_t key[RD_SECRET_KEY_LEN], char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * AES-256-GCM. Sealed format: 0x01 || nonce(12) || ciphertext || tag(16).
 * aad binds the blob to its owner (e.g. the connection name).
 * Both return a new buffer in *out (free with free()); rd_aead_open's output
 * has an extra NUL after *outlen bytes so text can be used directly.
 * rd_aead_open returns -1 on any tampering or wrong key.
 */
int rd_aead_seal(const uint8_t key[RD_SECRET_KEY_LEN], const void *aad, size_t aadlen,
                 const void *pt, size_t ptlen, uint8_t **out, size_t *outlen)
    __attribute__((warn_unused_result));
int rd_aead_open(const uint8_t key[RD_SECRET_KEY_LEN], const void *aad, size_t aadlen,
                 const uint8_t *in, size_t inlen, uint8_t **out, size_t *outlen)
    __attribute__((warn_unused_result));

#endif
