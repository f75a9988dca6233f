/*
 * Connection documents (DESIGN.md §4): validation with field-named messages,
 * env:/file: secret references, masking for display, and AES-GCM sealing in
 * the connections table. The sealed blob is bound to the connection's name.
 */
#include "rosterd/connection.h"

#include "rosterd/mem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#define MASK "********"
#define SECRET_FILE_MAX (1024 * 1024)

/* A place in the document that holds a secret: a string or a list of strings. */
struct secret_field {
    const char *section;
    const char *key;
};

static const struct secret_field secret_fields[] = {
    {"personio", "client_secret"},
    {"personio", "webhook_tokens"},
    {"personio", "standard_webhooks_secrets"},
    {"moco", "api_key"},
    {"moco", "webhook_keys"},
    {"moco", "standard_webhooks_secrets"},
    {"platform", "token"},
    {"alerts", "slack_webhook_url"},
};
#define NSECRET_FIELDS (sizeof secret_fields / sizeof secret_fields[0])

/* Known keys; the order is also the display order used by rosterctl. */
static const char *const top_keys[] = {
    "name",   "timezone", "start_date",    "personio",          "moco",   "platform",
    "alerts", "team_map", "absence_codes", "fallback_approver", "policy", NULL};
static const char *const personio_keys[] = {
    "base_url", "client_id", "client_secret", "webhook_tokens", "standard_webhooks_secrets", NULL};
static const char *const moco_keys[] = {
    "base_url", "api_key", "webhook_keys", "standard_webhooks_secrets", "rate_limit", NULL};
static const char *const rate_limit_keys[] = {"requests", "window_seconds", NULL};
static const char *const platform_keys[] = {"scim_base_url", "api_base_url", "token", NULL};
static const char *const alerts_keys[] = {"slack_webhook_url", "email_to", NULL};
static const char *const policy_keys[] = {"onboarding_alerts",
                                          "deactivation",
                                          "deactivation_delay_days",
                                          "approver_reassignment",
                                          "attendance_push",
                                          "absence_sync",
                                          "reconcile_at",
                                          "max_deactivations_per_run",
                                          "protected_users",
                                          "stale_webhook_hours",
                                          NULL};
static const char *const policy_bools[] = {"onboarding_alerts",     "deactivation",
                                           "approver_reassignment", "attendance_push",
                                           "absence_sync",          NULL};

/* Formats "field: message" into err and returns -1. */
__attribute__((format(printf, 4, 5))) static int fail(char *err, size_t errlen, const char *field,
                                                      const char *fmt, ...)
{
    char msg[384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (field && *field)
        snprintf(err, errlen, "%s: %s", field, msg);
    else
        snprintf(err, errlen, "%s", msg);
    return -1;
}

static struct json_object *get(struct json_object *obj, const char *key)
{
    struct json_object *v = NULL;
    if (!obj || !json_object_is_type(obj, json_type_object))
        return NULL;
    if (!json_object_object_get_ex(obj, key, &v))
        return NULL;
    return v;
}

static bool in_list(const char *key, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], key) == 0)
            return true;
    return false;
}

/* Names every unknown key at once, so one apply shows all the typos. */
static int check_keys(struct json_object *obj, const char *path, const char *const *allowed,
                      char *err, size_t errlen)
{
    struct rd_buf names = {0};
    int n = 0;
    json_object_object_foreach(obj, key, val)
    {
        (void)val;
        if (in_list(key, allowed))
            continue;
        rd_buf_printf(&names, "%s\"%s\"", n ? ", " : "", key);
        n++;
    }
    int rc = 0;
    if (n > 0)
        rc = fail(err, errlen, path, "unknown key%s %s", n > 1 ? "s" : "", names.data);
    rd_buf_free(&names);
    return rc;
}

static bool is_nonempty_string(struct json_object *v)
{
    return v && json_object_is_type(v, json_type_string) && json_object_get_string_len(v) > 0;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
            return false;
    }
    return true;
}

static bool all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static bool valid_date(const char *s)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-' || !all_digits(s, 4) ||
        !all_digits(s + 5, 2) || !all_digits(s + 8, 2))
        return false;
    int y = atoi(s), m = atoi(s + 5), d = atoi(s + 8);
    if (y < 1 || m < 1 || m > 12 || d < 1)
        return false;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= mdays[m - 1] + (m == 2 && leap ? 1 : 0);
}

