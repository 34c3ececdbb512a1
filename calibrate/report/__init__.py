"""Reliability diagrams and reports (imports matplotlib and Jinja2).

:mod:`calibrate.report.figures` computes then draws (Figure objects only, matplotlib's
global style untouched); :mod:`calibrate.report.html` builds the self-contained HTML file
and its JSON from the templates in ``templates/``; :mod:`calibrate.report.pdf` lays the same
sections out as an A4 PDF (matplotlib only).
"""

from calibrate.report import figures, html, pdf
from calibrate.report.figures import (
    classwise_reliability_figure,
    plot_reliability,
    reliability_data,
    reliability_figure,
)
from calibrate.report.html import (
    calibration_report,
    calibration_report_sections,
    render_html,
    write_report,
)
from calibrate.report.pdf import render_pdf

__all__ = [
    "calibration_report",
    "calibration_report_sections",
    "classwise_reliability_figure",
    "figures",
    "html",
    "pdf",
    "plot_reliability",
    "reliability_data",
    "reliability_figure",
    "render_html",
    "render_pdf",
    "write_report",
]
