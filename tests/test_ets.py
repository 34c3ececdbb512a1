"""EnsembleTemperatureScaling against a brute-force search over the simplex and scipy's SLSQP
(the optimiser of the Mix-n-Match code), and edge cases."""

import json

import numpy as np
import pytest
from conftest import make_logits
from scipy.optimize import minimize, minimize_scalar
from scipy.special import softmax

import calibrate
from calibrate import metrics
from calibrate.calibrators import EnsembleTemperatureScaling, get_calibrator, temperature_solver
from calibrate.calibrators import ets as emod


def mixture(z, t, w):
    k = z.shape[1]
    return w[0] * softmax(z / t, axis=1) + w[1] * softmax(z, axis=1) + w[2] / k


def loss(z, y, t, w, kind):
    q = mixture(z, t, w)
    if kind == "nll":
        return -np.mean(np.log(q[np.arange(len(y)), y]))
    onehot = np.eye(z.shape[1])[y]
    return np.mean(np.sum((q - onehot) ** 2, axis=1))


def simplex_grid(m=200):
    a, b = np.meshgrid(np.linspace(0, 1, m + 1), np.linspace(0, 1, m + 1))
    keep = a + b <= 1 + 1e-12
    a, b = a[keep], b[keep]
    return np.stack([a, b, np.clip(1 - a - b, 0, 1)], 1)


def grid_min(z, y, t, kind, m=100):
    """Brute force: the loss at every point of a simplex grid of step 1/m (vectorised)."""
    n, k = z.shape
    comps = np.stack([softmax(z / t, axis=1), softmax(z, axis=1), np.full((n, k), 1 / k)])  # (3, n, k)
    grid = simplex_grid(m)
    if kind == "nll":
        qy = comps[:, np.arange(n), y].T  # (n, 3)
        return float(np.min(-np.mean(np.log(qy @ grid.T), axis=0)))
    onehot = np.eye(k)[y]
    best = np.inf
    for chunk in np.array_split(grid, 20):
        q = np.einsum("gm,mnk->gnk", chunk, comps)
        best = min(best, float(np.min(np.mean(np.sum((q - onehot) ** 2, axis=2), axis=1))))
    return best


def slsqp_weights(z, y, t, kind):
    cons = {"type": "eq", "fun": lambda w: np.sum(w) - 1}
    best = None
    for start in ([1.0, 0.0, 0.0], [1 / 3] * 3, [0.1, 0.8, 0.1]):
        r = minimize(lambda w: loss(z, y, t, w, kind), start, method="SLSQP", bounds=[(0, 1)] * 3,
                     constraints=cons, options={"ftol": 1e-14, "maxiter": 1000})
        if best is None or r.fun < best.fun:
            best = r
    return best


@pytest.mark.parametrize("kind", ["mse", "nll"])
@pytest.mark.parametrize("true_t,seed", [(0.5, 1), (2.0, 2), (4.0, 3)])
def test_weights_are_the_simplex_optimum(kind, true_t, seed):
    z, y = make_logits(n=1500, k=5, temperature=true_t, seed=seed)
    cal = EnsembleTemperatureScaling(loss=kind).fit(z, y)
    t, w = cal.temperature_, cal.weights_
    assert np.all(w >= 0) and w.sum() == pytest.approx(1, abs=1e-12)
    ours = loss(z, y, t, w, kind)
    assert cal.loss_value_ == pytest.approx(ours, abs=1e-12)
    assert ours <= grid_min(z, y, t, kind) + 1e-12
    assert ours <= slsqp_weights(z, y, t, kind).fun + 1e-10


