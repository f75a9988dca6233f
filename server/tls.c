/*
 * TLS context for the webhook listener. Checks that the files exist before
 * OpenSSL sees them, so the operator gets "tls_cert: /x: No such file"
 * rather than an OpenSSL error stack.
 */
#include "rosterd/tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

static void openssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    if (e)
        ERR_error_string_n(e, buf, len);
    else
        snprintf(buf, len, "unknown error");
    ERR_clear_error();
}

SSL_CTX *rd_tls_server_ctx(const char *cert_file, const char *key_file, char *err, size_t errlen)
{
    char reason[256];
    SSL_CTX *ctx = NULL;

    if (access(cert_file, R_OK) != 0) {
        snprintf(err, errlen, "tls_cert: %s: %s", cert_file, strerror(errno));
        return NULL;
    }
    if (access(key_file, R_OK) != 0) {
        snprintf(err, errlen, "tls_key: %s: %s", key_file, strerror(errno));
        return NULL;
    }
    ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        openssl_reason(reason, sizeof(reason));
        snprintf(err, errlen, "cannot create TLS context: %s", reason);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    static const unsigned char sid[] = "rosterd";
    SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1);
    if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!MD5:!DSS") != 1)
        goto openssl_fail;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
        openssl_reason(reason, sizeof(reason));
        snprintf(err, errlen, "tls_cert: %s: not a usable PEM certificate (%s)", cert_file, reason);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
        openssl_reason(reason, sizeof(reason));
        snprintf(err, errlen, "tls_key: %s: not a usable PEM private key (%s)", key_file, reason);
        goto fail;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "tls_key: %s does not match the certificate in %s (key mismatch)",
                 key_file, cert_file);
        goto fail;
    }
    return ctx;

openssl_fail:
    openssl_reason(reason, sizeof(reason));
    snprintf(err, errlen, "TLS setup failed: %s", reason);
fail:
    SSL_CTX_free(ctx);
    return NULL;
}
