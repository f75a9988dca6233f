"""
Hostile input (issue 13, items 2 and 6): what the webhook listener answers to
oversize bodies and header blocks, malformed and hostile JSON, wrong content
types, duplicate and missing headers; that a thousand slowloris connections do
not stall service for an honest sender; that upstreams answering garbage or huge
bodies fail the job cleanly with a message and a retry; that writes which are not
idempotent are read back instead of repeated blindly; that the test.* handlers
are off unless configured; and that rosterctl lists an empty set cleanly.
Every case ends with the daemon still serving (and the sanitizer check at
teardown finding nothing).
"""
import json
import socket
import ssl
import subprocess
import sys
import time
import uuid

import pytest

import helpers as H

SLOWLORIS = H.ROOT / "tests" / "integration" / "slowloris.py"


def assert_queued(r):
    assert r.status == 202, r
    assert r.json()["status"] == "queued"
    return r.json()["event_id"]


def still_serving(d, stack):
    assert_queued(H.post_personio(d, "acme", H.personio_body(), stack["acme"].token))


def stored_with(pg, marker):
    return pg.query("SELECT count(*) FROM events WHERE body LIKE %s", (f"%{marker}%",))[0][0]


def raw_exchange(d, data_chunks, timeout=20):
    """Sends the chunks over one verified TLS connection while reading what comes back
    (the server may answer and close before it has read them all). One thread, a
    non-blocking socket: an SSL object must not be used from two threads at once."""
    import selectors
    raw = socket.create_connection(("127.0.0.1", d.port), timeout=timeout)
    s = H.tls_context(d.ca).wrap_socket(raw, server_hostname="127.0.0.1")
    s.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    pending = b"".join(data_chunks)
    sent, got = 0, b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not _answer_complete(got):
            sel.select(0.2)
            if sent < len(pending):
                try:
                    sent += s.send(pending[sent:sent + 65536])
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                    pass
                except (OSError, ssl.SSLError):
                    sent = len(pending) + 1  # the server closed: stop writing, keep reading
            if sent >= len(pending):
                sel.modify(s, selectors.EVENT_READ)
            try:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                pass
            except (OSError, ssl.SSLError):
                break
    finally:
        sel.close()
        s.close()
    return got, min(sent, len(pending))


