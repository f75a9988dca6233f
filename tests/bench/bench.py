#!/usr/bin/env python3
"""
The rosterd benchmark (issue 5); run it through tests/bench/run.sh, which installs
what is missing and builds first. In one run it starts its own Postgres (fsync and
synchronous_commit on), nginx (TLS 1.3 `return 202`: the HTTPS ceiling), pgbench
(100-row INSERT per commit: the Postgres ceiling), rosterd and a Node + Fastify + pg
receiver; loads the HTTP ones with wrk (-t2 -c64, unique signed 1 KiB MOCO bodies),
checks every 202 against the database, then measures the queue (drain, latency,
soak) and prints one table; results also go to tests/bench/results/<timestamp>.json.
Exit status: 0 all targets PASS, 1 some MISS/FAIL, 2 the harness itself failed.
"""
import argparse
import datetime
import hmac
import hashlib
import http.client
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg2

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
IS_ROOT = os.geteuid() == 0

# Targets of issue 5.
T_INTAKE_VS_L = 0.7
T_INTAKE_P99_MS = 15.0
T_INTAKE_VS_NODE = 4.0
T_DRAIN_JOBS_S = 15000.0
T_SOAK_TOLERANCE = 0.10
T_LATENCY_P50_MS = 50.0
T_LATENCY_RATE = 1000.0
T_RSS_IDLE_MIB = 16.0
T_RSS_LOAD_MIB = 64.0


class BenchError(Exception):
    """A harness step failed: the run is not a measurement."""


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, timeout=120, check=True, as_pg=False, **kw):
    if as_pg and IS_ROOT:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    try:
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        raise BenchError(f"timed out after {timeout} s: {' '.join(map(str, cmd))}") from None
    if check and res.returncode != 0:
        raise BenchError(f"exit {res.returncode}: {' '.join(map(str, cmd))}\n"
                         f"{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    return res


# --------------------------------------------------------------------------- processes

class Procs:
    """Every process and directory the run started, undone by cleanup() (also on signals)."""

    def __init__(self, keep):
        self.procs = []  # (name, Popen)
        self.pg = None
        self.tmp = None
        self.keep = keep

    def spawn(self, name, cmd, env=None, stdout=None, cwd=None):
        logf = open(self.tmp / f"{name}.log", "ab")
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout or logf, stderr=logf,
                             env=env, cwd=cwd, start_new_session=True)
        logf.close()
        self.procs.append((name, p))
        return p

    def stop(self, p, timeout=30):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(10)
        self.procs = [(n, q) for n, q in self.procs if q is not p]
        return p.returncode

    def cleanup(self):
        for _name, p in reversed(list(self.procs)):
            try:
                self.stop(p, timeout=15)
            except Exception as e:  # keep cleaning up
                log(f"cleanup: {e}")
        if self.pg:
            try:
                self.pg.stop()
            except Exception as e:
                log(f"cleanup: postgres: {e}")
        if self.tmp and not self.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif self.tmp:
            log(f"kept {self.tmp}")


