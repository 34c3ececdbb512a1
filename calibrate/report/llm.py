"""Language-model evaluation logs: a temperature per model, fitted on one split and scored
on another, and the comparison report of several models (``calibrate fit | evaluate |
report LOGS... --format ...``).

Rules (the command line states them in its help; README "Language-model logs"):

  models      each file's model is the name of the folder that directly holds it
              (lm-evaluation-harness writes ``OUT/<model>/samples_<task>_<date>.jsonl``),
              or the value of the metadata field ``model_by`` when given;
  fit split   rows whose field ``split_by`` has one of the values ``fit_split``; the other
              rows are scored. Without ``split_by`` (and without separate fit logs) the
              fit split is a seeded half of the question ids (a hash of seed and id, so
              the same questions are in it for every model). Nothing is scored on the rows
              its temperature or conformal threshold was fitted on;
  gold -inf   a row whose gold option has logit -inf (absent) has NLL +inf: it is listed
              by id and left out of every number (:func:`gold_not_finite`);
  shared      paired differences between models are computed on the scored questions
              that every model has, joined on row ids (``<task>/<doc_id>`` for lm-eval)
              with the same gold answer; how many were shared and left out is reported.

Numbers per model (on its scored rows): accuracy; ECE with 15 equal-width bins (ours);
ECE with 10 equal-mass bins (the variant HELM reports: top-label, L1, bins holding equal
numbers of questions); NLL; Brier = 1/n sum_i sum_j (p_ij - [y_i = j])^2, the multi-class
Brier that lm-evaluation-harness's ``brier_score`` aggregates (equal to it for
``choice_score="sum"``, the log-likelihoods it softmaxes); the temperature T; ECE and NLL
after T; AURC of the max probability; LAC and APS answer sets at miscoverage alpha (mean
set size and coverage). Intervals are bootstrap intervals
(:func:`calibrate.resampling.tables.report_numbers`; AURC by
:func:`calibrate.resampling.selective.selective_intervals`; set size and coverage by the
exact bootstrap of a mean of a discrete variable: multinomial counts over its values).
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import time

import numpy as np

from calibrate._core.validation import InputError
from calibrate.calibrators import get_calibrator
from calibrate.conformal import APS, LAC
from calibrate.metrics import calibration as metrics
from calibrate.report.html import HIGHER_IS_BETTER, paired_table
from calibrate.resampling.bootstrap import bootstrap_many
from calibrate.resampling.selective import selective_intervals
from calibrate.resampling.tables import _with_estimate, report_numbers

HELM_BINS = 10
_DUP_NOTE = re.compile(r"^\d+ ids occur more than once")
MAIN_KEYS = ("accuracy", "ece", "nll", "brier")
GROUP_MIN_ROWS = 2
_NAMES = {"accuracy": "accuracy", "ece": "ECE (15 bins)", "ece_helm": "ECE (10 equal-mass, as HELM)",
          "nll": "NLL", "brier": "Brier", "temperature": "T", "ece_t": "ECE after T", "nll_t": "NLL after T",
          "aurc": "AURC", "lac_size": "LAC set size", "lac_coverage": "LAC coverage",
          "aps_size": "APS set size", "aps_coverage": "APS coverage"}


# ----------------------------------------------------------------------------- rows
def gold_not_finite(logits, labels) -> np.ndarray:
    """(n,) bool: rows whose gold option's logit is not finite (-inf: an absent option).

    logits: (n, k) float; labels: (n,) int in 0..k-1.
    """
    z = np.asarray(logits)
    y = np.asarray(labels)
    return ~np.isfinite(z[np.arange(z.shape[0]), y])


def model_names(cl, model_by=None) -> np.ndarray:
    """(n,) object: each row's model, the name of the folder holding its file, or the
    metadata column ``model_by``."""
    if model_by:
        if model_by not in cl.meta:
            raise InputError(f"--model-by: no field {model_by!r} in the logs (fields: {', '.join(cl.meta)})")
        col = np.asarray(cl.meta[model_by], dtype=object)
        return np.where(col == "", "(none)", col).astype(object)
    files = cl.meta.get("file")
    if files is None:
        return np.full(cl.n, "model", dtype=object)
    names = {}
    for f in dict.fromkeys(files.tolist()):
        parent = os.path.basename(os.path.dirname(os.path.abspath(f)))
        names[f] = parent or "model"
    return np.array([names[f] for f in files.tolist()], dtype=object)


def _in_order(values) -> list:
    return list(dict.fromkeys(np.asarray(values, dtype=object).tolist()))


def hash_half(ids, seed: int = 0) -> np.ndarray:
    """(n,) bool: a seeded half of the ids, the same for an id in every model's logs:
    the low bit of blake2b(seed, id)."""
    out = np.empty(len(ids), dtype=bool)
    prefix = f"{int(seed)}\0".encode()
    for i, rid in enumerate(ids):
        out[i] = hashlib.blake2b(prefix + str(rid).encode(), digest_size=1).digest()[0] & 1
    return out


def fit_mask(cl, split_by=None, fit_split=(), seed: int = 0) -> np.ndarray:
    """(n,) bool: the rows a temperature (and conformal thresholds) is fitted on.

    ``split_by``: a metadata field; rows whose value is one of ``fit_split`` are the fit
    split. Without it, :func:`hash_half` of the row ids.
    """
    if split_by is None:
        return hash_half(cl.ids, seed)
    if split_by not in cl.meta:
        raise InputError(f"--split-by: no field {split_by!r} in the logs (fields: {', '.join(cl.meta)})")
    if not fit_split:
        raise InputError("--split-by needs --fit-split VALUE (the value of the rows to fit on, e.g. validation)")
    col = np.asarray(cl.meta[split_by], dtype=object)
    mask = np.isin(col, np.asarray(list(fit_split), dtype=object))
    if not mask.any() or mask.all():
        found = ", ".join(map(str, _in_order(col)[:10]))
        which = "no row" if not mask.any() else "every row"
        raise InputError(f"--fit-split: {which} has {split_by} in {', '.join(fit_split)} (values found: {found}); "
                         "name the value of the fit rows, and leave other rows to score")
    return mask


class Subset:
    """Rows of a :class:`~calibrate.io.llm.ChoiceLogits`: logits (m, k), labels (m,),
    ids (m,), meta {name: (m,)}."""

    def __init__(self, cl, rows):
        self.logits = cl.logits[rows]
        self.labels = cl.labels[rows]
        self.ids = cl.ids[rows]
        self.meta = {k: v[rows] for k, v in cl.meta.items()}

    @property
    def n(self):
        return int(self.labels.shape[0])


# ----------------------------------------------------------------------------- numbers
def _cell(ci) -> dict:
    if hasattr(ci, "to_dict"):
        d = ci.to_dict()
        return {"estimate": d["estimate"], "low": d["low"], "high": d["high"]}
    return {k: ci.get(k) for k in ("estimate", "low", "high")}


def mean_interval(values, n_resamples: int = 1000, confidence_level: float = 0.95, seed: int = 0) -> dict:
    """Percentile bootstrap interval of the mean of ``values`` ((n,) taking few distinct
    values, e.g. set sizes or 0/1 coverage): exact row resampling, drawn as multinomial
    counts of the distinct values. Returns {"estimate", "low", "high"}."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"estimate": float("nan"), "low": float("nan"), "high": float("nan")}
    vals, counts = np.unique(v, return_counts=True)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(v.size, counts / v.size, size=n_resamples) @ vals / v.size
    a = (1.0 - confidence_level) / 2.0
    lo, hi = np.quantile(draws, [a, 1.0 - a])
    return {"estimate": float(v.mean()), "low": float(lo), "high": float(hi)}


