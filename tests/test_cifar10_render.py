"""Re-rendering the CIFAR-10 report from a saved run (calibrate.apps.cifar10.render and
python -m experiments.cifar10_render), on a small synthetic run written with the runner's
own stages (calibrate_variants, shift_rows, conformal_and_risk_coverage, far/near OOD rows)
in the layout of ``calibrate experiment``'s OUT folder."""
import copy as copy_module
import json
import re
import shutil
from dataclasses import asdict

import numpy as np
import pytest
from scipy.special import softmax

from calibrate.apps.cifar10 import runner as rn
from calibrate.apps.cifar10 import shift as sh
from calibrate.apps.cifar10.data import CLASSES
from calibrate.apps.cifar10.ood import OOD_SETS, held_out_class_split
from calibrate.apps.cifar10.render import (
    TOL,
    TOL_REFIT,
    RecordMismatch,
    load_saved_run,
    rebuild,
    render_saved_run,
    verify,
)
from calibrate.metrics.uncertainty import pooled_log_probs
from calibrate.resampling.tables import evaluate_with_ci, paired_differences

K, N_VAL, N_TEST, N_SHIFT, N_OOD, S_MC, MEMBERS = 10, 200, 300, 80, 60, 3, 2
SINGLES = ("baseline", "label_smoothing", "overfit_noaug", "focal_loss", "mixup")
N_RES = 10
COMMAND = "python -m experiments.cifar10_render OUT"


def _logits(rng, y, k=K, scale=1.5):
    z = rng.normal(0, 1.5, (len(y), k))
    z[np.arange(len(y)), y % k] += scale
    return z.astype(np.float32)


def _raw(rng, y, members):
    """{single model and member: (n, k) float32, "mc_dropout_samples": (S, n, k) float32}."""
    raw = {m: _logits(rng, y) for m in (*SINGLES, *members[1:])}
    raw["mc_dropout_samples"] = (raw["baseline"][None] + rng.normal(0, 0.5, (S_MC, len(y), K))).astype(np.float32)
    return raw


