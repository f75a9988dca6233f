/*
 * libFuzzer target for the intake's JSON payload extractors (server/intake.c,
 * rd_intake_describe, over server/jscan.c): the UTF-8 validating, depth-limited
 * scan of a verified body, the event name (Personio) or X-Moco-Target/-Event
 * (MOCO), and the subject lookups (payload.person.id, payload.person_id,
 * payload.id; user.id, or id for a User). Input: first byte's low bit picks
 * MOCO; for MOCO the next two lines are the target and event headers; the rest
 * is the body.
 *
 * Differential: the oracle below is the json-c parse the scanner replaced (a
 * strict tokener, a tree, lookups in it). Both must accept and refuse the same
 * bodies and find the same event type and subject, except where the scanner
 * follows RFC 8259 and json-c did not (a lone scalar without trailing space,
 * numbers such as "00" or "1."), and at the depth limit, where json-c counts an
 * object's member as one level more. And whatever is accepted must parse again
 * with json-c as the handlers parse it.
 */
#include <json-c/json.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intake_internal.h"
#include "rosterd/jsonx.h"
#include "rosterd/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The intake's max_body_bytes is at most 64 MiB; fuzz inputs stay far smaller. */
#define MAX_BODY (1u << 20)
/* Same depth as the intake's tokener (json_tokener_new_ex(64)). */
#define MAX_DEPTH 64

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "property violated: %s\n", what);
        abort();
    }
}

static bool name_chars(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-' || *s == ':'))
            return false;
    return true;
}

/* Splits off one '\n'-terminated line as a new string; NULL when there is none. */
static char *take_line(const uint8_t **p, size_t *n)
{
    const uint8_t *nl = memchr(*p, '\n', *n);
    if (!nl)
        return NULL;
    char *line = rd_strndup((const char *)*p, (size_t)(nl - *p));
    *n -= (size_t)(nl - *p) + 1;
    *p = nl + 1;
    return line;
}

/* ---- the oracle: the intake's describe step as it was with json-c ------------- */

#define NAME_MAX_LEN 200

static char *oracle_scalar(struct json_object *o)
{
    if (!o)
        return NULL;
    if (json_object_get_type(o) == json_type_int) {
        char num[24];
        snprintf(num, sizeof(num), "%lld", (long long)json_object_get_int64(o));
        return rd_strdup(num);
    }
    if (json_object_get_type(o) == json_type_string) {
        size_t n = strlen(json_object_get_string(o));
        return n > 0 && n <= NAME_MAX_LEN ? rd_strdup(json_object_get_string(o)) : NULL;
    }
    return NULL;
}

static struct json_object *oracle_get(struct json_object *o, const char *a, const char *b)
{
    struct json_object *x = NULL, *y = NULL;
    if (!json_object_object_get_ex(o, a, &x))
        return NULL;
    if (!b)
        return x;
    if (json_object_get_type(x) != json_type_object || !json_object_object_get_ex(x, b, &y))
        return NULL;
    return y;
}

/* The strict parse of the whole text, trailing whitespace allowed. */
static struct json_object *oracle_parse(struct json_tokener *tok, const char *body, size_t len)
{
    if (len == 0 || !rd_utf8_valid(body, len))
        return NULL;
    json_tokener_reset(tok);
    struct json_object *o = json_tokener_parse_ex(tok, body, (int)len);
    if (!o || json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(o);
        return NULL;
    }
    size_t end = json_tokener_get_parse_end(tok);
    while (end < len && strchr(" \n\r\t", body[end]))
        end++;
    if (end != len) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

/* False: not JSON. Else *type and *subject as the json-c intake found them (NULL type: 400). */
static bool oracle(struct json_tokener *tok, const char *body, size_t len, bool moco,
                   const char *target, const char *event, char **type, char **subject)
{
    *type = *subject = NULL;
    struct json_object *root = oracle_parse(tok, body, len);
    if (!root)
        return false;
    if (moco) {
        if (target && event && *target && *event && name_chars(target) && name_chars(event) &&
            strlen(target) <= NAME_MAX_LEN && strlen(event) <= NAME_MAX_LEN) {
            *type = rd_asprintf("%s.%s", target, event);
            *subject = oracle_scalar(strcmp(target, "User") == 0 ? oracle_get(root, "id", NULL)
                                                                 : oracle_get(root, "user", "id"));
        }
    } else {
        struct json_object *en = NULL;
        if (json_object_get_type(root) == json_type_object &&
            (json_object_object_get_ex(root, "event_name", &en) ||
             json_object_object_get_ex(root, "type", &en)) &&
            json_object_get_type(en) == json_type_string) {
            const char *s = json_object_get_string(en);
            if (*s && strlen(s) <= NAME_MAX_LEN && name_chars(s)) {
                *type = rd_strdup(s);
                struct json_object *pl = oracle_get(root, "payload", NULL);
                if (pl && json_object_get_type(pl) == json_type_object) {
                    *subject = oracle_scalar(oracle_get(pl, "person", "id"));
                    if (!*subject)
                        *subject = oracle_scalar(oracle_get(pl, "person_id", NULL));
                    if (!*subject)
                        *subject = oracle_scalar(oracle_get(pl, "id", NULL));
                }
            }
        }
    }
    json_object_put(root);
    return true;
}

/*
 * What the known differences depend on, read outside strings: the deepest
 * nesting, whether a number breaks RFC 8259's form (json-c took "00", "-01",
 * "1."), whether the text is a lone scalar, and whether an integer needs more
 * than 64 bits (json-c clamped it; the scanner finds no subject there).
 */
struct shape {
    int depth;
    bool lax_number, lone_scalar, big_int;
};

static bool rfc_number(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && s[i] == '-')
        i++;
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    else
        return false;
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return false;
    }
    return i == n;
}

