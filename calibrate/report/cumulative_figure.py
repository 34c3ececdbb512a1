"""The cumulative plot of Arrieta-Ibarra et al. 2022 (matplotlib): no bins, no bandwidth.

Each panel draws the cumulative differences C_k (:class:`calibrate.metrics.cumulative.
CumulativeCurve`) against the share k / n of rows (of weight) on the top axis; the bottom
axis labels the same positions with the scores S_k there. The slope of a secant is the
average miscalibration (outcome minus score) of the scores between its ends: rising where
outcomes exceed the scores (under-confident), falling where they fall short. The triangle
at the origin spans +-2 sigma (sigma: the standard deviation of C_n under perfect
calibration), the scale of a deviation expected by chance.

Nothing touches matplotlib's global state (no pyplot, no rcParams) or saves a file; the
figure is a ``matplotlib.figure.Figure`` of bounded size (at most 12 x 9 inches at 100 dpi)
that the caller saves.
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Polygon

from calibrate._core.validation import InputError
from calibrate.metrics.cumulative import CumulativeCurve, summarize_curve

LINE = "#222222"
TRIANGLE = "#999999"
_MAX_INCHES = (12.0, 9.0)
_DPI = 100


def decimate(x: np.ndarray, y: np.ndarray, max_points: int = 4000):
    """(x, y) with at most about ``max_points`` points that keep each chunk's minimum and
    maximum of y (in order), so the drawn curve has the same extremes and range."""
    n = x.shape[0]
    if n <= max_points:
        return x, y
    chunks = max(1, max_points // 2)
    bounds = np.linspace(0, n, chunks + 1).astype(np.intp)
    idx = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b <= a:
            continue
        lo, hi = a + int(np.argmin(y[a:b])), a + int(np.argmax(y[a:b]))
        idx.extend(sorted({lo, hi}))
    idx = np.unique(np.concatenate([[0], idx, [n - 1]]))
    return x[idx], y[idx]


def plot_cumulative(ax, curve: CumulativeCurve, *, title: str | None = None, n_ticks: int = 5,
                    max_points: int = 4000, show_stats: bool = True):
    """Draw one cumulative plot on ``ax`` (a matplotlib Axes) and return ``ax``."""
    if not isinstance(curve, CumulativeCurve):
        raise InputError(f"curve: expected a CumulativeCurve (calibrate.metrics.cumulative), got "
                         f"{type(curve).__name__}")
    x, y = decimate(curve.x, curve.y, max_points)
    ax.plot(x, y, color=LINE, linewidth=1.0)
    ax.axhline(0.0, color=TRIANGLE, linewidth=0.6, linestyle=":")
    s2 = 2.0 * curve.sigma
    if s2 > 0:
        ax.add_patch(Polygon([(0.0, -s2), (0.0, s2), (0.04, 0.0)], closed=True, facecolor=TRIANGLE,
                             edgecolor="none", alpha=0.8))
    top = max(float(np.max(curve.y)), s2, 0.0)
    bottom = min(float(np.min(curve.y)), -s2, 0.0)
    pad = 0.06 * (top - bottom) if top > bottom else 1e-3
    ax.set_ylim(bottom - pad, top + pad)
    ax.set_xlim(0.0, 1.0)
    # bottom axis: the score at evenly spaced shares of the rows
    n = curve.scores.shape[0]
    ticks = np.linspace(0.0, 1.0, max(2, n_ticks))
    at = np.clip(np.searchsorted(curve.x[1:], ticks, side="left"), 0, n - 1)
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{curve.scores[i]:.2f}" for i in at])
    ax.set_xlabel("score $S_k$")
    ax.set_ylabel("cumulative difference $C_k$")
    sec = ax.secondary_xaxis("top")
    sec.set_xlabel("$k/n$")
    if show_stats:
        st = summarize_curve(curve.y, curve.sigma, n)
        ratio = "inf" if math.isinf(st.ratio_r) else f"{st.ratio_r:.2f}"
        ax.text(0.98, 0.03, f"ECCE-R {st.ecce_r:.4f} = {ratio} $\\sigma$, p = {st.pvalue_r:.2g}",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return ax


def cumulative_figure(curves, *, ncols: int = 3, panel_size=(4.6, 3.4), suptitle: str | None = None,
                      max_points: int = 4000) -> Figure:
    """A Figure of cumulative plots: ``curves`` a CumulativeCurve or a dict {title: curve}
    (small multiples, ``ncols`` per row). Bounded to 12 x 9 inches at 100 dpi."""
    items = {"": curves} if isinstance(curves, CumulativeCurve) else dict(curves)
    if not items:
        raise InputError("curves: expected at least one cumulative curve")
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise InputError(f"ncols: expected a positive integer, got {ncols!r}")
    cols = min(ncols, len(items))
    rows = math.ceil(len(items) / cols)
    w = min(panel_size[0] * cols, _MAX_INCHES[0])
    h = min(panel_size[1] * rows + (0.4 if suptitle else 0.0), _MAX_INCHES[1])
    fig = Figure(figsize=(w, h), dpi=_DPI, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (name, curve) in zip(axes.ravel(), items.items()):
        plot_cumulative(ax, curve, title=name or None, max_points=max_points)
    for ax in axes.ravel()[len(items):]:
        ax.set_visible(False)
    if suptitle:
        fig.suptitle(suptitle)
    return fig
