/*
 * libFuzzer target for the connection document validator (server/connection.c)
 * as `rosterctl connection apply` runs it, minus the database: parse, validate,
 * mask, order, seal and open. Besides crashes it checks that a refusal names a
 * field or the document and never quotes a secret, that masking leaves no
 * secret value, and that a valid document survives sealing unchanged.
 */
#include <json-c/json.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rosterd/connection.h"
#include "rosterd/crypto.h"
#include "rosterd/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_DOC (256u * 1024u)

/* The secret fields of DESIGN.md §4, as connection.c lists them. */
static const char *const secret_fields[][2] = {
    {"personio", "client_secret"},
    {"personio", "webhook_tokens"},
    {"personio", "standard_webhooks_secrets"},
    {"moco", "api_key"},
    {"moco", "webhook_keys"},
    {"moco", "standard_webhooks_secrets"},
    {"platform", "token"},
    {"alerts", "slack_webhook_url"},
};
#define NFIELDS (sizeof secret_fields / sizeof secret_fields[0])

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "property violated: %s\n", what);
        abort();
    }
}

static struct json_object *field(struct json_object *doc, size_t i)
{
    struct json_object *sec = NULL, *v = NULL;
    if (!json_object_object_get_ex(doc, secret_fields[i][0], &sec) ||
        !json_object_object_get_ex(sec, secret_fields[i][1], &v))
        return NULL;
    return v;
}

/* Calls fn for every string in a secret field (a string or a list of strings). */
static void each_secret(struct json_object *doc, void (*fn)(const char *, void *), void *arg)
{
    for (size_t i = 0; i < NFIELDS; i++) {
        struct json_object *v = field(doc, i);
        if (json_object_is_type(v, json_type_string)) {
            fn(json_object_get_string(v), arg);
        } else if (json_object_is_type(v, json_type_array)) {
            for (size_t j = 0; j < json_object_array_length(v); j++) {
                struct json_object *e = json_object_array_get_idx(v, j);
                if (json_object_is_type(e, json_type_string))
                    fn(json_object_get_string(e), arg);
            }
        }
    }
}

struct quote_check {
    const char *text;   /* must not quote a secret */
    const char *public; /* the document with secrets masked: what may be quoted */
};

/*
 * Secrets long enough to be told apart from ordinary words must not appear in
 * the text. Short ones ("a") occur in any message by chance, and a secret that
 * is also a non-secret value (or a key) of the document may be quoted as that.
 */
static void not_in(const char *secret, void *arg)
{
    const struct quote_check *q = arg;
    if (strlen(secret) >= 12 && !strstr(q->public, secret))
        check(strstr(q->text, secret) == NULL, "secret quoted in output");
}

static void masked_only(struct json_object *masked)
{
    for (size_t i = 0; i < NFIELDS; i++) {
        struct json_object *v = field(masked, i);
        if (json_object_is_type(v, json_type_array)) {
            for (size_t j = 0; j < json_object_array_length(v); j++)
                check(strcmp(json_object_get_string(json_object_array_get_idx(v, j)), "********") ==
                          0,
                      "list secret masked");
        } else if (v) {
            check(strcmp(json_object_get_string(v), "********") == 0, "secret masked");
        }
    }
}

static void sealed_round_trip(struct json_object *doc)
{
    static const uint8_t key[RD_SECRET_KEY_LEN] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    struct json_object *name = NULL;
    check(json_object_object_get_ex(doc, "name", &name), "valid document has a name");
    const char *n = json_object_get_string(name);
    const char *plain = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PLAIN);
    uint8_t *sealed = NULL;
    size_t slen = 0;
    check(rd_aead_seal(key, n, strlen(n), plain, strlen(plain), &sealed, &slen) == 0, "seal");
    struct rd_connection *c = NULL;
    char err[512];
    check(rd_connection_open(key, 7, n, sealed, slen, &c, err, sizeof err) == 0, "open");
    check(json_object_equal(c->doc, doc), "document survives sealing");
    check(strcmp(c->name, n) == 0 && c->id == 7, "name and id kept");
    rd_connection_free(c);
    free(sealed);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_DOC)
        return 0;
    char *text = rd_strndup((const char *)data, size);
    struct json_tokener *tok = json_tokener_new();
    struct json_object *doc = json_tokener_parse_ex(tok, text, (int)strlen(text));
    if (json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(doc);
        doc = NULL;
    }
    json_tokener_free(tok);
    if (doc) {
        char err[512] = "";
        struct json_object *masked = rd_connection_masked(doc);
        if (rd_connection_validate(doc, NULL, err, sizeof err) != 0) {
            check(err[0] != '\0', "a refusal has a message");
            struct quote_check q = {
                err, masked ? json_object_to_json_string_ext(masked, JSON_C_TO_STRING_NOSLASHESCAPE)
                            : ""};
            each_secret(doc, not_in, &q);
            json_object_put(masked);
        } else {
            check(masked != NULL, "masked copy");
            masked_only(masked);
            struct json_object *ordered = rd_connection_ordered(masked);
            check(json_object_object_length(ordered) == json_object_object_length(masked),
                  "ordering keeps every key");
            json_object_put(ordered);
            json_object_put(masked);
            sealed_round_trip(doc);
        }
        json_object_put(doc);
    }
    free(text);
    return 0;
}
