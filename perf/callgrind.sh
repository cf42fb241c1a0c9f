#!/usr/bin/env bash
# callgrind.sh BINARY [REQUESTS] - instructions per request of one ringway
# build (epoll, one worker), which machine load does not change: callgrind
# runs ringway twice, with REQUESTS requests (default 20000) from
# perf/loadgen.py (16 keep-alive connections, GET /x) to rw_upstream and with
# none, and divides the difference.
#   RW_ARGS="--access-log off" perf/callgrind.sh build-lto/ringway
#   SVC_EXTRA='    outlier: {}' perf/callgrind.sh build-lto/ringway   (lines added to the service)
# Env: UPSTREAM (default build-dev/tests/upstream/rw_upstream).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$1
N=${2:-20000}
UP=${UPSTREAM:-build-dev/tests/upstream/rw_upstream}
W=$(mktemp -d)
trap 'kill "$UPID" 2>/dev/null || true; rm -rf "$W"' EXIT
"$UP" --listen 127.0.0.1:0 --name u >"$W/up.out" 2>&1 &
UPID=$!
for _ in $(seq 50); do grep -q PORT "$W/up.out" && break; sleep 0.1; done
UPORT=$(awk '/PORT/ {print $2}' "$W/up.out")
cat >"$W/rw.yaml" <<EOC
services:
  - name: s
    instances: [{address: "127.0.0.1:$UPORT"}]
${SVC_EXTRA:-}
routes:
  - name: r
    paths: [{prefix: /}]
    service: s
EOC
run() { # requests -> total instructions
    local n=$1 port=$((20000 + RANDOM % 20000))
    # shellcheck disable=SC2086
    valgrind --tool=callgrind --callgrind-out-file="$W/cg.$n" "$BIN" --config "$W/rw.yaml" \
        --listen "127.0.0.1:$port" --workers 1 --io epoll --log-level warn ${RW_ARGS:-} >"$W/rw.$n.out" 2>&1 &
    local pid=$!
    for _ in $(seq 100); do curl -s -o /dev/null "127.0.0.1:$port/health" && break; sleep 0.2; done
    if [ "$n" -gt 0 ]; then
        python3 perf/loadgen.py fixed --port "$port" --requests "$n" --conns 16 --timeout 280 >/dev/null
    fi
    sleep 0.3
    kill -TERM "$pid"
    wait "$pid" || true
    awk '/^(summary|totals):/ {print $2; exit}' "$W/cg.$n"
}
a=$(run "$N")
b=$(run 0)
echo "$BIN: $(((a - b) / N)) instructions per request ($N requests)"
