"""
Fixtures for the rosterd integration tests: a real Postgres, a test CA, config
files, connections applied with rosterctl, and rosterd daemons whose stderr is
checked for sanitizer reports at teardown. Binaries come from
ROSTERD_BUILD_DIR (default <repo>/build).
"""
import json
import os
import secrets
import signal
import uuid

import pytest

import helpers as H


# --------------------------------------------------------------------------- basics

@pytest.fixture(scope="session")
def pg():
    cluster = H.PgCluster()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def tls(tmp_path_factory):
    return H.TestCA(tmp_path_factory.mktemp("tls"))


class SecretKey:
    def __init__(self, path, raw):
        self.path = path
        self.raw = raw
        self.hex = raw.hex()


@pytest.fixture(scope="session")
def secret_key(tmp_path_factory):
    raw = secrets.token_bytes(32)
    path = tmp_path_factory.mktemp("key") / "secret.key"
    path.write_bytes(raw + b"\n")
    os.chmod(path, 0o600)
    return SecretKey(path, raw)


class AdminToken:
    def __init__(self, path, token):
        self.path = path
        self.token = token


@pytest.fixture(scope="session")
def admin_token(tmp_path_factory):
    token = secrets.token_urlsafe(32)
    path = tmp_path_factory.mktemp("admin") / "admin.token"
    path.write_text(token + "\n")
    os.chmod(path, 0o600)
    return AdminToken(path, token)


@pytest.fixture(scope="session")
def make_conf(tmp_path_factory, pg, tls, secret_key, admin_token):
    """make_conf(pg=None, extra_lines=(), **overrides) -> Conf; an override of None drops the key."""

    def make(pg_cluster=None, extra_lines=(), **overrides):
        values = {
            "listen": f"127.0.0.1:{H.free_port()}",
            "admin_listen": f"127.0.0.1:{H.free_port()}",
            "tls_cert": str(tls.cert),
            "tls_key": str(tls.key),
            "database_url": (pg_cluster or pg).url,
            "secret_key_file": str(secret_key.path),
            "admin_token_file": str(admin_token.path),
            "log_format": "json",
            # The suites drive test.script and noop jobs; production keeps them off.
            "test_handlers": "on",
        }
        values.update({k: (None if v is None else str(v)) for k, v in overrides.items()})
        return H.write_conf(tmp_path_factory.mktemp("conf"), values, extra_lines)

    return make


# --------------------------------------------------------------------------- connections

class Connection:
    """What a test needs to send authenticated deliveries for one applied connection."""

    def __init__(self, name, doc, env, personio_tokens, moco_keys, sw_secrets, other_secrets):
        self.name = name
        self.doc = doc
        self.env = env
        self.personio_tokens = personio_tokens
        self.moco_keys = moco_keys
        self.sw_secrets = sw_secrets  # {"personio": [...], "moco": [...]}
        self.other_secrets = other_secrets

    @property
    def token(self):
        return self.personio_tokens[0]

    @property
    def moco_key(self):
        return self.moco_keys[0]

    def all_secrets(self):
        out = list(self.personio_tokens) + list(self.moco_keys) + list(self.other_secrets)
        for lst in self.sw_secrets.values():
            for s in lst:
                out += [s, s[len("whsec_"):]]
        return out


def connection_doc(name, tmpdir, sw_sources=(), sw_spec_vector=False):
    up = name.upper().replace("-", "_").replace(".", "_")
    tokens = [secrets.token_urlsafe(24), secrets.token_urlsafe(24)]
    keys = [secrets.token_hex(16), secrets.token_hex(16)]
    client_secret = "pcs-" + secrets.token_hex(16)
    api_key = "moco-" + secrets.token_hex(16)
    platform_token = "plat-" + secrets.token_hex(16)
    slack_secret = secrets.token_hex(12)
    api_key_file = tmpdir / f"{name}-moco-api-key"
    api_key_file.write_text(api_key + "\n")
    env = {f"RDTEST_{up}_PERSONIO_SECRET": client_secret,
           f"RDTEST_{up}_TOKEN2": tokens[1],
           f"RDTEST_{up}_PLATFORM_TOKEN": platform_token}
    sw = {}
    for src in sw_sources:
        sw[src] = [H.new_sw_secret(), H.new_sw_secret()]
        if sw_spec_vector and src == "personio":
            sw[src][0] = H.SW_SPEC_SECRET
    doc = {
        "name": name,
        "timezone": "Europe/Berlin",
        "start_date": "2026-01-01",
        "personio": {"base_url": "https://127.0.0.1:9/personio", "client_id": f"cid-{name}",
                     "client_secret": f"env:RDTEST_{up}_PERSONIO_SECRET",
                     "webhook_tokens": [tokens[0], f"env:RDTEST_{up}_TOKEN2"]},
        "moco": {"base_url": "https://127.0.0.1:9/moco/api/v1", "api_key": f"file:{api_key_file}",
                 "webhook_keys": keys},
        "platform": {"scim_base_url": "https://127.0.0.1:9/scim/v2",
                     "api_base_url": "https://127.0.0.1:9/api/v1",
                     "token": f"env:RDTEST_{up}_PLATFORM_TOKEN"},
        "alerts": {"slack_webhook_url": f"https://127.0.0.1:9/slack/T0/B0/{slack_secret}",
                   "email_to": ["it@acme.example"]},
        "team_map": {"Backend": "Engineering", "Frontend": "Engineering",
                     "Support": "Customer Care"},
        "absence_codes": {"Sick leave": 3, "Vacation": 4},
        "fallback_approver": "cfo@acme.example",
        "policy": {"onboarding_alerts": True, "deactivation": True, "deactivation_delay_days": 0,
                   "approver_reassignment": True, "attendance_push": True, "absence_sync": True,
                   "reconcile_at": "off", "max_deactivations_per_run": 5,
                   "protected_users": ["ceo@acme.example"]},
    }
    for src, lst in sw.items():
        doc[src]["standard_webhooks_secrets"] = lst
    return Connection(name, doc, env, tokens, keys, sw,
                      [client_secret, api_key, platform_token, slack_secret])


