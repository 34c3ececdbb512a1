"""The statistics layer (calibrate._core.stats): update / merge / finish against brute
references written without it."""

import numpy as np
import pytest
from conftest import make_logits
from scipy.special import log_softmax

from calibrate._core import dispatch
from calibrate._core import stats as S
from calibrate._core.binning import equal_mass_edges, equal_width_edges


@pytest.fixture(scope="module")
def pred():
    z, y = make_logits(n=3000, k=5, seed=11)
    lp = log_softmax(z, axis=1)
    return z, np.exp(lp), lp, y


def brute_bins(values, hits, n_bins):
    b = np.clip(np.ceil(values * n_bins).astype(int) - 1, 0, n_bins - 1)  # e_b < v <= e_{b+1}
    return (np.bincount(b, minlength=n_bins).astype(float), np.bincount(b, weights=values, minlength=n_bins),
            np.bincount(b, weights=hits.astype(float), minlength=n_bins))


def all_stats(k):
    return [S.Accuracy(), S.NLL(), S.Brier(), S.Bins(equal_width_edges(15)), S.ClasswiseBins(k, equal_width_edges(15))]


def test_merging_two_halves_equals_one_pass(pred):
    _, p, _, y = pred
    stats = all_stats(p.shape[1])
    whole = S.accumulate(stats, p, y)
    a, b = S.accumulate(stats, p[:1234], y[:1234]), S.accumulate(stats, p[1234:], y[1234:])
    for w, x, z in zip(whole, a, b):
        np.testing.assert_allclose(S.merge(x, z), w, rtol=1e-13, atol=1e-12)


def test_integer_row_weights_equal_repeated_rows(pred):
    _, p, lp, y = pred
    w = np.random.default_rng(0).poisson(1.0, y.size)
    rep = np.repeat(np.arange(y.size), w)
    for stat in all_stats(p.shape[1]):
        weighted = stat.update(stat.zeros(), S.Block(p, y, lp), w)
        repeated = stat.update(stat.zeros(), S.Block(p[rep], y[rep], lp[rep]))
        np.testing.assert_allclose(weighted, repeated, rtol=1e-12, atol=1e-10)


def test_row_means_equal_their_definitions(pred):
    _, p, lp, y = pred
    rows = np.arange(y.size)
    block = S.Block(p, y, lp)
    finish = {type(s).__name__: s.finish(s.update(s.zeros(), block)) for s in (S.Accuracy(), S.NLL(), S.Brier())}
    assert finish["Accuracy"] == np.mean(p.argmax(1) == y)
    assert finish["NLL"] == pytest.approx(-lp[rows, y].mean(), rel=1e-13)
    assert finish["Brier"] == pytest.approx(((p - np.eye(p.shape[1])[y]) ** 2).sum(1).mean(), rel=1e-13)


def test_nll_without_log_probs_clips_zero_probabilities():
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    s = S.NLL()
    assert s.finish(s.update(s.zeros(), S.Block(p, np.array([1, 0])))) == pytest.approx(
        (-np.log(np.finfo(float).tiny) - np.log(0.5)) / 2, rel=1e-15)


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_top_label_bins_and_their_calibration_error(pred, norm):
    _, p, _, y = pred
    stat = S.Bins(equal_width_edges(15))
    state = stat.update(stat.zeros(), S.Block(p, y))
    conf, ok = p.max(1), p.argmax(1) == y
    cnt, sc, so = brute_bins(conf, ok, 15)
    for got, ref in zip(stat.sums(state), (cnt, sc, so)):
        np.testing.assert_allclose(got, ref, rtol=1e-13)
    f = cnt > 0
    gap = np.abs(so[f] / cnt[f] - sc[f] / cnt[f])
    ref = {"l1": np.sum(cnt[f] / y.size * gap), "l2": np.sqrt(np.sum(cnt[f] / y.size * gap**2)),
           "max": gap.max()}[norm]
    assert stat.finish(state, norm) == pytest.approx(ref, rel=1e-12)


def test_classwise_bins_give_every_bin_of_every_class_including_bin_zero(pred):
    _, p, _, y = pred
    stat = S.ClasswiseBins(p.shape[1], equal_width_edges(10))
    cnt, sc, so = stat.sums(stat.update(stat.zeros(), S.Block(p, y)))
    for j in range(p.shape[1]):
        rc, rs, ro = brute_bins(p[:, j], y == j, 10)
        np.testing.assert_array_equal(cnt[j], rc)
        np.testing.assert_allclose(sc[j], rs, rtol=1e-11, atol=1e-11)
        np.testing.assert_array_equal(so[j], ro)


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_classwise_error_reduces_the_per_class_errors_once(pred, norm):
    _, p, _, y = pred
    stat = S.ClasswiseBins(p.shape[1], equal_width_edges(15))
    state = stat.update(stat.zeros(), S.Block(p, y))
    per = []
    for j in range(p.shape[1]):
        one = S.Bins(equal_width_edges(15), column=j)
        per.append(one.finish(one.update(one.zeros(), S.Block(p, y)), norm))
    ref = {"l1": np.mean(per), "l2": np.sqrt(np.mean(np.square(per))), "max": np.max(per)}[norm]
    assert stat.finish(state, norm) == pytest.approx(ref, rel=1e-11)


def test_per_class_edges_bin_each_column_on_its_own_edges(pred):
    _, p, _, y = pred
    edges = np.stack([equal_mass_edges(p[:, j], 8) for j in range(p.shape[1])])
    stat = S.ClasswiseBins(p.shape[1], edges)
    cnt, _, _ = stat.sums(stat.update(stat.zeros(), S.Block(p, y)))
    for j in range(p.shape[1]):
        ref = np.bincount(np.clip(np.searchsorted(edges[j], p[:, j], side="left") - 1, 0, 7), minlength=8)
        np.testing.assert_array_equal(cnt[j], ref)


def test_finish_takes_a_stack_of_states(pred):
    _, p, _, y = pred
    stat = S.Bins(equal_width_edges(15))
    a = stat.update(stat.zeros(), S.Block(p[:1000], y[:1000]))
    b = stat.update(stat.zeros(), S.Block(p[1000:], y[1000:]))
    np.testing.assert_array_equal(stat.finish(np.stack([a, b]), "l2"), [stat.finish(a, "l2"), stat.finish(b, "l2")])


def test_reduce_of_logits_gives_the_exact_nll(pred):
    z, p, lp, y = pred
    (state,) = dispatch.reduce([S.NLL()], z, y, "logits")
    assert S.NLL().finish(state) == pytest.approx(-lp[np.arange(y.size), y].mean(), rel=1e-13)
