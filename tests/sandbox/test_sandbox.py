"""Black-box tests of the sandbox fakes (Personio, MOCO, SCIM, delegation API,
Slack) and its control API, against a sandbox subprocess."""
import datetime as dt
import re
import socket
import time

import pytest

from conftest import TODAY

DATE_COLON = re.compile(r"^\d{4}-\d\d-\d\dT00:00:00\+0[12]:00$")
DATE_NOCOLON = re.compile(r"^\d{4}-\d\d-\d\dT00:00:00\+0[12]00$")


def employees(sb, tok, **params):
    q = "&".join("%s=%s" % kv for kv in params.items())
    return sb.personio("GET", "/v1/company/employees?" + q, tok)


# ---- start-up and seed -------------------------------------------------------------------

def test_start_line(sandbox_proc):
    info = sandbox_proc.info
    assert info["port"] > 0 and info["base_url"] == "http://127.0.0.1:%d" % info["port"]
    assert info["personio_base_url"].endswith("/personio")
    assert info["moco_base_url"].endswith("/moco/api/v1")
    assert info["slack_webhook_url"].endswith("/slack/services/T000/B000/XXXX")


def test_demo_seed_shape(sb):
    state = sb.ctl("GET", "/state")
    today = dt.date.fromisoformat(TODAY)
    emps = {e["id"]: e for e in state["employees"]}
    assert 25 <= len(emps) <= 35
    assert {e["team"]["name"] for e in emps.values() if e["team"]} == \
        {"Backend", "Frontend", "Support", "Sales"}
    assert all(e["email"].endswith("@acme.example") for e in emps.values())
    onboarding = [e for e in emps.values() if e["status"] == "onboarding"]
    assert len(onboarding) == 1 and dt.date.fromisoformat(onboarding[0]["hire_date"]).month == \
        (today.month % 12) + 1
    soon = [e for e in emps.values() if e["last_working_day"]
            and dt.date.fromisoformat(e["last_working_day"]) > today]
    past = [e for e in emps.values() if e["last_working_day"]
            and dt.date.fromisoformat(e["last_working_day"]) < today]
    assert len(soon) == 1 and soon[0]["termination_date"] and len(past) == 1
    supervisors = {e["supervisor_id"] for e in emps.values() if e["supervisor_id"]}
    offs = state["time_offs"]
    assert any(t["half_day_start"] or t["half_day_end"] for t in offs)
    assert any(t["employee_id"] in supervisors and t["status"] == "approved" for t in offs)
    # MOCO mirrors most employees by e-mail; presences cover the last two weeks
    moco_emails = {u["email"] for u in state["moco_users"]}
    assert len(moco_emails & {e["email"] for e in emps.values()}) >= 25
    dates = {p["date"] for p in state["presences"]}
    assert min(dates) >= (today - dt.timedelta(days=14)).isoformat() and max(dates) < TODAY
    # SCIM: new hires missing, one platform-only user, three groups
    scim_names = {u["userName"].lower() for u in state["scim_users"]}
    assert onboarding[0]["email"] not in scim_names
    assert len(scim_names - {e["email"] for e in emps.values()}) == 1
    assert {g["displayName"] for g in state["scim_groups"]} == \
        {"Engineering", "Customer Care", "Sales"}


def test_reset_is_deterministic(sb):
    a = sb.ctl("GET", "/state")
    sb.ctl("POST", "/reset", {"seed": "demo", "today": TODAY})
    b = sb.ctl("GET", "/state")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("meta",)} for r in rows]
    for key in ("employees", "time_offs", "moco_users", "schedules"):
        assert [r["id"] for r in a[key]] == [r["id"] for r in b[key]]
    assert strip(a["scim_users"])[0]["id"] == strip(b["scim_users"])[0]["id"]
    assert sb.ctl("POST", "/reset", {"seed": "empty"})["today"] == TODAY  # keeps --today
    e = sb.ctl("GET", "/state")
    assert e["employees"] == [] and e["scim_users"] == [] and e["moco_users"] == []


# ---- Personio -------------------------------------------------------------------------------

