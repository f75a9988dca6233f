"""
The rate limits (issue 10, item 3): a sweep over 200 people is paced, never failed. 200
employees in Personio and MOCO, each with one presence changed now and one approved
absence; the hourly and the daily sweep each converge all of them. The sandbox enforces
Personio's real limits (300 employee reads a minute with bursts of 15 a second, 2000 v1
requests a minute) and MOCO's 120 requests per window; MOCO's window is cut from 120 s to
12 s, in the sandbox and in the connection's moco.rate_limit alike, so the 200 MOCO writes
take about 15 s instead of 3.5 minutes. Not a single 429 may reach the sandbox, let alone
a job. The figures are printed (pytest -s) and written to $ROSTERD_BUILD_DIR.
"""
import collections
import datetime as dt
import json
import os
import time
from zoneinfo import ZoneInfo

import pytest

import helpers as H

pytestmark = [pytest.mark.usefixtures("world"), pytest.mark.slow]

N = 200


def today():
    return dt.datetime.now(ZoneInfo("Europe/Berlin")).date()


def figures(world, since_id, elapsed):
    reqs = world.sandbox.requests(since_id=since_id)
    by = collections.Counter((r["system"], r["method"]) for r in reqs)
    return {"seconds": round(elapsed, 1), "requests": len(reqs),
            "by_system_method": {f"{s} {m}": n for (s, m), n in sorted(by.items())},
            "http_429": sum(1 for r in reqs if r["status"] == 429)}


def last_request_id(world):
    reqs = world.sandbox.requests()
    return reqs[-1]["id"] if reqs else 0


def test_sweeps_over_200_people_are_paced_without_a_429(world):
    world.timesync_reset(moco_rate=(120, 12))
    yesterday = (today() - dt.timedelta(days=1)).isoformat()
    absent = today() + dt.timedelta(days=7)
    absent -= dt.timedelta(days=absent.weekday() - 2)  # a Wednesday
    world.sandbox.fixtures({"generate": {"personio_employees": N, "moco_users": N}})
    emails = [f"gen{i:04d}@gen.example" for i in range(1, N + 1)]
    world.sandbox.fixtures({
        "moco_presences": [{"user_email": e, "date": yesterday, "from": "09:00", "to": "17:00"}
                           for e in emails],
        "personio_time_offs": [{"employee_email": e, "type": "Vacation",
                                "start_date": absent.isoformat(), "end_date": absent.isoformat()}
                               for e in emails]})
    st = world.sandbox.state()
    gen_emps = {e["id"] for e in st["employees"] if e["email"].endswith("@gen.example")}
    gen_users = {u["id"] for u in st["moco_users"] if (u["email"] or "").endswith("@gen.example")}
    assert len(gen_emps) == len(gen_users) == N
    out = {}

    mark = last_request_id(world)
    t0 = time.monotonic()
    state, note, err = world.run_job("sweep.attendance", timeout=600)
    out["sweep.attendance"] = dict(figures(world, mark, time.monotonic() - t0), note=note)
    assert state == "done", (state, note, err)
    assert f"{N} pushed" in note and "0 failed" in note, note
    pushed = [a for a in world.attendances() if a["employee"] in gen_emps]
    assert len(pushed) == N and {a["date"] for a in pushed} == {yesterday}

    mark = last_request_id(world)
    t0 = time.monotonic()
    state, note, err = world.run_job("sweep.absence", timeout=600)
    elapsed = time.monotonic() - t0
    out["sweep.absence"] = dict(figures(world, mark, elapsed), note=note)
    assert state == "done", (state, note, err)
    assert f"{N} created" in note and "0 failed" in note, note
    mirrored = [s for s in world.schedules() if s["user_id"] in gen_users]
    assert len(mirrored) == N and {s["date"] for s in mirrored} == {absent.isoformat()}

    text = json.dumps(out, indent=2)
    print("\n200-person sweeps:\n" + text)
    (H.build_dir() / "timesync_scale.json").write_text(text + "\n")
    for part in out.values():
        assert part["http_429"] == 0, text
    # The writes outran MOCO's window: they were paced, not refused (120 per 12 s).
    assert out["sweep.absence"]["by_system_method"]["moco POST"] == N
    # The shared window keeps 108 of each 12 s (90 %): the 109th MOCO request cannot start
    # before 12 s after the first one finished.
    moco = sum(v for k, v in out["sweep.absence"]["by_system_method"].items()
               if k.startswith("moco "))
    assert moco > 108 and elapsed >= 12.0, text
    # Nothing reached a job's error: both finished at their first attempt.
    attempts = world.query("SELECT kind, attempts, last_error FROM jobs_history"
                           " WHERE kind LIKE 'sweep.%%' AND connection_id = %s",
                           (world.connection_id,))
    assert sorted((k, a, e) for k, a, e in attempts) == [
        ("sweep.absence", 1, None), ("sweep.attendance", 1, None)], attempts
    if os.environ.get("TIMESYNC_SCALE_VERBOSE"):
        print(world.daemon.log_tail(5))
