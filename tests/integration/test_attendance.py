"""
Attendance push (handlers/attendance.c, DESIGN.md §1): MOCO presences become Personio
attendances, one per closed presence, approved, changed and deleted with it (past days
included, never before start_date), only rosterd's own ever touched; an open presence
waits; a presence moved to another day leaves nothing behind; Personio's overlap error is
a conflict and a dead job, not an endless retry. Driven by signed MOCO webhooks and the
hourly sweep through the real rosterd against the sandbox; asserted on what Personio
holds, the sandbox's request log, the events' notes and the findings.
"""
import datetime as dt
import json
import time
from zoneinfo import ZoneInfo

import pytest

pytestmark = pytest.mark.usefixtures("world")

EMP, USER, EMAIL = 1020, 9020, "emilia.hartmann@acme.example"  # no seeded presences
EMP2, USER2 = 1022, 9022


def day(back):
    """The date `back` days before today in the connection's time zone."""
    return (dt.datetime.now(ZoneInfo("Europe/Berlin")).date() - dt.timedelta(days=back)).isoformat()


def comment(pid):
    return f"MOCO presence {pid}, pushed by rosterd [moco-presence:{pid}]"


def personio_writes(world):
    return [(w["method"], w["path"]) for w in world.writes("personio")]


def push(world, event, entity, status="done"):
    ev = world.moco("Presence", event, entity)
    row = world.wait_event(ev)
    assert row["status"] == status, row
    return ev, row


def test_closed_presence_becomes_one_approved_attendance(world):
    world.timesync_reset()
    p = world.presence(user_id=USER, date=day(3), **{"from": "09:00", "to": "12:30"})
    ev, row = push(world, "create", p)
    [a] = world.attendances(EMP)
    assert (a["date"], a["start_time"], a["end_time"], a["break"]) == (day(3), "09:00", "12:30", 0)
    assert a["comment"] == comment(p["id"]) and a["status"] == "confirmed"
    [post] = world.writes("personio")
    assert post["method"] == "POST" and post["path"] == "/v1/company/attendances"
    body = json.loads(post["body"])
    assert body["skip_approval"] is True and len(body["attendances"]) == 1
    assert body["attendances"][0]["employee"] == EMP
    [f] = world.findings("attendance_pushed")
    assert f["email"] == EMAIL and f["result"] == "done" and str(a["id"]) in f["detail"]
    assert "attendance_pushed" in row["note"] and EMAIL in row["note"]
    assert world.one("SELECT attendance_id FROM attendance_links WHERE presence_id = %s",
                     (p["id"],)) == a["id"]
    assert [(x["method"], x["reason"]) for x in world.audit("personio")] == [("POST", f"event:{ev}")]
    # What an operator sees: the note, in rosterctl events show.
    shown = world.ctl_json("events", "show", str(ev))
    assert "attendance_pushed" in (shown[0] if isinstance(shown, list) else shown)["note"]


def test_replay_and_redelivery_make_no_second_write(world):
    world.timesync_reset()
    p = world.presence(user_id=USER, date=day(2), **{"from": "08:00", "to": "16:00"})
    ev, _ = push(world, "create", p)
    assert len(world.attendances(EMP)) == 1
    world.sandbox.call("DELETE", "/requests")
    world.moco("Presence", "create", p, expect=200)  # MOCO retries the same delivery: duplicate
    world.ctl("events", "replay", str(ev))
    world.wait_event(ev)
    world.wait_idle()
    assert personio_writes(world) == []
    assert len(world.attendances(EMP)) == 1 and len(world.findings("attendance_pushed")) == 1


def test_edit_on_a_past_day_patches_the_attendance(world):
    world.timesync_reset()
    p = world.presence(user_id=USER, date=day(20), **{"from": "09:00", "to": "17:00"})
    push(world, "create", p)
    [a] = world.attendances(EMP)
    world.sandbox.call("DELETE", "/requests")
    p = world.presence(id=p["id"], user_id=USER, date=day(20), **{"from": "09:30", "to": "18:00"})
    _, row = push(world, "update", p)
    assert personio_writes(world) == [("PATCH", f"/v1/company/attendances/{a['id']}")]
    [b] = world.attendances(EMP)
    assert (b["id"], b["date"], b["start_time"], b["end_time"]) == (a["id"], day(20), "09:30", "18:00")
    assert "changed" in row["note"] and "was " + day(20) + " 09:00-17:00" in row["note"]


