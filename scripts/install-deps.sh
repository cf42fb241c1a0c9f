#!/usr/bin/env bash
# Installs what ringway needs to build, test and benchmark on Debian 12 (as root).
# Idempotent: packages already present are left alone.
set -euo pipefail

build_pkgs=(gcc pkg-config meson ninja-build liburing-dev android-libboringssl-dev libhiredis-dev
            libyaml-dev liburcu-dev libcriterion-dev libc-ares-dev)
test_pkgs=(curl wrk apache2-utils prometheus nginx-light python3 clang-14 clang-format-14 libclang-rt-14-dev redis-server python3-jwt python3-cryptography openssl dnsmasq-base nodejs)

want=("${build_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then
    want+=("${test_pkgs[@]}")
    # npm for tests/k8s (kubernetes-models, js-yaml); Debian's nodejs has no
    # npm of its own, a NodeSource nodejs has one already.
    command -v npm >/dev/null 2>&1 || want+=(npm)
fi

# tests/k8s/node_modules from its package-lock.json (npm registry), kept until
# the lock file changes. Seconds; run after the packages below.
npm_test_modules() {
    [ "${1:-}" = "--test" ] || return 0
    local dir
    dir="$(cd "$(dirname "$0")/.." && pwd)/tests/k8s"
    if [ -f "$dir/node_modules/.package-lock.json" ] && cmp -s <(sed -n '/"packages"/,$p' "$dir/package-lock.json" | grep -o '"node_modules/[^"]*"' | sort) \
        <(grep -o '"node_modules/[^"]*"' "$dir/node_modules/.package-lock.json" | sort); then
        return 0
    fi
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || {
        echo "install-deps: npm ci in tests/k8s failed" >&2
        return 1
    }
    echo "install-deps: installed tests/k8s/node_modules"
}

missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    npm_test_modules "${1:-}"
    exit $?
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages (${missing[*]}); run as root or install them with apt-get" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# nginx-light starts a service on :80 on install; tests run their own instances.
# redis-server does the same on :6379, prometheus (for promtool) on :9090;
# tests start their own or need none.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now nginx redis-server prometheus >/dev/null 2>&1 || true; fi
pkill -x redis-server >/dev/null 2>&1 || true
pkill -x prometheus >/dev/null 2>&1 || true
echo "install-deps: installed ${missing[*]}"
npm_test_modules "${1:-}"
