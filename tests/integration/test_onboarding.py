"""
Onboarding (handlers/onboarding.c, DESIGN.md §1 row 2, §7 hires): a new employee
without a platform account is announced to the admins once (Slack, e-mail when
configured) with name, e-mail, start date, HR team and department and the platform
team or a warning; nobody is invited until an operator runs `rosterctl hires invite`.
Driven by signed Personio webhooks through the real rosterd against the sandbox.
"""
import json
import socketserver
import threading

import pytest

import helpers as H

pytestmark = pytest.mark.usefixtures("world")

TOM = "tom.maier@acme.example"      # demo 1029: onboarding, starts on the 1st of next month
NINA = "nina.schulze@acme.example"  # demo 1028: started 5 days ago, no platform account


def hire_alerts(world, email):
    return [t for t in world.slack_texts() if t.startswith("New hire:") and f"({email})" in t]


def test_new_hire_alert_tells_the_admins_everything_and_invites_nobody(world):
    world.reset()
    tom = world.employee(1029)
    ev = world.personio("person.created", 1029)
    row = world.wait_event(ev)
    assert row["status"] == "done", row

    [text] = hire_alerts(world, TOM)
    assert text.startswith(f"New hire: Tom Maier ({TOM}) starts on {tom['hire_date']} (in ")
    assert "HR team: Backend, department: Engineering. Platform team: Engineering (team_map)." in text
    assert "Nobody was invited automatically." in text
    assert f"`rosterctl hires invite {TOM} --connection acme`" in text
    assert "Warning" not in text
    # Nobody is invited automatically: not a single write to the platform's users.
    assert [w for w in world.writes("scim") if w["path"].startswith("/Users")] == []
    assert "new_hire tom.maier@acme.example" in row["note"]

    hires = world.ctl_json("hires", "list", "--connection", "acme")
    assert [{k: h[k] for k in ("email", "name", "hr_team", "platform_team", "start_date", "status")}
            for h in hires] == [{"email": TOM, "name": "Tom Maier", "hr_team": "Backend",
                                 "platform_team": "Engineering", "start_date": tom["hire_date"],
                                 "status": "alerted"}]
    table = world.ctl("hires", "list").stdout.splitlines()
    assert table[0].split() == ["CONNECTION", "EMAIL", "NAME", "HR_TEAM", "PLATFORM_TEAM",
                                "START_DATE", "STATUS"]
    assert table[1].split() == ["acme", TOM, "Tom", "Maier", "Backend", "Engineering",
                                tom["hire_date"], "alerted"]
    [f] = world.findings("new_hire")
    assert (f["email"], f["result"]) == (TOM, "done")
    assert f["detail"] == (f"Tom Maier starts {tom['hire_date']}, HR team Backend -> platform team"
                           " Engineering")


def personio_body(event_name, person_id, nonce):
    return json.dumps({"company_id": "123", "event_name": event_name,
                       "occurred_at": "2026-12-01T09:00:00Z",
                       "payload": {"person": {"id": str(person_id)}},
                       "meta": {"nonce": nonce}}).encode()


def test_one_alert_per_hire_whatever_replays_duplicates_and_later_events_arrive(world, uniq):
    world.reset()
    body = personio_body("person.created", 1029, uniq)
    first = H.post_personio(world.daemon, "acme", body, world.creds["webhook_token"])
    assert first.status == 202, first
    ev = first.json()["event_id"]
    assert world.wait_event(ev)["status"] == "done"
    # Personio delivers the same notification again: recognised, not worked twice.
    again = H.post_personio(world.daemon, "acme", body, world.creds["webhook_token"])
    assert again.status == 200 and again.json() == {"event_id": ev, "status": "duplicate"}
    # An operator replays it, HR edits the person, and a notification naming nobody
    # makes rosterd converge everyone (as the nightly run does).
    world.ctl("events", "replay", str(ev))
    world.wait_event(ev)
    for e in (world.personio("employment.updated", 1029), world.personio("person.updated", 1029),
              world.personio("employment.updated", payload={})):
        assert world.wait_event(e, timeout=60)["status"] == "done"
    world.wait_idle()
    assert len(hire_alerts(world, TOM)) == 1
    # The converge-everyone pass found the other hire of the demo company too, once.
    assert len(hire_alerts(world, NINA)) == 1
    assert len([t for t in world.slack_texts() if t.startswith("New hire:")]) == 2
    assert {h["email"]: h["status"] for h in world.ctl_json("hires", "list")} == {
        TOM: "alerted", NINA: "alerted"}


