#!/usr/bin/env bash
# Runs ringway's container image without a container runtime and checks it:
#
#   tests/image/run.sh [IMAGE]     # as root; default IMAGE: build-image/oci:0.1.0
#
# IMAGE is an OCI layout (DIR or DIR:TAG), an oci-archive or a docker-archive
# (the outputs of scripts/build-image.sh). The image is unpacked with umoci and
# its entrypoint runs chrooted in the unpacked root as the image's user, the
# way a runtime would start it: in new mount, PID and network namespaces
# (ringway is PID 1 with its own loopback), the root remounted read-only (the
# DaemonSet's readOnlyRootFilesystem), /proc mounted, no /dev, no capabilities.
#
# Checks:
#   - the image: user 65532:65532, entrypoint /usr/bin/ringway, port 8080,
#     version and revision labels; no shell or other program in any bin/ or
#     sbin/ folder; every library the binary needs resolves inside the root
#     (the image's own loader, --list);
#   - the image's default command (the embedded config): /health and / answer
#     200 on :8080 over IPv4 and IPv6, as uid 65532 with no capabilities;
#     SIGTERM to PID 1 drains and exits 0;
#   - the DaemonSet's arguments (--config /etc/ringway/ringway.yaml
#     --watch-config --log-level info), the config mounted read-only like the
#     ConfigMap: /health and /ready 200; a route through a jwt filter to an
#     upstream answers 200 with a token signed by a key fetched from an https://
#     JWKS endpoint verified with the image's CA store (/etc/ssl/cert.pem, with
#     a test CA added to the bundle by a bind mount), 401 without one;
#     /metrics on :9902; POST /reload on the admin port (how to reload with no
#     shell in the pod); SIGTERM exits 0.
# Ends with "image: N passed, N failed"; exit status 1 on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

image=${1:-build-image/oci:0.1.0}
if [ "$(id -u)" -ne 0 ]; then
    echo "tests/image/run.sh: run as root (chroot, namespaces, mounts)" >&2
    exit 1
fi
start=$(date +%s%N)

need=(umoci curl python3 openssl iproute2)
if [ -f "$image" ] && ! tar -tf "$image" oci-layout >/dev/null 2>&1; then need+=(skopeo); fi
missing=()
for p in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

