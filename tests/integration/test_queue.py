"""
The job queue against a real Postgres: state transitions, retries, dead and
replay, exactly-once with two instances, lease lapse after kill -9, per-key order,
coalescing, periodic jobs created once, graceful stop. Queue instances are
tests/tools/queue_driver processes (rd_queue_start/stop, as rosterd runs it);
each test gets its own database migrated with `rosterctl migrate`.
"""
import datetime as dt
import json
import signal
import subprocess
import tempfile
import time
import uuid
from zoneinfo import ZoneInfo

import pytest

import helpers as H


class QueueDB:
    def __init__(self, pg, name, conf):
        self.pg = pg
        self.name = name
        self.url = pg.url_for(name)
        self.conf = conf
        self.conn = pg.connect(name)
        self.conn.autocommit = True

    def q(self, sql, params=None):
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else None

    def one(self, sql, params=None):
        rows = self.q(sql, params)
        return rows[0][0] if rows else None

    def add_connection(self, name, tz="Europe/Berlin", reconcile_at="off"):
        cfg = json.dumps({"name": name, "policy": {"reconcile_at": reconcile_at}})
        return self.one("INSERT INTO connections (name, timezone, config, sealed)"
                        " VALUES (%s, %s, %s, '\\x00') RETURNING id", (name, tz, cfg))

    def add_events(self, conn_id, rows, source="personio"):
        """rows: [(event_type, subject, body_dict)] inserted in ONE statement."""
        values = []
        params = []
        for et, subj, body in rows:
            values.append("(%s, %s, %s, %s, 'token', %s, '{}', %s)")
            params += [conn_id, source, et, subj, uuid.uuid4().bytes, json.dumps(body or {})]
        sql = ("INSERT INTO events (connection_id, source, event_type, subject, auth, dedup_key,"
               " headers, body) VALUES " + ",".join(values) + " RETURNING id")
        return [r[0] for r in self.q(sql, params)]

    def derive(self):
        """Derives the jobs of every committed event now, as a dispatcher would
        (sql/011_derived_jobs.sql); waits while another instance holds the watermark."""
        while True:
            n = self.one("SELECT rd_derive_jobs(100000)")
            if 0 <= n < 100000:
                return
            time.sleep(0.01)

    def add_event(self, conn_id, event_type="test.noop", subject=None, script=None):
        body = {"script": script} if script else {}
        return self.add_events(conn_id, [(event_type, subject, body)])[0]

    def status(self, event_id):
        # As operators see it: "running" is derived from the job (RD_SQL_EVENT_STATUS).
        return self.one("SELECT CASE WHEN e.status IN ('pending', 'failed') AND EXISTS"
                        " (SELECT 1 FROM job_events je JOIN jobs j ON j.id = je.job_id"
                        " WHERE je.event_id = e.id AND j.state = 'running') THEN 'running'"
                        " ELSE e.status END FROM events e WHERE e.id = %s", (event_id,))

    def attempts(self, event_id):
        return self.q("SELECT attempt, outcome, error, job_id, instance, started_at, finished_at"
                      " FROM event_attempts WHERE event_id = %s ORDER BY id", (event_id,))

    def wait_status(self, event_id, want, timeout):
        return H.wait_for(lambda: self.status(event_id) in want and self.status(event_id),
                          timeout, 0.05, f"event {event_id} status in {want}")

    def snapshot(self):
        """A digest of every queue-related table, to prove an operation changed nothing."""
        out = {}
        for t in ("events", "jobs", "job_events", "jobs_history", "event_attempts"):
            out[t] = self.q(f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text),''))"
                            f" FROM {t} t")[0][0]
        return out

    def close(self):
        self.conn.close()


@pytest.fixture
def qdb(pg, make_conf):
    name = "q_" + uuid.uuid4().hex[:12]
    pg.create_db(name)
    conf = make_conf(database_url=pg.url_for(name))
    H.rosterctl(conf, "migrate")
    db = QueueDB(pg, name, conf)
    db.acme = db.add_connection("acme")
    yield db
    db.close()


