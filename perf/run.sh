#!/usr/bin/env bash
# ringway benchmark harness: ringway (io_uring and epoll) side by side with
# nginx, HAProxy (and h2o, Caddy when installed) in front of one nginx
# upstream, plus per-request instruction, syscall and idle-RSS counts.
# See perf/README.md for what every number means.
#
#   perf/run.sh [--quick] [--scenario NAME ...] [--duration S] [--requests N]
#               [--out DIR] [--with-optional] [--no-install]
#
# Scenarios (default: all of them):
#   small      GET /, 12-byte body, 64 keep-alive connections
#   1k         GET /1k, 1 KiB body
#   64k        GET /64k, 64 KiB body
#   post16k    POST /post with a 16 KiB request body
#   c10k       10,000 concurrent keep-alive connections (latency, peak RSS)
#   newconn    a new TCP connection per request (Connection: close)
#   jwt        small body, every request carries an HS256 bearer token that the
#              proxy verifies (signature, iss, aud, exp) and maps sub to a header
#   ratelimit  small body under a per-client-address rate limit that never trips
#   metrics    small body while each proxy's metrics endpoint is scraped every
#              second (ringway /metrics, nginx stub_status, HAProxy Prometheus)
#   instructions  user-space instructions per request (valgrind --tool=callgrind)
#   syscalls   syscalls per request (strace -c -f; perf stat as a cross-check)
#   idle-rss   RSS per idle keep-alive connection (10,000 idle connections)
#   hotspots   callgrind_annotate and perf-record top functions for ringway
#
# --quick: 2 s per row, only "small" (unless --scenario is given), results
# named *-quick.* (git-ignored). Full runs write perf/results/DATE-HHMM.{md,png,tsv}.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PERF="$ROOT/perf"
CMDLINE="perf/run.sh${*:+ $*}"

QUICK=0
DURATION=""
SCENARIOS=()
REQUESTS=""
OUT="$PERF/results"
INSTALL=1
WITH_OPTIONAL=0
ALL_SCENARIOS=(small 1k 64k post16k c10k newconn jwt ratelimit metrics instructions syscalls idle-rss hotspots)

usage() { sed -n '2,29p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --duration) DURATION=${2:?--duration needs seconds}; shift ;;
        --duration=*) DURATION=${1#*=} ;;
        --scenario) shift
            while [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; do SCENARIOS+=("$1"); shift; done
            continue ;;
        --scenario=*) SCENARIOS+=("${1#*=}") ;;
        --requests) REQUESTS=${2:?--requests needs a count}; shift ;;
        --out) OUT=${2:?--out needs a folder}; shift ;;
        --no-install) INSTALL=0 ;;
        --with-optional) WITH_OPTIONAL=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
for s in "${SCENARIOS[@]}"; do
    case " ${ALL_SCENARIOS[*]} " in *" $s "*) ;; *) echo "run.sh: unknown scenario '$s' (${ALL_SCENARIOS[*]})" >&2; exit 2 ;; esac
done
if [ ${#SCENARIOS[@]} -eq 0 ]; then
    if [ $QUICK = 1 ]; then SCENARIOS=(small); else SCENARIOS=("${ALL_SCENARIOS[@]}"); fi
fi
[ -n "$DURATION" ] || { [ $QUICK = 1 ] && DURATION=2 || DURATION=5; }
[ -n "$REQUESTS" ] || { [ $QUICK = 1 ] && REQUESTS=2000 || REQUESTS=20000; }
case "$DURATION$REQUESTS" in *[!0-9]*) echo "run.sh: --duration and --requests take whole numbers" >&2; exit 2 ;; esac
want() { case " ${SCENARIOS[*]} " in *" $1 "*) return 0 ;; esac; return 1; }

# Fixed benchmark settings, identical for every target in a scenario.
WRK_THREADS=1
WRK_CONNS=64
C10K_CONNS=10000
IDLE_CONNS=10000
FIXED_CONNS=64        # connections of the fixed-count client (instructions, syscalls)
WARMUP=1              # seconds of wrk before each measured row (not recorded)

. "$PERF/lib.sh"   # log, die, WORK and PIDS cleaned up on exit, ports, CPU split, build, upstream, counters
perf_init run

