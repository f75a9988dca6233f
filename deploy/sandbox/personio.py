"""Fake Personio v1 (spec §1, §8.1): /v1/auth, employees, time-offs, attendances.

Stored records are plain dicts (see seed.py); this module renders them in
Personio's wrapped-attribute shapes and enforces auth, paging and rate limits.
"""
import datetime as _dt
import math
import secrets
import time
import uuid

from .util import (BadBody, R, berlin_offset_minutes, dispatch, hhmm_minutes, iso_utc, jresp, parse_date, parse_ts,
                   personio_date, to_int, truthy)

NS = uuid.UUID("6f1c2d1e-7a53-4c55-9b0e-3d1f4b2a9c10")


def err(code, message, **extra):
    body = {"success": False, "error": {"code": code, "message": message}}
    body["error"].update(extra)
    return jresp(code, body)


def id_v2(kind, rid):
    return str(uuid.uuid5(NS, "%s:%s" % (kind, rid)))


# ---- auth -----------------------------------------------------------------------

def _issue_token(st):
    tok = "papi-" + secrets.token_hex(24)
    st.personio_tokens[tok] = time.time() + int(st.config["personio_token_ttl"])
    return tok


def auth(st, req):
    if not st.rate_ok("personio_auth", st.config["personio_auth_rate"], 60, cooldown_s=60):
        return err(429, "Too many requests. Please wait 60 seconds.")
    creds = {k: req.q(k) for k in ("client_id", "client_secret") if req.q(k) is not None}
    try:
        if req.is_form():
            creds.update(req.form())
        elif req.body.strip():
            body = req.json()
            if isinstance(body, dict):
                creds.update(body)
    except BadBody:
        return err(400, "Malformed request body")
    cid, csec = creds.get("client_id"), creds.get("client_secret")
    if not cid or not csec:
        return err(401, "client_id and client_secret are required")
    want = st.personio_clients.get(cid)
    if want is None or not secrets.compare_digest(str(want), str(csec)):
        return err(401, "Wrong credentials")
    tok = _issue_token(st)
    return jresp(200, {"success": True, "data": {
        "token": tok, "expires_in": int(st.config["personio_token_ttl"]),
        "scope": "employees:read absences:read attendances:write"}})


