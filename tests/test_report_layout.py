"""Report layout without a browser: tables fitted to the page (calibrate.report.html.fit_table),
sections' lead and collapsed keys, and figure legends drawn outside every plot."""

import numpy as np
import pytest
from conftest import make_logits
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from calibrate import softmax
from calibrate.report import figures
from calibrate.report.html import (
    PAGE_BUDGET_PX,
    column_widths,
    fit_table,
    prepare_sections,
    render_html,
)


def _table(ncols, nrows=3, ci=True):
    header = ["prediction"] + [f"column name {j}" for j in range(ncols)]
    rows = [{"cls": "best" if i == 0 else "", "cells": [{"text": f"row{i}"}] + [
        {"text": f"{i}.{j:04d}", "ci": "[0.1111, 0.2222]" if ci else "", "cls": "better"} for j in range(ncols)]}
        for i in range(nrows)]
    return {"header": header, "rows": rows, "caption": "cap"}


def test_a_narrow_table_is_left_alone():
    t = _table(3)
    assert fit_table(t) == [t]


@pytest.mark.parametrize("ncols", [12, 30, 101])
def test_a_wide_table_is_split_keeping_every_cell_in_order(ncols):
    t = _table(ncols)
    parts = fit_table(t)
    assert len(parts) > 1
    for p in parts:
        assert "wide" in p["cls"]
        assert p["header"][0] == "prediction" and [r["cells"][0]["text"] for r in p["rows"]] == ["row0", "row1", "row2"]
        assert [r["cls"] for r in p["rows"]] == ["best", "", ""]
        assert sum(column_widths(p)) * (0.8 / 0.88) <= PAGE_BUDGET_PX  # each part fits at the smaller font
    assert [h for p in parts for h in p["header"][1:]] == t["header"][1:]  # a brute-force re-join
    for i, r in enumerate(t["rows"]):
        assert [c for p in parts for c in p["rows"][i]["cells"][1:]] == r["cells"][1:]
    assert parts[0]["caption"] == "cap" and parts[1]["caption"].startswith("cap (continued, part 2 of")


def test_column_widths_count_wrapping_headers_and_long_cells():
    t = {"header": ["a very long header"], "rows": [{"cells": [{"text": "x" * 10, "ci": "y" * 20}]}]}
    (w,) = column_widths(t)
    assert w == column_widths({"header": ["header"], "rows": [{"cells": [{"text": "y" * 17}]}]})[0]
    long = column_widths({"header": ["h"], "rows": [{"cells": [{"text": "z" * 500}]}]})[0]
    assert long == column_widths({"header": ["h"], "rows": [{"cells": [{"text": "z" * 24}]}]})[0]


def test_prepare_sections_fills_defaults_and_leaves_the_input_alone():
    s = {"id": "a", "title": "A", "tables": [_table(40)]}
    out = prepare_sections([s])[0]
    assert s == {"id": "a", "title": "A", "tables": [_table(40)]}
    assert out["collapsed"] is False and out["lead"] is False and out["pre"] == "" and len(out["tables"]) > 1
    assert len(prepare_sections([s], fit=False)[0]["tables"]) == 1


def test_lead_and_collapsed_sections_in_the_html():
    html = render_html("T", [{"id": "s", "title": "Sum", "lead": True, "summary": [("k", "v")]},
                             {"id": "c", "title": "Closed", "collapsed": True, "paragraphs": ["hidden text"]},
                             {"id": "p", "title": "Plain"}])
    assert '<section id="s" class="lead">' in html and '<section id="p">' in html
    i, j = html.index('<details class="collapsed" id="c">'), html.index("</details>")
    assert i < html.index("hidden text") < j and "<summary><h2>Closed</h2></summary>" in html[i:j]
    assert "beforeprint" in html
    assert "<script" not in render_html("T", [{"id": "p", "title": "Plain"}])  # no script without <details>


def test_a_long_cell_wraps():
    html = render_html("T", [{"id": "a", "title": "A", "tables": [
        {"header": ["n", "p"], "rows": [{"cells": [{"text": "x"}, {"text": "w " * 40}]}]}]}])
    assert '<td class=" wrap">' in html and "<td>x</td>" in html


# ------------------------------------------------------------------ legends
@pytest.fixture(scope="module")
def pred():
    z, y = make_logits(n=1500, k=4, temperature=2.0, seed=3)
    return softmax(z), y


def _outside_every_axes(fig, legend):
    FigureCanvasAgg(fig).draw()
    box = legend.get_window_extent()
    for ax in fig.axes:
        a = ax.get_window_extent()
        overlap = min(box.x1, a.x1) - max(box.x0, a.x0) > 0.5 and min(box.y1, a.y1) - max(box.y0, a.y0) > 0.5
        assert not overlap, (ax.get_title(), box, a)


def test_reliability_figure_has_one_legend_below_the_panels(pred):
    p, y = pred
    fig = figures.reliability_figure({"a": p, "b": p ** 2 / (p ** 2).sum(1, keepdims=True)}, y)
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"accuracy", "gap", "perfect calibration"} <= set(labels)
    _outside_every_axes(fig, fig.legends[0])


def test_single_reliability_diagram_legend_is_beside_the_axes(pred):
    p, y = pred
    fig = Figure(layout="constrained")
    ax = fig.add_subplot()
    figures.plot_reliability(figures.reliability_data(p, y, 10), ax)
    _outside_every_axes(fig, ax.get_legend())


def test_smooth_and_risk_coverage_legends_are_outside(pred):
    p, y = pred
    b = [figures.reliability_data(p, y, 10, label="a")]
    s = [figures.smooth_reliability_data(p, y, label="a")]
    fig = figures.binned_and_smooth_figure(b, s)
    assert len(fig.legends) == 1 and all(ax.get_legend() is None for ax in fig.axes)
    _outside_every_axes(fig, fig.legends[0])
    conf, correct = p.max(1), (p.argmax(1) == y)
    fig = figures.risk_coverage_figure([figures.risk_coverage_data(conf, correct, label="a")])
    _outside_every_axes(fig, fig.axes[0].get_legend())
    h = figures.score_histogram_data(np.sort(conf)[::2], np.sort(conf)[1::2], label="msp")
    fig = figures.score_histogram_figure([h, h])
    assert len(fig.legends) == 1
    _outside_every_axes(fig, fig.legends[0])