# ---------------------------------------------------------------- packages
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
apt_install() {
    [ $# -gt 0 ] || return 0
    if [ "$(id -u)" -ne 0 ]; then log "missing packages: $* (run as root or install them)"; return 1; fi
    log "apt-get install $*"
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 ||
        { timeout 300 apt-get update -qq >/dev/null 2>&1; timeout 600 apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1; }
}
install_tools() {
    local need=() p
    "$ROOT/scripts/install-deps.sh" || die "cannot install ringway's build dependencies"
    pkg_installed nginx-light || pkg_installed nginx || pkg_installed nginx-core || pkg_installed nginx-full || need+=(nginx-light)
    for p in wrk haproxy valgrind strace python3 curl procps; do pkg_installed "$p" || need+=("$p"); done
    command -v gnuplot >/dev/null || need+=(gnuplot-nox)
    command -v perf >/dev/null || need+=(linux-perf)   # optional: syscall cross-check, kernel-side hot spots
    apt_install "${need[@]}" || log "some packages could not be installed: ${need[*]}"
    if [ $WITH_OPTIONAL = 1 ]; then
        need=()
        command -v h2o >/dev/null || need+=(h2o)
        command -v caddy >/dev/null || need+=(caddy)
        apt_install "${need[@]}" || log "optional proxies not installed: ${need[*]}"
    fi
    # Debian packages may start their services on install (nginx on :80); the
    # harness never uses those, it runs its own instances on free ports.
    if command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now nginx haproxy h2o caddy >/dev/null 2>&1 || true
    fi
}
[ $INSTALL = 1 ] && install_tools
need_tools "required; run.sh installs it without --no-install" nginx wrk python3 curl

# ---------------------------------------------------------------- build
log "building release ringway in build-perf"
cd "$ROOT" || exit 1
RINGWAY_G=""
if want instructions || want hotspots; then
    # The same release build with -g (identical code, GCC's -g does not change
    # code generation), so callgrind_annotate can name file:function.
    build_ringway build-perf-g -Dtests=false -Dc_args=-g || die "building build-perf-g failed"
    RINGWAY_G=$RINGWAY
fi
build_ringway build-perf -Dtests=false || die "building build-perf failed"
RINGWAY_G=${RINGWAY_G:-$RINGWAY}

# ---------------------------------------------------------------- environment
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[ "$NOFILE" -ge $((C10K_CONNS + 2000)) ] || log "warning: open-file limit $NOFILE is low for 10,000 connections"
NCPU=$(nproc)
split_cpus   # PROXY_CPU, LOAD_CPUS, PIN_PROXY, PIN_LOAD, PINNING

read -r UP_PORT P_URING P_EPOLL P_NGINX P_HAPROXY P_H2O P_CADDY P_ADMIN P_NGX_STATS P_HA_STATS <<<"$(free_ports 10)"

TARGETS=(direct ringway-uring ringway-epoll nginx)
command -v haproxy >/dev/null && TARGETS+=(haproxy) || log "haproxy not installed: skipped"
command -v h2o >/dev/null && TARGETS+=(h2o) || log "h2o not installed: skipped (--with-optional installs it)"
command -v caddy >/dev/null && TARGETS+=(caddy) || log "caddy not installed: skipped (--with-optional installs it)"
if [ -n "${RW_TARGETS:-}" ]; then   # development aid: RW_TARGETS="direct ringway-uring nginx"
    keep=(); for t in "${TARGETS[@]}"; do case " $RW_TARGETS " in *" $t "*) keep+=("$t") ;; esac; done; TARGETS=("${keep[@]}")
fi

# ---------------------------------------------------------------- configs
mkdir -p "$WORK/caddy"
# The upstream (nginx_upstream_conf in lib.sh) is written and started by
# start_nginx_upstream below; NGX_USER and NGX_TEMPS come from perf_init.

nginx_proxy_conf() {   # $1 = master_process on|off
    cat <<EOF
# nginx as a reverse proxy: one worker, upstream keep-alive as the nginx
# documentation recommends (keepalive in the upstream block, HTTP/1.1,
# an empty Connection header). Everything else is the default.
$NGX_USER
worker_processes 1;
daemon off;
master_process $1;
pid $WORK/nginx-$1.pid;
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
        listen 127.0.0.1:$P_NGINX backlog=4096;
        client_max_body_size 1m;
        # The default (16k) spills a 16 KiB POST body to a temporary file,
        # which costs 40 ms stalls (about 3,000 req/s); keep it in memory.
        client_body_buffer_size 64k;
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
}
nginx_proxy_conf on >"$WORK/nginx.conf"
nginx_proxy_conf off >"$WORK/nginx-cg.conf"

cat >"$WORK/ringway.yaml" <<EOF
# ringway: one service (the upstream), one prefix route. The port is given on
# the command line so the io_uring and epoll instances can differ.
http:
  keepalive_timeout: 300s
access_log: {path: "off"}   # like the other proxies here (nginx: access_log off)
services:
  - name: upstream
    keepalive: {max_idle: 64, idle_timeout: 300s}
    instances: ["127.0.0.1:$UP_PORT"]
routes:
  - name: all
    paths: [{prefix: /}]
    service: upstream
EOF

# The feature scenarios (jwt, ratelimit, metrics): the same proxies with one
# feature on, configured alike where the proxy has the feature.
JWT_SECRET=perf-secret-0123456789abcdef0123456789
JWT_TOKEN=$(python3 - "$JWT_SECRET" <<'EOF'
import base64, hashlib, hmac, json, sys, time
def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")
now = int(time.time())
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "user-42", "iss": "https://issuer.test/", "aud": "perf",
                       "exp": now + 86400, "iat": now}).encode())
sig = b64(hmac.new(sys.argv[1].encode(), head + b"." + body, hashlib.sha256).digest())
print((head + b"." + body + b"." + sig).decode())
EOF
)
export RW_PERF_TOKEN=$JWT_TOKEN   # perf/wrk/jwt.lua sends it
ringway_feature() {  # ringway_feature FILTER_YAML: the base config with route filters
    sed '/^    service: upstream$/q' "$WORK/ringway.yaml"
    printf '    filters:\n%s\n' "$1"
}
ringway_feature "      - jwt: {keys: [{alg: HS256, secret: \"$JWT_SECRET\"}], issuer: \"https://issuer.test/\", audience: perf,
              claims_to_headers: {sub: X-User-ID}}" >"$WORK/ringway-jwt.yaml"
ringway_feature "      - rate_limit: {key: ip, rate: 1000000000/s}" >"$WORK/ringway-ratelimit.yaml"
cp "$WORK/ringway.yaml" "$WORK/ringway-metrics.yaml"   # counters are always on; the scenario scrapes them
sed -e 's|^    upstream backend {|    limit_req_zone $binary_remote_addr zone=perf:10m rate=100000000r/s;\n    upstream backend {|' \
    -e 's|^        location / {|        limit_req zone=perf burst=100000 nodelay;\n        location / {|' \
    "$WORK/nginx.conf" >"$WORK/nginx-ratelimit.conf"
sed -e "s|^    upstream backend {|    server { listen 127.0.0.1:$P_NGX_STATS; location = /metrics { stub_status; } }\n    upstream backend {|" \
    "$WORK/nginx.conf" >"$WORK/nginx-metrics.conf"

HAPROXY_MAXCONN=$(( (NOFILE - 200) / 2 ))
[ $HAPROXY_MAXCONN -gt 20000 ] && HAPROXY_MAXCONN=20000
cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn $HAPROXY_MAXCONN
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
    http-reuse always
frontend fe
    bind 127.0.0.1:$P_HAPROXY
    backlog 4096
    default_backend be
backend be
    server up 127.0.0.1:$UP_PORT
