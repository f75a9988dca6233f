"""Fake spend platform: SCIM 2.0 Users/Groups (spec §5, §8.3) and the
(the delegation API is in delegations.py). `Authorization: Bearer <token>`.
"""
import re
import secrets
import uuid

from .util import BadBody, R, Resp, cached_list, dispatch, iso_utc, jresp, to_int

SCIM_CT = "application/scim+json"
CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
ENT = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
NS = uuid.UUID("1b0e4c77-2f0d-4a3e-8d55-6a7c0c8e5f21")


def scim_id(kind, key):
    return str(uuid.uuid5(NS, "%s:%s" % (kind, key)))


def serr(status, detail, scim_type=None):
    body = {"schemas": [ERROR], "status": str(status), "detail": detail}
    if scim_type:
        body["scimType"] = scim_type
    return jresp(status, body, ctype=SCIM_CT)


def sresp(status, obj, headers=None):
    return jresp(status, obj, headers, ctype=SCIM_CT)


def _bearer_ok(st, req):
    hdr = req.header("Authorization") or ""
    if not hdr.lower().startswith("bearer "):
        return False
    tok = hdr[7:].strip()
    return any(secrets.compare_digest(tok, t) for t in st.platform_tokens)


# ---- rendering ----------------------------------------------------------------------

def group_index(st):
    """user id -> the groups it is a member of (one pass over the groups)."""
    idx = {}
    for g in st.scim_groups.values():
        for m in g.get("members", []):
            idx.setdefault(m["value"], []).append(g)
    return idx


def cached_group_index(st):
    """group_index(st), rebuilt only when a group or its member list changed. Every
    change to members either replaces the group, replaces its list or appends to it,
    so the groups, their lists (held here, so no id is reused) and the lists' lengths
    tell. Without it each PATCH of a user scanned every membership (10,000 in the
    reconciliation benchmark): ~1.5 ms of the sandbox's CPU per PATCH."""
    groups = tuple(st.scim_groups.values())
    lists = tuple(g.get("members", []) for g in groups)
    key = (groups, lists, tuple(len(m) for m in lists))
    hit = getattr(st, "scim_group_index", None)
    if hit is not None and len(hit[0][0]) == len(groups) and all(
            a is b for a, b in zip(hit[0][0], groups)) and all(
            a is b for a, b in zip(hit[0][1], lists)) and hit[0][2] == key[2]:
        return hit[1]
    idx = group_index(st)
    st.scim_group_index = (key, idx)
    return idx


def render_user(st, u, base, groups_of=None):
    out = {k: v for k, v in u.items() if not k.startswith("_")}
    out["schemas"] = [CORE, ENT] if ENT in u else [CORE]
    mine = (groups_of if groups_of is not None else cached_group_index(st)).get(u["id"], [])
    out["groups"] = [{"value": g["id"], "display": g["displayName"],
                      "$ref": "%s/Groups/%s" % (base, g["id"])} for g in mine]
    out["meta"] = {"resourceType": "User", "created": u.get("_created"),
                   "lastModified": u.get("_modified"), "location": "%s/Users/%s" % (base, u["id"])}
    return out


def render_group(g, base):
    out = {k: v for k, v in g.items() if not k.startswith("_")}
    out["schemas"] = [GROUP]
    out["members"] = [dict(m, **{"$ref": "%s/Users/%s" % (base, m["value"])})
                      for m in g.get("members", [])]
    out["meta"] = {"resourceType": "Group", "created": g.get("_created"),
                   "lastModified": g.get("_modified"), "location": "%s/Groups/%s" % (base, g["id"])}
    return out


# ---- filters --------------------------------------------------------------------------

_STR = r'"((?:[^"\\]|\\.)*)"'
FILTERS = [
    (re.compile(r"\s*(userName|externalId|id|displayName)\s+eq\s+" + _STR + r"\s*", re.I), None),
    (re.compile(r"\s*emails\[\s*value\s+eq\s+" + _STR + r"\s*\]\s*", re.I), "emails"),
    (re.compile(r"\s*emails(?:\.value)?\s+eq\s+" + _STR + r"\s*", re.I), "emails"),
]


