"""
The admin listener (DESIGN.md section 6) and start-up failures: health,
readiness with Postgres up and down, Prometheus metrics checked by promtool,
/admin/* refusing callers without the token, and the messages rosterd stops with.
"""
import http.client
import re
import shutil
import subprocess
import uuid

import pytest

import helpers as H


def metric_sum(samples, name, **labels):
    return sum(v for n, lb, v in samples
               if n == name and all(lb.get(k) == val for k, val in labels.items()))


def test_healthz_is_200(daemon):
    assert H.admin_get(daemon, "/healthz").status == 200


def test_readyz_is_200_with_postgres_up(daemon):
    r = H.admin_get(daemon, "/readyz")
    assert r.status == 200, r


def test_metrics_count_deliveries_by_outcome_and_histogram(daemon, stack):
    acme = stack["acme"]
    before = H.parse_metrics(H.admin_get(daemon, "/metrics").body.decode())
    for _ in range(3):
        assert H.post_personio(daemon, "acme", H.personio_body(), acme.token).status == 202
    assert H.post_personio(daemon, "acme", H.personio_body(), "wrong").status == 401
    r = H.admin_get(daemon, "/metrics")
    assert r.status == 200
    assert r.headers.get("content-type", "").startswith("text/plain"), r.headers
    text = r.body.decode()
    after = H.parse_metrics(text)

    series = [(lb, v) for n, lb, v in after if n == "rosterd_webhooks_total"]
    assert series, "no rosterd_webhooks_total samples"
    for lb, _ in series:
        assert {"connection", "source", "outcome"} <= set(lb), lb
    delta_by_outcome = {}
    for lb, v in series:
        if lb.get("connection") == "acme" and lb.get("source") == "personio":
            prev = metric_sum(before, "rosterd_webhooks_total", **lb)
            delta_by_outcome[lb["outcome"]] = v - prev
    assert sum(delta_by_outcome.values()) >= 4, delta_by_outcome
    assert len([o for o, dv in delta_by_outcome.items() if dv > 0]) >= 2, \
        f"queued and unauthorized deliveries share one outcome: {delta_by_outcome}"

    assert re.search(r"^# TYPE rosterd_ingest_seconds histogram$", text, re.M), text[:2000]
    inf = [v for n, lb, v in after if n == "rosterd_ingest_seconds_bucket" and lb.get("le") == "+Inf"]
    assert inf, "rosterd_ingest_seconds has no +Inf bucket"
    count = sum(v for n, lb, v in after if n == "rosterd_ingest_seconds_count")
    count_before = sum(v for n, lb, v in before if n == "rosterd_ingest_seconds_count")
    assert count - count_before >= 3
    assert sum(inf) == count


def test_metrics_pass_promtool_check(daemon, stack):
    assert H.post_personio(daemon, "acme", H.personio_body(), stack["acme"].token).status == 202
    text = H.admin_get(daemon, "/metrics").body
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("!!! promtool is not installed (package prometheus): metrics lint NOT CHECKED")
    res = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                         timeout=60)
    assert res.returncode == 0, (res.stdout + res.stderr).decode() + "\n" + text.decode()[:3000]


def test_metrics_have_every_family_of_the_design(daemon):
    text = H.admin_get(daemon, "/metrics").body.decode()
    for name, kind in [("rosterd_webhooks_total", "counter"),
                       ("rosterd_ingest_seconds", "histogram"),
                       ("rosterd_jobs", "gauge"),
                       ("rosterd_job_seconds", "histogram"),
                       ("rosterd_upstream_requests_total", "counter"),
                       ("rosterd_reconcile_last_success_timestamp_seconds", "gauge")]:
        assert re.search(rf"^# TYPE {name} {kind}$", text, re.M), f"no `# TYPE {name} {kind}`"


