"""
Last-day deactivation (handlers/deactivation.c, DESIGN.md §1 row 3, §7): the end of
the last day in Europe/Berlin plus deactivation_delay_days, computed in SQL, becomes
a job; a moved date moves it, a revoked termination cancels it, a past date
deactivates at once; the job re-reads Personio when it runs; protected users stay.
Asserted on `rosterctl deactivations upcoming --json`, the sandbox's platform state
and request log, the Slack inbox and the audit trail.
"""
import datetime as dt
import json
import zoneinfo

import pytest

import helpers as H

pytestmark = pytest.mark.usefixtures("world")

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
KIND = "lifecycle.deactivate"
TIM = "tim.lange@acme.example"     # demo 1021: last_working_day today+7, termination today+14
SARAH = "sarah.koenig@acme.example"  # demo 1030: left 30 days ago, still active on the platform


def day(s):
    return dt.date.fromisoformat(s)


def end_of(last_day, delay=0):
    """Local midnight after last_day (+delay) in Berlin, as (UTC Z, local ISO): Python's
    zoneinfo, not the SQL under test."""
    local = dt.datetime.combine(last_day + dt.timedelta(days=1 + delay), dt.time(0), BERLIN)
    utc = local.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return utc, local.isoformat()


def today(world):
    return day(world.sandbox.state()["today"])


def upcoming(world):
    return world.ctl_json("deactivations", "upcoming", "--connection", "acme")


def last_sunday(year, month):
    d = dt.date(year, month + 1, 1) - dt.timedelta(days=1)
    return d - dt.timedelta(days=(d.weekday() + 1) % 7)


def test_last_working_day_schedules_the_deactivation_at_local_midnight(world):
    world.reset()
    tim = world.employee(1021)
    assert tim["last_working_day"] < tim["termination_date"]
    ev = world.personio("employment.updated", 1021)
    row = world.wait_event(ev)
    assert row["status"] == "done", row
    utc, local = end_of(day(tim["last_working_day"]))
    [u] = upcoming(world)
    assert {k: u[k] for k in ("email", "last_day", "deactivate_at", "deactivate_at_local", "state")} == {
        "email": TIM, "last_day": tim["last_working_day"], "deactivate_at": utc,
        "deactivate_at_local": local, "state": "scheduled"}
    assert u["name"] == "Tim Lange" and u["timezone"] == "Europe/Berlin"
    [(job_id, subject, state, run_at, ukey)] = world.jobs(KIND)
    assert subject == "1021" and state == "pending"
    assert run_at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") == utc
    assert world.writes("scim") == []  # nothing is deactivated before its time
    [f] = world.findings("deactivation_scheduled")
    assert f["email"] == TIM and utc in f["detail"] and "last working day" in f["detail"]
    assert f"deactivation_scheduled {TIM}: last working day {tim['last_working_day']}" in row["note"]
    lines = world.ctl("deactivations", "upcoming").stdout.splitlines()
    assert lines[0].split() == ["CONNECTION", "EMAIL", "NAME", "LAST_DAY", "DEACTIVATE_AT", "(UTC)",
                                "LOCAL", "TIME_ZONE", "STATE"]
    assert lines[1].split() == ["acme", TIM, "Tim", "Lange", tim["last_working_day"], utc, local,
                                "Europe/Berlin", "scheduled"]

    # Replays and later events keep the one job where it is.
    world.ctl("events", "replay", str(ev))
    world.wait_event(ev)
    assert world.wait_event(world.personio("person.updated", 1021))["status"] == "done"
    assert [j[0] for j in world.jobs(KIND)] == [job_id]
    assert len(world.findings("deactivation_scheduled")) == 1


def test_berlin_instants_in_winter_and_on_both_sides_of_both_dst_changes(world):
    world.reset()
    y = today(world).year + 1
    march, october = last_sunday(y, 3), last_sunday(y, 10)
    one = dt.timedelta(days=1)
    cases = {  # person -> (last day, UTC instant, local instant), offsets written out
        1020: (dt.date(y, 12, 15), f"{y}-12-15T23:00:00Z", f"{y}-12-16T00:00:00+01:00"),
        1022: (march - one, f"{march - one}T23:00:00Z", f"{march}T00:00:00+01:00"),
        1023: (march, f"{march}T22:00:00Z", f"{march + one}T00:00:00+02:00"),
        1024: (october - one, f"{october - one}T22:00:00Z", f"{october}T00:00:00+02:00"),
        1025: (october, f"{october}T23:00:00Z", f"{october + one}T00:00:00+01:00"),
    }
    world.update("personio_employees", *[{"id": pid, "last_working_day": str(c[0])}
                                         for pid, c in cases.items()])
    for pid in cases:
        assert world.wait_event(world.personio("employment.updated", pid))["status"] == "done"
    got = {u["personio_id"]: (u["last_day"], u["deactivate_at"], u["deactivate_at_local"])
           for u in upcoming(world)}
    assert got == {pid: (str(c[0]), c[1], c[2]) for pid, c in cases.items()}
    assert all(end_of(c[0]) == (c[1], c[2]) for c in cases.values())  # and zoneinfo agrees