class Driver:
    def __init__(self, url, workers=4, name=None, max_attempts=12, retry_base=1):
        self.name = name or f"drv-{uuid.uuid4().hex[:6]}"
        cmd = [H.binary("queue_driver"), "--db", url, "--workers", str(workers), "--name",
               self.name, "--max-attempts", str(max_attempts), "--retry-base", str(retry_base)]
        # stderr goes to a file: a pipe nobody reads could fill up and stall the driver.
        self.errfile = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self.errfile, text=True, start_new_session=True)
        line = self.proc.stdout.readline()
        self.stderr = ""
        if line.strip() != "ready":
            self.proc.kill()
            self.proc.wait(10)
            raise H.HarnessError(f"queue_driver did not start: {line!r} {self.read_stderr()}")

    def read_stderr(self):
        self.errfile.seek(0)
        self.stderr = self.errfile.read()
        return self.stderr

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise H.HarnessError(f"queue_driver {self.name} ignored SIGTERM for {timeout}s")
        self.read_stderr()
        return rc

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.read_stderr()

    def wake(self):
        self.proc.send_signal(signal.SIGUSR1)


@pytest.fixture
def drivers(qdb):
    started = []

    def start(**kw):
        d = Driver(qdb.url, **kw)
        started.append(d)
        return d

    yield start
    problems = []
    for d in started:
        if d.proc.poll() is None:
            try:
                assert d.stop() == 0, f"{d.name} exit code"
            except AssertionError as e:
                problems.append(str(e))
        found = [m for m in H.SANITIZER_MARKERS if m in (d.stderr or "")]
        if found:
            problems.append(f"{d.name}: {found}\n{d.stderr[-4000:]}")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- transitions

def test_unknown_event_type_is_done_with_note(qdb, drivers):
    ev = qdb.add_event(qdb.acme, "document.created", "7")
    drivers()
    qdb.wait_status(ev, ("done",), 10)
    assert qdb.one("SELECT note FROM events WHERE id = %s", (ev,)) == "no handler"
    assert [a[1] for a in qdb.attempts(ev)] == ["done"]


def test_retry_with_backoff_then_done(qdb, drivers):
    ev = qdb.add_event(qdb.acme, "test.script", "r1", {"fail": "retry", "fail_times": 2})
    drivers(retry_base=1)
    seen = set()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and qdb.status(ev) != "done":
        seen.add(qdb.status(ev))
        time.sleep(0.02)
    assert qdb.status(ev) == "done"
    assert "failed" in seen
    att = qdb.attempts(ev)
    assert [a[1] for a in att] == ["failed", "failed", "done"]
    assert [a[0] for a in att] == [1, 2, 3]
    assert att[0][2] == "scripted retry failure on attempt 1"
    # Full jitter under retry_base 1: the n-th wait is at most 2^(n-1) s (+ claim slack).
    for n, (prev, nxt) in enumerate(zip(att, att[1:]), start=1):
        gap = (nxt[5] - prev[6]).total_seconds()
        assert 0 <= gap <= 2 ** (n - 1) + 1.5, (n, gap)
    h = qdb.q("SELECT state, attempts FROM jobs_history")
    assert h == [("done", 3)]
    assert qdb.one("SELECT count(*) FROM jobs WHERE kind = 'test.script'") == 0


def test_retries_exhausted_go_dead(qdb, drivers):
    ev = qdb.add_event(qdb.acme, "test.script", "d1", {"fail": "retry"})
    drivers(retry_base=1, max_attempts=3)
    qdb.wait_status(ev, ("dead",), 20)
    assert [a[1] for a in qdb.attempts(ev)] == ["failed", "failed", "dead"]
    st, att, err = qdb.q("SELECT state, attempts, last_error FROM jobs WHERE kind = 'test.script'")[0]
    assert (st, att) == ("dead", 3)
    assert err == "scripted retry failure on attempt 3"
    assert qdb.one("SELECT last_error FROM events WHERE id = %s", (ev,)) == err


def test_permanent_upstream_error_is_dead_at_once(qdb, drivers):
    perm = qdb.add_event(qdb.acme, "test.script", "p1", {"http_status": 404})
    retry = qdb.add_event(qdb.acme, "test.script", "p2", {"http_status": 429})
    drivers(retry_base=30)
    qdb.wait_status(perm, ("dead",), 10)
    assert [(a[1], a[2]) for a in qdb.attempts(perm)] == [("dead", "upstream answered 404")]
    qdb.wait_status(retry, ("failed",), 10)
    assert qdb.one("SELECT state FROM jobs WHERE subject = 'p2'") == "failed"