def _check_token(st, req):
    """Returns (token, None) or (None, error response)."""
    hdr = req.header("Authorization")
    if not hdr:
        return None, err(401, "Authorization is not provided")
    parts = hdr.split(" ", 1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None, err(403, "Provided authorization is not valid")
    tok = parts[1].strip()
    exp = st.personio_tokens.get(tok)
    if exp is None or exp < time.time():
        st.personio_tokens.pop(tok, None)
        return None, err(403, "Provided authorization is not valid")
    return tok, None


# ---- rendering ----------------------------------------------------------------------

def A(label, value, typ, uid):
    return {"label": label, "value": value, "type": typ, "universal_id": uid}


STRING_ATTRS = [("first_name", "First name"), ("last_name", "Last name"),
                ("preferred_name", "Preferred name"), ("email", "Email"), ("gender", "Gender"),
                ("status", "Status"), ("position", "Position"), ("employment_type", "Employment type"),
                ("termination_type", "Termination type"), ("termination_reason", "Termination reason")]
DATE_ATTRS = [("hire_date", "Hire date"), ("contract_end_date", "Contract ends"),
              ("termination_date", "Termination date"), ("last_working_day", "Last day of work"),
              ("probation_period_end", "Probation period end")]
OBJ_ATTRS = [("department", "Department", "Department"), ("team", "Team", "Team"),
             ("office", "Office", "Office"), ("subcompany", "Subcompany", "Subcompany")]


def _ts(s, colon=True):
    """Stored UTC timestamp -> Berlin local '2017-01-17T10:32:18+01:00' (or '+0100')."""
    dt = parse_ts(s)
    if dt is None:
        return None
    off = berlin_offset_minutes(dt.date())
    local = dt.astimezone(_dt.timezone(_dt.timedelta(minutes=off)))
    return local.strftime("%Y-%m-%dT%H:%M:%S") + "+%02d%s%02d" % (off // 60, ":" if colon else "",
                                                                  off % 60)


def _short_employee(st, emp_id):
    e = st.employees.get(emp_id)
    if e is None:
        return {"type": "Employee", "attributes": {"id": A("ID", emp_id, "integer", "id")}}
    return {"type": "Employee", "attributes": {
        "id": A("ID", e["id"], "integer", "id"),
        "first_name": A("First name", e.get("first_name"), "standard", "first_name"),
        "last_name": A("Last name", e.get("last_name"), "standard", "last_name"),
        "email": A("Email", e.get("email"), "standard", "email")}}


def render_employee(st, e, only=None):
    at = {"id": A("ID", e["id"], "integer", "id")}
    for key, label in STRING_ATTRS:
        at[key] = A(label, e.get(key), "standard", key)
    for key, label in DATE_ATTRS:
        at[key] = A(label, personio_date(e.get(key)), "date", key)
    at["weekly_working_hours"] = A("Weekly hours", e.get("weekly_working_hours", "40"), "decimal",
                                   "weekly_working_hours")
    sup = e.get("supervisor_id")
    at["supervisor"] = A("Supervisor", _short_employee(st, sup) if sup else None, "standard",
                         "supervisor")
    for key, label, typ in OBJ_ATTRS:
        obj = e.get(key)
        val = {"type": typ, "attributes": {"id": obj["id"], "name": obj["name"]}} if obj else None
        at[key] = A(label, val, "standard", key)
    at["cost_centers"] = A("Cost center", [
        {"type": "CostCenter", "attributes": {"id": c["id"], "name": c["name"],
                                              "percentage": c.get("percentage", 100)}}
        for c in e.get("cost_centers") or []], "standard", "cost_centers")
    at["created_at"] = A("Created at", _ts(e.get("created_at")), "date", "created_at")
    at["last_modified_at"] = A("Last modified", _ts(e.get("last_modified_at")), "date",
                               "last_modified_at")
    for key, val in (e.get("dynamic") or {}).items():
        at[key] = A(val.get("label", key), val.get("value"), val.get("type", "standard"), key)
    if only:
        at = {k: v for k, v in at.items() if k == "id" or k in only}
    return {"type": "Employee", "attributes": at}


# ---- employees ------------------------------------------------------------------

def _employees_rate(st):
    if st.rate_ok("personio_employees", st.config["personio_employees_rate"], 60):
        return None
    return err(429, "Too Many Requests")


def list_employees(st, req):
    limited = _employees_rate(st)
    if limited:
        return limited
    has_paging = req.q("limit") is not None or req.q("offset") is not None
    limit = to_int(req.q("limit", "50"))
    offset = to_int(req.q("offset", "0"))
    if limit is None or offset is None or offset < 0 or limit < 1:
        return err(400, "limit and offset must be non-negative integers")
    if limit > 100:
        return err(400, "The limit must not be greater than 100.")
    if not has_paging:
        limit = 50
    rows = sorted(st.employees.values(), key=lambda e: e["id"])
    email = req.q("email")
    if email is not None:
        rows = [e for e in rows if (e.get("email") or "").lower() == email.strip().lower()]
    since = req.q("updated_since")
    if since:
        ts = parse_ts(since)
        if ts is None:
            return err(400, "updated_since must be YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS")
        rows = [e for e in rows if (parse_ts(e.get("last_modified_at")) or ts) >= ts]
    only = set(req.qlist("attributes")) or None
    total = len(rows)
    page = rows[offset:offset + limit]
    return jresp(200, {
        "success": True,
        "metadata": {"total_elements": total, "current_page": offset // limit,
                     "total_pages": int(math.ceil(total / float(limit)))},
        "offset": offset, "limit": limit,
        "data": [render_employee(st, e, only) for e in page]})


def get_employee(st, req, emp_id):
    limited = _employees_rate(st)
    if limited:
        return limited
    e = st.employees.get(int(emp_id))
    if e is None:
        return err(404, "Employee not found")
    return jresp(200, {"success": True, "data": render_employee(st, e)})


# ---- time-offs ------------------------------------------------------------------

def _workdays(start, end):
    n, d = 0, start
    while d <= end:
        n += d.weekday() < 5
        d = d.fromordinal(d.toordinal() + 1)
    return n


def render_time_off(st, t):
    tt = st.time_off_types.get(t.get("type_id"), {"id": t.get("type_id"), "name": "Unknown",
                                                   "category": None})
    s, e = parse_date(t["start_date"]), parse_date(t["end_date"])
    days = _workdays(s, e) - 0.5 * bool(t.get("half_day_start")) - 0.5 * bool(t.get("half_day_end"))
    if s == e and t.get("half_day_start") and t.get("half_day_end"):
        days = 0.5
    days = int(days) if days == int(days) else days
    return {"type": "TimeOffPeriod", "attributes": {
        "id": t["id"], "id_v2": id_v2("time-off", t["id"]), "status": t.get("status", "approved"),
        "comment": t.get("comment", ""),
        "start_date": personio_date(t["start_date"], colon=False),
        "end_date": personio_date(t["end_date"], colon=False),
        "days_count": days, "half_day_start": bool(t.get("half_day_start")),
        "half_day_end": bool(t.get("half_day_end")),
        "time_off_type": {"type": "TimeOffType", "attributes": {
            "id": tt["id"], "name": tt["name"], "category": tt.get("category")}},
        "employee": _short_employee(st, t["employee_id"]),
        "created_by": "API", "certificate": {"status": "not-required"},
        "created_at": _ts(t.get("created_at"), colon=False),
        "updated_at": _ts(t.get("updated_at"), colon=False)}}


def list_time_offs(st, req):
    page = to_int(req.q("offset", "1"))
    limit = to_int(req.q("limit", "200"))
    if page is None or limit is None or page < 0 or limit < 1:
        return err(400, "offset and limit must be positive integers")
    page = max(page, 1)
    rows = sorted(st.time_offs.values(), key=lambda t: t["id"])
    sd, ed = parse_date(req.q("start_date")), parse_date(req.q("end_date"))
    if (req.q("start_date") and sd is None) or (req.q("end_date") and ed is None):
        return err(400, "start_date and end_date must be YYYY-MM-DD")
    if sd:
        rows = [t for t in rows if parse_date(t["end_date"]) >= sd]
    if ed:
        rows = [t for t in rows if parse_date(t["start_date"]) <= ed]
    emps = {to_int(x) for x in req.qlist("employees")}
    if emps:
        rows = [t for t in rows if t["employee_id"] in emps]
    uf, ut = parse_ts(req.q("updated_from")), parse_ts(req.q("updated_to"))
    if uf:
        rows = [t for t in rows if (parse_ts(t.get("updated_at")) or uf) >= uf]
    if ut:
        rows = [t for t in rows if (parse_ts(t.get("updated_at")) or ut) <= ut]
    total = len(rows)
    chunk = rows[(page - 1) * limit: page * limit]
    return jresp(200, {
        "success": True,
        "metadata": {"total_elements": total, "current_page": page,
                     "total_pages": int(math.ceil(total / float(limit)))},
        "offset": page, "limit": limit,
        "data": [render_time_off(st, t) for t in chunk]})


def get_time_off(st, req, tid):
    t = st.time_offs.get(int(tid))
    if t is None:
        return err(404, "Time-off period not found")
    return jresp(200, {"success": True, "data": render_time_off(st, t)})


def delete_time_off(st, req, tid):
    """DELETE /v1/company/time-offs/{id} (spec 1.3): HR withdraws an absence."""
    if st.time_offs.pop(int(tid), None) is None:
        return err(404, "Time-off period not found")
    return jresp(200, {"success": True, "data": {"message": "The absence period was deleted."}})


def list_time_off_types(st, req):
    return jresp(200, {"success": True, "data": [
        {"type": "TimeOffType", "attributes": dict(tt)}
        for tt in sorted(st.time_off_types.values(), key=lambda x: x["id"])]})


# ---- attendances ------------------------------------------------------------------

def render_attendance(a):
    return {"id": a["id"], "type": "AttendancePeriod", "attributes": {
        "id_v2": id_v2("attendance", a["id"]), "employee": a["employee"], "date": a["date"],
        "start_time": a["start_time"], "end_time": a.get("end_time"), "break": a.get("break", 0),
        "comment": a.get("comment") or "", "updated_at": a.get("updated_at"),
        "status": a.get("status", "confirmed"), "is_holiday": False, "is_on_time_off": False,
        "project": None if not a.get("project_id") else {
            "id": a["project_id"], "type": "Project",
            "attributes": {"name": "Project %s" % a["project_id"], "active": True}}}}


def list_attendances(st, req):
    sd, ed = parse_date(req.q("start_date")), parse_date(req.q("end_date"))
    if sd is None or ed is None:
        return err(400, "The start_date and end_date fields are required (YYYY-MM-DD).")
    limit, offset = to_int(req.q("limit", "200")), to_int(req.q("offset", "0"))
    if limit is None or offset is None or limit < 1 or offset < 0:
        return err(400, "limit and offset must be non-negative integers")
    pending = truthy(req.q("includePending", "false"))
    emps = {to_int(x) for x in req.qlist("employees")}
    rows = [a for a in sorted(st.attendances.values(), key=lambda a: a["id"])
            if sd <= parse_date(a["date"]) <= ed
            and (not emps or a["employee"] in emps)
            and (a.get("status", "confirmed") == "confirmed" or pending)]
    total = len(rows)
    return jresp(200, {
        "success": True,
        "metadata": {"total_elements": total, "current_page": offset // limit,
                     "total_pages": int(math.ceil(total / float(limit)))},
        "offset": offset, "limit": limit,
        "data": [render_attendance(a) for a in rows[offset:offset + limit]]})


def _span(a):
    s = hhmm_minutes(a["start_time"])
    e = hhmm_minutes(a.get("end_time"))
    return s, (24 * 60 if e is None else e)


def _overlaps(a, b):
    if a["employee"] != b["employee"] or a["date"] != b["date"]:
        return False
    (s1, e1), (s2, e2) = _span(a), _span(b)
    return s1 < e2 and s2 < e1


def _validate_attendance(st, a):
    for key in ("employee", "date", "start_time", "break"):
        if a.get(key) is None:
            return "The %s field is required." % key
    if not isinstance(a["employee"], int) or a["employee"] not in st.employees:
        return "Employee not found"
    if parse_date(a["date"]) is None or len(str(a["date"])) != 10:
        return "Invalid date"
    try:
        s, e = hhmm_minutes(a["start_time"]), hhmm_minutes(a.get("end_time"))
    except ValueError:
        return "Invalid time format, expected hh:mm"
    if e is not None and e <= s:
        return "The end time must be after the start time"
    if not isinstance(a["break"], int) or a["break"] < 0:
        return "The break must be a non-negative integer"
    return None


def create_attendances(st, req):
    try:
        body = req.json()
    except BadBody:
        return err(400, "Malformed JSON body")
    items = body.get("attendances") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        return err(400, "The attendances field is required.")
    skip = truthy(body.get("skip_approval", True))
    rows, accepted, ok = [], [], True
    for raw in items:
        a = dict(raw) if isinstance(raw, dict) else {}
        msg = _validate_attendance(st, a)
        if msg is None and any(_overlaps(a, o) for o in list(st.attendances.values()) + accepted):
            msg = "Existing overlapping attendances periods"
        row = {"success": msg is None, "error_msg": msg, "id": None,
               "employee": a.get("employee"), "date": a.get("date"),
               "start_time": a.get("start_time"), "end_time": a.get("end_time"),
               "break": a.get("break"), "comment": a.get("comment"),
               "project_id": a.get("project_id")}
        rows.append(row)
        if msg is None:
            accepted.append(a)
        ok = ok and msg is None
    if not ok:  # all-or-nothing: nothing is stored when a row fails
        return err(400, "Error when trying to insert Attendances periods rows",
                   detailed_message=rows)
    ids = []
    for a in accepted:
        aid = st.next_id("attendances", 50001)
        st.attendances[aid] = {
            "id": aid, "employee": a["employee"], "date": a["date"],
            "start_time": a["start_time"], "end_time": a.get("end_time"), "break": a["break"],
            "comment": a.get("comment") or "", "project_id": a.get("project_id"),
            "status": "confirmed" if skip else "pending", "updated_at": iso_utc()}
        ids.append(aid)
    return jresp(200, {"success": True, "data": {"id": ids, "message": "success"}})


PATCHABLE = ("date", "start_time", "end_time", "break", "comment", "project_id")


def patch_attendance(st, req, aid):
    cur = st.attendances.get(int(aid))
    if cur is None:
        return err(404, "The attendance period was not found.")
    try:
        body = req.json()
    except BadBody:
        return err(400, "Malformed JSON body")
    if not isinstance(body, dict):
        return err(400, "Malformed JSON body")
    if "employee" in body and body["employee"] != cur["employee"]:
        return err(400, "The employee of an attendance period cannot be changed.")
    fields = {k: body[k] for k in PATCHABLE if k in body}
    if not fields and "skip_approval" not in body:
        return err(400, "At least one field must be given.")
    new = dict(cur)
    new.update(fields)
    msg = _validate_attendance(st, new)
    if msg is None and any(_overlaps(new, o) for o in st.attendances.values() if o["id"] != cur["id"]):
        msg = "Existing overlapping attendances periods"
    if msg:
        return err(400, msg)
    if "skip_approval" in body:
        new["status"] = "confirmed" if truthy(body["skip_approval"]) else "pending"
    new["updated_at"] = iso_utc()
    st.attendances[cur["id"]] = new
    return jresp(200, {"success": True, "data": {"message": "The attendance period was updated."}})


def delete_attendance(st, req, aid):
    if st.attendances.pop(int(aid), None) is None:
        return err(404, "The attendance period was not found.")
    return jresp(200, {"success": True, "data": {"message": "The attendance period was deleted."}})


def _routes(st):
    return [
        R("GET", r"/v1/company/employees", lambda r: list_employees(st, r)),
        R("GET", r"/v1/company/employees/(\d+)", lambda r, i: get_employee(st, r, i)),
        R("GET", r"/v1/company/time-offs", lambda r: list_time_offs(st, r)),
        R("GET", r"/v1/company/time-offs/(\d+)", lambda r, i: get_time_off(st, r, i)),
        R("DELETE", r"/v1/company/time-offs/(\d+)", lambda r, i: delete_time_off(st, r, i)),
        R("GET", r"/v1/company/time-off-types", lambda r: list_time_off_types(st, r)),
        R("GET", r"/v1/company/attendances", lambda r: list_attendances(st, r)),
        R("POST", r"/v1/company/attendances", lambda r: create_attendances(st, r)),
        R("PATCH", r"/v1/company/attendances/(\d+)", lambda r, i: patch_attendance(st, r, i)),
        R("DELETE", r"/v1/company/attendances/(\d+)", lambda r, i: delete_attendance(st, r, i)),
    ]


def handle(st, req):
    if req.path.rstrip("/") == "/v1/auth":
        if req.method != "POST":
            return err(405, "Method not allowed")
        return auth(st, req)
    if not req.path.startswith("/v1/company/"):
        return err(404, "Not found")
    tok, bad = _check_token(st, req)
    if bad:
        return bad
    resp = dispatch(_routes(st), req, lambda: err(404, "Not found"),
                    lambda: err(405, "Method not allowed"))
    if st.config["personio_token_mode"] == "rotate":
        st.personio_tokens.pop(tok, None)
        tok = _issue_token(st)
    resp.add_header("authorization", "Bearer " + tok)
    return resp
