"""Bootstrap confidence intervals for any metric, for the difference of a metric between
two predictions of the same samples (paired), and for many metrics of many predictions
from one set of resamples.

A bootstrap resample is a vector of weights w (how often each sample is drawn). Every
metric of :mod:`calibrate.metrics` is a function of sums that are linear in w, so only
per-sample *sufficient statistics* are resampled, never the (n, k) arrays: the top-label
bin of each sample, its confidence and correctness, its NLL and Brier terms, and for the
class-wise ECE its bin in each class. Each sample is one row of a matrix X: a dense part
(count, correct, NLL, Brier, and the class totals p_i1..p_ik) and a sparse part (its
top-label bin's count, confidence and correctness; for the class-wise ECE, the bins of the
p_ij above the first bin, whose sums are the totals minus the others, so about 2 + 3 + 6
non-zeros for a 10-class model). The resampled sums are S = W X for a (resamples x n)
weight matrix W that is never held whole: it is drawn in blocks of rows (samples) or of
resamples. Cost: resamples x rows x (dense columns + non-zeros), memory O(columns x
resamples) plus one block.

Weights (``scheme``):
  "multinomial" the classical bootstrap (Efron 1979): each resample draws n rows with
      replacement, ``rng.integers(0, n, (R, n))`` exactly as scipy.stats.bootstrap does, so
      with the same seed the resamples are the same;
  "poisson" the Poisson bootstrap (Hanley & MacGibbon 2006; Chamandy et al. 2012): each
      sample gets an independent Poisson(1) weight, so blocks of samples are drawn
      independently (bounded memory at any n). Poisson(1) is drawn by inverting its CDF on
      32 random bits (probabilities exact to 2^-32);
  "auto" (default) multinomial up to 200,000 rows, Poisson beyond.
Bin edges are those of the full sample (for equal-mass bins, the interval is conditional
on them). Metrics with no such form (the debiased L1 estimator, a user's own function)
fall back to a loop over resamples.

Intervals (``method``): "percentile" (Efron & Tibshirani 1993, 13.3), "basic" (2 est - the
percentiles), or "bca", bias-corrected and accelerated (Efron 1987): with
z0 = Phi^-1(share of resamples below the estimate, ties counted half) and acceleration
a = sum U_i^3 / (6 (sum U_i^2)^(3/2)), U_i = mean_j theta_(j) - theta_(i), the
leave-one-out (jackknife) values theta_(i) are exact and cheap: each is the metric of the
full sums minus sample i's row of X (beyond 100,000 rows, the delete-a-group jackknife of
1000 groups, row i in group i mod 1000). The interval is the percentiles
Phi(z0 + (z0 + z_q) / (1 - a (z0 + z_q))) for z_q = Phi^-1(alpha/2), Phi^-1(1 - alpha/2):
the same numbers as scipy.stats.bootstrap(method="BCa") on the same resamples.
The plug-in ECE is biased upward, so most resamples lie above it and its percentile
interval can miss it; BCa moves the interval down by z0.
"""

from __future__ import annotations

import contextlib

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.special import ndtr, ndtri

from . import _binning, metrics
from ._blocks import one_blas_thread, row_blocks, worker_threads
from ._validation import (
    MAX_RESAMPLES,
    InputError,
    check_choice,
    check_labels,
    check_n_resamples,
    check_probs_labels,
)

SCHEMES = ("auto", "multinomial", "poisson")
METHODS = ("percentile", "bca", "basic")
AUTO_MULTINOMIAL_MAX_ROWS = 200_000
_CHUNK_ELEMENTS = 2_000_000  # multinomial: resamples drawn in chunks of at most this many counts (a chunk's
# temporaries, about 50 MB, are reused by the next chunk: a first call in a fresh process does not pay
# page faults for hundreds of MB of new memory)
_SAMPLE_BLOCK_WEIGHTS = 2_000_000  # poisson: samples per block x resamples


@dataclass(frozen=True)
class Interval:
    """A confidence interval; unpacks as ``low, high = interval``."""

    low: float
    high: float
    estimate: float  # the metric on the full sample (for a paired interval: b minus a)
    confidence: float
    n_resamples: int
    method: str = "percentile"
    scheme: str = "multinomial"

    def __iter__(self):
        return iter((self.low, self.high))

    def __getitem__(self, i):
        return (self.low, self.high)[i]

    def __len__(self):
        return 2

    def to_dict(self):
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "confidence": self.confidence}


@dataclass(frozen=True)
class PairedInterval(Interval):
    """Interval of metric(b) - metric(a) over the same resamples.

    p_value: two-sided bootstrap p-value of "no difference": twice the smaller fraction of
    resamples on either side of 0 (at least 1 / n_resamples).
    """

    p_value: float = 1.0

    def to_dict(self):
        return {**super().to_dict(), "p_value": self.p_value}


