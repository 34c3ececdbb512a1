"""Print the README's CIFAR-10 tables (markdown) from an experiment's metrics.json.

    python -m experiments.study_tables reports/cifar10/metrics.json

Every number printed comes from that file (written by ``calibrate experiment``); nothing
is recomputed here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from calibrate.apps.cifar10.shift import medians

MODELS = ("baseline", "label_smoothing", "focal_loss", "mixup", "overfit_noaug", "mc_dropout", "ensemble")


def _row(results, model, cal):
    return next((r for r in results if r["model"] == model and r["calibrator"] == cal), None)


def tables(data: dict) -> str:
    res, sh, od = data["results"], data.get("shift"), data.get("ood")
    out = []
    hi = max(sh["severities"]) if sh else None
    ece, acc = (medians(sh["rows"], "ece"), medians(sh["rows"], "accuracy")) if sh else ({}, {})
    head = "| model | test accuracy | ECE uncalibrated -> temperature (T) | NLL uncal. -> temp. |"
    sep = "|---|---|---|---|"
    if sh:
        head += f" median ECE at severity {hi}: uncal. -> temp. | median accuracy at severity {hi} |"
        sep += "---|---|"
    out += [head, sep]
    for m in MODELS:
        a, t = _row(res, m, "none"), _row(res, m, "temperature")
        if not a or not t:
            continue
        T = t.get("params", {}).get("T")
        line = (f"| {m} | {100 * a['accuracy']:.2f} % | {100 * a['ece']:.2f} % -> {100 * t['ece']:.2f} % "
                f"({T:.2f}) | {a['nll']:.3f} -> {t['nll']:.3f} |")
        if sh:
            e0, e1 = ece[(m, "none")][hi], ece[(m, "temperature")][hi]
            line += f" {100 * e0:.2f} % -> {100 * e1:.2f} % | {100 * acc[(m, 'none')][hi]:.1f} % |"
        out.append(line)
    if sh:
        out += ["", "| expected pattern (Ovadia et al. 2019) | held here? | numbers |", "|---|---|---|"]
        for p in sh["patterns"]:
            out.append(f"| {p['pattern']} | {'yes' if p['held'] else 'no'} | {p['text']} |")
    if od:
        sets = list(dict.fromkeys(r["ood_set"] for r in od["rows"]))
        out += ["", "| model | score | " + " | ".join(f"{s} ({od['sets'][s]}) AUROC / FPR@95" for s in sets) + " |",
                "|---|---|" + "---|" * len(sets)]
        cells = {}
        for r in od["rows"]:
            cells.setdefault((r["model"], r["score"]), {})[r["ood_set"]] = r
        for (m, s), d in cells.items():
            if s not in ("MSP", "energy", "mutual information"):
                continue
            out.append(f"| {m} | {s} | " + " | ".join(
                f"{100 * d[x]['auroc']:.1f} / {100 * d[x]['fpr_at_95tpr']:.1f}" if x in d else "—" for x in sets) + " |")
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("metrics", type=Path, help="metrics.json written by calibrate experiment")
    args = ap.parse_args(argv)
    print(tables(json.loads(args.metrics.read_text())))


if __name__ == "__main__":
    main()
