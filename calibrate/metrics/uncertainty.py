"""Sampled predictions and the split of predictive uncertainty.

Sampled predictions are (members, n, k) with the member axis first: S passes of MC dropout
(Gal & Ghahramani 2016) or M independently seeded models (Lakshminarayanan et al. 2017).

For samples p_s (s = 1..S) of a row's class probabilities, with H the entropy in nats:
  predictive entropy   H[mean_s p_s]               total uncertainty
  expected entropy     mean_s H[p_s]               aleatoric (data) part
  mutual information   H[mean_s p_s] - mean_s H[p_s] >= 0   epistemic (model) part
(Depeweg et al. 2018; Smith & Gal 2018). numpy only; the samples come from
:mod:`calibrate.integrations.torch` (any model) or from saved logits.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, logsumexp

from calibrate._core.validation import InputError, to_numpy


def _check_samples(samples, name="samples") -> np.ndarray:
    a = to_numpy(samples, name)
    if a.ndim != 3 or min(a.shape) == 0:
        raise InputError(f"{name}: expected (members, n, k) logits, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InputError(f"{name}: expected finite logits")
    return a.astype(np.float64, copy=False)


def member_log_probs(logit_samples) -> np.ndarray:
    """(S, n, k) float64 log-probabilities of each sample (float64 log-softmax)."""
    return log_softmax(_check_samples(logit_samples), axis=2)


def pooled_log_probs(logit_samples) -> np.ndarray:
    """(n, k) log of the mean of the members' probabilities: log (1/S) sum_s p_s.

    These are valid logits (softmax gives back the pooled probabilities), so they can be
    passed to any calibrator or metric as they are.
    """
    lp = member_log_probs(logit_samples)
    return logsumexp(lp, axis=0) - np.log(lp.shape[0])


def _entropy_from_log(lp: np.ndarray, axis=-1) -> np.ndarray:
    p = np.exp(lp)
    return -np.sum(np.where(p > 0, p * lp, 0.0), axis=axis)


def uncertainty_decomposition(logit_samples) -> dict:
    """(n,) arrays: predictive_entropy, expected_entropy (aleatoric), mutual_information (epistemic)."""
    lp = member_log_probs(logit_samples)
    pooled = logsumexp(lp, axis=0) - np.log(lp.shape[0])
    total = _entropy_from_log(pooled)
    expected = _entropy_from_log(lp).mean(axis=0)
    return {
        "predictive_entropy": total,
        "expected_entropy": expected,
        "mutual_information": np.maximum(total - expected, 0.0),
    }


def predictive_entropy(logit_samples) -> np.ndarray:
    return uncertainty_decomposition(logit_samples)["predictive_entropy"]


def expected_entropy(logit_samples) -> np.ndarray:
    return uncertainty_decomposition(logit_samples)["expected_entropy"]


def mutual_information(logit_samples) -> np.ndarray:
    return uncertainty_decomposition(logit_samples)["mutual_information"]


def calibrate_members_then_pool(make_calibrator, val_samples, val_labels, test_samples):
    """Fit one calibrator per member on its validation logits, apply it to the same
    member's test logits, then pool: returns (n_test, k) pooled log-probabilities.

    make_calibrator: a zero-argument callable returning an unfitted calibrator.
    (The alternative, pooling first and calibrating the pooled log-probabilities, is
    ``make_calibrator().fit(pooled_log_probs(val), y).predict_log_proba(pooled_log_probs(test))``.)
    """
    v, t = _check_samples(val_samples, "val_samples"), _check_samples(test_samples, "test_samples")
    if v.shape[0] != t.shape[0]:
        raise InputError(f"val_samples and test_samples: expected the same members, got {v.shape[0]} and {t.shape[0]}")
    cal_lp = np.stack([make_calibrator().fit(v[m], val_labels, kind="logits").predict_log_proba(t[m], kind="logits") for m in range(v.shape[0])])
    return logsumexp(cal_lp, axis=0) - np.log(cal_lp.shape[0])
