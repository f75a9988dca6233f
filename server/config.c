/*
 * rosterd.conf: one static table of options drives the defaults, the file
 * parser, the ROSTERD_<KEY> environment overrides and the SIGHUP comparison,
 * so a key is added in exactly one place. Messages name the key and line and
 * never echo a database_url, which may carry a password.
 */
#include "rosterd/config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rosterd/mem.h"

enum opt_type {
    OPT_STRING,
    OPT_INT,
    OPT_SIZE,
    OPT_LOG_LEVEL,
    OPT_LOG_FORMAT,
    OPT_ADDRESS,
    OPT_BOOL
};

struct opt {
    const char *name;
    enum opt_type type;
    const char *def; /* as it would be written in the file; NULL: unset */
    long min, max;   /* OPT_INT, OPT_SIZE */
    bool reloadable; /* applied on SIGHUP without a restart (none yet: SIGHUP re-reads only the TLS
                        files) */
    bool secret;     /* the value is never echoed in a message */
    size_t offset;
    const char *help;
};

#define OFF(f) offsetof(struct rd_config, f)

/* The order here is the order of deploy/rosterd.conf.example. */
static const struct opt options[] = {
    {"listen", OPT_ADDRESS, "0.0.0.0:8443", 0, 0, false, false, OFF(listen),
     "webhook listener (HTTPS), host:port"},
    {"tls_cert", OPT_STRING, NULL, 0, 0, false, false, OFF(tls_cert),
     "PEM certificate chain (required by the daemon)"},
    {"tls_key", OPT_STRING, NULL, 0, 0, false, false, OFF(tls_key),
     "PEM private key (required by the daemon)"},
    {"admin_listen", OPT_ADDRESS, "127.0.0.1:9090", 0, 0, false, false, OFF(admin_listen),
     "health, metrics and /admin/ listener (plain HTTP)"},
    {"admin_token_file", OPT_STRING, NULL, 0, 0, false, false, OFF(admin_token_file),
     "bearer token for /admin/; unset: /admin/ answers 403"},
    {"database_url", OPT_STRING, "postgresql:///rosterd", 0, 0, false, true, OFF(database_url),
     "libpq connection string"},
    {"workers", OPT_INT, "4", 1, 256, false, false, OFF(workers), "concurrent jobs per instance"},
    {"max_attempts", OPT_INT, "12", 1, 100, false, false, OFF(max_attempts),
     "attempts per job before it is dead"},
    {"retry_base_seconds", OPT_INT, "2", 1, 3600, false, false, OFF(retry_base_seconds),
     "base of the exponential retry backoff"},
    {"secret_key_file", OPT_STRING, NULL, 0, 0, false, false, OFF(secret_key_file),
     "key that encrypts stored credentials (required)"},
    {"secret_key_previous_file", OPT_STRING, NULL, 0, 0, false, false,
     OFF(secret_key_previous_file), "the key before a rotation: opens, never seals"},
    {"smtp_url", OPT_STRING, NULL, 0, 0, false, false, OFF(smtp_url), "optional e-mail alerts"},
    {"smtp_from", OPT_STRING, NULL, 0, 0, false, false, OFF(smtp_from), "sender of e-mail alerts"},
    {"ca_file", OPT_STRING, NULL, 0, 0, false, false, OFF(ca_file),
     "CA bundle for upstream HTTPS; unset: system"},
    {"max_body_bytes", OPT_SIZE, "1048576", 1024, 67108864, false, false, OFF(max_body_bytes),
     "larger webhook bodies get 413"},
    {"log_level", OPT_LOG_LEVEL, "info", 0, 0, false, false, OFF(log_level),
     "error, warn, info or debug"},
    {"log_format", OPT_LOG_FORMAT, "json", 0, 0, false, false, OFF(log_format), "json or text"},
    {"header_timeout_seconds", OPT_INT, "10", 1, 300, false, false, OFF(header_timeout_seconds),
     "a whole request must arrive within this"},
    {"intake_max_pending", OPT_INT, "20000", 100, 1000000, false, false, OFF(intake_max_pending),
     "requests waiting for a commit before 503"},
    {"event_retention_days", OPT_INT, "30", 30, 3650, false, false, OFF(event_retention_days),
     "days events are kept; at least the 30-day dedup window"},
    {"job_history_days", OPT_INT, "30", 1, 3650, false, false, OFF(job_history_days),
     "days finished and dead jobs are kept in jobs_history"},
    {"test_handlers", OPT_BOOL, "off", 0, 0, false, false, OFF(test_handlers),
     "on: run the test.* job kinds (tests and benchmarks only)"},
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

/* Longest value or key quoted back in a message; the rest is elided. */
#define QUOTE_MAX 64

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Copies s for a message: control bytes become '?', long values are cut with "...". */
static void quote_for_msg(const char *s, char *out, size_t outlen)
{
    size_t n = 0;
    for (; *s && n + 1 < outlen && n < QUOTE_MAX; s++)
        out[n++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
    if (*s && n >= 3) {
        memcpy(out + n - 3, "...", 3);
    }
    out[n] = '\0';
}

static const struct opt *find_option(const char *name, size_t len)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (strlen(options[i].name) == len && memcmp(options[i].name, name, len) == 0)
            return &options[i];
    }
    return NULL;
}

