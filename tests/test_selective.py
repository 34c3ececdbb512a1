import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from calibrate import InputError
from calibrate.metrics import selective


def brute_curve(c, ok):
    """One point per distinct threshold, by a plain loop."""
    pts = []
    for t in sorted(set(c.tolist()), reverse=True):
        acc = [i for i in range(len(c)) if c[i] >= t]
        wrong = sum(1 for i in acc if not ok[i])
        pts.append((len(acc) / len(c), wrong / len(acc), wrong / len(c)))
    return pts


def brute_aurc(c, ok):
    # each row contributes the risk at the threshold that first admits it (its own score)
    total = 0.0
    for i in range(len(c)):
        acc = [j for j in range(len(c)) if c[j] >= c[i]]
        total += sum(1 for j in acc if not ok[j]) / len(acc)
    return total / len(c)


def data(n=300, seed=0, ties=True):
    rng = np.random.default_rng(seed)
    c = rng.random(n)
    if ties:
        c = np.round(c * 20) / 20
    ok = rng.random(n) < c
    return c, ok


@pytest.mark.parametrize("ties", [True, False])
def test_curve_and_areas_match_brute_force(ties):
    c, ok = data(ties=ties)
    cov, risk = selective.risk_coverage(c, ok)
    pts = brute_curve(c, ok)
    np.testing.assert_allclose(cov, [p[0] for p in pts], rtol=0, atol=1e-15)
    np.testing.assert_allclose(risk, [p[1] for p in pts], rtol=0, atol=1e-15)
    assert selective.aurc(c, ok) == pytest.approx(brute_aurc(c, ok), abs=1e-14)
    # AUGRC: trapezoid on the generalized risk curve from (0, 0), by a loop
    x, y, area = 0.0, 0.0, 0.0
    for cv, _, gr in pts:
        area += (cv - x) * (gr + y) / 2
        x, y = cv, gr
    assert selective.augrc(c, ok) == pytest.approx(area, abs=1e-14)


def test_augrc_closed_form_with_failure_auroc():
    # Traub et al. 2024: AUGRC = (1 - AUROC_f) acc (1 - acc) + (1 - acc)^2 / 2
    c, ok = data(n=2000, seed=3)
    acc = ok.mean()
    auroc = roc_auc_score(ok, c)  # ties counted 1/2
    expected = (1 - auroc) * acc * (1 - acc) + 0.5 * (1 - acc) ** 2
    assert selective.augrc(c, ok) == pytest.approx(expected, abs=1e-13)


def test_eaurc_optimal_ranking_and_closed_form():
    c, ok = data(n=5000, seed=1, ties=False)
    # a perfect ranking (correct strictly above wrong, no ties) has zero excess
    perfect = ok + np.random.default_rng(0).random(ok.size) * 0.5
    # AURC summed over rows, the optimum in closed form (digamma): equal to rounding (1e-14 of AURC ~ 0.1)
    assert selective.eaurc(perfect, ok) == pytest.approx(0.0, abs=1e-14)
    assert selective.aurc(perfect, ok) == pytest.approx(brute_aurc_fast(perfect, ok), abs=1e-14)
    r = 1 - ok.mean()
    assert selective.aurc(perfect, ok) == pytest.approx(r + (1 - r) * np.log(1 - r), abs=2e-3)
    assert selective.eaurc(c, ok) > 0


def brute_aurc_fast(c, ok):
    order = np.argsort(-c)
    err = np.cumsum(~ok[order])
    return float(np.mean(err / np.arange(1, c.size + 1)))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 40))
def test_permutation_invariance_among_ties(seed, n):
    rng = np.random.default_rng(seed)
    c = rng.integers(0, 4, n) / 4.0
    ok = rng.random(n) < 0.6
    perm = rng.permutation(n)
    for f in (selective.aurc, selective.eaurc, selective.augrc):
        assert f(c, ok) == pytest.approx(f(c[perm], ok[perm]), abs=1e-14)
    assert selective.aurc(c, ok) == pytest.approx(brute_aurc(c, ok), abs=1e-14)
    cov, risk = selective.risk_coverage(c[perm], ok[perm])
    cov0, risk0 = selective.risk_coverage(c, ok)
    np.testing.assert_array_equal(cov, cov0)
    np.testing.assert_allclose(risk, risk0, atol=1e-15)


def test_risk_at_coverage_and_coverage_at_risk_brute():
    c, ok = data(n=400, seed=5)
    pts = brute_curve(c, ok)
    for target in (0.05, 0.3, 0.5, 0.77, 1.0):
        exp = next(p[1] for p in pts if p[0] >= target)
        assert selective.risk_at_coverage(c, ok, target) == pytest.approx(exp, abs=1e-15)
    for r in (0.0, 0.1, 0.25, 0.5, 1.0):
        good = [p[0] for p in pts if p[1] <= r]
        exp = max(good) if good else 0.0
        assert selective.coverage_at_risk(c, ok, r) == exp


def test_edge_cases():
    # n = 1, all correct, all the same score, confidence exactly 1
    assert selective.aurc([1.0], [True]) == 0.0
    assert selective.aurc([0.3], [False]) == 1.0
    assert selective.eaurc([0.3], [False]) == 0.0
    c = np.ones(10)
    ok = np.arange(10) < 7
    cov, risk = selective.risk_coverage(c, ok)
    assert cov.tolist() == [1.0] and risk[0] == pytest.approx(0.3)
    assert selective.aurc(c, ok) == pytest.approx(0.3)
    assert selective.augrc(c, ok) == pytest.approx(0.5 * 0.3)
    assert selective.coverage_at_risk(c, ok, 0.29) == 0.0
    # torch tensors are accepted
    torch = pytest.importorskip("torch")
    c, ok = data(n=50)
    assert selective.aurc(torch.tensor(c), torch.tensor(ok)) == selective.aurc(c, ok)


def test_validation_messages():
    with pytest.raises(InputError, match="correct: expected shape"):
        selective.aurc([0.1, 0.2], [1])
    with pytest.raises(InputError, match="finite"):
        selective.aurc([np.nan], [1])
    with pytest.raises(InputError, match="0/1"):
        selective.aurc([0.5], [2])
    with pytest.raises(InputError, match=r"coverage: expected a number in \(0, 1\]"):
        selective.risk_at_coverage([0.5], [1], 0.0)
    with pytest.raises(InputError, match="1-d"):
        selective.aurc(np.ones((2, 2)), [1, 1])


def test_confidence_scores():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(6), size=70_000)  # more than one row block
    p32 = p.astype(np.float32)
    p32 /= p32.sum(1, keepdims=True)
    np.testing.assert_allclose(selective.max_probability(p), p.max(1), rtol=0, atol=0)
    s = np.sort(p, axis=1)
    np.testing.assert_allclose(selective.probability_margin(p), s[:, -1] - s[:, -2], atol=1e-16)
    ent = -(p * np.log(p)).sum(1)
    np.testing.assert_allclose(selective.negative_entropy(p), -ent, rtol=1e-12)
    assert selective.max_probability(p32).dtype == np.float64
    one_hot = np.eye(3)[[0, 2]]
    np.testing.assert_array_equal(selective.negative_entropy(one_hot), [0.0, 0.0])
    np.testing.assert_array_equal(selective.probability_margin(one_hot), [1.0, 1.0])
    assert selective.probability_margin(np.ones((4, 1))).tolist() == [1.0] * 4
