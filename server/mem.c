/*
 * Allocation wrappers that abort on out-of-memory, and rd_buf, the growable
 * buffer used for JSON output, HTTP bodies and SQL array literals.
 */
#include "rosterd/mem.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "{\"level\":\"error\",\"msg\":\"out of memory\",\"bytes\":%zu}\n", n);
    abort();
}

void *rd_malloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *rd_calloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (!p)
        oom(count * n);
    return p;
}

void *rd_realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *rd_strdup(const char *s)
{
    return rd_strndup(s, strlen(s));
}

char *rd_strndup(const char *s, size_t n)
{
    char *p = rd_malloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *rd_asprintf(const char *fmt, ...)
{
    struct rd_buf b = {0};
    va_list ap;
    va_start(ap, fmt);
    rd_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (!b.data)
        return rd_strdup("");
    return rd_buf_steal(&b);
}

void rd_memzero(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

void rd_buf_reserve(struct rd_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->data = rd_realloc(b->data, cap);
    b->cap = cap;
}

void rd_buf_append(struct rd_buf *b, const void *p, size_t n)
{
    rd_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void rd_buf_puts(struct rd_buf *b, const char *s)
{
    rd_buf_append(b, s, strlen(s));
}

void rd_buf_putc(struct rd_buf *b, char c)
{
    rd_buf_append(b, &c, 1);
}

void rd_buf_vprintf(struct rd_buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return;
    rd_buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

void rd_buf_printf(struct rd_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rd_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

void rd_buf_json_str(struct rd_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    rd_buf_reserve(b, n + 2);
    rd_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            rd_buf_append(b, "\\\"", 2);
            break;
        case '\\':
            rd_buf_append(b, "\\\\", 2);
            break;
        case '\n':
            rd_buf_append(b, "\\n", 2);
            break;
        case '\r':
            rd_buf_append(b, "\\r", 2);
            break;
        case '\t':
            rd_buf_append(b, "\\t", 2);
            break;
        default:
            if (c < 0x20 || c == 0x7f) {
                char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                rd_buf_append(b, esc, 6);
            } else {
                rd_buf_putc(b, (char)c);
            }
        }
    }
    rd_buf_putc(b, '"');
}

void rd_buf_reset(struct rd_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void rd_buf_free(struct rd_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *rd_buf_steal(struct rd_buf *b)
{
    char *p = b->data;
    if (!p)
        p = rd_strdup("");
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

int rd_buf_read_stream(struct rd_buf *b, FILE *f, size_t max)
{
    char chunk[8192];
    size_t n;
    int saved = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        rd_buf_append(b, chunk, n);
        if (b->len > max) {
            saved = EFBIG;
            break;
        }
    }
    if (!saved && ferror(f))
        saved = EIO;
    rd_memzero(chunk, sizeof(chunk));
    if (saved) {
        if (b->data)
            rd_memzero(b->data, b->cap);
        rd_buf_free(b);
        errno = saved;
        return -1;
    }
    if (!b->data)
        rd_buf_reserve(b, 0); /* an empty file still gives a "" string */
    return 0;
}

int rd_buf_read_file(struct rd_buf *b, const char *path, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    int rc = rd_buf_read_stream(b, f, max);
    int saved = errno;
    fclose(f);
    errno = saved;
    return rc;
}
