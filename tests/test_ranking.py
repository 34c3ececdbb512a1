"""The ranking core (calibrate._core.ranking) against scikit-learn and brute force."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from calibrate._core import ranking


def _tied_scores(rng, n, levels=7):
    return rng.integers(0, levels, n).astype(np.float64) / levels


def test_tie_groups_follow_distinct_scores_in_decreasing_order():
    rng = np.random.default_rng(0)
    s = _tied_scores(rng, 200)
    g = ranking.TieGroups(s)
    distinct = np.unique(s)[::-1]
    assert g.m == distinct.size
    np.testing.assert_array_equal(g.ends, [np.sum(s >= t) for t in distinct])
    np.testing.assert_array_equal(s, distinct[g.row_group])


def test_tie_groups_increasing():
    s = np.array([0.3, 0.1, 0.3, 0.2])
    g = ranking.TieGroups(s, descending=False)
    np.testing.assert_array_equal(g.ends, [1, 2, 4])
    np.testing.assert_array_equal(g.cumulative(np.ones(4)), [1.0, 2.0, 4.0])


def test_counts_and_resampled_counts_match_bincount_of_groups():
    rng = np.random.default_rng(1)
    s = _tied_scores(rng, 50)
    w = rng.random(50)
    g = ranking.TieGroups(s)
    distinct = np.unique(s)[::-1]
    np.testing.assert_allclose(g.counts(w), [w[s == t].sum() for t in distinct], rtol=1e-14)
    rows = rng.integers(0, 50, (3, 50))
    got = g.resampled_counts(rows)
    for i in range(3):
        np.testing.assert_array_equal(got[i], [np.sum(s[rows[i]] == t) for t in distinct])


def test_coarsened_never_splits_ties():
    rng = np.random.default_rng(2)
    s = _tied_scores(rng, 1000, levels=40)
    g = ranking.TieGroups(s)
    cut = g.coarsened(8)
    assert cut[-1] == 1000 and cut.size <= 8
    assert set(cut.tolist()) <= set(g.ends.tolist())


def _pos_neg(s, pos):
    g = ranking.TieGroups(s)
    return g.counts(pos.astype(float)), g.counts((~pos).astype(float))


@pytest.mark.parametrize("levels", [3, 1000])
def test_auroc_and_average_precision_equal_sklearn(levels):
    rng = np.random.default_rng(3)
    s = _tied_scores(rng, 400, levels)
    pos = rng.random(400) < 0.4
    p, n = _pos_neg(s, pos)
    assert ranking.auroc(p, n) == pytest.approx(roc_auc_score(pos, s), abs=1e-12)
    assert ranking.average_precision(p, n) == pytest.approx(average_precision_score(pos, s), abs=1e-12)
    assert ranking.auroc_of_scores(s, pos) == pytest.approx(roc_auc_score(pos, s), abs=1e-12)


def test_auroc_is_mann_whitney_with_half_ties():
    rng = np.random.default_rng(4)
    s = _tied_scores(rng, 120, 5)
    pos = rng.random(120) < 0.5
    a, b = s[pos], s[~pos]
    mw = (np.sum(a[:, None] > b[None, :]) + 0.5 * np.sum(a[:, None] == b[None, :])) / (a.size * b.size)
    assert ranking.auroc(*_pos_neg(s, pos)) == pytest.approx(mw, abs=1e-14)


def test_auroc_of_scores_without_one_class_is_nan():
    assert np.isnan(ranking.auroc_of_scores([0.1, 0.2], [True, True]))


def test_fpr_at_tpr_brute_force():
    rng = np.random.default_rng(5)
    s = _tied_scores(rng, 300, 20)
    pos = rng.random(300) < 0.5
    best = min(np.mean(s[~pos] >= t) for t in np.unique(s) if np.mean(s[pos] >= t) >= 0.95)
    assert ranking.fpr_at_tpr(*_pos_neg(s, pos), 0.95) == best


def test_count_functions_accept_blocks_of_resamples():
    rng = np.random.default_rng(6)
    pos = rng.integers(0, 4, (5, 9)).astype(float) + 1
    neg = rng.integers(0, 4, (5, 9)).astype(float) + 1
    for fn in (ranking.auroc, ranking.average_precision, ranking.aurc, ranking.augrc):
        block = fn(pos, neg)
        assert block.shape == (5,)
        np.testing.assert_allclose(block, [fn(pos[i], neg[i]) for i in range(5)], rtol=1e-14)
    at = ranking.risk_at_coverage(pos, neg, [0.5, 1.0])
    np.testing.assert_array_equal(at[2], ranking.risk_at_coverage(pos[2], neg[2], [0.5, 1.0]))


def test_aurc_brute_force_without_ties():
    rng = np.random.default_rng(7)
    s = rng.random(60)
    wrong = (rng.random(60) < 0.3).astype(float)
    order = np.argsort(-s)
    brute = np.mean([wrong[order[: i + 1]].mean() for i in range(60)])
    g = ranking.TieGroups(s)
    assert ranking.aurc(g.counts(wrong), g.counts()) == pytest.approx(brute, abs=1e-14)


def test_aurc_optimal_closed_form_equals_the_sum():
    n, c = 37, 25
    brute = np.mean([max(0, i - c) / i for i in range(1, n + 1)])
    assert ranking.aurc_optimal(c, n) == pytest.approx(brute, abs=1e-14)
    np.testing.assert_allclose(ranking.aurc_optimal(np.array([c, 0.0]), np.array([n, 0.0])), [brute, 0.0])
