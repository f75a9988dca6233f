/*
 * Movers (DESIGN.md §1 row 2, "team/department/manager"): a person's platform
 * account follows their HR team, department and supervisor.
 *
 * - Team: the account is a member of the platform group team_map[HR team] and of no
 *   other group that team_map maps to (a mover leaves the old team's group). Groups
 *   no team maps to are never touched. An HR team that is not mapped leaves the
 *   memberships alone; an account then still in a team group is an unmapped_team
 *   finding for a person to settle.
 * - Department: the enterprise department is the HR department's name.
 * - Manager: the enterprise manager is the platform account of the HR supervisor.
 *
 * A value Personio does not give (no team, department or supervisor: the API
 * credential may not see the field) is left as it is on the platform, never cleared.
 */
#ifndef ROSTERD_MOVERS_H
#define ROSTERD_MOVERS_H

#include "rosterd/http.h"
#include "rosterd/personio.h"
#include "rosterd/scim.h"
#include "rosterd/sync.h"

/*
 * Converges account (e's active platform account, as read; updated in place) to e.
 * Writes are audited with the value before; team_changed and manager_changed
 * findings say what changed (planned in a dry run). -1 with err on a failure.
 */
int rd_movers_converge(struct rd_sync *s, const struct rd_personio_employee *e,
                       struct rd_scim_user *account, struct rd_http_error *err)
    __attribute__((warn_unused_result));

#endif
