/*
 * The HTTPS webhook listener (DESIGN.md §5). Each request is routed by path,
 * authenticated (token, MOCO HMAC or Standard Webhooks), checked to be JSON,
 * reduced to a dedup key and handed to the batch writer; the answer goes out
 * only when the batch's commit returns. Connection secrets come from the
 * connections table, re-read every few seconds so no instance holds state
 * another would need.
 */
#include "rosterd/intake.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>

#include "intake_internal.h"
#include "jscan.h"
#include "rosterd/connection.h"
#include "rosterd/jsonx.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/metrics.h"
#include "rosterd/tls.h"
#include "rosterd/verify.h"

#define DB_POOL_SIZE 2
#define CONNECTIONS_REFRESH_S 2
#define SW_TOLERANCE_S 300
#define MAX_NAME_LEN 200
#define MAX_HEADERS_BYTES (32 * 1024)

struct cache_entry {
    int64_t id;
    char *updated_at;
    struct rd_connection *conn;
};

struct rd_intake {
    struct event_base *base;
    const struct rd_config *cfg;
    const uint8_t *key;
    struct evhttp *http;
    struct evhttp_bound_socket *bound;
    SSL_CTX *ssl_ctx;
    struct rd_idb *db;
    struct cache_entry *cache;
    size_t ncache;
    bool cache_loaded;
    atomic_bool ready; /* read by the admin thread */
    struct event *refresh;
    rd_intake_commit_cb on_commit;
    void *on_commit_arg;
    bool draining;
    struct event *drain_check;
    double drain_deadline;
    void (*drain_done)(void *);
    void *drain_arg;
};

/*
 * Per-TLS-connection deadline: a request must arrive whole within
 * header_timeout_seconds of the connection opening or of the previous answer.
 * Tied to the SSL object through ex_data so it dies with the connection.
 */
struct client {
    struct event *deadline;
    struct bufferevent *bev;
    struct rd_intake *in;
    bool nodelay; /* TCP_NODELAY set on the socket */
};

static int g_client_idx = -1;

static void client_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                           void *argp)
{
    struct client *cl = ptr;
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    if (!cl)
        return;
    event_free(cl->deadline);
    free(cl);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct client *cl = arg;
    (void)fd, (void)what;
    /* Let evhttp see EOF and clean up through its own path. */
    evutil_socket_t s = bufferevent_getfd(cl->bev);
    if (s >= 0)
        shutdown(s, SHUT_RDWR);
}

static void client_arm(struct client *cl, bool on)
{
    if (!on) {
        event_del(cl->deadline);
        return;
    }
    struct timeval tv = {cl->in->cfg->header_timeout_seconds, 0};
    event_add(cl->deadline, &tv);
}

static struct client *client_of(struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    if (!evcon)
        return NULL;
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    return ssl ? SSL_get_ex_data(ssl, g_client_idx) : NULL;
}

/* Never returns NULL: a NULL would make evhttp fall back to plain TCP. */
static struct bufferevent *on_new_bev(struct event_base *base, void *arg)
{
    struct rd_intake *in = arg;
    SSL *ssl = SSL_new(in->ssl_ctx);
    if (!ssl)
        abort();
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!bev)
        abort();
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    struct client *cl = rd_calloc(1, sizeof(*cl));
    cl->bev = bev;
    cl->in = in;
    cl->deadline = evtimer_new(base, on_deadline, cl);
    SSL_set_ex_data(ssl, g_client_idx, cl);
    client_arm(cl, true);
    return bev;
}

/* ---- answers -------------------------------------------------------------- */

