/*
 * json-c helpers shared by the upstream clients (see include/rosterd/jsonx.h).
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

void rd_json_excerpt(const char *body, size_t len, char *out, size_t outlen)
{
    size_t j = 0;
    if (outlen == 0)
        return;
    for (size_t i = 0; body && i < len && j + 1 < outlen && j < EXCERPT_MAX; i++)
        out[j++] = (body[i] >= 0x20 && body[i] < 0x7f) ? body[i] : ' ';
    out[j] = '\0';
}
