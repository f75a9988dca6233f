/*
 * Unit tests for the configuration module: defaults, every value type, the
 * exact text of every error form, environment overrides, host:port splitting
 * and the shipped deploy/rosterd.conf.example.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rosterd/config.h"

#ifndef RD_SOURCE_DIR
#error "RD_SOURCE_DIR must name the source tree"
#endif

/* Parses text over defaults; returns the rc and leaves the message in err. */
static int parse(const char *text, struct rd_config *cfg, char *err, size_t errlen)
{
    rd_config_defaults(cfg);
    err[0] = '\0';
    return rd_config_parse(text, strlen(text), "rosterd.conf", cfg, err, errlen);
}

static void expect_error(const char *text, const char *message)
{
    struct rd_config cfg;
    char err[512];
    int rc = parse(text, &cfg, err, sizeof(err));
    if (rc == 0 || strcmp(err, message) != 0)
        print_error("text:\n%s\nwanted: %s\ngot:    %s (rc %d)\n", text, message, err, rc);
    assert_int_equal(rc, -1);
    assert_string_equal(err, message);
    rd_config_free(&cfg);
}

static const char *const env_vars[] = {
    "ROSTERD_LISTEN",       "ROSTERD_WORKERS",          "ROSTERD_LOG_LEVEL",
    "ROSTERD_DATABASE_URL", "ROSTERD_ADMIN_TOKEN_FILE", "ROSTERD_MAX_BODY_BYTES",
    "ROSTERD_NOT_A_KEY",    "ROSTERD_TLS_CERT",
};

static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
        unsetenv(env_vars[i]);
    return 0;
}

static void test_defaults(void **state)
{
    (void)state;
    struct rd_config cfg;
    rd_config_defaults(&cfg);
    assert_string_equal(cfg.listen, "0.0.0.0:8443");
    assert_null(cfg.tls_cert);
    assert_null(cfg.tls_key);
    assert_string_equal(cfg.admin_listen, "127.0.0.1:9090");
    assert_null(cfg.admin_token_file);
    assert_string_equal(cfg.database_url, "postgresql:///rosterd");
    assert_int_equal(cfg.workers, 4);
    assert_int_equal(cfg.max_attempts, 12);
    assert_int_equal(cfg.retry_base_seconds, 2);
    assert_null(cfg.secret_key_file);
    assert_null(cfg.smtp_url);
    assert_null(cfg.smtp_from);
    assert_null(cfg.ca_file);
    assert_int_equal(cfg.max_body_bytes, 1048576);
    assert_int_equal(cfg.log_level, RD_LOG_INFO);
    assert_int_equal(cfg.log_format, RD_LOG_JSON);
    assert_int_equal(cfg.header_timeout_seconds, 10);
    assert_int_equal(cfg.intake_max_pending, 20000);
    assert_int_equal(cfg.event_retention_days, 30);
    assert_null(cfg.secret_key_previous_file);
    assert_false(cfg.test_handlers); /* production builds never run test.* kinds by default */
    rd_config_free(&cfg);
    assert_null(cfg.listen);
    rd_config_free(&cfg); /* twice is harmless */
    rd_config_free(NULL);
}

