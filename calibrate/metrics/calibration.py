"""Calibration metrics: pure functions, numpy (or torch) in, float out.

Shapes: ``probs`` (n, k) float with rows summing to 1, or (n,) scores P(class 1) for a
binary problem; ``logits`` (n, k) float; ``labels`` (n,) int in [0, k).
Every sum is accumulated in float64, whatever the input dtype.
Binned metrics use the one bin rule of :mod:`calibrate._core.binning`: bin b holds
``e_b < v <= e_{b+1}``, the first bin also holds 0, so a confidence of 1.0 is in the
last bin.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from calibrate._core import binning as _binning
from calibrate._core import dispatch as _dispatch
from calibrate._core import stats as _stats
from calibrate._core.blocks import log_softmax64
from calibrate._core.validation import (
    InputError,
    check_choice,
    check_labels,
    check_n_bins,
    check_probs_labels,
    check_scores,
    to_numpy,
)

NORMS = ("l1", "l2", "max")
BINNINGS = ("width", "mass")


# ----------------------------------------------------------------------------- softmax
def log_softmax(logits) -> np.ndarray:
    """(n, k) float64 log-probabilities from logits, computed in float64.

    log p_ij = z_ij - max_j z_ij - log sum_j exp(z_ij - max_j z_ij). A float32 softmax
    saturates at exactly 1.0 for confident models; this does not. Computed in row blocks:
    the result is the only full-size array (no float64 copy of the input); lazy for a
    dask array.
    """
    if _dispatch.backend_of(logits) is None:
        logits = check_scores(logits, "logits", kind="logits")
    return _dispatch.map_rows(log_softmax64, logits)


def softmax(logits) -> np.ndarray:
    """(n, k) float64 probabilities from logits (a float64 softmax), exponentiated in place."""
    lp = log_softmax(logits)
    return np.exp(lp, out=lp) if isinstance(lp, np.ndarray) else np.exp(lp)


# ------------------------------------------------------------------ simple metrics
def _mean(stat, x, labels, kind="probs") -> float:
    x, y = _dispatch.check(x, labels, kind)
    return float(stat.finish(_dispatch.reduce([stat], x, y, kind)[0]))


def accuracy(probs, labels) -> float:
    """Fraction of rows whose arg-max class (the first, on ties) equals the label."""
    return _mean(_stats.Accuracy(), probs, labels)


def nll(probs, labels) -> float:
    """Negative log-likelihood, -1/n sum_i log p_{i, y_i}, in nats.

    Probabilities of 0 are clipped to the smallest positive float64 (2.2e-308), so a
    wrong certain prediction costs 708 nats instead of inf. From logits, prefer
    :func:`nll_from_logits`, which is exact.
    """
    return _mean(_stats.NLL(), probs, labels)


def nll_from_logits(logits, labels) -> float:
    """Negative log-likelihood from logits via a float64 log-softmax (no clipping)."""
    return _mean(_stats.NLL(), logits, labels, "logits")


def brier(probs, labels) -> float:
    """Multiclass Brier score: 1/n sum_i sum_j (p_ij - [y_i = j])^2, in [0, 2].

    This is the sum over classes (Brier 1950), not divided by k. For binary (n,)
    scores it is computed on [1 - p, p], i.e. twice scikit-learn's brier_score_loss.
    """
    return _mean(_stats.Brier(), probs, labels)


# ------------------------------------------------------------------ binned metrics
def binned_state(values, hits, n_bins: int, binning: str):
    """(Bins statistic, its state) of (n,) values against (n,) 0/1 hits, with edges of
    ``binning`` ("width", or "mass" from the values)."""
    stat = _stats.Bins(_binning.make_edges(values, n_bins, binning))
    return stat, stat.update_values(stat.zeros(), values, hits)


def classwise_statistic(kind, p, y, n_bins: int, binning: str, what: str):
    """A class-wise binned statistic ``kind`` (stats.ClasswiseBins or ClasswiseBrierBins) for
    probs p (n, k): equal-width edges, or each class's equal-mass edges of p (numpy only; a
    dask array is refused, naming ``what``)."""
    if binning == "width":
        return kind(p.shape[1], _binning.equal_width_edges(n_bins))
    if _dispatch.backend_of(p, y) is None:
        return kind.of(p, n_bins, "mass")
    raise InputError(f"binning: {what} of a dask array is not supported; use 'width'")


def ece_from_confidences(
    confidences, correct, n_bins: int = 15, *, binning: str = "width", norm: str = "l1",
    debiased: bool = False, seed: int = 0,
) -> float:
    """Top-label calibration error from (n,) confidences and (n,) correctness (0/1).

    For data saved as top-label confidence only (no full probability rows).
    """
    n_bins = check_n_bins(n_bins)
    check_choice(binning, "binning", BINNINGS)
    check_choice(norm, "norm", NORMS)
    c = to_numpy(confidences, "confidences")
    if c.ndim != 1 or c.size == 0:
        raise InputError(f"confidences: expected a non-empty 1-d array, got shape {c.shape}")
    if not np.isfinite(c).all() or c.min() < 0 or c.max() > 1:
        raise InputError("confidences: expected values in [0, 1]")
    ok = check_labels(correct, c.shape[0], 2, "correct")
    stat, state = binned_state(c, ok, n_bins, binning)
    return float(stat.finish(state, norm, debiased, seed))


def ece(
    probs, labels, n_bins: int = 15, *, binning: str = "width", norm: str = "l1",
    classwise: bool = False, debiased: bool = False, seed: int = 0,
) -> float:
    """Expected calibration error (Naeini et al. 2015; Guo et al. 2017).

    Top-label (default): bin the confidence c_i = max_j p_ij, then
    ECE = sum_b (n_b / n) |acc_b - conf_b| (norm="l1"),
    sqrt(sum_b (n_b / n) (acc_b - conf_b)^2) (norm="l2"), or max_b |acc_b - conf_b| over
    non-empty bins (norm="max", the MCE).

    binning: "width" (equal-width bins on [0, 1]) or "mass" (equal-count bins).
    classwise: bin p_ij against [y_i = j] for every class j and average the per-class
        errors (Kull et al. 2019); with norm="l2" the per-class squared errors are
        averaged before the root (Kumar et al. 2019's marginal calibration error).
    debiased: subtract the estimated sampling bias (Kumar et al. 2019): for l2, each
        bin's acc_b (1 - acc_b) / (n_b - 1); for l1, 2 * plug-in minus the mean of 1000
        Gaussian resamples of the bin accuracies (seeded by ``seed``).
    probs may be a dask array (equal-width bins for the class-wise ECE).
    """
    n_bins = check_n_bins(n_bins)
    check_choice(binning, "binning", BINNINGS)
    check_choice(norm, "norm", NORMS)
    if debiased and norm == "max":
        raise InputError("debiased: the debiased estimator is defined for norm 'l1' or 'l2', not 'max'")
    p, y = _dispatch.check(probs, labels)
    if classwise:
        stat = classwise_statistic(_stats.ClasswiseBins, p, y, n_bins, binning, "class-wise equal-mass ECE")
        return float(stat.finish(_dispatch.reduce([stat], p, y)[0], norm, debiased, seed))
    if binning == "width":
        stat = _stats.Bins(_binning.equal_width_edges(n_bins))
        state = _dispatch.reduce([stat], p, y)[0]
    else:
        stat, state = binned_state(*_dispatch.top_label_values(p, y), n_bins, binning)
    return float(stat.finish(state, norm, debiased, seed))


def classwise_bin_index(p: np.ndarray, n_bins: int, binning: str = "width", edges=None) -> np.ndarray:
    """(n, k) int: the bin of each p_ij within class j (equal-width, each class's own
    equal-mass edges, or the given shared ``edges``)."""
    if edges is not None:
        return _stats.ClasswiseBins(p.shape[1], edges).bin_index(p)
    return _stats.ClasswiseBins.of(p, n_bins, binning).bin_index(p)


def mce(probs, labels, n_bins: int = 15, *, binning: str = "width") -> float:
    """Maximum calibration error: max over non-empty bins of |acc_b - conf_b|."""
    return ece(probs, labels, n_bins, binning=binning, norm="max")


def classwise_ece(probs, labels, n_bins: int = 15, *, binning: str = "width", norm: str = "l1") -> float:
    """Class-wise ECE (Kull et al. 2019): the mean over classes of each class's ECE."""
    return ece(probs, labels, n_bins, binning=binning, norm=norm, classwise=True)


class ReliabilityCurve(NamedTuple):
    """Per-bin statistics. Arrays have shape (n_bins,); empty bins hold NaN."""

    edges: np.ndarray  # (n_bins + 1,)
    count: np.ndarray  # samples per bin
    confidence: np.ndarray  # mean confidence per bin
    accuracy: np.ndarray  # fraction correct per bin (or frequency of the class)


def reliability_curve(
    probs, labels, n_bins: int = 15, *, binning: str = "width", class_index: int | None = None
) -> ReliabilityCurve:
    """Per-bin count, mean confidence and accuracy (top-label, or of one class)."""
    n_bins = check_n_bins(n_bins)
    check_choice(binning, "binning", BINNINGS)
    p, y = check_probs_labels(probs, labels)
    if class_index is None:
        values, hit = _stats.top_label(p, y)
    else:
        if not 0 <= class_index < p.shape[1]:
            raise InputError(f"class_index: expected an integer in [0, {p.shape[1]}), got {class_index}")
        values, hit = p[:, class_index], (y == class_index)
    stat, state = binned_state(values, hit, n_bins, binning)
    count, s_conf, s_corr = stat.sums(state)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ReliabilityCurve(stat.edges, count.astype(np.int64), s_conf / count, s_corr / count)


def all_metrics(probs, labels, n_bins: int = 15, *, logits=None) -> dict:
    """Every metric of this module as a dict of floats (the keys the CLI and reports use).

    If ``logits`` are given, NLL is computed exactly from them.
    """
    p, y = check_probs_labels(probs, labels)
    out = {
        "accuracy": accuracy(p, y),
        "ece": ece(p, y, n_bins),
        "ece_mass": ece(p, y, n_bins, binning="mass"),
        "ece_l2": ece(p, y, n_bins, norm="l2"),
        "ece_l2_debiased": ece(p, y, n_bins, norm="l2", debiased=True),
        "mce": mce(p, y, n_bins),
        "classwise_ece": classwise_ece(p, y, n_bins),
        "nll": nll_from_logits(logits, y) if logits is not None else nll(p, y),
        "brier": brier(p, y),
    }
    return out


METRIC_NAMES = {
    "accuracy": "accuracy",
    "ece": "ECE (L1, equal-width)",
    "ece_mass": "ECE (L1, equal-mass)",
    "ece_l2": "ECE (L2)",
    "ece_l2_debiased": "ECE (L2, debiased)",
    "mce": "MCE (max)",
    "classwise_ece": "class-wise ECE",
    "nll": "NLL",
    "brier": "Brier",
}
