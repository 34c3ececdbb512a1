"""BetaCalibration against betacal (where installed), scikit-learn's unpenalised logistic regression
on the same features, and edge cases; Platt's Bayesian-prior targets against sklearn."""

import json

import numpy as np
import pytest
from conftest import make_logits
from scipy.special import expit, softmax

import calibrate
from calibrate import metrics
from calibrate.calibrators import BetaCalibration, get_calibrator


def binary_scores(n=2000, seed=0, a=0.6, b=1.4, c=0.3):
    """Scores p in (0, 1) and labels drawn from the beta map logit q = a ln p - b ln(1-p) + c."""
    rng = np.random.default_rng(seed)
    p = rng.beta(2.0, 2.0, n).clip(1e-6, 1 - 1e-6)
    q = expit(a * np.log(p) - b * np.log1p(-p) + c)
    return p, (rng.random(n) < q).astype(int)


def nll_binary(q, y):
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q)))


@pytest.mark.parametrize("parameters", ["abm", "ab", "am"])
def test_matches_betacal(parameters):
    betacal = pytest.importorskip("betacal")
    z, y = make_logits(n=2000, k=2, temperature=2.0, seed=3)
    p = softmax(z, axis=1)[:, 1]
    ref = betacal.BetaCalibration(parameters).fit(p, y)
    ours = BetaCalibration(parameters, scores="probs").fit(p, y)
    q, r = ours.predict_proba(p)[:, 1], ref.predict(p)
    assert np.abs(q - r).max() < 5e-4
    assert nll_binary(q, y) <= nll_binary(r, y) + 1e-12
    # from the logits, the same fit
    np.testing.assert_allclose(BetaCalibration(parameters).fit(z, y).predict_proba(z)[:, 1], q, atol=1e-9)


def test_abm_equals_unpenalised_logistic_regression_on_the_features():
    from sklearn.linear_model import LogisticRegression

    p, y = binary_scores(seed=1)
    cal = BetaCalibration(scores="probs").fit(p, y)
    x = np.stack([np.log(p), -np.log1p(-p)], 1)
    lr = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(x, y)
    assert cal.a_[0] == pytest.approx(lr.coef_[0, 0], rel=1e-5)
    assert cal.b_[0] == pytest.approx(lr.coef_[0, 1], rel=1e-5)
    assert cal.c_[0] == pytest.approx(lr.intercept_[0], abs=1e-5)


def test_ab_fixes_the_midpoint_at_one_half():
    p, y = binary_scores(seed=2)
    cal = BetaCalibration("ab", scores="probs").fit(p, y)
    assert cal.predict_proba(np.array([0.5]))[0, 1] == pytest.approx(0.5, abs=1e-12)
    assert cal.m_[0] == pytest.approx(0.5, abs=1e-9)


def test_am_is_logistic_calibration_on_the_log_odds():
    from sklearn.linear_model import LogisticRegression

    p, y = binary_scores(seed=3)
    cal = BetaCalibration("am", scores="probs").fit(p, y)
    s = (np.log(p) - np.log1p(-p)).reshape(-1, 1)
    lr = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(s, y)
    assert cal.a_[0] == cal.b_[0] == pytest.approx(lr.coef_[0, 0], rel=1e-5)
    assert cal.m_[0] == pytest.approx(1 / (1 + np.exp(cal.c_[0] / cal.a_[0])), rel=1e-9)


def test_negative_a_is_refitted_without_the_ln_p_feature():
    from sklearn.linear_model import LogisticRegression

    p, y = binary_scores(n=5000, seed=4, a=-1.0, b=1.0, c=0.0)
    cal = BetaCalibration(scores="probs").fit(p, y)
    assert cal.a_[0] == 0.0
    lr = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(-np.log1p(-p).reshape(-1, 1), y)
    assert cal.b_[0] == pytest.approx(lr.coef_[0, 0], rel=1e-5)
    assert cal.c_[0] == pytest.approx(lr.intercept_[0], abs=1e-5)


def test_multiclass_is_one_vs_rest_then_renormalised():
    z, y = make_logits(n=1500, k=4, temperature=2.0, seed=5)
    cal = BetaCalibration().fit(z, y)
    p = softmax(z, axis=1)
    q = np.stack([BetaCalibration(scores="probs").fit(p[:, j], (y == j).astype(int)).predict_proba(p[:, j])[:, 1]
                  for j in range(4)], 1)
    np.testing.assert_allclose(cal.predict_proba(z), q / q.sum(1, keepdims=True), atol=1e-8)


