"""Sufficient statistics of the calibration metrics: ``update`` / ``merge`` / ``finish``.

Every metric of :mod:`calibrate.metrics.calibration` is a function of a few float64 sums
over rows. A statistic here says which sums. Its state is one flat float64 array of
``size`` values, so:

- ``update(state, block, weights=None)`` adds the rows of one :class:`Block` (row i counted
  ``weights[i]`` times: the bootstrap's resampling counts) and returns the state;
- :func:`merge` is addition (any order, any split of the rows, any backend);
- ``finish(state, ...)`` gives the metric from a state, or from a (..., size) stack of
  states at once (the bootstrap's resamples, its leave-one-out states).

``terms(block)`` is the one definition of each statistic: every row's contribution to the
state, as :class:`Terms` (a sparse part and a dense part). ``update`` sums the terms;
the bootstrap multiplies them by its resample weights.

Statistics: :class:`Accuracy`, :class:`NLL`, :class:`Brier` (state: rows, sum of the
per-row value), :class:`Bins` (per-bin count, sum of confidence, sum of correctness:
top-label, or one class's column; :meth:`Bins.over_under` splits its error into over- and
under-confidence), :class:`ClasswiseBins` (the same for every class),
:class:`ClasswiseBrierBins` (those and the per-bin sums of f^2 and f o: Murphy's Brier
decomposition, :func:`brier_decomposition_terms`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from calibrate._core import binning as _binning
from calibrate._core.blocks import log_softmax64, row_blocks
from calibrate._core.validation import InputError

_TINY = np.finfo(np.float64).tiny
_EMPTY_INT = np.empty(0, dtype=np.intp)
_EMPTY = np.empty(0)


# ----------------------------------------------------------------------------- rows
def top_label(p: np.ndarray, y: np.ndarray):
    """(confidence (m,), correct (m,) bool) of the arg-max class (the first one on ties).

    p: (m, k) probabilities (any float dtype: the confidence keeps it); y: (m,) int.
    """
    pred = p.argmax(axis=1)
    return p[np.arange(p.shape[0]), pred], (pred == y)


class Block:
    """Rows of one prediction.

    probs: (m, k) float probabilities (any float dtype); labels: (m,) int;
    log_probs: (m, k) float64 exact log-probabilities or None (the NLL then clips probs).
    The top label is computed once per block, whatever statistics read it.
    A block made by :meth:`from_rows` holds each row's values instead (probs None, or
    only when a class-wise statistic needs them).
    """

    __slots__ = ("probs", "labels", "log_probs", "_top", "rows")

    def __init__(self, probs, labels, log_probs=None):
        self.probs, self.labels, self.log_probs, self._top, self.rows = probs, labels, log_probs, None, None

    @classmethod
    def from_rows(cls, labels, confidence, correct, nll, brier, probs=None):
        """A block given by its rows' values, each (m,): the top-label confidence and
        correctness, -log p_{i, y_i} and the Brier term sum_j (p_ij - [y_i = j])^2.
        Accuracy, NLL, Brier and top-label Bins read these; ClasswiseBins needs ``probs``."""
        b = cls(probs, labels)
        b._top = (confidence, correct)
        b.rows = {"nll": nll, "brier": brier}
        return b

    @classmethod
    def from_logits(cls, z, labels):
        """The block of softmax(z): z (m, k) float logits, exact float64 log-probabilities."""
        lp = log_softmax64(z)
        return cls(np.exp(lp), labels, lp)

    @property
    def m(self) -> int:
        return (self.probs if self.probs is not None else self.labels).shape[0]

    def top(self):
        """(confidence (m,), correct (m,) bool): see :func:`top_label`."""
        if self._top is None:
            self._top = top_label(self.probs, self.labels)
        return self._top


class Terms(NamedTuple):
    """Each row's contribution to a state of ``size`` values.

    rows, cols, vals: (e,) the sparse part (row i adds vals[e] at position cols[e]);
    dense_cols: (d,) positions every row adds to; dense: (d, m) float64, what each row adds.
    """

    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    dense_cols: np.ndarray
    dense: np.ndarray


def add_terms(state: np.ndarray, t: Terms, weights=None) -> np.ndarray:
    """state += the (weighted) sum of the terms over rows, in float64; returns state.

    weights: None (each row once) or (m,) float row weights.
    """
    if weights is None:
        if t.cols.size:
            state += np.bincount(t.cols, weights=t.vals, minlength=state.size)
        if t.dense_cols.size:
            state[t.dense_cols] += t.dense.sum(axis=1)
        return state
    w = np.asarray(weights, dtype=np.float64)
    if t.cols.size:
        state += np.bincount(t.cols, weights=t.vals * w[t.rows], minlength=state.size)
    if t.dense_cols.size:
        state[t.dense_cols] += t.dense @ w
    return state


def merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The state of the rows of a and of b (same statistic)."""
    return a + b