static bool valid_host(const char *h, size_t n)
{
    if (n == 0)
        return false;
    if (h[0] == '[')
        return n > 2 && h[n - 1] == ']';
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_';
        if (!ok)
            return false;
    }
    return true;
}

/* http(s)://[userinfo@]host[:port][/path…] with no spaces or control characters. */
static bool valid_url(const char *s)
{
    size_t skip;
    if (strncasecmp(s, "https://", 8) == 0)
        skip = 8;
    else if (strncasecmp(s, "http://", 7) == 0)
        skip = 7;
    else
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p == 0x7f)
            return false;
    const char *auth = s + skip;
    size_t alen = strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', alen);
    if (at) {
        alen -= (size_t)(at + 1 - auth);
        auth = at + 1;
    }
    size_t hlen = alen;
    if (auth[0] == '[') {
        const char *close = memchr(auth, ']', alen);
        if (!close)
            return false;
        hlen = (size_t)(close - auth) + 1;
    } else {
        const char *colon = memchr(auth, ':', alen);
        if (colon)
            hlen = (size_t)(colon - auth);
    }
    if (!valid_host(auth, hlen))
        return false;
    if (hlen == alen)
        return true;
    if (auth[hlen] != ':')
        return false;
    const char *port = auth + hlen + 1;
    size_t plen = alen - hlen - 1;
    if (plen == 0 || plen > 5 || !all_digits(port, plen))
        return false;
    return atoi(port) >= 1 && atoi(port) <= 65535;
}

/* Deliberately loose: one @, something before it, a dotted domain after it. */
static bool valid_email(const char *s)
{
    const char *at = strchr(s, '@');
    if (!at || at == s || strchr(at + 1, '@'))
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p == 0x7f || *p == ',' || *p == '<' || *p == '>' || *p == '"')
            return false;
    const char *dom = at + 1;
    const char *dot = strchr(dom, '.');
    size_t dlen = strlen(dom);
    return dot && dot != dom && dom[dlen - 1] != '.' && !strstr(dom, "..");
}

static bool valid_hhmm(const char *s)
{
    if (strcmp(s, "off") == 0)
        return true;
    if (strlen(s) != 5 || s[2] != ':' || !all_digits(s, 2) || !all_digits(s + 3, 2))
        return false;
    return atoi(s) <= 23 && atoi(s + 3) <= 59;
}

/* Standard Webhooks secrets: "whsec_" + base64, or bare base64, decoding to some bytes. */
static bool valid_sw_secret(const char *s)
{
    if (strncmp(s, "whsec_", 6) == 0)
        s += 6;
    uint8_t *raw = NULL;
    size_t rawlen = 0;
    if (*s == '\0' || rd_base64_decode(s, strlen(s), &raw, &rawlen) != 0)
        return false;
    bool ok = rawlen > 0;
    rd_memzero(raw, rawlen);
    free(raw);
    return ok;
}

static int opt_string(struct json_object *obj, const char *key, const char *path, char *err,
                      size_t errlen)
{
    struct json_object *v = get(obj, key);
    if (v && !is_nonempty_string(v))
        return fail(err, errlen, path, "must be a non-empty string");
    return 0;
}

static int opt_url(struct json_object *obj, const char *key, const char *path, char *err,
                   size_t errlen)
{
    struct json_object *v = get(obj, key);
    if (!v)
        return 0;
    /* The value is not echoed: slack_webhook_url is itself a credential. */
    if (!json_object_is_type(v, json_type_string) || !valid_url(json_object_get_string(v)))
        return fail(err, errlen, path, "must be an http or https URL with a host");
    return 0;
}

/* A list of strings; each element checked by ok() when given. */
static int string_list(struct json_object *v, const char *path, bool (*ok)(const char *),
                       const char *what, char *err, size_t errlen)
{
    if (!json_object_is_type(v, json_type_array))
        return fail(err, errlen, path, "must be a list of %s", what);
    size_t n = json_object_array_length(v);
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(v, i);
        char epath[160];
        snprintf(epath, sizeof epath, "%s[%zu]", path, i);
        if (!is_nonempty_string(e))
            return fail(err, errlen, epath, "must be a non-empty string");
        if (ok && !ok(json_object_get_string(e)))
            return fail(err, errlen, epath, "must be %s", what);
    }
    return 0;
}