def test_weight_solvers_on_vertices_and_edges():
    # a quadratic whose simplex minimum is a vertex, then one on an edge (hand-computed)
    g = np.eye(3)
    w, v = emod.fit_weights_mse(g, np.array([2.0, 0.0, 0.0]), 1.0)  # 1 - 2c.w + |w|^2, min at e1
    np.testing.assert_allclose(w, [1, 0, 0], atol=1e-12)
    w, v = emod.fit_weights_mse(g, np.array([0.5, 0.5, -1.0]), 1.0)  # min at (1/2, 1/2, 0)
    np.testing.assert_allclose(w, [0.5, 0.5, 0], atol=1e-12)
    # NLL: one component always gives the true class probability 1: all weight on it
    q = np.column_stack([np.full(50, 1.0), np.linspace(0.1, 0.9, 50), np.full(50, 0.2)])
    w, v = emod.fit_weights_nll(q)
    np.testing.assert_allclose(w, [1, 0, 0], atol=1e-9)


def test_temperature_is_the_nll_optimum_for_nll_and_the_brier_optimum_for_mse():
    z, y = make_logits(n=2000, k=6, temperature=2.5, seed=4)
    t_nll = EnsembleTemperatureScaling(loss="nll").fit(z, y).temperature_
    assert t_nll == pytest.approx(calibrate.TemperatureScaling().fit(z, y).temperature_, rel=1e-12)
    t_mse = EnsembleTemperatureScaling(loss="mse").fit(z, y).temperature_

    def brier(log_t):
        return metrics.brier(softmax(z / np.exp(log_t), axis=1), y)

    ref = minimize_scalar(brier, bounds=(np.log(0.05), np.log(100)), method="bounded", options={"xatol": 1e-12})
    assert brier(np.log(t_mse)) <= ref.fun + 1e-12
    assert t_mse == pytest.approx(np.exp(ref.x), rel=1e-4)


def test_never_worse_than_temperature_scaling_on_its_own_loss():
    z, y = make_logits(n=2000, k=5, temperature=3.0, seed=5)
    ets = EnsembleTemperatureScaling(loss="nll").fit(z, y)
    ts = calibrate.TemperatureScaling().fit(z, y)
    # w = (1, 0, 0) is temperature scaling, a feasible point
    assert metrics.nll_from_logits(ets.predict_log_proba(z), y) <= ts.nll_after_ + 1e-12


def test_log_proba_is_the_log_of_the_mixture():
    z, y = make_logits(n=500, k=4, temperature=2.0, seed=6)
    cal = EnsembleTemperatureScaling().fit(z, y)
    np.testing.assert_allclose(cal.predict_proba(z), mixture(z, cal.temperature_, cal.weights_), rtol=1e-12)


# ----------------------------------------------------------------------------- edge cases
def test_two_classes_and_a_missing_class():
    z, y = make_logits(n=800, k=2, temperature=2.0, seed=7)
    p = EnsembleTemperatureScaling().fit(z, y).predict_proba(z)
    assert p.shape == (800, 2) and np.allclose(p.sum(1), 1)
    z, y = make_logits(n=800, k=4, temperature=2.0, seed=8)
    y[y == 3] = 0
    cal = EnsembleTemperatureScaling(loss="nll").fit(z, y)
    p = cal.predict_proba(np.array([[-1e4, -1e4, -1e4, 1e4]]))
    assert np.all(np.isfinite(p)) and np.allclose(p.sum(1), 1)


def test_perfectly_separable_data_stays_finite():
    rng = np.random.default_rng(9)
    y = rng.integers(0, 3, 300)
    z = rng.normal(size=(300, 3))
    z[np.arange(300), y] += 10.0
    for kind in ("mse", "nll"):
        cal = EnsembleTemperatureScaling(loss=kind).fit(z, y)
        assert np.isfinite(cal.temperature_) and np.all(np.isfinite(cal.weights_))
        assert np.all(np.isfinite(cal.predict_log_proba(z)))


def test_float32_input_gives_the_float64_result():
    z, y = make_logits(n=1000, k=4, temperature=2.0, seed=10, dtype=np.float32)
    for kind in ("mse", "nll"):
        a = EnsembleTemperatureScaling(loss=kind).fit(z, y)
        b = EnsembleTemperatureScaling(loss=kind).fit(z.astype(np.float64), y)
        assert a.temperature_ == b.temperature_
        np.testing.assert_array_equal(a.weights_, b.weights_)


