"""The CIFAR-10 calibration experiment: train, sample, calibrate, report (imports torch).

    calibrate experiment --preset tiny|quick|cpu|full --data DIR --out DIR [--work DIR]
        [--device auto|cpu|cuda] [--precision auto|fp32|bf16|fp16] [--cache-dir DIR]

0. Device and precision are chosen for the machine (``auto``: CUDA if present; bf16 only
   where native and measured faster, see :mod:`calibrate.integrations.torch.precision`). A short speed
   calibration (a few training steps) gives the expected time, printed before the work
   starts; a tqdm bar over all training steps shows the ETA. The choice, the CPU
   capability and the thread count go into metrics.json (``compute``) and the report.

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
5. Under shift and on unseen inputs (:mod:`calibrate.apps.cifar10.shift`): every model x
   {uncalibrated, temperature, ODIR, isotonic} on each corruption x severity, OOD
   detection on far (digits, noise) and near (held-out classes) sets, AURC and conformal
   coverage under shift; the three patterns of Ovadia et al. 2019 tested.
6. OUT/metrics.json, OUT/report.html (figures embedded), OUT/report.pdf (the same report,
   printable) and OUT/logits/ (everything the numbers need).

Resuming: finished models and cached predictions in WORK are reused; the run says so
("resuming: N of M runs already done in WORK") and lists the runs it will do.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from calibrate._core.machine import human_duration
from calibrate.calibrators import get_calibrator
from calibrate.io.readers import atomic_save_npz
from calibrate.metrics import calibration as metrics
from calibrate.report.html import environment
from calibrate.resampling.tables import evaluate_with_ci, paired_differences

CALIBRATORS = ["none", "temperature", "vector", "matrix", "platt", "isotonic", "histogram", "bbq", "dirichlet"]
# ODIR's penalties chosen by 3-fold CV on a 6 x 6 grid (10^-4 .. 10^1): the default 24 x 8 grid
# with 5 folds costs about a minute per model on 2 cores for the same choice here
ODIR_GRID = tuple(10.0**i for i in range(-4, 2))


def make_calibrator(name: str, odir_grid: tuple = ODIR_GRID):
    """A fresh calibrator of the study (``get_calibrator``; ODIR's penalties cross-validated
    on ``odir_grid``, or fixed when the grid has one value)."""
    if name == "dirichlet":
        from calibrate.calibrators import DirichletCalibration

        if len(odir_grid) == 1:
            return DirichletCalibration(reg_lambda=odir_grid[0], reg_mu=odir_grid[0])
        return DirichletCalibration(lambdas=odir_grid, mus=odir_grid, cv=3)
    return get_calibrator(name)


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
    focal_gamma: str | float = "flsd-53"  # Mukhoti et al. 2020's schedule
    mixup_alpha: float = 0.2  # Thulasidasan et al. 2019: alpha in [0.2, 0.4] calibrates best
    held_out: tuple = (5, 9)  # near OOD: a model trained without dog and truck (cifar10.ood)
    corruptions: tuple | None = None  # CIFAR-10-C style shifts (None: all of corruptions.CORRUPTIONS)
    severities: tuple = (1, 2, 3, 4, 5)
    n_shift: int | None = 2000  # test images per corruption and severity (stratified subset)
    n_ood: int = 2000  # images per far-OOD set
    n_shift_resamples: int = 200  # bootstrap resamples per shifted cell
    odir_grid: tuple = ODIR_GRID  # ODIR's lambda = mu candidates (one value: fixed, no CV)
    n_train: int | None = None  # a stratified subset of the 45,000 (quick)
    n_val: int = 5000
    n_test: int | None = None
    n_resamples: int = 1000
    batch_size: int = 512
    lr: float = 0.4
    notes: str = ""


PRESETS = {
    "tiny": Preset("tiny", epochs=1, widths=(8, 16, 16), ensemble_size=2, mc_samples=3, overfit_epochs=1,
                   n_train=500, n_val=200, n_test=300, n_resamples=50, batch_size=64,
                   corruptions=("gaussian_noise", "contrast"), severities=(3,), n_shift=100, n_ood=100,
                   n_shift_resamples=20, odir_grid=(1e-2,),
                   notes="for the tests: a few hundred images, one epoch; numbers are meaningless"),
    "quick": Preset("quick", epochs=2, widths=(16, 32, 64), ensemble_size=2, mc_samples=5, overfit_epochs=2,
                    n_train=6000, n_val=1000, n_test=2000, n_resamples=200,
                    corruptions=("gaussian_noise", "defocus_blur", "contrast", "jpeg_compression"), severities=(3,),
                    n_shift=1000, n_ood=500, n_shift_resamples=50, odir_grid=(1e-2,),
                    notes="smoke run on a subset (at most 4 minutes on a 2-core CPU): numbers are not meaningful"),
    "cpu": Preset("cpu", epochs=10, widths=(16, 32, 64), ensemble_size=5, mc_samples=10, overfit_epochs=10,
                  notes="the real experiment on a CPU: 10 models of a narrow ResNet-9 for 10 epochs, 13 corruptions "
                        "x 5 severities, 4 OOD sets; about an hour on 2 AVX2 cores (float32): see the time printed "
                        "at the start"),
    "full": Preset("full", epochs=60, widths=(64, 128, 256), ensemble_size=5, mc_samples=30, overfit_epochs=60,
                   n_shift=None, n_ood=10000,
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


@dataclass
class Run:
    """What the stages of one run share: the preset, the folders, the device and precision,
    the log and the prediction cache (WORK/predictions/NAME.npz)."""

    preset: str
    p: Preset
    out: Path
    work: Path
    dev: object  # torch.device
    prec: str  # "fp32" | "bf16" | "fp16"
    layout: dict  # speed_choices: channels_last, compile
    progress: bool
    t_start: float

    def log(self, msg: str) -> None:
        """Print ``msg`` after the seconds since the start (nothing without progress)."""
        if self.progress:
            from tqdm import tqdm

            tqdm.write(f"[{time.time() - self.t_start:7.1f} s] {msg}")

    def cached(self, name: str, compute_fn) -> dict:
        """The arrays of WORK/predictions/NAME.npz; computed by ``compute_fn`` and saved when absent."""
        path = self.work / "predictions" / f"{name}.npz"
        if path.exists():
            return _load_npz(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = compute_fn()
        atomic_save_npz(path, **arrays)
        return arrays


@dataclass
class CleanStudy:
    """The in-distribution part of a run, what the shift and OOD part starts from.

    models: {name: trained module}; logits: {model: {"val": (n_val, k), "test": (n_test, k)}};
    mc: {"val": (S, n_val, k), "test": (S, n_test, k)}, the baseline's MC dropout samples;
    members: the ensemble's model names; variants: the study's predictions;
    fitted: {(variant, calibrator): fitted calibrator}; val, test: (images (n, 32, 32, 3)
    uint8, labels (n,) int); held: the held-out-class split of the test labels.
    """

    models: dict
    logits: dict
    mc: dict
    members: list
    variants: list
    fitted: dict
    val: tuple
    test: tuple
    held: object  # cifar10.ood.HeldOutSplit


def run_experiment(preset: str, data_dir, out_dir, work_dir=None, cache_dir=None, progress: bool = True,
                   device="auto", precision: str = "auto") -> dict:
    """Run (or resume) the experiment; returns the metrics dict written to OUT/metrics.json.

    device: "auto" | "cpu" | "cuda" | "cuda:N"; precision: "auto" | "fp32" | "bf16" | "fp16";
    cache_dir: where the decoded images are cached (default ``$CALIBRATE_CACHE``, else WORK/cache).
    """
    run, compute = _start(preset, out_dir, work_dir, device, precision, progress)
    if cache_dir is None:
        from calibrate.apps.cifar10.data import default_cache_dir

        cache_dir = default_cache_dir() or run.work / "cache"
    (x_train, y_train), val, test = _load_split(run, data_dir, cache_dir)
    specs, train_data = _training_plan(run, x_train, y_train)
    steps_left = _announce(run, specs, train_data, compute, len(val[1]) + len(test[1]))
    models, train_info = _train_models(run, specs, train_data, steps_left)
    clean = _clean_predictions(run, models, val, test, train_info)
    results, test_probs = _calibrate_variants(run, clean)
    uncertainty = _uncertainty(clean.variants, test[1])
    study, curves = shift_and_ood(run, clean)
    study["ood"]["held_out_model_accuracy_in"] = train_info[HELD_OUT_MODEL]["test_accuracy"]
    data = _study_data(run, data_dir, (len(y_train), len(val[1]), len(test[1])), results, train_info, uncertainty,
                       study, compute)
    _write_report(run, data, test_probs, test[1], curves)
    from calibrate.apps.cifar10.groups import DEFAULT_MODELS, group_view

    run.log("writing groups.html and groups.json (calibration per class and per corruption)")
    group_view(run.out, [m for m in DEFAULT_MODELS if (run.out / "logits" / f"{m}_val.npz").exists()],
               n_resamples=run.p.n_shift_resamples)
    return data


def _start(preset: str, out_dir, work_dir, device, precision: str, progress: bool) -> tuple[Run, dict]:
    """The run's context (folders made) and its compute record, logged."""
    from calibrate.integrations import torch as ctorch

    t_start = time.time()
    if preset not in PRESETS:
        raise ValueError(f"--preset: expected one of {', '.join(PRESETS)}, got {preset!r}")
    dev = ctorch.resolve_device(device)
    prec, prec_reason = ctorch.choose_precision(precision, dev)
    layout = speed_choices(dev)
    out = Path(out_dir)
    work = Path(work_dir) if work_dir else Path("runs") / f"cifar10-{preset}"
    (out / "logits").mkdir(parents=True, exist_ok=True)
    (work / "models").mkdir(parents=True, exist_ok=True)
    run = Run(preset, PRESETS[preset], out, work, dev, prec, layout, progress, t_start)
    cpu = ctorch.cpu_info()
    compute = {"device": str(dev), "device_name": _device_name(dev), "precision": prec,
               "precision_asked": precision, "precision_reason": prec_reason,
               "cpu": cpu["cpu"], "cpu_capability": cpu["capability"], "cpu_native_bf16": cpu["native_bf16"],
               "cpu_amx_bf16": cpu["amx_bf16"], "cpu_avx512_bf16": cpu["avx512_bf16"],
               "threads": cpu["threads"], "cores": cpu["cores"], **layout}
    run.log(f"compute: {compute['device_name']}, precision {prec} ({prec_reason}); CPU capability "
            f"{cpu['capability']}, {cpu['threads']} threads; channels_last {layout['channels_last']}, "
            f"torch.compile {layout['compile']}")
    return run, compute


