"""Cumulative calibration error (Arrieta-Ibarra et al. 2022) against the paper's formulas."""

import math

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy import integrate

from calibrate._core.validation import InputError
from calibrate.metrics.cumulative import (
    CumulativeCurve,
    cumulative_calibration,
    cumulative_calibration_from_scores,
    cumulative_curve,
    cumulative_curve_from_scores,
    ecce,
    ks_sf,
    kuiper_sf,
)
from calibrate.report.cumulative_figure import cumulative_figure, decimate


def paper(s, r, order=None, w=None):
    """The paper's definitions, written out with loops: (ECCE-R, ECCE-MAD, sigma, C)."""
    n = len(s)
    if order is None:
        order = sorted(range(n), key=lambda i: s[i])
    w = [1.0] * n if w is None else list(w)
    total = sum(w)
    c, acc = [0.0], 0.0
    for i in order:
        acc += w[i] * (r[i] - s[i])
        c.append(acc / total)
    var = 0.0
    for i in range(n):
        var += w[i] ** 2 * s[i] * (1 - s[i])
    return max(c) - min(c), max(abs(v) for v in c[1:]), math.sqrt(var) / total, c


def kuiper_cdf_paper(x, terms=200):
    return sum((8 / x**2 + 2 / ((k + 0.5) ** 2 * math.pi**2)) * math.exp(-2 * (k + 0.5) ** 2 * math.pi**2 / x**2)
               for k in range(terms))


def ks_cdf_paper(x, terms=200):
    return 2 / math.pi * sum((-1) ** k / (k + 0.5) * math.exp(-((k + 0.5) ** 2) * math.pi**2 / (2 * x**2))
                             for k in range(terms))


def _data(n=300, seed=0, power=1.0):
    rng = np.random.default_rng(seed)
    s = rng.uniform(size=n)
    r = (rng.uniform(size=n) < s**power).astype(float)
    return s, r


def test_statistics_equal_the_paper_formulas():
    s, r = _data(300, 1, power=1.4)
    got = cumulative_calibration_from_scores(s, r)
    e_r, e_mad, sigma, _ = paper(s.tolist(), r.tolist())
    assert got.ecce_r == pytest.approx(e_r, rel=1e-12)
    assert got.ecce_mad == pytest.approx(e_mad, rel=1e-12)
    assert got.sigma == pytest.approx(sigma, rel=1e-12)
    assert got.ratio_r == pytest.approx(e_r / sigma, rel=1e-12)
    assert got.pvalue_r == pytest.approx(1 - kuiper_cdf_paper(e_r / sigma), rel=1e-9, abs=1e-15)
    assert got.pvalue_mad == pytest.approx(1 - ks_cdf_paper(e_mad / sigma), rel=1e-9, abs=1e-15)