def test_personio_auth_forms(sb):
    good = {"client_id": "demo-client", "client_secret": "demo-secret"}
    s, _h, d = sb.j("POST", "/personio/v1/auth", good)
    assert s == 200 and d["success"] and d["data"]["token"].startswith("papi-")
    assert d["data"]["expires_in"] == 86400
    s, _h, _d = sb.j("POST", "/personio/v1/auth", "client_id=demo-client&client_secret=demo-secret",
                     {"Content-Type": "application/x-www-form-urlencoded"})
    assert s == 200
    s, _h, _d = sb.j("POST", "/personio/v1/auth?client_id=demo-client&client_secret=demo-secret")
    assert s == 200
    s, _h, d = sb.j("POST", "/personio/v1/auth", {"client_id": "demo-client", "client_secret": "x"})
    assert s == 401 and d["success"] is False and d["error"]["code"] == 401
    recorded = sb.ctl("GET", "/requests?system=personio")
    assert all("demo-secret" not in r["body"] + r["query"] for r in recorded)


def test_personio_token_errors_and_stable_header(sb):
    s, _h, d = sb.j("GET", "/personio/v1/company/employees")
    assert s == 401 and d["error"]["message"] == "Authorization is not provided"
    s, _h, d = sb.personio("GET", "/v1/company/employees", "papi-bogus")
    assert s == 403 and d["error"]["message"] == "Provided authorization is not valid"
    tok = sb.personio_token()
    for _ in range(2):
        s, h, _d = sb.personio("GET", "/v1/company/employees", tok)
        assert s == 200 and h["authorization"] == "Bearer " + tok
    sb.ctl("POST", "/revoke", {"system": "personio"})
    assert sb.personio("GET", "/v1/company/employees", tok)[0] == 403


def test_personio_rotate_mode(sb):
    sb.ctl("POST", "/config", {"personio_token_mode": "rotate"})
    tok = sb.personio_token()
    s, h, _d = sb.personio("GET", "/v1/company/employees/1001", tok)
    new = h["authorization"][len("Bearer "):]
    assert s == 200 and new != tok
    assert sb.personio("GET", "/v1/company/employees/1001", tok)[0] == 403
    assert sb.personio("GET", "/v1/company/employees/1001", new)[0] == 200


def test_personio_auth_rate_limit(sb):
    body = {"client_id": "demo-client", "client_secret": "demo-secret"}
    statuses = [sb.call("POST", "/personio/v1/auth", body)[0] for _ in range(61)]
    assert statuses[:60] == [200] * 60 and statuses[60] == 429
    assert sb.call("POST", "/personio/v1/auth", body)[0] == 429  # cool-down


def test_employee_shape(sb):
    tok = sb.personio_token()
    s, _h, d = employees(sb, tok, email="JONAS.BECKER@acme.example")
    assert s == 200 and d["metadata"]["total_elements"] == 1
    at = d["data"][0]["attributes"]
    assert d["data"][0]["type"] == "Employee" and "id" not in d["data"][0]
    assert at["id"] == {"label": "ID", "value": 1003, "type": "integer", "universal_id": "id"}
    for key in ("email", "first_name", "status", "hire_date", "supervisor", "department", "team"):
        assert set(at[key]) == {"label", "value", "type", "universal_id"}
    assert DATE_COLON.match(at["hire_date"]["value"]) and at["hire_date"]["type"] == "date"
    sup = at["supervisor"]["value"]
    assert sup["type"] == "Employee" and sup["attributes"]["id"]["value"] == 1001
    assert at["department"]["value"] == {"type": "Department",
                                         "attributes": {"id": 281001, "name": "Engineering"}}
    assert at["team"]["value"]["attributes"]["name"] == "Backend"
    assert at["cost_centers"]["value"][0]["type"] == "CostCenter"
    s, _h, d = sb.personio("GET", "/v1/company/employees/1021", tok)
    at = d["data"]["attributes"]
    assert DATE_COLON.match(at["last_working_day"]["value"])
    assert DATE_COLON.match(at["termination_date"]["value"])
    s, _h, d = sb.personio("GET", "/v1/company/employees/99999", tok)
    assert s == 404 and d["success"] is False
    s, _h, d = employees(sb, tok, **{"attributes[]": "email"})
    assert set(d["data"][0]["attributes"]) == {"id", "email"}


