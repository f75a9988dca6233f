"""Shared helpers of the sandbox: request/response objects, routing, dates.

Standard library only. Every fake module works on a Req and returns a Resp;
the server turns those into HTTP.
"""
import datetime as _dt
import json
import re
import urllib.parse

JSON_CT = "application/json; charset=utf-8"


class Resp:
    """An HTTP answer: status, body bytes, content type, extra headers."""

    def __init__(self, status, body=b"", ctype=JSON_CT, headers=None):
        self.status = status
        self.body = body if isinstance(body, bytes) else str(body).encode()
        self.ctype = ctype
        self.headers = list(headers or [])

    def add_header(self, name, value):
        self.headers.append((name, str(value)))


def jresp(status, obj, headers=None, ctype=JSON_CT):
    return Resp(status, json.dumps(obj).encode(), ctype, headers)


def tresp(status, text, headers=None, ctype="text/plain; charset=utf-8"):
    return Resp(status, text.encode(), ctype, headers)


class BadBody(Exception):
    """The request body could not be parsed."""


class Req:
    """One request as seen by a fake: path is relative to the system's base."""

    def __init__(self, method, path, raw_query, headers, body, root, prefix, client):
        self.method = method
        self.path = path
        self.raw_query = raw_query
        self.query = urllib.parse.parse_qs(raw_query, keep_blank_values=True)
        self.headers = headers
        self.body = body
        self.root = root          # e.g. https://127.0.0.1:8080
        self.prefix = prefix      # e.g. /moco/api/v1
        self.client = client

    @property
    def base(self):
        return self.root + self.prefix

    def header(self, name, default=None):
        return self.headers.get(name, default)

    def q(self, name, default=None):
        vals = self.query.get(name)
        return vals[0] if vals else default

    def qlist(self, name):
        """Values of name and name[], each also split on commas."""
        out = []
        for key in (name, name + "[]"):
            for v in self.query.get(key, []):
                out.extend(x for x in v.split(",") if x != "")
        return out

    def json(self):
        if not self.body:
            raise BadBody("empty body")
        try:
            return json.loads(self.body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise BadBody(str(e)) from None

    def form(self):
        try:
            return dict(urllib.parse.parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError as e:
            raise BadBody(str(e)) from None

    def is_form(self):
        ctype = (self.header("Content-Type") or "").lower()
        return ctype.startswith("application/x-www-form-urlencoded")


def dispatch(routes, req, not_found, bad_method):
    """routes: list of (method, compiled regex, func(req, *groups)). First match wins."""
    path_matched = False
    for method, rx, func in routes:
        m = rx.fullmatch(req.path)
        if not m:
            continue
        path_matched = True
        if method == req.method:
            return func(req, *m.groups())
    return bad_method() if path_matched else not_found()


def R(method, pattern, func):
    return (method, re.compile(pattern), func)


# ---- dates -------------------------------------------------------------------

def parse_date(s):
    """'YYYY-MM-DD' (optionally followed by a time part) -> date, or None."""
    if not isinstance(s, str) or len(s) < 10:
        return None
    try:
        return _dt.date.fromisoformat(s[:10])
    except ValueError:
        return None


def _last_sunday(year, month):
    d = _dt.date(year, month + 1, 1) - _dt.timedelta(days=1) if month < 12 else _dt.date(year, 12, 31)
    return d - _dt.timedelta(days=(d.weekday() + 1) % 7)


def berlin_offset_minutes(d):
    """UTC offset of Europe/Berlin at local midnight of date d (EU DST rule)."""
    return 120 if _last_sunday(d.year, 3) < d <= _last_sunday(d.year, 10) else 60


def personio_date(s, colon=True, time="00:00:00"):
    """'2014-11-09' -> '2014-11-09T00:00:00+01:00' (or '+0100' with colon=False)."""
    d = parse_date(s)
    if d is None:
        return None
    off = berlin_offset_minutes(d)
    sep = ":" if colon else ""
    return "%sT%s+%02d%s%02d" % (d.isoformat(), time, off // 60, sep, off % 60)


def utc_now():
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


def iso_utc(dt=None):
    return (dt or utc_now()).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_ts(s):
    """ISO timestamp or date -> aware datetime (dates/naive are Berlin local), or None."""
    if not isinstance(s, str) or not s:
        return None
    txt = s.strip().replace("Z", "+00:00")
    try:
        dt = _dt.datetime.fromisoformat(txt)
    except ValueError:
        m = re.fullmatch(r"(.*[T ]\d\d:\d\d(?::\d\d)?(?:\.\d+)?)([+-]\d\d)(\d\d)", txt)
        if not m:
            return None
        try:
            dt = _dt.datetime.fromisoformat(m.group(1) + m.group(2) + ":" + m.group(3))
        except ValueError:
            return None
    if dt.tzinfo is None:
        off = berlin_offset_minutes(dt.date())
        dt = dt.replace(tzinfo=_dt.timezone(_dt.timedelta(minutes=off)))
    return dt


def hhmm_minutes(s):
    """'09:30' -> 570; None/'' -> None; invalid -> raises ValueError."""
    if s is None or s == "":
        return None
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", str(s))
    if not m or int(m.group(1)) > 24 or int(m.group(2)) > 59:
        raise ValueError("bad time %r" % (s,))
    return int(m.group(1)) * 60 + int(m.group(2))


def to_int(v, default=None):
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def truthy(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes", "on")
    return bool(v)


def cached_list(st, kind, key, build):
    """The full, rendered answer of a list query, computed once per state generation
    (st.gen moves on every write): paging through 100,000 presences then costs one
    filter and sort, not one per page. build() returns the list; callers slice it."""
    gen = getattr(st, "gen", 0)
    cache = getattr(st, "list_cache", None)
    if cache is None or cache.get("_gen") != gen:
        cache = {"_gen": gen}
        st.list_cache = cache
    k = (kind, key)
    if k not in cache:
        cache[k] = build()
    return cache[k]


def query_without(raw_query, *names):
    """The query string minus the named (paging) parameters, as a cache key."""
    return tuple(sorted((k, v) for k, v in urllib.parse.parse_qsl(raw_query, keep_blank_values=True)
                        if k not in names))
