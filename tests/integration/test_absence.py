"""
Absence sync (handlers/absence.c, DESIGN.md §1): approved Personio time-offs become MOCO
schedules, one per working day of the employee (their Personio work schedule, Monday to
Friday without one), half days as am/pm, absence_code from absence_codes (5 unmapped),
a comment naming the Personio absence; someone else's entry is kept and reported, code 1
replaced; shortened, rejected, cancelled and deleted absences remove only rosterd's own
entries for the days no longer covered. Driven by signed Personio webhooks (naming the
person, or only the absence's v2 id) and the daily sweep through the real rosterd
against the sandbox; asserted on MOCO's schedules, the request log and the findings.
"""
import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

pytestmark = pytest.mark.usefixtures("world")

EMP, USER, EMAIL = 1020, 9020, "emilia.hartmann@acme.example"
EMP2, USER2 = 1022, 9022


def today():
    return dt.datetime.now(ZoneInfo("Europe/Berlin")).date()


def weekday(wd, weeks=1):
    """The date of weekday wd (0 Monday) in `weeks` weeks' time."""
    d = today() + dt.timedelta(days=7 * weeks)
    return d - dt.timedelta(days=d.weekday() - wd)


def iso(d):
    return d.isoformat()


def comment(t, typ="Vacation"):
    return f"{typ}: Personio absence {t['id']}, mirrored by rosterd [personio:{t['id']}]"


def entries(world, user=USER):
    return [(s["date"], s["absence_code"], s["am"], s["pm"]) for s in world.schedules(user)]


def notify(world, event, t=None, person=None, status="done"):
    """absence-period.* as Personio sends it: with the person, or (person None) the v2 id only."""
    payload = {"id": t["id_v2"]} if t else {}
    if person:
        payload["person"] = {"id": str(person)}
    ev = world.personio(event, payload=payload)
    row = world.wait_event(ev)
    assert row["status"] == status, row
    return ev, row


def moco_writes(world):
    return [(w["method"], w["path"]) for w in world.writes("moco")]


def test_time_off_over_a_weekend_is_one_entry_per_working_day(world):
    world.timesync_reset()
    fri = weekday(4)
    t = world.time_off(employee_id=EMP, type="Vacation", start_date=iso(fri),
                       end_date=iso(fri + dt.timedelta(days=4)))
    ev, row = notify(world, "absence-period.created", t, person=EMP)
    days = [iso(fri), iso(fri + dt.timedelta(days=3)), iso(fri + dt.timedelta(days=4))]
    assert entries(world) == [(d, 4, True, True) for d in days]
    assert {s["comment"] for s in world.schedules(USER)} == {comment(t)}
    posts = [json.loads(w["body"]) for w in world.writes("moco") if w["method"] == "POST"]
    assert len(posts) == 3 and not any("overwrite" in p for p in posts)
    assert all(p["user_id"] == USER for p in posts)
    [f] = world.findings("absence_created")
    assert f["email"] == EMAIL and "3 days" in f["detail"] and f"Personio absence {t['id']}" in f["detail"]
    assert "absence_created" in row["note"]
    assert [(a["method"], a["reason"]) for a in world.audit("moco")] == [("POST", f"event:{ev}")] * 3


def test_absence_named_only_by_its_v2_id_is_found(world):
    world.timesync_reset()
    mon = weekday(0, 2)
    t = world.time_off(employee_id=EMP, type="Vacation", start_date=iso(mon), end_date=iso(mon))
    notify(world, "absence-period.created", t)  # payload {"id": "<v2 uuid>"}, no person
    assert entries(world) == [(iso(mon), 4, True, True)]


def test_half_days_become_am_or_pm(world):
    world.timesync_reset()
    mon = weekday(0)
    t = world.time_off(employee_id=EMP, type="Vacation", start_date=iso(mon),
                       end_date=iso(mon + dt.timedelta(days=2)), half_day_start=True,
                       half_day_end=True)
    one = world.time_off(employee_id=EMP2, type="Vacation", start_date=iso(mon), end_date=iso(mon),
                         half_day_start=True)
    notify(world, "absence-period.created", t, person=EMP)
    notify(world, "absence-period.created", one, person=EMP2)
    # starts at noon: the afternoon off (pm); ends at noon: the morning off (am)
    assert entries(world) == [(iso(mon), 4, False, True),
                              (iso(mon + dt.timedelta(days=1)), 4, True, True),
                              (iso(mon + dt.timedelta(days=2)), 4, True, False)]
    assert entries(world, USER2) == [(iso(mon), 4, False, True)]
    [f] = [f for f in world.findings("absence_created") if f["email"] == EMAIL]
    assert f"{iso(mon)} pm" in f["detail"] and f"{iso(mon + dt.timedelta(days=2))} am" in f["detail"]