def test_handler_starts_within_5s_without_notify(qdb, drivers):
    drivers()
    time.sleep(1.5)  # idle, so only the periodic check can notice new work
    for _ in range(3):
        t0 = time.monotonic()
        ev = qdb.add_event(qdb.acme, "test.noop", uuid.uuid4().hex)
        qdb.wait_status(ev, ("done",), 5)
        assert time.monotonic() - t0 < 5


# --------------------------------------------------------------------------- concurrency

def test_two_instances_run_5000_jobs_exactly_once(qdb, drivers):
    ids = []
    for chunk in range(10):
        ids += qdb.add_events(qdb.acme, [("test.noop", f"s{chunk}-{i}", {}) for i in range(500)])
    qdb.derive()
    assert qdb.one("SELECT count(*) FROM jobs") == 5000
    a, b = drivers(workers=4), drivers(workers=4)
    H.wait_for(lambda: qdb.one("SELECT count(*) FROM events WHERE status = 'done'") == 5000,
               180, 0.5, "5000 events done")
    assert qdb.one("SELECT count(*) FROM event_attempts") == 5000
    assert qdb.one("SELECT count(*) FROM event_attempts WHERE outcome = 'done'") == 5000
    assert qdb.one("SELECT count(DISTINCT event_id) FROM event_attempts") == 5000
    assert qdb.q("SELECT state, attempts, count(*) FROM jobs_history GROUP BY 1, 2") == \
        [("done", 1, 5000)]
    assert qdb.one("SELECT count(*) FROM jobs WHERE unique_key IS NULL") == 0
    assert qdb.one("SELECT count(*) FROM job_events") == 0
    per_instance = dict(qdb.q("SELECT instance, count(*) FROM event_attempts GROUP BY 1"))
    assert set(per_instance) == {a.name, b.name}, per_instance
    assert a.stop() == 0 and b.stop() == 0


def test_kill9_job_runs_again_after_lease_lapses(qdb, drivers):
    ev = qdb.add_event(qdb.acme, "test.script", "k1", {"sleep_ms": 4000})
    a = drivers(workers=1)
    qdb.wait_status(ev, ("running",), 10)
    time.sleep(0.5)
    a.kill9()
    killed = time.monotonic()
    b = drivers(workers=1)
    qdb.wait_status(ev, ("done",), 40)
    took = time.monotonic() - killed
    # The lease (15 s, renewed every 5 s) lapses within ~15 s of the kill; +4 s of work.
    assert took < 15 + 4 + 4, took
    att = qdb.attempts(ev)
    assert [x[1] for x in att] == ["lease_lost", "done"]
    assert att[0][4] == a.name and att[1][4] == b.name
    assert "lease expired" in att[0][2]
    assert qdb.q("SELECT state, attempts FROM jobs_history") == [("done", 2)]
    assert qdb.one("SELECT count(*) FROM jobs WHERE kind = 'test.script'") == 0


def test_attempt_in_progress_is_shown_and_written_once_at_the_end(qdb, drivers):
    ev = qdb.add_event(qdb.acme, "test.script", "prog", {"sleep_ms": 1500})
    drivers(workers=1)
    qdb.wait_status(ev, ("running",), 10)
    # Nothing is written for an attempt until it ends; operators still see it.
    assert qdb.attempts(ev) == []
    shown = json.loads(H.rosterctl(qdb.conf, "events", "show", str(ev), "--json").stdout)
    assert shown["status"] == "running"
    listed = lambda st: [e["id"] for e in json.loads(H.rosterctl(
        qdb.conf, "events", "list", "--status", st, "--json").stdout)]
    assert listed("running") == [str(ev)] or listed("running") == [ev]
    assert ev not in listed("pending") and str(ev) not in listed("pending")
    assert len(shown["attempt_log"]) == 1
    running = shown["attempt_log"][0]
    assert running["attempt"] == 1 and running["outcome"] is None
    assert running["finished_at"] is None and running["started_at"]
    qdb.wait_status(ev, ("done",), 10)
    att = qdb.attempts(ev)
    assert [(a[0], a[1]) for a in att] == [(1, "done")]
    started, finished = att[0][5], att[0][6]
    assert finished - started >= dt.timedelta(milliseconds=1400), (started, finished)
    assert started.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") == \
        running["started_at"][:19]
    shown = json.loads(H.rosterctl(qdb.conf, "events", "show", str(ev), "--json").stdout)
    assert [a["outcome"] for a in shown["attempt_log"]] == ["done"]


