import subprocess
import sys

import numpy as np
import pytest
from scipy.special import softmax
from scipy.stats import norm

from calibrate import InputError
from calibrate.metrics import smooth


@pytest.fixture(scope="module")
def relplot():
    mpl = pytest.importorskip("matplotlib")
    with mpl.rc_context():  # relplot may change matplotlib's global style; keep ours
        return pytest.importorskip("relplot")


def binary(n, seed=0, power=1.5):
    rng = np.random.default_rng(seed)
    f = rng.random(n)
    return f, (rng.random(n) < f**power).astype(float)


@pytest.mark.parametrize("n", [1, 2, 7, 100, 3000])
@pytest.mark.parametrize("power", [1.0, 1.5, 3.0])
def test_smece_equals_relplot(relplot, n, power):
    f, y = binary(n, seed=n, power=power)
    assert smooth.smooth_ece(f, y) == pytest.approx(relplot.smECE(f, y), abs=1e-6)
    v, s = smooth.smooth_ece(f, y, return_sigma=True)
    rv, rs = relplot.smECE(f, y, return_width=True)
    assert s == rs and v == pytest.approx(rv, abs=1e-12)


def test_smece_equals_relplot_edges_ties_multiclass(relplot):
    rng = np.random.default_rng(1)
    f = rng.choice([0.0, 0.25, 0.5, 1.0], 500)  # ties, exactly 0 and 1
    y = (rng.random(500) < 0.6).astype(float)
    assert smooth.smooth_ece(f, y) == pytest.approx(relplot.smECE(f, y), abs=1e-6)
    z = rng.normal(size=(2000, 10)) * 3
    lab = rng.integers(0, 10, 2000)
    p = softmax(z, axis=1)
    conf, ok = relplot.multiclass_logits_to_confidences(z, lab)
    assert smooth.smooth_ece(p, lab) == pytest.approx(relplot.smECE(conf, ok), abs=1e-6)
    assert smooth.smooth_ece(np.ones(5), np.ones(5)) == pytest.approx(relplot.smECE(np.ones(5), np.ones(5)))


@pytest.mark.parametrize("sigma", [0.5, 0.05, 0.01, 0.004, 0.0015])  # the last two use the FFT path
def test_fixed_bandwidth_equals_relplot(relplot, sigma):
    f, y = binary(4000, seed=2)
    assert smooth.smooth_ece(f, y, sigma) == pytest.approx(relplot.smECE_sigma(f, y, sigma), abs=1e-6)


def test_kernel_is_the_reflected_gaussian():
    # independent reference: the exact reflected Gaussian kernel
    # K(t, f) = phi((t - f)/s) + phi((t + f)/s) + phi((t - 2 + f)/s), all over s
    f, y = binary(400, seed=3)
    for sigma in (0.03, 0.1):
        t = np.linspace(0, 1, max(round(10 / sigma), 200))
        d = t[:, None] - f[None, :]
        k = (norm.pdf(d / sigma) + norm.pdf((t[:, None] + f) / sigma)
             + norm.pdf((t[:, None] - 2 + f) / sigma)) / sigma
        dens = k.sum(1) + 1e-4
        r = (k @ (f - y)) / dens
        exact = np.sum(np.abs(r) * dens) / dens.sum()
        assert smooth.smooth_ece(f, y, sigma) == pytest.approx(exact, rel=2e-3)


def test_automatic_bandwidth_is_the_fixed_point():
    f, y = binary(2000, seed=4, power=2.0)
    v, s = smooth.smooth_ece(f, y, return_sigma=True)
    step = 2.0**-10
    assert s >= smooth.smooth_ece(f, y, s)  # at sigma*: smECE_sigma <= sigma
    assert s - step < smooth.smooth_ece(f, y, s - step)  # just below: smECE_sigma > sigma
    assert v == smooth.smooth_ece(f, y, s)


def test_closed_forms():
    # every forecast equal: the smoothed residual is the mean residual wherever data lie
    rng = np.random.default_rng(5)
    y = (rng.random(20000) < 0.5).astype(float)
    f = np.full(20000, 0.7)
    gap = abs(0.7 - y.mean())
    assert smooth.smooth_ece(f, y, 0.05) == pytest.approx(gap, rel=1e-3)
    # perfectly calibrated forecasts: smECE shrinks with n
    f, y = binary(200_000, seed=6, power=1.0)
    assert smooth.smooth_ece(f, y) < 0.01


def test_reliability_curve_equals_relplot_smoother_and_kde(relplot):
    from relplot.estimators import KernelSmoother
    from relplot.kernels import ReflectedGaussianKernel

    f, y = binary(1500, seed=7)
    out = smooth.smooth_reliability(f, y)
    ker = ReflectedGaussianKernel(out.sigma)
    mu = KernelSmoother(ker).fit(f[:, None], y).predict(out.x[:, None])
    np.testing.assert_allclose(out.y, mu, atol=1e-10)
    np.testing.assert_allclose(out.density, ker.kde(f, out.x), atol=1e-10)
    assert out.smece == pytest.approx(relplot.smECE(f, y), abs=1e-6)
    assert out.lower is None and out.upper is None
    assert np.trapezoid(out.density, out.x) == pytest.approx(1.0, abs=0.01)


def test_bootstrap_band_seeded_and_brute_force():
    f, y = binary(300, seed=8)
    a = smooth.smooth_reliability(f, y, n_resamples=50, seed=3)
    b = smooth.smooth_reliability(f, y, n_resamples=50, seed=3)
    np.testing.assert_array_equal(a.lower, b.lower)
    c = smooth.smooth_reliability(f, y, n_resamples=50, seed=4)
    assert not np.array_equal(a.lower, c.lower)
    # brute force: resample rows by index, refit the curve at the same bandwidth
    rng = np.random.default_rng(3)
    curves = []
    for _ in range(50):
        idx = rng.integers(0, 300, 300)
        curves.append(smooth.smooth_reliability(f[idx], y[idx], a.sigma).y)
    lo, hi = np.quantile(curves, [0.025, 0.975], axis=0)
    np.testing.assert_allclose(a.lower, lo, atol=1e-12)
    np.testing.assert_allclose(a.upper, hi, atol=1e-12)
    assert np.all(a.lower <= a.upper)


def test_validation_and_inputs():
    with pytest.raises(InputError, match=r"forecasts in \[0, 1\]"):
        smooth.smooth_ece([1.2], [1])
    with pytest.raises(InputError, match="0/1 outcomes"):
        smooth.smooth_ece([0.2, 0.3], [2, 0])
    with pytest.raises(InputError, match="sigma"):
        smooth.smooth_ece([0.2], [0], sigma=0)
    with pytest.raises(InputError, match="n_grid"):
        smooth.smooth_reliability([0.2], [0], n_grid=1)
    f, y = binary(100)
    torch = pytest.importorskip("torch")
    assert smooth.smooth_ece(torch.tensor(f), torch.tensor(y)) == smooth.smooth_ece(f, y)
    assert smooth.smooth_ece(f.astype(np.float32), y) == smooth.smooth_ece(
        f.astype(np.float32).astype(np.float64), y)


def test_never_imports_relplot():
    code = "import sys, calibrate, calibrate.metrics.smooth as s; s.smooth_reliability([0.2, 0.9], [0, 1]); " \
           "assert 'relplot' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
