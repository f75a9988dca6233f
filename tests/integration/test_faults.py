"""
Fault injection (issue 13, item 1), one test bounded in time: a steady stream of
signed deliveries to two intake instances while rosterd instances are killed with
SIGKILL (20 times, alternating the ingest, worker and all roles), Postgres is
restarted (5 times, fast and immediate shutdowns in turn) and a TCP proxy (socat)
between rosterd and Postgres is killed (5 times), cutting every database connection
in the middle of whatever transaction it had open. Senders retry like Personio and
MOCO do, with the same body, until they get a 2xx.

Afterwards, for every delivery that was acknowledged:
  * it is stored exactly once (one events row per delivery; the 2xx named that row);
  * it was worked exactly once: status done, exactly one attempt with outcome done;
  * for kinds that write upstream, exactly one successful write reached the upstream
    (the sandbox's request log), the upstream holds exactly one result, and the audit
    table (reason event:<id>) holds that write: one row "ok", or, where rosterd died or
    lost Postgres with the request in flight, a row still "sending" (written before the
    request went out); never two "ok" rows.

KINDS below is the one place that names what is sent. Besides the test handlers it
sends MOCO presences, worked by the real attendance push (handlers/attendance.c):
each presence must become exactly one Personio attendance, whatever was killed while
its job ran. Several presences of one MOCO user coalesce into one job, whose audit
reason is the job's first event, so those writes are matched to their presence by the
marker in the audited request body rather than by the reason. (Slack alerts are not
here: Slack has no idempotency key and no read-back, so an alert whose answer was lost
to a kill may be posted twice; rosterd prefers a duplicate alert to a lost one.)
"""
import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Optional

import pytest

import helpers as H

FAULT_PHASE_S = 84          # 30 faults, one every 2.8 s
RATE_PER_SENDER = 12        # deliveries per second per sender thread
SENDERS = 4
DRAIN_TIMEOUT_S = 100


@dataclass
class Upstream:
    """The one write a kind makes per event, as the sandbox shows it: requests in its log
    and results in its state are tied to an event through a key derived from its marker."""
    system: str
    method: str
    path: str
    ok_status: tuple
    key: Callable[[str], str]                       # marker -> key
    request_key: Callable[[dict], Optional[str]]    # logged request -> key (None: not ours)
    result_keys: Callable[[dict], list]             # sandbox state -> keys of what exists
    # audited request body -> key; None: audit rows are matched by reason event:<id>
    audit_key: Optional[Callable[[dict], Optional[str]]] = None


@dataclass
class Kind:
    name: str
    source: str                                     # personio | moco
    body: Callable[[str], dict]                     # marker -> delivery body
    headers: dict = field(default_factory=dict)     # MOCO target/event
    upstream: Optional[Upstream] = None
    weight: int = 1
    # called with (sandbox, marker) before the body is made: upstream truth the handler reads
    prepare: Optional[Callable] = None


def _scim_user(marker):
    return f"{marker}@faults.example"


SCIM_CREATE = Upstream(
    "scim", "POST", "/Users", (201,), key=_scim_user,
    request_key=lambda req: json.loads(req["body"] or "{}").get("userName"),
    result_keys=lambda st: [u["userName"] for u in st["scim_users"]])

# MOCO presences for the attendance push: one per (user, day), all days long ago enough
# to have no demo presences and after the connection's start_date, 09:00-17:00 each.
PRESENCE_USERS = [9003, 9004] + list(range(9007, 9018))  # demo users with an employee


class PresenceSlots:
    def __init__(self):
        import datetime as dt
        self.lock = threading.Lock()
        first = dt.date(2026, 1, 5)
        self.free = [(u, str(first + dt.timedelta(days=i))) for i in range(0, 280)
                     if (first + dt.timedelta(days=i)).weekday() < 5 for u in PRESENCE_USERS]
        random.Random(7).shuffle(self.free)
        self.presence_of = {}  # marker -> (presence id, user, day)

    def prepare(self, sandbox, marker):
        with self.lock:
            user, day = self.free.pop()
        pid = sandbox.fixtures({"moco_presences": [
            {"user_id": user, "date": day, "from": "09:00", "to": "17:00"}]})[
            "created"]["moco_presences"][0]
        with self.lock:
            self.presence_of[marker] = (pid, user, day)

    def body(self, marker):
        pid, user, day = self.presence_of[marker]
        return {"id": pid, "date": day, "from": "09:00", "to": "17:00", "is_home_office": False,
                "user": {"id": user}, "marker": marker}

    def key(self, marker):
        return f"moco-presence:{self.presence_of[marker][0]}"


