"""The statistics of the Brier decomposition and of the over/under-confidence split
(calibrate._core.stats.ClasswiseBrierBins, Bins.over_under) against direct loops over
classes and bins written without them."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calibrate import InputError
from calibrate._core import stats as S
from calibrate._core.binning import equal_mass_edges, equal_width_edges


def sample(n, k, seed, ones=0.15):
    """(n, k) probabilities with a share ``ones`` of one-hot rows (confidence exactly 1.0)
    and labels (n,); most p_ij of a large k lie in the first bin, so many bins are empty."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(k, 0.3), size=n)
    hot = rng.random(n) < ones
    p[hot] = np.eye(k)[rng.integers(0, k, hot.sum())]
    return p, rng.integers(0, k, n)


def loop_bin(v, edges):
    """The bin of one value under e_b < v <= e_{b+1} (0 in the first bin), by a scan."""
    for b in range(edges.size - 1):
        if v <= edges[b + 1]:
            return b
    return edges.size - 2


def loop_sums(p, y, edges):
    """(count, sum f, sum o, sum f^2, sum f o), each (k, B), one row and class at a time."""
    n, k = p.shape
    n_bins = edges.shape[-1] - 1
    out = np.zeros((5, k, n_bins))
    for j in range(k):
        e = edges if edges.ndim == 1 else edges[j]
        for i in range(n):
            f, o = float(p[i, j]), float(y[i] == j)
            b = loop_bin(f, e)
            out[:, j, b] += (1.0, f, o, f * f, f * o)
    return out


def loop_decomposition(p, y, edges):
    """Murphy's terms from the rows of every non-empty (class, bin), and the Brier score."""
    n, k = p.shape
    p = p.astype(np.float64)
    ref = dict.fromkeys(["reliability", "resolution", "uncertainty", "within_bin_variance",
                         "within_bin_covariance"], 0.0)
    for j in range(k):
        e = edges if edges.ndim == 1 else edges[j]
        f, o = p[:, j], (y == j).astype(float)
        idx = np.array([loop_bin(v, e) for v in f])
        obar = o.mean()
        ref["uncertainty"] += obar * (1 - obar)
        for b in np.unique(idx):
            m = idx == b
            fb, ob = f[m].mean(), o[m].mean()
            ref["reliability"] += m.sum() * (fb - ob) ** 2 / n
            ref["resolution"] += m.sum() * (ob - obar) ** 2 / n
            ref["within_bin_variance"] += np.sum((f[m] - fb) ** 2) / n
            ref["within_bin_covariance"] += np.sum((f[m] - fb) * (o[m] - ob)) / n
    ref["brier"] = float(np.mean(np.sum((p - np.eye(k)[y]) ** 2, axis=1)))
    return ref


def state_of(stat, p, y, weights=None):
    return stat.update(stat.zeros(), S.Block(p, y), weights)


@pytest.mark.parametrize("k, n", [(2, 400), (10, 400), (1000, 120)])
def test_brier_bins_sums_equal_a_loop_over_rows(k, n):
    p, y = sample(n, k, seed=k)
    stat = S.ClasswiseBrierBins(k, equal_width_edges(10))
    got = stat.sums(state_of(stat, p, y))
    ref = loop_sums(p, y, equal_width_edges(10))
    for name, g, r in zip(("count", "f", "o", "ff", "fo"), got, ref):
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("k, n", [(2, 400), (10, 400), (1000, 120)])
def test_brier_decomposition_equals_a_loop_over_bins(k, n):
    p, y = sample(n, k, seed=k + 1)
    edges = equal_width_edges(15)
    got = S.ClasswiseBrierBins(k, edges).finish(state_of(S.ClasswiseBrierBins(k, edges), p, y))
    ref = loop_decomposition(p, y, edges)
    assert set(got) == set(ref)
    for key in ref:
        assert float(got[key]) == pytest.approx(ref[key], abs=1e-12), key


@pytest.mark.parametrize("k, n", [(2, 300), (10, 300), (1000, 100)])
def test_brier_identity_with_empty_bins_and_confidence_one(k, n):
    p, y = sample(n, k, seed=3 * k, ones=0.3)
    stat = S.ClasswiseBrierBins(k, equal_width_edges(n + 1))  # more bins than rows: some are empty
    state = state_of(stat, p, y)
    cnt = stat.sums(state)[0]
    assert (cnt == 0).any() and cnt[:, -1].sum() >= np.count_nonzero(p.max(1) == 1.0)
    d = stat.finish(state)
    total = (d["reliability"] - d["resolution"] + d["uncertainty"] + d["within_bin_variance"]
             - 2 * d["within_bin_covariance"])
    assert float(d["brier"]) == pytest.approx(float(total), abs=1e-12)
    assert float(d["brier"]) == pytest.approx(float(S.Brier().finish(state_of(S.Brier(), p, y))), abs=1e-12)


def test_per_class_equal_mass_edges_equal_a_loop():
    p, y = sample(300, 6, seed=8)
    stat = S.ClasswiseBrierBins.of(p, 7, "mass")
    edges = np.stack([equal_mass_edges(p[:, j], 7) for j in range(6)])
    np.testing.assert_array_equal(stat.edges, edges)
    got, ref = stat.finish(state_of(stat, p, y)), loop_decomposition(p, y, edges)
    for key in ref:
        assert float(got[key]) == pytest.approx(ref[key], abs=1e-12), key