static void reply(struct evhttp_request *req, int code, const char *reason, const char *json,
                  int retry_after, bool draining)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json");
    if (retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%d", retry_after);
        evhttp_add_header(h, "Retry-After", ra);
    }
    if (code == 405)
        evhttp_add_header(h, "Allow", "POST");
    if (draining)
        evhttp_add_header(h, "Connection", "close");
    struct evbuffer *ob = evhttp_request_get_output_buffer(req);
    evbuffer_add(ob, json, strlen(json));
    evbuffer_add(ob, "\n", 1);
    struct client *cl = client_of(req);
    struct evbuffer *out = cl ? bufferevent_get_output(cl->bev) : NULL;
    bool fresh = out && evbuffer_get_length(out) == 0;
    evhttp_send_reply(req, code, reason, NULL);
    /*
     * evhttp leaves the head in one chain and moves the body in as a second;
     * bufferevent_openssl calls SSL_write per chain, so the answer would go
     * out as two TLS records and two send()s. Joined, it is one of each. The
     * bytes only reach SSL_write on a later loop turn (and libevent sets
     * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER), so moving them here is safe.
     */
    if (fresh)
        evbuffer_pullup(out, -1);
    if (cl)
        client_arm(cl, true);
}

static void reply_error(struct rd_intake *in, struct evhttp_request *req, int code,
                        const char *reason, const char *msg, const char *conn, const char *source,
                        const char *outcome, double t0)
{
    struct rd_buf b = {0};
    rd_buf_puts(&b, "{\"error\":");
    rd_buf_json_str(&b, msg, strlen(msg));
    rd_buf_putc(&b, '}');
    int retry = code == 503 ? (rd_idb_ready(in->db) ? 1 : 5) : 0;
    reply(req, code, reason, b.data, retry, in->draining);
    rd_buf_free(&b);
    rd_metrics_webhook_answered(conn ? conn : "unknown", source ? source : "unknown", outcome,
                                rd_intake_now() - t0);
}

/* ---- connection cache ------------------------------------------------------ */

static struct rd_connection *cache_find(struct rd_intake *in, const char *name)
{
    for (size_t i = 0; i < in->ncache; i++)
        if (strcmp(in->cache[i].conn->name, name) == 0)
            return in->cache[i].conn;
    return NULL;
}

static void register_secrets(const struct rd_connection *c)
{
    const struct rd_source_auth *srcs[2] = {&c->personio, &c->moco};
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; i < srcs[s]->ntokens; i++)
            rd_log_redact_add(srcs[s]->tokens[i]);
        for (size_t i = 0; i < srcs[s]->nsw; i++)
            rd_log_redact_add(srcs[s]->sw_secrets[i]);
    }
}

/* Rebuilds the cache from the rows, re-opening only rows that changed. */
static void on_connections(PGresult *res, void *arg)
{
    struct rd_intake *in = arg;
    if (!res)
        return;
    int rows = PQntuples(res);
    struct cache_entry *next = rd_calloc((size_t)rows + 1, sizeof(*next));
    size_t n = 0;
    for (int r = 0; r < rows; r++) {
        int64_t id = atoll(PQgetvalue(res, r, 0));
        const char *name = PQgetvalue(res, r, 1);
        const char *updated = PQgetvalue(res, r, 3);
        struct cache_entry *old = NULL;
        for (size_t i = 0; i < in->ncache; i++)
            if (in->cache[i].id == id && strcmp(in->cache[i].updated_at, updated) == 0)
                old = &in->cache[i];
        if (old) {
            next[n++] = *old;
            old->conn = NULL;
            old->updated_at = NULL;
            continue;
        }
        char err[256];
        struct rd_connection *c = NULL;
        if (rd_connection_open(in->key, id, name, (const uint8_t *)PQgetvalue(res, r, 2),
                               (size_t)PQgetlength(res, r, 2), &c, err, sizeof(err)) != 0) {
            struct rd_log_ctx ctx = {.connection = name};
            rd_log_ctx_error(&ctx, "cannot open connection secrets: %s", err);
            continue;
        }
        register_secrets(c);
        next[n].id = id;
        next[n].updated_at = rd_strdup(updated);
        next[n].conn = c;
        n++;
    }
    for (size_t i = 0; i < in->ncache; i++) {
        rd_connection_free(in->cache[i].conn);
        free(in->cache[i].updated_at);
    }
    free(in->cache);
    in->cache = next;
    in->ncache = n;
    if (!in->cache_loaded)
        rd_log_info("intake knows %zu connection(s)", n);
    in->cache_loaded = true;
    atomic_store(&in->ready, rd_idb_ready(in->db));
}

