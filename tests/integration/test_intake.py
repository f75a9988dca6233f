"""
Webhook intake over HTTPS against a real rosterd and Postgres: every answer of
DESIGN.md section 5 as a sender sees it, dedup, secrets kept out of stored
headers, a concurrent burst, and Postgres going away and coming back.
"""
import json
import threading
import time
import uuid

import pytest

import helpers as H


def row_count_with(pg, tag):
    return pg.query("SELECT count(*) FROM events WHERE body LIKE %s", (f"%{tag}%",))[0][0]


def assert_queued(r):
    assert r.status == 202, r
    j = r.json()
    assert j.get("status") == "queued", j
    assert isinstance(j.get("event_id"), str) and j["event_id"], j
    return j["event_id"]


def assert_duplicate(r, first_id):
    assert r.status == 200, r
    j = r.json()
    assert j.get("status") == "duplicate" and j.get("event_id") == first_id, (j, first_id)


def assert_unauthorized(r):
    assert r.status == 401, r
    assert r.json() == {"error": "unauthorized"}


def assert_bad_request(r):
    assert r.status == 400, r
    j = r.json()
    assert isinstance(j.get("error"), str) and j["error"], j


def test_harness_standard_webhooks_signer_matches_spec_vector():
    assert H.sw_signature(H.SW_SPEC_SECRET, H.SW_SPEC_ID, H.SW_SPEC_TS,
                          H.SW_SPEC_BODY) == H.SW_SPEC_SIG
    assert H.moco_signature("1d608b9d72219b90ff2393a1d3ee0ac0",
                            b'{"id":111,"description":"a description"}') == \
        "bf027a86207ef1ca1cb76f5a536b41a14287ab1a0fd5b33bfe86924bc2f48fd1"


# --------------------------------------------------------------------------- Personio

def test_personio_delivery_is_queued_and_listed(daemon, stack):
    acme = stack["acme"]
    r = H.post_personio(daemon, "acme", H.personio_body("person.created"), acme.token)
    eid = assert_queued(r)
    rows = [e for e in H.events_list(stack.conf, "--connection", "acme")
            if str(e.get("id")) == eid]
    assert len(rows) == 1, f"event {eid} not in `rosterctl events list --json`"
    assert rows[0]["connection"] == "acme"
    assert rows[0]["source"] == "personio"
    assert rows[0]["event_type"] == "person.created"


def test_personio_redelivery_is_duplicate_with_first_event_id(daemon, stack):
    acme = stack["acme"]
    body = H.to_bytes(H.personio_body())
    first = assert_queued(H.post_personio(daemon, "acme", body, acme.token))
    assert_duplicate(H.post_personio(daemon, "acme", body, acme.token), first)
    # The rotated token authenticates the same delivery: still the first id.
    assert_duplicate(H.post_personio(daemon, "acme", body, acme.personio_tokens[1]), first)
    assert stack.pg.query("SELECT count(*) FROM events WHERE body = %s",
                          (body.decode(),))[0][0] == 1


def test_personio_rotated_token_is_accepted(daemon, stack):
    acme = stack["acme"]
    assert_queued(H.post_personio(daemon, "acme", H.personio_body(), acme.personio_tokens[1]))


@pytest.mark.parametrize("how", ["missing", "wrong", "empty", "prefix", "suffix", "bearer",
                                 "other_connection"])
def test_personio_bad_token_is_401_and_not_stored(daemon, stack, how):
    acme = stack["acme"]
    tok = {"missing": None, "wrong": "not-the-token", "empty": "",
           "prefix": acme.token[:-1], "suffix": acme.token + "x",
           "bearer": "Bearer " + acme.token,
           "other_connection": stack["relay"].token}[how]
    body = H.personio_body()
    assert_unauthorized(H.post_personio(daemon, "acme", body, tok))
    assert row_count_with(stack.pg, body["payload"]["id"]) == 0


def test_personio_non_json_body_is_400(daemon, stack):
    tag = uuid.uuid4().hex
    r = H.post_personio(daemon, "acme", f"this is not json {tag}".encode(), stack["acme"].token)
    assert_bad_request(r)
    assert row_count_with(stack.pg, tag) == 0


# --------------------------------------------------------------------------- MOCO