/* Static tokens (or HMAC keys) are required unless Standard Webhooks secrets are set. */
static int check_source_auth(struct json_object *src, const char *sname, const char *tokkey,
                             char *err, size_t errlen)
{
    char path[96];
    size_t nsw = 0;
    struct json_object *sw = get(src, "standard_webhooks_secrets");
    if (sw) {
        snprintf(path, sizeof path, "%s.standard_webhooks_secrets", sname);
        if (string_list(sw, path, valid_sw_secret, "a whsec_ or base64 secret", err, errlen) != 0)
            return -1;
        nsw = json_object_array_length(sw);
    }
    snprintf(path, sizeof path, "%s.%s", sname, tokkey);
    struct json_object *tok = get(src, tokkey);
    if (!tok && nsw == 0)
        return fail(err, errlen, path,
                    "is required: a non-empty list of strings (or set "
                    "%s.standard_webhooks_secrets)",
                    sname);
    if (!tok)
        return 0;
    if (!json_object_is_type(tok, json_type_array) ||
        (json_object_array_length(tok) == 0 && nsw == 0))
        return fail(err, errlen, path, "must be a non-empty list of strings");
    return string_list(tok, path, NULL, "strings", err, errlen);
}

/* Fetches a section: -1 if present and not an object; *out NULL when absent. */
static int section(struct json_object *doc, const char *name, bool required,
                   const char *const *keys, struct json_object **out, char *err, size_t errlen)
{
    *out = get(doc, name);
    if (!*out)
        return required ? fail(err, errlen, name, "is required") : 0;
    if (!json_object_is_type(*out, json_type_object))
        return fail(err, errlen, name, "must be an object");
    return check_keys(*out, name, keys, err, errlen);
}

static int check_timezone(struct json_object *doc, PGconn *conn, char *err, size_t errlen)
{
    struct json_object *tz = get(doc, "timezone");
    if (!tz)
        return fail(err, errlen, "timezone", "is required");
    if (!is_nonempty_string(tz))
        return fail(err, errlen, "timezone", "must be a non-empty string");
    const char *name = json_object_get_string(tz);
    if (!conn)
        return 0;
    const char *params[1] = {name};
    PGresult *res = PQexecParams(conn, "SELECT 1 FROM pg_timezone_names WHERE name = $1", 1, NULL,
                                 params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        rc = fail(err, errlen, "timezone", "cannot check: %s", msg ? msg : "database error");
    } else if (PQntuples(res) == 0) {
        rc = fail(err, errlen, "timezone", "unknown time zone \"%.100s\"", name);
    }
    PQclear(res);
    return rc;
}

static int int_range(struct json_object *obj, const char *key, const char *path, int64_t lo,
                     int64_t hi, char *err, size_t errlen);

/* moco.rate_limit {"requests", "window_seconds"}: the account's plan (both required). */
static int check_rate_limit(struct json_object *moco, char *err, size_t errlen)
{
    struct json_object *rl = get(moco, "rate_limit");
    if (!rl)
        return 0;
    if (!json_object_is_type(rl, json_type_object))
        return fail(err, errlen, "moco.rate_limit",
                    "must be an object {\"requests\": N, \"window_seconds\": S}");
    if (check_keys(rl, "moco.rate_limit", rate_limit_keys, err, errlen) != 0)
        return -1;
    if (!get(rl, "requests") || !get(rl, "window_seconds"))
        return fail(err, errlen, "moco.rate_limit", "needs both requests and window_seconds");
    return int_range(rl, "requests", "moco.rate_limit.requests", 1, 100000, err, errlen) != 0 ||
                   int_range(rl, "window_seconds", "moco.rate_limit.window_seconds", 1, 3600, err,
                             errlen) != 0
               ? -1
               : 0;
}

