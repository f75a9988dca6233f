/*
 * The admin listener (DESIGN.md §6): /healthz, /readyz, /metrics and the
 * bearer-token /admin/... API. Runs on its own thread and event loop with a
 * blocking database connection, so nothing it does can stall the intake.
 */
#ifndef ROSTERD_ADMIN_H
#define ROSTERD_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include "rosterd/config.h"

struct rd_admin;

/*
 * Binds cfg->admin_listen and starts the thread. token may be NULL (then
 * /admin/... answers 403); it is copied. Returns NULL with a message in err.
 */
struct rd_admin *rd_admin_start(const struct rd_config *cfg, const char *token, char *err,
                                size_t errlen);

/*
 * Adds a readiness condition: /readyz answers 503 while probe(arg) is false.
 * probe is called on the admin thread and must be thread-safe. Call before
 * traffic matters (right after start); at most one probe.
 */
void rd_admin_set_ready_probe(struct rd_admin *a, bool (*probe)(void *arg), void *arg);

/* Stops the thread and frees everything. Accepts NULL. */
void rd_admin_stop(struct rd_admin *a);

#endif