def model_numbers(fit, test, *, method: str = "temperature", n_bins: int = 15, n_resamples: int = 1000,
                  seed: int = 0, alpha: float | None = 0.1) -> dict:
    """Every number of one model: ``fit`` and ``test`` are :class:`Subset` s (the fit and
    scored splits). Returns {"n", "n_fit", "table": {key: {"estimate", "low", "high"}},
    "diffs" (after T - uncalibrated, paired), "calibrator", "log_probs": (m, k) uncalibrated,
    "log_probs_t": (m, k) after T}."""
    if fit.n < 2 or test.n < 2:
        raise InputError(f"a model has {fit.n} fit row(s) and {test.n} scored row(s); each split needs at least 2")
    cal = get_calibrator(method).fit(fit.logits, fit.labels, kind="logits")
    y = test.labels
    lp0 = metrics.log_softmax(test.logits)
    lpt = cal.predict_log_proba(test.logits, kind="logits")
    preds = {"uncalibrated": lp0, "calibrated": lpt}
    table, diffs, boot = report_numbers(preds, y, n_bins, n_resamples, seed=seed, keys=list(MAIN_KEYS),
                                        reference="uncalibrated")
    helm, _, _ = report_numbers({"uncalibrated": lp0}, y, HELM_BINS, n_resamples, seed=seed, keys=["ece_mass"])
    t = {k: _cell(table["uncalibrated"][k]) for k in MAIN_KEYS}
    t["ece_helm"] = _cell(helm["uncalibrated"]["ece_mass"])
    t["ece_t"] = _cell(table["calibrated"]["ece"])
    t["nll_t"] = _cell(table["calibrated"]["nll"])
    summary = cal.summary()
    temp = summary.get("T", getattr(cal, "temperature_", None))
    t["temperature"] = {"estimate": float(temp) if temp is not None else None, "low": None, "high": None}
    p0 = np.exp(lp0)
    conf = p0.max(axis=1)
    correct = p0.argmax(axis=1) == y
    t["aurc"] = _cell(selective_intervals(conf, correct, n_resamples=n_resamples, seed=seed)["aurc"])
    if alpha is not None:
        for key, cp in (("lac", LAC(alpha=alpha)), ("aps", APS(alpha=alpha, seed=seed))):
            sets = cp.fit(fit.logits, fit.labels).predict_sets(test.logits)
            t[f"{key}_size"] = mean_interval(sets.sum(axis=1), n_resamples, seed=seed)
            t[f"{key}_coverage"] = mean_interval(sets[np.arange(test.n), y], n_resamples, seed=seed)
    return {"n": test.n, "n_fit": fit.n, "table": t, "bootstrap": boot,
            "diffs": {k: _cell(v) | {"p_value": v.get("p_value")} for k, v in diffs.get("calibrated", {}).items()},
            "calibrator": {"method": cal.name, **{k: v for k, v in summary.items()}},
            "log_probs": lp0, "log_probs_t": lpt}


