#!/usr/bin/env python3
"""
The queue after a real burst (issue 14); run it through tests/bench/burst.sh, which
builds first. For each worker count and run: a fresh database in the bench's own
Postgres, N Personio deliveries of a type no handler takes (`document.created`,
unique bodies and person ids, the webhook token) sent by wrk through
`rosterd --role ingest`, the ingest instance stopped, no ANALYZE or VACUUM by hand,
then one `rosterd --role worker` started, `rosterd_jobs{state}` read from its
/metrics every 0.5 s, timed from the worker's spawn until pending + running are back
to zero. Prints a per-second timeline of each run and a table of medians against
the targets; results also go to tests/bench/results/burst-<timestamp>.json.
Exit status: 0 every target met, 1 some missed, 2 the harness failed.
"""
import argparse
import datetime
import json
import os
import re
import secrets
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the issue-5 harness: Postgres, processes, TLS, helpers)
from bench import BenchError, log, run  # noqa: E402

HERE = bench.HERE
ROOT = bench.ROOT

# Targets of issue 14 (medians of the runs).
T_JOBS_S = {16: 15000.0, 4: 8000.0}
T_FIRST10_VS_STEADY = 0.8
T_TAIL_S = 1.0


def write_conf(st, args, workers, db):
    st.rd_port = bench.free_port()
    conf = st.tmp / f"rosterd-{db}.conf"
    conf.write_text(
        f"listen = 127.0.0.1:{st.rd_port}\nadmin_listen = 127.0.0.1:{bench.free_port()}\n"
        f"tls_cert = {st.cert}\ntls_key = {st.key}\nsecret_key_file = {st.key_file}\n"
        f"database_url = {st.pg.url(db)}\nlog_level = {args.log_level}\nlog_format = json\n"
        f"workers = {workers}\n")
    return conf


def fresh_db(st, args, workers, db):
    st.pg.create_db(db)
    conf = write_conf(st, args, workers, db)
    rosterctl = str(args.build_dir / "rosterctl")
    run([rosterctl, "-c", str(conf), "migrate"], timeout=120)
    st.token = secrets.token_urlsafe(24)
    conn = {
        "name": "burst", "timezone": "Europe/Berlin", "start_date": "2026-01-01",
        "personio": {"base_url": "https://127.0.0.1:9/personio", "client_id": "burst",
                     "client_secret": "env:BURST_PERSONIO_SECRET",
                     "webhook_tokens": ["env:BURST_PERSONIO_TOKEN"]},
        "moco": {"base_url": "https://127.0.0.1:9/moco/api/v1", "api_key": "env:BURST_MOCO_API",
                 "webhook_keys": ["env:BURST_MOCO_KEY"]},
        "policy": {"reconcile_at": "off"},
    }
    cf = st.tmp / "burst.json"
    cf.write_text(json.dumps(conn))
    os.chmod(cf, 0o600)
    env = dict(os.environ, BURST_PERSONIO_SECRET=secrets.token_hex(16),
               BURST_PERSONIO_TOKEN=st.token, BURST_MOCO_API=secrets.token_hex(16),
               BURST_MOCO_KEY=secrets.token_hex(16))
    run([rosterctl, "-c", str(conf), "connection", "apply", str(cf)], env=env, timeout=60)
    return conf


def spawn_rosterd(st, args, conf, role, name, admin_port):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROSTERD_")}
    env["ROSTERD_ADMIN_LISTEN"] = f"127.0.0.1:{admin_port}"
    return st.procs.spawn(name, [str(args.build_dir / "rosterd"), "-c", str(conf),
                                 "--role", role], env=env)