def test_curve_equals_the_paper_cumulative_differences():
    s, r = _data(50, 2)
    curve = cumulative_curve_from_scores(s, r)
    _, _, sigma, c = paper(s.tolist(), r.tolist())
    np.testing.assert_allclose(curve.y, c, rtol=0, atol=1e-15)
    np.testing.assert_allclose(curve.x, np.arange(51) / 50, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(curve.scores, np.sort(s))
    assert curve.sigma == pytest.approx(sigma, rel=1e-12)


def test_weighted_statistics_equal_the_weighted_formulas():
    s, r = _data(80, 3, power=2.0)
    w = np.random.default_rng(4).uniform(0.2, 3.0, size=80)
    got = cumulative_calibration_from_scores(s, r, sample_weight=w)
    e_r, e_mad, sigma, _ = paper(s.tolist(), r.tolist(), w=w.tolist())
    assert (got.ecce_r, got.ecce_mad, got.sigma) == pytest.approx((e_r, e_mad, sigma), rel=1e-12)


def test_integer_weights_give_the_ecce_of_repeated_rows():
    s, r = _data(40, 5, power=0.5)
    w = np.random.default_rng(6).integers(1, 4, size=40)
    weighted = cumulative_calibration_from_scores(s, r, sample_weight=w)
    repeated = cumulative_calibration_from_scores(np.repeat(s, w), np.repeat(r, w), ties="stable")
    assert weighted.ecce_r == pytest.approx(repeated.ecce_r, rel=1e-12)
    assert weighted.ecce_mad == pytest.approx(repeated.ecce_mad, rel=1e-12)


@pytest.mark.parametrize("x", [0.3, 0.7, 1.0, 1.4, 1.9, 2.0, 2.5, 3.5])
def test_pvalues_equal_one_minus_the_paper_cdfs(x):
    assert kuiper_sf(x) == pytest.approx(1 - kuiper_cdf_paper(x), rel=1e-9, abs=1e-15)
    assert ks_sf(x) == pytest.approx(1 - ks_cdf_paper(x), rel=1e-9, abs=1e-15)


def test_pvalue_laws_have_the_brownian_means():
    # E[range of B on [0, 1]] = 2 sqrt(2 / pi), E[max |B|] = sqrt(pi / 2) (Feller 1951)
    ku = integrate.quad(kuiper_sf, 0, 12, limit=200)[0]
    ks = integrate.quad(ks_sf, 0, 12, limit=200)[0]
    assert ku == pytest.approx(2 * math.sqrt(2 / math.pi), rel=1e-8)
    assert ks == pytest.approx(math.sqrt(math.pi / 2), rel=1e-8)


def test_tail_pvalues_stay_accurate_far_out():
    # 8 Q(x) and 4 Q(x) are the leading terms of the two tails
    from scipy.special import ndtr

    assert kuiper_sf(12.0) == pytest.approx(8 * ndtr(-12.0), rel=1e-12)
    assert ks_sf(12.0) == pytest.approx(4 * ndtr(-12.0), rel=1e-12)
    assert kuiper_sf(0.0) == 1.0 and ks_sf(0.0) == 1.0


def test_sigma_and_pvalues_under_perfect_calibration_monte_carlo():
    rng = np.random.default_rng(7)
    s = rng.uniform(0.05, 0.95, size=500)
    sigma = cumulative_calibration_from_scores(s, np.zeros(500)).sigma
    ends, p_r, p_mad = [], [], []
    for _ in range(400):
        r = (rng.uniform(size=500) < s).astype(float)
        res = cumulative_calibration_from_scores(s, r)
        ends.append((r - s).sum() / 500)
        p_r.append(res.pvalue_r)
        p_mad.append(res.pvalue_mad)
    assert np.std(ends) == pytest.approx(sigma, rel=0.1)
    for p in (np.array(p_r), np.array(p_mad)):
        assert 0.44 < p.mean() < 0.56  # uniform: mean 1/2, sd of the mean 0.014
        assert 0.02 <= (p < 0.1).mean() <= 0.17


def test_ties_stable_follow_input_order():
    s = np.array([0.2, 0.5, 0.5, 0.5, 0.8])
    r = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    got = cumulative_calibration_from_scores(s, r, ties="stable")
    e_r, e_mad, _, _ = paper(s.tolist(), r.tolist(), order=[0, 1, 2, 3, 4])
    assert (got.ecce_r, got.ecce_mad) == pytest.approx((e_r, e_mad), rel=1e-12)


def test_ties_random_are_seeded_and_agree_at_block_ends():
    rng = np.random.default_rng(8)
    s = rng.integers(0, 5, size=60) / 4.0
    r = (rng.uniform(size=60) < s).astype(float)
    a = cumulative_curve_from_scores(s, r, seed=1)
    b = cumulative_curve_from_scores(s, r, seed=1)
    c = cumulative_curve_from_scores(s, r, seed=2)
    np.testing.assert_array_equal(a.y, b.y)
    ends = np.flatnonzero(np.r_[np.diff(a.scores) > 0, True]) + 1  # positions after each tie block
    np.testing.assert_allclose(a.y[ends], c.y[ends], rtol=0, atol=1e-15)


def test_all_equal_scores():
    s = np.full(10, 0.3)
    r = np.array([1, 0, 0, 1, 0, 0, 0, 1, 0, 0], dtype=float)
    got = cumulative_calibration_from_scores(s, r, ties="stable")
    e_r, e_mad, sigma, _ = paper(s.tolist(), r.tolist(), order=list(range(10)))
    assert (got.ecce_r, got.ecce_mad) == pytest.approx((e_r, e_mad), rel=1e-12)
    assert got.sigma == pytest.approx(math.sqrt(10 * 0.21) / 10, rel=1e-12)


def test_scores_zero_or_one_matching_outcomes_are_calibrated():
    got = cumulative_calibration_from_scores([0.0, 1.0, 1.0, 0.0], [0, 1, 1, 0])
    assert got.sigma == 0.0 and got.ecce_r == 0.0
    assert got.ratio_r == 0.0 and got.pvalue_r == 1.0 and got.pvalue_mad == 1.0


def test_scores_zero_or_one_contradicted_have_infinite_ratio():
    got = cumulative_calibration_from_scores([0.0, 1.0, 1.0], [0, 0, 1])
    assert got.ecce_r == pytest.approx(1 / 3)
    assert math.isinf(got.ratio_r) and got.pvalue_r == 0.0 and got.pvalue_mad == 0.0


def test_one_row():
    got = cumulative_calibration_from_scores([0.25], [1])
    assert got.ecce_r == pytest.approx(0.75) and got.ecce_mad == pytest.approx(0.75)
    assert got.sigma == pytest.approx(math.sqrt(0.25 * 0.75))
    assert got.n == 1


def test_top_label_for_multiclass_rows():
    rng = np.random.default_rng(9)
    p = rng.dirichlet(np.ones(4), size=200)
    y = rng.integers(0, 4, size=200)
    conf, correct = p.max(axis=1), (p.argmax(axis=1) == y).astype(float)
    assert cumulative_calibration(p, y) == cumulative_calibration_from_scores(conf, correct)
    assert ecce(p, y, statistic="mad") == cumulative_calibration_from_scores(conf, correct).ecce_mad


def test_binary_scores_are_p_of_class_one():
    s, r = _data(100, 10)
    assert cumulative_calibration(s, r.astype(int)) == cumulative_calibration_from_scores(s, r)
    p2 = np.stack([1 - s, s], axis=1)
    assert cumulative_calibration(p2, r.astype(int), class_index=1) == cumulative_calibration_from_scores(s, r)


def test_curve_from_probs_matches_from_scores():
    s, r = _data(30, 11)
    a = cumulative_curve(s, r.astype(int))
    b = cumulative_curve_from_scores(s, r)
    np.testing.assert_array_equal(a.y, b.y)


@pytest.mark.parametrize("scores, outcomes, match", [
    ([0.2, 1.2], [0, 1], "scores"),
    ([0.2, np.nan], [0, 1], "scores"),
    ([0.2, 0.4], [0, 2], "outcomes"),
    ([], [], "scores"),
])
def test_invalid_inputs_are_refused(scores, outcomes, match):
    with pytest.raises(InputError, match=match):
        cumulative_calibration_from_scores(scores, outcomes)


def test_invalid_ties_is_refused():
    with pytest.raises(InputError, match="ties"):
        cumulative_calibration_from_scores([0.1, 0.2], [0, 1], ties="first")


def test_decimate_keeps_extremes():
    rng = np.random.default_rng(12)
    y = np.concatenate([[0.0], np.cumsum(rng.normal(size=100_000))])
    x = np.linspace(0, 1, y.size)
    xd, yd = decimate(x, y, 2000)
    assert xd.size <= 2002
    assert yd.max() == y.max() and yd.min() == y.min()
    assert xd[0] == 0.0 and xd[-1] == 1.0 and np.all(np.diff(xd) > 0)


def test_figure_is_bounded_and_leaves_global_state():
    before = dict(matplotlib.rcParams)
    s, r = _data(2000, 13, power=1.3)
    curves = {f"g{i}": cumulative_curve_from_scores(s, r) for i in range(7)}
    fig = cumulative_figure(curves, ncols=3, suptitle="groups")
    assert isinstance(fig, Figure)
    w, h = fig.get_size_inches() * fig.dpi
    assert w <= 1200 and h <= 900
    assert len([ax for ax in fig.axes if ax.get_visible() and ax.lines]) == 7
    assert dict(matplotlib.rcParams) == before


def test_figure_draws_the_curve():
    s, r = _data(500, 14)
    curve = cumulative_curve_from_scores(s, r)
    fig = cumulative_figure(curve)
    line = fig.axes[0].lines[0]
    np.testing.assert_array_equal(line.get_ydata(), curve.y)
    assert isinstance(curve, CumulativeCurve)