static void test_every_type_parses(void **state)
{
    (void)state;
    const char *text = "listen = [::1]:18443\n"
                       "tls_cert = /etc/rosterd/cert.pem\n"
                       "tls_key=/etc/rosterd/key.pem\n"
                       "admin_listen = :19090\n"
                       "admin_token_file = /etc/rosterd/admin.token\n"
                       "database_url = host=db dbname=rosterd user=rosterd\n"
                       "workers = 256\n"
                       "max_attempts = 1\n"
                       "retry_base_seconds = 3600\n"
                       "secret_key_file = /etc/rosterd/secret.key\n"
                       "smtp_url = smtps://mail.example:465\n"
                       "smtp_from = rosterd@example.com\n"
                       "ca_file = /etc/ssl/certs/ca-certificates.crt\n"
                       "max_body_bytes = 2M\n"
                       "log_level = debug\n"
                       "log_format = text\n"
                       "header_timeout_seconds = 300\n"
                       "intake_max_pending = 100\n"
                       "event_retention_days = 3650\n"
                       "secret_key_previous_file = /etc/rosterd/old.key\n"
                       "test_handlers = on\n";
    struct rd_config cfg;
    char err[256];
    assert_int_equal(parse(text, &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg.listen, "[::1]:18443");
    assert_string_equal(cfg.tls_cert, "/etc/rosterd/cert.pem");
    assert_string_equal(cfg.tls_key, "/etc/rosterd/key.pem");
    assert_string_equal(cfg.admin_listen, ":19090");
    assert_string_equal(cfg.admin_token_file, "/etc/rosterd/admin.token");
    assert_string_equal(cfg.database_url, "host=db dbname=rosterd user=rosterd");
    assert_int_equal(cfg.workers, 256);
    assert_int_equal(cfg.max_attempts, 1);
    assert_int_equal(cfg.retry_base_seconds, 3600);
    assert_string_equal(cfg.secret_key_file, "/etc/rosterd/secret.key");
    assert_string_equal(cfg.smtp_url, "smtps://mail.example:465");
    assert_string_equal(cfg.smtp_from, "rosterd@example.com");
    assert_string_equal(cfg.ca_file, "/etc/ssl/certs/ca-certificates.crt");
    assert_int_equal(cfg.max_body_bytes, 2 * 1024 * 1024);
    assert_int_equal(cfg.log_level, RD_LOG_DEBUG);
    assert_int_equal(cfg.log_format, RD_LOG_TEXT);
    assert_int_equal(cfg.header_timeout_seconds, 300);
    assert_int_equal(cfg.intake_max_pending, 100);
    assert_int_equal(cfg.event_retention_days, 3650);
    assert_string_equal(cfg.secret_key_previous_file, "/etc/rosterd/old.key");
    assert_true(cfg.test_handlers);
    rd_config_free(&cfg);
    static const char *const bools[][2] = {{"on", "1"}, {"OFF", "0"}, {"true", "1"},
                                           {"no", "0"}, {"Yes", "1"}, {"0", "0"}};
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        char line[64];
        snprintf(line, sizeof line, "test_handlers = %s\n", bools[i][0]);
        assert_int_equal(parse(line, &cfg, err, sizeof(err)), 0);
        assert_int_equal(cfg.test_handlers, bools[i][1][0] == '1');
        rd_config_free(&cfg);
    }

    assert_int_equal(parse("max_body_bytes = 64k\r\nlog_level = error\r\n", &cfg, err, sizeof(err)),
                     0);
    assert_int_equal(cfg.max_body_bytes, 65536);
    assert_int_equal(cfg.log_level, RD_LOG_ERROR);
    rd_config_free(&cfg);
}

