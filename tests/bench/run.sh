#!/usr/bin/env bash
# tests/bench/run.sh — the rosterd benchmark of issue 5, one command.
#
#   ./tests/bench/run.sh [--quick] [--duration S] [--soak S] [other bench.py options]
#
# Installs what is missing (nginx-light, wrk, postgresql, nodejs, npm; apt-get only
# when a tool is absent, root needed then), runs `npm ci` in tests/bench (fastify and
# pg pinned in package.json / package-lock.json), builds build-bench/ (RelWithDebInfo,
# no sanitizers; --build-dir DIR to use another tree), then runs bench.py: its own
# Postgres, nginx, pgbench, rosterd and Node receiver on 127.0.0.1, wrk -t2 -c64, the
# queue drain, latency and soak, one table on stdout and results/<timestamp>.json.
# --quick: 10 s loads, 20,000-job drain, 10 s latency, 60 s soak (about 4 minutes).
# Default: 30 s loads, 100,000-job drain, 30 s latency, 600 s soak (about 16 minutes).
# Exit status: 0 every target PASS, 1 some MISS/FAIL, 2 the harness failed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build_dir="$root/build-bench"
# Debian's python3, where python3-psycopg2 lives (a pyenv python3 on PATH lacks it).
py=/usr/bin/python3
[[ -x $py ]] || py=python3
pass=()
while (($#)); do
    case "$1" in
        -h|--help) sed -n '2,14p' "${BASH_SOURCE[0]}"; "$py" "$here/bench.py" --help; exit 0 ;;
        --build-dir) build_dir="$2"; pass+=("$1" "$2"); shift 2; continue ;;
        --build-dir=*) build_dir="${1#*=}"; pass+=("$1") ;;
        *) pass+=("$1") ;;
    esac
    shift
done
export DEBIAN_FRONTEND=noninteractive

# ---------------------------------------------------------------- packages
need=()
have() { command -v "$1" >/dev/null 2>&1; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
have nginx || [[ -x /usr/sbin/nginx ]] || need+=(nginx-light)
have wrk || need+=(wrk)
[[ -x /usr/lib/postgresql/15/bin/postgres ]] && have pgbench || need+=(postgresql)
have node || need+=(nodejs)
have npm || need+=(npm)
for p in build-essential cmake pkg-config libevent-dev libssl-dev libpq-dev \
         libcurl4-openssl-dev libjson-c-dev python3-psycopg2 openssl binutils; do
    installed "$p" || need+=("$p")
done
if ((${#need[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "bench: missing: ${need[*]}; as root: apt-get install -y ${need[*]}" >&2
        exit 2
    fi
    echo "bench: installing ${need[*]}" >&2
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${need[@]}"
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
echo "bench: node $(node --version) at $(command -v node) (Debian's v18 works; the issue's baseline was v20)" >&2
((node_major >= 18)) || { echo "bench: node >= 18 needed" >&2; exit 2; }

# ---------------------------------------------------------------- npm (pinned)
if [[ ! -d "$here/node_modules/fastify" || ! -d "$here/node_modules/pg" ||
      "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]]; then
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error) >&2
fi

# ---------------------------------------------------------------- build
cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRD_SANITIZE=OFF \
      -DRD_WERROR=ON >/dev/null
cmake --build "$build_dir" -j2 --target rosterd rosterctl >/dev/null
# The queue's stand-in while rosterd does not run the queue itself (tests/tools).
cmake --build "$build_dir" -j2 --target queue_driver >/dev/null 2>&1 || true

exec "$py" "$here/bench.py" --build-dir "$build_dir" "${pass[@]}"
