/*
 * The personio.person handler and rd_person_converge (include/rosterd/person.h):
 * a person or employment notification names a person (or nobody, then everyone);
 * the handler re-reads Personio and converges, the same way the nightly run does.
 */
#include "rosterd/person.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rosterd/handler.h"
#include "rosterd/identity.h"
#include "rosterd/log.h"

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
    if (rd_sync_has(s, "platform") && rd_identity_platform(s, e, &user, &link, err) != 0) {
        rd_scim_user_clear(&user); /* a failed e-mail follow still hands back the account */
        return -1;
    }
    int rc = 0;
    if (rd_sync_has(s, "moco")) {
        int64_t moco_id = 0;
        enum rd_link_state mlink;
        rc = rd_identity_moco(s, e, &moco_id, &mlink, err);
    }
    /* The lifecycle steps (onboarding, movers, deactivation) follow here. */
    rd_scim_user_clear(&user);
    return rc;
}

int rd_person_gone(struct rd_sync *s, int64_t personio_id, struct rd_http_error *err)
{
    (void)err;
    rd_log_info("Personio employee %lld no longer exists (%s)", (long long)personio_id, s->reason);
    return 0;
}

/* Every employee: a notification that named nobody (DESIGN.md §5). */
static int converge_all(struct rd_sync *s, struct rd_http_error *err)
{
    const struct rd_personio_employee_list *all = NULL;
    if (rd_sync_employees(s, &all, err) != 0)
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
    if (rc == 0)
        rd_sync_note(s, ctx->note, sizeof(ctx->note));
    else
        rd_sync_fail(ctx, &err);
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
