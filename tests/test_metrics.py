"""Metrics against independent references: hand computation, scikit-learn, torchmetrics, published figures."""

import csv
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from calibrate._core.binning import bin_index, equal_mass_edges, equal_width_edges
from calibrate._core.validation import InputError
from calibrate.metrics import calibration as metrics

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "published-predictions"


def naive_ece(conf, correct, n_bins=15):
    """Guo et al.'s loop: bins (lower, upper], written independently of the package."""
    bounds = np.linspace(0, 1, n_bins + 1)
    total = 0.0
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        in_bin = (conf > lo) & (conf <= hi)
        if lo == 0:
            in_bin |= conf == 0
        if in_bin.any():
            total += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return total


# --------------------------------------------------------------------- bin rule
def test_confidence_one_is_in_the_last_bin():
    assert bin_index(np.array([1.0]), equal_width_edges(15))[0] == 14


def test_confidence_zero_is_in_the_first_bin():
    assert bin_index(np.array([0.0]), equal_width_edges(10))[0] == 0


def test_value_on_an_inner_edge_is_in_the_bin_below():
    edges = equal_width_edges(4)  # 0, .25, .5, .75, 1
    assert list(bin_index(np.array([0.25, 0.5, 0.75, 0.2500001]), edges)) == [0, 1, 2, 1]


def test_equal_mass_edges_split_counts_evenly():
    v = np.random.default_rng(0).random(1000)
    idx = bin_index(v, equal_mass_edges(v, 10))
    assert np.all(np.bincount(idx, minlength=10) == 100)


def test_equal_mass_edges_keep_ties_together():
    v = np.array([0.5] * 50 + [0.9] * 50)
    idx = bin_index(v, equal_mass_edges(v, 4))
    assert len(set(idx[:50])) == 1 and len(set(idx[50:])) == 1


# --------------------------------------------------------------------- ECE
def test_ece_hand_computed():
    # two bins of width .5: bin 0 has conf .3 (wrong), bin 1 has .8 (right) and .6 (wrong)
    probs = np.array([[0.3, 0.3, 0.4], [0.8, 0.1, 0.1], [0.6, 0.2, 0.2]])
    probs[0] = [0.35, 0.3, 0.35]  # top-label .35, argmax 0
    labels = np.array([1, 0, 1])
    # bin 0: conf .35 acc 0 -> 1/3 * .35; bin 1: conf .7 acc .5 -> 2/3 * .2
    assert metrics.ece(probs, labels, n_bins=2) == pytest.approx(0.35 / 3 + 2 / 3 * 0.2, abs=1e-15)


def test_ece_matches_naive_loop(probs_labels):
    p, y = probs_labels
    conf, correct = p.max(1), p.argmax(1) == y
    assert metrics.ece(p, y) == pytest.approx(naive_ece(conf, correct), abs=1e-14)


def test_ece_counts_confidence_one_in_last_bin():
    # 10 samples at conf 1.0, 5 correct -> gap .5 in the last bin; torchmetrics gives
    # them a bin of their own but the ECE value is the same here; the per-bin count differs.
    p = np.tile([1.0, 0.0], (10, 1))
    y = np.array([0] * 5 + [1] * 5)
    curve = metrics.reliability_curve(p, y, n_bins=15)
    assert curve.count[-1] == 10 and curve.count.sum() == 10
    assert metrics.ece(p, y) == pytest.approx(0.5)


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_ece_matches_torchmetrics_in_float64(probs_labels, norm):
    torch = pytest.importorskip("torch")
    tm = pytest.importorskip("torchmetrics.functional.classification.calibration_error")
    p, y = probs_labels
    # torchmetrics' public function casts confidences to float32 before binning; its
    # _ce_compute on float64 tensors is the float64 reference.
    conf = torch.tensor(p.max(1), dtype=torch.float64)
    acc = torch.tensor(p.argmax(1) == y, dtype=torch.float64)
    ref = tm._ce_compute(conf, acc, 15, norm=norm).item()
    assert metrics.ece(p, y, norm=norm) == pytest.approx(ref, abs=1e-10)


def test_ece_float32_input_is_summed_in_float64():
    rng = np.random.default_rng(3)
    n = 200_000
    conf = rng.uniform(0.5, 0.999, n).astype(np.float32)
    p = np.stack([conf, 1 - conf], 1)
    y = (rng.random(n) > conf).astype(int)
    exact = naive_ece(conf.astype(np.float64), (y == 0).astype(np.float64))
    assert metrics.ece(p, y) == pytest.approx(exact, abs=1e-12)


