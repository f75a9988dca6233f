/*
 * rosterctl secrets rotate-key|status: moves every stored secret to a new
 * secret_key_file in one transaction, and shows which key each sealed value is
 * under. The values are opened with the keys rosterd.conf names and re-sealed
 * under the new key; nothing is ever printed but names and key ids.
 */
#include "cli_internal.h"

#include "rosterd/crypto.h"
#include "rosterd/db.h"
#include "rosterd/mem.h"

#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

const char rd_cli_usage_secrets_rotate[] =
    "usage: rosterctl secrets rotate-key NEW_KEY_FILE\n"
    "\n"
    "Re-seals every stored secret (each connection's credentials) under the key in\n"
    "NEW_KEY_FILE, in one transaction: either every value moves or none does. Values\n"
    "are opened with secret_key_file, secret_key_previous_file or the new key itself,\n"
    "so running it again is harmless. Without downtime:\n"
    "  1. set secret_key_file = NEW_KEY_FILE and secret_key_previous_file = the old\n"
    "     key in rosterd.conf, restart every rosterd (they now open both);\n"
    "  2. rosterctl secrets rotate-key NEW_KEY_FILE;\n"
    "  3. rosterctl secrets status (every value \"current\"), then remove\n"
    "     secret_key_previous_file, restart, and destroy the old key.\n";

const char rd_cli_usage_secrets_status[] =
    "usage: rosterctl secrets status [--json]\n"
    "\n"
    "Lists every sealed value with the id of the key it is sealed under and which\n"
    "configured file holds that key (current, previous, or unknown).\n";

/*
 * Every place a sealed value lives: its table, the row's key, the column whose
 * text is the value's associated data, and the sealed column. Identifiers only,
 * never data: a new sealed column is one row here.
 */
struct sealed_column {
    const char *what;  /* shown to the operator */
    const char *table; /* with id, aad and sealed columns */
    const char *aad;
    const char *sealed;
};

static const struct sealed_column sealed_columns[] = {
    {"connection", "connections", "name", "sealed"},
};
#define NSEALED (sizeof sealed_columns / sizeof sealed_columns[0])

/* SELECT id::text, <aad>, <sealed> FROM <table> ORDER BY id [FOR UPDATE], binary results. */
static PGresult *select_sealed(PGconn *db, const struct sealed_column *sc, bool lock, char *err,
                               size_t errlen)
{
    char *sql = rd_asprintf("SELECT id::text, %s, %s FROM %s ORDER BY id%s", sc->aad, sc->sealed,
                            sc->table, lock ? " FOR UPDATE" : "");
    PGresult *res = PQexecParams(db, sql, 0, NULL, NULL, NULL, NULL, 1);
    free(sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rd_db_error(db, res, err, errlen);
        PQclear(res);
        return NULL;
    }
    return res;
}

/* Opens one value with the known keys and seals it again under new_key. */
static int reseal_row(PGconn *db, const struct sealed_column *sc, const uint8_t key[32],
                      const uint8_t new_key[32], PGresult *res, int row, char *err, size_t errlen)
{
    const char *id = PQgetvalue(res, row, 0); /* text's binary form is the text */
    const char *aad = PQgetvalue(res, row, 1);
    size_t aadlen = (size_t)PQgetlength(res, row, 1);
    uint8_t *plain = NULL, *sealed = NULL;
    size_t plen = 0, slen = 0;
    int rc = -1;
    if (rd_aead_open(key, aad, aadlen, (const uint8_t *)PQgetvalue(res, row, 2),
                     (size_t)PQgetlength(res, row, 2), &plain, &plen) != 0) {
        char kid[2 * RD_KEY_ID_LEN + 1];
        rd_aead_key_id_hex((const uint8_t *)PQgetvalue(res, row, 2),
                           (size_t)PQgetlength(res, row, 2), kid);
        snprintf(err, errlen,
                 "%s %.*s: cannot open (sealed under key id %s, which neither secret_key_file, "
                 "secret_key_previous_file nor the new key holds)",
                 sc->what, (int)aadlen, aad, kid);
        return -1;
    }
    if (rd_aead_seal(new_key, aad, aadlen, plain, plen, &sealed, &slen) != 0) {
        snprintf(err, errlen, "%s %.*s: cannot seal under the new key", sc->what, (int)aadlen, aad);
        goto done;
    }
    char *sql = rd_asprintf("UPDATE %s SET %s = $2 WHERE id = $1::bigint", sc->table, sc->sealed);
    const char *values[2] = {id, (const char *)sealed};
    int lengths[2] = {0, (int)slen};
    int formats[2] = {0, 1};
    PGresult *up = PQexecParams(db, sql, 2, NULL, values, lengths, formats, 0);
    free(sql);
    if (PQresultStatus(up) != PGRES_COMMAND_OK)
        rd_db_error(db, up, err, errlen);
    else
        rc = 0;
    PQclear(up);
done:
    rd_memzero(plain, plen);
    free(plain);
    free(sealed);
    return rc;
}

