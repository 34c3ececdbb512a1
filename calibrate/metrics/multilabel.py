"""Calibration metrics of multi-label models: (n, L) independent sigmoid outputs.

Shapes: ``scores`` (n, L) float, probabilities P(label j is on) (``kind="probs"``) or
logits z with P = sigmoid(z) (``kind="logits"``): the caller says which, nothing is
guessed. ``labels`` (n, L) 0/1, the indicator matrix of scikit-learn's multi-label
convention (bool, integers or integral floats; a scipy sparse matrix is densified).

Per label j (a binary problem: p_j against y_j):

- ECE: the calibration of P(y_j = 1): equal-width (or equal-mass) bins of p_j, the
  weighted mean of |frequency of y_j = 1 - mean p_j| per bin; this is
  :func:`calibrate.metrics.ece_from_confidences` on (p_j, y_j) (torchmetrics'
  BinaryCalibrationError convention), with the package's one bin rule;
- Brier: mean (p_j - y_j)^2 (scikit-learn's brier_score_loss; the package's ``brier`` on
  (n,) scores sums over both classes, twice this);
- NLL: -mean [y_j log p_j + (1 - y_j) log(1 - p_j)] in nats: exact from logits
  (softplus(z) - y z), from probabilities clipped at the smallest positive float64 as
  :func:`calibrate.metrics.nll` does.

Averages: "macro" is the mean over labels of the per-label values; "micro" is the metric
of the n L pooled (p, y) pairs (for Brier and NLL, with every label on every row, the two
are equal; for ECE they are not).

In row blocks (:func:`multilabel_metrics_in_blocks`, :class:`LabelSums`): the same numbers
(equal-width bins) from float64 sums over blocks of rows, the scores read or computed one
block at a time (a calibrator's predictions applied per block), working memory one block
of ``label_block_rows(L, n_bins)`` rows plus O(L B) sums.
"""

from __future__ import annotations

import numpy as np

from calibrate._core import stats as _stats
from calibrate._core.binning import bin_index, equal_width_edges, make_edges
from calibrate._core.blocks import BLOCK_BYTES, block_rows, row_blocks
from calibrate._core.validation import (
    InputError,
    check_choice,
    check_n_bins,
    check_zero_one,
    to_numpy,
)

KINDS = ("probs", "logits")
LABEL_BLOCK_BYTES = 4 * BLOCK_BYTES  # one (m, L) float64 working copy of a row block (2 MiB): the multi-label
# calibrators loop over labels, one call per label and block, so a block holds many rows
MIN_BLOCK_BIN_ROWS = 4  # a block holds at least this many rows per bin
AVERAGES = ("macro", "micro", None)
_TINY = np.finfo(np.float64).tiny


