/*
 * upstream_probe: calls the upstream client functions against given base URLs
 * and prints one JSON object with the result, for the integration tests.
 * Base URLs and credentials come from the environment, never from argv.
 */
#include "rosterd/audit.h"
#include "rosterd/db.h"
#include "rosterd/http.h"
#include "rosterd/log.h"
#include "rosterd/mailer.h"
#include "rosterd/mem.h"
#include "rosterd/moco.h"
#include "rosterd/personio.h"
#include "rosterd/scim.h"
#include "rosterd/slack.h"

#include <json-c/json.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct probe {
    struct rd_http_client *http;
    struct rd_http_share *share;
    struct rd_http_opts opts;
    double deadline;
    PGconn *db;
    struct rd_audit_ctx audit;
    struct rd_http_error err;
    struct json_object *result;
};

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static const char *need(const char *name)
{
    const char *v = env(name);
    if (!v) {
        fprintf(stderr, "upstream_probe: %s is not set\n", name);
        exit(2);
    }
    return v;
}

static struct json_object *jstr_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

static void usage(void)
{
    fprintf(
        stderr,
        "usage: upstream_probe SYSTEM OP [ARGS]\n"
        "  personio employees [EMAIL] | employee ID | time-offs FROM TO [EMP] |\n"
        "           attendances FROM TO [EMP] | attendance-create EMP DATE START END [COMMENT] |\n"
        "           attendance-update ID DATE START END | attendance-delete ID | employees-threads N |\n"
        "           employee-repeat N ID\n"
        "  moco users [archived] | presences FROM TO [USER] | schedules FROM TO [USER] |\n"
        "       schedule-create USER DATE CODE AM PM [COMMENT] | schedule-delete ID | users-repeat N\n"
        "  scim find EMAIL | users | create EMAIL GIVEN FAMILY [EXTID] | active ID true|false |\n"
        "       manager ID MGR|- | department ID DEPT|- | group NAME | group-add GID UID.. | group-remove GID UID..\n"
        "  platform delegate APPROVER DELEGATE STARTS ENDS EXTID [REASON] | delegations [APPROVER] | undelegate ID\n"
        "  slack post TEXT [BLOCKS_JSON]\n"
        "  mail send TO SUBJECT TEXT\n");
    exit(2);
}

/* ---- Personio ---- */

static struct json_object *employee_json(const struct rd_personio_employee *e)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "id", json_object_new_int64(e->id));
    json_object_object_add(o, "email", jstr_or_null(e->email));
    json_object_object_add(o, "first_name", jstr_or_null(e->first_name));
    json_object_object_add(o, "last_name", jstr_or_null(e->last_name));
    json_object_object_add(o, "status", jstr_or_null(e->status));
    json_object_object_add(o, "hire_date", jstr_or_null(e->hire_date));
    json_object_object_add(o, "termination_date", jstr_or_null(e->termination_date));
    json_object_object_add(o, "last_working_day", jstr_or_null(e->last_working_day));
    json_object_object_add(o, "supervisor_id", json_object_new_int64(e->supervisor_id));
    json_object_object_add(o, "team", jstr_or_null(e->team));
    json_object_object_add(o, "department", jstr_or_null(e->department));
    struct json_object *cc = json_object_new_array();
    for (size_t i = 0; i < e->ncost_centers; i++)
        json_object_array_add(cc, json_object_new_string(e->cost_centers[i]));
    json_object_object_add(o, "cost_centers", cc);
    return o;
}

struct thread_arg {
    struct probe *pr;
    int rc;
    size_t count;
};

static void *employees_thread(void *p)
{
    struct thread_arg *ta = p;
    struct rd_http_client *http = rd_http_client_new(&ta->pr->opts);
    struct rd_personio *per = rd_personio_new(
        http, need("PERSONIO_BASE"), need("PERSONIO_CLIENT_ID"), need("PERSONIO_CLIENT_SECRET"));
    struct rd_personio_employee_list l;
    struct rd_http_error err;
    ta->rc = rd_personio_list_employees(per, NULL, ta->pr->deadline, &l, &err);
    ta->count = ta->rc == 0 ? l.count : 0;
    rd_personio_employee_list_free(&l);
    rd_personio_free(per);
    rd_http_client_free(http);
    return NULL;
}