SLOTS = PresenceSlots()


def _presence_key(comment):
    if comment and "[moco-presence:" in comment:
        return comment[comment.index("[moco-presence:") + 1:comment.index("]", comment.index(
            "[moco-presence:"))]
    return None


def _attendance_request_key(req):
    rows = json.loads(req["body"] or "{}").get("attendances") or [{}]
    return _presence_key(rows[0].get("comment"))


ATTENDANCE_CREATE = Upstream(
    "personio", "POST", "/v1/company/attendances", (200,), key=SLOTS.key,
    request_key=_attendance_request_key,
    result_keys=lambda st: [k for k in (_presence_key(a.get("comment"))
                                        for a in st["attendances"]) if k],
    audit_key=lambda after: _presence_key((after or {}).get("comment")))

KINDS = [
    Kind("test.script", "personio",
         lambda m: {"event_name": "test.script.fault", "payload": {"person": {"id": m}},
                    "meta": {"marker": m}, "script": {"sleep_ms": 20}}, weight=3),
    Kind("test.script", "moco", lambda m: {"id": m, "marker": m, "script": {"sleep_ms": 20}},
         headers={"X-Moco-Target": "test", "X-Moco-Event": "script"}, weight=2),
    Kind("test.upstream", "personio",
         lambda m: {"event_name": "test.upstream.fault", "payload": {"person": {"id": m}},
                    "meta": {"marker": m}, "script": {"scim_user": _scim_user(m)}},
         upstream=SCIM_CREATE, weight=2),
    Kind("Presence.create", "moco", SLOTS.body,
         headers={"X-Moco-Target": "Presence", "X-Moco-Event": "create"},
         upstream=ATTENDANCE_CREATE, weight=1, prepare=SLOTS.prepare),
]


# --------------------------------------------------------------------------- plumbing

class Proxy:
    """socat between rosterd and Postgres; cut() kills it with every connection it carries."""

    def __init__(self, target_port):
        self.port = H.free_port()
        self.target = target_port
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["socat", f"TCP-LISTEN:{self.port},bind=127.0.0.1,reuseaddr,fork",
             f"TCP:127.0.0.1:{self.target}"], stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        H.wait_for(self._listening, 10, 0.05, "socat listening")

    def _listening(self):
        try:
            with H.socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def cut(self):
        os.killpg(self.proc.pid, signal.SIGKILL)  # the parent and every forked child
        self.proc.wait(10)
        self.start()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def wait_up(d, role, timeout):
    """Ready: /readyz 200, and for an intake role also routing (see Daemon.wait_healthy)."""
    if role != "worker":
        return d.wait_healthy(timeout)
    H.wait_for(lambda: d.running() and _ready(d), timeout, 0.1, "worker /readyz 200")


def _ready(d):
    try:
        return H.admin_get(d, "/readyz", timeout=2).status == 200
    except OSError:
        return False


# rosterd's sessions that are inside a statement or an open transaction right now.
IN_FLIGHT_SQL = ("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                 " AND pid <> pg_backend_pid() AND datname = current_database()"
                 " AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')")


def cut_mid_transaction(cluster, proxy, timeout=3.0):
    """Cuts the proxy the moment rosterd has a statement or transaction in flight
    (pg_stat_activity, read directly); returns how many were in flight just before."""
    deadline = time.monotonic() + timeout
    c = cluster.connect()
    c.autocommit = True
    try:
        with c.cursor() as cur:
            while True:
                cur.execute(IN_FLIGHT_SQL)
                n = cur.fetchone()[0]
                if n > 0 or time.monotonic() > deadline:
                    proxy.cut()
                    return n
    finally:
        c.close()


def pg_restart(cluster, mode):
    cluster._pg([str(H.PG_BIN / "pg_ctl"), "-D", str(cluster.data), "-m", mode, "-w", "-t", "60",
                 "stop"], timeout=90)
    cluster.running = False
    cluster.start()


@dataclass
class Delivery:
    kind: Kind
    marker: str
    raw: bytes
    tries: int = 0
    event_id: Optional[int] = None
    statuses: list = field(default_factory=list)


