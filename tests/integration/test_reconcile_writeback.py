"""
Platform writes a reconciliation run sends behind (handlers/writeback.c): on a first
night where the platform lacks every manager, the manager PATCHes go out in batches,
several at a time, each audited before it is sent. What the platform and the audit
trail end up with must be exactly what one write after the other gave: every manager
set once, every write audited "ok", a failed write an `error` finding naming the
person, and a person's own writes still in order.
"""
import datetime as dt
import json
import math

TEAMS = ("Backend", "Frontend", "Support", "Sales")
BATCH = 32  # RD_WRITEBACK_BATCH
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def big_company(world, n=120):
    """seed.generate_company's company of n (managers missing on the platform), connected today."""
    world.timesync_reset(seed="empty", team_map={t: t for t in TEAMS},
                         start_date=dt.date.today().isoformat())
    world.sandbox.fixtures({"generate": {"company": n, "presence_days": 1}})
    world.sandbox.call("DELETE", "/requests")


def real_run(world):
    world.reconcile()
    run = world.runs()[-1]
    (stats,) = world.query("SELECT stats FROM runs WHERE id = %s", (run["id"],))[0]
    return run, world.run_findings(run["id"]), stats


def manager_patches(world):
    return [r for r in world.sandbox.requests("scim", method="PATCH")
            if ENT + ":manager" in r["body"]]


def expected_managers(world):
    """platform user id -> the platform id of the HR supervisor, for everyone who has both."""
    st = world.sandbox.state()
    by_email = {u["userName"].lower(): u for u in st["scim_users"]}
    emps = {e["id"]: e for e in st["employees"]}
    out = {}
    for e in emps.values():
        sup = emps.get(e["supervisor_id"])
        me, boss = by_email.get(e["email"].lower()), sup and by_email.get(sup["email"].lower())
        if me and boss:
            out[me["id"]] = boss["id"]
    return out


def managers_now(world):
    return {u["id"]: (u.get(ENT) or {}).get("manager", {}).get("value")
            for u in world.sandbox.state()["scim_users"]}


def test_a_first_night_sets_every_manager_once_in_batches_each_audited(world):
    big_company(world)
    want = expected_managers(world)
    assert len(want) > 3 * BATCH, len(want)  # several batches and a partial last one
    run, found, stats = real_run(world)
    assert run["status"] == "done", run
    patches = manager_patches(world)
    paths = [p["path"] for p in patches]
    assert len(paths) == len(set(paths)) == len(want), (len(paths), len(want))
    changed = [f for f in found if f["kind"] == "manager_changed"]
    assert len(changed) == len(want) and {f["result"] for f in changed} == {"done"}
    assert [f for f in found if f["kind"] == "error"] == []
    assert stats["writeback"] == {"writes": len(want), "failed": 0,
                                  "batches": math.ceil(len(want) / BATCH)}, stats["writeback"]
    now = managers_now(world)
    assert {u: now[u] for u in want} == want
    # every PATCH audited as this run's, before and after: no row left "sending"
    audit = [a for a in world.audit("scim") if a["method"] == "PATCH"]
    assert sorted(a["path"] for a in audit) == sorted("/Users/" + u for u in want)
    assert {(a["outcome"], a["http_status"], a["reason"]) for a in audit} == {
        ("ok", 200, f"run:{run['id']}")}, audit[:3]
    rows = world.query("SELECT before, after FROM upstream_audit WHERE connection_id = %s"
                       " AND system = 'scim' AND method = 'PATCH' LIMIT 1", (world.connection_id,))
    before, after = rows[0]
    assert before == {"manager": None}
    assert after["Operations"][0]["path"] == ENT + ":manager"
    # the night after has nothing to write
    world.sandbox.call("DELETE", "/requests")
    run, found, stats = real_run(world)
    assert manager_patches(world) == [] and stats["writeback"]["writes"] == 0
    assert not [f for f in found if f["kind"] == "manager_changed"]


