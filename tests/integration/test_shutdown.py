"""
Shutdown while a handler waits on an upstream (DESIGN.md §2, README "Running"):
SIGTERM must not wait out a job's upstream retries and timeouts. The transfer in
progress is aborted, no retry is started, the job is handed back as failed (it
is retried later, nothing is lost) and rosterd exits 0 within seconds.
"""
import signal
import time

import helpers as H


def test_sigterm_aborts_upstream_waits_and_hands_the_job_back(world):
    world.reset()
    # Personio hangs on every employee read for 25 s (longer than the stop timeout).
    world.sandbox.fault(system="personio", method="GET", path_prefix="/v1/company/employees",
                        status=None, delay_ms=25000, times=None)
    ev = world.personio("employment.updated", 1007)
    # (the claim marks the job, not the event row: events show "running" through the job)
    H.wait_for(lambda: world.one("SELECT count(*) FROM jobs j JOIN job_events je ON je.job_id = j.id"
                                 " WHERE je.event_id = %s AND j.state = 'running'", (ev,)) == 1,
               20, what="the job to start")
    time.sleep(0.5)  # inside the hanging read
    t0 = time.monotonic()
    rc = world.daemon.stop(sig=signal.SIGTERM, expect=0, timeout=10)
    took = time.monotonic() - t0
    assert rc == 0 and took < 5, f"rosterd took {took:.1f}s to stop"
    row = world.event(ev)
    assert row["status"] == "failed", row
    assert "rosterd is stopping" in (row["last_error"] or "") or \
        "aborted" in (row["last_error"] or "").lower(), row
    # Started again (the fault gone), the same event finishes: nothing was lost.
    world.sandbox.call("DELETE", "/faults")
    world.daemon.start()
    world.execute("UPDATE jobs SET run_at = now() WHERE connection_id = %s AND state = 'failed'",
                  (world.connection_id,))
    assert world.wait_event(ev, timeout=30)["status"] == "done"


def test_sigterm_aborts_a_reconciliation_run_waiting_on_an_upstream(world):
    """The same for the nightly run: its context's HTTP clients (the run's own, the
    preload's second one, the writers') are aborted by the stop flag too, so a run
    waiting on a hanging Personio page does not hold the shutdown; the run's row says
    it was interrupted and the next run completes."""
    world.timesync_reset()
    world.sandbox.fault(system="personio", method="GET", path_prefix="/v1/company/employees",
                        status=None, delay_ms=25000, times=None)
    world.execute("INSERT INTO jobs (kind, key, connection_id) VALUES ('reconcile', %s, %s)",
                  (f"{world.connection_id}:test:shutdown", world.connection_id))
    H.wait_for(lambda: world.one("SELECT count(*) FROM runs WHERE connection_id = %s"
                                 " AND status = 'running'", (world.connection_id,)) == 1,
               20, what="the run to start")
    time.sleep(1.0)  # inside the hanging employees read
    t0 = time.monotonic()
    rc = world.daemon.stop(sig=signal.SIGTERM, expect=0, timeout=15)
    took = time.monotonic() - t0
    assert rc == 0 and took < 5, f"rosterd took {took:.1f}s to stop"
    [run] = world.runs()
    assert run["status"] == "failed", run
    assert "reading Personio employees" in run["error"] and "rosterd is stopping" in run["error"], run
    # Started again (the fault gone), the handed-back job runs the night again: done.
    world.sandbox.call("DELETE", "/faults")
    world.daemon.start()
    world.execute("UPDATE jobs SET run_at = now() WHERE connection_id = %s AND kind = 'reconcile'"
                  " AND state = 'failed'", (world.connection_id,))
    H.wait_for(lambda: [r for r in world.runs() if r["status"] == "done"], 60,
               what="the handed-back run to complete")
    assert [r["status"] for r in world.runs()] == ["failed", "done"]
