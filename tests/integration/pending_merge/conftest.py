"""
Tests that need another branch's code and are enabled by the lead at merge time.

test_approver_absence_webhook.py needs the personio.absence handler (timesync's
handlers/absence.c), which calls rd_approver_converge (lifecycle's
handlers/approver.c). Until both are on one branch it would fail, and a skipped test
must not count as passing, so it is not collected at all: at merge, delete this
conftest.py (or move the file up to tests/integration/).
"""
collect_ignore = ["test_approver_absence_webhook.py"]