def employee_fixture(world, emp_id, **changes):
    rec = dict(next(e for e in world.sandbox.state()["employees"] if e["id"] == emp_id))
    rec.update(changes)
    world.sandbox.fixtures({"personio_employees": [rec]})


def test_work_schedule_decides_the_working_days(world):
    world.timesync_reset()
    mon = weekday(0)
    employee_fixture(world, EMP, work_schedule={"name": "Mon-Thu", "monday": "08:00",
                                                "tuesday": "08:00", "wednesday": "08:00",
                                                "thursday": "08:00", "friday": "00:00"})
    employee_fixture(world, EMP2, work_schedule="Full time")  # an undocumented shape
    for emp in (EMP, EMP2):
        t = world.time_off(employee_id=emp, type="Vacation", start_date=iso(mon),
                           end_date=iso(mon + dt.timedelta(days=6)))
        notify(world, "absence-period.created", t, person=emp)
    assert [e[0] for e in entries(world)] == [iso(mon + dt.timedelta(days=i)) for i in range(4)]
    assert [e[0] for e in entries(world, USER2)] == [iso(mon + dt.timedelta(days=i)) for i in range(5)]


def test_absence_codes_come_from_the_connection_unmapped_is_5(world):
    world.timesync_reset()
    tue = weekday(1)
    sick = world.time_off(employee_id=EMP, type="Sick leave", start_date=iso(tue), end_date=iso(tue))
    home = world.time_off(employee_id=EMP, type="Home office", start_date=iso(tue + dt.timedelta(days=1)),
                          end_date=iso(tue + dt.timedelta(days=1)))
    notify(world, "absence-period.created", sick, person=EMP)
    assert [(e[0], e[1]) for e in entries(world)] == [(iso(tue), 3), (iso(tue + dt.timedelta(days=1)), 5)]
    assert {s["comment"] for s in world.schedules(USER)} == {comment(sick, "Sick leave"),
                                                             comment(home, "Home office")}


def test_absence_entered_late_for_past_days_is_mirrored(world):
    """A sick leave entered weeks afterwards: past days, outside the usual 30 days back."""
    world.timesync_reset()
    mon = weekday(0, -7)  # seven weeks ago
    t = world.time_off(employee_id=EMP, type="Sick leave", start_date=iso(mon),
                       end_date=iso(mon + dt.timedelta(days=1)))
    notify(world, "absence-period.created", t, person=EMP)
    assert entries(world) == [(iso(mon), 3, True, True), (iso(mon + dt.timedelta(days=1)), 3, True, True)]


def test_pending_time_off_is_not_mirrored(world):
    world.timesync_reset()
    t = world.time_off(employee_id=EMP, type="Vacation", status="pending",
                       start_date=iso(weekday(2)), end_date=iso(weekday(2)))
    _, row = notify(world, "absence-period.created", t, person=EMP)
    assert world.writes("moco") == [] and world.schedules(USER) == []
    assert "already match" in row["note"]


def test_manual_entry_is_kept_and_reported_once(world):
    world.timesync_reset()
    mon = weekday(0)
    tue = iso(mon + dt.timedelta(days=1))
    manual = world.sandbox.fixtures({"moco_schedules": [{
        "user_id": USER, "date": tue, "absence_code": 4,
        "comment": "Urlaub (entered in MOCO)"}]})["created"]["moco_schedules"][0]
    t = world.time_off(employee_id=EMP, type="Vacation", start_date=iso(mon),
                       end_date=iso(mon + dt.timedelta(days=2)))
    ev, row = notify(world, "absence-period.created", t, person=EMP)
    by_day = {s["date"]: s for s in world.schedules(USER)}
    assert by_day[tue]["id"] == manual and by_day[tue]["comment"] == "Urlaub (entered in MOCO)"
    assert sorted(by_day) == [iso(mon), tue, iso(mon + dt.timedelta(days=2))]
    assert not [w for w in world.writes("moco") if w["path"] == f"/schedules/{manual}"]
    [c] = world.findings("conflict")
    assert c["email"] == EMAIL and tue in c["detail"] and f"MOCO schedule {manual}" in c["detail"]
    assert "left as it is" in c["detail"] and c["result"] == "none"
    # Reported once: the replay, the next handler run, the sweep say nothing new.
    world.sandbox.call("DELETE", "/requests")
    world.ctl("events", "replay", str(ev))
    world.wait_idle()
    assert world.event(ev)["status"] == "done"
    assert world.writes("moco") == [] and len(world.findings("conflict")) == 1


