#!/usr/bin/env bash
# filters.sh - what the access filters cost: ringway with no filter against the
# same ringway with one filter, in the same run, same upstream, same load.
#
#   perf/filters.sh [--duration S] [--rounds N] [--io uring|epoll] [--conns N]
#
# Rows: plain (no filter), jwt-hs256 and jwt-rs256 (one token sent by every
# connection: the first request verifies it, the rest are verified-token cache
# hits), jwt-rs256-nocache (cache off: a signature check per request, for
# reference), key-auth, rl-local (a rate limit keyed by client address that
# never refuses), rl-global (the same with scope: global, a real redis-server
# and a 100 ms sync). Rows are measured round-robin, --rounds times (default
# 3), and the median is reported, so that drift on a shared machine hits every
# row alike. ringway runs one worker pinned to the last CPU, wrk and the
# nginx upstream share the others. The cost is taken from requests per second
# of proxy CPU time (/proc utime+stime), which holds where the load side
# cannot saturate the proxy's core (a 2-CPU machine). Prints a Markdown table;
# exits non-zero if a row failed (non-2xx answers, or a tool missing).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=5
ROUNDS=3
IO=uring
CONNS=50
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --io) IO=$2; shift ;;
        --conns) CONNS=$2; shift ;;
        -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "filters.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

. perf/lib.sh
perf_init filters-perf
need_tools "scripts/install-deps.sh --test" wrk nginx redis-server openssl curl
"$PY" -c 'import jwt, cryptography' 2>/dev/null || { echo "filters.sh: python3-jwt is missing" >&2; exit 1; }
build_ringway build
split_cpus
read -r UP_PORT RW_PORT REDIS_PORT <<<"$(free_ports 3)"

start_nginx_upstream "$UP_PORT" "$LOAD_CPUS"
taskset -c "$LOAD_CPUS" redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)

# keys and tokens from PyJWT (an independent implementation)
SECRET=perf-secret-0123456789abcdef0123456789
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/rsa.key" 2>/dev/null
openssl pkey -in "$WORK/rsa.key" -pubout -out "$WORK/rsa.pub"
read -r HS_TOKEN RS_TOKEN < <("$PY" - "$SECRET" "$WORK/rsa.key" <<'EOF'
import jwt, sys, time
claims = {"sub": "user-42", "role": "admin", "iss": "https://issuer.test/", "aud": "perf",
          "exp": int(time.time()) + 86400, "iat": int(time.time())}
hs = jwt.encode(claims, sys.argv[1], algorithm="HS256")
rs = jwt.encode(claims, open(sys.argv[2]).read(), algorithm="RS256", headers={"kid": "r1"})
print(hs, rs)
EOF
)

config() {   # config FILTERS_YAML -> ringway.yaml text
    cat <<EOF
listen: ["127.0.0.1:$RW_PORT"]
redis: {url: "redis://127.0.0.1:$REDIS_PORT/0", sync_interval: 100ms}
consumers:
  - {name: perf, id: c-perf, groups: [apps], keys: [perf-key-0123456789]}
services:
  - name: up
    keepalive: {max_idle: 256}
    instances: ["127.0.0.1:$UP_PORT"]
routes:
  - name: all
    paths: [{prefix: /}]
    service: up
$1
EOF
}
F_JWT_HS="    filters:
      - jwt: {keys: [{alg: HS256, secret: \"$SECRET\"}], issuer: \"https://issuer.test/\", audience: perf,
              claims_to_headers: {sub: X-User-ID, role: X-User-Role}}"
F_JWT_RS="    filters:
      - jwt: {keys: [{alg: RS256, kid: r1, pem_file: \"$WORK/rsa.pub\"}], issuer: \"https://issuer.test/\", audience: perf,
              claims_to_headers: {sub: X-User-ID, role: X-User-Role}}"
F_JWT_RS_NC="    filters:
      - jwt: {keys: [{alg: RS256, kid: r1, pem_file: \"$WORK/rsa.pub\"}], issuer: \"https://issuer.test/\", audience: perf,
              claims_to_headers: {sub: X-User-ID, role: X-User-Role}, cache_entries: 0}"
F_KEY="    filters:
      - key_auth: {header: X-API-Key}"
F_RL="    filters:
      - rate_limit: {key: ip, rate: 1000000000/s}"
F_RLG="    filters:
      - rate_limit: {key: ip, rate: 1000000000/s, scope: global}"

ROWS=(plain jwt-hs256 jwt-rs256 jwt-rs256-nocache key-auth rl-local rl-global)
row_filters() { case "$1" in plain) echo "" ;; jwt-hs256) echo "$F_JWT_HS" ;; jwt-rs256) echo "$F_JWT_RS" ;;
    jwt-rs256-nocache) echo "$F_JWT_RS_NC" ;; key-auth) echo "$F_KEY" ;; rl-local) echo "$F_RL" ;; rl-global) echo "$F_RLG" ;; esac; }