def _load_split(run: Run, data_dir, cache_dir):
    """CIFAR-10 split into the preset's ((x, y) train, (x, y) validation, (x, y) test)."""
    from calibrate.apps.cifar10.data import load_cifar10, split_train_val

    p = run.p
    run.log(f"loading CIFAR-10 from {data_dir}")
    xtr, ytr, xte, yte = load_cifar10(data_dir, cache_dir, progress=run.progress)
    tr_idx, va_idx = split_train_val(ytr, 5000, seed=0)
    tr_idx = tr_idx[_stratified_subset(ytr[tr_idx], p.n_train, 1)]
    va_idx = va_idx[_stratified_subset(ytr[va_idx], p.n_val, 2)]
    te_idx = _stratified_subset(yte, p.n_test, 3)
    run.log(f"split: train {len(tr_idx)}, val {len(va_idx)}, test {len(te_idx)}")
    return (xtr[tr_idx], ytr[tr_idx]), (xtr[va_idx], ytr[va_idx]), (xte[te_idx], yte[te_idx])


def _training_plan(run: Run, x_train, y_train) -> tuple[dict, dict]:
    """(name -> TrainConfig, name -> (images, labels) it trains on): the held-out-class model
    sees only the training images of the kept classes."""
    from calibrate.apps.cifar10.ood import held_out_class_split

    specs = model_specs(run.p)
    held = held_out_class_split(y_train, run.p.held_out)
    train_data = {name: (x_train, y_train) for name in specs}
    train_data[HELD_OUT_MODEL] = (x_train[held.in_mask], held.in_labels)
    return specs, train_data


