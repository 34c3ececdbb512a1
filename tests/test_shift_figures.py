"""Figures of calibration under shift and OOD detection: what they draw, and no global state."""

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from calibrate.apps.cifar10.figures import (
    roc_figure,
    severity_boxplot_figure,
    shift_risk_coverage_figure,
)


def test_boxplot_has_one_box_per_method_and_severity_and_leaves_rcparams_alone():
    before = dict(matplotlib.rcParams)
    values = {"a": {0: [0.01], 1: [0.02, 0.03, 0.05], 5: [0.1, 0.2]}, "b": {0: [0.02], 1: [0.01, 0.02], 5: [0.3]}}
    fig = severity_boxplot_figure(values, target=0.9)
    assert isinstance(fig, Figure) and dict(matplotlib.rcParams) == before
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["clean", "1", "5"]
    medians = sorted(round(line.get_ydata()[0], 6) for line in ax.lines if len(line.get_ydata()) == 2
                     and line.get_color() == "#222222")
    assert medians == sorted(round(100 * float(np.median(v)), 6) for d in values.values() for v in d.values())
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["a", "b", "target"]
    assert legend.get_bbox_to_anchor().x0 >= ax.get_window_extent().x1 - 1  # outside the axes: covers no box


def test_roc_figure_one_panel_per_set_with_the_auroc_shown():
    fpr = np.linspace(0, 1, 11)
    fig = roc_figure({"digits (far)": {"MSP": (fpr, np.sqrt(fpr), 0.667)}, "near": {"MSP": (fpr, fpr, 0.5)}})
    assert [ax.get_title() for ax in fig.axes] == ["digits (far)", "near"]
    assert "66.7" in [t.get_text() for t in fig.axes[0].texts]


def test_risk_coverage_panels_per_model_with_a_curve_per_severity():
    cov = np.linspace(0.1, 1, 10)
    fig = shift_risk_coverage_figure({"m": {0: (cov, cov * 0.1, 0.05), 3: (cov, cov * 0.3, 0.15)}})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["clean (AURC 5.0 %)", "severity 3 (AURC 15.0 %)"]
