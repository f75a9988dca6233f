"""
The nightly reconciliation with every capability merged: each finding kind of DESIGN.md §7 comes out of a run from seeded
sandbox data (the demo company), a dry run plans exactly what the real run then does and
writes nothing, and the real lifecycle deactivation (no test stub) honours the circuit
breaker. Assertions are on kinds, e-mails, results and upstream writes, not on wording.
"""
import datetime as dt

ALL_KINDS = {"linked", "new_hire", "platform_only", "deactivated", "deactivation_scheduled",
             "deactivation_held", "team_changed", "manager_changed", "unmapped_team",
             "absence_created", "absence_removed", "attendance_pushed", "attendance_removed",
             "conflict", "error"}


def emails(findings, kind, result=None):
    return sorted(f["email"] for f in findings
                  if f["kind"] == kind and (result is None or f["result"] == result))


def real_run(world, *args):
    world.reconcile(*args)
    run = world.runs()[-1]
    return run, world.run_findings(run["id"])


def test_a_run_finds_every_lifecycle_kind_in_the_demo_company(world):
    world.timesync_reset(team_map={"Backend": "Engineering", "Frontend": "Engineering",
                          "Support": "Customer Care"})  # Sales is unmapped now
    run, found = real_run(world)
    assert run["status"] == "done", run
    assert "tom.maier@acme.example" in emails(found, "new_hire")          # 1029 onboarding
    assert "tim.lange@acme.example" in emails(found, "deactivation_scheduled")  # last day +7
    assert emails(found, "deactivated", "done") == ["sarah.koenig@acme.example"]  # left -30
    assert "ben.braun@acme.example" in emails(found, "team_changed")      # Customer Care
    assert "marie.wolf@acme.example" in emails(found, "manager_changed")  # CEO on platform
    assert emails(found, "unmapped_team")                                 # Sales
    assert emails(found, "platform_only") == ["it-admin@acme.example"]
    users = {u["userName"].lower(): u for u in world.sandbox.state()["scim_users"]}
    assert users["sarah.koenig@acme.example"]["active"] is False
    assert users["ceo@acme.example"]["active"] is True


def test_a_run_finds_the_time_sync_kinds(world):
    world.timesync_reset()
    run, found = real_run(world)
    assert emails(found, "absence_created")      # approved time-offs -> MOCO schedules
    assert emails(found, "attendance_pushed")    # MOCO presences -> Personio attendances
    # Undo one of each upstream: the next run removes what rosterd made.
    st = world.sandbox.state()
    pushed = next(f for f in found if f["kind"] == "attendance_pushed")
    mine = [p for p in st["presences"] if p["user_id"] == world.person(
        next(e["id"] for e in st["employees"] if e["email"] == pushed["email"]))["moco_user_id"]]
    world.sandbox.fixtures({"delete": {"moco_presences": [mine[0]["id"]]}})
    toff = next(t for t in st["time_offs"] if t["status"] == "approved" and t["id"] == 30002)
    world.sandbox.fixtures({"personio_time_offs": [dict(toff, status="cancelled")]})
    run, found = real_run(world)
    assert emails(found, "attendance_removed") == [pushed["email"]]
    assert "lukas.meyer@acme.example" in emails(found, "absence_removed")


def test_dry_run_plans_exactly_what_the_real_run_does_and_writes_nothing(world):
    world.timesync_reset()
    world.reconcile("--dry-run")
    dry = world.run_findings(world.runs()[-1]["id"])
    assert world.writes() == []
    real = real_run(world)[1]

    def shape(fs):
        return sorted((f["kind"], f["email"], "done" if f["result"] == "planned" else f["result"])
                      for f in fs)
    assert shape(dry) == shape(real)
    assert {f["kind"] for f in real} | {"deactivation_held", "conflict", "error",
                                        "attendance_removed", "absence_removed"} >= ALL_KINDS - {
        "unmapped_team"}


