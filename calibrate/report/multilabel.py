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

Working memory, whatever n and L: every number comes from passes over row blocks of each
prediction (:func:`_prediction_pass`; a calibrator predicts one block at a time), one pass
per group of resamples: a group holds at most WEIGHTS_BYTES of uint8 weights (r x n) and
RESAMPLED_SUMS_BYTES of (L B x r) float64 sums, so up to 64 MiB / n resamples (all 1000
up to n = 67,108) take one pass. The first pass also adds the plug-in sums
(:class:`calibrate.metrics.multilabel.LabelSums`, O(L B)). Beyond the input, memory holds
one block of per-entry terms (:func:`calibrate.metrics.multilabel.label_block_rows` rows),
the group's weights, a chunk of float64 weights of
:func:`calibrate.resampling.bootstrap._weights` (at most 16 MiB), the O(L B r) sums and
the (r, L) per-label ECE of each pass; what stays O(n) is r uint8 weights per row.

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

from calibrate._core.binning import equal_width_edges
from calibrate._core.blocks import BLOCK_BYTES, block_rows
from calibrate._core.validation import check_choice
from calibrate.metrics.multilabel import (
    KINDS,
    LabelSums,
    LabelTerms,
    check_indicator,
    label_block_rows,
    label_rows,
)
from calibrate.report.figures import ReliabilityData, reliability_panels
from calibrate.report.html import _fmt, _png, command_line, environment

WORST_LABELS = 8  # labels shown in detail (table with intervals, reliability panels)
ALL_LABELS_MAX_L = 20  # up to this many labels, the per-label table is a plain table (in the PDF too)
LABEL_TABLE_MAX_ROWS = 5000  # the per-label table: at most this many labels (by decreasing ECE)
PANEL_COLUMNS = 4
PANEL_SIZE = 2.6  # inches: a figure is at most PANEL_COLUMNS x 2 panels
METRICS = ("ece", "brier", "nll")
RESAMPLE_BLOCK_BYTES = 32 * BLOCK_BYTES  # one product's (L B, r') per-(label, bin) sums of resamples: 16 MiB
WEIGHT_ROWS_BYTES = 32 * BLOCK_BYTES  # the (m', r) float64 weights of a slice of rows: 16 MiB
WEIGHTS_BYTES = 128 * BLOCK_BYTES  # the uint8 (r, n) weights of one group of resamples: 64 MiB
RESAMPLED_SUMS_BYTES = 128 * BLOCK_BYTES  # the (L B, r) float64 resampled sums of one prediction: 64 MiB


# ----------------------------------------------------------------------------- numbers
class _Group:
    """One group of r resamples: the (r_i, n) weight chunks of
    :func:`calibrate.resampling.bootstrap._weights`, held compactly (uint8 when every count
    fits, else float64), and W (r,) the float64 sum of each resample's weights."""

    def __init__(self, chunks: list):
        self.chunks = chunks
        self.r = sum(c.shape[0] for c in chunks)
        self.W = np.concatenate([c.sum(axis=1, dtype=np.float64) for c in chunks])

    def rows(self, u: slice) -> np.ndarray:
        """(m, r) float64 weights of rows u."""
        return np.ascontiguousarray(np.concatenate([c[:, u] for c in self.chunks], axis=0).T, dtype=np.float64)


def _compact(w: np.ndarray) -> np.ndarray:
    return w.astype(np.uint8) if w.size and w.max() <= 255 else np.array(w, dtype=np.float64)


def _resample_groups(n: int, n_resamples: int, seed: int, scheme: str, per_group: int):
    """The weights of :func:`calibrate.resampling.bootstrap._weights` (the same draws, in
    order) in groups of at most ``per_group`` resamples."""
    from calibrate.resampling.bootstrap import _weights

    buf, have = [], 0
    for w in _weights(n, n_resamples, seed, scheme):
        a = 0
        while a < w.shape[0]:
            take = min(per_group - have, w.shape[0] - a)
            buf.append(_compact(w[a:a + take]))
            have, a = have + take, a + take
            if have == per_group:
                yield _Group(buf)
                buf, have = [], 0
    if buf:
        yield _Group(buf)


