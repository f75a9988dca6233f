"""Seeds (demo company "Acme GmbH" or empty) and the record normalisers that the
control API's fixtures share. All ids are deterministic; dates are relative to
the sandbox's "today".
"""
import datetime as _dt

from . import scim
from .util import iso_utc, parse_date, to_int

DEPARTMENTS = {"Management": 281000, "Engineering": 281001, "Customer Success": 281002,
               "Sales": 281003}
TEAMS = {"Backend": 59001, "Frontend": 59002, "Support": 59003, "Sales": 59004}
COST_CENTERS = {"Management": 4000, "Engineering": 4100, "Customer Success": 4200, "Sales": 4300}
TEAM_DEPT = {"Backend": "Engineering", "Frontend": "Engineering", "Support": "Customer Success",
             "Sales": "Sales", None: "Management"}
TIME_OFF_TYPES = [(2001, "Vacation", "paid_vacation"), (2002, "Sick leave", "sick_leave"),
                  (2003, "Home office", "offsite_work"), (2004, "Parental leave", "parental_leave")]

CREDENTIALS = {"personio_client_id": "demo-client", "personio_client_secret": "demo-secret",
               "moco_api_key": "demo-moco-key", "moco_readonly_key": "demo-moco-readonly-key",
               "platform_token": "demo-platform-token", "slack_hook": "T000/B000/XXXX"}

# id, first, last, team, position, supervisor id, email override
ROSTER = [
    (1001, "Clara", "Schmidt", None, "CEO", None, "ceo@acme.example"),
    (1002, "Felix", "Wagner", None, "CFO", 1001, "cfo@acme.example"),
    (1003, "Jonas", "Becker", "Backend", "Head of Backend", 1001, None),
    (1004, "Lena", "Hoffmann", "Frontend", "Head of Frontend", 1001, None),
    (1005, "Mia", "Schulz", "Support", "Head of Support", 1001, None),
    (1006, "Paul", "Fischer", "Sales", "Head of Sales", 1001, None),
    (1007, "Lukas", "Meyer", "Backend", "Backend Engineer", 1003, None),
    (1008, "Anna", "Weber", "Backend", "Backend Engineer", 1003, None),
    (1009, "Leon", "Koch", "Backend", "Backend Engineer", 1003, None),
    (1010, "Sophie", "Richter", "Backend", "Site Reliability Engineer", 1003, None),
    (1011, "Elias", "Klein", "Backend", "Backend Engineer", 1003, None),
    (1012, "Marie", "Wolf", "Backend", "Data Engineer", 1003, None),
    (1013, "Finn", "Schroeder", "Frontend", "Frontend Engineer", 1004, None),
    (1014, "Emma", "Neumann", "Frontend", "Frontend Engineer", 1004, None),
    (1015, "Noah", "Schwarz", "Frontend", "UX Designer", 1004, None),
    (1016, "Hannah", "Zimmermann", "Frontend", "Frontend Engineer", 1004, None),
    (1017, "Ben", "Braun", "Frontend", "Frontend Engineer", 1004, None),
    (1018, "Lea", "Krueger", "Support", "Support Agent", 1005, None),
    (1019, "Luis", "Hofmann", "Support", "Support Agent", 1005, None),
    (1020, "Emilia", "Hartmann", "Support", "Support Agent", 1005, None),
    (1021, "Tim", "Lange", "Support", "Support Agent", 1005, None),
    (1022, "Lina", "Schmitt", "Support", "Support Agent", 1005, None),
    (1023, "Jan", "Werner", "Support", "Support Engineer", 1005, None),
    (1024, "Lara", "Krause", "Sales", "Account Executive", 1006, None),
    (1025, "Max", "Meier", "Sales", "Account Executive", 1006, None),
    (1026, "Laura", "Lehmann", "Sales", "Sales Development", 1006, None),
    (1027, "David", "Schmid", "Sales", "Account Executive", 1006, None),
    (1028, "Nina", "Schulze", "Sales", "Account Executive", 1006, None),
    (1029, "Tom", "Maier", "Backend", "Backend Engineer", 1003, None),
    (1030, "Sarah", "Koenig", "Frontend", "Frontend Engineer", 1004, None),
]
LEAVER_SOON, LEAVER_PAST, NEW_HIRE, RECENT_HIRE = 1021, 1030, 1029, 1028
NOT_IN_MOCO = {NEW_HIRE, 1026}
NOT_IN_SCIM = {NEW_HIRE, RECENT_HIRE}
PRESENCE_USERS = [1003, 1004] + list(range(1007, 1018))