static bool parse_long(const char *s, long min, long max, long *out)
{
    if (!*s || isspace((unsigned char)*s))
        return false;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

/* Bytes, or a number with a k or M suffix (powers of 1024). */
static bool parse_size(const char *s, long min, long max, long *out)
{
    size_t len = strlen(s);
    long mult = 1;
    if (len > 1) {
        switch (s[len - 1]) {
        case 'k':
        case 'K':
            mult = 1024L;
            break;
        case 'm':
        case 'M':
            mult = 1024L * 1024;
            break;
        default:
            break;
        }
    }
    if (mult == 1)
        return parse_long(s, min, max, out);
    char *digits = rd_strndup(s, len - 1);
    long v;
    bool ok = parse_long(digits, 0, LONG_MAX / mult, &v) && v * mult >= min && v * mult <= max;
    free(digits);
    if (ok)
        *out = v * mult;
    return ok;
}

/* on/off, also true/false, yes/no and 1/0 (case-insensitive). */
static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"on", "true", "yes", "1"};
    static const char *const no[] = {"off", "false", "no", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/*
 * Stores value into the field of o. On failure writes the reason (without
 * the key, which the caller prefixes) into msg and returns -1.
 */
static int set_value(const struct opt *o, struct rd_config *cfg, const char *value, char *msg,
                     size_t msglen)
{
    char *field = (char *)cfg + o->offset;
    char got[QUOTE_MAX + 1];
    quote_for_msg(value, got, sizeof(got));
    long v;

    switch (o->type) {
    case OPT_STRING: {
        char **sp = (char **)(void *)field;
        if (!*value && o->def) {
            set_err(msg, msglen, "must not be empty");
            return -1;
        }
        free(*sp);
        *sp = *value ? rd_strdup(value) : NULL;
        return 0;
    }
    case OPT_ADDRESS: {
        char *host = NULL;
        int port;
        if (rd_config_split_hostport(value, &host, &port) != 0) {
            set_err(msg, msglen, "expected host:port, got \"%s\"", got);
            return -1;
        }
        free(host);
        char **sp = (char **)(void *)field;
        free(*sp);
        *sp = rd_strdup(value);
        return 0;
    }
    case OPT_INT:
        if (!parse_long(value, o->min, o->max, &v)) {
            set_err(msg, msglen, "expected an integer from %ld to %ld, got \"%s\"", o->min, o->max,
                    got);
            return -1;
        }
        *(int *)(void *)field = (int)v;
        return 0;
    case OPT_SIZE:
        if (!parse_size(value, o->min, o->max, &v)) {
            set_err(msg, msglen,
                    "expected a size from %ld to %ld bytes (suffix k or M allowed), got \"%s\"",
                    o->min, o->max, got);
            return -1;
        }
        *(long *)(void *)field = v;
        return 0;
    case OPT_LOG_LEVEL:
        if (!rd_log_parse_level(value, (enum rd_log_level *)(void *)field)) {
            set_err(msg, msglen, "expected error, warn, info or debug, got \"%s\"", got);
            return -1;
        }
        return 0;
    case OPT_LOG_FORMAT:
        if (!rd_log_parse_format(value, (enum rd_log_format *)(void *)field)) {
            set_err(msg, msglen, "expected json or text, got \"%s\"", got);
            return -1;
        }
        return 0;
    case OPT_BOOL:
        if (!parse_bool(value, (bool *)(void *)field)) {
            set_err(msg, msglen, "expected on or off, got \"%s\"", got);
            return -1;
        }
        return 0;
    }
    set_err(msg, msglen, "internal error: bad option type");
    return -1;
}

/* Applies value to o; a secret key's failure message is cut before any echo. */
static int apply_option(const struct opt *o, struct rd_config *cfg, const char *value, char *msg,
                        size_t msglen)
{
    if (set_value(o, cfg, value, msg, msglen) == 0)
        return 0;
    if (o->secret) {
        /* Today only "must not be empty" can fail for database_url; be safe anyway. */
        char *got = strstr(msg, ", got \"");
        if (got)
            *got = '\0';
    }
    return -1;
}

void rd_config_defaults(struct rd_config *cfg)
{
    char msg[256];
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (!options[i].def)
            continue;
        /* The defaults are written like file values so the table cannot disagree with itself. */
        if (set_value(&options[i], cfg, options[i].def, msg, sizeof(msg)) != 0)
            abort();
    }
}

