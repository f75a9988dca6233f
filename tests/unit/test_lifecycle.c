/*
 * The lifecycle handlers' pure helpers (handlers/lifecycle.c) without a database
 * or network: day arithmetic used in the alerts, names, the cached group
 * membership, and the job note an operator reads in `events show`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../handlers/lifecycle_internal.h"
#include "rosterd/identity.h"

static void test_days_between(void **state)
{
    (void)state;
    assert_int_equal(rd_lc_days_between("2026-12-03", "2027-01-01"), 29);
    assert_int_equal(rd_lc_days_between("2027-01-01", "2026-12-03"), -29);
    assert_int_equal(rd_lc_days_between("2028-02-28", "2028-03-01"), 2); /* leap year */
    assert_int_equal(rd_lc_days_between("2027-02-28", "2027-03-01"), 1);
    assert_int_equal(rd_lc_days_between("2026-12-03", "2026-12-03"), 0);
    assert_int_equal(rd_lc_days_between("yesterday", "2026-12-03"), 0);
    assert_int_equal(rd_lc_days_between(NULL, "2026-12-03"), 0);
    assert_int_equal(rd_lc_days_between("2026-13-01", "2026-12-03"), 0);
}

static void test_names(void **state)
{
    (void)state;
    char out[64];
    struct rd_personio_employee e = {
        .id = 7, .first_name = "Tom", .last_name = "Maier", .email = "tom@x"};
    rd_lc_name(&e, out, sizeof(out));
    assert_string_equal(out, "Tom Maier");
    e.first_name = "";
    rd_lc_name(&e, out, sizeof(out));
    assert_string_equal(out, "Maier");
    e.last_name = NULL;
    rd_lc_name(&e, out, sizeof(out));
    assert_string_equal(out, "tom@x");
    e.email = NULL;
    rd_lc_name(&e, out, sizeof(out));
    assert_string_equal(out, "Personio employee 7");
}

static void test_last_day_prefers_the_last_working_day(void **state)
{
    (void)state;
    struct rd_personio_employee e = {.termination_date = "2026-12-31",
                                     .last_working_day = "2026-12-15"};
    assert_string_equal(rd_identity_last_day(&e), "2026-12-15");
    e.last_working_day = NULL;
    assert_string_equal(rd_identity_last_day(&e), "2026-12-31");
    e.termination_date = NULL;
    assert_null(rd_identity_last_day(&e));
}

static void test_group_membership(void **state)
{
    (void)state;
    struct rd_scim_group g = {0};
    assert_false(rd_lc_group_has(&g, "u1"));
    rd_lc_group_changed(&g, "u1", true);
    rd_lc_group_changed(&g, "u2", true);
    rd_lc_group_changed(&g, "u1", true); /* already there: not twice */
    assert_int_equal(g.nmembers, 2);
    assert_true(rd_lc_group_has(&g, "u1") && rd_lc_group_has(&g, "u2"));
    rd_lc_group_changed(&g, "u1", false);
    assert_int_equal(g.nmembers, 1);
    assert_false(rd_lc_group_has(&g, "u1"));
    assert_false(rd_lc_group_has(NULL, "u2"));
    rd_scim_group_clear(&g);
}

/* A context just big enough for the note: findings and the lifecycle's own notes. */
static void add(struct rd_sync *s, const char *kind, const char *email, const char *detail)
{
    s->findings = realloc(s->findings, (s->nfindings + 1) * sizeof(*s->findings));
    s->findings[s->nfindings++] =
        (struct rd_finding){.kind = kind, .email = (char *)email, .detail = (char *)detail};
}

static void test_note_puts_changes_first_and_links_last(void **state)
{
    (void)state;
    struct rd_sync s = {0};
    add(&s, "linked", "tim@x", "Personio employee 1 is the platform account u1 (tim@x)");
    add(&s, "linked", "tim@x", "Personio employee 1 is MOCO user 9");
    add(&s, "deactivation_scheduled", "tim@x", "last working day 2026-12-10");
    add(&s, "linked", "mia@x", "e-mail changed in Personio from a to mia@x");
    rd_lc_note(&s, "delegated approvals of tim@x to ceo@x");
    char note[256];
    rd_lc_compose_note(&s, note, sizeof(note));
    assert_string_equal(note, "deactivation_scheduled tim@x: last working day 2026-12-10; "
                              "delegated approvals of tim@x to ceo@x; linked tim@x (platform, "
                              "MOCO); linked mia@x (new e-mail)");
    char small[24];
    rd_lc_compose_note(&s, small, sizeof(small));
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_string_equal(small + sizeof(small) - 4, "...");
    free(s.findings);
    s.ext[RD_SYNC_EXT_PEOPLE].free(s.ext[RD_SYNC_EXT_PEOPLE].data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_days_between),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_last_day_prefers_the_last_working_day),
        cmocka_unit_test(test_group_membership),
        cmocka_unit_test(test_note_puts_changes_first_and_links_last),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