def _write_saved_run(out):
    """A saved run in OUT (metrics.json + logits/), made as the runner makes it, except that
    the pooled validation logits are the float32 values it saves (so every number is exact)."""
    rng = np.random.default_rng(0)
    lg = out / "logits"
    lg.mkdir(parents=True)
    members = ["baseline"] + [f"member{m}" for m in range(1, MEMBERS)]
    y_val, y_test = rng.integers(0, K, N_VAL), rng.integers(0, K, N_TEST)
    val, test = _raw(rng, y_val, members), _raw(rng, y_test, members)
    variants = [rn.Variant(m, val[m], test[m]) for m in SINGLES]
    for name, vs, ts in (("mc_dropout", val["mc_dropout_samples"], test["mc_dropout_samples"]),
                         ("ensemble", np.stack([val[m] for m in members]), np.stack([test[m] for m in members]))):
        variants.append(rn.Variant(name, pooled_log_probs(vs).astype(np.float32), pooled_log_probs(ts), vs, ts))
    for v in variants:
        for split, arr, y in (("val", v.val, y_val), ("test", v.test, y_test)):
            np.savez(lg / f"{v.name}_{split}.npz", logits=arr.astype(np.float32), labels=y)
        if v.test_samples is not None:
            np.savez(lg / f"{v.name}_samples_test.npz", samples=v.test_samples.astype(np.float32), labels=y_test)
    results, _, fitted = rn.calibrate_variants(
        variants, y_val, y_test, (1e-2,),
        lambda m, c, lp, ref: rn._result_row(m, c, lp, ref, y_test, N_RES))

    idx = np.arange(N_SHIFT)
    y_sh = y_test[idx]
    names, sevs = ["gaussian_noise", "contrast"], [3]
    sets = [(sh.CLEAN, 0, {v.name: v.test[idx].astype(np.float32) for v in variants})]
    sets += [(c, s, rn._pooled_variants(_raw(rng, y_sh, members), members)) for c in names for s in sevs]
    for v in variants:
        arr = np.stack([np.stack([d[v.name] for c2, _, d in sets[1:] if c2 == c]) for c in names])
        np.savez(lg / f"shift_{v.name}.npz", logits=arr, labels=y_sh, corruptions=np.array(names),
                 severities=np.array(sevs), test_rows=idx)
    cals = {(v.name, c): fitted.get((v.name, c)) for v in variants for c in sh.SHIFT_CALIBRATORS}
    shift_rows = sh.shift_rows(sets, y_sh, cals, N_RES)
    conformal, _ = rn.conformal_and_risk_coverage(variants, fitted, y_val, sets, y_sh)

    in_raw = {m: test[m] for m in (*SINGLES, *members[1:])}
    in_raw["mc_dropout_samples"] = test["mc_dropout_samples"]
    ood_rows = []
    for name in [n for n, kind in OOD_SETS.items() if kind == "far"]:
        raw = _raw(rng, rng.integers(0, K, N_OOD), members)
        np.savez(lg / f"ood_{name}.npz", **raw)
        ood_rows += rn.far_ood_rows(name, in_raw, raw, members, fitted, N_RES)[0]
    z, zs = _logits(rng, y_test, 8), rng.normal(0, 1, (S_MC, N_TEST, 8)).astype(np.float32)
    held = held_out_class_split(y_test, (5, 9))
    np.savez(lg / "ood_held_out_classes.npz", test=z, mc_dropout_samples=zs, labels=y_test, held_out=np.array([5, 9]))
    ood_rows += rn.near_ood_rows(z, zs, held, N_RES)[0]

    cfg = {"widths": [8, 16, 16], "epochs": 1, "augment": True, "weight_decay": 5e-4, "label_smoothing": 0.0, "seed": 0}
    data = {
        "experiment": "cifar10", "preset": "tiny", "preset_config": asdict(rn.PRESETS["tiny"]),
        "data": {"root": "synthetic", "note": "synthetic logits", "n_train": 500, "n_val": N_VAL, "n_test": N_TEST},
        "protocol": "synthetic", "results": results,
        "train": {m: {"config": cfg, "train_seconds": 1.0, "final_train_loss": 1.0, "final_train_acc": 0.5,
                      "precision": ["fp32"], "seconds_this_run": 1.0, "test_accuracy": 0.5} for m in SINGLES},
        "uncertainty": rn._uncertainty(variants, y_test),
        "shift": {"corruptions": names, "severities": sevs, "n": N_SHIFT, "n_resamples": N_RES,
                  "calibrators": list(sh.SHIFT_CALIBRATORS), "rows": shift_rows,
                  "patterns": sh.patterns(shift_rows, [v.name for v in variants]), "conformal": conformal},
        "ood": {"sets": dict(OOD_SETS), "n_in": N_TEST, "n_out_far": N_OOD, "held_out_classes": [5, 9],
                "held_out_model_accuracy_in": 0.5, "rows": ood_rows},
        "command": "calibrate experiment --preset tiny --data d --out OUT --work ../runs/w",
        "hardware": {"python": "3", "platform": "test-platform", "cpu": "cpu", "cores": 1, "bits": 64,
                     "packages": {"calibrate": "0.0.1", "numpy": np.__version__}},
        "compute": None, "classes": list(CLASSES), "wall_seconds": 60.0,
    }
    (out / "metrics.json").write_text(json.dumps(rn._clean(data), indent=1, allow_nan=False) + "\n")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    _write_saved_run(out)
    return out


@pytest.fixture(scope="module")
def rendered(saved, tmp_path_factory):
    out = tmp_path_factory.mktemp("rendered") / "out"
    shutil.copytree(saved, out)
    before = (out / "metrics.json").read_bytes()
    paths = render_saved_run(out, COMMAND)
    return out, paths, before


@pytest.fixture(scope="module")
def rebuilt(saved):
    s = load_saved_run(saved)
    return s, rebuild(s)