void rd_config_free(struct rd_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (options[i].type == OPT_STRING || options[i].type == OPT_ADDRESS)
            free(*(char **)(void *)((char *)cfg + options[i].offset));
    }
    memset(cfg, 0, sizeof(*cfg));
}

const char *rd_config_option_name(size_t i)
{
    return i < N_OPTIONS ? options[i].name : NULL;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* '#' opens a comment at the start of a line or after whitespace. */
static bool is_comment_at(const char *line, const char *p)
{
    return *p == '#' && (p == line || is_blank(p[-1]));
}

static bool valid_key(const char *k, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)k[i]) && k[i] != '_' && k[i] != '-' && k[i] != '.')
            return false;
    }
    return true;
}

struct line_ctx {
    const char *name;
    int lineno;
    int *first_line; /* per option, 0: not seen in this text */
    char *err;
    size_t errlen;
};

/*
 * Splits the value part (after the "=") into vstart and vlen: a quoted value is
 * taken verbatim between the quotes; otherwise up to a comment, trimmed.
 * Returns NULL or a static message.
 */
static const char *split_value(const char *line, const char *v, const char *end,
                               const char **vstart, size_t *vlen)
{
    while (v < end && is_blank(*v))
        v++;
    if (v < end && *v == '"') {
        const char *close = memchr(v + 1, '"', (size_t)(end - v - 1));
        if (!close)
            return "unterminated quoted value";
        const char *p = close + 1;
        while (p < end && is_blank(*p))
            p++;
        if (p < end && !is_comment_at(line, p))
            return "unexpected text after the closing quote";
        *vstart = v + 1;
        *vlen = (size_t)(close - v - 1);
        return NULL;
    }
    const char *p = v;
    while (p < end && !is_comment_at(line, p))
        p++;
    while (p > v && is_blank(p[-1]))
        p--;
    *vstart = v;
    *vlen = (size_t)(p - v);
    return NULL;
}

