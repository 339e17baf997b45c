#!/usr/bin/env bash
# Every test: Swift engine tests, C ABI tests and examples, Python binding tests and example,
# and the benchmark harness in smoke mode. Sets the machine up first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== README examples are the files the tests run"
python3 scripts/readme_examples.py --check

echo "== Swift tests"
# Progress lines of the build are dropped; every test line and the summary are shown.
swift test 2>&1 | grep -vE '^\[[0-9]+/[0-9]+\] '

echo "== C tests and examples"
bash Tests/c/run.sh .build/release

echo "== C ABI fuzzer (60 s)"
bash Tests/fuzz/run.sh .build/release --seconds 60

echo "== install script and pkg-config file"
bash Tests/c/install_test.sh

echo "== benchmark harness (smoke mode)"
GATEDNET_LIB="$PWD/.build/release/libgatednet.so" PATH="$PWD/.venv/bin:$PATH" \
    bash benchmarks/run.sh --smoke --out "$(mktemp -d)"

echo "== Python tests"
.venv/bin/python -m pytest Tests/python -q
