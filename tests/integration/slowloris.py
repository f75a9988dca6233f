"""
A slowloris client for tests/integration/test_hostile.py, run as its own process so
its work does not slow the measuring client down: it keeps N TLS connections to the
webhook listener open, each sending one more byte of a request head every few
seconds, and opens a new one whenever rosterd cuts one off.

    python3 slowloris.py HOST PORT CAFILE N SECONDS INTERVAL

Prints one JSON line at the end: {"opened", "cut", "max_open", "longest_s"}.
"""
import json
import resource
import selectors
import socket
import ssl
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HEAD = (b"POST /webhooks/acme/personio HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nX-Slow: " + b"z" * 4000)


def main():
    host, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    n, seconds, interval = int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * n + 64)), hard))
    ctx = ssl.create_default_context(cafile=cafile)
    lock = threading.Lock()
    conns = {}  # socket -> [opened_at, bytes_sent]
    sel = selectors.DefaultSelector()  # epoll: a thousand sockets is past select()'s limit
    stats = {"opened": 0, "cut": 0, "max_open": 0, "longest_s": 0.0}
    end = time.monotonic() + seconds

    def open_one():
        if time.monotonic() > end:
            return
        try:
            raw = socket.create_connection((host, port), timeout=10)
            s = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
            s.setblocking(False)
        except OSError:
            return
        with lock:
            conns[s] = [time.monotonic(), 0]
            sel.register(s, selectors.EVENT_READ)
            stats["opened"] += 1
            stats["max_open"] = max(stats["max_open"], len(conns))

    def cut(s, rec):
        with lock:
            if conns.pop(s, None) is None:
                return
            sel.unregister(s)
            stats["cut"] += 1
            stats["longest_s"] = max(stats["longest_s"], time.monotonic() - rec[0])
        try:
            s.close()
        except OSError:
            pass

    pool = ThreadPoolExecutor(8)
    # Ramp up over about two seconds, then keep N open.
    for i in range(n):
        pool.submit(open_one)
        if i % 100 == 99:
            time.sleep(0.2)
    while time.monotonic() < end:
        t0 = time.monotonic()
        # A socket turning readable means rosterd closed it (it never answers a
        # request head that has not ended): that is the cut, seen within a round.
        with lock:
            ready = [key.fileobj for key, _ in sel.select(0)]
        for s in ready:
            rec = conns.get(s)
            if not rec:
                continue
            try:
                if s.recv(4096) == b"":
                    cut(s, rec)  # EOF
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                pass  # a TLS 1.3 session ticket, not data
            except (OSError, ssl.SSLError):
                cut(s, rec)
        with lock:
            batch = list(conns.items())
        for s, rec in batch:
            if rec[1] >= len(HEAD):
                continue
            try:
                s.send(HEAD[rec[1]:rec[1] + 1])  # one byte per round
                rec[1] += 1
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                pass
            except (OSError, ssl.SSLError):
                cut(s, rec)
        missing = n - len(conns)
        for _ in range(max(0, missing)):
            pool.submit(open_one)
        time.sleep(max(0.0, interval - (time.monotonic() - t0)))
    pool.shutdown(wait=True)
    with lock:
        for s in list(conns):
            s.close()
    print(json.dumps(stats), flush=True)


if __name__ == "__main__":
    main()