static int parse_line(struct line_ctx *lc, struct rd_config *cfg, const char *line, const char *end)
{
    const char *p = line;
    while (p < end && is_blank(*p))
        p++;
    if (p == end || is_comment_at(line, p))
        return 0;
    if (memchr(p, '\0', (size_t)(end - p))) {
        set_err(lc->err, lc->errlen, "%s:%d: unexpected NUL byte", lc->name, lc->lineno);
        return -1;
    }
    const char *eq = p;
    while (eq < end && *eq != '=' && !is_comment_at(line, eq))
        eq++;
    const char *kend = eq;
    while (kend > p && is_blank(kend[-1]))
        kend--;
    /* A key with odd characters is most likely a value on a line without
     * a key; echoing it could print a password, so say only what is wrong. */
    if (eq == end || *eq != '=' || !valid_key(p, (size_t)(kend - p))) {
        set_err(lc->err, lc->errlen, "%s:%d: expected \"key = value\"", lc->name, lc->lineno);
        return -1;
    }
    size_t klen = (size_t)(kend - p);
    const struct opt *o = find_option(p, klen);
    if (!o) {
        set_err(lc->err, lc->errlen, "%s:%d: unknown key \"%.*s%s\"", lc->name, lc->lineno,
                (int)(klen > QUOTE_MAX ? QUOTE_MAX : klen), p, klen > QUOTE_MAX ? "..." : "");
        return -1;
    }
    size_t idx = (size_t)(o - options);
    if (lc->first_line[idx]) {
        set_err(lc->err, lc->errlen, "%s:%d: duplicate key \"%s\" (first on line %d)", lc->name,
                lc->lineno, o->name, lc->first_line[idx]);
        return -1;
    }
    lc->first_line[idx] = lc->lineno;

    const char *vstart;
    size_t vlen;
    const char *bad = split_value(line, eq + 1, end, &vstart, &vlen);
    if (bad) {
        set_err(lc->err, lc->errlen, "%s:%d: %s: %s", lc->name, lc->lineno, o->name, bad);
        return -1;
    }
    char *value = rd_strndup(vstart, vlen);
    char msg[256];
    int rc = apply_option(o, cfg, value, msg, sizeof(msg));
    if (rc != 0)
        set_err(lc->err, lc->errlen, "%s:%d: %s: %s", lc->name, lc->lineno, o->name, msg);
    rd_memzero(value, vlen);
    free(value);
    return rc;
}

int rd_config_parse(const char *text, size_t len, const char *name, struct rd_config *cfg,
                    char *err, size_t errlen)
{
    int first_line[N_OPTIONS] = {0};
    struct line_ctx lc = {name ? name : "config", 0, first_line, err, errlen};
    const char *p = text;
    const char *end = text + len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *lend = nl ? nl : end;
        lc.lineno++;
        if (parse_line(&lc, cfg, p, lend) != 0)
            return -1;
        p = nl ? nl + 1 : end;
    }
    return 0;
}

int rd_config_apply_env(struct rd_config *cfg, char *err, size_t errlen)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        char var[64] = "ROSTERD_";
        size_t n = strlen(var);
        for (const char *k = options[i].name; *k && n + 1 < sizeof(var); k++)
            var[n++] = (char)toupper((unsigned char)*k);
        var[n] = '\0';
        const char *value = getenv(var);
        if (!value)
            continue;
        char msg[256];
        if (apply_option(&options[i], cfg, value, msg, sizeof(msg)) != 0) {
            set_err(err, errlen, "%s: %s", var, msg);
            return -1;
        }
    }
    return 0;
}

