/*
 * The intake's JSON scanner (see jscan.h): one pass over the text, recursive
 * descent bounded by max_depth, no allocation.
 *
 * Grammar: RFC 8259, with one leniency kept from the json-c parse it replaces
 * (JSON_TOKENER_STRICT): raw control characters other than NUL inside strings
 * are accepted, as upstreams that send a literal tab in a note should not see
 * their deliveries refused. Unlike that parse, a lone scalar is a whole text
 * ("1" as well as "1 "), and numbers follow the RFC (no "00", no "1.").
 */
#include "jscan.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rosterd/crypto.h"
#include "rosterd/mem.h"

/* Keys longer than this, decoded, match no path (the paths' keys are short names). */
#define KEY_MAX 64

struct scan {
    const char *p, *end;
    int max_depth;
    const struct rd_jpath *paths;
    size_t npaths;
    struct rd_jspan *out;
};

static void skip_ws(struct scan *sc)
{
    while (sc->p < sc->end && (*sc->p == ' ' || *sc->p == '\n' || *sc->p == '\r' || *sc->p == '\t'))
        sc->p++;
}

/* The code unit of a \u escape's four hex digits, or -1. */
static int hex4(const char *p)
{
    uint8_t b[2];
    size_t n;
    return rd_hex_decode(p, 4, b, sizeof(b), &n) == 0 ? b[0] << 8 | b[1] : -1;
}

/*
 * A string whose opening quote is at sc->p: moves past the closing quote and
 * sets [*s, *s + *n) to what is between the quotes; *escaped when it holds a
 * backslash.
 */
static bool string(struct scan *sc, const char **s, size_t *n, bool *escaped)
{
    const char *p = sc->p + 1;
    *escaped = false;
    for (;;) {
        /* The common run of plain bytes first. */
        while (p < sc->end && *p != '"' && *p != '\\' && *p != '\0')
            p++;
        if (p >= sc->end || *p == '\0')
            return false;
        if (*p == '"')
            break;
        *escaped = true;
        if (sc->end - p < 2)
            return false;
        switch (p[1]) {
        case '"':
        case '\\':
        case '/':
        case 'b':
        case 'f':
        case 'n':
        case 'r':
        case 't':
            p += 2;
            break;
        case 'u':
            if (sc->end - p < 6 || hex4(p + 2) < 0)
                return false;
            p += 6;
            break;
        default:
            return false;
        }
    }
    *s = sc->p + 1;
    *n = (size_t)(p - *s);
    sc->p = p + 1;
    return true;
}

static bool digits(struct scan *sc)
{
    const char *start = sc->p;
    while (sc->p < sc->end && *sc->p >= '0' && *sc->p <= '9')
        sc->p++;
    return sc->p > start;
}

static bool number(struct scan *sc)
{
    if (*sc->p == '-')
        sc->p++;
    if (sc->p >= sc->end)
        return false;
    if (*sc->p == '0')
        sc->p++;
    else if (!digits(sc))
        return false;
    if (sc->p < sc->end && *sc->p == '.') {
        sc->p++;
        if (!digits(sc))
            return false;
    }
    if (sc->p < sc->end && (*sc->p == 'e' || *sc->p == 'E')) {
        sc->p++;
        if (sc->p < sc->end && (*sc->p == '+' || *sc->p == '-'))
            sc->p++;
        if (!digits(sc))
            return false;
    }
    return true;
}

static bool literal(struct scan *sc, const char *word, size_t len)
{
    if ((size_t)(sc->end - sc->p) < len || memcmp(sc->p, word, len) != 0)
        return false;
    sc->p += len;
    return true;
}

