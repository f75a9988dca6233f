/*
 * E-mail alerts over SMTP with libcurl (config smtp_url, smtp_from). The URL
 * may carry credentials (smtp://user:pass@host:587): only its host is logged.
 */
#ifndef ROSTERD_MAILER_H
#define ROSTERD_MAILER_H

#include <stddef.h>

#include "rosterd/http.h"

/*
 * Sends one plain-text UTF-8 message to every address in to. smtp:// upgrades
 * with STARTTLS when the server offers it, smtps:// is TLS from the start;
 * certificates are verified (ca_file may be NULL for the system bundle).
 * Connection failures and timeouts are retried inside the deadline; SMTP 5xx
 * answers and refused logins are permanent. Borrows everything.
 */
int rd_mailer_send(const char *smtp_url, const char *from, const char *const *to, size_t nto,
                   const char *subject, const char *text, const char *ca_file, double deadline,
                   struct rd_http_error *err) __attribute__((warn_unused_result));

/*
 * Builds the RFC 5322 message (headers, CRLF line ends, RFC 2047 subject when
 * not ASCII). Returns a new string, free with free(). Exposed for tests.
 */
char *rd_mailer_format(const char *from, const char *const *to, size_t nto, const char *subject,
                       const char *text);

#endif
