/*
 * libFuzzer target for the intake's JSON payload extractors (server/intake.c,
 * rd_intake_describe): the strict, UTF-8 validating, depth-limited parse of a
 * verified body, the event name (Personio) or X-Moco-Target/-Event (MOCO), and
 * the subject lookups (payload.person.id, payload.person_id, payload.id;
 * user.id, or id for a User). Input: first byte's low bit picks MOCO; for MOCO
 * the next two lines are the target and event headers; the rest is the body.
 */
#include <json-c/json.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intake_internal.h"
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct json_tokener *tok;
    if (size < 1 || size > MAX_BODY)
        return 0;
    if (!tok) {
        /* One tokener for every input, reset per parse, exactly as on the intake's loop. */
        tok = json_tokener_new_ex(MAX_DEPTH);
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    }
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
    const char *bad = rd_intake_describe(tok, pd, moco, target, event);
    if (bad) {
        check(*bad != '\0', "a refusal has a message");
        check(pd->event_type == NULL, "no event type on a refusal");
    } else {
        check(pd->event_type && *pd->event_type, "an accepted body has an event type");
        check(strlen(pd->event_type) <= 2 * 200 + 1, "event type is bounded");
        check(name_chars(pd->event_type), "event type has only name characters");
        if (pd->subject)
            check(*pd->subject && strlen(pd->subject) <= 200, "subject is bounded");
        /* An accepted body is one strict JSON value: it parses again on its own. */
        struct json_tokener *t2 = json_tokener_new_ex(MAX_DEPTH);
        struct json_object *again = json_tokener_parse_ex(t2, pd->body, (int)pd->body_len);
        check(again != NULL, "accepted body parses");
        json_object_put(again);
        json_tokener_free(t2);
    }
    rd_pending_free(pd);
    free(target);
    free(event);
    return 0;
}
