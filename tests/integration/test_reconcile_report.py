"""
Reconciliation reports (server/report*.c, DESIGN.md §7): `rosterctl report show` as
text, JSON (the fields of §7), CSV (RFC 4180) and one self-contained HTML page that
headless Chromium renders to a PNG without a console message; the same JSON under
/admin/reports; the last-success metric on every instance.
"""
import csv
import io
import json
import os
import re
import shutil
import struct
import subprocess

import pytest

import helpers as H

DESIGN_FIELDS = {"run_id", "connection", "dry_run", "status", "started_at", "finished_at",
                 "counts", "findings"}


@pytest.fixture(scope="module")
def runs(world):
    """A few runs of acme: real ones with links, a conflict and an odd finding, and a dry run."""
    world.timesync_reset()
    world.sandbox.fixtures({"scim_users": [{
        "userName": "a.weber.old@acme.example", "active": True,
        "emails": [{"value": "anna.weber@acme.example", "type": "work", "primary": True}],
        "name": {"givenName": "Anna", "familyName": "Weber"}}]})
    world.reconcile()
    world.reconcile("--dry-run")
    world.reconcile()
    last = world.runs()[-1]["id"]
    # A finding whose text needs quoting in CSV and escaping in HTML.
    world.execute("INSERT INTO findings (connection_id, run_id, kind, email, detail, action, result)"
                  " VALUES (%s, %s, 'conflict', 'x@acme.example',"
                  " '=HYPERLINK(\"http://evil\"), <b>bold</b> & \"quoted\"\nsecond line',"
                  " NULL, 'none')", (world.connection_id, last))
    return [r["id"] for r in world.runs()]


def test_json_has_the_fields_of_design_7_and_the_admin_api_says_the_same(world, runs,
                                                                          admin_token):
    rep = world.report(runs[-1])
    assert DESIGN_FIELDS <= set(rep), set(rep)
    assert rep["run_id"] == runs[-1] and rep["connection"] == "acme"
    assert rep["dry_run"] is False and rep["status"] == "done"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rep["started_at"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rep["finished_at"])
    for f in rep["findings"]:
        assert set(f) == {"kind", "email", "detail", "action", "result"}, f
    tally = {}
    for f in rep["findings"]:
        tally[f["kind"]] = tally.get(f["kind"], 0) + 1
    assert rep["counts"] == tally and tally["conflict"] == 2 and tally["platform_only"] == 1
    assert world.report("latest")["run_id"] == runs[-1]
    assert world.report(runs[1])["dry_run"] is True

    d = world.daemon
    r = H.admin_get(d, "/admin/reports/latest?connection=acme", admin_token.token)
    assert r.status == 200 and r.json() == rep
    r = H.admin_get(d, f"/admin/reports/{runs[0]}", admin_token.token)
    assert r.status == 200 and r.json()["run_id"] == runs[0]
    r = H.admin_get(d, "/admin/reports?connection=acme&limit=2", admin_token.token)
    assert r.status == 200 and [x["run_id"] for x in r.json()] == [runs[-1], runs[-2]]
    assert H.admin_get(d, "/admin/reports/latest?connection=acme").status == 403
    assert H.admin_get(d, "/admin/reports/999999", admin_token.token).status == 404
    assert H.admin_get(d, "/admin/reports/latest?connection=nope", admin_token.token).status == 404
    assert H.admin_get(d, "/admin/reports/latest", admin_token.token).status == 400


def test_csv_is_rfc_4180_one_finding_a_row(world, runs, tmp_path):
    path = tmp_path / "report.csv"
    world.ctl("report", "show", str(runs[-1]), "--connection", "acme", "--format", "csv",
              "-o", str(path))
    text = path.read_bytes().decode()  # as written: CRLF line ends
    assert text.startswith("run_id,connection,kind,email,detail,action,result\r\n")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    rep = world.report(runs[-1])
    assert len(rows) == 1 + len(rep["findings"])
    for row, f in zip(rows[1:], rep["findings"]):
        assert row[:3] == [str(runs[-1]), "acme", f["kind"]]
        assert row[3] == (f["email"] or "") and row[5] == (f["action"] or "")
        assert row[6] == (f["result"] or "")
        # A cell a spreadsheet would run as a formula is made text; all else is verbatim.
        want = "'" + f["detail"] if f["detail"].startswith("=") else f["detail"]
        assert row[4] == want
    odd = [r for r in rows if r[3] == "x@acme.example"]
    assert odd and odd[0][4].startswith("'=HYPERLINK") and "\nsecond line" in odd[0][4]


