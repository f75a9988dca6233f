/*
 * One person's lifecycle convergence (DESIGN.md §1, rows 2–4): the personio.person
 * handler and the nightly reconciliation both call rd_person_converge for an
 * employee as Personio has them now. It remembers them in the people mirror, links
 * their platform and MOCO accounts (identity.h), then runs each lifecycle step:
 * onboarding, movers (team, department, manager), last-day deactivation.
 */
#ifndef ROSTERD_PERSON_H
#define ROSTERD_PERSON_H

#include <stdint.h>

#include "rosterd/http.h"
#include "rosterd/personio.h"
#include "rosterd/sync.h"

/*
 * Converges the platform (and the MOCO link) to e. Findings go to s. -1 with err
 * on an upstream or database failure that a retry may fix (or permanent).
 */
int rd_person_converge(struct rd_sync *s, const struct rd_personio_employee *e,
                       struct rd_http_error *err) __attribute__((warn_unused_result));

/*
 * Personio no longer knows employee personio_id (404): the people row says who it
 * was. Nothing upstream is changed by the identity step itself.
 */
int rd_person_gone(struct rd_sync *s, int64_t personio_id, struct rd_http_error *err)
    __attribute__((warn_unused_result));

#endif
