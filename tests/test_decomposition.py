import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

from calibrate import InputError, IsotonicCalibration, TemperatureScaling, metrics
from calibrate._core.binning import bin_index, equal_mass_edges, equal_width_edges
from calibrate.metrics import decomposition


def make(n=3000, k=4, seed=0, temp=2.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) * 2
    z[np.arange(n), rng.integers(0, k, n)] += 2
    y = (softmax(z / temp, 1).cumsum(1) > rng.random((n, 1))).argmax(1)
    return z, softmax(z, 1), y


def brute_brier_terms(p, y, n_bins, binning):
    """Per class, per bin, by loops over bins with boolean masks."""
    n, k = p.shape
    out = dict.fromkeys(["reliability", "resolution", "uncertainty", "wbv", "wbc", "binned"], 0.0)
    for j in range(k):
        f, o = p[:, j], (y == j).astype(float)
        edges = equal_width_edges(n_bins) if binning == "width" else equal_mass_edges(f, n_bins)
        idx = bin_index(f, edges)
        obar = o.mean()
        out["uncertainty"] += obar * (1 - obar)
        for b in range(n_bins):
            m = idx == b
            if not m.any():
                continue
            fb, ob = f[m].mean(), o[m].mean()
            out["reliability"] += m.sum() * (fb - ob) ** 2 / n
            out["resolution"] += m.sum() * (ob - obar) ** 2 / n
            out["wbv"] += np.sum((f[m] - fb) ** 2) / n
            out["wbc"] += np.sum((f[m] - fb) * (o[m] - ob)) / n
            out["binned"] += np.sum((fb - o[m]) ** 2) / n
    return out


@pytest.mark.parametrize("binning", ["width", "mass"])
@pytest.mark.parametrize("n_bins", [1, 10, 15])
def test_brier_decomposition_brute_force_and_identities(binning, n_bins):
    _, p, y = make(seed=n_bins)
    d = decomposition.brier_decomposition(p, y, n_bins, binning=binning)
    ref = brute_brier_terms(p, y, n_bins, binning)
    for key, rkey in [("reliability", "reliability"), ("resolution", "resolution"),
                      ("uncertainty", "uncertainty"), ("within_bin_variance", "wbv"),
                      ("within_bin_covariance", "wbc")]:
        assert d[key] == pytest.approx(ref[rkey], abs=1e-13), key
    assert d["brier"] == pytest.approx(metrics.brier(p, y), abs=1e-15)
    # the exact identity, and the binned forecast's Brier score
    assert d["brier"] == pytest.approx(
        d["reliability"] - d["resolution"] + d["uncertainty"]
        + d["within_bin_variance"] - 2 * d["within_bin_covariance"], abs=1e-13)
    assert ref["binned"] == pytest.approx(d["reliability"] - d["resolution"] + d["uncertainty"], abs=1e-13)
    # closed form of the multiclass uncertainty
    freq = np.bincount(y, minlength=p.shape[1]) / y.size
    assert d["uncertainty"] == pytest.approx(1 - np.sum(freq**2), abs=1e-15)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 30), st.sampled_from(["width", "mass"]))
def test_brier_identity_property(seed, n, binning):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(3) * 0.5, size=n)
    p[rng.random(n) < 0.2] = [0.0, 0.0, 1.0]  # confidences exactly 1
    y = rng.integers(0, 3, n)
    d = decomposition.brier_decomposition(p, y, 5, binning=binning)
    total = (d["reliability"] - d["resolution"] + d["uncertainty"]
             + d["within_bin_variance"] - 2 * d["within_bin_covariance"])
    assert d["brier"] == pytest.approx(total, abs=1e-12)
    assert d["reliability"] >= 0 and d["resolution"] >= 0 and d["within_bin_variance"] >= -1e-15