def test_l2_and_max_norms_hand_computed():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0])  # bin .9: acc .5 gap .4; bin .6: acc 1 gap .4
    assert metrics.ece(probs, labels, 10, norm="l2") == pytest.approx(0.4)
    probs[2:, 0], probs[2:, 1] = 0.7, 0.3  # gap .3 in that bin
    assert metrics.mce(probs, labels, 10) == pytest.approx(0.4)
    assert metrics.ece(probs, labels, 10, norm="l2") == pytest.approx(np.sqrt(0.5 * 0.16 + 0.5 * 0.09))


def test_debiased_l2_subtracts_bin_variance():
    probs = np.array([[0.9, 0.1]] * 4 + [[0.6, 0.4]] * 4)
    labels = np.array([0, 0, 0, 1, 0, 0, 1, 1])
    # bin .9: acc .75, var .75*.25/3; bin .6: acc .5, var .25/3
    sq = 0.5 * ((0.15**2) - 0.75 * 0.25 / 3) + 0.5 * ((0.1**2) - 0.25 / 3)
    expected = np.sqrt(max(sq, 0.0))
    assert metrics.ece(probs, labels, 10, norm="l2", debiased=True) == pytest.approx(expected)


def test_debiased_estimator_is_closer_for_a_calibrated_model():
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1, 2000)
    y = (rng.random(2000) > conf).astype(int)  # perfectly calibrated: true ECE 0
    p = np.stack([conf, 1 - conf], 1)
    for norm in ("l1", "l2"):
        assert metrics.ece(p, y, norm=norm, debiased=True) < metrics.ece(p, y, norm=norm)


def test_classwise_ece_is_mean_of_per_class_ece(probs_labels):
    p, y = probs_labels
    per_class = []
    for j in range(p.shape[1]):
        per_class.append(naive_ece(p[:, j], (y == j).astype(float)))
    assert metrics.classwise_ece(p, y) == pytest.approx(np.mean(per_class), abs=1e-14)


def test_equal_mass_ece_uses_equal_count_bins(probs_labels):
    p, y = probs_labels
    conf, correct = p.max(1), (p.argmax(1) == y)
    order = np.argsort(conf, kind="stable")
    expected = sum(
        len(g) / len(conf) * abs(correct[g].mean() - conf[g].mean()) for g in np.array_split(order, 15)
    )
    assert metrics.ece(p, y, binning="mass") == pytest.approx(expected, abs=1e-12)


def test_binary_scores_are_accepted():
    s = np.array([0.9, 0.2, 0.7, 0.4])
    y = np.array([1, 0, 0, 1])
    two = np.stack([1 - s, s], 1)
    assert metrics.ece(s, y, 5) == metrics.ece(two, y, 5)
    assert metrics.brier(s, y) == pytest.approx(2 * np.mean((s - y) ** 2))


def test_one_class():
    p = np.ones((5, 1))
    y = np.zeros(5, int)
    assert metrics.ece(p, y) == 0.0 and metrics.accuracy(p, y) == 1.0 and metrics.nll(p, y) == 0.0


# --------------------------------------------------------------------- NLL, Brier, accuracy
def test_nll_matches_sklearn_log_loss(probs_labels):
    from sklearn.metrics import log_loss

    p, y = probs_labels
    assert metrics.nll(p, y) == pytest.approx(log_loss(y, p, labels=range(p.shape[1])), rel=1e-12)


def test_nll_from_logits_is_exact_for_huge_logits():
    z = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 0.0]])
    y = np.array([1, 1])
    assert metrics.nll_from_logits(z, y) == pytest.approx(1e4 / 2)


def test_brier_is_sum_over_classes(probs_labels):
    p, y = probs_labels
    onehot = np.eye(p.shape[1])[y]
    assert metrics.brier(p, y) == pytest.approx(np.mean(np.sum((p - onehot) ** 2, 1)), rel=1e-12)


def test_brier_matches_sklearn_for_binary():
    from sklearn.metrics import brier_score_loss

    rng = np.random.default_rng(0)
    s, y = rng.random(100), rng.integers(0, 2, 100)
    assert metrics.brier(s, y) == pytest.approx(2 * brier_score_loss(y, s))


def test_accuracy_matches_sklearn(probs_labels):
    from sklearn.metrics import accuracy_score

    p, y = probs_labels
    assert metrics.accuracy(p, y) == accuracy_score(y, p.argmax(1))


def test_softmax_is_float64_and_does_not_saturate():
    z = np.array([[20.0, 0.0]], dtype=np.float32)  # a float32 softmax gives exactly 1.0
    p = metrics.softmax(z)
    assert p.dtype == np.float64 and p[0, 0] < 1.0
    assert metrics.log_softmax(z)[0, 1] == pytest.approx(-20.0)


