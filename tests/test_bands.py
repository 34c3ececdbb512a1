"""The figures' bootstrap bands resampled as group counts, against row-level Poisson bootstraps."""

import numpy as np
import pytest
from conftest import make_logits

import calibrate
from calibrate.metrics import selective, smooth
from calibrate.report.figures import SMOOTH_MIN_ROWS
from calibrate.resampling import selective as selective_rs


def _conf_correct(n, seed, decimals=None):
    z, y = make_logits(n=n, k=5, temperature=2.0, seed=seed)
    p = calibrate.softmax(z)
    c = p.max(1)
    if decimals is not None:
        c = np.round(c, decimals)  # ties
    return c, (p.argmax(1) == y).astype(float)


def test_contiguous_groups_never_split_ties_and_keep_every_row():
    c, ok = _conf_correct(3000, 1, decimals=2)
    err, cor = selective_rs._contiguous_groups(c, ok, 40)
    assert err.sum() == pytest.approx((1 - ok).sum()) and (err + cor).sum() == c.size
    # each group boundary falls where the (decreasing) confidence changes
    cs = np.sort(c)[::-1]
    ends = np.cumsum(err + cor).astype(int)
    assert all(e == c.size or cs[e - 1] != cs[e] for e in ends)
    assert err.size <= 40


def _row_poisson_band(c, ok, grid, n_resamples, seed, boundaries=None):
    """Row-level Poisson bootstrap: each row an independent Poisson(1) weight; the risk at the
    first boundary (distinct-score ends, or given row counts) whose weighted coverage >= t."""
    order = np.argsort(-c, kind="stable")
    cs, wrong = c[order], 1 - ok[order]
    ends = np.flatnonzero(np.append(cs[1:] != cs[:-1], True)) if boundaries is None else boundaries - 1
    rng = np.random.default_rng(seed)
    w = rng.poisson(1.0, (n_resamples, c.size)).astype(float)
    acc = np.cumsum(w, axis=1)[:, ends]
    err = np.cumsum(w * wrong, axis=1)[:, ends]
    cov, risk = acc / acc[:, -1:], err / np.maximum(acc, 1)
    out = np.empty((n_resamples, grid.size))
    for b in range(n_resamples):
        out[b] = risk[b, np.minimum(np.searchsorted(cov[b], grid - 1e-12 * grid), ends.size - 1)]
    return out, w, order


def test_row_level_reference_is_risk_at_coverage_on_the_repeated_rows():
    c, ok = _conf_correct(400, 2, decimals=2)
    grid = np.array([0.1, 0.5, 0.85, 1.0])
    curves, w, order = _row_poisson_band(c, ok, grid, 5, seed=0)
    for b in range(5):
        rows = np.repeat(order, w[b].astype(int))
        ref = [selective.risk_at_coverage(c[rows], ok[rows], t) for t in grid]
        np.testing.assert_allclose(curves[b], ref, rtol=1e-12)


@pytest.mark.parametrize("max_groups", [10**9, 50])
def test_group_band_has_the_row_level_poisson_distribution(max_groups):
    # at group boundaries the group counts are exactly the row weights summed: same law.
    # max_groups huge: every distinct score is a group (the row-level curve itself).
    c, ok = _conf_correct(3000, 4, decimals=3)
    grid = np.array([0.2, 0.5, 0.8, 0.95, 1.0])
    B = 2500
    band = selective_rs.risk_coverage_band(c, ok, grid=grid, n_resamples=B, seed=1, max_groups=max_groups)
    err, cor = selective_rs._contiguous_groups(c, ok, min(max_groups, c.size))
    ref, _, _ = _row_poisson_band(c, ok, grid, B, seed=2, boundaries=np.cumsum(err + cor).astype(int))
    sd = ref.std(axis=0)
    lo, hi = np.quantile(ref, [0.025, 0.975], axis=0)
    # Monte-Carlo error of a 2.5 % quantile from 2500 draws: ~0.06 sd each, ~0.085 sd apart
    assert np.all(np.abs(band["low"] - lo) <= 0.3 * sd + 1e-12)
    assert np.all(np.abs(band["high"] - hi) <= 0.3 * sd + 1e-12)