def test_brier_decomposition_blocks_and_float32():
    _, p, y = make(n=70_000, k=3, seed=1)  # more than one block of rows
    d = decomposition.brier_decomposition(p, y, 10)
    ref = brute_brier_terms(p, y, 10, "width")
    assert d["reliability"] == pytest.approx(ref["reliability"], abs=1e-13)
    assert d["within_bin_covariance"] == pytest.approx(ref["wbc"], abs=1e-13)
    p32 = p.astype(np.float32)
    d32 = decomposition.brier_decomposition(p32, y, 10)
    ref32 = brute_brier_terms(p32.astype(np.float64), y, 10, "width")
    assert d32["reliability"] == pytest.approx(ref32["reliability"], abs=1e-12)


def test_log_loss_decomposition_temperature_reference():
    z, _, y = make(seed=2, temp=2.5)
    d = decomposition.log_loss_decomposition(z, y)
    lp = log_softmax(z, 1)
    assert d["nll"] == pytest.approx(-lp[np.arange(y.size), y].mean(), abs=1e-13)
    # independent fit of T by scipy on the same data

    def nll_t(t):
        return -log_softmax(z / t, 1)[np.arange(y.size), y].mean()

    best = minimize_scalar(nll_t, bounds=(0.05, 100), method="bounded", options={"xatol": 1e-10})
    assert d["refinement"] == pytest.approx(best.fun, abs=1e-9)
    assert d["calibration"] == pytest.approx(d["nll"] - best.fun, abs=1e-9)
    assert d["calibration"] > 0.01  # miscalibrated (labels from softmax(z / 2.5))
    assert d["nll"] == pytest.approx(d["calibration"] + d["refinement"], abs=1e-15)
    # a calibrated model: the calibration term is ~ 0 and never negative
    z2, _, y2 = make(n=20000, seed=3, temp=1.0)
    d2 = decomposition.log_loss_decomposition(z2, y2)
    assert 0 <= d2["calibration"] < 2e-3


def test_log_loss_decomposition_isotonic_and_instances():
    z, _, y = make(seed=4)
    d = decomposition.log_loss_decomposition(z, y, "isotonic")
    cal = IsotonicCalibration().fit(z, y)
    ref = -np.log(cal.predict_proba(z)[np.arange(y.size), y]).mean()
    assert d["refinement"] == pytest.approx(ref, abs=1e-12)
    d2 = decomposition.log_loss_decomposition(z, y, TemperatureScaling(bounds=(0.5, 1.5)))
    assert d2["method"] == "TemperatureScaling"
    with pytest.raises(InputError, match="method"):
        decomposition.log_loss_decomposition(z, y, "platt")


@pytest.mark.parametrize("binning", ["width", "mass"])
def test_over_under_sum_to_ece_and_brute_force(binning):
    _, p, y = make(seed=5, temp=0.7)
    d = decomposition.ece_over_under(p, y, 15, binning=binning)
    assert d["ece"] == pytest.approx(metrics.ece(p, y, 15, binning=binning), abs=1e-15)
    assert d["overconfidence"] + d["underconfidence"] == pytest.approx(d["ece"], abs=1e-15)
    rc = metrics.reliability_curve(p, y, 15, binning=binning)
    w = rc.count / rc.count.sum()
    gap = np.nan_to_num(rc.confidence - rc.accuracy)
    assert d["overconfidence"] == pytest.approx(np.sum(w * np.maximum(gap, 0)), abs=1e-14)
    assert d["underconfidence"] == pytest.approx(np.sum(w * np.maximum(-gap, 0)), abs=1e-14)
    # a model with labels drawn from a sharper softmax is underconfident
    assert d["underconfidence"] > d["overconfidence"]


