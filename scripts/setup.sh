#!/usr/bin/env bash
# Install calibrate and what its tests need, on a fresh machine, offline-safe.
# torch is optional for the package (`pip install .` does not install it) but the
# experiment and the tests use it: it is pinned first to the CPU build (pip otherwise pulls
# a CUDA build of several GB); the `torch` extra's range (torch>=2.0) is then satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install -q "torch==2.13.0"
fi
"$PY" -m pip install -q -e ".[test,torch]"