def test_presence_moved_to_another_day_leaves_nothing_on_the_old_day(world):
    world.timesync_reset()
    p = world.presence(user_id=USER, date=day(9), **{"from": "10:00", "to": "14:00"})
    push(world, "create", p)
    [a] = world.attendances(EMP)
    world.sandbox.call("DELETE", "/requests")
    p = world.presence(id=p["id"], user_id=USER, date=day(4), **{"from": "10:00", "to": "14:00"})
    push(world, "update", p)
    [b] = world.attendances(EMP)
    assert b["id"] == a["id"] and b["date"] == day(4)
    assert not [x for x in world.attendances(EMP) if x["date"] == day(9)]
    assert personio_writes(world) == [("PATCH", f"/v1/company/attendances/{a['id']}")]
    assert world.one("SELECT date::text FROM attendance_links WHERE presence_id = %s",
                     (p["id"],)) == day(4)


def test_move_arriving_before_the_old_days_webhook_still_converges(world):
    """MOCO does not order deliveries: a stale update naming the old day changes nothing."""
    world.timesync_reset()
    old = world.presence(user_id=USER, date=day(6), **{"from": "08:00", "to": "12:00"})
    push(world, "create", old)
    new = world.presence(id=old["id"], user_id=USER, date=day(5), **{"from": "08:00", "to": "12:00"})
    push(world, "update", new)
    world.sandbox.call("DELETE", "/requests")
    push(world, "update", dict(old, updated_at="stale"))  # the old delivery, late
    assert personio_writes(world) == []
    assert [x["date"] for x in world.attendances(EMP)] == [day(5)]


def test_open_presence_waits_until_it_is_closed(world):
    world.timesync_reset()
    p = world.presence(user_id=USER, date=day(0), **{"from": "08:15"})
    _, row = push(world, "create", p)
    assert world.writes("personio") == [] and world.attendances(EMP) == []
    assert "still open" in row["note"]
    p = world.presence(id=p["id"], user_id=USER, date=day(0), **{"from": "08:15", "to": "12:45"})
    push(world, "update", p)
    [a] = world.attendances(EMP)
    assert (a["start_time"], a["end_time"]) == ("08:15", "12:45")


def test_deleted_presence_removes_only_rosterds_attendance(world):
    world.timesync_reset()
    d = day(7)
    # Someone entered an attendance in Personio by hand that day: rosterd never touches it.
    manual = world.sandbox.fixtures({"personio_attendances": [{
        "employee": EMP, "date": d, "start_time": "18:00", "end_time": "19:00",
        "comment": "entered in Personio"}]})["created"]["personio_attendances"][0]
    p = world.presence(user_id=USER, date=d, **{"from": "09:00", "to": "12:00"})
    push(world, "create", p)
    ours = next(a for a in world.attendances(EMP) if a["id"] != manual)
    world.sandbox.fixtures({"delete": {"moco_presences": [p["id"]]}})
    world.sandbox.call("DELETE", "/requests")
    _, row = push(world, "delete", {"id": p["id"]})  # MOCO's delete may carry only the id
    deletes = [w for w in world.writes("personio") if w["method"] == "DELETE"]
    assert [w["path"] for w in deletes] == [f"/v1/company/attendances/{ours['id']}"]
    assert deletes[0]["args"].get("skip_approval") == ["true"]
    assert [a["id"] for a in world.attendances(EMP)] == [manual]
    [f] = world.findings("attendance_removed")
    assert f["email"] == EMAIL and str(ours["id"]) in f["detail"] and "deleted in MOCO" in f["detail"]
    assert "attendance_removed" in row["note"]
    assert world.query("SELECT 1 FROM attendance_links WHERE presence_id = %s", (p["id"],)) == []


def test_delete_of_a_presence_rosterd_never_pushed_does_nothing(world):
    world.timesync_reset()
    _, row = push(world, "delete", {"id": 123456789})
    assert world.writes("personio") == []
    assert "never pushed" in row["note"]


