#!/usr/bin/env bash
# tls.sh - HTTPS termination: ringway (io_uring and epoll) against nginx and
# HAProxy, one worker each, the same ECDSA P-256 certificate, the same TLS 1.3
# cipher (TLS_AES_128_GCM_SHA256, X25519), in front of perf/lib.sh's nginx
# upstream (GET / answers "hello world\n").
#
#   perf/tls.sh [--duration S] [--rounds N] [--conns N] [--idle N] [--ringway BIN] [--alt BIN]
#               [--only "keepalive full resumed idle"]
#
# Rows, each target started fresh for each, pinned to the last CPU (wrk,
# openssl and the upstream on the others), the figure that decides being
# requests (or handshakes) per second of proxy CPU time (/proc utime+stime
# of the proxy's processes), median of --rounds (default 3) interleaved:
#  - keepalive: wrk -t1 -c64 over https, small body;
#  - full: openssl s_time -new (4 in parallel): a full TLS 1.3 handshake and
#    one HTTP/1.0 GET per connection;
#  - resumed: wrk -c64 with Connection: close (perf/wrk/close.lua): a new
#    connection per request, resuming the session wrk keeps (TLS 1.3 ticket,
#    PSK with ECDHE; ringway's resumed counter shows it for ringway);
#  - idle: VmRSS of the proxy before and after --idle (default 2000) idle TLS
#    connections (handshake done, nothing sent), per connection.
# The clients use a generated OPENSSL_CONF that offers only
# TLS_AES_128_GCM_SHA256; nginx and HAProxy are also configured to it
# (BoringSSL, in ringway, cannot restrict TLS 1.3 suites: the client's
# offer decides). --ringway BIN skips the release build (build-perf); --alt
# BIN adds targets alt-uring and alt-epoll (another ringway, for a
# before/after in the same run).
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=5
ROUNDS=3
CONNS=64
IDLE=2000
RINGWAY_BIN=
ALT_BIN=
ONLY="keepalive full resumed idle"
while [ $# -gt 0 ]; do
    case "$1" in
        --duration) DURATION=$2; shift ;;
        --rounds) ROUNDS=$2; shift ;;
        --conns) CONNS=$2; shift ;;
        --idle) IDLE=$2; shift ;;
        --ringway) RINGWAY_BIN=$2; shift ;;
        --alt) ALT_BIN=$2; shift ;;
        --only) ONLY=$2; shift ;;
        -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "tls.sh: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

. perf/lib.sh
perf_init tls
need_tools "apt-get install wrk nginx-light openssl curl" wrk nginx openssl curl taskset
TARGETS=(ringway-uring ringway-epoll)
[ -z "$ALT_BIN" ] || TARGETS+=(alt-uring alt-epoll)
TARGETS+=(nginx)
if command -v haproxy >/dev/null; then TARGETS+=(haproxy); else log "haproxy not installed: skipped"; fi
split_cpus
if [ -n "$RINGWAY_BIN" ]; then
    RINGWAY=$RINGWAY_BIN
else
    build_ringway build-perf -Dtests=false || die "the release build failed"
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)

read -r UP_PORT P_RW P_NGX P_HA P_ADMIN <<<"$(free_ports 5)"
start_nginx_upstream "$UP_PORT" "$LOAD_CPUS" || die "no upstream"

# ---- certificate and client settings
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$WORK/tls.key" \
    -out "$WORK/tls.crt" -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost >/dev/null 2>&1
cat "$WORK/tls.crt" "$WORK/tls.key" >"$WORK/tls.pem"
cat >"$WORK/client.cnf" <<EOF
openssl_conf = conf
[conf]
ssl_conf = ssl
[ssl]
system_default = sys
[sys]
Ciphersuites = TLS_AES_128_GCM_SHA256
Groups = X25519
MinProtocol = TLSv1.3
EOF
export OPENSSL_CONF=$WORK/client.cnf

# ---- the proxies
cat >"$WORK/ringway.yaml" <<EOF
listen:
  - address: "127.0.0.1:$P_RW"
    tls:
      certificates:
        - {cert_file: $WORK/tls.crt, key_file: $WORK/tls.key}
http:
  keepalive_timeout: 300s
access_log: {path: "off"}
services:
  - name: upstream
    keepalive: {max_idle: 64, idle_timeout: 300s}
    instances: ["127.0.0.1:$UP_PORT"]
routes:
  - name: all
    paths: [{prefix: /}]
    service: upstream