class Postgres:
    def __init__(self, procs, shared_buffers, pg_stats=False):
        self.pg_stats = pg_stats
        self.dir = procs.tmp / "pg"
        self.dir.mkdir()
        if IS_ROOT:
            shutil.chown(self.dir, "postgres", "postgres")
        os.chmod(self.dir, 0o700)
        self.port = free_port()
        self.running = False
        data = self.dir / "data"
        run([str(PG_BIN / "initdb"), "-D", str(data), "-E", "UTF8", "--auth=trust",
             "-U", "rosterd", "--locale=C"], as_pg=True, timeout=180)
        conf = (f"\n# tests/bench\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.dir}'\n"
                "fsync = on\nsynchronous_commit = on\nfull_page_writes = on\n"
                f"shared_buffers = {shared_buffers}\nmax_connections = 200\n"
                "max_wal_size = 4GB\ncheckpoint_timeout = 15min\n"
                "logging_collector = off\nlog_min_messages = warning\n")
        if pg_stats:
            conf += ("shared_preload_libraries = 'pg_stat_statements'\n"
                     "pg_stat_statements.track_planning = on\n"
                     "pg_stat_statements.track = all\n")
        with open(data / "postgresql.conf", "a") as f:
            f.write(conf)
        self.data = data
        run([str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(self.dir / "postgres.log"),
             "-w", "-t", "60", "start"], as_pg=True, timeout=90)
        self.running = True
        if pg_stats:
            self.q("postgres", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def stop(self):
        if self.running:
            run([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60",
                 "stop"], as_pg=True, timeout=90, check=False)
            self.running = False

    def url(self, db):
        return f"postgresql://rosterd@127.0.0.1:{self.port}/{db}"

    def connect(self, db, autocommit=True):
        c = psycopg2.connect(host="127.0.0.1", port=self.port, user="rosterd", dbname=db,
                             connect_timeout=10)
        c.autocommit = autocommit
        return c

    def q(self, db, sql, params=None):
        c = self.connect(db)
        try:
            with c.cursor() as cur:
                cur.execute(sql, params)
                return cur.fetchall() if cur.description else None
        finally:
            c.close()

    def create_db(self, name):
        self.q("postgres", f"CREATE DATABASE {name}")
        if self.pg_stats:
            self.q(name, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def log_stats(self, part, top=8):
        """--pg-stats: the statements that cost Postgres the most since the last call."""
        if not self.pg_stats:
            return
        rows = self.q("postgres",
                      "SELECT calls, rows, round(total_exec_time::numeric, 1),"
                      " round(total_plan_time::numeric, 1),"
                      " regexp_replace(left(query, 110), '\\s+', ' ', 'g')"
                      " FROM pg_stat_statements ORDER BY total_exec_time + total_plan_time DESC"
                      f" LIMIT {int(top)}")
        log(f"pg_stat_statements after {part} (calls, rows, exec ms, plan ms, statement):")
        for r in rows:
            log(f"  {r[0]:>8} {r[1]:>9} {r[2]:>10} {r[3]:>9}  {r[4]}")
        self.q("postgres", "SELECT pg_stat_statements_reset()")


class CommitSampler:
    """--pg-stats: how the intake's group commit meets the WAL. Samples the intake's
    sessions in pg_stat_activity every 10 ms (busy in a statement, waiting for a
    WAL flush, idle) and reads pg_stat_wal and the database's commits before and
    after, so a run reports events per commit and per WAL flush."""

    def __init__(self, pg, db, app):
        self.pg, self.db, self.app = pg, db, app
        self.states = {}
        self.stop_flag = threading.Event()
        self.before = self._counters()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _counters(self):
        return self.pg.q(self.db, "SELECT (SELECT wal_sync FROM pg_stat_wal),"
                         " (SELECT wal_write FROM pg_stat_wal),"
                         " (SELECT xact_commit FROM pg_stat_database"
                         "  WHERE datname = current_database()),"
                         " (SELECT count(*) FROM events)")[0]

    def _run(self):
        c = self.pg.connect(self.db)
        cur = c.cursor()
        while not self.stop_flag.wait(0.01):
            cur.execute("SELECT CASE WHEN state <> 'active' THEN 'idle'"
                        " WHEN wait_event IS NULL THEN 'cpu'"
                        " ELSE wait_event_type || ':' || wait_event END, count(*)"
                        " FROM pg_stat_activity WHERE application_name = %s GROUP BY 1",
                        (self.app,))
            for k, n in cur.fetchall():
                self.states[k] = self.states.get(k, 0) + n
        c.close()

    def finish(self):
        self.stop_flag.set()
        self.thread.join(10)
        after = self._counters()
        syncs, writes, commits, events = (int(a) - int(b) for a, b in zip(after, self.before))
        total = sum(self.states.values()) or 1
        out = {"wal_syncs": syncs, "wal_writes": writes, "commits": commits, "events": events,
               "events_per_commit": events / commits if commits else 0.0,
               "events_per_wal_sync": events / syncs if syncs else 0.0,
               "session_states": {k: round(v / total, 3) for k, v in
                                  sorted(self.states.items(), key=lambda kv: -kv[1])}}
        log(f"commit path: {events:,} events in {commits:,} commits"
            f" ({out['events_per_commit']:.1f} per commit), {syncs:,} WAL syncs"
            f" ({out['events_per_wal_sync']:.1f} events per sync); intake sessions: "
            + ", ".join(f"{k} {v:.0%}" for k, v in out["session_states"].items()))
        return out


# --------------------------------------------------------------------------- wrk

def parse_wrk(out):
    vals = {}
    for m in re.finditer(r"^BENCH (\w+) (-?\d+)$", out, re.M):
        vals[m.group(1)] = int(m.group(2))
    if "completed" not in vals:
        raise BenchError(f"wrk printed no summary:\n{out[-3000:]}")
    m = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    vals["wrk_rps"] = float(m.group(1)) if m else None
    m = re.search(r"Socket errors: (.*)$", out, re.M)
    vals["socket_errors"] = m.group(1).strip() if m else ""
    # The --latency distribution, as printed (a cross-check of p50_us/p99_us).
    dist = {}
    for m in re.finditer(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        mult = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(3)]
        dist[m.group(1)] = float(m.group(2)) * mult
    vals["latency_ms"] = dist
    return vals


def wrk(args, url, duration, prefix, ids_prefix="", wrap=False, sampler=None):
    env = dict(os.environ, BENCH_REQ_PREFIX=str(prefix), BENCH_IDS_PREFIX=str(ids_prefix),
               BENCH_WRAP="1" if wrap else "0")
    cmd = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{duration}s", "--latency",
           "--timeout", "10s", "-s", str(HERE / "replay.lua"), url]
    log(" ".join(cmd))
    if sampler:
        sampler.start()
    try:
        res = run(cmd, timeout=duration + 120, env=env)
    finally:
        if sampler:
            sampler.stop()
    v = parse_wrk(res.stdout)
    dur = v["duration_us"] / 1e6
    v["ok"] = v["c202"]
    v["rps"] = v["c202"] / dur if dur > 0 else 0.0
    v["p50_ms"] = v["p50_us"] / 1000.0
    v["p99_ms"] = v["p99_us"] / 1000.0
    v["raw"] = res.stdout
    return v


class RssSampler:
    """Peak VmRSS of one pid, sampled every 200 ms between start() and stop()."""

    def __init__(self, pid):
        self.pid = pid
        self.peak_kib = 0
        self.samples = 0
        self._stop = threading.Event()
        self._t = None

    def start(self):
        self._t = threading.Thread(target=self._loop, daemon=True)
        self._t.start()

    def _loop(self):
        while not self._stop.is_set():
            kib = rss_kib(self.pid)
            if kib:
                self.peak_kib = max(self.peak_kib, kib)
                self.samples += 1
            self._stop.wait(0.2)

    def stop(self):
        self._stop.set()
        if self._t:
            self._t.join(5)


def rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return 0
    return 0


# --------------------------------------------------------------------------- set-up

def make_tls(d):
    cert, key = d / "cert.pem", d / "key.pem"
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
    os.chmod(key, 0o600)
    return cert, key


def baseline_db(pg, name):
    """A database with rosterd's intake tables (sql/001_intake.sql) and one connection."""
    pg.create_db(name)
    c = pg.connect(name)
    with c.cursor() as cur:
        cur.execute((ROOT / "sql" / "001_intake.sql").read_text())
        cur.execute("INSERT INTO connections (name, timezone, config, sealed)"
                    " VALUES ('bench', 'UTC', '{}', '\\x00') RETURNING id")
        cid = cur.fetchone()[0]
    c.close()
    return cid


def write_rosterd(st, args):
    d = st.tmp
    key_file = d / "secret.key"
    key_file.write_bytes(secrets.token_bytes(32))
    os.chmod(key_file, 0o600)
    st.moco_key = secrets.token_hex(16)
    st.moco_key_file = d / "moco.key"
    st.moco_key_file.write_text(st.moco_key)
    os.chmod(st.moco_key_file, 0o600)
    st.rd_port = free_port()
    st.rd_admin = free_port()
    st.conf = d / "rosterd.conf"
    st.conf.write_text(
        f"listen = 127.0.0.1:{st.rd_port}\nadmin_listen = 127.0.0.1:{st.rd_admin}\n"
        f"tls_cert = {st.cert}\ntls_key = {st.key}\nsecret_key_file = {key_file}\n"
        f"database_url = {st.pg.url('rosterd')}\nlog_level = {getattr(args, 'log_level', 'warn')}\n"
        "log_format = json\n"
        "test_handlers = on\n"
        f"workers = {args.queue_workers}\n")
    conn = {
        "name": "bench", "timezone": "Europe/Berlin", "start_date": "2026-01-01",
        "personio": {"base_url": "https://127.0.0.1:9/personio", "client_id": "bench",
                     "client_secret": "env:BENCH_PERSONIO_SECRET",
                     "webhook_tokens": ["env:BENCH_PERSONIO_TOKEN"]},
        "moco": {"base_url": "https://127.0.0.1:9/moco/api/v1", "api_key": "env:BENCH_MOCO_API",
                 "webhook_keys": [f"file:{st.moco_key_file}"]},
        # The intake's MOCO Presence deliveries are worked by the attendance push since
        # the handlers landed; its upstreams here are nowhere (port 9), so the push is off
        # and each job is the handler's policy check: the queue parts time the queue.
        "policy": {"reconcile_at": "off", "attendance_push": False, "absence_sync": False},
    }
    cf = d / "bench.json"
    cf.write_text(json.dumps(conn))
    os.chmod(cf, 0o600)
    env = dict(os.environ, BENCH_PERSONIO_SECRET=secrets.token_hex(16),
               BENCH_PERSONIO_TOKEN=secrets.token_urlsafe(24), BENCH_MOCO_API=secrets.token_hex(16))
    rosterctl = str(args.build_dir / "rosterctl")
    st.pg.create_db("rosterd")
    run([rosterctl, "-c", str(st.conf), "migrate"], timeout=120)
    run([rosterctl, "-c", str(st.conf), "connection", "apply", str(cf)], env=env, timeout=60)
    st.rd_conn_id = st.pg.q("rosterd", "SELECT id FROM connections WHERE name = 'bench'")[0][0]


def wait_http(port, path, ok, timeout, tls_ctx=None, method="GET"):
    """Polls until ok(status) or raises; returns the last status."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            c = (http.client.HTTPSConnection("127.0.0.1", port, context=tls_ctx, timeout=5)
                 if tls_ctx else http.client.HTTPConnection("127.0.0.1", port, timeout=5))
            c.request(method, path)
            last = c.getresponse().status
            c.close()
            if ok(last):
                return last
        except OSError as e:
            last = str(e)
        time.sleep(0.1)
    raise BenchError(f"127.0.0.1:{port}{path} not ready after {timeout} s (last: {last})")


def start_rosterd(st, args, role, name, admin_port=None):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("ROSTERD_"):
            del env[k]
    port = admin_port or free_port()
    env["ROSTERD_ADMIN_LISTEN"] = f"127.0.0.1:{port}"
    p = st.procs.spawn(name, [str(args.build_dir / "rosterd"), "-c", str(st.conf),
                              "--role", role], env=env)
    wait_http(port, "/healthz", lambda s: s == 200, 30)
    if role != "worker":
        # The intake answers 503 until it has read the connection table once.
        wait_http(st.rd_port, "/webhooks/bench/moco", lambda s: s not in (503,), 30,
                  tls_ctx=st.tls_ctx)
    if p.poll() is not None:
        raise BenchError(f"rosterd ({role}) exited at start: see {st.tmp}/{name}.log")
    return p


# --------------------------------------------------------------------------- peers

def run_nginx(st, args):
    d = st.tmp / "nginx"
    d.mkdir()
    os.chmod(st.tmp, 0o755)
    port = free_port()
    user = "user root;\n" if IS_ROOT else ""
    (d / "nginx.conf").write_text(f"""{user}worker_processes {args.nginx_workers};
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    keepalive_requests 100000000; keepalive_timeout 65s;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {st.cert};
        ssl_certificate_key {st.key};
        ssl_protocols TLSv1.3;
        location / {{ return 202; }}
    }}
}}
""")
    p = st.procs.spawn("nginx", [args.nginx, "-p", str(d), "-c", str(d / "nginx.conf"),
                                 "-e", str(d / "error.log")])
    wait_http(port, "/", lambda s: s == 202, 20, tls_ctx=st.tls_ctx)
    v = wrk(args, f"https://127.0.0.1:{port}/webhooks/bench/moco", args.duration,
            st.small_prefix, wrap=True)
    st.procs.stop(p)
    return v


PGBENCH_SQL = """INSERT INTO events (connection_id, source, event_type, subject, auth, dedup_key,
                    headers, body)
