"""
Secrets (issue 13, item 5): stored credentials are sealed with AES-256-GCM under a
key id, `rosterctl secrets rotate-key` moves every one to a new key in one
transaction while running daemons keep working, no configured secret shows up in
logs, `events show`, listings, the admin API, stored errors, the audit trail or
error text (even when an upstream echoes one back), and the webhook listener
speaks TLS 1.2+ only with weak ciphers off, as `openssl s_client` sees it.
"""
import hashlib
import hmac
import json
import os
import re
import secrets
import subprocess
import uuid

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import helpers as H


def key_id(raw):
    return hmac.new(raw, b"rosterd secret key id", hashlib.sha256).digest()[:8]


def new_key(directory, name):
    raw = secrets.token_bytes(32)
    path = directory / name
    path.write_bytes(raw)
    os.chmod(path, 0o600)
    return path, raw


def sealed_rows(pg, dbname):
    return {name: bytes(blob) for name, blob in
            pg.query("SELECT name, sealed FROM connections ORDER BY name", dbname=dbname)}


def opens_with(raw, name, blob):
    assert blob[0] == 2
    try:
        AESGCM(raw).decrypt(blob[9:21], blob[21:], blob[:9] + name.encode())
        return True
    except Exception:
        return False


# --------------------------------------------------------------------------- rotation

@pytest.fixture
def rot(pg, make_conf, tmp_path, connection):
    """A database of its own with two connections sealed under key 1."""
    dbname = "rot_" + uuid.uuid4().hex[:10]
    pg.create_db(dbname)
    k1, raw1 = new_key(tmp_path, "key1")
    conf1 = make_conf(database_url=pg.url_for(dbname), secret_key_file=k1)
    H.rosterctl(conf1, "migrate")
    conns = {"acme": connection("acme", conf=conf1),
             "relay": connection("relay", sw_sources=("personio",), conf=conf1)}
    return dict(dbname=dbname, k1=k1, raw1=raw1, conf1=conf1, conns=conns, tmp=tmp_path,
                url=pg.url_for(dbname), apply=connection)


@pytest.mark.slow
def test_rotate_key_without_downtime(pg, make_conf, rosterd, rot):
    acme = rot["conns"]["acme"]
    before = sealed_rows(pg, rot["dbname"])
    assert all(b[1:9] == key_id(rot["raw1"]) for b in before.values())
    d1 = rosterd(rot["conf1"])
    assert H.post_personio(d1, "acme", H.personio_body(), acme.token).status == 202

    # 1. The new key becomes secret_key_file, the old one secret_key_previous_file.
    k2, raw2 = new_key(rot["tmp"], "key2")
    conf2 = make_conf(database_url=rot["url"], secret_key_file=k2,
                      secret_key_previous_file=rot["k1"])
    d1.stop()
    d2 = rosterd(conf2)
    assert H.post_personio(d2, "acme", H.personio_body(), acme.token).status == 202
    st = json.loads(H.rosterctl(conf2, "secrets", "status", "--json").stdout)
    assert {(r["name"], r["key"]) for r in st} == {("acme", "previous"), ("relay", "previous")}

    # 2. Rotate: every value moves to key 2 in one go.
    res = H.rosterctl(conf2, "secrets", "rotate-key", str(k2))
    assert res.stdout.startswith(f"re-sealed 2 stored secrets under key id {key_id(raw2).hex()}\n")
    assert "remove secret_key_previous_file" in res.stdout
    after = sealed_rows(pg, rot["dbname"])
    for name, blob in after.items():
        assert blob[1:9] == key_id(raw2) and opens_with(raw2, name, blob)
        assert not opens_with(rot["raw1"], name, blob)
        assert blob[9:21] != before[name][9:21]  # a fresh nonce
    st = json.loads(H.rosterctl(conf2, "secrets", "status", "--json").stdout)
    assert {r["key"] for r in st} == {"current"} and len(st) == 2
    table = H.rosterctl(conf2, "secrets", "status").stdout.splitlines()
    assert table[0].split() == ["KIND", "NAME", "KEY_ID", "KEY"]
    # The running daemon keeps accepting and its workers open the re-sealed rows.
    assert H.post_personio(d2, "acme", H.personio_body(), acme.token).status == 202
    relay = rot["conns"]["relay"]
    assert H.post_standard(d2, "relay", H.personio_body(), relay.sw_secrets["personio"][0]
                           ).status == 202

    # 3. The old key is gone from the configuration: everything still works.
    conf3 = make_conf(database_url=rot["url"], secret_key_file=k2)
    d2.stop()
    d3 = rosterd(conf3)
    assert H.post_personio(d3, "acme", H.personio_body(), acme.token).status == 202
    # Running it again is harmless (values already under the new key open with it).
    res = H.rosterctl(conf3, "secrets", "rotate-key", str(k2))
    assert res.stdout.startswith("re-sealed 2 stored secrets")
    d3.stop()

    # A daemon left with only the old key says which key the rows need.
    d4 = rosterd(rot["conf1"], wait=False)
    H.wait_for(lambda: "cannot open connection secrets" in d4.log_text(), 20,
               what="the decrypt error in the log")
    assert (f"sealed under key id {key_id(raw2).hex()}, secret_key_file has key id "
            f"{key_id(rot['raw1']).hex()}") in d4.log_text()


