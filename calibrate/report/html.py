"""Reliability reports: a metrics table with bootstrap intervals, paired differences,
reliability diagrams and a per-class table, as ONE self-contained HTML file (figures
embedded as base64 PNG, no outside resources) and, when asked, a JSON file with the same numbers.
"""

from __future__ import annotations

import base64
import datetime as _dt
import importlib.metadata
import json
import os
import platform
import shlex
import struct
import sys
from pathlib import Path

import numpy as np

from calibrate._core.machine import cpu_model
from calibrate.metrics import calibration as metrics
from calibrate.report.beyond import beyond_report
from calibrate.report.classes import (
    ALL_CLASSES_MAX_K,
    BOOTSTRAP_CLASSWISE_MAX_K,
    CLASS_TABLE_MAX_ROWS,
    class_heatmap_figure,
    class_ranking,
    select_classes,
)
from calibrate.report.digest import class_intervals, classwise_figure, report_digests
from calibrate.report.figures import figure_to_png, reliability_figure
from calibrate.resampling.tables import METRIC_KEYS, PAIRED_KEYS, report_numbers

HIGHER_IS_BETTER = {"accuracy"}


# ------------------------------------------------------------------------ numbers
def per_class_table(predictions: dict, labels, n_bins: int = 15) -> list[dict]:
    """Per class: support, observed frequency, mean predicted probability and class ECE
    of each prediction ({name: (n, k) probs})."""
    names = list(predictions)
    first = np.asarray(predictions[names[0]])
    y = np.asarray(labels)
    rows = []
    for j in range(first.shape[1]):
        hit = (y == j).astype(int)
        row = {"class": j, "support": int(hit.sum()), "frequency": float(hit.mean())}
        for name in names:
            pj = np.asarray(predictions[name])[:, j]
            row[f"mean_p[{name}]"] = float(pj.mean())
            row[f"ece[{name}]"] = metrics.ece_from_confidences(pj, hit, n_bins)
        rows.append(row)
    return rows


def environment() -> dict:
    def version(pkg):
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return None

    cpu = cpu_model()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "bits": struct.calcsize("P") * 8,
        "packages": {p: version(p) for p in ("calibrate", "numpy", "scipy", "scikit-learn", "matplotlib", "torch", "jinja2")},
    }


def display_path(name: str) -> str:
    """A path as given, except an absolute one, shown relative to the working directory
    (``runs/x``, ``../shared/data``): a report never shows the machine's absolute paths."""
    if not name or not os.path.isabs(name):
        return name
    try:
        return os.path.relpath(Path(name).resolve(), Path.cwd().resolve())
    except (ValueError, OSError):  # another drive (Windows), no working directory
        return name


def _display_arg(arg: str) -> str:
    """A command-line argument, an absolute path in it (``/a/b``, ``--opt=/a/b``) shown by
    :func:`display_path`; only paths that exist, or whose folder exists, are rewritten."""
    head, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
    if not eq:
        head, value = "", arg
    if not os.path.isabs(value) or not (os.path.exists(value) or os.path.isdir(os.path.dirname(value))):
        return arg
    return head + eq + display_path(value)


def command_line() -> str:
    """The command that made the report, with absolute paths shown relative to the working directory."""
    prog = Path(sys.argv[0]).name if sys.argv else "python"
    if prog in ("cli.py", "__main__.py") and "calibrate" in str(Path(sys.argv[0]).parent):
        prog = "calibrate"  # run as python -m calibrate.cli: the same command
    return " ".join([prog] + [shlex.quote(_display_arg(a)) for a in sys.argv[1:]])


# ------------------------------------------------------------------------ HTML
def _fmt(x, digits=4):
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "—"
    return f"{x:.{digits}f}"


def _png(fig, alt, caption="", dpi=110):
    data = figure_to_png(fig, dpi)
    w, h = struct.unpack(">II", data[16:24])
    return {"png": base64.b64encode(data).decode("ascii"), "alt": alt, "caption": caption, "width": w, "height": h}


