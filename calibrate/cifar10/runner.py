"""The CIFAR-10 calibration experiment: train, sample, calibrate, report (imports torch).

    calibrate experiment --preset quick|cpu|full --data DIR --out DIR [--work DIR]

1. CIFAR-10 (either layout), the seeded stratified 45,000 / 5,000 / 10,000 split.
2. Models (cached in WORK/models/NAME, resumable): the baseline (standard recipe), the
   ensemble members (the baseline recipe with seeds 1..M-1; the baseline is member 0), a
   label-smoothing model, and an over-fitting model trained without augmentation or
   weight decay (the regime where Guo et al. saw over-confidence).
3. Predictions saved as ``.npz`` (``logits``, ``labels``) that ``calibrate fit / evaluate /
   report`` read as they are: baseline, label_smoothing, overfit_noaug, mc_dropout (the
   baseline with S dropout samples, pooled) and ensemble (M members, pooled). Pooled
   predictions are saved as log-probabilities (valid logits); samples as (S, n, k).
4. Every calibrator fitted on validation and evaluated on test with 95 % bootstrap CIs;
   for the ensemble also each member calibrated before pooling.
5. OUT/metrics.json, OUT/report.html (figures embedded) and OUT/logits/.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import metrics
from ..calibrators import get_calibrator
from ..io import atomic_save_npz
from ..report.html import environment, evaluate_with_ci, paired_differences

CALIBRATORS = ["none", "temperature", "vector", "matrix", "platt", "isotonic", "histogram", "bbq"]
ANCHORS_GUO = {  # Guo et al. 2017, Table 1, CIFAR-10, ECE % (../shared/docs/anchors.md)
    "ResNet-110": {"none": 4.60, "histogram": 0.58, "isotonic": 0.81, "bbq": 0.54, "temperature": 0.83, "vector": 0.88, "matrix": 1.00},
    "Wide ResNet-32": {"none": 4.52, "histogram": 0.72, "isotonic": 1.08, "bbq": 0.74, "temperature": 0.54, "vector": 0.60, "matrix": 0.72},
    "DenseNet-40": {"none": 3.28, "histogram": 0.44, "isotonic": 0.61, "bbq": 0.81, "temperature": 0.33, "vector": 0.41, "matrix": 0.41},
    "LeNet-5": {"none": 3.02, "histogram": 1.56, "isotonic": 1.85, "bbq": 1.59, "temperature": 0.93, "vector": 1.15, "matrix": 1.16},
}


@dataclass(frozen=True)
class Preset:
    name: str
    epochs: int
    widths: tuple
    ensemble_size: int
    mc_samples: int
    overfit_epochs: int
    label_smoothing: float = 0.1
    n_train: int | None = None  # a stratified subset of the 45,000 (quick)
    n_val: int = 5000
    n_test: int | None = None
    n_resamples: int = 1000
    batch_size: int = 512
    lr: float = 0.4
    notes: str = ""


PRESETS = {
    "quick": Preset("quick", epochs=3, widths=(16, 32, 64), ensemble_size=2, mc_samples=5, overfit_epochs=3,
                    n_train=8000, n_val=1000, n_test=2000, n_resamples=200,
                    notes="smoke run on a subset, for CI: numbers are not meaningful"),
    "cpu": Preset("cpu", epochs=15, widths=(32, 64, 128), ensemble_size=5, mc_samples=20, overfit_epochs=12,
                  notes="the real experiment on a 2-core CPU (about 40-45 minutes from scratch)"),
    "full": Preset("full", epochs=60, widths=(64, 128, 256), ensemble_size=5, mc_samples=30, overfit_epochs=60,
                   notes="for users with a GPU: a ResNet-9 at full width and a long schedule; not run here"),
}


@dataclass
class Variant:
    """One model's predictions: logits (n, k) for val and test, optional samples (S, n, k)."""

    name: str
    val: np.ndarray
    test: np.ndarray
    val_samples: np.ndarray | None = None
    test_samples: np.ndarray | None = None
    info: dict = field(default_factory=dict)


def _stratified_subset(y, n, seed):
    if n is None or n >= len(y):
        return np.arange(len(y))
    rng = np.random.default_rng(seed)
    k = int(y.max()) + 1
    per = n // k
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per] for c in range(k)]))


