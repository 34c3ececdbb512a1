"""The single-label report of ``calibrate report``, assembled from predictions already read.

    html, pdf, data = build_report(test, fit_on=val, methods=["temperature", "vector"],
                                   groups=test_cols, fit_groups=val_cols, group_method="vector",
                                   options=ReportOptions(n_resamples=1000, pdf=True))
    write_report("report.html", html, data, json_path="report.json", pdf_path="report.pdf", pdf=pdf)

What it does: loads the calibrator files (or fits ``methods`` on ``fit_on``), checks that
every calibrator and every file has the test data's k classes, refuses fits that are long by
the size rule (:mod:`calibrate.calibrators._budget`), fits the grouped calibrator of
``fit_groups`` (:class:`calibrate.calibrators.GroupedCalibrator`, any base method), then
builds the sections (:func:`calibrate.report.html.calibration_report_sections`), the HTML and
the PDF. :mod:`calibrate.cli` reads the files, calls :func:`build_report`, writes the outputs
with :func:`calibrate.report.html.write_report` and prints. Bad input is a one-line
:class:`~calibrate._core.validation.InputError` (the command line's messages); progress goes
to the ``progress`` callback, nothing is printed here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from calibrate._core.validation import InputError
from calibrate.calibrators._budget import refuse_long_fit
from calibrate.calibrators.base import check_classes


@dataclass(frozen=True)
class ReportOptions:
    """How the report is computed and laid out (the ``calibrate report`` options of the same names).

    n_bins: bins of every binned number; n_resamples, seed: the bootstrap intervals;
    conformal_alpha: miscoverage of the conformal-sets section (None: no section);
    classes: "auto" or "all" (see calibration_report_sections); allow_slow: fit methods that
    are long by the size rule; pdf: also lay the report out as PDF bytes; started: the
    time.time() the command started (the report's run time), None: now.
    """

    title: str = "Calibration report"
    n_bins: int = 15
    n_resamples: int = 1000
    seed: int = 0
    conformal_alpha: float | None = None
    classes: str = "auto"
    allow_slow: bool = False
    pdf: bool = False
    started: float | None = None


def _silent(message: str) -> None:
    return None


def check_group_method(method: str) -> str:
    """``method`` when it names a calibrator (calibrate.calibrators.available_methods()), else an InputError."""
    from calibrate.calibrators import available_methods

    if method not in available_methods():
        raise InputError(f"--group-method: expected one of {', '.join(available_methods())}, got {method!r}")
    return method


def load_calibrators(paths: Sequence[str], test) -> dict:
    """{name: Calibrator} of the calibrator files ``paths``, each checked against the k of
    ``test``; a name taken twice gets its file name: "temperature (b.json)"."""
    from calibrate.calibrators import load

    cals = {}
    for path in paths:
        cal = load(path)
        check_classes(cal, path, test)
        name = cal.name if cal.name not in cals else f"{cal.name} ({os.path.basename(path)})"
        cals[name] = cal
    return cals


def group_keys(names: Sequence[str], columns: dict) -> np.ndarray:
    """(n,) object array of each row's group label, "col=value, col=value"
    (:func:`calibrate.metrics.groups.group_label`), from {column: (n,) array}."""
    from calibrate.metrics.groups import group_label

    names = list(names)
    return np.array([group_label(names, v) for v in zip(*(np.asarray(columns[c]) for c in names))], dtype=object)


def fit_grouped(fit_on, fit_groups: dict, test_groups: dict, method: str = "temperature", fitted=None,
                progress: Callable[[str], None] = _silent):
    """(global calibrator, fitted GroupedCalibrator(method), (n,) test group keys).

    fit_on: the fitting Predictions (m rows); fit_groups: {column: (m,) array} of its rows;
    test_groups: {column: (n,) array} of the test rows, the same columns (their order names the
    groups). The global calibrator is ``fitted[method]`` when given (the same fit on the same
    rows), else ``method`` fitted on all of fit_on; the grouped one shrinks each group's fit
    toward it by 5-fold cross-validation.
    """
    from calibrate.calibrators import GroupedCalibrator, get_calibrator

    method = check_group_method(method)
    names = list(test_groups)
    missing = [c for c in names if c not in fit_groups]
    if missing:
        raise InputError(f"--fit-groups: no column {missing[0]!r} (--group-by) among the fit groups "
                         f"({', '.join(fit_groups) or 'none'})")
    y = fit_on.require_labels()
    glob = (fitted or {}).get(method)
    if glob is None:
        glob = get_calibrator(method).fit(fit_on.logits, y, kind="logits")
    what = "a temperature" if method == "temperature" else method
    progress(f"fitting {what} per group of {','.join(names)} on {fit_on.path} (shrinkage by 5-fold CV)")
    grouped = GroupedCalibrator(method).fit(fit_on.logits, y, group_keys(names, fit_groups), kind="logits")
    return glob, grouped, group_keys(names, test_groups)


def build_report(test, *, calibrators: Sequence[str] = (), fit_on=None, methods: Sequence[str] = (), ood=None,
                 groups: dict | None = None, fit_groups: dict | None = None, group_method: str = "temperature",
                 options: ReportOptions | None = None,
                 progress: Callable[[str], None] = _silent) -> tuple[str, bytes | None, dict]:
    """The report of ``test``: (HTML text, PDF bytes or None, the JSON-able numbers).

    test: Predictions with labels (logits (n, k) float, labels (n,) int).
    calibrators: calibrator files to compare (JSON of calibrate fit); or fit_on: Predictions
    with labels (m, k) and methods: the method names to fit on them (not both).
    ood: Predictions (labels not needed) of out-of-distribution inputs, k columns.
    groups: {column: (n,) array} of the test rows: adds the per-group section.
    fit_groups: {column: (m,) array} of the fit_on rows, with groups and fit_on: adds the
    per-group recalibration section (GroupedCalibrator(group_method) against the global fit).
    options: ReportOptions (None: the defaults).
    progress: called with one line per long step (fits, bootstrap, PDF layout).
    """
    import time

    from calibrate.calibrators import get_calibrator
    from calibrate.report.html import calibration_report_sections, render_report

    options = options if options is not None else ReportOptions()
    started = options.started if options.started is not None else time.time()
    if calibrators and fit_on is not None:
        raise InputError("give either --calibrator or --fit-on, not both")
    if fit_groups is not None and (groups is None or fit_on is None):
        raise InputError("--fit-groups FILE needs --group-by COLUMN[,COLUMN] and --fit-on VAL (the groups of VAL's "
                         "rows)")
    if fit_groups is not None:
        check_group_method(group_method)
    y = test.require_labels()
    if ood is not None and ood.k != test.k:
        raise InputError(f"{ood.path}: has {ood.k} classes, {test.path} has {test.k}")
    cals = load_calibrators(calibrators, test)
    fit_name = ", ".join(map(str, calibrators))
    if fit_on is not None:
        if fit_on.k != test.k:
            raise InputError(f"{fit_on.path}: has {fit_on.k} classes, but {test.path} has {test.k}; fit and "
                             "report on predictions of the same classes")
        checked = list(methods) + ([group_method] if fit_groups is not None and group_method not in methods else [])
        for m in checked:
            refuse_long_fit(m, fit_on.n, fit_on.k, options.allow_slow)
        for m in methods:
            progress(f"fitting {m} on {fit_on.path}")
            cals[m] = get_calibrator(m).fit(fit_on.logits, fit_on.require_labels(), kind="logits")
        fit_name = fit_on.path
    grouped = None
    if fit_groups is not None:
        grouped = fit_grouped(fit_on, fit_groups, groups, group_method, cals, progress)
    progress(f"bootstrapping {options.n_resamples} resamples for {1 + len(cals)} predictions")
    sections, subtitle, data = calibration_report_sections(
        test.logits, y, cals, data_name=test.path, fit_name=fit_name, n_bins=options.n_bins,
        n_resamples=options.n_resamples, seed=options.seed, title=options.title, started=started,
        ood_logits=ood.logits if ood is not None else None, ood_name=ood.path if ood is not None else "",
        conformal_alpha=options.conformal_alpha,
        fit_logits=fit_on.logits if fit_on is not None else None,
        fit_labels=fit_on.require_labels() if fit_on is not None else None,
        classes=options.classes, groups=groups, grouped=grouped)
    html, pdf = render_report(options.title, sections, subtitle, pdf=options.pdf, progress=progress)
    return html, pdf, data