def metrics_table(rows: dict, keys=METRIC_KEYS, caption="") -> dict:
    """rows: {name: {metric: {"estimate", "low", "high"}}} -> a table for the template."""
    header = ["prediction"] + [metrics.METRIC_NAMES[k] for k in keys]
    best = {}
    for k in keys:
        vals = {n: r[k]["estimate"] for n, r in rows.items()}
        best[k] = (max if k in HIGHER_IS_BETTER else min)(vals, key=vals.get)
    body = []
    for name, r in rows.items():
        cells = [{"text": name}]
        for k in keys:
            c = r[k]
            mark = "*" if c.get("widened") else ""
            if c.get("low") is None:  # a point estimate only (not resampled)
                cells.append({"text": _fmt(c["estimate"]), "ci": "(no interval)",
                              "cls": "better" if best[k] == name and len(rows) > 1 else ""})
                continue
            cells.append({"text": _fmt(c["estimate"]), "ci": f"[{_fmt(c['low'])}, {_fmt(c['high'])}]{mark}",
                          "cls": "better" if best[k] == name and len(rows) > 1 else ""})
        body.append({"cells": cells})
    return {"header": header, "rows": body, "caption": caption}


def paired_table(diffs: dict, reference: str, keys=PAIRED_KEYS, *, names=None, first: str = "prediction",
                 caption: str | None = None) -> dict:
    """The table of paired differences {name: {key: {estimate, low, high, p_value?}}} against
    ``reference``: a row per name, a column per key (names: key -> column title, default
    calibrate.metrics.METRIC_NAMES), green / red where the interval excludes 0."""
    keys = [k for k in keys if all(k in d for d in diffs.values())]
    names = metrics.METRIC_NAMES if names is None else names
    header = [first] + [f"Δ {names[k]}" for k in keys]
    body = []
    for name, d in diffs.items():
        cells = [{"text": f"{name} − {reference}"}]
        for k in keys:
            c = d[k]
            sig = c["high"] < 0 or c["low"] > 0
            good = (c["estimate"] > 0) == (k in HIGHER_IS_BETTER)
            cls = ("better" if good else "worse") if sig else ""
            p = c.get("p_value")
            cells.append({"text": f"{c['estimate']:+.4f}",
                          "ci": f"[{c['low']:+.4f}, {c['high']:+.4f}]" + (f" p={p:.3f}" if p is not None else ""),
                          "cls": cls})
        body.append({"cells": cells})
    if caption is None:
        caption = (f"Paired differences against {reference} on the same bootstrap resamples "
                   "(green: better beyond the noise at 95 %, red: worse).")
    return {"header": header, "rows": body, "caption": caption}


def _interval_words(boot: dict) -> str:
    method = {"bca": "BCa (bias-corrected and accelerated, Efron 1987)", "percentile": "percentile",
              "basic": "basic"}[boot["method"]]
    scheme = {"multinomial": "multinomial (classical) resampling of the rows",
              "poisson": "Poisson(1) weights per row (Poisson bootstrap)"}[boot["scheme"]]
    return (f"{round(100 * boot['confidence'])} % {method} bootstrap intervals, {boot['n_resamples']} resamples, "
            f"{scheme}, seed {boot['seed']}")


# Page-fit estimates (px) for the template's CSS at a 1280 px window: the body is at most
# 1280 px wide less its padding and a scroll bar; a table's width is the sum of its columns.
PAGE_BUDGET_PX = 1150
WRAP_CHARS = 40  # a cell with more characters than this wraps (class "wrap", about 24 characters wide)
_PX_PER_CHAR = 7.2  # 0.88em Helvetica/Arial: digits 7.8 px, "." 3.9 px, lower case about 7 px
_CI_RATIO = 0.85  # the interval under a value is set at 0.85 of the cell's font size
_CELL_PAD_PX = 20  # 2 x 0.6em padding and the border
_WIDE_SCALE = 0.8 / 0.88  # the font of a table of class "wide"


def _cell_chars(cell) -> float:
    text = str(cell.get("text", ""))
    n = min(len(text), 24) if len(text) > WRAP_CHARS else len(text)
    return max(n, _CI_RATIO * len(str(cell.get("ci") or "")))


def column_widths(table: dict) -> list[float]:
    """Estimated width in px of each column of ``table`` (header cells wrap at spaces)."""
    ncol = max([len(table["header"])] + [len(r["cells"]) for r in table["rows"]])
    chars = [0.0] * ncol
    for j, h in enumerate(table["header"]):
        chars[j] = max((len(w) for w in str(h).split()), default=0)
    for r in table["rows"]:
        for j, c in enumerate(r["cells"]):
            chars[j] = max(chars[j], _cell_chars(c))
    return [c * _PX_PER_CHAR + _CELL_PAD_PX for c in chars]


