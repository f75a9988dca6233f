"""
Approver reassignment (handlers/approver.c, DESIGN.md §1 row 4): an approver with an
approved absence gets an approval delegation on the platform before it starts, to
their own supervisor, else the fallback approver, else an alert asks an operator to
choose one; moved, shortened, cancelled, rejected and deleted absences update or
remove it. Driven by signed Personio person/employment webhooks and the sandbox's
time-off changes (the absence-period webhook path is owned by the absence handler:
tests/integration/pending_merge/test_approver_absence_webhook.py).
"""
import datetime as dt
import json
import zoneinfo

import pytest

import helpers as H

pytestmark = pytest.mark.usefixtures("world")

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
JONAS = "jonas.becker@acme.example"  # demo 1003: leads Backend, reports to the CEO, time-off 30001
CEO = "ceo@acme.example"             # demo 1001: no supervisor
CFO = "cfo@acme.example"             # the connection's fallback_approver


def midnight_utc(d):
    local = dt.datetime.combine(d, dt.time(0), BERLIN)
    return local.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def time_off(world, tid):
    return next(t for t in world.sandbox.state()["time_offs"] if t["id"] == tid)


def delegations(world):
    return world.sandbox.state()["delegations"]


def platform_writes(world):
    return [(w["method"], w["path"]) for w in world.writes("platform")]


def today(world):
    return dt.date.fromisoformat(world.sandbox.state()["today"])


def add_time_off(world, tid, email, start, end, status="approved"):
    world.sandbox.fixtures({"personio_time_offs": [{
        "id": tid, "employee_email": email, "type": "Vacation", "status": status,
        "start_date": str(start), "end_date": str(end)}]})


def test_absent_approver_gets_a_delegation_to_their_supervisor_before_it_starts(world):
    world.reset()
    t = time_off(world, 30001)
    start, end = dt.date.fromisoformat(t["start_date"]), dt.date.fromisoformat(t["end_date"])
    ev = world.personio("employment.updated", 1003)
    row = world.wait_event(ev)
    assert row["status"] == "done", row
    [post] = world.writes("platform")
    assert (post["method"], post["path"]) == ("POST", "/approval-delegations")
    body = json.loads(post["body"])
    assert {k: body[k] for k in ("approver", "delegate", "starts_at", "ends_at", "external_id")} == {
        "approver": JONAS, "delegate": CEO, "starts_at": midnight_utc(start),
        "ends_at": midnight_utc(end + dt.timedelta(days=1)),
        "external_id": f"rosterd:acme:time-off:30001:{start}:{end}"}
    assert body["starts_at"] > dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    [d] = delegations(world)
    assert (d["approver"], d["delegate"]) == (JONAS, CEO)
    [text] = [m for m in world.slack_texts() if m.startswith("Approvals delegated")]
    assert text == (
        f"Approvals delegated: Jonas Becker ({JONAS}) is away from {start} to {end} (Vacation,"
        f" approved in Personio). Their approvals on the platform go to Clara Schmidt ({CEO}),"
        f" their supervisor, from {start} 00:00 to {end + dt.timedelta(days=1)} 00:00"
        f" Europe/Berlin ({midnight_utc(start)} to {midnight_utc(end + dt.timedelta(days=1))}).")
    assert f"delegated approvals of {JONAS} to {CEO}" in row["note"]
    [a] = world.audit("platform")
    assert (a["method"], a["reason"], a["outcome"]) == ("POST", f"event:{ev}", "ok")

    # Replays, later events and a converge-everyone pass change nothing and say nothing.
    world.sandbox.call("DELETE", "/requests")
    world.ctl("events", "replay", str(ev))
    world.wait_event(ev)
    for e in (world.personio("person.updated", 1003), world.personio("employment.updated", payload={})):
        assert world.wait_event(e, timeout=60)["status"] == "done"
    world.wait_idle()
    assert [w for w in world.writes("platform") if "30001" in (w["body"] or "")] == []
    assert len([m for m in world.slack_texts() if m.startswith("Approvals delegated: Jonas")]) == 1
    assert len([d for d in delegations(world) if d["approver"] == JONAS]) == 1


def test_an_approver_without_a_supervisor_delegates_to_the_fallback_approver(world):
    world.reset()
    start = today(world) + dt.timedelta(days=14)
    add_time_off(world, 30101, CEO, start, start + dt.timedelta(days=2))
    assert world.wait_event(world.personio("employment.updated", 1001))["status"] == "done"
    [d] = delegations(world)
    assert (d["approver"], d["delegate"]) == (CEO, CFO)
    [text] = [m for m in world.slack_texts() if m.startswith("Approvals delegated")]
    assert (f"go to {CFO}, the fallback approver of connection acme (they have no supervisor in"
            " Personio)") in text


