/*
 * Platform writes a reconciliation run sends behind (handlers/writeback.c).
 *
 * A first night can have thousands of independent SCIM PATCHes (the platform
 * lacks every manager); one after the other each costs its round trips and two
 * audit commits. While writing behind is on, a convergence step hands such a write
 * over instead of sending it. Up to RD_WRITEBACK_BATCH of them are collected; then,
 * in one transaction, the audit rows of the batch sent before are completed (one
 * UPDATE) and this batch's write-ahead rows committed "sending" (one INSERT), so
 * nothing goes out before its row is durable, as rd_audit_ctx_begin promises. The
 * PATCHes are sent RD_WRITEBACK_THREADS at a time (a thread and HTTP client each;
 * nothing but HTTP on those threads) while the run goes on converging people and
 * filling the next batch; when that one is full, this one is waited for and each
 * write's done function reports it on the run's thread (finding, cache). Only writes
 * to distinct users are handed over, and any other platform call of the context
 * (rd_sync_scim) sends what is pending first, so the platform receives the run's
 * writes in the order the convergence made them.
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