def test_deleting_events_removes_their_links_and_attempts(qdb, drivers):
    done = qdb.add_event(qdb.acme, "test.noop", "del1")
    drivers()
    qdb.wait_status(done, ("done",), 10)
    waiting = qdb.add_event(qdb.acme, "test.noop", "del2")  # linked, not yet run
    other = qdb.add_connection("other")
    kept = qdb.add_event(other, "test.noop", "del3")
    qdb.derive()
    assert qdb.one("SELECT count(*) FROM event_attempts WHERE event_id = %s", (done,)) == 1
    qdb.q("DELETE FROM events WHERE id IN (%s, %s)", (done, waiting))
    assert qdb.one("SELECT count(*) FROM event_attempts WHERE event_id IN (%s, %s)",
                   (done, waiting)) == 0
    assert qdb.one("SELECT count(*) FROM job_events WHERE event_id IN (%s, %s)",
                   (done, waiting)) == 0
    qdb.q("DELETE FROM connections WHERE name = 'other'")
    assert qdb.one("SELECT count(*) FROM job_events WHERE event_id = %s", (kept,)) == 0
    assert qdb.one("SELECT count(*) FROM jobs WHERE connection_id = %s", (other,)) == 0


def test_open_intake_transactions_hold_back_only_their_own_events(qdb, drivers):
    first = qdb.add_event(qdb.acme, "test.noop", "shared")
    # Two intake transactions add events for the same person and stay open: they
    # write only their rows, so the second does not wait for the first, and neither
    # holds up the job of the event that committed (the trigger's share lock did).
    tx = []
    for _ in range(2):
        c = qdb.pg.connect(qdb.name)
        c.autocommit = False
        with c.cursor() as cur:
            cur.execute("SET statement_timeout = '3s'")
            cur.execute("INSERT INTO events (connection_id, source, event_type, subject, auth,"
                        " dedup_key, headers, body) VALUES (%s, 'personio', 'test.noop',"
                        " 'shared', 'token', %s, '{}', '{}') RETURNING id",
                        (qdb.acme, uuid.uuid4().bytes))
            tx.append((c, cur.fetchone()[0]))
    drivers(workers=2)
    qdb.wait_status(first, ("done",), 10)
    time.sleep(1.5)  # derivations pass the open transactions by
    assert qdb.one("SELECT count(*) FROM jobs WHERE subject = 'shared'") == 0
    assert qdb.one("SELECT count(*) FROM job_events") == 0
    for c, _ in tx:
        c.commit()
        c.close()
    for _, ev in tx:
        qdb.wait_status(ev, ("done",), 10)
    runs = qdb.q("SELECT event_id, job_id FROM event_attempts ORDER BY event_id")
    assert len(runs) == 3 and len({j for _, j in runs}) >= 2, runs
    assert qdb.one("SELECT count(*) FROM jobs_history WHERE subject = 'shared'") == len(
        {j for _, j in runs})


def test_job_due_behind_the_claim_mark_is_not_starved_by_a_backlog(qdb, drivers):
    # Claims start after the last job claimed (dead index entries at the front of
    # jobs_due cost more every claim); a full scan every 16th claim finds jobs that
    # became due behind that mark, so one does not wait for the whole backlog.
    qdb.q("INSERT INTO jobs (kind, key, run_at) SELECT 'noop', 'backlog:' || g,"
          " now() + g * interval '1 microsecond' FROM generate_series(1, 4000) g")
    drivers(workers=1)
    H.wait_for(lambda: qdb.one("SELECT count(*) FROM jobs_history") >= 300, 60, 0.05,
               "backlog started")
    late = qdb.one("INSERT INTO jobs (kind, key, run_at) VALUES"
                   " ('noop', 'behind', now() - interval '1 hour') RETURNING id")
    H.wait_for(lambda: qdb.one("SELECT count(*) FROM jobs_history WHERE id = %s", (late,)) == 1,
               30, 0.02, "job behind the mark done")
    left = qdb.one("SELECT count(*) FROM jobs WHERE key LIKE 'backlog:%%'")
    assert left >= 2000, f"the job behind the mark waited for {4000 - left} backlog jobs"
    H.wait_for(lambda: qdb.one("SELECT count(*) FROM jobs WHERE key LIKE 'backlog:%%'") == 0,
               120, 0.2, "backlog drained")
    assert qdb.one("SELECT count(*) FROM jobs_history WHERE state = 'done'"
                   " AND (key LIKE 'backlog:%%' OR key = 'behind')") == 4001