EOF
# HAProxy 2.6: jwt_verify checks the signature; iss, aud and exp by hand,
# sub copied to a header (a client-sent one removed first), as ringway does.
haproxy_feature() {  # haproxy_feature RULES_FILE: the base config with frontend rules before default_backend
    awk -v rules="$1" '/^    default_backend be$/ { while ((getline l < rules) > 0) print l } { print }' "$WORK/haproxy.cfg"
}
cat >"$WORK/haproxy-jwt.rules" <<EOF
    http-request set-var(txn.bearer) http_auth_bearer
    http-request deny deny_status 401 unless { var(txn.bearer),jwt_header_query('\$.alg') -m str HS256 }
    http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify("HS256","$JWT_SECRET") -m int 1 }
    http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('\$.iss') -m str https://issuer.test/ }
    http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('\$.aud') -m str perf }
    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('\$.exp','int')
    http-request set-var(txn.now) date
    http-request deny deny_status 401 if { var(txn.exp),sub(txn.now) -m int le 0 }
    http-request del-header X-User-ID
    http-request set-header X-User-ID %[var(txn.bearer),jwt_payload_query('\$.sub')]
EOF
haproxy_feature "$WORK/haproxy-jwt.rules" >"$WORK/haproxy-jwt.cfg"
cat >"$WORK/haproxy-ratelimit.rules" <<EOF
    stick-table type ip size 100k expire 30s store http_req_rate(1s)
    http-request track-sc0 src
    http-request deny deny_status 429 if { sc_http_req_rate(0) gt 1000000000 }
EOF
haproxy_feature "$WORK/haproxy-ratelimit.rules" >"$WORK/haproxy-ratelimit.cfg"
cp "$WORK/haproxy.cfg" "$WORK/haproxy-metrics.cfg"
cat >>"$WORK/haproxy-metrics.cfg" <<EOF
frontend stats
    bind 127.0.0.1:$P_HA_STATS
    http-request use-service prometheus-exporter if { path /metrics }
EOF

cat >"$WORK/h2o.conf" <<EOF
num-threads: 1
max-connections: $((NOFILE - 200))
pid-file: $WORK/h2o.pid
error-log: $WORK/h2o.err
$( [ "$(id -u)" -eq 0 ] && echo "user: root" )
proxy.timeout.keepalive: 300000
listen:
  host: 127.0.0.1
  port: $P_H2O
hosts:
  default:
    paths:
      /:
        proxy.reverse.url: http://127.0.0.1:$UP_PORT/
EOF

cat >"$WORK/Caddyfile" <<EOF
{
    admin off
    auto_https off
}
http://:$P_CADDY {
    bind 127.0.0.1
    reverse_proxy 127.0.0.1:$UP_PORT
}
EOF

# ---------------------------------------------------------------- helpers
port_of() {
    case "$1" in
        direct) echo "$UP_PORT" ;; ringway-uring) echo "$P_URING" ;; ringway-epoll) echo "$P_EPOLL" ;;
        nginx) echo "$P_NGINX" ;; haproxy) echo "$P_HAPROXY" ;; h2o) echo "$P_H2O" ;; caddy) echo "$P_CADDY" ;;
    esac
}
# start_target NAME [wrapper...]: start the proxy pinned to the proxy CPU; sets TPID.
TPID=""
start_target() {
    local name=$1; shift
    local out="$WORK/$name.out"
    case "$name" in
        direct) TPID=$UP_PID; return 0 ;;
        ringway-uring) "${PIN_PROXY[@]}" "$@" "$RINGWAY" --config "$WORK/ringway$FEATURE.yaml" --listen "127.0.0.1:$P_URING" --admin "127.0.0.1:$P_ADMIN" --workers 1 --io uring --log-level warn >"$out" 2>&1 & ;;
        ringway-epoll) "${PIN_PROXY[@]}" "$@" "$RINGWAY" --config "$WORK/ringway$FEATURE.yaml" --listen "127.0.0.1:$P_EPOLL" --admin "127.0.0.1:$P_ADMIN" --workers 1 --io epoll --log-level warn >"$out" 2>&1 & ;;
        nginx) "${PIN_PROXY[@]}" "$@" nginx -c "$WORK/nginx$FEATURE.conf" >"$out" 2>&1 & ;;
        haproxy) "${PIN_PROXY[@]}" "$@" haproxy -db -f "$WORK/haproxy$FEATURE.cfg" >"$out" 2>&1 & ;;
        h2o) "${PIN_PROXY[@]}" "$@" h2o -c "$WORK/h2o.conf" >"$out" 2>&1 & ;;
        caddy) HOME="$WORK/caddy" XDG_DATA_HOME="$WORK/caddy" XDG_CONFIG_HOME="$WORK/caddy" GOMAXPROCS=1 \
               "${PIN_PROXY[@]}" "$@" caddy run --config "$WORK/Caddyfile" --adapter caddyfile >"$out" 2>&1 & ;;
        *) die "unknown target $name" ;;
    esac
    TPID=$!
    PIDS+=("$TPID")
    if ! wait_port "$(port_of "$name")" "$TPID" 30; then
        log "$name did not start: $(tail -n 3 "$out" | tr '\n' ' ')"
        kill_tree "$TPID" 2; TPID=""; return 1
    fi
    return 0
}
FEATURE=""   # "", -jwt, -ratelimit or -metrics: which config variant start_target uses
JWT_HDR=""
# unsupported SCENARIO TARGET: why the target has no row in a feature scenario ("" when it has one)
unsupported() {
    case "$1/$2" in
        jwt/nginx) echo "Debian's nginx cannot validate JWTs (nginx Plus and njs scripting only)" ;;
        jwt/h2o|jwt/caddy|ratelimit/h2o|ratelimit/caddy|metrics/h2o|metrics/caddy) echo "not configured in this harness" ;;
    esac
}
metrics_url() {
    case "$1" in
        ringway-*) echo "http://127.0.0.1:$P_ADMIN/metrics" ;; nginx) echo "http://127.0.0.1:$P_NGX_STATS/metrics" ;;
        haproxy) echo "http://127.0.0.1:$P_HA_STATS/metrics" ;;
    esac
}
stop_target() { [ "$1" = direct ] || [ -z "$TPID" ] || kill_tree "$TPID" 5; TPID=""; }
sanity() {  # the proxy answers the upstream's body
    local body
    body=$(curl -s -m 5 ${JWT_HDR:+-H "$JWT_HDR"} "http://127.0.0.1:$(port_of "$1")/")
    [ "$body" = "hello world" ] || { log "$1 answered '${body:0:80}' instead of 'hello world'"; return 1; }
}
# server-under-test process (for CPU and RSS): the proxy, or the upstream for "direct"
server_pids() { [ "$1" = direct ] && tree_pids "$UP_PID" || tree_pids "$TPID"; }