def _announce(run: Run, specs: dict, train_data: dict, compute: dict, n_predict: int) -> int:
    """Say what is resumed and the expected time (recorded in ``compute``); returns the
    training steps left."""
    from calibrate.apps.cifar10.training import time_train_step

    p = run.p
    state = run_state(run.work, specs)
    todo = {name: (cfg.epochs - state[name]) * math.ceil(len(train_data[name][1]) / cfg.batch_size)
            for name, cfg in specs.items() if state[name] is not None and state[name] < cfg.epochs}
    msg = resume_message(run.work, specs, state)
    if msg and run.progress:
        print(msg, flush=True)
    steps_left = sum(todo.values())
    # timed even with nothing to train: the forward passes (clean, shifted, OOD) scale with it;
    # cached predictions make the estimate an upper bound
    step_s = time_train_step(specs["baseline"], run.dev, run.prec, run.layout["channels_last"], run.layout["compile"])
    estimate = estimate_seconds(p, step_s, steps_left, n_predict)
    compute.update({"measured_step_seconds": None if step_s is None else round(step_s, 4),
                    "train_steps_left": steps_left, "estimated_seconds": round(estimate, 1)})
    if run.progress:
        per = f"{step_s:.2f} s per training step (batch {p.batch_size}), " if step_s else ""
        print(f"expected time for --preset {run.preset} on this machine: about {human_duration(estimate)} "
              f"({per}{steps_left} steps to train)", flush=True)
    return steps_left


def _train_models(run: Run, specs: dict, train_data: dict, steps_left: int) -> tuple[dict, dict]:
    """Train (or load) every model under WORK/models/NAME, one bar over all steps:
    (name -> module, name -> training record)."""
    from tqdm import tqdm

    from calibrate.apps.cifar10.training import train

    models, train_info = {}, {}
    bar = tqdm(total=steps_left, desc=f"training ({run.preset})", unit="step",
               disable=not run.progress or not steps_left, mininterval=2, dynamic_ncols=True)
    try:
        for name, cfg in specs.items():
            t0 = time.time()
            run.log(f"model {name}: {cfg}")
            models[name] = train(cfg, *train_data[name], run.work / "models" / name, progress=run.progress,
                                 desc=name, device=run.dev, precision=run.prec,
                                 channels_last=run.layout["channels_last"], compile=run.layout["compile"], bar=bar)
            train_info[name] = _train_record(run.work / "models" / name / "log.jsonl", cfg, t0)
    finally:
        bar.close()
    return models, train_info


def _train_record(logfile: Path, cfg, t0: float) -> dict:
    """A model's config, training time and last-epoch loss and accuracy from its log."""
    epochs = [json.loads(line) for line in logfile.read_text().splitlines()] if logfile.exists() else []
    return {"config": cfg.to_dict(), "train_seconds": round(sum(e["seconds"] for e in epochs), 1),
            "final_train_loss": epochs[-1]["train_loss"] if epochs else None,
            "final_train_acc": epochs[-1]["train_acc"] if epochs else None,
            "precision": sorted({e.get("precision", "bf16 (before 0.2)") for e in epochs}),
            "seconds_this_run": round(time.time() - t0, 1)}


def _clean_predictions(run: Run, models: dict, val, test, train_info: dict) -> CleanStudy:
    """Every model's validation and test logits (cached), its test accuracy (into
    ``train_info``), the baseline's MC dropout samples and the study's variants (saved
    under OUT/logits)."""
    from calibrate.apps.cifar10.ood import held_out_class_split
    from calibrate.apps.cifar10.sampling import mc_dropout_logits
    from calibrate.apps.cifar10.training import predict_logits

    p, prec, dev = run.p, run.prec, run.dev
    (x_val, y_val), (x_test, y_test) = val, test
    logits = {}
    for name, model in models.items():
        run.log(f"predicting {name}")
        logits[name] = run.cached(name, lambda m=model: {
            "val": predict_logits(m, x_val, precision=prec, device=dev),
            "test": predict_logits(m, x_test, precision=prec, device=dev)})
        model.cpu()
    held_test = held_out_class_split(y_test, p.held_out)
    for name in models:
        if name == HELD_OUT_MODEL:  # on the test images of the kept classes
            acc = np.mean(logits[name]["test"][held_test.in_mask].argmax(1) == held_test.in_labels)
        else:
            acc = np.mean(logits[name]["test"].argmax(1) == y_test)
        train_info[name]["test_accuracy"] = float(acc)

    run.log(f"MC dropout: {p.mc_samples} samples of the baseline")
    mc = run.cached("mc_dropout_samples", lambda: {
        "val": mc_dropout_logits(models["baseline"], x_val, p.mc_samples, seed=1, precision=prec, device=dev),
        "test": mc_dropout_logits(models["baseline"], x_test, p.mc_samples, seed=2, precision=prec, device=dev)})
    models["baseline"].cpu()
    members = ["baseline"] + [f"member{m}" for m in range(1, p.ensemble_size)]
    variants = _variants(logits, mc, members)
    for v in variants:
        for split, arr, y in (("val", v.val, y_val), ("test", v.test, y_test)):
            atomic_save_npz(run.out / "logits" / f"{v.name}_{split}.npz", logits=arr.astype(np.float32), labels=y)
        if v.test_samples is not None:  # the samples behind the pooled prediction (MI, members)
            atomic_save_npz(run.out / "logits" / f"{v.name}_samples_test.npz",
                            samples=v.test_samples.astype(np.float32), labels=y_test)
    return CleanStudy(models, logits, mc, members, variants, {}, val, test, held_test)


