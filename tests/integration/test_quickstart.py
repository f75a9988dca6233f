"""
./deploy/quickstart.sh in its non-interactive mode, as a newcomer's first
command: it must show the whole flow (signed deliveries stored, a redelivery
answered as a duplicate, an unsigned one refused, every event worked) and then
stop everything it started.
"""
import os
import subprocess

import helpers as H

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_quickstart_shows_the_flow_and_cleans_up():
    p = subprocess.run([os.path.join(ROOT, "deploy", "quickstart.sh"), "--ci"],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600,
                       env=H.child_env({"CI": "true"}))
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-4000:]
    assert out.count('"status":"queued"') == 3, out
    assert '"event_id":"3","status":"duplicate"' in out
    assert '{"error":"unauthorized"}' in out
    for event in ("person.created", "employment.updated", "Presence.create"):
        assert f"({event}," in out and "done after 1 run(s)" in out, out
    # the people lifecycle: Tom's new-hire alert and Tim's upcoming deactivation
    assert "New hire: Tom Maier (tom.maier@acme.example) starts on" in out
    assert "rosterctl hires invite tom.maier@acme.example --connection acme" in out
    assert "tom.maier@acme.example  Tom Maier  Backend  Engineering" in out
    assert "tim.lange@acme.example  Tim Lange" in out and "Europe/Berlin  scheduled" in out
    assert "stopped everything it started" in out
    # nothing it started is left running
    left = subprocess.run(["pgrep", "-f", os.path.join(ROOT, ".rosterd", "rosterd.conf")],
                          capture_output=True, text=True)
    assert left.stdout.strip() == "", left.stdout
