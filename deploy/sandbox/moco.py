"""Fake MOCO API v1 (spec §3, §8.2): users, presences, schedules, session.

Auth by `Token token=KEY` or `Bearer KEY`; read-only keys get 403 on writes;
lists are paged 100 per page with X-Page/X-Per-Page/X-Total and a Link
rel="next" only when another page exists; sliding-window rate limit.
"""
import urllib.parse
import uuid

from .util import (BadBody, R, cached_list, dispatch, hhmm_minutes, iso_utc, jresp, parse_date,
                   parse_ts, query_without, Resp, to_int, truthy)

ABSENCES = {1: "Unplannable absence", 2: "Public holiday", 3: "Sick day", 4: "Holiday",
            5: "Absence"}


def merr(status, message):
    return jresp(status, {"message": message})


def _auth(st, req):
    """Returns ((key_info), None) or (None, error)."""
    hdr = (req.header("Authorization") or "").strip()
    key = None
    if hdr.lower().startswith("token token="):
        key = hdr[12:].strip().strip('"')
    elif hdr.lower().startswith("bearer "):
        key = hdr[7:].strip()
    info = st.moco_keys.get(key) if key else None
    if info is None:
        return None, merr(401, "Unauthorized. Please check your API key.")
    return info, None


def _acting_user(st, req, info):
    """The key's owner, or the impersonated user. Returns (user_id, error)."""
    imp = req.header("X-IMPERSONATE-USER-ID")
    if imp is None:
        if info["user_id"] not in st.moco_users:
            return None, merr(422, "The API key's user does not exist")
        return info["user_id"], None
    uid = to_int(imp)
    if uid is None or uid not in st.moco_users:
        return None, merr(422, "Impersonated user not found")
    return uid, None


def paginate(st, req, items):
    per = int(st.config["moco_per_page"])
    page = max(to_int(req.q("page", "1"), 1), 1)
    total = len(items)
    chunk = items[(page - 1) * per: page * per]
    headers = [("X-Page", page), ("X-Per-Page", per), ("X-Total", total)]
    if page * per < total:
        params = [(k, v) for k, v in urllib.parse.parse_qsl(req.raw_query, keep_blank_values=True)
                  if k != "page"] + [("page", str(page + 1))]
        url = "%s%s?%s" % (req.base, req.path, urllib.parse.urlencode(params))
        headers.append(("Link", '<%s>; rel="next"' % url))
    return jresp(200, chunk, headers)


def _common_filters(req, items):
    ids = {to_int(x) for x in req.qlist("ids")}
    if ids:
        items = [x for x in items if x["id"] in ids]
    after = parse_ts(req.q("updated_after"))
    if after:
        items = [x for x in items if (parse_ts(x.get("updated_at")) or after) >= after]
    return items


def _user_ref(st, uid):
    u = st.moco_users.get(uid, {})
    return {"id": uid, "firstname": u.get("firstname"), "lastname": u.get("lastname")}


# ---- users ------------------------------------------------------------------------

def render_user(u):
    out = {"id": u["id"], "firstname": u["firstname"], "lastname": u["lastname"],
           "active": u.get("active", True), "extern": u.get("extern", False),
           "email": u.get("email"), "mobile_phone": u.get("mobile_phone", ""),
           "work_phone": u.get("work_phone", ""), "home_address": "", "info": "",
           "birthday": u.get("birthday"), "iban": "", "avatar_url": None,
           "tags": u.get("tags", []), "custom_properties": u.get("custom_properties", {}),
           "unit": u.get("unit"), "role": u.get("role"),
           "created_at": u.get("created_at"), "updated_at": u.get("updated_at")}
    return out


def list_users(st, req, info):
    def build():
        rows = sorted(st.moco_users.values(), key=lambda u: u["id"])
        if not truthy(req.q("include_archived", "false")):
            rows = [u for u in rows if u.get("active", True)]
        email = req.q("email")
        if email:
            rows = [u for u in rows if (u.get("email") or "").lower() == email.strip().lower()]
        return [render_user(u) for u in _common_filters(req, rows)]
    return paginate(st, req, cached_list(st, "moco_users", query_without(req.raw_query, "page"),
                                         build))


def get_user(st, req, info, uid):
    u = st.moco_users.get(int(uid))
    return jresp(200, render_user(u)) if u else merr(404, "Not found")


# ---- presences ----------------------------------------------------------------------