/* Reads the whole file; NULL and err set ("PATH: cannot open: …") on failure. */
static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    struct rd_buf b = {0};
    if (rd_buf_read_file(&b, path, 1024 * 1024) != 0) {
        if (errno == EFBIG)
            set_err(err, errlen, "%s: larger than 1 MiB, not a config file", path);
        else if (errno == EIO)
            set_err(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        else
            set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    *len = b.len;
    return rd_buf_steal(&b);
}

int rd_config_load(const char *path, struct rd_config *cfg, char *err, size_t errlen)
{
    int rc = -1;
    size_t len = 0;
    /* Callers may have filled in the defaults already; do not leak them. */
    rd_config_free(cfg);
    rd_config_defaults(cfg);
    char *text = read_file(path, &len, err, errlen);
    if (!text)
        goto out;
    if (rd_config_parse(text, len, path, cfg, err, errlen) != 0)
        goto out;
    if (rd_config_apply_env(cfg, err, errlen) != 0)
        goto out;
    rc = 0;
out:
    if (text) {
        rd_memzero(text, len);
        free(text);
    }
    if (rc != 0)
        rd_config_free(cfg);
    return rc;
}

static int require_keys(const struct rd_config *cfg, const char *name, const char *const *keys,
                        size_t nkeys, char *err, size_t errlen)
{
    for (size_t i = 0; i < nkeys; i++) {
        const struct opt *o = find_option(keys[i], strlen(keys[i]));
        const char *v = *(char *const *)(const void *)((const char *)cfg + o->offset);
        if (!v || !*v) {
            set_err(err, errlen, "%s: %s is required", name ? name : "config", o->name);
            return -1;
        }
    }
    return 0;
}

int rd_config_require_daemon(const struct rd_config *cfg, const char *name, char *err,
                             size_t errlen)
{
    static const char *const keys[] = {"tls_cert", "tls_key", "secret_key_file"};
    return require_keys(cfg, name, keys, sizeof(keys) / sizeof(keys[0]), err, errlen);
}

int rd_config_require_secret_key(const struct rd_config *cfg, const char *name, char *err,
                                 size_t errlen)
{
    static const char *const keys[] = {"secret_key_file"};
    return require_keys(cfg, name, keys, 1, err, errlen);
}

static bool option_equal(const struct opt *o, const struct rd_config *a, const struct rd_config *b)
{
    const char *fa = (const char *)a + o->offset;
    const char *fb = (const char *)b + o->offset;
    switch (o->type) {
    case OPT_STRING:
    case OPT_ADDRESS: {
        const char *sa = *(char *const *)(const void *)fa;
        const char *sb = *(char *const *)(const void *)fb;
        return (!sa && !sb) || (sa && sb && strcmp(sa, sb) == 0);
    }
    case OPT_INT:
        return *(const int *)(const void *)fa == *(const int *)(const void *)fb;
    case OPT_SIZE:
        return *(const long *)(const void *)fa == *(const long *)(const void *)fb;
    case OPT_LOG_LEVEL:
        return *(const enum rd_log_level *)(const void *)fa ==
               *(const enum rd_log_level *)(const void *)fb;
    case OPT_LOG_FORMAT:
        return *(const enum rd_log_format *)(const void *)fa ==
               *(const enum rd_log_format *)(const void *)fb;
    case OPT_BOOL:
        return *(const bool *)(const void *)fa == *(const bool *)(const void *)fb;
    }
    return false;
}

size_t rd_config_restart_keys(const struct rd_config *old, const struct rd_config *cur, char *buf,
                              size_t buflen)
{
    size_t count = 0, used = 0;
    if (buf && buflen)
        buf[0] = '\0';
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (options[i].reloadable || option_equal(&options[i], old, cur))
            continue;
        if (buf && used < buflen) {
            int w = snprintf(buf + used, buflen - used, "%s%s", count ? ", " : "", options[i].name);
            used += w > 0 ? (size_t)w : 0;
        }
        count++;
    }
    return count;
}

static bool valid_port(const char *s, int *port)
{
    size_t n = strlen(s);
    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
    }
    int v = atoi(s);
    if (v < 1 || v > 65535)
        return false;
    *port = v;
    return true;
}

static bool valid_host(const char *h, size_t n, bool v6)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c <= 0x20 || c == 0x7f || c == '[' || c == ']' || c == '/' || (!v6 && c == ':'))
            return false;
    }
    return true;
}

int rd_config_split_hostport(const char *s, char **host, int *port)
{
    const char *h, *colon;
    size_t hlen;
    bool v6 = false;
    *host = NULL;
    if (!s)
        return -1;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
        v6 = true;
        if (!memchr(h, ':', hlen))
            return -1; /* brackets are for IPv6 literals only */
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        h = s;
        hlen = (size_t)(colon - s);
    }
    int p;
    if (!valid_port(colon + 1, &p))
        return -1;
    if (hlen == 0 && !v6) {
        *host = rd_strdup("0.0.0.0");
    } else {
        if (!valid_host(h, hlen, v6))
            return -1;
        *host = rd_strndup(h, hlen);
    }
    *port = p;
    return 0;
}
