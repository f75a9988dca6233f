"""Control API under /_control (loopback only, no auth): recorded requests,
fault injection, state dump, reset, fixtures, Slack inbox, config.
"""
import datetime as _dt

from . import scim, seed
from .state import DEFAULT_CONFIG
from .util import BadBody, R, Resp, dispatch, jresp, parse_date, to_int, truthy

SYSTEMS = ("personio", "moco", "scim", "platform", "slack")

# fixture key -> (state collection, normaliser)
FIXTURES = [
    ("personio_employees", "employees", seed.norm_employee),
    ("personio_time_offs", "time_offs", seed.norm_time_off),
    ("personio_attendances", "attendances", seed.norm_attendance),
    ("moco_users", "moco_users", seed.norm_moco_user),
    ("moco_presences", "presences", seed.norm_presence),
    ("moco_schedules", "schedules", seed.norm_schedule),
    ("scim_users", "scim_users", None),
    ("scim_groups", "scim_groups", None),
    ("platform_delegations", "delegations", seed.norm_delegation),
]
FIXTURE_KEYS = {k: coll for k, coll, _ in FIXTURES}


def cerr(status, msg):
    return jresp(status, {"error": msg})


def _body(req):
    if not req.body.strip():
        return {}
    try:
        body = req.json()
    except BadBody as e:
        raise ValueError("invalid JSON: %s" % e) from None
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body


# ---- requests & faults ---------------------------------------------------------------

def get_requests(st, req):
    since = to_int(req.q("since_id"), 0)
    system, method, prefix = req.q("system"), req.q("method"), req.q("path_prefix")
    out = [r for r in st.requests if r["id"] > since
           and (not system or r["system"] == system)
           and (not method or r["method"] == method.upper())
           and (not prefix or r["path"].startswith(prefix))]
    return jresp(200, out)


def clear_requests(st, req):
    n = len(st.requests)
    st.requests.clear()
    return jresp(200, {"cleared": n})


def add_fault(st, req):
    f = _body(req)
    if f.get("system") not in SYSTEMS:
        raise ValueError("system must be one of %s" % ", ".join(SYSTEMS))
    status = f.get("status")
    if status is not None and (not isinstance(status, int) or not (status == 0 or 100 <= status < 600)):
        raise ValueError("status must be 0 (hang), an HTTP status, or null (delay only)")
    times = f.get("times", 1)
    if times is not None and (not isinstance(times, int) or times < 1):
        raise ValueError("times must be a positive integer or null (forever)")
    fault = {"id": st.next_fault_id, "system": f["system"],
             "method": (f.get("method") or "").upper() or None,
             "path_prefix": f.get("path_prefix") or None, "status": status,
             "retry_after": f.get("retry_after"), "delay_ms": int(f.get("delay_ms") or 0),
             "body": f.get("body"), "headers": dict(f.get("headers") or {}),
             "content_type": f.get("content_type"), "times": times, "hits": 0,
             "apply": bool(f.get("apply")), "body_bytes": int(f.get("body_bytes") or 0)}
    st.next_fault_id += 1
    st.faults.append(fault)
    return jresp(201, fault)


def take_fault(st, system, method, path):
    """Returns the first matching fault (consuming one use) or None. Caller holds the lock."""
    for f in st.faults:
        if f["system"] != system or (f["method"] and f["method"] != method):
            continue
        if f["path_prefix"] and not path.startswith(f["path_prefix"]):
            continue
        f["hits"] += 1
        if f["times"] is not None:
            f["times"] -= 1
            if f["times"] <= 0:
                st.faults.remove(f)
        return dict(f)
    return None


def delete_fault(st, req, fid=None):
    before = len(st.faults)
    st.faults[:] = [f for f in st.faults if fid is not None and f["id"] != int(fid)]
    if fid is not None and before == len(st.faults):
        return cerr(404, "no such fault")
    return jresp(200, {"deleted": before - len(st.faults)})


# ---- state, reset, config ------------------------------------------------------------------

def dump_state(st, req):
    out = st.data_dump()
    out["scim_users"] = [scim.render_user(st, u, req.root + "/scim/v2") for u in
                         sorted(st.scim_users.values(), key=lambda u: u["_seq"])]
    out["scim_groups"] = [scim.render_group(g, req.root + "/scim/v2") for g in
                          sorted(st.scim_groups.values(), key=lambda g: g["_seq"])]
    out["config"] = dict(st.config)
    out["faults"] = list(st.faults)
    out["slack_inbox"] = list(st.slack_inbox)
    out["credentials"] = {"personio_client_ids": sorted(st.personio_clients),
                          "moco_keys": len(st.moco_keys), "platform_tokens": len(st.platform_tokens),
                          "personio_live_tokens": len(st.personio_tokens)}
    return jresp(200, out)


