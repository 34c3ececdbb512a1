"""The multi-label report and evaluate in row blocks: the same numbers as the whole-array
path they replace (a copy of it below, the reference), as scikit-learn per column, with
blocks and resample groups forced small; and a working memory that grows with n by the
per-row weights only, not by (n, L) float64 arrays per prediction."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import brier_score_loss, log_loss

import calibrate.metrics.multilabel as mm
import calibrate.report.multilabel as ml
from calibrate._core.binning import bin_index, equal_width_edges
from calibrate.calibrators.multilabel import MultiLabelCalibrator
from calibrate.metrics.multilabel import multilabel_metrics, multilabel_metrics_in_blocks, sigmoid
from calibrate.report.multilabel import multilabel_report_numbers, multilabel_report_sections
from calibrate.resampling.bootstrap import _scheme, _weights

TOL = 1e-12


def _data(n=240, L=5, seed=0):
    rng = np.random.default_rng(seed)
    z = np.clip(rng.normal(size=(n, L)) * np.linspace(1.0, 3.0, L), -7, 7)
    y = (rng.uniform(size=(n, L)) < sigmoid(z * np.linspace(1.0, 0.3, L))).astype(np.int64)
    return z, y


# ----------------------------------------------------------------------------- the reference
def _terms(x, y, kind):
    p = sigmoid(x) if kind == "logits" else x
    d = y - p
    nll = np.logaddexp(0.0, x) - y * x if kind == "logits" else -np.log(
        np.maximum(np.where(y == 1, x, 1.0 - x), np.finfo(np.float64).tiny))
    return p, d, d * d, nll


def _reference_draws(x, y, kind, n_bins, w):
    """Per resample (rows of w): the whole-array sums of the previous report (an (n, L B)
    sparse matrix of y - p, (n, B) pooled bin sums, (n, L) Brier and NLL terms)."""
    p, d, sq, nll = _terms(x, y, kind)
    n, L = p.shape
    idx = bin_index(p, equal_width_edges(n_bins))
    X = sp.csr_matrix((d.ravel(), (np.repeat(np.arange(n), L), (idx + np.arange(L) * n_bins).ravel())),
                      shape=(n, L * n_bins))
    M = np.bincount((np.arange(n)[:, None] * n_bins + idx).ravel(), weights=d.ravel(),
                    minlength=n * n_bins).reshape(n, n_bins)
    W = w.sum(axis=1)
    S = np.asarray((X.T @ w.T).T).reshape(w.shape[0], L, n_bins)
    return {"ece": np.abs(S).sum(axis=2) / W[:, None], "brier": (w @ sq) / W[:, None],
            "nll": (w @ nll) / W[:, None], "micro_ece": np.abs(w @ M).sum(axis=1) / (W * L)}


def _reference_numbers(preds, y, n_bins, n_resamples, seed, worst=8):
    """The previous multilabel_report_numbers: whole arrays, multilabel_metrics for the estimates."""
    y = y.astype(np.float64)
    n = y.shape[0]
    est = {nm: multilabel_metrics(x, y, kind=kind, n_bins=n_bins) for nm, (x, kind) in preds.items()}
    names = list(preds)
    ece0 = est[names[0]]["per_label"]["ece"]
    worst_idx = [int(j) for j in np.lexsort((np.arange(ece0.size), -ece0))[:min(worst, ece0.size)]]
    w = np.concatenate(list(_weights(n, n_resamples, seed, _scheme("auto", n))))
    out = {}
    for nm, (x, kind) in preds.items():
        d = _reference_draws(x, y, kind, n_bins, w)
        out[nm] = {"macro_ece": d["ece"].mean(axis=1), "micro_ece": d["micro_ece"],
                   "brier": d["brier"].mean(axis=1), "nll": d["nll"].mean(axis=1), "worst": d["ece"][:, worst_idx]}
    return est, worst_idx, out


def _q(d):
    return np.quantile(d, [0.025, 0.975])


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 7 rows (1 in the metrics), weight slices of 3 rows, groups of 13 resamples, products of one."""
    monkeypatch.setattr(mm, "LABEL_BLOCK_BYTES", 1)
    monkeypatch.setattr(mm, "MIN_BLOCK_BIN_ROWS", 0)
    monkeypatch.setattr(ml, "label_block_rows", lambda L, B: 7)
    monkeypatch.setattr(ml, "WEIGHT_ROWS_BYTES", 3 * 13 * 8)
    monkeypatch.setattr(ml, "group_size", lambda n, L, B, R: 13)
    monkeypatch.setattr(ml, "RESAMPLE_BLOCK_BYTES", 5 * 8)