def test_moco_delivery_is_queued_and_listed(daemon, stack):
    acme = stack["acme"]
    eid = assert_queued(H.post_moco(daemon, "acme", H.moco_body(), acme.moco_key,
                                    "Presence", "create"))
    rows = [e for e in H.events_list(stack.conf, "--connection", "acme", "--source", "moco")
            if str(e.get("id")) == eid]
    assert len(rows) == 1, f"event {eid} not listed with --source moco"
    assert rows[0]["source"] == "moco"


def test_moco_redelivery_is_duplicate_and_event_is_part_of_the_key(daemon, stack):
    acme = stack["acme"]
    body = H.to_bytes(H.moco_body())
    first = assert_queued(H.post_moco(daemon, "acme", body, acme.moco_key, "Presence", "update"))
    assert_duplicate(H.post_moco(daemon, "acme", body, acme.moco_key, "Presence", "update"), first)
    # Dedup key is target + event + body: the same body as another event is a new delivery.
    other = assert_queued(H.post_moco(daemon, "acme", body, acme.moco_key, "Presence", "delete"))
    assert other != first
    other2 = assert_queued(H.post_moco(daemon, "acme", body, acme.moco_key, "Schedule",
                                       "update"))
    assert other2 not in (first, other)


def test_moco_rotated_key_is_accepted(daemon, stack):
    acme = stack["acme"]
    assert_queued(H.post_moco(daemon, "acme", H.moco_body(), acme.moco_keys[1]))


@pytest.mark.parametrize("how", ["missing", "wrong_key", "other_body", "uppercase_garbage",
                                 "truncated", "key_hex_decoded"])
def test_moco_bad_signature_is_401_and_not_stored(daemon, stack, how):
    acme = stack["acme"]
    body = H.moco_body()
    raw = H.to_bytes(body)
    sig = {"missing": False,
           "wrong_key": H.moco_signature("0" * 32, raw),
           "other_body": H.moco_signature(acme.moco_key, raw + b" "),
           "uppercase_garbage": "Z" * 64,
           "truncated": H.moco_signature(acme.moco_key, raw)[:-2],
           "key_hex_decoded": __import__("hmac").new(bytes.fromhex(acme.moco_key), raw,
                                                     "sha256").hexdigest()}[how]
    assert_unauthorized(H.post_moco(daemon, "acme", raw, acme.moco_key, signature=sig))
    assert row_count_with(stack.pg, body["tag"]) == 0


@pytest.mark.parametrize("missing", ["target", "event"])
def test_moco_missing_target_or_event_header_is_400(daemon, stack, missing):
    acme = stack["acme"]
    body = H.moco_body()
    kw = {"target": None} if missing == "target" else {"event": None}
    assert_bad_request(H.post_moco(daemon, "acme", body, acme.moco_key, **kw))
    assert row_count_with(stack.pg, body["tag"]) == 0


def test_moco_non_json_body_with_valid_signature_is_400(daemon, stack):
    tag = uuid.uuid4().hex
    assert_bad_request(H.post_moco(daemon, "acme", f"<xml>{tag}</xml>".encode(),
                                   stack["acme"].moco_key))
    assert row_count_with(stack.pg, tag) == 0


# --------------------------------------------------------------------------- Standard Webhooks

def test_standard_webhooks_spec_secret_is_queued(daemon, stack):
    relay = stack["relay"]
    assert relay.sw_secrets["personio"][0] == H.SW_SPEC_SECRET
    eid = assert_queued(H.post_standard(daemon, "relay", H.personio_body(), H.SW_SPEC_SECRET))
    assert any(str(e.get("id")) == eid for e in H.events_list(stack.conf, "--connection", "relay"))


def test_standard_webhooks_rotated_secret_and_moco_source(daemon, stack):
    relay = stack["relay"]
    assert_queued(H.post_standard(daemon, "relay", H.personio_body(),
                                  relay.sw_secrets["personio"][1]))
    assert_queued(H.post_standard(daemon, "relay", H.moco_body(), relay.sw_secrets["moco"][0],
                                  source="moco", headers={"X-Moco-Target": "Presence",
                                                          "X-Moco-Event": "create"}))


