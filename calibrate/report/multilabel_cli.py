"""What ``calibrate fit|apply|evaluate|report --multilabel`` do; :mod:`calibrate.cli` parses
the arguments and hands the parsed ``args`` here.

    calibrate fit DATA --multilabel --method platt|temperature|isotonic|beta -o CAL.json
    calibrate apply CAL.json DATA -o OUT.npz          (a multi-label CAL.json is recognised)
    calibrate evaluate DATA --multilabel [--calibrator CAL.json] [--json]
    calibrate report DATA --multilabel [--fit-on VAL --methods a,b | --calibrator CAL.json] -o report.html

DATA: (n, L) scores of independent sigmoid outputs (logits, or probabilities with
--probs) and the (n, L) 0/1 indicator matrix ``labels`` (:mod:`calibrate.io.multilabel`).
Numbers: :mod:`calibrate.metrics.multilabel`; calibrators:
:class:`calibrate.calibrators.MultiLabelCalibrator`; the report:
:mod:`calibrate.report.multilabel`. Bad input is an InputError (one line from the CLI).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from calibrate._core.validation import InputError
from calibrate.calibrators.multilabel import METHODS, MultiLabelCalibrator
from calibrate.io.multilabel import is_multilabel_calibrator  # noqa: F401 (part of this module's interface)

EVALUATE_MAX_ROWS = 20  # evaluate's text output lists at most this many labels (the JSON: every label)
_REPORT_ONLY = (("ood", "--ood"), ("conformal", "--conformal"))


def read(args, path=None, require_labels=True):
    """The multi-label predictions of DATA (or of ``path``), with the CLI's data flags."""
    from calibrate.io.multilabel import read_multilabel

    if getattr(args, "index_col", None) is not None or getattr(args, "class_columns", None) is not None:
        raise InputError("--index-col and --class-columns apply to single-label CSV files; --multilabel reads "
                         ".npz, .npy or .pt files")
    return read_multilabel(path or args.data, kind=args.kind, logits_key=args.logits_key,
                           labels_key=args.labels_key, labels_path=args.labels if path is None else None,
                           require_labels=require_labels)


def load_calibrator(path, L: int | None = None) -> MultiLabelCalibrator:
    """A saved MultiLabelCalibrator, refused with one line when it is another calibrator or
    was fitted on another number of labels."""
    from calibrate.io.readers import read_json

    d = read_json(path)
    if isinstance(d, dict) and d.get("format") == "calibrate.calibrator":
        raise InputError(f"{path}: a single-label calibrator (calibrate fit without --multilabel); with --multilabel "
                         "give one written by calibrate fit DATA --multilabel")
    cal = MultiLabelCalibrator.from_dict(d, str(path))
    if L is not None and cal.n_labels_ != L:
        raise InputError(f"{path}: fitted on {cal.n_labels_} labels, but the data has {L} label columns; give "
                         f"predictions with {cal.n_labels_} labels, or fit a calibrator on these")
    return cal


def _method(method: str) -> str:
    if method not in METHODS:
        raise InputError(f"--method {method}: with --multilabel the per-label calibrators are "
                         f"{', '.join(METHODS)}; choose one of them")
    return method


# ----------------------------------------------------------------------------- fit
def fit(args, inputs) -> int:
    from calibrate.io.outputs import check_outputs, write_outputs
    from calibrate.metrics.multilabel import multilabel_metrics_in_blocks

    check_outputs([args.output], inputs)
    method = _method(args.method)
    data = read(args)
    y = data.require_labels()
    cal = MultiLabelCalibrator(method).fit(data.scores, y, kind=data.kind)
    before = multilabel_metrics_in_blocks(data.scores, y, kind=data.kind, n_bins=args.bins)
    after = multilabel_metrics_in_blocks(lambda s: cal.predict_proba(data.scores[s], kind=data.kind), y, kind="probs",
                                         n_bins=args.bins, n=data.n, L=data.L)
    write_outputs({args.output: cal.to_json()}, inputs)
    print(f"method      {method}, one per label")
    print(f"data        {data.path} (n = {data.n}, L = {data.L} labels, {data.kind})")
    print(f"NLL (macro) {before['macro']['nll']:.4f} -> {after['macro']['nll']:.4f}")
    print(f"ECE (macro, {args.bins} bins) {before['macro']['ece']:.4f} -> {after['macro']['ece']:.4f}  "
          "(on the fitting data)")
    print(f"wrote       {args.output}")
    return 0


# ----------------------------------------------------------------------------- apply
def apply(args, inputs) -> int:
    from calibrate.io.outputs import check_outputs, save_npz

    check_outputs([args.output], inputs)
    if not str(args.output).lower().endswith(".npz"):
        raise InputError(f"{args.output}: apply writes a .npz file (arrays 'probs' and 'labels'); give an output "
                         "name ending in .npz")
    cal = load_calibrator(args.calibrator)
    data = read(args, require_labels=False)
    if cal.n_labels_ != data.L:
        load_calibrator(args.calibrator, data.L)  # its one-line reason
    probs = cal.predict_proba(data.scores, kind=data.kind)
    out = {"probs": probs}
    if data.labels is not None:
        out["labels"] = data.labels.astype(np.int64)
    save_npz(args.output, inputs, **out)
    print(f"wrote {args.output}: probs {probs.shape} (P(label on), one column per label)"
          + (" and labels" if data.labels is not None else ""))
    return 0


