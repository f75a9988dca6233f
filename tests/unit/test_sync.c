/*
 * Unit tests for the convergence context's pure parts (handlers/sync.c): policy
 * and mapping accessors over a connection document, finding kinds, findings kept
 * in order and summarised for a job's note, dry runs that never audit, and the
 * handler registry naming the lifecycle kinds. No database and no network.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "rosterd/connection.h"
#include "rosterd/handler.h"
#include "rosterd/sync.h"

static const char DOC[] =
    "{\"name\":\"acme\",\"timezone\":\"Europe/Berlin\",\"start_date\":\"2026-01-01\","
    "\"personio\":{\"base_url\":\"https://p.example\",\"client_id\":\"c\",\"client_secret\":\"s\"},"
    "\"platform\":{\"scim_base_url\":\"https://s.example/scim/v2\",\"token\":\"t\"},"
    "\"alerts\":{\"slack_webhook_url\":\"https://hooks.example/x\"},"
    "\"team_map\":{\"Backend\":\"Engineering\",\"Support\":\"Customer Care\"},"
    "\"absence_codes\":{\"Sick leave\":3,\"Vacation\":4},"
    "\"fallback_approver\":\"cfo@acme.example\","
    "\"policy\":{\"deactivation\":false,\"deactivation_delay_days\":2,"
    "\"protected_users\":[\"CEO@acme.example\"]}}";

struct fixture {
    struct rd_connection conn;
    struct rd_sync *s;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->conn.id = 7;
    f->conn.name = "acme";
    f->conn.timezone = "Europe/Berlin";
    f->conn.doc = json_tokener_parse(DOC);
    f->s = rd_sync_open_run(NULL, &f->conn, 42, true, NULL, 0, NULL);
    *state = f;
    return f->conn.doc && f->s ? 0 : -1;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rd_sync_close(f->s);
    json_object_put(f->conn.doc);
    free(f);
    return 0;
}

static void test_settings(void **state)
{
    struct rd_sync *s = ((struct fixture *)*state)->s;
    assert_string_equal(rd_sync_timezone(s), "Europe/Berlin");
    assert_string_equal(rd_sync_start_date(s), "2026-01-01");
    assert_false(rd_sync_policy_bool(s, "deactivation", true));
    assert_true(rd_sync_policy_bool(s, "onboarding_alerts", true)); /* absent: default */
    assert_int_equal(rd_sync_policy_int(s, "deactivation_delay_days", 0), 2);
    assert_int_equal(rd_sync_policy_int(s, "max_deactivations_per_run", 5), 5);
    assert_string_equal(rd_sync_team_for(s, "Backend"), "Engineering");
    assert_null(rd_sync_team_for(s, "Frontend"));
    assert_null(rd_sync_team_for(s, NULL));
    assert_int_equal(rd_sync_absence_code(s, "Vacation"), 4);
    assert_int_equal(rd_sync_absence_code(s, "Parental leave"), 5);
    assert_int_equal(rd_sync_absence_code(s, NULL), 5);
    assert_true(rd_sync_is_protected(s, "ceo@ACME.example"));
    assert_false(rd_sync_is_protected(s, "cfo@acme.example"));
    assert_false(rd_sync_is_protected(s, NULL));
    assert_string_equal(rd_sync_fallback_approver(s), "cfo@acme.example");
    assert_true(rd_sync_has(s, "personio"));
    assert_true(rd_sync_has(s, "platform"));
    assert_false(rd_sync_has(s, "moco"));
    assert_string_equal(s->reason, "run:42");
}

static void test_dry_run_never_audits(void **state)
{
    struct rd_sync *s = ((struct fixture *)*state)->s;
    assert_true(s->dry_run);
    assert_null(rd_sync_audit(s));
    struct rd_http_error err = {0};
    /* In a dry run an alert is not sent at all (no network here would make it fail). */
    assert_int_equal(rd_sync_alert(s, "subject", "text", NULL, NULL, &err), 0);
}

static void test_finding_kinds(void **state)
{
    (void)state;
    const char *kinds[] = {"linked",
                           "new_hire",
                           "platform_only",
                           "deactivated",
                           "deactivation_scheduled",
                           "deactivation_held",
                           "team_changed",
                           "manager_changed",
                           "unmapped_team",
                           "absence_created",
                           "absence_removed",
                           "attendance_pushed",
                           "attendance_removed",
                           "conflict",
                           "error"};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        assert_true(rd_finding_kind_valid(kinds[i]));
    assert_false(rd_finding_kind_valid("hired"));
    assert_false(rd_finding_kind_valid(""));
    assert_false(rd_finding_kind_valid(NULL));
}

static void test_findings_in_order_and_note(void **state)
{
    struct rd_sync *s = ((struct fixture *)*state)->s;
    rd_sync_finding(s, "linked", "a@acme.example", NULL, RD_RESULT_PLANNED, "employee %d", 1001);
    rd_sync_finding(s, "bogus", "b@acme.example", NULL, NULL, "dropped");
    rd_sync_finding(s, "conflict", NULL, NULL, RD_RESULT_NONE, "two accounts");
    assert_int_equal(s->nfindings, 2);
    assert_string_equal(s->findings[0].kind, "linked");
    assert_string_equal(s->findings[0].detail, "employee 1001");
    assert_string_equal(s->findings[0].result, "planned");
    assert_null(s->findings[1].email);
    char note[256];
    rd_sync_note(s, note, sizeof(note));
    assert_string_equal(note, "linked a@acme.example: employee 1001; conflict two accounts");
    char tiny[16];
    rd_sync_note(s, tiny, sizeof(tiny));
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
    assert_string_equal(tiny + strlen(tiny) - 3, "...");
}

static void test_registry_has_identity_kinds(void **state)
{
    (void)state;
    const struct rd_handler *h = rd_handler_find("personio.person");
    assert_non_null(h);
    assert_true(h->needs_connection);
    h = rd_handler_find("moco.user");
    assert_non_null(h);
    assert_true(h->needs_connection);
    assert_null(rd_handler_find("unrouted"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dry_run_never_audits, setup, teardown),
        cmocka_unit_test(test_finding_kinds),
        cmocka_unit_test_setup_teardown(test_findings_in_order_and_note, setup, teardown),
        cmocka_unit_test(test_registry_has_identity_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