def group_size(n: int, L: int, n_bins: int, n_resamples: int) -> int:
    """Resamples per pass: at most WEIGHTS_BYTES of uint8 weights (r x n) and
    RESAMPLED_SUMS_BYTES of float64 sums (L B x r), at least 1."""
    return max(1, min(int(n_resamples), WEIGHTS_BYTES // max(n, 1), RESAMPLED_SUMS_BYTES // (8 * L * n_bins)))


def _prediction_pass(rows, kind: str, y, n: int, L: int, n_bins: int, group: _Group | None,
                     sums: LabelSums | None = None, check_labels: bool = False):
    """One pass over the row blocks of one prediction: rows(slice) -> (m, L) scores of ``kind``.

    Adds each block's terms to ``sums`` (when given) and, for the r resamples of ``group``,
    returns the resampled sums: S (L B, r) of w_i (y_ij - p_ij) per (label, bin) and (r,)
    sums of w_i sum_j (p_ij - y_ij)^2 and of w_i sum_j NLL_ij (None without a group).
    Working memory: one block of terms, its sparse (m, L B) matrix of y - p (m L values),
    (m', r) float64 weights of at most WEIGHT_ROWS_BYTES and a (L B, r') product of at most
    RESAMPLE_BLOCK_BYTES."""
    import scipy.sparse as sp

    B, LB = n_bins, L * n_bins
    r = 0 if group is None else group.r
    S, sq, nll = np.zeros((LB, r)), np.zeros(r), np.zeros(r)
    offset = (np.arange(L) * B)[None, :]
    step = label_block_rows(L, B)
    wrows = block_rows(r, 8, WEIGHT_ROWS_BYTES)
    sub = block_rows(LB, 8, RESAMPLE_BLOCK_BYTES)
    for a in range(0, n, step):
        s = slice(a, min(n, a + step))
        m = s.stop - s.start
        yb = check_indicator(y[s], (m, L), first_row=a) if check_labels else y[s]
        t = LabelTerms(rows(s), yb, kind, B)
        if sums is not None:
            sums.update(t)
        if not r:
            continue
        X = sp.csr_matrix((t.d.ravel(), (np.repeat(np.arange(m), L), (t.idx + offset).ravel())), shape=(m, LB))
        rsq, rnll = t.sq.sum(axis=1), t.nll.sum(axis=1)
        for c in range(0, m, wrows):
            wt = group.rows(slice(a + c, min(s.stop, a + c + wrows)))
            xt = X[c:c + wt.shape[0]].T
            for e in range(0, r, sub):
                S[:, e:e + sub] += xt @ wt[:, e:e + sub]
            sq += rsq[c:c + wt.shape[0]] @ wt
            nll += rnll[c:c + wt.shape[0]] @ wt
    return (S, sq, nll) if r else None


def _draws(S: np.ndarray, sq: np.ndarray, nll: np.ndarray, W: np.ndarray, L: int, n_bins: int) -> dict:
    """Per resample (r of them) from :func:`_prediction_pass`'s sums: {"ece": (r, L),
    "micro_ece", "brier", "nll": (r,)} (Brier and NLL: macro = micro)."""
    T = S.T.reshape(-1, L, n_bins)
    return {"ece": np.abs(T).sum(axis=2) / W[:, None], "micro_ece": np.abs(T.sum(axis=1)).sum(axis=1) / (W * L),
            "brier": sq / (W * L), "nll": nll / (W * L)}


def _interval(est: float, d: np.ndarray, confidence: float) -> dict:
    """The percentile interval of the bootstrap draws ``d`` and the plug-in estimate ``est``."""
    a = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(d, [a, 1.0 - a])
    return {"estimate": float(est), "low": float(lo), "high": float(hi), "confidence": confidence}


def multilabel_report_numbers(scores: dict, labels, *, n_bins: int = 15, n_resamples: int = 1000, seed: int = 0,
                              scheme: str = "auto", confidence: float = 0.95, worst: int = WORST_LABELS,
                              label_names=None) -> dict:
    """Every number of the multi-label report.

    scores: {name: (scores, kind)} with kind "logits" or "probs", scores an (n, L) array
    (validated block by block) or f(slice) -> those rows' (m, L) values (a calibrator's
    predictions of the rows, computed per block); the first is the reference of the paired
    differences ("uncalibrated"). labels: (n, L) 0/1.
    Returns {"metrics": {name: {"macro": {m: interval}, "micro": {m: interval}}},
    "per_label": {name: multilabel_metrics(...)}, "sums": {name: LabelSums}, "worst": [label
    index], "worst_intervals": {name: {j: interval of ECE_j}}, "paired": {name: {"macro_ece",
    "micro_ece", "brier", "nll": interval of the difference name - reference}}, "bootstrap": {...}}.
    An interval is {"estimate", "low", "high", "confidence"}: the percentile interval of the
    resampled values (the plug-in ECE is biased upward, so its interval may lie above it).
    """
    from calibrate._core.validation import InputError, check_n_bins, check_n_resamples
    from calibrate.resampling.bootstrap import _scheme

    n_bins = check_n_bins(n_bins)
    R = check_n_resamples(n_resamples)
    names = list(scores)
    labels = labels if hasattr(labels, "shape") else np.asarray(labels)
    n, L = np.shape(labels)
    if n < 2:
        raise InputError(f"labels: a bootstrap interval needs at least 2 rows, got {n}")
    if label_names is not None and len(label_names) != L:
        raise InputError(f"label_names: expected {L} names, one per label column, got {len(label_names)}")
    sources = {}
    for nm, (x, kind) in scores.items():
        check_choice(kind, "kind", KINDS)
        if not callable(x):
            if np.shape(x) != (n, L):
                raise InputError(f"scores: expected shape {(n, L)}, the shape of the labels, got {np.shape(x)} "
                                 f"({nm})")
            x = label_rows(x if hasattr(x, "shape") else np.asarray(x, dtype=np.float64), kind)
        sources[nm] = (x, kind)
    sch = _scheme(scheme, n)
    keys = ("macro_ece", "micro_ece", "brier", "nll")
    draws = {nm: {k: [] for k in keys} | {"worst": []} for nm in names}
    sums, worst_idx = {}, []
    for g in _resample_groups(n, R, seed, sch, group_size(n, L, n_bins, R)):
        for nm in names:
            first = nm not in sums
            if first:
                sums[nm] = LabelSums(L, n_bins)
            S, sq, nll = _prediction_pass(*sources[nm], labels, n, L, n_bins, g, sums[nm] if first else None,
                                          check_labels=first and nm == names[0])
            if first and nm == names[0]:
                ece0 = sums[nm].finish()["per_label"]["ece"]
                worst_idx = [int(j) for j in np.lexsort((np.arange(L), -ece0))[:min(worst, L)]]
            d = _draws(S, sq, nll, g.W, L, n_bins)
            acc = draws[nm]
            acc["macro_ece"].append(d["ece"].mean(axis=1))
            acc["micro_ece"].append(d["micro_ece"])
            acc["brier"].append(d["brier"])
            acc["nll"].append(d["nll"])
            acc["worst"].append(d["ece"][:, worst_idx])
    est = {nm: sums[nm].finish(label_names) for nm in names}
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
    return {"metrics": metrics, "per_label": est, "sums": sums, "worst": worst_idx, "worst_intervals": worst_iv,
            "paired": paired, "bootstrap": boot}


# ----------------------------------------------------------------------------- figures
def label_reliability_figure(probs, labels, columns, names, *, n_bins: int = 10, ncols: int = PANEL_COLUMNS,
                             panel_size: float = PANEL_SIZE, suptitle: str | None = None) -> Figure:
    """One reliability diagram per label of ``columns``: P(label j on) (probs (n, L)) against
    the frequency of y_j = 1 (labels (n, L) 0/1); the panel of label j is titled names[j] ("label j" for the default names).
    At most ``ncols`` panels a row; the pixel size depends on len(columns) only."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    sums = LabelSums(p.shape[1], n_bins)
    for a in range(0, p.shape[0], label_block_rows(p.shape[1], n_bins)):
        s = slice(a, a + label_block_rows(p.shape[1], n_bins))
        sums.update(LabelTerms(p[s], y[s], "probs", n_bins))
    return label_reliability_figure_from_sums(sums, columns, names, ncols=ncols, panel_size=panel_size,
                                              suptitle=suptitle)


def label_reliability_figure_from_sums(sums: LabelSums, columns, names, *, ncols: int = PANEL_COLUMNS,
                                       panel_size: float = PANEL_SIZE, suptitle: str | None = None) -> Figure:
    """:func:`label_reliability_figure` from the per-(label, bin) sums of a pass (the bins of
    ``sums``): no (n, L) array is read."""
    panels = []
    ece = sums.finish()["per_label"]["ece"]
    edges = equal_width_edges(sums.n_bins)
    for j in [int(c) for c in columns]:
        count, conf, freq = sums.reliability(j)
        panels.append(ReliabilityData(edges, count, conf, freq, float(ece[j]), int(count.sum()),
                                      f"label {j}" if str(names[j]) == str(j) else str(names[j]),
                                      "P(label on)", "observed frequency"))
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
    x = scores if hasattr(scores, "shape") else np.asarray(scores, dtype=np.float64)
    y = labels if hasattr(labels, "shape") else np.asarray(labels)
    n, L = np.shape(x)
    names_l = [str(j) for j in range(L)] if label_names is None else [str(s) for s in label_names]
    preds = {"uncalibrated": (x, kind)}
    for nm, cal in calibrators.items():
        preds[nm] = (lambda s, c=cal: c.predict_proba(x[s], kind=kind), "probs")
    num = multilabel_report_numbers(preds, y, n_bins=n_bins, n_resamples=n_resamples, seed=seed, scheme=scheme,
                                    label_names=names_l)
    names = list(preds)
    est, met, sums = num["per_label"], num["metrics"], num["sums"]
    positives = sums["uncalibrated"].label[2].copy()
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
        cells.append({"text": _fmt(float(sums["uncalibrated"].bins[1, j].sum() / n))})
        cells += [_cell(num["worst_intervals"][nm][j]) for nm in names]
        wrows.append({"cells": cells})
    worst_table = {"header": wheader, "rows": wrows,
                   "caption": f"The {len(worst)} labels of largest ECE (uncalibrated) of {L}, largest first; under "
                              f"each ECE its {round(100 * boot['confidence'])} % percentile interval (the resamples of the table above)."}
    panels = [_png(label_reliability_figure_from_sums(sums["uncalibrated"], worst, names_l,
                                                      suptitle="uncalibrated: the labels of largest ECE"),
                   "Reliability diagrams of the labels of largest ECE, uncalibrated",
                   f"Per label: bars, the frequency of the label per bin of P(label on) ({n_bins} equal-width bins, "
                   "the table's ECE); "
                   "hatched, the gap to the diagonal.")]
    if best:
        panels.append(_png(label_reliability_figure_from_sums(sums[best], worst, names_l,
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
               ("labels per row", f"{float(positives.sum() / n):.3f} on average"),
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
