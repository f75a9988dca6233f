"""
The circuit breaker of the nightly reconciliation (DESIGN.md §1): a run that would
deactivate more than policy.max_deactivations_per_run people, or more than 10 % of the
linked ones, or that sees Personio return under 80 % of the last good run's employees,
holds its deactivations (deactivation_held findings, status held, an alert saying why
and how to release); `rosterctl reconcile approve RUN` checks each held person again and
deactivates exactly those still due; protected users never.

Until the lifecycle branch (issue 9) is merged, deactivations come from the TEST-ONLY
step in handlers/reconcile_weak.c, switched on by RD_TEST_STUB_DEACTIVATION=1 for this
module's rosterd and rosterctl. It follows the contract the lifecycle's step must meet
(planned in dry runs, held under the breaker, SCIM active=false otherwise), so these
tests must pass unchanged after the merge with the real step (the stub file is deleted
then); what they assert is kinds, e-mails, results and upstream writes, not wording.
"""
import datetime as dt
import os

import pytest

from world import World

LEAVERS = (1007, 1008, 1009)  # plus 1030 Sarah Koenig, who left 30 days ago (demo seed)


@pytest.fixture(scope="module")
def world(pg, tls, make_conf, tmp_path_factory):
    old = os.environ.get("RD_TEST_STUB_DEACTIVATION")
    os.environ["RD_TEST_STUB_DEACTIVATION"] = "1"
    w = World(pg, tls, make_conf, tmp_path_factory.mktemp("world-breaker"))
    try:
        yield w
    finally:
        try:
            w.close()
        finally:
            if old is None:
                os.environ.pop("RD_TEST_STUB_DEACTIVATION", None)
            else:
                os.environ["RD_TEST_STUB_DEACTIVATION"] = old


def employees(world):
    return {e["id"]: e for e in world.sandbox.state()["employees"]}


def set_last_day(world, ids, days_ago):
    emps = employees(world)
    day = None if days_ago is None else (dt.date.today() - dt.timedelta(days=days_ago)).isoformat()
    world.sandbox.fixtures({"personio_employees": [
        dict(emps[i], last_working_day=day, termination_date=day) for i in ids]})


def scim_by_email(world):
    return {u["userName"].lower(): u for u in world.sandbox.state()["scim_users"]}


def deactivations(world):
    """SCIM PATCHes that set active=false, as the platform received them (user ids)."""
    out = []
    for r in world.writes("scim"):
        if r["method"] == "PATCH" and '"active"' in (r["body"] or "") and "false" in r["body"]:
            out.append(r["path"].rsplit("/", 1)[-1])
    return out


def held_emails(world, run_id):
    return sorted(f["email"] for f in world.run_findings(run_id, "deactivation_held"))


def test_more_than_max_is_held_and_approve_releases_exactly_what_is_still_due(world):
    world.timesync_reset(policy={"max_deactivations_per_run": 2})
    set_last_day(world, LEAVERS, 3)
    out = world.reconcile()
    run = world.runs()[-1]
    assert run["status"] == "held", run
    assert run["planned_deactivations"] == 4
    assert "more than policy.max_deactivations_per_run (2)" in run["held_reason"]
    who = ["anna.weber@acme.example", "leon.koch@acme.example", "lukas.meyer@acme.example",
           "sarah.koenig@acme.example"]
    assert held_emails(world, run["id"]) == who
    assert {f["result"] for f in world.run_findings(run["id"], "deactivation_held")} == {"held"}
    assert deactivations(world) == []  # nobody lost access
    assert all(scim_by_email(world)[e]["active"] for e in who)
    alert = [t for t in world.slack_texts() if "HELD" in t]
    assert len(alert) == 1 and f"rosterctl reconcile approve {run['id']}" in alert[0], alert
    assert "more than policy.max_deactivations_per_run (2)" in alert[0]
    assert f"rosterctl reconcile approve {run['id']}" in out.stdout
    assert "Held by the circuit breaker (4)" in out.stdout

    # Leon's termination is revoked meanwhile: approving must not deactivate him.
    set_last_day(world, [1009], None)
    world.sandbox.call("DELETE", "/requests")
    out = world.ctl("reconcile", "approve", str(run["id"]))
    users = scim_by_email(world)
    due = ["anna.weber@acme.example", "lukas.meyer@acme.example", "sarah.koenig@acme.example"]
    assert sorted(deactivations(world)) == sorted(users[e]["id"] for e in due)
    assert [e for e in who if not users[e]["active"]] == due
    assert users["leon.koch@acme.example"]["active"] is True
    runs = world.runs()
    approval, held = runs[-1], next(r for r in runs if r["id"] == run["id"])
    assert approval["kind"] == "approval" and approval["status"] == "done"
    assert held["status"] == "done" and held["approval_run_id"] == approval["id"]
    assert "(rosterctl)" in held["approved_by"]
    report = world.report(approval["id"])
    outcomes = {r["email"]: r["outcome"] for r in report["released"]}
    assert outcomes == {"anna.weber@acme.example": "deactivated",
                        "leon.koch@acme.example": "not_due",
                        "lukas.meyer@acme.example": "deactivated",
                        "sarah.koenig@acme.example": "deactivated"}
    assert "leon.koch@acme.example: not due any more" in out.stdout
    assert any("released the deactivations held by run" in t for t in world.slack_texts())
    # Released once: a second approval is refused and changes nothing.
    again = world.ctl("reconcile", "approve", str(run["id"]), check=False)
    assert again.returncode == 1 and "already released" in again.stderr