static void on_refresh(evutil_socket_t fd, short what, void *arg)
{
    struct rd_intake *in = arg;
    (void)fd, (void)what;
    atomic_store(&in->ready, in->cache_loaded && rd_idb_ready(in->db));
    rd_idb_request_connections(in->db);
}

bool rd_intake_ready(const struct rd_intake *in)
{
    return in && atomic_load(&((struct rd_intake *)in)->ready);
}

/* ---- request parsing -------------------------------------------------------- */

/* The intake's nesting limit: deeper bodies are refused as not JSON. */
#define MAX_DEPTH RD_JSON_MAX_DEPTH

/* A subject from a scalar: an integer's decimal text, or a string of 1..MAX_NAME_LEN bytes. */
static char *scalar_text(const struct rd_jspan *v)
{
    long long x;
    if (rd_jspan_int64(v, &x)) {
        char num[24];
        snprintf(num, sizeof(num), "%lld", x);
        return rd_strdup(num);
    }
    return rd_jspan_text(v, MAX_NAME_LEN);
}

static bool header_is_secret(const char *k)
{
    static const struct {
        const char *name;
        size_t len;
    } secret[] = {{"authorization", 13},    {"proxy-authorization", 19}, {"cookie", 6},
                  {"x-moco-signature", 16}, {"webhook-signature", 17},   {"svix-signature", 14},
                  {"x-api-key", 9}};
    /* Lengths first: most headers then need no case-folding compare at all. */
    size_t n = strlen(k);
    for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++)
        if (n == secret[i].len && strcasecmp(k, secret[i].name) == 0)
            return true;
    return false;
}

/*
 * Appends s as a JSON string with every byte outside printable ASCII replaced
 * by '?' (names also lower-cased). What is left needs escaping only for '"'
 * and '\\', so this writes straight into the buffer in one pass.
 */
static void put_header_text(struct rd_buf *b, const char *s, bool lower)
{
    size_t n = strlen(s);
    rd_buf_reserve(b, 2 * n + 2);
    char *o = b->data + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (lower && c >= 'A' && c <= 'Z')
            c = (unsigned char)(c + 32);
        else if (c < 0x20 || c > 0x7e)
            c = '?';
        if (c == '"' || c == '\\')
            *o++ = '\\';
        *o++ = (char)c;
    }
    *o++ = '"';
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
}

/* Stored headers: lower-cased names, printable ASCII only, secrets masked. */
static char *headers_json(struct evkeyvalq *hs)
{
    struct rd_buf b = {0};
    rd_buf_reserve(&b, 1023);
    rd_buf_putc(&b, '{');
    for (struct evkeyval *kv = hs->tqh_first; kv; kv = kv->next.tqe_next) {
        if (kv != hs->tqh_first)
            rd_buf_putc(&b, ',');
        put_header_text(&b, kv->key, true);
        rd_buf_putc(&b, ':');
        if (header_is_secret(kv->key))
            rd_buf_puts(&b, "\"********\"");
        else
            put_header_text(&b, kv->value, false);
    }
    rd_buf_putc(&b, '}');
    return rd_buf_steal(&b);
}

/*
 * Checks the body is one UTF-8 JSON value and finds the values at paths.
 * Strict UTF-8 first: the scanner does not look at bytes above ASCII, and
 * Postgres refuses overlong forms; one such row would fail the whole group
 * commit it shares with others.
 */
static bool scan_body(const char *body, size_t len, const struct rd_jpath *paths, size_t npaths,
                      struct rd_jspan *out)
{
    return len > 0 && rd_utf8_valid(body, len) &&
           rd_jscan(body, len, MAX_DEPTH, paths, npaths, out);
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_NAME_LEN)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '_' || *p == '-' || *p == ':'))
            return false;
    return true;
}

/* ---- the request handler ------------------------------------------------------ */

struct route {
    char conn[72];
    char source[16];
};

