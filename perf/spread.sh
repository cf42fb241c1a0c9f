#!/usr/bin/env bash
# spread.sh - how SO_REUSEPORT spreads new connections over ringway's workers:
# connections accepted per worker (/status per_worker "accepted") for the
# kernel's default 4-tuple hash and for --reuseport-steering cpu.
#
#   perf/spread.sh [--workers N] [--conns "8 64 1000"] [--duration S]
#                  [--rounds N] [--modes "hash cpu"] [--io uring|epoll] [--build DIR]
#
# For every mode, connection count C and round, a fresh ringway (--workers N,
# default nproc; workers are pinned to the allowed CPUs in turn, so N may
# exceed the CPU count) proxies to one nginx (or, without nginx, the test
# upstream DIR/tests/upstream/rw_upstream), and `wrk -t2 -cC -dS` (default 3 s)
# loads it. The table gives the connections each worker accepted during the
# wrk run and max/mean (1.00 = even; N = everything on one worker), and the
# same ratio for requests. With cpu steering a connection goes to the worker
# on the CPU that handled its SYN; on loopback that is the CPU the connecting
# wrk thread ran on, so the spread follows where the scheduler put wrk's two
# threads (on real NICs it follows RSS/IRQ placement). Builds DIR (default
# build) with ninja if needed; removes every process and file it made on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

WORKERS=$(nproc)
CONNS="8 64 1000"
DURATION=3
ROUNDS=1
MODES="hash cpu"
IO=uring
BUILD=build
while [ $# -gt 0 ]; do
    case "$1" in
        --workers) WORKERS=$2; shift ;;
        --conns) CONNS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --modes) MODES=$2; shift ;;
        --io) IO=$2; shift ;;
        --build) BUILD=$2; shift ;;
        -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "spread.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

. perf/lib.sh
perf_init spread
need_tools "scripts/install-deps.sh --test" wrk curl "$PY"
build_ringway "$BUILD"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
RPID=
perf_on_exit() { [ -z "$RPID" ] || kill "$RPID" 2>/dev/null || true; }

read -r UP_PORT RW_PORT ADMIN_PORT <<<"$(free_ports 3)"

if command -v nginx >/dev/null; then
    UPSTREAM=nginx
    start_nginx_upstream "$UP_PORT" ""
elif [ -x "$BUILD/tests/upstream/rw_upstream" ]; then
    UPSTREAM=rw_upstream
    "$BUILD/tests/upstream/rw_upstream" --listen "127.0.0.1:$UP_PORT" --name up >"$WORK/upstream.log" 2>&1 &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$UP_PORT/"
else
    echo "spread.sh: neither nginx nor $BUILD/tests/upstream/rw_upstream is there" >&2
    exit 1
fi

cat >"$WORK/ringway.yaml" <<EOF
listen: ["127.0.0.1:$RW_PORT"]
services:
  - name: up
    keepalive: {max_idle: 256}
    instances: ["127.0.0.1:$UP_PORT"]
routes:
  - name: all
    paths: [{prefix: /}]
    service: up
EOF

status() { curl -s --max-time 5 "http://127.0.0.1:$ADMIN_PORT/status"; }
RES="$WORK/results.tsv"
: >"$RES"
for mode in $MODES; do
    for c in $CONNS; do
        for round in $(seq 1 "$ROUNDS"); do
            "$RINGWAY" --config "$WORK/ringway.yaml" --workers "$WORKERS" --io "$IO" --admin "127.0.0.1:$ADMIN_PORT" \
                --reuseport-steering "$mode" --log-level warn >"$WORK/ringway.log" 2>&1 &
            RPID=$!
            ok=0
            for _ in $(seq 1 100); do
                curl -sf -o /dev/null "http://127.0.0.1:$ADMIN_PORT/ready" && { ok=1; break; }
                sleep 0.05
            done
            [ $ok = 1 ] || { echo "spread.sh: ringway did not start: $(tail -n 3 "$WORK/ringway.log")" >&2; exit 1; }
            before=$(status)
            out=$(wrk -t2 -c"$c" -d"${DURATION}s" "http://127.0.0.1:$RW_PORT/" 2>&1)
            after=$(status)
            kill "$RPID"
            wait "$RPID" 2>/dev/null || true
            RPID=
            non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
            [ -z "$non2xx" ] || echo "spread.sh: $mode -c$c: $non2xx non-2xx answers" >&2
            printf '%s\t%s\t%s\t%s\t%s\n' "$mode" "$c" "$round" "$before" "$after" >>"$RES"
            echo "[spread.sh] $mode -c$c round $round done" >&2
        done
    done
done

"$PY" - "$RES" "$WORKERS" "$(nproc)" "$DURATION" "$IO" "$UPSTREAM" <<'EOF'
import json, sys
res, nw, ncpu, dur, io, up = sys.argv[1:7]
print(f"ringway --workers {nw} ({ncpu} CPUs, {io}), upstream {up}; wrk -t2 -cC -d{dur}s on 127.0.0.1; "
      "connections accepted per worker during the run")
print()
print("| steering | C | accepted per worker | max/mean (conns) | max/mean (requests) |")
print("|---|---:|---|---:|---:|")
for line in open(res):
    mode, c, rnd, before, after = line.rstrip("\n").split("\t")
    b = {w["id"]: w for w in json.loads(before)["per_worker"]}
    a = json.loads(after)["per_worker"]
    acc = [w["accepted"] - b[w["id"]]["accepted"] for w in a]
    req = [w["requests"] - b[w["id"]]["requests"] for w in a]
    def ratio(v):
        mean = sum(v) / len(v)
        return f"{max(v) / mean:.2f}" if mean > 0 else "-"
    print(f"| {mode} | {c} | {' / '.join(str(x) for x in acc)} | {ratio(acc)} | {ratio(req)} |")
EOF