_NAMED = {
    "accuracy": (metrics.accuracy, {}),
    "nll": (metrics.nll, {}),
    "brier": (metrics.brier, {}),
    "ece": (metrics.ece, {}),
    "ece_mass": (metrics.ece, {"binning": "mass"}),
    "ece_l2": (metrics.ece, {"norm": "l2"}),
    "ece_l2_debiased": (metrics.ece, {"norm": "l2", "debiased": True}),
    "mce": (metrics.ece, {"norm": "max"}),
    "classwise_ece": (metrics.ece, {"classwise": True}),
}


def _resolve(metric, kwargs):
    if isinstance(metric, str):
        if metric not in _NAMED:
            raise InputError(f"metric: expected a function or one of {', '.join(_NAMED)}, got {metric!r}")
        fn, extra = _NAMED[metric]
        return fn, {**extra, **kwargs}
    if metric is metrics.mce:
        return metrics.ece, {"norm": "max", **kwargs}
    if metric is metrics.classwise_ece:
        return metrics.ece, {"classwise": True, **kwargs}
    if not callable(metric):
        raise InputError(f"metric: expected a callable or a metric name, got {metric!r}")
    return metric, dict(kwargs)


# --------------------------------------------------------------------- Poisson(1) weights
def _poisson_tables():
    pmf = [math.exp(-1.0) / math.factorial(j) for j in range(40)]
    cdf = np.cumsum(pmf)
    thr = np.minimum(np.round(cdf * 2.0**32), 2.0**32).astype(np.uint64)
    thr = thr[: int(np.searchsorted(thr, 2**32)) + 1]  # w = #{j : u >= thr_j}
    cells = np.arange(65536, dtype=np.uint64) << np.uint64(16)
    first = np.searchsorted(thr, cells, side="right").astype(np.uint8)
    last = np.searchsorted(thr, cells + np.uint64(65535), side="right").astype(np.uint8)
    table = first | np.where(first != last, 128, 0).astype(np.uint8)  # 128: settle on 32 bits
    return thr, table


_POISSON_THR, _POISSON_TABLE = _poisson_tables()