SELECT {cid}, 'moco', 'Presence.update', (g % 500)::text, 'hmac',
       sha256(uuid_send(gen_random_uuid())),
       '{{"content-type": "application/json", "x-moco-target": "Presence", "x-moco-event": "update"}}',
       '{body}'
FROM generate_series(1, 100) AS g;
"""


def run_pgbench(st, args):
    cid = baseline_db(st.pg, "pgbase")
    sample = json.dumps({"id": 1, "date": "2026-11-20", "user": {"id": 7},
                         "pad": "p" * 940})
    script = st.tmp / "insert100.sql"
    script.write_text(PGBENCH_SQL.format(cid=cid, body=sample.replace("'", "''")))
    cmd = ["pgbench", "-n", "-M", "prepared", "-c", str(args.pg_clients), "-j", "2",
           "-T", str(args.duration), "-f", str(script), "-h", "127.0.0.1", "-p",
           str(st.pg.port), "-U", "rosterd", "pgbase"]
    log(" ".join(cmd))
    res = run(cmd, timeout=args.duration + 120)
    m = re.search(r"^tps = ([\d.]+) \(without initial connection time\)", res.stdout, re.M)
    lat = re.search(r"^latency average = ([\d.]+) ms", res.stdout, re.M)
    if not m:
        raise BenchError(f"pgbench printed no tps:\n{res.stdout}\n{res.stderr}")
    tps = float(m.group(1))
    rows = st.pg.q("pgbase", "SELECT count(*) FROM events")[0][0]
    return {"tps": tps, "rows_per_s": tps * 100, "rows": rows,
            "latency_avg_ms": float(lat.group(1)) if lat else None, "raw": res.stdout}


def check_ids(pg, db, conn_id, ids_prefix, threads, v):
    """Every 202 must name a committed row: each recorded event_id, and the count."""
    ids = []
    for t in range(1, threads + 1):
        p = Path(f"{ids_prefix}{t}")
        if p.exists():
            ids += [int(x) for x in p.read_text().split()]
    c = pg.connect(db)
    try:
        with c.cursor() as cur:
            cur.execute("CREATE TEMP TABLE acked (id bigint)")
            if ids:
                import io
                cur.copy_from(io.StringIO("\n".join(map(str, ids)) + "\n"), "acked")
            cur.execute("SELECT count(*) FROM acked a LEFT JOIN events e ON e.id = a.id"
                        " AND e.connection_id = %s WHERE e.id IS NULL", (conn_id,))
            missing = cur.fetchone()[0]
            cur.execute("SELECT count(DISTINCT id) FROM acked")
            distinct = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM events WHERE connection_id = %s", (conn_id,))
            rows = cur.fetchone()[0]
    finally:
        c.close()
    n202 = v["c202"]
    ok = (n202 > 0 and missing == 0 and distinct == len(ids) and rows >= n202 and
          v["c200"] == 0 and len(ids) <= n202 and n202 - len(ids) <= 32 * threads)
    return {"acked_202": n202, "answers_503": v["c503"], "answers_other": v["cother"], "ids_checked": len(ids), "ids_missing": missing,
            "ids_distinct": distinct, "rows": rows, "rows_minus_202": rows - n202,
            "duplicates_200": v["c200"], "ok": ok}


def run_rosterd_intake(st, args):
    p = start_rosterd(st, args, args.intake_role, "rosterd-intake", admin_port=st.rd_admin)
    idle = 0
    for _ in range(10):  # idle: connected, connection table read, no traffic
        time.sleep(0.2)
        idle = max(idle, rss_kib(p.pid))
    sampler = RssSampler(p.pid)
    ids = st.tmp / "ids-rosterd-"
    commits = CommitSampler(st.pg, "rosterd", "rosterd-intake") if args.pg_stats else None
    v = wrk(args, f"https://127.0.0.1:{st.rd_port}/webhooks/bench/moco", args.duration,
            st.req_prefix, ids_prefix=ids, sampler=sampler)
    if commits:
        v["commit_path"] = commits.finish()
    rc = st.procs.stop(p)
    v["rss_idle_mib"] = idle / 1024.0
    v["rss_peak_mib"] = sampler.peak_kib / 1024.0
    v["rss_samples"] = sampler.samples
    v["exit_code"] = rc
    v["check"] = check_ids(st.pg, "rosterd", st.rd_conn_id, ids, args.threads, v)
    return v


def run_node(st, args):
    cid = baseline_db(st.pg, "nodebase")
    port = free_port()
    cfgf = st.tmp / "node.json"
    cfgf.write_text(json.dumps({"port": port, "cert": str(st.cert), "key": str(st.key),
                                "database_url": st.pg.url("nodebase"), "pool_size": 16,
                                "connection_id": cid, "name": "bench",
                                "moco_keys": [st.moco_key]}))
    os.chmod(cfgf, 0o600)
    env = dict(os.environ, BENCH_NODE_CONFIG=str(cfgf), NODE_ENV="production")
    p = st.procs.spawn("node", [args.node, str(HERE / "node_receiver.js")], env=env, cwd=HERE)
    wait_http(port, "/webhooks/bench/moco", lambda s: s in (404, 405), 30, tls_ctx=st.tls_ctx)
    ids = st.tmp / "ids-node-"
    v = wrk(args, f"https://127.0.0.1:{port}/webhooks/bench/moco", args.duration,
            st.req_prefix, ids_prefix=ids)
    st.procs.stop(p)
    v["check"] = check_ids(st.pg, "nodebase", cid, ids, args.threads, v)
    return v


# --------------------------------------------------------------------------- queue

def worker_mode(args):
    """How this build runs the queue: 'rosterd' when rosterd links it, else queue_driver."""
    rd = args.build_dir / "rosterd"
    try:
        syms = run(["nm", str(rd)], timeout=60).stdout
        if re.search(r"\bT rd_queue_start\b", syms):
            return "rosterd"
    except BenchError:
        return "rosterd"
    if (args.build_dir / "queue_driver").exists():
        return "queue_driver"
    return None


def start_workers(st, args, mode, tag):
    ps = []
    for i in range(args.queue_instances):
        name = f"{tag}-w{i + 1}"
        if mode == "rosterd":
            ps.append(start_rosterd(st, args, "worker", name))
        else:
            p = st.procs.spawn(name, [str(args.build_dir / "queue_driver"), "--db",
                                      st.pg.url("rosterd"), "--workers", str(args.queue_workers),
                                      "--name", f"{name}:{os.getpid()}"], stdout=subprocess.PIPE)
            line = p.stdout.readline().decode().strip()
            if line != "ready":
                raise BenchError(f"queue_driver did not start: see {st.tmp}/{name}.log")
            ps.append(p)
    return ps


INSERT_EVENTS_SQL = """
INSERT INTO events (connection_id, source, event_type, subject, auth, dedup_key, headers, body)
SELECT %(cid)s, 'moco', %(type)s, %(tag)s || '-' || g, 'hmac',
       sha256(convert_to(%(tag)s || '-' || g, 'UTF8')), '{}', '{"bench": "queue"}'