def test_a_write_the_platform_refuses_is_an_error_finding_and_the_others_go_through(world):
    big_company(world)
    want = expected_managers(world)
    st = world.sandbox.state()
    victim = sorted(want)[len(want) // 2]
    email = next(u["userName"] for u in st["scim_users"] if u["id"] == victim)
    world.sandbox.fault(system="scim", method="PATCH", path_prefix="/Users/" + victim,
                        status=400, times=None,
                        body={"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                              "status": "400", "detail": "manager is locked for this user"})
    run, found, stats = real_run(world)
    assert run["status"] == "done", run
    errors = [f for f in found if f["kind"] == "error"]
    assert [f["email"] for f in errors] == [email], errors
    assert "setting the platform manager" in errors[0]["detail"]
    assert "manager is locked for this user" in errors[0]["detail"]
    assert errors[0]["result"] == "failed"
    assert stats["writeback"]["failed"] == 1 and stats["writeback"]["writes"] == len(want) - 1
    assert stats["errors"] >= 1
    audit = {a["path"]: a for a in world.audit("scim") if a["method"] == "PATCH"}
    assert (audit["/Users/" + victim]["outcome"], audit["/Users/" + victim]["http_status"]) == (
        "failed", 400)
    assert all(a["outcome"] == "ok" for p, a in audit.items() if p != "/Users/" + victim)
    now = managers_now(world)
    assert now[victim] is None
    assert all(now[u] == m for u, m in want.items() if u != victim)
    # once the platform takes it, the next night sets it
    world.sandbox.call("DELETE", "/faults")
    run, found, stats = real_run(world)
    assert [f["email"] for f in found if f["kind"] == "manager_changed"] == [email]
    assert managers_now(world)[victim] == want[victim]


def test_a_write_sent_at_once_goes_out_after_every_write_handed_over_before_it(world):
    """A leaver in the middle of the company: the people before them had their manager
    PATCHes handed over (a batch not yet full), then the leaver's deactivation, a write
    sent at once, sends those first. So the platform receives the run's writes in the
    order the convergence made them, whatever the batching."""
    big_company(world)
    want = expected_managers(world)
    st = world.sandbox.state()
    by_email = {u["userName"].lower(): u["id"] for u in st["scim_users"]}
    emps = sorted(st["employees"], key=lambda e: e["id"])  # the run's order
    leaver = emps[len(emps) // 2 + 5]
    assert by_email.get(leaver["email"].lower()), leaver
    day = (dt.date.today() - dt.timedelta(days=2)).isoformat()
    world.sandbox.fixtures({"personio_employees": [
        dict(leaver, last_working_day=day, termination_date=day)]})
    world.sandbox.call("DELETE", "/requests")
    run, found, stats = real_run(world)
    assert run["status"] == "done", run
    assert [f["email"] for f in found if f["kind"] == "deactivated"] == [leaver["email"]], found
    sent = {}
    for r in world.sandbox.requests("scim", method="PATCH"):
        for op in json.loads(r["body"])["Operations"]:
            sent[(r["path"][len("/Users/"):], op["path"])] = r["id"]
    off = sent[(by_email[leaver["email"].lower()], "active")]
    earlier = [by_email[e["email"].lower()] for e in emps if e["id"] < leaver["id"]
               and by_email.get(e["email"].lower()) in want]
    later = [by_email[e["email"].lower()] for e in emps if e["id"] > leaver["id"]
             and by_email.get(e["email"].lower()) in want]
    assert len(earlier) % BATCH and later  # the leaver comes in the middle of a batch
    assert all(sent[(u, ENT + ":manager")] < off for u in earlier)
    assert all(sent[(u, ENT + ":manager")] > off for u in later)
    want.pop(by_email[leaver["email"].lower()], None)  # off before its movers step
    assert {u: m for u, m in managers_now(world).items() if u in want} == want


def test_a_platform_that_refuses_every_write_stops_the_run_and_drops_the_rest_unsent(world):
    """As with people failing one after another, 25 writes failing in a row stop the run:
    the batch in flight is still reported (it went out), what was handed over and not
    sent is dropped, never audited, and left for the next night."""
    big_company(world)
    want = expected_managers(world)
    world.sandbox.fault(system="scim", method="PATCH", status=400, times=None,
                        body={"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                              "status": "400", "detail": "read-only tenant"})
    world.reconcile(check=False)
    run = world.runs()[-1]
    assert run["status"] == "failed", run
    assert "platform writes failed in a row" in run["error"], run
    assert "read-only tenant" in run["error"], run
    sent = manager_patches(world)
    assert 25 <= len(sent) <= 2 * BATCH < len(want), len(sent)
    audit = [a for a in world.audit("scim") if a["method"] == "PATCH"]
    assert len(audit) == len(sent) and {a["outcome"] for a in audit} == {"failed"}, audit[:2]
    errors = world.run_findings(run["id"], "error")
    assert len([f for f in errors if "setting the platform manager" in f["detail"]]) == len(sent)
    # the platform takes writes again: the next night sets every manager
    world.sandbox.call("DELETE", "/faults")
    world.reconcile()
    assert world.runs()[-1]["status"] == "done"
    assert {u: m for u, m in managers_now(world).items() if u in want} == want
