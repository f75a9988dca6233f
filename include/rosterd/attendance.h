/*
 * Attendance push (DESIGN.md §1): MOCO presences (working hours) become Personio
 * attendances, one per closed presence, approved (skip_approval=true), changed when
 * the presence changes and deleted when it is gone, past days included, never
 * before the connection's start_date. Only attendances rosterd created (recorded in
 * attendance_links) are ever changed or deleted.
 *
 * rd_attendance_converge is what the moco.presence handler, the hourly
 * sweep.attendance and the nightly reconciliation all call.
 */
#ifndef ROSTERD_ATTENDANCE_H
#define ROSTERD_ATTENDANCE_H

#include <stddef.h>
#include <stdint.h>

#include "rosterd/http.h"
#include "rosterd/personio.h"
#include "rosterd/sync.h"

/*
 * Personio attendances of e converge to the MOCO presences of moco_user_id for the
 * days [from, to] (YYYY-MM-DD; days before start_date are skipped), reading through
 * the context's caches (rd_timesync_*: a run's preload serves them), writing with
 * rd_sync_audit(s), nothing written in a dry run (findings say "planned"). Records
 * attendance_pushed, attendance_removed and conflict findings for changes only; an
 * open presence (no end) waits; policy.attendance_push false does nothing.
 *
 * Returns 0, or -1 with err: transient upstream or database trouble (retry: nothing
 * is applied twice), or permanent when a presence could not be pushed for a reason
 * a retry cannot fix: Personio refused it as overlapping another attendance (the
 * conflict finding names both; err->msg says the same), or another 4xx. The rest of
 * the person's days are converged before a permanent error is returned, and a known
 * conflict is not tried again while nothing changed. A caller working through many
 * people treats a permanent error as that person's (the finding is recorded) and
 * goes on.
 */
int rd_attendance_converge(struct rd_sync *s, const struct rd_personio_employee *e,
                           int64_t moco_user_id, const char *from, const char *to,
                           struct rd_http_error *err) __attribute__((warn_unused_result));

/*
 * The comment rosterd writes on the attendance of a presence:
 * "MOCO presence <id>, pushed by rosterd [moco-presence:<id>]".
 */
void rd_attendance_comment(int64_t presence_id, char *out, size_t outlen);

#endif
