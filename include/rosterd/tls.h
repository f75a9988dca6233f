/*
 * Server-side TLS context: TLS 1.2+, no compression or renegotiation, key
 * checked against the certificate. Reloaded on SIGHUP by building a new one.
 */
#ifndef ROSTERD_TLS_H
#define ROSTERD_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

/*
 * Builds a new SSL_CTX from PEM files (cert may hold a chain). Returns NULL
 * with a message naming the file and the cause (missing, unreadable, not PEM,
 * key does not match). Free with SSL_CTX_free.
 */
SSL_CTX *rd_tls_server_ctx(const char *cert_file, const char *key_file, char *err, size_t errlen);

#endif
