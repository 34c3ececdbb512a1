"""Re-render the CIFAR-10 report from a saved run: OUT/metrics.json and OUT/logits/*.npz,
no training and no images (numpy only; imports no torch).

The runner (:mod:`calibrate.apps.cifar10.runner`) writes report.html and report.pdf from
three things: metrics.json's numbers, each variant x calibrator's test probabilities and
the curves it draws (risk-coverage by severity, OOD ROC curves). Only the numbers are
saved; this module rebuilds the other two from the saved logits with the runner's own
code (``calibrate_variants``, ``conformal_and_risk_coverage``, ``far_ood_rows``,
``near_ood_rows``), checks every number it recomputes against metrics.json, and writes
OUT/report.html and OUT/report.pdf as one unit. metrics.json is the run's record and is
never rewritten.

What the saved logits hold (the runner's ``_clean_predictions``, ``_shifted_sets``,
``_far_ood``, ``_near_ood``): the single models' validation and test logits (float32, as
predicted); the pooled MC dropout and ensemble predictions (log-probabilities pooled in
float64, saved in float32) and their test samples (S, n_test, k), from which the float64
pooled test predictions are recomputed exactly; ``shift_VARIANT.npz`` and ``ood_SET.npz``
(float32, as used).

Two tolerances. A number whose inputs were saved as the run used them, through a
calibrator that refits to the same parameters, must equal metrics.json to :data:`TOL`.
Two kinds of refit cannot reproduce the run bit for bit, and their numbers are checked to
:data:`TOL_REFIT`: every calibrator of the pooled variants, refitted on their validation
logits as saved, rounded to float32 (the runner pooled them in float64 and does not save
the validation samples), and, when the run was made by another calibrate version, the
iterative fits (:data:`ITERATIVE`: they stop at a gradient tolerance, where the code
reaches it). Measured: the committed run (calibrate 0.1.0) refitted by 0.3.0 agrees to
3e-5 in its metrics (an ECE moves when a row crosses a bin edge), matrix scaling's
parameters to 6e-6; a --preset tiny run to 3e-5 in its metrics, but its ill-conditioned
vector-scaling parameters (a mean w of 22.7) to 7e-3 and its conformal set sizes (ties at
the threshold flip) to 0.12. So in the refit group the fitted parameters and the conformal
rows are compared and their largest difference reported, not required equal. The
ensemble's members-calibrated rows need each member's validation logits, which are not
saved: they are not recomputed (nor drawn).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calibrate.apps.cifar10 import runner as rn
from calibrate.apps.cifar10 import shift as sh
from calibrate.metrics import calibration as metrics
from calibrate.metrics import selective
from calibrate.resampling.tables import METRIC_KEYS

SINGLE_VARIANTS = ("baseline", "label_smoothing", "overfit_noaug", "focal_loss", "mixup")
POOLED_VARIANTS = ("mc_dropout", "ensemble")  # pooled in float64 by the runner, saved in float32
TOL = 1e-9  # numbers recomputed from logits saved as the run used them, by a reproducible refit
TOL_REFIT = 1e-3  # the metrics through a refit that cannot be bit-exact (see above)
ITERATIVE = ("vector", "matrix", "platt", "dirichlet")  # fits that stop at a gradient tolerance


class RecordMismatch(ValueError):
    """A number recomputed from the saved logits differs from metrics.json."""


@dataclass
class SavedRun:
    """What ``calibrate experiment`` saved under OUT, as the runner held it in memory.

    data: metrics.json; variants: the study's :class:`~calibrate.apps.cifar10.runner.Variant`
    list (val (n_val, k), test (n_test, k), pooled ones with test_samples (S, n_test, k));
    y_val: (n_val,), y_test: (n_test,) labels; members: the ensemble's models; in_raw:
    {single model: (n_test, k), "mc_dropout_samples": (S, n_test, k)}; sets:
    [(corruption, severity, {variant: (n_shift, k) float32})], the clean rows first;
    y_shift: (n_shift,) labels; far: {OOD set: raw logits as in_raw}; near: (test logits
    (n_test, k'), MC dropout samples (S, n_test, k'), HeldOutSplit) of the held-out-class model.
    """

    data: dict
    variants: list
    y_val: np.ndarray
    y_test: np.ndarray
    members: list
    in_raw: dict
    sets: list
    y_shift: np.ndarray
    far: dict
    near: tuple


@dataclass
class Rebuilt:
    """What the report needs beyond metrics.json, and the numbers recomputed on the way.

    test_probs: {(variant, calibrator): (n_test, k) probabilities}; curves: {"roc": {panel:
    {curve: (fpr, tpr, AUROC)}}, "risk_coverage": {label: {severity: (coverage, risk, AURC)}}};
    results: point-estimate rows of every variant x calibrator; fitted: {(variant,
    calibrator): fitted calibrator}; uncertainty, conformal, ood_rows: as in metrics.json.
    """

    test_probs: dict
    curves: dict
    results: list
    fitted: dict
    uncertainty: dict
    conformal: list
    ood_rows: list


def _load(path: Path, keys: tuple) -> dict:
    """The arrays of a saved ``.npz`` (no pickles), which must hold ``keys``."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; the re-render needs the OUT folder `calibrate experiment` wrote "
                                "(metrics.json and logits/)")
    with np.load(path, allow_pickle=False) as f:
        missing = [k for k in keys if k not in f.files]
        if missing:
            raise ValueError(f"{path}: no array {missing[0]!r} (has {', '.join(f.files)}); not a file of "
                             "`calibrate experiment`")
        return {k: f[k] for k in f.files}


