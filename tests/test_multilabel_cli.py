"""calibrate fit|apply|evaluate --multilabel: per-label numbers against scikit-learn and the
binary metric functions, the CLI's calibrators against MultiLabelCalibrator in Python, errors."""

import json

import numpy as np
import pytest
from conftest import run_cli
from sklearn.metrics import brier_score_loss, log_loss

from calibrate.calibrators.multilabel import FORMAT, METHODS, MultiLabelCalibrator
from calibrate.io.multilabel import CALIBRATOR_FORMAT
from calibrate.metrics import ece_from_confidences
from calibrate.metrics.multilabel import sigmoid


def _data(n=500, L=4, seed=0):
    """Logits of L labels, over-confident by a factor growing with the label, and 0/1 labels."""
    rng = np.random.default_rng(seed)
    z = np.clip(rng.normal(size=(n, L)) * np.linspace(1.0, 2.5, L), -6, 6)
    y = (rng.uniform(size=(n, L)) < sigmoid(z * np.linspace(0.9, 0.4, L))).astype(np.int64)
    return z, y


@pytest.fixture
def files(tmp_path):
    zv, yv = _data(seed=0)
    zt, yt = _data(seed=1)
    val, test = tmp_path / "val.npz", tmp_path / "test.npz"
    np.savez(val, logits=zv, labels=yv)
    np.savez(test, logits=zt, labels=yt)
    return {"val": val, "test": test, "zv": zv, "yv": yv, "zt": zt, "yt": yt, "dir": tmp_path}


def _evaluate(*args):
    code, out, err = run_cli("evaluate", *args, "--json")
    assert code == 0, err
    return json.loads(out)


