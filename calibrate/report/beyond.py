"""The report's sections beyond the ECE: selective prediction (risk-coverage), smoothed
reliability diagrams, the Brier decomposition and the signed ECE, OOD detection (with
``ood_logits``) and conformal prediction sets (with ``conformal_alpha``).

Each ``*_section`` function computes its numbers with the numpy core (the JSON part)
and lays them out as template sections (tables and figures); :func:`beyond_report`
runs those asked for. Nothing here is drawn before it is computed.
"""

from __future__ import annotations

import numpy as np

from calibrate import conformal
from calibrate._core.validation import check_confidence_level, renamed_keywords
from calibrate.metrics import decomposition, ood
from calibrate.metrics.smooth import BAND_CELLS
from calibrate.report.figures import (
    SMOOTH_MIN_ROWS,
    binned_and_smooth_figure,
    figure_to_png,
    reliability_data,
    risk_coverage_data,
    risk_coverage_figure,
    score_histogram_data,
    score_histogram_figure,
    smooth_reliability_data,
)
from calibrate.resampling import Interval
from calibrate.resampling.detection import detection_intervals
from calibrate.resampling.selective import selective_scheme

COVERAGES = (0.8, 0.9)
OOD_MAX_RESAMPLES = 200  # each detection resample is a few passes over n_in + n_out groups
BAND_ROW_RESAMPLES = 50_000_000  # row-level intervals: at most this many rows x resamples per prediction
BAND_SCHEME = "Poisson bootstrap over rows, resampled as group counts"