/* Decodes escaped string text [s, s + n) into out (cap bytes, no NUL added); length or -1. */
static long decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        uint32_t cp;
        if (c != '\\') {
            if (o >= cap)
                return -1;
            out[o++] = (char)c;
            i++;
            continue;
        }
        char e = s[i + 1];
        i += 2;
        switch (e) {
        case 'b':
            cp = '\b';
            break;
        case 'f':
            cp = '\f';
            break;
        case 'n':
            cp = '\n';
            break;
        case 'r':
            cp = '\r';
            break;
        case 't':
            cp = '\t';
            break;
        case 'u':
            cp = (uint32_t)hex4(s + i);
            i += 4;
            if (cp >= 0xd800 && cp <= 0xdbff && i + 6 <= n && s[i] == '\\' && s[i + 1] == 'u') {
                int lo = hex4(s + i + 2);
                if (lo >= 0xdc00 && lo <= 0xdfff) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t)lo - 0xdc00);
                    i += 6;
                }
            }
            /* A surrogate left unpaired becomes U+FFFD, as json-c makes it. */
            if (cp >= 0xd800 && cp <= 0xdfff)
                cp = 0xfffd;
            break;
        default: /* '"', '\\', '/' */
            cp = (unsigned char)e;
            break;
        }
        unsigned char u[4];
        size_t k;
        if (cp < 0x80) {
            u[0] = (unsigned char)cp;
            k = 1;
        } else if (cp < 0x800) {
            u[0] = (unsigned char)(0xc0 | (cp >> 6));
            u[1] = (unsigned char)(0x80 | (cp & 0x3f));
            k = 2;
        } else if (cp < 0x10000) {
            u[0] = (unsigned char)(0xe0 | (cp >> 12));
            u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
            u[2] = (unsigned char)(0x80 | (cp & 0x3f));
            k = 3;
        } else {
            u[0] = (unsigned char)(0xf0 | (cp >> 18));
            u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
            u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
            u[3] = (unsigned char)(0x80 | (cp & 0x3f));
            k = 4;
        }
        if (o + k > cap)
            return -1;
        memcpy(out + o, u, k);
        o += k;
    }
    return (long)o;
}

static bool key_is(const char *want, const char *k, size_t kn, bool escaped)
{
    size_t wn = strlen(want);
    if (!escaped)
        return kn == wn && memcmp(k, want, wn) == 0;
    char buf[KEY_MAX];
    long dn = decode(k, kn, buf, sizeof(buf));
    return dn == (long)wn && memcmp(buf, want, wn) == 0;
}

/*
 * One value at sc->p (whitespace skipped). mask: the paths whose first level
 * keys led here; *type gets what the value is.
 */
