#!/usr/bin/env bash
# Installs what is missing, builds a release ringway and starts it in the
# foreground. With no arguments it runs the embedded default config on :8080
# (GET / and /health answer); any arguments are passed to ringway.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
if [ ! -f build/build.ninja ]; then
    meson setup build --buildtype=release -Db_lto=true -Dtests=false >/dev/null
fi
ninja -C build ringway >/dev/null
exec ./build/ringway "$@"