def load_saved_run(out) -> SavedRun:
    """The saved run under ``out`` (see :class:`SavedRun`), with the pooled test predictions
    recomputed in float64 from their samples (as the runner held them)."""
    from calibrate.apps.cifar10.ood import OOD_SETS, held_out_class_split
    from calibrate.metrics.uncertainty import pooled_log_probs

    out = Path(out)
    mpath = out / "metrics.json"
    if not mpath.exists():
        raise FileNotFoundError(f"{mpath}: missing; give the OUT folder of `calibrate experiment`")
    try:
        data = json.loads(mpath.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{mpath}: not JSON ({e.msg}, line {e.lineno})") from None
    for key in ("results", "shift", "ood", "uncertainty", "preset_config", "command", "hardware"):
        if key not in data:
            raise ValueError(f"{mpath}: no {key!r}; not the metrics.json of a `calibrate experiment` run")
    lg = out / "logits"
    variants, y_val, y_test = [], None, None
    for name in SINGLE_VARIANTS + POOLED_VARIANTS:
        val, test = _load(lg / f"{name}_val.npz", ("logits", "labels")), _load(lg / f"{name}_test.npz", ("logits", "labels"))
        y_val, y_test = val["labels"], test["labels"]
        if name in POOLED_VARIANTS:
            samples = _load(lg / f"{name}_samples_test.npz", ("samples",))["samples"]
            variants.append(rn.Variant(name, val["logits"], pooled_log_probs(samples), None, samples))
        else:
            variants.append(rn.Variant(name, val["logits"], test["logits"]))
    by_name = {v.name: v for v in variants}
    ens = by_name["ensemble"].test_samples
    members = ["baseline"] + [f"member{m}" for m in range(1, ens.shape[0])]
    in_raw = {name: by_name[name].test for name in SINGLE_VARIANTS}
    in_raw.update({m: ens[i] for i, m in enumerate(members) if m != "baseline"})
    in_raw["mc_dropout_samples"] = by_name["mc_dropout"].test_samples
    sets, y_shift = _saved_shift_sets(lg, variants)
    far = {name: _load(lg / f"ood_{name}.npz", tuple(members) + ("mc_dropout_samples",))
           for name, kind in OOD_SETS.items() if kind == "far"}
    nz = _load(lg / f"ood_{rn.HELD_OUT_MODEL}.npz", ("test", "mc_dropout_samples", "labels", "held_out"))
    held = held_out_class_split(nz["labels"], tuple(int(c) for c in nz["held_out"]))
    return SavedRun(data, variants, y_val, y_test, members, in_raw, sets, y_shift, far,
                    (nz["test"], nz["mc_dropout_samples"], held))


def _saved_shift_sets(lg: Path, variants: list) -> tuple[list, np.ndarray]:
    """The runner's shifted sets from OUT/logits/shift_VARIANT.npz (``logits`` (C, S, n, k)):
    the clean test rows ``test_rows`` first (severity 0), then each corruption at each severity."""
    saved = {v.name: _load(lg / f"shift_{v.name}.npz", ("logits", "labels", "corruptions", "severities", "test_rows"))
             for v in variants}
    first = saved[variants[0].name]
    names, sevs, idx = [str(c) for c in first["corruptions"]], [int(s) for s in first["severities"]], first["test_rows"]
    sets = [(sh.CLEAN, 0, {v.name: v.test[idx].astype(np.float32) for v in variants})]
    for ci, c in enumerate(names):
        for si, s in enumerate(sevs):
            sets.append((c, s, {v: saved[v]["logits"][ci, si] for v in saved}))
    return sets, first["labels"]


def _estimates(lp: np.ndarray, y: np.ndarray, keys) -> dict:
    """The plug-in value of each metric of ``keys`` for (n, k) log-probabilities ``lp`` (15 bins),
    as :func:`calibrate.resampling.tables.evaluate_with_ci` gives its estimates."""
    vals = metrics.all_metrics(np.exp(lp), y, 15, logits=lp)
    return {k: vals[k] for k in keys}


def _point_row(model: str, cal_name: str, lp: np.ndarray, ref: np.ndarray, y: np.ndarray) -> dict:
    """A result row's point values: every metric of ``lp`` and its difference from ``ref``."""
    est = _estimates(lp, y, METRIC_KEYS)
    row = {"model": model, "calibrator": cal_name, **est}
    if cal_name != "none":
        base = _estimates(ref, y, ("ece", "nll", "brier", "accuracy"))
        row["vs_uncalibrated"] = {k: {"estimate": est[k] - base[k]} for k in base}
    return row


def rebuild(saved: SavedRun) -> Rebuilt:
    """Refit every calibrator on the saved validation logits and rebuild the test
    probabilities, the risk-coverage and ROC curves and the numbers behind them, with the
    runner's code (point values: no bootstrap)."""
    results, test_probs, fitted = rn.calibrate_variants(
        saved.variants, saved.y_val, saved.y_test, tuple(saved.data["preset_config"]["odir_grid"]),
        lambda m, c, lp, ref: _point_row(m, c, lp, ref, saved.y_test))
    conformal, rc_curves = rn.conformal_and_risk_coverage(saved.variants, fitted, saved.y_val, saved.sets,
                                                          saved.y_shift)
    ood_rows, roc = [], {}
    for name, raw in saved.far.items():
        rows, panel = rn.far_ood_rows(name, saved.in_raw, raw, saved.members, fitted, 0)
        ood_rows += rows
        roc.update(panel)
    rows, panel = rn.near_ood_rows(*saved.near, 0)
    ood_rows += rows
    roc.update(panel)
    return Rebuilt(test_probs, {"roc": roc, "risk_coverage": rc_curves}, results, fitted,
                   rn._uncertainty(saved.variants, saved.y_test), conformal, ood_rows)


def _tol(model: str, calibrator: str, drift: bool) -> float:
    """The tolerance of a number of ``model`` through ``calibrator``: :data:`TOL_REFIT` for
    any calibrator of a pooled variant and, when the run's calibrate version is not this one
    (``drift``), for the iterative fits; else :data:`TOL`."""
    pooled = calibrator != "none" and any(model.startswith(v) for v in POOLED_VARIANTS)
    return TOL_REFIT if pooled or (drift and calibrator in ITERATIVE) else TOL


def _compare(where: str, recorded, recomputed, tol: float) -> None:
    """Raise :class:`RecordMismatch` naming ``where`` unless the two values (numbers, None,
    strings, or dicts / lists of them) agree to ``tol``."""
    if isinstance(recorded, dict) and isinstance(recomputed, dict):
        if set(recorded) != set(recomputed):
            raise RecordMismatch(f"{where}: keys {sorted(recorded)} in metrics.json, {sorted(recomputed)} recomputed")
        for k in recorded:
            _compare(f"{where}.{k}", recorded[k], recomputed[k], tol)
        return
    if isinstance(recorded, (int, float)) and not isinstance(recorded, bool) and isinstance(
            recomputed, (int, float, np.floating, np.integer)):
        a, b = float(recorded), float(recomputed)
        if a == b or (math.isfinite(a) and math.isfinite(b) and abs(a - b) <= tol):
            return
        raise RecordMismatch(f"{where} is {a!r} in metrics.json but {b!r} from the saved logits "
                             f"(|difference| {abs(a - b):.3g} > {tol:g})")
    if recorded != recomputed:
        raise RecordMismatch(f"{where} is {recorded!r} in metrics.json but {recomputed!r} from the saved logits")


def verify(data: dict, rb: Rebuilt, saved: SavedRun) -> dict:
    """Check every number recomputed from the saved logits against metrics.json ``data``:
    the test metrics, paired differences and fitted parameters of every variant x
    calibrator, the uncertainty table, every shift cell's accuracy, ECE, NLL, Brier and AURC,
    the conformal coverage under shift and every OOD detection row. Raises
    :class:`RecordMismatch` at the first disagreement (beyond :data:`TOL`, or
    :data:`TOL_REFIT` where the refit cannot reproduce the run's; the parameters and conformal
    rows of such refits are compared, not required equal: see the module docstring). Returns
    {"checked": count of numbers, "max_difference": {TOL | TOL_REFIT | math.inf (compared
    only): largest |difference|}, "not_recomputed": [result rows that cannot be]}."""
    from calibrate import __version__

    drift = data["hardware"].get("packages", {}).get("calibrate") != __version__
    stats = {"checked": 0, "max_difference": {TOL: 0.0, TOL_REFIT: 0.0, math.inf: 0.0}}

    def check(where, recorded, recomputed, tol, gate=True):
        tol = tol if gate or tol == TOL else math.inf
        _compare(where, recorded, recomputed, tol)
        for a, b in _pairs(recorded, recomputed):
            stats["checked"] += 1
            stats["max_difference"][tol] = max(stats["max_difference"][tol], abs(a - b))

    mine = {(r["model"], r["calibrator"]): r for r in rb.results}
    not_recomputed = []
    for i, r in enumerate(data["results"]):
        key = (r["model"], r["calibrator"])
        if key not in mine:
            not_recomputed.append(f"{key[0]} / {key[1]}")
            continue
        m, tol = mine[key], _tol(*key, drift)
        where = f"metrics.json results[{i}] ({key[0]} / {key[1]})"
        for k in METRIC_KEYS:
            check(f"{where}.{k}", r[k], m[k], tol)
        for k, d in r.get("vs_uncalibrated", {}).items():
            check(f"{where}.vs_uncalibrated.{k}.estimate", d["estimate"], m["vs_uncalibrated"][k]["estimate"], tol)
        if "params" in r:
            check(f"{where}.params", r["params"], m["params"], tol, gate=False)
    for v, u in data["uncertainty"].items():
        check(f"metrics.json uncertainty.{v}", u, rb.uncertainty.get(v), TOL)
    _verify_shift(data, rb, saved, check, drift)
    for i, (r, m) in enumerate(_matched(data["shift"]["conformal"], rb.conformal,
                                        ("model", "method", "corruption", "severity"), "shift.conformal")):
        tol = _tol(r["model"], "temperature", drift)
        for k in ("coverage", "mean_size"):
            check(f"metrics.json shift.conformal[{i}] ({r['model']}, {r['method']}, {r['corruption']} "
                  f"s{r['severity']}).{k}", r[k], m[k], tol, gate=False)
    for i, (r, m) in enumerate(_matched(data["ood"]["rows"], rb.ood_rows, ("model", "ood_set", "score"), "ood.rows")):
        tol = _tol(r["model"], "temperature" if r["score"] == "MSP (temperature)" else "none", drift)
        for k in ("auroc", "aupr_in", "aupr_out", "fpr_at_95tpr", "n_in", "n_out"):
            check(f"metrics.json ood.rows[{i}] ({r['model']}, {r['ood_set']}, {r['score']}).{k}", r[k], m[k], tol)
    stats.update(not_recomputed=not_recomputed, drift=drift,
                 run_version=data["hardware"].get("packages", {}).get("calibrate"))
    return stats


def _pairs(a, b):
    """The (recorded, recomputed) number pairs under two matching values."""
    if isinstance(a, dict):
        for k in a:
            yield from _pairs(a[k], b[k])
    elif isinstance(a, (int, float)) and not isinstance(a, bool):
        yield float(a), float(b)


def _matched(recorded: list, recomputed: list, keys: tuple, what: str):
    """(recorded row, recomputed row) pairs by ``keys``; every row of metrics.json must have one."""
    mine = {tuple(r[k] for k in keys): r for r in recomputed}
    for i, r in enumerate(recorded):
        key = tuple(r[k] for k in keys)
        if key not in mine:
            raise RecordMismatch(f"metrics.json {what}[{i}] {key}: no such row from the saved logits")
        yield r, mine[key]


def _verify_shift(data: dict, rb: Rebuilt, saved: SavedRun, check, drift: bool) -> None:
    """Each shift cell's point values: the calibrator fitted on clean validation logits (none:
    a log-softmax) applied to the saved shifted logits (:func:`calibrate.apps.cifar10.shift.shift_rows`)."""
    y = saved.y_shift
    cells = {(c, s): d for c, s, d in saved.sets}
    for i, r in enumerate(data["shift"]["rows"]):
        model, cal_name, cell = r["model"], r["calibrator"], (r["corruption"], r["severity"])
        where = f"metrics.json shift.rows[{i}] ({model} / {cal_name}, {cell[0]} s{cell[1]})"
        if cell not in cells or model not in cells[cell]:
            raise RecordMismatch(f"{where}: no such shifted set in the saved logits")
        cal = None if cal_name == "none" else rb.fitted.get((model, cal_name))
        if cal_name != "none" and cal is None:
            raise RecordMismatch(f"{where}: no calibrator {cal_name!r} fitted for {model!r}")
        lp = sh.calibrated_log_probs(cal, cells[cell][model])
        est = _estimates(lp, y, sh.SHIFT_KEYS)
        est["aurc"] = selective.aurc(np.exp(lp.max(axis=1)), lp.argmax(axis=1) == y)
        tol = _tol(model, cal_name, drift)
        for k in (*sh.SHIFT_KEYS, "aurc"):
            check(f"{where}.{k}", r[k], est[k], tol)


def _e(x: float) -> str:
    """1e-09 -> "1e-9"."""
    return f"{x:.0e}".replace("e-0", "e-")


def rendered_lines(command: str, stats: dict) -> list[tuple[str, str]]:
    """The provenance lines of a re-rendered report: how, with what, and what was checked."""
    from calibrate.report.html import environment

    pk = environment()["packages"]
    versions = ", ".join(f"{p} {pk[p]}" for p in ("calibrate", "numpy", "scipy", "scikit-learn", "matplotlib") if pk.get(p))
    md = stats["max_difference"]
    drift, run_version = stats["drift"], stats["run_version"]
    skipped = {}
    for key in stats["not_recomputed"]:
        model, cal = key.split(" / ")
        skipped.setdefault(model, []).append(cal)
    lines = [
        ("rendered", f"re-rendered from the saved run (metrics.json and logits/; no training, no images) by: {command}"),
        ("rendered with", versions),
        ("checked", f"{stats['checked']:,} numbers of metrics.json recomputed from logits/ agree with the record: "
                    f"to {_e(TOL)} (largest difference {md[TOL]:.1e}); to {_e(TOL_REFIT)} (largest "
                    f"{md[TOL_REFIT]:.1e}) where the refit cannot be bit-exact: the calibrators of the pooled MC "
                    "dropout and ensemble (refitted on their validation logits as saved, rounded to float32)"
                    + (f" and the iterative fits ({', '.join(ITERATIVE)}; the run used calibrate {run_version})"
                       if drift else "")
                    + f"; of those refits, the fitted parameters and conformal rows differ by up to {md[math.inf]:.1e}"),
    ]
    if skipped:
        lines.append(("not recomputed", "; ".join(f"{m} ({', '.join(c)})" for m, c in skipped.items())
                      + ": needs each member's validation logits, which the run does not save"))
    return lines


def render_saved_run(out, command: str) -> list[Path]:
    """Rebuild, verify and write OUT/report.html and OUT/report.pdf as one unit; metrics.json
    and logits/ are read, never written. ``command``: the command line shown in the
    provenance. Raises :class:`RecordMismatch` (nothing written) when a recomputed number
    differs from metrics.json. Returns the paths written."""
    from calibrate.apps.cifar10.data import CLASSES
    from calibrate.apps.cifar10.report import experiment_sections
    from calibrate.io.outputs import write_outputs
    from calibrate.report.html import render_html
    from calibrate.report.pdf import render_pdf

    out = Path(out)
    saved = load_saved_run(out)
    rb = rebuild(saved)
    try:
        stats = verify(saved.data, rb, saved)
    except (KeyError, TypeError, IndexError) as e:
        raise ValueError(f"{out / 'metrics.json'}: a row lacks {e}; not the metrics.json of a "
                         "`calibrate experiment` run") from None
    data = {**saved.data, "rendered": rendered_lines(command, stats)}
    classes = list(saved.data.get("classes") or CLASSES)
    title, sections, subtitle = experiment_sections(data, rb.test_probs, saved.y_test, classes, rn.ANCHORS_GUO,
                                                    rb.curves)
    html = render_html(title, sections, subtitle=subtitle)
    pdf = render_pdf(title, sections, subtitle=subtitle)
    inputs = [out / "metrics.json", *sorted((out / "logits").glob("*.npz"))]
    return write_outputs({out / "report.html": html, out / "report.pdf": pdf}, inputs)
