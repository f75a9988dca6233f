/*
 * Open-addressing hash map (include/rosterd/hmap.h): FNV-1a over the key bytes,
 * linear probing, tombstones on delete, doubling at 70 % load. Keys are copied
 * into their own allocations so callers may pass stack buffers.
 */
#include "rosterd/hmap.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "rosterd/mem.h"

struct slot {
    char *key; /* NULL: empty; TOMBSTONE: deleted */
    size_t klen;
    uint64_t hash;
    uintptr_t value;
};

struct rd_hmap {
    struct slot *slots;
    size_t cap;   /* a power of two */
    size_t count; /* live keys */
    size_t used;  /* live keys and tombstones */
};

static char tombstone_mark;
#define TOMBSTONE (&tombstone_mark)

static uint64_t fnv1a(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

struct rd_hmap *rd_hmap_new(void)
{
    struct rd_hmap *m = rd_calloc(1, sizeof(*m));
    m->cap = 16;
    m->slots = rd_calloc(m->cap, sizeof(*m->slots));
    return m;
}

void rd_hmap_free(struct rd_hmap *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMBSTONE)
            free(m->slots[i].key);
    free(m->slots);
    free(m);
}

size_t rd_hmap_count(const struct rd_hmap *m)
{
    return m ? m->count : 0;
}

/* The slot holding key, or SIZE_MAX. */
static size_t find(const struct rd_hmap *m, const void *key, size_t klen, uint64_t h)
{
    for (size_t i = h & (m->cap - 1), n = 0; n < m->cap; i = (i + 1) & (m->cap - 1), n++) {
        const struct slot *s = &m->slots[i];
        if (!s->key)
            return SIZE_MAX;
        if (s->key != TOMBSTONE && s->hash == h && s->klen == klen &&
            memcmp(s->key, key, klen) == 0)
            return i;
    }
    return SIZE_MAX;
}

static void grow(struct rd_hmap *m)
{
    struct slot *old = m->slots;
    size_t oldcap = m->cap;
    if (m->count * 2 >= m->cap)
        m->cap *= 2; /* otherwise only tombstones filled it: rehash at the same size */
    m->slots = rd_calloc(m->cap, sizeof(*m->slots));
    m->used = m->count;
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].key || old[i].key == TOMBSTONE)
            continue;
        size_t j = old[i].hash & (m->cap - 1);
        while (m->slots[j].key)
            j = (j + 1) & (m->cap - 1);
        m->slots[j] = old[i];
    }
    free(old);
}

void rd_hmap_put(struct rd_hmap *m, const void *key, size_t klen, uintptr_t value)
{
    uint64_t h = fnv1a(key, klen);
    size_t at = find(m, key, klen, h);
    if (at != SIZE_MAX) {
        m->slots[at].value = value;
        return;
    }
    if ((m->used + 1) * 10 >= m->cap * 7)
        grow(m);
    size_t i = h & (m->cap - 1);
    while (m->slots[i].key && m->slots[i].key != TOMBSTONE)
        i = (i + 1) & (m->cap - 1);
    if (!m->slots[i].key)
        m->used++;
    struct slot *s = &m->slots[i];
    s->key = rd_malloc(klen ? klen : 1);
    memcpy(s->key, key, klen);
    s->klen = klen;
    s->hash = h;
    s->value = value;
    m->count++;
}

bool rd_hmap_get(const struct rd_hmap *m, const void *key, size_t klen, uintptr_t *value)
{
    if (!m)
        return false;
    size_t at = find(m, key, klen, fnv1a(key, klen));
    if (at == SIZE_MAX)
        return false;
    if (value)
        *value = m->slots[at].value;
    return true;
}

bool rd_hmap_del(struct rd_hmap *m, const void *key, size_t klen)
{
    size_t at = m ? find(m, key, klen, fnv1a(key, klen)) : SIZE_MAX;
    if (at == SIZE_MAX)
        return false;
    free(m->slots[at].key);
    m->slots[at].key = TOMBSTONE;
    m->count--;
    return true;
}

void rd_hmap_put_i64(struct rd_hmap *m, int64_t key, uintptr_t value)
{
    rd_hmap_put(m, &key, sizeof(key), value);
}

bool rd_hmap_get_i64(const struct rd_hmap *m, int64_t key, uintptr_t *value)
{
    return rd_hmap_get(m, &key, sizeof(key), value);
}

bool rd_hmap_del_i64(struct rd_hmap *m, int64_t key)
{
    return rd_hmap_del(m, &key, sizeof(key));
}

/* Lower-cased copy of key into buf (heap when long); returns it and its length. */
static char *fold(const char *key, char *buf, size_t buflen, size_t *len)
{
    size_t n = strlen(key);
    char *out = n < buflen ? buf : rd_malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)key[i]);
    out[n] = '\0';
    *len = n;
    return out;
}

void rd_hmap_put_ci(struct rd_hmap *m, const char *key, uintptr_t value)
{
    char buf[256];
    size_t n;
    char *k = fold(key, buf, sizeof(buf), &n);
    rd_hmap_put(m, k, n, value);
    if (k != buf)
        free(k);
}

bool rd_hmap_get_ci(const struct rd_hmap *m, const char *key, uintptr_t *value)
{
    char buf[256];
    size_t n;
    char *k = fold(key, buf, sizeof(buf), &n);
    bool found = rd_hmap_get(m, k, n, value);
    if (k != buf)
        free(k);
    return found;
}

bool rd_hmap_del_ci(struct rd_hmap *m, const char *key)
{
    char buf[256];
    size_t n;
    char *k = fold(key, buf, sizeof(buf), &n);
    bool found = rd_hmap_del(m, k, n);
    if (k != buf)
        free(k);
    return found;
}
