"""The package's layout: imports flow one way; every documented module is reachable."""

import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PUBLIC_MODULES = [
    "calibrate.metrics", "calibrate.metrics.selective", "calibrate.metrics.ood",
    "calibrate.metrics.smooth", "calibrate.metrics.decomposition", "calibrate.metrics.uncertainty",
    "calibrate.metrics.summary", "calibrate.calibrators", "calibrate.conformal",
    "calibrate.resampling", "calibrate.resampling.bootstrap", "calibrate.backends.streaming",
    "calibrate.io", "calibrate.io.readers", "calibrate.io.outputs",
    "calibrate.io.llm", "calibrate.metrics.cumulative", "calibrate.metrics.multicalibration",
    "calibrate.metrics.multilabel", "calibrate.resampling.selective", "calibrate.resampling.detection",
]


def test_import_linter_contracts_are_kept():
    importlinter = pytest.importorskip("importlinter")
    del importlinter
    proc = subprocess.run([sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout


def test_documented_modules_are_attributes_after_import_calibrate():
    code = ("import calibrate, functools\n"
            f"for name in {PUBLIC_MODULES!r}:\n"
            "    functools.reduce(getattr, name.split('.')[1:], calibrate)\n")
    proc = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_import_calibrate_imports_neither_torch_matplotlib_nor_the_study():
    code = ("import sys, calibrate; bad = [m for m in ('torch', 'matplotlib', 'calibrate.apps', 'calibrate.report') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("old,new", [
    ("calibrate.selective", "calibrate.metrics.selective"),
    ("calibrate.bootstrap", "calibrate.resampling.bootstrap"),
    ("calibrate.streaming", "calibrate.backends.streaming"),
    ("calibrate.summary", "calibrate.metrics.summary"),
    ("calibrate.outputs", "calibrate.io.outputs"),
])
def test_old_module_path_imports_with_a_deprecation_warning(old, new):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=new.replace(".", r"\.")):
        mod = importlib.import_module(old)
    assert mod is importlib.import_module(new)


def test_old_attribute_path_warns_and_resolves():
    import calibrate

    vars(calibrate).pop("summary", None)  # bound by an earlier `import calibrate.summary`
    with pytest.warns(DeprecationWarning, match="calibrate.metrics.summary"):
        summary = calibrate.summary
    assert summary.summary_metrics is importlib.import_module("calibrate.metrics.summary").summary_metrics


def test_unknown_attribute_is_an_attribute_error():
    import calibrate

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
            calibrate.nonexistent  # noqa: B018


def test_the_package_version_is_the_one_in_pyproject():
    import re
    from pathlib import Path

    import calibrate

    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert re.search(r'^version = "([^"]+)"', text, re.M).group(1) == calibrate.__version__