def parse_filter(text, allowed):
    """-> (attribute, value) or None for an unsupported filter."""
    for rx, attr in FILTERS:
        m = rx.fullmatch(text)
        if not m:
            continue
        if attr is None:
            attr, val = m.group(1), m.group(2)
        else:
            val = m.group(1)
        attr = {"username": "userName", "externalid": "externalId", "id": "id",
                "displayname": "displayName", "emails": "emails"}[attr.lower()]
        if attr not in allowed:
            return None
        return attr, val.replace('\\"', '"').replace("\\\\", "\\")
    return None


def _matches(res, attr, val):
    if attr == "emails":
        return any((e.get("value") or "").lower() == val.lower() for e in res.get("emails", []))
    have = res.get(attr)
    if have is None:
        return False
    if attr in ("userName", "displayName"):  # caseExact=false
        return str(have).lower() == val.lower()
    return str(have) == val


def list_resources(st, req, coll, allowed, render):
    flt = req.q("filter")
    parsed = parse_filter(flt, allowed) if flt else None
    if flt and parsed is None:
        return serr(400, "Unsupported filter: %s" % flt, "invalidFilter")

    def build():  # rendered once per state generation, then sliced per page
        rows = sorted(coll.values(), key=lambda r: r.get("_seq", 0))
        if parsed:
            rows = [r for r in rows if _matches(r, *parsed)]
        if coll is st.scim_users and not parsed:
            idx = group_index(st)
            return [render_user(st, r, req.base, idx) for r in rows]
        return [render(r) for r in rows]
    rows = cached_list(st, "scim:%d" % id(coll), (flt, req.base), build)
    start = max(to_int(req.q("startIndex", "1"), 1), 1)
    count = to_int(req.q("count", "100"), 100)
    count = max(0, min(count, 1000))
    page = rows[start - 1:start - 1 + count]
    return sresp(200, {"schemas": [LIST], "totalResults": len(rows), "startIndex": start,
                       "itemsPerPage": len(page), "Resources": page})


# ---- users ------------------------------------------------------------------------------

def _body(req):
    try:
        body = req.json()
    except BadBody:
        return None
    return body if isinstance(body, dict) else None


def _name_taken(st, user_name, except_id=None):
    return any(u["userName"].lower() == user_name.lower() and u["id"] != except_id
               for u in st.scim_users.values())


def new_user(st, body):
    """Stores a user from a SCIM body (also used by fixtures). Returns the record."""
    uid = body.get("id") or scim_id("user", "%s:%d" % (body["userName"].lower(), st.seq("scim_user")))
    rec = {k: v for k, v in body.items() if k not in ("schemas", "meta", "groups", "id")}
    rec["id"] = uid
    rec["active"] = bool(rec.get("active", True))
    rec.setdefault("emails", [{"value": body["userName"], "type": "work", "primary": True}])
    rec["_seq"] = st.seq("scim_order")
    rec["_created"] = rec["_modified"] = iso_utc()
    if ENT in rec and isinstance(rec[ENT].get("manager"), dict):
        _set_manager(st, rec, rec[ENT]["manager"].get("value"))
    st.scim_users[uid] = rec
    return rec


def create_user(st, req):
    body = _body(req)
    if body is None:
        return serr(400, "Body must be a JSON object", "invalidSyntax")
    if not isinstance(body.get("userName"), str) or not body["userName"].strip():
        return serr(400, "userName is required", "invalidValue")
    if _name_taken(st, body["userName"]):
        return serr(409, "userName %s is already taken" % body["userName"], "uniqueness")
    body.pop("id", None)
    rec = new_user(st, body)
    loc = "%s/Users/%s" % (req.base, rec["id"])
    return sresp(201, render_user(st, rec, req.base), [("Location", loc)])


def get_user(st, req, uid):
    u = st.scim_users.get(uid)
    return sresp(200, render_user(st, u, req.base)) if u else serr(404, "User %s not found" % uid)


def delete_user(st, req, uid):
    if st.scim_users.pop(uid, None) is None:
        return serr(404, "User %s not found" % uid)
    for g in st.scim_groups.values():
        g["members"] = [m for m in g.get("members", []) if m["value"] != uid]
    return Resp(204, ctype=SCIM_CT)


def _set_manager(st, u, mid):
    ent = u.setdefault(ENT, {})
    if mid in (None, ""):
        ent.pop("manager", None)
        return None
    m = st.scim_users.get(mid)
    if m is None:
        return "manager %s is not a known user" % mid
    ent["manager"] = {"value": mid, "$ref": "../Users/%s" % mid,
                      "displayName": m.get("displayName") or m["userName"]}
    return None


