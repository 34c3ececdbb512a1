"""The HTML report of the CIFAR-10 experiment (from the numbers of metrics.json)."""

from __future__ import annotations

import numpy as np

from calibrate.apps.cifar10.figures import (
    roc_figure,
    severity_boxplot_figure,
    shift_risk_coverage_figure,
)
from calibrate.apps.cifar10.shift import by_severity, medians
from calibrate.report.beyond import best_marks
from calibrate.report.figures import classwise_reliability_figure, reliability_figure
from calibrate.report.html import _png, render_html

MODEL_TITLES = {
    "baseline": "baseline (standard recipe: crop + flip, weight decay)",
    "label_smoothing": "label smoothing",
    "overfit_noaug": "over-fitting regime (no augmentation, no weight decay)",
    "focal_loss": "focal loss (FLSD-53)",
    "mixup": "mixup (alpha 0.2)",
    "mc_dropout": "MC dropout (baseline, pooled samples)",
    "ensemble": "deep ensemble (pooled, then calibrated)",
    "ensemble_members_calibrated": "deep ensemble (members calibrated, then pooled)",
}


def _row(data, model, cal):
    for r in data["results"]:
        if r["model"] == model and r["calibrator"] == cal:
            return r
    return None


def _pct(x):
    return f"{100 * x:.2f}"


def _ci_pct(r, key):
    c = r["ci"][key]
    return f"[{_pct(c['low'])}, {_pct(c['high'])}]"


def findings(data) -> list[str]:
    """Plain sentences computed from the numbers (no hand-written figures)."""
    out = []
    for model in ("baseline", "overfit_noaug", "label_smoothing", "mc_dropout", "ensemble"):
        none, ts = _row(data, model, "none"), _row(data, model, "temperature")
        if not none or not ts:
            continue
        d = ts["vs_uncalibrated"]["ece"]
        sig = d["high"] < 0 or d["low"] > 0
        word = "lowered" if d["estimate"] < 0 else "raised"
        t = ts.get("params", {}).get("T")
        tt = f" (T = {t:.3f})" if t is not None else ""
        out.append(
            f"{MODEL_TITLES[model]}: accuracy {_pct(none['accuracy'])} %, uncalibrated ECE {_pct(none['ece'])} % "
            f"{_ci_pct(none, 'ece')}, NLL {none['nll']:.4f}. Temperature scaling{tt} {word} the ECE to {_pct(ts['ece'])} % "
            f"{_ci_pct(ts, 'ece')} (paired difference {100 * d['estimate']:+.2f} points, 95 % CI "
            f"[{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]: {'beyond' if sig else 'within'} the test-set noise) "
            f"and the NLL to {ts['nll']:.4f}, at accuracy {_pct(ts['accuracy'])} %.")
        best = min((r for r in data["results"] if r["model"] == model), key=lambda r: r["ece"])
        out.append(f"  Lowest test ECE for this model: {best['calibrator']} ({_pct(best['ece'])} % {_ci_pct(best, 'ece')}).")
    base, ls = _row(data, "baseline", "none"), _row(data, "label_smoothing", "none")
    if base and ls:
        t_ls = (_row(data, "label_smoothing", "temperature") or {}).get("params", {}).get("T")
        out.append(
            f"Label smoothing on its own: ECE {_pct(ls['ece'])} % vs the baseline's {_pct(base['ece'])} %; "
            f"NLL {ls['nll']:.4f} vs {base['nll']:.4f}; accuracy {_pct(ls['accuracy'])} % vs {_pct(base['accuracy'])} %"
            + (f"; the temperature fitted on top of it is T = {t_ls:.3f} ({'sharpening' if t_ls < 1 else 'softening'} it)." if t_ls else "."))
    ens = _row(data, "ensemble", "none")
    if base and ens:
        out.append(
            f"Deep ensemble of {data['uncertainty'].get('ensemble', {}).get('members', '?')}: NLL {ens['nll']:.4f} vs the "
            f"baseline's {base['nll']:.4f}, accuracy {_pct(ens['accuracy'])} % vs {_pct(base['accuracy'])} %, ECE "
            f"{_pct(ens['ece'])} % vs {_pct(base['ece'])} %.")
    mem, pool = _row(data, "ensemble_members_calibrated", "temperature"), _row(data, "ensemble", "temperature")
    if mem and pool:
        out.append(
            f"Ensemble with temperature scaling: calibrating each member before pooling gives ECE {_pct(mem['ece'])} %, "
            f"NLL {mem['nll']:.4f}; pooling first and calibrating the pool gives ECE {_pct(pool['ece'])} %, NLL {pool['nll']:.4f}.")
    return out


