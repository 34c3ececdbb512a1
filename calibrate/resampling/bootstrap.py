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

from calibrate._core import binning as _binning
from calibrate._core import stats as _stats
from calibrate._core.blocks import (
    BLOCK_BYTES,
    block_rows,
    one_blas_thread,
    row_blocks,
    worker_threads,
)
from calibrate._core.interval import Interval, PairedInterval
from calibrate._core.validation import (
    InputError,
    check_choice,
    check_confidence_level,
    check_labels,
    check_n_resamples,
    check_probs_labels,
    renamed_keywords,
)
from calibrate.metrics import calibration as metrics

SCHEMES = ("auto", "multinomial", "poisson")
METHODS = ("percentile", "bca", "basic")
AUTO_MULTINOMIAL_MAX_ROWS = 200_000
# Sizes from the package's block policy (calibrate._core.blocks.BLOCK_BYTES), larger
# multiples of it because each block here is one call into numpy's generator or
# scipy.sparse, whose per-call cost must stay small against the block's work:
_RESAMPLE_CHUNK_BYTES = 32 * BLOCK_BYTES  # multinomial: counts of a chunk of resamples (16 MiB: a chunk's
# temporaries are reused by the next, so a first call in a fresh process does not page-fault new memory)
_POISSON_BLOCK_BYTES = 32 * BLOCK_BYTES  # poisson: float64 weights of a block of rows x resamples (16 MiB)
_DESIGN_BLOCK_BYTES = 32 * BLOCK_BYTES  # rows of X built, or densified for the jackknife, at once (16 MiB)


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
    per = block_rows(n, 8, _RESAMPLE_CHUNK_BYTES)
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

    def stats_block(self, s, labels):
        """The :class:`calibrate._core.stats.Block` of rows s (labels: those rows' (m,))."""
        p, lp = self.block(s)
        return _stats.Block(p, labels, lp)

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
    """A metric as the finish of one statistic of :mod:`calibrate._core.stats`."""

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
        """The key of the statistic this metric finishes (shared by metrics of one statistic)."""
        if self.kind in ("accuracy", "nll", "brier"):
            return (self.kind,)
        return (self.kind, self.n_bins, self.binning)

    def finish(self, stat, S: np.ndarray) -> np.ndarray:
        """(...) metric values of the (..., stat.size) states S."""
        if self.kind in ("accuracy", "nll", "brier"):
            return stat.finish(S)
        return stat.finish(S, self.norm, self.debiased)


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
    (len(dense_cols) x m) for the columns every sample touches (counts, class totals)."""

    def __init__(self, sparse, dense, dense_cols):
        self.sparse, self.dense, self.dense_cols = sparse, dense, dense_cols

    @property
    def m(self):
        return self.sparse.shape[0]

    def toarray(self):
        out = self.sparse.toarray()
        out[:, self.dense_cols] += self.dense.T
        return out

    def weighted_sums(self, wt, out):
        """out (C, R) += X^T wt for weights wt (m, R)."""
        out += self.sparse.T @ wt
        if self.dense_cols.size:
            out[self.dense_cols] += self.dense @ wt

    def column_sums(self):
        out = np.asarray(self.sparse.sum(axis=0)).ravel()
        out[self.dense_cols] += self.dense.sum(axis=1)
        return out

    def group_sums(self, groups, n_groups):
        """(n_groups, C) sums of the rows of each group."""
        g = sp.csr_matrix((np.ones(self.m), (groups, np.arange(self.m))), shape=(n_groups, self.m))
        out = (g @ self.sparse).toarray()
        out[:, self.dense_cols] += g @ self.dense.T
        return out

    def __getitem__(self, s):
        return _Rows(self.sparse[s], self.dense[:, s], self.dense_cols)


class _Design:
    """The per-sample statistics X (n x C) of several predictions and metrics, in row blocks.

    Row i of X is row i's terms (:meth:`calibrate._core.stats.Statistic.terms`) of every
    statistic the metrics of every prediction finish, side by side: the resampled states
    are S = W X, the full-sample ones the column sums, a leave-one-out one their
    difference with row i.
    """

    def __init__(self, sources: list[_Source], y: np.ndarray, specs: list[list[_Spec]]):
        self.sources, self.y, self.n = sources, y, y.shape[0]
        self.layout, self.offsets, self.stats = _Layout(), [], []
        for i, (src, sp_list) in enumerate(zip(sources, specs)):
            offs, stats = {}, {}
            for g in sorted({s.group() for s in sp_list}, key=str):
                stats[g] = self._statistic(src, g)
                offs[g] = self.layout.add((i, g), stats[g].size)
            self.offsets.append(offs)
            self.stats.append(stats)
        self.width = self.layout.width
        self.dense_cols = np.concatenate([np.empty(0, np.intp)] + [
            offs[g] + stat.dense_cols for offs, stats in zip(self.offsets, self.stats) for g, stat in stats.items()])

    def _statistic(self, src, g):
        if g[0] == "accuracy":
            return _stats.Accuracy()
        if g[0] == "nll":
            return _stats.NLL()
        if g[0] == "brier":
            return _stats.Brier()
        n_bins, binning = g[1], g[2]
        if g[0] == "bins":
            if binning == "width":
                return _stats.Bins(_binning.equal_width_edges(n_bins))
            conf = np.concatenate([src.stats_block(s, self.y[s]).top()[0] for s in row_blocks(src.n, src.k)])
            return _stats.Bins(_binning.equal_mass_edges(conf, n_bins))
        if binning == "width":
            return _stats.ClasswiseBins(src.k, _binning.equal_width_edges(n_bins))
        # each class's own equal-mass edges: one pass per class, so one column in memory
        return _stats.ClasswiseBins(src.k, np.stack([
            _binning.equal_mass_edges(np.concatenate([src.block(s)[0][:, j] for s in row_blocks(src.n, src.k)]),
                                      n_bins) for j in range(src.k)]))

    def rows(self, s) -> _Rows:
        """X[s]."""
        m = s.stop - s.start
        r_all, c_all, v_all, d_all = [], [], [], []
        for src, offs, stats in zip(self.sources, self.offsets, self.stats):
            block = src.stats_block(s, self.y[s])
            for g, stat in stats.items():
                t = stat.terms(block)
                r_all.append(t.rows)
                c_all.append(t.cols + offs[g])
                v_all.append(t.vals)
                d_all.append(t.dense)
        r, c, v = np.concatenate(r_all), np.concatenate(c_all), np.concatenate(v_all)
        dense = np.concatenate(d_all) if d_all else np.empty((0, m))
        return _Rows(sp.csr_matrix((v, (r, c)), shape=(m, self.width)), dense, self.dense_cols)

    def blocks(self, rows_per_block):
        for start in range(0, self.n, rows_per_block):
            s = slice(start, min(self.n, start + rows_per_block))
            yield s, self.rows(s)

    def full(self) -> _Rows:
        parts = [x for _, x in self.blocks(block_rows(self.width, 8, _DESIGN_BLOCK_BYTES))]
        return _Rows(sp.vstack([x.sparse for x in parts], format="csr"), np.concatenate([x.dense for x in parts], 1),
                     self.dense_cols)

    def finish(self, i: int, spec: _Spec, S: np.ndarray) -> np.ndarray:
        """Values of metric ``spec`` of prediction i from the (..., C) column sums S."""
        g = spec.group()
        stat, off = self.stats[i][g], self.offsets[i][g]
        return spec.finish(stat, S[..., off:off + stat.size])


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
        rows = block_rows(self.R, 8, _POISSON_BLOCK_BYTES)
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
            rows = block_rows(d.width, 8, 2 * _DESIGN_BLOCK_BYTES)
            if self._X is not None:
                src = ((slice(a, min(self.n, a + rows)), self._X[a:a + rows]) for a in range(0, self.n, rows))
            else:
                src = d.blocks(rows)
            for s, x in src:
                D = self.ones[None, :] - x.toarray()
                for (i, j), arr in out.items():
                    spec = self.specs[i][j]
                    arr[s] = d.finish(i, spec, D)
            return out
        G = JACKKNIFE_GROUPS
        sums = self._group_sums
        if sums is None:
            sums = np.zeros((G, d.width))
            for s, x in d.blocks(block_rows(d.width, 8, _DESIGN_BLOCK_BYTES)):
                sums += x.group_sums(np.arange(s.start, s.stop) % G, G)
        D = self.ones[None, :] - sums
        return {(i, j): d.finish(i, self.specs[i][j], D) for (i, j) in keys}

    def _keys(self):
        return [(i, j) for i, sl in enumerate(self.specs) for j in range(len(sl))]

    def values(self, i, j) -> np.ndarray:
        spec = self.specs[i][j]
        return self.design.finish(i, spec, self.S)

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


@renamed_keywords(confidence="confidence_level")
def bca_levels(values, estimate, jackknife, confidence_level=0.95):
    """The two percentile levels of the BCa interval (Efron 1987; Efron & Tibshirani 1993,
    14.3): z0 from the share of ``values`` below ``estimate`` (ties half), acceleration from
    the (n,) leave-one-out values ``jackknife``. Level 0 or 1 when z0 is infinite."""
    values = np.asarray(values)
    share = (np.count_nonzero(values < estimate) + np.count_nonzero(values <= estimate)) / (2 * values.size)
    z0 = ndtri(share)
    u = np.mean(jackknife) - np.asarray(jackknife)
    den = np.sum(u**2)
    acc = float(np.sum(u**3) / (6.0 * den**1.5)) if den > 0 else 0.0
    za = ndtri((1 - confidence_level) / 2)
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

        def values(w):
            w = np.asarray(w, np.float64)
            out = np.zeros((d.width, w.shape[0]))
            X.weighted_sums(w.T, out)
            return d.finish(0, spec, out.T)

        return fn, kw, values

    def loop(w):
        out = np.empty(w.shape[0])
        for i, wi in enumerate(w):
            take = np.repeat(np.arange(p.shape[0]), wi.astype(np.int64))
            out[i] = fn(p[take], y[take], **kw)
        return out

    return fn, kw, loop


def _check_level(confidence, n_resamples, method="percentile"):
    check_confidence_level(confidence)
    check_n_resamples(n_resamples)
    check_choice(method, "method", METHODS)


def _weights(n, n_resamples, seed, scheme):
    rng = np.random.default_rng(seed)
    if _scheme(scheme, n) == "multinomial":
        yield from _count_chunks(n, n_resamples, rng)
    else:
        per = block_rows(n, 8, _RESAMPLE_CHUNK_BYTES)
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


@renamed_keywords(confidence="confidence_level")
def bootstrap_ci(metric, probs, labels, n_resamples: int = 1000, confidence_level: float = 0.95, seed: int = 0,
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
    confidence = confidence_level
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


@renamed_keywords(confidence="confidence_level")
def paired_bootstrap_ci(metric, probs_a, probs_b, labels, n_resamples: int = 1000, confidence_level: float = 0.95,
                        seed: int = 0, *, log_probs_a=None, log_probs_b=None, method: str = "percentile",
                        scheme: str = "auto", **metric_kwargs) -> PairedInterval:
    """Interval of metric(b) - metric(a) when a and b predict the same samples.

    Both are evaluated on the same resamples, so the noise they share cancels: the
    question "is calibrator b better than a, beyond the noise of the test set?" is
    answered by whether the interval excludes 0 (see ``p_value``).
    """
    confidence = confidence_level
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


@renamed_keywords(confidence="confidence_level")
def bootstrap_many(predictions: dict, labels, metric_names, n_resamples: int = 1000, confidence_level: float = 0.95,
                   seed: int = 0, *, n_bins: int = 15, reference: str | None = None, paired_names=None,
                   method: str = "bca", scheme: str = "auto", estimates: dict | None = None):
    """Intervals of many metrics of many predictions of the same rows from ONE set of
    resample weights, and paired differences against ``reference`` on those same resamples.

    predictions: {name: source}; a source is an (n, k) array of log-probabilities (or
    logits: normalised), or a callable f(slice) -> the (m, k) log-probabilities of those
    rows (so a calibrator on memory-mapped logits is applied block by block), or an
    object with ``n``, ``k``, ``block(s)`` and ``stats_block(s, labels)`` -> a
    :class:`calibrate._core.stats.Block` (rows given by their values:
    :meth:`calibrate.report.digest.Digest.source`).
    labels: (n,) int. metric_names: names of :data:`_NAMED` (accuracy, nll, brier, ece,
    ece_mass, ece_l2, ece_debiased, mce, classwise_ece); binned ones use ``n_bins``.
    estimates: optional {name: {metric: value}} (the plug-in values; computed from the
    sufficient statistics otherwise).
    Returns ({name: {metric: Interval}}, {name: {metric: PairedInterval}}, info) where info
    says the scheme, method and number of resamples.
    """
    confidence = confidence_level
    _check_level(confidence, n_resamples, method)
    names = list(predictions)
    y = np.asarray(labels)
    n = y.shape[0]
    sources = []
    for name in names:
        src = predictions[name]
        if hasattr(src, "stats_block"):  # rows already summarised (calibrate.report.digest)
            sources.append(src)
        elif callable(src):
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
                est[name][key] = float(eng.design.finish(i, spec, eng.ones))
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