def reset(st, req):
    body = _body(req)
    today = parse_date(body.get("today")) if body.get("today") else None
    if body.get("today") and today is None:
        raise ValueError("today must be YYYY-MM-DD")
    name = body.get("seed", "demo")
    if name not in ("demo", "empty"):
        raise ValueError("seed must be demo or empty")
    st.reset(name, today)
    return jresp(200, {"seed": name, "today": st.today.isoformat()})


def set_config(st, req):
    body = _body(req)
    for key, val in body.items():
        if key not in DEFAULT_CONFIG:
            raise ValueError("unknown config key %s" % key)
        if key == "personio_token_mode" and val not in ("stable", "rotate"):
            raise ValueError("personio_token_mode must be stable or rotate")
        if key == "slack_mode" and str(val) not in ("ok", "429", "410"):
            raise ValueError("slack_mode must be ok, 429 or 410")
        if isinstance(DEFAULT_CONFIG[key], int) and not isinstance(DEFAULT_CONFIG[key], bool):
            if not isinstance(val, int) or val < 1:
                raise ValueError("%s must be a positive integer" % key)
        st.config[key] = truthy(val) if isinstance(DEFAULT_CONFIG[key], bool) else (
            str(val) if key == "slack_mode" else val)
    st.reset_rates()
    return jresp(200, dict(st.config))


def revoke(st, req):
    body = _body(req)
    if body.get("system", "personio") != "personio":
        raise ValueError("only personio tokens can be revoked")
    n = len(st.personio_tokens)
    st.personio_tokens.clear()
    return jresp(200, {"revoked": n})


def lookup(st, req):
    email = (req.q("email") or "").lower()
    emp = next((e for e in st.employees.values() if (e.get("email") or "").lower() == email), None)
    mu = next((u for u in st.moco_users.values() if (u.get("email") or "").lower() == email), None)
    su = next((u for u in st.scim_users.values() if u["userName"].lower() == email), None)
    if not (emp or mu or su):
        return cerr(404, "no such email")
    return jresp(200, {"email": email, "personio_id": emp and emp["id"],
                       "moco_user_id": mu and mu["id"], "scim_user_id": su and su["id"]})


# ---- fixtures ------------------------------------------------------------------------------

def _generate(st, key, n, today):
    out = []
    for i in range(1, n + 1):
        if key == "personio_employees":
            out.append({"first_name": "Gen", "last_name": "%04d" % i,
                        "email": "gen%04d@gen.example" % i,
                        "team": ("Backend", "Frontend", "Support", "Sales")[i % 4]})
        elif key == "personio_time_offs":
            emp = min(st.employees) if st.employees else None
            day = (today + _dt.timedelta(days=i)).isoformat()
            out.append({"employee_id": emp, "start_date": day, "end_date": day})
        elif key == "moco_users":
            out.append({"firstname": "Gen", "lastname": "%04d" % i, "email": "gen%04d@gen.example" % i})
        elif key in ("moco_presences", "moco_schedules"):
            uid = min(st.moco_users) if st.moco_users else None
            day = (today - _dt.timedelta(days=i) if key == "moco_presences"
                   else today + _dt.timedelta(days=i)).isoformat()
            out.append({"user_id": uid, "date": day, "from": "09:00", "to": "17:00"}
                       if key == "moco_presences" else {"user_id": uid, "date": day,
                                                        "absence_code": 4})
        elif key == "scim_users":
            out.append({"email": "gen%04d@gen.example" % i, "given_name": "Gen",
                        "family_name": "%04d" % i})
        else:
            raise ValueError("cannot generate %s" % key)
    return out


def _store(st, key, coll_name, norm, item):
    coll = getattr(st, coll_name)
    if key == "scim_users":
        body = seed.scim_user_body(st, item)
        coll.pop(body.get("id"), None)
        return scim.new_user(st, body)["id"]
    if key == "scim_groups":
        members = [st.scim_users[m]["userName"] if m in st.scim_users else m
                   for m in item.get("members", [])]
        old = next((g for g in coll.values() if g["displayName"] == item["displayName"]), None)
        if old:
            del coll[old["id"]]
        return seed.add_scim_group(st, item["displayName"], members)["id"]
    rec = norm(st, item)
    coll[rec["id"]] = rec
    return rec["id"]


