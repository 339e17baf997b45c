#!/usr/bin/env bash
# Set up a bare Debian machine for gatednet: system packages, the release build of
# libgatednet.so, and a Python venv (.venv) with the binding installed. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
need_pkgs=""
for p in libopenblas-dev zlib1g-dev dataset-fashion-mnist python3-dev python3-venv gcc g++ binutils valgrind; do
    dpkg -s "$p" >/dev/null 2>&1 || need_pkgs="$need_pkgs $p"
done
if [ -n "$need_pkgs" ]; then
    echo "== installing Debian packages:$need_pkgs"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need_pkgs >/dev/null
fi

echo "== building libgatednet.so (release, Swift runtime linked statically)"
swift build -c release -Xswiftc -static-stdlib 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\]' || true
test -f .build/release/libgatednet.so

if [ "${GN_SKIP_PYTHON:-0}" != 1 ]; then
    PY="${PYTHON:-python3}"
    if [ ! -x .venv/bin/python ]; then
        echo "== creating .venv"
        "$PY" -m venv .venv
    fi
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -r requirements-dev.txt
    if [ -f bindings/python/pyproject.toml ]; then
        echo "== installing the Python binding"
        # A stale build/ (from another branch) would put modules that no longer exist into the wheel.
        rm -rf bindings/python/build
        GATEDNET_LIB_DIR="$PWD/.build/release" .venv/bin/python -m pip install -q --force-reinstall --no-deps ./bindings/python
    fi
fi
