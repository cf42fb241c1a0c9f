#!/usr/bin/env bash
# upgrade.sh - a zero-drop upgrade under load: wrk through ringway (release
# build) to the nginx upstream (lib.sh), `ringway --upgrade` in the middle;
# prints wrk's socket errors and non-2xx counts, whether the old process
# drained and exited 0 and whether the new one serves. Exit 1 when anything
# failed.
#
#   perf/upgrade.sh [--io auto|uring|epoll] [--duration SECONDS] [--conns N]
#                   [--workers N] [--new-workers N] [--build DIR]
set -euo pipefail
PERF=$(cd "$(dirname "$0")" && pwd)
. "$PERF/lib.sh" # log, die, WORK and PIDS cleaned up on exit, ports, build, upstream

IO=auto DUR=20 CONNS=64 WORKERS=2 NEW_WORKERS="" BUILD=build-release
while [ $# -gt 0 ]; do
    case $1 in
    --io) IO=$2; shift 2 ;;
    --duration) DUR=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --new-workers) NEW_WORKERS=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    *) echo "upgrade.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
NEW_WORKERS=${NEW_WORKERS:-$WORKERS}

perf_init upgrade
need_tools "scripts/install-deps.sh --perf" wrk nginx curl
cd "$PERF/.."
build_ringway "$BUILD" || die "the release build failed"
split_cpus
read -r UP_PORT PORT <<<"$(free_ports 2)"
start_nginx_upstream "$UP_PORT" "" || die "the upstream nginx did not start"

cat >"$WORK/ringway.yaml" <<EOF
services:
  - name: upstream
    instances: [{address: "127.0.0.1:$UP_PORT"}]
routes:
  - name: all
    paths: [{prefix: /}]
    service: upstream
access_log: {path: "off"}
EOF
SOCK=$WORK/upgrade.sock
COMMON=(--config "$WORK/ringway.yaml" --listen "127.0.0.1:$PORT" --io "$IO" --upgrade-socket "$SOCK"
    --drain-timeout 10s --no-pin)

"$RINGWAY" "${COMMON[@]}" --workers "$WORKERS" 2>"$WORK/old.log" &
OLD=$!
PIDS+=("$OLD")
wait_port "$PORT" "$OLD" 10 && wait_http "http://127.0.0.1:$PORT/" || { cat "$WORK/old.log" >&2; die "ringway did not start"; }
log "ringway pid $OLD ($IO, $WORKERS workers) on $PORT; wrk -c$CONNS for ${DUR}s; the upgrade after $((DUR / 2))s"

wrk -t2 -c"$CONNS" -d"${DUR}s" "http://127.0.0.1:$PORT/" >"$WORK/wrk.out" 2>&1 &
WRK=$!
sleep $((DUR / 2))
"$RINGWAY" "${COMMON[@]}" --workers "$NEW_WORKERS" --upgrade 2>"$WORK/new.log" &
NEW=$!
PIDS+=("$NEW")
OLD_STATUS=timeout
for _ in $(seq 1 150); do
    if ! proc_alive "$OLD"; then
        OLD_STATUS=0
        wait "$OLD" || OLD_STATUS=$?
        forget_pid "$OLD"
        break
    fi
    sleep 0.1
done
wait "$WRK" || true
NEW_OK=no
proc_alive "$NEW" && [ "$(curl -s -m 5 "http://127.0.0.1:$PORT/")" = "hello world" ] && NEW_OK=yes

cat "$WORK/wrk.out"
echo "--- old process:"; cat "$WORK/old.log"
echo "--- new process:"; cat "$WORK/new.log"
SOCKERR=$(grep -o 'Socket errors:.*' "$WORK/wrk.out" || echo "Socket errors: none")
NON2XX=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$WORK/wrk.out")
REQS=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$WORK/wrk.out")
echo "=== io $IO, workers $WORKERS -> $NEW_WORKERS: ${REQS:-?} requests; $SOCKERR; non-2xx: ${NON2XX:-0};" \
    "old exit: $OLD_STATUS; new serves: $NEW_OK"
[ "$SOCKERR" = "Socket errors: none" ] && [ -z "$NON2XX" ] && [ "$OLD_STATUS" = 0 ] && [ "$NEW_OK" = yes ]
