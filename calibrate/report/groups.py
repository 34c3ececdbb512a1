"""The report's groups section: calibration per group of rows (``--group-by``).

Built only from (n,) arrays per prediction (top-label confidence, correctness, per-row NLL
and Brier: :func:`calibrate.metrics.groups.row_values`) and the group columns, never from
(n, k) probabilities. Shows, for each prediction given:

- a table of the groups sorted by their ECE gap to the overall ECE (worst first), with
  95 % bootstrap intervals and paired gap intervals (:func:`calibrate.groups.group_metrics`),
  groups below the minimum count marked "too small" (numbers, no interval); at most
  ``max_rows`` rows (the JSON holds every group);
- small multiples of reliability diagrams of the worst groups (at most ``max_panels``
  panels of a bounded size: :func:`calibrate.report.figures.plot_reliability`);
- the cumulative plot (Arrieta-Ibarra et al. 2022: :mod:`calibrate.report.cumulative_figure`)
  of all rows beside each of the worst groups (at most ``max_cumulative`` groups).
"""

from __future__ import annotations

import base64
import struct

import numpy as np
from matplotlib.figure import Figure

from calibrate._core import binning as _binning
from calibrate.metrics.cumulative import cumulative_curve_from_scores
from calibrate.metrics.groups import MIN_COUNT, group_codes, row_values
from calibrate.report.cumulative_figure import cumulative_figure
from calibrate.report.figures import ReliabilityData, figure_to_png, reliability_panels
from calibrate.resampling.groups import group_metrics_from_rows

MAX_ROWS = 40
MAX_PANELS = 6
MAX_CUMULATIVE = 3
PANEL_INCHES = 2.6
NCOLS = 3


def prediction_rows(log_probs, labels) -> np.ndarray:
    """(4, n) per-row values of one prediction: ``log_probs`` (n, k) log-probabilities (or
    logits) or a callable f(slice) -> (m, k) log-probabilities; labels (n,) int."""
    return row_values(log_probs, np.asarray(labels), "log_probs")


def _png(fig, alt, caption="", dpi=100):
    data = figure_to_png(fig, dpi)
    w, h = struct.unpack(">II", data[16:24])
    return {"png": base64.b64encode(data).decode("ascii"), "alt": alt, "caption": caption, "width": w, "height": h}


def _fmt(x):
    return "—" if x is None or not np.isfinite(x) else f"{x:.4f}"


def _ci(lo, hi, signed=False):
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return ""
    f = "{:+.4f}" if signed else "{:.4f}"
    return f"[{f.format(lo)}, {f.format(hi)}]"


def groups_table(gm, max_rows: int = MAX_ROWS, caption: str = "") -> dict:
    """A template table of GroupMetrics ``gm``: groups by ECE gap, worst first."""
    j = {m: gm.metrics.index(m) for m in ("ece", "accuracy", "nll", "brier")}
    null = gm.null_mean is not None
    header = (["group", "n", "ECE", "ECE − overall"] + (["ECE if calibrated"] if null else [])
              + ["accuracy", "accuracy − overall", "NLL", "Brier"])
    rows = [{"cells": [{"text": "(all rows)"}, {"text": f"{int(gm.counts.sum()):,}"},
                       {"text": _fmt(gm.overall[j["ece"]]), "ci": _ci(gm.overall_low[j["ece"]], gm.overall_high[j["ece"]])},
                       {"text": ""}]
            + ([{"text": _fmt(gm.overall_null_mean[j["ece"]]), "ci": f"p = {gm.overall_p_calibrated[j['ece']]:.3f}"}]
               if null else [])
            + [{"text": _fmt(gm.overall[j["accuracy"]]),
                        "ci": _ci(gm.overall_low[j["accuracy"]], gm.overall_high[j["accuracy"]])},
                       {"text": ""}, {"text": _fmt(gm.overall[j["nll"]])}, {"text": _fmt(gm.overall[j["brier"]])}]}]
    order = gm.order("ece")
    for g in order[:max_rows]:
        small = bool(gm.small[g])
        name = gm.name(g) + (" (too small)" if small else "")
        cells = [{"text": name}, {"text": f"{int(gm.counts[g]):,}"}]
        for m in ("ece", "accuracy"):
            jm = j[m]
            worse = gm.beyond_noise(g, m)
            cells.append({"text": _fmt(gm.values[g, jm]), "ci": _ci(gm.low[g, jm], gm.high[g, jm])})
            cells.append({"text": f"{gm.gap[g, jm]:+.4f}", "ci": _ci(gm.gap_low[g, jm], gm.gap_high[g, jm], True),
                          "cls": "worse" if worse else ""})
            if m == "ece" and null:
                pv = gm.p_calibrated[g, jm]
                cells.append({"text": _fmt(gm.null_mean[g, jm]), "ci": f"p = {pv:.3f}" if np.isfinite(pv) else ""})
        cells += [{"text": _fmt(gm.values[g, j["nll"]])}, {"text": _fmt(gm.values[g, j["brier"]])}]
        rows.append({"cells": cells})
    more = len(order) - max_rows
    cap = caption + (f" {more:,} more groups are in the JSON." if more > 0 else "")
    return {"header": header, "rows": rows, "caption": cap.strip()}