def fixtures(st, req):
    body = _body(req)
    replace = body.get("mode", "merge") == "replace"
    gen = body.get("generate") or {}
    unknown = set(body) - set(FIXTURE_KEYS) - {"mode", "generate", "delete", "update",
                                               "credentials", "slack_hooks"}
    if unknown:
        raise ValueError("unknown fixture keys: %s" % ", ".join(sorted(unknown)))
    updated = _update(st, body.get("update") or {})
    for key, ids in (body.get("delete") or {}).items():
        coll = getattr(st, FIXTURE_KEYS[key])
        for i in ids:
            coll.pop(i, None)
    created = {}
    if "company" in gen:  # {"company": N, "presence_days": D}: the benchmark's big company
        created["company"] = seed.generate_company(st, int(gen["company"]), st.today,
                                                   int(gen.get("presence_days", 10)))
    for key, coll_name, norm in FIXTURES:
        if key not in body and key not in gen:
            continue
        if replace:
            getattr(st, coll_name).clear()
        items = list(body.get(key) or []) + _generate(st, key, int(gen.get(key, 0)), st.today)
        created[key] = [_store(st, key, coll_name, norm, it) for it in items]
    cred = body.get("credentials") or {}
    st.personio_clients.update(cred.get("personio_clients") or {})
    st.moco_keys.update(cred.get("moco_keys") or {})
    st.platform_tokens.update(cred.get("platform_tokens") or [])
    st.slack_hooks.update(body.get("slack_hooks") or [])
    out = {"created": created}
    if updated:
        out["updated"] = updated
    return jresp(200, out)


# Fields that say "this record changed" and are bumped by an update.
_TOUCH = {"employees": "last_modified_at", "time_offs": "updated_at", "attendances": "updated_at",
          "moco_users": "updated_at", "presences": "updated_at", "schedules": "updated_at"}


def _update(st, spec):
    """{"personio_employees": [{"id": 1021, "termination_date": null}]} changes only the
    fields given (as HR editing a record would), then normalises the record again."""
    norms = {k: (coll, norm) for k, coll, norm in FIXTURES}
    done = {}
    for key, items in spec.items():
        if key not in norms or norms[key][1] is None:
            raise ValueError("cannot update %s" % key)
        coll_name, norm = norms[key]
        coll = getattr(st, coll_name)
        for item in items:
            rid = to_int(item.get("id")) if coll_name != "delegations" else item.get("id")
            if rid not in coll:
                raise ValueError("%s: no record with id %r" % (key, item.get("id")))
            rec = dict(coll[rid])
            rec.update(item)
            rec["id"] = rid
            if coll_name in _TOUCH:
                rec[_TOUCH[coll_name]] = None
            coll[rid] = norm(st, rec)
            done.setdefault(key, []).append(rid)
    return done


def handle(st, req):
    routes = [
        R("GET", r"/health", lambda r: jresp(200, {"ok": True})),
        R("GET", r"/requests", lambda r: get_requests(st, r)),
        R("DELETE", r"/requests", lambda r: clear_requests(st, r)),
        R("GET", r"/faults", lambda r: jresp(200, list(st.faults))),
        R("POST", r"/faults", lambda r: add_fault(st, r)),
        R("DELETE", r"/faults", lambda r: delete_fault(st, r)),
        R("DELETE", r"/faults/(\d+)", lambda r, i: delete_fault(st, r, i)),
        R("GET", r"/state", lambda r: dump_state(st, r)),
        R("POST", r"/reset", lambda r: reset(st, r)),
        R("POST", r"/fixtures", lambda r: fixtures(st, r)),
        R("GET", r"/slack", lambda r: jresp(200, list(st.slack_inbox))),
        R("DELETE", r"/slack", lambda r: (st.slack_inbox.clear(), jresp(200, {}))[1]),
        R("GET", r"/config", lambda r: jresp(200, dict(st.config))),
        R("POST", r"/config", lambda r: set_config(st, r)),
        R("POST", r"/revoke", lambda r: revoke(st, r)),
        R("GET", r"/lookup", lambda r: lookup(st, r)),
    ]
    req.path = req.path.rstrip("/") or "/"
    try:
        resp = dispatch(routes, req, lambda: cerr(404, "unknown control route"),
                        lambda: cerr(405, "method not allowed"))
    except (ValueError, KeyError, TypeError) as e:
        return cerr(400, "%s: %s" % (type(e).__name__, e))
    if req.method != "GET":
        st.dirty = True
        st.gen = getattr(st, "gen", 0) + 1  # cached list answers are stale now
    return resp if isinstance(resp, Resp) else cerr(500, "internal")