def render_presence(st, p):
    return {"id": p["id"], "date": p["date"], "from": p["from"], "to": p.get("to"),
            "is_home_office": p.get("is_home_office", False), "user": _user_ref(st, p["user_id"]),
            "created_at": p.get("created_at"), "updated_at": p.get("updated_at")}


def _date_range(req):
    """(from, to, error): both or neither must be given."""
    f, t = req.q("from"), req.q("to")
    if (f is None) != (t is None):
        return None, None, merr(422, "from and to must be given together")
    if f is None:
        return None, None, None
    fd, td = parse_date(f), parse_date(t)
    if fd is None or td is None:
        return None, None, merr(422, "from and to must be dates (YYYY-MM-DD)")
    return fd, td, None


def list_presences(st, req, info):
    fd, td, bad = _date_range(req)
    if bad:
        return bad

    def build():
        rows = list(st.presences.values())
        if fd:  # stored dates are ISO strings: they compare as the dates do
            lo, hi = fd.isoformat(), td.isoformat()
            rows = [p for p in rows if lo <= p["date"][:10] <= hi]
        uid = to_int(req.q("user_id"))
        if req.q("user_id") is not None:
            rows = [p for p in rows if p["user_id"] == uid]
        if req.q("is_home_office") is not None:
            want = truthy(req.q("is_home_office"))
            rows = [p for p in rows if bool(p.get("is_home_office")) == want]
        rows.sort(key=lambda p: (p["date"], p["from"], p["id"]))
        return [render_presence(st, p) for p in _common_filters(req, rows)]
    return paginate(st, req, cached_list(st, "presences", query_without(req.raw_query, "page"),
                                         build))


def _presence_fields(body, cur):
    new = dict(cur)
    for k in ("date", "from", "to", "is_home_office"):
        if k in body:
            new[k] = body[k]
    if parse_date(new.get("date")) is None or not new.get("from"):
        return None, "date and from are required"
    try:
        f, t = hhmm_minutes(new["from"]), hhmm_minutes(new.get("to"))
    except ValueError:
        return None, "from/to must be HH:MM"
    if t is not None and t <= f:
        return None, "to must be after from"
    new["is_home_office"] = bool(new.get("is_home_office", False))
    new["to"] = new.get("to") or None
    return new, None


def create_presence(st, req, info):
    uid, bad = _acting_user(st, req, info)
    if bad:
        return bad
    body = _body(req)
    if body is None:
        return merr(422, "invalid JSON body")
    new, msg = _presence_fields(body, {"user_id": uid})
    if msg:
        return merr(422, msg)
    new["id"] = st.next_id("presences", 700001)
    new["created_at"] = new["updated_at"] = iso_utc()
    st.presences[new["id"]] = new
    return jresp(200, render_presence(st, new))


def get_presence(st, req, info, pid):
    p = st.presences.get(int(pid))
    return jresp(200, render_presence(st, p)) if p else merr(404, "Not found")


def update_presence(st, req, info, pid):
    cur = st.presences.get(int(pid))
    if cur is None:
        return merr(404, "Not found")
    body = _body(req)
    if body is None:
        return merr(422, "invalid JSON body")
    new, msg = _presence_fields(body, cur)
    if msg:
        return merr(422, msg)
    new["updated_at"] = iso_utc()
    st.presences[cur["id"]] = new
    return jresp(200, render_presence(st, new))


def delete_presence(st, req, info, pid):
    if st.presences.pop(int(pid), None) is None:
        return merr(404, "Not found")
    return Resp(204)


# ---- schedules ----------------------------------------------------------------------

def render_schedule(st, s):
    code = int(s["absence_code"])
    return {"id": s["id"], "date": s["date"], "comment": s.get("comment", ""),
            "am": s.get("am", True), "pm": s.get("pm", True), "symbol": s.get("symbol"),
            "assignment": {"id": 900 + code, "name": ABSENCES.get(code, "Absence"),
                           "code": str(code), "customer_name": "Acme GmbH", "color": "#BBB",
                           "type": "Absence"},
            "user": _user_ref(st, s["user_id"]),
            "created_at": s.get("created_at"), "updated_at": s.get("updated_at")}


def list_schedules(st, req, info):
    fd, td, bad = _date_range(req)
    if bad:
        return bad

    def build():
        rows = list(st.schedules.values())
        if fd:
            lo, hi = fd.isoformat(), td.isoformat()
            rows = [s for s in rows if lo <= s["date"][:10] <= hi]
        if req.q("user_id") is not None:
            uid = to_int(req.q("user_id"))
            rows = [s for s in rows if s["user_id"] == uid]
        codes = {to_int(c) for c in req.qlist("absence_code")}
        if codes:
            rows = [s for s in rows if int(s["absence_code"]) in codes]
        rows.sort(key=lambda s: (s["date"], s["user_id"], s["id"]))
        return [render_schedule(st, s) for s in _common_filters(req, rows)]
    return paginate(st, req, cached_list(st, "schedules", query_without(req.raw_query, "page"),
                                         build))


