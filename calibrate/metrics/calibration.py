"""Calibration metrics: pure functions, numpy (or torch) in, float out.

Shapes: ``probs`` (n, k) float with rows summing to 1, or (n,) scores P(class 1) for a
binary problem; ``logits`` (n, k) float; ``labels`` (n,) int in [0, k).
Every sum is accumulated in float64, whatever the input dtype.
Binned metrics use the one bin rule of :mod:`calibrate._core.binning`: bin b holds
``e_b < v <= e_{b+1}``, the first bin also holds 0, so a confidence of 1.0 is in the
last bin.
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import numpy as np

from calibrate._core import binning as _binning
from calibrate._core.blocks import is_dask, log_softmax64, log_softmax_rows, row_blocks
from calibrate._core.validation import (
    InputError,
    check_choice,
    check_labels,
    check_logits_labels,
    check_n_bins,
    check_probs_labels,
    check_scores,
    to_numpy,
)

NORMS = ("l1", "l2", "max")
BINNINGS = ("width", "mass")
_TINY = np.finfo(np.float64).tiny


# ----------------------------------------------------------------------------- softmax
def log_softmax(logits) -> np.ndarray:
    """(n, k) float64 log-probabilities from logits, computed in float64.

    log p_ij = z_ij - max_j z_ij - log sum_j exp(z_ij - max_j z_ij). A float32 softmax
    saturates at exactly 1.0 for confident models; this does not. Computed in row blocks:
    the result is the only full-size array (no float64 copy of the input).
    """
    if is_dask(logits):
        from calibrate.backends.dask import log_softmax_scaled

        return log_softmax_scaled(logits, 1.0)
    z = check_scores(logits, "logits", kind="logits")
    return log_softmax_rows(z)


def softmax(logits) -> np.ndarray:
    """(n, k) float64 probabilities from logits (a float64 softmax), exponentiated in place."""
    lp = log_softmax(logits)
    return np.exp(lp, out=lp) if isinstance(lp, np.ndarray) else np.exp(lp)


# ------------------------------------------------------------------ simple metrics
def accuracy(probs, labels) -> float:
    """Fraction of rows whose arg-max class (the first, on ties) equals the label."""
    if is_dask(probs):
        return _dask_metric("accuracy", probs, labels)
    p, y = check_probs_labels(probs, labels)
    return float(np.mean(_top_label(p, y)[1]))


def nll(probs, labels) -> float:
    """Negative log-likelihood, -1/n sum_i log p_{i, y_i}, in nats.

    Probabilities of 0 are clipped to the smallest positive float64 (2.2e-308), so a
    wrong certain prediction costs 708 nats instead of inf. From logits, prefer
    :func:`nll_from_logits`, which is exact.
    """
    if is_dask(probs):
        return _dask_metric("nll", probs, labels)
    p, y = check_probs_labels(probs, labels)
    return float(np.mean(_nll_terms(p, y)))


def nll_from_logits(logits, labels) -> float:
    """Negative log-likelihood from logits via a float64 log-softmax (no clipping)."""
    if is_dask(logits):
        return _dask_metric("nll_from_logits", logits, labels)
    z, y = check_logits_labels(logits, labels)
    total = 0.0
    for s in row_blocks(*z.shape):
        lp = log_softmax64(z[s])
        total += lp[np.arange(lp.shape[0]), y[s]].sum()
    return float(-total / z.shape[0])


def brier(probs, labels) -> float:
    """Multiclass Brier score: 1/n sum_i sum_j (p_ij - [y_i = j])^2, in [0, 2].

    This is the sum over classes (Brier 1950), not divided by k. For binary (n,)
    scores it is computed on [1 - p, p], i.e. twice scikit-learn's brier_score_loss.
    """
    if is_dask(probs):
        return _dask_metric("brier", probs, labels)
    p, y = check_probs_labels(probs, labels)
    return float(np.mean(_brier_terms(p, y)))


# Per-sample terms: the one definition that nll, brier, the bootstrap and the streaming
# accumulator all sum (validated (n, k) probs and (n,) labels in, (n,) float64 out).
def _nll_terms(p: np.ndarray, y: np.ndarray, log_probs=None) -> np.ndarray:
    """-log p_{i, y_i}; exact from ``log_probs`` when given, else clipped at float64 tiny."""
    rows = np.arange(p.shape[0])
    if log_probs is not None:
        return -log_probs[rows, y]
    return -np.log(np.maximum(p[rows, y].astype(np.float64), _TINY))


def _brier_terms(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """sum_j (p_ij - [y_i = j])^2 = sum_j p_ij^2 - 2 p_{i, y_i} + 1, in float64 (row blocks)."""
    n, k = p.shape
    out = np.empty(n)
    for s in row_blocks(n, k):
        p64 = np.asarray(p[s], dtype=np.float64)
        out[s] = np.einsum("ij,ij->i", p64, p64) - 2.0 * p64[np.arange(p64.shape[0]), y[s]] + 1.0
    return out


# ------------------------------------------------------------------ binned metrics
def _top_label(p: np.ndarray, y: np.ndarray):
    """(confidence, correct) of the arg-max class (the first one on ties)."""
    torch = sys.modules.get("torch")
    if torch is not None and p.shape[1] <= 64 and p.size >= 1_000_000:
        # torch is already loaded: its row max over short rows is multi-threaded (numpy's
        # arg-max is slow there) and returns the same values and first indices on ties.
        # torch is never imported just for this.
        v, i = torch.from_numpy(np.ascontiguousarray(p)).max(dim=1)
        return v.numpy(), (i.numpy() == y)
    pred = p.argmax(axis=1)
    conf = p[np.arange(p.shape[0]), pred]
    return conf, (pred == y)


def _group_errors(count, s_conf, s_corr, norm: str, debiased: bool, rng=None, n_resamples=1000):
    """Calibration error of each group of per-bin sums; bins on the last axis.

    count, s_conf, s_corr: (..., B). Returns (...) errors:
    l1 = sum_b w_b |acc_b - conf_b|, l2 = sqrt(sum_b w_b gap_b^2), max = max over
    non-empty bins |gap_b|; w_b = n_b / n.
    """
    n = count.sum(axis=-1, keepdims=True)
    nonempty = count > 0
    safe = np.where(nonempty, count, 1.0)
    acc = s_corr / safe
    conf = s_conf / safe
    gap = np.where(nonempty, acc - conf, 0.0)
    w = count / np.where(n > 0, n, 1.0)
    if norm == "max":
        if debiased:
            raise InputError("debiased: the debiased estimator is defined for norm 'l1' or 'l2', not 'max'")
        return np.max(np.abs(gap), axis=-1)
    if not debiased:
        if norm == "l1":
            return np.sum(w * np.abs(gap), axis=-1)
        return np.sqrt(np.sum(w * gap**2, axis=-1))
    if norm == "l2":
        # Kumar et al. 2019: subtract the sampling variance of each bin's accuracy.
        var = np.where(count > 1, acc * (1.0 - acc) / np.where(count > 1, count - 1.0, 1.0), 0.0)
        sq = np.sum(w * np.where(count > 1, gap**2 - var, 0.0), axis=-1)
        return np.sqrt(np.maximum(sq, 0.0))
    # l1: Kumar et al.'s normal debiasing: 2 * plug-in - mean over resampled accuracies
    plug = np.sum(w * np.abs(gap), axis=-1)
    sd = np.sqrt(np.clip(acc * (1.0 - acc), 0.0, None) / safe)
    draws = rng.standard_normal((n_resamples,) + acc.shape) * sd + acc
    resampled = np.sum(w * np.abs(np.where(nonempty, draws - conf, 0.0)), axis=-1)
    return 2.0 * plug - resampled.mean(axis=0)


def _binned_sums(values, correct, n_bins, binning, weights=None):
    edges = _binning.make_edges(values, n_bins, binning)
    idx = _binning.bin_index(values, edges)
    return edges, _binning.bin_sums(idx, values, correct, n_bins, weights)


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
    _, (count, s_conf, s_corr) = _binned_sums(c, ok, n_bins, binning)
    rng = np.random.default_rng(seed)
    return float(_group_errors(count[None], s_conf[None], s_corr[None], norm, debiased, rng)[0])


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
    """
    n_bins = check_n_bins(n_bins)
    check_choice(binning, "binning", BINNINGS)
    check_choice(norm, "norm", NORMS)
    if is_dask(probs):
        return _dask_metric("ece", probs, labels, n_bins=n_bins, binning=binning, norm=norm,
                            classwise=classwise, debiased=debiased)
    p, y = check_probs_labels(probs, labels)
    rng = np.random.default_rng(seed)
    if not classwise:
        conf, ok = _top_label(p, y)
        if norm == "l1" and not debiased:
            # L1 needs only each bin's sum of (correct - confidence): one weighted count.
            edges = _binning.make_edges(conf, n_bins, binning)
            resid = ok - conf.astype(np.float64)
            s = np.bincount(_binning.bin_index(conf, edges), weights=resid, minlength=n_bins)
            return float(np.abs(s).sum() / conf.shape[0])
        _, (count, s_conf, s_corr) = _binned_sums(conf, ok, n_bins, binning)
        return float(_group_errors(count[None], s_conf[None], s_corr[None], norm, debiased, rng)[0])
    count, s_conf, s_corr = classwise_sums(p, y, n_bins, binning)
    per_class = _group_errors(count, s_conf, s_corr, norm, debiased, rng)
    if norm == "l1":
        return float(per_class.mean())
    if norm == "l2":
        return float(np.sqrt(np.mean(per_class**2)))
    return float(per_class.max())