# ----------------------------------------------------------------------------- evaluate
def evaluate_numbers(data, calibrator_path=None, n_bins: int = 15) -> dict:
    """What ``calibrate evaluate --multilabel`` prints: {"n", "L", "bins", "kind", "macro": {ece,
    brier, nll}, "micro": {...}, "per_label": [{"label", "positives", "prevalence", "ece",
    "brier", "nll"}, one per label]}."""
    from calibrate.metrics.multilabel import multilabel_metrics_in_blocks

    y = data.require_labels()
    x, kind = data.scores, data.kind
    if calibrator_path:
        cal = load_calibrator(calibrator_path, data.L)
        x, kind = (lambda s, z=x, k=kind: cal.predict_proba(z[s], kind=k)), "probs"
    m = multilabel_metrics_in_blocks(x, y, kind=kind, n_bins=n_bins, label_names=data.label_names, n=data.n,
                                     L=data.L)
    pos = y.sum(axis=0)
    per = [{"label": m["labels"][j], "positives": int(pos[j]), "prevalence": float(m["prevalence"][j]),
            **{k: float(m["per_label"][k][j]) for k in ("ece", "brier", "nll")}} for j in range(data.L)]
    return {"n": data.n, "L": data.L, "bins": n_bins, "kind": data.kind, "macro": m["macro"], "micro": m["micro"],
            "per_label": per}


def evaluate(args) -> int:
    cals = args.calibrator or []
    if len(cals) > 1:
        raise InputError(f"evaluate takes one --calibrator, got {len(cals)}; to compare several, use calibrate "
                         "report DATA --multilabel --calibrator A --calibrator B")
    cal = cals[0] if cals else None
    data = read(args)
    res = evaluate_numbers(data, cal, args.bins)
    res["data"] = data.path
    if cal:
        res["calibrator"] = cal
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"data        {data.path} (n = {data.n}, L = {data.L} labels, {data.kind})"
          + (f", calibrated by {cal}" if cal else ""))
    print(f"{'':<8}{'ECE (' + str(args.bins) + ' bins)':>16}{'Brier':>10}{'NLL':>10}")
    for avg in ("macro", "micro"):
        r = res[avg]
        print(f"{avg:<8}{r['ece']:>16.4f}{r['brier']:>10.4f}{r['nll']:>10.4f}")
    rows = sorted(res["per_label"], key=lambda r: -r["ece"])[:EVALUATE_MAX_ROWS]
    width = max(5, *(len(r["label"]) for r in rows))
    print()
    print(f"{'label':<{width}}  {'positives':>9}{'ECE':>10}{'Brier':>10}{'NLL':>10}")
    for r in rows:
        print(f"{r['label']:<{width}}  {r['positives']:>9}{r['ece']:>10.4f}{r['brier']:>10.4f}{r['nll']:>10.4f}")
    if data.L > len(rows):
        print(f"(the {len(rows)} labels of largest ECE of {data.L}; --json prints every label)")
    return 0


# ----------------------------------------------------------------------------- report
def report(args, inputs, started=None) -> int:
    from calibrate.io.outputs import check_outputs
    from calibrate.report.html import render_report, write_report
    from calibrate.report.multilabel import multilabel_report_sections

    check_outputs([args.output, args.json, args.pdf], inputs)
    for attr, flag in _REPORT_ONLY:
        if getattr(args, attr, None) is not None:
            raise InputError(f"{flag} does not apply to multi-label predictions; drop it (or drop --multilabel)")
    if args.calibrator and args.fit_on:
        raise InputError("give either --calibrator or --fit-on, not both")
    if args.methods and not args.fit_on:
        raise InputError("--methods needs --fit-on VAL (the data to fit the calibrators on)")
    methods = [m.strip() for m in (args.methods or ",".join(METHODS)).split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InputError(f"--methods: with --multilabel, expected a comma-separated list of {', '.join(METHODS)}, "
                         f"got {unknown[0]!r}")
    test = read(args)
    y = test.require_labels()
    cals = {}
    for path in args.calibrator or []:
        cal = load_calibrator(path, test.L)
        name = cal.method if cal.method not in cals else f"{cal.method} ({os.path.basename(path)})"
        cals[name] = cal
    fit_name = ", ".join(args.calibrator or [])
    if args.fit_on:
        val = read(args, path=args.fit_on)
        if val.L != test.L:
            raise InputError(f"{args.fit_on}: has {val.L} label columns, but {args.data} has {test.L}; fit and "
                             "report on predictions of the same labels")
        yv = val.require_labels()
        for m in methods:
            print(f"fitting {m} per label on {args.fit_on}", file=sys.stderr)
            cals[m] = MultiLabelCalibrator(m).fit(val.scores, yv, kind=val.kind)
        fit_name = args.fit_on
    print(f"bootstrapping {args.resamples} resamples for {1 + len(cals)} predictions", file=sys.stderr)
    title = args.title if args.title != "Calibration report" else "Multi-label calibration report"
    sections, subtitle, data = multilabel_report_sections(
        test.scores, y, cals, kind=test.kind, data_name=test.path, fit_name=fit_name, label_names=test.label_names,
        n_bins=args.bins, n_resamples=args.resamples, seed=args.seed, title=title, started=started)
    html, pdf = render_report(title, sections, subtitle, pdf=bool(args.pdf))
    write_report(args.output, html, data, json_path=args.json, inputs=inputs, pdf_path=args.pdf, pdf=pdf)
    for name, r in data["metrics"].items():
        e = r["macro"]["ece"]
        print(f"{name:<14} macro ECE {e['estimate']:.4f} [{e['low']:.4f}, {e['high']:.4f}]  "
              f"micro ECE {r['micro']['ece']['estimate']:.4f}  Brier {r['macro']['brier']['estimate']:.4f}  "
              f"NLL {r['macro']['nll']['estimate']:.4f}")
    print("wrote " + " and ".join(p for p in (args.output, args.json, args.pdf) if p))
    return 0