def shared_rows(tests: dict) -> dict:
    """The questions every model scored: {"ids": (s,) shared ids in the first model's order,
    "rows": {model: (s,) row index into its scored rows}, "labels": (s,), "dropped": {model:
    rows of its own left out}, "label_conflicts": ids whose gold differs between models,
    "duplicates": ids occurring more than once in a model's rows (left out)}."""
    names = list(tests)
    if len(names) < 2:
        return {"ids": tests[names[0]].ids, "rows": {names[0]: np.arange(tests[names[0]].n)},
                "labels": tests[names[0]].labels, "dropped": {names[0]: 0}, "label_conflicts": [], "duplicates": []}
    index, dup = {}, set()
    for m in names:
        ids = tests[m].ids.tolist()
        pos = {}
        for i, rid in enumerate(ids):
            if rid in pos:
                dup.add(rid)
            pos[rid] = i
        index[m] = pos
    first = names[0]
    shared = [rid for rid in tests[first].ids.tolist()
              if rid not in dup and all(rid in index[m] for m in names[1:])]
    conflicts = []
    keep = []
    for rid in shared:
        golds = {int(tests[m].labels[index[m][rid]]) for m in names}
        (keep if len(golds) == 1 else conflicts).append(rid)
    rows = {m: np.fromiter((index[m][rid] for rid in keep), dtype=np.int64, count=len(keep)) for m in names}
    labels = tests[first].labels[rows[first]] if keep else np.empty(0, dtype=np.int64)
    ids = np.empty(len(keep), dtype=object)
    ids[:] = keep
    return {"ids": ids, "rows": rows, "labels": labels,
            "dropped": {m: tests[m].n - len(keep) for m in names},
            "label_conflicts": conflicts, "duplicates": sorted(dup)}


def paired_between_models(results: dict, shared: dict, *, which: str = "log_probs", n_bins: int = 15,
                          n_resamples: int = 1000, seed: int = 0) -> dict:
    """{model: {metric: {"estimate", "low", "high", "p_value"}}}: metric(model) - metric(first
    model) on the shared questions, on one set of resample weights (accuracy, ece, nll, brier)."""
    names = list(results)
    if len(names) < 2 or shared["ids"].size < 2:
        return {}
    preds = {m: results[m][which][shared["rows"][m]] for m in names}
    _, diffs, _ = bootstrap_many(preds, shared["labels"], list(MAIN_KEYS), n_resamples, seed=seed, n_bins=n_bins,
                                 reference=names[0], paired_names=list(MAIN_KEYS))
    return {m: {k: _cell(_with_estimate(v)) | {"p_value": v.to_dict().get("p_value")} for k, v in d.items()}
            for m, d in diffs.items()}


def group_tables(tests: dict, results: dict, column: str, *, n_bins: int = 15, n_resamples: int = 1000,
                 seed: int = 0) -> list:
    """Per value of the metadata ``column`` (subject or task), per model: the metrics of the
    uncalibrated probabilities on that group's scored rows, all groups of a model in one pass
    (:func:`calibrate.groups.group_metrics`: percentile intervals from resampling the model's
    rows, groups of fewer than :data:`calibrate.metrics.groups.MIN_COUNT` rows without
    intervals, and the ECE a calibrated model would show at the group's size with its
    p-value). Returns a list of {"group", "model", "n", metric: {"estimate", "low", "high"},
    "ece_if_calibrated", "ece_p_calibrated"} (groups of fewer than GROUP_MIN_ROWS rows: "n"
    only); empty when there is one group only (the model table holds its numbers)."""
    from calibrate.groups import group_metrics

    values = []
    for m in tests:
        if column in tests[m].meta:
            values += _in_order(tests[m].meta[column])
    if len(set(values)) < 2:
        return []
    per_model = {}
    for m, sub in tests.items():
        if column not in sub.meta:
            continue
        col = np.asarray(sub.meta[column], dtype=object)
        gm = group_metrics(results[m]["log_probs"], sub.labels, {column: col}, kind="log_probs", n_bins=n_bins,
                           n_resamples=n_resamples, seed=seed, interval_metrics=MAIN_KEYS)
        per_model[m] = {lab[0]: g for g, lab in enumerate(gm.labels)}, gm
    out = []
    for g in dict.fromkeys(values):
        for m, (index, gm) in per_model.items():
            if g not in index:
                continue
            i = index[g]
            row = {"group": g, "model": m, "n": int(gm.counts[i])}
            if row["n"] >= GROUP_MIN_ROWS:
                for key in MAIN_KEYS:
                    j = gm.metrics.index(key)
                    lo, hi = gm.low[i, j], gm.high[i, j]
                    row[key] = {"estimate": float(gm.values[i, j]),
                                "low": float(lo) if np.isfinite(lo) else None,
                                "high": float(hi) if np.isfinite(hi) else None}
                if gm.null_mean is not None:
                    j = gm.metrics.index("ece")
                    row["ece_if_calibrated"] = float(gm.null_mean[i, j])
                    row["ece_p_calibrated"] = float(gm.p_calibrated[i, j])
            out.append(row)
    return out


