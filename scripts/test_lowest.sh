#!/usr/bin/env bash
# The lowest versions pyproject.toml allows, installed and tested (run by hand, not in CI:
# it downloads and installs a second environment, a few minutes):
#     bash scripts/test_lowest.sh [pytest args]
# A fresh venv (LOWEST_VENV, default /tmp/calibrate-lowest) gets exactly the lower bounds of
# pyproject's dependencies and test tools, then calibrate itself (no torch: the numpy core, the
# calibrators, the scikit-learn wrapper, the report and the CLI on saved logits run without
# it), and runs the tests of those parts; the tests that need torch skip.
# Keep LOWEST in step with the lower bounds in pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${LOWEST_VENV:-/tmp/calibrate-lowest}
LOWEST=(
  "numpy==1.23.5" "scipy==1.9.3" "scikit-learn==1.6.1" "matplotlib==3.7.0" "tqdm==4.60.0" "jinja2==3.0.0"
  "pytest==7.0.0" "hypothesis==6.0.0" "pypdf==4.0.0"
)
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# the pins and calibrate in one resolution: pip refuses if a pin is below what pyproject allows
"$VENV/bin/python" -m pip install -q --only-binary ":all:" "${LOWEST[@]}" .
"$VENV/bin/python" -m pip list --format=freeze | grep -iE '^(numpy|scipy|scikit-learn|matplotlib|tqdm|jinja2|pytest|hypothesis|pypdf|calibrate)=='
if "$VENV/bin/python" -c "import torch" 2>/dev/null; then echo "torch is installed in $VENV; expected none" >&2; exit 1; fi
# the installed copy, not the source tree: the repository root stays off sys.path
# (PYTHONSAFEPATH, Python >= 3.11), so `import calibrate` finds the one pip installed
PYTHONSAFEPATH=1 "$VENV/bin/python" -c "import calibrate; print('testing', calibrate.__file__)"
PYTHONSAFEPATH=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider \
  tests/test_metrics.py tests/test_calibrators.py tests/test_sklearn_meta.py tests/test_sklearn_contract.py \
  tests/test_cli.py tests/test_report.py tests/test_report_pdf.py tests/test_loose_ends.py \
  tests/test_home_and_paths.py "$@"