# ---------------------------------------------------------------- wrk rows
ROWS="$WORK/rows.tsv"
METRICS="$WORK/metrics.tsv"
: >"$ROWS"; : >"$METRICS"
scenario_args() {   # -> path script conns
    case "$1" in
        small) echo "/ report.lua $WRK_CONNS" ;;
        1k) echo "/1k report.lua $WRK_CONNS" ;;
        64k) echo "/64k report.lua $WRK_CONNS" ;;
        post16k) echo "/post post16k.lua $WRK_CONNS" ;;
        c10k) echo "/ report.lua $C10K_CONNS" ;;
        newconn) echo "/ close.lua $WRK_CONNS" ;;
        jwt) echo "/ jwt.lua $WRK_CONNS" ;;
        ratelimit|metrics) echo "/ report.lua $WRK_CONNS" ;;
    esac
}
kv() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$2"; }
children_ms() {  # CPU time (user+sys, ms) of this shell's reaped children so far
    times >"$WORK/times"   # not in a pipe or $(): a subshell has children of its own
    tail -n 1 "$WORK/times" | awk '{ split($1, a, /[ms]/); split($2, b, /[ms]/); printf "%d", (a[1] * 60 + a[2] + b[1] * 60 + b[2]) * 1000 }'
}
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4}' /proc/stat; }   # user+nice+system, all CPUs
other_cores() {  # busy cores over one second (call when nothing of ours runs)
    local b0 b1; b0=$(busy_ticks); sleep 1; b1=$(busy_ticks)
    awk -v d=$((b1 - b0)) -v hz="$CLK_TCK" 'BEGIN {printf "%.2f", d / hz}'
}
wait_quiet() {  # wait_quiet SECONDS: wait until other processes use less than RW_MAX_OTHER cores
    local limit=$1 end c
    end=$(( $(date +%s) + limit ))
    while :; do
        c=$(other_cores)
        awk -v c="$c" -v m="$MAX_OTHER" 'BEGIN {exit !(c < m)}' && { QUIET=$c; return 0; }
        if [ "$(date +%s)" -ge "$end" ]; then log "other processes still use $c cores: measuring anyway"; QUIET=$c; return 1; fi
        log "other processes use $c cores (over $MAX_OTHER): waiting (up to ${limit}s)"
        sleep 4
    done
}
MAX_OTHER=${RW_MAX_OTHER:-0.25}
QUIET_WAIT=${RW_QUIET_WAIT:-120}

