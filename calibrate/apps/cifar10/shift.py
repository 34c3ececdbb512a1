"""Calibration under distribution shift and on unseen inputs: the numbers (numpy only).

The study follows Ovadia et al. 2019 ("Can you trust your model's uncertainty?
Evaluating predictive uncertainty under dataset shift", NeurIPS): every model x
calibrator, fitted on clean validation data, is evaluated on the test images under each
corruption at each severity (corruptions.py), and its confidence scores are used to tell
in-distribution test images from out-of-distribution ones (ood.py).

Shapes: ``logits[model]``: (C, S, n, k) float, the predictions on the n shifted test
images of corruption c at severity s (severity 0, the clean images of the same n rows,
is added by the caller as the corruption "clean"); ``labels``: (n,) int.
"""

from __future__ import annotations

import numpy as np

from calibrate import conformal
from calibrate.metrics import calibration as metrics
from calibrate.metrics import ood, selective
from calibrate.report.beyond import ood_scores
from calibrate.resampling.detection import detection_intervals
from calibrate.resampling.tables import evaluate_with_ci

SHIFT_KEYS = ("accuracy", "ece", "nll", "brier")
SHIFT_CALIBRATORS = ("none", "temperature", "dirichlet", "isotonic")  # fitted on clean validation data
CLEAN = "clean"  # severity 0: the same test rows without corruption


def calibrated_log_probs(calibrator, logits: np.ndarray) -> np.ndarray:
    """(n, k) log-probabilities: log-softmax (calibrator None) or the calibrator's."""
    if calibrator is None:
        return metrics.log_softmax(logits)
    return calibrator.predict_log_proba(logits, kind="logits")


def shift_rows(sets, labels, calibrators: dict, n_resamples: int, seed: int = 0, bar=None) -> list[dict]:
    """One row per (model, calibrator, corruption, severity) with ECE, NLL, Brier, accuracy,
    their 95 % BCa bootstrap intervals (``n_resamples`` over rows, one weight set per cell)
    and the AURC of the max probability.

    sets: iterable of (corruption, severity, {model: (n, k) logits});
    calibrators: {(model, calibrator_name): fitted calibrator or None (uncalibrated)}.
    """
    y = np.asarray(labels)
    rows = []
    for corruption, severity, by_model in sets:
        for (model, cal_name), cal in calibrators.items():
            if model not in by_model:
                continue
            lp = calibrated_log_probs(cal, by_model[model])
            ci = evaluate_with_ci(lp, y, 15, n_resamples, seed=seed)
            p_max = np.exp(lp.max(axis=1))
            row = {"model": model, "calibrator": cal_name, "corruption": corruption, "severity": int(severity)}
            row.update({k: ci[k]["estimate"] for k in SHIFT_KEYS})
            row["ci"] = {k: {"low": ci[k]["low"], "high": ci[k]["high"]} for k in SHIFT_KEYS}
            row["aurc"] = selective.aurc(p_max, lp.argmax(axis=1) == y)
            rows.append(row)
            if bar is not None:
                bar.update(1)
    return rows


def by_severity(rows, key: str = "ece") -> dict:
    """{(model, calibrator): {severity: values of ``key`` over the corruptions (sorted by name)}}."""
    out: dict = {}
    for r in sorted(rows, key=lambda r: (r["model"], r["calibrator"], r["severity"], r["corruption"])):
        out.setdefault((r["model"], r["calibrator"]), {}).setdefault(r["severity"], []).append(r[key])
    return out


def medians(rows, key: str = "ece") -> dict:
    """{(model, calibrator): {severity: median of ``key`` over the corruptions}}."""
    return {m: {s: float(np.median(v)) for s, v in d.items()} for m, d in by_severity(rows, key).items()}


