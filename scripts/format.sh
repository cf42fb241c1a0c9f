#!/usr/bin/env bash
# format.sh [--check] - clang-format (14, .clang-format) over every C file
# in src/, include/ and tests/. With --check nothing is changed: it lists the
# files that differ and exits 1 (CI runs it from scripts/test.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
cf=$(command -v clang-format-14 || command -v clang-format || true)
[ -n "$cf" ] || { echo "format.sh: clang-format-14 is not installed (scripts/install-deps.sh --test)" >&2; exit 1; }
mapfile -t files < <(git ls-files --cached --others --exclude-standard 'src/*.c' 'src/*.h' 'include/*.h' 'tests/*.c' 'tests/*.h')
if [ "${1:-}" = "--check" ]; then
    bad=()
    for f in "${files[@]}"; do
        "$cf" --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
    done
    if [ ${#bad[@]} -gt 0 ]; then
        echo "format.sh: not clang-formatted (run scripts/format.sh): ${bad[*]}" >&2
        exit 1
    fi
    echo "format.sh: ${#files[@]} files clang-formatted"
    exit 0
fi
"$cf" -i "${files[@]}"