def test_job_committed_behind_the_mark_is_claimed_at_the_next_claim_after_a_commit(qdb, drivers):
    # The intake's connections commit out of run_at order, so a committed job can sit
    # behind the claim mark while claims keep coming back full; counting claims alone it
    # waited up to 15 more (up to a second in a backlog). After a commit (rd_queue_wake,
    # SIGUSR1 here) the next claim scans from the start: only jobs already claimed or
    # being claimed go before it. Three trials, each must hold.
    qdb.q("INSERT INTO jobs (kind, key, run_at, payload) SELECT 'test.script', 'backlog:' || g,"
          " now() + g * interval '1 microsecond', '{\"script\": {\"sleep_ms\": 15}}'"
          " FROM generate_series(1, 600) g")
    d = drivers(workers=1)
    H.wait_for(lambda: qdb.one("SELECT count(*) FROM jobs_history") >= 20, 60, 0.02,
               "backlog started")
    passed = []
    for trial in range(3):
        at, late = qdb.q("INSERT INTO jobs (kind, key, run_at) VALUES ('noop', %s,"
                         " now() - interval '1 hour') RETURNING clock_timestamp(), id",
                         (f"behind:{trial}",))[0]
        d.wake()  # the commit an intake would signal
        H.wait_for(lambda: qdb.one("SELECT count(*) FROM jobs_history WHERE id = %s",
                                   (late,)) == 1, 20, 0.01, f"job behind the mark ({trial})")
        started = qdb.one("SELECT started_at FROM jobs_history WHERE id = %s", (late,))
        passed.append(qdb.one("SELECT count(*) FROM jobs_history WHERE key LIKE 'backlog:%%'"
                              " AND started_at > %s AND started_at < %s", (at, started)))
        time.sleep(0.1)
    assert qdb.one("SELECT count(*) FROM jobs WHERE key LIKE 'backlog:%%'") > 0, \
        "the backlog ran out before the trials ended: they measured nothing"
    # one in the worker's hands, up to RD_QUEUE_PREFETCH claimed ahead; not 15 claims
    assert max(passed) <= 4, f"backlog jobs started before the job behind the mark: {passed}"


def test_scheduler_vacuums_the_hot_tables_after_churn(qdb, drivers):
    # Autovacuum visits once a minute at best; at queue rates the dead versions of
    # claimed and finished jobs pile up in between. The scheduler vacuums jobs and
    # job_events itself (last_vacuum, not last_autovacuum) once they pass 20,000.
    for t in ("jobs", "job_events"):
        qdb.q(f"ALTER TABLE {t} SET (autovacuum_enabled = false)")
    qdb.q("INSERT INTO events (connection_id, source, event_type, subject, auth, dedup_key,"
          " headers, body) SELECT %s, 'personio', 'test.noop', 'churn-' || g, 'token',"
          " sha256(convert_to('churn-' || g, 'UTF8')), '{}', '{}'"
          " FROM generate_series(1, 25000) g", (qdb.acme,))
    # Not analyzed since the burst: the queue's plans must follow the indexes anyway
    # (a plan from "jobs is empty" drained this at ~500 jobs/s instead of thousands).
    t0 = time.monotonic()
    drivers(workers=4)
    H.wait_for(lambda: qdb.one("SELECT count(*) FROM events WHERE status = 'done'") == 25000,
               120, 0.5, "25,000 jobs done")
    assert time.monotonic() - t0 < 30, f"25,000 no-op jobs took {time.monotonic() - t0:.0f} s"
    H.wait_for(lambda: qdb.one("SELECT count(*) FROM pg_stat_user_tables WHERE relname IN"
                               " ('jobs', 'job_events') AND last_vacuum IS NOT NULL") == 2,
               30, 0.5, "jobs and job_events vacuumed by the scheduler")
    # A vacuum may have run mid-drain; the next one follows once the rest is counted.
    H.wait_for(lambda: qdb.one("SELECT n_dead_tup FROM pg_stat_user_tables"
                               " WHERE relname = 'jobs'") < 20000, 30, 0.5,
               "dead tuples of jobs back under 20,000")
    assert qdb.one("SELECT count(*) FROM pg_stat_user_tables WHERE relname IN"
                   " ('jobs', 'job_events') AND last_autovacuum IS NOT NULL") == 0
    # Vacuums never truncate the hot tables (that takes an ACCESS EXCLUSIVE lock).
    for t in ("jobs", "job_events"):
        opts = qdb.one("SELECT reloptions FROM pg_class WHERE relname = %s", (t,))
        assert "vacuum_truncate=false" in opts, (t, opts)
    # The advisory lock was released: another session can take it.
    assert qdb.one("SELECT pg_try_advisory_lock(hashtext('rosterd.queue.vacuum'))") is True


