#!/usr/bin/env bash
# The main job: set up the machine, then train a ReLU network and its DGN relatives on
# Fashion-MNIST and summarise their neural path kernels. Extra arguments go to the demo
# (see `.build/release/gatednet-demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
GN_SKIP_PYTHON=1 bash scripts/setup.sh
exec .build/release/gatednet-demo "$@"
