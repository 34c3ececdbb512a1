"""`calibrate experiment --preset quick` end to end on the real CIFAR-10 copy (CI runs it)."""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

CIFAR = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
MODELS = ["baseline", "label_smoothing", "overfit_noaug", "mc_dropout", "ensemble"]
CALS = ["none", "temperature", "vector", "matrix", "platt", "isotonic", "histogram", "bbq"]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "calibrate.cli", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    if not CIFAR.exists():
        pytest.skip("../shared/data/cifar10 not present")
    d = tmp_path_factory.mktemp("exp")
    t0 = time.time()
    r = cli("experiment", "--preset", "quick", "--data", CIFAR, "--out", d / "out", "--work", d / "work", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    return d, time.time() - t0


@pytest.mark.slow
def test_quick_preset_writes_every_row(quick):
    d, seconds = quick
    data = json.loads((d / "out" / "metrics.json").read_text())
    rows = {(r["model"], r["calibrator"]) for r in data["results"]}
    assert {(m, c) for m in MODELS for c in CALS} <= rows
    assert {("ensemble_members_calibrated", c) for c in CALS[1:]} <= rows
    for r in data["results"]:
        for key in ("accuracy", "ece", "nll", "brier"):
            assert np.isfinite(r[key])
        assert r["ci"]["ece"]["low"] <= r["ci"]["ece"]["high"]
    assert data["preset"] == "quick" and data["wall_seconds"] > 0
    assert data["hardware"]["cores"] and data["hardware"]["packages"]["torch"]
    assert seconds < 300


@pytest.mark.slow
def test_quick_preset_temperature_keeps_accuracy(quick):
    data = json.loads((quick[0] / "out" / "metrics.json").read_text())
    by = {(r["model"], r["calibrator"]): r for r in data["results"]}
    for m in MODELS:
        assert by[(m, "temperature")]["accuracy"] == by[(m, "none")]["accuracy"]
        assert by[(m, "temperature")]["nll"] <= by[(m, "none")]["nll"] + 0.05  # fitted on val, judged on test


@pytest.mark.slow
def test_quick_preset_report_and_logits_are_usable(quick):
    d = quick[0] / "out"
    html = (d / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5 and "Guo et al. 2017" in html
    r = cli("evaluate", d / "logits" / "ensemble_test.npz", "--json")
    assert r.returncode == 0, r.stderr
    r = cli("fit", d / "logits" / "baseline_val.npz", "-o", quick[0] / "t.json")
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_rerun_reuses_checkpoints(quick):
    d = quick[0]
    t0 = time.time()
    r = cli("experiment", "--preset", "quick", "--data", CIFAR, "--out", d / "out2", "--work", d / "work", "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    assert time.time() - t0 < quick[1]
    a = json.loads((d / "out" / "metrics.json").read_text())["results"]
    b = json.loads((d / "out2" / "metrics.json").read_text())["results"]
    assert [x["ece"] for x in a] == [x["ece"] for x in b]


def test_missing_data_folder_is_a_clean_error(tmp_path):
    r = cli("experiment", "--preset", "quick", "--data", tmp_path / "nothing", "--out", tmp_path / "o")
    assert r.returncode == 2 and r.stderr.startswith("calibrate: error:") and "no CIFAR-10 found" in r.stderr
