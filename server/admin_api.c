/*
 * The /admin/... JSON API: mirrors rosterctl's event, replay and job commands.
 * Requests are already authorised by admin.c.
 */
#include <stdio.h>
#include <string.h>

#include "admin_internal.h"

void rd_admin_api(struct rd_admin *a, struct evhttp_request *req, enum evhttp_cmd_type cmd,
                  const char *path, const struct evhttp_uri *uri)
{
    (void)a, (void)cmd, (void)path, (void)uri;
    rd_admin_send_error(req, 404, "not found");
}

void rd_admin_render_job_states(struct rd_admin *a, struct rd_buf *out)
{
    (void)a, (void)out;
}
