#!/usr/bin/env python3
"""
rosterd's own cost per webhook request (issue 12): CPU microseconds and syscalls per
202, A/B between builds under the same conditions. One Postgres (as bench.py's, but
the rosterd database commits with synchronous_commit = off so the WAL flush is out of
the way), then for each round one `rosterd --role ingest` of the next build in turn
(A, B, A, B, ...) loaded by wrk (-t2 -c64, the bench's unique signed 1 KiB MOCO
bodies) for --seconds; rosterd's utime + stime from /proc over the load, divided by
its 202s. With --strace one more round per build runs under `strace -c -f` and the
syscalls per 202 are printed by name (strace slows rosterd: not a timing round).

  /usr/bin/python3 tests/bench/reqcost.py --build-dir A [--build-dir B] [--rounds 3]
      [--seconds 6] [--strace] [--keep]

Wrap it in `flock /tmp/rosterd-bench.lock` like every benchmark here.
"""
import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the same Postgres, config and request files as the bench)

HERE = bench.HERE
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def one_round(st, args, build, name, strace=None, perf=None):
    a = argparse.Namespace(**vars(args))
    a.build_dir = build
    p = bench.start_rosterd(st, a, "ingest", name, admin_port=st.rd_admin)
    time.sleep(0.5)
    tracer = None
    if strace:
        tracer = subprocess.Popen(["strace", "-c", "-f", "-o", str(strace), "-p", str(p.pid)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    if perf:
        tracer = subprocess.Popen(["perf", "record", "-g", "-o", str(perf), "-p", str(p.pid)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        time.sleep(0.5)
    c0 = cpu_seconds(p.pid)
    v = bench.wrk(args, f"https://127.0.0.1:{st.rd_port}/webhooks/bench/moco", args.seconds,
                  st.round_prefixes.pop(0))
    c1 = cpu_seconds(p.pid)
    if tracer:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(30)
    st.procs.stop(p)
    if v.get("exhausted", 0) > 0:
        raise bench.BenchError("request files ran out: raise --max-rate")
    ok = v["c202"]
    if not ok:
        raise bench.BenchError(f"no 202 in a round: see {st.tmp}/{name}.log")
    return {"rps": v["rps"], "ok": ok, "p99_ms": v["p99_ms"],
            "cpu_us": (c1 - c0) * 1e6 / ok if ok else None}


def parse_strace(path, ok):
    counts = {}
    for line in Path(path).read_text().splitlines():
        m = re.match(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$", line)
        if m and m.group(2) != "total":
            counts[m.group(2)] = int(m.group(1)) / ok
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build-dir", type=Path, action="append", required=True)
    ap.add_argument("--rounds", type=int, default=3, help="timing rounds per build")
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--max-rate", type=float, default=16000.0,
                    help="req/s the request files must last for")
    ap.add_argument("--strace", action="store_true")
    ap.add_argument("--perf", action="store_true",
                    help="one more round per build under perf record -g (perf-N.data, --keep)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)
    args.threads, args.connections, args.queue_workers = 2, 64, 8
    builds = [b.resolve() for b in args.build_dir]
    procs = bench.Procs(args.keep)
    try:
        st = bench.St()
        st.procs = procs
        procs.tmp = Path(tempfile.mkdtemp(prefix="rosterd-reqcost-"))
        os.chmod(procs.tmp, 0o755)
        st.tmp = procs.tmp
        st.cert, st.key = bench.make_tls(st.tmp)
        st.tls_ctx = bench.ssl.create_default_context(cafile=str(st.cert))
        st.pg = procs.pg = bench.Postgres(procs, "256MB")
        args.build_dir = builds[0]
        bench.write_rosterd(st, args)
        st.pg.q("postgres", "ALTER DATABASE rosterd SET synchronous_commit = off")
        # Every round sends deliveries of its own: a repeated body is a duplicate (200).
        nrounds = len(builds) * (args.rounds + (1 if args.strace else 0) + (1 if args.perf else 0))
        count = int(args.max_rate * (args.seconds + 2)) + 1000
        bench.log(f"generating {nrounds} x {count:,} signed requests ...")
        st.round_prefixes = []
        for k in range(nrounds):
            prefix = st.tmp / f"req-{k}-"
            bench.run([sys.executable, str(HERE / "gen_requests.py"), "--key-file",
                       str(st.moco_key_file), "--prefix", str(prefix), "--count", str(count),
                       "--threads", "2", "--run-id", f"r{k}"], timeout=1800)
            st.round_prefixes.append(prefix)
        res = {b: [] for b in builds}
        for r in range(args.rounds):
            for i, b in enumerate(builds):
                x = one_round(st, args, b, f"rosterd-{i}-{r}")
                bench.log(f"{b}: {x['rps']:,.0f} req/s, {x['cpu_us']:.1f} us CPU per 202, "
                          f"p99 {x['p99_ms']:.2f} ms")
                res[b].append(x)
        traces = {}
        if args.strace:
            for i, b in enumerate(builds):
                path = st.tmp / f"strace-{i}.txt"
                x = one_round(st, args, b, f"rosterd-{i}-strace", strace=path)
                traces[b] = parse_strace(path, x["ok"])
        if args.perf:
            for i, b in enumerate(builds):
                one_round(st, args, b, f"rosterd-{i}-perf", perf=st.tmp / f"perf-{i}.data")
        print(f"\nrosterd CPU per request, {args.rounds} round(s) of {args.seconds} s per build, "
              f"wrk -t2 -c64, synchronous_commit off, load {os.getloadavg()[0]:.1f}")
        for b in builds:
            us = [x["cpu_us"] for x in res[b]]
            rps = [x["rps"] for x in res[b]]
            print(f"{b}: median {statistics.median(us):.1f} us CPU per 202 "
                  f"(rounds {', '.join(f'{u:.1f}' for u in us)}); median "
                  f"{statistics.median(rps):,.0f} req/s ({', '.join(f'{r:,.0f}' for r in rps)})")
            if b in traces:
                top = ", ".join(f"{k} {v:.2f}" for k, v in list(traces[b].items())[:10])
                print(f"    syscalls per 202: total {sum(traces[b].values()):.2f}: {top}")
    except bench.BenchError as e:
        bench.log(f"ERROR: {e}")
        procs.cleanup()
        return 2
    except BaseException:
        procs.cleanup()
        raise
    procs.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
