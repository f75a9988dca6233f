/*
 * Helpers shared by rosterctl's commands: errors and usage, lazy config and
 * database, option parsing, aligned tables and JSON output. Commands print
 * through these so every listing looks and fails the same way.
 */
#include "cli_internal.h"

#include "rosterd/db.h"
#include "rosterd/mem.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#define CELL_MAX 72 /* code points shown per table cell */

void rd_cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("rosterctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int rd_cli_usage_error(struct rd_cli *cli, const char *fmt, ...)
{
    va_list ap;
    fputs("rosterctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (cli && cli->cmd && cli->cmd->usage)
        fputs(cli->cmd->usage, stderr);
    return RD_CLI_USAGE;
}

int rd_cli_config(struct rd_cli *cli)
{
    char err[512];
    if (cli->cfg_loaded)
        return 0;
    if (rd_config_load(cli->config_path, &cli->cfg, err, sizeof err) != 0) {
        rd_cli_error("%s", err);
        rd_config_free(&cli->cfg);
        return -1;
    }
    cli->cfg_loaded = true;
    rd_log_setup(cli->cfg.log_level, cli->cfg.log_format);
    return 0;
}

PGconn *rd_cli_db(struct rd_cli *cli)
{
    char err[512];
    if (cli->db)
        return cli->db;
    if (rd_cli_config(cli) != 0)
        return NULL;
    cli->db = rd_db_connect(cli->cfg.database_url, "rosterctl", err, sizeof err);
    if (!cli->db) {
        rd_cli_error("cannot connect to the database: %s", err);
        return NULL;
    }
    /* Timestamps without an offset (--since 2026-01-31) are read as UTC. */
    if (rd_db_run(cli->db, "SET TIME ZONE 'UTC'", 0, NULL, err, sizeof err) != 0) {
        rd_cli_error("database: %s", err);
        PQfinish(cli->db);
        cli->db = NULL;
    }
    return cli->db;
}

int rd_cli_secret_key(struct rd_cli *cli, uint8_t key[RD_SECRET_KEY_LEN])
{
    char err[512];
    if (rd_cli_config(cli) != 0)
        return -1;
    if (rd_config_require_secret_key(&cli->cfg, cli->config_path, err, sizeof err) != 0 ||
        rd_secret_keys_load(cli->cfg.secret_key_file, cli->cfg.secret_key_previous_file, key, err,
                            sizeof err) != 0) {
        rd_cli_error("%s", err);
        return -1;
    }
    return 0;
}

void rd_cli_close(struct rd_cli *cli)
{
    if (cli->db)
        PQfinish(cli->db);
    cli->db = NULL;
    if (cli->cfg_loaded)
        rd_config_free(&cli->cfg);
    rd_secret_key_clear_previous();
    cli->cfg_loaded = false;
}

static const struct rd_cli_opt *find_opt(const struct rd_cli_opt *opts, size_t nopts,
                                         const char *name, size_t len)
{
    for (size_t i = 0; i < nopts; i++)
        if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
            return &opts[i];
    return NULL;
}

int rd_cli_parse(int argc, char **argv, const struct rd_cli_opt *opts, size_t nopts,
                 const char **pos, size_t maxpos, size_t *npos, char *err, size_t errlen)
{
    bool options_done = false;
    *npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!options_done && strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        if (options_done || a[0] != '-' || a[1] == '\0') {
            if (*npos >= maxpos) {
                snprintf(err, errlen, "unexpected argument \"%s\"", a);
                return -1;
            }
            pos[(*npos)++] = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        const struct rd_cli_opt *o = find_opt(opts, nopts, a, nlen);
        if (!o) {
            snprintf(err, errlen, "unknown option \"%.*s\"", (int)nlen, a);
            return -1;
        }
        if (o->flag) {
            if (eq) {
                snprintf(err, errlen, "%s takes no value", o->name);
                return -1;
            }
            *o->flag = true;
        } else if (eq) {
            *o->value = eq + 1;
        } else if (i + 1 < argc) {
            *o->value = argv[++i];
        } else {
            snprintf(err, errlen, "%s needs a value", o->name);
            return -1;
        }
    }
    return 0;
}

bool rd_cli_parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    if (!s || !*s || (*s != '-' && (*s < '0' || *s > '9')))
        return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

struct rd_cli_table {
    size_t ncols;
    size_t nrows; /* including the header */
    size_t cap;
    char **cells; /* nrows * ncols */
    size_t *width;
};

static size_t utf8_width(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        n += (*p & 0xc0) != 0x80;
    return n;
}

/* One line, at most CELL_MAX code points, cut on a character boundary. */
static char *clean_cell(const char *s)
{
    if (!s)
        return rd_strdup("-");
    struct rd_buf b = {0};
    size_t chars = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool start = (*p & 0xc0) != 0x80;
        if (start && ++chars > CELL_MAX - 3 && utf8_width((const char *)p) > 3) {
            rd_buf_puts(&b, "...");
            break;
        }
        rd_buf_putc(&b, (*p < 0x20 || *p == 0x7f) ? ' ' : (char)*p);
    }
    return b.data ? rd_buf_steal(&b) : rd_strdup("");
}

static void table_push(struct rd_cli_table *t, const char *const *cells)
{
    if (t->nrows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = rd_realloc(t->cells, t->cap * t->ncols * sizeof *t->cells);
    }
    for (size_t c = 0; c < t->ncols; c++) {
        char *cell = clean_cell(cells[c]);
        size_t w = utf8_width(cell);
        if (w > t->width[c])
            t->width[c] = w;
        t->cells[t->nrows * t->ncols + c] = cell;
    }
    t->nrows++;
}

struct rd_cli_table *rd_cli_table_new(size_t ncols, const char *const *headers)
{
    struct rd_cli_table *t = rd_calloc(1, sizeof *t);
    t->ncols = ncols;
    t->width = rd_calloc(ncols, sizeof *t->width);
    table_push(t, headers);
    return t;
}

void rd_cli_table_add(struct rd_cli_table *t, const char *const *cells)
{
    table_push(t, cells);
}

void rd_cli_table_print(const struct rd_cli_table *t, FILE *out)
{
    struct rd_buf line = {0};
    for (size_t r = 0; r < t->nrows; r++) {
        rd_buf_reset(&line);
        for (size_t c = 0; c < t->ncols; c++) {
            const char *cell = t->cells[r * t->ncols + c];
            rd_buf_puts(&line, cell);
            if (c + 1 < t->ncols)
                rd_buf_printf(&line, "%*s", (int)(t->width[c] - utf8_width(cell) + 2), "");
        }
        /* An empty last cell must not leave padding at the end of the line. */
        while (line.len > 0 && line.data[line.len - 1] == ' ')
            line.data[--line.len] = '\0';
        fprintf(out, "%s\n", line.len ? line.data : "");
    }
    rd_buf_free(&line);
}

void rd_cli_table_free(struct rd_cli_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t->width);
    free(t);
}