def moco_id(emp_id):
    return 9000 + emp_id - 1000


def _d(d):
    return d.isoformat()


def workday(d, forward=True):
    while d.weekday() >= 5:
        d += _dt.timedelta(days=1 if forward else -1)
    return d


def _at(d, hour):
    return iso_utc(_dt.datetime(d.year, d.month, d.day, hour, 0, 0, tzinfo=_dt.timezone.utc))


# ---- normalisers (fixtures and seed) ---------------------------------------------------

def _named(value, table):
    if value is None or value == "":
        return None
    if isinstance(value, dict):
        return {"id": value.get("id") or table.get(value["name"], 0), "name": value["name"]}
    return {"id": table.get(value, 60000 + sum(map(ord, str(value)))), "name": str(value)}


def _emp_by_email(st, email):
    for e in st.employees.values():
        if (e.get("email") or "").lower() == str(email).lower():
            return e["id"]
    return None


def norm_employee(st, d):
    e = dict(d)
    e["id"] = to_int(e.get("id")) or st.next_id("employees", 1001)
    e.setdefault("first_name", "Person")
    e.setdefault("last_name", str(e["id"]))
    e.setdefault("email", "person%d@acme.example" % e["id"])
    e.setdefault("status", "active")
    e.setdefault("position", "Employee")
    e.setdefault("employment_type", "internal")
    e.setdefault("hire_date", "2020-01-01")
    for key in ("termination_date", "last_working_day", "contract_end_date", "termination_type",
                "termination_reason", "preferred_name", "gender", "probation_period_end"):
        e.setdefault(key, None)
    if "supervisor_email" in e:
        e["supervisor_id"] = _emp_by_email(st, e.pop("supervisor_email"))
    e.setdefault("supervisor_id", None)
    e["team"] = _named(e.get("team"), TEAMS)
    dept = e.get("department", TEAM_DEPT.get(e["team"]["name"]) if e["team"] else None)
    e["department"] = _named(dept, DEPARTMENTS)
    e.setdefault("office", {"id": 1, "name": "Berlin"})
    e.setdefault("subcompany", None)
    if "cost_centers" not in e:
        dn = e["department"]["name"] if e["department"] else None
        e["cost_centers"] = [{"id": COST_CENTERS.get(dn, 4999), "name": "CC %s" % (dn or "General"),
                              "percentage": 100}] if dn else []
    e.setdefault("created_at", iso_utc())
    e["last_modified_at"] = e.get("last_modified_at") or iso_utc()
    return e


def norm_time_off(st, d):
    t = dict(d)
    t["id"] = to_int(t.get("id")) or st.next_id("time_offs", 30001)
    if "employee_email" in t:
        t["employee_id"] = _emp_by_email(st, t.pop("employee_email"))
    t["employee_id"] = to_int(t.get("employee_id"))
    if "type" in t:
        name = t.pop("type")
        t["type_id"] = next((x["id"] for x in st.time_off_types.values() if x["name"] == name), 2001)
    t.setdefault("type_id", 2001)
    t.setdefault("status", "approved")
    t.setdefault("end_date", t["start_date"])
    t.setdefault("half_day_start", False)
    t.setdefault("half_day_end", False)
    t.setdefault("comment", "")
    t.setdefault("created_at", iso_utc())
    t["updated_at"] = t.get("updated_at") or iso_utc()
    return t


def norm_attendance(st, d):
    a = dict(d)
    a["id"] = to_int(a.get("id")) or st.next_id("attendances", 50001)
    a.setdefault("break", 0)
    a.setdefault("end_time", None)
    a.setdefault("comment", "")
    a.setdefault("project_id", None)
    a.setdefault("status", "confirmed")
    a.setdefault("updated_at", iso_utc())
    return a


def norm_moco_user(st, d):
    u = dict(d)
    u["id"] = to_int(u.get("id")) or st.next_id("moco_users", 9001)
    u.setdefault("firstname", "User")
    u.setdefault("lastname", str(u["id"]))
    u.setdefault("email", "user%d@acme.example" % u["id"])
    u.setdefault("active", True)
    u.setdefault("extern", False)
    u.setdefault("unit", {"id": 456, "name": "Acme"})
    u.setdefault("role", {"id": 42, "name": "Mitarbeiter"})
    u.setdefault("created_at", iso_utc())
    u["updated_at"] = u.get("updated_at") or iso_utc()
    return u