# ----------------------------------------------------------------------------- edge cases
def test_one_class_absent_and_separable_data_stay_finite():
    p = np.linspace(0.01, 0.99, 200)
    y0 = np.zeros(200, int)
    cal = BetaCalibration(scores="probs").fit(p, y0)
    q = cal.predict_proba(p)[:, 1]
    assert np.all(np.isfinite([cal.a_, cal.b_, cal.c_])) and q.max() < 1e-6
    ysep = (p > 0.5).astype(int)
    cal = BetaCalibration(scores="probs").fit(p, ysep)
    assert np.all(np.isfinite([cal.a_, cal.b_, cal.c_]))
    assert np.all(np.isfinite(cal.predict_log_proba(p)))


def test_probabilities_of_exactly_0_and_1_are_clipped_like_betacal():
    p = np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    y = np.array([0, 0, 1, 0, 1, 1])
    q = BetaCalibration(scores="probs").fit(p, y).predict_proba(p)
    assert np.all(np.isfinite(q)) and np.allclose(q.sum(1), 1)


def test_float32_input_gives_the_float64_result():
    z, y = make_logits(n=1000, k=2, temperature=2.0, seed=6, dtype=np.float32)
    a = BetaCalibration().fit(z, y)
    b = BetaCalibration().fit(z.astype(np.float64), y)
    assert (a.a_[0], a.b_[0], a.c_[0]) == (b.a_[0], b.b_[0], b.c_[0])


def test_improves_a_miscalibrated_binary_model():
    z, y = make_logits(n=3000, k=2, temperature=3.0, seed=7)
    cal = BetaCalibration().fit(z, y)
    assert metrics.nll_from_logits(cal.predict_log_proba(z), y) < metrics.nll_from_logits(z, y)


def test_bad_options_are_clear_errors():
    z, y = make_logits(n=100, k=2, seed=8)
    with pytest.raises(calibrate.InputError, match="parameters"):
        BetaCalibration("abc").fit(z, y)
    with pytest.raises(calibrate.InputError, match="scores"):
        BetaCalibration(scores="odds").fit(z, y)
    with pytest.raises(calibrate.InputError, match="probabilities"):
        BetaCalibration(scores="probs").fit(np.array([0.2, 1.5]), np.array([0, 1]))


# ----------------------------------------------------------------------------- registry and JSON
@pytest.mark.parametrize("k", [2, 3])
def test_registered_and_round_trips_through_json(tmp_path, k):
    z, y = make_logits(n=500, k=k, seed=9)
    cal = get_calibrator("beta").fit(z, y)
    cal.save(tmp_path / "b.json")
    assert isinstance(json.loads((tmp_path / "b.json").read_text())["state"]["a_"]["__ndarray__"], list)
    loaded = calibrate.load(tmp_path / "b.json")
    np.testing.assert_array_equal(loaded.predict_proba(z), cal.predict_proba(z))


def test_loading_checks_the_shape_against_n_classes():
    z, y = make_logits(n=300, k=3, seed=10)
    d = BetaCalibration().fit(z, y).to_dict()
    d["state"]["a_"] = {"__ndarray__": [1.0], "dtype": "float64"}
    with pytest.raises(calibrate.InputError, match="shape"):
        calibrate.Calibrator.from_dict(d, "b.json")


# ----------------------------------------------------------------------------- Platt's targets
def test_platt_bayesian_prior_targets_match_sklearn_sigmoid_calibration_tightly():
    """PlattScaling(platt_targets=True) uses (N+ + 1)/(N+ + 2) and 1/(N- + 2), as sklearn's
    _sigmoid_calibration; both minimise the same convex loss, so the probabilities agree."""
    from sklearn.calibration import _sigmoid_calibration

    z, y = make_logits(n=3000, k=2, temperature=2.0, seed=11)
    s = z[:, 1] - z[:, 0]
    cal = calibrate.PlattScaling(platt_targets=True).fit(z, y)
    a, b = _sigmoid_calibration(s, y)  # sklearn: p = 1 / (1 + exp(a s + b))
    np.testing.assert_allclose(cal.predict_proba(z)[:, 1], expit(-(a * s + b)), atol=1e-5)
    hard = calibrate.PlattScaling(platt_targets=False).fit(z, y)
    assert not np.allclose(hard.predict_proba(z), cal.predict_proba(z), atol=1e-7)


def test_multiclass_with_a_class_absent_from_the_fitting_data():
    z, y = make_logits(n=600, k=4, temperature=1.0, seed=12)
    y[y == 3] = 0
    cal = BetaCalibration().fit(z, y)
    assert np.all(np.isfinite(np.concatenate([cal.a_, cal.b_, cal.c_])))
    p = cal.predict_proba(np.array([[-1e4, -1e4, -1e4, 1e4], [1e4, 1e4, 1e4, 1e4]]))
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(1), 1)
