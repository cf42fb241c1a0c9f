# lib.sh - what the perf scripts (run.sh, ab.sh, filters.sh, spread.sh) share:
# logging, a work folder and the process trees started, cleaned up on exit,
# free ports, the CPU split, tool checks, the release build, the nginx
# upstream and per-process CPU and memory counters. Sourced, never run; safe
# under set -euo pipefail.
#
#   . "$(dirname "$0")/lib.sh"; perf_init NAME

PY=/usr/bin/python3
CLK_TCK=$(getconf CLK_TCK)   # what cpu_ticks counts per second

log() { printf '[perf %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# perf_init NAME: WORK (a fresh temp folder, kept when RW_KEEP_WORK=1) and
# PIDS (each killed on exit with its descendants; a script may define
# perf_on_exit to stop more first). Also NGX_USER and NGX_TEMPS, the lines
# every nginx config here needs (run workers as root when root; temp paths
# inside WORK).
perf_init() {
    PERF_NAME=$1
    WORK=$(mktemp -d "/tmp/rw-$1.XXXXXX") || { echo "$1.sh: mktemp failed" >&2; exit 1; }
    chmod 755 "$WORK"
    mkdir -p "$WORK/tmp"
    chmod 777 "$WORK/tmp"
    PIDS=()
    NGX_USER=""
    [ "$(id -u)" -ne 0 ] || NGX_USER="user root;"
    NGX_TEMPS="client_body_temp_path $WORK/tmp/cb; proxy_temp_path $WORK/tmp/px; fastcgi_temp_path $WORK/tmp/fc; uwsgi_temp_path $WORK/tmp/uw; scgi_temp_path $WORK/tmp/sc;"
    trap perf_cleanup EXIT
    trap 'log "interrupted"; exit 130' INT TERM HUP
}
perf_cleanup() {
    local p
    if declare -F perf_on_exit >/dev/null; then perf_on_exit || true; fi
    for p in "${PIDS[@]}"; do kill_tree "$p" 2 >/dev/null 2>&1; done
    if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
        if [ "${RW_KEEP_WORK:-0}" = 1 ]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    fi
}

# ---- processes
proc_alive() { kill -0 "$1" 2>/dev/null; }
descendants() { local p c; for p in "$@"; do for c in $(pgrep -P "$p" 2>/dev/null); do echo "$c"; descendants "$c"; done; done; }
tree_pids() { echo "$1" $(descendants "$1"); }
# forget_pid PID: drop PID from PIDS (it was reaped elsewhere).
forget_pid() { local keep=() q; for q in "${PIDS[@]}"; do [ "$q" = "$1" ] || keep+=("$q"); done; PIDS=("${keep[@]}"); }
# kill_tree PID [GRACE]: TERM the process and its descendants, KILL what is
# left after GRACE seconds (default 5), reap it and forget it.
kill_tree() {
    local pid=$1 grace=${2:-5} all i p alive
    [ -n "$pid" ] || return 0
    all="$pid $(descendants "$pid")"
    kill -TERM $all 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
        alive=0
        for p in $all; do proc_alive "$p" && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    kill -KILL $all 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    forget_pid "$pid"
    return 0
}

# need_tools HINT TOOL...: exits with a message when one is missing.
need_tools() {
    local hint=$1 t
    shift
    for t in "$@"; do
        command -v "$t" >/dev/null || { echo "$PERF_NAME.sh: $t is missing ($hint)" >&2; exit 1; }
    done
}

# free_ports N: N distinct TCP ports free on 127.0.0.1 right now.
free_ports() {
    "$PY" - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# wait_port PORT PID [SECONDS]: until 127.0.0.1:PORT accepts (default 20 s);
# 1 when PID exits first or time runs out.
wait_port() {
    local port=$1 pid=$2 t=${3:-20} i
    for ((i = 0; i < t * 10; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        proc_alive "$pid" || return 1
        sleep 0.1
    done
    return 1
}
# wait_http URL: up to 5 s for URL to answer at all.
wait_http() {
    local _
    for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done
    return 1
}

# split_cpus: PROXY_CPU (the proxy under test, a core to itself: the last
# CPU) and LOAD_CPUS (the others: wrk, the upstream, the test clients; CPU 0,
# shared, when there are only two). RW_PROXY_CPU and RW_LOAD_CPU override
# them (a list such as 0,2-3 works). Also PIN_PROXY and PIN_LOAD (taskset
# command prefixes; empty with one CPU) and PINNING (a sentence for reports).
split_cpus() {
    local ncpu
    ncpu=$(nproc)
    PROXY_CPU=${RW_PROXY_CPU:-$((ncpu - 1))}
    LOAD_CPUS=0
    [ "$ncpu" -le 2 ] || LOAD_CPUS="0-$((ncpu - 2))"
    LOAD_CPUS=${RW_LOAD_CPU:-$LOAD_CPUS}
    if [ "$ncpu" -ge 2 ]; then
        PIN_PROXY=(taskset -c "$PROXY_CPU")
        PIN_LOAD=(taskset -c "$LOAD_CPUS")
        PINNING="proxy under test on CPU $PROXY_CPU; upstream nginx, wrk and the test clients on CPU $LOAD_CPUS"
    else
        PIN_PROXY=()
        PIN_LOAD=()
        PINNING="not pinned (one CPU)"
    fi
    return 0
}

# build_ringway DIR [MESON_OPTION...]: the release build (LTO) in DIR, set up
# with the options when DIR has no build yet, brought up to date otherwise;
# sets RINGWAY. 1 when the build fails.
build_ringway() {
    local dir=$1
    shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" --buildtype=release -Db_lto=true "$@" >/dev/null || { log "meson setup $dir failed"; return 1; }
    fi
    ninja -C "$dir" >/dev/null || { log "ninja -C $dir failed"; return 1; }
    case "$dir" in /*) RINGWAY=$dir/ringway ;; *) RINGWAY=$PWD/$dir/ringway ;; esac
}

# nginx_upstream_conf PORT [SERVER_EXTRA]: the upstream's config: one worker,
# keep-alive (keepalive_requests and keepalive_timeout high), no access log,
# backlog 4096; GET / answers "hello world\n", /1k 1 KiB, /64k a 64 KiB
# static file (sendfile, open_file_cache), POST /post "ok\n"; SERVER_EXTRA
# goes into the server block (more locations; root is $WORK/www).
nginx_upstream_conf() {
    local port=$1 extra=${2:-} nofile body_1k
    nofile=$(ulimit -n)
    body_1k=$(head -c 1023 /dev/zero | tr '\0' 'x')
    cat <<EOF
# The upstream: fixed bodies, keep-alive on, no logging.
$NGX_USER
worker_processes 1;
daemon off;
pid $WORK/upstream.pid;
error_log $WORK/upstream.err warn;
worker_rlimit_nofile $nofile;
events { worker_connections $((nofile - 100)); }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    sendfile on;
    open_file_cache max=16 inactive=300s;
    open_file_cache_valid 300s;
    default_type application/octet-stream;
    $NGX_TEMPS
    server {
        listen 127.0.0.1:$port backlog=4096;
        location = / { default_type text/plain; return 200 "hello world\n"; }
        location = /1k { default_type text/plain; return 200 "$body_1k\n"; }
        location = /64k { root $WORK/www; }
        location = /post { client_max_body_size 1m; default_type text/plain; return 200 "ok\n"; }${extra:+ $extra}
    }
}
EOF
}

# start_nginx_upstream PORT CPUS [SERVER_EXTRA]: the upstream nginx
# (nginx_upstream_conf, config in $WORK/upstream.conf) pinned to CPUS ("" =
# not pinned); sets UP_PID (in PIDS) and waits until it answers "hello
# world"; 1, with its logs on stderr, when it does not.
start_nginx_upstream() {
    local port=$1 cpus=$2 extra=${3:-} pin=()
    [ -z "$cpus" ] || pin=(taskset -c "$cpus")
    mkdir -p "$WORK/www"
    [ -f "$WORK/www/64k" ] || head -c 65536 /dev/zero | tr '\0' 'x' >"$WORK/www/64k"
    nginx_upstream_conf "$port" "$extra" >"$WORK/upstream.conf"
    "${pin[@]}" nginx -c "$WORK/upstream.conf" >"$WORK/upstream.out" 2>&1 &
    UP_PID=$!
    PIDS+=("$UP_PID")
    if wait_port "$port" "$UP_PID" 10 && [ "$(curl -s -m 5 "http://127.0.0.1:$port/")" = "hello world" ]; then
        return 0
    fi
    cat "$WORK/upstream.out" "$WORK/upstream.err" >&2 2>/dev/null || true
    log "the upstream nginx did not start or does not answer 'hello world'"
    return 1
}

# cpu_ticks PID...: user+system CPU ticks (CLK_TCK a second) the processes
# used so far, summed (0 for one that is gone).
cpu_ticks() {
    local s=0 p v
    for p in "$@"; do
        v=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || v=0
        s=$((s + ${v:-0}))
    done
    echo $s
}
# rss_kb PID...: resident memory of the processes in KiB, summed.
rss_kb() {
    local s=0 p v
    for p in "$@"; do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null) || v=0
        s=$((s + ${v:-0}))
    done
    echo $s
}