@pytest.fixture
def copy(saved, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(saved, out)
    return out


@pytest.fixture
def fast(monkeypatch, rebuilt):
    """render_saved_run with the module's rebuild (the saved logits are the same; metrics.json may not be)."""
    import calibrate.apps.cifar10.render as render

    monkeypatch.setattr(render, "rebuild", lambda saved: rebuilt[1])


def _edit(out, edit):
    data = json.loads((out / "metrics.json").read_text())
    edit(data)
    (out / "metrics.json").write_text(json.dumps(data, indent=1))


def test_render_writes_the_report_html_and_pdf(rendered):
    out, paths, _ = rendered
    assert sorted(p.name for p in paths) == ["report.html", "report.pdf"]
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")


def test_render_leaves_metrics_json_as_it_was(rendered):
    out, _, before = rendered
    assert (out / "metrics.json").read_bytes() == before


def test_provenance_shows_the_render_command_and_the_runs_command(rendered):
    html = (rendered[0] / "report.html").read_text()
    assert f"by: {COMMAND}" in html
    assert "calibrate experiment --preset tiny --data d --out OUT --work ../runs/w" in html
    assert "run&#39;s versions</dt><dd>calibrate 0.0.1" in html


def test_pdf_provenance_shows_the_render_command(rendered):
    pypdf = pytest.importorskip("pypdf")
    text = " ".join(page.extract_text() for page in pypdf.PdfReader(rendered[0] / "report.pdf").pages)
    assert "experiments.cifar10_render" in " ".join(text.split())


def test_rebuilt_temperature_probabilities_are_softmax_of_logits_over_the_recorded_t(saved, rebuilt):
    s, rb = rebuilt
    t = next(r for r in s.data["results"] if r["model"] == "baseline" and r["calibrator"] == "temperature")["params"]["T"]
    with np.load(saved / "logits" / "baseline_test.npz") as f:
        expected = softmax(f["logits"].astype(np.float64) / t, axis=1)
    np.testing.assert_allclose(rb.test_probs[("baseline", "temperature")], expected, rtol=0, atol=1e-9)


def test_rebuilt_pooled_test_probabilities_are_the_mean_of_the_members(saved, rebuilt):
    rb = rebuilt[1]
    with np.load(saved / "logits" / "ensemble_samples_test.npz") as f:
        expected = softmax(f["samples"].astype(np.float64), axis=2).mean(axis=0)
    np.testing.assert_allclose(rb.test_probs[("ensemble", "none")], expected, rtol=0, atol=1e-12)


def test_rebuilt_roc_curves_carry_the_auroc_of_scikit_learn(saved, rebuilt):
    from sklearn.metrics import roc_auc_score

    rb = rebuilt[1]
    with np.load(saved / "logits" / "baseline_test.npz") as f_in, np.load(saved / "logits" / "ood_digits.npz") as f_out:
        s_in, s_out = softmax(f_in["logits"].astype(np.float64), 1).max(1), softmax(f_out["baseline"].astype(np.float64), 1).max(1)
    expected = roc_auc_score(np.r_[np.ones(len(s_in)), np.zeros(len(s_out))], np.r_[s_in, s_out])
    fpr, tpr, auroc = rb.curves["roc"]["digits (far)"]["baseline: MSP"]
    assert auroc == pytest.approx(expected, abs=1e-12)
    assert fpr[0] == 0 and tpr[-1] == 1 and np.all(np.diff(fpr) >= 0)


def test_rebuilt_risk_coverage_has_one_curve_per_severity(rebuilt):
    rb = rebuilt[1]
    curves = rb.curves["risk_coverage"]
    assert sorted(curves) == ["baseline + temperature (rows of all corruptions)",
                              "ensemble + temperature (rows of all corruptions)"]
    assert sorted(curves["baseline + temperature (rows of all corruptions)"]) == [0, 3]


@pytest.mark.parametrize("where, edit", [
    ("results[1] (baseline / temperature).ece", lambda d: d["results"][1].__setitem__("ece", d["results"][1]["ece"] + 1e-6)),
    ("results[1] (baseline / temperature).params.T",
     lambda d: d["results"][1]["params"].__setitem__("T", d["results"][1]["params"]["T"] * 1.001)),
    ("shift.rows[0] (baseline / none, clean s0).nll",
     lambda d: d["shift"]["rows"][0].__setitem__("nll", d["shift"]["rows"][0]["nll"] + 1e-3)),
    ("ood.rows[0] (baseline, digits, MSP).auroc", lambda d: d["ood"]["rows"][0].__setitem__("auroc", 0.5)),
])
def test_a_changed_number_is_refused_naming_it(rebuilt, where, edit):
    s, rb = rebuilt
    data = copy_module.deepcopy(s.data)
    edit(data)
    with pytest.raises(RecordMismatch, match=r"^metrics\.json " + re.escape(where)):
        verify(data, rb, s)


def test_the_saved_run_itself_verifies(rebuilt):
    s, rb = rebuilt
    stats = verify(s.data, rb, s)
    assert stats["checked"] > 1000 and stats["max_difference"][TOL] <= TOL


def test_refusal_writes_nothing(copy, fast):
    (copy / "report.html").write_text("old report")
    _edit(copy, lambda d: d["results"][0].__setitem__("nll", 9.0))
    names = sorted(p.name for p in copy.rglob("*"))
    with pytest.raises(RecordMismatch):
        render_saved_run(copy, COMMAND)
    assert (copy / "report.html").read_text() == "old report"
    assert not (copy / "report.pdf").exists()
    assert sorted(p.name for p in copy.rglob("*")) == names


def test_refit_tolerance_still_refuses_a_changed_pooled_number(rebuilt):
    s, rb = rebuilt
    data = copy_module.deepcopy(s.data)
    r = next(r for r in data["results"] if r["model"] == "ensemble" and r["calibrator"] == "isotonic")
    r["ece"] += 2 * TOL_REFIT
    with pytest.raises(RecordMismatch, match=r"\(ensemble / isotonic\)\.ece"):
        verify(data, rb, s)


def test_members_calibrated_rows_are_listed_as_not_recomputed(rendered):
    html = (rendered[0] / "report.html").read_text()
    assert "ensemble_members_calibrated (temperature, vector, matrix, platt, isotonic, histogram, bbq)" in html


def test_cli_refusal_is_one_line_and_exit_1(copy, fast, capsys):
    from experiments.cifar10_render import main

    _edit(copy, lambda d: d["uncertainty"]["ensemble"].__setitem__("members", 7))
    assert main([str(copy)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: metrics.json uncertainty.ensemble.members is 7")


def test_a_metrics_json_row_without_a_field_is_a_clean_error(copy, fast, capsys):
    from experiments.cifar10_render import main

    _edit(copy, lambda d: d["shift"]["rows"][0].pop("aurc"))
    assert main([str(copy)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "metrics.json: a row lacks 'aurc'" in err


def test_cli_missing_logits_is_a_clean_error(copy, capsys):
    from experiments.cifar10_render import main

    (copy / "logits" / "shift_mixup.npz").unlink()
    assert main([str(copy)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "shift_mixup.npz: missing" in err


def test_shared_calibration_rows_match_evaluate_with_ci(saved):
    """The runner's rows (through calibrate_variants) are evaluate_with_ci's estimates and
    paired_differences of the fitted calibrator: the synthetic run is made as the runner makes it."""
    s = load_saved_run(saved)
    r = next(r for r in s.data["results"] if r["model"] == "label_smoothing" and r["calibrator"] == "platt")
    v = next(v for v in s.variants if v.name == "label_smoothing")
    from calibrate.calibrators import get_calibrator
    from calibrate.metrics import calibration as metrics

    lp = get_calibrator("platt").fit(v.val, s.y_val, kind="logits").predict_log_proba(v.test, kind="logits")
    ci = evaluate_with_ci(lp, s.y_test, 15, N_RES, seed=0)
    assert r["ece"] == pytest.approx(ci["ece"]["estimate"], abs=1e-12)
    d = paired_differences(metrics.log_softmax(v.test), lp, s.y_test, 15, N_RES, seed=0, keys=("nll",))
    assert r["vs_uncalibrated"]["nll"]["estimate"] == pytest.approx(d["nll"]["estimate"], abs=1e-12)
