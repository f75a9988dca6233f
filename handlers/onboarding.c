/*
 * Onboarding (include/rosterd/onboarding.h): the new-hire alert, once per person,
 * the hires table behind `rosterctl hires list`, and the operator's invitation
 * behind `rosterctl hires invite`.
 */
#include "rosterd/onboarding.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "lifecycle_internal.h"
#include "rosterd/db.h"
#include "rosterd/log.h"

/* Without a connection start_date, hires up to this many days ago are still new. */
#define HIRE_LOOKBACK_DAYS 30

static bool is_status(const char *st, const char *want)
{
    return st && strcmp(st, want) == 0;
}

/* See onboarding.h for what makes a hire. */
static int is_hire(struct rd_sync *s, const struct rd_personio_employee *e, bool *hire,
                   struct rd_http_error *err)
{
    *hire = false;
    if (!e->email || !*e->email ||
        !(is_status(e->status, "onboarding") || is_status(e->status, "active")))
        return 0;
    const char *today = rd_lc_today(s, err);
    if (!today)
        return -1;
    const char *last = rd_identity_last_day(e);
    if (last && strcmp(last, today) < 0)
        return 0; /* gone already: nothing to onboard */
    if (rd_lc_was_created(s, e->id)) {
        *hire = true;
        return 0;
    }
    if (!e->hire_date)
        return 0;
    char since[11];
    const char *start = rd_sync_start_date(s);
    if (start) {
        snprintf(since, sizeof(since), "%s", start);
    } else if (rd_lc_date_add(s, today, -HIRE_LOOKBACK_DAYS, since, err) != 0) {
        return -1;
    }
    *hire = strcmp(e->hire_date, since) >= 0;
    return 0;
}

static void start_phrase(struct rd_buf *b, const struct rd_personio_employee *e, const char *today)
{
    if (!e->hire_date) {
        rd_buf_puts(b, "has no start date in Personio yet.");
        return;
    }
    int d = rd_lc_days_between(today, e->hire_date);
    if (d > 0)
        rd_buf_printf(b, "starts on %s (in %d day%s).", e->hire_date, d, d == 1 ? "" : "s");
    else if (d == 0)
        rd_buf_printf(b, "starts today, %s.", e->hire_date);
    else
        rd_buf_printf(b, "started on %s (%d day%s ago).", e->hire_date, -d, d == -1 ? "" : "s");
}

/* The alert an admin reads: who, when, where, and what to do next. */
static char *hire_text(struct rd_sync *s, const struct rd_personio_employee *e, const char *today,
                       const char *mapped)
{
    char name[256];
    rd_lc_name(e, name, sizeof(name));
    struct rd_buf b = {0};
    rd_buf_printf(&b, "New hire: %s (%s) ", name, e->email);
    start_phrase(&b, e, today);
    rd_buf_printf(&b, "\nHR team: %s, department: %s.", e->team ? e->team : "none in Personio",
                  e->department ? e->department : "none in Personio");
    if (mapped)
        rd_buf_printf(&b, " Platform team: %s (team_map).", mapped);
    else if (e->team)
        rd_buf_printf(&b,
                      "\nWarning: the HR team \"%s\" is not mapped to a platform team (team_map of"
                      " connection %s), so an invite joins no team. Add \"%s\" to team_map and run"
                      " `rosterctl connection apply`, or add the team on the platform by hand.",
                      e->team, s->connection_name, e->team);
    else
        rd_buf_puts(&b, "\nWarning: Personio gives no HR team, so an invite joins no platform"
                        " team; add the team on the platform by hand.");
    rd_buf_printf(&b,
                  "\nNobody was invited automatically. To invite: `rosterctl hires invite %s"
                  " --connection %s`",
                  e->email, s->connection_name);
    return rd_buf_steal(&b);
}

static int hire_row(struct rd_sync *s, const struct rd_personio_employee *e,
                    struct rd_http_error *err)
{
    char cid[24], pid[24], dberr[256];
    const char *params[4] = {rd_lc_id(cid, sizeof(cid), s->connection_id),
                             rd_lc_id(pid, sizeof(pid), e->id), e->team, s->reason};
    if (rd_db_run(
            s->db,
            "INSERT INTO hires (connection_id, personio_id, status, hr_team, alerted_at, reason)"
            " VALUES ($1::bigint, $2::bigint, 'alerted', $3, now(), $4)"
            " ON CONFLICT (connection_id, personio_id) DO NOTHING",
            4, params, dberr, sizeof(dberr)) != 0)
        return rd_lc_db_fail(err, "hires", dberr);
    return 0;
}

