#!/usr/bin/env bash
# tests/bench/reconcile.sh — the reconciliation benchmark of issue 11, one command.
#
#   ./tests/bench/reconcile.sh [--employees 10000] [--presence-days 10] [--keep]
#                              [--build-dir DIR]
#
# Builds build-bench/ (RelWithDebInfo, no sanitizers) unless --build-dir names another
# tree, then runs reconcile.py: its own Postgres, the sandbox with a generated company,
# rosterd with 2 workers; the nightly job twice (first run, steady state) and a rosterctl
# dry run; prints a table and writes results/reconcile-<timestamp>.json. About 2 minutes.
# Exit status: 0 both runs within 20 s and 64 MiB, 1 a miss, 2 the harness failed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build_dir="$root/build-bench"
py=/usr/bin/python3
[[ -x $py ]] || py=python3
pass=()
while (($#)); do
    case "$1" in
        -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}"; exit 0 ;;
        --build-dir) build_dir="$2"; shift 2; continue ;;
        --build-dir=*) build_dir="${1#*=}" ;;
        *) pass+=("$1") ;;
    esac
    shift
done
if [[ ! -x $build_dir/rosterd || ! -x $build_dir/rosterctl || $build_dir == "$root/build-bench" ]]; then
    cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRD_TESTS=OFF >/dev/null
    cmake --build "$build_dir" -j2 >/dev/null
fi
ROSTERD_BUILD_DIR="$build_dir" exec "$py" "$here/reconcile.py" "${pass[@]+"${pass[@]}"}" || exit 2