static int run_personio(struct probe *pr, int argc, char **argv)
{
    struct rd_personio *p =
        rd_personio_new(pr->http, need("PERSONIO_BASE"), need("PERSONIO_CLIENT_ID"),
                        need("PERSONIO_CLIENT_SECRET"));
    if (env("PERSONIO_TIME_OFF_LIMIT"))
        rd_personio_set_time_off_page_size(p, atoi(env("PERSONIO_TIME_OFF_LIMIT")));
    if (env("PERSONIO_SHARED_BUDGET") && pr->db)
        rd_personio_set_budget_db(p, pr->db);
    const char *op = argv[0];
    int rc = -1;
    if (strcmp(op, "employees") == 0) {
        struct rd_personio_employee_list l;
        rc = rd_personio_list_employees(p, argc > 1 ? argv[1] : NULL, pr->deadline, &l, &pr->err);
        if (rc == 0) {
            pr->result = json_object_new_array();
            for (size_t i = 0; i < l.count; i++)
                json_object_array_add(pr->result, employee_json(&l.items[i]));
        }
        rd_personio_employee_list_free(&l);
    } else if (strcmp(op, "employee") == 0 && argc > 1) {
        struct rd_personio_employee e;
        rc = rd_personio_get_employee(p, atoll(argv[1]), pr->deadline, &e, &pr->err);
        if (rc == 0)
            pr->result = employee_json(&e);
        rd_personio_employee_clear(&e);
    } else if (strcmp(op, "time-offs") == 0 && argc > 2) {
        struct rd_personio_time_off_list l;
        rc = rd_personio_list_time_offs(p, argv[1], argv[2], argc > 3 ? atoll(argv[3]) : 0,
                                        pr->deadline, &l, &pr->err);
        if (rc == 0) {
            pr->result = json_object_new_array();
            for (size_t i = 0; i < l.count; i++) {
                struct rd_personio_time_off *t = &l.items[i];
                struct json_object *o = json_object_new_object();
                json_object_object_add(o, "id", json_object_new_int64(t->id));
                json_object_object_add(o, "id_v2", jstr_or_null(t->id_v2));
                json_object_object_add(o, "employee_id", json_object_new_int64(t->employee_id));
                json_object_object_add(o, "status", jstr_or_null(t->status));
                json_object_object_add(o, "start_date", jstr_or_null(t->start_date));
                json_object_object_add(o, "end_date", jstr_or_null(t->end_date));
                json_object_object_add(o, "half_day_start",
                                       json_object_new_boolean(t->half_day_start));
                json_object_object_add(o, "half_day_end", json_object_new_boolean(t->half_day_end));
                json_object_object_add(o, "type_id", json_object_new_int64(t->type_id));
                json_object_object_add(o, "type_name", jstr_or_null(t->type_name));
                json_object_array_add(pr->result, o);
            }
        }
        rd_personio_time_off_list_free(&l);
    } else if (strcmp(op, "attendances") == 0 && argc > 2) {
        struct rd_personio_attendance_list l;
        rc = rd_personio_list_attendances(p, argv[1], argv[2], argc > 3 ? atoll(argv[3]) : 0,
                                          pr->deadline, &l, &pr->err);
        if (rc == 0) {
            pr->result = json_object_new_array();
            for (size_t i = 0; i < l.count; i++) {
                struct json_object *o = json_object_new_object();
                json_object_object_add(o, "id", json_object_new_int64(l.items[i].id));
                json_object_object_add(o, "employee_id",
                                       json_object_new_int64(l.items[i].employee_id));
                json_object_object_add(o, "date", json_object_new_string(l.items[i].date));
                json_object_object_add(o, "start_time",
                                       json_object_new_string(l.items[i].start_time));
                json_object_object_add(o, "end_time", json_object_new_string(l.items[i].end_time));
                json_object_object_add(o, "comment", jstr_or_null(l.items[i].comment));
                json_object_object_add(o, "status", jstr_or_null(l.items[i].status));
                json_object_array_add(pr->result, o);
            }
        }
        rd_personio_attendance_list_free(&l);
    } else if ((strcmp(op, "attendance-create") == 0 && argc > 4) ||
               (strcmp(op, "attendance-update") == 0 && argc > 4)) {
        bool create = op[11] == 'c';
        struct rd_personio_attendance a = {0};
        if (create)
            a.employee_id = atoll(argv[1]);
        else
            a.id = atoll(argv[1]);
        snprintf(a.date, sizeof(a.date), "%s", argv[2]);
        snprintf(a.start_time, sizeof(a.start_time), "%s", argv[3]);
        snprintf(a.end_time, sizeof(a.end_time), "%s", argv[4]);
        a.comment = argc > 5 ? argv[5] : NULL;
        bool overlap = false;
        int64_t id = a.id;
        rc = create ? rd_personio_create_attendance(p, &a, true, &pr->audit, pr->deadline, &id,
                                                    &overlap, &pr->err)
                    : rd_personio_update_attendance(p, &a, true, &pr->audit, pr->deadline, &overlap,
                                                    &pr->err);
        pr->result = json_object_new_object();
        json_object_object_add(pr->result, "id", json_object_new_int64(id));
        json_object_object_add(pr->result, "overlap", json_object_new_boolean(overlap));
    } else if (strcmp(op, "attendance-delete") == 0 && argc > 1) {
        bool gone = false;
        rc = rd_personio_delete_attendance(p, atoll(argv[1]), true, &pr->audit, pr->deadline, &gone,
                                           &pr->err);
        pr->result = json_object_new_object();
        json_object_object_add(pr->result, "gone", json_object_new_boolean(gone));
    } else if (strcmp(op, "employee-repeat") == 0 && argc > 2) {
        int times = atoi(argv[1]);
        rc = 0;
        for (int i = 0; rc == 0 && i < times; i++) {
            struct rd_personio_employee e;
            rc = rd_personio_get_employee(p, atoll(argv[2]), pr->deadline, &e, &pr->err);
            rd_personio_employee_clear(&e);
        }
        pr->result = json_object_new_int(times);
    } else if (strcmp(op, "employees-threads") == 0 && argc > 1) {
        int n = atoi(argv[1]);
        if (n < 1 || n > 64)
            usage();
        pthread_t th[64];
        struct thread_arg ta[64];
        for (int i = 0; i < n; i++) {
            ta[i] = (struct thread_arg){.pr = pr};
            pthread_create(&th[i], NULL, employees_thread, &ta[i]);
        }
        pr->result = json_object_new_array();
        rc = 0;
        for (int i = 0; i < n; i++) {
            pthread_join(th[i], NULL);
            rc |= ta[i].rc;
            json_object_array_add(pr->result, json_object_new_int64((int64_t)ta[i].count));
        }
        if (rc)
            rd_http_error_set(&pr->err, false, 0, "a thread failed");
    } else {
        usage();
    }
    rd_personio_free(p);
    return rc;
}

