"""Calibrators against independent references (scipy, scikit-learn) and their shared contract."""

import numpy as np
import pytest
from conftest import make_logits
from scipy.optimize import brentq, minimize, minimize_scalar
from scipy.special import log_softmax, softmax

import calibrate
from calibrate import metrics
from calibrate.calibrators import available_methods, get_calibrator

ALL = ["temperature", "vector", "matrix", "platt", "isotonic", "histogram", "bbq"]


def reference_temperature(z, y, bounds=(0.05, 100)):
    z = z.astype(np.float64)

    def nll(log_t):
        return -np.mean(log_softmax(z / np.exp(log_t), axis=1)[np.arange(len(y)), y])

    r = minimize_scalar(nll, bounds=np.log(bounds), method="bounded", options={"xatol": 1e-12})
    return float(np.exp(r.x))


def test_every_method_is_registered():
    assert sorted(available_methods()) == sorted(ALL + ["dirichlet", "beta", "ets"])


# --------------------------------------------------------------------- temperature
@pytest.mark.parametrize("true_t", [0.1, 0.3, 1.0, 2.5, 7.0, 20.0, 50.0])
def test_temperature_is_the_exact_nll_optimum(true_t):
    z, y = make_logits(n=3000, k=10, temperature=true_t, seed=int(true_t * 10))
    cal = calibrate.TemperatureScaling().fit(z, y)
    assert cal.temperature_ == pytest.approx(reference_temperature(z, y), rel=1e-4)
    assert abs(cal.grad_log_t_) < 1e-8
    assert cal.nll_after_ <= cal.nll_before_


def test_temperature_fit_in_float32_equals_float64():
    z, y = make_logits(temperature=2.5)
    t32 = calibrate.TemperatureScaling().fit(z.astype(np.float32), y).temperature_
    assert t32 == pytest.approx(reference_temperature(z.astype(np.float32), y), rel=1e-6)


def test_temperature_stops_at_a_bound_when_the_optimum_lies_outside():
    z, y = make_logits(temperature=0.01)
    cal = calibrate.TemperatureScaling(bounds=(0.05, 100)).fit(z, y)
    assert cal.temperature_ == pytest.approx(0.05) and cal.at_bound_


