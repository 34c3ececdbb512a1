"""Reliability diagrams and confidence histograms (matplotlib): compute, then draw.

``reliability_data`` computes what a diagram shows; ``plot_reliability`` draws it on
the axes it is given and returns them; ``reliability_figure`` lays out one or several
predictions side by side (the uncalibrated model and each calibrator), each with its
confidence histogram underneath, in the style of Guo et al. 2017 (accuracy bars, the gap
to the diagonal shaded) and scikit-learn's CalibrationDisplay.

Beyond ECE, in the same compute-then-draw pairs: risk-coverage curves with a bootstrap band
(``risk_coverage_data`` / ``plot_risk_coverage``), smoothed reliability diagrams
(``smooth_reliability_data`` / ``plot_smooth_reliability``, laid out under the binned ones by
``binned_and_smooth_figure``) and in- vs out-of-distribution score histograms
(``score_histogram_data`` / ``plot_score_histogram``).

Nothing here touches matplotlib's global state (no pyplot, no rcParams changes) or
saves a file: figures are ``matplotlib.figure.Figure`` objects the caller keeps or saves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure

from calibrate._core.validation import InputError, check_probs_labels
from calibrate.metrics import calibration as metrics

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
    if class_index is not None:
        p, y = check_probs_labels(probs, labels)
        if not 0 <= class_index < p.shape[1]:
            raise InputError(f"class_index: expected an integer in [0, {p.shape[1]}), got {class_index}")
        return _class_reliability(p, y, class_index, n_bins, binning, label)
    c = metrics.reliability_curve(probs, labels, n_bins, binning=binning)
    e = metrics.ece(np.asarray(probs), np.asarray(labels), n_bins, binning=binning)
    return ReliabilityData(c.edges, c.count, c.confidence, c.accuracy, e, int(c.count.sum()), label)


def _class_reliability(p, y, j, n_bins, binning, label) -> ReliabilityData:
    """reliability_data of class j from validated p (n, k), y (n,): one binning of the column
    gives the curve and the ECE (the sums of metrics.reliability_curve and
    metrics.ece_from_confidences)."""
    pj, hit = p[:, j], (y == j)
    stat, state = metrics.binned_state(pj, hit, n_bins, binning)
    edges, (count, s_conf, s_corr) = stat.edges, stat.sums(state)
    e = float(stat.finish(state)) if pj.size else float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        conf, acc = s_conf / count, s_corr / count
    return ReliabilityData(edges, count.astype(np.int64), conf, acc, e, int(count.sum()), label,
                           f"P(class {j})", "observed frequency")


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
    _legend_beside(ax)
    if hist_ax is not None:
        plot_confidence_histogram(data, hist_ax)
    else:
        ax.set_xlabel(data.xlabel)
    return ax


def _legend_beside(ax):
    """The legend right of the axes, outside them: it never covers a bar or a curve."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, fontsize=7, frameon=False)