def _variants(logits: dict, mc: dict, members: list) -> list[Variant]:
    """The study's predictions: five single models, MC dropout and the ensemble (both pooled)."""
    from calibrate.metrics.uncertainty import pooled_log_probs

    ens = {s: np.stack([logits[m][s] for m in members]) for s in ("val", "test")}
    return [
        Variant("baseline", logits["baseline"]["val"], logits["baseline"]["test"]),
        Variant("label_smoothing", logits["label_smoothing"]["val"], logits["label_smoothing"]["test"]),
        Variant("overfit_noaug", logits["overfit_noaug"]["val"], logits["overfit_noaug"]["test"]),
        Variant("focal_loss", logits["focal_loss"]["val"], logits["focal_loss"]["test"]),
        Variant("mixup", logits["mixup"]["val"], logits["mixup"]["test"]),
        Variant("mc_dropout", pooled_log_probs(mc["val"]), pooled_log_probs(mc["test"]), mc["val"], mc["test"]),
        Variant("ensemble", pooled_log_probs(ens["val"]), pooled_log_probs(ens["test"]), ens["val"], ens["test"]),
    ]


def _calibrate_variants(run: Run, clean: CleanStudy) -> tuple[list, dict]:
    """Every calibrator fitted on each variant's validation logits and evaluated on its test
    logits with bootstrap intervals (fitted calibrators go into ``clean.fitted``); for the
    ensemble also each member calibrated before pooling. Returns (result rows,
    {(model, calibrator): (n_test, k) probabilities})."""
    y_test = clean.test[1]

    def row_fn(model, cal_name, lp, ref):
        row = _result_row(model, cal_name, lp, ref, y_test, run.p.n_resamples)
        if model == "ensemble_members_calibrated":
            run.log(f"{'ens (members)':<16} {cal_name:<12} ECE {row['ece']:.4f}  NLL {row['nll']:.4f}")
        else:
            run.log(f"{model:<16} {cal_name:<12} acc {row['accuracy']:.4f}  ECE {row['ece']:.4f} "
                    f"[{row['ci']['ece']['low']:.4f}, {row['ci']['ece']['high']:.4f}]  NLL {row['nll']:.4f}")
        return row

    results, test_probs, fitted = calibrate_variants(clean.variants, clean.val[1], y_test, run.p.odir_grid, row_fn)
    clean.fitted.update(fitted)
    return results, test_probs


def calibrate_variants(variants: list, y_val, y_test, odir_grid: tuple, row_fn) -> tuple[list, dict, dict]:
    """Every calibrator of CALIBRATORS fitted on each variant's validation logits (n_val, k)
    and applied to its test logits (n_test, k); for the ensemble, when its validation samples
    are there, also each member calibrated before pooling (not ODIR: 5 cross-validated fits).

    row_fn(model, calibrator, lp, ref) -> the result row of the (n_test, k) log-probabilities
    ``lp`` against the uncalibrated ``ref`` (the runner: bootstrap intervals; the re-render:
    point estimates); each row gets the calibrator's ``params`` and the ``seconds`` it took.
    Returns (rows, {(model, calibrator): (n_test, k) probabilities},
    {(model, calibrator): fitted calibrator}).
    """
    from calibrate.metrics.uncertainty import calibrate_members_then_pool

    results, test_probs, fitted = [], {}, {}
    for v in variants:
        ref = metrics.log_softmax(v.test)
        for cal_name in CALIBRATORS:
            t0 = time.time()
            if cal_name == "none":
                lp, cal = ref, None
            else:
                cal = make_calibrator(cal_name, odir_grid).fit(v.val, y_val, kind="logits")
                lp = cal.predict_log_proba(v.test, kind="logits")
            row = row_fn(v.name, cal_name, lp, ref)
            if cal is not None:
                row["params"] = cal.summary()
                fitted[(v.name, cal_name)] = cal
            row["seconds"] = round(time.time() - t0, 2)
            results.append(row)
            test_probs[(v.name, cal_name)] = np.exp(lp)
        if v.name == "ensemble" and v.val_samples is not None:
            for cal_name in CALIBRATORS[1:]:
                if cal_name == "dirichlet":  # 5 cross-validated fits: see the pooled row instead
                    continue
                lp = calibrate_members_then_pool(lambda c=cal_name: make_calibrator(c, odir_grid), v.val_samples,
                                                 y_val, v.test_samples)
                results.append(row_fn("ensemble_members_calibrated", cal_name, lp, ref))
                test_probs[("ensemble_members_calibrated", cal_name)] = np.exp(lp)
    return results, test_probs, fitted


def _uncertainty(variants: list, y_test) -> dict:
    """{variant: entropy, expected entropy and mutual information of its samples (mean over all,
    correct and wrong rows, AUROC of detecting the errors), members, member accuracy}."""
    from calibrate.metrics.uncertainty import uncertainty_decomposition

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
    return uncertainty


def _study_data(run: Run, data_dir, sizes: tuple, results, train_info, uncertainty, study, compute) -> dict:
    """The metrics.json dict; sizes: (n_train, n_val, n_test)."""
    from calibrate.apps.cifar10.data import CLASSES

    n_train, n_val, n_test = sizes
    return {
        "experiment": "cifar10", "preset": run.preset, "preset_config": asdict(run.p),
        "data": {"root": os.path.relpath(Path(data_dir).resolve(), Path.cwd().resolve()), "note": _data_note(data_dir),
                 "n_train": int(n_train), "n_val": int(n_val), "n_test": int(n_test)},
        "protocol": "Guo et al. 2017: 45k/5k/10k; calibrators fitted on validation NLL; ECE 15 equal-width bins, top-label; "
                    "binning calibrators one-vs-rest then renormalised",
        "results": results, "train": train_info, "uncertainty": uncertainty, **study,
        "command": _command(), "hardware": environment(), "compute": compute, "classes": list(CLASSES),
        "wall_seconds": round(time.time() - run.t_start, 1),
    }


