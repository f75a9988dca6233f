/*
 * Platform writes a reconciliation run sends behind (handlers/writeback.c).
 *
 * A first night can have thousands of independent SCIM PATCHes (the platform
 * lacks every manager); one after the other each costs its round trips and two
 * audit commits. While writing behind is on, a convergence step hands such a write
 * over instead of sending it: up to RD_WRITEBACK_BATCH of them are collected, their
 * write-ahead audit rows committed in one transaction ("sending", before anything
 * goes out, as rd_audit_ctx_begin promises), the PATCHes sent RD_WRITEBACK_THREADS
 * at a time (a thread and HTTP client each; nothing but HTTP on those threads), the
 * audit rows completed in one transaction, and then, on the run's thread, each
 * write's done function reports it (finding, cache). One batch is in flight while
 * the next fills: the run goes on converging people meanwhile. Only writes to distinct users
 * are handed over, and any other platform call of the context (rd_sync_scim) sends
 * what is pending first, so a person's writes still reach the platform in order.
 * What was handed over and not yet sent when the run stops is dropped unsent and
 * unreported: the next run finds it still to do. Private to handlers/.
 */
#ifndef ROSTERD_WRITEBACK_INTERNAL_H
#define ROSTERD_WRITEBACK_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "rosterd/http.h"
#include "rosterd/sync.h"

struct json_object;

#define RD_WRITEBACK_BATCH 32
#define RD_WRITEBACK_THREADS 4

/* What a run's writing behind did (runs.stats.writeback). */
struct rd_writeback_stats {
    size_t writes, failed, batches;
    size_t failed_in_a_row; /* failures since the last write that went through */
};

/*
 * After the write was sent (rc 0) or failed (rc -1, err says why), on the run's
 * thread; owns arg (one allocation: a write dropped unsent is freed with free()).
 * Also called with rc -1 for a write whose audit row could not be recorded (it
 * was not sent).
 */
typedef void (*rd_writeback_done_fn)(struct rd_sync *s, void *arg, int rc,
                                     const struct rd_http_error *err);

/*
 * Turns writing behind on (stats borrowed, counted into) or off: what is pending is
 * sent first (send) or dropped unsent and unreported (a run that stopped).
 */
void rd_writeback_enable(struct rd_sync *s, struct rd_writeback_stats *stats);
void rd_writeback_disable(struct rd_sync *s, bool send);

/* True when s writes behind (a run's real pass; not from inside a done function). */
bool rd_writeback_on(const struct rd_sync *s);

/*
 * Hands over PATCH path with body (a PatchOp) and the audit's before (both taken,
 * before may be NULL); sends the batch when it is full. Outcomes go to done.
 */
void rd_writeback_patch(struct rd_sync *s, const char *path, struct json_object *body,
                        struct json_object *before, rd_writeback_done_fn done, void *arg);

/* Sends what is pending and waits for it (and for the batch in flight), reporting each. */
void rd_writeback_flush(struct rd_sync *s);

#endif