FROM generate_series(%(first)s, %(last)s) AS g
"""


def run_drain(st, args, mode):
    n = args.drain_jobs
    tag = f"drain-{secrets.token_hex(4)}"
    c = st.pg.connect("rosterd")
    cur = c.cursor()
    t = time.monotonic()
    cur.execute(INSERT_EVENTS_SQL, {"cid": st.rd_conn_id, "type": "test.drain", "tag": tag,
                                    "first": 1, "last": n})
    inserted = time.monotonic() - t
    # The intake's commit writes only events (sql/011_derived_jobs.sql); their jobs are
    # derived afterwards by a dispatcher. Derived here, timed on its own, so the drain
    # times the same 100,000 pending jobs as before; the soak leaves it to the workers.
    t = time.monotonic()
    derive_s = 0.0
    if st.pg.q("rosterd", "SELECT to_regproc('rd_derive_jobs') IS NOT NULL")[0][0]:
        while True:
            cur.execute("SELECT rd_derive_jobs(10000)")
            k = cur.fetchone()[0]
            if 0 <= k < 10000:
                break
        derive_s = time.monotonic() - t
    cur.execute("SELECT count(*) FROM jobs WHERE kind = 'noop' AND state = 'pending'")
    queued = cur.fetchone()[0]
    log(f"queued {queued} no-op jobs: events inserted in {inserted:.1f} s,"
        f" jobs derived in {derive_s:.2f} s")
    if queued < n:
        raise BenchError(f"expected {n} pending noop jobs, found {queued}")
    # A bulk load outruns autovacuum's minute: refresh statistics as it soon would,
    # so the planner probes indexes instead of scanning tables it thinks are empty.
    cur.execute("ANALYZE")
    cur.execute("CHECKPOINT")
    t0 = time.time()
    ws = start_workers(st, args, mode, "drain")
    deadline = time.monotonic() + max(120, n / 1000)
    left = queued
    # EXISTS stops at the first open job: a count(*) here scanned the whole hot table
    # five times a second and took ~10 % of the CPU the drain itself needed.
    while time.monotonic() < deadline:
        cur.execute("SELECT EXISTS (SELECT 1 FROM jobs WHERE kind = 'noop')")
        if not cur.fetchone()[0]:
            left = 0
            break
        time.sleep(0.2)
    if left:
        cur.execute("SELECT count(*) FROM jobs WHERE kind = 'noop'")
        left = cur.fetchone()[0]
    wall_end = time.time()
    for w in ws:
        st.procs.stop(w)
    cur.execute("SELECT count(*), extract(epoch FROM max(h.finished_at)),"
                " extract(epoch FROM min(h.started_at))"
                " FROM jobs_history h WHERE h.kind = 'noop' AND h.state = 'done'"
                " AND h.subject LIKE %s", (tag + "-%",))
    done, last_fin, first_start = cur.fetchone()
    cur.execute("SELECT count(*) FROM events WHERE subject LIKE %s AND status = 'done'",
                (tag + "-%",))
    ev_done = cur.fetchone()[0]
    c.close()
    end = float(last_fin) if last_fin else wall_end
    secs = max(end - t0, 1e-6)
    return {"jobs": n, "done": done, "events_done": ev_done, "left": left, "seconds": secs,
            "derive_seconds": derive_s,
            "jobs_per_s": done / secs if left == 0 else 0.0,
            "claim_to_finish_jobs_per_s":
                done / max(float(last_fin) - float(first_start), 1e-6) if last_fin else 0.0,
            "instances": args.queue_instances, "workers_per_instance": args.queue_workers,
            "mode": mode}


def latency_sender(st, rate, seconds, tag):
    """Paced keep-alive HTTPS sender: request i leaves at t0 + i/rate (128 threads, so
    1,000 req/s holds while answers take up to ~120 ms)."""
    key = st.moco_key.encode()
    n = int(rate * seconds)
    nthreads = 128
    results = [[] for _ in range(nthreads)]
    t0 = time.monotonic() + 0.5

    def worker(k):
        conn = http.client.HTTPSConnection("127.0.0.1", st.rd_port, context=st.tls_ctx,
                                           timeout=10)
        for i in range(k, n, nthreads):
            body = json.dumps({"id": i, "user": {"id": f"{tag}-{i}"}, "bench": tag,
                               "pad": "p" * 900}).encode()
            sig = hmac.new(key, body, hashlib.sha256).hexdigest()
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            s = time.monotonic()
            try:
                conn.request("POST", "/webhooks/bench/moco", body,
                             {"Content-Type": "application/json", "X-Moco-Target": "test",
                              "X-Moco-Event": "latency", "X-Moco-Signature": sig})
                r = conn.getresponse()
                r.read()
                results[k].append((r.status, time.monotonic() - s))
            except (OSError, http.client.HTTPException):
                results[k].append((0, time.monotonic() - s))
                conn.close()
                conn = http.client.HTTPSConnection("127.0.0.1", st.rd_port, context=st.tls_ctx,
                                                   timeout=10)
        conn.close()

    ts = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(nthreads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(seconds + 120)
    elapsed = time.monotonic() - t0
    flat = [x for r in results for x in r]
    return flat, elapsed


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(p / 100 * len(xs)) - 1))]


def run_latency(st, args, mode):
    tag = f"lat-{secrets.token_hex(4)}"
    procs = []
    if mode == "rosterd":
        procs.append(start_rosterd(st, args, "all", "latency-all", admin_port=st.rd_admin))
    else:
        procs.append(start_rosterd(st, args, "ingest", "latency-ingest", admin_port=st.rd_admin))
        procs += start_workers(st, args, mode, "latency")
    sent, elapsed = latency_sender(st, T_LATENCY_RATE, args.latency_seconds, tag)
    ok = sum(1 for s, _ in sent if s == 202)
    c = st.pg.connect("rosterd")
    cur = c.cursor()
    q = ("SELECT extract(epoch FROM ea.started_at - e.received_at) * 1000,"
         " extract(epoch FROM e.received_at)"
         " FROM events e JOIN event_attempts ea ON ea.event_id = e.id AND ea.attempt = 1"
         " WHERE e.event_type = 'test.latency' AND e.subject LIKE %s")
    deadline = time.monotonic() + 60
    lat = []
    while time.monotonic() < deadline:
        cur.execute(q, (tag + "-%",))
        rows = cur.fetchall()
        lat = [float(r[0]) for r in rows]
        if len(lat) >= ok:
            break
        time.sleep(0.5)
    c.close()
    for p in procs:
        st.procs.stop(p)
    client = [d * 1000 for s, d in sent if s == 202]
    # Where the slow ones were: the worst 100 ms windows of arrivals (s from the first).
    first = min((float(r[1]) for r in rows), default=0.0)
    windows = {}
    for r in rows:
        w = windows.setdefault(int((float(r[1]) - first) * 10), [0, 0.0])
        w[0] += 1
        w[1] = max(w[1], float(r[0]))
    worst = sorted(windows.items(), key=lambda kv: -kv[1][1])[:5]
    return {"worst_windows": [{"at_s": k / 10, "events": n, "max_ms": round(m, 1)}
                              for k, (n, m) in worst],
            "rate_target": T_LATENCY_RATE, "sent": len(sent), "accepted_202": ok,
            "rate_achieved": len(sent) / elapsed if elapsed > 0 else 0.0,
            "handler_started": len(lat), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
            "max_ms": max(lat) if lat else None, "client_p50_ms": pct(client, 50),
            "client_p99_ms": pct(client, 99), "mode": mode}


def run_soak(st, args, mode):
    rate = args.soak_rate
    secs = args.soak
    window = 60 if secs >= 300 else 10
    tag = f"soak-{secrets.token_hex(4)}"
    ws = start_workers(st, args, mode, "soak")
    feed = st.pg.connect("rosterd")
    fcur = feed.cursor()
    mon = st.pg.connect("rosterd")
    mcur = mon.cursor()
    batch = max(1, int(rate / 10))
    fed = 0
    samples = []  # (t, dead, live, size, backlog)
    t0 = time.monotonic()
    t0_wall = time.time()
    next_sample = t0
    i = 0
    stopped_early = None
    while True:
        now = time.monotonic()
        if now - t0 >= secs:
            break
        due = t0 + i * 0.1
        if now < due:
            time.sleep(due - now)
        fcur.execute(INSERT_EVENTS_SQL, {"cid": st.rd_conn_id, "type": "test.soak", "tag": tag,
                                         "first": fed + 1, "last": fed + batch})
        fed += batch
        i += 1
        if time.monotonic() >= next_sample:
            mcur.execute("SELECT n_dead_tup, n_live_tup, pg_total_relation_size('jobs'),"
                         " (SELECT count(*) FROM jobs WHERE kind = 'noop') + rd_underived_events()"
                         " FROM pg_stat_user_tables WHERE relname = 'jobs'")
            dead, live, size, backlog = mcur.fetchone()
            samples.append((time.monotonic() - t0, dead, live, size, backlog))
            next_sample += 5
            if backlog > 30 * rate:  # workers fell 30 s behind: the target is missed
                stopped_early = f"backlog {backlog} jobs after {time.monotonic() - t0:.0f} s"
                log(f"soak: stopping early, {stopped_early}")
                break
    feed_secs = time.monotonic() - t0
    # Let the tail drain (bounded), then read completions per window from history.
    end = time.monotonic() + 60
    while time.monotonic() < end:
        mcur.execute("SELECT count(*) + rd_underived_events() FROM jobs WHERE kind = 'noop'")
        if mcur.fetchone()[0] == 0:
            break
        time.sleep(0.5)
    mcur.execute("SELECT floor((extract(epoch FROM finished_at) - %s) / %s)::int AS w, count(*)"
                 " FROM jobs_history WHERE kind = 'noop' AND subject LIKE %s GROUP BY w ORDER BY w",
                 (t0_wall, window, tag + "-%"))
    per = {w: n for w, n in mcur.fetchall()}
    feed.close()
    mon.close()
    for w in ws:
        st.procs.stop(w)
    full = int(min(secs, feed_secs) // window)
    rates = [per.get(w, 0) / window for w in range(full)]
    offered = fed / feed_secs if feed_secs > 0 else 0.0
    within = not stopped_early and bool(rates) and all(abs(r - rate) <= T_SOAK_TOLERANCE * rate for r in rates)
    third = max(1, len(samples) // 3)
    first_max = max((s[1] for s in samples[:third]), default=0)
    last_max = max((s[1] for s in samples[-third:]), default=0)
    dead_ok = last_max <= 1.25 * first_max + 5000
    return {"seconds": secs, "rate_target": rate, "offered_rate": offered, "fed": fed,
            "window_s": window, "window_rates": rates, "throughput_within_10pct": within,
            "dead_tup_first_third_max": first_max, "dead_tup_last_third_max": last_max,
            "dead_tup_ok": dead_ok,
            "jobs_size_start": samples[0][3] if samples else None,
            "jobs_size_end": samples[-1][3] if samples else None,
            "backlog_max": max((s[4] for s in samples), default=0),
            "stopped_early": stopped_early, "samples": samples, "mode": mode}


# --------------------------------------------------------------------------- report

def report(res, args):
    ng, pgb, rd, nd = res.get("nginx"), res.get("pgbench"), res.get("rosterd"), res.get("node")
    L = None
    if ng and pgb and ng["rps"] > 0 and pgb["rows_per_s"] > 0:
        L = 1.0 / (1.0 / ng["rps"] + 1.0 / pgb["rows_per_s"])
    res["L"] = L
    fmt = "{:<44} {:>10} {:>8} {:>8}  {}"
    lines = [fmt.format("system", "req/s", "p50 ms", "p99 ms", "ratio vs target")]
    lines.append("-" * 100)
    f0 = lambda x: "-" if x is None else f"{x:,.0f}"
    f2 = lambda x: "-" if x is None else f"{x:.2f}"
    if ng:
        lines.append(fmt.format(f"nginx TLS1.3 return 202 ({args.nginx_workers} workers)",
                                f0(ng["rps"]), f2(ng["p50_ms"]), f2(ng["p99_ms"]),
                                "HTTPS ceiling"))
    if pgb:
        lines.append(fmt.format(f"pgbench 100-row INSERT/commit ({args.pg_clients} cl) rows/s",
                                f0(pgb["rows_per_s"]), "-", "-",
                                f"Postgres ceiling ({pgb['tps']:,.0f} tps)"))
    if L:
        lines.append(fmt.format("L = 1/(1/nginx + 1/pgbench)", f0(L), "-", "-",
                                f"0.7 x L = {0.7 * L:,.0f}"))
    targets = []
    if rd:
        ratio = rd["rps"] / L if L else None
        lines.append(fmt.format(f"rosterd intake (--role {args.intake_role})", f0(rd["rps"]),
                                f2(rd["p50_ms"]), f2(rd["p99_ms"]),
                                f"rosterd/L = {f2(ratio)} (target >= {T_INTAKE_VS_L})"))
        if ratio is not None:
            targets.append(("intake >= 0.7 x L", f"{ratio:.2f} x L", ratio >= T_INTAKE_VS_L))
        targets.append(("intake p99 <= 15 ms", f"{rd['p99_ms']:.2f} ms",
                        rd["p99_ms"] <= T_INTAKE_P99_MS))
        ck = rd["check"]
        targets.append(("every 202 backed by a committed row",
                        f"{ck['acked_202']} x 202, {ck['ids_checked']} ids checked, "
                        f"{ck['ids_missing']} missing, {ck['rows']} rows, "
                        f"{ck['answers_503']} x 503, {ck['answers_other']} other", ck["ok"]))
        targets.append(("RSS idle <= 16 MiB", f"{rd['rss_idle_mib']:.1f} MiB",
                        rd["rss_idle_mib"] <= T_RSS_IDLE_MIB))
        targets.append(("RSS under load <= 64 MiB", f"{rd['rss_peak_mib']:.1f} MiB",
                        0 < rd["rss_peak_mib"] <= T_RSS_LOAD_MIB))
    if nd:
        ratio = rd["rps"] / nd["rps"] if rd and nd["rps"] > 0 else None
        lines.append(fmt.format(f"node {res['versions'].get('node', '')} fastify+pg (pool 16)",
                                f0(nd["rps"]), f2(nd["p50_ms"]), f2(nd["p99_ms"]),
                                f"rosterd/node = {f2(ratio)} (target >= {T_INTAKE_VS_NODE})"))
        if ratio is not None:
            targets.append(("intake >= 4 x node", f"{ratio:.2f} x", ratio >= T_INTAKE_VS_NODE))
    for name in ("rosterd", "node"):
        v = res.get(name)
        if v and v.get("exhausted"):
            targets.append((f"{name}: request files lasted the run",
                            f"{v['exhausted']} requests past the end", False))
    qd, ql, qs = res.get("drain"), res.get("latency"), res.get("soak")
    if qd:
        lines.append(fmt.format(f"queue drain {qd['jobs']:,} no-op jobs ({qd['instances']}x"
                                f"{qd['workers_per_instance']}) jobs/s",
                                f0(qd["jobs_per_s"]), "-", "-",
                                f"{qd['jobs_per_s'] / T_DRAIN_JOBS_S:.2f} x 15,000"))
        targets.append(("queue drain >= 15,000 jobs/s",
                        f"{qd['jobs_per_s']:,.0f} jobs/s ({qd['done']} done in "
                        f"{qd['seconds']:.2f} s)",
                        qd["jobs_per_s"] >= T_DRAIN_JOBS_S and qd["done"] == qd["jobs"]))
    if ql:
        lines.append(fmt.format(f"webhook -> handler start @ {ql['rate_achieved']:,.0f} req/s",
                                "-", f2(ql["p50_ms"]), f2(ql["p99_ms"]),
                                f"p50 target <= {T_LATENCY_P50_MS:.0f} ms"))
        ok = (ql["p50_ms"] is not None and ql["p50_ms"] <= T_LATENCY_P50_MS and
              ql["handler_started"] >= ql["accepted_202"] > 0 and
              ql["rate_achieved"] >= 0.9 * T_LATENCY_RATE)
        targets.append(("webhook -> handler p50 <= 50 ms at 1,000 req/s",
                        f"p50 {f2(ql['p50_ms'])} ms, {ql['handler_started']}/"
                        f"{ql['accepted_202']} started, {ql['rate_achieved']:.0f} req/s", ok))
    if qs:
        rates = ", ".join(f"{r:,.0f}" for r in qs["window_rates"])
        lines.append(fmt.format(f"queue soak {qs['seconds']} s @ {qs['rate_target']:,.0f}"
                                " jobs/s", f0(qs["offered_rate"]), "-", "-",
                                f"per {qs['window_s']} s: {rates}"))
        targets.append((f"soak throughput within 10 % ({qs['seconds']} s)",
                        f"windows {rates} jobs/s vs {qs['rate_target']:,.0f}"
                        + (f"; stopped early: {qs['stopped_early']}" if qs["stopped_early"]
                           else ""),
                        qs["throughput_within_10pct"]))
        targets.append(("soak: no growth of dead tuples in jobs",
                        f"max {qs['dead_tup_first_third_max']} first third, "
                        f"{qs['dead_tup_last_third_max']} last third", qs["dead_tup_ok"]))
    if res.get("queue_note"):
        lines.append("note: " + res["queue_note"])
    for name, why in res.get("pending", {}).items():
        targets.append((name, why, None))
    lines.append("")
    tw = max([len(t[0]) for t in targets] + [10])
    for name, val, ok in targets:
        mark = "PEND" if ok is None else ("PASS" if ok else
                                          ("FAIL" if "committed" in name else "MISS"))
        lines.append(f"{mark}  {name:<{tw}}  {val}")
    res["targets"] = [{"target": n, "value": v, "result": "pending" if ok is None else
                       ("pass" if ok else "miss")} for n, v, ok in targets]
    return "\n".join(lines), all(ok for _, _, ok in targets if ok is not None)


# --------------------------------------------------------------------------- main

def versions(args):
    def first_line(cmd):
        try:
            r = run(cmd, timeout=20, check=False)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (BenchError, IndexError, OSError):
            return "?"
    return {"node": first_line([args.node, "--version"]),
            "nginx": first_line([args.nginx, "-v"]),
            "wrk": first_line(["wrk", "--version"]).split(" Copyright")[0],
            "postgres": first_line([str(PG_BIN / "postgres"), "--version"]),
            "rosterd_build": str(args.build_dir)}


def parse_args(argv):
    ap = argparse.ArgumentParser(description="rosterd benchmark (see tests/bench/README.md)")
    ap.add_argument("--quick", action="store_true", help="short run: 10 s loads, 60 s soak")
    ap.add_argument("--duration", type=int, help="seconds per wrk/pgbench load (default 30)")
    ap.add_argument("--soak", type=int, help="soak seconds (default 600; --quick 60; 0 skips)")
    ap.add_argument("--latency-seconds", type=int, help="paced sender seconds (default 30)")
    ap.add_argument("--drain-jobs", type=int, help="no-op jobs to drain (default 100000)")
    ap.add_argument("--soak-rate", type=float, default=T_DRAIN_JOBS_S / 2)
    ap.add_argument("--max-rate", type=float, help="req/s the request files must last for "
                    "(default 1.25 x the nginx rate of this run)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--pg-clients", type=int, default=16)
    ap.add_argument("--nginx-workers", type=int, default=2)
    ap.add_argument("--queue-instances", type=int, default=2)
    ap.add_argument("--queue-workers", type=int, default=8)
    ap.add_argument("--shared-buffers", default="256MB")
    ap.add_argument("--only", default="intake,queue",
                    help="comma list of parts: intake (nginx, pgbench, rosterd, node), queue")
    ap.add_argument("--skip-node", action="store_true")
    ap.add_argument("--intake-role", default="ingest", choices=("ingest", "all"),
                    help="rosterd role for the intake load (default ingest: no workers)")
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build-bench")
    ap.add_argument("--node", default=shutil.which("node") or "node")
    ap.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    ap.add_argument("--pg-stats", action="store_true",
                    help="load pg_stat_statements and log the top statements of each part")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    ap.add_argument("--log-level", default="warn", choices=("error", "warn", "info", "debug"),
                    help="rosterd's log_level (debug logs every claim, for timelines)")
    a = ap.parse_args(argv)
    a.duration = a.duration or (10 if a.quick else 30)
    a.soak = a.soak if a.soak is not None else (60 if a.quick else 600)
    a.latency_seconds = a.latency_seconds or (10 if a.quick else 30)
    a.drain_jobs = a.drain_jobs or (20000 if a.quick else 100000)
    a.build_dir = a.build_dir.resolve()
    a.parts = set(a.only.split(","))
    return a


class St:
    """The run's shared state (paths, ports, keys)."""