def _write_report(run: Run, data: dict, test_probs: dict, y_test, curves: dict) -> None:
    """OUT/report.html, OUT/report.pdf and OUT/metrics.json, written as one unit."""
    from calibrate.apps.cifar10.data import CLASSES
    from calibrate.apps.cifar10.report import experiment_sections
    from calibrate.io.outputs import write_outputs
    from calibrate.report.html import render_html
    from calibrate.report.pdf import render_pdf

    out = run.out
    run.log("writing report.html, report.pdf and metrics.json")
    title, sections, subtitle = experiment_sections(data, test_probs, y_test, list(CLASSES), ANCHORS_GUO, curves)
    html = render_html(title, sections, subtitle=subtitle)
    pdf = render_pdf(title, sections, subtitle=subtitle)
    data["wall_seconds"] = round(time.time() - run.t_start, 1)
    # one unit: never a new metrics.json beside an old report.html (calibrate.io.outputs)
    write_outputs({out / "report.html": html, out / "report.pdf": pdf,
                   out / "metrics.json": json.dumps(_clean(data), indent=1, allow_nan=False) + "\n"})
    run.log(f"done: {out / 'report.html'}, {out / 'report.pdf'}, {out / 'metrics.json'}")


def shift_and_ood(run: Run, clean: CleanStudy) -> tuple[dict, dict]:
    """The shift and OOD part of the study: ({"shift": ..., "ood": ...} for metrics.json,
    the curves the report draws). Predictions are cached in WORK/predictions/{shift,ood};
    what every number needs is saved under OUT/logits: ``shift_VARIANT.npz`` (``logits``
    (C, S, n, k) float32, ``labels`` (n,), ``corruptions`` (C,), ``severities`` (S,)) and
    ``ood_SET.npz`` (each variant's logits, MC dropout samples and ensemble members)."""
    from calibrate.apps.cifar10 import shift as sh
    from calibrate.apps.cifar10.corruptions import CORRUPTIONS
    from calibrate.apps.cifar10.ood import OOD_SETS

    p, (_, y_test) = run.p, clean.test
    names = list(p.corruptions or CORRUPTIONS)
    idx = _stratified_subset(y_test, p.n_shift, 4)
    sets = _shifted_sets(run, clean, names, idx)
    y_sh = y_test[idx]
    rows, patterns = _shift_metrics(run, clean, sets, y_sh)
    conf_rows, rc_curves = conformal_and_risk_coverage(clean.variants, clean.fitted, clean.val[1], sets, y_sh)
    run.log(f"OOD: {', '.join(OOD_SETS)} ({p.n_ood} images per far set)")
    ood_rows, roc = _far_ood(run, clean)
    near_rows, near_roc = _near_ood(run, clean)
    ood_rows += near_rows
    roc.update(near_roc)
    study = {"shift": {"corruptions": names, "severities": list(p.severities), "n": int(len(y_sh)),
                       "n_resamples": p.n_shift_resamples, "calibrators": list(sh.SHIFT_CALIBRATORS),
                       "rows": rows, "patterns": patterns, "conformal": conf_rows},
             "ood": {"sets": dict(OOD_SETS), "n_in": int(len(y_test)), "n_out_far": int(p.n_ood),
                     "held_out_classes": list(clean.held.held_out),
                     "rows": ood_rows}}
    return study, {"roc": roc, "risk_coverage": rc_curves}


def _singles(clean: CleanStudy) -> list:
    """The single models whose predictions the shift and OOD sets need (not the held-out-class one)."""
    return [m for m in clean.models if m != HELD_OUT_MODEL]


def _predict_all(run: Run, clean: CleanStudy, images, mc_seed: int) -> dict:
    """{single model: (n, k) logits, "mc_dropout_samples": (S, n, k)} of ``images``."""
    from calibrate.apps.cifar10.sampling import mc_dropout_logits
    from calibrate.apps.cifar10.training import predict_logits

    p, models = run.p, clean.models
    out = {m: predict_logits(models[m], images, precision=run.prec, device=run.dev) for m in _singles(clean)}
    out["mc_dropout_samples"] = mc_dropout_logits(models["baseline"], images, p.mc_samples, seed=mc_seed,
                                                  precision=run.prec, device=run.dev)
    for m in models.values():
        m.cpu()
    return out


def _pooled_variants(raw: dict, members: list) -> dict:
    """{variant: (n, k)} as the clean study's variants (pooled MC dropout and ensemble), float32."""
    from calibrate.metrics.uncertainty import pooled_log_probs

    out = {v: raw[v] for v in ("baseline", "label_smoothing", "overfit_noaug", "focal_loss", "mixup")}
    out["mc_dropout"] = pooled_log_probs(raw["mc_dropout_samples"])
    out["ensemble"] = pooled_log_probs(np.stack([raw[m] for m in members]))
    return {k: v.astype(np.float32) for k, v in out.items()}  # what OUT/logits keeps