def _answer_complete(got):
    head, sep, rest = got.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = [ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length:")]
    return not length or len(rest) >= int(length[0].split(b":")[1])


def status_of(answer):
    line = answer.split(b"\r\n", 1)[0]
    parts = line.split()
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


# --------------------------------------------------------------------------- bodies and headers

@pytest.mark.slow
def test_10_mib_body_is_413_and_not_stored(daemon, stack):
    marker = uuid.uuid4().hex
    body = json.dumps({"event_name": "test.big", "marker": marker, "pad": "x" * (10 << 20)})
    head = (f"POST /webhooks/acme/personio HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: {stack['acme'].token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    raw = body.encode()
    answer, sent = raw_exchange(daemon, [head] + [raw[i:i + 65536] for i in range(0, len(raw), 65536)])
    assert status_of(answer) == 413, answer[:300]
    assert stored_with(stack.pg, marker) == 0
    still_serving(daemon, stack)


@pytest.mark.slow
def test_10_mib_header_block_is_refused_and_service_goes_on(daemon, stack):
    head = b"POST /webhooks/acme/personio HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    line = b"X-Pad: " + b"a" * 1000 + b"\r\n"
    chunks = [head] + [line * 64] * 160  # 160 x 64 x ~1 KiB = 10 MiB of headers
    t0 = time.monotonic()
    answer, sent = raw_exchange(daemon, chunks)
    # The listener stops reading at 32 KiB of headers, answers 400 and closes.
    assert status_of(answer) == 400, answer[:300]
    assert b"Connection: close" in answer
    assert sent < 10 << 20, "the server read the whole 10 MiB block"
    assert time.monotonic() - t0 < 10
    still_serving(daemon, stack)


def test_one_huge_header_line_is_refused(daemon, stack):
    r = H.post_personio(daemon, "acme", H.personio_body(), stack["acme"].token,
                        headers={"X-Long": "b" * 40000})
    assert r.status == 400, r
    still_serving(daemon, stack)


# --------------------------------------------------------------------------- bodies that are not JSON

HOSTILE_BODIES = {
    "not_json": (b"event_name=person.created", "body is not valid JSON"),
    "truncated": (b'{"event_name": "person.created", "payload": {', "body is not valid JSON"),
    "trailing_garbage": (b'{"event_name": "person.created"} {}', "body is not valid JSON"),
    "non_utf8": (b'{"event_name": "person.created", "x": "\xff\xfe"}', "body is not valid JSON"),
    "overlong_utf8": (b'{"event_name": "person.created", "x": "\xc0\xaf"}',
                      "body is not valid JSON"),
    "nul_byte": (b'{"event_name": "person.created", "x": "a\x00b"}', "body is not valid JSON"),
    "deep_nesting": (b'{"event_name": "x", "a": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                     "body is not valid JSON"),
    "single_quotes": (b"{'event_name': 'person.created'}", "body is not valid JSON"),
    "empty": (b"", "body is not valid JSON"),
    "no_event_name": (b'{"payload": {"id": 1}}', "event_name is required"),
    "event_name_not_string": (b'{"event_name": 7}', "event_name is required"),
    "event_name_hostile": (b'{"event_name": "person.created\\n{\\"level\\":\\"error\\"}"}',
                           "event_name has unexpected characters"),
    "array_root": (b'[{"event_name": "person.created"}]', "event_name is required"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_BODIES))
def test_hostile_json_bodies_get_400_with_the_reason(daemon, stack, case):
    body, msg = HOSTILE_BODIES[case]
    before = stack.pg.query("SELECT count(*) FROM events")[0][0]
    r = H.post_personio(daemon, "acme", body, stack["acme"].token)
    assert r.status == 400, r
    assert r.json() == {"error": msg}
    assert stack.pg.query("SELECT count(*) FROM events")[0][0] == before
    still_serving(daemon, stack)


def test_deep_but_reasonable_nesting_is_accepted(daemon, stack):
    body = b'{"event_name": "test.deep", "a": ' + b"[" * 40 + b"]" * 40 + b"}"
    assert_queued(H.post_personio(daemon, "acme", body, stack["acme"].token))


@pytest.mark.parametrize("ctype,status", [
    ("application/json", 202), ("application/json; charset=utf-8", 202),
    ("Application/JSON", 202), ("application/cloudevents+json", 202), (None, 202),
    ("text/plain", 415), ("application/x-www-form-urlencoded", 415),
    ("multipart/form-data; boundary=x", 415), ("application/jsonp", 415), ("+json", 415)])
def test_content_type(daemon, stack, ctype, status):
    body = H.to_bytes(H.personio_body(event_name="test.ctype"))
    h = {"Authorization": stack["acme"].token}
    if ctype is not None:
        h["Content-Type"] = ctype
    r = H.https_request(daemon, "POST", "/webhooks/acme/personio", body, h)
    assert r.status == status, r
    if status == 415:
        assert r.json() == {"error": "Content-Type must be application/json"}


def test_content_type_is_checked_after_authentication(daemon, stack):
    r = H.https_request(daemon, "POST", "/webhooks/acme/personio", b"x=1",
                        {"Authorization": "wrong", "Content-Type": "text/plain"})
    assert r.status == 401 and r.json() == {"error": "unauthorized"}


# --------------------------------------------------------------------------- headers

def _raw_headers_request(d, path, headers, body):
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}",
             "Connection: close"] + [f"{k}: {v}" for k, v in headers]
    answer, _ = raw_exchange(d, [("\r\n".join(lines) + "\r\n\r\n").encode() + body])
    return status_of(answer), answer.split(b"\r\n\r\n", 1)[-1]


def test_duplicate_authorization_is_400(daemon, stack):
    acme = stack["acme"]
    body = H.to_bytes(H.personio_body())
    st, text = _raw_headers_request(daemon, "/webhooks/acme/personio",
                                    [("Authorization", "wrong"), ("Authorization", acme.token),
                                     ("Content-Type", "application/json")], body)
    assert st == 400 and json.loads(text) == {"error": "duplicate Authorization header"}
    # The same delivery with the header once is accepted: it was the duplicate.
    st, _ = _raw_headers_request(daemon, "/webhooks/acme/personio",
                                 [("Authorization", acme.token),
                                  ("Content-Type", "application/json")], body)
    assert st == 202


@pytest.mark.parametrize("dup", ["X-Moco-Signature", "X-Moco-Target", "X-Moco-Event"])
def test_duplicate_moco_headers_are_400(daemon, stack, dup):
    acme = stack["acme"]
    body = H.to_bytes(H.moco_body())
    hs = [("Content-Type", "application/json"), ("X-Moco-Target", "Presence"),
          ("X-Moco-Event", "create"), ("X-Moco-Signature", H.moco_signature(acme.moco_key, body))]
    hs.append((dup, dict(hs)[dup]))  # the very same value twice is still two headers
    st, text = _raw_headers_request(daemon, "/webhooks/acme/moco", hs, body)
    assert st == 400 and json.loads(text) == {"error": f"duplicate {dup} header"}


def test_duplicate_standard_webhook_id_is_400(daemon, stack):
    relay = stack["relay"]
    body = H.to_bytes(H.personio_body())
    ts = int(time.time())
    sig = H.sw_signature(relay.sw_secrets["personio"][0], "msg_a", ts, body)
    st, text = _raw_headers_request(daemon, "/webhooks/relay/personio",
                                    [("webhook-id", "msg_a"), ("webhook-id", "msg_b"),
                                     ("webhook-timestamp", str(ts)), ("webhook-signature", sig),
                                     ("Content-Type", "application/json")], body)
    assert st == 400 and json.loads(text) == {"error": "duplicate webhook-id header"}


def test_missing_headers(daemon, stack):
    acme = stack["acme"]
    r = H.post_personio(daemon, "acme", H.personio_body(), None)
    assert r.status == 401 and r.json() == {"error": "unauthorized"}
    r = H.post_moco(daemon, "acme", H.moco_body(), acme.moco_key, signature=False)
    assert r.status == 401 and r.json() == {"error": "unauthorized"}
    r = H.post_moco(daemon, "acme", H.moco_body(), acme.moco_key, target=None)
    assert r.status == 400
    r = H.post_standard(daemon, "relay", H.personio_body(), stack["relay"].sw_secrets["personio"][0],
                        omit=("webhook-timestamp",))
    assert r.status == 401


def test_garbage_request_lines_do_not_crash(daemon, stack):
    for junk in (b"\x16\x03\x01\x00\x00\r\n\r\n", b"GET\r\n\r\n", b"POST / HTTP/9.9\r\n\r\n",
                 b"POST /webhooks/acme/personio HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                 b"POST /webhooks/acme/personio HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                 b"POST /webhooks/acme/personio HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                 b"POST /webhooks/%00/personio HTTP/1.1\r\n\r\n",
                 b"POST /webhooks/" + b"a" * 70000 + b"/personio HTTP/1.1\r\n\r\n"):
        answer, _ = raw_exchange(daemon, [junk], timeout=15)
        st = status_of(answer)
        assert st is None or 400 <= st < 500, (junk[:60], answer[:200])
    still_serving(daemon, stack)


# --------------------------------------------------------------------------- slowloris

@pytest.mark.slow
def test_slowloris_does_not_stall_other_senders(rosterd, make_conf, stack, tls):
    """1,000 connections each sending a byte every 2 s; an honest sender keeps getting
    its 202 within 1 s, and rosterd cuts every slow connection at header_timeout."""
    d = rosterd(make_conf(header_timeout_seconds=6))
    n, seconds = 1000, 20
    attacker = subprocess.Popen([sys.executable, str(SLOWLORIS), "127.0.0.1", str(d.port),
                                 str(tls.ca), str(n), str(seconds), "2.0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)  # let the ramp-up reach a thousand open connections
        latencies, statuses = [], []
        end = time.monotonic() + seconds - 6
        while time.monotonic() < end:
            t0 = time.monotonic()
            r = H.post_personio(d, "acme", H.personio_body(event_name="test.slowloris"),
                                stack["acme"].token, timeout=10)
            latencies.append(time.monotonic() - t0)
            statuses.append(r.status)
            time.sleep(0.1)
        out, err = attacker.communicate(timeout=seconds + 60)
    finally:
        if attacker.poll() is None:
            attacker.kill()
            attacker.wait(10)
    stats = json.loads(out.strip().splitlines()[-1])
    latencies.sort()
    print(f"\nslowloris: {stats}; honest sender: {len(latencies)} requests, "
          f"p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms")
    assert stats["max_open"] >= 0.9 * n, stats
    assert stats["cut"] >= n, stats  # every slow connection was cut off ...
    assert stats["longest_s"] < 6 + 4, stats  # ... at header_timeout_seconds (+ one round)
    assert set(statuses) == {202}, statuses
    assert latencies[-1] < 1.0, latencies[-5:]
    assert d.running()


# --------------------------------------------------------------------------- test handlers

def test_test_handlers_are_off_by_default(rosterd, make_conf, stack):
    d = rosterd(make_conf(test_handlers=None))
    body = H.personio_body(event_name="test.script.sleep")
    body["script"] = {"sleep_ms": 60000, "fail": "permanent"}
    ev = int(assert_queued(H.post_personio(d, "acme", body, stack["acme"].token)))
    H.wait_for(lambda: stack.pg.query("SELECT status, note FROM events WHERE id = %s", (ev,))[0]
               == ("done", "test handlers are off"), 15, what="test.script finished as off")
    noop = int(assert_queued(H.post_personio(d, "acme", H.personio_body(event_name="test.x"),
                                             stack["acme"].token)))
    H.wait_for(lambda: stack.pg.query("SELECT status, note FROM events WHERE id = %s",
                                      (noop,))[0] == ("done", "test handlers are off"), 15,
               what="noop finished as off")


# --------------------------------------------------------------------------- rosterctl on nothing

def test_connection_list_on_an_empty_database(make_conf, tmp_path):
    cluster = H.PgCluster()
    try:
        conf = make_conf(cluster)
        H.rosterctl(conf, "migrate")
        res = H.rosterctl(conf, "connection", "list", "--json")
        assert res.stdout == "[]\n"
        res = H.rosterctl(conf, "connection", "list")
        assert res.stdout.splitlines()[0].split() == ["NAME", "TIMEZONE", "PERSONIO", "MOCO",
                                                      "UPDATED_AT"]
        assert res.stderr == "rosterctl: no connections yet: add one with " \
                             "`rosterctl connection apply FILE`\n"
        res = H.rosterctl(conf, "connection", "show", "acme", check=False)
        assert res.returncode == 1 and res.stderr == 'rosterctl: connection "acme" not found\n'
        for args in (("events", "list"), ("jobs", "list"), ("secrets", "status")):
            res = H.rosterctl(conf, *args, "--json")
            assert res.stdout == "[]\n", args
    finally:
        cluster.destroy()


# --------------------------------------------------------------------------- hostile upstreams

class UpstreamProbe:
    """build/upstream_probe against the sandbox with fresh credentials (see test_clients.py)."""

    def __init__(self, sandbox):
        import secrets
        self.sb = sandbox
        self.creds = {"client_id": "cid-" + secrets.token_hex(4),
                      "client_secret": "pcs-" + secrets.token_hex(16),
                      "moco_key": "mk-" + secrets.token_hex(16),
                      "platform_token": "pt-" + secrets.token_hex(16),
                      "slack_path": "T7/B7/" + secrets.token_hex(12)}
        b, c = sandbox.base, self.creds
        self.env = {"PERSONIO_BASE": b + "/personio", "PERSONIO_CLIENT_ID": c["client_id"],
                    "PERSONIO_CLIENT_SECRET": c["client_secret"], "MOCO_BASE": b + "/moco/api/v1",
                    "MOCO_KEY": c["moco_key"], "SCIM_BASE": b + "/scim/v2",
                    "PLATFORM_BASE": b + "/platform/api/v1", "PLATFORM_TOKEN": c["platform_token"],
                    "SLACK_URL": b + "/slack/services/" + c["slack_path"],
                    "PROBE_CA_FILE": str(sandbox.tls.ca), "PROBE_LOG_LEVEL": "info"}

    def reset(self):
        c = self.creds
        self.sb.call("POST", "/reset", {"seed": "demo"})
        self.sb.fixtures({"credentials": {
            "personio_clients": {c["client_id"]: c["client_secret"]},
            "moco_keys": {c["moco_key"]: {"user_id": 9001, "read_only": False}},
            "platform_tokens": [c["platform_token"]]}, "slack_hooks": [c["slack_path"]]})
        self.sb.call("DELETE", "/requests")

    def __call__(self, *args, env=None, timeout=90):
        e = dict(self.env, **(env or {}))
        res = H.run([H.binary("upstream_probe"), *[str(a) for a in args]], timeout=timeout,
                    check=False, env=H.child_env(e))
        assert res.returncode in (0, 1), f"probe exit {res.returncode}: {res.stderr[-2000:]}"
        for s in self.creds.values():
            if len(s) > 12:
                assert s not in res.stdout and s not in res.stderr
        out = json.loads(res.stdout)
        out["_stderr"] = res.stderr
        return out


@pytest.fixture(scope="module")
def sandbox(tls, tmp_path_factory):
    from world import Sandbox
    sb = Sandbox(tls, tmp_path_factory.mktemp("hostile-sandbox"))
    yield sb
    sb.stop()


@pytest.fixture
def up(sandbox):
    p = UpstreamProbe(sandbox)
    p.reset()
    return p


# (system, probe args, path of the POST, how to count what exists upstream)
CREATES = {
    "scim": (("scim", "create", "nina.new@acme.example", "Nina", "New", "4711"), "/Users",
             lambda st: [u for u in st["scim_users"] if u["userName"] == "nina.new@acme.example"]),
    "moco": (("moco", "schedule-create", "9001", "2027-03-03", "4", "true", "true",
              "[personio:77]"), "/schedules",
             lambda st: [s for s in st["schedules"] if s["date"] == "2027-03-03"
                         and s["user_id"] == 9001]),
    "personio": (("personio", "attendance-create", "1001", "2027-03-03", "09:00", "12:00",
                  "[moco:88]"), "/v1/company/attendances",
                 lambda st: [a for a in st["attendances"] if a["date"] == "2027-03-03"
                             and a["employee"] == 1001]),
}


def writes_to(sb, system, path):
    return [r for r in sb.requests(system) if r["method"] == "POST" and r["path"] == path]


@pytest.mark.parametrize("system", sorted(CREATES))
def test_create_whose_answer_is_lost_is_read_back_not_repeated(up, sandbox, system):
    args, path, existing = CREATES[system]
    sandbox.fault(system=system, method="POST", path_prefix=path, status=502, apply=True)
    out = up(*args)
    assert out["ok"], out
    made = existing(sandbox.state())
    assert len(made) == 1, made                        # exactly one thing upstream ...
    assert len(writes_to(sandbox, system, path)) == 1  # ... from exactly one POST
    got_id = out["result"]["id"]
    assert str(got_id) == str(made[0]["id"])           # the id came from reading back
    assert "read back" in out["_stderr"]


@pytest.mark.parametrize("system", sorted(CREATES))
def test_create_that_failed_is_read_back_then_sent_again(up, sandbox, system):
    args, path, existing = CREATES[system]
    sandbox.fault(system=system, method="POST", path_prefix=path, status=503)
    out = up(*args)
    assert out["ok"], out
    assert len(existing(sandbox.state())) == 1
    posts = writes_to(sandbox, system, path)
    assert [p["status"] for p in posts] == [503, {"scim": 201}.get(system, 200)]


def test_create_whose_connection_hangs_after_applying_is_read_back(up, sandbox):
    args, path, existing = CREATES["scim"]
    sandbox.fault(system="scim", method="POST", path_prefix=path, status=0, delay_ms=2500,
                  apply=True)
    out = up(*args, env={"PROBE_TIMEOUT_MS": "1000"})
    assert out["ok"], out
    assert len(existing(sandbox.state())) == 1 and len(writes_to(sandbox, "scim", path)) == 1


def test_create_when_reading_back_fails_is_transient_and_says_so(up, sandbox):
    args, path, existing = CREATES["scim"]
    sandbox.fault(system="scim", method="POST", path_prefix=path, status=502, apply=True)
    sandbox.fault(system="scim", method="GET", path_prefix="/Users", status=500, times=None)
    out = up(*args, env={"PROBE_BUDGET_S": "4"})
    assert not out["ok"]
    e = out["error"]
    assert e["permanent"] is False and e["outcome_unknown"] is True, e
    assert "HTTP 502" in e["msg"] and "reading back whether it was applied failed" in e["msg"]
    assert len(writes_to(sandbox, "scim", path)) == 1  # never sent blindly a second time


def test_slack_5xx_is_not_repeated_blindly(up, sandbox):
    sandbox.fault(system="slack", method="POST", status=500)
    out = up("slack", "post", "New hire: Nina New")
    assert not out["ok"]
    e = out["error"]
    assert e["permanent"] is False and e["outcome_unknown"] is True and e["http_status"] == 500
    assert "not repeated: it may have been applied upstream" in e["msg"]
    assert len(sandbox.requests("slack")) == 1
    # A 429 says nothing was done: that one is retried.
    sandbox.fault(system="slack", method="POST", status=429, retry_after=1)
    assert up("slack", "post", "after a 429")["ok"]


def test_delegation_retry_is_safe_through_its_external_id(up, sandbox):
    sandbox.fault(system="platform", method="POST", path_prefix="/approval-delegations",
                  status=502, apply=True)
    out = up("platform", "delegate", "jonas.becker@acme.example", "ceo@acme.example",
             "2027-03-01T23:00:00Z", "2027-03-06T23:00:00Z", "personio:30001")
    assert out["ok"] and out["result"]["existed"] is True, out
    dels = [d for d in sandbox.state()["delegations"] if d.get("external_id") == "personio:30001"]
    assert len(dels) == 1 and out["result"]["id"] == dels[0]["id"]
    assert [r["status"] for r in writes_to(sandbox, "platform", "/approval-delegations")] == [502, 409]


def test_huge_answer_fails_the_call_cleanly(up, sandbox):
    sandbox.fault(system="personio", method="GET", path_prefix="/v1/company/employees",
                  status=200, body_bytes=40 << 20)
    out = up("personio", "employees")
    assert not out["ok"]
    assert out["error"]["permanent"] is False
    assert "answer larger than 32 MiB, cut off" in out["error"]["msg"]


# Job level: the handler of a real event meets the hostile upstream, fails with the
# reason, and the retry (the fault is gone by then) finishes the event.
# (A hang is a timeout: the clients' tests show it transient; at the job level it would
# cost the job's 120 s budget.)
JOB_FAULTS = {
    "garbage": ({"status": 200, "body": "<html>oops</html>"}, "invalid JSON"),
    "truncated_json": ({"status": 200, "body": '{"success":true,"data":{"type":"Empl'},
                       "invalid JSON"),
    "huge": ({"status": 200, "body_bytes": 40 << 20}, "answer larger than 32 MiB"),
}


@pytest.mark.slow
@pytest.mark.parametrize("how", sorted(JOB_FAULTS))
def test_hostile_upstream_fails_the_job_with_a_message_and_a_retry(world, how):
    world.reset()
    fault, want = JOB_FAULTS[how]
    world.sandbox.fault(system="personio", method="GET", path_prefix="/v1/company/employees/1021",
                        **fault)
    ev = world.personio("employment.updated", 1021)
    row = world.wait_event(ev, timeout=60)
    assert row["status"] == "done", row
    attempts = world.query("SELECT outcome, error FROM event_attempts WHERE event_id = %s"
                           " ORDER BY id", (ev,))
    assert attempts[0][0] == "failed" and want in attempts[0][1], attempts
    assert attempts[-1][0] == "done"


def test_no_write_goes_out_that_the_audit_table_cannot_record(up, sandbox, pg):
    """The audit row is written before the request: with no audit table to write to,
    nothing is sent, and the error says why (transient: the job retries)."""
    dbname = "noaudit_" + uuid.uuid4().hex[:8]
    pg.create_db(dbname)  # no migrations: upstream_audit does not exist
    args, path, existing = CREATES["scim"]
    out = up(*args, env={"PROBE_DATABASE_URL": pg.url_for(dbname), "PROBE_REASON": "event:1"})
    assert not out["ok"]
    assert out["error"]["permanent"] is False
    assert "scim POST /Users: not sent: the audit row cannot be written" in out["error"]["msg"]
    assert writes_to(sandbox, "scim", path) == [] and existing(sandbox.state()) == []
