"""The report's digests (calibrate.report.digest): one block pass per prediction whose
numbers equal the direct metric functions on the (n, k) probabilities, and a report whose
working memory does not hold (n, k) arrays."""

import json
import mmap
import tracemalloc

import numpy as np
import pytest
from conftest import run_cli

from calibrate import conformal
from calibrate.calibrators import get_calibrator
from calibrate.io.examples import imagenet_shaped_logits
from calibrate.metrics import calibration as metrics
from calibrate.metrics import decomposition, smooth
from calibrate.report import beyond
from calibrate.report import classes as rc
from calibrate.report.digest import (
    add_columns,
    calibrated_rows,
    conformal_in_blocks,
    digest,
    digest_rows,
    report_digests,
)
from calibrate.report.html import calibration_report_sections
from calibrate.resampling.tables import METRIC_KEYS, report_numbers

TOL = 1e-12


def _data(n, k, seed=1):
    z, y = imagenet_shaped_logits(n, k, seed=seed)
    return z, y


@pytest.fixture(scope="module", params=[10, 150], ids=["k10", "k150"])
def case(request):
    k = request.param
    z, y = _data(600, k)
    zv, yv = _data(600, k, seed=2)
    cal = get_calibrator("temperature").fit(zv, yv, kind="logits")
    return z, y, cal


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=0, atol=TOL)


def _same(a, b, path=""):
    """Nested dicts equal: the same keys, numbers within TOL, anything else equal."""
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for key in a:
            _same(a[key], b[key], f"{path}/{key}")
    elif isinstance(a, float) and isinstance(b, float) and not (np.isnan(a) and np.isnan(b)):
        assert a == pytest.approx(b, abs=TOL), path
    elif not (isinstance(a, float) and np.isnan(a)):
        assert a == b, path


# ------------------------------------------------------------------ per-row values
def test_rows_equal_the_probabilities_computed_directly(case):
    z, y, _ = case
    d = digest(z, y, 15)
    p = metrics.softmax(z)
    rows = np.arange(y.size)
    onehot = np.eye(z.shape[1])[y]
    _close(d.confidence, p.max(axis=1))
    np.testing.assert_array_equal(d.predicted, p.argmax(axis=1))
    np.testing.assert_array_equal(d.correct, p.argmax(axis=1) == y)
    _close(d.nll, -np.log(p[rows, y]))
    _close(d.brier, ((p - onehot) ** 2).sum(axis=1))
    _close(d.p_true, p[rows, y])


def test_estimates_equal_the_metric_functions(case):
    z, y, _ = case
    d = digest(z, y, 15)
    p = metrics.softmax(z)
    est = d.estimates(d.class_numbers(y)["classwise_ece"])
    direct = {"accuracy": metrics.accuracy(p, y), "ece": metrics.ece(p, y, 15),
              "ece_mass": metrics.ece(p, y, 15, binning="mass"), "ece_l2": metrics.ece(p, y, 15, norm="l2"),
              "ece_l2_debiased": metrics.ece(p, y, 15, norm="l2", debiased=True), "mce": metrics.mce(p, y, 15),
              "classwise_ece": metrics.classwise_ece(p, y, 15), "nll": metrics.nll_from_logits(z, y),
              "brier": metrics.brier(p, y)}
    assert set(est) == set(METRIC_KEYS)
    for key in METRIC_KEYS:
        assert est[key] == pytest.approx(direct[key], abs=TOL), key


def test_per_class_numbers_equal_a_loop_over_classes(case):
    z, y, _ = case
    d = digest(z, y, 15)
    p = metrics.softmax(z)
    cn = d.class_numbers(y)
    k = z.shape[1]
    per = [metrics.ece_from_confidences(p[:, j], (y == j).astype(int), 15) for j in range(k)]
    _close(cn["ece"], per)
    _close(cn["mean_p"], p.mean(axis=0))
    np.testing.assert_array_equal(cn["support"], np.bincount(y, minlength=k))
    bd = decomposition.brier_decomposition(p, y, 15)
    for key, value in cn["decomposition"].items():
        assert value == pytest.approx(bd[key], abs=TOL), key


def test_class_sums_are_those_of_class_numbers(case):
    z, y, _ = case
    a = digest(z, y, 15).class_numbers(y)
    b = rc.class_numbers(metrics.softmax(z), y, 15)
    _close(a["ece"], b["ece"])
    _same(a["decomposition"], b["decomposition"])


def test_over_under_equals_ece_over_under(case):
    z, y, _ = case
    ou = decomposition.ece_over_under(metrics.softmax(z), y, 15)
    _same(digest(z, y, 15).over_under(), ou)