class Senders:
    """Threads that send deliveries at a steady rate and retry each until it gets a 2xx."""

    def __init__(self, targets, conn, rate, n, sandbox):
        self.targets = targets
        self.sandbox = sandbox
        self.conn = conn
        self.rate = rate
        self.stop_new = threading.Event()
        self.done = []
        self.refused = []  # a 4xx: a bug, reported at the end
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(n)]
        self.rng = random.Random(13)
        self.pool = [k for k in KINDS for _ in range(k.weight)]

    def start(self):
        for t in self.threads:
            t.start()

    def _make(self):
        with self.lock:
            kind = self.rng.choice(self.pool)
        marker = "f" + uuid.uuid4().hex[:20]
        if kind.prepare:
            kind.prepare(self.sandbox, marker)
        return Delivery(kind, marker, H.to_bytes(kind.body(marker)))

    def _send_once(self, d, target):
        if d.kind.source == "personio":
            return H.post_personio(target, self.conn.name, d.raw, self.conn.token, timeout=10)
        return H.post_moco(target, self.conn.name, d.raw, self.conn.moco_key,
                           target=d.kind.headers["X-Moco-Target"],
                           event=d.kind.headers["X-Moco-Event"], timeout=10)

    def _deliver(self, d, i):
        deadline = time.monotonic() + FAULT_PHASE_S + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline:
            target = self.targets[(i + d.tries) % len(self.targets)]
            d.tries += 1
            try:
                r = self._send_once(d, target)
                d.statuses.append(r.status)
                if r.status in (200, 202):
                    d.event_id = int(r.json()["event_id"])
                    return True
                if 400 <= r.status < 500:
                    with self.lock:
                        self.refused.append((d.marker, r.status, r.body[:200]))
                    return False
            except (OSError, H.http.client.HTTPException):
                d.statuses.append(0)
            time.sleep(0.2)  # a sender backs off, then retries the same body
        return False

    def _run(self, i):
        period = 1.0 / self.rate
        nxt = time.monotonic()
        while not self.stop_new.is_set():
            d = self._make()
            if self._deliver(d, i):
                with self.lock:
                    self.done.append(d)
            nxt += period
            time.sleep(max(0.0, nxt - time.monotonic()))
            nxt = max(nxt, time.monotonic() - 1)  # after a long outage, do not burst

    def join(self, timeout):
        self.stop_new.set()
        for t in self.threads:
            t.join(timeout)


def connection_doc(name, sandbox, creds):
    b = sandbox.base
    return {
        "name": name, "timezone": "Europe/Berlin", "start_date": "2026-01-01",
        "personio": {"base_url": b + "/personio", "client_id": creds["client_id"],
                     "client_secret": creds["client_secret"], "webhook_tokens": [creds["token"]]},
        # MOCO's unlimited plan, in the sandbox too: the presences' jobs read MOCO faster
        # than the standard plan's one request a second
        "moco": {"base_url": b + "/moco/api/v1", "api_key": creds["moco_key"],
                 "webhook_keys": [creds["moco_hook_key"]],
                 "rate_limit": {"requests": 1200, "window_seconds": 120}},
        "platform": {"scim_base_url": b + "/scim/v2", "api_base_url": b + "/platform/api/v1",
                     "token": creds["platform_token"]},
        "alerts": {"slack_webhook_url": b + "/slack/services/" + creds["slack_path"]},
        # only the attendance push: no onboarding alerts or platform changes for the
        # people the presences belong to
        "policy": {"reconcile_at": "off", "onboarding_alerts": False, "deactivation": False,
                   "approver_reassignment": False, "absence_sync": False},
    }


class Conn:
    def __init__(self, name, creds):
        self.name = name
        self.token = creds["token"]
        self.moco_key = creds["moco_hook_key"]


# --------------------------------------------------------------------------- the test

