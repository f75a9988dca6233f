"""
rosterctl against a real throwaway Postgres: migrate, connection apply/list/show
(secret references, masking, encryption at rest) and events list/count/show with
rows inserted directly. Self-contained: the cli_pg fixture owns its own cluster.
"""
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg2
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("ROSTERD_BUILD_DIR", "/work/main/build"))
PG_BIN = Path("/usr/lib/postgresql/15/bin")
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CliPg:
    """A Postgres cluster, a rosterd.conf pointing at it, and a way to run rosterctl."""

    def __init__(self):
        self.as_root = os.geteuid() == 0
        # Outside pytest's 0700 tmp dir so the `postgres` user can reach it when we are root.
        self.dir = Path(tempfile.mkdtemp(prefix="rosterctl-pg-"))
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        self.started = False
        self._pg([PG_BIN / "initdb", "-D", self.data, "-U", "rosterd", "--auth=trust", "-E",
                  "UTF8", "--locale=C", "--no-sync"])
        self._pg([PG_BIN / "pg_ctl", "-D", self.data, "-l", self.dir / "postgres.log", "-w",
                  "-t", "60", "-o",
                  f"-c listen_addresses=127.0.0.1 -p {self.port} "
                  f"-c unix_socket_directories={self.dir} -c fsync=off", "start"])
        self.started = True
        c = psycopg2.connect(host="127.0.0.1", port=self.port, user="rosterd", dbname="postgres",
                             connect_timeout=10)
        c.autocommit = True
        with c.cursor() as cur:
            cur.execute("CREATE DATABASE rosterd_cli")
        c.close()
        self.url = f"postgresql://127.0.0.1:{self.port}/rosterd_cli?user=rosterd"
        self.work = Path(tempfile.mkdtemp(prefix="rosterctl-work-"))
        self.key = secrets.token_bytes(32)
        (self.work / "secret.key").write_bytes(self.key + b"\n")
        os.chmod(self.work / "secret.key", 0o600)
        self.conf = self.work / "rosterd.conf"
        self.conf.write_text(
            "# rosterctl integration test\n"
            f"database_url = {self.url}\n"
            f"secret_key_file = {self.work / 'secret.key'}\n"
            f"tls_cert = {self.work / 'dummy.crt'}\n"
            f"tls_key = {self.work / 'dummy.key'}\n")

    def _pg(self, cmd):
        cmd = [str(c) for c in cmd]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120, cwd=str(self.dir))

    def run(self, *args, env=None, conf=True, timeout=60):
        """Runs rosterctl [-c conf] ARGS with a clean environment; returns CompletedProcess."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ROSTERD_")}
        full_env.update(env or {})
        cmd = [str(BUILD / "rosterctl")]
        if conf:
            cmd += ["-c", str(self.conf)]
        cmd += [str(a) for a in args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=full_env,
                              stdin=subprocess.DEVNULL)

    def ok(self, *args, **kw):
        res = self.run(*args, **kw)
        assert res.returncode == 0, f"{args}: exit {res.returncode}\n{res.stderr}"
        return res

    def query(self, sql, params=None):
        c = psycopg2.connect(host="127.0.0.1", port=self.port, user="rosterd",
                             dbname="rosterd_cli", connect_timeout=10)
        try:
            with c, c.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else None
        finally:
            c.close()

    def destroy(self):
        if self.started:
            self._pg([PG_BIN / "pg_ctl", "-D", self.data, "-m", "immediate", "-w", "-t", "60",
                      "stop"])
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.rmtree(self.work, ignore_errors=True)


@pytest.fixture(scope="module")
def cli_pg():
    if not (BUILD / "rosterctl").exists():
        pytest.fail(f"{BUILD / 'rosterctl'} is missing: build first or set ROSTERD_BUILD_DIR")
    pg = CliPg()
    try:
        # The first migrate's output is kept for test_migrate (module scope: run once).
        pg.first_migrate = pg.run("migrate")
        yield pg
    finally:
        pg.destroy()


def migrations():
    files = sorted(REPO.glob("sql/[0-9]*.sql"))
    return len(files), max(int(re.match(r"\d+", f.name).group()) for f in files)


def test_migrate_is_idempotent(cli_pg):
    count, latest = migrations()
    first = cli_pg.first_migrate
    assert first.returncode == 0, first.stderr
    plural = "" if count == 1 else "s"
    assert first.stdout == f"applied {count} migration{plural}, schema at version {latest}\n"
    again = cli_pg.ok("migrate")
    assert again.stdout == f"schema is current at version {latest}\n"
    rows = cli_pg.query("SELECT version FROM schema_migrations ORDER BY version")
    assert len(rows) == count and rows[-1][0] == latest


def test_concurrent_migrate_applies_each_file_once(cli_pg):
    c = psycopg2.connect(host="127.0.0.1", port=cli_pg.port, user="rosterd", dbname="postgres",
                         connect_timeout=10)
    c.autocommit = True
    with c.cursor() as cur:
        cur.execute("CREATE DATABASE rosterd_race")
    c.close()
    conf = cli_pg.work / "race.conf"
    conf.write_text(f"database_url = {cli_pg.url.replace('rosterd_cli', 'rosterd_race')}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROSTERD_")}
    procs = [subprocess.Popen([str(BUILD / "rosterctl"), "-c", str(conf), "migrate"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    count, latest = migrations()
    applied = sum(int(m.group(1)) for out, _ in outs
                  for m in [re.match(r"applied (\d+) migrations?", out)] if m)
    assert applied == count, outs
    assert all(out.endswith(f"version {latest}\n") for out, _ in outs), outs


def connection_doc(name, **over):
    doc = {
        "name": name,
        "timezone": "Europe/Berlin",
        "start_date": "2026-01-01",
        "personio": {"base_url": "https://api.personio.de", "client_id": "cid-" + name,
                     "client_secret": "env:RDCLI_PERSONIO_SECRET",
                     "webhook_tokens": ["literal-token-" + name, "env:RDCLI_TOKEN2"]},
        "moco": {"base_url": "https://acme.mocoapp.com/api/v1", "api_key": "file:moco.key",
                 "webhook_keys": ["hmac-key-" + name]},
        "platform": {"scim_base_url": "https://spend.example/scim/v2",
                     "api_base_url": "https://spend.example/api/v1", "token": "plat-" + name},
        "alerts": {"slack_webhook_url": "https://hooks.slack.com/services/T0/B0/slacksecret",
                   "email_to": ["it@acme.example"]},
        "team_map": {"Backend": "Engineering"},
        "absence_codes": {"Vacation": 4},
        "fallback_approver": "cfo@acme.example",
        "policy": {"deactivation": True, "reconcile_at": "02:30", "protected_users": []},
    }
    doc.update(over)
    return doc


SECRET_ENV = {"RDCLI_PERSONIO_SECRET": "pcs-" + secrets.token_hex(12),
              "RDCLI_TOKEN2": "tok2-" + secrets.token_hex(12)}
MOCO_KEY = "moco-" + secrets.token_hex(12)


def write_doc(cli_pg, doc, filename=None):
    d = Path(tempfile.mkdtemp(dir=cli_pg.work))
    (d / "moco.key").write_text(MOCO_KEY + "\n")
    path = d / (filename or f"{doc['name']}.json")
    path.write_text(json.dumps(doc, indent=2))
    return path


def open_sealed(cli_pg, name):
    (sealed,) = cli_pg.query("SELECT sealed FROM connections WHERE name = %s", (name,))[0]
    sealed = bytes(sealed)
    # Version 2: 0x02 || key id (8) || nonce (12) || ciphertext || tag; the header is
    # authenticated before the connection name.
    assert sealed[0] == 2
    key_id = hmac.new(cli_pg.key, b"rosterd secret key id", hashlib.sha256).digest()[:8]
    assert sealed[1:9] == key_id
    plain = AESGCM(cli_pg.key).decrypt(sealed[9:21], sealed[21:], sealed[:9] + name.encode())
    return sealed, json.loads(plain)


def test_connection_apply_created_then_updated(cli_pg):
    path = write_doc(cli_pg, connection_doc("acme"))
    res = cli_pg.ok("connection", "apply", path, env=SECRET_ENV)
    assert res.stdout == "created connection acme\n"
    res = cli_pg.ok("connection", "apply", path, env=SECRET_ENV)
    assert res.stdout == "updated connection acme\n"
    assert cli_pg.query("SELECT count(*) FROM connections WHERE name = 'acme'")[0][0] == 1


def test_secrets_resolved_sealed_and_masked(cli_pg):
    doc = connection_doc("sealco")
    cli_pg.ok("connection", "apply", write_doc(cli_pg, doc), env=SECRET_ENV)
    clear = [SECRET_ENV["RDCLI_PERSONIO_SECRET"], SECRET_ENV["RDCLI_TOKEN2"], MOCO_KEY,
             "literal-token-sealco", "hmac-key-sealco", "plat-sealco", "slacksecret"]

    # The sealed document holds the resolved values (env: and file: references followed) ...
    sealed, plain = open_sealed(cli_pg, "sealco")
    assert plain["personio"]["client_secret"] == SECRET_ENV["RDCLI_PERSONIO_SECRET"]
    assert plain["personio"]["webhook_tokens"] == ["literal-token-sealco",
                                                   SECRET_ENV["RDCLI_TOKEN2"]]
    assert plain["moco"]["api_key"] == MOCO_KEY  # trailing newline stripped
    # ... but no secret is in clear anywhere in the row.
    (config, tz) = cli_pg.query("SELECT config::text, timezone FROM connections WHERE name = %s",
                                ("sealco",))[0]
    assert tz == "Europe/Berlin"
    for s in clear:
        assert s.encode() not in sealed
        assert s not in config
    assert "env:" not in config and "file:" not in config

    show = cli_pg.ok("connection", "show", "sealco")
    shown = json.loads(show.stdout)
    assert shown["personio"]["client_secret"] == "********"
    assert shown["personio"]["webhook_tokens"] == ["********", "********"]
    assert shown["moco"]["api_key"] == "********"
    assert shown["alerts"]["slack_webhook_url"] == "********"
    assert shown["personio"]["client_id"] == "cid-sealco"
    assert shown["alerts"]["email_to"] == ["it@acme.example"]
    assert list(shown)[:3] == ["name", "timezone", "start_date"]
    assert show.stdout.count("\n") > 10  # pretty
    for s in clear:
        assert s not in show.stdout
    compact = cli_pg.ok("connection", "show", "sealco", "--json")
    assert compact.stdout.count("\n") == 1 and json.loads(compact.stdout) == shown


def test_apply_errors_name_file_and_field(cli_pg):
    path = write_doc(cli_pg, connection_doc("tzco", timezone="Europe/Berln"))
    res = cli_pg.run("connection", "apply", path, env=SECRET_ENV)
    assert res.returncode == 1
    assert res.stderr == f'rosterctl: {path}: timezone: unknown time zone "Europe/Berln"\n'

    doc = connection_doc("tokco")
    doc["personio"]["webhook_tokens"] = []
    path = write_doc(cli_pg, doc)
    res = cli_pg.run("connection", "apply", path, env=SECRET_ENV)
    assert res.returncode == 1
    assert res.stderr == (f"rosterctl: {path}: personio.webhook_tokens: "
                          "must be a non-empty list of strings\n")

    path = write_doc(cli_pg, connection_doc("envco"))
    env = {"RDCLI_TOKEN2": "x" * 10}  # RDCLI_PERSONIO_SECRET unset
    res = cli_pg.run("connection", "apply", path, env=env)
    assert res.returncode == 1
    assert res.stderr == (f"rosterctl: {path}: personio.client_secret: "
                          "env:RDCLI_PERSONIO_SECRET: environment variable is not set\n")

    path = write_doc(cli_pg, connection_doc("keyco", colour="blue"))
    res = cli_pg.run("connection", "apply", path, env=SECRET_ENV)
    assert res.returncode == 1 and 'unknown key "colour"' in res.stderr

    path = cli_pg.work / "broken.json"
    path.write_text('{"name": "x",\n "timezone": }\n')
    res = cli_pg.run("connection", "apply", path)
    assert res.returncode == 1
    assert res.stderr.startswith(f"rosterctl: {path}: invalid JSON at line 2")

    res = cli_pg.run("connection", "apply", cli_pg.work / "nope.json")
    assert res.returncode == 1 and "No such file or directory" in res.stderr
    # None of the failed documents was stored.
    names = {r[0] for r in cli_pg.query("SELECT name FROM connections")}
    assert not names & {"tzco", "tokco", "envco", "keyco"}


def test_connection_list(cli_pg):
    cli_pg.ok("connection", "apply", write_doc(cli_pg, connection_doc("acme")), env=SECRET_ENV)
    relay = connection_doc("relay")
    relay["personio"]["standard_webhooks_secrets"] = [SW_SECRET]
    relay["moco"]["standard_webhooks_secrets"] = [SW_SECRET]
    del relay["moco"]["webhook_keys"]
    cli_pg.ok("connection", "apply", write_doc(cli_pg, relay), env=SECRET_ENV)

    rows = json.loads(cli_pg.ok("connection", "list", "--json").stdout)
    by_name = {r["name"]: r for r in rows}
    assert [r["name"] for r in rows] == sorted(by_name)
    assert set(by_name["acme"]) == {"name", "timezone", "sources", "updated_at"}
    assert by_name["acme"]["timezone"] == "Europe/Berlin"
    assert by_name["acme"]["sources"] == {"personio": "token", "moco": "hmac"}
    assert by_name["relay"]["sources"] == {"personio": "standard", "moco": "standard"}
    assert ISO_Z.match(by_name["relay"]["updated_at"])

    table = cli_pg.ok("connection", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "TIMEZONE", "PERSONIO", "MOCO", "UPDATED_AT"]
    relay_line = next(line for line in table if line.startswith("relay "))
    assert relay_line.split()[1:4] == ["Europe/Berlin", "standard", "standard"]
    col = table[0].index("PERSONIO")
    assert all(line[col:].split()[0] in ("PERSONIO", "token", "standard") for line in table)

    res = cli_pg.run("connection", "show", "ghost")
    assert res.returncode == 1 and res.stderr == 'rosterctl: connection "ghost" not found\n'


# --------------------------------------------------------------------------- events

@pytest.fixture(scope="module")
def events(cli_pg):
    """Inserts events for acme and relay; returns {label: id}."""
    for name in ("acme", "relay"):
        doc = connection_doc(name)
        cli_pg.ok("connection", "apply", write_doc(cli_pg, doc), env=SECRET_ENV)
    headers = json.dumps({"content-type": "application/json", "authorization": "Bearer leaked",
                          "x-moco-signature": "abcdef0123", "webhook-signature": "v1,c2ln",
                          "x-moco-target": "Presence"})
    rows = [  # label, connection, source, type, status, attempts, age, body, last_error
        ("old_dead", "acme", "personio", "person.updated", "dead", 12, "3 days",
         '{"payload": {"person": {"id": 7}}}', "personio: 400 bad request"),
        ("acme_failed", "acme", "moco", "Presence.create", "failed", 2, "90 minutes",
         '{"id": 5, "date": "2026-01-05"}', "moco: timeout"),
        ("relay_done", "relay", "personio", "person.created", "done", 1, "20 minutes",
         "not json at all", None),
        ("acme_pending", "acme", "personio", "employment.updated", "pending", 0, "1 minute",
         '{"payload": {}}', None),
    ]
    ids = {}
    for i, (label, conn, src, typ, status, attempts, age, body, err) in enumerate(rows):
        auth = "token" if src == "personio" else "hmac"
        ids[label] = cli_pg.query(
            "INSERT INTO events (connection_id, source, event_type, subject, auth, dedup_key,"
            " headers, body, received_at, status, attempts, last_error)"
            " SELECT id, %s, %s, %s, %s, %s, %s::jsonb, %s, now() - %s::interval, %s, %s, %s"
            " FROM connections WHERE name = %s RETURNING id",
            (src, typ, f"subj-{i}", auth, psycopg2.Binary(secrets.token_bytes(32)), headers,
             body, age, status, attempts, err, conn))[0][0]
    for attempt, outcome, error in ((1, "failed", "moco: 503"), (2, "failed", "moco: timeout")):
        cli_pg.query("INSERT INTO event_attempts (event_id, attempt, started_at, finished_at,"
                     " outcome, error) VALUES (%s, %s, now() - interval '1 hour',"
                     " now() - interval '59 minutes', %s, %s)",
                     (ids["acme_failed"], attempt, outcome, error))
    return ids


def ev_list(cli_pg, *args):
    return json.loads(cli_pg.ok("events", "list", "--json", *args).stdout)


def ev_count(cli_pg, *args):
    out = cli_pg.ok("events", "count", *args).stdout
    assert re.fullmatch(r"\d+\n", out)
    return int(out)


def test_events_list_fields_and_order(cli_pg, events):
    rows = ev_list(cli_pg)
    mine = [r for r in rows if r["id"] in events.values()]
    assert [r["id"] for r in mine] == [events["acme_pending"], events["relay_done"],
                                       events["acme_failed"], events["old_dead"]]
    for r in rows:
        assert set(r) == {"id", "connection", "source", "event_type", "status", "attempts",
                          "received_at", "last_error"}
        assert ISO_Z.match(r["received_at"])
    failed = next(r for r in rows if r["id"] == events["acme_failed"])
    assert failed["connection"] == "acme" and failed["source"] == "moco"
    assert failed["event_type"] == "Presence.create" and failed["status"] == "failed"
    assert failed["attempts"] == 2 and failed["last_error"] == "moco: timeout"
    assert next(r for r in rows if r["id"] == events["relay_done"])["last_error"] is None


def test_events_filters_and_count(cli_pg, events):
    ids = lambda rows: {r["id"] for r in rows}  # noqa: E731
    assert ids(ev_list(cli_pg, "--connection", "relay")) == {events["relay_done"]}
    assert ids(ev_list(cli_pg, "--source", "moco")) == {events["acme_failed"]}
    assert ids(ev_list(cli_pg, "--status", "dead")) == {events["old_dead"]}
    assert ids(ev_list(cli_pg, "--since", "30m")) == {events["acme_pending"], events["relay_done"]}
    assert ids(ev_list(cli_pg, "--since", "2h")) == {events["acme_pending"], events["relay_done"],
                                                    events["acme_failed"]}
    assert ids(ev_list(cli_pg, "--since", "7d")) == set(events.values())
    (since,) = cli_pg.query("SELECT to_char((now() - interval '2 days') AT TIME ZONE 'UTC',"
                            " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")[0]
    assert ids(ev_list(cli_pg, "--since", since)) == set(events.values()) - {events["old_dead"]}
    assert ids(ev_list(cli_pg, "--connection", "acme", "--source=personio")) == {
        events["old_dead"], events["acme_pending"]}
    assert [r["id"] for r in ev_list(cli_pg, "--limit", "2")] == [events["acme_pending"],
                                                                  events["relay_done"]]

    assert ev_count(cli_pg) == 4
    assert ev_count(cli_pg, "--connection", "acme") == 3
    assert ev_count(cli_pg, "--status", "failed", "--source", "moco") == 1
    assert ev_count(cli_pg, "--since", "2h") == 3
    assert ev_count(cli_pg, "--since", "2099-01-01") == 0


def test_events_table(cli_pg, events):
    lines = cli_pg.ok("events", "list").stdout.splitlines()
    header = lines[0]
    assert header.split() == ["ID", "CONNECTION", "SOURCE", "EVENT_TYPE", "STATUS", "ATTEMPTS",
                              "RECEIVED_AT", "LAST_ERROR"]
    assert len(lines) == 5
    assert all(line == line.rstrip() for line in lines)  # no padding after the last column
    for name in ("SOURCE", "STATUS", "RECEIVED_AT"):
        col = header.index(name)
        for line in lines[1:]:
            assert line[col - 1] == " " and line[col] != " ", (name, line)
    dead = next(line for line in lines if line.startswith(f"{events['old_dead']} "))
    assert dead.endswith("personio: 400 bad request")


def test_events_bad_usage(cli_pg, events):
    res = cli_pg.run("events", "list", "--status", "broken")
    assert res.returncode == 2
    assert res.stderr.startswith(
        "rosterctl: --status: expected one of pending, running, done, failed, dead\n")
    assert "usage: rosterctl events list" in res.stderr
    for args in (["--source", "slack"], ["--since", "yesterday"], ["--since", "2026-02-30"],
                 ["--limit", "0"], ["--limit", "10001"], ["--limit", "ten"], ["--bogus"],
                 ["--limit"], ["extra"]):
        res = cli_pg.run("events", "list", *args)
        assert res.returncode == 2, (args, res.stderr)
        assert res.stderr.startswith("rosterctl: "), (args, res.stderr)
    assert cli_pg.run("events", "count", "--limit", "5").returncode == 2
    assert cli_pg.run("events", "show", "abc").returncode == 2
    assert cli_pg.run("events", "show").returncode == 2
    res = cli_pg.run("events", "list", "--connection", "ghost")
    assert res.returncode == 1 and res.stderr == 'rosterctl: connection "ghost" not found\n'
    res = cli_pg.run("events", "show", "--help")
    assert res.returncode == 0 and res.stdout.startswith("usage: rosterctl events show ID")
    assert cli_pg.run("events").returncode == 2
    assert cli_pg.run("frobnicate").returncode == 2


def test_events_show(cli_pg, events):
    ev = json.loads(cli_pg.ok("events", "show", events["acme_failed"], "--json").stdout)
    for k in ("id", "connection", "source", "event_type", "status", "attempts", "received_at",
              "last_error", "body", "headers", "subject", "attempt_log"):
        assert k in ev
    assert ev["id"] == events["acme_failed"] and ev["status"] == "failed"
    assert ev["body"] == {"id": 5, "date": "2026-01-05"}
    assert ev["subject"] == "subj-1"
    assert ev["headers"]["authorization"] == "********"
    assert ev["headers"]["x-moco-signature"] == "********"
    assert ev["headers"]["webhook-signature"] == "********"
    assert ev["headers"]["x-moco-target"] == "Presence"
    log = ev["attempt_log"]
    assert [(a["attempt"], a["outcome"], a["error"]) for a in log] == [
        (1, "failed", "moco: 503"), (2, "failed", "moco: timeout")]
    assert all(ISO_Z.match(a["started_at"]) and ISO_Z.match(a["finished_at"]) for a in log)

    ev = json.loads(cli_pg.ok("events", "show", events["relay_done"], "--json").stdout)
    assert ev["body"] == "not json at all" and ev["attempt_log"] == []

    text = cli_pg.ok("events", "show", events["acme_failed"]).stdout
    assert "leaked" not in text and "abcdef0123" not in text
    assert "attempt log:" in text and "moco: 503" in text

    res = cli_pg.run("events", "show", "999999")
    assert res.returncode == 1 and res.stderr == "rosterctl: event 999999 not found\n"


def test_config_from_environment_and_errors(cli_pg):
    res = cli_pg.run("connection", "list", "--json", conf=False,
                     env={"ROSTERD_CONFIG": str(cli_pg.conf)})
    assert res.returncode == 0 and isinstance(json.loads(res.stdout), list)

    bad = cli_pg.work / "down.conf"
    bad.write_text(f"database_url = postgresql://127.0.0.1:{free_port()}/x?user=rosterd\n")
    res = cli_pg.run("-c", bad, "events", "count", conf=False)
    assert res.returncode == 1 and res.stderr.startswith("rosterctl: cannot connect")

    # Only commands that seal need secret_key_file.
    nokey = cli_pg.work / "nokey.conf"
    nokey.write_text(f"database_url = {cli_pg.url}\n")
    assert cli_pg.run("-c", nokey, "connection", "list", conf=False).returncode == 0
    res = cli_pg.run("-c", nokey, "connection", "apply",
                     write_doc(cli_pg, connection_doc("acme")), conf=False, env=SECRET_ENV)
    assert res.returncode == 1 and "secret_key_file is required" in res.stderr