# ----------------------------------------------------------------------------- the flow
def read_logs(paths, options: dict, log=None):
    """:func:`calibrate.io.llm.read_choice_logits` with the command line's options; its
    notes (the format detected, padding, refused rows) go to ``log``."""
    from calibrate.io.llm import read_choice_logits

    cl = read_choice_logits(paths, **options)
    if log is not None:
        fmt = options.get("format", "auto")
        log(f"format {cl.detected}" + (" (detected from the content: --format auto)" if fmt == "auto" else ""))
        for note in cl.notes:
            if not _DUP_NOTE.search(note):  # duplicates are counted per model (duplicate_ids)
                log(note)
    return cl


def duplicate_ids(names, ids) -> dict:
    """{model: [ids occurring more than once among that model's rows]} (models with any)."""
    out = {}
    for m in _in_order(names):
        seen, dup = set(), []
        for rid in ids[names == m].tolist():
            if rid in seen and rid not in dup:
                dup.append(rid)
            seen.add(rid)
        if dup:
            out[m] = dup
    return out


def split_logs(cl, *, model_by=None, split_by=None, fit_split=(), seed=0, fit_cl=None, fit_model_by=None):
    """{model: (fit Subset, scored Subset)}, and the gold -inf rows {model: [ids]} left out.

    With ``fit_cl`` (separate fit logs) the fit rows of a model are its rows there (matched by
    model name; one model on each side is matched whatever its name)."""
    names = model_names(cl, model_by)
    for m, dup in duplicate_ids(names, cl.ids).items():
        cl.notes.append(f"model {m}: {len(dup)} ids occur more than once: {_listing(dup, 5)}")
    excluded = {}
    bad = gold_not_finite(cl.logits, cl.labels)
    if fit_cl is None:
        mask = fit_mask(cl, split_by, fit_split, seed)
    else:
        fnames = model_names(fit_cl, fit_model_by)
        fbad = gold_not_finite(fit_cl.logits, fit_cl.labels)
    out = {}
    models = _in_order(names)
    for m in models:
        own = names == m
        excluded[m] = cl.ids[own & bad].tolist()
        if fit_cl is None:
            fit_rows = np.flatnonzero(own & mask & ~bad)
            test_rows = np.flatnonzero(own & ~mask & ~bad)
            out[m] = (Subset(cl, fit_rows), Subset(cl, test_rows))
        else:
            fmodels = _in_order(fnames)
            fm = m if m in fmodels else (fmodels[0] if len(fmodels) == 1 and len(models) == 1 else None)
            if fm is None:
                raise InputError(f"--fit-on: no logs of model {m!r} (models there: {', '.join(map(str, fmodels))}); "
                                 "give fit logs in folders named like the scored ones")
            out[m] = (Subset(fit_cl, np.flatnonzero((fnames == fm) & ~fbad)),
                      Subset(cl, np.flatnonzero(own & ~bad)))
            excluded[m] += fit_cl.ids[(fnames == fm) & fbad].tolist()
    return out, excluded


def split_words(split_by, fit_split, seed, fit_on) -> str:
    if fit_on:
        return f"fitted on the logs {fit_on}, scored on the logs given"
    if split_by:
        return (f"fitted on the rows whose {split_by} is {', '.join(fit_split)}, scored on the other rows")
    return (f"fitted on a seeded half of the questions (seed {seed}: the low bit of blake2b(seed, id), the same "
            "questions for every model), scored on the other half")


def fit_models(splits: dict, method: str = "temperature") -> dict:
    """{model: (fitted calibrator, fit Subset, scored Subset)}."""
    out = {}
    for m, (fit, test) in splits.items():
        if fit.n < 2:
            raise InputError(f"model {m}: {fit.n} fit row(s); the fit split needs at least 2")
        out[m] = (get_calibrator(method).fit(fit.logits, fit.labels, kind="logits"), fit, test)
    return out


def evaluate_numbers(calibrator, sub, n_bins: int = 15) -> dict:
    """Point numbers of one model's rows (no intervals): accuracy, ece, ece_helm, nll,
    brier, aurc; with a fitted calibrator also ece_t and nll_t."""
    from calibrate.metrics.selective import aurc

    y = sub.labels
    lp = metrics.log_softmax(sub.logits)
    p = np.exp(lp)
    out = {"n": sub.n, "accuracy": metrics.accuracy(p, y), "ece": metrics.ece(p, y, n_bins),
           "ece_helm": metrics.ece(p, y, HELM_BINS, binning="mass"), "nll": metrics.nll_from_logits(lp, y),
           "brier": metrics.brier(p, y), "aurc": aurc(p.max(axis=1), p.argmax(axis=1) == y)}
    if calibrator is not None and sub.n:
        pt = calibrator.predict_proba(sub.logits, kind="logits")
        out["ece_t"] = metrics.ece(pt, y, n_bins)
        out["nll_t"] = metrics.nll(pt, y)
    return out