EOF
cat >"$WORK/nginx.conf" <<EOF
$NGX_USER
worker_processes 1;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err warn;
worker_rlimit_nofile $NOFILE;
events { worker_connections $((NOFILE - 100)); }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    $NGX_TEMPS
    upstream backend {
        server 127.0.0.1:$UP_PORT;
        keepalive 64;
        keepalive_requests 100000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$P_NGX ssl backlog=4096;
        ssl_certificate $WORK/tls.crt;
        ssl_certificate_key $WORK/tls.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_conf_command Ciphersuites TLS_AES_128_GCM_SHA256;
        ssl_session_tickets on;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
HA_MAXCONN=$(( (NOFILE - 200) / 2 ))
[ $HA_MAXCONN -gt 20000 ] && HA_MAXCONN=20000
cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $HA_MAXCONN
    ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
    http-reuse always
frontend fe
    bind 127.0.0.1:$P_HA ssl crt $WORK/tls.pem alpn http/1.1
    backlog 4096
    default_backend be
backend be
    server up 127.0.0.1:$UP_PORT
EOF

port_of() { case "$1" in ringway-*|alt-*) echo "$P_RW" ;; nginx) echo "$P_NGX" ;; haproxy) echo "$P_HA" ;; esac; }
TPID=
start_target() {
    local tg=$1 out=$WORK/$1.out
    case "$tg" in
        ringway-uring|ringway-epoll|alt-uring|alt-epoll)
            local bin=$RINGWAY
            [[ $tg == alt-* ]] && bin=$ALT_BIN
            "${PIN_PROXY[@]}" "$bin" --config "$WORK/ringway.yaml" --workers 1 --io "${tg#*-}" \
                --admin "127.0.0.1:$P_ADMIN" --log-level warn >"$out" 2>&1 & ;;
        nginx) "${PIN_PROXY[@]}" nginx -c "$WORK/nginx.conf" >"$out" 2>&1 & ;;
        haproxy) "${PIN_PROXY[@]}" haproxy -db -f "$WORK/haproxy.cfg" >"$out" 2>&1 & ;;
    esac
    TPID=$!
    PIDS+=("$TPID")
    local port; port=$(port_of "$tg")
    wait_port "$port" "$TPID" 10 || { cat "$out" >&2; return 1; }
    local body
    body=$(curl -sk -m 5 "https://127.0.0.1:$port/") || true
    [ "$body" = "hello world" ] || { log "$tg answered '$body'"; cat "$out" >&2; return 1; }
    local c
    c=$(openssl s_client -connect "127.0.0.1:$port" </dev/null 2>/dev/null | awk '/^New,/ {print $2 $NF}')
    [ "$c" = "TLSv1.3,TLS_AES_128_GCM_SHA256" ] || { log "$tg negotiated $c"; return 1; }
}
stop_target() { [ -z "$TPID" ] || kill_tree "$TPID" 5; TPID=; }
metric() {  # metric NAME: its value on ringway's admin /metrics (no early exit in a pipe: pipefail)
    local all
    all=$(curl -s -m 5 "http://127.0.0.1:$P_ADMIN/metrics" || true)
    awk -v m="$1" 'index($0, m) == 1 {v = $2} END {print v + 0}' <<<"$all"
}

RES=$WORK/results.tsv
: >"$RES"
# row KIND TARGET ROUND: one measurement, appended to RES as
# kind target count seconds proxy_cpu_s extra
row() {
    local kind=$1 tg=$2 port count=0 secs=$DURATION extra="" c0 c1 pids out
    port=$(port_of "$tg")
    start_target "$tg" || { log "$kind/$tg: did not start"; stop_target; return 0; }
    pids=$(tree_pids "$TPID")
    case "$kind" in
        keepalive|resumed)
            local script=()
            [ "$kind" = resumed ] && script=(-s perf/wrk/close.lua)
            timeout -k 5 20 "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d1s "${script[@]}" "https://127.0.0.1:$port/" >/dev/null 2>&1
            sleep 1
            local r0=""; [[ $tg == ringway-* || $tg == alt-* ]] && r0=$(metric 'ringway_tls_handshakes_total{result="resumed"}')
            c0=$(cpu_ticks $pids)
            out=$(timeout -k 5 $((DURATION + 30)) "${PIN_LOAD[@]}" wrk -t1 -c"$CONNS" -d"${DURATION}s" "${script[@]}" \
                "https://127.0.0.1:$port/" 2>&1)
            c1=$(cpu_ticks $pids)
            local line; line=$(grep '^RWPERF' <<<"$out" || true)
            if [ -n "$line" ]; then
                count=$(sed 's/.*requests=\([0-9]*\).*/\1/' <<<"$line")
            else
                count=$(awk '/requests in/ {print $1}' <<<"$out")
            fi
            extra=$(awk '/Non-2xx|Socket errors/ {printf "%s ", $0}' <<<"$out")
            if [ -n "$r0" ]; then
                local r1; r1=$(metric 'ringway_tls_handshakes_total{result="resumed"}')
                extra="$extra resumed=$(( ${r1:-0} - ${r0:-0} ))"
            fi ;;
        full)
            c0=$(cpu_ticks $pids)
            local i
            for i in 1 2 3 4; do
                timeout -k 5 $((DURATION + 30)) "${PIN_LOAD[@]}" openssl s_time -connect "127.0.0.1:$port" -www / \
                    -new -time "$DURATION" >"$WORK/stime.$i" 2>&1 &
            done
            wait $(jobs -p | tail -n 4) 2>/dev/null || true
            c1=$(cpu_ticks $pids)
            count=$(cat "$WORK"/stime.* | awk '/connections in .* real seconds/ {s += $1} END {print s + 0}')
            extra="$(grep -h 'connections in .* real' "$WORK/stime.1" | head -n 1)" ;;
        idle)
            sleep 1
            local before after
            before=$(rss_kb $pids)
            "${PIN_LOAD[@]}" "$PY" - "$port" "$IDLE" "$WORK/idle.ready" "$WORK/idle.done" <<'EOF' &
