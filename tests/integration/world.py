"""
The world the handler tests run in: the sandbox (fakes of Personio, MOCO, the
platform and Slack, deploy/sandbox/) over TLS with the test CA, a database of
its own on the session's Postgres cluster, a connection `acme` whose URLs and
credentials point at the sandbox, and one rosterd with workers on it. Tests
drive it the way the upstreams would (signed webhooks) and assert what an
operator or an upstream would observe: the sandbox's request log and Slack
inbox, rosterctl's output, the events' status and notes.

    def test_something(world):
        world.reset()                                   # demo company, clean slate
        ev = world.personio("employment.updated", 1021)  # signed delivery -> event id
        row = world.wait_event(ev)                      # done / dead / failed, note, last_error
        assert world.writes("scim") == [...]

reset() is cheap (no restart): it waits for the queue to go quiet, deletes this
connection's rows, resets the sandbox and re-applies the connection document
with the changes a test asks for.
"""
import contextlib
import copy
import json
import secrets
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import helpers as H

SANDBOX = H.ROOT / "deploy" / "sandbox" / "sandbox.py"

# Rows a connection owns, deleted by World.reset() (order: dependants first).
_CONNECTION_TABLES = ("findings", "alerts_sent", "people", "upstream_audit")


class Sandbox:
    """deploy/sandbox/sandbox.py serve, HTTPS with the test CA, demo seed."""

    def __init__(self, tls, workdir, seed="demo", today=None):
        self.tls = tls
        self.log = open(workdir / "sandbox.err", "w+")
        cmd = [sys.executable, str(SANDBOX), "serve", "--port", "0", "--seed", seed,
               "--tls-cert", str(tls.cert), "--tls-key", str(tls.key)]
        if today:
            cmd += ["--today", today]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            raise H.HarnessError("sandbox did not start: " + open(workdir / "sandbox.err").read())
        self.info = json.loads(line)
        self.base = self.info["base_url"]
        assert self.base.startswith("https://")
        self.ctx = ssl.create_default_context(cafile=str(tls.ca))

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + "/_control" + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self.ctx, timeout=30) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            raise H.HarnessError(f"sandbox {method} {path}: HTTP {e.code}: {e.read()[:500]!r}")

    def requests(self, system=None, method=None, prefix=None, since_id=None):
        q = []
        if system:
            q.append(f"system={system}")
        if method:
            q.append(f"method={method}")
        if prefix:
            q.append(f"path_prefix={urllib.request.quote(prefix)}")
        if since_id:
            q.append(f"since_id={since_id}")
        return self.call("GET", "/requests" + ("?" + "&".join(q) if q else ""))

    def fault(self, **f):
        return self.call("POST", "/faults", f)

    def fixtures(self, body):
        return self.call("POST", "/fixtures", body)

    def state(self):
        return self.call("GET", "/state")

    def slack(self):
        return self.call("GET", "/slack")

    def lookup(self, email):
        return self.call("GET", "/lookup?email=" + urllib.request.quote(email))

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class World:
    """Sandbox + own database + connection `acme` + one rosterd (see the module doc)."""

    NAME = "acme"

    def __init__(self, pg, tls, make_conf, tmpdir, workers=2, today=None):
        self.pg = pg
        self.tls = tls
        self.tmpdir = tmpdir
        self.dbname = "world_" + uuid.uuid4().hex[:12]
        pg.create_db(self.dbname)
        self.db_url = pg.url_for(self.dbname)
        self.conf = make_conf(None, database_url=self.db_url, ca_file=str(tls.ca),
                              workers=workers, retry_base_seconds=1, max_attempts=3)
        H.rosterctl(self.conf, "migrate")
        self.sandbox = Sandbox(tls, tmpdir, today=today)
        self.creds = {
            "client_id": "cid-" + secrets.token_hex(4),
            "client_secret": "pcs-" + secrets.token_hex(16),
            "moco_key": "mk-" + secrets.token_hex(16),
            "platform_token": "pt-" + secrets.token_hex(16),
            "slack_path": "T1/B1/" + secrets.token_hex(12),
            "webhook_token": secrets.token_urlsafe(24),
            "moco_webhook_key": secrets.token_hex(16),
        }
        self.base_doc = self._doc()
        self.doc = copy.deepcopy(self.base_doc)
        self._register_creds()
        self.apply()
        self.daemon = H.Daemon(self.conf, tls.ca, tmpdir / "rosterd")
        self.daemon.start()
        self.connection_id = self.one("SELECT id FROM connections WHERE name = %s", (self.NAME,))

    # ---- set-up ------------------------------------------------------------------
    def _doc(self):
        b, c = self.sandbox.base, self.creds
        return {
            "name": self.NAME,
            "timezone": "Europe/Berlin",
            "start_date": "2026-01-01",
            "personio": {"base_url": b + "/personio", "client_id": c["client_id"],
                         "client_secret": c["client_secret"],
                         "webhook_tokens": [c["webhook_token"]]},
            "moco": {"base_url": b + "/moco/api/v1", "api_key": c["moco_key"],
                     "webhook_keys": [c["moco_webhook_key"]]},
            "platform": {"scim_base_url": b + "/scim/v2",
                         "api_base_url": b + "/platform/api/v1",
                         "token": c["platform_token"]},
            "alerts": {"slack_webhook_url": b + "/slack/services/" + c["slack_path"]},
            "team_map": {"Backend": "Engineering", "Frontend": "Engineering",
                         "Support": "Customer Care", "Sales": "Sales"},
            "absence_codes": {"Sick leave": 3, "Vacation": 4},
            "fallback_approver": "cfo@acme.example",
            "policy": {"onboarding_alerts": True, "deactivation": True,
                       "deactivation_delay_days": 0, "approver_reassignment": True,
                       "attendance_push": True, "absence_sync": True, "reconcile_at": "off",
                       "max_deactivations_per_run": 5,
                       "protected_users": ["ceo@acme.example"]},
        }

    def _register_creds(self):
        c = self.creds
        self.sandbox.fixtures({
            "credentials": {"personio_clients": {c["client_id"]: c["client_secret"]},
                            "moco_keys": {c["moco_key"]: {"user_id": 9001, "read_only": False}},
                            "platform_tokens": [c["platform_token"]]},
            "slack_hooks": [c["slack_path"]]})

    def secrets(self):
        """Every credential of the world (for tests that grep output for secrets)."""
        return [v for k, v in self.creds.items() if k != "client_id"]

    def apply(self, doc=None):
        """Applies the connection document (self.doc, or doc); workers read it per job."""
        if doc is not None:
            self.doc = doc
        path = self.tmpdir / "acme.json"
        path.write_text(json.dumps(self.doc, indent=2))
        H.rosterctl(self.conf, "connection", "apply", str(path))

    def reset(self, today=None, seed="demo", policy=None, **doc_changes):
        """A clean slate: quiet queue, this connection's rows deleted, sandbox reset to
        seed (dates relative to today), document = base with policy/doc changes."""
        self.wait_idle()
        with self.pg.connect(self.dbname) as c, c.cursor() as cur:
            cur.execute("DELETE FROM job_events WHERE job_id IN"
                        " (SELECT id FROM jobs WHERE connection_id = %s)", (self.connection_id,))
            # Periodic slots too: a sweep must not run in the middle of a test (the
            # scheduler makes the next slot only once this one's time has passed).
            cur.execute("DELETE FROM jobs WHERE connection_id = %s AND state <> 'running'",
                        (self.connection_id,))
            cur.execute("DELETE FROM events WHERE connection_id = %s", (self.connection_id,))
            for t in _CONNECTION_TABLES:
                cur.execute(f"DELETE FROM {t} WHERE connection_id = %s", (self.connection_id,))
        c.close()
        body = {"seed": seed}
        if today:
            body["today"] = today
        self.sandbox.call("POST", "/reset", body)
        self._register_creds()
        doc = copy.deepcopy(self.base_doc)
        if policy:
            doc["policy"].update(policy)
        for k, v in doc_changes.items():
            if v is None:
                doc.pop(k, None)
            else:
                doc[k] = v
        if doc != self.doc:
            self.apply(doc)
        self.sandbox.call("DELETE", "/requests")
        self.sandbox.call("DELETE", "/slack")

    def close(self):
        try:
            if self.daemon.running():
                self.daemon.stop(expect=0)
        finally:
            self.sandbox.stop()
        problems = self.daemon.sanitizer_reports()
        if problems:
            raise AssertionError(f"sanitizer report in rosterd stderr ({', '.join(problems)}):\n"
                                 f"{self.daemon.log_text()[-6000:]}")

    # ---- database ----------------------------------------------------------------
    def query(self, sql, params=None):
        return self.pg.query(sql, params, dbname=self.dbname)

    def execute(self, sql, params=None):
        """Runs one statement and commits it (query() never commits); returns its rows."""
        with self.pg.connect(self.dbname) as c, c.cursor() as cur:
            cur.execute(sql, params)
            rows = cur.fetchall() if cur.description else None
        c.close()
        return rows

    def one(self, sql, params=None):
        rows = self.query(sql, params)
        assert rows and len(rows) == 1, f"expected one row from {sql!r}, got {rows!r}"
        return rows[0][0] if len(rows[0]) == 1 else rows[0]

    def event(self, event_id):
        rows = self.query("SELECT status, note, last_error, attempts FROM events WHERE id = %s",
                          (event_id,))
        if not rows:
            return None
        s, note, err, att = rows[0]
        return {"status": s, "note": note, "last_error": err, "attempts": att}

    def wait_event(self, event_id, timeout=30, until=("done", "dead")):
        """Waits until the event's status is one of until; returns the event row."""
        deadline = time.monotonic() + timeout
        while True:
            ev = self.event(event_id)
            if ev and ev["status"] in until:
                return ev
            if time.monotonic() > deadline:
                raise H.HarnessError(f"event {event_id} still {ev} after {timeout}s:\n"
                                     f"{self.daemon.log_tail(30)}")
            time.sleep(0.1)

    def wait_idle(self, timeout=60):
        """Waits until no job of this connection is due or running (future ones may wait)."""
        deadline = time.monotonic() + timeout
        while True:
            n = self.one("SELECT count(*) FROM jobs WHERE connection_id = %s AND"
                         " (state = 'running' OR (state IN ('pending', 'failed')"
                         "  AND run_at <= now()))", (self.connection_id,))
            if n == 0:
                return
            if time.monotonic() > deadline:
                raise H.HarnessError(f"{n} jobs still due or running after {timeout}s")
            time.sleep(0.1)

    def run_job(self, kind, subject=None, payload=None, timeout=60):
        """Queues one job of kind now (as the scheduler or a handler would) and waits for
        it to finish; returns (state, note, last_error) from jobs_history or the dead job."""
        key = f"{self.connection_id}:test:{uuid.uuid4().hex}"
        [(job_id,)] = self.execute("INSERT INTO jobs (kind, key, connection_id, subject, payload)"
                                   " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                                   (kind, key, self.connection_id, subject,
                                    json.dumps(payload) if payload is not None else None))
        return self.wait_job(job_id, timeout)

    def wait_job(self, job_id, timeout=60):
        """Waits until job_id is finished (jobs_history) or dead; (state, note, last_error)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.query("SELECT state, note, last_error FROM jobs_history WHERE id = %s",
                              (job_id,))
            if not rows:
                rows = self.query("SELECT state, note, last_error FROM jobs WHERE id = %s"
                                  " AND state = 'dead'", (job_id,))
            if rows:
                return rows[0]
            if time.monotonic() > deadline:
                raise H.HarnessError(f"job {job_id} not finished after {timeout}s:\n"
                                     f"{self.daemon.log_tail(30)}")
            time.sleep(0.1)

    def findings(self, kind=None):
        sql = ("SELECT kind, email, detail, action, result FROM findings"
               " WHERE connection_id = %s")
        params = [self.connection_id]
        if kind:
            sql += " AND kind = %s"
            params.append(kind)
        return [dict(zip(("kind", "email", "detail", "action", "result"), r))
                for r in self.query(sql + " ORDER BY id", params)]

    def person(self, personio_id):
        rows = self.query("SELECT email, scim_id, moco_user_id, status, team FROM people"
                          " WHERE connection_id = %s AND personio_id = %s",
                          (self.connection_id, personio_id))
        if not rows:
            return None
        return dict(zip(("email", "scim_id", "moco_user_id", "status", "team"), rows[0]))

    def audit(self, system=None):
        sql = ("SELECT system, method, path, reason, outcome, http_status FROM upstream_audit"
               " WHERE connection_id = %s")
        params = [self.connection_id]
        if system:
            sql += " AND system = %s"
            params.append(system)
        return [dict(zip(("system", "method", "path", "reason", "outcome", "http_status"), r))
                for r in self.query(sql + " ORDER BY id", params)]

    # ---- upstream observations -----------------------------------------------------
    def writes(self, system=None):
        """Non-GET requests rosterd sent to the sandbox (Personio's /v1/auth excluded)."""
        out = []
        for r in self.sandbox.requests(system):
            if r["method"] == "GET" or (r["system"] == "personio" and r["path"] == "/v1/auth"):
                continue
            out.append(r)
        return out

    def slack_texts(self):
        return [m.get("text") or "" for m in self.sandbox.slack()]

    # ---- deliveries ----------------------------------------------------------------
    def personio(self, event_name, person_id=None, payload=None, expect=202):
        """Sends a Personio notification as Personio does; returns the event id."""
        if payload is None:
            payload = {"person": {"id": str(person_id)}} if person_id is not None else {}
        body = json.dumps({"company_id": "123", "event_name": event_name,
                           "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "payload": payload, "meta": {"nonce": uuid.uuid4().hex}}).encode()
        r = H.post_personio(self.daemon, self.NAME, body, self.creds["webhook_token"])
        assert r.status == expect, f"personio {event_name}: {r.status} {r.body[:300]!r}"
        return r.json().get("event_id") if r.status in (200, 202) else None

    def moco(self, target, event, entity, expect=202):
        """Sends a MOCO webhook (entity JSON, signed with the hook key); returns the event id."""
        body = json.dumps(entity).encode()
        r = H.post_moco(self.daemon, self.NAME, body, self.creds["moco_webhook_key"],
                        target=target, event=event)
        assert r.status == expect, f"moco {target}.{event}: {r.status} {r.body[:300]!r}"
        return r.json().get("event_id") if r.status in (200, 202) else None

    # ---- people lifecycle (tests/integration/test_onboarding.py and friends) -----
    def update(self, collection, *records):
        """Changes only the given fields of sandbox records, as HR editing them would:
        update("personio_employees", {"id": 1021, "last_working_day": None})."""
        return self.sandbox.fixtures({"update": {collection: list(records)}})

    def employee(self, emp_id):
        """The sandbox's stored record of a Personio employee."""
        return next(e for e in self.sandbox.state()["employees"] if e["id"] == emp_id)

    def scim_user(self, email):
        """The platform user with this userName (case-insensitive) as the sandbox has it."""
        return next((u for u in self.sandbox.state()["scim_users"]
                     if u["userName"].lower() == email.lower()), None)

    def jobs(self, kind):
        """Open jobs of kind for this connection: (id, subject, state, run_at, unique_key)."""
        return self.query("SELECT id, subject, state, run_at, unique_key FROM jobs"
                          " WHERE connection_id = %s AND kind = %s ORDER BY run_at, id",
                          (self.connection_id, kind))

    def run_due(self, kind, subject, timeout=30):
        """Makes the scheduled job of kind for subject due now (as if its time had come)
        and waits until it is finished or dead; returns (state, note, last_error)."""
        [(job_id,)] = self.execute("UPDATE jobs SET run_at = now() WHERE connection_id = %s"
                                   " AND kind = %s AND subject = %s AND state = 'pending'"
                                   " RETURNING id", (self.connection_id, kind, str(subject)))
        return self.wait_job(job_id, timeout)

    @contextlib.contextmanager
    def daemon_with(self, **conf):
        """Runs the world's rosterd with more rosterd.conf keys (e.g. smtp_url) inside
        the block, then the usual one again."""
        self.wait_idle()
        self.daemon.stop(expect=0)
        values = dict(self.conf.values, **{k: str(v) for k, v in conf.items()})
        alt = H.Daemon(H.write_conf(self.tmpdir / f"conf-{uuid.uuid4().hex[:8]}", values),
                       self.tls.ca, self.tmpdir / "rosterd-alt")
        usual, self.daemon = self.daemon, alt
        alt.start()
        try:
            yield alt
        finally:
            try:
                self.wait_idle()
                alt.stop(expect=0)
                problems = alt.sanitizer_reports()
                assert not problems, f"sanitizer report ({problems}):\n{alt.log_text()[-6000:]}"
            finally:
                self.daemon = usual
                usual.start()

    def ctl(self, *args, check=True, timeout=60):
        return H.rosterctl(self.conf, *args, check=check, timeout=timeout)

    def ctl_json(self, *args):
        res = self.ctl(*args, "--json")
        return json.loads(res.stdout)