def burst_in(st, args, conf, db):
    """Sends args.jobs deliveries through --role ingest; returns (seconds, stored)."""
    admin = bench.free_port()
    p = spawn_rosterd(st, args, conf, "ingest", f"{db}-ingest", admin)
    bench.wait_http(admin, "/healthz", lambda s: s == 200, 30)
    bench.wait_http(st.rd_port, "/webhooks/burst/personio", lambda s: s not in (503,), 30,
                    tls_ctx=st.tls_ctx)
    threads = args.threads
    per = -(-args.jobs // threads)
    env = dict(os.environ, BENCH_TOKEN=st.token, BENCH_PER_THREAD=str(per),
               BENCH_PATH="/webhooks/burst/personio")
    cmd = ["wrk", f"-t{threads}", f"-c{args.connections}", f"-d{args.load_timeout}s",
           "--timeout", "10s", "-s", str(HERE / "burst.lua"),
           f"https://127.0.0.1:{st.rd_port}"]
    # wrk sleeps out its -d even when every thread has stopped; SIGINT ends it early
    # (it still prints its summary), once every delivery is stored.
    t = time.monotonic()
    w = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, env=env, text=True)
    try:
        deadline = time.monotonic() + args.load_timeout + 30
        while w.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            if st.pg.q(db, "SELECT count(*) FROM events")[0][0] >= per * threads:
                break
        secs = time.monotonic() - t
        w.send_signal(signal.SIGINT)
        out, _ = w.communicate(timeout=30)
    finally:
        if w.poll() is None:
            w.kill()
            w.wait(10)
    vals = {m.group(1): int(m.group(2))
            for m in re.finditer(r"^BENCH (\w+) (-?\d+)$", out, re.M)}
    rc = st.procs.stop(p)
    if rc not in (0, None):
        raise BenchError(f"rosterd --role ingest exited {rc}: see {st.tmp}/{db}-ingest.log")
    stored = st.pg.q(db, "SELECT count(*) FROM events")[0][0]
    if vals.get("c202", 0) < per * threads or stored < per * threads:
        raise BenchError(f"burst: {vals} but {stored} events stored (want {per * threads})")
    return secs, stored


GAUGE = re.compile(r'^rosterd_jobs\{state="(\w+)"\} (\d+)$', re.M)


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {k: int(v) for k, v in GAUGE.findall(text)}


def drain(st, args, conf, db, workers):
    """One --role worker drains the backlog; returns the run's figures and timeline."""
    queued = st.pg.q(db, "SELECT count(*) FROM jobs WHERE state = 'pending'")[0][0]
    st.pg.q("postgres", "CHECKPOINT")
    admin = bench.free_port()
    t0 = time.time()
    p = spawn_rosterd(st, args, conf, "worker", f"{db}-worker", admin)
    samples = []  # (t, pending, running)
    deadline = time.monotonic() + args.drain_timeout
    zero_at = None
    first_empty = None  # first sample with nothing pending
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if p.poll() is not None:
            raise BenchError(f"rosterd --role worker exited: see {st.tmp}/{db}-worker.log")
        try:
            g = scrape(admin)
        except OSError:
            continue  # not listening yet
        t = time.time() - t0
        pend, runn = g.get("pending", 0), g.get("running", 0)
        samples.append((round(t, 2), pend, runn))
        if pend == 0 and first_empty is None:
            first_empty = t
        if pend + runn == 0:
            zero_at = t
            break
    st.procs.stop(p)
    if zero_at is None:
        raise BenchError(f"worker {workers}: not drained within {args.drain_timeout} s "
                         f"(last sample {samples[-1] if samples else None})")
    # Per second from the worker's spawn: completions from jobs_history (database
    # clock, same machine), the gauge's last sample in that second.
    rows = st.pg.q(db, "SELECT floor(extract(epoch FROM finished_at) - %s)::int, count(*)"
                       " FROM jobs_history WHERE finished_at >= to_timestamp(%s)"
                       " GROUP BY 1 ORDER BY 1", (t0, t0))
    per_s = {int(s): n for s, n in rows}
    done, last = st.pg.q(db, "SELECT count(*), extract(epoch FROM max(finished_at))"
                             " FROM jobs_history")[0]
    dead_or_failed = st.pg.q(db, "SELECT count(*) FROM jobs")[0][0]
    # Nothing acknowledged lost, nothing run twice: every event done after one attempt.
    not_done, twice = st.pg.q(db, "SELECT (SELECT count(*) FROM events WHERE status <> 'done'),"
                                  " (SELECT count(*) FROM event_attempts a WHERE a.outcome <> 'done'"
                                  "   OR a.attempt > 1)")[0]
    if not_done or twice:
        raise BenchError(f"worker {workers}: {not_done} events not done, {twice} attempts that "
                         "were not a first and successful one")
    last_t = float(last) - t0
    secs = zero_at
    timeline = []
    for s in range(int(zero_at) + 1):
        in_s = [x for x in samples if s <= x[0] < s + 1]
        g = in_s[-1] if in_s else None
        timeline.append({"t": s, "done": per_s.get(s, 0),
                         "pending": g[1] if g else None, "running": g[2] if g else None})
    # Steady rate: what the queue does when nothing holds it back, the 90th
    # percentile of the full seconds before the last job finished (a median would
    # call a slow start "steady" when it lasts half the drain).
    full = sorted(per_s.get(s, 0) for s in range(int(last_t)))
    steady = (full[min(len(full) - 1, int(0.9 * len(full)))] if full
              else done / max(last_t, 1e-6))
    first_window = min(10.0, last_t)
    first10 = sum(n for s, n in per_s.items() if s < first_window) / max(first_window, 1e-6)
    return {"workers": workers, "queued": queued, "done": done, "left": dead_or_failed,
            "seconds": secs, "jobs_per_s": done / secs, "last_finish_s": last_t,
            "first_empty_s": first_empty, "tail_s": last_t - first_empty,
            "steady_per_s": steady, "first10_per_s": first10,
            "first10_vs_steady": first10 / steady if steady else 0.0,
            "timeline": timeline, "samples": samples}