def test_unmapped_hr_team_is_a_clear_warning_naming_the_team(world):
    world.reset()
    world.sandbox.fixtures({"personio_employees": [{
        "id": 1040, "first_name": "Max", "last_name": "Muster", "email": "max.muster@acme.example",
        "status": "onboarding", "hire_date": "2027-02-01", "team": "Marketing",
        "department": "Sales", "supervisor_email": "cfo@acme.example"}]})
    ev = world.personio("employment.created", 1040)
    assert world.wait_event(ev)["status"] == "done"
    [text] = hire_alerts(world, "max.muster@acme.example")
    assert "HR team: Marketing, department: Sales." in text
    assert ('Warning: the HR team "Marketing" is not mapped to a platform team (team_map of'
            ' connection acme), so an invite joins no team.') in text
    assert "`rosterctl hires invite max.muster@acme.example --connection acme`" in text
    [h] = world.ctl_json("hires", "list", "--connection", "acme")
    assert h["hr_team"] == "Marketing" and h["platform_team"] is None and h["status"] == "alerted"
    line = world.ctl("hires", "list").stdout.splitlines()[1]
    assert "Marketing" in line and "(not mapped)" in line
    [f] = world.findings("unmapped_team")
    assert f["email"] == "max.muster@acme.example" and "Marketing" in f["detail"]


def test_slack_refusing_the_alert_kills_the_event_and_a_replay_after_the_fix_sends_it_once(world):
    good = world.base_doc["alerts"]
    world.reset(alerts={"slack_webhook_url": world.sandbox.base + "/slack/services/T9/B9/removed"})
    ev = world.personio("person.created", 1029)
    row = world.wait_event(ev)
    assert row["status"] == "dead", row
    assert "HTTP 404" in row["last_error"] and "no_service" in row["last_error"]
    assert row["attempts"] == 1  # permanent: no retries that cannot help
    shown = world.ctl_json("events", "show", str(ev))
    assert "no_service" in shown["last_error"]
    assert world.slack_texts() == [] and world.ctl_json("hires", "list") == []

    # The operator fixes the hook (connection apply) and replays the dead event.
    doc = json.loads(json.dumps(world.doc))
    doc["alerts"] = good
    world.apply(doc)
    world.ctl("events", "replay", "--status", "dead", "--connection", "acme")
    assert world.wait_event(ev)["status"] == "done"
    assert len(hire_alerts(world, TOM)) == 1
    world.ctl("events", "replay", str(ev))
    world.wait_event(ev)
    world.wait_idle()
    assert len(hire_alerts(world, TOM)) == 1
    assert [h["status"] for h in world.ctl_json("hires", "list")] == ["alerted"]


def test_alert_also_goes_by_email_when_email_to_and_smtp_url_are_set(world):
    from test_clients import _Smtp  # the tiny SMTP server of the client tests

    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    srv.daemon_threads = True
    srv.inbox = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        alerts = dict(world.base_doc["alerts"], email_to=["it@acme.example"])
        world.reset(alerts=alerts)
        with world.daemon_with(smtp_url=f"smtp://127.0.0.1:{srv.server_address[1]}",
                               smtp_from="rosterd@acme.example"):
            ev = world.personio("person.created", 1029)
            assert world.wait_event(ev)["status"] == "done"
    finally:
        srv.shutdown()
        srv.server_close()
    [mail] = srv.inbox
    assert mail["rcpt"] == ["<it@acme.example>"]
    assert "Subject: New hire: Tom Maier starts " in mail["data"]
    assert f"rosterctl hires invite {TOM} --connection acme" in mail["data"]
    assert "HR team: Backend, department: Engineering." in mail["data"]
    assert len(hire_alerts(world, TOM)) == 1


