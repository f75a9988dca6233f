#!/usr/bin/env python3
"""
The memory soak of issue 13 (item 4), run by hand, not in CI: one rosterd (role all,
workers draining the noop jobs) on its own Postgres, wrk sending paced, unique,
token-authenticated deliveries (tests/tools/soak.lua) at --rate for --seconds, and
rosterd's RSS sampled every --every seconds with the event count, the jobs backlog
and the machine's load. Prints one line per sample and a summary; exits 1 when RSS
grew more than --max-growth-mib from the first sample after warm-up to the last,
or when a delivery was refused.

    tests/tools/soak.py --build-dir build --rate 2000 --seconds 3600
"""
import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "integration"))
import helpers as H  # noqa: E402


def rss_kib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build")
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=3600)
    ap.add_argument("--every", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=120, help="seconds before the RSS baseline")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--max-growth-mib", type=float, default=8.0)
    args = ap.parse_args()
    os.environ["ROSTERD_BUILD_DIR"] = str(args.build_dir.resolve())

    work = Path(tempfile.mkdtemp(prefix="rosterd-soak-"))
    cluster = H.PgCluster()
    daemon = None
    try:
        ca = H.TestCA(work / "tls")
        key = work / "secret.key"
        key.write_bytes(secrets.token_bytes(32))
        os.chmod(key, 0o600)
        conf = H.write_conf(work, {
            "listen": f"127.0.0.1:{H.free_port()}", "admin_listen": f"127.0.0.1:{H.free_port()}",
            "tls_cert": str(ca.cert), "tls_key": str(ca.key), "database_url": cluster.url,
            "secret_key_file": str(key), "log_level": "warn", "workers": str(args.workers),
            "test_handlers": "on"})
        H.rosterctl(conf, "migrate")
        token = secrets.token_urlsafe(32)
        doc = {"name": "soak", "timezone": "UTC",
               "personio": {"base_url": "https://127.0.0.1:9/p", "client_id": "c",
                            "client_secret": "s-" + secrets.token_hex(8),
                            "webhook_tokens": [token]},
               "moco": {"base_url": "https://127.0.0.1:9/m", "api_key": "k",
                        "webhook_keys": [secrets.token_hex(16)]}}
        (work / "soak.json").write_text(json.dumps(doc))
        H.rosterctl(conf, "connection", "apply", str(work / "soak.json"))
        daemon = H.Daemon(conf, ca.ca, work / "rosterd")
        daemon.start()

        env = dict(os.environ, SOAK_RATE=str(args.rate), SOAK_THREADS=str(args.threads),
                   SOAK_TOKEN=token, SOAK_CONNECTION="soak", SOAK_RUN=uuid.uuid4().hex[:8])
        wrk = subprocess.Popen(
            ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.seconds}s",
             "--timeout", "10s", "-s", str(ROOT / "tests" / "tools" / "soak.lua"),
             f"https://127.0.0.1:{daemon.port}"], env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        t0 = time.monotonic()
        samples = []
        last_events, last_t = 0, t0
        print(f"soak: {args.rate} req/s for {args.seconds} s, rosterd pid {daemon.pid}; "
              "columns: t_s, events/s, rss_mib, hwm_mib, jobs_backlog, loadavg_1m", flush=True)
        while wrk.poll() is None:
            time.sleep(args.every)
            t = time.monotonic()
            m = rss_kib(daemon.pid)
            events = cluster.query("SELECT coalesce(max(id), 0) FROM events")[0][0]
            backlog = cluster.query("SELECT count(*) FROM jobs")[0][0]
            load = float(open("/proc/loadavg").read().split()[0])
            rate = (events - last_events) / (t - last_t)
            last_events, last_t = events, t
            s = {"t": round(t - t0), "events_per_s": round(rate), "rss_mib": m["VmRSS"] / 1024,
                 "hwm_mib": m["VmHWM"] / 1024, "backlog": backlog, "load": load}
            samples.append(s)
            print(f"{s['t']:6d} {s['events_per_s']:7d} {s['rss_mib']:8.1f} {s['hwm_mib']:8.1f} "
                  f"{backlog:8d} {load:6.2f}", flush=True)
        out = wrk.stdout.read()
        stats = {ln.split()[1]: int(ln.split()[2]) for ln in out.splitlines()
                 if ln.startswith("SOAK ")}
        base = [s for s in samples if s["t"] >= args.warmup] or samples
        growth = base[-1]["rss_mib"] - base[0]["rss_mib"]
        rates = [s["events_per_s"] for s in samples[1:-1]] or [0]
        print(f"wrk: {stats}")
        print(f"summary: {len(samples)} samples; events/s min {min(rates)} max {max(rates)}; "
              f"RSS after warm-up {base[0]['rss_mib']:.1f} MiB, last {base[-1]['rss_mib']:.1f} "
              f"MiB, max {max(s['rss_mib'] for s in samples):.1f} MiB, growth {growth:+.1f} MiB")
        bad = stats.get("cother", 0) + stats.get("errors", 0)
        return 0 if growth <= args.max_growth_mib and bad == 0 else 1
    finally:
        if daemon and daemon.running():
            daemon.stop(expect=None)
        cluster.destroy()


if __name__ == "__main__":
    sys.exit(main())
