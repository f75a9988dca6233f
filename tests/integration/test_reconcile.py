"""
Nightly reconciliation (handlers/reconcile*.c, DESIGN.md §1, §7): a run reads every
upstream in full, converges everyone with the handlers' functions, reports platform
accounts nobody in HR owns, stores its findings under a run id and tells the admins.
Driven through `rosterctl reconcile run` and the scheduled `reconcile` job against the
sandbox; asserted on the sandbox's request log, the runs/findings/people rows and Slack.

Finding kinds produced by the lifecycle and time-sync capabilities are asserted in
tests/integration/pending_merge/ once those branches are merged.
"""
import subprocess
import time

import helpers as H

# Every list the run pulls in full (system, path prefix).
FULL_PULL = [("personio", "/v1/company/employees"), ("personio", "/v1/company/time-offs"),
             ("personio", "/v1/company/attendances"), ("scim", "/Users"), ("scim", "/Groups"),
             ("platform", "/approval-delegations"), ("moco", "/users"),
             ("moco", "/users/presences"), ("moco", "/schedules")]


def reads(world):
    return {(r["system"], r["path"]) for r in world.sandbox.requests() if r["method"] == "GET"}


def last_run(world):
    return world.runs()[-1]


def by_kind(findings, kind):
    return [f for f in findings if f["kind"] == kind]


def test_dry_run_reads_everything_and_writes_nothing(world):
    world.timesync_reset()
    out = world.reconcile("--dry-run")
    assert "dry run" in out.stdout and "nothing was changed" in out.stdout, out.stdout
    run = last_run(world)
    assert run["dry_run"] and run["status"] == "done" and run["employees"] == 30, run
    got = reads(world)
    for system, prefix in FULL_PULL:
        assert any(s == system and p.startswith(prefix) for s, p in got), (system, prefix, got)
    # The request log proves it: only reads and Personio's auth call, no Slack either.
    others = [(r["system"], r["method"], r["path"]) for r in world.sandbox.requests()
              if r["method"] != "GET"]
    assert others and all(o == ("personio", "POST", "/v1/auth") for o in others), others
    assert world.writes() == []
    # Nothing recorded as done: no mirror rows, no links, no audit.
    assert world.person(1003) is None and world.audit() == []
    found = world.run_findings(run["id"])
    linked = [f for f in by_kind(found, "linked") if f["email"] == "jonas.becker@acme.example"]
    assert len(linked) == 2 and {f["result"] for f in linked} == {"planned"}, linked
    only = by_kind(found, "platform_only")
    assert [(f["email"], f["result"]) for f in only] == [("it-admin@acme.example", "none")]


def test_dry_run_finds_what_the_real_run_then_does(world):
    world.timesync_reset()
    world.reconcile("--dry-run")
    dry = world.run_findings(last_run(world)["id"])
    world.reconcile()
    real_run = last_run(world)
    real = world.run_findings(real_run["id"])
    assert not real_run["dry_run"] and real_run["status"] == "done"

    # The same finding for the same person, planned in the dry run and done in the real
    # one; the action is worded for each ("create in MOCO" planned, "created in MOCO" done),
    # and a dry run names an action for every finding the real run carries one out for.
    def shape(fs, planned_as):
        return sorted((f["kind"], f["email"], f["action"] is not None,
                       planned_as if f["result"] == "planned" else f["result"]) for f in fs)

    assert shape(dry, "done") == shape(real, "done")
    assert len(by_kind(real, "linked")) == 56  # 28 platform + 28 MOCO links
    assert world.person(1003)["scim_id"] == world.sandbox.lookup("jonas.becker@acme.example")[
        "scim_user_id"]


def test_real_run_links_once_and_reports_platform_only_every_night(world):
    world.timesync_reset()
    world.reconcile()
    first = last_run(world)
    assert [f["email"] for f in world.run_findings(first["id"], "platform_only")] == [
        "it-admin@acme.example"]
    # The first night converges the seed's differences, and writes nothing else: one SCIM
    # write per platform finding (Marie's manager, Ben's move between two groups, Sarah's
    # deactivation), none of them on the platform-only account.
    acted = {f["kind"]: f["email"] for f in world.run_findings(first["id"])
             if f["result"] == "done" and f["kind"] in ("manager_changed", "team_changed",
                                                        "deactivated")}
    assert acted == {"manager_changed": "marie.wolf@acme.example",
                     "team_changed": "ben.braun@acme.example",
                     "deactivated": "sarah.koenig@acme.example"}, acted
    scim = world.writes("scim")
    assert sorted(w["path"].split("/")[1] for w in scim) == ["Groups", "Groups", "Users", "Users"]
    it_id = world.sandbox.lookup("it-admin@acme.example")["scim_user_id"]
    assert not [w for w in scim if it_id in w["path"] or it_id in (w["body"] or "")], scim
    slack = [t for t in world.slack_texts() if "reconciliation" in t.lower()]
    assert len(slack) == 1 and f"run {first['id']}) done" in slack[0], world.slack_texts()
    assert "1 platform account with no employee in Personio" in slack[0]

    world.sandbox.call("DELETE", "/requests")
    world.reconcile()
    second = last_run(world)
    found = world.run_findings(second["id"])
    assert by_kind(found, "linked") == []  # level-triggered: nothing new to link
    assert [f["email"] for f in by_kind(found, "platform_only")] == ["it-admin@acme.example"]
    assert [w["system"] for w in world.writes()] == ["slack"]
    # The platform-only account is never touched.
    it = next(u for u in world.sandbox.state()["scim_users"]
              if u["userName"] == "it-admin@acme.example")
    assert it["active"] is True


