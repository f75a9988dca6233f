/*
 * Approver reassignment (DESIGN.md §1 row 4): an approver (the HR supervisor of at
 * least one employee who is not inactive) with an approved absence gets an approval
 * delegation on the platform for the absence period, created as soon as rosterd sees
 * the absence (so before it starts): POST /approval-delegations with external_id
 * "rosterd:<connection>:time-off:<Personio id>:<first day>:<last day>", from local
 * midnight of the first day to local midnight after the last (connection time zone).
 *
 * - The delegate is the approver's own HR supervisor when they are in Personio, not
 *   inactive, have an active platform account and are not away themselves then;
 *   else the connection's fallback_approver (a platform user other than the
 *   approver). With neither, nothing is created: a `conflict` finding and one alert
 *   ask an operator to set fallback_approver (or a supervisor in Personio).
 * - A moved or shortened absence, or a new delegate, replaces the delegation (delete
 *   + create); a cancelled, rejected or deleted absence deletes it.
 * - Every write is audited; the admins and the approver (by e-mail) get one alert per
 *   delegation made, replaced or removed. Only delegations whose external_id rosterd
 *   made are ever touched. Level-triggered: the platform's list of the approver's
 *   delegations is the truth compared against; a second call changes nothing.
 */
#ifndef ROSTERD_APPROVER_H
#define ROSTERD_APPROVER_H

#include "rosterd/http.h"
#include "rosterd/personio.h"
#include "rosterd/sync.h"

/* How far ahead rd_person_converge looks for absences (days after today). */
#define RD_APPROVER_HORIZON_DAYS 120

/*
 * An approver's delegations for their absences overlapping [from, to] (YYYY-MM-DD,
 * both required). Called by the personio.absence handler with the absence's
 * employee, by rd_person_converge for [today, today + RD_APPROVER_HORIZON_DAYS] and
 * by the nightly run. Honours policy.approver_reassignment and dry runs (no write,
 * no alert). -1 with err on an upstream or database failure.
 */
int rd_approver_converge(struct rd_sync *s, const struct rd_personio_employee *e, const char *from,
                         const char *to, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/* rd_approver_converge over [today, today + RD_APPROVER_HORIZON_DAYS] in the connection's zone. */
int rd_approver_converge_ahead(struct rd_sync *s, const struct rd_personio_employee *e,
                               struct rd_http_error *err) __attribute__((warn_unused_result));

#endif