def test_standard_webhooks_redelivery_keyed_by_webhook_id(daemon, stack):
    secret = stack["relay"].sw_secrets["personio"][1]
    body = H.personio_body()
    msg_id = "msg_" + uuid.uuid4().hex
    now = int(time.time())
    first = assert_queued(H.post_standard(daemon, "relay", body, secret, msg_id, now - 20))
    # A retry carries the same webhook-id with a new timestamp and signature.
    assert_duplicate(H.post_standard(daemon, "relay", body, secret, msg_id, now), first)
    # The id alone is the key, even when the body differs.
    assert_duplicate(H.post_standard(daemon, "relay", H.personio_body(), secret, msg_id, now),
                     first)
    # A new id with the same body is a new delivery.
    assert assert_queued(H.post_standard(daemon, "relay", body, secret)) != first


def test_standard_webhooks_second_signature_of_list_matches(daemon, stack):
    secret = stack["relay"].sw_secrets["personio"][0]
    body = H.to_bytes(H.personio_body())
    msg_id, ts = "msg_" + uuid.uuid4().hex, int(time.time())
    good = H.sw_signature(secret, msg_id, ts, body)
    bad = H.sw_signature(H.new_sw_secret(), msg_id, ts, body)
    sig = f"v1a,{good[3:]} {bad} {good}"
    assert_queued(H.post_standard(daemon, "relay", body, secret, msg_id, ts, signature=sig))


def test_standard_webhooks_timestamp_within_tolerance_is_accepted(daemon, stack):
    secret = stack["relay"].sw_secrets["personio"][0]
    assert_queued(H.post_standard(daemon, "relay", H.personio_body(), secret,
                                  ts=int(time.time()) - 290))
    assert_queued(H.post_standard(daemon, "relay", H.personio_body(), secret,
                                  ts=int(time.time()) + 290))


@pytest.mark.parametrize("how", ["wrong_secret", "tampered_body", "ts_301s_old",
                                 "ts_301s_future", "no_webhook_id", "no_webhook_timestamp",
                                 "no_webhook_signature", "only_v1a", "only_v2",
                                 "unparsable_timestamp", "personio_token_instead"])
def test_standard_webhooks_rejections_are_401(daemon, stack, how):
    relay = stack["relay"]
    secret = relay.sw_secrets["personio"][0]
    body = H.personio_body()
    raw = H.to_bytes(body)
    now = int(time.time())
    msg_id = "msg_" + uuid.uuid4().hex
    good = H.sw_signature(secret, msg_id, now, raw)
    kw = {}
    if how == "wrong_secret":
        kw = dict(signature=H.sw_signature(H.new_sw_secret(), msg_id, now, raw))
    elif how == "tampered_body":
        kw = dict(signature=H.sw_signature(secret, msg_id, now, raw[:-1] + b' }'))
    elif how == "ts_301s_old":
        kw = dict(ts=now - 301, signature=H.sw_signature(secret, msg_id, now - 301, raw))
    elif how == "ts_301s_future":
        kw = dict(ts=now + 301, signature=H.sw_signature(secret, msg_id, now + 301, raw))
    elif how == "no_webhook_id":
        kw = dict(omit=("webhook-id",), signature=good)
    elif how == "no_webhook_timestamp":
        kw = dict(omit=("webhook-timestamp",), signature=good)
    elif how == "no_webhook_signature":
        kw = dict(omit=("webhook-signature",), signature=good)
    elif how == "only_v1a":
        kw = dict(signature="v1a," + good[3:])
    elif how == "only_v2":
        kw = dict(signature="v2," + good[3:])
    elif how == "unparsable_timestamp":
        kw = dict(signature=good, headers={"webhook-timestamp": f"{now}abc"})
    if how == "personio_token_instead":
        r = H.post_personio(daemon, "relay", raw, relay.token)
    else:
        kw.setdefault("ts", now)
        r = H.post_standard(daemon, "relay", raw, secret, msg_id, **kw)
    assert_unauthorized(r)
    assert row_count_with(stack.pg, body["payload"]["id"]) == 0


def test_standard_webhooks_non_json_body_with_valid_signature_is_400(daemon, stack):
    tag = uuid.uuid4().hex
    assert_bad_request(H.post_standard(daemon, "relay", f"not json {tag}".encode(),
                                       stack["relay"].sw_secrets["personio"][0]))
    assert row_count_with(stack.pg, tag) == 0