static struct shape shape_of(const char *s, size_t n)
{
    struct shape sh = {0};
    int depth = 0;
    size_t first = n;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (first == n && !strchr(" \n\r\t", c))
            first = i;
        if (c == '"') {
            for (i++; i < n && s[i] != '"'; i++)
                if (s[i] == '\\')
                    i++;
        } else if (c == '[' || c == '{') {
            if (++depth > sh.depth)
                sh.depth = depth;
        } else if (c == ']' || c == '}') {
            depth--;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t j = i;
            while (j < n && strchr("0123456789+-.eE", s[j]))
                j++;
            if (!rfc_number(s + i, j - i))
                sh.lax_number = true;
            else if (!memchr(s + i, '.', j - i) && !memchr(s + i, 'e', j - i) &&
                     !memchr(s + i, 'E', j - i) && j - i >= 19)
                sh.big_int = true;
            i = j - 1;
        }
    }
    sh.lone_scalar = first < n && s[first] != '[' && s[first] != '{';
    return sh;
}

static bool same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > MAX_BODY)
        return 0;
    /*
     * A fresh tokener per input: json-c 0.16's json_tokener_reset() keeps a high
     * surrogate pending from a text cut off right after it, and the next text's
     * "\ude00" then decodes as U+1F600 (the intake reused one tokener per loop
     * before the scanner: one request could change the next one's subject).
     */
    struct json_tokener *tok = json_tokener_new_ex(MAX_DEPTH);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    bool moco = data[0] & 1;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    char *target = moco ? take_line(&p, &n) : NULL;
    char *event = moco && target ? take_line(&p, &n) : NULL;

    struct rd_pending *pd = rd_calloc(1, sizeof(*pd));
    pd->body = rd_malloc(n + 1); /* the intake copies the body and NUL-terminates it */
    memcpy(pd->body, p, n);
    pd->body[n] = '\0';
    pd->body_len = n;
    const char *bad = rd_intake_describe(pd, moco, target, event);
    bool not_json = bad && strcmp(bad, "body is not valid JSON") == 0;
    if (bad) {
        check(*bad != '\0', "a refusal has a message");
        check(pd->event_type == NULL, "no event type on a refusal");
    } else {
        check(pd->event_type && *pd->event_type, "an accepted body has an event type");
        check(strlen(pd->event_type) <= 2 * 200 + 1, "event type is bounded");
        check(name_chars(pd->event_type), "event type has only name characters");
        if (pd->subject)
            check(*pd->subject && strlen(pd->subject) <= 200, "subject is bounded");
    }
    if (!not_json) {
        /* What the intake stores, the handlers parse (json_tokener_parse: not strict). */
        char *spaced = rd_asprintf("%s ", pd->body);
        struct json_tokener *t2 = json_tokener_new_ex(MAX_DEPTH + 1);
        struct json_object *again = json_tokener_parse_ex(t2, spaced, (int)pd->body_len + 1);
        check(json_tokener_get_error(t2) == json_tokener_success,
              "accepted body parses with json-c"); /* again is NULL for a lone null */
        json_object_put(again);
        json_tokener_free(t2);
        free(spaced);
    }

    char *otype, *osubject;
    bool ojson = oracle(tok, pd->body, pd->body_len, moco, target, event, &otype, &osubject);
    struct shape sh = shape_of(pd->body, pd->body_len);
    if (sh.depth < MAX_DEPTH - 1 && !sh.lax_number && !sh.lone_scalar) {
        check(ojson == !not_json, "scanner and json-c agree on what is JSON");
        if (ojson) {
            check(same(otype, pd->event_type), "same event type as json-c");
            if (!sh.big_int)
                check(same(osubject, pd->subject), "same subject as json-c");
        }
    }
    free(otype);
    free(osubject);
    json_tokener_free(tok);
    rd_pending_free(pd);
    free(target);
    free(event);
    return 0;
}
