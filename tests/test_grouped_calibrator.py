"""GroupedCalibrator (per-group fits shrunk toward the global one) and grouped_comparison,
against direct implementations: scipy's scalar minimiser on the written-out NLL, separate
per-group calibrators, the mixture formula, and a fold-by-fold loop for the CV scores."""

import json
import math
import warnings

import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp

from calibrate._core.validation import CalibrationWarning, InputError
from calibrate.calibrators import (
    GroupedCalibrator,
    PlattScaling,
    TemperatureScaling,
    available_methods,
)
from calibrate.calibrators.grouped import _fold_ids
from calibrate.resampling.grouped import grouped_comparison


def _data(temps, n_per, k=4, seed=0):
    """Logits z = T_g * z_true with labels drawn from softmax(z_true): T_g is group g's calibrating temperature."""
    rng = np.random.default_rng(seed)
    zs, ys, gs = [], [], []
    for g, t in enumerate(temps):
        zt = rng.normal(0.0, 2.0, (n_per, k))
        p = np.exp(zt - logsumexp(zt, axis=1, keepdims=True))
        y = (rng.random(n_per)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
        zs.append(zt * t)
        ys.append(np.minimum(y, k - 1))
        gs.append(np.full(n_per, g))
    return np.concatenate(zs), np.concatenate(ys), np.concatenate(gs)


def _nll_sum(z, y, t):
    """sum_i -log softmax(z_i / t)[y_i], written out."""
    s = z / t
    return float((logsumexp(s, axis=1) - s[np.arange(len(y)), y]).sum())


def _scipy_log_t(z, y, b0=0.0, lam=0.0):
    """argmin_b sum NLL(z / e^b) + lam (b - b0)^2 by scipy's bounded scalar search."""
    res = minimize_scalar(lambda b: _nll_sum(z, y, math.exp(b)) + lam * (b - b0) ** 2, bounds=(-5, 5),
                          method="bounded", options={"xatol": 1e-11})
    return res.x


@pytest.fixture(scope="module")
def differing():
    return _data([0.6, 1.0, 2.0, 3.5], 300, seed=1)


def test_infinite_shrinkage_is_the_global_temperature(differing):
    z, y, g = differing
    cal = GroupedCalibrator(shrinkage=math.inf).fit(z, y, g)
    ref = TemperatureScaling().fit(z, y)
    np.testing.assert_array_equal(cal.temperatures_, np.full(4, ref.temperature_))
    np.testing.assert_allclose(cal.predict_proba(z, g), ref.predict_proba(z), rtol=0, atol=1e-12)


def test_zero_shrinkage_is_separate_per_group_fits(differing):
    z, y, g = differing
    cal = GroupedCalibrator(shrinkage=0.0).fit(z, y, g)
    p = cal.predict_proba(z, g)
    for j in range(4):
        rows = g == j
        own = TemperatureScaling().fit(z[rows], y[rows])
        np.testing.assert_allclose(p[rows], own.predict_proba(z[rows]), rtol=0, atol=1e-8)
        assert math.log(cal.temperatures_[j]) == pytest.approx(_scipy_log_t(z[rows], y[rows]), abs=1e-6)


def test_a_huge_finite_shrinkage_approaches_the_global_temperature(differing):
    z, y, g = differing
    cal = GroupedCalibrator(shrinkage=1e12).fit(z, y, g)
    np.testing.assert_allclose(cal.temperatures_, cal.global_.temperature_, rtol=1e-8)


@pytest.mark.parametrize("lam", [0.5, 20.0, 400.0])
def test_each_temperature_minimises_the_penalised_nll(differing, lam):
    z, y, g = differing
    cal = GroupedCalibrator(shrinkage=lam).fit(z, y, g)
    b0 = math.log(cal.global_.temperature_)
    for j in range(4):
        rows = g == j
        want = _scipy_log_t(z[rows], y[rows], b0, lam)
        assert math.log(cal.temperatures_[j]) == pytest.approx(want, abs=1e-6)


def test_penalised_temperatures_lie_between_the_global_and_the_own_fit(differing):
    z, y, g = differing
    own = GroupedCalibrator(shrinkage=0.0).fit(z, y, g).temperatures_
    mid = GroupedCalibrator(shrinkage=50.0).fit(z, y, g)
    t0 = mid.global_.temperature_
    assert np.all((mid.temperatures_ - t0) * (own - mid.temperatures_) >= 0)


def test_mixture_infinite_tau_is_the_global_calibrator(differing):
    z, y, g = differing
    cal = GroupedCalibrator("platt", shrinkage=math.inf).fit(z, y, g)
    np.testing.assert_array_equal(cal.predict_proba(z, g), PlattScaling().fit(z, y).predict_proba(z))


def test_mixture_zero_tau_is_separate_per_group_fits(differing):
    z, y, g = differing
    cal = GroupedCalibrator(PlattScaling(), shrinkage=0.0).fit(z, y, g)
    p = cal.predict_proba(z, g)
    for j in range(4):
        rows = g == j
        ref = PlattScaling().fit(z[rows], y[rows]).predict_proba(z[rows])
        np.testing.assert_allclose(p[rows], ref, rtol=0, atol=1e-8)


def test_mixture_is_the_weighted_average_of_group_and_global_probabilities(differing):
    z, y, g = differing
    tau = 150.0
    cal = GroupedCalibrator("platt", shrinkage=tau).fit(z, y, g)
    p = cal.predict_proba(z, g)
    p0 = PlattScaling().fit(z, y).predict_proba(z)
    for j in range(4):
        rows = g == j
        w = rows.sum() / (rows.sum() + tau)
        pg = PlattScaling().fit(z[rows], y[rows]).predict_proba(z[rows])
        np.testing.assert_allclose(p[rows], w * pg + (1 - w) * p0[rows], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_cv_chooses_a_large_shrinkage_when_groups_share_one_temperature():
    z, y, g = _data([1.5] * 8, 200, seed=2)
    cal = GroupedCalibrator().fit(z, y, g)
    assert cal.shrinkage_ >= 30.0
    assert np.ptp(np.log(cal.temperatures_)) < 0.2


def test_cv_chooses_a_small_shrinkage_when_temperatures_differ(differing):
    z, y, g = differing
    cal = GroupedCalibrator().fit(z, y, g)
    assert cal.shrinkage_ <= 3.0
    np.testing.assert_allclose(cal.temperatures_, [0.6, 1.0, 2.0, 3.5], rtol=0.25)


def test_cv_scores_are_the_held_out_nll_of_a_fold_by_fold_loop():
    z, y, g = _data([0.8, 1.6], 150, seed=3)
    cal = GroupedCalibrator(grid=[0.0, 10.0, math.inf], cv=3, seed=7).fit(z, y, g)
    folds = _fold_ids(g.astype(np.int64), 3, 7)
    want = np.zeros(3)
    for f in range(3):
        tr, te = folds != f, folds == f
        t0 = TemperatureScaling().fit(z[tr], y[tr]).temperature_
        want[2] += _nll_sum(z[te], y[te], t0)
        for j in range(2):
            a, b = tr & (g == j), te & (g == j)
            want[0] += _nll_sum(z[b], y[b], math.exp(_scipy_log_t(z[a], y[a])))
            want[1] += _nll_sum(z[b], y[b], math.exp(_scipy_log_t(z[a], y[a], math.log(t0), 10.0)))
    np.testing.assert_allclose(cal.cv_nll_, want / len(y), rtol=1e-7)
    assert cal.shrinkage_ == [0.0, 10.0, math.inf][int(np.argmin(want))]


def test_folds_spread_every_group_evenly():
    codes = np.repeat(np.arange(5), [3, 10, 11, 1, 27])
    folds = _fold_ids(codes, 4, 0)
    for c in range(5):
        counts = np.bincount(folds[codes == c], minlength=4)
        assert counts.max() - counts.min() <= 1


def test_unseen_groups_fall_back_to_the_global_fit_with_a_warning(differing):
    z, y, g = differing
    cal = GroupedCalibrator(shrinkage=0.0).fit(z, y, g)
    g_new = g.copy()
    g_new[:7] = 99
    with pytest.warns(CalibrationWarning, match="7 of 1200 rows"):
        p = cal.predict_proba(z, g_new)
    np.testing.assert_array_equal(p[:7], cal.global_.predict_proba(z[:7]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(p[7:], cal.predict_proba(z[7:], g[7:]))


@pytest.mark.parametrize("base", ["temperature", PlattScaling(platt_targets=False), "isotonic"])
def test_save_load_round_trip_predicts_the_same_bits(differing, base, tmp_path):
    z, y, g = differing
    names = np.array(["north", "south", "east", "west"])[g]
    cal = GroupedCalibrator(base, shrinkage=25.0).fit(z, y, names)
    cal.save(tmp_path / "g.json")
    back = GroupedCalibrator.load(tmp_path / "g.json")
    np.testing.assert_array_equal(back.predict_log_proba(z, names), cal.predict_log_proba(z, names))
    np.testing.assert_array_equal(back.groups_, cal.groups_)
    assert back.get_params()["shrinkage"] == 25.0


def test_save_load_keeps_the_cv_grid_and_scores(tmp_path):
    z, y, g = _data([1.0, 2.0], 100, seed=4)
    cal = GroupedCalibrator(cv=3).fit(z, y, g)
    cal.save(tmp_path / "g.json")
    back = GroupedCalibrator.load(tmp_path / "g.json")
    np.testing.assert_array_equal(back.grid_, cal.grid_)
    np.testing.assert_array_equal(back.cv_nll_, cal.cv_nll_)
    assert back.shrinkage_ == cal.shrinkage_


def test_load_refuses_a_bad_field_naming_it(differing, tmp_path):
    z, y, g = differing
    d = GroupedCalibrator(shrinkage=1.0).fit(z, y, g).to_dict()
    d["state"]["temperatures_"]["__ndarray__"][2] = -1.0
    path = tmp_path / "g.json"
    path.write_text(json.dumps(d))
    with pytest.raises(InputError, match=r"temperatures_.*values > 0"):
        GroupedCalibrator.load(path)


def test_load_refuses_a_wrong_number_of_temperatures(differing, tmp_path):
    z, y, g = differing
    d = GroupedCalibrator(shrinkage=1.0).fit(z, y, g).to_dict()
    d["state"]["temperatures_"]["__ndarray__"].pop()
    path = tmp_path / "g.json"
    path.write_text(json.dumps(d))
    with pytest.raises(InputError, match="temperatures_"):
        GroupedCalibrator.load(path)


def test_string_labels_and_groups(differing):
    z, y, g = differing
    labels = np.array(["a", "b", "c", "d"])[y]
    cal = GroupedCalibrator(shrinkage=5.0).fit(z, labels, g.astype(str))
    assert list(cal.classes_) == ["a", "b", "c", "d"]
    assert set(cal.predict(z, g.astype(str))) <= {"a", "b", "c", "d"}


def test_a_group_of_one_row_does_not_break_the_cv_fit(differing):
    z, y, g = differing
    g = g.copy()
    g[0] = 7
    cal = GroupedCalibrator(cv=3).fit(z, y, g)
    assert np.isfinite(cal.temperatures_).all()
    assert cal.group_sizes_[-1] == 1


def test_wrong_number_of_columns_at_predict_time(differing):
    z, y, g = differing
    cal = GroupedCalibrator(shrinkage=1.0).fit(z, y, g)
    with pytest.raises(InputError, match="expected 4 columns"):
        cal.predict_proba(z[:, :3], g)


@pytest.mark.parametrize("bad", [-1.0, "auto", float("nan")])
def test_a_bad_shrinkage_is_a_clear_error(differing, bad):
    z, y, g = differing
    with pytest.raises(InputError, match="shrinkage"):
        GroupedCalibrator(shrinkage=bad).fit(z, y, g)


def test_the_grouped_calibrators_are_not_command_line_methods():
    assert sorted(available_methods()) == sorted(
        ["beta", "isotonic", "histogram", "bbq", "dirichlet", "ets", "temperature", "vector", "matrix", "platt"])


# ----------------------------------------------------------------------------- grouped_comparison
def _ece_loop(p, y, n_bins=15):
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        m = (conf > lo) & (conf <= hi) if b else (conf >= lo) & (conf <= hi)
        if m.any():
            total += m.sum() / len(y) * abs((pred[m] == y[m]).mean() - conf[m].mean())
    return total


def test_grouped_comparison_numbers_are_each_groups_metrics(differing):
    z, y, g = differing
    grouped = GroupedCalibrator(shrinkage=10.0).fit(z[::2], y[::2], g[::2])
    glob = TemperatureScaling().fit(z[::2], y[::2])
    zt, yt, gt = z[1::2], y[1::2], g[1::2].copy()
    gt[:5] = 9  # a group of 5 rows, unseen in fit
    with pytest.warns(CalibrationWarning, match="5 of"):
        out = grouped_comparison(glob, grouped, zt, yt, gt, n_resamples=200, min_count=20)
    assert [r["group"] for r in out["groups"]] == [0, 1, 2, 3, 9]
    for r in out["groups"]:
        rows = gt == r["group"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CalibrationWarning)  # group 9: the fallback warned above
            probs = (("global", glob.predict_proba(zt[rows])), ("grouped", grouped.predict_proba(zt[rows], gt[rows])))
        for name, cal in probs:
            nll = -np.log(cal[np.arange(rows.sum()), yt[rows]]).mean()
            assert r[name]["nll"] == pytest.approx(nll, rel=1e-10)
            assert r[name]["ece"] == pytest.approx(_ece_loop(cal, yt[rows]), abs=1e-12)
        assert r["n"] == rows.sum()
        if r["group"] == 9:
            assert r["too_small"] and r["difference"] is None and not r["seen"]
        else:
            for key in ("nll", "ece"):
                d = r["difference"][key]
                assert d["estimate"] == pytest.approx(r["grouped"][key] - r["global"][key], abs=1e-12)
                assert d["low"] <= d["estimate"] <= d["high"]
    assert out["overall"]["n"] == len(yt)


def test_grouped_comparison_shows_the_grouped_calibrator_better_where_temperatures_differ():
    z, y, g = _data([0.5, 3.0], 1200, seed=5)
    fit, test = np.arange(len(y)) % 2 == 0, np.arange(len(y)) % 2 == 1
    grouped = GroupedCalibrator(shrinkage=1.0).fit(z[fit], y[fit], g[fit])
    out = grouped_comparison(None, grouped, z[test], y[test], g[test], n_resamples=300)
    # the global temperature (about 2.2) is far from group 0's 0.5: the grouped fit is better there and overall
    assert out["groups"][0]["difference"]["nll"]["high"] < 0
    assert out["overall"]["difference"]["nll"]["high"] < 0


def test_the_readme_example_runs(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = next(b for b in re.findall(r"```python\n(.*?)```", readme, flags=re.S) if "GroupedCalibrator(" in b)
    monkeypatch.chdir(tmp_path)
    ns = {}
    exec(compile(block, "README.md", "exec"), ns)
    np.testing.assert_allclose(ns["grouped"].temperatures_, [3.80, 1.02, 1.87], atol=0.005)
    assert ns["mc"].holdout_["mce_sigma_after"] < ns["mc"].holdout_["mce_sigma_before"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grouped.json"]


def test_a_separable_group_gets_a_finite_penalised_temperature(differing):
    z, y, g = differing
    z, g = z.copy(), g.copy()
    sep = np.arange(40)
    y = y.copy()
    y[sep] = z[sep].argmax(axis=1)  # every label a top logit: the group's own NLL falls as T -> 0
    g[sep] = 9
    lam = 3.0
    cal = GroupedCalibrator(shrinkage=lam).fit(z, y, g)
    b0 = math.log(cal.global_.temperature_)
    res = minimize_scalar(lambda b: _nll_sum(z[sep], y[sep], math.exp(b)) + lam * (b - b0) ** 2,
                          bounds=(b0 - math.log(1000.0), b0), method="bounded", options={"xatol": 1e-11})
    assert math.log(cal.temperatures_[-1]) == pytest.approx(res.x, abs=1e-6)
    assert cal.temperatures_[-1] < cal.global_.temperature_


def test_separate_fits_warn_about_a_group_with_no_finite_optimum(differing):
    z, y, g = differing
    y, g = y.copy(), g.copy()
    y[:40] = z[:40].argmax(axis=1)
    g[:40] = 9
    with pytest.warns(CalibrationWarning, match="1 group"):
        cal = GroupedCalibrator(shrinkage=0.0).fit(z, y, g)
    assert cal.temperatures_[-1] == pytest.approx(cal.global_.temperature_ / 1000.0, rel=1e-9)


def test_zero_shrinkage_keeps_the_base_calibrators_bounds(differing):
    z, y, g = differing
    base = TemperatureScaling(bounds=(0.8, 2.5))
    with pytest.warns(CalibrationWarning, match="2 group"):
        cal = GroupedCalibrator(base, shrinkage=0.0).fit(z, y, g)
    for j in range(4):
        rows = g == j
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # groups 0 and 3 stop at a bound
            own = TemperatureScaling(bounds=(0.8, 2.5)).fit(z[rows], y[rows]).temperature_
        assert cal.temperatures_[j] == pytest.approx(own, rel=1e-8)
    assert cal.temperatures_.min() == pytest.approx(0.8) and cal.temperatures_.max() == pytest.approx(2.5)


class _NeedsTenRows(TemperatureScaling):
    """A calibrator whose fit refuses fewer than 10 rows (unregistered: no name)."""

    name = ""

    def __init__(self, objective="ece", bounds=None, n_bins=15):
        super().__init__(objective, bounds, n_bins)

    def _fit(self, z, y):
        if z.shape[0] < 10:
            raise InputError("logits: too few rows")
        super()._fit(z, y)


def test_a_group_whose_fit_fails_uses_the_global_calibrator(differing):
    z, y, g = differing
    g = g.copy()
    g[:5] = 7
    with pytest.warns(CalibrationWarning, match="failed on 1 group"):
        cal = GroupedCalibrator(_NeedsTenRows(), shrinkage=0.0).fit(z, y, g)
    assert cal.mode_ == "mixture" and cal.calibrators_[-1] is None and cal.weights_[-1] == 0.0
    np.testing.assert_array_equal(cal.predict_proba(z[:5], g[:5]), cal.global_.predict_proba(z[:5]))


def test_load_refuses_a_weight_without_a_calibrator(differing, tmp_path):
    z, y, g = differing
    d = GroupedCalibrator("platt", shrinkage=2.0).fit(z, y, g).to_dict()
    d["state"]["calibrators_"][1] = None
    path = tmp_path / "g.json"
    path.write_text(json.dumps(d))
    with pytest.raises(InputError, match=r"weights_\[1\]"):
        GroupedCalibrator.load(path)