@pytest.mark.parametrize("n", [0, 1, 100, 101, 250])
def test_employee_pagination(sb, n):
    sb.ctl("POST", "/fixtures", {"mode": "replace", "generate": {"personio_employees": n}})
    tok = sb.personio_token()
    seen, offset, pages = [], 0, 0
    while True:
        s, _h, d = employees(sb, tok, limit=100, offset=offset)
        assert s == 200 and d["limit"] == 100 and d["offset"] == offset
        meta = d["metadata"]
        assert meta["total_elements"] == n and meta["total_pages"] == -(-n // 100)
        assert meta["current_page"] == pages
        seen += [e["attributes"]["id"]["value"] for e in d["data"]]
        pages += 1
        if not d["data"] or meta["current_page"] >= meta["total_pages"] - 1:
            break
        offset += 100
    assert len(seen) == n == len(set(seen))
    assert employees(sb, tok, limit=101)[0] == 400
    _s, _h, d = sb.personio("GET", "/v1/company/employees", tok)
    assert d["limit"] == 50 and len(d["data"]) == min(n, 50)


def test_employee_updated_since(sb):
    tok = sb.personio_token()
    since = (dt.date.fromisoformat(TODAY) - dt.timedelta(days=2)).isoformat()
    _s, _h, d = employees(sb, tok, updated_since=since)
    ids = {e["attributes"]["id"]["value"] for e in d["data"]}
    assert 1021 in ids and 1003 not in ids


def test_employee_rate_limit(sb):
    sb.ctl("POST", "/config", {"personio_employees_rate": 3})
    tok = sb.personio_token()
    got = [sb.personio("GET", "/v1/company/employees?limit=1", tok)[0] for _ in range(4)]
    assert got == [200, 200, 200, 429]
    assert sb.personio("GET", "/v1/company/time-offs", tok)[0] == 200  # other routes unaffected


def test_time_off_page_numbers(sb):
    sb.ctl("POST", "/fixtures", {"mode": "replace", "generate": {"personio_time_offs": 5}})
    tok = sb.personio_token()
    p0 = sb.personio("GET", "/v1/company/time-offs?limit=2&offset=0", tok)[2]
    p1 = sb.personio("GET", "/v1/company/time-offs?limit=2&offset=1", tok)[2]
    p3 = sb.personio("GET", "/v1/company/time-offs?limit=2&offset=3", tok)[2]
    ids = lambda d: [t["attributes"]["id"] for t in d["data"]]
    assert ids(p0) == ids(p1) and len(ids(p1)) == 2 and len(ids(p3)) == 1
    assert p1["metadata"] == {"total_elements": 5, "current_page": 1, "total_pages": 3}
    d = sb.personio("GET", "/v1/company/time-offs", tok)[2]
    assert d["limit"] == 200 and len(d["data"]) == 5
    item = d["data"][0]["attributes"]
    assert d["data"][0]["type"] == "TimeOffPeriod"
    assert DATE_NOCOLON.match(item["start_date"]) and DATE_NOCOLON.match(item["end_date"])
    assert item["time_off_type"]["type"] == "TimeOffType"
    assert item["employee"]["attributes"]["id"]["value"] == min(
        e["id"] for e in sb.ctl("GET", "/state")["employees"])


def test_time_off_filters(sb):
    tok = sb.personio_token()
    d = sb.personio("GET", "/v1/company/time-offs?employees[]=1019&employees[]=1003", tok)[2]
    assert {t["attributes"]["employee"]["attributes"]["id"]["value"] for t in d["data"]} == {1003, 1019}
    half = [t for t in d["data"] if t["attributes"]["employee"]["attributes"]["id"]["value"] == 1019][0]
    assert half["attributes"]["half_day_start"] is True and half["attributes"]["days_count"] == 0.5
    end = (dt.date.fromisoformat(TODAY) - dt.timedelta(days=1)).isoformat()
    d = sb.personio("GET", "/v1/company/time-offs?start_date=2026-01-01&end_date=" + end, tok)[2]
    assert [t["attributes"]["time_off_type"]["attributes"]["name"] for t in d["data"]] == ["Sick leave"]
    statuses = {t["attributes"]["status"] for t in
                sb.personio("GET", "/v1/company/time-offs", tok)[2]["data"]}
    assert {"approved", "pending", "rejected"} <= statuses


def test_attendances(sb):
    tok = sb.personio_token()
    assert sb.personio("GET", "/v1/company/attendances?start_date=2026-11-01", tok)[0] == 400
    one = {"employee": 1007, "date": "2026-11-16", "start_time": "09:00", "end_time": "12:00",
           "break": 0, "comment": "moco:1"}
    s, _h, d = sb.personio("POST", "/v1/company/attendances", tok,
                           {"attendances": [one], "skip_approval": True})
    assert s == 200 and d["data"]["message"] == "success" and len(d["data"]["id"]) == 1
    aid = d["data"]["id"][0]
    clash = dict(one, start_time="11:00", end_time="13:00")
    fine = dict(one, start_time="13:00", end_time="17:00")
    s, _h, d = sb.personio("POST", "/v1/company/attendances", tok,
                           {"attendances": [fine, clash], "skip_approval": True})
    assert s == 400 and d["success"] is False
    rows = d["error"]["detailed_message"]
    assert [r["success"] for r in rows] == [True, False]
    assert rows[1]["error_msg"] == "Existing overlapping attendances periods"
    got = sb.personio("GET", "/v1/company/attendances?start_date=2026-11-16&end_date=2026-11-16", tok)[2]
    assert [a["id"] for a in got["data"]] == [aid]  # nothing of the failed batch was stored
    a = got["data"][0]
    assert a["type"] == "AttendancePeriod" and a["attributes"]["employee"] == 1007
    s, _h, d = sb.personio("PATCH", "/v1/company/attendances/%d" % aid, tok, {"end_time": "12:30"})
    assert s == 200 and d["data"]["message"] == "The attendance period was updated."
    s, _h, d = sb.personio("PATCH", "/v1/company/attendances/999999", tok, {"end_time": "12:30"})
    assert s == 404 and d == {"success": False, "error": {
        "code": 404, "message": "The attendance period was not found."}}
    assert sb.personio("DELETE", "/v1/company/attendances/%d" % aid, tok)[0] == 200
    assert sb.personio("DELETE", "/v1/company/attendances/%d" % aid, tok)[0] == 404


# ---- MOCO ------------------------------------------------------------------------------------

def test_moco_auth(sb):
    assert sb.j("GET", "/moco/api/v1/users")[0] == 401
    assert sb.moco("GET", "/users", key="nope")[0] == 401
    s, _h, d = sb.j("GET", "/moco/api/v1/session", headers={"Authorization": "Bearer demo-moco-key"})
    assert s == 200 and d["id"] == 9001 and d["uuid"]
    body = {"date": "2026-11-17", "from": "09:00", "to": "10:00"}
    assert sb.moco("POST", "/users/presences", body, key="demo-moco-readonly-key")[0] == 403
    assert sb.moco("GET", "/users", key="demo-moco-readonly-key")[0] == 200


@pytest.mark.parametrize("n", [0, 1, 100, 101, 250])
def test_moco_pagination(sb, n):
    sb.ctl("POST", "/fixtures", {"mode": "replace", "generate": {"moco_users": n}})
    url, seen, pages = "/users?include_archived=false", [], 0
    while url:
        s, h, d = sb.moco("GET", url)
        pages += 1
        assert s == 200 and h["x-per-page"] == "100" and h["x-total"] == str(n)
        assert h["x-page"] == str(pages)
        seen += [u["id"] for u in d]
        link = h.get("link")
        if link:
            m = re.fullmatch(r'<(http://127\.0\.0\.1:\d+/moco/api/v1(/users\?.*))>; rel="next"', link)
            assert m and "include_archived=false" in m.group(2) and "page=%d" % (pages + 1) in m.group(2)
            url = m.group(2)
        else:
            url = None
    assert len(seen) == n == len(set(seen)) and pages == max(1, -(-n // 100))


def test_moco_users_filters(sb):
    d = sb.moco("GET", "/users?email=JONAS.BECKER@acme.example")[2]
    assert [u["id"] for u in d] == [9003]
    active = sb.moco("GET", "/users")[2]
    everyone = sb.moco("GET", "/users?include_archived=true")[2]
    assert len(everyone) == len(active) + 1 and all(u["active"] for u in active)
    assert sb.moco("GET", "/users/9003")[2]["email"] == "jonas.becker@acme.example"


def test_moco_presences(sb):
    assert sb.moco("GET", "/users/presences?from=2026-11-01")[0] == 422
    s, _h, d = sb.moco("GET", "/users/presences?from=2026-11-16&to=2026-11-16&user_id=9007")
    assert s == 200 and [(p["from"], p["to"]) for p in d] == [("09:00", "12:30"), ("13:00", "17:30")]
    body = {"date": "2026-11-18", "from": "08:00", "to": "10:00"}
    s, _h, p = sb.moco("POST", "/users/presences", body, headers={"X-IMPERSONATE-USER-ID": "9007"})
    assert s == 200 and p["user"]["id"] == 9007
    s, _h, q = sb.moco("POST", "/users/presences", body)
    assert s == 200 and q["user"]["id"] == 9001  # key owner
    s, _h, p2 = sb.moco("PUT", "/users/presences/%d" % p["id"], {"to": "11:00"})
    assert s == 200 and p2["to"] == "11:00"
    assert sb.moco("DELETE", "/users/presences/%d" % p["id"])[0] == 204
    assert sb.moco("GET", "/users/presences/%d" % p["id"])[0] == 404


def test_moco_schedules(sb):
    body = {"date": "2026-11-19", "absence_code": 4, "user_id": 9011, "am": True, "pm": False,
            "comment": "[personio:1]"}
    s, _h, d = sb.moco("POST", "/schedules", body)
    assert s == 200 and d["assignment"]["code"] == "4" and d["am"] and not d["pm"]
    s, _h, e = sb.moco("POST", "/schedules", dict(body, absence_code=3))
    assert s == 422 and e["message"]
    s, _h, d2 = sb.moco("POST", "/schedules", dict(body, absence_code=3, overwrite=True))
    assert s == 200 and d2["id"] != d["id"]
    got = sb.moco("GET", "/schedules?from=2026-11-19&to=2026-11-19&user_id=9011")[2]
    assert [x["id"] for x in got] == [d2["id"]]
    assert sb.moco("GET", "/schedules?from=2026-11-19&to=2026-11-19&user_id=9011&absence_code=4")[2] == []
    s, _h, d3 = sb.moco("PUT", "/schedules/%d" % d2["id"], {"pm": True})
    assert s == 200 and d3["pm"] is True
    assert sb.moco("GET", "/schedules?from=2026-11-01")[0] == 422
    assert sb.moco("DELETE", "/schedules/%d" % d2["id"])[0] == 204
    assert sb.moco("DELETE", "/schedules/%d" % d2["id"])[0] == 404
    codes = {s["assignment"]["code"] for s in sb.moco("GET", "/schedules?user_id=9008")[2]}
    assert codes == {"1", "4"}  # pre-existing entries in the demo seed


def test_moco_rate_limit(sb):
    sb.ctl("POST", "/config", {"moco_rate": 3, "moco_window_s": 120})
    got = [sb.moco("GET", "/session")[0] for _ in range(4)]
    assert got == [200, 200, 200, 429]


# ---- SCIM ------------------------------------------------------------------------------------

def test_scim_auth(sb):
    s, _h, d = sb.scim("GET", "/Users", token=None)
    assert s == 401 and d["status"] == "401" and \
        d["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    assert sb.scim("GET", "/Users", token="wrong")[0] == 401


def test_scim_filters_and_paging(sb):
    s, h, d = sb.scim("GET", '/Users?filter=userName%20eq%20%22mia.schulz%40ACME.example%22')
    assert s == 200 and h["content-type"].startswith("application/scim+json")
    assert d["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    assert d["totalResults"] == 1 and d["Resources"][0]["userName"] == "Mia.Schulz@acme.example"
    d = sb.scim("GET", '/Users?filter=emails%5Bvalue%20eq%20%22ceo%40acme.example%22%5D')[2]
    assert d["totalResults"] == 1
    s, _h, d = sb.scim("GET", '/Users?filter=title%20co%20%22x%22')
    assert s == 400 and d["scimType"] == "invalidFilter"
    sb.ctl("POST", "/fixtures", {"mode": "replace", "generate": {"scim_users": 101}})
    p1 = sb.scim("GET", "/Users?startIndex=1&count=100")[2]
    p2 = sb.scim("GET", "/Users?startIndex=101&count=100")[2]
    assert p1["totalResults"] == 101 and p1["itemsPerPage"] == 100 and p2["itemsPerPage"] == 1
    assert p2["startIndex"] == 101


def test_scim_create_and_conflict(sb):
    body = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "tom.maier@acme.example",
            "externalId": "1029", "active": True, "name": {"givenName": "Tom", "familyName": "Maier"},
            "emails": [{"value": "tom.maier@acme.example", "type": "work", "primary": True}]}
    s, h, d = sb.scim("POST", "/Users", body)
    assert s == 201 and h["location"].endswith("/scim/v2/Users/" + d["id"]) and d["active"] is True
    assert sb.scim("GET", "/Users/" + d["id"])[2]["externalId"] == "1029"
    s, _h, e = sb.scim("POST", "/Users", dict(body, userName="TOM.MAIER@acme.example"))
    assert s == 409 and e["scimType"] == "uniqueness" and e["status"] == "409"
    assert sb.scim("GET", "/Users/does-not-exist")[0] == 404


def _uid(sb, email):
    return sb.ctl("GET", "/lookup?email=" + email)["scim_user_id"]


def test_scim_patch_forms(sb):
    uid, mgr = _uid(sb, "lukas.meyer@acme.example"), _uid(sb, "ceo@acme.example")
    po = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    ent = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
    s, _h, d = sb.scim("PATCH", "/Users/" + uid, {"schemas": [po], "Operations": [
        {"op": "replace", "path": "active", "value": False}]})
    assert s == 200 and d["active"] is False
    s, _h, d = sb.scim("PATCH", "/Users/" + uid, {"schemas": [po], "Operations": [
        {"op": "Replace", "value": {"active": True}}]})
    assert s == 200 and d["active"] is True
    s, _h, d = sb.scim("PATCH", "/Users/" + uid, {"schemas": [po], "Operations": [
        {"op": "replace", "path": ent + ":manager", "value": {"value": mgr}},
        {"op": "replace", "path": ent + ":department", "value": "Platform"}]})
    assert s == 200 and d[ent]["manager"]["value"] == mgr and d[ent]["department"] == "Platform"
    s, _h, d = sb.scim("PATCH", "/Users/" + uid, {"schemas": [po], "Operations": [
        {"op": "replace", "path": ent + ":manager", "value": {"value": "nobody"}}]})
    assert s == 400 and d["scimType"] == "invalidValue"
    s, _h, d = sb.scim("PATCH", "/Users/" + uid, {"schemas": [po], "Operations": [
        {"op": "replace", "path": "nickName", "value": "x"}]})
    assert s == 400 and d["scimType"] == "invalidPath"
    sb.ctl("POST", "/config", {"scim_patch_204": True})
    s, _h, raw = sb.call("PATCH", "/scim/v2/Users/" + uid, {"schemas": [po], "Operations": [
        {"op": "replace", "path": "active", "value": False}]},
        {"Authorization": "Bearer demo-platform-token"})
    assert s == 204 and raw == b""
    assert sb.scim("GET", "/Users/" + uid)[2]["active"] is False


def test_scim_groups(sb):
    s, _h, d = sb.scim("GET", '/Groups?filter=displayName%20eq%20%22customer%20care%22')
    assert s == 200 and d["totalResults"] == 1
    gid = d["Resources"][0]["id"]
    po = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
    a, b = _uid(sb, "lukas.meyer@acme.example"), _uid(sb, "anna.weber@acme.example")
    s, _h, g = sb.scim("PATCH", "/Groups/" + gid, {"schemas": [po], "Operations": [
        {"op": "add", "path": "members", "value": [{"value": a}, {"value": b}]}]})
    members = {m["value"] for m in g["members"]}
    assert s == 200 and {a, b} <= members
    s, _h, g = sb.scim("PATCH", "/Groups/" + gid, {"schemas": [po], "Operations": [
        {"op": "remove", "path": 'members[value eq "%s"]' % a}]})
    assert a not in {m["value"] for m in g["members"]} and b in {m["value"] for m in g["members"]}
    s, _h, g = sb.scim("PATCH", "/Groups/" + gid, {"schemas": [po], "Operations": [
        {"op": "Remove", "path": "members", "value": [{"value": b}]}]})
    assert b not in {m["value"] for m in g["members"]}
    user = sb.scim("GET", "/Users/" + _uid(sb, "lea.krueger@acme.example"))[2]
    assert [x["display"] for x in user["groups"]] == ["Customer Care"]
    assert sb.scim("GET", "/Groups/" + gid)[2]["displayName"] == "Customer Care"


# ---- delegation API --------------------------------------------------------------------------

def test_delegations(sb):
    assert sb.platform("GET", "/approval-delegations", token=None)[0] == 401
    body = {"approver": "jonas.becker@acme.example", "delegate": "ceo@acme.example",
            "starts_at": "2026-11-30T00:00:00+01:00", "ends_at": "2026-12-05T00:00:00+01:00",
            "reason": "absence", "external_id": "rosterd:acme:30001"}
    s, _h, d = sb.platform("POST", "/approval-delegations", body)
    assert s == 201 and d["id"]
    s, _h, dup = sb.platform("POST", "/approval-delegations", body)
    assert s == 409 and dup["id"] == d["id"]
    assert sb.platform("POST", "/approval-delegations", dict(body, delegate="nobody@x"))[0] == 422
    assert sb.platform("POST", "/approval-delegations",
                       dict(body, external_id="y", ends_at="2026-11-01T00:00:00Z"))[0] == 422
    s, _h, lst = sb.platform("GET", "/approval-delegations?approver=JONAS.BECKER@acme.example")
    assert s == 200 and [x["id"] for x in lst["data"]] == [d["id"]]
    assert sb.platform("GET", "/approval-delegations?approver=ceo@acme.example")[2]["data"] == []
    assert sb.platform("DELETE", "/approval-delegations/" + d["id"])[0] == 204
    assert sb.platform("DELETE", "/approval-delegations/" + d["id"])[0] == 404


# ---- Slack -----------------------------------------------------------------------------------

def test_slack(sb):
    hook = "/slack/services/T000/B000/XXXX"
    s, h, raw = sb.call("POST", hook, {"text": "New hire: Tom"})
    assert (s, raw) == (200, b"ok")
    assert sb.call("POST", hook, {"blocks": [{"type": "section"}]})[:3:2] == (200, b"ok")
    assert sb.call("POST", hook, {"foo": 1})[::2] == (400, b"no_text")
    assert sb.call("POST", hook, "{not json")[::2] == (400, b"invalid_payload")
    assert sb.call("POST", "/slack/services/T000/B000/YYYY", {"text": "x"})[::2] == (404, b"no_service")
    inbox = sb.ctl("GET", "/slack")
    assert [m["text"] for m in inbox] == ["New hire: Tom", None] and inbox[0]["hook"] == "T000/B000/XXXX"
    sb.ctl("POST", "/config", {"slack_mode": "429"})
    s, h, raw = sb.call("POST", hook, {"text": "x"})
    assert s == 429 and h["retry-after"] == "1"
    sb.ctl("POST", "/config", {"slack_mode": "410"})
    assert sb.call("POST", hook, {"text": "x"})[::2] == (410, b"channel_is_archived")
    assert len(sb.ctl("GET", "/slack")) == 2


# ---- faults and recording --------------------------------------------------------------------

def test_fault_429_with_and_without_retry_after(sb):
    tok = sb.personio_token()
    sb.ctl("POST", "/faults", {"system": "personio", "method": "GET",
                               "path_prefix": "/v1/company/employees", "status": 429,
                               "retry_after": 2, "times": 1})
    s, h, _d = sb.personio("GET", "/v1/company/employees", tok)
    assert s == 429 and h["retry-after"] == "2"
    assert sb.personio("GET", "/v1/company/employees", tok)[0] == 200
    sb.ctl("POST", "/faults", {"system": "moco", "status": 429, "retry_after": None})
    s, h, _d = sb.moco("GET", "/users")
    assert s == 429 and "retry-after" not in h
    assert sb.moco("GET", "/users")[0] == 200


def test_fault_500_then_success_and_times(sb):
    sb.ctl("POST", "/faults", {"system": "scim", "path_prefix": "/Users", "status": 500, "times": 2})
    assert [sb.scim("GET", "/Users")[0] for _ in range(3)] == [500, 500, 200]
    sb.ctl("POST", "/faults", {"system": "scim", "status": 503, "times": None})
    assert [sb.scim("GET", "/Groups")[0] for _ in range(3)] == [503] * 3
    assert sb.ctl("DELETE", "/faults")["deleted"] == 1
    assert sb.scim("GET", "/Groups")[0] == 200


def test_fault_method_filter_and_malformed_body(sb):
    sb.ctl("POST", "/faults", {"system": "moco", "method": "POST", "status": 500})
    assert sb.moco("GET", "/users")[0] == 200
    sb.ctl("POST", "/faults", {"system": "moco", "method": "GET", "path_prefix": "/users",
                               "status": 200, "body": "[{\"id\": 1,"})
    s, _h, raw = sb.call("GET", "/moco/api/v1/users", headers={"Authorization": "Bearer demo-moco-key"})
    assert s == 200 and raw == b'[{"id": 1,'


def test_fault_delay_and_hang(sb):
    sb.ctl("POST", "/faults", {"system": "platform", "status": None, "delay_ms": 400})
    t0 = time.monotonic()
    assert sb.platform("GET", "/approval-delegations")[0] == 200
    assert time.monotonic() - t0 >= 0.4
    sb.ctl("POST", "/faults", {"system": "platform", "status": 0, "delay_ms": 1500})
    t0 = time.monotonic()
    with pytest.raises((socket.timeout, TimeoutError)):
        sb.call("GET", "/platform/api/v1/approval-delegations",
                headers={"Authorization": "Bearer demo-platform-token"}, timeout=0.5)
    assert time.monotonic() - t0 < 1.4
    time.sleep(1.1)  # let the hung handler finish
    assert sb.platform("GET", "/approval-delegations")[0] == 200


def test_request_recording(sb):
    sb.ctl("DELETE", "/requests")
    sb.moco("GET", "/users?email=a%40b.example")
    sb.scim("GET", "/Users")
    recs = sb.ctl("GET", "/requests")
    assert [r["system"] for r in recs] == ["moco", "scim"]
    m = recs[0]
    assert m["method"] == "GET" and m["path"] == "/users" and m["args"] == {"email": ["a@b.example"]}
    assert m["headers"]["authorization"] == "Token token=***" and m["status"] == 200
    assert recs[1]["headers"]["authorization"] == "Bearer ***"
    assert [r["system"] for r in sb.ctl("GET", "/requests?since_id=%d" % m["id"])] == ["scim"]
    assert [r["system"] for r in sb.ctl("GET", "/requests?system=moco")] == ["moco"]


def test_fixtures_merge_delete_and_lookup(sb):
    res = sb.ctl("POST", "/fixtures", {
        "personio_employees": [{"first_name": "Ada", "last_name": "Lovelace",
                                "email": "ada@acme.example", "team": "Backend",
                                "supervisor_email": "jonas.becker@acme.example",
                                "hire_date": "2026-12-01", "status": "onboarding"}],
        "personio_time_offs": [{"employee_email": "ada@acme.example", "type": "Sick leave",
                                "start_date": "2026-12-02"}],
        "moco_users": [{"firstname": "Ada", "lastname": "Lovelace", "email": "ada@acme.example"}],
        "moco_presences": [{"user_email": "ada@acme.example", "date": "2026-12-02",
                            "from": "09:00", "to": "17:00"}]})
    eid = res["created"]["personio_employees"][0]
    assert eid == 1031
    look = sb.ctl("GET", "/lookup?email=ADA@acme.example")
    assert look["personio_id"] == eid and look["moco_user_id"] and look["scim_user_id"] is None
    tok = sb.personio_token()
    at = sb.personio("GET", "/v1/company/employees/%d" % eid, tok)[2]["data"]["attributes"]
    assert at["supervisor"]["value"]["attributes"]["id"]["value"] == 1003
    sb.ctl("POST", "/fixtures", {"delete": {"personio_employees": [eid]}})
    assert sb.personio("GET", "/v1/company/employees/%d" % eid, tok)[0] == 404
    s, _h, d = sb.j("POST", "/_control/fixtures", {"bogus": []})
    assert s == 400