def test_one_class_column_of_zeros_and_one_row():
    p = np.array([[1.0, 0.0, 0.0]])
    stat = S.ClasswiseBrierBins(3, equal_width_edges(5))
    d = stat.finish(state_of(stat, p, np.array([0])))
    assert {key: float(v) for key, v in d.items()} == {
        "brier": 0.0, "reliability": 0.0, "resolution": 0.0, "uncertainty": 0.0,
        "within_bin_variance": 0.0, "within_bin_covariance": 0.0}


def test_first_part_of_the_state_is_the_classwise_bins_state():
    p, y = sample(500, 10, seed=4)
    stat = S.ClasswiseBrierBins(10, equal_width_edges(15))
    state = state_of(stat, p, y)
    ref = state_of(S.ClasswiseBins(10, equal_width_edges(15)), p, y)
    np.testing.assert_allclose(state[:stat.bins.size], ref, rtol=1e-15, atol=0)
    assert stat.bins.finish(state[:stat.bins.size]) == pytest.approx(
        S.ClasswiseBins(10, equal_width_edges(15)).finish(ref), abs=1e-15)


def test_float32_probabilities_are_squared_in_float64():
    p, y = sample(400, 5, seed=5)
    p32 = p.astype(np.float32)
    stat = S.ClasswiseBrierBins(5, equal_width_edges(10))
    got = stat.sums(state_of(stat, p32, y))
    ref = loop_sums(p32.astype(np.float64), y, equal_width_edges(10))
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, rtol=0, atol=1e-12)


def test_integer_weights_equal_repeated_rows():
    p, y = sample(300, 4, seed=6)
    w = np.random.default_rng(1).poisson(1.0, 300)
    rep = np.repeat(np.arange(300), w)
    stat = S.ClasswiseBrierBins(4, equal_width_edges(10))
    np.testing.assert_allclose(state_of(stat, p, y, w), state_of(stat, p[rep], y[rep]), rtol=1e-12, atol=1e-10)


def test_finish_takes_a_stack_of_states():
    p, y = sample(300, 4, seed=7)
    stat = S.ClasswiseBrierBins(4, equal_width_edges(10))
    a, b = state_of(stat, p[:100], y[:100]), state_of(stat, p[100:], y[100:])
    both = stat.finish(np.stack([a, b]))
    for key, v in stat.finish(a).items():
        assert both[key][0] == v and both[key][1] == stat.finish(b)[key]


def test_rows_without_probabilities_are_refused():
    b = S.Block.from_rows(np.array([0]), np.array([0.9]), np.array([True]), np.array([0.1]), np.array([0.02]))
    with pytest.raises(InputError, match="ClasswiseBrierBins"):
        S.ClasswiseBrierBins(2, equal_width_edges(5)).terms(b)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(3, 60), st.data())
def test_merge_is_associative_and_equals_one_pass(seed, n, data):
    p, y = sample(n, 4, seed=seed, ones=0.3)
    i, j = sorted(data.draw(st.lists(st.integers(0, n), min_size=2, max_size=2)))
    stats = [S.ClasswiseBrierBins(4, equal_width_edges(6)), S.Bins(equal_width_edges(6))]
    for stat in stats:
        a, b, c = (state_of(stat, p[s], y[s]) for s in (slice(0, i), slice(i, j), slice(j, n)))
        left, right = S.merge(S.merge(a, b), c), S.merge(a, S.merge(b, c))
        np.testing.assert_allclose(left, right, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(left, state_of(stat, p, y), rtol=1e-12, atol=1e-12)


# -------------------------------------------------------------- over / under
def loop_over_under(conf, ok, edges):
    n_bins = edges.size - 1
    over = under = 0.0
    for b in range(n_bins):
        m = np.array([loop_bin(v, edges) == b for v in conf])
        if m.any():
            gap = conf[m].mean() - ok[m].mean()
            over += m.sum() / conf.size * max(gap, 0.0)
            under += m.sum() / conf.size * max(-gap, 0.0)
    return over, under


@pytest.mark.parametrize("k", [2, 10, 1000])
def test_over_under_equal_a_loop_over_bins_and_sum_to_the_ece(k):
    p, y = sample(300, k, seed=k + 2, ones=0.3)
    stat = S.Bins(equal_width_edges(15))
    state = state_of(stat, p, y)
    over, under = stat.over_under(state)
    ref = loop_over_under(p.max(1), (p.argmax(1) == y).astype(float), equal_width_edges(15))
    assert float(over) == pytest.approx(ref[0], abs=1e-14)
    assert float(under) == pytest.approx(ref[1], abs=1e-14)
    assert float(over + under) == pytest.approx(float(stat.finish(state, "l1")), abs=1e-15)


def test_over_under_of_a_stack_of_states():
    p, y = sample(200, 3, seed=9)
    stat = S.Bins(equal_width_edges(10))
    a, b = state_of(stat, p[:50], y[:50]), state_of(stat, p[50:], y[50:])
    over, under = stat.over_under(np.stack([a, b]))
    assert (over[0], under[0]) == tuple(stat.over_under(a)) and (over[1], under[1]) == tuple(stat.over_under(b))
