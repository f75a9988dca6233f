#!/usr/bin/env bash
# tests/run.sh — installs what is missing, builds and runs every rosterd test.
#
#   ./tests/run.sh           full run: build/ (RelWithDebInfo) and build-asan/ (ASan+UBSan),
#                            ctest in both, valgrind over the unit tests, pytest over tests/
#                            against the sanitizer binaries
#   ./tests/run.sh --quick   developer loop: build/ only, ctest, pytest against build/
#
# Runs from any directory, needs no stdin (CI=true). Installs Debian packages only when
# missing (root needed then). The last line printed is "N passed, M failed"; the exit
# status is non-zero when anything failed. Budget: about 15 minutes on 2 cores.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
quick=0
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "run.sh: unknown option: $arg (try --help)" >&2; exit 2 ;;
    esac
done

export DEBIAN_FRONTEND=noninteractive
jobs=2
logdir="$(mktemp -d "${TMPDIR:-/tmp}/rosterd-run.XXXXXX")"
passed=0
failed=0
notes=()

say() { printf '\n==> %s\n' "$*"; }
fail_note() { notes+=("$1"); }

# ---------------------------------------------------------------- 1. packages
packages=(build-essential cmake pkg-config libevent-dev libssl-dev libpq-dev
          libcurl4-openssl-dev libjson-c-dev libcmocka-dev postgresql python3-pytest
          python3-psycopg2 python3-pytest-xdist valgrind clang libclang-rt-14-dev openssl cppcheck socat clang-format
          chromium)  # chromium: the HTML report is rendered headless to a PNG

is_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for p in "${packages[@]}"; do
    is_installed "$p" || missing+=("$p")
done
want_prometheus=0
if ! command -v promtool >/dev/null 2>&1 && ! is_installed prometheus; then
    want_prometheus=1
fi

