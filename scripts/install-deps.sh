#!/usr/bin/env bash
# Installs what ringway needs to build, test and benchmark on Debian 12 (as root).
# Idempotent: packages already present are left alone.
set -euo pipefail

build_pkgs=(gcc pkg-config meson ninja-build liburing-dev android-libboringssl-dev libhiredis-dev
            libyaml-dev liburcu-dev libcriterion-dev libc-ares-dev)
test_pkgs=(ca-certificates curl wrk apache2-utils prometheus nginx-light python3 clang-14 clang-format-14 libclang-rt-14-dev redis-server python3-jwt python3-cryptography openssl dnsmasq-base nodejs chromium)

want=("${build_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then
    want+=("${test_pkgs[@]}")
fi

# tests/k8s/node_modules (kubernetes-models, js-yaml) from its
# package-lock.json, fetched from the npm registry with their integrity
# checked (scripts/npm-modules.py: no npm needed); kept while the versions
# match. Seconds; run after the packages below (python3).
npm_test_modules() {
    [ "${1:-}" = "--test" ] || return 0
    python3 "$(dirname "$0")/npm-modules.py" "$(dirname "$0")/../tests/k8s" || {
        echo "install-deps: fetching tests/k8s/node_modules failed" >&2
        return 1
    }
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