static int check_sources(struct json_object *doc, char *err, size_t errlen)
{
    struct json_object *s = NULL;
    if (section(doc, "personio", true, personio_keys, &s, err, errlen) != 0 ||
        opt_url(s, "base_url", "personio.base_url", err, errlen) != 0 ||
        opt_string(s, "client_id", "personio.client_id", err, errlen) != 0 ||
        opt_string(s, "client_secret", "personio.client_secret", err, errlen) != 0 ||
        check_source_auth(s, "personio", "webhook_tokens", err, errlen) != 0)
        return -1;
    if (section(doc, "moco", true, moco_keys, &s, err, errlen) != 0 ||
        opt_url(s, "base_url", "moco.base_url", err, errlen) != 0 ||
        opt_string(s, "api_key", "moco.api_key", err, errlen) != 0 ||
        check_source_auth(s, "moco", "webhook_keys", err, errlen) != 0 ||
        check_rate_limit(s, err, errlen) != 0)
        return -1;
    if (section(doc, "platform", false, platform_keys, &s, err, errlen) != 0 ||
        opt_url(s, "scim_base_url", "platform.scim_base_url", err, errlen) != 0 ||
        opt_url(s, "api_base_url", "platform.api_base_url", err, errlen) != 0 ||
        opt_string(s, "token", "platform.token", err, errlen) != 0)
        return -1;
    if (section(doc, "alerts", false, alerts_keys, &s, err, errlen) != 0 ||
        opt_url(s, "slack_webhook_url", "alerts.slack_webhook_url", err, errlen) != 0)
        return -1;
    struct json_object *to = get(s, "email_to");
    if (to && string_list(to, "alerts.email_to", valid_email, "an e-mail address", err, errlen))
        return -1;
    return 0;
}

static int check_maps(struct json_object *doc, char *err, size_t errlen)
{
    struct json_object *tm = get(doc, "team_map");
    if (tm) {
        if (!json_object_is_type(tm, json_type_object))
            return fail(err, errlen, "team_map", "must be an object of HR team to platform team");
        json_object_object_foreach(tm, k, v)
        {
            if (!is_nonempty_string(v))
                return fail(err, errlen, "team_map", "\"%.100s\": must be a non-empty string", k);
        }
    }
    struct json_object *ac = get(doc, "absence_codes");
    if (ac) {
        if (!json_object_is_type(ac, json_type_object))
            return fail(err, errlen, "absence_codes",
                        "must be an object of absence type to code 1..5");
        json_object_object_foreach(ac, k, v)
        {
            if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1 ||
                json_object_get_int64(v) > 5)
                return fail(err, errlen, "absence_codes",
                            "\"%.100s\": must be an integer from 1 to 5", k);
        }
    }
    struct json_object *fa = get(doc, "fallback_approver");
    if (fa &&
        (!json_object_is_type(fa, json_type_string) || !valid_email(json_object_get_string(fa))))
        return fail(err, errlen, "fallback_approver", "must be an e-mail address");
    return 0;
}

static int int_range(struct json_object *obj, const char *key, const char *path, int64_t lo,
                     int64_t hi, char *err, size_t errlen)
{
    struct json_object *v = get(obj, key);
    if (!v)
        return 0;
    if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < lo ||
        json_object_get_int64(v) > hi)
        return hi == INT64_MAX
                   ? fail(err, errlen, path, "must be an integer of at least %lld", (long long)lo)
                   : fail(err, errlen, path, "must be an integer from %lld to %lld", (long long)lo,
                          (long long)hi);
    return 0;
}

static int check_policy(struct json_object *doc, char *err, size_t errlen)
{
    struct json_object *p = NULL;
    char path[96];
    if (section(doc, "policy", false, policy_keys, &p, err, errlen) != 0)
        return -1;
    if (!p)
        return 0;
    for (size_t i = 0; policy_bools[i]; i++) {
        struct json_object *v = get(p, policy_bools[i]);
        snprintf(path, sizeof path, "policy.%s", policy_bools[i]);
        if (v && !json_object_is_type(v, json_type_boolean))
            return fail(err, errlen, path, "must be true or false");
    }
    if (int_range(p, "deactivation_delay_days", "policy.deactivation_delay_days", 0, 365, err,
                  errlen) != 0 ||
        int_range(p, "max_deactivations_per_run", "policy.max_deactivations_per_run", 0, INT64_MAX,
                  err, errlen) != 0 ||
        int_range(p, "stale_webhook_hours", "policy.stale_webhook_hours", 0, 8760, err, errlen) !=
            0)
        return -1;
    struct json_object *ra = get(p, "reconcile_at");
    if (ra &&
        (!json_object_is_type(ra, json_type_string) || !valid_hhmm(json_object_get_string(ra))))
        return fail(err, errlen, "policy.reconcile_at", "must be \"HH:MM\" (24-hour) or \"off\"");
    struct json_object *pu = get(p, "protected_users");
    if (pu && string_list(pu, "policy.protected_users", NULL, "strings", err, errlen) != 0)
        return -1;
    return 0;
}

