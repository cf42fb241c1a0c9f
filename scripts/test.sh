#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite:
#   0. every C file is clang-formatted (scripts/format.sh --check);
#   1. unit tests (Criterion);
#   2. integration tests against the real binary, on io_uring and on epoll;
#   3. the same again in an ASan+UBSan build;
#   4. each libFuzzer target for a bounded time (RW_FUZZ_SECONDS, default 10).
# Ends with one line "tests: N passed, N failed"; exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh --test || exit 1

passed=0
failed=0
failures=()

echo "== format (clang-format-14, .clang-format)"
if ./scripts/format.sh --check; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("format"); fi

run_suites() { # build-dir label suites...
    local dir=$1 label=$2
    shift 2
    for suite in "$@"; do
        echo "== ${label}: ${suite}"
        if meson test -C "$dir" --suite "$suite" --print-errorlogs --no-rebuild; then :; else failures+=("${label}/${suite}"); fi
        local log="$dir/meson-logs/testlog.json"
        if [ -f "$log" ]; then
            # Count Criterion test cases (each executable's "Synthesis" line);
            # an executable that failed without one counts as one failure.
            local counts
            counts=$(python3 scripts/count-tests.py "$log")
            passed=$((passed + ${counts% *}))
            failed=$((failed + ${counts#* }))
        fi
    done
}

setup() { # dir options...
    local dir=$1
    shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >/dev/null || return 1
    fi
    ninja -C "$dir" >/dev/null || { ninja -C "$dir"; return 1; }
}

if setup build-test --buildtype=debugoptimized; then
    run_suites build-test release unit integration-uring integration-epoll
else
    failures+=("build"); failed=$((failed + 1))
fi

if [ "${RW_SKIP_ASAN:-0}" != 1 ]; then
    if setup build-asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false; then
        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
        run_suites build-asan asan unit integration-uring integration-epoll
        unset ASAN_OPTIONS UBSAN_OPTIONS
    else
        failures+=("asan-build"); failed=$((failed + 1))
    fi
fi

if [ "${RW_SKIP_FUZZ:-0}" != 1 ]; then
    echo "== fuzz (${RW_FUZZ_SECONDS:-10}s per target)"
    if tests/fuzz/run.sh "${RW_FUZZ_SECONDS:-10}"; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("fuzz"); fi
fi

if [ ${#failures[@]} -gt 0 ]; then
    echo "failed: ${failures[*]}"
fi
echo "tests: ${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ] && [ ${#failures[@]} -eq 0 ]