def test_rotate_key_is_one_transaction(pg, make_conf, rot):
    # One row sealed under a key nobody has: the rotation must change nothing at all.
    stray = rot["tmp"] / "stray.key"
    stray.write_bytes(secrets.token_bytes(32))
    rot["apply"]("zeta", conf=make_conf(database_url=rot["url"], secret_key_file=stray))
    before = sealed_rows(pg, rot["dbname"])
    k2, _ = new_key(rot["tmp"], "key2")
    res = H.rosterctl(rot["conf1"], "secrets", "rotate-key", str(k2), check=False)
    assert res.returncode == 1
    assert re.fullmatch(r"rosterctl: secrets rotate-key: connection zeta: cannot open \(sealed "
                        r"under key id [0-9a-f]{16}, which neither secret_key_file, "
                        r"secret_key_previous_file nor the new key holds\); nothing was "
                        r"changed\n", res.stderr), res.stderr
    assert sealed_rows(pg, rot["dbname"]) == before


def test_rotate_key_bad_usage_and_bad_key_file(pg, rot):
    before = sealed_rows(pg, rot["dbname"])
    res = H.rosterctl(rot["conf1"], "secrets", "rotate-key", check=False)
    assert res.returncode == 2 and "expected the new key file" in res.stderr
    short = rot["tmp"] / "short.key"
    short.write_bytes(b"x" * 31)
    res = H.rosterctl(rot["conf1"], "secrets", "rotate-key", str(short), check=False)
    assert res.returncode == 1
    assert res.stderr == (f"rosterctl: secret key file {short}: secret key must be 32 raw bytes "
                          "(optionally followed by one newline) or 64 hex digits (optionally "
                          "followed by one newline); got 31 bytes\n")
    res = H.rosterctl(rot["conf1"], "secrets", "rotate-key", str(rot["tmp"] / "nope"), check=False)
    assert res.returncode == 1 and "cannot open secret key file" in res.stderr
    assert sealed_rows(pg, rot["dbname"]) == before


def test_version_1_rows_still_open_and_rotate(pg, make_conf, rot, rosterd):
    """Rows sealed before key ids (0x01 || nonce || ct || tag) keep working."""
    raw1 = rot["raw1"]
    for name, blob in sealed_rows(pg, rot["dbname"]).items():
        plain = AESGCM(raw1).decrypt(blob[9:21], blob[21:], blob[:9] + name.encode())
        nonce = os.urandom(12)
        v1 = b"\x01" + nonce + AESGCM(raw1).encrypt(nonce, plain, name.encode())
        c = pg.connect(rot["dbname"])
        with c, c.cursor() as cur:  # commits
            cur.execute("UPDATE connections SET sealed = %s WHERE name = %s", (v1, name))
        c.close()
    st = json.loads(H.rosterctl(rot["conf1"], "secrets", "status", "--json").stdout)
    assert {r["key"] for r in st} == {"version 1 (no key id)"}
    d = rosterd(rot["conf1"])
    assert H.post_personio(d, "acme", H.personio_body(), rot["conns"]["acme"].token).status == 202
    H.rosterctl(rot["conf1"], "secrets", "rotate-key", str(rot["k1"]))
    assert all(b[0] == 2 for b in sealed_rows(pg, rot["dbname"]).values())