def test_code_1_entry_is_replaced_without_overwrite(world):
    world.timesync_reset()
    wed = iso(weekday(2))
    np_ = world.sandbox.fixtures({"moco_schedules": [{
        "user_id": USER, "date": wed, "absence_code": 1,
        "comment": "not plannable"}]})["created"]["moco_schedules"][0]
    t = world.time_off(employee_id=EMP, type="Vacation", start_date=wed, end_date=wed)
    notify(world, "absence-period.created", t, person=EMP)
    writes = world.writes("moco")
    assert [(w["method"], w["path"]) for w in writes] == [("DELETE", f"/schedules/{np_}"),
                                                         ("POST", "/schedules")]
    assert "overwrite" not in json.loads(writes[1]["body"])
    [s] = world.schedules(USER)
    assert (s["date"], s["absence_code"], s["comment"]) == (wed, 4, comment(t))
    [f] = world.findings("absence_created")
    assert "not plannable" in f["detail"] and str(np_) in f["detail"]


def test_demo_pre_existing_entries_code_4_kept_code_1_replaced(world):
    """The demo company: Anna Weber's vacation 30006 meets a MOCO holiday and a code-1 entry."""
    world.timesync_reset()
    before = {s["id"]: s for s in world.schedules(9008)}
    assert sorted(s["absence_code"] for s in before.values()) == [1, 4]
    notify(world, "absence-period.updated.status", person=1008)
    after = world.schedules(9008)
    kept = [s for s in after if s["id"] in before]
    assert [s["absence_code"] for s in kept] == [4]  # the holiday stays; code 1 is gone
    ours = [s for s in after if s["id"] not in before]
    assert ours and all("[personio:30006]" in s["comment"] for s in ours)
    assert {s["date"] for s in ours} | {kept[0]["date"]} == {s["date"] for s in after}
    assert len(world.findings("conflict")) == 1


def test_cancellation_removes_only_rosterds_entries(world):
    world.timesync_reset()
    mon = weekday(0, 2)
    d = [iso(mon + dt.timedelta(days=i)) for i in range(4)]
    manual = world.sandbox.fixtures({"moco_schedules": [
        {"user_id": USER, "date": d[1], "absence_code": 3, "comment": "sick, entered in MOCO"},
        {"user_id": USER, "date": d[3], "absence_code": 4, "comment": "another holiday"},
    ]})["created"]["moco_schedules"]
    t = world.time_off(employee_id=EMP, type="Vacation", start_date=d[0], end_date=d[2])
    notify(world, "absence-period.created", t, person=EMP)
    ours = {s["date"]: s["id"] for s in world.schedules(USER) if s["id"] not in manual}
    assert sorted(ours) == [d[0], d[2]]
    # The absence is deleted in Personio; the webhook carries only its v2 id.
    world.sandbox.fixtures({"delete": {"personio_time_offs": [t["id"]]}})
    world.sandbox.call("DELETE", "/requests")
    _, row = notify(world, "absence-period.deleted", t)
    assert sorted(moco_writes(world)) == sorted(("DELETE", f"/schedules/{i}") for i in ours.values())
    assert sorted(s["id"] for s in world.schedules(USER)) == sorted(manual)
    [f] = world.findings("absence_removed")
    assert f["email"] == EMAIL and "2 days" in f["detail"] and "deleted" in f["detail"]
    assert "absence_removed" in row["note"]


def test_rejected_absence_removes_rosterds_entries(world):
    world.timesync_reset()
    thu = weekday(3)
    t = world.time_off(employee_id=EMP, type="Vacation", start_date=iso(thu),
                       end_date=iso(thu + dt.timedelta(days=1)))
    notify(world, "absence-period.created", t, person=EMP)
    assert len(world.schedules(USER)) == 2
    world.time_off(**dict(t, status="rejected"))
    notify(world, "absence-period.updated.status", t, person=EMP)
    assert world.schedules(USER) == []
    [f] = world.findings("absence_removed")
    assert "was rejected" in f["detail"]


