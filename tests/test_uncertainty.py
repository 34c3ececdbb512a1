"""Uncertainty decomposition and pooling (numpy), against closed forms."""

import numpy as np
import pytest
from scipy.special import softmax

from calibrate import TemperatureScaling
from calibrate.metrics import uncertainty


def test_pooled_log_probs_is_the_log_mean_probability():
    s = np.random.default_rng(0).normal(size=(4, 50, 3)) * 3
    np.testing.assert_allclose(np.exp(uncertainty.pooled_log_probs(s)), softmax(s, axis=2).mean(0), rtol=1e-12)


def test_total_is_aleatoric_plus_epistemic():
    s = np.random.default_rng(1).normal(size=(6, 40, 5)) * 2
    d = uncertainty.uncertainty_decomposition(s)
    p = softmax(s, axis=2)
    mean = p.mean(0)
    total = -(mean * np.log(mean)).sum(1)
    expected = -(p * np.log(p)).sum(2).mean(0)
    np.testing.assert_allclose(d["predictive_entropy"], total, rtol=1e-12)
    np.testing.assert_allclose(d["expected_entropy"], expected, rtol=1e-12)
    np.testing.assert_allclose(d["mutual_information"], total - expected, atol=1e-12)
    assert np.all(d["mutual_information"] >= 0)


def test_identical_members_have_no_epistemic_uncertainty():
    one = np.random.default_rng(2).normal(size=(1, 30, 4))
    d = uncertainty.uncertainty_decomposition(np.repeat(one, 5, axis=0))
    np.testing.assert_allclose(d["mutual_information"], 0, atol=1e-12)


def test_certain_members_that_disagree_are_all_epistemic():
    s = np.array([[[100.0, 0.0]], [[0.0, 100.0]]])
    d = uncertainty.uncertainty_decomposition(s)
    assert d["mutual_information"][0] == pytest.approx(np.log(2))
    assert d["expected_entropy"][0] == pytest.approx(0, abs=1e-40)


def test_calibrating_members_then_pooling():
    rng = np.random.default_rng(3)
    val, test = rng.normal(size=(3, 200, 4)) * 4, rng.normal(size=(3, 100, 4)) * 4
    # labels drawn from the first member's softmax: informative logits, so every member's
    # NLL has a finite optimum in T (random labels have none: T -> inf)
    p = np.exp(val[0] / 2 - np.logaddexp.reduce(val[0] / 2, axis=1, keepdims=True))
    y = (rng.random((200, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
    def make():  # members 1 and 2 carry no ranking of these labels: fit within bounds
        return TemperatureScaling(bounds=(0.05, 100.0))

    got = uncertainty.calibrate_members_then_pool(make, val, y, test)
    ref = [make().fit(val[m], y).predict_proba(test[m]) for m in range(3)]
    np.testing.assert_allclose(np.exp(got), np.mean(ref, 0), rtol=1e-10)


def test_bad_shape():
    with pytest.raises(ValueError, match="members, n, k"):
        uncertainty.uncertainty_decomposition(np.zeros((3, 4)))