static bool parse_path(struct evhttp_request *req, struct route *r)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    static const char prefix[] = "/webhooks/";
    if (!path || strncmp(path, prefix, sizeof(prefix) - 1) != 0)
        return false;
    const char *rest = path + sizeof(prefix) - 1;
    const char *slash = strchr(rest, '/');
    if (!slash || slash == rest || (size_t)(slash - rest) >= sizeof(r->conn))
        return false;
    memcpy(r->conn, rest, (size_t)(slash - rest));
    r->conn[slash - rest] = '\0';
    const char *src = slash + 1;
    size_t sl = strlen(src);
    if (sl > 0 && src[sl - 1] == '/')
        sl--;
    if (sl == 0 || sl >= sizeof(r->source))
        return false;
    memcpy(r->source, src, sl);
    r->source[sl] = '\0';
    return true;
}

/* The request headers the intake reads; NULL when absent. */
struct wanted {
    const char *moco_target, *moco_event, *moco_signature, *authorization;
    const char *wh_id, *wh_timestamp, *wh_signature, *content_type;
    const char *duplicate; /* the first header above that came twice, or NULL */
};

static void want(struct wanted *w, const char **slot, const char *name, const char *rest,
                 const struct evkeyval *kv)
{
    if (strcasecmp(rest, name) != 0)
        return;
    if (*slot && !w->duplicate)
        w->duplicate = kv->key;
    if (!*slot)
        *slot = kv->value;
}

/*
 * One pass over the headers instead of an evhttp_find_header scan per name.
 * A header that decides authentication or routing must come once: with two,
 * a proxy and rosterd could each believe a different one.
 */
static void find_wanted(const struct evkeyvalq *hs, struct wanted *w)
{
    memset(w, 0, sizeof(*w));
    for (const struct evkeyval *kv = hs->tqh_first; kv; kv = kv->next.tqe_next) {
        const char *k = kv->key;
        if (strncasecmp(k, "x-moco-", 7) == 0) {
            want(w, &w->moco_target, "target", k + 7, kv);
            want(w, &w->moco_event, "event", k + 7, kv);
            want(w, &w->moco_signature, "signature", k + 7, kv);
        } else if (strncasecmp(k, "webhook-", 8) == 0) {
            want(w, &w->wh_id, "id", k + 8, kv);
            want(w, &w->wh_timestamp, "timestamp", k + 8, kv);
            want(w, &w->wh_signature, "signature", k + 8, kv);
        } else {
            want(w, &w->authorization, "authorization", k, kv);
            want(w, &w->content_type, "content-type", k, kv);
        }
    }
}

/*
 * JSON or nothing said: application/json or any type/subtype+json, parameters
 * allowed. Everything else (forms, text/plain, multipart) is refused before
 * the body is looked at.
 */
static bool json_content_type(const char *ct)
{
    if (!ct)
        return true;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, "; \t");
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return true;
    const char *slash = memchr(ct, '/', n);
    return slash && n >= 5 && (size_t)(slash - ct) > 0 && strncasecmp(ct + n - 5, "+json", 5) == 0;
}

/* Authenticates; fills p->auth and the dedup key. */
static bool authenticate(const struct wanted *w, const struct rd_source_auth *a, bool moco,
                         struct rd_pending *p)
{
    uint8_t key[32];
    const char *target = w->moco_target, *event = w->moco_event;
    if (a->nsw > 0) {
        const char *id = w->wh_id;
        enum rd_sw_result r = rd_verify_standard(id, w->wh_timestamp, w->wh_signature, p->body,
                                                 p->body_len, (const char *const *)a->sw_secrets,
                                                 a->nsw, (int64_t)time(NULL), SW_TOLERANCE_S);
        if (r != RD_SW_OK) {
            rd_log_debug("standard webhooks verification failed: %s", rd_sw_result_str(r));
            return false;
        }
        p->auth = "standard";
        rd_dedup_standard(id, key);
    } else if (moco) {
        if (!rd_verify_moco(p->body, p->body_len, w->moco_signature, (const char *const *)a->tokens,
                            a->ntokens))
            return false;
        p->auth = "hmac";
        rd_dedup_moco(target ? target : "", event ? event : "", p->body, p->body_len, key);
    } else {
        if (!rd_verify_token(w->authorization, (const char *const *)a->tokens, a->ntokens))
            return false;
        p->auth = "token";
        rd_dedup_personio(p->body, p->body_len, key);
    }
    rd_hex_encode(key, sizeof(key), p->dkey_hex);
    return true;
}