@pytest.mark.slow
def test_faults_lose_nothing_and_apply_nothing_twice(make_conf, rosterd, tls, tmp_path):
    import secrets as _s
    from world import Sandbox

    t_start = time.monotonic()
    cluster = H.PgCluster()
    proxy = Proxy(cluster.port)
    sandbox = Sandbox(tls, tmp_path)
    try:
        creds = {"client_id": "cid-f", "client_secret": "pcs-" + _s.token_hex(12),
                 "moco_key": "mk-" + _s.token_hex(12), "platform_token": "pt-" + _s.token_hex(12),
                 "slack_path": "T5/B5/" + _s.token_hex(8), "token": _s.token_urlsafe(24),
                 "moco_hook_key": _s.token_hex(16)}
        sandbox.fixtures({"credentials": {
            "personio_clients": {creds["client_id"]: creds["client_secret"]},
            "moco_keys": {creds["moco_key"]: {"user_id": 9001, "read_only": False}},
            "platform_tokens": [creds["platform_token"]]}, "slack_hooks": [creds["slack_path"]]})
        sandbox.call("POST", "/config", {"moco_rate": 1200, "moco_window_s": 120})
        direct = make_conf(cluster)
        H.rosterctl(direct, "migrate")
        doc = tmp_path / "faults.json"
        doc.write_text(json.dumps(connection_doc("faults", sandbox, creds)))
        H.rosterctl(direct, "connection", "apply", str(doc))

        via_proxy = f"postgresql://127.0.0.1:{proxy.port}/{cluster.DB}?user={cluster.USER}"
        common = dict(database_url=via_proxy, ca_file=str(tls.ca), workers=4,
                      retry_base_seconds=1, max_attempts=100, header_timeout_seconds=10)
        daemons = {role: rosterd(make_conf(**common), wait=False, args=("--role", role))
                   for role in ("ingest", "all", "worker")}
        for role, d in daemons.items():
            wait_up(d, role, 30)
        conn = Conn("faults", creds)
        senders = Senders([daemons["ingest"], daemons["all"]], conn, RATE_PER_SENDER, SENDERS,
                          sandbox)
        senders.start()

        # 20 kills (ingest, worker, all in turn), 5 Postgres restarts, 5 proxy cuts,
        # shuffled with a fixed seed so every run is the same sequence.
        roles = ["ingest", "worker", "all"]
        faults = [("kill", roles[i % 3]) for i in range(20)]
        faults += [("pg", "immediate" if i % 2 else "fast") for i in range(5)]
        faults += [("cut", None)] * 5
        random.Random(2026).shuffle(faults)
        done_faults = Counter()
        cut_in_flight = []
        step = FAULT_PHASE_S / len(faults)
        for i, (what, arg) in enumerate(faults):
            time.sleep(max(0.0, t_start + 12 + (i + 1) * step - time.monotonic()))
            if what == "kill":
                d = daemons[arg]
                if d.running():
                    d.kill9()
                d.start(wait=False)
            elif what == "pg":
                pg_restart(cluster, arg)
            else:
                cut_in_flight.append(cut_mid_transaction(cluster, proxy))
            done_faults[what if what != "kill" else f"kill -9 ({arg})"] += 1

        senders.join(DRAIN_TIMEOUT_S)
        fault_end = time.monotonic()
        for role, d in daemons.items():  # every instance up again (a kill may have been last)
            if not d.running():
                d.start(wait=False)
            wait_up(d, role, 60)

        acked = senders.done
        ids = [d.event_id for d in acked]
        # Drain: every acknowledged event finished.
        def finished():
            rows = cluster.query("SELECT status, count(*) FROM events WHERE id = ANY(%s)"
                                 " GROUP BY status", (ids,))
            counts = dict(rows)
            return counts if counts.get("done", 0) == len(ids) else None
        H.wait_for(finished, DRAIN_TIMEOUT_S, 0.5, "every acknowledged event done")
        drain_s = time.monotonic() - fault_end

        report = account(cluster, sandbox, acked)
        print(f"\nfault injection: {dict(done_faults)}; rosterd statements or transactions "
              f"in flight at each proxy cut: {cut_in_flight}")
        print(f"deliveries: {len(acked)} acknowledged after {sum(d.tries for d in acked)} sends "
              f"({sum(1 for d in acked if d.tries > 1)} needed a retry; "
              f"{sum(s == 200 for d in acked for s in d.statuses)} answered duplicate); "
              f"drained {drain_s:.1f} s after the last fault; total "
              f"{time.monotonic() - t_start:.0f} s")
        for line in report["lines"]:
            print(line)
        logs = "".join(d.log_text() for d in daemons.values())
        print(f"writes held back because their audit row could not be written first: "
              f"{logs.count('the audit row cannot be written')}; audit rows left sending "
              f"because Postgres went away after the write: {logs.count('stays')}")
        assert not senders.refused, senders.refused[:5]
        assert report["problems"] == [], report["problems"][:10]
        assert len(acked) > 1000
        assert sum(done_faults.values()) == 30
        assert sum(1 for n in cut_in_flight if n > 0) >= 3, cut_in_flight
        for d in daemons.values():
            d.stop(expect=0)  # and a clean exit after all that
    finally:
        for d in list(locals().get("daemons", {}).values()):
            if d.running():
                d.stop(expect=None)
        proxy.stop()
        sandbox.stop()
        cluster.destroy()