def test_deactivation_delay_days_are_added(world):
    world.reset(policy={"deactivation_delay_days": 2})
    tim = world.employee(1021)
    assert world.wait_event(world.personio("employment.updated", 1021))["status"] == "done"
    [u] = upcoming(world)
    assert (u["deactivate_at"], u["deactivate_at_local"]) == end_of(day(tim["last_working_day"]), 2)


def test_termination_date_counts_when_there_is_no_last_working_day(world):
    world.reset()
    tim = world.employee(1021)
    world.update("personio_employees", {"id": 1021, "last_working_day": None})
    assert world.wait_event(world.personio("employment.updated", 1021))["status"] == "done"
    [u] = upcoming(world)
    assert u["last_day"] == tim["termination_date"]
    assert u["deactivate_at"] == end_of(day(tim["termination_date"]))[0]


def test_moved_date_moves_the_job(world):
    world.reset()
    assert world.wait_event(world.personio("employment.updated", 1021))["status"] == "done"
    [old] = upcoming(world)
    new_day = today(world) + dt.timedelta(days=10)
    world.update("personio_employees", {"id": 1021, "last_working_day": str(new_day)})
    ev = world.personio("employment.updated", 1021)
    row = world.wait_event(ev)
    assert row["status"] == "done", row
    [u] = upcoming(world)
    assert u["last_day"] == str(new_day) and u["deactivate_at"] == end_of(new_day)[0]
    assert len(world.jobs(KIND)) == 1
    moved = world.findings("deactivation_scheduled")[-1]
    assert f"moved from {old['deactivate_at']} (last day {old['last_day']})" in moved["detail"]
    assert f"moved from {old['deactivate_at']}" in row["note"]
    assert world.writes("scim") == []


def test_revoked_termination_cancels_the_job(world):
    world.reset()
    assert world.wait_event(world.personio("employment.updated", 1021))["status"] == "done"
    [old] = upcoming(world)
    world.update("personio_employees", {"id": 1021, "last_working_day": None,
                                        "termination_date": None})
    ev = world.personio("employment.updated", 1021)
    row = world.wait_event(ev)
    assert upcoming(world) == [] and world.jobs(KIND) == []
    f = world.findings("deactivation_scheduled")[-1]
    assert f["action"] == "cancelled the scheduled deactivation" and old["deactivate_at"] in f["detail"]
    assert "termination revoked" in row["note"]
    assert world.writes("scim") == []


def test_past_last_day_deactivates_on_the_event_itself_once(world):
    world.reset()
    sarah = world.employee(1030)
    scim_id = world.sandbox.lookup(SARAH)["scim_user_id"]
    ev = world.personio("employment.updated", 1030)
    row = world.wait_event(ev)
    assert row["status"] == "done", row
    assert world.scim_user(SARAH)["active"] is False
    assert [(w["method"], w["path"]) for w in world.writes("scim")] == [("PATCH", f"/Users/{scim_id}")]
    utc, local = end_of(day(sarah["last_working_day"]))
    [text] = [t for t in world.slack_texts() if t.startswith("Platform account deactivated")]
    assert text.startswith(
        f"Platform account deactivated: Sarah Koenig ({SARAH}). Last working day"
        f" {sarah['last_working_day']}; the account was closed at the end of it:"
        f" {local[:10]} 00:00 Europe/Berlin ({utc}).")
    assert "learned of the last day only afterwards" in text
    assert f"deactivated {SARAH}" in row["note"]
    [a] = world.query("SELECT before, reason, outcome FROM upstream_audit WHERE connection_id = %s"
                      " AND system = 'scim'", (world.connection_id,))
    assert a == ({"active": True, "userName": SARAH}, f"event:{ev}", "ok")
    assert upcoming(world) == []

    # A replay, and more events for her: no second PATCH, no second alert.
    before = len(world.sandbox.requests())
    world.ctl("events", "replay", str(ev))
    assert world.wait_event(ev)["status"] == "done"
    assert world.wait_event(world.personio("person.updated", 1030))["status"] == "done"
    world.wait_idle()
    later = world.sandbox.requests()[before:]
    assert [r for r in later if r["method"] != "GET" and r["system"] != "personio"] == []
    assert len([t for t in world.slack_texts() if t.startswith("Platform account deactivated")]) == 1