def _moco_by_email(st, email):
    for u in st.moco_users.values():
        if (u.get("email") or "").lower() == str(email).lower():
            return u["id"]
    return None


def norm_presence(st, d):
    p = dict(d)
    p["id"] = to_int(p.get("id")) or st.next_id("presences", 700001)
    if "user_email" in p:
        p["user_id"] = _moco_by_email(st, p.pop("user_email"))
    p["user_id"] = to_int(p.get("user_id"))
    p.setdefault("to", None)
    p.setdefault("is_home_office", False)
    p.setdefault("created_at", iso_utc())
    p["updated_at"] = p.get("updated_at") or iso_utc()
    return p


def norm_schedule(st, d):
    s = dict(d)
    s["id"] = to_int(s.get("id")) or st.next_id("schedules", 800001)
    if "user_email" in s:
        s["user_id"] = _moco_by_email(st, s.pop("user_email"))
    s["user_id"] = to_int(s.get("user_id"))
    s["absence_code"] = to_int(s.get("absence_code"), 4)
    s.setdefault("am", True)
    s.setdefault("pm", True)
    s.setdefault("comment", "")
    s.setdefault("symbol", None)
    s.setdefault("created_at", iso_utc())
    s["updated_at"] = s.get("updated_at") or iso_utc()
    return s


def norm_delegation(st, d):
    """A platform approval delegation as the delegation API stores it (fixtures: a
    delegation someone else made, e.g. by hand on the platform)."""
    rec = dict(d)
    rec.setdefault("id", "dlg_%04d" % st.seq("delegation"))
    for ref in ("approver", "delegate"):
        u = next((x for x in st.scim_users.values()
                  if x["id"] == rec.get(ref) or x["userName"].lower() == str(rec.get(ref)).lower()),
                 None)
        if u is None:
            raise ValueError("%s %r is not a platform user" % (ref, rec.get(ref)))
        rec[ref], rec[ref + "_id"] = u["userName"], u["id"]
    rec.setdefault("reason", "")
    rec.setdefault("external_id", None)
    rec.setdefault("created_at", iso_utc())
    return rec


def scim_user_body(st, d):
    """Short form {email, given_name, family_name, active, department, manager_email,
    external_id, id} or a full SCIM body (has userName) -> SCIM body."""
    if "userName" in d:
        return dict(d)
    body = {"userName": d["email"], "active": d.get("active", True),
            "name": {"givenName": d.get("given_name", ""), "familyName": d.get("family_name", "")},
            "displayName": ("%s %s" % (d.get("given_name", ""), d.get("family_name", ""))).strip(),
            "emails": [{"value": d["email"], "type": "work", "primary": True}]}
    if d.get("id"):
        body["id"] = d["id"]
    else:
        body["id"] = scim.scim_id("user", d["email"].lower())
    if d.get("external_id"):
        body["externalId"] = str(d["external_id"])
    ent = {}
    if d.get("department"):
        ent["department"] = d["department"]
    if d.get("manager_email"):
        mgr = next((u for u in st.scim_users.values()
                    if u["userName"].lower() == d["manager_email"].lower()), None)
        if mgr:
            ent["manager"] = {"value": mgr["id"]}
    if ent:
        body[scim.ENT] = ent
    return body


def add_scim_group(st, name, member_emails):
    ids = [u["id"] for u in st.scim_users.values()
           if u["userName"].lower() in {m.lower() for m in member_emails}]
    return scim.new_group(st, {"displayName": name, "members": [
        {"value": i, "display": st.scim_users[i].get("displayName")} for i in ids]})


# ---- seeds ------------------------------------------------------------------------------