def test_the_real_deactivation_step_honours_the_breaker(world):
    world.timesync_reset(policy={"max_deactivations_per_run": 1})
    emps = {e["id"]: e for e in world.sandbox.state()["employees"]}
    past = (dt.date.today() - dt.timedelta(days=3)).isoformat()
    world.sandbox.fixtures({"personio_employees": [
        dict(emps[i], last_working_day=past, termination_date=past) for i in (1007, 1008)]})
    run, found = real_run(world)
    assert run["status"] == "held" and run["planned_deactivations"] == 3, run
    assert emails(found, "deactivation_held") == ["anna.weber@acme.example",
                                                  "lukas.meyer@acme.example",
                                                  "sarah.koenig@acme.example"]
    assert not [w for w in world.writes("scim") if '"active"' in (w["body"] or "")]
    world.ctl("reconcile", "approve", str(run["id"]))
    users = {u["userName"].lower(): u for u in world.sandbox.state()["scim_users"]}
    assert not any(users[e]["active"] for e in ("anna.weber@acme.example",
                                                "lukas.meyer@acme.example",
                                                "sarah.koenig@acme.example"))


def test_a_steady_night_reads_each_list_once_and_nobody_on_their_own(world):
    """The run's preload feeds every capability (time sync's cache, the delegations):
    a second night over the 30 people reads each upstream list once, in pages, and makes
    no read for one person (a 10,000-person company must not mean 10,000 requests)."""
    world.timesync_reset()
    real_run(world)
    world.sandbox.call("DELETE", "/requests")
    run, _found = real_run(world)
    assert run["status"] == "done", run
    gets = [r for r in world.sandbox.requests() if r["method"] == "GET"]
    per_person = [f'{r["system"]} {r["path"]}?{r["query"]}' for r in gets
                  if "user_id=" in r["query"] or "employees[]=" in r["query"]
                  or "approver=" in r["query"] or "employees%5B%5D=" in r["query"]
                  or (r["system"] == "personio" and r["path"].count("/") > 3)]
    assert per_person == [], per_person
    by_path = {}
    for r in gets:
        by_path[(r["system"], r["path"])] = by_path.get((r["system"], r["path"]), 0) + 1
    # Each list once, in its pages (MOCO 100 a page, Personio attendances 200).
    st = world.sandbox.state()
    assert by_path[("moco", "/users/presences")] <= len(st["presences"]) // 100 + 1, by_path
    assert by_path[("moco", "/schedules")] <= len(st["schedules"]) // 100 + 1, by_path
    assert by_path[("personio", "/v1/company/attendances")] <= len(st["attendances"]) // 200 + 1, \
        by_path
    assert by_path.get(("platform", "/approval-delegations"), 0) == 1, by_path


