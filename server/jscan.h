/*
 * A validating JSON scanner that builds nothing (server/jscan.c).
 *
 * The intake must refuse a body that is not one JSON value, but it needs only
 * two or three fields of it: the event name and the subject. Building a json-c
 * tree for that cost ~9 % of the intake's CPU (allocations per member), so the
 * intake scans the body once, checks RFC 8259's grammar, and keeps where the
 * values at a few key paths are, without copying or allocating.
 */
#ifndef ROSTERD_JSCAN_H
#define ROSTERD_JSCAN_H

#include <stdbool.h>
#include <stddef.h>

enum rd_jtype {
    RD_J_NONE = 0, /* no value at that path */
    RD_J_OBJECT,
    RD_J_ARRAY,
    RD_J_STRING,
    RD_J_NUMBER,
    RD_J_TRUE,
    RD_J_FALSE,
    RD_J_NULL,
};

/* Where one value is in the text: a string's span is between its quotes (still escaped). */
struct rd_jspan {
    enum rd_jtype type;
    const char *p;
    size_t n;
};

#define RD_JPATH_MAX 3

/* A path of object keys from the root, e.g. {"payload", "person", "id"}. */
struct rd_jpath {
    const char *key[RD_JPATH_MAX];
    size_t depth;
};

/* At most this many paths per scan. */
#define RD_JSCAN_PATHS_MAX 8

/*
 * True when s[0..n) is exactly one JSON value (RFC 8259), whitespace around it
 * allowed, with objects and arrays nested at most max_depth deep. Then out[i]
 * describes the value at paths[i], as json-c would find it: for a key given
 * twice the last one counts (and replaces what was under the first), and a
 * path through anything but an object finds nothing. Keys are compared after
 * their escapes are decoded. Bytes are not checked as UTF-8 (rd_utf8_valid).
 */
bool rd_jscan(const char *s, size_t n, int max_depth, const struct rd_jpath *paths, size_t npaths,
              struct rd_jspan *out);

/*
 * The decoded text of a string value, as a new NUL-terminated string, cut at
 * its first NUL (\u0000) as a C string would be; NULL when sp is not a string
 * or the cut text is empty or longer than max_len bytes.
 */
char *rd_jspan_text(const struct rd_jspan *sp, size_t max_len);

/* An integer value (no fraction or exponent) that fits in 64 bits, into *v. */
bool rd_jspan_int64(const struct rd_jspan *sp, long long *v);

#endif