def test_per_key_order_under_concurrency(qdb, drivers):
    # 12 keys x 8 jobs, inserted in shuffled run_at order; all due.
    rows = []
    for k in range(12):
        for n in range(8):
            rows.append((f"order:{k}", n, (n * 7 + k * 3) % 8))
    for key, n, pos in rows:
        qdb.q("INSERT INTO jobs (kind, key, run_at, unique_key, payload) VALUES"
              " ('test.script', %s, now() - interval '1 minute' + %s * interval '1 ms', %s, %s)",
              (key, pos, f"{key}:{n}", json.dumps({"script": {"sleep_ms": 20}})))
    drivers(workers=4)
    drivers(workers=4)
    H.wait_for(lambda: qdb.one("SELECT count(*) FROM jobs_history") == 96, 60, 0.2,
               "96 jobs done")
    for k in range(12):
        hist = qdb.q("SELECT run_at, id, started_at, finished_at FROM jobs_history"
                     " WHERE key = %s ORDER BY run_at, id", (f"order:{k}",))
        assert len(hist) == 8
        for prev, nxt in zip(hist, hist[1:]):
            assert nxt[2] >= prev[3], f"key order:{k}: overlap or out of order {prev} {nxt}"


def test_dead_job_does_not_block_its_key(qdb, drivers):
    dead = qdb.add_event(qdb.acme, "test.script", "same", {"fail": "permanent"})
    drivers()
    qdb.wait_status(dead, ("dead",), 10)
    later = qdb.add_event(qdb.acme, "test.script", "same")
    qdb.wait_status(later, ("done",), 5)


def test_coalescing_pending_and_during_run(qdb, drivers):
    ids = [qdb.add_event(qdb.acme, "test.noop", "c1") for _ in range(20)]
    qdb.derive()
    assert qdb.one("SELECT count(*) FROM jobs WHERE key LIKE %s", (f"{qdb.acme}:%",)) == 1
    assert qdb.one("SELECT count(*) FROM job_events") == 20
    drivers()
    for ev in ids:
        qdb.wait_status(ev, ("done",), 10)
    assert qdb.one("SELECT count(DISTINCT job_id) FROM event_attempts") == 1
    assert qdb.one("SELECT count(*) FROM jobs_history") == 1

    # While a job of a key runs, new events make exactly one follow-up job.
    first = qdb.add_event(qdb.acme, "test.script", "c2", {"sleep_ms": 1500})
    qdb.wait_status(first, ("running",), 5)
    more = [qdb.add_event(qdb.acme, "test.script", "c2") for _ in range(10)]
    qdb.derive()
    assert qdb.one("SELECT count(*) FROM jobs WHERE subject = 'c2' AND state = 'pending'") == 1
    for ev in more + [first]:
        qdb.wait_status(ev, ("done",), 10)
    assert qdb.one("SELECT count(*) FROM jobs_history WHERE subject = 'c2'") == 2


# --------------------------------------------------------------------------- operator tools