def account(cluster, sandbox, acked):
    """Counts, per acknowledged delivery, rows, attempts and upstream writes; lists problems."""
    problems, lines = [], []
    ids = [d.event_id for d in acked]
    # Stored once: one row per marker, and it is the row the 2xx named.
    rows = cluster.query(
        "SELECT id, coalesce(body::jsonb->'meta'->>'marker', body::jsonb->>'marker')"
        " FROM events")
    by_marker = defaultdict(list)
    for eid, marker in rows:
        by_marker[marker].append(eid)
    stored_once = 0
    for d in acked:
        got = by_marker.get(d.marker, [])
        if got == [d.event_id]:
            stored_once += 1
        else:
            problems.append(f"delivery {d.marker}: acknowledged as {d.event_id}, stored as {got}")
    unacked = set(by_marker) - {d.marker for d in acked}
    if unacked:
        problems.append(f"{len(unacked)} stored events were never acknowledged")
    # Worked once: exactly one attempt that ended done.
    att = dict(cluster.query("SELECT event_id, count(*) FILTER (WHERE outcome = 'done')"
                             " FROM event_attempts WHERE event_id = ANY(%s) GROUP BY event_id",
                             (ids,)))
    outcomes = Counter(o for (o,) in cluster.query(
        "SELECT outcome FROM event_attempts WHERE event_id = ANY(%s)", (ids,)))
    worked_once = sum(1 for i in ids if att.get(i) == 1)
    for i in ids:
        if att.get(i) != 1:
            problems.append(f"event {i}: {att.get(i, 0)} successful attempts")
    lines.append(f"stored exactly once: {stored_once}/{len(acked)}; worked exactly once: "
                 f"{worked_once}/{len(acked)}; attempts by outcome: {dict(outcomes)}")
    # Upstream writes, per kind that has one.
    st = sandbox.state()
    reqs = sandbox.requests()
    audit = defaultdict(list)
    audit_rows = cluster.query("SELECT reason, system, method, path, outcome, after"
                               " FROM upstream_audit")
    for reason, system, method, path, outcome, _after in audit_rows:
        audit[reason].append((system, method, path, outcome))
    for kind in KINDS:
        up = kind.upstream
        if not up:
            continue
        mine = [d for d in acked if d.kind is kind]
        writes = defaultdict(list)
        for r in reqs:
            if r["system"] == up.system and r["method"] == up.method and r["path"] == up.path:
                writes[up.request_key(r)].append(r["status"])
        results = Counter(up.result_keys(st))
        by_key = defaultdict(list)  # audit rows by the key in their body (audit_key kinds)
        if up.audit_key:
            for _r, system, method, path, outcome, after in audit_rows:
                if (system, method, path) == (up.system, up.method, up.path):
                    by_key[up.audit_key(after)].append((system, method, path, outcome))
        once = results_once = 0
        audited = Counter()
        for d in mine:
            ok = [s for s in writes[up.key(d.marker)] if s in up.ok_status]
            n_results = results[up.key(d.marker)]
            src = by_key[up.key(d.marker)] if up.audit_key else audit[f"event:{d.event_id}"]
            rows = [a[3] for a in src if a[:3] == (up.system, up.method, up.path)]
            n_ok, n_sending = rows.count("ok"), rows.count("sending")
            audited["ok" if n_ok == 1 and n_sending == 0 else
                    f"ok={n_ok} sending={n_sending}"] += 1
            once += len(ok) == 1
            results_once += n_results == 1
            if len(ok) != 1 or n_results != 1 or n_ok > 1 or n_ok + n_sending == 0:
                problems.append(f"{kind.name} {d.marker} (event {d.event_id}): {len(ok)} "
                                f"successful writes {writes[up.key(d.marker)]}, {n_results} results "
                                f"upstream, audit rows {rows}")
        lines.append(f"{kind.name} ({kind.source}): {len(mine)} events; exactly one successful "
                     f"{up.system} {up.method} {up.path}: {once}/{len(mine)}; exactly one result "
                     f"upstream: {results_once}/{len(mine)}; audit rows per event: "
                     f"{dict(audited)}")
    kinds = Counter(f"{d.kind.name} ({d.kind.source})" for d in acked)
    lines.append(f"acknowledged by kind: {dict(kinds)}")
    return {"problems": problems, "lines": lines}
