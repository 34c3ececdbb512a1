#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite: bash scripts/test.sh [pytest args]
# The fast tests always run (pytest's default deselects the `slow` marker). The slow ones
# (the quick preset end to end, a full re-run) run after them if the suite's budget allows:
# CALIBRATE_TEST_BUDGET seconds in all (default 600), reserving CALIBRATE_SLOW_RESERVE
# seconds for them (default 330, measured on a 2-core AVX2 CPU). Nothing is timed inside a test.
# Tests run in CALIBRATE_TEST_WORKERS processes (pytest-xdist, default 2: one per core), a file per worker.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/browser.sh || echo "note: Chromium could not be installed; browser tests will be skipped"
budget=${CALIBRATE_TEST_BUDGET:-600}
reserve=${CALIBRATE_SLOW_RESERVE:-330}
start=$(date +%s)
python3 -m pytest -q -n "${CALIBRATE_TEST_WORKERS:-2}" --dist loadfile "$@"
used=$(( $(date +%s) - start ))
if (( used + reserve <= budget )); then
    echo "fast tests took ${used} s; running the slow ones (budget ${budget} s)"
    python3 -m pytest -q -m slow -n "${CALIBRATE_TEST_WORKERS:-2}" --dist loadfile "$@"
else
    echo "fast tests took ${used} s; skipping the slow ones (they need about ${reserve} s of the ${budget} s budget):"
    echo "run them with: python3 -m pytest -q -m slow"
fi
