"""The CIFAR-10 study's figures of calibration under shift and of OOD detection (matplotlib, no global state).

- ``severity_boxplot_figure``: a metric against shift severity, one box per method at each
  severity, each box over the corruptions (the layout of Ovadia et al. 2019, figure 2).
- ``roc_figure``: ROC curves of OOD detection, one panel per OOD set.
- ``shift_risk_coverage_figure``: risk-coverage curves at each severity, one panel per model.

Figures are ``matplotlib.figure.Figure`` objects; nothing here calls pyplot or changes
rcParams. Legends sit outside the axes, so they never cover a box or a curve.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from calibrate.report.figures import CURVE_COLORS, DIAG

METHOD_COLORS = CURVE_COLORS + ("#64B5CD", "#CCB974", "#1F3A5F", "#A0522D")


def severity_boxplot_figure(values: dict, *, ylabel: str = "ECE (%)", scale: float = 100.0, target=None,
                            size=(11.0, 4.4), title: str | None = None, target_label: str = "target") -> Figure:
    """values: {method label: {severity: sequence of values over corruptions}} (severity 0 =
    clean, one value). One group of boxes per severity (box: quartiles, whiskers: min-max,
    points: each corruption); ``target``: a horizontal reference line (e.g. nominal coverage)."""
    methods = list(values)
    severities = sorted({s for d in values.values() for s in d})
    m = len(methods)
    width = 0.8 / max(m, 1)
    fig = Figure(figsize=size, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    rng = np.random.default_rng(0)  # jitter of the points only
    for i, method in enumerate(methods):
        color = METHOD_COLORS[i % len(METHOD_COLORS)]
        pos, data = [], []
        for j, s in enumerate(severities):
            v = np.asarray(values[method].get(s, []), dtype=float) * scale
            if v.size:
                pos.append(j + (i - (m - 1) / 2) * width)
                data.append(v)
        if not data:
            continue
        bp = ax.boxplot(data, positions=pos, widths=width * 0.85, whis=(0, 100), patch_artist=True,
                        showfliers=False, manage_ticks=False)
        for patch in bp["boxes"]:
            patch.set(facecolor=color, alpha=0.55, edgecolor=color)
        for key in ("whiskers", "caps", "medians"):
            for line in bp[key]:
                line.set(color=color if key != "medians" else "#222222", linewidth=1.0)
        for p, v in zip(pos, data):
            ax.scatter(p + rng.uniform(-0.25, 0.25, v.size) * width, v, s=5, color=color, alpha=0.8,
                       linewidths=0, zorder=3)
        ax.plot([], [], color=color, linewidth=6, alpha=0.55, label=method)
    if target is not None:
        ax.axhline(target * scale, color=DIAG, linestyle="--", linewidth=1.0, label=target_label)
    ax.set_xticks(range(len(severities)))
    ax.set_xticklabels(["clean" if s == 0 else str(s) for s in severities])
    ax.set_xlabel("shift severity (boxes over the corruptions)")
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def roc_figure(panels: dict, *, ncols: int = 4, panel_size=(3.3, 3.2)) -> Figure:
    """panels: {panel title: {curve label: (fpr, tpr, auroc)}}; in-distribution = positive."""
    n = len(panels)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig = Figure(figsize=(panel_size[0] * ncols + 2.2, panel_size[1] * nrows), layout="constrained")
    labels = []
    for i, (title, curves) in enumerate(panels.items()):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        for j, (label, (fpr, tpr, auroc)) in enumerate(curves.items()):
            if label not in labels:
                labels.append(label)
            c = METHOD_COLORS[labels.index(label) % len(METHOD_COLORS)]
            ax.plot(fpr, tpr, color=c, linewidth=1.2)
            ax.text(0.98, 0.04 + 0.07 * j, f"{100 * auroc:.1f}", color=c, ha="right", fontsize=7,
                    transform=ax.transAxes, bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 0.5})
        ax.plot([0, 1], [0, 1], color=DIAG, linestyle=":", linewidth=0.8)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("false positive rate (OOD accepted)", fontsize=8)
        if i % ncols == 0:
            ax.set_ylabel("true positive rate (in-dist. accepted)", fontsize=8)
        ax.tick_params(labelsize=7)
    handles = [fig.axes[0].plot([], [], color=METHOD_COLORS[k % len(METHOD_COLORS)], linewidth=1.5)[0]
               for k in range(len(labels))]
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, frameon=False,
               title="score (AUROC % in each panel)", title_fontsize=8)
    return fig


def shift_risk_coverage_figure(curves: dict, *, panel_size=(4.2, 3.4)) -> Figure:
    """curves: {panel title (a model): {severity: (coverage (m,), risk (m,), aurc)}}."""
    n = len(curves)
    fig = Figure(figsize=(panel_size[0] * n + 1.4, panel_size[1]), layout="constrained")
    cmap = ("#1a9850", "#91cf60", "#d9ef8b", "#fee08b", "#fc8d59", "#d73027")
    for i, (title, by_sev) in enumerate(curves.items()):
        ax = fig.add_subplot(1, n, i + 1)
        for s, (cov, risk, a) in sorted(by_sev.items()):
            ax.plot(np.concatenate([[0.0], cov]), np.concatenate([[risk[0]], risk]), drawstyle="steps-pre",
                    color=cmap[min(int(s), len(cmap) - 1)], linewidth=1.3,
                    label=f"{'clean' if s == 0 else f'severity {s}'} (AURC {100 * a:.1f} %)")
        ax.set_xlim(0, 1)
        ax.set_ylim(bottom=0)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("coverage", fontsize=8)
        if i == 0:
            ax.set_ylabel("selective risk (error rate among accepted)", fontsize=8)
        ax.grid(True, color="#dddddd", linewidth=0.6)
        ax.tick_params(labelsize=7)
        ax.legend(loc="upper left", fontsize=7, frameon=True)
    return fig