def _one_line_error(code, out, err, *words):
    assert code == 2
    assert err.startswith("calibrate: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w in err, err


# ----------------------------------------------------------------------------- evaluate
def test_evaluate_per_label_numbers_equal_sklearn_and_the_binary_ece(files):
    res = _evaluate(files["test"], "--multilabel")
    p, y = sigmoid(files["zt"]), files["yt"]
    L = y.shape[1]
    assert res["n"] == y.shape[0] and res["L"] == L and len(res["per_label"]) == L
    for j, r in enumerate(res["per_label"]):
        assert r["label"] == str(j) and r["positives"] == int(y[:, j].sum())
        assert r["ece"] == pytest.approx(ece_from_confidences(p[:, j], y[:, j], 15), rel=1e-12, abs=1e-15)
        assert r["brier"] == pytest.approx(brier_score_loss(y[:, j], p[:, j]), rel=1e-12)
        assert r["nll"] == pytest.approx(log_loss(y[:, j], p[:, j], labels=[0, 1]), rel=1e-12)


def test_evaluate_macro_is_the_mean_and_micro_the_pooled_pairs(files):
    res = _evaluate(files["test"], "--multilabel", "--bins", "10")
    p, y = sigmoid(files["zt"]), files["yt"]
    for key in ("ece", "brier", "nll"):
        assert res["macro"][key] == pytest.approx(np.mean([r[key] for r in res["per_label"]]), rel=1e-12)
    assert res["micro"]["ece"] == pytest.approx(ece_from_confidences(p.ravel(), y.ravel(), 10), rel=1e-12)
    assert res["micro"]["brier"] == pytest.approx(brier_score_loss(y.ravel(), p.ravel()), rel=1e-12)
    assert res["micro"]["nll"] == pytest.approx(log_loss(y.ravel(), p.ravel()), rel=1e-12)


def test_evaluate_probabilities_with_probs(files):
    p, y = sigmoid(files["zt"]), files["yt"]
    path = files["dir"] / "probs.npz"
    np.savez(path, probs=p, labels=y.astype(bool))
    res = _evaluate(path, "--multilabel", "--probs")
    assert res["kind"] == "probs"
    for j, r in enumerate(res["per_label"]):
        assert r["brier"] == pytest.approx(brier_score_loss(y[:, j], p[:, j]), rel=1e-12)
        assert r["nll"] == pytest.approx(log_loss(y[:, j], p[:, j], labels=[0, 1]), rel=1e-12)


def test_evaluate_with_a_calibrator_equals_python(files):
    cal_path = files["dir"] / "cal.json"
    assert run_cli("fit", files["val"], "--multilabel", "--method", "platt", "-o", cal_path)[0] == 0
    res = _evaluate(files["test"], "--calibrator", cal_path)  # recognised from the JSON: no --multilabel needed
    q = MultiLabelCalibrator("platt").fit(files["zv"], files["yv"], kind="logits").predict_proba(files["zt"],
                                                                                                  kind="logits")
    y = files["yt"]
    assert res["calibrator"] == str(cal_path)
    for j, r in enumerate(res["per_label"]):
        assert r["ece"] == pytest.approx(ece_from_confidences(q[:, j], y[:, j], 15), rel=1e-12, abs=1e-15)
        assert r["brier"] == pytest.approx(brier_score_loss(y[:, j], q[:, j]), rel=1e-12)


def test_evaluate_text_lists_a_bounded_number_of_labels(tmp_path):
    z, y = _data(n=200, L=30, seed=3)
    path = tmp_path / "d.npz"
    np.savez(path, logits=z, labels=y)
    code, out, err = run_cli("evaluate", path, "--multilabel")
    assert code == 0, err
    assert "macro" in out and "micro" in out
    assert "the 20 labels of largest ECE of 30" in out
    body = out.split("label  ")[1].splitlines()[1:21]
    assert len(body) == 20


def test_label_names_from_the_npz(files):
    path = files["dir"] / "named.npz"
    np.savez(path, logits=files["zt"], labels=files["yt"], label_names=np.array(["a", "b", "c", "d"]))
    assert [r["label"] for r in _evaluate(path, "--multilabel")["per_label"]] == ["a", "b", "c", "d"]


# ----------------------------------------------------------------------------- fit / apply
@pytest.mark.parametrize("method", METHODS)
def test_fit_then_apply_equals_multilabel_calibrator_in_python(files, method):
    cal_path, out_path = files["dir"] / f"{method}.json", files["dir"] / "out.npz"
    code, out, err = run_cli("fit", files["val"], "--multilabel", "--method", method, "-o", cal_path)
    assert code == 0, err
    assert "L = 4 labels" in out
    ref = MultiLabelCalibrator(method).fit(files["zv"], files["yv"], kind="logits")
    saved = MultiLabelCalibrator.load(cal_path)
    np.testing.assert_array_equal(saved.predict_proba(files["zt"], kind="logits"),
                                  ref.predict_proba(files["zt"], kind="logits"))
    code, out, err = run_cli("apply", cal_path, files["test"], "-o", out_path)
    assert code == 0, err
    with np.load(out_path) as f:
        np.testing.assert_array_equal(f["probs"], ref.predict_proba(files["zt"], kind="logits"))
        np.testing.assert_array_equal(f["labels"], files["yt"])


def test_fit_on_probabilities_equals_python(files):
    p = sigmoid(files["zv"])
    path, cal_path = files["dir"] / "pv.npz", files["dir"] / "cal.json"
    np.savez(path, probs=p, labels=files["yv"])
    assert run_cli("fit", path, "--multilabel", "--probs", "--method", "beta", "-o", cal_path)[0] == 0
    ref = MultiLabelCalibrator("beta").fit(p, files["yv"], kind="probs")
    pt = sigmoid(files["zt"])
    np.testing.assert_allclose(MultiLabelCalibrator.load(cal_path).predict_proba(pt, kind="probs"),
                               ref.predict_proba(pt, kind="probs"), rtol=0, atol=1e-15)


def test_fit_prints_the_macro_numbers_before_and_after(files):
    cal_path = files["dir"] / "cal.json"
    code, out, err = run_cli("fit", files["val"], "--multilabel", "--method", "temperature", "-o", cal_path)
    assert code == 0, err
    ref = MultiLabelCalibrator("temperature").fit(files["zv"], files["yv"], kind="logits")
    from calibrate.metrics.multilabel import multilabel_nll

    after = multilabel_nll(ref.predict_proba(files["zv"], kind="logits"), files["yv"], kind="probs")
    before = multilabel_nll(files["zv"], files["yv"], kind="logits")
    assert f"NLL (macro) {before:.4f} -> {after:.4f}" in out
    assert json.loads(cal_path.read_text())["format"] == FORMAT == CALIBRATOR_FORMAT


def test_apply_without_labels_writes_probs_only(files):
    path, cal_path, out_path = files["dir"] / "nolab.npy", files["dir"] / "cal.json", files["dir"] / "o.npz"
    np.save(path, files["zt"])
    assert run_cli("fit", files["val"], "--multilabel", "--method", "isotonic", "-o", cal_path)[0] == 0
    code, out, err = run_cli("apply", cal_path, path, "-o", out_path)
    assert code == 0, err
    with np.load(out_path) as f:
        assert f.files == ["probs"] and f["probs"].shape == files["zt"].shape


# ----------------------------------------------------------------------------- errors
def _save(tmp_path, name="bad.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_label_values_other_than_0_and_1_are_refused(files):
    y = files["yt"].copy()
    y[3, 2] = 2
    path = _save(files["dir"], logits=files["zt"], labels=y)
    _one_line_error(*run_cli("evaluate", path, "--multilabel"), "expected 0 or 1", "got 2 at row 3, label 2")


def test_a_label_matrix_of_another_shape_is_refused(files):
    path = _save(files["dir"], logits=files["zt"], labels=np.zeros((500, 5), dtype=int))
    _one_line_error(*run_cli("evaluate", path, "--multilabel"), "shape (500, 5)", "(500, 4)")


def test_a_label_vector_with_multilabel_says_what_to_do(files):
    path = _save(files["dir"], logits=files["zt"], labels=files["yt"][:, 0])
    _one_line_error(*run_cli("evaluate", path, "--multilabel"), "indicator matrix", "drop --multilabel")


def test_an_indicator_matrix_without_multilabel_hints_the_flag(files):
    _one_line_error(*run_cli("evaluate", files["test"]), "add --multilabel")


def test_a_single_label_calibrator_with_multilabel_is_refused(files, logits_labels):
    z, y = logits_labels
    single, cal = _save(files["dir"], "single.npz", logits=z, labels=y), files["dir"] / "single.json"
    assert run_cli("fit", single, "--method", "temperature", "-o", cal)[0] == 0
    _one_line_error(*run_cli("evaluate", files["test"], "--multilabel", "--calibrator", cal),
                    "single-label calibrator")


def test_a_calibrator_of_another_number_of_labels_is_refused(files):
    cal = files["dir"] / "cal.json"
    assert run_cli("fit", files["val"], "--multilabel", "--method", "platt", "-o", cal)[0] == 0
    path = _save(files["dir"], logits=files["zt"][:, :3], labels=files["yt"][:, :3])
    _one_line_error(*run_cli("apply", cal, path, "-o", files["dir"] / "o.npz"), "fitted on 4 labels",
                    "3 label columns")


def test_a_method_without_a_binary_form_is_refused(files):
    _one_line_error(*run_cli("fit", files["val"], "--multilabel", "--method", "matrix", "-o", files["dir"] / "c.json"),
                    "--method matrix", "platt, temperature, isotonic, beta")


def test_csv_and_log_probs_are_refused_with_multilabel(files):
    csv = files["dir"] / "d.csv"
    csv.write_text("a,b,label\n0.1,0.2,1\n")
    _one_line_error(*run_cli("evaluate", csv, "--multilabel"), "not CSV")
    _one_line_error(*run_cli("evaluate", files["test"], "--multilabel", "--log-probs"), "--log-probs")


def test_probabilities_outside_0_1_with_probs_are_refused(files):
    path = _save(files["dir"], probs=files["zt"], labels=files["yt"])
    _one_line_error(*run_cli("evaluate", path, "--multilabel", "--probs"), "expected probabilities in [0, 1]")


def test_logits_that_look_like_probabilities_warn(files):
    path = _save(files["dir"], logits=sigmoid(files["zt"]), labels=files["yt"])
    code, out, err = run_cli("evaluate", path, "--multilabel")
    assert code == 0
    assert "calibrate: warning:" in err and "--probs" in err


def test_no_output_is_written_on_an_error(files):
    y = files["yv"].astype(float)
    y[0, 0] = 0.5
    path, cal = _save(files["dir"], logits=files["zv"], labels=y), files["dir"] / "cal.json"
    _one_line_error(*run_cli("fit", path, "--multilabel", "-o", cal), "got 0.5")
    assert not cal.exists()


# ----------------------------------------------------------------------------- the README example
def test_the_example_writes_what_the_readme_commands_read(tmp_path, monkeypatch):
    import re
    import runpy
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    monkeypatch.setattr(sys, "argv", ["multilabel_example.py", str(tmp_path / "ml")])
    runpy.run_path(str(root / "examples" / "multilabel_example.py"), run_name="__main__")
    with np.load(tmp_path / "ml" / "test.npz") as f:
        assert f["logits"].shape == f["labels"].shape == (2500, 10)
        assert set(np.unique(f["labels"])) == {0, 1}
    before = _evaluate(tmp_path / "ml" / "test.npz", "--multilabel")
    cal = tmp_path / "ml" / "platt.json"
    assert run_cli("fit", tmp_path / "ml" / "val.npz", "--multilabel", "--method", "platt", "-o", cal)[0] == 0
    after = _evaluate(tmp_path / "ml" / "test.npz", "--calibrator", cal)
    assert after["macro"]["ece"] < before["macro"]["ece"]
    readme = (root / "README.md").read_text()
    assert "python examples/multilabel_example.py out/multilabel" in readme
    shown = float(re.search(r"\nmacro +(\S+)", readme.split("### Multi-label models")[1]).group(1))
    assert shown == pytest.approx(before["macro"]["ece"], abs=2e-3)  # the README's output, to solver tolerance


def test_a_large_calibrator_file_is_recognised_from_its_head(files, logits_labels):
    from calibrate.io.multilabel import is_multilabel_calibrator

    cal = files["dir"] / "cal.json"
    assert run_cli("fit", files["val"], "--multilabel", "--method", "isotonic", "-o", cal)[0] == 0
    size = cal.stat().st_size
    assert is_multilabel_calibrator(cal) and is_multilabel_calibrator(cal, peek_bytes=size // 4)
    single = files["dir"] / "single.json"
    z, y = logits_labels
    data = files["dir"] / "s.npz"
    np.savez(data, logits=z, labels=y)
    assert run_cli("fit", data, "--method", "temperature", "-o", single)[0] == 0
    assert not is_multilabel_calibrator(single) and not is_multilabel_calibrator(single, peek_bytes=8)
    assert not is_multilabel_calibrator(files["test"])


def test_pt_files_are_read(files):
    torch = pytest.importorskip("torch")
    path = files["dir"] / "d.pt"
    torch.save({"logits": torch.tensor(files["zt"]), "labels": torch.tensor(files["yt"])}, path)
    assert _evaluate(path, "--multilabel")["macro"] == _evaluate(files["test"], "--multilabel")["macro"]
