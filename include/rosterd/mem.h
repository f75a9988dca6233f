/*
 * Allocation wrappers and a growable byte buffer.
 * The wrappers abort on out-of-memory, so call sites need not check.
 */
#ifndef ROSTERD_MEM_H
#define ROSTERD_MEM_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

void *rd_malloc(size_t n) __attribute__((malloc, returns_nonnull));
void *rd_calloc(size_t count, size_t n) __attribute__((malloc, returns_nonnull));
void *rd_realloc(void *p, size_t n) __attribute__((returns_nonnull));
char *rd_strdup(const char *s) __attribute__((malloc, returns_nonnull));
char *rd_strndup(const char *s, size_t n) __attribute__((malloc, returns_nonnull));
/* Returns a new string, free with free(). */
char *rd_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2), returns_nonnull));

/* Zeroes memory the compiler may not optimise away (for secrets). */
void rd_memzero(void *p, size_t n);

/* A growable buffer; data is always NUL-terminated (the NUL is not counted in len). */
struct rd_buf {
    char *data;
    size_t len;
    size_t cap;
};

void rd_buf_reserve(struct rd_buf *b, size_t extra);
void rd_buf_append(struct rd_buf *b, const void *p, size_t n);
void rd_buf_puts(struct rd_buf *b, const char *s);
void rd_buf_putc(struct rd_buf *b, char c);
void rd_buf_printf(struct rd_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rd_buf_vprintf(struct rd_buf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* Appends s as a JSON string literal, quotes included. */
void rd_buf_json_str(struct rd_buf *b, const char *s, size_t n);
void rd_buf_reset(struct rd_buf *b);
/* Releases the storage; the struct may be reused. Accepts an all-zero buffer. */
void rd_buf_free(struct rd_buf *b);
/*
 * Appends everything read from f (or the file at path) to b, at most max
 * bytes. 0, or -1 with errno set: fopen's, EFBIG over max, EIO on a read
 * error; on failure b is wiped (files may hold secrets) and freed. The _file
 * variant closes what it opened.
 */
int rd_buf_read_stream(struct rd_buf *b, FILE *f, size_t max) __attribute__((warn_unused_result));
int rd_buf_read_file(struct rd_buf *b, const char *path, size_t max)
    __attribute__((warn_unused_result));

/* Hands the storage to the caller (free with free()); the buffer is left empty. */
char *rd_buf_steal(struct rd_buf *b);

#endif