/* Where the intake looks (DESIGN.md: the subject a job is keyed by). */
static const struct rd_jpath personio_paths[] = {
    {{"event_name"}, 1},           {{"type"}, 1},          {{"payload", "person", "id"}, 3},
    {{"payload", "person_id"}, 2}, {{"payload", "id"}, 2},
};
static const struct rd_jpath moco_paths[] = {{{"id"}, 1}, {{"user", "id"}, 2}};

const char *rd_intake_describe(struct rd_pending *p, bool moco, const char *target,
                               const char *event)
{
    struct rd_jspan v[5];
    if (moco) {
        if (!scan_body(p->body, p->body_len, moco_paths, 2, v))
            return "body is not valid JSON";
        if (!target || !event || !*target || !*event)
            return "X-Moco-Target and X-Moco-Event headers are required";
        if (!name_ok(target) || !name_ok(event))
            return "X-Moco-Target or X-Moco-Event has unexpected characters";
        size_t tl = strlen(target), el = strlen(event);
        p->event_type = rd_malloc(tl + el + 2);
        memcpy(p->event_type, target, tl);
        p->event_type[tl] = '.';
        memcpy(p->event_type + tl + 1, event, el + 1);
        /* The MOCO user an entity belongs to: user.id, or id for a User. */
        p->subject = scalar_text(strcmp(target, "User") == 0 ? &v[0] : &v[1]);
        return NULL;
    }
    if (!scan_body(p->body, p->body_len, personio_paths, 5, v))
        return "body is not valid JSON";
    /* event_name, else type; either only as a key of the top-level object. */
    const struct rd_jspan *en = v[0].type != RD_J_NONE ? &v[0] : &v[1];
    if (en->type != RD_J_STRING)
        return "event_name is required";
    char *name = rd_jspan_text(en, MAX_NAME_LEN);
    if (!name || !name_ok(name)) {
        free(name);
        return "event_name has unexpected characters";
    }
    p->event_type = name;
    /* The person a Personio notification is about: payload.person.id, payload.person_id,
     * payload.id. */
    p->subject = scalar_text(&v[2]);
    if (!p->subject)
        p->subject = scalar_text(&v[3]);
    if (!p->subject)
        p->subject = scalar_text(&v[4]);
    return NULL;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct rd_intake *in = arg;
    double t0 = rd_intake_now();
    struct client *cl = client_of(req);
    if (cl) {
        client_arm(cl, false);
        if (!cl->nodelay) {
            /*
             * evhttp writes headers and body as two TLS records; with Nagle on,
             * the second waits for the client's delayed ACK (~40 ms a request).
             * The socket only exists once evhttp has set it, hence here.
             */
            int one = 1;
            evutil_socket_t s = bufferevent_getfd(cl->bev);
            if (s >= 0)
                setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            cl->nodelay = true;
        }
    }

    struct route r;
    struct rd_connection *c = NULL;
    if (!in->cache_loaded) {
        /* Until the connection table has been read once, a 404 would be a lie. */
        reply_error(in, req, 503, "Service Unavailable", "temporarily unavailable", NULL, NULL,
                    "unavailable", t0);
        return;
    }
    if (!parse_path(req, &r) || !(c = cache_find(in, r.conn)) ||
        (strcmp(r.source, "personio") != 0 && strcmp(r.source, "moco") != 0)) {
        reply_error(in, req, 404, "Not Found", "not found", c ? c->name : NULL, NULL, "not_found",
                    t0);
        return;
    }
    bool moco = r.source[0] == 'm';
    const char *source = moco ? "moco" : "personio";
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        reply_error(in, req, 405, "Method Not Allowed", "method not allowed", c->name, source,
                    "bad_method", t0);
        return;
    }
    struct evbuffer *ib = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(ib);
    if ((long)len > in->cfg->max_body_bytes) {
        reply_error(in, req, 413, "Payload Too Large", "body too large", c->name, source,
                    "too_large", t0);
        return;
    }
    struct evkeyvalq *hs = evhttp_request_get_input_headers(req);
    struct wanted w;
    find_wanted(hs, &w);
    if (w.duplicate) {
        char msg[96];
        snprintf(msg, sizeof(msg), "duplicate %.40s header", w.duplicate);
        reply_error(in, req, 400, "Bad Request", msg, c->name, source, "bad_request", t0);
        return;
    }

    struct rd_pending *p = rd_calloc(1, sizeof(*p));
    p->req = req;
    p->t0 = t0;
    p->source = source;
    p->body = rd_malloc(len + 1);
    evbuffer_copyout(ib, p->body, len);
    p->body[len] = '\0';
    p->body_len = len;

    if (!authenticate(&w, moco ? &c->moco : &c->personio, moco, p)) {
        rd_pending_free(p);
        reply_error(in, req, 401, "Unauthorized", "unauthorized", c->name, source, "unauthorized",
                    t0);
        return;
    }
    if (!json_content_type(w.content_type)) {
        rd_pending_free(p);
        reply_error(in, req, 415, "Unsupported Media Type", "Content-Type must be application/json",
                    c->name, source, "bad_request", t0);
        return;
    }
    const char *bad = rd_intake_describe(p, moco, w.moco_target, w.moco_event);
    if (bad) {
        rd_pending_free(p);
        reply_error(in, req, 400, "Bad Request", bad, c->name, source, "bad_request", t0);
        return;
    }
    p->connection_id = c->id;
    p->connection_name = rd_strdup(c->name);
    p->headers_json = headers_json(hs);
    if (!rd_idb_submit(in->db, p)) {
        rd_pending_free(p);
        reply_error(in, req, 503, "Service Unavailable", "temporarily unavailable", c->name, source,
                    "unavailable", t0);
    }
}