def test_invite_creates_the_account_with_name_department_manager_and_team(world):
    world.reset()
    assert world.wait_event(world.personio("person.created", 1029))["status"] == "done"
    world.sandbox.call("DELETE", "/requests")
    jonas = world.sandbox.lookup("jonas.becker@acme.example")["scim_user_id"]
    eng = next(g for g in world.sandbox.state()["scim_groups"] if g["displayName"] == "Engineering")

    out = world.ctl("hires", "invite", TOM, "--connection", "acme")
    user = world.scim_user(TOM)
    assert user is not None and user["active"] is True
    assert out.stdout.splitlines() == [
        f"invited {TOM} (Tom Maier): platform account {user['id']}",
        "  department: Engineering",
        "  manager:    jonas.becker@acme.example",
        "  team:       Engineering"]
    ent = user["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]
    assert user["name"] == {"givenName": "Tom", "familyName": "Maier"}
    assert user["externalId"] == "1029"
    assert ent["department"] == "Engineering" and ent["manager"]["value"] == jonas
    assert [g["display"] for g in user["groups"]] == ["Engineering"]
    writes = [(w["method"], w["path"]) for w in world.writes("scim")]
    assert writes == [("POST", "/Users"), ("PATCH", f"/Groups/{eng['id']}")]
    assert {a["reason"] for a in world.audit("scim")} == {"operator:hires invite"}
    [h] = world.ctl_json("hires", "list")
    assert h["status"] == "invited" and h["scim_id"] == user["id"]
    assert [r[0] for r in world.query("SELECT before FROM upstream_audit WHERE connection_id = %s"
                                      " AND system = 'scim' ORDER BY id", (world.connection_id,))
            ] == [None, {"group": "Engineering", "member": False}]
    assert world.person(1029)["scim_id"] == user["id"]

    # The next event for Tom finds everything as it should be: no write, no new alert.
    world.sandbox.call("DELETE", "/requests")
    assert world.wait_event(world.personio("employment.updated", 1029))["status"] == "done"
    assert world.writes("scim") == [] and len(hire_alerts(world, TOM)) == 1
    assert [h["status"] for h in world.ctl_json("hires", "list")] == ["invited"]


def test_invite_refuses_unknown_inactive_and_existing_people_clearly(world):
    world.reset()
    cases = [("nobody@acme.example", "no employee with the e-mail nobody@acme.example in"
                                     " Personio (connection acme)"),
             ("jonas.becker@acme.example", "jonas.becker@acme.example is already on the platform"
                                           " as jonas.becker@acme.example"),
             ("sarah.koenig@acme.example", "sarah.koenig@acme.example is inactive in Personio")]
    for email, message in cases:
        r = world.ctl("hires", "invite", email, "--connection", "acme", check=False)
        assert r.returncode == 1 and r.stdout == "", (email, r)
        assert r.stderr.startswith("rosterctl: hires invite: ") and message in r.stderr, r.stderr
    assert [w for w in world.writes("scim") if w["method"] == "POST"] == []
    r = world.ctl("hires", "invite", TOM, check=False)
    assert r.returncode == 2 and "--connection is required" in r.stderr
    r = world.ctl("hires", "invite", TOM, "--connection", "nope", check=False)
    assert r.returncode == 1 and 'connection "nope" not found' in r.stderr
    r = world.ctl("hires", "list", "--connection", "nope", check=False)
    assert r.returncode == 1 and 'connection "nope" not found' in r.stderr


def test_hire_who_gets_an_account_another_way_is_marked_linked(world):
    world.reset()
    assert world.wait_event(world.personio("person.created", 1029))["status"] == "done"
    world.sandbox.fixtures({"scim_users": [{"email": TOM, "given_name": "Tom",
                                            "family_name": "Maier"}]})
    assert world.wait_event(world.personio("person.updated", 1029))["status"] == "done"
    assert [h["status"] for h in world.ctl_json("hires", "list")] == ["linked"]
    assert len(hire_alerts(world, TOM)) == 1


def test_long_standing_employees_without_an_account_are_not_hires(world):
    world.reset()
    world.sandbox.fixtures({"personio_employees": [{
        "id": 1041, "first_name": "Olga", "last_name": "Alt", "email": "olga.alt@acme.example",
        "status": "active", "hire_date": "2019-05-01", "team": "Sales"}]})
    ev = world.personio("employment.updated", 1041)
    assert world.wait_event(ev)["status"] == "done"
    assert hire_alerts(world, "olga.alt@acme.example") == []
    # ... unless Personio says the person was just created (entered late, say).
    ev = world.personio("person.created", 1041)
    assert world.wait_event(ev)["status"] == "done"
    assert len(hire_alerts(world, "olga.alt@acme.example")) == 1


def test_status_becoming_onboarding_is_when_the_alert_goes_out(world):
    world.reset()
    # HR keeps a future hire as inactive until the contract is signed
    world.sandbox.fixtures({"personio_employees": [{
        "id": 1042, "first_name": "Pia", "last_name": "Neu", "email": "pia.neu@acme.example",
        "status": "inactive", "hire_date": "2027-03-01", "team": "Frontend"}]})
    assert world.wait_event(world.personio("employment.updated", 1042))["status"] == "done"
    assert hire_alerts(world, "pia.neu@acme.example") == []
    world.update("personio_employees", {"id": 1042, "status": "onboarding"})
    assert world.wait_event(world.personio("employment.updated", 1042))["status"] == "done"
    [text] = hire_alerts(world, "pia.neu@acme.example")
    assert "starts on 2027-03-01" in text and "Platform team: Engineering" in text