def _load_npz(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def run_experiment(preset: str, data_dir, out_dir, work_dir=None, cache_dir=None, progress: bool = True,
                   device: str = "cpu") -> dict:
    """Run (or resume) the experiment; returns the metrics dict written to OUT/metrics.json."""
    import torch

    from ..uncertainty import (
        calibrate_members_then_pool,
        pooled_log_probs,
        uncertainty_decomposition,
    )
    from .data import CLASSES, load_cifar10, split_train_val
    from .sampling import mc_dropout_logits
    from .training import TrainConfig, predict_logits, train

    t_start = time.time()
    p = PRESETS[preset]
    if device != "cpu" and not torch.cuda.is_available() and device.startswith("cuda"):
        raise ValueError(f"--device {device}: no CUDA device is available here; use --device cpu")
    out = Path(out_dir)
    work = Path(work_dir) if work_dir else Path("runs") / f"cifar10-{preset}"
    (out / "logits").mkdir(parents=True, exist_ok=True)
    (work / "models").mkdir(parents=True, exist_ok=True)

    def log(msg):
        if progress:
            print(f"[{time.time() - t_start:7.1f} s] {msg}", flush=True)

    log(f"loading CIFAR-10 from {data_dir}")
    xtr, ytr, xte, yte = load_cifar10(data_dir, cache_dir, progress=progress)
    tr_idx, va_idx = split_train_val(ytr, 5000, seed=0)
    tr_idx = tr_idx[_stratified_subset(ytr[tr_idx], p.n_train, 1)]
    va_idx = va_idx[_stratified_subset(ytr[va_idx], p.n_val, 2)]
    te_idx = _stratified_subset(yte, p.n_test, 3)
    x_train, y_train = xtr[tr_idx], ytr[tr_idx]
    x_val, y_val = xtr[va_idx], ytr[va_idx]
    x_test, y_test = xte[te_idx], yte[te_idx]
    log(f"split: train {len(y_train)}, val {len(y_val)}, test {len(y_test)}")

    base = TrainConfig(epochs=p.epochs, widths=p.widths, batch_size=p.batch_size, lr=p.lr, seed=0)
    specs = {"baseline": base}
    for m in range(1, p.ensemble_size):
        specs[f"member{m}"] = TrainConfig(**{**asdict(base), "seed": m})
    specs["label_smoothing"] = TrainConfig(**{**asdict(base), "label_smoothing": p.label_smoothing})
    specs["overfit_noaug"] = TrainConfig(**{**asdict(base), "augment": False, "weight_decay": 0.0,
                                            "epochs": p.overfit_epochs})

    models, train_info = {}, {}
    for name, cfg in specs.items():
        t0 = time.time()
        log(f"model {name}: {cfg}")
        models[name] = train(cfg, x_train, y_train, work / "models" / name, progress=progress, desc=name, device=device)
        logfile = work / "models" / name / "log.jsonl"
        epochs = [json.loads(line) for line in logfile.read_text().splitlines()] if logfile.exists() else []
        train_info[name] = {"config": cfg.to_dict(), "train_seconds": round(sum(e["seconds"] for e in epochs), 1),
                            "final_train_loss": epochs[-1]["train_loss"] if epochs else None,
                            "final_train_acc": epochs[-1]["train_acc"] if epochs else None,
                            "seconds_this_run": round(time.time() - t0, 1)}

    def cached(name, compute):
        path = work / "predictions" / f"{name}.npz"
        if path.exists():
            return _load_npz(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = compute()
        atomic_save_npz(path, **arrays)
        return arrays

    logits = {}
    for name, model in models.items():
        log(f"predicting {name}")
        logits[name] = cached(name, lambda m=model: {"val": predict_logits(m, x_val), "test": predict_logits(m, x_test)})
    for name in models:
        train_info[name]["test_accuracy"] = float(np.mean(logits[name]["test"].argmax(1) == y_test))

    log(f"MC dropout: {p.mc_samples} samples of the baseline")
    mc = cached("mc_dropout_samples", lambda: {
        "val": mc_dropout_logits(models["baseline"], x_val, p.mc_samples, seed=1),
        "test": mc_dropout_logits(models["baseline"], x_test, p.mc_samples, seed=2)})
    members = ["baseline"] + [f"member{m}" for m in range(1, p.ensemble_size)]
    ens = {s: np.stack([logits[m][s] for m in members]) for s in ("val", "test")}

    variants = [
        Variant("baseline", logits["baseline"]["val"], logits["baseline"]["test"]),
        Variant("label_smoothing", logits["label_smoothing"]["val"], logits["label_smoothing"]["test"]),
        Variant("overfit_noaug", logits["overfit_noaug"]["val"], logits["overfit_noaug"]["test"]),
        Variant("mc_dropout", pooled_log_probs(mc["val"]), pooled_log_probs(mc["test"]), mc["val"], mc["test"]),
        Variant("ensemble", pooled_log_probs(ens["val"]), pooled_log_probs(ens["test"]), ens["val"], ens["test"]),
    ]
    for v in variants:
        for split, arr, y in (("val", v.val, y_val), ("test", v.test, y_test)):
            atomic_save_npz(out / "logits" / f"{v.name}_{split}.npz", logits=arr.astype(np.float32), labels=y)

    results, fitted = [], {}
    test_probs = {}
    for v in variants:
        ref = metrics.log_softmax(v.test)
        for cal_name in CALIBRATORS:
            t0 = time.time()
            if cal_name == "none":
                lp, cal = ref, None
            else:
                cal = get_calibrator(cal_name).fit(v.val, y_val, kind="logits")
                lp = cal.predict_log_proba(v.test, kind="logits")
            row = _result_row(v.name, cal_name, lp, ref, y_test, p.n_resamples)
            if cal is not None:
                row["params"] = cal.summary()
                fitted[(v.name, cal_name)] = cal
            row["seconds"] = round(time.time() - t0, 2)
            results.append(row)
            test_probs[(v.name, cal_name)] = np.exp(lp)
            log(f"{v.name:<16} {cal_name:<12} acc {row['accuracy']:.4f}  ECE {row['ece']:.4f} "
                f"[{row['ci']['ece']['low']:.4f}, {row['ci']['ece']['high']:.4f}]  NLL {row['nll']:.4f}")
        if v.name == "ensemble":
            for cal_name in CALIBRATORS[1:]:
                lp = calibrate_members_then_pool(lambda c=cal_name: get_calibrator(c), v.val_samples, y_val, v.test_samples)
                row = _result_row("ensemble_members_calibrated", cal_name, lp, ref, y_test, p.n_resamples)
                results.append(row)
                test_probs[("ensemble_members_calibrated", cal_name)] = np.exp(lp)
                log(f"{'ens (members)':<16} {cal_name:<12} ECE {row['ece']:.4f}  NLL {row['nll']:.4f}")

    uncertainty = {}
    for v in variants:
        if v.test_samples is None:
            continue
        d = uncertainty_decomposition(v.test_samples)
        correct = v.test.argmax(1) == y_test
        uncertainty[v.name] = {
            key: {"mean": float(a.mean()), "mean_correct": float(a[correct].mean()),
                  "mean_wrong": float(a[~correct].mean()) if (~correct).any() else None,
                  "auroc_error_detection": _auroc(a, ~correct)}
            for key, a in d.items()}
        uncertainty[v.name]["members"] = int(v.test_samples.shape[0])
        uncertainty[v.name]["member_accuracy_mean"] = float(np.mean(v.test_samples.argmax(2) == y_test))

    data = {
        "experiment": "cifar10", "preset": preset, "preset_config": asdict(p),
        "data": {"root": str(Path(data_dir).resolve()), "note": _data_note(data_dir),
                 "n_train": int(len(y_train)), "n_val": int(len(y_val)), "n_test": int(len(y_test))},
        "protocol": "Guo et al. 2017: 45k/5k/10k; calibrators fitted on validation NLL; ECE 15 equal-width bins, top-label; "
                    "binning calibrators one-vs-rest then renormalised",
        "results": results, "train": train_info, "uncertainty": uncertainty,
        "command": _command(), "hardware": environment(), "classes": list(CLASSES),
        "wall_seconds": round(time.time() - t_start, 1),
    }
    log("writing report.html and metrics.json")
    from ..outputs import write_outputs
    from .report import experiment_report

    html = experiment_report(data, test_probs, y_test, list(CLASSES), ANCHORS_GUO)
    data["wall_seconds"] = round(time.time() - t_start, 1)
    # one unit: never a new metrics.json beside an old report.html (calibrate.outputs)
    write_outputs({out / "report.html": html,
                   out / "metrics.json": json.dumps(_clean(data), indent=1, allow_nan=False) + "\n"})
    log(f"done: {out / 'report.html'}, {out / 'metrics.json'}")
    return data


def _result_row(model, cal_name, lp, ref, y, n_resamples):
    ci = evaluate_with_ci(lp, y, 15, n_resamples, seed=0)
    row = {"model": model, "calibrator": cal_name}
    row.update({k: v["estimate"] for k, v in ci.items()})
    row["ci"] = {k: {"low": v["low"], "high": v["high"]} for k, v in ci.items()}
    if cal_name != "none":
        row["vs_uncalibrated"] = paired_differences(ref, lp, y, 15, n_resamples, seed=0, keys=("ece", "nll", "brier", "accuracy"))
    return row


def _auroc(score, positive):
    """Area under the ROC curve of ``score`` for detecting ``positive`` (ties averaged)."""
    from scipy.stats import rankdata

    pos = int(positive.sum())
    neg = positive.size - pos
    if pos == 0 or neg == 0:
        return None
    r = rankdata(score)
    return float((r[positive].sum() - pos * (pos + 1) / 2) / (pos * neg))


def _data_note(root):
    from .data import detect_layout

    layout = detect_layout(root)
    return "CIFAR-10 (JPEG copy, image-folder layout)" if layout == "image-folder" else "CIFAR-10 (original release)"


def _command():
    from ..report.html import command_line

    return command_line()


def _clean(x):
    from ..report.html import _jsonable

    return _jsonable(x)
