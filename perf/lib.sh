# lib.sh - what the small perf scripts (ab.sh, filters.sh, spread.sh) share:
# a work folder and processes cleaned up on exit, free ports, the pinning
# split, tool checks and the nginx upstream. Sourced, never run.
#
#   . "$(dirname "$0")/lib.sh"; perf_init NAME

PY=/usr/bin/python3

# perf_init NAME: WORK (a fresh temp folder) and PIDS (killed on exit, with
# WORK removed; a script may define perf_on_exit to stop more first).
perf_init() {
    PERF_NAME=$1
    WORK=$(mktemp -d "/tmp/rw-$1.XXXXXX")
    PIDS=()
    trap perf_cleanup EXIT
    trap 'exit 130' INT TERM
}
perf_cleanup() {
    if declare -F perf_on_exit >/dev/null; then perf_on_exit; fi
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}

# need_tools HINT TOOL...: exits with a message when one is missing.
need_tools() {
    local hint=$1 t
    shift
    for t in "$@"; do
        command -v "$t" >/dev/null || { echo "$PERF_NAME.sh: $t is missing ($hint)" >&2; exit 1; }
    done
}

# free_port: a TCP port free on 127.0.0.1 right now.
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# split_cpus: PROXY_CPU (the last CPU, the proxy's alone) and LOAD_CPUS (the
# others: wrk, the upstream; CPU 0 shared when there are only two).
split_cpus() {
    local ncpu
    ncpu=$(nproc)
    PROXY_CPU=$((ncpu - 1))
    LOAD_CPUS=0
    [ "$ncpu" -gt 2 ] && LOAD_CPUS="0-$((ncpu - 2))"
    return 0
}

# build_ringway DIR: a release build in DIR (set up if needed); sets RINGWAY.
build_ringway() {
    [ -x "$1/ringway" ] || { meson setup "$1" --buildtype=release -Db_lto=true >/dev/null && ninja -C "$1" >/dev/null; }
    ninja -C "$1" >/dev/null
    RINGWAY=$PWD/$1/ringway
}

# start_nginx_upstream PORT CPUS [SERVER_BODY]: one nginx worker on
# 127.0.0.1:PORT (keep-alive, no logging), pinned to CPUS ("" = not
# pinned), serving SERVER_BODY (default: every path answers "hello world");
# waits until it answers.
start_nginx_upstream() {
    local port=$1 cpus=$2 body=${3:-'location / { return 200 "hello world"; }'}
    mkdir -p "$WORK/nginx"
    cat >"$WORK/upstream.conf" <<EOF
daemon off; master_process off; worker_processes 1; error_log $WORK/nginx/error.log; pid $WORK/nginx/pid;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
       uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx; keepalive_requests 1000000; keepalive_timeout 300s;
       server { listen 127.0.0.1:$port; $body } }
EOF
    if [ -n "$cpus" ]; then taskset -c "$cpus" nginx -c "$WORK/upstream.conf" & else nginx -c "$WORK/upstream.conf" & fi
    PIDS+=($!)
    wait_http "http://127.0.0.1:$port/"
}

# wait_http URL: up to 5 s for URL to answer at all.
wait_http() {
    local _
    for _ in $(seq 1 100); do curl -s -o /dev/null "$1" && return 0; sleep 0.05; done
    return 1
}

# cpu_ticks PID: user+system CPU ticks the process used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
