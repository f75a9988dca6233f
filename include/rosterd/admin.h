/*
 * The admin listener (DESIGN.md §6): /healthz, /readyz, /metrics and the
 * bearer-token /admin/... API. Runs on its own thread and event loop with a
 * blocking database connection, so nothing it does can stall the intake.
 */
#ifndef ROSTERD_ADMIN_H
#define ROSTERD_ADMIN_H

#include <stddef.h>

#include "rosterd/config.h"

struct rd_admin;

/*
 * Binds cfg->admin_listen and starts the thread. token may be NULL (then
 * /admin/... answers 403); it is copied. Returns NULL with a message in err.
 */
struct rd_admin *rd_admin_start(const struct rd_config *cfg, const char *token, char *err,
                                size_t errlen);

/* Stops the thread and frees everything. Accepts NULL. */
void rd_admin_stop(struct rd_admin *a);

#endif
