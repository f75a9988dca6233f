"""In-memory state of the sandbox: every fake's data, config, faults, recorded
requests and rate-limit windows, guarded by one lock. Optional JSON persistence
covers the data collections only (not requests, faults or tokens).
"""
import collections
import datetime as _dt
import json
import os
import threading
import time

DEFAULT_CONFIG = {
    "personio_token_mode": "stable",   # stable | rotate
    "personio_employees_rate": 300,    # GET employees per minute
    "personio_employees_burst": 15,    # GET employees per second (spec §1.2: bursts of 15 req/s)
    "personio_rate": 2000,             # all v1 requests per minute (spec §1.5: per IP)
    "personio_auth_rate": 60,          # POST /v1/auth per minute (then 60 s cool-down)
    "personio_token_ttl": 86400,
    "moco_rate": 120,                  # requests per moco_window_s (sliding)
    "moco_window_s": 120,
    "moco_per_page": 100,
    "scim_patch_204": False,
    "slack_mode": "ok",                # ok | 429 | 410
}

# Collections persisted and dumped; keyed dicts id -> record unless noted.
COLLECTIONS = (
    "employees", "time_off_types", "time_offs", "attendances",
    "moco_users", "presences", "schedules",
    "scim_users", "scim_groups", "delegations",
)

MAX_RECORDED = 20000


class State:
    def __init__(self):
        self.lock = threading.RLock()
        self.dirty = False
        self.today = _dt.date.today()
        self.fixed_today = None         # --today of the CLI; resets keep it
        self.seed_name = "empty"
        self._clear()

    def _clear(self):
        for name in COLLECTIONS:
            setattr(self, name, {})
        self.personio_clients = {}      # client_id -> secret
        self.personio_tokens = {}       # token -> expiry (epoch)
        self.moco_keys = {}             # key -> {"user_id", "read_only"}
        self.platform_tokens = set()
        self.slack_hooks = set()        # "T000/B000/XXXX"
        self.slack_inbox = []
        self.requests = collections.deque(maxlen=MAX_RECORDED)
        self.next_request_id = 1
        self.faults = []
        self.next_fault_id = 1
        self.config = dict(DEFAULT_CONFIG)
        self.windows = {}               # name -> deque of timestamps
        self.cooldown = {}              # name -> epoch until which everything is refused
        self.counters = {}

    # ---- ids -------------------------------------------------------------
    def next_id(self, coll, base):
        """Deterministic integer id: one above the largest ever handed out in coll."""
        cur = self.counters.get(coll, base - 1)
        existing = [k for k in getattr(self, coll) if isinstance(k, int)]
        nid = max([cur] + existing) + 1
        self.counters[coll] = nid
        return nid

    def seq(self, name):
        self.counters[name] = self.counters.get(name, 0) + 1
        return self.counters[name]

    # ---- rate limits -----------------------------------------------------
    def rate_ok(self, name, limit, window_s, cooldown_s=0):
        now = time.monotonic()
        if self.cooldown.get(name, 0) > now:
            return False
        win = self.windows.setdefault(name, collections.deque())
        while win and win[0] <= now - window_s:
            win.popleft()
        if limit is not None and len(win) >= int(limit):
            if cooldown_s:
                self.cooldown[name] = now + cooldown_s
            return False
        win.append(now)
        return True

    def reset_rates(self):
        self.windows.clear()
        self.cooldown.clear()

    # ---- reset / persistence --------------------------------------------
    def reset(self, seed="demo", today=None):
        from . import seed as seedmod
        self._clear()
        self.today = today or self.fixed_today or _dt.date.today()
        self.seed_name = seed
        seedmod.apply(self, seed, self.today)
        self.dirty = True

    def data_dump(self):
        out = {name: list(getattr(self, name).values()) for name in COLLECTIONS}
        out["slack_hooks"] = sorted(self.slack_hooks)
        out["today"] = self.today.isoformat()
        out["seed"] = self.seed_name
        return out

    def save(self, path):
        blob = dict(self.data_dump())
        blob["_credentials"] = {
            "personio_clients": self.personio_clients,
            "moco_keys": self.moco_keys,
            "platform_tokens": sorted(self.platform_tokens),
        }
        blob["_counters"] = self.counters
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(blob, f)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)

    def load(self, path):
        with open(path, encoding="utf-8") as f:
            blob = json.load(f)
        self._clear()
        for name in COLLECTIONS:
            coll = getattr(self, name)
            for rec in blob.get(name, []):
                coll[rec["id"]] = rec
        self.slack_hooks = set(blob.get("slack_hooks", []))
        self.today = _dt.date.fromisoformat(blob.get("today", _dt.date.today().isoformat()))
        self.seed_name = blob.get("seed", "loaded")
        cred = blob.get("_credentials", {})
        self.personio_clients = dict(cred.get("personio_clients", {}))
        self.moco_keys = dict(cred.get("moco_keys", {}))
        self.platform_tokens = set(cred.get("platform_tokens", []))
        self.counters = dict(blob.get("_counters", {}))


def mask_auth(value):
    """Keeps the scheme of an Authorization value, hides the credential."""
    if not value:
        return value
    if value.lower().startswith("token token="):
        return value[:12] + "***"
    parts = value.split(" ", 1)
    return parts[0] + " ***" if len(parts) == 2 else "***"