# ----------------------------------------------------------------------------- the report
def _fmt(x, digits=4):
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "—"
    return f"{x:.{digits}f}"


def _ci_cells(row: dict, keys, best=None) -> list:
    cells = []
    for k in keys:
        c = row.get(k)
        if c is None:
            cells.append({"text": "—"})
            continue
        ci = "" if c.get("low") is None else f"[{_fmt(c['low'])}, {_fmt(c['high'])}]"
        cells.append({"text": _fmt(c["estimate"]), "ci": ci, "cls": "better" if best and best.get(k) else ""})
    return cells


def _best(results: dict, keys) -> dict:
    """{model: {key: True}} for the best model in each column (more than one model)."""
    out = {m: {} for m in results}
    if len(results) < 2:
        return out
    for k in keys:
        if k in ("temperature", "lac_coverage", "aps_coverage"):
            continue
        vals = {m: r["table"][k]["estimate"] for m, r in results.items() if k in r["table"]}
        vals = {m: v for m, v in vals.items() if v is not None and np.isfinite(v)}
        if vals:
            out[(max if k in HIGHER_IS_BETTER else min)(vals, key=vals.get)][k] = True
    return out


def _diff_table(diffs: dict, reference: str, caption: str) -> dict:
    return paired_table(diffs, reference, MAIN_KEYS, names=_NAMES, first="models", caption=caption)


def _group_table(rows: list, label: str) -> dict:
    body = []
    for r in rows:
        cells = [{"text": str(r["group"])}, {"text": str(r["model"])}, {"text": f"{r['n']:,}"}]
        if "accuracy" in r:
            cells += _ci_cells(r, MAIN_KEYS)
            pv = r.get("ece_p_calibrated")
            cells.append({"text": _fmt(r["ece_if_calibrated"]), "ci": f"p = {pv:.3f}",
                          "cls": "worse" if pv < 0.05 else ""} if pv is not None else {"text": "—"})
        else:
            cells += [{"text": "—", "ci": f"fewer than {GROUP_MIN_ROWS} rows"}] + [{"text": "—"}] * 4
        body.append({"cells": cells})
    return {"header": [label, "model", "n"] + [_NAMES[k] for k in MAIN_KEYS] + ["ECE if calibrated"], "rows": body,
            "caption": f"Per {label}, uncalibrated, on the scored rows; 95 % percentile bootstrap intervals over "
                       "the model's rows (calibrate.groups.group_metrics; none under 30 rows). \"ECE if "
                       "calibrated\": the ECE a calibrated model shows at the group's size and confidences, and p "
                       "the chance of an ECE this large if it were calibrated (red below 0.05)."}


def _listing(items, most=20) -> str:
    items = list(items)
    head = ", ".join(map(str, items[:most]))
    return head + (f", ... ({len(items) - most} more)" if len(items) > most else "")


