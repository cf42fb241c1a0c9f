#!/usr/bin/env bash
# run.sh [SECONDS] - build the libFuzzer targets with clang-14 (no meson) and
# fuzz each for SECONDS (default 30). Exits non-zero when a target crashes;
# reproducers go to tests/fuzz/crashes/ (git-ignored).
# Env: CC (default clang-14), FUZZ_OUT (build + working corpus, default
# build-fuzz/), FUZZ_TARGETS (default "request response chunked jwt jsonesc tls_records").
set -euo pipefail

secs=${1:-30}
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${FUZZ_OUT:-$root/build-fuzz}
cc=${CC:-clang-14}
targets=${FUZZ_TARGETS:-"request response chunked jwt jsonesc tls_records"}
crashes=$root/tests/fuzz/crashes
mkdir -p "$out" "$crashes"

flags=(-g -O1 -std=gnu17 -D_GNU_SOURCE -Wall -Wextra -I"$root/include"
       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all)
http_srcs=("$root"/src/http/parser.c "$root"/src/http/chunked.c "$root"/src/http/path.c "$root"/src/http/status.c)
# jwt links BoringSSL as Debian packages it (headers under /usr/include/android).
boringssl_lib=/usr/lib/$("$cc" -print-multiarch)/android
jwt_srcs=("$root"/src/filters/json.c "$root"/src/filters/jwt.c "$root"/src/filters/jwt_keys.c
          -isystem /usr/include/android "$boringssl_lib/libcrypto.so" -Wl,-rpath,"$boringssl_lib")
# tls_records: the TLS transport over the driver's stand-in for the loop.
tls_srcs=("$root"/src/core/tls.c "$root"/src/core/transport.c "$root"/src/core/timer.c -isystem /usr/include/android
          "$boringssl_lib/libssl.so" "$boringssl_lib/libcrypto.so" -Wl,-rpath,"$boringssl_lib" -pthread)

for t in $targets; do
    echo "== building fuzz_$t"
    case $t in
        jwt) srcs=("${jwt_srcs[@]}") ;;
        jsonesc) srcs=("$root"/src/core/jsonesc.c) ;;
        tls_records) srcs=("${tls_srcs[@]}") ;;
        *) srcs=("${http_srcs[@]}") ;;
    esac
    "$cc" "${flags[@]}" "$root/tests/fuzz/fuzz_$t.c" "${srcs[@]}" -o "$out/fuzz_$t"
done

status=0
for t in $targets; do
    echo "== fuzzing fuzz_$t for ${secs}s"
    work=$out/corpus/$t
    mkdir -p "$work"
    if ! "$out/fuzz_$t" -max_total_time="$secs" -max_len=65536 -timeout=10 -print_final_stats=1 \
            -artifact_prefix="$crashes/$t-" "$work" "$root/tests/fuzz/corpus/$t"; then
        echo "!! fuzz_$t failed; reproducers in $crashes" >&2
        status=1
    fi
done
exit $status