# --------------------------------------------------------------------- published figures
def _read_published(name):
    with open(SHARED / name) as fh:
        rows = list(csv.DictReader(fh))
    conf = np.array([float(r["confidence"]) for r in rows])
    correct = np.array([r["true_label"] == r["pred_label"] for r in rows])
    return conf, correct


@pytest.mark.parametrize(
    "name, published", [("probs_resnet110_c10_logits.csv", 0.0475), ("probs_densenet40_c10_logits.csv", 0.0550)]
)
def test_reproduces_published_ece(name, published):
    if not SHARED.exists():
        pytest.skip("../shared/data/published-predictions not present")
    conf, correct = _read_published(name)
    assert (conf == 1.0).any()  # exercises the last-edge rule
    got = metrics.ece_from_confidences(conf, correct, 15)
    assert round(got, 4) == published


# --------------------------------------------------------------------- invariants
prob_rows = arrays(np.float64, st.tuples(st.integers(1, 60), st.integers(2, 6)), elements=st.floats(0.001, 1.0))


@settings(max_examples=60, deadline=None)
@given(prob_rows, st.integers(0, 2**31 - 1), st.integers(1, 30))
def test_ece_invariants(raw, seed, n_bins):
    p = raw / raw.sum(1, keepdims=True)
    y = np.random.default_rng(seed).integers(0, p.shape[1], p.shape[0])
    e = metrics.ece(p, y, n_bins)
    assert 0.0 <= e <= 1.0
    assert metrics.ece(p, y, n_bins, norm="l1") <= metrics.ece(p, y, n_bins, norm="l2") + 1e-12
    assert metrics.ece(p, y, n_bins, norm="l2") <= metrics.mce(p, y, n_bins) + 1e-12
    perm = np.random.default_rng(seed).permutation(p.shape[0])
    assert metrics.ece(p[perm], y[perm], n_bins) == pytest.approx(e, abs=1e-12)
    assert 0.0 <= metrics.brier(p, y) <= 2.0


@settings(max_examples=40, deadline=None)
@given(prob_rows, st.integers(0, 2**31 - 1))
def test_reliability_curve_counts_every_sample(raw, seed):
    p = raw / raw.sum(1, keepdims=True)
    y = np.random.default_rng(seed).integers(0, p.shape[1], p.shape[0])
    c = metrics.reliability_curve(p, y, 10)
    assert c.count.sum() == p.shape[0]
    filled = c.count > 0
    assert np.all((c.confidence[filled] > c.edges[:-1][filled] - 1e-12) | (c.edges[:-1][filled] == 0))
    assert np.all(c.confidence[filled] <= c.edges[1:][filled] + 1e-12)


# --------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "probs, labels, match",
    [
        (np.array([[0.5, 0.5], [np.nan, 1.0]]), [0, 1], "finite"),
        (np.array([[0.5, 0.5], [0.2, 0.3]]), [0, 1], "sum to 1"),
        (np.array([[2.0, -1.0]]), [0], r"\[0, 1\]"),
        (np.array([[0.5, 0.5]]), [2], r"\[0, 2\)"),
        (np.array([[0.5, 0.5]]), [-1], ">= 0"),
        (np.array([[0.5, 0.5]]), [0.5], "integer"),
        (np.array([[0.5, 0.5]]), [0, 1], "expected 1 labels"),
        (np.zeros((0, 3)), [], "at least one"),
        (np.ones((2, 2, 2)) / 2, [0, 1], "dimensions"),
    ],
)
def test_bad_input_is_a_clear_error(probs, labels, match):
    with pytest.raises(InputError, match=match):
        metrics.ece(probs, np.asarray(labels))


def test_torch_tensors_are_accepted(probs_labels):
    torch = pytest.importorskip("torch")
    p, y = probs_labels
    assert metrics.ece(torch.tensor(p), torch.tensor(y)) == metrics.ece(p, y)


def test_equal_width_fast_binning_equals_binary_search_at_edges():
    rng = np.random.default_rng(1)
    for n_bins in (1, 3, 10, 15, 100):
        edges = equal_width_edges(n_bins)
        for dtype in (np.float32, np.float64):
            near = []
            for e in edges.astype(dtype):
                for direction in (-np.inf, np.inf):
                    x = e
                    for _ in range(3):
                        x = np.nextafter(x, dtype(direction))
                        near.append(x)
                near.append(e)
            v = np.clip(np.concatenate([rng.random(10_000).astype(dtype), np.array(near, dtype)]), 0, 1).astype(dtype)
            ref = np.clip(np.searchsorted(edges, v.astype(np.float64), side="left") - 1, 0, n_bins - 1)
            np.testing.assert_array_equal(bin_index(v, edges), ref)
