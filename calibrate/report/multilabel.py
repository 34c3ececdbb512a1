"""The multi-label report: (n, L) independent sigmoid outputs, per-label calibrators.

Numbers (:func:`multilabel_report_numbers`): for the uncalibrated model and each calibrator,
the per-label ECE, Brier and NLL of :func:`calibrate.metrics.multilabel.multilabel_metrics`,
their macro averages (mean over labels) and micro averages (the n L pooled pairs), with
95 % percentile bootstrap intervals. Each resample reweights ROWS (all L labels of a row
together, so the correlation between labels is kept), with the weights of
:func:`calibrate.resampling.bootstrap.bootstrap_many` (the same seed and scheme, the same
weights for every prediction, so the paired differences against the uncalibrated model
come from the same resamples). Per resample with row weights w (sum W), equal-width bins:

    ECE_j  = sum_b |sum_i w_i (y_ij - p_ij) [p_ij in bin b]| / W
    micro  = sum_b |sum_i w_i sum_j (y_ij - p_ij) [p_ij in bin b]| / (W L)
    Brier_j = sum_i w_i (p_ij - y_ij)^2 / W,   NLL_j likewise with the binary log loss

(the bin sums are one sparse (n, L B) matrix product per block of resamples, blocks of at
most RESAMPLE_BLOCK_BYTES of sums; the sparse matrix holds n L values).

Sections (:func:`multilabel_report_sections`, the dicts ``render_html`` / ``render_pdf``
take): a summary; the macro / micro table with intervals and the paired differences; the
labels of largest uncalibrated ECE (at most WORST_LABELS) with intervals and their
reliability diagrams (uncalibrated and the calibrator of lowest macro ECE: at most two
figures of WORST_LABELS panels, pixel size independent of n and L); a per-label table of
every label up to LABEL_TABLE_MAX_ROWS (searchable and sortable in the page beyond
ALL_LABELS_MAX_L labels); the fitted calibrators; provenance.
"""

from __future__ import annotations

import datetime as _dt
import time

import numpy as np
from matplotlib.figure import Figure

from calibrate._core.binning import bin_index, equal_width_edges
from calibrate._core.blocks import BLOCK_BYTES, block_rows
from calibrate.metrics.multilabel import multilabel_metrics, sigmoid
from calibrate.report.figures import reliability_data, reliability_panels
from calibrate.report.html import _fmt, _png, command_line, environment

WORST_LABELS = 8  # labels shown in detail (table with intervals, reliability panels)
ALL_LABELS_MAX_L = 20  # up to this many labels, the per-label table is a plain table (in the PDF too)
LABEL_TABLE_MAX_ROWS = 5000  # the per-label table: at most this many labels (by decreasing ECE)
PANEL_COLUMNS = 4
PANEL_SIZE = 2.6  # inches: a figure is at most PANEL_COLUMNS x 2 panels
METRICS = ("ece", "brier", "nll")
RESAMPLE_BLOCK_BYTES = 32 * BLOCK_BYTES  # the per-(label, bin) sums of one block of resamples: 16 MiB
_TINY = np.finfo(np.float64).tiny


# ----------------------------------------------------------------------------- numbers
def _terms(x: np.ndarray, y: np.ndarray, kind: str):
    """(n, L) per-entry terms: (y - p, (p - y)^2, binary NLL) and p, from logits or probabilities."""
    p = sigmoid(x) if kind == "logits" else x
    d = y - p
    if kind == "logits":
        nll = np.logaddexp(0.0, x) - y * x
    else:
        nll = -np.log(np.maximum(np.where(y == 1, x, 1.0 - x), _TINY))
    return p, d, d * d, nll


class _Resampled:
    """One prediction's sufficient matrices: the per-(label, bin) sums of y - p as a sparse
    (n, L B) matrix, the pooled (n, B) sums, and the (n, L) Brier and NLL terms."""

    def __init__(self, x, y, kind, n_bins):
        import scipy.sparse as sp

        p, d, sq, nll = _terms(x, y, kind)
        n, L = p.shape
        idx = bin_index(p, equal_width_edges(n_bins))
        cols = idx + (np.arange(L) * n_bins)[None, :]
        rows = np.repeat(np.arange(n), L)
        self.X = sp.csr_matrix((d.ravel(), (rows, cols.ravel())), shape=(n, L * n_bins))
        self.M = np.bincount((np.arange(n)[:, None] * n_bins + idx).ravel(), weights=d.ravel(),
                             minlength=n * n_bins).reshape(n, n_bins)
        self.sq, self.nll = sq, nll
        self.L, self.B = L, n_bins

    def draws(self, w: np.ndarray) -> dict:
        """Per resample (rows of w, (r, n)): {"ece": (r, L), "brier": (r, L), "nll": (r, L), "micro_ece": (r,)}."""
        W = w.sum(axis=1)
        S = np.asarray((self.X.T @ w.T).T).reshape(w.shape[0], self.L, self.B)
        return {"ece": np.abs(S).sum(axis=2) / W[:, None], "brier": (w @ self.sq) / W[:, None],
                "nll": (w @ self.nll) / W[:, None], "micro_ece": np.abs(w @ self.M).sum(axis=1) / (W * self.L)}


