/*
 * Process metrics for /metrics (Prometheus text format). Every function is
 * thread-safe: the intake loop, the workers and the admin thread all report.
 */
#ifndef ROSTERD_METRICS_H
#define ROSTERD_METRICS_H

#include <stdint.h>

#include "rosterd/mem.h"

/* rosterd_webhooks_total{connection,source,outcome}; outcome e.g. queued, duplicate, unauthorized.
 */
void rd_metrics_webhook(const char *connection, const char *source, const char *outcome);
/* rosterd_ingest_seconds: receipt of a request to its answer. */
void rd_metrics_ingest_observe(double seconds);
/* Both of the above for one answered request, under one lock (the intake's hot path). */
void rd_metrics_webhook_answered(const char *connection, const char *source, const char *outcome,
                                 double seconds);
/* rosterd_job_seconds{kind}: one handler run. */
void rd_metrics_job_observe(const char *kind, double seconds);
/* rosterd_upstream_requests_total{system,code}; code 0 = no HTTP answer (timeout, refused). */
void rd_metrics_upstream(const char *system, int code);
/* rosterd_reconcile_last_success_timestamp_seconds{connection}. */
void rd_metrics_reconcile_success(const char *connection, int64_t unix_seconds);

/* Appends every metric above in text format 0.0.4 (HELP and TYPE lines included). */
void rd_metrics_render(struct rd_buf *out);
/* Drops all recorded values (tests). */
void rd_metrics_reset(void);

#endif
