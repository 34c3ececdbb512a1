"""The study's group view: is the calibration the same for every class and every corruption?

Read from the study's saved logits (OUT/logits, written by the runner), for each model
asked for (default the baseline and the over-fitting model):

- per class: the clean test set grouped by the predicted class (arg-max; the same for
  every temperature), uncalibrated and with the temperature fitted on the validation set.
  The group is the predicted class, not the true one: top-label calibration conditional on
  the predicted class is a property a calibrated model can have (Gupta & Ramdas 2022,
  "Top-label calibration and multiclass-to-binary reductions"), while rows grouped by their
  label are miscalibrated by construction (within class c, P(correct) is the recall of c,
  not the mean confidence);
- per corruption: the shifted test set (``shift_MODEL.npz``: (C, S, n, k) logits of C
  corruptions x S severities of the same n images) grouped by corruption x severity, and
  by severity alone, with the same validation temperature (fitted in distribution: the
  point of the view is where it stops holding).

Every table and figure is :func:`calibrate.report.groups.groups_section`: per-group ECE,
accuracy, NLL, Brier with percentile bootstrap intervals and each group's paired gap to
all rows. Written as OUT/groups.html and OUT/groups.json, one unit.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from calibrate.apps.cifar10.data import CLASSES

DEFAULT_MODELS = ("baseline", "overfit_noaug")


def _load(path: Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def model_view(logits_dir, model: str, *, n_resamples: int = 200, seed: int = 0) -> tuple[list, dict]:
    """(sections, data) of one model's group view, from ``logits_dir``/MODEL_{val,test}.npz
    and ``shift_MODEL.npz`` (when present)."""
    from calibrate.calibrators import TemperatureScaling
    from calibrate.report.groups import groups_section, prediction_rows

    d = Path(logits_dir)
    val, test = _load(d / f"{model}_val.npz"), _load(d / f"{model}_test.npz")
    cal = TemperatureScaling().fit(val["logits"], val["labels"], kind="logits")
    T = float(cal.temperature_)
    y = test["labels"]
    rows = {"uncalibrated": prediction_rows(_log_softmax(test["logits"]), y),
            f"temperature (T = {T:.3f}, fitted on validation)":
                prediction_rows(cal.predict_log_proba(test["logits"], kind="logits"), y)}
    by_class = np.asarray(CLASSES)[np.argmax(test["logits"], axis=1)]
    sec, data = groups_section(rows, {"predicted": by_class}, n_resamples=n_resamples, seed=seed)
    sec = {**sec, "id": f"{model}-classes",
           "title": f"{model}: calibration per predicted class (clean test set, n = {len(y):,})"}
    sections, out = [sec], {"temperature": T, "per_class": data}
    shift_path = d / f"shift_{model}.npz"
    if shift_path.exists():
        sh = _load(shift_path)
        z = sh["logits"]  # (C, S, n, k)
        C, S, n, k = z.shape
        flat = z.reshape(C * S * n, k)
        y_sh = np.tile(sh["labels"], C * S)
        corruption = np.repeat(np.asarray(sh["corruptions"]).astype(str), S * n)
        severity = np.tile(np.repeat(np.asarray(sh["severities"]).astype(str), n), C)
        rows = {"uncalibrated": prediction_rows(_log_softmax(flat), y_sh),
                f"temperature (T = {T:.3f})": prediction_rows(cal.predict_log_proba(flat, kind="logits"), y_sh)}
        for key, groups in (("per_corruption", {"corruption": corruption, "severity": severity}),
                            ("per_severity", {"severity": severity})):
            sec, data = groups_section(rows, groups, n_resamples=n_resamples, seed=seed)
            what = " x ".join(groups)
            sections.append({**sec, "id": f"{model}-{key}",
                             "title": f"{model}: calibration per {what} ({C} corruptions x {S} severities of the "
                                      f"same {n:,} test images)"})
            out[key] = data
    return sections, out


def group_view(out_dir, models=DEFAULT_MODELS, *, n_resamples: int = 200, seed: int = 0) -> list[Path]:
    """Write OUT/groups.html and OUT/groups.json from OUT/logits; returns the paths written."""
    from calibrate.report.html import command_line, environment, render_html, write_report

    t0 = time.time()
    out = Path(out_dir)
    sections, data = [], {"models": {}}
    for m in models:
        s, d = model_view(out / "logits", m, n_resamples=n_resamples, seed=seed)
        sections += s
        data["models"][m] = d
    env = environment()
    data.update({"command": command_line(), "wall_seconds": round(time.time() - t0, 1), "environment": env,
                 "n_resamples": n_resamples, "seed": seed})
    sections.append({"id": "provenance", "title": "How this page was made", "collapsed": True,
                     "summary": [("command", data["command"]), ("logits", str(out / "logits")),
                                 ("time taken", f"{data['wall_seconds']:.1f} s"),
                                 ("machine", f"{env['cpu']}, {env['cores']} cores, {env['platform']}")]})
    title = "CIFAR-10 study: calibration per class and per corruption"
    html = render_html(title, sections, subtitle=", ".join(models))
    return write_report(out / "groups.html", html, data, json_path=out / "groups.json")