def test_conflict_is_a_finding_and_changes_nothing(world):
    world.timesync_reset()
    email = "anna.weber@acme.example"
    world.sandbox.fixtures({"scim_users": [{
        "userName": "a.weber.old@acme.example", "active": True,
        "emails": [{"value": email, "type": "work", "primary": True}],
        "name": {"givenName": "Anna", "familyName": "Weber"}}]})
    world.reconcile()
    run = last_run(world)
    # (The seed's manual MOCO entries on Anna's sick days are a conflict of their own.)
    conflicts = [c for c in world.run_findings(run["id"], "conflict")
                 if "platform account" in c["detail"]]
    assert [c["email"] for c in conflicts] == [email], conflicts
    assert "a.weber.old@acme.example" in conflicts[0]["detail"]
    assert world.person(1008)["scim_id"] is None
    # Neither candidate account was written to (the run's other platform writes are the
    # seed's mover, manager change and leaver).
    ids = [u["id"] for u in world.sandbox.state()["scim_users"]
           if email in [e["value"] for e in u.get("emails", [])] or u["userName"] == email]
    assert len(ids) == 2, ids
    touched = [w for w in world.writes("scim")
               if any(i in w["path"] or i in (w["body"] or "") for i in ids)]
    assert touched == [], touched
    text = world.report(run["id"], "text")
    assert "Needs a person" in text and email in text


def test_a_failing_person_is_an_error_finding_and_the_run_goes_on(world):
    world.timesync_reset()
    world.reconcile()
    # Lukas's address changes in Personio: the run must PATCH his platform account, and
    # the platform refuses that one call.
    rec = next(e for e in world.sandbox.state()["employees"] if e["id"] == 1007)
    world.sandbox.fixtures({"personio_employees": [dict(rec, email="lukas.meyer2@acme.example")]})
    world.sandbox.fault(system="scim", method="PATCH", path_prefix="/Users/", status=400,
                        body={"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                              "status": "400", "detail": "userName is locked"}, times=None)
    try:
        out = world.reconcile()
    finally:
        world.sandbox.call("DELETE", "/faults")
    run = last_run(world)
    assert run["status"] == "done", run
    errors = world.run_findings(run["id"], "error")
    assert [e["email"] for e in errors] == ["lukas.meyer2@acme.example"], errors
    assert "userName is locked" in errors[0]["detail"] and errors[0]["result"] == "failed"
    # Everyone else was still reconciled (platform_only comes after everyone).
    assert world.run_findings(run["id"], "platform_only")
    assert "error" in out.stdout and "lukas.meyer2@acme.example" in out.stdout


def test_the_scheduled_job_runs_it_inside_rosterd(world):
    world.timesync_reset()
    state, note, err = world.run_job("reconcile", timeout=90)
    assert state == "done", (state, note, err)
    run = last_run(world)
    assert run["trigger"] == "schedule" and run["status"] == "done" and not run["dry_run"]
    assert note == f"run {run['id']} done"
    job = world.one("SELECT job_id FROM runs WHERE id = %s", (run["id"],))
    assert job is not None
    assert any(f"(run {run['id']}) done" in t for t in world.slack_texts())
    assert world.person(1003)["scim_id"] is not None


def _rosterctl_popen(world, *args):
    cmd = [H.binary("rosterctl"), "-c", str(world.conf.path), *args]
    return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=H.child_env(), start_new_session=True)


def _wait(cond, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.2)
    raise H.HarnessError(f"timed out after {timeout}s waiting for {what}")


def test_one_run_at_a_time_and_a_killed_run_is_failed_when_its_lease_lapses(world):
    world.timesync_reset()
    # Personio answers the first employee page only after 60 s: the run sits in its preload.
    world.sandbox.fault(system="personio", method="GET", path_prefix="/v1/company/employees",
                        status=None, delay_ms=60000, times=1)
    proc = _rosterctl_popen(world, "reconcile", "run", "--connection", "acme")
    try:
        running = _wait(lambda: [r for r in world.runs() if r["status"] == "running"], 30,
                        "a running run")
        run_id = running[0]["id"]
        # A second run of the same connection is refused, from another process.
        other = world.reconcile(check=False)
        assert other.returncode == 1, other
        assert f"run {run_id} of this connection is running" in other.stderr, other.stderr
        proc.kill()  # SIGKILL: no chance to clean up
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        world.sandbox.call("DELETE", "/faults")
    assert proc.returncode == -9
    assert world.runs()[-1]["status"] == "running"  # nobody has marked it yet
    # Its lease (15 s) lapses; the next run marks it failed and completes.
    time.sleep(16)
    out = world.reconcile(timeout=120)
    runs = world.runs()
    killed = next(r for r in runs if r["id"] == run_id)
    assert killed["status"] == "failed", killed
    assert "stopped renewing the run's lease" in killed["error"], killed
    assert runs[-1]["status"] == "done" and runs[-1]["id"] > run_id
    assert "Status: done" in out.stdout
    report = world.report(run_id)
    assert report["status"] == "failed" and "interrupted" in report["error"]
