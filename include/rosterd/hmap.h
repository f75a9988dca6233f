/*
 * A small hash map from byte-string keys to integer values (open addressing,
 * keys copied). The caches of a run over 10,000 people index their lists with it
 * (by id, by e-mail) so every lookup is O(1) instead of a scan of the list.
 *
 * Not thread-safe: a map belongs to one context. Values are uintptr_t: an index
 * into the caller's array, or a pointer.
 */
#ifndef ROSTERD_HMAP_H
#define ROSTERD_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rd_hmap;

/* A new, empty map; free with rd_hmap_free. */
struct rd_hmap *rd_hmap_new(void);
/* Frees the map and its copies of the keys. Accepts NULL. */
void rd_hmap_free(struct rd_hmap *m);
size_t rd_hmap_count(const struct rd_hmap *m);

/* Sets key to value (replacing an earlier value); the key is copied. */
void rd_hmap_put(struct rd_hmap *m, const void *key, size_t klen, uintptr_t value);
/* True with *value set when key is present. */
bool rd_hmap_get(const struct rd_hmap *m, const void *key, size_t klen, uintptr_t *value);
/* Removes key; true when it was present. */
bool rd_hmap_del(struct rd_hmap *m, const void *key, size_t klen);

/* Conveniences: 64-bit integer keys, and strings compared case-insensitively (ASCII). */
void rd_hmap_put_i64(struct rd_hmap *m, int64_t key, uintptr_t value);
bool rd_hmap_get_i64(const struct rd_hmap *m, int64_t key, uintptr_t *value);
bool rd_hmap_del_i64(struct rd_hmap *m, int64_t key);
void rd_hmap_put_ci(struct rd_hmap *m, const char *key, uintptr_t value);
bool rd_hmap_get_ci(const struct rd_hmap *m, const char *key, uintptr_t *value);
bool rd_hmap_del_ci(struct rd_hmap *m, const char *key);

#endif
