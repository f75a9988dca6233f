/*
 * UNTIL THE MERGE ONLY — the lead deletes this file when the lifecycle (issue 9) and
 * time-sync (issue 10) branches are merged (INTERFACES.md).
 *
 * 1. Weak stand-ins for the other capabilities' convergence functions, so this branch
 *    links on its own: the strong definitions in handlers/approver.c, attendance.c and
 *    absence.c replace them.
 * 2. A TEST-ONLY deactivation step, active only when the environment has
 *    RD_TEST_STUB_DEACTIVATION=1 (the reconciliation tests set it), so the circuit
 *    breaker, the hold and `reconcile approve` can be tested before the lifecycle's
 *    real deactivation step exists. It follows the contract that step has to meet: a
 *    due deactivation is a `deactivated` finding with result `planned` in a dry run, a
 *    `deactivation_held` finding under s->hold_destructive, and otherwise SCIM
 *    active=false with a `deactivated`/`done` finding; protected users are skipped.
 *    "Due" is simplified here to "the last day is before today" (no time zone end of
 *    day, no delay): the real step owns those rules.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reconcile_internal.h"
#include "rosterd/identity.h"

__attribute__((weak)) int rd_approver_converge(struct rd_sync *s,
                                               const struct rd_personio_employee *e,
                                               const char *from, const char *to,
                                               struct rd_http_error *err)
{
    (void)s, (void)e, (void)from, (void)to, (void)err;
    return 0;
}

__attribute__((weak)) int rd_attendance_converge(struct rd_sync *s,
                                                 const struct rd_personio_employee *e,
                                                 int64_t moco_user_id, const char *from,
                                                 const char *to, struct rd_http_error *err)
{
    (void)s, (void)e, (void)moco_user_id, (void)from, (void)to, (void)err;
    return 0;
}

__attribute__((weak)) int rd_absence_converge(struct rd_sync *s,
                                              const struct rd_personio_employee *e,
                                              int64_t moco_user_id, const char *from,
                                              const char *to, struct rd_http_error *err)
{
    (void)s, (void)e, (void)moco_user_id, (void)from, (void)to, (void)err;
    return 0;
}

static int stub_enabled(void)
{
    const char *v = getenv("RD_TEST_STUB_DEACTIVATION");
    return v && strcmp(v, "1") == 0;
}

int rd_reconcile_test_deactivation(struct rd_sync *s, const struct rd_personio_employee *e,
                                   const char *today, struct rd_http_error *err)
{
    const char *last = rd_identity_last_day(e);
    if (!stub_enabled() || !last || strcmp(last, today) >= 0 ||
        !rd_sync_policy_bool(s, "deactivation", true))
        return 0;
    char *id = rd_identity_pinned_scim(s, e->id);
    if (!id)
        return 0;
    struct rd_scim_user u;
    bool found = false;
    int rc = rd_sync_scim_user(s, id, &found, &u, err);
    free(id);
    if (rc != 0 || !found || !u.active) {
        rd_scim_user_clear(&u);
        return rc;
    }
    if (rd_sync_is_protected(s, e->email)) {
        rd_sync_finding(s, "deactivated", e->email, NULL, RD_RESULT_SKIPPED,
                        "[test stub] %s is protected: not deactivated", e->email);
    } else if (s->hold_destructive) {
        rd_sync_finding(s, "deactivation_held", e->email, "deactivate the platform account",
                        RD_RESULT_HELD, "[test stub] last day %s passed; held by the circuit breaker",
                        last);
    } else if (s->dry_run) {
        rd_sync_finding(s, "deactivated", e->email, "deactivate the platform account",
                        RD_RESULT_PLANNED, "[test stub] last day %s passed", last);
    } else {
        struct rd_scim *sc = rd_sync_scim(s, err);
        rc = sc ? rd_scim_set_active(sc, u.id, false, rd_sync_audit(s), s->deadline, err) : -1;
        if (rc == 0) {
            u.active = false;
            rd_sync_scim_user_updated(s, &u);
            rd_sync_finding(s, "deactivated", e->email, "deactivated the platform account",
                            RD_RESULT_DONE, "[test stub] last day %s passed", last);
        }
    }
    rd_scim_user_clear(&u);
    return rc;
}