def compute_line(c) -> str:
    """One line: device, precision and why, CPU capability, threads, layout, expected vs measured."""
    if not c:
        return "not recorded (a run from before the precision was chosen per machine: bf16 autocast on the CPU)"
    step = f"; {c['measured_step_seconds']:.3f} s per training step measured" if c.get("measured_step_seconds") else ""
    return (f"{c['device_name']}, precision {c['precision']} (asked: {c['precision_asked']}; {c['precision_reason']}); "
            f"CPU capability {c['cpu_capability']}, native bf16 {'yes' if c['cpu_native_bf16'] else 'no'}, "
            f"{c['threads']} torch threads; channels_last {'on' if c['channels_last'] else 'off'}, torch.compile "
            f"{'on' if c['compile'] else 'off'}{step}; expected {c['estimated_seconds'] / 60:.1f} min")


def experiment_report(data: dict, test_probs: dict, y_test, class_names, anchors, curves=None) -> str:
    """The report as one HTML string (see :func:`experiment_sections`)."""
    title, sections, subtitle = experiment_sections(data, test_probs, y_test, class_names, anchors, curves)
    return render_html(title, sections, subtitle=subtitle)


def experiment_sections(data: dict, test_probs: dict, y_test, class_names, anchors, curves=None):
    """(title, sections, subtitle) of the report: the shift and OOD findings first (each with its
    figure), the headline figures, then the in-distribution details, collapsed."""
    sections = shift_sections(data, curves or {}) if data.get("shift") else []
    sections += _summary_sections(data)
    sections += _results_sections(data)
    sections += _anchors_sections(data, anchors)
    sections += _reliability_sections(test_probs, y_test, class_names)
    sections += _ensemble_sections(data)
    sections += _uncertainty_sections(data)
    sections += _training_sections(data)
    for sec in sections:
        if sec["id"] in ("results", "anchors", "reliability", "classwise", "ensemble", "uncertainty", "training"):
            sec["collapsed"] = True
    return (f"CIFAR-10 calibration experiment ({data['preset']})", sections,
            "calibration in and out of distribution: train, sample, calibrate, report — every number below was "
            "produced by the command at the end")


def _summary_sections(data: dict) -> list[dict]:
    """How the study was run, and what the in-distribution numbers show."""
    sections = []
    hw = data["hardware"]
    summary = [
        ("data", f"{data['data']['note']} at {data['data']['root']}"),
        ("split", f"train {data['data']['n_train']:,} / validation {data['data']['n_val']:,} / test {data['data']['n_test']:,} "
                  "(seeded, stratified)"),
        ("protocol", data["protocol"]),
        ("preset", f"{data['preset']}: {data['preset_config']['notes']}"),
        ("intervals", f"95 % BCa bootstrap over test rows, {data['preset_config']['n_resamples']} resamples (clean test "
                      f"set) and {data.get('shift', {}).get('n_resamples', '-')} per shifted set, seed 0"),
        ("machine", f"{hw['cpu']}, {hw['cores']} cores"),
        ("compute", compute_line(data.get("compute"))),
        ("wall time", f"{data['wall_seconds'] / 60:.1f} min for this run (cached models are reused: see Training)"),
    ]
    sections.append({"id": "summary", "title": "How this study was run", "summary": summary})
    sections.append({"id": "findings", "title": "In distribution: what the numbers show", "collapsed": True,
                     "paragraphs": findings(data)
                     + ["The bootstrap interval of a plug-in ECE sits above the estimate when the "
                        "true ECE is small (the plug-in ECE is biased upward by the noise in each bin); the "
                        "debiased column and the paired differences are the better guide there."]})
    return sections


