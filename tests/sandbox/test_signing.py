"""signing.py against the test vectors of upstream-apis.md §3.5 and §4."""
import signing

MOCO_KEY = "1d608b9d72219b90ff2393a1d3ee0ac0"
SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TS = 1614265330
SW_BODY = '{"test": 2432232314}'
SW_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_moco_vector():
    body = '{"id":111,"description":"a description"}'
    want = "bf027a86207ef1ca1cb76f5a536b41a14287ab1a0fd5b33bfe86924bc2f48fd1"
    assert signing.moco_signature(MOCO_KEY, body) == want
    assert signing.moco_signature(MOCO_KEY, body.encode()) == want
    h = signing.moco_headers(MOCO_KEY, "Presence", "create", body, user_id=7,
                             account_url="acme.mocoapp.com", timestamp_ms=1527170410463)
    assert h["X-Moco-Signature"] == want
    assert h["X-Moco-Target"] == "Presence" and h["X-Moco-Event"] == "create"
    assert h["X-Moco-Timestamp"] == "1527170410463" and h["X-Moco-User-Id"] == "7"
    assert h["X-Moco-Account-Url"] == "acme.mocoapp.com"


def test_moco_legacy_vector_and_negatives():
    legacy = '{id: 111, description: "a description"}'
    assert signing.moco_signature(MOCO_KEY, legacy) == \
        "09f9ebc0adeb597cb7cb37fd72b20be0caeca6bd9fb67416b663606bd7f89183"
    body = '{"id":111,"description":"a description"}'
    sig = signing.moco_signature(MOCO_KEY, body)
    assert signing.verify_moco([MOCO_KEY], body, sig)
    assert signing.verify_moco(["other", MOCO_KEY], body, sig)
    assert not signing.verify_moco([MOCO_KEY], body + " ", sig)
    assert not signing.verify_moco(["0" * 32], body, sig)
    assert not signing.verify_moco([MOCO_KEY], body, "")


def test_standard_vector():
    assert signing.standard_signature(SW_SECRET, SW_ID, SW_TS, SW_BODY) == SW_SIG
    h = signing.standard_headers(SW_SECRET, SW_ID, SW_TS, SW_BODY.encode())
    assert h == {"Content-Type": "application/json", "webhook-id": SW_ID,
                 "webhook-timestamp": str(SW_TS), "webhook-signature": SW_SIG}
    # a bare base64 secret (no whsec_ prefix) is the same key
    assert signing.standard_signature(SW_SECRET[6:], SW_ID, SW_TS, SW_BODY) == SW_SIG


def test_standard_negative_cases():
    h = signing.standard_headers(SW_SECRET, SW_ID, SW_TS, SW_BODY)
    ok = lambda hh, body=SW_BODY, secrets=(SW_SECRET,), now=SW_TS: \
        signing.verify_standard(list(secrets), hh, body, now=now)
    assert ok(h) == "ok"
    assert ok(h, body='{"test": 2432232315}') == "no_match"
    assert ok(h, secrets=("whsec_" + "A" * 32,)) == "no_match"
    assert ok(h, now=SW_TS + 301) == "too_old"
    assert ok(h, now=SW_TS - 301) == "too_new"
    assert ok(h, now=SW_TS + 300) == "ok"
    for missing in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        assert ok({k: v for k, v in h.items() if k != missing}) == "missing_header"
    two = dict(h, **{"webhook-signature": "v1,AAAA" + SW_SIG[7:] + " " + SW_SIG})
    assert ok(two) == "ok"
    v1a = dict(h, **{"webhook-signature": "v1a," + SW_SIG[3:]})
    assert ok(v1a) == "no_match"
    assert ok(dict(h, **{"webhook-timestamp": "abc"})) == "bad_timestamp"


def test_personio_headers_verbatim():
    assert signing.personio_headers("Bearer s3cret")["Authorization"] == "Bearer s3cret"
    assert signing.personio_headers("s3cret")["Authorization"] == "s3cret"