def _shifted_sets(run: Run, clean: CleanStudy, names: list, idx: np.ndarray) -> list:
    """[(corruption, severity, {variant: (n, k)})] for the test rows ``idx``: the clean rows
    first (severity 0), then each corruption at each severity (predictions cached, the
    logits saved as OUT/logits/shift_VARIANT.npz)."""
    from tqdm import tqdm

    from calibrate.apps.cifar10 import shift as sh
    from calibrate.apps.cifar10.corruptions import corrupted_test_set

    p, (x_test, y_test) = run.p, clean.test
    x_sh, y_sh = x_test[idx], y_test[idx]
    variants = {v.name: v.test[idx].astype(np.float32) for v in clean.variants}
    sets = [(sh.CLEAN, 0, variants)]
    todo = [(c, s) for c in names for s in p.severities]
    run.log(f"shift: {len(names)} corruptions x {len(p.severities)} severities on {len(y_sh)} test images; "
            f"{len(_singles(clean))} models and {p.mc_samples} MC dropout samples each")
    bar = tqdm(todo, desc="shifted test sets", unit="set", disable=not run.progress, mininterval=2,
               dynamic_ncols=True)
    for c, s in bar:
        raw = run.cached(f"shift/{c}-s{s}", lambda c=c, s=s: _predict_all(
            run, clean, corrupted_test_set(x_sh, c, s, run.work / "corruptions", seed=0), mc_seed=100 + s))
        sets.append((c, s, _pooled_variants(raw, clean.members)))
    bar.close()
    for v in variants:
        arr = np.stack([np.stack([d[v] for c2, s2, d in sets[1:] if c2 == c]) for c in names]).astype(np.float32)
        atomic_save_npz(run.out / "logits" / f"shift_{v}.npz", logits=arr, labels=y_sh, corruptions=np.array(names),
                        severities=np.array(p.severities), test_rows=idx)
    return sets


def _shift_metrics(run: Run, clean: CleanStudy, sets: list, y_sh) -> tuple[list, list]:
    """(one row per model x calibrator x set with bootstrap intervals, the three patterns tested)."""
    from tqdm import tqdm

    from calibrate.apps.cifar10 import shift as sh

    p = run.p
    variants = sets[0][2]
    cals = {(v, c): clean.fitted.get((v, c)) for v in variants for c in sh.SHIFT_CALIBRATORS}
    run.log(f"shift metrics: {len(cals)} model x calibrator pairs x {len(sets)} sets, {p.n_shift_resamples} "
            "resamples")
    mbar = tqdm(total=len(cals) * len(sets), desc="shift metrics", unit="cell", disable=not run.progress,
                mininterval=2, dynamic_ncols=True)
    rows = sh.shift_rows(sets, y_sh, cals, p.n_shift_resamples, seed=0, bar=mbar)
    mbar.close()
    patterns = sh.patterns(rows, [v.name for v in clean.variants])
    for pat in patterns:
        run.log(f"pattern '{pat['pattern']}': {'held' if pat['held'] else 'did NOT hold'}. {pat['text']}")
    return rows, patterns


def conformal_and_risk_coverage(variants: list, fitted: dict, y_val, sets: list, y_sh) -> tuple[list, dict]:
    """Conformal coverage under shift and the risk-coverage curve at each severity (rows of all
    corruptions pooled), for the baseline and the ensemble with temperature scaling.

    variants: the study's :class:`Variant` list; fitted: {(variant, calibrator): fitted};
    y_val: (n_val,) labels; sets: [(corruption, severity, {variant: (n, k) logits})], the
    clean rows first; y_sh: (n,) labels. Returns (conformal rows, {curve label: {severity:
    (coverage, risk, AURC)}})."""
    from calibrate.apps.cifar10 import shift as sh
    from calibrate.metrics import selective

    conf_rows, rc_curves = [], {}
    for v in ("baseline", "ensemble"):
        t = fitted[(v, "temperature")]
        val_lp = t.predict_log_proba(next(x for x in variants if x.name == v).val, kind="logits")
        cal_sets = [(c, s, t.predict_log_proba(d[v], kind="logits")) for c, s, d in sets]
        conf_rows += sh.conformal_rows(f"{v} + temperature", val_lp, y_val, cal_sets, y_sh, alpha=0.1)
        by_sev = {}
        for sev in sorted({s for _, s, _ in sets}):
            lp = np.concatenate([lp for _, s, lp in cal_sets if s == sev])
            y = np.tile(y_sh, sum(1 for _, s, _ in cal_sets if s == sev))
            conf, ok = np.exp(lp.max(axis=1)), lp.argmax(axis=1) == y
            cov, risk = selective.risk_coverage(conf, ok)
            by_sev[sev] = (cov, risk, selective.aurc(conf, ok))
        rc_curves[f"{v} + temperature (rows of all corruptions)"] = by_sev
    return conf_rows, rc_curves


def _add_roc(roc: dict, panel: str, label: str, s_in: dict, s_out: dict, new_rows: list) -> None:
    """ROC curves of the headline scores into ``roc[panel]``, with the AUROC of the rows just computed."""
    from calibrate.apps.cifar10 import shift as sh

    for r in new_rows:
        if r["score"] in ("MSP", "energy", "mutual information"):
            fpr, tpr = sh.roc_points(s_in[r["score"]], s_out[r["score"]])
            roc.setdefault(panel, {})[f"{label}: {r['score']}"] = (fpr, tpr, r["auroc"])


def _variant_scores(fitted: dict, samples: dict, var: dict, v: str) -> dict:
    """The detection scores of variant ``v`` (logits ``var[v]``, its samples if any, MSP after its temperature)."""
    from calibrate.apps.cifar10 import shift as sh

    t = fitted[(v, "temperature")].temperature_ if (v, "temperature") in fitted else None
    return sh.ood_score_sets(var[v], samples.get(v), temperature=t)


def _far_ood(run: Run, clean: CleanStudy) -> tuple[list, dict]:
    """Detection rows of every variant on each far OOD set against the clean test set, and
    the ROC panels of the baseline and the ensemble."""
    from calibrate.apps.cifar10.ood import N_DIGITS, OOD_SETS, far_ood_images

    p, members = run.p, clean.members
    in_raw = {m: clean.logits[m]["test"] for m in _singles(clean)}
    in_raw["mc_dropout_samples"] = clean.mc["test"]
    rows, roc = [], {}
    for name in [n for n, kind in OOD_SETS.items() if kind == "far"]:
        n_out = min(p.n_ood, N_DIGITS) if name == "digits" else p.n_ood
        raw = run.cached(f"ood/{name}", lambda name=name, n=n_out: _predict_all(
            run, clean, far_ood_images(name, n, seed=0), mc_seed=200))
        atomic_save_npz(run.out / "logits" / f"ood_{name}.npz", **{k: v.astype(np.float32) for k, v in raw.items()})
        new, panel = far_ood_rows(name, in_raw, raw, members, clean.fitted, p.n_shift_resamples)
        rows += new
        roc.update(panel)
    return rows, roc