def poisson_weights(rng: np.random.Generator, shape) -> np.ndarray:
    """Independent Poisson(1) draws (uint8), each from 32 random bits: the top 16 bits index
    a table; the few table cells that straddle a CDF step are settled on all 32 bits."""
    size = int(np.prod(shape))
    raw = rng.bit_generator.random_raw((size + 1) // 2)
    u = raw.view(np.uint32)[:size]
    w = np.take(_POISSON_TABLE, raw.view(np.uint16)[1::2][:size].astype(np.intp))  # high halves
    amb = np.flatnonzero(w >= 128)
    if amb.size:
        w[amb] = np.searchsorted(_POISSON_THR, u[amb].astype(np.uint64), side="right")
    return w.reshape(shape)


def _count_chunks(n, n_resamples, rng):
    """Multinomial: yield (r, n) float64 count matrices, n_resamples rows in all (the draws
    of scipy.stats.bootstrap: rng.integers(0, n, (R, n)), chunk by chunk)."""
    per = max(1, _CHUNK_ELEMENTS // max(n, 1))
    done = 0
    while done < n_resamples:
        r = min(per, n_resamples - done)
        idx = rng.integers(0, n, size=(r, n))
        idx += (np.arange(r) * n)[:, None]
        yield np.bincount(idx.ravel(), minlength=r * n).reshape(r, n).astype(np.float64)
        done += r


def _scheme(scheme, n):
    check_choice(scheme, "scheme", SCHEMES)
    if scheme == "auto":
        return "multinomial" if n <= AUTO_MULTINOMIAL_MAX_ROWS else "poisson"
    return scheme


# --------------------------------------------------------------------- sufficient statistics
class _Source:
    """One prediction, read in row blocks: probabilities (and exact log-probabilities)."""

    def __init__(self, n, k, block):
        self.n, self.k, self._block = n, k, block

    def block(self, s):
        """(p (m, k) float64, log_p (m, k) float64 or None) of rows s."""
        return self._block(s)

    @classmethod
    def from_probs(cls, p, log_probs=None):
        def block(s):
            lp = None if log_probs is None else np.asarray(log_probs[s], dtype=np.float64)
            return np.asarray(p[s], dtype=np.float64), lp
        return cls(p.shape[0], p.shape[1], block)

    @classmethod
    def from_log_probs(cls, log_probs_fn, n, k):
        """log_probs_fn(slice) -> (m, k) log-probabilities (of logits: normalised here)."""
        def block(s):
            lp = metrics.log_softmax(np.asarray(log_probs_fn(s), dtype=np.float64))
            return np.exp(lp), lp
        return cls(n, k, block)


@dataclass
class _Spec:
    """A metric as finish(sums of its columns)."""

    kind: str  # "accuracy", "nll", "brier", "bins", "classwise"
    n_bins: int = 15
    binning: str = "width"
    norm: str = "l1"
    debiased: bool = False

    @classmethod
    def of(cls, fn, kw):
        if fn is metrics.accuracy:
            return cls("accuracy")
        if fn is metrics.nll:
            return cls("nll")
        if fn is metrics.brier:
            return cls("brier")
        if fn is metrics.ece:
            unknown = set(kw) - {"n_bins", "binning", "norm", "debiased", "classwise", "seed"}
            if unknown:
                return None
            norm, debiased = kw.get("norm", "l1"), kw.get("debiased", False)
            if debiased and norm == "l1":
                return None  # resampling inside the estimator: loop instead
            if debiased and norm == "max":
                raise InputError("debiased: the debiased estimator is defined for norm 'l1' or 'l2', not 'max'")
            kind = "classwise" if kw.get("classwise", False) else "bins"
            return cls(kind, metrics.check_n_bins(kw.get("n_bins", 15)),
                       check_choice(kw.get("binning", "width"), "binning", metrics.BINNINGS),
                       check_choice(norm, "norm", metrics.NORMS), bool(debiased))
        return None

    def group(self):
        if self.kind in ("accuracy", "nll", "brier"):
            return ("totals",)
        return (self.kind, self.n_bins, self.binning)


@dataclass
class _Layout:
    """Where each group of columns of one prediction lives in X."""

    offset: dict = field(default_factory=dict)  # group -> first column
    width: int = 0

    def add(self, group, size):
        if group not in self.offset:
            self.offset[group] = self.width
            self.width += size
        return self.offset[group]


class _Rows:
    """Rows of X: a sparse part (m x C, zero in the dense columns) and a dense part
    (m x len(dense_cols)) for the columns every sample touches (totals, class totals)."""

    def __init__(self, sparse, dense, dense_cols):
        self.sparse, self.dense, self.dense_cols = sparse, dense, dense_cols

    @property
    def m(self):
        return self.sparse.shape[0]

    def toarray(self):
        out = self.sparse.toarray()
        out[:, self.dense_cols] += self.dense
        return out

    def weighted_sums(self, wt, out):
        """out (C, R) += X^T wt for weights wt (m, R)."""
        out += self.sparse.T @ wt
        if self.dense_cols.size:
            out[self.dense_cols] += self.dense.T @ wt

    def column_sums(self):
        out = np.asarray(self.sparse.sum(axis=0)).ravel()
        out[self.dense_cols] += self.dense.sum(axis=0)
        return out

    def group_sums(self, groups, n_groups):
        """(n_groups, C) sums of the rows of each group."""
        g = sp.csr_matrix((np.ones(self.m), (groups, np.arange(self.m))), shape=(n_groups, self.m))
        out = (g @ self.sparse).toarray()
        out[:, self.dense_cols] += g @ self.dense
        return out

    def __getitem__(self, s):
        return _Rows(self.sparse[s], self.dense[s], self.dense_cols)


class _Design:
    """The per-sample statistics X (n x C) of several predictions and metrics, in row blocks.

    Columns per prediction: "totals" (count, correct, NLL, Brier: dense), top-label "bins"
    (count, confidence, correct per bin: 3 non-zeros per sample), "classwise" (count and
    p_ij in the bin of p_ij for every class j, correct in the label's bin, and the class
    totals sum_i p_ij and the count, dense). The class-wise bin 0 (most p_ij of a k-class
    model lie there) is not stored: its count and confidence sums are the totals minus
    the other bins, so a sample has about 2 + (classes whose p_ij > 1/B) sparse entries.
    """

    def __init__(self, sources: list[_Source], y: np.ndarray, specs: list[list[_Spec]]):
        self.sources, self.y, self.n = sources, y, y.shape[0]
        self.layout, self.offsets, self.edges, self.top = _Layout(), [], [], []
        dense = []
        for src, sp_list in zip(sources, specs):
            groups = {s.group() for s in sp_list}
            offs, edges = {}, {}
            # pass A: top-label statistics of every row (O(n) floats, not (n, k))
            top = self._top(src) if any(g[0] in ("totals", "bins") for g in groups) else None
            for g in sorted(groups, key=str):
                if g[0] == "totals":
                    o = offs[g] = self.layout.add((len(self.offsets), g), 4)
                    dense += range(o, o + 4)
                elif g[0] == "bins":
                    offs[g] = self.layout.add((len(self.offsets), g), 3 * g[1])
                    e = _binning.make_edges(top[0], g[1], g[2])
                    edges[g] = _binning.bin_index(top[0], e)
                else:
                    kb = g[1] * src.k
                    o = offs[g] = self.layout.add((len(self.offsets), g), 3 * kb + src.k + 1)
                    dense += range(o + 3 * kb, o + 3 * kb + src.k + 1)
                    edges[g] = _binning.make_edges(None, g[1], "width") if g[2] == "width" else None
            self.offsets.append(offs)
            self.edges.append(edges)
            self.top.append(top)
        self.width = self.layout.width
        self.dense_cols = np.array(dense, dtype=np.intp)

    def _top(self, src):
        n = src.n
        conf, ok = np.empty(n), np.empty(n, dtype=bool)
        nll_t, brier_t = np.empty(n), np.empty(n)
        for s in row_blocks(n, src.k):
            p, lp = src.block(s)
            y = self.y[s]
            c, o = metrics._top_label(p, y)
            conf[s], ok[s] = c, o
            nll_t[s] = metrics._nll_terms(p, y, lp)
            brier_t[s] = metrics._brier_terms(p, y)
        return conf, ok, nll_t, brier_t

    def rows(self, s) -> _Rows:
        """X[s]."""
        m = s.stop - s.start
        r_all, c_all, v_all = [], [], []
        dense = np.zeros((m, self.dense_cols.size))
        dpos = {c: i for i, c in enumerate(self.dense_cols.tolist())}
        ar = np.arange(m)
        for src, offs, edges, top in zip(self.sources, self.offsets, self.edges, self.top):
            p = None
            for g, o in offs.items():
                if g[0] == "totals":
                    conf, ok, nll_t, brier_t = (a[s] for a in top)
                    i = dpos[o]
                    dense[:, i], dense[:, i + 1], dense[:, i + 2], dense[:, i + 3] = 1.0, ok, nll_t, brier_t
                elif g[0] == "bins":
                    b = g[1]
                    conf, ok = top[0][s], top[1][s]
                    idx = edges[g][s]
                    r_all += [ar] * 3
                    c_all += [o + idx, o + b + idx, o + 2 * b + idx]
                    v_all += [np.ones(m), conf, ok.astype(np.float64)]
                else:
                    b, k = g[1], src.k
                    if p is None:
                        p, _ = src.block(s)
                    e = edges[g]
                    if e is None:
                        idx = np.empty(p.shape, dtype=np.intp)
                        for j in range(k):
                            idx[:, j] = _binning.bin_index(p[:, j], self._cw_mass_edges(src, g, j))
                    else:
                        idx = _binning.bin_index(p, e)
                    cols = idx + (np.arange(k) * b)[None, :]
                    y = self.y[s]
                    rr, jj = np.nonzero(idx > 0)  # bin 0 is derived from the totals
                    cc = cols[rr, jj]
                    r_all += [rr, rr, ar]
                    c_all += [o + cc, o + k * b + cc, o + 2 * k * b + cols[ar, y]]
                    v_all += [np.ones(rr.size), p[rr, jj], np.ones(m)]
                    i = dpos[o + 3 * k * b]
                    dense[:, i:i + k] = p
                    dense[:, i + k] = 1.0
        if r_all:
            r, c, v = np.concatenate(r_all), np.concatenate(c_all), np.concatenate(v_all)
        else:
            r = c = np.empty(0, np.intp)
            v = np.empty(0)
        return _Rows(sp.csr_matrix((v, (r, c)), shape=(m, self.width)), dense, self.dense_cols)

    def _cw_mass_edges(self, src, g, j):
        # class-wise equal-mass edges: each class's own quantiles (one pass per class, cached)
        cache = self.__dict__.setdefault("_cw_mass", {})
        key = (id(src), g, j)
        if key not in cache:
            col = np.concatenate([src.block(s)[0][:, j] for s in row_blocks(src.n, src.k)])
            cache[key] = _binning.equal_mass_edges(col, g[1])
        return cache[key]

    def blocks(self, rows_per_block):
        for start in range(0, self.n, rows_per_block):
            s = slice(start, min(self.n, start + rows_per_block))
            yield s, self.rows(s)

    def full(self) -> _Rows:
        parts = [x for _, x in self.blocks(max(1, 2_000_000 // max(self.width, 1)) + 1)]
        return _Rows(sp.vstack([x.sparse for x in parts], format="csr"), np.concatenate([x.dense for x in parts]),
                     self.dense_cols)


def _finish(spec: _Spec, S: np.ndarray, off: int, k: int) -> np.ndarray:
    """The metric of column sums S (..., C) (columns of one prediction from ``off``)."""
    if spec.kind in ("accuracy", "nll", "brier"):
        j = {"accuracy": 1, "nll": 2, "brier": 3}[spec.kind]
        return S[..., off + j] / S[..., off]
    b = spec.n_bins
    if spec.kind == "bins":
        cnt, conf, corr = S[..., off:off + b], S[..., off + b:off + 2 * b], S[..., off + 2 * b:off + 3 * b]
        return metrics._group_errors(cnt, conf, corr, spec.norm, spec.debiased)
    shape = S.shape[:-1] + (k, b)
    kb = k * b
    cnt = S[..., off:off + kb].reshape(shape).copy()
    conf = S[..., off + kb:off + 2 * kb].reshape(shape).copy()
    corr = S[..., off + 2 * kb:off + 3 * kb].reshape(shape)
    totals = S[..., off + 3 * kb:off + 3 * kb + k]
    count = S[..., off + 3 * kb + k]
    cnt[..., 0] = count[..., None] - cnt[..., 1:].sum(-1)  # bin 0 = all minus the others
    conf[..., 0] = totals - conf[..., 1:].sum(-1)
    cnt[..., 0] = np.maximum(cnt[..., 0], 0.0)
    conf[..., 0] = np.where(cnt[..., 0] > 0, np.maximum(conf[..., 0], 0.0), 0.0)
    e = metrics._group_errors(cnt, conf, corr, spec.norm, spec.debiased)
    if spec.norm == "l1":
        return e.mean(-1)
    if spec.norm == "l2":
        return np.sqrt(np.mean(e**2, -1))
    return e.max(-1)


# --------------------------------------------------------------------- the engine
EXACT_JACKKNIFE_MAX_ROWS = 100_000
JACKKNIFE_GROUPS = 1000


class _Engine:
    """Resamples all (prediction, metric) pairs with one set of weights."""

    def __init__(self, sources, y, specs, n_resamples, seed, scheme, jackknife):
        self.design = _Design(sources, y, specs)
        self.specs = specs
        self.n = y.shape[0]
        self.R = int(n_resamples)
        self.scheme = _scheme(scheme, self.n)
        d = self.design
        rng = np.random.default_rng(seed)
        St = np.zeros((d.width, self.R))  # S transposed: (columns, resamples)
        X = None
        # beyond the exact jackknife, its group sums are gathered in the resampling pass
        self._group_sums = (np.zeros((JACKKNIFE_GROUPS, d.width))
                            if jackknife and self.n > EXACT_JACKKNIFE_MAX_ROWS and self.scheme == "poisson" else None)
        # Poisson: many small products in a block loop, on one BLAS thread each; multinomial: one
        # product per chunk of resamples, left to BLAS as it is (and no threadpoolctl set-up on a first call)
        with one_blas_thread() if self.scheme == "poisson" else contextlib.nullcontext():
            X, ones = self._accumulate(d, rng, St)
        self.S, self.ones, self._X = St.T, ones, X
        self._jack = self._jackknife() if jackknife else None

    def _accumulate(self, d, rng, St):
        X = None
        if self.scheme == "multinomial":
            X = d.full()
            ones = X.column_sums()
            done = 0
            for w in _count_chunks(self.n, self.R, rng):
                part = np.zeros((d.width, w.shape[0]))
                X.weighted_sums(w.T, part)
                St[:, done:done + w.shape[0]] = part
                done += w.shape[0]
            return X, ones
        # Poisson: the weights of each row block are drawn here, in block order (so the
        # draws do not depend on the threads); the products X_b^T W_b, the block's column
        # sums and jackknife group sums run on worker threads (scipy's sparse products and
        # BLAS release the GIL) and are added in block order, so the sums do not either.
        ones = np.zeros(d.width)
        rows = max(1, _SAMPLE_BLOCK_WEIGHTS // max(self.R, 1))
        gs = self._group_sums

        def block(s, w):
            x = d.rows(s)
            part = np.zeros((d.width, self.R))
            x.weighted_sums(w.astype(np.float64), part)
            g = None if gs is None else x.group_sums(np.arange(s.start, s.stop) % JACKKNIFE_GROUPS, JACKKNIFE_GROUPS)
            return part, x.column_sums(), g

        def add(result):
            part, cs, g = result
            St[...] += part
            ones[...] += cs
            if g is not None:
                gs[...] += g

        slices = (slice(a, min(self.n, a + rows)) for a in range(0, self.n, rows))
        workers = worker_threads()
        if workers == 1:
            for s in slices:
                add(block(s, poisson_weights(rng, (s.stop - s.start, self.R))))
            return X, ones
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as pool:
            pending = deque()
            for s in slices:
                pending.append(pool.submit(block, s, poisson_weights(rng, (s.stop - s.start, self.R))))
                if len(pending) > workers:  # bounded: at most workers + 1 blocks of weights in memory
                    add(pending.popleft().result())
            while pending:
                add(pending.popleft().result())
        return X, ones

    def _jackknife(self):
        """Leave-one-out values of every (prediction, metric): finish(full sums - row i).

        Exact up to EXACT_JACKKNIFE_MAX_ROWS rows; beyond, the delete-a-group jackknife of
        JACKKNIFE_GROUPS groups (row i in group i mod G), whose values give the acceleration
        the same way (Efron & Tibshirani 1993, 11.5)."""
        d = self.design
        keys = self._keys()
        if self.n <= EXACT_JACKKNIFE_MAX_ROWS:
            out = {key: np.empty(self.n) for key in keys}
            rows = max(1, 4_000_000 // max(d.width, 1))
            if self._X is not None:
                src = ((slice(a, min(self.n, a + rows)), self._X[a:a + rows]) for a in range(0, self.n, rows))
            else:
                src = d.blocks(rows)
            for s, x in src:
                D = self.ones[None, :] - x.toarray()
                for (i, j), arr in out.items():
                    spec = self.specs[i][j]
                    arr[s] = _finish(spec, D, d.offsets[i][spec.group()], d.sources[i].k)
            return out
        G = JACKKNIFE_GROUPS
        sums = self._group_sums
        if sums is None:
            sums = np.zeros((G, d.width))
            for s, x in d.blocks(max(1, 2_000_000 // max(d.width, 1))):
                sums += x.group_sums(np.arange(s.start, s.stop) % G, G)
        D = self.ones[None, :] - sums
        return {(i, j): _finish(self.specs[i][j], D, d.offsets[i][self.specs[i][j].group()], d.sources[i].k)
                for (i, j) in keys}

    def _keys(self):
        return [(i, j) for i, sl in enumerate(self.specs) for j in range(len(sl))]

    def values(self, i, j) -> np.ndarray:
        spec = self.specs[i][j]
        return _finish(spec, self.S, self.design.offsets[i][spec.group()], self.design.sources[i].k)

    def jackknife(self, i, j):
        return None if self._jack is None else self._jack[(i, j)]


def _interval(vals, est, confidence, method, jack=None):
    a = (1 - confidence) / 2
    if method == "percentile":
        lo, hi = np.quantile(vals, [a, 1 - a])
    elif method == "basic":
        q_lo, q_hi = np.quantile(vals, [a, 1 - a])
        lo, hi = 2 * est - q_hi, 2 * est - q_lo
    else:
        lo, hi = np.quantile(vals, bca_levels(vals, est, jack, confidence))
    return float(lo), float(hi)


def bca_levels(values, estimate, jackknife, confidence=0.95):
    """The two percentile levels of the BCa interval (Efron 1987; Efron & Tibshirani 1993,
    14.3): z0 from the share of ``values`` below ``estimate`` (ties half), acceleration from
    the (n,) leave-one-out values ``jackknife``. Level 0 or 1 when z0 is infinite."""
    values = np.asarray(values)
    share = (np.count_nonzero(values < estimate) + np.count_nonzero(values <= estimate)) / (2 * values.size)
    z0 = ndtri(share)
    u = np.mean(jackknife) - np.asarray(jackknife)
    den = np.sum(u**2)
    acc = float(np.sum(u**3) / (6.0 * den**1.5)) if den > 0 else 0.0
    za = ndtri((1 - confidence) / 2)
    out = []
    for zq in (za, -za):
        num = z0 + zq
        level = ndtr(z0 + num / (1 - acc * num)) if np.isfinite(z0) else (0.0 if z0 < 0 else 1.0)
        out.append(float(np.clip(level, 0.0, 1.0)) if np.isfinite(level) else 0.5)
    return out


# --------------------------------------------------------------------- public API
def _evaluator(metric, p, y, kw, log_probs=None):
    """(fn, kw, values) where values(w) gives the metric on (r, n) weight rows w."""
    fn, kw = _resolve(metric, kw)
    spec = _Spec.of(fn, kw)
    if spec is not None:
        d = _Design([_Source.from_probs(p, log_probs)], y, [[spec]])
        X = d.full()
        off = d.offsets[0][spec.group()]

        def values(w):
            w = np.asarray(w, np.float64)
            out = np.zeros((d.width, w.shape[0]))
            X.weighted_sums(w.T, out)
            return _finish(spec, out.T, off, p.shape[1])

        return fn, kw, values

    def loop(w):
        out = np.empty(w.shape[0])
        for i, wi in enumerate(w):
            take = np.repeat(np.arange(p.shape[0]), wi.astype(np.int64))
            out[i] = fn(p[take], y[take], **kw)
        return out

    return fn, kw, loop


def _check_level(confidence, n_resamples, method="percentile"):
    if not 0 < confidence < 1:
        raise InputError(f"confidence: expected a value in (0, 1), got {confidence}")
    if int(n_resamples) < 1:
        raise InputError(f"n_resamples: expected a positive integer, got {n_resamples}")
    if int(n_resamples) > MAX_RESAMPLES:
        check_n_resamples(int(n_resamples))  # the one message for the limit
    check_choice(method, "method", METHODS)


def _weights(n, n_resamples, seed, scheme):
    rng = np.random.default_rng(seed)
    if _scheme(scheme, n) == "multinomial":
        yield from _count_chunks(n, n_resamples, rng)
    else:
        per = max(1, _CHUNK_ELEMENTS // max(n, 1))
        for a in range(0, n_resamples, per):
            yield poisson_weights(rng, (min(per, n_resamples - a), n)).astype(np.float64)


def _loop_jackknife(fn, p, y, kw):
    n = p.shape[0]
    keep = np.ones(n, dtype=bool)
    out = np.empty(n)
    for i in range(n):
        keep[i] = False
        out[i] = fn(p[keep], y[keep], **kw)
        keep[i] = True
    return out


def _one(metric, p, y, lp, kw, n_resamples, seed, scheme, jackknife):
    """(fn, kw, values (R,), estimate, jackknife values or None) of one metric."""
    fn, kw = _resolve(metric, kw)
    spec = _Spec.of(fn, kw)
    est = _estimate(fn, p, y, kw, lp)
    if spec is not None:
        eng = _Engine([_Source.from_probs(p, lp)], y, [[spec]], n_resamples, seed, scheme, jackknife)
        return eng.values(0, 0), est, eng.jackknife(0, 0)
    _, _, loop = _evaluator(fn, p, y, kw, lp)
    vals = np.concatenate([loop(w) for w in _weights(p.shape[0], n_resamples, seed, scheme)])
    jack = _loop_jackknife(fn, p, y, kw) if jackknife else None
    return vals, est, jack


def bootstrap_distribution(metric, probs, labels, n_resamples: int = 1000, seed: int = 0, *, log_probs=None,
                           scheme: str = "auto", **metric_kwargs) -> np.ndarray:
    """(n_resamples,) values of the metric on bootstrap resamples of the rows."""
    p, y = check_probs_labels(probs, labels)
    vals, _, _ = _one(metric, p, y, log_probs, metric_kwargs, n_resamples, seed, scheme, False)
    return vals


def bootstrap_ci(metric, probs, labels, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0,
                 *, log_probs=None, method: str = "percentile", scheme: str = "auto",
                 **metric_kwargs) -> Interval:
    """Bootstrap interval of ``metric(probs, labels, **metric_kwargs)``.

    metric: a function of :mod:`calibrate.metrics` (resampled through its sufficient
    statistics), a name such as "ece" or "classwise_ece", or any callable
    f(probs, labels) -> float (looped; its BCa jackknife is a loop over n too).
    probs: (n, k) probabilities; labels: (n,) int. log_probs: optional (n, k) exact
    log-probabilities for the NLL (from logits).
    method: "percentile", "bca" or "basic"; scheme: "auto", "multinomial" or "poisson"
    (see the module docstring).
    """
    _check_level(confidence, n_resamples, method)
    p, y = check_probs_labels(probs, labels)
    sch = _scheme(scheme, p.shape[0])
    vals, est, jack = _one(metric, p, y, log_probs, metric_kwargs, n_resamples, seed, sch, method == "bca")
    lo, hi = _interval(vals, est, confidence, method, jack)
    return Interval(lo, hi, float(est), confidence, int(n_resamples), method, sch)


def _estimate(fn, p, y, kw, log_probs):
    if fn is metrics.nll and log_probs is not None:
        lp = np.asarray(log_probs)
        return float(-np.mean(lp[np.arange(p.shape[0]), y]))
    return float(fn(p, y, **kw))


def _paired(vals_a, vals_b, est, confidence, n_resamples, method, scheme, jack=None):
    diffs = vals_b - vals_a
    lo, hi = _interval(diffs, est, confidence, method, jack)
    side = min(np.mean(diffs <= 0), np.mean(diffs >= 0))
    p_value = float(min(1.0, max(2 * side, 1.0 / n_resamples)))
    return PairedInterval(lo, hi, float(est), confidence, int(n_resamples), method, scheme, p_value)


def paired_bootstrap_ci(metric, probs_a, probs_b, labels, n_resamples: int = 1000, confidence: float = 0.95,
                        seed: int = 0, *, log_probs_a=None, log_probs_b=None, method: str = "percentile",
                        scheme: str = "auto", **metric_kwargs) -> PairedInterval:
    """Interval of metric(b) - metric(a) when a and b predict the same samples.

    Both are evaluated on the same resamples, so the noise they share cancels: the
    question "is calibrator b better than a, beyond the noise of the test set?" is
    answered by whether the interval excludes 0 (see ``p_value``).
    """
    _check_level(confidence, n_resamples, method)
    pa, y = check_probs_labels(probs_a, labels, "probs_a")
    pb, _ = check_probs_labels(probs_b, y, "probs_b")
    if pa.shape != pb.shape:
        raise InputError(f"probs_b: expected the shape of probs_a {pa.shape}, got {pb.shape}")
    check_labels(y, pa.shape[0], pa.shape[1])
    sch = _scheme(scheme, pa.shape[0])
    fn, kw = _resolve(metric, metric_kwargs)
    est = _estimate(fn, pb, y, kw, log_probs_b) - _estimate(fn, pa, y, kw, log_probs_a)
    spec = _Spec.of(fn, kw)
    bca = method == "bca"
    if spec is not None:
        eng = _Engine([_Source.from_probs(pa, log_probs_a), _Source.from_probs(pb, log_probs_b)], y,
                      [[spec], [spec]], n_resamples, seed, sch, bca)
        va, vb = eng.values(0, 0), eng.values(1, 0)
        jack = eng.jackknife(1, 0) - eng.jackknife(0, 0) if bca else None
    else:
        _, _, la = _evaluator(fn, pa, y, kw, log_probs_a)
        _, _, lb = _evaluator(fn, pb, y, kw, log_probs_b)
        ws = list(_weights(pa.shape[0], n_resamples, seed, sch))
        va = np.concatenate([la(w) for w in ws])
        vb = np.concatenate([lb(w) for w in ws])
        jack = _loop_jackknife(fn, pb, y, kw) - _loop_jackknife(fn, pa, y, kw) if bca else None
    return _paired(va, vb, est, confidence, n_resamples, method, sch, jack)


def bootstrap_many(predictions: dict, labels, metric_names, n_resamples: int = 1000, confidence: float = 0.95,
                   seed: int = 0, *, n_bins: int = 15, reference: str | None = None, paired_names=None,
                   method: str = "bca", scheme: str = "auto", estimates: dict | None = None):
    """Intervals of many metrics of many predictions of the same rows from ONE set of
    resample weights, and paired differences against ``reference`` on those same resamples.

    predictions: {name: source}; a source is an (n, k) array of log-probabilities (or
    logits: normalised), or a callable f(slice) -> the (m, k) log-probabilities of those
    rows (so a calibrator on memory-mapped logits is applied block by block).
    labels: (n,) int. metric_names: names of :data:`_NAMED` (accuracy, nll, brier, ece,
    ece_mass, ece_l2, ece_debiased, mce, classwise_ece); binned ones use ``n_bins``.
    estimates: optional {name: {metric: value}} (the plug-in values; computed from the
    sufficient statistics otherwise).
    Returns ({name: {metric: Interval}}, {name: {metric: PairedInterval}}, info) where info
    says the scheme, method and number of resamples.
    """
    _check_level(confidence, n_resamples, method)
    names = list(predictions)
    y = np.asarray(labels)
    n = y.shape[0]
    sources = []
    for name in names:
        src = predictions[name]
        if callable(src):
            k = np.asarray(src(slice(0, 1))).shape[1]
            sources.append(_Source.from_log_probs(src, n, k))
        else:
            arr = src
            sources.append(_Source.from_log_probs(lambda s, a=arr: a[s], arr.shape[0], arr.shape[1]))
    y = check_labels(y, n, sources[0].k)
    specs = []
    for _name in names:
        row = []
        for key in metric_names:
            fn, kw = _resolve(key, {} if key in ("accuracy", "nll", "brier") else {"n_bins": n_bins})
            spec = _Spec.of(fn, kw)
            if spec is None:
                raise InputError(f"metric_names: {key!r} has no sufficient-statistics form")
            row.append(spec)
        specs.append(row)
    sch = _scheme(scheme, n)
    eng = _Engine(sources, y, specs, n_resamples, seed, sch, method == "bca")
    est = {}
    for i, name in enumerate(names):
        est[name] = {}
        for j, key in enumerate(metric_names):
            if estimates and key in estimates.get(name, {}):
                est[name][key] = float(estimates[name][key])
            else:
                spec = specs[i][j]
                est[name][key] = float(_finish(spec, eng.ones, eng.design.offsets[i][spec.group()], sources[i].k))
    table, paired = {}, {}
    for i, name in enumerate(names):
        table[name] = {}
        for j, key in enumerate(metric_names):
            lo, hi = _interval(eng.values(i, j), est[name][key], confidence, method, eng.jackknife(i, j))
            table[name][key] = Interval(lo, hi, est[name][key], confidence, int(n_resamples), method, sch)
    if reference is not None:
        r = names.index(reference)
        for i, name in enumerate(names):
            if i == r:
                continue
            paired[name] = {}
            for j, key in enumerate(metric_names):
                if paired_names is not None and key not in paired_names:
                    continue
                jack = eng.jackknife(i, j) - eng.jackknife(r, j) if method == "bca" else None
                paired[name][key] = _paired(eng.values(r, j), eng.values(i, j), est[name][key] - est[reference][key],
                                            confidence, n_resamples, method, sch, jack)
    info = {"n_resamples": int(n_resamples), "scheme": sch, "method": method, "confidence": confidence,
            "seed": seed, "one_set_of_weights": True}
    return table, paired, info