/* ---- MOCO ---- */

static int run_moco(struct probe *pr, int argc, char **argv)
{
    struct rd_moco *m = rd_moco_new(pr->http, need("MOCO_BASE"), need("MOCO_KEY"));
    if (env("MOCO_RATE"))
        rd_moco_set_rate(m, atoi(env("MOCO_RATE")),
                         env("MOCO_WINDOW_S") ? atoi(env("MOCO_WINDOW_S")) : 120);
    if (env("MOCO_SHARED_BUDGET") && pr->db)
        rd_moco_set_budget_db(m, pr->db);
    const char *op = argv[0];
    int rc = -1;
    if (strcmp(op, "users") == 0 || (strcmp(op, "users-repeat") == 0 && argc > 1)) {
        int times = op[5] == '-' ? atoi(argv[1]) : 1;
        bool archived = argc > 1 && strcmp(argv[1], "archived") == 0;
        for (int i = 0; i < times; i++) {
            struct rd_moco_user_list l;
            rc = rd_moco_list_users(m, archived, pr->deadline, &l, &pr->err);
            if (rc == 0 && i == times - 1) {
                pr->result = json_object_new_array();
                for (size_t j = 0; j < l.count; j++) {
                    struct json_object *o = json_object_new_object();
                    json_object_object_add(o, "id", json_object_new_int64(l.items[j].id));
                    json_object_object_add(o, "email", jstr_or_null(l.items[j].email));
                    json_object_object_add(o, "firstname", jstr_or_null(l.items[j].firstname));
                    json_object_object_add(o, "lastname", jstr_or_null(l.items[j].lastname));
                    json_object_object_add(o, "active", json_object_new_boolean(l.items[j].active));
                    json_object_array_add(pr->result, o);
                }
            }
            rd_moco_user_list_free(&l);
            if (rc != 0)
                break;
        }
    } else if (strcmp(op, "presences") == 0 && argc > 2) {
        struct rd_moco_presence_list l;
        rc = rd_moco_list_presences(m, argv[1], argv[2], argc > 3 ? atoll(argv[3]) : 0,
                                    pr->deadline, &l, &pr->err);
        if (rc == 0) {
            pr->result = json_object_new_array();
            for (size_t j = 0; j < l.count; j++) {
                struct json_object *o = json_object_new_object();
                json_object_object_add(o, "id", json_object_new_int64(l.items[j].id));
                json_object_object_add(o, "date", json_object_new_string(l.items[j].date));
                json_object_object_add(o, "from", json_object_new_string(l.items[j].from));
                json_object_object_add(o, "to", json_object_new_string(l.items[j].to));
                json_object_object_add(o, "user_id", json_object_new_int64(l.items[j].user_id));
                json_object_array_add(pr->result, o);
            }
        }
        rd_moco_presence_list_free(&l);
    } else if (strcmp(op, "schedules") == 0 && argc > 2) {
        struct rd_moco_schedule_list l;
        rc = rd_moco_list_schedules(m, argv[1], argv[2], argc > 3 ? atoll(argv[3]) : 0,
                                    pr->deadline, &l, &pr->err);
        if (rc == 0) {
            pr->result = json_object_new_array();
            for (size_t j = 0; j < l.count; j++) {
                struct json_object *o = json_object_new_object();
                json_object_object_add(o, "id", json_object_new_int64(l.items[j].id));
                json_object_object_add(o, "date", json_object_new_string(l.items[j].date));
                json_object_object_add(o, "am", json_object_new_boolean(l.items[j].am));
                json_object_object_add(o, "pm", json_object_new_boolean(l.items[j].pm));
                json_object_object_add(o, "comment", jstr_or_null(l.items[j].comment));
                json_object_object_add(o, "absence_code",
                                       json_object_new_int(l.items[j].absence_code));
                json_object_object_add(o, "user_id", json_object_new_int64(l.items[j].user_id));
                json_object_array_add(pr->result, o);
            }
        }
        rd_moco_schedule_list_free(&l);
    } else if (strcmp(op, "schedule-create") == 0 && argc > 5) {
        struct rd_moco_schedule s = {.user_id = atoll(argv[1]),
                                     .absence_code = atoi(argv[3]),
                                     .am = strcmp(argv[4], "true") == 0,
                                     .pm = strcmp(argv[5], "true") == 0,
                                     .comment = argc > 6 ? argv[6] : NULL};
        snprintf(s.date, sizeof(s.date), "%s", argv[2]);
        int64_t id = 0;
        rc = rd_moco_create_schedule(m, &s, &pr->audit, pr->deadline, &id, &pr->err);
        pr->result = json_object_new_object();
        json_object_object_add(pr->result, "id", json_object_new_int64(id));
    } else if (strcmp(op, "schedule-delete") == 0 && argc > 1) {
        bool gone = false;
        rc = rd_moco_delete_schedule(m, atoll(argv[1]), &pr->audit, pr->deadline, &gone, &pr->err);
        pr->result = json_object_new_object();
        json_object_object_add(pr->result, "gone", json_object_new_boolean(gone));
    } else {
        usage();
    }
    rd_moco_free(m);
    return rc;
}