def apply_connection(conf, tmpdir, name, sw_sources=(), sw_spec_vector=False):
    c = connection_doc(name, tmpdir, sw_sources, sw_spec_vector)
    path = tmpdir / f"{name}.json"
    path.write_text(json.dumps(c.doc, indent=2))
    H.rosterctl(conf, "connection", "apply", str(path), env=c.env)
    return c


class Stack:
    """A migrated database with connections applied, and a conf that points at it."""

    def __init__(self, pg, conf, conns):
        self.pg = pg
        self.conf = conf
        self.conns = conns

    def __getitem__(self, name):
        return self.conns[name]

    def all_secrets(self):
        out = []
        for c in self.conns.values():
            out += c.all_secrets()
        return out


def build_stack(pg_cluster, make_conf, tmpdir):
    conf = make_conf(pg_cluster)
    H.rosterctl(conf, "migrate")
    conns = {}
    conns["acme"] = apply_connection(conf, tmpdir, "acme")
    conns["relay"] = apply_connection(conf, tmpdir, "relay", sw_sources=("personio", "moco"),
                                      sw_spec_vector=True)
    return Stack(pg_cluster, conf, conns)


@pytest.fixture(scope="session")
def stack(pg, make_conf, tmp_path_factory):
    """The session database: migrated once, connections `acme` (token/HMAC) and `relay` (SW)."""
    return build_stack(pg, make_conf, tmp_path_factory.mktemp("conns"))


@pytest.fixture(scope="session")
def base_conf(stack):
    return stack.conf


@pytest.fixture(scope="session")
def rosterctl(base_conf):
    """rosterctl(*args, check=True, env=None, conf=None) -> CompletedProcess (60 s timeout)."""

    def runner(*args, check=True, env=None, conf=None):
        return H.rosterctl(conf or base_conf, *args, check=check, env=env)

    return runner


@pytest.fixture(scope="session")
def connection(base_conf, tmp_path_factory):
    """connection(name='acme', sw_sources=(), sw_spec_vector=False) applies a connection document."""
    tmpdir = tmp_path_factory.mktemp("conn-apply")

    def make(name="acme", sw_sources=(), sw_spec_vector=False, conf=None):
        return apply_connection(conf or base_conf, tmpdir, name, sw_sources, sw_spec_vector)

    return make


@pytest.fixture
def private_stack(make_conf, tmp_path):
    """A stack on its own Postgres cluster, for tests that stop Postgres."""
    cluster = H.PgCluster()
    try:
        yield build_stack(cluster, make_conf, tmp_path)
    finally:
        cluster.destroy()


# --------------------------------------------------------------------------- daemons

def _check_daemon(d):
    problems = d.sanitizer_reports()
    if problems:
        raise AssertionError(f"sanitizer report in rosterd stderr ({', '.join(problems)}):\n"
                             f"{d.log_text()[-6000:]}")


@pytest.fixture
def rosterd(tls, tmp_path):
    """rosterd(conf, wait=True, args=(), env=None) starts a daemon; teardown stops it and
    fails on any sanitizer report in its stderr."""
    started = []

    def start(conf, wait=True, args=(), env=None):
        d = H.Daemon(conf, tls.ca, tmp_path / f"d{len(started)}", args=args, env=env)
        started.append(d)
        return d.start(wait=wait)

    yield start
    errors = []
    for d in started:
        try:
            if d.running():
                d.stop(expect=0)
        except AssertionError as e:
            errors.append(str(e))
        try:
            _check_daemon(d)
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        raise AssertionError("\n\n".join(errors))


@pytest.fixture(scope="session")
def daemon(stack, tls, tmp_path_factory):
    """One rosterd for the session's intake tests, on the session stack."""
    d = H.Daemon(stack.conf, tls.ca, tmp_path_factory.mktemp("daemon"))
    d.start()
    yield d
    try:
        if d.running():
            d.stop(expect=0)
    finally:
        _check_daemon(d)


@pytest.fixture(scope="module")
def world(pg, tls, make_conf, tmp_path_factory):
    """The handler tests' world (tests/integration/world.py): sandbox, own database,
    connection `acme` pointing at the sandbox, one rosterd. Call world.reset() first."""
    from world import World

    w = World(pg, tls, make_conf, tmp_path_factory.mktemp("world"))
    try:
        yield w
    finally:
        w.close()


@pytest.fixture
def uniq():
    return uuid.uuid4().hex


def _terminate(signum, frame):
    # SIGTERM (the run.sh timeout, CI cancelling) stops the session like Ctrl-C: fixtures
    # tear down, and atexit reaps any daemon or Postgres cluster that is still left.
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    signal.signal(signal.SIGTERM, _terminate)
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