def _spearman(x, y) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def patterns(rows, models, calibrators=("none", "temperature", "dirichlet", "isotonic"),
             ensemble: str = "ensemble") -> list[dict]:
    """The three patterns Ovadia et al. report, tested on ``rows`` (from :func:`shift_rows`):

    1. calibration degrades with severity for every method: the median ECE over the
       corruptions rises from severity 0 to the highest one (and its Spearman correlation
       with severity) for each (model, calibrator);
    2. post-hoc calibration fitted on clean data helps less as shift grows: the median over
       corruptions of ECE(uncalibrated) - ECE(calibrated), at severity 0 and the highest;
    3. ensembles degrade most gracefully: the ensemble's uncalibrated median ECE (and NLL)
       at the highest severity is the lowest of the uncalibrated models'.

    Returns [{"pattern", "held": bool, "text", "numbers"}] (each ``held`` computed here).
    """
    ece, nll = medians(rows, "ece"), medians(rows, "nll")
    pairs = [(m, c) for m in models for c in calibrators if (m, c) in ece]
    sev = sorted(next(iter(ece.values())))
    lo, hi = sev[0], sev[-1]
    out = []

    rises = {f"{m} + {c}": {"ece_s0": ece[(m, c)][lo], f"ece_s{hi}": ece[(m, c)][hi],
                           "spearman": _spearman(sev, [ece[(m, c)][s] for s in sev])} for m, c in pairs}
    n_rise = sum(v[f"ece_s{hi}"] > v["ece_s0"] for v in rises.values())
    worst = min(rises.items(), key=lambda kv: kv[1][f"ece_s{hi}"] - kv[1]["ece_s0"])
    out.append({"pattern": "calibration degrades with severity for every method", "held": n_rise == len(rises),
                "text": f"Median ECE over corruptions rose from severity {lo} to {hi} for {n_rise} of {len(rises)} "
                        f"model x calibrator pairs; smallest change: {worst[0]} "
                        f"({100 * worst[1]['ece_s0']:.2f} % -> {100 * worst[1][f'ece_s{hi}']:.2f} %, Spearman "
                        f"rho with severity {worst[1]['spearman']:+.2f}).", "numbers": rises})

    gains = {}
    for m in models:
        for c in calibrators[1:]:
            if (m, c) in ece and (m, "none") in ece:
                g = {s: ece[(m, "none")][s] - ece[(m, c)][s] for s in (lo, hi)}
                gains[f"{m} + {c}"] = {"gain_s0": g[lo], f"gain_s{hi}": g[hi],
                                       "relative_s0": g[lo] / ece[(m, "none")][lo] if ece[(m, "none")][lo] else None,
                                       f"relative_s{hi}": g[hi] / ece[(m, "none")][hi] if ece[(m, "none")][hi] else None}
    if gains:
        rel_lo = np.median([v["relative_s0"] for v in gains.values() if v["relative_s0"] is not None])
        rel_hi = np.median([v[f"relative_s{hi}"] for v in gains.values() if v[f"relative_s{hi}"] is not None])
        less = sum(v[f"relative_s{hi}"] is not None and v["relative_s0"] is not None
                   and v[f"relative_s{hi}"] < v["relative_s0"] for v in gains.values())
        ts = [v for k, v in gains.items() if k.endswith("+ temperature")]
        ts_txt = (f" Temperature scaling alone: median gain {100 * np.median([v['gain_s0'] for v in ts]):+.2f} points at "
                  f"severity {lo}, {100 * np.median([v[f'gain_s{hi}'] for v in ts]):+.2f} at {hi}.") if ts else ""
        out.append({"pattern": "post-hoc calibration fitted on clean data helps less as shift grows",
                    "held": bool(rel_hi < rel_lo),
                    "text": f"The relative ECE reduction by a post-hoc calibrator (median over models and calibrators) "
                            f"was {100 * rel_lo:.0f} % at severity {lo} and {100 * rel_hi:.0f} % at severity {hi}; it "
                            f"shrank for {less} of {len(gains)} model x calibrator pairs.{ts_txt}",
                    "numbers": gains})

    singles = [m for m in models if (m, "none") in ece]
    if ensemble in singles and len(singles) > 1:
        at_hi = {m: ece[(m, "none")][hi] for m in singles}
        nll_hi = {m: nll[(m, "none")][hi] for m in singles}
        rise = {m: ece[(m, "none")][hi] - ece[(m, "none")][lo] for m in singles}
        best_ece, best_nll = min(at_hi, key=at_hi.get), min(nll_hi, key=nll_hi.get)
        held = best_ece == ensemble and best_nll == ensemble
        rank = sorted(at_hi, key=at_hi.get).index(ensemble) + 1
        out.append({"pattern": "ensembles degrade most gracefully", "held": held,
                    "text": f"At severity {hi}, uncalibrated, the ensemble's median ECE is {100 * at_hi[ensemble]:.2f} % "
                            f"(rank {rank} of {len(singles)} models; lowest: {best_ece}, {100 * at_hi[best_ece]:.2f} %) "
                            f"and its median NLL {nll_hi[ensemble]:.3f} (lowest: {best_nll}, {nll_hi[best_nll]:.3f}); "
                            f"its ECE rose by {100 * rise[ensemble]:+.2f} points from severity {lo} "
                            f"(smallest rise: {min(rise, key=rise.get)}, {100 * min(rise.values()):+.2f}).",
                    "numbers": {"ece_at_max_severity": at_hi, "nll_at_max_severity": nll_hi, "ece_rise": rise}})
    return out