def print_timeline(r, out=sys.stdout):
    print(f"\nworkers {r['workers']}: {r['done']:,} jobs in {r['seconds']:.1f} s "
          f"= {r['jobs_per_s']:,.0f} jobs/s; last finish {r['last_finish_s']:.1f} s, "
          f"nothing pending from {r['first_empty_s']:.1f} s (tail {r['tail_s']:.1f} s); "
          f"first 10 s {r['first10_per_s']:,.0f}/s vs steady {r['steady_per_s']:,.0f}/s "
          f"({r['first10_vs_steady']:.0%})", file=out)
    print("     t  done/s   pending  running", file=out)
    for row in r["timeline"]:
        pend = "" if row["pending"] is None else f"{row['pending']:,}"
        runn = "" if row["running"] is None else f"{row['running']:,}"
        print(f"  {row['t']:>4}  {row['done']:>6,}  {pend:>8}  {runn:>7}", file=out)


def parse_args(argv):
    ap = argparse.ArgumentParser(description="rosterd queue after a burst (issue 14; "
                                 "see tests/bench/README.md)")
    ap.add_argument("--jobs", type=int, default=100000, help="deliveries in the burst")
    ap.add_argument("--workers", default="4,16", help="comma list of worker counts")
    ap.add_argument("--runs", type=int, default=3, help="runs per worker count (median)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--connections", type=int, default=64, help="wrk connections")
    ap.add_argument("--load-timeout", type=int, default=120, help="seconds for the burst")
    ap.add_argument("--drain-timeout", type=int, default=120, help="seconds for a drain")
    ap.add_argument("--log-level", default="warn")
    ap.add_argument("--shared-buffers", default="256MB")
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build-bench")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, data)")
    a = ap.parse_args(argv)
    a.workers = [int(w) for w in a.workers.split(",")]
    a.build_dir = a.build_dir.resolve()
    return a


class St:
    """The run's shared state (paths, ports, keys)."""


