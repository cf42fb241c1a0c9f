#!/usr/bin/env bash
# Offline validation of k8s/ (no cluster needed):
#   tests/k8s/validate.sh [RINGWAY_BINARY]      (default: $RW_BINARY, else build-dev/ringway)
# 1. tests/k8s/validate.mjs on k8s/: renders the kustomization (both seccomp
#    variants), checks every object against the Kubernetes schemas with
#    unknown fields refused, the project's rules, the seccomp profile, and
#    `ringway --check-config` on the ConfigMap's config; where kubectl (with
#    kustomize v4+) is installed, compares its rendering with the renderer's.
# 2. A self-test: a copy of k8s/ with a misspelt field
#    (terminationGracePeriodSecond) must fail, naming that field.
# Needs node and tests/k8s/node_modules (scripts/install-deps.sh --test runs
# `npm ci` there). Exit 0: passed; 1: failed; 77: skipped (no node or modules).
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here="$root/tests/k8s"
bin=${1:-${RW_BINARY:-$root/build-dev/ringway}}

if ! command -v node >/dev/null 2>&1; then
    echo "validate.sh: skipped: node is not installed (scripts/install-deps.sh --test)"
    exit 77
fi
if [ ! -d "$here/node_modules/kubernetes-models" ] || [ ! -d "$here/node_modules/js-yaml" ]; then
    echo "validate.sh: skipped: tests/k8s/node_modules is missing (scripts/install-deps.sh --test, or npm ci in tests/k8s)"
    exit 77
fi
if [ ! -x "$bin" ]; then
    echo "validate.sh: no ringway binary at $bin (pass it, or set RW_BINARY)" >&2
    exit 1
fi

start=$(date +%s%N)
echo "== k8s/"
node "$here/validate.mjs" "$root/k8s" --ringway "$bin" || exit 1

echo "== self-test: a misspelt field must fail"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$root/k8s" "$tmp/k8s"
sed -i 's/terminationGracePeriodSeconds:/terminationGracePeriodSecond:/' "$tmp/k8s/daemonset.yaml"
out=$(node "$here/validate.mjs" "$tmp/k8s" --ringway "$bin" --quiet --expect-fail)
rc=$?
echo "$out" | grep "terminationGracePeriodSecond'" || true
if [ $rc -ne 0 ] || ! echo "$out" | grep -q "unknown field 'terminationGracePeriodSecond'"; then
    echo "self-test FAILED: the misspelt field was not reported" >&2
    echo "$out" >&2
    exit 1
fi
echo "self-test: caught"
echo "k8s validation passed in $((($(date +%s%N) - start) / 1000000)) ms"