def test_a_supervisor_who_is_away_too_is_passed_over_for_the_fallback(world):
    world.reset()
    t = time_off(world, 30001)
    add_time_off(world, 30102, CEO, t["start_date"], t["start_date"])
    assert world.wait_event(world.personio("employment.updated", 1003))["status"] == "done"
    [d] = [d for d in delegations(world) if d["approver"] == JONAS]
    assert d["delegate"] == CFO
    [text] = [m for m in world.slack_texts() if m.startswith("Approvals delegated: Jonas")]
    assert "their supervisor Clara Schmidt is away then too" in text


def test_no_alternate_at_all_asks_an_operator_to_choose_one(world):
    world.reset(fallback_approver=None)
    start = today(world) + dt.timedelta(days=14)
    end = start + dt.timedelta(days=2)
    add_time_off(world, 30101, CEO, start, end)
    ev = world.personio("employment.updated", 1001)
    row = world.wait_event(ev)
    assert row["status"] == "done", row
    assert world.writes("platform") == [] and delegations(world) == []
    [text] = [m for m in world.slack_texts() if m.startswith("Approver away")]
    assert text == (
        f"Approver away, nobody to delegate to: Clara Schmidt ({CEO}) is away from {start} to"
        f" {end} (Vacation, approved in Personio) and approves for others on the platform, but"
        " they have no supervisor in Personio and connection acme has no fallback_approver."
        ' Choose a stand-in: set "fallback_approver" (the e-mail of a platform user who may'
        " approve) in the document of connection acme and run `rosterctl connection apply FILE`"
        " (or give Clara"
        f" Schmidt a supervisor in Personio); the delegation is then made on the next event for"
        f" {CEO} or the nightly run.")
    [f] = world.findings("conflict")
    assert f["email"] == CEO and "fallback_approver" in f["detail"]
    assert "conflict ceo@acme.example: approver away" in row["note"]
    world.ctl("events", "replay", str(ev))
    world.wait_event(ev)
    world.wait_idle()
    assert len([m for m in world.slack_texts() if m.startswith("Approver away")]) == 1

    # The operator names a fallback approver; the next event delegates to them.
    doc = json.loads(json.dumps(world.doc))
    doc["fallback_approver"] = CFO
    world.apply(doc)
    assert world.wait_event(world.personio("person.updated", 1001))["status"] == "done"
    [d] = delegations(world)
    assert (d["approver"], d["delegate"]) == (CEO, CFO)


@pytest.mark.parametrize("change", ["moved", "shortened"])
def test_a_moved_or_shortened_absence_replaces_the_delegation(world, change):
    world.reset()
    assert world.wait_event(world.personio("employment.updated", 1003))["status"] == "done"
    [old] = delegations(world)
    t = time_off(world, 30001)
    start, end = dt.date.fromisoformat(t["start_date"]), dt.date.fromisoformat(t["end_date"])
    shift = dt.timedelta(days=7 if change == "moved" else 0)
    new_start, new_end = start + shift, (end + shift if change == "moved" else start + dt.timedelta(days=1))
    world.update("personio_time_offs", {"id": 30001, "start_date": str(new_start),
                                        "end_date": str(new_end)})
    world.sandbox.call("DELETE", "/requests")
    ev = world.personio("employment.updated", 1003)
    assert world.wait_event(ev)["status"] == "done"
    assert platform_writes(world) == [("DELETE", f"/approval-delegations/{old['id']}"),
                                      ("POST", "/approval-delegations")]
    [d] = delegations(world)
    assert d["external_id"] == f"rosterd:acme:time-off:30001:{new_start}:{new_end}"
    assert (d["starts_at"], d["ends_at"]) == (midnight_utc(new_start),
                                              midnight_utc(new_end + dt.timedelta(days=1)))
    [text] = [m for m in world.slack_texts() if m.startswith("Approval delegation updated")]
    assert f"is away from {new_start} to {new_end}" in text
    assert f"It replaces the delegation to {CEO} for {start} to {end}." in text
    audit = world.audit("platform")
    assert [(a["method"], a["reason"]) for a in audit][-2:] == [
        ("DELETE", f"event:{ev}"), ("POST", f"event:{ev}")]


