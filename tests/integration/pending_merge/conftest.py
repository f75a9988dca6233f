"""
Tests that need the lifecycle (issue 9) and time-sync (issue 10) capabilities, which
are on other branches until the merge. pytest does not collect this directory unless
RD_RUN_PENDING_MERGE=1 is set; after the merge run it, then move the tests next to
tests/integration/test_reconcile.py and delete this file:

    RD_RUN_PENDING_MERGE=1 ROSTERD_BUILD_DIR=$PWD/build \
        python3 -m pytest -q tests/integration/pending_merge
"""
import os

if os.environ.get("RD_RUN_PENDING_MERGE") != "1":
    collect_ignore_glob = ["test_*.py"]