def test_overlap_is_a_conflict_and_a_dead_job_not_a_retry(world):
    world.timesync_reset()
    d = day(5)
    other = world.sandbox.fixtures({"personio_attendances": [{
        "employee": EMP, "date": d, "start_time": "08:00", "end_time": "10:00",
        "comment": "typed in Personio"}]})["created"]["personio_attendances"][0]
    p = world.presence(user_id=USER, date=d, **{"from": "09:00", "to": "12:00"})
    ev, row = push(world, "create", p, status="dead")
    assert row["attempts"] == 1, row  # permanent at once: no retries
    for part in (f"MOCO presence {p['id']}", f"Personio attendance {other}", "not made by rosterd",
                 "08:00-10:00", "09:00-12:00"):
        assert part in row["last_error"], row
    [c] = world.findings("conflict")
    assert c["email"] == EMAIL and c["result"] == "none"
    assert f"MOCO presence {p['id']}" in c["detail"] and f"Personio attendance {other}" in c["detail"]
    posts = [w for w in world.writes("personio") if w["method"] == "POST"]
    assert len(posts) == 1
    shown = world.ctl("events", "show", str(ev)).stdout
    assert f"Personio attendance {other}" in shown

    # A replay while nothing changed: the same answer, no second POST, no second finding.
    world.sandbox.call("DELETE", "/requests")
    world.ctl("events", "replay", str(ev))
    row = world.wait_event(ev, until=("dead",), timeout=30)
    time.sleep(0.5)
    assert world.writes("personio") == [] and len(world.findings("conflict")) == 1

    # Someone removes the other attendance in Personio; the replay pushes the presence.
    world.sandbox.fixtures({"delete": {"personio_attendances": [other]}})
    world.ctl("events", "replay", str(ev))
    assert world.wait_event(ev)["status"] == "done"
    [a] = world.attendances(EMP)
    assert (a["start_time"], a["end_time"], a["comment"]) == ("09:00", "12:00", comment(p["id"]))
    assert world.query("SELECT 1 FROM attendance_conflicts WHERE presence_id = %s",
                       (p["id"],)) == []


def test_days_before_start_date_are_never_pushed(world):
    world.timesync_reset()
    p = world.presence(user_id=USER, date="2025-12-30", **{"from": "09:00", "to": "17:00"})
    _, row = push(world, "create", p)
    assert world.writes("personio") == [] and world.attendances(EMP) == []
    assert "start_date 2026-01-01" in row["note"]


def test_attendance_deleted_in_personio_is_pushed_again(world):
    world.timesync_reset()
    p = world.presence(user_id=USER, date=day(8), **{"from": "07:00", "to": "11:00"})
    push(world, "create", p)
    [a] = world.attendances(EMP)
    world.sandbox.fixtures({"delete": {"personio_attendances": [a["id"]]}})
    push(world, "update", p)
    [b] = world.attendances(EMP)
    assert b["id"] != a["id"] and b["comment"] == comment(p["id"])


def test_policy_off_pushes_nothing(world):
    world.timesync_reset(policy={"attendance_push": False})
    p = world.presence(user_id=USER, date=day(1), **{"from": "09:00", "to": "10:00"})
    _, row = push(world, "create", p)
    assert world.writes("personio") == [] and "attendance push is off" in row["note"]


def test_hourly_sweep_pushes_what_changed_past_days_included(world):
    world.timesync_reset()
    # The seeded presences changed days ago: the first sweep looks back one hour only.
    a = world.presence(user_id=USER, date=day(25), **{"from": "09:00", "to": "13:00"})
    b = world.presence(user_id=USER2, date=day(1), **{"from": "10:00", "to": "15:00"})
    state, note, err = world.run_job("sweep.attendance")
    assert state == "done", (state, note, err)
    assert "2 presences changed" in note and "2 pushed" in note, note
    assert [x["date"] for x in world.attendances(EMP)] == [day(25)]
    assert [x["date"] for x in world.attendances(EMP2)] == [day(1)]
    assert len(world.attendances()) == 2  # nothing of the seeded 14 days
    mark = world.one("SELECT presences_after FROM timesync_sweeps WHERE connection_id = %s",
                     (world.connection_id,))
    assert mark is not None

    # The next sweep re-reads the overlap of the last minutes and changes nothing.
    world.sandbox.call("DELETE", "/requests")
    state, note, _ = world.run_job("sweep.attendance")
    assert state == "done" and world.writes("personio") == [], note

    # A presence moved to another day, found by the sweep alone (no webhook).
    world.presence(id=a["id"], user_id=USER, date=day(24), **{"from": "09:00", "to": "13:00"})
    state, note, _ = world.run_job("sweep.attendance")
    assert state == "done", note
    assert [x["date"] for x in world.attendances(EMP)] == [day(24)]
    assert [w["method"] for w in world.writes("personio")] == ["PATCH"]