# --------------------------------------------------------------------------- routing

def test_unknown_connection_and_source_are_404(daemon, stack):
    acme = stack["acme"]
    assert H.post_personio(daemon, "nosuchco", H.personio_body(), acme.token).status == 404
    r = H.https_request(daemon, "POST", "/webhooks/acme/slack", H.to_bytes(H.personio_body()),
                        {"Authorization": acme.token, "Content-Type": "application/json"})
    assert r.status == 404, r
    r = H.https_request(daemon, "POST", "/nothing/here", b"{}",
                        {"Authorization": acme.token, "Content-Type": "application/json"})
    assert r.status == 404, r


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_other_methods_on_webhook_path_are_405(daemon, stack, method):
    r = H.https_request(daemon, method, "/webhooks/acme/personio",
                        b"{}" if method == "PUT" else b"",
                        {"Authorization": stack["acme"].token})
    assert r.status == 405, r


@pytest.mark.slow
def test_body_over_max_body_bytes_is_413(rosterd, make_conf, stack):
    d = rosterd(make_conf(max_body_bytes=4096))
    acme = stack["acme"]

    def body_of(size):
        b = H.personio_body()
        base = len(H.to_bytes(b))
        b["meta"]["pad"] = "x" * (size - base - len(',"pad":""'))
        raw = H.to_bytes(b)
        assert len(raw) == size
        return b, raw

    big, raw = body_of(5000)
    assert H.post_personio(d, "acme", raw, acme.token).status == 413
    assert row_count_with(stack.pg, big["payload"]["id"]) == 0
    # The limit itself is allowed.
    _, raw = body_of(4096)
    assert_queued(H.post_personio(d, "acme", raw, acme.token))
    # A chunked body (no Content-Length) over the limit is refused as well.
    big, raw = body_of(6000)
    r = H.https_request(d, "POST", "/webhooks/acme/personio", raw,
                        {"Authorization": acme.token, "Content-Type": "application/json"},
                        chunked=True)
    assert r.status == 413, r
    assert row_count_with(stack.pg, big["payload"]["id"]) == 0


# --------------------------------------------------------------------------- storage

def test_stored_headers_hold_no_secrets(daemon, stack):
    acme, relay = stack["acme"], stack["relay"]
    sent_sigs = []
    ids = []
    ids.append(assert_queued(H.post_personio(daemon, "acme", H.personio_body(), acme.token)))
    ids.append(assert_queued(H.post_personio(daemon, "acme", H.personio_body(),
                                             acme.personio_tokens[1])))
    mb = H.to_bytes(H.moco_body())
    sent_sigs.append(H.moco_signature(acme.moco_key, mb))
    ids.append(assert_queued(H.post_moco(daemon, "acme", mb, acme.moco_key, "Presence",
                                         "create")))
    pb = H.to_bytes(H.personio_body())
    msg_id, ts = "msg_" + uuid.uuid4().hex, int(time.time())
    sig = H.sw_signature(relay.sw_secrets["personio"][0], msg_id, ts, pb)
    sent_sigs.append(sig[3:])
    ids.append(assert_queued(H.post_standard(daemon, "relay", pb,
                                             relay.sw_secrets["personio"][0], msg_id, ts)))
    rows = stack.pg.query("SELECT id, headers::text FROM events WHERE id = ANY(%s)",
                          ([int(i) for i in ids],))
    assert len(rows) == len(ids)
    forbidden = stack.all_secrets() + sent_sigs
    for eid, headers in rows:
        for s in forbidden:
            assert s not in headers and s.replace("/", "\\/") not in headers, \
                f"event {eid} stores a secret or signature in headers: {headers}"
    # Headers are kept for inspection (the non-secret ones at least).
    moco_headers = dict(rows)[int(ids[2])].lower()
    assert "x-moco-target" in moco_headers and "presence" in moco_headers, moco_headers
    sw_headers = dict(rows)[int(ids[3])]
    assert msg_id in sw_headers, sw_headers


# --------------------------------------------------------------------------- load and failure

