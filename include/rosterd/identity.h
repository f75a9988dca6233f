/*
 * Identity links (DESIGN.md §1): an HR employee is linked to a platform (SCIM) user
 * and to a MOCO user once by e-mail (case-insensitive), and the link is then pinned
 * to the Personio id in the people table, so an e-mail change in Personio follows
 * the person (the platform's userName is updated) instead of making a stranger. Two
 * candidate accounts for one person are a `conflict` finding and change nothing.
 *
 * These are convergence functions: the personio.person and moco.user handlers and
 * the nightly reconciliation call them alike, through a struct rd_sync.
 */
#ifndef ROSTERD_IDENTITY_H
#define ROSTERD_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rosterd/http.h"
#include "rosterd/personio.h"
#include "rosterd/scim.h"
#include "rosterd/sync.h"

/*
 * Records what Personio says of e in people (the mirror that answers "who reports
 * to X" and feeds `rosterctl hires`): e-mail, names, status, team, department,
 * supervisor, hire date and last day (last_working_day, else termination_date).
 * Links are kept. Nothing is written in a dry run. -1 with err on a database error.
 */
int rd_identity_remember(struct rd_sync *s, const struct rd_personio_employee *e, char *err,
                         size_t errlen) __attribute__((warn_unused_result));

/* The last day an employee works: last_working_day, else termination_date, else NULL. Borrowed. */
const char *rd_identity_last_day(const struct rd_personio_employee *e);

/* How a person's platform account was resolved. */
enum rd_link_state {
    RD_LINK_NONE = 0, /* no account on the platform (a hire to invite, or gone) */
    RD_LINK_PINNED,   /* the pinned account, still there */
    RD_LINK_NEW,      /* linked now by e-mail (a `linked` finding was recorded) */
    RD_LINK_CONFLICT, /* two or more candidates, or the only one belongs to someone else */
};

/*
 * Links e to its platform user and returns that user as the platform has it now in
 * *out (zeroed when there is none; clear it with rd_scim_user_clear):
 *  - a pinned account that still exists is kept; when its userName differs from
 *    e's e-mail, userName and emails are PATCHed to the HR address (audited, a
 *    `linked` finding says "e-mail changed");
 *  - a pinned account that is gone is unpinned and the person is linked afresh;
 *  - otherwise the single candidate (userName or e-mails equal to e's e-mail, or
 *    externalId equal to the Personio id) that no other person has pinned is
 *    linked; two or more candidates record a `conflict` naming both and change
 *    nothing.
 * Call rd_identity_remember first (the link lives in e's people row).
 */
int rd_identity_platform(struct rd_sync *s, const struct rd_personio_employee *e,
                         struct rd_scim_user *out, enum rd_link_state *state,
                         struct rd_http_error *err) __attribute__((warn_unused_result));

/*
 * Links e to its MOCO user the same way (by e-mail, then pinned to the MOCO id).
 * *moco_user_id is 0 when there is none or on a conflict (*state says which).
 */
int rd_identity_moco(struct rd_sync *s, const struct rd_personio_employee *e, int64_t *moco_user_id,
                     enum rd_link_state *state, struct rd_http_error *err)
    __attribute__((warn_unused_result));

/*
 * The Personio employee a MOCO user belongs to: the pinned link, else the MOCO
 * user's e-mail looked up in Personio (and then pinned). *personio_id is 0 when
 * MOCO or Personio does not know the user, or on a conflict.
 */
int rd_identity_person_for_moco(struct rd_sync *s, int64_t moco_user_id, int64_t *personio_id,
                                struct rd_http_error *err) __attribute__((warn_unused_result));

/* The MOCO user id pinned to a Personio employee (0 when none); one query. */
int64_t rd_identity_pinned_moco(struct rd_sync *s, int64_t personio_id);

/*
 * The MOCO user a Personio employee is or will be linked to, for reading ahead:
 * the pinned id, else the one MOCO user with e's address among the preloaded MOCO
 * users, else 0. Never asks MOCO; a wrong guess only costs the reader its own query.
 */
int64_t rd_identity_expected_moco(struct rd_sync *s, const struct rd_personio_employee *e);

/* The SCIM id pinned to a Personio employee, or NULL; a new string (free()). */
char *rd_identity_pinned_scim(struct rd_sync *s, int64_t personio_id);

/* ---- for a reconciliation run (handlers/reconcile.c) ---- */

/*
 * Loads every person's links of the connection (one query) into s, replacing an
 * earlier preload; from then on the pinned-link lookups above and the linking
 * functions answer from it (no query per person) and keep it up to date, a dry run
 * recording its planned links there only. -1 with err on a database error.
 */
int rd_identity_preload(struct rd_sync *s, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * rd_identity_remember for a whole list in a few statements (2,000 rows each);
 * afterwards rd_identity_remember does nothing for the rest of this context. Needs a
 * preload. Nothing is written in a dry run.
 */
int rd_identity_remember_all(struct rd_sync *s, const struct rd_personio_employee_list *list,
                             char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * With on, links made from now on are recorded in the preload at once and written to
 * the people table in batches of 500; rd_identity_flush_pins writes the rest (call it
 * before the context is closed: unwritten links are lost, harmlessly: the next run
 * links the same accounts by e-mail again). A clash is judged from the preload: the
 * run holds every link of the connection, and a link another process made meanwhile
 * makes the batch fail (a unique index) rather than steal an account.
 */
void rd_identity_batch_pins(struct rd_sync *s, bool on);
int rd_identity_flush_pins(struct rd_sync *s, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* People with a platform link in the preload (planned links of a dry run included). */
size_t rd_identity_linked_count(const struct rd_sync *s);

/* The Personio id whose platform link is scim_id, 0 when nobody's (from the preload). */
int64_t rd_identity_scim_owner(const struct rd_sync *s, const char *scim_id);

/*
 * The Personio ids of the people mirror (the preload): copies at most max of them into
 * ids (may be NULL) and returns how many there are.
 */
size_t rd_identity_known_people(const struct rd_sync *s, int64_t *ids, size_t max);

#endif
