"""DirichletCalibration against independent references: scipy (numerical gradient), sklearn's
LogisticRegression (the L2 variant), sklearn's StratifiedKFold (the CV choice), and edge cases."""

import json

import numpy as np
import pytest
from conftest import make_logits
from scipy.optimize import approx_fprime, minimize
from scipy.special import log_softmax

import calibrate
from calibrate import metrics
from calibrate.calibrators import DirichletCalibration, get_calibrator
from calibrate.calibrators import dirichlet as dmod

SMALL_GRID = {"lambdas": (1e-3, 1e-1, 10.0), "mus": (1e-3, 1.0)}


def reference_objective(theta, z, y, reg, lam, mu):
    """The penalised objective written from the formula, independently of the module."""
    k = z.shape[1]
    x = log_softmax(z.astype(np.float64), axis=1)
    w, b = theta[: k * k].reshape(k, k), theta[k * k :]
    nll = -np.mean(log_softmax(x @ w.T + b, axis=1)[np.arange(len(y)), y])
    if reg == "odir":
        off = w[~np.eye(k, dtype=bool)]
        return nll + lam / (k * (k - 1)) * np.sum(off**2) + mu / k * np.sum(b**2)
    if reg == "l2":
        return nll + lam / (k * (k + 1)) * (np.sum(w**2) + np.sum(b**2))
    return nll


def theta_of(cal):
    return np.concatenate([cal.weights_.ravel(), cal.bias_])


@pytest.mark.parametrize("reg", ["odir", "l2", "none"])
def test_gradient_matches_a_numerical_gradient(reg):
    z, y = make_logits(n=300, k=4, temperature=2.0, seed=1)
    rng = np.random.default_rng(0)
    theta = rng.normal(size=20) * 0.5
    data = dmod._LogProbs(z, y)
    f, g = dmod.dirichlet_objective(theta, data, reg, 0.7, 0.3)
    assert f == pytest.approx(reference_objective(theta, z, y, reg, 0.7, 0.3), rel=1e-12)
    num = approx_fprime(theta, lambda t: reference_objective(t, z, y, reg, 0.7, 0.3), 1e-7)
    np.testing.assert_allclose(g, num, atol=2e-6)


def test_hessian_matches_a_numerical_hessian():
    z, y = make_logits(n=200, k=3, temperature=2.0, seed=2)
    theta = np.random.default_rng(1).normal(size=12) * 0.5
    data = dmod._LogProbs(z, y)
    h = dmod._hessian(theta, data, "odir", 0.7, 0.3)
    eps = 1e-5  # central differences of the analytic gradient
    num = np.array([(dmod.dirichlet_objective(theta + eps * e, data, "odir", 0.7, 0.3)[1]
                     - dmod.dirichlet_objective(theta - eps * e, data, "odir", 0.7, 0.3)[1]) / (2 * eps)
                    for e in np.eye(12)])
    np.testing.assert_allclose(h, num, rtol=1e-7, atol=1e-8)


@pytest.mark.parametrize("reg,lam,mu", [("odir", 0.5, 0.2), ("odir", 1e-4, 1e-4), ("l2", 1.0, 0.0), ("none", 0.0, 0.0)])
@pytest.mark.parametrize("newton", [True, False])
def test_fit_is_the_optimum_of_the_objective(reg, lam, mu, newton, monkeypatch):
    """Loss within 1e-6 of a slow reference: scipy BFGS with a numerical gradient, started elsewhere."""
    if not newton:
        monkeypatch.setattr(dmod, "NEWTON_MAX_PARAMS", 0)  # the L-BFGS-B path used for k > 25
    z, y = make_logits(n=800, k=3, temperature=2.5, seed=3)
    cal = DirichletCalibration(regularization=reg, reg_lambda=lam, reg_mu=mu).fit(z, y)
    start = np.concatenate([np.eye(3).ravel() * 0.5, np.full(3, 0.1)])
    ref = minimize(reference_objective, start, args=(z, y, reg, lam, mu), method="BFGS",
                   options={"gtol": 1e-9, "maxiter": 5000})
    ours = reference_objective(theta_of(cal), z, y, reg, lam, mu)
    assert ours <= ref.fun + 1e-6
    assert abs(ours - ref.fun) < 1e-6
    assert cal.loss_ == pytest.approx(ours, abs=1e-12)