def _results_sections(data: dict) -> list[dict]:
    """The table of every model and calibrator on the test set."""
    sections = []
    header = ["model", "calibrator", "accuracy %", "ECE %", "ECE debiased %", "class-wise ECE %", "MCE %", "NLL", "Brier",
              "Δ ECE vs none (points)"]
    rows = []
    for r in data["results"]:
        d = r.get("vs_uncalibrated", {}).get("ece")
        dcell = {"text": "—"}
        if d:
            sig = d["high"] < 0 or d["low"] > 0
            dcell = {"text": f"{100 * d['estimate']:+.2f}", "ci": f"[{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]",
                     "cls": ("better" if d["estimate"] < 0 else "worse") if sig else ""}
        rows.append({"cells": [
            {"text": r["model"]}, {"text": r["calibrator"]},
            {"text": _pct(r["accuracy"])},
            {"text": _pct(r["ece"]), "ci": _ci_pct(r, "ece")},
            {"text": _pct(r["ece_l2_debiased"])},
            {"text": _pct(r["classwise_ece"]), "ci": _ci_pct(r, "classwise_ece")},
            {"text": _pct(r["mce"])},
            {"text": f"{r['nll']:.4f}", "ci": f"[{r['ci']['nll']['low']:.4f}, {r['ci']['nll']['high']:.4f}]"},
            {"text": f"{r['brier']:.4f}"}, dcell]})
    sections.append({"id": "results", "title": "Every model and calibrator, on the test set",
                     "paragraphs": ["Calibrators are fitted on the validation split and evaluated on the test split. "
                                    "ECE: 15 equal-width bins, top-label, L1; debiased: the L2 estimator of Kumar et al. "
                                    "2019; Brier summed over classes."],
                     "tables": [{"header": header, "rows": rows}]})
    return sections


def _anchors_sections(data: dict, anchors: dict) -> list[dict]:
    """Our ECE beside the published ones (``anchors``: {model: {calibrator: ECE %}})."""
    sections = []
    cals = ["none", "histogram", "isotonic", "bbq", "temperature", "vector", "matrix"]
    arows = []
    for name, vals in anchors.items():
        arows.append({"cells": [{"text": f"{name} (Guo et al. 2017)"}] + [{"text": f"{vals[c]:.2f}"} for c in cals]})
    for model in ("baseline", "overfit_noaug", "label_smoothing", "mc_dropout", "ensemble"):
        if _row(data, model, "none"):
            arows.append({"cls": "best", "cells": [{"text": f"ours: {model}"}]
                          + [{"text": _pct(_row(data, model, c)["ece"])} for c in cals]})
    sections.append({"id": "anchors", "title": "Beside the published figures (CIFAR-10, ECE %, 15 bins)",
                     "paragraphs": ["Published rows from ../shared/docs/anchors.md (Guo et al. 2017, Table 1). Our models "
                                    "are smaller, trained for minutes on a CPU, on a JPEG copy of CIFAR-10: compare the "
                                    "pattern (which methods help, by how much), not the absolute values. The bootstrap SD "
                                    "of a 15-bin ECE at n = 10,000 is about 0.2 points."],
                     "tables": [{"header": ["model", "uncalibrated", "histogram", "isotonic", "BBQ", "temperature", "vector",
                                            "matrix"], "rows": arows}]})
    return sections