int rd_connection_validate(struct json_object *doc, PGconn *conn, char *err, size_t errlen)
{
    if (!doc || !json_object_is_type(doc, json_type_object))
        return fail(err, errlen, NULL, "a connection must be a JSON object");
    if (check_keys(doc, NULL, top_keys, err, errlen) != 0)
        return -1;
    struct json_object *name = get(doc, "name");
    if (!name)
        return fail(err, errlen, "name", "is required");
    if (!json_object_is_type(name, json_type_string) || !valid_name(json_object_get_string(name)))
        return fail(err, errlen, "name",
                    "must be 1 to 63 letters, digits, '_', '.' or '-', starting with a letter "
                    "or digit");
    struct json_object *sd = get(doc, "start_date");
    if (sd &&
        (!json_object_is_type(sd, json_type_string) || !valid_date(json_object_get_string(sd))))
        return fail(err, errlen, "start_date", "must be a date YYYY-MM-DD");
    if (check_sources(doc, err, errlen) != 0 || check_maps(doc, err, errlen) != 0 ||
        check_policy(doc, err, errlen) != 0)
        return -1;
    /* Last: it is the only check that needs the database. */
    return check_timezone(doc, conn, err, errlen);
}

/* Reads a file: reference. The contents are a secret; only the path is ever reported. */
static int read_secret_file(const char *path, const char *field, const char *ref, char **out,
                            char *err, size_t errlen)
{
    struct rd_buf b = {0};
    int rc = 0;
    if (rd_buf_read_file(&b, path, SECRET_FILE_MAX) != 0) {
        if (errno == EFBIG)
            return fail(err, errlen, field, "%s: file is larger than 1 MiB", ref);
        if (errno == EIO)
            return fail(err, errlen, field, "%s: read error", ref);
        return fail(err, errlen, field, "%s: %s", ref, strerror(errno));
    }
    if (b.len > 0 && b.data[b.len - 1] == '\n')
        b.data[--b.len] = '\0';
    if (b.len > 0 && b.data[b.len - 1] == '\r')
        b.data[--b.len] = '\0';
    if (b.len == 0 || memchr(b.data, '\0', b.len)) {
        rc = fail(err, errlen, field, "%s: file is empty or not text", ref);
        goto done;
    }
    *out = rd_strndup(b.data, b.len);
done:
    if (b.data)
        rd_memzero(b.data, b.cap);
    rd_buf_free(&b);
    return rc;
}

/* Resolves one value; *out is NULL for a literal (left as is), else a new string. */
static int resolve_value(const char *field, const char *val, const char *base_dir, char **out,
                         char *err, size_t errlen)
{
    *out = NULL;
    if (strncmp(val, "env:", 4) == 0) {
        const char *name = val + 4;
        if (*name == '\0')
            return fail(err, errlen, field, "env: reference without a variable name");
        const char *v = getenv(name);
        if (!v)
            return fail(err, errlen, field, "%.120s: environment variable is not set", val);
        if (*v == '\0')
            return fail(err, errlen, field, "%.120s: environment variable is empty", val);
        *out = rd_strdup(v);
        return 0;
    }
    if (strncmp(val, "file:", 5) == 0) {
        const char *p = val + 5;
        if (*p == '\0')
            return fail(err, errlen, field, "file: reference without a path");
        char *path = (p[0] == '/' || !base_dir || !*base_dir) ? rd_strdup(p)
                                                              : rd_asprintf("%s/%s", base_dir, p);
        int rc = read_secret_file(path, field, val, out, err, errlen);
        free(path);
        return rc;
    }
    return 0;
}