/* Batch writer callback: answer every request of a finished batch. */
static void on_batch(struct rd_pending *list, void *arg)
{
    struct rd_intake *in = arg;
    bool stored = false;
    while (list) {
        struct rd_pending *p = list;
        list = p->next;
        char body[96];
        switch (p->result) {
        case RD_PENDING_INSERTED:
        case RD_PENDING_DUPLICATE: {
            bool dup = p->result == RD_PENDING_DUPLICATE;
            snprintf(body, sizeof(body), "{\"event_id\":\"%lld\",\"status\":\"%s\"}",
                     (long long)p->event_id, dup ? "duplicate" : "queued");
            reply(p->req, dup ? 200 : 202, dup ? "OK" : "Accepted", body, 0, in->draining);
            rd_metrics_webhook_answered(p->connection_name, p->source, dup ? "duplicate" : "queued",
                                        rd_intake_now() - p->t0);
            stored |= !dup;
            break;
        }
        default:
            reply_error(in, p->req, 503, "Service Unavailable", "temporarily unavailable",
                        p->connection_name, p->source, "unavailable", p->t0);
            break;
        }
        rd_pending_free(p);
    }
    if (stored && in->on_commit)
        in->on_commit(in->on_commit_arg);
}

/* ---- life cycle ---------------------------------------------------------------- */