# measure_row SCENARIO TARGET: one wrk row; sets ROW (a rows.tsv line) and ROW_OTHER
measure_row() {
    local sc=$1 tg=$2 path script conns port out line spids upids c0 c1 u0 u1 w0 w1 b0 b1 sampler t0 t1
    ROW=""; ROW_OTHER=0
    read -r path script conns <<<"$(scenario_args "$sc")"
    port=$(port_of "$tg")
    local why scraper=""
    why=$(unsupported "$sc" "$tg")
    if [ -n "$why" ]; then
        ROW=$(printf '%s\t%s\tskipped\t%s' "$sc" "$tg" "$why"); return
    fi
    FEATURE=""; JWT_HDR=""
    case "$sc" in jwt|ratelimit|metrics) [ "$tg" = direct ] || FEATURE="-$sc" ;; esac
    [ "$sc" = jwt ] && JWT_HDR="Authorization: Bearer $JWT_TOKEN"
    if ! start_target "$tg"; then
        ROW=$(printf '%s\t%s\tfailed\tdid not start' "$sc" "$tg"); return
    fi
    if ! sanity "$tg"; then
        ROW=$(printf '%s\t%s\tfailed\twrong answer' "$sc" "$tg"); stop_target "$tg"; return
    fi
    if [ "$sc" = metrics ] && [ "$tg" != direct ]; then
        local murl; murl=$(metrics_url "$tg")
        if ! curl -sf -m 5 -o /dev/null "$murl"; then
            ROW=$(printf '%s\t%s\tfailed\tno metrics at %s' "$sc" "$tg" "$murl"); stop_target "$tg"; return
        fi
        # a scraper as Prometheus would be, once a second, on the load CPU
        ( while :; do curl -s -m 2 -o /dev/null "$murl"; sleep 1; done ) &
        scraper=$!
        PIDS+=("$scraper")
    fi
    local url="http://127.0.0.1:$port$path"
    # warm-up: upstream pools, page faults, caches (64 connections, not recorded)
    timeout -k 5 $((WARMUP + 20)) "${PIN_LOAD[@]}" wrk -t$WRK_THREADS -c$WRK_CONNS -d${WARMUP}s -s "$PERF/wrk/$script" "$url" >/dev/null 2>&1
    # let the connections wrk dropped mid-request close on every side first:
    # measuring at once gave 0.5 s stalls (p99) and half the throughput
    sleep 1
    spids=$(server_pids "$tg")
    upids=$(tree_pids "$UP_PID")
    echo 0 >"$WORK/rss.max"
    ( max=0; while :; do r=$(rss_kb $spids); [ "$r" -gt "$max" ] && { max=$r; echo "$max" >"$WORK/rss.max"; }; sleep 0.2; done ) &
    sampler=$!
    PIDS+=("$sampler")
    c0=$(cpu_ticks $spids); u0=$(cpu_ticks $upids); children_ms >"$WORK/w0"; w0=$(cat "$WORK/w0"); b0=$(busy_ticks); t0=$(date +%s%N)
    out=$(timeout -k 5 $((DURATION + 60)) "${PIN_LOAD[@]}" wrk -t$WRK_THREADS -c"$conns" -d"${DURATION}s" --latency -s "$PERF/wrk/$script" "$url" 2>&1)
    t1=$(date +%s%N); b1=$(busy_ticks); children_ms >"$WORK/w1"; w1=$(cat "$WORK/w1"); c1=$(cpu_ticks $spids); u1=$(cpu_ticks $upids)
    kill_tree "$sampler" 1
    if [ "$tg" != direct ] && ! proc_alive "$TPID"; then
        local st; wait "$TPID" 2>/dev/null; st=$?
        log "$sc/$tg: the proxy exited during the run (status $st)"
        ROW=$(printf '%s\t%s\tfailed\tthe proxy exited during the run (status %s)' "$sc" "$tg" "$st")
        forget_pid "$TPID"; TPID=""; return
    fi
    line=$(grep '^RWPERF' <<<"$out")
    printf '%s\n' "$out" >"$WORK/wrk-$sc-$tg.txt"
    if [ -z "$line" ]; then
        log "$sc/$tg: wrk gave no result: $(tail -n 2 <<<"$out" | tr '\n' ' ')"
        ROW=$(printf '%s\t%s\tfailed\twrk gave no result' "$sc" "$tg")
    else
        local req dur sockerr wall cpu ucpu wcpu rss pcpu_ticks
        req=$(kv requests "$line"); dur=$(kv duration_us "$line")
        sockerr=$(( $(kv connect "$line") + $(kv read "$line") + $(kv write "$line") + $(kv timeout "$line") ))
        wall=$(( (t1 - t0) / 1000 ))
        cpu=$(awk -v c=$((c1 - c0)) -v hz="$CLK_TCK" -v w=$wall 'BEGIN {printf "%.3f", c / hz / (w / 1e6)}')
        ucpu=$(awk -v c=$((u1 - u0)) -v hz="$CLK_TCK" -v w=$wall 'BEGIN {printf "%.3f", c / hz / (w / 1e6)}')
        wcpu=$(awk -v c=$((w1 - w0)) -v w=$wall 'BEGIN {printf "%.3f", c / 1000 / (w / 1e6)}')
        pcpu_ticks=$((c1 - c0)); [ "$tg" = direct ] && pcpu_ticks=0
        # CPU the rest of the machine used during the row: everything busy
        # minus the proxy, the upstream and wrk
        ROW_OTHER=$(awk -v b=$((b1 - b0)) -v p=$pcpu_ticks -v u=$((u1 - u0)) -v wr="$wcpu" -v hz="$CLK_TCK" -v w=$wall \
            'BEGIN {o = (b - p - u) / hz / (w / 1e6) - wr; if (o < 0) o = 0; printf "%.2f", o}')
        rss=$(cat "$WORK/rss.max")
        # scenario target status rps p50 p99 p99.9 socket_errors status_errors requests duration_us
        # server_cpu upstream_cpu rss_peak_kb wrk_cpu other_cpu
        ROW=$(printf '%s\t%s\tok\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$sc" "$tg" \
            "$(awk -v r="$req" -v d="$dur" 'BEGIN {printf "%.1f", r / (d / 1e6)}')" \
            "$(kv p50_us "$line")" "$(kv p99_us "$line")" "$(kv p999_us "$line")" \
            "$sockerr" "$(kv status "$line")" "$req" "$dur" "$cpu" "$ucpu" "$rss" "$wcpu" "$ROW_OTHER")
        log "$sc/$tg: $(awk -v r="$req" -v d="$dur" 'BEGIN {printf "%.0f", r / (d / 1e6)}') req/s, p99 $(kv p99_us "$line") us, errors $sockerr+$(kv status "$line"), CPU: server $cpu, upstream $ucpu, wrk $wcpu, other $ROW_OTHER"
    fi
    [ -n "$scraper" ] && kill_tree "$scraper" 1
    stop_target "$tg"
    FEATURE=""; JWT_HDR=""
}
# run_row SCENARIO TARGET: measure_row, measured again once (after waiting for
# quiet) when other processes took more than RW_MAX_OTHER cores during it
run_row() {
    measure_row "$1" "$2"
    if awk -v c="$ROW_OTHER" -v m="$MAX_OTHER" 'BEGIN {exit !(c >= m)}'; then
        log "$1/$2: other processes used $ROW_OTHER cores during the row: measuring it again"
        wait_quiet 60
        measure_row "$1" "$2"
    fi
    printf '%s\n' "$ROW" >>"$ROWS"
}

# ---------------------------------------------------------------- fixed-count client
loadgen() {  # loadgen PORT N -> prints the result line, returns its status
    timeout -k 5 300 "${PIN_LOAD[@]}" python3 "$PERF/loadgen.py" fixed --port "$1" --requests "$2" --conns "$FIXED_CONNS" --timeout 280
}
metric() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$METRICS"; }