def main(argv):
    args = parse_args(argv)
    procs = Procs(args.keep)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    res = {"started": datetime.datetime.now().isoformat(timespec="seconds"),
           "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                    if k != "parts"},
           "versions": versions(args), "cores": os.cpu_count(), "pending": {}}
    log("versions: " + ", ".join(f"{k} {v}" for k, v in res["versions"].items()))
    try:
        st = St()
        st.procs = procs
        procs.tmp = Path(tempfile.mkdtemp(prefix="rosterd-bench-"))
        os.chmod(procs.tmp, 0o755)
        st.tmp = procs.tmp
        st.cert, st.key = make_tls(st.tmp)
        st.tls_ctx = ssl.create_default_context(cafile=str(st.cert))
        st.pg = procs.pg = Postgres(procs, args.shared_buffers, args.pg_stats)
        write_rosterd(st, args)
        if "intake" in args.parts:
            run_intake_part(st, args, res)
        if "queue" in args.parts:
            run_queue_part(st, args, res)
    except BenchError as e:
        log(f"ERROR: {e}")
        procs.cleanup()
        return 2
    except BaseException:
        procs.cleanup()
        raise
    procs.cleanup()
    table, all_pass = report(res, args)
    print(f"\nrosterd benchmark, {res['started']}, {os.cpu_count()} cores, duration "
          f"{args.duration} s, wrk -t{args.threads} -c{args.connections}; "
          + ", ".join(f"{k}: {v}" for k, v in res["versions"].items() if k != "rosterd_build"))
    print(table)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    path = out / (time.strftime("%Y%m%dT%H%M%S") + ".json")
    for v in res.values():
        if isinstance(v, dict):
            v.pop("raw", None)
    path.write_text(json.dumps(res, indent=2, default=str))
    print(f"\nresults: {path}")
    return 0 if all_pass else 1