# --------------------------------------------------------------------------- no secret anywhere

def variants(values):
    out = set()
    for s in values:
        if s and len(s) >= 6:
            out |= {s, s.replace("/", "\\/"), json.dumps(s)[1:-1]}
    return out


def leaks(text, values):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return sorted(v[:8] + "…" for v in values if v in text)


@pytest.mark.slow
def test_no_configured_secret_in_any_output(world, admin_token, secret_key, tmp_path):
    world.reset()
    c = world.creds
    # An upstream that echoes credentials back in its error bodies (a compromised or
    # careless one) must not get them into rosterd's errors either.
    world.sandbox.fault(system="moco", method="GET", path_prefix="/users", status=401,
                        body={"message": f"key {c['moco_key']} is not valid"}, times=None)
    world.sandbox.fault(system="slack", method="POST", status=404,
                        body=f"no_service for /services/{c['slack_path']}", times=None)
    events = [world.personio("employment.updated", 1021),
              world.personio("person.created", 1029),
              world.moco("User", "update", {"id": 9021, "email": "x@acme.example"})]
    # A wrong Personio client secret: the auth error comes back with its body.
    wrong = "pcs-wrong-" + secrets.token_hex(12)
    doc = json.loads(json.dumps(world.base_doc))
    doc["personio"]["client_secret"] = wrong
    world.apply(doc)
    events.append(world.personio("employment.updated", 1022))
    presented = ["bad-" + c["webhook_token"][::-1]]
    assert H.post_personio(world.daemon, "acme", H.personio_body(), presented[0]).status == 401
    for ev in events:
        world.wait_event(ev, timeout=60, until=("done", "dead", "failed"))
    world.wait_idle(timeout=60)
    world.apply(json.loads(json.dumps(world.base_doc)))

    values = variants(world.secrets() + [wrong, admin_token.token, secret_key.hex,
                                         c["slack_path"].split("/")[-1]] + presented)
    outputs = {"rosterd stderr": world.daemon.log_bytes()}
    for ev in events:
        outputs[f"events show {ev}"] = world.ctl("events", "show", ev).stdout
        outputs[f"events show {ev} --json"] = world.ctl("events", "show", ev, "--json").stdout
        outputs[f"admin /admin/events/{ev}"] = H.admin_get(world.daemon, f"/admin/events/{ev}",
                                                           token=admin_token.token).body
    for args in (("events", "list", "--json"), ("events", "list"), ("jobs", "list", "--json"),
                 ("jobs", "list", "--state", "done", "--json"), ("connection", "list"),
                 ("connection", "show", "acme"), ("secrets", "status")):
        outputs[" ".join(args)] = world.ctl(*args).stdout
    outputs["admin /admin/events"] = H.admin_get(world.daemon, "/admin/events",
                                                 token=admin_token.token).body
    outputs["admin /admin/jobs"] = H.admin_get(world.daemon, "/admin/jobs",
                                               token=admin_token.token).body
    for table in ("events", "event_attempts", "jobs", "jobs_history", "upstream_audit",
                  "findings", "alerts_sent", "people", "connections"):
        rows = world.query(f"SELECT t::text FROM {table} t")
        outputs[f"table {table}"] = "\n".join(r[0] for r in rows)
    # Error text of the operator tool, with a secret in the document it refuses.
    bad = dict(world.base_doc, timezone="Mars/Olympus")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    res = world.ctl("connection", "apply", str(path), check=False)
    assert res.returncode == 1
    outputs["connection apply (refused)"] = res.stdout + res.stderr

    # The outputs say something (a test that greps empty text proves nothing) ...
    assert b"HTTP 401" in outputs["rosterd stderr"]
    assert "timezone" in outputs["connection apply (refused)"]
    errors = [e for (e,) in world.query("SELECT error FROM event_attempts WHERE error IS NOT NULL")]
    assert any("HTTP 401" in e for e in errors), errors
    assert any("[redacted]" in e for e in errors), errors  # the echoed MOCO key
    # ... and none of it holds a secret.
    found = {where: leaks(text, values) for where, text in outputs.items()}
    found = {k: v for k, v in found.items() if v}
    assert not found, f"secrets in: {found}"
    assert secret_key.raw not in outputs["rosterd stderr"]