def test_reliability_data_equals_the_figure_module(case):
    from calibrate.report.figures import reliability_data

    z, y, _ = case
    a = digest(z, y, 15).reliability_data(15, label="x")
    b = reliability_data(metrics.softmax(z), y, 15, label="x")
    np.testing.assert_array_equal(a.count, b.count)
    _close(np.nan_to_num(a.confidence), np.nan_to_num(b.confidence))
    _close(np.nan_to_num(a.accuracy), np.nan_to_num(b.accuracy))
    assert a.ece == pytest.approx(b.ece, abs=TOL)


# ------------------------------------------------------------------ columns
def test_uncalibrated_columns_read_back_are_the_softmax_bits():
    z, y = _data(500, 150)
    d = digest(z, y, 15, keep_normalizer=True)
    shown = [3, 149, 0, 77]
    add_columns(d, z, shown)
    np.testing.assert_array_equal(d.columns[:, d.positions(shown)], np.exp(metrics.log_softmax(z))[:, shown])


def test_report_digests_hold_the_selected_classes_beyond_the_bootstrap_k():
    z, y = _data(500, 150)
    cal = get_calibrator("temperature").fit(z, y, kind="logits")
    ds, sel = report_digests(z, y, {"temperature": cal}, 15)
    ref = rc.class_numbers(metrics.softmax(z), y, 15)
    assert sel == rc.select_classes(ref["ece"], ref["support"])
    for name, d in ds.items():
        assert sorted(d.classes.tolist()) == sorted(sel["shown"])
        p = metrics.softmax(z) if name == "uncalibrated" else cal.predict_proba(z, kind="logits")
        _close(d.columns, p[:, d.classes])


def test_every_column_up_to_the_bootstrap_k():
    z, y = _data(300, rc.BOOTSTRAP_CLASSWISE_MAX_K)
    ds, sel = report_digests(z, y, {}, 15)
    assert sel is None and ds["uncalibrated"].columns.shape == z.shape


def test_class_intervals_equal_those_of_the_probabilities():
    from calibrate.report.digest import class_intervals

    z, y = _data(400, 150)
    ds, sel = report_digests(z, y, {}, 15)
    a = class_intervals(ds["uncalibrated"], y, sel["shown"], 15, 50, seed=3)
    b = rc.class_ece_intervals(metrics.softmax(z), y, sel["shown"], 15, 50, seed=3)
    _same(a, b)


def test_digest_blocks_hold_at_least_four_rows_a_bin():
    assert digest_rows(10, 50_000, 15) == 60
    assert digest_rows(10, 10, 15) > 60


# ------------------------------------------------------------------ bootstrap
def test_bootstrap_of_digests_equals_the_bootstrap_of_arrays(case):
    z, y, cal = case
    lp = {"uncalibrated": metrics.log_softmax(z), "temperature": cal.predict_log_proba(z, kind="logits")}
    ds = {"uncalibrated": digest(z, y, 15),
          "temperature": digest(lambda s: cal.predict_log_proba(z[s], kind="logits"), y, 15, n=z.shape[0],
                                k=z.shape[1], classes="all")}
    keys = [m for m in METRIC_KEYS if m != "classwise_ece"]
    est = {name: d.estimates(0.0) for name, d in ds.items()}
    a, da, _ = report_numbers({n: d.source() for n, d in ds.items()}, y, 15, 100, seed=4, keys=keys, estimates=est)
    b, db, _ = report_numbers(lp, y, 15, 100, seed=4, keys=keys)
    _same(a, b)
    _same(da, db)


def test_classwise_bootstrap_needs_every_column():
    z, y = _data(200, 10)
    d = digest(z, y, 15)  # no columns
    with pytest.raises(ValueError, match="no probabilities"):
        report_numbers({"u": d.source()}, y, 15, 20, keys=["classwise_ece"], estimates={"u": {"classwise_ece": 0.0}})


# ------------------------------------------------------------------ conformal, OOD
def test_conformal_in_blocks_equals_the_sets_of_whole_arrays():
    z, y = _data(800, 40)
    a_idx, b_idx = np.arange(0, 800, 2), np.arange(1, 800, 2)
    got = conformal_in_blocks(calibrated_rows(None, z, a_idx), y[a_idx], calibrated_rows(None, z, b_idx),
                              y[b_idx], 0.1, 5, k=40)
    want = beyond.conformal_numbers(metrics.log_softmax(z[a_idx]), y[a_idx], metrics.log_softmax(z[b_idx]),
                                    y[b_idx], 0.1, 5)
    _same(got, want)


