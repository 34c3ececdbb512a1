"""`calibrate experiment` end to end on the real CIFAR-10 copy, with the tiny preset
(500 training images, one epoch) run once per module and shared; the quick preset and a
full re-run are behind the `slow` marker. No timings are asserted anywhere."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

def _find_cifar():
    """../shared/data/cifar10 beside the clone (or above a worktree), or $CALIBRATE_CIFAR10."""
    if os.environ.get("CALIBRATE_CIFAR10"):
        return Path(os.environ["CALIBRATE_CIFAR10"])
    here = Path(__file__).resolve()
    for up in here.parents[1:4]:
        if (up / "shared" / "data" / "cifar10").exists():
            return up / "shared" / "data" / "cifar10"
    return here.parents[2] / "shared" / "data" / "cifar10"


CIFAR = _find_cifar()
MODELS = ["baseline", "label_smoothing", "overfit_noaug", "focal_loss", "mixup", "mc_dropout", "ensemble"]
CALS = ["none", "temperature", "vector", "matrix", "platt", "isotonic", "histogram", "bbq", "dirichlet"]
ROOT = Path(__file__).resolve().parents[1]


def cli(*args, env=None):
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "calibrate.cli", *map(str, args)], capture_output=True,
                          text=True, env=e)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One tiny run with HOME pointed at an empty folder and no CALIBRATE_CACHE: the decoded
    images must be cached under WORK, nothing written to the home directory."""
    if not CIFAR.exists():
        pytest.skip("../shared/data/cifar10 not present")
    d = tmp_path_factory.mktemp("exp")
    (d / "home").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CALIBRATE_CACHE"}
    env["HOME"] = str(d / "home")
    r = subprocess.run([sys.executable, "-m", "calibrate.cli", "experiment", "--preset", "tiny", "--data", str(CIFAR),
                        "--out", str(d / "out"), "--work", str(d / "work")],
                       capture_output=True, text=True, env={**env, "PYTHONPATH": str(ROOT)}, cwd=d)
    assert r.returncode == 0, r.stderr[-3000:]
    return d, r


def test_tiny_preset_writes_every_row(tiny):
    d, _ = tiny
    data = json.loads((d / "out" / "metrics.json").read_text())
    rows = {(r["model"], r["calibrator"]) for r in data["results"]}
    assert {(m, c) for m in MODELS for c in CALS} <= rows
    # each member calibrated, then pooled: every calibrator but ODIR (5 cross-validations; see the pooled row)
    assert {("ensemble_members_calibrated", c) for c in CALS[1:] if c != "dirichlet"} <= rows
    for r in data["results"]:
        for key in ("accuracy", "ece", "nll", "brier"):
            assert np.isfinite(r[key])
        assert r["ci"]["ece"]["low"] <= r["ci"]["ece"]["high"]
    assert data["preset"] == "tiny" and data["data"]["n_train"] == 500
    assert data["hardware"]["cores"] and data["hardware"]["packages"]["torch"]


