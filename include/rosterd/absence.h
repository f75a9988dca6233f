/*
 * Absence sync (DESIGN.md §1): approved Personio time-offs become MOCO schedules, one
 * per working day of the employee (their Personio work schedule, Monday to Friday
 * when it has none), half days as am/pm, absence_code from the connection's
 * absence_codes (5 when unmapped), with a comment naming the Personio absence. A day
 * that already has a MOCO entry rosterd did not make is left alone and reported,
 * unless it is code 1 ("not plannable"), which is deleted and replaced (never with
 * overwrite). When an absence is shortened, cancelled, rejected or deleted, only
 * rosterd's own entries (schedule_links) for the days no longer covered are deleted.
 *
 * rd_absence_converge is what the personio.absence handler, the daily sweep.absence
 * and the nightly reconciliation call.
 */
#ifndef ROSTERD_ABSENCE_H
#define ROSTERD_ABSENCE_H

#include <stddef.h>
#include <stdint.h>

#include "rosterd/http.h"
#include "rosterd/personio.h"
#include "rosterd/sync.h"

/*
 * MOCO schedules of moco_user_id converge to e's approved Personio time-offs for the
 * days [from, to] (days before start_date are skipped), reading through the context's
 * caches (rd_sync_time_offs, rd_timesync_schedules: a run's preload serves them),
 * writing with rd_sync_audit(s), nothing written in a dry run (findings "planned").
 * Findings, one per absence and change: absence_created (created or corrected
 * entries), absence_removed, conflict (a day kept because someone else's entry is
 * there: reported once). policy.absence_sync false does nothing.
 *
 * Returns 0, or -1 with err: transient trouble (retry), or permanent after the rest
 * of the days were converged when MOCO refused a write no retry can fix (an `error`
 * finding names it).
 */
int rd_absence_converge(struct rd_sync *s, const struct rd_personio_employee *e,
                        int64_t moco_user_id, const char *from, const char *to,
                        struct rd_http_error *err) __attribute__((warn_unused_result));

/*
 * The comment rosterd writes on the MOCO schedules of time-off t:
 * "<type>: Personio absence <id>, mirrored by rosterd [personio:<id>]".
 */
void rd_absence_comment(const struct rd_personio_time_off *t, char *out, size_t outlen);

/* e's working days (bit 0 Monday … bit 6 Sunday): its work schedule, else Monday to Friday. */
unsigned rd_absence_work_days(const struct rd_personio_employee *e);

#endif