# ------------------------------------------------------------------------ OOD
def ood_score_sets(logits: np.ndarray, samples: np.ndarray | None = None, temperature: float | None = None) -> dict:
    """{score name: (n,) scores, higher = more in-distribution} for (n, k) logits (the report's
    MSP, max logit, energy, entropy, DOCTOR), MSP after a fitted temperature, and, where
    (S, n, k) samples (MC dropout, ensemble members) are given, the mutual information, with
    max logit and energy taken from the samples' mean logits."""
    s = ood_scores(logits)
    if samples is not None:
        # logits of a pooled prediction are log-probabilities, whose logsumexp is 0 for every
        # row: the logit scores come from the mean of the members' (samples') logits instead
        mean_logits = np.asarray(samples, dtype=np.float64).mean(axis=0)
        s["max logit"], s["energy"] = ood.max_logit(mean_logits), ood.energy(mean_logits)
    if temperature is not None:
        s["MSP (temperature)"] = ood.max_softmax(logits, temperature)
    if samples is not None:
        s["mutual information"] = ood.negative_mutual_information(samples)
    return s


def ood_rows(model: str, ood_set: str, kind: str, scores_in: dict, scores_out: dict, n_resamples: int = 0,
             seed: int = 0) -> list[dict]:
    """One row per score: AUROC, AUPR-in/out and FPR at 95 % TPR (in-distribution positive),
    with 95 % percentile bootstrap intervals (in and out rows resampled separately) when
    ``n_resamples`` > 0."""
    rows = []
    for name in scores_in:
        d = ood.detection_metrics(scores_in[name], scores_out[name])
        row = {"model": model, "ood_set": ood_set, "kind": kind, "score": name, **d,
               "n_in": int(np.size(scores_in[name])), "n_out": int(np.size(scores_out[name]))}
        if n_resamples:
            iv = detection_intervals(scores_in[name], scores_out[name], n_resamples=n_resamples, seed=seed)
            row["ci"] = {k: {"low": iv[k].low, "high": iv[k].high} for k in d}
        rows.append(row)
    return rows


def roc_points(scores_in, scores_out, max_points: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) of the ROC curve (in-distribution positive), thinned to about ``max_points``."""
    from sklearn.metrics import roc_curve

    y = np.concatenate([np.ones(np.size(scores_in)), np.zeros(np.size(scores_out))])
    fpr, tpr, _ = roc_curve(y, np.concatenate([scores_in, scores_out]), drop_intermediate=True)
    if fpr.size > max_points:
        keep = np.unique(np.linspace(0, fpr.size - 1, max_points).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return fpr, tpr


# ------------------------------------------------------------------------ conformal
def conformal_rows(model: str, cal_lp: np.ndarray, cal_y, sets, labels, alpha: float = 0.1) -> list[dict]:
    """LAC and APS sets fitted on clean validation log-probabilities ``cal_lp`` (n_cal, k)
    for miscoverage ``alpha``, evaluated on each (corruption, severity, (n, k) log-probs)."""
    fitted = {"LAC": conformal.LAC(alpha=alpha).fit(cal_lp, cal_y),
              "APS": conformal.APS(alpha=alpha, randomized=False).fit(cal_lp, cal_y)}
    rows = []
    for corruption, severity, lp in sets:
        for name, cp in fitted.items():
            s = cp.predict_sets(lp)
            rows.append({"model": model, "method": name, "alpha": alpha, "corruption": corruption,
                         "severity": int(severity), "coverage": conformal.marginal_coverage(s, labels),
                         "mean_size": conformal.mean_set_size(s)})
    return rows