# Every row sends the same headers (a token and an API key, forwarded in every
# row), so that rows differ only by the filter: the RS256 rows' token is
# longer than the HS256 one the others carry (about 300 bytes more to relay).
row_token() { case "$1" in jwt-rs256*) echo "$RS_TOKEN" ;; *) echo "$HS_TOKEN" ;; esac; }

RES="$WORK/results.tsv"
: >"$RES"
fail=0
for round in $(seq 1 "$ROUNDS"); do
    for row in "${ROWS[@]}"; do
        config "$(row_filters "$row")" >"$WORK/ringway.yaml"
        taskset -c "$PROXY_CPU" "$RINGWAY" --config "$WORK/ringway.yaml" --workers 1 --io "$IO" --log-level warn \
            >"$WORK/ringway.log" 2>&1 &
        rpid=$!
        for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$RW_PORT/health" && break; sleep 0.05; done
        code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(row_token "$row")" \
               -H "X-API-Key: perf-key-0123456789" "http://127.0.0.1:$RW_PORT/")
        if [ "$code" != 200 ]; then
            echo "filters.sh: $row answered $code: $(tail -n 3 "$WORK/ringway.log")" >&2
            fail=1
        fi
        t0=$(cpu_ticks "$rpid")
        out=$(taskset -c "$LOAD_CPUS" wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency \
              -H "Authorization: Bearer $(row_token "$row")" -H "X-API-Key: perf-key-0123456789" \
              "http://127.0.0.1:$RW_PORT/" 2>&1)
        t1=$(cpu_ticks "$rpid")
        kill "$rpid"; wait "$rpid" 2>/dev/null || true
        rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
        p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
        non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
        [ -z "$non2xx" ] || { echo "filters.sh: $row: $non2xx non-2xx answers" >&2; fail=1; }
        cpu=$(awk -v t="$((t1 - t0))" -v hz="$CLK_TCK" -v d="$DURATION" 'BEGIN {printf "%.3f", t / hz / d}')
        printf '%s\t%s\t%s\t%s\n' "$row" "${rps:-0}" "${p99:-?}" "$cpu" >>"$RES"
        echo "[filters.sh] round $round $row: ${rps:-0} req/s, p99 ${p99:-?}, proxy CPU ${cpu} cores" >&2
    done
done

"$PY" - "$RES" "$IO" "$DURATION" "$ROUNDS" "$CONNS" <<'EOF'
import sys
rows, order = {}, []
for line in open(sys.argv[1]):
    name, rps, p99, cpu = line.rstrip("\n").split("\t")
    if name not in rows:
        order.append(name)
    rps, cpu = float(rps), float(cpu)
    # capacity: requests per second of proxy CPU (what one saturated core would carry)
    rows.setdefault(name, []).append((rps / cpu if cpu > 0 else 0.0, rps, p99, cpu))
def med(name):
    vals = sorted(rows[name])
    return vals[len(vals) // 2]
base = med("plain")[0]
print(f"| row ({sys.argv[2]}, 1 worker, wrk -c{sys.argv[5]}, {sys.argv[3]} s x {sys.argv[4]} rounds, median) "
      "| req/s | p99 | proxy CPU (cores) | req per proxy CPU-second | cost vs plain |")
print("|---|---:|---:|---:|---:|---:|")
for name in order:
    cap, rps, p99, cpu = med(name)
    cost = "" if name == "plain" else f"{100.0 * (base - cap) / base:.1f}%"
    print(f"| {name} | {rps:,.0f} | {p99} | {cpu:.2f} | {cap:,.0f} | {cost} |")
EOF
exit $fail