def test_l2_variant_equals_sklearn_logistic_regression_on_log_probs():
    """Dir-L2 = multinomial logistic regression on [log p, 1] with penalty 1/(2C) |theta|^2 on the
    summed loss: C = k (k + 1) / (2 n lambda)."""
    from sklearn.linear_model import LogisticRegression

    z, y = make_logits(n=1500, k=4, temperature=2.0, seed=4)
    n, k = z.shape
    lam = 2.0
    cal = DirichletCalibration(regularization="l2", reg_lambda=lam).fit(z, y)
    x = np.concatenate([log_softmax(z, axis=1), np.ones((n, 1))], axis=1)
    lr = LogisticRegression(C=k * (k + 1) / (2 * n * lam), fit_intercept=False, tol=1e-12, max_iter=10000).fit(x, y)
    np.testing.assert_allclose(cal.predict_proba(z), lr.predict_proba(x), atol=1e-7)


def test_starts_at_the_identity_and_a_huge_penalty_stays_there():
    z, y = make_logits(n=600, k=5, temperature=1.0, seed=5)
    cal = DirichletCalibration(regularization="odir", reg_lambda=1e12, reg_mu=1e12).fit(z, y)
    off = cal.weights_[~np.eye(5, dtype=bool)]
    assert np.abs(off).max() < 1e-6 and np.abs(cal.bias_).max() < 1e-6
    # the diagonal is unpenalised: what is left is vector scaling of log p (near 1 for T = 1 data)
    assert np.all(np.abs(np.diag(cal.weights_) - 1) < 0.3)


def test_cross_validation_picks_the_grid_point_with_the_lowest_held_out_nll():
    from sklearn.model_selection import StratifiedKFold

    z, y = make_logits(n=600, k=3, temperature=2.0, seed=6)
    cal = DirichletCalibration(cv=3, seed=7, **SMALL_GRID).fit(z, y)
    folds = list(StratifiedKFold(3, shuffle=True, random_state=7).split(z, y))
    ref = np.zeros((3, 2))
    for i, lam in enumerate(SMALL_GRID["lambdas"]):
        for j, mu in enumerate(SMALL_GRID["mus"]):
            for tr, te in folds:
                c = DirichletCalibration(reg_lambda=lam, reg_mu=mu).fit(z[tr], y[tr])
                ref[i, j] += metrics.nll_from_logits(c.predict_log_proba(z[te]), y[te]) * te.size / len(y)
    np.testing.assert_allclose(cal.cv_nll_, ref, atol=1e-7)
    i, j = np.unravel_index(np.argmin(ref), ref.shape)
    assert (cal.reg_lambda_, cal.reg_mu_) == (SMALL_GRID["lambdas"][i], SMALL_GRID["mus"][j])


def test_cv_is_seeded():
    z, y = make_logits(n=400, k=3, temperature=2.0, seed=8)
    a = DirichletCalibration(cv=3, seed=1, **SMALL_GRID).fit(z, y).cv_nll_
    b = DirichletCalibration(cv=3, seed=1, **SMALL_GRID).fit(z, y).cv_nll_
    np.testing.assert_array_equal(a, b)


def test_improves_nll_on_miscalibrated_logits():
    z, y = make_logits(n=3000, k=6, temperature=3.0, seed=9)
    cal = DirichletCalibration(**SMALL_GRID).fit(z, y)
    assert metrics.nll_from_logits(cal.predict_log_proba(z), y) < metrics.nll_from_logits(z, y) - 0.05


def test_row_blocks_give_the_same_fit_and_predictions(monkeypatch):
    z, y = make_logits(n=700, k=4, temperature=2.0, seed=10)
    one = DirichletCalibration(reg_lambda=0.1, reg_mu=0.1).fit(z, y)
    monkeypatch.setattr(dmod, "BLOCK_VALUES", 4 * 64)  # 64-row blocks, nothing cached
    many = DirichletCalibration(reg_lambda=0.1, reg_mu=0.1).fit(z, y)
    np.testing.assert_allclose(theta_of(many), theta_of(one), atol=1e-8)
    np.testing.assert_allclose(many.predict_proba(z), one.predict_proba(z), atol=1e-12)


# ----------------------------------------------------------------------------- edge cases
def test_two_classes():
    z, y = make_logits(n=1000, k=2, temperature=2.0, seed=11)
    cal = DirichletCalibration(**SMALL_GRID).fit(z, y)
    p = cal.predict_proba(z)
    assert p.shape == (1000, 2) and np.allclose(p.sum(1), 1)
    assert metrics.nll_from_logits(cal.predict_log_proba(z), y) <= metrics.nll_from_logits(z, y)


