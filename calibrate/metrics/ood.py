"""Out-of-distribution and misclassification detection: threshold-free metrics and scores.

Convention everywhere: a HIGHER score means MORE in-distribution (or, for
misclassification detection, more likely correct). In-distribution rows are the
positive class.

Metrics (:func:`detection_metrics`):
  auroc        P(s_in > s_out) + P(s_in = s_out) / 2 (Mann-Whitney), equal to
               scikit-learn's ``roc_auc_score`` with in-distribution as label 1.
  aupr_in      average precision with in-distribution positive and the score as is:
               sum_t (R_t - R_{t-1}) P_t over the distinct score values t (decreasing),
               scikit-learn's ``average_precision_score`` (no interpolation).
  aupr_out     the same with out-of-distribution positive and the score negated.
  fpr_at_95tpr the smallest false-positive rate (fraction of out-of-distribution rows
               accepted) over the thresholds t at the distinct score values, accepting
               rows with s >= t, whose true-positive rate (fraction of in-distribution
               rows accepted) is >= 0.95. Tied rows are accepted together, as in
               scikit-learn's ``roc_curve``.

Scores from logits (n, k) (computed in float64, in blocks of rows): max softmax
probability (Hendrycks & Gimpel 2017), max logit (Hendrycks et al. 2022), energy
T logsumexp(z / T) (Liu et al. 2020; the negative free energy), negative entropy,
DOCTOR (Granese et al. 2021) and the top-2 softmax margin (:func:`softmax_margin`).
From logit samples (S, n, k) (MC dropout or an ensemble): the negated mutual
information, expected entropy and predictive entropy (see :mod:`calibrate.metrics.uncertainty`).
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax, logsumexp

from calibrate._core import ranking
from calibrate._core.blocks import block_rows, row_blocks
from calibrate._core.validation import (
    InputError,
    check_1d_scores,
    check_scores,
    renamed_function,
    to_numpy,
)
from calibrate.metrics import uncertainty

_check_1d_scores = check_1d_scores


def _group_counts(s_in: np.ndarray, s_out: np.ndarray):
    """(tie groups of the pooled scores, in-distribution rows per group (m,), out rows per group (m,))."""
    g = ranking.TieGroups(np.concatenate([s_in, s_out]))
    pos = np.concatenate([np.ones(s_in.size), np.zeros(s_out.size)])
    return g, g.counts(pos), g.counts(1.0 - pos)


def detection_metrics(scores_in, scores_out, tpr: float = 0.95) -> dict:
    """AUROC, AUPR-in, AUPR-out and FPR at 95% TPR (see the module docstring).

    scores_in: (n_in,) float scores of in-distribution rows; scores_out: (n_out,) of
    out-of-distribution rows; higher = more in-distribution. ``tpr`` sets the target
    rate of the last metric (the key stays ``fpr_at_95tpr``). Returns a dict of floats.
    """
    s_in = _check_1d_scores(scores_in, "scores_in")
    s_out = _check_1d_scores(scores_out, "scores_out")
    if not 0.0 < float(tpr) <= 1.0:
        raise InputError(f"tpr: expected a number in (0, 1], got {tpr!r}")
    _, pos, neg = _group_counts(s_in, s_out)
    return ranking.detection_numbers(pos, neg, float(tpr))


def misclassification_metrics(confidence, correct) -> dict:
    """:func:`detection_metrics` for telling correct predictions (positive) from wrong ones.

    confidence: (n,) float, higher = more likely correct; correct: (n,) bool or 0/1.
    Needs at least one correct and one wrong row.
    """
    c = _check_1d_scores(confidence, "confidence")
    ok = to_numpy(correct, "correct")
    if ok.shape != c.shape:
        raise InputError(f"correct: expected shape {c.shape} (one per confidence), got {ok.shape}")
    if ok.dtype.kind != "b":
        if ok.dtype.kind not in "fiu" or not np.isin(ok, (0, 1)).all():
            raise InputError("correct: expected 0/1 or boolean values")
        ok = ok.astype(bool)
    if ok.all() or not ok.any():
        raise InputError(
            f"correct: misclassification metrics need both correct and wrong rows, got "
            f"{int(ok.sum())} correct of {ok.size}"
        )
    return detection_metrics(c[ok], c[~ok])


# ------------------------------------------------------------------- scores from logits
def _blocks(logits, fn, name="logits") -> np.ndarray:
    z = check_scores(logits, name, kind="logits")
    out = np.empty(z.shape[0], dtype=np.float64)
    for s in row_blocks(*z.shape):
        out[s] = fn(z[s].astype(np.float64))
    return out


def _check_temperature(T) -> float:
    t = float(T)
    if not (np.isfinite(t) and t > 0):
        raise InputError(f"temperature: expected a positive finite number, got {T!r}")
    return t


def max_softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """(n,) max_j softmax(z / T)_j (Hendrycks & Gimpel 2017). logits: (n, k) float."""
    t = _check_temperature(temperature)
    return _blocks(logits, lambda z: np.exp(log_softmax(z / t, axis=1).max(axis=1)))


def max_logit(logits) -> np.ndarray:
    """(n,) max_j z_ij (Hendrycks et al. 2022, "Scaling out-of-distribution detection")."""
    return _blocks(logits, lambda z: z.max(axis=1))


def energy(logits, temperature: float = 1.0) -> np.ndarray:
    """(n,) T logsumexp_j(z_ij / T): the negative free energy (Liu et al. 2020); higher = in."""
    t = _check_temperature(temperature)
    return _blocks(logits, lambda z: t * logsumexp(z / t, axis=1))


def negative_entropy(logits, temperature: float = 1.0) -> np.ndarray:
    """(n,) sum_j p_ij log p_ij of p = softmax(z / T), in nats (<= 0; higher = in)."""
    t = _check_temperature(temperature)

    def negent(z):
        lp = log_softmax(z / t, axis=1)
        return np.sum(np.exp(lp) * np.where(np.isneginf(lp), 0.0, lp), axis=1)  # 0 log 0 = 0 (absent options)

    return _blocks(logits, negent)


def doctor(logits, temperature: float = 1.0, version: str = "alpha") -> np.ndarray:
    """(n,) DOCTOR score (Granese et al. 2021), negated so that higher = more likely correct.

    With p = softmax(z / T) and g = sum_j p_j^2:
      alpha: -(1 - g) / g          (the paper's D_alpha = (1 - g) / g)
      beta:  -(1 - max p) / max p   (D_beta)
    The paper rejects a row when D > gamma; here a row is accepted when the score is high.
    """
    t = _check_temperature(temperature)
    if version not in ("alpha", "beta"):
        raise InputError(f"version: expected 'alpha' or 'beta', got {version!r}")

    def score(z):
        p = np.exp(log_softmax(z / t, axis=1))
        g = np.einsum("ij,ij->i", p, p) if version == "alpha" else p.max(axis=1)
        return -(1.0 - g) / g

    return _blocks(logits, score)


def softmax_margin(logits, temperature: float = 1.0) -> np.ndarray:
    """(n,) p_(1) - p_(2) of p = softmax(z / T) (1 when k = 1)."""
    t = _check_temperature(temperature)

    def top2(z):
        if z.shape[1] == 1:
            return np.ones(z.shape[0])
        p = np.exp(log_softmax(z / t, axis=1))
        s = np.partition(p, p.shape[1] - 2, axis=1)
        return s[:, -1] - s[:, -2]

    return _blocks(logits, top2)


margin = renamed_function(softmax_margin, "calibrate.metrics.ood.margin")


# ------------------------------------------------------------------ scores from samples
def _sample_blocks(logit_samples, key) -> np.ndarray:
    a = to_numpy(logit_samples, "logit_samples")
    if a.ndim != 3 or min(a.shape) == 0:
        raise InputError(f"logit_samples: expected (members, n, k) logits, got shape {a.shape}")
    out = np.empty(a.shape[1], dtype=np.float64)
    rows = block_rows(a.shape[0] * a.shape[2])
    for s in range(0, a.shape[1], rows):
        out[s : s + rows] = -uncertainty.uncertainty_decomposition(a[:, s : s + rows])[key]
    return out


def negative_mutual_information(logit_samples) -> np.ndarray:
    """(n,) -MI from logit samples (S, n, k): minus the epistemic part (higher = in)."""
    return _sample_blocks(logit_samples, "mutual_information")


def negative_expected_entropy(logit_samples) -> np.ndarray:
    """(n,) -mean_s H[p_s] from logit samples (S, n, k) (higher = in)."""
    return _sample_blocks(logit_samples, "expected_entropy")


def negative_predictive_entropy(logit_samples) -> np.ndarray:
    """(n,) -H[mean_s p_s] from logit samples (S, n, k) (higher = in)."""
    return _sample_blocks(logit_samples, "predictive_entropy")