class Statistic:
    """A statistic: ``size`` float64 sums defined by ``terms`` (see the module docstring)."""

    size = 0
    dense_cols = _EMPTY_INT  # the positions of the dense part of the terms (the same for every block)

    def zeros(self) -> np.ndarray:
        return np.zeros(self.size)

    def terms(self, block: Block) -> Terms:  # pragma: no cover (every statistic defines it)
        raise NotImplementedError

    def update(self, state: np.ndarray, block: Block, weights=None) -> np.ndarray:
        """Add the rows of ``block`` (weighted by ``weights`` (m,) when given)."""
        return add_terms(state, self.terms(block), weights)

    def __eq__(self, other):
        return type(self) is type(other) and self._key() == other._key()

    def __hash__(self):
        return hash((type(self).__name__, self._key()))

    def _key(self):
        return ()


# ----------------------------------------------------------------- per-row means
class _RowMean(Statistic):
    """State [rows, sum of one value per row]; finish: their mean."""

    size = 2
    dense_cols = np.arange(2)

    def values(self, block: Block) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def terms(self, block: Block) -> Terms:
        dense = np.empty((2, block.m))
        dense[0] = 1.0
        dense[1] = self.values(block)
        return Terms(_EMPTY_INT, _EMPTY_INT, _EMPTY, self.dense_cols, dense)

    def finish(self, state: np.ndarray) -> np.ndarray:
        """(...) mean of the per-row value from (..., 2) states."""
        return state[..., 1] / state[..., 0]


class Accuracy(_RowMean):
    """Fraction of rows whose arg-max class (the first, on ties) is the label."""

    def values(self, block):
        return block.top()[1]


class NLL(_RowMean):
    """Mean of -log p_{i, y_i}: exact from the block's log-probabilities when it has them,
    else probabilities clipped at the smallest positive float64."""

    def values(self, block):
        if block.rows is not None:
            return block.rows["nll"]
        rows = np.arange(block.m)
        if block.log_probs is not None:
            return -block.log_probs[rows, block.labels]
        return -np.log(np.maximum(block.probs[rows, block.labels].astype(np.float64), _TINY))


class Brier(_RowMean):
    """Mean of sum_j (p_ij - [y_i = j])^2 = sum_j p_ij^2 - 2 p_{i, y_i} + 1 (float64)."""

    def values(self, block):
        if block.rows is not None:
            return block.rows["brier"]
        p64 = np.asarray(block.probs, dtype=np.float64)
        return np.einsum("ij,ij->i", p64, p64) - 2.0 * p64[np.arange(block.m), block.labels] + 1.0