def test_dead_replay_done_keeps_attempt_log_and_dry_run_changes_nothing(qdb, drivers):
    ev = qdb.add_event(qdb.acme, "test.script", "rp", {"fail": "permanent", "fail_times": 1})
    other = qdb.add_event(qdb.acme, "test.noop", "ok")
    d = drivers()
    qdb.wait_status(ev, ("dead",), 10)
    qdb.wait_status(other, ("done",), 10)
    d.stop()

    dead_jobs = json.loads(H.rosterctl(qdb.conf, "jobs", "list", "--state", "dead",
                                       "--json").stdout)
    assert [(j["kind"], j["state"], j["attempts"]) for j in dead_jobs] == \
        [("test.script", "dead", 1)]
    assert set(dead_jobs[0]) >= {"id", "kind", "key", "state", "run_at", "attempts",
                                 "last_error"}
    assert dead_jobs[0]["last_error"] == "scripted permanent failure on attempt 1"

    before = qdb.snapshot()
    out = H.rosterctl(qdb.conf, "events", "replay", "--status", "dead", "--dry-run", "--json")
    r = json.loads(out.stdout)
    assert r["dry_run"] is True and r["count"] == 1 and r["events"] == [ev]
    text = H.rosterctl(qdb.conf, "events", "replay", "--status", "dead", "--connection",
                       "acme", "--since", "1h", "--dry-run").stdout
    assert f"would replay 1 event: {ev}" in text
    H.rosterctl(qdb.conf, "events", "replay", str(ev), "--dry-run")
    assert qdb.snapshot() == before

    res = H.rosterctl(qdb.conf, "events", "replay", str(ev), str(other), "999999", check=False)
    assert res.returncode == 1 and "999999" in res.stderr
    r = json.loads(H.rosterctl(qdb.conf, "events", "replay", "--status", "dead",
                               "--json").stdout)
    assert r["count"] == 0  # the explicit replay above already took it (and `other`, done)
    assert qdb.status(ev) == "pending"
    drivers()
    qdb.wait_status(ev, ("done",), 10)
    att = qdb.attempts(ev)
    assert [a[1] for a in att] == ["dead", "replayed", "done"]
    assert att[0][2] == "scripted permanent failure on attempt 1"
    assert qdb.one("SELECT count(*) FROM jobs WHERE state = 'dead'") == 0
    assert qdb.one("SELECT count(*) FROM jobs_history WHERE state = 'replayed'") == 1


def test_replay_bad_usage(qdb):
    for args in (["events", "replay"], ["events", "replay", "--status", "done"],
                 ["events", "replay", "1", "--status", "dead"],
                 ["events", "replay", "--status", "dead", "--since", "yesterday-ish"],
                 ["jobs", "list", "--state", "bogus"]):
        res = H.rosterctl(qdb.conf, *args, check=False)
        assert res.returncode == 2, (args, res.stderr)
    res = H.rosterctl(qdb.conf, "events", "replay", "--status", "dead", "--connection", "nope",
                      check=False)
    assert res.returncode == 1 and "nope" in res.stderr


# --------------------------------------------------------------------------- scheduler

def _expected_slots(tz, reconcile_at, now):
    z = ZoneInfo(tz)
    local = now.astimezone(z)
    hour = (now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1))
    day = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(0, 5), z)
    out = {"sweep.attendance": hour, "sweep.absence": day.astimezone(dt.timezone.utc)}
    if reconcile_at != "off":
        h, m = map(int, reconcile_at.split(":"))
        cand = dt.datetime.combine(local.date(), dt.time(h, m), z)
        if cand <= local:
            cand = dt.datetime.combine(local.date() + dt.timedelta(days=1), dt.time(h, m), z)
        out["reconcile"] = cand.astimezone(dt.timezone.utc)
    return out


def test_periodic_jobs_created_once_with_two_instances(qdb, drivers):
    ny = qdb.add_connection("ny", "America/New_York", "02:30")
    tokyo = qdb.add_connection("tokyo", "Asia/Tokyo", "23:45")
    now = dt.datetime.now(dt.timezone.utc)
    a, b = drivers(workers=1), drivers(workers=1)
    H.wait_for(lambda: qdb.one("SELECT count(*) FROM job_slots") == 2 + 3 + 3, 10, 0.1,
               "periodic slots")
    time.sleep(1.0)
    a.stop()
    drivers(workers=1)  # a restarted instance finds the slots and creates nothing
    time.sleep(1.5)
    rows = qdb.q("SELECT connection_id, kind, run_at, count(*) OVER (PARTITION BY connection_id,"
                 " kind) FROM jobs WHERE kind IN ('sweep.attendance','sweep.absence','reconcile')")
    assert len(rows) == 8
    assert all(r[3] == 1 for r in rows)
    got = {(r[0], r[1]): r[2] for r in rows}
    for cid, tz, rat in ((qdb.acme, "Europe/Berlin", "off"), (ny, "America/New_York", "02:30"),
                         (tokyo, "Asia/Tokyo", "23:45")):
        for kind, when in _expected_slots(tz, rat, now).items():
            assert got.pop((cid, kind)) == when, (tz, kind)
    assert got == {}
    b.stop()