def _interval(est: float, d: np.ndarray, confidence: float) -> dict:
    """The percentile interval of the bootstrap draws ``d`` and the plug-in estimate ``est``."""
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(d, [a, 1.0 - a])
    return {"estimate": float(est), "low": float(lo), "high": float(hi), "confidence": confidence}


def multilabel_report_numbers(scores: dict, labels, *, n_bins: int = 15, n_resamples: int = 1000, seed: int = 0,
                              scheme: str = "auto", confidence: float = 0.95, worst: int = WORST_LABELS,
                              label_names=None) -> dict:
    """Every number of the multi-label report.

    scores: {name: ((n, L) scores, kind)} with kind "logits" or "probs"; the first is the
    reference of the paired differences ("uncalibrated"). labels: (n, L) 0/1.
    Returns {"metrics": {name: {"macro": {m: interval}, "micro": {m: interval}}},
    "per_label": {name: multilabel_metrics(...)}, "worst": [label index], "worst_intervals":
    {name: {j: interval of ECE_j}}, "paired": {name: {"macro_ece", "micro_ece", "brier",
    "nll": interval of the difference name - reference}}, "bootstrap": {...}}.
    An interval is {"estimate", "low", "high", "confidence"}: the percentile interval of the
    resampled values (the plug-in ECE is biased upward, so its interval may lie above it).
    """
    from calibrate.resampling.bootstrap import _scheme, _weights

    names = list(scores)
    y = np.asarray(labels, dtype=np.float64)
    n = y.shape[0]
    if n < 2:
        from calibrate._core.validation import InputError

        raise InputError(f"labels: a bootstrap interval needs at least 2 rows, got {n}")
    est = {nm: multilabel_metrics(x, y, kind=kind, n_bins=n_bins, label_names=label_names)
           for nm, (x, kind) in scores.items()}
    ref = est[names[0]]
    L = ref["per_label"]["ece"].size
    worst_idx = [int(j) for j in np.lexsort((np.arange(L), -ref["per_label"]["ece"]))[:min(worst, L)]]
    sch = _scheme(scheme, n)
    suff = {nm: _Resampled(np.asarray(x, dtype=np.float64), y, kind, n_bins) for nm, (x, kind) in scores.items()}
    keys = ("macro_ece", "micro_ece", "brier", "nll")
    draws = {nm: {k: [] for k in keys} | {"worst": []} for nm in names}
    sub = block_rows(L * n_bins, 8, RESAMPLE_BLOCK_BYTES)  # resamples a product: (L B, sub) float64 sums
    blocks = (ww[a:a + sub] for ww in _weights(n, int(n_resamples), seed, sch) for a in range(0, ww.shape[0], sub))
    for w in blocks:
        for nm in names:
            d = suff[nm].draws(w)
            acc = draws[nm]
            acc["macro_ece"].append(d["ece"].mean(axis=1))
            acc["micro_ece"].append(d["micro_ece"])
            acc["brier"].append(d["brier"].mean(axis=1))
            acc["nll"].append(d["nll"].mean(axis=1))
            acc["worst"].append(d["ece"][:, worst_idx])
    draws = {nm: {k: np.concatenate(v) for k, v in dd.items()} for nm, dd in draws.items()}
    point = {nm: {"macro_ece": e["macro"]["ece"], "micro_ece": e["micro"]["ece"], "brier": e["macro"]["brier"],
                  "nll": e["macro"]["nll"]} for nm, e in est.items()}
    metrics = {}
    for nm in names:
        e, dd = est[nm], draws[nm]
        metrics[nm] = {
            "macro": {"ece": _interval(e["macro"]["ece"], dd["macro_ece"], confidence),
                      "brier": _interval(e["macro"]["brier"], dd["brier"], confidence),
                      "nll": _interval(e["macro"]["nll"], dd["nll"], confidence)},
            "micro": {"ece": _interval(e["micro"]["ece"], dd["micro_ece"], confidence),
                      "brier": _interval(e["micro"]["brier"], dd["brier"], confidence),
                      "nll": _interval(e["micro"]["nll"], dd["nll"], confidence)},
        }
    worst_iv = {nm: {j: _interval(est[nm]["per_label"]["ece"][j], draws[nm]["worst"][:, i], confidence)
                     for i, j in enumerate(worst_idx)} for nm in names}
    paired = {}
    for nm in names[1:]:
        paired[nm] = {}
        for k in keys:
            diff = draws[nm][k] - draws[names[0]][k]
            iv = _interval(point[nm][k] - point[names[0]][k], diff, confidence)
            iv["p_value"] = float(min(1.0, 2.0 * min(np.mean(diff <= 0), np.mean(diff >= 0))))
            paired[nm][k] = iv
    boot = {"method": "percentile", "scheme": sch, "n_resamples": int(n_resamples), "seed": int(seed),
            "confidence": confidence, "resampled": "rows (all labels of a row together)"}
    return {"metrics": metrics, "per_label": est, "worst": worst_idx, "worst_intervals": worst_iv,
            "paired": paired, "bootstrap": boot}