tmp=$(mktemp -d /tmp/ringway-image.XXXXXX)
upids=() # the unshare processes this script started
cleanup() {
    local p
    for p in "${upids[@]}"; do
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok - $*"; }
bad() { failed=$((failed + 1)); echo "FAIL - $*"; }
check() { # description, shell condition (evaluated here)
    if eval "$2"; then ok "$1"; else bad "$1"; fi
}

# ---- unpack ----
layout=$image
tag=
if [ -f "$image" ]; then
    layout=$tmp/layout
    if tar -tf "$image" oci-layout >/dev/null 2>&1; then
        mkdir -p "$layout"
        tar -xf "$image" -C "$layout"
    else
        skopeo copy -q "docker-archive:$image" "oci:$layout:image"
    fi
elif [ ! -d "$image" ] && [ -d "${image%:*}" ]; then
    layout=${image%:*}
    tag=${image##*:}
fi
if [ -z "$tag" ]; then
    tag=$(python3 -c 'import json, sys
m = json.load(open(sys.argv[1] + "/index.json"))["manifests"]
print(m[0]["annotations"]["org.opencontainers.image.ref.name"])' "$layout")
fi
umoci unpack --image "$layout:$tag" "$tmp/bundle" >/dev/null
root=$tmp/bundle/rootfs
echo "# $image ($layout:$tag) unpacked in $tmp/bundle: $(du -sh --apparent-size "$root" | cut -f1)"

# The runtime spec umoci derived from the image config (what a runtime runs),
# and the image config itself.
eval "$(python3 - "$tmp/bundle/config.json" "$layout" "$tag" <<'EOF'
import json, shlex, sys
spec = json.load(open(sys.argv[1]))
p = spec["process"]
idx = json.load(open(sys.argv[2] + "/index.json"))
desc = [m for m in idx["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == sys.argv[3]][0]
blob = lambda d: json.load(open(sys.argv[2] + "/blobs/" + d.replace(":", "/")))
cfg = blob(blob(desc["digest"])["config"]["digest"])["config"]
print("uid=%d gid=%d" % (p["user"]["uid"], p["user"]["gid"]))
print("args=(%s)" % " ".join(shlex.quote(a) for a in p["args"]))
print("envs=(%s)" % " ".join(shlex.quote(e) for e in p["env"]))
print("cwd=%s" % shlex.quote(p["cwd"]))
print("ports=%s" % shlex.quote(" ".join(sorted(cfg.get("ExposedPorts", {})))))
labels = cfg.get("Labels", {})
print("label_version=%s" % shlex.quote(labels.get("org.opencontainers.image.version", "")))
print("label_revision=%s" % shlex.quote(labels.get("org.opencontainers.image.revision", "")))
EOF
)"
echo "# entrypoint+cmd: ${args[*]}; user $uid:$gid; ports $ports; version $label_version, revision $label_revision"

# ---- the image's contents ----
check "runs as 65532:65532 (not root)" '[ "$uid:$gid" = 65532:65532 ]'
check "entrypoint is /usr/bin/ringway" '[ "${args[0]}" = /usr/bin/ringway ]'
check "exposes 8080/tcp" '[ "$ports" = 8080/tcp ]'
check "version and revision labels" '[ -n "$label_version" ] && [ -n "$label_revision" ]'
programs=$(cd "$root" && { find bin/ sbin/ usr/bin usr/sbin usr/local -mindepth 1 \( -type f -o -type l \) 2>/dev/null || true; } | sort | tr '\n' ' ')
check "no shell: no /bin/sh, and usr/bin holds only ringway ($programs)" \
    '[ ! -e "$root/bin/sh" ] && [ ! -L "$root/bin/sh" ] && [ ! -e "$root/usr/bin/sh" ] && [ "$programs" = "usr/bin/ringway " ]'
check "nonroot (65532) in /etc/passwd" 'grep -q "^nonroot:x:65532:65532:" "$root/etc/passwd"'
ncerts=$(grep -c 'BEGIN CERTIFICATE' "$root/etc/ssl/certs/ca-certificates.crt" || echo 0)
check "CA bundle with $ncerts certificates, /etc/ssl/cert.pem links to it" \
    '[ "$ncerts" -gt 100 ] && [ "$(readlink "$root/etc/ssl/cert.pem")" = certs/ca-certificates.crt ]'
interp=$(readelf -l "$root/usr/bin/ringway" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
libs=$(chroot "$root" "$interp" --list /usr/bin/ringway 2>&1) || true
check "every shared library resolves inside the image" \
    '[ -n "$libs" ] && ! grep -q "not found" <<<"$libs" && grep -q libc.so.6 <<<"$libs"'

# ---- running it ----
# start NAME SETUP ARGS...: runs ARGS (argv inside the root) as the image's
# user in new mount/PID/network namespaces; SETUP is shell run as root in
# those namespaces (with $root set) after the root is made read-only. Sets rw_pid (ringway's PID here) and
# the log $tmp/NAME.log.
start() {
    local name=$1 setup=$2
    shift 2
    unshare --mount --propagation private --pid --fork --net \
        env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin root="$root" sh -c '
        set -e
        ip link set lo up
        mount --bind "$root" "$root"
        mount -o remount,bind,ro "$root"
        '"$setup"'
        mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
        cd "$root"
        exec env -i "$@"' sh "${envs[@]}" chroot --userspec="$uid:$gid" --groups="$gid" "$root" "$@" \
        >"$tmp/$name.log" 2>&1 &
    local u=$! i
    upids+=("$u")
    rw_pid=
    for i in $(seq 1 100); do
        if [ -r "/proc/$u/task/$u/children" ]; then
            read -r rw_pid _ <"/proc/$u/task/$u/children" || true
            if [ -n "$rw_pid" ] && [ "$(readlink "/proc/$rw_pid/exe" 2>/dev/null)" = "$root/usr/bin/ringway" ]; then break; fi
        fi
        rw_pid=
        sleep 0.05
    done
    unshare_pid=$u
}
in_ns() { nsenter --net="/proc/$rw_pid/ns/net" "$@"; }
http() { # prints the status of curl ARGS... run in ringway's network namespace
    in_ns curl -s -o "$tmp/body" -w '%{http_code}' --max-time 5 "$@" || true
}
wait_up() { # url
    local i
    for i in $(seq 1 100); do
        [ "$(http "$1")" = 200 ] && return 0
        sleep 0.05
    done
    return 1
}
stop() { # sends SIGTERM to ringway (PID 1 of its namespace); checks exit status 0
    local what=$1 rc=0
    kill -TERM "$rw_pid"
    wait "$unshare_pid" || rc=$?
    check "$what: SIGTERM to PID 1 drains and exits 0 (exit $rc)" "[ $rc = 0 ]"
}

# 1. The image's own command: the embedded default config on :8080.
start default '' "${args[@]}"
if [ -z "$rw_pid" ]; then
    bad "default command: ringway did not start"
    cat "$tmp/default.log"
else
    check "default command: /health 200 on 127.0.0.1:8080" 'wait_up http://127.0.0.1:8080/health'
    check "default command: GET / 200 on [::1]:8080" '[ "$(http "http://[::1]:8080/")" = 200 ] && grep -q "\"service\":\"ringway\"" "$tmp/body"'
    st=$(cat "/proc/$rw_pid/status")
    check "default command: PID 1 in its namespace, uid/gid 65532, no capabilities" \
        'grep -Pq "^NSpid:\t\d+\t1$" <<<"$st" && grep -Pq "^Uid:(\t65532){4}$" <<<"$st" &&
         grep -Pq "^Gid:(\t65532){4}$" <<<"$st" && grep -Pq "^Groups:\t(65532 ?)?$" <<<"$st" &&
         grep -Pq "^CapEff:\t0{16}$" <<<"$st"'
    stop "default command"
    echo "# $(head -n 1 "$tmp/default.log")"
fi

# 2. The DaemonSet's arguments with a mounted config: a jwt route whose keys
# come from an https JWKS endpoint, in front of an upstream.
mkdir -p "$tmp/config" "$tmp/pki" "$root/etc/ringway"
(
    cd "$tmp/pki"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=ringway-image-test-ca 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=127.0.0.1 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\n' >ext
    openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile ext -out srv.crt 2>/dev/null
    cat "$root/etc/ssl/certs/ca-certificates.crt" ca.crt >bundle.crt
)
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat >"$tmp/config/ringway.yaml" <<EOF
listen: ["0.0.0.0:8080"]
admin: "127.0.0.1:9901"
metrics_listen: "0.0.0.0:9902"
workers: 2
services:
  - name: echo
    instances: ["127.0.0.1:3001"]
routes:
  - name: api
    paths: [{prefix: /api}]
    service: echo
    filters:
      - jwt:
          jwks_url: "https://127.0.0.1:8443/jwks.json"
EOF
cat >"$tmp/upstream.py" <<'EOF'
# An upstream on :3001 that echoes the path and X-User-ID, and a JWKS
# endpoint on :8443 (TLS, test CA) with one HS256 key.
import base64, http.server, json, ssl, sys, threading
pki, secret, ready = sys.argv[1], bytes.fromhex(sys.argv[2]), sys.argv[3]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
jwks = json.dumps({"keys": [{"kty": "oct", "alg": "HS256", "kid": "k1", "k": b64(secret)}]}).encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.server.server_port == 8443:
            body = jwks
        else:
            body = json.dumps({"path": self.path, "user": self.headers.get("X-User-ID")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
plain = http.server.ThreadingHTTPServer(("127.0.0.1", 3001), H)
tls = http.server.ThreadingHTTPServer(("127.0.0.1", 8443), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(pki + "/srv.crt", pki + "/srv.key")
tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
for s in (plain, tls):
    threading.Thread(target=s.serve_forever, daemon=True).start()
open(ready, "w").close()
threading.Event().wait()
EOF
token=$(python3 - "$secret" <<'EOF'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
h = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
p = b64(json.dumps({"sub": "image-test", "exp": int(time.time()) + 600}).encode())
s = b64(hmac.new(bytes.fromhex(sys.argv[1]), (h + "." + p).encode(), hashlib.sha256).digest())
print(h + "." + p + "." + s)
EOF
)
# The upstream runs in the namespaces (as root, outside the chroot), started
# before ringway so the JWKS fetch at load succeeds; it dies with PID 1.
setup='
mount --bind -o ro '"$tmp/config"' "$root/etc/ringway"
mount --bind -o ro '"$tmp/pki/bundle.crt"' "$root/etc/ssl/certs/ca-certificates.crt"
'"$(command -v python3)"' '"$tmp/upstream.py $tmp/pki $secret $tmp/upstream.ready"' &
i=0; while [ ! -e '"$tmp/upstream.ready"' ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
'
start daemonset "$setup" "${args[@]}" --config /etc/ringway/ringway.yaml --watch-config --log-level info
if [ -z "$rw_pid" ]; then
    bad "DaemonSet args: ringway did not start"
    cat "$tmp/daemonset.log"
else
    check "DaemonSet args: /health 200" 'wait_up http://127.0.0.1:8080/health'
    check "DaemonSet args: /ready 200" '[ "$(http http://127.0.0.1:8080/ready)" = 200 ]'
    got=
    for i in $(seq 1 100); do
        got=$(http -H "Authorization: Bearer $token" http://127.0.0.1:8080/api/hello)
        [ "$got" = 200 ] && break
        sleep 0.05
    done
    check "DaemonSet args: proxied GET /api/hello with a JWT (JWKS over https, image CA store) 200 ($got: $(cat "$tmp/body"))" \
        '[ "$got" = 200 ] && grep -q "\"user\": \"image-test\"" "$tmp/body"'
    check "DaemonSet args: /api/hello without a token 401" '[ "$(http http://127.0.0.1:8080/api/hello)" = 401 ]'
    check "DaemonSet args: /metrics on :9902" '[ "$(http http://127.0.0.1:9902/metrics)" = 200 ] && grep -q "^ringway_build_info" "$tmp/body"'
    check "DaemonSet args: POST /reload on the admin port 200" '[ "$(http -X POST http://127.0.0.1:9901/reload)" = 200 ]'
    check "DaemonSet args: no JWKS failure in the log" '! grep -q "jwks.*failed" "$tmp/daemonset.log"'
    stop "DaemonSet args"
fi
if [ "$failed" -gt 0 ]; then
    for l in "$tmp"/*.log; do echo "---- $l"; grep -v '^{"time"' "$l" || true; done
fi

echo "image: $passed passed, $failed failed ($(( ($(date +%s%N) - start) / 1000000 )) ms)"
[ "$failed" -eq 0 ]