def column_groups(widths, budget, keep: int = 1) -> list[list[int]]:
    """Split the columns after the first ``keep`` into consecutive groups, each of which with
    the ``keep`` first columns is at most ``budget`` wide (a column wider alone gets its own)."""
    groups, cur, used = [], [], sum(widths[:keep])
    for j in range(keep, len(widths)):
        if cur and used + widths[j] > budget:
            groups.append(cur)
            cur, used = [], sum(widths[:keep])
        cur.append(j)
        used += widths[j]
    return groups + [cur] if cur else groups


def split_columns(table: dict, groups: list[list[int]], keep: int = 1) -> list[dict]:
    """One table per column group, each starting with the first ``keep`` columns; every row
    and every cell kept, in order; the caption of the parts after the first says so."""
    out = []
    for g, cols in enumerate(groups):
        idx = list(range(keep)) + cols
        part = {**table, "header": [table["header"][j] for j in idx if j < len(table["header"])],
                "rows": [{**r, "cells": [r["cells"][j] for j in idx if j < len(r["cells"])]} for r in table["rows"]]}
        if g and table.get("caption"):
            part["caption"] = f"{table['caption']} (continued, part {g + 1} of {len(groups)})"
        out.append(part)
    return out


def fit_table(table: dict, budget_px: float = PAGE_BUDGET_PX, keep: int = 1) -> list[dict]:
    """``table`` as one or more tables each about ``budget_px`` wide or less (:func:`column_widths`).

    A table too wide at the normal font gets the smaller font (class "wide"); one still too
    wide is split into column groups, each repeating the first ``keep`` columns (the row names).
    """
    widths = column_widths(table)
    if sum(widths) <= budget_px:
        return [table]
    wide = {**table, "cls": " ".join(c for c in ((table.get("cls") or ""), "wide") if c)}
    small = [w * _WIDE_SCALE for w in widths]
    if sum(small) <= budget_px or len(widths) <= keep + 1:
        return [wide]
    return split_columns(wide, column_groups(small, budget_px, keep), keep)


def prepare_sections(sections: list, fit: bool = True) -> list:
    """The sections with every key the template reads (missing ones empty) and, with ``fit``,
    every table fitted to the page width (:func:`fit_table`). The input dicts are not changed."""
    out = []
    for s in sections:
        s = {"paragraphs": [], "tables": [], "figures": [], "summary": [], "pre": "", "collapsed": False,
             "lead": False, **s}
        if fit:
            s["tables"] = [t for table in s["tables"] for t in fit_table(table)]
        out.append(s)
    return out


def render_report(title: str, sections: list, subtitle: str = "", *, pdf: bool = False, progress=None) -> tuple:
    """(the HTML page, the PDF bytes or None) of the sections (render_html and, when ``pdf``,
    calibrate.report.pdf.render_pdf); progress: None or a callable given one line."""
    html = render_html(title, sections, subtitle=subtitle)
    if not pdf:
        return html, None
    from calibrate.report.pdf import render_pdf

    if progress is not None:
        progress(f"laying out the PDF ({len(sections)} sections)")
    return html, render_pdf(title, sections, subtitle=subtitle)


def render_html(title: str, sections: list, subtitle: str = "") -> str:
    """The report as one self-contained HTML page.

    sections: dicts with id, title and any of paragraphs, summary, tables, figures, pre;
    ``"lead": True`` draws the section as the highlighted summary box, ``"collapsed": True``
    inside a closed ``<details>`` (opened when printing).
    """
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("calibrate.report", "templates"), autoescape=select_autoescape(["html"]))
    return env.get_template("report.html").render(title=title, subtitle=subtitle, sections=prepare_sections(sections),
                                                  wrap_chars=WRAP_CHARS)


def write_report(html_path, html: str, data: dict | None = None, json_path=None, inputs=(), pdf_path=None,
                 pdf: bytes | None = None) -> list[Path]:
    """Write the HTML, the numbers as JSON to ``json_path`` and the PDF bytes to ``pdf_path``
    (those given), as one unit.

    Nothing else is written (no file beside the HTML that was not named); an output that
    is one of ``inputs`` is refused. The files are committed together (calibrate.io.outputs):
    never a new JSON or PDF beside an old HTML. Returns the paths written.
    """
    from calibrate.io.outputs import write_outputs

    if (pdf_path is None) != (pdf is None):
        raise ValueError("write_report: give both pdf_path and pdf, or neither")
    outputs = {html_path: html}
    if json_path is not None:
        if data is None:
            raise ValueError("write_report: json_path given without data")
        data = {**data, "html": os.path.basename(os.fspath(html_path))}  # which HTML these numbers belong to
        if pdf_path is not None:
            data["pdf"] = os.path.basename(os.fspath(pdf_path))
        outputs[json_path] = json.dumps(_jsonable(data), indent=1, allow_nan=False) + "\n"
    if pdf_path is not None:
        outputs[pdf_path] = bytes(pdf)
    return write_outputs(outputs, inputs)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not np.isfinite(x):
        return None
    return x