# ----------------------------------------------------------------------------- figures
def label_reliability_figure(probs, labels, columns, names, *, n_bins: int = 10, ncols: int = PANEL_COLUMNS,
                             panel_size: float = PANEL_SIZE, suptitle: str | None = None) -> Figure:
    """One reliability diagram per label of ``columns``: P(label j on) (probs (n, L)) against
    the frequency of y_j = 1 (labels (n, L) 0/1); the panel of label j is titled names[j] ("label j" for the default names).
    At most ``ncols`` panels a row; the pixel size depends on len(columns) only."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    cols = [int(j) for j in columns]
    panels = []
    for j in cols:
        pj = p[:, j]
        d = reliability_data(np.column_stack([1.0 - pj, pj]), y[:, j].astype(np.int64), n_bins, class_index=1,
                             label=f"label {j}" if str(names[j]) == str(j) else str(names[j]))
        d.xlabel = "P(label on)"
        panels.append(d)
    return reliability_panels(panels, ncols=ncols, panel_size=panel_size, suptitle=suptitle)


# ----------------------------------------------------------------------------- sections
def _cell(iv: dict) -> dict:
    return {"text": _fmt(iv["estimate"]), "ci": f"[{_fmt(iv['low'])}, {_fmt(iv['high'])}]"}


def multilabel_report_sections(scores, labels, calibrators: dict, *, kind: str, data_name: str = "",
                               fit_name: str = "", label_names=None, n_bins: int = 15, n_resamples: int = 1000,
                               seed: int = 0, scheme: str = "auto", title: str = "Multi-label calibration report",
                               started: float | None = None):
    """The multi-label report of ``calibrators`` ({name: fitted MultiLabelCalibrator}) on
    scores (n, L) of ``kind`` ("logits" or "probs") and labels (n, L) 0/1.

    Returns (sections, subtitle, data): the sections for render_html / render_pdf, the
    subtitle, and the JSON-able dict of the same numbers (every label's numbers in it).
    """
    t0 = time.time() if started is None else started
    x = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    n, L = x.shape
    names_l = [str(j) for j in range(L)] if label_names is None else [str(s) for s in label_names]
    preds = {"uncalibrated": (x, kind)}
    for nm, cal in calibrators.items():
        preds[nm] = (cal.predict_proba(x, kind=kind), "probs")
    num = multilabel_report_numbers(preds, y, n_bins=n_bins, n_resamples=n_resamples, seed=seed, scheme=scheme,
                                    label_names=names_l)
    names = list(preds)
    est, met = num["per_label"], num["metrics"]
    probs = {nm: (preds[nm][0] if preds[nm][1] == "probs" else sigmoid(preds[nm][0])) for nm in names}
    positives = y.sum(axis=0)
    prevalence = est["uncalibrated"]["prevalence"]
    worst = num["worst"]
    best = min(names[1:], key=lambda nm: met[nm]["macro"]["ece"]["estimate"], default=None)
    boot = num["bootstrap"]
    iv_words = (f"{round(100 * boot['confidence'])} % percentile bootstrap intervals, {boot['n_resamples']} "
                f"resamples of the rows ({'multinomial' if boot['scheme'] == 'multinomial' else 'Poisson(1) weights'}"
                f"; all labels of a row resampled together), seed {boot['seed']}")

    # the macro / micro table
    header = ["prediction", "macro ECE", "micro ECE", "Brier", "NLL"]
    rows = []
    for nm in names:
        m = met[nm]
        cells = [{"text": nm}, _cell(m["macro"]["ece"]), _cell(m["micro"]["ece"]), _cell(m["macro"]["brier"]),
                 _cell(m["macro"]["nll"])]
        rows.append({"cells": cells})
    for j, key in enumerate(("ece", "ece", "brier", "nll"), start=1):
        avg = "macro" if j != 2 else "micro"
        vals = [met[nm][avg][key]["estimate"] for nm in names]
        if len(names) > 1:
            rows[int(np.argmin(vals))]["cells"][j]["cls"] = "better"
    metrics_table = {"header": header, "rows": rows,
                     "caption": f"Lower is better; green marks the best in each column. Macro: the mean over the {L} "
                                "labels of each label's number; micro: the number of the n L pooled (P, y) pairs. "
                                "For Brier and NLL the two are equal (every label is scored on every row), so one "
                                f"column each. ECE: {n_bins} equal-width bins of P(label on)."}
    tables = [metrics_table]
    if num["paired"]:
        prow = []
        for nm, d in num["paired"].items():
            cells = [{"text": f"{nm} − uncalibrated"}]
            for k in ("macro_ece", "micro_ece", "brier", "nll"):
                c = d[k]
                sig = c["high"] < 0 or c["low"] > 0
                cells.append({"text": f"{c['estimate']:+.4f}",
                              "ci": f"[{c['low']:+.4f}, {c['high']:+.4f}] p={c['p_value']:.3f}",
                              "cls": ("better" if c["estimate"] < 0 else "worse") if sig else ""})
            prow.append({"cells": cells})
        tables.append({"header": ["prediction", "Δ macro ECE", "Δ micro ECE", "Δ Brier", "Δ NLL"], "rows": prow,
                       "caption": "Paired differences against the uncalibrated model on the same resamples (green: "
                                  "better beyond the noise at 95 %, red: worse)."})

    # the worst labels
    wheader = ["label", "positives", "frequency", "mean P (uncalibrated)"] + [f"ECE ({nm})" for nm in names]
    wrows = []
    for j in worst:
        cells = [{"text": names_l[j]}, {"text": f"{int(positives[j]):,}"}, {"text": _fmt(float(prevalence[j]))}]
        cells.append({"text": _fmt(float(probs["uncalibrated"][:, j].mean()))})
        cells += [_cell(num["worst_intervals"][nm][j]) for nm in names]
        wrows.append({"cells": cells})
    worst_table = {"header": wheader, "rows": wrows,
                   "caption": f"The {len(worst)} labels of largest ECE (uncalibrated) of {L}, largest first; under "
                              f"each ECE its {round(100 * boot['confidence'])} % percentile interval (the resamples of the table above)."}
    panels = [_png(label_reliability_figure(probs["uncalibrated"], y, worst, names_l, n_bins=n_bins,
                                            suptitle="uncalibrated: the labels of largest ECE"),
                   "Reliability diagrams of the labels of largest ECE, uncalibrated",
                   f"Per label: bars, the frequency of the label per bin of P(label on) ({n_bins} equal-width bins, "
                   "the table's ECE); "
                   "hatched, the gap to the diagonal.")]
    if best:
        panels.append(_png(label_reliability_figure(probs[best], y, worst, names_l, n_bins=n_bins,
                                                    suptitle=f"{best}: the same labels"),
                            f"Reliability diagrams of the same labels, {best}"))

    # every label
    order = np.lexsort((np.arange(L), -est["uncalibrated"]["per_label"]["ece"]))
    listed = order[:LABEL_TABLE_MAX_ROWS]
    two = ["uncalibrated"] + ([best] if best else [])
    aheader = ["label", "positives", "frequency"] + [f"ECE ({nm})" for nm in names] + \
        [f"Brier ({nm})" for nm in two] + [f"NLL ({nm})" for nm in two]
    arows = []
    for j in listed:
        cells = [{"text": names_l[j]}, {"text": str(int(positives[j]))}, {"text": _fmt(float(prevalence[j]))}]
        cells += [{"text": _fmt(float(est[nm]["per_label"]["ece"][j]))} for nm in names]
        for key in ("brier", "nll"):
            cells += [{"text": _fmt(float(est[nm]["per_label"][key][j]))} for nm in two]
        arows.append({"cells": cells})
    large = L > ALL_LABELS_MAX_L
    all_table = {"header": aheader, "rows": arows,
                 "caption": (f"All {L:,} labels" if listed.size == L else
                             f"The {listed.size:,} labels of largest ECE (uncalibrated) of {L:,}")
                 + ", by decreasing uncalibrated ECE; ECE of every prediction, Brier and NLL of the uncalibrated model and "
                 "the calibrator of lowest macro ECE. Point estimates."
                 + (" Type in the box to filter by label, click a column heading to sort." if large else "")}
    if large:
        all_table.update({"interactive": True, "html_only": True, "filter": "filter by label"})
    words = (f"L = {L:,} labels: the {len(worst)} of largest uncalibrated ECE are shown in detail (intervals and "
             "reliability diagrams), "
             + ("every label in the table below" if listed.size == L else
                f"the {listed.size:,} of largest ECE in the table below")
             + "; the JSON (calibrate report --multilabel --json FILE, key per_label) holds every label's numbers.")

    params = {nm: {"method": cal.method, "params": cal.params or {}, "labels": cal.n_labels_}
              for nm, cal in calibrators.items()}
    param_rows = [{"cells": [{"text": nm}, {"text": p["method"]}, {"text": str(p["labels"])},
                             {"text": ", ".join(f"{a} = {b}" for a, b in p["params"].items()) or "defaults"}]}
                  for nm, p in params.items()]

    data = {
        "title": title,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "data": data_name, "fit_on": fit_name or None, "n": n, "L": L, "kind": kind, "bins": n_bins,
        "bootstrap": boot, "metrics": met, "paired_differences_vs_uncalibrated": num["paired"],
        "labels": names_l, "positives": positives, "prevalence": prevalence,
        "per_label": {nm: {k: est[nm]["per_label"][k] for k in METRICS} for nm in names},
        "worst_labels": [{"label": names_l[j], "index": j,
                          **{f"ece[{nm}]": num["worst_intervals"][nm][j] for nm in names}} for j in worst],
        "calibrators": {nm: {**p, "summary": calibrators[nm].summary()} for nm, p in params.items()},
        "command": command_line(), "environment": environment(),
    }
    data["wall_seconds"] = round(time.time() - t0, 2)
    env = data["environment"]
    summary = [("data", data_name or "—"), ("calibrators fitted on", fit_name or "—"), ("n", f"{n:,}"),
               ("labels", f"{L:,} (independent sigmoid outputs, {kind})"),
               ("labels per row", f"{float(y.sum(axis=1).mean()):.3f} on average"),
               ("binning", f"{n_bins} equal-width bins of P(label on), per label"), ("intervals", iv_words)]
    sections = [
        {"id": "summary", "title": "Summary", "summary": summary, "lead": True},
        {"id": "multilabel-metrics", "title": "Macro and micro averages with 95 % confidence intervals",
         "paragraphs": [iv_words + ". Per label j, the ECE, Brier score and binary NLL of P(y_j = 1) against y_j "
                        "(calibrate.metrics.multilabel); every interval and paired difference comes from the same "
                        "row weights applied to the per-row terms. The plug-in ECE is biased upward by the noise in each bin, "
                        "so most resamples lie above it and the interval of an ECE can lie above its estimate, most of all "
                        "for the macro ECE, which adds the bias of every label (with a bias-corrected interval, as "
                        "BCa, every resample on one side leaves no interval); the paired differences, whose biases "
                        "largely cancel, are the numbers to read for whether a calibrator helps."],
         "tables": tables},
        {"id": "multilabel-worst", "title": "The labels of largest calibration error", "paragraphs": [words],
         "tables": [worst_table], "figures": panels},
        {"id": "multilabel-labels", "title": "Per label", "tables": [all_table], "collapsed": True},
        {"id": "calibrators", "title": "Fitted calibrators", "collapsed": True,
         "tables": [{"header": ["name", "method", "labels", "hyperparameters"], "rows": param_rows}]}
        if params else None,
        {"id": "provenance", "title": "How this report was made", "collapsed": True,
         "summary": [("command", data["command"]), ("created", data["created"]),
                     ("time taken", f"{data['wall_seconds']:.1f} s"),
                     ("machine", f"{env['cpu']}, {env['cores']} cores, {env['platform']}"),
                     ("versions", ", ".join(f"{a} {b}" for a, b in env["packages"].items() if b))]},
    ]
    return [s for s in sections if s], f"{data_name} — n = {n:,}, L = {L:,} labels", data
