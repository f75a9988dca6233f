#!/usr/bin/env bash
# tests/bench/burst.sh — the queue after a real burst (issue 14), one command.
#
#   ./tests/bench/burst.sh [--runs N] [--workers 4,16] [--jobs N] [other burst.py options]
#
# Builds build-bench/ (RelWithDebInfo, no sanitizers; --build-dir DIR for another
# tree), then runs burst.py: its own Postgres on 127.0.0.1, per run a fresh database,
# 100,000 Personio deliveries sent by wrk through rosterd --role ingest, no manual
# ANALYZE or VACUUM, then one rosterd --role worker at workers 4 and 16 drains them
# while /metrics is read every 0.5 s. Prints each run's per-second timeline and the
# medians against the targets; results/burst-<timestamp>.json. Default 3 runs per
# worker count: about 6 minutes on 2 cores. Needs wrk, postgresql 15, python3-psycopg2.
# Exit status: 0 every target met, 1 some missed, 2 the harness failed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build_dir="$root/build-bench"
py=/usr/bin/python3
[[ -x $py ]] || py=python3
pass=()
while (($#)); do
    case "$1" in
        -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}"; "$py" "$here/burst.py" --help; exit 0 ;;
        --build-dir) build_dir="$2"; pass+=("$1" "$2"); shift 2; continue ;;
        --build-dir=*) build_dir="${1#*=}"; pass+=("$1") ;;
        *) pass+=("$1") ;;
    esac
    shift
done
for t in wrk cmake; do
    command -v "$t" >/dev/null || { echo "burst: $t missing (apt-get install $t)" >&2; exit 2; }
done
[[ -x /usr/lib/postgresql/15/bin/postgres ]] ||
    { echo "burst: postgresql 15 missing (apt-get install postgresql)" >&2; exit 2; }
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRD_SANITIZE=OFF \
      -DRD_WERROR=ON >/dev/null
cmake --build "$build_dir" -j2 --target rosterd rosterctl >/dev/null
exec "$py" "$here/burst.py" --build-dir "$build_dir" "${pass[@]}"