def llm_report_sections(splits: dict, excluded: dict, *, data_name: str = "", split_text: str = "",
                        method: str = "temperature", n_bins: int = 15, n_resamples: int = 1000, seed: int = 0,
                        alpha: float | None = 0.1, title: str = "Language-model calibration report",
                        notes=(), started: float | None = None, progress=None):
    """The comparison report of several models.

    splits: {model: (fit Subset, scored Subset)} (:func:`split_logs`); excluded: {model: ids
    of rows whose gold option is -inf, left out}. Returns (sections, subtitle, data) in the
    shape :func:`calibrate.report.html.render_html` and :func:`calibrate.report.pdf.render_pdf` take.
    """
    from calibrate.report.figures import reliability_figure
    from calibrate.report.html import _interval_words, _png, command_line, display_path, environment

    t0 = started if started is not None else time.time()
    say = progress or (lambda s: None)
    results = {}
    for m, (fit, test) in splits.items():
        say(f"model {m}: fitting {method} on {fit.n:,} rows, scoring {test.n:,} rows with {n_resamples} resamples")
        results[m] = model_numbers(fit, test, method=method, n_bins=n_bins, n_resamples=n_resamples, seed=seed,
                                   alpha=alpha)
    tests = {m: s[1] for m, s in splits.items()}
    names = list(results)
    shared = shared_rows(tests)
    paired = paired_between_models(results, shared, n_bins=n_bins, n_resamples=n_resamples, seed=seed)
    paired_t = paired_between_models(results, shared, which="log_probs_t", n_bins=n_bins,
                                     n_resamples=n_resamples, seed=seed)
    subjects = group_tables(tests, results, "subject", n_bins=n_bins, n_resamples=n_resamples, seed=seed)
    same = all("task" in t.meta and "subject" in t.meta and np.array_equal(t.meta["task"], t.meta["subject"])
               for t in tests.values())
    tasks = [] if same else group_tables(tests, results, "task", n_bins=n_bins, n_resamples=n_resamples, seed=seed)
    boot = results[names[0]]["bootstrap"]

    keys_a = ["accuracy", "ece", "ece_helm", "nll", "brier", "aurc"]
    keys_b = ["temperature", "ece_t", "nll_t"] + (
        ["lac_size", "lac_coverage", "aps_size", "aps_coverage"] if alpha is not None else [])
    best = _best(results, keys_a + keys_b)
    head = [{"text": m} for m in names]

    def table(keys, caption):
        rows = [{"cells": [head[i], {"text": f"{results[m]['n']:,}"}] + _ci_cells(results[m]["table"], keys, best[m])}
                for i, m in enumerate(names)]
        return {"header": ["model", "n scored"] + [_NAMES[k] for k in keys], "rows": rows, "caption": caption}

    n_excl = sum(len(v) for v in excluded.values())
    summary = [("logs", data_name or "—"), ("models", ", ".join(names)),
               ("questions scored", ", ".join(f"{m}: {results[m]['n']:,}" for m in names)),
               ("temperature", f"{method}, {split_text}"),
               ("shared questions", f"{shared['ids'].size:,} scored by every model (paired differences on these)"),
               ("gold option absent (-inf)", f"{n_excl} row(s), listed below, left out of every number"),
               ("binning", f"ECE: {n_bins} equal-width bins, top-label; and {HELM_BINS} equal-mass bins (HELM's)"),
               ("intervals", _interval_words(boot))]
    cmp_paras = [
        "One row per model, every number on its scored rows (never on the rows its temperature or conformal "
        "threshold was fitted on). Brier is the multi-class Brier score, 1/n Σ_i Σ_j (p_ij − [y_i = j])², "
        "the definition lm-evaluation-harness's brier_score aggregates. The equal-mass ECE uses 10 bins that hold "
        "equal numbers of questions, the variant HELM reports. AURC: area under the risk-coverage curve of the "
        "max probability (lower is better)."]
    tables = [table(keys_a, "As the model's log-likelihoods say (softmax over the options); green: best in each "
                            "column."),
              table(keys_b, "After the temperature fitted on the fit split" + (
                  f"; answer sets at miscoverage α = {alpha:g} (thresholds fitted on the fit split)"
                  if alpha is not None else "") + ".")]
    sections = [{"id": "summary", "title": "Summary", "summary": summary, "lead": True},
                {"id": "models", "title": "Models compared, with 95 % confidence intervals",
                 "paragraphs": cmp_paras, "tables": tables}]
    shared_para = (f"{shared['ids'].size:,} questions are scored by every model and joined on their ids; left out "
                   "per model: " + ", ".join(f"{m} {shared['dropped'][m]:,}" for m in names) + ".")
    if shared["label_conflicts"]:
        shared_para += (f" {len(shared['label_conflicts'])} shared ids have different gold answers between models "
                        f"and are left out: {_listing(shared['label_conflicts'])}.")
    if shared["duplicates"]:
        shared_para += f" Ids occurring twice in a model's rows, left out: {_listing(shared['duplicates'])}."
    if paired:
        ref = names[0]
        sections.append({"id": "paired", "title": "Paired differences on the shared questions",
                         "paragraphs": [shared_para],
                         "tables": [_diff_table(paired, ref, f"Uncalibrated: each model minus {ref} on the same "
                                                              "bootstrap resamples of the shared questions (green: "
                                                              "better beyond the noise at 95 %, red: worse)."),
                                    _diff_table(paired_t, ref, f"After each model's temperature: minus {ref}'s.")]})
    elif len(names) > 1:
        sections.append({"id": "paired", "title": "Paired differences on the shared questions",
                         "paragraphs": [shared_para + " Too few to compare."]})
    figs = []
    for m in names:
        r, test = results[m], tests[m]
        fig = reliability_figure({"uncalibrated": np.exp(r["log_probs"]), f"after {method}": np.exp(r["log_probs_t"])},
                                 test.labels, n_bins, suptitle=m)
        figs.append(_png(fig, f"Reliability diagrams of {m}", f"{m}: scored rows, before and after the {method} "
                                                               "fitted on the fit split."))
    sections.append({"id": "reliability", "title": "Reliability diagrams", "figures": figs})
    if subjects:
        sections.append({"id": "subjects", "title": "Per subject", "tables": [_group_table(subjects, "subject")],
                         "collapsed": len(subjects) > 40})
    if tasks:
        sections.append({"id": "tasks", "title": "Per task", "tables": [_group_table(tasks, "task")],
                         "collapsed": len(tasks) > 40})
    gold_rows = [{"cells": [{"text": m}, {"text": str(len(v))}, {"text": _listing(v, 50)}]}
                 for m, v in excluded.items() if v]
    sections.append({"id": "excluded", "title": "Rows left out",
                     "paragraphs": ["Rows whose gold option has log-likelihood −inf (an absent option) have infinite "
                                    "NLL; they are listed here by id and left out of every number."
                                    + ("" if gold_rows else " None.")] + [str(n) for n in notes],
                     "tables": [{"header": ["model", "rows", "ids"], "rows": gold_rows}] if gold_rows else []})
    env = environment()
    data = {
        "title": title, "logs": data_name, "split": split_text, "method": method, "bins": n_bins,
        "helm_bins": HELM_BINS, "conformal_alpha": alpha, "bootstrap": {**boot, "interval": boot["method"]},
        "models": {m: {"n": r["n"], "n_fit": r["n_fit"], "metrics": r["table"], "calibrator": r["calibrator"],
                       "temperature_minus_uncalibrated": r["diffs"]} for m, r in results.items()},
        "shared": {"n": int(shared["ids"].size), "dropped": shared["dropped"],
                   "label_conflicts": shared["label_conflicts"], "duplicates": shared["duplicates"]},
        "paired_differences": paired, "paired_differences_after_temperature": paired_t,
        "per_subject": subjects, "per_task": tasks, "gold_minus_inf": excluded, "notes": list(notes),
        "command": command_line(), "environment": env,
    }
    data["wall_seconds"] = round(time.time() - t0, 2)
    sections.append({"id": "provenance", "title": "How this report was made", "collapsed": True,
                     "summary": [("command", data["command"]), ("time taken", f"{data['wall_seconds']:.1f} s"),
                                 ("machine", f"{env['cpu']}, {env['cores']} cores, {env['platform']}")]})
    subtitle = f"{display_path(data_name) if data_name else ''} — {len(names)} model(s)"
    return sections, subtitle, data


