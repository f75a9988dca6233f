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
 * Key ids: the first RD_KEY_ID_LEN bytes of HMAC-SHA256(key, "rosterd secret key id").
 * Stored in every sealed value so the key it needs is known without trying keys;
 * the id reveals nothing about the key. hex receives 2 * RD_KEY_ID_LEN + 1 bytes.
 */
#define RD_KEY_ID_LEN 8
void rd_secret_key_id(const uint8_t key[RD_SECRET_KEY_LEN], uint8_t id[RD_KEY_ID_LEN]);
void rd_secret_key_id_hex(const uint8_t key[RD_SECRET_KEY_LEN], char hex[2 * RD_KEY_ID_LEN + 1]);

/*
 * Previous keys: keys rd_aead_open may also use (never rd_aead_seal), so a
 * process reads values sealed under an old key while `rosterctl secrets
 * rotate-key` re-seals them. Process-wide because every module that opens a
 * sealed value (intake, workers, rosterctl) takes the one current key by
 * pointer; register them at start-up before threads start. Copied; at most
 * RD_SECRET_KEYS_MAX. rd_secret_key_add_previous ignores the current key's
 * twin and a key already added. -1 when the table is full.
 */
#define RD_SECRET_KEYS_MAX 4
int rd_secret_key_add_previous(const uint8_t key[RD_SECRET_KEY_LEN])
    __attribute__((warn_unused_result));
/* Wipes and forgets every previous key. */
void rd_secret_key_clear_previous(void);

/*
 * The start-up path of rosterd and rosterctl: loads secret_key_file into key and,
 * when previous_path is set (secret_key_previous_file), registers that key as a
 * previous one (after clearing any registered before). Messages name the path.
 */
int rd_secret_keys_load(const char *path, const char *previous_path, uint8_t key[RD_SECRET_KEY_LEN],
                        char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * AES-256-GCM with a random 96-bit nonce per value. Sealed format (version 2):
 * 0x02 || key id (8) || nonce (12) || ciphertext || tag (16); the version byte
 * and key id are authenticated together with aad, which binds the blob to its
 * owner (e.g. the connection name). Version 1 (0x01 || nonce || ct || tag, no
 * key id, aad alone) is still opened.
 * Both return a new buffer in *out (free with free()); rd_aead_open's output
 * has an extra NUL after *outlen bytes so text can be used directly.
 * rd_aead_open tries key, then the previous keys (by key id for version 2);
 * it returns -1 on any tampering or when no known key fits.
 */
int rd_aead_seal(const uint8_t key[RD_SECRET_KEY_LEN], const void *aad, size_t aadlen,
                 const void *pt, size_t ptlen, uint8_t **out, size_t *outlen)
    __attribute__((warn_unused_result));
int rd_aead_open(const uint8_t key[RD_SECRET_KEY_LEN], const void *aad, size_t aadlen,
                 const uint8_t *in, size_t inlen, uint8_t **out, size_t *outlen)
    __attribute__((warn_unused_result));

/*
 * The key id of a sealed value as hex into hex (2 * RD_KEY_ID_LEN + 1 bytes):
 * 0 for version 2, 1 for a version-1 value (no id; hex is "-"), -1 when in is
 * not a sealed value at all.
 */
int rd_aead_key_id_hex(const uint8_t *in, size_t inlen, char hex[2 * RD_KEY_ID_LEN + 1]);

#endif