if ((${#missing[@]} > 0 || want_prometheus)); then
    if [[ $(id -u) -ne 0 ]]; then
        if ((${#missing[@]} > 0)); then
            echo "run.sh: missing packages: ${missing[*]}" >&2
            echo "run.sh: install them as root: apt-get install -y ${missing[*]}" >&2
            exit 1
        fi
        echo "run.sh: WARNING: promtool missing (package prometheus) and not root" >&2
    else
        say "installing: ${missing[*]} $( ((want_prometheus)) && echo prometheus)"
        apt-get update -q
        if ((${#missing[@]} > 0)); then
            apt-get install -y -q --no-install-recommends "${missing[@]}"
        fi
        if ((want_prometheus)); then
            apt-get install -y -q --no-install-recommends prometheus ||
                echo "run.sh: WARNING: could not install prometheus (promtool)" >&2
        fi
    fi
fi
if ! command -v promtool >/dev/null 2>&1; then
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    echo "!!! promtool is missing: the promtool metrics check will be SKIPPED" >&2
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
fi

# ---------------------------------------------------------------- 2. build
build_tree() { # dir, cmake args...
    local dir="$1"; shift
    say "configure + build $dir ($*)"
    # pipefail makes the build pipeline fail when cmake --build fails.
    if cmake -S "$root" -B "$root/$dir" -DRD_WERROR=ON "$@" >"$logdir/$dir.configure.log" 2>&1 &&
       cmake --build "$root/$dir" -j"$jobs" 2>&1 | tee "$logdir/$dir.build.log" | tail -n 3; then
        return 0
    fi
    tail -n 30 "$logdir/$dir.configure.log"
    grep -E 'error|Error' "$logdir/$dir.build.log" | head -n 40 || true
    echo "run.sh: build of $dir FAILED (logs in $logdir)" >&2
    return 1
}

# ctest's summary: "100% tests passed, 0 tests failed out of 17" (or "No tests were found").
run_ctest() { # dir
    local dir="$1" log="$logdir/$1.ctest.log" rc=0 line total nfail
    say "ctest in $dir"
    ctest --test-dir "$root/$dir" --output-on-failure -j"$jobs" --timeout 300 >"$log" 2>&1 || rc=$?
    tail -n 40 "$log"
    line="$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -n 1 || true)"
    if [[ -n $line ]]; then
        nfail="$(sed -E 's/.* ([0-9]+) tests? failed out of ([0-9]+).*/\1/' <<<"$line")"
        total="$(sed -E 's/.* failed out of ([0-9]+).*/\1/' <<<"$line")"
        passed=$((passed + total - nfail))
        failed=$((failed + nfail))
        ((nfail == 0)) || fail_note "ctest $dir: $nfail failed"
        if ((nfail == 0 && rc != 0)); then
            failed=$((failed + 1)); fail_note "ctest $dir exited $rc"
        fi
    elif grep -q 'No tests were found' "$log"; then
        echo "run.sh: no ctest tests in $dir"
    else
        failed=$((failed + 1)); fail_note "ctest $dir: no summary (exit $rc)"
    fi
}

run_valgrind() { # dir
    local dir="$1" t name
    local -a tests=()
    for t in "$root/$dir"/test_*; do
        if [[ -f $t && -x $t ]]; then tests+=("$t"); fi
    done
    say "valgrind over ${#tests[@]} unit test binaries of $dir"
    for t in "${tests[@]}"; do
        name="$(basename "$t")"
        if (cd "$root/$dir" && CMOCKA_MESSAGE_OUTPUT=stdout timeout 600 valgrind -q \
                --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
                --track-origins=yes "$t") >"$logdir/valgrind.$name.log" 2>&1; then
            echo "valgrind $name: ok"
            passed=$((passed + 1))
        else
            echo "valgrind $name: FAILED"
            tail -n 40 "$logdir/valgrind.$name.log"
            failed=$((failed + 1)); fail_note "valgrind $name"
        fi
    done
}

# pytest's last line: "3 failed, 75 passed, 1 skipped, 2 errors in 201.33s".
run_pytest() { # build dir
    local bdir="$1" log="$logdir/pytest.log" rc=0 line n py=python3
    [[ -x /usr/bin/python3 ]] && py=/usr/bin/python3 # the Debian one has pytest + psycopg2
    # Three pytest workers, a test file each at a time (its module fixtures stay one world):
    # most tests wait on daemons, sandboxes and Postgres, not on the 2 cores. Every worker
    # has its own Postgres cluster, sandbox and ports (conftest.py).
    local par=()
    if "$py" -c 'import xdist' 2>/dev/null; then par=(-n "${RD_PYTEST_WORKERS:-3}" --dist loadfile); fi
    say "pytest tests/ against $bdir ${par[*]}"
    (cd "$root" && ROSTERD_BUILD_DIR="$root/$bdir" \
        ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        timeout 900 "$py" -m pytest -q -rfEs -p no:cacheprovider -m "not bench" --durations=15 \
            "${par[@]}" tests) 2>&1 | tee "$log" ||
        rc=${PIPESTATUS[0]}
    line="$(grep -E '[0-9]+ (passed|failed|error|errors|skipped)' "$log" | tail -n 1 || true)"
    if [[ -z $line ]]; then
        if ((rc == 5)); then echo "run.sh: pytest collected no tests"; return; fi
        failed=$((failed + 1)); fail_note "pytest: no summary (exit $rc)"; return
    fi
    n="$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || echo 0)"
    passed=$((passed + n))
    local nf=0
    for kind in failed error errors; do
        n="$(grep -oE "[0-9]+ $kind\\b" <<<"$line" | grep -oE '[0-9]+' || echo 0)"
        nf=$((nf + n))
    done
    failed=$((failed + nf))
    ((nf == 0)) || fail_note "pytest: $nf failed/errors"
    if ((nf == 0 && rc != 0)); then failed=$((failed + 1)); fail_note "pytest exited $rc"; fi
}

start=$SECONDS
normal_ok=1
asan_ok=1
build_tree build -DCMAKE_BUILD_TYPE=RelWithDebInfo || { normal_ok=0; failed=$((failed + 1)); fail_note "build/ failed"; }
if ((!quick)); then
    build_tree build-asan -DCMAKE_BUILD_TYPE=Debug -DRD_SANITIZE=ON ||
        { asan_ok=0; failed=$((failed + 1)); fail_note "build-asan/ failed"; }
fi

# ---------------------------------------------------------------- 3. unit tests, fuzz replays
if ((normal_ok)); then run_ctest build; fi
if ((!quick && asan_ok)); then
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        run_ctest build-asan
fi
if ((!quick && normal_ok)); then run_valgrind build; fi

# Static analysis of the C tree: any cppcheck warning fails the run.
say "cppcheck over server/ and handlers/"
if (cd "$root" && timeout 600 cppcheck --quiet --error-exitcode=1 --enable=warning,portability \
        --std=c11 -I include -I server --suppress=missingIncludeSystem server handlers) \
        >"$logdir/cppcheck.log" 2>&1; then
    echo "cppcheck: ok"
    passed=$((passed + 1))
else
    cat "$logdir/cppcheck.log"
    failed=$((failed + 1)); fail_note "cppcheck"
fi

# The C tree is clang-format clean (.clang-format): any file that would change fails the run.
say "clang-format --dry-run over server/ handlers/ include/ tests/unit tests/fuzz tests/tools"
mapfile -t fmt_files < <(cd "$root" && find server handlers include tests/unit tests/fuzz tests/tools \
                             -name '*.[ch]' -type f | sort)
if (cd "$root" && clang-format --style=file --dry-run -Werror "${fmt_files[@]}") \
        >"$logdir/clang-format.log" 2>&1; then
    echo "clang-format: ok (${#fmt_files[@]} files)"
    passed=$((passed + 1))
else
    grep -E '^[^ ].*: (error|warning):' "$logdir/clang-format.log" | cut -d: -f1 | sort -u | head -n 40
    echo "run.sh: clang-format would change the files above (clang-format -i FILE…)" >&2
    failed=$((failed + 1)); fail_note "clang-format"
fi

# ---------------------------------------------------------------- 4. integration + sandbox
if ((quick)); then
    if ((normal_ok)); then run_pytest build; fi
elif ((asan_ok)); then
    run_pytest build-asan
fi

# ---------------------------------------------------------------- 5. summary
say "summary ($((SECONDS - start)) s, logs in $logdir)"
for n in "${notes[@]+"${notes[@]}"}"; do echo "  - $n"; done
echo "$passed passed, $failed failed"
((failed == 0))
