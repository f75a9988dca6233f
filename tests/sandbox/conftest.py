"""Fixtures for the sandbox's own tests: a sandbox subprocess on a free loopback
port (killed at the end), a small HTTP client and a per-test hard timeout."""
import http.client
import json
import os
import select
import signal
import ssl
import subprocess
import sys
import urllib.parse

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SANDBOX_DIR = os.path.join(ROOT, "deploy", "sandbox")
SANDBOX = os.path.join(SANDBOX_DIR, "sandbox.py")
TODAY = "2026-11-18"  # a Wednesday; the demo seed is relative to it
if SANDBOX_DIR not in sys.path:
    sys.path.insert(0, SANDBOX_DIR)


class Sandbox:
    def __init__(self, proc, info, cafile=None):
        self.proc = proc
        self.info = info
        self.base = info["base_url"]
        u = urllib.parse.urlsplit(self.base)
        self.https = u.scheme == "https"
        self.port = u.port
        self.ctx = ssl.create_default_context(cafile=cafile) if self.https else None

    def call(self, method, path, body=None, headers=None, timeout=10):
        """-> (status, lower-cased headers dict, body bytes). body: dict/list -> JSON, str/bytes raw."""
        hdrs = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            hdrs.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode()
        if self.https:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=self.ctx)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def j(self, method, path, body=None, headers=None, expect=None):
        status, hdrs, raw = self.call(method, path, body, headers)
        if expect is not None:
            assert status == expect, (status, raw[:500])
        return status, hdrs, (json.loads(raw) if raw.strip() else None)

    def ctl(self, method, path, body=None):
        status, _h, data = self.j(method, "/_control" + path, body)
        assert status in (200, 201), (status, data)
        return data

    # convenience
    def personio_token(self):
        _s, _h, data = self.j("POST", "/personio/v1/auth",
                              {"client_id": "demo-client", "client_secret": "demo-secret"}, expect=200)
        return data["data"]["token"]

    def personio(self, method, path, token, body=None):
        return self.j(method, "/personio" + path, body, {"Authorization": "Bearer " + token})

    def moco(self, method, path, body=None, key="demo-moco-key", headers=None):
        h = {"Authorization": "Token token=" + key}
        h.update(headers or {})
        return self.j(method, "/moco/api/v1" + path, body, h)

    def scim(self, method, path, body=None, token="demo-platform-token"):
        h = {"Authorization": "Bearer " + token} if token else {}
        return self.j(method, "/scim/v2" + path, body, h)

    def platform(self, method, path, body=None, token="demo-platform-token"):
        h = {"Authorization": "Bearer " + token} if token else {}
        return self.j(method, "/platform/api/v1" + path, body, h)


def start_sandbox(extra_args=(), cafile=None):
    proc = subprocess.Popen([sys.executable, SANDBOX, "serve", "--port", "0", "--today", TODAY]
                            + list(extra_args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    ready, _, _ = select.select([proc.stdout], [], [], 10)
    if not ready:
        proc.kill()
        raise RuntimeError("sandbox did not start within 10 s")
    line = proc.stdout.readline()
    if not line:
        proc.wait(5)
        raise RuntimeError("sandbox exited: %s" % proc.stderr.read().decode())
    return Sandbox(proc, json.loads(line), cafile)


def stop_sandbox(sb):
    sb.proc.terminate()
    try:
        sb.proc.wait(5)
    except subprocess.TimeoutExpired:
        sb.proc.kill()
        sb.proc.wait(5)


@pytest.fixture(scope="session")
def sandbox_proc():
    sb = start_sandbox()
    yield sb
    stop_sandbox(sb)


@pytest.fixture
def sb(sandbox_proc):
    """The shared sandbox, reset to the demo seed before each test."""
    sandbox_proc.ctl("POST", "/reset", {"seed": "demo", "today": TODAY})
    return sandbox_proc


@pytest.fixture(autouse=True)
def hard_timeout():
    def boom(_sig, _frm):
        raise TimeoutError("test exceeded its 20 s hard timeout")
    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)