def test_shortened_absence_deletes_only_the_days_no_longer_covered(world):
    world.timesync_reset()
    mon = weekday(0)
    t = world.time_off(employee_id=EMP, type="Vacation", start_date=iso(mon),
                       end_date=iso(mon + dt.timedelta(days=4)))
    notify(world, "absence-period.created", t, person=EMP)
    before = {s["date"]: s["id"] for s in world.schedules(USER)}
    assert len(before) == 5
    world.time_off(**dict(t, end_date=iso(mon + dt.timedelta(days=2))))
    world.sandbox.call("DELETE", "/requests")
    notify(world, "absence-period.updated.timerange", t, person=EMP)
    gone = [before[iso(mon + dt.timedelta(days=3))], before[iso(mon + dt.timedelta(days=4))]]
    assert sorted(moco_writes(world)) == sorted(("DELETE", f"/schedules/{i}") for i in gone)
    assert {s["date"]: s["id"] for s in world.schedules(USER)} == {
        k: v for k, v in before.items() if v not in gone}
    [f] = world.findings("absence_removed")
    assert "shortened" in f["detail"] and "2 days" in f["detail"]


def test_replay_changes_nothing(world):
    world.timesync_reset()
    wed = weekday(2)
    t = world.time_off(employee_id=EMP, type="Vacation", start_date=iso(wed),
                       end_date=iso(wed + dt.timedelta(days=1)))
    ev, _ = notify(world, "absence-period.created", t, person=EMP)
    world.sandbox.call("DELETE", "/requests")
    world.ctl("events", "replay", str(ev))
    world.wait_idle()
    assert world.event(ev)["status"] == "done"
    assert world.writes("moco") == [] and len(world.schedules(USER)) == 2
    assert len(world.findings("absence_created")) == 1


def test_entry_of_rosterd_changed_in_moco_is_put_back(world):
    world.timesync_reset()
    tue = iso(weekday(1))
    t = world.time_off(employee_id=EMP, type="Vacation", start_date=tue, end_date=tue)
    notify(world, "absence-period.created", t, person=EMP)
    [s] = world.schedules(USER)
    world.sandbox.fixtures({"moco_schedules": [dict(s, absence_code=5, am=False)]})
    world.sandbox.call("DELETE", "/requests")
    notify(world, "absence-period.updated.status", t, person=EMP)
    assert moco_writes(world) == [("PUT", f"/schedules/{s['id']}")]
    assert entries(world) == [(tue, 4, True, True)]


def test_daily_sweep_mirrors_what_changed_and_then_nothing(world):
    world.timesync_reset()
    mon = weekday(0, 3)
    world.time_off(employee_id=EMP, type="Vacation", start_date=iso(mon), end_date=iso(mon))
    world.time_off(employee_id=EMP2, type="Sick leave", start_date=iso(mon), end_date=iso(mon))
    state, note, err = world.run_job("sweep.absence")
    assert state == "done", (state, note, err)
    assert entries(world) == [(iso(mon), 4, True, True)]
    assert entries(world, USER2) == [(iso(mon), 3, True, True)]
    assert "2 absences changed" in note and "2 created" in note, note
    assert world.one("SELECT time_offs_from::text FROM timesync_sweeps WHERE connection_id = %s",
                     (world.connection_id,)) == iso(today())
    world.sandbox.call("DELETE", "/requests")
    state, note, _ = world.run_job("sweep.absence")
    assert state == "done" and world.writes("moco") == [], note


def test_event_naming_nobody_syncs_everyone(world):
    world.timesync_reset()
    _, row = notify(world, "absence-period.created")  # payload {}: no person, no absence
    # The demo's approved absences (30001, 30002, 30003, 30006, 30007, and the past sick leave).
    mirrored = {s["comment"].rsplit("[personio:", 1)[1].rstrip("]")
                for s in world.schedules() if "[personio:" in (s["comment"] or "")}
    assert {"30001", "30002", "30003", "30006", "30007"} <= mirrored
    assert "30005" not in mirrored and "30008" not in mirrored  # pending, rejected


def test_run_dry_run_plans_and_writes_nothing(world):
    world.timesync_reset()
    thu = weekday(3)
    world.time_off(employee_id=EMP, type="Vacation", start_date=iso(thu), end_date=iso(thu))
    out = world.timesync_run("--dry-run", "absence", EMP, USER, iso(today()),
                             iso(today() + dt.timedelta(days=60)))
    assert out["calls"] == [{"rc": 0}], out
    [f] = out["findings"]
    assert f["kind"] == "absence_created" and f["result"] == "planned" and iso(thu) in f["detail"]
    assert world.writes("moco") == [] and world.schedules(USER) == []


def test_policy_off_mirrors_nothing(world):
    world.timesync_reset(policy={"absence_sync": False})
    t = world.time_off(employee_id=EMP, type="Vacation", start_date=iso(weekday(1)),
                       end_date=iso(weekday(1)))
    notify(world, "absence-period.created", t, person=EMP)
    assert world.writes("moco") == []