def test_consistency_test_brute_force_stream():
    _, p, y = make(n=500, seed=6)
    res = decomposition.ece_consistency_test(p, y, 10, n_resamples=200, seed=11)
    conf = p.max(1)
    rng = np.random.default_rng(11)
    null = [metrics.ece_from_confidences(conf, rng.random(500) < conf, 10) for _ in range(200)]
    np.testing.assert_allclose(res.null, null, atol=1e-14)
    assert res.ece == pytest.approx(metrics.ece(p, y, 10), abs=1e-15)
    assert res.p_value == (1 + np.sum(np.array(null) >= res.ece)) / 201
    # chunks of resamples draw the same stream as one call
    big = decomposition.ece_consistency_test(p, y, 10, n_resamples=9000, seed=11)
    np.testing.assert_allclose(big.null[:200], res.null, atol=1e-15)
    u = np.random.default_rng(11).random((9000, 500))  # across the chunk boundary (8388 rows)
    for r in (8387, 8388, 8999):
        assert big.null[r] == pytest.approx(metrics.ece_from_confidences(conf, u[r] < conf, 10), abs=1e-14)


def test_consistency_test_calibration_power_and_size():
    rng = np.random.default_rng(7)
    pvals = []
    for _ in range(60):  # perfectly calibrated top label: p-values ~ uniform
        conf = rng.uniform(0.3, 1.0, 300)
        p = np.stack([conf, 1 - conf], 1)
        y = np.where(rng.random(300) < conf, 0, 1)
        pvals.append(decomposition.ece_consistency_test(p, y, 10, n_resamples=199, seed=1).p_value)
    assert 0.3 < np.mean(pvals) < 0.7
    assert np.mean(np.array(pvals) < 0.05) < 0.2
    _, p, y = make(n=2000, seed=8, temp=3.0)  # overconfident
    assert decomposition.ece_consistency_test(p, y, n_resamples=199).p_value == 1 / 200
    with pytest.raises(InputError, match="n_resamples"):
        decomposition.ece_consistency_test(p, y, n_resamples=0)


def brute_ks_kuiper(conf, ok):
    ts = np.unique(conf)
    h = [0.0] + [np.sum((ok - conf)[conf <= t]) / conf.size for t in ts]
    return max(abs(v) for v in h), max(h) - min(h)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 40))
def test_ks_kuiper_brute_force_and_tie_invariance(seed, n):
    rng = np.random.default_rng(seed)
    conf = rng.integers(5, 11, n) / 10.0  # ties and exactly 1.0
    p = np.stack([conf, 1 - conf], 1)
    y = np.where(rng.random(n) < 0.7, 0, 1)
    y[conf == 0.5] = 0  # 0.5 ties: the arg-max is class 0 either way
    ok = (y == 0).astype(float)
    ks, ku = brute_ks_kuiper(conf, ok)
    assert decomposition.ks_calibration_error(p, y) == pytest.approx(ks, abs=1e-15)
    assert decomposition.kuiper_calibration_error(p, y) == pytest.approx(ku, abs=1e-15)
    perm = rng.permutation(n)
    assert decomposition.ks_calibration_error(p[perm], y[perm]) == pytest.approx(ks, abs=1e-15)


def test_ks_closed_form():
    # one confidence c for all rows with accuracy a: KS = Kuiper = |a - c|
    p = np.tile([0.8, 0.2], (10, 1))
    y = np.array([0] * 6 + [1] * 4)
    assert decomposition.ks_calibration_error(p, y) == pytest.approx(0.2)
    assert decomposition.kuiper_calibration_error(p, y) == pytest.approx(0.2)
    assert decomposition.ks_calibration_error(np.array([[1.0, 0.0]]), [0]) == 0.0


def test_torch_inputs():
    torch = pytest.importorskip("torch")
    z, p, y = make(n=400, seed=9)
    tp, ty = torch.tensor(p), torch.tensor(y)
    assert decomposition.brier_decomposition(tp, ty) == decomposition.brier_decomposition(p, y)
    assert decomposition.ece_over_under(tp, ty) == decomposition.ece_over_under(p, y)
    assert decomposition.ks_calibration_error(tp, ty) == decomposition.ks_calibration_error(p, y)
    assert decomposition.log_loss_decomposition(torch.tensor(z), ty)["nll"] == pytest.approx(
        decomposition.log_loss_decomposition(z, y)["nll"], abs=0)