def test_protected_users_stay_untouched_even_when_approved(world):
    world.timesync_reset(policy={"max_deactivations_per_run": 0})
    set_last_day(world, [1001, 1007], 2)  # the CEO (protected) and Lukas leave
    world.reconcile()
    run = world.runs()[-1]
    assert run["status"] == "held", run
    assert held_emails(world, run["id"]) == ["lukas.meyer@acme.example", "sarah.koenig@acme.example"]
    # The CEO is never planned or held; if the step reports them, it is as skipped.
    ceo = [f for f in world.run_findings(run["id"]) if f["email"] == "ceo@acme.example"
           and f["kind"] in ("deactivated", "deactivation_held")]
    assert all(f["kind"] == "deactivated" and f["result"] == "skipped" for f in ceo), ceo
    # Even a held finding for the CEO (as if a lifecycle step had held one) is never acted on.
    world.execute("INSERT INTO findings (connection_id, run_id, kind, email, detail, action, result)"
                  " VALUES (%s, %s, 'deactivation_held', 'ceo@acme.example', 'seeded', 'deactivate',"
                  " 'held')", (world.connection_id, run["id"]))
    world.ctl("reconcile", "approve", str(run["id"]))
    users = scim_by_email(world)
    assert users["ceo@acme.example"]["active"] is True
    assert users["ceo@acme.example"]["id"] not in deactivations(world)
    assert not users["lukas.meyer@acme.example"]["active"]
    approval = world.runs()[-1]
    outcomes = {r["email"]: r["outcome"] for r in world.report(approval["id"])["released"]}
    assert outcomes["ceo@acme.example"] == "protected"


def test_ten_percent_of_linked_users_trips_it(world):
    world.timesync_reset(policy={"max_deactivations_per_run": 100})
    set_last_day(world, LEAVERS, 1)  # 4 of 28 linked accounts: 14 %
    world.reconcile()
    run = world.runs()[-1]
    assert run["status"] == "held" and run["linked_users"] == 28, run
    assert "4 of 28 linked platform accounts (14 %), more than 10 %" in run["held_reason"]
    assert deactivations(world) == []


def test_personio_returning_far_fewer_employees_trips_it(world):
    world.timesync_reset()
    world.reconcile()
    first = world.runs()[-1]
    assert first["status"] == "done" and first["employees"] == 30, first  # Sarah deactivated
    world.sandbox.fixtures({"delete": {"personio_employees": list(range(1011, 1021))}})
    world.sandbox.call("DELETE", "/requests")
    world.reconcile()
    run = world.runs()[-1]
    assert run["status"] == "held" and run["employees"] == 20, run
    assert (f"Personio returned 20 employees, under 80 % of the 30 the last good run "
            f"(run {first['id']}) saw") in run["held_reason"]
    assert deactivations(world) == []


