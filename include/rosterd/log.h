/*
 * Logging: one JSON object a line on stderr (or plain text), thread-safe.
 * Secrets registered with rd_log_redact_add() are scrubbed from every line
 * as a second line of defence; the first is never to format them at all.
 */
#ifndef ROSTERD_LOG_H
#define ROSTERD_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum rd_log_level { RD_LOG_ERROR = 0, RD_LOG_WARN, RD_LOG_INFO, RD_LOG_DEBUG };
enum rd_log_format { RD_LOG_JSON = 0, RD_LOG_TEXT };

/* Context fields added by the _ctx variants; any member may be NULL/0. */
struct rd_log_ctx {
    const char *connection;
    int64_t event_id;
    int64_t job_id;
};

void rd_log_setup(enum rd_log_level level, enum rd_log_format format);
bool rd_log_enabled(enum rd_log_level level);
/* Parses "error|warn|info|debug"; returns false on anything else. */
bool rd_log_parse_level(const char *s, enum rd_log_level *out);
bool rd_log_parse_format(const char *s, enum rd_log_format *out);

/* Registers a secret (copied) that must never appear in a log line. Strings under 4 bytes are
 * ignored. */
void rd_log_redact_add(const char *secret);
void rd_log_redact_clear(void);

void rd_log_write(enum rd_log_level level, const struct rd_log_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define rd_log_error(...) rd_log_write(RD_LOG_ERROR, NULL, __VA_ARGS__)
#define rd_log_warn(...) rd_log_write(RD_LOG_WARN, NULL, __VA_ARGS__)
#define rd_log_info(...) rd_log_write(RD_LOG_INFO, NULL, __VA_ARGS__)
#define rd_log_debug(...)                                                                          \
    do {                                                                                           \
        if (rd_log_enabled(RD_LOG_DEBUG))                                                          \
            rd_log_write(RD_LOG_DEBUG, NULL, __VA_ARGS__);                                         \
    } while (0)
#define rd_log_ctx_error(ctx, ...) rd_log_write(RD_LOG_ERROR, (ctx), __VA_ARGS__)
#define rd_log_ctx_warn(ctx, ...) rd_log_write(RD_LOG_WARN, (ctx), __VA_ARGS__)
#define rd_log_ctx_info(ctx, ...) rd_log_write(RD_LOG_INFO, (ctx), __VA_ARGS__)

#endif
