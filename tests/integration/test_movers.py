"""
Movers (handlers/movers.c, DESIGN.md §1): a change of HR team, department or
supervisor moves the platform account to the mapped team's group (out of the old
one), and sets the enterprise department and manager. Driven by signed Personio
webhooks through the real rosterd; asserted on the sandbox's platform state, its
request log and the audit trail.
"""
import pytest

pytestmark = pytest.mark.usefixtures("world")

ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LUKAS = "lukas.meyer@acme.example"  # demo 1007: Backend, reports to Jonas Becker


def groups_of(world, email):
    return sorted(g["display"] for g in world.scim_user(email)["groups"])


def group_id(world, name):
    return next(g["id"] for g in world.sandbox.state()["scim_groups"] if g["displayName"] == name)


def test_team_department_and_supervisor_change_move_the_account(world):
    world.reset()
    assert world.wait_event(world.personio("employment.updated", 1007))["status"] == "done"
    assert world.writes("scim") == []  # Lukas is where HR says he is
    assert groups_of(world, LUKAS) == ["Engineering"]

    world.update("personio_employees", {"id": 1007, "team": "Support",
                                        "department": "Customer Success",
                                        "supervisor_email": "mia.schulz@acme.example"})
    world.sandbox.call("DELETE", "/requests")
    ev = world.personio("employment.updated", 1007)
    row = world.wait_event(ev)
    assert row["status"] == "done", row

    user = world.scim_user(LUKAS)
    mia = world.scim_user("mia.schulz@acme.example")
    assert groups_of(world, LUKAS) == ["Customer Care"]
    assert user[ENT]["department"] == "Customer Success"
    assert user[ENT]["manager"]["value"] == mia["id"]
    writes = [(w["method"], w["path"]) for w in world.writes("scim")]
    assert sorted(writes) == sorted([
        ("PATCH", f"/Groups/{group_id(world, 'Customer Care')}"),
        ("PATCH", f"/Groups/{group_id(world, 'Engineering')}"),
        ("PATCH", f"/Users/{user['id']}"), ("PATCH", f"/Users/{user['id']}")])
    kinds = sorted(f["kind"] for f in world.findings() if f["email"] == LUKAS and f["kind"] != "linked")
    assert kinds == ["manager_changed", "team_changed", "team_changed"]
    [mgr] = world.findings("manager_changed")
    assert mgr["detail"] == "manager jonas.becker@acme.example -> Mia.Schulz@acme.example (the HR supervisor)"
    assert 'platform group "Customer Care" (was in "Engineering")' in row["note"]
    # Every write audited with the event as reason and what was there before.
    audit = world.query("SELECT path, before, reason FROM upstream_audit WHERE connection_id = %s"
                        " AND system = 'scim' ORDER BY id", (world.connection_id,))
    assert {r[2] for r in audit} == {f"event:{ev}"}
    befores = [r[1] for r in audit]
    assert {"department": "Engineering"} in befores
    assert {"manager": world.sandbox.lookup("jonas.becker@acme.example")["scim_user_id"]} in befores
    assert {"group": "Engineering", "member": True} in befores
    assert {"group": "Customer Care", "member": False} in befores

    # A replay of the same event finds nothing left to do.
    world.sandbox.call("DELETE", "/requests")
    world.ctl("events", "replay", str(ev))
    assert world.wait_event(ev)["status"] == "done"
    world.wait_idle()
    assert world.writes("scim") == []


def test_stale_group_and_manager_on_the_platform_are_put_right(world):
    world.reset()
    # The demo platform has Ben Braun (Frontend) in "Customer Care" and Marie Wolf's
    # manager as the CEO although she reports to Jonas Becker.
    for pid in (1017, 1012):
        assert world.wait_event(world.personio("person.updated", pid))["status"] == "done"
    assert groups_of(world, "ben.braun@acme.example") == ["Engineering"]
    jonas = world.sandbox.lookup("jonas.becker@acme.example")["scim_user_id"]
    assert world.scim_user("marie.wolf@acme.example")[ENT]["manager"]["value"] == jonas
    [moved] = world.findings("team_changed")
    assert moved["email"] == "ben.braun@acme.example" and moved["result"] == "done"


def test_unmapped_team_leaves_memberships_alone_and_asks_a_person(world):
    world.reset()
    world.update("personio_employees", {"id": 1007, "team": "Marketing"})
    ev = world.personio("employment.updated", 1007)
    assert world.wait_event(ev)["status"] == "done"
    assert [w for w in world.writes("scim") if w["path"].startswith("/Groups")] == []
    assert groups_of(world, LUKAS) == ["Engineering"]
    [f] = world.findings("unmapped_team")
    assert f["email"] == LUKAS and '"Marketing" is not in team_map' in f["detail"]
    assert 'still in "Engineering"' in f["detail"]


def test_groups_no_team_maps_to_are_never_touched(world):
    world.reset()
    world.sandbox.fixtures({"scim_groups": [{"displayName": "Card holders", "members": [LUKAS]}]})
    world.update("personio_employees", {"id": 1007, "team": "Sales"})
    assert world.wait_event(world.personio("employment.updated", 1007))["status"] == "done"
    assert groups_of(world, LUKAS) == ["Card holders", "Sales"]
    assert not any(w["path"] == f"/Groups/{group_id(world, 'Card holders')}"
                   for w in world.writes("scim"))


def test_supervisor_change_alone_sets_only_the_manager(world):
    world.reset()
    world.update("personio_employees", {"id": 1007, "supervisor_email": "lena.hoffmann@acme.example"})
    assert world.wait_event(world.personio("employment.updated", 1007))["status"] == "done"
    lena = world.sandbox.lookup("lena.hoffmann@acme.example")["scim_user_id"]
    user = world.scim_user(LUKAS)
    assert user[ENT]["manager"]["value"] == lena
    assert [(w["method"], w["path"]) for w in world.writes("scim")] == [("PATCH", f"/Users/{user['id']}")]
    assert [f["kind"] for f in world.findings() if f["kind"] != "linked"] == ["manager_changed"]
