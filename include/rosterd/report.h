/*
 * Reconciliation reports (DESIGN.md §7 "report"): one run's findings and counts as
 * JSON (the same for rosterctl report show --format json and GET /admin/reports/…),
 * and rendered for people: plain text for a finance admin, CSV (RFC 4180), and one
 * self-contained HTML page with an inline SVG chart of the last 30 runs. All
 * rendering is C, from the JSON, so every format says the same.
 *
 * Functions borrow a blocking, idle PGconn and json-c values; outputs are new.
 */
#ifndef ROSTERD_REPORT_H
#define ROSTERD_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "rosterd/mem.h"

struct json_object;

enum rd_report_format { RD_REPORT_TEXT = 0, RD_REPORT_JSON, RD_REPORT_CSV, RD_REPORT_HTML };

#define RD_REPORT_HISTORY 30 /* runs in the HTML chart */

/* "text", "json", "csv", "html" -> *f; false on anything else. */
bool rd_report_parse_format(const char *s, enum rd_report_format *f);

/*
 * One run's report: run_id, connection, kind (reconcile|approval), dry_run, status
 * (done|held|failed, or running while it runs), trigger, started_at, finished_at (UTC,
 * ISO 8601) and their local times in the connection's time zone (timezone,
 * started_at_local, finished_at_local), counts {kind: n}, findings [{kind, email,
 * detail, action, result}] in the order they were found, and employees, linked_users,
 * planned_deactivations, held_reason, error, warnings, approved_at, approved_by,
 * approval_run_id, approves_run_id, released (what an approval did for each held
 * person). run_id 0 means the connection's latest run; connection may be NULL with
 * a run_id. Runs whose lease lapsed are marked failed first. *out is NULL when there
 * is no such run (or it belongs to another connection); else new (json_object_put).
 */
int rd_report_get(PGconn *db, const char *connection, int64_t run_id, struct json_object **out,
                  char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * The connection's runs, newest first, at most limit, only those up to before_id
 * when it is not 0: [{run_id, kind, dry_run, status, started_at, finished_at,
 * counts}]. *out is new.
 */
int rd_report_list(PGconn *db, const char *connection, int64_t limit, int64_t before_id,
                   struct json_object **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Renders report (from rd_report_get) in format f into out. history (rd_report_list
 * of the runs up to this one, may be NULL) feeds the HTML chart.
 */
void rd_report_render(struct json_object *report, struct json_object *history,
                      enum rd_report_format f, struct rd_buf *out);

/* The text report, the CSV and the HTML page (rd_report_render's parts). */
void rd_report_text(struct json_object *report, struct rd_buf *out);
void rd_report_csv(struct json_object *report, struct rd_buf *out);
void rd_report_html(struct json_object *report, struct json_object *history, struct rd_buf *out);

/* Appends one CSV field (RFC 4180: quoted when needed, quotes doubled) to out. */
void rd_report_csv_field(struct rd_buf *out, const char *value);

/*
 * A plain-language summary of counts ({kind: n}) for Slack and job notes, e.g.
 * "2 new hires wait for an invitation, 1 account deactivated, 1 conflict to resolve";
 * "no changes" when empty.
 */
void rd_report_summary(struct json_object *counts, struct rd_buf *out);

/*
 * Sets rosterd_reconcile_last_success_timestamp_seconds{connection} from the runs
 * table (the last done real reconciliation of each connection), so every instance's
 * /metrics shows it whoever ran the run.
 */
int rd_report_update_metrics(PGconn *db, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