/* ---- platform ---- */

static struct json_object *scim_user_json(const struct rd_scim_user *u)
{
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "id", jstr_or_null(u->id));
    json_object_object_add(o, "userName", jstr_or_null(u->user_name));
    json_object_object_add(o, "active", json_object_new_boolean(u->active));
    json_object_object_add(o, "externalId", jstr_or_null(u->external_id));
    json_object_object_add(o, "manager_id", jstr_or_null(u->manager_id));
    json_object_object_add(o, "department", jstr_or_null(u->department));
    return o;
}

static const char *dash_null(const char *s)
{
    return strcmp(s, "-") == 0 ? NULL : s;
}

static int run_scim(struct probe *pr, int argc, char **argv)
{
    struct rd_scim *s =
        rd_scim_new(pr->http, need("SCIM_BASE"), env("PLATFORM_BASE"), need("PLATFORM_TOKEN"));
    if (env("SCIM_COUNT"))
        rd_scim_set_page_size(s, atoi(env("SCIM_COUNT")));
    const char *op = argv[0];
    int rc = -1;
    if (strcmp(op, "find") == 0 && argc > 1) {
        bool found;
        struct rd_scim_user u;
        rc = rd_scim_find_user(s, argv[1], pr->deadline, &found, &u, &pr->err);
        if (rc == 0)
            pr->result = found ? scim_user_json(&u) : NULL;
        rd_scim_user_clear(&u);
    } else if (strcmp(op, "users") == 0) {
        struct rd_scim_user_list l;
        rc = rd_scim_list_users(s, pr->deadline, &l, &pr->err);
        if (rc == 0) {
            pr->result = json_object_new_array();
            for (size_t i = 0; i < l.count; i++)
                json_object_array_add(pr->result, scim_user_json(&l.items[i]));
        }
        rd_scim_user_list_free(&l);
    } else if (strcmp(op, "create") == 0 && argc > 3) {
        struct rd_scim_new_user nu = {.user_name = argv[1],
                                      .given_name = argv[2],
                                      .family_name = argv[3],
                                      .external_id = argc > 4 ? argv[4] : NULL,
                                      .active = true};
        struct rd_scim_user u;
        rc = rd_scim_create_user(s, &nu, &pr->audit, pr->deadline, &u, &pr->err);
        if (rc == 0)
            pr->result = scim_user_json(&u);
        rd_scim_user_clear(&u);
    } else if (strcmp(op, "active") == 0 && argc > 2) {
        rc = rd_scim_set_active(s, argv[1], strcmp(argv[2], "true") == 0, &pr->audit, pr->deadline,
                                &pr->err);
    } else if (strcmp(op, "manager") == 0 && argc > 2) {
        rc =
            rd_scim_set_manager(s, argv[1], dash_null(argv[2]), &pr->audit, pr->deadline, &pr->err);
    } else if (strcmp(op, "department") == 0 && argc > 2) {
        rc = rd_scim_set_department(s, argv[1], dash_null(argv[2]), &pr->audit, pr->deadline,
                                    &pr->err);
    } else if (strcmp(op, "group") == 0 && argc > 1) {
        bool found;
        struct rd_scim_group g;
        rc = rd_scim_find_group(s, argv[1], pr->deadline, &found, &g, &pr->err);
        if (rc == 0 && found) {
            pr->result = json_object_new_object();
            json_object_object_add(pr->result, "id", jstr_or_null(g.id));
            json_object_object_add(pr->result, "displayName", jstr_or_null(g.display_name));
            struct json_object *m = json_object_new_array();
            for (size_t i = 0; i < g.nmembers; i++)
                json_object_array_add(m, json_object_new_string(g.members[i]));
            json_object_object_add(pr->result, "members", m);
        }
        rd_scim_group_clear(&g);
    } else if ((strcmp(op, "group-add") == 0 || strcmp(op, "group-remove") == 0) && argc > 2) {
        const char *const *ids = (const char *const *)&argv[2];
        rc = op[6] == 'a' ? rd_scim_group_add_members(s, argv[1], ids, (size_t)(argc - 2),
                                                      &pr->audit, pr->deadline, &pr->err)
                          : rd_scim_group_remove_members(s, argv[1], ids, (size_t)(argc - 2),
                                                         &pr->audit, pr->deadline, &pr->err);
    } else if (strcmp(op, "delegate") == 0 && argc > 5) {
        char *id = NULL;
        bool existed = false;
        rc = rd_platform_create_delegation(s, argv[1], argv[2], argv[3], argv[4],
                                           argc > 6 ? argv[6] : "absence", argv[5], &pr->audit,
                                           pr->deadline, &id, &existed, &pr->err);
        pr->result = json_object_new_object();
        json_object_object_add(pr->result, "id", jstr_or_null(id));
        json_object_object_add(pr->result, "existed", json_object_new_boolean(existed));
        free(id);
    } else if (strcmp(op, "delegations") == 0) {
        struct rd_delegation_list l;
        rc = rd_platform_list_delegations(s, argc > 1 ? argv[1] : NULL, pr->deadline, &l, &pr->err);
        if (rc == 0) {
            pr->result = json_object_new_array();
            for (size_t i = 0; i < l.count; i++) {
                struct json_object *o = json_object_new_object();
                json_object_object_add(o, "id", jstr_or_null(l.items[i].id));
                json_object_object_add(o, "approver", jstr_or_null(l.items[i].approver));
                json_object_object_add(o, "delegate", jstr_or_null(l.items[i].delegate));
                json_object_object_add(o, "external_id", jstr_or_null(l.items[i].external_id));
                json_object_array_add(pr->result, o);
            }
        }
        rd_delegation_list_free(&l);
    } else if (strcmp(op, "undelegate") == 0 && argc > 1) {
        bool gone = false;
        rc = rd_platform_delete_delegation(s, argv[1], &pr->audit, pr->deadline, &gone, &pr->err);
        pr->result = json_object_new_object();
        json_object_object_add(pr->result, "gone", json_object_new_boolean(gone));
    } else {
        usage();
    }
    rd_scim_free(s);
    return rc;
}