def far_ood_rows(name: str, in_raw: dict, out_raw: dict, members: list, fitted: dict,
                 n_resamples: int) -> tuple[list, dict]:
    """Detection rows of every variant on the far OOD set ``name`` against the clean test
    set, and its ROC panel (baseline and ensemble): ({panel: {curve: (fpr, tpr, AUROC)}}).

    in_raw, out_raw: {single model: (n, k) logits, "mc_dropout_samples": (S, n, k)} of the
    clean test set and of the OOD set; members: the ensemble's models; fitted: {(variant,
    calibrator): fitted} (the temperature gives "MSP (temperature)"); n_resamples: bootstrap
    resamples of the intervals (0: point values only).
    """
    from calibrate.apps.cifar10 import shift as sh

    in_var, out_var = _pooled_variants(in_raw, members), _pooled_variants(out_raw, members)
    in_samples = {"mc_dropout": in_raw["mc_dropout_samples"], "ensemble": np.stack([in_raw[m] for m in members])}
    out_samples = {"mc_dropout": out_raw["mc_dropout_samples"], "ensemble": np.stack([out_raw[m] for m in members])}
    rows, roc = [], {}
    for v in in_var:
        s_in, s_out = _variant_scores(fitted, in_samples, in_var, v), _variant_scores(fitted, out_samples, out_var, v)
        new = sh.ood_rows(v, name, "far", s_in, s_out, n_resamples)
        rows += new
        if v in ("baseline", "ensemble"):
            _add_roc(roc, f"{name} (far)", v, s_in, s_out, new)
    return rows, roc


def _near_ood(run: Run, clean: CleanStudy) -> tuple[list, dict]:
    """Detection rows of the held-out-class model (single and MC dropout): the test images of
    the kept classes against those of the held-out ones; and its ROC panel."""
    from calibrate.apps.cifar10.sampling import mc_dropout_logits

    p, held, (x_test, y_test) = run.p, clean.held, clean.test
    hm = clean.models[HELD_OUT_MODEL]
    near = run.cached(f"ood/{HELD_OUT_MODEL}", lambda: {"mc_dropout_samples": mc_dropout_logits(
        hm, x_test, p.mc_samples, seed=300, precision=run.prec, device=run.dev)})
    hm.cpu()
    z, zs = clean.logits[HELD_OUT_MODEL]["test"], near["mc_dropout_samples"]
    atomic_save_npz(run.out / "logits" / f"ood_{HELD_OUT_MODEL}.npz", test=z.astype(np.float32),
                    mc_dropout_samples=zs.astype(np.float32), labels=y_test, held_out=np.array(p.held_out))
    return near_ood_rows(z, zs, held, p.n_shift_resamples)


def near_ood_rows(z: np.ndarray, zs: np.ndarray, held, n_resamples: int) -> tuple[list, dict]:
    """Detection rows of the held-out-class model, single (test logits ``z`` (n, k')) and MC
    dropout (samples ``zs`` (S, n, k'), pooled): the kept classes' test rows (``held.in_mask``)
    against the held-out ones (``held.out_mask``); and its ROC panel. n_resamples as in
    :func:`far_ood_rows`."""
    from calibrate.apps.cifar10 import shift as sh
    from calibrate.metrics.uncertainty import pooled_log_probs

    near_sets = {HELD_OUT_MODEL: (z, None), f"{HELD_OUT_MODEL} (MC dropout)": (pooled_log_probs(zs), zs)}
    rows, roc = [], {}
    for v, (zz, ss) in near_sets.items():
        s_in = sh.ood_score_sets(zz[held.in_mask], None if ss is None else ss[:, held.in_mask])
        s_out = sh.ood_score_sets(zz[held.out_mask], None if ss is None else ss[:, held.out_mask])
        new = sh.ood_rows(v, HELD_OUT_MODEL, "near", s_in, s_out, n_resamples)
        rows += new
        _add_roc(roc, "held-out classes (near)", "single" if ss is None else "MC dropout", s_in, s_out, new)
    return rows, roc


def model_specs(p: Preset) -> dict:
    """name -> TrainConfig of every model the preset trains (the baseline is ensemble member 0)."""
    from calibrate.apps.cifar10.training import TrainConfig

    base = TrainConfig(epochs=p.epochs, widths=p.widths, batch_size=p.batch_size, lr=p.lr, seed=0)
    specs = {"baseline": base}
    for m in range(1, p.ensemble_size):
        specs[f"member{m}"] = TrainConfig(**{**asdict(base), "seed": m})
    specs["label_smoothing"] = TrainConfig(**{**asdict(base), "label_smoothing": p.label_smoothing})
    specs["overfit_noaug"] = TrainConfig(**{**asdict(base), "augment": False, "weight_decay": 0.0,
                                            "epochs": p.overfit_epochs})
    specs["focal_loss"] = TrainConfig(**{**asdict(base), "focal_gamma": p.focal_gamma})
    specs["mixup"] = TrainConfig(**{**asdict(base), "mixup_alpha": p.mixup_alpha})
    specs[HELD_OUT_MODEL] = base  # the baseline recipe on the training images of the kept classes
    return specs


HELD_OUT_MODEL = "held_out_classes"  # trained without Preset.held_out: the near-OOD case


def run_state(work, specs) -> dict:
    """name -> None (finished: model.pt), else the number of epochs already done (0 if none)."""
    state = {}
    for name in specs:
        folder = Path(work) / "models" / name
        if (folder / "model.pt").exists():
            state[name] = None
        elif (folder / "last.pt").exists() and (folder / "log.jsonl").exists():
            state[name] = len((folder / "log.jsonl").read_text().splitlines())
        else:
            state[name] = 0
    return state


