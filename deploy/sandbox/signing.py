"""Webhook signing helpers (spec §2.5, §3.5, §4), standard library only and free of
other sandbox imports so tests can `import signing` with deploy/sandbox on sys.path.

    personio_headers(token)                      -> headers for a Personio delivery
    moco_headers(key, target, event, body, ...)  -> headers incl. X-Moco-Signature
    standard_headers(secret, msg_id, ts, body)   -> webhook-id/-timestamp/-signature
"""
import base64
import hashlib
import hmac
import time

WHSEC_PREFIX = "whsec_"


def _bytes(body):
    return body if isinstance(body, bytes) else str(body).encode("utf-8")


def personio_headers(token):
    """Personio sends the configured token verbatim in Authorization (no prefix added)."""
    return {"Content-Type": "application/json", "Authorization": token}


def moco_signature(key, body):
    """Lowercase hex HMAC-SHA256 of the raw body; the key is used as its ASCII bytes."""
    return hmac.new(key.encode("ascii"), _bytes(body), hashlib.sha256).hexdigest()


def moco_headers(key, target, event, body, user_id="1", account_url="acme.mocoapp.com",
                 timestamp_ms=None):
    return {
        "Content-Type": "application/json",
        "X-Moco-Target": target,
        "X-Moco-Event": event,
        "X-Moco-Timestamp": str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms),
        "X-Moco-User-Id": str(user_id),
        "X-Moco-Account-Url": account_url,
        "X-Moco-Signature": moco_signature(key, body),
    }


def standard_key(secret):
    """'whsec_<base64>' or bare base64 -> HMAC key bytes (raises ValueError if undecodable)."""
    s = secret[len(WHSEC_PREFIX):] if secret.startswith(WHSEC_PREFIX) else secret
    try:
        return base64.b64decode(s, validate=True)
    except (ValueError, TypeError) as e:
        raise ValueError("secret is not valid base64") from e


def standard_signature(secret, msg_id, ts, body):
    """'v1,<base64 HMAC-SHA256 of "{id}.{ts}.{body}">'."""
    signed = b"%s.%s.%s" % (str(msg_id).encode(), str(ts).encode(), _bytes(body))
    mac = hmac.new(standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def standard_headers(secret, msg_id, ts, body):
    return {
        "Content-Type": "application/json",
        "webhook-id": str(msg_id),
        "webhook-timestamp": str(ts),
        "webhook-signature": standard_signature(secret, msg_id, ts, body),
    }


def verify_moco(keys, body, signature):
    """True when signature matches the body under any key (constant-time)."""
    if not signature:
        return False
    return any(hmac.compare_digest(moco_signature(k, body), signature) for k in keys if k)


def verify_standard(secrets, headers, body, now=None, tolerance=300):
    """Returns 'ok', 'missing_header', 'bad_timestamp', 'too_old', 'too_new' or 'no_match'."""
    low = {k.lower(): v for k, v in headers.items()}
    msg_id, ts, sigs = (low.get("webhook-id"), low.get("webhook-timestamp"),
                        low.get("webhook-signature"))
    if not msg_id or not ts or not sigs:
        return "missing_header"
    try:
        tsi = int(ts)
    except ValueError:
        return "bad_timestamp"
    now = int(time.time()) if now is None else now
    if now - tsi > tolerance:
        return "too_old"
    if tsi - now > tolerance:
        return "too_new"
    for secret in secrets:
        try:
            want = standard_signature(secret, msg_id, ts, body)
        except ValueError:
            continue
        for entry in sigs.split(" "):
            if entry.startswith("v1,") and hmac.compare_digest(entry, want):
                return "ok"
    return "no_match"