# ---------------------------------------------------------------- instructions (callgrind)
callgrind_run() {  # callgrind_run TARGET N OUTFILE: sets CG_IR to the total Ir (empty on failure)
    local tg=$1 n=$2 of=$3 pid port res i
    CG_IR=""
    rm -f "$of"
    local vg=(timeout -k 5 600 valgrind --tool=callgrind --callgrind-out-file="$of" --trace-children=no)
    case "$tg" in
        ringway-*)
            port=$(port_of "$tg")
            "${PIN_PROXY[@]}" "${vg[@]}" "$RINGWAY_G" --config "$WORK/ringway.yaml" --listen "127.0.0.1:$port" --workers 1 --io "${tg#ringway-}" --log-level warn >"$WORK/cg-$tg.out" 2>&1 & ;;
        nginx)
            port=$P_NGINX
            "${PIN_PROXY[@]}" "${vg[@]}" nginx -c "$WORK/nginx-cg.conf" >"$WORK/cg-$tg.out" 2>&1 & ;;
    esac
    pid=$!
    PIDS+=("$pid")
    if ! wait_port "$port" "$pid" 60; then
        log "callgrind $tg: did not start: $(tail -n 3 "$WORK/cg-$tg.out" | tr '\n' ' ')"; kill_tree "$pid" 2; return
    fi
    if [ "$n" -gt 0 ]; then
        res=$(loadgen "$port" "$n") || log "callgrind $tg: client: $res"
    fi
    sleep 0.3
    kill -TERM "$pid" 2>/dev/null
    for ((i = 0; i < 300; i++)); do proc_alive "$pid" || break; sleep 0.1; done
    if proc_alive "$pid"; then
        log "callgrind $tg: did not exit after SIGTERM (30 s)"; kill_tree "$pid" 1; return
    fi
    kill_tree "$pid" 1
    CG_IR=$(awk '/^(summary|totals):/ {print $2; exit}' "$of" 2>/dev/null)
}
measure_instructions() {
    command -v valgrind >/dev/null || { log "valgrind not installed: instructions skipped"; return; }
    local tg a b n=$REQUESTS
    # io_uring under valgrind 3.19: requests are served, but the worker's
    # blocking io_uring_enter keeps valgrind's thread lock, so the control
    # thread (signals, start-up log) starves and SIGTERM is never handled.
    # The count is taken on epoll (RW_CALLGRIND_TRY_URING=1 tries io_uring).
    local rtargets=(ringway-epoll)
    [ "${RW_CALLGRIND_TRY_URING:-0}" = 1 ] && rtargets=(ringway-uring ringway-epoll)
    for tg in "${rtargets[@]}" nginx; do
        log "callgrind $tg: $n requests, then start-up only"
        callgrind_run "$tg" "$n" "$WORK/callgrind.$tg.N"; a=$CG_IR
        callgrind_run "$tg" 0 "$WORK/callgrind.$tg.0"; b=$CG_IR
        if [ -n "$a" ] && [ -n "$b" ]; then
            metric instructions "$tg" "$(awk -v a="$a" -v b="$b" -v n="$n" 'BEGIN {printf "%.0f", (a - b) / n}')" "Ir with $n requests: $a; start-up and shutdown only: $b"
            log "callgrind $tg: $(( (a - b) / n )) instructions per request"
        else
            metric instructions "$tg" "" "callgrind run failed"
        fi
    done
}

# ---------------------------------------------------------------- syscalls (strace, perf stat)
measure_syscalls() {
    command -v strace >/dev/null || { log "strace not installed: syscalls skipped"; return; }
    local tg n=$REQUESTS pid spid res total port
    for tg in ringway-uring ringway-epoll nginx; do
        start_target "$tg" || { metric syscalls_strace "$tg" "" "did not start"; continue; }
        port=$(port_of "$tg")
        pid=$TPID
        [ "$tg" = nginx ] && pid=$(pgrep -P "$TPID" | head -n 1)   # the worker
        loadgen "$port" 2000 >/dev/null   # warm-up: upstream pool, buffers
        # strace -c -f over exactly N requests
        : >"$WORK/strace.err"
        timeout -k 5 600 strace -c -f -p "$pid" -o "$WORK/strace.$tg" 2>"$WORK/strace.err" &
        spid=$!
        PIDS+=("$spid")
        local i
        for ((i = 0; i < 50; i++)); do grep -q attached "$WORK/strace.err" && break; sleep 0.1; done
        sleep 0.3
        res=$(loadgen "$port" "$n") || log "strace $tg: client: $res"
        sleep 0.2
        kill -INT "$spid" 2>/dev/null
        for ((i = 0; i < 100; i++)); do proc_alive "$spid" || break; sleep 0.1; done
        kill_tree "$spid" 1
        total=$(awk '$NF == "total" {print $4}' "$WORK/strace.$tg")
        if [ -n "$total" ]; then
            metric syscalls_strace "$tg" "$(awk -v t="$total" -v n="$n" 'BEGIN {printf "%.3f", t / n}')" \
                "$(awk -v n="$n" 'NR > 2 && $NF != "total" && $1 !~ /^-/ && NF >= 5 {printf "%s%s %.3f", sep, $NF, $4 / n; sep = ", "}' "$WORK/strace.$tg")"
            log "strace $tg: $total syscalls for $n requests"
        else
            metric syscalls_strace "$tg" "" "strace gave no summary"
        fi
        # perf stat on the raw_syscalls:sys_enter tracepoint: same count without
        # ptrace slowing every syscall (which changes how much io_uring batches)
        if command -v perf >/dev/null; then
            rm -f "$WORK/perfstat.$tg"
            timeout -k 5 600 perf stat -x, -e raw_syscalls:sys_enter -p "$pid" -o "$WORK/perfstat.$tg" >/dev/null 2>&1 &
            spid=$!
            PIDS+=("$spid")
            sleep 0.5
            res=$(loadgen "$port" "$n") || log "perf stat $tg: client: $res"
            sleep 0.2
            kill -INT "$spid" 2>/dev/null
            for ((i = 0; i < 50; i++)); do proc_alive "$spid" || break; sleep 0.1; done
            kill_tree "$spid" 1
            total=$(awk -F, '/raw_syscalls/ {print $1; exit}' "$WORK/perfstat.$tg" 2>/dev/null)
            case "$total" in
                ''|*[!0-9]*) metric syscalls_perf "$tg" "" "perf stat gave no count" ;;
                *) metric syscalls_perf "$tg" "$(awk -v t="$total" -v n="$n" 'BEGIN {printf "%.3f", t / n}')" "$total syscalls for $n requests" ;;
            esac
            # the same under wrk's saturating load (64 connections, small body):
            # what the throughput rows pay, batching included
            rm -f "$WORK/perfstat-wrk.$tg"
            timeout -k 5 600 perf stat -x, -e raw_syscalls:sys_enter -p "$pid" -o "$WORK/perfstat-wrk.$tg" >/dev/null 2>&1 &
            spid=$!
            PIDS+=("$spid")
            sleep 0.5
            local wout wreq
            wout=$(timeout -k 5 $((DURATION + 30)) "${PIN_LOAD[@]}" wrk -t$WRK_THREADS -c$WRK_CONNS -d"${DURATION}s" -s "$PERF/wrk/report.lua" "http://127.0.0.1:$port/" 2>&1)
            sleep 0.2
            kill -INT "$spid" 2>/dev/null
            for ((i = 0; i < 50; i++)); do proc_alive "$spid" || break; sleep 0.1; done
            kill_tree "$spid" 1
            total=$(awk -F, '/raw_syscalls/ {print $1; exit}' "$WORK/perfstat-wrk.$tg" 2>/dev/null)
            wreq=$(kv requests "$(grep '^RWPERF' <<<"$wout")")
            case "$total$wreq" in
                ''|*[!0-9]*) metric syscalls_wrk "$tg" "" "perf stat under wrk gave no count" ;;
                *) metric syscalls_wrk "$tg" "$(awk -v t="$total" -v n="$wreq" 'BEGIN {printf "%.3f", t / n}')" "$total syscalls for $wreq requests (wrk -c$WRK_CONNS -d${DURATION}s)" ;;
            esac
        fi
        stop_target "$tg"
    done
}

