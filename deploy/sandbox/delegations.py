"""Fake platform approval-delegation API (DESIGN §8), mounted at /platform/api/v1.
Users are the SCIM users (referenced by SCIM id or userName); Bearer auth.
"""
from .scim import _bearer_ok, _body
from .util import R, Resp, dispatch, iso_utc, jresp, parse_ts


def perr(status, message):
    return jresp(status, {"error": message})


def _find_user(st, ref):
    if not isinstance(ref, str) or not ref:
        return None
    if ref in st.scim_users:
        return st.scim_users[ref]
    for u in st.scim_users.values():
        if u["userName"].lower() == ref.lower():
            return u
    return None


def create_delegation(st, req):
    body = _body(req)
    if body is None:
        return perr(400, "body must be a JSON object")
    for key in ("approver", "delegate", "starts_at", "ends_at"):
        if not body.get(key):
            return perr(422, "%s is required" % key)
    a, d = _find_user(st, body["approver"]), _find_user(st, body["delegate"])
    if a is None or d is None:
        return perr(422, "unknown user: %s" % (body["approver"] if a is None else body["delegate"]))
    if a["id"] == d["id"]:
        return perr(422, "approver and delegate must differ")
    s, e = parse_ts(body["starts_at"]), parse_ts(body["ends_at"])
    if s is None or e is None or e <= s:
        return perr(422, "starts_at and ends_at must be timestamps with starts_at < ends_at")
    ext = body.get("external_id")
    if ext:
        for dl in st.delegations.values():
            if dl.get("external_id") == ext:
                return jresp(409, {"error": "external_id already used", "id": dl["id"]})
    did = "dlg_%04d" % st.seq("delegation")
    rec = {"id": did, "approver": a["userName"], "delegate": d["userName"],
           "approver_id": a["id"], "delegate_id": d["id"],
           "starts_at": body["starts_at"], "ends_at": body["ends_at"],
           "reason": body.get("reason") or "", "external_id": ext, "created_at": iso_utc()}
    st.delegations[did] = rec
    return jresp(201, rec, [("Location", "%s/approval-delegations/%s" % (req.base, did))])


def list_delegations(st, req):
    rows = sorted(st.delegations.values(), key=lambda d: d["id"])
    ref = req.q("approver")
    if ref:
        u = _find_user(st, ref)
        rows = [d for d in rows if u is not None and d["approver_id"] == u["id"]]
    return jresp(200, {"data": rows})


def get_delegation(st, req, did):
    d = st.delegations.get(did)
    return jresp(200, d) if d else perr(404, "not found")


def delete_delegation(st, req, did):
    if st.delegations.pop(did, None) is None:
        return perr(404, "not found")
    return Resp(204)


def handle(st, req):
    if not _bearer_ok(st, req):
        return perr(401, "unauthorized")
    routes = [
        R("POST", r"/approval-delegations", lambda r: create_delegation(st, r)),
        R("GET", r"/approval-delegations", lambda r: list_delegations(st, r)),
        R("GET", r"/approval-delegations/([^/]+)", lambda r, i: get_delegation(st, r, i)),
        R("DELETE", r"/approval-delegations/([^/]+)", lambda r, i: delete_delegation(st, r, i)),
    ]
    req.path = req.path.rstrip("/") or "/"
    return dispatch(routes, req, lambda: perr(404, "not found"),
                    lambda: perr(405, "method not allowed"))
