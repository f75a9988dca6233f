/*
 * Upstream HTTP on blocking libcurl easy handles: timeouts, TLS verification,
 * retries inside the caller's deadline, error classification and metrics.
 * Credentials live only in request headers and never reach a log line.
 */
#include "rosterd/http.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/metrics.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define RD_HTTP_MAX_ATTEMPTS 8

struct rd_http_share {
    CURLSH *sh;
    pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
};

struct rd_http_client {
    CURL *easy;
    char *ca_file;
    long connect_timeout_ms;
    long timeout_ms;
    struct rd_http_share *share;
    const atomic_bool *cancel;
    uint64_t rng;
    char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void rd_http_global_init(void)
{
    pthread_once(&g_curl_once, curl_init_once);
}

double rd_http_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void rd_http_error_set(struct rd_http_error *e, bool permanent, int http_status, const char *fmt,
                       ...)
{
    if (!e)
        return;
    memset(e, 0, sizeof(*e));
    e->permanent = permanent;
    e->http_status = http_status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
}

bool rd_http_status_permanent(int status)
{
    if (status < 400 || status >= 500)
        return false;
    return status != 408 && status != 409 && status != 425 && status != 429;
}

int rd_http_parse_retry_after(const char *value)
{
    if (!value)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    if (isdigit((unsigned char)*value)) {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
            end++;
        if (errno || *end || v < 0)
            return -1;
        return v > 86400 * 7 ? 86400 * 7 : (int)v;
    }
    time_t when = curl_getdate(value, NULL); /* IMF-fixdate and the obsolete forms */
    if (when == (time_t)-1)
        return -1;
    time_t now = time(NULL);
    if (when <= now)
        return 0;
    double d = difftime(when, now);
    return d > 86400.0 * 7 ? 86400 * 7 : (int)d;
}

/* Link: <url>; rel="next", <url2>; rel="prev" — rel may list several tokens. */
char *rd_http_link_next(const char *link)
{
    const char *p = link;
    while (p && *p) {
        const char *lt = strchr(p, '<');
        if (!lt)
            return NULL;
        const char *gt = strchr(lt + 1, '>');
        if (!gt)
            return NULL;
        const char *end = gt + 1;
        /* parameters run to the next comma that starts a new link value */
        const char *next = strchr(end, '<');
        const char *params_end = next ? next : end + strlen(end);
        size_t plen = (size_t)(params_end - end);
        char *params = rd_strndup(end, plen);
        bool is_next = false;
        for (char *q = params; (q = strcasestr(q, "rel")) != NULL; q += 3) {
            char *v = q + 3;
            while (*v == ' ')
                v++;
            if (*v != '=')
                continue;
            v++;
            while (*v == ' ' || *v == '"')
                v++;
            /* space-separated relation types inside the quotes */
            while (*v && *v != '"' && *v != ';' && *v != ',') {
                size_t n = strcspn(v, " \";,");
                if (n == 4 && strncasecmp(v, "next", 4) == 0)
                    is_next = true;
                v += n;
                while (*v == ' ')
                    v++;
            }
        }
        free(params);
        if (is_next)
            return rd_strndup(lt + 1, (size_t)(gt - lt - 1));
        p = next;
    }
    return NULL;
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access acc, void *user)
{
    struct rd_http_share *s = user;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
        pthread_mutex_lock(&s->locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *user)
{
    struct rd_http_share *s = user;
    if ((int)data >= 0 && data < CURL_LOCK_DATA_LAST)
        pthread_mutex_unlock(&s->locks[data]);
}

struct rd_http_share *rd_http_share_new(void)
{
    rd_http_global_init();
    struct rd_http_share *s = rd_calloc(1, sizeof(*s));
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&s->locks[i], NULL);
    s->sh = curl_share_init();
    if (!s->sh) {
        free(s);
        return NULL;
    }
    curl_share_setopt(s->sh, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(s->sh, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(s->sh, CURLSHOPT_USERDATA, s);
    curl_share_setopt(s->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(s->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    curl_share_setopt(s->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    return s;
}

void rd_http_share_free(struct rd_http_share *s)
{
    if (!s)
        return;
    curl_share_cleanup(s->sh);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&s->locks[i]);
    free(s);
}

struct rd_http_client *rd_http_client_new(const struct rd_http_opts *opts)
{
    rd_http_global_init();
    CURL *easy = curl_easy_init();
    if (!easy)
        return NULL;
    struct rd_http_client *c = rd_calloc(1, sizeof(*c));
    c->easy = easy;
    c->ca_file = opts && opts->ca_file && *opts->ca_file ? rd_strdup(opts->ca_file) : NULL;
    c->connect_timeout_ms = opts && opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 5000;
    c->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 30000;
    c->share = opts ? opts->share : NULL;
    c->cancel = opts ? opts->cancel : NULL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    c->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)c;
    if (!c->rng)
        c->rng = 0x9e3779b97f4a7c15ull;
    return c;
}

void rd_http_client_free(struct rd_http_client *c)
{
    if (!c)
        return;
    curl_easy_cleanup(c->easy);
    free(c->ca_file);
    free(c);
}

void rd_http_response_free(struct rd_http_response *r)
{
    if (!r)
        return;
    rd_buf_free(&r->body);
    if (r->authorization) {
        rd_memzero(r->authorization, strlen(r->authorization));
        free(r->authorization);
    }
    free(r->link);
    free(r->location);
    free(r->retry_after);
    memset(r, 0, sizeof(*r));
}

static void clear_headers(struct rd_http_response *r)
{
    if (r->authorization) {
        rd_memzero(r->authorization, strlen(r->authorization));
        free(r->authorization);
    }
    free(r->link);
    free(r->location);
    free(r->retry_after);
    r->authorization = r->link = r->location = r->retry_after = NULL;
}

static size_t on_header(char *buf, size_t size, size_t n, void *user)
{
    struct rd_http_response *r = user;
    size_t len = size * n;
    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        clear_headers(r); /* a new response (after 1xx) starts */
        return len;
    }
    const char *colon = memchr(buf, ':', len);
    if (!colon)
        return len;
    size_t nlen = (size_t)(colon - buf);
    const char *v = colon + 1;
    const char *end = buf + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    char **slot = NULL;
    if (nlen == 13 && strncasecmp(buf, "authorization", 13) == 0)
        slot = &r->authorization;
    else if (nlen == 4 && strncasecmp(buf, "link", 4) == 0)
        slot = &r->link;
    else if (nlen == 8 && strncasecmp(buf, "location", 8) == 0)
        slot = &r->location;
    else if (nlen == 11 && strncasecmp(buf, "retry-after", 11) == 0)
        slot = &r->retry_after;
    if (slot) {
        free(*slot);
        *slot = rd_strndup(v, (size_t)(end - v));
    }
    return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *user)
{
    struct rd_http_response *r = user;
    size_t len = size * n;
    if (r->body.len + len > RD_HTTP_MAX_BODY) {
        r->too_large = true;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    rd_buf_append(&r->body, buf, len);
    return len;
}

void rd_http_urlencode(struct rd_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; p && *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            rd_buf_putc(b, (char)*p);
        } else {
            rd_buf_putc(b, '%');
            rd_buf_putc(b, hex[*p >> 4]);
            rd_buf_putc(b, hex[*p & 15]);
        }
    }
}

void rd_http_scrub(char *s, size_t cap, const char *secret)
{
    static const char mark[] = "[redacted]";
    if (!s || !secret || strlen(secret) < 4)
        return;
    size_t sl = strlen(secret);
    char *hit;
    while ((hit = strstr(s, secret)) != NULL) {
        size_t off = (size_t)(hit - s);
        size_t tail = strlen(hit + sl);
        size_t ml = sizeof(mark) - 1;
        if (off + ml + tail + 1 > cap)
            tail = cap > off + ml + 1 ? cap - off - ml - 1 : 0;
        if (off + ml + 1 > cap) {
            s[off] = '\0';
            return;
        }
        memmove(s + off + ml, hit + sl, tail);
        memcpy(s + off, mark, ml);
        s[off + ml + tail] = '\0';
    }
}

bool rd_http_origin(const char *url, char *out, size_t outlen)
{
    size_t skip;
    if (!url)
        return false;
    if (strncasecmp(url, "https://", 8) == 0)
        skip = 8;
    else if (strncasecmp(url, "http://", 7) == 0)
        skip = 7;
    else
        return false;
    size_t n = skip + strcspn(url + skip, "/?#");
    if (n == skip || n + 1 > outlen)
        return false;
    memcpy(out, url, n);
    out[n] = '\0';
    /* userinfo in the authority would be a credential: never treat it as an origin */
    return memchr(out + skip, '@', n - skip) == NULL;
}

/* Path of url without query or fragment, for logs when the caller gave none. */
static void url_log_path(const char *url, char *out, size_t outlen)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    p += strcspn(p, "/?#");
    size_t n = strcspn(p, "?#");
    if (n == 0)
        snprintf(out, outlen, "/");
    else
        snprintf(out, outlen, "%.*s", (int)n, p);
}

static void default_errmsg(const char *body, size_t len, char *out, size_t outlen)
{
    size_t j = 0;
    for (size_t i = 0; i < len && j + 1 < outlen && j < 200; i++) {
        unsigned char ch = (unsigned char)body[i];
        out[j++] = (ch >= 0x20 && ch < 0x7f) ? (char)ch : ' ';
    }
    out[j] = '\0';
}

static double jitter(struct rd_http_client *c)
{
    /* xorshift64*: enough to spread retries of many workers */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return (double)((c->rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

/* Exponential backoff: 0.5 s, 1 s, 2 s … capped at 10 s, with jitter in [50%, 100%]. */
static double backoff(struct rd_http_client *c, int attempt, double floor_s)
{
    double b = 0.5 * pow(2.0, attempt - 1);
    if (b > 10.0)
        b = 10.0;
    b = b * (0.5 + 0.5 * jitter(c));
    return b < floor_s ? floor_s : b;
}

static bool cancelled(const struct rd_http_client *c)
{
    return c->cancel && atomic_load(c->cancel);
}

/* Sleeps s seconds in slices, returning early once the client is cancelled. */
static void sleep_s(const struct rd_http_client *c, double s)
{
    double end = rd_http_now() + s;
    for (double left = s; left > 0 && !cancelled(c); left = end - rd_http_now()) {
        double slice = left < 0.1 ? left : 0.1;
        struct timespec ts = {.tv_sec = (time_t)slice,
                              .tv_nsec = (long)((slice - floor(slice)) * 1e9)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
}

/* libcurl's progress callback: a non-zero return aborts the transfer (shutdown). */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return cancelled(arg) ? 1 : 0;
}

static struct curl_slist *build_headers(const struct rd_http_request *req)
{
    struct curl_slist *h = NULL;
    for (size_t i = 0; i < req->nheaders; i++)
        h = curl_slist_append(h, req->headers[i]);
    h = curl_slist_append(h, "Expect:");
    h = curl_slist_append(h, "User-Agent: rosterd/" ROSTERD_VERSION);
    return h;
}

static void setup_easy(struct rd_http_client *c, const struct rd_http_request *req,
                       struct curl_slist *hdrs, struct rd_http_response *resp, long timeout_ms)
{
    CURL *e = c->easy;
    curl_easy_reset(e); /* keeps the connection and session caches */
    curl_easy_setopt(e, CURLOPT_URL, req->url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L); /* a redirect must not carry our credentials */
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
    if (c->share)
        curl_easy_setopt(e, CURLOPT_SHARE, c->share->sh);
    long ct = c->connect_timeout_ms < timeout_ms ? c->connect_timeout_ms : timeout_ms;
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ct);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
    if (c->cancel) {
        curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(e, CURLOPT_XFERINFODATA, c);
    }
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, resp);
    if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        if (strcmp(req->method, "POST") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
        if (req->body || strcmp(req->method, "DELETE") != 0) {
            curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
            curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        }
    }
}

/*
 * How one attempt ended, before the deadline is consulted. V_UNSURE: a write
 * that is not idempotent may or may not have been applied (see probe).
 */
enum attempt_verdict { V_DONE, V_RETRY, V_FAIL, V_UNSURE };

static enum attempt_verdict classify_curl(CURLcode rc, bool idempotent, bool *permanent)
{
    *permanent = false;
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
        return V_RETRY; /* nothing was sent */
    case CURLE_SSL_CONNECT_ERROR:
        /* the handshake failed: no request went out */
        return V_RETRY;
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return idempotent ? V_RETRY : V_UNSURE;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_WRITE_ERROR:
        *permanent = true;
        return V_FAIL;
    default:
        return V_FAIL;
    }
}

static void finish_msg(const struct rd_http_request *req, struct rd_http_error *err)
{
    for (const char *const *s = req->secrets; s && *s; s++)
        rd_http_scrub(err->msg, sizeof(err->msg), *s);
}

/* Fills err for an HTTP answer >= 300. */
static void http_fail(const struct rd_http_request *req, const char *path,
                      const struct rd_http_response *resp, struct rd_http_error *err)
{
    char up[300] = "";
    rd_http_errmsg_fn fn = req->errmsg ? req->errmsg : default_errmsg;
    if (resp->body.len)
        fn(resp->body.data, resp->body.len, up, sizeof(up));
    int st = (int)resp->status;
    bool perm = rd_http_status_permanent(st) || (st >= 300 && st < 400);
    rd_http_error_set(err, perm, st, "%s %s %s: HTTP %d%s%s", req->system, req->method, path, st,
                      up[0] ? ": " : "", up);
    int ra = rd_http_parse_retry_after(resp->retry_after);
    if (!perm && ra > 0)
        err->retry_after_s = ra;
    finish_msg(req, err);
}

/* Decides whether an HTTP answer is retried and how long to wait first. */
static enum attempt_verdict classify_status(struct rd_http_client *c,
                                            const struct rd_http_request *req,
                                            const struct rd_http_response *resp, int attempt,
                                            double *wait)
{
    long st = resp->status;
    if (st < 300)
        return V_DONE;
    int ra = rd_http_parse_retry_after(resp->retry_after);
    if (st == 429) {
        *wait = ra >= 0 ? (double)ra : backoff(c, attempt, 1.0);
        return V_RETRY;
    }
    if (st >= 500 || st == 408) {
        *wait = ra >= 0 ? (double)ra : backoff(c, attempt, 0.0);
        /* Even a 503 does not promise that nothing was applied. */
        return req->idempotent ? V_RETRY : V_UNSURE;
    }
    return V_FAIL;
}

/*
 * A write that may have landed: ask the probe before sending it again. Returns
 * the verdict to act on; V_DONE means the write was found (resp->landed).
 */
static enum attempt_verdict resolve_unsure(const struct rd_http_request *req, double deadline,
                                           struct rd_http_response *resp, struct rd_http_error *err)
{
    if (!req->probe) {
        size_t n = strlen(err->msg);
        snprintf(err->msg + n, sizeof(err->msg) - n,
                 " (not repeated: it may have been applied upstream)");
        err->outcome_unknown = true;
        err->permanent = false;
        return V_FAIL;
    }
    struct rd_http_error perr;
    memset(&perr, 0, sizeof(perr));
    int landed = req->probe(req->probe_arg, deadline, &perr);
    if (landed == 1) {
        resp->landed = true;
        rd_log_info("upstream %s %s: no clear answer, but the write is there (read back)",
                    req->system, req->method);
        return V_DONE;
    }
    if (landed == 0)
        return V_RETRY;
    size_t n = strlen(err->msg);
    snprintf(err->msg + n, sizeof(err->msg) - n, "; reading back whether it was applied failed: %s",
             perr.msg);
    finish_msg(req, err);
    err->outcome_unknown = true;
    err->permanent = false;
    return V_FAIL;
}

int rd_http_do(struct rd_http_client *c, const struct rd_http_request *req,
               struct rd_http_response *resp, struct rd_http_error *err)
{
    char path[256];
    if (req->log_path)
        snprintf(path, sizeof(path), "%s", req->log_path);
    else
        url_log_path(req->url, path, sizeof(path));
    double deadline = req->deadline > 0 ? req->deadline : rd_http_now() + 60.0;
    struct curl_slist *hdrs = build_headers(req);
    int rc = -1;
    memset(resp, 0, sizeof(*resp));
    for (int attempt = 1;; attempt++) {
        double start = rd_http_now();
        double left = deadline - start;
        if (left < 0.05) {
            if (attempt == 1)
                rd_http_error_set(err, false, 0, "%s %s %s: no time left in the job's budget",
                                  req->system, req->method, path);
            err->permanent = false; /* otherwise err still holds the last attempt's failure */
            break;
        }
        long tmo = (long)(left * 1000.0);
        if (tmo > c->timeout_ms)
            tmo = c->timeout_ms;
        rd_buf_reset(&resp->body);
        clear_headers(resp);
        resp->status = 0;
        resp->too_large = false;
        resp->attempts = attempt;
        c->errbuf[0] = '\0';
        setup_easy(c, req, hdrs, resp, tmo);
        CURLcode cc = curl_easy_perform(c->easy);
        if (cc == CURLE_OK)
            curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &resp->status);
        rd_metrics_upstream(req->system, cc == CURLE_OK ? (int)resp->status : 0);
        rd_log_debug("upstream %s %s %s: attempt %d, status %ld, %.0f ms", req->system, req->method,
                     path, attempt, resp->status, (rd_http_now() - start) * 1000.0);
        double wait = 0;
        enum attempt_verdict v;
        if (cc == CURLE_WRITE_ERROR && resp->too_large) {
            /* Not the answer of a healthy upstream: fail now, the queue retries later. */
            rd_http_error_set(err, false, 0, "%s %s %s: answer larger than %u MiB, cut off",
                              req->system, req->method, path, RD_HTTP_MAX_BODY >> 20);
            v = V_FAIL;
        } else if (cc == CURLE_ABORTED_BY_CALLBACK && cancelled(c)) {
            /* shutting down: what was waiting is handed back and tried again later */
            rd_http_error_set(err, false, 0, "%s %s %s: aborted, rosterd is stopping", req->system,
                              req->method, path);
            v = V_FAIL;
        } else if (cc != CURLE_OK) {
            bool perm;
            v = classify_curl(cc, req->idempotent, &perm);
            rd_http_error_set(err, perm, 0, "%s %s %s: %s", req->system, req->method, path,
                              c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
            finish_msg(req, err);
            if (v == V_RETRY || v == V_UNSURE)
                wait = backoff(c, attempt, 0.0);
        } else {
            v = classify_status(c, req, resp, attempt, &wait);
            if (v != V_DONE)
                http_fail(req, path, resp, err);
        }
        if (v == V_UNSURE)
            v = resolve_unsure(req, deadline, resp, err);
        if (v == V_DONE) {
            rc = 0;
            memset(err, 0, sizeof(*err));
            break;
        }
        if (v == V_FAIL || attempt >= RD_HTTP_MAX_ATTEMPTS)
            break;
        if (cancelled(c)) {
            /* shutting down: the queue hands the job back and another run retries it */
            rd_http_error_set(err, false, 0, "%s %s %s: not retried, rosterd is stopping",
                              req->system, req->method, path);
            break;
        }
        if (rd_http_now() + wait >= deadline) {
            /* the queue reschedules the job; tell it how long the upstream asked for */
            err->permanent = false;
            err->retry_after_s = (int)ceil(wait);
            break;
        }
        rd_log_info("upstream %s %s %s: %s; retry %d in %.1f s", req->system, req->method, path,
                    resp->status ? "HTTP error" : "no answer", attempt, wait);
        sleep_s(c, wait);
    }
    curl_slist_free_all(hdrs);
    if (rc != 0)
        rd_log_info("upstream %s %s: %s", req->system, req->method, err->msg);
    return rc;
}