# ----------------------------------------------------------------------------- numbers
@pytest.mark.parametrize("L", [1, 5, 200])
def test_report_numbers_equal_the_whole_array_path(L, small_blocks):
    z, y = _data(n=150 if L == 200 else 240, L=L, seed=L)
    cal = MultiLabelCalibrator("platt").fit(z, y, kind="logits")
    q = cal.predict_proba(z, kind="logits")
    preds = {"uncalibrated": (z, "logits"), "platt": (q, "probs")}
    R = 40
    num = multilabel_report_numbers(
        {"uncalibrated": (z, "logits"), "platt": (lambda s: cal.predict_proba(z[s], kind="logits"), "probs")},
        y, n_bins=15, n_resamples=R, seed=3)
    est, worst, ref = _reference_numbers(preds, y, 15, R, 3)
    assert num["worst"] == worst
    for nm in preds:
        for key in ("ece", "brier", "nll"):
            np.testing.assert_allclose(num["per_label"][nm]["per_label"][key], est[nm]["per_label"][key],
                                       rtol=TOL, atol=1e-15)
        np.testing.assert_allclose(num["per_label"][nm]["prevalence"], est[nm]["prevalence"], rtol=TOL)
        for avg, key, dk in (("macro", "ece", "macro_ece"), ("micro", "ece", "micro_ece"), ("macro", "brier", "brier"),
                             ("micro", "nll", "nll")):
            iv = num["metrics"][nm][avg][key]
            assert iv["estimate"] == pytest.approx(est[nm][avg][key], rel=TOL)
            np.testing.assert_allclose([iv["low"], iv["high"]], _q(ref[nm][dk]), rtol=TOL)
        for i, j in enumerate(worst):
            iv = num["worst_intervals"][nm][j]
            np.testing.assert_allclose([iv["low"], iv["high"]], _q(ref[nm]["worst"][:, i]), rtol=TOL, atol=1e-15)
    for k in ("macro_ece", "micro_ece", "brier", "nll"):
        iv = num["paired"]["platt"][k]
        np.testing.assert_allclose([iv["low"], iv["high"]], _q(ref["platt"][k] - ref["uncalibrated"][k]),
                                   rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("L", [1, 5, 200])
@pytest.mark.parametrize("kind", ["logits", "probs"])
def test_block_metrics_equal_sklearn_per_column(L, kind, small_blocks):
    z, y = _data(n=150, L=L, seed=10 + L)
    x = z if kind == "logits" else sigmoid(z)
    m = multilabel_metrics_in_blocks(x, y, kind=kind)
    p = sigmoid(z)
    brier = [brier_score_loss(y[:, j], p[:, j]) for j in range(L)]
    nll = [log_loss(y[:, j], p[:, j], labels=[0, 1]) for j in range(L)]
    np.testing.assert_allclose(m["per_label"]["brier"], brier, rtol=TOL)
    np.testing.assert_allclose(m["per_label"]["nll"], nll, rtol=1e-9)  # sklearn: log of clipped probabilities
    ref = multilabel_metrics(x, y, kind=kind)
    np.testing.assert_allclose(m["per_label"]["ece"], ref["per_label"]["ece"], rtol=TOL, atol=1e-15)
    for avg in ("macro", "micro"):
        for key in ("ece", "brier", "nll"):
            assert m[avg][key] == pytest.approx(ref[avg][key], rel=TOL)


def test_block_metrics_with_empty_bins_and_probabilities_0_and_1(small_blocks):
    y = np.array([[1, 0], [0, 0], [1, 1], [0, 1], [1, 0], [0, 0], [1, 1], [0, 1], [1, 1]] * 3)
    p = np.array([[1.0, 0.0], [0.0, 0.5], [1.0, 1.0], [0.5, 1.0], [0.5, 0.0], [0.0, 0.0], [1.0, 0.5],
                  [0.0, 1.0], [1.0, 1.0]] * 3)
    m = multilabel_metrics_in_blocks(p, y, kind="probs", n_bins=10)
    ref = multilabel_metrics(p, y, kind="probs", n_bins=10)
    for key in ("ece", "brier", "nll"):
        np.testing.assert_allclose(m["per_label"][key], ref["per_label"][key], rtol=TOL, atol=1e-15)
        assert m["micro"][key] == pytest.approx(ref["micro"][key], rel=TOL, abs=1e-15)


def test_block_metrics_name_the_row_of_bad_input(small_blocks):
    z, y = _data(n=30, L=3)
    z[23, 1] = np.inf
    with pytest.raises(mm.InputError, match="at row 23, label 1"):
        multilabel_metrics_in_blocks(z, y, kind="logits")
    z[23, 1] = 0.0
    y[17, 2] = 2
    with pytest.raises(mm.InputError, match="got 2 at row 17, label 2"):
        multilabel_metrics_in_blocks(z, y, kind="logits")


def test_evaluate_numbers_with_a_calibrator_equal_the_whole_array_metrics(tmp_path, small_blocks):
    from calibrate.io.multilabel import read_multilabel
    from calibrate.report.multilabel_cli import evaluate_numbers

    z, y = _data(n=90, L=6, seed=4)
    cal = MultiLabelCalibrator("isotonic").fit(z, y, kind="logits")
    cal.save(tmp_path / "cal.json")
    np.savez(tmp_path / "d.npz", logits=z, labels=y)
    res = evaluate_numbers(read_multilabel(tmp_path / "d.npz", kind="logits"), tmp_path / "cal.json")
    ref = multilabel_metrics(cal.predict_proba(z, kind="logits"), y, kind="probs")
    for key in ("ece", "brier", "nll"):
        np.testing.assert_allclose([r[key] for r in res["per_label"]], ref["per_label"][key], rtol=TOL, atol=1e-15)
        assert res["macro"][key] == pytest.approx(ref["macro"][key], rel=TOL)
    assert [r["positives"] for r in res["per_label"]] == y.sum(axis=0).tolist()


def test_report_sections_do_not_depend_on_the_block_size(monkeypatch):
    z, y = _data(n=120, L=4, seed=6)
    cal = MultiLabelCalibrator("temperature").fit(z, y, kind="logits")
    a = multilabel_report_sections(z, y, {"temperature": cal}, kind="logits", n_resamples=30)[2]
    monkeypatch.setattr(ml, "label_block_rows", lambda L, B: 11)
    monkeypatch.setattr(ml, "group_size", lambda n, L, B, R: 7)
    b = multilabel_report_sections(z, y, {"temperature": cal}, kind="logits", n_resamples=30)[2]
    for nm in ("uncalibrated", "temperature"):
        for key in ("ece", "brier", "nll"):
            np.testing.assert_allclose(b["per_label"][nm][key], a["per_label"][nm][key], rtol=TOL, atol=1e-15)
            iv_a, iv_b = a["metrics"][nm]["macro"][key], b["metrics"][nm]["macro"][key]
            assert [iv_b[q] for q in ("estimate", "low", "high")] == pytest.approx(
                [iv_a[q] for q in ("estimate", "low", "high")], rel=TOL)
    np.testing.assert_array_equal(b["positives"], y.sum(axis=0))


# ----------------------------------------------------------------------------- memory
def _peak(n, L, R):
    z, y = _data(n=n, L=L, seed=n)
    y = y.astype(np.float64)
    cal = MultiLabelCalibrator("platt").fit(z[:500], y[:500], kind="logits")
    preds = {"uncalibrated": (z, "logits"), "platt": (lambda s: cal.predict_proba(z[s], kind="logits"), "probs")}
    tracemalloc.start()
    try:
        multilabel_report_numbers(preds, y, n_resamples=R, seed=0)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_working_memory_grows_by_per_row_weights_not_n_times_L():
    """tracemalloc peak of the report's numbers (uncalibrated + Platt applied per block, 100
    resamples) at n = 20,000 and 80,000, L = 50: it grows by less than one float64 (n, L)
    array (400 B a row; the 100 uint8 weights of a row are 100 B), and stays under twice the
    input (scores and labels); the whole-array path grew by about 5 KiB a row."""
    L, R = 50, 100
    peaks = {n: _peak(n, L, R) for n in (20_000, 80_000)}
    growth = (peaks[80_000] - peaks[20_000]) / 60_000
    assert growth < L * 8, {n: p / 2**20 for n, p in peaks.items()}
    assert peaks[80_000] < 2 * (2 * 80_000 * L * 8), peaks[80_000] / 2**20
