"""Figures: computed then drawn, no global matplotlib state touched, nothing saved."""

import matplotlib
import numpy as np
import pytest
from conftest import make_logits
from matplotlib.figure import Figure

from calibrate import metrics, softmax
from calibrate.report.figures import (
    classwise_reliability_figure,
    figure_to_png,
    plot_reliability,
    reliability_data,
    reliability_figure,
)


@pytest.fixture(scope="module")
def pred():
    z, y = make_logits(n=2000, k=4, temperature=2.0, seed=1)
    return softmax(z), y


def test_reliability_data_matches_the_metrics(pred):
    p, y = pred
    d = reliability_data(p, y, 10)
    c = metrics.reliability_curve(p, y, 10)
    np.testing.assert_array_equal(d.count, c.count)
    assert d.ece == metrics.ece(p, y, 10) and d.n == len(y)


def test_plot_draws_on_given_axes_and_returns_them(pred):
    p, y = pred
    fig = Figure()
    ax, hax = fig.subplots(2)
    out = plot_reliability(reliability_data(p, y, 10), ax, hax)
    assert out is ax
    assert len(ax.patches) >= 10 and len(hax.patches) == 10
    assert any("ECE" in t.get_text() for t in ax.texts)


def test_no_global_state_changes_and_no_files(pred, tmp_path, monkeypatch):
    p, y = pred
    monkeypatch.chdir(tmp_path)
    before = dict(matplotlib.rcParams)
    import matplotlib.pyplot as plt

    n_open = len(plt.get_fignums())
    fig = reliability_figure({"a": p, "b": p}, y)
    classwise_reliability_figure(p, y)
    assert dict(matplotlib.rcParams) == before
    assert len(plt.get_fignums()) == n_open  # not registered with pyplot
    assert list(tmp_path.iterdir()) == []
    png = figure_to_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_side_by_side_has_a_diagram_and_histogram_per_prediction(pred):
    p, y = pred
    fig = reliability_figure({"uncalibrated": p, "temperature": p, "isotonic": p}, y)
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[::2]] == ["uncalibrated", "temperature", "isotonic"]


def test_classwise_has_one_panel_per_class(pred):
    p, y = pred
    fig = classwise_reliability_figure(p, y, ["w", "x", "y", "z"])
    assert [ax.get_title() for ax in fig.axes] == ["w", "x", "y", "z"]
