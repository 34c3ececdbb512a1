"""The ``calibrate`` command line: argument parsing only; the work is done elsewhere.

    calibrate fit DATA --method temperature -o CAL.json
    calibrate apply CAL.json DATA -o OUT.npz
    calibrate evaluate DATA [--calibrator CAL.json] [--bins 15] [--json]
    calibrate report DATA [--calibrator CAL.json | --fit-on VAL --methods a,b] [--ood OOD] [--conformal 0.1] -o report.html [--json report.json] [--pdf report.pdf]
    calibrate experiment --preset tiny|quick|cpu|full --data DIR --out DIR [--device D] [--precision P]

Labels on the command line are class indices, integers 0..k-1 (column j of the logits is
class j); the Python API also takes other labels (strings) through ``classes_``.

Bad input prints one line, ``calibrate: error: ...``, and exits with status 2; set
CALIBRATE_DEBUG=1 to see the traceback. Warnings print one line, ``calibrate: warning: ...``.
Outputs follow :mod:`calibrate.io.outputs`: only the files named are written, never over an
input, all outputs of one command as a unit; SIGINT exits 130 and SIGTERM 143, leaving
no temporary file.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys

import numpy as np

EXIT_USAGE = 2


class CLIError(Exception):
    pass


def _add_data_args(p: argparse.ArgumentParser, name="DATA"):
    p.add_argument("data", metavar=name, help="saved predictions: .npz, .npy (+ --labels), .pt or .csv")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--probs", dest="kind", action="store_const", const="probs",
                      help="the file holds probabilities, not logits")
    kind.add_argument("--log-probs", dest="kind", action="store_const", const="log_probs",
                      help="the file holds log-probabilities (rows with logsumexp 0)")
    kind.add_argument("--logits", dest="kind", action="store_const", const="logits",
                      help="the file holds logits (the default; silences the warning when they look like probabilities)")
    p.add_argument("--logits-key", default=None, help="array name of the logits (default: logits, or probs with --probs)")
    p.add_argument("--labels-key", default=None,
                   help="array/column name of the labels, integers 0..k-1 (default: labels; label or labels in a CSV)")
    p.add_argument("--labels", default=None, metavar="FILE.npy", help="labels (integers 0..k-1) in a separate .npy file")
    p.add_argument("--index-col", default=None, metavar="NAME", help="CSV: a column to skip (a row index)")
    p.add_argument("--class-columns", default=None, metavar="A,B,...",
                   help="CSV: the class columns, in order (any other column but the label and index is refused)")
    p.add_argument("--multilabel", action="store_true",
                   help="(n, L) independent sigmoid outputs (logits, or probabilities with --probs) and an (n, L) 0/1 "
                        "indicator matrix of labels: one calibrator per label (calibrate.report.multilabel_cli)")


def _add_group_args(p: argparse.ArgumentParser, resamples: bool = False):
    from calibrate.calibrators import available_methods

    p.add_argument("--group-by", default=None, metavar="COLUMN[,COLUMN]",
                   help="metrics per group of rows (combinations of these columns' values), with intervals, the "
                        "worst group and each group's gap to all rows; columns from --groups FILE or a CSV DATA")
    p.add_argument("--groups", default=None, metavar="FILE",
                   help="the --group-by columns, one row per data row: .csv (header), .npz arrays or .parquet")
    if resamples:
        p.add_argument("--resamples", type=_resamples, default=1000,
                       help="bootstrap resamples of the --group-by intervals (default 1000)")
        p.add_argument("--seed", type=_seed, default=0)
    else:
        p.add_argument("--fit-groups", default=None, metavar="FILE",
                       help="with --group-by and --fit-on: the group columns of the --fit-on rows; adds a temperature "
                            "per group shrunk toward the global one by cross-validation (GroupedCalibrator), "
                            "compared with the global temperature group by group")
        p.add_argument("--group-method", default=None, choices=available_methods(), metavar="METHOD",
                       help="with --fit-groups: the method fitted per group (default temperature; any --method of "
                            "calibrate fit: a mixture with the global fit, weight n_g / (n_g + tau), tau by CV)")


def _csv_group_columns(args) -> tuple:
    """The --group-by columns to skip when reading a CSV DATA that holds them (no --groups)."""
    if not getattr(args, "group_by", None) or getattr(args, "groups", None):
        return ()
    from calibrate.io.group_columns import parse_group_by

    return tuple(parse_group_by(args.group_by))


def _group_columns(args, data):
    """{column: (n,) array} of --group-by (from --groups FILE, else the CSV DATA), or None."""
    if not getattr(args, "group_by", None):
        if getattr(args, "groups", None):
            raise CLIError("--groups FILE needs --group-by COLUMN[,COLUMN] (the columns of FILE to group by)")
        return None
    from calibrate.io.group_columns import parse_group_by, read_group_columns

    cols = parse_group_by(args.group_by)
    if args.groups:
        return read_group_columns(args.groups, cols, data.n)
    if not str(args.data).lower().endswith(".csv"):
        raise CLIError(f"{args.data}: --group-by {args.group_by} needs --groups FILE (.csv, .npz or .parquet, one "
                       "row per data row), or a CSV DATA file holding the group columns")
    return read_group_columns(args.data, cols, data.n)


def _evaluate_groups(args, data, columns):
    """GroupMetrics of DATA (calibrated by args.calibrator when given) over ``columns``."""
    from calibrate.calibrators import load
    from calibrate.groups import group_metrics

    transform = None
    if args.calibrator:
        cal = load(args.calibrator)

        def transform(zb):
            return cal.predict_log_proba(zb, kind="logits")
    print(f"bootstrapping {args.resamples} resamples for the groups of {args.group_by}", file=sys.stderr)
    return group_metrics(data.logits, data.require_labels(), columns, n_bins=args.bins, n_resamples=args.resamples,
                         seed=args.seed, transform=transform)


def _read(args, path=None, require_labels=True):
    from calibrate.io.readers import read_predictions

    cols = [c.strip() for c in args.class_columns.split(",")] if args.class_columns else None
    data = read_predictions(
        path or args.data, kind=args.kind, logits_key=args.logits_key,
        labels_key=args.labels_key, labels_path=args.labels if path is None else None,
        require_labels=require_labels, index_col=args.index_col, class_columns=cols,
        skip_columns=_csv_group_columns(args),
    )
    if data.k < 2:  # one class: every probability is 1, every metric a meaningless 0
        raise CLIError(f"{data.path}: has {data.k} class column; a calibrator needs at least 2, and so do the "
                       "metrics (binary scores may be one column of an .npz/.npy: (n,) logits of class 1)")
    return data


def _inputs(args) -> list:
    """Every file the command reads: no output may be one of them."""
    paths = [getattr(args, "data", None), getattr(args, "labels", None), getattr(args, "fit_on", None),
             getattr(args, "ood", None), getattr(args, "groups", None), getattr(args, "fit_groups", None)]
    cal = getattr(args, "calibrator", None)
    paths += cal if isinstance(cal, list) else [cal]
    return [p for p in paths if p]


def _check_classes(cal, cal_path, data) -> None:
    from calibrate.calibrators.base import check_classes

    check_classes(cal, cal_path, data)


def _fmt(x):
    return f"{x:.4f}" if isinstance(x, float) else str(x)


def _multilabel():
    """The --multilabel commands (fit, apply, evaluate, report), imported on first use."""
    from calibrate.report import multilabel_cli

    return multilabel_cli


def _is_multilabel(args) -> bool:
    """--multilabel, or a calibrator file of MultiLabelCalibrator (recognised from its JSON)."""
    from calibrate.io.multilabel import is_multilabel_calibrator

    cal = getattr(args, "calibrator", None)
    return args.multilabel or any(map(is_multilabel_calibrator, cal if isinstance(cal, list) else [cal]))


# ----------------------------------------------------------------------------- fit
def cmd_fit(args) -> int:
    from calibrate.calibrators import get_calibrator
    from calibrate.calibrators.fit_summary import fit_with_summary
    from calibrate.io.outputs import check_outputs, write_outputs

    if args.multilabel:
        return _multilabel().fit(args, _inputs(args))
    if _llm(args):
        return _llm_command("fit", args)
    check_outputs([args.output], _inputs(args))
    data = _read(args)
    y = data.require_labels()
    if data.k < 2:
        raise CLIError(f"{data.path}: has {data.k} class column; a calibrator needs at least 2 (binary scores "
                       "may be one column of an .npz/.npy: (n,) logits of class 1)")
    _refuse_long_fit(args.method, data.n, data.k, args.allow_slow)
    cal = get_calibrator(args.method)
    # data.logits are logits: what the file held was settled on reading. Only what is printed
    # (top-label NLL and ECE, before and after): temperature scaling from the per-row values
    # of its own passes, other methods from one separate pass over row blocks (never (n, k))
    m0, m1 = fit_with_summary(cal, data.logits, y, args.bins, kind="logits")
    nll0, nll1, ece0, ece1 = m0["nll"], m1["nll"], m0["ece"], m1["ece"]
    write_outputs({args.output: cal.to_json()}, _inputs(args))
    params = ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in cal.summary().items())
    print(f"method      {args.method}")
    if params:
        print(f"parameters  {params}")
    print(f"data        {data.path} (n = {data.n}, k = {data.k})")
    print(f"NLL         {nll0:.4f} -> {nll1:.4f}")
    print(f"ECE ({args.bins} bins) {ece0:.4f} -> {ece1:.4f}  (on the fitting data)")
    print(f"wrote       {args.output}")
    return 0


# ----------------------------------------------------------------------------- apply
def cmd_apply(args) -> int:
    from calibrate.calibrators import load
    from calibrate.io.outputs import check_outputs, save_npz

    check_outputs([args.output], _inputs(args))
    if str(args.data).lower().endswith(".json") and not str(args.calibrator).lower().endswith(".json"):
        raise CLIError(f"{args.data}: a .json file where DATA goes, and {args.calibrator} where CAL.json goes: "
                       "the calibrator comes first: calibrate apply CAL.json DATA -o OUT.npz")
    if _is_multilabel(args):
        return _multilabel().apply(args, _inputs(args))
    if not str(args.output).lower().endswith(".npz"):
        raise CLIError(f"{args.output}: apply writes a .npz file (arrays 'probs' and 'labels'); give an output "
                       "name ending in .npz")
    cal = load(args.calibrator)
    data = _read(args, require_labels=False)
    _check_classes(cal, args.calibrator, data)
    probs = cal.predict_proba(data.logits, kind="logits")
    out = {"probs": probs}
    if data.labels is not None:
        out["labels"] = data.labels
    save_npz(args.output, _inputs(args), **out)
    print(f"wrote {args.output}: probs {probs.shape}" + (" and labels" if data.labels is not None else ""))
    return 0


# ----------------------------------------------------------------------------- evaluate
def evaluate_predictions(data, calibrator_path=None, n_bins=15, classwise=None) -> dict:
    """The numbers ``calibrate evaluate`` prints. classwise: compute the class-wise ones
    (summary.CLASSWISE_KEYS); None: only up to summary.CLASSWISE_MAX_K classes."""
    from calibrate.calibrators import load
    from calibrate.metrics.summary import CLASSWISE_MAX_K, summary_in_blocks

    y = data.require_labels()
    transform = None
    if calibrator_path:
        cal = load(calibrator_path)
        _check_classes(cal, calibrator_path, data)

        def transform(zb):
            return cal.predict_log_proba(zb, kind="logits")
    out = {"n": data.n, "k": data.k, "bins": n_bins}
    if classwise is None:
        classwise = data.k <= CLASSWISE_MAX_K
    out.update(summary_in_blocks(data.logits, y, n_bins, transform=transform,  # row blocks (memmap-safe)
                                 classwise=classwise))
    return out


def cmd_evaluate(args) -> int:
    from calibrate.metrics.summary import CLASSWISE_KEYS, CLASSWISE_MAX_K, SUMMARY_NAMES

    if _is_multilabel(args):
        return _multilabel().evaluate(args)
    if _llm(args):
        return _llm_command("evaluate", args)
    if args.calibrator and len(args.calibrator) > 1:
        raise CLIError(f"evaluate takes one --calibrator, got {len(args.calibrator)}; "
                       "to compare several, use calibrate report DATA --calibrator A --calibrator B")
    args.calibrator = args.calibrator[0] if args.calibrator else None
    data = _read(args)
    columns = _group_columns(args, data)
    res = evaluate_predictions(data, args.calibrator, args.bins, classwise=True if args.classwise else None)
    res["data"] = data.path
    if args.calibrator:
        res["calibrator"] = args.calibrator
    gm = _evaluate_groups(args, data, columns) if columns is not None else None
    if gm is not None:
        res["groups"] = gm.to_dict()
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"data        {data.path} (n = {data.n}, k = {data.k})" + (f", calibrated by {args.calibrator}" if args.calibrator else ""))
    for key, label in SUMMARY_NAMES.items():
        if key in res:
            print(f"{label:<24}{res[key]:.4f}")
    if CLASSWISE_KEYS[0] not in res:
        print(f"(class-wise ECE and the Brier calibration/refinement split are computed up to k = {CLASSWISE_MAX_K} "
              f"classes; k = {data.k}: add --classwise)")
    if gm is not None:
        print(f"\ngroups by {args.group_by}: {len(gm.labels):,} groups, {int(gm.small.sum()):,} with fewer than "
              f"{gm.min_count} rows (too small: no interval); 95% percentile intervals, {gm.n_resamples} resamples")
        print(gm.table("ece", max_rows=30))
    return 0


# ----------------------------------------------------------------------------- report
def cmd_report(args) -> int:
    import time

    from calibrate.io.outputs import check_outputs

    t0 = time.time()
    if _is_multilabel(args):
        return _multilabel().report(args, _inputs(args), started=t0)
    if _llm(args):
        return _llm_command("report", args)
    check_outputs([args.output, args.json, args.pdf], _inputs(args))
    if args.calibrator and args.fit_on:
        raise CLIError("give either --calibrator or --fit-on, not both")
    if args.methods and not args.fit_on:
        raise CLIError("--methods needs --fit-on VAL (the data to fit the calibrators on)")
    if args.conformal is not None and not 0.0 < args.conformal < 1.0:
        raise CLIError(f"--conformal: expected a miscoverage ALPHA in (0, 1), got {args.conformal:g}")
    methods = [m.strip() for m in (args.methods or ",".join(ALL_METHODS)).split(",") if m.strip()]
    from calibrate.calibrators import available_methods

    unknown = [m for m in methods if m not in available_methods()]
    if unknown:
        raise CLIError(f"--methods: expected a comma-separated list of {', '.join(available_methods())}, "
                       f"got {unknown[0]!r}")
    if args.group_method is not None and not args.fit_groups:
        raise CLIError(f"--group-method {args.group_method} needs --fit-groups FILE (and --group-by, --fit-on): "
                       "it names the method fitted per group")
    test = _read(args)
    test.require_labels()
    columns = _group_columns(args, test)
    if args.fit_groups and (columns is None or not args.fit_on):
        raise CLIError("--fit-groups FILE needs --group-by COLUMN[,COLUMN] and --fit-on VAL (the groups of VAL's "
                       "rows)")
    val = _read(args, path=args.fit_on) if args.fit_on else None
    fit_columns = None
    if args.fit_groups:
        from calibrate.io.group_columns import parse_group_by, read_group_columns

        fit_columns = read_group_columns(args.fit_groups, parse_group_by(args.group_by), val.n)
    ood = _read(args, path=args.ood, require_labels=False) if args.ood else None
    from calibrate.report.build import ReportOptions, build_report

    options = ReportOptions(title=args.title, n_bins=args.bins, n_resamples=args.resamples, seed=args.seed,
                            conformal_alpha=args.conformal, classes=args.classes, allow_slow=args.allow_slow,
                            pdf=bool(args.pdf), started=t0)
    html, pdf, data = build_report(test, calibrators=args.calibrator or [], fit_on=val,
                                   methods=methods if args.fit_on else [], ood=ood, groups=columns,
                                   fit_groups=fit_columns, group_method=args.group_method or "temperature",
                                   options=options, progress=lambda line: print(line, file=sys.stderr))
    from calibrate.report.html import write_report

    write_report(args.output, html, data, json_path=args.json, inputs=_inputs(args), pdf_path=args.pdf, pdf=pdf)
    m = data["metrics"]
    for name, r in m.items():
        print(f"{name:<14} ECE {r['ece']['estimate']:.4f} [{r['ece']['low']:.4f}, {r['ece']['high']:.4f}]  "
              f"NLL {r['nll']['estimate']:.4f}  acc {r['accuracy']['estimate']:.4f}")
    print("wrote " + " and ".join(p for p in (args.output, args.json, args.pdf) if p))
    return 0


# ----------------------------------------------------------------------------- experiment
def cmd_experiment(args) -> int:
    from pathlib import Path

    from calibrate._core.optional import require_torch

    require_torch("calibrate experiment")  # before anything imports it
    from calibrate.apps.cifar10.data import detect_layout
    from calibrate.apps.cifar10.runner import run_experiment

    detect_layout(args.data)  # a clear error before anything heavy is imported
    args.out = args.out or f"out/cifar10-{args.preset}"
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise CLIError(f"{args.out}: --out is an existing file, expected a directory (report.html, metrics.json "
                       "and logits/ go into it); give a directory name")
    if os.path.isdir(args.out) and os.path.samefile(args.out, args.data):
        raise CLIError(f"{args.out}: --out is the data folder --data; give another directory for the outputs")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    run_experiment(args.preset, args.data, args.out, work_dir=args.work, cache_dir=args.cache_dir,
                   progress=not args.quiet, device=args.device, precision=args.precision)
    return 0


def _refuse_long_fit(method, n, k, allow_slow) -> None:
    """Refuse, before fitting, a fit that is long by the size rule
    (calibrate.calibrators._budget: from method, n and k only), unless --allow-slow."""
    from calibrate.calibrators._budget import refuse_long_fit

    refuse_long_fit(method, n, k, allow_slow)


def _llm(args) -> bool:
    """Whether the command reads language-model evaluation logs (calibrate.io.llm.args)."""
    from calibrate.io.llm.args import llm_mode

    return llm_mode(args)


def _llm_command(command, args) -> int:
    from calibrate.report import llm

    return {"fit": llm.cli_fit, "evaluate": llm.cli_evaluate, "report": llm.cli_report}[command](args)


ALL_METHODS = ["temperature", "vector", "matrix", "platt", "isotonic", "histogram", "bbq"]


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from calibrate.calibrators import available_methods
    from calibrate.io.llm.args import add_llm_arguments

    parser = _Parser(prog="calibrate", description="Measure and fix the calibration of classifier probabilities.")
    parser.add_argument("--version", action="version", version=f"calibrate {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("fit", help="fit a calibrator on saved validation logits")
    _add_data_args(p)
    p.add_argument("--method", default="temperature", choices=available_methods())
    p.add_argument("-o", "--output", required=True, metavar="CAL.json")
    p.add_argument("--bins", type=_bins, default=15, help="bins of the ECE shown (default 15)")
    p.add_argument("--allow-slow", action="store_true",
                   help="run a fit that is long by the size rule (over a minute by its n, k and method)")
    add_llm_arguments(p, "fit")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("apply", help="write calibrated probabilities")
    p.add_argument("calibrator", metavar="CAL.json")
    _add_data_args(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("evaluate", help="accuracy, ECE and its variants, NLL, Brier")
    _add_data_args(p)
    p.add_argument("--calibrator", action="append", metavar="CAL.json", help="a fitted calibrator (at most one)")
    p.add_argument("--bins", type=_bins, default=15)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--classwise", action="store_true",
                   help="also compute the class-wise numbers (class-wise ECE, Brier calibration and refinement: "
                        "O(n k) bin sums); by default only up to k = 100 classes")
    add_llm_arguments(p, "evaluate")
    _add_group_args(p, resamples=True)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="write a self-contained HTML reliability report (and JSON with --json)")
    _add_data_args(p)
    p.add_argument("--calibrator", action="append", metavar="CAL.json", help="a fitted calibrator (repeatable)")
    p.add_argument("--fit-on", metavar="VAL", help="fit calibrators on these validation predictions")
    p.add_argument("--methods", help=f"with --fit-on: comma-separated methods (default: all: {','.join(ALL_METHODS)})")
    p.add_argument("-o", "--output", required=True, metavar="report.html")
    p.add_argument("--json", default=None, metavar="report.json", help="also write the numbers as JSON to this file")
    p.add_argument("--pdf", default=None, metavar="report.pdf",
                   help="also write the same report as a PDF (A4) to this file")
    p.add_argument("--bins", type=_bins, default=15)
    p.add_argument("--resamples", type=_resamples, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--title", default="Calibration report")
    p.add_argument("--ood", metavar="FILE", help="logits of out-of-distribution inputs (read like DATA, no labels "
                   "needed): adds OOD detection metrics and score histograms")
    p.add_argument("--conformal", type=float, metavar="ALPHA", help="add split conformal sets (LAC, APS) for "
                   "miscoverage ALPHA, calibrated on --fit-on data, else on a seeded half of DATA")
    p.add_argument("--allow-slow", action="store_true",
                   help="run fits that are long by the size rule (over a minute by their n, k and method)")
    p.add_argument("--classes", choices=["auto", "all"], default="auto",
                   help="auto (default): every class up to 20 classes; beyond, the classes of largest class-wise "
                        "ECE and the most frequent (12 panels), a heat map and a searchable table of the others "
                        "(the JSON holds every class); all: every class's panel and row, whatever k")
    add_llm_arguments(p, "report")
    _add_group_args(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("experiment", help="the CIFAR-10 experiment: train, sample, calibrate, report")
    p.add_argument("--preset", choices=["tiny", "quick", "cpu", "full"], default="quick",
                   help="tiny (tests), quick (smoke run, minutes), cpu (the real study on a CPU), full (GPU); "
                        "each prints its expected time on this machine first")
    p.add_argument("--data", default="../shared/data/cifar10", help="CIFAR-10 folder (image folders or the original batches)")
    p.add_argument("--out", default=None, help="where report.html, metrics.json and logits/ go (default: out/cifar10-PRESET)")
    p.add_argument("--work", default=None, help="checkpoints and cached predictions (default: runs/cifar10-PRESET)")
    p.add_argument("--cache-dir", "--cache", dest="cache_dir", default=None,
                   help="decoded-image cache (default: $CALIBRATE_CACHE, else WORK/cache)")
    p.add_argument("--device", default="auto", help="auto (CUDA if available, else CPU; default), cpu, cuda or cuda:N")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto (default): bf16 only where the CPU/GPU runs it natively and faster, else fp32; "
                        "fp16 on CUDA only")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_experiment)

    return parser


def _version():
    from calibrate import __version__

    return __version__


def _int_arg(text, name, check):
    from calibrate._core.validation import InputError

    try:
        value = int(text)
    except ValueError:
        try:
            f = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
        if not f.is_integer():
            raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
        value = int(f)
    try:
        return check(value, name)
    except InputError as e:
        raise argparse.ArgumentTypeError(str(e).split(": ", 1)[1]) from None


def _bins(text):
    from calibrate._core.validation import check_n_bins

    return _int_arg(text, "--bins", check_n_bins)


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _resamples(text):
    from calibrate._core.validation import check_n_resamples

    return _int_arg(text, "--resamples", check_n_resamples)


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (exit 2) like every other error."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"calibrate: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"calibrate: warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv=None) -> int:
    import signal
    import warnings

    from calibrate._core.validation import InputError
    from calibrate.calibrators import NotFittedError
    from calibrate.io.outputs import EXIT_SIGINT, Terminated

    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _show_warning
    _matplotlib_config_dir()
    old_term = signal.getsignal(signal.SIGTERM)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        def on_term(signum, frame):
            raise Terminated()
        signal.signal(signal.SIGTERM, on_term)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a full disk under a redirected stdout fails here, not at exit
        return code
    except (InputError, NotFittedError, CLIError) as e:
        _die(e)
    except MemoryError:
        _die(f"out of memory running '{args.command}'; use smaller inputs (fewer rows, bins or resamples)")
    except RecursionError:
        _die("input nested too deeply to process")
    except (ValueError, TypeError, RuntimeError, OSError) as e:
        if os.environ.get("CALIBRATE_DEBUG"):
            raise
        if isinstance(e, OSError) and e.filename is None and e.errno in _FULL:
            _die(f"cannot write the standard output ({e.strerror}); free some space on that disk or "
                 "redirect the output to another one")
        _die(e)
    except KeyboardInterrupt:
        print("calibrate: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except Terminated:
        print("calibrate: terminated", file=sys.stderr)
        raise
    finally:
        signal.signal(signal.SIGTERM, old_term)


def _matplotlib_config_dir() -> None:
    """Point matplotlib's settings and font cache (``MPLCONFIGDIR``, unless set) away from
    the home directory: a folder of this user's in the temporary directory, kept between
    runs (the font list is built once); a fresh one, removed at exit, when that folder is not
    safely ours. The command line writes nothing into $HOME and needs no writable $HOME."""
    import stat
    import tempfile

    if os.environ.get("MPLCONFIGDIR") or "matplotlib" in sys.modules:
        return
    uid = os.getuid() if hasattr(os, "getuid") else None
    path = os.path.join(tempfile.gettempdir(), f"calibrate-matplotlib-{uid if uid is not None else 'user'}")
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError:
        path = None
    if path is not None:
        try:
            st = os.lstat(path)
        except OSError:
            path = None
        else:  # a directory, ours, writable by nobody else (no one can plant a matplotlibrc)
            if not stat.S_ISDIR(st.st_mode) or (uid is not None and st.st_uid != uid) or st.st_mode & 0o022:
                path = None
    if path is None:
        import atexit
        import shutil

        try:
            path = tempfile.mkdtemp(prefix="calibrate-matplotlib-")
        except OSError:
            return
        atexit.register(shutil.rmtree, path, True)
    os.environ["MPLCONFIGDIR"] = path


_FULL = (errno.ENOSPC, errno.EDQUOT)  # a redirected standard output on a full disk


def _die(e):
    msg = " ".join(str(e).split()) or type(e).__name__
    print(f"calibrate: error: {msg}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


if __name__ == "__main__":  # pragma: no cover
    np.seterr(all="ignore")
    sys.exit(main())