void rd_cli_json_print(struct json_object *v, bool pretty, FILE *out)
{
    int flags =
        JSON_C_TO_STRING_NOSLASHESCAPE |
        (pretty ? JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED : JSON_C_TO_STRING_PLAIN);
    fputs(json_object_to_json_string_ext(v, flags), out);
    fputc('\n', out);
}

const char *rd_cli_value(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

struct json_object *rd_cli_json_text(const PGresult *res, int row, int col)
{
    const char *v = rd_cli_value(res, row, col);
    return v ? json_object_new_string(v) : NULL;
}

struct json_object *rd_cli_json_int(const PGresult *res, int row, int col)
{
    const char *v = rd_cli_value(res, row, col);
    return v ? json_object_new_int64(strtoll(v, NULL, 10)) : NULL;
}

int rd_cli_check_connection(PGconn *db, const char *name)
{
    char err[512];
    if (!name)
        return RD_CLI_OK;
    int found = rd_events_connection_exists(db, name, err, sizeof err);
    if (found < 0) {
        rd_cli_error("cannot read connections: %s", err);
        return RD_CLI_FAIL;
    }
    if (!found) {
        rd_cli_error("connection \"%s\" not found", name);
        return RD_CLI_FAIL;
    }
    return RD_CLI_OK;
}
