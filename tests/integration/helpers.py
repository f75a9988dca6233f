"""
Plumbing for the rosterd integration tests: a throwaway Postgres cluster, a
test CA, config files, the daemon as a subprocess, rosterctl, and HTTPS
senders that sign deliveries the way Personio, MOCO and Standard Webhooks
relays do. Signatures are computed here (hmac/hashlib), never by the daemon's
own code, so a bug there cannot hide itself. Every subprocess has a timeout.
"""
import atexit
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                     "ERROR: UndefinedBehaviorSanitizer")

# Standard Webhooks spec test vector (shared/specs/upstream-apis.md section 4).
SW_SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_SPEC_TS = 1614265330
SW_SPEC_BODY = b'{"test": 2432232314}'
SW_SPEC_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


# Everything still alive when the interpreter exits (pytest killed by the run.sh timeout,
# SIGTERM from CI) is ended here, so no daemon or cluster outlives the run.
_live_daemons = []
_live_clusters = []


@atexit.register
def _reap():
    for proc in _live_daemons:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    for cluster in _live_clusters:
        cluster.destroy()


class HarnessError(AssertionError):
    """A harness step failed; an AssertionError so pytest reports it as a failure."""


def build_dir():
    return Path(os.environ.get("ROSTERD_BUILD_DIR") or (ROOT / "build")).resolve()


def binary(name):
    path = build_dir() / name
    if not os.access(path, os.X_OK):
        raise HarnessError(f"{path} is missing or not executable: build it first "
                           f"(ROSTERD_BUILD_DIR={build_dir()})")
    return str(path)


def child_env(extra=None):
    """Environment for spawned binaries: no stray ROSTERD_* overrides, sanitizer defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROSTERD_")}
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    if extra:
        env.update(extra)
    return env


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, timeout=60, check=True, **kw):
    """subprocess.run with a hard timeout and output captured as text."""
    try:
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        raise HarnessError(f"timed out after {timeout}s: {cmd}\nstdout: {e.stdout}\n"
                           f"stderr: {e.stderr}") from None
    if check and res.returncode != 0:
        raise HarnessError(f"exit {res.returncode}: {cmd}\nstdout: {res.stdout}\n"
                           f"stderr: {res.stderr}")
    return res


# --------------------------------------------------------------------------- Postgres

class PgCluster:
    """A throwaway Postgres 15 cluster on a free loopback port (root runs it as `postgres`)."""

    USER = "rosterd"
    DB = "rosterd"

    def __init__(self):
        self.as_root = os.geteuid() == 0
        # Not under pytest's tmp dir: that is 0700 root-only and `postgres` must reach it.
        self.dir = Path(tempfile.mkdtemp(prefix="rosterd-pg-"))
        self.data = self.dir / "data"
        self.logfile = self.dir / "postgres.log"
        self.port = free_port()
        self.running = False
        _live_clusters.append(self)
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o700)
        self._pg([str(PG_BIN / "initdb"), "-D", str(self.data), "-E", "UTF8", "--auth=trust",
                  "-U", self.USER, "--no-sync", "--locale=C"], timeout=120)
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"\n# rosterd integration tests\nport = {self.port}\n"
                    f"listen_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{self.dir}'\n"
                    "fsync = on\nsynchronous_commit = on\nmax_connections = 100\n"
                    "shared_buffers = 32MB\nlogging_collector = off\n")
        self.start()
        self.create_db(self.DB)

    def _pg(self, cmd, timeout=90):
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return run(cmd, timeout=timeout, cwd=str(self.dir))

    @property
    def url(self):
        return self.url_for(self.DB)

    def url_for(self, dbname):
        return f"postgresql://127.0.0.1:{self.port}/{dbname}?user={self.USER}"

    def start(self):
        self._pg([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.logfile),
                  "-w", "-t", "60", "start"], timeout=90)
        self.running = True

    def stop(self):
        self._pg([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60",
                  "stop"], timeout=90)
        self.running = False

    def connect(self, dbname=None):
        return psycopg2.connect(host="127.0.0.1", port=self.port, user=self.USER,
                                dbname=dbname or self.DB, connect_timeout=10)

    def query(self, sql, params=None, dbname=None):
        c = self.connect(dbname)
        try:
            with c.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else None
        finally:
            c.close()

    def create_db(self, name):
        c = self.connect("postgres")
        try:
            c.autocommit = True
            with c.cursor() as cur:
                cur.execute(f"CREATE DATABASE {name}")
        finally:
            c.close()

    def destroy(self):
        if self in _live_clusters:
            _live_clusters.remove(self)
        if self.running:
            try:
                self.stop()
            except AssertionError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------- TLS

class TestCA:
    """A CA and server certificates for 127.0.0.1/localhost made with the openssl CLI."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = self.dir / "ca.pem"
        self.ca_key = self.dir / "ca.key"
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(self.ca_key),
             "-out", str(self.ca), "-days", "3", "-subj", "/CN=rosterd test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        self.cert = self.dir / "server.pem"
        self.key = self.dir / "server.key"
        self.issue(self.cert, self.key, serial=1001)

    def issue(self, cert, key, serial, cn="localhost"):
        """Writes a new key and a CA-signed server certificate with this serial."""
        cert, key = Path(cert), Path(key)
        csr = cert.with_suffix(".csr")
        ext = cert.with_suffix(".ext")
        ext.write_text("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                       "extendedKeyUsage=serverAuth\n"
                       "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={cn}"])
        run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(self.ca), "-CAkey",
             str(self.ca_key), "-set_serial", str(serial), "-days", "2", "-out", str(cert),
             "-extfile", str(ext)])
        csr.unlink()
        ext.unlink()
        os.chmod(key, 0o600)
        return cert, key


