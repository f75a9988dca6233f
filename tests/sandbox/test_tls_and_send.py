"""The sandbox over TLS, state-file persistence, and the `send` webhook CLI
against a small recording HTTPS receiver."""
import http.server
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading

import pytest

import signing
from conftest import SANDBOX, start_sandbox, stop_sandbox


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl CLI not available")
    d = tmp_path_factory.mktemp("tls")
    cert, key = str(d / "cert.pem"), str(d / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=20)
    return cert, key


def test_tls_sandbox(certs, tmp_path):
    cert, key = certs
    state = str(tmp_path / "state.json")
    sb = start_sandbox(["--tls-cert", cert, "--tls-key", key, "--state-file", state], cafile=cert)
    try:
        assert sb.info["base_url"].startswith("https://127.0.0.1:")
        s, h, d = sb.j("POST", "/personio/v1/auth",
                       {"client_id": "demo-client", "client_secret": "demo-secret"})
        assert s == 200
        s, h, d = sb.moco("GET", "/users/presences?from=2026-01-01&to=2026-12-31")
        assert s == 200 and h["link"].startswith("<https://127.0.0.1:")
        # a client that does not trust the CA fails the handshake
        plain = ssl.create_default_context()
        with pytest.raises(ssl.SSLError):
            import http.client
            c = http.client.HTTPSConnection("127.0.0.1", sb.port, timeout=5, context=plain)
            c.request("GET", "/_control/health")
        sb.ctl("POST", "/fixtures", {"personio_employees": [{"email": "kept@acme.example"}]})
    finally:
        stop_sandbox(sb)
    saved = json.load(open(state))
    assert "kept@acme.example" in {e["email"] for e in saved["employees"]}
    assert "demo-secret" in json.dumps(saved["_credentials"]) and oct(os.stat(state).st_mode)[-3:] == "600"
    sb = start_sandbox(["--state-file", state])
    try:
        assert sb.ctl("GET", "/lookup?email=kept@acme.example")["personio_id"]
    finally:
        stop_sandbox(sb)


class _Receiver(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.got.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        status = 401 if self.path.endswith("/reject") else 202
        out = json.dumps({"event_id": "1", "status": "queued"}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


@pytest.fixture(scope="module")
def receiver(certs):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*certs)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.got = []
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()


def send(receiver, certs, *args, env=None, path="/webhooks/acme/personio"):
    target = "https://127.0.0.1:%d%s" % (receiver.server_address[1], path)
    receiver.got.clear()
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([sys.executable, SANDBOX, "send", "--target", target, "--cafile", certs[0]]
                       + list(args), capture_output=True, text=True, timeout=20, env=e)
    return p, receiver.got


def test_send_personio(receiver, certs):
    p, got = send(receiver, certs, "personio", "employment.updated", "--person-id", "1003",
                  env={"SANDBOX_PERSONIO_TOKEN": "Bearer tok-123"})
    assert p.returncode == 0 and p.stdout.startswith("HTTP 202")
    assert "tok-123" not in p.stdout + p.stderr
    (_path, hdrs, body), = got
    assert hdrs["authorization"] == "Bearer tok-123"
    env = json.loads(body)
    assert env["event_name"] == "employment.updated" and env["payload"] == {"person": {"id": "1003"}}
    assert set(env) == {"company_id", "event_name", "occurred_at", "payload", "meta"}
    p, got = send(receiver, certs, "personio", "person.deleted", "--person-id", "7",
                  "--payload", "id", "--numeric-id", "--token", "t")
    assert json.loads(got[0][2])["payload"] == {"id": 7}


def test_send_moco_and_standard(receiver, certs):
    body = '{"id":982237015,"date":"2026-11-16","from":"09:00","to":"12:30"}'
    p, got = send(receiver, certs, "moco", "Presence", "update", "--json", body,
                  env={"SANDBOX_MOCO_KEY": "1d608b9d72219b90ff2393a1d3ee0ac0"}, path="/webhooks/acme/moco")
    assert p.returncode == 0
    (_path, hdrs, raw), = got
    assert raw.decode() == body and hdrs["x-moco-target"] == "Presence" and hdrs["x-moco-event"] == "update"
    assert signing.verify_moco(["1d608b9d72219b90ff2393a1d3ee0ac0"], raw, hdrs["x-moco-signature"])
    assert len(hdrs["x-moco-timestamp"]) == 13 and hdrs["x-moco-user-id"] and hdrs["x-moco-account-url"]
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    p, got = send(receiver, certs, "standard", "--secret", secret, "--json", '{"type":"x"}')
    assert p.returncode == 0
    (_path, hdrs, raw), = got
    assert signing.verify_standard([secret], hdrs, raw) == "ok"


def test_send_non_2xx_exit_code(receiver, certs):
    p, _got = send(receiver, certs, "personio", "person.created", "--person-id", "1",
                   "--token", "x", path="/webhooks/acme/reject")
    assert p.returncode == 1 and p.stdout.startswith("HTTP 401")
    p, _got = send(receiver, certs, "personio", "person.created", "--person-id", "1")
    assert p.returncode != 0 and "SANDBOX_PERSONIO_TOKEN" in p.stderr


def test_send_person_created_by_email(receiver, certs, sb):
    p, got = send(receiver, certs, "--sandbox", sb.base, "person.created", "jonas.becker@acme.example",
                  "--token", "x")
    assert p.returncode == 0, p.stderr
    env = json.loads(got[0][2])
    assert env["event_name"] == "person.created" and env["payload"] == {"person": {"id": "1003"}}
