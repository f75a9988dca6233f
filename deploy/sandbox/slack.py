"""Fake Slack incoming webhooks (spec §6, §8.4). The hook path is the credential;
accepted messages land in an inbox readable through the control API.
"""
import json
import urllib.parse

from .util import iso_utc, tresp

HTML = "text/html"


def handle(st, req):
    m = req.path.strip("/").split("/")
    if len(m) != 4 or m[0] != "services" or "/".join(m[1:]) not in st.slack_hooks:
        return tresp(404, "no_service", ctype=HTML)
    hook = "/".join(m[1:])
    if req.method != "POST":
        return tresp(405, "invalid_method", ctype=HTML)
    mode = str(st.config.get("slack_mode", "ok"))
    if mode == "429":
        return tresp(429, "rate_limited", [("Retry-After", "1")], ctype=HTML)
    if mode == "410":
        return tresp(410, "channel_is_archived", ctype=HTML)
    raw = req.body
    try:
        if req.is_form():
            raw = urllib.parse.parse_qs(raw.decode("utf-8")).get("payload", [""])[0].encode()
        msg = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return tresp(400, "invalid_payload", ctype=HTML)
    if not isinstance(msg, dict):
        return tresp(400, "invalid_payload", ctype=HTML)
    text, blocks = msg.get("text"), msg.get("blocks")
    if blocks is not None and not isinstance(blocks, list):
        return tresp(400, "invalid_blocks", ctype=HTML)
    if not (isinstance(text, str) and text.strip()) and not blocks:
        return tresp(400, "no_text", ctype=HTML)
    st.slack_inbox.append({"id": len(st.slack_inbox) + 1, "hook": hook, "received_at": iso_utc(),
                           "text": text, "blocks": blocks, "message": msg})
    return tresp(200, "ok", ctype=HTML)
