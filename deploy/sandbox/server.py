"""HTTP(S) front of the sandbox: one ThreadingHTTPServer on loopback that routes
by path prefix to the fakes, records every request, applies injected faults
and serves the control API. TLS handshakes run in the per-connection thread.
"""
import http.server
import ipaddress
import json
import socket
import ssl
import threading
import time
import urllib.parse

from . import control, delegations, moco, personio, scim, slack
from .state import mask_auth
from .util import Req, Resp, jresp, tresp

MAX_BODY = 16 * 1024 * 1024

# prefix -> (system, handler)
MOUNTS = [
    ("/personio", "personio", personio.handle),
    ("/moco/api/v1", "moco", moco.handle),
    ("/scim/v2", "scim", scim.scim_handle),
    ("/platform/api/v1", "platform", delegations.handle),
    ("/slack", "slack", slack.handle),
]


def _fault_response(system, f):
    status = f["status"]
    headers = [(k, str(v)) for k, v in f["headers"].items()]
    if f.get("retry_after") is not None:
        headers.append(("Retry-After", str(f["retry_after"])))
    body = f.get("body")
    ctype = f.get("content_type")
    if f.get("body_bytes"):  # a huge answer: that many bytes of a JSON string
        n = max(2, int(f["body_bytes"]))
        return Resp(status, b'"' + b"x" * (n - 2) + b'"', ctype or "application/json", headers)
    if body is None:
        if system == "slack":
            return tresp(status, "rate_limited" if status == 429 else "injected_fault", headers,
                         ctype=ctype or "text/html")
        if system == "personio":
            body = {"success": False, "error": {"code": status, "message": "Injected fault"}}
        elif system == "scim":
            body = {"schemas": [scim.ERROR], "status": str(status), "detail": "Injected fault"}
        elif system == "moco":
            body = {"message": "Injected fault"}
        else:
            body = {"error": "injected fault"}
        return jresp(status, body, headers, ctype=ctype or "application/json")
    if isinstance(body, str):
        return Resp(status, body.encode(), ctype or "application/json", headers)
    return jresp(status, body, headers, ctype=ctype or "application/json")


