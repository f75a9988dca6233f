"""
Approver delegation driven by Personio's absence-period webhooks (the real path
once the personio.absence handler of handlers/absence.c calls rd_approver_converge):
approving, moving and rejecting an approver's absence in Personio creates, replaces
and removes the approval delegation. Not collected until the merge: see conftest.py.

The payload carries the absence's v2 id and the person (Personio's dataless
notification); adapt `absence_event` if the absence handler reads another field.
"""
import datetime as dt
import uuid

import pytest

pytestmark = pytest.mark.usefixtures("world")

JONAS = "jonas.becker@acme.example"
NS = uuid.UUID("6f1c2d1e-7a53-4c55-9b0e-3d1f4b2a9c10")  # deploy/sandbox/personio.py id_v2


def absence_event(world, event_name, time_off_id, person_id):
    v2 = str(uuid.uuid5(NS, "time-off:%s" % time_off_id))
    return world.personio(event_name, payload={"id": v2, "person": {"id": str(person_id)}})


def delegations(world):
    return [d for d in world.sandbox.state()["delegations"] if d["approver"] == JONAS]


def test_absence_period_webhooks_create_move_and_remove_the_delegation(world):
    world.reset()
    # approved: a delegation to Jonas's supervisor
    ev = absence_event(world, "absence-period.updated.status", 30001, 1003)
    assert world.wait_event(ev)["status"] == "done"
    [d] = delegations(world)
    assert d["delegate"] == "ceo@acme.example"
    t = next(t for t in world.sandbox.state()["time_offs"] if t["id"] == 30001)
    start = dt.date.fromisoformat(t["start_date"]) + dt.timedelta(days=7)
    end = dt.date.fromisoformat(t["end_date"]) + dt.timedelta(days=7)
    # moved: replaced
    world.update("personio_time_offs", {"id": 30001, "start_date": str(start), "end_date": str(end)})
    ev = absence_event(world, "absence-period.updated.timerange", 30001, 1003)
    assert world.wait_event(ev)["status"] == "done"
    [d] = delegations(world)
    assert d["external_id"] == f"rosterd:acme:time-off:30001:{start}:{end}"
    # rejected: removed
    world.update("personio_time_offs", {"id": 30001, "status": "rejected"})
    ev = absence_event(world, "absence-period.updated.status", 30001, 1003)
    assert world.wait_event(ev)["status"] == "done"
    assert delegations(world) == []
    said = [m.split(":")[0] for m in world.slack_texts() if "Jonas Becker" in m]
    assert said == ["Approvals delegated", "Approval delegation updated",
                    "Approval delegation removed"], said