static bool value(struct scan *sc, int depth, uint32_t mask, size_t level, enum rd_jtype *type)
{
    if (sc->p >= sc->end)
        return false;
    switch (*sc->p) {
    case '{': {
        *type = RD_J_OBJECT;
        if (depth >= sc->max_depth)
            return false;
        sc->p++;
        skip_ws(sc);
        if (sc->p < sc->end && *sc->p == '}') {
            sc->p++;
            return true;
        }
        for (;;) {
            const char *k;
            size_t kn;
            bool esc;
            if (sc->p >= sc->end || *sc->p != '"' || !string(sc, &k, &kn, &esc))
                return false;
            skip_ws(sc);
            if (sc->p >= sc->end || *sc->p != ':')
                return false;
            sc->p++;
            skip_ws(sc);
            uint32_t sub = 0, here = 0;
            for (size_t i = 0; mask && i < sc->npaths; i++) {
                if (!(mask & (1u << i)) || !key_is(sc->paths[i].key[level], k, kn, esc))
                    continue;
                /* The last of a repeated key counts: forget what the earlier one held. */
                sc->out[i].type = RD_J_NONE;
                if (sc->paths[i].depth == level + 1)
                    here |= 1u << i;
                else
                    sub |= 1u << i;
            }
            const char *start = sc->p;
            enum rd_jtype t;
            if (!value(sc, depth + 1, sub, level + 1, &t))
                return false;
            for (size_t i = 0; here && i < sc->npaths; i++)
                if (here & (1u << i)) {
                    struct rd_jspan *o = &sc->out[i];
                    o->type = t;
                    o->p = t == RD_J_STRING ? start + 1 : start;
                    o->n = (size_t)(sc->p - start) - (t == RD_J_STRING ? 2 : 0);
                }
            skip_ws(sc);
            if (sc->p < sc->end && *sc->p == ',') {
                sc->p++;
                skip_ws(sc);
                continue;
            }
            if (sc->p < sc->end && *sc->p == '}') {
                sc->p++;
                return true;
            }
            return false;
        }
    }
    case '[': {
        *type = RD_J_ARRAY;
        if (depth >= sc->max_depth)
            return false;
        sc->p++;
        skip_ws(sc);
        if (sc->p < sc->end && *sc->p == ']') {
            sc->p++;
            return true;
        }
        for (;;) {
            enum rd_jtype t;
            if (!value(sc, depth + 1, 0, level + 1, &t))
                return false;
            skip_ws(sc);
            if (sc->p < sc->end && *sc->p == ',') {
                sc->p++;
                skip_ws(sc);
                continue;
            }
            if (sc->p < sc->end && *sc->p == ']') {
                sc->p++;
                return true;
            }
            return false;
        }
    }
    case '"': {
        const char *s;
        size_t n;
        bool esc;
        *type = RD_J_STRING;
        return string(sc, &s, &n, &esc);
    }
    case 't':
        *type = RD_J_TRUE;
        return literal(sc, "true", 4);
    case 'f':
        *type = RD_J_FALSE;
        return literal(sc, "false", 5);
    case 'n':
        *type = RD_J_NULL;
        return literal(sc, "null", 4);
    default:
        *type = RD_J_NUMBER;
        return (*sc->p == '-' || (*sc->p >= '0' && *sc->p <= '9')) && number(sc);
    }
}

bool rd_jscan(const char *s, size_t n, int max_depth, const struct rd_jpath *paths, size_t npaths,
              struct rd_jspan *out)
{
    uint32_t mask = 0;
    if (npaths > RD_JSCAN_PATHS_MAX)
        return false;
    for (size_t i = 0; i < npaths; i++) {
        out[i] = (struct rd_jspan){RD_J_NONE, NULL, 0};
        if (paths[i].depth > 0 && paths[i].depth <= RD_JPATH_MAX)
            mask |= 1u << i;
    }
    struct scan sc = {s, s + n, max_depth, paths, npaths, out};
    enum rd_jtype t;
    skip_ws(&sc);
    if (!value(&sc, 0, mask, 0, &t))
        goto bad;
    skip_ws(&sc);
    if (sc.p == sc.end)
        return true;
bad:
    for (size_t i = 0; i < npaths; i++)
        out[i].type = RD_J_NONE;
    return false;
}

char *rd_jspan_text(const struct rd_jspan *sp, size_t max_len)
{
    if (sp->type != RD_J_STRING)
        return NULL;
    /* Decoding never makes text longer than its escaped form. */
    char *t = rd_malloc(sp->n + 1);
    long dn = decode(sp->p, sp->n, t, sp->n);
    t[dn < 0 ? 0 : dn] = '\0';
    size_t len = strlen(t);
    if (len == 0 || len > max_len) {
        free(t);
        return NULL;
    }
    return t;
}

bool rd_jspan_int64(const struct rd_jspan *sp, long long *v)
{
    if (sp->type != RD_J_NUMBER || sp->n == 0 || sp->n > 20 || memchr(sp->p, '.', sp->n) ||
        memchr(sp->p, 'e', sp->n) || memchr(sp->p, 'E', sp->n))
        return false;
    char buf[24];
    memcpy(buf, sp->p, sp->n);
    buf[sp->n] = '\0';
    errno = 0;
    char *end;
    long long x = strtoll(buf, &end, 10);
    if (errno == ERANGE || *end != '\0')
        return false;
    *v = x;
    return true;
}
