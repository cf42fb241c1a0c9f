#!/usr/bin/env bash
# ab.sh - before/after: two or more ringway variants on the same upstream and
# the same load, rounds interleaved, medians compared. For measuring a change
# to the request path on a shared machine.
#
#   perf/ab.sh [--duration S] [--rounds N] [--io uring|epoll] [--conns N]
#              [--scenario small|1k|64k|1m|post16k|newconn] NAME=BINARY[,VAR=VALUE...] ...
#
#   perf/ab.sh old=/tmp/ringway-before new=build/ringway
#   perf/ab.sh defer=build/ringway nodefer=build/ringway,RW_URING_NO_DEFER=1
#   perf/ab.sh uring=build/ringway epoll=build/ringway,IO=epoll   (IO= picks --io)
#   perf/ab.sh off=build/ringway,ALOG=off on=build/ringway,ALOG=file  (ALOG= passes --access-log:
#                                                                   off, stdout, or file: a file in
#                                                                   the work folder; without ALOG a
#                                                                   build's default applies)
#
# Each variant runs one worker pinned to the last CPU (the nginx upstream and
# wrk share the others), with the given environment. Rows are measured
# round-robin, --rounds times (default 5), and the median kept, so that drift
# on a shared machine hits every variant alike. The figure that decides is
# requests per second of proxy CPU time (/proc utime+stime): on a 2-CPU
# machine the load side cannot saturate the proxy, so req/s mostly measures
# the load side. Prints a Markdown table with each row's change against the
# first variant.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=5
ROUNDS=5
IO=uring
CONNS=64
SCENARIO=small
VARIANTS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --io) IO=$2; shift ;;
        --conns) CONNS=$2; shift ;;
        --scenario) SCENARIO=$2; shift ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *=*) VARIANTS+=("$1") ;;
        *) echo "ab.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
[ "${#VARIANTS[@]}" -ge 2 ] || { echo "ab.sh: give at least two NAME=BINARY variants (--help)" >&2; exit 2; }
case "$SCENARIO" in small|1k|64k|1m|post16k|newconn) ;; *) echo "ab.sh: unknown scenario $SCENARIO" >&2; exit 2 ;; esac

. perf/lib.sh
perf_init ab
need_tools "perf/run.sh installs it" wrk nginx curl taskset
for v in "${VARIANTS[@]}"; do
    bin=${v#*=}; bin=${bin%%,*}
    [ -x "$bin" ] || { echo "ab.sh: $bin is not an executable" >&2; exit 1; }
done

split_cpus
read -r UP_PORT RW_PORT <<<"$(free_ports 2)"

# The upstream: perf/run.sh's nginx (lib.sh), plus a 1 MiB file.
mkdir -p "$WORK/www"
head -c 1048576 /dev/urandom >"$WORK/www/1m"
start_nginx_upstream "$UP_PORT" "$LOAD_CPUS" "client_body_buffer_size 64k; location = /1m { root $WORK/www; }"

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

WRK_ARGS=()
URL_PATH=/
case "$SCENARIO" in
    1k) URL_PATH=/1k ;;
    64k) URL_PATH=/64k ;;
    1m) URL_PATH=/1m ;;
    post16k) URL_PATH=/post; WRK_ARGS=(-s perf/wrk/post16k.lua) ;;
    newconn) WRK_ARGS=(-s perf/wrk/close.lua) ;;
esac

RES="$WORK/results.tsv"
: >"$RES"
for round in $(seq 1 "$ROUNDS"); do
    for v in "${VARIANTS[@]}"; do
        name=${v%%=*}
        spec=${v#*=}
        bin=${spec%%,*}
        envs=()
        [ "$spec" = "$bin" ] || IFS=, read -r -a envs <<<"${spec#*,}"
        io=$IO; alog=(); keep=()
        for e in "${envs[@]}"; do
            case "$e" in IO=*) io=${e#IO=} ;; ALOG=*) alog=(--access-log "${e#ALOG=}") ;; *) keep+=("$e") ;; esac
        done
        [ "${alog[1]:-}" = file ] && alog=(--access-log "$WORK/access.log")
        env "${keep[@]}" taskset -c "$PROXY_CPU" "$bin" --config "$WORK/ringway.yaml" --workers 1 --io "$io" \
            "${alog[@]}" --log-level warn >"$WORK/ringway.log" 2>&1 &
        rpid=$!
        for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$RW_PORT/health" && break; sleep 0.05; done
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$RW_PORT$URL_PATH")
        [ "$code" = 200 ] || { echo "ab.sh: $name answered $code: $(tail -n 3 "$WORK/ringway.log")" >&2; exit 1; }
        t0=$(cpu_ticks "$rpid")
        out=$(taskset -c "$LOAD_CPUS" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency "${WRK_ARGS[@]}" \
              "http://127.0.0.1:$RW_PORT$URL_PATH" 2>&1)
        t1=$(cpu_ticks "$rpid")
        kill "$rpid"; wait "$rpid" 2>/dev/null || true
        rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
        p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
        errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
        cpu=$(awk -v t="$((t1 - t0))" -v hz="$CLK_TCK" -v d="$DURATION" 'BEGIN {printf "%.3f", t / hz / d}')
        printf '%s\t%s\t%s\t%s\n' "$name" "${rps:-0}" "${p99:-?}" "$cpu" >>"$RES"
        echo "[ab.sh] round $round $name: ${rps:-0} req/s, p99 ${p99:-?}, proxy CPU ${cpu} cores ${errs}" >&2
    done
done

"$PY" - "$RES" "$IO" "$DURATION" "$ROUNDS" "$CONNS" "$SCENARIO" <<'EOF'
import sys
rows, order = {}, []
for line in open(sys.argv[1]):
    name, rps, p99, cpu = line.rstrip("\n").split("\t")
    if name not in rows:
        order.append(name)
    rps, cpu = float(rps), float(cpu)
    rows.setdefault(name, []).append((rps / cpu if cpu > 0 else 0.0, rps, p99, cpu))
def med(name):
    vals = sorted(rows[name])
    return vals[len(vals) // 2]
base = med(order[0])[0]
print(f"| {sys.argv[6]} ({sys.argv[2]}, 1 worker, wrk -c{sys.argv[5]}, {sys.argv[3]} s x {sys.argv[4]} rounds, median) "
      "| req/s | p99 | proxy CPU (cores) | req per proxy CPU-second | change |")
print("|---|---:|---:|---:|---:|---:|")
for name in order:
    cap, rps, p99, cpu = med(name)
    spread = sorted(r[0] for r in rows[name])
    change = "" if name == order[0] else f"{100.0 * (cap - base) / base:+.1f}%"
    print(f"| {name} | {rps:,.0f} | {p99} | {cpu:.2f} | {cap:,.0f} ({spread[0]:,.0f}-{spread[-1]:,.0f}) | {change} |")
EOF
