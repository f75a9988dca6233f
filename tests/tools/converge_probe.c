/*
 * converge_probe: runs rd_person_converge for one employee in a context like a
 * reconciliation run's (dry run, circuit breaker held) and prints its findings as
 * one JSON array, so the integration tests can check what the nightly run relies on
 * before the reconciliation itself exists on this branch.
 *
 *   converge_probe -c rosterd.conf CONNECTION PERSONIO_ID [--dry-run] [--hold]
 *                  [--approver FROM TO]
 *
 * --approver calls rd_approver_converge for [FROM, TO] instead, as the
 * personio.absence handler does.
 */
#include "rosterd/config.h"
#include "rosterd/connection.h"
#include "rosterd/crypto.h"
#include "rosterd/db.h"
#include "rosterd/http.h"
#include "rosterd/approver.h"
#include "rosterd/log.h"
#include "rosterd/mem.h"
#include "rosterd/person.h"
#include "rosterd/sync.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct json_object *str_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

static void print_findings(const struct rd_sync *s)
{
    struct json_object *arr = json_object_new_array();
    for (size_t i = 0; i < s->nfindings; i++) {
        const struct rd_finding *f = &s->findings[i];
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "kind", str_or_null(f->kind));
        json_object_object_add(o, "email", str_or_null(f->email));
        json_object_object_add(o, "detail", str_or_null(f->detail));
        json_object_object_add(o, "action", str_or_null(f->action));
        json_object_object_add(o, "result", str_or_null(f->result));
        json_object_array_add(arr, o);
    }
    puts(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN));
    json_object_put(arr);
}

struct mode {
    bool dry, hold;
    const char *from, *to; /* --approver window, NULL: rd_person_converge */
};

static int converge(PGconn *db, struct rd_connection *conn, const struct rd_config *cfg,
                    long long id, const struct mode *m)
{
    bool dry = m->dry, hold = m->hold;
    struct rd_sync_opts opts = {.ca_file = cfg->ca_file};
    struct rd_sync *s = rd_sync_open_run(db, conn, 0, dry, &opts, rd_http_now() + 60, NULL);
    s->hold_destructive = hold;
    struct rd_http_error err = {0};
    const struct rd_personio_employee *e = NULL;
    bool gone = false;
    int rc = rd_sync_employee(s, id, &e, &gone, &err);
    if (rc == 0 && !gone)
        rc = m->from ? rd_approver_converge(s, e, m->from, m->to, &err)
                     : rd_person_converge(s, e, &err);
    if (rc == 0)
        print_findings(s);
    else
        fprintf(stderr, "converge_probe: %s\n", err.msg);
    rd_sync_close(s);
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 5 || strcmp(argv[1], "-c") != 0) {
        fprintf(stderr, "usage: converge_probe -c rosterd.conf CONNECTION PERSONIO_ID"
                        " [--dry-run] [--hold] [--approver FROM TO]\n");
        return 2;
    }
    struct mode m = {0};
    for (int i = 5; i < argc; i++) {
        m.dry = m.dry || strcmp(argv[i], "--dry-run") == 0;
        m.hold = m.hold || strcmp(argv[i], "--hold") == 0;
        if (strcmp(argv[i], "--approver") == 0 && i + 2 < argc) {
            m.from = argv[++i];
            m.to = argv[++i];
        }
    }
    rd_log_setup(RD_LOG_WARN, RD_LOG_TEXT);
    rd_http_global_init();
    struct rd_config cfg;
    memset(&cfg, 0, sizeof cfg); /* rd_config_load frees what cfg held */
    char err[512];
    uint8_t key[RD_SECRET_KEY_LEN];
    if (rd_config_load(argv[2], &cfg, err, sizeof err) != 0 ||
        rd_secret_key_load(cfg.secret_key_file, key, err, sizeof err) != 0) {
        fprintf(stderr, "converge_probe: %s\n", err);
        return 1;
    }
    int rc = 1;
    struct rd_connection *conn = NULL;
    PGconn *db = rd_db_connect(cfg.database_url, "converge_probe", err, sizeof err);
    if (db && rd_connection_load(db, key, argv[3], &conn, err, sizeof err) == 0)
        rc = converge(db, conn, &cfg, strtoll(argv[4], NULL, 10), &m);
    else
        fprintf(stderr, "converge_probe: %s\n", err);
    rd_connection_free(conn);
    if (db)
        PQfinish(db);
    rd_memzero(key, sizeof key);
    rd_config_free(&cfg);
    return rc;
}
