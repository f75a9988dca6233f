#!/usr/bin/env bash
# Installs the Debian packages rosterd needs to build, test and run its quickstart,
# only those missing. Used by ./deploy/quickstart.sh and ./tests/run.sh.
#   deploy/install-deps.sh [build|test|bench]   (default: test)
set -euo pipefail

profile=${1:-test}
pkgs=(build-essential cmake pkg-config libevent-dev libssl-dev libpq-dev libcurl4-openssl-dev
      libjson-c-dev postgresql openssl python3 ca-certificates)
case "$profile" in
  build) pkgs+=(libcmocka-dev) ;;
  test)  pkgs+=(libcmocka-dev python3-pytest python3-psycopg2 valgrind clang libclang-rt-14-dev prometheus) ;;
  bench) pkgs+=(libcmocka-dev nginx-light wrk nodejs npm python3-psycopg2) ;;
  *) echo "install-deps: unknown profile \"$profile\" (build, test or bench)" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing Debian packages: ${missing[*]}" >&2
  echo "install-deps: run as root, or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
