"""The report's class-wise numbers at any k: computed once, shown within bounds.

:func:`class_numbers` makes ONE pass over each prediction's (n, k) probabilities and
keeps the per-(class, bin) sums that every class-wise quantity of the report needs: the
per-class ECE (one-vs-rest, equal-width bins: :func:`calibrate.metrics.ece_from_confidences`
of column j against [y = j]), their mean (the class-wise ECE), the per-class mean
probability, and Murphy's Brier decomposition (the sums of
:func:`calibrate.metrics.decomposition.brier_decomposition`). The metrics table, the
decomposition table and the per-class section all read these.

The per-class section shows every class when k <= ALL_CLASSES_MAX_K (or when asked,
``classes="all"``); beyond, it shows the classes that matter (:func:`select_classes`:
the largest per-class ECE, then the most frequent), at most CLASS_PANELS panels a
figure, with bootstrap intervals for those classes only (:func:`class_ece_intervals`),
a heat map of every class's ECE (bounded pixels whatever k), and a compact table of up
to CLASS_TABLE_MAX_ROWS classes, searchable and sortable in the page. The JSON holds
every class.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from calibrate._core import binning as _binning
from calibrate._core import stats as _stats
from calibrate._core.blocks import row_blocks

ALL_CLASSES_MAX_K = 20  # up to this many classes the section shows every class (as it always did)
CLASS_PANELS = 12  # beyond: at most this many class panels a figure
TOP_ECE_CLASSES = 8  # of which the classes of largest ECE (the rest: the most frequent)
CLASS_TABLE_MAX_ROWS = 5000  # the compact searchable table: at most this many classes
BOOTSTRAP_CLASSWISE_MAX_K = 100  # the metrics table resamples the class-wise ECE up to this k


def class_numbers(probs, labels, n_bins: int = 15) -> dict:
    """Per-class sums of (n, k) probabilities against labels (n,), in row blocks.

    Returns {"support" (k,) int, "frequency" (k,), "mean_p" (k,), "ece" (k,) per-class
    ECE, "classwise_ece" float (their mean), "decomposition": the dict of
    :func:`calibrate.metrics.decomposition.brier_decomposition` without "brier"}.
    """
    p = probs
    y = np.asarray(labels)
    n, k = p.shape
    edges = _binning.equal_width_edges(n_bins)
    sums = np.zeros((5, k * n_bins))
    offset = np.arange(k) * n_bins
    for s in row_blocks(n, k):
        add_class_sums(sums, np.asarray(p[s], dtype=np.float64), y[s], edges, offset)
    return class_numbers_from_sums(sums, y, n_bins)


def add_class_sums(sums, b, yb, edges, offset) -> None:
    """sums (5, k * n_bins) += the per-(class, bin) count, sum p, sum hit, sum p^2, sum p hit
    of the block b (m, k) float64 with labels yb (m,) (class-major: class j's bins at
    offset[j] = j * n_bins)."""
    size = sums.shape[1]
    m = b.shape[0]
    idx = _binning.bin_index(b, edges) + offset
    flat = idx.ravel()
    f = b.ravel()
    sums[0] += np.bincount(flat, minlength=size)
    sums[1] += np.bincount(flat, weights=f, minlength=size)
    sums[3] += np.bincount(flat, weights=f * f, minlength=size)
    hit = idx[np.arange(m), yb]  # the label's (class, bin): o = 1 there, 0 elsewhere
    sums[2] += np.bincount(hit, minlength=size)
    sums[4] += np.bincount(hit, weights=b[np.arange(m), yb], minlength=size)


def class_numbers_from_sums(sums, labels, n_bins: int) -> dict:
    """The dict of :func:`class_numbers` from the (5, k * n_bins) sums of :func:`add_class_sums`."""
    y = np.asarray(labels)
    n = y.shape[0]
    k = sums.shape[1] // n_bins
    cnt, sf, so, sff, sfo = (x.reshape(k, n_bins) for x in sums)
    per_class = _stats.calibration_error(cnt, sf, so, "l1", False, None)
    support = np.bincount(y, minlength=k)
    freq = support / n
    dec = {name: float(v) for name, v in _stats.brier_decomposition_terms(cnt, sf, so, sff, sfo).items()
           if name != "brier"}
    return {"support": support, "frequency": freq, "mean_p": sf.sum(axis=1) / n, "ece": per_class,
            "classwise_ece": float(per_class.mean()), "decomposition": dec}


def class_ranking(ece) -> np.ndarray:
    """Classes by decreasing per-class ECE (ties: the smaller index first)."""
    e = np.asarray(ece, dtype=np.float64)
    return np.lexsort((np.arange(e.size), -e))


def select_classes(ece, support, n_panels: int = CLASS_PANELS, n_top: int = TOP_ECE_CLASSES) -> dict:
    """The classes the section shows: the ``n_top`` of largest ECE, then the most frequent
    ones not already chosen, ``n_panels`` in all. Returns {"largest_ece": [...],
    "most_frequent": [...], "shown": [...] (in that order)}."""
    k = len(ece)
    top = [int(j) for j in class_ranking(ece)[:min(n_top, k)]]
    freq_order = np.lexsort((np.arange(k), -np.asarray(support)))
    frequent = [int(j) for j in freq_order if int(j) not in top][:max(0, min(n_panels, k) - len(top))]
    return {"largest_ece": top, "most_frequent": frequent, "shown": top + frequent}


def class_ece_intervals(probs, labels, classes, n_bins: int = 15, n_resamples: int = 1000,
                        confidence: float = 0.95, seed: int = 0, scheme: str = "auto") -> dict:
    """Percentile bootstrap intervals of the per-class ECE of the listed ``classes`` only.

    Resample weights: those of :func:`calibrate.resampling.bootstrap.bootstrap_many` with the same
    seed and scheme (the report's resamples). Per resample the bin sums of each class come
    from the dense sum of weighted p_ij (bin 0, which holds most rows, is the total minus
    the other bins) and a sparse part over the rows in bins above 0 and the label's bin.
    Returns {class: {"estimate", "low", "high", "confidence"}}.
    """
    import scipy.sparse as sp

    from calibrate.resampling.bootstrap import _scheme, _weights

    y = np.asarray(labels)
    n = y.shape[0]
    cls = np.asarray(classes, dtype=np.intp)
    m = cls.size
    if m == 0:
        return {}
    sch = _scheme(scheme, n)
    P = np.asarray(probs[:, cls], dtype=np.float64)  # (n, m)
    edges = _binning.equal_width_edges(n_bins)
    idx = _binning.bin_index(P, edges)  # (n, m)
    hit = y[:, None] == cls[None, :]
    col = idx + (np.arange(m) * n_bins)[None, :]
    rr, jj = np.nonzero(idx > 0)
    hr, hj = np.nonzero(hit)
    mb = m * n_bins
    # columns: count (mb), conf (mb), correct (mb) -- counts and conf of bin 0 derived below
    rows = np.concatenate([rr, rr, hr])
    cols = np.concatenate([col[rr, jj], mb + col[rr, jj], 2 * mb + col[hr, hj]])
    vals = np.concatenate([np.ones(rr.size), P[rr, jj], np.ones(hr.size)])
    X = sp.csr_matrix((vals, (rows, cols)), shape=(n, 3 * mb))
    est = _stats.calibration_error(*_sums(np.asarray(X.sum(axis=0)).ravel()[None], P.sum(axis=0)[None],
                                       np.array([float(n)]), m, n_bins), "l1", False)[0]
    draws = []
    for w in _weights(n, int(n_resamples), seed, sch):  # (r, n) weights
        S = np.asarray((X.T @ w.T).T)  # (r, 3 mb)
        tot_p = w @ P  # (r, m)
        draws.append(_stats.calibration_error(*_sums(S, tot_p, w.sum(axis=1), m, n_bins), "l1", False, None))
    d = np.concatenate(draws)  # (R, m)
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(d, [a, 1.0 - a], axis=0)
    return {int(j): {"estimate": float(est[i]), "low": float(lo[i]), "high": float(hi[i]), "confidence": confidence}
            for i, j in enumerate(cls)}


def _sums(S, tot_p, tot_w, m, n_bins):
    """(count, conf, correct), each (r, m, n_bins), from the sparse sums S (r, 3 m B), the
    weighted column totals tot_p (r, m) and the total weights tot_w (r,)."""
    r = S.shape[0]
    mb = m * n_bins
    cnt = S[:, :mb].reshape(r, m, n_bins).copy()
    conf = S[:, mb:2 * mb].reshape(r, m, n_bins).copy()
    corr = S[:, 2 * mb:].reshape(r, m, n_bins)
    cnt[..., 0] = np.maximum(tot_w[:, None] - cnt[..., 1:].sum(-1), 0.0)
    conf[..., 0] = np.where(cnt[..., 0] > 0, np.maximum(tot_p - conf[..., 1:].sum(-1), 0.0), 0.0)
    return cnt, conf, corr


def class_heatmap_figure(eces: dict, *, panel_size: float = 4.2, vmax: float | None = None) -> Figure:
    """Every class's ECE as a heat map, one panel per prediction ({name: (k,) per-class ECE}):
    class j at row j // c, column j % c of a c x c grid (c = ceil(sqrt(k))), one color
    scale for all panels; the pixel size depends on the number of predictions only."""
    names = list(eces)
    k = len(next(iter(eces.values())))
    c = int(np.ceil(np.sqrt(k)))
    top = vmax if vmax is not None else max(float(np.nanmax(v)) for v in eces.values()) or 1.0
    cols = min(len(names), 3)
    rows = int(np.ceil(len(names) / cols))
    fig = Figure(figsize=(panel_size * cols + 1.0, panel_size * rows), layout="constrained")
    im = None
    axes = []
    for i, name in enumerate(names):
        grid = np.full(c * c, np.nan)
        grid[:k] = eces[name]
        ax = fig.add_subplot(rows, cols, i + 1)
        im = ax.imshow(grid.reshape(c, c), cmap="viridis", vmin=0.0, vmax=top, interpolation="nearest",
                       extent=(-0.5, c - 0.5, c - 0.5, -0.5))
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(f"class mod {c}", fontsize=8)
        ax.set_ylabel(f"class // {c}", fontsize=8)
        ax.tick_params(labelsize=7)
        axes.append(ax)
    cb = fig.colorbar(im, ax=axes, shrink=0.8)
    cb.set_label("per-class ECE", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    return fig