struct rd_intake *rd_intake_new(struct event_base *base, const struct rd_config *cfg,
                                const uint8_t key[RD_SECRET_KEY_LEN], char *err, size_t errlen)
{
    if (g_client_idx < 0)
        g_client_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, client_free_cb);
    SSL_CTX *ctx = rd_tls_server_ctx(cfg->tls_cert, cfg->tls_key, err, errlen);
    if (!ctx)
        return NULL;
    char *host = NULL;
    int port = 0;
    if (rd_config_split_hostport(cfg->listen, &host, &port) != 0) {
        snprintf(err, errlen, "listen: bad address");
        SSL_CTX_free(ctx);
        return NULL;
    }
    struct rd_intake *in = rd_calloc(1, sizeof(*in));
    in->base = base;
    in->cfg = cfg;
    in->key = key;
    in->ssl_ctx = ctx;
    in->http = evhttp_new(base);
    evhttp_set_bevcb(in->http, on_new_bev, in);
    evhttp_set_gencb(in->http, on_request, in);
    evhttp_set_timeout(in->http, cfg->header_timeout_seconds);
    evhttp_set_max_body_size(in->http, cfg->max_body_bytes);
    evhttp_set_max_headers_size(in->http, MAX_HEADERS_BYTES);
    evhttp_set_allowed_methods(in->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                             EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                             EVHTTP_REQ_OPTIONS);
    in->bound = evhttp_bind_socket_with_handle(in->http, host, (ev_uint16_t)port);
    if (!in->bound) {
        snprintf(err, errlen, "listen: cannot bind %s: %s", cfg->listen, strerror(errno));
        free(host);
        rd_intake_free(in);
        return NULL;
    }
    free(host);
    struct rd_idb_callbacks cbs = {on_batch, on_connections, in};
    in->db = rd_idb_new(base, cfg->database_url, DB_POOL_SIZE, cfg->intake_max_pending, &cbs);
    in->refresh = event_new(base, -1, EV_PERSIST, on_refresh, in);
    struct timeval tv = {CONNECTIONS_REFRESH_S, 0};
    event_add(in->refresh, &tv);
    rd_log_info("webhook listener on https://%s", cfg->listen);
    return in;
}

void rd_intake_on_commit(struct rd_intake *in, rd_intake_commit_cb cb, void *arg)
{
    in->on_commit = cb;
    in->on_commit_arg = arg;
}

int rd_intake_reload_tls(struct rd_intake *in, char *err, size_t errlen)
{
    SSL_CTX *ctx = rd_tls_server_ctx(in->cfg->tls_cert, in->cfg->tls_key, err, errlen);
    if (!ctx)
        return -1;
    /* Live connections hold their own reference to the old context. */
    SSL_CTX_free(in->ssl_ctx);
    in->ssl_ctx = ctx;
    return 0;
}

static void on_drain_check(evutil_socket_t fd, short what, void *arg)
{
    struct rd_intake *in = arg;
    (void)fd, (void)what;
    if (rd_idb_outstanding(in->db) > 0 && rd_intake_now() < in->drain_deadline)
        return;
    event_del(in->drain_check);
    if (rd_idb_outstanding(in->db) > 0)
        rd_log_warn("drain timed out with %zu request(s) unanswered", rd_idb_outstanding(in->db));
    if (in->drain_done)
        in->drain_done(in->drain_arg);
}

void rd_intake_drain(struct rd_intake *in, int timeout_s, void (*done)(void *), void *arg)
{
    if (in->draining)
        return;
    in->draining = true;
    if (in->bound) {
        evhttp_del_accept_socket(in->http, in->bound);
        in->bound = NULL;
    }
    in->drain_done = done;
    in->drain_arg = arg;
    in->drain_deadline = rd_intake_now() + timeout_s;
    in->drain_check = event_new(in->base, -1, EV_PERSIST, on_drain_check, in);
    struct timeval tv = {0, 20000};
    event_add(in->drain_check, &tv);
    rd_log_info("intake draining: %zu request(s) outstanding", rd_idb_outstanding(in->db));
}

void rd_intake_free(struct rd_intake *in)
{
    if (!in)
        return;
    if (in->refresh)
        event_free(in->refresh);
    if (in->drain_check)
        event_free(in->drain_check);
    rd_idb_free(in->db); /* answers anything left (503) before the connections go */
    if (in->http)
        evhttp_free(in->http);
    for (size_t i = 0; i < in->ncache; i++) {
        rd_connection_free(in->cache[i].conn);
        free(in->cache[i].updated_at);
    }
    free(in->cache);
    SSL_CTX_free(in->ssl_ctx);
    free(in);
}
