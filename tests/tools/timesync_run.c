/*
 * timesync_run: calls rd_attendance_converge / rd_absence_converge inside a run
 * context, the way the nightly reconciliation does (optionally a dry run, optionally
 * after preloading everyone's records of a window), and prints one JSON object with
 * what each call returned and the findings. For the integration tests; secrets come
 * from the sealed connection, never from argv.
 *
 *   timesync_run [--dry-run] [--preload FROM TO] {attendance|absence PID MOCO FROM TO}...
 *   env: TS_DATABASE_URL, TS_SECRET_KEY_FILE, TS_CONNECTION, TS_CA_FILE, TS_RUN_ID
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "rosterd/absence.h"
#include "rosterd/attendance.h"
#include "rosterd/connection.h"
#include "rosterd/crypto.h"
#include "rosterd/db.h"
#include "rosterd/log.h"
#include "rosterd/moco.h"
#include "rosterd/personio.h"
#include "rosterd/sync.h"
#include "rosterd/timesync.h"

static const char *need(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "timesync_run: %s is not set\n", name);
        exit(2);
    }
    return v;
}

static struct json_object *str_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

/* Everyone's employees, MOCO users, time-offs, presences, schedules and attendances. */
static int preload(struct rd_sync *s, const char *from, const char *to, struct rd_http_error *err)
{
    const struct rd_personio_employee_list *emps;
    const struct rd_moco_user_list *users;
    const struct rd_personio_time_off_list *toffs;
    if (rd_sync_employees(s, &emps, err) != 0 || rd_sync_moco_users(s, &users, err) != 0 ||
        rd_sync_time_offs(s, 0, from, to, &toffs, err) != 0)
        return -1;
    return rd_timesync_preload(s, RD_TIMESYNC_ALL, from, to, err);
}

static struct json_object *one(struct rd_sync *s, char **argv)
{
    struct json_object *o = json_object_new_object();
    struct rd_http_error err = {0};
    const struct rd_personio_employee *e = NULL;
    bool gone = false;
    int rc = rd_sync_employee(s, atoll(argv[1]), &e, &gone, &err);
    if (rc == 0 && gone)
        rd_http_error_set(&err, true, 404, "no employee %s", argv[1]);
    if (rc == 0 && !gone)
        rc = strcmp(argv[0], "attendance") == 0
                 ? rd_attendance_converge(s, e, atoll(argv[2]), argv[3], argv[4], &err)
                 : rd_absence_converge(s, e, atoll(argv[2]), argv[3], argv[4], &err);
    json_object_object_add(o, "rc", json_object_new_int(gone ? -1 : rc));
    if (rc != 0 || gone) {
        json_object_object_add(o, "error", json_object_new_string(err.msg));
        json_object_object_add(o, "permanent", json_object_new_boolean(err.permanent));
    }
    return o;
}

int main(int argc, char **argv)
{
    rd_log_setup(RD_LOG_INFO, RD_LOG_JSON);
    rd_http_global_init();
    char err[512];
    uint8_t key[RD_SECRET_KEY_LEN];
    if (rd_secret_key_load(need("TS_SECRET_KEY_FILE"), key, err, sizeof(err)) != 0) {
        fprintf(stderr, "timesync_run: %s\n", err);
        return 2;
    }
    PGconn *db = rd_db_connect(need("TS_DATABASE_URL"), "timesync_run", err, sizeof(err));
    struct rd_connection *conn = NULL;
    if (!db || rd_connection_load(db, key, need("TS_CONNECTION"), &conn, err, sizeof(err)) != 0) {
        fprintf(stderr, "timesync_run: %s\n", err);
        return 2;
    }
    struct rd_sync_opts opts = {.ca_file = getenv("TS_CA_FILE")};
    int i = 1;
    bool dry = i < argc && strcmp(argv[i], "--dry-run") == 0;
    i += dry;
    struct rd_sync *s =
        rd_sync_open_run(db, conn, getenv("TS_RUN_ID") ? atoll(getenv("TS_RUN_ID")) : 0, dry, &opts,
                         rd_http_now() + 300.0, NULL);
    struct json_object *out = json_object_new_object(), *calls = json_object_new_array();
    int status = 0;
    if (i + 2 < argc && strcmp(argv[i], "--preload") == 0) {
        struct rd_http_error e = {0};
        if (preload(s, argv[i + 1], argv[i + 2], &e) != 0) {
            fprintf(stderr, "timesync_run: preload: %s\n", e.msg);
            status = 1;
        }
        i += 3;
    }
    for (; status == 0 && i + 4 < argc; i += 5)
        json_object_array_add(calls, one(s, argv + i));
    json_object_object_add(out, "calls", calls);
    struct json_object *fs = json_object_new_array();
    for (size_t k = 0; k < s->nfindings; k++) {
        struct json_object *f = json_object_new_object();
        json_object_object_add(f, "kind", json_object_new_string(s->findings[k].kind));
        json_object_object_add(f, "email", str_or_null(s->findings[k].email));
        json_object_object_add(f, "detail", str_or_null(s->findings[k].detail));
        json_object_object_add(f, "action", str_or_null(s->findings[k].action));
        json_object_object_add(f, "result", str_or_null(s->findings[k].result));
        json_object_array_add(fs, f);
    }
    json_object_object_add(out, "findings", fs);
    printf("%s\n", json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN));
    json_object_put(out);
    rd_sync_close(s);
    rd_connection_free(conn);
    PQfinish(db);
    rd_personio_token_cache_clear();
    rd_moco_pacer_clear();
    return status;
}