def test_group_band_against_the_row_band_at_exact_coverages():
    # coarse groups (1 / G resolution) against the row-level Poisson band at every distinct score
    c, ok = _conf_correct(3000, 5)
    grid = np.linspace(0.1, 1.0, 10)
    band = selective_rs.risk_coverage_band(c, ok, grid=grid, n_resamples=2500, seed=1, max_groups=300)
    ref, _, _ = _row_poisson_band(c, ok, grid, 2500, seed=3)
    sd = ref.std(axis=0)
    lo, hi = np.quantile(ref, [0.025, 0.975], axis=0)
    # Monte-Carlo error plus one step of the (discrete) risk among the grid * n accepted rows
    tol = 0.35 * sd + 1.0 / (grid * c.size)
    assert np.all(np.abs(band["low"] - lo) <= tol)
    assert np.all(np.abs(band["high"] - hi) <= tol)


def test_group_band_is_seeded_and_ordered():
    c, ok = _conf_correct(500, 6)
    a = selective_rs.risk_coverage_band(c, ok, n_resamples=50, seed=3)
    b = selective_rs.risk_coverage_band(c, ok, n_resamples=50, seed=3)
    np.testing.assert_array_equal(a["low"], b["low"])
    assert np.all(a["low"] <= a["high"])
    assert a["scheme"] == "Poisson bootstrap over rows, resampled as group counts"
    one = selective_rs.risk_coverage_band(np.ones(5), np.array([1, 0, 1, 1, 1]), n_resamples=20)
    assert one["n_groups"] == 1  # all tied: one group


# --------------------------------------------------------------------- smooth band
def test_cell_band_against_the_row_band_with_the_same_poisson_weights():
    # the same row weights give both curves: the difference is only the cell approximation
    z, y = make_logits(n=10_000, k=10, temperature=2.0, seed=7)
    p = calibrate.softmax(z)
    f, o = p.max(1), (p.argmax(1) == y).astype(float)
    r = smooth.smooth_reliability(f, o)
    x, s = r.x, r.sigma
    cells = smooth.BAND_CELLS
    cell = np.minimum((f * cells).astype(np.intp), cells - 1) * 2 + (o > 0.5)
    cnt = np.bincount(cell, minlength=2 * cells)
    keep = cnt > 0
    centre = np.bincount(cell, weights=f, minlength=2 * cells)[keep] / cnt[keep]
    outcome = (np.flatnonzero(keep) % 2).astype(float)
    ok = 10_000 * r.density * np.sqrt(2 * np.pi) * s >= SMOOTH_MIN_ROWS
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(20):
        w = rng.poisson(1.0, f.size).astype(float)
        row = smooth._smooth_on_grid(f, w * o, s, x) / (smooth._smooth_on_grid(f, w, s, x) + 1e-4)
        wc = np.bincount(cell, weights=w, minlength=2 * cells)[keep]
        cl = smooth._smooth_on_grid(centre, wc * outcome, s, x) / (smooth._smooth_on_grid(centre, wc, s, x) + 1e-4)
        worst = max(worst, float(np.max(np.abs(row - cl)[ok])))
    # measured 2026-12-01: 6.5e-5 here (sigma 0.20, 4096 cells; 4.8e-4 with 1024 cells)
    assert worst < 1e-3


def test_cell_band_matches_the_row_band_within_monte_carlo_error():
    z, y = make_logits(n=10_000, k=10, temperature=2.0, seed=8)
    p = calibrate.softmax(z)
    r = smooth.smooth_reliability(p, y, n_resamples=300, seed=1)
    lo, hi = smooth.smooth_reliability_band(p, y, r.sigma, r.x, n_resamples=300, seed=2)
    ok = 10_000 * r.density * np.sqrt(2 * np.pi) * r.sigma >= 50
    width = (r.upper - r.lower)[ok]
    assert np.all(np.abs(lo - r.lower)[ok] <= 0.25 * width)
    assert np.all(np.abs(hi - r.upper)[ok] <= 0.25 * width)
    assert np.all(lo <= hi)


def test_class_reliability_equals_the_metrics_functions():
    from calibrate import metrics
    from calibrate.report import figures

    z, y = make_logits(n=2000, k=4, temperature=2.0, seed=9)
    p = calibrate.softmax(z)
    for j in range(4):
        d = figures.reliability_data(p, y, 10, class_index=j)
        c = metrics.reliability_curve(p, y, 10, class_index=j)
        np.testing.assert_array_equal(d.count, c.count)
        np.testing.assert_array_equal(d.accuracy, c.accuracy)
        np.testing.assert_array_equal(d.confidence, c.confidence)
        assert d.ece == metrics.ece_from_confidences(p[:, j], (y == j).astype(int), 10)
    with pytest.raises(calibrate.InputError, match="class_index"):
        figures.reliability_data(p, y, 10, class_index=4)