def test_text_report_reads_for_a_finance_admin(world, runs):
    text = world.report(runs[-1], "text")
    assert text.startswith(f"Reconciliation report of acme, run {runs[-1]}\n")
    assert "Status: done." in text and "Personio listed 30 employees" in text
    assert "In short: 2 conflicts to resolve, 1 platform account with no employee in Personio" in text
    assert "Needs a person (3)" in text and "anna.weber@acme.example" in text
    assert "it-admin@acme.example" in text
    first = world.report(runs[0], "text")
    # 2 new hires, then 27 links (not Anna: conflict); the hires come first, as what an
    # admin acts on.
    hires = first.split("New hires: invited or waiting for an invitation (29)\n")[1]
    items = [line for line in hires.splitlines() if line.startswith("  - ")][:12]
    assert [i.split(":")[0] for i in items[:2]] == ["  - new hire"] * 2, items
    assert {i.split(":")[1].strip() for i in items[:2]} == {"nina.schulze@acme.example",
                                                            "tom.maier@acme.example"}
    # Time: 6 absences mirrored first, then 256 attendances, then 28 MOCO links.
    times = first.split("Time tracking (290)\n")[1]
    items = [line for line in times.splitlines() if line.startswith("  - ")][:12]
    assert [i.split(":")[0] for i in items] == (["  - absence mirrored to MOCO"] * 6 +
                                                ["  - attendance pushed to Personio"] * 6), items
    assert "... and 17 more" in first and "... and 278 more" in first  # cut; the CSV has all
    dry = world.report(runs[1], "text")
    assert "This was a dry run: nothing was changed anywhere." in dry
    for line in first.splitlines():
        assert len(line) <= 96, line


def _png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", head[16:24])


def _chromium(html, png, tmp_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium is not installed (tests/run.sh installs Debian's chromium)"
    res = H.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1200,2200",
                 f"--screenshot={png}", "--enable-logging=stderr", "--v=0",
                 f"file://{html}"], timeout=90, check=False)
    console = [line for line in res.stderr.splitlines() if ":CONSOLE" in line]
    return res, console


def test_html_is_one_self_contained_page_that_renders_in_chromium(world, runs, tmp_path):
    page = tmp_path / "report.html"
    world.ctl("report", "show", str(runs[-1]), "--connection", "acme", "--format", "html",
              "-o", str(page))
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    # Self-contained: no script, no link, nothing fetched; a CSP forbids it anyway.
    assert "<script" not in html and "<link" not in html
    assert re.findall(r"(?:src|href)\s*=", html) == []
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &quot;quoted&quot;" in html and "<b>bold</b>" not in html
    # The chart: one bar group per run, the current run marked.
    svg = html[html.index("<svg"):html.index("</svg>")]
    for rid in runs:
        assert f"#{rid} " in svg
    assert "stroke-dasharray" in svg and "Needs a person" in svg
    assert "Finding counts, last 3 runs" in html
    assert f"rosterctl report show RUN --format csv" in html
    assert oct(page.stat().st_mode & 0o777) == "0o600"

    png = tmp_path / "report.png"
    res, console = _chromium(page, png, tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    assert console == [], console
    w, h = _png_size(png)
    assert (w, h) == (1200, 2200) and png.stat().st_size > 20000
    shutil.copy(png, "/tmp/rosterd-report-test.png")

    # The check can fail: a page that breaks the same rules shows up on the console.
    bad = tmp_path / "bad.html"
    bad.write_text(html.replace("</main>", "<img src=\"https://example.invalid/x.png\"></main>"))
    _, console = _chromium(bad, tmp_path / "bad.png", tmp_path)
    assert any("violates the following Content Security Policy" in c for c in console), console


def test_report_show_errors(world, runs):
    res = world.ctl("report", "show", "--connection", "acme", "--format", "pdf", check=False)
    assert res.returncode == 2 and "--format: expected text, json, csv or html" in res.stderr
    res = world.ctl("report", "show", "424242", "--connection", "acme", check=False)
    assert res.returncode == 1 and "run 424242 of connection \"acme\" not found" in res.stderr
    res = world.ctl("report", "show", "latest", check=False)
    assert res.returncode == 2 and "--connection is required" in res.stderr
    res = world.ctl("report", "show", "--connection", "nope", check=False)
    assert res.returncode == 1 and 'connection "nope" not found' in res.stderr
    # -o onto something that is not a regular file writes through and never replaces it.
    res = world.ctl("report", "show", "--connection", "acme", "--format", "json",
                    "-o", "/dev/stdout")
    assert json.loads(res.stdout)["run_id"] == runs[-1]
    world.ctl("report", "show", "--connection", "acme", "-o", "/dev/null")
    import stat
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def _gauge(daemon):
    r = H.admin_get(daemon, "/metrics")
    assert r.status == 200
    m = re.search(r'^rosterd_reconcile_last_success_timestamp_seconds\{connection="acme"\} (\d+)$',
                  r.body.decode(), re.M)
    return int(m.group(1)) if m else None


def test_last_success_metric_is_shown_by_every_instance(world, runs, make_conf, rosterd, tls):
    want = world.one("SELECT extract(epoch FROM max(finished_at))::bigint FROM runs"
                     " WHERE connection_id = %s AND status = 'done' AND NOT dry_run",
                     (world.connection_id,))
    assert _gauge(world.daemon) == want
    # Another instance on the same database, which never ran a reconciliation itself.
    conf = make_conf(None, database_url=world.db_url, ca_file=str(tls.ca), workers=1)
    other = rosterd(conf)
    assert _gauge(other) == want
    world.reconcile("--dry-run")  # dry runs are not successes of the nightly sweep
    assert _gauge(other) == want
    out = subprocess.run(["promtool", "check", "metrics"], input=H.admin_get(other, "/metrics").body,
                         capture_output=True, timeout=30) if shutil.which("promtool") else None
    assert out is None or out.returncode == 0, out.stderr if out else ""