def _reliability_sections(test_probs: dict, y_test, class_names) -> list[dict]:
    """Reliability diagrams of each model; class-wise ones of the over-fitting model."""
    sections = []
    figs = []
    for model in ("baseline", "overfit_noaug", "label_smoothing", "mc_dropout", "ensemble"):
        if (model, "none") not in test_probs:
            continue
        preds = {c: test_probs[(model, c)] for c in ("none", "temperature", "isotonic", "bbq")}
        preds = {("uncalibrated" if c == "none" else c): v for c, v in preds.items()}
        figs.append(_png(reliability_figure(preds, y_test, 15, suptitle=MODEL_TITLES[model]),
                         f"Reliability diagrams of {model}", MODEL_TITLES[model]))
    sections.append({"id": "reliability", "title": "Reliability diagrams (test set)", "figures": figs})
    if ("overfit_noaug", "none") in test_probs:
        sections.append({"id": "classwise", "title": "Class-wise reliability, over-fitting model, uncalibrated",
                         "figures": [_png(classwise_reliability_figure(test_probs[("overfit_noaug", "none")], y_test,
                                                                       class_names, n_bins=10),
                                          "Class-wise reliability diagrams")]})
    return sections


def _ensemble_sections(data: dict) -> list[dict]:
    """Pool then calibrate against calibrate then pool (none without both rows)."""
    sections = []
    erows = []
    for cal in ["temperature", "vector", "matrix", "platt", "isotonic", "histogram", "bbq"]:
        a, b = _row(data, "ensemble", cal), _row(data, "ensemble_members_calibrated", cal)
        if a and b:
            erows.append({"cells": [{"text": cal}, {"text": _pct(a["ece"]), "ci": _ci_pct(a, "ece")}, {"text": f"{a['nll']:.4f}"},
                                    {"text": _pct(b["ece"]), "ci": _ci_pct(b, "ece")}, {"text": f"{b['nll']:.4f}"}]})
    if erows:
        sections.append({"id": "ensemble", "title": "Ensembles and post-hoc calibration: pool first, or calibrate members first?",
                         "paragraphs": ["TorchUncertainty refuses to combine ensembles with post-hoc calibration; both orders "
                                        "are well defined. Left: the pooled prediction (mean of member probabilities) is "
                                        "calibrated. Right: each member is calibrated on its own validation logits, then pooled."],
                         "tables": [{"header": ["calibrator", "pool → calibrate: ECE %", "NLL", "calibrate → pool: ECE %", "NLL"],
                                     "rows": erows}]})
    return sections


def _uncertainty_sections(data: dict) -> list[dict]:
    """Total = aleatoric + epistemic uncertainty of the sampled predictions."""
    sections = []
    urows = []
    for model, u in data["uncertainty"].items():
        for key in ("predictive_entropy", "expected_entropy", "mutual_information"):
            v = u[key]
            urows.append({"cells": [{"text": f"{model} ({u['members']} samples)"}, {"text": key.replace("_", " ")},
                                    {"text": f"{v['mean']:.4f}"}, {"text": f"{v['mean_correct']:.4f}"},
                                    {"text": "—" if v["mean_wrong"] is None else f"{v['mean_wrong']:.4f}"},
                                    {"text": "—" if v["auroc_error_detection"] is None else f"{v['auroc_error_detection']:.3f}"}]})
    if urows:
        sections.append({"id": "uncertainty", "title": "Uncertainty: total = aleatoric + epistemic",
                         "paragraphs": ["Predictive entropy H[mean p] (total) = expected entropy mean H[p] (aleatoric) + "
                                        "mutual information (epistemic), in nats, on the test set. AUROC: how well each "
                                        "quantity ranks the wrong predictions above the right ones."],
                         "tables": [{"header": ["model", "quantity", "mean", "mean | correct", "mean | wrong", "AUROC (errors)"],
                                     "rows": urows}]})
    return sections