def test_a_class_missing_from_the_fitting_data_stays_finite():
    z, y = make_logits(n=800, k=4, temperature=1.0, seed=12)
    y[y == 3] = 0
    cal = DirichletCalibration(**SMALL_GRID).fit(z, y)
    assert np.all(np.isfinite(cal.weights_)) and np.all(np.isfinite(cal.bias_))
    p = cal.predict_proba(np.array([[-1e4, -1e4, -1e4, 1e4], [0.0, 0.0, 0.0, 0.0]]))
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(1), 1)


def test_perfectly_separable_data_gives_a_finite_fit():
    rng = np.random.default_rng(13)
    y = rng.integers(0, 3, 300)
    z = rng.normal(size=(300, 3))
    z[np.arange(300), y] += 8.0  # every row's arg-max is its label
    for reg in ("odir", "none"):
        cal = DirichletCalibration(regularization=reg, reg_lambda=1e-2, reg_mu=1e-2).fit(z, y)
        assert np.all(np.isfinite(theta_of(cal))) and np.abs(theta_of(cal)).max() <= cal.max_weight
        assert np.all(np.isfinite(cal.predict_log_proba(z)))


def test_float32_input_gives_the_float64_result():
    z, y = make_logits(n=800, k=4, temperature=2.0, seed=14, dtype=np.float32)
    a = DirichletCalibration(reg_lambda=0.1, reg_mu=0.1).fit(z, y)
    b = DirichletCalibration(reg_lambda=0.1, reg_mu=0.1).fit(z.astype(np.float64), y)
    np.testing.assert_array_equal(theta_of(a), theta_of(b))
    assert a.predict_proba(z).dtype == np.float64


def test_bad_hyperparameters_are_clear_errors():
    z, y = make_logits(n=100, k=3, seed=15)
    with pytest.raises(calibrate.InputError, match="regularization"):
        DirichletCalibration(regularization="l1").fit(z, y)
    with pytest.raises(calibrate.InputError, match="reg_lambda"):
        DirichletCalibration(reg_lambda=-1.0).fit(z, y)
    with pytest.raises(calibrate.InputError, match="cv"):
        DirichletCalibration(cv=1).fit(z, y)


# ----------------------------------------------------------------------------- registry and JSON
def test_registered_and_round_trips_through_json(tmp_path):
    z, y = make_logits(n=500, k=3, seed=16)
    cal = get_calibrator("dirichlet", **SMALL_GRID).fit(z, y)
    assert isinstance(cal, DirichletCalibration)
    cal.save(tmp_path / "d.json")
    d = json.loads((tmp_path / "d.json").read_text())
    assert isinstance(d["state"]["weights_"]["__ndarray__"], list)
    loaded = calibrate.load(tmp_path / "d.json")
    np.testing.assert_array_equal(loaded.predict_proba(z), cal.predict_proba(z))


@pytest.mark.parametrize("field,value,match", [
    ("weights_", [[1.0, 0.0], [0.0, 1.0]], "shape"),
    ("bias_", [0.0, 0.0], "shape"),
    ("weights_", [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, float("nan")]], "finite"),
])
def test_loading_checks_shapes_and_finiteness(tmp_path, field, value, match):
    z, y = make_logits(n=300, k=3, seed=17)
    cal = DirichletCalibration(reg_lambda=0.1, reg_mu=0.1).fit(z, y)
    d = cal.to_dict()
    d["state"][field] = {"__ndarray__": value, "dtype": "float64"}
    with pytest.raises(calibrate.InputError, match=match):
        calibrate.Calibrator.from_dict(d, "cal.json")


def test_unfitted_use_is_a_clear_error():
    with pytest.raises(calibrate.NotFittedError, match="fit"):
        DirichletCalibration().predict_proba(np.zeros((2, 3)))


# ----------------------------------------------------------------------------- invariants (hypothesis)
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 10_000))
def test_equivariant_to_class_order_and_invariant_to_a_row_shift(seed):
    z, y = make_logits(n=300, k=4, temperature=2.0, seed=seed)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(4)
    inv = np.argsort(perm)
    a = DirichletCalibration(reg_lambda=0.05, reg_mu=0.05).fit(z, y).predict_proba(z)
    b = DirichletCalibration(reg_lambda=0.05, reg_mu=0.05).fit(z[:, perm], inv[y]).predict_proba(z[:, perm])
    np.testing.assert_allclose(b, a[:, perm], atol=1e-8)
    shift = rng.normal(size=(300, 1)) * 30
    c = DirichletCalibration(reg_lambda=0.05, reg_mu=0.05).fit(z + shift, y).predict_proba(z + shift)
    np.testing.assert_allclose(c, a, atol=1e-8)