def _chunks(items, size):
    return [items[i:i + size] for i in range(0, len(items), size)]


# ------------------------------------------------------------------------ the report
def calibration_report(test_logits, test_labels, calibrators: dict, **kw):
    """Build the report of ``calibrators`` ({name: fitted Calibrator}) on test logits: the
    HTML page of :func:`calibration_report_sections` (which see for the keywords).
    Returns (html, data): the HTML text and the JSON-able dict of the same numbers.
    """
    sections, subtitle, data = calibration_report_sections(test_logits, test_labels, calibrators, **kw)
    return render_html(data["title"], sections, subtitle=subtitle), data


def calibration_report_sections(test_logits, test_labels, calibrators: dict, *, data_name: str = "", fit_name: str = "",
                       n_bins: int = 15, n_resamples: int = 1000, seed: int = 0, class_names=None,
                       title: str = "Calibration report", started: float | None = None,
                       ood_logits=None, ood_name: str = "", conformal_alpha: float | None = None,
                       fit_logits=None, fit_labels=None, method: str = "bca", scheme: str = "auto",
                       classes: str = "auto", groups=None, grouped=None):
    """Build the report of ``calibrators`` ({name: fitted Calibrator}) on test logits.

    test_logits: (n, k) float logits, read in row blocks (a memory-mapped .npy stays so):
    each prediction is summarised in one pass (:func:`calibrate.report.digest.report_digests`),
    so the working memory is O(n + k x n_bins) per prediction, never (n, k) (except the
    columns of every class with classes="all");
    ood_logits: (m, k) logits of out-of-distribution inputs (adds the detection section);
    conformal_alpha: miscoverage of the conformal sets section, calibrated on
    (fit_logits, fit_labels) when given, else on a seeded half of the test rows
    (see :mod:`calibrate.report.beyond`).
    classes: "auto" (every class up to ALL_CLASSES_MAX_K classes; beyond, the classes that
    matter, a heat map and a searchable table: :func:`large_k_class_section`) or "all"
    (every class's panel and row at any k).
    groups: optional (n,) group array or {column: (n,) array}: adds the per-group section
    (:mod:`calibrate.report.groups`) of the uncalibrated and the best prediction.
    grouped: optional (global calibrator, fitted GroupedCalibrator, (n,) group keys of the
    test rows): adds the per-group recalibration section (grouped vs global, paired
    intervals: :func:`calibrate.report.groups.grouped_section`).
    Returns (sections, subtitle, data): the report's sections (for :func:`render_html` and
    :func:`calibrate.report.pdf.render_pdf`, with ``data["title"]``), its subtitle, and the
    JSON-able dict of the same numbers.
    """
    import time

    t0 = started if started is not None else time.time()
    group_columns = groups  # the name ``groups`` is taken below by chunks of predictions
    data_name = display_path(data_name)
    ood_name = display_path(ood_name)
    fit_name = ", ".join(display_path(part) for part in fit_name.split(", ")) if fit_name else fit_name
    y = np.asarray(test_labels)
    n, k = np.shape(test_logits)
    large = classes != "all" and k > ALL_CLASSES_MAX_K
    # every section reads the digests: one pass over the rows per prediction, nothing (n, k)
    # kept but the columns of the classes shown (calibrate.report.digest)
    probs, _ = report_digests(test_logits, y, calibrators, n_bins, classes=classes)
    names = list(probs)
    cnum = {nm: probs[nm].class_numbers(y) for nm in names}
    keys = METRIC_KEYS if k <= BOOTSTRAP_CLASSWISE_MAX_K else [m for m in METRIC_KEYS if m != "classwise_ece"]
    est = {nm: probs[nm].estimates(cnum[nm]["classwise_ece"]) for nm in names}
    preds = {nm: probs[nm].source() for nm in names}
    table, diffs, boot = report_numbers(preds, y, n_bins, n_resamples, seed=seed, method=method, scheme=scheme,
                                        estimates=est, keys=keys)
    if "classwise_ece" not in keys:  # shown as a point estimate (its sums are O(k bins) per resample)
        for nm in names:
            r = table[nm]
            r["classwise_ece"] = {"estimate": est[nm]["classwise_ece"], "low": None, "high": None,
                                  "confidence": boot["confidence"], "method": "not resampled"}
            table[nm] = {m: r[m] for m in METRIC_KEYS}
    classes_json = [{"class": j, "support": int(cnum[names[0]]["support"][j]),
                     "frequency": float(cnum[names[0]]["frequency"][j]),
                     **{f"mean_p[{nm}]": float(cnum[nm]["mean_p"][j]) for nm in names},
                     **{f"ece[{nm}]": float(cnum[nm]["ece"][j]) for nm in names}} for j in range(k)]
    params = {name: {"method": cal.name, **cal.get_params(), **cal.summary()} for name, cal in calibrators.items()}
    decomp = {nm: probs[nm].decomposition(cnum[nm]["decomposition"], est[nm]["brier"]) for nm in names}
    beyond, decomposition_table, beyond_sections = beyond_report(
        preds, y, test_logits, calibrators, n_bins=n_bins, n_resamples=n_resamples, seed=seed,
        ood_logits=ood_logits, ood_name=ood_name, conformal_alpha=conformal_alpha, fit_logits=fit_logits,
        fit_labels=fit_labels, fit_name=fit_name, probs=probs, decomposition=decomp)

    data = {
        "title": title,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "data": data_name, "fit_on": fit_name or None, "n": n, "k": k, "bins": n_bins,
        "bootstrap": {**boot, "interval": boot["method"]},
        "metrics": table, "paired_differences_vs_uncalibrated": diffs, "per_class": classes_json,
        "calibrators": params, "command": command_line(), "environment": environment(),
    }
    data.update(beyond)

    figs = [_png(reliability_figure({nm: probs[nm].reliability_data(n_bins, label=nm) for nm in group}, y, n_bins),
                 f"Reliability diagrams: {', '.join(group)}",
                 "Bars: accuracy per confidence bin; hatched: the gap to the diagonal; below: "
                 "the fraction of samples per bin.")
            for group in _chunks(names, 4)]
    best = min((nm for nm in names if nm != "uncalibrated"), key=lambda nm: table[nm]["ece"]["estimate"], default=None)
    cname = (lambda j: class_names[j]) if class_names is not None else str
    if large:
        class_section, data["classes_shown"] = large_k_class_section(
            probs, y, cnum, best, n_bins=n_bins, n_resamples=n_resamples, seed=seed, scheme=boot["scheme"],
            class_names=class_names)
    else:
        figs_cw = [_png(classwise_figure(probs["uncalibrated"], y, class_names, n_bins=10,
                                         suptitle="uncalibrated, class-wise"),
                        "Class-wise reliability diagrams, uncalibrated")]
        if best:
            figs_cw.append(_png(classwise_figure(probs[best], y, class_names, n_bins=10,
                                                 suptitle=f"{best}, class-wise"),
                                f"Class-wise reliability diagrams, {best}"))
        class_tables = []
        groups = _chunks(names, 4)  # at most 3 + 8 columns a table: it fits a 1280 px page
        for g, group in enumerate(groups):
            class_rows = []
            for r in classes_json:
                cells = [{"text": cname(r["class"])}, {"text": str(r["support"])}, {"text": _fmt(r["frequency"])}]
                cells += [{"text": _fmt(r[f"mean_p[{nm}]"])} for nm in group]
                cells += [{"text": _fmt(r[f"ece[{nm}]"])} for nm in group]
                class_rows.append({"cells": cells})
            class_tables.append({"header": ["class", "support", "frequency"] + [f"mean P ({nm})" for nm in group]
                                 + [f"ECE ({nm})" for nm in group], "rows": class_rows,
                                 "caption": f"Part {g + 1} of {len(groups)}: {', '.join(group)}" if len(groups) > 1 else ""})
        class_section = {"id": "classes", "title": "Per class", "tables": class_tables, "figures": figs_cw,
                         "collapsed": True}
        data["classes_shown"] = {"rule": "all", "shown": list(range(k))}
    param_rows = [{"cells": [{"text": nm}, {"text": p["method"]},
                             {"text": ", ".join(f"{a} = {b:.4g}" if isinstance(b, float) else f"{a} = {b}"
                                                for a, b in p.items() if a != "method")}]}
                  for nm, p in params.items()]
    acc = table["uncalibrated"]["accuracy"]
    env = data["environment"]
    data["wall_seconds"] = round(time.time() - t0, 2)
    summary = [("data", data_name or "—"), ("calibrators fitted on", fit_name or "—"), ("n", f"{n:,}"), ("classes", k),
               ("accuracy", f"{acc['estimate']:.4f}  (95 % CI {acc['low']:.4f} – {acc['high']:.4f})"),
               ("binning", f"{n_bins} equal-width bins, top-label, unless the column says otherwise"),
               ("intervals", _interval_words(boot))]
    sections = [
        {"id": "summary", "title": "Summary", "summary": summary, "lead": True},
        {"id": "metrics", "title": "Metrics with 95 % confidence intervals",
         "paragraphs": [_interval_words(boot) + ". Every interval and every paired difference below comes from "
                        "the same resample weights, applied to per-sample sufficient statistics (bin, confidence, "
                        "correctness, NLL and Brier terms). The plug-in ECE is biased upward by the noise in each "
                        "bin, so most resamples lie above it and a percentile interval can miss it; the BCa "
                        "interval corrects for that bias (z0) and for skewness (the jackknife acceleration). An "
                        "interval marked * was widened to contain its estimate (a degenerate bias correction)."],
         "tables": [metrics_table(table, caption="Lower is better except accuracy; green marks the best in each column."),
                    decomposition_table]},
        {"id": "paired", "title": "Is the improvement larger than the noise?", "tables": [paired_table(diffs, "uncalibrated")]} if diffs else None,
        {"id": "reliability", "title": "Reliability diagrams", "figures": figs},
        beyond_sections.get("smooth"), beyond_sections.get("selective"), beyond_sections.get("ood"),
        beyond_sections.get("conformal"),
        class_section,
        {"id": "calibrators", "title": "Fitted calibrators", "collapsed": True,
         "tables": [{"header": ["name", "method", "parameters"], "rows": param_rows}]} if params else None,
        {"id": "provenance", "title": "How this report was made", "collapsed": True,
         "summary": [("command", data["command"]), ("created", data["created"]),
                     ("time taken", f"{data['wall_seconds']:.1f} s"),
                     ("machine", f"{env['cpu']}, {env['cores']} cores, {env['platform']}"),
                     ("versions", ", ".join(f"{a} {b}" for a, b in env["packages"].items() if b))]},
    ]
    sections = [s for s in sections if s]
    if group_columns is not None:  # before the provenance section; from (n,) per-row values only
        from calibrate.report.groups import groups_section

        shown = [nm for nm in dict.fromkeys(["uncalibrated", best]) if nm]
        rows = {nm: np.stack([probs[nm].confidence, probs[nm].correct, probs[nm].nll, probs[nm].brier]) for nm in shown}
        gsec, data["groups"] = groups_section(rows, group_columns,
                                              n_bins=n_bins, n_resamples=n_resamples, seed=seed)
        sections.insert(len(sections) - 1, gsec)
    if grouped is not None:
        from calibrate.report.groups import grouped_section

        gs, data["grouped_recalibration"] = grouped_section(*grouped, test_logits, y, n_bins=n_bins,
                                                            n_resamples=n_resamples, seed=seed)
        sections.insert(len(sections) - 1, gs)
    return sections, f"{data_name} — n = {n:,}, k = {k}", data


