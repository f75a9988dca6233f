#!/usr/bin/env python3
"""rosterd sandbox CLI.

  sandbox.py serve [--port 0] [--seed demo|empty] [--today D] [--state-file F]
                   [--tls-cert C --tls-key K]
  sandbox.py send --target URL [--cafile C | --insecure] personio EVENT --person-id N [--token T]
  sandbox.py send --target URL moco TARGET EVENT --json BODY [--key K]
  sandbox.py send --target URL standard --secret whsec_... --json BODY
  sandbox.py send --target URL --sandbox URL person.created EMAIL
"""
import argparse
import datetime as _dt
import ipaddress
import json
import os
import signal
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
if __package__ in (None, ""):
    # Run as a script: import this directory as the package "sandbox".
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]
    sys.path.insert(0, os.path.dirname(HERE))

from sandbox import server, signing  # noqa: E402
from sandbox.state import State  # noqa: E402


# ---- serve ------------------------------------------------------------------------------

def _persist_loop(st, path, stop):
    while not stop.wait(1.0):
        with st.lock:
            if st.dirty:
                st.dirty = False
                st.save(path)


def cmd_serve(args):
    if not ipaddress.ip_address(args.host).is_loopback:
        print("sandbox: --host must be a loopback address", file=sys.stderr)
        return 2
    if bool(args.tls_cert) != bool(args.tls_key):
        print("sandbox: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    st = State()
    today = _dt.date.fromisoformat(args.today) if args.today else None
    st.fixed_today = today
    if args.state_file and os.path.exists(args.state_file):
        st.load(args.state_file)
    else:
        st.reset(args.seed, today)
    ctx = server.make_ssl_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    srv = server.Server(st, args.port, ctx, host=args.host, verbose=args.verbose)
    root = srv.root
    print(json.dumps({
        "port": srv.server_address[1], "base_url": root, "pid": os.getpid(),
        "tls": bool(ctx), "seed": st.seed_name, "today": st.today.isoformat(),
        "personio_base_url": root + "/personio", "moco_base_url": root + "/moco/api/v1",
        "scim_base_url": root + "/scim/v2", "platform_api_base_url": root + "/platform/api/v1",
        "slack_webhook_url": root + "/slack/services/T000/B000/XXXX",
        "control_url": root + "/_control"}), flush=True)
    stop = threading.Event()
    if args.state_file:
        threading.Thread(target=_persist_loop, args=(st, args.state_file, stop), daemon=True).start()

    def on_signal(_sig, _frm):
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        srv.serve_forever(poll_interval=0.2)
    finally:
        stop.set()
        srv.server_close()
        if args.state_file:
            with st.lock:
                st.save(args.state_file)
    return 0


# ---- send -------------------------------------------------------------------------------

def _ssl_context(args):
    if getattr(args, "insecure", False):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=getattr(args, "cafile", None))


def _post(args, url, body, headers):
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    timeout = float(getattr(args, "timeout", None) or 15)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=_ssl_context(args)) as r:
            status, text = r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as e:
        print("send: request failed: %s" % getattr(e, "reason", e), file=sys.stderr)
        return 1
    print("HTTP %d" % status)
    if text:
        print(text)
    return 0 if 200 <= status < 300 else 1


def _secret(args, attr, env):
    val = getattr(args, attr, None) or os.environ.get(env)
    if not val:
        raise SystemExit("send: give --%s or set %s" % (attr, env))
    return val


def _body_arg(text):
    if text.startswith("@"):
        with open(text[1:], "rb") as f:
            return f.read()
    return text.encode("utf-8")


def _lookup_person(sandbox_url, email, args):
    if not sandbox_url:
        raise SystemExit("send: give --sandbox URL (or set SANDBOX_URL) to look up %s" % email)
    url = sandbox_url.rstrip("/") + "/_control/lookup?" + urllib.parse.urlencode({"email": email})
    try:
        with urllib.request.urlopen(url, timeout=10, context=_ssl_context(args)) as r:
            found = json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise SystemExit("send: cannot look up %s in the sandbox: %s" % (email, e))
    if not found.get("personio_id"):
        raise SystemExit("send: %s is not a Personio employee in the sandbox" % email)
    return found["personio_id"]


def cmd_send_personio(args):
    token = _secret(args, "token", "SANDBOX_PERSONIO_TOKEN")
    pid = args.person_id
    if pid is None:
        if not args.email:
            raise SystemExit("send: give --person-id or --email (with --sandbox)")
        pid = _lookup_person(args.sandbox, args.email, args)
    pid_val = int(pid) if args.numeric_id else str(pid)
    payload = {"person": {"id": pid_val}} if args.payload == "person" else (
        {"person_id": pid_val} if args.payload == "person_id" else {"id": pid_val})
    env = {"company_id": args.company_id, "event_name": args.event,
           "occurred_at": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z",
           "payload": payload, "meta": {}}
    body = json.dumps(env).encode()
    return _post(args, args.target, body, signing.personio_headers(token))


