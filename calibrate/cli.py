"""The ``calibrate`` command line: argument parsing only; the work is done elsewhere.

    calibrate fit DATA --method temperature -o CAL.json
    calibrate apply CAL.json DATA -o OUT.npz
    calibrate evaluate DATA [--calibrator CAL.json] [--bins 15] [--json]
    calibrate report DATA [--calibrator CAL.json | --fit-on VAL --methods a,b] -o report.html
    calibrate experiment --preset quick|cpu|full --data DIR --out DIR

Bad input prints one line, ``calibrate: error: ...``, and exits with status 2; set
CALIBRATE_DEBUG=1 to see the traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

EXIT_USAGE = 2


class CLIError(Exception):
    pass


def _add_data_args(p: argparse.ArgumentParser, name="DATA"):
    p.add_argument("data", metavar=name, help="saved predictions: .npz, .npy (+ --labels), .pt or .csv")
    p.add_argument("--probs", action="store_true", help="the file holds probabilities, not logits")
    p.add_argument("--logits-key", default=None, help="array name of the logits (default: logits, or probs with --probs)")
    p.add_argument("--labels-key", default="labels", help="array/column name of the labels (default: labels)")
    p.add_argument("--labels", default=None, metavar="FILE.npy", help="labels in a separate .npy file")


def _read(args, path=None, require_labels=True):
    from .io import read_predictions

    return read_predictions(
        path or args.data, probs=args.probs, logits_key=args.logits_key,
        labels_key=args.labels_key, labels_path=args.labels if path is None else None,
        require_labels=require_labels,
    )


def _fmt(x):
    return f"{x:.4f}" if isinstance(x, float) else str(x)


# ----------------------------------------------------------------------------- fit
def cmd_fit(args) -> int:
    from .calibrators import get_calibrator
    from .io import check_writable
    from .streaming import evaluate_in_blocks

    check_writable(args.output)
    data = _read(args)
    y = data.require_labels()
    cal = get_calibrator(args.method, **_slow_kw(args.method, args.allow_slow))
    cal.fit(data.logits, y)
    # in row blocks: a memory-mapped .npy is never loaded whole
    m0 = evaluate_in_blocks(data.logits, y, args.bins)
    m1 = evaluate_in_blocks(data.logits, y, args.bins, transform=cal.predict_log_proba)
    nll0, nll1, ece0, ece1 = m0["nll"], m1["nll"], m0["ece"], m1["ece"]
    cal.save(args.output)
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
    from .calibrators import load
    from .io import atomic_save_npz, check_writable

    check_writable(args.output)
    cal = load(args.calibrator)
    data = _read(args, require_labels=False)
    probs = cal.predict_proba(data.logits)
    out = {"probs": probs}
    if data.labels is not None:
        out["labels"] = data.labels
    atomic_save_npz(args.output, **out)
    print(f"wrote {args.output}: probs {probs.shape}" + (" and labels" if data.labels is not None else ""))
    return 0


# ----------------------------------------------------------------------------- evaluate
def evaluate_predictions(data, calibrator_path=None, n_bins=15) -> dict:
    from .calibrators import load
    from .streaming import evaluate_in_blocks

    y = data.require_labels()
    transform = load(calibrator_path).predict_log_proba if calibrator_path else None
    out = {"n": data.n, "k": data.k, "bins": n_bins}
    out.update(evaluate_in_blocks(data.logits, y, n_bins, transform=transform))  # row blocks (memmap-safe)
    return out


def cmd_evaluate(args) -> int:
    from .metrics import METRIC_NAMES

    data = _read(args)
    res = evaluate_predictions(data, args.calibrator, args.bins)
    res["data"] = data.path
    if args.calibrator:
        res["calibrator"] = args.calibrator
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"data        {data.path} (n = {data.n}, k = {data.k})" + (f", calibrated by {args.calibrator}" if args.calibrator else ""))
    for key, label in METRIC_NAMES.items():
        print(f"{label:<24}{res[key]:.4f}")
    return 0


# ----------------------------------------------------------------------------- report
def cmd_report(args) -> int:
    import time
    from pathlib import Path

    from .calibrators import get_calibrator, load
    from .io import check_writable
    from .report.html import calibration_report, write_report

    t0 = time.time()
    check_writable(args.output)
    check_writable(Path(args.output).with_suffix(".json"))
    if args.calibrator and args.fit_on:
        raise CLIError("give either --calibrator or --fit-on, not both")
    if args.methods and not args.fit_on:
        raise CLIError("--methods needs --fit-on VAL (the data to fit the calibrators on)")
    test = _read(args)
    y = test.require_labels()
    cals = {}
    for path in args.calibrator or []:
        cal = load(path)
        name = cal.name if cal.name not in cals else f"{cal.name} ({os.path.basename(path)})"
        cals[name] = cal
    fit_name = ", ".join(args.calibrator or [])
    if args.fit_on:
        val = _read(args, path=args.fit_on)
        if val.k != test.k:
            raise CLIError(f"{args.fit_on}: has {val.k} classes, {args.data} has {test.k}")
        methods = [m.strip() for m in (args.methods or ",".join(ALL_METHODS)).split(",") if m.strip()]
        for m in methods:
            print(f"fitting {m} on {args.fit_on}", file=sys.stderr)
            cals[m] = get_calibrator(m, **_slow_kw(m, args.allow_slow)).fit(val.logits, val.require_labels())
        fit_name = args.fit_on
    print(f"bootstrapping {args.resamples} resamples for {1 + len(cals)} predictions", file=sys.stderr)
    html, data = calibration_report(test.logits, y, cals, data_name=test.path, fit_name=fit_name,
                                    n_bins=args.bins, n_resamples=args.resamples, seed=args.seed,
                                    title=args.title, started=t0)
    json_path = write_report(args.output, html, data)
    m = data["metrics"]
    for name, r in m.items():
        print(f"{name:<14} ECE {r['ece']['estimate']:.4f} [{r['ece']['low']:.4f}, {r['ece']['high']:.4f}]  "
              f"NLL {r['nll']['estimate']:.4f}  acc {r['accuracy']['estimate']:.4f}")
    print(f"wrote {args.output} and {json_path}")
    return 0


# ----------------------------------------------------------------------------- experiment
def cmd_experiment(args) -> int:
    from pathlib import Path

    from .cifar10.data import detect_layout
    from .cifar10.runner import run_experiment

    detect_layout(args.data)  # a clear error before anything heavy is imported
    args.out = args.out or f"out/cifar10-{args.preset}"
    Path(args.out).mkdir(parents=True, exist_ok=True)
    run_experiment(args.preset, args.data, args.out, work_dir=args.work, cache_dir=args.cache, progress=not args.quiet,
                   device=args.device)
    return 0


def _slow_kw(method, allow_slow) -> dict:
    """allow_slow=True for the calibrators that refuse slow fits (BBQ, isotonic, matrix)."""
    import inspect

    from .calibrators.base import _REGISTRY

    cls = _REGISTRY.get(method)
    ok = cls is not None and "allow_slow" in inspect.signature(cls.__init__).parameters
    return {"allow_slow": True} if allow_slow and ok else {}


ALL_METHODS = ["temperature", "vector", "matrix", "platt", "isotonic", "histogram", "bbq"]


# ----------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from .calibrators import available_methods

    parser = argparse.ArgumentParser(prog="calibrate", description="Measure and fix the calibration of classifier probabilities.")
    parser.add_argument("--version", action="version", version=f"calibrate {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("fit", help="fit a calibrator on saved validation logits")
    _add_data_args(p)
    p.add_argument("--method", default="temperature", choices=available_methods())
    p.add_argument("-o", "--output", required=True, metavar="CAL.json")
    p.add_argument("--bins", type=int, default=15, help="bins of the ECE shown (default 15)")
    p.add_argument("--allow-slow", action="store_true", help="run a fit estimated to take over a minute")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("apply", help="write calibrated probabilities")
    p.add_argument("calibrator", metavar="CAL.json")
    _add_data_args(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("evaluate", help="accuracy, ECE and its variants, NLL, Brier")
    _add_data_args(p)
    p.add_argument("--calibrator", default=None, metavar="CAL.json")
    p.add_argument("--bins", type=int, default=15)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("report", help="write a self-contained HTML reliability report (+ JSON)")
    _add_data_args(p)
    p.add_argument("--calibrator", action="append", metavar="CAL.json", help="a fitted calibrator (repeatable)")
    p.add_argument("--fit-on", metavar="VAL", help="fit calibrators on these validation predictions")
    p.add_argument("--methods", help=f"with --fit-on: comma-separated methods (default: all: {','.join(ALL_METHODS)})")
    p.add_argument("-o", "--output", required=True, metavar="report.html")
    p.add_argument("--bins", type=int, default=15)
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--title", default="Calibration report")
    p.add_argument("--allow-slow", action="store_true", help="run fits estimated to take over a minute")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("experiment", help="the CIFAR-10 experiment: train, sample, calibrate, report")
    p.add_argument("--preset", choices=["quick", "cpu", "full"], default="quick")
    p.add_argument("--data", default="../shared/data/cifar10", help="CIFAR-10 folder (image folders or the original batches)")
    p.add_argument("--out", default=None, help="where report.html, metrics.json and logits/ go (default: out/cifar10-PRESET)")
    p.add_argument("--work", default=None, help="checkpoints and cached predictions (default: runs/cifar10-PRESET)")
    p.add_argument("--cache", default=None, help="decoded-image cache (default: ~/.cache/calibrate or $CALIBRATE_CACHE)")
    p.add_argument("--device", default="cpu", help="training device: cpu (default) or cuda (the full preset)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_experiment)

    return parser


def _version():
    from . import __version__

    return __version__


def main(argv=None) -> int:
    from ._validation import InputError
    from .calibrators import NotFittedError

    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "bins", 15) is not None and getattr(args, "bins", 15) < 1:
        parser.error(f"--bins: expected a positive integer, got {args.bins}")
    try:
        return args.func(args)
    except (InputError, NotFittedError, CLIError) as e:
        _die(e)
    except (ValueError, TypeError, RuntimeError, OSError) as e:
        if os.environ.get("CALIBRATE_DEBUG"):
            raise
        _die(e)
    except KeyboardInterrupt:
        print("calibrate: interrupted", file=sys.stderr)
        return 130


def _die(e):
    msg = " ".join(str(e).split()) or type(e).__name__
    print(f"calibrate: error: {msg}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


if __name__ == "__main__":  # pragma: no cover
    np.seterr(all="ignore")
    sys.exit(main())