def test_the_job_rereads_personio_when_it_runs(world):
    world.reset()
    assert world.wait_event(world.personio("employment.updated", 1021))["status"] == "done"
    # HR moves the last day into the past and Personio sends nothing (it does not for
    # every change); the scheduled job's time comes.
    yesterday = today(world) - dt.timedelta(days=1)
    world.update("personio_employees", {"id": 1021, "last_working_day": str(yesterday)})
    state, note, err = world.run_due(KIND, 1021)
    assert state == "done", (state, note, err)
    assert world.scim_user(TIM)["active"] is False
    utc, local = end_of(yesterday)
    assert f"deactivated {TIM}: last working day {yesterday} ended at {local[:10]} 00:00" in note
    [text] = [t for t in world.slack_texts() if t.startswith("Platform account deactivated")]
    assert f"Tim Lange ({TIM})" in text and utc in text and "Europe/Berlin" in text
    assert world.jobs(KIND) == []


def test_a_job_whose_termination_was_revoked_meanwhile_deactivates_nobody(world):
    world.reset()
    assert world.wait_event(world.personio("employment.updated", 1021))["status"] == "done"
    world.update("personio_employees", {"id": 1021, "last_working_day": None,
                                        "termination_date": None})
    state, note, err = world.run_due(KIND, 1021)
    assert state == "done", (state, note, err)
    assert "termination revoked" in note
    assert world.scim_user(TIM)["active"] is True
    assert world.writes("scim") == [] and world.slack_texts() == []


def test_protected_users_are_never_deactivated(world):
    world.reset()
    ceo = world.sandbox.lookup("ceo@acme.example")["scim_user_id"]
    gone = today(world) - dt.timedelta(days=2)
    world.update("personio_employees", {"id": 1001, "last_working_day": str(gone)})
    ev = world.personio("employment.updated", 1001)
    row = world.wait_event(ev)
    assert row["status"] == "done", row
    assert world.scim_user("ceo@acme.example")["active"] is True
    assert [w for w in world.writes("scim") if w["path"] == f"/Users/{ceo}"] == []
    assert "deactivated ceo@acme.example: protected user (policy.protected_users)" in row["note"]
    [a] = world.query("SELECT path, reason, outcome, error FROM upstream_audit WHERE"
                      " connection_id = %s AND system = 'scim'", (world.connection_id,))
    assert a == (f"/Users/{ceo}", f"event:{ev}", "skipped",
                 "protected user (policy.protected_users): not deactivated")
    [text] = [t for t in world.slack_texts() if t.startswith("Not deactivated")]
    assert text.startswith("Not deactivated: Clara Schmidt (ceo@acme.example) is a protected user"
                           " (policy.protected_users of connection acme).")
    # A replay says so again in its note, but alerts and audits once.
    world.ctl("events", "replay", str(ev))
    assert "protected user" in world.wait_event(ev)["note"]
    world.wait_idle()
    assert len([t for t in world.slack_texts() if t.startswith("Not deactivated")]) == 1
    assert len(world.audit("scim")) == 1

    # A future last day of a protected user schedules nothing.
    world.update("personio_employees", {"id": 1001, "last_working_day":
                                        str(today(world) + dt.timedelta(days=5))})
    row = world.wait_event(world.personio("employment.updated", 1001))
    assert upcoming(world) == [] and "will not be deactivated" in row["note"]


def converge_probe(world, person_id, *flags):
    """rd_person_converge for one person as a reconciliation run would call it."""
    res = H.run([H.binary("converge_probe"), "-c", str(world.conf.path), "acme", str(person_id),
                 *flags], timeout=60, env=H.child_env())
    return json.loads(res.stdout)


def test_dry_runs_and_the_circuit_breaker_write_nothing_and_say_what_would_happen(world):
    """What the nightly run relies on (INTERFACES.md): a due deactivation is planned in a
    dry run and held by the breaker, a future one is planned; nothing is written."""
    world.reset()
    sarah = world.sandbox.lookup(SARAH)["scim_user_id"]
    dry = converge_probe(world, 1030, "--dry-run")
    [f] = [f for f in dry if f["kind"] == "deactivated"]
    assert (f["email"], f["result"], f["action"]) == (SARAH, "planned", "deactivate the platform account")
    held = converge_probe(world, 1030, "--hold")
    [f] = [f for f in held if f["kind"].startswith("deactivat")]
    assert (f["kind"], f["result"]) == ("deactivation_held", "held")
    assert "held by the circuit breaker until an operator approves" in f["detail"]
    assert world.scim_user(SARAH)["active"] is True
    assert [w for w in world.writes("scim") if w["path"] == f"/Users/{sarah}"] == []
    assert world.slack_texts() == []

    tim = converge_probe(world, 1021, "--dry-run")
    [f] = [f for f in tim if f["kind"] == "deactivation_scheduled"]
    assert f["result"] == "planned" and end_of(day(world.employee(1021)["last_working_day"]))[0] in f["detail"]
    assert world.jobs(KIND) == []
    # a hire and an approver in a dry run: planned, nothing sent or created
    tom = converge_probe(world, 1029, "--dry-run")
    assert [(f["kind"], f["result"]) for f in tom] == [("new_hire", "planned")]
    converge_probe(world, 1003, "--dry-run")
    assert world.writes() == [] and world.sandbox.state()["delegations"] == []