def _as_bool(v):
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    if isinstance(v, bool):
        return v
    raise ValueError("active must be a boolean")


def _apply_user_op(st, u, op, path, value):
    """Applies one PATCH operation; returns an error text or None."""
    if path is None:
        if op == "remove" or not isinstance(value, dict):
            return "a path-less operation needs an object value"
        for k, v in value.items():
            msg = _apply_user_op(st, u, op, k, v)
            if msg:
                return msg
        return None
    low = path.lower()
    ent_prefix = ENT.lower() + ":"
    if low == ENT.lower():  # {"urn:...:User": {"department": ...}}
        if not isinstance(value, dict):
            return "enterprise value must be an object"
        for k, v in value.items():
            msg = _apply_user_op(st, u, op, ENT + ":" + k, v)
            if msg:
                return msg
        return None
    if low.startswith(ent_prefix):
        attr = path[len(ent_prefix):]
        if attr.lower() == "manager":
            mid = None if op == "remove" else (value.get("value") if isinstance(value, dict) else value)
            return _set_manager(st, u, mid)
        if attr.lower() not in ("department", "costcenter", "employeenumber", "organization",
                                "division"):
            return "unsupported path %s" % path
        key = {"costcenter": "costCenter", "employeenumber": "employeeNumber"}.get(attr.lower(),
                                                                                   attr.lower())
        ent = u.setdefault(ENT, {})
        if op == "remove":
            ent.pop(key, None)
        else:
            ent[key] = value
        return None
    if low == "active":
        u["active"] = _as_bool(value)
        return None
    if low in ("displayname", "title", "externalid", "username"):
        key = {"displayname": "displayName", "externalid": "externalId",
               "username": "userName"}.get(low, low)
        if key == "userName" and (not isinstance(value, str) or _name_taken(st, value, u["id"])):
            return "userName is invalid or taken"
        if op == "remove":
            u.pop(key, None)
        else:
            u[key] = value
        return None
    if low in ("name", "name.givenname", "name.familyname"):
        name = u.setdefault("name", {})
        if low == "name":
            u["name"] = value if op != "remove" else {}
        else:
            name["givenName" if low.endswith("givenname") else "familyName"] = value
        return None
    if low == "emails":
        u["emails"] = value if op != "remove" else []
        return None
    return "unsupported path %s" % path


def patch_user(st, req, uid):
    u = st.scim_users.get(uid)
    if u is None:
        return serr(404, "User %s not found" % uid)
    body = _body(req)
    ops = body.get("Operations") if body else None
    if not isinstance(ops, list) or not ops:
        return serr(400, "PatchOp with Operations is required", "invalidSyntax")
    work = dict(u)
    work[ENT] = dict(u.get(ENT, {}))
    if isinstance(u.get("name"), dict):
        work["name"] = dict(u["name"])
    for op in ops:
        name = str(op.get("op", "")).lower() if isinstance(op, dict) else ""
        if name not in ("add", "replace", "remove"):
            return serr(400, "unsupported op %r" % (op,), "invalidSyntax")
        try:
            msg = _apply_user_op(st, work, name, op.get("path"), op.get("value"))
        except ValueError as e:
            msg = str(e)
        if msg:
            scim_type = "invalidPath" if msg.startswith("unsupported path") else "invalidValue"
            return serr(400, msg, scim_type)
    if not work[ENT]:
        work.pop(ENT)
    work["_modified"] = iso_utc()
    st.scim_users[uid] = work
    if st.config.get("scim_patch_204"):
        return Resp(204, ctype=SCIM_CT)
    return sresp(200, render_user(st, work, req.base))


# ---- groups -----------------------------------------------------------------------------

def new_group(st, body):
    gid = body.get("id") or scim_id("group", body["displayName"].lower())
    rec = {"id": gid, "displayName": body["displayName"],
           "members": [{"value": m["value"], "display": m.get("display")}
                       for m in body.get("members", [])],
           "_seq": st.seq("scim_order"), "_created": iso_utc()}
    rec["_modified"] = rec["_created"]
    st.scim_groups[gid] = rec
    return rec


