#!/usr/bin/env bash
# Set up (if needed) and run the main job offline on the committed CIFAR-10 logits:
# fit a temperature on the validation logits, then report on the test logits.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mkdir -p out
calibrate fit reports/cifar10/logits/overfit_noaug_val.npz --method temperature -o out/temperature.json
calibrate report reports/cifar10/logits/overfit_noaug_test.npz --calibrator out/temperature.json -o out/report.html --json out/report.json
echo "open out/report.html in a browser"