def verdicts(results):
    """Per worker count: medians and PASS/MISS against the targets."""
    out = []
    for w, rs in results.items():
        med = {k: statistics.median(r[k] for r in rs)
               for k in ("jobs_per_s", "first10_vs_steady", "tail_s", "seconds")}
        target = T_JOBS_S.get(w)
        checks = [("jobs/s", med["jobs_per_s"], target, med["jobs_per_s"] >= target
                   if target else None),
                  ("first 10 s / steady", med["first10_vs_steady"], T_FIRST10_VS_STEADY,
                   med["first10_vs_steady"] >= T_FIRST10_VS_STEADY),
                  ("tail s (last finish - nothing pending)", med["tail_s"], T_TAIL_S,
                   med["tail_s"] <= T_TAIL_S)]
        out.append((w, rs, med, checks))
    return out


def main(argv):
    args = parse_args(argv)
    procs = bench.Procs(args.keep)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    started = datetime.datetime.now().isoformat(timespec="seconds")
    results = {w: [] for w in args.workers}
    try:
        st = St()
        st.procs = procs
        procs.tmp = Path(tempfile.mkdtemp(prefix="rosterd-burst-"))
        os.chmod(procs.tmp, 0o755)
        st.tmp = procs.tmp
        st.cert, st.key = bench.make_tls(st.tmp)
        st.tls_ctx = ssl.create_default_context(cafile=str(st.cert))
        st.key_file = st.tmp / "secret.key"
        st.key_file.write_bytes(secrets.token_bytes(32))
        os.chmod(st.key_file, 0o600)
        st.pg = procs.pg = bench.Postgres(procs, args.shared_buffers)
        for k in range(args.runs):
            for w in args.workers:
                db = f"burst_w{w}_r{k + 1}"
                conf = fresh_db(st, args, w, db)
                log(f"{db}: burst of {args.jobs:,} deliveries through --role ingest ...")
                secs, stored = burst_in(st, args, conf, db)
                log(f"{db}: {stored:,} stored in {secs:.1f} s; one --role worker, "
                    f"workers = {w} ...")
                r = drain(st, args, conf, db, w)
                r["burst_seconds"] = secs
                results[w].append(r)
                log(f"{db}: {r['done']:,} jobs in {r['seconds']:.1f} s = "
                    f"{r['jobs_per_s']:,.0f} jobs/s, tail {r['tail_s']:.1f} s")
                print_timeline(r)
                sys.stdout.flush()
                st.pg.q("postgres", f"DROP DATABASE {db}")
    except BenchError as e:
        log(f"ERROR: {e}")
        procs.cleanup()
        return 2
    except BaseException:
        procs.cleanup()
        raise
    procs.cleanup()
    all_pass = True
    print(f"\nrosterd queue after a burst, {started}, {os.cpu_count()} cores, "
          f"{args.jobs:,} deliveries, medians of {args.runs} run(s)")
    print(f"{'workers':>7}  {'figure':<40} {'median':>9}  {'runs':<28} {'target':>8}  verdict")
    for w, rs, med, checks in verdicts(results):
        keys = {"jobs/s": "jobs_per_s", "first 10 s / steady": "first10_vs_steady"}
        for name, val, target, ok in checks:
            key = keys.get(name, "tail_s")
            runs = ", ".join(f"{r[key]:,.2f}" if val < 100 else f"{r[key]:,.0f}" for r in rs)
            if target is None:
                verdict, tgt = "-", "-"
            else:
                verdict = "PASS" if ok else "MISS"
                all_pass = all_pass and ok
                tgt = (f">= {target:,.0f}" if name == "jobs/s" else
                       f">= {target:.0%}" if name.startswith("first") else f"<= {target:.1f}")
            shown = f"{val:,.0f}" if name == "jobs/s" else f"{val:.2f}"
            print(f"{w:>7}  {name:<40} {shown:>9}  {runs:<28} {tgt:>8}  {verdict}")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    path = out / ("burst-" + time.strftime("%Y%m%dT%H%M%S") + ".json")
    path.write_text(json.dumps({"started": started, "args": {k: str(v) for k, v in
                                                             vars(args).items()},
                                "results": results}, indent=2, default=str))
    print(f"\nresults: {path}")
    return 0 if all_pass else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
