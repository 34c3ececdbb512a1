"""Reliability diagrams and reports (imports matplotlib and Jinja2).

:mod:`calibrate.report.figures` computes then draws (Figure objects only, matplotlib's
global style untouched); :mod:`calibrate.report.html` builds the self-contained HTML file
and its JSON from the templates in ``templates/``.
"""

from . import figures, html
from .figures import (
    classwise_reliability_figure,
    plot_reliability,
    reliability_data,
    reliability_figure,
)
from .html import calibration_report, write_report

__all__ = [
    "calibration_report",
    "classwise_reliability_figure",
    "figures",
    "html",
    "plot_reliability",
    "reliability_data",
    "reliability_figure",
    "write_report",
]