def cert_fingerprint(pem_path):
    der = ssl.PEM_cert_to_DER_cert(Path(pem_path).read_text())
    return hashlib.sha256(der).hexdigest()


# --------------------------------------------------------------------------- config

class Conf:
    """A written rosterd.conf; values holds what was written (key -> string)."""

    def __init__(self, path, values, lines):
        self.path = Path(path)
        self.values = values
        self.lines = lines

    def port(self, key):
        return int(self.values[key].rsplit(":", 1)[1])

    @property
    def listen_port(self):
        return self.port("listen")

    @property
    def admin_port(self):
        return self.port("admin_listen")


def write_conf(directory, values, extra_lines=()):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["# rosterd.conf written by tests/integration", ""]
    lines += [f"{k} = {v}" for k, v in values.items() if v is not None]
    lines += list(extra_lines)
    path = directory / "rosterd.conf"
    path.write_text("\n".join(lines) + "\n")
    return Conf(path, {k: v for k, v in values.items() if v is not None}, lines)


def rosterctl(conf, *args, check=True, env=None, timeout=60):
    """Runs build/rosterctl -c conf ARGS; returns the CompletedProcess."""
    cmd = [binary("rosterctl"), "-c", str(conf.path), *[str(a) for a in args]]
    return run(cmd, timeout=timeout, check=check, env=child_env(env))


def events_list(conf, *filters, limit=10000):
    res = rosterctl(conf, "events", "list", "--json", "--limit", str(limit), *filters)
    try:
        data = json.loads(res.stdout)
    except ValueError as e:
        raise HarnessError(f"events list --json is not JSON ({e}): {res.stdout[:500]!r}")
    if not isinstance(data, list):
        raise HarnessError(f"events list --json is not an array: {res.stdout[:200]!r}")
    return data


# --------------------------------------------------------------------------- daemon