static int mark_linked(struct rd_sync *s, int64_t personio_id, const char *scim_id,
                       struct rd_http_error *err)
{
    if (s->dry_run)
        return 0;
    char cid[24], pid[24], dberr[256];
    const char *params[3] = {rd_lc_id(cid, sizeof(cid), s->connection_id),
                             rd_lc_id(pid, sizeof(pid), personio_id), scim_id};
    if (rd_db_run(s->db,
                  "UPDATE hires SET status = 'linked', linked_at = now(), scim_id = $3,"
                  " updated_at = now() WHERE connection_id = $1::bigint"
                  " AND personio_id = $2::bigint AND status = 'alerted'",
                  3, params, dberr, sizeof(dberr)) != 0)
        return rd_lc_db_fail(err, "hires", dberr);
    return 0;
}

static void hire_findings(struct rd_sync *s, const struct rd_personio_employee *e,
                          const char *mapped, const char *result)
{
    char name[256];
    rd_lc_name(e, name, sizeof(name));
    rd_sync_finding(s, "new_hire", e->email,
                    s->dry_run ? "alert the admins"
                               : "alerted the admins; invite with rosterctl hires invite",
                    result, "%s starts %s, HR team %s -> platform team %s", name,
                    e->hire_date ? e->hire_date : "(no date in Personio)",
                    e->team ? e->team : "(none)", mapped ? mapped : "(not mapped)");
    if (!mapped)
        rd_sync_finding(s, "unmapped_team", e->email, NULL, RD_RESULT_NONE,
                        "the HR team %s%s%s of new hire %s is not in team_map: an invite joins no"
                        " platform team",
                        e->team ? "\"" : "(none)", e->team ? e->team : "", e->team ? "\"" : "",
                        name);
}

int rd_onboarding_converge(struct rd_sync *s, const struct rd_personio_employee *e,
                           enum rd_link_state link, const struct rd_scim_user *account,
                           struct rd_http_error *err)
{
    if (link == RD_LINK_NEW && account->id)
        return mark_linked(s, e->id, account->id, err);
    if (link != RD_LINK_NONE)
        return 0;
    bool hire = false;
    if (is_hire(s, e, &hire, err) != 0)
        return -1;
    if (!hire)
        return 0;
    char key[48];
    snprintf(key, sizeof(key), "hire:%lld", (long long)e->id);
    const char *mapped = rd_sync_team_for(s, e->team);
    if (!rd_sync_policy_bool(s, "onboarding_alerts", true)) {
        rd_sync_finding(s, "new_hire", e->email, NULL, RD_RESULT_SKIPPED,
                        "new hire %s; no alert: policy.onboarding_alerts is off", e->email);
        return 0;
    }
    if (s->dry_run) {
        if (!rd_sync_alert_was_sent(s, key))
            hire_findings(s, e, mapped, RD_RESULT_PLANNED);
        return 0;
    }
    const char *today = rd_lc_today(s, err);
    if (!today)
        return -1;
    char *text = hire_text(s, e, today, mapped);
    char name[256], subject[400];
    rd_lc_name(e, name, sizeof(name));
    snprintf(subject, sizeof(subject), "New hire: %s starts %s", name,
             e->hire_date ? e->hire_date : "(date not set)");
    bool sent = false;
    int rc = rd_sync_alert_once(s, key, subject, text, NULL, NULL, &sent, err);
    free(text);
    if (rc != 0)
        return -1;
    if (sent)
        hire_findings(s, e, mapped, RD_RESULT_DONE);
    /* after a sent alert, and again on every later pass: the row may have failed to land */
    return hire_row(s, e, err);
}

/* ---- the invitation (rosterctl hires invite) ---- */