def print_lines(lines, file=None) -> None:
    for line in lines:
        print(line, file=file or sys.stdout)


# ----------------------------------------------------------------------------- commands
def _err(line: str) -> None:
    print(f"calibrate: {line}", file=sys.stderr)


def _read_for(args):
    from calibrate.io.llm.args import log_paths, reader_options

    return read_logs(log_paths(args), reader_options(args), log=_err)


def cli_fit(args) -> int:
    """``calibrate fit LOGS...``: a calibrator per model on its fit split, scored on the rest.
    ``-o`` names the file; with several models it must contain ``{model}``."""
    from calibrate.io.llm.args import fit_split_values
    from calibrate.io.outputs import check_outputs, write_outputs

    split = fit_split_values(args)
    cl = _read_for(args)
    if args.fit_all:
        if args.split_by:
            raise InputError("give --fit-all or --split-by, not both")
        names = model_names(cl, args.model_by)
        bad = gold_not_finite(cl.logits, cl.labels)
        splits = {m: (Subset(cl, np.flatnonzero((names == m) & ~bad)), None) for m in _in_order(names)}
        excluded = {m: cl.ids[(names == m) & bad].tolist() for m in splits}
    else:
        splits, excluded = split_logs(cl, model_by=args.model_by, split_by=args.split_by, fit_split=split,
                                      seed=getattr(args, "seed", 0) or 0)
    models = list(splits)
    if len(models) > 1 and "{model}" not in args.output:
        raise InputError(f"-o {args.output}: the logs hold {len(models)} models ({', '.join(models)}); put "
                         "{model} in the output name (e.g. -o out/{model}.json) for one calibrator per model")
    outputs = {args.output.replace("{model}", _safe(m)): m for m in models}
    from calibrate.io.llm.args import log_paths

    check_outputs(list(outputs), log_paths(args))
    fitted = {}
    for m in models:
        fit, test = splits[m]
        if fit.n < 2:
            raise InputError(f"model {m}: {fit.n} fit row(s); the fit split needs at least 2")
        cal = get_calibrator(args.method).fit(fit.logits, fit.labels, kind="logits")
        fitted[m] = cal
    write_outputs({path: fitted[m].to_json() for path, m in outputs.items()}, log_paths(args))
    print(f"method      {args.method}")
    print("fit split   " + ("every row (--fit-all): nothing held out, no scores shown" if args.fit_all
                             else split_words(args.split_by, split, getattr(args, "seed", 0) or 0, None)))
    for path, m in outputs.items():
        cal = fitted[m]
        fit, test = splits[m]
        params = ", ".join(f"{a} = {b:.4g}" if isinstance(b, float) else f"{a} = {b}" for a, b in cal.summary().items())
        print(f"model       {m}: {params} (fitted on {fit.n:,} rows)")
        if test is not None and test.n:
            e = evaluate_numbers(cal, test, args.bins)
            print(f"  held out  n = {test.n:,}: NLL {e['nll']:.4f} -> {e['nll_t']:.4f}, "
                  f"ECE ({args.bins} bins) {e['ece']:.4f} -> {e['ece_t']:.4f}")
        if excluded.get(m):
            print(f"  left out  {len(excluded[m])} rows whose gold option is -inf: {_listing(excluded[m], 10)}")
        print(f"  wrote     {path}")
    return 0


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in str(name)) or "model"


