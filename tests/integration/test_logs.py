"""
Logs: after deliveries of every kind (including failed authentication, admin
calls and a reload) rosterd's stderr holds no configured secret and every
line is one JSON object.
"""
import json
import signal
import time

import pytest

import helpers as H


def secret_variants(stack, admin_token, secret_key, presented):
    out = set()
    for s in stack.all_secrets() + [admin_token.token] + list(presented):
        if len(s) >= 6:
            out.add(s)
            out.add(s.replace("/", "\\/"))  # json-c escapes slashes
    out.add(secret_key.hex)
    out.add(secret_key.hex.upper())
    return sorted(out)


def assert_no_secrets(log, variants, raw_key):
    leaks = [s for s in variants if s.encode() in log]
    assert not leaks, f"{len(leaks)} secret(s) found in rosterd stderr, e.g. {leaks[0][:6]}…"
    assert raw_key not in log, "raw secret key bytes found in rosterd stderr"


def assert_json_lines(text):
    lines = text.splitlines()
    assert lines, "rosterd wrote no log lines"
    for i, line in enumerate(lines, 1):
        try:
            obj = json.loads(line)
        except ValueError:
            raise AssertionError(f"stderr line {i} is not JSON: {line[:300]!r}") from None
        assert isinstance(obj, dict), f"stderr line {i} is not an object: {line[:300]!r}"


@pytest.mark.slow
def test_logs_hold_no_secrets_and_are_json(rosterd, make_conf, stack, admin_token, secret_key):
    acme, relay = stack["acme"], stack["relay"]
    d = rosterd(make_conf(log_level="debug"))
    presented = []

    # Good deliveries of every kind, then the failures a sender or attacker produces.
    assert H.post_personio(d, "acme", H.personio_body(), acme.token).status == 202
    assert H.post_personio(d, "acme", H.personio_body(), acme.personio_tokens[1]).status == 202
    assert H.post_moco(d, "acme", H.moco_body(), acme.moco_key).status == 202
    assert H.post_moco(d, "acme", H.moco_body(), acme.moco_keys[1]).status == 202
    for src in ("personio", "moco"):
        hdr = {"X-Moco-Target": "Presence", "X-Moco-Event": "create"} if src == "moco" else {}
        assert H.post_standard(d, "relay", H.personio_body(), relay.sw_secrets[src][0],
                               source=src, headers=hdr).status == 202
    wrong = "presented-" + acme.token[::-1]
    presented.append(wrong)
    assert H.post_personio(d, "acme", H.personio_body(), wrong).status == 401
    assert H.post_personio(d, "acme", H.personio_body(), acme.token + "x").status == 401
    assert H.post_personio(d, "acme", H.personio_body(), None).status == 401
    assert H.post_moco(d, "acme", H.moco_body(), acme.moco_key, signature="0" * 64).status == 401
    assert H.post_standard(d, "relay", H.personio_body(), H.new_sw_secret()).status == 401
    assert H.post_standard(d, "relay", H.personio_body(), relay.sw_secrets["personio"][0],
                           ts=int(time.time()) - 400).status == 401
    assert H.post_personio(d, "acme", b"not json", acme.token).status == 400
    assert H.post_personio(d, "nosuchco", H.personio_body(), acme.token).status == 404
    bad_admin = "presented-admin-" + admin_token.token[::-1]
    presented.append(bad_admin)
    assert H.admin_get(d, "/admin/events", token=bad_admin).status == 403
    H.admin_get(d, "/admin/events", token=admin_token.token)
    assert H.admin_get(d, "/metrics").status == 200
    d.send_signal(signal.SIGHUP)
    time.sleep(1)
    assert d.running()
    assert H.post_personio(d, "acme", H.personio_body(), acme.token).status == 202
    time.sleep(1)  # let workers try (and fail) their upstream calls, which log too
    d.stop(signal.SIGTERM, expect=0)

    log = d.log_bytes()
    assert_no_secrets(log, secret_variants(stack, admin_token, secret_key, presented),
                      secret_key.raw)
    assert_json_lines(log.decode("utf-8", errors="strict"))


def test_session_daemon_log_holds_no_secrets_and_is_json(daemon, stack, admin_token,
                                                         secret_key):
    # Runs after test_intake in file order, so this log covers the whole intake suite.
    assert H.admin_get(daemon, "/healthz").status == 200
    log = daemon.log_bytes()
    assert_no_secrets(log, secret_variants(stack, admin_token, secret_key, []), secret_key.raw)
    assert_json_lines(log.decode("utf-8", errors="strict"))