# ---------------------------------------------------------------- idle RSS
measure_idle_rss() {
    local tg pids r0 r1 lpid held port i
    for tg in "${TARGETS[@]}"; do
        [ "$tg" = direct ] && continue
        start_target "$tg" || { metric idle_rss "$tg" "" "did not start"; continue; }
        port=$(port_of "$tg")
        loadgen "$port" 2000 >/dev/null   # warm: upstream pool, first buffers
        sleep 0.5
        pids=$(tree_pids "$TPID")
        r0=$(rss_kb $pids)
        rm -f "$WORK/idle.ready"
        # --batch 64: at most as many requests in flight as in the warm-up, so
        # per-request state the proxy keeps pooled is already in "before"
        timeout -k 5 180 "${PIN_LOAD[@]}" python3 "$PERF/loadgen.py" idle --port "$port" --conns "$IDLE_CONNS" --batch "$FIXED_CONNS" \
            --hold 150 --timeout 120 --ready-file "$WORK/idle.ready" >"$WORK/idle.$tg.out" 2>&1 </dev/null &
        lpid=$!
        PIDS+=("$lpid")
        for ((i = 0; i < 1300; i++)); do [ -f "$WORK/idle.ready" ] && break; proc_alive "$lpid" || break; sleep 0.1; done
        if [ ! -f "$WORK/idle.ready" ]; then
            metric idle_rss "$tg" "" "the idle client did not finish: $(tail -n 1 "$WORK/idle.$tg.out")"
            kill_tree "$lpid" 2; stop_target "$tg"; continue
        fi
        sleep 1
        r1=$(rss_kb $pids)
        held=$(awk '{print $2}' "$WORK/idle.ready")
        kill_tree "$lpid" 2
        if ! proc_alive "$TPID"; then
            local st; wait "$TPID" 2>/dev/null; st=$?
            metric idle_rss "$tg" "" "the proxy exited during the test, status $st$( [ $st -gt 128 ] && echo " (signal $((st - 128)))"), after $held connections were idle"
            log "idle RSS $tg: the proxy exited (status $st) with $held connections open"
            forget_pid "$TPID"; TPID=""; continue
        fi
        if [ "${held:-0}" -gt 0 ]; then
            metric idle_rss "$tg" "$(awk -v a="$r0" -v b="$r1" -v n="$held" 'BEGIN {printf "%.0f", (b - a) * 1024 / n}')" \
                "VmRSS $r0 KiB before, $r1 KiB with $held idle connections"
            log "idle RSS $tg: $r0 -> $r1 KiB with $held connections"
        else
            metric idle_rss "$tg" "" "no connection held"
        fi
        stop_target "$tg"
    done
}

# ---------------------------------------------------------------- hot spots
annotate_tidy() {  # callgrind_annotate's function table: repository-relative file:function, one line each
    awk '/^-+$/ {d++; next} d >= 3 && NF' |
        sed -e 's|build-perf-g/\.\./||' -e "s|$ROOT/||g" -e 's| \[[^]]*\]$||' -e 's|\./[^ ]*/sysdeps/|glibc:sysdeps/|' |
        awk '!seen[$0]++' | head -n "$1"
}
measure_hotspots() {
    local f="$WORK/callgrind.ringway-epoll.N"
    if [ ! -s "$f" ] && command -v valgrind >/dev/null; then
        log "callgrind ringway-epoll for the annotation"
        callgrind_run ringway-epoll "$REQUESTS" "$f"
    fi
    if [ -s "$f" ]; then
        callgrind_annotate --inclusive=no "$f" 2>/dev/null | annotate_tidy 25 >"$WORK/hotspots.callgrind.ringway"
        callgrind_annotate --inclusive=yes "$f" 2>/dev/null | annotate_tidy 25 >"$WORK/hotspots.callgrind.ringway.incl"
    fi
    f="$WORK/callgrind.nginx.N"
    if [ -s "$f" ]; then
        callgrind_annotate --inclusive=no "$f" 2>/dev/null | annotate_tidy 15 >"$WORK/hotspots.callgrind.nginx"
    fi
    # Where ringway's time goes, kernel included (cpu-clock sampling of the
    # ringway process: this VM has no hardware counters), io_uring, small body.
    if command -v perf >/dev/null && start_target ringway-uring; then
        local url="http://127.0.0.1:$P_URING/" ppid i
        timeout -k 5 20 "${PIN_LOAD[@]}" wrk -t1 -c$WRK_CONNS -d1s "$url" >/dev/null 2>&1
        sleep 1
        timeout -k 5 120 perf record -e cpu-clock -F 999 -p "$TPID" -o "$WORK/perf.data" >"$WORK/perf-record.out" 2>&1 &
        ppid=$!
        PIDS+=("$ppid")
        sleep 1
        timeout -k 5 $((DURATION + 30)) "${PIN_LOAD[@]}" wrk -t1 -c$WRK_CONNS -d"${DURATION}s" "$url" >/dev/null 2>&1
        kill -INT "$ppid" 2>/dev/null
        for ((i = 0; i < 100; i++)); do proc_alive "$ppid" || break; sleep 0.1; done
        kill_tree "$ppid" 1
        perf report -i "$WORK/perf.data" --stdio --no-children --sort dso,sym --percent-limit 0.7 2>/dev/null |
            grep -v '^#' | sed '/^$/d' | head -n 40 >"$WORK/hotspots.perf.ringway"
        perf report -i "$WORK/perf.data" --stdio --no-children --sort dso --percent-limit 0.5 2>/dev/null |
            grep -v '^#' | sed '/^$/d' | head -n 8 >"$WORK/hotspots.perf.dso"
        stop_target ringway-uring
    fi
}