def _mask_auth_body(system, path, body, raw_query):
    """The recorded copy of a Personio /v1/auth request hides client_secret."""
    if system != "personio" or not path.startswith("/v1/auth"):
        return body, raw_query
    q = urllib.parse.parse_qsl(raw_query, keep_blank_values=True)
    raw_query = urllib.parse.urlencode([(k, "***" if k == "client_secret" else v) for k, v in q])
    try:
        obj = json.loads(body)
        if isinstance(obj, dict) and "client_secret" in obj:
            obj["client_secret"] = "***"
            return json.dumps(obj), raw_query
    except ValueError:
        pairs = urllib.parse.parse_qsl(body, keep_blank_values=True)
        if any(k == "client_secret" for k, _ in pairs):
            return urllib.parse.urlencode(
                [(k, "***" if k == "client_secret" else v) for k, v in pairs]), raw_query
    return body, raw_query


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "rosterd-sandbox/1"
    timeout = 60

    def log_message(self, fmt, *args):  # request lines carry credentials (Slack paths)
        if self.server.verbose:
            super().log_message(fmt, *args)

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
                if sum(map(len, chunks)) > MAX_BODY:
                    raise ValueError("body too large")
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise ValueError("body too large")
        return self.rfile.read(n) if n > 0 else b""

    def _send(self, resp):
        self.send_response(resp.status)
        if resp.status != 204:
            self.send_header("Content-Type", resp.ctype)
            self.send_header("Content-Length", str(len(resp.body)))
        for k, v in resp.headers:
            self.send_header(k, v)
        self.end_headers()
        if resp.status != 204 and self.command != "HEAD":
            self.wfile.write(resp.body)

    def _dispatch(self):
        st = self.server.state
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return self._send(tresp(413, "body too large or malformed"))
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        if path == "/_control" or path.startswith("/_control/"):
            if not ipaddress.ip_address(self.client_address[0]).is_loopback:
                return self._send(jresp(403, {"error": "control API is loopback only"}))
            req = Req(self.command, path[len("/_control"):] or "/", url.query, self.headers, body,
                      self.server.root, "/_control", self.client_address)
            with st.lock:
                resp = control.handle(st, req)
            return self._send(resp)
        for prefix, system, func in MOUNTS:
            if path == prefix or path.startswith(prefix + "/"):
                break
        else:
            return self._send(jresp(404, {"error": "no fake mounted at this path"}))
        sub = path[len(prefix):] or "/"
        req = Req(self.command, sub, url.query, self.headers, body, self.server.root, prefix,
                  self.client_address)
        with st.lock:
            rec = self._record(st, system, sub, url.query, body)
            fault = control.take_fault(st, system, self.command, sub)
            if fault:
                rec["fault"] = fault["id"]
        if fault and fault.get("apply") and fault["status"] is not None:
            # The request takes effect, then its answer is lost or replaced: what a
            # client sees when an upstream fails after committing (read-before-retry).
            with st.lock:
                func(st, req)
                if self.command != "GET":
                    st.dirty = True
        if fault and fault["delay_ms"]:
            time.sleep(fault["delay_ms"] / 1000.0)
        if fault and fault["status"] == 0:  # hang, then drop the connection unanswered
            rec["status"] = 0
            self.close_connection = True
            return None
        with st.lock:
            if fault and fault["status"] is not None:
                resp = _fault_response(system, fault)
            else:
                resp = func(st, req)
                if self.command != "GET":
                    st.dirty = True
                    st.gen = getattr(st, "gen", 0) + 1  # cached list answers are stale now
            rec["status"] = resp.status
        return self._send(resp)

    def _record(self, st, system, sub, query, body):
        headers = {}
        for k, v in self.headers.items():
            headers[k.lower()] = mask_auth(v) if k.lower() == "authorization" else v
        text = body.decode("utf-8", "replace")
        text, query = _mask_auth_body(system, sub, text, query)
        rec = {"id": st.next_request_id, "ts": time.time(), "system": system,
               "method": self.command, "path": sub, "query": query,
               "args": urllib.parse.parse_qs(query, keep_blank_values=True),
               "headers": headers, "body": text, "status": None}
        st.next_request_id += 1
        st.requests.append(rec)
        return rec

    def _safe_dispatch(self):
        try:
            self._dispatch()
        except (BrokenPipeError, ConnectionResetError, socket.timeout, ssl.SSLError):
            self.close_connection = True
        except Exception as e:  # a fake bug must not kill the connection thread silently
            self.close_connection = True
            try:
                self._send(jresp(500, {"error": "sandbox bug: %s: %s" % (type(e).__name__, e)}))
            except OSError:
                pass
            if self.server.verbose:
                raise

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _safe_dispatch


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, state, port, ssl_ctx=None, host="127.0.0.1", verbose=False):
        self.state = state
        self.ssl_ctx = ssl_ctx
        self.verbose = verbose
        super().__init__((host, port), Handler)
        scheme = "https" if ssl_ctx else "http"
        self.root = "%s://%s:%d" % (scheme, host, self.server_address[1])

    def finish_request(self, request, client_address):
        # Headers and body go out in separate writes: without TCP_NODELAY every answer
        # waits ~40 ms for the client's delayed ACK (a 10,000-person run pages ~360 times).
        try:
            request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        if self.ssl_ctx is None:
            return super().finish_request(request, client_address)
        request.settimeout(10)
        try:
            tls = self.ssl_ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return None
        try:
            tls.settimeout(Handler.timeout)
            super().finish_request(tls, client_address)
        finally:
            try:
                tls.close()
            except OSError:
                pass
        return None

    def handle_error(self, request, client_address):
        if self.verbose:
            super().handle_error(request, client_address)


def make_ssl_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def start_background(state, port=0, ssl_ctx=None, verbose=False):
    """Starts a server on a daemon thread; returns it (call .shutdown() to stop)."""
    srv = Server(state, port, ssl_ctx, verbose=verbose)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv
