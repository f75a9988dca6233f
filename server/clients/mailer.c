/*
 * SMTP alerts on a libcurl easy handle of their own: mail is rare, so no
 * connection is kept. Header values are stripped of CR/LF so alert text can
 * never inject headers.
 */
#include "rosterd/mailer.h"
#include "rosterd/crypto.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/metrics.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void put_header_value(struct rd_buf *b, const char *v)
{
    for (const char *p = v ? v : ""; *p; p++)
        rd_buf_putc(b, (*p == '\r' || *p == '\n') ? ' ' : *p);
}

static bool is_ascii(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; s && *p; p++)
        if (*p >= 0x80 || *p == '\r' || *p == '\n')
            return false;
    return true;
}

char *rd_mailer_format(const char *from, const char *const *to, size_t nto, const char *subject,
                       const char *text)
{
    struct rd_buf b = {0};
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
    rd_buf_printf(&b, "Date: %s\r\nFrom: ", date);
    put_header_value(&b, from);
    rd_buf_puts(&b, "\r\nTo: ");
    for (size_t i = 0; i < nto; i++) {
        if (i)
            rd_buf_puts(&b, ", ");
        put_header_value(&b, to[i]);
    }
    rd_buf_puts(&b, "\r\nSubject: ");
    if (is_ascii(subject)) {
        put_header_value(&b, subject);
    } else {
        char *enc = rd_base64_encode((const uint8_t *)subject, strlen(subject));
        rd_buf_printf(&b, "=?UTF-8?B?%s?=", enc);
        free(enc);
    }
    uint8_t rnd[12];
    char hex[25];
    if (rd_random_bytes(rnd, sizeof(rnd)) != 0)
        memset(rnd, 0, sizeof(rnd));
    rd_hex_encode(rnd, sizeof(rnd), hex);
    const char *at = from ? strrchr(from, '@') : NULL;
    /* a From like "Name <a@b>" must not leave its '>' in the domain */
    int dl = at ? (int)strcspn(at + 1, "> \r\n") : 0;
    rd_buf_printf(&b, "\r\nMessage-ID: <%s@%.*s>\r\n", hex, dl ? dl : 15,
                  dl ? at + 1 : "rosterd.invalid");
    rd_buf_puts(&b, "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
                    "Content-Transfer-Encoding: 8bit\r\n\r\n");
    for (const char *p = text ? text : ""; *p; p++) {
        if (*p == '\n' && (p == text || p[-1] != '\r'))
            rd_buf_putc(&b, '\r');
        rd_buf_putc(&b, *p);
    }
    rd_buf_puts(&b, "\r\n");
    return rd_buf_steal(&b);
}

struct reader {
    const char *data;
    size_t len, off;
};

static size_t on_read(char *buf, size_t size, size_t n, void *user)
{
    struct reader *r = user;
    size_t want = size * n;
    size_t left = r->len - r->off;
    if (want > left)
        want = left;
    memcpy(buf, r->data + r->off, want);
    r->off += want;
    return want;
}

static void smtp_host(const char *url, char *out, size_t outlen)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t n = strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < p + n; q++)
        if (*q == '@')
            at = q;
    if (at) {
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    snprintf(out, outlen, "%.*s", (int)n, p);
}

static int send_once(const char *smtp_url, const char *from, const char *const *to, size_t nto,
                     const char *msg, const char *ca_file, long timeout_ms, long *smtp_code,
                     char *errbuf)
{
    CURL *e = curl_easy_init();
    if (!e)
        return CURLE_FAILED_INIT;
    struct curl_slist *rcpt = NULL;
    for (size_t i = 0; i < nto; i++)
        rcpt = curl_slist_append(rcpt, to[i]);
    struct reader r = {msg, strlen(msg), 0};
    curl_easy_setopt(e, CURLOPT_URL, smtp_url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
#endif
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USE_SSL, (long)CURLUSESSL_TRY);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
    curl_easy_setopt(e, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(e, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(e, CURLOPT_READDATA, &r);
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 5000 ? timeout_ms : 5000L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, smtp_code);
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(e);
    return (int)rc;
}

int rd_mailer_send(const char *smtp_url, const char *from, const char *const *to, size_t nto,
                   const char *subject, const char *text, const char *ca_file, double deadline,
                   struct rd_http_error *err)
{
    rd_http_global_init();
    char host[256];
    smtp_host(smtp_url, host, sizeof(host));
    if (nto == 0 || !from) {
        rd_http_error_set(err, true, 0, "smtp %s: no sender or no recipients", host);
        return -1;
    }
    char *msg = rd_mailer_format(from, to, nto, subject, text);
    int result = -1;
    for (int attempt = 1; attempt <= 5; attempt++) {
        double left = deadline - rd_http_now();
        if (left < 0.1) {
            if (attempt == 1)
                rd_http_error_set(err, false, 0, "smtp %s: no time left in the job's budget", host);
            break;
        }
        long smtp_code = 0;
        char errbuf[CURL_ERROR_SIZE] = "";
        int rc = send_once(smtp_url, from, to, nto, msg, ca_file,
                           left > 60.0 ? 60000L : (long)(left * 1000.0), &smtp_code, errbuf);
        rd_metrics_upstream("smtp", rc == CURLE_OK ? 250 : (int)smtp_code);
        if (rc == CURLE_OK) {
            result = 0;
            memset(err, 0, sizeof(*err));
            break;
        }
        bool retry = rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT ||
                     rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_GOT_NOTHING ||
                     (smtp_code >= 400 && smtp_code < 500);
        bool permanent = rc == CURLE_LOGIN_DENIED || rc == CURLE_URL_MALFORMAT ||
                         rc == CURLE_UNSUPPORTED_PROTOCOL || smtp_code >= 500;
        /* curl's text may quote the URL it was given: keep only the code and SMTP status */
        rd_http_error_set(err, permanent, 0, "smtp %s: %s (SMTP %ld)", host,
                          curl_easy_strerror((CURLcode)rc), smtp_code);
        if (!retry || permanent)
            break;
        double wait = 0.5 * pow(2.0, attempt - 1);
        if (rd_http_now() + wait >= deadline) {
            err->retry_after_s = (int)ceil(wait);
            break;
        }
        struct timespec ts = {.tv_sec = (time_t)wait,
                              .tv_nsec = (long)((wait - floor(wait)) * 1e9)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    if (result != 0)
        rd_log_warn("mail alert not sent: %s", err->msg);
    rd_memzero(msg, strlen(msg));
    free(msg);
    return result;
}