def _training_sections(data: dict) -> list[dict]:
    """How each model was trained, and how this report was made."""
    sections = []
    hw = data["hardware"]
    trows = []
    for name, t in data["train"].items():
        c = t["config"]
        trows.append({"cells": [{"text": name}, {"text": "×".join(map(str, c["widths"]))}, {"text": str(c["epochs"])},
                                {"text": "yes" if c["augment"] else "no"}, {"text": f"{c['weight_decay']:g}"},
                                {"text": f"{c['label_smoothing']:g}"}, {"text": str(c["seed"])},
                                {"text": f"{t['train_seconds']:.0f} s"},
                                {"text": "—" if t["final_train_acc"] is None else _pct(t["final_train_acc"])},
                                {"text": _pct(t["test_accuracy"])}]})
    sections.append({"id": "training", "title": "Training (ResNet-9 style, SGD Nesterov, one-cycle)",
                     "tables": [{"header": ["model", "widths", "epochs", "augment", "weight decay", "label smoothing", "seed",
                                            "train time", "train acc % (last epoch)", "test acc %"], "rows": trows}]})
    provenance = [("command", data["command"]),
                  ("versions", ", ".join(f"{a} {b}" for a, b in hw["packages"].items() if b)), ("platform", hw["platform"])]
    if data.get("rendered"):  # re-rendered from the saved run (calibrate.apps.cifar10.render)
        provenance = [(f"run's {k}", v) for k, v in provenance] + list(data["rendered"])
    sections.append({"id": "provenance", "title": "How this report was made", "summary": provenance})
    return sections


# ------------------------------------------------------------------------ shift and OOD
SHIFT_MODELS = ("baseline", "label_smoothing", "focal_loss", "mixup", "overfit_noaug", "mc_dropout", "ensemble")


def _boxes(rows, pairs, key="ece"):
    vals = by_severity(rows, key)
    return {label: vals[pair] for label, pair in pairs.items() if pair in vals}


def shift_sections(data: dict, curves: dict) -> list[dict]:
    """The summary (three findings, each with its figure), headline figures and shift/OOD tables."""
    sh, od = data["shift"], data["ood"]
    models = [m for m in SHIFT_MODELS if any(r["model"] == m for r in sh["rows"])]
    out = _finding_sections(sh, od, models)
    out += _headline_sections(sh, curves)
    out += _ood_sections(od)
    out += _shift_table_sections(sh, models)
    out += _corruption_sections(sh)
    out += _conformal_shift_sections(sh)
    return out


def _finding_sections(sh: dict, od: dict, models: list) -> list[dict]:
    """The lead summary and the three findings, each with its figure."""
    rows, sev = sh["rows"], sh["severities"]
    uncal = {MODEL_TITLES.get(m, m).split(" (")[0]: (m, "none") for m in models}
    fig_uncal = _png(severity_boxplot_figure(_boxes(rows, uncal), ylabel="ECE (%)",
                                             title="ECE under shift, uncalibrated models"),
                     "ECE against shift severity, uncalibrated models",
                     f"Top-label ECE (15 bins) on {sh['n']:,} test images per set; each box spans the "
                     f"{len(sh['corruptions'])} corruptions at one severity (whiskers: min and max; points: one "
                     "corruption each); 'clean' is the same images uncorrupted.")
    post = {}
    for m in ("baseline", "ensemble"):
        for c in sh["calibrators"]:
            post[f"{m} + {c}" if c != "none" else f"{m} uncalibrated"] = (m, c)
    fig_post = _png(severity_boxplot_figure(_boxes(rows, post), ylabel="ECE (%)",
                                            title="post-hoc calibrators fitted on clean validation data"),
                    "ECE against shift severity with each post-hoc calibrator",
                    "Each calibrator is fitted once, on the clean validation split, and applied unchanged to "
                    "the shifted sets (boxes over corruptions, as above).")
    fig_nll = _png(severity_boxplot_figure(_boxes(rows, uncal, "nll"), ylabel="NLL (nats)", scale=1.0,
                                           title="NLL under shift, uncalibrated models"),
                   "NLL against shift severity, uncalibrated models", "Negative log-likelihood, boxes over corruptions.")
    figs = [fig_uncal, fig_post, fig_nll]
    findings = []
    for i, pat in enumerate(sh["patterns"]):
        verdict = "Held" if pat["held"] else "Did not hold"
        findings.append({"id": f"finding{i + 1}", "title": f"{i + 1}. Expected: {pat['pattern']}. {verdict}.",
                         "paragraphs": [pat["text"]], "figures": [figs[min(i, 2)]]})
    out = [{"id": "lead", "lead": True, "title": "Summary: calibration under distribution shift",
            "paragraphs": [f"{len(models)} CIFAR-10 models, {len(sh['calibrators']) - 1} post-hoc calibrators "
                           f"fitted on clean validation data, {len(sh['corruptions'])} corruptions x {len(sev)} "
                           f"severit{'y' if len(sev) == 1 else 'ies'} (CIFAR-10-C style, generated here), {len(od['sets'])} out-of-distribution "
                           "sets. The three patterns Ovadia et al. (2019) report, tested on these numbers:"]},
           *findings]
    return out