def run_intake_part(st, args, res):
    # A small request set for nginx (which ignores bodies, so it may wrap around).
    st.small_prefix = st.tmp / "req-small-"
    run([sys.executable, str(HERE / "gen_requests.py"), "--key-file", str(st.moco_key_file),
         "--prefix", str(st.small_prefix), "--count", "20000", "--threads", str(args.threads)],
        timeout=300)
    log("nginx ...")
    res["nginx"] = run_nginx(st, args)
    log(f"nginx: {res['nginx']['rps']:,.0f} req/s")
    log("pgbench ...")
    res["pgbench"] = run_pgbench(st, args)
    log(f"pgbench: {res['pgbench']['rows_per_s']:,.0f} rows/s")
    rate = args.max_rate or max(2000.0, 1.25 * res["nginx"]["rps"])
    count = int(rate * (args.duration + 2)) + 1000
    log(f"generating {count:,} signed requests (for up to {rate:,.0f} req/s) ...")
    st.req_prefix = st.tmp / "req-"
    run([sys.executable, str(HERE / "gen_requests.py"), "--key-file", str(st.moco_key_file),
         "--prefix", str(st.req_prefix), "--count", str(count), "--threads", str(args.threads)],
        timeout=1800)
    res["request_files"] = {"count": count, "rate_cap": rate}
    st.pg.q("postgres", "CHECKPOINT")
    log("rosterd intake ...")
    st.pg.log_stats("baselines")
    res["rosterd"] = run_rosterd_intake(st, args)
    st.pg.log_stats("rosterd intake")
    r = res["rosterd"]
    log(f"rosterd: {r['rps']:,.0f} req/s, check {'ok' if r['check']['ok'] else 'FAILED'}")
    if not args.skip_node:
        st.pg.q("postgres", "CHECKPOINT")
        log("node ...")
        res["node"] = run_node(st, args)
        log(f"node: {res['node']['rps']:,.0f} req/s")