def cmd_send_moco(args):
    key = _secret(args, "key", "SANDBOX_MOCO_KEY")
    body = _body_arg(args.json)
    hdrs = signing.moco_headers(key, args.moco_target, args.event, body, user_id=args.user_id,
                                account_url=args.account_url)
    return _post(args, args.target, body, hdrs)


def cmd_send_standard(args):
    secret = _secret(args, "secret", "SANDBOX_STANDARD_SECRET")
    body = _body_arg(args.json)
    msg_id = args.msg_id or "msg_" + uuid.uuid4().hex
    ts = args.timestamp if args.timestamp is not None else int(time.time())
    try:
        hdrs = signing.standard_headers(secret, msg_id, ts, body)
    except ValueError as e:
        raise SystemExit("send: %s" % e)
    return _post(args, args.target, body, hdrs)


def cmd_send_person_created(args):
    args.event, args.person_id, args.payload = "person.created", None, "person"
    return cmd_send_personio(args)


def _common(p, top=False):
    d = None if top else argparse.SUPPRESS
    p.add_argument("--target", default=d, help="webhook URL, e.g. https://127.0.0.1:8443/webhooks/acme/personio")
    p.add_argument("--cafile", default=d, help="CA bundle that verifies the target")
    p.add_argument("--insecure", action="store_true", default=False if top else argparse.SUPPRESS)
    p.add_argument("--sandbox", default=d if not top else os.environ.get("SANDBOX_URL"),
                   help="sandbox base URL for e-mail look-ups (or env SANDBOX_URL)")
    p.add_argument("--timeout", type=float, default=d)


def build_parser():
    ap = argparse.ArgumentParser(prog="sandbox.py", description="rosterd upstream sandbox")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("serve", help="run the fake upstreams")
    sv.add_argument("--port", type=int, default=0)
    sv.add_argument("--host", default="127.0.0.1")
    sv.add_argument("--state-file")
    sv.add_argument("--tls-cert")
    sv.add_argument("--tls-key")
    sv.add_argument("--seed", choices=("demo", "empty"), default="demo")
    sv.add_argument("--today", help="YYYY-MM-DD the demo seed is relative to (default: today)")
    sv.add_argument("--verbose", action="store_true")
    sv.set_defaults(func=cmd_serve)

    sd = sub.add_parser("send", help="deliver a signed webhook")
    _common(sd, top=True)
    ss = sd.add_subparsers(dest="kind", required=True)
    p = ss.add_parser("personio", help="Personio envelope with Authorization token")
    _common(p)
    p.add_argument("event")
    p.add_argument("--person-id")
    p.add_argument("--email", help="look the person id up in the sandbox instead")
    p.add_argument("--token", help="or env SANDBOX_PERSONIO_TOKEN")
    p.add_argument("--company-id", default="123")
    p.add_argument("--payload", choices=("person", "person_id", "id"), default="person")
    p.add_argument("--numeric-id", action="store_true", help="send the id as a JSON number")
    p.set_defaults(func=cmd_send_personio)
    p = ss.add_parser("moco", help="MOCO entity with X-Moco-Signature")
    _common(p)
    p.add_argument("moco_target", metavar="TARGET", help="Presence, Schedule, User, ...")
    p.add_argument("event", help="create, update or delete")
    p.add_argument("--json", required=True, help="body text, or @FILE")
    p.add_argument("--key", help="or env SANDBOX_MOCO_KEY")
    p.add_argument("--user-id", default="9001")
    p.add_argument("--account-url", default="acme.mocoapp.com")
    p.set_defaults(func=cmd_send_moco)
    p = ss.add_parser("standard", help="Standard Webhooks v1 signature")
    _common(p)
    p.add_argument("--secret", help="whsec_... (or env SANDBOX_STANDARD_SECRET)")
    p.add_argument("--json", required=True, help="body text, or @FILE")
    p.add_argument("--msg-id")
    p.add_argument("--timestamp", type=int)
    p.set_defaults(func=cmd_send_standard)
    p = ss.add_parser("person.created", help="person.created for the employee with EMAIL")
    _common(p)
    p.add_argument("email")
    p.add_argument("--token", help="or env SANDBOX_PERSONIO_TOKEN")
    p.add_argument("--company-id", default="123")
    p.add_argument("--numeric-id", action="store_true")
    p.set_defaults(func=cmd_send_person_created)
    return ap


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.cmd == "send" and not args.target:
        print("send: --target is required", file=sys.stderr)
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