def test_sweep_carries_on_past_one_persons_conflict(world):
    world.timesync_reset()
    d = day(3)
    world.sandbox.fixtures({"personio_attendances": [{
        "employee": EMP, "date": d, "start_time": "08:00", "end_time": "18:00"}]})
    world.presence(user_id=USER, date=d, **{"from": "09:00", "to": "12:00"})
    world.presence(user_id=USER2, date=d, **{"from": "09:00", "to": "12:00"})
    state, note, err = world.run_job("sweep.attendance")
    assert state == "done", (state, note, err)
    assert "1 pushed" in note and "1 conflict" in note and "1 failed" in note, note
    assert len(world.attendances(EMP2)) == 1
    # The known conflict is not tried again by the next sweep.
    world.sandbox.call("DELETE", "/requests")
    world.run_job("sweep.attendance")
    assert world.writes("personio") == [] and len(world.findings("conflict")) == 1


def test_run_dry_run_writes_nothing_and_plans(world):
    world.timesync_reset()
    p = world.presence(user_id=USER, date=day(4), **{"from": "09:00", "to": "11:00"})
    out = world.timesync_run("--dry-run", "attendance", EMP, USER, day(10), day(0))
    assert out["calls"] == [{"rc": 0}], out
    [f] = out["findings"]
    assert f["kind"] == "attendance_pushed" and f["result"] == "planned"
    assert str(p["id"]) in f["detail"]
    assert world.writes("personio") == [] and world.attendances(EMP) == []


def test_run_after_preload_makes_no_per_person_reads(world):
    world.timesync_reset()
    for uid in (USER, USER2):
        world.presence(user_id=uid, date=day(2), **{"from": "09:00", "to": "11:00"})
    world.sandbox.call("DELETE", "/requests")
    out = world.timesync_run("--preload", day(30), day(-90),
                             "attendance", EMP, USER, day(30), day(0),
                             "attendance", EMP2, USER2, day(30), day(0),
                             "attendance", 1007, 9007, day(30), day(0))
    assert [c["rc"] for c in out["calls"]] == [0, 0, 0], out
    gets = [r for r in world.sandbox.requests() if r["method"] == "GET"
            and not r["path"].startswith("/v1/auth")]
    per_person = [r for r in gets if "user_id" in r["args"] or "employees[]" in r["args"]
                  or r["path"].startswith("/v1/company/employees/")
                  or r["path"].startswith("/users/presences/")]
    assert per_person == [], per_person
    # 1007 has the seeded presences of the last 14 days: all pushed from the preload.
    assert len(world.attendances(1007)) == len([p for p in world.sandbox.state()["presences"]
                                                if p["user_id"] == 9007 and p["date"] >= day(30)])
    assert len(world.attendances(EMP)) == 1 and len(world.attendances(EMP2)) == 1


def test_webhook_and_sweep_at_once_push_one_attendance(world):
    """Two jobs of different keys (the webhook's and the sweep's) converge the same person
    at the same time: one POST, no conflict (the person's lock, not luck)."""
    world.timesync_reset()
    p = world.presence(user_id=USER, date=day(2), **{"from": "09:00", "to": "11:30"})
    # a slow Personio POST: the other job starts its convergence while the first writes
    world.sandbox.fault(system="personio", method="POST", path_prefix="/v1/company/attendances",
                        status=None, delay_ms=1500, times=2)
    ev = world.moco("Presence", "create", p)
    state, note, err = world.run_job("sweep.attendance")
    assert state == "done", (state, note, err)
    assert world.wait_event(ev)["status"] == "done"
    world.wait_idle()
    posts = [w for w in world.writes("personio") if w["method"] == "POST"]
    assert len(posts) == 1 and len(world.attendances(EMP)) == 1, posts
    assert world.findings("conflict") == []


def test_a_deeply_nested_delivery_the_intake_accepts_is_worked_too(world):
    """The intake accepts bodies nested up to 64 levels; the handler parses the stored
    body with the same limit (json-c's default of 32 read a deeper one as not JSON, and
    the presence was never pushed). This one is 64 deep: the presence, its
    custom_properties, and 62 objects in those."""
    world.timesync_reset()
    p = world.presence(user_id=USER, date=day(2), **{"from": "08:00", "to": "09:15"})
    deep = "x"
    for _ in range(62):
        deep = {"n": deep}
    over = {"n": deep}
    world.moco("Presence", "create", dict(p, custom_properties={"deep": over}), expect=400)
    ev, row = push(world, "create", dict(p, custom_properties={"deep": deep}))
    [a] = world.attendances(EMP)
    assert (a["date"], a["start_time"], a["end_time"]) == (day(2), "08:00", "09:15")
    assert a["comment"] == comment(p["id"])
