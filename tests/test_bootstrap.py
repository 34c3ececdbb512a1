"""Bootstrap intervals: the vectorised resampling equals a loop over resamples, exactly."""

import numpy as np
import pytest
from conftest import make_logits

from calibrate import bootstrap_ci, metrics, paired_bootstrap_ci, softmax
from calibrate.bootstrap import _count_chunks, _evaluator, bootstrap_distribution

NAMES = ["accuracy", "nll", "brier", "ece", "ece_mass", "ece_l2", "ece_l2_debiased", "mce", "classwise_ece"]


@pytest.fixture(scope="module")
def pred():
    z, y = make_logits(n=1500, k=6, temperature=2.0, seed=4)
    return softmax(z), y


@pytest.mark.parametrize("name", NAMES)
def test_vectorised_resamples_equal_a_loop(pred, name):
    p, y = pred
    fn, kw, values = _evaluator(name, p, y, {})
    w = next(_count_chunks(len(y), 8, np.random.default_rng(0)))
    loop = []
    for wi in w:
        take = np.repeat(np.arange(len(y)), wi.astype(int))
        if kw.get("binning") == "mass":  # edges of the full sample (the documented conditioning)
            continue
        loop.append(fn(p[take], y[take], **kw))
    if loop:
        np.testing.assert_allclose(values(w), loop, rtol=1e-12, atol=1e-14)


def test_a_resample_is_a_multiset_of_the_rows(pred):
    w = next(_count_chunks(1000, 50, np.random.default_rng(0)))
    assert w.shape == (50, 1000) and np.all(w.sum(1) == 1000) and np.all(w >= 0)


def test_interval_unpacks_and_contains_the_estimate_for_accuracy(pred):
    p, y = pred
    ci = bootstrap_ci(metrics.accuracy, p, y, n_resamples=500)
    low, high = ci
    assert low == ci.low and high == ci.high
    assert low <= ci.estimate <= high
    assert ci.estimate == metrics.accuracy(p, y)


def test_interval_width_matches_binomial_theory_for_accuracy(pred):
    p, y = pred
    ci = bootstrap_ci("accuracy", p, y, n_resamples=4000)
    a = ci.estimate
    se = np.sqrt(a * (1 - a) / len(y))
    assert (ci.high - ci.low) == pytest.approx(2 * 1.96 * se, rel=0.1)


def test_same_seed_same_interval_other_seed_other(pred):
    p, y = pred
    a = bootstrap_ci("ece", p, y, seed=1)
    assert a == bootstrap_ci("ece", p, y, seed=1)
    assert a != bootstrap_ci("ece", p, y, seed=2)


def test_custom_callable_falls_back_to_a_loop(pred):
    p, y = pred

    def top1_error(probs, labels):
        return 1 - metrics.accuracy(probs, labels)

    ci = bootstrap_ci(top1_error, p, y, n_resamples=100, seed=3)
    ref = bootstrap_ci("accuracy", p, y, n_resamples=100, seed=3)
    assert ci.low == pytest.approx(1 - ref.high) and ci.high == pytest.approx(1 - ref.low)


def test_paired_interval_of_identical_predictions_is_zero(pred):
    p, y = pred
    d = paired_bootstrap_ci("ece", p, p, y, n_resamples=200)
    assert d.low == d.high == d.estimate == 0.0


def test_paired_interval_detects_a_real_improvement():
    z, y = make_logits(n=3000, k=5, temperature=3.0, seed=5)
    d = paired_bootstrap_ci("nll", softmax(z), softmax(z / 3.0), y)
    assert d.high < 0 and d.p_value <= 0.01
    dist_a = bootstrap_distribution("nll", softmax(z), y, 300)
    dist_b = bootstrap_distribution("nll", softmax(z / 3.0), y, 300)
    # pairing removes the shared noise: the paired spread is narrower than the unpaired one
    assert (d.high - d.low) < np.quantile(dist_a - dist_b[::-1], 0.975) - np.quantile(dist_a - dist_b[::-1], 0.025)


def test_nll_uses_exact_log_probs_when_given():
    z = np.array([[800.0, 0.0], [0.0, 1.0]])
    y = np.array([1, 1])
    lp = metrics.log_softmax(z)
    ci = bootstrap_ci("nll", np.exp(lp), y, n_resamples=50, log_probs=lp)
    assert ci.estimate == pytest.approx(metrics.nll_from_logits(z, y))


def test_bad_arguments(pred):
    p, y = pred
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci("ece", p, y, confidence=1.5)
    with pytest.raises(ValueError, match="metric"):
        bootstrap_ci("nope", p, y)