def _margin_logits(n, k, margin, seed, wrong=0):
    """Logits whose label is the top logit by about ``margin`` (separable), except ``wrong``
    rows whose label is the bottom logit by that margin."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k))
    z[np.arange(n), y] += margin
    z[np.arange(wrong), y[:wrong]] -= 2 * margin
    return z, y


@pytest.mark.parametrize("margin", [20.0, 50.0, 100.0])
@pytest.mark.parametrize("bounds", [(0.05, 100.0), (1e-3, 10.0), (0.5, 2.0)])
def test_temperature_on_separable_rows_stops_at_the_lower_bound(margin, bounds):
    # every label is the top logit: the NLL keeps falling as T -> 0 (Newton used to stall
    # there and raise "did not converge")
    z, y = _margin_logits(1000, 10, margin, seed=int(margin))
    with pytest.warns(RuntimeWarning, match="at or beyond the bound"):
        cal = calibrate.TemperatureScaling(bounds=bounds).fit(z, y)
    assert cal.temperature_ == bounds[0] and cal.at_bound_
    assert cal.n_iter_ <= 20


@pytest.mark.parametrize("bounds", [(0.05, 100.0), (1e-3, 10.0)])
def test_temperature_on_reversed_separable_rows_stops_at_the_upper_bound(bounds):
    # every label is the bottom logit by a wide margin: the NLL falls as T -> inf
    z, y = _margin_logits(1000, 10, 30.0, seed=3)
    with pytest.warns(RuntimeWarning, match="at or beyond the bound"):
        cal = calibrate.TemperatureScaling(bounds=bounds).fit(-z, y)
    assert cal.temperature_ == bounds[1] and cal.at_bound_


@pytest.mark.parametrize("margin,wrong", [(20.0, 1), (20.0, 5), (50.0, 3), (8.0, 50)])
def test_temperature_near_separable_optimum_inside_the_bounds_is_the_scipy_one(margin, wrong):
    # a few wrong rows keep the optimum finite but deep in the exp(-margin / T) tail
    z, y = _margin_logits(2000, 10, margin, seed=int(margin) + wrong, wrong=wrong)
    bounds = (1e-3, 100.0)
    ref = reference_temperature(z, y, bounds)
    assert bounds[0] * 1.01 < ref < bounds[1] / 1.01  # the test is about an interior optimum
    cal = calibrate.TemperatureScaling(bounds=bounds).fit(z, y)
    assert not cal.at_bound_
    # minimize_scalar on the NLL resolves T only to ~sqrt(eps) (the NLL is flat at its
    # minimum): 1e-7 here; the root of the gradient (scipy softmax, brentq) to 1e-10
    assert cal.temperature_ == pytest.approx(ref, rel=1e-7)

    def grad_a(a):  # dNLL/da at a = 1/T: mean of E_p[z] - z_y
        return np.mean((softmax(a * z, axis=1) * z).sum(1) - z[np.arange(len(y)), y])

    root = brentq(grad_a, 1.0 / bounds[1], 1.0 / bounds[0], xtol=1e-15, rtol=1e-15)
    assert cal.temperature_ == pytest.approx(1.0 / root, rel=1e-10)


def test_temperature_keeps_the_argmax(logits_labels):
    z, y = logits_labels
    p = calibrate.TemperatureScaling().fit(z, y).predict_proba(z)
    assert np.array_equal(p.argmax(1), z.argmax(1))


def test_temperature_handles_logits_of_magnitude_1e4():
    z, y = make_logits(temperature=1.0)
    z = z / np.abs(z).max() * 1e4
    cal = calibrate.TemperatureScaling().fit(z, y)
    assert np.isfinite(cal.temperature_) and not cal.at_bound_
    # the optimum (about 1.1e3) lies beyond the old default bound of 100: the bracket widens
    assert cal.temperature_ == pytest.approx(reference_temperature(z, y, bounds=(1.0, 1e6)), rel=1e-6)


def test_temperature_ece_objective_lowers_ece(logits_labels):
    z, y = logits_labels
    cal = calibrate.TemperatureScaling(objective="ece").fit(z, y)
    assert metrics.ece(cal.predict_proba(z), y) <= metrics.ece(metrics.softmax(z), y)
    t_grid = np.exp(np.linspace(np.log(0.05), np.log(100), 2000))
    best = min(metrics.ece(metrics.softmax(z / t), y) for t in t_grid)
    assert metrics.ece(cal.predict_proba(z), y) <= best + 1e-3


def test_temperature_as_torch_module(logits_labels):
    torch = pytest.importorskip("torch")
    z, y = logits_labels
    cal = calibrate.TemperatureScaling().fit(z, y)
    out = torch.softmax(cal.to_torch()(torch.tensor(z)), 1).numpy()
    np.testing.assert_allclose(out, cal.predict_proba(z), rtol=1e-10, atol=1e-14)


# --------------------------------------------------------------------- vector / matrix
def test_unregularised_matrix_scaling_equals_multinomial_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    z, y = make_logits(n=2000, k=4, temperature=2.0, seed=5)
    ours = calibrate.MatrixScaling(reg=0.0).fit(z, y).predict_proba(z)
    lr = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(z, y)
    np.testing.assert_allclose(ours, lr.predict_proba(z), atol=2e-5)


def _numerical_check(cal, z, y, diagonal):
    """The fitted parameters minimise the objective: compare with a derivative-free
    scipy minimisation (Powell) of the same objective started elsewhere."""
    n, k = z.shape
    eye = np.ones(k) if diagonal else np.eye(k)

    def obj(theta):
        w = theta[:k] if diagonal else theta[: k * k].reshape(k, k)
        b = theta[-k:]
        zz = z * w + b if diagonal else z @ w.T + b
        lp = log_softmax(zz, axis=1)
        return -np.mean(lp[np.arange(n), y]) + cal.reg * (np.sum((w - eye) ** 2) + np.sum(b**2))

    start = np.concatenate([np.ravel(eye), np.zeros(k)])
    ref = minimize(obj, start, method="Powell", options={"xtol": 1e-10, "ftol": 1e-14, "maxfev": 200000})
    ours = np.concatenate([cal.weights_.ravel(), cal.bias_])
    assert obj(ours) <= ref.fun + 1e-9


def test_vector_scaling_minimises_its_objective():
    z, y = make_logits(n=1500, k=3, temperature=3.0, seed=2)
    cal = calibrate.VectorScaling().fit(z, y)
    _numerical_check(cal, z, y, diagonal=True)


def test_matrix_scaling_regularised_minimises_its_objective():
    z, y = make_logits(n=1500, k=3, temperature=3.0, seed=3)
    cal = calibrate.MatrixScaling(reg=0.01).fit(z, y)
    _numerical_check(cal, z, y, diagonal=False)


def test_matrix_scaling_works_with_many_classes():
    z, y = make_logits(n=3000, k=100, temperature=2.0, seed=4)
    cal = calibrate.MatrixScaling().fit(z, y)
    assert cal.weights_.shape == (100, 100)
    assert metrics.nll_from_logits(cal.predict_log_proba(z), y) < metrics.nll_from_logits(z, y)


# --------------------------------------------------------------------- Platt
def test_binary_platt_equals_logistic_regression_on_the_log_odds():
    from sklearn.linear_model import LogisticRegression

    z, y = make_logits(n=2000, k=2, temperature=2.0, seed=6)
    cal = calibrate.PlattScaling(platt_targets=False).fit(z, y)
    s = (z[:, 1] - z[:, 0]).reshape(-1, 1)
    lr = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(s, y)
    assert cal.a_[0] == pytest.approx(lr.coef_[0, 0], rel=1e-5)
    assert cal.b_[0] == pytest.approx(lr.intercept_[0], abs=1e-5)


def test_platt_targets_match_sklearn_sigmoid_calibration():
    from sklearn.calibration import _sigmoid_calibration

    z, y = make_logits(n=2000, k=2, temperature=2.0, seed=7)
    cal = calibrate.PlattScaling().fit(z, y)
    a, b = _sigmoid_calibration(z[:, 1] - z[:, 0], y)  # sklearn: p = 1 / (1 + exp(a s + b))
    assert cal.a_[0] == pytest.approx(-a, rel=1e-3)
    assert cal.b_[0] == pytest.approx(-b, abs=1e-3)


def test_multiclass_platt_is_one_vs_rest_on_log_odds():
    z, y = make_logits(n=1000, k=4, temperature=2.0, seed=8)
    cal = calibrate.PlattScaling(platt_targets=False).fit(z, y)
    p = metrics.softmax(z)
    s = np.log(p[:, 2]) - np.log1p(-p[:, 2])
    q = 1 / (1 + np.exp(-(cal.a_[2] * s + cal.b_[2])))
    qs = np.stack([1 / (1 + np.exp(-(cal.a_[j] * (np.log(p[:, j]) - np.log1p(-p[:, j])) + cal.b_[j]))) for j in range(4)], 1)
    np.testing.assert_allclose(cal.predict_proba(z)[:, 2], q / qs.sum(1), rtol=1e-9)


# --------------------------------------------------------------------- isotonic / histogram / BBQ
def test_binary_isotonic_equals_sklearn_isotonic_regression():
    from sklearn.isotonic import IsotonicRegression

    z, y = make_logits(n=2000, k=2, temperature=2.0, seed=9)
    p1 = metrics.softmax(z)[:, 1]
    ref = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(p1, y).predict(p1)
    ref = np.clip(ref, 1e-6, 1 - 1e-6)
    np.testing.assert_allclose(calibrate.IsotonicCalibration().fit(z, y).predict_proba(z)[:, 1], ref, atol=1e-15)


def test_isotonic_fits_in_float64_for_float32_input():
    z, y = make_logits(n=3000, k=2, temperature=2.0, seed=10)
    p64 = calibrate.IsotonicCalibration().fit(z, y).predict_proba(z)
    p32 = calibrate.IsotonicCalibration().fit(z.astype(np.float32), y).predict_proba(z.astype(np.float32))
    assert np.abs(p64 - p32).max() < 1e-4


def test_histogram_binning_hand_computed():
    # binary, 2 bins: p1 in (0, .5] -> frequency of class 1 there, (.5, 1] likewise
    p1 = np.array([0.1, 0.2, 0.4, 0.6, 0.7, 0.9])
    y = np.array([0, 0, 1, 1, 1, 0])
    z = np.stack([np.zeros(6), np.log(p1 / (1 - p1))], 1)
    q = calibrate.HistogramBinning(n_bins=2).fit(z, y).predict_proba(z)[:, 1]
    np.testing.assert_allclose(q, [1 / 3] * 3 + [2 / 3] * 3)


def test_histogram_empty_bin_maps_to_its_midpoint():
    p1 = np.array([0.1, 0.2, 0.9])
    z = np.stack([np.zeros(3), np.log(p1 / (1 - p1))], 1)
    cal = calibrate.HistogramBinning(n_bins=4).fit(z, np.array([0, 1, 1]))
    q = cal.predict_proba(np.array([[0.0, 0.0]]))[0, 1]  # p1 = .5: bin (.25, .5] is empty
    assert q == pytest.approx(0.375)


def test_bbq_single_model_is_the_beta_posterior_mean():
    # with C huge the model range still includes B=1 only when N^(1/3)/C < 1 < ... ; force one model
    p1 = np.array([0.2, 0.4, 0.6, 0.8])
    y = np.array([0, 1, 1, 1])
    z = np.stack([np.zeros(4), np.log(p1 / (1 - p1))], 1)
    cal = calibrate.BBQ(c=1.0).fit(z, y)  # N = 4: B from floor(1.587) = 1 to ceil(1.587) = 2
    models = cal.maps_[0]["models"]
    assert [m["values"].size for m in models] == [1, 2]
    one = models[0]["values"][0]  # B = 1: alpha = 2 * .5, beta = 1: (3 + 1) / (4 + 2)
    assert one == pytest.approx(4 / 6)


def test_bbq_weights_follow_the_bayesian_score():
    from scipy.special import betaln

    p1 = np.array([0.2, 0.4, 0.6, 0.8])
    y = np.array([0, 0, 1, 1])
    z = np.stack([np.zeros(4), np.log(p1 / (1 - p1))], 1)
    w = calibrate.BBQ(c=1.0, prune=0.0).fit(z, y).maps_[0]["weights"]
    # marginal likelihood of a bin: B(k + a, n - k + b) / B(a, b)
    s1 = betaln(2 + 1, 2 + 1) - betaln(1, 1)
    # B = 2: edges 0, .4, 1 (the package's equal-mass rule): bins [0, .4] (midpoint .2)
    # and (.4, 1] (midpoint .7); alpha + beta = N' / B = 1
    s2 = (betaln(0 + 0.2, 2 + 0.8) - betaln(0.2, 0.8)) + (betaln(2 + 0.7, 0 + 0.3) - betaln(0.7, 0.3))
    ref = np.exp([s1, s2]) / np.exp([s1, s2]).sum()
    np.testing.assert_allclose(w, ref, rtol=1e-10)


# --------------------------------------------------------------------- shared contract
@pytest.mark.parametrize("method", ALL)
def test_rows_sum_to_one_and_improve_nll(method, logits_labels):
    z, y = logits_labels
    cal = get_calibrator(method).fit(z, y)
    p = cal.predict_proba(z)
    assert p.shape == z.shape and p.dtype == np.float64
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-12)
    assert np.all(p > 0)
    assert metrics.ece(p, y) < metrics.ece(metrics.softmax(z), y)


@pytest.mark.parametrize("method", ALL)
def test_save_load_round_trip_predicts_identically(method, logits_labels, tmp_path):
    z, y = logits_labels
    cal = get_calibrator(method).fit(z, y)
    cal.save(tmp_path / "cal.json")
    text = (tmp_path / "cal.json").read_text()
    assert text.lstrip().startswith("{")  # plain JSON
    loaded = calibrate.load(tmp_path / "cal.json")
    assert type(loaded) is type(cal)
    np.testing.assert_array_equal(loaded.predict_proba(z), cal.predict_proba(z))


@pytest.mark.parametrize("method", ALL)
def test_unfitted_use_is_a_clear_error(method):
    with pytest.raises(calibrate.NotFittedError, match="fit"):
        get_calibrator(method).predict_proba(np.zeros((2, 3)))


@pytest.mark.parametrize("method", ALL)
def test_fit_returns_self(method, logits_labels):
    cal = get_calibrator(method)
    assert cal.fit(*logits_labels) is cal


@pytest.mark.parametrize("method", ["platt", "isotonic", "histogram", "bbq"])
def test_one_vs_rest_never_gives_an_all_zero_row(method):
    # a class absent from the fitting data and far-out test logits drive every map to 0
    z, y = make_logits(n=500, k=4, temperature=1.0, seed=11)
    y[y == 3] = 0
    cal = get_calibrator(method).fit(z, y)
    test = np.array([[-1e4, -1e4, -1e4, 1e4], [1e4, 1e4, 1e4, 1e4]])
    p = cal.predict_proba(test)
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(1), 1)


@pytest.mark.parametrize("method", ALL)
def test_wrong_number_of_classes_at_predict_time(method, logits_labels):
    cal = get_calibrator(method).fit(*logits_labels)
    with pytest.raises(calibrate.InputError, match="fitted on 10 classes"):
        cal.predict_proba(np.zeros((2, 3)))


def test_loading_a_non_calibrator_json_is_a_clear_error(tmp_path):
    (tmp_path / "x.json").write_text('{"a": 1}')
    with pytest.raises(calibrate.InputError, match="not a calibrate calibrator"):
        calibrate.load(tmp_path / "x.json")


# --------------------------------------------------------------------- invariants (hypothesis)
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=15, deadline=None)
@given(st.floats(0.2, 20.0), st.integers(0, 10_000))
def test_temperature_scales_with_the_logits(c, seed):
    z, y = make_logits(n=400, k=5, temperature=2.0, seed=seed)
    t1 = calibrate.TemperatureScaling(bounds=(1e-3, 1e4)).fit(z, y).temperature_
    t2 = calibrate.TemperatureScaling(bounds=(1e-3, 1e4)).fit(z * c, y).temperature_
    assert t2 == pytest.approx(c * t1, rel=1e-8)


@settings(max_examples=10, deadline=None)
@given(st.sampled_from(["temperature", "platt", "isotonic", "histogram", "bbq"]), st.integers(0, 10_000))
def test_softmax_based_calibrators_ignore_a_per_row_shift(method, seed):
    z, y = make_logits(n=300, k=4, temperature=2.0, seed=seed)
    shift = np.random.default_rng(seed).normal(size=(300, 1)) * 50
    a = get_calibrator(method).fit(z, y).predict_proba(z)
    b = get_calibrator(method).fit(z + shift, y).predict_proba(z + shift)
    np.testing.assert_allclose(a, b, atol=1e-7)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 10_000))
def test_temperature_is_equivariant_to_class_order(seed):
    z, y = make_logits(n=300, k=6, temperature=2.0, seed=seed)
    perm = np.random.default_rng(seed).permutation(6)
    inv = np.argsort(perm)
    a = calibrate.TemperatureScaling().fit(z, y)
    b = calibrate.TemperatureScaling().fit(z[:, perm], inv[y])
    assert b.temperature_ == pytest.approx(a.temperature_, rel=1e-10)
