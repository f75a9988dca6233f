/*
 * Small json-c helpers shared by the upstream clients: member access that
 * tolerates a non-object, and a printable excerpt of a body that is not the
 * JSON an API promised (for error messages).
 */
#ifndef ROSTERD_JSONX_H
#define ROSTERD_JSONX_H

#include <stdbool.h>
#include <stddef.h>

struct json_object;

/* How deep the intake lets objects and arrays nest (deeper is refused as not JSON). */
#define RD_JSON_MAX_DEPTH 64

/*
 * Parses a stored body (an event's, a job's payload) with the intake's nesting
 * limit: whatever the intake accepted parses here too (json_tokener_parse stops at
 * json-c's default of 32). New object or NULL when text is not JSON.
 */
struct json_object *rd_json_parse_stored(const char *text);

/* o[k] when o is an object that has k, else NULL. Borrows. */
struct json_object *rd_json_get(struct json_object *o, const char *k);

/* At most 160 bytes of body into out, control and non-ASCII bytes as spaces. */
void rd_json_excerpt(const char *body, size_t len, char *out, size_t outlen);

/*
 * True when s[0..n) is well-formed UTF-8 as Postgres accepts it in a UTF8
 * database (RFC 3629: shortest forms only, no surrogates, nothing above
 * U+10FFFF) and holds no NUL byte. json-c's own check lets overlong forms pass.
 */
bool rd_utf8_valid(const char *s, size_t n);

#endif