class Daemon:
    """build/rosterd -c conf as a subprocess with stderr in a file."""

    def __init__(self, conf, ca, workdir, args=(), env=None):
        self.conf = conf
        self.ca = str(ca)
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.args = list(args)
        self.env = env
        self.stderr_path = self.dir / f"rosterd-{conf.listen_port}.stderr"
        self.stdout_path = self.dir / f"rosterd-{conf.listen_port}.stdout"
        self.proc = None
        self.returncodes = []

    @property
    def port(self):
        return self.conf.listen_port

    @property
    def admin_port(self):
        return self.conf.admin_port

    @property
    def pid(self):
        return self.proc.pid

    def start(self, wait=True, timeout=20):
        with open(self.stderr_path, "ab") as err, open(self.stdout_path, "ab") as out:
            self.proc = subprocess.Popen([binary("rosterd"), "-c", str(self.conf.path),
                                          *self.args], stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, env=child_env(self.env),
                                         start_new_session=True)
        _live_daemons.append(self.proc)
        if wait:
            self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout=20):
        """Waits for /healthz 200, then /readyz 200, then for the intake to route requests
        (an unknown connection answers 404 once the connection table is loaded; before
        that the intake honestly answers 503). The probe stores nothing."""
        deadline = time.monotonic() + timeout
        steps = [("/healthz 200", lambda: admin_get(self, "/healthz", timeout=2).status == 200),
                 ("/readyz 200", lambda: admin_get(self, "/readyz", timeout=2).status == 200),
                 ("intake routing (404 for an unknown connection)",
                  lambda: https_request(self, "POST", "/webhooks/harness-probe/personio", b"{}",
                                        {"Content-Type": "application/json"},
                                        timeout=2).status == 404)]
        for what, probe in steps:
            last = None
            while True:
                if self.proc.poll() is not None:
                    raise HarnessError(f"rosterd exited with {self.proc.returncode} during "
                                       f"start-up:\n{self.log_tail()}")
                try:
                    if probe():
                        break
                    last = "not yet"
                except (OSError, http.client.HTTPException) as e:
                    last = repr(e)
                if time.monotonic() > deadline:
                    raise HarnessError(f"rosterd: no {what} within {timeout}s ({last}):\n"
                                       f"{self.log_tail()}")
                time.sleep(0.05)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, expect=0, timeout=15):
        """Sends sig, waits up to timeout and asserts the exit code (None: any)."""
        if self.proc is None or self.proc.poll() is not None:
            rc = None if self.proc is None else self.proc.returncode
        else:
            self.proc.send_signal(sig)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise HarnessError(f"rosterd did not exit within {timeout}s of signal {sig}:\n"
                                   f"{self.log_tail()}") from None
        self.returncodes.append(rc)
        if expect is not None and rc != expect:
            raise HarnessError(f"rosterd exit code {rc}, expected {expect}:\n{self.log_tail()}")
        return rc

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        rc = self.proc.wait(15)
        self.returncodes.append(rc)
        return rc

    def log_bytes(self):
        try:
            return self.stderr_path.read_bytes()
        except FileNotFoundError:
            return b""

    def log_text(self):
        return self.log_bytes().decode("utf-8", errors="replace")

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def sanitizer_reports(self):
        text = self.log_text()
        return [m for m in SANITIZER_MARKERS if m in text]


def run_expect_exit(conf, timeout=30, env=None):
    """Runs rosterd that is expected to stop by itself (start-up failure)."""
    try:
        return subprocess.run([binary("rosterd"), "-c", str(conf.path)],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, env=child_env(env))
    except subprocess.TimeoutExpired:
        raise HarnessError(f"rosterd kept running for {timeout}s with {conf.path}") from None


# --------------------------------------------------------------------------- HTTP clients

class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError:
            raise HarnessError(f"answer {self.status} is not JSON: {self.body[:300]!r}") from None

    def __repr__(self):
        return f"<Resp {self.status} {self.body[:200]!r}>"


_ctx_lock = threading.Lock()
_ctx_cache = {}


def tls_context(ca):
    with _ctx_lock:
        ctx = _ctx_cache.get(str(ca))
        if ctx is None:
            ctx = ssl.create_default_context(cafile=str(ca))  # verification on
            _ctx_cache[str(ca)] = ctx
        return ctx


def to_bytes(body):
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body, separators=(",", ":")).encode()


