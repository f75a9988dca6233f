#!/usr/bin/env python3
"""
Writes the signed MOCO webhook requests that tests/bench/replay.lua sends: one file
per wrk thread (PREFIX1, PREFIX2, ...), each record an 8-digit length and a raw
HTTP/1.1 keep-alive request. Every body is a ~1 KiB MOCO Presence-like JSON document
with a unique id, signed with X-Moco-Signature = hex HMAC-SHA256(key ascii, body).
The key is read from a file (never argv). Files are written in parallel, one process
per file. Usage: gen_requests.py --key-file F --prefix P --count N [--threads 2]
[--connection bench] [--users 500] [--target Presence --event update]
"""
import argparse
import hashlib
import hmac
import json
import multiprocessing
import random
import sys
import time

BODY_BYTES = 1024


def body_template(run_id):
    """A Presence-like document as a str.format template; {seq}, {pid} and {uid} are
    filled per request and the pad brings the body to about BODY_BYTES."""
    tmpl = ('{{"id":{pid},"date":"2026-11-20","from":"08:00","to":"12:30",'
            '"is_home_office":false,"description":"bench presence {seq}",'
            '"user":{{"id":{uid},"firstname":"Bench","lastname":"User {uid}"}},'
            '"created_at":"2026-11-20T08:00:00Z","updated_at":"2026-11-20T12:30:00Z",'
            '"bench":{{"run":"' + run_id + '","seq":{seq},"pad":"{pad}"}}}}')
    sample = tmpl.format(pid=10 ** 9, seq=10 ** 8, uid=1000, pad="")
    json.loads(sample)  # the template must give valid JSON
    return tmpl.replace("{pad}", "p" * max(0, BODY_BYTES - len(sample)))


def write_file(job):
    path, key, first, count, users, conn, target, event, run_id = job
    tmpl = body_template(run_id)
    rnd = random.Random(first)
    start = ("POST /webhooks/%s/moco HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             "Content-Type: application/json\r\nX-Moco-Target: %s\r\nX-Moco-Event: %s\r\n"
             % (conn, target, event))
    out = []
    with open(path, "wb", buffering=1 << 20) as f:
        for seq in range(first, first + count):
            body = tmpl.format(pid=900000000 + seq, seq=seq, uid=rnd.randint(1, users)).encode()
            sig = hmac.new(key, body, hashlib.sha256).hexdigest()
            req = (start + "X-Moco-Signature: %s\r\nContent-Length: %d\r\n\r\n" %
                   (sig, len(body))).encode() + body
            out.append(b"%08d" % len(req))
            out.append(req)
            if len(out) >= 8192:
                f.write(b"".join(out))
                out.clear()
        f.write(b"".join(out))
    return count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--key-file", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--count", type=int, required=True, help="requests in all files together")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connection", default="bench")
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--target", default="Presence")
    ap.add_argument("--event", default="update")
    ap.add_argument("--run-id", default=None)
    a = ap.parse_args()
    with open(a.key_file, "rb") as f:
        key = f.read().strip()
    run_id = a.run_id or "%x" % random.getrandbits(64)
    per = -(-a.count // a.threads)
    jobs = [(f"{a.prefix}{t + 1}", key, t * per, per, a.users, a.connection, a.target, a.event,
             run_id) for t in range(a.threads)]
    t0 = time.monotonic()
    with multiprocessing.Pool(min(a.threads, 2)) as pool:
        n = sum(pool.map(write_file, jobs))
    print(f"gen_requests: {n} requests in {a.threads} files in {time.monotonic() - t0:.1f} s",
          file=sys.stderr)


if __name__ == "__main__":
    main()
