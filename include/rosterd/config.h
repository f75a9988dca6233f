/*
 * rosterd.conf: `key = value` lines, `#` comments, every key overridable by
 * the environment as ROSTERD_<KEY>. One table of options lives in config.c.
 */
#ifndef ROSTERD_CONFIG_H
#define ROSTERD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "rosterd/log.h"

struct rd_config {
    char *listen;                   /* "0.0.0.0:8443" */
    char *tls_cert;                 /* required */
    char *tls_key;                  /* required */
    char *admin_listen;             /* "127.0.0.1:9090" */
    char *admin_token_file;         /* NULL: /admin/ answers 403 */
    char *database_url;             /* "postgresql:///rosterd" */
    int workers;                    /* 4, 1..256 */
    int max_attempts;               /* 12, 1..100 */
    int retry_base_seconds;         /* 2, 1..3600 */
    char *secret_key_file;          /* required */
    char *secret_key_previous_file; /* NULL; a second key that only opens (key rotation) */
    char *smtp_url;
    char *smtp_from;
    char *ca_file;
    long max_body_bytes; /* 1048576, 1024..67108864 */
    enum rd_log_level log_level;
    enum rd_log_format log_format;
    int header_timeout_seconds; /* 10: whole request (headers and body) must arrive within this */
    int intake_max_pending;     /* 20000: requests waiting for a commit before 503 */
    int event_retention_days;   /* 30, at least 30 (dedup window) */
    int job_history_days;       /* 30: finished and dead jobs kept in jobs_history */
    bool test_handlers;         /* off: the test.* job kinds (noop, test.script) do nothing */
};

/* Fills every field with its default (strings are allocated); prior contents are not freed. */
void rd_config_defaults(struct rd_config *cfg);

/*
 * Parses text (the file's contents; name is used in messages) over the
 * current values of cfg. No environment. On error returns -1 and err holds
 * "NAME:LINE: message", e.g. `rosterd.conf:7: unknown key "lisen"`; lines
 * before the bad one have been applied (cfg still owns its strings either way).
 * An empty value unsets an optional string key (admin_token_file, smtp_*, …).
 */
int rd_config_parse(const char *text, size_t len, const char *name, struct rd_config *cfg,
                    char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Applies ROSTERD_<KEY> variables from the environment, values taken verbatim;
 * message "ROSTERD_KEY: …". Unknown ROSTERD_* variables are ignored.
 */
int rd_config_apply_env(struct rd_config *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * The whole start-up path: defaults, the file at path, then the environment.
 * Checks syntax and values only; nothing is required here and no named file
 * is opened, because rosterctl shares this path and needs no TLS files. Call
 * rd_config_require_daemon / rd_config_require_secret_key afterwards.
 * cfg must be all-zero or hold a config (e.g. from rd_config_defaults): its
 * strings are freed first. On success cfg owns new strings (free with rd_config_free). On failure
 * cfg is left all-zero (rd_config_free on it is harmless) and err holds "PATH: cannot open:
 * <strerror>", a parse message or "ROSTERD_KEY: …".
 */
int rd_config_load(const char *path, struct rd_config *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * The daemon's cross-key checks: tls_cert, tls_key and secret_key_file must be
 * set (presence only; the daemon opens them with better messages). name is the
 * config path; err gets "NAME: tls_cert is required".
 */
int rd_config_require_daemon(const struct rd_config *cfg, const char *name, char *err,
                             size_t errlen) __attribute__((warn_unused_result));

/* rosterctl's check: secret_key_file must be set ("NAME: secret_key_file is required"). */
int rd_config_require_secret_key(const struct rd_config *cfg, const char *name, char *err,
                                 size_t errlen) __attribute__((warn_unused_result));

/* Frees the strings and zeroes *cfg; accepts NULL and an already freed struct. */
void rd_config_free(struct rd_config *cfg);

/*
 * Name of the i-th option in table order (the order of rosterd.conf.example),
 * NULL past the end. The returned string is static.
 */
const char *rd_config_option_name(size_t i);

/*
 * For SIGHUP: writes the names of keys that differ between old and cur but are
 * not reloadable (today every key: SIGHUP re-reads only the TLS files; e.g. listen, admin_listen,
 * database_url, workers, secret_key_file) into buf, comma-separated, and returns their count. 0
 * means everything that changed can be applied live. buf may be NULL when buflen is 0.
 */
size_t rd_config_restart_keys(const struct rd_config *old, const struct rd_config *cur, char *buf,
                              size_t buflen);

/*
 * Splits "host:port", "[v6]:port" or ":port" (host then "0.0.0.0").
 * *host is new (free with free()). -1 on a malformed address or port.
 */
int rd_config_split_hostport(const char *s, char **host, int *port)
    __attribute__((warn_unused_result));

#endif