def test_row_blocks_give_the_same_statistics(monkeypatch):
    z, y = make_logits(n=600, k=4, temperature=2.0, seed=11)
    one = EnsembleTemperatureScaling().fit(z, y)
    monkeypatch.setattr(temperature_solver, "_BLOCK_VALUES", 4 * 50)
    many = EnsembleTemperatureScaling().fit(z, y)
    # the Brier score is flat at its optimum: block-order rounding (1e-16) moves the argmin by ~1e-8
    assert many.temperature_ == pytest.approx(one.temperature_, rel=1e-6)
    np.testing.assert_allclose(many.weights_, one.weights_, atol=1e-6)


def test_bad_options_are_clear_errors():
    z, y = make_logits(n=100, k=3, seed=12)
    with pytest.raises(calibrate.InputError, match="loss"):
        EnsembleTemperatureScaling(loss="ece").fit(z, y)
    with pytest.raises(calibrate.InputError, match="bounds"):
        EnsembleTemperatureScaling(bounds=(2.0, 1.0)).fit(z, y)


# ----------------------------------------------------------------------------- registry and JSON
def test_registered_and_round_trips_through_json(tmp_path):
    z, y = make_logits(n=500, k=3, seed=13)
    cal = get_calibrator("ets").fit(z, y)
    cal.save(tmp_path / "e.json")
    assert isinstance(json.loads((tmp_path / "e.json").read_text())["state"]["weights_"]["__ndarray__"], list)
    loaded = calibrate.load(tmp_path / "e.json")
    np.testing.assert_array_equal(loaded.predict_proba(z), cal.predict_proba(z))


@pytest.mark.parametrize("weights,match", [([0.5, 0.5], "shape"), ([0.7, 0.7, -0.4], ">= 0"),
                                           ([0.5, 0.4, 0.05], "summing"),
                                           ([0.5, 0.5, float("nan")], "finite")])
def test_loading_checks_the_weights(weights, match):
    z, y = make_logits(n=300, k=3, seed=14)
    d = EnsembleTemperatureScaling().fit(z, y).to_dict()
    d["state"]["weights_"] = {"__ndarray__": weights, "dtype": "float64"}
    with pytest.raises(calibrate.InputError, match=match):
        calibrate.Calibrator.from_dict(d, "e.json")


def test_uses_log_space_so_tiny_probabilities_stay_finite():
    z = np.array([[0.0, -800.0, 800.0]])
    cal = EnsembleTemperatureScaling().fit(*make_logits(n=300, k=3, seed=15))
    lp = cal.predict_log_proba(z)
    assert np.allclose(np.exp(lp).sum(), 1)
    if cal.weights_[2] > 0:  # class 1's probability is the uniform share alone
        assert lp[0, 1] == pytest.approx(np.log(cal.weights_[2] / 3), rel=1e-12)


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=8, deadline=None)
@given(st.sampled_from(["ets", "beta"]), st.integers(0, 10_000))
def test_ets_and_beta_ignore_a_per_row_shift_and_follow_class_order(method, seed):
    z, y = make_logits(n=300, k=4, temperature=2.0, seed=seed)
    rng = np.random.default_rng(seed)
    shift = rng.normal(size=(300, 1)) * 50
    a = get_calibrator(method).fit(z, y).predict_proba(z)
    b = get_calibrator(method).fit(z + shift, y).predict_proba(z + shift)
    np.testing.assert_allclose(a, b, atol=1e-7)
    perm = rng.permutation(4)
    c = get_calibrator(method).fit(z[:, perm], np.argsort(perm)[y]).predict_proba(z[:, perm])
    np.testing.assert_allclose(c, a[:, perm], atol=1e-7)