def _headline_sections(sh: dict, curves: dict) -> list[dict]:
    """The headline figures: risk-coverage under shift, OOD ROC curves, conformal coverage."""
    out = []
    head = []
    if curves.get("risk_coverage"):
        head.append(_png(shift_risk_coverage_figure(curves["risk_coverage"]), "Risk-coverage under shift",
                         "Selective risk when only the most confident fraction of the rows is accepted, pooled over "
                         "corruptions at each severity (temperature-scaled confidences)."))
    if curves.get("roc"):
        head.append(_png(roc_figure(curves["roc"]), "ROC curves of OOD detection",
                         "In-distribution (the clean test set) against each OOD set; higher curves separate better. "
                         "Near OOD: a model trained without the held-out classes, tested on their images."))
    conf = sh.get("conformal", [])
    if conf:
        vals = {}
        for r in conf:
            vals.setdefault(f"{r['model']}, {r['method']}", {}).setdefault(r["severity"], []).append(r["coverage"])
        alpha = conf[0]["alpha"]
        head.append(_png(severity_boxplot_figure(vals, ylabel="coverage (%)", target=1 - alpha,
                                                 target_label=f"nominal {100 * (1 - alpha):.0f} %",
                                                 title="conformal sets calibrated on clean data", size=(9.0, 3.8)),
                         "Conformal coverage under shift",
                         f"Marginal coverage of split-conformal sets (alpha = {alpha:g}) calibrated on the clean "
                         "validation split; the guarantee holds only for exchangeable (clean) data."))
    out.append({"id": "headline", "title": "Headline figures: abstaining, detecting, covering", "figures": head})
    return out


def _ood_sections(od: dict) -> list[dict]:
    """The OOD detection table: every model and score on every set."""
    out = []
    orows = od["rows"]
    sets = list(dict.fromkeys(r["ood_set"] for r in orows))
    header = ["model", "score"] + [f"{s} ({od['sets'].get(s, '')}): AUROC % / FPR@95 %" for s in sets]
    table_rows, cells = [], {}
    for r in orows:
        cells.setdefault((r["model"], r["score"]), {})[r["ood_set"]] = r
    best = {s: best_marks({k: v[s]["auroc"] for k, v in cells.items() if s in v}, False, 3) for s in sets}
    for (model, score), by_set in cells.items():
        row = [{"text": model}, {"text": score}]
        for s in sets:
            r = by_set.get(s)
            if r is None:
                row.append({"text": "—"})
                continue
            ci = r.get("ci", {}).get("auroc")
            row.append({"text": f"{100 * r['auroc']:.1f} / {100 * r['fpr_at_95tpr']:.1f}",
                        "ci": f"AUROC [{100 * ci['low']:.1f}, {100 * ci['high']:.1f}]" if ci else "",
                        "cls": best[s].get((model, score), "")})
        table_rows.append({"cells": row})
    out.append({"id": "ood", "title": "Out-of-distribution detection",
                "paragraphs": [f"Positive class: in-distribution (the {od['n_in']:,} clean test images; for the near-OOD "
                               f"row, the test images of the 8 kept classes). Held out: classes "
                               f"{od['held_out_classes']} (in-class accuracy of that model "
                               f"{100 * od['held_out_model_accuracy_in']:.2f} %). Scores: higher = more in-distribution "
                               "(MSP = max softmax probability, energy = logsumexp of the logits, entropy negated, mutual "
                               "information negated, from the MC dropout samples or the ensemble members). Best AUROC "
                               "per set in green; equal best values at the shown precision are all marked, as ties. Intervals: 95 % "
                               "percentile bootstrap, in and out rows resampled separately."],
                "tables": [{"header": header, "rows": table_rows}]})
    return out