def apply(st, seed, today):
    st.personio_clients = {CREDENTIALS["personio_client_id"]: CREDENTIALS["personio_client_secret"]}
    st.moco_keys = {CREDENTIALS["moco_api_key"]: {"user_id": moco_id(1001), "read_only": False},
                    CREDENTIALS["moco_readonly_key"]: {"user_id": moco_id(1001), "read_only": True}}
    st.platform_tokens = {CREDENTIALS["platform_token"]}
    st.slack_hooks = {CREDENTIALS["slack_hook"]}
    for tid, name, cat in TIME_OFF_TYPES:
        st.time_off_types[tid] = {"id": tid, "name": name, "category": cat, "unit": "day",
                                  "half_day_requests_enabled": True,
                                  "certification_required": cat == "sick_leave"}
    if seed == "empty":
        return
    if seed != "demo":
        raise ValueError("unknown seed %r" % seed)
    _demo_people(st, today)
    _demo_absences(st, today)
    _demo_moco(st, today)
    _demo_scim(st)
    # The seed's ids count as handed out: a deleted seeded record's id is never given to a
    # new one (MOCO and Personio never reuse ids; rosterd's links rely on that).
    for coll in ("employees", "time_offs", "attendances", "moco_users", "presences", "schedules"):
        ids = [k for k in getattr(st, coll) if isinstance(k, int)]
        if ids:
            st.counters[coll] = max(st.counters.get(coll, 0), max(ids))


def _demo_people(st, today):
    next_month = (today.replace(day=1) + _dt.timedelta(days=32)).replace(day=1)
    for eid, first, last, team, pos, sup, email in ROSTER:
        hire = _dt.date(2018, 1, 1) + _dt.timedelta(days=(eid * 137) % 2400)
        rec = {"id": eid, "first_name": first, "last_name": last, "team": team, "position": pos,
               "supervisor_id": sup, "email": email or ("%s.%s@acme.example" % (first, last)).lower(),
               "hire_date": _d(hire.replace(day=1)), "status": "active",
               "created_at": _at(hire - _dt.timedelta(days=30), 9),
               "last_modified_at": _at(today - _dt.timedelta(days=10 + eid % 20), 10),
               "weekly_working_hours": "40", "department": TEAM_DEPT[team]}
        if eid % 5 == 0:
            rec["office"] = {"id": 2, "name": "Hamburg"}
        if eid == LEAVER_SOON:
            rec.update(last_working_day=_d(today + _dt.timedelta(days=7)),
                       termination_date=_d(today + _dt.timedelta(days=14)),
                       termination_type="employee", termination_reason="New job",
                       last_modified_at=_at(today - _dt.timedelta(days=1), 10))
        elif eid == LEAVER_PAST:
            rec.update(status="inactive", last_working_day=_d(today - _dt.timedelta(days=30)),
                       termination_date=_d(today - _dt.timedelta(days=30)),
                       termination_type="employee", termination_reason="Relocation")
        elif eid == NEW_HIRE:
            rec.update(status="onboarding", hire_date=_d(next_month),
                       created_at=_at(today - _dt.timedelta(days=3), 9),
                       last_modified_at=_at(today - _dt.timedelta(days=3), 9))
        elif eid == RECENT_HIRE:
            rec.update(hire_date=_d(today - _dt.timedelta(days=5)),
                       created_at=_at(today - _dt.timedelta(days=40), 9))
        st.employees[eid] = norm_employee(st, rec)


def _demo_absences(st, today):
    def span(start, days):
        s = workday(today + _dt.timedelta(days=start))
        return _d(s), _d(workday(s + _dt.timedelta(days=days)))

    lead_s, lead_e = span(7, 4)            # Backend lead (an approver) on vacation
    mem_s, mem_e = span(3, 1)              # member, ends with a half day
    half = span(2, 0)[0]                   # one half day
    sick_s = workday(today - _dt.timedelta(days=6), forward=False)
    pre_s, pre_e = span(8, 2)              # pre-existing MOCO entries on these days
    sup_s, sup_e = span(21, 4)             # Support lead vacation in three weeks
    rows = [
        dict(id=30001, employee_id=1003, type_id=2001, start_date=lead_s, end_date=lead_e,
             comment="Family trip"),
        dict(id=30002, employee_id=1007, type_id=2001, start_date=mem_s, end_date=mem_e,
             half_day_end=True),
        dict(id=30003, employee_id=1019, type_id=2001, start_date=half, end_date=half,
             half_day_start=True),
        dict(id=30004, employee_id=1014, type_id=2002, start_date=_d(sick_s),
             end_date=_d(workday(sick_s + _dt.timedelta(days=1)))),
        dict(id=30005, employee_id=1025, type_id=2001, status="pending",
             start_date=span(35, 0)[0], end_date=span(35, 4)[1]),
        dict(id=30006, employee_id=1008, type_id=2001, start_date=pre_s, end_date=pre_e),
        dict(id=30007, employee_id=1005, type_id=2001, start_date=sup_s, end_date=sup_e),
        dict(id=30008, employee_id=1009, type_id=2001, status="rejected",
             start_date=span(14, 0)[0], end_date=span(14, 1)[1]),
    ]
    for r in rows:
        r["created_at"] = r["updated_at"] = _at(today - _dt.timedelta(days=2), 8)
        st.time_offs[r["id"]] = norm_time_off(st, r)
    st.counters["demo_pre_existing"] = [pre_s, _d(workday(parse_date(pre_s) + _dt.timedelta(days=1)))]


