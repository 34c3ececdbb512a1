"""Reliability diagrams and confidence histograms (matplotlib): compute, then draw.

``reliability_data`` computes what a diagram shows; ``plot_reliability`` draws it on
the axes it is given and returns them; ``reliability_figure`` lays out one or several
predictions side by side (the uncalibrated model and each calibrator), each with its
confidence histogram underneath, in the style of Guo et al. 2017 (accuracy bars, the gap
to the diagonal shaded) and scikit-learn's CalibrationDisplay.

Nothing here touches matplotlib's global state (no pyplot, no rcParams changes) or
saves a file: figures are ``matplotlib.figure.Figure`` objects the caller keeps or saves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from .. import metrics

BAR = "#4C72B0"
GAP = "#DD8452"
DIAG = "#555555"


@dataclass
class ReliabilityData:
    """What one reliability diagram shows (arrays of shape (n_bins,), NaN for empty bins)."""

    edges: np.ndarray
    count: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    ece: float
    n: int
    label: str = ""
    xlabel: str = "confidence"
    ylabel: str = "accuracy"


def reliability_data(probs, labels, n_bins: int = 15, *, binning: str = "width", class_index=None,
                     label: str = "") -> ReliabilityData:
    """Per-bin statistics and the ECE of one prediction (top-label, or one class)."""
    c = metrics.reliability_curve(probs, labels, n_bins, binning=binning, class_index=class_index)
    p = np.asarray(probs)
    y = np.asarray(labels)
    if class_index is None:
        e, xl, yl = metrics.ece(p, y, n_bins, binning=binning), "confidence", "accuracy"
    else:
        onehot = (y == class_index).astype(int)
        pj = p[:, class_index]
        e = metrics.ece_from_confidences(pj, onehot, n_bins, binning=binning) if pj.size else float("nan")
        xl, yl = f"P(class {class_index})", "observed frequency"
    return ReliabilityData(c.edges, c.count, c.confidence, c.accuracy, e, int(c.count.sum()), label, xl, yl)


def plot_reliability(data: ReliabilityData, ax, hist_ax=None, *, show_ece: bool = True, show_gap: bool = True):
    """Draw one reliability diagram on ``ax`` (and its histogram on ``hist_ax``). Returns ax."""
    left, width = data.edges[:-1], np.diff(data.edges)
    filled = data.count > 0
    acc = np.where(filled, data.accuracy, 0.0)
    conf = np.where(filled, data.confidence, 0.0)
    ax.bar(left, acc, width=width, align="edge", color=BAR, edgecolor="black", linewidth=0.6,
           label="accuracy" if data.ylabel == "accuracy" else "frequency", zorder=2)
    if show_gap:
        lo, hi = np.minimum(acc, conf), np.maximum(acc, conf)
        ax.bar(left[filled], (hi - lo)[filled], bottom=lo[filled], width=width[filled], align="edge",
               color=GAP, alpha=0.45, edgecolor="#C44E52", hatch="//", linewidth=0.6, label="gap", zorder=3)
    ax.plot([0, 1], [0, 1], linestyle="--", color=DIAG, linewidth=1.2, label="perfect calibration", zorder=4)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal", adjustable="box")
    ax.set_ylabel(data.ylabel)
    ax.grid(True, color="#dddddd", linewidth=0.6, zorder=0)
    ax.set_axisbelow(True)
    if data.label:
        ax.set_title(data.label)
    if show_ece and np.isfinite(data.ece):
        ax.text(0.04, 0.96, f"ECE = {100 * data.ece:.2f} %\nn = {data.n:,}", transform=ax.transAxes, va="top",
                ha="left", fontsize=9, bbox=dict(boxstyle="round,pad=0.3", facecolor="white", edgecolor="#999999"))
    ax.legend(loc="lower right", fontsize=8, frameon=True)
    if hist_ax is not None:
        plot_confidence_histogram(data, hist_ax)
    else:
        ax.set_xlabel(data.xlabel)
    return ax


def plot_confidence_histogram(data: ReliabilityData, ax):
    """Samples per bin (as a fraction of n), on ``ax``. Returns ax."""
    left, width = data.edges[:-1], np.diff(data.edges)
    frac = data.count / max(data.n, 1)
    ax.bar(left, frac, width=width, align="edge", color="#8C8C8C", edgecolor="black", linewidth=0.5)
    filled = data.count > 0
    if filled.any():
        mean_conf = float(np.sum(data.confidence[filled] * data.count[filled]) / data.n)
        ax.axvline(mean_conf, color=GAP, linewidth=1.2, linestyle="-", label=f"mean {data.xlabel}")
        mean_acc = float(np.sum(data.accuracy[filled] * data.count[filled]) / data.n)
        ax.axvline(mean_acc, color=BAR, linewidth=1.2, linestyle="--", label=f"mean {data.ylabel}")
        ax.legend(loc="upper left", fontsize=7, frameon=False)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, max(1e-9, float(frac.max())) * 1.15)
    ax.set_xlabel(data.xlabel)
    ax.set_ylabel("fraction")
    ax.grid(True, axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    return ax


def reliability_figure(predictions: dict, labels, n_bins: int = 15, *, binning: str = "width",
                       panel_size: float = 3.4, suptitle: str | None = None) -> Figure:
    """One column per prediction: reliability diagram above, confidence histogram below.

    predictions: {name: probs (n, k)} (all for the same labels).
    """
    items = list(predictions.items())
    fig = Figure(figsize=(panel_size * len(items), panel_size * 1.45), layout="constrained")
    grid = fig.add_gridspec(2, len(items), height_ratios=[3, 1])
    for j, (name, probs) in enumerate(items):
        ax = fig.add_subplot(grid[0, j])
        hax = fig.add_subplot(grid[1, j], sharex=ax)
        plot_reliability(reliability_data(probs, labels, n_bins, binning=binning, label=name), ax, hax)
        if j:
            ax.set_ylabel("")
            hax.set_ylabel("")
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def classwise_reliability_figure(probs, labels, class_names=None, n_bins: int = 10, *, ncols: int = 5,
                                 panel_size: float = 2.6, suptitle: str | None = None) -> Figure:
    """One diagram per class: P(class j) against the observed frequency of class j."""
    p = np.asarray(probs)
    k = p.shape[1]
    names = list(class_names) if class_names is not None else [str(j) for j in range(k)]
    nrows = int(np.ceil(k / ncols))
    fig = Figure(figsize=(panel_size * min(k, ncols), panel_size * nrows), layout="constrained")
    for j in range(k):
        ax = fig.add_subplot(nrows, min(k, ncols), j + 1)
        d = reliability_data(p, labels, n_bins, class_index=j, label=names[j])
        plot_reliability(d, ax)
        ax.get_legend().remove()
        ax.title.set_fontsize(9)
        ax.tick_params(labelsize=7)
        ax.xaxis.label.set_fontsize(8)
        ax.yaxis.label.set_fontsize(8)
        for t in ax.texts:
            t.set_fontsize(7)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def figure_to_png(fig: Figure, dpi: int = 110) -> bytes:
    """PNG bytes of a figure (no file is written)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