static int run_alerts(struct probe *pr, const char *system, int argc, char **argv)
{
    if (strcmp(system, "slack") == 0 && strcmp(argv[0], "post") == 0 && argc > 1) {
        struct json_object *blocks = argc > 2 ? json_tokener_parse(argv[2]) : NULL;
        int rc = rd_slack_post(pr->http, need("SLACK_URL"), argv[1], blocks, &pr->audit,
                               pr->deadline, &pr->err);
        json_object_put(blocks);
        return rc;
    }
    if (strcmp(system, "mail") == 0 && strcmp(argv[0], "send") == 0 && argc > 3) {
        const char *to[1] = {argv[1]};
        return rd_mailer_send(need("SMTP_URL"), need("SMTP_FROM"), to, 1, argv[2], argv[3],
                              env("PROBE_CA_FILE"), pr->deadline, &pr->err);
    }
    usage();
    return -1;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        usage();
    enum rd_log_level lvl = RD_LOG_DEBUG;
    if (env("PROBE_LOG_LEVEL") && !rd_log_parse_level(env("PROBE_LOG_LEVEL"), &lvl))
        usage();
    rd_log_setup(lvl, RD_LOG_JSON);
    rd_http_global_init();
    struct probe pr = {0};
    pr.share = rd_http_share_new();
    pr.opts = (struct rd_http_opts){.ca_file = env("PROBE_CA_FILE"),
                                    .timeout_ms =
                                        env("PROBE_TIMEOUT_MS") ? atol(env("PROBE_TIMEOUT_MS")) : 0,
                                    .connect_timeout_ms = 2000,
                                    .share = pr.share};
    pr.http = rd_http_client_new(&pr.opts);
    double budget = env("PROBE_BUDGET_S") ? atof(env("PROBE_BUDGET_S")) : 30.0;
    double start = rd_http_now();
    pr.deadline = start + budget;
    if (env("PROBE_DATABASE_URL")) {
        char err[256];
        pr.db = rd_db_connect(env("PROBE_DATABASE_URL"), "upstream_probe", err, sizeof(err));
        if (!pr.db) {
            fprintf(stderr, "upstream_probe: %s\n", err);
            return 2;
        }
        pr.audit = (struct rd_audit_ctx){
            .db = pr.db,
            .connection_id = env("PROBE_CONNECTION_ID") ? atoll(env("PROBE_CONNECTION_ID")) : 0,
            .reason = env("PROBE_REASON") ? env("PROBE_REASON") : "probe"};
    }
    const char *system = argv[1];
    int rc;
    if (strcmp(system, "personio") == 0)
        rc = run_personio(&pr, argc - 2, argv + 2);
    else if (strcmp(system, "moco") == 0)
        rc = run_moco(&pr, argc - 2, argv + 2);
    else if (strcmp(system, "scim") == 0 || strcmp(system, "platform") == 0)
        rc = run_scim(&pr, argc - 2, argv + 2);
    else
        rc = run_alerts(&pr, system, argc - 2, argv + 2);
    struct json_object *out = json_object_new_object();
    json_object_object_add(out, "ok", json_object_new_boolean(rc == 0));
    json_object_object_add(out, "result", pr.result);
    if (rc != 0) {
        struct json_object *e = json_object_new_object();
        json_object_object_add(e, "permanent", json_object_new_boolean(pr.err.permanent));
        json_object_object_add(e, "http_status", json_object_new_int(pr.err.http_status));
        json_object_object_add(e, "retry_after_s", json_object_new_int(pr.err.retry_after_s));
        json_object_object_add(e, "msg", json_object_new_string(pr.err.msg));
        json_object_object_add(e, "outcome_unknown",
                               json_object_new_boolean(pr.err.outcome_unknown));
        json_object_object_add(out, "error", e);
    }
    json_object_object_add(out, "elapsed_s", json_object_new_double(rd_http_now() - start));
    json_object_object_add(out, "auth_count",
                           json_object_new_int64((int64_t)rd_personio_auth_count()));
    printf("%s\n", json_object_to_json_string_ext(out, JSON_C_TO_STRING_PLAIN));
    json_object_put(out);
    rd_http_client_free(pr.http);
    rd_http_share_free(pr.share);
    rd_personio_token_cache_clear();
    rd_moco_pacer_clear();
    if (pr.db)
        PQfinish(pr.db);
    return rc == 0 ? 0 : 1;
}