def _demo_moco(st, today):
    for eid, first, last, _team, _pos, _sup, _email in ROSTER:
        if eid in NOT_IN_MOCO:
            continue
        e = st.employees[eid]
        st.moco_users[moco_id(eid)] = norm_moco_user(st, {
            "id": moco_id(eid), "firstname": first, "lastname": last, "email": e["email"],
            "active": eid != LEAVER_PAST, "unit": {"id": 450 + (e["team"] or {"id": 0})["id"] % 10,
                                                   "name": (e["team"] or {"name": "Management"})["name"]},
            "created_at": e["created_at"], "updated_at": e["last_modified_at"]})
    st.moco_users[9100] = norm_moco_user(st, {"id": 9100, "firstname": "Frida", "lastname": "Freelance",
                                              "email": "frida@freelance.example", "extern": True})
    absent = set()
    for t in st.time_offs.values():
        if t["status"] == "approved":
            d = parse_date(t["start_date"])
            while d <= parse_date(t["end_date"]):
                absent.add((t["employee_id"], d))
                d += _dt.timedelta(days=1)
    pid = 700001
    for back in range(14, 0, -1):
        day = today - _dt.timedelta(days=back)
        if day.weekday() >= 5:
            continue
        for eid in PRESENCE_USERS:
            if (eid, day) in absent:
                continue
            for frm, to in (("09:00", "12:30"), ("13:00", "17:30")):
                st.presences[pid] = norm_presence(st, {
                    "id": pid, "user_id": moco_id(eid), "date": _d(day), "from": frm, "to": to,
                    "is_home_office": (eid + back) % 3 == 0,
                    "created_at": _at(day, 17), "updated_at": _at(day, 17)})
                pid += 1
    first, second = st.counters.pop("demo_pre_existing")
    st.schedules[800001] = norm_schedule(st, {"id": 800001, "user_id": moco_id(1008), "date": first,
                                              "absence_code": 4, "comment": "Urlaub (entered in MOCO)"})
    st.schedules[800002] = norm_schedule(st, {"id": 800002, "user_id": moco_id(1008), "date": second,
                                              "absence_code": 1, "comment": "not plannable"})


def _demo_scim(st):
    by_id = {}
    for eid, first, last, team, _pos, sup, _email in ROSTER:  # supervisors come first in ROSTER
        if eid in NOT_IN_SCIM:
            continue
        e = st.employees[eid]
        email = e["email"]
        if eid == 1005:
            email = "Mia.Schulz@acme.example"  # exercises case-insensitive matching
        mgr = st.employees.get(sup, {}).get("email") if sup else None
        if eid == 1012:
            mgr = "ceo@acme.example"          # stale manager on the platform
        body = scim_user_body(st, {"email": email, "given_name": first, "family_name": last,
                                   "department": (e["department"] or {}).get("name"),
                                   "manager_email": mgr})
        by_id[eid] = scim.new_user(st, body)
    scim.new_user(st, scim_user_body(st, {"email": "it-admin@acme.example", "given_name": "Alex",
                                          "family_name": "Admin", "department": "IT"}))
    eng = [by_id[i]["userName"] for i in by_id if st.employees[i]["team"]
           and st.employees[i]["team"]["name"] in ("Backend", "Frontend") and i != 1017]
    care = [by_id[i]["userName"] for i in by_id if st.employees[i]["team"]
            and st.employees[i]["team"]["name"] == "Support"] + [by_id[1017]["userName"]]
    sales = [by_id[i]["userName"] for i in by_id if st.employees[i]["team"]
             and st.employees[i]["team"]["name"] == "Sales"]
    add_scim_group(st, "Engineering", eng)
    add_scim_group(st, "Customer Care", care)
    add_scim_group(st, "Sales", sales)