def test_a_steady_night_reads_the_database_a_chunk_at_a_time(world):
    """What each person's convergence reads from the database (their deactivation jobs,
    delegations, attendance and schedule links, and their time-sync locks) comes from one
    statement per chunk of people (handlers/prefetch_internal.h): on a second night every
    such read is served from the chunk, none queries on its own, what the chunk served is
    what the first night stored (no upstream write is repeated), and no lock outlives the run."""
    world.timesync_reset()
    # inside rosterd (the scheduled job): its worker sessions outlive the runs
    for night in range(2):
        if night:
            world.sandbox.call("DELETE", "/requests")
        state, note, err = world.run_job("reconcile", timeout=90)
        assert state == "done", (state, note, err)
        run = world.runs()[-1]
        assert run["status"] == "done", run
    found = world.run_findings(run["id"])
    (stats,) = world.query("SELECT stats FROM runs WHERE id = %s", (run["id"],))[0]
    pf = stats["prefetch"]
    people = run["employees"]
    # the counting pass and the real one: one chunk each for 30 people
    assert pf["chunks"] == 2, pf
    assert pf["read_alone"] == 0, pf
    # jobs and delegations in both passes, the time-sync links of the real pass
    assert pf["served"] >= 4 * people, pf
    writes = [f'{r["system"]} {r["method"]} {r["path"]}' for r in world.sandbox.requests()
              if r["method"] != "GET" and r["system"] != "slack"
              and not (r["system"] == "personio" and r["path"] == "/v1/auth")]
    assert writes == [], writes
    assert not [f for f in found if f["kind"] in ("attendance_pushed", "absence_created")], found
    held = world.query("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                       " WHERE l.locktype = 'advisory' AND a.application_name LIKE 'rosterd%%'")
    assert held[0][0] == 0, held


def test_a_first_night_reads_ahead_for_people_it_links_in_the_same_pass(world):
    """On the first night nobody is linked to MOCO yet: the chunk's time-sync reads are
    keyed on the MOCO user each person's e-mail names among the preloaded MOCO users
    (rd_identity_expected_moco), so the people linked in this very pass are served from
    the chunk like a steady night's, instead of querying alone (~10 statements each)."""
    world.timesync_reset()
    assert not world.query("SELECT 1 FROM people WHERE connection_id = %s"
                           " AND moco_user_id IS NOT NULL", (world.connection_id,))
    run, found = real_run(world)
    assert run["status"] == "done", run
    linked = [f for f in found if f["kind"] == "linked" and "MOCO" in (f["detail"] or "")]
    assert len(linked) >= 10, linked
    (stats,) = world.query("SELECT stats FROM runs WHERE id = %s", (run["id"],))[0]
    pf = stats["prefetch"]
    assert pf["read_alone"] == 0, pf
    # a chunk held past RD_PREFETCH_HOLD_SECONDS (a slow machine: the first night writes a
    # lot) is let go early and its remaining people read for themselves, counted apart
    assert pf["served"] >= (2 if pf["released_early"] else 4) * run["employees"], pf
    held = world.query("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                       " WHERE l.locktype = 'advisory' AND a.application_name LIKE 'rosterd%%'")
    assert held[0][0] == 0, held


def test_a_presence_moved_between_two_people_of_one_chunk_is_pushed_once_for_its_new_owner(world):
    """A presence that moves from one MOCO user to another between two nights: whichever of
    the two the chunk converges first, its write to that presence's link stops the chunk
    serving what it read of the presence and of its old owner, so the old owner's
    attendance is removed, the new owner's pushed, and the night after writes nothing."""
    world.timesync_reset()
    real_run(world)
    st = world.sandbox.state()
    users = sorted({p["user_id"] for p in st["presences"]})
    order = [e["id"] for e in st["employees"]]
    owner = {world.person(i)["moco_user_id"]: i for i in order if world.person(i)}
    users = [u for u in users if u in owner]
    first, last = users[0], users[-1]
    # earlier -> later person, and back; in the evening, where neither has other hours
    for src, dst, hours in ((first, last, ("19:00", "19:30")), (last, first, ("20:00", "20:30"))):
        p = next(x for x in world.sandbox.state()["presences"] if x["user_id"] == src)
        world.sandbox.fixtures({"moco_presences": [dict(p, user_id=dst, **{"from": hours[0],
                                                                           "to": hours[1]})]})
        run, found = real_run(world)
        assert run["status"] == "done", run
        mine = lambda emp: [a for a in world.attendances(emp)
                            if f'[moco-presence:{p["id"]}]' in (a.get("comment") or "")]
        assert mine(owner[src]) == [], (src, dst, found)
        assert len(mine(owner[dst])) == 1, (src, dst, [f for f in found if f["kind"] != "platform_only"])
        world.sandbox.call("DELETE", "/requests")
        run, found = real_run(world)
        writes = [f'{r["system"]} {r["method"]} {r["path"]}' for r in world.sandbox.requests()
                  if r["method"] != "GET" and r["system"] in ("personio", "moco")
                  and r["path"] != "/v1/auth"]
        assert writes == [], writes
