/*
 * rosterctl connection apply|list|show. Only apply loads the secret key:
 * list and show read the masked `config` column and never decrypt.
 */
#include "cli_internal.h"

#include "rosterd/connection.h"
#include "rosterd/db.h"
#include "rosterd/mem.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#define DOC_MAX (4 * 1024 * 1024)

/* Reads a whole file ("-" is stdin). Returns a new string or NULL with errno set. */
static char *read_text(const char *path)
{
    struct rd_buf b = {0};
    int rc = strcmp(path, "-") == 0 ? rd_buf_read_stream(&b, stdin, DOC_MAX)
                                    : rd_buf_read_file(&b, path, DOC_MAX);
    if (rc != 0)
        return NULL;
    if (memchr(b.data, '\0', b.len)) {
        rd_memzero(b.data, b.len);
        rd_buf_free(&b);
        errno = EILSEQ;
        return NULL;
    }
    return rd_buf_steal(&b);
}

int rd_cli_connection_apply(struct rd_cli *cli, int argc, char **argv)
{
    const char *pos[1];
    size_t npos = 0;
    char err[512];
    if (rd_cli_parse(argc, argv, NULL, 0, pos, 1, &npos, err, sizeof err) != 0)
        return rd_cli_usage_error(cli, "%s", err);
    if (npos != 1)
        return rd_cli_usage_error(cli, "expected a connection file");
    const char *file = pos[0];

    int rc = RD_CLI_FAIL;
    uint8_t key[RD_SECRET_KEY_LEN];
    bool have_key = false;
    char *dir = NULL;
    struct json_object *doc = NULL;
    char *text = read_text(file);
    if (!text) {
        rd_cli_error("%s: cannot read: %s", file, strerror(errno));
        goto done;
    }
    if (rd_cli_secret_key(cli, key) != 0)
        goto done;
    have_key = true;
    PGconn *db = rd_cli_db(cli);
    if (!db)
        goto done;
    /* file: references are relative to the document, not to the caller's directory. */
    char *copy = rd_strdup(strcmp(file, "-") == 0 ? "./-" : file);
    dir = rd_strdup(dirname(copy));
    free(copy);
    bool created = false;
    if (rd_connection_apply(db, key, text, dir, &created, err, sizeof err) != 0) {
        rd_cli_error("%s: %s", file, err);
        goto done;
    }
    doc = json_tokener_parse(text);
    struct json_object *name = NULL;
    json_object_object_get_ex(doc, "name", &name);
    printf("%s connection %s\n", created ? "created" : "updated", json_object_get_string(name));
    rc = RD_CLI_OK;
done:
    if (have_key)
        rd_memzero(key, sizeof key);
    if (text) {
        rd_memzero(text, strlen(text));
        free(text);
    }
    json_object_put(doc);
    free(dir);
    return rc;
}

static const char sql_list[] =
    "SELECT name, timezone,"
    " CASE WHEN jsonb_typeof(config->'personio'->'standard_webhooks_secrets') = 'array'"
    "   AND jsonb_array_length(config->'personio'->'standard_webhooks_secrets') > 0"
    "   THEN 'standard' ELSE 'token' END,"
    " CASE WHEN jsonb_typeof(config->'moco'->'standard_webhooks_secrets') = 'array'"
    "   AND jsonb_array_length(config->'moco'->'standard_webhooks_secrets') > 0"
    "   THEN 'standard' ELSE 'hmac' END,"
    " " RD_CLI_SQL_ISO("updated_at") " FROM connections ORDER BY name";

int rd_cli_connection_list(struct rd_cli *cli, int argc, char **argv)
{
    bool json = false;
    size_t npos = 0;
    char err[512];
    const struct rd_cli_opt opts[] = {{"--json", NULL, &json}};
    if (rd_cli_parse(argc, argv, opts, 1, NULL, 0, &npos, err, sizeof err) != 0)
        return rd_cli_usage_error(cli, "%s", err);
    PGconn *db = rd_cli_db(cli);
    if (!db)
        return RD_CLI_FAIL;
    PGresult *res = rd_db_exec(db, sql_list, 0, NULL, err, sizeof err);
    if (!res) {
        rd_cli_error("cannot list connections: %s", err);
        return RD_CLI_FAIL;
    }
    int n = PQntuples(res);
    if (json) {
        struct json_object *arr = json_object_new_array();
        for (int i = 0; i < n; i++) {
            struct json_object *o = json_object_new_object();
            struct json_object *src = json_object_new_object();
            json_object_object_add(o, "name", rd_cli_json_text(res, i, 0));
            json_object_object_add(o, "timezone", rd_cli_json_text(res, i, 1));
            json_object_object_add(src, "personio", rd_cli_json_text(res, i, 2));
            json_object_object_add(src, "moco", rd_cli_json_text(res, i, 3));
            json_object_object_add(o, "sources", src);
            json_object_object_add(o, "updated_at", rd_cli_json_text(res, i, 4));
            json_object_array_add(arr, o);
        }
        rd_cli_json_print(arr, false, stdout);
        json_object_put(arr);
    } else {
        static const char *const hdr[] = {"NAME", "TIMEZONE", "PERSONIO", "MOCO", "UPDATED_AT"};
        struct rd_cli_table *t = rd_cli_table_new(5, hdr);
        for (int i = 0; i < n; i++) {
            const char *row[5];
            for (int c = 0; c < 5; c++)
                row[c] = rd_cli_value(res, i, c);
            rd_cli_table_add(t, row);
        }
        rd_cli_table_print(t, stdout);
        rd_cli_table_free(t);
        /* An empty table is a header alone; say why on stderr, where scripts do not parse. */
        if (n == 0)
            rd_cli_error("no connections yet: add one with `rosterctl connection apply FILE`");
    }
    PQclear(res);
    return RD_CLI_OK;
}

int rd_cli_connection_show(struct rd_cli *cli, int argc, char **argv)
{
    bool json = false;
    const char *pos[1];
    size_t npos = 0;
    char err[512];
    const struct rd_cli_opt opts[] = {{"--json", NULL, &json}};
    if (rd_cli_parse(argc, argv, opts, 1, pos, 1, &npos, err, sizeof err) != 0)
        return rd_cli_usage_error(cli, "%s", err);
    if (npos != 1)
        return rd_cli_usage_error(cli, "expected a connection name");
    PGconn *db = rd_cli_db(cli);
    if (!db)
        return RD_CLI_FAIL;
    const char *params[1] = {pos[0]};
    PGresult *res = rd_db_exec(db, "SELECT config::text FROM connections WHERE name = $1", 1,
                               params, err, sizeof err);
    if (!res) {
        rd_cli_error("cannot read connection: %s", err);
        return RD_CLI_FAIL;
    }
    int rc = RD_CLI_FAIL;
    if (PQntuples(res) == 0) {
        rd_cli_error("connection \"%s\" not found", pos[0]);
    } else {
        struct json_object *doc = json_tokener_parse(PQgetvalue(res, 0, 0));
        struct json_object *ordered = rd_connection_ordered(doc);
        rd_cli_json_print(ordered, !json, stdout);
        json_object_put(ordered);
        json_object_put(doc);
        rc = RD_CLI_OK;
    }
    PQclear(res);
    return rc;
}