def classwise_sums(p: np.ndarray, y: np.ndarray, n_bins: int, binning: str, weights=None, edges=None):
    """Per-class, per-bin sums: three (k, n_bins) float64 arrays (count, conf, correct).

    Each class j bins p[:, j] against [y = j]: with ``edges`` given (shared by all
    classes), else equal-width edges or each class's own equal-mass edges.
    """
    n, k = p.shape
    if edges is None and binning == "mass":
        edges_j = [_binning.equal_mass_edges(p[:, j], n_bins) for j in range(k)]
    else:
        edges_j = None
        e = _binning.equal_width_edges(n_bins) if edges is None else edges
    nb = n_bins * k
    count, s_conf, s_corr = np.zeros(nb), np.zeros(nb), np.zeros(nb)
    offs = np.arange(k) * n_bins
    for s in row_blocks(n, k):  # blocks: the (m, k) bin indices are the only temporaries
        pb = p[s]
        m = pb.shape[0]
        if edges_j is None:
            idx = _binning.bin_index(pb, e)
        else:
            idx = np.stack([_binning.bin_index(pb[:, j], edges_j[j]) for j in range(k)], axis=1)
        flat = idx + offs
        w = None if weights is None else np.asarray(weights[s], np.float64)
        wk = np.ones(m) if w is None else w
        count += np.bincount(flat.ravel(), weights=None if w is None else np.repeat(w, k), minlength=nb)
        vals = pb.astype(np.float64) if w is None else pb.astype(np.float64) * w[:, None]
        s_conf += np.bincount(flat.ravel(), weights=vals.ravel(), minlength=nb)
        s_corr += np.bincount(flat[np.arange(m), y[s]], weights=wk, minlength=nb)
    return count.reshape(k, n_bins), s_conf.reshape(k, n_bins), s_corr.reshape(k, n_bins)


def classwise_bin_index(p: np.ndarray, n_bins: int, binning: str = "width", edges=None) -> np.ndarray:
    """(n, k) int: the bin of each p_ij within class j (see :func:`classwise_sums`)."""
    if edges is not None or binning == "width":
        return _binning.bin_index(p, _binning.equal_width_edges(n_bins) if edges is None else edges)
    idx = np.empty(p.shape, dtype=np.intp)
    for j in range(p.shape[1]):
        idx[:, j] = _binning.bin_index(p[:, j], _binning.equal_mass_edges(p[:, j], n_bins))
    return idx


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
        values, hit = _top_label(p, y)
    else:
        if not 0 <= class_index < p.shape[1]:
            raise InputError(f"class_index: expected an integer in [0, {p.shape[1]}), got {class_index}")
        values, hit = p[:, class_index], (y == class_index)
    edges, (count, s_conf, s_corr) = _binned_sums(values, hit, n_bins, binning)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ReliabilityCurve(edges, count.astype(np.int64), s_conf / count, s_corr / count)


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


def _dask_metric(name, x, labels, **kw):
    from calibrate.backends.dask import metric

    return metric(name, x, labels, **kw)