@pytest.mark.parametrize("how", ["rejected", "cancelled", "deleted"])
def test_a_cancelled_rejected_or_deleted_absence_removes_the_delegation(world, how):
    world.reset()
    assert world.wait_event(world.personio("employment.updated", 1003))["status"] == "done"
    [old] = delegations(world)
    t = time_off(world, 30001)
    if how == "deleted":
        world.sandbox.fixtures({"delete": {"personio_time_offs": [30001]}})
    else:
        world.update("personio_time_offs", {"id": 30001, "status": how})
    world.sandbox.call("DELETE", "/requests")
    ev = world.personio("employment.updated", 1003)
    row = world.wait_event(ev)
    assert row["status"] == "done", row
    assert platform_writes(world) == [("DELETE", f"/approval-delegations/{old['id']}")]
    assert delegations(world) == []
    [text] = [m for m in world.slack_texts() if m.startswith("Approval delegation removed")]
    why = "is no longer in Personio" if how == "deleted" else f"was {how} in Personio"
    assert text.startswith(f"Approval delegation removed: the absence of Jonas Becker ({JONAS})"
                           f" from {t['start_date']} to {t['end_date']} {why}")
    assert text.endswith("their approvals stay with them.")
    assert f"removed delegation {old['id']} of {JONAS}" in row["note"]
    # and nothing more on a replay
    world.sandbox.call("DELETE", "/requests")
    world.ctl("events", "replay", str(ev))
    world.wait_event(ev)
    world.wait_idle()
    assert world.writes("platform") == []
    assert len([m for m in world.slack_texts() if m.startswith("Approval delegation removed")]) == 1


def test_a_pending_absence_waits_until_it_is_approved(world):
    world.reset()
    start = today(world) + dt.timedelta(days=20)
    add_time_off(world, 30103, "paul.fischer@acme.example", start, start, status="pending")
    assert world.wait_event(world.personio("employment.updated", 1006))["status"] == "done"
    assert world.writes("platform") == []
    world.update("personio_time_offs", {"id": 30103, "status": "approved"})
    assert world.wait_event(world.personio("employment.updated", 1006))["status"] == "done"
    [d] = delegations(world)
    assert (d["approver"], d["delegate"]) == ("paul.fischer@acme.example", CEO)


def test_people_who_approve_for_nobody_get_no_delegation(world):
    world.reset()
    # Lukas Meyer (1007) has an approved vacation (30002) but nobody reports to him.
    assert world.wait_event(world.personio("employment.updated", 1007))["status"] == "done"
    assert world.writes("platform") == []
    assert not [m for m in world.slack_texts() if "delegat" in m]


def test_delegations_rosterd_did_not_make_are_left_alone(world):
    world.reset()
    t = time_off(world, 30001)
    world.sandbox.fixtures({"platform_delegations": [{
        "approver": JONAS, "delegate": CFO, "starts_at": midnight_utc(today(world)),
        "ends_at": midnight_utc(today(world) + dt.timedelta(days=60)),
        "reason": "set by hand", "external_id": "finance-2026-17"}]})
    assert world.wait_event(world.personio("employment.updated", 1003))["status"] == "done"
    assert sorted(d["external_id"] for d in delegations(world)) == sorted([
        "finance-2026-17", f"rosterd:acme:time-off:30001:{t['start_date']}:{t['end_date']}"])
    world.update("personio_time_offs", {"id": 30001, "status": "cancelled"})
    assert world.wait_event(world.personio("employment.updated", 1003))["status"] == "done"
    assert [d["external_id"] for d in delegations(world)] == ["finance-2026-17"]


def test_the_absence_handlers_entry_point_links_the_approver_and_delegates(world):
    """rd_approver_converge as the personio.absence handler calls it: for one
    absence's window, for an approver no person event has linked yet."""
    world.reset()
    t = time_off(world, 30001)
    assert world.person(1003) is None
    res = H.run([H.binary("converge_probe"), "-c", str(world.conf.path), "acme", "1003",
                 "--approver", t["start_date"], t["end_date"]], timeout=60, env=H.child_env())
    out = json.loads(res.stdout)
    assert {f["kind"] for f in out} == {"linked"} and JONAS in {f["email"] for f in out}
    assert world.person(1003)["scim_id"] == world.sandbox.lookup(JONAS)["scim_user_id"]
    [d] = delegations(world)
    assert (d["approver"], d["delegate"]) == (JONAS, CEO)
    assert d["external_id"] == f"rosterd:acme:time-off:30001:{t['start_date']}:{t['end_date']}"
    # the same call again: nothing more
    world.sandbox.call("DELETE", "/requests")
    H.run([H.binary("converge_probe"), "-c", str(world.conf.path), "acme", "1003",
           "--approver", t["start_date"], t["end_date"]], timeout=60, env=H.child_env())
    assert world.writes("platform") == []
