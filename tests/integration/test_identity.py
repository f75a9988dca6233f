"""
Identity links (handlers/identity.c, DESIGN.md §1): an HR employee is linked to
their platform account and MOCO user once by e-mail (case-insensitive) and then
by id, so an e-mail change in Personio updates the platform account instead of
making a stranger; two candidate accounts are a conflict that changes nothing.
Driven by signed webhooks through the real rosterd against the sandbox.
"""
import pytest

pytestmark = pytest.mark.usefixtures("world")


def scim_users(world):
    return {u["id"]: u for u in world.sandbox.state()["scim_users"]}


def employee_fixture(world, emp_id, **changes):
    rec = dict(next(e for e in world.sandbox.state()["employees"] if e["id"] == emp_id))
    rec.update(changes)
    world.sandbox.fixtures({"personio_employees": [rec]})
    return rec


def test_existing_account_is_linked_by_email_and_pinned(world):
    world.reset()
    ids = world.sandbox.lookup("jonas.becker@acme.example")
    ev = world.personio("employment.updated", 1003)
    row = world.wait_event(ev)
    assert row["status"] == "done", row
    p = world.person(1003)
    assert p["scim_id"] == ids["scim_user_id"]
    assert p["moco_user_id"] == ids["moco_user_id"] == 9003
    linked = world.findings("linked")
    assert [f["email"] for f in linked if f["email"] == "jonas.becker@acme.example"] == [
        "jonas.becker@acme.example"] * 2
    # and the supervisor, whose account the movers step needs as Jonas's manager
    assert {f["email"] for f in linked} == {"jonas.becker@acme.example", "ceo@acme.example"}
    assert "linked jonas.becker@acme.example (platform, MOCO)" in row["note"]
    # Linking reads; it writes nothing upstream.
    assert world.writes("scim") == [] and world.writes("moco") == []


def test_link_is_case_insensitive(world):
    world.reset()
    # The demo platform has Mia as "Mia.Schulz@acme.example"; Personio has lower case.
    ev = world.personio("person.updated", 1005)
    assert world.wait_event(ev)["status"] == "done"
    ids = world.sandbox.lookup("mia.schulz@acme.example")
    assert ids["scim_user_id"] and world.person(1005)["scim_id"] == ids["scim_user_id"]
    assert world.writes("scim") == []  # same address, other case: not an e-mail change


def test_email_change_updates_the_linked_account_instead_of_making_a_stranger(world):
    world.reset()
    old = "lukas.meyer@acme.example"
    scim_id = world.sandbox.lookup(old)["scim_user_id"]
    assert world.wait_event(world.personio("employment.updated", 1007))["status"] == "done"
    assert world.person(1007)["scim_id"] == scim_id

    employee_fixture(world, 1007, email="lukas.meyer-neu@acme.example")
    ev = world.personio("person.updated", 1007)
    row = world.wait_event(ev)
    assert row["status"] == "done", row

    writes = world.writes("scim")
    assert [(w["method"], w["path"]) for w in writes] == [("PATCH", f"/Users/{scim_id}")]
    user = scim_users(world)[scim_id]
    assert user["userName"] == "lukas.meyer-neu@acme.example"
    assert [e["value"] for e in user["emails"]] == ["lukas.meyer-neu@acme.example"]
    # No second account was made and the link still points at the same one.
    assert not any(w["method"] == "POST" for w in writes)
    assert world.person(1007)["scim_id"] == scim_id
    assert world.person(1007)["email"] == "lukas.meyer-neu@acme.example"
    f = [f for f in world.findings("linked") if "e-mail changed" in f["detail"]]
    assert len(f) == 1 and old in f[0]["detail"] and f[0]["result"] == "done"
    # Audited with the event as the reason.
    audit = [a for a in world.audit("scim") if a["method"] == "PATCH"]
    assert [a["reason"] for a in audit] == [f"event:{ev}"]
    assert world.query("SELECT before FROM upstream_audit WHERE connection_id = %s"
                       " AND method = 'PATCH'", (world.connection_id,)) == [({"userName": old},)]

    # A replay of the same event converges to the same truth: no second write.
    world.sandbox.call("DELETE", "/requests")
    out = world.ctl("events", "replay", str(ev))
    assert "1" in out.stdout
    world.wait_event(ev)
    world.wait_idle()
    assert world.writes("scim") == []


def test_two_candidate_accounts_are_a_conflict_and_change_nothing(world):
    world.reset()
    email = "anna.weber@acme.example"
    # A second platform account that also carries Anna's address (not as its userName).
    world.sandbox.fixtures({"scim_users": [{
        "userName": "a.weber.old@acme.example", "active": True,
        "emails": [{"value": email, "type": "work", "primary": True}],
        "name": {"givenName": "Anna", "familyName": "Weber"}}]})
    ev = world.personio("employment.updated", 1008)
    row = world.wait_event(ev)
    assert row["status"] == "done", row
    conflicts = world.findings("conflict")
    assert len(conflicts) == 1, conflicts
    c = conflicts[0]
    assert c["email"] == email
    assert "anna.weber@acme.example" in c["detail"] and "a.weber.old@acme.example" in c["detail"]
    assert "nothing was changed" in c["detail"]
    assert "conflict" in row["note"]
    assert world.person(1008)["scim_id"] is None
    assert world.writes("scim") == []


def test_moco_user_webhook_links_the_moco_user(world):
    world.reset()
    ev = world.moco("User", "update", {"id": 9010, "firstname": "Sophie", "lastname": "Richter",
                                       "email": "sophie.richter@acme.example"})
    row = world.wait_event(ev)
    assert row["status"] == "done", row
    assert world.person(1010)["moco_user_id"] == 9010
    assert world.writes("moco") == []


def test_moco_user_unknown_to_personio_links_nobody(world):
    world.reset()
    # The demo freelancer 9100 has no Personio employee.
    ev = world.moco("User", "update", {"id": 9100, "firstname": "Frida", "lastname": "Frei"})
    row = world.wait_event(ev)
    assert row["status"] == "done", row
    assert "matches no Personio employee" in row["note"]
    assert world.query("SELECT count(*) FROM people WHERE moco_user_id = 9100")[0][0] == 0