def _reliability(conf, correct, n_bins, label) -> ReliabilityData:
    edges = _binning.equal_width_edges(n_bins)
    idx = _binning.bin_index(conf, edges)
    count = np.bincount(idx, minlength=n_bins).astype(np.int64)
    s_conf = np.bincount(idx, weights=conf, minlength=n_bins)
    s_corr = np.bincount(idx, weights=correct, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        c, a = s_conf / count, s_corr / count
    n = int(count.sum())
    ece = float(np.sum(np.abs(np.where(count > 0, s_corr - s_conf, 0.0))) / n) if n else float("nan")
    return ReliabilityData(edges, count, c, a, ece, n, label)


def reliability_small_multiples(rows, codes, gm, groups, n_bins: int = 15, suptitle: str = "") -> Figure:
    """Reliability diagrams of all rows and of ``groups`` (indices into gm), at most
    MAX_PANELS panels of PANEL_INCHES, NCOLS a row."""
    conf, correct = rows[0], rows[1]
    panels = [("all rows", slice(None))] + [(gm.name(g), codes == g) for g in groups[:MAX_PANELS - 1]]
    return reliability_panels([_reliability(conf[sel], correct[sel], n_bins, name[:40]) for name, sel in panels],
                              ncols=NCOLS, panel_size=PANEL_INCHES, suptitle=suptitle, title_size=8, suptitle_size=10,
                              suptitle_inches=0.3)


def cumulative_groups_figure(rows, codes, gm, groups, suptitle: str = "") -> Figure:
    """Cumulative plots (top-label confidence vs correctness) of all rows and of ``groups``
    (at most MAX_CUMULATIVE)."""
    conf, correct = rows[0], rows[1]
    curves = {"all rows": cumulative_curve_from_scores(conf, correct)}
    for g in groups[:MAX_CUMULATIVE]:
        sel = codes == g
        curves[gm.name(g)[:40]] = cumulative_curve_from_scores(conf[sel], correct[sel])
    return cumulative_figure(curves, ncols=2, panel_size=(4.2, 3.0), suptitle=suptitle or None)


def groups_section(rows: dict, groups, *, n_bins: int = 15, n_resamples: int = 1000, seed: int = 0,
                   min_count: int = MIN_COUNT, confidence_level: float = 0.95, max_rows: int = MAX_ROWS):
    """(section, data): the report section and the JSON of the per-group numbers.

    rows: {prediction name: (4, n) per-row values} (:func:`prediction_rows`); groups: one
    (n,) array or a dict {column: (n,) array} (their combinations are the groups).
    """
    first = next(iter(rows.values()))
    n = first.shape[1]
    codes, columns, labels = group_codes(groups, n)
    tables, figures, data = [], [], {}
    level = int(round(confidence_level * 100))
    for name, r in rows.items():
        gm = group_metrics_from_rows(r, codes, columns, labels, n_bins=n_bins, n_resamples=n_resamples,
                                     confidence_level=confidence_level, seed=seed, min_count=min_count)
        data[name] = gm.to_dict()
        tables.append(groups_table(gm, max_rows, caption=f"{name}: groups by their ECE beyond the calibrated null, worst "
                                   f"first; {level} % intervals below each number."))
        worst = gm.worst_groups("ece", MAX_PANELS - 1)
        if worst:
            figures.append(_png(reliability_small_multiples(r, codes, gm, worst, n_bins, suptitle=name),
                                f"Reliability diagrams of the worst groups, {name}",
                                f"{name}: all rows and the groups of largest ECE beyond the calibrated null (at least {min_count} rows)."))
            figures.append(_png(cumulative_groups_figure(r, codes, gm, worst, suptitle=name),
                                f"Cumulative plots of the worst groups, {name}",
                                "Cumulative differences of correctness minus confidence, rows sorted by confidence "
                                "(Arrieta-Ibarra et al. 2022): a steep stretch is miscalibration there; the "
                                "triangle spans ±2σ expected by chance."))
    n_small = int(np.sum(np.bincount(codes, minlength=len(labels)) < min_count))
    what = ", ".join(columns)
    para = (f"Rows grouped by {what}: {len(labels):,} groups (the combinations that occur), {n_small:,} of them "
            f"with fewer than {min_count} rows, marked too small: their numbers are shown without intervals "
            f"and they are never the worst group. Intervals: {level} % percentile bootstrap over the rows, "
            f"{n_resamples} resamples; a group's gap to all rows has a paired interval from the same resamples. "
            "A binned ECE is biased upward by the noise in its bins, the more so the fewer the rows, so a small "
            "group's ECE lies above the overall one even for a calibrated model. \"ECE if calibrated\" is the "
            "mean ECE of the group when every row's correctness is drawn from its own confidence (consistency "
            "resampling, Bröcker & Smith 2007), and p the share of those draws at least as large as the "
            f"observed ECE; groups are ranked by ECE minus that value, and a gap is in red when p < "
            f"{1 - confidence_level:.2f} (for accuracy: when its paired interval lies below 0).")
    section = {"id": "groups", "title": f"Calibration per group ({what})", "paragraphs": [para],
               "tables": tables, "figures": figures}
    return section, data


def grouped_section(global_cal, grouped_cal, group_keys, logits, labels, *, n_bins: int = 15,
                    n_resamples: int = 1000, seed: int = 0):
    """(section, data): a temperature (or any calibrator: its method is named in the text and
    in data["method"]) per group, shrunk toward the global fit
    (:class:`calibrate.calibrators.GroupedCalibrator`), against the global calibrator on
    each group's test rows: NLL and ECE of both and the paired difference grouped - global
    with its interval (:func:`calibrate.resampling.grouped.grouped_comparison`)."""
    from calibrate.resampling.grouped import grouped_comparison

    cmp = grouped_comparison(global_cal, grouped_cal, logits, labels, group_keys, n_bins=n_bins,
                             n_resamples=n_resamples, seed=seed)
    header = ["group", "n", "NLL global", "NLL grouped", "Δ NLL", "ECE global", "ECE grouped", "Δ ECE"]
    rows = []
    for r in [cmp["overall"]] + cmp["groups"]:
        cells = [{"text": r.get("group", "(all rows)") + ("" if r.get("seen", True) else " (unseen: global fit)")
                  + (" (too small)" if r.get("too_small") else "")}, {"text": f"{r['n']:,}"}]
        for key in ("nll", "ece"):
            d = (r.get("difference") or {}).get(key)
            cells += [{"text": _fmt(r["global"][key])}, {"text": _fmt(r["grouped"][key])}]
            if d is None:
                cells.append({"text": f"{r['grouped'][key] - r['global'][key]:+.4f}"})
            else:
                sig = d["high"] < 0 or d["low"] > 0
                cells.append({"text": f"{d['estimate']:+.4f}", "ci": _ci(d["low"], d["high"], True),
                              "cls": ("better" if d["estimate"] < 0 else "worse") if sig else ""})
        rows.append({"cells": cells})
    shrink = getattr(grouped_cal, "shrinkage_", None)
    temps = getattr(grouped_cal, "temperatures_", None)
    weights = getattr(grouped_cal, "weights_", None)
    method = getattr(getattr(grouped_cal, "global_", None), "name", "temperature")
    folds = getattr(grouped_cal, "cv", 5)
    if getattr(grouped_cal, "mode_", "temperature") == "temperature":
        para = ("A temperature per group, each pulled toward the global temperature (a penalty lambda (log T_g − "
                f"log T)² on the group's NLL, lambda chosen by {folds}-fold cross-validation on the fitting rows: "
                f"lambda = {shrink:g}" + (", i.e. one temperature for every group" if shrink == np.inf else ""))
    else:
        para = (f"A calibrator per group fitted by the {method} method, its probabilities mixed with those of the "
                f"global {method} fit: p = w_g p_g + (1 − w_g) p_0, w_g = n_g / (n_g + tau), tau chosen by "
                f"{folds}-fold cross-validation on the fitting rows: tau = {shrink:g}"
                + (", i.e. the global fit for every group" if shrink == np.inf else ""))
    para += ("), against the global calibrator, on each group's test rows. Δ = grouped − global with a paired "
             "bootstrap interval; green where the grouped fit is better beyond the noise, red where worse.")
    data = {**cmp, "method": method, "shrinkage": None if shrink is None else float(shrink),
            "temperatures": None if temps is None else [float(t) for t in np.ravel(temps)],
            "weights": None if weights is None else [float(w) for w in np.ravel(weights)]}
    section = {"id": "grouped", "title": "Per-group recalibration", "paragraphs": [para],
               "tables": [{"header": header, "rows": rows,
                           "caption": f"NLL and ECE ({n_bins} bins) of the global and the grouped {method} "
                                      "calibrator."}]}
    return section, data