def resume_message(work, specs, state) -> str | None:
    """"resuming: N of M runs already done in WORK; will run: ..." when WORK holds earlier work."""
    n_done = sum(1 for name in specs if state[name] is None)
    todo = [n for n in specs if state[n] is not None]
    if not n_done and not any(state[n] for n in todo):
        return None
    will = ", ".join(f"{n} (from epoch {state[n] + 1}/{specs[n].epochs})" if state[n] else n for n in todo)
    return (f"resuming: {n_done} of {len(specs)} runs already done in {work}; "
            + (f"will run: {will}" if todo else "no training left (predictions are reused where cached)"))


# Constants of the printed time estimate (rough, from --preset quick and --preset cpu runs on
# 2-core CPUs): seconds per (test row x bootstrap resample) of the evaluation and its fixed
# part; a forward pass of a batch in training steps; seconds per (row x resample) of one shift
# cell's BCa intervals; seconds to corrupt one image (all 13 corruptions); one ODIR
# cross-validation (6 x 6 grid, 5,000 rows).
_EVAL_SECONDS_PER_ROW_RESAMPLE = 3e-5
_EVAL_FIXED_SECONDS = 20.0
_FORWARD_PER_STEP = 0.35
_SHIFT_CELL_SECONDS_PER_ROW_RESAMPLE = 4e-7
_CORRUPT_SECONDS_PER_IMAGE = 2.6e-4
_ODIR_CV_SECONDS = 20.0


def shift_size(p: Preset) -> tuple[int, int]:
    """(number of shifted sets, test images per set) of a preset."""
    return len(p.corruptions or _all_corruptions()) * len(p.severities), p.n_shift or (p.n_test or 10_000)


def forward_images(p: Preset, n_predict: int) -> int:
    """Images that go through a forward pass after training: the clean validation + test sets
    (every model and the MC dropout samples), the shifted sets and the OOD sets."""
    n_single = p.ensemble_size + 4  # members, label smoothing, over-fitting, focal, mixup
    n_sets, n_shift = shift_size(p)
    clean = (n_single + 1 + p.mc_samples) * n_predict
    shifted = n_sets * n_shift * (n_single + p.mc_samples)
    ood = 3 * p.n_ood * (n_single + p.mc_samples) + (p.n_test or 10_000) * p.mc_samples
    return clean + shifted + ood


def _all_corruptions():
    from calibrate.apps.cifar10.corruptions import CORRUPTIONS

    return CORRUPTIONS


def estimate_seconds(p: Preset, step_s, steps_left: int, n_predict: int) -> float:
    """Expected seconds: training steps left x measured step time, the forward passes of
    :func:`forward_images`, generating the corrupted images, calibration and bootstrap."""
    train_s = (step_s or 0.0) * steps_left
    predict_s = (step_s or 0.0) * _FORWARD_PER_STEP * forward_images(p, n_predict) / p.batch_size
    eval_s = _EVAL_SECONDS_PER_ROW_RESAMPLE * (p.n_test or 10_000) * p.n_resamples + _EVAL_FIXED_SECONDS
    n_sets, n_shift = shift_size(p)
    cells = 7 * 4 * (n_sets + 1)
    shift_s = (cells * _SHIFT_CELL_SECONDS_PER_ROW_RESAMPLE * n_shift * p.n_shift_resamples
               + n_sets * n_shift * _CORRUPT_SECONDS_PER_IMAGE + (7 * _ODIR_CV_SECONDS if len(p.odir_grid) > 1 else 0))
    return train_s + predict_s + eval_s + shift_s


def speed_choices(dev) -> dict:
    """channels_last and torch.compile for the training step, kept only where measured to pay.

    Measured with ``python -m experiments.hardware`` on a 2-core AVX2 EPYC (README, "Speed on
    your machine"): channels_last made the ResNet-9 step 1.4-1.5x cheaper in float32, so it
    is on; torch.compile made it slower (0.78 vs 0.51 CPU-s per step at widths 16-32-64)
    after 171 s of compiling, so it is off. Not measured this session: AMX / AVX-512-BF16
    CPUs and GPUs, where the same defaults are kept (channels_last is the layout oneDNN and
    cuDNN prefer for convolutions; compiling every model of a preset costs minutes).
    """
    return {"channels_last": True, "compile": False}


def _device_name(dev) -> str:
    import torch

    if dev.type == "cuda":
        return f"{dev} ({torch.cuda.get_device_name(dev)})"
    return str(dev)



def _result_row(model, cal_name, lp, ref, y, n_resamples):
    ci = evaluate_with_ci(lp, y, 15, n_resamples, seed=0)
    row = {"model": model, "calibrator": cal_name}
    row.update({k: v["estimate"] for k, v in ci.items()})
    row["ci"] = {k: {"low": v["low"], "high": v["high"]} for k, v in ci.items()}
    if cal_name != "none":
        row["vs_uncalibrated"] = paired_differences(ref, lp, y, 15, n_resamples, seed=0, keys=("ece", "nll", "brier", "accuracy"))
    return row


def _auroc(score, positive):
    """Area under the ROC curve of ``score`` for detecting ``positive`` (ties averaged); None
    when either class is absent."""
    from calibrate._core.ranking import auroc_of_scores

    value = auroc_of_scores(score, positive)
    return None if np.isnan(value) else value


def _data_note(root):
    from calibrate.apps.cifar10.data import detect_layout

    layout = detect_layout(root)
    return "CIFAR-10 (JPEG copy, image-folder layout)" if layout == "image-folder" else "CIFAR-10 (original release)"


def _command():
    from calibrate.report.html import command_line

    return command_line()


def _clean(x):
    from calibrate.report.html import _jsonable

    return _jsonable(x)
