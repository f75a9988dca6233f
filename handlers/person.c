/*
 * The personio.person handler and rd_person_converge (include/rosterd/person.h):
 * a person or employment notification names a person (or nobody, then everyone);
 * the handler re-reads Personio and converges, the same way the nightly run does.
 * The steps live in their capability's file: deactivation.c, movers.c,
 * onboarding.c, approver.c.
 */
#include "rosterd/person.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lifecycle_internal.h"
#include "rosterd/approver.h"
#include "rosterd/deactivation.h"
#include "rosterd/handler.h"
#include "rosterd/identity.h"
#include "rosterd/log.h"
#include "rosterd/movers.h"
#include "rosterd/onboarding.h"

/*
 * The lifecycle steps on the platform, in this order: a due deactivation first (a
 * leaver's account is then left alone by the rest), the movers' team, department
 * and manager, the new-hire alert for someone without an account, and the
 * approver's delegations.
 */
static int lifecycle_steps(struct rd_sync *s, const struct rd_personio_employee *e,
                           struct rd_scim_user *user, enum rd_link_state link,
                           struct rd_http_error *err)
{
    bool leaving = false;
    if (rd_deactivation_converge(s, e, user, link, &leaving, err) != 0)
        return -1;
    if (!leaving && (link == RD_LINK_PINNED || link == RD_LINK_NEW) &&
        rd_movers_converge(s, e, user, err) != 0)
        return -1;
    if (rd_onboarding_converge(s, e, link, user, err) != 0)
        return -1;
    return leaving ? 0 : rd_approver_converge_ahead(s, e, err);
}

int rd_person_converge(struct rd_sync *s, const struct rd_personio_employee *e,
                       struct rd_http_error *err)
{
    char dberr[256];
    if (rd_identity_remember(s, e, dberr, sizeof(dberr)) != 0) {
        rd_http_error_set(err, false, 0, "people: %s", dberr);
        return -1;
    }
    struct rd_scim_user user;
    enum rd_link_state link = RD_LINK_NONE;
    memset(&user, 0, sizeof(user));
    if (rd_sync_has(s, "platform") && rd_identity_platform(s, e, &user, &link, err) != 0)
        return -1;
    int rc = 0;
    if (rd_sync_has(s, "moco")) {
        int64_t moco_id = 0;
        enum rd_link_state mlink;
        rc = rd_identity_moco(s, e, &moco_id, &mlink, err);
    }
    if (rc == 0 && rd_sync_has(s, "platform"))
        rc = lifecycle_steps(s, e, &user, link, err);
    rd_scim_user_clear(&user);
    return rc;
}

int rd_person_gone(struct rd_sync *s, int64_t personio_id, struct rd_http_error *err)
{
    rd_log_info("Personio employee %lld no longer exists (%s)", (long long)personio_id, s->reason);
    return rd_sync_has(s, "platform") ? rd_deactivation_gone(s, personio_id, err) : 0;
}

/*
 * Reads the full lists once, so the per-person steps answer from them instead of
 * asking each upstream per person (MOCO allows one request a second): platform
 * users, MOCO users and everyone's time-offs for the approvers' window.
 */
static int preload(struct rd_sync *s, struct rd_http_error *err)
{
    const struct rd_scim_user_list *users = NULL;
    const struct rd_moco_user_list *moco = NULL;
    const struct rd_personio_time_off_list *toffs = NULL;
    if (rd_sync_has(s, "platform") && rd_sync_scim_users(s, &users, err) != 0)
        return -1;
    if (rd_sync_has(s, "moco") && rd_sync_moco_users(s, &moco, err) != 0)
        return -1;
    const char *today = rd_lc_today(s, err);
    if (!today)
        return -1;
    char to[11];
    if (rd_lc_date_add(s, today, RD_APPROVER_HORIZON_DAYS, to, err) != 0)
        return -1;
    return rd_sync_time_offs(s, 0, today, to, &toffs, err);
}

/* Every employee: a notification that named nobody (DESIGN.md §5). */
static int converge_all(struct rd_sync *s, struct rd_http_error *err)
{
    const struct rd_personio_employee_list *all = NULL;
    if (rd_sync_employees(s, &all, err) != 0 || preload(s, err) != 0)
        return -1;
    for (size_t i = 0; i < all->count; i++) {
        if (rd_sync_should_stop(s)) {
            rd_http_error_set(err, false, 0, "stopped after %zu of %zu employees", i, all->count);
            return -1;
        }
        if (rd_person_converge(s, &all->items[i], err) != 0)
            return -1;
    }
    return 0;
}

/* People the job's events say were created: new employees whatever their hire date. */
static void mark_created(struct rd_sync *s, const struct rd_job_ctx *ctx)
{
    for (size_t i = 0; i < ctx->nevents; i++) {
        const struct rd_job_event *ev = &ctx->events[i];
        if (!ev->subject || !ev->event_type ||
            (strcmp(ev->event_type, "person.created") != 0 &&
             strcmp(ev->event_type, "employment.created") != 0))
            continue;
        char *end = NULL;
        long long id = strtoll(ev->subject, &end, 10);
        if (end && !*end && id > 0)
            rd_lc_mark_created(s, id);
    }
}

static int person_run(struct rd_job_ctx *ctx)
{
    int64_t id = 0;
    if (ctx->subject) {
        char *end = NULL;
        id = strtoll(ctx->subject, &end, 10);
        if (!end || *end || id <= 0) {
            snprintf(ctx->note, sizeof(ctx->note),
                     "ignored: person id \"%.64s\" is not a Personio employee id", ctx->subject);
            return 0;
        }
    }
    struct rd_sync *s = rd_sync_open_job(ctx);
    if (!s)
        return -1;
    mark_created(s, ctx);
    struct rd_http_error err = {0};
    int rc;
    if (!id) {
        rc = converge_all(s, &err);
    } else {
        const struct rd_personio_employee *e = NULL;
        bool gone = false;
        rc = rd_sync_employee(s, id, &e, &gone, &err);
        if (rc == 0)
            rc = gone ? rd_person_gone(s, id, &err) : rd_person_converge(s, e, &err);
    }
    if (rc == 0) {
        rd_lc_compose_note(s, ctx->note, sizeof(ctx->note));
    } else {
        rd_sync_fail(ctx, &err);
    }
    rd_sync_close(s);
    return rc;
}

static const struct rd_handler person_handlers[] = {
    {.kind = "personio.person", .run = person_run, .needs_connection = true},
};

const struct rd_capability rd_cap_person = {
    .name = "person",
    .handlers = person_handlers,
    .nhandlers = sizeof(person_handlers) / sizeof(person_handlers[0]),
};