def _schedule_fields(st, body, cur):
    new = dict(cur)
    for k in ("date", "absence_code", "user_id", "am", "pm", "comment", "symbol"):
        if k in body:
            new[k] = body[k]
    if parse_date(new.get("date")) is None:
        return None, "date is required (YYYY-MM-DD)"
    if to_int(new.get("absence_code")) not in ABSENCES:
        return None, "absence_code must be one of 1-5"
    new["absence_code"] = to_int(new["absence_code"])
    if to_int(new.get("user_id")) not in st.moco_users:
        return None, "user not found"
    new["user_id"] = to_int(new["user_id"])
    new["am"] = truthy(new.get("am", True))
    new["pm"] = truthy(new.get("pm", True))
    new["comment"] = new.get("comment") or ""
    return new, None


def create_schedule(st, req, info):
    body = _body(req)
    if body is None:
        return merr(422, "invalid JSON body")
    uid = body.get("user_id")
    if uid is None or req.header("X-IMPERSONATE-USER-ID") is not None:
        uid, bad = _acting_user(st, req, info)
        if bad:
            return bad
    new, msg = _schedule_fields(st, body, {"user_id": uid})
    if msg:
        return merr(422, msg)
    clash = [s for s in st.schedules.values()
             if s["user_id"] == new["user_id"] and s["date"] == new["date"]]
    if clash and not truthy(body.get("overwrite", False)):
        return merr(422, "An absence already exists for this user and date")
    for s in clash:
        del st.schedules[s["id"]]
    new["id"] = st.next_id("schedules", 800001)
    new["created_at"] = new["updated_at"] = iso_utc()
    st.schedules[new["id"]] = new
    return jresp(200, render_schedule(st, new))


def get_schedule(st, req, info, sid):
    s = st.schedules.get(int(sid))
    return jresp(200, render_schedule(st, s)) if s else merr(404, "Not found")


def update_schedule(st, req, info, sid):
    cur = st.schedules.get(int(sid))
    if cur is None:
        return merr(404, "Not found")
    body = _body(req)
    if body is None:
        return merr(422, "invalid JSON body")
    new, msg = _schedule_fields(st, body, cur)
    if msg:
        return merr(422, msg)
    new["updated_at"] = iso_utc()
    st.schedules[cur["id"]] = new
    return jresp(200, render_schedule(st, new))


def delete_schedule(st, req, info, sid):
    if st.schedules.pop(int(sid), None) is None:
        return merr(404, "Not found")
    return Resp(204)


def session(st, req, info):
    uid = info["user_id"]
    return jresp(200, {"id": uid, "uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, "moco:%s" % uid))})


def _body(req):
    try:
        body = req.json()
    except BadBody:
        return None
    return body if isinstance(body, dict) else None


ROUTES = [
    R("GET", r"/users", list_users),
    R("GET", r"/users/presences", list_presences),
    R("POST", r"/users/presences", create_presence),
    R("GET", r"/users/presences/(\d+)", get_presence),
    R("PUT", r"/users/presences/(\d+)", update_presence),
    R("DELETE", r"/users/presences/(\d+)", delete_presence),
    R("GET", r"/users/(\d+)", get_user),
    R("GET", r"/schedules", list_schedules),
    R("POST", r"/schedules", create_schedule),
    R("GET", r"/schedules/(\d+)", get_schedule),
    R("PUT", r"/schedules/(\d+)", update_schedule),
    R("DELETE", r"/schedules/(\d+)", delete_schedule),
    R("GET", r"/session", session),
]


def handle(st, req):
    if not st.rate_ok("moco", st.config["moco_rate"], float(st.config["moco_window_s"])):
        return merr(429, "Too Many Requests")
    info, bad = _auth(st, req)
    if bad:
        return bad
    if req.method != "GET" and info.get("read_only"):
        return merr(403, "This API key is read-only")
    bound = [(m, rx, (lambda f: lambda r, *g: f(st, r, info, *g))(f)) for m, rx, f in ROUTES]
    req.path = req.path.rstrip("/") or "/"
    return dispatch(bound, req, lambda: merr(404, "Not found"),
                    lambda: merr(405, "Method not allowed"))