def test_sigterm_finishes_current_job(qdb, drivers):
    ev = qdb.add_event(qdb.acme, "test.script", "t1", {"sleep_ms": 2000})
    d = drivers(workers=2)
    qdb.wait_status(ev, ("running",), 5)
    t0 = time.monotonic()
    assert d.stop(timeout=20) == 0
    assert time.monotonic() - t0 < 10
    assert qdb.status(ev) == "done"
    assert [a[1] for a in qdb.attempts(ev)] == ["done"]


# --------------------------------------------------------------------------- benchmark

def _claim_ms(drivers_list):
    """Mean claim-statement time (ms) from the drivers' debug lines, only claims that got work."""
    times = []
    for d in drivers_list:
        for line in d.stderr.splitlines():
            if '"queue: claimed ' in line:
                msg = json.loads(line)["msg"]
                got, _, ms = msg.split()[2], msg, float(msg.split()[-2])
                if got != "0":
                    times.append(ms)
    return sum(times) / len(times) if times else float("nan")


def _drain(qdb, drivers, n, subject_prefix):
    for i in range(0, n, 5000):
        qdb.add_events(qdb.acme, [("test.noop", f"{subject_prefix}{j}", {})
                                  for j in range(i, min(n, i + 5000))])
    qdb.q("ANALYZE")  # a bulk load outruns autovacuum: plan with current statistics
    t0 = time.monotonic()
    ds = [drivers(workers=4), drivers(workers=4)]
    H.wait_for(lambda: qdb.one("SELECT count(*) FROM jobs WHERE kind = 'noop'") == 0
               and qdb.one("SELECT rd_underived_events()") == 0, 1800, 0.2, f"{n} jobs drained")
    took = time.monotonic() - t0
    for d in ds:
        d.stop()
    return n / took, _claim_ms(ds)


@pytest.mark.bench  # not in run.sh: `pytest -m bench -s tests/integration/test_queue.py`
def test_bench_drain_and_claim_after_history(qdb, drivers, monkeypatch):
    """Drain rate of N no-op jobs with two instances (default 50,000), and the claim
    time at the start vs after a million completed jobs went through the tables."""
    import os
    monkeypatch.setenv("QUEUE_DRIVER_DEBUG", "1")
    n = int(os.environ.get("ROSTERD_QUEUE_BENCH_N", "50000"))
    rate, claim_start = _drain(qdb, drivers, n, "a")
    # A million completed jobs the way the workers leave them: events done, one
    # attempt each, jobs moved to jobs_history, links gone (bulk; txid NULL: history
    # from before sql/011, never derived again).
    for _ in range(10):
        qdb.q("""
          WITH e AS (
            INSERT INTO events (connection_id, source, event_type, subject, auth, dedup_key,
                                headers, body, status, attempts, txid)
            SELECT %s, 'personio', 'test.noop', 'h' || g, 'token',
                   decode(md5(random()::text || g), 'hex'), '{}', '{}', 'done', 1, NULL
            FROM generate_series(1, 100000) g RETURNING id, subject),
          j AS (INSERT INTO jobs (kind, key, subject, state) SELECT 'noop', 'h:' || subject,
                subject, 'running' FROM e RETURNING id, subject),
          a AS (INSERT INTO event_attempts (event_id, job_id, attempt, finished_at, outcome)
                SELECT e.id, j.id, 1, now(), 'done' FROM e JOIN j USING (subject))
          SELECT 1""", (qdb.acme,))
        qdb.q("""WITH d AS (DELETE FROM jobs WHERE kind = 'noop' RETURNING *)
                 INSERT INTO jobs_history (id, kind, key, subject, state, attempts, created_at,
                                           run_at, started_at, finished_at)
                 SELECT id, kind, key, subject, 'done', 1, created_at, run_at, now(), now()
                 FROM d""")
    qdb.q("VACUUM ANALYZE")
    assert qdb.one("SELECT count(*) FROM jobs_history") >= 1_000_000 + n
    m = min(n, 20000)
    rate_after, claim_after = _drain(qdb, drivers, m, "b")
    print(f"\nBENCH drain {n} no-op jobs, 2 instances x 4 workers: {rate:.0f} jobs/s;"
          f" claim {claim_start:.3f} ms at start, {claim_after:.3f} ms after 1M completed"
          f" ({m} jobs drained then at {rate_after:.0f} jobs/s)")
