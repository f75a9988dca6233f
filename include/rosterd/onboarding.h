/*
 * Onboarding (DESIGN.md §1 row 2): a new employee in Personio who has no platform
 * account is announced to the admins once (Slack, and e-mail when configured) with
 * everything needed to decide, and recorded in the hires table. Nobody is invited
 * automatically: an operator invites with `rosterctl hires invite`, which creates the
 * platform account (rd_onboarding_invite).
 *
 * A hire is an employee with status onboarding or active, an e-mail address, no
 * platform account and no past last day, whose hire date is on or after the
 * connection's start_date (without one: at most 30 days ago), or who was named by a
 * person.created / employment.created event of the job. The alert goes out once per
 * person for all time (alerts_sent key "hire:<personio id>").
 */
#ifndef ROSTERD_ONBOARDING_H
#define ROSTERD_ONBOARDING_H

#include <stdbool.h>
#include <stddef.h>

#include "rosterd/http.h"
#include "rosterd/identity.h"
#include "rosterd/personio.h"
#include "rosterd/scim.h"
#include "rosterd/sync.h"

/*
 * The onboarding step of rd_person_converge, after the identity links: link and
 * account are what rd_identity_platform found (account borrowed, zeroed when none).
 * A hire gets the alert (once) and a hires row; a person who got an account since
 * (link RD_LINK_NEW) has their hires row marked linked. -1 with err when the alert
 * cannot be sent (Slack's 4xx is permanent: the job goes dead and a replay after
 * the fix sends it) or on a database failure.
 */
int rd_onboarding_converge(struct rd_sync *s, const struct rd_personio_employee *e,
                           enum rd_link_state link, const struct rd_scim_user *account,
                           struct rd_http_error *err) __attribute__((warn_unused_result));

/* What an invitation did, for rosterctl's message (strings empty when not set). */
struct rd_invite {
    char refused[512]; /* non-empty: nothing was created, this says why (exit 1) */
    char email[320];
    char name[256];
    char scim_id[128]; /* the new platform account */
    char department[256];
    char manager[320];   /* the manager's platform userName */
    char team[256];      /* the platform group joined, "" when none */
    char team_note[512]; /* why no group was joined, "" when one was */
};

/*
 * Invites the employee with this e-mail (case-insensitive) as an operator asked
 * (`rosterctl hires invite`): re-reads them in Personio, refuses an unknown e-mail,
 * someone inactive or someone already on the platform (out->refused, return 0),
 * else creates the platform user (name, e-mail, externalId = Personio id, enterprise
 * department and manager = the supervisor's platform account), adds them to the
 * platform group of their HR team (team_map), pins the link and marks the hire
 * invited. Every write is audited under s->reason. -1 with err on an upstream or
 * database failure.
 */
int rd_onboarding_invite(struct rd_sync *s, const char *email, struct rd_invite *out,
                         struct rd_http_error *err) __attribute__((warn_unused_result));

#endif