def test_a_dry_run_shows_what_the_breaker_would_hold_and_writes_nothing(world):
    world.timesync_reset(policy={"max_deactivations_per_run": 2})
    set_last_day(world, LEAVERS, 3)
    out = world.reconcile("--dry-run")
    run = world.runs()[-1]
    assert run["dry_run"] and run["status"] == "held", run
    assert len(held_emails(world, run["id"])) == 4
    assert world.writes() == []  # no deactivation, no alert
    assert "dry run" in out.stdout and "approve" not in out.stdout.split("Needs a person")[0]
    refused = world.ctl("reconcile", "approve", str(run["id"]), check=False)
    assert refused.returncode == 1 and "was a dry run" in refused.stderr


def test_below_the_thresholds_deactivations_just_happen(world):
    world.timesync_reset()
    world.reconcile()
    run = world.runs()[-1]
    assert run["status"] == "done" and run["planned_deactivations"] == 1, run
    done = world.run_findings(run["id"], "deactivated")
    assert [(f["email"], f["result"]) for f in done] == [("sarah.koenig@acme.example", "done")]
    assert scim_by_email(world)["sarah.koenig@acme.example"]["active"] is False
    # One PATCH of Sarah's account, audited as this run's (the run's other SCIM writes are
    # the seed's mover and manager change).
    sarah = world.sandbox.lookup("sarah.koenig@acme.example")["scim_user_id"]
    audit = [a for a in world.audit("scim") if a["method"] == "PATCH" and sarah in a["path"]]
    assert [a["reason"] for a in audit] == [f"run:{run['id']}"], audit


def test_staleness_alert_when_webhooks_are_quiet_but_the_sweep_finds_changes(world):
    world.timesync_reset()
    # The first run aligns systems that were never in step (it deactivates Sarah, sets
    # the CEO as manager, pushes presences): nothing a webhook missed, no warning.
    world.reconcile()
    run = world.runs()[-1]
    assert world.run_findings(run["id"], "deactivated")
    assert world.report(run["id"])["warnings"] == []
    assert not any("No webhook from" in t for t in world.slack_texts())
    # Tim's last day passed without a Personio webhook, and MOCO sent none for a new
    # presence either: the next run's changes are what the webhooks should have brought.
    set_last_day(world, [1007], 1)
    emp = world.person(1005)
    world.sandbox.fixtures({"moco_presences": [{
        "user_id": emp["moco_user_id"], "date": (dt.date.today() - dt.timedelta(days=1)).isoformat(),
        "from": "21:00", "to": "21:30"}]})
    world.reconcile()  # deactivates Tim: a change the Personio webhook should have brought
    run = world.runs()[-1]
    report = world.report(run["id"])
    personio = [w for w in report["warnings"] if "No webhook from Personio" in w]
    assert len(personio) == 1, report["warnings"]
    assert [w for w in report["warnings"] if "No webhook from MOCO" in w
            and "1 attendance_pushed" in w], report["warnings"]
    w = personio[0]
    assert "last 24 hours" in w and "deactivated" in w
    assert any("No webhook from Personio" in t for t in world.slack_texts())
    assert "Warnings" in world.report(run["id"], "text")

    # With Personio's webhooks arriving, the same kind of change raises no warning.
    ev = world.personio("person.updated", 1003)
    world.wait_event(ev)
    set_last_day(world, [1010], 1)
    world.sandbox.call("DELETE", "/slack")
    world.reconcile()
    run = world.runs()[-1]
    assert world.run_findings(run["id"], "deactivated")
    assert not [w for w in world.report(run["id"])["warnings"] if "Personio" in w]
    assert not any("No webhook from Personio" in t for t in world.slack_texts())


def test_stale_window_is_a_policy_setting(world):
    world.timesync_reset(policy={"stale_webhook_hours": 0})  # off
    world.reconcile()
    assert world.report()["warnings"] == []
    bad = dict(world.doc, policy=dict(world.doc["policy"], stale_webhook_hours="soon"))
    path = world.tmpdir / "bad.json"
    import json
    path.write_text(json.dumps(bad))
    res = world.ctl("connection", "apply", str(path), check=False)
    assert res.returncode == 1 and "policy.stale_webhook_hours" in res.stderr
