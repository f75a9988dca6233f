/*
 * The HTTPS webhook intake (DESIGN.md §5): verifies each delivery, stores it
 * in Postgres with group commit over non-blocking libpq, and answers only
 * after the commit. Runs on one libevent loop; not thread-safe.
 */
#ifndef ROSTERD_INTAKE_H
#define ROSTERD_INTAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rosterd/config.h"
#include "rosterd/crypto.h"

struct event_base;
struct rd_intake;

/* Called on the loop thread after a commit that stored at least one new event. */
typedef void (*rd_intake_commit_cb)(void *arg);

/*
 * Binds cfg->listen and starts the database pool. Borrows cfg and key for
 * its lifetime. Returns NULL with a message (bind failure, TLS files) in err.
 * Free with rd_intake_free.
 */
struct rd_intake *rd_intake_new(struct event_base *base, const struct rd_config *cfg,
                                const uint8_t key[RD_SECRET_KEY_LEN], char *err, size_t errlen);

void rd_intake_on_commit(struct rd_intake *in, rd_intake_commit_cb cb, void *arg);

/* Rebuilds the TLS context from the configured files; the old one stays on error. */
int rd_intake_reload_tls(struct rd_intake *in, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Stops accepting, commits what is queued and answers every request in
 * flight, then calls done(arg) on the loop (at most timeout_s seconds later).
 */
void rd_intake_drain(struct rd_intake *in, int timeout_s, void (*done)(void *), void *arg);

/*
 * True once the intake can store deliveries: a database connection is up with
 * the current schema and the connection table has been read. Safe to call from
 * any thread (it reads one atomic flag the loop keeps up to date).
 */
bool rd_intake_ready(const struct rd_intake *in);

void rd_intake_free(struct rd_intake *in);

#endif