import os, resource, socket, ssl, sys, time
port, n, ready, done = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
conns = []
for _ in range(n):
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
    conns.append(s)
open(ready, "w").close()
while not os.path.exists(done):
    time.sleep(0.1)
EOF
            local cpid=$!
            PIDS+=("$cpid")
            local w
            for w in $(seq 1 600); do [ -e "$WORK/idle.ready" ] && break; sleep 0.1; done
            sleep 2
            after=$(rss_kb $pids)
            touch "$WORK/idle.done"
            wait "$cpid" 2>/dev/null || true
            forget_pid "$cpid"
            rm -f "$WORK/idle.ready" "$WORK/idle.done"
            count=$IDLE; secs=0; c0=0; c1=0
            extra="rss_before_kb=$before rss_after_kb=$after" ;;
    esac
    stop_target
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$tg" "${count:-0}" "$secs" \
        "$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" 'BEGIN {printf "%.3f", t / hz}')" "$extra" >>"$RES"
    log "$kind/$tg: $(tail -n 1 "$RES" | cut -f3-)"
}

log "targets: ${TARGETS[*]}; $PINNING; $(nproc) CPUs"
for kind in $ONLY; do
    rounds=$ROUNDS
    [ "$kind" = idle ] && rounds=1
    for r in $(seq 1 "$rounds"); do
        for tg in "${TARGETS[@]}"; do row "$kind" "$tg"; done
    done
done

"$PY" - "$RES" "$DURATION" "$ROUNDS" "$CONNS" "$IDLE" <<'EOF'
import sys
from collections import defaultdict
rows = defaultdict(list)
order = []
for line in open(sys.argv[1]):
    kind, tg, count, secs, cpu, extra = (line.rstrip("\n").split("\t") + [""])[:6]
    if (kind, tg) not in rows:
        order.append((kind, tg))
    rows[(kind, tg)].append((int(count or 0), float(secs), float(cpu), extra))
def med(v):
    v = sorted(v)
    return v[len(v) // 2]
names = {"keepalive": f"keep-alive requests (wrk -c{sys.argv[4]})",
         "full": "full TLS 1.3 handshakes (openssl s_time -new x4, +1 request each)",
         "resumed": f"resumed TLS 1.3 handshakes (wrk -c{sys.argv[4]} Connection: close, +1 request each)"}
for kind in ("keepalive", "full", "resumed"):
    tgs = [t for k, t in order if k == kind]
    if not tgs:
        continue
    print(f"\n| {names[kind]}, {sys.argv[2]} s x {sys.argv[3]} rounds, median | per second | proxy CPU (cores) | per proxy CPU-second |")
    print("|---|---:|---:|---:|")
    best = {}
    for tg in tgs:
        per = [(c / cpu if cpu > 0 else 0.0, c / s if s else 0.0, cpu / s if s else 0.0, x) for c, s, cpu, x in rows[(kind, tg)]]
        m = med(per)
        best[tg] = m[0]
        spread = sorted(p[0] for p in per)
        note = f" ({m[3].strip()})" if m[3].strip() else ""
        print(f"| {tg}{note} | {m[1]:,.0f} | {m[2]:.2f} | {m[0]:,.0f} ({spread[0]:,.0f}-{spread[-1]:,.0f}) |")
    for rw in ("ringway-uring", "ringway-epoll", "alt-uring", "alt-epoll"):
        if rw in best:
            ratios = ", ".join(f"{best[rw] / best[o]:.2f}x {o}" for o in ("nginx", "haproxy") if best.get(o))
            print(f"\n{rw}: {ratios}")
idle = [(t, rows[("idle", t)][0]) for k, t in order if k == "idle"]
if idle:
    print(f"\n| idle TLS connections ({sys.argv[5]}) | RSS before (KiB) | after (KiB) | per connection (bytes) |")
    print("|---|---:|---:|---:|")
    for tg, (n, _, _, x) in idle:
        kv = dict(p.split("=") for p in x.split())
        b, a = int(kv["rss_before_kb"]), int(kv["rss_after_kb"])
        print(f"| {tg} | {b:,} | {a:,} | {(a - b) * 1024 / n:,.0f} |")
EOF