static void test_comments_and_blanks(void **state)
{
    (void)state;
    const char *text = "# a comment\n"
                       "\n"
                       "   \t\n"
                       "   # indented comment\n"
                       "workers = 8   # trailing comment\n"
                       "smtp_from = ops#team@example.com\n"
                       "tls_cert = /etc/rosterd/cert.pem # note\n"
                       "# workers = 9\n"
                       "ca_file = /x.pem";
    struct rd_config cfg;
    char err[256];
    assert_int_equal(parse(text, &cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg.workers, 8);
    assert_string_equal(cfg.smtp_from, "ops#team@example.com"); /* '#' not after whitespace */
    assert_string_equal(cfg.tls_cert, "/etc/rosterd/cert.pem");
    assert_string_equal(cfg.ca_file, "/x.pem"); /* no final newline */
    rd_config_free(&cfg);

    assert_int_equal(parse("", &cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg.workers, 4);
    rd_config_free(&cfg);
}

static void test_quoted_values(void **state)
{
    (void)state;
    const char *text = "database_url = \"host=db password=a#b c\"  # comment\n"
                       "smtp_from = \"  spaced  \"\n"
                       "log_level = \"warn\"\n"
                       "ca_file = \"\"\n";
    struct rd_config cfg;
    char err[256];
    assert_int_equal(parse(text, &cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg.database_url, "host=db password=a#b c");
    assert_string_equal(cfg.smtp_from, "  spaced  ");
    assert_int_equal(cfg.log_level, RD_LOG_WARN);
    assert_null(cfg.ca_file);
    rd_config_free(&cfg);

    /* An empty value unsets an optional key set earlier in the same layer. */
    assert_int_equal(parse("admin_token_file =\n", &cfg, err, sizeof(err)), 0);
    assert_null(cfg.admin_token_file);
    rd_config_free(&cfg);

    expect_error("\n\nsmtp_from = \"open\n",
                 "rosterd.conf:3: smtp_from: unterminated quoted value");
    expect_error("smtp_from = \"a\" b\n",
                 "rosterd.conf:1: smtp_from: unexpected text after the closing quote");
}

static void test_error_messages(void **state)
{
    (void)state;
    expect_error("workers = 4\n\n# x\n\n\n\nlisen = 0.0.0.0:1\n",
                 "rosterd.conf:7: unknown key \"lisen\"");
    expect_error("\n\nworkers = abc\n",
                 "rosterd.conf:3: workers: expected an integer from 1 to 256, got \"abc\"");
    expect_error("workers = 0\n",
                 "rosterd.conf:1: workers: expected an integer from 1 to 256, got \"0\"");
    expect_error("workers = 257\n",
                 "rosterd.conf:1: workers: expected an integer from 1 to 256, got \"257\"");
    expect_error("workers = 4x\n",
                 "rosterd.conf:1: workers: expected an integer from 1 to 256, got \"4x\"");
    expect_error("workers =\n",
                 "rosterd.conf:1: workers: expected an integer from 1 to 256, got \"\"");
    expect_error("workers = 99999999999999999999999\n",
                 "rosterd.conf:1: workers: expected an integer from 1 to 256, got "
                 "\"99999999999999999999999\"");
    expect_error("\n\n\n\nlisten = 8443\n",
                 "rosterd.conf:5: listen: expected host:port, got \"8443\"");
    expect_error("admin_listen = localhost:70000\n",
                 "rosterd.conf:1: admin_listen: expected host:port, got \"localhost:70000\"");
    expect_error("workers 4\n", "rosterd.conf:1: expected \"key = value\"");
    expect_error("test_handlers = maybe\n",
                 "rosterd.conf:1: test_handlers: expected on or off, got \"maybe\"");
    expect_error("test_handlers =\n",
                 "rosterd.conf:1: test_handlers: expected on or off, got \"\"");
    expect_error("= 4\n", "rosterd.conf:1: expected \"key = value\"");
    expect_error("workers # = 4\n", "rosterd.conf:1: expected \"key = value\"");
    expect_error(
        "event_retention_days = 7\n",
        "rosterd.conf:1: event_retention_days: expected an integer from 30 to 3650, got \"7\"");
    expect_error(
        "header_timeout_seconds = 301\n",
        "rosterd.conf:1: header_timeout_seconds: expected an integer from 1 to 300, got \"301\"");
    expect_error(
        "intake_max_pending = 99\n",
        "rosterd.conf:1: intake_max_pending: expected an integer from 100 to 1000000, got \"99\"");
    expect_error("max_body_bytes = 100\n",
                 "rosterd.conf:1: max_body_bytes: expected a size from 1024 to 67108864 bytes "
                 "(suffix k or M allowed), got \"100\"");
    expect_error("max_body_bytes = 65M\n",
                 "rosterd.conf:1: max_body_bytes: expected a size from 1024 to 67108864 bytes "
                 "(suffix k or M allowed), got \"65M\"");
    expect_error("log_level = loud\n",
                 "rosterd.conf:1: log_level: expected error, warn, info or debug, got \"loud\"");
    expect_error("log_format = xml\n",
                 "rosterd.conf:1: log_format: expected json or text, got \"xml\"");
    expect_error("database_url =\n", "rosterd.conf:1: database_url: must not be empty");
    /* A long value is cut in the message. */
    expect_error(
        "log_format = "
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
        "rosterd.conf:1: log_format: expected json or text, got "
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...\"");
}

static void test_value_line_never_echoed(void **state)
{
    (void)state;
    /* A connection string on a line with a missing "=" after the key must not be printed. */
    struct rd_config cfg;
    char err[512];
    const char *text = "database_url postgresql://u:hunter2@db/rosterd?sslmode=require\n";
    assert_int_equal(parse(text, &cfg, err, sizeof(err)), -1);
    assert_string_equal(err, "rosterd.conf:1: expected \"key = value\"");
    assert_null(strstr(err, "hunter2"));
    rd_config_free(&cfg);
}

static void test_duplicate_key(void **state)
{
    (void)state;
    expect_error("workers = 4\n# c\nworkers = 5\n",
                 "rosterd.conf:3: duplicate key \"workers\" (first on line 1)");
}

static void test_nul_byte(void **state)
{
    (void)state;
    struct rd_config cfg;
    char err[256];
    static const char text[] = "workers = 4\nsmtp_from = a\0b\n";
    rd_config_defaults(&cfg);
    assert_int_equal(rd_config_parse(text, sizeof(text) - 1, "x.conf", &cfg, err, sizeof(err)), -1);
    assert_string_equal(err, "x.conf:2: unexpected NUL byte");
    rd_config_free(&cfg);
}

static void test_small_error_buffer(void **state)
{
    (void)state;
    struct rd_config cfg;
    char err[8];
    assert_int_equal(parse("nope = 1\n", &cfg, err, sizeof(err)), -1);
    assert_string_equal(err, "rosterd");
    rd_config_free(&cfg);
    rd_config_defaults(&cfg);
    assert_int_equal(rd_config_parse("nope = 1", 8, "n", &cfg, NULL, 0), -1);
    rd_config_free(&cfg);
}

static void test_env_override(void **state)
{
    (void)state;
    struct rd_config cfg;
    char err[256];
    assert_int_equal(
        parse("workers = 8\nlisten = 127.0.0.1:1\nadmin_token_file = /t\n", &cfg, err, sizeof(err)),
        0);
    setenv("ROSTERD_WORKERS", "16", 1);
    setenv("ROSTERD_LOG_LEVEL", "debug", 1);
    setenv("ROSTERD_ADMIN_TOKEN_FILE", "", 1);
    setenv("ROSTERD_NOT_A_KEY", "whatever", 1);
    assert_int_equal(rd_config_apply_env(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg.workers, 16);
    assert_int_equal(cfg.log_level, RD_LOG_DEBUG);
    assert_null(cfg.admin_token_file);
    assert_string_equal(cfg.listen, "127.0.0.1:1"); /* not in the environment: file value stays */
    rd_config_free(&cfg);
    clear_env(NULL);
}

static void test_env_bad_value(void **state)
{
    (void)state;
    struct rd_config cfg;
    char err[256];
    rd_config_defaults(&cfg);
    setenv("ROSTERD_WORKERS", "abc", 1);
    assert_int_equal(rd_config_apply_env(&cfg, err, sizeof(err)), -1);
    assert_string_equal(err, "ROSTERD_WORKERS: expected an integer from 1 to 256, got \"abc\"");
    unsetenv("ROSTERD_WORKERS");

    setenv("ROSTERD_LISTEN", "nowhere", 1);
    assert_int_equal(rd_config_apply_env(&cfg, err, sizeof(err)), -1);
    assert_string_equal(err, "ROSTERD_LISTEN: expected host:port, got \"nowhere\"");
    unsetenv("ROSTERD_LISTEN");

    setenv("ROSTERD_DATABASE_URL", "", 1);
    assert_int_equal(rd_config_apply_env(&cfg, err, sizeof(err)), -1);
    assert_string_equal(err, "ROSTERD_DATABASE_URL: must not be empty");
    rd_config_free(&cfg);
    clear_env(NULL);
}

/* Writes text to a new temp file; returns its path (free with free()). */
static char *write_temp(const char *text)
{
    char *path = strdup("/tmp/rd_test_config_XXXXXX");
    assert_non_null(path);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

static void test_load(void **state)
{
    (void)state;
    struct rd_config cfg = {0};
    char err[512];
    char *path = write_temp("workers = 3\nmax_attempts = 5\n");
    setenv("ROSTERD_WORKERS", "7", 1);
    assert_int_equal(rd_config_load(path, &cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg.workers, 7); /* the environment wins over the file */
    assert_int_equal(cfg.max_attempts, 5);
    assert_int_equal(cfg.retry_base_seconds, 2);
    /* load requires nothing; the daemon and rosterctl check what they need. */
    assert_int_equal(rd_config_require_daemon(&cfg, path, err, sizeof(err)), -1);
    char want[512];
    snprintf(want, sizeof(want), "%s: tls_cert is required", path);
    assert_string_equal(err, want);
    assert_int_equal(rd_config_require_secret_key(&cfg, path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: secret_key_file is required", path);
    assert_string_equal(err, want);
    rd_config_free(&cfg);

    setenv("ROSTERD_WORKERS", "x", 1);
    assert_int_equal(rd_config_load(path, &cfg, err, sizeof(err)), -1);
    assert_string_equal(err, "ROSTERD_WORKERS: expected an integer from 1 to 256, got \"x\"");
    assert_null(cfg.listen); /* failure leaves the struct empty */
    unsetenv("ROSTERD_WORKERS");
    unlink(path);
    free(path);

    path = write_temp("workers = 3\nbogus = 1\n");
    assert_int_equal(rd_config_load(path, &cfg, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:2: unknown key \"bogus\"", path);
    assert_string_equal(err, want);
    unlink(path);
    free(path);

    assert_int_equal(rd_config_load("/nonexistent/rosterd.conf", &cfg, err, sizeof(err)), -1);
    assert_string_equal(err, "/nonexistent/rosterd.conf: cannot open: No such file or directory");
    rd_config_free(&cfg);

    /* Loading over filled-in defaults (as the daemon does) frees them: valgrind checks. */
    path = write_temp("workers = 2\n");
    rd_config_defaults(&cfg);
    assert_int_equal(rd_config_load(path, &cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg.workers, 2);
    assert_string_equal(cfg.listen, "0.0.0.0:8443");
    rd_config_free(&cfg);
    unlink(path);
    free(path);
}

static void test_require(void **state)
{
    (void)state;
    struct rd_config cfg;
    char err[256];
    assert_int_equal(parse("tls_cert = /c\n", &cfg, err, sizeof(err)), 0);
    assert_int_equal(rd_config_require_daemon(&cfg, "r.conf", err, sizeof(err)), -1);
    assert_string_equal(err, "r.conf: tls_key is required");
    rd_config_free(&cfg);
    assert_int_equal(parse("tls_cert = /c\ntls_key = /k\n", &cfg, err, sizeof(err)), 0);
    assert_int_equal(rd_config_require_daemon(&cfg, "r.conf", err, sizeof(err)), -1);
    assert_string_equal(err, "r.conf: secret_key_file is required");
    rd_config_free(&cfg);
    assert_int_equal(
        parse("tls_cert = /c\ntls_key = /k\nsecret_key_file = /s\n", &cfg, err, sizeof(err)), 0);
    assert_int_equal(rd_config_require_daemon(&cfg, "r.conf", err, sizeof(err)), 0);
    assert_int_equal(rd_config_require_secret_key(&cfg, "r.conf", err, sizeof(err)), 0);
    rd_config_free(&cfg);
}

static void expect_split(const char *s, const char *host, int port)
{
    char *h = NULL;
    int p = 0;
    if (rd_config_split_hostport(s, &h, &p) != 0)
        print_error("split failed for \"%s\"\n", s);
    assert_non_null(h);
    assert_string_equal(h, host);
    assert_int_equal(p, port);
    free(h);
}

static void expect_split_fail(const char *s)
{
    char *h = NULL;
    int p = 0;
    if (rd_config_split_hostport(s, &h, &p) == 0)
        print_error("split accepted \"%s\"\n", s);
    assert_int_equal(rd_config_split_hostport(s, &h, &p), -1);
    assert_null(h);
}

static void test_split_hostport(void **state)
{
    (void)state;
    expect_split("0.0.0.0:8443", "0.0.0.0", 8443);
    expect_split("localhost:1", "localhost", 1);
    expect_split("example.com:65535", "example.com", 65535);
    expect_split(":9090", "0.0.0.0", 9090);
    expect_split("[::1]:9090", "::1", 9090);
    expect_split("[::]:443", "::", 443);
    expect_split("[fe80::1%eth0]:80", "fe80::1%eth0", 80);
    expect_split_fail("8443");
    expect_split_fail("");
    expect_split_fail("host:");
    expect_split_fail("host:0");
    expect_split_fail("host:65536");
    expect_split_fail("host:-1");
    expect_split_fail("host:+80");
    expect_split_fail("host:8o");
    expect_split_fail("host:000080");
    expect_split_fail("::1:9090");
    expect_split_fail("[::1]9090");
    expect_split_fail("[::1:9090");
    expect_split_fail("[]:80");
    expect_split_fail("[host]:80");
    expect_split_fail("my host:80");
    expect_split_fail("a/b:80");
    expect_split_fail(NULL);
}

static void test_restart_keys(void **state)
{
    (void)state;
    struct rd_config a, b;
    char err[256], buf[128];
    assert_int_equal(parse("tls_cert = /a\n", &a, err, sizeof(err)), 0);
    assert_int_equal(parse("tls_cert = /a\n", &b, err, sizeof(err)), 0);
    assert_int_equal(rd_config_restart_keys(&a, &b, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "");
    rd_config_free(&b);
    /* SIGHUP applies no key live (it re-reads the TLS files): every change is named. */
    assert_int_equal(
        parse("tls_cert = /b\nlisten = :1\nworkers = 9\ndatabase_url = x\n", &b, err, sizeof(err)),
        0);
    assert_int_equal(rd_config_restart_keys(&a, &b, buf, sizeof(buf)), 4);
    assert_string_equal(buf, "listen, tls_cert, database_url, workers");
    assert_int_equal(rd_config_restart_keys(&a, &b, NULL, 0), 4);
    rd_config_free(&a);
    rd_config_free(&b);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        print_error("cannot open %s\n", path);
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Finds "key =" or "# key =" at the start of a line. */
static const char *find_key_line(const char *text, const char *key)
{
    size_t klen = strlen(key);
    for (const char *line = text; line && *line;) {
        const char *p = line;
        if (*p == '#') {
            p++;
            while (*p == ' ')
                p++;
        }
        if (strncmp(p, key, klen) == 0 && (p[klen] == ' ' || p[klen] == '='))
            return line;
        const char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : NULL;
    }
    return NULL;
}

static void test_example_file(void **state)
{
    (void)state;
    size_t len;
    char *text = slurp(RD_SOURCE_DIR "/deploy/rosterd.conf.example", &len);
    struct rd_config cfg;
    char err[512] = "";
    rd_config_defaults(&cfg);
    int rc = rd_config_parse(text, len, "rosterd.conf.example", &cfg, err, sizeof(err));
    if (rc != 0)
        print_error("%s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(cfg.listen, "0.0.0.0:8443");
    assert_string_equal(cfg.tls_cert, "/etc/rosterd/tls/cert.pem");
    assert_string_equal(cfg.tls_key, "/etc/rosterd/tls/key.pem");
    assert_string_equal(cfg.secret_key_file, "/etc/rosterd/secret.key");
    assert_string_equal(cfg.admin_token_file, "/etc/rosterd/admin.token");
    assert_int_equal(cfg.workers, 4);
    assert_int_equal(cfg.event_retention_days, 30);
    assert_int_equal(rd_config_require_daemon(&cfg, "rosterd.conf.example", err, sizeof(err)), 0);
    rd_config_free(&cfg);

    /* Every key of the table appears, set or commented out, in table order. */
    const char *prev = text;
    for (size_t i = 0; rd_config_option_name(i); i++) {
        const char *at = find_key_line(text, rd_config_option_name(i));
        if (!at || at < prev)
            print_error("key %s missing or out of order in the example\n",
                        rd_config_option_name(i));
        assert_non_null(at);
        assert_true(at >= prev);
        prev = at;
    }
    assert_true(rd_config_option_name(0) != NULL);
    assert_string_equal(rd_config_option_name(0), "listen");
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clear_env),
        cmocka_unit_test_setup(test_every_type_parses, clear_env),
        cmocka_unit_test_setup(test_comments_and_blanks, clear_env),
        cmocka_unit_test_setup(test_quoted_values, clear_env),
        cmocka_unit_test_setup(test_error_messages, clear_env),
        cmocka_unit_test_setup(test_value_line_never_echoed, clear_env),
        cmocka_unit_test_setup(test_duplicate_key, clear_env),
        cmocka_unit_test_setup(test_nul_byte, clear_env),
        cmocka_unit_test_setup(test_small_error_buffer, clear_env),
        cmocka_unit_test_setup(test_env_override, clear_env),
        cmocka_unit_test_setup(test_env_bad_value, clear_env),
        cmocka_unit_test_setup(test_load, clear_env),
        cmocka_unit_test_setup(test_require, clear_env),
        cmocka_unit_test_setup(test_split_hostport, clear_env),
        cmocka_unit_test_setup(test_restart_keys, clear_env),
        cmocka_unit_test_setup(test_example_file, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