# ---------------------------------------------------------------- run
STAMP=$(date +%Y-%m-%d-%H%M)
[ $QUICK = 1 ] && STAMP="$STAMP-quick"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "targets: ${TARGETS[*]}; scenarios: ${SCENARIOS[*]}; ${DURATION}s per row; $PINNING"
QUIET=""
if [ "$QUIET_WAIT" -gt 0 ]; then wait_quiet "$QUIET_WAIT"; fi
BG_BEFORE=${QUIET:-?}
start_nginx_upstream "$UP_PORT" "$LOAD_CPUS" || die "the upstream nginx did not start"
T_START=$(date +%s)
for sc in small 1k 64k post16k c10k newconn jwt ratelimit metrics; do
    want "$sc" || continue
    for tg in "${TARGETS[@]}"; do run_row "$sc" "$tg"; done
done
want instructions && measure_instructions
want syscalls && measure_syscalls
want idle-rss && measure_idle_rss
want hotspots && measure_hotspots
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
kill_tree "$UP_PID" 5
BG_AFTER=$(other_cores)

# ---------------------------------------------------------------- report
ver() { "$@" 2>&1 | head -n 1; }
{
    printf 'date\t%s\n' "$(date '+%Y-%m-%d %H:%M %Z')"
    printf 'command\t%s\n' "$CMDLINE"
    printf 'cpu\t%s\n' "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    printf 'cores\t%s\n' "$NCPU"
    printf 'kernel\t%s\n' "$(uname -sr)"
    printf 'memory\t%s\n' "$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    printf 'os\t%s\n' "$(. /etc/os-release 2>/dev/null; echo "${PRETTY_NAME:-unknown}")"
    printf 'ringway\t%s (git %s%s), build-perf: meson --buildtype=release\n' "$("$RINGWAY" --version 2>&1 | sed 's/^ringway //')" \
        "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')" "$(git -C "$ROOT" diff --quiet HEAD -- src include meson.build 2>/dev/null || echo ', src modified')"
    printf 'nginx\t%s\n' "$(ver nginx -v | sed 's/^nginx version: nginx.//')"
    command -v haproxy >/dev/null && printf 'haproxy\t%s\n' "$(ver haproxy -v | awk '{print $3}')"
    command -v h2o >/dev/null && printf 'h2o\t%s\n' "$(ver h2o --version)"
    command -v caddy >/dev/null && printf 'caddy\t%s\n' "$(ver caddy version)"
    printf 'wrk\t%s\n' "wrk $(dpkg-query -W -f='${Version}' wrk 2>/dev/null || wrk -v 2>&1 | head -n 1 | awk '{print $2}')"
    command -v valgrind >/dev/null && printf 'valgrind\t%s\n' "$(ver valgrind --version)"
    command -v strace >/dev/null && printf 'strace\t%s\n' "strace $(ver strace -V | awk '{print $NF}')"
    printf 'pinning\t%s\n' "$PINNING"
    printf 'duration\t%s\n' "$DURATION"
    printf 'warmup\t%s\n' "$WARMUP"
    printf 'wrk_threads\t%s\n' "$WRK_THREADS"
    printf 'wrk_conns\t%s\n' "$WRK_CONNS"
    printf 'c10k_conns\t%s\n' "$C10K_CONNS"
    printf 'idle_conns\t%s\n' "$IDLE_CONNS"
    printf 'fixed_requests\t%s\n' "$REQUESTS"
    printf 'fixed_conns\t%s\n' "$FIXED_CONNS"
    printf 'idle_batch\t%s\n' "$FIXED_CONNS"
    printf 'nofile\t%s\n' "$NOFILE"
    printf 'max_other\t%s\n' "$MAX_OTHER"
    printf 'loadavg\t%s before, %s after\n' "$LOAD_BEFORE" "$LOAD_AFTER"
    printf 'other_load\t%s cores busy before the run, %s after (other processes; rows re-measured above %s)\n' "$BG_BEFORE" "$BG_AFTER" "$MAX_OTHER"
    printf 'elapsed\t%s s\n' "$(( $(date +%s) - T_START ))"
    printf 'stamp\t%s\n' "$STAMP"
} >"$WORK/meta.tsv"
mkdir -p "$OUT" || die "cannot create $OUT"
python3 "$PERF/report.py" --work "$WORK" --out "$OUT" --stamp "$STAMP" || die "report failed"
log "wrote $(for f in "$OUT/$STAMP".md "$OUT/$STAMP".tsv "$OUT/$STAMP".png; do [ -f "$f" ] && printf '%s ' "${f#"$ROOT"/}"; done)"