def check_multilabel_scores(scores, kind: str, *, first_row: int = 0) -> np.ndarray:
    """(n, L) float64 scores, validated. kind: "probs" (values in [0, 1]) or "logits" (finite reals).
    first_row: the row number of the first row in messages (a block of a larger array)."""
    check_choice(kind, "kind", KINDS)
    x = to_numpy(scores, "scores")
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(f"scores: expected (n, L) {kind}, one column per label, got shape {x.shape}")
    if x.dtype.kind not in "fiub":
        raise TypeError(f"scores: expected a float array of {kind}, got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        i, j = np.argwhere(~np.isfinite(x))[0]
        raise InputError(f"scores: expected finite {kind}, got {x[i, j]} at row {first_row + i}, label {j}")
    if kind == "probs" and (x.min() < 0 or x.max() > 1):
        i, j = np.argwhere((x < 0) | (x > 1))[0]
        raise InputError(f"scores: expected probabilities in [0, 1], got {x[i, j]:g} at row {first_row + i}, label {j}; "
                         "if these are logits, pass kind='logits'")
    return x


def check_multilabel(scores, labels, kind: str):
    """(scores (n, L) float64 as given, labels (n, L) float64 0/1), validated (kind required)."""
    x = check_multilabel_scores(scores, kind)
    return x, check_indicator(labels, x.shape)


def check_indicator(labels, shape, *, first_row: int = 0) -> np.ndarray:
    """(n, L) float64 0/1 from an indicator matrix (dense, or scipy sparse). first_row: as
    for :func:`check_multilabel_scores`."""
    if hasattr(labels, "toarray") and hasattr(labels, "nnz"):
        labels = labels.toarray()
    y = to_numpy(labels, "labels")
    if y.ndim != 2:
        raise InputError(f"labels: expected an (n, L) indicator matrix of 0/1 (scikit-learn's multi-label "
                         f"format; MultiLabelBinarizer makes one from label sets), got shape {y.shape}")
    if y.shape != tuple(shape):
        raise InputError(f"labels: expected shape {tuple(shape)}, the shape of the scores, got {y.shape}")
    if y.dtype.kind not in "fiub":
        raise TypeError(f"labels: expected a 0/1 indicator matrix, got dtype {y.dtype}")
    y = check_zero_one(y, "labels", first_row)
    return y


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Elementwise 1 / (1 + exp(-z)) in float64, without overflow."""
    out = np.empty_like(z, dtype=np.float64)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def probabilities(scores, kind: str) -> np.ndarray:
    """(n, L) float64 P(label on) from probabilities or logits (kind required)."""
    check_choice(kind, "kind", KINDS)
    x = to_numpy(scores, "scores").astype(np.float64)
    return x if kind == "probs" else sigmoid(x)


# ----------------------------------------------------------------------------- per-label terms
def _ece_columns(p: np.ndarray, y: np.ndarray, n_bins: int, binning: str) -> np.ndarray:
    """(L,) ECE of each column: sum_b (n_b / n) |acc_b - conf_b|, the l1 error of the
    :class:`calibrate._core.stats.Bins` of p[:, j] against y[:, j] on that column's edges."""
    n, L = p.shape
    out = np.empty(L)
    for j in range(L):
        stat = _stats.Bins(make_edges(p[:, j], n_bins, binning))
        state = stat.zeros()
        for s in row_blocks(n, 3):
            stat.update_values(state, p[s, j], y[s, j])
        out[j] = stat.finish(state, "l1")
    return out


def _nll_columns(x: np.ndarray, y: np.ndarray, kind: str) -> np.ndarray:
    if kind == "logits":
        terms = np.logaddexp(0.0, x) - y * x  # softplus(z) - y z = -log sigmoid(+-z)
    else:
        terms = -np.log(np.maximum(np.where(y == 1, x, 1.0 - x), _TINY))
    return terms.mean(axis=0)


def _average(per_label: np.ndarray, micro: float, average):
    check_choice(average, "average", AVERAGES)
    if average is None:
        return per_label
    return float(per_label.mean()) if average == "macro" else float(micro)


def multilabel_ece(scores, labels, *, kind: str, n_bins: int = 15, binning: str = "width",
                   average: str | None = "macro"):
    """ECE of a multi-label model. average: "macro" (mean over labels), "micro" (pooled
    pairs) or None: the (L,) per-label values."""
    n_bins = check_n_bins(n_bins)
    check_choice(binning, "binning", ("width", "mass"))
    check_choice(average, "average", AVERAGES)
    x, y = check_multilabel(scores, labels, kind)
    p = x if kind == "probs" else sigmoid(x)
    per = _ece_columns(p, y, n_bins, binning)
    micro = _ece_columns(p.reshape(-1, 1), y.reshape(-1, 1), n_bins, binning)[0] if average == "micro" else 0.0
    return _average(per, micro, average)


def multilabel_brier(scores, labels, *, kind: str, average: str | None = "macro"):
    """Brier score mean (p - y)^2 of a multi-label model (macro, micro or per label)."""
    check_choice(average, "average", AVERAGES)
    x, y = check_multilabel(scores, labels, kind)
    d = (x if kind == "probs" else sigmoid(x)) - y
    sq = d * d
    return _average(sq.mean(axis=0), sq.mean(), average)


def multilabel_nll(scores, labels, *, kind: str, average: str | None = "macro"):
    """Binary NLL (nats) of a multi-label model (macro, micro or per label)."""
    check_choice(average, "average", AVERAGES)
    x, y = check_multilabel(scores, labels, kind)
    per = _nll_columns(x, y, kind)
    micro = float(np.mean(_nll_columns(x.reshape(-1, 1), y.reshape(-1, 1), kind)))
    return _average(per, micro, average)


def multilabel_metrics(scores, labels, *, kind: str, n_bins: int = 15, binning: str = "width",
                       label_names=None) -> dict:
    """Every metric of this module: {"per_label": {name: (L,) array}, "macro": {...},
    "micro": {...}, "labels": [L names], "prevalence": (L,) mean of each label}.

    Names: ece, brier, nll. label_names: L names for the report (default "0".."L-1").
    """
    n_bins = check_n_bins(n_bins)
    check_choice(binning, "binning", ("width", "mass"))
    x, y = check_multilabel(scores, labels, kind)
    p = x if kind == "probs" else sigmoid(x)
    L = x.shape[1]
    names = [str(j) for j in range(L)] if label_names is None else [str(s) for s in label_names]
    if len(names) != L:
        raise InputError(f"label_names: expected {L} names, one per label column, got {len(names)}")
    d = p - y
    per = {"ece": _ece_columns(p, y, n_bins, binning), "brier": (d * d).mean(axis=0),
           "nll": _nll_columns(x, y, kind)}
    micro = {"ece": float(_ece_columns(p.reshape(-1, 1), y.reshape(-1, 1), n_bins, binning)[0]),
             "brier": float((d * d).mean()),
             "nll": float(_nll_columns(x.reshape(-1, 1), y.reshape(-1, 1), kind)[0])}
    macro = {k: float(v.mean()) for k, v in per.items()}
    return {"per_label": per, "macro": macro, "micro": micro, "labels": names, "prevalence": y.mean(axis=0)}


def worst_labels(metrics: dict, metric: str = "ece", k: int = 5) -> list[tuple[str, float]]:
    """The k labels with the largest per-label ``metric`` from :func:`multilabel_metrics`,
    largest first: [(name, value)]."""
    per = metrics["per_label"]
    if metric not in per:
        raise InputError(f"metric: expected one of {', '.join(per)}, got {metric!r}")
    vals = per[metric]
    order = np.argsort(-vals, kind="stable")[:k]
    return [(metrics["labels"][i], float(vals[i])) for i in order]


# ----------------------------------------------------------------------------- in row blocks
def label_block_rows(L: int, n_bins: int) -> int:
    """Rows per block of a multi-label pass: ``block_rows(L)`` of LABEL_BLOCK_BYTES, at least
    MIN_BLOCK_BIN_ROWS * n_bins rows (so a block's O(L B) sums are spread over rows)."""
    return max(block_rows(L, 8, LABEL_BLOCK_BYTES), MIN_BLOCK_BIN_ROWS * int(n_bins), 1)


class LabelTerms:
    """The per-entry terms of one row block of m rows and L labels, all (m, L): p = P(label
    on), d = y - p, sq = (p - y)^2, nll = binary NLL (exact from logits, clipped at the
    smallest positive float64 from probabilities), idx = the equal-width bin of p, y 0/1."""

    def __init__(self, x: np.ndarray, y: np.ndarray, kind: str, n_bins: int):
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        p = x if kind == "probs" else sigmoid(x)
        self.p, self.y = p, y
        self.d = y - p
        self.sq = self.d * self.d
        if kind == "logits":
            self.nll = np.logaddexp(0.0, x) - y * x  # softplus(z) - y z = -log sigmoid(+-z)
        else:
            self.nll = -np.log(np.maximum(np.where(y == 1, x, 1.0 - x), _TINY))
        self.idx = bin_index(p, equal_width_edges(n_bins))


class LabelSums:
    """Float64 sums of the per-label metrics of n rows, block by block (update / merge / finish).

    bins: (3, L, B) per (label, equal-width bin of p): count, sum of p, sum of y - p;
    label: (3, L) per label: sum of (p - y)^2, sum of the NLL terms, sum of y; n rows.
    From them (:meth:`finish`): ECE_j = sum_b |sum_{i in b} (y_ij - p_ij)| / n, the micro
    ECE sum_b |sum_j sum_{i in b} (y_ij - p_ij)| / (n L) (the pooled pairs share the bins),
    Brier_j and NLL_j the sums / n: the numbers of :func:`multilabel_metrics`.
    """

    def __init__(self, L: int, n_bins: int):
        self.L, self.n_bins = int(L), int(n_bins)
        self.bins = np.zeros((3, self.L, self.n_bins))
        self.label = np.zeros((3, self.L))
        self.n = 0

    def update(self, t: LabelTerms) -> LabelSums:
        """Add one block's terms."""
        m, L = t.p.shape
        B = self.n_bins
        cells = (t.idx + (np.arange(L) * B)[None, :]).ravel()
        for row, w in ((0, None), (1, t.p), (2, t.d)):
            self.bins[row] += np.bincount(cells, weights=None if w is None else w.ravel(),
                                          minlength=L * B).reshape(L, B)
        self.label[0] += t.sq.sum(axis=0)
        self.label[1] += t.nll.sum(axis=0)
        self.label[2] += t.y.sum(axis=0)
        self.n += m
        return self

    def merge(self, other: LabelSums) -> LabelSums:
        """Add the sums of other rows."""
        self.bins += other.bins
        self.label += other.label
        self.n += other.n
        return self

    def finish(self, label_names=None) -> dict:
        """The dict of :func:`multilabel_metrics` (per_label, macro, micro, labels, prevalence)."""
        n, L = self.n, self.L
        names = [str(j) for j in range(L)] if label_names is None else [str(s) for s in label_names]
        if len(names) != L:
            raise InputError(f"label_names: expected {L} names, one per label column, got {len(names)}")
        diff = self.bins[2]
        per = {"ece": np.abs(diff).sum(axis=1) / n, "brier": self.label[0] / n, "nll": self.label[1] / n}
        micro = {"ece": float(np.abs(diff.sum(axis=0)).sum() / (n * L)), "brier": float(self.label[0].sum() / (n * L)),
                 "nll": float(self.label[1].sum() / (n * L))}
        macro = {k: float(v.mean()) for k, v in per.items()}
        return {"per_label": per, "macro": macro, "micro": micro, "labels": names, "prevalence": self.label[2] / n}

    def reliability(self, j: int):
        """Label j's equal-width bins: (count (B,) int64, mean p (B,), frequency of y = 1 (B,)),
        NaN in empty bins."""
        count, sp, sd = self.bins[:, j]
        with np.errstate(invalid="ignore", divide="ignore"):
            return count.astype(np.int64), sp / count, (sp + sd) / count


def label_rows(scores, kind: str, first_row: int = 0):
    """f(slice) -> the validated (m, L) float64 rows of an (n, L) array of scores (read one
    block at a time, a memory-mapped array stays on disk)."""
    def rows(s):
        return check_multilabel_scores(scores[s], kind, first_row=first_row + s.start)
    return rows


def multilabel_metrics_in_blocks(scores, labels, *, kind: str, n_bins: int = 15, label_names=None,
                                 n: int | None = None, L: int | None = None) -> dict:
    """:func:`multilabel_metrics` (equal-width bins) in one pass over row blocks.

    scores: (n, L) logits or probabilities (``kind``), validated block by block, or
    f(slice) -> those rows' (m, L) values (a calibrator's predictions, taken as valid; give n
    and L). labels: (n, L) 0/1. Working memory: one block of :func:`label_block_rows` rows
    and the O(L B) sums of :class:`LabelSums`.
    """
    n_bins = check_n_bins(n_bins)
    check_choice(kind, "kind", KINDS)
    fn = scores if callable(scores) else label_rows(scores, kind)
    if n is None or L is None:
        n, L = np.shape(scores)
    if n == 0 or L == 0:
        raise InputError(f"scores: expected (n, L) {kind}, one column per label, got shape ({n}, {L})")
    if np.shape(labels) != (n, L) and not (hasattr(labels, "nnz") and labels.shape == (n, L)):
        check_indicator(labels, (n, L))
    sums = LabelSums(L, n_bins)
    for a in range(0, n, label_block_rows(L, n_bins)):
        s = slice(a, min(n, a + label_block_rows(L, n_bins)))
        yb = check_indicator(labels[s], (s.stop - s.start, L), first_row=a)
        sums.update(LabelTerms(fn(s), yb, kind, n_bins))
    return sums.finish(label_names)