static int find_person(struct rd_sync *s, const char *email, int64_t *pid,
                       struct rd_http_error *err)
{
    *pid = 0;
    char cid[24], dberr[256];
    const char *params[2] = {rd_lc_id(cid, sizeof(cid), s->connection_id), email};
    PGresult *res = rd_db_exec(s->db,
                               "SELECT personio_id FROM people WHERE connection_id = $1::bigint"
                               " AND lower(email) = lower($2)"
                               " ORDER BY (status = 'inactive'), personio_id LIMIT 1",
                               2, params, dberr, sizeof(dberr));
    if (!res)
        return rd_lc_db_fail(err, "people", dberr);
    if (PQntuples(res) == 1)
        *pid = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    if (*pid)
        return 0;
    /* not seen yet: ask Personio itself */
    struct rd_personio *p = rd_sync_personio(s, err);
    struct rd_personio_employee_list found = {0};
    if (!p || rd_personio_list_employees(p, email, s->deadline, &found, err) != 0)
        return -1;
    if (found.count >= 1)
        *pid = found.items[0].id;
    rd_personio_employee_list_free(&found);
    return 0;
}

/* The employee to invite, freshly read; NULL with out->refused set when there is none. */
static int invitee(struct rd_sync *s, const char *email, struct rd_invite *out,
                   const struct rd_personio_employee **e, struct rd_http_error *err)
{
    *e = NULL;
    int64_t pid = 0;
    if (find_person(s, email, &pid, err) != 0)
        return -1;
    bool gone = false;
    if (pid && rd_sync_employee(s, pid, e, &gone, err) != 0)
        return -1;
    if (!pid || gone) {
        snprintf(out->refused, sizeof(out->refused),
                 "no employee with the e-mail %s in Personio (connection %s); `rosterctl hires"
                 " list --connection %s` shows the hires",
                 email, s->connection_name, s->connection_name);
        *e = NULL;
        return 0;
    }
    if (is_status((*e)->status, "inactive")) {
        snprintf(out->refused, sizeof(out->refused),
                 "%s is inactive in Personio (last day %s): not invited", email,
                 rd_identity_last_day(*e) ? rd_identity_last_day(*e) : "not set");
        *e = NULL;
    }
    return 0;
}

/* Refuses someone already on the platform (and records the link). */
static int refuse_existing(struct rd_sync *s, const struct rd_personio_employee *e,
                           struct rd_invite *out, bool *refused, struct rd_http_error *err)
{
    struct rd_scim_user u;
    enum rd_link_state st = RD_LINK_NONE;
    *refused = false;
    if (rd_identity_platform(s, e, &u, &st, err) != 0)
        return -1;
    int rc = 0;
    if (st == RD_LINK_PINNED || st == RD_LINK_NEW) {
        snprintf(out->refused, sizeof(out->refused),
                 "%s is already on the platform as %s (SCIM id %s): not invited again", e->email,
                 u.user_name ? u.user_name : "?", u.id);
        rc = mark_linked(s, e->id, u.id, err);
        *refused = true;
    } else if (st == RD_LINK_CONFLICT) {
        snprintf(out->refused, sizeof(out->refused),
                 "%s: more than one platform account could be this person (a conflict finding"
                 " names them); resolve that on the platform first: not invited",
                 e->email);
        *refused = true;
    }
    rd_scim_user_clear(&u);
    return rc;
}

/* Joins the platform group of e's HR team; says in out why not when it cannot. */
static int join_team(struct rd_sync *s, const struct rd_personio_employee *e, const char *user_id,
                     struct rd_invite *out, struct rd_http_error *err)
{
    const char *mapped = rd_sync_team_for(s, e->team);
    if (!mapped) {
        snprintf(out->team_note, sizeof(out->team_note),
                 e->team ? "HR team \"%s\" is not in team_map: no platform team joined"
                         : "no HR team in Personio: no platform team joined%s",
                 e->team ? e->team : "");
        return 0;
    }
    struct rd_scim_group *g = NULL;
    if (rd_lc_group(s, mapped, &g, err) != 0)
        return -1;
    if (!g) {
        snprintf(out->team_note, sizeof(out->team_note),
                 "the platform has no group \"%s\" (team_map of HR team \"%s\"): no team joined",
                 mapped, e->team);
        return 0;
    }
    struct rd_scim *sc = rd_sync_scim(s, err);
    const char *ids[1] = {user_id};
    struct json_object *before = json_object_new_object();
    json_object_object_add(before, "group", json_object_new_string(mapped));
    json_object_object_add(before, "member", json_object_new_boolean(0));
    struct rd_audit_ctx a;
    int rc = sc ? rd_scim_group_add_members(sc, g->id, ids, 1, rd_lc_audit(s, &a, before),
                                            s->deadline, err)
                : -1;
    json_object_put(before);
    if (rc != 0)
        return -1;
    rd_lc_group_changed(g, user_id, true);
    snprintf(out->team, sizeof(out->team), "%s", mapped);
    return 0;
}