static void replace_secret(char **resolved)
{
    rd_memzero(*resolved, strlen(*resolved));
    free(*resolved);
    *resolved = NULL;
}

int rd_connection_resolve_secrets(struct json_object *doc, const char *base_dir, char *err,
                                  size_t errlen)
{
    for (size_t i = 0; i < NSECRET_FIELDS; i++) {
        struct json_object *sec = get(doc, secret_fields[i].section);
        struct json_object *v = get(sec, secret_fields[i].key);
        char field[128];
        char *resolved = NULL;
        snprintf(field, sizeof field, "%s.%s", secret_fields[i].section, secret_fields[i].key);
        if (v && json_object_is_type(v, json_type_string)) {
            if (resolve_value(field, json_object_get_string(v), base_dir, &resolved, err, errlen) !=
                0)
                return -1;
            if (resolved) {
                json_object_object_add(sec, secret_fields[i].key, json_object_new_string(resolved));
                replace_secret(&resolved);
            }
        } else if (v && json_object_is_type(v, json_type_array)) {
            size_t n = json_object_array_length(v);
            for (size_t j = 0; j < n; j++) {
                struct json_object *e = json_object_array_get_idx(v, j);
                char efield[160];
                snprintf(efield, sizeof efield, "%s[%zu]", field, j);
                if (!json_object_is_type(e, json_type_string))
                    continue; /* validation reports the type */
                if (resolve_value(efield, json_object_get_string(e), base_dir, &resolved, err,
                                  errlen) != 0)
                    return -1;
                if (resolved) {
                    json_object_array_put_idx(v, j, json_object_new_string(resolved));
                    replace_secret(&resolved);
                }
            }
        }
    }
    return 0;
}

struct json_object *rd_connection_masked(struct json_object *doc)
{
    struct json_object *copy = NULL;
    if (!doc || json_object_deep_copy(doc, &copy, NULL) != 0)
        return NULL;
    for (size_t i = 0; i < NSECRET_FIELDS; i++) {
        struct json_object *sec = get(copy, secret_fields[i].section);
        struct json_object *v = get(sec, secret_fields[i].key);
        if (!v)
            continue;
        if (json_object_is_type(v, json_type_array)) {
            size_t n = json_object_array_length(v);
            for (size_t j = 0; j < n; j++)
                json_object_array_put_idx(v, j, json_object_new_string(MASK));
        } else {
            json_object_object_add(sec, secret_fields[i].key, json_object_new_string(MASK));
        }
    }
    return copy;
}

static const char *const *section_keys(const char *name)
{
    static const struct {
        const char *name;
        const char *const *keys;
    } map[] = {{"personio", personio_keys},
               {"moco", moco_keys},
               {"platform", platform_keys},
               {"alerts", alerts_keys},
               {"policy", policy_keys}};
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(map[i].name, name) == 0)
            return map[i].keys;
    return NULL;
}

/* Adds obj's members to out: the known keys in table order, then the rest. */
static void add_ordered(struct json_object *out, struct json_object *obj, const char *const *keys,
                        bool nested)
{
    for (size_t i = 0; keys[i]; i++) {
        struct json_object *v = get(obj, keys[i]);
        if (!v)
            continue;
        const char *const *sub = nested ? section_keys(keys[i]) : NULL;
        if (sub && json_object_is_type(v, json_type_object)) {
            struct json_object *o = json_object_new_object();
            add_ordered(o, v, sub, false);
            json_object_object_add(out, keys[i], o);
        } else {
            json_object_object_add(out, keys[i], json_object_get(v));
        }
    }
    json_object_object_foreach(obj, k, v)
    {
        if (!in_list(k, keys))
            json_object_object_add(out, k, json_object_get(v));
    }
}

struct json_object *rd_connection_ordered(struct json_object *doc)
{
    if (!doc || !json_object_is_type(doc, json_type_object))
        return json_object_get(doc);
    struct json_object *out = json_object_new_object();
    add_ordered(out, doc, top_keys, true);
    return out;
}

