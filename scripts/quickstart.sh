#!/usr/bin/env bash
# Set up (if needed) and run the main job on the shipped example logits, offline:
# fit a temperature on validation logits, evaluate on test logits, write a report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
calibrate fit examples/val.npz --method temperature -o out/temperature.json
calibrate evaluate examples/test.npz --calibrator out/temperature.json