@pytest.mark.slow
def test_200_concurrent_deliveries_are_all_committed(daemon, stack):
    acme = stack["acme"]
    run_tag = uuid.uuid4().hex
    n = 200
    barrier = threading.Barrier(n, timeout=60)
    results = [None] * n

    def send(i):
        body = H.personio_body()
        body["meta"]["run"] = run_tag
        body["meta"]["i"] = i
        try:
            barrier.wait()
            r = H.post_personio(daemon, "acme", body, acme.token, timeout=90)
            results[i] = (r.status, r.json().get("event_id") if r.status == 202 else r.body)
        except Exception as e:  # noqa: BLE001 - any failure is reported below
            results[i] = ("error", repr(e))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "deliveries hung"
    bad = [r for r in results if r is None or r[0] != 202]
    assert not bad, f"{len(bad)} of {n} not 202, e.g. {bad[:5]}"
    ids = {r[1] for r in results}
    assert len(ids) == n, "event ids are not unique"
    rows = stack.pg.query("SELECT id FROM events WHERE body LIKE %s", (f"%{run_tag}%",))
    assert len(rows) == n
    assert {str(r[0]) for r in rows} == ids


@pytest.mark.slow
def test_postgres_down_is_503_with_retry_after_then_recovers(private_stack, rosterd):
    st = private_stack
    acme = st["acme"]
    d = rosterd(st.conf)
    assert_queued(H.post_personio(d, "acme", H.personio_body(), acme.token))
    st.pg.stop()
    try:
        body = H.to_bytes(H.personio_body())
        r = H.post_personio(d, "acme", body, acme.token, timeout=30)
        assert r.status == 503, r
        ra = r.headers.get("retry-after")
        assert ra and (ra.strip().isdigit() or "GMT" in ra), f"Retry-After: {ra!r}"
        assert d.running()
    finally:
        st.pg.start()
    seen = []

    def redeliver():
        res = H.post_personio(d, "acme", body, acme.token, timeout=30)
        seen.append(res.status)
        return res if res.status != 503 else None

    r = H.wait_for(redeliver, 15, interval=0.5, what="202 after Postgres came back")
    eid = assert_queued(r)
    assert set(seen[:-1]) <= {503}, seen
    assert st.pg.query("SELECT count(*) FROM events WHERE id = %s", (int(eid),))[0][0] == 1
    assert_duplicate(H.post_personio(d, "acme", body, acme.token), eid)
    assert json.loads(H.rosterctl(st.conf, "events", "count", "--connection", "acme")
                      .stdout.strip()) == 2


def _stall(d, data, wait):
    """Sends data on a TLS connection, then stays silent; returns (seconds until the server
    ended the connection, what it sent) or (None, ...) when it never did within wait."""
    raw = H.socket.create_connection(("127.0.0.1", d.port), timeout=wait)
    t0 = time.monotonic()
    got = b""
    with H.tls_context(d.ca).wrap_socket(raw, server_hostname="127.0.0.1") as s:
        if data:
            s.sendall(data)
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    return time.monotonic() - t0, got
                got += chunk
        except (TimeoutError, H.socket.timeout):
            return None, got
        except OSError:
            return time.monotonic() - t0, got


@pytest.mark.slow
@pytest.mark.parametrize("what", ["half_headers", "half_body"])
def test_stalled_client_is_cut_off(rosterd, make_conf, stack, what):
    d = rosterd(make_conf(header_timeout_seconds=2))
    data = {"half_headers": b"POST /webhooks/acme/personio HTTP/1.1\r\nHost: 127.0.0.1\r\n",
            "half_body": (b"POST /webhooks/acme/personio HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Authorization: " + stack["acme"].token.encode() +
                          b"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                          b'{"company_id":')}[what]
    result = {}
    t = threading.Thread(target=lambda: result.update(r=_stall(d, data, 15)))
    t.start()
    # While one client stalls, others are served.
    assert_queued(H.post_personio(d, "acme", H.personio_body(), stack["acme"].token))
    t.join(30)
    elapsed, got = result["r"]
    assert elapsed is not None, "stalled connection still open after 15 s"
    assert 1.0 <= elapsed < 10, elapsed  # timeout is 2 s: not earlier, not much later
    assert not got.startswith(b"HTTP/1.1 2"), got