# ----------------------------------------------------------------------- binned
def calibration_error(count, s_conf, s_corr, norm: str = "l1", debiased: bool = False, rng=None,
                      n_resamples: int = 1000) -> np.ndarray:
    """Calibration error of each group of per-bin sums; bins on the last axis.

    count, s_conf, s_corr: (..., B) float64. Returns (...) errors:
    l1 = sum_b w_b |acc_b - conf_b|, l2 = sqrt(sum_b w_b gap_b^2), max = max over
    non-empty bins |gap_b|; w_b = n_b / n. debiased (Kumar et al. 2019): for l2, each
    bin's acc_b (1 - acc_b) / (n_b - 1) is subtracted; for l1, 2 * plug-in minus the mean
    over ``n_resamples`` Gaussian resamples of the bin accuracies drawn from ``rng``.
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
        var = np.where(count > 1, acc * (1.0 - acc) / np.where(count > 1, count - 1.0, 1.0), 0.0)
        sq = np.sum(w * np.where(count > 1, gap**2 - var, 0.0), axis=-1)
        return np.sqrt(np.maximum(sq, 0.0))
    plug = np.sum(w * np.abs(gap), axis=-1)
    sd = np.sqrt(np.clip(acc * (1.0 - acc), 0.0, None) / safe)
    draws = rng.standard_normal((n_resamples,) + acc.shape) * sd + acc
    resampled = np.sum(w * np.abs(np.where(nonempty, draws - conf, 0.0)), axis=-1)
    return 2.0 * plug - resampled.mean(axis=0)


def classwise_reduce(per_class: np.ndarray, norm: str) -> np.ndarray:
    """One error from the per-class errors (classes on the last axis): their mean (l1),
    root mean square (l2: Kumar et al. 2019's marginal calibration error) or maximum."""
    if norm == "l1":
        return per_class.mean(axis=-1)
    if norm == "l2":
        return np.sqrt(np.mean(per_class**2, axis=-1))
    return per_class.max(axis=-1)


def over_under_confidence(count, s_conf, s_corr):
    """(overconfidence, underconfidence), each (...), from per-bin sums (..., B) float64.

    overconfidence = sum_b max(s_conf_b - s_corr_b, 0) / n = sum_b w_b max(conf_b - acc_b, 0),
    underconfidence = sum_b max(s_corr_b - s_conf_b, 0) / n, n = sum_b count_b; their sum
    is the l1 :func:`calibration_error` of the same sums.
    """
    n = count.sum(axis=-1)
    n = np.where(n > 0, n, 1.0)
    gap = s_conf - s_corr
    return np.maximum(gap, 0.0).sum(axis=-1) / n, np.maximum(-gap, 0.0).sum(axis=-1) / n


class Bins(Statistic):
    """Per-bin (count, sum of value, sum of hit): state (3 * B,) = [count | value | hit].

    Values are the top-label confidence and hits its correctness (``column`` None), or
    p[:, column] and [y = column]. edges: (B + 1,) from 0 to 1, binned by the one rule
    of :mod:`calibrate._core.binning`.
    """

    def __init__(self, edges, column: int | None = None):
        self.edges = np.asarray(edges, dtype=np.float64)
        self.column = column
        self.n_bins = self.edges.size - 1
        self.size = 3 * self.n_bins

    def _key(self):
        return (self.edges.tobytes(), self.column)

    def values(self, block: Block):
        """(values (m,), hits (m,)) of the rows of ``block``."""
        if self.column is None:
            return block.top()
        return block.probs[:, self.column], block.labels == self.column

    def terms_of(self, values, hits) -> Terms:
        """Terms of rows given as (values (m,), hits (m,))."""
        b, m = self.n_bins, values.shape[0]
        idx = _binning.bin_index(values, self.edges)
        vals = np.empty(3 * m)
        vals[:m] = 1.0
        vals[m:2 * m] = values
        vals[2 * m:] = hits
        ar = np.arange(m)
        return Terms(np.concatenate([ar, ar, ar]), np.concatenate([idx, idx + b, idx + 2 * b]), vals,
                     _EMPTY_INT, _EMPTY.reshape(0, m))

    def terms(self, block: Block) -> Terms:
        return self.terms_of(*self.values(block))

    def update_values(self, state, values, hits, weights=None):
        """Add rows given as (values (m,), hits (m,))."""
        return add_terms(state, self.terms_of(values, hits), weights)

    def sums(self, state):
        """(count, sum of value, sum of hit), each (..., B), from (..., 3B) states."""
        b = self.n_bins
        return state[..., :b], state[..., b:2 * b], state[..., 2 * b:]

    def finish(self, state, norm: str = "l1", debiased: bool = False, seed: int = 0) -> np.ndarray:
        """(...) calibration error (see :func:`calibration_error`); ``seed`` seeds the debiased l1."""
        rng = np.random.default_rng(seed) if debiased and norm == "l1" else None
        return calibration_error(*self.sums(state), norm, debiased, rng)

    def over_under(self, state):
        """(overconfidence, underconfidence), each (...), from (..., 3B) states
        (see :func:`over_under_confidence`)."""
        return over_under_confidence(*self.sums(state))


class ClasswiseBins(Statistic):
    """For every class j, the bins of p_ij against [y_i = j] (Kull et al. 2019).

    n_classes: k; edges: (B + 1,) shared by the classes, or (k, B + 1), each class's own.
    State (3kB + k + 1,) = [count (k, B) | sum of p (k, B) | sum of hits (k, B) |
    sum_i p_ij (k) | rows]. Bin 0 of count and sum of p is not stored (most p_ij of a
    k-class model lie there, so a row has about 2 + (classes above the first edge)
    sparse terms): :meth:`sums` gives it as the totals minus the other bins.
    """

    def __init__(self, n_classes: int, edges):
        self.k = int(n_classes)
        self.edges = np.asarray(edges, dtype=np.float64)
        self.n_bins = self.edges.shape[-1] - 1
        kb = self.k * self.n_bins
        self.size = 3 * kb + self.k + 1
        self.dense_cols = np.arange(3 * kb, self.size)

    @classmethod
    def of(cls, p: np.ndarray, n_bins: int, binning: str = "width"):
        """Equal-width edges, or each class's own equal-mass edges from the (n, k) p."""
        if binning == "width":
            return cls(p.shape[1], _binning.equal_width_edges(n_bins))
        return cls(p.shape[1], np.stack([_binning.equal_mass_edges(p[:, j], n_bins) for j in range(p.shape[1])]))

    def _key(self):
        return (self.k, self.edges.tobytes())

    def bin_index(self, p: np.ndarray) -> np.ndarray:
        """(m, k) int: the bin of each p_ij within class j."""
        if self.edges.ndim == 1:
            return _binning.bin_index(p, self.edges)
        return np.stack([_binning.bin_index(p[:, j], self.edges[j]) for j in range(self.k)], axis=1)

    def terms(self, block: Block) -> Terms:
        """Sparse part: [R count terms | R sum-of-p terms (the p_ij above the first bin, in
        the order of np.nonzero) | m hit terms (the label's column)]; dense: [p.T (k, m) | 1]."""
        if block.probs is None:
            raise InputError("ClasswiseBins: the block has no probabilities (rows given by their values only)")
        p, y, m = block.probs, block.labels, block.m
        b, k = self.n_bins, self.k
        kb = k * b
        idx = self.bin_index(p)
        cols = idx + (np.arange(k) * b)[None, :]
        rr, jj = np.nonzero(idx > 0)
        cc = cols[rr, jj]
        ar = np.arange(m)
        vals = np.empty(2 * rr.size + m)
        vals[:rr.size] = 1.0
        vals[rr.size:2 * rr.size] = p[rr, jj]
        vals[2 * rr.size:] = 1.0
        dense = np.empty((k + 1, m))
        dense[:k] = p.T
        dense[k] = 1.0
        return Terms(np.concatenate([rr, rr, ar]), np.concatenate([cc, kb + cc, 2 * kb + cols[ar, y]]), vals,
                     self.dense_cols, dense)

    def sums(self, state):
        """(count, sum of p, sum of hits), each (..., k, B) float64, from (..., size) states."""
        k, b = self.k, self.n_bins
        kb = k * b
        shape = state.shape[:-1] + (k, b)
        cnt = state[..., :kb].reshape(shape).copy()
        conf = state[..., kb:2 * kb].reshape(shape).copy()
        corr = state[..., 2 * kb:3 * kb].reshape(shape)
        totals = state[..., 3 * kb:3 * kb + k]
        rows = state[..., 3 * kb + k]
        cnt[..., 0] = np.maximum(rows[..., None] - cnt[..., 1:].sum(-1), 0.0)
        conf[..., 0] = np.where(cnt[..., 0] > 0, np.maximum(totals - conf[..., 1:].sum(-1), 0.0), 0.0)
        return cnt, conf, corr

    def finish(self, state, norm: str = "l1", debiased: bool = False, seed: int = 0) -> np.ndarray:
        """(...) class-wise error: :func:`classwise_reduce` of each class's calibration error."""
        rng = np.random.default_rng(seed) if debiased and norm == "l1" else None
        return classwise_reduce(calibration_error(*self.sums(state), norm, debiased, rng), norm)


def brier_reliability(count, s_f, s_o) -> np.ndarray:
    """(...) reliability term of Murphy's Brier decomposition, (1/n) sum n_b (f_b - o_b)^2
    over classes and bins, from per-(class, bin) count, sum f, sum o, each (..., k, B)."""
    n = count[..., 0, :].sum(axis=-1)
    safe = np.where(count > 0, count, 1.0)
    return np.sum(count * (s_f / safe - s_o / safe) ** 2, axis=(-2, -1)) / np.where(n > 0, n, 1.0)


def brier_decomposition_terms(count, s_f, s_o, s_ff, s_fo) -> dict:
    """Murphy's decomposition of the Brier score from per-(class, bin) sums, each (..., k, B)
    float64: count, sum f, sum o, sum f^2, sum f o (f = p_ij, o = [y_i = j], class j's bins).

    With n rows, f_b = sum f / count, o_b = sum o / count, o_j = (1/n) sum_i o_ij:
    reliability = (1/n) sum n_b (f_b - o_b)^2, resolution = (1/n) sum n_b (o_b - o_j)^2,
    uncertainty = sum_j o_j (1 - o_j), within_bin_variance = (1/n) sum (sum f^2 - f_b sum f),
    within_bin_covariance = (1/n) sum (sum f o - f_b sum o), brier = (1/n) sum (sum f^2 -
    2 sum f o + sum o); sums over classes and bins; brier = reliability - resolution +
    uncertainty + within_bin_variance - 2 within_bin_covariance (Stephenson et al. 2008).
    Returns {name: (...) float64}.
    """
    n = count[..., 0, :].sum(axis=-1)
    n = np.where(n > 0, n, 1.0)
    safe = np.where(count > 0, count, 1.0)
    fb, ob = s_f / safe, s_o / safe
    freq = s_o.sum(axis=-1) / n[..., None]
    return {
        "brier": np.sum(s_ff - 2.0 * s_fo + s_o, axis=(-2, -1)) / n,
        "reliability": brier_reliability(count, s_f, s_o),
        "resolution": np.sum(count * (ob - freq[..., None]) ** 2, axis=(-2, -1)) / n,
        "uncertainty": np.sum(freq * (1.0 - freq), axis=-1),
        "within_bin_variance": np.sum(s_ff - s_f * fb, axis=(-2, -1)) / n,
        "within_bin_covariance": np.sum(s_fo - s_f * ob, axis=(-2, -1)) / n,
    }


class ClasswiseBrierBins(Statistic):
    """The sums of Murphy's Brier decomposition: for every class j and bin b of p_ij,
    count, sum f, sum o, sum f^2, sum f o (f = p_ij, o = [y_i = j]).

    n_classes: k; edges as :class:`ClasswiseBins`. State (5kB + 2k + 1,) =
    [the :class:`ClasswiseBins` state (3kB + k + 1) | sum f^2 (k, B) | sum f o (k, B) |
    sum_i p_ij^2 (k)]; bin 0 of sum f^2 is not stored (the total minus the other bins),
    sum f o has one term a row (the label's column). ``bins`` is the ClasswiseBins of the
    first part, so ``bins.finish(state[..., :bins.size])`` is the class-wise ECE.
    """

    def __init__(self, n_classes: int, edges):
        self.bins = ClasswiseBins(n_classes, edges)
        self.k, self.n_bins, self.edges = self.bins.k, self.bins.n_bins, self.bins.edges
        kb = self.k * self.n_bins
        self.size = self.bins.size + 2 * kb + self.k
        self.dense_cols = np.concatenate([self.bins.dense_cols, np.arange(self.size - self.k, self.size)])

    @classmethod
    def of(cls, p: np.ndarray, n_bins: int, binning: str = "width"):
        """Equal-width edges, or each class's own equal-mass edges from the (n, k) p."""
        b = ClasswiseBins.of(p, n_bins, binning)
        return cls(b.k, b.edges)

    def _key(self):
        return self.bins._key()

    def terms(self, block: Block) -> Terms:
        if block.probs is None:
            raise InputError("ClasswiseBrierBins: the block has no probabilities (rows given by their values only)")
        base = self.bins.terms(block)  # its layout: see ClasswiseBins.terms
        m, k = block.m, self.k
        r = (base.rows.size - m) // 2
        kb = k * self.n_bins
        start = self.bins.size
        ar = np.arange(m)
        vals = np.empty(r + m)
        np.square(base.vals[r:2 * r], out=vals[:r])
        vals[r:] = block.probs[ar, block.labels]
        dense = np.empty((base.dense.shape[0] + k, m))
        dense[:k + 1] = base.dense
        np.square(base.dense[:k], out=dense[k + 1:])
        return Terms(np.concatenate([base.rows, base.rows[:r], ar]),
                     np.concatenate([base.cols, start + base.cols[:r], start - kb + base.cols[2 * r:]]),
                     np.concatenate([base.vals, vals]), self.dense_cols, dense)

    def sums(self, state):
        """(count, sum f, sum o, sum f^2, sum f o), each (..., k, B) float64, from (..., size) states."""
        k, b = self.k, self.n_bins
        kb = k * b
        cnt, s_f, s_o = self.bins.sums(state[..., :self.bins.size])
        start = self.bins.size
        shape = state.shape[:-1] + (k, b)
        s_ff = state[..., start:start + kb].reshape(shape).copy()
        s_fo = state[..., start + kb:start + 2 * kb].reshape(shape)
        totals = state[..., start + 2 * kb:]
        s_ff[..., 0] = np.where(cnt[..., 0] > 0, np.maximum(totals - s_ff[..., 1:].sum(-1), 0.0), 0.0)
        return cnt, s_f, s_o, s_ff, s_fo

    def finish(self, state) -> dict:
        """{brier, reliability, resolution, uncertainty, within_bin_variance,
        within_bin_covariance}: (...) float64 each (:func:`brier_decomposition_terms`)."""
        return brier_decomposition_terms(*self.sums(state))


# ------------------------------------------------------------------ accumulation
def accumulate(stats, x: np.ndarray, labels: np.ndarray, kind: str = "probs", states=None, weights=None):
    """The states of ``stats`` (a sequence of statistics) over the rows of a validated numpy
    ``x`` ((n, k) probabilities, or logits when kind is "logits") and (n,) labels, in row
    blocks (added to ``states`` when given). weights: optional (n,) row weights."""
    states = [s.zeros() for s in stats] if states is None else states
    n, k = x.shape
    for sl in row_blocks(n, k):
        block = Block.from_logits(x[sl], labels[sl]) if kind == "logits" else Block(x[sl], labels[sl])
        w = None if weights is None else weights[sl]
        for stat, state in zip(stats, states):
            stat.update(state, block, w)
    return states


def top_label_values(x: np.ndarray, labels: np.ndarray, kind: str = "probs") -> np.ndarray:
    """(2, n) float64: the top-label confidence and correctness (0/1) of every row of a
    validated numpy x (probabilities, or logits when kind is "logits"), in row blocks."""
    n, k = x.shape
    out = np.empty((2, n))
    for sl in row_blocks(n, k):
        block = Block.from_logits(x[sl], labels[sl]) if kind == "logits" else Block(x[sl], labels[sl])
        out[0, sl], out[1, sl] = block.top()
    return out
