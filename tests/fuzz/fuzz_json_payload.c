/*
 * Fuzzes webhook body parsing with json-c the way the intake does it: a
 * strict, UTF-8 validating, length-bounded parse of the whole body, then the
 * person id lookup (payload.person.id, payload.person_id, payload.id) and
 * MOCO's user.id. Self-contained so it does not depend on the intake code.
 */
#include <json-c/json.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The intake's max_body_bytes is far below this; larger inputs are refused. */
#define MAX_BODY (1u << 20)
#define MAX_DEPTH 32
#define MAX_ID_LEN 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_object *get(json_object *o, const char *key)
{
    json_object *v = NULL;
    if (!o || !json_object_is_type(o, json_type_object))
        return NULL;
    return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

/* Ids come as numbers or strings; anything else counts as absent. */
static int id_to_text(json_object *v, char *out, size_t outlen)
{
    if (!v)
        return -1;
    if (json_object_is_type(v, json_type_int)) {
        snprintf(out, outlen, "%" PRId64, json_object_get_int64(v));
        return 0;
    }
    if (json_object_is_type(v, json_type_string)) {
        int n = json_object_get_string_len(v);
        const char *s = json_object_get_string(v);
        if (n <= 0 || (size_t)n >= outlen || (size_t)n >= MAX_ID_LEN || memchr(s, '\0', (size_t)n))
            return -1;
        memcpy(out, s, (size_t)n);
        out[n] = '\0';
        return 0;
    }
    return -1;
}

static void walk(json_object *root)
{
    char id[MAX_ID_LEN + 32];
    json_object *payload = get(root, "payload");
    int found = id_to_text(get(get(payload, "person"), "id"), id, sizeof id) == 0 ||
                id_to_text(get(payload, "person_id"), id, sizeof id) == 0 ||
                id_to_text(get(payload, "id"), id, sizeof id) == 0;
    if (found && strlen(id) == 0)
        abort();
    (void)id_to_text(get(get(root, "user"), "id"), id, sizeof id);
    (void)id_to_text(get(root, "id"), id, sizeof id);

    json_object *name = get(root, "event_name");
    if (name && json_object_is_type(name, json_type_string))
        (void)json_object_get_string(name);

    /* What is stored for replay must parse again. */
    const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
    if (!text)
        abort();
    json_object *again = json_tokener_parse(text);
    if (!again) {
        fprintf(stderr, "re-serialised JSON does not parse: %s\n", text);
        abort();
    }
    json_object_put(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_BODY)
        return 0;
    json_tokener *tok = json_tokener_new_ex(MAX_DEPTH);
    if (!tok)
        abort();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *root = json_tokener_parse_ex(tok, (const char *)data, (int)size);
    /* Incomplete input (json_tokener_continue) or trailing bytes are errors too. */
    if (root && json_tokener_get_error(tok) == json_tokener_success &&
        json_tokener_get_parse_end(tok) == size && json_object_is_type(root, json_type_object))
        walk(root);
    json_object_put(root);
    json_tokener_free(tok);
    return 0;
}