def _legend_below(fig: Figure, axes) -> None:
    """One legend for the whole figure, under the panels (outside every axes): the per-axes
    legends of ``axes`` are removed and their entries shown once."""
    seen = {}
    for ax in axes:
        handles, labels = ax.get_legend_handles_labels()
        for h, lab in zip(handles, labels):
            seen.setdefault(lab, h)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if seen:
        ncols = max(1, min(len(seen), int(fig.get_figwidth() // 1.7)))
        fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncols=ncols, fontsize=8,
                   frameon=False)


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

    predictions: {name: probs (n, k), or its :class:`ReliabilityData` already made} (all for
    the same labels).
    """
    items = list(predictions.items())
    fig = Figure(figsize=(panel_size * len(items), panel_size * 1.45), layout="constrained")
    grid = fig.add_gridspec(2, len(items), height_ratios=[3, 1])
    for j, (name, probs) in enumerate(items):
        ax = fig.add_subplot(grid[0, j])
        hax = fig.add_subplot(grid[1, j], sharex=ax)
        data = probs if isinstance(probs, ReliabilityData) else reliability_data(probs, labels, n_bins,
                                                                                  binning=binning, label=name)
        plot_reliability(data, ax, hax)
        if j:
            ax.set_ylabel("")
            hax.set_ylabel("")
    _legend_below(fig, fig.axes)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


def classwise_reliability_figure(probs, labels, class_names=None, n_bins: int = 10, *, ncols: int = 5,
                                 panel_size: float = 2.6, suptitle: str | None = None, classes=None) -> Figure:
    """One diagram per class: P(class j) against the observed frequency of class j.

    classes: the class indices to draw, in order (default: every class)."""
    p, y = check_probs_labels(probs, labels)  # once, not once per class
    names = list(class_names) if class_names is not None else [str(j) for j in range(p.shape[1])]
    shown = list(range(p.shape[1])) if classes is None else [int(j) for j in classes]
    return reliability_panels([_class_reliability(p, y, j, n_bins, "width", names[j]) for j in shown], ncols=ncols,
                              panel_size=panel_size, suptitle=suptitle)


def reliability_panels(panels, *, ncols: int = 5, panel_size: float = 2.6, suptitle: str | None = None,
                       title_size: float = 9, suptitle_size: float | None = None,
                       suptitle_inches: float = 0.0) -> Figure:
    """Small multiples: one reliability diagram (no legend, small type) per
    :class:`ReliabilityData` of ``panels``, ``ncols`` to a row, each ``panel_size`` inches
    square (plus ``suptitle_inches`` of height for the title)."""
    m = len(panels)
    cols = max(1, min(m, ncols))
    nrows = max(1, -(-m // cols))
    fig = Figure(figsize=(panel_size * cols, panel_size * nrows + (suptitle_inches if suptitle else 0.0)),
                 layout="constrained")
    for i, d in enumerate(panels):
        ax = fig.add_subplot(nrows, cols, i + 1)
        plot_reliability(d, ax)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        ax.title.set_fontsize(title_size)
        ax.tick_params(labelsize=7)
        ax.xaxis.label.set_fontsize(8)
        ax.yaxis.label.set_fontsize(8)
        for t in ax.texts:
            t.set_fontsize(7)
    if suptitle:
        fig.suptitle(suptitle, **({} if suptitle_size is None else {"fontsize": suptitle_size}))
    return fig


def figure_to_png(fig: Figure, dpi: int = 110) -> bytes:
    """PNG bytes of a figure (no file is written)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


# ------------------------------------------------------------ risk-coverage curves
CURVE_COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")


@dataclass
class RiskCoverageData:
    """One risk-coverage curve (:func:`calibrate.metrics.selective.risk_coverage`) and its band.

    coverage, risk: (m,) one point per distinct confidence; grid, low, high: (g,) the
    pointwise bootstrap band on a coverage grid (None without a bootstrap); intervals:
    the table numbers of :func:`calibrate.resampling.selective.selective_intervals` (or None).
    """

    coverage: np.ndarray
    risk: np.ndarray
    aurc: float
    label: str = ""
    grid: np.ndarray | None = None
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    intervals: dict | None = None


def risk_coverage_data(confidence, correct, *, label: str = "", n_resamples: int = 0, seed: int = 0,
                       coverages=(0.8, 0.9), band_resamples: int | None = None) -> RiskCoverageData:
    """Curve of (n,) confidence scores and (n,) correctness, with intervals if n_resamples > 0.

    intervals: :func:`calibrate.resampling.selective.selective_intervals` (n_resamples; rows resampled up to
    200,000 rows, group counts beyond);
    the band: :func:`calibrate.resampling.selective.risk_coverage_band` (Poisson bootstrap resampled as
    counts of contiguous groups, ``band_resamples``, default n_resamples), O(G) per resample.
    """
    from calibrate.metrics import selective
    from calibrate.resampling import selective as resampled

    cov, risk = selective.risk_coverage(confidence, correct)
    if not n_resamples:
        return RiskCoverageData(cov, risk, selective.aurc(confidence, correct), label)
    iv = resampled.selective_intervals(confidence, correct, coverages=coverages, n_resamples=n_resamples, seed=seed)
    band = resampled.risk_coverage_band(confidence, correct, n_resamples=band_resamples or n_resamples, seed=seed)
    iv["band"] = {k: band[k] for k in ("n_groups", "n_resamples", "scheme")}
    return RiskCoverageData(cov, risk, iv["aurc"].estimate, label, band["coverage"], band["low"], band["high"],
                            iv)


def plot_risk_coverage(curves, ax, *, marks=(0.8, 0.9)):
    """Draw risk-coverage curves (a list of RiskCoverageData) on ``ax``, bands shaded. Returns ax."""
    for i, d in enumerate(curves):
        color = CURVE_COLORS[i % len(CURVE_COLORS)]
        style = ("-", "--", "-.", ":")[i % 4]
        if d.grid is not None:
            ax.fill_between(d.grid, d.low, d.high, color=color, alpha=0.18, linewidth=0, zorder=2)
        ax.plot(np.concatenate([[0.0], d.coverage]), np.concatenate([[d.risk[0]], d.risk]), color=color,
                linewidth=1.4, linestyle=style, drawstyle="steps-pre", label=f"{d.label}  (AURC {100 * d.aurc:.2f} %)", zorder=3)
    for m in marks:
        ax.axvline(m, color=DIAG, linestyle=":", linewidth=0.9, zorder=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("coverage (fraction of rows accepted, most confident first)")
    ax.set_ylabel("selective risk (error rate among accepted)")
    ax.grid(True, color="#dddddd", linewidth=0.6, zorder=0)
    ax.set_axisbelow(True)
    _legend_beside(ax)
    return ax


def risk_coverage_figure(curves, *, size=(8.0, 4.4), suptitle: str | None = None) -> Figure:
    """One axes with every curve (a list of RiskCoverageData)."""
    fig = Figure(figsize=size, layout="constrained")
    plot_risk_coverage(curves, fig.add_subplot(1, 1, 1))
    if suptitle:
        fig.suptitle(suptitle)
    return fig


# ------------------------------------------------------------ smoothed reliability
@dataclass
class SmoothReliabilityData:
    """A smoothed reliability diagram (:func:`calibrate.metrics.smooth.smooth_reliability`).

    x, y, density: (g,); lower, upper: (g,) bootstrap band or None; smece and its
    interval (smece_low, smece_high, NaN without a bootstrap) at the bandwidth sigma.
    """

    x: np.ndarray
    y: np.ndarray
    density: np.ndarray
    sigma: float
    smece: float
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    smece_low: float = float("nan")
    smece_high: float = float("nan")
    n: int = 0
    label: str = ""


def smooth_reliability_data(probs, labels, *, label: str = "", n_resamples: int = 0, seed: int = 0,
                            n_grid: int = 200, band_resamples: int | None = None) -> SmoothReliabilityData:
    """Top-label smoothed curve of probs (n, k) and labels (n,) (or (n,) confidences and (n,)
    0/1 correctness), with band and smECE interval.

    smECE interval: :func:`calibrate.resampling.smooth.smooth_ece_interval` (Poisson bootstrap as
    (cell, outcome) counts, n_resamples); band: :func:`calibrate.metrics.smooth.smooth_reliability_band` (Poisson bootstrap
    resampled as (cell, outcome) counts, ``band_resamples``, default n_resamples).
    """
    from calibrate.metrics import smooth
    from calibrate.resampling.smooth import smooth_ece_interval

    r = smooth.smooth_reliability(probs, labels, n_grid=n_grid)
    lo = hi = float("nan")
    lower = upper = None
    if n_resamples:
        iv = smooth_ece_interval(probs, labels, n_resamples=n_resamples, seed=seed, sigma=r.sigma)
        lo, hi = iv.low, iv.high
        lower, upper = smooth.smooth_reliability_band(probs, labels, r.sigma, r.x,
                                                      n_resamples=band_resamples or n_resamples, seed=seed)
    return SmoothReliabilityData(r.x, r.y, r.density, r.sigma, r.smece, lower, upper, lo, hi,
                                 int(np.asarray(labels).shape[0]), label)


SMOOTH_MIN_ROWS = 10  # the curve is drawn solid where at least this many rows lie within the kernel


def effective_rows(data: SmoothReliabilityData) -> np.ndarray:
    """(g,) about how many rows the kernel averages at each x: n density(x) sqrt(2 pi) sigma."""
    return data.n * np.asarray(data.density) * np.sqrt(2.0 * np.pi) * data.sigma


def plot_smooth_reliability(data: SmoothReliabilityData, ax, hist_ax=None):
    """Draw the smoothed curve and its band on ``ax`` (solid where the kernel holds at least
    SMOOTH_MIN_ROWS rows, dotted elsewhere), and the density of the confidences on
    ``hist_ax``. Returns ax."""
    ax.plot([0, 1], [0, 1], linestyle="--", color=DIAG, linewidth=1.2, label="perfect calibration", zorder=4)
    ok = effective_rows(data) >= SMOOTH_MIN_ROWS
    if data.lower is not None:
        ax.fill_between(data.x, data.lower, data.upper, where=ok, color=BAR, alpha=0.25, linewidth=0,
                        label="95 % band", zorder=2)
    ax.plot(data.x, np.where(ok, np.nan, data.y), color=BAR, linewidth=1.0, linestyle=":", zorder=3)
    ax.plot(data.x, np.where(ok, data.y, np.nan), color=BAR, linewidth=1.8, label="smoothed accuracy", zorder=3)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy (kernel-smoothed)")
    ax.grid(True, color="#dddddd", linewidth=0.6, zorder=0)
    ax.set_axisbelow(True)
    if data.label:
        ax.set_title(data.label)
    txt = f"smECE = {100 * data.smece:.2f} %"
    if np.isfinite(data.smece_low):
        txt += f"\n[{100 * data.smece_low:.2f}, {100 * data.smece_high:.2f}] %"
    txt += f"\nσ = {data.sigma:.3f}"
    ax.text(0.04, 0.96, txt, transform=ax.transAxes, va="top", ha="left", fontsize=9,
            bbox=dict(boxstyle="round,pad=0.3", facecolor="white", edgecolor="#999999"))
    _legend_beside(ax)
    if hist_ax is not None:
        hist_ax.fill_between(data.x, 0, data.density, color="#8C8C8C", alpha=0.6, linewidth=0)
        hist_ax.plot(data.x, data.density, color="black", linewidth=0.6)
        hist_ax.set_xlim(0, 1)
        hist_ax.set_ylim(bottom=0)
        hist_ax.set_xlabel("confidence")
        hist_ax.set_ylabel("density")
        hist_ax.grid(True, axis="y", color="#dddddd", linewidth=0.6)
        hist_ax.set_axisbelow(True)
        ax.set_xlabel("")
    return ax


def binned_and_smooth_figure(binned, smoothed, *, panel_size: float = 3.4, suptitle: str | None = None) -> Figure:
    """One column per prediction: the binned diagram (ReliabilityData) above its smoothed
    one (SmoothReliabilityData), the density of the confidences at the bottom."""
    fig = Figure(figsize=(panel_size * len(binned), panel_size * 2.35), layout="constrained")
    grid = fig.add_gridspec(3, len(binned), height_ratios=[3, 3, 0.9])
    for j, (b, s) in enumerate(zip(binned, smoothed)):
        ax = fig.add_subplot(grid[0, j])
        plot_reliability(b, ax)
        ax2 = fig.add_subplot(grid[1, j])
        hax = fig.add_subplot(grid[2, j], sharex=ax2)
        plot_smooth_reliability(s, ax2, hax)
        ax2.set_title("")
        if j:
            ax.set_ylabel("")
            ax2.set_ylabel("")
            hax.set_ylabel("")
    _legend_below(fig, fig.axes)
    if suptitle:
        fig.suptitle(suptitle)
    return fig


# ------------------------------------------------------------ OOD score histograms
@dataclass
class ScoreHistogramData:
    """Histograms of one detection score, in- vs out-of-distribution (densities on shared edges)."""

    edges: np.ndarray
    density_in: np.ndarray
    density_out: np.ndarray
    n_in: int
    n_out: int
    label: str = ""
    auroc: float = float("nan")


def score_histogram_data(scores_in, scores_out, *, label: str = "", n_bins: int = 50) -> ScoreHistogramData:
    """Shared equal-width edges over both (n_in,) and (n_out,) score arrays; densities integrate to 1."""
    from calibrate.metrics import ood

    s_in = np.asarray(scores_in, dtype=np.float64)
    s_out = np.asarray(scores_out, dtype=np.float64)
    lo = float(min(s_in.min(), s_out.min()))
    hi = float(max(s_in.max(), s_out.max()))
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, n_bins + 1)
    d_in, _ = np.histogram(s_in, edges, density=True)
    d_out, _ = np.histogram(s_out, edges, density=True)
    auroc = ood.detection_metrics(s_in, s_out)["auroc"]
    return ScoreHistogramData(edges, d_in, d_out, s_in.size, s_out.size, label, auroc)


def plot_score_histogram(data: ScoreHistogramData, ax):
    """Step histograms of in (blue) and out (orange) scores on ``ax``. Returns ax."""
    for d, color, name, n in ((data.density_in, BAR, "in-distribution", data.n_in),
                              (data.density_out, GAP, "out-of-distribution", data.n_out)):
        ax.stairs(d, data.edges, fill=True, color=color, alpha=0.35)
        ax.stairs(d, data.edges, color=color, linewidth=1.2, label=f"{name} (n = {n:,})")
    ax.set_xlabel(f"{data.label} (higher = more in-distribution)" if data.label else "score")
    ax.set_ylabel("density")
    if np.isfinite(data.auroc):
        ax.set_title(f"{data.label}: AUROC {100 * data.auroc:.1f} %", fontsize=10)
    ax.grid(True, axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.legend(loc="best", fontsize=7, frameon=False)
    return ax


def score_histogram_figure(histograms, *, ncols: int = 3, panel_size=(3.6, 2.7),
                           suptitle: str | None = None) -> Figure:
    """One panel per score (a list of ScoreHistogramData)."""
    k = len(histograms)
    cols = min(k, ncols)
    rows = int(np.ceil(k / cols))
    fig = Figure(figsize=(panel_size[0] * cols, panel_size[1] * rows), layout="constrained")
    for i, h in enumerate(histograms):
        plot_score_histogram(h, fig.add_subplot(rows, cols, i + 1))
    _legend_below(fig, fig.axes)
    if suptitle:
        fig.suptitle(suptitle)
    return fig
