"""
From webhook to finished job through the real rosterd (role all): the intake's
commit wakes the local workers, a handler runs within seconds, failures retry or
go dead with the upstream's message, and an operator replays a dead event over
the admin API with its attempt log kept (DESIGN.md sections 5, 7 and 9).
"""
import http.client
import json
import time
import uuid

import helpers as H


def envelope(event_name, payload):
    return {"company_id": "123", "event_name": event_name,
            "occurred_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "payload": payload, "meta": {"delivery": uuid.uuid4().hex}}


def deliver(daemon, stack, event_name, payload):
    acme = stack["acme"]
    r = H.post_personio(daemon, "acme", envelope(event_name, payload), acme.token)
    assert r.status == 202, r.body
    return int(json.loads(r.body)["event_id"])


def show(rosterctl, event_id):
    return json.loads(rosterctl("events", "show", str(event_id), "--json").stdout)


def wait_status(rosterctl, event_id, status, timeout=15):
    return H.wait_for(lambda: (lambda e: e if e["status"] == status else None)(
        show(rosterctl, event_id)), timeout, what=f"event {event_id} {status}")


def admin(daemon, token, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", daemon.admin_port, timeout=15)
    try:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        conn.request(method, path, body=json.dumps(body) if body is not None else None,
                     headers=headers)
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        conn.close()


def test_handler_starts_within_five_seconds_of_the_202(daemon, stack, rosterctl):
    t0 = time.monotonic()
    event_id = deliver(daemon, stack, "test.ping", {"id": uuid.uuid4().hex})
    ev = wait_status(rosterctl, event_id, "done", timeout=10)
    assert time.monotonic() - t0 < 5.0
    assert [a["outcome"] for a in ev["attempt_log"]] == ["done"]


def test_event_type_without_handler_is_done_with_a_note(daemon, stack, rosterctl):
    event_id = deliver(daemon, stack, "document.signed", {"id": uuid.uuid4().hex})
    ev = wait_status(rosterctl, event_id, "done")
    assert ev["note"] == "no handler"
    assert ev["last_error"] is None


def test_retryable_failure_retries_then_succeeds(daemon, stack, rosterctl):
    script = {"fail": "retry", "fail_times": 1}
    event_id = deliver(daemon, stack, "test.script",
                       {"id": uuid.uuid4().hex, "script": script})
    # retry_base_seconds is 2: the second attempt comes within a few seconds.
    ev = wait_status(rosterctl, event_id, "done", timeout=20)
    assert [a["outcome"] for a in ev["attempt_log"]] == ["failed", "done"]
    assert "scripted retry failure on attempt 1" in ev["attempt_log"][0]["error"]


def test_permanent_upstream_error_is_dead_then_replayed_over_admin(daemon, stack, rosterctl,
                                                                   admin_token):
    script = {"http_status": 404, "fail_times": 1}
    event_id = deliver(daemon, stack, "test.script", {"id": uuid.uuid4().hex, "script": script})
    ev = wait_status(rosterctl, event_id, "dead")
    assert ev["attempts"] == 1
    assert "404" in ev["last_error"]

    status, listed = admin(daemon, admin_token.token, "GET",
                           "/admin/events?status=dead&connection=acme&limit=10000")
    assert status == 200
    assert event_id in [e["id"] for e in listed]
    status, one = admin(daemon, admin_token.token, "GET", f"/admin/events/{event_id}")
    assert status == 200 and one["status"] == "dead" and one["attempt_log"][0]["outcome"] == "dead"

    status, dry = admin(daemon, admin_token.token, "POST", "/admin/events/replay",
                        {"ids": [event_id], "dry_run": True})
    assert status == 200 and dry["dry_run"] is True and dry["events"] == [event_id]
    time.sleep(1)
    assert show(rosterctl, event_id)["status"] == "dead"

    status, done = admin(daemon, admin_token.token, "POST", "/admin/events/replay",
                         {"ids": [event_id]})
    assert status == 200 and done["count"] == 1
    ev = wait_status(rosterctl, event_id, "done")
    assert [a["outcome"] for a in ev["attempt_log"]] == ["dead", "replayed", "done"]


def test_admin_api_rejects_bad_filters_and_unknown_things(daemon, admin_token):
    tok = admin_token.token
    assert admin(daemon, tok, "GET", "/admin/events?status=zombie")[0] == 400
    assert admin(daemon, tok, "GET", "/admin/events?connection=nope")[0] == 404
    assert admin(daemon, tok, "GET", "/admin/events/999999999")[0] == 404
    assert admin(daemon, tok, "POST", "/admin/events/replay", {"status": "done"})[0] == 400
    assert admin(daemon, tok, "GET", "/admin/events/replay")[0] == 405
    status, count = admin(daemon, tok, "GET", "/admin/events/count?connection=acme")
    assert status == 200 and count["count"] >= 1
    status, jobs = admin(daemon, tok, "GET", "/admin/jobs?state=scheduled")
    assert status == 200 and isinstance(jobs, list)
    # the scheduler creates each connection's periodic jobs: they show as scheduled
    assert {"sweep.attendance", "sweep.absence"} <= {j["kind"] for j in jobs}, jobs


def test_metrics_count_jobs_by_state(daemon):
    r = H.admin_get(daemon, "/metrics")
    samples = H.parse_metrics(r.body.decode())
    states = {lb["state"] for n, lb, v in samples if n == "rosterd_jobs"}
    assert states == {"pending", "scheduled", "running", "failed", "dead"}
    assert any(n == "rosterd_job_seconds_count" and v > 0 for n, lb, v in samples)


def test_two_rosterd_instances_work_each_event_exactly_once(private_stack, make_conf, rosterd):
    """Deliveries spread over two daemons on one Postgres: every event is worked once,
    by whichever instance claimed it, and both instances take part."""
    import concurrent.futures as cf
    st = private_stack
    daemons = [rosterd(make_conf(st.pg, workers=4)) for _ in range(2)]
    acme = st["acme"]

    def one(i):
        d = daemons[i % 2]
        body = envelope("test.script", {"id": uuid.uuid4().hex, "script": {"sleep_ms": 5}})
        r = H.post_personio(d, "acme", body, acme.token)
        assert r.status == 202, r.body
        return int(json.loads(r.body)["event_id"])

    with cf.ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(one, range(400)))
    assert len(set(ids)) == 400

    def all_done():
        rows = st.pg.query("SELECT count(*) FROM events WHERE id = ANY(%s) AND status = 'done'",
                           (ids,))
        return rows[0][0] == 400
    H.wait_for(all_done, 60, what="400 events done")
    rows = st.pg.query("SELECT event_id, count(*), min(outcome), max(outcome) FROM event_attempts"
                       " WHERE event_id = ANY(%s) GROUP BY event_id", (ids,))
    assert len(rows) == 400
    assert all(n == 1 and lo == hi == "done" for _, n, lo, hi in rows), rows[:5]
    instances = st.pg.query("SELECT DISTINCT instance FROM event_attempts WHERE event_id = ANY(%s)",
                            (ids,))
    assert len(instances) == 2, instances