def large_k_class_section(probs: dict, y, cnum: dict, best: str | None, *, n_bins: int = 15,
                          n_resamples: int = 1000, seed: int = 0, scheme: str = "auto", class_names=None):
    """The per-class section beyond ALL_CLASSES_MAX_K classes: (section, what was shown).

    Shown: the classes that matter for the uncalibrated model (:func:`select_classes`: the
    largest per-class ECE, then the most frequent) as one table with bootstrap intervals
    (:func:`class_ece_intervals`, those classes only) and reliability panels (uncalibrated,
    and the calibrator of lowest ECE), at most CLASS_PANELS each; a heat map of every
    class's ECE; a compact table of up to CLASS_TABLE_MAX_ROWS classes (by decreasing
    uncalibrated ECE), searchable and sortable in the page. The JSON holds every class.
    probs: {name: :class:`calibrate.report.digest.Digest` holding the columns of the classes shown}.
    """
    names = list(probs)
    ref = cnum["uncalibrated"]
    k = ref["ece"].size
    cname = (lambda j: str(class_names[j])) if class_names is not None else str
    sel = select_classes(ref["ece"], ref["support"])
    shown = sel["shown"]
    iv = {nm: class_intervals(probs[nm], y, shown, n_bins, n_resamples, seed=seed, scheme=scheme) for nm in names}
    header = ["class", "why shown", "support"] + [f"ECE ({nm})" for nm in names] + [f"mean P ({nm})" for nm in names]
    rows = []
    for j in shown:
        why = "largest ECE" if j in sel["largest_ece"] else "most frequent"
        cells = [{"text": cname(j)}, {"text": why}, {"text": f"{int(ref['support'][j]):,}"}]
        cells += [{"text": _fmt(iv[nm][j]["estimate"]), "ci": f"[{_fmt(iv[nm][j]['low'])}, {_fmt(iv[nm][j]['high'])}]"}
                  for nm in names]
        cells += [{"text": _fmt(float(cnum[nm]["mean_p"][j]))} for nm in names]
        rows.append({"cells": cells})
    shown_table = {"header": header, "rows": rows,
                   "caption": f"The {len(sel['largest_ece'])} classes of largest class-wise ECE (uncalibrated) and the "
                              f"{len(sel['most_frequent'])} most frequent others. ECE: {n_bins} equal-width bins of "
                              "P(class) against the class's indicator; below it, a 95 % percentile bootstrap interval "
                              f"({n_resamples} resamples, the metrics table's resample weights)."}
    order = class_ranking(ref["ece"])
    listed = order[:CLASS_TABLE_MAX_ROWS]
    all_rows = [{"cells": [{"text": cname(int(j))}, {"text": str(int(ref["support"][j]))}]
                 + [{"text": _fmt(float(cnum[nm]["ece"][j]))} for nm in names]} for j in listed]
    all_table = {"header": ["class", "support"] + [f"ECE ({nm})" for nm in names], "rows": all_rows,
                 "interactive": True, "html_only": True,
                 "caption": (f"All {k:,} classes" if listed.size == k else
                             f"The {listed.size:,} classes of largest ECE (uncalibrated) of {k:,}")
                 + ", by decreasing uncalibrated ECE: type in the box to filter by class, click a column "
                   "heading to sort. Point estimates."}
    panels = [_png(classwise_figure(probs["uncalibrated"], y, class_names, n_bins=10, classes=shown,
                                    ncols=4, suptitle="uncalibrated, class-wise: the classes shown"),
                   "Class-wise reliability diagrams of the classes shown, uncalibrated")]
    if best:
        panels.append(_png(classwise_figure(probs[best], y, class_names, n_bins=10, classes=shown,
                                            ncols=4, suptitle=f"{best}, class-wise: the classes shown"),
                           f"Class-wise reliability diagrams of the classes shown, {best}"))
    heat_names = ["uncalibrated"] + ([best] if best else [])
    heat = _png(class_heatmap_figure({nm: cnum[nm]["ece"] for nm in heat_names}),
                "Per-class ECE of every class (heat map)",
                f"Every class's ECE ({n_bins} equal-width bins, one-vs-rest), one cell per class in class order; "
                "one color scale for all panels.")
    left_out = k - len(shown)
    words = (f"k = {k:,} classes: this section shows {len(shown)} classes in detail (the "
             f"{len(sel['largest_ece'])} of largest class-wise ECE of the uncalibrated model, and the "
             f"{len(sel['most_frequent'])} most frequent others), a heat map of every class's ECE, and "
             + (f"a table of all {k:,} classes" if listed.size == k else
                f"a table of the {listed.size:,} classes of largest ECE")
             + f". Left out: the panels and intervals of the other {left_out:,} classes"
             + ("" if listed.size == k else f", and the table rows of {k - listed.size:,} classes")
             + ". To see them: every class's support, mean probability and ECE is in the JSON (calibrate report "
               "--json FILE, key per_class); calibrate report --classes all draws every class (one panel each).")
    section = {"id": "classes", "title": "Per class", "paragraphs": [words], "tables": [shown_table, all_table],
               "figures": panels + [heat], "collapsed": True}
    return section, {"rule": "largest ECE and most frequent (uncalibrated)", **sel,
                     "table_rows": int(listed.size), "intervals": iv}
