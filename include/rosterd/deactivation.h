/*
 * Last-day deactivation (DESIGN.md §1 row 3, §7): an employee with a last day has
 * their platform account deactivated (SCIM active=false) at the end of that day in
 * the connection's time zone plus policy.deactivation_delay_days, computed in SQL
 * (rd_local_day_end). The last day is last_working_day when Personio gives it, else
 * termination_date (rd_identity_last_day): access ends when the work does, even if
 * the contract runs on.
 *
 * - A future instant is a job of kind lifecycle.deactivate (subject = Personio id,
 *   job key = the person's event key, so it never runs beside their events), one per
 *   person and instant (unique key "lifecycle.deactivate:<connection>:<person>:<epoch>");
 *   a moved date schedules the new instant and cancels the old job, a revoked
 *   termination cancels it. `rosterctl deactivations upcoming` lists these jobs.
 * - At run time the job re-reads Personio and converges the person again, so it
 *   deactivates only what is still due; an instant already past deactivates at once.
 * - policy.protected_users are never deactivated: a `deactivated` finding with
 *   result skipped, an audit row with outcome skipped and one alert say so.
 * - In a dry run a due deactivation is a `deactivated` finding with result planned;
 *   with s->hold_destructive (dry run or not) it is `deactivation_held` (held) and
 *   nothing is written.
 * - After the PATCH: a deactivations row, then one alert naming the person and the
 *   instant (local and UTC). A replay that finds the account inactive sends the alert
 *   if it is still owed, and writes nothing upstream.
 */
#ifndef ROSTERD_DEACTIVATION_H
#define ROSTERD_DEACTIVATION_H

#include <stdbool.h>
#include <stdint.h>

#include "rosterd/http.h"
#include "rosterd/identity.h"
#include "rosterd/personio.h"
#include "rosterd/scim.h"
#include "rosterd/sync.h"

/* The job kind of a scheduled deactivation. */
#define RD_DEACTIVATION_KIND "lifecycle.deactivate"

/*
 * The deactivation step of rd_person_converge: account is e's platform account as
 * identity.c found it (zeroed when none; updated in place when deactivated). *done
 * is set when the account is inactive now or e's last day has ended (the later
 * steps leave such an account alone). -1 with err on a failure.
 */
int rd_deactivation_converge(struct rd_sync *s, const struct rd_personio_employee *e,
                             struct rd_scim_user *account, enum rd_link_state link, bool *done,
                             struct rd_http_error *err) __attribute__((warn_unused_result));

/*
 * Personio no longer knows personio_id: with a last day in the people mirror the
 * deactivation proceeds from the mirror (a deleted leaver is still a leaver); an
 * active linked account without one is a platform_only finding. -1 with err.
 */
int rd_deactivation_gone(struct rd_sync *s, int64_t personio_id, struct rd_http_error *err)
    __attribute__((warn_unused_result));

#endif