static int mark_invited(struct rd_sync *s, const struct rd_personio_employee *e,
                        const char *scim_id, struct rd_http_error *err)
{
    char cid[24], pid[24], dberr[256];
    const char *params[5] = {rd_lc_id(cid, sizeof(cid), s->connection_id),
                             rd_lc_id(pid, sizeof(pid), e->id), e->team, scim_id, s->reason};
    if (rd_db_run(
            s->db,
            "INSERT INTO hires (connection_id, personio_id, status, hr_team, scim_id,"
            " invited_at, reason) VALUES ($1::bigint, $2::bigint, 'invited', $3, $4, now(), $5)"
            " ON CONFLICT (connection_id, personio_id) DO UPDATE SET status = 'invited',"
            "  scim_id = excluded.scim_id, invited_at = now(), reason = excluded.reason,"
            "  updated_at = now()",
            5, params, dberr, sizeof(dberr)) != 0)
        return rd_lc_db_fail(err, "hires", dberr);
    return 0;
}

/* POST /Users for e, with the supervisor's account as manager. */
static int create_account(struct rd_sync *s, const struct rd_personio_employee *e,
                          struct rd_invite *out, struct rd_scim_user *created,
                          struct rd_http_error *err)
{
    struct rd_scim_user mgr;
    bool have_mgr = false;
    memset(&mgr, 0, sizeof(mgr));
    if (e->supervisor_id && rd_lc_account_of(s, e->supervisor_id, &mgr, &have_mgr, NULL, err) != 0)
        return -1;
    char ext[24];
    struct rd_scim_new_user nu = {.user_name = e->email,
                                  .given_name = e->first_name,
                                  .family_name = e->last_name,
                                  .external_id = rd_lc_id(ext, sizeof(ext), e->id),
                                  .department = e->department,
                                  .manager_id = have_mgr ? mgr.id : NULL,
                                  .active = true};
    struct rd_scim *sc = rd_sync_scim(s, err);
    int rc = sc ? rd_scim_create_user(sc, &nu, rd_sync_audit(s), s->deadline, created, err) : -1;
    if (rc == 0 && have_mgr)
        snprintf(out->manager, sizeof(out->manager), "%s", mgr.user_name ? mgr.user_name : mgr.id);
    rd_scim_user_clear(&mgr);
    return rc;
}

int rd_onboarding_invite(struct rd_sync *s, const char *email, struct rd_invite *out,
                         struct rd_http_error *err)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->email, sizeof(out->email), "%s", email);
    const struct rd_personio_employee *e = NULL;
    if (invitee(s, email, out, &e, err) != 0)
        return -1;
    if (!e)
        return 0;
    char dberr[256];
    if (rd_identity_remember(s, e, dberr, sizeof(dberr)) != 0)
        return rd_lc_db_fail(err, "people", dberr);
    bool refused = false;
    if (refuse_existing(s, e, out, &refused, err) != 0 || refused)
        return refused ? 0 : -1;
    rd_lc_name(e, out->name, sizeof(out->name));
    snprintf(out->department, sizeof(out->department), "%s", e->department ? e->department : "");
    struct rd_scim_user created;
    if (create_account(s, e, out, &created, err) != 0)
        return -1;
    snprintf(out->scim_id, sizeof(out->scim_id), "%s", created.id);
    rd_scim_user_clear(&created);
    /* pin the link now (the new account is the one candidate), then the team */
    struct rd_scim_user linked;
    enum rd_link_state st = RD_LINK_NONE;
    int rc = rd_identity_platform(s, e, &linked, &st, err);
    rd_scim_user_clear(&linked);
    if (rc == 0)
        rc = join_team(s, e, out->scim_id, out, err);
    if (rc == 0)
        rc = mark_invited(s, e, out->scim_id, err);
    if (rc == 0)
        rd_log_info("invited %s as platform user %s (%s)", e->email, out->scim_id, s->reason);
    return rc;
}