def band_resamples(n_resamples: int, n: int, cap: int | None = None) -> int:
    """Resamples for the row-level bootstrap intervals of the selective table (AURC, risk
    at coverage), used while :func:`calibrate.resampling.selective.selective_scheme` says "rows": the asked number, at most
    ``cap``, and at most BAND_ROW_RESAMPLES / n (but at least 100), so they cost O(5e7)
    work whatever n. Beyond, those intervals, and at any n the figures' bands and the
    smooth-ECE interval, are resampled as group / cell counts (O(groups) each) and get the
    full number. Captions and JSON say which."""
    r = int(n_resamples) if cap is None else min(int(n_resamples), cap)
    return max(1, min(r, max(100, BAND_ROW_RESAMPLES // max(int(n), 1))))


def _f(x, digits=4):
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "—"
    return f"{x:.{digits}f}"


def _ci(c):
    return f"[{_f(c['low'])}, {_f(c['high'])}]"


def _png(fig, alt, caption="", dpi=110):
    """The template's figure entry (as html._png; repeated so that html imports this module, not back)."""
    import base64
    import struct

    data = figure_to_png(fig, dpi)
    w, h = struct.unpack(">II", data[16:24])
    return {"png": base64.b64encode(data).decode("ascii"), "alt": alt, "caption": caption, "width": w, "height": h}


def best_marks(values: dict, lower_is_better=True, digits: int = 4) -> dict:
    """{name: "better" | "better tie" | ""}: the best value as shown (rounded to ``digits``);
    several equal best values are all marked, as a tie."""
    shown = {n: round(float(v), digits) for n, v in values.items() if v is not None and np.isfinite(v)}
    if len(values) < 2 or not shown:
        return dict.fromkeys(values, "")
    best = (min if lower_is_better else max)(shown.values())
    winners = [n for n, v in shown.items() if v == best]
    mark = "better tie" if len(winners) > 1 else "better"
    return {n: mark if n in winners else "" for n in values}


# ------------------------------------------------------------------------ decomposition
def decomposition_numbers(probs: dict, labels, n_bins: int = 15) -> dict:
    """{name: Brier decomposition (calibrate.metrics.decomposition.brier_decomposition) plus
    brier_calibration = reliability, brier_refinement = brier - reliability, and the
    over/under-confidence of the top-label ECE} for probs {name: (n, k)}."""
    out = {}
    for name, p in probs.items():
        bd = decomposition.brier_decomposition(p, labels, n_bins)
        ou = decomposition.ece_over_under(p, labels, n_bins)
        out[name] = {**bd, "brier_calibration": bd["reliability"],
                     "brier_refinement": bd["brier"] - bd["reliability"],
                     "overconfidence": ou["overconfidence"], "underconfidence": ou["underconfidence"]}
    return out


def decomposition_from_sums(class_decomposition: dict, brier: float, probs, labels, n_bins: int = 15) -> dict:
    """The entry of :func:`decomposition_numbers` of one prediction from sums already made:
    ``class_decomposition`` (calibrate.report.classes.class_numbers()["decomposition"], the
    class-wise part) and the Brier score; only the top-label over/under split is computed here."""
    ou = decomposition.ece_over_under(probs, labels, n_bins)
    bd = {"brier": float(brier), **class_decomposition}
    return {**bd, "brier_calibration": bd["reliability"], "brier_refinement": bd["brier"] - bd["reliability"],
            "overconfidence": ou["overconfidence"], "underconfidence": ou["underconfidence"]}


def decomposition_table(numbers: dict, n_bins: int) -> dict:
    cols = [("brier", "Brier"), ("reliability", "calibration (REL)"), ("brier_refinement", "refinement"),
            ("resolution", "resolution (RES)"), ("uncertainty", "uncertainty (UNC)"),
            ("overconfidence", "ECE overconfidence"), ("underconfidence", "ECE underconfidence")]
    rows = [{"cells": [{"text": name}] + [{"text": _f(r[k])} for k, _ in cols]} for name, r in numbers.items()]
    return {"header": ["prediction"] + [h for _, h in cols], "rows": rows,
            "caption": f"Brier decomposition (Murphy 1973; {n_bins} equal-width bins per class, one-vs-rest) "
                       "and the signed split of the top-label ECE. Refinement = Brier − calibration "
                       "(= UNC − RES + within-bin terms), so calibration + refinement = Brier exactly; "
                       "overconfidence + underconfidence = ECE. Point estimates."}


# ------------------------------------------------------------------------ selective
def _top_label(p, y):
    """(confidence (n,), correct (n,) bool) of (n, k) probabilities, or of a digest
    (:class:`calibrate.report.digest.Digest`, which holds them)."""
    if hasattr(p, "top_label"):
        return p.top_label()
    return p.max(axis=1), p.argmax(axis=1) == y


def selective_section(probs: dict, labels, n_resamples: int, seed: int):
    """Risk-coverage of the max probability of each prediction: (json, section).
    probs: {name: (n, k) probabilities or a :class:`calibrate.report.digest.Digest`}."""
    y = np.asarray(labels)
    n_band = int(n_resamples)
    grouped = selective_scheme("auto", y.shape[0]) == "groups"  # intervals from group counts: the full number
    n_resamples = n_band if grouped else band_resamples(n_resamples, y.shape[0])
    curves, js = [], {}
    groups = iv_groups = 0
    for name, p in probs.items():
        conf, correct = _top_label(p, y)
        d = risk_coverage_data(conf, correct, label=name, n_resamples=n_resamples, seed=seed, coverages=COVERAGES,
                               band_resamples=n_band)
        curves.append(d)
        groups = max(groups, d.intervals.pop("band")["n_groups"])
        iv_groups = max(iv_groups, d.intervals.pop("n_groups") or 0)
        for key in ("scheme", "n_resamples"):  # said once for all predictions (below)
            d.intervals.pop(key)
        js[name] = {k: v.to_dict() if isinstance(v, Interval) else v for k, v in d.intervals.items()}
    keys = [("aurc", "AURC"), ("eaurc", "E-AURC"), ("augrc", "AUGRC")] + \
           [(f"risk@{c:g}", f"risk at {100 * c:g} % coverage") for c in COVERAGES]
    best = {k: best_marks({n: js[n][k]["estimate"] for n in js}) for k, _ in keys}
    rows = [{"cells": [{"text": n}] + [{"text": _f(js[n][k]["estimate"]), "ci": _ci(js[n][k]), "cls": best[k][n]}
                                       for k, _ in keys]} for n in js]
    table = {"header": ["prediction"] + [h for _, h in keys], "rows": rows,
             "caption": "Selective prediction with the max probability as the confidence score; lower is better. "
                        "E-AURC is the excess over the best possible ranking of the same errors. Intervals: 95 % "
                        f"percentile bootstrap over rows ({n_resamples} resamples" + (
                            f"; {BAND_SCHEME}: at most {iv_groups:,} contiguous confidence groups, the values "
                            "shifted by the exact estimate minus the grouped one)." if grouped else ").")}
    fig = _png(risk_coverage_figure(curves), "Risk-coverage curves",
               f"Selective risk (error rate among the accepted rows) when only the most confident fraction of rows "
               f"is accepted; shaded: pointwise 95 % percentile bootstrap band ({n_band} resamples; {BAND_SCHEME}: "
               f"the rows sorted by confidence in at most {groups:,} contiguous groups, the risk exact in "
               "distribution at each group boundary and read stepwise at the next boundary, so coverage is "
               "resolved to one group). Tied confidences are accepted together (one step per distinct value).")
    section = {"id": "selective", "title": "Selective prediction: risk against coverage",
               "paragraphs": ["A model that may abstain accepts a row only when its confidence is high enough. "
                              "Calibration changes the curve only through the order of the rows' confidences: "
                              "temperature scaling keeps each row's predicted class but can reorder rows with "
                              "different logit profiles a little; binning calibrators (isotonic, histogram) "
                              "also create ties, which are accepted together."],
               "tables": [table], "figures": [fig]}
    return {"score": "max probability", "n_resamples": n_resamples, "confidence": 0.95, "interval": "percentile",
            "scheme": (f"{BAND_SCHEME} ({iv_groups} groups, shifted by the grouping offset)" if grouped
                       else "rows drawn with replacement"),
            "band": {"n_resamples": n_band, "scheme": BAND_SCHEME, "n_groups": groups}, "predictions": js}, section


# ------------------------------------------------------------------------ smooth ECE
def smooth_section(probs: dict, labels, n_bins: int, n_resamples: int, seed: int, group: int = 4):
    """Smoothed reliability diagrams beside the binned ones: (json, section).
    probs: {name: (n, k) probabilities or a :class:`calibrate.report.digest.Digest`}."""
    r = int(n_resamples)  # interval and band: resampled as (cell, outcome) counts, O(cells) each
    n_band = int(n_resamples)
    js, figs = {}, []
    names = list(probs)
    for i in range(0, len(names), group):
        binned, smoothed = [], []
        for name in names[i:i + group]:
            p = probs[name]
            if hasattr(p, "top_label"):  # a digest: its (n,) confidences and correctness
                conf, correct = p.top_label()
                s = smooth_reliability_data(conf, correct.astype(np.float64), label=name, n_resamples=r,
                                            seed=seed, band_resamples=n_band)
                binned.append(p.reliability_data(n_bins, label=name))
            else:
                s = smooth_reliability_data(p, labels, label=name, n_resamples=r, seed=seed, band_resamples=n_band)
                binned.append(reliability_data(p, labels, n_bins, label=name))
            smoothed.append(s)
            js[name] = {"smooth_ece": {"estimate": s.smece, "low": s.smece_low, "high": s.smece_high,
                                       "confidence": 0.95}, "sigma": s.sigma}
        figs.append(_png(binned_and_smooth_figure(binned, smoothed),
                         f"Binned and smoothed reliability diagrams: {', '.join(names[i:i + group])}",
                         f"Top: {n_bins} equal-width bins. Bottom: kernel-smoothed accuracy against confidence "
                         "(Blasiok & Nakkiran 2023) at the automatic bandwidth σ, with a pointwise 95 % bootstrap "
                         f"band ({n_band} resamples, same σ; {BAND_SCHEME}: {BAND_CELLS:,} equal-width confidence "
                         "cells, each row at the mean confidence of its cell and outcome), dotted where fewer "
                         f"than {SMOOTH_MIN_ROWS} rows lie within "
                         "the kernel; bottom strip: the density of the confidences."))
    best = best_marks({n: js[n]["smooth_ece"]["estimate"] for n in js})
    rows = [{"cells": [{"text": n}, {"text": _f(js[n]["smooth_ece"]["estimate"]), "ci": _ci(js[n]["smooth_ece"]),
                        "cls": best[n]}, {"text": _f(js[n]["sigma"], 3)}]} for n in js]
    table = {"header": ["prediction", "smooth ECE", "bandwidth σ"], "rows": rows,
             "caption": "Smooth ECE: binning-free, consistent estimate of the distance to calibration; "
                        f"interval: 95 % percentile bootstrap at the full-sample σ ({r} resamples; {BAND_SCHEME}). Like the "
                        "plug-in ECE it is biased upward by noise, so for a well-calibrated prediction the "
                        "interval can sit above the estimate."}
    section = {"id": "smooth", "title": "Smoothed reliability diagrams and smooth ECE", "tables": [table],
               "figures": figs}
    return {"n_resamples": r, "band": {"n_resamples": n_band, "scheme": BAND_SCHEME, "n_cells": BAND_CELLS},
            "predictions": js}, section


# ------------------------------------------------------------------------ OOD
def ood_scores(logits) -> dict:
    """Detection scores (higher = more in-distribution) of raw logits (n, k)."""
    return {"MSP": ood.max_softmax(logits), "max logit": ood.max_logit(logits), "energy": ood.energy(logits),
            "entropy": ood.negative_entropy(logits), "DOCTOR": ood.doctor(logits)}


def calibrated_scores(log_probs) -> dict:
    """The scores that depend on the calibrated probabilities (log_probs (n, k))."""
    return {"MSP": ood.max_softmax(log_probs), "entropy": ood.negative_entropy(log_probs),
            "DOCTOR": ood.doctor(log_probs)}


def _calibrated_scores_in_blocks(cal, logits) -> dict:
    """:func:`calibrated_scores` of the calibrator's log-probabilities of (n, k) logits, made
    in row blocks (each score is a function of its row)."""
    from calibrate._core.blocks import row_blocks

    n, k = np.shape(logits)
    parts = [calibrated_scores(cal.predict_log_proba(logits[s])) for s in row_blocks(n, k)]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def ood_section(test_logits, ood_logits, calibrators: dict, ood_name: str = "", n_resamples: int = 200,
                seed: int = 0):
    """Detection of OOD rows: (json, section). Uncalibrated: all five scores; each calibrator:
    the scores that depend on its probabilities (max logit and energy do not). Intervals:
    :func:`calibrate.resampling.detection.detection_intervals` with min(n_resamples, OOD_MAX_RESAMPLES).
    Scores are made in row blocks: nothing (n, k) is kept."""
    s_in = {"uncalibrated": ood_scores(test_logits)}
    s_out = {"uncalibrated": ood_scores(ood_logits)}
    for name, cal in calibrators.items():
        s_in[name] = _calibrated_scores_in_blocks(cal, test_logits)
        s_out[name] = _calibrated_scores_in_blocks(cal, ood_logits)
    r = min(int(n_resamples), OOD_MAX_RESAMPLES)
    js = {pred: {sc: {k: iv.to_dict() for k, iv in
                      detection_intervals(s_in[pred][sc], s_out[pred][sc], n_resamples=r, seed=seed).items()}
                 for sc in s_in[pred]} for pred in s_in}
    cols = [("auroc", "AUROC", False), ("aupr_in", "AUPR-in", False), ("aupr_out", "AUPR-out", False),
            ("fpr_at_95tpr", "FPR at 95 % TPR", True)]
    flat = {(p, s): m for p, d in js.items() for s, m in d.items()}
    best = {k: best_marks({ps: m[k]["estimate"] for ps, m in flat.items()}, low) for k, _, low in cols}
    rows = [{"cells": [{"text": p}, {"text": s}] + [{"text": _f(m[k]["estimate"]), "ci": _ci(m[k]),
                                                      "cls": best[k][(p, s)]} for k, _, _ in cols]}
            for (p, s), m in flat.items()]
    table = {"header": ["prediction", "score"] + [h for _, h, _ in cols], "rows": rows,
             "caption": "In-distribution (the test rows) is the positive class; every score is oriented so that "
                        "higher means more in-distribution. Max logit and energy do not depend on a calibrator; "
                        "MSP, entropy and DOCTOR are recomputed from each calibrator's probabilities. Intervals: "
                        f"95 % percentile bootstrap ({r} resamples, in and out rows resampled separately); green: "
                        "the best estimate in each column."}
    hists = [score_histogram_data(s_in["uncalibrated"][sc], s_out["uncalibrated"][sc], label=sc)
             for sc in s_in["uncalibrated"]]
    fig = _png(score_histogram_figure(hists), "OOD score histograms",
               "Scores of the uncalibrated model on the test rows (in-distribution) and on the OOD rows, "
               "as densities on shared bins.")
    n_out = int(np.asarray(ood_logits).shape[0])
    section = {"id": "ood", "title": "Out-of-distribution detection",
               "paragraphs": [f"OOD rows: {ood_name or 'given'} (n = {n_out:,}); in-distribution rows: the test data."],
               "tables": [table], "figures": [fig]}
    return {"data": ood_name or None, "n_in": int(np.asarray(test_logits).shape[0]), "n_out": n_out,
            "n_resamples": r, "interval": "percentile", "predictions": js}, section


# ------------------------------------------------------------------------ conformal
def _size_numbers(sets, labels) -> dict:
    """The fraction of empty sets, and the worst coverage over the non-empty set sizes
    (an empty set never covers, so its stratum says nothing more)."""
    st = conformal.size_stratified_coverage(sets, labels)
    keep = st["size"] > 0
    empty = int(st["count"][~keep].sum())
    return {"empty_fraction": empty / len(labels),
            "worst_size_coverage": float(st["coverage"][keep].min()) if keep.any() else float("nan")}


def conformal_numbers(cal_lp, cal_y, eval_lp, eval_y, alpha: float, seed: int = 0) -> dict:
    """LAC and APS (randomised, seeded) fitted on (cal_lp (m, k), cal_y) and measured on
    (eval_lp (n, k), eval_y): {method: coverage, mean_set_size, worst_class_coverage,
    empty_fraction, worst_size_coverage (over non-empty sizes), quantile}."""
    out = {}
    for key, cp in (("lac", conformal.LAC(alpha=alpha)), ("aps", conformal.APS(alpha=alpha, seed=seed))):
        cp.fit(cal_lp, cal_y)
        sets = cp.predict_sets(eval_lp)
        out[key] = {"coverage": conformal.marginal_coverage(sets, eval_y),
                    "mean_set_size": conformal.mean_set_size(sets),
                    "worst_class_coverage": conformal.class_conditional_coverage(sets, eval_y)["worst"],
                    **_size_numbers(sets, eval_y),
                    "quantile": float(cp.quantile_)}
    return out


@renamed_keywords(level="confidence_level")
def expected_coverage_range(n_cal: int, n_eval: int, alpha: float, confidence_level: float = 0.95):
    """Central ``confidence_level`` range of the observed coverage of split conformal sets on n_eval
    exchangeable rows, for continuous scores: coverage given the calibration rows is
    Beta(r, n_cal + 1 - r), r = ceil((n_cal + 1)(1 - alpha)), so the count covered is
    beta-binomial(n_eval, r, n_cal + 1 - r). Returns (low, high) as fractions; (1, 1) if r > n_cal."""
    from scipy.stats import betabinom

    r = conformal.conformal_rank(n_cal, alpha)
    if r > n_cal:
        return 1.0, 1.0
    level = check_confidence_level(confidence_level)
    lo, hi = betabinom(n_eval, r, n_cal + 1 - r).ppf([(1 - level) / 2, (1 + level) / 2])
    return float(lo / n_eval), float(hi / n_eval)


def conformal_section(test_logits, test_labels, calibrators: dict, alpha: float, *, fit_logits=None,
                      fit_labels=None, fit_name: str = "", seed: int = 0):
    """Split conformal sets of every prediction: (json, section).

    With fit_logits/fit_labels the sets are calibrated there and measured on all test
    rows; otherwise on a seeded half split of the test rows (``default_rng(seed).permutation``:
    the first half calibrates, the second is measured). The rows are read in blocks
    (:func:`calibrate.report.digest.conformal_in_blocks`: the numbers of :func:`conformal_numbers`).
    """
    from calibrate.report.digest import calibrated_rows, conformal_in_blocks

    z = test_logits  # read in row blocks (a memory-mapped array stays so)
    y = np.asarray(test_labels)
    k = int(np.shape(z)[1])
    if fit_logits is not None:
        cal_z, cal_y, cal_idx, ev_y, ev_idx = fit_logits, np.asarray(fit_labels), None, y, None
        how = f"calibrated on the fitting data ({fit_name or 'given'}), measured on all test rows"
        split = {"calibration": "fit-on", "name": fit_name or None}
    else:
        perm = np.random.default_rng(seed).permutation(y.size)
        cal_idx, ev_idx = perm[: y.size // 2], perm[y.size // 2:]
        cal_z, cal_y, ev_y = z, y[cal_idx], y[ev_idx]
        how = (f"calibrated on a random half of the test rows (seed {seed}), measured on the other half "
               "(no --fit-on data)")
        split = {"calibration": "test half split", "seed": seed}
    res = {}
    for name, cal in {"uncalibrated": None, **calibrators}.items():
        res[name] = conformal_in_blocks(calibrated_rows(cal, cal_z, cal_idx), cal_y, calibrated_rows(cal, z, ev_idx),
                                        ev_y, alpha, seed, k=k)
    cols = [("coverage", "coverage"), ("mean_set_size", "mean set size"),
            ("worst_class_coverage", "worst-class coverage"), ("empty_fraction", "empty sets"),
            ("worst_size_coverage", "worst coverage by set size (non-empty)")]
    lo, hi = expected_coverage_range(len(cal_y), len(ev_y), alpha)
    rows = []
    for pred, d in res.items():
        for method, m in d.items():
            cells = [{"text": pred}, {"text": method.upper()}]
            for k, _ in cols:
                cls = ("worse" if m[k] < lo else "") if k == "coverage" else ""
                cells.append({"text": _f(m[k], 3 if k == "mean_set_size" else 4), "cls": cls})
            rows.append({"cells": cells})
    table = {"header": ["prediction", "sets"] + [h for _, h in cols], "rows": rows,
             "caption": f"Split conformal prediction sets for miscoverage α = {alpha:g} (target coverage "
                        f"{100 * (1 - alpha):g} %), {how}; LAC: 1 − p_y; APS: randomised, seed {seed}. "
                        "Red: a coverage below the 95 % range expected under exchangeability (see above); "
                        "the guarantee is marginal only: the per-class and per-size columns have none."}
    notes = [f"{len(cal_y):,} calibration rows, {len(ev_y):,} evaluation rows. If the rows are exchangeable and "
             f"the scores have no ties, the observed coverage falls in [{lo:.4f}, {hi:.4f}] with probability "
             "95 % (beta-binomial law of split conformal coverage; Vovk 2012, Angelopoulos & Bates 2021)."]
    if fit_logits is not None and calibrators:
        notes.append("The calibrators were fitted on the same data as the conformal thresholds, so for the "
                     "calibrated rows the guarantee is approximate (the score depends on the calibration data).")
    section = {"id": "conformal", "title": "Conformal prediction sets", "paragraphs": notes, "tables": [table]}
    return {"alpha": alpha, **split, "n_calibration": int(len(cal_y)), "n_evaluation": int(len(ev_y)),
            "expected_coverage_range": [lo, hi], "predictions": res}, section


# ------------------------------------------------------------------------ all of them
def beyond_report(preds: dict, labels, test_logits, calibrators: dict, *, n_bins: int = 15,
                  n_resamples: int = 1000, seed: int = 0, ood_logits=None, ood_name: str = "",
                  conformal_alpha=None, fit_logits=None, fit_labels=None, fit_name: str = "",
                  probs: dict | None = None, decomposition: dict | None = None):
    """The new report parts for log-probabilities ``preds`` ({name: (n, k)}, "uncalibrated" first).

    Returns (data, decomposition table, sections): ``data`` holds the JSON keys
    decomposition, selective, smooth (+ ood, conformal when asked); the table goes in the
    metrics section; ``sections`` is {id: section} for selective, smooth, ood, conformal.
    probs: {name: (n, k) probabilities, or the prediction's
    :class:`calibrate.report.digest.Digest`} when the caller has them (then ``preds`` is not
    read; with digests, give ``decomposition``); decomposition: {name: the entry of :func:`decomposition_numbers`} when the
    caller has made it (see :func:`decomposition_from_sums`).
    """
    if probs is None:
        probs = {n: np.exp(lp) for n, lp in preds.items()}
    data, sections = {}, {}
    data["decomposition"] = decomposition if decomposition is not None else decomposition_numbers(probs, labels,
                                                                                                   n_bins)
    table = decomposition_table(data["decomposition"], n_bins)
    data["smooth"], sections["smooth"] = smooth_section(probs, labels, n_bins, n_resamples, seed)
    data["selective"], sections["selective"] = selective_section(probs, labels, n_resamples, seed)
    if ood_logits is not None:
        data["ood"], sections["ood"] = ood_section(test_logits, ood_logits, calibrators, ood_name, n_resamples,
                                                   seed)
    if conformal_alpha is not None:
        data["conformal"], sections["conformal"] = conformal_section(
            test_logits, labels, calibrators, conformal_alpha, fit_logits=fit_logits, fit_labels=fit_labels,
            fit_name=fit_name, seed=seed)
    return data, table, sections