def work_backlog(st, args, mode):
    """The intake part ran rosterd --role ingest: its events wait in ~500 coalesced jobs.
    Work them off before the queue is measured, so the drain times no-op jobs only."""
    # Events not derived yet are backlog too (sql/011_derived_jobs.sql).
    left = st.pg.q("rosterd", "SELECT count(*) + rd_underived_events() FROM jobs"
                   " WHERE unique_key IS NULL")[0][0]
    if not left:
        return
    log(f"working off the intake's backlog first ({left:,} jobs) ...")
    ws = start_workers(st, args, mode, "backlog")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if not st.pg.q("rosterd", "SELECT EXISTS (SELECT 1 FROM jobs WHERE unique_key IS NULL)"
                       " OR rd_underived_events() > 0")[0][0]:
            break
        time.sleep(0.5)
    else:
        raise BenchError("the intake's backlog was not worked off within 300 s")
    for w in ws:
        st.procs.stop(w)
    st.pg.q("rosterd", "VACUUM ANALYZE")


def run_queue_part(st, args, res):
    mode = worker_mode(args)
    if mode is None:
        for t in ("queue drain", "webhook -> handler latency", "queue soak"):
            res["pending"][t] = "pending queue: neither rosterd nor queue_driver runs jobs"
        return
    if mode != "rosterd":
        log("rosterd does not run the queue in this build: using tests/tools/queue_driver")
        res["queue_note"] = ("pending queue: rosterd --role worker/all does not run the queue "
                             "in this build; workers were tests/tools/queue_driver instances")
    work_backlog(st, args, mode)
    st.pg.q("postgres", "CHECKPOINT")
    log(f"queue drain of {args.drain_jobs:,} jobs ({mode}) ...")
    st.pg.log_stats("setup")
    res["drain"] = run_drain(st, args, mode)
    st.pg.log_stats("drain")
    log(f"drain: {res['drain']['jobs_per_s']:,.0f} jobs/s")
    log(f"latency at {T_LATENCY_RATE:.0f} req/s for {args.latency_seconds} s ...")
    res["latency"] = run_latency(st, args, mode)
    st.pg.log_stats("latency")
    lt = res["latency"]
    log(f"latency p50 {lt['p50_ms']} ms, p99 {lt['p99_ms']} ms, max {lt['max_ms']} ms; worst "
        "100 ms windows of arrivals: " + ", ".join(f"{w['at_s']:.1f} s ({w['max_ms']} ms)"
                                                   for w in lt["worst_windows"]))
    if args.soak > 0:
        log(f"soak {args.soak} s at {args.soak_rate:,.0f} jobs/s ...")
        res["soak"] = run_soak(st, args, mode)
        st.pg.log_stats("soak", top=14)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