def create_group(st, req):
    body = _body(req)
    if body is None or not isinstance(body.get("displayName"), str):
        return serr(400, "displayName is required", "invalidValue")
    if any(g["displayName"].lower() == body["displayName"].lower() for g in st.scim_groups.values()):
        return serr(409, "group exists", "uniqueness")
    body.pop("id", None)
    rec = new_group(st, body)
    return sresp(201, render_group(rec, req.base),
                 [("Location", "%s/Groups/%s" % (req.base, rec["id"]))])


def get_group(st, req, gid):
    g = st.scim_groups.get(gid)
    return sresp(200, render_group(g, req.base)) if g else serr(404, "Group %s not found" % gid)


_MEMBER_PATH = re.compile(r'members\[\s*value\s+eq\s+' + _STR + r'\s*\]', re.I)


def _member_values(st, value):
    vals = value if isinstance(value, list) else [value]
    out = []
    for v in vals:
        mid = v.get("value") if isinstance(v, dict) else v
        if mid not in st.scim_users:
            raise ValueError("member %s is not a known user" % mid)
        out.append(mid)
    return out


def _apply_group_op(st, g, op, path, value):
    if path is None:
        if not isinstance(value, dict):
            raise ValueError("a path-less operation needs an object value")
        for k, v in value.items():
            _apply_group_op(st, g, op, k, v)
        return
    m = _MEMBER_PATH.fullmatch(path)
    if m and op == "remove":
        g["members"] = [x for x in g["members"] if x["value"] != m.group(1)]
        return
    if path.lower() == "displayname" and op != "remove":
        g["displayName"] = value
        return
    if path.lower() != "members":
        raise KeyError(path)
    if op == "remove":
        drop = set(_member_values(st, value)) if value is not None else None
        g["members"] = [x for x in g["members"] if drop is not None and x["value"] not in drop]
        return
    ids = _member_values(st, value)
    if op == "replace":
        g["members"] = []
    have = {x["value"] for x in g["members"]}
    for mid in ids:
        if mid not in have:
            u = st.scim_users[mid]
            g["members"].append({"value": mid, "display": u.get("displayName") or u["userName"]})
            have.add(mid)


def patch_group(st, req, gid):
    g = st.scim_groups.get(gid)
    if g is None:
        return serr(404, "Group %s not found" % gid)
    body = _body(req)
    ops = body.get("Operations") if body else None
    if not isinstance(ops, list) or not ops:
        return serr(400, "PatchOp with Operations is required", "invalidSyntax")
    work = dict(g, members=list(g.get("members", [])))
    for op in ops:
        name = str(op.get("op", "")).lower() if isinstance(op, dict) else ""
        if name not in ("add", "replace", "remove"):
            return serr(400, "unsupported op %r" % (op,), "invalidSyntax")
        try:
            _apply_group_op(st, work, name, op.get("path"), op.get("value"))
        except KeyError as e:
            return serr(400, "unsupported path %s" % e.args[0], "invalidPath")
        except ValueError as e:
            return serr(400, str(e), "invalidValue")
    work["_modified"] = iso_utc()
    st.scim_groups[gid] = work
    if st.config.get("scim_patch_204"):
        return Resp(204, ctype=SCIM_CT)
    return sresp(200, render_group(work, req.base))


def scim_handle(st, req):
    if not _bearer_ok(st, req):
        return serr(401, "Authorization failure: a valid bearer token is required")
    routes = [
        R("GET", r"/Users", lambda r: list_resources(
            st, r, st.scim_users, ("userName", "externalId", "id", "emails"),
            lambda u: render_user(st, u, r.base))),
        R("POST", r"/Users", lambda r: create_user(st, r)),
        R("GET", r"/Users/([^/]+)", lambda r, i: get_user(st, r, i)),
        R("PATCH", r"/Users/([^/]+)", lambda r, i: patch_user(st, r, i)),
        R("DELETE", r"/Users/([^/]+)", lambda r, i: delete_user(st, r, i)),
        R("GET", r"/Groups", lambda r: list_resources(
            st, r, st.scim_groups, ("displayName", "id", "externalId"),
            lambda g: render_group(g, r.base))),
        R("POST", r"/Groups", lambda r: create_group(st, r)),
        R("GET", r"/Groups/([^/]+)", lambda r, i: get_group(st, r, i)),
        R("PATCH", r"/Groups/([^/]+)", lambda r, i: patch_group(st, r, i)),
    ]
    req.path = req.path.rstrip("/") or "/"
    return dispatch(routes, req, lambda: serr(404, "Not found"),
                    lambda: serr(405, "Method not allowed"))