/* Parses text as one JSON value; the message gives the line of a syntax error. */
static struct json_object *parse_doc(const char *text, char *err, size_t errlen)
{
    size_t len = strlen(text);
    struct json_tokener *tok = json_tokener_new();
    struct json_object *doc = json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (!doc || jerr != json_tokener_success) {
        int line = 1;
        for (size_t i = 0; i < end && i < len; i++)
            line += text[i] == '\n';
        fail(err, errlen, NULL, "invalid JSON at line %d: %s", line,
             jerr == json_tokener_continue ? "unexpected end of input"
                                           : json_tokener_error_desc(jerr));
        json_object_put(doc);
        return NULL;
    }
    for (size_t i = end; i < len; i++) {
        if (text[i] != ' ' && text[i] != '\n' && text[i] != '\r' && text[i] != '\t') {
            fail(err, errlen, NULL, "invalid JSON: unexpected text after the document");
            json_object_put(doc);
            return NULL;
        }
    }
    return doc;
}

static int store(PGconn *conn, const char *name, const char *tz, const char *masked,
                 const uint8_t *sealed, size_t sealed_len, bool *created, char *err, size_t errlen)
{
    static const char sql[] =
        "INSERT INTO connections (name, timezone, config, sealed) VALUES ($1, $2, $3::jsonb, $4)"
        " ON CONFLICT (name) DO UPDATE SET timezone = EXCLUDED.timezone,"
        " config = EXCLUDED.config, sealed = EXCLUDED.sealed, updated_at = now()"
        " RETURNING (xmax = 0)";
    const char *values[4] = {name, tz, masked, (const char *)sealed};
    int lengths[4] = {0, 0, 0, (int)sealed_len};
    int formats[4] = {0, 0, 0, 1};
    PGresult *res = PQexecParams(conn, sql, 4, NULL, values, lengths, formats, 0);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        rc = fail(err, errlen, NULL, "cannot store connection: %s",
                  msg ? msg : PQerrorMessage(conn));
    } else {
        *created = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    }
    PQclear(res);
    return rc;
}

int rd_connection_apply(PGconn *conn, const uint8_t key[RD_SECRET_KEY_LEN], const char *json_text,
                        const char *base_dir, bool *created, char *err, size_t errlen)
{
    int rc = -1;
    uint8_t *sealed = NULL;
    size_t sealed_len = 0;
    struct json_object *masked = NULL;
    struct json_object *doc = parse_doc(json_text, err, errlen);
    if (!doc)
        goto done;
    /* Resolve first: the checks (non-empty tokens, decodable whsec_) are about resolved values. */
    if (!json_object_is_type(doc, json_type_object)) {
        fail(err, errlen, NULL, "a connection must be a JSON object");
        goto done;
    }
    if (rd_connection_resolve_secrets(doc, base_dir, err, errlen) != 0 ||
        rd_connection_validate(doc, conn, err, errlen) != 0)
        goto done;
    const char *name = json_object_get_string(get(doc, "name"));
    const char *plain = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN);
    if (rd_aead_seal(key, name, strlen(name), plain, strlen(plain), &sealed, &sealed_len) != 0) {
        fail(err, errlen, NULL, "cannot encrypt the connection");
        goto done;
    }
    masked = rd_connection_masked(doc);
    if (!masked) {
        fail(err, errlen, NULL, "cannot copy the connection");
        goto done;
    }
    rc = store(conn, name, json_object_get_string(get(doc, "timezone")),
               json_object_to_json_string_ext(masked, JSON_C_TO_STRING_PLAIN), sealed, sealed_len,
               created, err, errlen);
done:
    free(sealed);
    json_object_put(masked);
    json_object_put(doc);
    return rc;
}

static char **copy_strings(struct json_object *arr, size_t *n)
{
    *n = 0;
    if (!arr || !json_object_is_type(arr, json_type_array))
        return NULL;
    size_t len = json_object_array_length(arr);
    char **out = rd_calloc(len + 1, sizeof *out);
    for (size_t i = 0; i < len; i++) {
        struct json_object *e = json_object_array_get_idx(arr, i);
        if (is_nonempty_string(e))
            out[(*n)++] = rd_strdup(json_object_get_string(e));
    }
    return out;
}