def test_conformal_set_sizes_count_empty_sets():
    z, y = _data(400, 10)
    sets = conformal.LAC(alpha=0.5).fit(z[:200], y[:200]).predict_sets(z[200:])
    got = conformal_in_blocks(calibrated_rows(None, z, np.arange(200)), y[:200],
                              calibrated_rows(None, z, np.arange(200, 400)), y[200:], 0.5, 0, k=10)["lac"]
    assert got["mean_set_size"] == pytest.approx(sets.sum(axis=1).mean())
    assert got["empty_fraction"] == pytest.approx(np.mean(sets.sum(axis=1) == 0))


def test_ood_calibrated_scores_in_blocks_equal_whole_arrays():
    z, y = _data(300, 30)
    cal = get_calibrator("temperature").fit(z, y, kind="logits")
    a = beyond._calibrated_scores_in_blocks(cal, z)
    b = beyond.calibrated_scores(cal.predict_log_proba(z))
    for key in b:
        _close(a[key], b[key])


# ------------------------------------------------------------------ the report
@pytest.mark.slow
def test_report_numbers_equal_the_direct_metrics(tmp_path):
    z, y = _data(500, 150)
    cal = get_calibrator("temperature").fit(*_data(500, 150, seed=2), kind="logits")
    _, _, data = calibration_report_sections(z, y, {"temperature": cal}, n_resamples=30)
    for name, p in (("uncalibrated", metrics.softmax(z)), ("temperature", cal.predict_proba(z, kind="logits"))):
        m = data["metrics"][name]
        assert m["ece"]["estimate"] == pytest.approx(metrics.ece(p, y, 15), abs=TOL)
        assert m["brier"]["estimate"] == pytest.approx(metrics.brier(p, y), abs=TOL)
        assert m["nll"]["estimate"] == pytest.approx(metrics.nll(p, y), abs=1e-10)
        assert m["classwise_ece"]["estimate"] == pytest.approx(metrics.classwise_ece(p, y, 15), abs=TOL)
        per = [r[f"ece[{name}]"] for r in data["per_class"]]
        _close(per, [metrics.ece_from_confidences(p[:, j], (y == j).astype(int), 15) for j in range(150)])
        dec = beyond.decomposition_numbers({name: p}, y, 15)[name]
        _same(data["decomposition"][name], dec)
        assert data["smooth"]["predictions"][name]["smooth_ece"]["estimate"] == pytest.approx(
            smooth.smooth_ece(p, y), abs=TOL)


@pytest.mark.slow
def test_report_working_memory_does_not_grow_with_n_times_k(tmp_path):
    """tracemalloc peak of the whole report on memory-mapped float32 logits, n = 2,000 at
    k = 2,000 and k = 8,000: at most 32 MiB + 4 KiB x k + 2 KiB x n (one float64 (n, k) copy
    at k = 8,000 is 122 MiB; the report before the digests held several)."""
    peaks = {}
    n = 2000
    for k in (2000, 8000):
        rng = np.random.default_rng(k)
        path = tmp_path / f"z{k}.npy"
        z = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, k))
        y = rng.integers(0, k, n)
        for a in range(0, n, 250):
            z[a:a + 250] = rng.standard_normal((250, k), dtype=np.float32) * 2
        z[np.arange(n), y] += 3
        z.flush()
        del z
        z = np.load(path, mmap_mode="r")
        cal = get_calibrator("temperature").fit(np.asarray(z[:300]), y[:300], kind="logits")
        tracemalloc.start()
        try:
            calibration_report_sections(z, y, {"temperature": cal}, n_resamples=50)
            peaks[k] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    for k, peak in peaks.items():
        assert peak <= 32 * 2**20 + 4096 * k + 2048 * n, (k, peak / 2**20)
    assert peaks[8000] < n * 8000 * 8 / 2  # less than half of one float64 (n, k) array


def test_a_npy_reaches_the_report_memory_mapped(tmp_path):
    from calibrate.io.readers import read_predictions

    z, y = _data(50, 12)
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    a = read_predictions(tmp_path / "z.npy", labels_path=tmp_path / "y.npy").logits
    while not isinstance(a, (np.memmap, mmap.mmap)) and getattr(a, "base", None) is not None:
        a = a.base  # a view of the mapped file, not a copy
    assert isinstance(a, (np.memmap, mmap.mmap))


def test_cli_report_on_a_memory_mapped_npy(tmp_path):
    z, y = _data(300, 12)
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    code, out, err = run_cli("report", tmp_path / "z.npy", "--labels", tmp_path / "y.npy", "--resamples", "30",
                             "-o", tmp_path / "r.html", "--json", tmp_path / "r.json")
    assert code == 0, err
    data = json.loads((tmp_path / "r.json").read_text())
    p = metrics.softmax(z)
    assert data["metrics"]["uncalibrated"]["ece"]["estimate"] == pytest.approx(metrics.ece(p, y, 15), abs=TOL)
    assert data["k"] == 12 and len(data["per_class"]) == 12
