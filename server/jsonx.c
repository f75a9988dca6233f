/*
 * json-c helpers shared by the upstream clients (see include/rosterd/jsonx.h),
 * and the UTF-8 check the intake runs before a body may reach Postgres.
 */
#include "rosterd/jsonx.h"

#include <json-c/json.h>

#define EXCERPT_MAX 160

struct json_object *rd_json_get(struct json_object *o, const char *k)
{
    struct json_object *v = NULL;
    if (o && json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, k, &v))
        return v;
    return NULL;
}

struct json_object *rd_json_parse_stored(const char *text)
{
    if (!text)
        return NULL;
    /* a level more than the intake's: json-c counts the value itself as one */
    struct json_tokener *tok = json_tokener_new_ex(RD_JSON_MAX_DEPTH + 1);
    if (!tok)
        return NULL;
    struct json_object *o = json_tokener_parse_ex(tok, text, -1);
    if (json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

void rd_json_excerpt(const char *body, size_t len, char *out, size_t outlen)
{
    size_t j = 0;
    if (outlen == 0)
        return;
    for (size_t i = 0; body && i < len && j + 1 < outlen && j < EXCERPT_MAX; i++)
        out[j++] = (body[i] >= 0x20 && body[i] < 0x7f) ? body[i] : ' ';
    out[j] = '\0';
}

/* Length of the sequence that lead byte c starts (0: not a lead byte), and its smallest second
 * byte. */
static size_t utf8_seq(unsigned char c, unsigned char *lo, unsigned char *hi)
{
    *lo = 0x80;
    *hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        return 2;
    if (c >= 0xe0 && c <= 0xef) {
        if (c == 0xe0)
            *lo = 0xa0; /* below: an overlong form of a 2-byte character */
        if (c == 0xed)
            *hi = 0x9f; /* above: a UTF-16 surrogate */
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (c == 0xf0)
            *lo = 0x90;
        if (c == 0xf4)
            *hi = 0x8f; /* above: beyond U+10FFFF */
        return 4;
    }
    return 0; /* a continuation byte, 0xc0/0xc1 (overlong) or 0xf5 and up */
}

bool rd_utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        unsigned char lo, hi;
        size_t len = utf8_seq(c, &lo, &hi);
        if (len == 0 || n - i < len || p[i + 1] < lo || p[i + 1] > hi)
            return false;
        for (size_t k = 2; k < len; k++)
            if (p[i + k] < 0x80 || p[i + k] > 0xbf)
                return false;
        i += len;
    }
    return true;
}
