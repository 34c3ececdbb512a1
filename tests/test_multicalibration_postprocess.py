"""MulticalibrationPostprocessor: the patches against a brute-force replay of the algorithm,
the held-out check, the stopping rule, predict reproducing the fit, and the JSON round trip."""

import itertools
import json
import warnings

import numpy as np
import pytest

from calibrate._core.validation import CalibrationWarning, InputError
from calibrate.calibrators import MulticalibrationPostprocessor as MC
from calibrate.calibrators.multicalibration import _code
from calibrate.metrics.multicalibration import multicalibration_error_from_scores


def _data(n, shift=1.0, seed=0):
    """Scores s ~ Beta(2, 2), calibrated except in region "c", whose log-odds are off by ``shift``."""
    rng = np.random.default_rng(seed)
    region = rng.choice(np.array(["a", "b", "c", "d"]), n)
    age = rng.uniform(20, 80, n)
    plan = rng.integers(0, 3, n)
    s = rng.beta(2, 2, n)
    logit = np.log(s / (1 - s)) + np.where(region == "c", shift, 0.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return s, y, {"region": region, "age": age, "plan": plan}


SEG = {"categorical": ["region", "plan"], "numerical": ["age"], "max_categories": None}


def _mce(s, y, X):
    return multicalibration_error_from_scores(s, y, X, categorical=["region", "plan"], numerical=["age"],
                                              max_categories=None).mce_sigma


def test_held_out_multicalibration_error_drops():
    s, y, X = _data(20000, seed=0)
    mc = MC(**SEG, alpha=0.03, min_mass=0.02).fit(s, y, X, validation_fraction=0.3, seed=0)
    h = mc.holdout_
    assert h["n"] == 6000
    assert h["mce_sigma_after"] < 0.5 * h["mce_sigma_before"]
    # and on fresh rows, measured independently
    s2, y2, X2 = _data(20000, seed=1)
    assert _mce(mc.predict(s2, X2), y2, X2) < 0.5 * _mce(s2, y2, X2)


def test_the_holdout_numbers_are_the_metric_on_the_held_out_rows():
    s, y, X = _data(5000, seed=2)
    mc = MC(**SEG, alpha=0.05, min_mass=0.05).fit(s, y, X, validation_fraction=0.3, seed=4)
    hold = np.setdiff1d(np.arange(5000), mc.fit_rows_)
    Xh = {k: v[hold] for k, v in X.items()}
    assert mc.holdout_["mce_sigma_before"] == _mce(s[hold], y[hold], Xh)
    assert mc.holdout_["mce_sigma_after"] == _mce(mc.predict(s[hold], Xh), y[hold], Xh)


def test_calibrated_scores_are_left_almost_alone():
    s, y, X = _data(20000, shift=0.0, seed=3)
    mc = MC(**SEG, alpha=0.05, min_mass=0.05).fit(s, y, X)
    assert mc.n_iter_ <= 1
    assert np.abs(mc.predict(s, X) - s).max() <= 0.06


@pytest.mark.filterwarnings("ignore:MulticalibrationPostprocessor. stopped after max_iter")
def test_predict_on_the_fitting_rows_reproduces_the_fitted_scores():
    s, y, X = _data(6000, seed=4)
    X["age"] = X["age"].copy()
    X["age"][::50] = np.nan
    X["region"] = X["region"].astype(object)
    X["region"][::37] = None
    mc = MC(categorical=["region", "plan"], numerical=["age"], alpha=0.02, min_mass=0.01).fit(
        s, y, X, validation_fraction=0.25, seed=1)
    assert mc.n_iter_ > 3
    rows = mc.fit_rows_
    np.testing.assert_array_equal(mc.predict(s[rows], {k: v[rows] for k, v in X.items()}), mc.fitted_scores_)


@pytest.mark.filterwarnings("ignore:MulticalibrationPostprocessor. stopped after max_iter")
def test_patched_scores_stay_in_the_unit_interval():
    s, y, X = _data(3000, shift=3.0, seed=5)
    out = MC(**SEG, alpha=0.01, min_mass=0.01).fit(s, y, X).predict(s, X)
    assert out.min() >= 0 and out.max() <= 1


def _replay(s, r, X, cols, alpha, min_count, nb, max_iter, max_depth):
    """The algorithm written out: every segment (all value combinations of up to max_depth columns,
    at least 10 rows) x every bin; patch the qualifying cell of largest count x residual^2."""
    s = s.copy()
    segs = []
    for d in range(max_depth + 1):
        for combo in itertools.combinations(cols, d):
            for vals in itertools.product(*[np.unique(X[c]) for c in combo]):
                mask = np.ones(len(s), bool)
                for c, v in zip(combo, vals):
                    mask &= X[c] == v
                if mask.sum() >= 10:
                    segs.append(mask)
    patches = []
    for _ in range(max_iter):
        b = np.minimum(np.floor(s * nb), nb - 1)
        best = None
        for mask in segs:
            for v in range(nb):
                cell = mask & (b == v)
                m = cell.sum()
                if m >= min_count:
                    rbar = np.mean(r[cell] - s[cell])
                    if abs(rbar) > alpha and (best is None or m * rbar**2 > best[0]):
                        best = (m * rbar**2, cell, rbar)
        if best is None:
            break
        _, cell, rbar = best
        s[cell] = np.clip(s[cell] + rbar, 0, 1)
        patches.append((int(cell.sum()), rbar))
    return s, patches


def test_patches_equal_a_brute_force_replay():
    s, y, X = _data(3000, seed=6)
    mc = MC(categorical=["region", "plan"], alpha=0.04, min_mass=0.03, n_score_bins=5, max_depth=2,
            max_categories=None).fit(s, y, X)
    want_s, want = _replay(s, y.astype(float), X, ["region", "plan"], 0.04, 90, 5, 200, 2)
    assert len(want) > 2
    assert [p["count"] for p in mc.patches_] == [m for m, _ in want]
    np.testing.assert_allclose([p["shift"] for p in mc.patches_], [r for _, r in want], rtol=1e-12)
    np.testing.assert_allclose(mc.fitted_scores_, want_s, rtol=0, atol=1e-12)


def test_after_convergence_no_cell_exceeds_the_tolerance():
    s, y, X = _data(4000, seed=7)
    mc = MC(categorical=["region", "plan"], alpha=0.04, min_mass=0.03, n_score_bins=5, max_depth=2,
            max_categories=None).fit(s, y, X)
    assert mc.converged_
    _, more = _replay(mc.fitted_scores_, y.astype(float), X, ["region", "plan"], 0.04, 120, 5, 1, 2)
    assert more == []


def test_max_iter_stops_with_a_warning():
    s, y, X = _data(4000, seed=8)
    with pytest.warns(CalibrationWarning, match="max_iter = 2"):
        mc = MC(**SEG, alpha=0.01, min_mass=0.01, max_iter=2).fit(s, y, X)
    assert mc.n_iter_ == 2 and not mc.converged_


@pytest.mark.filterwarnings("ignore:MulticalibrationPostprocessor. stopped after max_iter")
def test_an_over_fitting_patch_set_is_flagged_on_held_out_rows():
    s, y, X = _data(3000, shift=0.0, seed=9)
    with pytest.warns(CalibrationWarning, match="over-fit"):
        mc = MC(**SEG, alpha=0.0, min_mass=0.004, max_iter=100).fit(s, y, X, validation_fraction=0.4, seed=0)
    assert mc.holdout_["mce_sigma_after"] > mc.holdout_["mce_sigma_before"]


def test_score_reports_before_and_after_on_given_rows():
    s, y, X = _data(8000, seed=10)
    mc = MC(**SEG, alpha=0.03, min_mass=0.02).fit(s, y, X)
    s2, y2, X2 = _data(4000, seed=11)
    out = mc.score(s2, y2, X2)
    assert out["mce_sigma_before"] == _mce(s2, y2, X2)
    assert out["mce_sigma_after"] == _mce(mc.predict(s2, X2), y2, X2)


def test_top_label_scores_of_probability_rows():
    rng = np.random.default_rng(12)
    s, y, X = _data(4000, seed=12)
    k = 3
    # class 0 gets s, the others share the rest: the top label is class 0 when s > 0.5
    other = rng.uniform(0.3, 0.7, len(s))
    p = np.stack([s, (1 - s) * other, (1 - s) * (1 - other)], axis=1)
    labels = np.where(y == 1, 0, rng.integers(1, k, len(s)))
    mc = MC(**SEG, alpha=0.03, min_mass=0.02).fit(p, labels, X)
    np.testing.assert_array_equal(mc.predict(p, X), mc.fitted_scores_)
    with pytest.warns(CalibrationWarning, match="max_iter = 0"):
        untouched = MC(**SEG, max_iter=0).fit(p, labels, X)
    np.testing.assert_array_equal(untouched.predict(p, X), p.max(axis=1))


@pytest.mark.filterwarnings("ignore:MulticalibrationPostprocessor. stopped after max_iter")
def test_save_load_round_trip(tmp_path):
    s, y, X = _data(6000, seed=13)
    X["age"] = X["age"].copy()
    X["age"][::40] = np.nan
    mc = MC(categorical=["region", "plan"], numerical=["age"], alpha=0.02, min_mass=0.01).fit(
        s, y, X, validation_fraction=0.3, seed=2)
    mc.save(tmp_path / "mc.json")
    back = MC.load(tmp_path / "mc.json")
    s2, _, X2 = _data(3000, seed=14)
    np.testing.assert_array_equal(back.predict(s2, X2), mc.predict(s2, X2))
    assert back.patches_ == mc.patches_ and back.holdout_ == mc.holdout_
    assert back.get_params() == {**mc.get_params(), "categorical": ["region", "plan"], "numerical": ["age"]}


def test_load_refuses_a_patch_naming_no_column_value(tmp_path):
    s, y, X = _data(4000, seed=15)
    d = MC(**SEG, alpha=0.03, min_mass=0.02).fit(s, y, X).to_dict()
    d["state"]["patches_"][0]["segment"] = [[0, 40]]
    path = tmp_path / "mc.json"
    path.write_text(json.dumps(d))
    with pytest.raises(InputError, match=r"patches_\[0\]\.segment"):
        MC.load(path)


def test_new_rows_are_coded_by_the_stored_columns():
    cat = {"name": "c", "kind": "categorical", "values": ["x", "y"], "pooled": True, "nan": False,
           "intervals": False}
    np.testing.assert_array_equal(_code(cat, np.array(["y", "x", "unseen"])), [1, 0, 2])
    closed = {**cat, "pooled": False}
    np.testing.assert_array_equal(_code(closed, np.array(["y", "unseen"], dtype=object)), [1, -1])
    num = {"name": "a", "kind": "numerical", "values": [[0.0, 1.0], [1.0, 2.0]], "pooled": False, "nan": True,
           "intervals": True}
    np.testing.assert_array_equal(_code(num, np.array([-5.0, 0.0, 1.0, 1.5, 9.0, np.nan])), [0, 0, 0, 1, 1, 2])
    few = {**num, "values": [1.0, 3.0], "intervals": False, "nan": False}
    np.testing.assert_array_equal(_code(few, np.array([3.0, 2.0, np.nan])), [1, -1, -1])


def test_no_feature_columns_is_a_clear_error():
    s, y, X = _data(500, seed=16)
    with pytest.raises(InputError, match="at least one feature column"):
        MC().fit(s, y, X)


def test_unfitted_predict_is_a_clear_error():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(Exception, match="not fitted"):
            MC(categorical=["region"]).predict(np.array([0.5]), {"region": np.array(["a"])})