# --------------------------------------------------------------------------- TLS

def s_client(d, *args, stdin=b"Q\n", timeout=20):
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{d.port}", "-servername", "localhost",
           "-CAfile", str(d.ca), "-verify_return_error", *args]
    res = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    return res.returncode, (res.stdout + res.stderr).decode("utf-8", "replace")


def client_offers(cipher):
    """True when the local openssl can offer cipher at all (so a refusal is the server's)."""
    res = subprocess.run(["openssl", "ciphers", "-s", "-tls1_2", f"{cipher}:@SECLEVEL=0"],
                         capture_output=True, text=True)
    return res.returncode == 0 and cipher in res.stdout.strip().split(":")


def handshake_ok(out):
    return re.search(r"Cipher is (?!\(NONE\))\S+", out) is not None and "Verify return code: 0" in out


@pytest.mark.parametrize("proto", ["-tls1", "-tls1_1"])
def test_tls_below_1_2_is_refused(daemon, proto):
    rc, out = s_client(daemon, proto, "-cipher", "DEFAULT:@SECLEVEL=0")
    assert rc != 0 and not handshake_ok(out), out[-1500:]
    assert "no protocols available" not in out  # the client did offer it ...
    assert re.search(r"alert protocol version|unsupported protocol|wrong version", out), out[-800:]


def test_tls_1_2_and_1_3_work_with_forward_secret_aead_ciphers(daemon):
    rc, out = s_client(daemon, "-tls1_2")
    assert rc == 0 and handshake_ok(out), out[-1500:]
    assert "Protocol  : TLSv1.2" in out
    cipher = re.search(r"Cipher    : (\S+)", out).group(1)
    assert cipher.startswith("ECDHE-") and ("GCM" in cipher or "CHACHA20" in cipher), cipher
    assert "Compression: NONE" in out
    rc, out = s_client(daemon, "-tls1_3")
    assert rc == 0 and handshake_ok(out) and "TLSv1.3" in out, out[-1500:]


WEAK_CIPHERS = ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA256",
                "AES128-GCM-SHA256", "AES256-SHA", "DES-CBC3-SHA", "ECDHE-ECDSA-NULL-SHA",
                "AECDH-AES128-SHA", "ADH-AES128-GCM-SHA256", "RC4-SHA", "NULL-SHA256",
                "ECDHE-ECDSA-CAMELLIA128-SHA256", "PSK-AES128-GCM-SHA256"]


def test_weak_tls_1_2_ciphers_are_refused(daemon):
    offered = [c for c in WEAK_CIPHERS if client_offers(c)]
    # CBC, static RSA (no forward secrecy), 3DES, NULL and anonymous suites at least.
    assert {"ECDHE-ECDSA-AES128-SHA", "AES128-GCM-SHA256", "ECDHE-ECDSA-NULL-SHA",
            "AECDH-AES128-SHA"} <= set(offered), offered
    accepted = []
    for cipher in offered:
        rc, out = s_client(daemon, "-tls1_2", "-cipher", f"{cipher}:@SECLEVEL=0")
        if rc == 0 or handshake_ok(out):
            accepted.append(cipher)
        else:
            assert re.search(r"handshake failure|no shared cipher|no ciphers available", out), \
                out[-800:]
    assert not accepted, f"weak ciphers accepted: {accepted}"


def test_tls_renegotiation_is_refused(daemon):
    # "R" asks s_client to renegotiate; rosterd answers no_renegotiation.
    rc, out = s_client(daemon, "-tls1_2", stdin=b"R\n", timeout=20)
    assert "RENEGOTIATING" in out, out[-1500:]
    assert "no renegotiation" in out, out[-1500:]