/* Re-seals every value of every sealed column; *count gets the number. Inside a transaction. */
static int reseal_all(PGconn *db, const uint8_t key[32], const uint8_t new_key[32], int *count,
                      char *err, size_t errlen)
{
    *count = 0;
    for (size_t c = 0; c < NSEALED; c++) {
        PGresult *res = select_sealed(db, &sealed_columns[c], true, err, errlen);
        if (!res)
            return -1;
        for (int r = 0; r < PQntuples(res); r++) {
            if (reseal_row(db, &sealed_columns[c], key, new_key, res, r, err, errlen) != 0) {
                PQclear(res);
                return -1;
            }
            (*count)++;
        }
        PQclear(res);
    }
    return 0;
}

int rd_cli_secrets_rotate(struct rd_cli *cli, int argc, char **argv)
{
    const char *pos[1];
    size_t npos = 0;
    char err[512];
    if (rd_cli_parse(argc, argv, NULL, 0, pos, 1, &npos, err, sizeof err) != 0)
        return rd_cli_usage_error(cli, "%s", err);
    if (npos != 1)
        return rd_cli_usage_error(cli, "expected the new key file");
    uint8_t key[RD_SECRET_KEY_LEN], new_key[RD_SECRET_KEY_LEN];
    int rc = RD_CLI_FAIL, count = 0;
    bool in_tx = false;
    if (rd_secret_key_load(pos[0], new_key, err, sizeof err) != 0) {
        rd_cli_error("%s", err);
        return RD_CLI_FAIL;
    }
    if (rd_cli_secret_key(cli, key) != 0)
        goto done;
    /* A second run (or one after a failed restart) finds values already under the new key. */
    if (rd_secret_key_add_previous(new_key) != 0) {
        rd_cli_error("too many secret keys configured");
        goto done;
    }
    PGconn *db = rd_cli_db(cli);
    if (!db)
        goto done;
    if (rd_db_run(db, "BEGIN", 0, NULL, err, sizeof err) != 0) {
        rd_cli_error("secrets rotate-key: %s", err);
        goto done;
    }
    in_tx = true;
    if (reseal_all(db, key, new_key, &count, err, sizeof err) != 0 ||
        rd_db_run(db, "COMMIT", 0, NULL, err, sizeof err) != 0) {
        rd_cli_error("secrets rotate-key: %s; nothing was changed", err);
        goto done;
    }
    in_tx = false;
    char kid[2 * RD_KEY_ID_LEN + 1];
    rd_secret_key_id_hex(new_key, kid);
    printf("re-sealed %d stored secret%s under key id %s\n", count, count == 1 ? "" : "s", kid);
    if (rd_ct_equal(key, sizeof key, new_key, sizeof new_key))
        printf("secret_key_file holds this key: once `rosterctl secrets status` shows every "
               "value current,\nremove secret_key_previous_file, restart rosterd and destroy "
               "the old key\n");
    else
        printf("secret_key_file still holds the old key: set secret_key_file = %s and\n"
               "secret_key_previous_file = the old key file, then restart every rosterd "
               "(until then\ntheir workers cannot open the re-sealed values)\n",
               pos[0]);
    rc = RD_CLI_OK;
done:
    if (in_tx)
        PQclear(PQexec(cli->db, "ROLLBACK"));
    rd_memzero(key, sizeof key);
    rd_memzero(new_key, sizeof new_key);
    return rc;
}