def cli_evaluate(args) -> int:
    """``calibrate evaluate LOGS...``: per model, the point numbers on its rows (with
    --split-by, a temperature fitted on the fit split and the numbers on the other rows)."""
    import json

    from calibrate.calibrators import load
    from calibrate.io.llm.args import fit_split_values

    split = fit_split_values(args)
    if args.calibrator and len(args.calibrator) > 1:
        raise InputError(f"evaluate takes one --calibrator, got {len(args.calibrator)}")
    cl = _read_for(args)
    cal = load(args.calibrator[0]) if args.calibrator else None
    if cal is not None and cal.n_classes_ != cl.k:
        raise InputError(f"{args.data}: has {cl.k} options, but the calibrator {args.calibrator[0]} was fitted on "
                         f"{cal.n_classes_}")
    if args.split_by:
        if cal is not None:
            raise InputError("give --calibrator or --split-by (which fits a temperature), not both")
        splits, excluded = split_logs(cl, model_by=args.model_by, split_by=args.split_by, fit_split=split)
        rows = {m: (get_calibrator("temperature").fit(f.logits, f.labels, kind="logits"), t)
                for m, (f, t) in splits.items()}
    else:
        names = model_names(cl, args.model_by)
        bad = gold_not_finite(cl.logits, cl.labels)
        rows = {m: (cal, Subset(cl, np.flatnonzero((names == m) & ~bad))) for m in _in_order(names)}
        excluded = {m: cl.ids[(names == m) & bad].tolist() for m in rows}
    res = {"format": cl.detected, "bins": args.bins, "models": {}}
    for m, (c, sub) in rows.items():
        r = evaluate_numbers(c, sub, args.bins)
        if c is not None:
            r["temperature"] = c.summary().get("T")
        r["gold_minus_inf"] = excluded.get(m, [])
        res["models"][m] = r
    if args.json:
        print(json.dumps(res))
        return 0
    keys = ["accuracy", "ece", "ece_helm", "nll", "brier", "aurc", "temperature", "ece_t", "nll_t"]
    for m, r in res["models"].items():
        print(f"model {m} (n = {r['n']:,})" + (f", calibrated by {args.calibrator[0]}" if cal is not None else "")
              + (", scored on the rows outside the fit split" if args.split_by else ""))
        for k in keys:
            if k in r and r[k] is not None:
                label = _NAMES[k].replace("(15 bins)", f"({args.bins} bins)")
                print(f"  {label:<30}{r[k]:.4f}")
        if r["gold_minus_inf"]:
            print(f"  left out {len(r['gold_minus_inf'])} rows whose gold option is -inf: "
                  f"{_listing(r['gold_minus_inf'], 10)}")
    return 0


def cli_report(args) -> int:
    """``calibrate report LOGS... -o report.html``: the comparison report."""
    from calibrate.io.llm.args import fit_split_values, log_paths, reader_options
    from calibrate.io.outputs import check_outputs
    from calibrate.report.html import render_report, write_report

    t0 = time.time()
    split = fit_split_values(args)
    inputs = log_paths(args) + ([args.fit_on] if args.fit_on else []) + ([args.labels] if args.labels else [])
    check_outputs([args.output, args.json, args.pdf], inputs)
    for opt in ("calibrator", "ood", "methods"):
        if getattr(args, opt, None):
            raise InputError(f"--{opt} applies to saved predictions; for LLM logs the report fits a temperature "
                             "per model (--split-by or --fit-on)")
    if args.fit_on and args.split_by:
        raise InputError("give --fit-on LOGS or --split-by FIELD, not both")
    alpha = 0.1 if args.conformal is None else args.conformal
    if not 0.0 < alpha < 1.0:
        raise InputError(f"--conformal: expected a miscoverage ALPHA in (0, 1), got {alpha:g}")
    cl = _read_for(args)
    fit_cl = read_logs([args.fit_on], reader_options(args), log=_err) if args.fit_on else None
    if fit_cl is not None and fit_cl.k != cl.k:
        raise InputError(f"{args.fit_on}: has {fit_cl.k} options, the logs to score have {cl.k}")
    splits, excluded = split_logs(cl, model_by=args.model_by, split_by=args.split_by, fit_split=split,
                                  seed=args.seed, fit_cl=fit_cl, fit_model_by=args.model_by)
    title = args.title if args.title != "Calibration report" else "Language-model calibration report"
    sections, subtitle, data = llm_report_sections(
        splits, excluded, data_name=", ".join(log_paths(args)),
        split_text=split_words(args.split_by, split, args.seed, args.fit_on), n_bins=args.bins,
        n_resamples=args.resamples, seed=args.seed, alpha=alpha, title=title,
        notes=[n for n in cl.notes + (fit_cl.notes if fit_cl else []) if not _DUP_NOTE.search(n)], started=t0,
        progress=_err)
    html, pdf = render_report(title, sections, subtitle, pdf=bool(args.pdf))
    write_report(args.output, html, data, json_path=args.json, inputs=inputs, pdf_path=args.pdf, pdf=pdf)
    for m, r in data["models"].items():
        t = r["metrics"]
        print(f"{m:<16} n {r['n']:>7,}  acc {t['accuracy']['estimate']:.4f}  ECE {t['ece']['estimate']:.4f} "
              f"[{t['ece']['low']:.4f}, {t['ece']['high']:.4f}]  NLL {t['nll']['estimate']:.4f}  "
              f"T {t['temperature']['estimate']:.3f}  ECE after T {t['ece_t']['estimate']:.4f}")
    print(f"shared questions: {data['shared']['n']:,}")
    print("wrote " + " and ".join(p for p in (args.output, args.json, args.pdf) if p))
    return 0
