#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/browser.sh || echo "note: Chromium could not be installed; browser tests will be skipped"
python3 -m pytest -q "$@"