/* "current", "previous" or "unknown": which configured key file opens a value of key id kid. */
static const char *key_role(const char *kid, const char *cur, const char *prev)
{
    if (strcmp(kid, cur) == 0)
        return "current";
    if (prev && strcmp(kid, prev) == 0)
        return "previous";
    return strcmp(kid, "-") == 0 ? "version 1 (no key id)" : "unknown";
}

int rd_cli_secrets_status(struct rd_cli *cli, int argc, char **argv)
{
    bool json = false;
    size_t npos = 0;
    char err[512];
    const struct rd_cli_opt opts[] = {{"--json", NULL, &json}};
    if (rd_cli_parse(argc, argv, opts, 1, NULL, 0, &npos, err, sizeof err) != 0)
        return rd_cli_usage_error(cli, "%s", err);
    uint8_t key[RD_SECRET_KEY_LEN], prev[RD_SECRET_KEY_LEN];
    char cur_id[2 * RD_KEY_ID_LEN + 1], prev_id[2 * RD_KEY_ID_LEN + 1];
    bool have_prev = false;
    if (rd_cli_secret_key(cli, key) != 0)
        return RD_CLI_FAIL;
    rd_secret_key_id_hex(key, cur_id);
    rd_memzero(key, sizeof key);
    if (cli->cfg.secret_key_previous_file &&
        rd_secret_key_load(cli->cfg.secret_key_previous_file, prev, err, sizeof err) == 0) {
        rd_secret_key_id_hex(prev, prev_id);
        rd_memzero(prev, sizeof prev);
        have_prev = true;
    }
    PGconn *db = rd_cli_db(cli);
    if (!db)
        return RD_CLI_FAIL;
    struct json_object *arr = json_object_new_array();
    static const char *const hdr[] = {"KIND", "NAME", "KEY_ID", "KEY"};
    struct rd_cli_table *t = rd_cli_table_new(4, hdr);
    int rc = RD_CLI_OK;
    for (size_t c = 0; c < NSEALED && rc == RD_CLI_OK; c++) {
        PGresult *res = select_sealed(db, &sealed_columns[c], false, err, sizeof err);
        if (!res) {
            rd_cli_error("cannot read %s: %s", sealed_columns[c].table, err);
            rc = RD_CLI_FAIL;
            break;
        }
        for (int r = 0; r < PQntuples(res); r++) {
            char kid[2 * RD_KEY_ID_LEN + 1];
            char *name = rd_strndup(PQgetvalue(res, r, 1), (size_t)PQgetlength(res, r, 1));
            rd_aead_key_id_hex((const uint8_t *)PQgetvalue(res, r, 2),
                               (size_t)PQgetlength(res, r, 2), kid);
            const char *role = key_role(kid, cur_id, have_prev ? prev_id : NULL);
            struct json_object *o = json_object_new_object();
            json_object_object_add(o, "kind", json_object_new_string(sealed_columns[c].what));
            json_object_object_add(o, "name", json_object_new_string(name));
            json_object_object_add(o, "key_id", json_object_new_string(kid));
            json_object_object_add(o, "key", json_object_new_string(role));
            json_object_array_add(arr, o);
            const char *row[4] = {sealed_columns[c].what, name, kid, role};
            rd_cli_table_add(t, row);
            free(name);
        }
        PQclear(res);
    }
    if (rc == RD_CLI_OK) {
        if (json)
            rd_cli_json_print(arr, false, stdout);
        else
            rd_cli_table_print(t, stdout);
    }
    rd_cli_table_free(t);
    json_object_put(arr);
    return rc;
}
