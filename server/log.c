/*
 * JSON-lines logger. One write(2) per line so lines from several threads
 * never interleave; registered secrets are replaced by "[redacted]".
 */
#include "rosterd/log.h"
#include "rosterd/mem.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum rd_log_level g_level = RD_LOG_INFO;
static enum rd_log_format g_format = RD_LOG_JSON;
static pthread_mutex_t g_redact_lock = PTHREAD_MUTEX_INITIALIZER;
static char **g_redact;
static size_t g_redact_n;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void rd_log_setup(enum rd_log_level level, enum rd_log_format format)
{
    g_level = level;
    g_format = format;
}

bool rd_log_enabled(enum rd_log_level level)
{
    return level <= g_level;
}

bool rd_log_parse_level(const char *s, enum rd_log_level *out)
{
    for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum rd_log_level)i;
            return true;
        }
    }
    return false;
}

bool rd_log_parse_format(const char *s, enum rd_log_format *out)
{
    if (strcmp(s, "json") == 0)
        *out = RD_LOG_JSON;
    else if (strcmp(s, "text") == 0)
        *out = RD_LOG_TEXT;
    else
        return false;
    return true;
}

void rd_log_redact_add(const char *secret)
{
    if (!secret || strlen(secret) < 4)
        return;
    pthread_mutex_lock(&g_redact_lock);
    for (size_t i = 0; i < g_redact_n; i++) {
        if (strcmp(g_redact[i], secret) == 0) {
            pthread_mutex_unlock(&g_redact_lock);
            return;
        }
    }
    g_redact = rd_realloc(g_redact, (g_redact_n + 1) * sizeof(*g_redact));
    g_redact[g_redact_n++] = rd_strdup(secret);
    pthread_mutex_unlock(&g_redact_lock);
}

void rd_log_redact_clear(void)
{
    pthread_mutex_lock(&g_redact_lock);
    for (size_t i = 0; i < g_redact_n; i++) {
        rd_memzero(g_redact[i], strlen(g_redact[i]));
        free(g_redact[i]);
    }
    free(g_redact);
    g_redact = NULL;
    g_redact_n = 0;
    pthread_mutex_unlock(&g_redact_lock);
}

/* Replaces every registered secret in the message (already formatted). */
static void redact(struct rd_buf *msg)
{
    pthread_mutex_lock(&g_redact_lock);
    for (size_t i = 0; i < g_redact_n; i++) {
        const char *s = g_redact[i];
        size_t sl = strlen(s);
        char *hit;
        while ((hit = memmem(msg->data, msg->len, s, sl)) != NULL) {
            static const char mark[] = "[redacted]";
            size_t off = (size_t)(hit - msg->data);
            size_t tail = msg->len - off - sl;
            struct rd_buf out = {0};
            rd_buf_append(&out, msg->data, off);
            rd_buf_append(&out, mark, sizeof(mark) - 1);
            rd_buf_append(&out, hit + sl, tail);
            rd_buf_free(msg);
            *msg = out;
        }
    }
    pthread_mutex_unlock(&g_redact_lock);
}

void rd_log_write(enum rd_log_level level, const struct rd_log_ctx *ctx, const char *fmt, ...)
{
    if (!rd_log_enabled(level))
        return;
    struct rd_buf msg = {0};
    va_list ap;
    va_start(ap, fmt);
    rd_buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    if (!msg.data)
        rd_buf_puts(&msg, "");
    redact(&msg);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[40];
    size_t wl = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + wl, sizeof(when) - wl, ".%03ldZ", ts.tv_nsec / 1000000);

    struct rd_buf line = {0};
    if (g_format == RD_LOG_JSON) {
        rd_buf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", when, level_names[level]);
        rd_buf_json_str(&line, msg.data, msg.len);
        if (ctx && ctx->connection) {
            rd_buf_puts(&line, ",\"connection\":");
            rd_buf_json_str(&line, ctx->connection, strlen(ctx->connection));
        }
        if (ctx && ctx->event_id)
            rd_buf_printf(&line, ",\"event_id\":%lld", (long long)ctx->event_id);
        if (ctx && ctx->job_id)
            rd_buf_printf(&line, ",\"job_id\":%lld", (long long)ctx->job_id);
        rd_buf_puts(&line, "}\n");
    } else {
        rd_buf_printf(&line, "%s %-5s %s", when, level_names[level], msg.data);
        if (ctx && ctx->connection)
            rd_buf_printf(&line, " connection=%s", ctx->connection);
        if (ctx && ctx->event_id)
            rd_buf_printf(&line, " event_id=%lld", (long long)ctx->event_id);
        if (ctx && ctx->job_id)
            rd_buf_printf(&line, " job_id=%lld", (long long)ctx->job_id);
        rd_buf_putc(&line, '\n');
    }
    size_t off = 0;
    while (off < line.len) {
        ssize_t w = write(STDERR_FILENO, line.data + off, line.len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    rd_buf_free(&line);
    rd_buf_free(&msg);
}