@pytest.mark.parametrize("auth", [None, "Bearer wrong-token", "Bearer ", "Basic Zm9vOmJhcg=="])
@pytest.mark.parametrize("path", ["/admin/anything", "/admin/events", "/admin/"])
def test_admin_without_valid_token_is_403(daemon, auth, path):
    conn = http.client.HTTPConnection("127.0.0.1", daemon.admin_port, timeout=10)
    try:
        conn.request("GET", path, headers={"Authorization": auth} if auth else {})
        r = conn.getresponse()
        r.read()
        assert r.status == 403, (path, auth, r.status)
    finally:
        conn.close()


def test_admin_token_prefix_is_403(daemon, admin_token):
    assert H.admin_get(daemon, "/admin/anything", token=admin_token.token[:-1]).status == 403
    assert H.admin_get(daemon, "/admin/anything", token=admin_token.token + "x").status == 403


def test_admin_with_valid_token_is_not_forbidden(daemon, admin_token):
    r = H.admin_get(daemon, "/admin/no-such-endpoint", token=admin_token.token)
    assert r.status not in (401, 403) and r.status < 500, r


def test_admin_without_token_file_is_always_403(rosterd, make_conf, admin_token):
    d = rosterd(make_conf(admin_token_file=None))
    assert H.admin_get(d, "/admin/anything", token=admin_token.token).status == 403
    assert H.admin_get(d, "/admin/anything").status == 403
    assert H.admin_get(d, "/healthz").status == 200


@pytest.mark.slow
def test_readyz_is_503_while_postgres_is_down(private_stack, rosterd):
    st = private_stack
    d = rosterd(st.conf)
    assert H.admin_get(d, "/readyz").status == 200
    st.pg.stop()
    try:
        H.wait_for(lambda: H.admin_get(d, "/readyz", timeout=15).status == 503, 10,
                   what="/readyz 503 with Postgres stopped")
        assert H.admin_get(d, "/healthz").status == 200
    finally:
        st.pg.start()
    H.wait_for(lambda: H.admin_get(d, "/readyz", timeout=15).status == 200, 15,
               what="/readyz 200 after Postgres came back")


# --------------------------------------------------------------------------- start-up failures

def test_missing_tls_cert_stops_startup_naming_the_file(make_conf, tmp_path, stack):
    missing = tmp_path / "nowhere" / "server.pem"
    res = H.run_expect_exit(make_conf(tls_cert=missing))
    assert res.returncode == 1, (res.returncode, res.stderr)
    assert str(missing) in res.stderr, res.stderr


def test_mismatched_key_and_cert_stops_startup(make_conf, tls, tmp_path, stack):
    other_cert, other_key = tls.issue(tmp_path / "other.pem", tmp_path / "other.key", serial=77)
    res = H.run_expect_exit(make_conf(tls_cert=tls.cert, tls_key=other_key))
    assert res.returncode == 1, (res.returncode, res.stderr)
    assert re.search(r"mismatch|do(es)? not match", res.stderr, re.I), res.stderr


def test_unknown_config_key_stops_startup_with_file_and_line(make_conf, stack):
    conf = make_conf(extra_lines=["# a comment", "lisen = 127.0.0.1:1"])
    line = conf.lines.index("lisen = 127.0.0.1:1") + 1
    res = H.run_expect_exit(conf)
    assert res.returncode == 1, (res.returncode, res.stderr)
    m = re.search(r"rosterd\.conf:(\d+):", res.stderr)
    assert m, res.stderr
    assert int(m.group(1)) == line, res.stderr
    assert "lisen" in res.stderr


def test_bad_value_stops_startup_naming_key_and_line(make_conf, stack):
    conf = make_conf(workers="many")
    line = conf.lines.index("workers = many") + 1
    res = H.run_expect_exit(conf)
    assert res.returncode == 1, (res.returncode, res.stderr)
    assert re.search(rf"rosterd\.conf:{line}:", res.stderr), res.stderr
    assert "workers" in res.stderr


def test_unmigrated_database_stops_startup_pointing_at_migrate(make_conf, pg, stack):
    name = "fresh_" + uuid.uuid4().hex[:10]
    pg.create_db(name)
    res = H.run_expect_exit(make_conf(database_url=pg.url_for(name)))
    assert res.returncode == 1, (res.returncode, res.stderr)
    assert "rosterctl migrate" in res.stderr, res.stderr
