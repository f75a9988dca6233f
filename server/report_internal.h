/*
 * Private to the report renderers (report_text.c, report_html.c): typed reads of a
 * report's JSON members that tolerate a missing or mistyped member.
 */
#ifndef ROSTERD_REPORT_INTERNAL_H
#define ROSTERD_REPORT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <json-c/json.h>

/* o[k] as a string, NULL when absent or not a string. Borrowed. */
static inline const char *str(struct json_object *o, const char *k)
{
    struct json_object *v = NULL;
    return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v)
               : NULL;
}

/* o[k] as an integer, def when absent or null. */
static inline int64_t num(struct json_object *o, const char *k, int64_t def)
{
    struct json_object *v = NULL;
    return json_object_object_get_ex(o, k, &v) && v ? json_object_get_int64(v) : def;
}

/* o[k] as a boolean, false when absent. */
static inline bool flag(struct json_object *o, const char *k)
{
    struct json_object *v = NULL;
    return json_object_object_get_ex(o, k, &v) && json_object_get_boolean(v);
}

#endif