# ---- a large company for the reconciliation benchmark (tests/bench/reconcile.py) -------

BENCH_TEAMS = ("Backend", "Frontend", "Support", "Sales")


def generate_company(st, n, today, presence_days=10):
    """n employees (ids 100001…, pNNNNN@big.example) in 4 teams of 10-person squads, each
    with a MOCO user (200001…) and, but for 1 % of new hires, a platform account; 1 % leave
    in the coming weeks; one time-off each (9 in 10 approved), in the last four weeks but for
    1 in 500 a week ahead; one presence on
    each of the last presence_days working days; a MOCO absence for 1 in 10; 0.5 % of
    platform accounts belong to nobody in HR; a platform group per team. Explicit ids keep
    it O(n). Returns the counts."""
    day = _dt.timedelta(days=1)
    workdays = []
    d = today - day
    while len(workdays) < presence_days:
        if d.weekday() < 5:
            workdays.append(d)
        d -= day
    members = {t: [] for t in BENCH_TEAMS}
    counts = dict.fromkeys(("employees", "moco_users", "scim_users", "time_offs", "presences",
                            "schedules"), 0)
    pid, sid, tid = 7000001, 8000001, 3000001
    for i in range(1, n + 1):
        eid, email, team = 100000 + i, "p%05d@big.example" % i, BENCH_TEAMS[(i // 10) % 4]
        lead = 100000 + (i // 10) * 10 + 1
        rec = {"id": eid, "first_name": "Person", "last_name": "%05d" % i, "email": email,
               "team": team, "supervisor_id": None if eid == lead else lead,
               "hire_date": "2020-01-01", "department": TEAM_DEPT[team]}
        if i % 100 == 50:
            leave = _d(today + _dt.timedelta(days=7 + i % 50))
            rec.update(last_working_day=leave, termination_date=leave)
        st.employees[eid] = norm_employee(st, rec)
        st.moco_users[200000 + i] = norm_moco_user(st, {"id": 200000 + i, "firstname": "Person",
                                                        "lastname": "%05d" % i, "email": email})
        counts["employees"] += 1
        counts["moco_users"] += 1
        if i % 100 != 99:
            u = scim.new_user(st, scim_user_body(st, {"id": scim.scim_id("user", email),
                                                      "email": email, "given_name": "Person",
                                                      "family_name": "%05d" % i,
                                                      "department": TEAM_DEPT[team]}))
            members[team].append({"value": u["id"], "display": None})
            counts["scim_users"] += 1
        # Time-offs: taken in the last four weeks (before a connection made today starts,
        # so nothing to mirror), but 1 in 500 is new tonight: a week from now.
        if i % 500 == 7:
            start, end = today + _dt.timedelta(days=7), today + _dt.timedelta(days=7 + i % 3)
        else:
            start = today - _dt.timedelta(days=6 + i % 22)
            end = start + _dt.timedelta(days=i % 5)
        st.time_offs[tid] = norm_time_off(st, {
            "id": tid, "employee_id": eid, "type_id": 2001 if i % 7 else 2002,
            "start_date": _d(start), "end_date": _d(end),
            "status": "approved" if i % 10 else "pending"})
        tid += 1
        counts["time_offs"] += 1
        for w in workdays:
            st.presences[pid] = norm_presence(st, {"id": pid, "user_id": 200000 + i, "date": _d(w),
                                                   "from": "09:00", "to": "17:00"})
            pid += 1
            counts["presences"] += 1
        if i % 10 == 3:
            st.schedules[sid] = norm_schedule(st, {"id": sid, "user_id": 200000 + i,
                                                   "date": _d(today + _dt.timedelta(days=30)),
                                                   "absence_code": 4, "comment": "entered in MOCO"})
            sid += 1
            counts["schedules"] += 1
    for i in range(1, n // 200 + 1):
        email = "contractor%04d@big.example" % i
        scim.new_user(st, scim_user_body(st, {"id": scim.scim_id("user", email), "email": email,
                                              "given_name": "Contractor", "family_name": str(i)}))
        counts["scim_users"] += 1
    for team, ms in members.items():
        scim.new_group(st, {"displayName": team, "members": ms})
    return counts