def _shift_table_sections(sh: dict, models: list) -> list[dict]:
    """Medians over corruptions at each severity, every model and calibrator."""
    out = []
    rows, sev = sh["rows"], sh["severities"]
    hi = max(sev)
    med_ece, med_nll, med_acc = medians(rows, "ece"), medians(rows, "nll"), medians(rows, "accuracy")
    trows = []
    for m in models:
        for c in sh["calibrators"]:
            if (m, c) not in med_ece:
                continue
            trows.append({"cells": [{"text": m}, {"text": c}]
                          + [{"text": f"{100 * med_ece[(m, c)][s]:.2f}"} for s in [0, *sev]]
                          + [{"text": f"{med_nll[(m, c)][s]:.3f}"} for s in (0, hi)]
                          + [{"text": f"{100 * med_acc[(m, c)][s]:.1f}"} for s in (0, hi)]})
    out.append({"id": "shift-table", "collapsed": True, "title": "Shift: medians over corruptions, every model and calibrator",
                "tables": [{"header": ["model", "calibrator"] + [f"ECE % s{s}" for s in [0, *sev]]
                            + [f"NLL s{s}" for s in (0, hi)] + [f"acc % s{s}" for s in (0, hi)], "rows": trows,
                            "caption": "Medians over corruptions (s0 = clean); the per-set numbers with 95 % intervals "
                                       "are in metrics.json (shift.rows)."}]})
    return out


def _corruption_sections(sh: dict) -> list[dict]:
    """Each corruption at the highest severity."""
    out = []
    rows, hi = sh["rows"], max(sh["severities"])
    crow = []
    for c in sh["corruptions"]:
        cell = {}
        for r in rows:
            if r["corruption"] == c and r["severity"] == hi and r["model"] in ("baseline", "ensemble") and \
                    r["calibrator"] in ("none", "temperature"):
                cell[(r["model"], r["calibrator"])] = r
        pairs = [("baseline", "none"), ("baseline", "temperature"), ("ensemble", "none"), ("ensemble", "temperature")]
        crow.append({"cells": [{"text": c.replace("_", " ")}] + [
            {"text": f"{100 * cell[q]['ece']:.2f}", "ci": f"[{100 * cell[q]['ci']['ece']['low']:.2f}, "
                                                          f"{100 * cell[q]['ci']['ece']['high']:.2f}]"}
            if q in cell else {"text": "—"} for q in pairs] + [
            {"text": f"{100 * cell[('baseline', 'none')]['accuracy']:.1f}" if ("baseline", "none") in cell else "—"}]})
    out.append({"id": "shift-corruptions", "collapsed": True, "title": f"Shift: each corruption at severity {hi}",
                "tables": [{"header": ["corruption", "baseline ECE %", "baseline + temperature", "ensemble ECE %",
                                       "ensemble + temperature", "baseline acc %"], "rows": crow,
                            "caption": "95 % BCa bootstrap intervals over the shifted test images."}]})
    return out


def _conformal_shift_sections(sh: dict) -> list[dict]:
    """Conformal coverage and set size under shift (none without conformal rows)."""
    out = []
    conf, sev = sh.get("conformal", []), sh["severities"]
    if conf:
        agg = {}
        for r in conf:
            agg.setdefault((r["model"], r["method"]), {}).setdefault(r["severity"], []).append(r)
        ctab = [{"cells": [{"text": m}, {"text": meth}] + [
            {"text": f"{100 * np.median([x['coverage'] for x in d[s]]):.1f}",
             "ci": f"size {np.median([x['mean_size'] for x in d[s]]):.2f}"} for s in [0, *sev]]}
            for (m, meth), d in agg.items()]
        out.append({"id": "conformal-shift", "collapsed": True, "title": "Conformal sets under shift",
                    "tables": [{"header": ["model", "method"] + [f"coverage % s{s}" for s in [0, *sev]], "rows": ctab,
                                "caption": "Median over corruptions of the marginal coverage, and below it the median "
                                           "mean set size."}]})
    return out
