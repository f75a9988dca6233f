/*
 * Shared HTTP client layer for the upstream clients (Personio, MOCO, SCIM,
 * platform API, Slack), on blocking libcurl easy handles. One client per
 * worker thread or job; retries for 429/5xx/timeouts stay inside a deadline.
 */
#ifndef ROSTERD_HTTP_H
#define ROSTERD_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "rosterd/mem.h"

/*
 * An upstream failure. permanent: 4xx other than 408/409/425/429 (DESIGN §7),
 * or a failure that repeating cannot fix (bad URL, TLS verification). Transient
 * errors with retry_after_s > 0 ask the queue to wait at least that long.
 * msg carries the upstream's own message but never credentials or URLs with
 * secrets in them.
 */
struct rd_http_error {
    bool permanent;
    int http_status; /* 0: no HTTP answer (timeout, refused, TLS) */
    int retry_after_s;
    char msg[512];
    /*
     * A write that is not idempotent ended without a clear answer (5xx, 408, a
     * timeout or a dropped connection after it went out) and was not repeated:
     * it may or may not have been applied upstream. Always transient.
     */
    bool outcome_unknown;
};

/* Clears e and formats msg; sets permanent/http_status as given. */
void rd_http_error_set(struct rd_http_error *e, bool permanent, int http_status, const char *fmt,
                       ...) __attribute__((format(printf, 4, 5)));

/* Permanent per DESIGN §7: 4xx except 408, 409, 425 and 429. */
bool rd_http_status_permanent(int status);

/* Seconds on the monotonic clock; deadlines are expressed on it. */
double rd_http_now(void);

/*
 * Parses a Retry-After value: delta seconds or an HTTP-date (relative to the
 * wall clock). Returns seconds >= 0, or -1 when value is NULL or unparsable.
 */
int rd_http_parse_retry_after(const char *value);

/*
 * Finds the rel="next" target in a Link header value. Returns a new string
 * (free with free()) or NULL when there is no next link.
 */
char *rd_http_link_next(const char *link);

/* Calls curl_global_init once per process (thread-safe); call before starting threads. */
void rd_http_global_init(void);

/*
 * A connection/DNS/TLS-session cache shared by several clients (a CURLSH
 * with its own locks). Optional; free after every client using it.
 */
struct rd_http_share;
struct rd_http_share *rd_http_share_new(void);
void rd_http_share_free(struct rd_http_share *s);

struct rd_http_opts {
    const char *ca_file;         /* NULL: system bundle (config ca_file) */
    long connect_timeout_ms;     /* 0: 5000 */
    long timeout_ms;             /* per attempt; 0: 30000 */
    struct rd_http_share *share; /* borrowed, may be NULL */
    /*
     * Borrowed, may be NULL: once it is set (shutdown), a transfer in progress is
     * aborted and no retry is started; the call fails with a transient error.
     */
    const atomic_bool *cancel;
};

/*
 * One client: one curl easy handle (its connection cache is reused across
 * requests). Not thread-safe: use one per thread. Strings in opts are copied.
 * Free with rd_http_client_free.
 */
struct rd_http_client;
struct rd_http_client *rd_http_client_new(const struct rd_http_opts *opts);
void rd_http_client_free(struct rd_http_client *c);

/* Extracts the upstream's message from an error body into out (system-specific). */
typedef void (*rd_http_errmsg_fn)(const char *body, size_t len, char *out, size_t outlen);

/*
 * Read-before-retry for a write that is not idempotent (see rd_http_request.probe):
 * asks the upstream whether the write landed. Returns 1 when it did (arg then holds
 * what the caller needs, e.g. the id of what was created), 0 when it did not, -1
 * with err filled when that cannot be told. Runs on the calling thread and may use
 * the same rd_http_client; deadline is the request's.
 */
typedef int (*rd_http_probe_fn)(void *arg, double deadline, struct rd_http_error *err);

struct rd_http_request {
    const char *system;   /* metrics label and log field: personio, moco, scim, platform, slack */
    const char *method;   /* GET, POST, PUT, PATCH, DELETE */
    const char *url;      /* absolute http(s) URL */
    const char *log_path; /* what logs and errors may show; NULL: the URL's path without query */
    const char *const *headers; /* "Name: value" lines, borrowed */
    size_t nheaders;
    const char *body; /* NULL: no body */
    size_t body_len;
    double deadline; /* rd_http_now() based; 0: now + 60 s */
    bool idempotent; /* may 5xx/timeouts be retried? (429 and connect failures always are) */
    rd_http_errmsg_fn errmsg; /* NULL: first printable bytes of the body */
    const char *const
        *secrets; /* scrubbed from msg if they ever appear; NULL-terminated, may be NULL */
    /*
     * For a request that is not idempotent: when an attempt ends without a clear
     * answer (5xx, 408, or a timeout or dropped connection after the request may
     * have gone out), probe(probe_arg) is asked before anything is sent again:
     * landed -> rd_http_do returns 0 with resp->landed set; not landed -> sent
     * again (within the deadline); cannot tell -> the call fails, transient.
     * Without a probe such an attempt is never repeated (err->outcome_unknown).
     * A 429 or a connection that was never made is retried either way.
     */
    rd_http_probe_fn probe;
    void *probe_arg;
};

struct rd_http_response {
    long status;
    struct rd_buf body;
    char *authorization; /* value of an `authorization` response header, or NULL */
    char *link;          /* Link header */
    char *location;      /* Location header */
    char *retry_after;   /* Retry-After header */
    int attempts;
    bool landed;    /* the probe found the write applied; status and body are the last answer */
    bool too_large; /* the answer exceeded RD_HTTP_MAX_BODY and was cut off */
};

/* Longest answer body a client accepts; a longer one fails the call (transient). */
#define RD_HTTP_MAX_BODY (32u * 1024u * 1024u)

/* Frees the response's members (not the struct); accepts a zeroed struct. */
void rd_http_response_free(struct rd_http_response *r);

/*
 * Performs req, retrying while the deadline allows: 429 (Retry-After or
 * backoff from 1 s), connection failures, and 5xx, 408 and timeouts for
 * idempotent requests (others: see probe). An answer over RD_HTTP_MAX_BODY or
 * one that stalls past the timeout fails the call as transient. Every attempt is counted in
 * rosterd_upstream_requests_total{system,code}.
 * Returns 0 when an HTTP answer below 400 arrived (resp filled). Returns -1
 * otherwise with err filled (msg "<system> <METHOD> <path>: HTTP n: <message>");
 * resp then holds the last answer, if any, so callers can parse error bodies.
 * The caller frees resp with rd_http_response_free in both cases.
 */
int rd_http_do(struct rd_http_client *c, const struct rd_http_request *req,
               struct rd_http_response *resp, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/* Appends s percent-encoded (RFC 3986 unreserved kept) to b. */
void rd_http_urlencode(struct rd_buf *b, const char *s);

/* Replaces every occurrence of secret (len >= 4) in s with "[redacted]", in place. */
void rd_http_scrub(char *s, size_t cap, const char *secret);

/* "scheme://host[:port]" of url into out; false when url is not absolute http(s). */
bool rd_http_origin(const char *url, char *out, size_t outlen);

#endif