def test_compute_choice_is_recorded_and_reported(tiny):
    d, _ = tiny
    data = json.loads((d / "out" / "metrics.json").read_text())
    c = data["compute"]
    assert c["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    # the choice is measured (a bf16/fp32 speed ratio), so it is checked against what the run used
    assert c["precision"] in ("fp32", "bf16", "fp16") and c["precision_reason"]
    assert all(t["precision"] == [c["precision"]] for t in data["train"].values())
    assert c["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert c["threads"] == torch.get_num_threads() and c["threads"] >= 1
    # 6 models x 1 epoch x ceil(500 / 64), and the held-out-class model on 400 images: ceil(400 / 64)
    assert c["train_steps_left"] == 6 * 8 + 7
    assert c["measured_step_seconds"] > 0 and c["estimated_seconds"] > 0
    html = (d / "out" / "report.html").read_text()
    assert f"precision {c['precision']}" in html and f"CPU capability {c['cpu_capability']}" in html
    assert f"{c['threads']} torch threads" in html


def test_progress_prints_the_expected_time_and_a_bar(tiny):
    _, r = tiny
    assert "expected time for --preset tiny on this machine: about" in r.stdout
    assert "training (tiny)" in r.stderr and "step" in r.stderr  # the tqdm bar (on stderr)
    assert "resuming" not in r.stdout  # a fresh work folder


def test_caches_go_under_the_work_folder_not_home(tiny):
    d, _ = tiny
    assert list((d / "home").rglob("*calibrate*")) == []
    assert len(list((d / "work" / "cache").glob("cifar10-*.npz"))) == 1
    assert not (d / "runs").exists()  # --work was given: nothing in the current folder


def test_temperature_keeps_accuracy(tiny):
    data = json.loads((tiny[0] / "out" / "metrics.json").read_text())
    by = {(r["model"], r["calibrator"]): r for r in data["results"]}
    for m in MODELS:
        assert by[(m, "temperature")]["accuracy"] == by[(m, "none")]["accuracy"]
        assert by[(m, "temperature")]["nll"] <= by[(m, "none")]["nll"] + 0.05  # fitted on val, judged on test


def test_report_and_logits_are_usable(tiny):
    d = tiny[0] / "out"
    html = (d / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 5 and "Guo et al. 2017" in html
    r = cli("evaluate", d / "logits" / "ensemble_test.npz", "--json")
    assert r.returncode == 0, r.stderr
    r = cli("fit", d / "logits" / "baseline_val.npz", "-o", tiny[0] / "t.json")
    assert r.returncode == 0, r.stderr


def test_shift_rows_cover_every_model_calibrator_corruption_and_severity(tiny):
    data = json.loads((tiny[0] / "out" / "metrics.json").read_text())
    sh = data["shift"]
    assert sh["corruptions"] == ["gaussian_noise", "contrast"] and sh["severities"] == [3]
    cells = {(r["model"], r["calibrator"], r["corruption"], r["severity"]) for r in sh["rows"]}
    want = {(m, c, x, s) for m in MODELS for c in ("none", "temperature", "dirichlet", "isotonic")
            for x, s in [("clean", 0), ("gaussian_noise", 3), ("contrast", 3)]}
    assert cells == want
    for r in sh["rows"]:
        assert r["ci"]["ece"]["low"] <= r["ece"] + 1e-12 or r["ci"]["ece"]["high"] >= r["ece"]
    assert [p["pattern"] for p in sh["patterns"]] == [
        "calibration degrades with severity for every method",
        "post-hoc calibration fitted on clean data helps less as shift grows", "ensembles degrade most gracefully"]
    assert all(isinstance(p["held"], bool) for p in sh["patterns"])


def test_shift_numbers_are_reproduced_from_the_saved_logits(tiny):
    """Every shift number comes from OUT/logits: recompute one cell from the saved arrays."""
    from calibrate import metrics

    d = tiny[0] / "out"
    data = json.loads((d / "metrics.json").read_text())
    with np.load(d / "logits" / "shift_ensemble.npz", allow_pickle=False) as f:
        z, y, names = f["logits"], f["labels"], list(f["corruptions"])
    row = next(r for r in data["shift"]["rows"] if r["model"] == "ensemble" and r["calibrator"] == "none"
               and r["corruption"] == "contrast")
    lp = metrics.log_softmax(z[names.index("contrast"), 0].astype(np.float64))
    assert row["ece"] == pytest.approx(metrics.ece(np.exp(lp), y, 15), abs=1e-6)
    assert row["nll"] == pytest.approx(metrics.nll(np.exp(lp), y), abs=1e-6)


def test_ood_rows_include_near_and_far_sets_and_every_score(tiny):
    data = json.loads((tiny[0] / "out" / "metrics.json").read_text())
    rows = data["ood"]["rows"]
    assert {r["ood_set"] for r in rows} == {"digits", "uniform_noise", "gaussian_noise", "held_out_classes"}
    assert {r["kind"] for r in rows if r["ood_set"] == "held_out_classes"} == {"near"}
    scores = {(r["model"], r["score"]) for r in rows}
    assert ("ensemble", "mutual information") in scores and ("mc_dropout", "mutual information") in scores
    assert {"MSP", "max logit", "energy", "entropy"} <= {s for m, s in scores if m == "baseline"}
    for r in rows:
        assert 0 <= r["auroc"] <= 1 and 0 <= r["fpr_at_95tpr"] <= 1


def test_report_leads_with_the_findings_and_has_no_absolute_paths(tiny):
    html = (tiny[0] / "out" / "report.html").read_text()
    lead = html.index("Summary: calibration under distribution shift")
    assert lead < html.index("How this study was run") < html.index("Every model and calibrator")
    assert html.count("Expected:") == 3 and "Out-of-distribution detection" in html
    # the data folder is shown relative to where the command ran, and so are the paths in the command line
    assert f"at {CIFAR.resolve()}" not in html and f"at {os.path.relpath(CIFAR.resolve(), tiny[0])}" in html
    command = json.loads((tiny[0] / "out" / "metrics.json").read_text())["command"]
    assert "experiment --preset tiny" in command and not any(os.path.isabs(a) for a in command.split()), command


def test_pdf_export_is_the_same_report(tiny):
    pypdf = pytest.importorskip("pypdf")
    d = tiny[0] / "out"
    pdf = (d / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")
    import io
    import re

    text = " ".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    html = (d / "report.html").read_text()
    for title in re.findall(r"<h2>(.*?)</h2>", html):
        words = re.sub(r"<[^>]+>", "", title).split()[:3]
        assert " ".join(words) in " ".join(text.split()), title


@pytest.mark.browser
def test_experiment_report_fits_1280_px_in_a_real_browser(tiny):
    from browser_checks import assert_fits_without_horizontal_scroll, chromium

    drv = chromium()
    try:
        assert_fits_without_horizontal_scroll(drv, tiny[0] / "out" / "report.html", width=1280)
    finally:
        drv.quit()


def test_resume_message_lists_what_is_left(tmp_path):
    from calibrate.apps.cifar10.runner import PRESETS, model_specs, resume_message, run_state

    specs = model_specs(PRESETS["quick"])
    assert resume_message(tmp_path, specs, run_state(tmp_path, specs)) is None  # nothing there yet
    (tmp_path / "models" / "baseline").mkdir(parents=True)
    (tmp_path / "models" / "baseline" / "model.pt").write_bytes(b"")
    m1 = tmp_path / "models" / "member1"
    m1.mkdir()
    (m1 / "last.pt").write_bytes(b"")
    (m1 / "log.jsonl").write_text('{"epoch": 1}\n')
    msg = resume_message(tmp_path, specs, run_state(tmp_path, specs))
    assert msg == (f"resuming: 1 of 7 runs already done in {tmp_path}; will run: member1 (from epoch 2/2), "
                   "label_smoothing, overfit_noaug, focal_loss, mixup, held_out_classes")


def test_unavailable_cuda_is_a_clean_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    if not CIFAR.exists():
        pytest.skip("../shared/data/cifar10 not present")
    r = cli("experiment", "--preset", "tiny", "--data", CIFAR, "--out", tmp_path / "o", "--work", tmp_path / "w",
            "--device", "cuda")
    assert r.returncode == 2 and "no CUDA device" in r.stderr and "Traceback" not in r.stderr


def test_missing_data_folder_is_a_clean_error(tmp_path):
    r = cli("experiment", "--preset", "quick", "--data", tmp_path / "nothing", "--out", tmp_path / "o")
    assert r.returncode == 2 and r.stderr.startswith("calibrate: error:") and "no CIFAR-10 found" in r.stderr


@pytest.mark.slow
def test_rerun_reuses_models_and_says_so(tiny):
    d = tiny[0]
    r = cli("experiment", "--preset", "tiny", "--data", CIFAR, "--out", d / "out2", "--work", d / "work")
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"resuming: 7 of 7 runs already done in {d / 'work'}" in r.stdout
    a = json.loads((d / "out" / "metrics.json").read_text())
    b = json.loads((d / "out2" / "metrics.json").read_text())
    assert [x["ece"] for x in a["results"]] == [x["ece"] for x in b["results"]]
    assert b["compute"]["train_steps_left"] == 0


@pytest.mark.slow
def test_quick_preset_writes_every_row(tiny, tmp_path):
    r = cli("experiment", "--preset", "quick", "--data", CIFAR, "--out", tmp_path / "out", "--work",
            tmp_path / "work", "--cache-dir", tiny[0] / "work" / "cache", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads((tmp_path / "out" / "metrics.json").read_text())
    rows = {(r["model"], r["calibrator"]) for r in data["results"]}
    assert {(m, c) for m in MODELS for c in CALS} <= rows


def test_time_estimate_adds_training_prediction_and_evaluation():
    from calibrate.apps.cifar10 import runner
    from calibrate.apps.cifar10.training import TrainConfig, time_train_step

    p = runner.PRESETS["quick"]
    evaluation = runner.estimate_seconds(p, None, 0, 3000)  # nothing left to train, no step time
    assert evaluation > runner._EVAL_FIXED_SECONDS
    forward = 0.5 * runner._FORWARD_PER_STEP * runner.forward_images(p, 3000) / p.batch_size
    assert runner.estimate_seconds(p, 0.5, 96, 3000) == pytest.approx(0.5 * 96 + forward + evaluation, rel=1e-12)
    # quick: 7 single models + 5 MC samples on 3,000 clean rows, 4 x 1 shifted sets of 1,000, 3 x 500 OOD images
    assert runner.forward_images(p, 3000) == (4 + 1 + 2 + 5) * 3000 + 4 * 1000 * (6 + 5) + 3 * 500 * 11 + 2000 * 5
    # the cpu preset trains 88 steps per epoch x 9 models x 10 epochs, and 71 x 10 on the 8 kept classes
    specs = runner.model_specs(runner.PRESETS["cpu"])
    assert sum(c.epochs for n, c in specs.items() if n != runner.HELD_OUT_MODEL) * -(-45_000 // 512) == 7920
    assert time_train_step(TrainConfig(widths=(4, 4, 4), batch_size=8), "cpu", "fp32", steps=1) > 0