static void fill_auth(struct rd_source_auth *a, struct json_object *src, const char *tokkey)
{
    a->tokens = copy_strings(get(src, tokkey), &a->ntokens);
    a->sw_secrets = copy_strings(get(src, "standard_webhooks_secrets"), &a->nsw);
}

/*
 * Says which key the row needs and which one rosterd has: after a rotation the
 * operator's question is "which file is missing", never "is the row damaged".
 */
static int open_failure(const uint8_t key[RD_SECRET_KEY_LEN], const char *name,
                        const uint8_t *sealed, size_t sealed_len, char *err, size_t errlen)
{
    char have[2 * RD_KEY_ID_LEN + 1], want[2 * RD_KEY_ID_LEN + 1];
    rd_secret_key_id_hex(key, have);
    int v = rd_aead_key_id_hex(sealed, sealed_len, want);
    if (v == 0 && strcmp(want, have) != 0)
        return fail(err, errlen, NULL,
                    "connection %s: cannot decrypt: sealed under key id %s, secret_key_file has "
                    "key id %s (while rotating keys, set secret_key_previous_file to the other "
                    "key)",
                    name, want, have);
    return fail(err, errlen, NULL,
                "connection %s: cannot decrypt (wrong secret_key_file or damaged row)", name);
}

int rd_connection_open(const uint8_t key[RD_SECRET_KEY_LEN], int64_t id, const char *name,
                       const uint8_t *sealed, size_t sealed_len, struct rd_connection **out,
                       char *err, size_t errlen)
{
    uint8_t *plain = NULL;
    size_t plain_len = 0;
    *out = NULL;
    if (rd_aead_open(key, name, strlen(name), sealed, sealed_len, &plain, &plain_len) != 0)
        return open_failure(key, name, sealed, sealed_len, err, errlen);
    struct json_object *doc = json_tokener_parse((const char *)plain);
    rd_memzero(plain, plain_len);
    free(plain);
    struct json_object *tz = get(doc, "timezone");
    if (!doc || !is_nonempty_string(tz)) {
        json_object_put(doc);
        return fail(err, errlen, NULL, "connection %s: stored document is not valid", name);
    }
    struct rd_connection *c = rd_calloc(1, sizeof *c);
    c->id = id;
    c->name = rd_strdup(name);
    c->timezone = rd_strdup(json_object_get_string(tz));
    c->doc = doc;
    fill_auth(&c->personio, get(doc, "personio"), "webhook_tokens");
    fill_auth(&c->moco, get(doc, "moco"), "webhook_keys");
    *out = c;
    return 0;
}

int rd_connection_load(PGconn *conn, const uint8_t key[RD_SECRET_KEY_LEN], const char *name,
                       struct rd_connection **out, char *err, size_t errlen)
{
    const char *params[1] = {name};
    *out = NULL;
    /* Binary results: sealed arrives as raw bytes, id as its text (text's binary form). */
    PGresult *res = PQexecParams(conn, "SELECT id::text, sealed FROM connections WHERE name = $1",
                                 1, NULL, params, NULL, NULL, 1);
    int rc = -1;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        fail(err, errlen, NULL, "cannot load connection %s: %s", name,
             msg ? msg : PQerrorMessage(conn));
    } else if (PQntuples(res) == 0) {
        fail(err, errlen, NULL, "connection \"%s\" not found", name);
    } else {
        int64_t id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        rc = rd_connection_open(key, id, name, (const uint8_t *)PQgetvalue(res, 0, 1),
                                (size_t)PQgetlength(res, 0, 1), out, err, errlen);
    }
    PQclear(res);
    return rc;
}

static void free_strings(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++) {
        rd_memzero(v[i], strlen(v[i]));
        free(v[i]);
    }
    free(v);
}

void rd_connection_free(struct rd_connection *c)
{
    if (!c)
        return;
    free_strings(c->personio.tokens, c->personio.ntokens);
    free_strings(c->personio.sw_secrets, c->personio.nsw);
    free_strings(c->moco.tokens, c->moco.ntokens);
    free_strings(c->moco.sw_secrets, c->moco.nsw);
    json_object_put(c->doc);
    free(c->name);
    free(c->timezone);
    free(c);
}