def https_request(d, method, path, body=b"", headers=None, timeout=30, chunked=False):
    """One request on a fresh verified TLS connection to the daemon's webhook listener."""
    if chunked:
        return _https_chunked(d, method, path, body, headers or {}, timeout)
    conn = http.client.HTTPSConnection("127.0.0.1", d.port, context=tls_context(d.ca),
                                       timeout=timeout)
    try:
        conn.request(method, path, body=body if method != "GET" or body else None,
                     headers=headers or {})
        r = conn.getresponse()
        return Resp(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def _https_chunked(d, method, path, body, headers, timeout):
    """A chunked request written in one go, so a server that answers early (413) and
    closes finds the whole request already received and the answer is not lost."""
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{d.port}",
            "Transfer-Encoding: chunked", "Connection: close"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    chunks = b"".join(b"%x\r\n" % len(body[i:i + 1000]) + body[i:i + 1000] + b"\r\n"
                      for i in range(0, len(body), 1000))
    data = ("\r\n".join(head) + "\r\n\r\n").encode() + chunks + b"0\r\n\r\n"
    raw = socket.create_connection(("127.0.0.1", d.port), timeout=timeout)
    with tls_context(d.ca).wrap_socket(raw, server_hostname="127.0.0.1") as s:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may answer and close before reading everything
        r = http.client.HTTPResponse(s, method=method)
        r.begin()
        return Resp(r.status, r.getheaders(), r.read())


def peer_cert_fingerprint(d, timeout=10):
    """SHA-256 of the certificate the listener presents on a new TLS connection."""
    with socket.create_connection(("127.0.0.1", d.port), timeout=timeout) as raw:
        with tls_context(d.ca).wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return hashlib.sha256(s.getpeercert(binary_form=True)).hexdigest()


def admin_get(d, path, token=None, timeout=10, method="GET"):
    conn = http.client.HTTPConnection("127.0.0.1", d.admin_port, timeout=timeout)
    try:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, headers=headers)
        r = conn.getresponse()
        return Resp(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def personio_body(event_name="person.updated", person_id=None, pad=0):
    """A Personio v2 envelope that is unique per call (a fresh payload id)."""
    body = {"company_id": "123", "event_name": event_name,
            "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "payload": {"id": person_id or str(uuid.uuid4())},
            "meta": {"delivery": uuid.uuid4().hex}}
    if pad:
        body["meta"]["pad"] = "x" * pad
    return body


def moco_body(pad=0):
    body = {"id": secrets.randbelow(10**9), "date": "2026-03-02", "from": "08:00",
            "to": "12:30", "user": {"id": 933590696, "firstname": "Ada", "lastname": "L"},
            "created_at": "2026-03-02T12:30:00Z", "tag": uuid.uuid4().hex}
    if pad:
        body["pad"] = "x" * pad
    return body


def moco_signature(key, body):
    return hmac.new(key.encode("ascii"), to_bytes(body), hashlib.sha256).hexdigest()


def sw_signature(secret, msg_id, ts, body):
    raw = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    key = base64.b64decode(raw)
    signed = f"{msg_id}.{ts}.".encode() + to_bytes(body)
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def new_sw_secret():
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def post_personio(d, conn, body, token, headers=None, **kw):
    h = {"Content-Type": "application/json"}
    if token is not None:
        h["Authorization"] = token
    h.update(headers or {})
    return https_request(d, "POST", f"/webhooks/{conn}/personio", to_bytes(body), h, **kw)


def post_moco(d, conn, body, key, target="Presence", event="create", signature=None,
              headers=None, **kw):
    """signature: None computes it with key; False omits the header; a string is sent as is."""
    raw = to_bytes(body)
    h = {"Content-Type": "application/json", "X-Moco-Timestamp": str(int(time.time() * 1000)),
         "X-Moco-User-Id": "933590696", "X-Moco-Account-Url": "https://acme.mocoapp.com"}
    if target is not None:
        h["X-Moco-Target"] = target
    if event is not None:
        h["X-Moco-Event"] = event
    if signature is None:
        signature = moco_signature(key, raw)
    if signature is not False:
        h["X-Moco-Signature"] = signature
    h.update(headers or {})
    return https_request(d, "POST", f"/webhooks/{conn}/moco", raw, h, **kw)


def post_standard(d, conn, body, secret, msg_id=None, ts=None, source="personio",
                  signature=None, omit=(), headers=None, **kw):
    """Standard Webhooks delivery; signature None signs with secret; omit drops headers."""
    raw = to_bytes(body)
    msg_id = msg_id or ("msg_" + uuid.uuid4().hex)
    ts = int(time.time()) if ts is None else ts
    if signature is None:
        signature = sw_signature(secret, msg_id, ts, raw)
    h = {"Content-Type": "application/json", "webhook-id": msg_id,
         "webhook-timestamp": str(ts), "webhook-signature": signature}
    for k in omit:
        h.pop(k, None)
    h.update(headers or {})
    return https_request(d, "POST", f"/webhooks/{conn}/{source}", raw, h, **kw)


def wait_for(pred, timeout, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise HarnessError(f"{what} not met within {timeout}s (last: {last!r})")


def parse_metrics(text):
    """Prometheus text -> list of (name, {label: value}, float)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)', line)
        if not m:
            continue
        labels = dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                 m.group(3) or ""))
        out.append((m.group(1), labels, float(m.group(4))))
    return out
